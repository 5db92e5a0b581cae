/* transform: the fields' "normalize" / "scale" / "offset" keys, turned into the per-column affine
 * transforms that convert applies (struct hfeed__affine), and the first pass that standardisation
 * needs.
 *
 * At open, after the catalog: for each field with "normalize": "standard", every sample of every
 * file of the config (all of them, not this rank's shard, so that every rank normalises the same
 * way) is read in blocks of about 1 MiB through h5io, converted to float64, and each feature
 * column's population mean and standard deviation (ddof 0, numpy's default) are computed with a
 * two-pass mean/M2 per block merged across blocks (Chan et al.), on values shifted by the first
 * sample, which keeps full precision for data with a large offset (1e8 + noise of 1e-3). A column whose std is 0 (constant) is divided by 1 instead, and the field is named
 * once in a warning; a column with NaN stays NaN (and is warned about). Then every source of a
 * transformed field gets the field's transform (hfeed__conv_set_affine()).
 *
 * Threads: the opening thread only, before the workers start; afterwards read-only. */
#ifndef HFEED_TRANSFORM_H
#define HFEED_TRANSFORM_H

#include <stdbool.h>
#include <stddef.h>

#include "catalog.h"
#include "config.h"
#include "convert.h"
#include "error.h"

struct hfeed__transforms;

/* Builds the transforms of cfg's fields and sets them on cat's conversions. Reads the data of
 * standardised fields once (see above).
 * Returns: HFEED_OK (also when no field has a transform: *out then holds none); HFEED_E_CONFIG
 * when a scale/offset array does not have one value per feature column; HFEED_E_READ,
 * HFEED_E_NOMEM.
 * Ownership: *out is the caller's; destroy it after the last conversion that uses cat. */
hfeed_status hfeed__transform_open(const struct hfeed__config *cfg, struct hfeed__catalog *cat,
                                   const struct hfeed__logger *log, struct hfeed__transforms **out,
                                   struct hfeed__err *err);

/* The mean and std (the divisor used: 1 for constant columns) of field k's columns when it is
 * standardised; false (and NULL, 0) when it is not. t may be NULL. */
bool hfeed__transform_stats(const struct hfeed__transforms *t, size_t k, const double **mean,
                            const double **std, size_t *n);

/* Field k's scale and offset, one value per feature column (a single configured number is
 * spread over every column, as the conversion applies it), when they are not the identity:
 * some column's scale is not 1 or its offset not 0. Otherwise false (and NULL, 0), also for a
 * field that is only standardised. t may be NULL. */
bool hfeed__transform_affine(const struct hfeed__transforms *t, size_t k, const double **scale,
                             const double **offset, size_t *n);

/* Frees; NULL is fine. */
void hfeed__transform_destroy(struct hfeed__transforms *t);

#endif
