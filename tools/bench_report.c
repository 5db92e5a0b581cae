/* bench_report: the text and JSON reports, the progress line, the per-second series, and its
 * CSV and SVG files for `h5feed bench` (see bench_report.h). The SVG is written with fprintf:
 * no plotting library. */
#include "bench_report.h"
#include "bench_roofline.h"
#include "progress.h"

#include "cmd.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- series ---- */

static int series_push(struct bench_series *s, double t, uint64_t samples, uint64_t bytes)
{
    if (s->count == s->cap) {
        const size_t cap = s->cap > 0 ? s->cap * 2 : 64;
        struct bench_point *p = realloc(s->points, cap * sizeof *p);
        if (p == NULL) {
            return -1;
        }
        s->points = p;
        s->cap = cap;
    }
    s->points[s->count++] = (struct bench_point){t, samples, bytes};
    return 0;
}

int bench_series_tick(struct bench_series *s, double t, uint64_t samples, uint64_t bytes)
{
    if (s->next_t <= 0.0) {
        s->next_t = 1.0;
    }
    if (t < s->next_t) {
        return 0;
    }
    s->next_t = floor(t) + 1.0;
    return series_push(s, t, samples, bytes);
}

int bench_series_finish(struct bench_series *s, double t, uint64_t samples, uint64_t bytes)
{
    if (s->count > 0) {
        struct bench_point *last = &s->points[s->count - 1];
        if (t - last->t < 0.5) {
            if (s->count == 1 || t - s->points[s->count - 2].t > 0.0) {
                *last = (struct bench_point){t, samples, bytes};
                return 0;
            }
        }
    }
    return series_push(s, t, samples, bytes);
}

void bench_series_free(struct bench_series *s)
{
    free(s->points);
    memset(s, 0, sizeof *s);
}

/* The rates over the interval that ends at point i. */
static void point_rates(const struct bench_series *s, size_t i, double *sps, double *gbps)
{
    const struct bench_point *p = &s->points[i];
    const struct bench_point zero = {0.0, 0, 0};
    const struct bench_point *q = i > 0 ? &s->points[i - 1] : &zero;
    const double dt = p->t - q->t;
    *sps = dt > 0.0 ? (double)(p->samples - q->samples) / dt : 0.0;
    *gbps = dt > 0.0 ? (double)(p->bytes - q->bytes) / dt * 1e-9 : 0.0;
}

/* ---- the report ---- */

static void device_name(const hfeed_loader_info *in, char *out, size_t out_len)
{
    if (in->device == HFEED_DEVICE_CPU) {
        snprintf(out, out_len, "cpu");
    } else if (in->device == HFEED_DEVICE_CUDA) {
        snprintf(out, out_len, "cuda:%d", in->device_index);
    } else if (in->device == HFEED_DEVICE_FAKE) {
        snprintf(out, out_len, "fake (simulated uploads)");
    } else {
        snprintf(out, out_len, "unknown(%d)", (int)in->device);
    }
}

static double per_second(double amount, double seconds)
{
    return seconds > 0.0 ? amount / seconds : 0.0;
}

/* The share of batches whose next() found them ready (returned within READY_NS). */
static double ready_share(const struct bench_run *run)
{
    return run->batches > 0 ? (double)run->ready_batches / (double)run->batches : 0.0;
}

/* The share of the steady phase (first batch to end) the consumer spent blocked in next(). */
static double starved_share(const struct bench_run *run)
{
    return run->steady_seconds > 0.0 ? (double)run->steady_wait_ns * 1e-9 / run->steady_seconds
                                     : 0.0;
}

/* Host-to-device GB/s over the device time the copies took; 0 without uploads. */
static double upload_gbps(const hfeed_stats *s)
{
    return s->upload_ns > 0 ? (double)s->upload_bytes / (double)s->upload_ns : 0.0;
}

void bench_print_json(const char *config, const struct bench_run *run)
{
    const hfeed_loader_info *in = &run->info;
    const hfeed_stats *s = &run->stats;
    char device[32];
    device_name(in, device, sizeof device);
    printf("{\"config\": ");
    hfeed_cmd_json_string(config);
    printf(", \"version\": \"%s\"", hfeed_version_string());
    printf(", \"samples\": %" PRIu64 ", \"batches\": %" PRIu64 ", \"epochs\": %" PRIu64,
           run->samples, run->batches, in->epochs);
    printf(", \"seconds\": %.6f, \"samples_per_s\": %.1f, \"bytes_out\": %" PRIu64
           ", \"gb_per_s\": %.6f",
           run->seconds, per_second((double)run->samples, run->seconds), run->bytes_out,
           per_second((double)run->bytes_out, run->seconds) * 1e-9);
    if (run->digest_valid) {
        printf(", \"digest\": \"%016" PRIx64 "\"", run->digest);
    } else {
        printf(", \"digest\": null");
    }
    printf(", \"digest_seconds\": %.6f", (double)run->digest_ns * 1e-9);
    printf(", \"open_seconds\": %.6f, \"first_batch_seconds\": %.6f, \"steady_seconds\": %.6f",
           run->open_seconds, run->first_batch_seconds, run->steady_seconds);
    printf(", \"total_samples\": %" PRIu64 ", \"samples_per_epoch\": %" PRIu64
           ", \"padded_per_epoch\": %" PRIu64 ", \"dropped_per_epoch\": %" PRIu64
           ", \"batches_per_epoch\": %" PRIu64 ", \"batch_size\": %zu, \"fields\": %zu",
           in->total_samples, in->samples_per_epoch, in->padded_per_epoch, in->dropped_per_epoch,
           in->batches_per_epoch, in->batch_size, in->fields);
    printf(", \"rank\": %u, \"world_size\": %u, \"workers\": %u, \"slots\": %u"
           ", \"slot_bytes\": %zu, \"memory_bytes\": %zu",
           in->rank, in->world_size, in->workers, in->slots, in->slot_bytes, in->memory_bytes);
    printf(", \"device\": ");
    hfeed_cmd_json_string(device);
    printf(", \"hdf5_threadsafe\": %s", in->hdf5_threadsafe ? "true" : "false");
    printf(", \"nan_values\": %" PRIu64 ", \"overflow_values\": %" PRIu64
           ", \"fallback_reads\": %" PRIu64,
           s->nan_values, s->overflow_values, s->fallback_reads);
    printf(", \"mapped_rows\": %" PRIu64, s->mapped_rows);
    printf(", \"chunk_decodes\": %" PRIu64 ", \"cache_hits\": %" PRIu64 ", \"read_ahead\": %" PRIu64
           ", \"cache_bytes\": %" PRIu64,
           s->chunk_decodes, s->cache_hits, s->read_ahead, s->cache_bytes);
    printf(", \"read_seconds\": %.6f, \"decode_seconds\": %.6f, \"convert_seconds\": %.6f"
           ", \"wait_seconds\": %.6f",
           (double)s->read_ns * 1e-9, (double)s->decode_ns * 1e-9, (double)s->convert_ns * 1e-9,
           (double)s->wait_ns * 1e-9);
    printf(", \"upload_bytes\": %" PRIu64 ", \"upload_seconds\": %.6f, \"upload_gb_per_s\": %.6f",
           s->upload_bytes, (double)s->upload_ns * 1e-9, upload_gbps(s));
    printf(", \"upload_span_seconds\": %.6f", (double)s->upload_span_ns * 1e-9);
    printf(", \"compute_ms\": %.3f, \"starved_share\": %.6f", run->compute_ms,
           starved_share(run));
    printf(", \"ready_share\": %.6f, \"warm\": %s", ready_share(run),
           run->warm ? "true" : "false");
    bench_roofline_print_json(run);
    printf("}\n");
}

void bench_print_text(const char *config, const struct bench_run *run)
{
    const hfeed_loader_info *in = &run->info;
    const hfeed_stats *s = &run->stats;
    char device[32];
    device_name(in, device, sizeof device);
    char digest[20];
    if (run->digest_valid) {
        snprintf(digest, sizeof digest, "%016" PRIx64, run->digest);
    } else {
        snprintf(digest, sizeof digest, run->no_digest ? "n/a (--no-digest)" : "n/a (device)");
    }
    const double sps = per_second((double)run->samples, run->seconds);
    const double gbps = per_second((double)run->bytes_out, run->seconds) * 1e-9;

    printf("h5feed bench %s (h5feed %s)\n", config, hfeed_version_string());
    printf("  samples     %" PRIu64 " (%" PRIu64 " per epoch x %" PRIu64 " epochs; %" PRIu64
           " padded, %" PRIu64 " dropped per epoch; %" PRIu64 " in the files)\n",
           run->samples, in->samples_per_epoch, in->epochs, in->padded_per_epoch,
           in->dropped_per_epoch, in->total_samples);
    printf("  batches     %" PRIu64 " (batch size %zu, %zu fields, rank %u of %u)\n", run->batches,
           in->batch_size, in->fields, in->rank, in->world_size);
    printf("  seconds     %.3f (wall, open to end)\n", run->seconds);
    printf("  throughput  %.0f samples/s, %.3f GB/s out (%" PRIu64 " bytes)\n", sps, gbps,
           run->bytes_out);
    printf("  memory      %u slots x %zu bytes = %zu bytes of slots; %zu bytes allocated at open\n",
           in->slots, in->slot_bytes, (size_t)in->slots * in->slot_bytes, in->memory_bytes);
    if (s->cache_bytes > 0) {
        printf("  chunk cache %.0f MiB budget for decoded chunks (cache_mb; --verbose says why)\n",
               (double)s->cache_bytes / 1048576.0);
    }
    printf("  workers     %u; device %s; HDF5 thread-safe: %s\n", in->workers, device,
           in->hdf5_threadsafe ? "yes" : "no");
    printf("  values      %" PRIu64 " NaN, %" PRIu64 " overflowed to inf\n", s->nan_values,
           s->overflow_values);
    printf("  work        read %.3f s, decode %.3f s, convert %.3f s (summed over workers)\n",
           (double)s->read_ns * 1e-9, (double)s->decode_ns * 1e-9, (double)s->convert_ns * 1e-9);
    printf("  consumer    waited %.3f s in hfeed_loader_next, hashed %.3f s for the digest\n",
           (double)s->wait_ns * 1e-9, (double)run->digest_ns * 1e-9);
    printf("  queue       %.1f%% of next() calls found a batch ready (returned within 50 us)\n",
           100.0 * ready_share(run));
    if (s->upload_bytes > 0) {
        printf("  upload      %.3f GB/s host to device (%" PRIu64 " bytes in %.3f s of copy "
               "time)\n",
               upload_gbps(s), s->upload_bytes, (double)s->upload_ns * 1e-9);
    }
    printf("  starved     %.1f%% of the time after the first batch, the consumer waited for data",
           100.0 * starved_share(run));
    if (run->compute_ms > 0.0) {
        printf(" (step emulated: %.3f ms per batch)", run->compute_ms);
    }
    printf("\n");
    printf("  page cache  %s\n", run->warm ? "warm (files as the OS had them cached)"
                                           : "cold (--cold evicted the files before open)");
    printf("  reads       %" PRIu64 " chunks decoded, %" PRIu64 " chunk cache hits, %" PRIu64
           " reads through H5Dread, %" PRIu64 " batch fields read ahead (not cached), %" PRIu64
           " rows from the mapping\n",
           s->chunk_decodes, s->cache_hits, s->fallback_reads, s->read_ahead, s->mapped_rows);
    printf("  digest      %s\n", digest);
    bench_roofline_print_text(run);
    printf("%" PRIu64 " samples in %" PRIu64 " batches in %.3f s: %.0f samples/s, %.3f GB/s, "
           "digest %s\n",
           run->samples, run->batches, run->seconds, sps, gbps, digest);
}

/* ---- progress line ---- */

void bench_progress_init(struct bench_progress *p)
{
    p->on = isatty(STDERR_FILENO) == 1;
    p->last_t = -1.0;
    p->width = 0;
    p->started = 0;
    p->known = 0;
}

void bench_progress_update(struct bench_progress *p, double t, uint64_t samples, uint64_t total,
                           uint64_t bytes)
{
    if (!p->on) {
        return;
    }
    if (!p->started) {
        p->started = 1;
        p->t0 = t;
        p->samples0 = samples;
        p->bytes0 = bytes;
    }
    const double span = t - p->t0;
    double sps = 0.0, eta_s = 0.0;
    const int known = hfeed_cmd_eta(span, samples - p->samples0, samples, total, &sps, &eta_s);
    /* Redraw 5 times a second, and at once when the rate becomes known. */
    if (p->last_t >= 0.0 && t - p->last_t < 0.2 && !(known && !p->known)) {
        return;
    }
    p->last_t = t;
    p->known = known;
    const double pct = total > 0 ? 100.0 * (double)samples / (double)total : 100.0;
    char rate[64] = "";
    char eta[48] = "";
    if (known) {
        char d[32];
        snprintf(rate, sizeof rate, "  %.0f samples/s  %.3f GB/s", sps,
                 (double)(bytes - p->bytes0) / span * 1e-9);
        snprintf(eta, sizeof eta, "  ETA %s", hfeed_cmd_duration(eta_s, d, sizeof d));
    }
    char line[200];
    int n = snprintf(line, sizeof line, "bench: %5.1f%%  %" PRIu64 "/%" PRIu64 " samples%s%s", pct,
                     samples, total, rate, eta);
    if (n < 0) {
        return;
    }
    if (n >= (int)sizeof line) {
        n = (int)sizeof line - 1;
    }
    /* Pad with blanks over what a longer previous line left. */
    fprintf(stderr, "\r%s%*s", line, p->width > n ? p->width - n : 0, "");
    fflush(stderr);
    p->width = n;
}

void bench_progress_clear(struct bench_progress *p)
{
    if (p->on && p->width > 0) {
        fprintf(stderr, "\r%*s\r", p->width, "");
        fflush(stderr);
        p->width = 0;
    }
}

/* ---- CSV ---- */

static int close_checked(FILE *f, const char *path, char *msg, size_t msg_len)
{
    const int bad = ferror(f);
    if (fclose(f) != 0 || bad) {
        snprintf(msg, msg_len, "cannot write %s", path);
        return -1;
    }
    return 0;
}

static FILE *open_out(const char *path, char *msg, size_t msg_len)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        snprintf(msg, msg_len, "cannot create %s: %s", path, strerror(errno));
    }
    return f;
}

int bench_write_csv(const char *path, const struct bench_series *s, char *msg, size_t msg_len)
{
    FILE *f = open_out(path, msg, msg_len);
    if (f == NULL) {
        return -1;
    }
    fprintf(f, "t_seconds,samples,samples_per_s,gb_per_s\n");
    for (size_t i = 0; i < s->count; i++) {
        double sps, gbps;
        point_rates(s, i, &sps, &gbps);
        fprintf(f, "%.3f,%" PRIu64 ",%.1f,%.6f\n", s->points[i].t, s->points[i].samples, sps, gbps);
    }
    return close_checked(f, path, msg, msg_len);
}

/* ---- SVG ---- */

/* Plot geometry, in SVG user units. */
#define SVG_W 820
#define SVG_H 580
#define PLOT_L 90.0  /* left edge of the plot area */
#define PLOT_R 580.0 /* right edge; the legend sits to its right */
#define PLOT_T 60.0
#define PLOT_B 330.0
#define BAR_L 200.0 /* left edge of the stage bars */
#define BAR_W 380.0 /* width of the longest stage bar */

#define COLOR_LINE "#1f77b4"
#define COLOR_MEAN "#888888"

/* A "nice" step (1, 2 or 5 times a power of ten) that cuts [0, max] into about `ticks`. */
static double nice_step(double max, int ticks)
{
    if (!(max > 0.0)) {
        return 1.0;
    }
    const double raw = max / ticks;
    const double mag = pow(10.0, floor(log10(raw)));
    const double f = raw / mag;
    return (f <= 1.0 ? 1.0 : f <= 2.0 ? 2.0 : f <= 5.0 ? 5.0 : 10.0) * mag;
}

/* A tick label: 1500000 -> "1.5M", 0.25 -> "0.25". */
static void format_si(double v, char *out, size_t out_len)
{
    const double a = fabs(v);
    if (a >= 1e9) {
        snprintf(out, out_len, "%.4gG", v / 1e9);
    } else if (a >= 1e6) {
        snprintf(out, out_len, "%.4gM", v / 1e6);
    } else if (a >= 1e3) {
        snprintf(out, out_len, "%.4gk", v / 1e3);
    } else {
        snprintf(out, out_len, "%.4g", v);
    }
}

static void put_escaped(FILE *f, const char *s)
{
    for (; *s != '\0'; s++) {
        switch (*s) {
        case '&':
            fputs("&amp;", f);
            break;
        case '<':
            fputs("&lt;", f);
            break;
        case '>':
            fputs("&gt;", f);
            break;
        case '"':
            fputs("&quot;", f);
            break;
        default:
            if ((unsigned char)*s >= 0x20) {
                fputc(*s, f);
            }
        }
    }
}

static void svg_axes(FILE *f, double x_max, double x_step, double y_max, double y_step)
{
    char label[32];
    fprintf(f, "<g font-size=\"12\" fill=\"#333\">\n");
    for (int k = 0; k * y_step <= y_max * (1.0 + 1e-9); k++) {
        const double y = PLOT_B - (k * y_step) / y_max * (PLOT_B - PLOT_T);
        format_si(k * y_step, label, sizeof label);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>\n",
                PLOT_L, y, PLOT_R, y);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>\n",
                PLOT_L - 5, y, PLOT_L, y);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n", PLOT_L - 8, y + 4,
                label);
    }
    for (int k = 0; k * x_step <= x_max * (1.0 + 1e-9); k++) {
        const double x = PLOT_L + (k * x_step) / x_max * (PLOT_R - PLOT_L);
        format_si(k * x_step, label, sizeof label);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>\n", x,
                PLOT_B, x, PLOT_B + 5);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n", x, PLOT_B + 19,
                label);
    }
    fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>\n", PLOT_L,
            PLOT_B, PLOT_R, PLOT_B);
    fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>\n", PLOT_L,
            PLOT_T, PLOT_L, PLOT_B);
    fprintf(f, "</g>\n");
    fprintf(f,
            "<text x=\"%.1f\" y=\"%.1f\" font-size=\"13\" text-anchor=\"middle\">time (s)"
            "</text>\n",
            (PLOT_L + PLOT_R) / 2, PLOT_B + 40);
    fprintf(f,
            "<text x=\"%.1f\" y=\"%.1f\" font-size=\"13\" text-anchor=\"middle\" "
            "transform=\"rotate(-90 %.1f %.1f)\">samples/s</text>\n",
            24.0, (PLOT_T + PLOT_B) / 2, 24.0, (PLOT_T + PLOT_B) / 2);
}

/* The throughput as steps: each interval's rate held from its start to its end. */
static void svg_line(FILE *f, const struct bench_series *s, double x_max, double y_max)
{
    const double sx = (PLOT_R - PLOT_L) / x_max;
    const double sy = (PLOT_B - PLOT_T) / y_max;
    fprintf(f, "<polyline fill=\"none\" stroke=\"" COLOR_LINE "\" stroke-width=\"2\" "
               "stroke-linejoin=\"round\" points=\"");
    double t_prev = 0.0;
    for (size_t i = 0; i < s->count; i++) {
        double sps, gbps;
        point_rates(s, i, &sps, &gbps);
        const double y = PLOT_B - sps * sy;
        fprintf(f, "%.1f,%.1f %.1f,%.1f ", PLOT_L + t_prev * sx, y, PLOT_L + s->points[i].t * sx,
                y);
        t_prev = s->points[i].t;
    }
    fprintf(f, "\"/>\n");
}

static void svg_legend(FILE *f, double mean, double mean_y)
{
    char label[32];
    format_si(mean, label, sizeof label);
    const double x = PLOT_R + 20;
    fprintf(f, "<g font-size=\"12\">\n");
    fprintf(f,
            "<rect x=\"%.1f\" y=\"%.1f\" width=\"215\" height=\"62\" fill=\"white\" "
            "stroke=\"#ccc\"/>\n",
            x - 8, PLOT_T);
    fprintf(f,
            "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"" COLOR_LINE
            "\" stroke-width=\"2\"/>\n",
            x, PLOT_T + 20, x + 24, PLOT_T + 20);
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">samples/s, each second</text>\n", x + 30, PLOT_T + 24);
    fprintf(f,
            "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"" COLOR_MEAN
            "\" stroke-width=\"1.5\" stroke-dasharray=\"6 4\"/>\n",
            x, PLOT_T + 44, x + 24, PLOT_T + 44);
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">mean, %s samples/s</text>\n", x + 30, PLOT_T + 48,
            label);
    fprintf(f, "</g>\n");
    fprintf(f,
            "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"" COLOR_MEAN
            "\" stroke-width=\"1.5\" stroke-dasharray=\"6 4\"/>\n",
            PLOT_L, mean_y, PLOT_R, mean_y);
}

/* One horizontal bar per stage, scaled to the longest, with its seconds. */
static void svg_stages(FILE *f, const struct bench_stages *st)
{
    static const char *const colors[5] = {"#2ca02c", "#ff7f0e", "#9467bd", "#d62728", "#1f77b4"};
    const char *names[5] = {"read (workers)", "decode (workers)", "convert (workers)",
                            "consumer wait", "upload (device)"};
    const double secs[5] = {st->read, st->decode, st->convert, st->wait, st->upload};
    const int nbars = st->upload > 0.0 ? 5 : 4; /* no upload stage on the CPU */
    double max = 0.0;
    for (int k = 0; k < nbars; k++) {
        max = secs[k] > max ? secs[k] : max;
    }
    const double top = PLOT_B + 80;
    fprintf(f,
            "<text x=\"%.1f\" y=\"%.1f\" font-size=\"14\" font-weight=\"bold\">"
            "Where the time went</text>\n",
            PLOT_L - 60, top);
    fprintf(f,
            "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" fill=\"#555\">worker stages "
            "summed over %u worker%s; wait = consumer blocked in next(); wall %.3f s; %s "
            "page cache</text>\n",
            PLOT_L - 60, top + 17, st->workers, st->workers == 1 ? "" : "s", st->seconds,
            st->warm ? "warm" : "cold");
    fprintf(f, "<g font-size=\"12\">\n");
    for (int k = 0; k < nbars; k++) {
        const double y = top + 30 + k * 24;
        const double w = max > 0.0 ? secs[k] / max * BAR_W : 0.0;
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n", BAR_L - 10,
                y + 13, names[k]);
        fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"16\" fill=\"%s\"/>\n",
                BAR_L, y, w > 0.5 ? w : 0.5, colors[k]);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">%.3f s</text>\n", BAR_L + w + 6, y + 13, secs[k]);
    }
    fprintf(f, "</g>\n");
}

int bench_write_svg(const char *path, const char *config, const struct bench_series *s,
                    const struct bench_stages *stages, char *msg, size_t msg_len)
{
    double x_max = 0.0, y_top = 0.0;
    for (size_t i = 0; i < s->count; i++) {
        double sps, gbps;
        point_rates(s, i, &sps, &gbps);
        y_top = sps > y_top ? sps : y_top;
        x_max = s->points[i].t;
    }
    const double x_step = nice_step(x_max > 0.0 ? x_max : 1.0, 8);
    x_max = x_step * ceil((x_max > 0.0 ? x_max : 1.0) / x_step);
    const double y_step = nice_step(y_top > 0.0 ? y_top * 1.05 : 1.0, 5);
    const double y_max = y_step * ceil((y_top > 0.0 ? y_top * 1.05 : 1.0) / y_step);
    const struct bench_point *end = s->count > 0 ? &s->points[s->count - 1] : NULL;
    const double mean = end != NULL && end->t > 0.0 ? (double)end->samples / end->t : 0.0;

    FILE *f = open_out(path, msg, msg_len);
    if (f == NULL) {
        return -1;
    }
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            "viewBox=\"0 0 %d %d\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n",
            SVG_W, SVG_H, SVG_W, SVG_H);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    fprintf(f,
            "<text x=\"%d\" y=\"30\" font-size=\"16\" font-weight=\"bold\" "
            "text-anchor=\"middle\">h5feed bench: ",
            SVG_W / 2);
    put_escaped(f, config);
    fprintf(f, "</text>\n");
    svg_axes(f, x_max, x_step, y_max, y_step);
    svg_line(f, s, x_max, y_max);
    svg_legend(f, mean, PLOT_B - mean / y_max * (PLOT_B - PLOT_T));
    svg_stages(f, stages);
    fprintf(f, "</svg>\n");
    return close_checked(f, path, msg, msg_len);
}
