/* h5feed: feeds samples from chunked HDF5 files to training jobs, in batches.
 *
 * A loader is opened from one JSON config (see configs/README.md). Worker threads read the
 * configured HDF5 fields, convert them to the requested dtypes and fill a fixed ring of batch
 * slots in the sampler's order; the consumer takes batches with hfeed_loader_next() and gives
 * them back with hfeed_batch_release(). Every sample of the (sharded) epoch is delivered exactly
 * once per epoch.
 *
 * Conventions for every function here:
 *   - Fallible functions return an hfeed_status; results go through out-parameters, which are set
 *     to NULL (or zero) on failure. Ownership moves only on HFEED_OK.
 *   - close/destroy/release of NULL is a no-op.
 *   - A loader keeps the text of its last error (hfeed_loader_errmsg()); functions that create a
 *     loader take an error buffer instead, because no handle exists when they fail.
 *   - One consumer thread per loader: calls on one loader must not run concurrently, except
 *     hfeed_batch_release() and hfeed_batch_get_*(), which may run on any thread. Different
 *     loaders are independent.
 */
#ifndef HFEED_H5FEED_H
#define HFEED_H5FEED_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HFEED_VERSION_MAJOR 0
#define HFEED_VERSION_MINOR 2
#define HFEED_VERSION_PATCH 0
#define HFEED_VERSION_NUMBER \
    (HFEED_VERSION_MAJOR * 10000 + HFEED_VERSION_MINOR * 100 + HFEED_VERSION_PATCH)

#if defined(_WIN32)
#define HFEED_API __declspec(dllexport)
#elif defined(__GNUC__)
#define HFEED_API __attribute__((visibility("default")))
#else
#define HFEED_API
#endif

/* Recommended size of the error buffers passed to functions that create a handle. */
#define HFEED_ERRBUF_SIZE 1024

/* The most dimensions a sample may have (the batch axis comes on top of these). */
#define HFEED_MAX_SAMPLE_DIMS 7

/* Status codes. Explicit numbers, append-only: a number is never reused or renumbered. */
typedef enum {
    HFEED_OK = 0,
    HFEED_E_INVALID_ARG = 1,  /* a NULL handle or an argument out of range */
    HFEED_END = 2,            /* no more batches: every configured epoch was delivered */
    HFEED_E_NOMEM = 3,        /* an allocation failed */
    HFEED_E_CONFIG = 4,       /* the config is malformed or invalid (the message names the key) */
    HFEED_E_FILE = 5,         /* a file is missing, unreadable or not HDF5 */
    HFEED_E_DATASET = 6,      /* a dataset is missing or does not fit the config */
    HFEED_E_TYPE = 7,         /* a stored type is unsupported, or cannot convert to the output */
    HFEED_E_READ = 8,         /* reading or decoding data failed (truncated file, corrupt chunk) */
    HFEED_E_DEVICE = 9,       /* the requested device is unavailable */
    HFEED_E_BUSY = 10,        /* every batch slot is borrowed; release one first */
    HFEED_E_THREAD = 11,      /* a thread could not be started */
    HFEED_E_RANGE = 12,       /* a value does not fit the output dtype (integer narrowing) */
    HFEED_E_CANCELED = 13,    /* the caller's progress callback asked to stop */
} hfeed_status;

/* Element types of output tensors. Explicit numbers, append-only. */
typedef enum {
    HFEED_DTYPE_INVALID = 0,
    HFEED_DTYPE_FLOAT32 = 1,
    HFEED_DTYPE_FLOAT64 = 2,
    HFEED_DTYPE_INT32 = 3,
    HFEED_DTYPE_INT64 = 4,
    HFEED_DTYPE_INT8 = 5,
    HFEED_DTYPE_UINT8 = 6,
    HFEED_DTYPE_INT16 = 7,
    HFEED_DTYPE_UINT16 = 8,
    HFEED_DTYPE_UINT32 = 9,
    HFEED_DTYPE_UINT64 = 10,
    HFEED_DTYPE_FLOAT16 = 11, /* IEEE 754 binary16, only from "dtype": "native" */
} hfeed_dtype;

/* Where a tensor's memory lives. Explicit numbers, append-only. */
typedef enum {
    HFEED_DEVICE_CPU = 1,
    HFEED_DEVICE_CUDA = 2,
    HFEED_DEVICE_FAKE = 3, /* "device": "fake": host memory behind a simulated asynchronous
                            * upload (a thread completes copies after random delays), for
                            * testing the upload stage without a GPU; readable from the host */
} hfeed_device_kind;

/* Bits of hfeed_features(). */
#define HFEED_FEATURE_CUDA (1u << 0) /* the CUDA upload stage was built in */

typedef struct hfeed_loader hfeed_loader;
typedef struct hfeed_batch hfeed_batch;

/* Receives the library's log lines (fallbacks, warnings), each once, as one line of text.
 * level is HFEED_LOG_INFO or HFEED_LOG_WARN. Runs on the thread that called into the library or
 * on a worker thread, never while the library holds a lock; msg is valid only during the call. */
typedef void (*hfeed_log_fn)(void *user, int level, const char *msg);
#define HFEED_LOG_INFO 1
#define HFEED_LOG_WARN 2

/* One field of one batch, as a dense C-order tensor whose first axis is the batch axis.
 * Plain data; layout frozen for major version 0. */
typedef struct {
    const char *name;       /* the field's name from the config */
    void *data;             /* first element; host or device memory, see device */
    hfeed_dtype dtype;
    int ndim;               /* 1 + the sample's rank */
    int64_t shape[HFEED_MAX_SAMPLE_DIMS + 1]; /* shape[0] = samples in this batch */
    size_t nbytes;          /* shape product times the element size */
    hfeed_device_kind device;
    int device_index;
} hfeed_tensor;

/* Where a batch sits in the run. Plain data; layout frozen for major version 0. */
typedef struct {
    uint64_t epoch;         /* 0-based epoch */
    uint64_t index;         /* 0-based batch index within the epoch, on this rank */
    size_t samples;         /* rows in this batch (batch_size, or fewer for a last partial one) */
    size_t fields;          /* number of fields (tensors) */
} hfeed_batch_info;

/* Facts fixed when the loader opens. Plain data; layout frozen for major version 0. */
typedef struct {
    uint64_t total_samples;       /* samples in all files together, before sharding */
    uint64_t samples_per_epoch;   /* samples this rank receives per epoch (padding included) */
    uint64_t padded_per_epoch;    /* of those, repeats added so that ranks get equal shares */
    uint64_t dropped_per_epoch;   /* samples of the epoch this rank skips (remainders dropped) */
    uint64_t batches_per_epoch;   /* batches this rank receives per epoch */
    uint64_t epochs;              /* configured epochs */
    size_t batch_size;
    size_t fields;
    unsigned rank, world_size;
    unsigned workers;
    unsigned slots;               /* prefetch depth: batch slots allocated at open */
    size_t slot_bytes;            /* bytes of one batch slot (all fields) */
    size_t memory_bytes;          /* all buffers allocated at open: slots, worker scratch, order */
    hfeed_device_kind device;
    int device_index;
    int hdf5_threadsafe;          /* the HDF5 build is thread-safe (H5_HAVE_THREADSAFE of the
                                   * headers h5feed was built with: HDF5 1.10 has no run-time
                                   * query). h5feed serialises its own HDF5 calls either way;
                                   * other HDF5 users in the process (h5py) are not covered. */
} hfeed_loader_info;

/* Counters of a run so far. Plain data; fields are only ever appended (the header's minor
 * version says when), never reordered or removed. */
typedef struct {
    uint64_t batches;             /* batches handed to the consumer */
    uint64_t samples;             /* samples handed to the consumer */
    uint64_t bytes_out;           /* output bytes handed to the consumer */
    uint64_t nan_values;          /* source float values that were NaN */
    uint64_t overflow_values;     /* finite source floats that became +-inf in a narrower type */
    uint64_t read_ns;             /* worker time spent reading (summed over workers) */
    uint64_t decode_ns;           /* worker time spent decoding chunks (summed over workers) */
    uint64_t convert_ns;          /* worker time spent converting (summed over workers) */
    uint64_t wait_ns;             /* consumer time spent blocked in hfeed_loader_next() */
    uint64_t fallback_reads;      /* reads that went through H5Dread */
    uint64_t chunk_decodes;       /* compressed chunks decoded by the direct path */
    uint64_t cache_hits;          /* uses of a decoded chunk served by the chunk cache */
    /* Appended in 0.2 (the upload stage); 0 on the CPU. */
    uint64_t upload_bytes;        /* bytes copied host -> device */
    uint64_t upload_ns;           /* device time spent on those copies (its events), so
                                   * upload_bytes / upload_ns is the H2D rate achieved */
} hfeed_stats;

/* Opens a loader from a JSON config file. Relative paths in it are relative to its folder.
 * The config is validated completely, every file and dataset is opened and checked, and every
 * buffer is allocated before this returns; the worker threads start filling batches at once.
 * log may be NULL (no logging); log_user is passed to it.
 * Returns: HFEED_OK, or an error code with a message naming the file, dataset or key in errbuf.
 * Ownership: *out belongs to the caller; close it with hfeed_loader_close(). errbuf (may be
 * NULL) is written only on failure.
 * Threads: any thread; loaders are independent. */
HFEED_API hfeed_status hfeed_loader_open(const char *config_path, hfeed_log_fn log, void *log_user,
                                         hfeed_loader **out, char *errbuf, size_t errbuf_len);

/* Like hfeed_loader_open(), from a JSON text. Relative paths are relative to base_dir, or to
 * the current directory when base_dir is NULL.
 * Returns, Ownership, Threads: as hfeed_loader_open(). */
HFEED_API hfeed_status hfeed_loader_open_json(const char *json, const char *base_dir,
                                              hfeed_log_fn log, void *log_user,
                                              hfeed_loader **out, char *errbuf,
                                              size_t errbuf_len);

/* Stops the workers (mid-epoch is fine; it does not wait for pending reads to be used) and
 * closes the files. Batches still borrowed stay valid: the loader's memory is freed when the
 * last of them is released.
 * Returns: HFEED_OK (NULL is a no-op).
 * Ownership: l is invalid after the call, except through batches still borrowed.
 * Threads: the consumer thread; must not run concurrently with other calls on l. */
HFEED_API hfeed_status hfeed_loader_close(hfeed_loader *l);

/* Blocks until the next batch in sampler order is ready, whichever worker finished first.
 * On a CUDA device ("device": "cuda[:N]", or "auto" with a usable GPU) the batch's tensors are
 * in device memory and their upload has finished when this returns: they may be read on any
 * stream at once, with no event or stream to wait on. The pinned host slot the batch came
 * through was already given back to the workers.
 * Returns: HFEED_OK; HFEED_END after the last batch of the last epoch; HFEED_E_BUSY when every
 * slot is borrowed (it would otherwise wait forever); or the first error a worker met (sticky:
 * every later call returns it too, until a successful hfeed_loader_seek()).
 * Ownership: *out is borrowed from the loader until hfeed_batch_release().
 * Threads: one consumer thread per loader. */
HFEED_API hfeed_status hfeed_loader_next(hfeed_loader *l, hfeed_batch **out);

/* Positions the loader so that the next batch is batch `batch` of epoch `epoch`, exactly the
 * batch an uninterrupted run would deliver there (resume after a restart). Batches prepared
 * ahead are discarded, and a sticky error is forgotten (seeking past a damaged batch is a way
 * to go on).
 * Returns: HFEED_OK; HFEED_E_INVALID_ARG when (epoch, batch) is past the end; HFEED_E_BUSY
 * when batches are still borrowed; HFEED_E_THREAD when the workers cannot restart (sticky).
 * Threads: the consumer thread. */
HFEED_API hfeed_status hfeed_loader_seek(hfeed_loader *l, uint64_t epoch, uint64_t batch);

/* Fills *out with facts fixed at open.
 * Returns: HFEED_OK or HFEED_E_INVALID_ARG.
 * Threads: the consumer thread. */
HFEED_API hfeed_status hfeed_loader_get_info(const hfeed_loader *l, hfeed_loader_info *out);

/* Fills *out with the counters of the run so far.
 * Returns: HFEED_OK or HFEED_E_INVALID_ARG.
 * Threads: the consumer thread. */
HFEED_API hfeed_status hfeed_loader_get_stats(hfeed_loader *l, hfeed_stats *out);

/* The per-column statistics of field `field` (config order) when its config says
 * "normalize": "standard": n = the elements of one sample (feature columns, C order), mean[i] and
 * std[i] the population mean and standard deviation (ddof 0) of column i over every sample of
 * every file of the config (all ranks' shards), computed in float64 at open. std holds the
 * divisor actually used: 1 for a constant column. A field without standardisation gives OK with
 * NULL pointers and n = 0. The transform is y = (x - mean) / std * scale + offset.
 * Returns: HFEED_OK, or HFEED_E_INVALID_ARG (NULL argument, field out of range).
 * Ownership: *mean and *std are owned by l; valid until the loader's memory is freed (see
 * hfeed_loader_close()).
 * Threads: any thread; the values never change after open. */
HFEED_API hfeed_status hfeed_loader_get_field_stats(const hfeed_loader *l, size_t field,
                                                    const double **mean, const double **std,
                                                    size_t *n);

/* The text of the last error on l: names the file, dataset, chunk or config key at fault.
 * Returns: a NUL-terminated string, "" when there was none; never NULL.
 * Ownership: owned by l; valid until the next call on l.
 * Threads: the consumer thread. */
HFEED_API const char *hfeed_loader_errmsg(const hfeed_loader *l);

/* Gives a borrowed batch back so its slot can be refilled.
 * Ownership: b is invalid after the call. After hfeed_loader_close(), releasing the last
 * borrowed batch frees the loader.
 * Threads: any thread, once per batch. */
HFEED_API void hfeed_batch_release(hfeed_batch *b);

/* Fills *out with the batch's epoch, index and size.
 * Returns: HFEED_OK or HFEED_E_INVALID_ARG.
 * Threads: any thread holding the batch. */
HFEED_API hfeed_status hfeed_batch_get_info(const hfeed_batch *b, hfeed_batch_info *out);

/* Fills *out with the tensor of field `field` (config order).
 * Returns: HFEED_OK or HFEED_E_INVALID_ARG.
 * Ownership: out->data and out->name are borrowed; valid until the batch is released.
 * Threads: any thread holding the batch. */
HFEED_API hfeed_status hfeed_batch_get_tensor(const hfeed_batch *b, size_t field,
                                              hfeed_tensor *out);

/* Points *out at the global sample index of each row of the batch (files concatenated in
 * config order, counted from 0), so a user can tell which samples a batch holds.
 * Returns: HFEED_OK or HFEED_E_INVALID_ARG.
 * Ownership: *out is borrowed; valid until the batch is released.
 * Threads: any thread holding the batch. */
HFEED_API hfeed_status hfeed_batch_get_indices(const hfeed_batch *b, const uint64_t **out);

/* Exports field `field` of the batch as a DLPack tensor, without a copy: *out is a
 * DLManagedTensor * (dlpack.h, DLPack 0.6 or later; declared void * here so that this header
 * needs no other header), whose data points into the batch's slot: C order, no strides,
 * device kDLCPU (kDLCUDA with the device's index for CUDA batches; the upload has finished, so
 * the consumer's stream may use it at once), dtype float/int/uint of the field's width. Hand it
 * to a framework
 * (torch.utils.dlpack.from_dlpack, numpy.from_dlpack via a capsule, ...) or call its deleter.
 * Returns: HFEED_OK; HFEED_E_INVALID_ARG (NULL, field out of range); HFEED_E_NOMEM.
 * Ownership: the caller (or the framework it hands *out to) calls (*out)->deleter exactly once.
 * The batch's slot stays out of the ring until hfeed_batch_release() was called AND every
 * exported tensor's deleter has run, also after hfeed_loader_close(); so a tensor may outlive
 * the batch handle and the loader. Each live export holds one prefetch slot.
 * Threads: any thread holding the batch; deleters may run on any thread. */
HFEED_API hfeed_status hfeed_batch_export_dlpack(hfeed_batch *b, size_t field, void **out);

/* Parameters of a synthetic dataset for hfeed_synth_write(). Plain data; layout frozen for
 * major version 0. Values are a pure function of (seed, row, column): features are uniform in
 * [-1, 1) (see docs: hfeed_synth_value), labels are row % label_classes. */
typedef struct {
    uint64_t rows;                /* samples */
    int sample_ndim;              /* 0 to HFEED_MAX_SAMPLE_DIMS */
    uint64_t sample_shape[HFEED_MAX_SAMPLE_DIMS];
    hfeed_dtype dtype;            /* stored type of /features: float16/32/64 or any integer */
    int big_endian;               /* store /features big-endian */
    uint64_t chunk_rows;          /* rows per chunk; 0 = contiguous layout */
    int gzip_level;               /* 0 = none, 1..9 = deflate (chunked only) */
    int shuffle;                  /* HDF5 shuffle filter (chunked only) */
    int fletcher32;               /* HDF5 fletcher32 checksum (chunked only) */
    uint64_t seed;
    uint64_t label_classes;       /* 0 = write no /labels dataset */
} hfeed_synth_spec;

/* The value of synthetic feature element `element` (C order within the row) of row `row`:
 * uniform in [-1, 1), 2^-53 steps, derived from splitmix64(seed ^ (row * per_row + element)).
 * Integer stored types store floor((value + 1) * 50), in [0, 100).
 * Returns: the value. Threads: any. */
HFEED_API double hfeed_synth_value(uint64_t seed, uint64_t row, uint64_t per_row,
                                   uint64_t element);

/* Writes a synthetic dataset /features (and /labels, int64) to a new file at path.
 * Returns: HFEED_OK, or an error code with a message in errbuf.
 * Threads: any; HDF5 calls are serialised with every loader's. */
HFEED_API hfeed_status hfeed_synth_write(const char *path, const hfeed_synth_spec *spec,
                                         char *errbuf, size_t errbuf_len);

/* Receives the progress of hfeed_convert(): done of total samples written so far. Called on
 * the caller's thread after each batch is written (and once with done = 0 before the first).
 * Returns: 0 to go on; anything else cancels the conversion (HFEED_E_CANCELED). */
typedef int (*hfeed_progress_fn)(void *user, uint64_t done, uint64_t total);

/* What hfeed_convert() did. Plain data; layout frozen for major version 0. */
typedef struct {
    uint64_t samples;       /* samples written (rows of every dataset) */
    uint64_t bytes;         /* output data bytes written, all datasets (before compression) */
    size_t fields;          /* datasets written */
    double seconds;         /* wall time of the whole conversion, open and first pass included */
} hfeed_convert_result;

/* Runs the config's pipeline once and writes what it delivers to a new HDF5 file: the config's
 * "output" section (configs/README.md) names the file and its chunking and filters. One
 * dataset per field, at the root, named after the field, with the field's output dtype (native
 * byte order), shape (samples, sample shape...), rows in the pipeline's order (shuffle "none":
 * the input order); transforms applied, and standardised fields carry float64 attributes
 * "mean" and "std" (hfeed_loader_get_field_stats()). Exactly one epoch (epoch 0) of this
 * process's shard is written, whatever "epochs" says.
 * The file is written under a temporary name next to the output path
 * ("<path>.tmp.<pid>"), flushed, fsynced and renamed to the output path only when complete
 * (replacing an existing file there); on any failure or cancellation the temporary file is
 * removed and the output path is untouched. A process killed mid-run leaves at most the
 * temporary file, never a partial file under the output path.
 * progress (may be NULL) can cancel; log (may be NULL) hears the loader's log lines and one
 * INFO line naming the written file; user is passed to both.
 * Returns: HFEED_OK; HFEED_E_CONFIG (also when the config has no "output"); HFEED_E_CANCELED;
 * HFEED_E_FILE when the output cannot be written; any error of hfeed_loader_open() or
 * hfeed_loader_next(); the message (errbuf, may be NULL) names the file, dataset or key.
 * Ownership: *out (may be NULL) is filled on HFEED_OK.
 * Threads: any thread; it runs a loader (with its worker threads) for the duration. */
HFEED_API hfeed_status hfeed_convert(const char *config_path, hfeed_progress_fn progress,
                                     hfeed_log_fn log, void *user, hfeed_convert_result *out,
                                     char *errbuf, size_t errbuf_len);

/* Returns: a static description of any status code; never NULL, also for unknown numbers. */
HFEED_API const char *hfeed_strerror(int status);

/* Returns: the dtype's name ("float32", ...), "invalid" for unknown values; never NULL. */
HFEED_API const char *hfeed_dtype_name(hfeed_dtype dtype);

/* Returns: the size in bytes of one element of dtype, 0 for unknown values. */
HFEED_API size_t hfeed_dtype_size(hfeed_dtype dtype);

/* Returns: HFEED_VERSION_NUMBER of the library in use. */
HFEED_API unsigned hfeed_version(void);

/* Returns: "MAJOR.MINOR.PATCH" of the library in use; static. */
HFEED_API const char *hfeed_version_string(void);

/* Returns: a bitmask of HFEED_FEATURE_* built into the library in use. */
HFEED_API unsigned hfeed_features(void);

#ifdef __cplusplus
}
#endif

#endif /* HFEED_H5FEED_H */
