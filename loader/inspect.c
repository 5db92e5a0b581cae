/* inspect: the public hfeed_report_* API (h5feed inspect): what is in a set of HDF5 files, and
 * what reading a config's fields from them will cost.
 *
 * Design. hfeed_report_create() runs once, on the caller's thread, and reads metadata only:
 *   1. with a config: parse it (config.c) and expand its file patterns (catalog.c's expansion);
 *   2. per file (once, however often and however spelt it was named: same device and inode):
 *      open it (h5io), list every non-group link (h5io's H5Lvisit walk) and describe each
 *      dataset: shape, stored type, layout, chunks, filters, allocated bytes, and whether the
 *      direct path reads it (catalog's own rule plus codec's filter check, so that inspect and
 *      the loader cannot disagree); objects it cannot describe are listed as skipped;
 *   3. per config field and config file (as the loader reads them: a file the config lists
 *      twice counts twice, a config file also named as an argument counts): the same
 *      description of the field's dataset, kept as a cost source for the model (costmodel.c)
 *      and for the warnings.
 * The report owns plain copies of everything and no HDF5 object, so it outlives the files.
 *
 * Memory: one growable array per kind of entry; strings are owned by their entries. Public
 * descriptors borrow pointers into the entries, filled in by the getters (the arrays may move
 * while the report is built, never after). */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "alloc.h"
#include "catalog.h"
#include "codec.h"
#include "inspect.h"

/* Grows *v (of elements of `size`) to room for one more. Returns: false when out of memory. */
static bool grow(void **v, size_t *cap, size_t n, size_t size)
{
    if (n < *cap) return true;
    const size_t ncap = *cap ? 2 * *cap : 16;
    void *nv = hfeed__alloc(ncap * size);
    if (nv == NULL) return false;
    if (n > 0) memcpy(nv, *v, n * size);
    hfeed__free(*v);
    *v = nv;
    *cap = ncap;
    return true;
}

hfeed_status hfeed__inspect_warn(hfeed_report *r, hfeed_warning_kind kind, size_t file,
                                 const char *dataset, struct hfeed__err *err, const char *fmt, ...)
{
    char msg[HFEED_ERRBUF_SIZE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!grow((void **)&r->warns, &r->cap_warns, r->nwarns, sizeof *r->warns))
        return HFEED__FAIL(err, HFEED_E_NOMEM, "inspect: out of memory for warnings");
    struct hfeed__warn_entry *w = &r->warns[r->nwarns];
    *w = (struct hfeed__warn_entry){kind, file, NULL, hfeed__strdup(msg)};
    if (dataset != NULL) w->dataset = hfeed__strdup(dataset);
    if (w->message == NULL || (dataset != NULL && w->dataset == NULL)) {
        hfeed__free(w->message);
        hfeed__free(w->dataset);
        return HFEED__FAIL(err, HFEED_E_NOMEM, "inspect: out of memory for warnings");
    }
    r->nwarns++;
    return HFEED_OK;
}

static const char *known_filter(int id)
{
    static const struct {
        int id;
        const char *name;
    } names[] = {{1, "deflate"},     {2, "shuffle"},     {3, "fletcher32"}, {4, "szip"},
                 {5, "nbit"},        {6, "scaleoffset"}, {307, "bzip2"},    {32000, "lzf"},
                 {32001, "blosc"},   {32004, "lz4"},     {32008, "bitshuffle"},
                 {32013, "zfp"},     {32015, "zstd"}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].id == id) return names[i].name;
    return NULL;
}

static hfeed_dtype dtype_of(struct hfeed__type t)
{
    static const hfeed_dtype ints[2][4] = {
        {HFEED_DTYPE_INT8, HFEED_DTYPE_INT16, HFEED_DTYPE_INT32, HFEED_DTYPE_INT64},
        {HFEED_DTYPE_UINT8, HFEED_DTYPE_UINT16, HFEED_DTYPE_UINT32, HFEED_DTYPE_UINT64}};
    const size_t at = t.size == 1 ? 0 : t.size == 2 ? 1 : t.size == 4 ? 2 : 3;
    if (t.cls == HFEED__CLASS_FLOAT)
        return t.size == 2 ? HFEED_DTYPE_FLOAT16
               : t.size == 4 ? HFEED_DTYPE_FLOAT32
                             : HFEED_DTYPE_FLOAT64;
    return ints[t.cls == HFEED__CLASS_UINT][at];
}

/* Copies the filters of det into e, and decides whether the direct path reads the dataset
 * the way catalog.c's setup_direct() does (before the chunk index, which only a loader reads). */
static void describe_storage(struct hfeed__dset_entry *e, const struct hfeed__dset_info *info,
                             const struct hfeed__dset_storage *st,
                             const struct hfeed__dset_details *det)
{
    hfeed_dataset_desc *d = &e->d;
    d->nfilters = det->nfilters;
    struct hfeed__pipeline pipe = {.nfilters = st->nfilters, .elem_size = info->type.size};
    for (unsigned i = 0; i < st->nfilters && i < HFEED__MAX_FILTERS; i++)
        pipe.ids[i] = st->filters[i];
    for (unsigned i = 0; i < det->nfilters && i < HFEED_MAX_FILTERS; i++) {
        const struct hfeed__h5_filter *f = &det->filters[i];
        const char *name = known_filter(f->id);
        snprintf(e->filter_names[i], sizeof e->filter_names[i], "%s",
                 name != NULL ? name : f->name[0] ? f->name : "unknown");
        d->filters[i].id = f->id;
        d->filters[i].direct = f->id >= 1 && f->id <= 3;
        d->filters[i].nparams = f->nparams;
        for (unsigned j = 0; j < f->nparams && j < 8; j++)
            d->filters[i].params[j] = f->params[j];
    }
    d->storage_bytes = det->storage_bytes;
    char fault[sizeof e->slow];
    const char *why = hfeed__catalog_storage_fault(info, (size_t)e->row_bytes, st, fault,
                                                   sizeof fault);
    if (why == NULL) why = hfeed__catalog_direct_blocker(info, st);
    if (why == NULL && info->layout == HFEED__LAYOUT_CHUNKED && !hfeed__codec_supports(&pipe))
        why = "unsupported filter order";
    d->direct = why == NULL;
    snprintf(e->slow, sizeof e->slow, "%s", why != NULL ? why : "");
}

hfeed_status hfeed__inspect_describe(struct hfeed__h5file *f, size_t fi, const char *name,
                                     struct hfeed__dset_entry *e, bool want_numeric,
                                     struct hfeed__err *err)
{
    memset(e, 0, sizeof *e);
    e->file = fi;
    e->path = hfeed__strdup(name);
    if (e->path == NULL) return HFEED__FAIL(err, HFEED_E_NOMEM, "inspect: out of memory");
    struct hfeed__h5dset *d = NULL;
    struct hfeed__dset_info info;
    struct hfeed__err why = {0};
    hfeed_status st = hfeed__h5_dset_open(f, name, &d, &info, &why);
    if (st != HFEED_OK) {
        if (want_numeric || st == HFEED_E_NOMEM) return hfeed__err_set(err, st, "%s", why.msg);
        /* h5io's message starts with the file and dataset, which the report shows already. */
        char prefix[HFEED_ERRBUF_SIZE];
        snprintf(prefix, sizeof prefix, "dataset \"%s\": ", name);
        const char *tail = strstr(why.msg, prefix);
        char text[HFEED_ERRBUF_SIZE + 32];
        snprintf(text, sizeof text, "not a numeric dataset: %s",
                 tail != NULL ? tail + strlen(prefix) : why.msg);
        e->skipped = hfeed__strdup(text);
        return e->skipped != NULL ? HFEED_OK
                                  : HFEED__FAIL(err, HFEED_E_NOMEM, "inspect: out of memory");
    }
    hfeed_dataset_desc *out = &e->d;
    out->dtype = dtype_of(info.type);
    out->big_endian = info.type.big_endian;
    out->rank = info.rank;
    out->layout = (hfeed_layout)info.layout;
    uint64_t elems = 1, chunk_elems = 1;
    for (int i = 0; i < info.rank; i++) {
        out->shape[i] = info.dims[i];
        if (i > 0) elems *= info.dims[i];
        if (info.layout == HFEED__LAYOUT_CHUNKED) {
            out->chunk[i] = info.chunk[i];
            chunk_elems *= info.chunk[i];
        }
    }
    e->row_bytes = elems * info.type.size;
    out->data_bytes = e->row_bytes * info.dims[0];
    out->chunk_bytes = info.layout == HFEED__LAYOUT_CHUNKED ? chunk_elems * info.type.size : 0;
    struct hfeed__dset_storage stor;
    struct hfeed__dset_details det;
    st = hfeed__h5_dset_storage(d, &stor, err);
    if (st == HFEED_OK) st = hfeed__h5_dset_details(d, &det, err);
    hfeed__h5_dset_close(d);
    HFEED__CHECK(st);
    describe_storage(e, &info, &stor, &det);
    return HFEED_OK;
}

void hfeed__inspect_entry_free(struct hfeed__dset_entry *e)
{
    hfeed__free(e->path);
    hfeed__free(e->skipped);
}

/* Lists and describes every object of file fi. */
static hfeed_status list_file(hfeed_report *r, struct hfeed__h5file *f, size_t fi,
                              struct hfeed__err *err)
{
    struct hfeed__h5_link *links = NULL;
    size_t n = 0;
    HFEED__CHECK(hfeed__h5_file_list(f, &links, &n, err));
    hfeed_status st = HFEED_OK;
    for (size_t i = 0; st == HFEED_OK && i < n; i++) {
        if (!grow((void **)&r->dsets, &r->cap_dsets, r->ndsets, sizeof *r->dsets)) {
            st = HFEED__FAIL(err, HFEED_E_NOMEM, "inspect: out of memory for datasets");
            break;
        }
        struct hfeed__dset_entry *e = &r->dsets[r->ndsets];
        const struct hfeed__h5_link *l = &links[i];
        if (l->kind == HFEED__LINK_DATASET) {
            st = hfeed__inspect_describe(f, fi, l->path, e, false, err);
        } else {
            memset(e, 0, sizeof *e);
            e->file = fi;
            char text[600];
            snprintf(text, sizeof text, "%s%s%s",
                     l->kind == HFEED__LINK_SOFT       ? "soft link to "
                     : l->kind == HFEED__LINK_EXTERNAL ? "external link to "
                     : l->kind == HFEED__LINK_DATATYPE ? "named datatype"
                                                       : "not a dataset",
                     l->target != NULL ? l->target : "",
                     l->kind == HFEED__LINK_SOFT || l->kind == HFEED__LINK_EXTERNAL
                         ? " (not followed)"
                         : "");
            e->path = hfeed__strdup(l->path);
            e->skipped = hfeed__strdup(text);
            if (e->path == NULL || e->skipped == NULL)
                st = HFEED__FAIL(err, HFEED_E_NOMEM, "inspect: out of memory");
        }
        if (st == HFEED_OK)
            r->ndsets++;
        else
            hfeed__inspect_entry_free(e);
    }
    hfeed__h5_links_free(links, n);
    return st;
}

/* Warnings about one described dataset, whoever reads it: chunks that split samples (read
 * directly, a chunk row at a time), filters that only HDF5 decodes. */
static hfeed_status dataset_warnings(hfeed_report *r, const struct hfeed__dset_entry *e,
                                     struct hfeed__err *err)
{
    const hfeed_dataset_desc *d = &e->d;
    const char *file = r->files[e->file];
    if (e->skipped != NULL) return HFEED_OK;
    for (int i = 1; d->layout == HFEED_LAYOUT_CHUNKED && i < d->rank; i++) {
        if (d->chunk[i] >= d->shape[i]) continue;
        uint64_t per_sample = 1;
        for (int j = 1; j < d->rank; j++)
            per_sample *= (d->shape[j] + d->chunk[j] - 1) / d->chunk[j];
        const uint64_t mib = (uint64_t)1 << 20, row = e->row_bytes > 0 ? e->row_bytes : 1;
        HFEED__CHECK(hfeed__inspect_warn(
            r, HFEED_WARN_CHUNK_SPLITS_SAMPLE, e->file, e->path, err,
            "file \"%s\" dataset \"%s\": chunks split each sample (chunk dim %" PRIu64
            " < sample dim %" PRIu64 " on axis %d): every sample spans %" PRIu64
            " chunks, which the direct path decodes together, a chunk row of %" PRIu64
            " samples (%" PRIu64 " bytes) at a time, into its cache; a config's report "
            "says what that costs. Whole samples per chunk cost less: h5feed convert with "
            "\"output\": {\"chunk_rows\": %" PRIu64 "} rechunks it",
            file, e->path, d->chunk[i], d->shape[i], i, per_sample, d->chunk[0],
            d->chunk[0] * e->row_bytes, mib / row > 0 ? mib / row : 1));
        break;
    }
    for (unsigned i = 0; i < d->nfilters; i++) {
        if (d->filters[i].direct) continue;
        HFEED__CHECK(hfeed__inspect_warn(r, HFEED_WARN_SLOW_FILTER, e->file, e->path, err,
                                 "file \"%s\" dataset \"%s\": filter %s (id %d) is decoded only "
                                 "by HDF5, so this dataset is read with H5Dread, one call at a "
                                 "time behind the HDF5 lock; h5feed decodes deflate, shuffle and "
                                 "fletcher32 itself",
                                 file, e->path, e->filter_names[i], d->filters[i].id));
        break;
    }
    return HFEED_OK;
}

/* Opens file fi, lists and describes its objects, and, for a config's file, its fields. */
static hfeed_status inspect_file(hfeed_report *r, size_t fi, struct hfeed__err *err)
{
    struct hfeed__h5file *f = NULL;
    HFEED__CHECK(hfeed__h5_file_open(r->files[fi], &f, err));
    const size_t first = r->ndsets;
    hfeed_status st = list_file(r, f, fi, err);
    for (size_t i = first; st == HFEED_OK && i < r->ndsets; i++)
        st = dataset_warnings(r, &r->dsets[i], err);
    /* A file given as an argument and by the config is still each of the config's files it
     * stands for, so the model sees every file the loader reads. */
    for (size_t j = 0; st == HFEED_OK && r->cfg != NULL && j < r->ncfg; j++)
        if (r->cfg_file[j] == fi) st = hfeed__inspect_fields_file(r, f, fi, j, err);
    hfeed__h5_file_close(f);
    return st;
}

/* Which file a path names, to tell two spellings of one file apart from two files. */
struct file_id {
    bool found; /* stat() worked: dev and ino are set */
    dev_t dev;
    ino_t ino;
};

static struct file_id file_id_of(const char *path)
{
    struct stat sb;
    if (stat(path, &sb) != 0) return (struct file_id){false, 0, 0};
    return (struct file_id){true, sb.st_dev, sb.st_ino};
}

/* Device and inode decide when both paths exist ("./a.h5", "a.h5" and a symlink to it are one
 * file). When one cannot be stat()ed only the same text matches: opening it reports why. */
static bool same_file(const struct file_id *a, const char *pa, const struct file_id *b,
                      const char *pb)
{
    if (a->found && b->found) return a->dev == b->dev && a->ino == b->ino;
    return strcmp(pa, pb) == 0;
}

/* Sets *at to the index of path p in r->files, appending it (and its id to ids) unless an
 * earlier entry is the same file, which is then described once. */
static hfeed_status add_file(hfeed_report *r, struct file_id *ids, const char *p, size_t *at,
                             struct hfeed__err *err)
{
    const struct file_id id = file_id_of(p);
    for (size_t i = 0; i < r->nfiles; i++) {
        if (same_file(&ids[i], r->files[i], &id, p)) {
            *at = i;
            return HFEED_OK;
        }
    }
    r->files[r->nfiles] = hfeed__strdup(p);
    if (r->files[r->nfiles] == NULL)
        return HFEED__FAIL(err, HFEED_E_NOMEM, "inspect: out of memory");
    ids[r->nfiles] = id;
    *at = r->nfiles++;
    return HFEED_OK;
}

/* Copies the FILE arguments, then the config's expanded files, into r->files, each file once
 * (the first spelling is kept), and maps every config file j to its entry in r->cfg_file[j].
 * A config file listed twice keeps two cfg_file entries, since the loader reads it twice. */
static hfeed_status collect_files(hfeed_report *r, const char *const *paths, size_t npaths,
                                  struct hfeed__err *err)
{
    char **cfg_files = NULL;
    size_t ncfg = 0;
    if (r->cfg != NULL) HFEED__CHECK(hfeed__catalog_expand(r->cfg, &cfg_files, &ncfg, err));
    const size_t n = npaths + ncfg > 0 ? npaths + ncfg : 1;
    struct file_id *ids = hfeed__calloc(n, sizeof *ids);
    r->files = hfeed__calloc(n, sizeof *r->files);
    r->cfg_file = hfeed__calloc(ncfg > 0 ? ncfg : 1, sizeof *r->cfg_file);
    r->ncfg = ncfg;
    hfeed_status st = HFEED_OK;
    if (ids == NULL || r->files == NULL || r->cfg_file == NULL)
        st = HFEED__FAIL(err, HFEED_E_NOMEM, "inspect: out of memory");
    for (size_t i = 0; st == HFEED_OK && i < npaths + ncfg; i++) {
        const char *p = i < npaths ? paths[i] : cfg_files[i - npaths];
        size_t at = 0;
        if (p == NULL)
            st =
                HFEED__FAIL(err, HFEED_E_INVALID_ARG, "hfeed_report_create: paths[%zu] is NULL", i);
        else
            st = add_file(r, ids, p, &at, err);
        if (st == HFEED_OK && i >= npaths) r->cfg_file[i - npaths] = at;
    }
    hfeed__free(ids);
    hfeed__catalog_expand_free(cfg_files, ncfg);
    return st;
}

hfeed_status hfeed_report_create(const char *const *paths, size_t npaths, const char *config_path,
                                 hfeed_report **out, char *errbuf, size_t errbuf_len)
{
    struct hfeed__err err = {0};
    hfeed_status st = HFEED_OK;
    hfeed_report *r = NULL;
    if (out != NULL) *out = NULL;
    if (out == NULL || (npaths > 0 && paths == NULL) || (npaths == 0 && config_path == NULL)) {
        st = HFEED__FAIL(&err, HFEED_E_INVALID_ARG,
                         "hfeed_report_create: need an out-pointer and files or a config");
        goto done;
    }
    r = hfeed__calloc(1, sizeof *r);
    if (r == NULL) {
        st = HFEED__FAIL(&err, HFEED_E_NOMEM, "inspect: out of memory");
        goto done;
    }
    if (config_path != NULL) st = hfeed__config_load(config_path, &r->cfg, &err);
    if (st == HFEED_OK) st = collect_files(r, paths, npaths, &err);
    if (st == HFEED_OK && r->cfg != NULL) st = hfeed__inspect_fields_alloc(r, &err);
    for (size_t fi = 0; st == HFEED_OK && fi < r->nfiles; fi++)
        st = inspect_file(r, fi, &err);
    if (st == HFEED_OK && r->cfg != NULL) st = hfeed__inspect_fields_finish(r, &err);
    if (st == HFEED_OK) {
        r->info.files = r->nfiles;
        r->info.datasets = r->ndsets;
        r->info.fields = r->cfg != NULL ? r->cfg->nfields : 0;
        r->info.warnings = r->nwarns;
        r->info.has_config = r->cfg != NULL;
        *out = r;
        return HFEED_OK;
    }
done:
    hfeed_report_destroy(r);
    hfeed__err_copy(&err, errbuf, errbuf_len);
    return st;
}

void hfeed_report_destroy(hfeed_report *r)
{
    if (r == NULL) return;
    for (size_t i = 0; i < r->ndsets; i++)
        hfeed__inspect_entry_free(&r->dsets[i]);
    for (size_t i = 0; i < r->nwarns; i++) {
        hfeed__free(r->warns[i].dataset);
        hfeed__free(r->warns[i].message);
    }
    for (size_t i = 0; r->files != NULL && i < r->nfiles; i++)
        hfeed__free(r->files[i]);
    hfeed__inspect_fields_free(r);
    hfeed__config_destroy(r->cfg);
    hfeed__free(r->files);
    hfeed__free(r->cfg_file);
    hfeed__free(r->dsets);
    hfeed__free(r->warns);
    hfeed__free(r);
}

hfeed_status hfeed_report_get_info(const hfeed_report *r, hfeed_report_info *out)
{
    if (out != NULL) memset(out, 0, sizeof *out);
    if (r == NULL || out == NULL) return HFEED_E_INVALID_ARG;
    *out = r->info;
    return HFEED_OK;
}

hfeed_status hfeed_report_get_dataset(const hfeed_report *r, size_t i, hfeed_dataset_desc *out)
{
    if (out != NULL) memset(out, 0, sizeof *out);
    if (r == NULL || out == NULL || i >= r->ndsets) return HFEED_E_INVALID_ARG;
    const struct hfeed__dset_entry *e = &r->dsets[i];
    *out = e->d;
    out->file = r->files[e->file];
    out->path = e->path;
    out->skipped = e->skipped;
    out->slow_reason = e->slow;
    for (unsigned k = 0; k < out->nfilters && k < HFEED_MAX_FILTERS; k++)
        out->filters[k].name = e->filter_names[k];
    return HFEED_OK;
}

hfeed_status hfeed_report_get_field(const hfeed_report *r, size_t i, hfeed_field_cost *out)
{
    if (out != NULL) memset(out, 0, sizeof *out);
    if (r == NULL || out == NULL || r->cfg == NULL || i >= r->cfg->nfields)
        return HFEED_E_INVALID_ARG;
    *out = r->fields[i];
    return HFEED_OK;
}

hfeed_status hfeed_report_get_warning(const hfeed_report *r, size_t i, hfeed_warning *out)
{
    if (out != NULL) memset(out, 0, sizeof *out);
    if (r == NULL || out == NULL || i >= r->nwarns) return HFEED_E_INVALID_ARG;
    const struct hfeed__warn_entry *w = &r->warns[i];
    out->kind = w->kind;
    out->file = w->file < r->nfiles ? r->files[w->file] : NULL;
    out->dataset = w->dataset;
    out->message = w->message;
    return HFEED_OK;
}

const char *hfeed_shuffle_name(hfeed_shuffle_mode mode)
{
    switch (mode) {
    case HFEED_SHUFFLE_NONE:
        return "none";
    case HFEED_SHUFFLE_GLOBAL:
        return "global";
    case HFEED_SHUFFLE_CHUNK:
        return "chunk";
    default:
        return "invalid";
    }
}
