/* config: a JSON config (cJSON) -> a validated plain struct. cJSON never leaves the config*.c
 * files (config.c, config_json.c; their shared config_json.h); nothing here names a cJSON type.
 *
 * Validation is complete before any I/O: every key is checked for type and range, unknown keys
 * are errors, and every message names the key path (`fields[1].dtype`) and what was expected.
 * Defaults are documented in configs/README.md and applied here, nowhere else. Nothing in this
 * module touches files (globs are expanded by the catalog), but shard "env" is resolved here,
 * from the environment, when the config is parsed. */
#ifndef HFEED_CONFIG_H
#define HFEED_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* The most fields a config may name: each costs a dataset per file and a buffer per slot, and
 * the open checks their names pairwise; real configs have a handful. */
#define HFEED__CONFIG_MAX_FIELDS 1024

enum hfeed__shuffle {
    HFEED__SHUFFLE_NONE = 0,
    HFEED__SHUFFLE_GLOBAL = 1,
    HFEED__SHUFFLE_CHUNK = 2,
};

enum hfeed__device_req {
    HFEED__DEVICE_AUTO = 0,
    HFEED__DEVICE_CPU = 1,
    HFEED__DEVICE_CUDA = 2,
    HFEED__DEVICE_FAKE = 3, /* device_fake.c: tests of the upload stage without a GPU */
};

struct hfeed__field_config {
    char *name;        /* unique among fields, non-empty */
    char *dataset;     /* HDF5 path, e.g. "/features" */
    bool native;       /* "dtype": "native": keep the stored type, native byte order */
    hfeed_dtype dtype; /* float32, float64, int32 or int64 when !native; INVALID when native */
    /* Transforms (need a float dtype): y = (x - mean) / std * scale + offset per feature column,
     * mean/std from the loader's first pass when standardize, else 0/1. */
    bool standardize; /* "normalize": "standard" (default "none") */
    double *scale;    /* NULL: 1; nscale = 1 applies to every column, else one per column */
    size_t nscale;
    double *offset; /* NULL: 0; noffset as nscale */
    size_t noffset;
};

/* The "output" section: what `h5feed convert` writes. Loader opens ignore it. */
struct hfeed__output_config {
    bool present;         /* the config has an "output" object */
    char *path;           /* required; made absolute against the base dir */
    uint64_t chunk_rows;  /* rows per chunk; 0 = contiguous; default: HFEED__OUTPUT_AUTO_CHUNK */
    int gzip_level;       /* 0 = "compression": "none" (default), 1..9 = "gzip" */
    bool shuffle;         /* HDF5 shuffle filter; default false */
};

/* chunk_rows when the key is absent: about 1 MiB of the field's output rows per chunk, decided
 * when the output is created. */
#define HFEED__OUTPUT_AUTO_CHUNK UINT64_MAX

/* "read_rows" */
enum { HFEED__ROWS_AUTO, HFEED__ROWS_PREAD, HFEED__ROWS_MAP };

struct hfeed__config {
    char **files; /* patterns as written, made absolute against the base dir */
    size_t nfiles;
    struct hfeed__field_config *fields;
    size_t nfields;
    uint64_t batch_size;           /* >= 1; default 256 */
    bool drop_last;                /* default false */
    enum hfeed__shuffle shuffle;   /* default none */
    uint64_t seed;                 /* default 0 */
    unsigned shuffle_window;       /* chunk shuffle: blocks per window, >= 1; default 4 */
    uint64_t epochs;               /* >= 1; default 1 */
    unsigned workers;              /* >= 1; default 2 */
    unsigned prefetch;             /* batch slots, >= 1; default 4 */
    enum hfeed__device_req device; /* default auto */
    int device_index;              /* "cuda:N" -> N; -1 otherwise: "cuda" and "fake" are the
                                    * opening thread's current device, resolved at open */
    bool pinned;                   /* page-locked staging slots for uploads; default true */
    unsigned rank;                 /* default 0 */
    unsigned world_size;           /* >= 1, rank < world_size; default 1 */
    bool shard_from_env; /* "shard": "env" (rank/world_size were read from the environment) */
    bool shard_pad;      /* "shard_remainder": "pad" (default) repeats samples; "drop" drops */
    bool direct;         /* "read_path": "auto" (default) reads without HDF5 where it can;
                          * "hdf5" reads everything through H5Dread */
    int read_rows;       /* "read_rows": how rows read one at a time are read on the direct
                          * path: HFEED__ROWS_AUTO (default: trials in the run pick, reader.c),
                          * HFEED__ROWS_PREAD or HFEED__ROWS_MAP */
    uint64_t cache_mb;   /* decoded-chunk cache budget in MiB, >= 0; default 256 */
    bool cache_auto;     /* "cache_mb": "auto" (the default): the loader may raise cache_mb at
                          * open (hfeed__chunkcache_auto_mb()) */
    struct hfeed__output_config output;
};

/* Parses and validates json. base_dir (NULL = current directory) makes relative file paths
 * absolute. getenv_fn (NULL = getenv) answers shard "env" lookups, so tests can supply theirs.
 * Returns: HFEED_OK, HFEED_E_CONFIG (message names the key path) or HFEED_E_NOMEM.
 * Ownership: *out is the caller's; free with hfeed__config_destroy(). */
hfeed_status hfeed__config_parse(const char *json, const char *base_dir,
                                 const char *(*getenv_fn)(const char *name),
                                 struct hfeed__config **out, struct hfeed__err *err);

/* Reads the file at path and parses it with its folder as base_dir.
 * Returns: as hfeed__config_parse(), or HFEED_E_FILE when the file cannot be read. */
hfeed_status hfeed__config_load(const char *path, struct hfeed__config **out,
                                struct hfeed__err *err);

/* Whether text holds nothing but JSON white space (after an optional UTF-8 byte order mark):
 * an empty config, which is reported as such rather than as malformed JSON. Pure. */
bool hfeed__config_is_blank(const char *text);

/* Frees a config; NULL and half-built configs are fine. */
void hfeed__config_destroy(struct hfeed__config *c);

#endif
