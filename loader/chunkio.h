/* chunkio: the lock-free read path. Reads a dataset's stored bytes with pread(2) at offsets
 * learned once at open (contiguous: H5Dget_offset; chunked: chunkindex), never calling HDF5, so
 * worker threads read in parallel. pread has no shared file position, so the workers share one
 * descriptor per file.
 *
 * Every address is checked against the file's size at open, and reads are preads: a file
 * truncated while the loader runs makes the next read of the lost bytes a clean HFEED_E_READ
 * naming the file. The file is also mapped read-only, so that mincore() can tell whether a row
 * is in the page cache (hfeed__chunkio_cached), and so that rows read one at a time can be
 * converted straight from it where the page cache holds the file in 2 MiB pages, or the dataset
 * is small (hfeed__chunkio_huge_cached; config "read_rows"; reader_runs.c MAP_RUN_BYTES). Runs
 * of rows never are: the first touch of a mapping costs several times more on some machines
 * than on others (reader_worker.h PIECE_BYTES).
 *
 * A direct source is one field in one file whose storage the path understands: contiguous, or
 * chunked in any shape, filtered at most with deflate, shuffle and fletcher32. Unwritten storage
 * reads as the dataset's fill value. Everything else stays with h5io (H5Dread), decided once at
 * open and logged.
 *
 * Chunks: the reader's unit is the slab of chunk_rows whole rows starting at a multiple of
 * chunk_rows, "chunk" c below (rows [c * chunk_rows, ...)). When the stored chunks span whole
 * samples, a slab is one stored chunk. When they split the samples (chunk[d] < dims[d] for a
 * sample axis d, as h5py's chunks=True makes of images), or differ from them (chunk[d] > dims[d]
 * on an axis that may grow), a slab is tiles_per_slab stored chunks,
 * "tiles", entries c * tiles_per_slab .. + tiles_per_slab - 1 of the index table (row-major over
 * the sample axes' tile grid): the reader decodes each tile and places it into the slab
 * (hfeed__chunkio_place_tile), once per slab, into the chunk cache. Such a source is read as a
 * decoded one (hfeed__chunkio_decoded) even without filters. */
#ifndef HFEED_CHUNKIO_H
#define HFEED_CHUNKIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chunkindex.h"
#include "codec.h"
#include "error.h"

struct hfeed__direct {
    const char *path;    /* for messages; borrowed */
    const char *dataset; /* for messages; borrowed */
    int fd;              /* borrowed: one per file, owned by the catalog */
    const unsigned char *map; /* borrowed: the whole file mapped read-only, or NULL */
    uint64_t map_bytes;       /* the file's size when it was mapped */
    bool rows_from_map;       /* rows read one at a time are converted from the mapping (the
                               * catalog decides: config "read_rows", hfeed__chunkio_huge_cached) */
    size_t elem_size;
    size_t row_bytes; /* stored bytes of one sample */
    uint64_t nrows;
    bool chunked;
    uint64_t contiguous_addr;        /* !chunked: data offset, or HFEED__CHUNK_UNALLOCATED */
    uint64_t chunk_rows;             /* chunked: rows per chunk (slab) */
    size_t chunk_bytes;              /* chunked: decoded bytes of one slab, chunk_rows rows */
    struct hfeed__chunk_ref *chunks; /* chunked: nchunks * tiles_per_slab entries; owned */
    uint64_t nchunks;                /* slabs: ceil(nrows / chunk_rows) */
    uint64_t tiles_per_slab;         /* stored chunks per slab: 1 unless they split samples */
    bool tiled;                      /* stored chunks are placed into slabs: their extent on
                                      * a sample axis differs from the sample's (chunkio.h) */
    size_t tile_bytes;               /* decoded bytes of one stored chunk */
    int sample_rank;                 /* sample axes (rank - 1), for placing tiles */
    uint64_t sample_dims[8];         /* the sample's shape */
    uint64_t tile_dims[8];           /* a stored chunk's extent on axes 0 (rows), 1, ... */
    size_t max_stored_chunk;         /* largest stored chunk, for the raw read buffer */
    struct hfeed__pipeline pipeline; /* chunked: nfilters == 0 means unfiltered */
    unsigned char fill[8];           /* one element of the fill value, stored bytes */
};

/* Whether d's chunks need decoding (a filter pipeline, or tiles to place into slabs), i.e. are
 * read whole into the chunk cache rather than row by row. */
bool hfeed__chunkio_filtered(const struct hfeed__direct *d);

/* Copies the part of decoded tile j (0 <= j < tiles_per_slab) of a slab that lies inside the
 * dims into the slab's rows (chunk_rows rows of row_bytes, row-major), at the tile's place on
 * the sample axes. Rows past the dataset's end are copied too (the slab has room for them). */
void hfeed__chunkio_place_tile(const struct hfeed__direct *d, uint64_t j,
                               const unsigned char *tile, unsigned char *slab);

/* Reads stored rows [row, row + n) of an unfiltered source into dst (n * row_bytes), with one
 * pread per chunk touched; unallocated storage becomes the fill value.
 * Returns: HFEED_OK or HFEED_E_READ naming file, dataset and offset (short read: truncated). */
hfeed_status hfeed__chunkio_read_rows(const struct hfeed__direct *d, uint64_t row, uint64_t n,
                                      unsigned char *dst, struct hfeed__err *err);

/* Where stored rows [row, row + n) of an unfiltered source lie in the file's mapping, when they
 * are allocated, contiguous (one chunk, or contiguous layout) and the file is mapped; else NULL.
 * Only for rows read one at a time, where d->rows_from_map (reader_runs.c); check
 * hfeed__chunkio_shrunk() first, once a batch. */
const unsigned char *hfeed__chunkio_map_rows(const struct hfeed__direct *d, uint64_t row,
                                             uint64_t n);

/* Whether the page cache holds d's file in 2 MiB pages that its mapping maps whole: of up to 16
 * cached 2 MiB regions spread over the file, touching one byte maps its region, and touching
 * another 1 MiB further must then take no page fault (getrusage counts them) in at least 3 of
 * 4. Converting rows read one at a time straight from such a mapping costs no syscall, no copy
 * and a fault per 2 MiB; from a mapping of 4 KiB pages it costs a fault per 64 KiB and a TLB
 * miss per page (reader_runs.c MAP_RUN_BYTES has the figures). False when the mapping is not 2 MiB
 * aligned, the file is under 4 MiB or too little of it is cached to tell. Touches at most 32
 * cached pages; reads nothing from the disk. */
bool hfeed__chunkio_huge_cached(const struct hfeed__direct *d);

/* Whether d's file is shorter now than when it was mapped (truncated while the loader runs), or
 * cannot be checked: one fstat. Reading a lost page through the mapping would raise SIGBUS. */
bool hfeed__chunkio_shrunk(const struct hfeed__direct *d);

/* Whether the page where row `row`'s stored bytes begin (its chunk's, when filtered) is in the
 * page cache (mincore); true when that cannot be known (not mapped, unallocated). One syscall:
 * a probe, not a promise (pages may come and go). */
bool hfeed__chunkio_cached(const struct hfeed__direct *d, uint64_t row);

/* Asks the kernel to start reading the stored bytes of rows [row, row + n) into the page cache
 * now (posix_fadvise WILLNEED, one call per chunk touched: the rows' bytes, or the whole stored
 * chunk when filtered), without waiting: reads issued together go to the disk together instead
 * of one page fault or pread at a time. Advice only. */
void hfeed__chunkio_will_need(const struct hfeed__direct *d, uint64_t row, uint64_t n);

/* The same for the whole file d is in (posix_fadvise WILLNEED, window by window: Linux reads
 * at most its readahead size per call): the kernel reads it in large sequential requests, in
 * the background. Nothing when probes find at least half of the file cached. Advice only. */
void hfeed__chunkio_will_need_file(const struct hfeed__direct *d);

/* Reads the stored bytes of index entry c (a slab's only chunk, or one of its tiles) of a
 * decoded source into buf (max_stored_chunk bytes).
 * Sets *len; *len == 0 means the chunk is unallocated (the caller fills it).
 * Returns: HFEED_OK or HFEED_E_READ. */
hfeed_status hfeed__chunkio_read_chunk(const struct hfeed__direct *d, uint64_t c,
                                       unsigned char *buf, size_t *len, struct hfeed__err *err);

/* A worker's buffers for hfeed__chunkio_decode_slab: a codec, one stored chunk (raw,
 * max_stored_chunk bytes), the codec's scratch (tmp, a decoded chunk) and, where chunks split
 * samples, one decoded tile (tile). */
struct hfeed__slab_bufs {
    struct hfeed__codec *codec;
    unsigned char *raw, *tmp, *tile;
};

/* What hfeed__chunkio_decode_slab did, added to the caller's counts: stored chunks read, and
 * nanoseconds reading and decoding (placing tiles included). */
struct hfeed__slab_counts {
    uint64_t chunks, read_ns, decode_ns;
};

/* Decodes slab `slab` of a decoded source (hfeed__chunkio_filtered) into dst (chunk_bytes):
 * its one stored chunk read and its filters undone, or, when chunks split samples, each of its
 * tiles decoded and placed; unwritten chunks become the fill value. counts may be NULL (no
 * clock is read then).
 * Returns: HFEED_OK, HFEED_E_READ (short read, or a chunk the codec refuses: the message names
 * file, dataset, chunk and rows, and the tile when there are several). */
hfeed_status hfeed__chunkio_decode_slab(const struct hfeed__direct *d, uint64_t slab,
                                        const struct hfeed__slab_bufs *b, unsigned char *dst,
                                        struct hfeed__slab_counts *counts, struct hfeed__err *err);

/* Writes the fill value into n elements at dst. */
void hfeed__chunkio_fill(const struct hfeed__direct *d, unsigned char *dst, uint64_t n);

#endif
