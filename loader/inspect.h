/* inspect: what inspect.c (files, datasets, the report object) and inspect_fields.c (a config's
 * fields, the cost model, the warnings only a config gives) share. Nothing else includes it.
 *
 * A report is built on one thread by hfeed_report_create() and read-only afterwards. Strings are
 * owned by the entries; the public descriptors borrow them (filled in by the getters). */
#ifndef HFEED_INSPECT_H
#define HFEED_INSPECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "error.h"
#include "h5io.h"

/* One object of a file: a described dataset, or one skipped with a reason. */
struct hfeed__dset_entry {
    hfeed_dataset_desc d; /* string pointers are set by hfeed_report_get_dataset() */
    size_t file;          /* index into the report's files */
    char *path;
    char *skipped; /* NULL: described */
    char slow[160];
    char filter_names[HFEED_MAX_FILTERS][32];
    uint64_t row_bytes; /* stored bytes of one sample */
};

struct hfeed__warn_entry {
    hfeed_warning_kind kind;
    size_t file; /* SIZE_MAX: none */
    char *dataset;
    char *message;
};

struct hfeed_report {
    char **files; /* the FILE arguments, then the config's files; each file once */
    size_t nfiles;
    size_t *cfg_file; /* config file j (catalog order) is files[cfg_file[j]]; ncfg entries */
    struct hfeed__dset_entry *dsets;
    size_t ndsets, cap_dsets;
    struct hfeed__warn_entry *warns;
    size_t nwarns, cap_warns;
    struct hfeed__config *cfg; /* NULL without a config */
    /* With a config: the field datasets, src[k * ncfg + j] for field k in config file j. */
    struct hfeed__dset_entry *src;
    size_t ncfg; /* the config's files as the loader reads them, a file listed twice twice */
    hfeed_field_cost *fields; /* name and dataset borrowed from cfg */
    hfeed_report_info info;
};

/* Records a warning (message printf-style). Returns: HFEED_OK or HFEED_E_NOMEM. */
hfeed_status hfeed__inspect_warn(hfeed_report *r, hfeed_warning_kind kind, size_t file,
                                 const char *dataset, struct hfeed__err *err, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* Describes dataset `name` of file fi (opened as f) into e. With want_numeric, a dataset that
 * cannot be read is an error whose message names file and dataset; otherwise it is described as
 * skipped. Returns: HFEED_OK, that error, or HFEED_E_NOMEM. e is the caller's to free with
 * hfeed__inspect_entry_free(), also on failure. */
hfeed_status hfeed__inspect_describe(struct hfeed__h5file *f, size_t fi, const char *name,
                                     struct hfeed__dset_entry *e, bool want_numeric,
                                     struct hfeed__err *err);
void hfeed__inspect_entry_free(struct hfeed__dset_entry *e);

/* Allocates r->src and r->fields for r->cfg's fields and r->ncfg files.
 * Returns: HFEED_OK or HFEED_E_NOMEM. */
hfeed_status hfeed__inspect_fields_alloc(hfeed_report *r, struct hfeed__err *err);

/* Describes every field's dataset in config file j (report file fi, opened as f), and warns
 * about fields of different lengths unless an earlier config file j was the same file.
 * Returns: HFEED_OK; HFEED_E_DATASET or HFEED_E_TYPE (a field's dataset is missing or not
 * numeric; the message names file and dataset); HFEED_E_NOMEM. */
hfeed_status hfeed__inspect_fields_file(hfeed_report *r, struct hfeed__h5file *f, size_t fi,
                                        size_t j, struct hfeed__err *err);

/* After every file: runs the cost model and adds the warnings only a config gives.
 * Returns: HFEED_OK or HFEED_E_NOMEM. */
hfeed_status hfeed__inspect_fields_finish(hfeed_report *r, struct hfeed__err *err);

/* Frees r->src and r->fields. */
void hfeed__inspect_fields_free(hfeed_report *r);

#endif
