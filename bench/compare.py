#!/usr/bin/python3
"""h5feed against the idiomatic PyTorch peer, plain h5py and two limits, interleaved.

Usage: bench/compare.py [--h5feed build-bench/h5feed] [--dir bench-data] [--rounds 3]
                        [--budget 20] [--min-seconds 2] [--quick] [--only REGEX]
                        [--order random|fixed] [--seed 0]

Makes (once, cached in --dir) three float64 files of 131072 samples x 1024 values (1 GiB of
features each, plus int64 labels), with `h5feed synth`: contiguous; chunked 256 rows (2 MiB
chunks); chunked 256 rows with gzip 1 + shuffle. Warms the page cache (`cat` each file twice:
every number here is for a *cached* file), then runs every contender once per round, in a
fresh (seeded) order each round, for --rounds rounds. Every contender delivers float32
features and int64 labels in batches of 256. The contenders (see bench/README.md):

  h5feed             `h5feed bench CONFIG --json --no-digest`, workers 1 and 2, shuffle none/global/chunk
  dataloader         torch DataLoader(batch_size=256, num_workers=2, shuffle off/on) over a
                     Dataset that opens the file lazily in each worker and returns
                     torch.from_numpy(x[i].astype(np.float32)), int(y[i]); HDF5's default
                     chunk cache (1 MiB)
  dataloader-expert  the same with h5py.File(..., rdcc_nbytes=1.2e9, rdcc_nslots=1000003)
  h5feed-torch       the same loader through the Python binding (python/h5feed.py) in a Python
                     loop: torch.from_dlpack of both fields per batch (what a training loop
                     does), workers 2, shuffle none/global/chunk
  h5py-slices        one process: x[i:i+256].astype(np.float32), y[i:i+256]; default cache
  h5py-slices-64M    the same with rdcc_nbytes=64 MiB
  cat                `cat FILE > /dev/null` (limit: reading the stored bytes once)
  pread-convert      bench/limit_pread_convert.c: 2 threads pread 2 MiB blocks of the
                     contiguous file's data and convert float64 -> float32 (limit)

Run length: a run repeats whole epochs until it has run --min-seconds (one epoch of a fast
contender takes a fraction of a second), and a peer run stops at --budget seconds even in the
middle of an epoch (the DataLoader reads gzip data at a few hundred samples/s); samples/s is
what it delivered over the time it ran. `h5feed bench` has no time budget and always runs whole
epochs, so a short probe (512 samples; then one whole epoch if that looks short) sizes each
h5feed run before the rounds: as many epochs as fill --min-seconds, or, when one epoch would
exceed 1.5 x --budget, the first part of one epoch's order through sharding
(`"shard": {"rank": 0, "world_size": W}`) that fits --budget.

Prints a table of medians over rounds and of per-round pairwise ratios, and writes every raw
number to DIR/results-<timestamp>.json.
"""
import argparse
import datetime
import json
import math
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import time

BATCH = 256
VALUES = 1024                    # float64 values per sample
OUT_BYTES = VALUES * 4           # float32 feature bytes per delivered sample (the GB/s column)
EXPERT_RDCC_NBYTES = int(1.2e9)  # chunk cache "as large as the dataset" (1 GiB of features)
EXPERT_RDCC_NSLOTS = 1000003     # a prime, far above the 512 chunks of the file
SLICES_RDCC_NBYTES = 64 * 2**20
PROBE_SAMPLES = 512              # h5feed probe size when picking a shard for the budget

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# key: (chunk rows (0 = contiguous), gzip level, shuffle filter)
FILES = {
    "contig": (0, 0, False),
    "chunked": (256, 0, False),
    "gzip": (256, 1, True),
}
H5FEED_MODES = ("none", "global", "chunk")
PEER_MODES = ("none", "global")  # DataLoader shuffle=False / shuffle=True
CONTENDER_ORDER = ("h5feed", "h5feed-torch", "dataloader", "dataloader-expert", "h5py-slices",
                   "h5py-slices-64M", "cat", "pread-convert")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# The peers, run in a fresh child process (`compare.py --child SPEC`) so that no contender
# inherits another's open files, HDF5 caches or DataLoader workers.

def child_main(spec):
    import numpy as np
    import h5py

    path, budget, kind = spec["path"], spec["budget"], spec["kind"]
    min_s = spec["min_seconds"]
    rdcc = spec.get("rdcc")  # None: HDF5's default chunk cache
    kw = {} if rdcc is None else {"rdcc_nbytes": rdcc[0], "rdcc_nslots": rdcc[1]}
    samples = batches = epochs = 0
    over = False  # stopped by the budget, in the middle of an epoch

    if kind == "dataloader":
        import torch
        from torch.utils.data import DataLoader, Dataset

        class H5Dataset(Dataset):
            """The usual pattern: the file is opened lazily, once per worker process."""

            def __init__(self, path, **h5kw):
                self.path, self.h5kw, self.f = path, h5kw, None
                with h5py.File(path, "r") as f:
                    self.n = len(f["/features"])

            def __len__(self):
                return self.n

            def __getitem__(self, i):
                if self.f is None:
                    self.f = h5py.File(self.path, "r", **self.h5kw)
                    self.x, self.y = self.f["/features"], self.f["/labels"]
                return torch.from_numpy(self.x[i].astype(np.float32)), int(self.y[i])

        t0 = time.perf_counter()
        ds = H5Dataset(path, **kw)
        loader = DataLoader(ds, batch_size=BATCH, shuffle=spec["shuffle"],
                            num_workers=spec["workers"])
        while not over and time.perf_counter() - t0 < min_s:
            it = iter(loader)  # a new epoch: new workers, which open the file again
            for x, y in it:
                assert x.dtype == torch.float32 and x.shape[1] == VALUES
                assert y.dtype == torch.int64
                samples += x.shape[0]
                batches += 1
                if time.perf_counter() - t0 >= budget:
                    over = True
                    break
            if over:
                seconds = time.perf_counter() - t0
            del it  # after the last batch of an epoch this joins the workers, as in training
            if not over:
                epochs += 1
                seconds = time.perf_counter() - t0
    elif kind == "h5feed-torch":
        import torch
        sys.path.insert(0, os.path.join(REPO, "python"))
        os.environ["H5FEED_LIBRARY"] = spec["library"]
        import h5feed

        t0 = time.perf_counter()
        # Exactly the h5feed bench run of the same contender (its config: epochs, shard), to
        # the end, timed from before the loader opens: the only difference is Python.
        with h5feed.Loader(spec["config"]) as loader:
            for b in loader:
                x = torch.from_dlpack(b["x"])
                y = torch.from_dlpack(b["y"])
                assert x.dtype == torch.float32 and x.shape[1] == VALUES
                assert y.dtype == torch.int64
                samples += x.shape[0]
                batches += 1
                del x, y  # the slot comes back with the next batch, as in a training step
            epochs = loader.info.epochs
        seconds = time.perf_counter() - t0
    elif kind == "slices":
        t0 = time.perf_counter()
        with h5py.File(path, "r", **kw) as f:
            xd, yd = f["/features"], f["/labels"]
            n = len(xd)
            while not over and time.perf_counter() - t0 < min_s:
                for i in range(0, n, BATCH):
                    x = xd[i:i + BATCH].astype(np.float32)
                    y = yd[i:i + BATCH]
                    samples += x.shape[0]
                    batches += 1
                    if time.perf_counter() - t0 >= budget:
                        over = True
                        break
                epochs += 0 if over else 1
            seconds = time.perf_counter() - t0
        assert x.dtype == np.float32 and y.dtype == np.int64
    else:
        raise SystemExit(f"unknown child kind {kind!r}")
    print(json.dumps({"samples": samples, "batches": batches, "seconds": seconds,
                      "whole_epochs": epochs, "stopped_by_budget": over}))


# --------------------------------------------------------------------------------------------
# Files and the page cache

def ensure_file(h5feed, path, rows, chunk_rows, gzip, shuffle):
    """Writes the file with `h5feed synth` unless a matching one is already there."""
    if os.path.exists(path):
        try:
            import h5py
            with h5py.File(path, "r") as f:
                d = f["/features"]
                ok = (d.shape == (rows, VALUES) and d.dtype == "<f8" and "/labels" in f and
                      (d.chunks is None if chunk_rows == 0 else d.chunks == (chunk_rows, VALUES)) and
                      (d.compression == "gzip") == (gzip > 0) and bool(d.shuffle) == shuffle)
            if ok:
                return False
        except Exception as e:  # a truncated file from an interrupted run, say
            log(f"  {path}: unreadable ({e}); writing it again")
        os.remove(path)
    tmp = path + ".tmp"
    cmd = [h5feed, "synth", "--out", tmp, "--rows", str(rows), "--shape", str(VALUES),
           "--dtype", "float64", "--chunk-rows", str(chunk_rows)]
    if gzip:
        cmd += ["--gzip", str(gzip)]
    if shuffle:
        cmd += ["--shuffle"]
    if os.path.exists(tmp):
        os.remove(tmp)
    log(f"  writing {path} ...")
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    os.replace(tmp, path)
    return True


def cat_seconds(path):
    t0 = time.perf_counter()
    subprocess.run(["cat", path], stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def data_region(path):
    import h5py
    with h5py.File(path, "r") as f:
        d = f["/features"]
        off = d.id.get_offset()
        if off is None:
            raise SystemExit(f"{path}: /features has no contiguous data offset")
        return off, d.id.get_storage_size()


def build_limit(src, out_dir):
    """Compiles the pread+convert limit for this machine. -O3 (not -O2) so that gcc
    vectorizes the conversion loop, as numpy's astype is: a limit must not be a slow loop."""
    exe = os.path.join(out_dir, "limit_pread_convert")
    cc = os.environ.get("CC", "cc")
    for flags in (["-O3", "-march=native"], ["-O3"]):
        if subprocess.run([cc, *flags, "-pthread", "-o", exe, src],
                          stderr=subprocess.DEVNULL).returncode == 0:
            return exe, " ".join([cc, *flags, "-pthread"])
    raise SystemExit(f"{cc} could not compile {src}")


# --------------------------------------------------------------------------------------------
# Contenders

def cid(c):
    return f"{c['contender']}:{c['file']}:{c['mode']}:w{c['workers']}"


def contenders(only):
    out = []
    for fk in FILES:
        for mode in H5FEED_MODES:
            for w in (1, 2):
                out.append({"contender": "h5feed", "file": fk, "mode": mode, "workers": w})
        for mode in H5FEED_MODES:
            out.append({"contender": "h5feed-torch", "file": fk, "mode": mode, "workers": 2})
        for name in ("dataloader", "dataloader-expert"):
            for mode in PEER_MODES:
                out.append({"contender": name, "file": fk, "mode": mode, "workers": 2})
        for name in ("h5py-slices", "h5py-slices-64M"):
            out.append({"contender": name, "file": fk, "mode": "none", "workers": 1})
        out.append({"contender": "cat", "file": fk, "mode": "none", "workers": 1})
    out.append({"contender": "pread-convert", "file": "contig", "mode": "none", "workers": 2})
    if only:
        rx = re.compile(only)
        out = [c for c in out if rx.search(cid(c))]
    return out


def h5feed_config_dict(ctx, c, world_size, epochs):
    cfg = {"files": [ctx["paths"][c["file"]]],
           "fields": [{"name": "x", "dataset": "/features", "dtype": "float32"},
                      {"name": "y", "dataset": "/labels", "dtype": "int64"}],
           "batch_size": BATCH, "shuffle": c["mode"], "workers": c["workers"], "prefetch": 4,
           "epochs": epochs, "seed": 0, "device": "cpu"}
    if ctx.get("cache_mb") is not None:
        cfg["cache_mb"] = ctx["cache_mb"]
    if world_size > 1:
        cfg["shard"] = {"rank": 0, "world_size": world_size}
    return cfg


def h5feed_config(ctx, c, world_size, epochs):
    cfg = h5feed_config_dict(ctx, c, world_size, epochs)
    path = os.path.join(ctx["dir"], "configs",
                        f"{c['file']}-{c['mode']}-w{c['workers']}-of{world_size}-e{epochs}.json")
    with open(path, "w") as f:
        json.dump(cfg, f, indent=1)
    return path


def run_h5feed(ctx, c, world_size, epochs=1):
    cfg = h5feed_config(ctx, c, world_size, epochs)
    # --no-digest: the peers hash nothing, so neither does h5feed here (the digest is for
    # checking data, and tests/tool checks it).
    p = subprocess.run([ctx["h5feed"], "bench", cfg, "--json", "--no-digest"],
                       capture_output=True, text=True, timeout=ctx["timeout"])
    if p.returncode != 0:
        raise RuntimeError(f"h5feed bench {cfg}: exit {p.returncode}: {p.stderr.strip()}")
    j = json.loads(p.stdout)
    return {"samples": j["samples"], "seconds": j["seconds"], "world_size": world_size,
            "epochs": epochs, "digest_share": j.get("digest_seconds", 0) / j["seconds"],
            "h5feed_samples_per_s": j["samples_per_s"], "h5feed_gb_per_s": j["gb_per_s"],
            "raw": j}


def run_child(ctx, spec):
    p = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", json.dumps(spec)],
                       capture_output=True, text=True, timeout=ctx["timeout"])
    if p.returncode != 0:
        raise RuntimeError(f"{spec['kind']} on {spec['path']}: exit {p.returncode}: "
                           f"{p.stderr.strip()[-2000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def measure(ctx, c):
    name, path = c["contender"], ctx["paths"][c["file"]]
    n = ctx["rows"]
    if name == "h5feed":
        ws, ep = ctx["plan"].get(cid(c), (1, 1))
        r = run_h5feed(ctx, c, ws, ep)
    elif name in ("dataloader", "dataloader-expert"):
        rdcc = [EXPERT_RDCC_NBYTES, EXPERT_RDCC_NSLOTS] if name == "dataloader-expert" else None
        r = run_child(ctx, {"kind": "dataloader", "path": path, "budget": ctx["budget"],
                            "min_seconds": ctx["min_seconds"],
                            "rdcc": rdcc, "shuffle": c["mode"] != "none",
                            "workers": c["workers"]})
    elif name == "h5feed-torch":
        # the same run as h5feed bench's for this file, mode and workers (calibrate())
        ws, ep = ctx["plan"].get(cid(dict(c, contender="h5feed")), (1, 1))
        r = run_child(ctx, {"kind": "h5feed-torch", "path": path, "budget": ctx["budget"],
                            "min_seconds": ctx["min_seconds"], "library": ctx["library"],
                            "config": h5feed_config_dict(ctx, c, ws, ep)})
    elif name in ("h5py-slices", "h5py-slices-64M"):
        rdcc = [SLICES_RDCC_NBYTES, 521] if name == "h5py-slices-64M" else None
        r = run_child(ctx, {"kind": "slices", "path": path, "budget": ctx["budget"],
                            "min_seconds": ctx["min_seconds"], "rdcc": rdcc})
    elif name == "cat":
        # as samples/s: the whole file (n samples) read at cat's speed; repeated up to
        # --min-seconds, since one cat of a cached file takes a fraction of a second
        s, k = 0.0, 0
        while k == 0 or s < ctx["min_seconds"]:
            s += cat_seconds(path)
            k += 1
        size = os.path.getsize(path)
        r = {"samples": n * k, "seconds": s, "repeats": k, "file_bytes": size,
             "file_gb_per_s": size * k / s / 1e9}
    elif name == "pread-convert":
        off, size = ctx["region"]
        s, k, raw = 0.0, 0, []
        while k == 0 or s < ctx["min_seconds"]:  # the program times itself, without exec
            p = subprocess.run([ctx["limit_exe"], path, str(off), str(size), str(c["workers"])],
                               capture_output=True, text=True, check=True,
                               timeout=ctx["timeout"])
            raw.append(json.loads(p.stdout))
            s += raw[-1]["seconds"]
            k += 1
        r = {"samples": n * k, "seconds": s, "repeats": k, "raw": raw}
    else:
        raise ValueError(name)
    r["samples_per_s"] = r["samples"] / r["seconds"]
    r["gb_per_s"] = r["samples_per_s"] * OUT_BYTES / 1e9
    return r


def calibrate(ctx, hc):
    """Sizes each h5feed run from a short probe (then one timed epoch when that looks short):
    whole epochs, as many as take about --min-seconds; or, when one epoch would take over
    1.5 x --budget, the part of one epoch (rank 0 of W) that takes about --budget seconds."""
    n, budget, min_s = ctx["rows"], ctx["budget"], ctx["min_seconds"]
    probe_ws = max(1, n // PROBE_SAMPLES)
    for c in hc:
        r = run_h5feed(ctx, c, probe_ws)
        rate = r["samples"] / r["seconds"]
        full_s = n / rate
        probes = [r]
        if full_s > 1.5 * budget and probe_ws > 8 and full_s / 8 <= 2 * budget:
            # 512 samples see only cold chunks: with a cache that holds every chunk, the rest
            # of the epoch is far faster. An eighth of the epoch tells.
            r = run_h5feed(ctx, c, 8)
            probes.append(r)
            rate = r["samples"] / r["seconds"]
            full_s = n / rate
        if full_s <= 1.5 * budget and probe_ws > 1:
            # a small probe is dominated by opening the loader: time one whole epoch instead
            r = run_h5feed(ctx, c, 1)
            probes.append(r)
            rate = r["samples"] / r["seconds"]
            full_s = r["seconds"]
        if full_s <= 1.5 * budget:
            ws, ep = 1, max(1, min(math.ceil(min_s / full_s), math.floor(budget / full_s)))
        else:
            ws, ep = min(probe_ws, math.ceil(full_s / budget)), 1
        ctx["plan"][cid(c)] = (ws, ep)
        ctx["calibration"][cid(c)] = {"probe_world_size": probe_ws, "probes": probes,
                                      "est_epoch_seconds": full_s, "world_size": ws,
                                      "epochs": ep}
        what = f"{ep} epoch{'s' if ep > 1 else ''}" if ws == 1 else \
            f"shard 1/{ws} of an epoch ({-(-n // ws)} samples)"
        log(f"  {cid(c):<28} probe{'s' if len(probes) > 1 else ' '} {rate:>9.0f} samples/s -> "
            f"epoch ~{full_s:7.1f} s -> {what}")


# --------------------------------------------------------------------------------------------
# Summary

def median_ratio(runs_a, runs_b):
    """Median over rounds of a[r] / b[r], for the rounds where both ran."""
    rs = [runs_a[r] / runs_b[r] for r in runs_a if r in runs_b and runs_b[r] > 0]
    return (statistics.median(rs), len(rs)) if rs else (None, 0)


def summarize(cs, runs):
    per = {}  # id -> {round: samples/s}
    for x in runs:
        if "samples_per_s" in x:
            per.setdefault(x["id"], {})[x["round"]] = x["samples_per_s"]

    def ref_id(c, kind):
        f, m = c["file"], ("none" if c["mode"] == "none" else "global")
        return {"dl": f"dataloader:{f}:{m}:w2",
                "expert": f"dataloader-expert:{f}:{m}:w2",
                "slices": best_slices.get(f, f"h5py-slices-64M:{f}:none:w1"),
                "cat": f"cat:{f}:none:w1",
                "c": f"h5feed:{f}:{c['mode']}:w{c['workers']}",
                "pread": "pread-convert:contig:none:w2"}[kind]

    # /slices: the faster (by median) of the two h5py-slices variants on the same file
    best_slices = {}
    for f in FILES:
        cand = [i for i in (f"h5py-slices:{f}:none:w1", f"h5py-slices-64M:{f}:none:w1")
                if i in per]
        if cand:
            best_slices[f] = max(cand, key=lambda i: statistics.median(per[i].values()))

    dig = {}
    for x in runs:
        if "digest_share" in x:
            dig.setdefault(x["id"], []).append(x["digest_share"])

    rows = []
    for c in cs:
        i = cid(c)
        if i not in per:
            continue
        sps = list(per[i].values())
        row = dict(c, id=i, rounds=len(sps), samples_per_s=statistics.median(sps),
                   gb_per_s=statistics.median(sps) * OUT_BYTES / 1e9,
                   samples_per_s_all=[per[i][r] for r in sorted(per[i])],
                   digest_share=statistics.median(dig[i]) if i in dig else None)
        for kind in ("dl", "expert", "slices", "cat", "pread", "c"):
            ref = ref_id(c, kind)
            row[f"vs_{kind}"], row[f"vs_{kind}_pairs"] = (
                median_ratio(per[i], per[ref]) if ref in per else (None, 0))
            row[f"vs_{kind}_ref"] = ref
        rows.append(row)
    return rows, best_slices


def fmt_table(rows):
    hdr = ["contender", "file", "mode", "w", "samples/s", "GB/s", "/DL", "/expert", "/slices",
           "/cat", "/pread", "/C", "runs", "dig%"]
    out = []
    for r in rows:
        def rat(k):
            return "-" if r[k] is None else f"{r[k]:.2f}"
        sps = r["samples_per_s"]
        out.append([r["contender"], r["file"], r["mode"], str(r["workers"]),
                    f"{sps:.0f}" if sps >= 100 else f"{sps:.1f}", f"{r['gb_per_s']:.3f}",
                    rat("vs_dl"), rat("vs_expert"), rat("vs_slices"), rat("vs_cat"),
                    rat("vs_pread"),
                    rat("vs_c") if r["contender"] == "h5feed-torch" else "-", str(r["rounds"]),
                    "" if r["digest_share"] is None else f"{100 * r['digest_share']:.0f}"])
    widths = [max(len(h), *(len(x[k]) for x in out)) if out else len(h) for k, h in enumerate(hdr)]
    left = 4  # the first four columns are text
    line = lambda cells: "  ".join(c.ljust(w) if k < left else c.rjust(w)
                                   for k, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([line(hdr), line(["-" * w for w in widths])] + [line(x) for x in out])


# --------------------------------------------------------------------------------------------

def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        return child_main(json.loads(sys.argv[2]))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="See bench/README.md.")
    ap.add_argument("--h5feed", default=None,
                    help="the h5feed program (default: build-bench/h5feed, else build/h5feed)")
    ap.add_argument("--dir", default="bench-data", help="data, configs and results (default %(default)s)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds (default %(default)s)")
    ap.add_argument("--budget", type=float, default=None,
                    help="seconds per peer run; h5feed runs are sized to about this "
                         "(default 20, 3 with --quick)")
    ap.add_argument("--min-seconds", type=float, default=None,
                    help="fast runs repeat whole epochs for at least this long "
                         "(default 2, 1 with --quick)")
    ap.add_argument("--quick", action="store_true",
                    help="16384-sample files (128 MiB of features) for a smoke run")
    ap.add_argument("--rows", type=int, default=None, help="samples per file (overrides --quick)")
    ap.add_argument("--only", default=None,
                    help="regex on CONTENDER:FILE:MODE:wN, e.g. 'h5feed|dataloader:' or ':gzip:'")
    ap.add_argument("--order", choices=("random", "fixed"), default="random",
                    help="contender order within a round (default %(default)s, seeded)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random order")
    ap.add_argument("--h5feed-cache-mb", type=int, default=None,
                    help="cache_mb of the h5feed configs (default: the library's \"auto\"); e.g. "
                         "1200 to give h5feed the chunk cache dataloader-expert has per worker")
    ap.add_argument("--h5feed-full-epochs", action="store_true",
                    help="no probe: every h5feed run reads one whole epoch (may take very long)")
    a = ap.parse_args()

    repo = REPO
    h5feed = a.h5feed
    if h5feed is None:
        for cand in ("build-bench/h5feed", "build/h5feed"):
            if os.path.exists(os.path.join(repo, cand)):
                h5feed = os.path.join(repo, cand)
                break
        else:
            raise SystemExit("no h5feed found in build-bench/ or build/; pass --h5feed PATH")
    h5feed = os.path.abspath(h5feed)
    rows = a.rows or (16384 if a.quick else 131072)
    if rows % BATCH:
        raise SystemExit(f"--rows must be a multiple of {BATCH}")
    budget = a.budget if a.budget is not None else (3.0 if a.quick else 20.0)
    min_s = a.min_seconds if a.min_seconds is not None else (1.0 if a.quick else 2.0)
    min_s = min(min_s, budget)
    os.makedirs(os.path.join(a.dir, "configs"), exist_ok=True)
    ddir = os.path.abspath(a.dir)

    cs = contenders(a.only)
    if not cs:
        raise SystemExit(f"--only {a.only!r} selects no contender")
    if any(c["contender"].startswith(("dataloader", "h5feed-torch")) for c in cs):
        try:
            import torch  # noqa: F401
        except ImportError:
            raise SystemExit("the DataLoader peer and h5feed-torch need torch: apt-get install -y python3-torch "
                             "(or leave it out with --only)")
    needed = sorted({c["file"] for c in cs} | ({"contig"} if any(
        c["contender"] == "pread-convert" for c in cs) else set()))

    log(f"files ({rows} samples x {VALUES} float64 each) in {ddir}:")
    paths = {}
    for fk in needed:
        chunk_rows, gz, sh = FILES[fk]
        paths[fk] = os.path.join(ddir, f"f64-{rows}-{fk}.h5")
        made = ensure_file(h5feed, paths[fk], rows, chunk_rows, gz, sh)
        log(f"  {fk:<8} {paths[fk]} ({os.path.getsize(paths[fk]) / 2**20:.0f} MiB)"
            f"{' written' if made else ' cached'}")

    ctx = {"h5feed": h5feed, "dir": ddir, "paths": paths, "rows": rows, "budget": budget,
           "min_seconds": min_s, "timeout": max(600.0, 20 * budget), "plan": {},
           "calibration": {}, "cache_mb": a.h5feed_cache_mb,
           # the binding loads the library built with the h5feed program
           "library": os.path.join(os.path.dirname(h5feed), "libh5feed.so.0")}
    if any(c["contender"] == "pread-convert" for c in cs):
        ctx["limit_exe"], ctx["limit_cc"] = build_limit(
            os.path.join(repo, "bench", "limit_pread_convert.c"), ddir)
        ctx["region"] = data_region(paths["contig"])

    # Page cache: every file is read twice before anything is measured, so all runs see a
    # cached (warm) file. The machine must have the RAM for all of them (about 3 GiB).
    for fk in needed:
        cat_seconds(paths[fk])
        cat_seconds(paths[fk])

    import h5py
    import numpy
    try:
        import torch
        torch_version = torch.__version__
    except ImportError:
        torch_version = None
    meta = {"started": datetime.datetime.now().isoformat(timespec="seconds"),
            "host": platform.node(), "cpus": os.cpu_count(), "platform": platform.platform(),
            "cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                         if l.startswith("model name")), None),
            "mem_total_kib": next((int(l.split()[1]) for l in open("/proc/meminfo")
                                   if l.startswith("MemTotal")), None),
            "loadavg_start": os.getloadavg(), "python": platform.python_version(),
            "numpy": numpy.__version__, "h5py": h5py.__version__,
            "hdf5": h5py.version.hdf5_version, "torch": torch_version,
            "h5feed": h5feed, "h5feed_version": subprocess.run(
                [h5feed, "--version"], capture_output=True, text=True).stdout.strip(),
            "limit_cc": ctx.get("limit_cc"), "rows": rows, "values": VALUES, "batch_size": BATCH, "budget_s": budget,
            "min_seconds": min_s,
            "h5feed_cache_mb": a.h5feed_cache_mb,
            "rounds": a.rounds, "order": a.order, "seed": a.seed, "only": a.only,
            "files": {k: {"path": p, "bytes": os.path.getsize(p)} for k, p in paths.items()},
            "page_cache": "warm: every file was read with cat twice before the first run",
            "gb_per_s": "float32 feature bytes delivered (samples/s x 4096) / 10^9; labels not "
                        "counted; cat and pread-convert as the samples/s they stand for"}

    # h5feed-torch runs what h5feed bench runs for the same file, mode and workers, so those
    # are sized too, also when only h5feed-torch was selected
    hc = [c for c in cs if c["contender"] == "h5feed"]
    hc += [dict(c, contender="h5feed") for c in cs if c["contender"] == "h5feed-torch"
           and dict(c, contender="h5feed") not in hc]
    if hc and not a.h5feed_full_epochs:
        log(f"h5feed probes ({PROBE_SAMPLES} samples each) to size the runs to ~{budget:g} s:")
        calibrate(ctx, hc)

    runs = []
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    result_path = os.path.join(ddir, f"results-{stamp}.json")
    t_start = time.perf_counter()
    for rnd in range(a.rounds):
        order = list(cs)
        if a.order == "random":
            random.Random(a.seed * 1000003 + rnd).shuffle(order)
        log(f"round {rnd + 1}/{a.rounds} ({len(order)} runs)")
        for c in order:
            rec = dict(c, id=cid(c), round=rnd, t=time.perf_counter() - t_start)
            try:
                rec.update(measure(ctx, c))
                log(f"  {rec['id']:<34} {rec['samples_per_s']:>10.0f} samples/s "
                    f"{rec['gb_per_s']:>7.3f} GB/s  ({rec['samples']} samples in "
                    f"{rec['seconds']:.2f} s)")
            except Exception as e:  # keep going: one failed run must not lose the others
                rec["error"] = str(e)
                log(f"  {rec['id']:<34} FAILED: {e}")
            runs.append(rec)
        with open(result_path, "w") as f:  # after every round, so an interrupted run keeps data
            json.dump({"meta": meta, "calibration": ctx["calibration"], "runs": runs}, f, indent=1)

    summary, best_slices = summarize(cs, runs)
    meta["loadavg_end"] = os.getloadavg()
    meta["seconds"] = time.perf_counter() - t_start
    with open(result_path, "w") as f:
        json.dump({"meta": meta, "calibration": ctx["calibration"], "runs": runs,
                   "summary": summary}, f, indent=1)

    order_key = {k: i for i, k in enumerate(CONTENDER_ORDER)}
    fkey = {k: i for i, k in enumerate(FILES)}
    mkey = {k: i for i, k in enumerate(H5FEED_MODES)}
    summary.sort(key=lambda r: (fkey[r["file"]], order_key[r["contender"]], mkey[r["mode"]],
                                r["workers"]))
    print(f"h5feed vs PyTorch DataLoader / h5py / limits: {rows} samples x {VALUES} float64 -> "
          f"float32 features + int64 labels, batch {BATCH}")
    print(f"{meta['cpus']} CPUs ({meta['cpu']}), load {meta['loadavg_start'][0]:.2f} at start, "
          f"{meta['loadavg_end'][0]:.2f} at end; python {meta['python']}, numpy {meta['numpy']}, "
          f"h5py {meta['h5py']}, HDF5 {meta['hdf5']}, torch {meta['torch']}; "
          f"{meta['h5feed_version']}")
    if a.h5feed_cache_mb is not None:
        print(f"h5feed configs: cache_mb {a.h5feed_cache_mb}")
    print(f"page cache: WARM (each file read with cat twice first); {a.rounds} rounds, "
          f"order {a.order}; each run: whole epochs for >= {ctx['min_seconds']:g} s, "
          f"cut at a budget of {budget:g} s")
    shards = {k: v[0] for k, v in ctx["plan"].items() if v[0] > 1}
    if shards:
        print("h5feed runs on part of an epoch (rank 0 of W, to fit the budget): " +
              ", ".join(f"{k} 1/{v}" for k, v in sorted(shards.items())))
    cut = sorted({r["id"] for r in runs if r.get("stopped_by_budget")})
    if cut:
        print("peer runs stopped by the budget (samples/s from the part they did): " +
              ", ".join(cut))
    print()
    print(fmt_table(summary))
    print()
    print("samples/s, GB/s: medians over rounds; GB/s = float32 features out (samples/s x 4096 / "
          "10^9), labels not counted.")
    print("ratios: median over rounds of (this run / the reference's run in the same round):")
    print("  /DL      vs dataloader (default cache), same file, shuffle off for mode none, on "
          "for global and chunk")
    print("  /expert  vs dataloader-expert (1.2 GB chunk cache), same pairing")
    print("  /slices  vs the faster h5py-slices variant on the same file (sequential, one "
          "process): " + (", ".join(f"{f} {i.split(':')[0]}" for f, i in best_slices.items())
                          or "not run"))
    print("  /cat     vs cat of the same file, as samples/s (all samples per cat time)")
    print("  /pread   vs pread-convert (2 threads, contiguous file), as samples/s")
    print("  /C       h5feed-torch only: vs h5feed bench (the C tool, no Python) with the same "
          "file, mode and workers")
    print("  dig%     h5feed only: share of its seconds spent hashing the output (the bench's "
          "digest, on the consumer thread, counted in its time; the peers hash nothing)")
    for r in runs:
        if "error" in r:
            print(f"FAILED {r['id']} round {r['round']}: {r['error']}")
    cat_rates = {}
    for r in runs:
        if r["contender"] == "cat" and "file_gb_per_s" in r:
            cat_rates.setdefault(r["file"], []).append(r["file_gb_per_s"])
    if cat_rates:
        print("cat of the stored file: " + ", ".join(
            f"{k} {statistics.median(v):.2f} GB/s" for k, v in cat_rates.items()))
    print(f"raw numbers: {result_path}")


if __name__ == "__main__":
    sys.exit(main())
