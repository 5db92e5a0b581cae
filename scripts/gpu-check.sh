#!/usr/bin/env bash
# The GPU half of issue #4's checks, run on a machine with an NVIDIA GPU from a build packed on
# another machine (that GPU machine has no HDF5 C library, cJSON or Criterion):
#
#   here:  cmake -S . -B build && cmake --build build -j      (CUDA backend: HFEED_CUDA=AUTO)
#          ../shared/device/pack.sh build/h5feed build/limit_h2d build/tests/test_device_cuda \
#              build/tests/test_device
#   there: scripts/gpu-check.sh   (from the repository root, with .device/ carried along)
#
# Runs the GPU tests (device values equal host values, every sample once, 1000 open/close
# cycles), the fake-device tests, the Python binding's tests with that machine's torch and h5py
# (CUDA tensors through DLPack, zero copy, slots fenced on torch's stream; libh5feed.so.0 is
# packed as a library of h5feed), and bench/upload.py (upload rate vs a plain cudaMemcpyAsync
# loop, pinned vs pageable, starved share under --compute-ms). Logs go to $OUT (the device
# tool's output folder) or ./gpu-out.
#
# No GPU coverage is a failure here, not a pass: HFEED_REQUIRE_GPU=1 makes every GPU test and
# the binding's CUDA checks fail, naming the missing device or driver, where they would skip.
# The driver and runtime versions come first, since a driver too old for the static CUDA 13
# runtime is the usual reason.
set -uo pipefail
cd "$(dirname "$0")/.."
export LD_LIBRARY_PATH="$PWD/.device/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export HFEED_REQUIRE_GPU=1
out=${OUT:-gpu-out}
mkdir -p "$out"
status=0
{
    nvidia-smi --query-gpu=index,name,driver_version,memory.total --format=csv,noheader \
        || echo "nvidia-smi failed: no NVIDIA driver?"
    .device/bin/test_device_cuda --verbose --jobs 1 \
        --filter 'device_cuda/driver_and_runtime_versions' 2>&1 \
        | grep -E 'CUDA driver|cuda:|FAIL|HFEED'
    python3 -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda,
        "available", torch.cuda.is_available(), "devices", torch.cuda.device_count())' \
        2>&1 | tail -n 1
} 2>&1 | tee "$out/gpu.txt"
.device/bin/test_device_cuda --verbose --jobs 1 >"$out/test_device_cuda.log" 2>&1 || status=1
tail -n 3 "$out/test_device_cuda.log"
if grep -q 'Skipped\|SKIP' "$out/test_device_cuda.log"; then
    echo "gpu-check: a GPU test skipped (see $out/test_device_cuda.log)"
    status=1
fi
.device/bin/test_device --verbose >"$out/test_device.log" 2>&1 || status=1
tail -n 1 "$out/test_device.log"
python3 bench/upload.py --h5feed .device/bin/h5feed --limit .device/bin/limit_h2d \
    --dir "${TMPDIR:-/tmp}/h5feed-upload" --rounds "${ROUNDS:-5}" 2>&1 | tee "$out/upload.txt" \
    || status=1
cp "${TMPDIR:-/tmp}/h5feed-upload/upload-results.json" "$out/" 2>/dev/null || true
# Last, so that the issue's figures above come back first: Python there, with the
# packed libraries on LD_LIBRARY_PATH, is the least certain step.
timeout 300 python3 tests/python/test_binding.py .device/lib/libh5feed.so.0 \
    >"$out/test_binding.log" 2>&1 || status=1
tail -n 3 "$out/test_binding.log"
if grep -q '^SKIP: CUDA' "$out/test_binding.log"; then
    echo "gpu-check: the binding's CUDA checks skipped (see $out/test_binding.log)"
    status=1
fi
echo "gpu-check: $([ $status = 0 ] && echo PASS || echo FAIL)"
exit $status
