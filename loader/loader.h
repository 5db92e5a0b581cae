/* loader: what other library modules (convert_job, roofline) may call on the loader besides the
 * public API: opening one from a config they parsed and adjusted themselves, applying the
 * environment's read path, and reading a field's scale/offset back. */
#ifndef HFEED_LOADER_H
#define HFEED_LOADER_H

#include "config.h"
#include "error.h"
#include "h5feed.h"

/* Builds a loader from a parsed config, which it takes over (also on failure), as
 * hfeed_loader_open() does after parsing. Returns and ownership as hfeed_loader_open(). */
hfeed_status hfeed__loader_open_config(struct hfeed__config *cfg, const struct hfeed__logger *log,
                                       hfeed_loader **out, struct hfeed__err *err);

/* Applies HFEED_READ_PATH to cfg as every open does: "hdf5" forces every read through H5Dread
 * for a whole run (to compare the two paths, or to rule the direct one out), "auto" lets the
 * direct path read; another value is ignored with a warning. Logs what it did. For modules that
 * open a catalog from a config without a loader (the roofline), so that they read the files the
 * way the loader will. */
void hfeed__loader_apply_env(struct hfeed__config *cfg, const struct hfeed__logger *log);

/* Field `field`'s scale and offset, one per feature column, when they are not the identity
 * (hfeed__transform_affine()); HFEED_OK with NULL pointers and n = 0 when they are.
 * Returns: HFEED_OK or HFEED_E_INVALID_ARG (NULL argument, field out of range).
 * Ownership: as hfeed_loader_get_field_stats(). Threads: any; fixed after open. */
hfeed_status hfeed__loader_get_field_affine(const hfeed_loader *l, size_t field,
                                            const double **scale, const double **offset, size_t *n);

#endif
