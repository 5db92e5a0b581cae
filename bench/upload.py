#!/usr/bin/python3
"""upload.py: h5feed's CUDA upload stage against the plain cudaMemcpyAsync loop (limit_h2d).

Interleaved rounds (A B C D per round), medians of the per-round ratios:
  A  h5feed bench, "device": "cuda:0", pinned slots     -> upload_gb_per_s (copy rate, events)
  B  limit_h2d pinned, the same batch size and count      -> gb_per_s
  C  h5feed bench, "pinned": false (pageable slots)       -> upload_gb_per_s
  D  limit_h2d pageable                                   -> gb_per_s
  E  h5feed bench --compute-ms M, M = 2x the loader's own time per batch in A (a training step
     slower than the loader)                              -> starved_share
Reported: A/B (issue #4 asks >= 0.90), A/C (pinned faster than pageable), E's starved share
(asks < 0.05), and end-to-end GB/s of A and C for context.

The arithmetic (loader_step_seconds, upload_rate, span_of) is kept apart and unit-tested on
recorded event times (tests/tool/test_bench_upload.py), because both figures can pass
trivially when done naively:
- the loader's time per batch counts from the first batch on: open (context creation,
  cudaHostAlloc of every slot) and the first batch's latency are left out. Counting them makes
  M so large that E is never starved, whatever the loader does.
- the upload rate is bytes over the span from the first copy's start to the last copy's end
  (the library's upload_span_seconds), idle gaps included. Summing the copies' own times
  (upload_seconds) leaves the gaps out, and a copy engine alone copies at the rate of a plain
  cudaMemcpyAsync loop, so A/B would be about 1 by construction.

Usage: /usr/bin/python3 bench/upload.py --h5feed build/h5feed --limit build/limit_h2d
       [--dir bench-data] [--rounds 5] [--rows 262144] [--cols 256] [--batch 1024]
Needs a CUDA device; the data file is float32 (no conversion), so the copy is what is timed.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys


def run_json(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit("upload.py: %s failed (exit %d):\n%s" % (" ".join(cmd), p.returncode, p.stderr))
    return json.loads(p.stdout.strip().splitlines()[-1])


def loader_step_seconds(run):
    """The loader's own time per batch in a bench run (its --json object), from the first
    batch on: steady_seconds (first batch in hand to the end) over the batches after the first.
    Open and the first batch's latency are not a step."""
    if run["batches"] < 2:
        raise ValueError("loader_step_seconds: a run of %d batch(es) has no step" % run["batches"])
    steady = run.get("steady_seconds")
    if steady is None:  # an older h5feed: the same span, from the figures it does report
        steady = run["seconds"] - run["first_batch_seconds"]
    return steady / (run["batches"] - 1)


def span_of(copies):
    """(first start, last end) of copies given as (start, end) times."""
    if not copies:
        raise ValueError("span_of: no copies")
    return min(s for s, _ in copies), max(e for _, e in copies)


def upload_rate(nbytes, first_start, last_end):
    """Bytes per second over the span from the first copy's start to the last copy's end."""
    if last_end <= first_start:
        raise ValueError("upload_rate: empty span %r..%r" % (first_start, last_end))
    return nbytes / (last_end - first_start)


def run_upload_gbps(run):
    """A bench run's upload GB/s over its span (upload_span_seconds)."""
    return upload_rate(run["upload_bytes"], 0.0, run["upload_span_seconds"]) * 1e-9


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--h5feed", default="build/h5feed")
    ap.add_argument("--limit", default="build/limit_h2d")
    ap.add_argument("--dir", default="bench-data")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--rows", type=int, default=262144)
    ap.add_argument("--cols", type=int, default=256)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 2))
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    data = os.path.abspath(os.path.join(a.dir, "upload.h5"))
    if not os.path.exists(data):
        subprocess.run([a.h5feed, "synth", "--out", data, "--rows", str(a.rows), "--shape",
                        str(a.cols), "--dtype", "float32", "--chunk-rows", "4096"], check=True)
    configs = {}
    for pinned in (True, False):
        cfg = {"files": [data], "fields": [{"name": "x", "dataset": "/features",
                                            "dtype": "float32"}],
               "batch_size": a.batch, "shuffle": "none", "epochs": a.epochs,
               "workers": a.workers, "prefetch": 4, "device": "cuda:0", "pinned": pinned}
        path = os.path.join(a.dir, "upload-%s.json" % ("pinned" if pinned else "pageable"))
        with open(path, "w") as f:
            json.dump(cfg, f)
        configs[pinned] = path
    batch_bytes = a.batch * a.cols * 4
    count = a.rows // a.batch * a.epochs
    rows = []
    for r in range(a.rounds):
        A = run_json([a.h5feed, "bench", configs[True], "--json", "--no-digest"])
        B = run_json([a.limit, str(batch_bytes), str(count), "pinned"])
        C = run_json([a.h5feed, "bench", configs[False], "--json", "--no-digest"])
        D = run_json([a.limit, str(batch_bytes), str(count), "pageable"])
        step_ms = 2e3 * loader_step_seconds(A)
        E = run_json([a.h5feed, "bench", configs[True], "--json", "--no-digest",
                      "--compute-ms", "%.3f" % step_ms])
        a_gbps, c_gbps = run_upload_gbps(A), run_upload_gbps(C)
        row = {"round": r, "device": B["device"],
               "h5feed_pinned_upload_gbps": a_gbps,
               "limit_pinned_gbps": B["gb_per_s"],
               "h5feed_pageable_upload_gbps": c_gbps,
               "limit_pageable_gbps": D["gb_per_s"],
               "h5feed_pinned_copy_only_gbps": A["upload_gb_per_s"],
               "h5feed_pinned_e2e_gbps": A["gb_per_s"], "h5feed_pageable_e2e_gbps": C["gb_per_s"],
               "compute_ms": step_ms, "starved_share": E["starved_share"],
               "ratio_upload_vs_limit": a_gbps / B["gb_per_s"],
               "ratio_pinned_vs_pageable": a_gbps / c_gbps,
               "ratio_pinned_vs_pageable_e2e": A["gb_per_s"] / C["gb_per_s"]}
        rows.append(row)
        print(json.dumps(row), flush=True)
    med = {k: statistics.median(x[k] for x in rows)
           for k in rows[0] if k not in ("round", "device")}
    summary = {"device": rows[0]["device"], "rounds": a.rounds, "batch_bytes": batch_bytes,
               "medians": med}
    with open(os.path.join(a.dir, "upload-results.json"), "w") as f:
        json.dump({"rows": rows, "summary": summary}, f, indent=1)
    print("device %s, %d rounds, batch %d bytes" % (summary["device"], a.rounds, batch_bytes))
    print("upload vs cudaMemcpyAsync loop (pinned): %.3f (median of per-round ratios; >= 0.90)"
          % med["ratio_upload_vs_limit"])
    print("pinned vs pageable upload rate: %.2fx (end to end %.2fx)"
          % (med["ratio_pinned_vs_pageable"], med["ratio_pinned_vs_pageable_e2e"]))
    print("starved share with a %.2f ms step: %.4f (< 0.05)" % (med["compute_ms"],
                                                               med["starved_share"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
