/* reader: the worker threads that fill batch slots.
 *
 * Each worker loops: claim the next batch from the ring, read every field of it and convert
 * into the slot, publish the slot with its status. Within a batch the sample indices are sorted
 * (keeping each one's row in the batch) and cut into runs of consecutive rows of one file, so a
 * sequential batch costs one read per field and file, and a shuffled one a read per sample.
 * A run of rows already in the output type and in batch order is read straight into the slot
 * (no second copy); every other run goes through the worker's scratch buffer and is converted
 * into its rows in one pass.
 *
 * Two read paths: the direct one (chunkio: pread at offsets known since open; codec: deflate,
 * shuffle, fletcher32 decoded by the worker itself; both without any lock), and HDF5's H5Dread
 * (h5io, behind the HDF5 lock) for sources the direct path does not understand. Decoded chunks
 * live in a shared chunkcache, so with chunk shuffle or sequential order each chunk is decoded
 * once; rows are converted straight from the decoded chunk into the slot.
 *
 * Threads: the workers share only the ring (its mutex), the catalog (read-only) and h5io (its
 * lock). Counters are per worker and atomic; the consumer sums them. */
#ifndef HFEED_READER_H
#define HFEED_READER_H

#include <stddef.h>
#include <stdint.h>

#include "catalog.h"
#include "error.h"
#include "prefetch.h"

struct hfeed__reader;

struct hfeed__reader_stats {
    uint64_t read_ns, decode_ns, convert_ns, nan, overflow, h5_reads;
    uint64_t cache_hits, chunk_decodes;
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

/* Sums the workers' counters. */
void hfeed__reader_get_stats(const struct hfeed__reader *r, struct hfeed__reader_stats *out);

/* Bytes allocated for scratch buffers. */
size_t hfeed__reader_memory(const struct hfeed__reader *r);

/* Stops (if running) and frees; NULL and half-built readers are fine. */
void hfeed__reader_destroy(struct hfeed__reader *r);

#endif
