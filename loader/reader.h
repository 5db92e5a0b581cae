/* reader: the worker threads that fill batch slots.
 *
 * Each worker loops: claim the next batch from the ring, read every field of it and convert
 * into the slot, publish the slot with its status. Within a batch the sample indices are sorted
 * (keeping each one's row in the batch) and cut into runs of consecutive rows of one file, so a
 * sequential batch costs one read per field and file, and a shuffled one a read per sample.
 *
 * Three ways a run reaches the slot, chosen per source at open (catalog):
 *   - uncompressed, direct path: pread (chunkio) straight into the slot rows when no conversion
 *     is needed; else a cache-sized piece at a time into the worker's scratch, converted from
 *     there while it is still in L2 (reader_worker.h PIECE_BYTES). Rows read one at a time (global
 *     shuffle) are converted straight from the file's mapping instead where the catalog chose
 *     that for the file (chunkio.h, "rows_from_map");
 *   - compressed, direct path: each chunk the run touches is taken decoded from the shared
 *     chunkcache (pread + codec by whichever worker needed it first, outside every lock) and
 *     its rows are converted from there into the slot. A chunk another worker is decoding is
 *     deferred to the end of the batch instead of waited for, so neighbouring batches that need
 *     the same chunks (chunk shuffle) keep both workers busy. The loader tells the caches
 *     (fieldcache.h: one per field) which chunks the next batches will use
 *     (hfeed__reader_expect), so they evict the chunk needed last, not the least recently used;
 *   - HDF5's H5Dread (h5io, behind the HDF5 lock) for what the direct path does not read: into
 *     the slot when no conversion is needed and the rows are in order, else into scratch.
 *
 * Before reading a batch, a worker that finds some of its rows not in the page cache asks the
 * kernel for all of them at once, and for whole files that fit in memory (ask_ahead).
 *
 * Files: reader.c (threads, batches, read-ahead), reader_runs.c (one run of a batch into its
 * slot, each way above), reader_worker.h (what the two share: the worker, the picks).
 *
 * Threads: the workers share the ring (its mutex), the catalog (read-only), the chunk cache (its
 * mutex) and h5io (its lock). Counters are per worker: counted locally, published once per batch
 * into atomics that the consumer sums. */
#ifndef HFEED_READER_H
#define HFEED_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "catalog.h"
#include "error.h"
#include "prefetch.h"

struct hfeed__reader;

struct hfeed__reader_stats {
    uint64_t read_ns, decode_ns, convert_ns, nan, overflow, h5_reads;
    uint64_t cache_hits;    /* chunk rows found decoded in a cache */
    uint64_t chunk_decodes; /* stored chunks decoded (a chunk row is several when they split
                             * samples: chunkio.h) */
    uint64_t read_ahead; /* (batch, field) pairs read ahead (reader.c ask_ahead) */
    uint64_t mapped_rows; /* rows converted straight from the mapping (reader_runs.c) */
};

/* Allocates nworkers workers with their scratch buffers and codecs, and the decoded-chunk cache
 * of cache_budget bytes (when a source needs decoding); starts no thread.
 * Returns: HFEED_OK or HFEED_E_NOMEM. Ownership: the caller's; hfeed__reader_destroy(). The
 * catalog and ring must outlive the reader. */
hfeed_status hfeed__reader_create(const struct hfeed__catalog *c, struct hfeed__ring *ring,
                                  unsigned nworkers, size_t batch_size, size_t cache_budget,
                                  struct hfeed__reader **out, struct hfeed__err *err);

/* Starts the worker threads. Returns: HFEED_OK or HFEED_E_THREAD (then none is running). */
hfeed_status hfeed__reader_start(struct hfeed__reader *r, struct hfeed__err *err);

/* Stops the ring and joins every worker; a worker finishes at most its current read first.
 * A no-op when no thread runs. */
void hfeed__reader_stop(struct hfeed__reader *r);

/* Foresight for the chunk caches (chunkcache.h): whether any cache uses it, and in *ahead how
 * many batches past the one being planned expectations may run. */
bool hfeed__reader_lookahead(const struct hfeed__reader *r, unsigned *ahead);

/* Batch seq will hold the samples indices[0..n): tells each field's cache which of its chunks
 * that batch will use. Call in increasing seq order from one thread at a time (the ring's plan
 * callback), at most *ahead batches past the newest batch claimed. */
void hfeed__reader_expect(struct hfeed__reader *r, uint64_t seq, const uint64_t *indices, size_t n);

/* Forgets every expectation; call only while no worker runs (the loader seeks). */
void hfeed__reader_forget(struct hfeed__reader *r);

/* Sums the workers' counters. */
void hfeed__reader_get_stats(const struct hfeed__reader *r, struct hfeed__reader_stats *out);

/* Bytes allocated for scratch buffers. */
size_t hfeed__reader_memory(const struct hfeed__reader *r);

/* Stops (if running) and frees; NULL and half-built readers are fine. */
void hfeed__reader_destroy(struct hfeed__reader *r);

#endif
