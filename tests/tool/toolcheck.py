"""Shared by the tests/tool/test_*.py scripts: counts checks and reports failures.

Each script runs as `/usr/bin/python3 test_X.py /path/to/h5feed` (tests/CMakeLists.txt) and
exits non-zero when any check failed. This file is not a test itself (no test_ prefix)."""

import os
import subprocess
import sys

import numpy as np

# The digest `h5feed bench` prints (its --help): the sum modulo 2^64, over the delivered
# samples, of the FNV-1a 64 hash of each sample's output bytes (fields concatenated in config
# order, C order, little-endian).
FNV_BASIS = np.uint64(0xCBF29CE484222325)
FNV_PRIME = np.uint64(0x100000001B3)
M64 = (1 << 64) - 1


def tool_from_argv():
    """The h5feed program named by the script's one argument, as an absolute path; exits 2
    with a usage line when the argument is missing."""
    if len(sys.argv) != 2:
        print(f"usage: {sys.argv[0]} /path/to/h5feed", file=sys.stderr)
        sys.exit(2)
    return os.path.abspath(sys.argv[1])


def tool_runner(tool, timeout=120):
    """A function that runs the tool with the arguments it is given and returns its
    (exit code, stdout, stderr); a run past `timeout` seconds raises."""
    def run(*args):
        p = subprocess.run([tool, *args], capture_output=True, text=True, timeout=timeout)
        return p.returncode, p.stdout, p.stderr
    return run


class Checker:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, ok, what):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
            print(f"FAIL: {what}", flush=True)
        return ok


def row_hashes(arrays):
    """FNV-1a 64 of each row's bytes, the arrays' rows concatenated in order.

    arrays: numpy arrays with the same first dimension, already in the output dtype.
    Vectorised over rows: numpy's uint64 arithmetic wraps modulo 2^64, as FNV needs."""
    n = arrays[0].shape[0]
    parts = []
    for a in arrays:
        little = np.ascontiguousarray(a.astype(a.dtype.newbyteorder("<"), copy=False))
        parts.append(little.reshape(n, -1).view(np.uint8).reshape(n, -1))
    rows = np.concatenate(parts, axis=1)
    h = np.full(n, FNV_BASIS, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(rows.shape[1]):
            h ^= rows[:, j].astype(np.uint64)
            h *= FNV_PRIME
    return h


def digest_of(hashes, indices=None, times=1):
    """Sum mod 2^64 of hashes[indices], repeated `times` (epochs)."""
    sel = hashes if indices is None else hashes[np.asarray(indices, dtype=np.int64)]
    total = sum(int(v) for v in sel) & M64
    return (total * times) & M64


def hexd(value):
    return f"{value:016x}"
