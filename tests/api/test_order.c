/* order: which samples arrive, how often, and in what order.
 *
 * The data is two files (60 + 43 rows) whose /y holds each row's global index, so every batch's
 * reported indices are also checked against the data. Checked: every sample exactly once per
 * epoch for every shuffle mode and worker count; sharding (pad: the ranks' parts concatenated
 * are the epoch order with wrapped repeats; drop: disjoint); equal batch counts on every rank;
 * determinism in (seed, epoch) and independence of the worker count; seek/resume; drop_last;
 * the info and stats counters; HFEED_END after the last epoch, sticky. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures.h"
#include "h5feed.h"

#define N_TOTAL 103u
#define N_FILE0 60u
#define N_FILE1 43u
#define BATCH 8u

static void write_order_files(void)
{
    fx_dataset ds[2] = {
        {.path = "/y", .kind = FX_INT64, .index_values = true, .layout = FX_CHUNKED, .chunk = {10}},
        {.path = "/x",
         .kind = FX_FLOAT32,
         .ndim = 1,
         .shape = {2},
         .index_values = true,
         .layout = FX_CHUNKED,
         .chunk = {16, 2},
         .gzip = 1},
    };
    ds[0].rows = ds[1].rows = N_FILE0;
    fx_write_file("a.h5", ds, 2);
    ds[0].rows = ds[1].rows = N_FILE1;
    ds[0].row_offset = ds[1].row_offset = N_FILE0;
    fx_write_file("b.h5", ds, 2);
}

static void setup(void)
{
    fx_setup();
    write_order_files();
}

TestSuite(order, .init = setup, .fini = fx_teardown);

struct cfg {
    const char *shuffle;
    unsigned workers;
    uint64_t seed;
    uint64_t epochs;
    unsigned rank, world;
    const char *remainder; /* "pad" or "drop" */
    uint64_t batch_size;
    bool drop_last;
    unsigned prefetch;
};

static struct cfg cfg_default(const char *shuffle)
{
    return (struct cfg){.shuffle = shuffle,
                        .workers = 2,
                        .seed = 5,
                        .epochs = 1,
                        .rank = 0,
                        .world = 1,
                        .remainder = "pad",
                        .batch_size = BATCH,
                        .drop_last = false,
                        .prefetch = 4};
}

static const char *cfg_json(const struct cfg *c)
{
    return fx_fmt("{\"files\": [\"a.h5\", \"b.h5\"], \"fields\": ["
                  "{\"name\": \"y\", \"dataset\": \"/y\", \"dtype\": \"int64\"}, "
                  "{\"name\": \"x\", \"dataset\": \"/x\", \"dtype\": \"float32\"}], "
                  "\"batch_size\": %llu, \"drop_last\": %s, \"shuffle\": \"%s\", "
                  "\"seed\": %llu, \"shuffle_window\": 3, \"epochs\": %llu, \"workers\": %u, "
                  "\"prefetch\": %u, \"device\": \"cpu\", "
                  "\"shard\": {\"rank\": %u, \"world_size\": %u}, \"shard_remainder\": \"%s\"}",
                  (unsigned long long)c->batch_size, c->drop_last ? "true" : "false", c->shuffle,
                  (unsigned long long)c->seed, (unsigned long long)c->epochs, c->workers,
                  c->prefetch, c->rank, c->world, c->remainder);
}

/* Everything a run delivered, batch by batch. */
struct run {
    size_t nbatches;
    uint64_t *epoch; /* per batch */
    uint64_t *index; /* per batch */
    size_t *start;   /* per batch: offset into idx */
    size_t *count;   /* per batch: samples */
    uint64_t *idx;   /* all indices, in delivery order */
    size_t nidx;
    size_t cap_b, cap_i;
    uint64_t bytes; /* sum of every tensor's nbytes */
    hfeed_loader_info info;
    hfeed_stats stats;
};

static void run_free(struct run *r)
{
    free(r->epoch);
    free(r->index);
    free(r->start);
    free(r->count);
    free(r->idx);
    memset(r, 0, sizeof *r);
}

static void run_push(struct run *r, const hfeed_batch *b)
{
    hfeed_batch_info bi;
    const uint64_t *idx = NULL;
    cr_assert_eq(hfeed_batch_get_info(b, &bi), HFEED_OK);
    cr_assert_eq(hfeed_batch_get_indices(b, &idx), HFEED_OK);
    cr_assert_eq(bi.fields, 2);
    if (r->nbatches == r->cap_b) {
        r->cap_b = r->cap_b ? 2 * r->cap_b : 64;
        r->epoch = realloc(r->epoch, r->cap_b * sizeof *r->epoch);
        r->index = realloc(r->index, r->cap_b * sizeof *r->index);
        r->start = realloc(r->start, r->cap_b * sizeof *r->start);
        r->count = realloc(r->count, r->cap_b * sizeof *r->count);
        cr_assert(r->epoch && r->index && r->start && r->count);
    }
    while (r->nidx + bi.samples > r->cap_i) {
        r->cap_i = r->cap_i ? 2 * r->cap_i : 1024;
        r->idx = realloc(r->idx, r->cap_i * sizeof *r->idx);
        cr_assert_not_null(r->idx);
    }
    r->epoch[r->nbatches] = bi.epoch;
    r->index[r->nbatches] = bi.index;
    r->start[r->nbatches] = r->nidx;
    r->count[r->nbatches] = bi.samples;
    r->nbatches++;

    /* The data agrees with the reported indices. */
    hfeed_tensor y, x;
    cr_assert_eq(hfeed_batch_get_tensor(b, 0, &y), HFEED_OK);
    cr_assert_eq(hfeed_batch_get_tensor(b, 1, &x), HFEED_OK);
    cr_assert_eq(y.dtype, HFEED_DTYPE_INT64);
    cr_assert_eq(y.shape[0], (int64_t)bi.samples);
    cr_assert_eq(x.shape[0], (int64_t)bi.samples);
    cr_assert_eq(x.shape[1], 2);
    const int64_t *yv = y.data;
    const float *xv = x.data;
    for (size_t i = 0; i < bi.samples; i++) {
        cr_assert_lt(idx[i], N_TOTAL, "index %llu out of range", (unsigned long long)idx[i]);
        cr_assert_eq(yv[i], (int64_t)idx[i], "row %zu: /y is %lld but the index says %llu", i,
                     (long long)yv[i], (unsigned long long)idx[i]);
        cr_assert(xv[2 * i + 1] == (float)(idx[i] * 2 + 1), "row %zu: /x does not match", i);
        r->idx[r->nidx++] = idx[i];
    }
    r->bytes += y.nbytes + x.nbytes;
}

/* Takes batches until HFEED_END; checks END is sticky. */
static void drain(hfeed_loader *l, struct run *r)
{
    for (;;) {
        hfeed_batch *b = NULL;
        hfeed_status st = hfeed_loader_next(l, &b);
        if (st == HFEED_END) {
            cr_assert_null(b);
            break;
        }
        cr_assert_eq(st, HFEED_OK, "next: %s: %s", hfeed_strerror((int)st), hfeed_loader_errmsg(l));
        run_push(r, b);
        hfeed_batch_release(b);
    }
    for (int i = 0; i < 3; i++) {
        static char dummy;
        hfeed_batch *b = (hfeed_batch *)(void *)&dummy; /* must be reset to NULL */
        cr_assert_eq(hfeed_loader_next(l, &b), HFEED_END, "END is not sticky");
        cr_assert_null(b);
    }
}

static hfeed_loader *open_cfg(const struct cfg *c)
{
    char err[HFEED_ERRBUF_SIZE];
    hfeed_loader *l = NULL;
    const char *json = cfg_json(c);
    hfeed_status st = fx_open(json, &l, err);
    cr_assert_eq(st, HFEED_OK, "open %s: %s: %s", json, hfeed_strerror((int)st), err);
    return l;
}

/* Opens, runs to the end, records info and stats, closes. */
static void collect(const struct cfg *c, struct run *r)
{
    memset(r, 0, sizeof *r);
    hfeed_loader *l = open_cfg(c);
    cr_assert_eq(hfeed_loader_get_info(l, &r->info), HFEED_OK);
    drain(l, r);
    cr_assert_eq(hfeed_loader_get_stats(l, &r->stats), HFEED_OK);
    cr_assert_eq(hfeed_loader_close(l), HFEED_OK);
}

/* The indices of epoch e, in delivery order, and how many. Checks batch numbering. */
static const uint64_t *epoch_indices(const struct run *r, uint64_t e, size_t *n)
{
    size_t first = SIZE_MAX;
    size_t count = 0;
    uint64_t expect_index = 0;
    for (size_t b = 0; b < r->nbatches; b++) {
        if (r->epoch[b] != e) {
            continue;
        }
        if (first == SIZE_MAX) {
            first = r->start[b];
        }
        cr_assert_eq(r->index[b], expect_index, "epoch %llu: batch index %llu, expected %llu",
                     (unsigned long long)e, (unsigned long long)r->index[b],
                     (unsigned long long)expect_index);
        expect_index++;
        count += r->count[b];
    }
    *n = count;
    return first == SIZE_MAX ? NULL : r->idx + first;
}

static bool same_sequence(const struct run *a, const struct run *b)
{
    if (a->nbatches != b->nbatches || a->nidx != b->nidx) {
        return false;
    }
    for (size_t i = 0; i < a->nbatches; i++) {
        if (a->epoch[i] != b->epoch[i] || a->index[i] != b->index[i] ||
            a->count[i] != b->count[i]) {
            return false;
        }
    }
    return memcmp(a->idx, b->idx, a->nidx * sizeof *a->idx) == 0;
}

static bool same_epoch(const struct run *a, uint64_t ea, const struct run *b, uint64_t eb)
{
    size_t na, nb;
    const uint64_t *pa = epoch_indices(a, ea, &na);
    const uint64_t *pb = epoch_indices(b, eb, &nb);
    return na == nb && memcmp(pa, pb, na * sizeof *pa) == 0;
}

static void assert_permutation(const uint64_t *p, size_t n, const char *what)
{
    cr_assert_eq(n, N_TOTAL, "%s: %zu samples, expected %u", what, n, N_TOTAL);
    unsigned char seen[N_TOTAL] = {0};
    for (size_t i = 0; i < n; i++) {
        cr_assert_lt(p[i], N_TOTAL);
        cr_assert_eq(seen[p[i]], 0, "%s: sample %llu twice", what, (unsigned long long)p[i]);
        seen[p[i]] = 1;
    }
}

static bool is_identity(const uint64_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != i) {
            return false;
        }
    }
    return true;
}

static const char *const modes[] = {"none", "global", "chunk"};
static const unsigned worker_counts[] = {1, 2, 4};

Test(order, every_sample_once_per_epoch_in_every_mode_and_worker_count)
{
    for (size_t m = 0; m < 3; m++) {
        struct run first = {0};
        for (size_t w = 0; w < 3; w++) {
            struct cfg c = cfg_default(modes[m]);
            c.workers = worker_counts[w];
            c.epochs = 2;
            struct run r;
            collect(&c, &r);
            const uint64_t nb = (N_TOTAL + BATCH - 1) / BATCH;
            cr_assert_eq(r.nbatches, 2 * nb, "%s/%u workers: %zu batches", modes[m], c.workers,
                         r.nbatches);
            for (uint64_t e = 0; e < 2; e++) {
                size_t n;
                const uint64_t *p = epoch_indices(&r, e, &n);
                assert_permutation(p, n, modes[m]);
                if (m == 0) {
                    cr_assert(is_identity(p, n), "shuffle none is not file order");
                }
            }
            for (size_t b = 0; b < r.nbatches; b++) {
                const size_t want = r.index[b] + 1 < nb ? BATCH : N_TOTAL - (nb - 1) * BATCH;
                cr_assert_eq(r.count[b], want, "batch %zu has %zu samples", b, r.count[b]);
            }
            if (w == 0) {
                first = r;
            } else {
                cr_assert(same_sequence(&first, &r),
                          "%s: %u workers deliver another order than "
                          "1 worker",
                          modes[m], c.workers);
                run_free(&r);
            }
        }
        run_free(&first);
    }
}

/* Checks the ranks of one world size: equal batch counts, the parts concatenated per epoch are
 * the epoch order with wrapped repeats (pad) or distinct (drop). */
static void check_world(const char *mode, unsigned world, bool pad, unsigned workers,
                        bool drop_last)
{
    const uint64_t epochs = 2;
    const uint64_t n = pad ? (N_TOTAL + world - 1) / world : N_TOTAL / world;
    const uint64_t batches = drop_last ? n / BATCH : (n + BATCH - 1) / BATCH;
    const uint64_t per_rank = drop_last ? batches * BATCH : n;
    struct run runs[3];
    for (unsigned rank = 0; rank < world; rank++) {
        struct cfg c = cfg_default(mode);
        c.workers = workers;
        c.epochs = epochs;
        c.rank = rank;
        c.world = world;
        c.remainder = pad ? "pad" : "drop";
        c.drop_last = drop_last;
        collect(&c, &runs[rank]);
        const hfeed_loader_info *in = &runs[rank].info;
        cr_assert_eq(in->rank, rank);
        cr_assert_eq(in->world_size, world);
        cr_assert_eq(in->total_samples, N_TOTAL);
        cr_assert_eq(in->batches_per_epoch, batches,
                     "%s world %u rank %u %s: %llu batches per "
                     "epoch, expected %llu",
                     mode, world, rank, pad ? "pad" : "drop",
                     (unsigned long long)in->batches_per_epoch, (unsigned long long)batches);
        cr_assert_eq(runs[rank].nbatches, epochs * batches, "rank %u delivered %zu batches", rank,
                     runs[rank].nbatches);
        cr_expect_eq(in->samples_per_epoch, per_rank,
                     "%s world %u rank %u: samples_per_epoch "
                     "%llu, expected %llu",
                     mode, world, rank, (unsigned long long)in->samples_per_epoch,
                     (unsigned long long)per_rank);
        if (pad && !drop_last) {
            /* positions [rank*n, rank*n + n) past N are repeats */
            const uint64_t lo = rank * n;
            const uint64_t hi = lo + n;
            const uint64_t padded = hi <= N_TOTAL ? 0 : hi - (lo > N_TOTAL ? lo : N_TOTAL);
            cr_expect_eq(in->padded_per_epoch, padded,
                         "world %u rank %u: padded %llu, "
                         "expected %llu",
                         world, rank, (unsigned long long)in->padded_per_epoch,
                         (unsigned long long)padded);
        }
        if (!pad && !drop_last) {
            cr_expect_eq(in->padded_per_epoch, 0);
        }
        for (size_t b = 0; b < runs[rank].nbatches; b++) {
            const uint64_t i = runs[rank].index[b];
            const size_t want = i + 1 < batches ? BATCH : (size_t)(per_rank - i * BATCH);
            cr_assert_eq(runs[rank].count[b], want, "rank %u batch %llu: %zu samples", rank,
                         (unsigned long long)i, runs[rank].count[b]);
        }
    }
    for (uint64_t e = 0; e < epochs; e++) {
        uint64_t s[2 * N_TOTAL];
        size_t len = 0;
        for (unsigned rank = 0; rank < world; rank++) {
            size_t cnt;
            const uint64_t *p = epoch_indices(&runs[rank], e, &cnt);
            cr_assert_eq(cnt, per_rank);
            memcpy(s + len, p, cnt * sizeof *p);
            len += cnt;
        }
        if (drop_last) {
            unsigned char seen[N_TOTAL] = {0};
            for (size_t i = 0; i < len; i++) {
                cr_assert_lt(s[i], N_TOTAL);
                if (!pad) {
                    cr_assert_eq(seen[s[i]], 0, "drop: sample %llu on two ranks",
                                 (unsigned long long)s[i]);
                }
                seen[s[i]] = 1;
            }
            continue;
        }
        cr_assert_eq(len, world * n);
        if (pad) {
            /* The first N positions are a permutation, the rest repeat the start. */
            assert_permutation(s, N_TOTAL, "pad: first N positions of the ranks' parts");
            for (size_t p = N_TOTAL; p < len; p++) {
                cr_assert_eq(s[p], s[p % N_TOTAL],
                             "%s world %u epoch %llu: position %zu holds "
                             "%llu, expected the repeat %llu",
                             mode, world, (unsigned long long)e, p, (unsigned long long)s[p],
                             (unsigned long long)s[p % N_TOTAL]);
            }
        } else {
            unsigned char seen[N_TOTAL] = {0};
            for (size_t i = 0; i < len; i++) {
                cr_assert_eq(seen[s[i]], 0, "drop: sample %llu twice across ranks",
                             (unsigned long long)s[i]);
                seen[s[i]] = 1;
            }
        }
        if (strcmp(mode, "none") == 0) {
            for (size_t p = 0; p < len; p++) {
                cr_assert_eq(s[p], p % N_TOTAL, "none, world %u: position %zu holds %llu", world, p,
                             (unsigned long long)s[p]);
            }
        }
    }
    for (unsigned rank = 0; rank < world; rank++) {
        run_free(&runs[rank]);
    }
}

static void check_shards(const char *mode, bool pad)
{
    for (unsigned world = 1; world <= 3; world++) {
        for (size_t w = 0; w < 3; w++) {
            check_world(mode, world, pad, worker_counts[w], false);
        }
    }
}

Test(order, shards_pad_cover_every_sample_shuffle_none)
{
    check_shards("none", true);
}

Test(order, shards_pad_cover_every_sample_shuffle_global)
{
    check_shards("global", true);
}

Test(order, shards_pad_cover_every_sample_shuffle_chunk)
{
    check_shards("chunk", true);
}

Test(order, shards_drop_are_disjoint_shuffle_none)
{
    check_shards("none", false);
}

Test(order, shards_drop_are_disjoint_shuffle_global)
{
    check_shards("global", false);
}

Test(order, shards_drop_are_disjoint_shuffle_chunk)
{
    check_shards("chunk", false);
}

Test(order, shards_with_drop_last_get_equal_full_batches)
{
    for (size_t m = 0; m < 3; m++) {
        check_world(modes[m], 3, true, 2, true);
        check_world(modes[m], 3, false, 2, true);
        check_world(modes[m], 2, true, 1, true);
    }
}

Test(order, same_seed_gives_same_order)
{
    for (size_t m = 1; m < 3; m++) {
        struct cfg c = cfg_default(modes[m]);
        c.epochs = 2;
        struct run a, b;
        collect(&c, &a);
        c.workers = 3;
        c.prefetch = 2;
        collect(&c, &b);
        cr_assert(same_sequence(&a, &b), "%s: two loaders with one seed disagree", modes[m]);
        run_free(&a);
        run_free(&b);
    }
}

Test(order, shuffled_orders_differ_by_epoch_and_seed)
{
    for (size_t m = 1; m < 3; m++) {
        struct cfg c = cfg_default(modes[m]);
        c.epochs = 2;
        struct run a, b;
        collect(&c, &a);
        c.seed = 6;
        collect(&c, &b);
        size_t n;
        const uint64_t *p = epoch_indices(&a, 0, &n);
        cr_assert_not(is_identity(p, n), "%s: epoch 0 is in file order", modes[m]);
        cr_assert_not(same_epoch(&a, 0, &a, 1), "%s: epochs 0 and 1 have one order", modes[m]);
        cr_assert_not(same_epoch(&a, 0, &b, 0), "%s: seeds 5 and 6 give one order", modes[m]);
        cr_assert_not(same_epoch(&a, 1, &b, 1), "%s: seeds 5 and 6 give one order", modes[m]);
        run_free(&a);
        run_free(&b);
    }
}

Test(order, shuffle_none_repeats_file_order_every_epoch)
{
    struct cfg c = cfg_default("none");
    c.epochs = 3;
    c.seed = 99;
    struct run r;
    collect(&c, &r);
    for (uint64_t e = 0; e < 3; e++) {
        size_t n;
        const uint64_t *p = epoch_indices(&r, e, &n);
        cr_assert_eq(n, N_TOTAL);
        cr_assert(is_identity(p, n), "epoch %llu is not file order", (unsigned long long)e);
    }
    run_free(&r);
}

Test(order, order_does_not_depend_on_worker_count)
{
    for (size_t m = 0; m < 3; m++) {
        struct cfg c = cfg_default(modes[m]);
        c.epochs = 2;
        c.world = 2;
        c.rank = 1;
        c.workers = 1;
        struct run a, b;
        collect(&c, &a);
        c.workers = 4;
        c.prefetch = 6;
        collect(&c, &b);
        cr_assert(same_sequence(&a, &b), "%s: 1 and 4 workers deliver different orders", modes[m]);
        run_free(&a);
        run_free(&b);
    }
}

/* The batches of r from batch `k` of epoch `e` on. */
static size_t find_batch(const struct run *r, uint64_t e, uint64_t k)
{
    for (size_t b = 0; b < r->nbatches; b++) {
        if (r->epoch[b] == e && r->index[b] == k) {
            return b;
        }
    }
    cr_assert_fail("batch (%llu, %llu) not in the run", (unsigned long long)e,
                   (unsigned long long)k);
    return 0;
}

static void assert_tail_equal(const struct run *full, size_t from, const struct run *r)
{
    cr_assert_eq(r->nbatches, full->nbatches - from, "resumed run has %zu batches, expected %zu",
                 r->nbatches, full->nbatches - from);
    for (size_t i = 0; i < r->nbatches; i++) {
        const size_t f = from + i;
        cr_assert_eq(r->epoch[i], full->epoch[f]);
        cr_assert_eq(r->index[i], full->index[f]);
        cr_assert_eq(r->count[i], full->count[f]);
        cr_assert(memcmp(r->idx + r->start[i], full->idx + full->start[f],
                         r->count[i] * sizeof *r->idx) == 0,
                  "resumed batch (%llu, %llu) holds other samples than the uninterrupted run",
                  (unsigned long long)r->epoch[i], (unsigned long long)r->index[i]);
    }
}

Test(order, seek_resumes_exactly_where_an_uninterrupted_run_is)
{
    for (size_t m = 0; m < 3; m++) {
        struct cfg c = cfg_default(modes[m]);
        c.epochs = 3;
        c.world = 2;
        c.rank = 1;
        struct run full;
        collect(&c, &full);
        const uint64_t nb = full.info.batches_per_epoch;
        const uint64_t points[][2] = {{0, 0}, {0, 3}, {1, 0}, {1, nb - 1}, {2, 2}, {2, nb - 1}};
        for (size_t i = 0; i < sizeof points / sizeof points[0]; i++) {
            hfeed_loader *l = open_cfg(&c);
            cr_assert_eq(hfeed_loader_seek(l, points[i][0], points[i][1]), HFEED_OK, "seek: %s",
                         hfeed_loader_errmsg(l));
            struct run r;
            memset(&r, 0, sizeof r);
            drain(l, &r);
            cr_assert_eq(hfeed_loader_close(l), HFEED_OK);
            assert_tail_equal(&full, find_batch(&full, points[i][0], points[i][1]), &r);
            run_free(&r);
        }
        run_free(&full);
    }
}

Test(order, seek_mid_run_discards_prepared_batches)
{
    for (size_t m = 0; m < 3; m++) {
        struct cfg c = cfg_default(modes[m]);
        c.epochs = 2;
        c.workers = 3;
        struct run full;
        collect(&c, &full);
        hfeed_loader *l = open_cfg(&c);
        /* take 5 batches (the workers prepare more ahead), then go back */
        for (int i = 0; i < 5; i++) {
            hfeed_batch *b = NULL;
            cr_assert_eq(hfeed_loader_next(l, &b), HFEED_OK);
            hfeed_batch_release(b);
        }
        cr_assert_eq(hfeed_loader_seek(l, 0, 1), HFEED_OK, "%s", hfeed_loader_errmsg(l));
        struct run r;
        memset(&r, 0, sizeof r);
        drain(l, &r);
        assert_tail_equal(&full, find_batch(&full, 0, 1), &r);
        run_free(&r);
        /* after the end, seeking back starts over */
        cr_assert_eq(hfeed_loader_seek(l, 1, 4), HFEED_OK, "%s", hfeed_loader_errmsg(l));
        memset(&r, 0, sizeof r);
        drain(l, &r);
        assert_tail_equal(&full, find_batch(&full, 1, 4), &r);
        run_free(&r);
        cr_assert_eq(hfeed_loader_close(l), HFEED_OK);
        run_free(&full);
    }
}

Test(order, seek_past_the_end_is_invalid_arg)
{
    struct cfg c = cfg_default("global");
    c.epochs = 2;
    hfeed_loader *l = open_cfg(&c);
    hfeed_loader_info info;
    cr_assert_eq(hfeed_loader_get_info(l, &info), HFEED_OK);
    cr_assert_eq(hfeed_loader_seek(l, 2, 0), HFEED_E_INVALID_ARG);
    cr_assert_eq(hfeed_loader_seek(l, 0, info.batches_per_epoch), HFEED_E_INVALID_ARG);
    cr_assert_eq(hfeed_loader_seek(l, 1, info.batches_per_epoch + 5), HFEED_E_INVALID_ARG);
    cr_assert_eq(hfeed_loader_seek(NULL, 0, 0), HFEED_E_INVALID_ARG);
    /* a refused seek leaves the loader usable from where it was */
    hfeed_batch *b = NULL;
    cr_assert_eq(hfeed_loader_next(l, &b), HFEED_OK, "%s", hfeed_loader_errmsg(l));
    hfeed_batch_info bi;
    cr_assert_eq(hfeed_batch_get_info(b, &bi), HFEED_OK);
    cr_assert_eq(bi.epoch, 0);
    cr_assert_eq(bi.index, 0);
    hfeed_batch_release(b);
    cr_assert_eq(hfeed_loader_seek(l, 1, info.batches_per_epoch - 1), HFEED_OK);
    cr_assert_eq(hfeed_loader_next(l, &b), HFEED_OK);
    cr_assert_eq(hfeed_batch_get_info(b, &bi), HFEED_OK);
    cr_assert_eq(bi.epoch, 1);
    cr_assert_eq(bi.index, info.batches_per_epoch - 1);
    hfeed_batch_release(b);
    cr_assert_eq(hfeed_loader_next(l, &b), HFEED_END);
    cr_assert_eq(hfeed_loader_close(l), HFEED_OK);
}

Test(order, info_describes_the_run)
{
    struct cfg c = cfg_default("chunk");
    c.epochs = 4;
    c.workers = 3;
    c.prefetch = 5;
    c.world = 3;
    c.rank = 2;
    hfeed_loader *l = open_cfg(&c);
    hfeed_loader_info in;
    cr_assert_eq(hfeed_loader_get_info(l, &in), HFEED_OK);
    const uint64_t n = (N_TOTAL + 2) / 3; /* 35: ranks 0..2 cover positions 0..104 */
    cr_expect_eq(in.total_samples, N_TOTAL);
    cr_expect_eq(in.samples_per_epoch, n);
    cr_expect_eq(in.padded_per_epoch, 3 * n - N_TOTAL, "rank 2 holds all %llu repeats",
                 (unsigned long long)(3 * n - N_TOTAL));
    cr_expect_eq(in.dropped_per_epoch, 0);
    cr_expect_eq(in.batches_per_epoch, (n + BATCH - 1) / BATCH);
    cr_expect_eq(in.epochs, 4);
    cr_expect_eq(in.batch_size, BATCH);
    cr_expect_eq(in.fields, 2);
    cr_expect_eq(in.rank, 2);
    cr_expect_eq(in.world_size, 3);
    cr_expect_eq(in.workers, 3);
    cr_expect_eq(in.slots, 5);
    cr_expect_eq(in.device, HFEED_DEVICE_CPU);
    /* one slot holds a full batch of both fields: int64 + 2 x float32 per sample */
    cr_expect_geq(in.slot_bytes, (size_t)BATCH * (8 + 2 * 4), "slot_bytes %zu", in.slot_bytes);
    cr_expect_leq(in.slot_bytes * in.slots, in.memory_bytes,
                  "slot_bytes %zu x slots %u > "
                  "memory_bytes %zu",
                  in.slot_bytes, in.slots, in.memory_bytes);
    cr_expect(in.hdf5_threadsafe == 0 || in.hdf5_threadsafe == 1);
    cr_assert_eq(hfeed_loader_get_info(NULL, &in), HFEED_E_INVALID_ARG);
    cr_assert_eq(hfeed_loader_get_info(l, NULL), HFEED_E_INVALID_ARG);
    cr_assert_eq(hfeed_loader_close(l), HFEED_OK);
}

Test(order, stats_add_up)
{
    struct cfg c = cfg_default("global");
    c.epochs = 3;
    c.workers = 2;
    struct run r;
    collect(&c, &r);
    cr_expect_eq(r.stats.batches, r.nbatches, "stats.batches %llu, delivered %zu",
                 (unsigned long long)r.stats.batches, r.nbatches);
    cr_expect_eq(r.stats.samples, r.nidx, "stats.samples %llu, delivered %zu",
                 (unsigned long long)r.stats.samples, r.nidx);
    cr_expect_eq(r.stats.samples, 3 * N_TOTAL);
    cr_expect_eq(r.stats.bytes_out, r.bytes, "stats.bytes_out %llu, delivered %llu",
                 (unsigned long long)r.stats.bytes_out, (unsigned long long)r.bytes);
    cr_expect_eq(r.stats.bytes_out, 3 * N_TOTAL * (8 + 2 * 4));
    cr_expect_eq(r.stats.nan_values, 0);
    cr_expect_eq(r.stats.overflow_values, 0);
    run_free(&r);

    /* fresh loader: all zero before the first batch */
    hfeed_loader *l = open_cfg(&c);
    hfeed_stats s;
    cr_assert_eq(hfeed_loader_get_stats(l, &s), HFEED_OK);
    cr_expect_eq(s.batches, 0);
    cr_expect_eq(s.samples, 0);
    cr_expect_eq(s.bytes_out, 0);
    cr_assert_eq(hfeed_loader_get_stats(NULL, &s), HFEED_E_INVALID_ARG);
    cr_assert_eq(hfeed_loader_get_stats(l, NULL), HFEED_E_INVALID_ARG);
    cr_assert_eq(hfeed_loader_close(l), HFEED_OK);
}

Test(order, drop_last_drops_the_partial_batch)
{
    for (size_t m = 0; m < 3; m++) {
        struct cfg c = cfg_default(modes[m]);
        c.drop_last = true;
        c.epochs = 2;
        struct run r;
        collect(&c, &r);
        const uint64_t nb = N_TOTAL / BATCH; /* 12 full batches, 7 samples dropped */
        cr_expect_eq(r.info.batches_per_epoch, nb);
        cr_expect_eq(r.info.samples_per_epoch, nb * BATCH);
        cr_expect_eq(r.info.dropped_per_epoch, N_TOTAL - nb * BATCH, "dropped_per_epoch %llu",
                     (unsigned long long)r.info.dropped_per_epoch);
        cr_assert_eq(r.nbatches, 2 * nb);
        for (size_t b = 0; b < r.nbatches; b++) {
            cr_assert_eq(r.count[b], BATCH, "%s: batch %zu has %zu samples", modes[m], b,
                         r.count[b]);
        }
        for (uint64_t e = 0; e < 2; e++) {
            size_t n;
            const uint64_t *p = epoch_indices(&r, e, &n);
            unsigned char seen[N_TOTAL] = {0};
            for (size_t i = 0; i < n; i++) {
                cr_assert_eq(seen[p[i]], 0);
                seen[p[i]] = 1;
            }
            if (m == 0) {
                cr_assert(is_identity(p, n), "none + drop_last: not the first %zu samples", n);
            }
        }
        run_free(&r);
    }
}

Test(order, batch_larger_than_the_epoch_gives_one_short_batch)
{
    struct cfg c = cfg_default("global");
    c.batch_size = 256;
    c.epochs = 2;
    struct run r;
    collect(&c, &r);
    cr_assert_eq(r.info.batches_per_epoch, 1);
    cr_assert_eq(r.nbatches, 2);
    cr_assert_eq(r.count[0], N_TOTAL);
    size_t n;
    assert_permutation(epoch_indices(&r, 1, &n), N_TOTAL, "one batch");
    run_free(&r);
}

Test(order, end_after_the_last_epoch_stays_end)
{
    struct cfg c = cfg_default("chunk");
    c.epochs = 3;
    hfeed_loader *l = open_cfg(&c);
    struct run r;
    memset(&r, 0, sizeof r);
    drain(l, &r); /* also checks three more END */
    cr_assert_eq(r.nbatches, 3 * ((N_TOTAL + BATCH - 1) / BATCH));
    for (uint64_t e = 0; e < 3; e++) {
        size_t n;
        const uint64_t *p = epoch_indices(&r, e, &n);
        assert_permutation(p, n, "epoch");
    }
    hfeed_stats s;
    cr_assert_eq(hfeed_loader_get_stats(l, &s), HFEED_OK);
    cr_expect_eq(s.batches, r.nbatches, "END calls must not count as batches");
    run_free(&r);
    cr_assert_eq(hfeed_loader_close(l), HFEED_OK);
}
