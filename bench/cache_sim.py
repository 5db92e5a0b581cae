#!/usr/bin/python3
"""Replays global-shuffle epochs through two models of a decoded-chunk cache and counts the
decodes: LRU (the cache before foresight) and the rule loader/chunkcache.c follows with
foresight (the loader tells it which chunks the next H batches use; a full cache evicts the
oldest idle chunk none of them needs, else the one needed farthest ahead). One worker, each
batch sorted and read in chunk order, as reader.c reads it. This is where the simulated figures
quoted in loader/chunkcache.h, docs/inspect.md and tests/unit/test_inspect.c come from:

    /usr/bin/python3 bench/cache_sim.py            # 131072 samples, 512 chunks, batches of 256

Pure Python and numpy (the permutation only); a few seconds per case."""
import argparse
from collections import OrderedDict

import numpy as np


def batches(samples, chunk_rows, batch, seed):
    order = np.random.default_rng(seed).permutation(samples)
    return [np.unique(order[i:i + batch] // chunk_rows) for i in range(0, samples, batch)]


def lru(uses, entries):
    cache, misses = OrderedDict(), 0
    for chunks in uses:
        for x in chunks:
            if x in cache:
                cache.move_to_end(x)
                continue
            misses += 1
            if len(cache) >= entries:
                cache.popitem(last=False)
            cache[x] = True
    return misses


def foresight(uses, entries, horizon):
    pending = {}  # chunk -> set of batches expected to use it (told, not yet used)
    idle_unneeded = OrderedDict()  # oldest first
    cache, misses, told = set(), 0, 0
    for b, chunks in enumerate(uses):
        while told <= min(b + horizon, len(uses) - 1):  # tell the cache of the next batches
            for x in uses[told]:
                pending.setdefault(x, set()).add(told)
                idle_unneeded.pop(x, None)
            told += 1
        for x in chunks:
            pending[x].discard(b)  # using it ends this batch's expectation
            if x not in cache:
                misses += 1
                if len(cache) >= entries:
                    if idle_unneeded:
                        victim, _ = idle_unneeded.popitem(last=False)
                    else:
                        victim = max(cache, key=lambda y: min(pending[y]))
                    cache.discard(victim)
                cache.add(x)
            if not pending[x]:
                idle_unneeded.pop(x, None)
                idle_unneeded[x] = True
    return misses


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=131072)
    ap.add_argument("--chunk-rows", type=int, default=256)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--entries", default="128,256,384")
    ap.add_argument("--horizon", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    uses = batches(a.samples, a.chunk_rows, a.batch, a.seed)
    total = sum(len(u) for u in uses)
    print(f"{a.samples} samples, {a.samples // a.chunk_rows} chunks of {a.chunk_rows} rows, "
          f"batches of {a.batch}: {total} chunk uses in {len(uses)} batches")
    print("| entries | LRU decodes | foresight decodes (horizon %d) |" % a.horizon)
    print("|---|---|---|")
    for e in (int(x) for x in a.entries.split(",")):
        print(f"| {e} | {lru(uses, e)} | {foresight(uses, e, a.horizon)} |", flush=True)


if __name__ == "__main__":
    main()
