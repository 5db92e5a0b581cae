#!/usr/bin/python3
"""Does h5feed scale with the number of chunks? 1k-chunk vs 100k-chunk datasets, interleaved.

Usage: bench/chunk_scaling.py [--h5feed build/h5feed] [--rounds 5] [--dir bench-data]

Both datasets have the same chunk (16 rows x 16 float64 = 2 KiB) and differ only in how many
chunks they hold (1,000 vs 100,000), written with `h5feed synth` (gzip 1 + shuffle, so every
chunk goes through the chunk index and the codec). For each run it reports the time from open
to the first batch and the epoch time per chunk; rounds alternate A B A B and the medians and the
median of the pairwise per-chunk ratios are printed. HDF5's own H5Dget_chunk_info would make
the 100k table O(n^2) (minutes); h5feed walks the index once.
"""
import argparse
import json
import os
import statistics
import subprocess

SHAPE, CHUNK_ROWS = 16, 16


def make(h5feed, path, chunks):
    if not os.path.exists(path):
        subprocess.run([h5feed, "synth", "--out", path, "--rows", str(chunks * CHUNK_ROWS),
                        "--shape", str(SHAPE), "--dtype", "float64", "--chunk-rows",
                        str(CHUNK_ROWS), "--gzip", "1", "--shuffle"], check=True,
                       stdout=subprocess.DEVNULL)


def run(h5feed, config):
    out = subprocess.run([h5feed, "bench", config, "--json", "--no-digest"], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--h5feed", default="build-bench/h5feed")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--dir", default="bench-data")
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    sizes = {"1k": 1000, "100k": 100000}
    configs = {}
    for name, chunks in sizes.items():
        path = os.path.abspath(os.path.join(a.dir, f"chunks-{name}.h5"))
        make(a.h5feed, path, chunks)
        subprocess.run(["cat", path], stdout=subprocess.DEVNULL, check=True)
        configs[name] = os.path.join(a.dir, f"chunks-{name}.json")
        with open(configs[name], "w") as f:
            json.dump({"files": [path],
                       "fields": [{"name": "x", "dataset": "/features", "dtype": "float32"}],
                       "batch_size": 256, "shuffle": "chunk", "workers": 2}, f)
    rows = {name: [] for name in sizes}
    ratios = []
    print(f"{'round':>5} {'dataset':>8} {'first batch ms':>15} {'epoch s':>8} {'us/chunk':>9}")
    for r in range(a.rounds):
        per = {}
        for name, chunks in sizes.items():
            b = run(a.h5feed, configs[name])
            per[name] = b["seconds"] / chunks * 1e6
            rows[name].append((b["first_batch_seconds"] * 1e3, b["seconds"], per[name]))
            print(f"{r:>5} {name:>8} {b['first_batch_seconds'] * 1e3:>15.1f} "
                  f"{b['seconds']:>8.3f} {per[name]:>9.2f}")
        ratios.append(per["100k"] / per["1k"])
    for name in sizes:
        med = [statistics.median(x[i] for x in rows[name]) for i in range(3)]
        print(f"median {name}: first batch {med[0]:.1f} ms, epoch {med[1]:.3f} s, "
              f"{med[2]:.2f} us per chunk")
    print(f"median pairwise ratio of per-chunk epoch cost, 100k / 1k: "
          f"{statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
