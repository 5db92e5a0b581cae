/* alloc: every allocation of the library goes through here, so that tests can make the Nth one
 * fail and check that each failure path cleans up (libuv's test-loop-oom idea).
 *
 * The failure countdown is the library's one mutable global besides the HDF5 lock; it is atomic,
 * it is only armed by unit tests, and it is disarmed (negative) in normal use. */
#ifndef HFEED_ALLOC_H
#define HFEED_ALLOC_H

#include <stddef.h>

/* malloc/calloc/strdup that may fail on purpose under test. Return NULL on failure. */
void *hfeed__alloc(size_t size);
void *hfeed__calloc(size_t count, size_t size);
char *hfeed__strdup(const char *s);
/* size bytes aligned to 64 (a cache line), not zeroed but prefaulted: every page (of the first
 * 64 MiB: alloc.c PREFAULT_MAX) is present when this returns, so the hot path that later writes
 * it takes no first-touch fault; 1 MiB or more: rounded to 2 MiB pages, aligned to 2 MiB and
 * advised MADV_HUGEPAGE first (alloc.c says why). For the buffers a
 * loader allocates at open and reuses (slots, chunk caches, scratch), never per batch.
 * Released with hfeed__free(). */
void *hfeed__alloc_aligned(size_t size);
/* free(); NULL is a no-op. */
void hfeed__free(void *p);

/* Test hook: after n more successful allocations, every allocation fails; n < 0 disarms. */
void hfeed__alloc_fail_after(long n);

#endif
