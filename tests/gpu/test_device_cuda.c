/* device_cuda: the CUDA upload stage on a real GPU. Every test skips, saying why, when the
 * process has no usable CUDA device (no driver, no device), so the suite passes on machines
 * without a GPU; CI builds it whenever the toolkit is present. With HFEED_REQUIRE_GPU=1
 * (scripts/gpu-check.sh) they fail instead, naming what is missing: a GPU check that skipped
 * is no GPU coverage.
 *
 * Each test can fail without the mechanism it checks: the fence test runs once without the
 * fence and must then see batches overwritten (its copies' buffers are allocated before the
 * loop, so no cudaMallocHost synchronises the device behind its back); the context test checks
 * the thread's context and every other GPU's primary context with the driver, which also
 * fails on one GPU (a leaked binding), where comparing device numbers could not.
 *
 * Device values are copied back with cudaMemcpy (a second path, outside h5feed) and compared
 * byte for byte with the CPU loader's batches of the same config, and with the synthetic
 * formula. CUDA is touched only inside test bodies: Criterion runs each test in its own child
 * process, and the runner itself must not create a CUDA context. */
#include <criterion/criterion.h>
#include <cuda.h>
#include <cuda_runtime.h>
#include <dlpack/dlpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "h5feed.h"

#define ROWS 4000
#define COLS 33
#define SEED 41

static char dir[64], path[128];

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/h5feed-gpu-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/g.h5", dir);
    hfeed_synth_spec spec = {.rows = ROWS, .sample_ndim = 1, .sample_shape = {COLS},
                             .dtype = HFEED_DTYPE_FLOAT64, .chunk_rows = 128, .gzip_level = 1,
                             .shuffle = 1, .seed = SEED, .label_classes = 10};
    char err[HFEED_ERRBUF_SIZE];
    cr_assert_eq(hfeed_synth_write(path, &spec, err, sizeof err), HFEED_OK, "%s", err);
}

static void teardown(void)
{
    unlink(path);
    rmdir(dir);
}

TestSuite(device_cuda, .init = setup, .fini = teardown, .timeout = 300);

/* Skips (fails with HFEED_REQUIRE_GPU=1) when the process has no usable CUDA device, saying
 * whether the driver or the device is missing, and the versions. */
static void require_gpu(void)
{
    const char *req = getenv("HFEED_REQUIRE_GPU");
    const bool required = req != NULL && strcmp(req, "1") == 0;
    int n = 0, driver = 0, runtime = 0;
    const cudaError_t e = cudaGetDeviceCount(&n);
    cudaDriverGetVersion(&driver); /* 0: no driver */
    cudaRuntimeGetVersion(&runtime);
    cudaGetLastError();
    char why[256] = "";
    if (driver == 0)
        snprintf(why, sizeof why, "no NVIDIA driver (libcuda not found); runtime %d", runtime);
    else if (e != cudaSuccess)
        snprintf(why, sizeof why, "cudaGetDeviceCount: %s (%s); driver %d, runtime %d%s",
                 cudaGetErrorString(e), cudaGetErrorName(e), driver, runtime,
                 driver < runtime ? ": the driver is older than the runtime" : "");
    else if (n == 0)
        snprintf(why, sizeof why, "no CUDA device; driver %d, runtime %d", driver, runtime);
    if (why[0] == '\0') return;
    if (required) cr_assert_fail("HFEED_REQUIRE_GPU=1 but no usable CUDA device: %s", why);
    cr_skip_test("no usable CUDA device: %s", why);
}

/* The driver functions the checks below need, through the runtime (no libcuda link). */
struct driver {
    CUresult (*ctx_get_current)(CUcontext *ctx);
    CUresult (*primary_state)(CUdevice dev, unsigned *flags, int *active);
};

static struct driver get_driver(void)
{
    void *fn[2] = {NULL, NULL};
    const char *names[2] = {"cuCtxGetCurrent", "cuDevicePrimaryCtxGetState"};
    for (int i = 0; i < 2; i++) {
        enum cudaDriverEntryPointQueryResult q;
        cr_assert_eq(cudaGetDriverEntryPointByVersion(names[i], &fn[i], 12000, cudaEnableDefault,
                                                      &q),
                     cudaSuccess, "%s", names[i]);
        cr_assert_eq(q, cudaDriverEntryPointSuccess, "%s", names[i]);
    }
    struct driver d;
    memcpy(&d.ctx_get_current, &fn[0], sizeof fn[0]);
    memcpy(&d.primary_state, &fn[1], sizeof fn[1]);
    return d;
}

/* Prints the versions (gpu-check.sh runs this first) and fails when the driver is older than
 * the runtime h5feed was linked with (every other test would then skip, and "auto" fall back). */
Test(device_cuda, driver_and_runtime_versions)
{
    int driver = 0, runtime = 0, n = 0;
    cudaDriverGetVersion(&driver);
    cudaRuntimeGetVersion(&runtime);
    const cudaError_t e = cudaGetDeviceCount(&n);
    fprintf(stderr, "CUDA driver %d.%d, runtime %d.%d (static, linked into h5feed), %d device%s "
            "(%s)\n", driver / 1000, driver % 1000 / 10, runtime / 1000, runtime % 1000 / 10, n,
            n == 1 ? "" : "s", cudaGetErrorString(e));
    for (int i = 0; i < n; i++) {
        struct cudaDeviceProp p;
        if (cudaGetDeviceProperties(&p, i) == cudaSuccess)
            fprintf(stderr, "  cuda:%d %s, %zu MiB, compute %d.%d\n", i, p.name,
                    p.totalGlobalMem >> 20, p.major, p.minor);
    }
    require_gpu();
    cr_assert_geq(driver, runtime, "driver %d older than runtime %d", driver, runtime);
}

static hfeed_loader *open_on(const char *device, const char *extra)
{
    char json[1024], err[HFEED_ERRBUF_SIZE];
    snprintf(json, sizeof json,
             "{\"files\": [\"%s\"], \"fields\": [{\"name\": \"x\", \"dataset\": \"/features\"},"
             " {\"name\": \"y\", \"dataset\": \"/labels\", \"dtype\": \"int64\"}],"
             " \"batch_size\": 96, \"workers\": 2, \"prefetch\": 4, \"epochs\": 2,"
             " \"shuffle\": \"global\", \"seed\": 3, \"device\": \"%s\"%s}",
             path, device, extra);
    hfeed_loader *l = NULL;
    cr_assert_eq(hfeed_loader_open_json(json, NULL, NULL, NULL, &l, err, sizeof err), HFEED_OK,
                 "%s", err);
    return l;
}

/* Copies a device tensor to a new host buffer with cudaMemcpy. */
static void *to_host(const hfeed_tensor *t)
{
    void *h = malloc(t->nbytes);
    cr_assert_not_null(h);
    const cudaError_t e = cudaMemcpy(h, t->data, t->nbytes, cudaMemcpyDeviceToHost);
    cr_assert_eq(e, cudaSuccess, "cudaMemcpy: %s", cudaGetErrorString(e));
    return h;
}

static void compare_with_cpu(const char *extra)
{
    hfeed_loader *cpu = open_on("cpu", "");
    hfeed_loader *gpu = open_on("cuda:0", extra);
    hfeed_loader_info info;
    hfeed_loader_get_info(gpu, &info);
    cr_assert_eq(info.device, HFEED_DEVICE_CUDA);
    cr_assert_eq(info.device_index, 0);
    unsigned char seen[2][ROWS];
    memset(seen, 0, sizeof seen);
    hfeed_batch *a = NULL, *b = NULL;
    uint64_t bytes = 0;
    for (;;) {
        const hfeed_status sa = hfeed_loader_next(cpu, &a);
        const hfeed_status sb = hfeed_loader_next(gpu, &b);
        cr_assert_eq(sa, sb, "%s", hfeed_loader_errmsg(gpu));
        if (sa != HFEED_OK) break;
        hfeed_batch_info bi;
        const uint64_t *idx = NULL;
        hfeed_batch_get_info(b, &bi);
        hfeed_batch_get_indices(b, &idx);
        for (size_t r = 0; r < bi.samples; r++) seen[bi.epoch][idx[r]]++;
        for (size_t f = 0; f < 2; f++) {
            hfeed_tensor ta, tb;
            hfeed_batch_get_tensor(a, f, &ta);
            hfeed_batch_get_tensor(b, f, &tb);
            cr_assert_eq(tb.device, HFEED_DEVICE_CUDA);
            cr_assert_eq(ta.nbytes, tb.nbytes);
            void *h = to_host(&tb);
            cr_assert_eq(memcmp(ta.data, h, ta.nbytes), 0, "epoch %llu batch %llu field %zu",
                         (unsigned long long)bi.epoch, (unsigned long long)bi.index, f);
            if (f == 0) { /* and against the formula, independently of the CPU loader */
                const float *x = h;
                for (size_t r = 0; r < bi.samples; r++)
                    cr_assert_eq(x[r * COLS], (float)hfeed_synth_value(SEED, idx[r], COLS, 0));
            }
            free(h);
            bytes += tb.nbytes;
        }
        hfeed_batch_release(a);
        hfeed_batch_release(b);
    }
    for (int e = 0; e < 2; e++)
        for (size_t i = 0; i < ROWS; i++)
            cr_assert_eq(seen[e][i], 1, "epoch %d sample %zu seen %u times", e, i, seen[e][i]);
    hfeed_stats st;
    hfeed_loader_get_stats(gpu, &st);
    cr_assert_eq(st.upload_bytes, bytes);
    cr_assert_gt(st.upload_ns, 0);
    cr_assert_eq(hfeed_loader_close(cpu), HFEED_OK);
    cr_assert_eq(hfeed_loader_close(gpu), HFEED_OK);
}

Test(device_cuda, pinned_device_values_equal_host_values_every_sample_once)
{
    require_gpu();
    compare_with_cpu("");
}

Test(device_cuda, pageable_device_values_equal_host_values_every_sample_once)
{
    require_gpu();
    compare_with_cpu(", \"pinned\": false");
}

Test(device_cuda, auto_picks_the_gpu)
{
    require_gpu();
    hfeed_loader *l = open_on("auto", "");
    hfeed_loader_info info;
    hfeed_loader_get_info(l, &info);
    cr_assert_eq(info.device, HFEED_DEVICE_CUDA);
    cr_assert_eq(hfeed_loader_close(l), HFEED_OK);
}

Test(device_cuda, dlpack_export_is_a_cuda_tensor_on_the_batch_memory)
{
    require_gpu();
    hfeed_loader *l = open_on("cuda:0", "");
    hfeed_batch *b = NULL;
    cr_assert_eq(hfeed_loader_next(l, &b), HFEED_OK);
    hfeed_tensor t;
    hfeed_batch_get_tensor(b, 0, &t);
    void *out = NULL;
    cr_assert_eq(hfeed_batch_export_dlpack(b, 0, &out), HFEED_OK);
    DLManagedTensor *m = out;
    cr_assert_eq(m->dl_tensor.device.device_type, kDLCUDA);
    cr_assert_eq(m->dl_tensor.device.device_id, 0);
    cr_assert_eq(m->dl_tensor.data, t.data);
    hfeed_batch_release(b);
    cr_assert_eq(hfeed_loader_close(l), HFEED_OK);
    /* Still valid after close: read it back. */
    void *h = to_host(&t);
    free(h);
    m->deleter(m);
}

/* How the consumer gives a batch back in fenced_reads(). */
enum give_back {
    RELEASE_ON_STREAM, /* hfeed_batch_release_on_stream(b, s) */
    EXPORT_ON_STREAM,  /* a tensor exported for s, freed (deleter) after its read was queued */
    NO_FENCE,          /* the negative control: plain release, nothing waits for s */
};

/* The consumer queues a device-to-host copy of each batch on its own stream behind a long
 * memset (so the copy runs late), gives the batch back at once and goes on taking batches.
 * Returns how many of the late copies did not hold their batch's values (overwritten by a later
 * upload into the same buffer). The host buffers are allocated before the loop: cudaMallocHost
 * there would synchronise the device and hide a missing fence. */
static int fenced_reads(enum give_back how)
{
    enum { N = 24 };
    hfeed_loader *cpu = open_on("cpu", "");
    hfeed_loader *gpu = open_on("cuda:0", "");
    cudaStream_t s;
    cr_assert_eq(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), cudaSuccess);
    const size_t big = (size_t)256 << 20;
    void *scratch = NULL;
    cr_assert_eq(cudaMalloc(&scratch, big), cudaSuccess);
    void *copies[N], *expect[N];
    size_t sizes[N];
    for (int i = 0; i < N; i++) {
        cr_assert_eq(cudaMallocHost(&copies[i], 96 * COLS * sizeof(float)), cudaSuccess);
        expect[i] = malloc(96 * COLS * sizeof(float));
    }
    int n = 0;
    hfeed_batch *a = NULL, *b = NULL;
    while (n < N && hfeed_loader_next(gpu, &b) == HFEED_OK) {
        cr_assert_eq(hfeed_loader_next(cpu, &a), HFEED_OK);
        hfeed_tensor ta, tb;
        hfeed_batch_get_tensor(a, 0, &ta);
        hfeed_batch_get_tensor(b, 0, &tb);
        cr_assert_leq(tb.nbytes, 96 * COLS * sizeof(float));
        for (int k = 0; k < 16; k++) cudaMemsetAsync(scratch, k, big, s); /* delay the stream */
        void *m = NULL;
        if (how == EXPORT_ON_STREAM) cr_assert_eq(hfeed_batch_export_dlpack_on_stream(b, 0, s, &m),
                                                  HFEED_OK);
        cr_assert_eq(cudaMemcpyAsync(copies[n], tb.data, tb.nbytes, cudaMemcpyDeviceToHost, s),
                     cudaSuccess);
        memcpy(expect[n], ta.data, ta.nbytes);
        sizes[n] = ta.nbytes;
        if (how == RELEASE_ON_STREAM) {
            cr_assert_eq(hfeed_batch_release_on_stream(b, s), HFEED_OK);
        } else {
            hfeed_batch_release(b);
            if (m != NULL) ((DLManagedTensor *)m)->deleter(m); /* the last hold: fences s */
        }
        hfeed_batch_release(a);
        n++;
    }
    cr_assert_eq(cudaStreamSynchronize(s), cudaSuccess);
    int overwritten = 0;
    for (int i = 0; i < N; i++) {
        if (i < n && memcmp(copies[i], expect[i], sizes[i]) != 0) overwritten++;
        cudaFreeHost(copies[i]);
        free(expect[i]);
    }
    cudaFree(scratch);
    cudaStreamDestroy(s);
    cr_assert_eq(hfeed_loader_close(cpu), HFEED_OK);
    cr_assert_eq(hfeed_loader_close(gpu), HFEED_OK);
    return overwritten;
}

Test(device_cuda, release_on_stream_keeps_the_buffer_until_the_stream_is_done)
{
    require_gpu();
    const int bad = fenced_reads(RELEASE_ON_STREAM);
    cr_assert_eq(bad, 0, "%d batches were overwritten before the stream read them", bad);
}

Test(device_cuda, an_exported_tensors_deleter_keeps_the_buffer_until_its_stream_is_done)
{
    require_gpu();
    const int bad = fenced_reads(EXPORT_ON_STREAM);
    cr_assert_eq(bad, 0, "%d batches were overwritten before the stream read them", bad);
}

/* The negative control of the two above: without a fence the late reads must see overwritten
 * batches, or those tests prove nothing on this machine. */
Test(device_cuda, without_a_fence_the_late_reads_see_overwritten_batches)
{
    require_gpu();
    const int bad = fenced_reads(NO_FENCE);
    cr_assert_gt(bad, 0, "no batch was overwritten without the fence: the delay is too short "
                 "for this GPU, so the fence tests cannot fail here");
}

/* Opening, using and closing a loader must leave the caller's thread as it was, also with no
 * context at all (a rank that never chose a device), and create no context on another GPU: on
 * an 8-GPU node a rank on cuda:N must not hold one on GPU 0. Checked with the driver (the
 * thread's context, each GPU's primary context), which fails on one GPU too. */
Test(device_cuda, the_callers_context_is_kept_and_no_other_gpu_gets_a_context)
{
    require_gpu();
    const struct driver drv = get_driver();
    int n = 0;
    cudaGetDeviceCount(&n);
    const int target = n - 1; /* the loader's GPU: not 0 where there are two */
    char device[24];
    snprintf(device, sizeof device, "cuda:%d", target);
    CUcontext ctx = NULL;
    cr_assert_eq(drv.ctx_get_current(&ctx), CUDA_SUCCESS);
    cr_assert_null(ctx, "the test process has a context before the test");
    hfeed_loader *l = open_on(device, "");
    hfeed_batch *b = NULL;
    cr_assert_eq(hfeed_loader_next(l, &b), HFEED_OK, "%s", hfeed_loader_errmsg(l));
    cr_assert_eq(drv.ctx_get_current(&ctx), CUDA_SUCCESS);
    cr_expect_null(ctx, "open/next left a context current on a thread that had none");
    void *m = NULL;
    cr_assert_eq(hfeed_batch_export_dlpack_on_stream(b, 0, NULL, &m), HFEED_OK);
    ((DLManagedTensor *)m)->deleter(m);
    cr_assert_eq(hfeed_batch_release_on_stream(b, NULL), HFEED_OK);
    cr_assert_eq(hfeed_loader_close(l), HFEED_OK);
    cr_assert_eq(drv.ctx_get_current(&ctx), CUDA_SUCCESS);
    cr_expect_null(ctx, "release/close left a context current on a thread that had none");
    for (int i = 0; i < n; i++) {
        unsigned flags = 0;
        int active = 0;
        cr_assert_eq(drv.primary_state((CUdevice)i, &flags, &active), CUDA_SUCCESS);
        if (i != target) cr_expect_eq(active, 0, "a loader on %s created a context on cuda:%d",
                                      device, i);
    }
    /* A thread on its own device (the last one's, or its only one) keeps it; "auto" and
     * "cuda" take it. */
    cr_assert_eq(cudaSetDevice(0), cudaSuccess);
    CUcontext mine = NULL;
    cudaFree(NULL);
    cr_assert_eq(drv.ctx_get_current(&mine), CUDA_SUCCESS);
    l = open_on(device, "");
    hfeed_loader *a = open_on("auto", "");
    hfeed_loader *c = open_on("cuda", "");
    hfeed_loader_info info;
    hfeed_loader_get_info(a, &info);
    cr_expect_eq(info.device_index, 0);
    hfeed_loader_get_info(c, &info);
    cr_expect_eq(info.device_index, 0);
    cr_assert_eq(hfeed_loader_close(c), HFEED_OK);
    cr_assert_eq(hfeed_loader_close(a), HFEED_OK);
    cr_assert_eq(hfeed_loader_close(l), HFEED_OK);
    cr_assert_eq(drv.ctx_get_current(&ctx), CUDA_SUCCESS);
    cr_expect_eq(ctx, mine, "the caller's context was not put back");
}

Test(device_cuda, a_thousand_open_close_cycles_leak_no_device_memory)
{
    require_gpu();
    cudaSetDevice(0);
    cudaFree(NULL); /* create the context before measuring */
    size_t free0 = 0, free1 = 0, total = 0;
    for (int i = 0; i < 1000; i++) {
        hfeed_loader *l = open_on("cuda:0", i % 2 ? ", \"pinned\": false" : "");
        hfeed_batch *b = NULL;
        cr_assert_eq(hfeed_loader_next(l, &b), HFEED_OK, "cycle %d: %s", i,
                     hfeed_loader_errmsg(l));
        hfeed_batch_release(b);
        cr_assert_eq(hfeed_loader_close(l), HFEED_OK);
        if (i == 9) cudaMemGetInfo(&free0, &total); /* after the allocator settled */
    }
    cudaMemGetInfo(&free1, &total);
    cr_assert_geq(free1 + (1u << 20), free0, "device memory free went from %zu to %zu bytes",
                  free0, free1);
}
