#!/usr/bin/python3
"""Exit codes and messages of the h5feed program.

Usage: /usr/bin/python3 test_cli.py /path/to/h5feed

The rules (STYLE.md section 11): exit 0 success, 1 a data or runtime failure, 2 a usage or config
error; errors go to stderr as `h5feed <command>: <what>: <message>`, and a bad config's message
names the key at fault. Uses only the standard library and h5py. Exits non-zero on failure.
"""
import json
import os
import re
import resource
import subprocess
import sys
import tempfile

import h5py
import numpy as np


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from toolcheck import Checker, tool_from_argv  # noqa: E402  (the shared check counter)


def main():
    tool = tool_from_argv()
    c = Checker()

    def run(*args):
        p = subprocess.run([tool, *args], capture_output=True, text=True, timeout=120)
        return p.returncode, p.stdout, p.stderr

    def expect(args, code, out_has=(), err_has=(), err_prefix=None, name=None):
        rc, out, err = run(*args)
        label = name or " ".join(["h5feed", *args])
        c.check(rc == code, f"{label}: exit {rc}, wanted {code}\nstdout: {out}\nstderr: {err}")
        for s in out_has:
            c.check(s in out, f"{label}: stdout lacks {s!r}:\n{out}")
        for s in err_has:
            c.check(s in err, f"{label}: stderr lacks {s!r}:\n{err}")
        if err_prefix is not None:
            # Log lines ("h5feed: ...") may come before the error, usage hints after it.
            lines = err.splitlines()
            c.check(any(x.startswith(err_prefix) for x in lines), f"{label}: no stderr line starts with "
                                                f"{err_prefix!r}:\n{err}")
        # A traceback-free, sanitizer-free run: nothing but our own lines on stderr.
        c.check("Sanitizer" not in err and "runtime error" not in err,
                f"{label}: sanitizer report:\n{err}")
        return rc, out, err

    # Many files: the program lifts its soft descriptor limit to the hard one; where even that
    # is too low, the open fails at once, naming the numbers and the fix.
    many = tempfile.mkdtemp(prefix="h5feed-many-")
    for i in range(40):
        with h5py.File(os.path.join(many, f"s{i:03}.h5"), "w") as f:
            f.create_dataset("x", data=np.full((4, 2), i, dtype="<f4"))
    many_cfg = os.path.join(many, "many.json")
    with open(many_cfg, "w") as f:
        json.dump({"files": ["s*.h5"], "fields": [{"name": "x", "dataset": "/x"}]}, f)

    def limited(soft, hard):
        p = subprocess.run([tool, "bench", many_cfg, "--json"], capture_output=True, text=True,
                           timeout=120, preexec_fn=lambda: resource.setrlimit(
                               resource.RLIMIT_NOFILE, (soft, hard)))
        return p.returncode, p.stdout, p.stderr

    _, hard_now = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard_now != resource.RLIM_INFINITY and hard_now < 256:
        print(f"SKIP: descriptor limits (the hard limit here is {hard_now})")
    else:
        rc, out, err = limited(48, 256)
        c.check(rc == 0 and json.loads(out)["samples"] == 160,
                f"40 files under a soft limit of 48 (hard 256): exit {rc}\n{out}\n{err}")
        rc, out, err = limited(48, 48)
        # 2 each with the direct path, 1 under HFEED_READ_PATH=hdf5 (scripts/test.sh runs both)
        each = 1 if os.environ.get("HFEED_READ_PATH") == "hdf5" else 2
        c.check(rc == 1 and f"h5feed bench: file error: files: 40 files need {40 * each} file "
                "descriptors" in err and "RLIMIT_NOFILE" in err and "ulimit -n" in err,
                f"40 files under a hard limit of 48: exit {rc}\n{err}")

    # The dispatcher.
    expect([], 2, err_has=["Usage: h5feed", "bench", "synth"])
    expect(["--help"], 0, out_has=["Usage: h5feed", "bench", "synth"])
    expect(["help"], 0, out_has=["Usage: h5feed"])
    rc, out, _ = expect(["--version"], 0)
    c.check(re.match(r"^h5feed \d+\.\d+\.\d+", out) is not None, f"--version prints {out!r}")
    expect(["frobnicate"], 2, err_has=["frobnicate"], err_prefix="h5feed: ")
    expect(["--frobnicate"], 2, err_has=["--frobnicate"], err_prefix="h5feed: ")
    expect(["help", "frobnicate"], 2, err_has=["frobnicate"])

    # --help of every command, directly and through `h5feed help <command>`.
    for cmd in ("bench", "synth", "convert"):
        expect([cmd, "--help"], 0, out_has=[f"Usage: h5feed {cmd}"])
        expect(["help", cmd], 0, out_has=[f"Usage: h5feed {cmd}"])

    with tempfile.TemporaryDirectory(prefix="h5feed_cli_") as tmp:
        h5 = os.path.join(tmp, "a.h5")
        with h5py.File(h5, "w") as f:
            f.create_dataset("x", data=np.arange(40, dtype="<f8").reshape(10, 4), chunks=(4, 4))
            f.create_dataset("y", data=np.arange(10, dtype="<i8"))

        def config(name, obj):
            path = os.path.join(tmp, name)
            with open(path, "w") as f:
                if isinstance(obj, str):
                    f.write(obj)
                else:
                    json.dump(obj, f)
            return path

        good = {"files": ["a.h5"],
                "fields": [{"name": "x", "dataset": "/x", "dtype": "float32"},
                           {"name": "y", "dataset": "/y", "dtype": "int64"}],
                "batch_size": 4, "workers": 1, "device": "cpu"}
        good_path = config("good.json", good)

        # bench usage errors.
        expect(["bench"], 2, err_has=["CONFIG"], err_prefix="h5feed bench: ")
        expect(["bench", good_path, good_path], 2, err_prefix="h5feed bench: ")
        expect(["bench", good_path, "--bogus"], 2, err_has=["--bogus"],
               err_prefix="h5feed bench: ")

        # A working run: the text report ends with a one-line summary; --json is one object.
        rc, out, _ = expect(["bench", good_path], 0)
        lines = out.strip().splitlines()
        c.check(bool(lines) and re.match(r"^10 samples in 3 batches in [0-9.]+ s: .*"
                                         r"digest [0-9a-f]{16}$", lines[-1]) is not None,
                f"bench summary line: {lines[-1] if lines else out!r}")
        rc, out, _ = expect(["bench", good_path, "--json"], 0)
        try:
            obj = json.loads(out)
            c.check(obj["samples"] == 10 and obj["batches"] == 3 and obj["epochs"] == 1,
                    f"bench --json counts: {obj}")
            c.check(re.match(r"^[0-9a-f]{16}$", obj["digest"]) is not None,
                    f"digest {obj['digest']!r}")
        except (ValueError, KeyError, TypeError) as e:
            c.check(False, f"bench --json output ({e}): {out!r}")
        rc, out, _ = expect(["bench", "--json", good_path], 0, name="bench --json first")

        # A config file that cannot be read is a usage error (2), naming the file and why; for
        # every command that takes a CONFIG. A data file that cannot be read stays 1 (below).
        big = os.path.join(tmp, "big.json")
        with open(big, "w") as f:
            f.write(" " * (16 * 1024 * 1024 + 1))
        unreadable = config("unreadable.json", good)
        os.chmod(unreadable, 0)
        can_refuse = not os.access(unreadable, os.R_OK)  # root reads anything
        cases = [(os.path.join(tmp, "nope.json"), "No such file or directory"),
                 (tmp, "Is a directory"),
                 (big, "larger than 16 MiB")]
        if can_refuse:
            cases.append((unreadable, "Permission denied"))
        else:
            print("SKIP: an unreadable config (running as root)")
        for path, why in cases:
            for cmd in (["bench"], ["convert"], ["inspect", "--config"]):
                expect([*cmd, path], 2, err_has=[f'config file "{path}": {why}'],
                       err_prefix=f"h5feed {cmd[0]}: ", name=f"{cmd[0]} {why}")
        os.chmod(unreadable, 0o600)

        # An empty or blank config file says so (not "malformed JSON"): 2.
        for name, text in (("empty.json", ""), ("blank.json", " \n\t\n")):
            path = config(name, text)
            for cmd in (["bench"], ["convert"]):
                expect([*cmd, path], 2, err_has=[f"{path}: config file is empty"],
                       err_prefix=f"h5feed {cmd[0]}: ", name=f"{cmd[0]} {name}")

        # A misspelt key: the nearest known key is suggested, in every object.
        expect(["bench", config("typo.json", dict(good, bach_size=4))], 2,
               err_has=['unknown key "bach_size" (top level); did you mean "batch_size"?'],
               err_prefix="h5feed bench: ")
        typo_field = dict(good, fields=[{"name": "x", "dataset": "/x", "dtyp": "int64"}])
        expect(["bench", config("typo_field.json", typo_field)], 2,
               err_has=['fields[0]: unknown key "dtyp"; did you mean "dtype"?'],
               err_prefix="h5feed bench: ")

        # A dataset not found lists what the file has, with shapes and types: 1 (data).
        feat = dict(good, fields=[{"name": "x", "dataset": "/feat"}])
        expect(["bench", config("feat.json", feat)], 1,
               err_has=[f'file "{h5}": dataset "/feat" not found; the file has: '
                        "/x (10, 4) float64, /y (10,) int64"],
               err_prefix="h5feed bench: ")

        # Different sample shapes across files print both: 1.
        wide = os.path.join(tmp, "wide.h5")
        with h5py.File(wide, "w") as f:
            f.create_dataset("x", data=np.zeros((3, 5), dtype="<f8"))
            f.create_dataset("y", data=np.zeros(3, dtype="<i8"))
        expect(["bench", config("shapes.json", dict(good, files=["a.h5", "wide.h5"]))], 1,
               err_has=['field "x": dataset "/x" has sample shape (5,) in file',
                        "but (4,) in file"],
               err_prefix="h5feed bench: ")

        # batch_size above the samples: a warning on stderr (without --verbose), and one batch.
        rc, out, err = expect(["bench", config("huge_batch.json", dict(good, batch_size=100)),
                               "--json"], 0,
                              err_has=["h5feed: batch_size 100 is more than the 10 samples this "
                                       "rank gets per epoch"])
        c.check(rc == 0 and json.loads(out)["batches"] == 1, f"batch_size 100: {out}")

        # "device": "auto" without a GPU: the CPU, said only with --verbose; "cuda" fails saying
        # that no GPU or driver is present (or, built without CUDA, that it has no backend).
        rc, _, _ = run("bench", config("cuda.json", dict(good, device="cuda")))
        if rc == 0:
            print("SKIP: device auto/cuda without a GPU (a GPU is present)")
        else:
            cuda_built = "cuda: yes" in run("--version")[1]
            reason = ("no CUDA GPU or driver is present (cudaGetDeviceCount: " if cuda_built
                      else "this build of h5feed has no CUDA backend")
            expect(["bench", config("cuda.json", dict(good, device="cuda"))], 1,
                   err_has=[f"device: cuda:0: {reason}"], err_prefix="h5feed bench: ")
            auto = config("auto.json", dict(good, device="auto"))
            for cmd in (["bench", auto], ["bench", auto, "--json"]):
                rc, _, err = expect(cmd, 0, name=" ".join(cmd) + " (quiet)")
                c.check(err == "", f"{' '.join(cmd)}: stderr is not empty: {err!r}")
            rc, _, err = expect(["bench", auto, "--verbose"], 0,
                                err_has=['h5feed: device "auto": no usable CUDA device, using '
                                         "the CPU"])
            c.check("insufficient" not in err or "no CUDA GPU or driver is present" in err,
                    f"--verbose: CUDA's text without ours: {err}")
            out_cfg = config("auto_convert.json", dict(good, device="auto",
                                                      output={"path": "auto_out.h5"}))
            rc, _, err = expect(["convert", out_cfg, "--quiet"], 0)
            c.check(err == "", f"convert (quiet): stderr is not empty: {err!r}")
            # (convert writes from host memory: its "auto" is the CPU without asking CUDA.)
            expect(["convert", out_cfg, "--quiet", "--verbose"], 0,
                   err_has=['h5feed: convert: wrote "'])

        # Bad configs: exit 2 and the message names the key.
        bad = [
            ("bad_unknown.json", dict(good, bach_size=32), "bach_size"),
            ("bad_batch.json", dict(good, batch_size=0), "batch_size"),
            ("bad_workers.json", dict(good, workers=0), "workers"),
            ("bad_shuffle.json", dict(good, shuffle="sideways"), "shuffle"),
            ("bad_dtype.json", dict(good, fields=[{"name": "x", "dataset": "/x",
                                                  "dtype": "float8"}]), "dtype"),
            ("bad_shard.json", dict(good, shard={"rank": 2, "world_size": 2}), "rank"),
            ("bad_json.json", '{"files": ["a.h5"], ', None),
        ]
        for name, obj, key in bad:
            rc, _, err = expect(["bench", config(name, obj)], 2, err_prefix="h5feed bench: ",
                                name=f"bench {name}")
            if key is not None:
                c.check(key in err, f"bench {name}: message does not name {key!r}: {err}")

        # Data errors: exit 1.
        expect(["bench", config("missing_h5.json", dict(good, files=["missing.h5"]))], 1,
               err_has=["missing.h5"], err_prefix="h5feed bench: ")
        expect(["bench", config("missing_ds.json",
                                dict(good, fields=[{"name": "x", "dataset": "/nope",
                                                    "dtype": "float32"}]))], 1,
               err_has=["/nope"], err_prefix="h5feed bench: ")
        not_h5 = config("not_h5.h5", "this is not HDF5\n")
        expect(["bench", config("not_h5.json", dict(good, files=[not_h5]))], 1,
               err_prefix="h5feed bench: ")

        # synth usage errors: 2, naming the option.
        out_h5 = os.path.join(tmp, "s.h5")
        for args, word in [
            ([], "--out"),
            (["--out"], "--out"),
            (["--out", out_h5, "--rows", "abc"], "--rows"),
            (["--out", out_h5, "--rows", "-5"], "--rows"),
            (["--out", out_h5, "--rows", "0"], "--rows"),
            (["--out", out_h5, "--shape", "3x0"], "--shape"),
            (["--out", out_h5, "--shape", "4xx3"], "--shape"),
            (["--out", out_h5, "--shape", "1x1x1x1x1x1x1x1"], "--shape"),
            (["--out", out_h5, "--dtype", "float8"], "float8"),
            (["--out", out_h5, "--gzip", "10"], "--gzip"),
            (["--out", out_h5, "--chunk-rows", "0", "--gzip", "1"], "--gzip"),
            (["--out", out_h5, "--frob"], "--frob"),
            (["--out", out_h5, "extra"], "extra"),
        ]:
            expect(["synth", *args], 2, err_has=[word], err_prefix="h5feed synth: ")
        c.check(not os.path.exists(out_h5), "synth wrote a file despite a usage error")

        # synth that cannot write: 1.
        expect(["synth", "--out", os.path.join(tmp, "no", "such", "dir.h5"), "--rows", "8",
                "--shape", "2"], 1, err_prefix="h5feed synth: ")

        # synth that works, with --opt=value spelling too.
        rc, out, _ = expect(["synth", f"--out={out_h5}", "--rows=100", "--shape", "2x3",
                             "--dtype", "float32", "--chunk-rows", "10"], 0,
                            out_has=[out_h5, "100 x 2 x 3", "float32"])
        if rc == 0:
            with h5py.File(out_h5, "r") as f:
                c.check(f["features"].shape == (100, 2, 3), "synth --opt=value shape")

    print(f"{c.passed} passed, {c.failed} failed")
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
