/* synth: writes synthetic datasets, so users can test their storage with no data of their own.
 *
 * Values are a pure function of (seed, row, element) (hfeed_synth_value), so any reader — a
 * test, a Python script — can recompute what a file should hold without reading another copy.
 * Rows are written in blocks of about 8 MiB through h5io; memory stays at one block. */
#include <math.h>
#include <string.h>

#include "alloc.h"
#include "error.h"
#include "h5feed.h"
#include "h5io.h"

#define SYNTH_BLOCK_BYTES ((uint64_t)8 << 20)

static uint64_t splitmix64(uint64_t x)
{
    uint64_t z = x + 0x9e3779b97f4a7c15u;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

double hfeed_synth_value(uint64_t seed, uint64_t row, uint64_t per_row, uint64_t element)
{
    const uint64_t bits = splitmix64(seed ^ (row * per_row + element)) >> 11;
    return (double)bits * 0x1p-53 * 2.0 - 1.0;
}

/* IEEE binary16 bits of v, rounded to nearest even (as numpy's astype(float16)). */
static uint16_t half_bits(double v)
{
    const uint16_t sign = signbit(v) ? 0x8000u : 0u;
    const double a = fabs(v);
    if (isnan(v)) return (uint16_t)(sign | 0x7e00u);
    if (a >= 65520.0) return (uint16_t)(sign | 0x7c00u);
    if (a < 0x1p-14) /* subnormal, in units of 2^-24; 1024 units is the smallest normal */
        return (uint16_t)(sign | (uint16_t)nearbyint(a * 0x1p24));
    int e;
    const double m = frexp(a, &e); /* a = m * 2^e, m in [0.5, 1) */
    double frac = nearbyint((m * 2.0 - 1.0) * 1024.0);
    int biased = e - 1 + 15;
    if (frac == 1024.0) {
        frac = 0.0;
        biased++;
    }
    if (biased >= 31) return (uint16_t)(sign | 0x7c00u);
    return (uint16_t)(sign | (unsigned)biased << 10 | (unsigned)frac);
}

static bool host_big_endian(void)
{
    const uint16_t one = 1;
    unsigned char first;
    memcpy(&first, &one, 1);
    return first == 0;
}

/* Stores v as one element of type t (native order) at dst. */
static void store(double v, struct hfeed__type t, unsigned char *dst)
{
    if (t.cls == HFEED__CLASS_FLOAT) {
        if (t.size == 8) {
            memcpy(dst, &v, 8);
        } else if (t.size == 4) {
            const float f = (float)v;
            memcpy(dst, &f, 4);
        } else {
            const uint16_t h = half_bits(v);
            memcpy(dst, &h, 2);
        }
        return;
    }
    /* Integers hold floor((v + 1) * 50), in [0, 100): fits every integer type. */
    const uint64_t u = (uint64_t)floor((v + 1.0) * 50.0);
    const uint8_t b = (uint8_t)u;
    const uint16_t h = (uint16_t)u;
    const uint32_t w = (uint32_t)u;
    memcpy(dst,
           t.size == 1   ? (const void *)&b
           : t.size == 2 ? (const void *)&h
           : t.size == 4 ? (const void *)&w
                         : (const void *)&u,
           t.size);
}

static void swap_bytes(unsigned char *p, size_t n, size_t size)
{
    for (size_t i = 0; i < n; i++, p += size)
        for (size_t a = 0, b = size - 1; a < b; a++, b--) {
            const unsigned char tmp = p[a];
            p[a] = p[b];
            p[b] = tmp;
        }
}

static hfeed_status stored_type(hfeed_dtype d, bool big_endian, struct hfeed__type *t,
                                struct hfeed__err *err)
{
    t->size = hfeed_dtype_size(d);
    t->big_endian = big_endian;
    switch (d) {
    case HFEED_DTYPE_FLOAT16:
    case HFEED_DTYPE_FLOAT32:
    case HFEED_DTYPE_FLOAT64:
        t->cls = HFEED__CLASS_FLOAT;
        break;
    case HFEED_DTYPE_INT8:
    case HFEED_DTYPE_INT16:
    case HFEED_DTYPE_INT32:
    case HFEED_DTYPE_INT64:
        t->cls = HFEED__CLASS_INT;
        break;
    case HFEED_DTYPE_UINT8:
    case HFEED_DTYPE_UINT16:
    case HFEED_DTYPE_UINT32:
    case HFEED_DTYPE_UINT64:
        t->cls = HFEED__CLASS_UINT;
        break;
    default:
        return HFEED__FAIL(err, HFEED_E_INVALID_ARG, "synth: dtype %d is not valid", (int)d);
    }
    return HFEED_OK;
}

static hfeed_status check_spec(const hfeed_synth_spec *s, struct hfeed__err *err)
{
    if (s->rows == 0) return HFEED__FAIL(err, HFEED_E_INVALID_ARG, "synth: rows must be >= 1");
    if (s->sample_ndim < 0 || s->sample_ndim > HFEED_MAX_SAMPLE_DIMS)
        return HFEED__FAIL(err, HFEED_E_INVALID_ARG, "synth: sample_ndim must be 0..%d",
                           HFEED_MAX_SAMPLE_DIMS);
    for (int d = 0; d < s->sample_ndim; d++)
        if (s->sample_shape[d] == 0)
            return HFEED__FAIL(err, HFEED_E_INVALID_ARG, "synth: sample_shape[%d] is 0", d);
    if (s->gzip_level < 0 || s->gzip_level > 9)
        return HFEED__FAIL(err, HFEED_E_INVALID_ARG, "synth: gzip_level must be 0..9");
    if (s->chunk_rows == 0 && (s->gzip_level > 0 || s->shuffle || s->fletcher32))
        return HFEED__FAIL(err, HFEED_E_INVALID_ARG,
                           "synth: filters (gzip, shuffle, fletcher32) need chunk_rows > 0");
    return HFEED_OK;
}

/* Writes /features block by block. */
static hfeed_status write_features(struct hfeed__h5file *f, const hfeed_synth_spec *s,
                                   struct hfeed__type t, struct hfeed__err *err)
{
    uint64_t dims[HFEED__MAX_RANK] = {s->rows};
    uint64_t per_row = 1;
    for (int d = 0; d < s->sample_ndim; d++) {
        dims[d + 1] = s->sample_shape[d];
        per_row *= s->sample_shape[d];
    }
    struct hfeed__h5dset *d = NULL;
    HFEED__CHECK(hfeed__h5_dset_create(f, "/features", t, 1 + s->sample_ndim, dims, s->chunk_rows,
                                       s->gzip_level, s->shuffle, s->fletcher32, &d, err));
    const uint64_t row_bytes = per_row * t.size;
    const uint64_t block = SYNTH_BLOCK_BYTES / row_bytes > 0 ? SYNTH_BLOCK_BYTES / row_bytes : 1;
    unsigned char *buf = hfeed__alloc((size_t)(block * row_bytes));
    hfeed_status st =
        buf != NULL ? HFEED_OK : HFEED__FAIL(err, HFEED_E_NOMEM, "synth: out of memory");
    const bool swap = t.big_endian != host_big_endian() && t.size > 1;
    for (uint64_t r0 = 0; st == HFEED_OK && r0 < s->rows; r0 += block) {
        const uint64_t n = s->rows - r0 < block ? s->rows - r0 : block;
        for (uint64_t r = 0; r < n; r++)
            for (uint64_t e = 0; e < per_row; e++)
                store(hfeed_synth_value(s->seed, r0 + r, per_row, e), t,
                      buf + (r * per_row + e) * t.size);
        if (swap) swap_bytes(buf, (size_t)(n * per_row), t.size);
        st = hfeed__h5_dset_write_rows(d, r0, n, buf, err);
    }
    hfeed__free(buf);
    hfeed__h5_dset_close(d);
    return st;
}

/* Writes /labels (int64 LE, row % classes) with the features' layout and filters. */
static hfeed_status write_labels(struct hfeed__h5file *f, const hfeed_synth_spec *s,
                                 struct hfeed__err *err)
{
    const struct hfeed__type t = {HFEED__CLASS_INT, 8, false};
    const uint64_t dims[1] = {s->rows};
    struct hfeed__h5dset *d = NULL;
    HFEED__CHECK(hfeed__h5_dset_create(f, "/labels", t, 1, dims, s->chunk_rows, s->gzip_level,
                                       s->shuffle, s->fletcher32, &d, err));
    const uint64_t block = SYNTH_BLOCK_BYTES / 8;
    int64_t *buf = hfeed__alloc((size_t)(block * 8));
    hfeed_status st =
        buf != NULL ? HFEED_OK : HFEED__FAIL(err, HFEED_E_NOMEM, "synth: out of memory");
    const bool swap = host_big_endian();
    for (uint64_t r0 = 0; st == HFEED_OK && r0 < s->rows; r0 += block) {
        const uint64_t n = s->rows - r0 < block ? s->rows - r0 : block;
        for (uint64_t r = 0; r < n; r++)
            buf[r] = (int64_t)((r0 + r) % s->label_classes);
        if (swap) swap_bytes((unsigned char *)buf, (size_t)n, 8);
        st = hfeed__h5_dset_write_rows(d, r0, n, buf, err);
    }
    hfeed__free(buf);
    hfeed__h5_dset_close(d);
    return st;
}

hfeed_status hfeed_synth_write(const char *path, const hfeed_synth_spec *spec, char *errbuf,
                               size_t errbuf_len)
{
    struct hfeed__err err = {0};
    struct hfeed__type t;
    struct hfeed__h5file *f = NULL;
    hfeed_status st = path != NULL && spec != NULL
                          ? HFEED_OK
                          : hfeed__err_set(&err, HFEED_E_INVALID_ARG, "synth: NULL argument");
    if (st == HFEED_OK) st = check_spec(spec, &err);
    if (st == HFEED_OK) st = stored_type(spec->dtype, spec->big_endian != 0, &t, &err);
    if (st == HFEED_OK) st = hfeed__h5_file_create(path, &f, &err);
    if (st == HFEED_OK) st = write_features(f, spec, t, &err);
    if (st == HFEED_OK && spec->label_classes > 0) st = write_labels(f, spec, &err);
    hfeed__h5_file_close(f);
    if (st != HFEED_OK) hfeed__err_copy(&err, errbuf, errbuf_len);
    return st;
}
