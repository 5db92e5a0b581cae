/* upload: the upload stage between two rings, with the fake device (copies finish late, in
 * order, on the device's own thread). The test thread plays the workers (claims and publishes
 * host slots) and the consumer (takes device slots), so the stage's rules are checked directly:
 * device batches arrive in sequence order with the host batch's data and metadata; a pinned slot
 * goes back to the workers as soon as its copy finished, while the consumer still holds the
 * device batch; an error in a host batch crosses the stage; stop with uploads in flight gives
 * every host slot back. */
#include <criterion/criterion.h>
#include <string.h>
#include <time.h>

#include "device.h"
#include "device_fake.h"
#include "prefetch.h"
#include "upload.h"

#define DEPTH 3
#define BATCH 16
#define ROW_BYTES 24 /* 3 doubles */
#define END_SEQ 40

struct rig {
    struct hfeed__device *dev;
    struct hfeed__ring *host, *devring;
    struct hfeed__upload *up;
    struct hfeed__slot_memory dev_mem;
};

static void plan(void *ctx, uint64_t seq, struct hfeed__slot *slot)
{
    (void)ctx;
    slot->epoch = 0;
    slot->index = seq;
    slot->samples = BATCH - (seq % 3); /* batches of different sizes */
    for (size_t i = 0; i < slot->samples; i++) slot->indices[i] = seq * 100 + i;
}

static void *dev_alloc(void *ctx, size_t size)
{
    return hfeed__device_fake.dev_alloc(ctx, size);
}

static void dev_free(void *ctx, void *p)
{
    hfeed__device_fake.dev_free(ctx, p);
}

/* The stage on fake device `index`, reporting into w (NULL: none). */
static void rig_open_on(struct rig *r, int index, struct hfeed__fake_world *w)
{
    struct hfeed__err err = {0};
    const size_t rows[1] = {ROW_BYTES};
    cr_assert_eq(hfeed__device_fake.open(index, DEPTH, 7, &r->dev, &err), HFEED_OK, "%s",
                 err.msg);
    if (w != NULL) hfeed__fake_device_attach(r->dev, w);
    r->dev_mem = (struct hfeed__slot_memory){dev_alloc, dev_free, r->dev};
    cr_assert_eq(hfeed__ring_create(DEPTH, 1, rows, BATCH, END_SEQ, NULL, plan, NULL, &r->host,
                                    &err),
                 HFEED_OK);
    cr_assert_eq(hfeed__ring_create(DEPTH, 1, rows, BATCH, END_SEQ, &r->dev_mem, NULL, NULL,
                                    &r->devring, &err),
                 HFEED_OK);
    cr_assert_eq(hfeed__upload_create(&hfeed__device_fake, r->dev, r->host, r->devring, DEPTH, 1,
                                      rows, &r->up, &err),
                 HFEED_OK);
    cr_assert_eq(hfeed__upload_start(r->up, &err), HFEED_OK);
}

static void rig_open(struct rig *r)
{
    rig_open_on(r, 0, NULL);
}

static void rig_close(struct rig *r)
{
    hfeed__ring_stop(r->host);
    hfeed__upload_destroy(r->up);
    hfeed__ring_destroy(r->devring);
    hfeed__ring_destroy(r->host);
    hfeed__device_fake.close(r->dev);
}

/* The value of byte b of row i of batch seq. */
static unsigned char value(uint64_t seq, size_t i, size_t b)
{
    return (unsigned char)(seq * 31 + i * 7 + b);
}

/* Plays a worker: claims the next host slot, fills it, publishes it. */
static uint64_t produce(struct rig *r, hfeed_status status)
{
    struct hfeed__slot *s = NULL;
    cr_assert(hfeed__ring_claim(r->host, &s));
    for (size_t i = 0; i < s->samples; i++)
        for (size_t b = 0; b < ROW_BYTES; b++) s->data[0][i * ROW_BYTES + b] = value(s->seq, i, b);
    s->status = status;
    if (status != HFEED_OK) hfeed__err_set(&s->err, status, "worker failed on batch %llu",
                                           (unsigned long long)s->seq);
    const uint64_t seq = s->seq;
    hfeed__ring_publish(r->host, s);
    return seq;
}

static struct hfeed__slot *consume(struct rig *r, uint64_t want_seq)
{
    struct hfeed__slot *d = NULL;
    cr_assert_eq(hfeed__ring_take(r->devring, &d), HFEED_OK);
    cr_assert_eq(d->index, want_seq, "device batches out of order");
    cr_assert_eq(d->status, HFEED_OK, "%s", d->err.msg);
    cr_assert_eq(d->samples, BATCH - (want_seq % 3));
    for (size_t i = 0; i < d->samples; i++) {
        cr_assert_eq(d->indices[i], want_seq * 100 + i);
        for (size_t b = 0; b < ROW_BYTES; b++)
            cr_assert_eq(d->data[0][i * ROW_BYTES + b], value(want_seq, i, b),
                         "batch %llu row %zu byte %zu", (unsigned long long)want_seq, i, b);
    }
    return d;
}

TestSuite(upload, .timeout = 20);

Test(upload, device_batches_arrive_in_order_with_the_host_data)
{
    struct rig r;
    rig_open(&r);
    uint64_t next_out = 0;
    for (uint64_t seq = 0; seq < END_SEQ; seq++) {
        produce(&r, HFEED_OK);
        if (seq % 2 == 1) { /* the consumer lags one batch behind, then catches up */
            while (next_out <= seq) hfeed__ring_give_back(r.devring, consume(&r, next_out++));
        }
    }
    while (next_out < END_SEQ) hfeed__ring_give_back(r.devring, consume(&r, next_out++));
    struct hfeed__slot *d = NULL;
    cr_assert_eq(hfeed__ring_take(r.devring, &d), HFEED_END);
    uint64_t bytes = 0, busy = 0, span = 0, want = 0;
    for (uint64_t seq = 0; seq < END_SEQ; seq++) want += (BATCH - seq % 3) * ROW_BYTES;
    hfeed__upload_get_stats(r.up, &bytes, &busy, &span);
    cr_assert_eq(bytes, want);
    cr_assert_geq(span, busy, "span %llu < busy %llu", (unsigned long long)span,
                  (unsigned long long)busy);
    rig_close(&r);
}

/* The consumer holds every device slot; the workers must still get every pinned slot back
 * (claim would block forever, and the test time out, if host slots waited for the consumer). */
Test(upload, pinned_slots_are_refilled_while_device_batches_are_held)
{
    struct rig r;
    rig_open(&r);
    struct hfeed__slot *held[DEPTH];
    for (uint64_t seq = 0; seq < DEPTH; seq++) {
        produce(&r, HFEED_OK);
        held[seq] = consume(&r, seq);
    }
    /* All device slots are borrowed. The workers fill all host slots again. */
    for (int k = 0; k < DEPTH; k++) produce(&r, HFEED_OK);
    /* The held device batches are intact (no upload overwrote them). */
    for (uint64_t seq = 0; seq < DEPTH; seq++) {
        for (size_t b = 0; b < ROW_BYTES; b++)
            cr_assert_eq(held[seq]->data[0][b], value(seq, 0, b));
        hfeed__ring_give_back(r.devring, held[seq]);
    }
    for (uint64_t seq = DEPTH; seq < 2 * DEPTH; seq++)
        hfeed__ring_give_back(r.devring, consume(&r, seq));
    rig_close(&r);
}

Test(upload, a_failed_host_batch_crosses_the_stage_and_ends_the_run)
{
    struct rig r;
    rig_open(&r);
    produce(&r, HFEED_OK);
    produce(&r, HFEED_E_READ);
    hfeed__ring_give_back(r.devring, consume(&r, 0));
    struct hfeed__slot *d = NULL;
    cr_assert_eq(hfeed__ring_take(r.devring, &d), HFEED_OK);
    cr_assert_eq(d->index, 1);
    cr_assert_eq(d->status, HFEED_E_READ);
    cr_assert_str_eq(d->err.msg, "worker failed on batch 1");
    hfeed__ring_give_back(r.devring, d);
    rig_close(&r);
}

Test(upload, stop_with_uploads_in_flight_gives_every_host_slot_back)
{
    struct rig r;
    rig_open(&r);
    for (int k = 0; k < DEPTH; k++) produce(&r, HFEED_OK);
    hfeed__ring_stop(r.host);
    hfeed__upload_stop(r.up);
    /* Restart works only when no host slot is still borrowed by the stage. */
    cr_assert_eq(hfeed__ring_restart(r.host, 0), HFEED_OK);
    cr_assert_eq(hfeed__ring_restart(r.devring, 0), HFEED_OK);
    struct hfeed__err err = {0};
    cr_assert_eq(hfeed__upload_start(r.up, &err), HFEED_OK);
    produce(&r, HFEED_OK);
    hfeed__ring_give_back(r.devring, consume(&r, 0));
    rig_close(&r);
}

/* A rank of an 8-GPU node runs on cuda:N, N != 0, often from a thread that never chose a device
 * (or chose another). Every device call of the stage's threads (issuer and completer) and of the
 * user's thread (allocations, frees, close) must land in device N's context, create no context
 * on another device (CUDA 12 creates one, hundreds of MiB, on the first call or cudaSetDevice on
 * a thread without one), and leave the user's thread with the context it had, also none. */
Test(upload, every_call_lands_on_the_loaders_device_and_the_callers_context_is_kept)
{
    static const struct {
        int device;   /* the loader's */
        int user_ctx; /* the test thread's current device before and after; -1: none */
    } cases[] = {{3, -1}, {3, 0}, {3, 3}, {0, -1}, {1, 2}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        struct hfeed__fake_world *w = NULL;
        cr_assert_eq(hfeed__fake_world_create(&w), HFEED_OK);
        hfeed__fake_thread_set_context(cases[c].user_ctx);
        struct rig r;
        rig_open_on(&r, cases[c].device, w);
        cr_expect_eq(hfeed__fake_thread_context(), cases[c].user_ctx,
                     "case %zu: open left the caller on context %d", c,
                     hfeed__fake_thread_context());
        for (uint64_t seq = 0; seq < 2 * DEPTH; seq++) {
            produce(&r, HFEED_OK);
            hfeed__ring_give_back(r.devring, consume(&r, seq));
        }
        rig_close(&r);
        struct hfeed__fake_record rec;
        hfeed__fake_world_get(w, &rec);
        cr_expect_eq(hfeed__fake_thread_context(), cases[c].user_ctx,
                     "case %zu (cuda:%d, caller on %d): left the caller on context %d", c,
                     cases[c].device, cases[c].user_ctx, hfeed__fake_thread_context());
        cr_expect_eq(rec.stray_calls, 0, "case %zu (cuda:%d, caller on %d): %llu calls in "
                     "another device's context", c, cases[c].device, cases[c].user_ctx,
                     (unsigned long long)rec.stray_calls);
        cr_expect_eq(rec.foreign_contexts, 0, "case %zu (cuda:%d, caller on %d): created "
                     "contexts on devices 0x%x", c, cases[c].device, cases[c].user_ctx,
                     rec.foreign_contexts);
        hfeed__fake_world_destroy(w);
    }
}

/* The consumer reads device batch 0 on its stream for a while (a kernel still queued), releases
 * it with a fence on that stream, and goes on. The upload that reuses the slot must wait for the
 * kernel, whatever the releasing thread's current device is: the consumer's own device, another
 * one ("cuda" and torch.cuda.set_device(rank) on a node, or a release from another thread), or
 * none; and whether the stream is named or is the legacy default stream (NULL). */
Test(upload, a_release_fence_holds_the_slot_whatever_device_the_releasing_thread_is_on)
{
    enum { LOADER_DEVICE = 1 };
    static const struct {
        int releaser_ctx; /* the releasing thread's current device; -1: none */
        bool legacy;      /* NULL stream: the legacy default stream */
    } cases[] = {{LOADER_DEVICE, true}, {0, true}, {-1, true}, {LOADER_DEVICE, false},
                 {0, false}, {-1, false}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        struct hfeed__fake_world *w = NULL;
        cr_assert_eq(hfeed__fake_world_create(&w), HFEED_OK);
        struct hfeed__fake_stream *s = NULL;
        cr_assert_eq(cases[c].legacy ? hfeed__fake_stream_create_legacy(w, LOADER_DEVICE, &s)
                                     : hfeed__fake_stream_create(w, LOADER_DEVICE, &s),
                     HFEED_OK);
        hfeed__fake_thread_set_context(LOADER_DEVICE);
        struct rig r;
        rig_open_on(&r, LOADER_DEVICE, w);
        for (int k = 0; k < DEPTH; k++) produce(&r, HFEED_OK);
        struct hfeed__slot *d0 = consume(&r, 0);
        hfeed__fake_stream_launch(s, d0->data[0], d0->samples * ROW_BYTES, 30 * 1000000u);
        hfeed__fake_thread_set_context(cases[c].releaser_ctx);
        struct hfeed__err err = {0};
        const unsigned event = (unsigned)(d0 - hfeed__ring_slot(r.devring, 0));
        cr_expect_eq(hfeed__device_fake.fence(r.dev, event, cases[c].legacy ? NULL : s, &err),
                     HFEED_OK, "case %zu: %s", c, err.msg);
        hfeed__ring_give_back(r.devring, d0);
        for (uint64_t seq = 1; seq < 2 * DEPTH; seq++) {
            if (seq >= DEPTH) produce(&r, HFEED_OK); /* batch 3 goes into slot 0 */
            hfeed__ring_give_back(r.devring, consume(&r, seq));
        }
        hfeed__fake_stream_sync(s);
        hfeed__fake_thread_set_context(LOADER_DEVICE);
        rig_close(&r);
        struct hfeed__fake_record rec;
        hfeed__fake_world_get(w, &rec);
        cr_expect_eq(rec.kernels_checked, 1, "case %zu", c);
        cr_expect_eq(rec.overwritten, 0, "case %zu (releaser on %d, %s stream): the slot was "
                     "refilled while the consumer's kernel read it", c, cases[c].releaser_ctx,
                     cases[c].legacy ? "legacy" : "named");
        hfeed__fake_world_destroy(w);
    }
}

/* The upload span runs from the first copy's start to the last copy's end, idle gaps included:
 * with workers slower than the copies (a gap of 3 ms before each batch) it covers the gaps,
 * while the summed copy time does not (bench/upload.py's rate is bytes over the span). */
Test(upload, the_span_covers_the_idle_gaps_between_uploads)
{
    enum { N = 8, GAP_MS = 3 };
    struct rig r;
    rig_open(&r);
    for (uint64_t seq = 0; seq < N; seq++) {
        const struct timespec gap = {0, GAP_MS * 1000000L};
        nanosleep(&gap, NULL);
        produce(&r, HFEED_OK);
        hfeed__ring_give_back(r.devring, consume(&r, seq));
    }
    uint64_t bytes = 0, busy = 0, span = 0;
    hfeed__upload_get_stats(r.up, &bytes, &busy, &span);
    cr_expect_geq(span, (uint64_t)(N - 1) * GAP_MS * 1000000u, "span %llu ns misses the gaps",
                  (unsigned long long)span);
    cr_expect_lt(busy, span, "busy %llu, span %llu", (unsigned long long)busy,
                 (unsigned long long)span);
    rig_close(&r);
}
