/* device_fake_world: what the fake device's simulated runtime shares with the test
 * (device_fake.h): consumer streams, the kernels queued on them, and the record of what was
 * seen. A kernel notes a checksum of the buffer it reads when launched, and compares it when it
 * is found finished (by a sync, by the fake device waiting for a release fence, or when the
 * buffer is freed: then it is counted as freed in use instead, and forgotten).
 *
 * Locking: the world's mutex guards its streams, their kernels and the record; nothing else is
 * taken while it is held. */
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "device_fake.h"

enum { MAX_STREAMS = 16, MAX_KERNELS = 64 };

struct kernel {
    const unsigned char *p;
    size_t n;
    uint64_t sum;
    uint64_t finish_ns;
    bool done;
};

struct hfeed__fake_stream {
    struct hfeed__fake_world *world; /* owns the stream */
    int device;
    bool legacy;
    struct kernel kernels[MAX_KERNELS];
    uint64_t tail_ns; /* when the last kernel queued finishes */
};

struct hfeed__fake_world {
    pthread_mutex_t mu;
    struct hfeed__fake_stream *streams[MAX_STREAMS];
    unsigned nstreams;
    struct hfeed__fake_record rec;
};

uint64_t hfeed__fake_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_until(uint64_t t)
{
    const uint64_t now = hfeed__fake_now_ns();
    if (t <= now) return;
    const uint64_t ns = t - now;
    const struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
    nanosleep(&ts, NULL);
}

static uint64_t checksum(const unsigned char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325u; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3u;
    return h;
}

/* ---- the world: streams, kernels, what was seen ------------------------------------------- */

hfeed_status hfeed__fake_world_create(struct hfeed__fake_world **out)
{
    *out = hfeed__calloc(1, sizeof **out);
    if (*out == NULL) return HFEED_E_NOMEM;
    pthread_mutex_init(&(*out)->mu, NULL);
    return HFEED_OK;
}

void hfeed__fake_world_destroy(struct hfeed__fake_world *w)
{
    if (w == NULL) return;
    for (unsigned i = 0; i < w->nstreams; i++)
        hfeed__free(w->streams[i]);
    pthread_mutex_destroy(&w->mu);
    hfeed__free(w);
}

void hfeed__fake_world_get(struct hfeed__fake_world *w, struct hfeed__fake_record *out)
{
    pthread_mutex_lock(&w->mu);
    *out = w->rec;
    pthread_mutex_unlock(&w->mu);
}

static hfeed_status add_stream(struct hfeed__fake_world *w, int device, bool legacy,
                               struct hfeed__fake_stream **out)
{
    *out = NULL;
    struct hfeed__fake_stream *s = hfeed__calloc(1, sizeof *s);
    if (s == NULL) return HFEED_E_NOMEM;
    s->world = w;
    s->device = device;
    s->legacy = legacy;
    pthread_mutex_lock(&w->mu);
    const bool room = w->nstreams < MAX_STREAMS;
    if (room) w->streams[w->nstreams++] = s;
    pthread_mutex_unlock(&w->mu);
    if (!room) {
        hfeed__free(s);
        return HFEED_E_NOMEM;
    }
    *out = s;
    return HFEED_OK;
}

hfeed_status hfeed__fake_stream_create(struct hfeed__fake_world *w, int device,
                                       struct hfeed__fake_stream **out)
{
    return add_stream(w, device, false, out);
}

hfeed_status hfeed__fake_stream_create_legacy(struct hfeed__fake_world *w, int device,
                                              struct hfeed__fake_stream **out)
{
    return add_stream(w, device, true, out);
}

/* Checks the kernels of s that have finished by now. Under w->mu. */
static void check_due(struct hfeed__fake_world *w, struct hfeed__fake_stream *s)
{
    const uint64_t now = hfeed__fake_now_ns();
    for (unsigned i = 0; i < MAX_KERNELS; i++) {
        struct kernel *k = &s->kernels[i];
        if (k->p == NULL || k->done || k->finish_ns > now) continue;
        if (checksum(k->p, k->n) != k->sum) w->rec.overwritten++;
        w->rec.kernels_checked++;
        k->done = true;
    }
}

void hfeed__fake_stream_launch(struct hfeed__fake_stream *s, const void *p, size_t n,
                               uint64_t duration_ns)
{
    struct hfeed__fake_world *w = s->world;
    pthread_mutex_lock(&w->mu);
    const uint64_t now = hfeed__fake_now_ns();
    const uint64_t start = s->tail_ns > now ? s->tail_ns : now;
    for (unsigned i = 0; i < MAX_KERNELS; i++) {
        struct kernel *k = &s->kernels[i];
        if (k->p != NULL && !k->done) continue;
        *k = (struct kernel){
            .p = p, .n = n, .sum = checksum(p, n), .finish_ns = start + duration_ns};
        break;
    }
    s->tail_ns = start + duration_ns;
    pthread_mutex_unlock(&w->mu);
}

void hfeed__fake_stream_await(struct hfeed__fake_stream *s, uint64_t t)
{
    struct hfeed__fake_world *w = s->world;
    sleep_until(t);
    pthread_mutex_lock(&w->mu);
    check_due(w, s);
    pthread_mutex_unlock(&w->mu);
}

void hfeed__fake_stream_sync(struct hfeed__fake_stream *s)
{
    struct hfeed__fake_world *w = s->world;
    pthread_mutex_lock(&w->mu);
    const uint64_t t = s->tail_ns;
    pthread_mutex_unlock(&w->mu);
    hfeed__fake_stream_await(s, t);
}

void hfeed__fake_world_count(struct hfeed__fake_world *w, uint64_t stray, uint32_t foreign)
{
    if (w == NULL || (stray == 0 && foreign == 0)) return;
    pthread_mutex_lock(&w->mu);
    w->rec.stray_calls += stray;
    w->rec.foreign_contexts |= foreign;
    pthread_mutex_unlock(&w->mu);
}

struct hfeed__fake_stream *hfeed__fake_world_legacy(struct hfeed__fake_world *w, int device)
{
    struct hfeed__fake_stream *s = NULL;
    pthread_mutex_lock(&w->mu);
    for (unsigned i = 0; i < w->nstreams && s == NULL; i++)
        if (w->streams[i]->legacy && w->streams[i]->device == device) s = w->streams[i];
    pthread_mutex_unlock(&w->mu);
    return s;
}

int hfeed__fake_stream_device(const struct hfeed__fake_stream *s)
{
    return s->device; /* fixed at creation */
}

uint64_t hfeed__fake_stream_tail(struct hfeed__fake_stream *s)
{
    pthread_mutex_lock(&s->world->mu);
    const uint64_t t = s->tail_ns;
    pthread_mutex_unlock(&s->world->mu);
    return t;
}

void hfeed__fake_world_forget(struct hfeed__fake_world *w, const void *p, size_t size)
{
    const unsigned char *b = p;
    pthread_mutex_lock(&w->mu);
    for (unsigned i = 0; i < w->nstreams; i++) {
        struct hfeed__fake_stream *s = w->streams[i];
        check_due(w, s);
        for (unsigned k = 0; k < MAX_KERNELS; k++) {
            struct kernel *kn = &s->kernels[k];
            if (kn->p == NULL || kn->done || kn->p < b || kn->p >= b + size) continue;
            w->rec.freed_in_use++;
            kn->done = true;
        }
    }
    pthread_mutex_unlock(&w->mu);
}
