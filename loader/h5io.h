/* h5io: every HDF5 call of the library, each behind one process-wide lock.
 *
 * HDF5 built without thread safety (Debian's serial build) must never be entered by two threads,
 * and a thread-safe build serialises every call behind its own global lock anyway. So each
 * function here takes the lock for its HDF5 calls, turns HDF5's automatic error printing off,
 * and turns a failure into a message that names the file and dataset and carries HDF5's error
 * stack text. No other file includes hdf5.h.
 *
 * Reads return the stored bytes (the file's own type and byte order); conversion is convert's
 * job, so that the later direct chunk path (#3) and this one hand the same bytes to convert. */
#ifndef HFEED_H5IO_H
#define HFEED_H5IO_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "types.h"

#define HFEED__MAX_RANK (HFEED_MAX_SAMPLE_DIMS + 1)

struct hfeed__h5file;
struct hfeed__h5dset;

enum hfeed__layout {
    HFEED__LAYOUT_CONTIGUOUS = 1,
    HFEED__LAYOUT_CHUNKED = 2,
    HFEED__LAYOUT_COMPACT = 3,
    HFEED__LAYOUT_OTHER = 4, /* virtual, external: read through H5Dread like every other */
};

/* What the catalog needs to know of a dataset. */
struct hfeed__dset_info {
    struct hfeed__type type;
    int rank; /* >= 1 */
    uint64_t dims[HFEED__MAX_RANK];
    uint64_t maxdims[HFEED__MAX_RANK]; /* UINT64_MAX: unlimited */
    enum hfeed__layout layout;
    uint64_t chunk[HFEED__MAX_RANK]; /* chunked only */
};

/* What the direct path (#3) needs to read a dataset without HDF5: where its bytes are, how they
 * are encoded, and what unwritten data reads as. Filled once, at open. */
struct hfeed__dset_storage {
    uint64_t header_addr; /* object header address, for chunkindex */
    uint64_t base_addr;   /* superblock base address (the userblock size) */
    unsigned sizeof_addr, sizeof_size;
    uint64_t contiguous_addr; /* contiguous layout: absolute data offset; UINT64_MAX when
                               * no storage is allocated (every value is the fill value) */
    unsigned nfilters;
    int filters[8];        /* filter ids in write order */
    char unsupported[64];  /* "" or the first filter the direct path cannot decode,
                            * or another reason to read this dataset through HDF5 */
    unsigned char fill[8]; /* one element of the fill value, stored type and order */
    uint64_t file_size;
};

/* Opens an existing file read-only. Only a regular file is opened: a FIFO would block HDF5's
 * open forever, and a directory or device is no HDF5 file.
 * Returns: HFEED_OK, or HFEED_E_FILE naming the path (missing, unreadable, not a regular file,
 * not HDF5, truncated).
 * Ownership: *out is the caller's; close with hfeed__h5_file_close(). */
hfeed_status hfeed__h5_file_open(const char *path, struct hfeed__h5file **out,
                                 struct hfeed__err *err);

/* Creates (truncates) a file for writing. Returns and ownership as hfeed__h5_file_open(). */
hfeed_status hfeed__h5_file_create(const char *path, struct hfeed__h5file **out,
                                   struct hfeed__err *err);

/* Closes the file; NULL is a no-op. Datasets opened from it must be closed first. */
void hfeed__h5_file_close(struct hfeed__h5file *f);

/* The path the file was opened with; owned by f. */
const char *hfeed__h5_file_path(const struct hfeed__h5file *f);

/* Opens dataset `name` and describes it.
 * Returns: HFEED_OK; HFEED_E_DATASET (missing, scalar, rank above HFEED__MAX_RANK);
 * HFEED_E_TYPE (a type that is not a supported integer or IEEE float: string, compound, ...);
 * each message names the file and the dataset.
 * Ownership: *out is the caller's; close with hfeed__h5_dset_close() before its file. */
hfeed_status hfeed__h5_dset_open(struct hfeed__h5file *f, const char *name,
                                 struct hfeed__h5dset **out, struct hfeed__dset_info *info,
                                 struct hfeed__err *err);

/* Creates a dataset of `rank` dims with stored type `type`; chunk_rows 0 = contiguous, else
 * chunks of chunk_rows rows by the full sample, with the given filters.
 * Returns: HFEED_OK or HFEED_E_FILE. */
hfeed_status hfeed__h5_dset_create(struct hfeed__h5file *f, const char *name,
                                   struct hfeed__type type, int rank, const uint64_t *dims,
                                   uint64_t chunk_rows, int gzip_level, bool shuffle,
                                   bool fletcher32, struct hfeed__h5dset **out,
                                   struct hfeed__err *err);

void hfeed__h5_dset_close(struct hfeed__h5dset *d);

/* Reads rows [row, row + nrows) into dst as stored bytes (row-major, the file's byte order).
 * Returns: HFEED_OK or HFEED_E_READ naming file, dataset, rows and HDF5's error text.
 * Threads: any; serialised with every other HDF5 call. */
hfeed_status hfeed__h5_dset_read_rows(struct hfeed__h5dset *d, uint64_t row, uint64_t nrows,
                                      void *dst, struct hfeed__err *err);

/* Writes rows [row, row + nrows) from src, given in the dataset's stored type.
 * Returns: HFEED_OK or HFEED_E_FILE. */
hfeed_status hfeed__h5_dset_write_rows(struct hfeed__h5dset *d, uint64_t row, uint64_t nrows,
                                       const void *src, struct hfeed__err *err);

/* Attaches a 1-D float64 attribute `name` of n values (n >= 1) to the dataset.
 * Returns: HFEED_OK or HFEED_E_FILE naming the file, dataset and attribute. */
hfeed_status hfeed__h5_dset_write_attr_f64(struct hfeed__h5dset *d, const char *name,
                                           const double *v, size_t n, struct hfeed__err *err);

/* Flushes everything written to the file to the operating system (H5Fflush), so that a write
 * error shows here, before the caller trusts the file.
 * Returns: HFEED_OK or HFEED_E_FILE naming the file. */
hfeed_status hfeed__h5_file_flush(struct hfeed__h5file *f, struct hfeed__err *err);

/* Describes d's storage for the direct path; out->unsupported names why HDF5 must read it
 * instead (a filter the codec lacks, external storage, a non-default file driver, ...).
 * Returns: HFEED_OK or HFEED_E_DATASET. */
hfeed_status hfeed__h5_dset_storage(struct hfeed__h5dset *d, struct hfeed__dset_storage *out,
                                    struct hfeed__err *err);

/* ---- Metadata for inspection (h5feed inspect) ---- */

/* What a link found by hfeed__h5_file_list() leads to. */
enum hfeed__link_kind {
    HFEED__LINK_DATASET = 1,  /* a hard link to a dataset */
    HFEED__LINK_DATATYPE = 2, /* a hard link to a named datatype */
    HFEED__LINK_SOFT = 3,     /* a soft link; target holds the path it names */
    HFEED__LINK_EXTERNAL = 4, /* an external link; target holds "file:/path" */
    HFEED__LINK_OTHER = 5,    /* a user-defined link or an object of unknown type */
};

/* One non-group link of a file, by its full path. */
struct hfeed__h5_link {
    char *path;   /* "/group/name"; owned by the list */
    char *target; /* soft and external links: what they point at; else NULL */
    enum hfeed__link_kind kind;
};

/* Lists every link below "/" except those to groups (which are walked into), in name order,
 * depth first (H5Lvisit): datasets, named datatypes, soft and external links (not followed).
 * Returns: HFEED_OK, HFEED_E_FILE (HDF5 could not walk the file) or HFEED_E_NOMEM.
 * Ownership: *out (an array of *n) is the caller's; free with hfeed__h5_links_free(). */
hfeed_status hfeed__h5_file_list(struct hfeed__h5file *f, struct hfeed__h5_link **out, size_t *n,
                                 struct hfeed__err *err);

/* Frees what hfeed__h5_file_list() returned; NULL is fine. */
void hfeed__h5_links_free(struct hfeed__h5_link *links, size_t n);

/* A filter of a dataset's pipeline as HDF5 stores it. */
struct hfeed__h5_filter {
    int id;               /* HDF5 filter id (1 deflate, 2 shuffle, 3 fletcher32, 32000 lzf...) */
    unsigned flags;       /* H5Z_FLAG_* (optional filters may be skipped per chunk) */
    unsigned nparams;     /* client data values stored with it (the first 8 are kept) */
    unsigned params[8];
    char name[32];        /* the name stored in the file or registered; may be "" */
};

/* What inspection needs beyond dset_info and dset_storage: the pipeline with its parameters,
 * and how many bytes and chunks are allocated in the file. */
struct hfeed__dset_details {
    unsigned nfilters; /* at most 8 described */
    struct hfeed__h5_filter filters[8];
    uint64_t storage_bytes;    /* bytes allocated for the data (compressed size) */
    uint64_t allocated_chunks; /* chunked: chunks written so far; else 0 */
};

/* Describes d's pipeline and allocated storage.
 * Returns: HFEED_OK or HFEED_E_DATASET naming the file and dataset. */
hfeed_status hfeed__h5_dset_details(struct hfeed__h5dset *d, struct hfeed__dset_details *out,
                                    struct hfeed__err *err);

/* Returns: whether the HDF5 library in use was built thread-safe. */
bool hfeed__h5_threadsafe(void);

#endif
