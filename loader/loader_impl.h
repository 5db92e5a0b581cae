/* loader_impl: the loader's private header, shared by loader.c (the public API of a running
 * loader) and loader_open.c (building one, and freeing it); only loader*.c include it. It holds
 * the two structs behind the public handles and the few functions both halves call.
 *
 * Wiring: config -> catalog (files, datasets, checks) -> sampler (order) -> ring (slots) <-
 * reader (worker threads); the consumer takes slots from the ring through hfeed_loader_next().
 *
 * With a device (CUDA, or the fake one), the ring's slots are pinned staging memory and an upload
 * stage (upload.h) moves each batch into a second ring of device slots; the consumer then takes
 * from that one. `out` is whichever ring the consumer takes from. */
#ifndef HFEED_LOADER_IMPL_H
#define HFEED_LOADER_IMPL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "h5feed.h"
#include "prefetch.h"

struct hfeed_batch {
    struct hfeed_loader *loader;
    struct hfeed__slot *slot;
    atomic_uint holds; /* the borrower + exported tensors still alive (batch.h) */
};

struct hfeed_loader {
    struct hfeed__config *cfg;
    struct hfeed__catalog *cat;
    struct hfeed__sampler *sampler;
    struct hfeed__ring *ring; /* host slots, filled by the reader */
    struct hfeed__reader *reader;
    const struct hfeed__device_ops *dev_ops; /* host, cuda or fake (device.h) */
    struct hfeed__device *dev;
    struct hfeed__ring *dev_ring;   /* device slots; NULL on the CPU */
    struct hfeed__upload *upload;   /* NULL on the CPU */
    struct hfeed__ring *out;        /* the ring the consumer takes from: dev_ring or ring */
    struct hfeed__slot_memory host_mem, dev_mem;
    struct hfeed__transforms *xf; /* the fields' transforms; conversions point into it */
    struct hfeed_batch *batches; /* one public handle per slot of out */
    size_t slot_rows;  /* samples a slot holds: batch_size, or fewer when the rank has fewer */
    uint64_t *ahead;   /* slot_rows indices: a batch planned ahead for the caches (foresee) */
    uint64_t foreseen; /* the next batch whose chunks the caches have not been told of */
    uint64_t cache_bytes; /* the decoded-chunk caches' budget settled at open; 0: no field
                           * decodes chunks (hfeed_stats.cache_bytes) */
    hfeed_loader_info info;
    atomic_uint refs; /* 1 for the open handle + 1 per borrowed batch */
    bool closed;
    hfeed_status sticky;   /* the first worker error; every later next() returns it */
    struct hfeed__err err; /* last error text (hfeed_loader_errmsg) */
    struct hfeed__err sticky_err;
    uint64_t batches_out, samples_out, bytes_out, wait_ns;
};

/* Frees the loader and everything it holds, also a half-built one (open's failure path).
 * No thread may run: the stages are stopped or were never started. Defined in loader_open.c,
 * beside the steps it undoes. */
void hfeed__loader_destroy(struct hfeed_loader *l);

/* Starts the upload stage (if any), then the workers. On failure nothing runs.
 * Defined in loader.c, beside stopping them. */
hfeed_status hfeed__loader_start_stages(struct hfeed_loader *l, struct hfeed__err *err);

#endif
