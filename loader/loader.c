/* loader: the public API of a running loader: next, seek, close, its info, stats and last
 * message, the batch accessors, and the fields' statistics. Checks arguments. Building a loader
 * is loader_open.c's; the structs and the wiring of the stages are in loader_impl.h.
 *
 * Lifetime: the loader is reference-counted: one reference for the open handle, one per
 * borrowed batch. hfeed_loader_close() stops the workers and closes the files at once, then drops
 * the handle's reference; the memory goes when the last borrowed batch is released.
 *
 * Threads: the consumer thread calls everything but hfeed_batch_release(), which may run on any
 * thread (it touches only the ring, under the ring's mutex, and the atomic reference count). */
#include <stdatomic.h>
#include <string.h>

#include "batch.h"
#include "catalog.h"
#include "clock.h"
#include "config.h"
#include "device.h"
#include "error.h"
#include "h5feed.h"
#include "loader.h"
#include "loader_impl.h"
#include "prefetch.h"
#include "reader.h"
#include "transform.h"
#include "upload.h"

hfeed_status hfeed__loader_start_stages(struct hfeed_loader *l, struct hfeed__err *err)
{
    if (l->upload != NULL) HFEED__CHECK(hfeed__upload_start(l->upload, err));
    const hfeed_status st = hfeed__reader_start(l->reader, err);
    if (st != HFEED_OK) hfeed__upload_stop(l->upload);
    return st;
}

/* Stops and joins every thread of the loader: the workers first (the producers), then the
 * upload stage, which gives back the host slots of the uploads still in flight. */
static void stop_stages(struct hfeed_loader *l)
{
    hfeed__reader_stop(l->reader);
    hfeed__upload_stop(l->upload);
}

static void unref(struct hfeed_loader *l)
{
    if (atomic_fetch_sub_explicit(&l->refs, 1u, memory_order_acq_rel) == 1u)
        hfeed__loader_destroy(l);
}

hfeed_status hfeed_loader_close(hfeed_loader *l)
{
    if (l == NULL) return HFEED_OK;
    l->closed = true;
    stop_stages(l);
    hfeed__catalog_close_files(l->cat);
    unref(l);
    return HFEED_OK;
}

static hfeed_status fail(hfeed_loader *l, hfeed_status code, const char *msg)
{
    hfeed__err_clear(&l->err);
    return hfeed__err_set(&l->err, code, "%s", msg);
}

hfeed_status hfeed_loader_next(hfeed_loader *l, hfeed_batch **out)
{
    if (out != NULL) *out = NULL;
    if (l == NULL || out == NULL) return HFEED_E_INVALID_ARG;
    if (l->closed) return fail(l, HFEED_E_INVALID_ARG, "hfeed_loader_next: loader is closed");
    if (l->sticky != HFEED_OK) return fail(l, l->sticky, l->sticky_err.msg);
    struct hfeed__slot *slot = NULL;
    const uint64_t t0 = hfeed__now_ns();
    const hfeed_status st = hfeed__ring_take(l->out, &slot);
    l->wait_ns += hfeed__now_ns() - t0;
    if (st == HFEED_END) return fail(l, HFEED_END, "");
    if (st == HFEED_E_BUSY)
        return fail(l, st,
                    "hfeed_loader_next: every prefetch slot is borrowed; release a batch "
                    "first");
    if (slot->status != HFEED_OK) {
        l->sticky = slot->status;
        l->sticky_err = slot->err;
        hfeed__ring_give_back(l->out, slot);
        return fail(l, l->sticky, l->sticky_err.msg);
    }
    l->batches_out++;
    l->samples_out += slot->samples;
    for (size_t k = 0; k < l->cat->nfields; k++)
        l->bytes_out += slot->samples * l->cat->fields[k].row_bytes;
    atomic_fetch_add_explicit(&l->refs, 1u, memory_order_relaxed);
    *out = &l->batches[slot - hfeed__ring_slot(l->out, 0)];
    atomic_store_explicit(&(*out)->holds, 1u, memory_order_relaxed);
    hfeed__err_clear(&l->err);
    return HFEED_OK;
}

hfeed_status hfeed_loader_seek(hfeed_loader *l, uint64_t epoch, uint64_t batch)
{
    if (l == NULL || l->closed) return HFEED_E_INVALID_ARG;
    hfeed__err_clear(&l->err);
    const uint64_t per_epoch = l->info.batches_per_epoch;
    if (epoch >= l->info.epochs || batch >= per_epoch)
        return hfeed__err_set(&l->err, HFEED_E_INVALID_ARG,
                              "hfeed_loader_seek: (epoch %llu, batch %llu) is past the end "
                              "(%llu epochs of %llu batches)",
                              (unsigned long long)epoch, (unsigned long long)batch,
                              (unsigned long long)l->info.epochs, (unsigned long long)per_epoch);
    if (atomic_load(&l->refs) > 1u)
        return hfeed__err_set(&l->err, HFEED_E_BUSY, "hfeed_loader_seek: batches are borrowed");
    stop_stages(l);
    /* Cannot be busy: nothing is borrowed (checked above), every thread is joined and the
     * upload stage gave its host slots back. */
    const uint64_t seq = epoch * per_epoch + batch;
    hfeed__reader_forget(l->reader); /* the batches the caches expected will not come */
    l->foreseen = seq;
    hfeed_status st = hfeed__ring_restart(l->ring, seq);
    if (st == HFEED_OK && l->dev_ring != NULL) st = hfeed__ring_restart(l->dev_ring, seq);
    if (st != HFEED_OK) {
        hfeed__err_set(&l->err, st, "hfeed_loader_seek: internal error: a slot is still in use "
                       "after the stages stopped; the loader cannot go on");
    } else {
        l->sticky = HFEED_OK;
        st = hfeed__loader_start_stages(l, &l->err);
    }
    if (st != HFEED_OK) { /* no worker runs: every later next() must say why, not "end" */
        l->sticky = st;
        l->sticky_err = l->err;
    }
    return st;
}

hfeed_status hfeed_loader_get_info(const hfeed_loader *l, hfeed_loader_info *out)
{
    if (l == NULL || out == NULL) return HFEED_E_INVALID_ARG;
    *out = l->info;
    return HFEED_OK;
}

hfeed_status hfeed_loader_get_stats(hfeed_loader *l, hfeed_stats *out)
{
    if (l == NULL || out == NULL) return HFEED_E_INVALID_ARG;
    struct hfeed__reader_stats rs;
    hfeed__reader_get_stats(l->reader, &rs);
    memset(out, 0, sizeof *out);
    out->batches = l->batches_out;
    out->samples = l->samples_out;
    out->bytes_out = l->bytes_out;
    out->wait_ns = l->wait_ns;
    out->nan_values = rs.nan;
    out->overflow_values = rs.overflow;
    out->read_ns = rs.read_ns;
    out->convert_ns = rs.convert_ns;
    out->fallback_reads = rs.h5_reads;
    out->decode_ns = rs.decode_ns;
    out->chunk_decodes = rs.chunk_decodes;
    out->cache_hits = rs.cache_hits;
    out->read_ahead = rs.read_ahead;
    out->mapped_rows = rs.mapped_rows;
    out->cache_bytes = l->cache_bytes;
    if (l->upload != NULL)
        hfeed__upload_get_stats(l->upload, &out->upload_bytes, &out->upload_ns,
                                &out->upload_span_ns);
    return HFEED_OK;
}

const char *hfeed_loader_errmsg(const hfeed_loader *l)
{
    return l != NULL ? l->err.msg : "";
}

void hfeed__batch_hold(hfeed_batch *b)
{
    atomic_fetch_add_explicit(&b->holds, 1u, memory_order_relaxed);
}

void hfeed__batch_drop(hfeed_batch *b)
{
    if (atomic_fetch_sub_explicit(&b->holds, 1u, memory_order_acq_rel) != 1u) return;
    struct hfeed_loader *l = b->loader;
    hfeed__ring_give_back(l->out, b->slot);
    unref(l);
}

void hfeed_batch_release(hfeed_batch *b)
{
    if (b == NULL) return;
    hfeed__batch_drop(b);
}

hfeed_status hfeed__batch_fence(hfeed_batch *b, void *stream)
{
    struct hfeed_loader *l = b->loader;
    if (l->upload == NULL) return HFEED_OK;
    struct hfeed__err why = {0};
    return l->dev_ops->fence(l->dev, (unsigned)(b - l->batches), stream, &why);
}

hfeed_status hfeed_batch_release_on_stream(hfeed_batch *b, void *stream)
{
    if (b == NULL) return HFEED_E_INVALID_ARG;
    const hfeed_status st = hfeed__batch_fence(b, stream);
    hfeed__batch_drop(b);
    return st;
}

hfeed_status hfeed_batch_get_info(const hfeed_batch *b, hfeed_batch_info *out)
{
    if (b == NULL || out == NULL) return HFEED_E_INVALID_ARG;
    out->epoch = b->slot->epoch;
    out->index = b->slot->index;
    out->samples = b->slot->samples;
    out->fields = b->loader->cat->nfields;
    return HFEED_OK;
}

hfeed_status hfeed_batch_get_tensor(const hfeed_batch *b, size_t field, hfeed_tensor *out)
{
    if (b == NULL || out == NULL || field >= b->loader->cat->nfields) return HFEED_E_INVALID_ARG;
    const struct hfeed__field *f = &b->loader->cat->fields[field];
    memset(out, 0, sizeof *out);
    out->name = f->name;
    out->data = b->slot->data[field];
    out->dtype = f->dtype;
    out->ndim = 1 + f->sample_ndim;
    out->shape[0] = (int64_t)b->slot->samples;
    for (int d = 0; d < f->sample_ndim; d++)
        out->shape[d + 1] = (int64_t)f->sample_shape[d];
    out->nbytes = b->slot->samples * f->row_bytes;
    out->device = b->loader->info.device;
    out->device_index = b->loader->info.device_index;
    return HFEED_OK;
}

hfeed_status hfeed_batch_get_indices(const hfeed_batch *b, const uint64_t **out)
{
    if (b == NULL || out == NULL) return HFEED_E_INVALID_ARG;
    *out = b->slot->indices;
    return HFEED_OK;
}

hfeed_status hfeed_loader_get_field_stats(const hfeed_loader *l, size_t field, const double **mean,
                                          const double **std, size_t *n)
{
    if (mean != NULL) *mean = NULL;
    if (std != NULL) *std = NULL;
    if (n != NULL) *n = 0;
    if (l == NULL || mean == NULL || std == NULL || n == NULL || field >= l->cfg->nfields)
        return HFEED_E_INVALID_ARG;
    (void)hfeed__transform_stats(l->xf, field, mean, std, n);
    return HFEED_OK;
}

hfeed_status hfeed__loader_get_field_affine(const hfeed_loader *l, size_t field,
                                            const double **scale, const double **offset,
                                            size_t *n)
{
    if (scale != NULL) *scale = NULL;
    if (offset != NULL) *offset = NULL;
    if (n != NULL) *n = 0;
    if (l == NULL || scale == NULL || offset == NULL || n == NULL || field >= l->cfg->nfields)
        return HFEED_E_INVALID_ARG;
    (void)hfeed__transform_affine(l->xf, field, scale, offset, n);
    return HFEED_OK;
}
