/* device: where batches end up, behind one small interface with three backends.
 *
 *   host  (device_host.c)  the CPU path: batch slots in ordinary aligned memory, no upload stage.
 *   cuda  (device_cuda.c)  CUDA runtime API called from C: pinned slots (cudaHostAlloc), device
 *                          buffers (cudaMalloc), cudaMemcpyAsync on one dedicated stream, a pair
 *                          of events per device slot. Built when CMake finds the CUDA Toolkit
 *                          (HFEED_CUDA=AUTO|ON); otherwise device_nocuda.c, whose open says so.
 *   fake  (device_fake.c)  host memory posing as a device: copies are queued to a thread that
 *                          runs them in order after a random delay and then marks the event,
 *                          so the upload stage's ordering, slot reuse and release can be tested
 *                          without a GPU (and under ThreadSanitizer).
 *
 * The backend is picked once, at open, by the config's "device"; the upload stage (upload.c)
 * only talks to this interface. Memory from host_alloc/dev_alloc is allocated at open and kept
 * until the loader is destroyed, never per batch.
 *
 * Events: the device has `nevents` event ids, one per device slot. mark(d, e, false) before a
 * slot's copies and mark(d, e, true) after them, on the device's one stream, in that order;
 * wait(d, e) blocks the calling thread until the copies between the two marks have finished and
 * says how long the device spent on them. The stream runs operations in issue order.
 *
 * Release fences: the consumer may release a device batch, or drop a tensor exported from it,
 * while kernels it queued on its own streams still read it. fence(d, e, stream) records a "free"
 * event of slot e on that stream (up to HFEED__DEVICE_FENCES streams per slot); before the
 * issuer copies into slot e again it calls after_fence(d, e), which makes the device's stream
 * wait for every one of them (on the device, without blocking the host). Before the device
 * slots are freed, wait_fences(d) waits for those still pending.
 *
 * Threads: open/close on one thread; alloc/free during open and destroy; copy, mark and
 * after_fence from one issuing thread; wait and drain from the issuer or the completer; fence
 * from any thread dropping a hold on a batch, before the slot goes back to its ring (the ring's
 * mutex orders it before the issuer's after_fence). Our threads (issuer, completer) call bind
 * first: CUDA's current device is per thread, and a runtime call on a thread with none creates
 * device 0's context. Calls on the user's threads (open, close, alloc, free, fence,
 * wait_fences) make d's device current for the call and then put back exactly what the thread
 * had, nothing included (device_scope.h); when d's device cannot be made current they fail
 * instead of running on the caller's device. */
#ifndef HFEED_DEVICE_H
#define HFEED_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

struct hfeed__device;

/* Release fences one device slot keeps at once, each on its own consumer stream (a batch
 * released on one stream whose tensors were used on others); a further stream is synchronised
 * instead. */
#define HFEED__DEVICE_FENCES 4

struct hfeed__device_ops {
    const char *name;        /* "host", "cuda", "fake" */
    hfeed_device_kind kind;  /* what tensors report */
    bool built;              /* false only for device_nocuda.c, whose open always fails */

    /* Opens device `index` (-1: the calling thread's current device) with nevents event ids;
     * seed varies the fake device's delays.
     * Returns: HFEED_OK; HFEED_E_DEVICE with the backend's own error text (CUDA's: "no CUDA-
     * capable device is detected", ...); HFEED_E_NOMEM.
     * Ownership: *out is the caller's; close(). */
    hfeed_status (*open)(int index, unsigned nevents, uint64_t seed, struct hfeed__device **out,
                         struct hfeed__err *err);
    void (*close)(struct hfeed__device *d); /* NULL is a no-op */

    /* Host staging memory of size bytes, 64-byte aligned; page-locked when pinned and the
     * backend has such memory. NULL when out of memory. */
    void *(*host_alloc)(struct hfeed__device *d, size_t size, bool pinned);
    void (*host_free)(struct hfeed__device *d, void *p, bool pinned);
    /* Device memory of size bytes; NULL when out of memory. */
    void *(*dev_alloc)(struct hfeed__device *d, size_t size);
    void (*dev_free)(struct hfeed__device *d, void *p);

    /* Makes d current for the calling thread. Returns: HFEED_OK or HFEED_E_DEVICE. */
    hfeed_status (*bind)(struct hfeed__device *d, struct hfeed__err *err);
    /* Queues a copy of n bytes from host src to device dst on the stream.
     * Returns: HFEED_OK or HFEED_E_DEVICE. */
    hfeed_status (*copy)(struct hfeed__device *d, void *dst, const void *src, size_t n,
                         struct hfeed__err *err);
    /* Queues event id `event`'s start (end = false) or end (end = true) mark on the stream.
     * Returns: HFEED_OK or HFEED_E_DEVICE. */
    hfeed_status (*mark)(struct hfeed__device *d, unsigned event, bool end,
                         struct hfeed__err *err);
    /* Blocks until event id `event`'s end mark has passed; *start_ns and *end_ns = when its
     * start and end marks passed, on the device's clock (ns from an origin fixed at open, so
     * times of different events compare: the upload span is first start to last end).
     * Returns: HFEED_OK or HFEED_E_DEVICE (a failed copy). */
    hfeed_status (*wait)(struct hfeed__device *d, unsigned event, uint64_t *start_ns,
                         uint64_t *end_ns, struct hfeed__err *err);
    /* Blocks until everything queued on the stream has run (after a failed issue, before the
     * host buffers it read are reused). */
    void (*drain)(struct hfeed__device *d);
    /* Records event id `event`'s release fence on the caller's stream (a cudaStream_t; NULL:
     * the legacy default stream). Returns: HFEED_OK or HFEED_E_DEVICE; on failure the stream
     * was synchronised instead, so the slot is free either way. */
    hfeed_status (*fence)(struct hfeed__device *d, unsigned event, void *stream,
                          struct hfeed__err *err);
    /* Makes the stream wait for event id `event`'s release fence, if one was recorded since
     * the last call. Returns: HFEED_OK or HFEED_E_DEVICE. */
    hfeed_status (*after_fence)(struct hfeed__device *d, unsigned event, struct hfeed__err *err);
    /* Blocks until every release fence recorded and not yet waited for has passed (before the
     * device slots are freed). */
    void (*wait_fences)(struct hfeed__device *d);
    /* The device index in use (the one open resolved -1 to). */
    int (*index)(const struct hfeed__device *d);
};

/* Plain host memory (64-byte aligned, not page-locked) as every backend's unpinned staging
 * memory: host_alloc/host_free of the host and fake backends, and of CUDA with "pinned": false.
 * `pinned` is ignored. */
void *hfeed__device_plain_alloc(struct hfeed__device *d, size_t size, bool pinned);
void hfeed__device_plain_free(struct hfeed__device *d, void *p, bool pinned);

/* fence/after_fence of backends whose consumer has no device streams (host, fake): when host
 * code releases a batch it is done with it, so there is nothing to record or wait for. */
hfeed_status hfeed__device_no_fence(struct hfeed__device *d, unsigned event, void *stream,
                                    struct hfeed__err *err);
hfeed_status hfeed__device_no_after_fence(struct hfeed__device *d, unsigned event,
                                          struct hfeed__err *err);
void hfeed__device_no_wait_fences(struct hfeed__device *d);

extern const struct hfeed__device_ops hfeed__device_host;
extern const struct hfeed__device_ops hfeed__device_cuda; /* device_cuda.c or device_nocuda.c */
extern const struct hfeed__device_ops hfeed__device_fake;

#endif
