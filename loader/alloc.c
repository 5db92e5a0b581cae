/* alloc: the library's allocator with a failure countdown for tests (see alloc.h). */
#define _DEFAULT_SOURCE 1 /* MADV_HUGEPAGE */
#include "alloc.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

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

/* Buffers of at least HUGE_MIN bytes (slots, chunk caches, decode scratch) are rounded up to
 * whole 2 MiB pages, start on a 2 MiB boundary and are advised MADV_HUGEPAGE. Where the first
 * write of a fresh 4 KiB page costs 15-35 us (../shared/limits/first_touch.c measured
 * 0.10-0.3 GB/s on this project's machines), a transparent huge page is faulted in at once
 * (3-12 GB/s there): prefaulting a ring of four 1 MiB slots took 18 ms of a 90 ms one-epoch run
 * in 4 KiB pages. Rounding wastes less than half of a buffer of HUGE_MIN or more. Advice only: a
 * kernel without transparent huge pages, or with them off, ignores it. */
#define HUGE_BYTES ((size_t)2 << 20)
#define HUGE_MIN ((size_t)1 << 20)

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14; older kernels refuse it (EINVAL) */
#endif

/* At most this much of a buffer is prefaulted; the rest, if any, is faulted in by its first
 * writes. Prefaulting runs on the opening thread, before the first batch: global shuffle's chunk
 * cache of 1 GiB took 0.1-0.38 s to populate here, a quarter of a 1.2 s run, where faulting it
 * in as the two workers fill it costs the same work in parallel, and only for the entries a run
 * uses. Slots, scratch and the caches of shuffle none and chunk (40 MiB for the bench file)
 * stay under it: prefaulted, they ran at least as fast (4 interleaved pairs, gzip chunk). */
#define PREFAULT_MAX ((size_t)64 << 20)

/* Makes every page of [p, p + size) present and writable now, up to PREFAULT_MAX: at open,
 * once, instead of a fault at the first write of each page in the workers' hot path, where a
 * fresh 4 KiB page costs up to 35 us on some machines (a 1 MiB slot: 9 ms). The kernel
 * populates the range in one call; where it cannot, one write per page does the same (the
 * contents are undefined anyway). */
static void prefault(void *p, size_t size)
{
    if (size > PREFAULT_MAX) size = PREFAULT_MAX;
    if (size == 0 || madvise(p, size, MADV_POPULATE_WRITE) == 0) return;
    const long page = sysconf(_SC_PAGESIZE);
    const size_t step = page > 0 ? (size_t)page : 4096;
    volatile unsigned char *b = p;
    for (size_t at = 0; at < size; at += step)
        b[at] = 0;
    b[size - 1] = 0;
}

void *hfeed__alloc_aligned(size_t size)
{
    if (should_fail()) return NULL;
    void *p = NULL;
    /* Page-aligned from 64 KiB on, so that the kernel can populate the pages in one call. */
    const size_t align = size >= HUGE_MIN ? HUGE_BYTES : size >= ((size_t)64 << 10) ? 4096 : 64;
    if (align == HUGE_BYTES) size = (size + HUGE_BYTES - 1) / HUGE_BYTES * HUGE_BYTES;
    if (posix_memalign(&p, align, size > 0 ? size : 1) != 0) return NULL;
    if (align == HUGE_BYTES) (void)madvise(p, size, MADV_HUGEPAGE);
    prefault(p, size);
    return p;
}

void hfeed__free(void *p)
{
    free(p);
}
