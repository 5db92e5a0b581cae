/* device: the upload stage, driven through the fake device ("device": "fake": host memory,
 * copies completed by a thread after random delays), and the CUDA device's behaviour on a
 * machine without a usable GPU.
 *
 * The fake device poisons its buffers (0xA5) and finishes copies late, so a batch handed out
 * before its upload finished, or a pinned slot refilled while its copy still runs, shows as
 * wrong values here. Expected values come from the synthetic formula (hfeed_synth_value), not
 * from another loader; the CPU loader is compared too, batch by batch, as a second path. */
#include <criterion/criterion.h>
#include <dlpack/dlpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "h5feed.h"

#define ROWS 1000
#define COLS 5
#define SEED 23

static char dir[64], path[128], bad_path[128];

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/h5feed-device-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/d.h5", dir);
    hfeed_synth_spec spec = {.rows = ROWS, .sample_ndim = 1, .sample_shape = {COLS},
                             .dtype = HFEED_DTYPE_FLOAT64, .chunk_rows = 64, .gzip_level = 1,
                             .shuffle = 1, .seed = SEED, .label_classes = 7};
    char err[HFEED_ERRBUF_SIZE];
    cr_assert_eq(hfeed_synth_write(path, &spec, err, sizeof err), HFEED_OK, "%s", err);
}

static void teardown(void)
{
    unlink(path);
    if (bad_path[0] != '\0') unlink(bad_path);
    rmdir(dir);
}

TestSuite(device, .init = setup, .fini = teardown, .timeout = 60);

/* Opens a loader on `file` with the given device and extra keys ("" or ", \"k\": v"). */
static hfeed_status open_on(const char *file, const char *device, const char *extra,
                            hfeed_log_fn log, void *user, hfeed_loader **out, char *err)
{
    char json[1024];
    snprintf(json, sizeof json,
             "{\"files\": [\"%s\"], \"fields\": [{\"name\": \"x\", \"dataset\": \"/features\"},"
             " {\"name\": \"y\", \"dataset\": \"/labels\", \"dtype\": \"int64\"}],"
             " \"batch_size\": 32, \"workers\": 2, \"prefetch\": 3, \"epochs\": 2,"
             " \"shuffle\": \"global\", \"seed\": 5, \"device\": \"%s\"%s}",
             file, device, extra);
    return hfeed_loader_open_json(json, NULL, log, user, out, err, HFEED_ERRBUF_SIZE);
}

static hfeed_loader *must_open(const char *device, const char *extra)
{
    char err[HFEED_ERRBUF_SIZE];
    hfeed_loader *l = NULL;
    cr_assert_eq(open_on(path, device, extra, NULL, NULL, &l, err), HFEED_OK, "%s", err);
    return l;
}

/* Checks every row of the batch against the synthetic formula. */
static void check_batch(hfeed_batch *b)
{
    hfeed_batch_info bi;
    const uint64_t *idx = NULL;
    hfeed_tensor x, y;
    cr_assert_eq(hfeed_batch_get_info(b, &bi), HFEED_OK);
    cr_assert_eq(hfeed_batch_get_indices(b, &idx), HFEED_OK);
    cr_assert_eq(hfeed_batch_get_tensor(b, 0, &x), HFEED_OK);
    cr_assert_eq(hfeed_batch_get_tensor(b, 1, &y), HFEED_OK);
    cr_assert_eq(x.device, HFEED_DEVICE_FAKE);
    cr_assert_eq(y.device, HFEED_DEVICE_FAKE);
    const float *xs = x.data;
    const int64_t *ys = y.data;
    for (size_t r = 0; r < bi.samples; r++) {
        cr_assert_eq(ys[r], (int64_t)(idx[r] % 7), "batch %llu row %zu (sample %llu)",
                     (unsigned long long)bi.index, r, (unsigned long long)idx[r]);
        for (uint64_t c = 0; c < COLS; c++)
            cr_assert_eq(xs[r * COLS + c], (float)hfeed_synth_value(SEED, idx[r], COLS, c),
                         "batch %llu row %zu col %llu", (unsigned long long)bi.index, r,
                         (unsigned long long)c);
    }
}

Test(device, fake_delivers_the_written_values_every_sample_once_per_epoch)
{
    hfeed_loader *l = must_open("fake", "");
    hfeed_loader_info info;
    cr_assert_eq(hfeed_loader_get_info(l, &info), HFEED_OK);
    cr_assert_eq(info.device, HFEED_DEVICE_FAKE);
    unsigned char seen[2][ROWS];
    memset(seen, 0, sizeof seen);
    hfeed_batch *b = NULL;
    uint64_t bytes = 0;
    while (hfeed_loader_next(l, &b) == HFEED_OK) {
        hfeed_batch_info bi;
        const uint64_t *idx = NULL;
        hfeed_batch_get_info(b, &bi);
        hfeed_batch_get_indices(b, &idx);
        check_batch(b);
        for (size_t r = 0; r < bi.samples; r++) {
            cr_assert_lt(idx[r], ROWS);
            seen[bi.epoch][idx[r]]++;
        }
        bytes += bi.samples * (COLS * sizeof(float) + sizeof(int64_t));
        hfeed_batch_release(b);
    }
    cr_assert_eq(hfeed_loader_errmsg(l)[0], '\0', "%s", hfeed_loader_errmsg(l));
    for (int e = 0; e < 2; e++)
        for (size_t i = 0; i < ROWS; i++)
            cr_assert_eq(seen[e][i], 1, "epoch %d sample %zu seen %u times", e, i, seen[e][i]);
    hfeed_stats st;
    cr_assert_eq(hfeed_loader_get_stats(l, &st), HFEED_OK);
    cr_assert_eq(st.upload_bytes, bytes, "every delivered byte went through the upload stage");
    cr_assert_eq(st.bytes_out, bytes);
    cr_assert_gt(st.upload_ns, 0);
    cr_assert_eq(hfeed_loader_close(l), HFEED_OK);
}

Test(device, fake_batches_equal_the_cpu_batches_in_order)
{
    hfeed_loader *cpu = must_open("cpu", "");
    hfeed_loader *fake = must_open("fake", ", \"pinned\": false");
    hfeed_batch *a = NULL, *b = NULL;
    uint64_t n = 0;
    for (;;) {
        const hfeed_status sa = hfeed_loader_next(cpu, &a);
        const hfeed_status sb = hfeed_loader_next(fake, &b);
        cr_assert_eq(sa, sb, "batch %llu", (unsigned long long)n);
        if (sa != HFEED_OK) break;
        hfeed_batch_info ia, ib;
        hfeed_batch_get_info(a, &ia);
        hfeed_batch_get_info(b, &ib);
        cr_assert_eq(ia.epoch, ib.epoch);
        cr_assert_eq(ia.index, ib.index);
        cr_assert_eq(ia.samples, ib.samples);
        for (size_t f = 0; f < 2; f++) {
            hfeed_tensor ta, tb;
            hfeed_batch_get_tensor(a, f, &ta);
            hfeed_batch_get_tensor(b, f, &tb);
            cr_assert_eq(ta.nbytes, tb.nbytes);
            cr_assert_eq(memcmp(ta.data, tb.data, ta.nbytes), 0, "batch %llu field %zu",
                         (unsigned long long)n, f);
        }
        hfeed_batch_release(a);
        hfeed_batch_release(b);
        n++;
    }
    cr_assert_eq(n, 2 * ((ROWS + 31) / 32));
    cr_assert_eq(hfeed_loader_close(cpu), HFEED_OK);
    cr_assert_eq(hfeed_loader_close(fake), HFEED_OK);
}

/* Keeping device batches borrowed must not stop the pinned slots from being refilled: with all
 * three device slots held, the workers still fill the three host slots, and the uploads wait
 * for a device slot. Releasing one lets exactly the next batch through, in order. */
Test(device, kept_device_batches_hold_device_slots_not_host_slots)
{
    hfeed_loader *l = must_open("fake", "");
    hfeed_batch *held[3];
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(hfeed_loader_next(l, &held[i]), HFEED_OK);
        check_batch(held[i]);
    }
    hfeed_batch *b = NULL;
    cr_assert_eq(hfeed_loader_next(l, &b), HFEED_E_BUSY);
    cr_assert_null(b);
    hfeed_batch_release(held[1]);
    cr_assert_eq(hfeed_loader_next(l, &b), HFEED_OK);
    hfeed_batch_info bi;
    hfeed_batch_get_info(b, &bi);
    cr_assert_eq(bi.index, 3);
    check_batch(b);
    check_batch(held[0]); /* still intact: its device slot was not reused */
    check_batch(held[2]);
    hfeed_batch_release(b);
    hfeed_batch_release(held[0]);
    hfeed_batch_release(held[2]);
    cr_assert_eq(hfeed_loader_close(l), HFEED_OK);
}

/* release_on_stream gives fake (and CPU) batches back like release: the fake device has no
 * user streams, so there is nothing to wait for; a NULL batch is refused. */
Test(device, release_on_stream_gives_the_slot_back)
{
    cr_assert_eq(hfeed_batch_release_on_stream(NULL, NULL), HFEED_E_INVALID_ARG);
    const char *devices[] = {"fake", "cpu"};
    for (int k = 0; k < 2; k++) {
        hfeed_loader *l = must_open(devices[k], "");
        hfeed_batch *held[3], *b = NULL;
        for (int i = 0; i < 3; i++) cr_assert_eq(hfeed_loader_next(l, &held[i]), HFEED_OK);
        cr_assert_eq(hfeed_loader_next(l, &b), HFEED_E_BUSY);
        cr_assert_eq(hfeed_batch_release_on_stream(held[0], NULL), HFEED_OK);
        cr_assert_eq(hfeed_loader_next(l, &b), HFEED_OK, "%s", devices[k]);
        hfeed_batch_release(b);
        hfeed_batch_release(held[1]);
        hfeed_batch_release(held[2]);
        cr_assert_eq(hfeed_loader_close(l), HFEED_OK);
    }
}

/* An exported device tensor keeps its slot (and the loader's memory) after close; its deleter
 * gives it back (ASan and valgrind check that nothing leaks and nothing is used after free). */
Test(device, exported_fake_tensor_outlives_close)
{
    hfeed_loader *l = must_open("fake", "");
    hfeed_batch *b = NULL;
    cr_assert_eq(hfeed_loader_next(l, &b), HFEED_OK);
    void *out = NULL;
    cr_assert_eq(hfeed_batch_export_dlpack(b, 0, &out), HFEED_OK);
    const uint64_t *idx = NULL;
    hfeed_batch_get_indices(b, &idx);
    const uint64_t first = idx[0];
    hfeed_batch_release(b);
    cr_assert_eq(hfeed_loader_close(l), HFEED_OK);
    DLManagedTensor *m = out;
    cr_assert_eq(m->dl_tensor.device.device_type, kDLCPU); /* fake memory is host memory */
    const float *x = m->dl_tensor.data;
    for (uint64_t c = 0; c < COLS; c++)
        cr_assert_eq(x[c], (float)hfeed_synth_value(SEED, first, COLS, c));
    m->deleter(m);
}

/* Seeking discards the uploads in flight and restarts both rings at the same batch. */
Test(device, seek_restarts_the_upload_stage_at_the_same_batch)
{
    hfeed_loader *l = must_open("fake", "");
    hfeed_batch *b = NULL;
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(hfeed_loader_next(l, &b), HFEED_OK);
        hfeed_batch_release(b);
    }
    cr_assert_eq(hfeed_loader_seek(l, 1, 7), HFEED_OK, "%s", hfeed_loader_errmsg(l));
    cr_assert_eq(hfeed_loader_next(l, &b), HFEED_OK);
    hfeed_batch_info bi;
    hfeed_batch_get_info(b, &bi);
    cr_assert_eq(bi.epoch, 1);
    cr_assert_eq(bi.index, 7);
    check_batch(b);
    hfeed_batch_release(b);
    cr_assert_eq(hfeed_loader_seek(l, 0, 0), HFEED_OK, "%s", hfeed_loader_errmsg(l));
    uint64_t batches = 0;
    while (hfeed_loader_next(l, &b) == HFEED_OK) {
        check_batch(b);
        hfeed_batch_release(b);
        batches++;
    }
    cr_assert_eq(batches, 2 * ((ROWS + 31) / 32));
    cr_assert_eq(hfeed_loader_close(l), HFEED_OK);
}

/* A worker's error crosses the upload stage: the good batches before it arrive, then the error
 * naming the file, dataset and chunk; it stays (sticky). */
Test(device, a_corrupt_chunk_fails_through_the_upload_stage)
{
    snprintf(bad_path, sizeof bad_path, "%s/bad.h5", dir);
    hfeed_synth_spec spec = {.rows = ROWS, .sample_ndim = 1, .sample_shape = {COLS},
                             .dtype = HFEED_DTYPE_FLOAT64, .chunk_rows = 64, .gzip_level = 1,
                             .seed = SEED, .label_classes = 7};
    char err[HFEED_ERRBUF_SIZE];
    cr_assert_eq(hfeed_synth_write(bad_path, &spec, err, sizeof err), HFEED_OK, "%s", err);
    /* Overwrite the middle of the file, where compressed chunks lie, with garbage. */
    FILE *f = fopen(bad_path, "r+b");
    cr_assert_not_null(f);
    fseek(f, 0, SEEK_END);
    const long size = ftell(f);
    fseek(f, size / 2, SEEK_SET);
    for (int i = 0; i < 4096; i++) fputc(0x5A, f);
    fclose(f);
    hfeed_loader *l = NULL;
    cr_assert_eq(open_on(bad_path, "fake", "", NULL, NULL, &l, err), HFEED_OK, "%s", err);
    hfeed_batch *b = NULL;
    hfeed_status st;
    while ((st = hfeed_loader_next(l, &b)) == HFEED_OK) hfeed_batch_release(b);
    cr_assert_eq(st, HFEED_E_READ, "%s: %s", hfeed_strerror(st), hfeed_loader_errmsg(l));
    cr_assert_not_null(strstr(hfeed_loader_errmsg(l), "bad.h5"), "%s", hfeed_loader_errmsg(l));
    cr_assert_not_null(strstr(hfeed_loader_errmsg(l), "/features"), "%s",
                       hfeed_loader_errmsg(l));
    cr_assert_eq(hfeed_loader_next(l, &b), HFEED_E_READ, "sticky");
    cr_assert_eq(hfeed_loader_close(l), HFEED_OK);
}

/* ---- CUDA on a machine without a usable GPU ------------------------------------------------ */

/* Whether this process can use a CUDA device: the library says, through "device": "cuda". */
static bool gpu_present(void)
{
    char err[HFEED_ERRBUF_SIZE];
    hfeed_loader *l = NULL;
    const hfeed_status st = open_on(path, "cuda", "", NULL, NULL, &l, err);
    hfeed_loader_close(l);
    return st == HFEED_OK;
}

/* Whether this machine has no NVIDIA driver at all (no libcuda.so.1 to load): then
 * cudaGetDeviceCount fails with "driver version is insufficient", the case users meet. */
static bool no_driver_here(void)
{
    static const char *const dirs[] = {"/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib",
                                       "/usr/lib/aarch64-linux-gnu", "/usr/local/cuda/compat"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        char p[256];
        snprintf(p, sizeof p, "%s/libcuda.so.1", dirs[i]);
        if (access(p, F_OK) == 0) return false;
    }
    return true;
}

Test(device, cuda_without_a_usable_device_fails_at_open_with_cudas_reason)
{
    if (gpu_present()) cr_skip_test("a CUDA device is present: tests/gpu covers it");
    char err[HFEED_ERRBUF_SIZE];
    hfeed_loader *l = NULL;
    cr_assert_eq(open_on(path, "cuda:0", "", NULL, NULL, &l, err), HFEED_E_DEVICE);
    cr_assert_null(l);
    cr_assert_not_null(strstr(err, "device: cuda:0: "), "%s", err);
    /* This machine's case (the toolkit, no driver or GPU) is named in plain words; another
     * CUDA failure keeps CUDA's text. */
    if ((hfeed_features() & HFEED_FEATURE_CUDA) && !no_driver_here())
        cr_assert(strstr(err, "cudaGetDeviceCount failed: ") != NULL ||
                      strstr(err, "no CUDA GPU or driver is present") != NULL,
                  "%s", err);
    else if (hfeed_features() & HFEED_FEATURE_CUDA)
        cr_assert_not_null(strstr(err, "device: cuda:0: no CUDA GPU or driver is present "
                                       "(cudaGetDeviceCount: "),
                           "%s", err);
    else
        cr_assert_not_null(strstr(err, "no CUDA backend"), "%s", err);
}

struct log_capture {
    char text[4096];
};

static void capture(void *user, int level, const char *msg)
{
    (void)level;
    struct log_capture *c = user;
    strncat(c->text, msg, sizeof c->text - strlen(c->text) - 2);
    strcat(c->text, "\n");
}

Test(device, auto_without_a_usable_device_runs_on_the_cpu_and_says_why)
{
    if (gpu_present()) cr_skip_test("a CUDA device is present: tests/gpu covers it");
    struct log_capture log = {{0}};
    char err[HFEED_ERRBUF_SIZE];
    hfeed_loader *l = NULL;
    cr_assert_eq(open_on(path, "auto", "", capture, &log, &l, err), HFEED_OK, "%s", err);
    hfeed_loader_info info;
    hfeed_loader_get_info(l, &info);
    cr_assert_eq(info.device, HFEED_DEVICE_CPU);
    cr_assert_eq(info.device_index, -1);
    cr_assert_not_null(strstr(log.text, "device \"auto\": no usable CUDA device, using the CPU"),
                       "%s", log.text);
    hfeed_batch *b = NULL;
    cr_assert_eq(hfeed_loader_next(l, &b), HFEED_OK);
    hfeed_tensor t;
    hfeed_batch_get_tensor(b, 0, &t);
    cr_assert_eq(t.device, HFEED_DEVICE_CPU);
    hfeed_batch_release(b);
    hfeed_stats st;
    hfeed_loader_get_stats(l, &st);
    cr_assert_eq(st.upload_bytes, 0);
    cr_assert_eq(hfeed_loader_close(l), HFEED_OK);
}
