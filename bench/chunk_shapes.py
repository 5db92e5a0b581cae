#!/usr/bin/python3
"""h5feed on h5py's default chunking of images, against the same data chunked by whole samples
and against the PyTorch DataLoader + h5py peer.

h5py's chunks=True on a 16384 x 64 x 64 x 3 uint8 dataset picks chunks of 1024 x 8 x 8 x 1: every
sample spans 192 chunks. The contenders, interleaved (A B C A B C ...), global shuffle, 2 workers,
batches of 256 samples as float32:

  h5feed-split   h5feed bench, one epoch from open, on the chunks=True file
  h5feed-whole   the same on the same pixels chunked 64 x 64 x 64 x 3 (whole samples)
  dataloader     torch DataLoader(shuffle=True, num_workers=2) over an h5py Dataset on the
                 chunks=True file, for --budget seconds (it does not finish an epoch)

Reported: samples/s of each run and the medians over rounds of the per-round ratios
h5feed-split / h5feed-whole and h5feed-split / dataloader. Both files are gzip level 4 (h5py's
default) of image-like pixels (smooth gradients plus noise), written once into --dir.

Usage: /usr/bin/python3 bench/chunk_shapes.py [--h5feed build/h5feed] [--rounds 3]
                                              [--budget 20] [--rows 16384] [--dir bench-data]
Needs Debian's python3-h5py, python3-numpy and python3-torch.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import h5py
import numpy as np

SIDE, CH, BATCH = 64, 3, 256


def images(lo, hi, rng):
    """Image-like uint8 samples lo..hi: gradients that differ per sample, plus noise."""
    y = np.arange(SIDE)[:, None, None]
    x = np.arange(SIDE)[None, :, None]
    c = np.arange(CH)[None, None, :]
    out = np.empty((hi - lo, SIDE, SIDE, CH), dtype=np.uint8)
    for k, i in enumerate(range(lo, hi)):
        base = (y * (1 + i % 3) + x * (1 + i % 5) + c * 60 + i * 7) % 256
        out[k] = (base + rng.integers(0, 12, size=base.shape)) % 256
    return out


def ensure_files(folder, rows):
    """Writes the two files once; returns their paths and chunk shapes."""
    os.makedirs(folder, exist_ok=True)
    paths = {"split": os.path.join(folder, f"img-{rows}-chunks-true.h5"),
             "whole": os.path.join(folder, f"img-{rows}-whole.h5")}
    chunks = {"split": True, "whole": (64, SIDE, SIDE, CH)}
    for key, path in paths.items():
        try:
            with h5py.File(path, "r") as f:
                if f["images"].shape[0] == rows:
                    continue
        except (OSError, KeyError):
            pass
        rng = np.random.default_rng(1)
        with h5py.File(path + ".tmp", "w") as f:
            d = f.create_dataset("images", shape=(rows, SIDE, SIDE, CH), dtype="u1",
                                 chunks=chunks[key], compression="gzip")
            f.create_dataset("labels", data=np.arange(rows, dtype="<i8") % 1000)
            for lo in range(0, rows, 1024):
                d[lo:lo + 1024] = images(lo, min(lo + 1024, rows), rng)
        os.replace(path + ".tmp", path)
    shapes = {}
    for key, path in paths.items():
        with h5py.File(path, "r") as f:
            shapes[key] = f["images"].chunks
    return paths, shapes


def run_h5feed(tool, path, folder, tag):
    cfg = {"files": [path],
           "fields": [{"name": "x", "dataset": "/images", "dtype": "float32"},
                      {"name": "y", "dataset": "/labels", "dtype": "int64"}],
           "batch_size": BATCH, "shuffle": "global", "workers": 2, "epochs": 1,
           "device": "cpu", "seed": int(time.time())}
    cfg_path = os.path.join(folder, f"chunk_shapes-{tag}.json")
    with open(cfg_path, "w") as f:
        json.dump(cfg, f)
    p = subprocess.run([tool, "bench", cfg_path, "--json", "--no-digest"], capture_output=True,
                       text=True, timeout=3600)
    if p.returncode != 0:
        raise SystemExit(f"h5feed bench {cfg_path}: exit {p.returncode}: {p.stderr}")
    o = json.loads(p.stdout)
    return {"samples_per_s": o["samples_per_s"], "samples": o["samples"],
            "seconds": o["seconds"], "chunk_decodes": o["chunk_decodes"],
            "fallback_reads": o["fallback_reads"]}


def child(path, budget):
    """The peer, in a process of its own: DataLoader + h5py, shuffled, for `budget` seconds."""
    import torch
    from torch.utils.data import DataLoader, Dataset

    class H5Dataset(Dataset):
        def __init__(self, path):
            self.path, self.f = path, None
            with h5py.File(path, "r") as f:
                self.n = len(f["images"])

        def __len__(self):
            return self.n

        def __getitem__(self, i):
            if self.f is None:  # opened lazily, once per worker process
                self.f = h5py.File(self.path, "r")
                self.x, self.y = self.f["images"], self.f["labels"]
            return torch.from_numpy(self.x[i].astype(np.float32)), int(self.y[i])

    t0 = time.perf_counter()
    loader = DataLoader(H5Dataset(path), batch_size=BATCH, shuffle=True, num_workers=2)
    samples = 0
    for x, _ in loader:
        samples += x.shape[0]
        if time.perf_counter() - t0 >= budget:
            break
    seconds = time.perf_counter() - t0
    print(json.dumps({"samples": samples, "seconds": seconds,
                      "samples_per_s": samples / seconds}))


def run_peer(path, budget):
    p = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", path, str(budget)],
                       capture_output=True, text=True, timeout=budget * 20 + 600)
    if p.returncode != 0:
        raise SystemExit(f"dataloader: exit {p.returncode}: {p.stderr[-2000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(sys.argv[2], float(sys.argv[3]))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--h5feed", default=os.path.join(here, "..", "build", "h5feed"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--budget", type=float, default=20.0)
    ap.add_argument("--rows", type=int, default=16384)
    ap.add_argument("--dir", default=os.path.join(here, "..", "bench-data"))
    args = ap.parse_args()
    paths, shapes = ensure_files(args.dir, args.rows)
    print(f"chunks: chunks=True file {shapes['split']}, whole-sample file {shapes['whole']}",
          flush=True)
    runs = {"h5feed-split": [], "h5feed-whole": [], "dataloader": []}
    for r in range(args.rounds):
        runs["h5feed-split"].append(run_h5feed(args.h5feed, paths["split"], args.dir, "split"))
        runs["h5feed-whole"].append(run_h5feed(args.h5feed, paths["whole"], args.dir, "whole"))
        runs["dataloader"].append(run_peer(paths["split"], args.budget))
        print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]['samples_per_s']:.1f}/s"
                                             for k, v in runs.items()), flush=True)
    split = [x["samples_per_s"] for x in runs["h5feed-split"]]
    whole = [x["samples_per_s"] for x in runs["h5feed-whole"]]
    peer = [x["samples_per_s"] for x in runs["dataloader"]]
    vs_whole = statistics.median(a / b for a, b in zip(split, whole))
    vs_peer = statistics.median(a / b for a, b in zip(split, peer))
    print(json.dumps({"rows": args.rows, "chunks_split": shapes["split"],
                      "chunks_whole": shapes["whole"], "runs": runs,
                      "median_split_over_whole": round(vs_whole, 3),
                      "median_split_over_dataloader": round(vs_peer, 1)}))
    print(f"h5feed on chunks=True / h5feed on whole-sample chunks: {vs_whole:.2f} (median of "
          f"{args.rounds} rounds); / DataLoader + h5py (2 workers): {vs_peer:.0f}x")


if __name__ == "__main__":
    main()
