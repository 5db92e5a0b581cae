/* device_host: the CPU "device". Batches stay in ordinary aligned host memory; the loader runs
 * no upload stage with it, so copy/mark/wait exist only to complete the interface (a copy is a
 * memcpy, finished when it returns). */
#include <string.h>

#include "alloc.h"
#include "device.h"

/* The host backend has no state; open hands out this address so that a NULL device means
 * "not open". Never written. */
static const char host_token;

static hfeed_status host_open(int index, unsigned nevents, uint64_t seed,
                              struct hfeed__device **out, struct hfeed__err *err)
{
    (void)index;
    (void)nevents;
    (void)seed;
    (void)err;
    *out = (struct hfeed__device *)(uintptr_t)&host_token;
    return HFEED_OK;
}

static void host_close(struct hfeed__device *d)
{
    (void)d;
}

void *hfeed__device_plain_alloc(struct hfeed__device *d, size_t size, bool pinned)
{
    (void)d;
    (void)pinned;
    return hfeed__alloc_aligned(size);
}

void hfeed__device_plain_free(struct hfeed__device *d, void *p, bool pinned)
{
    (void)d;
    (void)pinned;
    hfeed__free(p);
}

static void *host_dev_alloc(struct hfeed__device *d, size_t size)
{
    return hfeed__device_plain_alloc(d, size, false);
}

static void host_dev_free(struct hfeed__device *d, void *p)
{
    hfeed__device_plain_free(d, p, false);
}

static hfeed_status host_bind(struct hfeed__device *d, struct hfeed__err *err)
{
    (void)d;
    (void)err;
    return HFEED_OK;
}

static hfeed_status host_copy(struct hfeed__device *d, void *dst, const void *src, size_t n,
                              struct hfeed__err *err)
{
    (void)d;
    (void)err;
    memcpy(dst, src, n);
    return HFEED_OK;
}

static hfeed_status host_mark(struct hfeed__device *d, unsigned event, bool end,
                              struct hfeed__err *err)
{
    (void)d;
    (void)event;
    (void)end;
    (void)err;
    return HFEED_OK;
}

static hfeed_status host_wait(struct hfeed__device *d, unsigned event, uint64_t *start_ns,
                              uint64_t *end_ns, struct hfeed__err *err)
{
    (void)d;
    (void)event;
    (void)err;
    *start_ns = 0;
    *end_ns = 0;
    return HFEED_OK;
}

static void host_drain(struct hfeed__device *d)
{
    (void)d;
}

hfeed_status hfeed__device_no_fence(struct hfeed__device *d, unsigned event, void *stream,
                                    struct hfeed__err *err)
{
    (void)d;
    (void)event;
    (void)stream;
    (void)err;
    return HFEED_OK;
}

hfeed_status hfeed__device_no_after_fence(struct hfeed__device *d, unsigned event,
                                          struct hfeed__err *err)
{
    return hfeed__device_no_fence(d, event, NULL, err);
}

void hfeed__device_no_wait_fences(struct hfeed__device *d)
{
    (void)d;
}

static int host_index(const struct hfeed__device *d)
{
    (void)d;
    return -1;
}

const struct hfeed__device_ops hfeed__device_host = {
    .name = "host",
    .kind = HFEED_DEVICE_CPU,
    .built = true,
    .open = host_open,
    .close = host_close,
    .host_alloc = hfeed__device_plain_alloc,
    .host_free = hfeed__device_plain_free,
    .dev_alloc = host_dev_alloc,
    .dev_free = host_dev_free,
    .bind = host_bind,
    .copy = host_copy,
    .mark = host_mark,
    .wait = host_wait,
    .drain = host_drain,
    .fence = hfeed__device_no_fence,
    .after_fence = hfeed__device_no_after_fence,
    .wait_fences = hfeed__device_no_wait_fences,
    .index = host_index,
};
