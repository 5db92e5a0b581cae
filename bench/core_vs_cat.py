#!/usr/bin/python3
"""h5feed bench beside `cat FILE >/dev/null` of the same cached file, interleaved.

Usage: bench/core_vs_cat.py [--h5feed build/h5feed] [--rounds 5] [--dir bench-data]
                            [--workers 2] [--shuffle none]

Makes (once) a ~1 GiB float64 file, 131072 samples x 1024 values, chunks of 256 rows (2 MiB),
uncompressed, with `h5feed synth`; warms the page cache; then runs A B A B ...: `cat FILE`
and `h5feed bench CONFIG --json` (float64 -> float32 features plus int64 labels). It prints
each pair and the median of the pairwise ratios, because this machine is shared and a single
run swings by tens of percent. Needs only the h5feed build and coreutils.
"""
import argparse
import json
import os
import statistics
import subprocess
import time


def run_cat(path):
    t0 = time.perf_counter()
    subprocess.run(["cat", path], stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def run_bench(h5feed, config, digest):
    extra = [] if digest else ["--no-digest"]
    out = subprocess.run([h5feed, "bench", config, "--json", *extra], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--h5feed", default="build-bench/h5feed")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--dir", default="bench-data")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--shuffle", default="none")
    a = ap.parse_args()

    os.makedirs(a.dir, exist_ok=True)
    path = os.path.abspath(os.path.join(a.dir, "f64-chunked.h5"))
    if not os.path.exists(path):
        subprocess.run([a.h5feed, "synth", "--out", path, "--rows", "131072", "--shape", "1024",
                        "--dtype", "float64", "--chunk-rows", "256"], check=True)
    config = os.path.join(a.dir, f"core-{a.shuffle}-{a.workers}.json")
    with open(config, "w") as f:
        json.dump({"files": [path],
                   "fields": [{"name": "x", "dataset": "/features", "dtype": "float32"},
                              {"name": "y", "dataset": "/labels", "dtype": "int64"}],
                   "batch_size": 256, "shuffle": a.shuffle, "workers": a.workers,
                   "prefetch": 4}, f)
    size = os.path.getsize(path)
    run_cat(path)  # warm the page cache
    print(f"file {path}: {size / 1e9:.3f} GB; workers {a.workers}; shuffle {a.shuffle}")
    print("h5feed runs twice per round: without and with its digest (hashing every output byte")
    print("on the consumer thread, as `h5feed bench` does by default)")
    print(f"{'round':>5} {'cat GB/s':>9} {'samples/s':>10} {'out GB/s':>9} {'in GB/s':>8} "
          f"{'in/cat':>7} {'+digest samples/s':>18} {'in/cat':>7}")
    ratios, ratios_d, rows = [], [], []
    for r in range(a.rounds):
        cat_s = run_cat(path)
        b = run_bench(a.h5feed, config, False)
        d = run_bench(a.h5feed, config, True)
        cat_gbs = size / cat_s / 1e9
        in_gbs = size / b["seconds"] / 1e9  # stored bytes consumed per second
        in_d = size / d["seconds"] / 1e9
        ratios.append(in_gbs / cat_gbs)
        ratios_d.append(in_d / cat_gbs)
        rows.append((cat_gbs, b["samples_per_s"], b["gb_per_s"], in_gbs, d["samples_per_s"],
                     d["gb_per_s"]))
        print(f"{r:>5} {cat_gbs:>9.2f} {b['samples_per_s']:>10.0f} {b['gb_per_s']:>9.2f} "
              f"{in_gbs:>8.2f} {in_gbs / cat_gbs:>7.2f} {d['samples_per_s']:>18.0f} "
              f"{in_d / cat_gbs:>7.2f}")
    med = lambda i: statistics.median(x[i] for x in rows)
    print(f"median: cat {med(0):.2f} GB/s; h5feed {med(1):.0f} samples/s, {med(2):.2f} GB/s "
          f"out (float32+int64), {med(3):.2f} GB/s of file; with digest {med(4):.0f} samples/s, "
          f"{med(5):.2f} GB/s out")
    print(f"median pairwise ratio (file bytes/s) h5feed/cat = {statistics.median(ratios):.2f}; "
          f"with digest {statistics.median(ratios_d):.2f}")


if __name__ == "__main__":
    main()
