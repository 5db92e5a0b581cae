/* device_cuda: the CUDA backend (device.h), the only file that includes cuda_runtime.h.
 *
 * Runtime API from C, linked statically (CUDA::cudart_static) so that the library does not
 * depend on the build machine's libcudart. Pinned staging memory comes from cudaHostAlloc,
 * device buffers from cudaMalloc, both at open; copies go on one non-blocking stream of our own
 * (never the legacy default stream, which would serialise against the training job's work).
 * End events are created with cudaEventBlockingSync so that the thread waiting for an upload
 * sleeps instead of spinning a CPU core the workers need.
 *
 * Contexts: CUDA's current context is per thread and the training job relies on it
 * (torch.cuda.set_device), and since CUDA 12 any runtime call on a thread with no current
 * context, and cudaSetDevice, create a device's primary context (hundreds of MiB). So the device
 * retains its GPU's primary context at open and works only in it: our threads (issuer,
 * completer) make it current first (bind); every call on a user's thread makes it current and
 * then puts back exactly the context the thread had, none included (enter/leave, the rule in
 * device_scope.c). Contexts are read and set with the driver's cuCtxGetCurrent/cuCtxSetCurrent,
 * reached through the runtime (cudaGetDriverEntryPointByVersion), so the library still links
 * only the static runtime; cudaGetDevice cannot tell "device 0" from "none chosen". A CUDA error
 * of ours is cleared (cudaGetLastError) so that the job's next error check does not see it.
 *
 * Release fences (device.h): a slot has HFEED__DEVICE_FENCES `freed` events; one is recorded on
 * the consumer's stream, in our context, for each hold dropped with a stream (release_on_stream,
 * a DLPack deleter); before the next copy into that slot our stream waits for all of them, so
 * the copy cannot overwrite data the consumer's kernels still read; teardown synchronises them
 * before the device memory is freed. The fence table is guarded by `mu` (holds are dropped on
 * any thread). */
#include <cuda.h>
#include <cuda_runtime.h>
#include <pthread.h>
#include <string.h>

#include "alloc.h"
#include "device.h"
#include "device_scope.h"

/* The driver functions we need, reached through the runtime (no link against libcuda). */
struct driver {
    CUresult (*ctx_get_current)(CUcontext *ctx);
    CUresult (*ctx_set_current)(CUcontext ctx);
    CUresult (*primary_retain)(CUcontext *ctx, CUdevice dev);
    CUresult (*primary_release)(CUdevice dev);
};

struct hfeed__device {
    int index;
    struct driver drv;
    CUcontext ctx; /* the primary context of `index`, retained from open to close */
    bool retained;
    cudaStream_t stream;
    cudaEvent_t origin; /* recorded on the stream at open: the zero of wait()'s times */
    unsigned nevents;
    cudaEvent_t *start; /* nevents each */
    cudaEvent_t *end;
    cudaEvent_t *freed;  /* nevents * HFEED__DEVICE_FENCES */
    unsigned *nfenced;   /* freed events of each slot recorded and not yet waited for */
    pthread_mutex_t mu;  /* guards nfenced */
};

static hfeed_status cuda_fail(struct hfeed__err *err, int index, const char *call, cudaError_t e)
{
    cudaGetLastError(); /* ours: the job's next error check must not see it */
    return HFEED__FAIL(err, HFEED_E_DEVICE, "cuda:%d: %s failed: %s (%s)", index, call,
                       cudaGetErrorString(e), cudaGetErrorName(e));
}

static hfeed_status driver_fail(struct hfeed__err *err, int index, const char *call, CUresult r)
{
    return HFEED__FAIL(err, HFEED_E_DEVICE, "cuda:%d: %s failed: CUresult %d", index, call,
                       (int)r);
}

static hfeed_status ctx_get(void *rt, void **ctx, struct hfeed__err *err)
{
    struct hfeed__device *d = rt;
    CUcontext c = NULL;
    const CUresult r = d->drv.ctx_get_current(&c);
    *ctx = c;
    return r == CUDA_SUCCESS ? HFEED_OK : driver_fail(err, d->index, "cuCtxGetCurrent", r);
}

static hfeed_status ctx_set(void *rt, void *ctx, struct hfeed__err *err)
{
    struct hfeed__device *d = rt;
    const CUresult r = d->drv.ctx_set_current((CUcontext)ctx);
    return r == CUDA_SUCCESS ? HFEED_OK : driver_fail(err, d->index, "cuCtxSetCurrent", r);
}

static const struct hfeed__ctx_ops cuda_ctx_ops = {ctx_get, ctx_set};

/* Makes d's context current on the calling thread. Returns: HFEED_OK, or HFEED_E_DEVICE (then
 * the caller makes no call: it would land in the thread's own context). */
static hfeed_status enter(struct hfeed__device *d, struct hfeed__scope *s, struct hfeed__err *err)
{
    return hfeed__scope_enter(&cuda_ctx_ops, d, d->ctx, s, err);
}

static void leave(struct hfeed__device *d, const struct hfeed__scope *s)
{
    hfeed__scope_leave(&cuda_ctx_ops, d, s);
}

static hfeed_status find_driver(struct driver *drv, int index, struct hfeed__err *err)
{
    static const char *const names[] = {"cuCtxGetCurrent", "cuCtxSetCurrent",
                                        "cuDevicePrimaryCtxRetain", "cuDevicePrimaryCtxRelease"};
    void *fn[4] = {NULL, NULL, NULL, NULL};
    for (size_t i = 0; i < 4; i++) {
        enum cudaDriverEntryPointQueryResult q = cudaDriverEntryPointSymbolNotFound;
        const cudaError_t e = cudaGetDriverEntryPointByVersion(names[i], &fn[i], 12000,
                                                               cudaEnableDefault, &q);
        if (e != cudaSuccess) return cuda_fail(err, index, "cudaGetDriverEntryPointByVersion", e);
        if (q != cudaDriverEntryPointSuccess || fn[i] == NULL)
            return HFEED__FAIL(err, HFEED_E_DEVICE, "cuda:%d: the driver has no %s (too old "
                               "for this build's CUDA runtime?)", index, names[i]);
    }
    /* Function pointers from void *: POSIX guarantees the conversion (dlsym's rule). */
    memcpy(&drv->ctx_get_current, &fn[0], sizeof fn[0]);
    memcpy(&drv->ctx_set_current, &fn[1], sizeof fn[1]);
    memcpy(&drv->primary_retain, &fn[2], sizeof fn[2]);
    memcpy(&drv->primary_release, &fn[3], sizeof fn[3]);
    return HFEED_OK;
}

static void destroy_events(cudaEvent_t *events, size_t n)
{
    for (size_t i = 0; events != NULL && i < n; i++)
        if (events[i] != NULL) cudaEventDestroy(events[i]);
    hfeed__free(events);
}

static void cuda_close(struct hfeed__device *d)
{
    if (d == NULL) return;
    struct hfeed__scope s;
    struct hfeed__err ignored = {0};
    if (d->retained && enter(d, &s, &ignored) == HFEED_OK) {
        destroy_events(d->start, d->nevents);
        destroy_events(d->end, d->nevents);
        destroy_events(d->freed, (size_t)d->nevents * HFEED__DEVICE_FENCES);
        if (d->origin != NULL) cudaEventDestroy(d->origin);
        if (d->stream != NULL) cudaStreamDestroy(d->stream);
        cudaGetLastError(); /* failures here (at process exit, say) change nothing for the job */
        leave(d, &s);
    } else { /* nothing was created in a context, or it cannot be entered: free the arrays */
        hfeed__free(d->start);
        hfeed__free(d->end);
        hfeed__free(d->freed);
    }
    if (d->retained) d->drv.primary_release((CUdevice)d->index);
    pthread_mutex_destroy(&d->mu);
    hfeed__free(d->nfenced);
    hfeed__free(d);
}

/* Creates the stream and events of d in its context (current). */
static hfeed_status create_objects(struct hfeed__device *d, struct hfeed__err *err)
{
    cudaError_t e = cudaStreamCreateWithFlags(&d->stream, cudaStreamNonBlocking);
    if (e != cudaSuccess) return cuda_fail(err, d->index, "cudaStreamCreateWithFlags", e);
    for (unsigned i = 0; e == cudaSuccess && i < d->nevents; i++) {
        e = cudaEventCreateWithFlags(&d->start[i], cudaEventDefault);
        if (e == cudaSuccess) e = cudaEventCreateWithFlags(&d->end[i], cudaEventBlockingSync);
    }
    for (size_t i = 0; e == cudaSuccess && i < (size_t)d->nevents * HFEED__DEVICE_FENCES; i++)
        e = cudaEventCreateWithFlags(&d->freed[i], cudaEventDisableTiming);
    if (e == cudaSuccess) e = cudaEventCreateWithFlags(&d->origin, cudaEventDefault);
    if (e != cudaSuccess) return cuda_fail(err, d->index, "cudaEventCreateWithFlags", e);
    e = cudaEventRecord(d->origin, d->stream);
    return e == cudaSuccess ? HFEED_OK : cuda_fail(err, d->index, "cudaEventRecord (origin)", e);
}

/* index -1: the calling thread's current device, as torch's "cuda" (its context's device, or
 * the device the thread chose with cudaSetDevice; 0 when it chose none). */
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
    pthread_mutex_init(&d->mu, NULL);
    d->start = hfeed__calloc(nevents, sizeof *d->start);
    d->end = hfeed__calloc(nevents, sizeof *d->end);
    d->freed = hfeed__calloc((size_t)nevents * HFEED__DEVICE_FENCES, sizeof *d->freed);
    d->nfenced = hfeed__calloc(nevents, sizeof *d->nfenced);
    if (d->start == NULL || d->end == NULL || d->freed == NULL || d->nfenced == NULL) {
        cuda_close(d);
        return HFEED__FAIL(err, HFEED_E_NOMEM, "cuda:%d: out of memory", index);
    }
    d->nevents = nevents;
    hfeed_status st = find_driver(&d->drv, index, err);
    if (st == HFEED_OK) {
        const CUresult r = d->drv.primary_retain(&d->ctx, (CUdevice)index);
        if (r == CUDA_SUCCESS)
            d->retained = true;
        else
            st = driver_fail(err, index, "cuDevicePrimaryCtxRetain", r);
    }
    struct hfeed__scope s;
    if (st == HFEED_OK) st = enter(d, &s, err);
    if (st == HFEED_OK) {
        st = create_objects(d, err);
        leave(d, &s);
    }
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
    struct hfeed__scope s;
    struct hfeed__err ignored = {0};
    if (enter(d, &s, &ignored) != HFEED_OK) return NULL;
    if (cudaHostAlloc(&p, size, cudaHostAllocDefault) != cudaSuccess) {
        cudaGetLastError();
        p = NULL;
    }
    leave(d, &s);
    return p;
}

static void cuda_host_free(struct hfeed__device *d, void *p, bool pinned)
{
    if (!pinned) {
        hfeed__device_plain_free(d, p, false);
        return;
    }
    if (p == NULL) return;
    struct hfeed__scope s;
    struct hfeed__err ignored = {0};
    const bool entered = enter(d, &s, &ignored) == HFEED_OK;
    cudaFreeHost(p); /* pinned memory is the process's: freeing it needs no particular device */
    cudaGetLastError();
    if (entered) leave(d, &s);
}

static void *cuda_dev_alloc(struct hfeed__device *d, size_t size)
{
    void *p = NULL;
    struct hfeed__scope s;
    struct hfeed__err ignored = {0};
    if (enter(d, &s, &ignored) != HFEED_OK) return NULL; /* never on the caller's device */
    if (cudaMalloc(&p, size) != cudaSuccess) {
        cudaGetLastError();
        p = NULL;
    }
    leave(d, &s);
    return p;
}

static void cuda_dev_free(struct hfeed__device *d, void *p)
{
    if (p == NULL) return;
    struct hfeed__scope s;
    struct hfeed__err ignored = {0};
    if (enter(d, &s, &ignored) != HFEED_OK) return; /* leaked rather than freed elsewhere */
    cudaFree(p);
    cudaGetLastError();
    leave(d, &s);
}

/* Our threads only: they keep d's context current for their life. */
static hfeed_status cuda_bind(struct hfeed__device *d, struct hfeed__err *err)
{
    return ctx_set(d, d->ctx, err);
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

/* On the completer, which bound d (a runtime call on a thread without a context creates one). */
static hfeed_status cuda_wait(struct hfeed__device *d, unsigned event, uint64_t *start_ns,
                              uint64_t *end_ns, struct hfeed__err *err)
{
    *start_ns = 0;
    *end_ns = 0;
    cudaError_t e = cudaEventSynchronize(d->end[event]);
    if (e != cudaSuccess) return cuda_fail(err, d->index, "cudaEventSynchronize", e);
    float start_ms = 0.0f, end_ms = 0.0f;
    e = cudaEventElapsedTime(&start_ms, d->origin, d->start[event]);
    if (e == cudaSuccess) e = cudaEventElapsedTime(&end_ms, d->origin, d->end[event]);
    if (e != cudaSuccess) return cuda_fail(err, d->index, "cudaEventElapsedTime", e);
    *start_ns = (uint64_t)((double)start_ms * 1e6);
    *end_ns = (uint64_t)((double)end_ms * 1e6);
    if (*end_ns < *start_ns) *end_ns = *start_ns; /* float rounding far from the origin */
    return HFEED_OK;
}

static void cuda_drain(struct hfeed__device *d)
{
    if (cudaStreamSynchronize(d->stream) != cudaSuccess) cudaGetLastError();
}

/* In d's context (entered): NULL is d's legacy default stream, whatever the releasing thread's
 * current device; a stream of another device fails (invalid resource handle), and the fallback
 * synchronises that stream, so the slot is free either way. */
static hfeed_status record_fence(struct hfeed__device *d, unsigned event, cudaStream_t stream,
                                 struct hfeed__err *err)
{
    pthread_mutex_lock(&d->mu);
    const unsigned k = d->nfenced[event];
    cudaError_t e = cudaErrorNotReady;
    if (k < HFEED__DEVICE_FENCES) {
        e = cudaEventRecord(d->freed[(size_t)event * HFEED__DEVICE_FENCES + k], stream);
        if (e == cudaSuccess) d->nfenced[event] = k + 1;
    }
    pthread_mutex_unlock(&d->mu);
    if (e == cudaSuccess) return HFEED_OK;
    /* Too many streams for one slot (not an error), or the record failed: wait here. */
    const hfeed_status st = k < HFEED__DEVICE_FENCES
                                ? cuda_fail(err, d->index, "cudaEventRecord (release fence)", e)
                                : HFEED_OK;
    if (cudaStreamSynchronize(stream) != cudaSuccess) cudaGetLastError();
    return st;
}

static hfeed_status cuda_fence(struct hfeed__device *d, unsigned event, void *stream,
                               struct hfeed__err *err)
{
    struct hfeed__scope s;
    hfeed_status st = enter(d, &s, err);
    if (st != HFEED_OK) {
        /* Nothing can be recorded in our context: wait for a named stream here (NULL would be
         * the thread's own device's legacy stream, not ours). */
        if (stream != NULL && cudaStreamSynchronize((cudaStream_t)stream) != cudaSuccess)
            cudaGetLastError();
        return st;
    }
    st = record_fence(d, event, (cudaStream_t)stream, err);
    leave(d, &s);
    return st;
}

static hfeed_status cuda_after_fence(struct hfeed__device *d, unsigned event,
                                     struct hfeed__err *err)
{
    pthread_mutex_lock(&d->mu);
    const unsigned n = d->nfenced[event];
    d->nfenced[event] = 0;
    pthread_mutex_unlock(&d->mu);
    for (unsigned k = 0; k < n; k++) {
        const cudaError_t e = cudaStreamWaitEvent(
            d->stream, d->freed[(size_t)event * HFEED__DEVICE_FENCES + k], 0);
        if (e != cudaSuccess) return cuda_fail(err, d->index, "cudaStreamWaitEvent", e);
    }
    return HFEED_OK;
}

static void cuda_wait_fences(struct hfeed__device *d)
{
    struct hfeed__scope s;
    struct hfeed__err ignored = {0};
    const bool entered = enter(d, &s, &ignored) == HFEED_OK;
    for (unsigned event = 0; event < d->nevents; event++) {
        pthread_mutex_lock(&d->mu);
        const unsigned n = d->nfenced[event];
        d->nfenced[event] = 0;
        pthread_mutex_unlock(&d->mu);
        for (unsigned k = 0; k < n; k++)
            if (cudaEventSynchronize(d->freed[(size_t)event * HFEED__DEVICE_FENCES + k]) !=
                cudaSuccess)
                cudaGetLastError();
    }
    if (entered) leave(d, &s);
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
    .wait_fences = cuda_wait_fences,
    .index = cuda_index,
};
