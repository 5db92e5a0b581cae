/* progress: the rule behind the progress lines of `h5feed bench` and `h5feed convert`: when a
 * rate, and from it an ETA, may be shown. Pure functions, no I/O, so that the rule is tested
 * without timing anything (tests/unit/test_progress.c).
 *
 * The rule: the rate is measured from the first unit of work delivered (so the loader's open is
 * not in it) and is "known" only once it rests on a second of data or on 5% of the work; before
 * that no ETA is shown, because one from the first batch or two is noise (a 5-second run once
 * showed hours). */
#ifndef HFEED_TOOLS_PROGRESS_H
#define HFEED_TOOLS_PROGRESS_H

#include <stddef.h>
#include <stdint.h>

/* Seconds of measurement, or share of the work, before an ETA is shown. */
#define HFEED_CMD_ETA_MIN_SECONDS 1.0
#define HFEED_CMD_ETA_MIN_SHARE 0.05

/* Decides whether the rate is known. span_s and span_done: the seconds and the units of work
 * since measuring started (the first progress report); done and total: the work done so far and
 * in all (done >= span_done).
 * Returns: 1 with *rate (units per second) and *eta_s (seconds left at that rate) set, when
 * some work was done in a positive time and either span_s >= HFEED_CMD_ETA_MIN_SECONDS or
 * span_done >= HFEED_CMD_ETA_MIN_SHARE of total; else 0, leaving both untouched. */
int hfeed_cmd_eta(double span_s, uint64_t span_done, uint64_t done, uint64_t total, double *rate,
                  double *eta_s);

/* Writes a duration as "M:SS", or "H:MM:SS" from an hour on (rounded to the second; negative,
 * NaN or absurd values read 0:00) into out. Returns: out. */
const char *hfeed_cmd_duration(double seconds, char *out, size_t out_len);

#endif
