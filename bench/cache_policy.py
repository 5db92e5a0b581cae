#!/usr/bin/python3
"""Two builds of h5feed against each other on global shuffle over gzip chunks that do not all
fit the chunk cache: the case where the cache's eviction rule decides how often each chunk is
decoded (loader/chunkcache.h). Made to compare the cache with foresight against the plain LRU
cache it replaced, but any two builds of the tool can be compared.

Each round runs every (build, cache_mb) pair once, in a random order (A B A B ...: the machine
is shared and noisy, so only ratios measured side by side count). Per cache size it reports
each build's median samples/s and chunk decodes, and the median over rounds of the per-round
ratio NEW / OLD of samples/s.

    /usr/bin/python3 bench/cache_policy.py --old OLD/h5feed --new build-bench/h5feed

The data file is bench-data/f64-131072-gzip.h5 (as compare.py makes it: 131072 x 1024 float64,
chunks of 256 rows, shuffle + gzip 1; made here with `h5feed synth` when missing). Its chunks
decode to 1 GiB; --cache-mb 256,512,768 gives caches of 1/4, 1/2 and 3/4 of that. --world W
runs rank 0 of W (1/W of an epoch; every batch still draws from all 512 chunks) to keep a run
short."""
import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile


def make_data(tool, path):
    if os.path.exists(path):
        return
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    subprocess.run([tool, "synth", "--out", path, "--rows", "131072", "--shape", "1024",
                    "--dtype", "float64", "--chunk-rows", "256", "--gzip", "1", "--shuffle",
                    "--labels", "10"], check=True)


def config(path, data, cache_mb, world, workers, seed):
    cfg = {"files": [os.path.abspath(data)],
           "fields": [{"name": "x", "dataset": "/features", "dtype": "float32"},
                      {"name": "y", "dataset": "/labels", "dtype": "int64"}],
           "batch_size": 256, "shuffle": "global", "seed": seed, "workers": workers,
           "device": "cpu", "cache_mb": cache_mb,
           "shard": {"rank": 0, "world_size": world}}
    with open(path, "w") as f:
        json.dump(cfg, f)


def run(tool, cfg):
    p = subprocess.run([tool, "bench", cfg, "--json", "--no-digest"], capture_output=True,
                       text=True, timeout=1800)
    if p.returncode != 0:
        sys.exit(f"{tool} bench {cfg} failed ({p.returncode}):\n{p.stderr}")
    r = json.loads(p.stdout)
    return r["samples_per_s"], r["chunk_decodes"], r["samples"]


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old", required=True, help="the h5feed tool to compare against")
    ap.add_argument("--new", required=True, help="the h5feed tool under test")
    ap.add_argument("--data", default="bench-data/f64-131072-gzip.h5")
    ap.add_argument("--cache-mb", default="256,512,768")
    ap.add_argument("--world", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    make_data(a.new, a.data)
    sizes = [int(s) for s in a.cache_mb.split(",")]
    tmp = tempfile.mkdtemp(prefix="h5feed-cache-policy-")
    rng = random.Random(a.seed)
    results = {}  # (build, size) -> [(samples/s, decodes)]
    print(f"{a.data}: global shuffle, rank 0 of {a.world}, workers {a.workers}, "
          f"{a.rounds} rounds; old {a.old}, new {a.new}", flush=True)
    for rnd in range(a.rounds):
        jobs = [(b, s) for b in ("old", "new") for s in sizes]
        rng.shuffle(jobs)
        for build, size in jobs:
            cfg = os.path.join(tmp, f"c{size}-r{rnd}.json")
            config(cfg, a.data, size, a.world, a.workers, seed=rnd)
            rate, decodes, samples = run(a.old if build == "old" else a.new, cfg)
            results.setdefault((build, size), []).append((rate, decodes))
            print(f"round {rnd + 1} {build:3} cache_mb {size:5}: {rate:10.0f} samples/s, "
                  f"{decodes:7} decodes ({samples} samples)", flush=True)
    print()
    print("| cache_mb | old samples/s | new samples/s | old decodes | new decodes | new/old (median of rounds) |")
    print("|---|---|---|---|---|---|")
    for size in sizes:
        old, new = results[("old", size)], results[("new", size)]
        ratios = [n[0] / o[0] for o, n in zip(old, new)]
        print(f"| {size} | {statistics.median(r for r, _ in old):.0f} "
              f"| {statistics.median(r for r, _ in new):.0f} "
              f"| {statistics.median(d for _, d in old):.0f} "
              f"| {statistics.median(d for _, d in new):.0f} "
              f"| {statistics.median(ratios):.2f} ({', '.join(f'{r:.2f}' for r in ratios)}) |")


if __name__ == "__main__":
    main()
