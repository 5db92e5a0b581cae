/* costmodel: the read-amplification model of h5feed inspect (design in costmodel.h). */
#include "costmodel.h"

#include <math.h>
#include <string.h>

/* What every source of the loader shares: the direct path's chunk cache. */
struct shared {
    double entries;       /* decoded chunks the loader's cache holds */
    double direct_groups; /* chunk rows of every filtered direct source: they compete for it */
    double window_need;   /* chunk rows one chunk-shuffle window needs, all such fields */
    size_t direct_fields; /* filtered fields read by the direct path */
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

static void share(const struct hfeed__cost_params *p, struct shared *sh,
                  struct hfeed__cost_cache *cache)
{
    memset(sh, 0, sizeof *sh);
    uint64_t largest = 0;
    for (size_t k = 0; k < p->nfields; k++) {
        bool counted = false;
        for (size_t fi = 0; fi < p->nfiles; fi++) {
            const struct hfeed__cost_source *s = &p->src[k * p->nfiles + fi];
            if (!s->filtered || !s->direct || s->rows == 0) continue;
            const uint64_t g = hfeed__cost_group_bytes(s);
            if (g > largest) largest = g;
            sh->direct_groups += groups_of(s);
            counted = true;
        }
        sh->direct_fields += counted;
    }
    /* The window's need, for the file where it is largest. */
    for (size_t fi = 0; fi < p->nfiles; fi++) {
        double need = 0.0;
        for (size_t k = 0; k < p->nfields; k++) {
            const struct hfeed__cost_source *s = &p->src[k * p->nfiles + fi];
            if (s->filtered && s->direct && s->rows > 0) need += window_groups(s, p->window);
        }
        if (need > sh->window_need) sh->window_need = need;
    }
    /* As reader.c sizes the cache: entries of the largest decoded chunk, no more than there are
     * chunks. */
    uint64_t e = largest > 0 ? p->cache_bytes / largest : 0;
    if ((double)e > sh->direct_groups) e = (uint64_t)sh->direct_groups;
    sh->entries = (double)e;
    *cache = (struct hfeed__cost_cache){e, largest, sh->direct_groups, sh->window_need};
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

static void source_cost(const struct hfeed__cost_params *p, const struct shared *sh,
                        const struct hfeed__cost_source *s, double decodes[HFEED_SHUFFLE_MODES])
{
    const double frac = (double)p->samples / (double)p->total;
    const double n = (double)s->rows * frac; /* this source's samples per epoch, this rank */
    const double b = (double)p->batch_size;
    const double nc = groups_of(s);
    const double c = (double)s->group_rows;
    /* Cache entries (in chunk rows) and the chunk rows competing for them. */
    double e, pool, need;
    if (s->direct) {
        e = sh->entries;
        pool = sh->direct_groups;
        need = sh->window_need;
    } else {
        e = floor((double)(HFEED__H5_CHUNK_CACHE_BYTES / s->chunk_bytes) /
                  (double)s->group_chunks);
        pool = nc;
        need = window_groups(s, p->window);
    }
    const double fields_at_once = s->direct ? (double)sh->direct_fields : 1.0;

    /* none: consecutive rows; one entry per filtered field keeps a chunk between batches. */
    decodes[HFEED_SHUFFLE_NONE] = e >= fields_at_once
                                      ? nc * frac
                                      : sequential_pairs(n, p->batch_size, s->group_rows);

    /* global: each batch draws b * rows / N samples of this source, uniformly. The cache is
     * shared by every competing chunk: this source's share of it is e * nc / pool. */
    const double bs = b * (double)s->rows / (double)p->total;
    const double batches = (double)p->samples / b;
    if (e < 1.0)
        decodes[HFEED_SHUFFLE_GLOBAL] = batches * runs(bs, (double)s->rows, c);
    else
        decodes[HFEED_SHUFFLE_GLOBAL] = misses(touched(nc, n), batches * touched(nc, bs),
                                               lru_hit(nc, bs, e * nc / pool));

    /* chunk: each batch draws b samples from a window of `window` blocks, g_w chunks of this
     * source; every window's chunks are new, so each chunk's first use misses. */
    const double window_rows = fmin((double)p->window * (double)s->block_rows, (double)s->rows);
    const double gw = window_groups(s, p->window);
    const double per_batch = b <= window_rows ? touched(gw, b) : gw * b / window_rows;
    if (e < 1.0)
        decodes[HFEED_SHUFFLE_CHUNK] = (n / b) * runs(fmin(b, window_rows), window_rows, c);
    else
        decodes[HFEED_SHUFFLE_CHUNK] =
            misses(nc * frac, (n / b) * per_batch, lru_hit(gw, fmin(b, window_rows), e * gw / need));
}

void hfeed__cost_model(const struct hfeed__cost_params *p, hfeed_shuffle_cost *out,
                       struct hfeed__cost_cache *cache)
{
    struct shared sh;
    share(p, &sh, cache);
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
            double decodes[HFEED_SHUFFLE_MODES];
            source_cost(p, &sh, s, decodes);
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
