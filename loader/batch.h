/* batch: what other modules may do with a borrowed batch besides the public accessors.
 *
 * A batch is held by its borrower (from hfeed_loader_next() until hfeed_batch_release()) and by
 * every tensor exported from it (dlpack_export) until that tensor's deleter runs. Its slot goes
 * back to the workers, and its reference on the loader is dropped, when the last hold goes:
 * exported tensors stay valid after the batch is released and after the loader is closed.
 * Each hold that was used on a consumer's stream fences the slot on that stream before it is
 * dropped (hfeed_batch_release_on_stream, and the deleter of a tensor exported for a stream),
 * so the last drop is stream-ordered whichever hold it is. */
#ifndef HFEED_BATCH_H
#define HFEED_BATCH_H

#include "h5feed.h"

/* Adds a hold on a batch that is still held. Any thread. */
void hfeed__batch_hold(hfeed_batch *b);

/* Drops a hold; the last one gives the slot back (and may free a closed loader). Any thread. */
void hfeed__batch_drop(hfeed_batch *b);

/* Records a release fence of b's device slot on the consumer's stream (device.h fence), so that
 * the slot is refilled only after the work queued there so far; call it before dropping the
 * hold that used the stream. A no-op for CPU batches.
 * Returns: HFEED_OK, or HFEED_E_DEVICE (the stream was synchronised instead). Any thread. */
hfeed_status hfeed__batch_fence(hfeed_batch *b, void *stream);

#endif
