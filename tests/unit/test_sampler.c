/* Unit tests of loader/sampler: coverage of each epoch, sharding (pad and drop), batching,
 * determinism, chunk windows, shuffle uniformity, resume, parameter checks and OOM paths.
 *
 * The reference for sharding is the epoch order itself, read through a world-1 sampler with one
 * batch of N; the tests then re-derive every rank's batches from that order with the header's
 * formulas, independently of sampler.c's arithmetic. */
#include <criterion/criterion.h>

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "sampler.h"

static const enum hfeed__shuffle all_modes[] = {HFEED__SHUFFLE_NONE, HFEED__SHUFFLE_GLOBAL,
                                                HFEED__SHUFFLE_CHUNK};

/* Blocks of 10 rows with a short last one: fits any N > 90 (the last block is N - 90 long). */
static const uint64_t tens[] = {0, 10, 20, 30, 40, 50, 60, 70, 80, 90};
#define NTENS (sizeof tens / sizeof tens[0])

/* Blocks of very different sizes, for N = 97. */
static const uint64_t uneven[] = {0, 5, 17, 20, 40, 41, 60, 90};
#define NUNEVEN (sizeof uneven / sizeof uneven[0])

static struct hfeed__sampler_params params(uint64_t total, enum hfeed__shuffle mode, uint64_t batch)
{
    struct hfeed__sampler_params p;
    memset(&p, 0, sizeof p);
    p.total = total;
    p.mode = mode;
    p.seed = 42;
    p.world_size = 1;
    p.pad = true;
    p.batch_size = batch;
    if (mode == HFEED__SHUFFLE_CHUNK) {
        /* N > 90 gets the blocks of ten; a smaller N the uneven blocks that start below it. */
        p.block_starts = total > 90 ? tens : uneven;
        p.nblocks = total > 90 ? NTENS : 0;
        while (total <= 90 && p.nblocks < NUNEVEN && uneven[p.nblocks] < total)
            p.nblocks++;
        p.window = 2;
    }
    return p;
}

static struct hfeed__sampler *make(const struct hfeed__sampler_params *p)
{
    struct hfeed__err err = {0};
    struct hfeed__sampler *s = NULL;
    const hfeed_status st = hfeed__sampler_create(p, &s, &err);
    cr_assert_eq(st, HFEED_OK, "create: %s", err.msg);
    cr_assert_not_null(s);
    return s;
}

/* Every delivered index of the current epoch, batches concatenated; checks each batch's size. */
static uint64_t *walk(const struct hfeed__sampler *s, uint64_t batch_size, uint64_t *count)
{
    const uint64_t nb = hfeed__sampler_batches_per_epoch(s);
    const uint64_t m = hfeed__sampler_samples_per_epoch(s);
    cr_assert_eq(nb, (m + batch_size - 1) / batch_size);
    uint64_t *all = malloc((size_t)(m + batch_size) * sizeof *all);
    cr_assert_not_null(all);
    uint64_t off = 0;
    for (uint64_t k = 0; k < nb; k++) {
        const size_t got = hfeed__sampler_batch(s, k, all + off);
        const uint64_t want = k + 1 < nb ? batch_size : m - k * batch_size;
        cr_assert_eq(got, want, "batch %" PRIu64 ": %zu samples, expected %" PRIu64, k, got, want);
        off += got;
    }
    cr_assert_eq(off, m);
    *count = off;
    return all;
}

/* The epoch order of p's (seed, epoch): one world-1 batch holding all N samples. */
static uint64_t *epoch_order(const struct hfeed__sampler_params *p, uint64_t epoch)
{
    struct hfeed__sampler_params q = *p;
    q.rank = 0;
    q.world_size = 1;
    q.batch_size = p->total;
    q.drop_last = false;
    struct hfeed__sampler *s = make(&q);
    hfeed__sampler_set_epoch(s, epoch);
    uint64_t n = 0;
    uint64_t *order = walk(s, q.batch_size, &n);
    cr_assert_eq(n, p->total);
    hfeed__sampler_destroy(s);
    return order;
}

/* a[0..n) are distinct samples below universe. */
static void assert_distinct(const uint64_t *a, uint64_t n, uint64_t universe)
{
    unsigned char *seen = calloc((size_t)universe, 1);
    cr_assert_not_null(seen);
    for (uint64_t i = 0; i < n; i++) {
        cr_assert_lt(a[i], universe);
        cr_assert_eq(seen[a[i]], 0, "sample %" PRIu64 " delivered twice", a[i]);
        seen[a[i]] = 1;
    }
    free(seen);
}

static void assert_permutation(const uint64_t *a, uint64_t n)
{
    assert_distinct(a, n, n);
}

static bool same(const uint64_t *a, const uint64_t *b, uint64_t n)
{
    return memcmp(a, b, (size_t)n * sizeof *a) == 0;
}

Test(sampler, every_sample_once_per_epoch_in_each_mode)
{
    const uint64_t sizes[][2] = {{100, 10}, {103, 10}, {97, 7}, {91, 1}, {95, 200}};
    for (size_t m = 0; m < 3; m++) {
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            struct hfeed__sampler_params p = params(sizes[i][0], all_modes[m], sizes[i][1]);
            struct hfeed__sampler *s = make(&p);
            for (uint64_t e = 0; e < 3; e++) {
                hfeed__sampler_set_epoch(s, e);
                uint64_t n = 0;
                uint64_t *all = walk(s, p.batch_size, &n);
                cr_assert_eq(n, p.total);
                assert_permutation(all, n);
                free(all);
            }
            cr_assert_eq(hfeed__sampler_padded_per_epoch(s), 0);
            cr_assert_eq(hfeed__sampler_dropped_per_epoch(s), 0);
            hfeed__sampler_destroy(s);
        }
    }
}

Test(sampler, drop_last_drops_only_the_partial_batch)
{
    for (size_t m = 0; m < 3; m++) {
        struct hfeed__sampler_params p = params(103, all_modes[m], 10);
        p.drop_last = true;
        struct hfeed__sampler *s = make(&p);
        cr_assert_eq(hfeed__sampler_batches_per_epoch(s), 10);
        cr_assert_eq(hfeed__sampler_samples_per_epoch(s), 100);
        cr_assert_eq(hfeed__sampler_dropped_per_epoch(s), 3);
        uint64_t n = 0;
        uint64_t *all = walk(s, 10, &n);
        assert_distinct(all, n, 103);
        uint64_t *order = epoch_order(&p, 0);
        cr_assert(same(all, order, 100), "the first 100 of the order are delivered");
        free(order);
        free(all);
        hfeed__sampler_destroy(s);
    }
}

Test(sampler, none_is_the_identity_for_any_seed_and_epoch)
{
    struct hfeed__sampler_params p = params(100, HFEED__SHUFFLE_NONE, 3);
    p.seed = 12345;
    struct hfeed__sampler *s = make(&p);
    hfeed__sampler_set_epoch(s, 7);
    uint64_t n = 0;
    uint64_t *all = walk(s, 3, &n);
    cr_assert_eq(n, 100);
    for (uint64_t i = 0; i < n; i++)
        cr_assert_eq(all[i], i);
    cr_assert_lt(hfeed__sampler_memory(s), 100 * sizeof(uint64_t), "none keeps no order");
    free(all);
    hfeed__sampler_destroy(s);
}

Test(sampler, memory_counts_the_order_and_blocks)
{
    struct hfeed__sampler_params p = params(1000, HFEED__SHUFFLE_GLOBAL, 8);
    struct hfeed__sampler *s = make(&p);
    cr_assert_geq(hfeed__sampler_memory(s), 8000);
    cr_assert_lt(hfeed__sampler_memory(s), 9000);
    hfeed__sampler_destroy(s);
    p = params(100, HFEED__SHUFFLE_CHUNK, 8);
    s = make(&p);
    cr_assert_geq(hfeed__sampler_memory(s), 800 + (2 * NTENS + 1) * 8);
    hfeed__sampler_destroy(s);
}

/* Multiplicity of each sample over all ranks, and the checks common to pad and drop. */
static void shard_counts(const struct hfeed__sampler_params *base, unsigned world, uint64_t *mult,
                         uint64_t *padded, uint64_t *dropped)
{
    const uint64_t n_all = base->total;
    uint64_t *order = epoch_order(base, 1);
    const uint64_t part = base->pad ? (n_all + world - 1) / world : n_all / world;
    memset(mult, 0, (size_t)n_all * sizeof *mult);
    *padded = 0;
    *dropped = 0;
    for (unsigned r = 0; r < world; r++) {
        struct hfeed__sampler_params p = *base;
        p.rank = r;
        p.world_size = world;
        struct hfeed__sampler *s = make(&p);
        hfeed__sampler_set_epoch(s, 1);
        cr_assert_eq(hfeed__sampler_samples_per_epoch(s), part);
        uint64_t n = 0;
        uint64_t *all = walk(s, p.batch_size, &n);
        for (uint64_t i = 0; i < n; i++) {
            const uint64_t pos = r * part + i; /* the header's layout, re-derived */
            cr_assert_eq(all[i], order[pos % n_all], "rank %u position %" PRIu64, r, pos);
            mult[all[i]]++;
        }
        *padded += hfeed__sampler_padded_per_epoch(s);
        *dropped += hfeed__sampler_dropped_per_epoch(s);
        free(all);
        hfeed__sampler_destroy(s);
    }
    free(order);
}

Test(sampler, pad_shards_cover_the_epoch_with_the_expected_repeats)
{
    const uint64_t sizes[] = {1, 2, 7, 13, 101}; /* N < world wraps more than once */
    uint64_t mult[101];
    for (size_t m = 0; m < 3; m++) {
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            for (unsigned world = 1; world <= 5; world++) {
                const uint64_t n_all = sizes[i];
                struct hfeed__sampler_params p = params(n_all, all_modes[m], 3);
                uint64_t padded = 0, dropped = 0;
                shard_counts(&p, world, mult, &padded, &dropped);
                const uint64_t part = (n_all + world - 1) / world;
                cr_assert_eq(padded, world * part - n_all);
                cr_assert_eq(dropped, 0);
                uint64_t twice = 0, total = 0;
                for (uint64_t x = 0; x < n_all; x++) {
                    cr_assert_geq(mult[x], 1, "sample %" PRIu64 " never delivered", x);
                    twice += mult[x] == 2;
                    total += mult[x];
                }
                cr_assert_eq(total, world * part);
                if (n_all >= world) cr_assert_eq(twice, world * part - n_all);
            }
        }
    }
}

Test(sampler, drop_shards_are_disjoint_and_skip_the_order_tail)
{
    const uint64_t sizes[] = {7, 13, 101};
    uint64_t mult[101];
    for (size_t m = 0; m < 3; m++) {
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            for (unsigned world = 1; world <= 5; world++) {
                const uint64_t n_all = sizes[i];
                struct hfeed__sampler_params p = params(n_all, all_modes[m], 2);
                p.pad = false;
                uint64_t padded = 0, dropped = 0;
                shard_counts(&p, world, mult, &padded, &dropped);
                cr_assert_eq(padded, 0);
                cr_assert_eq(dropped, n_all % world);
                uint64_t *order = epoch_order(&p, 1);
                const uint64_t kept = n_all / world * world;
                for (uint64_t j = 0; j < n_all; j++)
                    cr_assert_eq(mult[order[j]], j < kept ? 1 : 0, "order position %" PRIu64, j);
                free(order);
            }
        }
    }
}

Test(sampler, every_rank_gets_the_same_batches)
{
    for (int pad = 0; pad <= 1; pad++) {
        for (int dl = 0; dl <= 1; dl++) {
            for (unsigned world = 1; world <= 5; world++) {
                uint64_t expect_batches = 0, expect_samples = 0;
                for (unsigned r = 0; r < world; r++) {
                    struct hfeed__sampler_params p = params(101, HFEED__SHUFFLE_GLOBAL, 4);
                    p.pad = pad;
                    p.drop_last = dl;
                    p.rank = r;
                    p.world_size = world;
                    struct hfeed__sampler *s = make(&p);
                    if (r == 0) {
                        expect_batches = hfeed__sampler_batches_per_epoch(s);
                        expect_samples = hfeed__sampler_samples_per_epoch(s);
                    }
                    cr_assert_eq(hfeed__sampler_batches_per_epoch(s), expect_batches);
                    cr_assert_eq(hfeed__sampler_samples_per_epoch(s), expect_samples);
                    uint64_t n = 0;
                    free(walk(s, 4, &n));
                    hfeed__sampler_destroy(s);
                }
            }
        }
    }
}

Test(sampler, same_seed_and_epoch_give_the_same_order)
{
    for (size_t m = 1; m < 3; m++) {
        struct hfeed__sampler_params p = params(100, all_modes[m], 100);
        struct hfeed__sampler *a = make(&p);
        struct hfeed__sampler *b = make(&p);
        hfeed__sampler_set_epoch(a, 3);
        hfeed__sampler_set_epoch(b, 1);
        hfeed__sampler_set_epoch(b, 3);
        uint64_t n = 0;
        uint64_t *x = walk(a, 100, &n);
        uint64_t *y = walk(b, 100, &n);
        cr_assert(same(x, y, 100));
        free(x);
        free(y);
        hfeed__sampler_destroy(a);
        hfeed__sampler_destroy(b);
    }
}

Test(sampler, other_epoch_or_seed_gives_another_order)
{
    for (size_t m = 1; m < 3; m++) {
        struct hfeed__sampler_params p = params(100, all_modes[m], 100);
        uint64_t *base = epoch_order(&p, 0);
        uint64_t *next = epoch_order(&p, 1);
        p.seed = 43;
        uint64_t *reseeded = epoch_order(&p, 0);
        cr_assert(!same(base, next, 100), "mode %d: epochs 0 and 1 agree", (int)all_modes[m]);
        cr_assert(!same(base, reseeded, 100), "mode %d: seeds 42, 43 agree", (int)all_modes[m]);
        free(base);
        free(next);
        free(reseeded);
    }
}

static size_t block_of(const uint64_t *starts, size_t nblocks, uint64_t x)
{
    size_t b = 0;
    while (b + 1 < nblocks && starts[b + 1] <= x)
        b++;
    return b;
}

/* Cuts the order into windows: a window closes once it has seen `window` blocks and every
 * sample of them. A sample from a block beyond the window's quota fails the test. Writes the
 * blocks of each window, in first-seen order, into seq. */
static void assert_windows(const uint64_t *order, uint64_t n_all, const uint64_t *starts,
                           size_t nblocks, unsigned window, size_t *seq)
{
    bool seen[16] = {false};
    size_t nseen = 0, nseq = 0;
    uint64_t need = 0, consumed = 0;
    for (uint64_t i = 0; i < n_all; i++) {
        const size_t b = block_of(starts, nblocks, order[i]);
        if (!seen[b]) {
            cr_assert_lt(nseen, window, "position %" PRIu64 ": block %zu outside window", i, b);
            seen[b] = true;
            nseen++;
            seq[nseq++] = b;
            need += (b + 1 < nblocks ? starts[b + 1] : n_all) - starts[b];
        }
        consumed++;
        if (consumed == need && (nseen == window || nseq == nblocks)) {
            memset(seen, 0, sizeof seen);
            nseen = 0;
            need = 0;
            consumed = 0;
        }
    }
    cr_assert_eq(consumed, 0, "the last window is incomplete");
    cr_assert_eq(nseq, nblocks);
}

Test(sampler, chunk_keeps_samples_inside_their_window)
{
    const unsigned windows[] = {1, 2, 3, 8, 20};
    for (size_t w = 0; w < sizeof windows / sizeof windows[0]; w++) {
        struct hfeed__sampler_params p = params(97, HFEED__SHUFFLE_CHUNK, 97);
        p.block_starts = uneven;
        p.nblocks = NUNEVEN;
        p.window = windows[w];
        size_t seq[NUNEVEN];
        for (uint64_t e = 0; e < 4; e++) {
            uint64_t *order = epoch_order(&p, e);
            assert_permutation(order, 97);
            assert_windows(order, 97, uneven, NUNEVEN, p.window, seq);
            free(order);
        }
    }
}

Test(sampler, chunk_block_order_changes_between_epochs)
{
    struct hfeed__sampler_params p = params(97, HFEED__SHUFFLE_CHUNK, 97);
    p.block_starts = uneven;
    p.nblocks = NUNEVEN;
    p.window = 1; /* blocks stay contiguous, so the block order is visible */
    size_t seq[3][NUNEVEN];
    for (uint64_t e = 0; e < 3; e++) {
        uint64_t *order = epoch_order(&p, e);
        assert_windows(order, 97, uneven, NUNEVEN, 1, seq[e]);
        free(order);
    }
    cr_assert(memcmp(seq[0], seq[1], sizeof seq[0]) != 0);
    cr_assert(memcmp(seq[1], seq[2], sizeof seq[0]) != 0);
    cr_assert(memcmp(seq[0], seq[2], sizeof seq[0]) != 0);
}

/* 0..23: the Lehmer code of a permutation of 0..3. */
static unsigned perm_index(const uint64_t *a)
{
    unsigned idx = 0;
    for (unsigned i = 0; i < 4; i++) {
        unsigned smaller = 0;
        for (unsigned j = i + 1; j < 4; j++)
            smaller += a[j] < a[i];
        idx = idx * (4 - i) + smaller;
    }
    return idx;
}

/* Chi-square over the 24 permutations of N = 4, varying the seed (vary_epoch = 0) or the epoch.
 * 23 degrees of freedom: P(chi2 > 60) is about 4e-5, so a fair shuffle passes with this fixed
 * set of seeds (the test is deterministic) and a biased one (e.g. j drawn from [0, n)) fails. */
static void assert_uniform(bool vary_epoch)
{
    enum { ROUNDS = 24000 };
    unsigned hist[24] = {0};
    struct hfeed__sampler_params p = params(4, HFEED__SHUFFLE_GLOBAL, 4);
    struct hfeed__sampler *s = make(&p);
    uint64_t out[4];
    for (uint64_t i = 0; i < ROUNDS; i++) {
        if (vary_epoch) {
            hfeed__sampler_set_epoch(s, i);
        } else {
            p.seed = i;
            hfeed__sampler_destroy(s);
            s = make(&p);
        }
        cr_assert_eq(hfeed__sampler_batch(s, 0, out), 4);
        hist[perm_index(out)]++;
    }
    double chi2 = 0;
    for (int k = 0; k < 24; k++) {
        const double d = hist[k] - ROUNDS / 24.0;
        chi2 += d * d / (ROUNDS / 24.0);
        cr_assert_gt(hist[k], 0, "permutation %d never drawn", k);
    }
    cr_assert_lt(chi2, 60.0, "chi-square %.1f over 23 degrees of freedom", chi2);
    hfeed__sampler_destroy(s);
}

Test(sampler, global_shuffle_is_uniform_over_seeds)
{
    assert_uniform(false);
}

Test(sampler, global_shuffle_is_uniform_over_epochs)
{
    assert_uniform(true);
}

/* Resume: batch k of any epoch, asked in any order or by a fresh sampler, is the k-th slice of
 * the rank's part of that epoch's order. */
Test(sampler, batch_k_is_the_kth_slice_of_a_full_walk)
{
    for (size_t m = 0; m < 3; m++) {
        for (unsigned r = 0; r < 3; r++) {
            struct hfeed__sampler_params p = params(101, all_modes[m], 4);
            p.rank = r;
            p.world_size = 3;
            struct hfeed__sampler *s = make(&p);
            const uint64_t part = 34, nb = hfeed__sampler_batches_per_epoch(s);
            cr_assert_eq(nb, 9);
            for (uint64_t e = 3; e-- > 0;) {
                uint64_t *order = epoch_order(&p, e);
                struct hfeed__sampler *fresh = make(&p);
                hfeed__sampler_set_epoch(fresh, e);
                hfeed__sampler_set_epoch(s, e);
                for (uint64_t k = nb; k-- > 0;) {
                    uint64_t got[4], again[4];
                    const size_t n = hfeed__sampler_batch(s, k, got);
                    cr_assert_eq(n, k + 1 < nb ? 4 : part - 4 * (nb - 1));
                    cr_assert_eq(hfeed__sampler_batch(fresh, k, again), n);
                    for (size_t j = 0; j < n; j++) {
                        cr_assert_eq(got[j], order[(r * part + k * 4 + j) % 101]);
                        cr_assert_eq(again[j], got[j]);
                    }
                }
                cr_assert_eq(hfeed__sampler_batch(s, nb, (uint64_t[4]){0}), 0);
                hfeed__sampler_destroy(fresh);
                free(order);
            }
            hfeed__sampler_destroy(s);
        }
    }
}

static void expect_invalid(const struct hfeed__sampler_params *p, const char *why)
{
    struct hfeed__err err = {0};
    struct hfeed__sampler *s = (struct hfeed__sampler *)&err; /* must be reset to NULL */
    cr_expect_eq(hfeed__sampler_create(p, &s, &err), HFEED_E_INVALID_ARG, "%s", why);
    cr_expect_null(s, "%s", why);
    cr_expect_eq(err.code, HFEED_E_INVALID_ARG, "%s", why);
    cr_expect_neq(err.msg[0], '\0', "%s", why);
}

/* Expects create to refuse `ok` after `change`; the change's text names the case. */
#define EXPECT_INVALID(change)                                                                     \
    do {                                                                                           \
        struct hfeed__sampler_params p = ok;                                                       \
        change;                                                                                    \
        expect_invalid(&p, #change);                                                               \
    } while (0)

Test(sampler, invalid_params_are_refused)
{
    const struct hfeed__sampler_params ok = params(100, HFEED__SHUFFLE_CHUNK, 4);
    const uint64_t not_zero[] = {1, 10}, not_up[] = {0, 20, 20}, past[] = {0, 100};
    EXPECT_INVALID(p.total = 0);
    EXPECT_INVALID(p.world_size = 0);
    EXPECT_INVALID(p.rank = 1);
    EXPECT_INVALID(p.batch_size = 0);
    EXPECT_INVALID(p.mode = (enum hfeed__shuffle)7);
    EXPECT_INVALID(p.block_starts = NULL);
    EXPECT_INVALID(p.nblocks = 0);
    EXPECT_INVALID(p.window = 0);
    EXPECT_INVALID((p.block_starts = not_zero, p.nblocks = 2));
    EXPECT_INVALID((p.block_starts = not_up, p.nblocks = 3));
    EXPECT_INVALID((p.block_starts = past, p.nblocks = 2));
    EXPECT_INVALID((p.mode = HFEED__SHUFFLE_NONE, p.total = UINT64_MAX));
    EXPECT_INVALID((p.mode = HFEED__SHUFFLE_GLOBAL, p.total = UINT64_MAX / 4));
    struct hfeed__sampler *s = NULL;
    cr_expect_eq(hfeed__sampler_create(NULL, &s, NULL), HFEED_E_INVALID_ARG);
    cr_expect_eq(hfeed__sampler_create(&ok, NULL, NULL), HFEED_E_INVALID_ARG);
    hfeed__sampler_destroy(NULL);
}

Test(sampler, block_params_are_ignored_outside_chunk_mode)
{
    struct hfeed__sampler_params p = params(10, HFEED__SHUFFLE_GLOBAL, 4);
    p.window = 0;
    p.nblocks = 3;
    struct hfeed__sampler *s = make(&p);
    hfeed__sampler_destroy(s);
}

Test(sampler, a_rank_without_batches_is_refused_with_the_numbers)
{
    struct hfeed__sampler_params p = params(3, HFEED__SHUFFLE_NONE, 1);
    p.pad = false;
    p.world_size = 5;
    struct hfeed__err err = {0};
    struct hfeed__sampler *s = NULL;
    cr_assert_eq(hfeed__sampler_create(&p, &s, &err), HFEED_E_INVALID_ARG);
    cr_assert_null(s);
    cr_assert(strstr(err.msg, "3 samples over world_size 5") != NULL, "%s", err.msg);

    p = params(10, HFEED__SHUFFLE_GLOBAL, 8);
    p.world_size = 2;
    p.drop_last = true;
    memset(&err, 0, sizeof err);
    cr_assert_eq(hfeed__sampler_create(&p, &s, &err), HFEED_E_INVALID_ARG);
    cr_assert(strstr(err.msg, "5 samples per rank < batch_size 8") != NULL, "%s", err.msg);

    p.drop_last = false; /* the same rank may have one short batch */
    s = make(&p);
    cr_assert_eq(hfeed__sampler_batches_per_epoch(s), 1);
    hfeed__sampler_destroy(s);
}

Test(sampler, every_allocation_failure_is_reported_and_cleaned_up)
{
    for (size_t m = 0; m < 3; m++) {
        struct hfeed__sampler_params p = params(100, all_modes[m], 7);
        struct hfeed__sampler *s = NULL;
        long n = 0;
        for (;; n++) {
            struct hfeed__err err = {0};
            hfeed__alloc_fail_after(n);
            const hfeed_status st = hfeed__sampler_create(&p, &s, &err);
            if (st == HFEED_OK) break;
            cr_assert_eq(st, HFEED_E_NOMEM, "failing allocation %ld: %s", n, err.msg);
            cr_assert_null(s);
            cr_assert_neq(err.msg[0], '\0');
        }
        hfeed__alloc_fail_after(-1);
        cr_assert_eq(n, m == 0 ? 1 : m == 1 ? 2 : 4, "mode %zu: %ld allocations", m, n);
        uint64_t count = 0;
        uint64_t *all = walk(s, 7, &count);
        assert_permutation(all, count);
        free(all);
        hfeed__sampler_destroy(s);
    }
}
