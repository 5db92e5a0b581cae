#!/usr/bin/env bash
# `pip install .` as a Python user does it, offline: a fresh venv (--system-site-packages, for
# Debian's setuptools, wheel, numpy and h5py), `pip install --no-build-isolation --no-index .`,
# then, from another folder and with no H5FEED_LIBRARY, `import h5feed` must load the library
# bundled in the package and a loader must deliver a small file's values, compared with h5py.
#
# The sources are copied to a temporary folder first (tracked files and untracked ones git does
# not ignore), so the build leaves nothing in the checkout. Run by scripts/test.sh; also alone:
#     scripts/test_pip.sh
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=/usr/bin/python3
tmp=$(mktemp -d "${TMPDIR:-/tmp}/h5feed-pip.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

mkdir "$tmp/src"
if git -C "$root" rev-parse --git-dir >/dev/null 2>&1; then
    (cd "$root" && git ls-files -z --cached --others --exclude-standard |
        while IFS= read -r -d '' f; do [[ -e "$f" ]] && printf '%s\0' "$f"; done |
        xargs -0 cp --parents -t "$tmp/src")
else
    (cd "$root" && tar --exclude='./build*' --exclude='./.git' -cf - .) | tar -xf - -C "$tmp/src"
fi

"$python" -m venv --system-site-packages "$tmp/venv"
(cd "$tmp/src" && "$tmp/venv/bin/python" -m pip install --no-build-isolation --no-index \
    --no-cache-dir --quiet .)

mkdir "$tmp/run"
cd "$tmp/run"
env -u H5FEED_LIBRARY -u PYTHONPATH "$tmp/venv/bin/python" - "$tmp/venv" <<'PY'
import json
import os
import sys

import h5py
import numpy as np

import h5feed

venv = os.path.realpath(sys.argv[1])
lib = os.path.realpath(h5feed.library_path)
pkg = os.path.realpath(os.path.dirname(h5feed.__file__))
assert pkg.startswith(venv + os.sep), f"h5feed imported from {pkg}, not the venv {venv}"
assert lib == os.path.join(pkg, "libh5feed.so.0"), f"library {lib}, not the bundled one in {pkg}"

x = np.arange(1000 * 6, dtype="<f8").reshape(1000, 6) * 0.5
y = np.arange(1000, dtype="<i8") % 7
with h5py.File("small.h5", "w") as f:
    f.create_dataset("features", data=x, chunks=(64, 6), compression="gzip", shuffle=True)
    f.create_dataset("labels", data=y)
with open("small.json", "w") as f:
    json.dump({"files": ["small.h5"],
               "fields": [{"name": "x", "dataset": "/features", "dtype": "float32"},
                          {"name": "y", "dataset": "/labels", "dtype": "int64"}],
               "batch_size": 96, "shuffle": "none", "workers": 2, "device": "cpu"}, f)
xs, ys = [], []
with h5feed.Loader("small.json") as loader:
    for batch in loader:
        xs.append(np.from_dlpack(batch["x"]).copy())
        ys.append(np.from_dlpack(batch["y"]).copy())
got_x, got_y = np.concatenate(xs), np.concatenate(ys)
assert len(xs) == 11, f"{len(xs)} batches, wanted 11"
assert np.array_equal(got_x, x.astype(np.float32)), "x differs from h5py's values"
assert np.array_equal(got_y, y), "y differs from h5py's values"
print(f"pip install .: h5feed {h5feed.__file__} loaded {lib}; 1000 samples in 11 batches "
      "equal h5py's")
PY
