/* chunkcache: decoded chunks shared by the workers, within a fixed byte budget.
 *
 * With chunk shuffle or sequential order several consecutive batches need the same chunk; the
 * cache lets the first worker that needs a chunk decode it once and the others use it. Entries
 * are allocated at create (budget / entry_bytes of them, entry_bytes = the largest decoded
 * chunk), so memory is fixed after open.
 *
 * An entry is DECODING (one worker decodes it outside the lock; others needing it wait on
 * `decoded`), READY with a reference count, or free. Unreferenced READY entries sit on an LRU
 * list and are reused oldest first. When no entry can be had (all referenced, or a budget of 0)
 * the caller decodes into its own buffer: slower, never wrong, never blocking forever.
 *
 * Locking: one mutex; decoding runs outside it; no other lock is taken while holding it. */
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

/* Returns: HFEED_OK or HFEED_E_NOMEM. budget may be smaller than one entry (no caching). */
hfeed_status hfeed__chunkcache_create(size_t budget, size_t entry_bytes,
                                      struct hfeed__chunkcache **out, struct hfeed__err *err);
void hfeed__chunkcache_destroy(struct hfeed__chunkcache *c);

/* Gets the decoded bytes of chunk `key`: from the cache, or by calling decode (into a cache
 * entry, or into `own` — the caller's buffer of entry_bytes — when no entry is free).
 * *data points at the bytes; *token must be passed to hfeed__chunkcache_release() (it may be
 * NULL for an uncached chunk; release accepts that). When another worker is decoding the chunk,
 * waits for it if `wait`, else returns HFEED_E_BUSY at once (the caller does other work first).
 * Returns: HFEED_OK, HFEED_E_BUSY (only when !wait), or decode's error (nothing is cached). */
hfeed_status hfeed__chunkcache_acquire(struct hfeed__chunkcache *c, uint64_t key, bool wait,
                                       hfeed__decode_fn decode, void *ctx, unsigned char *own,
                                       const unsigned char **data, void **token,
                                       struct hfeed__err *err);
void hfeed__chunkcache_release(struct hfeed__chunkcache *c, void *token);

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
 * global shuffle to hold every decoded chunk (all_bytes, every field) when that fits within
 * limit_bytes. Global shuffle draws each batch from everywhere, so a cache that holds part of
 * the chunks decodes most of them again for every sample (LRU keeps nearly nothing when a
 * batch touches more chunks than it holds): raising it only pays when all of them fit. Pure. */
#define HFEED__CACHE_AUTO_BASE_MB 256u
uint64_t hfeed__chunkcache_auto_mb(bool global_shuffle, double all_bytes, double limit_bytes);

/* The most "auto" may take: an eighth of the machine's physical memory, divided among the
 * ranks the launcher says share it (LOCAL_WORLD_SIZE, OMPI_COMM_WORLD_LOCAL_SIZE,
 * SLURM_NTASKS_PER_NODE, MPI_LOCALNRANKS; one rank when none is set). */
double hfeed__chunkcache_auto_limit(void);

size_t hfeed__chunkcache_memory(const struct hfeed__chunkcache *c);
void hfeed__chunkcache_get_stats(struct hfeed__chunkcache *c, struct hfeed__chunkcache_stats *out);

#endif
