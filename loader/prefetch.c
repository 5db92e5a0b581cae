/* prefetch: the slot ring between workers and consumer; design and locking in prefetch.h. */
#include "prefetch.h"

#include <stdatomic.h>
#include <string.h>

#include "alloc.h"

struct hfeed__ring {
    pthread_mutex_t mu;
    pthread_cond_t can_fill; /* a slot became FREE, or stop/failure */
    pthread_cond_t can_take; /* a slot became READY, or stop */
    struct hfeed__slot *slots;
    unsigned *pending; /* pending[seq % nslots]: the slot of claimed, untaken batch seq */
    unsigned nslots;
    size_t nfields;
    uint64_t next_claim; /* next sequence number a worker will fill */
    uint64_t next_take;  /* next sequence number the consumer will borrow */
    uint64_t end_seq;    /* one past the last sequence number of the run */
    atomic_bool stopping; /* written under mu; workers poll it without the lock */
    bool failed;          /* a worker published an error: hand out no more batches */
    hfeed__plan_fn plan;
    void *plan_ctx;
    struct hfeed__slot_memory mem;
    size_t memory;
};

static void *default_alloc(void *ctx, size_t size)
{
    (void)ctx;
    return hfeed__alloc_aligned(size);
}

static void default_free(void *ctx, void *p)
{
    (void)ctx;
    hfeed__free(p);
}

hfeed_status hfeed__ring_create(unsigned nslots, size_t nfields, const size_t *row_bytes,
                                size_t batch_size, uint64_t end_seq,
                                const struct hfeed__slot_memory *mem, hfeed__plan_fn plan,
                                void *plan_ctx, struct hfeed__ring **out, struct hfeed__err *err)
{
    *out = NULL;
    struct hfeed__ring *r = hfeed__calloc(1, sizeof *r);
    if (r == NULL) return HFEED__FAIL(err, HFEED_E_NOMEM, "prefetch ring: out of memory");
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->can_fill, NULL);
    pthread_cond_init(&r->can_take, NULL);
    r->nfields = nfields;
    r->end_seq = end_seq;
    r->plan = plan;
    r->plan_ctx = plan_ctx;
    r->mem = mem != NULL ? *mem
                         : (struct hfeed__slot_memory){.alloc = default_alloc, .free = default_free};
    atomic_init(&r->stopping, false);
    r->slots = hfeed__calloc(nslots, sizeof *r->slots);
    r->pending = hfeed__calloc(nslots, sizeof *r->pending);
    if (r->slots != NULL) r->nslots = nslots;
    bool ok = r->slots != NULL && r->pending != NULL;
    for (unsigned i = 0; ok && i < nslots; i++) {
        struct hfeed__slot *s = &r->slots[i];
        s->indices = hfeed__alloc(batch_size * sizeof *s->indices);
        s->data = hfeed__calloc(nfields, sizeof *s->data);
        ok = s->indices != NULL && s->data != NULL;
        r->memory += batch_size * sizeof *s->indices;
        for (size_t k = 0; ok && k < nfields; k++) {
            s->data[k] = r->mem.alloc(r->mem.ctx, row_bytes[k] * batch_size);
            ok = s->data[k] != NULL;
            r->memory += row_bytes[k] * batch_size;
        }
    }
    if (!ok) {
        hfeed__ring_destroy(r);
        return HFEED__FAIL(err, HFEED_E_NOMEM, "prefetch ring: out of memory for %u slots", nslots);
    }
    *out = r;
    return HFEED_OK;
}

void hfeed__ring_destroy(struct hfeed__ring *r)
{
    if (r == NULL) return;
    for (unsigned i = 0; i < r->nslots; i++) {
        struct hfeed__slot *s = &r->slots[i];
        for (size_t k = 0; s->data != NULL && k < r->nfields; k++)
            if (s->data[k] != NULL) r->mem.free(r->mem.ctx, s->data[k]);
        hfeed__free(s->data);
        hfeed__free(s->indices);
    }
    hfeed__free(r->slots);
    hfeed__free(r->pending);
    pthread_cond_destroy(&r->can_take);
    pthread_cond_destroy(&r->can_fill);
    pthread_mutex_destroy(&r->mu);
    hfeed__free(r);
}

size_t hfeed__ring_memory(const struct hfeed__ring *r)
{
    return r->memory;
}

unsigned hfeed__ring_slots(const struct hfeed__ring *r)
{
    return r->nslots;
}

struct hfeed__slot *hfeed__ring_slot(struct hfeed__ring *r, unsigned i)
{
    return &r->slots[i];
}

/* A FREE slot, or NULL. Slots are few (the prefetch depth), so a scan is cheap. Lock held. */
static struct hfeed__slot *free_slot(struct hfeed__ring *r)
{
    for (unsigned i = 0; i < r->nslots; i++)
        if (r->slots[i].state == HFEED__SLOT_FREE) return &r->slots[i];
    return NULL;
}

bool hfeed__ring_claim(struct hfeed__ring *r, struct hfeed__slot **slot)
{
    *slot = NULL;
    pthread_mutex_lock(&r->mu);
    struct hfeed__slot *s = NULL;
    while (!atomic_load(&r->stopping) && !r->failed && r->next_claim < r->end_seq &&
           (s = free_slot(r)) == NULL)
        pthread_cond_wait(&r->can_fill, &r->mu);
    const bool go = !atomic_load(&r->stopping) && !r->failed && r->next_claim < r->end_seq;
    if (go) {
        s->state = HFEED__SLOT_FILLING;
        s->seq = r->next_claim++;
        s->status = HFEED_OK;
        hfeed__err_clear(&s->err);
        /* At most nslots batches are claimed and not yet taken (each holds a slot), so the
         * entry of seq - nslots was taken already and its place is free. */
        r->pending[s->seq % r->nslots] = (unsigned)(s - r->slots);
        if (r->plan != NULL) r->plan(r->plan_ctx, s->seq, s);
        *slot = s;
    }
    pthread_mutex_unlock(&r->mu);
    return go;
}

void hfeed__ring_publish(struct hfeed__ring *r, struct hfeed__slot *slot)
{
    pthread_mutex_lock(&r->mu);
    slot->state = HFEED__SLOT_READY;
    if (slot->status != HFEED_OK) {
        r->failed = true;
        pthread_cond_broadcast(&r->can_fill);
    }
    /* The consumer waits for batch next_take only: waking it for a later one (another worker's
     * batch finished first, half the time with two workers) costs a context switch for nothing,
     * a core's worth of time on a 2-core machine. */
    if (slot->seq == r->next_take || slot->status != HFEED_OK) pthread_cond_broadcast(&r->can_take);
    pthread_mutex_unlock(&r->mu);
}

bool hfeed__ring_stopping(struct hfeed__ring *r)
{
    return atomic_load_explicit(&r->stopping, memory_order_relaxed);
}

/* Whether every slot is borrowed by the consumer. Lock held. */
static bool all_borrowed(const struct hfeed__ring *r)
{
    for (unsigned i = 0; i < r->nslots; i++)
        if (r->slots[i].state != HFEED__SLOT_BORROWED) return false;
    return true;
}

hfeed_status hfeed__ring_take(struct hfeed__ring *r, struct hfeed__slot **slot)
{
    *slot = NULL;
    hfeed_status st = HFEED_OK;
    pthread_mutex_lock(&r->mu);
    for (;;) {
        if (r->next_take >= r->end_seq || atomic_load(&r->stopping)) {
            st = HFEED_END;
            break;
        }
        if (r->next_take < r->next_claim) {
            struct hfeed__slot *s = &r->slots[r->pending[r->next_take % r->nslots]];
            if (s->state == HFEED__SLOT_READY) {
                s->state = HFEED__SLOT_BORROWED;
                r->next_take++;
                *slot = s;
                break;
            }
        } else if (all_borrowed(r)) {
            st = HFEED_E_BUSY; /* no worker can claim the next batch: waiting would never end */
            break;
        } else if (r->failed) {
            st = HFEED_END; /* defensive: the loader stops at the failed batch before this */
            break;
        }
        pthread_cond_wait(&r->can_take, &r->mu);
    }
    pthread_mutex_unlock(&r->mu);
    return st;
}

void hfeed__ring_give_back(struct hfeed__ring *r, struct hfeed__slot *slot)
{
    pthread_mutex_lock(&r->mu);
    slot->state = HFEED__SLOT_FREE;
    pthread_cond_broadcast(&r->can_fill);
    pthread_mutex_unlock(&r->mu);
}

void hfeed__ring_stop(struct hfeed__ring *r)
{
    pthread_mutex_lock(&r->mu);
    atomic_store(&r->stopping, true);
    pthread_cond_broadcast(&r->can_fill);
    pthread_cond_broadcast(&r->can_take);
    pthread_mutex_unlock(&r->mu);
}

hfeed_status hfeed__ring_restart(struct hfeed__ring *r, uint64_t seq)
{
    hfeed_status st = HFEED_OK;
    pthread_mutex_lock(&r->mu);
    for (unsigned i = 0; i < r->nslots; i++)
        if (r->slots[i].state == HFEED__SLOT_BORROWED) st = HFEED_E_BUSY;
    if (st == HFEED_OK) {
        for (unsigned i = 0; i < r->nslots; i++)
            r->slots[i].state = HFEED__SLOT_FREE;
        r->next_claim = seq;
        r->next_take = seq;
        atomic_store(&r->stopping, false);
        r->failed = false;
    }
    pthread_mutex_unlock(&r->mu);
    return st;
}
