#!/usr/bin/python3
"""Corrupt input is never a crash, a hang or silent wrong data.

Usage: /usr/bin/python3 test_corrupt.py /path/to/h5feed [--mutants N] [--seed S] [--jobs J]
                                        [--keep DIR] [--timeout SEC]

Writes small HDF5 files with h5py in every chunk index type (version 1 B-tree, single chunk,
implicit, fixed array, extensible array, version 2 B-tree) and contiguous, with no filter, gzip,
shuffle + gzip, shuffle + gzip + fletcher32 and fletcher32 alone, in both byte orders: a float64
/features (200 x 6) and an int64 /labels (200) laid out alike. Then makes N mutants with a
seeded mutator: bit flips and byte writes (in metadata mostly, in chunk data too), overwritten
8-byte fields (addresses and lengths: 0, all ones, a random offset in the file), zeroed runs,
copied runs and truncations. Each mutant is run through `h5feed bench --json` with shuffle
none, chunk and global, and every run must end in one of two ways:

  - exit 0, having delivered exactly the data of the unmutated file, or exactly what h5py reads
    from the mutant (a flipped byte of unfiltered data is a change nobody can see: both read
    it), judged by the digest `h5feed bench` prints and one computed here;
  - exit 1 or 2 with an `h5feed bench: ...` message on stderr (under ASan, an exit with that
    message and a LeakSanitizer report of blocks HDF5 itself allocated and lost is counted
    apart, as "hdf5-leak": HDF5 leaks on some error paths of its own; see hdf5_leaks_only);

never a signal, a sanitizer report or a run past --timeout seconds. h5py reads each mutant in a
child process of its own (h5py crashes on some). Any other end fails the test, and the mutant
is kept (--keep, or a folder the failure names) with the config that shows it.

Also runs every config in ../shared/repro beside the checkout, where there is one (inputs that
once crashed the loader or returned wrong data): each must stay a clean error.

The default, 200 mutants, is the short run ctest does; `--mutants 10000` is the long one
(docs/robustness.md records its counts). The same --seed gives the same mutants.
Uses only the standard library, numpy and h5py.
"""
import argparse
import collections
import concurrent.futures
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from toolcheck import Checker, digest_of, hexd, row_hashes  # noqa: E402

ROWS = 200
WIDTH = 6
CHUNK_ROWS = 32
MODES = ("none", "chunk", "global")
FILTERS = {
    "plain": {},
    "gzip": {"compression": "gzip", "compression_opts": 1},
    "shuffle-gzip": {"compression": "gzip", "compression_opts": 1, "shuffle": True},
    "shuffle-gzip-f32": {"compression": "gzip", "compression_opts": 1, "shuffle": True,
                         "fletcher32": True},
    "f32": {"fletcher32": True},
}
# index kind -> (libver, chunks or None, maxshape of /features); /labels follows axis 0.
INDEXES = {
    "btree1": ("earliest", (CHUNK_ROWS, WIDTH), (ROWS, WIDTH)),
    "btree1-grow": ("earliest", (CHUNK_ROWS, WIDTH), (None, WIDTH)),
    "single": ("latest", (ROWS, WIDTH), (ROWS, WIDTH)),
    "farray": ("latest", (CHUNK_ROWS, WIDTH), (ROWS, WIDTH)),
    "earray": ("latest", (CHUNK_ROWS, WIDTH), (None, WIDTH)),
    "btree2": ("latest", (CHUNK_ROWS, WIDTH), (None, None)),
    "implicit": ("latest", (CHUNK_ROWS, WIDTH), (ROWS, WIDTH)),  # early allocation, no filter
    "contiguous": ("earliest", None, (ROWS, WIDTH)),
}


def write_implicit(f, name, data, chunks):
    """A dataset whose chunk index is implicit: fixed size, no filter, early allocation."""
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_chunk(chunks)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    space = h5py.h5s.create_simple(data.shape)
    tid = h5py.h5t.py_create(data.dtype)
    h5py.h5d.create(f.id, name.encode(), tid, space, dcpl=dcpl)
    f[name][...] = data


def data_ranges(path):
    """(offset, length) of every dataset's raw data in the file: its chunks or its block."""
    out = []
    with h5py.File(path, "r") as f:
        for name in ("features", "labels"):
            d = f[name]
            if d.chunks is None:
                off = d.id.get_offset()
                if off is not None:
                    out.append((off, d.id.get_storage_size()))
                continue
            for i in range(d.id.get_num_chunks()):
                info = d.id.get_chunk_info(i)
                out.append((info.byte_offset, info.size))
    return out


def make_bases(folder):
    """Writes the unmutated files; returns a list of dicts (name, path, bytes, meta, digest)."""
    rng = np.random.default_rng(20261205)
    features = np.round(rng.normal(size=(ROWS, WIDTH)) * 100.0) / 8.0  # compressible, exact
    labels = np.arange(ROWS, dtype=np.int64) * 7 - 300
    digest = digest_of(row_hashes([features.astype("<f4"), labels]))
    bases = []
    for kind, (libver, chunks, maxshape) in INDEXES.items():
        filters = ["plain"] if kind in ("implicit", "contiguous") else list(FILTERS)
        for filt in filters:
            for order in "<>":
                name = f"{kind}-{filt}-{'le' if order == '<' else 'be'}"
                path = os.path.join(folder, name + ".h5")
                fd = features.astype(order + "f8")
                ld = labels.astype(order + "i8")
                with h5py.File(path, "w", libver=libver) as f:
                    if kind == "implicit":
                        write_implicit(f, "features", fd, chunks)
                        write_implicit(f, "labels", ld, (chunks[0],))
                    elif chunks is None:
                        f.create_dataset("features", data=fd)
                        f.create_dataset("labels", data=ld)
                    else:
                        f.create_dataset("features", data=fd, chunks=chunks, maxshape=maxshape,
                                         **FILTERS[filt])
                        f.create_dataset("labels", data=ld, chunks=(chunks[0],),
                                         maxshape=(maxshape[0],), **FILTERS[filt])
                with open(path, "rb") as fh:
                    raw = fh.read()
                in_data = bytearray(len(raw))
                for off, n in data_ranges(path):
                    in_data[off:off + n] = b"\1" * n
                meta = [i for i in range(len(raw)) if not in_data[i]]
                data = [i for i in range(len(raw)) if in_data[i]]
                bases.append({"name": name, "path": path, "bytes": raw, "meta": meta,
                              "data": data or meta, "digest": digest})
    return bases


def mutate(base, rng):
    """Returns (mutant bytes, a one-line description) for one seeded mutation of base."""
    b = bytearray(base["bytes"])
    n = len(b)

    def where(meta_share=0.8):
        pool = base["meta"] if rng.random() < meta_share else base["data"]
        return rng.choice(pool)

    kind = rng.choices(["flip", "byte", "field", "zero", "copy", "truncate"],
                       weights=[30, 12, 20, 14, 12, 12])[0]
    if kind == "flip":
        at, bit = where(0.6), rng.randrange(8)
        b[at] ^= 1 << bit
        return bytes(b), f"flip bit {bit} of byte {at}"
    if kind == "byte":
        at, v = where(), rng.randrange(256)
        b[at] = v
        return bytes(b), f"byte {at} = {v:#04x}"
    if kind == "field":
        at = where()
        v = rng.choice([0, (1 << 64) - 1, rng.randrange(n + 4096), rng.randrange(1 << 32)])
        b[at:at + 8] = v.to_bytes(8, "little")
        return bytes(b)[:n], f"8 bytes at {at} = {v:#x}"
    if kind == "zero":
        at, k = where(), rng.randint(1, 64)
        b[at:at + k] = bytes(min(k, n - at))
        return bytes(b), f"zero {k} bytes at {at}"
    if kind == "copy":
        src, dst, k = rng.randrange(n), where(), rng.randint(4, 64)
        piece = bytes(b[src:src + k])
        b[dst:dst + len(piece)] = piece
        return bytes(b)[:n], f"copy {len(piece)} bytes from {src} to {dst}"
    cut = rng.randrange(n // 8, n)
    return bytes(b[:cut]), f"truncate to {cut} of {n} bytes"


def h5py_digest(path, timeout):
    """The digest of what h5py reads from path (as the config's dtypes), or None when h5py
    fails or crashes; in a child process, since h5py can crash on a damaged file."""
    code = ("import sys, h5py, numpy as np\n"
            f"sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})\n"
            "from toolcheck import digest_of, row_hashes\n"
            "with h5py.File(sys.argv[1], 'r') as f:\n"
            "    x = f['features'][...].astype('<f4')\n"
            "    y = f['labels'][...].astype('<i8')\n"
            "assert x.ndim == 2 and y.ndim == 1 and x.shape[0] == y.shape[0]\n"
            "print('%016x' % digest_of(row_hashes([x, y])))\n")
    try:
        p = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    return p.stdout.strip() if p.returncode == 0 else None


def child_env():
    """Sanitizer options for the runs: reports on stderr with exit codes of their own, so that a
    report is never mistaken for a clean exit 1. allocator_may_return_null: HDF5 asks malloc for
    sizes it reads from the file (0xbff000000058 bytes, from a damaged object header, in mutant
    786 of seed 77) and fails cleanly when it gets NULL, as it does from glibc; ASan's default
    aborts instead of returning NULL. An allocation h5feed failed to check would still crash."""
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = "detect_leaks=1:exitcode=86:allocator_may_return_null=1"
    env["UBSAN_OPTIONS"] = "halt_on_error=1:print_stacktrace=1:exitcode=87"
    return env


def hdf5_leaks_only(err):
    """Whether err's only sanitizer report is LeakSanitizer's, and every leaked block was
    allocated inside libhdf5 (its first frame past malloc is there). HDF5 leaks on some of its
    own error paths (H5C_protect on a damaged object header: valgrind shows H5FL_reg_calloc <-
    H5C_protect <- H5O_protect <- H5G__obj_lookup), which h5feed cannot fix; a handle h5feed
    left open would not show here, since HDF5 frees every open object at exit."""
    if "ERROR: LeakSanitizer" not in err or "runtime error:" in err:
        return False
    if "ERROR: AddressSanitizer" in err:
        return False
    blocks = err.split("leak of ")[1:]
    for block in blocks:
        first = [ln for ln in block.splitlines() if ln.strip().startswith("#1 ")]
        if not first or "libhdf5" not in first[0]:
            return False
    return bool(blocks)


def run_one(tool, cfg_path, timeout, env):
    """Runs bench on one config; returns (outcome, detail)."""
    try:
        p = subprocess.run([tool, "bench", cfg_path, "--json"], capture_output=True, text=True,
                           timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return "hang", f"no end within {timeout} s"
    err = p.stderr
    if p.returncode < 0:
        return "crash", f"signal {-p.returncode}\n{err[-2000:]}"
    message = any(x.startswith("h5feed bench: ") for x in err.splitlines())
    if hdf5_leaks_only(err) and message:
        return "hdf5-leak", err.strip().splitlines()[0]
    # Reports, not the "WARNING: AddressSanitizer failed to allocate" lines that go with
    # allocator_may_return_null (child_env).
    reports = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
               "ThreadSanitizer")
    if any(r in err for r in reports) or p.returncode in (86, 87):
        return "sanitizer", err[-3000:]
    if p.returncode == 0:
        try:
            return "ok", json.loads(p.stdout)
        except ValueError:
            return "unclean", f"exit 0 without one JSON object: {p.stdout[:500]!r}"
    if p.returncode in (1, 2) and message:
        return "error", err.strip().splitlines()[-1]
    return "unclean", f"exit {p.returncode}, stderr: {err[-1000:]!r}"


def check_mutant(tool, folder, bases, seed, index, timeout, env):
    """Makes mutant `index` and runs it in every mode; returns a list of (outcome, mode, text)."""
    rng = random.Random(seed * 1_000_003 + index)
    kinds = sorted({b["name"].split("-")[0] for b in bases})  # each index kind equally often
    kind = rng.choice(kinds)
    base = rng.choice([b for b in bases if b["name"].split("-")[0] == kind])
    raw, what = mutate(base, rng)
    path = os.path.join(folder, f"m{index}.h5")
    with open(path, "wb") as f:
        f.write(raw)
    label = f"mutant {index} of {base['name']} ({what})"
    results = []
    theirs = "unread"
    for mode in MODES:
        cfg = {"files": [os.path.basename(path)],
               "fields": [{"name": "x", "dataset": "/features", "dtype": "float32"},
                          {"name": "y", "dataset": "/labels", "dtype": "int64"}],
               "batch_size": 48, "workers": 2, "prefetch": 3, "device": "cpu", "shuffle": mode,
               "seed": index}
        cfg_path = os.path.join(folder, f"m{index}-{mode}.json")
        with open(cfg_path, "w") as f:
            json.dump(cfg, f)
        outcome, detail = run_one(tool, cfg_path, timeout, env)
        if outcome == "ok":
            got = detail.get("digest")
            if got == hexd(base["digest"]):
                outcome, detail = "same", ""
            else:
                if theirs == "unread":
                    theirs = h5py_digest(path, timeout)
                if got == theirs:
                    outcome, detail = "as-h5py", ""
                else:
                    outcome = "wrong"
                    detail = (f"digest {got}, unmutated {hexd(base['digest'])}, h5py "
                              f"{theirs or 'cannot read it'}; {detail.get('samples')} samples")
        results.append((outcome, mode, f"{label}, shuffle {mode}: {detail}"))
    return index, base["name"], results


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("tool")
    ap.add_argument("--mutants", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--keep", help="folder for the mutants that fail (default: a new temp one)")
    args = ap.parse_args()
    tool = os.path.abspath(args.tool)
    c = Checker()
    work = tempfile.mkdtemp(prefix="h5feed-corrupt-")
    keep = args.keep or tempfile.mkdtemp(prefix="h5feed-corrupt-failures-")
    os.makedirs(keep, exist_ok=True)
    bases = make_bases(work)
    env = child_env()

    # The unmutated files themselves must read back exactly.
    for b in bases:
        cfg = os.path.join(work, b["name"] + ".json")
        with open(cfg, "w") as f:
            json.dump({"files": [b["path"]],
                       "fields": [{"name": "x", "dataset": "/features", "dtype": "float32"},
                                  {"name": "y", "dataset": "/labels", "dtype": "int64"}],
                       "batch_size": 48, "shuffle": "global", "device": "cpu"}, f)
        outcome, detail = run_one(tool, cfg, args.timeout, env)
        c.check(outcome == "ok" and detail.get("digest") == hexd(b["digest"]),
                f"unmutated {b['name']}: {outcome} {detail}")

    # The inputs that once broke the promise (../shared/repro beside the checkout, where there is
    # one): each must stay a clean error.
    repro = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared",
                         "repro")
    for name in sorted(os.listdir(repro)) if os.path.isdir(repro) else []:
        if not name.endswith(".json"):
            continue
        outcome, detail = run_one(tool, os.path.join(repro, name), args.timeout, env)
        c.check(outcome in ("error", "hdf5-leak"), f"shared/repro/{name}: {outcome}: {detail}")

    counts = collections.Counter()
    per_kind = collections.defaultdict(collections.Counter)
    failures = 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(check_mutant, tool, work, bases, args.seed, i, args.timeout, env)
                   for i in range(args.mutants)]
        for fut in concurrent.futures.as_completed(futures):
            index, name, results = fut.result()
            bad = False
            for outcome, mode, text in results:
                counts[outcome] += 1
                per_kind[name.split("-")[0]][outcome] += 1
                ok = outcome in ("same", "as-h5py", "error", "hdf5-leak")
                bad = bad or not ok
                c.check(ok, f"{outcome}: {text}")
            if bad:
                failures += 1
                shutil.copy(os.path.join(work, f"m{index}.h5"), keep)
                for mode in MODES:
                    shutil.copy(os.path.join(work, f"m{index}-{mode}.json"), keep)
            for name in [f"m{index}.h5"] + [f"m{index}-{m}.json" for m in MODES]:
                os.remove(os.path.join(work, name))

    runs = sum(counts.values())
    print(f"{args.mutants} mutants of {len(bases)} files (seed {args.seed}), {runs} runs: "
          + ", ".join(f"{k} {counts[k]}" for k in
                      ("same", "as-h5py", "error", "hdf5-leak", "wrong", "crash", "sanitizer",
                       "hang", "unclean")))
    for kind in sorted(per_kind):
        print(f"  {kind:12s} " + ", ".join(f"{k} {v}" for k, v in sorted(per_kind[kind].items())))
    if failures:
        print(f"{failures} failing mutants kept in {keep} (run: h5feed bench {keep}/mN-MODE.json)")
    else:
        shutil.rmtree(keep, ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)
    print(f"{c.passed} passed, {c.failed} failed")
    sys.exit(1 if c.failed else 0)


if __name__ == "__main__":
    main()
