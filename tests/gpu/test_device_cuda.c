/* device_cuda: the CUDA upload stage on a real GPU. Every test skips, saying why, when the
 * process has no usable CUDA device (no driver, no device), so the suite passes on machines
 * without a GPU; CI builds it whenever the toolkit is present.
 *
 * Device values are copied back with cudaMemcpy (a second path, outside h5feed) and compared
 * byte for byte with the CPU loader's batches of the same config, and with the synthetic
 * formula. CUDA is touched only inside test bodies: Criterion runs each test in its own child
 * process, and the runner itself must not create a CUDA context. */
#include <criterion/criterion.h>
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

static void require_gpu(void)
{
    int n = 0;
    const cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess)
        cr_skip_test("no usable CUDA device: cudaGetDeviceCount: %s", cudaGetErrorString(e));
    if (n == 0) cr_skip_test("no CUDA device");
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

/* The consumer queues a device-to-host copy of each batch on its own stream behind a long
 * memset (so the copy runs late), releases the batch with release_on_stream, and goes on taking
 * batches. Without the fence the next upload into that buffer could overwrite it before the
 * late copy read it; with it, every copy holds its batch's values. */
Test(device_cuda, release_on_stream_keeps_the_buffer_until_the_stream_is_done)
{
    require_gpu();
    hfeed_loader *cpu = open_on("cpu", "");
    hfeed_loader *gpu = open_on("cuda:0", "");
    cudaStream_t s;
    cr_assert_eq(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), cudaSuccess);
    const size_t big = (size_t)256 << 20;
    void *scratch = NULL;
    cr_assert_eq(cudaMalloc(&scratch, big), cudaSuccess);
    enum { N = 24 };
    void *copies[N];
    void *expect[N];
    size_t sizes[N];
    int n = 0;
    hfeed_batch *a = NULL, *b = NULL;
    while (n < N && hfeed_loader_next(gpu, &b) == HFEED_OK) {
        cr_assert_eq(hfeed_loader_next(cpu, &a), HFEED_OK);
        hfeed_tensor ta, tb;
        hfeed_batch_get_tensor(a, 0, &ta);
        hfeed_batch_get_tensor(b, 0, &tb);
        for (int k = 0; k < 8; k++) cudaMemsetAsync(scratch, k, big, s); /* delay the stream */
        cr_assert_eq(cudaMallocHost(&copies[n], tb.nbytes), cudaSuccess);
        cr_assert_eq(cudaMemcpyAsync(copies[n], tb.data, tb.nbytes, cudaMemcpyDeviceToHost, s),
                     cudaSuccess);
        expect[n] = malloc(ta.nbytes);
        memcpy(expect[n], ta.data, ta.nbytes);
        sizes[n] = ta.nbytes;
        cr_assert_eq(hfeed_batch_release_on_stream(b, s), HFEED_OK);
        hfeed_batch_release(a);
        n++;
    }
    cr_assert_eq(cudaStreamSynchronize(s), cudaSuccess);
    for (int i = 0; i < n; i++) {
        cr_assert_eq(memcmp(copies[i], expect[i], sizes[i]), 0, "batch %d was overwritten", i);
        cudaFreeHost(copies[i]);
        free(expect[i]);
    }
    cudaFree(scratch);
    cudaStreamDestroy(s);
    cr_assert_eq(hfeed_loader_close(cpu), HFEED_OK);
    cr_assert_eq(hfeed_loader_close(gpu), HFEED_OK);
}

/* Opening a loader must leave the caller's current device as it was (ranks rely on it). */
Test(device_cuda, open_keeps_the_callers_current_device)
{
    require_gpu();
    int n = 0;
    cudaGetDeviceCount(&n);
    const int mine = n > 1 ? 1 : 0;
    cr_assert_eq(cudaSetDevice(mine), cudaSuccess);
    hfeed_loader *l = open_on("cuda:0", "");
    int now = -1;
    cudaGetDevice(&now);
    cr_assert_eq(now, mine);
    hfeed_loader *a = open_on("auto", ""); /* auto takes the caller's device */
    hfeed_loader_info info;
    hfeed_loader_get_info(a, &info);
    cr_assert_eq(info.device_index, mine);
    cr_assert_eq(hfeed_loader_close(a), HFEED_OK);
    cr_assert_eq(hfeed_loader_close(l), HFEED_OK);
    cudaGetDevice(&now);
    cr_assert_eq(now, mine);
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
