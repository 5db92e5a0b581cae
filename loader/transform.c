/* transform: per-field affine transforms and the standardisation first pass (transform.h).
 *
 * Memory: one struct per field; a transformed field owns one array of 4 * cols doubles (center,
 * divide, scale, offset: the struct hfeed__affine its conversions point at). The first pass
 * borrows two block buffers (stored bytes, float64) for its duration. */
#include "transform.h"

#include <math.h>
#include <string.h>

#include "alloc.h"

/* The first pass reads about this many stored bytes per H5Dread. */
#define PASS_BLOCK_BYTES ((size_t)1 << 20)

struct field_xf {
    bool active;    /* the field has a transform */
    bool stats;     /* ... and it is standardised: center/divide are its mean/std */
    double *values; /* 4 * cols: center, divide, scale, offset */
    struct hfeed__affine affine;
};

struct hfeed__transforms {
    size_t nfields;
    struct field_xf *f;
};

/* Running per-column statistics of (x - shift): count, mean and sum of squared deviations (M2).
 * shift is the first sample seen: with data like 1e8 + small noise, the shifted values are
 * small, so their means keep every digit that rounding a mean near 1e8 would lose. */
struct moments {
    double n;
    double *shift, *mean, *m2;
};

/* Merges the rows x[0 .. rows) (rows * cols, C order) into m: the block's own mean and M2 by two
 * passes over the shifted values, then Chan's pairwise update, so no sum of squares of large
 * values is ever formed. */
static void merge_block(struct moments *m, const double *x, size_t rows, size_t cols,
                        double *bmean, double *bm2)
{
    const double nb = (double)rows;
    if (m->n == 0)
        for (size_t c = 0; c < cols; c++)
            m->shift[c] = x[c];
    for (size_t c = 0; c < cols; c++)
        bmean[c] = bm2[c] = 0.0;
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++)
            bmean[c] += x[r * cols + c] - m->shift[c];
    for (size_t c = 0; c < cols; c++)
        bmean[c] /= nb;
    for (size_t r = 0; r < rows; r++) {
        for (size_t c = 0; c < cols; c++) {
            const double d = x[r * cols + c] - m->shift[c] - bmean[c];
            bm2[c] += d * d;
        }
    }
    const double n = m->n + nb;
    for (size_t c = 0; c < cols; c++) {
        const double delta = bmean[c] - m->mean[c];
        m->mean[c] += delta * (nb / n);
        m->m2[c] += bm2[c] + delta * delta * (m->n * nb / n);
    }
    m->n = n;
}

/* Reads every row of field k in every file and fills center (mean) and divide (std, 1 where 0). */
static hfeed_status first_pass(const struct hfeed__catalog *cat, size_t k, double *center,
                               double *divide, const struct hfeed__logger *log,
                               struct hfeed__err *err)
{
    const struct hfeed__field *f = &cat->fields[k];
    const size_t cols = f->row_elems;
    const size_t stored_row = f->max_stored_row_bytes > 0 ? f->max_stored_row_bytes : 1;
    size_t block = PASS_BLOCK_BYTES / stored_row;
    if (block == 0) block = 1;
    unsigned char *raw = hfeed__alloc(block * stored_row);
    double *x = hfeed__alloc(block * (cols > 0 ? cols : 1) * sizeof *x);
    /* block mean, block M2, shift, mean, M2 */
    double *tmp = hfeed__calloc(5 * cols + 1, sizeof *tmp);
    struct moments m = {0.0, tmp + 2 * cols, tmp + 3 * cols, tmp + 4 * cols};
    hfeed_status st =
        raw && x && tmp ? HFEED_OK : HFEED__FAIL(err, HFEED_E_NOMEM, "normalize: out of memory");
    for (size_t fi = 0; st == HFEED_OK && fi < cat->nfiles; fi++) {
        const struct hfeed__source *s = &f->sources[fi];
        const uint64_t rows = cat->file_start[fi + 1] - cat->file_start[fi];
        struct hfeed__conv conv;
        st = hfeed__conv_plan(s->info.type, HFEED_DTYPE_FLOAT64, &conv, err);
        for (uint64_t r = 0; st == HFEED_OK && r < rows; r += block) {
            const size_t take = (size_t)(rows - r < block ? rows - r : block);
            st = hfeed__h5_dset_read_rows(s->dset, r, take, raw, err);
            if (st == HFEED_OK) st = hfeed__conv_run(&conv, raw, x, take * cols, NULL, NULL);
            if (st == HFEED_OK) merge_block(&m, x, take, cols, tmp, tmp + cols);
        }
    }
    size_t constant = 0, nan = 0;
    for (size_t c = 0; st == HFEED_OK && c < cols; c++) {
        center[c] = m.n > 0 ? m.shift[c] + m.mean[c] : 0.0;
        divide[c] = m.n > 0 ? sqrt(m.m2[c] / m.n) : 1.0;
        nan += isnan(divide[c]) || isnan(center[c]);
        if (divide[c] == 0.0) {
            divide[c] = 1.0;
            constant++;
        }
    }
    if (st == HFEED_OK && constant > 0)
        hfeed__log(log, HFEED_LOG_WARN,
                   "field \"%s\": normalize: %zu of %zu feature columns are constant (std 0); "
                   "they are divided by 1 instead",
                   f->name, constant, cols);
    if (st == HFEED_OK && nan > 0)
        hfeed__log(log, HFEED_LOG_WARN,
                   "field \"%s\": normalize: %zu of %zu feature columns hold NaN; their mean and "
                   "std are NaN",
                   f->name, nan, cols);
    hfeed__free(raw);
    hfeed__free(x);
    hfeed__free(tmp);
    return st;
}

/* Checks a scale/offset list against the field's columns and spreads it over them. */
static hfeed_status spread(const double *v, size_t nv, double dflt, const char *key, size_t k,
                           const struct hfeed__field *f, double *out, struct hfeed__err *err)
{
    const size_t cols = f->row_elems;
    if (v != NULL && nv != 1 && nv != cols)
        return HFEED__FAIL(err, HFEED_E_CONFIG,
                           "fields[%zu].%s: %zu values, but field \"%s\" has %zu feature columns "
                           "(elements per sample); give one number or %zu",
                           k, key, nv, f->name, cols, cols);
    for (size_t c = 0; c < cols; c++)
        out[c] = v == NULL ? dflt : v[nv == 1 ? 0 : c];
    return HFEED_OK;
}

static hfeed_status build_field(const struct hfeed__field_config *fc, struct hfeed__catalog *cat,
                                size_t k, struct field_xf *x, const struct hfeed__logger *log,
                                struct hfeed__err *err)
{
    const struct hfeed__field *f = &cat->fields[k];
    const size_t cols = f->row_elems;
    x->values = hfeed__calloc(4 * cols + 1, sizeof *x->values);
    if (x->values == NULL) return HFEED__FAIL(err, HFEED_E_NOMEM, "transform: out of memory");
    double *center = x->values, *divide = center + cols, *scale = divide + cols,
           *offset = scale + cols;
    HFEED__CHECK(spread(fc->scale, fc->nscale, 1.0, "scale", k, f, scale, err));
    HFEED__CHECK(spread(fc->offset, fc->noffset, 0.0, "offset", k, f, offset, err));
    for (size_t c = 0; c < cols; c++) {
        center[c] = 0.0;
        divide[c] = 1.0;
    }
    if (fc->standardize) HFEED__CHECK(first_pass(cat, k, center, divide, log, err));
    x->active = true;
    x->stats = fc->standardize;
    x->affine = (struct hfeed__affine){cols, center, divide, scale, offset};
    for (size_t fi = 0; fi < cat->nfiles; fi++)
        hfeed__conv_set_affine(&cat->fields[k].sources[fi].conv, &x->affine);
    return HFEED_OK;
}

hfeed_status hfeed__transform_open(const struct hfeed__config *cfg, struct hfeed__catalog *cat,
                                   const struct hfeed__logger *log, struct hfeed__transforms **out,
                                   struct hfeed__err *err)
{
    *out = NULL;
    struct hfeed__transforms *t = hfeed__calloc(1, sizeof *t);
    if (t != NULL) t->f = hfeed__calloc(cfg->nfields, sizeof *t->f);
    if (t == NULL || t->f == NULL) {
        hfeed__transform_destroy(t);
        return HFEED__FAIL(err, HFEED_E_NOMEM, "transform: out of memory");
    }
    t->nfields = cfg->nfields;
    for (size_t k = 0; k < cfg->nfields; k++) {
        const struct hfeed__field_config *fc = &cfg->fields[k];
        if (!fc->standardize && fc->scale == NULL && fc->offset == NULL) continue;
        const hfeed_status st = build_field(fc, cat, k, &t->f[k], log, err);
        if (st != HFEED_OK) {
            for (size_t fi = 0; fi < cat->nfiles; fi++) /* nothing may point into t now */
                for (size_t j = 0; j <= k; j++)
                    hfeed__conv_set_affine(&cat->fields[j].sources[fi].conv, NULL);
            hfeed__transform_destroy(t);
            return st;
        }
    }
    *out = t;
    return HFEED_OK;
}

bool hfeed__transform_stats(const struct hfeed__transforms *t, size_t k, const double **mean,
                            const double **std, size_t *n)
{
    *mean = NULL;
    *std = NULL;
    *n = 0;
    if (t == NULL || k >= t->nfields || !t->f[k].stats) return false;
    *mean = t->f[k].affine.center;
    *std = t->f[k].affine.divide;
    *n = t->f[k].affine.cols;
    return true;
}

bool hfeed__transform_affine(const struct hfeed__transforms *t, size_t k, const double **scale,
                             const double **offset, size_t *n)
{
    *scale = NULL;
    *offset = NULL;
    *n = 0;
    if (t == NULL || k >= t->nfields || !t->f[k].active) return false;
    const struct hfeed__affine *a = &t->f[k].affine;
    bool identity = true;
    for (size_t c = 0; identity && c < a->cols; c++)
        identity = a->scale[c] == 1.0 && a->offset[c] == 0.0;
    if (identity) return false;
    *scale = a->scale;
    *offset = a->offset;
    *n = a->cols;
    return true;
}

void hfeed__transform_destroy(struct hfeed__transforms *t)
{
    if (t == NULL) return;
    for (size_t k = 0; t->f != NULL && k < t->nfields; k++)
        hfeed__free(t->f[k].values);
    hfeed__free(t->f);
    hfeed__free(t);
}
