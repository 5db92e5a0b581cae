/* chunkcache: decoded chunks shared by the workers, within a fixed byte budget.
 *
 * With chunk shuffle or sequential order several consecutive batches need the same chunk; the
 * cache lets the first worker that needs a chunk decode it once and the others use it. Entries
 * are allocated at create (budget / entry_bytes of them, entry_bytes = the largest decoded
 * chunk), so memory is fixed after open.
 *
 * An entry is DECODING (one worker decodes it outside the lock; others needing it wait on
 * `decoded`), READY with a reference count, or free. When no entry can be had (all referenced,
 * or a budget of 0) the caller decodes into its own buffer: slower, never wrong, never blocking
 * forever.
 *
 * Which idle entry is reused: the sampler knows the order of the whole epoch, so the loader
 * tells the cache ahead of time which batches will use which chunks (expect), and the cache
 * evicts the chunk whose next use is farthest away (Belady's rule, over that window of batches)
 * instead of the least recently used one. That matters for global shuffle with a cache smaller
 * than the chunks: every batch reads its chunks in ascending order, so LRU evicts exactly the
 * chunks the next batch reads first, and keeps nearly nothing (bench/cache_sim.py: 512 chunks
 * of 256 rows, batches of 256, a cache of 256 chunks: LRU misses 62,958 of 103,201 uses, this
 * rule 25,874). Without foresight (a cache that holds every key, or too deep a ring) it is LRU.
 * Batches are named by the ring's sequence numbers (prefetch.h). Foresight needs every seq
 * still pending at a call to lie within [now - lag, now - lag + 64), `now` being the caller's
 * seq: with a ring of S slots and expectations up to H batches past the newest claimed one,
 * lag = (S - 1) + H and 2 * lag < 64 (HFEED__CHUNKCACHE_MAX_LAG); the reader picks H so.
 *
 * Locking: one mutex; decoding runs outside it; no other lock is taken while holding it (expect
 * runs with the ring mutex held, which is taken first: prefetch.h). */
#ifndef HFEED_CHUNKCACHE_H
#define HFEED_CHUNKCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

struct hfeed__chunkcache;

/* Decodes a chunk into dst (entry_bytes of room). Runs without the cache lock. */
typedef hfeed_status (*hfeed__decode_fn)(void *ctx, unsigned char *dst, struct hfeed__err *err);

struct hfeed__chunkcache_stats {
    uint64_t hits, decodes, uncached;
};

#define HFEED__CHUNKCACHE_MAX_LAG 31u

/* How many batches past the newest claimed one the loader tells the caches of, for a ring of
 * `slots` slots: HFEED__CHUNKCACHE_HORIZON, less where the lag bound needs it; 0 when the ring
 * is too deep for foresight (the caches are then LRU). Simulated on global shuffle (512 chunks,
 * batches touching ~200 of them), 4 batches ahead gave nearly all that knowing the whole epoch
 * gives. Pure; the inspect cost model uses it too. */
#define HFEED__CHUNKCACHE_HORIZON 8u
unsigned hfeed__chunkcache_horizon(unsigned slots);

/* Keys are 0 .. nkeys - 1. lag: as above; foresight is on when the entries cannot hold every
 * key and lag <= HFEED__CHUNKCACHE_MAX_LAG (it costs 8 bytes per key).
 * Returns: HFEED_OK or HFEED_E_NOMEM. budget may be smaller than one entry (no caching). */
hfeed_status hfeed__chunkcache_create(size_t budget, size_t entry_bytes, uint64_t nkeys,
                                      unsigned lag, struct hfeed__chunkcache **out,
                                      struct hfeed__err *err);
void hfeed__chunkcache_destroy(struct hfeed__chunkcache *c);

/* Gets the decoded bytes of chunk `key` for batch `seq` (which thereby stops expecting it),
 * from the cache, or by calling decode (into a cache entry, or into `own` — the caller's buffer
 * of entry_bytes — when no entry is free).
 * *data points at the bytes; *token must be passed to hfeed__chunkcache_release() (it may be
 * NULL for an uncached chunk; release accepts that). When another worker is decoding the chunk,
 * waits for it if `wait`, else returns HFEED_E_BUSY at once (the caller does other work first).
 * Returns: HFEED_OK, HFEED_E_BUSY (only when !wait), or decode's error (nothing is cached). */
hfeed_status hfeed__chunkcache_acquire(struct hfeed__chunkcache *c, uint64_t key, uint64_t seq,
                                       bool wait, hfeed__decode_fn decode, void *ctx,
                                       unsigned char *own, const unsigned char **data, void **token,
                                       struct hfeed__err *err);
/* seq: the releasing batch's, as in acquire. */
void hfeed__chunkcache_release(struct hfeed__chunkcache *c, void *token, uint64_t seq);

/* Whether chunk `key` is in the cache (decoded or being decoded) right now; a hint, as it may
 * leave at once. */
bool hfeed__chunkcache_holds(struct hfeed__chunkcache *c, uint64_t key);

/* Whether the cache uses foresight (else expect and forget do nothing). */
bool hfeed__chunkcache_foresees(const struct hfeed__chunkcache *c);

/* Batch seq will use keys[0..n) (repeats are fine); acquire by seq ends each expectation.
 * Called in increasing seq order, at most lag - (S - 1) batches ahead (see the top). */
void hfeed__chunkcache_expect(struct hfeed__chunkcache *c, uint64_t seq, const uint64_t *keys,
                              size_t n);

/* Drops every expectation (the loader seeks: the batches expected will not come). */
void hfeed__chunkcache_forget(struct hfeed__chunkcache *c);

/* How the loader divides its cache budget (cache_mb) among the fields that decode chunks: one
 * cache per field, in entries of that field's largest decoded chunk, because one pool of
 * equal entries would give a field of 2 KiB label chunks entries of 2 MiB feature chunks and
 * fill half the budget with almost nothing. Field k has chunks[k] chunks of up to
 * entry_bytes[k] (chunks[k] = 0: it decodes none). Every field gets the same share
 * f = min(1, budget / sum(chunks[k] * entry_bytes[k])) of its chunks, rounded down:
 * entries[k] = floor(f * chunks[k]), and sum(entries[k] * entry_bytes[k]) <= budget. So a
 * budget that holds every chunk of every field caches them all, and a smaller one gives every
 * field the same hit rate under global shuffle. Pure; the inspect cost model uses it too. */
void hfeed__chunkcache_split(size_t budget, size_t n, const uint64_t *chunks,
                             const size_t *entry_bytes, uint64_t *entries);

/* One field's entries under that rule: floor(f * chunks), where total is
 * sum(chunks[k] * entry_bytes[k]) over every field (the split may take one entry back where
 * rounding overshot the budget; models may ignore that). */
uint64_t hfeed__chunkcache_entries(size_t budget, double total, uint64_t chunks);

/* What "cache_mb": "auto" (the default) means, in MiB: HFEED__CACHE_AUTO_BASE_MB, raised for
 * global shuffle to hold every decoded chunk (all_bytes, every field), or as many as fit within
 * limit_bytes. Global shuffle draws each batch from everywhere, so every chunk is used again
 * and again through the epoch, and with the foresight above each extra entry pays (on the
 * 1 GiB bench file, half the chunks cached gave 1.84x the samples/s of a quarter; see
 * docs/benchmarks.md). Other orders use a chunk in a few consecutive batches: the loader sizes
 * their cache with hfeed__chunkcache_order_bytes() instead, and so does h5feed inspect's
 * model. Pure. */
#define HFEED__CACHE_AUTO_BASE_MB 256u
uint64_t hfeed__chunkcache_auto_mb(bool global_shuffle, double all_bytes, double limit_bytes);

/* What one field that decodes chunks asks of "cache_mb": "auto" under shuffle none and chunk. */
struct hfeed__cache_need {
    size_t entry_bytes;     /* its largest decoded chunk (a cache entry) */
    uint64_t chunk_rows;    /* the fewest samples its chunks span along the sample axis, >= 1 */
    uint64_t chunks_across; /* entries one row needs (the loader and inspect: 1, an entry holds a
                             * whole chunk row even when its chunks split samples) */
    uint64_t nchunks;       /* all its chunks: the most worth caching */
};

/* "cache_mb": "auto" for shuffle none (window 0) and chunk (window = shuffle_window), in bytes:
 * what the order reuses, not 256 MiB. A run of r consecutive rows touches at most
 * span(r) = ceil((r - 1) / chunk_rows) + 1 chunk rows; field k needs
 *     workers * span(batch_rows)               the chunks the workers' batches use at once,
 *   + 2 * window * span(block_rows)            chunk shuffle: a batch draws from anywhere in its
 *                                              window of `window` blocks and may reach into the
 *                                              next window, so two windows stay decoded,
 * times chunks_across, at most nchunks, entries of entry_bytes. Chunk shuffle then decodes each
 * chunk about once per epoch, as with a larger cache (the demo: 256 of 256 chunks). The loader
 * splits the budget as hfeed__chunkcache_split() says (the same share of every field's chunks),
 * so a field whose need is a larger share of its chunks than the others' may get fewer
 * entries: its chunks are then decoded more than once, which is cheap where they are small
 * (labels). Pure. */
uint64_t hfeed__chunkcache_order_bytes(const struct hfeed__cache_need *fields, size_t n,
                                       unsigned workers, uint64_t batch_rows, unsigned window,
                                       uint64_t block_rows);

/* The most "auto" may take: an eighth of the memory this process may use (the machine's, or
 * less where its cgroup says so: hfeed__chunkcache_cgroup_limit), divided among the ranks the
 * launcher says share it (LOCAL_WORLD_SIZE, OMPI_COMM_WORLD_LOCAL_SIZE, SLURM_NTASKS_PER_NODE,
 * MPI_LOCALNRANKS; one rank when none is set). */
double hfeed__chunkcache_auto_limit(void);

/* The memory this process may use, in bytes: physical memory, or its cgroups' limit where lower;
 * 0 when unknown. */
double hfeed__chunkcache_usable_memory(void);

/* The lowest memory limit, in bytes, of the cgroups /proc/self/cgroup names, each and its
 * ancestors (v2: memory.max; v1, the memory controller: memory.limit_in_bytes), read under
 * `root` ("" for the real files; tests pass a fake tree); INFINITY when none is set. A
 * container's or a batch job's limit, which physical memory does not show. */
double hfeed__chunkcache_cgroup_limit(const char *root);

size_t hfeed__chunkcache_memory(const struct hfeed__chunkcache *c);
void hfeed__chunkcache_get_stats(struct hfeed__chunkcache *c, struct hfeed__chunkcache_stats *out);

#endif
