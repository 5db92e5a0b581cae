/* fieldcache: the reader's per-field decoded-chunk caches (design in fieldcache.h). */
#include "fieldcache.h"

#include "alloc.h"

struct hfeed__fieldcache {
    const struct hfeed__catalog *cat;
    struct hfeed__chunkcache **caches; /* nfields; NULL: the field decodes no chunk */
    uint64_t *key_base;                /* nfields * nfiles */
    uint64_t *keys;                    /* batch_size: the keys of an expected batch */
    bool foresight;                    /* some cache uses foresight */
    unsigned lookahead;                /* batches past the newest claimed one expect may name */
    size_t memory;
};

/* Numbers every field's chunks densely (key_base). */
static hfeed_status number_chunks(struct hfeed__fieldcache *fc, size_t batch_size,
                                  struct hfeed__err *err)
{
    const struct hfeed__catalog *c = fc->cat;
    fc->key_base = hfeed__calloc(c->nfields * c->nfiles, sizeof *fc->key_base);
    fc->keys = hfeed__alloc(batch_size * sizeof *fc->keys);
    if (fc->key_base == NULL || fc->keys == NULL)
        return HFEED__FAIL(err, HFEED_E_NOMEM, "reader: out of memory");
    fc->memory += (c->nfields * c->nfiles + batch_size) * sizeof *fc->keys;
    for (size_t k = 0; k < c->nfields; k++) {
        uint64_t next = 0;
        for (size_t fi = 0; fi < c->nfiles; fi++) {
            const struct hfeed__direct *d = c->fields[k].sources[fi].direct;
            fc->key_base[k * c->nfiles + fi] = next;
            if (d != NULL && hfeed__chunkio_filtered(d)) next += d->nchunks;
        }
    }
    return HFEED_OK;
}

/* One cache per field that decodes chunks, the budget divided as chunkcache.h says. */
static hfeed_status create_caches(struct hfeed__fieldcache *fc, size_t budget, unsigned slots,
                                  struct hfeed__err *err)
{
    const struct hfeed__catalog *c = fc->cat;
    uint64_t *chunks = hfeed__calloc(2 * c->nfields, sizeof *chunks);
    size_t *entry_bytes = hfeed__calloc(c->nfields, sizeof *entry_bytes);
    fc->caches = hfeed__calloc(c->nfields, sizeof *fc->caches);
    if (chunks == NULL || entry_bytes == NULL || fc->caches == NULL) {
        hfeed__free(chunks);
        hfeed__free(entry_bytes);
        return HFEED__FAIL(err, HFEED_E_NOMEM, "reader: out of memory");
    }
    uint64_t *entries = chunks + c->nfields;
    for (size_t k = 0; k < c->nfields; k++) {
        chunks[k] = c->fields[k].filtered_chunks;
        entry_bytes[k] = c->fields[k].max_chunk_bytes;
    }
    hfeed__chunkcache_split(budget, c->nfields, chunks, entry_bytes, entries);
    hfeed_status st = HFEED_OK;
    /* No horizon: a lag past the limit turns foresight off. */
    const unsigned lag =
        fc->lookahead > 0 ? slots - 1u + fc->lookahead : HFEED__CHUNKCACHE_MAX_LAG + 1u;
    for (size_t k = 0; st == HFEED_OK && k < c->nfields; k++) {
        if (chunks[k] == 0) continue;
        st = hfeed__chunkcache_create((size_t)entries[k] * entry_bytes[k], entry_bytes[k],
                                      chunks[k], lag, &fc->caches[k], err);
        if (st != HFEED_OK) break;
        fc->memory += hfeed__chunkcache_memory(fc->caches[k]);
        if (hfeed__chunkcache_foresees(fc->caches[k])) fc->foresight = true;
    }
    hfeed__free(chunks);
    hfeed__free(entry_bytes);
    return st;
}

hfeed_status hfeed__fieldcache_create(const struct hfeed__catalog *c, size_t budget, unsigned slots,
                                      size_t batch_size, struct hfeed__fieldcache **out,
                                      struct hfeed__err *err)
{
    *out = NULL;
    struct hfeed__fieldcache *fc = hfeed__calloc(1, sizeof *fc);
    if (fc == NULL) return HFEED__FAIL(err, HFEED_E_NOMEM, "reader: out of memory");
    fc->cat = c;
    fc->lookahead = hfeed__chunkcache_horizon(slots);
    hfeed_status st = number_chunks(fc, batch_size, err);
    if (st == HFEED_OK) st = create_caches(fc, budget, slots, err);
    if (st != HFEED_OK) {
        hfeed__fieldcache_destroy(fc);
        return st;
    }
    *out = fc;
    return HFEED_OK;
}

void hfeed__fieldcache_destroy(struct hfeed__fieldcache *fc)
{
    if (fc == NULL) return;
    for (size_t k = 0; fc->caches != NULL && k < fc->cat->nfields; k++)
        hfeed__chunkcache_destroy(fc->caches[k]);
    hfeed__free(fc->caches);
    hfeed__free(fc->key_base);
    hfeed__free(fc->keys);
    hfeed__free(fc);
}

struct hfeed__chunkcache *hfeed__fieldcache_cache(const struct hfeed__fieldcache *fc, size_t k)
{
    return fc->caches[k];
}

uint64_t hfeed__fieldcache_key(const struct hfeed__fieldcache *fc, size_t k, size_t fi,
                               uint64_t chunk)
{
    return fc->key_base[k * fc->cat->nfiles + fi] + chunk;
}

bool hfeed__fieldcache_lookahead(const struct hfeed__fieldcache *fc, unsigned *ahead)
{
    *ahead = fc->lookahead;
    return fc->foresight;
}

void hfeed__fieldcache_expect(struct hfeed__fieldcache *fc, uint64_t seq, const uint64_t *indices,
                              size_t n)
{
    const struct hfeed__catalog *c = fc->cat;
    for (size_t k = 0; fc->foresight && k < c->nfields; k++) {
        if (fc->caches[k] == NULL || !hfeed__chunkcache_foresees(fc->caches[k])) continue;
        size_t m = 0;
        for (size_t j = 0; j < n; j++) {
            uint64_t row;
            const size_t fi = hfeed__catalog_locate(c, indices[j], &row);
            const struct hfeed__direct *d = c->fields[k].sources[fi].direct;
            if (d == NULL || !hfeed__chunkio_filtered(d)) continue;
            fc->keys[m++] = hfeed__fieldcache_key(fc, k, fi, row / d->chunk_rows);
        }
        hfeed__chunkcache_expect(fc->caches[k], seq, fc->keys, m);
    }
}

void hfeed__fieldcache_forget(struct hfeed__fieldcache *fc)
{
    for (size_t k = 0; fc->foresight && k < fc->cat->nfields; k++)
        if (fc->caches[k] != NULL) hfeed__chunkcache_forget(fc->caches[k]);
}

void hfeed__fieldcache_get_stats(const struct hfeed__fieldcache *fc, uint64_t *hits)
{
    for (size_t k = 0; k < fc->cat->nfields; k++) {
        struct hfeed__chunkcache_stats cs = {0, 0, 0};
        if (fc->caches[k] == NULL) continue;
        hfeed__chunkcache_get_stats(fc->caches[k], &cs);
        *hits += cs.hits;
    }
}

size_t hfeed__fieldcache_memory(const struct hfeed__fieldcache *fc)
{
    return fc->memory;
}
