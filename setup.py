"""Builds the h5feed Python package for `pip install .` (see pyproject.toml).

The package is python/h5feed.py (as h5feed/__init__.py) plus the C library it loads through
ctypes, built here with CMake (library only: no tests, no tools) and copied beside it as
h5feed/libh5feed.so.0, where h5feed.py looks first. The wheel is platform-specific (it holds a
native library), not pure Python. `cmake --install` remains the other way to install both."""
import glob
import multiprocessing
import os
import re
import shlex
import shutil
import subprocess

from setuptools import setup
from setuptools.command.build_ext import build_ext
from setuptools.dist import Distribution

HERE = os.path.dirname(os.path.abspath(__file__))


def version():
    """HFEED_VERSION_MAJOR.MINOR.PATCH from include/h5feed.h, as CMake reads it."""
    with open(os.path.join(HERE, "include", "h5feed.h")) as f:
        text = f.read()
    parts = [re.search(rf"#define HFEED_VERSION_{p}\s+(\d+)", text).group(1)
             for p in ("MAJOR", "MINOR", "PATCH")]
    return ".".join(parts)


class BuildWithCMake(build_ext):
    """Builds libh5feed with CMake and lays out the package in build_lib (platlib):
    h5feed/__init__.py (python/h5feed.py) and h5feed/libh5feed.so.0 (the library)."""

    def run(self):
        build_temp = os.path.abspath(self.build_temp)
        cmake_dir = os.path.join(build_temp, "cmake")
        args = ["-DCMAKE_BUILD_TYPE=Release", "-DBUILD_SHARED_LIBS=ON",
                "-DHFEED_BUILD_TESTS=OFF", "-DHFEED_BUILD_TOOLS=OFF"]
        args += shlex.split(os.environ.get("H5FEED_CMAKE_ARGS", ""))
        subprocess.check_call(["cmake", "-S", HERE, "-B", cmake_dir, *args])
        jobs = str(max(1, min(multiprocessing.cpu_count(), 8)))
        subprocess.check_call(["cmake", "--build", cmake_dir, "--target", "h5feed", "-j", jobs])
        libs = sorted(glob.glob(os.path.join(cmake_dir, "libh5feed.so.*")))
        if not libs:
            raise RuntimeError(f"h5feed: CMake built no libh5feed.so.* in {cmake_dir}")
        pkg = os.path.join(self.build_lib, "h5feed")
        os.makedirs(pkg, exist_ok=True)
        self.copy_file(os.path.join(HERE, "python", "h5feed.py"),
                       os.path.join(pkg, "__init__.py"))
        # The real file under the SONAME (the symlinks of the build tree do not survive a wheel).
        shutil.copyfile(os.path.realpath(libs[0]), os.path.join(pkg, "libh5feed.so.0"))

    def get_outputs(self, include_bytecode=True):
        pkg = os.path.join(self.build_lib, "h5feed")
        return [os.path.join(pkg, "__init__.py"), os.path.join(pkg, "libh5feed.so.0")]

    def get_source_files(self):
        return [os.path.join("python", "h5feed.py")]

    def copy_extensions_to_source(self):
        pass  # no in-place (editable) build: the library lives in the package only


class BinaryDistribution(Distribution):
    """A native library inside: the wheel is tagged for this platform, not pure."""

    def has_ext_modules(self):
        return True


BUILD_BASE = os.path.join(HERE, "build-python")
os.makedirs(BUILD_BASE, exist_ok=True)  # egg_info wants its base to exist

setup(
    version=version(),
    packages=[],
    # build_ext, because the build runs it for a distribution with native code (below) and not
    # build_py for one that declares no Python packages of its own (the package is laid out here).
    cmdclass={"build_ext": BuildWithCMake},
    distclass=BinaryDistribution,
    # Out of the way of the CMake build trees (build/, build-asan/, ...) and of the sources.
    options={"build": {"build_base": BUILD_BASE}, "egg_info": {"egg_base": BUILD_BASE}},
    zip_safe=False,
)
