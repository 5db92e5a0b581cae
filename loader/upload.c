/* upload: pinned host slots -> device slots; design, ordering and locking in upload.h. */
#include "upload.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "alloc.h"

/* One upload in flight: the host slot it reads and the device slot it fills. */
struct flight {
    struct hfeed__slot *host;
    struct hfeed__slot *dev;
    bool marked; /* copies and both event marks were queued: the completer must wait */
};

struct hfeed__upload {
    const struct hfeed__device_ops *ops;
    struct hfeed__device *device;
    struct hfeed__ring *host;
    struct hfeed__ring *dev;
    size_t nfields;
    size_t *row_bytes;

    pthread_mutex_t mu;
    pthread_cond_t changed; /* an entry was pushed, or the issuer ended */
    struct flight *fifo;    /* depth entries: at most depth device slots are FILLING */
    unsigned depth, head, count;
    bool issuer_done;

    pthread_t issuer, completer;
    bool running;
    atomic_uint_least64_t bytes, busy_ns;
    /* The upload span on the device's clock: the first copy's start, the last copy's end
     * (written by the completer only; first_start_ns is valid once spanned is set). */
    atomic_uint_least64_t first_start_ns, last_end_ns;
    atomic_bool spanned;
};

static unsigned event_of(struct hfeed__upload *u, const struct hfeed__slot *dev)
{
    return (unsigned)(dev - hfeed__ring_slot(u->dev, 0));
}

static void push(struct hfeed__upload *u, struct flight f)
{
    pthread_mutex_lock(&u->mu);
    /* Never full: each entry holds a FILLING device slot and there are depth of those. */
    u->fifo[(u->head + u->count) % u->depth] = f;
    u->count++;
    pthread_cond_signal(&u->changed);
    pthread_mutex_unlock(&u->mu);
}

/* Queues the batch's data copies between its event marks, after the consumer's release fence
 * of the slot (if it left one). *queued tells whether anything reached the stream, so that a
 * failure part-way can drain it before the host slot is reused.
 * Returns: HFEED_OK, or the device's error (recorded in dev's slot by the caller). */
static hfeed_status issue(struct hfeed__upload *u, const struct hfeed__slot *h,
                          struct hfeed__slot *d, bool *queued, struct hfeed__err *err)
{
    const unsigned event = event_of(u, d);
    HFEED__CHECK(u->ops->after_fence(u->device, event, err));
    *queued = true;
    HFEED__CHECK(u->ops->mark(u->device, event, false, err));
    for (size_t k = 0; k < u->nfields; k++)
        HFEED__CHECK(u->ops->copy(u->device, d->data[k], h->data[k], h->samples * u->row_bytes[k],
                                  err));
    return u->ops->mark(u->device, event, true, err);
}

static void *issuer_main(void *arg)
{
    struct hfeed__upload *u = arg;
    struct hfeed__err bind_err = {0};
    const hfeed_status bound = u->ops->bind(u->device, &bind_err);
    struct hfeed__slot *d = NULL;
    while (hfeed__ring_claim(u->dev, &d)) {
        struct hfeed__slot *h = NULL;
        const hfeed_status taken = hfeed__ring_take(u->host, &h);
        if (taken == HFEED_END) break; /* stopping: restart frees the claimed device slot */
        struct flight f = {.host = h, .dev = d, .marked = false};
        if (taken != HFEED_OK) {
            /* Cannot happen: the issuer holds a FILLING device slot, so fewer than depth host
             * slots are in flight and one is not borrowed. Fail the run rather than hang. */
            f.host = NULL;
            d->status = HFEED__FAIL(&d->err, HFEED_E_THREAD,
                                    "upload: internal error: no host batch for device batch %llu",
                                    (unsigned long long)d->seq);
        } else {
            d->epoch = h->epoch;
            d->index = h->index;
            d->samples = h->samples;
            memcpy(d->indices, h->indices, h->samples * sizeof *h->indices);
            d->status = h->status;
            d->err = h->err;
            if (d->status == HFEED_OK && bound != HFEED_OK) {
                d->status = bound;
                d->err = bind_err;
            } else if (d->status == HFEED_OK) {
                bool queued = false;
                d->status = issue(u, h, d, &queued, &d->err);
                f.marked = d->status == HFEED_OK;
                if (!f.marked && queued) u->ops->drain(u->device); /* copies may read h */
            }
        }
        push(u, f);
    }
    pthread_mutex_lock(&u->mu);
    u->issuer_done = true;
    pthread_cond_signal(&u->changed);
    pthread_mutex_unlock(&u->mu);
    return NULL;
}

/* Adds a finished upload of slot d, which ran from start to end on the device's clock, to the
 * stats. The completer only. */
static void count_upload(struct hfeed__upload *u, const struct hfeed__slot *d, uint64_t start,
                         uint64_t end)
{
    uint64_t bytes = 0;
    for (size_t k = 0; k < u->nfields; k++) bytes += d->samples * u->row_bytes[k];
    atomic_fetch_add_explicit(&u->bytes, bytes, memory_order_relaxed);
    atomic_fetch_add_explicit(&u->busy_ns, end - start, memory_order_relaxed);
    /* Uploads run in order on one stream: the first one counted starts the span. */
    if (!atomic_load_explicit(&u->spanned, memory_order_relaxed)) {
        atomic_store_explicit(&u->first_start_ns, start, memory_order_relaxed);
        atomic_store_explicit(&u->spanned, true, memory_order_release);
    }
    atomic_store_explicit(&u->last_end_ns, end, memory_order_relaxed);
}

/* The completer binds the loader's device like the issuer: every CUDA runtime call, waiting for
 * an event and timing it included, runs in the calling thread's current context and creates
 * one (device 0's, since CUDA 12) on a thread that has none. */
static void *completer_main(void *arg)
{
    struct hfeed__upload *u = arg;
    struct hfeed__err bind_err = {0};
    const hfeed_status bound = u->ops->bind(u->device, &bind_err);
    for (;;) {
        pthread_mutex_lock(&u->mu);
        while (u->count == 0 && !u->issuer_done)
            pthread_cond_wait(&u->changed, &u->mu);
        if (u->count == 0) {
            pthread_mutex_unlock(&u->mu);
            break;
        }
        const struct flight f = u->fifo[u->head];
        u->head = (u->head + 1) % u->depth;
        u->count--;
        pthread_mutex_unlock(&u->mu);

        struct hfeed__slot *d = f.dev;
        if (f.marked && bound != HFEED_OK) {
            /* Cannot wait on our device: fail the batch; drain is the best left to do before
             * the host slot is reused. */
            d->status = bound;
            d->err = bind_err;
            u->ops->drain(u->device);
        } else if (f.marked) {
            uint64_t start = 0, end = 0;
            d->status = u->ops->wait(u->device, event_of(u, d), &start, &end, &d->err);
            if (d->status == HFEED_OK) {
                count_upload(u, d, start, end);
            } else {
                u->ops->drain(u->device); /* a failed wait: make sure nothing reads f.host */
            }
        }
        if (f.host != NULL) hfeed__ring_give_back(u->host, f.host);
        hfeed__ring_publish(u->dev, d);
    }
    return NULL;
}

hfeed_status hfeed__upload_create(const struct hfeed__device_ops *ops, struct hfeed__device *device,
                                  struct hfeed__ring *host, struct hfeed__ring *dev, unsigned depth,
                                  size_t nfields, const size_t *row_bytes,
                                  struct hfeed__upload **out, struct hfeed__err *err)
{
    *out = NULL;
    struct hfeed__upload *u = hfeed__calloc(1, sizeof *u);
    if (u == NULL) return HFEED__FAIL(err, HFEED_E_NOMEM, "upload stage: out of memory");
    u->ops = ops;
    u->device = device;
    u->host = host;
    u->dev = dev;
    u->depth = depth;
    u->nfields = nfields;
    pthread_mutex_init(&u->mu, NULL);
    pthread_cond_init(&u->changed, NULL);
    atomic_init(&u->bytes, 0u);
    atomic_init(&u->busy_ns, 0u);
    atomic_init(&u->first_start_ns, 0u);
    atomic_init(&u->last_end_ns, 0u);
    atomic_init(&u->spanned, false);
    u->fifo = hfeed__calloc(depth, sizeof *u->fifo);
    u->row_bytes = hfeed__calloc(nfields, sizeof *u->row_bytes);
    if (u->fifo == NULL || u->row_bytes == NULL) {
        hfeed__upload_destroy(u);
        return HFEED__FAIL(err, HFEED_E_NOMEM, "upload stage: out of memory");
    }
    memcpy(u->row_bytes, row_bytes, nfields * sizeof *row_bytes);
    *out = u;
    return HFEED_OK;
}

hfeed_status hfeed__upload_start(struct hfeed__upload *u, struct hfeed__err *err)
{
    u->head = 0;
    u->count = 0;
    u->issuer_done = false;
    if (pthread_create(&u->completer, NULL, completer_main, u) != 0)
        return HFEED__FAIL(err, HFEED_E_THREAD, "cannot start the upload completer thread");
    if (pthread_create(&u->issuer, NULL, issuer_main, u) != 0) {
        pthread_mutex_lock(&u->mu);
        u->issuer_done = true;
        pthread_cond_signal(&u->changed);
        pthread_mutex_unlock(&u->mu);
        pthread_join(u->completer, NULL);
        return HFEED__FAIL(err, HFEED_E_THREAD, "cannot start the upload issuer thread");
    }
    u->running = true;
    return HFEED_OK;
}

void hfeed__upload_stop(struct hfeed__upload *u)
{
    if (u == NULL || !u->running) return;
    hfeed__ring_stop(u->host);
    hfeed__ring_stop(u->dev);
    pthread_join(u->issuer, NULL);
    pthread_join(u->completer, NULL);
    u->running = false;
}

void hfeed__upload_get_stats(struct hfeed__upload *u, uint64_t *bytes, uint64_t *busy_ns,
                             uint64_t *span_ns)
{
    *bytes = atomic_load_explicit(&u->bytes, memory_order_relaxed);
    *busy_ns = atomic_load_explicit(&u->busy_ns, memory_order_relaxed);
    *span_ns = 0;
    if (atomic_load_explicit(&u->spanned, memory_order_acquire)) {
        const uint64_t end = atomic_load_explicit(&u->last_end_ns, memory_order_relaxed);
        const uint64_t start = atomic_load_explicit(&u->first_start_ns, memory_order_relaxed);
        *span_ns = end > start ? end - start : 0;
    }
}

void hfeed__upload_destroy(struct hfeed__upload *u)
{
    if (u == NULL) return;
    hfeed__upload_stop(u);
    pthread_cond_destroy(&u->changed);
    pthread_mutex_destroy(&u->mu);
    hfeed__free(u->fifo);
    hfeed__free(u->row_bytes);
    hfeed__free(u);
}
