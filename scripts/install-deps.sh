#!/usr/bin/env bash
# Installs, on Debian 12, every package needed to build h5feed, run its tests (including the
# sanitizer and valgrind runs of scripts/test.sh) and run the demo.
#
# Fast when there is nothing to do: it asks dpkg first and runs apt only for what is missing.
# Uses sudo only when not root.
set -euo pipefail

packages=(
    build-essential   # gcc, make
    cmake
    pkg-config
    libhdf5-dev       # the HDF5 C library
    hdf5-tools        # h5dump, h5ls: inspecting files by hand
    libcjson-dev      # config parsing
    libcriterion-dev  # the C test framework
    libdeflate-dev    # deflate for the direct chunk path
    libdlpack-dev     # dlpack.h for tensor export
    python3-h5py      # tests/tool: the independent reader
    python3-numpy
    python3-venv       # scripts/test_pip.sh: `pip install .` in a fresh venv, offline
    python3-pip
    python3-setuptools # the build backend of pyproject.toml (with --no-build-isolation)
    python3-wheel
    valgrind
    clang
    # HDF5 filter plugins users' files need; the H5Dread fallback reads them (tests/api/test_direct)
    hdf5-filter-plugin
    hdf5-plugin-lzf
    hdf5-filter-plugin-blosc-serial
    bitshuffle
)

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
        missing+=("$p")
    fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
    echo "install-deps: all ${#packages[@]} packages are installed"
    exit 0
fi

sudo=()
if [[ $(id -u) -ne 0 ]]; then
    sudo=(sudo)
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update
"${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
