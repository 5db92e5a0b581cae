/* upload: the last pipeline stage, from pinned host slots to device slots (device.h).
 *
 *   workers -> host ring (pinned slots) -> issuer thread -> device stream -> completer thread
 *           -> device ring (device slots) -> consumer (hfeed_loader_next)
 *
 * Both rings are prefetch.h rings of the same depth. The issuer takes host batches in sequence
 * order; for each it first claims a FREE device slot (so it never holds a host slot while waiting
 * for the consumer), then queues one cudaMemcpyAsync per field between the slot's start and end
 * events and hands the pair to the completer through a FIFO of at most `depth` entries. The
 * completer waits for each end event in order, gives the host slot back to the workers at once
 * (a pinned slot is refilled as soon as its upload finished, not when the consumer releases the
 * device batch) and publishes the device slot. So the copy engine always has the next batch
 * queued behind the current one, and a device batch reaches the consumer only once its data is
 * on the device: hfeed_loader_next() returns device tensors that are ready (no stream or event
 * to wait on).
 *
 * Errors: a host batch that carries a worker's error, or a copy/event failure (HFEED_E_DEVICE
 * with CUDA's text), is published in the device slot with that status; the device ring then
 * hands out no more batches, like the host ring.
 *
 * Devices: both threads bind the loader's device (device.h bind) before their first device call,
 * so that no call of theirs lands in, or creates, another device's context.
 *
 * Locking: the FIFO has its own mutex; the rings have theirs; no thread holds two of these at
 * once. Device calls run outside every lock. */
#ifndef HFEED_UPLOAD_H
#define HFEED_UPLOAD_H

#include <stddef.h>
#include <stdint.h>

#include "device.h"
#include "error.h"
#include "prefetch.h"

struct hfeed__upload;

/* Creates the stage between `host` (taken from) and `dev` (filled), both rings of `depth` slots
 * with nfields buffers of row_bytes[k] * batch_size bytes. Starts no thread.
 * Returns: HFEED_OK or HFEED_E_NOMEM. Ownership: the caller's; hfeed__upload_destroy(). The
 * rings and the device must outlive the stage. */
hfeed_status hfeed__upload_create(const struct hfeed__device_ops *ops, struct hfeed__device *device,
                                  struct hfeed__ring *host, struct hfeed__ring *dev, unsigned depth,
                                  size_t nfields, const size_t *row_bytes,
                                  struct hfeed__upload **out, struct hfeed__err *err);

/* Starts the issuer and completer threads. Returns: HFEED_OK or HFEED_E_THREAD (none runs). */
hfeed_status hfeed__upload_start(struct hfeed__upload *u, struct hfeed__err *err);

/* Stops both rings, lets the completer finish the uploads in flight (their host slots go back),
 * and joins both threads. Idempotent. */
void hfeed__upload_stop(struct hfeed__upload *u);

/* Bytes uploaded, device time spent copying them (the sum over uploads, from the events) and
 * the span from the first upload's start to the last one's end on the device (busy time plus
 * the idle gaps between uploads), so far. Any thread. */
void hfeed__upload_get_stats(struct hfeed__upload *u, uint64_t *bytes, uint64_t *busy_ns,
                             uint64_t *span_ns);

void hfeed__upload_destroy(struct hfeed__upload *u);

#endif
