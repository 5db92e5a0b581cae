/* h5feed inspect: what is in HDF5 files, and what a config's shuffle modes will cost.
 *
 * Everything comes from hfeed_report_create() (the library reads the metadata and runs the cost
 * model; see docs/inspect.md); this file parses the options and prints the report, as text for
 * people or, with --json, as exactly one JSON object written by hand like bench's. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"

#define CMD "inspect"

static void print_help(FILE *out)
{
    fprintf(
        out,
        "Usage: h5feed inspect FILE... [--json]\n"
        "       h5feed inspect --config CONFIG [FILE...] [--json]\n"
        "\n"
        "Describes every dataset of the HDF5 FILEs: path, shape, stored dtype with byte order\n"
        "(numpy style: <f8 is float64 little-endian), layout, chunk shape and decoded chunk\n"
        "bytes, filters (deflate level, shuffle, fletcher32, lzf, ...), bytes stored, and\n"
        "whether h5feed's direct path reads it or H5Dread must (and why). Objects it cannot\n"
        "describe (strings, compounds, scalars, links) are listed as skipped. Reads metadata\n"
        "only.\n"
        "\n"
        "A file named twice (as a FILE and by the config, or by two spellings or a symlink)\n"
        "is described once.\n"
        "\n"
        "With --config, the config's files are inspected too (FILEs are optional), and for\n"
        "each field it predicts per epoch, for each shuffle mode (none, global, chunk) at the\n"
        "config's batch_size, shuffle_window and cache_mb: the chunks decoded, and the bytes\n"
        "read from the files and decoded per byte delivered (read amplification). Uncompressed\n"
        "data on the direct path is read row by row (amplification 1); compressed chunks are\n"
        "decoded whole and shared through the cache of cache_mb: chunk shuffle decodes each\n"
        "chunk about once per epoch when a window's chunks fit the cache, global shuffle\n"
        "about (1 - f) times per sample when the cache holds a fraction f of the chunks.\n"
        "The model is described in docs/inspect.md.\n"
        "\n"
        "Warnings: chunks larger than cache_mb, chunks that split a sample, a filter only\n"
        "HDF5 decodes, fields of different lengths in a file, a costly configured shuffle,\n"
        "a field read with H5Dread.\n"
        "\n"
        "Options:\n"
        "  --config CONFIG  also inspect the config's files and model its fields' costs\n"
        "  --json           print exactly one JSON object on stdout instead of text\n"
        "  --help           show this help\n"
        "\n"
        "Exit status: 0 success, 1 data or runtime failure (a missing or non-HDF5 file, a\n"
        "field's dataset missing), 2 usage or config error.\n");
}

static const char *layout_name(hfeed_layout l)
{
    switch (l) {
    case HFEED_LAYOUT_CONTIGUOUS:
        return "contiguous";
    case HFEED_LAYOUT_CHUNKED:
        return "chunked";
    case HFEED_LAYOUT_COMPACT:
        return "compact";
    case HFEED_LAYOUT_OTHER:
        return "other";
    default:
        return "none";
    }
}

static const char *path_name(hfeed_read_path p)
{
    switch (p) {
    case HFEED_READ_DIRECT:
        return "direct";
    case HFEED_READ_DIRECT_DECODE:
        return "direct+decode";
    default:
        return "hdf5";
    }
}

static const char *warning_name(hfeed_warning_kind k)
{
    switch (k) {
    case HFEED_WARN_CHUNK_OVER_CACHE:
        return "chunk-over-cache";
    case HFEED_WARN_CHUNK_SPLITS_SAMPLE:
        return "chunk-splits-sample";
    case HFEED_WARN_SLOW_FILTER:
        return "slow-filter";
    case HFEED_WARN_LENGTH_MISMATCH:
        return "length-mismatch";
    case HFEED_WARN_HIGH_AMPLIFICATION:
        return "high-amplification";
    case HFEED_WARN_SLOW_PATH:
        return "slow-path";
    default:
        return "other";
    }
}

/* numpy's dtype.str: byte order ('<', '>', '|' for one byte), kind, size: "<f8", "|u1". */
static void type_str(const hfeed_dataset_desc *d, char *out, size_t len)
{
    const hfeed_dtype t = d->dtype;
    const char kind = t == HFEED_DTYPE_FLOAT16 || t == HFEED_DTYPE_FLOAT32 ||
                              t == HFEED_DTYPE_FLOAT64
                          ? 'f'
                      : t == HFEED_DTYPE_UINT8 || t == HFEED_DTYPE_UINT16 ||
                              t == HFEED_DTYPE_UINT32 || t == HFEED_DTYPE_UINT64
                          ? 'u'
                          : 'i';
    const size_t size = hfeed_dtype_size(t);
    snprintf(out, len, "%c%c%zu", size == 1 ? '|' : d->big_endian ? '>' : '<', kind, size);
}

static void json_dims(const uint64_t *dims, int rank)
{
    putchar('[');
    for (int i = 0; i < rank; i++) {
        printf("%s%" PRIu64, i > 0 ? ", " : "", dims[i]);
    }
    putchar(']');
}

static void json_dataset(const hfeed_dataset_desc *d)
{
    printf("{\"file\": ");
    hfeed_cmd_json_string(d->file);
    printf(", \"path\": ");
    hfeed_cmd_json_string(d->path);
    printf(", \"skipped\": ");
    hfeed_cmd_json_string(d->skipped);
    if (d->skipped != NULL) {
        putchar('}');
        return;
    }
    char ts[8];
    type_str(d, ts, sizeof ts);
    printf(", \"dtype\": \"%s\", \"typestr\": \"%s\", \"byte_order\": \"%s\", \"shape\": ",
           hfeed_dtype_name(d->dtype), ts, d->big_endian ? "big" : "little");
    json_dims(d->shape, d->rank);
    printf(", \"layout\": \"%s\", \"chunk\": ", layout_name(d->layout));
    if (d->layout == HFEED_LAYOUT_CHUNKED) {
        json_dims(d->chunk, d->rank);
    } else {
        fputs("null", stdout);
    }
    printf(", \"chunk_bytes\": %" PRIu64 ", \"storage_bytes\": %" PRIu64
           ", \"data_bytes\": %" PRIu64 ", \"filters\": [",
           d->chunk_bytes, d->storage_bytes, d->data_bytes);
    for (unsigned i = 0; i < d->nfilters; i++) {
        const hfeed_filter_desc *f = &d->filters[i];
        printf("%s{\"id\": %d, \"name\": ", i > 0 ? ", " : "", f->id);
        hfeed_cmd_json_string(f->name);
        printf(", \"direct\": %s, \"params\": [", f->direct ? "true" : "false");
        for (unsigned j = 0; j < f->nparams && j < 8; j++) {
            printf("%s%u", j > 0 ? ", " : "", f->params[j]);
        }
        printf("]}");
    }
    printf("], \"direct\": %s, \"slow_reason\": ", d->direct ? "true" : "false");
    hfeed_cmd_json_string(d->direct ? NULL : d->slow_reason);
    putchar('}');
}

static void json_field(const hfeed_field_cost *f)
{
    printf("{\"name\": ");
    hfeed_cmd_json_string(f->name);
    printf(", \"dataset\": ");
    hfeed_cmd_json_string(f->dataset);
    printf(", \"read_path\": \"%s\", \"samples\": %" PRIu64 ", \"bytes_delivered\": %" PRIu64
           ", \"chunks\": %" PRIu64 ", \"chunk_bytes\": %" PRIu64 ", \"shuffle\": {",
           path_name(f->path), f->samples, f->bytes_delivered, f->chunks, f->chunk_bytes);
    for (int m = 0; m < HFEED_SHUFFLE_MODES; m++) {
        const hfeed_shuffle_cost *c = &f->cost[m];
        printf("%s\"%s\": {\"chunk_decodes\": %.3f, \"bytes_read\": %.0f, \"bytes_decoded\": "
               "%.0f, \"read_amplification\": %.4f, \"decode_amplification\": %.4f}",
               m > 0 ? ", " : "", hfeed_shuffle_name((hfeed_shuffle_mode)m), c->chunk_decodes,
               c->bytes_read, c->bytes_decoded, c->read_amplification, c->decode_amplification);
    }
    printf("}}");
}

static void print_json(const hfeed_report *r, const hfeed_report_info *in, const char *config)
{
    printf("{\"version\": \"%s\", \"datasets\": [", hfeed_version_string());
    for (size_t i = 0; i < in->datasets; i++) {
        hfeed_dataset_desc d;
        hfeed_report_get_dataset(r, i, &d);
        fputs(i > 0 ? ", " : "", stdout);
        json_dataset(&d);
    }
    printf("], \"config\": ");
    if (in->has_config) {
        printf("{\"path\": ");
        hfeed_cmd_json_string(config);
        printf(", \"batch_size\": %" PRIu64 ", \"shuffle\": \"%s\", \"shuffle_window\": %u"
               ", \"cache_mb\": %" PRIu64 ", \"cache_entries\": %" PRIu64
               ", \"world_size\": %u, \"read_path\": \"%s\"}",
               in->batch_size, hfeed_shuffle_name(in->shuffle), in->shuffle_window, in->cache_mb,
               in->cache_entries, in->world_size, in->direct ? "auto" : "hdf5");
    } else {
        fputs("null", stdout);
    }
    printf(", \"fields\": [");
    for (size_t i = 0; i < in->fields; i++) {
        hfeed_field_cost f;
        hfeed_report_get_field(r, i, &f);
        fputs(i > 0 ? ", " : "", stdout);
        json_field(&f);
    }
    printf("], \"warnings\": [");
    for (size_t i = 0; i < in->warnings; i++) {
        hfeed_warning w;
        hfeed_report_get_warning(r, i, &w);
        printf("%s{\"kind\": \"%s\", \"file\": ", i > 0 ? ", " : "", warning_name(w.kind));
        hfeed_cmd_json_string(w.file);
        printf(", \"dataset\": ");
        hfeed_cmd_json_string(w.dataset);
        printf(", \"message\": ");
        hfeed_cmd_json_string(w.message);
        putchar('}');
    }
    printf("]}\n");
}

static void text_dims(const uint64_t *dims, int rank)
{
    for (int i = 0; i < rank; i++) {
        printf("%s%" PRIu64, i > 0 ? " x " : "", dims[i]);
    }
}

static void text_dataset(const hfeed_dataset_desc *d)
{
    if (d->skipped != NULL) {
        printf("  %s\n    skipped  %s\n", d->path, d->skipped);
        return;
    }
    char ts[8];
    type_str(d, ts, sizeof ts);
    printf("  %s\n    dtype    %s %s-endian (%s)\n    shape    ", d->path,
           hfeed_dtype_name(d->dtype), d->big_endian ? "big" : "little", ts);
    text_dims(d->shape, d->rank);
    printf("\n    layout   %s", layout_name(d->layout));
    if (d->layout == HFEED_LAYOUT_CHUNKED) {
        printf(", chunks ");
        text_dims(d->chunk, d->rank);
        printf(" (%" PRIu64 " bytes each)", d->chunk_bytes);
    }
    printf("\n    filters  ");
    if (d->nfilters == 0) {
        printf("none");
    }
    for (unsigned i = 0; i < d->nfilters; i++) {
        const hfeed_filter_desc *f = &d->filters[i];
        printf("%s%s", i > 0 ? ", " : "", f->name);
        if (f->id == 1 && f->nparams > 0) {
            printf(" level %u", f->params[0]);
        } else if (f->id > 3) {
            printf(" (id %d)", f->id);
        }
    }
    printf("\n    storage  %" PRIu64 " bytes in the file for %" PRIu64 " bytes of data",
           d->storage_bytes, d->data_bytes);
    if (d->storage_bytes > 0 && d->nfilters > 0) {
        printf(" (ratio %.2f)", (double)d->data_bytes / (double)d->storage_bytes);
    }
    if (d->direct) {
        printf("\n    read by  h5feed's direct path%s\n",
               d->nfilters > 0 ? " (h5feed decodes the chunks)" : "");
    } else {
        printf("\n    read by  H5Dread, the slow path: %s\n", d->slow_reason);
    }
}

static void text_field(const hfeed_field_cost *f, hfeed_shuffle_mode configured)
{
    printf("  field \"%s\" (dataset \"%s\"): read %s; %" PRIu64 " samples, %" PRIu64
           " bytes delivered per epoch",
           f->name, f->dataset, path_name(f->path), f->samples, f->bytes_delivered);
    if (f->chunks > 0) {
        printf("; %" PRIu64 " chunks of %" PRIu64 " bytes", f->chunks, f->chunk_bytes);
    }
    printf("\n    shuffle    chunk decodes   read/delivered   decoded/delivered\n");
    for (int m = 0; m < HFEED_SHUFFLE_MODES; m++) {
        const hfeed_shuffle_cost *c = &f->cost[m];
        printf("    %-8s %15.1f %16.3f %19.3f%s\n", hfeed_shuffle_name((hfeed_shuffle_mode)m),
               c->chunk_decodes, c->read_amplification, c->decode_amplification,
               (int)configured == m ? "   (configured)" : "");
    }
}

static void print_text(const hfeed_report *r, const hfeed_report_info *in, const char *config)
{
    printf("h5feed inspect (h5feed %s): %zu file(s), %zu object(s)\n", hfeed_version_string(),
           in->files, in->datasets);
    const char *last = NULL;
    for (size_t i = 0; i < in->datasets; i++) {
        hfeed_dataset_desc d;
        hfeed_report_get_dataset(r, i, &d);
        if (last == NULL || strcmp(last, d.file) != 0) {
            printf("\nfile %s\n", d.file);
            last = d.file;
        }
        text_dataset(&d);
    }
    if (in->has_config) {
        printf("\nconfig %s: batch_size %" PRIu64 ", shuffle %s, shuffle_window %u, cache_mb "
               "%" PRIu64 " (%" PRIu64 " chunks), world_size %u, read_path %s\n",
               config, in->batch_size, hfeed_shuffle_name(in->shuffle), in->shuffle_window,
               in->cache_mb, in->cache_entries, in->world_size, in->direct ? "auto" : "hdf5");
        printf("predicted per epoch of one rank (first epoch; docs/inspect.md):\n");
        for (size_t i = 0; i < in->fields; i++) {
            hfeed_field_cost f;
            hfeed_report_get_field(r, i, &f);
            text_field(&f, in->shuffle);
        }
    }
    printf("\nwarnings: %zu\n", in->warnings);
    for (size_t i = 0; i < in->warnings; i++) {
        hfeed_warning w;
        hfeed_report_get_warning(r, i, &w);
        printf("  [%s] %s\n", warning_name(w.kind), w.message);
    }
}

int hfeed_cmd_inspect(int argc, char **argv)
{
    const char *config = NULL;
    int json = 0;
    int rc = HFEED_EXIT_USAGE;
    const char **files = calloc((size_t)argc, sizeof *files);
    size_t nfiles = 0;
    if (files == NULL) {
        fprintf(stderr, "h5feed " CMD ": out of memory\n");
        return HFEED_EXIT_FAILURE;
    }
    for (int i = 1; i < argc;) {
        const char *arg = argv[i];
        const char *value = NULL;
        const int m = hfeed_cmd_option(argc, argv, &i, "--config", &value, CMD);
        if (m < 0) {
            goto out;
        } else if (m > 0) {
            if (config != NULL) {
                fprintf(stderr, "h5feed " CMD ": --config given twice\n");
                goto out;
            }
            config = value;
            continue;
        }
        i++;
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            print_help(stdout);
            rc = HFEED_EXIT_OK;
            goto out;
        } else if (strcmp(arg, "--json") == 0) {
            json = 1;
        } else if (arg[0] == '-' && arg[1] != '\0') {
            fprintf(stderr, "h5feed " CMD ": unknown option '%s' (see h5feed inspect --help)\n",
                    arg);
            goto out;
        } else {
            files[nfiles++] = arg;
        }
    }
    if (nfiles == 0 && config == NULL) {
        fprintf(stderr, "h5feed " CMD ": missing FILE or --config CONFIG (usage: h5feed inspect "
                        "FILE... [--config CONFIG] [--json])\n");
        goto out;
    }
    char msg[HFEED_ERRBUF_SIZE];
    msg[0] = '\0';
    hfeed_report *r = NULL;
    const hfeed_status st = hfeed_report_create(files, nfiles, config, &r, msg, sizeof msg);
    if (st != HFEED_OK) {
        fprintf(stderr, "h5feed " CMD ": %s: %s\n", hfeed_strerror((int)st), msg);
        rc = hfeed_cmd_open_exit_code(st, config);
        goto out;
    }
    hfeed_report_info in;
    hfeed_report_get_info(r, &in);
    if (json) {
        print_json(r, &in, config);
    } else {
        print_text(r, &in, config);
    }
    hfeed_report_destroy(r);
    rc = fflush(stdout) == 0 ? HFEED_EXIT_OK : HFEED_EXIT_FAILURE;
out:
    free(files);
    return rc;
}
