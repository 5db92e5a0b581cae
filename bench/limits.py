#!/usr/bin/python3
"""h5feed against what this machine allows, measured in the same run.

The limit programs of bench/limits (copies of ../shared/limits; or --limits) are
run beside every h5feed run, A B A B, on the same files in the same minute. Reports, per case,
the median over rounds of the per-round share h5feed / limit (issue #11's table).

    /usr/bin/python3 bench/limits.py                  # one epoch from open, 3 rounds
    /usr/bin/python3 bench/limits.py --epochs 8       # many epochs in one process

Cases (2 workers, batches of 256, field /features as float32, nothing else):

  case            file                         shuffle  limit
  contig-none     contiguous float64           none     best_seq  (limit_paths)
  chunked-none    chunked 256 rows, no filter  none     best_seq
  contig-global   contiguous                   global   best_rand (limit_paths)
  chunked-global  chunked, no filter           global   best_rand
  gzip-none       chunked, shuffle + gzip 1    none     pipeline  (libdeflate_limits, 2 threads)
  gzip-chunk      chunked, shuffle + gzip 1    chunk    pipeline

best_seq and best_rand are the faster of pread into a reused buffer and converting from a fresh
mapping (limit_paths.c); the pipeline is pread + libdeflate + unshuffle + convert with reused
buffers. limit_paths reads the contiguous file; the chunked file holds the same bytes.

h5feed's figure is `h5feed bench --no-digest` samples/s, from open to the last batch (open
included: a pass from open is what a one-epoch run, `h5feed convert` and every epoch of data
larger than memory pay). The files are 131072 x 1024 float64 (1 GiB), made with `h5feed synth`
when missing, evicted and read whole before the first round so that every run finds them
cached, all in the same state.
first_touch.c runs before and after the rounds: its figures are printed beside the table.
Results go to DIR/limits-*.json."""
import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time

ROWS = 131072
ROW_BYTES = 1024 * 8
FILES = {  # name -> h5feed synth options
    "contig": ["--chunk-rows", "0"],
    "chunked": ["--chunk-rows", "256"],
    "gzip": ["--chunk-rows", "256", "--gzip", "1", "--shuffle"],
}
CASES = [  # (case, file, shuffle, limit)
    ("contig-none", "contig", "none", "best_seq"),
    ("chunked-none", "chunked", "none", "best_seq"),
    ("contig-global", "contig", "global", "best_rand"),
    ("chunked-global", "chunked", "global", "best_rand"),
    ("gzip-none", "gzip", "none", "pipeline"),
    ("gzip-chunk", "gzip", "chunk", "pipeline"),
]
LIMIT_BUILDS = {  # program -> extra gcc arguments after the source
    "limit_paths": [],
    "libdeflate_limits": ["-I/usr/include/hdf5/serial", "-L/usr/lib/x86_64-linux-gnu/hdf5/serial",
                          "-lhdf5", "-lz", "-ldeflate"],
    "first_touch": [],
}


def data_path(a, kind):
    return os.path.join(a.dir, f"f64-{ROWS}-{kind}.h5")


def make_data(a, kind):
    path = data_path(a, kind)
    if not os.path.exists(path):
        os.makedirs(a.dir, exist_ok=True)
        subprocess.run([a.h5feed, "synth", "--out", path, "--rows", str(ROWS), "--shape", "1024",
                        "--dtype", "float64", *FILES[kind]], check=True, stdout=subprocess.DEVNULL)
    # Evicted, then read whole: every file's pages come into the page cache the same way. Pages
    # that were reclaimed and faulted back one by one (this machine runs DAMON's pageout) made
    # pread from an old file 0.7x as fast as from a fresh one.
    with open(path, "rb") as f:
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        while f.read(1 << 24):
            pass
    return path


def warm(path):
    with open(path, "rb") as f:
        while f.read(1 << 24):
            pass


def build_limits(a):
    out = os.path.join(a.dir, "limits-bin")
    os.makedirs(out, exist_ok=True)
    for prog, extra in LIMIT_BUILDS.items():
        src = os.path.join(a.limits, prog + ".c")
        exe = os.path.join(out, prog)
        if not os.path.exists(exe) or os.path.getmtime(exe) < os.path.getmtime(src):
            subprocess.run(["gcc", "-O3", "-march=native", "-pthread", "-o", exe, src, *extra],
                           check=True)
    return out


def json_lines(text):
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def contiguous_offset(path):
    import h5py
    with h5py.File(path, "r") as f:
        return f["/features"].id.get_offset()


def limit_samples_per_s(a, bins, limit, files):
    """One run of the limit program behind `limit`: samples (rows) per second."""
    if limit == "pipeline":
        p = subprocess.run([os.path.join(bins, "libdeflate_limits"), files["gzip"], str(a.reps)],
                           capture_output=True, text=True, check=True,
                           env={**os.environ, "LIMIT_DATASET": "features"})
        for r in json_lines(p.stdout):
            if r.get("test", "").startswith("pipeline") and r["threads"] == 2:
                return ROWS / r["median_s"]
        sys.exit("libdeflate_limits printed no 2-thread pipeline line:\n" + p.stdout)
    p = subprocess.run([os.path.join(bins, "limit_paths"), files["contig"],
                        str(files["contig_offset"]), str(ROWS), str(ROW_BYTES), str(a.reps)],
                       capture_output=True, text=True, check=True)
    for r in json_lines(p.stdout):
        if r["test"] == limit:
            return r["samples_per_s"]
    sys.exit(f"limit_paths printed no {limit}:\n" + p.stdout)


def h5feed_samples_per_s(a, case, files, seed):
    name, kind, shuffle, _ = case
    cfg = os.path.join(a.dir, f"limits-{name}.json")
    with open(cfg, "w") as f:
        json.dump({"files": [os.path.abspath(files[kind])],
                   "fields": [{"name": "x", "dataset": "/features", "dtype": "float32"}],
                   "batch_size": 256, "shuffle": shuffle, "seed": seed, "workers": 2,
                   "epochs": a.epochs, "device": "cpu"}, f)
    p = subprocess.run([a.h5feed, "bench", cfg, "--json", "--no-digest"], capture_output=True,
                       text=True)
    if p.returncode != 0:
        sys.exit(f"h5feed bench {cfg} failed ({p.returncode}):\n{p.stderr}")
    r = json.loads(p.stdout)
    return r["samples_per_s"], r


def first_touch(bins):
    p = subprocess.run([os.path.join(bins, "first_touch")], capture_output=True, text=True,
                       check=True)
    return json_lines(p.stdout)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--h5feed", default=os.path.join(here, "..", "build", "h5feed"))
    ap.add_argument("--limits", default=os.path.join(here, "limits"),
                    help="folder of the limit programs' sources (bench/limits: copies of "
                         "../shared/limits)")
    ap.add_argument("--dir", default="bench-data")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=1, help="epochs per h5feed run")
    ap.add_argument("--reps", type=int, default=3, help="repetitions inside a limit program")
    ap.add_argument("--only", default="", help="comma-separated case names")
    ap.add_argument("--seed", type=int, default=2026)
    a = ap.parse_args()
    cases = [c for c in CASES if not a.only or c[0] in a.only.split(",")]
    bins = build_limits(a)
    files = {kind: make_data(a, kind) for kind in {c[1] for c in cases} | {"contig"}}
    files["contig_offset"] = contiguous_offset(files["contig"])
    touch_before = first_touch(bins)
    rng = random.Random(a.seed)
    runs = {c[0]: [] for c in cases}
    for rnd in range(a.rounds):
        order = cases[:]
        rng.shuffle(order)
        for case in order:  # the limit, then h5feed: A B A B
            # Both read a warm file: this machine's proactive reclaim (DAMON pageout) takes back
            # pages of a file left alone for a minute, and a run that finds them gone reads the
            # disk. Reading a cached 1 GiB file takes about 0.1 s.
            warm(files["gzip" if case[3] == "pipeline" else "contig"])
            limit = limit_samples_per_s(a, bins, case[3], files)
            warm(files[case[1]])
            got, report = h5feed_samples_per_s(a, case, files, seed=rnd + 1)
            runs[case[0]].append({"limit": limit, "h5feed": got, "share": got / limit,
                                  "open_seconds": report["open_seconds"],
                                  "read_seconds": report["read_seconds"],
                                  "decode_seconds": report["decode_seconds"],
                                  "convert_seconds": report["convert_seconds"],
                                  "mapped_rows": report.get("mapped_rows", 0)})
            mapped = report.get("mapped_rows", 0)
            print(f"round {rnd + 1} {case[0]:15s} h5feed {got / 1e3:8.0f}k  "
                  f"{case[3]} {limit / 1e3:8.0f}k  share {got / limit:.2f}"
                  + (f"  rows from the mapping {mapped}" if case[2] == "global" else ""),
                  flush=True)
    touch_after = first_touch(bins)
    print(f"\n{a.epochs} epoch(s) per h5feed run, {a.rounds} rounds; median of per-round shares")
    print("| case | h5feed samples/s (median) | limit | limit samples/s (median) | share |")
    print("|---|---|---|---|---|")
    for case in cases:
        rs = runs[case[0]]
        print(f"| {case[0]} | {statistics.median(r['h5feed'] for r in rs) / 1e3:.0f}k | {case[3]} "
              f"| {statistics.median(r['limit'] for r in rs) / 1e3:.0f}k "
              f"| {statistics.median(r['share'] for r in rs):.2f} "
              f"({', '.join('%.2f' % r['share'] for r in rs)}) |")
    for a_case, b_case in (("chunked-none", "contig-none"), ("chunked-global", "contig-global")):
        if a_case in runs and b_case in runs:  # the same bytes, chunked or not, same rounds
            ratios = [x["h5feed"] / y["h5feed"] for x, y in zip(runs[a_case], runs[b_case])]
            print(f"{a_case} / {b_case} (h5feed, per round): {statistics.median(ratios):.2f} "
                  f"({', '.join('%.2f' % r for r in ratios)})")
    print("\nfirst_touch.c, GB/s (4 KiB pages first/second; MADV_HUGEPAGE first/second):")
    for when, lines in (("before", touch_before), ("after", touch_after)):
        plain = [r for r in lines if r["hugepage_advice"] == 0]
        huge = [r for r in lines if r["hugepage_advice"] == 1]
        print(f"  {when}: {'/'.join(str(r['first_touch_gb_per_s']) for r in plain)} first, "
              f"{'/'.join(str(r['first_touch_gb_per_s']) for r in huge)} first with hugepage")
    out = os.path.join(a.dir, f"limits-{a.epochs}ep-{time.strftime('%Y%m%d-%H%M%S')}.json")
    with open(out, "w") as f:
        json.dump({"epochs": a.epochs, "rounds": a.rounds, "runs": runs,
                   "first_touch": {"before": touch_before, "after": touch_after}}, f, indent=1)
    print(f"results: {out}")


if __name__ == "__main__":
    main()
