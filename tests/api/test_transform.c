/* transform: "normalize": "standard" and "scale"/"offset" as a user sees them through the public
 * API: delivered values and hfeed_loader_get_field_stats() against a second computation done
 * here (long double, two passes over the stored values that the fixtures' formula gives).
 *
 * The files are split in two and sharded, so the statistics must cover every file and every
 * rank's samples, not only what this rank reads; layouts and byte orders differ per field. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures.h"
#include "h5feed.h"

TestSuite(transform, .init = fx_setup, .fini = fx_teardown);

#define ROWS_A 230
#define ROWS_B 171
#define ROWS (ROWS_A + ROWS_B)

/* The stored value of element e of global row r of d, as a double (exact for these kinds). */
static double stored(const fx_dataset *d, uint64_t r, uint64_t e)
{
    double v;
    cr_assert_eq(fx_expect(d, r, e, HFEED_DTYPE_FLOAT64, &v), FX_EXPECT_VALUE);
    return v;
}

/* Population mean and std (ddof 0) of each column over every row, in long double, two passes. */
static void reference_stats(const fx_dataset *d, size_t cols, long double *mean, long double *std)
{
    for (size_t c = 0; c < cols; c++) {
        long double s = 0;
        for (uint64_t r = 0; r < ROWS; r++)
            s += stored(d, r, c);
        mean[c] = s / ROWS;
        long double q = 0;
        for (uint64_t r = 0; r < ROWS; r++) {
            const long double dv = stored(d, r, c) - mean[c];
            q += dv * dv;
        }
        std[c] = sqrtl(q / ROWS);
    }
}

/* Writes a.h5 (rows 0..ROWS_A) and b.h5 (the rest) holding the n datasets. */
static void write_split(const fx_dataset *ds, size_t n)
{
    fx_dataset a[4], b[4];
    cr_assert(n <= 4);
    for (size_t i = 0; i < n; i++) {
        a[i] = b[i] = ds[i];
        a[i].rows = ROWS_A;
        b[i].rows = ROWS_B;
        b[i].row_offset = ROWS_A;
    }
    fx_write_file("a.h5", a, n);
    fx_write_file("b.h5", b, n);
}

static bool near(long double got, long double want, long double rel)
{
    return fabsl(got - want) <= rel * (fabsl(want) > 1 ? fabsl(want) : 1);
}

static const fx_dataset xds = {.path = "/x",
                               .kind = FX_FLOAT64,
                               .big_endian = true,
                               .ndim = 1,
                               .shape = {4},
                               .layout = FX_CHUNKED,
                               .chunk = {32, 4},
                               .gzip = 4,
                               .shuffle = true,
                               .salt = 3};
static const fx_dataset ids = {
    .path = "/i", .kind = FX_INT16, .ndim = 2, .shape = {2, 3}, .layout = FX_CONTIGUOUS, .salt = 5};
static const fx_dataset fds = {
    .path = "/f", .kind = FX_FLOAT32, .layout = FX_CHUNKED, .chunk = {50}, .salt = 7};

/* Field order in the config below. */
enum { X64, X32, I_SCALED, F_OFFSET, I_RAW, NFIELDS };

Test(transform, values_and_stats_equal_a_second_computation)
{
    const fx_dataset ds[3] = {xds, ids, fds};
    write_split(ds, 3);
    const char *json =
        "{\"files\": [\"a.h5\", \"b.h5\"], \"batch_size\": 37, \"shuffle\": \"global\", "
        "\"seed\": 4, \"workers\": 3, \"shard\": {\"rank\": 1, \"world_size\": 2}, \"fields\": ["
        "{\"name\": \"x64\", \"dataset\": \"/x\", \"dtype\": \"float64\", \"normalize\": "
        "\"standard\"},"
        "{\"name\": \"x32\", \"dataset\": \"/x\", \"normalize\": \"standard\", \"scale\": 2, "
        "\"offset\": [0, 1, 2, 3]},"
        "{\"name\": \"i\", \"dataset\": \"/i\", \"dtype\": \"float64\", \"scale\": "
        "[1, -1, 0.5, 2, 0.25, 3], \"offset\": 1.5},"
        "{\"name\": \"f\", \"dataset\": \"/f\", \"offset\": -0.75},"
        "{\"name\": \"iraw\", \"dataset\": \"/i\", \"dtype\": \"int64\"}]}";
    char err[HFEED_ERRBUF_SIZE];
    hfeed_loader *l = NULL;
    cr_assert_eq(fx_open(json, &l, err), HFEED_OK, "%s", err);

    long double mean[4], std[4];
    reference_stats(&xds, 4, mean, std);
    for (size_t k = X64; k <= X32; k++) {
        const double *m = NULL, *s = NULL;
        size_t n = 0;
        cr_assert_eq(hfeed_loader_get_field_stats(l, k, &m, &s, &n), HFEED_OK);
        cr_assert_eq(n, 4);
        for (size_t c = 0; c < 4; c++) {
            cr_assert(near(m[c], mean[c], 1e-13L), "mean[%zu] %.17g, want %.17Lg", c, m[c],
                      mean[c]);
            cr_assert(near(s[c], std[c], 1e-13L), "std[%zu] %.17g, want %.17Lg", c, s[c], std[c]);
        }
    }
    const double *m = (const double *)&m, *s = (const double *)&s;
    size_t n = 7;
    cr_assert_eq(hfeed_loader_get_field_stats(l, I_SCALED, &m, &s, &n), HFEED_OK);
    cr_assert(m == NULL && s == NULL && n == 0, "a field without normalize has no stats");
    cr_assert_eq(hfeed_loader_get_field_stats(l, NFIELDS, &m, &s, &n), HFEED_E_INVALID_ARG);
    cr_assert_eq(hfeed_loader_get_field_stats(NULL, 0, &m, &s, &n), HFEED_E_INVALID_ARG);

    static const double iscale[6] = {1, -1, 0.5, 2, 0.25, 3};
    uint64_t samples = 0;
    for (;;) {
        hfeed_batch *b = NULL;
        const hfeed_status st = hfeed_loader_next(l, &b);
        if (st == HFEED_END) break;
        cr_assert_eq(st, HFEED_OK, "%s", hfeed_loader_errmsg(l));
        hfeed_batch_info bi;
        const uint64_t *idx = NULL;
        hfeed_tensor t[NFIELDS];
        cr_assert_eq(hfeed_batch_get_info(b, &bi), HFEED_OK);
        cr_assert_eq(hfeed_batch_get_indices(b, &idx), HFEED_OK);
        for (size_t k = 0; k < NFIELDS; k++)
            cr_assert_eq(hfeed_batch_get_tensor(b, k, &t[k]), HFEED_OK);
        cr_assert_eq(t[X64].dtype, HFEED_DTYPE_FLOAT64);
        cr_assert_eq(t[X32].dtype, HFEED_DTYPE_FLOAT32);
        cr_assert_eq(t[I_SCALED].dtype, HFEED_DTYPE_FLOAT64);
        cr_assert_eq(t[F_OFFSET].dtype, HFEED_DTYPE_FLOAT32);
        for (size_t r = 0; r < bi.samples; r++) {
            const uint64_t g = idx[r];
            for (size_t c = 0; c < 4; c++) {
                const long double z = (stored(&xds, g, c) - mean[c]) / std[c];
                const double got64 = ((const double *)t[X64].data)[r * 4 + c];
                const float got32 = ((const float *)t[X32].data)[r * 4 + c];
                cr_assert(near(got64, z, 1e-12L), "x64 row %llu col %zu: %.17g, want %.17Lg",
                          (unsigned long long)g, c, got64, z);
                const long double w = z * 2 + (long double)c;
                cr_assert(fabsl(got32 - w) <= 1e-6L * (fabsl(w) + 1),
                          "x32 row %llu col %zu: %.9g, want %.9Lg", (unsigned long long)g, c,
                          (double)got32, w);
            }
            for (size_t c = 0; c < 6; c++) {
                /* No standardisation: exact, the documented formula in float64. */
                const double x = stored(&ids, g, c);
                const double want = (x - 0.0) / 1.0 * iscale[c] + 1.5;
                cr_assert_eq(((const double *)t[I_SCALED].data)[r * 6 + c], want,
                             "i row %llu col %zu", (unsigned long long)g, c);
                cr_assert_eq(((const int64_t *)t[I_RAW].data)[r * 6 + c], (int64_t)x,
                             "untransformed field changed");
            }
            const float fwant = (float)(stored(&fds, g, 0) - 0.75);
            cr_assert_eq(((const float *)t[F_OFFSET].data)[r], fwant, "f row %llu",
                         (unsigned long long)g);
        }
        samples += bi.samples;
        hfeed_batch_release(b);
    }
    cr_assert_eq(samples, (ROWS + 1) / 2);
    cr_assert_eq(hfeed_loader_close(l), HFEED_OK);
}

struct logged {
    int warnings;
    char last[512];
};

static void log_fn(void *user, int level, const char *msg)
{
    struct logged *lg = user;
    if (level == HFEED_LOG_WARN) {
        lg->warnings++;
        snprintf(lg->last, sizeof lg->last, "%s", msg);
    }
}

Test(transform, constant_columns_divide_by_one_and_are_named_once)
{
    fx_dataset d = xds;
    d.rows = 1; /* one sample: every column is constant */
    fx_write_file("one.h5", &d, 1);
    fx_write_text("one.json", "{\"files\": [\"one.h5\"], \"fields\": [{\"name\": \"x\", "
                              "\"dataset\": \"/x\", \"normalize\": \"standard\"}], "
                              "\"batch_size\": 1}");
    struct logged lg = {0, ""};
    char err[HFEED_ERRBUF_SIZE] = "";
    hfeed_loader *l = NULL;
    cr_assert_eq(hfeed_loader_open(fx_path("one.json"), log_fn, &lg, &l, err, sizeof err), HFEED_OK,
                 "%s", err);
    cr_assert_eq(lg.warnings, 1, "%d warnings", lg.warnings);
    cr_assert(strstr(lg.last, "field \"x\"") && strstr(lg.last, "4 of 4"), "%s", lg.last);
    const double *m = NULL, *s = NULL;
    size_t n = 0;
    cr_assert_eq(hfeed_loader_get_field_stats(l, 0, &m, &s, &n), HFEED_OK);
    hfeed_batch *b = NULL;
    cr_assert_eq(hfeed_loader_next(l, &b), HFEED_OK);
    hfeed_tensor t;
    cr_assert_eq(hfeed_batch_get_tensor(b, 0, &t), HFEED_OK);
    for (size_t c = 0; c < 4; c++) {
        cr_assert_eq(s[c], 1.0);
        cr_assert_eq(m[c], stored(&d, 0, c));
        cr_assert_eq(((const float *)t.data)[c], 0.0f, "no inf or NaN from a zero std");
    }
    hfeed_batch_release(b);
    cr_assert_eq(hfeed_loader_close(l), HFEED_OK);
}

Test(transform, scale_count_must_match_the_feature_columns)
{
    const char *json = "{\"files\": [\"i.h5\"], \"fields\": [{\"name\": \"i\", \"dataset\": "
                       "\"/i\", \"scale\": [1, 2, 3, 4, 5]}]}";
    char err[HFEED_ERRBUF_SIZE];
    hfeed_loader *l = NULL;
    fx_dataset d = ids;
    d.rows = 10;
    fx_write_file("i.h5", &d, 1);
    cr_assert_eq(fx_open(json, &l, err), HFEED_E_CONFIG);
    cr_assert_null(l);
    cr_assert(strstr(err, "fields[0].scale: 5 values, but field \"i\" has 6 feature columns"), "%s",
              err);
}

Test(transform, output_section_is_ignored_by_loaders)
{
    fx_dataset d = fds;
    d.rows = 10;
    fx_write_file("f.h5", &d, 1);
    const char *json = "{\"files\": [\"f.h5\"], \"fields\": [{\"name\": \"f\", \"dataset\": "
                       "\"/f\"}], \"output\": {\"path\": \"never-written.h5\"}}";
    char err[HFEED_ERRBUF_SIZE];
    hfeed_loader *l = NULL;
    cr_assert_eq(fx_open(json, &l, err), HFEED_OK, "%s", err);
    hfeed_batch *b = NULL;
    cr_assert_eq(hfeed_loader_next(l, &b), HFEED_OK);
    hfeed_batch_release(b);
    cr_assert_eq(hfeed_loader_close(l), HFEED_OK);
    FILE *f = fopen(fx_path("never-written.h5"), "rb");
    cr_assert_null(f, "a loader wrote the output file");
}
