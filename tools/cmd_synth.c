/* h5feed synth: writes a synthetic dataset with hfeed_synth_write(), for demos, benchmarks and
 * tests. The values are a pure function of (seed, row, element), documented in h5feed.h
 * (hfeed_synth_value), so any reader can check them independently. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cmd.h"

#define CMD "synth"

static void print_help(FILE *out)
{
    fprintf(
        out,
        "Usage: h5feed synth --out FILE [options]\n"
        "\n"
        "Writes a new HDF5 file with /features (rows x SHAPE, DTYPE) and /labels (rows, int64,\n"
        "row %% CLASSES). Feature values are hfeed_synth_value(seed, row, per_row, element):\n"
        "uniform in [-1, 1); integer dtypes store floor((value + 1) * 50).\n"
        "\n"
        "Options:\n"
        "  --out FILE         the file to write (required)\n"
        "  --rows N           samples (default 131072)\n"
        "  --shape DIMS       sample shape, e.g. 1024 or 32x32x3 (default 1024)\n"
        "  --dtype NAME       stored type of /features: float16, float32, float64, int8,\n"
        "                     int16, int32, int64, uint8, uint16, uint32, uint64\n"
        "                     (default float64)\n"
        "  --chunk-rows N     rows per chunk; 0 = contiguous layout (default 256)\n"
        "  --gzip LEVEL       deflate level 1-9; 0 = none (default 0; chunked only)\n"
        "  --shuffle          HDF5 shuffle filter (chunked only)\n"
        "  --fletcher32       HDF5 fletcher32 checksum (chunked only)\n"
        "  --big-endian       store /features big-endian\n"
        "  --seed N           seed of the values (default 0)\n"
        "  --labels CLASSES   label classes; 0 = write no /labels (default 10)\n"
        "  --help             show this help\n");
}

static int usage_error(const char *what, const char *value)
{
    if (value != NULL) {
        fprintf(stderr, "h5feed " CMD ": %s: '%s'\n", what, value);
    } else {
        fprintf(stderr, "h5feed " CMD ": %s\n", what);
    }
    fprintf(stderr, "(see h5feed synth --help)\n");
    return HFEED_EXIT_USAGE;
}

/* "32x32x3" -> {32, 32, 3}; "" -> a scalar per row. Every dimension must be >= 1. */
static int parse_shape(const char *text, hfeed_synth_spec *spec)
{
    spec->sample_ndim = 0;
    if (text[0] == '\0') {
        return 0;
    }
    char buf[256];
    if (strlen(text) >= sizeof buf) {
        return -1;
    }
    strcpy(buf, text);
    char *save = NULL;
    for (char *tok = strtok_r(buf, "x", &save); tok != NULL; tok = strtok_r(NULL, "x", &save)) {
        uint64_t dim = 0;
        if (spec->sample_ndim == HFEED_MAX_SAMPLE_DIMS || hfeed_cmd_parse_u64(tok, &dim) != 0 ||
            dim == 0) {
            return -1;
        }
        spec->sample_shape[spec->sample_ndim] = dim;
        spec->sample_ndim++;
    }
    /* strtok_r skips empty tokens, so "4xx3" and "x4" would pass without this check. */
    const size_t len = strlen(text);
    if (text[0] == 'x' || text[len - 1] == 'x' || strstr(text, "xx") != NULL) {
        return -1;
    }
    return spec->sample_ndim > 0 ? 0 : -1;
}

static hfeed_dtype parse_dtype(const char *name)
{
    /* The names come from the library, so a dtype it adds is accepted without a change here. */
    for (int d = 1; d < 64; d++) {
        if (hfeed_dtype_size((hfeed_dtype)d) != 0 &&
            strcmp(hfeed_dtype_name((hfeed_dtype)d), name) == 0) {
            return (hfeed_dtype)d;
        }
    }
    return HFEED_DTYPE_INVALID;
}

static void format_shape(const hfeed_synth_spec *spec, char *out, size_t out_len)
{
    size_t used = 0;
    int n = snprintf(out, out_len, "%" PRIu64, spec->rows);
    used = n > 0 ? (size_t)n : 0;
    for (int i = 0; i < spec->sample_ndim && used < out_len; i++) {
        n = snprintf(out + used, out_len - used, " x %" PRIu64, spec->sample_shape[i]);
        used += n > 0 ? (size_t)n : 0;
    }
}

/* Bytes of /features, or 0 when that does not fit in 64 bits. */
static uint64_t feature_bytes(const hfeed_synth_spec *spec)
{
    uint64_t total = hfeed_dtype_size(spec->dtype);
    uint64_t factors[HFEED_MAX_SAMPLE_DIMS + 1];
    int nfactors = 0;
    factors[nfactors++] = spec->rows;
    for (int i = 0; i < spec->sample_ndim; i++) {
        factors[nfactors++] = spec->sample_shape[i];
    }
    for (int i = 0; i < nfactors; i++) {
        if (factors[i] != 0 && total > UINT64_MAX / factors[i]) {
            return 0;
        }
        total *= factors[i];
    }
    return total;
}

static void print_result(const char *path, const hfeed_synth_spec *spec)
{
    char shape[256];
    format_shape(spec, shape, sizeof shape);
    printf("wrote %s\n", path);
    printf("  /features  %s %s, %s-endian\n", shape, hfeed_dtype_name(spec->dtype),
           spec->big_endian ? "big" : "little");
    if (spec->chunk_rows == 0) {
        printf("  layout     contiguous\n");
    } else {
        printf("  layout     chunked, %" PRIu64 " rows per chunk", spec->chunk_rows);
        if (spec->shuffle) {
            printf(", shuffle");
        }
        if (spec->gzip_level > 0) {
            printf(", gzip %d", spec->gzip_level);
        }
        if (spec->fletcher32) {
            printf(", fletcher32");
        }
        printf("\n");
    }
    if (spec->label_classes > 0) {
        printf("  /labels    %" PRIu64 " int64, %" PRIu64 " classes\n", spec->rows,
               spec->label_classes);
    } else {
        printf("  /labels    none\n");
    }
    printf("  seed       %" PRIu64 "\n", spec->seed);
    printf("  data       %" PRIu64 " bytes of /features", feature_bytes(spec));
    struct stat st;
    if (stat(path, &st) == 0) {
        printf("; file %lld bytes", (long long)st.st_size);
    }
    printf("\n");
}

int hfeed_cmd_synth(int argc, char **argv)
{
    hfeed_synth_spec spec;
    memset(&spec, 0, sizeof spec);
    spec.rows = 131072;
    spec.sample_ndim = 1;
    spec.sample_shape[0] = 1024;
    spec.dtype = HFEED_DTYPE_FLOAT64;
    spec.chunk_rows = 256;
    spec.label_classes = 10;
    const char *out_path = NULL;

    int i = 1;
    while (i < argc) {
        const char *arg = argv[i];
        const char *v = NULL;
        int m = 0;
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            print_help(stdout);
            return HFEED_EXIT_OK;
        }
        if (strcmp(arg, "--shuffle") == 0) {
            spec.shuffle = 1;
            i++;
            continue;
        }
        if (strcmp(arg, "--fletcher32") == 0) {
            spec.fletcher32 = 1;
            i++;
            continue;
        }
        if (strcmp(arg, "--big-endian") == 0) {
            spec.big_endian = 1;
            i++;
            continue;
        }
        if ((m = hfeed_cmd_option(argc, argv, &i, "--out", &v, CMD)) != 0) {
            if (m < 0) {
                return HFEED_EXIT_USAGE;
            }
            if (v[0] == '\0') {
                return usage_error("--out needs a file name", NULL);
            }
            out_path = v;
        } else if ((m = hfeed_cmd_option(argc, argv, &i, "--rows", &v, CMD)) != 0) {
            if (m < 0) {
                return HFEED_EXIT_USAGE;
            }
            if (hfeed_cmd_parse_u64(v, &spec.rows) != 0 || spec.rows == 0) {
                return usage_error("--rows needs a number >= 1", v);
            }
        } else if ((m = hfeed_cmd_option(argc, argv, &i, "--shape", &v, CMD)) != 0) {
            if (m < 0) {
                return HFEED_EXIT_USAGE;
            }
            if (parse_shape(v, &spec) != 0) {
                return usage_error("--shape needs dimensions >= 1 like 1024 or 32x32x3 "
                                   "(at most 7)",
                                   v);
            }
        } else if ((m = hfeed_cmd_option(argc, argv, &i, "--dtype", &v, CMD)) != 0) {
            if (m < 0) {
                return HFEED_EXIT_USAGE;
            }
            spec.dtype = parse_dtype(v);
            if (spec.dtype == HFEED_DTYPE_INVALID) {
                return usage_error("unknown --dtype", v);
            }
        } else if ((m = hfeed_cmd_option(argc, argv, &i, "--chunk-rows", &v, CMD)) != 0) {
            if (m < 0) {
                return HFEED_EXIT_USAGE;
            }
            if (hfeed_cmd_parse_u64(v, &spec.chunk_rows) != 0) {
                return usage_error("--chunk-rows needs a number (0 = contiguous)", v);
            }
        } else if ((m = hfeed_cmd_option(argc, argv, &i, "--gzip", &v, CMD)) != 0) {
            uint64_t level = 0;
            if (m < 0) {
                return HFEED_EXIT_USAGE;
            }
            if (hfeed_cmd_parse_u64(v, &level) != 0 || level > 9) {
                return usage_error("--gzip needs a level from 0 to 9", v);
            }
            spec.gzip_level = (int)level;
        } else if ((m = hfeed_cmd_option(argc, argv, &i, "--seed", &v, CMD)) != 0) {
            if (m < 0) {
                return HFEED_EXIT_USAGE;
            }
            if (hfeed_cmd_parse_u64(v, &spec.seed) != 0) {
                return usage_error("--seed needs a number", v);
            }
        } else if ((m = hfeed_cmd_option(argc, argv, &i, "--labels", &v, CMD)) != 0) {
            if (m < 0) {
                return HFEED_EXIT_USAGE;
            }
            if (hfeed_cmd_parse_u64(v, &spec.label_classes) != 0) {
                return usage_error("--labels needs a number of classes (0 = none)", v);
            }
        } else if (arg[0] == '-') {
            return usage_error("unknown option", arg);
        } else {
            return usage_error("unexpected argument", arg);
        }
    }

    if (out_path == NULL) {
        return usage_error("--out FILE is required", NULL);
    }
    if (spec.chunk_rows == 0 && (spec.gzip_level > 0 || spec.shuffle || spec.fletcher32)) {
        return usage_error("--gzip, --shuffle and --fletcher32 need a chunked layout "
                           "(--chunk-rows > 0)",
                           NULL);
    }
    if (feature_bytes(&spec) == 0) {
        return usage_error("--rows times --shape is too large", NULL);
    }

    char errbuf[HFEED_ERRBUF_SIZE];
    errbuf[0] = '\0';
    const hfeed_status st = hfeed_synth_write(out_path, &spec, errbuf, sizeof errbuf);
    if (st != HFEED_OK) {
        fprintf(stderr, "h5feed " CMD ": %s: %s\n", hfeed_strerror((int)st), errbuf);
        return hfeed_cmd_exit_code(st);
    }
    print_result(out_path, &spec);
    return HFEED_EXIT_OK;
}
