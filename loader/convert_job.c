/* convert_job: hfeed_convert(), batch preprocessing through the loader's own pipeline (the
 * contract is in h5feed.h; the "output" keys in configs/README.md).
 *
 * DESIGN. The job is a user of the loader like any other: it opens one from the config, takes
 * epoch 0's batches in order with hfeed_loader_next() and appends each batch's rows to one
 * dataset per field. So what convert writes is, by construction, what training and bench get
 * (same order, casts and transforms). The datasets are created when the first batch arrives,
 * from its tensors' dtypes and sample shapes; their row count is fixed up front from the
 * loader's info (samples per epoch, minus a dropped last batch).
 *
 * Atomicity: everything is written to "<path>.tmp.<pid>" in the output's folder; only after
 * the file is flushed, closed and fsynced is it renamed over the output path (and the folder
 * fsynced), so the output path holds either its old content or the complete new file. Any
 * failure (or a cancel from the progress callback) removes the temporary file.
 *
 * The config is parsed once, here: the job takes its "output" section, puts a "device": "auto"
 * on the CPU (the job writes from host memory; an explicit "cuda" is refused at once) and opens
 * the loader from it. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "catalog.h"
#include "config.h"
#include "error.h"
#include "h5feed.h"
#include "h5io.h"
#include "loader.h"

/* Chunks hold about this many bytes when "chunk_rows" is not given. */
#define AUTO_CHUNK_BYTES ((uint64_t)1 << 20)

struct job {
    struct hfeed__output_config out; /* copied from the config; path owned */
    char *tmp;                       /* "<path>.tmp.<pid>" */
    hfeed_loader *loader;
    struct hfeed__h5file *file;
    bool tmp_exists;              /* the temporary file was created and not yet renamed */
    struct hfeed__h5dset **dsets; /* one per field */
    size_t nfields;
    uint64_t rows;    /* rows of every dataset */
    uint64_t written; /* rows written so far */
    uint64_t bytes;
    const struct hfeed__logger *log;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static hfeed_status sys_fail(struct hfeed__err *err, const char *what, const char *path)
{
    char why[128] = "unknown error";
    (void)strerror_r(errno, why, sizeof why);
    return HFEED__FAIL(err, HFEED_E_FILE, "output \"%s\": %s: %s", path, what, why);
}

/* Fails early, before the loader's first pass, when the output's folder is missing or not
 * writable (convert creates no folders). */
static hfeed_status check_folder(const char *path, struct hfeed__err *err)
{
    char *dir = hfeed__strdup(path);
    if (dir == NULL) return HFEED__FAIL(err, HFEED_E_NOMEM, "convert: out of memory");
    char *slash = strrchr(dir, '/'); /* the path is absolute (config.c) */
    if (slash != NULL) slash[slash == dir ? 1 : 0] = '\0';
    hfeed_status st = HFEED_OK;
    if (slash != NULL && access(dir, W_OK | X_OK) != 0) {
        char why[128] = "unknown error";
        (void)strerror_r(errno, why, sizeof why);
        st =
            HFEED__FAIL(err, HFEED_E_FILE, "output.path \"%s\": folder \"%s\": %s", path, dir, why);
    }
    hfeed__free(dir);
    return st;
}

/* Refuses an output path that names one of the input files (the same file, by device and
 * inode, however it is spelt): the rename at the end would replace the data being read. */
static hfeed_status check_not_an_input(const struct hfeed__config *cfg, const char *out_path,
                                       struct hfeed__err *err)
{
    struct stat out;
    if (stat(out_path, &out) != 0) return HFEED_OK; /* a new file cannot be an input */
    char **files = NULL;
    size_t n = 0;
    hfeed_status st = hfeed__catalog_expand(cfg, &files, &n, err);
    for (size_t i = 0; st == HFEED_OK && i < n; i++) {
        struct stat in;
        if (stat(files[i], &in) == 0 && in.st_dev == out.st_dev && in.st_ino == out.st_ino)
            st = HFEED__FAIL(err, HFEED_E_CONFIG,
                             "output.path \"%s\" is the input file \"%s\": convert would replace "
                             "the data it reads; choose another output path",
                             out_path, files[i]);
    }
    hfeed__catalog_expand_free(files, n);
    return st;
}

/* Parses the config into *cfg, takes its "output" section into j->out (with its path) and
 * puts the loader on the host. *cfg is the caller's, also on failure. */
static hfeed_status read_config(const char *config_path, struct job *j, struct hfeed__config **cfg,
                                struct hfeed__err *err)
{
    HFEED__CHECK(hfeed__config_load(config_path, cfg, err));
    struct hfeed__config *c = *cfg;
    if (!c->output.present)
        return HFEED__FAIL(err, HFEED_E_CONFIG,
                           "%s: output: required by convert; add \"output\": {\"path\": "
                           "\"out.h5\"}",
                           config_path);
    if (c->device == HFEED__DEVICE_CUDA)
        return HFEED__FAIL(err, HFEED_E_CONFIG,
                           "%s: device: convert writes from host memory; use \"cpu\" or "
                           "\"auto\", not \"cuda\"",
                           config_path);
    if (c->device == HFEED__DEVICE_AUTO) c->device = HFEED__DEVICE_CPU;
    j->out = c->output;
    c->output.path = NULL;
    const size_t n = strlen(j->out.path) + 32;
    j->tmp = hfeed__alloc(n);
    if (j->tmp == NULL) return HFEED__FAIL(err, HFEED_E_NOMEM, "convert: out of memory");
    snprintf(j->tmp, n, "%s.tmp.%ld", j->out.path, (long)getpid());
    HFEED__CHECK(check_folder(j->out.path, err));
    return check_not_an_input(c, j->out.path, err);
}

/* The stored type of an output dtype, in the host's byte order. */
static struct hfeed__type out_type(hfeed_dtype d)
{
    const uint16_t probe = 1;
    unsigned char first;
    memcpy(&first, &probe, 1);
    struct hfeed__type t = {HFEED__CLASS_INT, hfeed_dtype_size(d), first == 0};
    if (d == HFEED_DTYPE_FLOAT16 || d == HFEED_DTYPE_FLOAT32 || d == HFEED_DTYPE_FLOAT64)
        t.cls = HFEED__CLASS_FLOAT;
    else if (d == HFEED_DTYPE_UINT8 || d == HFEED_DTYPE_UINT16 || d == HFEED_DTYPE_UINT32 ||
             d == HFEED_DTYPE_UINT64)
        t.cls = HFEED__CLASS_UINT;
    return t;
}

/* Stores what field k's transform y = (x - mean) / std * scale + offset used, so that the file
 * alone undoes it: "mean"/"std" when the field is standardised, "scale"/"offset" when they are
 * not 1 and 0. Each is float64 with one value per feature column (a single configured number
 * is written once per column), so all four broadcast alike against a (samples, columns) view of
 * the data. An absent pair means its identity (mean 0 and std 1, scale 1 and offset 0). */
static hfeed_status write_transform_attrs(struct job *j, size_t k, struct hfeed__err *err)
{
    const double *mean = NULL, *std = NULL, *scale = NULL, *offset = NULL;
    size_t n = 0;
    HFEED__CHECK(hfeed_loader_get_field_stats(j->loader, k, &mean, &std, &n));
    if (n > 0) {
        HFEED__CHECK(hfeed__h5_dset_write_attr_f64(j->dsets[k], "mean", mean, n, err));
        HFEED__CHECK(hfeed__h5_dset_write_attr_f64(j->dsets[k], "std", std, n, err));
    }
    HFEED__CHECK(hfeed__loader_get_field_affine(j->loader, k, &scale, &offset, &n));
    if (n > 0) {
        HFEED__CHECK(hfeed__h5_dset_write_attr_f64(j->dsets[k], "scale", scale, n, err));
        HFEED__CHECK(hfeed__h5_dset_write_attr_f64(j->dsets[k], "offset", offset, n, err));
    }
    return HFEED_OK;
}

/* Creates field k's dataset from the shape and dtype of its first tensor. */
static hfeed_status create_dataset(struct job *j, size_t k, const hfeed_tensor *t,
                                   struct hfeed__err *err)
{
    uint64_t dims[HFEED_MAX_SAMPLE_DIMS + 1];
    uint64_t row_bytes = hfeed_dtype_size(t->dtype);
    dims[0] = j->rows;
    for (int d = 1; d < t->ndim; d++) {
        dims[d] = (uint64_t)t->shape[d];
        row_bytes *= dims[d];
    }
    uint64_t chunk = j->out.chunk_rows;
    if (chunk == HFEED__OUTPUT_AUTO_CHUNK)
        chunk =
            row_bytes > 0 && AUTO_CHUNK_BYTES / row_bytes > 0 ? AUTO_CHUNK_BYTES / row_bytes : 1;
    if (j->rows == 0) chunk = 0; /* a chunked dataset needs at least one row of extent */
    HFEED__CHECK(hfeed__h5_dset_create(j->file, t->name, out_type(t->dtype), t->ndim, dims, chunk,
                                       chunk > 0 ? j->out.gzip_level : 0,
                                       chunk > 0 && j->out.shuffle, false, &j->dsets[k], err));
    return write_transform_attrs(j, k, err);
}

/* Appends batch b's rows to every dataset, creating them at the first batch. */
static hfeed_status write_batch(struct job *j, hfeed_batch *b, struct hfeed__err *err)
{
    hfeed_batch_info bi;
    HFEED__CHECK(hfeed_batch_get_info(b, &bi));
    if (j->written + bi.samples > j->rows)
        return HFEED__FAIL(err, HFEED_E_READ, "convert: more samples than the %llu planned",
                           (unsigned long long)j->rows);
    for (size_t k = 0; k < j->nfields; k++) {
        hfeed_tensor t;
        HFEED__CHECK(hfeed_batch_get_tensor(b, k, &t));
        if (t.device != HFEED_DEVICE_CPU)
            return HFEED__FAIL(err, HFEED_E_CONFIG,
                               "device: convert writes from host memory; set \"device\": \"cpu\"");
        if (j->dsets[k] == NULL) HFEED__CHECK(create_dataset(j, k, &t, err));
        if (bi.samples > 0)
            HFEED__CHECK(
                hfeed__h5_dset_write_rows(j->dsets[k], j->written, bi.samples, t.data, err));
        j->bytes += t.nbytes;
    }
    j->written += bi.samples;
    return HFEED_OK;
}

/* Closes the datasets and the file. */
static void close_output(struct job *j)
{
    for (size_t k = 0; j->dsets != NULL && k < j->nfields; k++) {
        hfeed__h5_dset_close(j->dsets[k]);
        j->dsets[k] = NULL;
    }
    hfeed__h5_file_close(j->file);
    j->file = NULL;
}

/* fsyncs path (a file or a folder) opened read-only. */
static hfeed_status sync_path(const char *path, struct hfeed__err *err)
{
    const int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return sys_fail(err, "open for fsync", path);
    const int rc = fsync(fd);
    const int saved = errno;
    close(fd);
    errno = saved;
    /* Some file systems refuse fsync on a folder (EINVAL): nothing more can be done there. */
    if (rc != 0 && errno != EINVAL) return sys_fail(err, "fsync", path);
    return HFEED_OK;
}

/* Makes the temporary file durable and moves it to the output path. */
static hfeed_status publish(struct job *j, struct hfeed__err *err)
{
    HFEED__CHECK(hfeed__h5_file_flush(j->file, err));
    close_output(j);
    HFEED__CHECK(sync_path(j->tmp, err));
    if (rename(j->tmp, j->out.path) != 0)
        return sys_fail(err, "rename from temporary file", j->tmp);
    j->tmp_exists = false;
    char *dir = hfeed__strdup(j->out.path);
    if (dir == NULL) return HFEED_OK; /* renamed already; the folder sync is best effort */
    char *slash = strrchr(dir, '/');
    if (slash != NULL) {
        slash[slash == dir ? 1 : 0] = '\0';
        (void)sync_path(dir, err);
    }
    hfeed__free(dir);
    return HFEED_OK;
}

static hfeed_status run(struct job *j, hfeed_progress_fn progress, void *user,
                        struct hfeed__err *err)
{
    hfeed_loader_info info;
    HFEED__CHECK(hfeed_loader_get_info(j->loader, &info));
    const uint64_t full = info.batches_per_epoch * info.batch_size;
    j->rows = info.samples_per_epoch < full ? info.samples_per_epoch : full;
    j->nfields = info.fields;
    j->dsets = hfeed__calloc(info.fields, sizeof *j->dsets);
    if (j->dsets == NULL) return HFEED__FAIL(err, HFEED_E_NOMEM, "convert: out of memory");
    HFEED__CHECK(hfeed__h5_file_create(j->tmp, &j->file, err));
    j->tmp_exists = true;
    if (progress != NULL && progress(user, 0, j->rows) != 0)
        return HFEED__FAIL(err, HFEED_E_CANCELED, "convert: canceled");
    for (uint64_t i = 0; i < info.batches_per_epoch; i++) {
        hfeed_batch *b = NULL;
        const hfeed_status st = hfeed_loader_next(j->loader, &b);
        if (st != HFEED_OK)
            return HFEED__FAIL(err, st == HFEED_END ? HFEED_E_READ : st, "%s",
                               st == HFEED_END ? "convert: the epoch ended early"
                                               : hfeed_loader_errmsg(j->loader));
        const hfeed_status wst = write_batch(j, b, err);
        hfeed_batch_release(b);
        HFEED__CHECK(wst);
        if (progress != NULL && progress(user, j->written, j->rows) != 0)
            return HFEED__FAIL(err, HFEED_E_CANCELED,
                               "convert: canceled after %llu of %llu "
                               "samples; nothing written to \"%s\"",
                               (unsigned long long)j->written, (unsigned long long)j->rows,
                               j->out.path);
    }
    if (j->written != j->rows)
        return HFEED__FAIL(err, HFEED_E_READ, "convert: %llu samples delivered, %llu planned",
                           (unsigned long long)j->written, (unsigned long long)j->rows);
    return publish(j, err);
}

hfeed_status hfeed_convert(const char *config_path, hfeed_progress_fn progress, hfeed_log_fn log,
                           void *user, hfeed_convert_result *out, char *errbuf, size_t errbuf_len)
{
    const double t0 = now_s();
    struct hfeed__err err = {0};
    const struct hfeed__logger logger = {log, user};
    struct job j = {.log = &logger};
    hfeed_status st = HFEED_OK;
    if (out != NULL) memset(out, 0, sizeof *out);
    if (config_path == NULL)
        st = HFEED__FAIL(&err, HFEED_E_INVALID_ARG, "hfeed_convert: NULL config path");
    struct hfeed__config *cfg = NULL;
    if (st == HFEED_OK) st = read_config(config_path, &j, &cfg, &err);
    if (st == HFEED_OK) {
        st = hfeed__loader_open_config(cfg, &logger, &j.loader, &err);
    } else {
        hfeed__config_destroy(cfg);
    }
    if (st == HFEED_OK) st = run(&j, progress, user, &err);
    if (j.tmp_exists) { /* failed or canceled after the temporary file was created */
        close_output(&j);
        (void)unlink(j.tmp);
    }
    hfeed_loader_close(j.loader);
    if (st == HFEED_OK) {
        hfeed__log(&logger, HFEED_LOG_INFO, "convert: wrote \"%s\": %zu datasets of %llu samples",
                   j.out.path, j.nfields, (unsigned long long)j.written);
        if (out != NULL) *out = (hfeed_convert_result){j.written, j.bytes, j.nfields, now_s() - t0};
    } else {
        if (err.code == HFEED_OK) err.code = st;
        hfeed__err_copy(&err, errbuf, errbuf_len);
    }
    hfeed__free(j.dsets);
    hfeed__free(j.tmp);
    hfeed__free(j.out.path);
    return st;
}
