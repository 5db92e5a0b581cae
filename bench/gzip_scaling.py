#!/usr/bin/python3
"""h5feed on gzip data: 1 vs 2 workers, and against a 2-thread zlib pipeline limit, interleaved.

Usage: bench/gzip_scaling.py [--h5feed build-bench/h5feed] [--rounds 5] [--dir bench-data]
                             [--file bench-data/f64-131072-gzip.h5] [--shuffle none]

The file: float64 samples, chunked, gzip + shuffle (bench/compare.py makes
bench-data/f64-131072-gzip.h5: 131072 x 1024, chunks of 256 rows, gzip 1). Each round runs, in
this order: h5feed with 1 worker, h5feed with 2 workers, and bench/limit_zlib_pipeline.c with 2
threads (pread + zlib uncompress + unshuffle + float64->float32 per chunk, no queues or cache:
the work h5feed does, with zlib). Outputs are float32 features only. It prints every round and
the medians of the pairwise ratios w2/w1 and w2/limit. Needs cc, zlib1g-dev, python3-h5py.
"""
import argparse
import json
import os
import statistics
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))


def chunk_list(path, out):
    import h5py
    with h5py.File(path, "r") as f:
        d = f["features"]
        with open(out, "w") as o:
            for i in range(d.id.get_num_chunks()):
                info = d.id.get_chunk_info(i)
                o.write(f"{info.byte_offset} {info.size}\n")
        return d.chunks[0] * (d.size // d.shape[0]) * d.dtype.itemsize


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--h5feed", default="build-bench/h5feed")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--dir", default="bench-data")
    ap.add_argument("--file", default="bench-data/f64-131072-gzip.h5")
    ap.add_argument("--shuffle", default="none")
    a = ap.parse_args()
    path = os.path.abspath(a.file)
    limit = os.path.join(a.dir, "limit_zlib_pipeline")
    subprocess.run(["cc", "-O2", "-pthread", "-o", limit,
                    os.path.join(HERE, "limit_zlib_pipeline.c"), "-lz"], check=True)
    chunks = os.path.join(a.dir, "gzip-chunks.txt")
    chunk_bytes = chunk_list(path, chunks)
    configs = {}
    for w in (1, 2):
        configs[w] = os.path.join(a.dir, f"gzip-scaling-{a.shuffle}-w{w}.json")
        with open(configs[w], "w") as f:
            json.dump({"files": [path],
                       "fields": [{"name": "x", "dataset": "/features", "dtype": "float32"}],
                       "batch_size": 256, "shuffle": a.shuffle, "workers": w}, f)
    subprocess.run(["cat", path], stdout=subprocess.DEVNULL, check=True)
    print(f"{path}: shuffle {a.shuffle}; GB/s of float32 output")
    print(f"{'round':>5} {'h5feed w1':>10} {'h5feed w2':>10} {'zlib limit':>10} "
          f"{'w2/w1':>6} {'w2/limit':>8}")
    r21, r2l, rows = [], [], []
    for r in range(a.rounds):
        g = {}
        for w in (1, 2):
            out = subprocess.run([a.h5feed, "bench", configs[w], "--json", "--no-digest"],
                                 check=True, capture_output=True, text=True).stdout
            g[w] = json.loads(out)["gb_per_s"]
        out = subprocess.run([limit, path, chunks, str(chunk_bytes), "2"], check=True,
                             capture_output=True, text=True).stdout
        lim = json.loads(out)["gb_per_s"]
        r21.append(g[2] / g[1])
        r2l.append(g[2] / lim)
        rows.append((g[1], g[2], lim))
        print(f"{r:>5} {g[1]:>10.3f} {g[2]:>10.3f} {lim:>10.3f} {g[2] / g[1]:>6.2f} "
              f"{g[2] / lim:>8.2f}")
    med = [statistics.median(x[i] for x in rows) for i in range(3)]
    print(f"median GB/s: h5feed w1 {med[0]:.3f}, w2 {med[1]:.3f}, zlib limit {med[2]:.3f}; "
          f"median pairwise ratios: w2/w1 {statistics.median(r21):.2f}, "
          f"w2/limit {statistics.median(r2l):.2f}")


if __name__ == "__main__":
    main()
