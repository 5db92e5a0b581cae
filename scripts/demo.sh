#!/usr/bin/env bash
# The demo, from a fresh Debian 12 machine: installs what is needed, builds h5feed (Release) into
# build/, writes a synthetic dataset demo/demo.h5 once, and runs `h5feed bench` on it with
# configs/demo.json (fields x = /features as float32, y = /labels as int64).
#
# The dataset: 65536 rows x 1024 float64 (512 MiB of features), chunks of 256 rows, gzip 1 with
# the shuffle filter, 10 label classes. Delete demo/ to make it again.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh

echo "==== build (Release) into build/"
# The demo needs only the library and the program: no tests, and warnings stay warnings even if
# scripts/test.sh left -DHFEED_WERROR=ON in build/'s cache.
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DHFEED_BUILD_TOOLS=ON -DHFEED_BUILD_TESTS=OFF \
    -DHFEED_WERROR=OFF
cmake --build build -j "$(nproc)"

if [[ -f demo/demo.h5 ]]; then
    echo "==== demo/demo.h5 exists; keeping it (delete demo/ to write it again)"
else
    echo "==== writing demo/demo.h5"
    mkdir -p demo
    rm -f demo/demo.h5.partial
    build/h5feed synth --out demo/demo.h5.partial --rows 65536 --shape 1024 --dtype float64 \
        --chunk-rows 256 --gzip 1 --shuffle --seed 0 --labels 10
    mv demo/demo.h5.partial demo/demo.h5
fi

echo "==== build/h5feed bench configs/demo.json"
build/h5feed bench configs/demo.json
