/* reader: worker threads that read and convert batches into ring slots (design in reader.h). */
#include "reader.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "alloc.h"
#include "chunkcache.h"
#include "fieldcache.h"
#include "codec.h"

/* A sample of the batch being filled: its global index and its row in the slot. */
struct pick {
    uint64_t index;
    size_t pos;
};

/* A run of rows inside one chunk whose chunk another worker was decoding: done last. */
struct piece {
    size_t k, fi;
    uint64_t row;
    size_t pick, n; /* w->picks[pick .. pick + n) */
};

struct worker {
    struct hfeed__reader *reader;
    pthread_t thread;
    bool running;
    uint64_t seq;           /* the batch being filled (the chunk cache's foresight names it) */
    unsigned char *scratch; /* scratch_bytes: a piece of stored rows on the way to convert */
    struct pick *picks;     /* batch_size */
    struct piece *deferred; /* nfields * batch_size: at most one piece per pick and field */
    size_t ndeferred;
    struct hfeed__codec *codec;
    unsigned char *raw; /* one stored chunk (the largest) */
    unsigned char *tmp; /* one decoded chunk: the codec's scratch */
    unsigned char *own; /* one decoded chunk, when the cache has no free entry */
    unsigned char *tile; /* one decoded tile of a slab whose chunks split samples (chunkio.h) */
    unsigned probe_every, probe_wait; /* ask_ahead probes one batch in probe_every */
    const struct hfeed__direct *unshrunk; /* this batch: checked not truncated (mapped rows) */
    struct hfeed__reader_stats local; /* this batch's counts; only this worker touches them */
    /* Published once per batch, so the consumer can sum them while workers run; aligned so
     * that two workers' counters never share a cache line. */
    _Alignas(64) atomic_uint_fast64_t read_ns, decode_ns, convert_ns, nan, overflow, h5_reads,
        read_ahead, decodes, mapped;
};

struct hfeed__reader {
    const struct hfeed__catalog *cat;
    struct hfeed__ring *ring;
    size_t batch_size;
    size_t scratch_bytes; /* PIECE_BYTES, at least the widest stored sample, at most a batch */
    unsigned nworkers;
    struct worker *workers;
    struct hfeed__fieldcache *caches; /* the fields' chunk caches; NULL: no field decodes */
    /* The files together fit a quarter of the memory the process may use: the first time one
     * turns out not to be cached, it is asked for whole (ask_ahead), once (asked_whole[fi]). */
    bool whole_files;
    atomic_bool *asked_whole;
    size_t memory;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void count(uint64_t *counter, uint64_t v)
{
    *counter += v;
}

static void add(atomic_uint_fast64_t *counter, uint64_t v)
{
    atomic_fetch_add_explicit(counter, v, memory_order_relaxed);
}

/* Publishes the worker's counts of the batch it just filled. */
static void flush_counts(struct worker *w)
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

static bool before(const struct pick *x, const struct pick *y)
{
    return x->index < y->index || (x->index == y->index && x->pos < y->pos);
}

/* Restores the max-heap below node i of p[0..n). */
static void sift_down(struct pick *p, size_t i, size_t n)
{
    for (;;) {
        size_t big = i;
        const size_t l = 2 * i + 1, r = l + 1;
        if (l < n && before(&p[big], &p[l])) big = l;
        if (r < n && before(&p[big], &p[r])) big = r;
        if (big == i) return;
        const struct pick t = p[i];
        p[i] = p[big];
        p[big] = t;
        i = big;
    }
}

/* Heapsort: in place and O(n log n) without allocating (glibc's qsort may malloc a merge
 * buffer, and the workers allocate nothing after open). */
static void sort_by_index(struct pick *p, size_t n)
{
    for (size_t i = n / 2; i-- > 0;) sift_down(p, i, n);
    for (size_t end = n; end-- > 1;) {
        const struct pick t = p[0];
        p[0] = p[end];
        p[end] = t;
        sift_down(p, 0, end);
    }
}

/* Fills w->picks with the slot's samples in ascending index order. Sequential batches are
 * already sorted and skip the sort. */
static void sort_picks(struct worker *w, const struct hfeed__slot *slot)
{
    bool sorted = true;
    for (size_t i = 0; i < slot->samples; i++) {
        w->picks[i].index = slot->indices[i];
        w->picks[i].pos = i;
        if (i > 0 && slot->indices[i] <= slot->indices[i - 1]) sorted = false;
    }
    if (!sorted) sort_by_index(w->picks, slot->samples);
}

/* Converts rows of a run from `src` into their slot rows; one call when they are in order. */
static hfeed_status convert_run(struct worker *w, const struct hfeed__field *f,
                                const struct hfeed__source *s, const struct pick *p, size_t n,
                                bool in_order, const unsigned char *src, unsigned char *dst,
                                size_t *bad_row, const unsigned char **bad_elem)
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
    count(&w->local.nan, counts.nan);
    count(&w->local.overflow, counts.overflow);
    return st;
}

/* bad_elem: the stored element that did not fit (convert_run's). */
static hfeed_status range_error(struct worker *w, const struct hfeed__field *f, size_t fi,
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

static bool positions_in_order(const struct pick *p, size_t n)
{
    for (size_t i = 1; i < n; i++)
        if (p[i].pos != p[0].pos + i) return false;
    return true;
}

/* Stored rows [row, row + n) of source s into `into`: pread where the direct path knows the
 * bytes, else H5Dread. */
static hfeed_status fetch_rows(struct worker *w, const struct hfeed__source *s, uint64_t row,
                               uint64_t n, unsigned char *into, struct hfeed__err *err)
{
    if (s->direct != NULL) return hfeed__chunkio_read_rows(s->direct, row, n, into, err);
    count(&w->local.h5_reads, 1);
    return hfeed__h5_dset_read_rows(s->dset, row, n, into, err);
}

/* Stored bytes fetched per read on the way to a conversion: small enough that the piece is
 * still in L2 when the conversion reads it back, large enough that the syscall is cheap beside
 * it. Converting straight from a mapping of the file was the alternative: fastest where the
 * first touch of a mapping is cheap, several times slower where it is not (a first pass at
 * 0.9-1.8 GB/s against 9 GB/s for pread + convert, ../shared/limits/README.md). pread costs
 * the same everywhere, and a file truncated under the loader becomes a clean error, not SIGBUS. */
#define PIECE_BYTES ((size_t)256 << 10)

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
static hfeed_status mapped_rows(struct worker *w, const struct hfeed__direct *d, uint64_t row,
                                size_t n, const unsigned char **out, struct hfeed__err *err)
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
static hfeed_status read_rows_run(struct worker *w, const struct hfeed__field *f, size_t fi,
                                  uint64_t row, const struct pick *p, size_t n, unsigned char *dst,
                                  struct hfeed__err *err)
{
    const struct hfeed__source *s = &f->sources[fi];
    const bool in_order = positions_in_order(p, n);
    const unsigned char *mapped;
    HFEED__CHECK(mapped_rows(w, s->direct, row, n, &mapped, err));
    if (mapped != NULL) {
        const uint64_t t0 = now_ns();
        size_t bad_row = 0;
        const unsigned char *bad_elem = NULL;
        const hfeed_status st =
            convert_run(w, f, s, p, n, in_order, mapped, dst, &bad_row, &bad_elem);
        const uint64_t t = now_ns() - t0;
        count(&w->local.convert_ns, t); /* the read is in it: page faults */
        count(&w->local.mapped_rows, n);
        return st == HFEED_E_RANGE ? range_error(w, f, fi, row + bad_row, bad_elem, err) : st;
    }
    if (in_order && s->conv.copy) {
        unsigned char *into = dst + p[0].pos * f->row_bytes;
        const uint64_t t0 = now_ns();
        HFEED__CHECK(fetch_rows(w, s, row, n, into, err));
        const uint64_t t1 = now_ns();
        struct hfeed__conv_counts counts = {0, 0};
        hfeed__conv_count(&s->conv, into, n * f->row_elems, &counts);
        count(&w->local.nan, counts.nan);
        const uint64_t t2 = now_ns();
        count(&w->local.read_ns, t1 - t0);
        count(&w->local.convert_ns, t2 - t1);
        return HFEED_OK;
    }
    const size_t per = w->reader->scratch_bytes / s->stored_row_bytes; /* >= 1: sized so */
    for (size_t i = 0; i < n;) {
        const size_t take = n - i < per ? n - i : per;
        const uint64_t t0 = now_ns();
        HFEED__CHECK(fetch_rows(w, s, row + i, take, w->scratch, err));
        const uint64_t t1 = now_ns();
        size_t bad_row = 0;
        const unsigned char *bad_elem = NULL;
        const hfeed_status st =
            convert_run(w, f, s, p + i, take, in_order, w->scratch, dst, &bad_row, &bad_elem);
        const uint64_t t2 = now_ns();
        count(&w->local.read_ns, t1 - t0);
        count(&w->local.convert_ns, t2 - t1);
        if (st == HFEED_E_RANGE) return range_error(w, f, fi, row + i + bad_row, bad_elem, err);
        HFEED__CHECK(st);
        i += take;
    }
    return HFEED_OK;
}

/* What decode_chunk needs: which chunk of which source, decoded with whose buffers. */
struct chunk_job {
    struct worker *w;
    const struct hfeed__direct *d;
    uint64_t chunk;
};

/* hfeed__decode_fn: the slab j->chunk into dst, outside every lock (chunkio.h). */
static hfeed_status decode_chunk(void *ctx, unsigned char *dst, struct hfeed__err *err)
{
    const struct chunk_job *j = ctx;
    struct worker *w = j->w;
    const struct hfeed__slab_bufs bufs = {w->codec, w->raw, w->tmp, w->tile};
    struct hfeed__slab_counts counts = {0, 0, 0};
    const hfeed_status st = hfeed__chunkio_decode_slab(j->d, j->chunk, &bufs, dst, &counts, err);
    count(&w->local.chunk_decodes, counts.chunks);
    count(&w->local.read_ns, counts.read_ns);
    count(&w->local.decode_ns, counts.decode_ns);
    return st;
}

/* Like read_rows_run, for a filtered source: each chunk the run touches comes decoded from the
 * shared cache (decoded there by whichever worker needed it first), and its rows are converted
 * straight from the cache into the slot. With !wait, a chunk another worker is decoding is not
 * waited for: its piece is deferred, and the worker goes on with the rest of the batch (with
 * chunk shuffle, workers filling neighbouring batches need the same chunks at the same time;
 * waiting would serialise them). */
static hfeed_status read_chunks_run(struct worker *w, size_t k, size_t fi, uint64_t row,
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
        const hfeed_status got =
            hfeed__chunkcache_acquire(cache, key_base + chunk, w->seq, wait,
                                      decode_chunk, &job, w->own, &data, &token, err);
        if (got == HFEED_E_BUSY) {
            w->deferred[w->ndeferred++] = (struct piece){k, fi, row + i, pick + i, take};
            i += take;
            continue;
        }
        HFEED__CHECK(got);
        const uint64_t t0 = now_ns();
        const struct pick *p = &w->picks[pick + i];
        size_t bad_row = 0;
        const unsigned char *bad_elem = NULL;
        hfeed_status st = convert_run(w, f, s, p, take, positions_in_order(p, take),
                                      data + first * d->row_bytes, dst, &bad_row, &bad_elem);
        /* Named while the chunk is still held: released, it may be evicted. */
        if (st != HFEED_OK) st = range_error(w, f, fi, row + i + bad_row, bad_elem, err);
        hfeed__chunkcache_release(cache, token, w->seq);
        count(&w->local.convert_ns, now_ns() - t0);
        if (st != HFEED_OK) return st;
        i += take;
    }
    return HFEED_OK;
}

/* The end of the run of consecutive sample indices that starts at pick i (of n sorted picks)
 * and stays before file_end: one read per field. */
static size_t run_end(const struct worker *w, size_t i, size_t n, uint64_t file_end)
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
static const struct hfeed__direct *from_file(struct worker *w, size_t k, size_t fi, uint64_t row)
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
static void ask_ahead(struct worker *w, const struct hfeed__slot *slot)
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
        if (cold) count(&w->local.read_ahead, 1);
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
static hfeed_status fill(struct worker *w, struct hfeed__slot *slot)
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
                HFEED__CHECK(
                    read_chunks_run(w, k, fi, row, i, j - i, slot->data[k], false, &slot->err));
            else
                HFEED__CHECK(read_rows_run(w, &c->fields[k], fi, row, &w->picks[i], j - i,
                                           slot->data[k], &slot->err));
            i = j;
            /* Closing does not wait for the rest of a batch nobody will take. */
            if (hfeed__ring_stopping(w->reader->ring)) return HFEED_OK;
        }
    }
    for (size_t i = 0; i < w->ndeferred && !hfeed__ring_stopping(w->reader->ring); i++) {
        const struct piece *q = &w->deferred[i];
        HFEED__CHECK(read_chunks_run(w, q->k, q->fi, q->row, q->pick, q->n, slot->data[q->k], true,
                                     &slot->err));
    }
    return HFEED_OK;
}

static void *work(void *arg)
{
    struct worker *w = arg;
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
    r->workers = hfeed__alloc_aligned(nworkers * sizeof *r->workers); /* 64: see struct worker */
    if (r->workers != NULL) memset(r->workers, 0, nworkers * sizeof *r->workers);
    if (r->workers != NULL) r->nworkers = nworkers;
    bool ok = r->workers != NULL;
    for (unsigned i = 0; ok && i < nworkers; i++) {
        struct worker *w = &r->workers[i];
        w->reader = r;
        w->scratch = hfeed__alloc_aligned(r->scratch_bytes);
        w->picks = hfeed__alloc(batch_size * sizeof *w->picks);
        w->deferred = hfeed__alloc(c->nfields * batch_size * sizeof *w->deferred);
        ok = w->scratch != NULL && w->picks != NULL && w->deferred != NULL;
        r->memory += r->scratch_bytes +
                     batch_size * (sizeof *w->picks + c->nfields * sizeof *w->deferred);
        if (ok && c->max_chunk_bytes > 0) {
            w->raw = hfeed__alloc_aligned(c->max_stored_chunk);
            const size_t tmp = c->max_tile_bytes > c->max_chunk_bytes ? c->max_tile_bytes
                                                                      : c->max_chunk_bytes;
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
        struct worker *w = &r->workers[i];
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
        struct worker *w = &r->workers[i];
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
