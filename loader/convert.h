/* convert: stored element type and byte order -> output dtype, in one pass, into a caller's
 * buffer. Pure: no threads, no allocation, no HDF5.
 *
 * Rules: float -> float rounds to nearest even (the C cast; numpy's astype); integer -> float is
 * the C cast; integer -> integer must fit, or the run fails with HFEED_E_RANGE and the index of
 * the first value that did not; float -> integer is refused when planning. Source NaNs are
 * counted, and so are finite source values that became +-inf in a narrower float type.
 *
 * Transforms: a conversion may carry a per-column affine transform (struct hfeed__affine), for
 * the fields' "normalize"/"scale"/"offset" keys. Each element is then decoded to float64 (exact
 * for every stored type but integers beyond 2^53), transformed in float64, and rounded once to
 * the float output dtype; still one pass, block by block through an L1-sized scratch. */
#ifndef HFEED_CONVERT_H
#define HFEED_CONVERT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "types.h"

/* y = (x - center[j]) / divide[j] * scale[j] + offset[j], in float64, where j is the element's
 * feature column: its index within the sample (C order), i.e. element index % cols. The four
 * arrays hold cols values each and are borrowed (they must outlive every conversion using them).
 * With center 0, divide 1, scale 1 and offset 0 the result is x itself, exactly. */
struct hfeed__affine {
    size_t cols;
    const double *center, *divide, *scale, *offset;
};

struct hfeed__conv {
    struct hfeed__type src;
    hfeed_dtype dst;
    bool copy; /* bytes pass unchanged: the conversion is a memcpy */
    const struct hfeed__affine *affine; /* NULL: no transform */
};

struct hfeed__conv_counts {
    uint64_t nan;      /* NaN source values */
    uint64_t overflow; /* finite source values that became +-inf */
};

/* The output dtype that "native" means for a stored type (its own type, native byte order). */
hfeed_dtype hfeed__conv_native(struct hfeed__type src);

/* Plans a conversion from src to dst.
 * Returns: HFEED_OK, or HFEED_E_TYPE when it is not allowed (float -> integer) or src is not a
 * supported type; the message says what and why (the caller adds file and dataset). */
hfeed_status hfeed__conv_plan(struct hfeed__type src, hfeed_dtype dst, struct hfeed__conv *out,
                              struct hfeed__err *err);

/* Adds a transform to a planned conversion (whose dst must be float32 or float64); a NULL a
 * removes it. Conversions with a transform are never copies. */
void hfeed__conv_set_affine(struct hfeed__conv *c, const struct hfeed__affine *a);

/* Converts n elements from src (stored bytes) to dst (output dtype, native order); the buffers
 * do not overlap. Adds to *counts (may be NULL). With a transform, src must start at a
 * sample's first element (column 0), and NaN/overflow are counted on the transformed values.
 * Returns: HFEED_OK, or HFEED_E_RANGE with *bad set to the index of the first element that does
 * not fit an integer output (elements before it were converted). */
hfeed_status hfeed__conv_run(const struct hfeed__conv *c, const void *src, void *dst, size_t n,
                             struct hfeed__conv_counts *counts, size_t *bad);

/* Writes the stored element at elem (one element of type src, in its byte order) as a decimal
 * number into buf: "-2147483649", "4294967295", "1e+300", for a message that names the value
 * that did not fit (hfeed__conv_run's HFEED_E_RANGE: elem = src + *bad * src.size).
 * Returns: buf. */
const char *hfeed__conv_value_text(struct hfeed__type src, const void *elem, char *buf, size_t len);

/* Counts source NaNs in n elements already converted by a copy conversion (c->copy): for data
 * that was read straight into place and never went through hfeed__conv_run(). */
void hfeed__conv_count(const struct hfeed__conv *c, const void *data, size_t n,
                       struct hfeed__conv_counts *counts);

/* IEEE binary16 bits -> float (exact), for convert's own use and for tests' reference casts. */
float hfeed__half_to_float(uint16_t h);

#endif
