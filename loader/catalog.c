/* catalog: config + file metadata -> the validated description of what to read (catalog.h).
 *
 * Runs once, at open, on the opening thread. Order of checks: patterns expand to files, files
 * open, datasets open and have supported types, conversions are allowed, sample counts agree
 * within each file, sample shapes and output dtypes agree across files. The first failure stops
 * the open with a message that names the file, the dataset and the field. */
#include "catalog.h"

#include <dirent.h>
#include <fcntl.h>
#include <glob.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "alloc.h"

/* A stored chunk larger than this (for its decoded size) means the index is not what we think:
 * deflate expands incompressible data by well under 1%, fletcher32 adds 4 bytes. */
#define PLAUSIBLE_STORED(chunk_bytes) (2 * (uint64_t)(chunk_bytes) + 4096)

/* Chunks whose index the direct path keeps (24 bytes each); a dataset chunked finer than this
 * (1 x 1 x 1 chunks of a large array, say) is read through HDF5. */
#define MAX_INDEX_ENTRIES (UINT64_C(1) << 26)

/* A growable list of file paths, freed with the catalog's file list. */
struct paths {
    char **v;
    size_t n, cap;
};

static hfeed_status paths_add(struct paths *p, const char *path, struct hfeed__err *err)
{
    if (p->n == p->cap) {
        const size_t cap = p->cap ? 2 * p->cap : 8;
        char **v = hfeed__alloc(cap * sizeof *v);
        if (v == NULL) return HFEED__FAIL(err, HFEED_E_NOMEM, "file list: out of memory");
        if (p->n > 0) memcpy(v, p->v, p->n * sizeof *v);
        hfeed__free(p->v);
        p->v = v;
        p->cap = cap;
    }
    p->v[p->n] = hfeed__strdup(path);
    if (p->v[p->n] == NULL) return HFEED__FAIL(err, HFEED_E_NOMEM, "file list: out of memory");
    p->n++;
    return HFEED_OK;
}

static void paths_free(struct paths *p)
{
    for (size_t i = 0; i < p->n; i++)
        hfeed__free(p->v[i]);
    hfeed__free(p->v);
}

/* Expands files[] in config order; a pattern's matches come sorted. A literal path is kept as
 * is, so that a missing file is reported by name when it is opened. */
static hfeed_status expand(const struct hfeed__config *cfg, struct paths *out,
                           struct hfeed__err *err)
{
    for (size_t i = 0; i < cfg->nfiles; i++) {
        const char *pat = cfg->files[i];
        if (strpbrk(pat, "*?[") == NULL) {
            HFEED__CHECK(paths_add(out, pat, err));
            continue;
        }
        glob_t g;
        const int rc = glob(pat, GLOB_ERR, NULL, &g);
        hfeed_status st = HFEED_OK;
        if (rc == GLOB_NOMATCH)
            st = HFEED__FAIL(err, HFEED_E_FILE, "files[%zu]: pattern \"%s\" matches no file", i,
                             pat);
        else if (rc != 0)
            st = HFEED__FAIL(err, HFEED_E_FILE, "files[%zu]: cannot expand pattern \"%s\"", i, pat);
        for (size_t k = 0; st == HFEED_OK && k < g.gl_pathc; k++)
            st = paths_add(out, g.gl_pathv[k], err);
        if (rc == 0) globfree(&g);
        HFEED__CHECK(st);
    }
    return HFEED_OK;
}

hfeed_status hfeed__catalog_expand(const struct hfeed__config *cfg, char ***out, size_t *n,
                                   struct hfeed__err *err)
{
    *out = NULL;
    *n = 0;
    struct paths files = {0};
    const hfeed_status st = expand(cfg, &files, err);
    if (st != HFEED_OK) {
        paths_free(&files);
        return st;
    }
    *out = files.v;
    *n = files.n;
    return HFEED_OK;
}

void hfeed__catalog_expand_free(char **files, size_t n)
{
    struct paths p = {files, n, n};
    paths_free(&p);
}

/* Writes a shape as Python prints a tuple: "(3, 4)", "(3,)", "()". Returns: buf. */
static const char *shape_text(const uint64_t *dims, int n, char *buf, size_t len)
{
    size_t o = (size_t)snprintf(buf, len, "(");
    for (int d = 0; d < n && o < len; d++)
        o += (size_t)snprintf(buf + o, len - o, "%s%llu", d ? ", " : "",
                              (unsigned long long)dims[d]);
    if (o < len) snprintf(buf + o, len - o, n == 1 ? ",)" : ")");
    return buf;
}

/* Checks one field's dataset in file `fi` against the field as set by earlier files (or sets
 * it, for the first file) and plans its conversion. */
static hfeed_status check_source(struct hfeed__catalog *c, const struct hfeed__field_config *fc,
                                 struct hfeed__field *f, size_t fi, struct hfeed__err *err)
{
    struct hfeed__source *s = &f->sources[fi];
    const char *path = hfeed__h5_file_path(c->files[fi]);
    const struct hfeed__dset_info *in = &s->info;
    if (in->rank - 1 > HFEED_MAX_SAMPLE_DIMS)
        return HFEED__FAIL(err, HFEED_E_DATASET, "file \"%s\" dataset \"%s\": rank %d too high",
                           path, fc->dataset, in->rank);
    const hfeed_dtype want = fc->native ? hfeed__conv_native(in->type) : fc->dtype;
    struct hfeed__err why = {0};
    if (hfeed__conv_plan(in->type, want, &s->conv, &why) != HFEED_OK)
        return HFEED__FAIL(err, HFEED_E_TYPE, "field \"%s\": file \"%s\" dataset \"%s\": %s",
                           fc->name, path, fc->dataset, why.msg);
    /* Output rows are at most 8 bytes an element: checking elems * 8 covers both row sizes. */
    size_t elems = 1, most = 0;
    bool wraps = false;
    for (int d = 1; d < in->rank; d++)
        wraps |= __builtin_mul_overflow(elems, in->dims[d], &elems);
    wraps |= __builtin_mul_overflow(elems, (size_t)8, &most);
    if (wraps)
        return HFEED__FAIL(err, HFEED_E_DATASET,
                           "file \"%s\" dataset \"%s\": one sample of this shape does not fit "
                           "in memory",
                           path, fc->dataset);
    s->stored_row_bytes = elems * in->type.size;
    if (s->stored_row_bytes > f->max_stored_row_bytes)
        f->max_stored_row_bytes = s->stored_row_bytes;
    if (fi == 0) {
        f->dtype = want;
        f->sample_ndim = in->rank - 1;
        for (int d = 1; d < in->rank; d++)
            f->sample_shape[d - 1] = in->dims[d];
        f->row_elems = elems;
        f->row_bytes = elems * hfeed_dtype_size(want);
        return HFEED_OK;
    }
    bool same = f->sample_ndim == in->rank - 1;
    for (int d = 1; same && d < in->rank; d++)
        same = f->sample_shape[d - 1] == in->dims[d];
    if (!same) {
        char here[160], first[160];
        return HFEED__FAIL(err, HFEED_E_DATASET,
                           "field \"%s\": dataset \"%s\" has sample shape %s in file \"%s\" but "
                           "%s in file \"%s\"; every file must give a field the same sample shape",
                           fc->name, fc->dataset,
                           shape_text(in->dims + 1, in->rank - 1, here, sizeof here), path,
                           shape_text(f->sample_shape, f->sample_ndim, first, sizeof first),
                           hfeed__h5_file_path(c->files[0]));
    }
    if (want != f->dtype)
        return HFEED__FAIL(err, HFEED_E_TYPE,
                           "field \"%s\": \"native\" is %s in file \"%s\" but %s in file "
                           "\"%s\"; give the field an explicit dtype",
                           fc->name, hfeed_dtype_name(want), path, hfeed_dtype_name(f->dtype),
                           hfeed__h5_file_path(c->files[0]));
    return HFEED_OK;
}

/* Opens every field's dataset in file fi and checks that their sample counts agree. */
static hfeed_status open_file_fields(struct hfeed__catalog *c, const struct hfeed__config *cfg,
                                     size_t fi, struct hfeed__err *err)
{
    for (size_t k = 0; k < c->nfields; k++) {
        struct hfeed__source *s = &c->fields[k].sources[fi];
        HFEED__CHECK(
            hfeed__h5_dset_open(c->files[fi], cfg->fields[k].dataset, &s->dset, &s->info, err));
        HFEED__CHECK(check_source(c, &cfg->fields[k], &c->fields[k], fi, err));
        const uint64_t rows = s->info.dims[0], rows0 = c->fields[0].sources[fi].info.dims[0];
        if (rows != rows0)
            return HFEED__FAIL(err, HFEED_E_DATASET,
                               "file \"%s\": field \"%s\" (dataset \"%s\") has %llu samples but "
                               "field \"%s\" (dataset \"%s\") has %llu; every field of a file "
                               "needs the same length along the first axis",
                               hfeed__h5_file_path(c->files[fi]), cfg->fields[k].name,
                               cfg->fields[k].dataset, (unsigned long long)rows,
                               cfg->fields[0].name, cfg->fields[0].dataset,
                               (unsigned long long)rows0);
    }
    c->file_start[fi + 1] = c->file_start[fi] + c->fields[0].sources[fi].info.dims[0];
    return HFEED_OK;
}

const char *hfeed__catalog_direct_blocker(const struct hfeed__dset_info *info,
                                          const struct hfeed__dset_storage *st)
{
    if (st->unsupported[0] != '\0') return st->unsupported;
    if (info->layout == HFEED__LAYOUT_COMPACT) return "compact layout, data kept in the header";
    if (info->layout == HFEED__LAYOUT_OTHER) return "virtual or external layout";
    if (info->layout == HFEED__LAYOUT_CONTIGUOUS) return NULL;
    return NULL;
}

const char *hfeed__catalog_storage_fault(const struct hfeed__dset_info *info,
                                         size_t stored_row_bytes,
                                         const struct hfeed__dset_storage *st, char *buf,
                                         size_t len)
{
    if (info->layout == HFEED__LAYOUT_CONTIGUOUS) {
        if (st->contiguous_addr == UINT64_MAX) return NULL;
        const uint64_t room =
            st->contiguous_addr <= st->file_size ? st->file_size - st->contiguous_addr : 0;
        const uint64_t rows_fit = stored_row_bytes > 0 ? room / stored_row_bytes : UINT64_MAX;
        if (st->contiguous_addr <= st->file_size && rows_fit >= info->dims[0]) return NULL;
        snprintf(buf, len,
                 "its %llu rows of %zu bytes at file offset %llu run past the end of the file "
                 "(%llu bytes): truncated?",
                 (unsigned long long)info->dims[0], stored_row_bytes,
                 (unsigned long long)st->contiguous_addr, (unsigned long long)st->file_size);
        return buf;
    }
    if (info->layout != HFEED__LAYOUT_CHUNKED) return NULL;
    uint64_t bytes = info->type.size;
    bool wraps = false;
    for (int d = 0; d < info->rank; d++) {
        const uint64_t c = info->chunk[d], most = info->maxdims[d];
        /* HDF5 refuses to create these; in a file they come from damage, and H5Dread trusts
         * them (a chunk dim of 37,892 on an axis of 4 makes it copy past its buffers). */
        if (c == 0 || (most != UINT64_MAX && info->dims[d] > 0 && c > most)) {
            snprintf(buf, len,
                     "chunk dimension %d is %llu but axis %d holds at most %llu (a corrupt "
                     "layout message)",
                     d, (unsigned long long)c, d, (unsigned long long)most);
            return buf;
        }
        wraps |= __builtin_mul_overflow(bytes, c, &bytes);
    }
    if (wraps || bytes > UINT32_MAX) {
        snprintf(buf, len, "a chunk of %s%llu bytes, over HDF5's 4 GiB chunk limit (a corrupt "
                 "layout message)", wraps ? "over " : "",
                 (unsigned long long)(wraps ? UINT64_MAX : bytes));
        return buf;
    }
    return NULL;
}

/* Why source s cannot take the direct path (a static reason), or NULL if it can. */
static const char *direct_blocker(const struct hfeed__source *s,
                                  const struct hfeed__dset_storage *st)
{
    return hfeed__catalog_direct_blocker(&s->info, st);
}

/* Storage of a dataset that we read and found inconsistent: the file is damaged. */
static hfeed_status damaged(struct hfeed__err *err, const char *path, const char *dataset,
                            const char *what)
{
    return HFEED__FAIL(err, HFEED_E_READ,
                       "file \"%s\" dataset \"%s\": %s; the file is damaged (h5feed does not "
                       "hand damaged storage to HDF5, whose reads trust it): restore or rewrite "
                       "the file",
                       path, dataset, what);
}

/* Reads the chunk index of a chunked source into d. An index kind we do not read sets *why (then
 * HDF5 reads the dataset); an index we read and find inconsistent is an error, never a reason to
 * hand the dataset to HDF5, whose reads trust the index and can overrun their buffers on it. */
static hfeed_status index_chunks(struct hfeed__direct *d, const struct hfeed__source *s,
                                 const struct hfeed__dset_storage *st, const char **why,
                                 char *buf, size_t buf_len, struct hfeed__err *err)
{
    struct hfeed__index_query q = {.header_addr = st->header_addr,
                                   .base_addr = st->base_addr,
                                   .sizeof_addr = st->sizeof_addr,
                                   .sizeof_size = st->sizeof_size,
                                   .rank = s->info.rank,
                                   .filtered = st->nfilters > 0,
                                   .file_size = st->file_size};
    for (int i = 0; i < s->info.rank; i++) {
        q.dims[i] = s->info.dims[i];
        q.chunk[i] = s->info.chunk[i];
    }
    d->chunk_rows = s->info.chunk[0];
    d->nchunks = (s->info.dims[0] + d->chunk_rows - 1) / d->chunk_rows;
    d->chunk_bytes = (size_t)d->chunk_rows * d->row_bytes;
    const uint64_t entries = hfeed__chunkindex_count(&q);
    if (entries > MAX_INDEX_ENTRIES) {
        snprintf(buf, buf_len, "%llu chunks, more than the %llu the direct path indexes",
                 (unsigned long long)entries, (unsigned long long)MAX_INDEX_ENTRIES);
        *why = buf;
        return HFEED_OK;
    }
    d->tiles_per_slab = d->nchunks > 0 ? entries / d->nchunks : 1;
    d->tile_bytes = s->info.type.size;
    d->sample_rank = s->info.rank - 1;
    for (int i = 0; i < s->info.rank; i++) {
        d->tile_dims[i] = s->info.chunk[i];
        d->tile_bytes *= (size_t)s->info.chunk[i];
        if (i > 0) d->sample_dims[i - 1] = s->info.dims[i];
        d->tiled = d->tiled || (i > 0 && s->info.chunk[i] != s->info.dims[i]);
    }
    d->chunks = hfeed__alloc((size_t)(entries > 0 ? entries : 1) * sizeof *d->chunks);
    if (d->chunks == NULL)
        return HFEED__FAIL(err, HFEED_E_NOMEM, "chunk index of %llu chunks: out of memory",
                           (unsigned long long)entries);
    const char *reason = NULL;
    struct hfeed__err e = {0};
    const hfeed_status got = hfeed__chunkindex_read(d->fd, &q, d->chunks, entries, &reason, &e);
    if (got == HFEED_E_TYPE) {
        snprintf(buf, buf_len, "%.200s", reason != NULL ? reason : e.msg);
        *why = buf;
        return HFEED_OK;
    }
    if (got == HFEED_E_NOMEM) return hfeed__err_set(err, got, "%s", e.msg);
    if (got != HFEED_OK) return damaged(err, d->path, d->dataset, e.msg);
    for (uint64_t i = 0; i < entries; i++) {
        const struct hfeed__chunk_ref *ch = &d->chunks[i];
        if (ch->addr == HFEED__CHUNK_UNALLOCATED) continue;
        if (ch->size > PLAUSIBLE_STORED(d->tile_bytes)) {
            snprintf(buf, buf_len,
                     "chunk index: chunk %llu is listed with %llu stored bytes for %zu decoded "
                     "ones",
                     (unsigned long long)i, (unsigned long long)ch->size, d->tile_bytes);
            return damaged(err, d->path, d->dataset, buf);
        }
        /* Every byte the workers may pread or map must exist when the loader opens. */
        if (ch->addr > st->file_size || ch->size > st->file_size - ch->addr) {
            snprintf(buf, buf_len,
                     "chunk %llu (%llu bytes at file offset %llu) runs past the end of the file "
                     "(%llu bytes): truncated?",
                     (unsigned long long)i, (unsigned long long)ch->size,
                     (unsigned long long)ch->addr, (unsigned long long)st->file_size);
            return damaged(err, d->path, d->dataset, buf);
        }
        if (ch->size > d->max_stored_chunk) d->max_stored_chunk = (size_t)ch->size;
    }
    return HFEED_OK;
}

/* Opens file fi for pread and, for the direct path, maps it read-only for residency probes only
 * (chunkio.h; once; a refused mapping leaves the probes saying "cached"). */
static int file_fd(struct hfeed__catalog *c, size_t fi, uint64_t file_size, bool map)
{
    if (c->fds[fi] >= 0) return c->fds[fi];
    c->fds[fi] = open(hfeed__h5_file_path(c->files[fi]), O_RDONLY | O_CLOEXEC);
    if (map && c->fds[fi] >= 0 && file_size > 0 && file_size <= SIZE_MAX) {
        void *m = mmap(NULL, (size_t)file_size, PROT_READ, MAP_SHARED, c->fds[fi], 0);
        if (m != MAP_FAILED) {
            c->maps[fi] = m;
            c->map_lens[fi] = file_size;
        }
    }
    return c->fds[fi];
}

static void direct_free(struct hfeed__direct *d)
{
    if (d == NULL) return;
    hfeed__free(d->chunks);
    hfeed__free(d);
}

/* Checks the storage of field k in file fi before anything reads it, chunk index included where
 * we can read it (HDF5 trusts what it finds there); then, when `direct`, decides whether the
 * direct path reads it, prepares it if so, and logs why not otherwise (once per dataset and
 * file). */
static hfeed_status setup_source(struct hfeed__catalog *c, size_t k, size_t fi, bool direct,
                                 const struct hfeed__logger *log, struct hfeed__err *err)
{
    struct hfeed__source *s = &c->fields[k].sources[fi];
    struct hfeed__dset_storage st;
    HFEED__CHECK(hfeed__h5_dset_storage(s->dset, &st, err));
    char buf[HFEED_ERRBUF_SIZE / 2];
    const char *fault =
        hfeed__catalog_storage_fault(&s->info, s->stored_row_bytes, &st, buf, sizeof buf);
    if (fault != NULL)
        return damaged(err, hfeed__h5_file_path(c->files[fi]), c->fields[k].dataset, fault);
    struct hfeed__direct *d = hfeed__calloc(1, sizeof *d);
    if (d == NULL) return HFEED__FAIL(err, HFEED_E_NOMEM, "direct path: out of memory");
    *d = (struct hfeed__direct){.path = hfeed__h5_file_path(c->files[fi]),
                                .dataset = c->fields[k].dataset,
                                .fd = file_fd(c, fi, st.file_size, direct),
                                .map = c->maps[fi],
                                .map_bytes = c->map_lens[fi],
                                .elem_size = s->info.type.size,
                                .row_bytes = s->stored_row_bytes,
                                .nrows = s->info.dims[0],
                                .contiguous_addr = st.contiguous_addr,
                                .chunked = s->info.layout == HFEED__LAYOUT_CHUNKED};
    memcpy(d->fill, st.fill, sizeof d->fill);
    d->pipeline.nfilters = st.nfilters;
    d->pipeline.elem_size = s->info.type.size;
    for (unsigned i = 0; i < st.nfilters; i++)
        d->pipeline.ids[i] = st.filters[i];
    const char *why = d->fd < 0 ? "cannot open the file for pread" : direct_blocker(s, &st);
    if (why == NULL && d->chunked) { /* whatever the filters: HDF5 would walk this index */
        const hfeed_status got = index_chunks(d, s, &st, &why, buf, sizeof buf, err);
        if (got != HFEED_OK) {
            direct_free(d);
            return got;
        }
    }
    if (why == NULL && d->chunked && !hfeed__codec_supports(&d->pipeline))
        why = "unsupported filter";
    if (!direct) { /* HFEED_READ_PATH=hdf5: checked, and read through HDF5 (logged at open) */
        direct_free(d);
        return HFEED_OK;
    }
    bool logged = false; /* two fields may read one dataset: one line per file and dataset */
    for (size_t j = 0; j < k; j++)
        logged = logged || strcmp(c->fields[j].dataset, c->fields[k].dataset) == 0;
    if (why != NULL) {
        direct_free(d);
        if (!logged)
            hfeed__log(log, HFEED_LOG_INFO, "file \"%s\" dataset \"%s\": read through H5Dread (%s)",
                       hfeed__h5_file_path(c->files[fi]), c->fields[k].dataset, why);
        return HFEED_OK;
    }
    s->direct = d;
    if (hfeed__chunkio_filtered(d)) {
        struct hfeed__field *f = &c->fields[k];
        if (d->chunk_bytes > f->max_chunk_bytes) f->max_chunk_bytes = d->chunk_bytes;
        if (d->chunk_bytes > c->max_chunk_bytes) c->max_chunk_bytes = d->chunk_bytes;
        if (d->tiled && d->tile_bytes > c->max_tile_bytes)
            c->max_tile_bytes = d->tile_bytes;
        if (d->max_stored_chunk > c->max_stored_chunk) c->max_stored_chunk = d->max_stored_chunk;
        f->filtered_chunks += d->nchunks;
    }
    return HFEED_OK;
}

/* Rows per shuffle block in file fi: the chunk rows of the widest field, or ~1 MiB of it. */
static uint64_t block_rows(const struct hfeed__catalog *c, size_t fi)
{
    const struct hfeed__source *widest = &c->fields[0].sources[fi];
    for (size_t k = 1; k < c->nfields; k++)
        if (c->fields[k].sources[fi].stored_row_bytes > widest->stored_row_bytes)
            widest = &c->fields[k].sources[fi];
    if (widest->info.layout == HFEED__LAYOUT_CHUNKED && widest->info.chunk[0] > 0)
        return widest->info.chunk[0];
    const uint64_t row = widest->stored_row_bytes > 0 ? widest->stored_row_bytes : 1;
    return HFEED__UNCHUNKED_BLOCK_BYTES / row > 0 ? HFEED__UNCHUNKED_BLOCK_BYTES / row : 1;
}

static hfeed_status make_blocks(struct hfeed__catalog *c, struct hfeed__err *err)
{
    size_t n = 0;
    for (size_t pass = 0; pass < 2; pass++) {
        n = 0;
        for (size_t fi = 0; fi < c->nfiles; fi++) {
            const uint64_t step = block_rows(c, fi);
            for (uint64_t s = c->file_start[fi]; s < c->file_start[fi + 1]; s += step) {
                if (pass == 1) c->block_starts[n] = s;
                n++;
            }
        }
        if (pass == 0) {
            c->block_starts = hfeed__alloc(n * sizeof *c->block_starts);
            if (c->block_starts == NULL)
                return HFEED__FAIL(err, HFEED_E_NOMEM, "shuffle blocks: out of memory");
        }
    }
    c->nblocks = n;
    return HFEED_OK;
}

static hfeed_status alloc_catalog(const struct hfeed__config *cfg, struct paths *files,
                                  struct hfeed__catalog *c, struct hfeed__err *err)
{
    c->nfiles = files->n;
    c->nfields = cfg->nfields;
    c->files = hfeed__calloc(files->n, sizeof *c->files);
    c->fds = hfeed__alloc((files->n > 0 ? files->n : 1) * sizeof *c->fds);
    c->maps = hfeed__calloc(files->n, sizeof *c->maps);
    c->map_lens = hfeed__calloc(files->n, sizeof *c->map_lens);
    for (size_t fi = 0; c->fds != NULL && fi < files->n; fi++)
        c->fds[fi] = -1;
    c->file_start = hfeed__calloc(files->n + 1, sizeof *c->file_start);
    c->fields = hfeed__calloc(cfg->nfields, sizeof *c->fields);
    if (c->files == NULL || c->fds == NULL || c->maps == NULL || c->map_lens == NULL ||
        c->file_start == NULL || c->fields == NULL) {
        c->nfields = c->fields == NULL ? 0 : c->nfields;
        c->nfiles = c->files == NULL ? 0 : c->nfiles;
        return HFEED__FAIL(err, HFEED_E_NOMEM, "catalog: out of memory");
    }
    for (size_t k = 0; k < cfg->nfields; k++) {
        c->fields[k].name = cfg->fields[k].name;
        c->fields[k].dataset = cfg->fields[k].dataset;
        c->fields[k].sources = hfeed__calloc(files->n, sizeof *c->fields[k].sources);
        if (c->fields[k].sources == NULL)
            return HFEED__FAIL(err, HFEED_E_NOMEM, "catalog: out of memory");
    }
    return HFEED_OK;
}

/* Descriptors the process has open now (Linux: /proc/self/fd), or 0 when that cannot be read. */
static uint64_t open_descriptors(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL) return 0;
    uint64_t n = 0;
    for (const struct dirent *e; (e = readdir(d)) != NULL;)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n > 0 ? n - 1 : 0; /* not the directory's own */
}

/* Stored bytes of a dataset small enough that reading its rows one at a time from the mapping
 * is cheap whatever the page cache's state: its pages take at most SMALL_MAPPED / 64 KiB faults
 * (fault-around) and stay within the TLB's reach, where a pread per row costs a syscall (about
 * 5 us on this project's VM: an 8-byte label per sample read with pread took as long as its
 * 8 KiB of features). */
#define SMALL_MAPPED ((uint64_t)16 << 20)

/* The bytes d's rows take in the file: its rows, or its slabs' chunks. */
static uint64_t stored_bytes(const struct hfeed__direct *d)
{
    return d->chunked ? d->nchunks * d->chunk_bytes : d->nrows * d->row_bytes;
}

/* Decides, per field and file, whether rows read one at a time come from the file's mapping
 * (chunkio.h rows_from_map): with "read_rows": "auto", only under global shuffle (the other
 * modes read runs of rows, always with pread), for datasets of at most SMALL_MAPPED bytes and
 * where the page cache holds the file in 2 MiB pages (hfeed__chunkio_huge_cached, probed once
 * per file); says how many, once. */
static void choose_row_reads(struct hfeed__catalog *c, const struct hfeed__config *cfg,
                             const struct hfeed__logger *log)
{
    const bool probe = cfg->read_rows == HFEED__ROWS_AUTO && cfg->shuffle == HFEED__SHUFFLE_GLOBAL;
    size_t sources = 0, mapped = 0, small = 0;
    for (size_t fi = 0; fi < c->nfiles; fi++) {
        bool huge = false, probed = false;
        for (size_t k = 0; k < c->nfields; k++) {
            struct hfeed__direct *d = c->fields[k].sources[fi].direct;
            if (d == NULL || d->map == NULL || hfeed__chunkio_filtered(d)) continue;
            const bool tiny = stored_bytes(d) <= SMALL_MAPPED;
            if (probe && !tiny && !probed) {
                huge = hfeed__chunkio_huge_cached(d); /* the page cache is per file */
                probed = true;
            }
            d->rows_from_map = cfg->read_rows == HFEED__ROWS_MAP || (probe && (tiny || huge));
            sources++;
            mapped += d->rows_from_map;
            small += probe && tiny;
        }
    }
    if (probe && sources > 0)
        hfeed__log(log, HFEED_LOG_INFO,
                   "read_rows \"auto\": rows of %zu of %zu (field, file) pair(s) come from the "
                   "file's mapping: %zu of at most 16 MiB, the others where the page cache holds "
                   "the file in 2 MiB pages, which a mapping maps whole; pread for the rest",
                   mapped, sources, small);
}

/* A loader keeps every file open: HDF5's handle, and with the direct path a descriptor for pread
 * (plus a mapping, which needs none). A glob over thousands of shard files can pass the soft
 * RLIMIT_NOFILE (often 1024), and HDF5 would then fail deep in its stack on whichever file came
 * last: say so before opening any, with the numbers and the fix. */
static hfeed_status check_descriptors(size_t nfiles, bool direct, struct hfeed__err *err)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return HFEED_OK;
    const uint64_t each = direct ? 2 : 1, headroom = 16; /* HDF5, logging, the caller's */
    const uint64_t open_now = open_descriptors();
    const uint64_t need = open_now + each * (uint64_t)nfiles + headroom;
    if (need <= (uint64_t)rl.rlim_cur) return HFEED_OK;
    char hard[96] = "";
    if (rl.rlim_max == RLIM_INFINITY || (uint64_t)rl.rlim_max >= need)
        snprintf(hard, sizeof hard, ", which the hard limit allows");
    else
        snprintf(hard, sizeof hard, " (the hard limit, %llu, too: limits.conf, or as root)",
                 (unsigned long long)rl.rlim_max);
    return HFEED__FAIL(err, HFEED_E_FILE,
                       "files: %zu files need %llu file descriptors open at once (%llu each, "
                       "plus the %llu open now and %llu spare), over this process's limit of "
                       "%llu (RLIMIT_NOFILE): raise it, e.g. ulimit -n %llu%s; or use fewer, "
                       "larger files",
                       nfiles, (unsigned long long)(each * (uint64_t)nfiles),
                       (unsigned long long)each, (unsigned long long)open_now,
                       (unsigned long long)headroom, (unsigned long long)rl.rlim_cur,
                       (unsigned long long)need, hard);
}

hfeed_status hfeed__catalog_open(const struct hfeed__config *cfg, const struct hfeed__logger *log,
                                 struct hfeed__catalog **out, struct hfeed__err *err)
{
    *out = NULL;
    struct paths files = {0};
    struct hfeed__catalog *c = hfeed__calloc(1, sizeof *c);
    hfeed_status st = c == NULL ? HFEED__FAIL(err, HFEED_E_NOMEM, "catalog: out of memory")
                                : expand(cfg, &files, err);
    if (st == HFEED_OK) st = check_descriptors(files.n, cfg->direct, err);
    if (st == HFEED_OK) st = alloc_catalog(cfg, &files, c, err);
    for (size_t fi = 0; st == HFEED_OK && fi < files.n; fi++) {
        st = hfeed__h5_file_open(files.v[fi], &c->files[fi], err);
        if (st == HFEED_OK) st = open_file_fields(c, cfg, fi, err);
        for (size_t k = 0; st == HFEED_OK && k < c->nfields; k++)
            st = setup_source(c, k, fi, cfg->direct, log, err);
        if (!cfg->direct && c->fds[fi] >= 0) { /* only opened to check the chunk indexes */
            close(c->fds[fi]);
            c->fds[fi] = -1;
        }
    }
    if (st == HFEED_OK && c->file_start[c->nfiles] == 0)
        st = HFEED__FAIL(err, HFEED_E_DATASET,
                         "no samples: the %zu file(s) matched by \"files\" (first: \"%s\") hold "
                         "0 rows of dataset \"%s\"",
                         c->nfiles, files.v[0], cfg->fields[0].dataset);
    if (st == HFEED_OK) st = make_blocks(c, err);
    if (st == HFEED_OK && cfg->direct) choose_row_reads(c, cfg, log);
    paths_free(&files);
    if (st != HFEED_OK) {
        hfeed__catalog_close(c);
        return st;
    }
    *out = c;
    return HFEED_OK;
}

uint64_t hfeed__catalog_chunk_bytes(const struct hfeed__catalog *c)
{
    uint64_t all = 0;
    for (size_t k = 0; k < c->nfields; k++)
        all += c->fields[k].filtered_chunks * c->fields[k].max_chunk_bytes;
    return all;
}

size_t hfeed__catalog_locate(const struct hfeed__catalog *c, uint64_t index, uint64_t *row)
{
    size_t lo = 0, hi = c->nfiles; /* invariant: file_start[lo] <= index < file_start[hi] */
    while (hi - lo > 1) {
        const size_t mid = lo + (hi - lo) / 2;
        if (c->file_start[mid] <= index)
            lo = mid;
        else
            hi = mid;
    }
    *row = index - c->file_start[lo];
    return lo;
}

void hfeed__catalog_close_files(struct hfeed__catalog *c)
{
    if (c == NULL) return;
    for (size_t k = 0; k < c->nfields; k++)
        for (size_t fi = 0; c->fields[k].sources != NULL && fi < c->nfiles; fi++) {
            hfeed__h5_dset_close(c->fields[k].sources[fi].dset);
            c->fields[k].sources[fi].dset = NULL;
            direct_free(c->fields[k].sources[fi].direct);
            c->fields[k].sources[fi].direct = NULL;
        }
    for (size_t fi = 0; c->files != NULL && fi < c->nfiles; fi++) {
        hfeed__h5_file_close(c->files[fi]);
        c->files[fi] = NULL;
        if (c->maps != NULL && c->maps[fi] != NULL)
            munmap((void *)(uintptr_t)c->maps[fi], (size_t)c->map_lens[fi]);
        if (c->maps != NULL) c->maps[fi] = NULL;
        if (c->fds != NULL && c->fds[fi] >= 0) close(c->fds[fi]);
        if (c->fds != NULL) c->fds[fi] = -1;
    }
}

void hfeed__catalog_close(struct hfeed__catalog *c)
{
    if (c == NULL) return;
    hfeed__catalog_close_files(c);
    for (size_t k = 0; k < c->nfields; k++)
        hfeed__free(c->fields[k].sources);
    hfeed__free(c->files);
    hfeed__free(c->fds);
    hfeed__free(c->maps);
    hfeed__free(c->map_lens);
    hfeed__free(c->file_start);
    hfeed__free(c->fields);
    hfeed__free(c->block_starts);
    hfeed__free(c);
}
