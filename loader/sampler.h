/* sampler: which samples go in which batch. Pure: no I/O, no threads, no clock.
 *
 * The order of an epoch is a function of (seed, epoch) alone; a rank's batches are a function of
 * that order and (rank, world_size, batch index). So any batch of any epoch can be computed
 * directly (seek/resume), and ranks agree without talking.
 *
 *   none   : the samples in file order.
 *   global : a uniform random permutation per epoch (Fisher-Yates driven by a counter-based
 *            generator seeded from (seed, epoch)).
 *   chunk  : the samples are cut into blocks (given by the caller: rows aligned to the chunking
 *            of the field with the most bytes per sample), the blocks are permuted, and samples
 *            are then permuted within each window of `window` consecutive blocks of that order.
 *            So each chunk is needed by about window*block/batch consecutive batches and read
 *            once per epoch.
 *
 * Sharding: the epoch order (N samples) is cut into world_size contiguous parts of n samples:
 * with pad, n = ceil(N / world) and positions past N wrap around to the start of the order
 * (repeats); with drop, n = floor(N / world) and the last N mod world samples of the order are
 * not delivered that epoch (a different set each shuffled epoch). Rank r takes part r. Batches cut
 * the part in order; with drop_last the partial last batch is dropped, otherwise it is short.
 * Every rank therefore gets the same number of batches.
 *
 * Memory: 8 bytes per sample for the permutation (none: nothing), allocated at create. */
#ifndef HFEED_SAMPLER_H
#define HFEED_SAMPLER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "error.h"

struct hfeed__sampler_params {
    uint64_t total; /* N >= 1 samples, files concatenated */
    enum hfeed__shuffle mode;
    uint64_t seed;
    const uint64_t *block_starts; /* chunk mode: nblocks ascending starts, [0] == 0; copied */
    size_t nblocks;               /* chunk mode: >= 1; block i ends where block i+1 starts */
    unsigned window;              /* chunk mode: blocks per window, >= 1 */
    unsigned rank, world_size;    /* rank < world_size */
    bool pad;                     /* shard remainder: pad (true) or drop (false) */
    uint64_t batch_size;          /* >= 1 */
    bool drop_last;
};

struct hfeed__sampler;

/* Returns: HFEED_OK, HFEED_E_INVALID_ARG (parameters out of range; message says which; also when
 * the rank would receive no batch at all), or HFEED_E_NOMEM.
 * Ownership: *out is the caller's; free with hfeed__sampler_destroy(). Epoch 0 is current. */
hfeed_status hfeed__sampler_create(const struct hfeed__sampler_params *p,
                                   struct hfeed__sampler **out, struct hfeed__err *err);
void hfeed__sampler_destroy(struct hfeed__sampler *s);

/* Samples this rank gets per epoch (padding included), the padded repeats among them, and the
 * samples of the epoch this rank's share of the remainder drops (both for drop and drop_last). */
uint64_t hfeed__sampler_samples_per_epoch(const struct hfeed__sampler *s);
uint64_t hfeed__sampler_padded_per_epoch(const struct hfeed__sampler *s);
/* Shard drop: 1 for ranks below N mod world_size (so the ranks' shares add up to the N mod
 * world_size samples not delivered), else 0; plus, with drop_last, the positions of the cut
 * partial last batch. */
uint64_t hfeed__sampler_dropped_per_epoch(const struct hfeed__sampler *s);
uint64_t hfeed__sampler_batches_per_epoch(const struct hfeed__sampler *s);
/* Bytes the sampler allocated. */
size_t hfeed__sampler_memory(const struct hfeed__sampler *s);

/* Makes `epoch` the current epoch (computes its order; a no-op if it already is). O(N). */
void hfeed__sampler_set_epoch(struct hfeed__sampler *s, uint64_t epoch);

/* Writes the global sample indices of batch `batch` of the current epoch, for this rank, into
 * out (room for batch_size). batch < batches_per_epoch.
 * Returns: the number of samples written (batch_size, or fewer for a short last batch). */
size_t hfeed__sampler_batch(const struct hfeed__sampler *s, uint64_t batch, uint64_t *out);

#endif
