/* errors: every failure gives the documented code and a message naming the culprit (the key,
 * file or dataset), at open when it can be known then, and from hfeed_loader_next() (sticky)
 * when it shows only while reading. No crash, no hang, no corrupt batch delivered. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fixtures.h"
#include "h5feed.h"

/* Every test gets good.h5: /x float32 (40, 3) chunked, /y int64 (40). */
static void setup(void)
{
    fx_setup();
    const fx_dataset ds[] = {
        {.path = "/x",
         .kind = FX_FLOAT32,
         .rows = 40,
         .ndim = 1,
         .shape = {3},
         .layout = FX_CHUNKED,
         .chunk = {16, 3}},
        {.path = "/y", .kind = FX_INT64, .rows = 40, .salt = 1},
    };
    fx_write_file("good.h5", ds, 2);
}

TestSuite(errors, .init = setup, .fini = fx_teardown);

#define GOOD_FIELDS                                                                                \
    "[{\"name\": \"x\", \"dataset\": \"/x\", \"dtype\": \"float32\"}, "                            \
    "{\"name\": \"y\", \"dataset\": \"/y\", \"dtype\": \"int64\"}]"

/* Opens json, expects failure code `code` at open, a NULL handle, and every needle (NULL ends
 * the list) in the message. */
static void expect_open_fails(const char *json, hfeed_status code, const char *needle1,
                              const char *needle2)
{
    char err[HFEED_ERRBUF_SIZE];
    static char dummy;
    hfeed_loader *l = (hfeed_loader *)(void *)&dummy;
    hfeed_status st = fx_open(json, &l, err);
    if (st == HFEED_OK) {
        hfeed_loader_close(l);
    }
    cr_assert_eq(st, code, "open %s: expected %s, got %s: %s", json, hfeed_strerror((int)code),
                 hfeed_strerror((int)st), err);
    cr_assert_null(l, "the out-pointer is not NULL after a failure");
    cr_assert_gt(strlen(err), 0, "empty message for %s", hfeed_strerror((int)st));
    if (needle1 != NULL) {
        cr_assert_not_null(strstr(err, needle1), "message does not name \"%s\": %s", needle1, err);
    }
    if (needle2 != NULL) {
        cr_assert_not_null(strstr(err, needle2), "message does not name \"%s\": %s", needle2, err);
    }
}

static const char *config_with(const char *files, const char *fields, const char *extra)
{
    return fx_fmt("{\"files\": %s, \"fields\": %s, \"batch_size\": 8%s%s}", files, fields,
                  extra[0] ? ", " : "", extra);
}

/* --- config ------------------------------------------------------------------------------ */

Test(errors, malformed_json_is_a_config_error)
{
    expect_open_fails("{\"files\": [\"good.h5\"], \"fields\": ", HFEED_E_CONFIG, NULL, NULL);
    expect_open_fails("", HFEED_E_CONFIG, NULL, NULL);
    expect_open_fails("{\"files\": [\"good.h5\"],}", HFEED_E_CONFIG, NULL, NULL);
    expect_open_fails("[1, 2]", HFEED_E_CONFIG, NULL, NULL);
}

Test(errors, unknown_key_is_named)
{
    expect_open_fails(config_with("[\"good.h5\"]", GOOD_FIELDS, "\"batch_sise\": 4"),
                      HFEED_E_CONFIG, "batch_sise", NULL);
    expect_open_fails(config_with("[\"good.h5\"]",
                                  "[{\"name\": \"x\", \"dataset\": \"/x\", \"dtyp\": \"float32\"}]",
                                  ""),
                      HFEED_E_CONFIG, "dtyp", NULL);
    expect_open_fails(config_with("[\"good.h5\"]", GOOD_FIELDS,
                                  "\"shard\": {\"rank\": 0, \"world_size\": 1, \"ranks\": 2}"),
                      HFEED_E_CONFIG, "ranks", NULL);
}

Test(errors, wrong_type_or_value_is_named)
{
    const char *f = "[\"good.h5\"]";
    expect_open_fails(
        fx_fmt("{\"files\": [\"good.h5\"], \"fields\": %s, \"batch_size\": \"big\"}", GOOD_FIELDS),
        HFEED_E_CONFIG, "batch_size", NULL);
    expect_open_fails(config_with(f, GOOD_FIELDS, "\"workers\": 0"), HFEED_E_CONFIG, "workers",
                      NULL);
    expect_open_fails(config_with(f, GOOD_FIELDS, "\"prefetch\": 0"), HFEED_E_CONFIG, "prefetch",
                      NULL);
    expect_open_fails(config_with(f, GOOD_FIELDS, "\"epochs\": 0"), HFEED_E_CONFIG, "epochs", NULL);
    expect_open_fails(config_with(f, GOOD_FIELDS, "\"drop_last\": 1"), HFEED_E_CONFIG, "drop_last",
                      NULL);
    expect_open_fails(config_with(f, GOOD_FIELDS, "\"shuffle\": \"sometimes\""), HFEED_E_CONFIG,
                      "shuffle", NULL);
    expect_open_fails(config_with(f, GOOD_FIELDS, "\"seed\": -1"), HFEED_E_CONFIG, "seed", NULL);
    expect_open_fails(config_with(f, GOOD_FIELDS, "\"device\": \"tpu\""), HFEED_E_CONFIG, "device",
                      NULL);
    expect_open_fails(config_with(f, GOOD_FIELDS, "\"shard\": {\"rank\": 3, \"world_size\": 3}"),
                      HFEED_E_CONFIG, "rank", NULL);
    expect_open_fails(config_with(f, GOOD_FIELDS, "\"shard_remainder\": \"keep\""), HFEED_E_CONFIG,
                      "shard_remainder", NULL);
    expect_open_fails(config_with(f,
                                  "[{\"name\": \"x\", \"dataset\": \"/x\", "
                                  "\"dtype\": \"float128\"}]",
                                  ""),
                      HFEED_E_CONFIG, "dtype", NULL);
    expect_open_fails(config_with(f, "[]", ""), HFEED_E_CONFIG, "fields", NULL);
    expect_open_fails(config_with("\"good.h5\"", GOOD_FIELDS, ""), HFEED_E_CONFIG, "files", NULL);
    expect_open_fails("{\"files\": [\"good.h5\"]}", HFEED_E_CONFIG, "fields", NULL);
}

/* A misspelt key names the key it is nearest to; a far one gets no guess. */
Test(errors, unknown_key_suggests_the_nearest_known_key)
{
    expect_open_fails(config_with("[\"good.h5\"]", GOOD_FIELDS, "\"bach_size\": 4"), HFEED_E_CONFIG,
                      "unknown key \"bach_size\" (top level); did you mean \"batch_size\"?", NULL);
    expect_open_fails(
        config_with("[\"good.h5\"]",
                    "[{\"name\": \"x\", \"dataset\": \"/x\", \"dtyp\": \"float32\"}]", ""),
        HFEED_E_CONFIG, "fields[0]: unknown key \"dtyp\"; did you mean \"dtype\"?", NULL);
}

/* An empty or blank config is "empty", not malformed JSON at line 1. */
Test(errors, empty_config_says_empty)
{
    expect_open_fails("", HFEED_E_CONFIG, "config text is empty", NULL);
    expect_open_fails(" \n\t\n", HFEED_E_CONFIG, "config text is empty", NULL);
    fx_write_text("blank.json", "\n   \n");
    char err[HFEED_ERRBUF_SIZE] = "";
    hfeed_loader *l = NULL;
    const hfeed_status st =
        hfeed_loader_open(fx_path("blank.json"), NULL, NULL, &l, err, sizeof err);
    cr_assert_eq(st, HFEED_E_CONFIG, "got %s: %s", hfeed_strerror((int)st), err);
    cr_assert_null(l);
    cr_assert_not_null(strstr(err, "blank.json: config file is empty"), "message: %s", err);
}

struct logged {
    int warnings;
    char last[512];
};

static void log_warnings(void *user, int level, const char *msg)
{
    struct logged *lg = user;
    if (level == HFEED_LOG_WARN) {
        lg->warnings++;
        snprintf(lg->last, sizeof lg->last, "%s", msg);
    }
}

/* batch_size above this rank's samples: the epoch is one partial batch, and a warning says so. */
Test(errors, batch_size_above_the_samples_warns)
{
    struct logged lg = {0, ""};
    char err[HFEED_ERRBUF_SIZE] = "";
    hfeed_loader *l = NULL;
    const char *json = fx_fmt("{\"files\": [\"good.h5\"], \"fields\": %s, \"batch_size\": 100, "
                              "\"shard\": {\"rank\": 1, \"world_size\": 2}}",
                              GOOD_FIELDS);
    cr_assert_eq(hfeed_loader_open_json(json, fx_dir(), log_warnings, &lg, &l, err, sizeof err),
                 HFEED_OK, "%s", err);
    cr_assert_eq(lg.warnings, 1, "%d warnings: %s", lg.warnings, lg.last);
    cr_assert_str_eq(lg.last, "batch_size 100 is more than the 20 samples this rank gets per "
                              "epoch: every epoch is one partial batch of 20; lower batch_size to "
                              "silence this");
    hfeed_batch *b = NULL;
    hfeed_batch_info bi;
    cr_assert_eq(hfeed_loader_next(l, &b), HFEED_OK);
    cr_assert_eq(hfeed_batch_get_info(b, &bi), HFEED_OK);
    cr_assert_eq(bi.samples, 20);
    hfeed_batch_release(b);
    cr_assert_eq(hfeed_loader_next(l, &b), HFEED_END);
    cr_assert_eq(hfeed_loader_close(l), HFEED_OK);
    /* A batch_size that fits warns nothing. */
    lg.warnings = 0;
    cr_assert_eq(hfeed_loader_open_json(config_with("[\"good.h5\"]", GOOD_FIELDS, ""), fx_dir(),
                                        log_warnings, &lg, &l, err, sizeof err),
                 HFEED_OK, "%s", err);
    cr_assert_eq(lg.warnings, 0, "%s", lg.last);
    cr_assert_eq(hfeed_loader_close(l), HFEED_OK);
}

Test(errors, missing_config_file_is_named)
{
    char err[HFEED_ERRBUF_SIZE] = "";
    hfeed_loader *l = NULL;
    const char *path = fx_path("no-such-config.json");
    hfeed_status st = hfeed_loader_open(path, NULL, NULL, &l, err, sizeof err);
    cr_assert_eq(st, HFEED_E_FILE, "got %s: %s", hfeed_strerror((int)st), err);
    cr_assert_null(l);
    cr_assert_not_null(strstr(err, "no-such-config.json"), "message: %s", err);
}

/* --- files and datasets --------------------------------------------------------------------- */

Test(errors, missing_file_is_named)
{
    expect_open_fails(config_with("[\"good.h5\", \"absent.h5\"]", GOOD_FIELDS, ""), HFEED_E_FILE,
                      "absent.h5", NULL);
}

/* HDF5's open of a FIFO blocks until a writer comes, forever; a directory or device is no
 * HDF5 file. Each fails at once, named, with what it is. */
Test(errors, a_fifo_or_directory_in_files_fails_at_once)
{
    cr_assert_eq(mkfifo(fx_path("pipe.h5"), 0600), 0);
    cr_assert_eq(mkdir(fx_path("dir.h5"), 0700), 0);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    expect_open_fails(config_with("[\"good.h5\", \"pipe.h5\"]", GOOD_FIELDS, ""), HFEED_E_FILE,
                      "pipe.h5\": is a FIFO (named pipe), not a regular file", NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    cr_assert_lt((double)(t1.tv_sec - t0.tv_sec), 5.0, "the open waited on the FIFO");
    expect_open_fails(config_with("[\"dir.h5\"]", GOOD_FIELDS, ""), HFEED_E_FILE,
                      "dir.h5\": is a directory, not a regular file", NULL);
    expect_open_fails(config_with("[\"/dev/null\"]", GOOD_FIELDS, ""), HFEED_E_FILE,
                      "\"/dev/null\": is a character device", NULL);
}

Test(errors, glob_matching_nothing_is_named)
{
    expect_open_fails(config_with("[\"good.h5\", \"nothing_*.h5\"]", GOOD_FIELDS, ""), HFEED_E_FILE,
                      "nothing_*.h5", NULL);
}

Test(errors, file_that_is_not_hdf5_is_named)
{
    fx_write_text("plain.h5", "this is not an HDF5 file\n");
    expect_open_fails(config_with("[\"plain.h5\"]", GOOD_FIELDS, ""), HFEED_E_FILE, "plain.h5",
                      NULL);
    fx_write_text("empty.h5", "");
    expect_open_fails(config_with("[\"empty.h5\"]", GOOD_FIELDS, ""), HFEED_E_FILE, "empty.h5",
                      NULL);
}

Test(errors, missing_dataset_names_file_and_dataset)
{
    expect_open_fails(config_with("[\"good.h5\"]",
                                  "[{\"name\": \"x\", \"dataset\": \"/absent\", "
                                  "\"dtype\": \"float32\"}]",
                                  ""),
                      HFEED_E_DATASET, "/absent", "good.h5");
    /* The message lists what the file has, with shapes and types, so the fix is in view. */
    expect_open_fails(
        config_with("[\"good.h5\"]", "[{\"name\": \"x\", \"dataset\": \"/feat\"}]", ""),
        HFEED_E_DATASET,
        "good.h5\": dataset \"/feat\" not found; the file has: /x (40, 3) float32, "
        "/y (40,) int64",
        NULL);
    /* present in the first file, missing in the second */
    const fx_dataset only_x = {
        .path = "/x", .kind = FX_FLOAT32, .rows = 10, .ndim = 1, .shape = {3}};
    fx_write_file("only_x.h5", &only_x, 1);
    expect_open_fails(config_with("[\"good.h5\", \"only_x.h5\"]", GOOD_FIELDS, ""), HFEED_E_DATASET,
                      "/y", "only_x.h5");
    /* a group is not a dataset */
    const fx_dataset grouped = {.path = "/grp/x", .kind = FX_FLOAT32, .rows = 10};
    fx_write_file("grouped.h5", &grouped, 1);
    expect_open_fails(config_with("[\"grouped.h5\"]",
                                  "[{\"name\": \"g\", \"dataset\": \"/grp\", "
                                  "\"dtype\": \"float32\"}]",
                                  ""),
                      HFEED_E_DATASET, "/grp", "grouped.h5");
}

/* Up to a dozen datasets are listed (groups walked into, types as numpy names them), then how
 * many more; a file with none says so. */
Test(errors, missing_dataset_lists_at_most_a_dozen)
{
    fx_dataset ds[14];
    char names[14][16];
    for (int i = 0; i < 14; i++) {
        snprintf(names[i], sizeof names[i], "/g/d%02d", i);
        ds[i] = (fx_dataset){.path = names[i],
                             .kind = i % 2 ? FX_UINT8 : FX_FLOAT64,
                             .rows = 5,
                             .ndim = 2,
                             .shape = {2, 3}};
    }
    fx_write_file("many.h5", ds, 14);
    char err[HFEED_ERRBUF_SIZE];
    hfeed_loader *l = NULL;
    cr_assert_eq(
        fx_open(config_with("[\"many.h5\"]", "[{\"name\": \"x\", \"dataset\": \"/d00\"}]", ""), &l,
                err),
        HFEED_E_DATASET, "%s", err);
    cr_assert_not_null(strstr(err, "dataset \"/d00\" not found; the file has: /g/d00 (5, 2, 3) "
                                   "float64, /g/d01 (5, 2, 3) uint8, /g/d02 "),
                       "%s", err);
    cr_assert_not_null(strstr(err, "/g/d11 (5, 2, 3) uint8, and 2 more"), "%s", err);
    cr_assert_null(strstr(err, "/g/d12"), "%s", err);
    fx_write_file("none.h5", NULL, 0);
    cr_assert_eq(
        fx_open(config_with("[\"none.h5\"]", "[{\"name\": \"x\", \"dataset\": \"/x\"}]", ""), &l,
                err),
        HFEED_E_DATASET, "%s", err);
    cr_assert_not_null(strstr(err, "dataset \"/x\" not found; the file has no datasets"), "%s",
                       err);
}

Test(errors, field_lengths_differing_within_a_file_are_named)
{
    const fx_dataset ds[] = {
        {.path = "/x", .kind = FX_FLOAT32, .rows = 100, .ndim = 1, .shape = {3}},
        {.path = "/y_short", .kind = FX_INT64, .rows = 99},
    };
    fx_write_file("uneven.h5", ds, 2);
    expect_open_fails(
        config_with("[\"uneven.h5\"]",
                    "[{\"name\": \"x\", \"dataset\": \"/x\", \"dtype\": \"float32\"}, "
                    "{\"name\": \"y\", \"dataset\": \"/y_short\", "
                    "\"dtype\": \"int64\"}]",
                    ""),
        HFEED_E_DATASET, "/y_short", "uneven.h5");
}

Test(errors, sample_shape_differing_between_files_is_named)
{
    const fx_dataset wide = {.path = "/x", .kind = FX_FLOAT32, .rows = 10, .ndim = 1, .shape = {4}};
    const fx_dataset y = {.path = "/y", .kind = FX_INT64, .rows = 10};
    fx_write_file("wide.h5", &wide, 1);
    fx_add_dataset("wide.h5", &y);
    expect_open_fails(config_with("[\"good.h5\", \"wide.h5\"]", GOOD_FIELDS, ""), HFEED_E_DATASET,
                      "field \"x\": dataset \"/x\" has sample shape (4,) in file",
                      "wide.h5\" but (3,) in file");
    const fx_dataset square = {
        .path = "/x", .kind = FX_FLOAT32, .rows = 10, .ndim = 2, .shape = {3, 3}};
    fx_write_file("square.h5", &square, 1);
    fx_add_dataset("square.h5", &y);
    expect_open_fails(config_with("[\"good.h5\", \"square.h5\"]", GOOD_FIELDS, ""), HFEED_E_DATASET,
                      "has sample shape (3, 3) in file", "but (3,) in file");
}

Test(errors, string_dataset_is_unsupported_type)
{
    fx_add_string_dataset("good.h5", "/names", 40);
    expect_open_fails(
        config_with("[\"good.h5\"]",
                    "[{\"name\": \"x\", \"dataset\": \"/x\", \"dtype\": \"float32\"}, "
                    "{\"name\": \"n\", \"dataset\": \"/names\", "
                    "\"dtype\": \"native\"}]",
                    ""),
        HFEED_E_TYPE, "/names", NULL);
    expect_open_fails(config_with("[\"good.h5\"]",
                                  "[{\"name\": \"n\", \"dataset\": \"/names\", "
                                  "\"dtype\": \"float32\"}]",
                                  ""),
                      HFEED_E_TYPE, "/names", NULL);
}

Test(errors, compound_dataset_is_unsupported_type)
{
    fx_add_compound_dataset("good.h5", "/pairs", 40);
    expect_open_fails(config_with("[\"good.h5\"]",
                                  "[{\"name\": \"p\", \"dataset\": \"/pairs\", "
                                  "\"dtype\": \"float64\"}]",
                                  ""),
                      HFEED_E_TYPE, "/pairs", NULL);
    expect_open_fails(config_with("[\"good.h5\"]",
                                  "[{\"name\": \"p\", \"dataset\": \"/pairs\", "
                                  "\"dtype\": \"native\"}]",
                                  ""),
                      HFEED_E_TYPE, "/pairs", NULL);
}

Test(errors, float_to_integer_output_is_refused_at_open)
{
    static const char *const outs[] = {"int32", "int64"};
    static const fx_kind kinds[] = {FX_FLOAT16, FX_FLOAT32, FX_FLOAT64};
    for (size_t k = 0; k < 3; k++) {
        const fx_dataset d = {.path = "/feat_values", .kind = kinds[k], .rows = 10};
        fx_write_file("floats.h5", &d, 1);
        for (size_t o = 0; o < 2; o++) {
            char err[HFEED_ERRBUF_SIZE];
            hfeed_loader *l = NULL;
            hfeed_status st =
                fx_open(config_with("[\"floats.h5\"]",
                                    fx_fmt("[{\"name\": \"feat\", \"dataset\": \"/feat_values\", "
                                           "\"dtype\": \"%s\"}]",
                                           outs[o]),
                                    ""),
                        &l, err);
            cr_assert(st == HFEED_E_TYPE || st == HFEED_E_CONFIG,
                      "%s -> %s: expected E_TYPE or E_CONFIG, got %s: %s", fx_kind_name(kinds[k]),
                      outs[o], hfeed_strerror((int)st), err);
            cr_assert_null(l);
            cr_assert(strstr(err, "/feat_values") != NULL || strstr(err, "feat") != NULL,
                      "message names neither the field nor the dataset: %s", err);
        }
    }
}

Test(errors, native_type_differing_between_files_is_refused)
{
    const fx_dataset a = {.path = "/v", .kind = FX_INT32, .rows = 10};
    const fx_dataset b = {.path = "/v", .kind = FX_INT16, .rows = 10};
    fx_write_file("v32.h5", &a, 1);
    fx_write_file("v16.h5", &b, 1);
    expect_open_fails(config_with("[\"v32.h5\", \"v16.h5\"]",
                                  "[{\"name\": \"v\", \"dataset\": \"/v\", \"dtype\": \"native\"}]",
                                  ""),
                      HFEED_E_TYPE, "v16.h5", NULL);
}

Test(errors, scalar_dataset_is_named)
{
    fx_add_scalar_dataset("good.h5", "/scalar_value");
    expect_open_fails(config_with("[\"good.h5\"]",
                                  "[{\"name\": \"s\", \"dataset\": \"/scalar_value\", "
                                  "\"dtype\": \"int64\"}]",
                                  ""),
                      HFEED_E_DATASET, "/scalar_value", NULL);
}

Test(errors, zero_samples_in_all_files_is_named)
{
    const fx_dataset d[] = {
        {.path = "/x", .kind = FX_FLOAT32, .rows = 0, .ndim = 1, .shape = {3}},
        {.path = "/y", .kind = FX_INT64, .rows = 0},
    };
    fx_write_file("zero_a.h5", d, 2);
    fx_write_file("zero_b.h5", d, 2);
    expect_open_fails(config_with("[\"zero_a.h5\", \"zero_b.h5\"]", GOOD_FIELDS, ""),
                      HFEED_E_DATASET, "zero_a.h5", NULL);
}

Test(errors, a_file_with_zero_rows_among_others_is_skipped)
{
    fx_dataset d[] = {
        {.path = "/x",
         .kind = FX_FLOAT32,
         .rows = 0,
         .ndim = 1,
         .shape = {3},
         .layout = FX_CHUNKED,
         .chunk = {16, 3}},
        {.path = "/y", .kind = FX_INT64, .rows = 0},
    };
    fx_write_file("zero.h5", d, 2);
    char err[HFEED_ERRBUF_SIZE];
    hfeed_loader *l = NULL;
    hfeed_status st = fx_open(config_with("[\"zero.h5\", \"good.h5\", \"zero.h5\"]", GOOD_FIELDS,
                                          "\"shuffle\": \"chunk\""),
                              &l, err);
    cr_assert_eq(st, HFEED_OK, "%s: %s", hfeed_strerror((int)st), err);
    hfeed_loader_info in;
    cr_assert_eq(hfeed_loader_get_info(l, &in), HFEED_OK);
    cr_assert_eq(in.total_samples, 40);
    uint64_t n = 0;
    hfeed_batch *b = NULL;
    while ((st = hfeed_loader_next(l, &b)) == HFEED_OK) {
        hfeed_batch_info bi;
        cr_assert_eq(hfeed_batch_get_info(b, &bi), HFEED_OK);
        n += bi.samples;
        hfeed_batch_release(b);
    }
    cr_assert_eq(st, HFEED_END, "%s: %s", hfeed_strerror((int)st), hfeed_loader_errmsg(l));
    cr_assert_eq(n, 40);
    cr_assert_eq(hfeed_loader_close(l), HFEED_OK);
}

/* --- failures while reading ----------------------------------------------------------------- */

/* A broken file either fails at open with E_FILE, or opens and then hfeed_loader_next() fails
 * with E_READ, every time after. Either way the message names the file. Batches delivered
 * before the failure must not hold rows in [bad_lo, bad_hi). */
static void expect_file_or_read_failure(const char *json, const char *file, const char *dset,
                                        uint64_t bad_lo, uint64_t bad_hi)
{
    char err[HFEED_ERRBUF_SIZE];
    hfeed_loader *l = NULL;
    hfeed_status st = fx_open(json, &l, err);
    if (st != HFEED_OK) {
        cr_assert(st == HFEED_E_FILE || st == HFEED_E_READ,
                  "open: expected E_FILE or E_READ, got %s: %s", hfeed_strerror((int)st), err);
        cr_assert_null(l);
        cr_assert_not_null(strstr(err, file), "message does not name %s: %s", file, err);
        return;
    }
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
            cr_assert(idx[r] < bad_lo || idx[r] >= bad_hi,
                      "delivered sample %llu from the damaged region [%llu, %llu)",
                      (unsigned long long)idx[r], (unsigned long long)bad_lo,
                      (unsigned long long)bad_hi);
        }
        hfeed_batch_release(b);
    }
    cr_assert_eq(st, HFEED_E_READ, "expected E_READ, got %s: %s", hfeed_strerror((int)st),
                 hfeed_loader_errmsg(l));
    cr_assert_null(b);
    const char *msg = hfeed_loader_errmsg(l);
    cr_assert_not_null(strstr(msg, file), "message does not name %s: %s", file, msg);
    if (dset != NULL) {
        cr_assert_not_null(strstr(msg, dset), "message does not name %s: %s", dset, msg);
    }
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(hfeed_loader_next(l, &b), HFEED_E_READ, "the read error is not sticky");
        cr_assert_null(b);
    }
    cr_assert_eq(hfeed_loader_close(l), HFEED_OK);
}

Test(errors, truncated_file_fails_cleanly)
{
    static const double fractions[] = {0.9, 0.6, 0.3, 0.05};
    static const fx_layout layouts[] = {FX_CONTIGUOUS, FX_CHUNKED};
    for (size_t li = 0; li < 2; li++) {
        for (size_t i = 0; i < 4; i++) {
            const fx_dataset ds[] = {
                {.path = "/x",
                 .kind = FX_FLOAT64,
                 .rows = 600,
                 .ndim = 1,
                 .shape = {16},
                 .layout = layouts[li],
                 .chunk = {50, 16},
                 .gzip = li ? 1 : 0},
                {.path = "/y", .kind = FX_INT64, .rows = 600, .salt = 1},
            };
            fx_write_file("cut.h5", ds, 2);
            fx_truncate("cut.h5", fractions[i]);
            expect_file_or_read_failure(config_with("[\"good.h5\", \"cut.h5\"]", GOOD_FIELDS,
                                                    "\"workers\": 2, \"shuffle\": \"global\""),
                                        "cut.h5", NULL, 0, 0);
        }
    }
}

/* A file truncated while a loader reads it: reads through a mapping would raise SIGBUS (the
 * test process would die); pread sees the end of the file, and the loader fails with E_READ
 * naming the file. Every batch delivered before that holds the values written. One worker and
 * two slots, so that most reads happen after the truncation. Shuffle none reads runs of rows,
 * always with pread; global shuffle reads rows one at a time, here with pread too ("read_rows":
 * "mapping" checks the size once a batch, so a truncation while a batch is converted could
 * still raise SIGBUS: configs/README.md). */
Test(errors, file_truncated_while_reading_fails_cleanly)
{
    static const fx_layout layouts[] = {FX_CONTIGUOUS, FX_CHUNKED, FX_CHUNKED, FX_CONTIGUOUS};
    static const int gzips[] = {0, 0, 1, 0};
    static const char *const shuffles[] = {"none", "none", "none", "global"};
    for (size_t li = 0; li < 4; li++) {
        const fx_dataset x = {.path = "/x",
                              .kind = FX_FLOAT64,
                              .rows = 4096,
                              .ndim = 1,
                              .shape = {256},
                              .layout = layouts[li],
                              .chunk = {64, 256},
                              .gzip = gzips[li]};
        fx_write_file("shrinks.h5", &x, 1);
        char err[HFEED_ERRBUF_SIZE];
        hfeed_loader *l = NULL;
        cr_assert_eq(fx_open(fx_fmt("{\"files\": [\"shrinks.h5\"], \"fields\": [{\"name\": "
                                    "\"x\", \"dataset\": \"/x\", \"dtype\": \"float64\"}], "
                                    "\"batch_size\": 64, \"workers\": 1, \"prefetch\": 2, "
                                    "\"cache_mb\": 1, \"shuffle\": \"%s\", \"read_rows\": "
                                    "\"pread\"}",
                                    shuffles[li]),
                             &l, err),
                     HFEED_OK, "%s", err);
        hfeed_batch *b = NULL;
        cr_assert_eq(hfeed_loader_next(l, &b), HFEED_OK, "%s", hfeed_loader_errmsg(l));
        hfeed_batch_release(b);
        cr_assert_eq(truncate(fx_path("shrinks.h5"), 4096), 0); /* the superblock, no data */
        hfeed_status st;
        uint64_t delivered = 1;
        while ((st = hfeed_loader_next(l, &b)) == HFEED_OK) {
            hfeed_tensor t;
            const uint64_t *idx;
            cr_assert_eq(hfeed_batch_get_tensor(b, 0, &t), HFEED_OK);
            cr_assert_eq(hfeed_batch_get_indices(b, &idx), HFEED_OK);
            for (uint64_t r = 0; r < (uint64_t)t.shape[0]; r++) {
                for (uint64_t e = 0; e < 256; e += 51) {
                    double want, got;
                    cr_assert_eq(fx_expect(&x, idx[r], e, HFEED_DTYPE_FLOAT64, &want),
                                 FX_EXPECT_VALUE);
                    memcpy(&got, (const unsigned char *)t.data + (r * 256 + e) * 8, 8);
                    cr_assert_eq(got, want, "layout %zu row %llu elem %llu", li,
                                 (unsigned long long)idx[r], (unsigned long long)e);
                }
            }
            delivered++;
            hfeed_batch_release(b);
        }
        cr_assert_eq(st, HFEED_E_READ, "layout %zu: expected E_READ after %llu batches, got %s: %s",
                     li, (unsigned long long)delivered, hfeed_strerror((int)st),
                     hfeed_loader_errmsg(l));
        cr_assert_lt(delivered, 64, "layout %zu: every batch was delivered", li);
        cr_assert_not_null(strstr(hfeed_loader_errmsg(l), "shrinks.h5"), "%s",
                           hfeed_loader_errmsg(l));
        cr_assert_eq(hfeed_loader_close(l), HFEED_OK);
    }
}

/* Replaces the one occurrence of `from` (n bytes) in file name by `to`; fails the test when the
 * bytes occur zero or several times (the patch would be ambiguous). */
static void patch_once(const char *name, const void *from, const void *to, size_t n)
{
    FILE *f = fopen(fx_path(name), "r+b");
    cr_assert_not_null(f);
    static unsigned char buf[1 << 20];
    const size_t len = fread(buf, 1, sizeof buf, f);
    size_t hits = 0, at = 0;
    for (size_t i = 0; i + n <= len; i++) {
        if (memcmp(buf + i, from, n) == 0) {
            hits++;
            at = i;
        }
    }
    cr_assert_eq(hits, 1, "%zu places to patch in %s", hits, name);
    cr_assert_eq(fseek(f, (long)at, SEEK_SET), 0);
    cr_assert_eq(fwrite(to, 1, n, f), n);
    cr_assert_eq(fclose(f), 0);
}

static void le32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* A chunk dimension larger than its axis (HDF5 refuses to create one) made H5Dread copy past its
 * buffers (shared/repro/bad-m1936): it is refused at open, on either read path, naming the file,
 * the dataset and the dimension. */
Test(errors, chunk_dim_larger_than_its_axis_is_refused_at_open)
{
    const fx_dataset d = {.path = "/x",
                          .kind = FX_INT16,
                          .rows = 300,
                          .ndim = 2,
                          .shape = {4, 3},
                          .layout = FX_CHUNKED,
                          .chunk = {64, 4, 3},
                          .gzip = 1};
    fx_write_file("wide.h5", &d, 1);
    unsigned char from[16], to[16]; /* layout message v3: chunk dims, then the element size */
    le32(from, 64), le32(from + 4, 4), le32(from + 8, 3), le32(from + 12, 2);
    memcpy(to, from, sizeof to);
    le32(to + 4, 37892);
    patch_once("wide.h5", from, to, sizeof from);
    expect_open_fails("{\"files\": [\"wide.h5\"], \"fields\": [{\"name\": \"x\", \"dataset\": "
                      "\"/x\", \"dtype\": \"float32\"}], \"shuffle\": \"chunk\"}",
                      HFEED_E_READ, "file \"", "wide.h5\" dataset \"/x\": chunk dimension 1 is "
                                               "37892 but axis 1 holds at most 4");
}

/* A chunk index we read and find inconsistent is an error, never handed to H5Dread, which
 * trusts it (shared/repro/bad-m129, bad-m213 overran HDF5's buffers that way). Here the first
 * entry of a version 1 B-tree lists a size that an unfiltered chunk cannot have. */
Test(errors, corrupt_chunk_index_is_an_error_not_a_fallback)
{
    const fx_dataset d = {.path = "/x",
                          .kind = FX_FLOAT32,
                          .rows = 200,
                          .ndim = 1,
                          .shape = {3},
                          .layout = FX_CHUNKED,
                          .chunk = {16, 3}};
    fx_write_file("tree.h5", &d, 1);
    /* The chunk B-tree's node: "TREE", type 1 (chunks), level 0; its first key's chunk size
     * (16 x 3 x 4 = 192 bytes) sits after the 8-byte sibling addresses. */
    unsigned char from[28] = {'T', 'R', 'E', 'E', 1, 0}, to[28];
    memset(from + 8, 0xff, 16);
    le32(from + 24, 192);
    memcpy(to, from, sizeof to);
    le32(to + 24, 200);
    FILE *f = fopen(fx_path("tree.h5"), "rb");
    cr_assert_not_null(f);
    static unsigned char buf[1 << 16];
    const size_t len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    size_t node = len;
    for (size_t i = 0; i + 8 <= len && node == len; i++)
        if (memcmp(buf + i, "TREE\1\0", 6) == 0) node = i;
    cr_assert_lt(node, len, "no chunk B-tree node in tree.h5");
    memcpy(from + 6, buf + node + 6, 2); /* entries used */
    memcpy(to + 6, buf + node + 6, 2);
    patch_once("tree.h5", from, to, sizeof from);
    expect_open_fails("{\"files\": [\"tree.h5\"], \"fields\": [{\"name\": \"x\", \"dataset\": "
                      "\"/x\"}]}",
                      HFEED_E_READ, "tree.h5\" dataset \"/x\": chunk index: bad B-tree chunk size",
                      "the file is damaged");
}

static void corrupt_and_expect_read_error(const fx_dataset *d, const char *shuffle,
                                          unsigned workers)
{
    fx_write_file("bad.h5", d, 1);
    uint64_t first = 0, nrows = 0;
    fx_corrupt_chunk("bad.h5", d->path, 3, &first, &nrows);
    expect_file_or_read_failure(
        fx_fmt("{\"files\": [\"good.h5\", \"bad.h5\"], \"fields\": [{\"name\": \"x\", "
               "\"dataset\": \"%s\", \"dtype\": \"float32\"}], \"batch_size\": 10, "
               "\"shuffle\": \"%s\", \"workers\": %u}",
               d->path, shuffle, workers),
        "bad.h5", d->path, 40 + first, 40 + first + nrows);
}

Test(errors, corrupt_gzip_chunk_fails_with_read_naming_file_and_dataset)
{
    /* good.h5 has 40 rows of /x, so bad.h5's rows start at global index 40 */
    const fx_dataset d = {.path = "/x",
                          .kind = FX_FLOAT32,
                          .rows = 400,
                          .ndim = 1,
                          .shape = {3},
                          .layout = FX_CHUNKED,
                          .chunk = {50, 3},
                          .gzip = 6};
    corrupt_and_expect_read_error(&d, "none", 1);
    corrupt_and_expect_read_error(&d, "global", 3);
    corrupt_and_expect_read_error(&d, "chunk", 2);
}

Test(errors, corrupt_shuffled_gzip_chunk_fails_with_read)
{
    const fx_dataset d = {.path = "/x",
                          .kind = FX_FLOAT32,
                          .rows = 400,
                          .ndim = 1,
                          .shape = {3},
                          .layout = FX_CHUNKED,
                          .chunk = {50, 3},
                          .gzip = 4,
                          .shuffle = true};
    corrupt_and_expect_read_error(&d, "none", 2);
}

Test(errors, corrupt_fletcher32_chunk_fails_with_read)
{
    const fx_dataset d = {.path = "/x",
                          .kind = FX_FLOAT32,
                          .rows = 400,
                          .ndim = 1,
                          .shape = {3},
                          .layout = FX_CHUNKED,
                          .chunk = {50, 3},
                          .fletcher32 = true};
    corrupt_and_expect_read_error(&d, "none", 2);
}

/* --- arguments and error buffers ------------------------------------------------------------ */

Test(errors, null_errbuf_is_accepted)
{
    hfeed_loader *l = NULL;
    cr_assert_eq(hfeed_loader_open_json("{\"bogus\": 1}", fx_dir(), NULL, NULL, &l, NULL, 0),
                 HFEED_E_CONFIG);
    cr_assert_null(l);
    cr_assert_eq(
        hfeed_loader_open_json("{\"bogus\": 1}", fx_dir(), NULL, NULL, &l, NULL, HFEED_ERRBUF_SIZE),
        HFEED_E_CONFIG);
    cr_assert_eq(hfeed_loader_open_json(config_with("[\"absent.h5\"]", GOOD_FIELDS, ""), fx_dir(),
                                        NULL, NULL, &l, NULL, 0),
                 HFEED_E_FILE);
    cr_assert_eq(hfeed_loader_open(fx_path("absent.json"), NULL, NULL, &l, NULL, 0), HFEED_E_FILE);
    cr_assert_null(l);
    /* and a good config opens with no buffer at all */
    cr_assert_eq(hfeed_loader_open_json(config_with("[\"good.h5\"]", GOOD_FIELDS, ""), fx_dir(),
                                        NULL, NULL, &l, NULL, 0),
                 HFEED_OK);
    cr_assert_eq(hfeed_loader_close(l), HFEED_OK);
}

Test(errors, short_errbuf_is_truncated_and_terminated)
{
    char buf[32];
    memset(buf, 'Z', sizeof buf);
    hfeed_loader *l = NULL;
    cr_assert_eq(hfeed_loader_open_json(config_with("[\"good.h5\"]", GOOD_FIELDS,
                                                    "\"a_rather_long_unknown_key_name\": 1"),
                                        fx_dir(), NULL, NULL, &l, buf, 8),
                 HFEED_E_CONFIG);
    cr_assert_lt(strnlen(buf, 8), 8, "not NUL-terminated within errbuf_len");
    for (size_t i = 8; i < sizeof buf; i++) {
        cr_assert_eq(buf[i], 'Z', "wrote past errbuf_len at byte %zu", i);
    }
    memset(buf, 'Z', sizeof buf);
    cr_assert_eq(hfeed_loader_open_json("{", fx_dir(), NULL, NULL, &l, buf, 1), HFEED_E_CONFIG);
    cr_assert_eq(buf[0], '\0');
    cr_assert_eq(buf[1], 'Z');
}

Test(errors, null_arguments_are_invalid_arg)
{
    char err[HFEED_ERRBUF_SIZE];
    hfeed_loader *l = NULL;
    cr_assert_eq(hfeed_loader_open_json(NULL, fx_dir(), NULL, NULL, &l, err, sizeof err),
                 HFEED_E_INVALID_ARG);
    cr_assert_eq(hfeed_loader_open_json(config_with("[\"good.h5\"]", GOOD_FIELDS, ""), fx_dir(),
                                        NULL, NULL, NULL, err, sizeof err),
                 HFEED_E_INVALID_ARG);
    cr_assert_eq(hfeed_loader_open(NULL, NULL, NULL, &l, err, sizeof err), HFEED_E_INVALID_ARG);
    cr_assert_null(l);

    hfeed_batch *b = NULL;
    cr_assert_eq(hfeed_loader_next(NULL, &b), HFEED_E_INVALID_ARG);
    cr_assert_null(b);
    hfeed_batch_info bi;
    hfeed_tensor t;
    const uint64_t *idx = NULL;
    cr_assert_eq(hfeed_batch_get_info(NULL, &bi), HFEED_E_INVALID_ARG);
    cr_assert_eq(hfeed_batch_get_tensor(NULL, 0, &t), HFEED_E_INVALID_ARG);
    cr_assert_eq(hfeed_batch_get_indices(NULL, &idx), HFEED_E_INVALID_ARG);
    cr_assert_not_null(hfeed_loader_errmsg(NULL));
    hfeed_batch_release(NULL);

    cr_assert_eq(fx_open(config_with("[\"good.h5\"]", GOOD_FIELDS, ""), &l, err), HFEED_OK, "%s",
                 err);
    cr_assert_str_eq(hfeed_loader_errmsg(l), "", "a fresh loader has no error message");
    cr_assert_eq(hfeed_loader_next(l, NULL), HFEED_E_INVALID_ARG);
    cr_assert_eq(hfeed_loader_next(l, &b), HFEED_OK, "%s", hfeed_loader_errmsg(l));
    cr_assert_eq(hfeed_batch_get_info(b, NULL), HFEED_E_INVALID_ARG);
    cr_assert_eq(hfeed_batch_get_tensor(b, 0, NULL), HFEED_E_INVALID_ARG);
    cr_assert_eq(hfeed_batch_get_tensor(b, 2, &t), HFEED_E_INVALID_ARG);
    cr_assert_eq(hfeed_batch_get_indices(b, NULL), HFEED_E_INVALID_ARG);
    hfeed_batch_release(b);
    cr_assert_eq(hfeed_loader_close(l), HFEED_OK);
}

Test(errors, strerror_describes_every_code)
{
    const char *seen[HFEED_E_CANCELED + 1];
    for (int c = HFEED_OK; c <= HFEED_E_CANCELED; c++) {
        const char *s = hfeed_strerror((int)c);
        cr_assert_not_null(s, "code %d", c);
        cr_assert_gt(strlen(s), 0, "code %d", c);
        for (int p = 0; p < c; p++) {
            cr_assert_str_neq(s, seen[p], "codes %d and %d share \"%s\"", p, c, s);
        }
        seen[c] = s;
    }
    static const int unknown[] = {9999, -1, HFEED_E_CANCELED + 1, 1 << 30};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        const char *s = hfeed_strerror((int)unknown[i]);
        cr_assert_not_null(s, "code %d", unknown[i]);
        cr_assert_gt(strlen(s), 0);
    }
}

Test(errors, dtype_names_sizes_and_version)
{
    static const struct {
        hfeed_dtype t;
        const char *name;
        size_t size;
    } dt[] = {
        {HFEED_DTYPE_FLOAT32, "float32", 4}, {HFEED_DTYPE_FLOAT64, "float64", 8},
        {HFEED_DTYPE_INT32, "int32", 4},     {HFEED_DTYPE_INT64, "int64", 8},
        {HFEED_DTYPE_INT8, "int8", 1},       {HFEED_DTYPE_UINT8, "uint8", 1},
        {HFEED_DTYPE_INT16, "int16", 2},     {HFEED_DTYPE_UINT16, "uint16", 2},
        {HFEED_DTYPE_UINT32, "uint32", 4},   {HFEED_DTYPE_UINT64, "uint64", 8},
        {HFEED_DTYPE_FLOAT16, "float16", 2},
    };
    for (size_t i = 0; i < sizeof dt / sizeof dt[0]; i++) {
        cr_expect_str_eq(hfeed_dtype_name(dt[i].t), dt[i].name);
        cr_expect_eq(hfeed_dtype_size(dt[i].t), dt[i].size, "%s", dt[i].name);
    }
    cr_expect_str_eq(hfeed_dtype_name(HFEED_DTYPE_INVALID), "invalid");
    cr_expect_str_eq(hfeed_dtype_name((hfeed_dtype)99), "invalid");
    cr_expect_eq(hfeed_dtype_size((hfeed_dtype)99), 0);
    cr_expect_eq(hfeed_version(), HFEED_VERSION_NUMBER);
    char v[32];
    snprintf(v, sizeof v, "%d.%d.%d", HFEED_VERSION_MAJOR, HFEED_VERSION_MINOR,
             HFEED_VERSION_PATCH);
    cr_expect_str_eq(hfeed_version_string(), v);
}
