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
    uint64_t chunk_decodes;       /* stored chunks decoded by the direct path (compressed, or
                                   * split samples: each of the chunks a sample spans) */
    uint64_t cache_hits;          /* uses of a decoded chunk served by the chunk cache */
    /* Appended in 0.2 (the upload stage); 0 on the CPU. */
    uint64_t upload_bytes;        /* bytes copied host -> device */
    uint64_t upload_ns;           /* device time spent on those copies (its events), so
                                   * upload_bytes / upload_ns is the H2D rate achieved */
    /* Appended in 0.2 (reading ahead of data that is not cached). */
    uint64_t read_ahead;          /* (batch, field) pairs whose rows or chunks the workers asked
                                   * of the disk all at once, because probes found them not in
                                   * the page cache; 0 when everything read was cached */
    /* Appended in 0.2 (the upload rate over the whole run). */
    uint64_t upload_span_ns;      /* device time from the first copy's start to the last copy's
                                   * end, idle gaps included: upload_bytes / upload_span_ns is
                                   * the H2D rate the run sustained (upload_ns only counts the
                                   * copies themselves) */
    /* Appended in 0.2 (cache_mb "auto" per shuffle mode). */
    uint64_t cache_bytes; /* the decoded-chunk caches' budget, settled at open (cache_mb,
                           * "auto" resolved), in bytes; 0 when no field decodes chunks */
    /* Appended in 0.2 (read_rows). */
    uint64_t mapped_rows; /* rows converted straight from a file's mapping instead of read with
                           * pread (rows read one at a time: "read_rows", configs/README.md) */
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
 * through was already given back to the workers. Release a CUDA batch when the device work that
 * reads it has finished, or with hfeed_batch_release_on_stream() right after queuing that work.
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

/* Gives a borrowed CUDA batch back once the work queued on `stream` so far has finished,
 * without blocking: an event is recorded on stream, and the next upload into the batch's device
 * buffer waits for it on the device. Use it when kernels that read the batch were queued on
 * stream and may not have run yet: after plain hfeed_batch_release() the buffer may be
 * overwritten by the next upload at once. stream is a cudaStream_t (NULL: the legacy default
 * stream of the batch's device); it must belong to the batch's device, which need not be the
 * calling thread's current device (the fence is recorded on the batch's device and the thread's
 * current device is left as it was). For CPU batches it is hfeed_batch_release().
 * Returns: HFEED_OK; HFEED_E_INVALID_ARG (NULL batch); HFEED_E_DEVICE when the event could not
 * be recorded (the stream was then synchronised instead; the batch is released either way).
 * Ownership, Threads: as hfeed_batch_release(). */
HFEED_API hfeed_status hfeed_batch_release_on_stream(hfeed_batch *b, void *stream);

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
 * the batch handle and the loader. Each live export holds one prefetch slot. Frameworks call
 * the deleter when the tensor is freed on the host, which for a CUDA tensor can come before
 * the kernels reading it have run: export with hfeed_batch_export_dlpack_on_stream() (the
 * deleter then fences the slot on the consumer's stream), or keep the batch borrowed while the
 * tensor lives and release it with hfeed_batch_release_on_stream(b, the framework's stream).
 * Threads: any thread holding the batch; deleters may run on any thread. */
HFEED_API hfeed_status hfeed_batch_export_dlpack(hfeed_batch *b, size_t field, void **out);

/* As hfeed_batch_export_dlpack(), for a consumer that will use the tensor on `stream` (a
 * cudaStream_t; NULL: the legacy default stream), the stream DLPack's __dlpack__(stream=...)
 * names: when the tensor's deleter runs, a release fence is recorded on that stream, so the
 * batch's slot is refilled only after the work queued on it so far has finished, also when the
 * tensor outlived the batch handle and was read by kernels queued after the batch was
 * released. Each export fences its own stream. CPU batches ignore it (fake batches take the
 * fake device's simulated streams, for tests). The stream must belong to the batch's device;
 * it need not be the calling thread's current device's.
 * Returns, Ownership, Threads: as hfeed_batch_export_dlpack(); a fence that cannot be recorded
 * when the deleter runs makes the deleter synchronise the stream instead. */
HFEED_API hfeed_status hfeed_batch_export_dlpack_on_stream(hfeed_batch *b, size_t field,
                                                           void *stream, void **out);

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
 * "mean" and "std" (hfeed_loader_get_field_stats()), fields with a "scale" or "offset" other
 * than 1 and 0 float64 attributes "scale" and "offset": each one value per feature column (a
 * single configured number repeated), so that x = (y - offset) / scale * std + mean undoes the
 * transform from the file alone (an absent pair stands for 0/1 and 1/0; with a sample shape
 * of more than one axis, reshape y to (samples, columns)). Exactly one epoch (epoch 0) of this
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

/* ---- Inspection: what is in a file, and what reading it will cost (h5feed inspect) ----
 *
 * hfeed_report_create() reads metadata only (no data) and returns a report in plain memory:
 * every dataset of the files, and with a config, a cost model per field and warnings. The model
 * (docs/inspect.md) predicts, per epoch, the chunks decoded and the bytes read and decoded per
 * byte delivered for each shuffle mode, from how the loader reads: uncompressed data on the
 * direct path is read row by row (amplification 1); compressed chunks are decoded whole and
 * shared through the decoded-chunk cache of cache_mb; H5Dread (the slow path) has HDF5's own
 * 1 MiB chunk cache per dataset. It is a model: counts are expected values, not promises. */

/* Storage layout of a dataset. Explicit numbers, append-only. */
typedef enum {
    HFEED_LAYOUT_NONE = 0,       /* not a numeric dataset: nothing described */
    HFEED_LAYOUT_CONTIGUOUS = 1,
    HFEED_LAYOUT_CHUNKED = 2,
    HFEED_LAYOUT_COMPACT = 3,
    HFEED_LAYOUT_OTHER = 4,      /* virtual or external storage */
} hfeed_layout;

/* Shuffle modes, as the config's "shuffle" names them. Explicit numbers, append-only. */
typedef enum {
    HFEED_SHUFFLE_NONE = 0,
    HFEED_SHUFFLE_GLOBAL = 1,
    HFEED_SHUFFLE_CHUNK = 2,
} hfeed_shuffle_mode;
#define HFEED_SHUFFLE_MODES 3

/* How the loader reads a field's data. Explicit numbers, append-only. */
typedef enum {
    HFEED_READ_DIRECT = 1,        /* direct path, no decoding: rows straight from the file */
    HFEED_READ_DIRECT_DECODE = 2, /* direct path, chunks decoded by h5feed, chunk cache */
    HFEED_READ_HDF5 = 3,          /* H5Dread behind the HDF5 lock (the slow path) */
} hfeed_read_path;

/* Kinds of warning in a report. Explicit numbers, append-only. */
typedef enum {
    HFEED_WARN_CHUNK_OVER_CACHE = 1,    /* a decoded chunk is larger than cache_mb */
    HFEED_WARN_CHUNK_SPLITS_SAMPLE = 2, /* chunks cut a sample on an axis after the first */
    HFEED_WARN_SLOW_FILTER = 3,         /* a filter only HDF5 (H5Dread) decodes */
    HFEED_WARN_LENGTH_MISMATCH = 4,     /* fields of one file have different sample counts */
    HFEED_WARN_HIGH_AMPLIFICATION = 5,  /* the configured shuffle decodes far more than it uses */
    HFEED_WARN_SLOW_PATH = 6,           /* a field is read through H5Dread for another reason */
} hfeed_warning_kind;

#define HFEED_MAX_FILTERS 8

/* One filter of a dataset's pipeline. Plain data; layout frozen for major version 0. */
typedef struct {
    int id;             /* HDF5 filter id: 1 deflate, 2 shuffle, 3 fletcher32, 32000 lzf, ... */
    const char *name;   /* "deflate", "shuffle", "fletcher32", "lzf", ...; the name stored in the
                         * file for ids h5feed does not know; "unknown" when there is none */
    int direct;         /* 1 when h5feed's direct path decodes this filter */
    unsigned nparams;   /* client values stored with the filter */
    unsigned params[8]; /* the first 8 of them; deflate: params[0] is the level */
} hfeed_filter_desc;

/* One dataset (or other non-group object) of an inspected file. Plain data; layout frozen for
 * major version 0. */
typedef struct {
    const char *file;       /* the file's path */
    const char *path;       /* the object's HDF5 path, e.g. "/features" */
    const char *skipped;    /* NULL for a numeric dataset; else why nothing more is described,
                             * e.g. "not a numeric dataset: unsupported string type",
                             * "soft link to /x", "named datatype" */
    hfeed_dtype dtype;      /* stored element type (INVALID when skipped) */
    int big_endian;         /* stored byte order */
    int rank;
    uint64_t shape[HFEED_MAX_SAMPLE_DIMS + 1];
    hfeed_layout layout;
    uint64_t chunk[HFEED_MAX_SAMPLE_DIMS + 1]; /* chunked: chunk dims; else zeros */
    uint64_t chunk_bytes;   /* chunked: decoded bytes of one chunk; else 0 */
    uint64_t storage_bytes; /* bytes the data takes in the file (after compression) */
    uint64_t data_bytes;    /* bytes of the data decoded: shape product x element size */
    unsigned nfilters;
    hfeed_filter_desc filters[HFEED_MAX_FILTERS]; /* in the order they were applied on write */
    int direct;             /* 1: h5feed's direct path reads it; 0: H5Dread does */
    const char *slow_reason; /* direct == 0: why; "" otherwise */
} hfeed_dataset_desc;

/* The predicted cost of one shuffle mode for one field, per epoch of one rank (the first epoch:
 * the chunk cache starts empty). Plain data; layout frozen for major version 0. */
typedef struct {
    double chunk_decodes;        /* chunks decoded (0 when nothing needs decoding) */
    double bytes_read;           /* bytes read from the files */
    double bytes_decoded;        /* bytes produced by decoding chunks */
    double read_amplification;   /* bytes_read / bytes delivered */
    double decode_amplification; /* bytes_decoded / bytes delivered */
} hfeed_shuffle_cost;

/* One field of the config, over all its files. Plain data; layout frozen for major version 0. */
typedef struct {
    const char *name;       /* the field's name in the config */
    const char *dataset;    /* its HDF5 dataset */
    hfeed_read_path path;   /* how the loader reads it (of its first file) */
    uint64_t samples;       /* samples this rank receives per epoch */
    uint64_t bytes_delivered; /* stored bytes of those samples (before dtype conversion) */
    uint64_t chunks;        /* chunk rows of the field in all files (0: not chunked) */
    uint64_t chunk_bytes;   /* largest decoded chunk row of the field */
    hfeed_shuffle_cost cost[HFEED_SHUFFLE_MODES]; /* indexed by hfeed_shuffle_mode */
} hfeed_field_cost;

/* One warning. Plain data; layout frozen for major version 0. */
typedef struct {
    hfeed_warning_kind kind;
    const char *file;    /* the file it concerns, or NULL */
    const char *dataset; /* the dataset it concerns, or NULL */
    const char *message; /* one sentence naming the file, dataset or field and the values */
} hfeed_warning;

/* Counts and settings of a report. Plain data; layout frozen for major version 0. */
typedef struct {
    size_t files;
    size_t datasets;           /* entries for hfeed_report_get_dataset() */
    size_t fields;             /* entries for hfeed_report_get_field(); 0 without a config */
    size_t warnings;           /* entries for hfeed_report_get_warning() */
    int has_config;
    /* The config's settings the model used (zeros without a config). */
    hfeed_shuffle_mode shuffle;
    uint64_t batch_size;
    unsigned shuffle_window;
    uint64_t cache_mb;         /* MiB; "auto" settled as the loader settles it */
    unsigned world_size;
    int direct;                /* "read_path": "auto" (1) or "hdf5" (0) */
    uint64_t cache_entries;    /* decoded chunks the loader's cache will hold */
} hfeed_report_info;

typedef struct hfeed_report hfeed_report;

/* Inspects the HDF5 files paths[0..npaths) and, when config_path is not NULL, the files of that
 * config (after paths) and its fields: describes every dataset of every file, predicts each
 * field's cost under each shuffle mode, and collects warnings. Reads metadata only. Objects it
 * cannot describe (strings, compounds, scalars, links) are listed with a `skipped` reason.
 * A file named more than once (in paths, by the config, or both; by any spelling or symlink:
 * the same device and inode) is described once, under its first name; the model still counts
 * each of the config's files as the loader reads them.
 * Returns: HFEED_OK; HFEED_E_INVALID_ARG (NULL out, or no file and no config); HFEED_E_CONFIG
 * (the config is invalid; the message names the key); HFEED_E_FILE (a file is missing,
 * unreadable or not HDF5; the message names it); HFEED_E_DATASET or HFEED_E_TYPE (a field's
 * dataset is missing or not numeric in a file); HFEED_E_NOMEM.
 * Ownership: *out is the caller's; free it with hfeed_report_destroy(). errbuf (may be NULL)
 * is written only on failure.
 * Threads: any thread; HDF5 calls are serialised with every loader's. */
HFEED_API hfeed_status hfeed_report_create(const char *const *paths, size_t npaths,
                                           const char *config_path, hfeed_report **out,
                                           char *errbuf, size_t errbuf_len);

/* Frees a report and every string it lent; NULL is a no-op.
 * Ownership: r and every pointer its getters returned are invalid after the call.
 * Threads: not concurrently with other calls on r. */
HFEED_API void hfeed_report_destroy(hfeed_report *r);

/* Fills *out with the report's counts and the config settings it used.
 * Returns: HFEED_OK or HFEED_E_INVALID_ARG (*out zeroed).
 * Ownership: plain values, nothing borrowed.
 * Threads: any; a report is read-only after creation. */
HFEED_API hfeed_status hfeed_report_get_info(const hfeed_report *r, hfeed_report_info *out);

/* Fills *out with dataset i (files in order, each file's objects in name order).
 * Returns: HFEED_OK or HFEED_E_INVALID_ARG (NULL, or i out of range; *out zeroed).
 * Ownership: the strings in *out are borrowed from r; valid until hfeed_report_destroy().
 * Threads: any; a report is read-only after creation. */
HFEED_API hfeed_status hfeed_report_get_dataset(const hfeed_report *r, size_t i,
                                                hfeed_dataset_desc *out);

/* Fills *out with field i (config order) and its predicted costs.
 * Returns, Ownership, Threads: as hfeed_report_get_dataset(). */
HFEED_API hfeed_status hfeed_report_get_field(const hfeed_report *r, size_t i,
                                              hfeed_field_cost *out);

/* Fills *out with warning i.
 * Returns, Ownership, Threads: as hfeed_report_get_dataset(). */
HFEED_API hfeed_status hfeed_report_get_warning(const hfeed_report *r, size_t i,
                                                hfeed_warning *out);

/* Returns: the shuffle mode's config name ("none", "global", "chunk"); "invalid" for unknown
 * values; never NULL; static. Threads: any. */
HFEED_API const char *hfeed_shuffle_name(hfeed_shuffle_mode mode);

/* ---- Roofline: what this machine allows each field, and how close a run comes (bench) ----
 *
 * hfeed_roofline_measure() measures, on a config's own files and with its worker count, what
 * the machine allows each field's read path, with nothing of the loader's scheduling in it:
 *   - uncompressed rows (contiguous, or chunked without filters): `workers` threads read rows
 *     and convert them to the field's dtype into reused buffers, in batches of batch_size.
 *     Shuffle "none" and "chunk" read sequential rows (each thread a contiguous share); "global"
 *     reads random rows (each batch sorted, one read per row). Each way is measured twice: pread
 *     into a reused buffer, and converting straight from a fresh read-only mapping of the file
 *     (mapped again for each repetition, so its first touches count). The limit is the better.
 *   - compressed chunks (deflate, shuffle, fletcher32; also chunks that split samples): each
 *     thread reads, decodes and converts a contiguous share of the chunks, one at a time, with
 *     reused buffers, using the loader's own decoder.
 *   - fields read with H5Dread: no limit is measured.
 * Transforms ("normalize", "scale", "offset") are not part of the limit. Each measurement runs
 * for a time budget or one pass over at most 256 MiB of stored bytes, whichever ends first, and
 * the median of 3 repetitions is kept. The files are read through the page cache, which the
 * measurement warms: the limit is that of cached data.
 *
 * hfeed_roofline_judge() then relates a run (its samples/s and hfeed_stats) to the limits: it is
 * pure arithmetic, documented there. */

/* How a field is read when its limit is measured. Explicit numbers, append-only. */
typedef enum {
    HFEED_ROOFLINE_HDF5 = 0,       /* read with H5Dread: no limit measured */
    HFEED_ROOFLINE_SEQ_PREAD = 1,  /* sequential rows, pread into a reused buffer */
    HFEED_ROOFLINE_SEQ_MAP = 2,    /* sequential rows, converted from a mapping */
    HFEED_ROOFLINE_RAND_PREAD = 3, /* random rows, one pread each */
    HFEED_ROOFLINE_RAND_MAP = 4,   /* random rows, converted from a mapping */
    HFEED_ROOFLINE_DECODE = 5,     /* chunks read, decoded and converted */
    HFEED_ROOFLINE_MIXED = 6,      /* the field's files are read in different ways (some
                                    * compressed, some not): no limit measured */
} hfeed_roofline_path;

/* The limit of one field. Plain data; layout frozen for major version 0. */
typedef struct {
    const char *name;         /* the field's name in the config */
    hfeed_roofline_path path; /* the way that sets the limit (the better of pread and mapping) */
    double limit;             /* samples/s this machine allows the field on its own; 0: none */
    double pread_limit;       /* rows: samples/s by pread; decode: the limit; else 0 */
    double map_limit;         /* rows: samples/s from a mapping; 0 otherwise, or when refused */
    uint64_t samples;         /* samples read and converted by the repetition kept (pread or
                               * decode way) */
} hfeed_roofline_field;

/* What a measurement used. Plain data; layout frozen for major version 0. */
typedef struct {
    size_t fields;
    unsigned workers;           /* threads (the config's "workers") */
    uint64_t batch_size;        /* rows per batch (the config's) */
    hfeed_shuffle_mode shuffle; /* which rows: sequential, or random for "global" */
    unsigned reps;              /* repetitions per way; the median is kept */
    double budget_seconds;      /* the time budget of one repetition */
    double seconds;             /* wall time of the whole measurement, opening included */
} hfeed_roofline_info;

typedef struct hfeed_roofline hfeed_roofline;

/* Measures each field's limit for the config at config_path, as described above, on the
 * calling thread plus `workers` threads per measurement, one field after another.
 * budget_seconds: per repetition; 0 means the default, 0.3 s; at most 60.
 * HFEED_READ_PATH=hdf5 in the environment makes every field "hdf5", as it does for a loader.
 * log (may be NULL) hears, at HFEED_LOG_INFO, one line per field with its limit.
 * Returns: HFEED_OK; HFEED_E_INVALID_ARG (NULL out, budget out of range); HFEED_E_CONFIG;
 * HFEED_E_FILE, HFEED_E_DATASET, HFEED_E_TYPE (as hfeed_loader_open() for the same config);
 * HFEED_E_READ (a read or decode failed; the message names file, dataset and chunk);
 * HFEED_E_RANGE (a value does not fit the field's integer dtype); HFEED_E_THREAD;
 * HFEED_E_NOMEM.
 * Ownership: *out is the caller's; free it with hfeed_roofline_destroy(). errbuf (may be NULL)
 * is written only on failure.
 * Threads: any thread; it starts and joins its own threads. Run nothing else heavy meanwhile:
 * the limit is what the machine gives this process. */
HFEED_API hfeed_status hfeed_roofline_measure(const char *config_path, double budget_seconds,
                                              hfeed_log_fn log, void *log_user,
                                              hfeed_roofline **out, char *errbuf,
                                              size_t errbuf_len);

/* Frees a measurement and its strings; NULL is a no-op.
 * Ownership: r and every pointer its getters returned are invalid after the call.
 * Threads: not concurrently with other calls on r. */
HFEED_API void hfeed_roofline_destroy(hfeed_roofline *r);

/* Fills *out with what the measurement used.
 * Returns: HFEED_OK or HFEED_E_INVALID_ARG (*out zeroed).
 * Threads: any; a measurement is read-only after it is made. */
HFEED_API hfeed_status hfeed_roofline_get_info(const hfeed_roofline *r, hfeed_roofline_info *out);

/* Fills *out with field i's limit (config order).
 * Returns: HFEED_OK or HFEED_E_INVALID_ARG (NULL, or i out of range; *out zeroed).
 * Ownership: out->name is borrowed from r; valid until hfeed_roofline_destroy().
 * Threads: any; a measurement is read-only after it is made. */
HFEED_API hfeed_status hfeed_roofline_get_field(const hfeed_roofline *r, size_t i,
                                                hfeed_roofline_field *out);

/* Returns: "hdf5", "seq pread", "seq mapping", "rand pread", "rand mapping", "decode pipeline"
 * or "mixed"; "invalid" for unknown values; never NULL; static. Threads: any. */
HFEED_API const char *hfeed_roofline_path_name(hfeed_roofline_path path);

/* What bounds a run, by hfeed_roofline_judge()'s rules. Explicit numbers, append-only. */
typedef enum {
    HFEED_BOUND_UNKNOWN = 0,  /* no limit measured, or no samples, or no time */
    HFEED_BOUND_MACHINE = 1,  /* the run reached HFEED_ROOFLINE_MACHINE_SHARE of the limit */
    HFEED_BOUND_READ = 2,     /* loader: busy workers, most of their time reading */
    HFEED_BOUND_DECODE = 3,   /* loader: busy workers, most of their time decoding */
    HFEED_BOUND_CONVERT = 4,  /* loader: busy workers, most of their time converting */
    HFEED_BOUND_CONSUMER = 5, /* idle workers and a consumer that seldom waited: the consumer
                               * (a training step, bench's digest) set the pace */
    HFEED_BOUND_HANDOFF = 6,  /* loader: idle workers while the consumer waited: time lost
                               * between the stages (scheduling, the batch ring, locks) */
} hfeed_bound;

/* The thresholds of hfeed_roofline_judge()'s rules. */
#define HFEED_ROOFLINE_MACHINE_SHARE 0.8 /* share of the limit that counts as the machine's */
#define HFEED_ROOFLINE_BUSY_SHARE 0.5    /* worker busy share below which workers count idle */
#define HFEED_ROOFLINE_WAIT_SHARE 0.2    /* consumer wait share below which it seldom waited */

/* A run judged against the limits. Plain data; layout frozen for major version 0. */
typedef struct {
    double limit;          /* combined samples/s: 1 / sum over fields of 1 / limit[k] */
    double achieved;       /* the run's samples/s (the input) */
    double share;          /* achieved / limit; 0 when limit is 0 */
    size_t bounding_field; /* the field that takes the largest part of the limit's time;
                            * (size_t)-1 when no field has a limit */
    int partial;           /* some field has no limit (limit[k] <= 0): limit leaves it out,
                            * so limit is too high and share a lower bound */
    double worker_busy;    /* (read + decode + convert) / (workers x seconds) */
    double consumer_wait;  /* wait / seconds */
    hfeed_bound bound;
} hfeed_roofline_verdict;

/* Relates a run to the fields' limits, as pure arithmetic. The workers read the fields of a
 * sample one after another, so the times per sample add: field k takes t_k = 1 / limit[k] s per
 * sample at its limit, the combined limit is L = 1 / sum(t_k), and the run's share of it is
 * achieved / L. Fields with limit[k] <= 0 (not measured) are left out (verdict.partial).
 * Per field (arrays of nfields, each may be NULL): time_share[k] = t_k / sum(t), its part of
 * the limit's time per sample; field_share[k] = achieved / limit[k], the run's share of that
 * field's own limit (their sum is the overall share; 0 for a field without a limit).
 * The bound, first rule that applies:
 *   1. UNKNOWN  when no field has a limit, or achieved <= 0, or seconds <= 0;
 *   2. MACHINE  when share >= HFEED_ROOFLINE_MACHINE_SHARE;
 *   3. with busy = (stats->read_ns + decode_ns + convert_ns) / (workers * seconds) and
 *      wait = stats->wait_ns / seconds: when busy < HFEED_ROOFLINE_BUSY_SHARE, CONSUMER if
 *      wait < HFEED_ROOFLINE_WAIT_SHARE, else HANDOFF;
 *   4. else the worker stage with the most time: READ, DECODE or CONVERT (ties: in that order).
 * achieved: the run's samples/s; seconds: its wall time; workers: the loader's worker count
 * (0 counts as 1); stats: the run's counters (NULL reads as zeros).
 * Returns: HFEED_OK, or HFEED_E_INVALID_ARG (NULL out, or NULL limit with nfields > 0).
 * Threads: any; touches only its arguments. */
HFEED_API hfeed_status hfeed_roofline_judge(const double *limit, size_t nfields, double achieved,
                                            double seconds, unsigned workers,
                                            const hfeed_stats *stats, double *time_share,
                                            double *field_share, hfeed_roofline_verdict *out);

/* Returns: "unknown", "machine", "loader: read", "loader: decode", "loader: convert",
 * "consumer" or "loader: hand-off"; "invalid" for unknown values; never NULL; static.
 * Threads: any. */
HFEED_API const char *hfeed_bound_name(hfeed_bound bound);

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
