/* clock: the library's one stopwatch, for the stage timings in hfeed_stats and the roofline. */
#ifndef HFEED_CLOCK_H
#define HFEED_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Nanoseconds on CLOCK_MONOTONIC: differences only. Threads: any. */
static inline uint64_t hfeed__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * UINT64_C(1000000000) + (uint64_t)ts.tv_nsec;
}

#endif
