#!/usr/bin/python3
"""The Python binding (python/h5feed.py) end to end, against h5py + numpy as the reference.

Usage: /usr/bin/python3 tests/python/test_binding.py /path/to/libh5feed.so

Files are written here with h5py from numpy arrays; every value a framework gets through the
binding (torch.from_dlpack, numpy.from_dlpack) is compared with numpy's own conversion of the
rows the batch says it holds. Also: every sample exactly once per epoch, zero copy (the
framework's pointer is the slot's), tensors outliving their batch and the loader, BUSY instead
of a hang when tensors hold every slot, errors that name the key, file and dataset, seek,
the fake device, logging and field statistics. The torch checks need python3-torch; without it
they are reported as skipped and the NumPy checks still run."""

import gc
import json
import logging
import os
import sys
import tempfile
import threading

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tool"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "python"))
from toolcheck import Checker  # noqa: E402

if len(sys.argv) != 2:
    print(f"usage: {sys.argv[0]} /path/to/libh5feed.so", file=sys.stderr)
    sys.exit(2)
os.environ["H5FEED_LIBRARY"] = os.path.abspath(sys.argv[1])
import h5feed  # noqa: E402

try:
    import torch
except ImportError:
    torch = None

c = Checker()
# ---- the ctypes mirrors of the header's plain-data structs: same fields, same order -------
# (a struct that grew in h5feed.h but not here would be written past its end by the library)

def header_fields(typedef):
    """Field names of `typedef struct { ... } NAME;` in include/h5feed.h, in order."""
    import re
    with open(os.path.join(HERE, "..", "..", "include", "h5feed.h")) as f:
        text = re.sub(r"/\*.*?\*/", "", f.read(), flags=re.S)
    body = re.findall(r"typedef struct \{([^{}]*)\}\s*" + typedef + r";", text)
    assert len(body) == 1, typedef
    names = []
    for decl in body[0].split(";"):
        decl = re.sub(r"\[[^\]]*\]", "", decl).strip()  # arrays: the name is what counts
        names += [re.findall(r"\w+", piece)[-1] for piece in decl.split(",") if decl]
    return names


for mirror, typedef in ((h5feed._Stats, "hfeed_stats"), (h5feed._LoaderInfo, "hfeed_loader_info"),
                        (h5feed._BatchInfo, "hfeed_batch_info"), (h5feed._Tensor, "hfeed_tensor")):
    ours = [n for n, _ in mirror._fields_]
    theirs = header_fields(typedef)
    c.check(ours == theirs, f"{mirror.__name__} fields {ours} differ from {typedef}'s {theirs}")

tmp = tempfile.mkdtemp(prefix="h5feed-binding-")
rng = np.random.default_rng(7)

# Two files, so global indices cross a file boundary: A chunked gzip+shuffle little-endian,
# B contiguous big-endian; samples of shape (3, 2), int64 labels, float16 and int16 extras.
A_ROWS, B_ROWS = 1000, 300
xa = rng.standard_normal((A_ROWS, 3, 2)) * 1e3
xb = rng.standard_normal((B_ROWS, 3, 2))
ya = rng.integers(-2**40, 2**40, A_ROWS)
yb = rng.integers(-2**40, 2**40, B_ROWS)
ha = rng.standard_normal(A_ROWS).astype(np.float16)
hb = rng.standard_normal(B_ROWS).astype(np.float16)
sa = rng.integers(-30000, 30000, A_ROWS).astype(np.int16)
sb = rng.integers(-30000, 30000, B_ROWS).astype(np.int16)
path_a = os.path.join(tmp, "a.h5")
path_b = os.path.join(tmp, "b.h5")
with h5py.File(path_a, "w") as f:
    f.create_dataset("x", data=xa, chunks=(64, 3, 2), compression="gzip", shuffle=True)
    f.create_dataset("y", data=ya, chunks=(128,))
    f.create_dataset("h", data=ha, chunks=(100,))
    f.create_dataset("s", data=sa)
with h5py.File(path_b, "w") as f:
    f.create_dataset("x", data=xb.astype(">f8"))
    f.create_dataset("y", data=yb)
    f.create_dataset("h", data=hb)
    f.create_dataset("s", data=sb.astype(">i2"))
X = np.concatenate([xa, xb])
Y = np.concatenate([ya, yb])
H = np.concatenate([ha, hb])
S = np.concatenate([sa, sb])
N = A_ROWS + B_ROWS


def config(**over):
    cfg = {"files": ["a.h5", "b.h5"],
           "fields": [{"name": "x", "dataset": "/x", "dtype": "float32"},
                      {"name": "y", "dataset": "/y", "dtype": "int64"}],
           "batch_size": 64, "shuffle": "global", "seed": 11, "epochs": 2, "workers": 2,
           "prefetch": 3, "device": "cpu"}
    cfg.update(over)
    return cfg


def loader(**over):
    return h5feed.Loader(config(**over), base_dir=tmp)


def expect_error(fn, status, *needles):
    """Checks that fn() raises h5feed.Error with `status` and a message holding every needle."""
    try:
        fn()
    except h5feed.Error as e:
        ok = e.status == status and all(n in str(e) for n in needles)
        return c.check(ok, f"error status {e.status} (want {status}), message {str(e)!r} "
                           f"should name {needles}")
    return c.check(False, f"no error raised; wanted status {status} naming {needles}")


def run_all(**over):
    """[(epoch, index, indices)] of an uninterrupted run."""
    with loader(**over) as ld:
        return [(b.epoch, b.index, list(b.indices)) for b in ld]


# ---- values, exactly once per epoch, zero copy ---------------------------------------------

def check_values_once(use_torch):
    per_epoch = {}
    nbatches = 0
    with loader() as ld:
        c.check(ld.info.samples_per_epoch == N and ld.info.device == "cpu",
                f"info: {ld.info}")
        for b in ld:
            nbatches += 1
            idx = np.asarray(b.indices, dtype=np.int64)
            if use_torch:
                x = torch.from_dlpack(b["x"])
                y = torch.from_dlpack(b[1])
                c.check(x.dtype == torch.float32 and y.dtype == torch.int64,
                        f"torch dtypes {x.dtype} {y.dtype}")
                c.check(x.data_ptr() == b["x"].data_ptr and y.data_ptr() == b["y"].data_ptr,
                        "torch tensors share the slot's memory (no copy)")
                xn, yn = x.numpy(), y.numpy()
            else:
                xn, yn = np.from_dlpack(b["x"]), np.from_dlpack(b["y"])
                c.check(xn.ctypes.data == b["x"].data_ptr, "numpy array is the slot's memory")
            c.check(xn.shape == (len(b), 3, 2) and yn.shape == (len(b),),
                    f"shapes {xn.shape} {yn.shape} for {len(b)} rows")
            c.check(np.array_equal(xn, X[idx].astype(np.float32)),
                    f"x of epoch {b.epoch} batch {b.index} equals numpy's float32 cast")
            c.check(np.array_equal(yn, Y[idx]), f"y of epoch {b.epoch} batch {b.index}")
            per_epoch.setdefault(b.epoch, []).extend(b.indices)
    c.check(nbatches == 2 * ((N + 63) // 64), f"{nbatches} batches in 2 epochs")
    for e in (0, 1):
        c.check(sorted(per_epoch.get(e, [])) == list(range(N)),
                f"epoch {e}: every sample exactly once")
    c.check(per_epoch[0] != per_epoch[1], "global shuffle: the epochs' orders differ")


check_values_once(use_torch=False)
if torch is not None:
    check_values_once(use_torch=True)

# A loop per epoch: each epoch() yields that epoch's batches, in order, then nothing more.
with loader() as ld:
    epochs = [[(b.epoch, b.index) for b in ld.epoch()] for _ in range(3)]
    per = ld.info.batches_per_epoch
    c.check(epochs[0] == [(0, i) for i in range(per)] and
            epochs[1] == [(1, i) for i in range(per)] and epochs[2] == [],
            f"epoch() per epoch: {[len(e) for e in epochs]} batches, {per} per epoch")

# The conveniences, and dtypes beyond float32/int64: float16 as stored, int16 widened.
with loader(fields=[{"name": "h", "dataset": "/h", "dtype": "native"},
                    {"name": "s", "dataset": "/s", "dtype": "int32"},
                    {"name": "x", "dataset": "/x", "dtype": "float64"}], epochs=1) as ld:
    b = next(ld)
    idx = np.asarray(b.indices, dtype=np.int64)
    arrays = b.numpy()
    c.check(list(arrays) == ["h", "s", "x"], f"numpy() keys {list(arrays)}")
    c.check(arrays["h"].dtype == np.float16 and np.array_equal(arrays["h"], H[idx]),
            "float16 'native' field equals the stored values")
    c.check(arrays["s"].dtype == np.int32 and np.array_equal(arrays["s"], S[idx]),
            "int16 (both byte orders) widened to int32")
    c.check(arrays["x"].dtype == np.float64 and np.array_equal(arrays["x"], X[idx]),
            "float64 output equals the stored float64")
    if torch is not None:
        t = b.torch()
        c.check(t["h"].dtype == torch.float16 and np.array_equal(t["h"].numpy(), H[idx]),
                "torch() float16")
    try:
        b["x"].__dlpack__(copy=True)
        c.check(False, "__dlpack__(copy=True) raises BufferError")
    except BufferError as e:
        c.check("does not copy" in str(e), f"copy=True refused: {e}")
    try:
        b["x"].__dlpack__(dl_device=(2, 0))
        c.check(False, "__dlpack__ to another device raises BufferError")
    except BufferError as e:
        c.check("not (2, 0)" in str(e), f"another device refused: {e}")
    capsule = b["x"].__dlpack__(stream=None, max_version=(1, 0), dl_device=(1, 0), copy=False)
    c.check(np.array_equal(np.from_dlpack(b["x"]), X[idx]), "DLPack 1.0 keywords accepted")
    del capsule
    try:
        b["nope"]
        c.check(False, "a missing field name raises KeyError")
    except KeyError as e:
        c.check("nope" in str(e) and "'x'" in str(e), f"KeyError names the fields: {e}")

# ---- lifetimes: tensors outlive the batch and the loader; BUSY, not a hang --------------------

ld = loader(prefetch=2, epochs=1, shuffle="none")
b0 = next(ld)
kept = np.from_dlpack(b0["x"])
kept_idx = np.asarray(b0.indices)
b1 = next(ld)  # b0 given back; kept still holds its slot
expect_error(lambda: b0["x"].__dlpack__(), 1, "given back")
field = b1["x"]
del b1
next(ld)  # batch 1 is given back and, unreferenced, gone at once (no cycle keeps it)
expect_error(lambda: field.__dlpack__(), 1, "gone")
ld.close()
gc.collect()
c.check(np.array_equal(kept, X[kept_idx].astype(np.float32)),
        "a tensor taken from batch 0 keeps its values after the batch and the loader are gone")
del kept, b0, field
gc.collect()

reference = run_all(prefetch=2, epochs=1, shuffle="chunk")
with loader(prefetch=2, epochs=1, shuffle="chunk") as ld:
    held = [np.from_dlpack(next(ld)["x"]), np.from_dlpack(next(ld)["x"])]
    expect_error(lambda: next(ld), h5feed.BUSY, "each of the 2 slots is held", ".clone()")
    held.clear()  # frees both slots (the exports' deleters run)
    b = next(ld)
    c.check((b.epoch, b.index, list(b.indices)) == reference[2],
            "after BUSY the next batch is batch 2: none was lost")
    rest = [(x.epoch, x.index, list(x.indices)) for x in ld]
    c.check([reference[2]] + rest == reference[2:], "the rest of the epoch as uninterrupted")

# Exports no framework takes: the capsule's destructor gives the slot back.
with loader(prefetch=2, epochs=1) as ld:
    count = 0
    for b in ld:
        capsule = b["x"].__dlpack__()
        del capsule
        count += 1
    c.check(count == (N + 63) // 64, f"untaken capsules free their slots ({count} batches)")

# Tensors freed on another thread (deleters may run on any thread).
with loader(prefetch=2, epochs=1) as ld:
    count = 0
    for b in ld:
        arr = np.from_dlpack(b["x"])
        t = threading.Thread(target=lambda a: a.sum(), args=(arr,))
        del arr
        t.start()
        t.join()
        count += 1
    c.check(count == (N + 63) // 64, "tensors freed on other threads give their slots back")

# ---- errors name the key, file and dataset ---------------------------------------------------

expect_error(lambda: loader(batch_sise=3), 4, "batch_sise")
expect_error(lambda: loader(shuffle="sideways"), 4, "shuffle")
expect_error(lambda: loader(files=["a.h5", "missing.h5"]), 5, "missing.h5")
expect_error(lambda: loader(fields=[{"name": "x", "dataset": "/nope"}]), 6, "/nope", "a.h5")
expect_error(lambda: h5feed.Loader(os.path.join(tmp, "no-such-config.json")), 5,
             "no-such-config.json")

# A corrupt chunk: the error comes out of the loop, naming the file and the dataset.
bad = os.path.join(tmp, "bad.h5")
with h5py.File(bad, "w") as f:
    d = f.create_dataset("x", data=xa, chunks=(64, 3, 2), compression="gzip")
    info = d.id.get_chunk_info(3)
with open(bad, "r+b") as f:
    f.seek(info.byte_offset + 4)
    f.write(b"\xff" * 16)
delivered = []
try:
    with loader(files=["bad.h5"], fields=[{"name": "x", "dataset": "/x"}], shuffle="none",
                epochs=1) as ld:
        for b in ld:
            delivered.append(b.index)
    c.check(False, "a corrupt chunk raises an error")
except h5feed.Error as e:
    c.check(e.status == 8 and "bad.h5" in str(e) and "/x" in str(e),
            f"corrupt chunk: status {e.status}, {e}")
c.check(all(i < 3 for i in delivered), f"no batch with the corrupt chunk delivered: {delivered}")

# ---- seek, fake device, logging, field statistics --------------------------------------------

reference = run_all()
with loader() as ld:
    ld.seek(1, 3)
    b = next(ld)
    c.check((b.epoch, b.index, list(b.indices)) == reference[len(reference) // 2 + 3],
            "seek(1, 3): the batch an uninterrupted run delivers there")
    expect_error(lambda: ld.seek(2, 0), 1, "")

with loader(device="fake", epochs=1, prefetch=2) as ld:
    c.check(ld.info.device == "fake", f"fake device: info says {ld.info.device}")
    ok = True
    for b in ld:
        idx = np.asarray(b.indices, dtype=np.int64)
        ok &= b["x"].device == "fake" and b["x"].__dlpack_device__() == (1, 0)
        ok &= np.array_equal(np.from_dlpack(b["x"]), X[idx].astype(np.float32))
    c.check(ok, "fake device: host-readable DLPack tensors with the right values")
    c.check(ld.stats().upload_bytes == ld.stats().bytes_out,
            "fake device: every delivered byte went through the upload stage")


class Lines(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


lines = Lines()
logging.getLogger("h5feed").addHandler(lines)
logging.getLogger("h5feed").setLevel(logging.INFO)  # "auto"'s choice is an INFO line
with loader(device="auto", epochs=1) as ld:
    chose = ld.info.device
logging.getLogger("h5feed").removeHandler(lines)
c.check(any('"auto"' in line and chose in line.lower() for line in lines.lines),
        f"device auto ({chose}) is logged to the 'h5feed' logger: {lines.lines}")

with loader(fields=[{"name": "x", "dataset": "/x", "normalize": "standard"},
                    {"name": "y", "dataset": "/y"}], epochs=1) as ld:
    mean, std = ld.field_stats(0)
    flat = X.reshape(N, 6)
    c.check(np.allclose(mean, flat.mean(axis=0), rtol=1e-12, atol=1e-9) and
            np.allclose(std, flat.std(axis=0), rtol=1e-12), "field_stats equals numpy's")
    c.check(ld.field_stats(1) is None, "a field without normalize has no statistics")
    expect_error(lambda: ld.field_stats(2), 1, "no field 2")

# ---- "cache_mb": "auto" (the default) holds every compressed chunk for global shuffle -------

# 75 chunks of 4 MiB: 300 MiB decoded, more than the 256 MiB a cache starts from (zeros, so the
# file is small and decoding cheap).
big = os.path.join(tmp, "big.h5")
with h5py.File(big, "w") as f:
    f.create_dataset("x", data=np.zeros((75 * 64, 8192)), chunks=(64, 8192), compression="gzip",
                     compression_opts=1)
phys = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGESIZE")
if os.environ.get("HFEED_READ_PATH") == "hdf5":
    print("SKIP: cache_mb auto checks (HFEED_READ_PATH=hdf5: H5Dread decodes, not the cache)")
elif phys / 8 >= 300 * 2**20:
    for cache_mb, want_decodes, want_line in ((None, 75, 'cache_mb "auto": 300 MiB'),
                                              (256, None, "cache_mb 256 holds 85% of the 300")):
        lines = Lines()
        logging.getLogger("h5feed").addHandler(lines)
        extra = {} if cache_mb is None else {"cache_mb": cache_mb}
        with loader(files=["big.h5"], fields=[{"name": "x", "dataset": "/x"}], batch_size=64,
                    epochs=1, **extra) as ld:
            rows = sum(len(b) for b in ld)
            decodes = ld.stats().chunk_decodes
        logging.getLogger("h5feed").removeHandler(lines)
        what = f"global shuffle, 300 MiB of chunks, cache_mb {cache_mb or 'auto'}"
        c.check(rows == 75 * 64, f"{what}: {rows} rows")
        c.check(any(want_line in line for line in lines.lines), f"{what}: log {lines.lines}")
        if want_decodes is not None:
            c.check(decodes == want_decodes, f"{what}: {decodes} chunk decodes, want 75")
        else:
            c.check(decodes > 75, f"{what}: {decodes} chunk decodes, more than 75")
    # When they do not all fit, "auto" takes what its limit allows: make the limit fall between
    # 256 and 300 MiB by saying the launcher put that many ranks on this machine.
    ranks = next((r for r in range(1, 4096) if 256 < (phys / 8 / r) // 2**20 < 300), None)
    if ranks is None:
        print("SKIP: cache_mb auto, partial (no rank count puts the limit in 256..300 MiB)")
    else:
        limit_mb = int(phys / 8 / ranks // 2**20)
        lines = Lines()
        logging.getLogger("h5feed").addHandler(lines)
        os.environ["LOCAL_WORLD_SIZE"] = str(ranks)
        try:
            with loader(files=["big.h5"], fields=[{"name": "x", "dataset": "/x"}],
                        batch_size=64, epochs=1) as ld:
                rows = sum(len(b) for b in ld)
        finally:
            del os.environ["LOCAL_WORLD_SIZE"]
        logging.getLogger("h5feed").removeHandler(lines)
        what = f"global shuffle, 300 MiB of chunks, auto, {ranks} local ranks"
        c.check(rows == 75 * 64, f"{what}: {rows} rows")
        c.check(any(f'cache_mb "auto": {limit_mb} MiB for global shuffle, an eighth' in line
                    for line in lines.lines), f"{what}: log {lines.lines}")
        c.check(any(f"cache_mb {limit_mb} holds" in line for line in lines.lines),
                f"{what}: no warning that the chunks do not all fit: {lines.lines}")
else:
    print("SKIP: cache_mb auto checks (an eighth of this machine's memory is under 300 MiB)")

# ---- seek and the chunk caches' foresight --------------------------------------------------
# The caches are told which chunks the coming batches need (chunkcache.h). A seek back must
# start that over from the new position: else the batches up to the old one run without
# foresight, and an epoch decodes about a third more chunks than a fresh loader's (measured by
# dropping the reset). 128 gzip chunks, a cache of a quarter of them, global shuffle.
if os.environ.get("HFEED_READ_PATH") == "hdf5":
    print("SKIP: foresight after seek (HFEED_READ_PATH=hdf5: no chunk cache)")
else:
    seek_h5 = os.path.join(tmp, "seek.h5")
    with h5py.File(seek_h5, "w") as f:
        f.create_dataset("x", data=rng.random((64 * 128, 256)), chunks=(64, 256),
                         compression="gzip", compression_opts=1)
    seek_cfg = {"files": [seek_h5], "fields": [{"name": "x", "dataset": "/x"}], "batch_size": 64,
                "shuffle": "global", "workers": 1, "prefetch": 2, "cache_mb": 4, "epochs": 2}
    with h5feed.Loader(seek_cfg) as ld:
        it = iter(ld.epoch())
        for _ in range(40):
            next(it)
        del it
        before = ld.stats().chunk_decodes
        ld.seek(0, 0)
        rows = sum(len(b) for b in ld.epoch())
        after_seek = ld.stats().chunk_decodes - before
    with h5feed.Loader(seek_cfg) as ld:
        sum(len(b) for b in ld.epoch())
        fresh = ld.stats().chunk_decodes
    c.check(rows == 64 * 128, f"seek back: {rows} rows in the epoch")
    c.check(after_seek <= 1.1 * fresh,
            f"an epoch after seeking back decoded {after_seek} chunks, a fresh one {fresh}")

# ---- the DLPack stream contract, per field (no GPU needed) ----------------------------------

# __dlpack__(stream=...) as DLPack defines it for CUDA: -> (fence on release, cudaStream_t).
for given, want in ((None, (True, None)), (1, (True, None)), (2, (True, 2)),
                    (0x7f3a10, (True, 0x7f3a10)), (-1, (False, None))):
    got = h5feed._consumer_stream(given)
    c.check(got == want, f"__dlpack__(stream={given!r}) means {got}, want {want}")
for given, error in ((0, BufferError), (-2, BufferError), (1.5, TypeError), ("s", TypeError),
                     (True, TypeError)):
    try:
        h5feed._consumer_stream(given)
        c.check(False, f"__dlpack__(stream={given!r}) was accepted")
    except error:
        pass


def check_streams_per_field():
    """Each field's export carries the stream its own __dlpack__ named (not the last one named
    for the batch), -1 exports with no fence, None fences the legacy default stream. The fake
    device's fields pose as CUDA fields; the exports are recorded on their way to the library
    (the fake device ignores stream handles it did not make)."""
    calls = []
    real_on = h5feed._lib.hfeed_batch_export_dlpack_on_stream
    real_plain = h5feed._lib.hfeed_batch_export_dlpack

    def on_stream(handle, field, stream, out):
        calls.append((field, stream))
        return real_on(handle, field, stream, out)

    def plain(handle, field, out):
        calls.append((field, "no fence"))
        return real_plain(handle, field, out)

    h5feed._lib.hfeed_batch_export_dlpack_on_stream = on_stream
    h5feed._lib.hfeed_batch_export_dlpack = plain
    try:
        with loader(device="fake", epochs=1) as ld:
            b = next(iter(ld))
            for f in b._fields:
                f.device = "cuda"
            capsules = [b["x"].__dlpack__(stream=0x5000), b["y"].__dlpack__(stream=0x7000),
                        b["x"].__dlpack__(stream=-1), b["y"].__dlpack__(stream=None),
                        b["x"].__dlpack__(stream=2)]
            del capsules  # never taken: the capsules' destructor runs the deleters
    finally:
        h5feed._lib.hfeed_batch_export_dlpack_on_stream = real_on
        h5feed._lib.hfeed_batch_export_dlpack = real_plain
    want = [(0, 0x5000), (1, 0x7000), (0, "no fence"), (1, None), (0, 2)]
    c.check(calls == want, f"exports per field went to the library as {calls}, want {want}")


check_streams_per_field()

# ---- CUDA, where torch sees a GPU and the library has the backend ----------------------------

def check_cuda(stream):
    """Every batch on the GPU, zero copy, right values. Each step is queued on `stream` (None:
    torch's default stream) behind a slow kernel and not waited for: the tensor is freed and the
    batch given back while the read is still pending, so only the fence on that stream (the
    tensor's deleter fences the stream torch passed to __dlpack__) keeps the next upload from
    overwriting the slot first."""
    seen, pending = [], []
    with loader(device="cuda:0", epochs=1, prefetch=2) as ld:
        c.check(ld.info.device == "cuda", f"cuda: info says {ld.info.device}")
        zero_copy = True
        for b in ld:
            with torch.cuda.stream(stream) if stream is not None else torch.cuda.device(0):
                x = torch.from_dlpack(b["x"])  # passes the current stream to __dlpack__
                zero_copy &= x.is_cuda and x.data_ptr() == b["x"].data_ptr
                torch.cuda._sleep(20_000_000)  # a slow step, queued before the read
                pending.append((x.double().sum(dim=(1, 2)), np.asarray(b.indices)))
                del x
            seen.extend(b.indices)
        torch.cuda.synchronize()
    ok = all(np.allclose(sums.cpu().numpy(),
                         X[idx].astype(np.float32).astype(np.float64).sum(axis=(1, 2)),
                         rtol=1e-12, atol=1e-9) for sums, idx in pending)
    what = "side stream" if stream is not None else "default stream"
    c.check(zero_copy, f"cuda ({what}): torch tensors on the GPU are the slots (no copy)")
    c.check(ok, f"cuda ({what}): values read by delayed kernels are the batch's, not the next")
    c.check(sorted(seen) == list(range(N)), f"cuda ({what}): every sample exactly once")


# HFEED_REQUIRE_GPU=1 (scripts/gpu-check.sh): a check that cannot run is a failure that says
# what is missing, not a SKIP that exits 0.
require_gpu = os.environ.get("HFEED_REQUIRE_GPU") == "1"
has_backend = bool(h5feed._lib.hfeed_features() & 1)  # HFEED_FEATURE_CUDA
if torch is not None and torch.cuda.is_available() and has_backend:
    check_cuda(None)
    check_cuda(torch.cuda.Stream())
else:
    why = ("python3-torch is not installed" if torch is None else
           "this libh5feed has no CUDA backend (built with HFEED_CUDA=OFF or without the "
           "toolkit)" if not has_backend else
           "torch sees no CUDA device: no GPU, or no NVIDIA driver (or one too old for torch's "
           f"CUDA {torch.version.cuda})")
    if require_gpu:
        c.check(False, f"HFEED_REQUIRE_GPU=1 but the CUDA checks cannot run: {why}")
    else:
        print(f"SKIP: CUDA checks ({why})")

if torch is None:
    print("SKIP: torch checks (python3-torch is not installed)")
print(f"test_binding: {c.passed} passed, {c.failed} failed")
sys.exit(1 if c.failed else 0)
