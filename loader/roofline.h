/* roofline: measures what this machine allows one field's read path, with nothing of the
 * loader's scheduling in it (the stage behind hfeed_roofline_measure(); h5feed.h says what the
 * limits mean). It uses the loader's own primitives: chunkio's pread of rows and chunks, the
 * codec, convert. roofline_report.c is the public facade (config, catalog, the report object)
 * and the verdict's arithmetic. */
#ifndef HFEED_ROOFLINE_H
#define HFEED_ROOFLINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "catalog.h"
#include "error.h"
#include "h5feed.h"

/* How to measure: the same for every field of one config. */
struct hfeed__roofline_plan {
    unsigned workers;    /* threads per measurement, >= 1 */
    uint64_t batch_size; /* rows per batch, >= 1 */
    bool random;         /* random rows (shuffle "global"); else sequential */
    uint64_t budget_ns;  /* one repetition stops after this long, or after one pass */
    uint64_t cap_bytes;  /* one pass reads at most this many stored bytes */
    unsigned reps;       /* repetitions per way, >= 1; the median is kept */
};

/* One field's measured limit (hfeed_roofline_field without the name). */
struct hfeed__roofline_limit {
    hfeed_roofline_path path;
    double limit, pread_limit, map_limit; /* samples/s; 0: not measured or refused */
    uint64_t samples;
};

/* Which way field f (of a catalog with nfiles files) is read: HDF5 when any file reads it with
 * H5Dread, DECODE when every file decodes its chunks, the plan's rows (SEQ_PREAD, RAND_PREAD)
 * when none does, MIXED otherwise. Pure. */
hfeed_roofline_path hfeed__roofline_kind(const struct hfeed__field *f, size_t nfiles, bool random);

/* Measures field k of c by plan p into *out: the better of pread and mapping for rows, the
 * pipeline for decoded chunks; nothing for HDF5 and MIXED (a zero limit).
 * Returns: HFEED_OK; HFEED_E_READ (a read, decode or mapped address failed; the message names
 * file, dataset and chunk); HFEED_E_RANGE (a value does not fit an integer dtype);
 * HFEED_E_THREAD; HFEED_E_NOMEM.
 * Threads: the caller's, plus p->workers threads it starts and joins per repetition. c is only
 * read. */
hfeed_status hfeed__roofline_measure_field(const struct hfeed__catalog *c, size_t k,
                                           const struct hfeed__roofline_plan *p,
                                           struct hfeed__roofline_limit *out,
                                           struct hfeed__err *err);

/* The median of v[0..n) (n >= 1; the upper one of the middle two for even n); sorts v. Pure. */
double hfeed__roofline_median(double *v, size_t n);

#endif
