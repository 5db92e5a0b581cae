/* upload: the upload stage between two rings, with the fake device (copies finish late, in
 * order, on the device's own thread). The test thread plays the workers (claims and publishes
 * host slots) and the consumer (takes device slots), so the stage's rules are checked directly:
 * device batches arrive in sequence order with the host batch's data and metadata; a pinned slot
 * goes back to the workers as soon as its copy finished, while the consumer still holds the
 * device batch; an error in a host batch crosses the stage; stop with uploads in flight gives
 * every host slot back. */
#include <criterion/criterion.h>
#include <string.h>

#include "device.h"
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

static void rig_open(struct rig *r)
{
    struct hfeed__err err = {0};
    const size_t rows[1] = {ROW_BYTES};
    cr_assert_eq(hfeed__device_fake.open(0, DEPTH, 7, &r->dev, &err), HFEED_OK, "%s", err.msg);
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
    uint64_t bytes = 0, busy = 0, want = 0;
    for (uint64_t seq = 0; seq < END_SEQ; seq++) want += (BATCH - seq % 3) * ROW_BYTES;
    hfeed__upload_get_stats(r.up, &bytes, &busy);
    cr_assert_eq(bytes, want);
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
