#!/usr/bin/python3
"""`h5feed convert` end to end, against h5py and numpy as the independent reference.

Usage: /usr/bin/python3 test_convert.py /path/to/h5feed

Inputs are written with h5py (contiguous, chunked, gzip+shuffle; little- and big-endian;
float64, float32 and int16; several sample shapes). Each run's output is read back with h5py and
compared with numpy: casts exactly, standardisation (the mean/std attributes against numpy's
float64 mean/std, values within float32 rounding), scale/offset exactly in float64, the
"scale"/"offset" attributes (exact, per column, absent for the identity) and that the attributes
alone invert the transform within the output dtype's rounding; input order
with shuffle "none", a permutation of the input with shuffle "global"; the output's chunking and
filters as configured. Then: a SIGKILL and a SIGINT mid-run leave nothing under the output path
(and SIGINT removes the temporary file), exit codes 0/1/2, --help, and messages that name the
bad key or the missing file. Exits non-zero on failure.
"""
import glob
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from toolcheck import Checker, tool_from_argv  # noqa: E402  (the shared check counter)

ROWS_A, ROWS_B = 300, 157  # two input files; the config concatenates them


def main():
    tool = tool_from_argv()
    c = Checker()

    def run(*args, timeout=120):
        p = subprocess.run([tool, *args], capture_output=True, text=True, timeout=timeout)
        return p.returncode, p.stdout, p.stderr

    with tempfile.TemporaryDirectory(prefix="h5feed_convert_") as tmp:
        rng = np.random.default_rng(5)
        # (dataset, stored dtype, sample shape, h5py creation options)
        layouts = {
            "contig_le_f64": ("<f8", (3,), {}),
            "chunk_be_f64": (">f8", (2, 3), {"chunks": (16, 2, 3)}),
            "gzip_be_f32": (">f4", (5,), {"chunks": (40, 5), "compression": "gzip",
                                          "shuffle": True}),
            "gzip_le_i16": ("<i2", (4,), {"chunks": (64, 4), "compression": "gzip",
                                          "compression_opts": 6, "shuffle": True}),
            "contig_be_i16": (">i2", (), {}),
            "offset_le_f64": ("<f8", (2,), {"chunks": (7, 2)}),
        }
        data = {}
        for name, (dt, shape, _) in layouts.items():
            n = ROWS_A + ROWS_B
            if dt.endswith("i2"):
                data[name] = rng.integers(-30000, 30000, size=(n, *shape)).astype(dt)
            elif name.startswith("offset"):
                # std 1e-3 on top of 1e8: E[x^2] - E[x]^2 would lose every digit here.
                data[name] = (1e8 + rng.normal(0.0, 1e-3, size=(n, *shape))).astype(dt)
            else:
                # A large offset makes a naive sum-of-squares variance visibly wrong.
                data[name] = (rng.normal(1000.0, 3.0, size=(n, *shape))).astype(dt)
        for fname, lo, hi in (("a.h5", 0, ROWS_A), ("b.h5", ROWS_A, ROWS_A + ROWS_B)):
            with h5py.File(os.path.join(tmp, fname), "w") as f:
                for name, (dt, shape, opts) in layouts.items():
                    f.create_dataset(name, data=data[name][lo:hi], **opts)

        def config(name, obj):
            path = os.path.join(tmp, name)
            with open(path, "w") as f:
                f.write(obj if isinstance(obj, str) else json.dumps(obj))
            return path

        def convert(cfg_name, cfg, code=0):
            path = config(cfg_name, cfg)
            rc, out, err = run("convert", path)
            c.check(rc == code, f"convert {cfg_name}: exit {rc}, wanted {code}\n{out}\n{err}")
            c.check("Sanitizer" not in err and "runtime error" not in err,
                    f"convert {cfg_name}: sanitizer report:\n{err}")
            return rc, out, err

        base = {"files": ["a.h5", "b.h5"], "batch_size": 64, "workers": 2, "device": "cpu"}

        # 1. Casts: exact, input order, every layout and byte order.
        fields = []
        for name, (dt, _, _) in layouts.items():
            fields.append({"name": f"{name}_f32", "dataset": f"/{name}", "dtype": "float32"})
            fields.append({"name": f"{name}_f64", "dataset": f"/{name}", "dtype": "float64"})
            if dt.endswith("i2"):
                fields.append({"name": f"{name}_i64", "dataset": f"/{name}", "dtype": "int64"})
            fields.append({"name": f"{name}_nat", "dataset": f"/{name}", "dtype": "native"})
        rc, out, _ = convert("casts.json", dict(base, fields=fields,
                                                output={"path": "casts.h5"}))
        c.check("457 samples" in out and "MB/s" in out, f"summary line: {out!r}")
        with h5py.File(os.path.join(tmp, "casts.h5"), "r") as f:
            c.check(sorted(f.keys()) == sorted(x["name"] for x in fields),
                    f"datasets {sorted(f.keys())}")
            for fd in fields:
                src = data[fd["dataset"][1:]]
                out_types = {"float32": "<f4", "float64": "<f8", "int64": "<i8"}
                if fd["dtype"] == "native":
                    want = src.astype(src.dtype.newbyteorder("="))
                else:
                    want = src.astype(out_types[fd["dtype"]])
                got = f[fd["name"]]
                c.check(got.shape == want.shape, f"{fd['name']}: shape {got.shape} != {want.shape}")
                c.check(got.dtype == want.dtype.newbyteorder("="),
                        f"{fd['name']}: dtype {got.dtype} != {want.dtype}")
                c.check(np.array_equal(got[...], want), f"{fd['name']}: values differ")
                c.check(got.compression is None and not got.shuffle,
                        f"{fd['name']}: filters {got.compression} {got.shuffle}")

        # 2. Standardisation and scale/offset, gzip output with shuffle filter and chunk_rows.
        fields = [
            {"name": "z64", "dataset": "/chunk_be_f64", "dtype": "float64",
             "normalize": "standard"},
            {"name": "z32", "dataset": "/gzip_be_f32", "normalize": "standard"},
            {"name": "zi", "dataset": "/gzip_le_i16", "normalize": "standard",
             "scale": [1, 2, 3, 4], "offset": 0.5},
            {"name": "so", "dataset": "/contig_be_i16", "dtype": "float64", "scale": -0.25,
             "offset": 10},
            {"name": "so32", "dataset": "/contig_le_f64", "scale": [2, 0.5, -1],
             "offset": [1, 2, 3]},
            {"name": "zbig", "dataset": "/offset_le_f64", "dtype": "float64",
             "normalize": "standard"},
            # Only an offset, on a (2, 3) sample: "scale" is stored too, as 6 ones.
            {"name": "zoff", "dataset": "/chunk_be_f64", "normalize": "standard", "offset": -3},
            # Scale 1 and offset 0, given: the identity, so neither is stored.
            {"name": "ident", "dataset": "/contig_le_f64", "dtype": "float64", "scale": 1,
             "offset": [0, 0, 0]},
        ]
        convert("norm.json", dict(base, fields=fields, shuffle="none",
                                  output={"path": "norm.h5", "chunk_rows": 50,
                                          "compression": "gzip", "gzip_level": 3,
                                          "shuffle": True}))
        with h5py.File(os.path.join(tmp, "norm.h5"), "r") as f:
            for fd in fields:
                d = f[fd["name"]]
                c.check(d.chunks is not None and d.chunks[0] == 50,
                        f"{fd['name']}: chunks {d.chunks}")
                c.check(d.compression == "gzip" and d.compression_opts == 3 and d.shuffle,
                        f"{fd['name']}: filters {d.compression} {d.compression_opts} {d.shuffle}")
                x = data[fd["dataset"][1:]].astype(np.float64)
                cols = x.reshape(len(x), -1)
                if fd.get("normalize") == "standard":
                    # Reference: exact rational arithmetic per column (math.fsum for the mean,
                    # statistics.pstdev for the population std), then numpy as a sanity check.
                    mean = np.array([math.fsum(cols[:, j].tolist()) / len(cols)
                                     for j in range(cols.shape[1])])
                    std = np.array([statistics.pstdev(cols[:, j].tolist())
                                    for j in range(cols.shape[1])])
                    c.check("mean" in d.attrs and "std" in d.attrs,
                            f"{fd['name']}: attrs {dict(d.attrs)}")
                    if "mean" not in d.attrs:
                        continue
                    c.check(d.attrs["mean"].dtype == np.float64, f"{fd['name']}: mean dtype")
                    c.check(bool(np.all(np.abs(d.attrs["mean"] - mean)
                                        <= 1e-14 * np.abs(cols).max(axis=0))),
                            f"{fd['name']}: mean {d.attrs['mean']!r} vs exact {mean!r}")
                    c.check(np.allclose(d.attrs["std"], std, rtol=1e-9, atol=0),
                            f"{fd['name']}: std {d.attrs['std']!r} vs exact {std!r}")
                    c.check(d.attrs["mean"].shape == (cols.shape[1],) and
                            d.attrs["std"].shape == (cols.shape[1],),
                            f"{fd['name']}: mean/std shapes {d.attrs['mean'].shape}")
                    c.check(np.allclose(d.attrs["mean"], cols.mean(axis=0), rtol=1e-13, atol=0)
                            and np.allclose(d.attrs["std"], cols.std(axis=0), rtol=1e-6, atol=0),
                            f"{fd['name']}: mean/std far from numpy's")
                    # Rounding the mean to float64 moves (x - mean) / std by up to an ulp of the
                    # mean over std: tiny, except for data far from 0 with a small spread.
                    slack = 2 * np.spacing(np.abs(mean)) / std
                    y = (cols - mean) / std
                else:
                    c.check("mean" not in d.attrs, f"{fd['name']}: unexpected attrs")
                    slack = np.zeros(cols.shape[1])
                    y = cols
                scale = np.asarray(fd.get("scale", 1.0))
                y = y * scale + np.asarray(fd.get("offset", 0.0))
                slack = (slack * np.abs(scale)).reshape(-1) * np.ones(cols.shape[1])
                y = y.reshape(x.shape)
                slack = np.broadcast_to(slack, cols.shape).reshape(x.shape)
                got = d[...]
                if d.dtype == np.float64 and fd.get("normalize") != "standard":
                    c.check(np.array_equal(got, y), f"{fd['name']}: float64 scale/offset not exact")
                elif d.dtype == np.float64:
                    err = np.abs(got - y)
                    c.check(bool(np.all(err <= np.abs(y) * 1e-12 + 1e-12 + slack)),
                            f"{fd['name']}: max error {err.max()}")
                else:
                    # One float32 rounding of a float64 result (plus float64 noise in mean/std).
                    err = np.abs(got.astype(np.float64) - y)
                    tol = np.abs(y) * 2.0 ** -23 + 1e-6 + slack
                    c.check(bool(np.all(err <= tol)), f"{fd['name']}: max error {err.max()}")
                check_affine_attrs(c, fd, d, cols)

        # 3. shuffle "global": the output is a permutation of the input rows, each exactly once;
        #    contiguous output (chunk_rows 0). Sample rows are told apart by an index field.
        with h5py.File(os.path.join(tmp, "idx.h5"), "w") as f:
            f.create_dataset("i", data=np.arange(1000, dtype="<i8"))
            f.create_dataset("v", data=np.arange(3000, dtype=">f4").reshape(1000, 3) * 0.5,
                             chunks=(100, 3), compression="gzip")
        convert("perm.json", {"files": ["idx.h5"], "batch_size": 96, "shuffle": "global",
                              "seed": 9, "epochs": 3,
                              "fields": [{"name": "i", "dataset": "/i", "dtype": "int64"},
                                         {"name": "v", "dataset": "/v", "dtype": "float64"}],
                              "output": {"path": "perm.h5", "chunk_rows": 0}})
        with h5py.File(os.path.join(tmp, "perm.h5"), "r") as f:
            i, v = f["i"][...], f["v"][...]
            c.check(f["i"].chunks is None, f"chunk_rows 0: chunks {f['i'].chunks}")
            c.check(len(i) == 1000 and sorted(i.tolist()) == list(range(1000)),
                    "shuffled output is not a permutation of the input (one epoch)")
            c.check(not np.array_equal(i, np.arange(1000)), "shuffle global kept the input order")
            c.check(np.array_equal(v, np.arange(3000, dtype=np.float64).reshape(1000, 3)[i] * 0.5),
                    "rows of two fields do not match sample for sample")

        # 4. SIGKILL mid-run: nothing under the final name. batch_size 1 makes the run slow
        #    (one write per sample) without a big file.
        n_slow = 1000000
        with h5py.File(os.path.join(tmp, "slow.h5"), "w") as f:
            f.create_dataset("x", data=np.arange(n_slow, dtype="<f4"))
        slow = {"files": ["slow.h5"], "batch_size": 1, "prefetch": 2, "workers": 1,
                "device": "cpu",
                "fields": [{"name": "x", "dataset": "/x"}],
                "output": {"path": "slow_out.h5", "chunk_rows": 64}}
        slow_path = config("slow.json", slow)
        final = os.path.join(tmp, "slow_out.h5")

        def start_and_wait_for_tmp():
            p = subprocess.Popen([tool, "convert", slow_path], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
            deadline = time.time() + 30
            while time.time() < deadline and not glob.glob(final + ".tmp.*") and p.poll() is None:
                time.sleep(0.01)
            time.sleep(0.2)  # well inside the run: writes are under way
            return p

        p = start_and_wait_for_tmp()
        running = p.poll() is None
        c.check(running, "slow convert finished before it could be killed; make it slower")
        p.kill()
        p.communicate(timeout=30)
        c.check(not os.path.exists(final), "SIGKILL mid-run left a file under the final name")
        for leftover in glob.glob(final + ".tmp.*"):
            os.unlink(leftover)  # a killed process cannot clean up; that is the documented cost

        p = start_and_wait_for_tmp()
        c.check(p.poll() is None, "slow convert finished before SIGINT")
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=30)
        c.check(p.returncode != 0, f"SIGINT: exit {p.returncode}")
        c.check(p.returncode == -signal.SIGINT, f"SIGINT: not killed by SIGINT: {p.returncode}")
        c.check("interrupted by SIGINT" in err, f"SIGINT message: {err!r}")
        c.check(not os.path.exists(final), "SIGINT left a file under the final name")
        c.check(not glob.glob(final + ".tmp.*"), "SIGINT left the temporary file")

        # An existing output is replaced only by a complete file: the old one survives a kill.
        with open(final, "w") as f:
            f.write("old")
        p = start_and_wait_for_tmp()
        p.send_signal(signal.SIGTERM)
        p.communicate(timeout=30)
        with open(final) as f:
            c.check(f.read() == "old", "SIGTERM mid-run changed the existing output")
        c.check(p.returncode == -signal.SIGTERM, f"SIGTERM: exit {p.returncode}")

        # 5. --help, exit codes and messages.
        rc, out, _ = run("convert", "--help")
        c.check(rc == 0 and "Usage: h5feed convert" in out, f"--help: {rc} {out!r}")
        c.check("Rechunking" in out and '"output": {"chunk_rows": N}' in out,
                f"--help says how to rechunk: {out!r}")
        rc, out, _ = run("--help")
        c.check("convert" in out, "h5feed --help lacks convert")
        rc, _, err = run("convert")
        c.check(rc == 2 and "CONFIG" in err, f"no CONFIG: {rc} {err!r}")
        rc, _, err = run("convert", slow_path, "--bogus")
        c.check(rc == 2 and "--bogus" in err, f"bad option: {rc} {err!r}")
        rc, _, err = run("convert", os.path.join(tmp, "nope.json"))
        c.check(rc == 2 and "nope.json" in err, f"missing config: {rc} {err!r}")
        bad = [
            ("no_output.json", {k: v for k, v in slow.items() if k != "output"},
             "output: required by convert"),
            ("bad_level.json", dict(slow, output={"path": "o.h5", "compression": "gzip",
                                                  "gzip_level": 12}), "output.gzip_level"),
            ("bad_norm.json", dict(slow, fields=[{"name": "x", "dataset": "/x", "dtype": "int64",
                                                  "normalize": "standard"}]),
             "fields[0].normalize"),
            ("bad_scale.json", dict(slow, fields=[{"name": "x", "dataset": "/x",
                                                   "scale": [1, 2]}]), "fields[0].scale"),
            ("cuda.json", dict(slow, device="cuda:0"), "device: convert writes from host memory"),
            ("onto_input.json", dict(slow, output={"path": slow["files"][0]}),
             "is the input file"),
        ]
        for name, cfg, needle in bad:
            rc, _, err = convert(name, cfg, code=2)
            # Log lines ("h5feed: ...") may come first; the error line names the key.
            c.check(any(x.startswith("h5feed convert: ") and needle in x
                        for x in err.splitlines()),
                    f"{name}: message lacks {needle!r}: {err!r}")
        rc, _, err = convert("missing_input.json", dict(slow, files=["absent.h5"],
                                                         output={"path": "m.h5"}), code=1)
        c.check("absent.h5" in err, f"missing input not named: {err!r}")
        c.check(not os.path.exists(os.path.join(tmp, "m.h5")), "failed run wrote its output")
        rc, _, err = convert("bad_dir.json", dict(slow, output={"path": "no/such/dir/o.h5"}),
                             code=1)
        c.check("no/such/dir/o.h5" in err and "No such file or directory" in err,
                f"missing output folder not named: {err!r}")
        left = glob.glob(os.path.join(tmp, "**", "*.tmp.*"), recursive=True)
        c.check(not left, f"temporary files left: {left}")

    print(f"test_convert: {c.passed} checks passed, {c.failed} failed")
    return 1 if c.failed else 0


def check_affine_attrs(c, fd, d, cols):
    """The "scale"/"offset" attributes of output dataset d (field fd of the config, input rows
    cols as (samples, columns) float64): one float64 per column with the configured values, only
    when they are not 1 and 0; and the four attributes undo the transform with numpy."""
    name, ncols = fd["name"], cols.shape[1]
    want_scale = np.broadcast_to(np.asarray(fd.get("scale", 1.0), np.float64), (ncols,))
    want_offset = np.broadcast_to(np.asarray(fd.get("offset", 0.0), np.float64), (ncols,))
    identity = bool(np.all(want_scale == 1.0) and np.all(want_offset == 0.0))
    if identity:
        c.check("scale" not in d.attrs and "offset" not in d.attrs,
                f"{name}: identity scale/offset stored: {dict(d.attrs)}")
    else:
        for key, want in (("scale", want_scale), ("offset", want_offset)):
            got = d.attrs.get(key)
            if not c.check(got is not None, f"{name}: no {key!r} attribute: {dict(d.attrs)}"):
                return
            c.check(got.dtype == np.float64 and got.shape == (ncols,),
                    f"{name}: {key} is {got.dtype} {got.shape}, wanted float64 ({ncols},)")
            c.check(np.array_equal(got, want), f"{name}: {key} {got!r} != configured {want!r}")
    # Invert from the file alone: an absent attribute stands for its identity.
    mean = d.attrs.get("mean", np.zeros(ncols))
    std = d.attrs.get("std", np.ones(ncols))
    scale = d.attrs.get("scale", np.ones(ncols))
    offset = d.attrs.get("offset", np.zeros(ncols))
    y = d[...].astype(np.float64).reshape(len(cols), -1)
    x = (y - offset) / scale * std + mean
    # One rounding of y to the output dtype, carried back through the inverse; plus float64
    # noise in the inverse itself.
    eps = 2.0 ** -23 if d.dtype == np.float32 else 2.0 ** -50
    tol = (np.abs(y) + np.abs(offset)) * eps / np.abs(scale) * std + \
        (np.abs(cols) + np.abs(mean)) * 2.0 ** -50
    err = np.abs(x - cols)
    c.check(bool(np.all(err <= tol)),
            f"{name}: (y - offset) / scale * std + mean is off by {err.max()} "
            f"(tolerance {tol.min()}..{tol.max()})")


if __name__ == "__main__":
    sys.exit(main())
