#!/usr/bin/python3
"""h5feed inspect: its report on files of known layout, its cost model against the real loader,
its warnings, and its exit codes.

Usage: /usr/bin/python3 test_inspect.py /path/to/h5feed

Files are written with h5py (contiguous, chunked, gzip + shuffle + fletcher32, big-endian,
integer types, lzf, chunks that split samples, strings, compounds, scalars, links), and every
value the report gives is compared with what h5py says of the same file. The model's predicted
chunk decodes per epoch are compared with what `h5feed bench --json` counts (chunk_decodes) on
the same config: within TOLERANCE with one worker (the model's assumption, docs/inspect.md), and
where the cache fits a window or every chunk, exactly. A file given both as FILE and by the
config (by any spelling) is listed once, with the same field figures as the config alone.
Exits non-zero on failure.
"""
import json
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from toolcheck import Checker, tool_from_argv  # noqa: E402  (the shared check counter)

# Predicted vs measured chunk decodes, one worker: the model in docs/inspect.md.
TOLERANCE = 0.10


def main():
    tool = tool_from_argv()
    c = Checker()

    # scripts/test.sh repeats the suite with HFEED_READ_PATH=hdf5, which turns the loader's
    # direct path off; the model is checked against the direct path, which the config asks for.
    env = {k: v for k, v in os.environ.items() if k != "HFEED_READ_PATH"}

    def run(*args, cwd=None):
        p = subprocess.run([tool, *args], capture_output=True, text=True, timeout=120, env=env,
                           cwd=cwd)
        c.check("Sanitizer" not in p.stderr and "runtime error" not in p.stderr,
                f"h5feed {' '.join(args)}: sanitizer report:\n{p.stderr}")
        return p.returncode, p.stdout, p.stderr

    def expect(args, code, out_has=(), err_has=()):
        rc, out, err = run(*args)
        label = " ".join(["h5feed", *args])
        c.check(rc == code, f"{label}: exit {rc}, wanted {code}\nstdout: {out}\nstderr: {err}")
        for s in out_has:
            c.check(s in out, f"{label}: stdout lacks {s!r}:\n{out}")
        for s in err_has:
            c.check(s in err, f"{label}: stderr lacks {s!r}:\n{err}")
        if code != 0:
            c.check(err.startswith("h5feed inspect: ") or err.startswith("h5feed: "),
                    f"{label}: stderr does not start with 'h5feed inspect: ':\n{err}")
        return rc, out, err

    def report(*args, cwd=None):
        rc, out, err = run("inspect", *args, "--json", cwd=cwd)
        if not c.check(rc == 0, f"inspect {args}: exit {rc}\n{err}"):
            return None
        try:
            return json.loads(out)
        except ValueError as e:
            c.check(False, f"inspect {args}: not JSON ({e}):\n{out}")
            return None

    # --help and usage errors.
    expect(["inspect", "--help"], 0, out_has=["Usage: h5feed inspect", "--config", "--json"])
    expect(["help", "inspect"], 0, out_has=["Usage: h5feed inspect"])
    expect(["--help"], 0, out_has=["inspect"])
    expect(["inspect"], 2, err_has=["missing FILE"])
    expect(["inspect", "--frobnicate", "x.h5"], 2, err_has=["--frobnicate"])
    expect(["inspect", "--config"], 2, err_has=["--config"])

    with tempfile.TemporaryDirectory(prefix="h5feed_inspect_") as tmp:
        known = os.path.join(tmp, "known.h5")
        write_known(known)
        check_known(c, report, expect, known)
        check_errors(c, expect, tmp, known)
        check_config(c, report, tmp)
        check_twice(c, report, run, tmp, known)
        check_model(c, report, run, tmp)
        check_model_two_filtered(c, report, run, tmp)

    print(f"{c.passed} checks passed, {c.failed} failed")
    return 1 if c.failed else 0


def write_known(path):
    rng = np.random.default_rng(1)
    with h5py.File(path, "w") as f:
        f.create_dataset("contig", data=np.arange(40, dtype="<f8").reshape(10, 4))
        f.create_dataset("gz", data=rng.random((1000, 16)), chunks=(50, 16), compression="gzip",
                         compression_opts=4, shuffle=True, fletcher32=True)
        f.create_dataset("be", data=np.arange(10, dtype=">i4"))
        f.create_dataset("u8", data=np.arange(10, dtype="u1"))
        f.create_dataset("i16", data=np.arange(12, dtype="<i2").reshape(6, 2), chunks=(3, 2))
        f.create_dataset("f32be", data=np.ones((8, 3), dtype=">f4"), chunks=(4, 3),
                         compression="gzip", compression_opts=1)
        f.create_dataset("split", data=np.zeros((10, 8, 8), dtype="<f4"), chunks=(5, 4, 8))
        f.create_dataset("lzf", data=np.zeros((100, 4)), chunks=(10, 4), compression="lzf")
        f.create_dataset("scalar", data=3.5)
        f.create_dataset("strs", data=np.array([b"a", b"b"]))
        f.create_dataset("cmp", data=np.zeros(3, dtype=[("a", "<i4"), ("b", "<f8")]))
        f.create_group("g/h").create_dataset("deep", data=np.arange(3, dtype="<i8"))
        f["soft"] = h5py.SoftLink("/gz")
        f["ext"] = h5py.ExternalLink("other.h5", "/x")
        f["typ"] = np.dtype("<f4")


FILTER_NAMES = {1: "deflate", 2: "shuffle", 3: "fletcher32", 32000: "lzf"}


def check_known(c, report, expect, path):
    r = report(path)
    if r is None:
        return
    by_path = {d["path"]: d for d in r["datasets"]}
    want = ["/be", "/cmp", "/contig", "/ext", "/f32be", "/g/h/deep", "/gz", "/i16", "/lzf",
            "/scalar", "/soft", "/split", "/strs", "/typ", "/u8"]
    c.check(sorted(by_path) == want, f"inspect lists {sorted(by_path)}, wanted {want}")
    c.check(all(d["file"] == path for d in r["datasets"]), "every dataset names its file")
    c.check(r["config"] is None and r["fields"] == [], "no config: no config, no fields")

    with h5py.File(path, "r") as f:
        for name in ["be", "contig", "f32be", "g/h/deep", "gz", "i16", "lzf", "split", "u8"]:
            ds = f[name]
            d = by_path.get("/" + name)
            if not c.check(d is not None and d["skipped"] is None, f"/{name} is described"):
                continue
            label = f"/{name}"
            c.check(d["shape"] == list(ds.shape), f"{label}: shape {d['shape']} != {ds.shape}")
            c.check(d["typestr"] == ds.dtype.str, f"{label}: typestr {d['typestr']} != "
                                                  f"{ds.dtype.str}")
            c.check(d["dtype"] == ds.dtype.newbyteorder("=").name,
                    f"{label}: dtype {d['dtype']} != {ds.dtype.name}")
            order = "big" if ds.dtype.byteorder == ">" else "little"
            c.check(d["byte_order"] == order, f"{label}: byte order {d['byte_order']}")
            layout = "chunked" if ds.chunks else "contiguous"
            c.check(d["layout"] == layout, f"{label}: layout {d['layout']} != {layout}")
            chunk_bytes = int(np.prod(ds.chunks)) * ds.dtype.itemsize if ds.chunks else 0
            c.check(d["chunk"] == (list(ds.chunks) if ds.chunks else None),
                    f"{label}: chunk {d['chunk']} != {ds.chunks}")
            c.check(d["chunk_bytes"] == chunk_bytes,
                    f"{label}: chunk_bytes {d['chunk_bytes']} != {chunk_bytes}")
            c.check(d["storage_bytes"] == ds.id.get_storage_size(),
                    f"{label}: storage_bytes {d['storage_bytes']} != {ds.id.get_storage_size()}")
            c.check(d["data_bytes"] == ds.size * ds.dtype.itemsize, f"{label}: data_bytes")
            dcpl = ds.id.get_create_plist()
            filters = [dcpl.get_filter(i) for i in range(dcpl.get_nfilters())]
            c.check([x["id"] for x in d["filters"]] == [x[0] for x in filters],
                    f"{label}: filter ids {d['filters']} != {filters}")
            for got, (fid, _, params, _) in zip(d["filters"], filters):
                c.check(got["name"] == FILTER_NAMES.get(fid, got["name"]),
                        f"{label}: filter {fid} named {got['name']}")
                c.check(got["params"] == list(params)[:8],
                        f"{label}: filter {fid} params {got['params']} != {params}")
                c.check(got["direct"] == (fid in (1, 2, 3)), f"{label}: filter {fid} direct")

    gz = by_path["/gz"]
    c.check([x["name"] for x in gz["filters"]] == ["shuffle", "deflate", "fletcher32"],
            f"/gz filters {gz['filters']}")
    c.check(gz["filters"][1]["params"][:1] == [4], "/gz deflate level 4")
    c.check(gz["direct"] is True and gz["slow_reason"] is None, "/gz: the direct path reads it")
    for name in ["/contig", "/be", "/u8", "/i16", "/f32be", "/g/h/deep"]:
        c.check(by_path[name]["direct"] is True, f"{name}: the direct path reads it")
    c.check(by_path["/lzf"]["direct"] is False and "32000" in by_path["/lzf"]["slow_reason"],
            f"/lzf: H5Dread because of filter 32000: {by_path['/lzf']}")
    c.check(by_path["/split"]["direct"] is True and by_path["/split"]["slow_reason"] is None,
            f"/split: the direct path reads chunks that split samples: {by_path['/split']}")

    skipped = {p: by_path[p]["skipped"] or "" for p in ["/strs", "/cmp", "/scalar", "/soft",
                                                        "/ext", "/typ"]}
    c.check(skipped["/strs"].startswith("not a numeric dataset") and "string" in skipped["/strs"],
            f"/strs skipped as {skipped['/strs']!r}")
    c.check(skipped["/cmp"].startswith("not a numeric dataset") and "compound" in skipped["/cmp"],
            f"/cmp skipped as {skipped['/cmp']!r}")
    c.check(skipped["/scalar"].startswith("not a numeric dataset") and
            "scalar" in skipped["/scalar"], f"/scalar skipped as {skipped['/scalar']!r}")
    c.check(skipped["/soft"].startswith("soft link to /gz"), f"/soft: {skipped['/soft']!r}")
    c.check(skipped["/ext"].startswith("external link to other.h5:/x"),
            f"/ext: {skipped['/ext']!r}")
    c.check(skipped["/typ"] == "named datatype", f"/typ: {skipped['/typ']!r}")

    kinds = {(w["kind"], w["dataset"]) for w in r["warnings"]}
    c.check(("chunk-splits-sample", "/split") in kinds, f"no split warning: {r['warnings']}")
    c.check(("slow-filter", "/lzf") in kinds, f"no lzf warning: {r['warnings']}")
    c.check(len(r["warnings"]) == 2, f"exactly 2 warnings wanted: {r['warnings']}")
    split = [w for w in r["warnings"] if w["dataset"] == "/split"][0]
    c.check("axis 1" in split["message"] and "2 chunks" in split["message"] and
            path in split["message"], f"split warning names the file, axis, chunks: {split}")
    c.check('h5feed convert with "output": {"chunk_rows": 4096}' in split["message"],
            f"split warning names the rechunking config (1 MiB of 256-byte rows): {split}")

    # The text report says the same for people.
    expect(["inspect", path], 0,
           out_has=[f"file {path}", "float64 little-endian (<f8)", "int32 big-endian (>i4)",
                    "uint8 little-endian (|u1)", "chunks 50 x 16 (6400 bytes each)",
                    "shuffle, deflate level 4, fletcher32", "lzf (id 32000)",
                    "H5Dread, the slow path: filter 32000 (lzf)", "soft link to /gz",
                    "not a numeric dataset", "[chunk-splits-sample]", "[slow-filter]",
                    "warnings: 2"])


def check_errors(c, expect, tmp, known):
    missing = os.path.join(tmp, "nope.h5")
    expect(["inspect", missing], 1, err_has=[missing, "No such file"])
    expect(["inspect", known, missing], 1, err_has=[missing])
    text = os.path.join(tmp, "text.h5")
    with open(text, "w") as f:
        f.write("not hdf5\n")
    expect(["inspect", text], 1, err_has=[text, "not an HDF5 file"])
    bad_key = os.path.join(tmp, "bad_key.json")
    with open(bad_key, "w") as f:
        json.dump({"files": [known], "fields": [{"name": "x", "dataset": "/gz",
                                                 "dtype": "float32"}], "shuffel": "chunk"}, f)
    expect(["inspect", "--config", bad_key], 2, err_has=["shuffel"])
    # A config file that cannot be read is a usage error (2), as in every command.
    expect(["inspect", "--config", os.path.join(tmp, "none.json")], 2, err_has=["none.json"])
    no_field = os.path.join(tmp, "no_field.json")
    with open(no_field, "w") as f:
        json.dump({"files": [known], "fields": [{"name": "x", "dataset": "/absent",
                                                 "dtype": "float32"}]}, f)
    expect(["inspect", "--config", no_field], 1, err_has=["/absent", known])
    not_numeric = os.path.join(tmp, "not_numeric.json")
    with open(not_numeric, "w") as f:
        json.dump({"files": [known], "fields": [{"name": "s", "dataset": "/strs",
                                                 "dtype": "float32"}]}, f)
    expect(["inspect", "--config", not_numeric], 1, err_has=["/strs", "string"])


def write_config(tmp, name, files, fields, **keys):
    path = os.path.join(tmp, name)
    obj = {"files": files,
           "fields": [{"name": n, "dataset": d, "dtype": "native"} for n, d in fields]}
    obj.update(keys)
    with open(path, "w") as f:
        json.dump(obj, f)
    return path


def warnings_of(r, kind):
    return [w for w in r["warnings"] if w["kind"] == kind]


def check_config(c, report, tmp):
    """Fields, lengths, slow paths and warnings that need a config."""
    path = os.path.join(tmp, "fields.h5")
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=np.ones((100, 8)), chunks=(10, 8), compression="gzip")
        f.create_dataset("y", data=np.arange(90, dtype="<i8"))
        f.create_dataset("z", data=np.zeros((100, 4)), chunks=(10, 4), compression="lzf")
        f.create_dataset("s", data=np.zeros((100, 8, 8), dtype="<f4"), chunks=(10, 4, 8))
        f.create_dataset("w", data=np.arange(100, dtype="<i4"))

    cfg = write_config(tmp, "len.json", ["fields.h5"], [("x", "/x"), ("y", "/y")])
    r = report("--config", cfg)
    if r is not None:
        mism = warnings_of(r, "length-mismatch")
        c.check(len(mism) == 1 and "90" in mism[0]["message"] and "100" in mism[0]["message"]
                and mism[0]["dataset"] == "/y", f"length-mismatch warning: {r['warnings']}")
        # "auto" for shuffle none: what the order reuses (chunkcache.h), a MiB or so here.
        c.check(r["config"]["path"] == cfg and 0 < r["config"]["cache_mb"] < 256 and
                r["config"]["batch_size"] == 256 and r["config"]["shuffle"] == "none",
                f"config defaults: {r['config']}")
        c.check([d["path"] for d in r["datasets"]] == ["/s", "/w", "/x", "/y", "/z"],
                "the config's file is listed")

    cfg = write_config(tmp, "slow.json", ["fields.h5"], [("z", "/z"), ("s", "/s"), ("w", "/w")])
    r = report("--config", cfg)
    if r is not None:
        paths = {fl["name"]: fl["read_path"] for fl in r["fields"]}
        c.check(paths == {"z": "hdf5", "s": "direct+decode", "w": "direct"},
                f"read paths (split chunks are decoded whole): {paths}")
        c.check(not warnings_of(r, "slow-path"),
                f"filters and splits have their own warnings: {r['warnings']}")
        c.check(any(w["dataset"] == "/z" for w in warnings_of(r, "slow-filter")), "lzf field")
        c.check(any(w["dataset"] == "/s" for w in warnings_of(r, "chunk-splits-sample")),
                "split field")
        w = r["fields"][2]
        c.check(w["bytes_delivered"] == 400 and w["samples"] == 100 and w["chunks"] == 0,
                f"field w: {w}")
        for mode in ("none", "global", "chunk"):
            cost = w["shuffle"][mode]
            c.check(cost["read_amplification"] == 1.0 and cost["decode_amplification"] == 0.0
                    and cost["chunk_decodes"] == 0.0, f"uncompressed field w, {mode}: {cost}")

    cfg = write_config(tmp, "hdf5.json", ["fields.h5"], [("w", "/w")], read_path="hdf5")
    r = report("--config", cfg)
    if r is not None:
        slow = warnings_of(r, "slow-path")
        c.check(len(slow) == 1 and "read_path" in slow[0]["message"], f"read_path hdf5: {slow}")
        c.check(r["fields"][0]["read_path"] == "hdf5", "read_path hdf5: field read by hdf5")


def check_twice(c, report, run, tmp, other):
    """A file given as a FILE and by --config (same text, ./ prefix, a symlink) is listed once,
    and the config's fields cost what they cost with the config alone."""
    path = os.path.join(tmp, "twice.h5")
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=np.ones((100, 8)), chunks=(10, 8), compression="gzip")
        f.create_dataset("y", data=np.arange(90, dtype="<i8"))  # a length-mismatch warning
    os.symlink("twice.h5", os.path.join(tmp, "twice_link.h5"))
    cfg = write_config(tmp, "twice.json", ["twice.h5"], [("x", "/x"), ("y", "/y")],
                       batch_size=16, shuffle="global", cache_mb=0)
    alone = report("--config", cfg)
    _, alone_text, _ = run("inspect", "--config", cfg)
    if alone is None:
        return
    want = [d["path"] for d in alone["datasets"]]
    c.check(want == ["/x", "/y"], f"config alone lists {want}")

    def figures(text):
        """The text report from the config line to the warnings: the per-field figures."""
        return text[text.find("\nconfig "):text.find("\nwarnings:")]

    def kinds(r):
        return sorted((w["kind"], w["dataset"]) for w in r["warnings"])

    for spelling, cwd in ((path, None), ("./twice.h5", tmp), ("twice_link.h5", tmp),
                          (os.path.join(tmp, ".", "twice.h5"), None)):
        label = f"inspect {spelling} --config twice.json"
        for args in ((spelling, "--config", cfg), ("--config", cfg, spelling)):
            r = report(*args, cwd=cwd)
            if r is None:
                continue
            got = [d["path"] for d in r["datasets"]]
            c.check(got == want, f"{label}: --json lists {got}, wanted {want} once")
            c.check(all(d["file"] == spelling for d in r["datasets"]),
                    f"{label}: the FILE's spelling names the file: {r['datasets']}")
            c.check(r["fields"] == alone["fields"],
                    f"{label}: fields {r['fields']} != config alone {alone['fields']}")
            c.check(kinds(r) == kinds(alone), f"{label}: warnings {r['warnings']} != "
                                              f"{alone['warnings']}")
        rc, text, err = run("inspect", spelling, "--config", cfg, cwd=cwd)
        c.check(rc == 0, f"{label}: exit {rc}\n{err}")
        c.check("1 file(s), 2 object(s)" in text and text.count("\nfile ") == 1 and
                text.count("\n  /x\n") == 1, f"{label}: text lists the file once:\n{text}")
        c.check(figures(text) == figures(alone_text) and figures(text),
                f"{label}: text figures differ from the config alone:\n{text}\n{alone_text}")

    # Two spellings as FILEs, no config: one file. Another file beside the config: two files.
    r = report(path, os.path.join(tmp, "twice_link.h5"))
    if r is not None:
        c.check([d["path"] for d in r["datasets"]] == want, f"two spellings: {r['datasets']}")
    r = report(other, "--config", cfg)
    if r is not None:
        files = sorted({d["file"] for d in r["datasets"]})
        c.check(files == sorted([other, path]) and r["fields"] == alone["fields"],
                f"another file beside the config: {files}")

    # A config naming its file twice: listed once, but the loader reads (and the model counts)
    # it twice, and its length-mismatch warning comes once.
    cfg2 = write_config(tmp, "twice2.json", ["twice.h5", "./twice.h5"], [("x", "/x"), ("y", "/y")],
                        batch_size=16, shuffle="global", cache_mb=0)
    r = report(path, "--config", cfg2)
    if r is not None:
        c.check([d["path"] for d in r["datasets"]] == want, f"listed twice: {r['datasets']}")
        x, x1 = r["fields"][0], alone["fields"][0]
        c.check(x["samples"] == 2 * x1["samples"] and x["chunks"] == 2 * x1["chunks"],
                f"listed twice: the model counts the file twice: {x} vs {x1}")
        c.check(len(warnings_of(r, "length-mismatch")) == 1,
                f"listed twice: one length-mismatch warning: {r['warnings']}")


def model_and_loader(c, report, run, cfg, label):
    """inspect's report for cfg and the chunk decodes h5feed bench measures with it, or None
    (the failure already checked). Both settle cache_mb alike, "auto" included."""
    r = report("--config", cfg)
    rc, out, err = run("bench", cfg, "--json", "--no-digest")
    if r is None or not c.check(rc == 0, f"bench {label}: exit {rc}\n{err}"):
        return None
    b = json.loads(out)
    c.check(r["config"]["cache_mb"] * (1 << 20) == b["cache_bytes"],
            f"{label}: inspect's cache_mb {r['config']['cache_mb']}, the loader's "
            f"{b['cache_bytes']} bytes")
    return r, b["chunk_decodes"]


def check_model(c, report, run, tmp):
    """The model against the loader: predicted vs measured chunk decodes per epoch."""
    path = os.path.join(tmp, "gz.h5")
    rows, cols, chunk_rows = 4096, 256, 64  # 64 chunks of 128 KiB: 8 fit in 1 MiB
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=np.random.default_rng(2).random((rows, cols)),
                         chunks=(chunk_rows, cols), compression="gzip", compression_opts=1)
        f.create_dataset("y", data=np.arange(rows, dtype="<i8"))
    nchunks = rows // chunk_rows
    cases = [  # shuffle, cache_mb, shuffle_window, workers, exact
        ("chunk", 1, 4, 2, True),     # a window's 4 chunks fit 8 entries: each decoded once
        ("chunk", "auto", 4, 2, True),   # "auto": two windows and the workers' chunks
        ("none", "auto", 4, 2, True),
        ("global", 8, 4, 2, True),    # every chunk fits: each decoded once
        ("none", 1, 4, 2, True),
        ("none", 0, 4, 1, True),      # no entry: a chunk per batch, 2 batches per chunk
        ("global", 1, 4, 1, False),   # 8 of 64 chunks: almost every batch's use misses
        ("global", 4, 4, 1, False),   # 32 of 64
        ("global", 0, 4, 1, False),   # no cache: every run of rows decodes
        ("chunk", 1, 16, 1, False),   # a window of 16 chunks, 8 entries
        ("chunk", 0, 4, 1, False),
    ]
    for i, (shuffle, cache_mb, window, workers, exact) in enumerate(cases):
        cfg = write_config(tmp, f"model{i}.json", ["gz.h5"], [("x", "/x"), ("y", "/y")],
                           batch_size=32, shuffle=shuffle, cache_mb=cache_mb,
                           shuffle_window=window, workers=workers, seed=7)
        label = f"{shuffle} cache_mb={cache_mb} window={window} workers={workers}"
        got = model_and_loader(c, report, run, cfg, label)
        if got is None:
            continue
        r, measured = got
        x = r["fields"][0]
        predicted = x["shuffle"][shuffle]["chunk_decodes"]
        c.check(x["read_path"] == "direct+decode" and x["chunks"] == nchunks and
                x["chunk_bytes"] == chunk_rows * cols * 8, f"{label}: field x {x}")
        if exact:
            c.check(round(predicted) == measured,
                    f"{label}: predicted {predicted:.1f} decodes, measured {measured}")
        else:
            c.check(abs(predicted - measured) <= TOLERANCE * measured,
                    f"{label}: predicted {predicted:.1f} decodes, measured {measured} "
                    f"(tolerance {TOLERANCE:.0%})")
        # Decoded bytes follow the decodes; y is uncompressed and read once.
        cost = x["shuffle"][shuffle]
        # (decodes are printed with 3 decimals, bytes as whole numbers)
        c.check(abs(cost["bytes_decoded"] - predicted * chunk_rows * cols * 8) <=
                0.001 * chunk_rows * cols * 8 + 1,
                f"{label}: bytes_decoded {cost['bytes_decoded']}")
        delivered = rows * cols * 8
        c.check(x["bytes_delivered"] == delivered and
                abs(cost["decode_amplification"] - cost["bytes_decoded"] / delivered) < 1e-3,
                f"{label}: decode amplification {cost}")
        y = r["fields"][1]["shuffle"][shuffle]
        c.check(y["read_amplification"] == 1.0 and y["chunk_decodes"] == 0.0,
                f"{label}: field y {y}")
        high = [w for w in warnings_of(r, "high-amplification") if w["dataset"] == "/x"]
        c.check(bool(high) == (cost["decode_amplification"] > 2.0),
                f"{label}: high-amplification warning iff amplification > 2: {cost} {high}")
        over = warnings_of(r, "chunk-over-cache")
        c.check(bool(over) == (cache_mb == 0), f"{label}: chunk-over-cache iff cache_mb 0: {over}")
        if shuffle == "global" and cache_mb == 1:
            c.check(high and '"shuffle": "chunk"' in high[0]["message"] and
                    "cache_mb >= 8" in high[0]["message"], f"{label}: advice {high}")
            # The exact config that rechunks the dataset, runnable as printed.
            m = high[0]["message"] if high else ""
            at = m.find("h5feed convert with {")
            rechunk = json.loads(m[at + len("h5feed convert with "):]) if at >= 0 else {}
            c.check(rechunk.get("fields", [{}])[0].get("dataset") == "/x" and
                    rechunk.get("output", {}).get("chunk_rows") == (1 << 20) // (cols * 8) and
                    rechunk.get("files", [""])[0].endswith(".h5"),
                    f"{label}: rechunk config in {m!r}")
        if cache_mb == 0:
            c.check(over and "set cache_mb to at least 1" in over[0]["message"],
                    f"{label}: advice {over}")



def check_model_two_filtered(c, report, run, tmp):
    """Two compressed fields whose chunks differ 256-fold (features and labels): each has a
    cache of its own, the budget split by the bytes their chunks decode to. The model's decodes
    (both fields) against the loader's."""
    path = os.path.join(tmp, "gz2.h5")
    rows, cols, chunk_rows = 4096, 256, 64  # x: 64 chunks of 128 KiB; y: 64 chunks of 512 B
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=np.random.default_rng(3).random((rows, cols)),
                         chunks=(chunk_rows, cols), compression="gzip", compression_opts=1)
        f.create_dataset("y", data=np.arange(rows, dtype="<i8"), chunks=(chunk_rows,),
                         compression="gzip", compression_opts=1)
    cases = [  # shuffle, cache_mb, workers, exact
        ("global", 9, 2, True),    # 8 MiB + 32 KiB: every chunk of both fields fits
        ("chunk", 2, 2, True),     # 15 entries each: two workers hold two windows of 4
        ("global", 4, 1, False),   # half of each field's chunks
    ]
    for i, (shuffle, cache_mb, workers, exact) in enumerate(cases):
        cfg = write_config(tmp, f"model2-{i}.json", ["gz2.h5"], [("x", "/x"), ("y", "/y")],
                           batch_size=32, shuffle=shuffle, cache_mb=cache_mb,
                           shuffle_window=4, workers=workers, seed=7)
        label = f"x and y compressed, {shuffle} cache_mb={cache_mb} workers={workers}"
        got = model_and_loader(c, report, run, cfg, label)
        if got is None:
            continue
        r, measured = got
        predicted = sum(x["shuffle"][shuffle]["chunk_decodes"] for x in r["fields"])
        c.check(all(x["read_path"] == "direct+decode" for x in r["fields"]),
                f"{label}: both fields decoded by the direct path")
        if exact:
            c.check(round(predicted) == measured == 2 * rows // chunk_rows,
                    f"{label}: predicted {predicted:.1f} decodes, measured {measured}, "
                    f"expected {2 * rows // chunk_rows}")
        else:
            c.check(abs(predicted - measured) <= TOLERANCE * measured,
                    f"{label}: predicted {predicted:.1f} decodes, measured {measured} "
                    f"(tolerance {TOLERANCE:.0%})")

if __name__ == "__main__":
    sys.exit(main())
