#!/usr/bin/env python3
"""Writes seed corpora for fuzz_chunkindex and fuzz_codec from small real HDF5 files (h5py).
Usage: seed_corpus.py OUTDIR   -> OUTDIR/chunkindex/, OUTDIR/codec/"""
import os, struct, sys, tempfile
import numpy as np, h5py

out = sys.argv[1]
ci = os.path.join(out, "chunkindex"); cd = os.path.join(out, "codec")
os.makedirs(ci, exist_ok=True); os.makedirs(cd, exist_ok=True)

def ci_prefix(addr, rank, filtered, dims, chunk0, base, split=False):
    flags = (rank - 1) | (4 if filtered else 0) | (32 if split else 0)
    d1 = dims[1] if rank > 1 else 0; d2 = dims[2] if rank > 2 else 0
    return struct.pack("<IBHHHHI", addr, flags, dims[0], chunk0, d1, d2, base)

FID = {"gzip": 1, "shuffle": 2, "fletcher32": 3}
n = 0
for libver in ("earliest", "latest"):
    for ub in (0, 512):
        for kind in ("plain", "gzip", "gzip+shuffle+f32", "single", "maxshape"):
            for rank in (1, 2, 3):
                dims = (40, 3, 2)[:rank]; chunk = (8,) + dims[1:]
                kw = dict(chunks=chunk)
                if kind == "single": kw["chunks"] = dims
                if "gzip" in kind: kw["compression"] = "gzip"
                if "shuffle" in kind: kw["shuffle"] = True; kw["fletcher32"] = True
                if kind == "maxshape": kw["maxshape"] = (None,) + dims[1:]
                fd, path = tempfile.mkstemp(suffix=".h5"); os.close(fd)
                dt = "<i4" if rank != 2 else "<f8"
                with h5py.File(path, "w", libver=libver, userblock_size=ub) as f:
                    d = f.create_dataset("x", shape=dims, dtype=dt, **kw)
                    d[...] = np.arange(np.prod(dims)).reshape(dims).astype(dt)
                    addr = h5py.h5o.get_info(d.id).addr
                    filtered = "gzip" in kind
                    c0 = kw["chunks"][0]
                    # real chunks for the codec corpus
                    if filtered and rank == 1 or kind == "gzip+shuffle+f32":
                        plist = d.id.get_create_plist()
                        ids = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
                        esz = d.dtype.itemsize
                        cb = int(np.prod(kw["chunks"])) * esz
                        sel = {1: 0, 2: 1, 4: 2, 8: 3}[esz]
                        order = 0
                        for i, fid in enumerate(ids): order |= fid << (2 * i)
                        for ci_ in range(0, dims[0], c0):
                            mask, raw = d.id.read_direct_chunk((ci_,) + (0,) * (rank - 1))
                            hdr = struct.pack("<BBH", len(ids) | sel << 2 | (mask & 0xf) << 4, order, cb & 0xffff)
                            with open(os.path.join(cd, "seed_%d" % n), "wb") as g: g.write(hdr + raw)
                            n += 1
                with open(path, "rb") as g: img = g.read()
                os.unlink(path)
                # header addresses are relative to the base address (userblock)
                with open(os.path.join(ci, "seed_%s_%d_%s_r%d" % (libver, ub, kind, rank)), "wb") as g:
                    g.write(ci_prefix(addr, rank, filtered, dims, c0, ub) + img)
# many chunks: a paged fixed array (latest) and a multi-level v1 B-tree (earliest)
for libver in ("earliest", "latest"):
    fd, path = tempfile.mkstemp(suffix=".h5"); os.close(fd)
    with h5py.File(path, "w", libver=libver) as f:
        d = f.create_dataset("x", shape=(3000,), dtype="<u1", chunks=(1,))
        d[::2] = 1  # every other chunk allocated
        addr = h5py.h5o.get_info(d.id).addr
    with open(path, "rb") as g: img = g.read()
    os.unlink(path)
    with open(os.path.join(ci, "seed_many_%s" % libver), "wb") as g:
        g.write(ci_prefix(addr, 1, False, (3000,), 1, 0) + img)
# layout v4 index kinds the loop above does not make: implicit (early allocation, no filter)
# and a filtered single chunk
for kind in ("implicit", "single_gzip"):
    fd, path = tempfile.mkstemp(suffix=".h5"); os.close(fd)
    with h5py.File(path, "w", libver="latest") as f:
        if kind == "implicit":
            dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
            dcpl.set_chunk((8,))
            dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
            sid = h5py.h5s.create_simple((40,))
            did = h5py.h5d.create(f.id, b"x", h5py.h5t.STD_I32LE, sid, dcpl=dcpl)
            d = h5py.Dataset(did); chunk0, filtered = 8, False
        else:
            d = f.create_dataset("x", shape=(40,), dtype="<i4", chunks=(40,), compression="gzip")
            chunk0, filtered = 40, True
        d[...] = np.arange(40, dtype="<i4")
        addr = h5py.h5o.get_info(d.id).addr
    with open(path, "rb") as g: img = g.read()
    os.unlink(path)
    with open(os.path.join(ci, "seed_%s" % kind), "wb") as g:
        g.write(ci_prefix(addr, 1, filtered, (40,), chunk0, 0) + img)
# chunks that split the sample axes (flag bit 5: chunk[d] = ceil(dims[d] / 2) for d >= 1), in
# the index kinds the direct path reads for them: v1 B-tree, fixed array, implicit
for libver, kind in (("earliest", "btree"), ("latest", "farray"), ("latest", "implicit")):
    for rank in (2, 3):
        dims = (40, 5, 4)[:rank]
        chunk = (8,) + tuple((x + 1) // 2 for x in dims[1:])
        fd, path = tempfile.mkstemp(suffix=".h5"); os.close(fd)
        with h5py.File(path, "w", libver=libver) as f:
            if kind == "implicit":
                dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
                dcpl.set_chunk(chunk)
                dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
                did = h5py.h5d.create(f.id, b"x", h5py.h5t.STD_I32LE, h5py.h5s.create_simple(dims),
                                      dcpl=dcpl)
                d = h5py.Dataset(did)
            else:
                d = f.create_dataset("x", shape=dims, dtype="<i4", chunks=chunk,
                                     compression="gzip" if kind == "btree" else None)
            d[...] = np.arange(np.prod(dims)).reshape(dims).astype("<i4")
            addr = h5py.h5o.get_info(d.id).addr
        with open(path, "rb") as g: img = g.read()
        os.unlink(path)
        with open(os.path.join(ci, "seed_split_%s_r%d" % (kind, rank)), "wb") as g:
            g.write(ci_prefix(addr, rank, kind == "btree", dims, 8, 0, split=True) + img)
# a write_direct_chunk seed with deflate+shuffle of 8-byte elements
import zlib
a = np.arange(512, dtype="<u8"); sh = a.view(np.uint8).reshape(-1, 8).T.copy().tobytes()
comp = zlib.compress(sh)
with open(os.path.join(cd, "seed_manual_shuf_deflate"), "wb") as g:
    g.write(struct.pack("<BBH", 2 | 3 << 2, 2 | 1 << 2, 4096) + comp)
print("codec seeds:", n + 1, "chunkindex seeds:", len(os.listdir(ci)))
