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
 * own time is reported as digest_seconds. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd.h"

#define CMD "bench"

#define FNV_OFFSET_BASIS UINT64_C(0xcbf29ce484222325)
#define FNV_PRIME UINT64_C(0x100000001b3)

struct run {
    uint64_t samples;
    uint64_t batches;
    uint64_t bytes_out;
    uint64_t digest;
    int digest_valid; /* 0 when a tensor was not in host memory, or with --no-digest */
    int no_digest;    /* --no-digest: measure the loader alone, as a peer without hashing */
    uint64_t digest_ns;
    double seconds; /* open to HFEED_END */
    double open_seconds;        /* hfeed_loader_open() */
    double first_batch_seconds; /* open to the first batch in hand */
    hfeed_loader_info info;
    hfeed_stats stats;
};

static void print_help(FILE *out)
{
    fprintf(
        out,
        "Usage: h5feed bench CONFIG [--json] [--no-digest]\n"
        "\n"
        "Opens a loader from the JSON config CONFIG (see configs/README.md), takes every batch\n"
        "of every configured epoch, and reports samples, batches, wall seconds from open to\n"
        "the end, samples/s, output GB/s (10^9 bytes/s), memory, workers, device, NaN and\n"
        "overflow counts, and a digest of the delivered data: the sum modulo 2^64 over all\n"
        "samples of the FNV-1a 64 hash of each sample's output bytes (fields in config\n"
        "order, C order, little-endian), as 16 hex digits.\n"
        "\n"
        "Options:\n"
        "  --json        print exactly one JSON object on stdout instead of the text report\n"
        "  --no-digest   skip the digest (\"digest\": null): time the loader alone, as a\n"
        "                consumer that does not hash would see it\n"
        "  --help        show this help\n"
        "\n"
        "Exit status: 0 success, 1 data or runtime failure, 2 usage or config error.\n");
}

static void log_line(void *user, int level, const char *msg)
{
    (void)user;
    (void)level;
    fprintf(stderr, "h5feed: %s\n", msg);
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
static void digest_batch(struct run *run, const hfeed_tensor *tensors, size_t fields,
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
static hfeed_status take_batch(struct run *run, hfeed_batch *b, hfeed_tensor *tensors, int swap,
                               char *msg, size_t msg_len)
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
        if (t->device != HFEED_DEVICE_CPU) {
            on_host = 0;
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
static int check_counts(const struct run *run, char *msg, size_t msg_len)
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

/* Opens the loader, takes every batch, closes it.
 * Returns: HFEED_OK, or an error with a message in msg. */
static hfeed_status run_loader(const char *config, struct run *run, char *msg, size_t msg_len)
{
    hfeed_loader *l = NULL;
    hfeed_tensor *tensors = NULL;
    const int swap = host_is_big_endian();
    const uint64_t t0 = now_ns();
    hfeed_status st = hfeed_loader_open(config, log_line, NULL, &l, msg, msg_len);
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
    for (;;) {
        hfeed_batch *b = NULL;
        st = hfeed_loader_next(l, &b);
        if (st == HFEED_END) {
            break;
        }
        if (st != HFEED_OK) {
            snprintf(msg, msg_len, "%s", hfeed_loader_errmsg(l));
            goto done;
        }
        if (run->batches == 0) {
            run->first_batch_seconds = (double)(now_ns() - t0) * 1e-9;
        }
        st = take_batch(run, b, tensors, swap, msg, msg_len);
        hfeed_batch_release(b);
        if (st != HFEED_OK) {
            goto done;
        }
    }
    run->seconds = (double)(now_ns() - t0) * 1e-9;
    st = hfeed_loader_get_stats(l, &run->stats);
    if (st != HFEED_OK) {
        snprintf(msg, msg_len, "hfeed_loader_get_stats failed: %s", hfeed_loader_errmsg(l));
        goto done;
    }
done:
    free(tensors);
    const hfeed_status close_st = hfeed_loader_close(l);
    if (st == HFEED_OK && close_st != HFEED_OK) {
        st = close_st;
        snprintf(msg, msg_len, "hfeed_loader_close failed");
    }
    return st;
}

static void device_name(const hfeed_loader_info *in, char *out, size_t out_len)
{
    if (in->device == HFEED_DEVICE_CPU) {
        snprintf(out, out_len, "cpu");
    } else if (in->device == HFEED_DEVICE_CUDA) {
        snprintf(out, out_len, "cuda:%d", in->device_index);
    } else {
        snprintf(out, out_len, "unknown(%d)", (int)in->device);
    }
}

static double per_second(double amount, double seconds)
{
    return seconds > 0.0 ? amount / seconds : 0.0;
}

static void print_json_string(const char *s)
{
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\') {
            printf("\\%c", *p);
        } else if (*p < 0x20) {
            printf("\\u%04x", *p);
        } else {
            putchar(*p);
        }
    }
    putchar('"');
}

static void print_json(const char *config, const struct run *run)
{
    const hfeed_loader_info *in = &run->info;
    const hfeed_stats *s = &run->stats;
    char device[32];
    device_name(in, device, sizeof device);
    printf("{\"config\": ");
    print_json_string(config);
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
    printf(", \"open_seconds\": %.6f, \"first_batch_seconds\": %.6f", run->open_seconds,
           run->first_batch_seconds);
    printf(", \"total_samples\": %" PRIu64 ", \"samples_per_epoch\": %" PRIu64
           ", \"padded_per_epoch\": %" PRIu64 ", \"dropped_per_epoch\": %" PRIu64
           ", \"batches_per_epoch\": %" PRIu64 ", \"batch_size\": %zu, \"fields\": %zu",
           in->total_samples, in->samples_per_epoch, in->padded_per_epoch, in->dropped_per_epoch,
           in->batches_per_epoch, in->batch_size, in->fields);
    printf(", \"rank\": %u, \"world_size\": %u, \"workers\": %u, \"slots\": %u"
           ", \"slot_bytes\": %zu, \"memory_bytes\": %zu",
           in->rank, in->world_size, in->workers, in->slots, in->slot_bytes, in->memory_bytes);
    printf(", \"device\": ");
    print_json_string(device);
    printf(", \"hdf5_threadsafe\": %s", in->hdf5_threadsafe ? "true" : "false");
    printf(", \"nan_values\": %" PRIu64 ", \"overflow_values\": %" PRIu64
           ", \"fallback_reads\": %" PRIu64,
           s->nan_values, s->overflow_values, s->fallback_reads);
    printf(", \"chunk_decodes\": %" PRIu64 ", \"cache_hits\": %" PRIu64, s->chunk_decodes,
           s->cache_hits);
    printf(", \"read_seconds\": %.6f, \"decode_seconds\": %.6f, \"convert_seconds\": %.6f"
           ", \"wait_seconds\": %.6f}\n",
           (double)s->read_ns * 1e-9, (double)s->decode_ns * 1e-9, (double)s->convert_ns * 1e-9,
           (double)s->wait_ns * 1e-9);
}

static void print_text(const char *config, const struct run *run)
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
    printf("  workers     %u; device %s; HDF5 thread-safe: %s\n", in->workers, device,
           in->hdf5_threadsafe ? "yes" : "no");
    printf("  values      %" PRIu64 " NaN, %" PRIu64 " overflowed to inf\n", s->nan_values,
           s->overflow_values);
    printf("  work        read %.3f s, decode %.3f s, convert %.3f s (summed over workers)\n",
           (double)s->read_ns * 1e-9, (double)s->decode_ns * 1e-9, (double)s->convert_ns * 1e-9);
    printf("  consumer    waited %.3f s in hfeed_loader_next, hashed %.3f s for the digest\n",
           (double)s->wait_ns * 1e-9, (double)run->digest_ns * 1e-9);
    printf("  reads       %" PRIu64 " chunks decoded, %" PRIu64 " chunk cache hits, %" PRIu64
           " reads through H5Dread\n",
           s->chunk_decodes, s->cache_hits, s->fallback_reads);
    printf("  digest      %s\n", digest);
    printf("%" PRIu64 " samples in %" PRIu64 " batches in %.3f s: %.0f samples/s, %.3f GB/s, "
           "digest %s\n",
           run->samples, run->batches, run->seconds, sps, gbps, digest);
}

int hfeed_cmd_bench(int argc, char **argv)
{
    const char *config = NULL;
    int json = 0;
    int no_digest = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            print_help(stdout);
            return HFEED_EXIT_OK;
        } else if (strcmp(arg, "--json") == 0) {
            json = 1;
        } else if (strcmp(arg, "--no-digest") == 0) {
            no_digest = 1;
        } else if (arg[0] == '-' && arg[1] != '\0') {
            fprintf(stderr, "h5feed " CMD ": unknown option '%s' (see h5feed bench --help)\n", arg);
            return HFEED_EXIT_USAGE;
        } else if (config != NULL) {
            fprintf(stderr, "h5feed " CMD ": one CONFIG only, got '%s' and '%s'\n", config, arg);
            return HFEED_EXIT_USAGE;
        } else {
            config = arg;
        }
    }
    if (config == NULL) {
        fprintf(stderr, "h5feed " CMD ": missing CONFIG (usage: h5feed bench CONFIG [--json])\n");
        return HFEED_EXIT_USAGE;
    }

    struct run run;
    memset(&run, 0, sizeof run);
    run.no_digest = no_digest;
    run.digest_valid = !no_digest;
    char msg[HFEED_ERRBUF_SIZE];
    msg[0] = '\0';
    const hfeed_status st = run_loader(config, &run, msg, sizeof msg);
    if (st != HFEED_OK) {
        fprintf(stderr, "h5feed " CMD ": %s: %s\n", hfeed_strerror((int)st), msg);
        return hfeed_cmd_exit_code(st);
    }
    if (check_counts(&run, msg, sizeof msg) != 0) {
        fprintf(stderr, "h5feed " CMD ": inconsistent run: %s\n", msg);
        return HFEED_EXIT_FAILURE;
    }
    if (json) {
        print_json(config, &run);
    } else {
        print_text(config, &run);
    }
    return fflush(stdout) == 0 ? HFEED_EXIT_OK : HFEED_EXIT_FAILURE;
}
