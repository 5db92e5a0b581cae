/* bench_roofline: how `h5feed bench --roofline` shows a run against the limits that
 * hfeed_roofline_measure() found before it: per field its path, limit, part of the limit's time
 * per sample and the run's share of its limit; overall the combined limit, the share, the field
 * that bounds the limit and the stage that bounds the run (hfeed_roofline_judge()'s rules).
 * Public API only, like every tool file. */
#ifndef HFEED_TOOLS_BENCH_ROOFLINE_H
#define HFEED_TOOLS_BENCH_ROOFLINE_H

#include "bench_report.h"

/* Prints `, "roofline": {...}` (a key of the one JSON object; keys in README.md, "The tool")
 * for run->roofline; nothing when it is NULL. */
void bench_roofline_print_json(const struct bench_run *run);

/* Prints the roofline block of the text report for run->roofline; nothing when it is NULL. */
void bench_roofline_print_text(const struct bench_run *run);

#endif
