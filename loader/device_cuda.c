/* device_cuda: the CUDA backend (device.h), the only file that includes cuda_runtime.h.
 *
 * Runtime API from C, linked statically (CUDA::cudart_static) so that the library does not
 * depend on the build machine's libcudart. Pinned staging memory comes from cudaHostAlloc,
 * device buffers from cudaMalloc, both at open; copies go on one non-blocking stream of our own
 * (never the legacy default stream, which would serialise against the training job's work).
 * End events are created with cudaEventBlockingSync so that the thread waiting for an upload
 * sleeps instead of spinning a CPU core the workers need.
 *
 * The user's threads: CUDA's current device is per thread and the training job relies on it
 * (torch.cuda.set_device), so every call made on a user's thread sets our device and puts the
 * previous one back (enter/leave), and a CUDA error of ours is cleared (cudaGetLastError) so
 * that the job's next error check does not see it. The issuer and completer threads are ours.
 *
 * Release fences (device.h): a slot's `freed` event is recorded on the consumer's stream when it
 * releases a batch with hfeed_batch_release_on_stream(); before the next copy into that slot our
 * stream waits for it, so the copy cannot overwrite data the consumer's kernels still read. */
#include <cuda_runtime.h>

#include "alloc.h"
#include "device.h"

struct hfeed__device {
    int index;
    cudaStream_t stream;
    unsigned nevents;
    cudaEvent_t *start; /* nevents each */
    cudaEvent_t *end;
    cudaEvent_t *freed;
    bool *fenced; /* freed[i] was recorded and not yet waited for; ordered by the ring mutex */
};

static hfeed_status cuda_fail(struct hfeed__err *err, int index, const char *call, cudaError_t e)
{
    cudaGetLastError(); /* ours: the job's next error check must not see it */
    return HFEED__FAIL(err, HFEED_E_DEVICE, "cuda:%d: %s failed: %s (%s)", index, call,
                       cudaGetErrorString(e), cudaGetErrorName(e));
}

/* Makes device `index` current on the calling thread. Returns: the device to restore. */
static int enter(int index)
{
    int prev = -1;
    if (cudaGetDevice(&prev) != cudaSuccess) {
        cudaGetLastError();
        prev = -1;
    }
    if (prev != index) cudaSetDevice(index);
    return prev;
}

static void leave(int index, int prev)
{
    if (prev >= 0 && prev != index) cudaSetDevice(prev);
}

static void destroy_events(cudaEvent_t *events, unsigned n)
{
    for (unsigned i = 0; events != NULL && i < n; i++)
        if (events[i] != NULL) cudaEventDestroy(events[i]);
    hfeed__free(events);
}

static void cuda_close(struct hfeed__device *d)
{
    if (d == NULL) return;
    const int prev = enter(d->index);
    destroy_events(d->start, d->nevents);
    destroy_events(d->end, d->nevents);
    destroy_events(d->freed, d->nevents);
    if (d->stream != NULL) cudaStreamDestroy(d->stream);
    cudaGetLastError(); /* failures here (at process exit, say) change nothing for the job */
    leave(d->index, prev);
    hfeed__free(d->fenced);
    hfeed__free(d);
}

/* Creates the stream and events of d on the current device. */
static hfeed_status create_objects(struct hfeed__device *d, struct hfeed__err *err)
{
    cudaError_t e = cudaStreamCreateWithFlags(&d->stream, cudaStreamNonBlocking);
    if (e != cudaSuccess) return cuda_fail(err, d->index, "cudaStreamCreateWithFlags", e);
    for (unsigned i = 0; e == cudaSuccess && i < d->nevents; i++) {
        e = cudaEventCreateWithFlags(&d->start[i], cudaEventDefault);
        if (e == cudaSuccess) e = cudaEventCreateWithFlags(&d->end[i], cudaEventBlockingSync);
        if (e == cudaSuccess) e = cudaEventCreateWithFlags(&d->freed[i], cudaEventDisableTiming);
    }
    return e == cudaSuccess ? HFEED_OK : cuda_fail(err, d->index, "cudaEventCreateWithFlags", e);
}

static hfeed_status cuda_open(int index, unsigned nevents, uint64_t seed,
                              struct hfeed__device **out, struct hfeed__err *err)
{
    (void)seed;
    *out = NULL;
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    /* The commonest case on a CPU machine: CUDA's own text for it ("CUDA driver version is
     * insufficient for CUDA runtime version") reads like a broken install, so say what it means. */
    if (e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver ||
        (e == cudaSuccess && count == 0)) {
        cudaGetLastError();
        return HFEED__FAIL(err, HFEED_E_DEVICE,
                           "cuda:%d: no CUDA GPU or driver is present (cudaGetDeviceCount: %s)",
                           index < 0 ? 0 : index,
                           e == cudaSuccess ? "0 devices" : cudaGetErrorString(e));
    }
    if (e != cudaSuccess) return cuda_fail(err, index < 0 ? 0 : index, "cudaGetDeviceCount", e);
    if (index < 0) {
        e = cudaGetDevice(&index);
        if (e != cudaSuccess) return cuda_fail(err, 0, "cudaGetDevice", e);
    }
    if (index >= count)
        return HFEED__FAIL(err, HFEED_E_DEVICE, "cuda:%d: no such device (%d CUDA device%s)",
                           index, count, count == 1 ? "" : "s");
    struct hfeed__device *d = hfeed__calloc(1, sizeof *d);
    if (d == NULL) return HFEED__FAIL(err, HFEED_E_NOMEM, "cuda:%d: out of memory", index);
    d->index = index;
    d->start = hfeed__calloc(nevents, sizeof *d->start);
    d->end = hfeed__calloc(nevents, sizeof *d->end);
    d->freed = hfeed__calloc(nevents, sizeof *d->freed);
    d->fenced = hfeed__calloc(nevents, sizeof *d->fenced);
    if (d->start == NULL || d->end == NULL || d->freed == NULL || d->fenced == NULL) {
        cuda_close(d);
        return HFEED__FAIL(err, HFEED_E_NOMEM, "cuda:%d: out of memory", index);
    }
    d->nevents = nevents;
    const int prev = enter(index);
    e = cudaSetDevice(index);
    hfeed_status st = e == cudaSuccess ? create_objects(d, err)
                                       : cuda_fail(err, index, "cudaSetDevice", e);
    leave(index, prev);
    if (st != HFEED_OK) {
        cuda_close(d);
        return st;
    }
    *out = d;
    return HFEED_OK;
}

/* Staging buffers are 64-byte aligned either way: cudaHostAlloc returns page-aligned memory. */
static void *cuda_host_alloc(struct hfeed__device *d, size_t size, bool pinned)
{
    if (!pinned) return hfeed__device_plain_alloc(d, size, false);
    void *p = NULL;
    const int prev = enter(d->index);
    if (cudaHostAlloc(&p, size, cudaHostAllocDefault) != cudaSuccess) {
        cudaGetLastError();
        p = NULL;
    }
    leave(d->index, prev);
    return p;
}

static void cuda_host_free(struct hfeed__device *d, void *p, bool pinned)
{
    if (!pinned) {
        hfeed__device_plain_free(d, p, false);
        return;
    }
    if (p == NULL) return;
    const int prev = enter(d->index);
    cudaFreeHost(p);
    cudaGetLastError();
    leave(d->index, prev);
}

static void *cuda_dev_alloc(struct hfeed__device *d, size_t size)
{
    void *p = NULL;
    const int prev = enter(d->index);
    if (cudaMalloc(&p, size) != cudaSuccess) {
        cudaGetLastError();
        p = NULL;
    }
    leave(d->index, prev);
    return p;
}

static void cuda_dev_free(struct hfeed__device *d, void *p)
{
    if (p == NULL) return;
    const int prev = enter(d->index);
    cudaFree(p);
    cudaGetLastError();
    leave(d->index, prev);
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
    const cudaError_t e = cudaEventRecord(end ? d->end[event] : d->start[event], d->stream);
    return e == cudaSuccess ? HFEED_OK : cuda_fail(err, d->index, "cudaEventRecord", e);
}

/* An event does not need its device to be current to be waited for or timed. */
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

static void cuda_drain(struct hfeed__device *d)
{
    if (cudaStreamSynchronize(d->stream) != cudaSuccess) cudaGetLastError();
}

static hfeed_status cuda_fence(struct hfeed__device *d, unsigned event, void *stream,
                               struct hfeed__err *err)
{
    const cudaError_t e = cudaEventRecord(d->freed[event], (cudaStream_t)stream);
    if (e == cudaSuccess) {
        d->fenced[event] = true;
        return HFEED_OK;
    }
    const hfeed_status st = cuda_fail(err, d->index, "cudaEventRecord (release fence)", e);
    if (cudaStreamSynchronize((cudaStream_t)stream) != cudaSuccess) cudaGetLastError();
    return st;
}

static hfeed_status cuda_after_fence(struct hfeed__device *d, unsigned event,
                                     struct hfeed__err *err)
{
    if (!d->fenced[event]) return HFEED_OK;
    d->fenced[event] = false;
    const cudaError_t e = cudaStreamWaitEvent(d->stream, d->freed[event], 0);
    return e == cudaSuccess ? HFEED_OK : cuda_fail(err, d->index, "cudaStreamWaitEvent", e);
}

static int cuda_index(const struct hfeed__device *d)
{
    return d->index;
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
    .drain = cuda_drain,
    .fence = cuda_fence,
    .after_fence = cuda_after_fence,
    .index = cuda_index,
};
