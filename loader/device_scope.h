/* device_scope: making a backend's device current on a thread for one call, and putting the
 * thread's previous state back afterwards. Shared by the CUDA backend (device_cuda.c) and the
 * fake device (device_fake.c), so the rule is written once and the fake device's tests check
 * the very code the CUDA backend runs.
 *
 * A backend describes its runtime with two functions over opaque "context" values: get reads
 * what is current on the calling thread, set makes a value current. What a value means is the
 * backend's business (a CUcontext for CUDA, a simulated one for the fake device).
 *
 * Threads: any; the state is the calling thread's. */
#ifndef HFEED_DEVICE_SCOPE_H
#define HFEED_DEVICE_SCOPE_H

#include <stdbool.h>

#include "error.h"

struct hfeed__ctx_ops {
    /* *ctx = what is current on the calling thread, NULL for nothing (never a default that
     * looks like a choice). Returns: HFEED_OK or HFEED_E_DEVICE. */
    hfeed_status (*get)(void *rt, void **ctx, struct hfeed__err *err);
    /* Makes ctx current on the calling thread; NULL: nothing current. Returns: HFEED_OK or
     * HFEED_E_DEVICE. */
    hfeed_status (*set)(void *rt, void *ctx, struct hfeed__err *err);
};

/* What hfeed__scope_leave() needs to put back. */
struct hfeed__scope {
    void *prev;
    bool switched;
};

/* Makes `mine` current on the calling thread, remembering what was current before (also
 * nothing).
 * Returns: HFEED_OK, or the runtime's error: `mine` could not be made current, so the caller
 * must not make its call (it would land on the caller's device); no leave is needed then. */
hfeed_status hfeed__scope_enter(const struct hfeed__ctx_ops *ops, void *rt, void *mine,
                                struct hfeed__scope *s, struct hfeed__err *err);

/* Puts back what hfeed__scope_enter() found, nothing included; never a default device. */
void hfeed__scope_leave(const struct hfeed__ctx_ops *ops, void *rt, const struct hfeed__scope *s);

#endif
