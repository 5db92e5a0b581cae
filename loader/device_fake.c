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
 * The simulated runtime (device_fake.h): each thread has a current context, kept in the two
 * thread-local variables below. They are the only mutable statics of this file, and stand for
 * the per-thread state the CUDA runtime itself keeps; the enter/leave rule applied to them is
 * device_scope.c's, the CUDA backend's own. Consumer streams, their kernels and what was seen
 * live in a world the test owns (device_fake_world.c); a device without a world counts nothing
 * and its fences are no-ops (no consumer stream can exist).
 *
 * Release fences: fence() notes (stream, the time the work queued on it so far ends) for the
 * slot; after_fence() queues an operation that sleeps until each noted time and checks the
 * kernels that finished by then, so the next copy into the slot runs after them, as
 * cudaStreamWaitEvent orders it on a GPU.
 *
 * Locking: d->mu guards the FIFO, the event table and the fence table; `work` wakes the stream
 * thread, `progress` wakes issuers (FIFO space) and waiters (events). The memcpy runs without
 * the lock: the operation was removed from the FIFO, so it belongs to the stream thread alone.
 * The world's mutex guards streams, kernels and the record; d->mu is never held while taking it
 * and the other way round. */
#include "device_fake.h"

#include <pthread.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "device.h"
#include "device_scope.h"

enum { FIFO_CAPACITY = 64, HEADER = 64 };

/* The simulated runtime's per-thread state (see the file comment). */
static _Thread_local int thread_ctx = -1;       /* device whose context is current, -1 none */
static _Thread_local uint32_t thread_had = 0;   /* bit k: this thread has had context k */

struct fence {
    struct hfeed__fake_stream *s;
    uint64_t at_ns;
};

enum op_kind { OP_COPY, OP_MARK, OP_AWAIT };

struct op {
    enum op_kind kind;
    void *dst;
    const void *src;
    size_t n;
    unsigned event; /* marks */
    bool end;
    struct fence fences[HFEED__DEVICE_FENCES]; /* awaits */
    unsigned nfences;
};

struct event {
    uint64_t issued; /* end marks queued */
    uint64_t done;   /* end marks run */
    uint64_t start_ns, end_ns;
};

struct hfeed__device {
    int index;
    pthread_mutex_t mu;
    pthread_cond_t work;
    pthread_cond_t progress;
    pthread_t thread;
    bool thread_started;
    bool closing;
    bool copying; /* the stream thread is running a copy it took off the FIFO */
    bool fail_bind;
    struct op fifo[FIFO_CAPACITY];
    unsigned head, count;
    struct event *events;
    struct fence (*fences)[HFEED__DEVICE_FENCES]; /* nevents rows; under mu */
    unsigned *nfences;
    unsigned nevents;
    uint64_t rng; /* used by the stream thread only */
    struct hfeed__fake_world *world;
};

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* ---- the simulated runtime: per-thread contexts ------------------------------------------- */

int hfeed__fake_thread_context(void)
{
    return thread_ctx;
}

void hfeed__fake_thread_set_context(int device)
{
    thread_ctx = device;
    if (device >= 0) thread_had |= 1u << device;
}

/* d's code makes device `device`'s context current on the calling thread (-1: none). */
static void make_current(struct hfeed__device *d, int device)
{
    if (device >= 0 && device != d->index && !(thread_had & (1u << device)))
        hfeed__fake_world_count(d->world, 0, 1u << device);
    hfeed__fake_thread_set_context(device);
}

/* A device operation runs in the calling thread's context; with none, the runtime creates
 * device 0's first, as CUDA does. */
static void landed(struct hfeed__device *d)
{
    if (thread_ctx < 0) make_current(d, 0);
    if (thread_ctx != d->index) hfeed__fake_world_count(d->world, 1, 0);
}

static void *ctx_value(int device)
{
    return (void *)(uintptr_t)(unsigned)(device + 1);
}

static hfeed_status rt_get(void *rt, void **ctx, struct hfeed__err *err)
{
    (void)rt;
    (void)err;
    *ctx = thread_ctx >= 0 ? ctx_value(thread_ctx) : NULL; /* as cuCtxGetCurrent */
    return HFEED_OK;
}

static hfeed_status rt_set(void *rt, void *ctx, struct hfeed__err *err)
{
    struct hfeed__device *d = rt;
    const int device = ctx == NULL ? -1 : (int)(uintptr_t)ctx - 1;
    if (d->fail_bind && device == d->index)
        return HFEED__FAIL(err, HFEED_E_DEVICE, "fake:%d: cannot make the device current "
                           "(injected failure)", d->index);
    make_current(d, device);
    return HFEED_OK;
}

static const struct hfeed__ctx_ops fake_ctx_ops = {rt_get, rt_set};

static hfeed_status enter(struct hfeed__device *d, struct hfeed__scope *s, struct hfeed__err *err)
{
    return hfeed__scope_enter(&fake_ctx_ops, d, ctx_value(d->index), s, err);
}

static void leave(struct hfeed__device *d, const struct hfeed__scope *s)
{
    hfeed__scope_leave(&fake_ctx_ops, d, s);
}

void hfeed__fake_device_attach(struct hfeed__device *d, struct hfeed__fake_world *w)
{
    d->world = w;
}

void hfeed__fake_device_fail_bind(struct hfeed__device *d, bool fail)
{
    d->fail_bind = fail;
}

/* ---- the device --------------------------------------------------------------------------- */

static void random_delay(struct hfeed__device *d)
{
    const struct timespec ts = {0, (long)(splitmix64(&d->rng) % 200000u)};
    nanosleep(&ts, NULL);
}

static void run_await(const struct op *o)
{
    for (unsigned i = 0; i < o->nfences; i++)
        hfeed__fake_stream_await(o->fences[i].s, o->fences[i].at_ns);
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
        if (o.kind != OP_MARK) {
            d->copying = true;
            pthread_mutex_unlock(&d->mu);
            if (o.kind == OP_COPY) {
                random_delay(d);
                memcpy(o.dst, o.src, o.n);
            } else {
                run_await(&o);
            }
            pthread_mutex_lock(&d->mu);
            d->copying = false;
            pthread_cond_broadcast(&d->progress);
            continue;
        }
        struct event *e = &d->events[o.event];
        if (o.end) {
            e->end_ns = hfeed__fake_now_ns();
            e->done++;
            pthread_cond_broadcast(&d->progress);
        } else {
            e->start_ns = hfeed__fake_now_ns();
        }
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

static void destroy(struct hfeed__device *d)
{
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
    hfeed__free(d->fences);
    hfeed__free(d->nfences);
    hfeed__free(d);
}

static void fake_close(struct hfeed__device *d)
{
    if (d == NULL) return;
    struct hfeed__scope s;
    struct hfeed__err ignored = {0};
    const bool entered = enter(d, &s, &ignored) == HFEED_OK;
    landed(d);
    if (entered) leave(d, &s);
    destroy(d);
}

static hfeed_status fake_open(int index, unsigned nevents, uint64_t seed,
                              struct hfeed__device **out, struct hfeed__err *err)
{
    *out = NULL;
    if (index < 0) index = thread_ctx >= 0 ? thread_ctx : 0; /* cudaGetDevice's answer */
    struct hfeed__device *d = hfeed__calloc(1, sizeof *d);
    if (d == NULL) return HFEED__FAIL(err, HFEED_E_NOMEM, "fake device: out of memory");
    d->index = index;
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->work, NULL);
    pthread_cond_init(&d->progress, NULL);
    d->rng = seed ^ 0x5eedfa4e5eedfa4eu;
    d->events = hfeed__calloc(nevents, sizeof *d->events);
    d->fences = hfeed__calloc(nevents, sizeof *d->fences);
    d->nfences = hfeed__calloc(nevents, sizeof *d->nfences);
    if (d->events == NULL || d->fences == NULL || d->nfences == NULL) {
        destroy(d);
        return HFEED__FAIL(err, HFEED_E_NOMEM, "fake device: out of memory");
    }
    d->nevents = nevents;
    struct hfeed__scope s;
    hfeed_status st = enter(d, &s, err);
    if (st == HFEED_OK) {
        landed(d); /* creating the stream and events */
        leave(d, &s);
    }
    if (st == HFEED_OK && pthread_create(&d->thread, NULL, stream_main, d) != 0)
        st = HFEED__FAIL(err, HFEED_E_THREAD, "fake device: cannot start its stream thread");
    if (st != HFEED_OK) {
        destroy(d);
        return st;
    }
    d->thread_started = true;
    *out = d;
    return HFEED_OK;
}

/* Pinned staging memory is the runtime's (cudaHostAlloc): it lands on a context. */
static void *fake_host_alloc(struct hfeed__device *d, size_t size, bool pinned)
{
    if (!pinned) return hfeed__device_plain_alloc(d, size, false);
    struct hfeed__scope s;
    struct hfeed__err ignored = {0};
    if (enter(d, &s, &ignored) != HFEED_OK) return NULL;
    landed(d);
    void *p = hfeed__device_plain_alloc(d, size, true);
    leave(d, &s);
    return p;
}

static void fake_host_free(struct hfeed__device *d, void *p, bool pinned)
{
    if (!pinned || p == NULL) {
        hfeed__device_plain_free(d, p, false);
        return;
    }
    struct hfeed__scope s;
    struct hfeed__err ignored = {0};
    const bool entered = enter(d, &s, &ignored) == HFEED_OK;
    landed(d);
    hfeed__device_plain_free(d, p, true);
    if (entered) leave(d, &s);
}

/* Device buffers carry their size in a header, so that freeing one can tell which kernels
 * still read it. */
static void *fake_dev_alloc(struct hfeed__device *d, size_t size)
{
    struct hfeed__scope s;
    struct hfeed__err ignored = {0};
    if (enter(d, &s, &ignored) != HFEED_OK) return NULL;
    landed(d);
    unsigned char *p = hfeed__alloc_aligned(size + HEADER);
    leave(d, &s);
    if (p == NULL) return NULL;
    memcpy(p, &size, sizeof size);
    memset(p + HEADER, 0xA5, size);
    return p + HEADER;
}

static void fake_dev_free(struct hfeed__device *d, void *p)
{
    if (p == NULL) return;
    unsigned char *base = (unsigned char *)p - HEADER;
    size_t size;
    memcpy(&size, base, sizeof size);
    struct hfeed__scope s;
    struct hfeed__err ignored = {0};
    const bool entered = enter(d, &s, &ignored) == HFEED_OK;
    landed(d);
    if (d->world != NULL) hfeed__fake_world_forget(d->world, p, size);
    hfeed__free(base);
    if (entered) leave(d, &s);
}

static hfeed_status fake_bind(struct hfeed__device *d, struct hfeed__err *err)
{
    return rt_set(d, ctx_value(d->index), err);
}

static void push(struct hfeed__device *d, const struct op *o)
{
    pthread_mutex_lock(&d->mu);
    while (d->count == FIFO_CAPACITY)
        pthread_cond_wait(&d->progress, &d->mu);
    if (o->kind == OP_MARK && o->end) d->events[o->event].issued++;
    d->fifo[(d->head + d->count) % FIFO_CAPACITY] = *o;
    d->count++;
    pthread_cond_signal(&d->work);
    pthread_mutex_unlock(&d->mu);
}

static hfeed_status fake_copy(struct hfeed__device *d, void *dst, const void *src, size_t n,
                              struct hfeed__err *err)
{
    (void)err;
    landed(d);
    push(d, &(struct op){.kind = OP_COPY, .dst = dst, .src = src, .n = n});
    return HFEED_OK;
}

static hfeed_status fake_mark(struct hfeed__device *d, unsigned event, bool end,
                              struct hfeed__err *err)
{
    (void)err;
    landed(d);
    push(d, &(struct op){.kind = OP_MARK, .event = event, .end = end});
    return HFEED_OK;
}

static hfeed_status fake_wait(struct hfeed__device *d, unsigned event, uint64_t *start_ns,
                              uint64_t *end_ns, struct hfeed__err *err)
{
    (void)err;
    landed(d);
    pthread_mutex_lock(&d->mu);
    struct event *e = &d->events[event];
    while (e->done != e->issued)
        pthread_cond_wait(&d->progress, &d->mu);
    *start_ns = e->start_ns; /* CLOCK_MONOTONIC: one origin for every event */
    *end_ns = e->end_ns;
    pthread_mutex_unlock(&d->mu);
    return HFEED_OK;
}

static void fake_drain(struct hfeed__device *d)
{
    landed(d);
    pthread_mutex_lock(&d->mu);
    while (d->count > 0 || d->copying)
        pthread_cond_wait(&d->progress, &d->mu);
    pthread_mutex_unlock(&d->mu);
}

/* As cuda_fence: on d's context (whatever the releasing thread's current device is), the event
 * is recorded on the stream (NULL: d's legacy stream); a stream of another device is an error,
 * and the fallback synchronises that stream. */
static hfeed_status record_fence(struct hfeed__device *d, unsigned event, void *stream,
                                 struct hfeed__err *err)
{
    landed(d);
    if (d->world == NULL) return HFEED_OK; /* no consumer stream exists */
    /* NULL: the legacy stream of the current device (none: nothing of the consumer's there) */
    struct hfeed__fake_stream *s =
        stream != NULL ? stream : hfeed__fake_world_legacy(d->world, thread_ctx);
    const int on = s != NULL ? hfeed__fake_stream_device(s) : thread_ctx;
    if (on != d->index) {
        if (s != NULL) hfeed__fake_stream_sync(s);
        return HFEED__FAIL(err, HFEED_E_DEVICE, "fake:%d: release fence on a stream of device "
                           "%d: invalid resource handle", d->index, on);
    }
    if (s == NULL) return HFEED_OK; /* the legacy stream, with nothing of the consumer on it */
    const uint64_t at = hfeed__fake_stream_tail(s);
    pthread_mutex_lock(&d->mu);
    const bool room = d->nfences[event] < HFEED__DEVICE_FENCES;
    if (room) d->fences[event][d->nfences[event]++] = (struct fence){s, at};
    pthread_mutex_unlock(&d->mu);
    if (!room) hfeed__fake_stream_sync(s); /* as cuda_fence: too many streams, wait for this one */
    return HFEED_OK;
}

static hfeed_status fake_fence(struct hfeed__device *d, unsigned event, void *stream,
                               struct hfeed__err *err)
{
    struct hfeed__scope scope;
    hfeed_status st = enter(d, &scope, err);
    if (st != HFEED_OK) {
        /* Nothing can be recorded: wait for a named stream here (the legacy one is the
         * caller's device's, not ours, so there is nothing of ours to wait for). */
        if (stream != NULL && d->world != NULL) hfeed__fake_stream_sync(stream);
        return st;
    }
    st = record_fence(d, event, stream, err);
    leave(d, &scope);
    return st;
}

/* The fences recorded on event `event` so far, moved into an await op (event's list emptied). */
static struct op take_fences(struct hfeed__device *d, unsigned event)
{
    struct op o = {.kind = OP_AWAIT};
    pthread_mutex_lock(&d->mu);
    o.nfences = d->nfences[event];
    memcpy(o.fences, d->fences[event], o.nfences * sizeof *o.fences);
    d->nfences[event] = 0;
    pthread_mutex_unlock(&d->mu);
    return o;
}

static hfeed_status fake_after_fence(struct hfeed__device *d, unsigned event,
                                     struct hfeed__err *err)
{
    (void)err;
    landed(d);
    const struct op o = take_fences(d, event);
    if (o.nfences > 0) push(d, &o);
    return HFEED_OK;
}

static void fake_wait_fences(struct hfeed__device *d)
{
    struct hfeed__scope s;
    struct hfeed__err ignored = {0};
    const bool entered = enter(d, &s, &ignored) == HFEED_OK;
    landed(d);
    for (unsigned e = 0; e < d->nevents; e++) {
        const struct op o = take_fences(d, e);
        run_await(&o);
    }
    if (entered) leave(d, &s);
}

static int fake_index(const struct hfeed__device *d)
{
    return d->index;
}

const struct hfeed__device_ops hfeed__device_fake = {
    .name = "fake",
    .kind = HFEED_DEVICE_FAKE,
    .built = true,
    .open = fake_open,
    .close = fake_close,
    .host_alloc = fake_host_alloc,
    .host_free = fake_host_free,
    .dev_alloc = fake_dev_alloc,
    .dev_free = fake_dev_free,
    .bind = fake_bind,
    .copy = fake_copy,
    .mark = fake_mark,
    .wait = fake_wait,
    .drain = fake_drain,
    .fence = fake_fence,
    .after_fence = fake_after_fence,
    .wait_fences = fake_wait_fences,
    .index = fake_index,
};
