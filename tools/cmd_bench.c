/* h5feed bench: opens a loader from a config, takes every batch of every configured epoch, and
 * reports the speed, the memory, the counters, and a digest of everything delivered.
 *
 * The digest lets anyone check the delivered bytes independently (tests/tool/ does, with numpy):
 * it is the sum modulo 2^64, over all delivered samples, of the 64-bit FNV-1a hash of the
 * sample's output bytes: its fields concatenated in config order, each in C order, each element
 * little-endian. A sum does not depend on the order of the samples, so every shuffle mode and
 * worker count of one dataset gives the same digest per epoch.
 *
 * The hashing runs on the consumer thread between hfeed_loader_next() and
 * hfeed_batch_release(), so it is part of the measured time (as a training step would be); its
 * own time is reported as digest_seconds.
 *
 * For people (issue #5): a progress line on a terminal, the stage times and the share of next()
 * calls that found a batch ready, a warm or cold page cache (--cold), and a per-second series
 * written as CSV (--csv) or drawn as SVG (--plot). The reports and files are bench_report.c's;
 * this file parses the options, runs the loader and measures.
 *
 * Issue #11: --roofline measures the machine's limits (hfeed_roofline_measure()) before the
 * loader opens and before --cold evicts, and bench_roofline.c reports the run against them. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_report.h"
#include "cmd.h"

#define CMD "bench"

#define FNV_OFFSET_BASIS UINT64_C(0xcbf29ce484222325)
#define FNV_PRIME UINT64_C(0x100000001b3)

/* A next() that returns within this counts as having found its batch ready. */
#define READY_NS UINT64_C(50000)

static void print_help(FILE *out)
{
    fprintf(
        out,
        "Usage: h5feed bench CONFIG [--json] [--verbose] [--no-digest] [--csv FILE]\n"
        "                    [--plot FILE.svg] [--compute-ms N] [--roofline]\n"
        "                    [--cold DATAFILE...]\n"
        "\n"
        "Opens a loader from the JSON config CONFIG (see configs/README.md), takes every batch\n"
        "of every configured epoch, and reports samples, batches, wall seconds from open to\n"
        "the end, samples/s, output GB/s (10^9 bytes/s), memory, workers, device, NaN and\n"
        "overflow counts, and a digest of the delivered data: the sum modulo 2^64 over all\n"
        "samples of the FNV-1a 64 hash of each sample's output bytes (fields in config\n"
        "order, C order, little-endian), as 16 hex digits.\n"
        "It also reports where the time went: read, decode and convert seconds (summed over\n"
        "the workers), the seconds the consumer waited in hfeed_loader_next(), and the ready\n"
        "share: the fraction of next() calls that returned a batch within 50 us (1.0: the\n"
        "workers always kept ahead), and the starved share: the fraction of the time from\n"
        "the first batch to the end that the consumer spent waiting in next(). On a device,\n"
        "the upload stage's host-to-device GB/s over the copies' device time. While it runs, a "
        "progress line (percent, samples/s,\n"
        "GB/s, ETA) is redrawn on stderr when stderr is a terminal, and never otherwise.\n"
        "\n"
        "Options:\n"
        "  --json          print exactly one JSON object on stdout instead of the text report\n"
        "  --verbose       also print the library's informational log lines on stderr (which\n"
        "                  device \"auto\" chose and why, the chunk cache size, reads that go\n"
        "                  through HDF5); warnings are printed always\n"
        "  --no-digest     skip the digest (\"digest\": null): time the loader alone, as a\n"
        "                  consumer that does not hash would see it\n"
        "  --csv FILE      write the throughput, one row a second: t_seconds, samples\n"
        "                  (cumulative), samples_per_s and gb_per_s (over that second)\n"
        "  --plot FILE     write an SVG: samples/s over time, and a bar per stage\n"
        "  --cold          evict the DATAFILEs named after CONFIG from the page cache before\n"
        "                  opening (fsync, then posix_fadvise DONTNEED), so the run reads\n"
        "                  from storage. Name every HDF5 file of the config (a shell glob\n"
        "                  will do): the tool reads no config itself. Reports say \"warm\":\n"
        "                  false with --cold, true without\n"
        "  --compute-ms N  emulate a training step: hold each batch N ms (a sleep, no CPU\n"
        "                  used) before releasing it, as DLIO does; the report's starved\n"
        "                  share is then the time the step waited for data, 1 - DLIO's AU\n"
        "  --roofline      before the run, measure what this machine allows each field on\n"
        "                  the config's files with its workers and batch size (rows by pread\n"
        "                  and from a mapping, sequential, or random for shuffle \"global\";\n"
        "                  compressed chunks read, decoded and converted; fields read with\n"
        "                  H5Dread: no limit); then report per field its limit in samples/s,\n"
        "                  its part of the limit's time per sample and the run's share of\n"
        "                  it; the combined limit 1 / sum(1 / limit), the run's share of it,\n"
        "                  and what bounds the run: \"machine\" (share >= 0.8), \"loader:\n"
        "                  read|decode|convert\" (busy workers, their largest stage),\n"
        "                  \"consumer\" (idle workers, consumer seldom waited) or \"loader:\n"
        "                  hand-off\" (idle workers, waiting consumer). It reads the files\n"
        "                  (warming the page cache) before --cold evicts them\n"
        "  --help          show this help\n"
        "\n"
        "Exit status: 0 success, 1 data or runtime failure, 2 usage or config error.\n");
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * UINT64_C(1000000000) + (uint64_t)ts.tv_nsec;
}

static int host_is_big_endian(void)
{
    const uint16_t one = 1;
    unsigned char first;
    memcpy(&first, &one, 1);
    return first == 0;
}

static uint64_t fnv1a(uint64_t h, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= FNV_PRIME;
    }
    return h;
}

/* FNV-1a over elements of `size` bytes stored in host (big-endian) order, fed little-endian. */
static uint64_t fnv1a_swapped(uint64_t h, const unsigned char *p, size_t n, size_t size)
{
    for (size_t e = 0; e + size <= n; e += size) {
        for (size_t b = size; b > 0; b--) {
            h ^= p[e + b - 1];
            h *= FNV_PRIME;
        }
    }
    return h;
}

/* Adds the hashes of the batch's samples to run->digest. tensors holds every field.
 * FNV-1a is one long dependency chain per sample (a multiply per byte), so the hashes of
 * LANES samples are advanced together: the chains are independent and the CPU overlaps them. */
#define LANES 4
static void digest_batch(struct bench_run *run, const hfeed_tensor *tensors, size_t fields,
                         size_t samples, int swap)
{
    uint64_t sum = 0;
    size_t r = 0;
    if (!swap) {
        for (; r + LANES <= samples; r += LANES) {
            uint64_t h[LANES];
            for (int k = 0; k < LANES; k++) {
                h[k] = FNV_OFFSET_BASIS;
            }
            for (size_t f = 0; f < fields; f++) {
                const size_t row_bytes = tensors[f].nbytes / samples;
                const unsigned char *p = (const unsigned char *)tensors[f].data + r * row_bytes;
                for (size_t i = 0; i < row_bytes; i++) {
                    for (int k = 0; k < LANES; k++) {
                        h[k] ^= p[(size_t)k * row_bytes + i];
                        h[k] *= FNV_PRIME;
                    }
                }
            }
            for (int k = 0; k < LANES; k++) {
                sum += h[k]; /* unsigned: wraps modulo 2^64 */
            }
        }
    }
    for (; r < samples; r++) {
        uint64_t h = FNV_OFFSET_BASIS;
        for (size_t f = 0; f < fields; f++) {
            const hfeed_tensor *t = &tensors[f];
            const size_t row_bytes = t->nbytes / samples;
            const unsigned char *row = (const unsigned char *)t->data + r * row_bytes;
            if (swap) {
                h = fnv1a_swapped(h, row, row_bytes, hfeed_dtype_size(t->dtype));
            } else {
                h = fnv1a(h, row, row_bytes);
            }
        }
        sum += h;
    }
    run->digest += sum;
}

/* Reads the batch's tensors, checks they agree with the batch info, and digests them.
 * Returns: HFEED_OK, or an error with a message in msg. */
static hfeed_status take_batch(struct bench_run *run, hfeed_batch *b, hfeed_tensor *tensors,
                               int swap, char *msg, size_t msg_len)
{
    hfeed_batch_info bi;
    hfeed_status st = hfeed_batch_get_info(b, &bi);
    if (st != HFEED_OK) {
        snprintf(msg, msg_len, "hfeed_batch_get_info failed");
        return st;
    }
    if (bi.fields != run->info.fields || bi.samples == 0) {
        snprintf(msg, msg_len,
                 "batch %" PRIu64 " of epoch %" PRIu64 " has %zu fields and %zu "
                 "samples; the loader has %zu fields",
                 bi.index, bi.epoch, bi.fields, bi.samples, run->info.fields);
        return HFEED_E_READ;
    }
    int on_host = 1;
    for (size_t f = 0; f < bi.fields; f++) {
        st = hfeed_batch_get_tensor(b, f, &tensors[f]);
        if (st != HFEED_OK) {
            snprintf(msg, msg_len, "hfeed_batch_get_tensor(%zu) failed", f);
            return st;
        }
        const hfeed_tensor *t = &tensors[f];
        if (t->ndim < 1 || t->shape[0] != (int64_t)bi.samples || t->nbytes % bi.samples != 0) {
            snprintf(msg, msg_len,
                     "field \"%s\" of batch %" PRIu64 " has shape[0] %" PRId64
                     " and %zu bytes for %zu samples",
                     t->name, bi.index, t->shape[0], t->nbytes, bi.samples);
            return HFEED_E_READ;
        }
        if (t->device != HFEED_DEVICE_CPU && t->device != HFEED_DEVICE_FAKE) {
            on_host = 0; /* device memory: the tool (host code, public API only) cannot read it */
        }
        run->bytes_out += t->nbytes;
    }
    if (on_host && !run->no_digest) {
        const uint64_t t0 = now_ns();
        digest_batch(run, tensors, bi.fields, bi.samples, swap);
        run->digest_ns += now_ns() - t0;
    } else {
        run->digest_valid = 0;
    }
    run->samples += bi.samples;
    run->batches++;
    return HFEED_OK;
}

/* Checks what was delivered against what the loader promised at open and what it counted.
 * Returns: 0 when they agree; -1 with a message otherwise. */
static int check_counts(const struct bench_run *run, char *msg, size_t msg_len)
{
    const hfeed_loader_info *in = &run->info;
    const uint64_t want_samples = in->samples_per_epoch * in->epochs;
    const uint64_t want_batches = in->batches_per_epoch * in->epochs;
    if (run->samples != want_samples || run->batches != want_batches) {
        snprintf(msg, msg_len,
                 "delivered %" PRIu64 " samples in %" PRIu64 " batches; the "
                 "loader promised %" PRIu64 " in %" PRIu64,
                 run->samples, run->batches, want_samples, want_batches);
        return -1;
    }
    const hfeed_stats *s = &run->stats;
    if (s->samples != run->samples || s->batches != run->batches ||
        s->bytes_out != run->bytes_out) {
        snprintf(msg, msg_len,
                 "the loader's stats count %" PRIu64 " samples, %" PRIu64 " batches, %" PRIu64
                 " bytes; delivered %" PRIu64 ", %" PRIu64 ", %" PRIu64,
                 s->samples, s->batches, s->bytes_out, run->samples, run->batches, run->bytes_out);
        return -1;
    }
    return 0;
}

/* --cold: writes back and drops the cached pages of each file, so the loader reads from storage.
 * posix_fadvise(DONTNEED) drops clean pages only, hence the fsync first.
 * Returns: 0, or -1 with a message naming the file. */
static int evict_files(const char *const *files, int count, char *msg, size_t msg_len)
{
    for (int i = 0; i < count; i++) {
        const int fd = open(files[i], O_RDONLY);
        if (fd < 0) {
            snprintf(msg, msg_len, "--cold: cannot open %s: %s", files[i], strerror(errno));
            return -1;
        }
        int err = fsync(fd) == 0 ? 0 : errno;
        if (err == 0) {
            err = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        }
        close(fd);
        if (err != 0) {
            snprintf(msg, msg_len, "--cold: cannot evict %s from the page cache: %s", files[i],
                     strerror(err));
            return -1;
        }
    }
    return 0;
}

/* --compute-ms: a training step holds the batch for ms milliseconds while the accelerator
 * works, without using a CPU core (DLIO emulates its steps the same way), so the workers keep
 * both cores. */
static void emulate_step(double ms)
{
    if (ms <= 0.0) {
        return;
    }
    const double ns = ms * 1e6;
    struct timespec ts = {(time_t)(ns / 1e9), (long)(ns - (double)(time_t)(ns / 1e9) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Opens the loader, takes every batch, closes it.
 * Returns: HFEED_OK, or an error with a message in msg. */
static hfeed_status run_loader(const char *config, struct bench_run *run, char *msg, size_t msg_len)
{
    hfeed_loader *l = NULL;
    hfeed_tensor *tensors = NULL;
    struct bench_progress progress;
    bench_progress_init(&progress);
    const int swap = host_is_big_endian();
    const uint64_t t0 = now_ns();
    hfeed_status st = hfeed_loader_open(config, hfeed_cmd_log, &run->verbose, &l, msg, msg_len);
    if (st != HFEED_OK) {
        return st;
    }
    run->open_seconds = (double)(now_ns() - t0) * 1e-9;
    st = hfeed_loader_get_info(l, &run->info);
    if (st != HFEED_OK) {
        snprintf(msg, msg_len, "hfeed_loader_get_info failed: %s", hfeed_loader_errmsg(l));
        goto done;
    }
    tensors = calloc(run->info.fields > 0 ? run->info.fields : 1, sizeof *tensors);
    if (tensors == NULL) {
        st = HFEED_E_NOMEM;
        snprintf(msg, msg_len, "no memory for %zu tensor descriptors", run->info.fields);
        goto done;
    }
    const uint64_t total = run->info.samples_per_epoch * run->info.epochs;
    uint64_t steady_t0 = 0;
    for (;;) {
        hfeed_batch *b = NULL;
        const uint64_t asked = now_ns();
        st = hfeed_loader_next(l, &b);
        const uint64_t got = now_ns();
        if (st == HFEED_END) {
            if (run->batches > 0) {
                run->steady_wait_ns += got - asked;
                run->steady_seconds = (double)(got - steady_t0) * 1e-9;
            }
            break;
        }
        if (st != HFEED_OK) {
            snprintf(msg, msg_len, "%s", hfeed_loader_errmsg(l));
            goto done;
        }
        if (run->batches == 0) {
            run->first_batch_seconds = (double)(got - t0) * 1e-9;
            steady_t0 = got;
        } else {
            run->steady_wait_ns += got - asked;
        }
        if (got - asked < READY_NS) {
            run->ready_batches++;
        }
        st = take_batch(run, b, tensors, swap, msg, msg_len);
        emulate_step(run->compute_ms);
        hfeed_batch_release(b);
        if (st != HFEED_OK) {
            goto done;
        }
        const double t = (double)(now_ns() - t0) * 1e-9;
        if (bench_series_tick(&run->series, t, run->samples, run->bytes_out) != 0) {
            st = HFEED_E_NOMEM;
            snprintf(msg, msg_len, "no memory for the throughput series");
            goto done;
        }
        bench_progress_update(&progress, t, run->samples, total, run->bytes_out);
    }
    run->seconds = (double)(now_ns() - t0) * 1e-9;
    if (bench_series_finish(&run->series, run->seconds, run->samples, run->bytes_out) != 0) {
        st = HFEED_E_NOMEM;
        snprintf(msg, msg_len, "no memory for the throughput series");
        goto done;
    }
    st = hfeed_loader_get_stats(l, &run->stats);
    if (st != HFEED_OK) {
        snprintf(msg, msg_len, "hfeed_loader_get_stats failed: %s", hfeed_loader_errmsg(l));
        goto done;
    }
done:
    bench_progress_clear(&progress);
    free(tensors);
    const hfeed_status close_st = hfeed_loader_close(l);
    if (st == HFEED_OK && close_st != HFEED_OK) {
        st = close_st;
        snprintf(msg, msg_len, "hfeed_loader_close failed");
    }
    return st;
}

/* --roofline: measures the config's limits into run->roofline (the caller destroys it), before
 * the loader opens, so that the run finds the page cache as --cold or the measurement left it.
 * Returns: HFEED_OK, or an error with a message in msg. */
static hfeed_status measure_roofline(const char *config, struct bench_run *run, char *msg,
                                     size_t msg_len)
{
    hfeed_roofline *r = NULL;
    const hfeed_status st =
        hfeed_roofline_measure(config, 0.0, hfeed_cmd_log, &run->verbose, &r, msg, msg_len);
    run->roofline = r;
    return st;
}

/* Writes the --csv and --plot files. Returns: 0, or -1 with a message. */
static int write_files(const char *config, const struct bench_run *run, const char *csv,
                       const char *plot, char *msg, size_t msg_len)
{
    if (csv != NULL && bench_write_csv(csv, &run->series, msg, msg_len) != 0) {
        return -1;
    }
    if (plot != NULL) {
        const hfeed_stats *s = &run->stats;
        const struct bench_stages stages = {
            .read = (double)s->read_ns * 1e-9,
            .decode = (double)s->decode_ns * 1e-9,
            .convert = (double)s->convert_ns * 1e-9,
            .wait = (double)s->wait_ns * 1e-9,
            .upload = (double)s->upload_ns * 1e-9,
            .seconds = run->seconds,
            .workers = run->info.workers,
            .warm = run->warm,
        };
        if (bench_write_svg(plot, config, &run->series, &stages, msg, msg_len) != 0) {
            return -1;
        }
    }
    return 0;
}

int hfeed_cmd_bench(int argc, char **argv)
{
    const char *config = NULL;
    const char *csv = NULL;
    const char *plot = NULL;
    int json = 0;
    int no_digest = 0;
    int verbose = 0;
    int cold = 0;
    int roofline = 0;
    double compute_ms = 0.0;
    const char **cold_files = calloc((size_t)argc, sizeof *cold_files); /* the DATAFILEs */
    int cold_count = 0;
    int rc = HFEED_EXIT_USAGE;
    if (cold_files == NULL) {
        fprintf(stderr, "h5feed " CMD ": out of memory\n");
        return HFEED_EXIT_FAILURE;
    }
    for (int i = 1; i < argc;) {
        const char *arg = argv[i];
        const char *value = NULL;
        /* hfeed_cmd_option() moves i past what it matched; every other branch moves it here. */
        const int m_csv = hfeed_cmd_option(argc, argv, &i, "--csv", &value, CMD);
        const int m_plot = m_csv != 0 ? 0 : hfeed_cmd_option(argc, argv, &i, "--plot", &value, CMD);
        const int m_ms = m_csv != 0 || m_plot != 0
                             ? 0
                             : hfeed_cmd_option(argc, argv, &i, "--compute-ms", &value, CMD);
        if (m_csv < 0 || m_plot < 0 || m_ms < 0) {
            goto out;
        } else if (m_csv > 0) {
            csv = value;
            continue;
        } else if (m_plot > 0) {
            plot = value;
            continue;
        } else if (m_ms > 0) {
            char *end = NULL;
            compute_ms = strtod(value, &end);
            if (end == value || *end != '\0' || !(compute_ms >= 0.0) || compute_ms > 3.6e6) {
                fprintf(stderr, "h5feed " CMD ": --compute-ms: expected milliseconds from 0 to "
                                "3600000, got '%s'\n", value);
                goto out;
            }
            continue;
        }
        i++;
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            print_help(stdout);
            rc = HFEED_EXIT_OK;
            goto out;
        } else if (strcmp(arg, "--json") == 0) {
            json = 1;
        } else if (strcmp(arg, "--verbose") == 0 || strcmp(arg, "-v") == 0) {
            verbose = 1;
        } else if (strcmp(arg, "--no-digest") == 0) {
            no_digest = 1;
        } else if (strcmp(arg, "--cold") == 0) {
            cold = 1;
        } else if (strcmp(arg, "--roofline") == 0) {
            roofline = 1;
        } else if (arg[0] == '-' && arg[1] != '\0') {
            fprintf(stderr, "h5feed " CMD ": unknown option '%s' (see h5feed bench --help)\n", arg);
            goto out;
        } else if (config == NULL) {
            config = arg;
        } else {
            cold_files[cold_count++] = arg;
        }
    }
    if (config == NULL) {
        fprintf(stderr, "h5feed " CMD ": missing CONFIG (usage: h5feed bench CONFIG [--json])\n");
        goto out;
    }
    if (cold_count > 0 && !cold) {
        fprintf(stderr,
                "h5feed " CMD ": one CONFIG only, got '%s' and '%s' (data files to "
                "evict go with --cold)\n",
                config, cold_files[0]);
        goto out;
    }
    if (cold && cold_count == 0) {
        fprintf(stderr, "h5feed " CMD ": --cold needs the config's data files after CONFIG "
                        "(h5feed bench CONFIG --cold data/*.h5)\n");
        goto out;
    }

    struct bench_run run;
    memset(&run, 0, sizeof run);
    run.no_digest = no_digest;
    run.digest_valid = !no_digest;
    run.warm = !cold;
    run.compute_ms = compute_ms;
    run.verbose = verbose;
    char msg[HFEED_ERRBUF_SIZE];
    msg[0] = '\0';
    if (roofline) {
        const hfeed_status rst = measure_roofline(config, &run, msg, sizeof msg);
        if (rst != HFEED_OK) {
            fprintf(stderr, "h5feed " CMD ": %s: --roofline: %s\n", hfeed_strerror((int)rst), msg);
            rc = hfeed_cmd_open_exit_code(rst, config);
            goto done;
        }
    }
    if (cold && evict_files(cold_files, cold_count, msg, sizeof msg) != 0) {
        fprintf(stderr, "h5feed " CMD ": %s: %s\n", hfeed_strerror(HFEED_E_FILE), msg);
        rc = HFEED_EXIT_FAILURE;
        goto done;
    }
    const hfeed_status st = run_loader(config, &run, msg, sizeof msg);
    if (st != HFEED_OK) {
        fprintf(stderr, "h5feed " CMD ": %s: %s\n", hfeed_strerror((int)st), msg);
        rc = hfeed_cmd_open_exit_code(st, config);
    } else if (check_counts(&run, msg, sizeof msg) != 0) {
        fprintf(stderr, "h5feed " CMD ": inconsistent run: %s\n", msg);
        rc = HFEED_EXIT_FAILURE;
    } else if (write_files(config, &run, csv, plot, msg, sizeof msg) != 0) {
        fprintf(stderr, "h5feed " CMD ": %s: %s\n", hfeed_strerror(HFEED_E_FILE), msg);
        rc = HFEED_EXIT_FAILURE;
    } else {
        if (json) {
            bench_print_json(config, &run);
        } else {
            bench_print_text(config, &run);
        }
        rc = fflush(stdout) == 0 ? HFEED_EXIT_OK : HFEED_EXIT_FAILURE;
    }
done:
    bench_series_free(&run.series);
    hfeed_roofline_destroy(run.roofline);
out:
    free(cold_files);
    return rc;
}
