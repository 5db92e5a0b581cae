/* prefetch: the fixed ring of batch slots between the workers and the consumer.
 *
 * Batches are numbered by a run-wide sequence number `seq` (epoch * batches_per_epoch + batch).
 * Workers claim sequence numbers in increasing order, each into any FREE slot, and record which
 * slot holds seq in pending[seq % nslots]; the consumer takes seq in order through that table,
 * so its order is the sampler's whichever worker finishes first. A slot cycles FREE -> FILLING
 * (one worker) -> READY -> BORROWED (the consumer) -> FREE. A worker waits while no slot is
 * FREE (backpressure: at most nslots batches exist at once, so memory is fixed at create); a
 * batch the consumer keeps borrowed holds one slot and no more.
 *
 * Locking: one mutex guards all slot states and counters; `can_fill` wakes workers, `can_take`
 * wakes the consumer. The plan callback runs under the mutex (it is ours, fast, and must assign
 * batches in order); reading and converting run outside it. Lock order: the ring mutex may be
 * held while calling plan, which takes no lock but the chunk caches' (the loader's plan tells
 * them what the coming batches need; chunkcache.h), and nothing takes the ring mutex while
 * holding a chunk cache's lock or the HDF5 lock.
 *
 * Errors: a worker publishes a slot with its status. From then on no new batch is handed out;
 * the consumer receives the good batches before it, then the error (the loader keeps it sticky). */
#ifndef HFEED_PREFETCH_H
#define HFEED_PREFETCH_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

enum hfeed__slot_state {
    HFEED__SLOT_FREE = 0,
    HFEED__SLOT_FILLING = 1,
    HFEED__SLOT_READY = 2,
    HFEED__SLOT_BORROWED = 3,
};

struct hfeed__slot {
    /* Set under the ring mutex. */
    enum hfeed__slot_state state;
    uint64_t seq;
    /* Written by the filling worker (or by plan), read by the consumer after READY. */
    uint64_t epoch, index;
    size_t samples;
    uint64_t *indices;     /* batch_size global sample indices */
    unsigned char **data;  /* one buffer per field, batch_size rows */
    struct hfeed__err err; /* the worker's failure, when status != OK */
    hfeed_status status;
    void *owner; /* back pointer for the public batch handle */
};

/* Called under the ring mutex for each claimed sequence number, in increasing order: fills the
 * slot's epoch, index, samples and indices. The first batch of an epoch computes that epoch's
 * order (O(samples)); the ring is held meanwhile, a stall once per epoch. */
typedef void (*hfeed__plan_fn)(void *ctx, uint64_t seq, struct hfeed__slot *slot);

struct hfeed__ring;

/* Where a ring's data buffers come from: pinned host memory or device memory (device.h), so
 * that the same ring serves the workers (host slots) and the upload stage (device slots). alloc
 * returns NULL when out of memory; both are called only in create and destroy. */
struct hfeed__slot_memory {
    void *(*alloc)(void *ctx, size_t size);
    void (*free)(void *ctx, void *p);
    void *ctx;
};

/* Creates a ring of nslots slots, each with nfields buffers of row_bytes[k] * batch_size bytes
 * (from mem, or 64-byte aligned host memory when mem is NULL) and room for batch_size indices.
 * Delivers sequence numbers [0, end_seq). plan may be NULL: the claimer fills the slot itself.
 * Returns: HFEED_OK or HFEED_E_NOMEM. Ownership: the caller's; hfeed__ring_destroy(), which
 * frees the buffers with mem, so mem must outlive the ring. */
hfeed_status hfeed__ring_create(unsigned nslots, size_t nfields, const size_t *row_bytes,
                                size_t batch_size, uint64_t end_seq,
                                const struct hfeed__slot_memory *mem, hfeed__plan_fn plan,
                                void *plan_ctx, struct hfeed__ring **out, struct hfeed__err *err);
void hfeed__ring_destroy(struct hfeed__ring *r);

/* Bytes allocated for slots. */
size_t hfeed__ring_memory(const struct hfeed__ring *r);
unsigned hfeed__ring_slots(const struct hfeed__ring *r);
struct hfeed__slot *hfeed__ring_slot(struct hfeed__ring *r, unsigned i);

/* Worker side. Blocks until the next sequence number can be filled, claims it and plans it.
 * Returns: true with *slot FILLING; false when the run is over, failed, or the ring is stopping. */
bool hfeed__ring_claim(struct hfeed__ring *r, struct hfeed__slot **slot);

/* Worker side. Hands a filled slot (status in slot->status) to the consumer. */
void hfeed__ring_publish(struct hfeed__ring *r, struct hfeed__slot *slot);

/* Whether the ring is stopping (workers may check between reads to give up early). */
bool hfeed__ring_stopping(struct hfeed__ring *r);

/* Consumer side. Blocks until the next batch in order is READY and borrows it.
 * Returns: HFEED_OK with *slot BORROWED (its status may be an error: the worker's); HFEED_END
 * when every sequence number was taken; HFEED_E_BUSY when the next batch is not claimed yet and
 * every slot is borrowed (it could never be filled). */
hfeed_status hfeed__ring_take(struct hfeed__ring *r, struct hfeed__slot **slot);

/* Gives a borrowed slot back. Any thread. */
void hfeed__ring_give_back(struct hfeed__ring *r, struct hfeed__slot *slot);

/* Makes every blocked and future claim return false and wakes everyone. */
void hfeed__ring_stop(struct hfeed__ring *r);

/* Restarts the ring at sequence number `seq` once the workers are stopped (joined): every
 * slot not BORROWED becomes FREE.
 * Returns: HFEED_OK, or HFEED_E_BUSY if a slot is still borrowed. */
hfeed_status hfeed__ring_restart(struct hfeed__ring *r, uint64_t seq);

#endif
