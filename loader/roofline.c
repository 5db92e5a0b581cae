/* roofline: one field's limit (roofline.h; what the limits mean: h5feed.h).
 *
 * DESIGN
 *
 * A measurement is `reps` repetitions of one way: rows by pread, rows from a mapping, or the
 * decode pipeline. A repetition starts plan->workers threads, which work until their share is
 * done or the budget has passed since the start, and is timed from before the first thread
 * starts to after the last one ends: its rate is the samples done over that wall time. The
 * median repetition is kept.
 *
 * Work. Rows: the field's files concatenated, global rows numbered as the catalog does.
 * Sequential: the first `pass` rows (all, or the cap's worth), each thread a contiguous share
 * read in batches of batch_size that never cross a file or, within a file, are read a chunk at a
 * time (one pread or one mapped run per chunk touched, as the loader reads). Random: each
 * thread draws batches of batch_size rows uniformly over all rows, sorts each batch and reads
 * every row alone. Decode: the field's slabs (chunkio.h) concatenated over its files, each
 * thread a contiguous share of the first `pass`, one slab at a time: every stored chunk of it
 * read, decoded (copied when unfiltered), placed when chunks split samples, then the slab's rows
 * converted.
 *
 * Buffers. Each thread owns its buffers, allocated and written once per field before the first
 * repetition (no repetition pays first touches of fresh memory, as the loader's hot path never
 * does) and reused by every batch and repetition. A mapping is made fresh for each repetition:
 * its first touches are part of what that way costs.
 *
 * Safety. A mapped address is used only after checking that the bytes lie inside the file's
 * size as fstat() gave it when the file was mapped: the catalog checked every chunk against the
 * size at open, but the file may have changed since. A file that shrinks while mapped still
 * raises SIGBUS, as for any mapping reader (chunkio.h).
 *
 * Threads. The workers read the catalog, plan and repetition, which nobody writes while they
 * run; each writes only its own job (count, status, message), which the caller reads after
 * joining. No locks. */
#include "roofline.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "alloc.h"
#include "chunkio.h"
#include "clock.h"
#include "codec.h"
#include "convert.h"

/* Repetitions kept per way, at most (the plan's reps are clamped to it). */
#define MAX_REPS 15

enum way { WAY_PREAD, WAY_MAP, WAY_DECODE };

/* The bytes one thread's buffers need for a field. */
struct sizes {
    size_t in, out;              /* rows: batch_size stored rows; output rows (rows or a slab) */
    size_t raw, tmp, tile, slab; /* decode: stored chunk, codec scratch, decoded chunk, slab */
    uint64_t slab_rows;          /* decode: the most rows of a slab */
};

/* One thread's buffers, reused by every batch and repetition. */
struct bufs {
    unsigned char *in, *out, *raw, *tmp, *tile, *slab;
    uint64_t *picks; /* random rows: one batch of global rows */
    struct hfeed__codec *codec;
};

/* One repetition's mappings, one per file of the field. */
struct maps {
    const unsigned char **at;
    uint64_t *len;
};

/* What one repetition's threads share, read-only while they run. */
struct rep {
    const struct hfeed__catalog *c;
    const struct hfeed__field *f;
    const struct hfeed__roofline_plan *p;
    enum way way;
    struct maps maps;           /* WAY_MAP */
    uint64_t rows;              /* the field's rows in all files */
    uint64_t pass;              /* sequential: rows of one pass; random: rows per thread at
                                 * most; decode: slabs of one pass */
    const uint64_t *slab_start; /* decode: nfiles + 1 prefix sums of the files' slabs */
    uint64_t t0;                /* when the repetition started (hfeed__now_ns) */
    uint64_t seed;
};

struct job {
    const struct rep *r;
    unsigned id;
    struct bufs *b;
    pthread_t th;
    uint64_t samples;
    hfeed_status st;
    struct hfeed__err err;
};

static uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

static bool over_budget(const struct rep *r)
{
    return hfeed__now_ns() - r->t0 >= r->p->budget_ns;
}

hfeed_roofline_path hfeed__roofline_kind(const struct hfeed__field *f, size_t nfiles, bool random)
{
    size_t decoded = 0;
    for (size_t fi = 0; fi < nfiles; fi++) {
        const struct hfeed__direct *d = f->sources[fi].direct;
        if (d == NULL) return HFEED_ROOFLINE_HDF5;
        decoded += hfeed__chunkio_filtered(d);
    }
    if (decoded == 0) return random ? HFEED_ROOFLINE_RAND_PREAD : HFEED_ROOFLINE_SEQ_PREAD;
    return decoded == nfiles ? HFEED_ROOFLINE_DECODE : HFEED_ROOFLINE_MIXED;
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double hfeed__roofline_median(double *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_double);
    return v[n / 2];
}

/* ---- the work of one thread ---- */

/* Converts `rows` stored rows of source s at src into dst. */
static hfeed_status convert_rows(const struct rep *r, const struct hfeed__source *s,
                                 const unsigned char *src, unsigned char *dst, uint64_t rows,
                                 struct hfeed__err *err)
{
    size_t bad = 0;
    const size_t n = (size_t)rows * r->f->row_elems;
    if (hfeed__conv_run(&s->conv, src, dst, n, NULL, &bad) == HFEED_OK) return HFEED_OK;
    return HFEED__FAIL(err, HFEED_E_RANGE,
                       "field \"%s\" file \"%s\": element %zu of a batch does not fit %s",
                       r->f->name, s->direct->path, bad, hfeed_dtype_name(r->f->dtype));
}

/* Where stored rows [row, row + n) of file fi lie in the repetition's mapping (the rows lie in
 * one chunk when chunked): *at, or NULL when their storage is unallocated. */
static hfeed_status mapped(const struct rep *r, size_t fi, const struct hfeed__direct *d,
                           uint64_t row, uint64_t n, const unsigned char **at,
                           struct hfeed__err *err)
{
    *at = NULL;
    uint64_t base = d->contiguous_addr;
    if (d->chunked) {
        const uint64_t c = row / d->chunk_rows;
        base = d->chunks[c].addr;
        row -= c * d->chunk_rows;
    }
    if (base == HFEED__CHUNK_UNALLOCATED) return HFEED_OK;
    const uint64_t len = r->maps.len[fi], rb = d->row_bytes;
    const uint64_t fit = base <= len && rb > 0 ? (len - base) / rb : 0; /* rows after base */
    if (rb > 0 && (base > len || n > fit || row > fit - n))
        return HFEED__FAIL(err, HFEED_E_READ,
                           "file \"%s\" dataset \"%s\": rows at offset %llu lie past the end "
                           "of the file as mapped (%llu bytes): did it change since open?",
                           d->path, d->dataset, (unsigned long long)base,
                           (unsigned long long)len);
    *at = r->maps.at[fi] + base + row * rb;
    return HFEED_OK;
}

/* Converts stored rows [row, row + n) of file fi, within one chunk, into dst, the repetition's
 * way: pread into b->in, or straight from the mapping. */
static hfeed_status rows_piece(const struct rep *r, struct bufs *b, size_t fi, uint64_t row,
                               uint64_t n, unsigned char *dst, struct hfeed__err *err)
{
    const struct hfeed__source *s = &r->f->sources[fi];
    const struct hfeed__direct *d = s->direct;
    const unsigned char *src = b->in;
    if (r->way == WAY_PREAD) {
        HFEED__CHECK(hfeed__chunkio_read_rows(d, row, n, b->in, err));
    } else {
        HFEED__CHECK(mapped(r, fi, d, row, n, &src, err));
        if (src == NULL) {
            hfeed__chunkio_fill(d, b->in, n * r->f->row_elems);
            src = b->in;
        }
    }
    return convert_rows(r, s, src, dst, n, err);
}

/* Converts rows [row, row + n) of file fi into dst, a chunk at a time. */
static hfeed_status rows_run(const struct rep *r, struct bufs *b, size_t fi, uint64_t row,
                             uint64_t n, unsigned char *dst, struct hfeed__err *err)
{
    const struct hfeed__direct *d = r->f->sources[fi].direct;
    while (n > 0) {
        const uint64_t take = d->chunked ? min_u64(n, d->chunk_rows - row % d->chunk_rows) : n;
        HFEED__CHECK(rows_piece(r, b, fi, row, take, dst, err));
        dst += take * r->f->row_bytes;
        row += take;
        n -= take;
    }
    return HFEED_OK;
}

/* Sequential rows: this thread's contiguous share of the pass, in batches within one file. */
static hfeed_status run_seq(struct job *j)
{
    const struct rep *r = j->r;
    const unsigned nw = r->p->workers;
    const uint64_t end = r->pass / nw * (j->id + 1) + (j->id + 1 == nw ? r->pass % nw : 0);
    for (uint64_t g = r->pass / nw * j->id; g < end && !over_budget(r);) {
        uint64_t row = 0;
        const size_t fi = hfeed__catalog_locate(r->c, g, &row);
        const uint64_t n = min_u64(min_u64(r->p->batch_size, end - g), r->c->file_start[fi + 1] - g);
        HFEED__CHECK(rows_run(r, j->b, fi, row, n, j->b->out, &j->err));
        g += n;
        j->samples += n;
    }
    return HFEED_OK;
}

/* xorshift64*: the thread's own random rows, from its own state. */
static uint64_t next_random(uint64_t *x)
{
    *x ^= *x >> 12;
    *x ^= *x << 25;
    *x ^= *x >> 27;
    return *x * UINT64_C(2685821657736338717);
}

static int cmp_u64(const void *a, const void *b)
{
    const uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Random rows: batches of sorted random rows, each row read on its own. */
static hfeed_status run_rand(struct job *j)
{
    const struct rep *r = j->r;
    uint64_t x = r->seed * UINT64_C(0x9E3779B97F4A7C15) + j->id + 1;
    while (j->samples < r->pass && !over_budget(r)) {
        const size_t n = (size_t)min_u64(r->p->batch_size, r->pass - j->samples);
        for (size_t i = 0; i < n; i++)
            j->b->picks[i] = next_random(&x) % r->rows;
        qsort(j->b->picks, n, sizeof *j->b->picks, cmp_u64);
        for (size_t i = 0; i < n; i++) {
            uint64_t row = 0;
            const size_t fi = hfeed__catalog_locate(r->c, j->b->picks[i], &row);
            HFEED__CHECK(rows_piece(r, j->b, fi, row, 1, j->b->out + i * r->f->row_bytes, &j->err));
        }
        j->samples += n;
    }
    return HFEED_OK;
}

/* Decode: this thread's contiguous share of the pass's slabs, one at a time. */
static hfeed_status run_decode(struct job *j)
{
    const struct rep *r = j->r;
    const unsigned nw = r->p->workers;
    const uint64_t end = r->pass / nw * (j->id + 1) + (j->id + 1 == nw ? r->pass % nw : 0);
    size_t fi = 0;
    for (uint64_t s = r->pass / nw * j->id; s < end && !over_budget(r); s++) {
        while (s >= r->slab_start[fi + 1])
            fi++;
        const struct hfeed__source *src = &r->f->sources[fi];
        const struct hfeed__direct *d = src->direct;
        const uint64_t c = s - r->slab_start[fi];
        const struct hfeed__slab_bufs bufs = {j->b->codec, j->b->raw, j->b->tmp, j->b->tile};
        HFEED__CHECK(hfeed__chunkio_decode_slab(d, c, &bufs, j->b->slab, NULL, &j->err));
        const uint64_t rows = min_u64(d->chunk_rows, d->nrows - c * d->chunk_rows);
        HFEED__CHECK(convert_rows(r, src, j->b->slab, j->b->out, rows, &j->err));
        j->samples += rows;
    }
    return HFEED_OK;
}

static void *thread_main(void *arg)
{
    struct job *j = arg;
    if (j->r->way == WAY_DECODE)
        j->st = run_decode(j);
    else
        j->st = j->r->p->random ? run_rand(j) : run_seq(j);
    return NULL;
}

/* ---- buffers, mappings and repetitions, on the calling thread ---- */

/* What a thread's buffers need for field f measured by plan p (decode: its sources' largest
 * chunks; rows: a batch). */
static struct sizes field_sizes(const struct hfeed__catalog *c, const struct hfeed__field *f,
                                const struct hfeed__roofline_plan *p, bool decode)
{
    struct sizes z = {0};
    if (!decode) {
        z.in = (size_t)p->batch_size * f->max_stored_row_bytes;
        z.out = (size_t)p->batch_size * f->row_bytes;
        return z;
    }
    for (size_t fi = 0; fi < c->nfiles; fi++) {
        const struct hfeed__direct *d = f->sources[fi].direct;
        if (d->max_stored_chunk > z.raw) z.raw = d->max_stored_chunk;
        if (d->tile_bytes > z.tile) z.tile = d->tile_bytes;
        if (d->chunk_bytes > z.slab) z.slab = d->chunk_bytes;
        if (d->chunk_rows > z.slab_rows) z.slab_rows = d->chunk_rows;
    }
    z.tmp = z.tile > z.slab ? z.tile : z.slab;
    z.out = (size_t)z.slab_rows * f->row_bytes;
    return z;
}

static void bufs_free(struct bufs *b)
{
    hfeed__free(b->in);
    hfeed__free(b->out);
    hfeed__free(b->raw);
    hfeed__free(b->tmp);
    hfeed__free(b->tile);
    hfeed__free(b->slab);
    hfeed__free(b->picks);
    hfeed__codec_destroy(b->codec);
}

/* Allocates a buffer of n bytes (at least 1) and writes it once, so that no repetition pays its
 * first touches. */
static unsigned char *warm_buffer(size_t n)
{
    unsigned char *p = hfeed__alloc_aligned(n > 0 ? n : 1);
    if (p != NULL) memset(p, 0, n > 0 ? n : 1);
    return p;
}

static hfeed_status bufs_create(const struct sizes *z, uint64_t batch_size, bool decode,
                                struct bufs *b, struct hfeed__err *err)
{
    memset(b, 0, sizeof *b);
    b->in = warm_buffer(z->in);
    b->out = warm_buffer(z->out);
    b->picks = hfeed__calloc((size_t)batch_size, sizeof *b->picks);
    bool ok = b->in != NULL && b->out != NULL && b->picks != NULL;
    if (ok && decode) {
        b->raw = warm_buffer(z->raw);
        b->tmp = warm_buffer(z->tmp);
        b->tile = warm_buffer(z->tile);
        b->slab = warm_buffer(z->slab);
        ok = b->raw != NULL && b->tmp != NULL && b->tile != NULL && b->slab != NULL &&
             hfeed__codec_create(&b->codec, err) == HFEED_OK;
    }
    return ok ? HFEED_OK : HFEED__FAIL(err, HFEED_E_NOMEM, "roofline: out of memory for buffers");
}

static void maps_close(struct maps *m, size_t nfiles)
{
    for (size_t fi = 0; fi < nfiles; fi++) {
        if (m->at[fi] != NULL) munmap((void *)(uintptr_t)m->at[fi], (size_t)m->len[fi]);
        m->at[fi] = NULL;
        m->len[fi] = 0;
    }
}

/* Maps each of f's files read-only, afresh. Returns: false (nothing left mapped) when a file
 * cannot be mapped: the loader then reads with pread, and so the mapping way has no limit. */
static bool maps_open(const struct hfeed__field *f, size_t nfiles, struct maps *m)
{
    for (size_t fi = 0; fi < nfiles; fi++) {
        const int fd = f->sources[fi].direct->fd;
        struct stat sb;
        void *at = MAP_FAILED;
        if (fstat(fd, &sb) == 0 && sb.st_size > 0 && (uint64_t)sb.st_size <= SIZE_MAX)
            at = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_SHARED, fd, 0);
        if (at == MAP_FAILED) {
            maps_close(m, nfiles);
            return false;
        }
        m->at[fi] = at;
        m->len[fi] = (uint64_t)sb.st_size;
    }
    return true;
}

/* One repetition: starts the workers on r, joins them, and sets *rate (samples/s over the wall
 * time) and *samples. Returns: HFEED_OK, the first worker's error, or HFEED_E_THREAD. */
static hfeed_status run_rep(struct rep *r, struct job *jobs, struct bufs *bufs, double *rate,
                            uint64_t *samples, struct hfeed__err *err)
{
    const unsigned nw = r->p->workers;
    unsigned started = 0;
    hfeed_status st = HFEED_OK;
    r->t0 = hfeed__now_ns();
    for (; started < nw; started++) {
        struct job *j = &jobs[started];
        *j = (struct job){.r = r, .id = started, .b = &bufs[started]};
        if (pthread_create(&j->th, NULL, thread_main, j) != 0) {
            st = HFEED__FAIL(err, HFEED_E_THREAD, "roofline: cannot start worker %u", started);
            break;
        }
    }
    for (unsigned i = 0; i < started; i++)
        pthread_join(jobs[i].th, NULL);
    const uint64_t wall = hfeed__now_ns() - r->t0;
    *samples = 0;
    for (unsigned i = 0; i < started; i++) {
        *samples += jobs[i].samples;
        if (st == HFEED_OK && jobs[i].st != HFEED_OK)
            st = hfeed__err_set(err, jobs[i].st, "%s", jobs[i].err.msg);
    }
    *rate = wall > 0 ? (double)*samples * 1e9 / (double)wall : 0.0;
    return st;
}

/* Runs the plan's repetitions of r's way: *rate = the median samples/s and *samples that
 * repetition's samples; a refused mapping gives a zero rate. */
static hfeed_status measure_way(struct rep *r, struct job *jobs, struct bufs *bufs, double *rate,
                                uint64_t *samples, struct hfeed__err *err)
{
    const size_t reps = r->p->reps < MAX_REPS ? r->p->reps : MAX_REPS;
    double v[MAX_REPS], sorted[MAX_REPS];
    uint64_t n[MAX_REPS];
    *rate = 0.0;
    *samples = 0;
    for (size_t i = 0; i < reps; i++) {
        r->seed = i + 1;
        if (r->way == WAY_MAP && !maps_open(r->f, r->c->nfiles, &r->maps)) return HFEED_OK;
        const hfeed_status st = run_rep(r, jobs, bufs, &v[i], &n[i], err);
        if (r->way == WAY_MAP) maps_close(&r->maps, r->c->nfiles);
        HFEED__CHECK(st);
        sorted[i] = v[i];
    }
    *rate = hfeed__roofline_median(sorted, reps);
    for (size_t i = 0; i < reps; i++)
        if (v[i] == *rate) *samples = n[i];
    return HFEED_OK;
}

/* Sets up r for field k: rows, the pass, the decode slabs (into *slab_start, the caller's). */
static hfeed_status rep_setup(const struct hfeed__catalog *c, size_t k,
                              const struct hfeed__roofline_plan *p, bool decode, struct rep *r,
                              uint64_t **slab_start, struct hfeed__err *err)
{
    const struct hfeed__field *f = &c->fields[k];
    *r = (struct rep){.c = c, .f = f, .p = p, .rows = c->file_start[c->nfiles]};
    if (decode) {
        *slab_start = hfeed__calloc(c->nfiles + 1, sizeof **slab_start);
        if (*slab_start == NULL) return HFEED__FAIL(err, HFEED_E_NOMEM, "roofline: out of memory");
        for (size_t fi = 0; fi < c->nfiles; fi++)
            (*slab_start)[fi + 1] = (*slab_start)[fi] + f->sources[fi].direct->nchunks;
        r->slab_start = *slab_start;
        const uint64_t most = f->max_chunk_bytes > 0 ? p->cap_bytes / f->max_chunk_bytes : 0;
        r->pass = min_u64((*slab_start)[c->nfiles], most > p->workers ? most : p->workers);
        r->way = WAY_DECODE;
        return HFEED_OK;
    }
    const uint64_t row = f->max_stored_row_bytes > 0 ? f->max_stored_row_bytes : 1;
    const uint64_t most = p->cap_bytes / row > p->batch_size ? p->cap_bytes / row : p->batch_size;
    /* One pass: every row once (random: that many draws, split over the threads). */
    r->pass = min_u64(r->rows, most);
    if (p->random) r->pass = r->pass / p->workers + 1;
    return HFEED_OK;
}

/* Measures the rows of r's field both ways into *out, which keeps the better. */
static hfeed_status measure_rows(struct rep *r, struct job *jobs, struct bufs *bufs,
                                 struct hfeed__roofline_limit *out, struct hfeed__err *err)
{
    const size_t nfiles = r->c->nfiles;
    uint64_t map_samples = 0;
    r->maps.at = hfeed__calloc(nfiles, sizeof *r->maps.at);
    r->maps.len = hfeed__calloc(nfiles, sizeof *r->maps.len);
    hfeed_status st = r->maps.at != NULL && r->maps.len != NULL
                          ? HFEED_OK
                          : HFEED__FAIL(err, HFEED_E_NOMEM, "roofline: out of memory");
    r->way = WAY_PREAD;
    if (st == HFEED_OK) st = measure_way(r, jobs, bufs, &out->pread_limit, &out->samples, err);
    r->way = WAY_MAP;
    if (st == HFEED_OK) st = measure_way(r, jobs, bufs, &out->map_limit, &map_samples, err);
    hfeed__free(r->maps.at);
    hfeed__free(r->maps.len);
    const bool map = out->map_limit > out->pread_limit;
    out->limit = map ? out->map_limit : out->pread_limit;
    if (map)
        out->path = r->p->random ? HFEED_ROOFLINE_RAND_MAP : HFEED_ROOFLINE_SEQ_MAP;
    return st;
}

hfeed_status hfeed__roofline_measure_field(const struct hfeed__catalog *c, size_t k,
                                           const struct hfeed__roofline_plan *p,
                                           struct hfeed__roofline_limit *out,
                                           struct hfeed__err *err)
{
    memset(out, 0, sizeof *out);
    out->path = hfeed__roofline_kind(&c->fields[k], c->nfiles, p->random);
    if (out->path == HFEED_ROOFLINE_HDF5 || out->path == HFEED_ROOFLINE_MIXED ||
        c->file_start[c->nfiles] == 0)
        return HFEED_OK;
    const bool decode = out->path == HFEED_ROOFLINE_DECODE;
    const struct sizes z = field_sizes(c, &c->fields[k], p, decode);
    struct bufs *bufs = hfeed__calloc(p->workers, sizeof *bufs);
    struct job *jobs = hfeed__calloc(p->workers, sizeof *jobs);
    uint64_t *slab_start = NULL;
    unsigned made = 0;
    struct rep r;
    hfeed_status st = bufs != NULL && jobs != NULL
                          ? HFEED_OK
                          : HFEED__FAIL(err, HFEED_E_NOMEM, "roofline: out of memory");
    for (; st == HFEED_OK && made < p->workers; made++)
        st = bufs_create(&z, p->batch_size, decode, &bufs[made], err);
    if (st == HFEED_OK) st = rep_setup(c, k, p, decode, &r, &slab_start, err);
    if (st == HFEED_OK && decode) {
        st = measure_way(&r, jobs, bufs, &out->limit, &out->samples, err);
        out->pread_limit = out->limit;
    } else if (st == HFEED_OK) {
        st = measure_rows(&r, jobs, bufs, out, err);
    }
    for (unsigned i = 0; bufs != NULL && i < made; i++)
        bufs_free(&bufs[i]);
    hfeed__free(bufs);
    hfeed__free(jobs);
    hfeed__free(slab_start);
    return st;
}
