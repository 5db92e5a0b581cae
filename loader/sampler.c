/* sampler: the order of an epoch and each rank's batches (the contract is in sampler.h).
 *
 * DESIGN
 *
 * Randomness. Every epoch's order is recomputed from (seed, epoch) alone, so there is no
 * generator state to save and resume is a matter of calling set_epoch. A stream is seeded by
 * hashing (seed, epoch, stream id) with the splitmix64 finaliser, then expanding that key into
 * the four words of a xoshiro256** state with splitmix64 (the seeding its authors recommend: it
 * never yields the all-zero state). The chunk mode uses two streams, one for the block order and
 * one for the samples inside windows, so changing the window does not change the block order.
 * Bounded draws use Lemire's multiply-shift with rejection, which is exactly unbiased.
 *
 * Order. "global" is Fisher-Yates over 0..N-1. "chunk" permutes block ids, lays the blocks out
 * in that order and runs Fisher-Yates over each run of `window` consecutive blocks; a sample
 * therefore stays inside its window, so a chunk is needed only by the batches of one window.
 * "none" is the identity and keeps no array: position p is sample p.
 *
 * Sharding. Rank r owns positions [r*n, r*n + m) of the epoch order, where n is the part size
 * (ceil or floor of N/world) and m = n, or n rounded down to whole batches with drop_last.
 * A position p >= N (padding) means order[p mod N]. Everything here is computed once at create;
 * a batch is then a direct index computation, which is what makes seek O(batch_size).
 *
 * Invariants: N <= UINT64_MAX - world (so world*n cannot overflow); for modes with an order,
 * N * 8 fits in size_t; after create the current epoch is 0. */
#include "sampler.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

/* Stream ids: which sequence of draws a shuffle uses within one (seed, epoch). */
enum { STREAM_SAMPLES = 0, STREAM_BLOCKS = 1 };

struct rng {
    uint64_t s[4];
};

struct hfeed__sampler {
    struct hfeed__sampler_params p; /* p.block_starts points at `starts` (our copy) */
    uint64_t *starts;               /* chunk: nblocks + 1 entries, the last one == total */
    uint64_t *blocks;               /* chunk: the block permutation of the current epoch */
    uint64_t *order;                /* global/chunk: the epoch order; NULL for none */
    size_t memory;                  /* bytes allocated, the struct included */
    uint64_t part;                  /* n: positions of each rank's part */
    uint64_t samples;               /* m: positions delivered (part less drop_last's cut) */
    uint64_t padded;                /* delivered positions >= N */
    uint64_t dropped;               /* this rank's share of the shard remainder + drop_last cut */
    uint64_t batches;
    uint64_t epoch;
    bool have_epoch;
};

/* ---- generator ---------------------------------------------------------------------------- */

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static uint64_t splitmix64_next(uint64_t *x)
{
    *x += UINT64_C(0x9e3779b97f4a7c15);
    return mix64(*x);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

/* Each input goes through the non-linear finaliser before the next is added, so nearby seeds,
 * epochs and streams give unrelated keys. */
static void rng_seed(struct rng *g, uint64_t seed, uint64_t epoch, uint64_t stream)
{
    uint64_t key = mix64(seed ^ UINT64_C(0x6a09e667f3bcc909));
    key = mix64(key + epoch);
    key = mix64(key ^ (stream * UINT64_C(0x9e3779b97f4a7c15)));
    for (int i = 0; i < 4; i++)
        g->s[i] = splitmix64_next(&key);
}

static uint64_t rng_next(struct rng *g)
{
    uint64_t *s = g->s;
    const uint64_t result = rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* The 128-bit product of a and b, as high and low words. */
static void mul128(uint64_t a, uint64_t b, uint64_t *hi, uint64_t *lo)
{
#if defined(__SIZEOF_INT128__)
    __extension__ typedef unsigned __int128 u128;
    const u128 m = (u128)a * b;
    *hi = (uint64_t)(m >> 64);
    *lo = (uint64_t)m;
#else
    const uint64_t al = a & 0xffffffffu, ah = a >> 32, bl = b & 0xffffffffu, bh = b >> 32;
    const uint64_t ll = al * bl, lh = al * bh, hl = ah * bl, hh = ah * bh;
    const uint64_t mid = (ll >> 32) + (lh & 0xffffffffu) + (hl & 0xffffffffu);
    *hi = hh + (lh >> 32) + (hl >> 32) + (mid >> 32);
    *lo = (mid << 32) | (ll & 0xffffffffu);
#endif
}

/* A uniform draw in [0, bound), bound >= 1 (Lemire 2019). The product's high word is the draw;
 * rejecting low words below 2^64 mod bound removes the bias exactly. */
static uint64_t rng_below(struct rng *g, uint64_t bound)
{
    uint64_t hi, lo;
    mul128(rng_next(g), bound, &hi, &lo);
    if (lo < bound) {
        const uint64_t threshold = (0 - bound) % bound;
        while (lo < threshold)
            mul128(rng_next(g), bound, &hi, &lo);
    }
    return hi;
}

/* Fisher-Yates: every permutation of a[0..len) equally likely. */
static void shuffle(struct rng *g, uint64_t *a, size_t len)
{
    for (size_t i = len; i > 1; i--) {
        const size_t j = (size_t)rng_below(g, (uint64_t)i);
        const uint64_t t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}

/* ---- epoch order -------------------------------------------------------------------------- */

static void order_global(struct hfeed__sampler *s)
{
    const size_t n = (size_t)s->p.total;
    for (size_t i = 0; i < n; i++)
        s->order[i] = (uint64_t)i;
    struct rng g;
    rng_seed(&g, s->p.seed, s->epoch, STREAM_SAMPLES);
    shuffle(&g, s->order, n);
}

static void order_chunk(struct hfeed__sampler *s)
{
    const size_t nb = s->p.nblocks;
    struct rng g;
    for (size_t i = 0; i < nb; i++)
        s->blocks[i] = (uint64_t)i;
    rng_seed(&g, s->p.seed, s->epoch, STREAM_BLOCKS);
    shuffle(&g, s->blocks, nb);

    rng_seed(&g, s->p.seed, s->epoch, STREAM_SAMPLES);
    size_t pos = 0;
    for (size_t w = 0; w < nb;) {
        const size_t wend = nb - w > s->p.window ? w + s->p.window : nb;
        const size_t wstart = pos;
        for (; w < wend; w++) {
            const size_t b = (size_t)s->blocks[w];
            for (uint64_t x = s->starts[b]; x < s->starts[b + 1]; x++)
                s->order[pos++] = x;
        }
        shuffle(&g, s->order + wstart, pos - wstart);
    }
}

void hfeed__sampler_set_epoch(struct hfeed__sampler *s, uint64_t epoch)
{
    if (s->have_epoch && s->epoch == epoch) return;
    s->epoch = epoch;
    s->have_epoch = true;
    if (s->p.mode == HFEED__SHUFFLE_GLOBAL) order_global(s);
    if (s->p.mode == HFEED__SHUFFLE_CHUNK) order_chunk(s);
}

/* ---- create ------------------------------------------------------------------------------- */

static hfeed_status check_blocks(const struct hfeed__sampler_params *p, struct hfeed__err *err)
{
    if (p->block_starts == NULL || p->nblocks == 0)
        return HFEED__FAIL(err, HFEED_E_INVALID_ARG, "sampler: chunk shuffle needs blocks");
    if (p->window == 0)
        return HFEED__FAIL(err, HFEED_E_INVALID_ARG, "sampler: chunk shuffle window is 0");
    if (p->block_starts[0] != 0)
        return HFEED__FAIL(err, HFEED_E_INVALID_ARG,
                           "sampler: block 0 starts at %" PRIu64 ", not 0", p->block_starts[0]);
    for (size_t i = 1; i < p->nblocks; i++) {
        if (p->block_starts[i] <= p->block_starts[i - 1])
            return HFEED__FAIL(err, HFEED_E_INVALID_ARG,
                               "sampler: block starts not ascending: [%zu] = %" PRIu64
                               " after %" PRIu64,
                               i, p->block_starts[i], p->block_starts[i - 1]);
    }
    if (p->block_starts[p->nblocks - 1] >= p->total)
        return HFEED__FAIL(err, HFEED_E_INVALID_ARG,
                           "sampler: last block starts at %" PRIu64 ", past %" PRIu64 " samples",
                           p->block_starts[p->nblocks - 1], p->total);
    if (p->nblocks > SIZE_MAX / sizeof(uint64_t) - 1)
        return HFEED__FAIL(err, HFEED_E_INVALID_ARG, "sampler: %zu blocks", p->nblocks);
    return HFEED_OK;
}

static hfeed_status check_params(const struct hfeed__sampler_params *p, struct hfeed__err *err)
{
    if (p->total == 0) return HFEED__FAIL(err, HFEED_E_INVALID_ARG, "sampler: 0 samples");
    if (p->world_size == 0)
        return HFEED__FAIL(err, HFEED_E_INVALID_ARG, "sampler: world_size is 0");
    if (p->rank >= p->world_size)
        return HFEED__FAIL(err, HFEED_E_INVALID_ARG, "sampler: rank %u >= world_size %u", p->rank,
                           p->world_size);
    if (p->batch_size == 0)
        return HFEED__FAIL(err, HFEED_E_INVALID_ARG, "sampler: batch_size is 0");
    if (p->total > UINT64_MAX - p->world_size)
        return HFEED__FAIL(err, HFEED_E_INVALID_ARG,
                           "sampler: %" PRIu64 " samples overflow the shard arithmetic", p->total);
    switch (p->mode) {
    case HFEED__SHUFFLE_NONE:
        return HFEED_OK;
    case HFEED__SHUFFLE_GLOBAL:
    case HFEED__SHUFFLE_CHUNK:
        if (p->total > SIZE_MAX / sizeof(uint64_t))
            return HFEED__FAIL(err, HFEED_E_INVALID_ARG,
                               "sampler: %" PRIu64 " samples is too many to shuffle", p->total);
        return p->mode == HFEED__SHUFFLE_CHUNK ? check_blocks(p, err) : HFEED_OK;
    }
    return HFEED__FAIL(err, HFEED_E_INVALID_ARG, "sampler: unknown shuffle mode %d", (int)p->mode);
}

/* Fills the part/batch arithmetic of the header comment into s, or refuses a rank that would
 * receive no batch (the loader could not deliver anything, and ranks must agree on counts). */
static hfeed_status plan_shard(struct hfeed__sampler *s, struct hfeed__err *err)
{
    const uint64_t n_all = s->p.total, world = s->p.world_size, bs = s->p.batch_size;
    s->part = n_all / world + (s->p.pad && n_all % world != 0 ? 1 : 0);
    if (s->part == 0)
        return HFEED__FAIL(err, HFEED_E_INVALID_ARG,
                           "sampler: %" PRIu64 " samples over world_size %u with remainder drop "
                           "leaves each rank 0 samples",
                           n_all, s->p.world_size);
    const uint64_t full = s->part / bs, rest = s->part % bs;
    s->batches = full + (rest != 0 && !s->p.drop_last ? 1 : 0);
    if (s->batches == 0)
        return HFEED__FAIL(err, HFEED_E_INVALID_ARG,
                           "sampler: %" PRIu64 " samples per rank < batch_size %" PRIu64
                           " with drop_last leaves each rank 0 batches",
                           s->part, bs);
    s->samples = s->p.drop_last ? full * bs : s->part;
    const uint64_t end = (uint64_t)s->p.rank * s->part + s->samples;
    s->padded = end <= n_all ? 0 : (end - n_all < s->samples ? end - n_all : s->samples);
    const bool takes_remainder = !s->p.pad && s->p.rank < n_all % world;
    s->dropped = (takes_remainder ? 1 : 0) + (s->part - s->samples);
    return HFEED_OK;
}

static hfeed_status alloc_arrays(struct hfeed__sampler *s, const uint64_t *block_starts,
                                 struct hfeed__err *err)
{
    if (s->p.mode == HFEED__SHUFFLE_CHUNK) {
        const size_t nb = s->p.nblocks;
        s->starts = hfeed__alloc((nb + 1) * sizeof *s->starts);
        s->blocks = hfeed__alloc(nb * sizeof *s->blocks);
        if (s->starts == NULL || s->blocks == NULL) goto nomem;
        s->memory += (2 * nb + 1) * sizeof(uint64_t);
        memcpy(s->starts, block_starts, nb * sizeof *s->starts);
        s->starts[nb] = s->p.total;
        s->p.block_starts = s->starts;
    }
    if (s->p.mode != HFEED__SHUFFLE_NONE) {
        const size_t n = (size_t)s->p.total;
        s->order = hfeed__alloc(n * sizeof *s->order);
        if (s->order == NULL) goto nomem;
        s->memory += n * sizeof *s->order;
    }
    return HFEED_OK;
nomem:
    return HFEED__FAIL(err, HFEED_E_NOMEM, "sampler: out of memory for %" PRIu64 " samples",
                       s->p.total);
}

hfeed_status hfeed__sampler_create(const struct hfeed__sampler_params *p,
                                   struct hfeed__sampler **out, struct hfeed__err *err)
{
    if (out == NULL) return HFEED__FAIL(err, HFEED_E_INVALID_ARG, "sampler: out is NULL");
    *out = NULL;
    if (p == NULL) return HFEED__FAIL(err, HFEED_E_INVALID_ARG, "sampler: params are NULL");
    HFEED__CHECK(check_params(p, err));

    struct hfeed__sampler *s = hfeed__calloc(1, sizeof *s);
    if (s == NULL) return HFEED__FAIL(err, HFEED_E_NOMEM, "sampler: out of memory");
    s->p = *p;
    s->p.block_starts = NULL; /* never keep the caller's pointer: it may not outlive us */
    s->memory = sizeof *s;
    hfeed_status st = plan_shard(s, err);
    if (st == HFEED_OK) st = alloc_arrays(s, p->block_starts, err);
    if (st != HFEED_OK) {
        hfeed__sampler_destroy(s);
        return st;
    }
    hfeed__sampler_set_epoch(s, 0);
    *out = s;
    return HFEED_OK;
}

void hfeed__sampler_destroy(struct hfeed__sampler *s)
{
    if (s == NULL) return;
    hfeed__free(s->order);
    hfeed__free(s->blocks);
    hfeed__free(s->starts);
    hfeed__free(s);
}

/* ---- queries ------------------------------------------------------------------------------ */

uint64_t hfeed__sampler_samples_per_epoch(const struct hfeed__sampler *s)
{
    return s->samples;
}

uint64_t hfeed__sampler_padded_per_epoch(const struct hfeed__sampler *s)
{
    return s->padded;
}

uint64_t hfeed__sampler_dropped_per_epoch(const struct hfeed__sampler *s)
{
    return s->dropped;
}

uint64_t hfeed__sampler_batches_per_epoch(const struct hfeed__sampler *s)
{
    return s->batches;
}

size_t hfeed__sampler_memory(const struct hfeed__sampler *s)
{
    return s->memory;
}

size_t hfeed__sampler_batch(const struct hfeed__sampler *s, uint64_t batch, uint64_t *out)
{
    if (batch >= s->batches) return 0;
    const uint64_t bs = s->p.batch_size, n_all = s->p.total;
    const uint64_t first = batch * bs;
    const uint64_t count = s->samples - first < bs ? s->samples - first : bs;
    uint64_t pos = (uint64_t)s->p.rank * s->part + first;
    for (size_t j = 0; j < (size_t)count; j++, pos++) {
        const uint64_t at = pos < n_all ? pos : pos % n_all; /* padding wraps to the start */
        out[j] = s->order != NULL ? s->order[at] : at;
    }
    return (size_t)count;
}
