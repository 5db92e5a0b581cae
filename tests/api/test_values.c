/* values: every delivered element equals the stored value cast to the output dtype, for every
 * layout, filter, byte order, stored type, sample rank and file split the fixtures can write.
 *
 * A row's expected values come from the sample index the batch reports (fixtures compute the
 * stored value from the global row and cast it with plain C casts), so these tests do not depend
 * on the order; test_order.c checks the order. Every run also checks the tensor's shape, dtype
 * and size, and that every sample arrives exactly once. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures.h"
#include "h5feed.h"

TestSuite(values, .init = fx_setup, .fini = fx_teardown);

/* One configured field: its config entry and the dataset template its values come from (the
 * template's rows and row_offset are ignored when checking; the global row is used). */
struct field {
    const char *name;
    const char *dtype; /* the config's dtype string */
    fx_dataset ds;
};

struct mode {
    unsigned workers;
    const char *shuffle;
    const char *read_rows; /* how rows read one at a time are read (configs/README.md) */
};

/* Global shuffle with each way of reading rows one at a time. */
static const struct mode all_modes[] = {
    {1, "none", "auto"},      {3, "global", "auto"}, {3, "global", "pread"},
    {3, "global", "mapping"}, {3, "chunk", "auto"},
};

static hfeed_dtype dtype_of(const struct field *f)
{
    if (strcmp(f->dtype, "float32") == 0) {
        return HFEED_DTYPE_FLOAT32;
    }
    if (strcmp(f->dtype, "float64") == 0) {
        return HFEED_DTYPE_FLOAT64;
    }
    if (strcmp(f->dtype, "int32") == 0) {
        return HFEED_DTYPE_INT32;
    }
    if (strcmp(f->dtype, "int64") == 0) {
        return HFEED_DTYPE_INT64;
    }
    cr_assert_str_eq(f->dtype, "native");
    return fx_kind_dtype(f->ds.kind);
}

/* Writes `name` with one dataset per field, rows rows starting at global row `offset`. */
static void write_fields(const char *name, const struct field *f, size_t nf, uint64_t rows,
                         uint64_t offset, bool latest)
{
    fx_dataset ds[16];
    cr_assert(nf <= 16);
    size_t n = 0;
    for (size_t i = 0; i < nf; i++) {
        bool dup = false;
        for (size_t j = 0; j < i; j++) {
            dup = dup || strcmp(f[j].ds.path, f[i].ds.path) == 0;
        }
        if (dup) {
            continue; /* two fields may read one dataset */
        }
        ds[n] = f[i].ds;
        ds[n].rows = rows;
        ds[n].row_offset = offset;
        n++;
    }
    if (latest) {
        fx_write_file_latest(name, ds, n);
    } else {
        fx_write_file(name, ds, n);
    }
}

static const char *fields_json(const struct field *f, size_t nf)
{
    static char buf[8192];
    size_t at = 0;
    for (size_t i = 0; i < nf; i++) {
        int n = snprintf(buf + at, sizeof buf - at,
                         "%s{\"name\": \"%s\", \"dataset\": \"%s\", \"dtype\": \"%s\"}",
                         i > 0 ? ", " : "", f[i].name, f[i].ds.path, f[i].dtype);
        cr_assert(n > 0 && (size_t)n < sizeof buf - at);
        at += (size_t)n;
    }
    return buf;
}

static void hex(char *out, size_t outlen, const void *p, size_t n)
{
    const unsigned char *b = p;
    size_t at = 0;
    for (size_t i = 0; i < n && at + 3 < outlen; i++) {
        at += (size_t)snprintf(out + at, outlen - at, "%02x", b[i]);
    }
}

/* Checks the tensor's metadata and every element against fx_expect(); stops the test at the
 * first mismatch. */
static void check_tensor(const struct field *f, const hfeed_tensor *t, const uint64_t *idx,
                         size_t rows)
{
    const hfeed_dtype want = dtype_of(f);
    const size_t elems = fx_sample_elems(&f->ds);
    const size_t esize = hfeed_dtype_size(want);
    cr_assert_str_eq(t->name, f->name);
    cr_assert_eq(t->dtype, want, "field %s: dtype %s, expected %s", f->name,
                 hfeed_dtype_name(t->dtype), hfeed_dtype_name(want));
    cr_assert_eq(t->ndim, 1 + f->ds.ndim, "field %s: ndim %d", f->name, t->ndim);
    cr_assert_eq(t->shape[0], (int64_t)rows, "field %s: shape[0] %lld, rows %zu", f->name,
                 (long long)t->shape[0], rows);
    for (int d = 0; d < f->ds.ndim; d++) {
        cr_assert_eq(t->shape[1 + d], (int64_t)f->ds.shape[d], "field %s: shape[%d] %lld", f->name,
                     1 + d, (long long)t->shape[1 + d]);
    }
    cr_assert_eq(t->nbytes, rows * elems * esize, "field %s: nbytes %zu", f->name, t->nbytes);
    cr_assert_eq(t->device, HFEED_DEVICE_CPU);
    cr_assert_not_null(t->data);
    const unsigned char *data = t->data;
    for (size_t r = 0; r < rows; r++) {
        for (size_t e = 0; e < elems; e++) {
            unsigned char want_bytes[8];
            const unsigned char *got = data + (r * elems + e) * esize;
            fx_expect_kind k = fx_expect(&f->ds, idx[r], e, want, want_bytes);
            bool ok;
            if (k == FX_EXPECT_NAN) {
                if (want == HFEED_DTYPE_FLOAT32) {
                    float v;
                    memcpy(&v, got, 4);
                    ok = isnan(v);
                } else if (want == HFEED_DTYPE_FLOAT64) {
                    double v;
                    memcpy(&v, got, 8);
                    ok = isnan(v);
                } else {
                    uint16_t h;
                    memcpy(&h, got, 2);
                    ok = isnan(fx_half_to_double(h));
                }
                if (!ok) {
                    char g[20] = "";
                    hex(g, sizeof g, got, esize);
                    cr_assert_fail("field %s sample %llu elem %zu: expected NaN, got %s", f->name,
                                   (unsigned long long)idx[r], e, g);
                }
                continue;
            }
            cr_assert_eq(k, FX_EXPECT_VALUE,
                         "field %s sample %llu elem %zu: fx_expect says %d "
                         "(the test should have expected a failure)",
                         f->name, (unsigned long long)idx[r], e, (int)k);
            if (memcmp(got, want_bytes, esize) != 0) {
                char g[20] = "", w[20] = "";
                hex(g, sizeof g, got, esize);
                hex(w, sizeof w, want_bytes, esize);
                cr_assert_fail("field %s (%s %s%s -> %s) sample %llu elem %zu: got %s, "
                               "expected %s",
                               f->name, f->ds.path, fx_kind_name(f->ds.kind),
                               f->ds.big_endian ? " BE" : "", f->dtype, (unsigned long long)idx[r],
                               e, g, w);
            }
        }
    }
}

struct expect {
    uint64_t total;
    uint64_t batch_size;
    uint64_t nan;      /* planted NaNs per epoch */
    uint64_t overflow; /* planted finite values that overflow the output float */
};

/* Opens a loader on files_json (a JSON array), takes every batch and checks everything. */
static void check_run(const char *files_json, const struct field *f, size_t nf,
                      const struct expect *ex, const struct mode *m)
{
    const char *json = fx_fmt("{\"files\": %s, \"fields\": [%s], \"batch_size\": %llu, "
                              "\"shuffle\": \"%s\", \"seed\": 11, \"workers\": %u, "
                              "\"prefetch\": 3, \"read_rows\": \"%s\"}",
                              files_json, fields_json(f, nf), (unsigned long long)ex->batch_size,
                              m->shuffle, m->workers, m->read_rows);
    char err[HFEED_ERRBUF_SIZE];
    hfeed_loader *l = NULL;
    hfeed_status st = fx_open(json, &l, err);
    cr_assert_eq(st, HFEED_OK, "open %s: %s: %s", json, hfeed_strerror((int)st), err);
    cr_assert_not_null(l);

    const uint64_t nbatches = (ex->total + ex->batch_size - 1) / ex->batch_size;
    hfeed_loader_info info;
    cr_assert_eq(hfeed_loader_get_info(l, &info), HFEED_OK);
    cr_expect_eq(info.total_samples, ex->total);
    cr_expect_eq(info.samples_per_epoch, ex->total);
    cr_expect_eq(info.batches_per_epoch, nbatches);
    cr_expect_eq(info.fields, nf);
    cr_expect_eq(info.batch_size, ex->batch_size);
    cr_expect_eq(info.workers, m->workers);

    unsigned char *seen = calloc((size_t)ex->total, 1);
    cr_assert_not_null(seen);
    uint64_t nb = 0;
    uint64_t samples = 0;
    for (;;) {
        hfeed_batch *b = NULL;
        st = hfeed_loader_next(l, &b);
        if (st == HFEED_END) {
            cr_assert_null(b);
            break;
        }
        cr_assert_eq(st, HFEED_OK, "[%s, %u workers] batch %llu: %s: %s", m->shuffle, m->workers,
                     (unsigned long long)nb, hfeed_strerror((int)st), hfeed_loader_errmsg(l));
        cr_assert_not_null(b);
        hfeed_batch_info bi;
        cr_assert_eq(hfeed_batch_get_info(b, &bi), HFEED_OK);
        cr_assert_eq(bi.epoch, 0);
        cr_assert_eq(bi.index, nb);
        cr_assert_eq(bi.fields, nf);
        const size_t want_rows =
            nb + 1 < nbatches ? (size_t)ex->batch_size : (size_t)(ex->total - nb * ex->batch_size);
        cr_assert_eq(bi.samples, want_rows, "[%s] batch %llu has %zu samples, expected %zu",
                     m->shuffle, (unsigned long long)nb, bi.samples, want_rows);
        const uint64_t *idx = NULL;
        cr_assert_eq(hfeed_batch_get_indices(b, &idx), HFEED_OK);
        cr_assert_not_null(idx);
        for (size_t r = 0; r < bi.samples; r++) {
            cr_assert_lt(idx[r], ex->total, "sample index %llu out of range",
                         (unsigned long long)idx[r]);
            cr_assert_eq(seen[idx[r]], 0, "[%s] sample %llu delivered twice", m->shuffle,
                         (unsigned long long)idx[r]);
            seen[idx[r]] = 1;
        }
        for (size_t i = 0; i < nf; i++) {
            hfeed_tensor t;
            cr_assert_eq(hfeed_batch_get_tensor(b, i, &t), HFEED_OK);
            check_tensor(&f[i], &t, idx, bi.samples);
        }
        hfeed_tensor none;
        cr_expect_eq(hfeed_batch_get_tensor(b, nf, &none), HFEED_E_INVALID_ARG);
        samples += bi.samples;
        nb++;
        hfeed_batch_release(b);
    }
    cr_assert_eq(nb, nbatches, "[%s] %llu batches, expected %llu", m->shuffle,
                 (unsigned long long)nb, (unsigned long long)nbatches);
    cr_assert_eq(samples, ex->total);
    for (uint64_t i = 0; i < ex->total; i++) {
        cr_assert_eq(seen[i], 1, "[%s] sample %llu never delivered", m->shuffle,
                     (unsigned long long)i);
    }
    free(seen);

    hfeed_stats stats;
    cr_assert_eq(hfeed_loader_get_stats(l, &stats), HFEED_OK);
    cr_expect_eq(stats.batches, nbatches);
    cr_expect_eq(stats.samples, ex->total);
    cr_expect_eq(stats.nan_values, ex->nan, "[%s] nan_values %llu, planted %llu", m->shuffle,
                 (unsigned long long)stats.nan_values, (unsigned long long)ex->nan);
    cr_expect_eq(stats.overflow_values, ex->overflow, "[%s] overflow_values %llu, planted %llu",
                 m->shuffle, (unsigned long long)stats.overflow_values,
                 (unsigned long long)ex->overflow);
    cr_assert_eq(hfeed_loader_close(l), HFEED_OK);
}

static void check_all_modes(const char *files_json, const struct field *f, size_t nf,
                            const struct expect *ex)
{
    for (size_t i = 0; i < sizeof all_modes / sizeof all_modes[0]; i++) {
        check_run(files_json, f, nf, ex, &all_modes[i]);
    }
}

#define NF(a) (sizeof(a) / sizeof((a)[0]))

/* One file "data.h5" with the fields' datasets, checked in every mode. */
static void single_file(const struct field *f, size_t nf, uint64_t rows, uint64_t batch_size)
{
    write_fields("data.h5", f, nf, rows, 0, false);
    struct expect ex = {.total = rows, .batch_size = batch_size};
    check_all_modes("[\"data.h5\"]", f, nf, &ex);
}

Test(values, contiguous_layout_matches_stored_values)
{
    const struct field f[] = {
        {"x", "float32", {.path = "/x", .kind = FX_FLOAT32, .ndim = 2, .shape = {6, 4}}},
        {"y", "int64", {.path = "/y", .kind = FX_INT64, .salt = 1, .extremes = true}},
    };
    single_file(f, NF(f), 150, 16);
}

Test(values, chunks_splitting_the_sample_axis_with_partial_last_chunk)
{
    const struct field f[] = {
        {"x",
         "float64",
         {.path = "/x",
          .kind = FX_FLOAT32,
          .ndim = 2,
          .shape = {6, 4},
          .layout = FX_CHUNKED,
          .chunk = {64, 3, 4}}},
        {"y",
         "int32",
         {.path = "/y",
          .kind = FX_INT32,
          .salt = 2,
          .extremes = true,
          .layout = FX_CHUNKED,
          .chunk = {64}}},
        {"z",
         "float32",
         {.path = "/z",
          .kind = FX_FLOAT32,
          .ndim = 2,
          .shape = {5, 3},
          .salt = 3,
          .layout = FX_CHUNKED,
          .chunk = {100, 2, 2}}},
    };
    single_file(f, NF(f), 1000, 100);
}

Test(values, compact_layout_matches_stored_values)
{
    const struct field f[] = {
        {"x",
         "int32",
         {.path = "/x",
          .kind = FX_INT16,
          .ndim = 1,
          .shape = {5},
          .layout = FX_COMPACT,
          .extremes = true}},
        {"y", "native", {.path = "/y", .kind = FX_FLOAT32, .salt = 1, .layout = FX_COMPACT}},
        {"z",
         "int64",
         {.path = "/z",
          .kind = FX_UINT8,
          .ndim = 2,
          .shape = {2, 2},
          .salt = 2,
          .layout = FX_COMPACT}},
    };
    single_file(f, NF(f), 60, 7);
}

Test(values, gzip_and_shuffle_filters_decode)
{
    const struct field f[] = {
        {"x",
         "float32",
         {.path = "/x",
          .kind = FX_FLOAT32,
          .ndim = 1,
          .shape = {5},
          .layout = FX_CHUNKED,
          .chunk = {32, 5},
          .gzip = 4,
          .shuffle = true}},
        {"y",
         "int64",
         {.path = "/y",
          .kind = FX_INT64,
          .salt = 1,
          .extremes = true,
          .layout = FX_CHUNKED,
          .chunk = {50},
          .gzip = 6,
          .shuffle = true}},
        {"z",
         "float64",
         {.path = "/z",
          .kind = FX_FLOAT64,
          .ndim = 2,
          .shape = {2, 3},
          .salt = 2,
          .layout = FX_CHUNKED,
          .chunk = {40, 2, 3},
          .gzip = 1}},
        {"w",
         "int32",
         {.path = "/w",
          .kind = FX_UINT16,
          .salt = 3,
          .extremes = true,
          .layout = FX_CHUNKED,
          .chunk = {64},
          .shuffle = true}},
    };
    single_file(f, NF(f), 300, 32);
}

Test(values, fletcher32_checksummed_chunks_decode)
{
    const struct field f[] = {
        {"x",
         "float32",
         {.path = "/x",
          .kind = FX_FLOAT64,
          .ndim = 1,
          .shape = {3},
          .layout = FX_CHUNKED,
          .chunk = {40, 3},
          .fletcher32 = true}},
        {"y",
         "int32",
         {.path = "/y",
          .kind = FX_INT16,
          .salt = 1,
          .extremes = true,
          .layout = FX_CHUNKED,
          .chunk = {64},
          .fletcher32 = true,
          .shuffle = true,
          .gzip = 5}},
    };
    single_file(f, NF(f), 200, 24);
}

Test(values, big_endian_float64_and_int32_are_swapped)
{
    const struct field f[] = {
        {"a",
         "float64",
         {.path = "/a",
          .kind = FX_FLOAT64,
          .big_endian = true,
          .ndim = 1,
          .shape = {4},
          .layout = FX_CHUNKED,
          .chunk = {32, 4}}},
        {"b", "native", {.path = "/b", .kind = FX_FLOAT64, .big_endian = true, .salt = 1}},
        {"c",
         "int64",
         {.path = "/c", .kind = FX_INT32, .big_endian = true, .salt = 2, .extremes = true}},
        {"d",
         "native",
         {.path = "/d",
          .kind = FX_INT32,
          .big_endian = true,
          .ndim = 1,
          .shape = {2},
          .salt = 3,
          .extremes = true,
          .layout = FX_CHUNKED,
          .chunk = {16, 1},
          .gzip = 3,
          .shuffle = true}},
        {"e",
         "int32",
         {.path = "/e", .kind = FX_INT32, .big_endian = true, .salt = 4, .extremes = true}},
        {"f", "float32", {.path = "/f", .kind = FX_FLOAT64, .big_endian = true, .salt = 5}},
    };
    single_file(f, NF(f), 130, 20);
}

Test(values, float16_input_converts_exactly)
{
    const struct field f[] = {
        {"h",
         "float32",
         {.path = "/h",
          .kind = FX_FLOAT16,
          .ndim = 1,
          .shape = {4},
          .layout = FX_CHUNKED,
          .chunk = {32, 4}}},
        {"hb", "float64", {.path = "/hb", .kind = FX_FLOAT16, .big_endian = true, .salt = 1}},
        {"hn",
         "native",
         {.path = "/hn",
          .kind = FX_FLOAT16,
          .ndim = 1,
          .shape = {2},
          .salt = 2,
          .layout = FX_CHUNKED,
          .chunk = {50, 2},
          .gzip = 2,
          .shuffle = true}},
    };
    single_file(f, NF(f), 120, 16);
}

Test(values, every_integer_type_widens_to_int64)
{
    struct field f[16];
    static const fx_kind ints[] = {FX_INT8,  FX_UINT8,  FX_INT16, FX_UINT16,
                                   FX_INT32, FX_UINT32, FX_INT64, FX_UINT64};
    static char names[16][8];
    static char paths[16][8];
    size_t n = 0;
    for (size_t i = 0; i < NF(ints); i++) {
        for (int be = 0; be < 2; be++) {
            snprintf(names[n], sizeof names[n], "f%zu", n);
            snprintf(paths[n], sizeof paths[n], "/d%zu", n);
            /* uint64 extremes do not fit int64: native for those (an exact copy). */
            const bool u64 = ints[i] == FX_UINT64;
            f[n] = (struct field){names[n],
                                  u64 ? "native" : "int64",
                                  {.path = paths[n],
                                   .kind = ints[i],
                                   .big_endian = be != 0,
                                   .salt = (unsigned)n,
                                   .extremes = true}};
            if (n % 3 == 1) {
                f[n].ds.layout = FX_CHUNKED;
                f[n].ds.chunk[0] = 17;
            }
            n++;
        }
    }
    single_file(f, n, 110, 32);
}

Test(values, every_integer_type_converts_to_float32_and_float64)
{
    struct field f[16];
    static const fx_kind ints[] = {FX_INT8,  FX_UINT8,  FX_INT16, FX_UINT16,
                                   FX_INT32, FX_UINT32, FX_INT64, FX_UINT64};
    static char names[16][8];
    static char paths[16][8];
    size_t n = 0;
    for (size_t i = 0; i < NF(ints); i++) {
        for (int out = 0; out < 2; out++) {
            snprintf(names[n], sizeof names[n], "f%zu", n);
            snprintf(paths[n], sizeof paths[n], "/d%zu", n);
            f[n] = (struct field){names[n],
                                  out ? "float64" : "float32",
                                  {.path = paths[n],
                                   .kind = ints[i],
                                   .big_endian = out != 0,
                                   .salt = (unsigned)n,
                                   .extremes = true}};
            n++;
        }
    }
    single_file(f, n, 110, 32);
}

Test(values, native_keeps_every_stored_type_in_native_order)
{
    struct field f[FX_KIND_COUNT];
    static char names[FX_KIND_COUNT][8];
    static char paths[FX_KIND_COUNT][8];
    for (size_t k = 0; k < FX_KIND_COUNT; k++) {
        snprintf(names[k], sizeof names[k], "f%zu", k);
        snprintf(paths[k], sizeof paths[k], "/d%zu", k);
        f[k] = (struct field){names[k],
                              "native",
                              {.path = paths[k],
                               .kind = (fx_kind)k,
                               .big_endian = k % 2 == 1,
                               .ndim = 1,
                               .shape = {2},
                               .salt = (unsigned)k,
                               .extremes = true,
                               .layout = k % 3 == 0 ? FX_CHUNKED : FX_CONTIGUOUS,
                               .chunk = {9, 2}}};
    }
    single_file(f, FX_KIND_COUNT, 70, 8);
}

Test(values, samples_of_rank_0_to_3)
{
    const struct field f[] = {
        {"label",
         "int64",
         {.path = "/label", .kind = FX_INT32, .layout = FX_CHUNKED, .chunk = {20}}},
        {"vec",
         "float32",
         {.path = "/vec", .kind = FX_FLOAT32, .ndim = 1, .shape = {5}, .salt = 1}},
        {"img",
         "float32",
         {.path = "/img",
          .kind = FX_FLOAT32,
          .ndim = 2,
          .shape = {3, 4},
          .salt = 2,
          .layout = FX_CHUNKED,
          .chunk = {8, 2, 4}}},
        {"vol",
         "float64",
         {.path = "/vol",
          .kind = FX_FLOAT32,
          .ndim = 3,
          .shape = {2, 3, 2},
          .salt = 3,
          .layout = FX_CHUNKED,
          .chunk = {16, 2, 3, 2},
          .gzip = 1}},
    };
    single_file(f, NF(f), 90, 13);
}

/* Writes `prefix`N.h5 for each entry of rows, with continuing global rows. */
static const char *write_parts(const char *prefix, const struct field *f, size_t nf,
                               const uint64_t *rows, size_t nfiles, uint64_t *total)
{
    static char json[1024];
    size_t at = 0;
    uint64_t offset = 0;
    json[at++] = '[';
    for (size_t i = 0; i < nfiles; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s%zu.h5", prefix, i);
        write_fields(name, f, nf, rows[i], offset, false);
        offset += rows[i];
        at += (size_t)snprintf(json + at, sizeof json - at, "%s\"%s\"", i ? ", " : "", name);
    }
    snprintf(json + at, sizeof json - at, "]");
    *total = offset;
    return json;
}

Test(values, several_files_of_different_lengths_concatenate)
{
    const struct field f[] = {
        {"x",
         "float32",
         {.path = "/x",
          .kind = FX_FLOAT32,
          .ndim = 1,
          .shape = {3},
          .layout = FX_CHUNKED,
          .chunk = {64, 3},
          .gzip = 1,
          .shuffle = true}},
        {"y", "int64", {.path = "/y", .kind = FX_INT64, .salt = 1, .extremes = true}},
    };
    const uint64_t rows[] = {100, 1, 257};
    uint64_t total = 0;
    const char *files = write_parts("part", f, NF(f), rows, NF(rows), &total);
    struct expect ex = {.total = total, .batch_size = 32};
    check_all_modes(files, f, NF(f), &ex);
}

Test(values, glob_expands_in_sorted_order)
{
    const struct field f[] = {
        {"y", "int64", {.path = "/y", .kind = FX_INT64, .index_values = true}},
        {"x", "float64", {.path = "/x", .kind = FX_FLOAT16, .ndim = 1, .shape = {2}, .salt = 1}},
    };
    const uint64_t rows[] = {30, 5, 41};
    uint64_t total = 0;
    (void)write_parts("shard_", f, NF(f), rows, NF(rows), &total);
    struct expect ex = {.total = total, .batch_size = 10};
    check_all_modes("[\"shard_*.h5\"]", f, NF(f), &ex);
}

Test(values, config_file_paths_are_relative_to_its_folder)
{
    const struct field f[] = {
        {"x", "float32", {.path = "/x", .kind = FX_FLOAT64, .ndim = 1, .shape = {2}}},
    };
    write_fields("rel.h5", f, NF(f), 45, 0, false);
    fx_write_text("rel.json", fx_fmt("{\"files\": [\"rel.h5\"], \"fields\": [%s], "
                                     "\"batch_size\": 10}",
                                     fields_json(f, NF(f))));
    char err[HFEED_ERRBUF_SIZE] = "";
    hfeed_loader *l = NULL;
    hfeed_status st = hfeed_loader_open(fx_path("rel.json"), NULL, NULL, &l, err, sizeof err);
    cr_assert_eq(st, HFEED_OK, "%s: %s", hfeed_strerror((int)st), err);
    uint64_t seen = 0;
    hfeed_batch *b = NULL;
    while ((st = hfeed_loader_next(l, &b)) == HFEED_OK) {
        hfeed_batch_info bi;
        const uint64_t *idx;
        hfeed_tensor t;
        cr_assert_eq(hfeed_batch_get_info(b, &bi), HFEED_OK);
        cr_assert_eq(hfeed_batch_get_indices(b, &idx), HFEED_OK);
        cr_assert_eq(hfeed_batch_get_tensor(b, 0, &t), HFEED_OK);
        check_tensor(&f[0], &t, idx, bi.samples);
        seen += bi.samples;
        hfeed_batch_release(b);
    }
    cr_assert_eq(st, HFEED_END, "%s: %s", hfeed_strerror((int)st), hfeed_loader_errmsg(l));
    cr_assert_eq(seen, 45);
    cr_assert_eq(hfeed_loader_close(l), HFEED_OK);
}

Test(values, newest_file_format_chunk_indexes)
{
    const struct field f[] = {
        /* fixed array index: fixed dims, several chunks */
        {"fa",
         "float32",
         {.path = "/fa",
          .kind = FX_FLOAT32,
          .ndim = 1,
          .shape = {3},
          .layout = FX_CHUNKED,
          .chunk = {16, 3}}},
        /* extensible array index: one unlimited axis */
        {"ea",
         "int64",
         {.path = "/ea",
          .kind = FX_INT32,
          .salt = 1,
          .layout = FX_CHUNKED,
          .chunk = {16},
          .unlimited = true,
          .gzip = 2}},
        /* v2 B-tree index: several unlimited axes */
        {"bt",
         "float64",
         {.path = "/bt",
          .kind = FX_FLOAT32,
          .ndim = 1,
          .shape = {4},
          .salt = 2,
          .layout = FX_CHUNKED,
          .chunk = {16, 2},
          .unlimited_all = true}},
        /* single chunk index: the chunk is the whole dataset */
        {"sc",
         "float32",
         {.path = "/sc",
          .kind = FX_FLOAT64,
          .ndim = 1,
          .shape = {2},
          .salt = 3,
          .layout = FX_CHUNKED,
          .chunk = {1000, 2},
          .gzip = 1}},
    };
    write_fields("latest.h5", f, NF(f), 100, 0, true);
    struct expect ex = {.total = 100, .batch_size = 12};
    check_all_modes("[\"latest.h5\"]", f, NF(f), &ex);
}

Test(values, nan_inf_and_overflow_are_counted)
{
    static const fx_special sx[] = {
        {.row = 5, .elem = 0, .f = NAN},
        {.row = 77, .elem = 2, .f = NAN},
        {.row = 10, .elem = 1, .f = INFINITY}, /* inf stays inf: not an overflow */
        {.row = 11, .elem = 1, .f = -INFINITY},
        {.row = 20, .elem = 0, .f = 1e300},        /* overflows float32 */
        {.row = 21, .elem = 2, .f = -1e300},       /* overflows float32 */
        {.row = 30, .elem = 1, .f = 3.5e38},       /* overflows float32 */
        {.row = 31, .elem = 1, .f = 3.4028234e38}, /* rounds to FLT_MAX: no overflow */
        {.row = 32, .elem = 0, .f = 1e-300},       /* underflows to 0: not counted */
    };
    static const fx_special sy[] = {
        {.row = 3, .elem = 0, .f = NAN},
        {.row = 4, .elem = 0, .f = INFINITY},
        {.row = 99, .elem = 0, .f = 1e38}, /* fits float64 */
    };
    static const fx_special sh[] = {
        {.row = 0, .elem = 1, .f = NAN},
        {.row = 50, .elem = 0, .f = -INFINITY},
        {.row = 51, .elem = 0, .f = 70000.0}, /* stored as half inf (the fixture's rounding) */
    };
    const struct field f[] = {
        {"x",
         "float32",
         {.path = "/x",
          .kind = FX_FLOAT64,
          .ndim = 1,
          .shape = {3},
          .layout = FX_CHUNKED,
          .chunk = {25, 3},
          .specials = sx,
          .nspecials = NF(sx)}},
        {"y",
         "float64",
         {.path = "/y", .kind = FX_FLOAT32, .salt = 1, .specials = sy, .nspecials = NF(sy)}},
        {"h",
         "float32",
         {.path = "/h",
          .kind = FX_FLOAT16,
          .ndim = 1,
          .shape = {2},
          .salt = 2,
          .specials = sh,
          .nspecials = NF(sh)}},
    };
    write_fields("special.h5", f, NF(f), 100, 0, false);
    struct expect ex = {.total = 100, .batch_size = 16, .nan = 4, .overflow = 3};
    check_all_modes("[\"special.h5\"]", f, NF(f), &ex);
}

Test(values, nan_counted_when_output_is_native)
{
    static const fx_special sx[] = {
        {.row = 7, .elem = 0, .f = NAN},
        {.row = 8, .elem = 1, .f = NAN},
    };
    const struct field f[] = {
        {"x",
         "native",
         {.path = "/x",
          .kind = FX_FLOAT32,
          .ndim = 1,
          .shape = {2},
          .specials = sx,
          .nspecials = NF(sx)}},
    };
    write_fields("nan.h5", f, NF(f), 20, 0, false);
    struct expect ex = {.total = 20, .batch_size = 8, .nan = 2};
    check_run("[\"nan.h5\"]", f, NF(f), &ex, &all_modes[0]);
}

Test(values, int64_to_int32_converts_when_values_fit)
{
    static const fx_special s[] = {
        {.row = 3, .elem = 0, .i = INT32_MIN},
        {.row = 4, .elem = 0, .i = INT32_MAX},
    };
    const struct field f[] = {
        {"y",
         "int32",
         {.path = "/y",
          .kind = FX_INT64,
          .specials = s,
          .nspecials = NF(s),
          .layout = FX_CHUNKED,
          .chunk = {8}}},
        {"u", "int32", {.path = "/u", .kind = FX_UINT64, .salt = 1}},
    };
    single_file(f, NF(f), 40, 9);
}

/* Runs until the first failure; checks it is E_RANGE naming `dset`, sticky, and that no batch
 * holding `bad_row` was delivered. */
static void expect_range(const char *json, const char *dset, uint64_t bad_row)
{
    char err[HFEED_ERRBUF_SIZE];
    hfeed_loader *l = NULL;
    hfeed_status st = fx_open(json, &l, err);
    cr_assert_eq(st, HFEED_OK, "open: %s: %s", hfeed_strerror((int)st), err);
    hfeed_batch *b = NULL;
    for (;;) {
        st = hfeed_loader_next(l, &b);
        if (st != HFEED_OK) {
            break;
        }
        hfeed_batch_info bi;
        const uint64_t *idx;
        cr_assert_eq(hfeed_batch_get_info(b, &bi), HFEED_OK);
        cr_assert_eq(hfeed_batch_get_indices(b, &idx), HFEED_OK);
        for (size_t r = 0; r < bi.samples; r++) {
            cr_assert_neq(idx[r], bad_row,
                          "the batch holding the value that does not fit was "
                          "delivered");
        }
        hfeed_batch_release(b);
    }
    cr_assert_eq(st, HFEED_E_RANGE, "expected E_RANGE, got %s: %s", hfeed_strerror((int)st),
                 hfeed_loader_errmsg(l));
    cr_assert_null(b);
    cr_assert_not_null(strstr(hfeed_loader_errmsg(l), dset), "message does not name %s: %s", dset,
                       hfeed_loader_errmsg(l));
    cr_assert_eq(hfeed_loader_next(l, &b), HFEED_E_RANGE, "the error is not sticky");
    cr_assert_eq(hfeed_loader_next(l, &b), HFEED_E_RANGE, "the error is not sticky");
    cr_assert_eq(hfeed_loader_close(l), HFEED_OK);
}

Test(values, int64_to_int32_out_of_range_fails_with_range)
{
    static const fx_special s[] = {
        {.row = 57, .elem = 0, .i = (int64_t)1 << 40},
    };
    const struct field f[] = {
        {"ok", "float32", {.path = "/ok", .kind = FX_FLOAT32, .ndim = 1, .shape = {2}}},
        {"big",
         "int32",
         {.path = "/big_values",
          .kind = FX_INT64,
          .salt = 1,
          .specials = s,
          .nspecials = NF(s),
          .layout = FX_CHUNKED,
          .chunk = {10}}},
    };
    write_fields("range.h5", f, NF(f), 100, 0, false);
    for (size_t m = 0; m < NF(all_modes); m++) {
        expect_range(fx_fmt("{\"files\": [\"range.h5\"], \"fields\": [%s], \"batch_size\": 10, "
                            "\"shuffle\": \"%s\", \"workers\": %u}",
                            fields_json(f, NF(f)), all_modes[m].shuffle, all_modes[m].workers),
                     "dataset \"/big_values\" row 57: the value 1099511627776 does not fit int32",
                     57);
    }
}

Test(values, uint32_above_int32_max_fails_with_range)
{
    static const fx_special s[] = {
        {.row = 12, .elem = 1, .i = (int64_t)INT32_MAX + 1},
    };
    const struct field f[] = {
        {"u",
         "int32",
         {.path = "/u32",
          .kind = FX_UINT32,
          .big_endian = true,
          .ndim = 1,
          .shape = {2},
          .specials = s,
          .nspecials = NF(s)}},
    };
    write_fields("range32.h5", f, NF(f), 30, 0, false);
    expect_range(fx_fmt("{\"files\": [\"range32.h5\"], \"fields\": [%s], \"batch_size\": 4, "
                        "\"workers\": 2}",
                        fields_json(f, NF(f))),
                 "dataset \"/u32\" row 12: the value 2147483648 does not fit int32", 12);
}
