#!/usr/bin/python3
"""bench/upload.py's arithmetic on recorded event times, and on a real run of the fake device.

Usage: /usr/bin/python3 tests/tool/test_bench_upload.py /path/to/h5feed

The figures bench/upload.py reports for issue 4 can pass trivially when done naively: a step
time that includes open makes the "starved" run never starve, and a rate over the summed copy
times leaves out the idle gaps between copies. These checks pin the arithmetic down."""
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "bench"))
sys.path.insert(0, HERE)
import upload  # noqa: E402  (bench/upload.py)
from toolcheck import Checker  # noqa: E402

c = Checker()

# Recorded device times (seconds from the stream's origin) of 4 copies of 1 MB each, 1 ms of
# copying each, with the loader idle 1 ms between them: the span is 7 ms, the copies' sum 4 ms.
copies = [(0.010, 0.011), (0.012, 0.013), (0.014, 0.015), (0.016, 0.017)]
nbytes = 4 * 10**6
first, last = upload.span_of(copies)
c.check((first, last) == (0.010, 0.017), f"span of the recorded copies: {first}..{last}")
rate = upload.upload_rate(nbytes, first, last)
c.check(abs(rate - nbytes / 0.007) < 1e-6 * rate, f"rate over the span: {rate}")
summed = nbytes / sum(e - s for s, e in copies)
c.check(rate < 0.6 * summed, f"the gaps count: span rate {rate} vs copy-time rate {summed}")
c.check(upload.span_of(list(reversed(copies))) == (first, last), "order of copies")
for bad in ((nbytes, 0.02, 0.02), (nbytes, 0.03, 0.02)):
    try:
        upload.upload_rate(*bad)
        c.check(False, f"upload_rate{bad} accepted an empty span")
    except ValueError:
        pass

# A recorded bench run: open took 2 s (context, cudaHostAlloc), the first batch came 0.1 s
# later, then 10 more batches in 0.5 s. The loader's step is 50 ms, not (2.6 s / 11).
run = {"seconds": 2.6, "open_seconds": 2.0, "first_batch_seconds": 2.1,
       "steady_seconds": 0.5, "batches": 11, "upload_bytes": 11 * 10**6,
       "upload_seconds": 0.011, "upload_span_seconds": 0.55}
step = upload.loader_step_seconds(run)
c.check(abs(step - 0.05) < 1e-12, f"step from the first batch on: {step}")
c.check(step < run["seconds"] / run["batches"] / 4, "open is not part of the step")
old = dict(run)
del old["steady_seconds"]  # an h5feed that does not report it: seconds - first batch
c.check(abs(upload.loader_step_seconds(old) - 0.05) < 1e-12, "step without steady_seconds")
gbps = upload.run_upload_gbps(run)
c.check(abs(gbps - 0.02) < 1e-12, f"run upload GB/s over the span: {gbps}")
try:
    upload.loader_step_seconds(dict(run, batches=1))
    c.check(False, "a one-batch run has a step")
except ValueError:
    pass

# A real run on the fake device: the span is reported, covers the copies, and the step
# leaves open out.
if len(sys.argv) == 2:
    h5feed = sys.argv[1]
    with tempfile.TemporaryDirectory(prefix="h5feed-bench-upload-") as tmp:
        data = os.path.join(tmp, "u.h5")
        subprocess.run([h5feed, "synth", "--out", data, "--rows", "8192", "--shape", "64",
                        "--dtype", "float32", "--chunk-rows", "1024"], check=True,
                       capture_output=True)
        cfg = os.path.join(tmp, "u.json")
        with open(cfg, "w") as f:
            json.dump({"files": [data], "fields": [{"name": "x", "dataset": "/features",
                                                    "dtype": "float32"}],
                       "batch_size": 256, "epochs": 1, "workers": 2, "prefetch": 3,
                       "device": "fake"}, f)
        p = subprocess.run([h5feed, "bench", cfg, "--json", "--no-digest"], check=True,
                           capture_output=True, text=True)
        real = json.loads(p.stdout.strip().splitlines()[-1])
        c.check(real["upload_span_seconds"] >= real["upload_seconds"] > 0,
                f"span {real['upload_span_seconds']} >= copies {real['upload_seconds']}")
        c.check(real["upload_bytes"] == 8192 * 64 * 4, f"bytes {real['upload_bytes']}")
        step = upload.loader_step_seconds(real)
        c.check(0 < step * (real["batches"] - 1) <= real["seconds"] - real["open_seconds"],
                f"step {step} x {real['batches'] - 1} within the run after open")

print(f"test_bench_upload: {c.passed} passed, {c.failed} failed")
sys.exit(1 if c.failed else 0)
