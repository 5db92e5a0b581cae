/* loader: what other library modules (convert_job) may call on the loader besides the public
 * API: opening one from a config they parsed and adjusted themselves. */
#ifndef HFEED_LOADER_H
#define HFEED_LOADER_H

#include "config.h"
#include "error.h"
#include "h5feed.h"

/* Builds a loader from a parsed config, which it takes over (also on failure), as
 * hfeed_loader_open() does after parsing. Returns and ownership as hfeed_loader_open(). */
hfeed_status hfeed__loader_open_config(struct hfeed__config *cfg, const struct hfeed__logger *log,
                                       hfeed_loader **out, struct hfeed__err *err);

#endif
