/* device_fake: what tests may ask of, and do to, the fake device (device.h) beyond its ops.
 *
 * The fake device simulates the parts of the CUDA runtime that a real multi-GPU node punishes
 * and a single host cannot show on its own:
 *
 * - Per-thread current context. Each thread has a simulated current context: a device index,
 *   or none. Every device operation "lands" on the calling thread's context; one that finds
 *   none creates device 0's context there, as a CUDA runtime call does. A call that lands on a
 *   context other than its device's, or that makes another device's context current on a
 *   thread that never had it (a new context, hundreds of MiB on a real GPU), is counted.
 * - Consumer streams. A test creates streams on a device and launches "kernels" on them that
 *   read a buffer for a while. A kernel checks, when it finishes, that the buffer still holds
 *   what it held at launch; a buffer overwritten while a kernel reads it, or freed before the
 *   kernel finished, is counted. The NULL stream is the legacy default stream of the calling
 *   thread's current device.
 *
 * The counts go into a world the test owns (it outlives the devices and loaders it watches);
 * a device reports into the world it was attached to.
 *
 * Threads: any; the world has its own mutex. */
#ifndef HFEED_DEVICE_FAKE_H
#define HFEED_DEVICE_FAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "device.h"

struct hfeed__fake_world;
struct hfeed__fake_stream;

/* What a world saw. */
struct hfeed__fake_record {
    uint64_t stray_calls;      /* device operations that ran in another device's context */
    uint32_t foreign_contexts; /* bit k: a device of the world made device k's context current
                                * on a thread that never had it (k != the device's own) */
    uint64_t overwritten;      /* kernels whose buffer changed while they read it */
    uint64_t freed_in_use;     /* device buffers freed while a kernel still read them */
    uint64_t kernels_checked;  /* kernels that finished and were checked */
};

/* Returns: HFEED_OK or HFEED_E_NOMEM. Ownership: the caller's; hfeed__fake_world_destroy()
 * after every device attached to it is closed and every stream destroyed. */
hfeed_status hfeed__fake_world_create(struct hfeed__fake_world **out);
void hfeed__fake_world_destroy(struct hfeed__fake_world *w);
void hfeed__fake_world_get(struct hfeed__fake_world *w, struct hfeed__fake_record *out);

/* Makes d report into w from now on. */
void hfeed__fake_device_attach(struct hfeed__device *d, struct hfeed__fake_world *w);
/* From now on, making d's context current fails (as cudaSetDevice can), or works again. */
void hfeed__fake_device_fail_bind(struct hfeed__device *d, bool fail);

/* The calling thread's current context: a device index, -1 for none. */
int hfeed__fake_thread_context(void);
/* The user's own cudaSetDevice(device) on the calling thread (-1: none current). */
void hfeed__fake_thread_set_context(int device);

/* A consumer stream on device `device` of world w, or (stream_create_legacy) the legacy default
 * stream of that device, which fence(..., NULL) means on a thread whose current device it is.
 * Returns: HFEED_OK or HFEED_E_NOMEM. Ownership: the world's; destroyed with it. The value is
 * what the consumer passes as its cudaStream_t. */
hfeed_status hfeed__fake_stream_create(struct hfeed__fake_world *w, int device,
                                       struct hfeed__fake_stream **out);
hfeed_status hfeed__fake_stream_create_legacy(struct hfeed__fake_world *w, int device,
                                              struct hfeed__fake_stream **out);

/* Queues a kernel that reads n bytes at p for duration_ns after everything queued before it on
 * s. Returns at once. At most 64 kernels per stream are tracked. */
void hfeed__fake_stream_launch(struct hfeed__fake_stream *s, const void *p, size_t n,
                               uint64_t duration_ns);

/* Blocks until every kernel queued on s has finished, and checks them. */
void hfeed__fake_stream_sync(struct hfeed__fake_stream *s);

/* ---- for device_fake.c (device_fake_world.c implements them) ------------------------------ */

/* The fake device's clock: CLOCK_MONOTONIC in ns. */
uint64_t hfeed__fake_now_ns(void);
/* Adds to w's record (w NULL: nothing). */
void hfeed__fake_world_count(struct hfeed__fake_world *w, uint64_t stray, uint32_t foreign);
/* The legacy stream of `device` in w; NULL when the test made none (nothing of the consumer's
 * runs there). */
struct hfeed__fake_stream *hfeed__fake_world_legacy(struct hfeed__fake_world *w, int device);
int hfeed__fake_stream_device(const struct hfeed__fake_stream *s);
/* When the last kernel queued on s so far finishes (a release fence's "event"). */
uint64_t hfeed__fake_stream_tail(struct hfeed__fake_stream *s);
/* Sleeps until time t, then checks the kernels of s finished by then. */
void hfeed__fake_stream_await(struct hfeed__fake_stream *s, uint64_t t);
/* Device memory [p, p + size) is being freed: checks the kernels that finished, counts those
 * still reading it as freed in use and forgets them. */
void hfeed__fake_world_forget(struct hfeed__fake_world *w, const void *p, size_t size);

#endif
