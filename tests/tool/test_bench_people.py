#!/usr/bin/python3
"""`h5feed bench` for people (issue #5): stage times, ready share, warm/cold, CSV, SVG, progress.

Usage: /usr/bin/python3 test_bench_people.py /path/to/h5feed

Writes a small dataset with `h5feed synth`, then checks: the --json keys read_seconds,
decode_seconds, convert_seconds, wait_seconds, ready_share and warm (and that they agree with
each other); --csv (a header and rows of numbers whose samples add up); --plot (a well-formed
SVG with a line, axis labels and the config's name); no progress line when stderr is a pipe,
and one when it is a terminal; --cold (reports "warm": false) and its usage errors (exit 2).
Uses only the standard library. Exits non-zero when any check fails.
"""
import csv
import json
import os
import pty
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

SVG = "{http://www.w3.org/2000/svg}"


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from toolcheck import Checker, tool_from_argv  # noqa: E402  (the shared check counter)


def main():
    tool = tool_from_argv()
    c = Checker()

    def run(*args):
        p = subprocess.run([tool, *args], capture_output=True, text=True, timeout=120)
        return p.returncode, p.stdout, p.stderr

    with tempfile.TemporaryDirectory(prefix="h5feed_people_") as tmp:
        h5 = os.path.join(tmp, "people.h5")
        rc, out, err = run("synth", "--out", h5, "--rows", "4096", "--shape", "64",
                           "--chunk-rows", "128", "--gzip", "1", "--labels", "10")
        if not c.check(rc == 0, f"synth exit {rc}: {err}"):
            return 1
        cfg = os.path.join(tmp, "people <&> cfg.json")  # XML-special characters for the title
        with open(cfg, "w") as f:
            json.dump({"files": ["people.h5"],
                       "fields": [{"name": "x", "dataset": "/features", "dtype": "float32"},
                                  {"name": "y", "dataset": "/labels", "dtype": "int64"}],
                       "batch_size": 64, "shuffle": "chunk", "workers": 2, "epochs": 3}, f)
        total = 4096 * 3

        # --json: the new keys, consistent with each other. stderr is a pipe: no progress line.
        csv_path = os.path.join(tmp, "t.csv")
        svg_path = os.path.join(tmp, "t.svg")
        rc, out, err = run("bench", cfg, "--json", "--csv", csv_path, f"--plot={svg_path}")
        if not c.check(rc == 0, f"bench --json --csv --plot exit {rc}\n{out}\n{err}"):
            return 1
        obj = json.loads(out)
        for key in ("read_seconds", "decode_seconds", "convert_seconds", "wait_seconds"):
            v = obj.get(key)
            c.check(isinstance(v, (int, float)) and v >= 0, f"{key} = {v!r}")
        c.check(obj.get("wait_seconds", 0) <= obj.get("seconds", 0) + 1e-3,
                "the consumer waited longer than the run took")
        share = obj.get("ready_share")
        c.check(isinstance(share, (int, float)) and 0.0 <= share <= 1.0, f"ready_share {share!r}")
        c.check(obj.get("warm") is True, f"warm {obj.get('warm')!r} without --cold")
        c.check(obj.get("read_ahead") == 0, f"read_ahead {obj.get('read_ahead')!r}, warm")
        c.check(obj.get("samples") == total, f"samples {obj.get('samples')}")
        c.check("\r" not in err and "ETA" not in err, f"progress line on a pipe: {err!r}")

        # --csv: header, rows of numbers, cumulative samples ending at the total.
        with open(csv_path, newline="") as f:
            rows = list(csv.reader(f))
        c.check(rows and rows[0] == ["t_seconds", "samples", "samples_per_s", "gb_per_s"],
                f"csv header {rows[:1]}")
        body = rows[1:]
        if c.check(len(body) >= 1, "csv has no rows"):
            try:
                nums = [[float(x) for x in r] for r in body]
            except ValueError:
                nums = None
            if c.check(nums is not None and all(len(r) == 4 for r in nums),
                       f"csv rows are not 4 numbers: {body}"):
                c.check(int(nums[-1][1]) == total, f"csv last samples {nums[-1][1]} != {total}")
                c.check(all(b[0] >= a[0] and b[1] >= a[1] for a, b in zip(nums, nums[1:])),
                        "csv time or samples go backwards")
                c.check(all(r[2] >= 0 and r[3] >= 0 for r in nums), "csv negative rate")
                c.check(abs(nums[-1][0] - obj["seconds"]) < 0.01,
                        f"csv ends at {nums[-1][0]} s, the run took {obj['seconds']} s")

        # --plot: well-formed SVG with a line, the axis labels and the config's name.
        try:
            root = ET.parse(svg_path).getroot()
        except ET.ParseError as e:
            root = None
            c.check(False, f"svg does not parse: {e}")
        if root is not None:
            c.check(root.tag == SVG + "svg", f"svg root is {root.tag}")
            lines = root.findall(f".//{SVG}polyline") + root.findall(f".//{SVG}path")
            c.check(len(lines) >= 1, "svg has no polyline or path")
            texts = ["".join(t.itertext()) for t in root.iter(SVG + "text")]
            for want in ("time (s)", "samples/s", "consumer wait", "read (workers)"):
                c.check(any(want in t for t in texts), f"svg lacks text {want!r}: {texts}")
            c.check(any("people <&> cfg.json" in t for t in texts), "svg title lacks the config")

        # The text report says warm and the ready share.
        rc, out, err = run("bench", cfg)
        c.check(rc == 0 and "page cache  warm" in out and "found a batch ready" in out,
                f"text report: exit {rc}\n{out}\n{err}")
        c.check("ETA" not in err, f"progress line on a pipe: {err!r}")

        # A terminal on stderr gets the progress line; stdout (a pipe) stays plain JSON.
        master, slave = pty.openpty()
        p = subprocess.Popen([tool, "bench", cfg, "--json"], stdout=subprocess.PIPE,
                             stderr=slave)
        os.close(slave)
        tty = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            tty += chunk
        out, _ = p.communicate(timeout=120)
        os.close(master)
        c.check(p.returncode == 0, f"bench with a terminal: exit {p.returncode}")
        c.check(b"ETA" in tty and b"samples/s" in tty and b"\r" in tty,
                f"no progress line on a terminal: {tty!r}")
        try:
            c.check(json.loads(out).get("samples") == total, "json with a terminal")
        except ValueError:
            c.check(False, f"stdout is not JSON with a terminal on stderr: {out!r}")

        # --compute-ms on the fake device: the step (a sleep) is far slower than the loader, so
        # the consumer is rarely starved; the upload stage counts every delivered byte.
        fake = os.path.join(tmp, "fake.json")
        with open(fake, "w") as f:
            json.dump({"files": ["people.h5"],
                       "fields": [{"name": "x", "dataset": "/features", "dtype": "float32"}],
                       "batch_size": 256, "workers": 2, "device": "fake"}, f)
        rc, out, err = run("bench", fake, "--json", "--compute-ms", "20")
        if c.check(rc == 0, f"bench --compute-ms exit {rc}\n{err}"):
            obj = json.loads(out)
            c.check(obj.get("compute_ms") == 20, f"compute_ms {obj.get('compute_ms')!r}")
            c.check(obj.get("seconds", 0) >= 16 * 0.020, f"16 steps of 20 ms took {obj['seconds']}")
            c.check(0.0 <= obj.get("starved_share", -1) < 0.5,
                    f"starved_share {obj.get('starved_share')!r} with a 20 ms step")
            c.check(obj.get("upload_bytes") == obj.get("bytes_out") == 4096 * 64 * 4,
                    f"upload_bytes {obj.get('upload_bytes')} bytes_out {obj.get('bytes_out')}")
            c.check(obj.get("digest") is not None, "fake batches are host memory: digest expected")
        for bad in ("-1", "x", "1e9"):
            rc, _, err = run("bench", fake, "--compute-ms", bad)
            c.check(rc == 2 and "--compute-ms" in err, f"--compute-ms {bad}: {rc} {err!r}")

        # --cold: evicts the named files, reports warm false; usage errors exit 2.
        rc, out, err = run("bench", cfg, "--json", "--cold", h5)
        if c.check(rc == 0, f"bench --cold exit {rc}\n{err}"):
            c.check(json.loads(out).get("warm") is False, "--cold did not report warm false")
            # The direct path reads ahead; HFEED_READ_PATH=hdf5 (a scripts/test.sh step) has none.
            ahead = json.loads(out).get("read_ahead")
            direct = os.environ.get("HFEED_READ_PATH") != "hdf5"
            c.check(isinstance(ahead, int) and (ahead > 0) == direct,
                    f"read_ahead {ahead!r} after --cold (direct path: {direct})")
        rc, out, err = run("bench", cfg, "--cold", h5)
        c.check(rc == 0 and "page cache  cold" in out, f"text --cold: {out}")
        rc, _, err = run("bench", cfg, "--cold")
        c.check(rc == 2 and "--cold" in err, f"--cold without files: exit {rc}: {err}")
        rc, _, err = run("bench", cfg, h5)
        c.check(rc == 2 and "one CONFIG" in err, f"a second path without --cold: exit {rc}")
        rc, _, err = run("bench", cfg, "--cold", os.path.join(tmp, "missing.h5"))
        c.check(rc == 1 and err.startswith("h5feed bench: "), f"--cold missing file: {rc} {err}")
        rc, _, err = run("bench", cfg, "--csv")
        c.check(rc == 2 and "--csv" in err, f"--csv without a value: exit {rc}: {err}")
        rc, _, err = run("bench", cfg, "--plot", os.path.join(tmp, "no", "dir", "p.svg"))
        c.check(rc == 1 and "p.svg" in err, f"--plot unwritable: exit {rc}: {err}")

        rc, out, _ = run("bench", "--help")
        for opt in ("--json", "--no-digest", "--csv", "--plot", "--cold", "--help"):
            c.check(opt in out, f"bench --help lacks {opt}")

    print(f"{c.passed} passed, {c.failed} failed")
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
