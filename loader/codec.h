/* codec: pure decoders for the HDF5 chunk filters the direct path handles: deflate (with
 * libdeflate), shuffle and fletcher32. No I/O, no threads; each worker owns one codec (a
 * libdeflate decompressor is not shareable), allocated once at open.
 *
 * A chunk is decoded by undoing its filter pipeline in reverse write order. A filter whose bit
 * is set in the chunk's filter mask was skipped when the chunk was written and is not undone.
 * Every failure (bad checksum, corrupt or short deflate stream, wrong decoded size) is an error;
 * nothing is ever returned half-decoded. */
#ifndef HFEED_CODEC_H
#define HFEED_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* HDF5's filter identifiers, as stored in the file's filter pipeline message. */
#define HFEED__FILTER_DEFLATE 1
#define HFEED__FILTER_SHUFFLE 2
#define HFEED__FILTER_FLETCHER32 3

#define HFEED__MAX_FILTERS 8

/* A dataset's filter pipeline, in the order filters were applied when writing. */
struct hfeed__pipeline {
    unsigned nfilters;
    int ids[HFEED__MAX_FILTERS];
    size_t elem_size; /* element size in bytes: the shuffle filter's unit */
};

/* Whether every filter of p is one the codec decodes (deflate, shuffle, fletcher32). */
bool hfeed__codec_supports(const struct hfeed__pipeline *p);

struct hfeed__codec;

/* Returns: HFEED_OK or HFEED_E_NOMEM. Ownership: the caller's; hfeed__codec_destroy(). */
hfeed_status hfeed__codec_create(struct hfeed__codec **out, struct hfeed__err *err);
void hfeed__codec_destroy(struct hfeed__codec *c);

/* Decodes one stored chunk. in/in_len: the chunk as stored (may be modified: it is used as
 * scratch). out: chunk_bytes of room, receives exactly chunk_bytes decoded bytes. tmp:
 * chunk_bytes of scratch. filter_mask: the chunk's mask (bit i set = filter i skipped).
 * Returns: HFEED_OK, or HFEED_E_READ with a message saying which filter failed and why (the
 * caller adds file, dataset and chunk). */
hfeed_status hfeed__codec_decode(struct hfeed__codec *c, const struct hfeed__pipeline *p,
                                 unsigned filter_mask, unsigned char *in, size_t in_len,
                                 unsigned char *out, unsigned char *tmp, size_t chunk_bytes,
                                 struct hfeed__err *err);

/* HDF5's fletcher32 checksum of len bytes (as H5_checksum_fletcher32 computes it). */
uint32_t hfeed__fletcher32(const unsigned char *data, size_t len);

#endif
