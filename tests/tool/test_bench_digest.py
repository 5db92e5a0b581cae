#!/usr/bin/python3
"""End-to-end check of `h5feed bench` and `h5feed synth` against an independent reader.

Usage: /usr/bin/python3 test_bench_digest.py /path/to/h5feed

Writes small HDF5 files with h5py, runs `h5feed bench CONFIG --json` over them with every
shuffle mode, 1 and 2 workers, and 2 ranks, and compares the digest with one computed here with
numpy: the sum modulo 2^64, over all delivered samples, of the FNV-1a 64 hash of the sample's
output bytes (fields concatenated in config order, C order, little-endian). The sum does not
depend on sample order, so shuffled runs must give the digest of the plain one. It also checks
the values `h5feed synth` writes against the formula documented in h5feed.h (hfeed_synth_value).

Uses only the standard library, numpy and h5py (Debian's python3-numpy, python3-h5py).
Exits non-zero when any check fails.
"""
import json
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np

REQUIRED_KEYS = (
    "samples", "batches", "epochs", "seconds", "samples_per_s", "bytes_out", "gb_per_s",
    "digest", "workers", "memory_bytes", "nan_values", "overflow_values", "device",
    "hdf5_threadsafe",
)


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from toolcheck import M64, Checker, digest_of, hexd, row_hashes, tool_from_argv  # noqa: E402


def run(tool, *args):
    p = subprocess.run([tool, *args], capture_output=True, text=True, timeout=300)
    return p.returncode, p.stdout, p.stderr


class Bench:
    def __init__(self, tool, tmp, checker):
        self.tool = tool
        self.tmp = tmp
        self.c = checker
        self.count = 0

    def run(self, name, config):
        """Writes config, runs bench --json; returns the parsed object or None."""
        self.count += 1
        path = os.path.join(self.tmp, f"cfg_{self.count:02d}_{name}.json")
        with open(path, "w") as f:
            json.dump(config, f, indent=1)
        rc, out, err = run(self.tool, "bench", path, "--json")
        if not self.c.check(rc == 0, f"{name}: bench exit {rc}\nstdout: {out}\nstderr: {err}"):
            return None
        try:
            obj = json.loads(out)
        except ValueError as e:
            self.c.check(False, f"{name}: stdout is not one JSON object ({e}): {out!r}")
            return None
        if not self.c.check(isinstance(obj, dict), f"{name}: JSON is not an object"):
            return None
        missing = [k for k in REQUIRED_KEYS if k not in obj]
        self.c.check(not missing, f"{name}: JSON lacks {missing}")
        return obj

    def expect(self, name, config, digest, samples, batches):
        obj = self.run(name, config)
        if obj is None:
            return None
        self.c.check(obj.get("digest") == hexd(digest),
                     f"{name}: digest {obj.get('digest')} != numpy {hexd(digest)}")
        self.c.check(obj.get("samples") == samples,
                     f"{name}: samples {obj.get('samples')} != {samples}")
        self.c.check(obj.get("batches") == batches,
                     f"{name}: batches {obj.get('batches')} != {batches}")
        self.c.check(obj.get("device") == "cpu", f"{name}: device {obj.get('device')!r}")
        if "workers" in config:
            self.c.check(obj.get("workers") == config["workers"],
                         f"{name}: workers {obj.get('workers')} != {config['workers']}")
        self.c.check(isinstance(obj.get("hdf5_threadsafe"), bool),
                     f"{name}: hdf5_threadsafe is not a bool")
        self.c.check(isinstance(obj.get("memory_bytes"), int) and obj["memory_bytes"] > 0,
                     f"{name}: memory_bytes {obj.get('memory_bytes')!r}")
        return obj


def ceil_div(a, b):
    return -(-a // b)


def make_files(tmp):
    """Writes the test files; returns {name: (x, y)} as stored."""
    rng = np.random.default_rng(1234)
    data = {}

    def write(name, n, x_dtype, y_dtype, **x_opts):
        x = (rng.standard_normal((n, 4, 3)) * 100.0).astype(x_dtype)
        y = rng.integers(-10**9, 10**9, size=n).astype(y_dtype)
        with h5py.File(os.path.join(tmp, name), "w") as f:
            f.create_dataset("x", data=x, **x_opts)
            f.create_dataset("y", data=y)
        data[name] = (x, y)

    # float64 chunked + gzip + shuffle, int64 labels; 1000 rows.
    write("a.h5", 1000, "<f8", "<i8", chunks=(64, 4, 3), compression="gzip",
          compression_opts=4, shuffle=True)
    # Same datasets, another length, contiguous; 357 rows (a + b = 1357, odd).
    write("b.h5", 357, "<f8", "<i8")
    # Big-endian float32 and int64, chunked.
    write("c.h5", 500, ">f4", ">i8", chunks=(50, 4, 3))

    # Special float values: NaN, +-inf, and finite doubles that overflow float32.
    special = np.arange(40, dtype="<f8").reshape(20, 2) * 0.5
    special[3, 0] = np.nan
    special[7, 1] = np.inf
    special[8, 0] = -np.inf
    special[11, 1] = 1e300
    special[12, 0] = -1e300
    special[15, 1] = 3.5e38
    with h5py.File(os.path.join(tmp, "d.h5"), "w") as f:
        f.create_dataset("x", data=special, chunks=(8, 2))
    data["d.h5"] = (special, None)
    return data


def fields(x_dtype="float32", y_dtype="int64"):
    out = [{"name": "x", "dataset": "/x", "dtype": x_dtype}]
    if y_dtype is not None:
        out.append({"name": "y", "dataset": "/y", "dtype": y_dtype})
    return out


OUT_DTYPES = {"float32": "<f4", "float64": "<f8", "int32": "<i4", "int64": "<i8"}


def test_modes(bench, data):
    """Every shuffle mode and worker count gives the digest of the plain file order."""
    xa, ya = data["a.h5"]
    xb, yb = data["b.h5"]
    x = np.concatenate([xa, xb]).astype("<f4")
    y = np.concatenate([ya, yb]).astype("<i8")
    h = row_hashes([x, y])
    n = len(h)
    bs = 64
    for shuffle in ("none", "global", "chunk"):
        for workers in (1, 2):
            epochs = 2 if workers == 2 else 1
            cfg = {"files": ["a.h5", "b.h5"], "fields": fields(), "batch_size": bs,
                   "shuffle": shuffle, "seed": 7, "epochs": epochs, "workers": workers,
                   "prefetch": 3, "device": "cpu"}
            bench.expect(f"{shuffle}_w{workers}", cfg, digest_of(h, times=epochs),
                         n * epochs, ceil_div(n, bs) * epochs)

    # drop_last: in file order the first floor(n / bs) * bs samples are delivered.
    kept = (n // bs) * bs
    cfg = {"files": ["a.h5", "b.h5"], "fields": fields(), "batch_size": bs, "drop_last": True,
           "shuffle": "none", "workers": 2, "device": "cpu"}
    bench.expect("drop_last", cfg, digest_of(h, range(kept)), kept, n // bs)

    # Output dtypes: float64 features, int32 and float64 labels.
    for x_out, y_out in (("float64", "int32"), ("float64", "float64")):
        h2 = row_hashes([np.concatenate([xa, xb]).astype(OUT_DTYPES[x_out]),
                         np.concatenate([ya, yb]).astype(OUT_DTYPES[y_out])])
        cfg = {"files": ["a.h5", "b.h5"], "fields": fields(x_out, y_out), "batch_size": 100,
               "shuffle": "global", "workers": 2, "device": "cpu"}
        bench.expect(f"dtypes_{x_out}_{y_out}", cfg, digest_of(h2), n, ceil_div(n, 100))

    # Field order is config order.
    h3 = row_hashes([y, x])
    cfg = {"files": ["a.h5", "b.h5"],
           "fields": [{"name": "y", "dataset": "/y", "dtype": "int64"},
                      {"name": "x", "dataset": "/x", "dtype": "float32"}],
           "batch_size": bs, "workers": 1, "device": "cpu"}
    bench.expect("field_order", cfg, digest_of(h3), n, ceil_div(n, bs))


def test_ranks(bench, data):
    """Two ranks: with shuffle none the parts are known exactly; shuffled, they add up."""
    xa, ya = data["a.h5"]
    xb, yb = data["b.h5"]
    h = row_hashes([np.concatenate([xa, xb]).astype("<f4"), np.concatenate([ya, yb]).astype("<i8")])
    n = len(h)  # 1357, odd
    bs = 64
    for remainder in ("pad", "drop"):
        part = ceil_div(n, 2) if remainder == "pad" else n // 2
        for rank in (0, 1):
            positions = [(rank * part + i) % n for i in range(part)]
            cfg = {"files": ["a.h5", "b.h5"], "fields": fields(), "batch_size": bs,
                   "shuffle": "none", "workers": 2, "shard": {"rank": rank, "world_size": 2},
                   "shard_remainder": remainder, "device": "cpu"}
            obj = bench.expect(f"rank{rank}_of_2_{remainder}", cfg, digest_of(h, positions),
                               part, ceil_div(part, bs))
            if obj is not None and "padded_per_epoch" in obj:
                want = max(0, (rank + 1) * part - n)
                bench.c.check(obj["padded_per_epoch"] == want,
                              f"rank{rank} {remainder}: padded_per_epoch "
                              f"{obj['padded_per_epoch']} != {want}")

    # Shuffled, an even total: the two ranks' digests add up to the whole file's.
    ha = row_hashes([xa.astype("<f4"), ya.astype("<i8")])
    for shuffle in ("global", "chunk"):
        total = 0
        ok = True
        for rank in (0, 1):
            cfg = {"files": ["a.h5"], "fields": fields(), "batch_size": 48, "shuffle": shuffle,
                   "seed": 3, "epochs": 2, "workers": 2, "shard": {"rank": rank, "world_size": 2},
                   "device": "cpu"}
            obj = bench.run(f"rank{rank}_of_2_{shuffle}", cfg)
            if obj is None:
                ok = False
                continue
            want_batches = 2 * ceil_div(500, 48)
            bench.c.check(obj.get("samples") == 1000 and obj.get("batches") == want_batches,
                          f"rank{rank} {shuffle}: samples {obj.get('samples')} batches "
                          f"{obj.get('batches')}")
            total = (total + int(obj.get("digest", "0"), 16)) & M64
        if ok:
            want = digest_of(ha, times=2)
            bench.c.check(total == want, f"ranks {shuffle}: digests add to {hexd(total)} != "
                                         f"{hexd(want)}")


def test_big_endian(bench, data):
    xc, yc = data["c.h5"]
    n = len(xc)
    for x_out in ("float32", "float64", "native"):
        np_out = "<f4" if x_out == "native" else OUT_DTYPES[x_out]
        h = row_hashes([xc.astype(np_out), yc.astype("<i8")])
        cfg = {"files": ["c.h5"], "fields": fields(x_out, "int64"), "batch_size": 32,
               "shuffle": "chunk", "workers": 2, "device": "cpu"}
        bench.expect(f"big_endian_{x_out}", cfg, digest_of(h), n, ceil_div(n, 32))


def test_special_values(bench, data):
    x, _ = data["d.h5"]
    with np.errstate(over="ignore", invalid="ignore"):
        x32 = x.astype("<f4")
    h = row_hashes([x32])
    cfg = {"files": ["d.h5"], "fields": fields("float32", None), "batch_size": 6,
           "workers": 1, "device": "cpu"}
    obj = bench.expect("special_values", cfg, digest_of(h), len(x), ceil_div(len(x), 6))
    if obj is not None:
        bench.c.check(obj.get("nan_values") == 1, f"special: nan_values {obj.get('nan_values')}")
        bench.c.check(obj.get("overflow_values") == 3,
                      f"special: overflow_values {obj.get('overflow_values')} != 3 "
                      "(1e300, -1e300, 3.5e38)")


def splitmix64(x):
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def synth_values(seed, rows, shape):
    """hfeed_synth_value for every element, as float64, shape (rows, *shape)."""
    per_row = int(np.prod(shape, dtype=np.int64)) if shape else 1
    with np.errstate(over="ignore"):
        r = np.arange(rows, dtype=np.uint64)[:, None]
        e = np.arange(per_row, dtype=np.uint64)[None, :]
        z = splitmix64(np.uint64(seed) ^ (r * np.uint64(per_row) + e))
    v = (z >> np.uint64(11)).astype(np.float64) * 2.0**-53 * 2.0 - 1.0
    return v.reshape((rows, *shape))


SYNTH_CASES = [
    # (dtype, shape text, shape, rows, extra options, stored numpy dtype)
    ("float32", "4x3", (4, 3), 1000,
     ["--chunk-rows", "64", "--gzip", "1", "--shuffle", "--fletcher32", "--seed", "42",
      "--labels", "7"], "<f4"),
    ("float64", "5", (5,), 300, ["--chunk-rows", "0", "--big-endian", "--labels", "0"], ">f8"),
    ("float16", "8", (8,), 257, ["--chunk-rows", "100", "--seed", "9"], "<f2"),
    ("int16", "2x2", (2, 2), 200, ["--chunk-rows", "32", "--gzip", "6", "--seed", "5"], "<i2"),
    ("uint8", "3", (3,), 130, ["--chunk-rows", "16", "--big-endian", "--labels", "3"], "|u1"),
    ("int64", "6", (6,), 90, ["--chunk-rows", "0", "--big-endian", "--seed", "77"], ">i8"),
]


def option(opts, name, default):
    return opts[opts.index(name) + 1] if name in opts else default


def test_synth(bench, tool, tmp):
    c = bench.c
    for dtype, shape_text, shape, rows, opts, stored in SYNTH_CASES:
        path = os.path.join(tmp, f"synth_{dtype}.h5")
        rc, out, err = run(tool, "synth", "--out", path, "--rows", str(rows), "--shape",
                           shape_text, "--dtype", dtype, *opts)
        if not c.check(rc == 0, f"synth {dtype}: exit {rc}\n{out}\n{err}"):
            continue
        c.check(path in out and str(rows) in out and dtype in out,
                f"synth {dtype}: output does not name path, rows and dtype:\n{out}")
        seed = int(option(opts, "--seed", "0"))
        classes = int(option(opts, "--labels", "10"))
        chunk_rows = int(option(opts, "--chunk-rows", "256"))
        with h5py.File(path, "r") as f:
            feats = f["features"]
            c.check(feats.shape == (rows, *shape), f"synth {dtype}: shape {feats.shape}")
            c.check(feats.dtype == np.dtype(stored),
                    f"synth {dtype}: stored dtype {feats.dtype.str} != {stored}")
            want_chunks = None if chunk_rows == 0 else (chunk_rows, *shape)
            c.check(feats.chunks == want_chunks,
                    f"synth {dtype}: chunks {feats.chunks} != {want_chunks}")
            if "--gzip" in opts:
                c.check(feats.compression == "gzip", f"synth {dtype}: not gzip")
            if "--shuffle" in opts:
                c.check(bool(feats.shuffle), f"synth {dtype}: no shuffle filter")
            if "--fletcher32" in opts:
                c.check(bool(feats.fletcher32), f"synth {dtype}: no fletcher32 filter")
            got = feats[...]
            labels = f["labels"][...] if "labels" in f else None
            labels_dtype = f["labels"].dtype if "labels" in f else None

        v = synth_values(seed, rows, shape)
        c.check(bool(np.all((v >= -1.0) & (v < 1.0))), "synth formula: value outside [-1, 1)")
        if np.dtype(stored).kind == "f":
            want = v.astype(stored)
        else:
            want = np.floor((v + 1.0) * 50.0).astype(stored)
        bad = np.argwhere(got != want)
        c.check(bad.size == 0,
                f"synth {dtype}: {len(bad)} values differ from hfeed_synth_value, first at "
                f"{bad[0].tolist() if bad.size else None}: "
                f"{got[tuple(bad[0])] if bad.size else ''} != "
                f"{want[tuple(bad[0])] if bad.size else ''}")
        if classes == 0:
            c.check(labels is None, f"synth {dtype}: /labels written with --labels 0")
        elif c.check(labels is not None, f"synth {dtype}: no /labels"):
            c.check(labels_dtype == np.dtype("<i8") or labels_dtype == np.dtype(">i8"),
                    f"synth {dtype}: labels dtype {labels_dtype}")
            c.check(np.array_equal(labels, np.arange(rows) % classes),
                    f"synth {dtype}: labels are not row % {classes}")

        # The loader delivers the synthetic file as stored ("native") and converted.
        out_fields = [{"name": "features", "dataset": "/features", "dtype": "native"}]
        arrays = [got.astype(np.dtype(stored).newbyteorder("<"))]
        if labels is not None:
            out_fields.append({"name": "labels", "dataset": "/labels", "dtype": "int64"})
            arrays.append(labels.astype("<i8"))
        cfg = {"files": [path], "fields": out_fields, "batch_size": 50, "shuffle": "global",
               "workers": 2, "device": "cpu"}
        bench.expect(f"synth_{dtype}_native", cfg, digest_of(row_hashes(arrays)), rows,
                     ceil_div(rows, 50))
        if np.dtype(stored).kind == "f":
            conv = [{"name": "features", "dataset": "/features", "dtype": "float32"}]
            cfg = {"files": [path], "fields": conv, "batch_size": 64, "shuffle": "chunk",
                   "workers": 2, "device": "cpu"}
            bench.expect(f"synth_{dtype}_float32", cfg,
                         digest_of(row_hashes([got.astype("<f4")])), rows, ceil_div(rows, 64))


def main():
    tool = tool_from_argv()
    checker = Checker()
    with tempfile.TemporaryDirectory(prefix="h5feed_tool_") as tmp:
        data = make_files(tmp)
        bench = Bench(tool, tmp, checker)
        test_modes(bench, data)
        test_ranks(bench, data)
        test_big_endian(bench, data)
        test_special_values(bench, data)
        test_synth(bench, tool, tmp)
    print(f"{checker.passed} passed, {checker.failed} failed")
    return 1 if checker.failed else 0


if __name__ == "__main__":
    sys.exit(main())
