/* costmodel: the read-amplification model of h5feed inspect (design in costmodel.h). */
#include "costmodel.h"

#include <math.h>
#include <string.h>

#include "chunkcache.h"

/* One field's decoded-chunk cache on the direct path (chunkcache.h: one cache per field, the
 * budget split in proportion to the bytes each field's chunks decode to). */
struct field_cache {
    double pool;          /* chunk rows of the field's filtered direct sources: its cache's */
    uint64_t entry_bytes; /* their largest decoded chunk row: one entry */
    double window_need;   /* chunk rows one chunk-shuffle window needs (the most of any file) */
    double entries;       /* entries the field's cache gets */
};

uint64_t hfeed__cost_group_bytes(const struct hfeed__cost_source *s)
{
    return s->group_chunks * s->chunk_bytes;
}

static uint64_t gcd_u64(uint64_t a, uint64_t b)
{
    while (b != 0) {
        const uint64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* Expected distinct bins hit by `draws` uniform draws over `bins` bins. */
static double touched(double bins, double draws)
{
    if (bins <= 0.0 || draws <= 0.0) return 0.0;
    if (bins <= 1.0) return 1.0;
    return bins * -expm1(draws * log1p(-1.0 / bins));
}

static double groups_of(const struct hfeed__cost_source *s)
{
    return s->group_rows > 0 ? ceil((double)s->rows / (double)s->group_rows) : 0.0;
}

/* Chunks of s that one shuffle block of s->block_rows rows spans on average. */
static double chunks_per_block(const struct hfeed__cost_source *s)
{
    const double b = (double)s->block_rows, c = (double)s->group_rows;
    if (s->block_rows % s->group_rows == 0) return b / c;
    return (b - 1.0) / c + 1.0;
}

/* Chunk rows of s that one window of `window` blocks needs. */
static double window_groups(const struct hfeed__cost_source *s, unsigned window)
{
    const double g = (double)window * chunks_per_block(s);
    return g < groups_of(s) ? g : groups_of(s);
}

/* Field k's cache; total_bytes is what every field's chunks decode to (0: not known yet,
 * entries left 0). */
static void field_cache(const struct hfeed__cost_params *p, size_t k, double total_bytes,
                        struct field_cache *fc)
{
    memset(fc, 0, sizeof *fc);
    for (size_t fi = 0; fi < p->nfiles; fi++) {
        const struct hfeed__cost_source *s = &p->src[k * p->nfiles + fi];
        if (!s->filtered || !s->direct || s->rows == 0) continue;
        const uint64_t g = hfeed__cost_group_bytes(s);
        if (g > fc->entry_bytes) fc->entry_bytes = g;
        fc->pool += groups_of(s);
        fc->window_need = fmax(fc->window_need, window_groups(s, p->window));
    }
    if (total_bytes > 0.0)
        fc->entries = (double)hfeed__chunkcache_entries((size_t)p->cache_bytes, total_bytes,
                                                        (uint64_t)fc->pool);
}

/* The bytes every field's chunks decode to (as reader.c adds them up), and *cache. */
static double share(const struct hfeed__cost_params *p, struct hfeed__cost_cache *cache)
{
    double total = 0.0;
    for (size_t k = 0; k < p->nfields; k++) {
        struct field_cache fc;
        field_cache(p, k, 0.0, &fc);
        total += fc.pool * (double)fc.entry_bytes;
    }
    memset(cache, 0, sizeof *cache);
    cache->bytes_all = total;
    for (size_t k = 0; k < p->nfields && total > 0.0; k++) {
        struct field_cache fc;
        field_cache(p, k, total, &fc);
        cache->entries += (uint64_t)fc.entries;
        cache->chunks += fc.pool;
        cache->window_need += fc.window_need;
        cache->bytes_window += fc.window_need * (double)fc.entry_bytes;
    }
    return total;
}

/* Runs of consecutive rows in one chunk among b sorted samples drawn from `pool` rows: what a
 * batch decodes when no cache entry is free (each run is one decode). */
static double runs(double b, double pool, double chunk_rows)
{
    if (b <= 1.0) return b;
    const double adjacent = (b - 1.0) * fmin(1.0, b / pool) * (chunk_rows - 1.0) / chunk_rows;
    return b - adjacent;
}

/* decodes = U + (A - U)(1 - h): first touches always miss, later ones with probability 1 - h. */
static double misses(double unique, double accesses, double h)
{
    const double later = accesses > unique ? accesses - unique : 0.0;
    return unique + later * (1.0 - fmin(1.0, h));
}

/* The share h of repeated chunk uses that an LRU cache of e entries serves, when each batch
 * draws `draws` samples uniformly from `pool` chunks and uses the chunks it touched once each,
 * in chunk order (the reader sorts a batch). A chunk's uses are then whole batches apart: j
 * batches, j >= 1 geometric with p = touched / pool. Because every batch scans in the same
 * order, the chunks used in between are those of j batches' draws: about
 * pool (1 - (1 - 1/pool)^(j draws)), with the occupancy variance; the use hits when they are
 * fewer than e (a normal approximation of that count). With e < one batch's chunks a scan
 * evicts what the next one needs first, and h is near 0, not e / pool. */
static double lru_hit(double pool, double draws, double e)
{
    if (e >= pool) return 1.0;
    if (e < 1.0 || pool <= 1.0 || draws <= 0.0) return 0.0;
    const double p = touched(pool, draws) / pool;
    double h = 0.0, survive = 1.0;
    for (long j = 1; j <= (1L << 20); j++) {
        const double g = draws * (double)j;
        const double q1 = pow(1.0 - 1.0 / pool, g), q2 = pow(fmax(0.0, 1.0 - 2.0 / pool), g);
        const double mean = pool * (1.0 - q1);
        const double var = pool * (pool - 1.0) * q2 + pool * q1 - pool * pool * q1 * q1;
        const double sd = sqrt(fmax(var, 1e-9));
        const double fits = 0.5 * erfc((mean - (e - 0.5)) / (sd * sqrt(2.0)));
        h += p * survive * fits;
        survive *= 1.0 - p;
        if (fits < 1e-6 || survive < 1e-9) break;
    }
    return h;
}

/* The share h of repeated chunk uses served by the loader's cache with foresight (chunkcache.h:
 * it knows which chunks the batches up to `horizon` ahead use, evicts first the idle chunks
 * none of them needs, oldest first, then the one needed farthest ahead). Uses as in lru_hit: a
 * chunk's next use comes j >= 1 batches later, j geometric with p = touched / pool, and t =
 * touched uses start per batch. Kept from one use to the next, a chunk holds an entry for j
 * batches, so (Little's law) keeping every use with j <= T takes t * sum_{j<=T} j P(j) entries.
 * Within the horizon the cache keeps the nearest: h = P(j <= T) for the T that fills it (the
 * last step in part). When those all fit, the rest of the entries hold chunks no batch in sight
 * needs, in LRU order: each survives about tau batches there, and hits when j <= horizon + tau,
 * tau such that t * (sum_{j<=horizon+tau} j P(j) + tau P(j > horizon + tau)) fills the cache.
 * One entry is always taken by the chunk being converted, whatever its next use. Checked
 * against simulations of the policy (bench/cache_sim.py; global shuffle, 64 to 16384 chunks,
 * caches of 1/8 to 3/4 of them): within 5% for caches of a hundred entries or more, and up to
 * 10% too few decodes for smaller ones; and against the loader by tests/tool/test_inspect.py. */
static double foresight_hit(double pool, double draws, double e, unsigned horizon)
{
    if (e >= pool) return 1.0;
    e -= 1.0;
    if (e <= 0.0 || pool <= 1.0 || draws <= 0.0) return 0.0;
    const double t = touched(pool, draws), p = t / pool;
    double held = 0.0, h = 0.0, pj = p; /* entries kept so far, P(j <= step), P(j = step) */
    for (unsigned j = 1; j <= horizon; j++, pj *= 1.0 - p) {
        const double need = t * (double)j * pj;
        if (held + need >= e) return h + pj * (e - held) / need;
        held += need;
        h += pj;
    }
    /* occupancy(tau) = t * (near(horizon + tau) + tau * P(j > horizon + tau)) */
    double near = held / t, occ = held;
    for (long tau = 0; tau < (1L << 22) && pj > 1e-15; tau++, pj *= 1.0 - p) {
        const double j = (double)horizon + (double)tau + 1.0;
        near += j * pj;
        const double next = t * (near + ((double)tau + 1.0) * (1.0 - h - pj));
        if (next >= e) return h + pj * (e - occ) / (next - occ);
        occ = next;
        h += pj;
    }
    return h;
}

/* (batch, chunk) pairs of a sequential epoch of `rows` rows: each batch of b rows touches one
 * chunk of c rows, plus one per chunk boundary inside it (boundaries that fall on a batch
 * boundary split nothing). */
static double sequential_pairs(double rows, uint64_t b, uint64_t c)
{
    const uint64_t n = (uint64_t)rows;
    if (n == 0) return 0.0;
    const uint64_t lcm = b / gcd_u64(b, c) * c;
    const double inside = (double)((n - 1) / c) - (double)((n - 1) / lcm);
    return ceil(rows / (double)b) + inside;
}

/* The share of repeated uses a source's cache serves: the loader's (with foresight when the
 * ring allows it) on the direct path, HDF5's (LRU) under H5Dread. */
static double hit(const struct hfeed__cost_params *p, const struct hfeed__cost_source *s,
                  double pool, double draws, double e)
{
    if (s->direct && p->horizon > 0) return foresight_hit(pool, draws, e, p->horizon);
    return lru_hit(pool, draws, e);
}

static void source_cost(const struct hfeed__cost_params *p, const struct field_cache *fc,
                        const struct hfeed__cost_source *s, double decodes[HFEED_SHUFFLE_MODES])
{
    const double frac = (double)p->samples / (double)p->total;
    const double n = (double)s->rows * frac; /* this source's samples per epoch, this rank */
    const double b = (double)p->batch_size;
    const double nc = groups_of(s);
    const double c = (double)s->group_rows;
    /* Cache entries (in chunk rows) and the chunk rows competing for them: the field's own
     * cache, which its sources in every file share. */
    double e, pool, need;
    if (s->direct) {
        e = fc->entries;
        pool = fc->pool;
        need = fc->window_need;
    } else {
        e = floor((double)(HFEED__H5_CHUNK_CACHE_BYTES / s->chunk_bytes) /
                  (double)s->group_chunks);
        pool = nc;
        need = window_groups(s, p->window);
    }
    /* none: consecutive rows; one entry keeps a chunk between batches. */
    decodes[HFEED_SHUFFLE_NONE] = e >= 1.0
                                      ? nc * frac
                                      : sequential_pairs(n, p->batch_size, s->group_rows);

    /* global: each batch draws b * rows / N samples of this source, uniformly. The field's
     * cache is shared by its sources' chunks: this source's share of it is e * nc / pool. */
    const double bs = b * (double)s->rows / (double)p->total;
    const double batches = (double)p->samples / b;
    if (e < 1.0)
        decodes[HFEED_SHUFFLE_GLOBAL] = batches * runs(bs, (double)s->rows, c);
    else
        decodes[HFEED_SHUFFLE_GLOBAL] =
            misses(touched(nc, n), batches * touched(nc, bs), hit(p, s, nc, bs, e * nc / pool));

    /* chunk: each batch draws b samples from a window of `window` blocks, g_w chunks of this
     * source; every window's chunks are new, so each chunk's first use misses. */
    const double window_rows = fmin((double)p->window * (double)s->block_rows, (double)s->rows);
    const double gw = window_groups(s, p->window);
    const double per_batch = b <= window_rows ? touched(gw, b) : gw * b / window_rows;
    if (e < 1.0)
        decodes[HFEED_SHUFFLE_CHUNK] = (n / b) * runs(fmin(b, window_rows), window_rows, c);
    else
        decodes[HFEED_SHUFFLE_CHUNK] = misses(nc * frac, (n / b) * per_batch,
                                              hit(p, s, gw, fmin(b, window_rows), e * gw / need));
}

void hfeed__cost_model(const struct hfeed__cost_params *p, hfeed_shuffle_cost *out,
                       struct hfeed__cost_cache *cache)
{
    const double total_bytes = share(p, cache);
    memset(out, 0, p->nfields * HFEED_SHUFFLE_MODES * sizeof *out);
    if (p->total == 0 || p->batch_size == 0) return;
    const double frac = (double)p->samples / (double)p->total;
    for (size_t k = 0; k < p->nfields; k++) {
        hfeed_shuffle_cost *cost = &out[k * HFEED_SHUFFLE_MODES];
        double delivered = 0.0;
        for (size_t fi = 0; fi < p->nfiles; fi++) {
            const struct hfeed__cost_source *s = &p->src[k * p->nfiles + fi];
            const double bytes = (double)s->rows * frac * (double)s->row_bytes;
            delivered += bytes;
            if (s->rows == 0) continue;
            if (!s->filtered || s->group_rows == 0 || hfeed__cost_group_bytes(s) == 0) {
                for (int m = 0; m < HFEED_SHUFFLE_MODES; m++)
                    cost[m].bytes_read += bytes;
                continue;
            }
            struct field_cache fc;
            field_cache(p, k, total_bytes, &fc);
            double decodes[HFEED_SHUFFLE_MODES];
            source_cost(p, &fc, s, decodes);
            for (int m = 0; m < HFEED_SHUFFLE_MODES; m++) {
                cost[m].chunk_decodes += decodes[m] * (double)s->group_chunks;
                cost[m].bytes_decoded += decodes[m] * (double)hfeed__cost_group_bytes(s);
                cost[m].bytes_read += decodes[m] * s->group_stored;
            }
        }
        for (int m = 0; m < HFEED_SHUFFLE_MODES && delivered > 0.0; m++) {
            cost[m].read_amplification = cost[m].bytes_read / delivered;
            cost[m].decode_amplification = cost[m].bytes_decoded / delivered;
        }
    }
}
