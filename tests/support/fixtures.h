/* fixtures: tiny HDF5 files for the tests, written into a per-process temp dir.
 *
 * Criterion runs every test in its own process; a suite's .init calls fx_setup() (mkdtemp under
 * /tmp) and its .fini calls fx_teardown() (removes the dir and everything in it). No binary
 * fixture is committed: every file is written here, from a descriptor.
 *
 * Values: every element of a written dataset is a pure function of (global row, element index
 * within the sample, the descriptor), so a test computes what the loader must deliver on its
 * own, from the sample index the batch reports: fx_expect() takes the formula's value, casts it
 * to the stored type (for float16 with our own rounding), then to the output dtype with a plain
 * C cast. `row_offset` makes the rows of several files continue one global numbering, so a file
 * mix-up shows as a wrong value.
 *
 * Failures inside a fixture stop the test (cr_assert): a fixture that cannot write its file is a
 * broken test, not a library bug.
 *
 * Threads: none of this is thread-safe; call it from the test's main thread. */
#ifndef HFEED_TEST_FIXTURES_H
#define HFEED_TEST_FIXTURES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "h5feed.h"

/* Stored element types. */
typedef enum {
    FX_INT8,
    FX_UINT8,
    FX_INT16,
    FX_UINT16,
    FX_INT32,
    FX_UINT32,
    FX_INT64,
    FX_UINT64,
    FX_FLOAT16, /* IEEE binary16, built from H5T_IEEE_F32LE with H5Tset_fields */
    FX_FLOAT32,
    FX_FLOAT64,
} fx_kind;

#define FX_KIND_COUNT 11

typedef enum {
    FX_CONTIGUOUS = 0,
    FX_CHUNKED,
    FX_COMPACT,
} fx_layout;

/* One element forced to a chosen value (NaN, Inf, an out-of-range integer). `row` is global
 * (row_offset included). Float kinds use f (cast to the stored type), integer kinds use i
 * (C cast to the stored type). */
typedef struct {
    uint64_t row;
    uint64_t elem;
    double f;
    int64_t i;
} fx_special;

#define FX_MAX_SAMPLE_DIMS 3

/* Describes one dataset to write. Zero-initialise and set what you need. */
typedef struct {
    const char *path; /* e.g. "/x" or "/group/x" (groups are created) */
    fx_kind kind;
    bool big_endian;
    uint64_t rows;
    int ndim; /* sample dims, 0..3 (0: a 1-D dataset of scalars) */
    uint64_t shape[FX_MAX_SAMPLE_DIMS];
    fx_layout layout;
    uint64_t chunk[FX_MAX_SAMPLE_DIMS + 1]; /* FX_CHUNKED: chunk dims, row axis first; each
                                               is clamped to the dataset's extent unless the
                                               axis is unlimited */
    bool unlimited;      /* FX_CHUNKED: max extent of the row axis is H5S_UNLIMITED */
    bool unlimited_all;  /* FX_CHUNKED: every axis unlimited (v2 B-tree index) */
    int gzip;            /* 0 none, 1..9 deflate level (chunked only) */
    bool shuffle;        /* HDF5 shuffle filter (chunked only) */
    bool fletcher32;     /* HDF5 fletcher32 checksum (chunked only) */
    uint64_t row_offset; /* the value formula sees row_offset + row */
    unsigned salt;       /* makes fields differ */
    bool extremes;       /* integer kinds: plant the type's min and max */
    bool index_values;   /* value = global_row * sample_elems + elem (order tests) */
    const fx_special *specials;
    size_t nspecials;
} fx_dataset;

/* What fx_expect() found the loader must deliver for one element. */
typedef enum {
    FX_EXPECT_VALUE = 0, /* compare bytes with the value written to dst */
    FX_EXPECT_NAN,       /* the output must be a NaN (bit pattern not pinned) */
    FX_EXPECT_RANGE,     /* integer narrowing does not fit: the run must fail with E_RANGE */
    FX_EXPECT_REFUSED,   /* float -> integer: the loader must refuse it at open */
} fx_expect_kind;

/* --- temp dir ---------------------------------------------------------------------------- */

/* .init / .fini for every suite that writes files. */
void fx_setup(void);
void fx_teardown(void);

/* The temp dir (absolute), valid between fx_setup() and fx_teardown(). */
const char *fx_dir(void);

/* The absolute path of `name` inside the temp dir. Returns one of 16 rotating static buffers:
 * copy it if you need it past 15 further calls. */
const char *fx_path(const char *name);

/* printf into one of 16 rotating static buffers of 16 KiB (asserts it fits). */
const char *fx_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* --- writers ------------------------------------------------------------------------------ */

/* Creates (truncates) file `name` in the temp dir holding the n datasets. */
void fx_write_file(const char *name, const fx_dataset *ds, size_t n);

/* Same, with the newest file format (H5F_LIBVER_LATEST): other chunk index types (fixed array,
 * extensible array, v2 B-tree, single chunk). */
void fx_write_file_latest(const char *name, const fx_dataset *ds, size_t n);

/* Adds one dataset to an existing file. */
void fx_add_dataset(const char *name, const fx_dataset *d);

/* Adds a fixed-length string dataset (rows strings of 8 bytes). */
void fx_add_string_dataset(const char *name, const char *path, uint64_t rows);

/* Adds a compound dataset {int32 a; float64 b} of rows elements. */
void fx_add_compound_dataset(const char *name, const char *path, uint64_t rows);

/* Adds a scalar (rank 0) int32 dataset. */
void fx_add_scalar_dataset(const char *name, const char *path);

/* Writes a plain text file (configs, a "not HDF5" file). */
void fx_write_text(const char *name, const char *text);

/* Truncates the file to fraction (0..1) of its size. */
void fx_truncate(const char *name, double fraction);

/* Flips 32 bytes in the middle of chunk number `chunk_index` (H5Dget_chunk_info order) of
 * dataset `dset`, in place. Writes the chunk's first row (its offset along axis 0) and its rows
 * (the chunk's extent along axis 0) to *first_row / *nrows (either may be NULL). */
void fx_corrupt_chunk(const char *name, const char *dset, uint64_t chunk_index, uint64_t *first_row,
                      uint64_t *nrows);

/* --- expected values ---------------------------------------------------------------------- */

/* Elements of one sample (the product of shape[0..ndim)). */
size_t fx_sample_elems(const fx_dataset *d);

/* The output dtype "native" means for a kind (its own type). */
hfeed_dtype fx_kind_dtype(fx_kind k);

/* "float32", "int16", ... (the name of the stored kind). */
const char *fx_kind_name(fx_kind k);

bool fx_kind_is_float(fx_kind k);

/* What the loader must deliver for element `elem` of global row `row` of d, in dtype `out`
 * (HFEED_DTYPE_INVALID means "native"). For FX_EXPECT_VALUE the element is written to dst
 * (room for 8 bytes). */
fx_expect_kind fx_expect(const fx_dataset *d, uint64_t row, uint64_t elem, hfeed_dtype out,
                         void *dst);

/* IEEE binary16 <-> double, our own (round to nearest even), independent of the library. */
uint16_t fx_half_from_double(double v);
double fx_half_to_double(uint16_t h);

/* --- loader helpers ----------------------------------------------------------------------- */

/* hfeed_loader_open_json(json, fx_dir(), NULL, NULL, out, errbuf, HFEED_ERRBUF_SIZE).
 * errbuf must hold HFEED_ERRBUF_SIZE bytes; it is set to "" first. */
hfeed_status fx_open(const char *json, hfeed_loader **out, char *errbuf);

#endif
