/* inspect_fields: a config's fields in an inspection report: each field's dataset in each of the
 * config's files, the cost model (costmodel.c) over them, and the warnings only a config gives
 * (chunks larger than the cache, fields of different lengths, a costly shuffle, a field on the
 * slow path). Design in inspect.h; the model is stated in costmodel.h and docs/inspect.md. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "catalog.h"
#include "chunkcache.h"
#include "costmodel.h"
#include "inspect.h"

/* A decode amplification above this, for the configured shuffle, is worth a warning. */
#define HIGH_AMPLIFICATION 2.0

#define MIB ((uint64_t)1 << 20)

hfeed_status hfeed__inspect_fields_alloc(hfeed_report *r, struct hfeed__err *err)
{
    const size_t n = r->cfg->nfields * r->ncfg;
    r->src = hfeed__calloc(n > 0 ? n : 1, sizeof *r->src);
    r->fields = hfeed__calloc(r->cfg->nfields > 0 ? r->cfg->nfields : 1, sizeof *r->fields);
    if (r->src == NULL || r->fields == NULL)
        return HFEED__FAIL(err, HFEED_E_NOMEM, "inspect: out of memory for fields");
    return HFEED_OK;
}

void hfeed__inspect_fields_free(hfeed_report *r)
{
    for (size_t i = 0; r->src != NULL && r->cfg != NULL && i < r->cfg->nfields * r->ncfg; i++)
        hfeed__inspect_entry_free(&r->src[i]);
    hfeed__free(r->src);
    hfeed__free(r->fields);
}

/* Whether config file j is a file the config listed before (the loader reads it again, so the
 * model counts it again, but its warnings were given already). */
static bool listed_before(const hfeed_report *r, size_t j)
{
    for (size_t i = 0; i < j; i++)
        if (r->cfg_file[i] == r->cfg_file[j]) return true;
    return false;
}

hfeed_status hfeed__inspect_fields_file(hfeed_report *r, struct hfeed__h5file *f, size_t fi,
                                        size_t j, struct hfeed__err *err)
{
    const struct hfeed__config *cfg = r->cfg;
    for (size_t k = 0; k < cfg->nfields; k++)
        HFEED__CHECK(hfeed__inspect_describe(f, fi, cfg->fields[k].dataset,
                                             &r->src[k * r->ncfg + j], true, err));
    if (listed_before(r, j)) return HFEED_OK;
    const struct hfeed__dset_entry *first = &r->src[j];
    for (size_t k = 1; k < cfg->nfields; k++) {
        const struct hfeed__dset_entry *e = &r->src[k * r->ncfg + j];
        if (e->d.shape[0] == first->d.shape[0]) continue;
        HFEED__CHECK(hfeed__inspect_warn(
            r, HFEED_WARN_LENGTH_MISMATCH, fi, e->path, err,
            "file \"%s\": field \"%s\" (dataset \"%s\") has %" PRIu64 " samples but field "
            "\"%s\" (dataset \"%s\") has %" PRIu64 "; the loader refuses a file whose fields "
            "differ in length",
            r->files[fi], cfg->fields[k].name, e->path, e->d.shape[0], cfg->fields[0].name,
            first->path, first->d.shape[0]));
    }
    return HFEED_OK;
}

/* The config that rechunks field k's dataset in its first file by whole samples, about 1 MiB a
 * chunk (h5feed convert's own default, written out so that it can be tuned): one line of JSON.
 * Global shuffle over such chunks decodes each once when the cache holds them all, and a
 * sample is never split over chunks. */
static void rechunk_config(const hfeed_report *r, size_t k, char *buf, size_t len)
{
    const struct hfeed__dset_entry *e = &r->src[k * r->ncfg];
    const uint64_t row = e->row_bytes > 0 ? e->row_bytes : 1;
    const uint64_t rows = MIB / row > 0 ? MIB / row : 1;
    const char *file = r->files[e->file];
    snprintf(buf, len,
             "{\"files\": [\"%s\"], \"fields\": [{\"name\": \"%s\", \"dataset\": \"%s\", "
             "\"dtype\": \"native\"}], \"output\": {\"path\": \"%s.rechunked.h5\", "
             "\"chunk_rows\": %" PRIu64 ", \"compression\": \"gzip\", \"shuffle\": true}}",
             file, r->cfg->fields[k].name, e->path, file, rows);
}

/* Rows per chunk-shuffle block of config file j, as catalog.c's block_rows() computes them:
 * the chunk rows of the field with the most bytes per sample, or about 1 MiB of it. */
static uint64_t block_rows(const hfeed_report *r, size_t j)
{
    const struct hfeed__dset_entry *widest = &r->src[j];
    for (size_t k = 1; k < r->cfg->nfields; k++)
        if (r->src[k * r->ncfg + j].row_bytes > widest->row_bytes)
            widest = &r->src[k * r->ncfg + j];
    if (widest->d.layout == HFEED_LAYOUT_CHUNKED && widest->d.chunk[0] > 0)
        return widest->d.chunk[0];
    const uint64_t row = widest->row_bytes > 0 ? widest->row_bytes : 1;
    return HFEED__UNCHUNKED_BLOCK_BYTES / row > 0 ? HFEED__UNCHUNKED_BLOCK_BYTES / row : 1;
}

static void cost_source(const struct hfeed__dset_entry *e, bool direct_allowed, uint64_t block,
                        struct hfeed__cost_source *s)
{
    const hfeed_dataset_desc *d = &e->d;
    memset(s, 0, sizeof *s);
    s->rows = d->shape[0];
    s->row_bytes = e->row_bytes;
    s->direct = direct_allowed && d->direct;
    s->block_rows = block;
    if (d->layout != HFEED_LAYOUT_CHUNKED || d->chunk[0] == 0) return;
    /* Decoded whole into the cache: compressed chunks, and chunks whose extent on a sample axis
     * is not the sample's, whose chunk rows the loader assembles (chunkio.h). */
    bool tiled = false;
    s->group_chunks = 1;
    for (int i = 1; i < d->rank; i++) {
        const uint64_t across = (d->shape[i] + d->chunk[i] - 1) / d->chunk[i];
        s->group_chunks *= across > 0 ? across : 1;
        tiled = tiled || d->chunk[i] != d->shape[i];
    }
    s->filtered = d->nfilters > 0 || (tiled && s->direct);
    if (!s->filtered) return;
    s->group_rows = d->chunk[0];
    s->chunk_bytes = d->chunk_bytes;
    const uint64_t groups = (s->rows + s->group_rows - 1) / s->group_rows;
    s->group_stored = groups > 0 ? (double)d->storage_bytes / (double)groups : 0.0;
}

/* Samples the loader's rank receives per epoch: the shard of all files' samples (field 0's
 * lengths, as the catalog counts them). */
static uint64_t rank_samples(const hfeed_report *r, uint64_t *total)
{
    *total = 0;
    for (size_t j = 0; j < r->ncfg; j++)
        *total += r->src[j].d.shape[0];
    const uint64_t world = r->cfg->world_size > 0 ? r->cfg->world_size : 1;
    return r->cfg->shard_pad ? (*total + world - 1) / world : *total / world;
}

static void fill_field(hfeed_report *r, size_t k, const struct hfeed__cost_source *src,
                       const hfeed_shuffle_cost *cost, uint64_t samples, uint64_t total)
{
    hfeed_field_cost *fc = &r->fields[k];
    fc->name = r->cfg->fields[k].name;
    fc->dataset = r->cfg->fields[k].dataset;
    fc->samples = samples;
    const struct hfeed__cost_source *s0 = &src[k * r->ncfg];
    fc->path = !s0->direct ? HFEED_READ_HDF5 : s0->filtered ? HFEED_READ_DIRECT_DECODE
                                                           : HFEED_READ_DIRECT;
    double delivered = 0.0;
    for (size_t j = 0; j < r->ncfg; j++) {
        const struct hfeed__cost_source *s = &src[k * r->ncfg + j];
        const hfeed_dataset_desc *d = &r->src[k * r->ncfg + j].d;
        delivered += (double)s->rows * (double)s->row_bytes;
        if (d->layout == HFEED_LAYOUT_CHUNKED && d->chunk[0] > 0)
            fc->chunks += (d->shape[0] + d->chunk[0] - 1) / d->chunk[0];
        const uint64_t g = s->filtered ? hfeed__cost_group_bytes(s) : d->chunk_bytes;
        if (g > fc->chunk_bytes) fc->chunk_bytes = g;
    }
    fc->bytes_delivered =
        total > 0 ? (uint64_t)llround(delivered * (double)samples / (double)total) : 0;
    memcpy(fc->cost, cost + k * HFEED_SHUFFLE_MODES, sizeof fc->cost);
}

/* Warnings for field k that need the config: its chunks against the cache, its configured
 * shuffle's amplification, and the slow path for reasons no dataset warning gave. */
static hfeed_status field_warnings(hfeed_report *r, size_t k, const struct hfeed__cost_source *src,
                                   const struct hfeed__cost_cache *cache, struct hfeed__err *err)
{
    const struct hfeed__config *cfg = r->cfg;
    const char *name = cfg->fields[k].name;
    const uint64_t cache_mb = r->info.cache_mb; /* "auto" settled */
    const uint64_t cache_bytes = cache_mb * MIB;
    for (size_t j = 0; j < r->ncfg; j++) {
        const struct hfeed__cost_source *s = &src[k * r->ncfg + j];
        const struct hfeed__dset_entry *e = &r->src[k * r->ncfg + j];
        if (!s->filtered || !s->direct || hfeed__cost_group_bytes(s) <= cache_bytes) continue;
        HFEED__CHECK(hfeed__inspect_warn(
            r, HFEED_WARN_CHUNK_OVER_CACHE, e->file, e->path, err,
            "field \"%s\": a chunk of dataset \"%s\" in file \"%s\" decodes to %" PRIu64
            " bytes, more than cache_mb (%" PRIu64 " MiB): the cache holds no chunk, so every "
            "run of rows decodes its chunk again; set cache_mb to at least %" PRIu64,
            name, e->path, r->files[e->file], hfeed__cost_group_bytes(s), cache_mb,
            (hfeed__cost_group_bytes(s) + MIB - 1) / MIB));
        break;
    }
    const hfeed_field_cost *fc = &r->fields[k];
    const hfeed_shuffle_cost *now = &fc->cost[cfg->shuffle];
    if (now->decode_amplification > HIGH_AMPLIFICATION) {
        const bool chunk = cfg->shuffle == HFEED__SHUFFLE_CHUNK;
        const double need = chunk ? cache->window_need : cache->chunks;
        const uint64_t need_mb =
            (uint64_t)ceil((chunk ? cache->bytes_window : cache->bytes_all) / (double)MIB);
        char advice[HFEED_ERRBUF_SIZE / 2];
        if (fc->path != HFEED_READ_DIRECT_DECODE)
            snprintf(advice, sizeof advice, "H5Dread keeps only 1 MiB of chunks per dataset");
        else if (cfg->shuffle == HFEED__SHUFFLE_GLOBAL)
            snprintf(advice, sizeof advice,
                     "use \"shuffle\": \"chunk\" (%.2f) or cache_mb >= %" PRIu64
                     " to hold every chunk",
                     fc->cost[HFEED_SHUFFLE_CHUNK].decode_amplification, need_mb);
        else
            snprintf(advice, sizeof advice,
                     "a window needs about %.0f chunks but the cache holds %" PRIu64
                     "; use cache_mb >= %" PRIu64 " or a smaller shuffle_window",
                     need, cache->entries, need_mb);
        char rechunk[HFEED_ERRBUF_SIZE / 2];
        rechunk_config(r, k, rechunk, sizeof rechunk);
        HFEED__CHECK(hfeed__inspect_warn(
            r, HFEED_WARN_HIGH_AMPLIFICATION, SIZE_MAX, fc->dataset, err,
            "field \"%s\": %s shuffle decodes %.2f bytes per byte delivered (%.0f chunk "
            "decodes per epoch for %" PRIu64 " chunks); %s; or rechunk by whole samples, "
            "h5feed convert with %s",
            name, hfeed_shuffle_name((hfeed_shuffle_mode)cfg->shuffle),
            now->decode_amplification, now->chunk_decodes, fc->chunks, advice, rechunk));
    }
    const struct hfeed__dset_entry *e0 = &r->src[k * r->ncfg];
    if (fc->path == HFEED_READ_HDF5) {
        /* Filters and split samples have their own dataset warnings. */
        const bool said = strncmp(e0->slow, "filter ", 7) == 0 ||
                          strcmp(e0->slow, "chunks split the sample axes") == 0;
        if (!cfg->direct || !said)
            HFEED__CHECK(hfeed__inspect_warn(
                r, HFEED_WARN_SLOW_PATH, e0->file, e0->path, err,
                "field \"%s\": dataset \"%s\" in file \"%s\" is read with H5Dread, one call at "
                "a time behind the HDF5 lock (%s)",
                name, e0->path, r->files[e0->file],
                !cfg->direct ? "the config's read_path is \"hdf5\"" : e0->slow));
    }
    return HFEED_OK;
}

/* "cache_mb": "auto" under shuffle none and chunk, as the loader settles it (loader_open.c
 * order_bytes): per field that decodes chunks, hfeed__chunkcache_order_bytes() over its
 * sources; an entry holds a whole chunk row, its chunks placed together when they split the
 * samples (chunkio.h). */
static uint64_t order_bytes(const hfeed_report *r, const struct hfeed__cost_source *src,
                            uint64_t batch_rows)
{
    const struct hfeed__config *cfg = r->cfg;
    const unsigned window = cfg->shuffle == HFEED__SHUFFLE_CHUNK ? cfg->shuffle_window : 0;
    uint64_t block = 0, bytes = 0;
    for (size_t j = 0; j < r->ncfg; j++)
        if (src[j].block_rows > block) block = src[j].block_rows;
    for (size_t k = 0; k < cfg->nfields; k++) {
        struct hfeed__cache_need need = {0, UINT64_MAX, 1, 0};
        for (size_t j = 0; j < r->ncfg; j++) {
            const struct hfeed__cost_source *s = &src[k * r->ncfg + j];
            if (!s->filtered || !s->direct || s->group_rows == 0) continue;
            const uint64_t g = hfeed__cost_group_bytes(s);
            if (g > need.entry_bytes) need.entry_bytes = (size_t)g;
            if (s->group_rows < need.chunk_rows) need.chunk_rows = s->group_rows;
            need.nchunks += (s->rows + s->group_rows - 1) / s->group_rows;
        }
        if (need.nchunks == 0 || need.entry_bytes == 0) continue;
        bytes += hfeed__chunkcache_order_bytes(&need, 1, cfg->workers, batch_rows, window, block);
    }
    return bytes;
}

hfeed_status hfeed__inspect_fields_finish(hfeed_report *r, struct hfeed__err *err)
{
    const struct hfeed__config *cfg = r->cfg;
    const size_t n = cfg->nfields * r->ncfg;
    struct hfeed__cost_source *src = hfeed__calloc(n > 0 ? n : 1, sizeof *src);
    hfeed_shuffle_cost *cost =
        hfeed__calloc(cfg->nfields * HFEED_SHUFFLE_MODES + 1, sizeof *cost);
    if (src == NULL || cost == NULL) {
        hfeed__free(src);
        hfeed__free(cost);
        return HFEED__FAIL(err, HFEED_E_NOMEM, "inspect: out of memory for the model");
    }
    for (size_t j = 0; j < r->ncfg; j++) {
        const uint64_t block = block_rows(r, j);
        for (size_t k = 0; k < cfg->nfields; k++)
            cost_source(&r->src[k * r->ncfg + j], cfg->direct, block, &src[k * r->ncfg + j]);
    }
    uint64_t total = 0;
    const uint64_t samples = rank_samples(r, &total);
    struct hfeed__cost_params p = {.total = total,
                                         .samples = samples,
                                         .batch_size = cfg->batch_size,
                                         .window = cfg->shuffle_window,
                                         .cache_bytes = cfg->cache_mb * MIB,
                                         .horizon = hfeed__chunkcache_horizon(cfg->prefetch),
                                         .nfields = cfg->nfields,
                                         .nfiles = r->ncfg,
                                         .src = src};
    struct hfeed__cost_cache cache;
    if (cfg->cache_auto && cfg->shuffle == HFEED__SHUFFLE_GLOBAL) {
        /* Settle "auto" as the loader does (loader_open.c), from what every chunk decodes to. */
        hfeed__cost_model(&p, cost, &cache);
        p.cache_bytes = MIB * hfeed__chunkcache_auto_mb(true, cache.bytes_all,
                                                        hfeed__chunkcache_auto_limit());
    } else if (cfg->cache_auto) {
        const uint64_t batch = cfg->batch_size < samples ? cfg->batch_size : samples;
        p.cache_bytes = MIB * ((order_bytes(r, src, batch) + MIB - 1) / MIB);
    }
    r->info.cache_mb = p.cache_bytes / MIB;
    hfeed__cost_model(&p, cost, &cache);
    for (size_t k = 0; k < cfg->nfields; k++)
        fill_field(r, k, src, cost, samples, total);
    hfeed_status st = HFEED_OK;
    for (size_t k = 0; st == HFEED_OK && k < cfg->nfields; k++)
        st = field_warnings(r, k, src, &cache, err);
    r->info.shuffle = (hfeed_shuffle_mode)cfg->shuffle;
    r->info.batch_size = cfg->batch_size;
    r->info.shuffle_window = cfg->shuffle_window;
    r->info.world_size = cfg->world_size;
    r->info.direct = cfg->direct;
    r->info.cache_entries = cache.entries;
    hfeed__free(src);
    hfeed__free(cost);
    return st;
}
