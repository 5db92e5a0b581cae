/* chunkindex: reads the chunk index of a chunked dataset straight from the file's bytes, so
 * worker threads can pread chunks without HDF5 (and without its lock).
 *
 * Why not HDF5's API: in HDF5 1.10, H5Dget_chunk_info(i) walks the index from the start (a full
 * table costs O(n^2)) and H5Dget_chunk_info_by_coord costs milliseconds per call. The file
 * format's index is a tree we can walk once, in O(n) preads.
 *
 * What it reads: the object header (version 1, or version 2 "OHDR" with continuation blocks) to
 * find the data layout message; then for layout version 3 the version 1 B-tree of raw data
 * chunks ("TREE" nodes, node type 1), and for layout version 4 the single-chunk and implicit
 * indexes, and the fixed array index ("FAHD"/"FADB", unpaged and paged) where it can.
 * Anything else (extensible array, version 2 B-tree, external or virtual layouts) is reported
 * as unsupported with a reason, and the caller falls back to HDF5.
 *
 * Any chunk shape is indexed: chunks that span whole samples (chunk[d] >= dims[d] for d >= 1)
 * and chunks that split them (h5py's chunks=True on images). Pure apart from pread on the
 * caller's descriptor; no HDF5, no threads, no globals. */
#ifndef HFEED_CHUNKINDEX_H
#define HFEED_CHUNKINDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define HFEED__CHUNK_UNALLOCATED UINT64_MAX

/* Where one chunk lives in the file. */
struct hfeed__chunk_ref {
    uint64_t addr;        /* absolute file offset, or HFEED__CHUNK_UNALLOCATED (fill value) */
    uint64_t size;        /* stored bytes (after filters) */
    uint32_t filter_mask; /* bit i set: filter i of the pipeline was skipped for this chunk */
};

/* What the caller knows of the dataset (from HDF5, under its lock, once at open). */
struct hfeed__index_query {
    uint64_t header_addr; /* object header address (H5Oget_info's addr) */
    uint64_t base_addr;   /* the superblock's base address (usually 0; the userblock size) */
    unsigned sizeof_addr; /* size of offsets in the file (H5Pget_sizes), 2..8 */
    unsigned sizeof_size; /* size of lengths in the file, 2..8 */
    int rank;             /* dataset rank, >= 1 */
    uint64_t dims[8];     /* dataset dims */
    uint64_t chunk[8];    /* chunk dims */
    bool filtered;        /* the dataset has a filter pipeline */
    uint64_t file_size;   /* bytes in the file: every address read is checked against it */
};

/* The entries of the table hfeed__chunkindex_read() fills: the chunks over the dims, row-major,
 * each sample axis counting at least one: prod ceil(dims[d] / chunk[d]). UINT64_MAX when that
 * overflows (or a chunk dim is 0). When chunks span whole samples it is ceil(dims[0] /
 * chunk[0]): chunk i holds rows [i * chunk[0], ...). */
uint64_t hfeed__chunkindex_count(const struct hfeed__index_query *q);

/* Fills table[0 .. nchunks), nchunks = hfeed__chunkindex_count(q): entry i is the chunk whose
 * grid coordinates (t[0], ..., t[rank - 1]) give i row-major, so the chunks of rows [t[0] *
 * chunk[0], ...) are entries t[0] * n .. t[0] * n + n - 1, n = nchunks / ceil(dims[0] /
 * chunk[0]). Chunks the index does not list are HFEED__CHUNK_UNALLOCATED.
 * Returns: HFEED_OK; HFEED_E_TYPE when the index kind is not one we read (*why, if non-NULL,
 * gets a static reason for the caller's log line: fall back to HDF5); HFEED_E_READ when the
 * bytes are not what the format says (a message says where). */
hfeed_status hfeed__chunkindex_read(int fd, const struct hfeed__index_query *q,
                                    struct hfeed__chunk_ref *table, uint64_t nchunks,
                                    const char **why, struct hfeed__err *err);

#endif
