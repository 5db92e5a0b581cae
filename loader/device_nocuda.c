/* device_nocuda: the CUDA backend of a build without the CUDA Toolkit (HFEED_CUDA=OFF, or AUTO
 * without a toolkit). Opening it fails with a message that says so; nothing else is reachable,
 * because a device that never opens is never used. */
#include <stddef.h>

#include "device.h"

static hfeed_status nocuda_open(int index, unsigned nevents, uint64_t seed,
                                struct hfeed__device **out, struct hfeed__err *err)
{
    (void)nevents;
    (void)seed;
    *out = NULL;
    /* index -1 is "the thread's current device" ("auto"), which this build cannot name. */
    return HFEED__FAIL(err, HFEED_E_DEVICE,
                       "cuda:%d: this build of h5feed has no CUDA backend (built with "
                       "HFEED_CUDA=OFF, or without the CUDA Toolkit)",
                       index < 0 ? 0 : index);
}

static void nocuda_close(struct hfeed__device *d)
{
    (void)d;
}

const struct hfeed__device_ops hfeed__device_cuda = {
    .name = "cuda",
    .kind = HFEED_DEVICE_CUDA,
    .built = false,
    .open = nocuda_open,
    .close = nocuda_close,
};
