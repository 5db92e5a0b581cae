/* device_cuda: the CUDA backend (device.h), the only file that includes cuda_runtime.h.
 *
 * Runtime API from C, linked statically (CUDA::cudart_static) so that the library does not
 * depend on the build machine's libcudart. Pinned staging memory comes from cudaHostAlloc,
 * device buffers from cudaMalloc, both at open; copies go on one non-blocking stream of our own
 * (never the legacy default stream, which would serialise against the training job's work).
 * End events are created with cudaEventBlockingSync so that the thread waiting for an upload
 * sleeps instead of spinning a CPU core the workers need. */
#include <cuda_runtime.h>

#include "alloc.h"
#include "device.h"

struct hfeed__device {
    int index;
    cudaStream_t stream;
    unsigned nevents;
    cudaEvent_t *start; /* nevents each */
    cudaEvent_t *end;
};

static hfeed_status cuda_fail(struct hfeed__err *err, int index, const char *call, cudaError_t e)
{
    return HFEED__FAIL(err, HFEED_E_DEVICE, "cuda:%d: %s failed: %s (%s)", index, call,
                       cudaGetErrorString(e), cudaGetErrorName(e));
}

static void cuda_close(struct hfeed__device *d)
{
    if (d == NULL) return;
    cudaSetDevice(d->index);
    for (unsigned i = 0; i < d->nevents; i++) {
        if (d->start != NULL && d->start[i] != NULL) cudaEventDestroy(d->start[i]);
        if (d->end != NULL && d->end[i] != NULL) cudaEventDestroy(d->end[i]);
    }
    if (d->stream != NULL) cudaStreamDestroy(d->stream);
    hfeed__free(d->start);
    hfeed__free(d->end);
    hfeed__free(d);
}

static hfeed_status cuda_open(int index, unsigned nevents, uint64_t seed,
                              struct hfeed__device **out, struct hfeed__err *err)
{
    (void)seed;
    *out = NULL;
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
        cudaGetLastError(); /* clear it: the caller may go on without CUDA ("auto") */
        return cuda_fail(err, index, "cudaGetDeviceCount", e);
    }
    if (index < 0 || index >= count)
        return HFEED__FAIL(err, HFEED_E_DEVICE, "cuda:%d: no such device (%d CUDA device%s)",
                           index, count, count == 1 ? "" : "s");
    e = cudaSetDevice(index);
    if (e != cudaSuccess) return cuda_fail(err, index, "cudaSetDevice", e);
    struct hfeed__device *d = hfeed__calloc(1, sizeof *d);
    if (d == NULL) return HFEED__FAIL(err, HFEED_E_NOMEM, "cuda:%d: out of memory", index);
    d->index = index;
    d->start = hfeed__calloc(nevents, sizeof *d->start);
    d->end = hfeed__calloc(nevents, sizeof *d->end);
    if (d->start == NULL || d->end == NULL) {
        cuda_close(d);
        return HFEED__FAIL(err, HFEED_E_NOMEM, "cuda:%d: out of memory", index);
    }
    d->nevents = nevents;
    e = cudaStreamCreateWithFlags(&d->stream, cudaStreamNonBlocking);
    const char *call = "cudaStreamCreateWithFlags";
    for (unsigned i = 0; e == cudaSuccess && i < nevents; i++) {
        call = "cudaEventCreateWithFlags";
        e = cudaEventCreateWithFlags(&d->start[i], cudaEventDefault);
        if (e == cudaSuccess) e = cudaEventCreateWithFlags(&d->end[i], cudaEventBlockingSync);
    }
    if (e != cudaSuccess) {
        cuda_close(d);
        return cuda_fail(err, index, call, e);
    }
    *out = d;
    return HFEED_OK;
}

/* Staging buffers are 64-byte aligned either way: cudaHostAlloc returns page-aligned memory. */
static void *cuda_host_alloc(struct hfeed__device *d, size_t size, bool pinned)
{
    if (!pinned) return hfeed__alloc_aligned(size);
    void *p = NULL;
    cudaSetDevice(d->index);
    if (cudaHostAlloc(&p, size, cudaHostAllocDefault) != cudaSuccess) {
        cudaGetLastError();
        return NULL;
    }
    return p;
}

static void cuda_host_free(struct hfeed__device *d, void *p, bool pinned)
{
    (void)d;
    if (!pinned) {
        hfeed__free(p);
        return;
    }
    if (p != NULL) cudaFreeHost(p);
}

static void *cuda_dev_alloc(struct hfeed__device *d, size_t size)
{
    void *p = NULL;
    cudaSetDevice(d->index);
    if (cudaMalloc(&p, size) != cudaSuccess) {
        cudaGetLastError();
        return NULL;
    }
    return p;
}

static void cuda_dev_free(struct hfeed__device *d, void *p)
{
    if (p == NULL) return;
    cudaSetDevice(d->index);
    cudaFree(p);
}

static hfeed_status cuda_bind(struct hfeed__device *d, struct hfeed__err *err)
{
    const cudaError_t e = cudaSetDevice(d->index);
    return e == cudaSuccess ? HFEED_OK : cuda_fail(err, d->index, "cudaSetDevice", e);
}

static hfeed_status cuda_copy(struct hfeed__device *d, void *dst, const void *src, size_t n,
                              struct hfeed__err *err)
{
    const cudaError_t e = cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, d->stream);
    return e == cudaSuccess ? HFEED_OK : cuda_fail(err, d->index, "cudaMemcpyAsync", e);
}

static hfeed_status cuda_mark(struct hfeed__device *d, unsigned event, bool end,
                              struct hfeed__err *err)
{
    const cudaError_t e =
        cudaEventRecord(end ? d->end[event] : d->start[event], d->stream);
    return e == cudaSuccess ? HFEED_OK : cuda_fail(err, d->index, "cudaEventRecord", e);
}

static hfeed_status cuda_wait(struct hfeed__device *d, unsigned event, uint64_t *busy_ns,
                              struct hfeed__err *err)
{
    *busy_ns = 0;
    cudaError_t e = cudaEventSynchronize(d->end[event]);
    if (e != cudaSuccess) return cuda_fail(err, d->index, "cudaEventSynchronize", e);
    float ms = 0.0f;
    e = cudaEventElapsedTime(&ms, d->start[event], d->end[event]);
    if (e != cudaSuccess) return cuda_fail(err, d->index, "cudaEventElapsedTime", e);
    *busy_ns = (uint64_t)((double)ms * 1e6);
    return HFEED_OK;
}

const struct hfeed__device_ops hfeed__device_cuda = {
    .name = "cuda",
    .kind = HFEED_DEVICE_CUDA,
    .built = true,
    .open = cuda_open,
    .close = cuda_close,
    .host_alloc = cuda_host_alloc,
    .host_free = cuda_host_free,
    .dev_alloc = cuda_dev_alloc,
    .dev_free = cuda_dev_free,
    .bind = cuda_bind,
    .copy = cuda_copy,
    .mark = cuda_mark,
    .wait = cuda_wait,
};
