#!/usr/bin/python3
"""h5feed against the usual PyTorch loader (DataLoader over an h5py Dataset, 2 worker
processes) on data that is NOT in the page cache: what a training job sees on a dataset larger
than memory, or on its first epoch. compare.py measures the same contenders on cached data.

Each run reads the same number of samples, drawn at random from the whole file (global
shuffle): h5feed bench reads rank 0 of --world (1/W of an epoch), the DataLoader a random
subset of the same size in random order. The file is evicted from the page cache before every
run (`posix_fadvise(POSIX_FADV_DONTNEED)`; h5feed bench does it itself with --cold). Rounds
interleave the contenders in a random order; the report gives each one's median samples/s and
the median of the per-round ratios h5feed / DataLoader.

    /usr/bin/python3 bench/cold_peer.py [--h5feed build-bench/h5feed] [--rounds 5]

Needs Debian's python3-h5py, python3-numpy and python3-torch, and compare.py's data files in
--dir (made by `bench/compare.py`, or here with `h5feed synth` when missing)."""
import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time

ROWS, VALUES, BATCH = 131072, 1024, 256
FILES = {"contig": ["--chunk-rows", "0"], "chunked": ["--chunk-rows", "256"]}


def evict(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def child(path, count, seed, workers):
    """The peer: reads `count` random samples through a DataLoader; prints samples/s."""
    import h5py
    import numpy as np
    import torch
    from torch.utils.data import DataLoader, Dataset, Subset

    class H5Dataset(Dataset):
        """The usual pattern (as compare.py's): the file opened lazily in each worker."""

        def __init__(self):
            self.f = None

        def __len__(self):
            return ROWS

        def __getitem__(self, i):
            if self.f is None:
                self.f = h5py.File(path, "r")
                self.x, self.y = self.f["/features"], self.f["/labels"]
            return torch.from_numpy(self.x[i].astype(np.float32)), int(self.y[i])

    picks = random.Random(seed).sample(range(ROWS), count)
    t0 = time.perf_counter()
    loader = DataLoader(Subset(H5Dataset(), picks), batch_size=BATCH, shuffle=True,
                        num_workers=workers)
    samples = 0
    for x, y in loader:
        assert x.dtype == torch.float32 and x.shape[1] == VALUES and y.dtype == torch.int64
        samples += x.shape[0]
    seconds = time.perf_counter() - t0
    print(json.dumps({"samples": samples, "samples_per_s": samples / seconds}))


def run_h5feed(tool, cfg, path):
    p = subprocess.run([tool, "bench", cfg, "--json", "--no-digest", "--cold", path],
                       capture_output=True, text=True, timeout=1800)
    if p.returncode != 0:
        sys.exit(f"h5feed bench failed ({p.returncode}):\n{p.stderr}")
    r = json.loads(p.stdout)
    assert not r["warm"]
    return r["samples_per_s"], r["samples"]


def run_peer(path, count, seed, workers):
    evict(path)
    p = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", path, str(count),
                        str(seed), str(workers)], capture_output=True, text=True, timeout=3600)
    if p.returncode != 0:
        sys.exit(f"DataLoader child failed ({p.returncode}):\n{p.stderr}")
    r = json.loads(p.stdout.strip().splitlines()[-1])
    return r["samples_per_s"], r["samples"]


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
        return
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    here = os.path.dirname(os.path.abspath(__file__))
    default_tool = os.path.join(here, "..", "build-bench", "h5feed")
    if not os.path.exists(default_tool):
        default_tool = os.path.join(here, "..", "build", "h5feed")
    ap.add_argument("--h5feed", default=default_tool)
    ap.add_argument("--dir", default="bench-data")
    ap.add_argument("--world", type=int, default=16, help="each run reads 1/W of the file")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    count = ROWS // a.world
    tmp = tempfile.mkdtemp(prefix="h5feed-cold-peer-")
    cases = []
    for kind, opts in FILES.items():
        path = os.path.abspath(os.path.join(a.dir, f"f64-{ROWS}-{kind}.h5"))
        if not os.path.exists(path):
            subprocess.run([a.h5feed, "synth", "--out", path, "--rows", str(ROWS), "--shape",
                            str(VALUES), "--dtype", "float64", "--labels", "10", *opts],
                           check=True)
        cases.append((kind, path))
    rng = random.Random(a.seed)
    results = {}
    print(f"cold page cache, global shuffle, {count} random samples per run of {ROWS}, "
          f"{a.workers} workers each, {a.rounds} rounds; h5feed {a.h5feed}", flush=True)
    for rnd in range(a.rounds):
        jobs = [(who, kind, path) for who in ("h5feed", "dataloader") for kind, path in cases]
        rng.shuffle(jobs)
        for who, kind, path in jobs:
            if who == "h5feed":
                cfg = os.path.join(tmp, f"{kind}-{rnd}.json")
                with open(cfg, "w") as f:
                    json.dump({"files": [path],
                               "fields": [{"name": "x", "dataset": "/features", "dtype": "float32"},
                                          {"name": "y", "dataset": "/labels", "dtype": "int64"}],
                               "batch_size": BATCH, "shuffle": "global", "seed": rnd,
                               "workers": a.workers, "device": "cpu",
                               "shard": {"rank": 0, "world_size": a.world}}, f)
                rate, n = run_h5feed(a.h5feed, cfg, path)
            else:
                rate, n = run_peer(path, count, rnd, a.workers)
            results.setdefault((who, kind), []).append(rate)
            print(f"round {rnd + 1} {who:10} {kind:8}: {rate:9.0f} samples/s ({n} samples)",
                  flush=True)
    print()
    print("| file | h5feed samples/s | DataLoader samples/s | h5feed / DataLoader (median of rounds) |")
    print("|---|---|---|---|")
    for kind, _ in cases:
        h, d = results[("h5feed", kind)], results[("dataloader", kind)]
        ratios = [x / y for x, y in zip(h, d)]
        print(f"| {kind} | {statistics.median(h):.0f} | {statistics.median(d):.0f} "
              f"| {statistics.median(ratios):.1f} ({', '.join(f'{r:.1f}' for r in ratios)}) |")


if __name__ == "__main__":
    main()
