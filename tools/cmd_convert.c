/* h5feed convert: batch preprocessing through the loader's pipeline with hfeed_convert().
 *
 * The library does the work and guarantees the atomic rename; this file adds what a person at
 * a terminal needs: a progress bar on stderr (only when stderr is a terminal), a summary line
 * on stdout,
 * and SIGINT/SIGTERM handling. A signal only sets a flag (async-signal-safe); the progress
 * callback sees it after the current batch and cancels, hfeed_convert() removes its temporary
 * file, and the command then re-raises the signal with its default action, so the shell sees
 * the usual "killed by SIGINT" status. A second signal kills at once (SA_RESETHAND): the
 * temporary file may then stay behind, but never under the output name. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmd.h"
#include "progress.h"

#define CMD "convert"

static volatile sig_atomic_t got_signal;

static void on_signal(int sig)
{
    got_signal = sig;
}

static void print_help(FILE *out)
{
    fprintf(out,
            "Usage: h5feed convert CONFIG [--quiet] [--verbose]\n"
            "\n"
            "Runs the config's pipeline once (epoch 0 of this process's shard: order, casts,\n"
            "normalize/scale/offset) and writes it to the HDF5 file named by the config's\n"
            "\"output\" section: one dataset per field at the root, named after the field.\n"
            "Standardised fields carry float64 attributes \"mean\" and \"std\", fields with a\n"
            "scale or offset \"scale\" and \"offset\" (one value per feature column), so that\n"
            "(y - offset) / scale * std + mean gives the input back. The file is written as\n"
            "OUTPUT.tmp.PID and renamed to OUTPUT only when complete.\n"
            "\n"
            "Rechunking: the output stores whole samples per chunk, output.chunk_rows of them\n"
            "(default: about 1 MiB). Convert a file whose chunks split each sample (h5py's\n"
            "chunks=True on images) or cost too much to decode per batch with \"shuffle\":\n"
            "\"none\", \"dtype\": \"native\" fields and \"output\": {\"chunk_rows\": N}; h5feed\n"
            "inspect --config prints that config where it pays.\n"
            "\n"
            "Options:\n"
            "  --quiet     no progress bar and no summary line\n"
            "  --verbose   also print the library's informational log lines on stderr (which\n"
            "              device \"auto\" chose, the chunk cache size); warnings are printed\n"
            "              always\n"
            "  --help      show this help\n"
            "\n"
            "The progress bar is drawn on stderr when it is a terminal, with the rate and the\n"
            "ETA once a second of data or 5%% of the samples measure the rate. SIGINT or\n"
            "SIGTERM stops after the current batch and removes the temporary file.\n"
            "\n"
            "Exit status: 0 success, 1 data or runtime failure, 2 usage or config error;\n"
            "killed by the signal after SIGINT/SIGTERM.\n");
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

struct progress {
    int bar;     /* draw a bar: stderr is a terminal */
    double last; /* when the bar was last drawn */
    int drawn;
    int verbose; /* --verbose: print the library's INFO log lines too */
    int started; /* t0/done0 hold the first report, where the rate is measured from */
    double t0;
    uint64_t done0;
};

/* The loader's log lines (hfeed_convert has one user pointer for progress and log). */
static void log_line(void *user, int level, const char *msg)
{
    const struct progress *p = user;
    hfeed_cmd_log((void *)&p->verbose, level, msg);
}

static int on_progress(void *user, uint64_t done, uint64_t total)
{
    struct progress *p = user;
    if (got_signal != 0) return 1;
    const double t = now_s();
    if (!p->started) {
        p->started = 1;
        p->t0 = t;
        p->done0 = done;
    }
    if (!p->bar || (done < total && t - p->last < 0.1)) return 0;
    enum { WIDTH = 40 };
    const double frac = total > 0 ? (double)done / (double)total : 1.0;
    const int fill = (int)(frac * WIDTH);
    char bar[WIDTH + 1];
    for (int i = 0; i < WIDTH; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[WIDTH] = '\0';
    /* Rate and ETA only once the rate is known (progress.h); blanks keep the line's width. */
    char tail[96] = "";
    double rate = 0.0, eta_s = 0.0;
    if (hfeed_cmd_eta(t - p->t0, done - p->done0, done, total, &rate, &eta_s)) {
        char d[32];
        snprintf(tail, sizeof tail, "  %.0f samples/s  ETA %s", rate,
                 hfeed_cmd_duration(eta_s, d, sizeof d));
    }
    fprintf(stderr, "\r[%s] %5.1f%% %llu/%llu samples%-40s", bar, 100.0 * frac,
            (unsigned long long)done, (unsigned long long)total, tail);
    p->last = t;
    p->drawn = done < total; /* a finished bar ends its line, before any log line */
    if (!p->drawn) fputc('\n', stderr);
    fflush(stderr);
    return 0;
}

int hfeed_cmd_convert(int argc, char **argv)
{
    const char *config = NULL;
    int quiet = 0;
    int verbose = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            print_help(stdout);
            return HFEED_EXIT_OK;
        }
        if (strcmp(argv[i], "--quiet") == 0) {
            quiet = 1;
        } else if (strcmp(argv[i], "--verbose") == 0 || strcmp(argv[i], "-v") == 0) {
            verbose = 1;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "h5feed " CMD ": unknown option '%s'\n(see h5feed convert --help)\n",
                    argv[i]);
            return HFEED_EXIT_USAGE;
        } else if (config == NULL) {
            config = argv[i];
        } else {
            fprintf(stderr,
                    "h5feed " CMD ": one CONFIG expected, got also '%s'\n"
                    "(see h5feed convert --help)\n",
                    argv[i]);
            return HFEED_EXIT_USAGE;
        }
    }
    if (config == NULL) {
        fprintf(stderr, "h5feed " CMD ": CONFIG missing\n(see h5feed convert --help)\n");
        return HFEED_EXIT_USAGE;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = (int)(SA_RESTART | SA_RESETHAND); /* restart reads; a 2nd signal kills */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    struct progress p = {!quiet && isatty(STDERR_FILENO), 0.0, 0, verbose, 0, 0.0, 0};
    hfeed_convert_result res;
    char msg[HFEED_ERRBUF_SIZE] = "";
    const hfeed_status st = hfeed_convert(config, on_progress, log_line, &p, &res, msg, sizeof msg);
    if (p.drawn) fputc('\n', stderr);
    if (st == HFEED_E_CANCELED && got_signal != 0) {
        const int sig = got_signal;
        fprintf(stderr, "h5feed " CMD ": interrupted by %s; no output written\n",
                sig == SIGINT ? "SIGINT" : "SIGTERM");
        fflush(stderr);
        signal(sig, SIG_DFL);
        raise(sig);
        return HFEED_EXIT_FAILURE; /* not reached unless the signal is blocked */
    }
    if (st != HFEED_OK) {
        fprintf(stderr, "h5feed " CMD ": %s: %s\n", hfeed_strerror((int)st), msg);
        return hfeed_cmd_open_exit_code(st, config);
    }
    if (!quiet) {
        const double mb = (double)res.bytes / 1e6;
        printf("h5feed " CMD ": %llu samples, %zu datasets, %.1f MB in %.2f s (%.1f MB/s)\n",
               (unsigned long long)res.samples, res.fields, mb, res.seconds,
               res.seconds > 0 ? mb / res.seconds : 0.0);
    }
    return HFEED_EXIT_OK;
}
