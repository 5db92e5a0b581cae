/* costmodel: predicts what each shuffle mode costs a field: chunks decoded, and bytes read and
 * decoded per byte delivered, per epoch of one rank. Pure: no I/O, no threads, no allocation.
 *
 * The model follows how the loader reads (reader.c, chunkio.c, chunkcache.c, sampler.c); it is
 * restated in docs/inspect.md. Counts are expected values for the first epoch (empty cache).
 *
 *   - Unfiltered data (direct path, or H5Dread) is read row by row, with pread or
 *     with H5Dread of just the rows: bytes read = bytes delivered, nothing decoded. Page and
 *     HDF5-chunk granularity is ignored (a warm page cache is assumed).
 *   - Filtered (compressed) chunks are decoded whole. A "chunk row" is the chunks that hold a
 *     run of chunk[0] rows: one chunk on the direct path, several when chunks split the sample.
 *     Every decode reads the chunk row's stored bytes and produces its decoded bytes.
 *   - Decoded chunks are shared through a cache. Direct path: one cache per filtered field, in
 *     entries of its largest decoded chunk row; cache_mb is split so that every field gets the
 *     same share f = min(1, cache_mb / bytes of every field's chunks) of its chunk rows
 *     (E = floor(f x chunk rows), chunkcache.h). H5Dread: HDF5's own cache, 1 MiB per
 *     dataset, which keeps no chunk larger than that.
 *   - Within a batch the reader sorts the samples, so a batch needs each chunk it touches once
 *     (with no cache entry at all, once per run of consecutive rows instead).
 *   - none: batches are consecutive rows; each chunk is decoded once (twice per batch boundary
 *     inside it without a cache entry).
 *   - global: a batch of b samples touches t = n_c (1 - (1 - 1/n_c)^b) of a field's n_c chunks.
 *     decodes = U + (A - U)(1 - h), A = batches x t, U = distinct chunks touched in the epoch,
 *     h the share of repeated uses the cache serves: the loader's cache with foresight
 *     (chunkcache.h) keeps the chunks needed soonest (foresight_hit), LRU caches (H5Dread's,
 *     or the loader's when the ring is too deep for foresight) what the last scans left
 *     (lru_hit).
 *   - chunk: blocks (chunk rows of the widest field) are permuted and samples shuffled within
 *     windows of shuffle_window blocks; a batch touches t of the g_w chunks of its window. When
 *     a window's chunks of the field fit its cache (E >= need), each chunk is decoded once per
 *     epoch; else the formula above within the window. */
#ifndef HFEED_COSTMODEL_H
#define HFEED_COSTMODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "h5feed.h"

/* HDF5's default raw-data chunk cache per open dataset (H5Pset_chunk_cache's rdcc_nbytes):
 * what H5Dread keeps decoded between calls. h5io opens datasets with the default. */
#define HFEED__H5_CHUNK_CACHE_BYTES ((uint64_t)1 << 20)

/* One field in one file, as the model needs it. */
struct hfeed__cost_source {
    uint64_t rows;         /* samples of the field in the file */
    uint64_t row_bytes;    /* stored bytes of one sample */
    bool filtered;         /* chunked with filters: chunks are decoded whole */
    bool direct;           /* read by the direct path (uses the loader's chunk cache) */
    uint64_t group_rows;   /* filtered: rows per chunk (chunk[0]) */
    uint64_t group_chunks; /* filtered: HDF5 chunks per chunk row (> 1: chunks split samples) */
    uint64_t chunk_bytes;  /* filtered: decoded bytes of one HDF5 chunk */
    double group_stored;   /* filtered: average stored bytes of one chunk row */
    uint64_t block_rows;   /* rows per chunk-shuffle block of this file */
};

struct hfeed__cost_params {
    uint64_t total;       /* samples in all files (N >= 1) */
    uint64_t samples;     /* samples this rank receives per epoch */
    uint64_t batch_size;  /* >= 1 */
    unsigned window;      /* shuffle_window, >= 1 */
    uint64_t cache_bytes; /* cache_mb in bytes */
    unsigned horizon;     /* batches ahead the loader's caches see (chunkcache.h); 0: LRU */
    size_t nfields, nfiles;
    const struct hfeed__cost_source *src; /* src[k * nfiles + fi], field-major */
};

/* The loader's decoded-chunk caches (one per filtered field) as the model sees them. */
struct hfeed__cost_cache {
    uint64_t entries;    /* decoded chunk rows they hold together (0: no direct source is
                          * filtered) */
    double chunks;       /* chunk rows of every filtered direct source */
    double window_need;  /* chunk rows one chunk-shuffle window needs, every such field */
    double bytes_all;    /* cache_mb bytes that would hold every one of those chunk rows */
    double bytes_window; /* cache_mb bytes that would hold one window's, of every field */
};

/* Fills out[k * HFEED_SHUFFLE_MODES + mode] for every field k and mode, and *cache. */
void hfeed__cost_model(const struct hfeed__cost_params *p, hfeed_shuffle_cost *out,
                       struct hfeed__cost_cache *cache);

/* Decoded bytes of one chunk row of s (group_chunks x chunk_bytes). */
uint64_t hfeed__cost_group_bytes(const struct hfeed__cost_source *s);

#endif
