/* fieldcache: the reader's decoded-chunk caches, one per field that decodes chunks
 * (chunkcache.h), and what the loader's foresight tells them.
 *
 * A chunk's key is dense per field: key_base[k * nfiles + fi] + its chunk number in source
 * (k, fi), so field k's keys are 0 .. filtered_chunks - 1, as chunkcache wants. cache_mb is
 * split among the fields as chunkcache.h says. Foresight: the loader names the samples of each
 * coming batch (expect, from the ring's plan callback), each field's cache learns which of its
 * chunks that batch needs, and evicts accordingly.
 *
 * Threads: key, cache and get_stats from any worker; expect from one thread at a time (the
 * ring's plan callback, under the ring mutex); forget only while no worker runs. */
#ifndef HFEED_FIELDCACHE_H
#define HFEED_FIELDCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "catalog.h"
#include "chunkcache.h"
#include "error.h"

struct hfeed__fieldcache;

/* The caches for catalog c within `budget` bytes, for a ring of `slots` slots (the horizon of
 * the foresight: chunkcache.h) and batches of up to batch_size samples.
 * Returns: HFEED_OK or HFEED_E_NOMEM. Ownership: the caller's; hfeed__fieldcache_destroy(). */
hfeed_status hfeed__fieldcache_create(const struct hfeed__catalog *c, size_t budget, unsigned slots,
                                      size_t batch_size, struct hfeed__fieldcache **out,
                                      struct hfeed__err *err);
void hfeed__fieldcache_destroy(struct hfeed__fieldcache *fc);

/* Field k's cache; NULL when the field decodes no chunk. */
struct hfeed__chunkcache *hfeed__fieldcache_cache(const struct hfeed__fieldcache *fc, size_t k);

/* The key of chunk `chunk` of source (k, fi) in field k's cache. */
uint64_t hfeed__fieldcache_key(const struct hfeed__fieldcache *fc, size_t k, size_t fi,
                               uint64_t chunk);

/* Whether any cache uses foresight, and in *ahead how many batches past the one being planned
 * expect may name (hfeed__chunkcache_horizon). */
bool hfeed__fieldcache_lookahead(const struct hfeed__fieldcache *fc, unsigned *ahead);

/* Batch seq will hold the samples indices[0..n): each field's cache learns its chunks. */
void hfeed__fieldcache_expect(struct hfeed__fieldcache *fc, uint64_t seq, const uint64_t *indices,
                              size_t n);

/* Every expectation dropped (the loader seeks). */
void hfeed__fieldcache_forget(struct hfeed__fieldcache *fc);

/* Adds the caches' hits to *hits (the workers count the chunks they decode themselves). */
void hfeed__fieldcache_get_stats(const struct hfeed__fieldcache *fc, uint64_t *hits);

/* Bytes allocated: entries, keys, expectation masks. */
size_t hfeed__fieldcache_memory(const struct hfeed__fieldcache *fc);

#endif
