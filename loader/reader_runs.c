/* reader_runs: one run of a batch's rows into its slot, by pread, from the mapping, from the
 * decoded-chunk cache or with H5Dread, and converted (design in reader.h). */
#include "reader_worker.h"

#include <string.h>

#include "chunkcache.h"
#include "fieldcache.h"

/* Converts rows of a run from `src` into their slot rows; one call when they are in order. */
static hfeed_status convert_run(struct hfeed__worker *w, const struct hfeed__field *f,
                                const struct hfeed__source *s, const struct hfeed__pick *p,
                                size_t n, bool in_order, const unsigned char *src,
                                unsigned char *dst, size_t *bad_row, const unsigned char **bad_elem)
{
    struct hfeed__conv_counts counts = {0, 0};
    hfeed_status st = HFEED_OK;
    size_t bad = 0;
    const size_t groups = in_order ? 1 : n, rows_each = in_order ? n : 1;
    for (size_t g = 0; g < groups && st == HFEED_OK; g++) {
        st =
            hfeed__conv_run(&s->conv, src + g * rows_each * s->stored_row_bytes,
                            dst + p[g].pos * f->row_bytes, rows_each * f->row_elems, &counts, &bad);
        if (st != HFEED_OK) *bad_row = g * rows_each + bad / f->row_elems;
        if (st != HFEED_OK)
            *bad_elem = src + g * rows_each * s->stored_row_bytes + bad * s->info.type.size;
    }
    hfeed__reader_count(&w->local.nan, counts.nan);
    hfeed__reader_count(&w->local.overflow, counts.overflow);
    return st;
}

/* bad_elem: the stored element that did not fit (convert_run's). */
static hfeed_status range_error(struct hfeed__worker *w, const struct hfeed__field *f, size_t fi,
                                uint64_t row, const unsigned char *bad_elem, struct hfeed__err *err)
{
    const struct hfeed__source *s = &f->sources[fi];
    char value[48];
    return HFEED__FAIL(err, HFEED_E_RANGE,
                       "field \"%s\": file \"%s\" dataset \"%s\" row %llu: the value %s does not "
                       "fit %s",
                       f->name, hfeed__h5_file_path(w->reader->cat->files[fi]), f->dataset,
                       (unsigned long long)row,
                       hfeed__conv_value_text(s->info.type, bad_elem, value, sizeof value),
                       hfeed_dtype_name(f->dtype));
}

static bool positions_in_order(const struct hfeed__pick *p, size_t n)
{
    for (size_t i = 1; i < n; i++)
        if (p[i].pos != p[0].pos + i) return false;
    return true;
}

/* Stored rows [row, row + n) of source s into `into`: pread where the direct path knows the
 * bytes, else H5Dread. */
static hfeed_status fetch_rows(struct hfeed__worker *w, const struct hfeed__source *s, uint64_t row,
                               uint64_t n, unsigned char *into, struct hfeed__err *err)
{
    if (s->direct != NULL) return hfeed__chunkio_read_rows(s->direct, row, n, into, err);
    hfeed__reader_count(&w->local.h5_reads, 1);
    return hfeed__h5_dset_read_rows(s->dset, row, n, into, err);
}

/* Runs of at most this many stored bytes are read "one at a time" (global shuffle): with pread,
 * or converted straight from the file's mapping where the catalog chose that for the file
 * (chunkio.h rows_from_map), once the file is checked not to have shrunk this batch.
 *
 * Which is faster changes with the page cache's state more than between machines. On this
 * project's machine, random 8 KiB rows of a 1 GiB file converted from a fresh mapping at 1.7x
 * pread's rate (limit_paths rand_mmap 1.05M/s, rand_pread 626k/s) right after the file was read
 * in, when the page cache held it in 2 MiB pages that the mapping maps whole (smaps:
 * FilePmdMapped 966 MB after 2000 random touches), and at 0.25-0.7x half an hour later, once the
 * kernel's proactive reclaim had split them. Timing probes mispredicted both ways (random rows
 * at open: 3x pread's cost while the epoch ran at 0.7x; 512 KiB windows: 0.42x while it ran at
 * 1.45x; the first batches of a run: above pread while the epoch ran at 0.7x, their faults
 * building the page tables). Counting faults does not: hfeed__chunkio_huge_cached. */
#define MAP_RUN_BYTES ((size_t)64 << 10)

/* The bytes of the n rows from `row` of d in its mapping, when rows read one at a time come from
 * it (d->rows_from_map); NULL: read them with pread. Fails (HFEED_E_READ) when the file has
 * shrunk. */
static hfeed_status mapped_rows(struct hfeed__worker *w, const struct hfeed__direct *d,
                                uint64_t row, size_t n, const unsigned char **out,
                                struct hfeed__err *err)
{
    *out = NULL;
    if (d == NULL || !d->rows_from_map || n * d->row_bytes > MAP_RUN_BYTES) return HFEED_OK;
    const unsigned char *at = hfeed__chunkio_map_rows(d, row, n);
    if (at == NULL) return HFEED_OK;
    if (w->unshrunk != d) {
        if (hfeed__chunkio_shrunk(d))
            return HFEED__FAIL(err, HFEED_E_READ,
                               "file \"%s\" dataset \"%s\": the file is shorter than when the "
                               "loader opened it (truncated while being read?)",
                               d->path, d->dataset);
        w->unshrunk = d;
    }
    *out = at;
    return HFEED_OK;
}

/* Reads the n samples p[0..n) of field f, consecutive rows from `row` of file fi, into the slot:
 * straight into place when no conversion is needed, else a piece at a time through scratch and
 * convert; rows read one at a time maybe from the mapping (mapped_rows). */
hfeed_status hfeed__reader_rows_run(struct hfeed__worker *w, const struct hfeed__field *f,
                                    size_t fi, uint64_t row, const struct hfeed__pick *p, size_t n,
                                    unsigned char *dst, struct hfeed__err *err)
{
    const struct hfeed__source *s = &f->sources[fi];
    const bool in_order = positions_in_order(p, n);
    const unsigned char *mapped;
    HFEED__CHECK(mapped_rows(w, s->direct, row, n, &mapped, err));
    if (mapped != NULL) {
        const uint64_t t0 = hfeed__now_ns();
        size_t bad_row = 0;
        const unsigned char *bad_elem = NULL;
        const hfeed_status st =
            convert_run(w, f, s, p, n, in_order, mapped, dst, &bad_row, &bad_elem);
        const uint64_t t = hfeed__now_ns() - t0;
        hfeed__reader_count(&w->local.convert_ns, t); /* the read is in it: page faults */
        hfeed__reader_count(&w->local.mapped_rows, n);
        return st == HFEED_E_RANGE ? range_error(w, f, fi, row + bad_row, bad_elem, err) : st;
    }
    if (in_order && s->conv.copy) {
        unsigned char *into = dst + p[0].pos * f->row_bytes;
        const uint64_t t0 = hfeed__now_ns();
        HFEED__CHECK(fetch_rows(w, s, row, n, into, err));
        const uint64_t t1 = hfeed__now_ns();
        struct hfeed__conv_counts counts = {0, 0};
        hfeed__conv_count(&s->conv, into, n * f->row_elems, &counts);
        hfeed__reader_count(&w->local.nan, counts.nan);
        const uint64_t t2 = hfeed__now_ns();
        hfeed__reader_count(&w->local.read_ns, t1 - t0);
        hfeed__reader_count(&w->local.convert_ns, t2 - t1);
        return HFEED_OK;
    }
    const size_t per = w->reader->scratch_bytes / s->stored_row_bytes; /* >= 1: sized so */
    for (size_t i = 0; i < n;) {
        const size_t take = n - i < per ? n - i : per;
        const uint64_t t0 = hfeed__now_ns();
        HFEED__CHECK(fetch_rows(w, s, row + i, take, w->scratch, err));
        const uint64_t t1 = hfeed__now_ns();
        size_t bad_row = 0;
        const unsigned char *bad_elem = NULL;
        const hfeed_status st =
            convert_run(w, f, s, p + i, take, in_order, w->scratch, dst, &bad_row, &bad_elem);
        const uint64_t t2 = hfeed__now_ns();
        hfeed__reader_count(&w->local.read_ns, t1 - t0);
        hfeed__reader_count(&w->local.convert_ns, t2 - t1);
        if (st == HFEED_E_RANGE) return range_error(w, f, fi, row + i + bad_row, bad_elem, err);
        HFEED__CHECK(st);
        i += take;
    }
    return HFEED_OK;
}

/* What decode_chunk needs: which chunk of which source, decoded with whose buffers. */
struct chunk_job {
    struct hfeed__worker *w;
    const struct hfeed__direct *d;
    uint64_t chunk;
};

/* hfeed__decode_fn: the slab j->chunk into dst, outside every lock (chunkio.h). */
static hfeed_status decode_chunk(void *ctx, unsigned char *dst, struct hfeed__err *err)
{
    const struct chunk_job *j = ctx;
    struct hfeed__worker *w = j->w;
    const struct hfeed__slab_bufs bufs = {w->codec, w->raw, w->tmp, w->tile};
    struct hfeed__slab_counts counts = {0, 0, 0};
    const hfeed_status st = hfeed__chunkio_decode_slab(j->d, j->chunk, &bufs, dst, &counts, err);
    hfeed__reader_count(&w->local.chunk_decodes, counts.chunks);
    hfeed__reader_count(&w->local.read_ns, counts.read_ns);
    hfeed__reader_count(&w->local.decode_ns, counts.decode_ns);
    return st;
}

/* Like hfeed__reader_rows_run, for a filtered source: each chunk the run touches comes decoded from
 * the shared cache (decoded there by whichever worker needed it first), and its rows are converted
 * straight from the cache into the slot. With !wait, a chunk another worker is decoding is not
 * waited for: its piece is deferred, and the worker goes on with the rest of the batch (with
 * chunk shuffle, workers filling neighbouring batches need the same chunks at the same time;
 * waiting would serialise them). */
hfeed_status hfeed__reader_chunks_run(struct hfeed__worker *w, size_t k, size_t fi, uint64_t row,
                                      size_t pick, size_t n, unsigned char *dst, bool wait,
                                      struct hfeed__err *err)
{
    const struct hfeed__catalog *c = w->reader->cat;
    const struct hfeed__field *f = &c->fields[k];
    const struct hfeed__source *s = &f->sources[fi];
    const struct hfeed__direct *d = s->direct;
    const uint64_t key_base = hfeed__fieldcache_key(w->reader->caches, k, fi, 0);
    struct hfeed__chunkcache *cache = hfeed__fieldcache_cache(w->reader->caches, k);
    for (size_t i = 0; i < n;) {
        const uint64_t chunk = (row + i) / d->chunk_rows;
        const uint64_t first = row + i - chunk * d->chunk_rows;
        const size_t take = (size_t)(d->chunk_rows - first < n - i ? d->chunk_rows - first : n - i);
        struct chunk_job job = {w, d, chunk};
        const unsigned char *data;
        void *token;
        const hfeed_status got = hfeed__chunkcache_acquire(
            cache, key_base + chunk, w->seq, wait, decode_chunk, &job, w->own, &data, &token, err);
        if (got == HFEED_E_BUSY) {
            w->deferred[w->ndeferred++] = (struct hfeed__piece){k, fi, row + i, pick + i, take};
            i += take;
            continue;
        }
        HFEED__CHECK(got);
        const uint64_t t0 = hfeed__now_ns();
        const struct hfeed__pick *p = &w->picks[pick + i];
        size_t bad_row = 0;
        const unsigned char *bad_elem = NULL;
        hfeed_status st = convert_run(w, f, s, p, take, positions_in_order(p, take),
                                      data + first * d->row_bytes, dst, &bad_row, &bad_elem);
        /* Named while the chunk is still held: released, it may be evicted. */
        if (st != HFEED_OK) st = range_error(w, f, fi, row + i + bad_row, bad_elem, err);
        hfeed__chunkcache_release(cache, token, w->seq);
        hfeed__reader_count(&w->local.convert_ns, hfeed__now_ns() - t0);
        if (st != HFEED_OK) return st;
        i += take;
    }
    return HFEED_OK;
}
