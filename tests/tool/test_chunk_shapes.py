#!/usr/bin/python3
"""Any chunk shape reads back exactly what h5py reads, on the direct path.

Usage: /usr/bin/python3 test_chunk_shapes.py /path/to/h5feed

Writes datasets with h5py whose chunks split each sample (h5py's chunks=True on images: every
sample spans many chunks), on one sample axis or several, with partial edge chunks on every
axis, chunks wider than an axis that may grow, unwritten chunks (the fill value), gzip, shuffle
and fletcher32, both byte orders, each in the index kinds the direct path reads (version 1
B-tree, fixed array, implicit). Each is read by `h5feed bench --json` in every shuffle mode,
with 2 workers (and 1 once), with the default cache and with no cache at all, and
the digest must equal the one computed here from h5py's values (toolcheck.py). The direct path
must have read them (no read through H5Dread), and with shuffle none or a cache that holds every
chunk row, each stored chunk is decoded exactly once per epoch. Under HFEED_READ_PATH=hdf5 (a CI
step) the same values come through H5Dread instead.

Uses only the standard library, numpy and h5py. Exits non-zero when any check fails.
"""
import json
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from toolcheck import Checker, digest_of, hexd, row_hashes, tool_from_argv  # noqa: E402

# name: shape, chunks, stored dtype, create_dataset options, libver, rows written (None: all)
CASES = {
    "image-gzip": ((300, 20, 12, 3), (64, 8, 8, 1), "u1", {"compression": "gzip"}, "earliest",
                   None),
    "image-plain": ((300, 20, 12, 3), (64, 8, 8, 1), "u1", {}, "earliest", None),
    "image-farray": ((300, 20, 12, 3), (64, 8, 8, 1), "u1", {"compression": "gzip"}, "latest",
                     None),
    "one-axis-f32-shuffle": ((250, 33), (40, 10), "<f4",
                             {"compression": "gzip", "shuffle": True}, "earliest", None),
    "two-axes-be-fletcher": ((130, 9, 7), (16, 4, 3), ">f8",
                             {"compression": "gzip", "fletcher32": True}, "earliest", None),
    "wider-than-axis": ((100, 3), (10, 4), ">i4", {"maxshape": (None, None)}, "earliest", None),
    "unwritten-chunks": ((200, 10, 6), (32, 4, 4), "<i2",
                         {"compression": "gzip", "fillvalue": 7}, "earliest", (40, 150)),
    "implicit": ((90, 10, 6), (16, 4, 4), "<u2", {"implicit": True}, "latest", None),
    "big-chunk-row": ((64, 256, 64), (64, 16, 16), "<f4", {"compression": "gzip"}, "earliest",
                      None),
}


def write_case(path, shape, chunks, dtype, opts, libver, rows, rng):
    """Writes /x (the case) and /y (int64 row numbers, contiguous); returns x as h5py reads it."""
    data = rng.integers(0, 250, size=shape).astype(dtype)
    opts = dict(opts)
    implicit = opts.pop("implicit", False)
    with h5py.File(path, "w", libver=libver) as f:
        if implicit:  # fixed size, no filter, early allocation: the implicit index
            dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
            dcpl.set_chunk(chunks)
            dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
            h5py.h5d.create(f.id, b"x", h5py.h5t.py_create(data.dtype),
                            h5py.h5s.create_simple(shape), dcpl=dcpl)
            d = f["x"]
        else:
            d = f.create_dataset("x", shape=shape, dtype=dtype, chunks=chunks, **opts)
        lo, hi = rows if rows is not None else (0, shape[0])
        d[lo:hi] = data[lo:hi]
        f.create_dataset("y", data=np.arange(shape[0], dtype="<i8"))
    with h5py.File(path, "r") as f:
        return f["x"][...]


def main():
    tool = tool_from_argv()
    c = Checker()
    tmp = tempfile.mkdtemp(prefix="h5feed-shapes-")
    rng = np.random.default_rng(12)
    hdf5_path = os.environ.get("HFEED_READ_PATH") == "hdf5"
    for name, (shape, chunks, dtype, opts, libver, rows) in CASES.items():
        path = os.path.join(tmp, name + ".h5")
        x = write_case(path, shape, chunks, dtype, opts, libver, rows, rng)
        n = shape[0]
        want = hexd(digest_of(row_hashes([x.astype("<f4").reshape(n, -1),
                                          np.arange(n, dtype="<i8")])))
        slabs = (n + chunks[0] - 1) // chunks[0]
        per_slab = int(np.prod([(shape[d] + chunks[d] - 1) // chunks[d]
                                for d in range(1, len(shape))]))
        # 2 workers in every mode and cache (the threads share the chunk rows they decode),
        # 1 worker once (CI runs this under ThreadSanitizer too: keep it short).
        runs = [(m, 2, cache) for m in ("none", "chunk", "global") for cache in ("auto", 0)]
        for shuffle, workers, cache in runs + [("global", 1, "auto")]:
            label = f"{name}, shuffle {shuffle}, {workers} workers, cache_mb {cache}"
            cfg = {"files": [path],
                   "fields": [{"name": "x", "dataset": "/x", "dtype": "float32"},
                              {"name": "y", "dataset": "/y", "dtype": "int64"}],
                   "batch_size": 24, "shuffle": shuffle, "workers": workers,
                   "cache_mb": cache, "seed": 3, "device": "cpu"}
            cfg_path = os.path.join(tmp, "cfg.json")
            with open(cfg_path, "w") as f:
                json.dump(cfg, f)
            p = subprocess.run([tool, "bench", cfg_path, "--json"], capture_output=True,
                               text=True, timeout=300)
            if not c.check(p.returncode == 0, f"{label}: exit {p.returncode}: {p.stderr}"):
                continue
            o = json.loads(p.stdout)
            c.check(o["digest"] == want, f"{label}: digest {o['digest']}, h5py {want}")
            c.check(o["samples"] == n, f"{label}: {o['samples']} samples of {n}")
            if hdf5_path:
                c.check(o["fallback_reads"] > 0, f"{label}: no H5Dread under hdf5")
                continue
            c.check(o["fallback_reads"] == 0,
                    f"{label}: {o['fallback_reads']} reads through H5Dread")
            if cache == "auto" and shuffle in ("none", "global"):
                c.check(o["chunk_decodes"] == slabs * per_slab,
                        f"{label}: {o['chunk_decodes']} chunks decoded, "
                        f"{slabs} x {per_slab} in the file")
            if cache == 0:
                c.check(o["chunk_decodes"] >= slabs * per_slab,
                        f"{label}: too few decodes")
    print(f"{c.passed} passed, {c.failed} failed")
    sys.exit(1 if c.failed else 0)


if __name__ == "__main__":
    main()
