/* lifecycle: open, close and borrow in every awkward order. Close right after open and mid-epoch
 * (workers busy, prefetch full), close with batches still borrowed (they stay valid; the last
 * release frees the loader, which valgrind and ASan check), many open/close cycles, E_BUSY when
 * every slot is borrowed (next and seek), release from another thread, independent loaders on
 * several threads. Every test ends by closing its handles and asserting HFEED_OK. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fixtures.h"
#include "h5feed.h"

/* life.h5: enough compressed chunks that workers are busy for a while. tiny.h5: for cycles. */
static const fx_dataset life_x = {.path = "/x",
                                  .kind = FX_FLOAT32,
                                  .rows = 2000,
                                  .ndim = 1,
                                  .shape = {16},
                                  .layout = FX_CHUNKED,
                                  .chunk = {64, 16},
                                  .gzip = 1};
static const fx_dataset life_y = {.path = "/y",
                                  .kind = FX_INT64,
                                  .rows = 2000,
                                  .index_values = true,
                                  .layout = FX_CHUNKED,
                                  .chunk = {128}};

static void setup(void)
{
    fx_setup();
    const fx_dataset life[] = {life_x, life_y};
    fx_write_file("life.h5", life, 2);
    const fx_dataset tiny[] = {
        {.path = "/x",
         .kind = FX_FLOAT32,
         .rows = 20,
         .ndim = 1,
         .shape = {2},
         .layout = FX_CHUNKED,
         .chunk = {8, 2}},
        {.path = "/y", .kind = FX_INT64, .rows = 20, .index_values = true},
    };
    fx_write_file("tiny.h5", tiny, 2);
}

TestSuite(lifecycle, .init = setup, .fini = fx_teardown);

static const char *life_json(unsigned workers, unsigned prefetch, unsigned batch,
                             const char *shuffle, unsigned epochs)
{
    return fx_fmt("{\"files\": [\"life.h5\"], \"fields\": ["
                  "{\"name\": \"x\", \"dataset\": \"/x\", \"dtype\": \"float32\"}, "
                  "{\"name\": \"y\", \"dataset\": \"/y\", \"dtype\": \"int64\"}], "
                  "\"batch_size\": %u, \"workers\": %u, \"prefetch\": %u, "
                  "\"shuffle\": \"%s\", \"epochs\": %u}",
                  batch, workers, prefetch, shuffle, epochs);
}

static hfeed_loader *open_ok(const char *json)
{
    char err[HFEED_ERRBUF_SIZE];
    hfeed_loader *l = NULL;
    hfeed_status st = fx_open(json, &l, err);
    cr_assert_eq(st, HFEED_OK, "open: %s: %s", hfeed_strerror((int)st), err);
    cr_assert_not_null(l);
    return l;
}

static hfeed_batch *next_ok(hfeed_loader *l)
{
    hfeed_batch *b = NULL;
    hfeed_status st = hfeed_loader_next(l, &b);
    cr_assert_eq(st, HFEED_OK, "next: %s: %s", hfeed_strerror((int)st), hfeed_loader_errmsg(l));
    cr_assert_not_null(b);
    return b;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* Checks a borrowed batch's data against the fixtures (valid even after close). */
static void check_batch_values(const hfeed_batch *b)
{
    hfeed_batch_info bi;
    const uint64_t *idx = NULL;
    hfeed_tensor x, y;
    cr_assert_eq(hfeed_batch_get_info(b, &bi), HFEED_OK);
    cr_assert_eq(hfeed_batch_get_indices(b, &idx), HFEED_OK);
    cr_assert_eq(hfeed_batch_get_tensor(b, 0, &x), HFEED_OK);
    cr_assert_eq(hfeed_batch_get_tensor(b, 1, &y), HFEED_OK);
    cr_assert_eq(x.shape[0], (int64_t)bi.samples);
    cr_assert_str_eq(x.name, "x");
    cr_assert_str_eq(y.name, "y");
    const float *xv = x.data;
    const int64_t *yv = y.data;
    for (size_t r = 0; r < bi.samples; r++) {
        cr_assert_eq(yv[r], (int64_t)idx[r]);
        for (size_t e = 0; e < 16; e++) {
            float want;
            cr_assert_eq(fx_expect(&life_x, idx[r], e, HFEED_DTYPE_FLOAT32, &want),
                         FX_EXPECT_VALUE);
            cr_assert(memcmp(&xv[r * 16 + e], &want, sizeof want) == 0,
                      "sample %llu elem %zu differs", (unsigned long long)idx[r], e);
        }
    }
}

Test(lifecycle, close_right_after_open_while_workers_fill)
{
    static const unsigned workers[] = {1, 4};
    for (int i = 0; i < 10; i++) {
        hfeed_loader *l = open_ok(life_json(workers[i % 2], 4, 64, i % 3 ? "global" : "chunk", 3));
        cr_assert_eq(hfeed_loader_close(l), HFEED_OK);
    }
}

Test(lifecycle, close_mid_epoch_with_prefetch_full)
{
    hfeed_loader *l = open_ok(life_json(3, 4, 32, "global", 2));
    for (int i = 0; i < 2; i++) {
        hfeed_batch *b = next_ok(l);
        check_batch_values(b);
        hfeed_batch_release(b);
    }
    sleep_ms(100); /* let the workers fill every slot and block */
    cr_assert_eq(hfeed_loader_close(l), HFEED_OK);
}

Test(lifecycle, close_after_end)
{
    hfeed_loader *l = open_ok(life_json(2, 3, 500, "none", 1));
    hfeed_batch *b = NULL;
    hfeed_status st;
    while ((st = hfeed_loader_next(l, &b)) == HFEED_OK) {
        hfeed_batch_release(b);
    }
    cr_assert_eq(st, HFEED_END, "%s: %s", hfeed_strerror((int)st), hfeed_loader_errmsg(l));
    cr_assert_eq(hfeed_loader_close(l), HFEED_OK);
}

static void *release_thread(void *arg)
{
    hfeed_batch_release(arg);
    return NULL;
}

Test(lifecycle, close_with_batches_borrowed_then_release_them)
{
    hfeed_loader *l = open_ok(life_json(2, 4, 50, "global", 1));
    hfeed_batch *held[3];
    for (int i = 0; i < 3; i++) {
        held[i] = next_ok(l);
    }
    cr_assert_eq(hfeed_loader_close(l), HFEED_OK);
    /* the borrowed batches are still valid after close */
    for (int i = 0; i < 3; i++) {
        check_batch_values(held[i]);
    }
    hfeed_batch_release(held[1]);
    check_batch_values(held[0]);
    check_batch_values(held[2]);
    hfeed_batch_release(held[0]);
    /* the last release (which frees the loader) may come from another thread */
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, release_thread, held[2]), 0);
    cr_assert_eq(pthread_join(t, NULL), 0);
}

Test(lifecycle, close_with_every_slot_borrowed)
{
    hfeed_loader *l = open_ok(life_json(4, 2, 40, "chunk", 1));
    hfeed_batch *a = next_ok(l);
    hfeed_batch *b = next_ok(l);
    sleep_ms(20);
    cr_assert_eq(hfeed_loader_close(l), HFEED_OK);
    check_batch_values(b);
    hfeed_batch_release(b);
    check_batch_values(a);
    hfeed_batch_release(a);
}

Test(lifecycle, two_hundred_open_close_cycles)
{
    const char *json = fx_fmt("{\"files\": [\"tiny.h5\"], \"fields\": ["
                              "{\"name\": \"x\", \"dataset\": \"/x\", \"dtype\": \"float64\"}, "
                              "{\"name\": \"y\", \"dataset\": \"/y\", \"dtype\": \"int64\"}], "
                              "\"batch_size\": 4, \"workers\": 2, \"prefetch\": 2, "
                              "\"shuffle\": \"global\"}");
    for (int i = 0; i < 200; i++) {
        hfeed_loader *l = open_ok(json);
        if (i % 2 == 1) {
            hfeed_batch *b = next_ok(l);
            if (i % 4 == 1) {
                hfeed_batch_release(b);
                cr_assert_eq(hfeed_loader_close(l), HFEED_OK);
            } else {
                cr_assert_eq(hfeed_loader_close(l), HFEED_OK);
                hfeed_batch_release(b); /* last reference: frees the loader */
            }
        } else {
            cr_assert_eq(hfeed_loader_close(l), HFEED_OK);
        }
    }
}

Test(lifecycle, close_null_is_ok)
{
    cr_assert_eq(hfeed_loader_close(NULL), HFEED_OK);
    hfeed_batch_release(NULL);
}

Test(lifecycle, next_with_every_slot_borrowed_is_busy)
{
    hfeed_loader *l = open_ok(life_json(2, 2, 16, "none", 1));
    hfeed_batch *a = next_ok(l);
    hfeed_batch *b = next_ok(l);
    hfeed_batch *c = (hfeed_batch *)(void *)&c; /* must be reset to NULL */
    cr_assert_eq(hfeed_loader_next(l, &c), HFEED_E_BUSY, "a third next with prefetch 2");
    cr_assert_null(c);
    cr_assert_eq(hfeed_loader_next(l, &c), HFEED_E_BUSY, "again");
    hfeed_batch_info bi;
    cr_assert_eq(hfeed_batch_get_info(a, &bi), HFEED_OK);
    cr_assert_eq(bi.index, 0);
    hfeed_batch_release(a);
    /* BUSY is not sticky: the freed slot gives the next batch in order */
    c = next_ok(l);
    cr_assert_eq(hfeed_batch_get_info(c, &bi), HFEED_OK);
    cr_assert_eq(bi.index, 2, "a BUSY call must not skip or consume a batch");
    cr_assert_eq(hfeed_loader_next(l, &a), HFEED_E_BUSY);
    hfeed_batch_release(b);
    hfeed_batch_release(c);
    a = next_ok(l);
    cr_assert_eq(hfeed_batch_get_info(a, &bi), HFEED_OK);
    cr_assert_eq(bi.index, 3);
    check_batch_values(a);
    hfeed_batch_release(a);
    cr_assert_eq(hfeed_loader_close(l), HFEED_OK);
}

Test(lifecycle, seek_while_a_batch_is_borrowed_is_busy)
{
    hfeed_loader *l = open_ok(life_json(2, 3, 100, "global", 2));
    hfeed_batch *a = next_ok(l);
    cr_assert_eq(hfeed_loader_seek(l, 1, 0), HFEED_E_BUSY);
    cr_assert_gt(strlen(hfeed_loader_errmsg(l)), 0, "BUSY without a message");
    hfeed_batch_release(a);
    cr_assert_eq(hfeed_loader_seek(l, 1, 2), HFEED_OK, "%s", hfeed_loader_errmsg(l));
    a = next_ok(l);
    hfeed_batch_info bi;
    cr_assert_eq(hfeed_batch_get_info(a, &bi), HFEED_OK);
    cr_assert_eq(bi.epoch, 1);
    cr_assert_eq(bi.index, 2);
    check_batch_values(a);
    hfeed_batch_release(a);
    cr_assert_eq(hfeed_loader_close(l), HFEED_OK);
}

Test(lifecycle, release_from_another_thread)
{
    hfeed_loader *l = open_ok(life_json(2, 2, 100, "global", 1));
    for (int i = 0; i < 5; i++) {
        hfeed_batch *b = next_ok(l);
        check_batch_values(b);
        pthread_t t;
        cr_assert_eq(pthread_create(&t, NULL, release_thread, b), 0);
        cr_assert_eq(pthread_join(t, NULL), 0);
    }
    cr_assert_eq(hfeed_loader_close(l), HFEED_OK);
}

/* A releaser thread that gives batches back in the order it receives them, while the consumer
 * keeps taking new ones: release races with next. */
struct handoff {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    hfeed_batch *q[64];
    size_t head, tail;
    bool done;
    uint64_t checked;
};

static void *releaser(void *arg)
{
    struct handoff *h = arg;
    for (;;) {
        pthread_mutex_lock(&h->mu);
        while (h->head == h->tail && !h->done) {
            pthread_cond_wait(&h->cv, &h->mu);
        }
        if (h->head == h->tail) {
            pthread_mutex_unlock(&h->mu);
            return NULL;
        }
        hfeed_batch *b = h->q[h->head++ % 64];
        pthread_mutex_unlock(&h->mu);
        hfeed_batch_info bi;
        if (hfeed_batch_get_info(b, &bi) == HFEED_OK) {
            h->checked += bi.samples; /* only this thread writes it until join */
        }
        hfeed_batch_release(b);
    }
}

Test(lifecycle, consumer_and_releaser_threads_run_two_epochs)
{
    hfeed_loader *l = open_ok(life_json(3, 3, 64, "chunk", 2));
    struct handoff h;
    memset(&h, 0, sizeof h);
    pthread_mutex_init(&h.mu, NULL);
    pthread_cond_init(&h.cv, NULL);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, releaser, &h), 0);
    uint64_t batches = 0;
    unsigned busy = 0;
    for (;;) {
        hfeed_batch *b = NULL;
        hfeed_status st = hfeed_loader_next(l, &b);
        if (st == HFEED_E_BUSY) {
            busy++;
            cr_assert_lt(busy, 100000, "BUSY forever: releases are not seen");
            sleep_ms(1);
            continue;
        }
        if (st == HFEED_END) {
            break;
        }
        cr_assert_eq(st, HFEED_OK, "%s: %s", hfeed_strerror((int)st), hfeed_loader_errmsg(l));
        batches++;
        pthread_mutex_lock(&h.mu);
        h.q[h.tail++ % 64] = b;
        pthread_cond_signal(&h.cv);
        pthread_mutex_unlock(&h.mu);
    }
    pthread_mutex_lock(&h.mu);
    h.done = true;
    pthread_cond_signal(&h.cv);
    pthread_mutex_unlock(&h.mu);
    cr_assert_eq(pthread_join(t, NULL), 0);
    cr_assert_eq(batches, 2 * ((2000 + 63) / 64));
    cr_assert_eq(h.checked, 2 * 2000);
    pthread_cond_destroy(&h.cv);
    pthread_mutex_destroy(&h.mu);
    cr_assert_eq(hfeed_loader_close(l), HFEED_OK);
}

/* Independent loaders on several threads, all reading one file. */
struct worker_arg {
    const char *json;
    uint64_t samples;
    hfeed_status end, closed;
};

static void *run_loader(void *arg)
{
    struct worker_arg *w = arg;
    char err[HFEED_ERRBUF_SIZE];
    hfeed_loader *l = NULL;
    w->end = fx_open(w->json, &l, err);
    if (w->end != HFEED_OK) {
        return NULL;
    }
    hfeed_batch *b = NULL;
    while ((w->end = hfeed_loader_next(l, &b)) == HFEED_OK) {
        hfeed_batch_info bi;
        if (hfeed_batch_get_info(b, &bi) == HFEED_OK) {
            w->samples += bi.samples;
        }
        hfeed_batch_release(b);
    }
    w->closed = hfeed_loader_close(l);
    return NULL;
}

Test(lifecycle, loaders_on_several_threads_are_independent)
{
    struct worker_arg w[3];
    pthread_t t[3];
    static const char *const modes[] = {"none", "global", "chunk"};
    for (int i = 0; i < 3; i++) {
        memset(&w[i], 0, sizeof w[i]);
        /* fx_fmt's buffers rotate: copy nothing, each json stays valid for 16 calls */
        w[i].json = life_json((unsigned)(i + 1), 2, 128, modes[i], 1);
    }
    (void)fx_dir(); /* touch the fixtures' state only on this thread */
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(pthread_create(&t[i], NULL, run_loader, &w[i]), 0);
    }
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(pthread_join(t[i], NULL), 0);
        cr_assert_eq(w[i].end, HFEED_END, "loader %d: %s", i, hfeed_strerror((int)w[i].end));
        cr_assert_eq(w[i].closed, HFEED_OK);
        cr_assert_eq(w[i].samples, 2000);
    }
}

Test(lifecycle, one_slot_with_many_workers)
{
    hfeed_loader *l = open_ok(life_json(4, 1, 300, "global", 1));
    uint64_t n = 0;
    hfeed_batch *b = NULL;
    hfeed_status st;
    while ((st = hfeed_loader_next(l, &b)) == HFEED_OK) {
        hfeed_batch_info bi;
        cr_assert_eq(hfeed_batch_get_info(b, &bi), HFEED_OK);
        n += bi.samples;
        hfeed_batch *c = NULL;
        /* with the one slot borrowed: BUSY, except after the last batch, where it is END */
        const hfeed_status again = hfeed_loader_next(l, &c);
        const hfeed_status want = n < 2000 ? HFEED_E_BUSY : HFEED_END;
        cr_assert_eq(again, want, "after %llu samples, next with the one slot borrowed: %s",
                     (unsigned long long)n, hfeed_strerror((int)again));
        cr_assert_null(c);
        hfeed_batch_release(b);
    }
    cr_assert_eq(st, HFEED_END, "%s: %s", hfeed_strerror((int)st), hfeed_loader_errmsg(l));
    cr_assert_eq(n, 2000);
    cr_assert_eq(hfeed_loader_close(l), HFEED_OK);
}

/* A batch kept borrowed holds one slot and no more: with prefetch 4, the consumer keeps batch 0
 * and still takes and releases the following batches, in order, without BUSY. */
Test(lifecycle, a_kept_batch_holds_one_slot_not_the_ring)
{
    hfeed_loader *l = open_ok(life_json(2, 4, 50, "global", 1));
    hfeed_batch *kept = next_ok(l);
    hfeed_batch_info bi;
    for (uint64_t want = 1; want < 12; want++) {
        hfeed_batch *b = next_ok(l);
        cr_assert_eq(hfeed_batch_get_info(b, &bi), HFEED_OK);
        cr_assert_eq(bi.index, want, "batch %llu came as %llu", (unsigned long long)want,
                     (unsigned long long)bi.index);
        check_batch_values(b);
        hfeed_batch_release(b);
    }
    check_batch_values(kept);
    cr_assert_eq(hfeed_batch_get_info(kept, &bi), HFEED_OK);
    cr_assert_eq(bi.index, 0, "the kept batch was overwritten");
    hfeed_batch_release(kept);
    cr_assert_eq(hfeed_loader_close(l), HFEED_OK);
}
