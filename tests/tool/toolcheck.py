"""Shared by the tests/tool/test_*.py scripts: counts checks and reports failures.

Each script runs as `/usr/bin/python3 test_X.py /path/to/h5feed` (tests/CMakeLists.txt) and
exits non-zero when any check failed. This file is not a test itself (no test_ prefix)."""

import os
import sys


def tool_from_argv():
    """The h5feed program named by the script's one argument, as an absolute path; exits 2
    with a usage line when the argument is missing."""
    if len(sys.argv) != 2:
        print(f"usage: {sys.argv[0]} /path/to/h5feed", file=sys.stderr)
        sys.exit(2)
    return os.path.abspath(sys.argv[1])


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
