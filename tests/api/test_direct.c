/* direct: the direct read path (pread at offsets from the chunk index, deflate/shuffle/fletcher32
 * decoded by the workers) delivers exactly what H5Dread delivers, and falls back to H5Dread,
 * logged once per file and dataset, wherever it does not understand the storage.
 *
 * The main check opens two loaders on one config that differ only in "read_path" ("auto" and
 * "hdf5") and compares every batch's indices and tensors byte for byte, for every shuffle mode
 * with 1 and 3 workers. The "auto" run must really take the direct path (no log line, no read
 * through H5Dread) wherever that is expected, or the comparison would prove nothing. Several
 * cases are also compared with the values that were written (fixtures' formula, or this file's
 * own writers), so that both paths being wrong the same way would show too.
 *
 * Also checked: unallocated chunks and unallocated contiguous storage read as the fill value;
 * each fallback is logged exactly once and still reads correct values; HFEED_READ_PATH=hdf5;
 * each compressed chunk is decoded once per epoch with a cache; seek gives the batches of an
 * uninterrupted run; a corrupt chunk fails the run with HFEED_E_READ before any batch holding
 * its rows is delivered; memory is fixed at open.
 *
 * Files this suite needs that the fixtures cannot write (userblock, sparse chunks, fill values,
 * per-chunk filter masks, incompressible chunks, other filters) are written here with the HDF5
 * C API. The lzf and blosc cases need Debian's HDF5 plugins and are skipped without them. */
#include <criterion/criterion.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <hdf5.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixtures.h"
#include "h5feed.h"

TestSuite(direct, .init = fx_setup, .fini = fx_teardown);

/* --- log capture ------------------------------------------------------------------------- */

#define MAX_LINES 32
#define LINE_LEN 1024

/* The library may log from a worker thread, hence the mutex. */
struct logcap {
    pthread_mutex_t mu;
    size_t n; /* lines received (only the first MAX_LINES are kept) */
    char lines[MAX_LINES][LINE_LEN];
};

static void capture(void *user, int level, const char *msg)
{
    struct logcap *c = user;
    (void)level;
    if (strncmp(msg, "cache_mb \"auto\"", 15) == 0) return; /* every open says its cache size */
    if (strncmp(msg, "read_rows \"auto\"", 16) == 0) return; /* every global shuffle, its way */
    pthread_mutex_lock(&c->mu);
    if (c->n < MAX_LINES) snprintf(c->lines[c->n], LINE_LEN, "%s", msg);
    c->n++;
    pthread_mutex_unlock(&c->mu);
}

/* Lines that contain every non-NULL needle. */
static size_t count_lines(const struct logcap *c, const char *a, const char *b, const char *d)
{
    size_t n = 0;
    for (size_t i = 0; i < c->n && i < MAX_LINES; i++) {
        const char *l = c->lines[i];
        if ((a == NULL || strstr(l, a) != NULL) && (b == NULL || strstr(l, b) != NULL) &&
            (d == NULL || strstr(l, d) != NULL))
            n++;
    }
    return n;
}

static const char *all_lines(const struct logcap *c)
{
    static char buf[MAX_LINES * 256];
    size_t at = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < c->n && i < MAX_LINES && at + 1 < sizeof buf; i++) {
        const int w = snprintf(buf + at, sizeof buf - at, "[%s] ", c->lines[i]);
        if (w < 0) break;
        at += (size_t)w < sizeof buf - at ? (size_t)w : sizeof buf - at - 1;
    }
    return buf;
}

/* --- one complete run --------------------------------------------------------------------- */

#define MAX_FIELDS 6

/* Everything a run delivered, copied out of the batches. */
struct run {
    size_t batches;
    size_t samples;
    uint64_t *indices;  /* samples entries, in delivery order */
    size_t *batch_rows; /* batches entries */
    uint64_t *batch_epoch, *batch_index;
    size_t nfields;
    unsigned char *data[MAX_FIELDS];
    size_t bytes[MAX_FIELDS];
    hfeed_dtype dtype[MAX_FIELDS];
    size_t row_bytes[MAX_FIELDS];
    hfeed_stats stats;
    hfeed_loader_info info_open, info_end;
    struct logcap log;
};

static void *grow(void *p, size_t bytes)
{
    void *q = realloc(p, bytes > 0 ? bytes : 1);
    cr_assert_not_null(q, "out of memory in the test");
    return q;
}

static hfeed_status open_logged(const char *json, struct logcap *log, hfeed_loader **l, char *err)
{
    err[0] = '\0';
    return hfeed_loader_open_json(json, fx_dir(), capture, log, l, err, HFEED_ERRBUF_SIZE);
}

/* Opens json, takes every batch to HFEED_END, records them, closes (asserting HFEED_OK). */
static void run_all(const char *json, struct run *r)
{
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->log.mu, NULL);
    char err[HFEED_ERRBUF_SIZE];
    hfeed_loader *l = NULL;
    hfeed_status st = open_logged(json, &r->log, &l, err);
    cr_assert_eq(st, HFEED_OK, "open %s: %s: %s", json, hfeed_strerror((int)st), err);
    cr_assert_eq(hfeed_loader_get_info(l, &r->info_open), HFEED_OK);
    r->nfields = r->info_open.fields;
    cr_assert(r->nfields <= MAX_FIELDS);
    for (;;) {
        hfeed_batch *b = NULL;
        st = hfeed_loader_next(l, &b);
        if (st == HFEED_END) break;
        cr_assert_eq(st, HFEED_OK, "next after %zu batches: %s: %s (config %s)", r->batches,
                     hfeed_strerror((int)st), hfeed_loader_errmsg(l), json);
        hfeed_batch_info bi;
        cr_assert_eq(hfeed_batch_get_info(b, &bi), HFEED_OK);
        const uint64_t *idx = NULL;
        cr_assert_eq(hfeed_batch_get_indices(b, &idx), HFEED_OK);
        r->indices = grow(r->indices, (r->samples + bi.samples) * sizeof *r->indices);
        memcpy(r->indices + r->samples, idx, bi.samples * sizeof *idx);
        r->batch_rows = grow(r->batch_rows, (r->batches + 1) * sizeof *r->batch_rows);
        r->batch_epoch = grow(r->batch_epoch, (r->batches + 1) * sizeof *r->batch_epoch);
        r->batch_index = grow(r->batch_index, (r->batches + 1) * sizeof *r->batch_index);
        r->batch_rows[r->batches] = bi.samples;
        r->batch_epoch[r->batches] = bi.epoch;
        r->batch_index[r->batches] = bi.index;
        cr_assert_eq(bi.fields, r->nfields);
        for (size_t k = 0; k < r->nfields; k++) {
            hfeed_tensor t;
            cr_assert_eq(hfeed_batch_get_tensor(b, k, &t), HFEED_OK);
            cr_assert_eq(t.device, HFEED_DEVICE_CPU);
            cr_assert_eq(t.shape[0], (int64_t)bi.samples);
            if (r->batches == 0) {
                r->dtype[k] = t.dtype;
                r->row_bytes[k] = bi.samples > 0 ? t.nbytes / bi.samples : 0;
            }
            cr_assert_eq(t.dtype, r->dtype[k]);
            cr_assert_eq(t.nbytes, bi.samples * r->row_bytes[k]);
            r->data[k] = grow(r->data[k], r->bytes[k] + t.nbytes);
            memcpy(r->data[k] + r->bytes[k], t.data, t.nbytes);
            r->bytes[k] += t.nbytes;
        }
        r->samples += bi.samples;
        r->batches++;
        hfeed_batch_release(b);
    }
    cr_assert_eq(hfeed_loader_get_stats(l, &r->stats), HFEED_OK);
    cr_assert_eq(hfeed_loader_get_info(l, &r->info_end), HFEED_OK);
    cr_assert_eq(hfeed_loader_close(l), HFEED_OK);
}

static void free_run(struct run *r)
{
    free(r->indices);
    free(r->batch_rows);
    free(r->batch_epoch);
    free(r->batch_index);
    for (size_t k = 0; k < MAX_FIELDS; k++)
        free(r->data[k]);
    pthread_mutex_destroy(&r->log.mu);
}

/* Every sample of each epoch arrives exactly once. */
static void expect_each_sample_once(const struct run *r)
{
    const uint64_t total = r->info_open.total_samples;
    const uint64_t epochs = r->info_open.epochs;
    cr_assert_eq(r->samples, total * epochs, "%zu samples delivered, expected %llu", r->samples,
                 (unsigned long long)(total * epochs));
    unsigned char *seen = calloc((size_t)total, 1);
    cr_assert_not_null(seen);
    for (uint64_t e = 0; e < epochs; e++) {
        memset(seen, 0, (size_t)total);
        for (uint64_t s = e * total; s < (e + 1) * total; s++) {
            const uint64_t i = r->indices[s];
            cr_assert_lt(i, total, "index %llu out of range", (unsigned long long)i);
            cr_assert_eq(seen[i], 0, "sample %llu delivered twice in epoch %llu",
                         (unsigned long long)i, (unsigned long long)e);
            seen[i] = 1;
        }
    }
    free(seen);
}

/* The two runs delivered the same batches: same sizes, indices and bytes. */
static void expect_same_runs(const struct run *a, const struct run *b, const char *what)
{
    cr_assert_eq(a->batches, b->batches, "%s: %zu vs %zu batches", what, a->batches, b->batches);
    cr_assert_eq(a->samples, b->samples, "%s: %zu vs %zu samples", what, a->samples, b->samples);
    for (size_t i = 0; i < a->batches; i++) {
        cr_assert_eq(a->batch_rows[i], b->batch_rows[i], "%s: batch %zu: %zu vs %zu rows", what, i,
                     a->batch_rows[i], b->batch_rows[i]);
        cr_assert_eq(a->batch_epoch[i], b->batch_epoch[i], "%s: batch %zu: epoch differs", what, i);
        cr_assert_eq(a->batch_index[i], b->batch_index[i], "%s: batch %zu: index differs", what, i);
    }
    cr_assert(memcmp(a->indices, b->indices, a->samples * sizeof *a->indices) == 0,
              "%s: sample indices differ", what);
    cr_assert_eq(a->nfields, b->nfields);
    for (size_t k = 0; k < a->nfields; k++) {
        cr_assert_eq(a->dtype[k], b->dtype[k], "%s: field %zu: dtype %s vs %s", what, k,
                     hfeed_dtype_name(a->dtype[k]), hfeed_dtype_name(b->dtype[k]));
        cr_assert_eq(a->bytes[k], b->bytes[k], "%s: field %zu: %zu vs %zu bytes", what, k,
                     a->bytes[k], b->bytes[k]);
        if (memcmp(a->data[k], b->data[k], a->bytes[k]) == 0) continue;
        size_t at = 0;
        while (a->data[k][at] == b->data[k][at])
            at++;
        const size_t s = at / a->row_bytes[k];
        cr_assert_fail("%s: field %zu: bytes differ at offset %zu: delivered sample %zu (index "
                       "%llu), byte %zu of its row: 0x%02x (auto) vs 0x%02x (hdf5)",
                       what, k, at, s, (unsigned long long)a->indices[s], at % a->row_bytes[k],
                       a->data[k][at], b->data[k][at]);
    }
}

/* --- independent expectations -------------------------------------------------------------- */

/* What one field must hold: the fixtures' formula (ds), or a value function (float64 output). */
struct expect {
    size_t field;
    const fx_dataset *ds; /* fixtures' formula, or NULL */
    hfeed_dtype out;      /* with ds: output dtype, HFEED_DTYPE_INVALID for "native" */
    double (*value)(uint64_t row, size_t elem, const void *ctx); /* without ds */
    const void *ctx;
    size_t elems; /* without ds: elements per sample */
};

static void check_expect(const struct run *r, const struct expect *x, const char *what)
{
    cr_assert_lt(x->field, r->nfields);
    const unsigned char *data = r->data[x->field];
    if (x->ds != NULL) {
        const size_t elems = fx_sample_elems(x->ds);
        const hfeed_dtype out = x->out == HFEED_DTYPE_INVALID ? fx_kind_dtype(x->ds->kind) : x->out;
        const size_t esize = hfeed_dtype_size(out);
        cr_assert_eq(r->dtype[x->field], out, "%s: dtype %s, expected %s", what,
                     hfeed_dtype_name(r->dtype[x->field]), hfeed_dtype_name(out));
        cr_assert_eq(r->row_bytes[x->field], elems * esize);
        for (size_t s = 0; s < r->samples; s++) {
            for (size_t e = 0; e < elems; e++) {
                unsigned char want[8];
                const fx_expect_kind k = fx_expect(x->ds, r->indices[s], e, out, want);
                cr_assert_eq(k, FX_EXPECT_VALUE);
                const unsigned char *got = data + (s * elems + e) * esize;
                cr_assert(memcmp(got, want, esize) == 0,
                          "%s: field %zu: sample %llu element %zu differs from the written value",
                          what, x->field, (unsigned long long)r->indices[s], e);
            }
        }
        return;
    }
    cr_assert_eq(r->dtype[x->field], HFEED_DTYPE_FLOAT64);
    cr_assert_eq(r->row_bytes[x->field], x->elems * sizeof(double));
    for (size_t s = 0; s < r->samples; s++) {
        for (size_t e = 0; e < x->elems; e++) {
            double got;
            memcpy(&got, data + (s * x->elems + e) * sizeof got, sizeof got);
            const double want = x->value(r->indices[s], e, x->ctx);
            cr_assert(got == want,
                      "%s: field %zu: sample %llu element %zu: got %.17g, expected "
                      "%.17g",
                      what, x->field, (unsigned long long)r->indices[s], e, got, want);
        }
    }
}

/* --- the comparison of both paths ----------------------------------------------------------- */

struct mode {
    const char *shuffle;
    unsigned workers;
    unsigned epochs; /* a second epoch reads with the chunks of the first still cached */
};

static const struct mode modes[] = {
    {"none", 1, 1},   {"none", 3, 1},  {"global", 1, 1},
    {"global", 3, 2}, {"chunk", 1, 1}, {"chunk", 3, 2},
};
#define NMODES (sizeof modes / sizeof modes[0])

static const char *config(const char *files, const char *fields, const struct mode *m,
                          const char *read_path)
{
    return fx_fmt("{\"files\": %s, \"fields\": %s, \"batch_size\": 7, \"shuffle\": \"%s\", "
                  "\"shuffle_window\": 2, \"workers\": %u, \"seed\": 11, \"epochs\": %u, "
                  "\"device\": \"cpu\", \"read_path\": \"%s\"}",
                  files, fields, m->shuffle, m->workers, m->epochs, read_path);
}

/* What the "auto" run must show about its read path. */
enum path_use {
    ALL_DIRECT,    /* no log line, no read through H5Dread */
    SOME_FALLBACK, /* exactly `fallback_lines` log lines, each a fallback */
};

/* Runs files/fields in every mode on both paths and compares the runs; checks the expectations
 * against the "auto" run. filtered: some direct source is compressed (chunks get decoded). */
static void compare_paths(const char *files_in, const char *fields_in, enum path_use use,
                          size_t fallback_lines, bool filtered, const struct expect *x, size_t nx)
{
    /* fx_fmt's buffers rotate; keep our own copies for the whole loop. */
    char *files = strdup(files_in), *fields = strdup(fields_in);
    cr_assert(files != NULL && fields != NULL);
    for (size_t i = 0; i < NMODES; i++) {
        struct run a, h;
        run_all(config(files, fields, &modes[i], "auto"), &a);
        run_all(config(files, fields, &modes[i], "hdf5"), &h);
        const char *what =
            fx_fmt("files %s, shuffle %s, %u workers", files, modes[i].shuffle, modes[i].workers);
        expect_each_sample_once(&a);
        expect_same_runs(&a, &h, what);
        for (size_t j = 0; j < nx; j++)
            check_expect(&a, &x[j], what);
        cr_assert_eq(h.log.n, 0, "%s: read_path hdf5 logged %s", what, all_lines(&h.log));
        cr_assert_gt(h.stats.fallback_reads, 0, "%s: read_path hdf5 made no H5Dread", what);
        cr_assert_eq(h.stats.chunk_decodes, 0, "%s: read_path hdf5 decoded chunks itself", what);
        if (use == ALL_DIRECT) {
            cr_assert_eq(a.log.n, 0, "%s: expected the direct path everywhere, logged %s", what,
                         all_lines(&a.log));
            cr_assert_eq(a.stats.fallback_reads, 0, "%s: %llu reads went through H5Dread", what,
                         (unsigned long long)a.stats.fallback_reads);
        } else {
            cr_assert_eq(a.log.n, fallback_lines, "%s: expected %zu log lines, got %s", what,
                         fallback_lines, all_lines(&a.log));
            cr_assert_eq(count_lines(&a.log, "H5Dread", NULL, NULL), fallback_lines, "%s: %s", what,
                         all_lines(&a.log));
        }
        if (filtered)
            cr_assert_gt(a.stats.chunk_decodes, 0, "%s: the direct path decoded no chunk", what);
        free_run(&a);
        free_run(&h);
    }
    free(files);
    free(fields);
}

static const char *field_json(const char *name, const char *dataset, const char *dtype)
{
    return fx_fmt("{\"name\": \"%s\", \"dataset\": \"%s\", \"dtype\": \"%s\"}", name, dataset,
                  dtype);
}

/* --- 1. identical data on both paths ----------------------------------------------------- */

Test(direct, same_bytes_as_hdf5_for_contiguous)
{
    const fx_dataset ds[] = {
        {.path = "/x", .kind = FX_FLOAT32, .rows = 45, .ndim = 1, .shape = {3}},
        {.path = "/i", .kind = FX_INT16, .rows = 45, .salt = 2},
    };
    fx_write_file("a.h5", ds, 2);
    const char *fields = fx_fmt("[%s, %s, %s]", field_json("x", "/x", "float32"),
                                field_json("i", "/i", "native"), field_json("f", "/i", "float64"));
    const struct expect x[] = {{.field = 0, .ds = &ds[0], .out = HFEED_DTYPE_FLOAT32},
                               {.field = 1, .ds = &ds[1]},
                               {.field = 2, .ds = &ds[1], .out = HFEED_DTYPE_FLOAT64}};
    compare_paths("[\"a.h5\"]", fields, ALL_DIRECT, 0, false, x, 3);
}

Test(direct, same_bytes_as_hdf5_for_chunked_unfiltered_with_partial_last_chunk)
{
    const fx_dataset ds[] = {
        {.path = "/x",
         .kind = FX_FLOAT32,
         .rows = 50,
         .ndim = 1,
         .shape = {3},
         .layout = FX_CHUNKED,
         .chunk = {8, 3}},
        {.path = "/one",
         .kind = FX_INT32,
         .rows = 50,
         .salt = 3,
         .layout = FX_CHUNKED,
         .chunk = {64}}, /* clamped to 50 rows: a single chunk */
    };
    fx_write_file("a.h5", ds, 2);
    const char *fields =
        fx_fmt("[%s, %s]", field_json("x", "/x", "float32"), field_json("one", "/one", "int64"));
    const struct expect x[] = {{.field = 0, .ds = &ds[0], .out = HFEED_DTYPE_FLOAT32},
                               {.field = 1, .ds = &ds[1], .out = HFEED_DTYPE_INT64}};
    compare_paths("[\"a.h5\"]", fields, ALL_DIRECT, 0, false, x, 2);
}

Test(direct, same_bytes_as_hdf5_for_deflate_and_shuffle_combinations)
{
    const fx_dataset ds[] = {
        {.path = "/g1s",
         .kind = FX_FLOAT32,
         .rows = 53,
         .ndim = 1,
         .shape = {3},
         .layout = FX_CHUNKED,
         .chunk = {8, 3},
         .gzip = 1,
         .shuffle = true},
        {.path = "/g6s",
         .kind = FX_FLOAT32,
         .rows = 53,
         .ndim = 1,
         .shape = {3},
         .salt = 1,
         .layout = FX_CHUNKED,
         .chunk = {8, 3},
         .gzip = 6,
         .shuffle = true},
        {.path = "/s",
         .kind = FX_INT32,
         .rows = 53,
         .ndim = 1,
         .shape = {2},
         .salt = 2,
         .layout = FX_CHUNKED,
         .chunk = {16, 2},
         .shuffle = true},
        {.path = "/g",
         .kind = FX_FLOAT64,
         .rows = 53,
         .salt = 3,
         .layout = FX_CHUNKED,
         .chunk = {10},
         .gzip = 6},
    };
    fx_write_file("a.h5", ds, 4);
    const char *fields = fx_fmt("[%s, %s, %s, %s]", field_json("g1s", "/g1s", "float32"),
                                field_json("g6s", "/g6s", "float64"),
                                field_json("s", "/s", "native"), field_json("g", "/g", "native"));
    const struct expect x[] = {{.field = 0, .ds = &ds[0], .out = HFEED_DTYPE_FLOAT32},
                               {.field = 1, .ds = &ds[1], .out = HFEED_DTYPE_FLOAT64},
                               {.field = 2, .ds = &ds[2]},
                               {.field = 3, .ds = &ds[3]}};
    compare_paths("[\"a.h5\"]", fields, ALL_DIRECT, 0, true, x, 4);
}

Test(direct, same_bytes_as_hdf5_for_fletcher32_alone_and_with_deflate_shuffle)
{
    const fx_dataset ds[] = {
        {.path = "/f",
         .kind = FX_FLOAT32,
         .rows = 41,
         .ndim = 1,
         .shape = {3},
         .layout = FX_CHUNKED,
         .chunk = {8, 3},
         .fletcher32 = true},
        {.path = "/fgs",
         .kind = FX_INT16,
         .rows = 41,
         .ndim = 1,
         .shape = {5},
         .salt = 1,
         .layout = FX_CHUNKED,
         .chunk = {6, 5},
         .gzip = 4,
         .shuffle = true,
         .fletcher32 = true},
        /* 5 rows of 3 bytes: fletcher32 over an odd number of bytes */
        {.path = "/odd",
         .kind = FX_UINT8,
         .rows = 41,
         .ndim = 1,
         .shape = {3},
         .salt = 2,
         .layout = FX_CHUNKED,
         .chunk = {5, 3},
         .fletcher32 = true},
        {.path = "/oddz",
         .kind = FX_INT8,
         .rows = 41,
         .ndim = 1,
         .shape = {3},
         .salt = 3,
         .layout = FX_CHUNKED,
         .chunk = {7, 3},
         .gzip = 1,
         .fletcher32 = true},
    };
    fx_write_file("a.h5", ds, 4);
    const char *fields = fx_fmt(
        "[%s, %s, %s, %s]", field_json("f", "/f", "float32"), field_json("fgs", "/fgs", "native"),
        field_json("odd", "/odd", "native"), field_json("oddz", "/oddz", "native"));
    const struct expect x[] = {{.field = 0, .ds = &ds[0], .out = HFEED_DTYPE_FLOAT32},
                               {.field = 1, .ds = &ds[1]},
                               {.field = 2, .ds = &ds[2]},
                               {.field = 3, .ds = &ds[3]}};
    compare_paths("[\"a.h5\"]", fields, ALL_DIRECT, 0, true, x, 4);
}

Test(direct, same_bytes_as_hdf5_for_big_endian_float64)
{
    const fx_dataset ds[] = {
        {.path = "/bz",
         .kind = FX_FLOAT64,
         .big_endian = true,
         .rows = 37,
         .ndim = 1,
         .shape = {2},
         .layout = FX_CHUNKED,
         .chunk = {8, 2},
         .gzip = 1,
         .shuffle = true},
        {.path = "/bc", .kind = FX_FLOAT64, .big_endian = true, .rows = 37, .salt = 1},
        {.path = "/bi",
         .kind = FX_INT16,
         .big_endian = true,
         .rows = 37,
         .salt = 2,
         .layout = FX_CHUNKED,
         .chunk = {8}},
    };
    fx_write_file("a.h5", ds, 3);
    const char *fields = fx_fmt(
        "[%s, %s, %s, %s]", field_json("bz", "/bz", "native"), field_json("bz32", "/bz", "float32"),
        field_json("bc", "/bc", "float64"), field_json("bi", "/bi", "native"));
    const struct expect x[] = {{.field = 0, .ds = &ds[0]},
                               {.field = 1, .ds = &ds[0], .out = HFEED_DTYPE_FLOAT32},
                               {.field = 2, .ds = &ds[1], .out = HFEED_DTYPE_FLOAT64},
                               {.field = 3, .ds = &ds[2]}};
    compare_paths("[\"a.h5\"]", fields, ALL_DIRECT, 0, true, x, 4);
}

Test(direct, same_bytes_as_hdf5_for_int16_uint8_float16)
{
    const fx_dataset ds[] = {
        {.path = "/i16",
         .kind = FX_INT16,
         .rows = 44,
         .ndim = 1,
         .shape = {3},
         .extremes = true,
         .layout = FX_CHUNKED,
         .chunk = {16, 3},
         .gzip = 1,
         .shuffle = true},
        {.path = "/u8",
         .kind = FX_UINT8,
         .rows = 44,
         .ndim = 2,
         .shape = {4, 4},
         .salt = 1,
         .extremes = true,
         .layout = FX_CHUNKED,
         .chunk = {5, 4, 4},
         .gzip = 6,
         .shuffle = true},
        {.path = "/h",
         .kind = FX_FLOAT16,
         .rows = 44,
         .ndim = 1,
         .shape = {3},
         .salt = 2,
         .layout = FX_CHUNKED,
         .chunk = {16, 3},
         .gzip = 1,
         .shuffle = true},
        {.path = "/hc", .kind = FX_FLOAT16, .rows = 44, .salt = 3},
    };
    fx_write_file("a.h5", ds, 4);
    const char *fields =
        fx_fmt("[%s, %s, %s, %s, %s, %s]", field_json("i16", "/i16", "native"),
               field_json("i16f", "/i16", "float32"), field_json("u8", "/u8", "native"),
               field_json("h", "/h", "native"), field_json("h32", "/h", "float32"),
               field_json("hc", "/hc", "native"));
    const struct expect x[] = {{.field = 0, .ds = &ds[0]},
                               {.field = 1, .ds = &ds[0], .out = HFEED_DTYPE_FLOAT32},
                               {.field = 2, .ds = &ds[1]},
                               {.field = 3, .ds = &ds[2]},
                               {.field = 4, .ds = &ds[2], .out = HFEED_DTYPE_FLOAT32},
                               {.field = 5, .ds = &ds[3]}};
    compare_paths("[\"a.h5\"]", fields, ALL_DIRECT, 0, true, x, 6);
}

Test(direct, same_bytes_as_hdf5_for_scalar_1d_2d_3d_samples)
{
    const fx_dataset ds[] = {
        {.path = "/s0",
         .kind = FX_FLOAT32,
         .rows = 39,
         .layout = FX_CHUNKED,
         .chunk = {8},
         .gzip = 1,
         .shuffle = true},
        {.path = "/s1",
         .kind = FX_FLOAT32,
         .rows = 39,
         .ndim = 1,
         .shape = {5},
         .salt = 1,
         .layout = FX_CHUNKED,
         .chunk = {8, 5},
         .gzip = 1},
        {.path = "/s2",
         .kind = FX_INT32,
         .rows = 39,
         .ndim = 2,
         .shape = {3, 2},
         .salt = 2,
         .layout = FX_CHUNKED,
         .chunk = {4, 3, 2},
         .shuffle = true},
        {.path = "/s3",
         .kind = FX_FLOAT64,
         .rows = 39,
         .ndim = 3,
         .shape = {2, 3, 2},
         .salt = 3,
         .layout = FX_CHUNKED,
         .chunk = {5, 2, 3, 2},
         .gzip = 6,
         .shuffle = true,
         .fletcher32 = true},
        {.path = "/c3", .kind = FX_UINT8, .rows = 39, .ndim = 3, .shape = {2, 2, 3}, .salt = 4},
    };
    fx_write_file("a.h5", ds, 5);
    const char *fields =
        fx_fmt("[%s, %s, %s, %s, %s]", field_json("s0", "/s0", "float32"),
               field_json("s1", "/s1", "float64"), field_json("s2", "/s2", "native"),
               field_json("s3", "/s3", "float32"), field_json("c3", "/c3", "int32"));
    const struct expect x[] = {{.field = 0, .ds = &ds[0], .out = HFEED_DTYPE_FLOAT32},
                               {.field = 1, .ds = &ds[1], .out = HFEED_DTYPE_FLOAT64},
                               {.field = 2, .ds = &ds[2]},
                               {.field = 3, .ds = &ds[3], .out = HFEED_DTYPE_FLOAT32},
                               {.field = 4, .ds = &ds[4], .out = HFEED_DTYPE_INT32}};
    compare_paths("[\"a.h5\"]", fields, ALL_DIRECT, 0, true, x, 5);
}

/* Userblock files: HDF5 addresses are relative to the end of the userblock. */
static double ub_value(uint64_t row, size_t elem, const void *ctx)
{
    (void)ctx;
    return (double)(row * 3 + elem) + 0.25;
}

static void write_userblock_file(const char *name)
{
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
    cr_assert(H5Pset_userblock(fcpl, 512) >= 0);
    hid_t file = H5Fcreate(fx_path(name), H5F_ACC_TRUNC, fcpl, H5P_DEFAULT);
    cr_assert(file >= 0);
    const hsize_t dims[2] = {45, 3}, chunk[2] = {8, 3};
    double buf[45 * 3];
    for (size_t r = 0; r < 45; r++)
        for (size_t e = 0; e < 3; e++)
            buf[r * 3 + e] = ub_value(r, e, NULL);
    hid_t space = H5Screate_simple(2, dims, NULL);
    const char *names[3] = {"/c", "/u", "/z"};
    for (int i = 0; i < 3; i++) {
        hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
        if (i > 0) cr_assert(H5Pset_chunk(dcpl, 2, chunk) >= 0);
        if (i == 2) {
            cr_assert(H5Pset_shuffle(dcpl) >= 0);
            cr_assert(H5Pset_deflate(dcpl, 6) >= 0);
        }
        hid_t d = H5Dcreate2(file, names[i], H5T_IEEE_F32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
        cr_assert(d >= 0);
        cr_assert(H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0);
        H5Dclose(d);
        H5Pclose(dcpl);
    }
    H5Sclose(space);
    H5Pclose(fcpl);
    cr_assert(H5Fclose(file) >= 0);
    /* Text in the userblock, as a tool that uses it would leave: HDF5 ignores it. */
    const int fd = open(fx_path(name), O_WRONLY);
    cr_assert(fd >= 0);
    char text[512];
    memset(text, 'U', sizeof text);
    cr_assert(pwrite(fd, text, sizeof text, 0) == (ssize_t)sizeof text);
    cr_assert(close(fd) == 0);
}

Test(direct, same_bytes_as_hdf5_in_a_file_with_a_userblock)
{
    write_userblock_file("ub.h5");
    const char *fields = fx_fmt("[%s, %s, %s]", field_json("c", "/c", "float64"),
                                field_json("u", "/u", "float64"), field_json("z", "/z", "float64"));
    const struct expect x[] = {{.field = 0, .value = ub_value, .elems = 3},
                               {.field = 1, .value = ub_value, .elems = 3},
                               {.field = 2, .value = ub_value, .elems = 3}};
    compare_paths("[\"ub.h5\"]", fields, ALL_DIRECT, 0, true, x, 3);
}

Test(direct, same_bytes_as_hdf5_with_libver_latest_fixed_array_and_single_chunk)
{
    const fx_dataset ds[] = {
        {.path = "/fa",
         .kind = FX_FLOAT32,
         .rows = 47,
         .ndim = 1,
         .shape = {3},
         .layout = FX_CHUNKED,
         .chunk = {8, 3},
         .gzip = 1,
         .shuffle = true},
        {.path = "/fu",
         .kind = FX_INT16,
         .rows = 47,
         .ndim = 1,
         .shape = {2},
         .salt = 1,
         .layout = FX_CHUNKED,
         .chunk = {8, 2}},
        {.path = "/single",
         .kind = FX_FLOAT64,
         .rows = 47,
         .salt = 2,
         .layout = FX_CHUNKED,
         .chunk = {47},
         .gzip = 6,
         .fletcher32 = true},
        {.path = "/c", .kind = FX_UINT8, .rows = 47, .salt = 3},
        {.path = "/single_u",
         .kind = FX_INT32,
         .rows = 47,
         .ndim = 1,
         .shape = {2},
         .salt = 4,
         .layout = FX_CHUNKED,
         .chunk = {47, 2}},
    };
    fx_write_file_latest("a.h5", ds, 5);
    const char *fields =
        fx_fmt("[%s, %s, %s, %s, %s]", field_json("fa", "/fa", "float32"),
               field_json("fu", "/fu", "native"), field_json("single", "/single", "native"),
               field_json("c", "/c", "native"), field_json("single_u", "/single_u", "native"));
    const struct expect x[] = {{.field = 0, .ds = &ds[0], .out = HFEED_DTYPE_FLOAT32},
                               {.field = 1, .ds = &ds[1]},
                               {.field = 2, .ds = &ds[2]},
                               {.field = 3, .ds = &ds[3]},
                               {.field = 4, .ds = &ds[4]}};
    compare_paths("[\"a.h5\"]", fields, ALL_DIRECT, 0, true, x, 5);
}

Test(direct, same_bytes_as_hdf5_with_libver_latest_extensible_array_which_falls_back)
{
    const fx_dataset ds[] = {
        {.path = "/ea",
         .kind = FX_FLOAT32,
         .rows = 47,
         .ndim = 1,
         .shape = {3},
         .unlimited = true,
         .layout = FX_CHUNKED,
         .chunk = {8, 3},
         .gzip = 1,
         .shuffle = true},
        {.path = "/fa",
         .kind = FX_FLOAT32,
         .rows = 47,
         .salt = 1,
         .layout = FX_CHUNKED,
         .chunk = {8},
         .gzip = 1},
    };
    fx_write_file_latest("a.h5", ds, 2);
    const char *fields =
        fx_fmt("[%s, %s]", field_json("ea", "/ea", "float32"), field_json("fa", "/fa", "float32"));
    const struct expect x[] = {{.field = 0, .ds = &ds[0], .out = HFEED_DTYPE_FLOAT32},
                               {.field = 1, .ds = &ds[1], .out = HFEED_DTYPE_FLOAT32}};
    compare_paths("[\"a.h5\"]", fields, SOME_FALLBACK, 1, true, x, 2);
}

Test(direct, same_bytes_as_hdf5_across_several_files)
{
    fx_dataset ds[] = {
        {.path = "/x",
         .kind = FX_FLOAT32,
         .ndim = 1,
         .shape = {3},
         .layout = FX_CHUNKED,
         .chunk = {8, 3},
         .gzip = 1,
         .shuffle = true},
        {.path = "/y", .kind = FX_INT64, .salt = 1, .layout = FX_CHUNKED, .chunk = {16}},
    };
    const uint64_t rows[3] = {30, 17, 41}, chunks[3] = {8, 5, 13};
    uint64_t offset = 0;
    for (int f = 0; f < 3; f++) {
        ds[0].rows = ds[1].rows = rows[f];
        ds[0].chunk[0] = chunks[f];
        ds[0].row_offset = ds[1].row_offset = offset;
        fx_write_file(fx_fmt("p%d.h5", f), ds, 2);
        offset += rows[f];
    }
    const char *fields =
        fx_fmt("[%s, %s]", field_json("x", "/x", "float32"), field_json("y", "/y", "int64"));
    const struct expect x[] = {{.field = 0, .ds = &ds[0], .out = HFEED_DTYPE_FLOAT32},
                               {.field = 1, .ds = &ds[1], .out = HFEED_DTYPE_INT64}};
    compare_paths("[\"p0.h5\", \"p[12].h5\"]", fields, ALL_DIRECT, 0, true, x, 2);
}

Test(direct, same_bytes_as_hdf5_when_one_file_falls_back_and_another_does_not)
{
    fx_dataset ds = {.path = "/x",
                     .kind = FX_FLOAT32,
                     .ndim = 1,
                     .shape = {3},
                     .layout = FX_CHUNKED,
                     .chunk = {8, 3},
                     .gzip = 1,
                     .shuffle = true,
                     .rows = 30};
    fx_write_file("a.h5", &ds, 1);
    ds.layout = FX_COMPACT;
    ds.gzip = 0;
    ds.shuffle = false;
    ds.rows = 19;
    ds.row_offset = 30;
    fx_write_file("b.h5", &ds, 1);
    const char *fields = fx_fmt("[%s]", field_json("x", "/x", "float32"));
    const struct expect x[] = {{.field = 0, .ds = &ds, .out = HFEED_DTYPE_FLOAT32}};
    compare_paths("[\"a.h5\", \"b.h5\"]", fields, SOME_FALLBACK, 1, true, x, 1);
    fields = fx_fmt("[%s]", field_json("x", "/x", "float32"));
    struct run r;
    const struct mode m = {"none", 1, 1};
    run_all(config("[\"a.h5\", \"b.h5\"]", fields, &m, "auto"), &r);
    cr_assert_eq(count_lines(&r.log, fx_path("b.h5"), "\"/x\"", "H5Dread"), 1, "%s",
                 all_lines(&r.log));
    cr_assert_eq(count_lines(&r.log, fx_path("a.h5"), NULL, NULL), 0, "%s", all_lines(&r.log));
    free_run(&r);
}

Test(direct, same_bytes_as_hdf5_for_unlimited_axes_in_the_default_format)
{
    const fx_dataset ds[] = {
        /* one chunk of 32 rows holding 20: decoded chunks are longer than the dataset */
        {.path = "/u",
         .kind = FX_FLOAT32,
         .rows = 20,
         .ndim = 1,
         .shape = {3},
         .unlimited = true,
         .layout = FX_CHUNKED,
         .chunk = {32, 3},
         .gzip = 1,
         .shuffle = true},
        {.path = "/ua",
         .kind = FX_INT16,
         .rows = 20,
         .ndim = 1,
         .shape = {2},
         .salt = 1,
         .unlimited_all = true,
         .layout = FX_CHUNKED,
         .chunk = {6, 2}},
    };
    fx_write_file("a.h5", ds, 2);
    const char *fields =
        fx_fmt("[%s, %s]", field_json("u", "/u", "float32"), field_json("ua", "/ua", "native"));
    const struct expect x[] = {{.field = 0, .ds = &ds[0], .out = HFEED_DTYPE_FLOAT32},
                               {.field = 1, .ds = &ds[1]}};
    compare_paths("[\"a.h5\"]", fields, ALL_DIRECT, 0, true, x, 2);
}

/* Chunks of one shuffle+deflate dataset stored with different filter masks (bit 0: shuffle
 * skipped, bit 1: deflate skipped), written raw with H5Dwrite_chunk. Our deflate streams are
 * zlib streams of stored blocks, which any inflater must accept. */
#define MASK_ROWS 48
#define MASK_COLS 3
#define MASK_CHUNK 8

static double mask_value(uint64_t row, size_t elem, const void *ctx)
{
    (void)ctx;
    return (double)((int64_t)(row * MASK_COLS + elem) * 1000 - 77);
}

static void shuffle_bytes(const unsigned char *in, size_t n, size_t esize, unsigned char *out)
{
    for (size_t i = 0; i < n / esize; i++)
        for (size_t k = 0; k < esize; k++)
            out[k * (n / esize) + i] = in[i * esize + k];
}

/* A zlib stream holding in[0..n) in one stored block; returns its length (n + 11). */
static size_t zlib_stored(const unsigned char *in, size_t n, unsigned char *out)
{
    cr_assert_lt(n, 65536);
    out[0] = 0x78;
    out[1] = 0x01;
    out[2] = 0x01; /* final block, stored */
    out[3] = (unsigned char)(n & 0xff);
    out[4] = (unsigned char)(n >> 8);
    out[5] = (unsigned char)(~n & 0xff);
    out[6] = (unsigned char)((~n >> 8) & 0xff);
    memcpy(out + 7, in, n);
    uint32_t a = 1, b = 0;
    for (size_t i = 0; i < n; i++) {
        a = (a + in[i]) % 65521u;
        b = (b + a) % 65521u;
    }
    const uint32_t adler = (b << 16) | a;
    for (int i = 0; i < 4; i++)
        out[7 + n + (size_t)i] = (unsigned char)(adler >> (24 - 8 * i));
    return n + 11;
}

static void write_masked(const char *name, bool latest)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (latest) cr_assert(H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST) >= 0);
    hid_t file = H5Fcreate(fx_path(name), H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    cr_assert(file >= 0);
    const hsize_t dims[2] = {MASK_ROWS, MASK_COLS}, chunk[2] = {MASK_CHUNK, MASK_COLS};
    hid_t space = H5Screate_simple(2, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    cr_assert(H5Pset_chunk(dcpl, 2, chunk) >= 0);
    cr_assert(H5Pset_shuffle(dcpl) >= 0);
    cr_assert(H5Pset_deflate(dcpl, 6) >= 0);
    hid_t d = H5Dcreate2(file, "/m", H5T_STD_I32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    cr_assert(d >= 0);
    int32_t all[MASK_ROWS * MASK_COLS];
    for (size_t r = 0; r < MASK_ROWS; r++)
        for (size_t e = 0; e < MASK_COLS; e++)
            all[r * MASK_COLS + e] = (int32_t)mask_value(r, e, NULL);
    /* Chunks 0 and 5 through the pipeline, the others raw with a mask. */
    const hsize_t count[2] = {MASK_CHUNK, MASK_COLS};
    for (hsize_t c = 0; c < 6; c += 5) {
        hid_t fspace = H5Dget_space(d);
        const hsize_t at[2] = {c * MASK_CHUNK, 0};
        cr_assert(H5Sselect_hyperslab(fspace, H5S_SELECT_SET, at, NULL, count, NULL) >= 0);
        hid_t mspace = H5Screate_simple(2, count, NULL);
        cr_assert(H5Dwrite(d, H5T_NATIVE_INT32, mspace, fspace, H5P_DEFAULT,
                           all + c * MASK_CHUNK * MASK_COLS) >= 0);
        H5Sclose(mspace);
        H5Sclose(fspace);
    }
    const size_t bytes = MASK_CHUNK * MASK_COLS * sizeof(int32_t);
    const struct {
        hsize_t chunk;
        uint32_t mask;
    } raw[] = {{1, 0x3}, {2, 0x2}, {3, 0x1}, {4, 0x0}};
    for (size_t i = 0; i < sizeof raw / sizeof raw[0]; i++) {
        const unsigned char *plain =
            (const unsigned char *)(all + raw[i].chunk * MASK_CHUNK * MASK_COLS);
        unsigned char shuffled[MASK_CHUNK * MASK_COLS * sizeof(int32_t)];
        unsigned char out[MASK_CHUNK * MASK_COLS * sizeof(int32_t) + 16];
        const unsigned char *src = plain;
        if (!(raw[i].mask & 0x1)) {
            shuffle_bytes(plain, bytes, sizeof(int32_t), shuffled);
            src = shuffled;
        }
        size_t len = bytes;
        if (!(raw[i].mask & 0x2)) {
            len = zlib_stored(src, bytes, out);
        } else {
            memcpy(out, src, bytes);
        }
        const hsize_t off[2] = {raw[i].chunk * MASK_CHUNK, 0};
        cr_assert(H5Dwrite_chunk(d, H5P_DEFAULT, raw[i].mask, off, len, out) >= 0);
    }
    cr_assert(H5Dclose(d) >= 0);
    H5Pclose(dcpl);
    H5Sclose(space);
    H5Pclose(fapl);
    cr_assert(H5Fclose(file) >= 0);
}

Test(direct, same_bytes_as_hdf5_when_chunks_skip_filters_by_mask)
{
    const struct expect x[] = {{.field = 0, .value = mask_value, .elems = MASK_COLS}};
    const char *fields = fx_fmt("[%s]", field_json("m", "/m", "float64"));
    write_masked("mask.h5", false);
    compare_paths("[\"mask.h5\"]", fields, ALL_DIRECT, 0, true, x, 1);
    fields = fx_fmt("[%s]", field_json("m", "/m", "float64"));
    write_masked("mask_latest.h5", true);
    compare_paths("[\"mask_latest.h5\"]", fields, ALL_DIRECT, 0, true, x, 1);
}

/* Random bytes: deflate stores them in stored blocks, so a stored chunk is larger than the
 * decoded one. */
#define RND_ROWS 200
#define RND_COLS 16
#define RND_CHUNK 64

static double rnd_value(uint64_t row, size_t elem, const void *ctx)
{
    (void)ctx;
    uint64_t x = (row * RND_COLS + elem + 1) * UINT64_C(0x9E3779B97F4A7C15);
    x ^= x >> 29;
    x *= UINT64_C(0xBF58476D1CE4E5B9);
    x ^= x >> 32;
    return (double)(x & 0xff);
}

Test(direct, same_bytes_as_hdf5_when_deflate_expands_a_chunk)
{
    hid_t file = H5Fcreate(fx_path("rnd.h5"), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    cr_assert(file >= 0);
    const hsize_t dims[2] = {RND_ROWS, RND_COLS}, chunk[2] = {RND_CHUNK, RND_COLS};
    hid_t space = H5Screate_simple(2, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    cr_assert(H5Pset_chunk(dcpl, 2, chunk) >= 0);
    cr_assert(H5Pset_deflate(dcpl, 9) >= 0);
    cr_assert(H5Pset_fletcher32(dcpl) >= 0);
    hid_t d = H5Dcreate2(file, "/r", H5T_STD_U8LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    cr_assert(d >= 0);
    static unsigned char buf[RND_ROWS * RND_COLS];
    for (size_t r = 0; r < RND_ROWS; r++)
        for (size_t e = 0; e < RND_COLS; e++)
            buf[r * RND_COLS + e] = (unsigned char)rnd_value(r, e, NULL);
    cr_assert(H5Dwrite(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0);
    cr_assert(H5Dflush(d) >= 0);
    hsize_t off[2], size = 0;
    unsigned mask = 0;
    haddr_t addr;
    cr_assert(H5Dget_chunk_info(d, space, 0, off, &mask, &addr, &size) >= 0);
    cr_assert_gt(size, (hsize_t)(RND_CHUNK * RND_COLS), "chunk 0 shrank to %llu bytes",
                 (unsigned long long)size);
    cr_assert(H5Dclose(d) >= 0);
    H5Pclose(dcpl);
    H5Sclose(space);
    cr_assert(H5Fclose(file) >= 0);
    const char *fields = fx_fmt("[%s]", field_json("r", "/r", "float64"));
    const struct expect x[] = {{.field = 0, .value = rnd_value, .elems = RND_COLS}};
    compare_paths("[\"rnd.h5\"]", fields, ALL_DIRECT, 0, true, x, 1);
}

/* --- 2. unallocated storage reads as the fill value ------------------------------------------ */

/* A dataset only partly written: `written` chunks whole, `half` (if not NONE) its first half. */
struct sparse {
    const char *path;
    bool be64;            /* stored as big-endian float64, else little-endian float32 */
    bool latest;          /* H5F_LIBVER_LATEST (fixed array index) */
    bool contiguous_late; /* contiguous, allocated late, never written */
    bool early;           /* chunked, allocated (and filled) at creation */
    uint64_t rows, cols, chunk_rows;
    int gzip;
    bool has_fill;
    double fill;
    const uint64_t *written;
    size_t nwritten;
    uint64_t half;
};

#define NONE UINT64_MAX

static double sparse_written(uint64_t row, size_t elem, const struct sparse *s)
{
    return (double)(row * s->cols + elem) + 0.5;
}

static double sparse_value(uint64_t row, size_t elem, const void *ctx)
{
    const struct sparse *s = ctx;
    const uint64_t c = s->contiguous_late ? NONE : row / s->chunk_rows;
    for (size_t i = 0; c != NONE && i < s->nwritten; i++)
        if (s->written[i] == c) return sparse_written(row, elem, s);
    if (c != NONE && c == s->half && row - c * s->chunk_rows < s->chunk_rows / 2)
        return sparse_written(row, elem, s);
    return s->has_fill ? s->fill : 0.0;
}

static void write_rows(hid_t d, const struct sparse *s, uint64_t first, uint64_t n)
{
    if (first >= s->rows) return;
    if (first + n > s->rows) n = s->rows - first;
    double *buf = malloc((size_t)(n * s->cols) * sizeof *buf);
    cr_assert_not_null(buf);
    for (uint64_t r = 0; r < n; r++)
        for (uint64_t e = 0; e < s->cols; e++)
            buf[r * s->cols + e] = sparse_written(first + r, (size_t)e, s);
    const hsize_t start[2] = {first, 0}, count[2] = {n, s->cols};
    hid_t fspace = H5Dget_space(d);
    cr_assert(H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL) >= 0);
    hid_t mspace = H5Screate_simple(2, count, NULL);
    cr_assert(H5Dwrite(d, H5T_NATIVE_DOUBLE, mspace, fspace, H5P_DEFAULT, buf) >= 0);
    H5Sclose(mspace);
    H5Sclose(fspace);
    free(buf);
}

static void write_sparse(const char *name, const struct sparse *s)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (s->latest) cr_assert(H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST) >= 0);
    hid_t file = H5Fcreate(fx_path(name), H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    cr_assert(file >= 0);
    const hsize_t dims[2] = {s->rows, s->cols}, chunk[2] = {s->chunk_rows, s->cols};
    hid_t space = H5Screate_simple(2, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (s->contiguous_late) {
        cr_assert(H5Pset_layout(dcpl, H5D_CONTIGUOUS) >= 0);
        cr_assert(H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_LATE) >= 0);
    } else {
        cr_assert(H5Pset_chunk(dcpl, 2, chunk) >= 0);
        if (s->gzip > 0) cr_assert(H5Pset_deflate(dcpl, (unsigned)s->gzip) >= 0);
        if (s->early) cr_assert(H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY) >= 0);
    }
    if (s->has_fill) cr_assert(H5Pset_fill_value(dcpl, H5T_NATIVE_DOUBLE, &s->fill) >= 0);
    hid_t d = H5Dcreate2(file, s->path, s->be64 ? H5T_IEEE_F64BE : H5T_IEEE_F32LE, space,
                         H5P_DEFAULT, dcpl, H5P_DEFAULT);
    cr_assert(d >= 0);
    for (size_t i = 0; i < s->nwritten; i++)
        write_rows(d, s, s->written[i] * s->chunk_rows, s->chunk_rows);
    if (s->half != NONE) write_rows(d, s, s->half * s->chunk_rows, s->chunk_rows / 2);
    if (s->contiguous_late)
        cr_assert_eq(H5Dget_offset(d), HADDR_UNDEF, "the contiguous dataset got storage");
    H5Dclose(d);
    H5Pclose(dcpl);
    H5Sclose(space);
    H5Pclose(fapl);
    cr_assert(H5Fclose(file) >= 0);
}

/* Writes the sparse dataset, compares both paths and checks the fill values. */
static void check_sparse(const struct sparse *s, bool filtered)
{
    write_sparse("sparse.h5", s);
    const char *fields = fx_fmt("[%s]", field_json("x", s->path, "float64"));
    const struct expect x[] = {{.field = 0, .value = sparse_value, .ctx = s, .elems = s->cols}};
    compare_paths("[\"sparse.h5\"]", fields, ALL_DIRECT, 0, filtered, x, 1);
}

static const uint64_t some_chunks[] = {1, 4, 5, 7};

Test(direct, unallocated_chunks_read_as_the_fill_value)
{
    struct sparse s = {.path = "/s",
                       .rows = 75,
                       .cols = 3,
                       .chunk_rows = 8,
                       .has_fill = true,
                       .fill = -7.25,
                       .written = some_chunks,
                       .nwritten = 4,
                       .half = 2};
    check_sparse(&s, false);
}

Test(direct, unallocated_gzip_chunks_read_as_the_fill_value)
{
    struct sparse s = {.path = "/s",
                       .rows = 75,
                       .cols = 3,
                       .chunk_rows = 8,
                       .gzip = 6,
                       .has_fill = true,
                       .fill = -7.25,
                       .written = some_chunks,
                       .nwritten = 4,
                       .half = 2};
    check_sparse(&s, true);
}

Test(direct, unallocated_chunks_read_as_zero_without_a_fill_value)
{
    struct sparse s = {.path = "/s",
                       .rows = 75,
                       .cols = 3,
                       .chunk_rows = 8,
                       .written = some_chunks,
                       .nwritten = 4,
                       .half = 2};
    check_sparse(&s, false);
    s.gzip = 1;
    check_sparse(&s, true);
}

Test(direct, unallocated_big_endian_chunks_read_as_the_fill_value)
{
    struct sparse s = {.path = "/s",
                       .be64 = true,
                       .rows = 75,
                       .cols = 2,
                       .chunk_rows = 8,
                       .gzip = 1,
                       .has_fill = true,
                       .fill = -7.25,
                       .written = some_chunks,
                       .nwritten = 4,
                       .half = 2};
    check_sparse(&s, true);
    s.gzip = 0;
    check_sparse(&s, false);
}

Test(direct, unallocated_chunks_of_a_fixed_array_index_read_as_the_fill_value)
{
    struct sparse s = {.path = "/s",
                       .latest = true,
                       .rows = 75,
                       .cols = 3,
                       .chunk_rows = 8,
                       .gzip = 1,
                       .has_fill = true,
                       .fill = -7.25,
                       .written = some_chunks,
                       .nwritten = 4,
                       .half = 2};
    check_sparse(&s, true);
    s.gzip = 0;
    check_sparse(&s, false);
}

Test(direct, chunks_allocated_early_read_as_the_fill_value_with_an_implicit_index)
{
    struct sparse s = {.path = "/s",
                       .latest = true,
                       .early = true,
                       .rows = 75,
                       .cols = 3,
                       .chunk_rows = 8,
                       .has_fill = true,
                       .fill = -7.25,
                       .written = some_chunks,
                       .nwritten = 4,
                       .half = 2};
    check_sparse(&s, false);
    s.latest = false;
    check_sparse(&s, false);
    s.gzip = 1;
    check_sparse(&s, true);
}

Test(direct, chunked_dataset_never_written_reads_as_the_fill_value)
{
    struct sparse s = {.path = "/s",
                       .rows = 40,
                       .cols = 3,
                       .chunk_rows = 8,
                       .gzip = 1,
                       .has_fill = true,
                       .fill = -7.25,
                       .half = NONE};
    check_sparse(&s, true);
    s.gzip = 0;
    check_sparse(&s, false);
}

Test(direct, contiguous_dataset_never_written_reads_as_the_fill_value)
{
    struct sparse s = {.path = "/s",
                       .contiguous_late = true,
                       .rows = 40,
                       .cols = 3,
                       .chunk_rows = 8,
                       .has_fill = true,
                       .fill = -7.25,
                       .half = NONE};
    check_sparse(&s, false);
    s.has_fill = false;
    check_sparse(&s, false);
    s.be64 = true;
    s.has_fill = true;
    check_sparse(&s, false);
}

/* --- 3. fallbacks: logged once, correct values ----------------------------------------------- */

/* Runs the single field `dataset` of `name` (2 epochs, 3 workers, chunk shuffle) on the "auto"
 * path: exactly one log line, naming the file, the dataset, "H5Dread" and `reason`; values as
 * expected; reads through H5Dread. Then the "hdf5" path: no log line, same bytes. */
static void check_fallback(const char *name, const char *dataset, const char *reason,
                           const struct expect *x)
{
    const char *files = fx_fmt("[\"%s\"]", name);
    const char *fields =
        fx_fmt("[%s]", field_json("x", dataset, x->ds != NULL ? "native" : "float64"));
    const struct mode m = {"chunk", 3, 2};
    struct run a, h;
    run_all(config(files, fields, &m, "auto"), &a);
    const char *quoted = fx_fmt("\"%s\"", dataset);
    cr_assert_eq(a.log.n, 1, "expected one log line, got %zu: %s", a.log.n, all_lines(&a.log));
    cr_assert_eq(count_lines(&a.log, fx_path(name), quoted, "H5Dread"), 1,
                 "the line does not name file, dataset and H5Dread: %s", all_lines(&a.log));
    cr_assert_eq(count_lines(&a.log, reason, NULL, NULL), 1, "the line does not say \"%s\": %s",
                 reason, all_lines(&a.log));
    cr_assert_gt(a.stats.fallback_reads, 0);
    cr_assert_eq(a.stats.chunk_decodes, 0);
    expect_each_sample_once(&a);
    check_expect(&a, x, dataset);
    run_all(config(files, fields, &m, "hdf5"), &h);
    cr_assert_eq(h.log.n, 0, "read_path hdf5 logged: %s", all_lines(&h.log));
    expect_same_runs(&a, &h, dataset);
    free_run(&a);
    free_run(&h);
}

Test(direct, compact_layout_falls_back_logged_once)
{
    const fx_dataset ds = {.path = "/grp/cx",
                           .kind = FX_FLOAT32,
                           .rows = 30,
                           .ndim = 1,
                           .shape = {3},
                           .layout = FX_COMPACT};
    fx_write_file("compact.h5", &ds, 1);
    const struct expect x = {.field = 0, .ds = &ds};
    check_fallback("compact.h5", "/grp/cx", "compact", &x);
}

/* Chunks that split samples (h5py's chunks=True on images), on one axis and on several, with
 * partial edge chunks on every axis, compressed or not: read by the direct path (no log line,
 * no H5Dread), the same bytes as H5Dread, and the values the fixtures wrote. */
Test(direct, same_bytes_as_hdf5_for_chunks_that_split_samples)
{
    const fx_dataset ds[] = {
        {.path = "/split1",
         .kind = FX_FLOAT32,
         .rows = 45,
         .ndim = 1,
         .shape = {8},
         .layout = FX_CHUNKED,
         .chunk = {10, 4},
         .gzip = 1},
        {.path = "/split2",
         .kind = FX_INT16,
         .rows = 45,
         .ndim = 2,
         .shape = {7, 5},
         .salt = 1,
         .layout = FX_CHUNKED,
         .chunk = {8, 3, 2},
         .gzip = 6,
         .shuffle = true},
        {.path = "/split3",
         .kind = FX_UINT8,
         .rows = 45,
         .ndim = 3,
         .shape = {6, 6, 3},
         .salt = 2,
         .layout = FX_CHUNKED,
         .chunk = {16, 4, 4, 1}},
        {.path = "/split_f32", /* fletcher32 on tiles, big chunk rows */
         .kind = FX_FLOAT64,
         .rows = 45,
         .ndim = 1,
         .shape = {300},
         .salt = 3,
         .layout = FX_CHUNKED,
         .chunk = {20, 64},
         .fletcher32 = true},
    };
    fx_write_file("split.h5", ds, 4);
    const char *fields =
        fx_fmt("[%s, %s, %s, %s]", field_json("a", "/split1", "float32"),
               field_json("b", "/split2", "native"), field_json("c", "/split3", "int32"),
               field_json("d", "/split_f32", "float64"));
    const struct expect x[] = {{.field = 0, .ds = &ds[0], .out = HFEED_DTYPE_FLOAT32},
                               {.field = 1, .ds = &ds[1]},
                               {.field = 2, .ds = &ds[2], .out = HFEED_DTYPE_INT32},
                               {.field = 3, .ds = &ds[3], .out = HFEED_DTYPE_FLOAT64}};
    compare_paths("[\"split.h5\"]", fields, ALL_DIRECT, 0, true, x, 4);
}

/* int32 datasets written with a given filter setup, for filters the direct path lacks. Element 0
 * tells the rows apart; the others repeat, so that every chunk compresses (lzf stores a chunk it
 * cannot shrink unfiltered). */
static double int_value(uint64_t row, size_t elem, const void *ctx)
{
    (void)ctx;
    return elem == 0 ? (double)row - 100.0 : (double)(elem * 3);
}

/* An lzf stream of literal runs only (a control byte 0..31 = that many bytes plus one follow);
 * returns its length. */
static size_t lzf_literal(const unsigned char *in, size_t n, unsigned char *out)
{
    size_t at = 0;
    for (size_t i = 0; i < n; i += 32) {
        const size_t run = n - i < 32 ? n - i : 32;
        out[at++] = (unsigned char)(run - 1);
        memcpy(out + at, in + i, run);
        at += run;
    }
    return at;
}

/* raw_lzf: the chunks are written as lzf streams made here (H5Dwrite_chunk), because liblzf's
 * compressor reads uninitialised memory, which valgrind reports; only decompression runs in
 * HDF5 then. */
static void write_ints(const char *name, const char *path, void (*filters)(hid_t dcpl),
                       bool raw_lzf)
{
    hid_t file = H5Fcreate(fx_path(name), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    cr_assert(file >= 0);
    enum { ROWS = 60, COLS = 4 };
    const hsize_t dims[2] = {ROWS, COLS}, chunk[2] = {16, COLS};
    int32_t buf[ROWS * COLS];
    for (size_t r = 0; r < ROWS; r++)
        for (size_t e = 0; e < COLS; e++)
            buf[r * COLS + e] = (int32_t)int_value(r, e, NULL);
    hid_t space = H5Screate_simple(2, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    cr_assert(H5Pset_chunk(dcpl, 2, chunk) >= 0);
    filters(dcpl);
    hid_t d = H5Dcreate2(file, path, H5T_STD_I32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    cr_assert(d >= 0, "H5Dcreate2 %s", path);
    for (hsize_t c = 0; raw_lzf && c < (ROWS + 15) / 16; c++) {
        int32_t plain[16 * COLS] = {0};
        const size_t rows = ROWS - c * 16 < 16 ? ROWS - c * 16 : 16;
        memcpy(plain, buf + c * 16 * COLS, rows * COLS * sizeof *buf);
        unsigned char out[sizeof plain + sizeof plain / 32 + 1];
        const size_t len = lzf_literal((const unsigned char *)plain, sizeof plain, out);
        const hsize_t off[2] = {c * 16, 0};
        cr_assert(H5Dwrite_chunk(d, H5P_DEFAULT, 0, off, len, out) >= 0);
    }
    if (!raw_lzf) cr_assert(H5Dwrite(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0);
    cr_assert(H5Dflush(d) >= 0, "%s: a filter failed on write", path);
    hid_t dspace = H5Dget_space(d);
    for (hsize_t c = 0; c < (ROWS + 15) / 16; c++) {
        hsize_t off[2], size = 0;
        unsigned mask = 1;
        haddr_t addr;
        cr_assert(H5Dget_chunk_info(d, dspace, c, off, &mask, &addr, &size) >= 0);
        cr_assert_eq(mask, 0, "%s: chunk %llu was stored without a filter", path,
                     (unsigned long long)c);
    }
    H5Sclose(dspace);
    cr_assert(H5Dclose(d) >= 0);
    H5Pclose(dcpl);
    H5Sclose(space);
    cr_assert(H5Fclose(file) >= 0);
}

static void nbit(hid_t dcpl)
{
    cr_assert(H5Pset_nbit(dcpl) >= 0);
}

static void scaleoffset(hid_t dcpl)
{
    cr_assert(H5Pset_scaleoffset(dcpl, H5Z_SO_INT, H5Z_SO_INT_MINBITS_DEFAULT) >= 0);
}

static void fletcher_then_deflate(hid_t dcpl)
{
    cr_assert(H5Pset_fletcher32(dcpl) >= 0);
    cr_assert(H5Pset_deflate(dcpl, 1) >= 0);
}

#define LZF_ID 32000
#define BLOSC_ID 32001

static void lzf(hid_t dcpl)
{
    cr_assert(H5Pset_filter(dcpl, LZF_ID, H5Z_FLAG_OPTIONAL, 0, NULL) >= 0); /* as h5py does */
}

static void blosc(hid_t dcpl)
{
    /* cd_values[0..3] are the filter's own; 4: level, 5: shuffle, 6: compressor (blosclz). */
    const unsigned cd[7] = {0, 0, 0, 0, 5, 1, 0};
    cr_assert(H5Pset_filter(dcpl, BLOSC_ID, H5Z_FLAG_MANDATORY, 7, cd) >= 0);
}

/* libblosc keeps a global context from its first use until blosc_destroy(), which HDF5's blosc
 * plugin never calls; calling it once the loaders are closed keeps the leak checkers (LSan,
 * valgrind) about h5feed. */
static void blosc_release(void)
{
    void *lib = dlopen("libblosc.so.1", RTLD_NOW);
    if (lib == NULL) return;
    void *sym = dlsym(lib, "blosc_destroy");
    if (sym != NULL) {
        void (*destroy)(void);
        memcpy(&destroy, &sym, sizeof destroy);
        destroy();
    }
    dlclose(lib);
}

static const struct expect int_expect = {.field = 0, .value = int_value, .elems = 4};

Test(direct, nbit_filter_falls_back_logged_once)
{
    write_ints("nbit.h5", "/nb", nbit, false);
    check_fallback("nbit.h5", "/nb", "filter", &int_expect);
}

Test(direct, scaleoffset_filter_falls_back_logged_once)
{
    write_ints("so.h5", "/so", scaleoffset, false);
    check_fallback("so.h5", "/so", "filter", &int_expect);
}

Test(direct, fletcher32_before_deflate_falls_back_logged_once)
{
    write_ints("fd.h5", "/fd", fletcher_then_deflate, false);
    check_fallback("fd.h5", "/fd", "filter", &int_expect);
}

Test(direct, lzf_plugin_filter_falls_back_logged_once)
{
    if (H5Zfilter_avail(LZF_ID) <= 0) cr_skip_test("the lzf HDF5 plugin (32000) cannot be loaded");
    write_ints("lzf.h5", "/lzf", lzf, true);
    check_fallback("lzf.h5", "/lzf", "filter", &int_expect);
}

Test(direct, blosc_plugin_filter_falls_back_logged_once)
{
    if (H5Zfilter_avail(BLOSC_ID) <= 0)
        cr_skip_test("the blosc HDF5 plugin (32001) cannot be loaded");
    write_ints("blosc.h5", "/blosc", blosc, false);
    check_fallback("blosc.h5", "/blosc", "filter", &int_expect);
    blosc_release();
}

Test(direct, extensible_array_index_falls_back_logged_once)
{
    const fx_dataset ds = {.path = "/ea",
                           .kind = FX_INT16,
                           .rows = 50,
                           .ndim = 1,
                           .shape = {3},
                           .unlimited = true,
                           .layout = FX_CHUNKED,
                           .chunk = {8, 3},
                           .gzip = 1};
    fx_write_file_latest("ea.h5", &ds, 1);
    const struct expect x = {.field = 0, .ds = &ds};
    check_fallback("ea.h5", "/ea", "extensible", &x);
}

Test(direct, version_2_btree_index_falls_back_logged_once)
{
    const fx_dataset ds = {.path = "/bt2",
                           .kind = FX_FLOAT32,
                           .rows = 50,
                           .ndim = 1,
                           .shape = {3},
                           .unlimited_all = true,
                           .layout = FX_CHUNKED,
                           .chunk = {8, 3},
                           .gzip = 1};
    fx_write_file_latest("bt2.h5", &ds, 1);
    const struct expect x = {.field = 0, .ds = &ds};
    check_fallback("bt2.h5", "/bt2", "B-tree", &x);
}

Test(direct, fallback_logged_once_per_dataset_when_two_fields_read_it)
{
    const fx_dataset ds = {.path = "/cx", .kind = FX_INT16, .rows = 30, .layout = FX_COMPACT};
    fx_write_file("a.h5", &ds, 1);
    const char *fields =
        fx_fmt("[%s, %s]", field_json("a", "/cx", "native"), field_json("b", "/cx", "float32"));
    const struct mode m = {"none", 2, 2};
    struct run r;
    run_all(config("[\"a.h5\"]", fields, &m, "auto"), &r);
    const struct expect x[] = {{.field = 0, .ds = &ds},
                               {.field = 1, .ds = &ds, .out = HFEED_DTYPE_FLOAT32}};
    check_expect(&r, &x[0], "a");
    check_expect(&r, &x[1], "b");
    cr_expect_eq(count_lines(&r.log, fx_path("a.h5"), "\"/cx\"", "H5Dread"), 1,
                 "file+dataset logged %zu times (configs/README.md: each such dataset is logged "
                 "once): %s",
                 count_lines(&r.log, fx_path("a.h5"), "\"/cx\"", "H5Dread"), all_lines(&r.log));
    free_run(&r);
}

Test(direct, fallback_logged_once_per_file)
{
    fx_dataset ds = {.path = "/cx", .kind = FX_FLOAT32, .rows = 20, .layout = FX_COMPACT};
    fx_write_file("a.h5", &ds, 1);
    ds.rows = 25;
    ds.row_offset = 20;
    fx_write_file("b.h5", &ds, 1);
    const char *fields = fx_fmt("[%s]", field_json("x", "/cx", "native"));
    const struct mode m = {"global", 3, 2};
    struct run r;
    run_all(config("[\"a.h5\", \"b.h5\"]", fields, &m, "auto"), &r);
    const struct expect x = {.field = 0, .ds = &ds};
    check_expect(&r, &x, "two compact files");
    cr_assert_eq(r.log.n, 2, "%s", all_lines(&r.log));
    cr_assert_eq(count_lines(&r.log, fx_path("a.h5"), "\"/cx\"", "H5Dread"), 1, "%s",
                 all_lines(&r.log));
    cr_assert_eq(count_lines(&r.log, fx_path("b.h5"), "\"/cx\"", "H5Dread"), 1, "%s",
                 all_lines(&r.log));
    free_run(&r);
}

Test(direct, read_path_hdf5_logs_no_fallback)
{
    const fx_dataset ds[] = {
        {.path = "/cx", .kind = FX_FLOAT32, .rows = 30, .layout = FX_COMPACT},
        {.path = "/z",
         .kind = FX_FLOAT32,
         .rows = 30,
         .salt = 1,
         .layout = FX_CHUNKED,
         .chunk = {8},
         .gzip = 1},
    };
    fx_write_file("a.h5", ds, 2);
    const char *fields =
        fx_fmt("[%s, %s]", field_json("c", "/cx", "native"), field_json("z", "/z", "native"));
    const struct mode m = {"chunk", 3, 2};
    struct run r;
    run_all(config("[\"a.h5\"]", fields, &m, "hdf5"), &r);
    cr_assert_eq(r.log.n, 0, "read_path hdf5 logged: %s", all_lines(&r.log));
    cr_assert_eq(r.stats.chunk_decodes, 0);
    const struct expect x[] = {{.field = 0, .ds = &ds[0]}, {.field = 1, .ds = &ds[1]}};
    check_expect(&r, &x[0], "c");
    check_expect(&r, &x[1], "z");
    free_run(&r);
}

Test(direct, env_read_path_hdf5_forces_h5dread_and_logs_the_override)
{
    const fx_dataset ds[] = {
        {.path = "/cx", .kind = FX_FLOAT32, .rows = 30, .layout = FX_COMPACT},
        {.path = "/z",
         .kind = FX_FLOAT32,
         .rows = 30,
         .salt = 1,
         .layout = FX_CHUNKED,
         .chunk = {8},
         .gzip = 1,
         .shuffle = true},
    };
    fx_write_file("a.h5", ds, 2);
    const char *fields =
        fx_fmt("[%s, %s]", field_json("c", "/cx", "native"), field_json("z", "/z", "native"));
    cr_assert_eq(setenv("HFEED_READ_PATH", "hdf5", 1), 0);
    const struct mode m = {"chunk", 3, 2};
    struct run r;
    run_all(config("[\"a.h5\"]", fields, &m, "auto"), &r);
    cr_assert_eq(count_lines(&r.log, "HFEED_READ_PATH", "hdf5", NULL), 1,
                 "the override is not logged once: %s", all_lines(&r.log));
    cr_assert_eq(count_lines(&r.log, "H5Dread", NULL, NULL), 0,
                 "a per-dataset fallback was logged under the override: %s", all_lines(&r.log));
    cr_assert_eq(r.log.n, 1, "%s", all_lines(&r.log));
    cr_assert_eq(r.stats.chunk_decodes, 0, "chunks decoded despite HFEED_READ_PATH=hdf5");
    cr_assert_gt(r.stats.fallback_reads, 0);
    const struct expect x[] = {{.field = 0, .ds = &ds[0]}, {.field = 1, .ds = &ds[1]}};
    check_expect(&r, &x[0], "c");
    check_expect(&r, &x[1], "z");
    free_run(&r);
    cr_assert_eq(unsetenv("HFEED_READ_PATH"), 0);
}

/* --- 4. each chunk decoded once per epoch ----------------------------------------------------- */

#define DEC_CHUNKS 40
#define DEC_CHUNK_ROWS 16

static const fx_dataset dec_ds = {.path = "/x",
                                  .kind = FX_FLOAT32,
                                  .rows = DEC_CHUNKS * DEC_CHUNK_ROWS,
                                  .ndim = 1,
                                  .shape = {4},
                                  .layout = FX_CHUNKED,
                                  .chunk = {DEC_CHUNK_ROWS, 4},
                                  .gzip = 1,
                                  .shuffle = true};

static const char *dec_config(const char *shuffle, unsigned workers, unsigned cache_mb)
{
    return fx_fmt("{\"files\": [\"dec.h5\"], \"fields\": [%s], \"batch_size\": 10, "
                  "\"shuffle\": \"%s\", \"shuffle_window\": 2, \"workers\": %u, \"seed\": 3, "
                  "\"device\": \"cpu\", \"cache_mb\": %u}",
                  field_json("x", "/x", "float32"), shuffle, workers, cache_mb);
}

Test(direct, each_chunk_decoded_once_per_epoch_with_a_cache)
{
    fx_write_file("dec.h5", &dec_ds, 1);
    const struct expect x = {.field = 0, .ds = &dec_ds, .out = HFEED_DTYPE_FLOAT32};
    const char *shuffles[] = {"none", "chunk"};
    const unsigned workers[] = {1, 3};
    for (size_t s = 0; s < 2; s++) {
        for (size_t w = 0; w < 2; w++) {
            struct run r;
            run_all(dec_config(shuffles[s], workers[w], 64), &r);
            const char *what = fx_fmt("shuffle %s, %u workers", shuffles[s], workers[w]);
            expect_each_sample_once(&r);
            check_expect(&r, &x, what);
            cr_assert_eq(r.log.n, 0, "%s: %s", what, all_lines(&r.log));
            cr_assert_eq(r.stats.fallback_reads, 0, "%s", what);
            cr_expect_eq(r.stats.chunk_decodes, DEC_CHUNKS, "%s: %llu chunk decodes, expected %d",
                         what, (unsigned long long)r.stats.chunk_decodes, DEC_CHUNKS);
            free_run(&r);
        }
    }
}

/* Two compressed fields whose chunks differ 256-fold in size: each field has a cache of its own
 * (chunkcache.h), so 1 MiB holds all 40 + 40 decoded chunks (650 KiB) and global shuffle decodes
 * each once. One pool of entries the size of the larger chunk held 64 of them: the small
 * chunks took big entries, 80 chunks thrashed 64 entries, and chunks were decoded many times. */
Test(direct, each_field_has_its_own_cache_so_small_chunks_do_not_take_big_entries)
{
    fx_dataset wide = dec_ds, narrow = dec_ds;
    wide.shape[0] = 256;
    wide.chunk[1] = 256;
    narrow.path = "/y";
    narrow.kind = FX_INT64;
    narrow.ndim = 0;
    narrow.chunk[1] = 0;
    const fx_dataset both[] = {wide, narrow};
    fx_write_file("two.h5", both, 2);
    const struct expect xs[] = {{.field = 0, .ds = &both[0], .out = HFEED_DTYPE_FLOAT32},
                                {.field = 1, .ds = &both[1], .out = HFEED_DTYPE_INT64}};
    for (unsigned w = 1; w <= 3; w += 2) {
        struct run r;
        run_all(fx_fmt("{\"files\": [\"two.h5\"], \"fields\": [%s, %s], \"batch_size\": 10, "
                       "\"shuffle\": \"global\", \"workers\": %u, \"seed\": 3, "
                       "\"device\": \"cpu\", \"cache_mb\": 1}",
                       field_json("x", "/x", "float32"), field_json("y", "/y", "int64"), w),
                &r);
        const char *what = fx_fmt("global shuffle, %u workers, cache_mb 1", w);
        expect_each_sample_once(&r);
        check_expect(&r, &xs[0], what);
        check_expect(&r, &xs[1], what);
        cr_expect_eq(r.stats.chunk_decodes, 2 * DEC_CHUNKS, "%s: %llu chunk decodes, expected %d",
                     what, (unsigned long long)r.stats.chunk_decodes, 2 * DEC_CHUNKS);
        free_run(&r);
    }
}

/* Global shuffle over compressed chunks that do not fit the cache is slow, and the open says so,
 * once, with the cache_mb that would hold them; chunk shuffle, or a cache that holds every
 * chunk, is not warned about. */
Test(direct, open_warns_when_global_shuffle_chunks_outgrow_the_cache)
{
    fx_dataset big = dec_ds;
    big.shape[0] = 4096; /* 40 chunks of 16 rows x 16 KiB: 10 MiB decoded */
    big.chunk[1] = 4096;
    fx_write_file("big.h5", &big, 1);
    const char *cases[][2] = {{"global", "1"}, {"chunk", "1"}, {"global", "16"}};
    for (size_t i = 0; i < 3; i++) {
        struct run r;
        run_all(fx_fmt("{\"files\": [\"big.h5\"], \"fields\": [%s], \"batch_size\": 10, "
                       "\"shuffle\": \"%s\", \"workers\": 2, \"device\": \"cpu\", "
                       "\"cache_mb\": %s}",
                       field_json("x", "/x", "float32"), cases[i][0], cases[i][1]),
                &r);
        const size_t warned = count_lines(&r.log, "cache_mb 1 holds 10% of the 10 MiB",
                                          "cache_mb 10 holds them all", "\"shuffle\": \"chunk\"");
        cr_expect_eq(warned, i == 0 ? 1 : 0, "shuffle %s, cache_mb %s: %zu warnings: %s",
                     cases[i][0], cases[i][1], warned, all_lines(&r.log));
        cr_expect_eq(r.log.n, warned, "other log lines: %s", all_lines(&r.log));
        expect_each_sample_once(&r);
        free_run(&r);
    }
}

Test(direct, chunks_decode_correctly_without_a_cache)
{
    fx_write_file("dec.h5", &dec_ds, 1);
    const struct expect x = {.field = 0, .ds = &dec_ds, .out = HFEED_DTYPE_FLOAT32};
    const char *shuffles[] = {"none", "chunk", "global"};
    for (size_t s = 0; s < 3; s++) {
        struct run r;
        run_all(dec_config(shuffles[s], 3, 0), &r);
        const char *what = fx_fmt("shuffle %s, cache_mb 0", shuffles[s]);
        expect_each_sample_once(&r);
        check_expect(&r, &x, what);
        cr_assert_geq(r.stats.chunk_decodes, DEC_CHUNKS, "%s: %llu chunk decodes", what,
                      (unsigned long long)r.stats.chunk_decodes);
        free_run(&r);
    }
}

Test(direct, global_shuffle_with_a_cache_delivers_correct_data)
{
    fx_write_file("dec.h5", &dec_ds, 1);
    const struct expect x = {.field = 0, .ds = &dec_ds, .out = HFEED_DTYPE_FLOAT32};
    for (unsigned w = 1; w <= 3; w += 2) {
        struct run r;
        run_all(dec_config("global", w, 64), &r);
        expect_each_sample_once(&r);
        check_expect(&r, &x, fx_fmt("global, %u workers", w));
        cr_assert_geq(r.stats.chunk_decodes, DEC_CHUNKS);
        free_run(&r);
    }
}

/* Drops a fixture file from the page cache (after fsync, so that its pages can go). */
static void evict_file(const char *name)
{
    const int fd = open(fx_path(name), O_RDONLY);
    cr_assert_geq(fd, 0);
    cr_assert_eq(fsync(fd), 0);
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    close(fd);
}

/* Rows not in the page cache: the workers ask for a shuffled batch's rows, or its compressed
 * chunks, ahead (reader.c ask_ahead) and read them as they arrive; the values must not change. */
Test(direct, cold_rows_read_ahead_deliver_the_same_values)
{
    const fx_dataset contig = {.path = "/x", .kind = FX_FLOAT64, .rows = 3000, .ndim = 1,
                               .shape = {64}};
    fx_dataset chunked = contig;
    chunked.layout = FX_CHUNKED;
    chunked.chunk[0] = 100;
    chunked.chunk[1] = 64;
    fx_dataset gz = chunked;
    gz.gzip = 1;
    gz.shuffle = true;
    fx_write_file("contig.h5", &contig, 1);
    fx_write_file("chunked.h5", &chunked, 1);
    fx_write_file("gz.h5", &gz, 1);
    const char *names[] = {"contig.h5", "chunked.h5", "gz.h5"};
    const fx_dataset *sets[] = {&contig, &chunked, &gz};
    for (size_t i = 0; i < 3; i++) {
        for (unsigned w = 1; w <= 3; w += 2) {
            evict_file(names[i]);
            struct run r;
            run_all(fx_fmt("{\"files\": [\"%s\"], \"fields\": [%s], \"batch_size\": 64, "
                           "\"shuffle\": \"global\", \"workers\": %u, \"device\": \"cpu\"}",
                           names[i], field_json("x", "/x", "float32"), w),
                    &r);
            expect_each_sample_once(&r);
            const struct expect x = {.field = 0, .ds = sets[i], .out = HFEED_DTYPE_FLOAT32};
            check_expect(&r, &x, fx_fmt("%s cold, %u workers", names[i], w));
            cr_assert_eq(r.stats.fallback_reads, 0, "%s: read through H5Dread", names[i]);
            cr_assert_gt(r.stats.read_ahead, 0, "%s cold: nothing was read ahead", names[i]);
            free_run(&r);
            /* Now cached: the probes find the rows, and nothing is asked ahead. */
            run_all(fx_fmt("{\"files\": [\"%s\"], \"fields\": [%s], \"batch_size\": 64, "
                           "\"shuffle\": \"global\", \"workers\": %u, \"device\": \"cpu\"}",
                           names[i], field_json("x", "/x", "float32"), w),
                    &r);
            cr_assert_eq(r.stats.read_ahead, 0, "%s warm: %llu batch fields read ahead", names[i],
                         (unsigned long long)r.stats.read_ahead);
            free_run(&r);
        }
    }
}

Test(direct, seek_on_the_direct_path_delivers_what_an_uninterrupted_run_does)
{
    fx_write_file("dec.h5", &dec_ds, 1);
    const unsigned caches[] = {64, 0};
    for (size_t c = 0; c < 2; c++) {
        const char *json =
            fx_fmt("{\"files\": [\"dec.h5\"], \"fields\": [%s], \"batch_size\": 10, "
                   "\"shuffle\": \"chunk\", \"shuffle_window\": 2, \"workers\": 3, \"seed\": 3, "
                   "\"epochs\": 2, \"device\": \"cpu\", \"cache_mb\": %u}",
                   field_json("x", "/x", "float32"), caches[c]);
        struct run full;
        run_all(json, &full);
        size_t from = 0, at = 0;
        while (!(full.batch_epoch[from] == 1 && full.batch_index[from] == 7))
            at += full.batch_rows[from++];
        char err[HFEED_ERRBUF_SIZE];
        struct logcap log = {.mu = PTHREAD_MUTEX_INITIALIZER};
        hfeed_loader *l = NULL;
        cr_assert_eq(open_logged(json, &log, &l, err), HFEED_OK, "%s", err);
        for (int i = 0; i < 5; i++) {
            hfeed_batch *b = NULL;
            cr_assert_eq(hfeed_loader_next(l, &b), HFEED_OK);
            hfeed_batch_release(b);
        }
        cr_assert_eq(hfeed_loader_seek(l, 1, 7), HFEED_OK, "%s", hfeed_loader_errmsg(l));
        size_t bi = from, s = at;
        for (;;) {
            hfeed_batch *b = NULL;
            const hfeed_status st = hfeed_loader_next(l, &b);
            if (st == HFEED_END) break;
            cr_assert_eq(st, HFEED_OK, "%s", hfeed_loader_errmsg(l));
            cr_assert_lt(bi, full.batches);
            hfeed_batch_info info;
            const uint64_t *idx = NULL;
            hfeed_tensor t;
            cr_assert_eq(hfeed_batch_get_info(b, &info), HFEED_OK);
            cr_assert_eq(hfeed_batch_get_indices(b, &idx), HFEED_OK);
            cr_assert_eq(hfeed_batch_get_tensor(b, 0, &t), HFEED_OK);
            cr_assert_eq(info.samples, full.batch_rows[bi]);
            cr_assert(memcmp(idx, full.indices + s, info.samples * sizeof *idx) == 0,
                      "cache_mb %u: batch %zu after seek: other samples", caches[c], bi);
            cr_assert(memcmp(t.data, full.data[0] + s * full.row_bytes[0], t.nbytes) == 0,
                      "cache_mb %u: batch %zu after seek: other bytes", caches[c], bi);
            hfeed_batch_release(b);
            s += info.samples;
            bi++;
        }
        cr_assert_eq(bi, full.batches, "the run after seek ended early");
        cr_assert_eq(hfeed_loader_close(l), HFEED_OK);
        pthread_mutex_destroy(&log.mu);
        free_run(&full);
    }
}

/* --- 5. corrupt chunks ------------------------------------------------------------------------ */

/* Runs until the error; no batch delivered before it holds a row of [bad_first, bad_end). */
static void expect_corrupt_chunk_fails(const char *json, uint64_t bad_first, uint64_t bad_end,
                                       bool direct, const char *needle)
{
    struct logcap log = {.mu = PTHREAD_MUTEX_INITIALIZER};
    char err[HFEED_ERRBUF_SIZE];
    hfeed_loader *l = NULL;
    hfeed_status st = open_logged(json, &log, &l, err);
    cr_assert_eq(st, HFEED_OK, "open: %s", err);
    size_t batches = 0;
    for (;;) {
        hfeed_batch *b = NULL;
        st = hfeed_loader_next(l, &b);
        if (st != HFEED_OK) break;
        const uint64_t *idx = NULL;
        hfeed_batch_info bi;
        cr_assert_eq(hfeed_batch_get_info(b, &bi), HFEED_OK);
        cr_assert_eq(hfeed_batch_get_indices(b, &idx), HFEED_OK);
        for (size_t i = 0; i < bi.samples; i++)
            cr_assert(idx[i] < bad_first || idx[i] >= bad_end,
                      "%s: batch %zu holds sample %llu of the corrupt chunk", json, batches,
                      (unsigned long long)idx[i]);
        hfeed_batch_release(b);
        batches++;
    }
    cr_assert_eq(st, HFEED_E_READ, "%s: expected HFEED_E_READ after %zu batches, got %s: %s", json,
                 batches, hfeed_strerror((int)st), hfeed_loader_errmsg(l));
    const char *msg = fx_fmt("%s", hfeed_loader_errmsg(l));
    cr_assert_not_null(strstr(msg, fx_path("bad.h5")), "message does not name the file: %s", msg);
    cr_assert_not_null(strstr(msg, "\"/x\""), "message does not name the dataset: %s", msg);
    if (direct) cr_assert_not_null(strstr(msg, "chunk"), "message does not say chunk: %s", msg);
    if (needle != NULL)
        cr_assert_not_null(strstr(msg, needle), "message does not say %s: %s", needle, msg);
    for (int i = 0; i < 3; i++) {
        hfeed_batch *b = (hfeed_batch *)(void *)&batches;
        st = hfeed_loader_next(l, &b);
        cr_assert_eq(st, HFEED_E_READ, "the error is not sticky: %s", hfeed_strerror((int)st));
        cr_assert_null(b);
        cr_assert_str_eq(hfeed_loader_errmsg(l), msg);
    }
    cr_assert_eq(hfeed_loader_close(l), HFEED_OK);
    pthread_mutex_destroy(&log.mu);
}

static void corrupt_and_check(const fx_dataset *ds, const char *needle, bool check_hdf5)
{
    fx_write_file("bad.h5", ds, 1);
    uint64_t first = 0, nrows = 0;
    fx_corrupt_chunk("bad.h5", "/x", 3, &first, &nrows);
    cr_assert_gt(nrows, 0);
    for (size_t i = 0; i < NMODES; i++) {
        const char *json = config("[\"bad.h5\"]", fx_fmt("[%s]", field_json("x", "/x", "float32")),
                                  &modes[i], "auto");
        expect_corrupt_chunk_fails(json, first, first + nrows, true, needle);
    }
    if (check_hdf5) {
        const char *json = config("[\"bad.h5\"]", fx_fmt("[%s]", field_json("x", "/x", "float32")),
                                  &modes[0], "hdf5");
        expect_corrupt_chunk_fails(json, first, first + nrows, false, NULL);
    }
}

Test(direct, corrupt_deflate_chunk_fails_with_read_error_naming_the_chunk)
{
    const fx_dataset ds = {.path = "/x",
                           .kind = FX_FLOAT32,
                           .rows = 128,
                           .ndim = 1,
                           .shape = {8},
                           .layout = FX_CHUNKED,
                           .chunk = {16, 8},
                           .gzip = 6,
                           .shuffle = true};
    corrupt_and_check(&ds, NULL, true);
}

Test(direct, corrupt_fletcher32_chunk_fails_with_checksum_error)
{
    const fx_dataset ds = {.path = "/x",
                           .kind = FX_FLOAT32,
                           .rows = 128,
                           .ndim = 1,
                           .shape = {8},
                           .layout = FX_CHUNKED,
                           .chunk = {16, 8},
                           .fletcher32 = true};
    corrupt_and_check(&ds, "fletcher32", false);
}

/* --- 6. memory -------------------------------------------------------------------------------- */

Test(direct, memory_fixed_at_open_and_larger_with_a_chunk_cache)
{
    fx_write_file("dec.h5", &dec_ds, 1);
    struct run with, without;
    run_all(dec_config("chunk", 3, 64), &with);
    run_all(dec_config("chunk", 3, 0), &without);
    cr_assert_eq(with.info_open.memory_bytes, with.info_end.memory_bytes,
                 "memory_bytes changed during the epoch: %zu -> %zu", with.info_open.memory_bytes,
                 with.info_end.memory_bytes);
    cr_assert_eq(without.info_open.memory_bytes, without.info_end.memory_bytes);
    cr_assert_gt(with.info_open.memory_bytes, without.info_open.memory_bytes,
                 "cache_mb 64: %zu bytes, cache_mb 0: %zu bytes", with.info_open.memory_bytes,
                 without.info_open.memory_bytes);
    /* The whole decoded dataset fits the cache; it needs no more than that (plus the rest). */
    const size_t decoded = DEC_CHUNKS * DEC_CHUNK_ROWS * 4 * sizeof(float);
    cr_assert_geq(with.info_open.memory_bytes - without.info_open.memory_bytes, decoded);
    free_run(&with);
    free_run(&without);
}

/* "read_rows": global shuffle reads rows one at a time, with pread or from the mapping; both
 * deliver the values written, and the stats say how many came from the mapping: none with
 * "pread", all with "mapping"; with "auto", all for a dataset of at most 16 MiB (catalog.c
 * SMALL_MAPPED), and for a larger one all or none, as the page cache holds its file (2 MiB
 * pages or not: chunkio.h hfeed__chunkio_huge_cached). */
Test(direct, read_rows_pread_mapping_and_auto_deliver_the_values)
{
    const fx_dataset small = {.path = "/x", .kind = FX_FLOAT64, .rows = 4096, .ndim = 1,
                              .shape = {64}}; /* 2 MiB */
    const fx_dataset big = {.path = "/x", .kind = FX_FLOAT64, .rows = 5000, .ndim = 1,
                            .shape = {512}}; /* 20 MiB */
    fx_write_file("small.h5", &small, 1);
    fx_write_file("big.h5", &big, 1);
    static const char *const ways[] = {"pread", "mapping", "auto"};
    for (size_t f = 0; f < 2; f++) {
        const fx_dataset *ds = f == 0 ? &small : &big;
        for (size_t i = 0; i < 3; i++) {
            struct run r;
            run_all(fx_fmt("{\"files\": [\"%s\"], \"fields\": [%s], \"batch_size\": 64, "
                           "\"shuffle\": \"global\", \"workers\": 2, \"read_rows\": \"%s\"}",
                           f == 0 ? "small.h5" : "big.h5", field_json("x", "/x", "float32"),
                           ways[i]),
                    &r);
            expect_each_sample_once(&r);
            const struct expect x = {.field = 0, .ds = ds, .out = HFEED_DTYPE_FLOAT32};
            check_expect(&r, &x, ways[i]);
            const uint64_t mapped = r.stats.mapped_rows, rows = ds->rows;
            const char *what = fx_fmt("%s, read_rows %s: %llu of %llu rows mapped",
                                      f == 0 ? "2 MiB" : "20 MiB", ways[i],
                                      (unsigned long long)mapped, (unsigned long long)rows);
            if (i == 0) cr_expect_eq(mapped, 0, "%s", what);
            if (i == 1 || (i == 2 && f == 0)) cr_expect_eq(mapped, rows, "%s", what);
            if (i == 2 && f == 1) cr_expect(mapped == 0 || mapped == rows, "%s", what);
            free_run(&r);
        }
    }
}
