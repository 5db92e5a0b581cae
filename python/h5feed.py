"""h5feed from Python: batches of HDF5 samples as PyTorch, NumPy, JAX or CuPy arrays, no copy.

A ctypes binding of the C library (include/h5feed.h): nothing to compile, only the standard
library. The loader's worker threads run in C, outside the GIL; each field of a batch is handed
to a framework through the DLPack protocol (`__dlpack__`), so the framework's tensor *is* the
batch slot's memory (host, or the GPU's with a CUDA device).

    import torch, h5feed
    with h5feed.Loader("configs/demo.json") as loader:
        for batch in loader:
            x = torch.from_dlpack(batch["x"])  # float32 [256, 1024], the slot's own memory
            y = torch.from_dlpack(batch["y"])
            ...

The rules, which are the C header's:
- `for batch in loader` yields the batches in order, every sample once per epoch. A batch is
  given back when the loop asks for the next one (or ends, or `batch.release()`); after that it
  cannot export more tensors.
- A tensor taken from a batch keeps the batch's slot until the tensor is freed, also after the
  batch was given back or the loader closed. Holding the tensors of every slot ("prefetch" in
  the config) makes the next `next()` raise `Error` with status `BUSY` instead of waiting
  forever.
- On a CUDA device the tensors are in GPU memory and their upload has finished when the batch
  is yielded. Each tensor remembers the stream its consumer named in `__dlpack__(stream=...)`
  (torch passes its current stream; None or 1: the legacy default stream; 2: the per-thread
  default stream; -1: no synchronisation, the consumer orders its own work): when the tensor is
  freed, a fence is recorded on that stream, and the slot's device buffer is refilled only after
  the work queued there so far, for every tensor taken from the batch, also one kept into a
  later step. Plain `__dlpack__()` with -1, or reading `data_ptr` directly, leaves the ordering
  to the caller: the slot may be refilled as soon as the batch and its tensors are released.
- One consumer thread per loader.

The library is `$H5FEED_LIBRARY` when set; else `libh5feed.so.0` beside this file, where
`pip install .` bundles it (the package's own); else `libh5feed.so.0` from the dynamic loader's
path (an h5feed installed with `cmake --install`). Log lines (fallbacks, the device "auto" chose) go to the `logging`
logger "h5feed".
"""

import ctypes
import ctypes.util
import json as _json
import logging
import os
import types
import weakref

__all__ = ["Loader", "Batch", "Field", "Error", "library_path"]

# ---- the C library -------------------------------------------------------------------------

OK, END, BUSY = 0, 2, 10
_DEVICE_NAMES = {1: "cpu", 2: "cuda", 3: "fake"}
_DTYPE_NAMES = {1: "float32", 2: "float64", 3: "int32", 4: "int64", 5: "int8", 6: "uint8",
                7: "int16", 8: "uint16", 9: "uint32", 10: "uint64", 11: "float16"}
_MAX_DIMS = 8  # HFEED_MAX_SAMPLE_DIMS + 1
_ERRBUF_SIZE = 1024
_DL_CPU, _DL_CUDA = 1, 2  # DLDeviceType


class _Tensor(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("data", ctypes.c_void_p), ("dtype", ctypes.c_int),
                ("ndim", ctypes.c_int), ("shape", ctypes.c_int64 * _MAX_DIMS),
                ("nbytes", ctypes.c_size_t), ("device", ctypes.c_int),
                ("device_index", ctypes.c_int)]


class _BatchInfo(ctypes.Structure):
    _fields_ = [("epoch", ctypes.c_uint64), ("index", ctypes.c_uint64),
                ("samples", ctypes.c_size_t), ("fields", ctypes.c_size_t)]


class _LoaderInfo(ctypes.Structure):
    _fields_ = [(n, ctypes.c_uint64) for n in
                ("total_samples", "samples_per_epoch", "padded_per_epoch", "dropped_per_epoch",
                 "batches_per_epoch", "epochs")] + [
        ("batch_size", ctypes.c_size_t), ("fields", ctypes.c_size_t),
        ("rank", ctypes.c_uint), ("world_size", ctypes.c_uint), ("workers", ctypes.c_uint),
        ("slots", ctypes.c_uint), ("slot_bytes", ctypes.c_size_t),
        ("memory_bytes", ctypes.c_size_t), ("device", ctypes.c_int),
        ("device_index", ctypes.c_int), ("hdf5_threadsafe", ctypes.c_int)]


class _Stats(ctypes.Structure):
    _fields_ = [(n, ctypes.c_uint64) for n in
                ("batches", "samples", "bytes_out", "nan_values", "overflow_values", "read_ns",
                 "decode_ns", "convert_ns", "wait_ns", "fallback_reads", "chunk_decodes",
                 "cache_hits", "upload_bytes", "upload_ns", "read_ahead", "upload_span_ns",
                 "cache_bytes", "mapped_rows")]


_DLDeleter = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


class _DLManagedTensor(ctypes.Structure):
    # dlpack.h 0.6: DLTensor {data, device {type, id}, ndim, dtype {code, bits, lanes}, shape,
    # strides, byte_offset}, then manager_ctx and deleter. Only the deleter is read here.
    _fields_ = [("data", ctypes.c_void_p), ("device_type", ctypes.c_int32),
                ("device_id", ctypes.c_int32), ("ndim", ctypes.c_int32),
                ("dtype_code", ctypes.c_uint8), ("dtype_bits", ctypes.c_uint8),
                ("dtype_lanes", ctypes.c_uint16), ("shape", ctypes.c_void_p),
                ("strides", ctypes.c_void_p), ("byte_offset", ctypes.c_uint64),
                ("manager_ctx", ctypes.c_void_p), ("deleter", _DLDeleter)]


_LogFn = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p)
_P = ctypes.c_void_p


def _declare(lib):
    """Sets the C signatures of the functions used here; returns lib."""
    sigs = {
        "hfeed_loader_open": (ctypes.c_int, [ctypes.c_char_p, _LogFn, _P, ctypes.POINTER(_P),
                                             ctypes.c_char_p, ctypes.c_size_t]),
        "hfeed_loader_open_json": (ctypes.c_int, [ctypes.c_char_p, ctypes.c_char_p, _LogFn, _P,
                                                  ctypes.POINTER(_P), ctypes.c_char_p,
                                                  ctypes.c_size_t]),
        "hfeed_loader_close": (ctypes.c_int, [_P]),
        "hfeed_loader_next": (ctypes.c_int, [_P, ctypes.POINTER(_P)]),
        "hfeed_loader_seek": (ctypes.c_int, [_P, ctypes.c_uint64, ctypes.c_uint64]),
        "hfeed_loader_get_info": (ctypes.c_int, [_P, ctypes.POINTER(_LoaderInfo)]),
        "hfeed_loader_get_stats": (ctypes.c_int, [_P, ctypes.POINTER(_Stats)]),
        "hfeed_loader_get_field_stats": (ctypes.c_int, [
            _P, ctypes.c_size_t, ctypes.POINTER(ctypes.POINTER(ctypes.c_double)),
            ctypes.POINTER(ctypes.POINTER(ctypes.c_double)), ctypes.POINTER(ctypes.c_size_t)]),
        "hfeed_loader_errmsg": (ctypes.c_char_p, [_P]),
        "hfeed_batch_release": (None, [_P]),
        "hfeed_batch_release_on_stream": (ctypes.c_int, [_P, _P]),
        "hfeed_batch_get_info": (ctypes.c_int, [_P, ctypes.POINTER(_BatchInfo)]),
        "hfeed_batch_get_tensor": (ctypes.c_int, [_P, ctypes.c_size_t, ctypes.POINTER(_Tensor)]),
        "hfeed_batch_get_indices": (ctypes.c_int, [_P, ctypes.POINTER(ctypes.POINTER(
            ctypes.c_uint64))]),
        "hfeed_batch_export_dlpack": (ctypes.c_int, [_P, ctypes.c_size_t, ctypes.POINTER(_P)]),
        "hfeed_batch_export_dlpack_on_stream": (ctypes.c_int, [_P, ctypes.c_size_t, _P,
                                                               ctypes.POINTER(_P)]),
        "hfeed_features": (ctypes.c_uint, []),
        "hfeed_strerror": (ctypes.c_char_p, [ctypes.c_int]),
        "hfeed_version_string": (ctypes.c_char_p, []),
    }
    for name, (restype, argtypes) in sigs.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = restype, argtypes
    return lib


def _load():
    """The C library: $H5FEED_LIBRARY (an explicit choice, say a build tree's), else the one
    bundled beside this file by `pip install .`, else the installed libh5feed.so.0."""
    path = os.environ.get("H5FEED_LIBRARY")
    bundled = os.path.join(os.path.dirname(os.path.abspath(__file__)), "libh5feed.so.0")
    candidates = [path] if path else [bundled if os.path.exists(bundled) else None,
                                      "libh5feed.so.0", ctypes.util.find_library("h5feed")]
    errors = []
    for c in candidates:
        if not c:
            continue
        try:
            return c, _declare(ctypes.CDLL(c))
        except OSError as e:
            errors.append(str(e))
    raise ImportError("h5feed: cannot load the C library (set H5FEED_LIBRARY to the path of "
                      "libh5feed.so): " + "; ".join(errors or ["libh5feed not found"]))


library_path, _lib = _load()
__version__ = _lib.hfeed_version_string().decode()

# ---- errors and logging ----------------------------------------------------------------------


class Error(Exception):
    """A failed h5feed call: `status` is the C status code (e.g. 4 for a config error, 10 BUSY),
    `message` the library's text, which names the file, dataset or config key at fault."""

    def __init__(self, status, message):
        self.status = status
        self.message = message
        super().__init__(f"{_lib.hfeed_strerror(status).decode()}: {message}")


_log = logging.getLogger("h5feed")


@_LogFn
def _log_line(_user, level, msg):
    # Runs on the thread that called into the library or on a worker thread (ctypes takes the
    # GIL); the library never calls it while holding a lock of its own.
    _log.log(logging.WARNING if level == 2 else logging.INFO, "%s", msg.decode(errors="replace"))


# ---- DLPack capsules -------------------------------------------------------------------------

_capi = ctypes.pythonapi
_capi.PyCapsule_New.restype = ctypes.py_object
_capi.PyCapsule_New.argtypes = [_P, ctypes.c_char_p, _P]
_capi.PyCapsule_IsValid.restype = ctypes.c_int
_capi.PyCapsule_IsValid.argtypes = [_P, ctypes.c_char_p]
_capi.PyCapsule_GetPointer.restype = _P
_capi.PyCapsule_GetPointer.argtypes = [_P, ctypes.c_char_p]


@ctypes.CFUNCTYPE(None, _P)
def _capsule_destructor(capsule):
    # DLPack's rule: a framework that takes the tensor renames the capsule "used_dltensor" and
    # calls the deleter itself later; a capsule still named "dltensor" was never taken, so the
    # export is ours to delete (or its batch slot would never come back).
    if _capi.PyCapsule_IsValid(capsule, b"dltensor"):
        managed = _capi.PyCapsule_GetPointer(capsule, b"dltensor")
        _DLManagedTensor.from_address(managed).deleter(managed)


def _capsule(managed):
    """A "dltensor" capsule owning the DLManagedTensor * managed."""
    try:
        return _capi.PyCapsule_New(managed, b"dltensor",
                                   ctypes.cast(_capsule_destructor, _P))
    except BaseException:
        _DLManagedTensor.from_address(managed).deleter(managed)
        raise


def _consumer_stream(stream):
    """DLPack's `__dlpack__(stream=...)` for a CUDA tensor -> (fence, cudaStream_t value or
    None for NULL): fence tells whether the tensor's release waits for work on that stream.
    None and 1 are the legacy default stream, 2 the per-thread default stream (CUDA accepts
    cudaStreamPerThread, 0x2, as a handle), other positive integers stream handles, -1 "no
    synchronisation" (no fence: the consumer orders its work itself); 0 is disallowed by the
    DLPack spec (ambiguous)."""
    if stream is None:
        return True, None
    if isinstance(stream, bool) or not isinstance(stream, int):
        raise TypeError(f"h5feed: __dlpack__ stream must be an integer or None, not {stream!r}")
    if stream == 1:
        return True, None
    if stream == -1:
        return False, None
    if stream == 0:
        raise BufferError("h5feed: __dlpack__(stream=0) is disallowed by DLPack (ambiguous); "
                          "use 1 for the legacy default stream or 2 for the per-thread one")
    if stream < -1:
        raise BufferError(f"h5feed: __dlpack__ stream {stream} is not a CUDA stream")
    return True, stream


# ---- the API ---------------------------------------------------------------------------------


class Field:
    """One field of a batch: a dense C-order array whose first axis is the batch axis.
    Frameworks take it without a copy through the DLPack protocol: `torch.from_dlpack(f)`,
    `numpy.from_dlpack(f)` (host memory only), `jax.dlpack.from_dlpack(f)`,
    `cupy.from_dlpack(f)`. Each `__dlpack__` call is one export, holding the batch's slot until
    the framework frees its tensor."""

    def __init__(self, batch, index, t):
        # Weak, so a batch nobody holds is given back at once (no cycle waits for the GC).
        self._batch = weakref.ref(batch)
        self._index = index
        self.name = t.name.decode()
        self.dtype = _DTYPE_NAMES.get(t.dtype, "invalid")
        self.shape = tuple(t.shape[d] for d in range(t.ndim))
        self.nbytes = t.nbytes
        self.device = _DEVICE_NAMES.get(t.device, "invalid")
        self.device_index = t.device_index
        self.data_ptr = t.data or 0  # the first element's address (host or device)

    def __repr__(self):
        return (f"h5feed.Field({self.name!r}, {self.dtype}, shape={self.shape}, "
                f"device={self.device}:{self.device_index})")

    def __dlpack_device__(self):
        if self.device == "cuda":
            return (_DL_CUDA, self.device_index)
        return (_DL_CPU, 0)  # cpu, and "fake" (host memory behind a simulated upload)

    def __dlpack__(self, *, stream=None, max_version=None, dl_device=None, copy=None):
        # Newer consumers pass max_version (DLPack 1.0): an unversioned "dltensor" capsule is
        # the answer a 0.x producer gives. A copy, or another device, is not ours to make.
        if copy:
            raise BufferError("h5feed exports the batch slot itself; it does not copy")
        if dl_device is not None and tuple(dl_device) != self.__dlpack_device__():
            raise BufferError(f"h5feed: {self.name} is on {self.__dlpack_device__()}, "
                              f"not {tuple(dl_device)}")
        batch = self._batch()
        if batch is None:
            raise Error(1, f"field {self.name}: its batch is gone")
        handle = batch._live_handle()
        # The upload is complete already, so nothing needs to wait on the consumer's stream
        # now; it is the stream this tensor's release must be fenced on (its deleter).
        fence, s = _consumer_stream(stream) if self.device == "cuda" else (False, None)
        out = _P()
        if fence:
            st = _lib.hfeed_batch_export_dlpack_on_stream(handle, self._index, s,
                                                          ctypes.byref(out))
        else:
            st = _lib.hfeed_batch_export_dlpack(handle, self._index, ctypes.byref(out))
        _check(st, "export")
        return _capsule(out.value)


class Batch:
    """One batch, as `for batch in loader` yields it: `batch["x"]` or `batch[0]` is a Field,
    `epoch`, `index` (within the epoch), `samples` (rows), `indices` (the global sample index of
    each row), `names` (the fields in config order)."""

    def __init__(self, handle):
        self._handle = handle
        info = _BatchInfo()
        _check(_lib.hfeed_batch_get_info(handle, ctypes.byref(info)), "batch info")
        self.epoch, self.index, self.samples = info.epoch, info.index, info.samples
        self._fields = []
        for i in range(info.fields):
            t = _Tensor()
            _check(_lib.hfeed_batch_get_tensor(handle, i, ctypes.byref(t)), "batch tensor")
            self._fields.append(Field(self, i, t))
        idx = ctypes.POINTER(ctypes.c_uint64)()
        _check(_lib.hfeed_batch_get_indices(handle, ctypes.byref(idx)), "batch indices")
        self.indices = idx[:self.samples]
        self.names = [f.name for f in self._fields]

    def __len__(self):
        return self.samples

    def __getitem__(self, key):
        if isinstance(key, int):
            return self._fields[key]
        for f in self._fields:
            if f.name == key:
                return f
        raise KeyError(f"h5feed: the batch has no field {key!r} (fields: {self.names})")

    def torch(self):
        """The fields as {name: torch.Tensor}, without a copy."""
        import torch
        return {f.name: torch.from_dlpack(f) for f in self._fields}

    def numpy(self):
        """The fields as {name: numpy.ndarray}, without a copy (host memory only)."""
        import numpy
        return {f.name: numpy.from_dlpack(f) for f in self._fields}

    def release(self):
        """Gives the batch back (the loop does it when it takes the next batch). Tensors taken
        from it stay valid; its slot is refilled once they are all freed too, and (CUDA) after
        the work queued on each tensor's stream before it was freed (its own fence)."""
        handle, self._handle = self._handle, None
        if handle is None:
            return
        _lib.hfeed_batch_release(handle)

    def _live_handle(self):
        if self._handle is None:
            raise Error(1, f"batch {self.index} of epoch {self.epoch} was given back already: "
                           "take its tensors before the loop moves on")
        return self._handle

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()

    def __del__(self):
        if _lib is not None:
            self.release()


def _check(status, what, loader=None):
    if status != OK:
        msg = _lib.hfeed_loader_errmsg(loader).decode() if loader else what
        raise Error(status, msg)


class Loader:
    """A loader opened from a JSON config: a path (relative paths in it are relative to its
    folder) or a dict (relative to base_dir, default the current directory). Everything is
    validated and allocated here; the workers start at once. Iterate it for batches."""

    def __init__(self, config, *, base_dir=None):
        err = ctypes.create_string_buffer(_ERRBUF_SIZE)
        handle = _P()
        if isinstance(config, dict):
            text = _json.dumps(config).encode()
            base = os.fsencode(base_dir) if base_dir is not None else None
            st = _lib.hfeed_loader_open_json(text, base, _log_line, None, ctypes.byref(handle),
                                             err, _ERRBUF_SIZE)
        else:
            st = _lib.hfeed_loader_open(os.fsencode(config), _log_line, None,
                                        ctypes.byref(handle), err, _ERRBUF_SIZE)
        if st != OK:
            raise Error(st, err.value.decode(errors="replace"))
        self._handle = handle.value
        self._current = None
        info = _LoaderInfo()
        _check(_lib.hfeed_loader_get_info(self._handle, ctypes.byref(info)), "info")
        self.info = types.SimpleNamespace(**{n: getattr(info, n) for n, _ in info._fields_})
        self.info.device = _DEVICE_NAMES.get(info.device, "invalid")

    def __iter__(self):
        return self

    def __next__(self):
        handle = self._live_handle()
        self._give_back_current()
        b = _P()
        st = _lib.hfeed_loader_next(handle, ctypes.byref(b))
        if st == END:
            raise StopIteration
        if st == BUSY:
            raise Error(st, _lib.hfeed_loader_errmsg(handle).decode() +
                        f" (each of the {self.info.slots} slots is held by tensors taken from "
                        "an earlier batch: .clone() what you keep, or raise \"prefetch\")")
        _check(st, "next", handle)
        self._current = Batch(b.value)
        return self._current

    def epoch(self):
        """The rest of the current epoch's batches, for a loop per epoch:
        `for e in range(loader.info.epochs): for batch in loader.epoch(): ...`. After the last
        epoch it yields nothing."""
        for batch in self:
            yield batch
            if batch.index + 1 == self.info.batches_per_epoch:
                return

    def __len__(self):
        """Batches per epoch times epochs: what one full iteration yields."""
        return self.info.batches_per_epoch * self.info.epochs

    def seek(self, epoch, batch):
        """The next batch will be batch `batch` of epoch `epoch` (resume after a restart)."""
        handle = self._live_handle()
        self._give_back_current()
        _check(_lib.hfeed_loader_seek(handle, epoch, batch), "seek", handle)

    def stats(self):
        """The run's counters so far (hfeed_stats: batches, samples, bytes_out, ...)."""
        s = _Stats()
        _check(_lib.hfeed_loader_get_stats(self._live_handle(), ctypes.byref(s)), "stats")
        return types.SimpleNamespace(**{n: getattr(s, n) for n, _ in s._fields_})

    def field_stats(self, field):
        """(mean, std) lists of field `field` (its index in config order) when its config says
        "normalize": "standard"; None for a field without it."""
        mean = ctypes.POINTER(ctypes.c_double)()
        std = ctypes.POINTER(ctypes.c_double)()
        n = ctypes.c_size_t()
        _check(_lib.hfeed_loader_get_field_stats(self._live_handle(), field, ctypes.byref(mean),
                                                 ctypes.byref(std), ctypes.byref(n)),
               f"field_stats: no field {field} (fields: {self.info.fields})")
        return (mean[:n.value], std[:n.value]) if n.value else None

    def close(self):
        """Stops the workers and closes the files. Tensors still alive stay valid."""
        handle, self._handle = getattr(self, "_handle", None), None
        if handle is None:
            return
        self._give_back_current()
        _lib.hfeed_loader_close(handle)

    def _give_back_current(self):
        if self._current is not None:
            self._current.release()
            self._current = None

    def _live_handle(self):
        if self._handle is None:
            raise Error(1, "the loader was closed")
        return self._handle

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        if _lib is not None:
            self.close()
