/* alloc: the library's allocator with a failure countdown for tests (see alloc.h). */
#define _DEFAULT_SOURCE 1 /* MADV_HUGEPAGE */
#include "alloc.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Allocations left before injected failures start; negative = never fail. Only unit tests arm
 * it (hfeed__alloc_fail_after); see alloc.h for why this global is allowed. */
static atomic_long fail_countdown = -1;

static int should_fail(void)
{
    long left = atomic_load_explicit(&fail_countdown, memory_order_relaxed);
    while (left >= 0) {
        if (left == 0) return 1;
        if (atomic_compare_exchange_weak_explicit(&fail_countdown, &left, left - 1,
                                                  memory_order_relaxed, memory_order_relaxed))
            return 0;
    }
    return 0;
}

void hfeed__alloc_fail_after(long n)
{
    atomic_store_explicit(&fail_countdown, n, memory_order_relaxed);
}

void *hfeed__alloc(size_t size)
{
    if (should_fail()) return NULL;
    return malloc(size > 0 ? size : 1);
}

void *hfeed__calloc(size_t count, size_t size)
{
    if (should_fail()) return NULL;
    return calloc(count > 0 ? count : 1, size > 0 ? size : 1);
}

char *hfeed__strdup(const char *s)
{
    const size_t n = strlen(s) + 1;
    char *d = hfeed__alloc(n);
    if (d != NULL) memcpy(d, s, n);
    return d;
}

/* Buffers of at least this size (slots, chunk caches, decode scratch) start on a 2 MiB boundary
 * and are advised MADV_HUGEPAGE. Where the first write of a fresh 4 KiB page costs 15-35 us
 * (../shared/limits/first_touch.c measured 0.10-0.3 GB/s on this project's machines), a
 * transparent huge page is faulted in at once (3-5 GB/s there). Advice only: a kernel without
 * transparent huge pages, or with them off, ignores it. */
#define HUGE_BYTES ((size_t)2 << 20)

void *hfeed__alloc_aligned(size_t size)
{
    if (should_fail()) return NULL;
    void *p = NULL;
    const size_t align = size >= HUGE_BYTES ? HUGE_BYTES : 64;
    if (posix_memalign(&p, align, size > 0 ? size : 1) != 0) return NULL;
    if (align == HUGE_BYTES) (void)madvise(p, size, MADV_HUGEPAGE);
    return p;
}

void hfeed__free(void *p)
{
    free(p);
}
