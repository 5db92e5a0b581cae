/* Allocation-failure sweep of hfeed_loader_open(): the Nth allocation of the library fails, for
 * every N until an open succeeds. Each failed open must return HFEED_E_NOMEM with a message and
 * clean up everything it built (ASan and valgrind check that in CI); the open that succeeds must
 * then deliver a whole, correct epoch. Covers both read paths' set-up: a gzip dataset (chunk
 * index, codecs, chunk cache) and a contiguous one. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "h5feed.h"

static char dir[64];
static char gzip_path[128], contig_path[128], big_path[128];

static void write_file(const char *path, uint64_t chunk_rows, int gzip)
{
    hfeed_synth_spec spec = {.rows = 300, .sample_ndim = 2, .sample_shape = {3, 5},
                             .dtype = HFEED_DTYPE_FLOAT64, .chunk_rows = chunk_rows,
                             .gzip_level = gzip, .shuffle = gzip > 0, .seed = 3,
                             .label_classes = 7};
    char err[HFEED_ERRBUF_SIZE];
    cr_assert_eq(hfeed_synth_write(path, &spec, err, sizeof err), HFEED_OK, "%s", err);
}

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/h5feed-oom-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(gzip_path, sizeof gzip_path, "%s/gzip.h5", dir);
    snprintf(contig_path, sizeof contig_path, "%s/contig.h5", dir);
    write_file(gzip_path, 32, 1);
    write_file(contig_path, 0, 0);
    /* 2400 x 64 float64 in gzip chunks of 50 rows: 1.2 MB decoded, more than cache_mb 1, so
     * the chunk caches use foresight (their expectation masks are among the allocations). */
    snprintf(big_path, sizeof big_path, "%s/big.h5", dir);
    hfeed_synth_spec big = {.rows = 2400, .sample_ndim = 1, .sample_shape = {64},
                            .dtype = HFEED_DTYPE_FLOAT64, .chunk_rows = 50, .gzip_level = 1,
                            .seed = 3, .label_classes = 7};
    char err[HFEED_ERRBUF_SIZE];
    cr_assert_eq(hfeed_synth_write(big_path, &big, err, sizeof err), HFEED_OK, "%s", err);
}

static void teardown(void)
{
    hfeed__alloc_fail_after(-1);
    unlink(gzip_path);
    unlink(contig_path);
    unlink(big_path);
    rmdir(dir);
}

TestSuite(loader_oom, .init = setup, .fini = teardown);

/* Takes every batch; checks each sample once and the features against the synthetic formula. */
static void check_epoch(hfeed_loader *l)
{
    unsigned char seen[600] = {0};
    hfeed_batch *b;
    hfeed_status st;
    while ((st = hfeed_loader_next(l, &b)) == HFEED_OK) {
        hfeed_tensor x;
        const uint64_t *idx;
        hfeed_batch_info bi;
        cr_assert_eq(hfeed_batch_get_info(b, &bi), HFEED_OK);
        cr_assert_eq(hfeed_batch_get_tensor(b, 0, &x), HFEED_OK);
        cr_assert_eq(hfeed_batch_get_indices(b, &idx), HFEED_OK);
        for (size_t r = 0; r < bi.samples; r++) {
            cr_assert_lt(idx[r], 600u);
            cr_assert_eq(seen[idx[r]]++, 0, "sample %llu twice", (unsigned long long)idx[r]);
            const uint64_t row = idx[r] % 300; /* two files of 300 rows, same seed */
            for (uint64_t e = 0; e < 15; e++)
                cr_assert_eq(((const float *)x.data)[r * 15 + e],
                             (float)hfeed_synth_value(3, row, 15, e));
        }
        hfeed_batch_release(b);
    }
    cr_assert_eq(st, HFEED_END, "%s", hfeed_loader_errmsg(l));
    for (size_t i = 0; i < 600; i++) cr_assert_eq(seen[i], 1, "sample %zu missing", i);
}

/* Opens a loader from json with the Nth allocation failing, for N = 0, 1, ... until open
 * succeeds: every failure must be HFEED_E_NOMEM with a message and leave no loader (ASan and
 * valgrind see any leak). The successful loader goes to check, which closes it. */
static void sweep(const char *json, void (*check)(hfeed_loader *l))
{
    long n = 0;
    for (;; n++) {
        char err[HFEED_ERRBUF_SIZE] = "";
        hfeed_loader *l = NULL;
        hfeed__alloc_fail_after(n);
        const hfeed_status st = hfeed_loader_open_json(json, NULL, NULL, NULL, &l, err, sizeof err);
        hfeed__alloc_fail_after(-1);
        if (st == HFEED_OK) {
            check(l);
            break;
        }
        cr_assert_eq(st, HFEED_E_NOMEM, "allocation %ld: %s: %s", n, hfeed_strerror(st), err);
        cr_assert_null(l);
        cr_assert_neq(err[0], '\0', "allocation %ld: no message", n);
        cr_assert_lt(n, 10000, "open never succeeded");
    }
    cr_assert_gt(n, 10, "the sweep covered only %ld allocations", n);
}

static void check_epoch_and_close(hfeed_loader *l)
{
    check_epoch(l);
    cr_assert_eq(hfeed_loader_close(l), HFEED_OK);
}

Test(loader_oom, every_failed_allocation_is_reported_and_cleaned_up)
{
    char json[1024];
    snprintf(json, sizeof json,
             "{\"files\": [\"%s\", \"%s\"], \"fields\": [{\"name\": \"x\", \"dataset\": "
             "\"/features\"}, {\"name\": \"y\", \"dataset\": \"/labels\", \"dtype\": \"int64\"}],"
             " \"batch_size\": 40, \"shuffle\": \"chunk\", \"workers\": 2, \"prefetch\": 3,"
             " \"cache_mb\": 1}",
             gzip_path, contig_path);
    sweep(json, check_epoch_and_close);
}

/* The same sweep with transforms: the first pass's buffers and the per-field arrays are among
 * the allocations, and a failure there must unhook every conversion before freeing them. */
static void check_transforms_and_close(hfeed_loader *l)
{
    const double *mean = NULL, *std = NULL;
    size_t cols = 0;
    cr_assert_eq(hfeed_loader_get_field_stats(l, 0, &mean, &std, &cols), HFEED_OK);
    cr_assert_eq(cols, 15);
    hfeed_batch *b = NULL;
    cr_assert_eq(hfeed_loader_next(l, &b), HFEED_OK, "%s", hfeed_loader_errmsg(l));
    hfeed_tensor t;
    cr_assert_eq(hfeed_batch_get_tensor(b, 1, &t), HFEED_OK);
    /* Row 0 of the first file, element 14: scaled by 15. */
    cr_assert_eq(((const double *)t.data)[14], hfeed_synth_value(3, 0, 15, 14) * 15);
    hfeed_batch_release(b);
    cr_assert_eq(hfeed_loader_close(l), HFEED_OK);
}

Test(loader_oom, transforms_clean_up_after_every_failed_allocation)
{
    char json[1024];
    snprintf(json, sizeof json,
             "{\"files\": [\"%s\", \"%s\"], \"fields\": [{\"name\": \"x\", \"dataset\": "
             "\"/features\", \"normalize\": \"standard\", \"offset\": 1}, {\"name\": \"s\", "
             "\"dataset\": \"/features\", \"dtype\": \"float64\", \"scale\": [1, 2, 3, 4, 5, 6, "
             "7, 8, 9, 10, 11, 12, 13, 14, 15]}], \"batch_size\": 64, \"workers\": 2}",
             gzip_path, contig_path);
    sweep(json, check_transforms_and_close);
}

/* The sweep with the chunk caches' foresight on (global shuffle, chunks that do not all fit). */
static void check_count_and_close(hfeed_loader *l)
{
    hfeed_batch *b;
    hfeed_status st;
    uint64_t samples = 0;
    while ((st = hfeed_loader_next(l, &b)) == HFEED_OK) {
        hfeed_batch_info bi;
        cr_assert_eq(hfeed_batch_get_info(b, &bi), HFEED_OK);
        samples += bi.samples;
        hfeed_batch_release(b);
    }
    cr_assert_eq(st, HFEED_END, "%s", hfeed_loader_errmsg(l));
    cr_assert_eq(samples, 2400);
    cr_assert_eq(hfeed_loader_close(l), HFEED_OK);
}

Test(loader_oom, foresight_cleans_up_after_every_failed_allocation)
{
    char json[1024];
    snprintf(json, sizeof json,
             "{\"files\": [\"%s\"], \"fields\": [{\"name\": \"x\", \"dataset\": \"/features\"}],"
             " \"batch_size\": 40, \"shuffle\": \"global\", \"workers\": 2, \"cache_mb\": 1}",
             big_path);
    sweep(json, check_count_and_close);
}
