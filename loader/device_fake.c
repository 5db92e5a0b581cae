/* device_fake: host memory posing as a device (device.h), for tests without a GPU.
 *
 * A "stream" is a thread and a bounded FIFO of operations. copy() and mark() queue an operation
 * and return at once (blocking only while the FIFO is full), like their CUDA counterparts; the
 * stream thread runs them in issue order, sleeping a random 0-200 us before each copy, and an end
 * mark completes its event. So an upload is really asynchronous and finishes at an unpredictable
 * time: a caller that reads a device buffer, or reuses a host buffer, before waiting for the
 * event sees stale or poisoned data, and ThreadSanitizer sees the race.
 *
 * Device buffers are filled with 0xA5 when allocated, so rows that were never uploaded show.
 *
 * Locking: one mutex guards the FIFO and the event table; `work` wakes the stream thread,
 * `progress` wakes issuers (FIFO space) and waiters (events). The memcpy runs without the lock:
 * the operation was removed from the FIFO, so it belongs to the stream thread alone. */
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "device.h"

enum { FIFO_CAPACITY = 64 };

struct op {
    bool is_copy;
    void *dst;
    const void *src;
    size_t n;
    unsigned event; /* marks */
    bool end;
};

struct event {
    uint64_t issued; /* end marks queued */
    uint64_t done;   /* end marks run */
    uint64_t start_ns, end_ns;
};

struct hfeed__device {
    pthread_mutex_t mu;
    pthread_cond_t work;
    pthread_cond_t progress;
    pthread_t thread;
    bool thread_started;
    bool closing;
    bool copying; /* the stream thread is running a copy it took off the FIFO */
    struct op fifo[FIFO_CAPACITY];
    unsigned head, count;
    struct event *events;
    unsigned nevents;
    uint64_t rng; /* used by the stream thread only */
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static void random_delay(struct hfeed__device *d)
{
    const struct timespec ts = {0, (long)(splitmix64(&d->rng) % 200000u)};
    nanosleep(&ts, NULL);
}

static void *stream_main(void *arg)
{
    struct hfeed__device *d = arg;
    pthread_mutex_lock(&d->mu);
    for (;;) {
        while (d->count == 0 && !d->closing)
            pthread_cond_wait(&d->work, &d->mu);
        if (d->count == 0) break; /* closing, and every queued operation ran */
        const struct op o = d->fifo[d->head];
        d->head = (d->head + 1) % FIFO_CAPACITY;
        d->count--;
        pthread_cond_broadcast(&d->progress);
        if (o.is_copy) {
            d->copying = true;
            pthread_mutex_unlock(&d->mu);
            random_delay(d);
            memcpy(o.dst, o.src, o.n);
            pthread_mutex_lock(&d->mu);
            d->copying = false;
            pthread_cond_broadcast(&d->progress);
            continue;
        }
        struct event *e = &d->events[o.event];
        if (o.end) {
            e->end_ns = now_ns();
            e->done++;
            pthread_cond_broadcast(&d->progress);
        } else {
            e->start_ns = now_ns();
        }
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

static void fake_close(struct hfeed__device *d)
{
    if (d == NULL) return;
    if (d->thread_started) {
        pthread_mutex_lock(&d->mu);
        d->closing = true;
        pthread_cond_broadcast(&d->work);
        pthread_mutex_unlock(&d->mu);
        pthread_join(d->thread, NULL);
    }
    pthread_cond_destroy(&d->progress);
    pthread_cond_destroy(&d->work);
    pthread_mutex_destroy(&d->mu);
    hfeed__free(d->events);
    hfeed__free(d);
}

static hfeed_status fake_open(int index, unsigned nevents, uint64_t seed,
                              struct hfeed__device **out, struct hfeed__err *err)
{
    (void)index;
    *out = NULL;
    struct hfeed__device *d = hfeed__calloc(1, sizeof *d);
    if (d == NULL) return HFEED__FAIL(err, HFEED_E_NOMEM, "fake device: out of memory");
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->work, NULL);
    pthread_cond_init(&d->progress, NULL);
    d->rng = seed ^ 0x5eedfa4e5eedfa4eu;
    d->events = hfeed__calloc(nevents, sizeof *d->events);
    if (d->events == NULL) {
        fake_close(d);
        return HFEED__FAIL(err, HFEED_E_NOMEM, "fake device: out of memory");
    }
    d->nevents = nevents;
    if (pthread_create(&d->thread, NULL, stream_main, d) != 0) {
        fake_close(d);
        return HFEED__FAIL(err, HFEED_E_THREAD, "fake device: cannot start its stream thread");
    }
    d->thread_started = true;
    *out = d;
    return HFEED_OK;
}

static void *fake_dev_alloc(struct hfeed__device *d, size_t size)
{
    (void)d;
    void *p = hfeed__alloc_aligned(size);
    if (p != NULL) memset(p, 0xA5, size);
    return p;
}

static void fake_dev_free(struct hfeed__device *d, void *p)
{
    (void)d;
    hfeed__free(p);
}

static hfeed_status fake_bind(struct hfeed__device *d, struct hfeed__err *err)
{
    (void)d;
    (void)err;
    return HFEED_OK;
}

static void push(struct hfeed__device *d, struct op o)
{
    pthread_mutex_lock(&d->mu);
    while (d->count == FIFO_CAPACITY)
        pthread_cond_wait(&d->progress, &d->mu);
    if (!o.is_copy && o.end) d->events[o.event].issued++;
    d->fifo[(d->head + d->count) % FIFO_CAPACITY] = o;
    d->count++;
    pthread_cond_signal(&d->work);
    pthread_mutex_unlock(&d->mu);
}

static hfeed_status fake_copy(struct hfeed__device *d, void *dst, const void *src, size_t n,
                              struct hfeed__err *err)
{
    (void)err;
    push(d, (struct op){.is_copy = true, .dst = dst, .src = src, .n = n});
    return HFEED_OK;
}

static hfeed_status fake_mark(struct hfeed__device *d, unsigned event, bool end,
                              struct hfeed__err *err)
{
    (void)err;
    push(d, (struct op){.is_copy = false, .event = event, .end = end});
    return HFEED_OK;
}

static hfeed_status fake_wait(struct hfeed__device *d, unsigned event, uint64_t *busy_ns,
                              struct hfeed__err *err)
{
    (void)err;
    pthread_mutex_lock(&d->mu);
    struct event *e = &d->events[event];
    while (e->done != e->issued)
        pthread_cond_wait(&d->progress, &d->mu);
    *busy_ns = e->end_ns - e->start_ns;
    pthread_mutex_unlock(&d->mu);
    return HFEED_OK;
}

static void fake_drain(struct hfeed__device *d)
{
    pthread_mutex_lock(&d->mu);
    while (d->count > 0 || d->copying)
        pthread_cond_wait(&d->progress, &d->mu);
    pthread_mutex_unlock(&d->mu);
}

static int fake_index(const struct hfeed__device *d)
{
    (void)d;
    return 0;
}

const struct hfeed__device_ops hfeed__device_fake = {
    .name = "fake",
    .kind = HFEED_DEVICE_FAKE,
    .built = true,
    .open = fake_open,
    .close = fake_close,
    .host_alloc = hfeed__device_plain_alloc,
    .host_free = hfeed__device_plain_free,
    .dev_alloc = fake_dev_alloc,
    .dev_free = fake_dev_free,
    .bind = fake_bind,
    .copy = fake_copy,
    .mark = fake_mark,
    .wait = fake_wait,
    .drain = fake_drain,
    .fence = hfeed__device_no_fence,
    .after_fence = hfeed__device_no_after_fence,
    .index = fake_index,
};
