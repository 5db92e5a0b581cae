#!/usr/bin/python3
"""`cache_mb: "auto"` is sized to what each shuffle mode reuses, and `h5feed bench` reports it.

Usage: /usr/bin/python3 test_bench_cache.py /path/to/h5feed

A demo-like file (synth: float64 rows of 1024 in gzip chunks of 256 rows, int64 labels), read
with configs/demo.json's settings (batch_size 256, 2 workers, prefetch 4, shuffle_window 4):
- shuffle chunk: the chunks the 2 workers use at once (2 x 2) and two windows of 4 blocks
  (2 x 4 x 2): 20 decoded chunks of 2 MiB (and 20 label chunks of 2 KiB) = 41 MiB; the open
  allocates at most 64 MiB beyond the batch slots (256 MiB and more before), and every chunk
  is still decoded once per epoch;
- shuffle none: 2 x 2 chunks, 9 MiB;
- shuffle global: as before, 256 MiB or every chunk (here 256, the chunks decode to 65 MiB).
The choice is in bench's report (`cache_bytes`, "chunk cache" line) and, with --verbose, in the
log. The file has 8192 rows, not the demo's 65536: the rule does not depend on the row count
(past the cap at the chunk count) and the test stays fast. Exits non-zero on failure."""
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from toolcheck import Checker, tool_from_argv  # noqa: E402

MIB = 1 << 20


def main():
    tool = tool_from_argv()
    c = Checker()
    if os.environ.get("HFEED_READ_PATH") == "hdf5":
        print("SKIP: HFEED_READ_PATH=hdf5: H5Dread decodes every chunk, there is no chunk cache")
        return 0
    with tempfile.TemporaryDirectory(prefix="h5feed_cache_") as tmp:
        h5 = os.path.join(tmp, "demo.h5")
        subprocess.run([tool, "synth", "--out", h5, "--rows", "8192", "--shape", "1024",
                        "--dtype", "float64", "--chunk-rows", "256", "--gzip", "1", "--shuffle"],
                       check=True, capture_output=True, timeout=300)

        def bench(shuffle, *extra, **keys):
            cfg = {"files": ["demo.h5"],
                   "fields": [{"name": "x", "dataset": "/features", "dtype": "float32"},
                              {"name": "y", "dataset": "/labels", "dtype": "int64"}],
                   "batch_size": 256, "shuffle": shuffle, "workers": 2, "prefetch": 4,
                   "epochs": 1, "seed": 0, **keys}
            path = os.path.join(tmp, f"{shuffle}.json")
            with open(path, "w") as f:
                json.dump(cfg, f)
            p = subprocess.run([tool, "bench", path, *extra], capture_output=True, text=True,
                               timeout=300)
            c.check(p.returncode == 0, f"bench {shuffle} {extra}: exit {p.returncode}\n{p.stderr}")
            return p.stdout, p.stderr

        want = {"chunk": 41 * MIB, "none": 9 * MIB, "global": 256 * MIB}
        for shuffle, cache in want.items():
            out, err = bench(shuffle, "--json")
            r = json.loads(out)
            beyond = r["memory_bytes"] - r["slots"] * r["slot_bytes"]
            print(f"{shuffle}: cache_bytes {r['cache_bytes']}, memory_bytes {r['memory_bytes']}, "
                  f"slots {r['slots']} x {r['slot_bytes']}, beyond slots {beyond / MIB:.1f} MiB, "
                  f"chunk_decodes {r['chunk_decodes']}")
            c.check(r["cache_bytes"] == cache,
                    f"{shuffle}: cache_bytes {r['cache_bytes']}, wanted {cache}")
            c.check(err == "", f"{shuffle}: stderr without --verbose: {err!r}")
            if shuffle != "global":
                c.check(beyond <= 64 * MIB, f"{shuffle}: {beyond / MIB:.1f} MiB beyond the slots")
                # Each of the 32 + 32 chunks decoded once: the smaller cache costs no decodes.
                c.check(r["chunk_decodes"] == 64,
                        f"{shuffle}: {r['chunk_decodes']} chunk decodes, wanted 64")
            else:
                # Global keeps every decoded chunk (32 of 2 MiB): the budget holds them all.
                c.check(beyond >= 64 * MIB, f"global: {beyond / MIB:.1f} MiB beyond the slots")

        # The text report and the log say it.
        out, err = bench("chunk", "--verbose")
        c.check("  chunk cache 41 MiB budget for decoded chunks" in out, f"text report:\n{out}")
        c.check('h5feed: cache_mb "auto": 41 MiB for shuffle "chunk": the chunks 2 workers use '
                "at once and two windows of shuffle_window blocks (every chunk would take 65 MiB)"
                in err, f"--verbose log:\n{err}")
        # An explicit cache_mb is taken as given.
        out, _ = bench("chunk", "--json", cache_mb=3)
        c.check(json.loads(out)["cache_bytes"] == 3 * MIB, f"cache_mb 3: {out}")

    print(f"{c.passed} passed, {c.failed} failed")
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
