/* alloc: the library's allocator with a failure countdown for tests (see alloc.h). */
#define _POSIX_C_SOURCE 200809L
#include "alloc.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

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

void *hfeed__alloc_aligned(size_t size)
{
    if (should_fail()) return NULL;
    void *p = NULL;
    if (posix_memalign(&p, 64, size > 0 ? size : 1) != 0) return NULL;
    return p;
}

void hfeed__free(void *p)
{
    free(p);
}
