/* batch: what other modules may do with a borrowed batch besides the public accessors.
 *
 * A batch is held by its borrower (from hfeed_loader_next() until hfeed_batch_release()) and by
 * every tensor exported from it (dlpack_export) until that tensor's deleter runs. Its slot goes
 * back to the workers, and its reference on the loader is dropped, when the last hold goes:
 * exported tensors stay valid after the batch is released and after the loader is closed. */
#ifndef HFEED_BATCH_H
#define HFEED_BATCH_H

#include "h5feed.h"

/* Adds a hold on a batch that is still held. Any thread. */
void hfeed__batch_hold(hfeed_batch *b);

/* Drops a hold; the last one gives the slot back (and may free a closed loader). Any thread. */
void hfeed__batch_drop(hfeed_batch *b);

#endif
