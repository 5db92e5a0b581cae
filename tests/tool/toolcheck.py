"""Shared by the tests/tool/test_*.py scripts: counts checks and reports failures.

Each script runs as `/usr/bin/python3 test_X.py /path/to/h5feed` (tests/CMakeLists.txt) and
exits non-zero when any check failed. This file is not a test itself (no test_ prefix)."""


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
