/* prefetch: the slot ring between workers and consumer; design and locking in prefetch.h. */
#include "prefetch.h"

#include <string.h>

#include "alloc.h"

struct hfeed__ring {
    pthread_mutex_t mu;
    pthread_cond_t can_fill; /* a slot became FREE, or stop/failure */
    pthread_cond_t can_take; /* a slot became READY, or stop */
    struct hfeed__slot *slots;
    unsigned nslots;
    size_t nfields;
    uint64_t next_claim; /* next sequence number a worker will fill */
    uint64_t next_take;  /* next sequence number the consumer will borrow */
    uint64_t end_seq;    /* one past the last sequence number of the run */
    bool stopping;
    bool failed; /* a worker published an error: hand out no more batches */
    hfeed__plan_fn plan;
    void *plan_ctx;
    size_t memory;
};

hfeed_status hfeed__ring_create(unsigned nslots, size_t nfields, const size_t *row_bytes,
                                size_t batch_size, uint64_t end_seq, hfeed__plan_fn plan,
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
    r->slots = hfeed__calloc(nslots, sizeof *r->slots);
    if (r->slots != NULL) r->nslots = nslots;
    bool ok = r->slots != NULL;
    for (unsigned i = 0; ok && i < nslots; i++) {
        struct hfeed__slot *s = &r->slots[i];
        s->indices = hfeed__alloc(batch_size * sizeof *s->indices);
        s->data = hfeed__calloc(nfields, sizeof *s->data);
        ok = s->indices != NULL && s->data != NULL;
        r->memory += batch_size * sizeof *s->indices;
        for (size_t k = 0; ok && k < nfields; k++) {
            s->data[k] = hfeed__alloc_aligned(row_bytes[k] * batch_size);
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
            hfeed__free(s->data[k]);
        hfeed__free(s->data);
        hfeed__free(s->indices);
    }
    hfeed__free(r->slots);
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

bool hfeed__ring_claim(struct hfeed__ring *r, struct hfeed__slot **slot)
{
    *slot = NULL;
    pthread_mutex_lock(&r->mu);
    while (!r->stopping && !r->failed && r->next_claim < r->end_seq &&
           r->slots[r->next_claim % r->nslots].state != HFEED__SLOT_FREE)
        pthread_cond_wait(&r->can_fill, &r->mu);
    const bool go = !r->stopping && !r->failed && r->next_claim < r->end_seq;
    if (go) {
        struct hfeed__slot *s = &r->slots[r->next_claim % r->nslots];
        s->state = HFEED__SLOT_FILLING;
        s->seq = r->next_claim++;
        s->status = HFEED_OK;
        hfeed__err_clear(&s->err);
        r->plan(r->plan_ctx, s->seq, s);
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
    pthread_cond_broadcast(&r->can_take);
    pthread_mutex_unlock(&r->mu);
}

bool hfeed__ring_stopping(struct hfeed__ring *r)
{
    pthread_mutex_lock(&r->mu);
    const bool stopping = r->stopping;
    pthread_mutex_unlock(&r->mu);
    return stopping;
}

hfeed_status hfeed__ring_take(struct hfeed__ring *r, struct hfeed__slot **slot)
{
    *slot = NULL;
    hfeed_status st = HFEED_OK;
    pthread_mutex_lock(&r->mu);
    for (;;) {
        struct hfeed__slot *s = &r->slots[r->next_take % r->nslots];
        if (r->next_take >= r->end_seq || r->stopping) {
            st = HFEED_END;
            break;
        }
        if (s->state == HFEED__SLOT_READY && s->seq == r->next_take) {
            s->state = HFEED__SLOT_BORROWED;
            r->next_take++;
            *slot = s;
            break;
        }
        /* The slot still holds an older batch the consumer borrowed: waiting would never end. */
        if (s->state == HFEED__SLOT_BORROWED) {
            st = HFEED_E_BUSY;
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
    r->stopping = true;
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
        r->stopping = false;
        r->failed = false;
    }
    pthread_mutex_unlock(&r->mu);
    return st;
}
