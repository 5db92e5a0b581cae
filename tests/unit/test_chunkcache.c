/* Unit tests of loader/chunkcache: which entry is reused. Without foresight the least recently
 * used idle entry; with it (chunkcache.h) first the oldest entry no expected batch needs, then
 * the one needed farthest ahead; an acquire by the expecting batch ends its expectation; forget
 * drops them all; the horizon rule. Every chunk's bytes are checked against its key, so an
 * entry handed out under the wrong key would show. Single-threaded: the threaded use is the
 * loader's, under TSan in tests/stress. */
#include <criterion/criterion.h>

#include <string.h>

#include "chunkcache.h"

#define ENTRY 64 /* bytes per chunk */

/* Counts decodes per key and fills a chunk with its key. */
struct source {
    unsigned decodes[16];
    uint64_t key; /* the chunk the next decode is for */
};

static hfeed_status decode(void *ctx, unsigned char *dst, struct hfeed__err *err)
{
    (void)err;
    struct source *s = ctx;
    s->decodes[s->key]++;
    memset(dst, (int)('A' + s->key), ENTRY);
    return HFEED_OK;
}

static struct hfeed__chunkcache *make(unsigned entries, uint64_t nkeys, unsigned lag)
{
    struct hfeed__chunkcache *c = NULL;
    struct hfeed__err err = {0};
    cr_assert_eq(hfeed__chunkcache_create((size_t)entries * ENTRY, ENTRY, nkeys, lag, &c, &err),
                 HFEED_OK, "%s", err.msg);
    return c;
}

/* Batch seq uses chunk key: acquire, check its bytes, release. */
static void use(struct hfeed__chunkcache *c, struct source *s, uint64_t key, uint64_t seq)
{
    unsigned char own[ENTRY];
    const unsigned char *data = NULL;
    void *token = NULL;
    struct hfeed__err err = {0};
    s->key = key;
    cr_assert_eq(hfeed__chunkcache_acquire(c, key, seq, true, decode, s, own, &data, &token, &err),
                 HFEED_OK, "%s", err.msg);
    for (size_t i = 0; i < ENTRY; i++)
        cr_assert_eq(data[i], 'A' + key, "chunk %llu byte %zu: %c", (unsigned long long)key, i,
                     data[i]);
    hfeed__chunkcache_release(c, token, seq);
}

static void expect1(struct hfeed__chunkcache *c, uint64_t seq, uint64_t key)
{
    hfeed__chunkcache_expect(c, seq, &key, 1);
}

Test(chunkcache, lru_without_foresight)
{
    struct source s = {0};
    struct hfeed__chunkcache *c = make(2, 0, 3);
    cr_assert(!hfeed__chunkcache_foresees(c));
    use(c, &s, 0, 0);
    use(c, &s, 1, 0);
    use(c, &s, 0, 0); /* 0 is now the newer */
    use(c, &s, 2, 0); /* evicts 1 */
    use(c, &s, 0, 0);
    cr_assert_eq(s.decodes[0], 1);
    use(c, &s, 1, 0);
    cr_assert_eq(s.decodes[1], 2, "LRU kept the older chunk");
    hfeed__chunkcache_destroy(c);
}

Test(chunkcache, keeps_what_an_expected_batch_needs)
{
    struct source s = {0};
    struct hfeed__chunkcache *c = make(2, 10, 3);
    cr_assert(hfeed__chunkcache_foresees(c));
    expect1(c, 1, 0); /* batch 1 will need chunk 0 */
    use(c, &s, 0, 0);
    use(c, &s, 1, 0);
    use(c, &s, 2, 0); /* LRU would evict 0, the oldest; foresight evicts 1 */
    use(c, &s, 0, 1);
    cr_assert_eq(s.decodes[0], 1, "the chunk batch 1 expected was evicted");
    use(c, &s, 1, 1);
    cr_assert_eq(s.decodes[1], 2);
    hfeed__chunkcache_destroy(c);
}

Test(chunkcache, evicts_the_chunk_needed_farthest_ahead)
{
    struct source s = {0};
    struct hfeed__chunkcache *c = make(3, 10, 3);
    expect1(c, 1, 0);
    expect1(c, 3, 1);
    expect1(c, 2, 2);
    use(c, &s, 0, 0);
    use(c, &s, 1, 0);
    use(c, &s, 2, 0);
    use(c, &s, 3, 0); /* full: 1 (next use at 3) goes, neither the oldest nor the newest */
    use(c, &s, 0, 1);
    use(c, &s, 2, 2);
    cr_assert_eq(s.decodes[0] + s.decodes[2], 2, "a chunk needed sooner was evicted");
    use(c, &s, 1, 3);
    cr_assert_eq(s.decodes[1], 2, "the chunk needed farthest ahead stayed");
    hfeed__chunkcache_destroy(c);
}

Test(chunkcache, an_expectation_moves_an_idle_chunk)
{
    struct source s = {0};
    struct hfeed__chunkcache *c = make(2, 10, 3);
    use(c, &s, 0, 0);
    use(c, &s, 1, 0); /* both idle and unneeded; 0 the oldest */
    expect1(c, 2, 0); /* now 0 is needed */
    use(c, &s, 2, 1); /* evicts 1 */
    use(c, &s, 0, 2);
    cr_assert_eq(s.decodes[0], 1, "the idle chunk that became needed was evicted");
    hfeed__chunkcache_destroy(c);
}

Test(chunkcache, using_a_chunk_ends_its_expectation)
{
    struct source s = {0};
    struct hfeed__chunkcache *c = make(2, 10, 3);
    expect1(c, 1, 0);
    expect1(c, 2, 1);
    use(c, &s, 1, 1);
    use(c, &s, 0, 1); /* batch 1 has used it: no longer needed */
    use(c, &s, 2, 1); /* evicts 0 (unneeded, the newer) rather than 1 (needed by batch 2) */
    use(c, &s, 1, 2);
    cr_assert_eq(s.decodes[1], 1, "a needed chunk went before one already used");
    use(c, &s, 0, 2);
    cr_assert_eq(s.decodes[0], 2);
    hfeed__chunkcache_destroy(c);
}

Test(chunkcache, expectations_wrap_around_the_window)
{
    /* Sequence numbers past 64 reuse the mask's bits: the order must follow the window. */
    struct source s = {0};
    struct hfeed__chunkcache *c = make(2, 10, 3);
    const uint64_t base = 1000; /* 1000 % 64 = 40 */
    expect1(c, base + 30, 0);   /* bit 6 */
    expect1(c, base + 5, 1);    /* bit 45 */
    use(c, &s, 1, base);
    use(c, &s, 0, base);
    use(c, &s, 2, base); /* 0 is needed at +30, 1 at +5: 0, the newer, goes */
    use(c, &s, 1, base + 5);
    cr_assert_eq(s.decodes[1], 1, "the wrapped-around order evicted the nearer chunk");
    hfeed__chunkcache_destroy(c);
}

Test(chunkcache, the_next_use_is_the_nearest_of_several_across_the_wrap)
{
    /* A key expected by two batches on either side of the mod-64 wrap: its next use is the
     * nearer one, counted from the window's start, not the lowest bit. */
    struct source s = {0};
    struct hfeed__chunkcache *c = make(2, 10, 3);
    const uint64_t base = 1000; /* 1000 % 64 = 40 */
    expect1(c, base + 5, 0);    /* bit 45: key 0 needed soon ... */
    expect1(c, base + 30, 0);   /* ... and again at bit 6 */
    expect1(c, base + 20, 1);   /* bit 60: key 1 needed in between */
    use(c, &s, 0, base);
    use(c, &s, 1, base);
    use(c, &s, 2, base); /* key 1 (next use +20) goes, not key 0 (+5) */
    use(c, &s, 0, base + 5);
    cr_assert_eq(s.decodes[0], 1, "the key needed soonest was evicted");
    hfeed__chunkcache_destroy(c);
}

Test(chunkcache, an_older_pending_batch_counts_as_near)
{
    /* Another worker's batch older than the caller is still pending: with the window starting
     * lag batches back it is near, not 64 batches ahead. */
    struct source s = {0};
    struct hfeed__chunkcache *c = make(2, 10, 8);
    expect1(c, 5, 0);
    expect1(c, 12, 1);
    use(c, &s, 0, 3);
    use(c, &s, 1, 3);
    use(c, &s, 2, 10); /* a worker on batch 10 while batch 5 is pending: key 1 (+12) goes */
    use(c, &s, 0, 5);
    cr_assert_eq(s.decodes[0], 1, "the chunk of the older pending batch was evicted");
    hfeed__chunkcache_destroy(c);
}

Test(chunkcache, forget_clears_what_a_later_release_would_read)
{
    /* forget must drop the expectations themselves, not only move the idle entries: an entry
     * used again after forget is parked by its (cleared) expectations. */
    struct source s = {0};
    struct hfeed__chunkcache *c = make(2, 10, 3);
    expect1(c, 1, 0);
    use(c, &s, 0, 0);
    hfeed__chunkcache_forget(c);
    use(c, &s, 0, 0); /* parked again: unneeded, the older */
    use(c, &s, 1, 0);
    use(c, &s, 2, 0); /* 0 goes */
    use(c, &s, 1, 1);
    cr_assert_eq(s.decodes[1], 1, "an expectation survived forget and kept chunk 0");
    hfeed__chunkcache_destroy(c);
}

Test(chunkcache, forget_drops_expectations)
{
    struct source s = {0};
    struct hfeed__chunkcache *c = make(2, 10, 3);
    expect1(c, 1, 0);
    use(c, &s, 0, 0);
    hfeed__chunkcache_forget(c);
    use(c, &s, 1, 0);
    use(c, &s, 2, 0); /* 0 is no longer needed and the older: it goes */
    use(c, &s, 1, 1);
    cr_assert_eq(s.decodes[1], 1);
    use(c, &s, 0, 1);
    cr_assert_eq(s.decodes[0], 2, "an expectation survived forget");
    hfeed__chunkcache_destroy(c);
}

Test(chunkcache, foresight_only_where_it_pays)
{
    struct hfeed__chunkcache *c = make(4, 4, 3); /* every key fits: nothing is ever evicted */
    cr_assert(!hfeed__chunkcache_foresees(c));
    hfeed__chunkcache_destroy(c);
    c = make(4, 5, HFEED__CHUNKCACHE_MAX_LAG + 1); /* a lag the mask cannot cover */
    cr_assert(!hfeed__chunkcache_foresees(c));
    hfeed__chunkcache_destroy(c);
    c = make(4, 5, HFEED__CHUNKCACHE_MAX_LAG);
    cr_assert(hfeed__chunkcache_foresees(c));
    cr_assert_eq(hfeed__chunkcache_memory(c), 4 * ENTRY + 5 * sizeof(uint64_t));
    hfeed__chunkcache_destroy(c);
}

Test(chunkcache, horizon_fits_the_lag)
{
    cr_assert_eq(hfeed__chunkcache_horizon(1), HFEED__CHUNKCACHE_HORIZON);
    cr_assert_eq(hfeed__chunkcache_horizon(4), HFEED__CHUNKCACHE_HORIZON);
    for (unsigned slots = 1; slots <= 40; slots++) {
        const unsigned h = hfeed__chunkcache_horizon(slots);
        if (h == 0) {
            cr_assert_geq(slots - 1, HFEED__CHUNKCACHE_MAX_LAG, "slots %u: no horizon", slots);
            continue;
        }
        /* 2 * lag < 64 keeps every pending batch within the 64-bit window (chunkcache.h). */
        cr_assert_leq(slots - 1 + h, HFEED__CHUNKCACHE_MAX_LAG, "slots %u, horizon %u", slots, h);
        cr_assert_lt(2 * HFEED__CHUNKCACHE_MAX_LAG, 64u);
    }
    cr_assert_eq(hfeed__chunkcache_horizon(31), 1u);
    cr_assert_eq(hfeed__chunkcache_horizon(32), 0u);
}

/* "cache_mb": "auto" for shuffle none and chunk: the chunks the workers use at once plus, for
 * chunk shuffle, two windows of blocks; per field, in its own entry size, capped at its chunks.
 * Each row states the arithmetic it expects. */
Test(chunkcache, order_bytes_hold_the_workers_chunks_and_two_windows)
{
    static const struct {
        struct hfeed__cache_need f[2];
        size_t n;
        unsigned workers;
        uint64_t batch_rows;
        unsigned window;
        uint64_t block_rows;
        uint64_t want;
    } rows[] = {
        /* The demo, none: 2 workers x span(256 rows of 256-row chunks) = 2 x 2 entries. */
        {{{(size_t)2 << 20, 256, 1, 256}}, 1, 2, 256, 0, 256, 4 * ((uint64_t)2 << 20)},
        /* The demo, chunk with window 4: 2 x 2 + 2 x 4 x 2 = 20 entries; labels as many of
         * 2 KiB. */
        {{{(size_t)2 << 20, 256, 1, 256}, {2048, 256, 1, 256}},
         2,
         2,
         256,
         4,
         256,
         20 * ((uint64_t)2 << 20) + 20 * 2048},
        /* Capped at the field's chunks. */
        {{{(size_t)2 << 20, 256, 1, 8}}, 1, 2, 256, 4, 256, 8 * ((uint64_t)2 << 20)},
        /* Small chunks: a batch of 256 rows spans ceil(255 / 16) + 1 = 17 chunks of 16 rows. */
        {{{1000, 16, 1, 1u << 20}}, 1, 1, 256, 0, 16, 17 * 1000},
        /* One row: one chunk each. */
        {{{1000, 16, 1, 1u << 20}}, 1, 3, 1, 0, 16, 3 * 1000},
        /* A sample split over 4 chunks (chunks_across): 4 times the entries. */
        {{{1000, 64, 4, 1u << 20}}, 1, 2, 64, 1, 64, 4 * (2 * 2 + 2 * 1 * 2) * 1000},
        /* Window 8, blocks of 512 rows over chunks of 256: 2 x 8 x span(512) = 2 x 8 x 3. */
        {{{1000, 256, 1, 1u << 20}}, 1, 4, 100, 8, 512, (4 * 2 + 2 * 8 * 3) * 1000},
        /* A field that decodes nothing adds nothing. */
        {{{0, 256, 1, 100}}, 1, 2, 256, 4, 256, 0},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const uint64_t got =
            hfeed__chunkcache_order_bytes(rows[i].f, rows[i].n, rows[i].workers, rows[i].batch_rows,
                                          rows[i].window, rows[i].block_rows);
        cr_expect_eq(got, rows[i].want, "row %zu: %llu bytes, wanted %llu", i,
                     (unsigned long long)got, (unsigned long long)rows[i].want);
    }
}
