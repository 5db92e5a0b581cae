/* device_scope: enter/leave a backend's device on the calling thread (device_scope.h).
 *
 * The rule: read what is current (a context, or none), switch only when it is not ours, and put
 * back exactly what was there, none included. Reading the current *device* instead (CUDA's
 * cudaGetDevice) cannot tell "device 0" from "no device chosen yet", and putting "device 0"
 * back with cudaSetDevice creates device 0's context (CUDA 12: cudaSetDevice initialises the
 * primary context): on an 8-GPU node every rank on cuda:N would hold a context on GPU 0. */
#include "device_scope.h"

hfeed_status hfeed__scope_enter(const struct hfeed__ctx_ops *ops, void *rt, void *mine,
                                struct hfeed__scope *s, struct hfeed__err *err)
{
    s->prev = NULL;
    s->switched = false;
    HFEED__CHECK(ops->get(rt, &s->prev, err));
    if (s->prev == mine) return HFEED_OK;
    HFEED__CHECK(ops->set(rt, mine, err));
    s->switched = true;
    return HFEED_OK;
}

void hfeed__scope_leave(const struct hfeed__ctx_ops *ops, void *rt, const struct hfeed__scope *s)
{
    struct hfeed__err ignored = {0};
    if (s->switched) (void)ops->set(rt, s->prev, &ignored); /* prev may be none: unbind */
}
