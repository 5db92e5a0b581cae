/* roofline: the verdict's arithmetic (hfeed_roofline_judge: combined limit, shares, bounding
 * field, bounding stage by the rules in h5feed.h), the path each field's storage takes
 * (hfeed__roofline_kind), and that a measurement on tiny files runs and returns a positive limit
 * with the right path per field, and a clean error for a bad config. Timings are never checked:
 * only that limits are positive and the arithmetic holds. The threads of the measurement run
 * under TSan through tests/tool/test_bench_roofline.py (Criterion cannot start under TSan). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures.h"
#include "h5feed.h"
#include "roofline.h"

#define EPS 1e-12

static hfeed_stats stages(uint64_t read, uint64_t decode, uint64_t convert, uint64_t wait)
{
    hfeed_stats s = {0};
    s.read_ns = read;
    s.decode_ns = decode;
    s.convert_ns = convert;
    s.wait_ns = wait;
    return s;
}

Test(roofline, combined_limit_adds_times_per_sample)
{
    static const struct {
        const char *what;
        double limit[3];
        size_t n;
        double achieved;
        double want_limit, want_share;
        size_t want_field;
        int want_partial;
    } rows[] = {
        {"one field", {1000.0}, 1, 500.0, 1000.0, 0.5, 0, 0},
        {"two equal fields halve it", {1000.0, 1000.0}, 2, 250.0, 500.0, 0.5, 0, 0},
        {"1/(1/100 + 1/400) = 80", {100.0, 400.0}, 2, 40.0, 80.0, 0.5, 0, 0},
        {"the slowest bounds, wherever it is", {400.0, 100.0, 400.0}, 3, 66.0, 200.0 / 3.0,
         0.99, 1, 0},
        {"a field without a limit is left out", {100.0, 0.0, 400.0}, 3, 80.0, 80.0, 1.0, 0, 1},
        {"no field has a limit", {0.0, -1.0}, 2, 80.0, 0.0, 0.0, SIZE_MAX, 1},
        {"no fields", {0.0}, 0, 80.0, 0.0, 0.0, SIZE_MAX, 0},
        {"faster than the limit", {100.0}, 1, 150.0, 100.0, 1.5, 0, 0},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        double ts[3] = {-1, -1, -1}, fs[3] = {-1, -1, -1};
        hfeed_roofline_verdict v;
        const hfeed_stats s = stages(0, 0, 0, 0);
        cr_assert_eq(hfeed_roofline_judge(rows[i].limit, rows[i].n, rows[i].achieved, 1.0, 2, &s,
                                          ts, fs, &v),
                     HFEED_OK, "%s", rows[i].what);
        cr_expect_float_eq(v.limit, rows[i].want_limit, 1e-9, "%s: limit %g", rows[i].what,
                           v.limit);
        cr_expect_float_eq(v.share, rows[i].want_share, 1e-9, "%s: share %g", rows[i].what,
                           v.share);
        cr_expect_eq(v.bounding_field, rows[i].want_field, "%s: field %zu", rows[i].what,
                     v.bounding_field);
        cr_expect_eq(v.partial, rows[i].want_partial, "%s", rows[i].what);
        double sum_ts = 0, sum_fs = 0;
        for (size_t k = 0; k < rows[i].n; k++) {
            const bool has = rows[i].limit[k] > 0;
            cr_expect_float_eq(fs[k], has ? rows[i].achieved / rows[i].limit[k] : 0.0, EPS,
                               "%s: field share %zu", rows[i].what, k);
            cr_expect_float_eq(ts[k], has ? v.limit / rows[i].limit[k] : 0.0, EPS,
                               "%s: time share %zu", rows[i].what, k);
            sum_ts += ts[k];
            sum_fs += fs[k];
        }
        if (v.limit > 0) {
            cr_expect_float_eq(sum_ts, 1.0, 1e-9, "%s: time shares add to 1", rows[i].what);
            cr_expect_float_eq(sum_fs, v.share, 1e-9, "%s: field shares add to the share",
                               rows[i].what);
        }
    }
}

Test(roofline, bound_follows_the_rules_in_order)
{
    const uint64_t s = 1000000000; /* one second, the run's wall time below */
    static const struct {
        const char *what;
        double achieved; /* against a limit of 1000 samples/s */
        double seconds;
        unsigned workers;
        uint64_t read, decode, convert, wait; /* fractions of s, in thousandths */
        hfeed_bound want;
    } rows[] = {
        {"no samples", 0.0, 1.0, 2, 0, 0, 0, 0, HFEED_BOUND_UNKNOWN},
        {"no time", 500.0, 0.0, 2, 0, 0, 0, 0, HFEED_BOUND_UNKNOWN},
        {"at the limit", 800.0, 1.0, 2, 0, 0, 0, 900, HFEED_BOUND_MACHINE},
        {"just under the machine share", 799.0, 1.0, 2, 1000, 500, 400, 0, HFEED_BOUND_READ},
        {"busy, decoding most", 300.0, 1.0, 2, 100, 1500, 300, 500, HFEED_BOUND_DECODE},
        {"busy, converting most", 300.0, 1.0, 2, 300, 0, 900, 500, HFEED_BOUND_CONVERT},
        {"busy, a read/decode tie goes to read", 300.0, 1.0, 2, 600, 600, 0, 0,
         HFEED_BOUND_READ},
        {"idle workers, consumer never waited", 300.0, 1.0, 2, 100, 100, 100, 100,
         HFEED_BOUND_CONSUMER},
        {"idle workers, consumer waited", 300.0, 1.0, 2, 100, 100, 100, 600,
         HFEED_BOUND_HANDOFF},
        {"busy is per worker: 1.2 s of work is idle for 4", 300.0, 1.0, 4, 400, 400, 400, 0,
         HFEED_BOUND_CONSUMER},
        {"0 workers count as 1", 300.0, 1.0, 0, 600, 0, 0, 0, HFEED_BOUND_READ},
    };
    const double limit = 1000.0;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const hfeed_stats st = stages(rows[i].read * s / 1000, rows[i].decode * s / 1000,
                                      rows[i].convert * s / 1000, rows[i].wait * s / 1000);
        hfeed_roofline_verdict v;
        cr_assert_eq(hfeed_roofline_judge(&limit, 1, rows[i].achieved, rows[i].seconds,
                                          rows[i].workers, &st, NULL, NULL, &v),
                     HFEED_OK);
        cr_expect_eq(v.bound, rows[i].want, "%s: got %s, want %s", rows[i].what,
                     hfeed_bound_name(v.bound), hfeed_bound_name(rows[i].want));
        if (rows[i].seconds > 0) {
            const double work = (double)(rows[i].read + rows[i].decode + rows[i].convert) / 1000;
            const unsigned w = rows[i].workers > 0 ? rows[i].workers : 1;
            cr_expect_float_eq(v.worker_busy, work / w, 1e-9, "%s: busy", rows[i].what);
            cr_expect_float_eq(v.consumer_wait, (double)rows[i].wait / 1000, 1e-9, "%s: wait",
                               rows[i].what);
        }
    }
}

Test(roofline, judge_refuses_null_and_reads_null_stats_as_zero)
{
    hfeed_roofline_verdict v;
    cr_expect_eq(hfeed_roofline_judge(NULL, 1, 1.0, 1.0, 1, NULL, NULL, NULL, &v),
                 HFEED_E_INVALID_ARG);
    const double limit = 100.0;
    cr_expect_eq(hfeed_roofline_judge(&limit, 1, 1.0, 1.0, 1, NULL, NULL, NULL, NULL),
                 HFEED_E_INVALID_ARG);
    cr_assert_eq(hfeed_roofline_judge(&limit, 1, 10.0, 1.0, 1, NULL, NULL, NULL, &v), HFEED_OK);
    cr_expect_eq(v.bound, HFEED_BOUND_CONSUMER, "no worker time, no wait: %s",
                 hfeed_bound_name(v.bound));
}

Test(roofline, names_are_static_and_never_null)
{
    cr_expect_str_eq(hfeed_roofline_path_name(HFEED_ROOFLINE_DECODE), "decode pipeline");
    cr_expect_str_eq(hfeed_roofline_path_name(HFEED_ROOFLINE_SEQ_MAP), "seq mapping");
    cr_expect_str_eq(hfeed_roofline_path_name((hfeed_roofline_path)99), "invalid");
    cr_expect_str_eq(hfeed_bound_name(HFEED_BOUND_HANDOFF), "loader: hand-off");
    cr_expect_str_eq(hfeed_bound_name((hfeed_bound)-1), "invalid");
}

Test(roofline, median_takes_the_middle)
{
    double a[] = {3.0, 1.0, 2.0};
    cr_expect_eq(hfeed__roofline_median(a, 3), 2.0);
    double b[] = {5.0};
    cr_expect_eq(hfeed__roofline_median(b, 1), 5.0);
    double c[] = {4.0, 1.0, 3.0, 2.0};
    cr_expect_eq(hfeed__roofline_median(c, 4), 3.0);
}

Test(roofline, kind_follows_each_files_storage)
{
    struct hfeed__direct rows = {.chunked = false};
    struct hfeed__direct gz = {.chunked = true, .pipeline = {.nfilters = 1}};
    struct hfeed__direct tiled = {.chunked = true, .tiled = true};
    static const struct {
        const char *what;
        int src[2]; /* 0: H5Dread, 1: rows, 2: compressed chunks, 3: tiles */
        bool random;
        hfeed_roofline_path want;
    } cases[] = {
        {"rows, sequential", {1, 1}, false, HFEED_ROOFLINE_SEQ_PREAD},
        {"rows, random", {1, 1}, true, HFEED_ROOFLINE_RAND_PREAD},
        {"compressed", {2, 2}, true, HFEED_ROOFLINE_DECODE},
        {"tiles are decoded", {3, 2}, false, HFEED_ROOFLINE_DECODE},
        {"one file through HDF5", {2, 0}, false, HFEED_ROOFLINE_HDF5},
        {"rows in one file, chunks in the other", {1, 2}, false, HFEED_ROOFLINE_MIXED},
    };
    struct hfeed__direct *by[] = {NULL, &rows, &gz, &tiled};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct hfeed__source src[2] = {{.direct = by[cases[i].src[0]]},
                                       {.direct = by[cases[i].src[1]]}};
        const struct hfeed__field f = {.name = "f", .sources = src};
        cr_expect_eq(hfeed__roofline_kind(&f, 2, cases[i].random), cases[i].want, "%s",
                     cases[i].what);
    }
}

/* ---- the measurement on tiny files ---- */

TestSuite(roofline_measure, .init = fx_setup, .fini = fx_teardown);

/* One file with a contiguous, a chunked and a gzip+shuffle dataset, and a config reading them
 * with 2 workers and shuffle `shuffle`. */
static const char *write_config(const char *shuffle)
{
    fx_dataset ds[3] = {
        {.path = "/contig", .kind = FX_FLOAT64, .rows = 3000, .ndim = 1, .shape = {16}},
        {.path = "/chunked", .kind = FX_FLOAT32, .rows = 3000, .ndim = 1, .shape = {16},
         .layout = FX_CHUNKED, .chunk = {128, 16}, .salt = 1},
        {.path = "/gzip", .kind = FX_FLOAT64, .rows = 3000, .ndim = 1, .shape = {16},
         .layout = FX_CHUNKED, .chunk = {128, 16}, .gzip = 1, .shuffle = true, .salt = 2},
    };
    fx_write_file("r.h5", ds, 3);
    fx_write_text("r.json",
                  fx_fmt("{\"files\": [\"r.h5\"], \"batch_size\": 64, \"workers\": 2, "
                         "\"shuffle\": \"%s\", \"fields\": ["
                         "{\"name\": \"a\", \"dataset\": \"/contig\", \"dtype\": \"float32\"},"
                         "{\"name\": \"b\", \"dataset\": \"/chunked\", \"dtype\": \"float32\"},"
                         "{\"name\": \"c\", \"dataset\": \"/gzip\", \"dtype\": \"float32\"}]}",
                         shuffle));
    return fx_path("r.json");
}

/* Measures cfg with a short budget and checks each field's path and that limits are positive
 * and the better of the two ways. */
static void check_measure(const char *cfg, bool random)
{
    char msg[HFEED_ERRBUF_SIZE] = "";
    hfeed_roofline *r = NULL;
    cr_assert_eq(hfeed_roofline_measure(cfg, 0.05, NULL, NULL, &r, msg, sizeof msg), HFEED_OK,
                 "%s", msg);
    hfeed_roofline_info info;
    cr_assert_eq(hfeed_roofline_get_info(r, &info), HFEED_OK);
    cr_expect_eq(info.fields, 3);
    cr_expect_eq(info.workers, 2);
    cr_expect_eq(info.batch_size, 64);
    cr_expect_eq(info.reps, 3);
    cr_expect_float_eq(info.budget_seconds, 0.05, 1e-12);
    const hfeed_roofline_path rows_pread = random ? HFEED_ROOFLINE_RAND_PREAD
                                                  : HFEED_ROOFLINE_SEQ_PREAD;
    const hfeed_roofline_path rows_map = random ? HFEED_ROOFLINE_RAND_MAP
                                                : HFEED_ROOFLINE_SEQ_MAP;
    static const char *const names[] = {"a", "b", "c"};
    for (size_t k = 0; k < 3; k++) {
        hfeed_roofline_field f;
        cr_assert_eq(hfeed_roofline_get_field(r, k, &f), HFEED_OK);
        cr_expect_str_eq(f.name, names[k]);
        cr_expect_gt(f.limit, 0.0, "field %s has no limit", f.name);
        cr_expect_gt(f.samples, 0);
        if (k == 2) {
            cr_expect_eq(f.path, HFEED_ROOFLINE_DECODE, "field c: %s",
                         hfeed_roofline_path_name(f.path));
            cr_expect_eq(f.pread_limit, f.limit);
            cr_expect_eq(f.map_limit, 0.0);
            continue;
        }
        cr_expect(f.path == rows_pread || f.path == rows_map, "field %s: %s", f.name,
                  hfeed_roofline_path_name(f.path));
        cr_expect_eq(f.limit, f.pread_limit > f.map_limit ? f.pread_limit : f.map_limit);
        cr_expect_eq(f.path == rows_map, f.map_limit > f.pread_limit);
    }
    hfeed_roofline_field none;
    cr_expect_eq(hfeed_roofline_get_field(r, 3, &none), HFEED_E_INVALID_ARG);
    cr_expect_null(none.name);
    hfeed_roofline_destroy(r);
}

Test(roofline_measure, sequential_rows_and_decode_pipeline)
{
    cr_assert_eq(unsetenv("HFEED_READ_PATH"), 0); /* scripts/test.sh sets it for one run */
    check_measure(write_config("chunk"), false);
}

Test(roofline_measure, random_rows_for_global_shuffle)
{
    cr_assert_eq(unsetenv("HFEED_READ_PATH"), 0);
    check_measure(write_config("global"), true);
}

Test(roofline_measure, hdf5_read_path_has_no_limit)
{
    const char *cfg = write_config("none");
    cr_assert_eq(setenv("HFEED_READ_PATH", "hdf5", 1), 0);
    char msg[HFEED_ERRBUF_SIZE] = "";
    hfeed_roofline *r = NULL;
    cr_assert_eq(hfeed_roofline_measure(cfg, 0.05, NULL, NULL, &r, msg, sizeof msg), HFEED_OK,
                 "%s", msg);
    for (size_t k = 0; k < 3; k++) {
        hfeed_roofline_field f;
        cr_assert_eq(hfeed_roofline_get_field(r, k, &f), HFEED_OK);
        cr_expect_eq(f.path, HFEED_ROOFLINE_HDF5);
        cr_expect_eq(f.limit, 0.0);
    }
    hfeed_roofline_destroy(r);
}

Test(roofline_measure, bad_config_and_arguments_fail_cleanly)
{
    static const struct {
        const char *json; /* NULL: no config file at all */
        double budget;
        hfeed_status want;
        const char *needle;
    } rows[] = {
        {"{\"files\": [\"r.h5\"], \"fields\": [], \"workers\": 0}", 0.0, HFEED_E_CONFIG,
         "fields"},
        {"{\"files\": [\"missing.h5\"], \"fields\": [{\"name\": \"a\", \"dataset\": \"/x\"}]}",
         0.0, HFEED_E_FILE, "missing.h5"},
        {"{\"files\": [\"r.h5\"], \"fields\": [{\"name\": \"a\", \"dataset\": \"/nope\"}]}",
         0.0, HFEED_E_DATASET, "/nope"},
        {NULL, 0.0, HFEED_E_FILE, "bad.json"},
        {"{\"files\": [\"r.h5\"], \"fields\": [{\"name\": \"a\", \"dataset\": \"/contig\"}]}",
         -1.0, HFEED_E_INVALID_ARG, "budget"},
        {"{\"files\": [\"r.h5\"], \"fields\": [{\"name\": \"a\", \"dataset\": \"/contig\"}]}",
         NAN, HFEED_E_INVALID_ARG, "budget"},
    };
    write_config("none");
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        if (rows[i].json != NULL)
            fx_write_text("bad.json", rows[i].json);
        else
            remove(fx_path("bad.json"));
        char msg[HFEED_ERRBUF_SIZE] = "";
        hfeed_roofline *r = (hfeed_roofline *)&msg; /* must come back NULL */
        const hfeed_status st = hfeed_roofline_measure(fx_path("bad.json"), rows[i].budget, NULL,
                                                       NULL, &r, msg, sizeof msg);
        cr_expect_eq(st, rows[i].want, "row %zu: %s: %s", i, hfeed_strerror(st), msg);
        cr_expect_null(r, "row %zu", i);
        cr_expect(strstr(msg, rows[i].needle) != NULL, "row %zu: \"%s\" lacks \"%s\"", i, msg,
                  rows[i].needle);
    }
    cr_expect_eq(hfeed_roofline_measure(NULL, 0, NULL, NULL, NULL, NULL, 0), HFEED_E_INVALID_ARG);
    hfeed_roofline_destroy(NULL);
    hfeed_roofline_info info;
    cr_expect_eq(hfeed_roofline_get_info(NULL, &info), HFEED_E_INVALID_ARG);
}
