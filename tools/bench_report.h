/* bench_report: everything `h5feed bench` shows people: the text and JSON reports, the live
 * progress line on a terminal, the throughput series (one point a second), and the CSV and SVG
 * files written from it. cmd_bench.c runs the loader and fills struct bench_run. Plain stdio,
 * no library beyond libc; like every tool file, h5feed.h only. */
#ifndef HFEED_TOOLS_BENCH_REPORT_H
#define HFEED_TOOLS_BENCH_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include "h5feed.h"

/* Cumulative counts at time t (seconds since the loader began to open). */
struct bench_point {
    double t;
    uint64_t samples;
    uint64_t bytes;
};

/* The run's points, in time order; the first interval starts at (0, 0, 0). */
struct bench_series {
    struct bench_point *points;
    size_t count;
    size_t cap;
    double next_t; /* the whole second at which the next point is due */
};

/* Records the counts after a batch: a point at the first batch of each new second.
 * Returns: 0, or -1 when out of memory. */
int bench_series_tick(struct bench_series *s, double t, uint64_t samples, uint64_t bytes);

/* Records the end of the run. The rest after the last whole second becomes a point of its own
 * when it lasted 0.5 s or more; a shorter one is folded into the last point (so a tiny remainder
 * does not show as a spike). Returns: 0, or -1 when out of memory. */
int bench_series_finish(struct bench_series *s, double t, uint64_t samples, uint64_t bytes);

void bench_series_free(struct bench_series *s);

/* What one bench run delivered and measured; filled by cmd_bench.c, reported here. */
struct bench_run {
    uint64_t samples;
    uint64_t batches;
    uint64_t bytes_out;
    uint64_t digest;
    int digest_valid; /* 0 when a tensor was not in host memory, or with --no-digest */
    int no_digest;    /* --no-digest: measure the loader alone, as a peer without hashing */
    uint64_t digest_ns;
    double seconds;             /* open to HFEED_END */
    double open_seconds;        /* hfeed_loader_open() */
    double first_batch_seconds; /* open to the first batch in hand */
    uint64_t ready_batches;     /* batches whose next() returned within 50 us */
    int warm;                   /* 0 when --cold evicted the files before open */
    double compute_ms;          /* --compute-ms: emulated training step per batch, ms */
    int verbose;                /* --verbose: print the library's INFO log lines */
    double steady_seconds;      /* from the first batch in hand to the end */
    uint64_t steady_wait_ns;    /* of that, time blocked in hfeed_loader_next(): starved */
    struct bench_series series; /* cumulative counts, a point a second */
    hfeed_loader_info info;
    hfeed_stats stats;
    hfeed_roofline *roofline; /* --roofline: the limits measured before the run, or NULL */
};

/* Prints the run as exactly one JSON object on stdout (keys: README.md, "The tool"). */
void bench_print_json(const char *config, const struct bench_run *run);

/* Prints the run as the text report on stdout. */
void bench_print_text(const char *config, const struct bench_run *run);

/* The live progress line: on only when stderr is a terminal; redrawn with \r at most 5 times a
 * second; cleared before the report. */
struct bench_progress {
    int on;
    double last_t; /* when it was last drawn, seconds; negative before the first draw */
    int width;     /* characters drawn last, to blank them */
    double t0;     /* the first update: where the rate is measured from (progress.h) */
    uint64_t samples0, bytes0;
    int started;
    int known; /* the last line drawn had the rate and ETA */
};

/* Sets p up: on when stderr is a terminal. */
void bench_progress_init(struct bench_progress *p);

/* Redraws the line if 0.2 s passed since the last draw. total = samples the run will deliver.
 * The rates and the ETA are measured from the first update (the first batch), and the ETA is
 * shown only once hfeed_cmd_eta() says the rate is known. */
void bench_progress_update(struct bench_progress *p, double t, uint64_t samples, uint64_t total,
                           uint64_t bytes);

/* Blanks the line (nothing when off). */
void bench_progress_clear(struct bench_progress *p);

/* Where the time went, for the plot's stage block. Worker stages are summed over workers. */
struct bench_stages {
    double read, decode, convert; /* seconds, summed over workers */
    double wait;                  /* seconds the consumer blocked in hfeed_loader_next() */
    double upload;                /* device seconds of host-to-device copies; 0 on the CPU */
    double seconds;               /* the run's wall time */
    unsigned workers;
    int warm;
};

/* Writes the series as CSV: a header `t_seconds,samples,samples_per_s,gb_per_s` and one row per
 * point (cumulative samples; the rates over the interval since the previous point).
 * Returns: 0, or -1 with a message in msg. */
int bench_write_csv(const char *path, const struct bench_series *s, char *msg, size_t msg_len);

/* Writes an SVG: samples/s over time as a step line with axes, ticks, title (naming `config`)
 * and legend, and a bar per stage below. Returns: 0, or -1 with a message in msg. */
int bench_write_svg(const char *path, const char *config, const struct bench_series *s,
                    const struct bench_stages *stages, char *msg, size_t msg_len);

#endif
