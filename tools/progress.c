/* progress: when a progress line may show a rate and an ETA (the rule is in progress.h). */
#include "progress.h"

#include <stdio.h>

int hfeed_cmd_eta(double span_s, uint64_t span_done, uint64_t done, uint64_t total, double *rate,
                  double *eta_s)
{
    if (!(span_s > 0.0) || span_done == 0) return 0;
    const int enough_time = span_s >= HFEED_CMD_ETA_MIN_SECONDS;
    const int enough_work = (double)span_done >= HFEED_CMD_ETA_MIN_SHARE * (double)total;
    if (!enough_time && !enough_work) return 0;
    *rate = (double)span_done / span_s;
    *eta_s = done < total ? (double)(total - done) / *rate : 0.0;
    return 1;
}

const char *hfeed_cmd_duration(double seconds, char *out, size_t out_len)
{
    const unsigned long s = seconds > 0.0 && seconds < 1e9 ? (unsigned long)(seconds + 0.5) : 0;
    if (s >= 3600) {
        snprintf(out, out_len, "%lu:%02lu:%02lu", s / 3600, s / 60 % 60, s % 60);
    } else {
        snprintf(out, out_len, "%lu:%02lu", s / 60, s % 60);
    }
    return out;
}
