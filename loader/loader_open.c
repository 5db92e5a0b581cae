/* loader_open: builds a loader, and frees one. hfeed_loader_open() and hfeed_loader_open_json()
 * parse a config; hfeed__loader_open_config() builds from it, in this order: HFEED_READ_PATH,
 * the device, the catalog (files, datasets, checks), the transforms, the sampler, the rings (and
 * the upload stage between them), cache_mb, the reader, the info; then the stages start. A
 * failure at any step frees the half-built loader with hfeed__loader_destroy(), which is here,
 * beside the steps it undoes.
 *
 * Also here: the ring's plan callback, given to the ring at open, which runs for the life of
 * the loader: it fills each slot's sample indices from the sampler and tells the chunk caches
 * what the coming batches need (foresee). The structs and the wiring are in loader_impl.h; the
 * public API of a running loader is loader.c's. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "catalog.h"
#include "chunkcache.h"
#include "chunkio.h"
#include "config.h"
#include "device.h"
#include "error.h"
#include "h5feed.h"
#include "h5io.h"
#include "loader.h"
#include "loader_impl.h"
#include "prefetch.h"
#include "reader.h"
#include "sampler.h"
#include "transform.h"
#include "upload.h"

/* Tells the chunk caches which chunks batch seq and the few after it (within its epoch, whose
 * order the sampler holds) will use, each batch once (chunkcache.h: foresight). */
static void foresee(struct hfeed_loader *l, uint64_t seq, const struct hfeed__slot *slot)
{
    unsigned ahead;
    if (!hfeed__reader_lookahead(l->reader, &ahead)) return;
    const uint64_t per_epoch = l->info.batches_per_epoch;
    const uint64_t epoch_end = (seq / per_epoch + 1) * per_epoch;
    if (l->foreseen <= seq) {
        hfeed__reader_expect(l->reader, seq, slot->indices, slot->samples);
        l->foreseen = seq + 1;
    }
    for (; l->foreseen <= seq + ahead && l->foreseen < epoch_end; l->foreseen++) {
        const size_t n = hfeed__sampler_batch(l->sampler, l->foreseen % per_epoch, l->ahead);
        hfeed__reader_expect(l->reader, l->foreseen, l->ahead, n);
    }
}

/* Ring callback, under the ring mutex, in increasing seq order: which samples batch seq holds. */
static void plan_batch(void *ctx, uint64_t seq, struct hfeed__slot *slot)
{
    struct hfeed_loader *l = ctx;
    const uint64_t per_epoch = l->info.batches_per_epoch;
    slot->epoch = seq / per_epoch;
    slot->index = seq % per_epoch;
    hfeed__sampler_set_epoch(l->sampler, slot->epoch);
    slot->samples = hfeed__sampler_batch(l->sampler, slot->index, slot->indices);
    foresee(l, seq, slot);
}

void hfeed__loader_destroy(struct hfeed_loader *l)
{
    hfeed__reader_destroy(l->reader);
    hfeed__upload_destroy(l->upload);
    /* Kernels queued on the consumer's streams before its last release may still read the
     * device slots: wait for their fences before freeing them (cudaFree does not promise to). */
    if (l->dev_ring != NULL) l->dev_ops->wait_fences(l->dev);
    hfeed__ring_destroy(l->dev_ring);
    hfeed__ring_destroy(l->ring);
    if (l->dev != NULL) l->dev_ops->close(l->dev);
    hfeed__sampler_destroy(l->sampler);
    hfeed__catalog_close(l->cat);
    hfeed__transform_destroy(l->xf);
    hfeed__config_destroy(l->cfg);
    hfeed__free(l->batches);
    hfeed__free(l->ahead);
    hfeed__free(l);
}

/* Opens the configured device: "cpu" the host; "cuda:N" that GPU, "cuda" the calling thread's
 * current GPU (as torch's "cuda": each rank that set its device gets its own), or an error with
 * CUDA's text; "auto" the thread's current GPU when one is usable, else the host (logged once,
 * with CUDA's reason); "fake" the test device (its simulated current device). */
static hfeed_status open_device(struct hfeed_loader *l, const struct hfeed__logger *log,
                                struct hfeed__err *err)
{
    const struct hfeed__config *cfg = l->cfg;
    const unsigned events = cfg->prefetch;
    switch (cfg->device) {
    case HFEED__DEVICE_CPU: l->dev_ops = &hfeed__device_host; break;
    case HFEED__DEVICE_FAKE: l->dev_ops = &hfeed__device_fake; break;
    case HFEED__DEVICE_CUDA: l->dev_ops = &hfeed__device_cuda; break;
    case HFEED__DEVICE_AUTO: {
        /* The calling thread's current device: each rank of a job has set its own. */
        struct hfeed__err why = {0};
        if (hfeed__device_cuda.open(-1, events, cfg->seed, &l->dev, &why) == HFEED_OK) {
            l->dev_ops = &hfeed__device_cuda;
            l->info.device_index = hfeed__device_cuda.index(l->dev);
            hfeed__log(log, HFEED_LOG_INFO, "device \"auto\": using cuda:%d (the thread's current "
                       "device)", l->info.device_index);
            return HFEED_OK;
        }
        l->dev_ops = &hfeed__device_host;
        hfeed__log(log, HFEED_LOG_INFO,
                   "device \"auto\": no usable CUDA device, using the CPU (%s)",
                   why.msg); /* INFO: on a machine without a GPU this is the expected choice */
        break;
    }
    }
    struct hfeed__err why = {0};
    if (l->dev_ops->open(cfg->device_index, events, cfg->seed, &l->dev, &why) != HFEED_OK)
        return hfeed__err_set(err, why.code, "device: %s", why.msg);
    l->info.device_index = l->dev_ops->index(l->dev); /* what -1 resolved to */
    return HFEED_OK;
}

static void *host_mem_alloc(void *ctx, size_t size)
{
    struct hfeed_loader *l = ctx;
    return l->dev_ops->host_alloc(l->dev, size, l->cfg->pinned);
}

static void host_mem_free(void *ctx, void *p)
{
    struct hfeed_loader *l = ctx;
    l->dev_ops->host_free(l->dev, p, l->cfg->pinned);
}

static void *dev_mem_alloc(void *ctx, size_t size)
{
    struct hfeed_loader *l = ctx;
    return l->dev_ops->dev_alloc(l->dev, size);
}

static void dev_mem_free(void *ctx, void *p)
{
    struct hfeed_loader *l = ctx;
    l->dev_ops->dev_free(l->dev, p);
}

static hfeed_status make_sampler(struct hfeed_loader *l, struct hfeed__err *err)
{
    const struct hfeed__config *cfg = l->cfg;
    const struct hfeed__sampler_params p = {
        .total = l->cat->file_start[l->cat->nfiles],
        .mode = cfg->shuffle,
        .seed = cfg->seed,
        .block_starts = l->cat->block_starts,
        .nblocks = l->cat->nblocks,
        .window = cfg->shuffle_window,
        .rank = cfg->rank,
        .world_size = cfg->world_size,
        .pad = cfg->shard_pad,
        .batch_size = cfg->batch_size,
        .drop_last = cfg->drop_last,
    };
    struct hfeed__err why = {0};
    if (hfeed__sampler_create(&p, &l->sampler, &why) != HFEED_OK)
        return hfeed__err_set(err, why.code, "shard/batching: %s", why.msg);
    return HFEED_OK;
}

/* Sizes the slots: no batch holds more than the rank's samples of an epoch, so a batch_size
 * above that would only allocate (and, under a sanitizer, fill) memory no sample uses. It is
 * also a likely mistake (the epoch is then one partial batch): say so. */
static void size_rows(struct hfeed_loader *l, const struct hfeed__logger *log)
{
    const uint64_t mine = hfeed__sampler_samples_per_epoch(l->sampler);
    l->slot_rows = (size_t)l->cfg->batch_size;
    if (mine >= l->cfg->batch_size) return;
    l->slot_rows = (size_t)mine;
    hfeed__log(log, HFEED_LOG_WARN,
               "batch_size %llu is more than the %llu samples this rank gets per epoch: every "
               "epoch is one partial batch of %llu; lower batch_size to silence this",
               (unsigned long long)l->cfg->batch_size, (unsigned long long)mine,
               (unsigned long long)mine);
}

/* A batch slot of slot_rows samples of every field must have a size that fits a size_t, and
 * the ring of them must fit the memory this process may use (else the open would take minutes
 * to fault in memory the kernel then cannot give). */
static hfeed_status check_slot_size(const struct hfeed_loader *l, struct hfeed__err *err)
{
    size_t slot = 0;
    for (size_t k = 0; k < l->cfg->nfields; k++) {
        const struct hfeed__field *f = &l->cat->fields[k];
        size_t bytes;
        if (__builtin_mul_overflow(f->row_bytes, l->slot_rows, &bytes) ||
            __builtin_add_overflow(slot, bytes, &slot))
            return HFEED__FAIL(err, HFEED_E_CONFIG,
                               "batch_size: %llu samples of field \"%s\" (%zu bytes each) "
                               "overflow a batch slot",
                               (unsigned long long)l->cfg->batch_size, f->name, f->row_bytes);
    }
    const double ring = (double)slot * l->cfg->prefetch, usable = hfeed__chunkcache_usable_memory();
    if (usable > 0 && ring > usable)
        return HFEED__FAIL(err, HFEED_E_CONFIG,
                           "batch_size %llu, prefetch %u: the batch slots take %.0f MiB, more "
                           "than the %.0f MiB this process may use; lower batch_size or prefetch",
                           (unsigned long long)l->cfg->batch_size, l->cfg->prefetch,
                           ring / 1048576.0, usable / 1048576.0);
    return HFEED_OK;
}

/* Bytes of one batch slot, all fields (check_slot_size() made sure it fits). */
static size_t slot_bytes(const struct hfeed_loader *l)
{
    size_t bytes = 0;
    for (size_t k = 0; k < l->cfg->nfields; k++)
        bytes += l->cat->fields[k].row_bytes * l->slot_rows;
    return bytes;
}

static hfeed_status make_ring(struct hfeed_loader *l, struct hfeed__err *err)
{
    const struct hfeed__config *cfg = l->cfg;
    const uint64_t per_epoch = hfeed__sampler_batches_per_epoch(l->sampler);
    if (per_epoch > UINT64_MAX / cfg->epochs)
        return HFEED__FAIL(err, HFEED_E_CONFIG, "epochs: %llu epochs of %llu batches overflow",
                           (unsigned long long)cfg->epochs, (unsigned long long)per_epoch);
    HFEED__CHECK(check_slot_size(l, err));
    size_t row_bytes[64];
    size_t *rows = cfg->nfields <= 64 ? row_bytes : hfeed__alloc(cfg->nfields * sizeof *rows);
    if (rows == NULL) return HFEED__FAIL(err, HFEED_E_NOMEM, "out of memory");
    for (size_t k = 0; k < cfg->nfields; k++)
        rows[k] = l->cat->fields[k].row_bytes;
    const uint64_t end_seq = per_epoch * cfg->epochs;
    l->host_mem = (struct hfeed__slot_memory){host_mem_alloc, host_mem_free, l};
    l->dev_mem = (struct hfeed__slot_memory){dev_mem_alloc, dev_mem_free, l};
    const bool upload = l->dev_ops != &hfeed__device_host;
    hfeed_status st = hfeed__ring_create(cfg->prefetch, cfg->nfields, rows, l->slot_rows, end_seq,
                                         &l->host_mem, plan_batch, l, &l->ring, err);
    if (st == HFEED_OK && upload) {
        struct hfeed__err why = {0};
        st = hfeed__ring_create(cfg->prefetch, cfg->nfields, rows, l->slot_rows, end_seq,
                                &l->dev_mem, NULL, NULL, &l->dev_ring, &why);
        if (st != HFEED_OK)
            hfeed__err_set(err, st, "device: %s:%d: cannot allocate %u device buffers of %zu "
                           "bytes (%s)", l->dev_ops->name, l->info.device_index, cfg->prefetch,
                           slot_bytes(l), why.msg);
    }
    if (st == HFEED_OK && upload)
        st = hfeed__upload_create(l->dev_ops, l->dev, l->ring, l->dev_ring, cfg->prefetch,
                                  cfg->nfields, rows, &l->upload, err);
    if (rows != row_bytes) hfeed__free(rows);
    HFEED__CHECK(st);
    l->out = upload ? l->dev_ring : l->ring;
    l->batches = hfeed__calloc(cfg->prefetch, sizeof *l->batches);
    l->ahead = hfeed__alloc(l->slot_rows * sizeof *l->ahead);
    if (l->batches == NULL || l->ahead == NULL)
        return HFEED__FAIL(err, HFEED_E_NOMEM, "out of memory");
    for (unsigned i = 0; i < cfg->prefetch; i++) {
        l->batches[i].loader = l;
        l->batches[i].slot = hfeed__ring_slot(l->out, i);
        atomic_init(&l->batches[i].holds, 0u);
    }
    return HFEED_OK;
}

static void fill_info(struct hfeed_loader *l)
{
    const struct hfeed__config *cfg = l->cfg;
    hfeed_loader_info *in = &l->info;
    in->total_samples = l->cat->file_start[l->cat->nfiles];
    in->samples_per_epoch = hfeed__sampler_samples_per_epoch(l->sampler);
    in->padded_per_epoch = hfeed__sampler_padded_per_epoch(l->sampler);
    in->dropped_per_epoch = hfeed__sampler_dropped_per_epoch(l->sampler);
    in->batches_per_epoch = hfeed__sampler_batches_per_epoch(l->sampler);
    in->epochs = cfg->epochs;
    in->batch_size = (size_t)cfg->batch_size;
    in->fields = cfg->nfields;
    in->rank = cfg->rank;
    in->world_size = cfg->world_size;
    in->workers = cfg->workers;
    in->slots = cfg->prefetch;
    in->slot_bytes = slot_bytes(l);
    in->memory_bytes = hfeed__ring_memory(l->ring) + hfeed__reader_memory(l->reader) +
                       hfeed__sampler_memory(l->sampler);
    in->device = l->dev_ops->kind;
    in->hdf5_threadsafe = hfeed__h5_threadsafe();
}

/* HFEED_READ_PATH (loader.h): read here, once per open, and logged. */
void hfeed__loader_apply_env(struct hfeed__config *cfg, const struct hfeed__logger *log)
{
    const char *v = getenv("HFEED_READ_PATH");
    if (v == NULL || v[0] == '\0') return;
    if (strcmp(v, "hdf5") == 0 || strcmp(v, "auto") == 0) {
        cfg->direct = strcmp(v, "auto") == 0;
        hfeed__log(log, HFEED_LOG_INFO, "HFEED_READ_PATH=%s: read_path set to \"%s\"", v, v);
    } else {
        hfeed__log(log, HFEED_LOG_WARN, "HFEED_READ_PATH=%s ignored: expected \"auto\" or \"hdf5\"",
                   v);
    }
}

/* What shuffle none and chunk reuse of each field that decodes chunks, for
 * hfeed__chunkcache_order_bytes(): the loader's "auto" cache for them. */
static uint64_t order_bytes(const struct hfeed_loader *l)
{
    const struct hfeed__catalog *c = l->cat;
    const struct hfeed__config *cfg = l->cfg;
    uint64_t block_rows = 0;
    for (size_t b = 0; b < c->nblocks; b++) {
        const uint64_t end = b + 1 < c->nblocks ? c->block_starts[b + 1] : c->file_start[c->nfiles];
        if (end - c->block_starts[b] > block_rows) block_rows = end - c->block_starts[b];
    }
    const unsigned window = cfg->shuffle == HFEED__SHUFFLE_CHUNK ? cfg->shuffle_window : 0;
    uint64_t bytes = 0;
    for (size_t k = 0; k < c->nfields; k++) {
        const struct hfeed__field *f = &c->fields[k];
        /* An entry holds a whole chunk row (max_chunk_bytes), its chunks placed together when
         * they split the samples (chunkio.h): one entry per chunk row, chunks_across 1. */
        struct hfeed__cache_need need = {f->max_chunk_bytes, UINT64_MAX, 1, f->filtered_chunks};
        for (size_t fi = 0; fi < c->nfiles; fi++) {
            const struct hfeed__source *s = &f->sources[fi];
            if (s->direct == NULL || !hfeed__chunkio_filtered(s->direct)) continue;
            if (s->info.chunk[0] < need.chunk_rows) need.chunk_rows = s->info.chunk[0];
        }
        if (need.nchunks == 0 || need.entry_bytes == 0) continue;
        bytes +=
            hfeed__chunkcache_order_bytes(&need, 1, cfg->workers, l->slot_rows, window, block_rows);
    }
    return bytes;
}

/* Settles cache_mb once the chunks are known, and says what it chose (INFO). "auto": for
 * global shuffle, hfeed__chunkcache_auto_mb() (every chunk where that fits); for none and
 * chunk, what the order reuses (hfeed__chunkcache_order_bytes()), a few MiB where it was 256.
 * Global shuffle draws every sample from anywhere, so a compressed chunk that leaves the cache
 * is decoded again for a later sample of it: when the cache cannot hold every chunk, a warning
 * says so (the user would otherwise see only a slow run; h5feed inspect says how slow). */
static void plan_cache(struct hfeed_loader *l, const struct hfeed__logger *log)
{
    struct hfeed__config *cfg = l->cfg;
    const uint64_t all = hfeed__catalog_chunk_bytes(l->cat);
    const bool global = cfg->shuffle == HFEED__SHUFFLE_GLOBAL;
    const unsigned long long all_mb = (unsigned long long)((all + (1u << 20) - 1) >> 20);
    static const char *const orders[] = {"none", "global", "chunk"};
    if (cfg->cache_auto && global) {
        cfg->cache_mb =
            hfeed__chunkcache_auto_mb(true, (double)all, hfeed__chunkcache_auto_limit());
        if (all > 0 && all <= cfg->cache_mb << 20)
            hfeed__log(log, HFEED_LOG_INFO,
                       "cache_mb \"auto\": %llu MiB, every compressed chunk, for global shuffle",
                       (unsigned long long)cfg->cache_mb);
        else if (all > 0)
            hfeed__log(log, HFEED_LOG_INFO,
                       "cache_mb \"auto\": %llu MiB for global shuffle, an eighth of this "
                       "machine's memory per local rank (the chunks decode to %llu MiB)",
                       (unsigned long long)cfg->cache_mb, all_mb);
    } else if (cfg->cache_auto) {
        cfg->cache_mb = (order_bytes(l) + (1u << 20) - 1) >> 20;
        if (all > 0)
            hfeed__log(log, HFEED_LOG_INFO,
                       "cache_mb \"auto\": %llu MiB for shuffle \"%s\": the chunks %u workers "
                       "use at once%s (every chunk would take %llu MiB)",
                       (unsigned long long)cfg->cache_mb, orders[cfg->shuffle], cfg->workers,
                       cfg->shuffle == HFEED__SHUFFLE_CHUNK ? " and two windows of shuffle_window "
                                                              "blocks"
                                                            : "",
                       all_mb);
    }
    l->cache_bytes = all > 0 ? cfg->cache_mb << 20 : 0;
    if (!global || all <= cfg->cache_mb << 20) return;
    hfeed__log(log, HFEED_LOG_WARN,
               "cache_mb %llu holds %.0f%% of the %llu MiB the compressed chunks decode to: "
               "global shuffle will decode many chunks several times per epoch (h5feed inspect "
               "--config estimates how many); cache_mb %llu holds them all, and \"shuffle\": "
               "\"chunk\" decodes each about once",
               (unsigned long long)cfg->cache_mb,
               100.0 * (double)(cfg->cache_mb << 20) / (double)all, all_mb, all_mb);
}

/* Builds a loader from a parsed config (which it takes over, also on failure). */
hfeed_status hfeed__loader_open_config(struct hfeed__config *cfg, const struct hfeed__logger *log,
                                       hfeed_loader **out, struct hfeed__err *err)
{
    struct hfeed_loader *l = hfeed__calloc(1, sizeof *l);
    if (l == NULL) {
        hfeed__config_destroy(cfg);
        return HFEED__FAIL(err, HFEED_E_NOMEM, "loader: out of memory");
    }
    l->cfg = cfg;
    atomic_init(&l->refs, 1u);
    hfeed__loader_apply_env(cfg, log);
    hfeed_status st = open_device(l, log, err);
    if (st == HFEED_OK) st = hfeed__catalog_open(cfg, log, &l->cat, err);
    if (st == HFEED_OK) st = hfeed__transform_open(cfg, l->cat, log, &l->xf, err);
    if (st == HFEED_OK) st = make_sampler(l, err);
    if (st == HFEED_OK) {
        l->info.batches_per_epoch = hfeed__sampler_batches_per_epoch(l->sampler);
        size_rows(l, log);
        st = make_ring(l, err);
    }
    if (st == HFEED_OK) {
        plan_cache(l, log);
        st = hfeed__reader_create(l->cat, l->ring, cfg->workers, l->slot_rows,
                                  (size_t)(cfg->cache_mb << 20), &l->reader, err);
    }
    if (st == HFEED_OK) {
        fill_info(l);
        st = hfeed__loader_start_stages(l, err);
    }
    if (st != HFEED_OK) {
        hfeed__loader_destroy(l);
        return st;
    }
    *out = l;
    return HFEED_OK;
}

/* Shared tail of both open functions: turn an error into the caller's buffer. */
static hfeed_status finish_open(hfeed_status st, struct hfeed__config *cfg,
                                const struct hfeed__logger *log, hfeed_loader **out,
                                struct hfeed__err *err, char *errbuf, size_t errbuf_len)
{
    if (st == HFEED_OK) st = hfeed__loader_open_config(cfg, log, out, err);
    if (st != HFEED_OK) hfeed__err_copy(err, errbuf, errbuf_len);
    return st;
}

hfeed_status hfeed_loader_open(const char *config_path, hfeed_log_fn log, void *log_user,
                               hfeed_loader **out, char *errbuf, size_t errbuf_len)
{
    struct hfeed__err err = {0};
    struct hfeed__config *cfg = NULL;
    const struct hfeed__logger logger = {log, log_user};
    if (out == NULL || config_path == NULL) {
        hfeed__err_set(&err, HFEED_E_INVALID_ARG, "hfeed_loader_open: NULL argument");
        return finish_open(HFEED_E_INVALID_ARG, NULL, &logger, out, &err, errbuf, errbuf_len);
    }
    *out = NULL;
    const hfeed_status st = hfeed__config_load(config_path, &cfg, &err);
    return finish_open(st, cfg, &logger, out, &err, errbuf, errbuf_len);
}

hfeed_status hfeed_loader_open_json(const char *json, const char *base_dir, hfeed_log_fn log,
                                    void *log_user, hfeed_loader **out, char *errbuf,
                                    size_t errbuf_len)
{
    struct hfeed__err err = {0};
    struct hfeed__config *cfg = NULL;
    const struct hfeed__logger logger = {log, log_user};
    if (out == NULL || json == NULL) {
        hfeed__err_set(&err, HFEED_E_INVALID_ARG, "hfeed_loader_open_json: NULL argument");
        return finish_open(HFEED_E_INVALID_ARG, NULL, &logger, out, &err, errbuf, errbuf_len);
    }
    *out = NULL;
    const hfeed_status st = hfeed__config_parse(json, base_dir, NULL, &cfg, &err);
    return finish_open(st, cfg, &logger, out, &err, errbuf, errbuf_len);
}
