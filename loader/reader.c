/* reader: worker threads that read and convert batches into ring slots (design in reader.h). */
#include "reader_worker.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>

#include "alloc.h"
#include "chunkcache.h"
#include "codec.h"
#include "fieldcache.h"

static void add(atomic_uint_fast64_t *counter, uint64_t v)
{
    atomic_fetch_add_explicit(counter, v, memory_order_relaxed);
}

/* Publishes the worker's counts of the batch it just filled. */
static void flush_counts(struct hfeed__worker *w)
{
    add(&w->read_ns, w->local.read_ns);
    add(&w->decode_ns, w->local.decode_ns);
    add(&w->convert_ns, w->local.convert_ns);
    add(&w->nan, w->local.nan);
    add(&w->overflow, w->local.overflow);
    add(&w->h5_reads, w->local.h5_reads);
    add(&w->read_ahead, w->local.read_ahead);
    add(&w->decodes, w->local.chunk_decodes);
    add(&w->mapped, w->local.mapped_rows);
    memset(&w->local, 0, sizeof w->local);
}

static bool before(const struct hfeed__pick *x, const struct hfeed__pick *y)
{
    return x->index < y->index || (x->index == y->index && x->pos < y->pos);
}

/* Restores the max-heap below node i of p[0..n). */
static void sift_down(struct hfeed__pick *p, size_t i, size_t n)
{
    for (;;) {
        size_t big = i;
        const size_t l = 2 * i + 1, r = l + 1;
        if (l < n && before(&p[big], &p[l])) big = l;
        if (r < n && before(&p[big], &p[r])) big = r;
        if (big == i) return;
        const struct hfeed__pick t = p[i];
        p[i] = p[big];
        p[big] = t;
        i = big;
    }
}

/* Heapsort: in place and O(n log n) without allocating (glibc's qsort may malloc a merge
 * buffer, and the workers allocate nothing after open). */
static void sort_by_index(struct hfeed__pick *p, size_t n)
{
    for (size_t i = n / 2; i-- > 0;)
        sift_down(p, i, n);
    for (size_t end = n; end-- > 1;) {
        const struct hfeed__pick t = p[0];
        p[0] = p[end];
        p[end] = t;
        sift_down(p, 0, end);
    }
}

/* Fills w->picks with the slot's samples in ascending index order. Sequential batches are
 * already sorted and skip the sort. */
static void sort_picks(struct hfeed__worker *w, const struct hfeed__slot *slot)
{
    bool sorted = true;
    for (size_t i = 0; i < slot->samples; i++) {
        w->picks[i].index = slot->indices[i];
        w->picks[i].pos = i;
        if (i > 0 && slot->indices[i] <= slot->indices[i - 1]) sorted = false;
    }
    if (!sorted) sort_by_index(w->picks, slot->samples);
}

/* The end of the run of consecutive sample indices that starts at pick i (of n sorted picks)
 * and stays before file_end: one read per field. */
static size_t run_end(const struct hfeed__worker *w, size_t i, size_t n, uint64_t file_end)
{
    size_t j = i + 1;
    while (j < n && w->picks[j].index == w->picks[j - 1].index + 1 && w->picks[j].index < file_end)
        j++;
    return j;
}

/* Rows of a batch probed for residency before it is read (hfeed__chunkio_cached). */
#define COLD_PROBES 4

/* The probes cost a few mincore() calls a batch: 4-5 ms of a 100 ms one-epoch run over 1 GiB of
 * cached rows. While they keep finding everything cached, a worker probes every 2nd, 4th, ...
 * batch, up to every PROBE_EVERY_MAX-th; one cold probe makes it probe every batch again. */
#define PROBE_EVERY_MAX 16

/* Whether the bytes of row `row` of source (k, fi) must come from the file for this batch:
 * read directly, and not already decoded in the field's chunk cache. */
static const struct hfeed__direct *from_file(struct hfeed__worker *w, size_t k, size_t fi,
                                             uint64_t row)
{
    const struct hfeed__reader *r = w->reader;
    const struct hfeed__direct *d = r->cat->fields[k].sources[fi].direct;
    if (d == NULL || !hfeed__chunkio_filtered(d)) return d;
    const uint64_t key = hfeed__fieldcache_key(r->caches, k, fi, row / d->chunk_rows);
    return hfeed__chunkcache_holds(hfeed__fieldcache_cache(r->caches, k), key) ? NULL : d;
}

/* Data not in the page cache (a dataset larger than memory, a first epoch, a cold start): read
 * with pread, each row (or chunk) of a shuffled batch comes from the disk
 * alone, one round trip after another. So when any of a few rows spread over the batch is not
 * cached, the kernel is asked for all of the batch's rows of that field at once (posix_fadvise
 * WILLNEED; for compressed fields, every chunk the batch needs that the chunk cache lacks), and
 * the disk works on them in parallel while the worker converts or decodes the first ones. Warm
 * data costs the probes only. (Measured on this project's machine, 256 random 8 KiB rows per
 * batch from an evicted file: 5.7x the samples/s of reading them one by one,
 * docs/benchmarks.md.) */
static void ask_ahead(struct hfeed__worker *w, const struct hfeed__slot *slot)
{
    const struct hfeed__catalog *c = w->reader->cat;
    const size_t n = slot->samples, step = n > COLD_PROBES ? n / COLD_PROBES : 1;
    if (w->probe_wait > 0) {
        w->probe_wait--;
        return;
    }
    bool any_cold = false;
    for (size_t k = 0; k < c->nfields; k++) {
        bool cold = false;
        for (size_t i = 0; i < n && !cold; i += step) {
            uint64_t row;
            const size_t fi = hfeed__catalog_locate(c, w->picks[i].index, &row);
            const struct hfeed__direct *d = from_file(w, k, fi, row);
            cold = d != NULL && !hfeed__chunkio_cached(d, row);
        }
        if (cold) hfeed__reader_count(&w->local.read_ahead, 1);
        any_cold = any_cold || cold;
        const struct hfeed__direct *last = NULL; /* compressed: ask for each chunk once */
        uint64_t last_chunk = 0;
        for (size_t i = 0; cold && i < n;) {
            uint64_t row;
            const size_t fi = hfeed__catalog_locate(c, w->picks[i].index, &row);
            const size_t j = run_end(w, i, n, c->file_start[fi + 1]);
            const struct hfeed__direct *d = c->fields[k].sources[fi].direct;
            if (d != NULL && hfeed__chunkio_filtered(d)) {
                const uint64_t chunk = row / d->chunk_rows, end = (row + j - i - 1) / d->chunk_rows;
                for (uint64_t ch = chunk; ch <= end; ch++) {
                    if ((d == last && ch == last_chunk) ||
                        from_file(w, k, fi, ch * d->chunk_rows) == NULL)
                        continue;
                    hfeed__chunkio_will_need(d, ch * d->chunk_rows, 1);
                    last = d;
                    last_chunk = ch;
                }
            } else if (d != NULL) {
                hfeed__chunkio_will_need(d, row, j - i);
            }
            i = j;
        }
        /* Files that fit in memory are then asked for whole, once: read in large sequential
         * requests, every later batch finds its rows cached, where row by row an epoch costs a
         * disk request per row (a disk throttled to 2000 requests/s and 200 MB/s: an epoch of
         * the 1 GiB bench file in 5.3 s against 42.5 s, the file's sequential read taking
         * 5.1 s; docs/benchmarks.md). After this batch's rows, asked for first. */
        for (size_t fi = 0; cold && w->reader->whole_files && fi < c->nfiles; fi++) {
            const struct hfeed__direct *d = c->fields[k].sources[fi].direct;
            if (d != NULL && !atomic_exchange(&w->reader->asked_whole[fi], true))
                hfeed__chunkio_will_need_file(d);
        }
    }
    const unsigned doubled = w->probe_every > 0 ? 2 * w->probe_every : 2;
    w->probe_every = any_cold ? 1 : doubled < PROBE_EVERY_MAX ? doubled : PROBE_EVERY_MAX;
    w->probe_wait = w->probe_every - 1;
}

/* Reads every field of the slot's batch. */
static hfeed_status fill(struct hfeed__worker *w, struct hfeed__slot *slot)
{
    const struct hfeed__catalog *c = w->reader->cat;
    sort_picks(w, slot);
    ask_ahead(w, slot);
    w->ndeferred = 0;
    w->seq = slot->seq;
    w->unshrunk = NULL;
    for (size_t k = 0; k < c->nfields; k++) {
        for (size_t i = 0; i < slot->samples;) {
            uint64_t row;
            const size_t fi = hfeed__catalog_locate(c, w->picks[i].index, &row);
            const size_t j = run_end(w, i, slot->samples, c->file_start[fi + 1]);
            const struct hfeed__direct *d = c->fields[k].sources[fi].direct;
            if (d != NULL && hfeed__chunkio_filtered(d))
                HFEED__CHECK(hfeed__reader_chunks_run(w, k, fi, row, i, j - i, slot->data[k], false,
                                                      &slot->err));
            else
                HFEED__CHECK(hfeed__reader_rows_run(w, &c->fields[k], fi, row, &w->picks[i], j - i,
                                                    slot->data[k], &slot->err));
            i = j;
            /* Closing does not wait for the rest of a batch nobody will take. */
            if (hfeed__ring_stopping(w->reader->ring)) return HFEED_OK;
        }
    }
    for (size_t i = 0; i < w->ndeferred && !hfeed__ring_stopping(w->reader->ring); i++) {
        const struct hfeed__piece *q = &w->deferred[i];
        HFEED__CHECK(hfeed__reader_chunks_run(w, q->k, q->fi, q->row, q->pick, q->n,
                                              slot->data[q->k], true, &slot->err));
    }
    return HFEED_OK;
}

static void *work(void *arg)
{
    struct hfeed__worker *w = arg;
    struct hfeed__slot *slot;
    while (hfeed__ring_claim(w->reader->ring, &slot)) {
        slot->status = fill(w, slot);
        flush_counts(w);
        hfeed__ring_publish(w->reader->ring, slot);
    }
    return NULL;
}

/* Whether the files together fit a quarter of the memory the process may use (the page cache
 * they would fill is shared with everything else), and a flag per file (ask_ahead). */
static bool plan_whole_files(struct hfeed__reader *r)
{
    const struct hfeed__catalog *c = r->cat;
    r->asked_whole = hfeed__calloc(c->nfiles, sizeof *r->asked_whole);
    if (r->asked_whole == NULL) return false;
    for (size_t fi = 0; fi < c->nfiles; fi++)
        atomic_init(&r->asked_whole[fi], false);
    double bytes = 0.0;
    for (size_t fi = 0; fi < c->nfiles; fi++) {
        struct stat st;
        if (c->fds[fi] < 0 || fstat(c->fds[fi], &st) != 0) return true; /* unknown: rows only */
        bytes += (double)st.st_size;
    }
    r->whole_files = bytes <= hfeed__chunkcache_usable_memory() / 4.0;
    return true;
}

bool hfeed__reader_lookahead(const struct hfeed__reader *r, unsigned *ahead)
{
    *ahead = 0;
    return r->caches != NULL && hfeed__fieldcache_lookahead(r->caches, ahead);
}

void hfeed__reader_expect(struct hfeed__reader *r, uint64_t seq, const uint64_t *indices, size_t n)
{
    if (r->caches != NULL) hfeed__fieldcache_expect(r->caches, seq, indices, n);
}

void hfeed__reader_forget(struct hfeed__reader *r)
{
    if (r->caches != NULL) hfeed__fieldcache_forget(r->caches);
}

hfeed_status hfeed__reader_create(const struct hfeed__catalog *c, struct hfeed__ring *ring,
                                  unsigned nworkers, size_t batch_size, size_t cache_budget,
                                  struct hfeed__reader **out, struct hfeed__err *err)
{
    *out = NULL;
    struct hfeed__reader *r = hfeed__calloc(1, sizeof *r);
    if (r == NULL) return HFEED__FAIL(err, HFEED_E_NOMEM, "reader: out of memory");
    r->cat = c;
    r->ring = ring;
    r->batch_size = batch_size;
    size_t widest = 0;
    for (size_t k = 0; k < c->nfields; k++)
        if (c->fields[k].max_stored_row_bytes > widest) widest = c->fields[k].max_stored_row_bytes;
    r->scratch_bytes = widest * batch_size < PIECE_BYTES ? widest * batch_size : PIECE_BYTES;
    if (r->scratch_bytes < widest) r->scratch_bytes = widest;
    r->workers =
        hfeed__alloc_aligned(nworkers * sizeof *r->workers); /* 64: see struct hfeed__worker */
    if (r->workers != NULL) memset(r->workers, 0, nworkers * sizeof *r->workers);
    if (r->workers != NULL) r->nworkers = nworkers;
    bool ok = r->workers != NULL;
    for (unsigned i = 0; ok && i < nworkers; i++) {
        struct hfeed__worker *w = &r->workers[i];
        w->reader = r;
        w->scratch = hfeed__alloc_aligned(r->scratch_bytes);
        w->picks = hfeed__alloc(batch_size * sizeof *w->picks);
        w->deferred = hfeed__alloc(c->nfields * batch_size * sizeof *w->deferred);
        ok = w->scratch != NULL && w->picks != NULL && w->deferred != NULL;
        r->memory +=
            r->scratch_bytes + batch_size * (sizeof *w->picks + c->nfields * sizeof *w->deferred);
        if (ok && c->max_chunk_bytes > 0) {
            w->raw = hfeed__alloc_aligned(c->max_stored_chunk);
            const size_t tmp =
                c->max_tile_bytes > c->max_chunk_bytes ? c->max_tile_bytes : c->max_chunk_bytes;
            w->tmp = hfeed__alloc_aligned(tmp); /* the codec's scratch: one decoded chunk */
            w->own = hfeed__alloc_aligned(c->max_chunk_bytes);
            w->tile = c->max_tile_bytes > 0 ? hfeed__alloc_aligned(c->max_tile_bytes) : NULL;
            ok = w->raw != NULL && w->tmp != NULL && w->own != NULL &&
                 (w->tile != NULL || c->max_tile_bytes == 0) &&
                 hfeed__codec_create(&w->codec, err) == HFEED_OK;
            r->memory += c->max_stored_chunk + tmp + c->max_chunk_bytes + c->max_tile_bytes;
        }
    }
    if (ok && c->max_chunk_bytes > 0) {
        ok = hfeed__fieldcache_create(c, cache_budget, hfeed__ring_slots(ring), batch_size,
                                      &r->caches, err) == HFEED_OK;
        if (ok) r->memory += hfeed__fieldcache_memory(r->caches);
    }
    if (ok) ok = plan_whole_files(r);
    if (!ok) {
        hfeed__reader_destroy(r);
        return HFEED__FAIL(err, HFEED_E_NOMEM, "reader: out of memory for %u workers", nworkers);
    }
    *out = r;
    return HFEED_OK;
}

hfeed_status hfeed__reader_start(struct hfeed__reader *r, struct hfeed__err *err)
{
    for (unsigned i = 0; i < r->nworkers; i++) {
        struct hfeed__worker *w = &r->workers[i];
        if (pthread_create(&w->thread, NULL, work, w) != 0) {
            hfeed__reader_stop(r);
            return HFEED__FAIL(err, HFEED_E_THREAD, "cannot start worker thread %u of %u", i + 1,
                               r->nworkers);
        }
        w->running = true;
    }
    return HFEED_OK;
}

void hfeed__reader_stop(struct hfeed__reader *r)
{
    hfeed__ring_stop(r->ring);
    for (unsigned i = 0; i < r->nworkers; i++) {
        if (!r->workers[i].running) continue;
        pthread_join(r->workers[i].thread, NULL);
        r->workers[i].running = false;
    }
}

void hfeed__reader_get_stats(const struct hfeed__reader *r, struct hfeed__reader_stats *out)
{
    memset(out, 0, sizeof *out);
    for (unsigned i = 0; i < r->nworkers; i++) {
        struct hfeed__worker *w = &r->workers[i];
        out->read_ns += atomic_load_explicit(&w->read_ns, memory_order_relaxed);
        out->convert_ns += atomic_load_explicit(&w->convert_ns, memory_order_relaxed);
        out->decode_ns += atomic_load_explicit(&w->decode_ns, memory_order_relaxed);
        out->nan += atomic_load_explicit(&w->nan, memory_order_relaxed);
        out->overflow += atomic_load_explicit(&w->overflow, memory_order_relaxed);
        out->h5_reads += atomic_load_explicit(&w->h5_reads, memory_order_relaxed);
        out->read_ahead += atomic_load_explicit(&w->read_ahead, memory_order_relaxed);
        out->chunk_decodes += atomic_load_explicit(&w->decodes, memory_order_relaxed);
        out->mapped_rows += atomic_load_explicit(&w->mapped, memory_order_relaxed);
    }
    if (r->caches != NULL) hfeed__fieldcache_get_stats(r->caches, &out->cache_hits);
}

size_t hfeed__reader_memory(const struct hfeed__reader *r)
{
    return r->memory;
}

void hfeed__reader_destroy(struct hfeed__reader *r)
{
    if (r == NULL) return;
    if (r->workers != NULL) hfeed__reader_stop(r);
    for (unsigned i = 0; i < r->nworkers; i++) {
        hfeed__free(r->workers[i].scratch);
        hfeed__free(r->workers[i].picks);
        hfeed__free(r->workers[i].deferred);
        hfeed__free(r->workers[i].raw);
        hfeed__free(r->workers[i].tmp);
        hfeed__free(r->workers[i].own);
        hfeed__free(r->workers[i].tile);
        hfeed__codec_destroy(r->workers[i].codec);
    }
    hfeed__fieldcache_destroy(r->caches);
    hfeed__free(r->workers);
    hfeed__free(r->asked_whole);
    hfeed__free(r);
}
