#!/usr/bin/python3
"""Two builds of h5feed side by side (OLD against NEW) on the cases where a change to the
reader should show. Each round runs every (build, case) pair once, in a random order (A B A B
...: the machine is shared and noisy, so only ratios measured side by side count). Per case it
reports each build's median samples/s and chunk decodes, and the median over rounds of the
per-round ratio NEW / OLD of samples/s.

    /usr/bin/python3 bench/ab.py cache --old OLD/h5feed --new build-bench/h5feed
    /usr/bin/python3 bench/ab.py cold  --old OLD/h5feed --new build-bench/h5feed
    /usr/bin/python3 bench/ab.py fresh --old OLD/h5feed --new build-bench/h5feed

Suites:
  cache  global shuffle over gzip chunks that do not all fit the chunk cache (cache_mb 256, 512
         and 768 of the 1 GiB the chunks decode to): where the cache's eviction rule decides how
         often each chunk is decoded (loader/chunkcache.h; made to compare the cache with
         foresight against the LRU cache it replaced).
  cold   global shuffle over data (contiguous, chunked, gzip chunks) that is not in the page
         cache (`h5feed bench --cold` evicts the file first), and the same warm (the file read
         whole just before, 32 epochs): where reading ahead of a batch's rows pays when they come
         from the disk, and must cost nothing when they are cached (reader.c ask_ahead).
  fresh  one epoch from open of the whole file (world 1), warm page cache: gzip chunks with
         shuffle none and chunk, uncompressed chunks with none. A pass from open writes every
         slot and cache entry for the first time: where the cost of first touches shows
         (alloc.c, MADV_HUGEPAGE).

The data files are compare.py's, in --dir (default bench-data), made here with `h5feed synth`
when missing: 131072 x 1024 float64 (1 GiB of features), contiguous; chunked 256 rows; chunked
256 rows with shuffle + gzip 1. --world W runs rank 0 of W (1/W of an epoch; with global
shuffle every batch still draws from the whole file) to keep runs short."""
import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile

ROWS = 131072
FILES = {  # name -> h5feed synth options
    "contig": ["--chunk-rows", "0"],
    "chunked": ["--chunk-rows", "256"],
    "gzip": ["--chunk-rows", "256", "--gzip", "1", "--shuffle"],
}


def data_path(a, kind):
    return os.path.join(a.dir, f"f64-{ROWS}-{kind}.h5")


def make_data(tool, path, kind):
    if os.path.exists(path):
        return
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    subprocess.run([tool, "synth", "--out", path, "--rows", str(ROWS), "--shape", "1024",
                    "--dtype", "float64", "--labels", "10", *FILES[kind]], check=True)


def config(path, data, world, workers, seed, fields, **extra):
    cfg = {"files": [os.path.abspath(data)],
           "fields": [{"name": "x", "dataset": "/features", "dtype": "float32"}] +
                     ([{"name": "y", "dataset": "/labels", "dtype": "int64"}] if fields == 2
                      else []),
           "batch_size": 256, "shuffle": "global", "seed": seed, "workers": workers,
           "device": "cpu", "shard": {"rank": 0, "world_size": world}, **extra}
    with open(path, "w") as f:
        json.dump(cfg, f)


def run(tool, cfg, cold=None):
    args = [tool, "bench", cfg, "--json", "--no-digest"]
    if cold is not None:
        args += ["--cold", cold]
    p = subprocess.run(args, capture_output=True, text=True, timeout=1800)
    if p.returncode != 0:
        sys.exit(f"{' '.join(args)} failed ({p.returncode}):\n{p.stderr}")
    r = json.loads(p.stdout)
    if cold is not None and r["warm"]:
        sys.exit(f"{' '.join(args)}: the report says warm")
    return r["samples_per_s"], r["chunk_decodes"], r["samples"]


def warm_up(path):
    with open(path, "rb") as f:
        while f.read(1 << 24):
            pass


def cases(a):
    """(label, data kind, config extras, cold) for the suite."""
    if a.suite == "cache":
        return [(f"cache_mb {mb}", "gzip", {"cache_mb": mb}, False)
                for mb in (256, 512, 768)]
    if a.suite == "fresh":
        whole = {"shard": {"rank": 0, "world_size": 1}}
        return [("gzip none", "gzip", {"shuffle": "none", **whole}, False),
                ("gzip chunk", "gzip", {"shuffle": "chunk", **whole}, False),
                ("chunked none", "chunked", {"shuffle": "none", **whole}, False)]
    return [(f"{kind} {'cold' if cold else 'warm'}", kind,
             {} if cold else {"epochs": 32}, cold)
            for kind in ("contig", "chunked", "gzip") for cold in (True, False)]


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("suite", choices=("cache", "cold", "fresh"))
    ap.add_argument("--old", required=True, help="the h5feed tool to compare against")
    ap.add_argument("--new", required=True, help="the h5feed tool under test")
    ap.add_argument("--dir", default="bench-data")
    ap.add_argument("--world", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    todo = cases(a)
    for kind in {k for _, k, _, _ in todo}:
        make_data(a.new, data_path(a, kind), kind)
    tmp = tempfile.mkdtemp(prefix="h5feed-ab-")
    rng = random.Random(a.seed)
    results = {}  # (build, label) -> [(samples/s, decodes)]
    what = ("one epoch from open, world 1" if a.suite == "fresh"
            else f"global shuffle, rank 0 of {a.world}")
    print(f"suite {a.suite}: {what}, workers {a.workers}, {a.rounds} rounds; old {a.old}, "
          f"new {a.new}", flush=True)
    for rnd in range(a.rounds):
        jobs = [(b, c) for b in ("old", "new") for c in todo]
        rng.shuffle(jobs)
        for build, (label, kind, extra, cold) in jobs:
            data = data_path(a, kind)
            cfg = os.path.join(tmp, f"{label.replace(' ', '-')}-r{rnd}.json")
            config(cfg, data, a.world, a.workers, rnd, 2 if a.suite == "cache" else 1, **extra)
            if not cold:
                warm_up(data)
            rate, decodes, samples = run(a.old if build == "old" else a.new, cfg,
                                         data if cold else None)
            results.setdefault((build, label), []).append((rate, decodes))
            print(f"round {rnd + 1} {build:3} {label:15}: {rate:10.0f} samples/s, "
                  f"{decodes:7} decodes ({samples} samples)", flush=True)
    print()
    print("| case | old samples/s | new samples/s | old decodes | new decodes "
          "| new/old (median of rounds) |")
    print("|---|---|---|---|---|---|")
    for label, _, _, _ in todo:
        old, new = results[("old", label)], results[("new", label)]
        ratios = [n[0] / o[0] for o, n in zip(old, new)]
        print(f"| {label} | {statistics.median(r for r, _ in old):.0f} "
              f"| {statistics.median(r for r, _ in new):.0f} "
              f"| {statistics.median(d for _, d in old):.0f} "
              f"| {statistics.median(d for _, d in new):.0f} "
              f"| {statistics.median(ratios):.2f} ({', '.join(f'{r:.2f}' for r in ratios)}) |")


if __name__ == "__main__":
    main()
