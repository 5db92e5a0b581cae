/* fixtures: see fixtures.h. Every HDF5 call of the test suite lives here. */
#include "fixtures.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <hdf5.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ROTATE 16
#define FMT_SIZE (16 * 1024)

static char dir_path[256];
static char path_bufs[ROTATE][PATH_MAX];
static unsigned path_next;
static char fmt_bufs[ROTATE][FMT_SIZE];
static unsigned fmt_next;

/* --- temp dir ---------------------------------------------------------------------------- */

static void remove_tree(const char *path)
{
    DIR *d = opendir(path);
    if (d != NULL) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
                continue;
            }
            char child[PATH_MAX];
            snprintf(child, sizeof child, "%s/%s", path, e->d_name);
            struct stat st;
            if (lstat(child, &st) == 0 && S_ISDIR(st.st_mode)) {
                remove_tree(child);
            } else {
                unlink(child);
            }
        }
        closedir(d);
    }
    rmdir(path);
}

void fx_setup(void)
{
    snprintf(dir_path, sizeof dir_path, "/tmp/h5feed-test-XXXXXX");
    cr_assert_not_null(mkdtemp(dir_path), "mkdtemp: %s", strerror(errno));
    /* The tests check our messages, not HDF5's own stack printing. */
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

void fx_teardown(void)
{
    if (dir_path[0] != '\0') {
        remove_tree(dir_path);
        dir_path[0] = '\0';
    }
}

const char *fx_dir(void)
{
    cr_assert(dir_path[0] != '\0', "fx_setup() was not called (suite .init)");
    return dir_path;
}

const char *fx_path(const char *name)
{
    char *buf = path_bufs[path_next++ % ROTATE];
    int n = snprintf(buf, PATH_MAX, "%s/%s", fx_dir(), name);
    cr_assert(n > 0 && n < PATH_MAX);
    return buf;
}

const char *fx_fmt(const char *fmt, ...)
{
    char *buf = fmt_bufs[fmt_next++ % ROTATE];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, FMT_SIZE, fmt, ap);
    va_end(ap);
    cr_assert(n >= 0 && n < FMT_SIZE, "fx_fmt: text too long");
    return buf;
}

/* --- values ------------------------------------------------------------------------------- */

/* One stored value, in the stored type's own C type (float16 as its bits). */
struct stored {
    fx_kind kind;
    int64_t i;  /* signed kinds */
    uint64_t u; /* unsigned kinds */
    uint16_t h; /* float16 bits */
    float f32;
    double f64;
};

static const struct {
    const char *name;
    size_t size;
    bool is_float;
    bool is_signed;
    hfeed_dtype dtype;
} kinds[FX_KIND_COUNT] = {
    [FX_INT8] = {"int8", 1, false, true, HFEED_DTYPE_INT8},
    [FX_UINT8] = {"uint8", 1, false, false, HFEED_DTYPE_UINT8},
    [FX_INT16] = {"int16", 2, false, true, HFEED_DTYPE_INT16},
    [FX_UINT16] = {"uint16", 2, false, false, HFEED_DTYPE_UINT16},
    [FX_INT32] = {"int32", 4, false, true, HFEED_DTYPE_INT32},
    [FX_UINT32] = {"uint32", 4, false, false, HFEED_DTYPE_UINT32},
    [FX_INT64] = {"int64", 8, false, true, HFEED_DTYPE_INT64},
    [FX_UINT64] = {"uint64", 8, false, false, HFEED_DTYPE_UINT64},
    [FX_FLOAT16] = {"float16", 2, true, true, HFEED_DTYPE_FLOAT16},
    [FX_FLOAT32] = {"float32", 4, true, true, HFEED_DTYPE_FLOAT32},
    [FX_FLOAT64] = {"float64", 8, true, true, HFEED_DTYPE_FLOAT64},
};

hfeed_dtype fx_kind_dtype(fx_kind k)
{
    return kinds[k].dtype;
}

const char *fx_kind_name(fx_kind k)
{
    return kinds[k].name;
}

bool fx_kind_is_float(fx_kind k)
{
    return kinds[k].is_float;
}

size_t fx_sample_elems(const fx_dataset *d)
{
    size_t n = 1;
    for (int i = 0; i < d->ndim; i++) {
        n *= (size_t)d->shape[i];
    }
    return n;
}

uint16_t fx_half_from_double(double v)
{
    uint16_t sign = signbit(v) ? 0x8000u : 0u;
    if (isnan(v)) {
        return (uint16_t)(sign | 0x7e00u);
    }
    double a = fabs(v);
    if (isinf(a) || a >= 65520.0) { /* 65520 = max half + half an ulp: ties go to even (inf) */
        return (uint16_t)(sign | 0x7c00u);
    }
    if (a < ldexp(1.0, -14)) {                 /* subnormal: units of 2^-24 */
        double m = rint(ldexp(a, 24));         /* default rounding mode: nearest even */
        return (uint16_t)(sign | (uint16_t)m); /* m == 1024 is the smallest normal, 0x0400 */
    }
    int ex;
    double m = frexp(a, &ex); /* a = m * 2^ex, m in [0.5, 1) */
    int e = ex - 1;           /* a = (2m) * 2^e, 2m in [1, 2) */
    double mant = rint((2.0 * m - 1.0) * 1024.0);
    if (mant >= 1024.0) {
        mant = 0.0;
        e++;
    }
    if (e > 15) {
        return (uint16_t)(sign | 0x7c00u);
    }
    return (uint16_t)(sign | (uint16_t)((unsigned)(e + 15) << 10) | (uint16_t)mant);
}

double fx_half_to_double(uint16_t h)
{
    int e = (h >> 10) & 0x1f;
    unsigned m = h & 0x3ffu;
    double v;
    if (e == 0) {
        v = ldexp((double)m, -24);
    } else if (e == 31) {
        v = m != 0 ? NAN : INFINITY;
    } else {
        v = ldexp((double)(1024u + m), e - 25);
    }
    return (h & 0x8000u) ? -v : v;
}

static int64_t smin(fx_kind k)
{
    switch (k) {
    case FX_INT8:
        return INT8_MIN;
    case FX_INT16:
        return INT16_MIN;
    case FX_INT32:
        return INT32_MIN;
    default:
        return INT64_MIN;
    }
}

static int64_t smax(fx_kind k)
{
    switch (k) {
    case FX_INT8:
        return INT8_MAX;
    case FX_INT16:
        return INT16_MAX;
    case FX_INT32:
        return INT32_MAX;
    default:
        return INT64_MAX;
    }
}

static uint64_t umax(fx_kind k)
{
    switch (k) {
    case FX_UINT8:
        return UINT8_MAX;
    case FX_UINT16:
        return UINT16_MAX;
    case FX_UINT32:
        return UINT32_MAX;
    default:
        return UINT64_MAX;
    }
}

/* Narrows to the stored kind with a C cast (the value already fits unless a special says not). */
static void store_signed(struct stored *s, int64_t v)
{
    switch (s->kind) {
    case FX_INT8:
        s->i = (int8_t)v;
        break;
    case FX_INT16:
        s->i = (int16_t)v;
        break;
    case FX_INT32:
        s->i = (int32_t)v;
        break;
    default:
        s->i = v;
        break;
    }
}

static void store_unsigned(struct stored *s, uint64_t v)
{
    switch (s->kind) {
    case FX_UINT8:
        s->u = (uint8_t)v;
        break;
    case FX_UINT16:
        s->u = (uint16_t)v;
        break;
    case FX_UINT32:
        s->u = (uint32_t)v;
        break;
    default:
        s->u = v;
        break;
    }
}

static void store_float(struct stored *s, double v)
{
    switch (s->kind) {
    case FX_FLOAT16:
        s->h = fx_half_from_double(v);
        break;
    case FX_FLOAT32:
        s->f32 = (float)v;
        break;
    default:
        s->f64 = v;
        break;
    }
}

static const fx_special *find_special(const fx_dataset *d, uint64_t row, uint64_t elem)
{
    for (size_t i = 0; i < d->nspecials; i++) {
        if (d->specials[i].row == row && d->specials[i].elem == elem) {
            return &d->specials[i];
        }
    }
    return NULL;
}

/* The formula: see fixtures.h. row is global. */
static struct stored stored_value(const fx_dataset *d, uint64_t row, uint64_t elem)
{
    struct stored s;
    memset(&s, 0, sizeof s);
    s.kind = d->kind;
    const fx_special *sp = find_special(d, row, elem);
    if (sp != NULL) {
        if (kinds[d->kind].is_float) {
            store_float(&s, sp->f);
        } else if (kinds[d->kind].is_signed) {
            store_signed(&s, sp->i);
        } else {
            store_unsigned(&s, (uint64_t)sp->i);
        }
        return s;
    }
    if (d->index_values) {
        uint64_t v = row * fx_sample_elems(d) + elem;
        if (kinds[d->kind].is_float) {
            store_float(&s, (double)v);
        } else if (kinds[d->kind].is_signed) {
            store_signed(&s, (int64_t)v);
        } else {
            store_unsigned(&s, v);
        }
        return s;
    }
    uint64_t h = (row * 7919u + elem * 104729u + (uint64_t)d->salt * 15485863u) % 20011u;
    if (kinds[d->kind].is_float) {
        store_float(&s, (double)h / 37.0 - 270.0);
        return s;
    }
    uint64_t pick = (row + elem * 3u + d->salt) % 53u;
    if (kinds[d->kind].is_signed) {
        if (d->extremes && pick == 0) {
            s.i = smax(d->kind);
        } else if (d->extremes && pick == 1) {
            s.i = smin(d->kind);
        } else if (d->kind == FX_INT8) {
            s.i = (int64_t)(h % 256u) - 128;
        } else {
            s.i = (int64_t)h - 10005;
        }
    } else {
        if (d->extremes && pick == 0) {
            s.u = umax(d->kind);
        } else if (d->extremes && pick == 1) {
            s.u = 0;
        } else if (d->kind == FX_UINT8) {
            s.u = h % 256u;
        } else {
            s.u = h;
        }
    }
    return s;
}

static bool is_int_dtype(hfeed_dtype t)
{
    return t == HFEED_DTYPE_INT32 || t == HFEED_DTYPE_INT64;
}

static fx_expect_kind put_double(double v, hfeed_dtype out, void *dst)
{
    if (isnan(v)) {
        return FX_EXPECT_NAN;
    }
    if (out == HFEED_DTYPE_FLOAT32) {
        float f = (float)v;
        memcpy(dst, &f, sizeof f);
    } else {
        memcpy(dst, &v, sizeof v);
    }
    return FX_EXPECT_VALUE;
}

fx_expect_kind fx_expect(const fx_dataset *d, uint64_t row, uint64_t elem, hfeed_dtype out,
                         void *dst)
{
    struct stored s = stored_value(d, row, elem);
    const bool is_float = kinds[d->kind].is_float;
    if (out == HFEED_DTYPE_INVALID || out == kinds[d->kind].dtype) {
        /* native: the stored type itself, in native byte order */
        switch (d->kind) {
        case FX_INT8: {
            int8_t v = (int8_t)s.i;
            memcpy(dst, &v, 1);
            break;
        }
        case FX_UINT8: {
            uint8_t v = (uint8_t)s.u;
            memcpy(dst, &v, 1);
            break;
        }
        case FX_INT16: {
            int16_t v = (int16_t)s.i;
            memcpy(dst, &v, 2);
            break;
        }
        case FX_UINT16: {
            uint16_t v = (uint16_t)s.u;
            memcpy(dst, &v, 2);
            break;
        }
        case FX_INT32: {
            int32_t v = (int32_t)s.i;
            memcpy(dst, &v, 4);
            break;
        }
        case FX_UINT32: {
            uint32_t v = (uint32_t)s.u;
            memcpy(dst, &v, 4);
            break;
        }
        case FX_INT64:
            memcpy(dst, &s.i, 8);
            break;
        case FX_UINT64:
            memcpy(dst, &s.u, 8);
            break;
        case FX_FLOAT16:
            if (isnan(fx_half_to_double(s.h))) {
                return FX_EXPECT_NAN;
            }
            memcpy(dst, &s.h, 2);
            break;
        case FX_FLOAT32:
            if (isnan(s.f32)) {
                return FX_EXPECT_NAN;
            }
            memcpy(dst, &s.f32, 4);
            break;
        case FX_FLOAT64:
            if (isnan(s.f64)) {
                return FX_EXPECT_NAN;
            }
            memcpy(dst, &s.f64, 8);
            break;
        }
        return FX_EXPECT_VALUE;
    }
    if (is_float) {
        if (is_int_dtype(out)) {
            return FX_EXPECT_REFUSED;
        }
        double v = d->kind == FX_FLOAT16   ? fx_half_to_double(s.h)
                   : d->kind == FX_FLOAT32 ? (double)s.f32
                                           : s.f64;
        /* float32 -> float32 was handled as native; float64 -> float32 is the C cast. */
        return put_double(v, out, dst);
    }
    if (out == HFEED_DTYPE_FLOAT32) {
        float f = kinds[d->kind].is_signed ? (float)s.i : (float)s.u;
        memcpy(dst, &f, sizeof f);
        return FX_EXPECT_VALUE;
    }
    if (out == HFEED_DTYPE_FLOAT64) {
        double v = kinds[d->kind].is_signed ? (double)s.i : (double)s.u;
        memcpy(dst, &v, sizeof v);
        return FX_EXPECT_VALUE;
    }
    if (out == HFEED_DTYPE_INT32) {
        if (kinds[d->kind].is_signed ? (s.i < INT32_MIN || s.i > INT32_MAX)
                                     : s.u > (uint64_t)INT32_MAX) {
            return FX_EXPECT_RANGE;
        }
        int32_t v = kinds[d->kind].is_signed ? (int32_t)s.i : (int32_t)s.u;
        memcpy(dst, &v, sizeof v);
        return FX_EXPECT_VALUE;
    }
    cr_assert_eq(out, HFEED_DTYPE_INT64, "fx_expect: unsupported output dtype %d", (int)out);
    if (!kinds[d->kind].is_signed && s.u > (uint64_t)INT64_MAX) {
        return FX_EXPECT_RANGE;
    }
    int64_t v = kinds[d->kind].is_signed ? s.i : (int64_t)s.u;
    memcpy(dst, &v, sizeof v);
    return FX_EXPECT_VALUE;
}

/* --- HDF5 writers --------------------------------------------------------------------------- */

static hid_t half_type(bool big_endian)
{
    hid_t t = H5Tcopy(H5T_IEEE_F32LE);
    cr_assert(t >= 0);
    cr_assert(H5Tset_fields(t, 15, 10, 5, 0, 10) >= 0);
    cr_assert(H5Tset_size(t, 2) >= 0);
    cr_assert(H5Tset_ebias(t, 15) >= 0);
    if (big_endian) {
        cr_assert(H5Tset_order(t, H5T_ORDER_BE) >= 0);
    }
    return t;
}

/* The file type (caller closes it). */
static hid_t file_type(fx_kind k, bool be)
{
    hid_t t;
    switch (k) {
    case FX_INT8:
        t = be ? H5T_STD_I8BE : H5T_STD_I8LE;
        break;
    case FX_UINT8:
        t = be ? H5T_STD_U8BE : H5T_STD_U8LE;
        break;
    case FX_INT16:
        t = be ? H5T_STD_I16BE : H5T_STD_I16LE;
        break;
    case FX_UINT16:
        t = be ? H5T_STD_U16BE : H5T_STD_U16LE;
        break;
    case FX_INT32:
        t = be ? H5T_STD_I32BE : H5T_STD_I32LE;
        break;
    case FX_UINT32:
        t = be ? H5T_STD_U32BE : H5T_STD_U32LE;
        break;
    case FX_INT64:
        t = be ? H5T_STD_I64BE : H5T_STD_I64LE;
        break;
    case FX_UINT64:
        t = be ? H5T_STD_U64BE : H5T_STD_U64LE;
        break;
    case FX_FLOAT16:
        return half_type(be);
    case FX_FLOAT32:
        t = be ? H5T_IEEE_F32BE : H5T_IEEE_F32LE;
        break;
    default:
        t = be ? H5T_IEEE_F64BE : H5T_IEEE_F64LE;
        break;
    }
    return H5Tcopy(t);
}

/* The memory type matching the stored kind's C type (caller closes it). HDF5 then only changes
 * the byte order, so the stored bits are exactly what stored_value() computed. */
static hid_t mem_type(fx_kind k)
{
    switch (k) {
    case FX_INT8:
        return H5Tcopy(H5T_NATIVE_INT8);
    case FX_UINT8:
        return H5Tcopy(H5T_NATIVE_UINT8);
    case FX_INT16:
        return H5Tcopy(H5T_NATIVE_INT16);
    case FX_UINT16:
        return H5Tcopy(H5T_NATIVE_UINT16);
    case FX_INT32:
        return H5Tcopy(H5T_NATIVE_INT32);
    case FX_UINT32:
        return H5Tcopy(H5T_NATIVE_UINT32);
    case FX_INT64:
        return H5Tcopy(H5T_NATIVE_INT64);
    case FX_UINT64:
        return H5Tcopy(H5T_NATIVE_UINT64);
    case FX_FLOAT16:
        return half_type(false); /* x86/arm64 hosts are little-endian */
    case FX_FLOAT32:
        return H5Tcopy(H5T_NATIVE_FLOAT);
    default:
        return H5Tcopy(H5T_NATIVE_DOUBLE);
    }
}

static void put_stored(const struct stored *s, void *dst)
{
    switch (s->kind) {
    case FX_INT8: {
        int8_t v = (int8_t)s->i;
        memcpy(dst, &v, 1);
        break;
    }
    case FX_UINT8: {
        uint8_t v = (uint8_t)s->u;
        memcpy(dst, &v, 1);
        break;
    }
    case FX_INT16: {
        int16_t v = (int16_t)s->i;
        memcpy(dst, &v, 2);
        break;
    }
    case FX_UINT16: {
        uint16_t v = (uint16_t)s->u;
        memcpy(dst, &v, 2);
        break;
    }
    case FX_INT32: {
        int32_t v = (int32_t)s->i;
        memcpy(dst, &v, 4);
        break;
    }
    case FX_UINT32: {
        uint32_t v = (uint32_t)s->u;
        memcpy(dst, &v, 4);
        break;
    }
    case FX_INT64:
        memcpy(dst, &s->i, 8);
        break;
    case FX_UINT64:
        memcpy(dst, &s->u, 8);
        break;
    case FX_FLOAT16:
        memcpy(dst, &s->h, 2);
        break;
    case FX_FLOAT32:
        memcpy(dst, &s->f32, 4);
        break;
    case FX_FLOAT64:
        memcpy(dst, &s->f64, 8);
        break;
    }
}

static void write_dataset(hid_t file, const fx_dataset *d)
{
    cr_assert(d->path != NULL && d->ndim >= 0 && d->ndim <= FX_MAX_SAMPLE_DIMS);
    const int rank = 1 + d->ndim;
    hsize_t dims[FX_MAX_SAMPLE_DIMS + 1];
    hsize_t maxdims[FX_MAX_SAMPLE_DIMS + 1];
    dims[0] = d->rows;
    for (int i = 0; i < d->ndim; i++) {
        dims[1 + i] = d->shape[i];
    }
    for (int i = 0; i < rank; i++) {
        maxdims[i] = dims[i];
        if (d->unlimited_all || (i == 0 && d->unlimited)) {
            maxdims[i] = H5S_UNLIMITED;
        }
    }
    hid_t space = H5Screate_simple(rank, dims, maxdims);
    cr_assert(space >= 0, "H5Screate_simple for %s", d->path);

    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    cr_assert(dcpl >= 0);
    if (d->layout == FX_CHUNKED) {
        hsize_t cdims[FX_MAX_SAMPLE_DIMS + 1];
        for (int i = 0; i < rank; i++) {
            cr_assert(d->chunk[i] > 0, "%s: chunk dim %d is 0", d->path, i);
            cdims[i] = d->chunk[i];
            if (maxdims[i] != H5S_UNLIMITED && cdims[i] > dims[i]) {
                cdims[i] = dims[i] > 0 ? dims[i] : 1;
            }
        }
        cr_assert(H5Pset_chunk(dcpl, rank, cdims) >= 0, "H5Pset_chunk for %s", d->path);
        if (d->shuffle) {
            cr_assert(H5Pset_shuffle(dcpl) >= 0);
        }
        if (d->gzip > 0) {
            cr_assert(H5Pset_deflate(dcpl, (unsigned)d->gzip) >= 0);
        }
        if (d->fletcher32) {
            cr_assert(H5Pset_fletcher32(dcpl) >= 0);
        }
    } else {
        cr_assert(d->gzip == 0 && !d->shuffle && !d->fletcher32 && !d->unlimited,
                  "%s: filters and unlimited extents need FX_CHUNKED", d->path);
        cr_assert(H5Pset_layout(dcpl, d->layout == FX_COMPACT ? H5D_COMPACT : H5D_CONTIGUOUS) >= 0);
    }

    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    cr_assert(H5Pset_create_intermediate_group(lcpl, 1) >= 0);
    hid_t ftype = file_type(d->kind, d->big_endian);
    hid_t dset = H5Dcreate2(file, d->path, ftype, space, lcpl, dcpl, H5P_DEFAULT);
    cr_assert(dset >= 0, "H5Dcreate2 %s", d->path);

    const size_t elems = fx_sample_elems(d);
    const size_t esize = kinds[d->kind].size;
    const size_t total = (size_t)d->rows * elems;
    if (total > 0) {
        unsigned char *buf = malloc(total * esize);
        cr_assert_not_null(buf);
        for (uint64_t r = 0; r < d->rows; r++) {
            for (size_t e = 0; e < elems; e++) {
                struct stored s = stored_value(d, d->row_offset + r, e);
                put_stored(&s, buf + ((size_t)r * elems + e) * esize);
            }
        }
        hid_t mtype = mem_type(d->kind);
        cr_assert(H5Dwrite(dset, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0, "H5Dwrite %s",
                  d->path);
        H5Tclose(mtype);
        free(buf);
    }
    H5Dclose(dset);
    H5Tclose(ftype);
    H5Pclose(lcpl);
    H5Pclose(dcpl);
    H5Sclose(space);
}

static void write_file(const char *name, const fx_dataset *ds, size_t n, bool latest)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    cr_assert(fapl >= 0);
    if (latest) {
        cr_assert(H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST) >= 0);
    }
    hid_t file = H5Fcreate(fx_path(name), H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    cr_assert(file >= 0, "H5Fcreate %s", name);
    for (size_t i = 0; i < n; i++) {
        write_dataset(file, &ds[i]);
    }
    cr_assert(H5Fclose(file) >= 0);
    H5Pclose(fapl);
}

void fx_write_file(const char *name, const fx_dataset *ds, size_t n)
{
    write_file(name, ds, n, false);
}

void fx_write_file_latest(const char *name, const fx_dataset *ds, size_t n)
{
    write_file(name, ds, n, true);
}

static hid_t open_rw(const char *name)
{
    hid_t file = H5Fopen(fx_path(name), H5F_ACC_RDWR, H5P_DEFAULT);
    cr_assert(file >= 0, "H5Fopen %s", name);
    return file;
}

void fx_add_dataset(const char *name, const fx_dataset *d)
{
    hid_t file = open_rw(name);
    write_dataset(file, d);
    cr_assert(H5Fclose(file) >= 0);
}

void fx_add_string_dataset(const char *name, const char *path, uint64_t rows)
{
    hid_t file = open_rw(name);
    hid_t type = H5Tcopy(H5T_C_S1);
    cr_assert(H5Tset_size(type, 8) >= 0);
    hsize_t dims[1] = {rows};
    hid_t space = H5Screate_simple(1, dims, NULL);
    hid_t dset = H5Dcreate2(file, path, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    cr_assert(dset >= 0, "H5Dcreate2 %s", path);
    char *buf = calloc((size_t)rows + 1, 8);
    cr_assert_not_null(buf);
    for (uint64_t r = 0; r < rows; r++) {
        char text[24];
        snprintf(text, sizeof text, "s%llu", (unsigned long long)r);
        memcpy(buf + r * 8, text, strnlen(text, 8)); /* NUL-padded, as H5T_STR_NULLTERM */
    }
    if (rows > 0) {
        cr_assert(H5Dwrite(dset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0);
    }
    free(buf);
    H5Dclose(dset);
    H5Sclose(space);
    H5Tclose(type);
    cr_assert(H5Fclose(file) >= 0);
}

struct compound_row {
    int32_t a;
    double b;
};

void fx_add_compound_dataset(const char *name, const char *path, uint64_t rows)
{
    hid_t file = open_rw(name);
    hid_t type = H5Tcreate(H5T_COMPOUND, sizeof(struct compound_row));
    cr_assert(type >= 0);
    cr_assert(H5Tinsert(type, "a", offsetof(struct compound_row, a), H5T_NATIVE_INT32) >= 0);
    cr_assert(H5Tinsert(type, "b", offsetof(struct compound_row, b), H5T_NATIVE_DOUBLE) >= 0);
    hsize_t dims[1] = {rows};
    hid_t space = H5Screate_simple(1, dims, NULL);
    hid_t dset = H5Dcreate2(file, path, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    cr_assert(dset >= 0, "H5Dcreate2 %s", path);
    struct compound_row *buf = calloc((size_t)rows + 1, sizeof *buf);
    cr_assert_not_null(buf);
    for (uint64_t r = 0; r < rows; r++) {
        buf[r].a = (int32_t)r;
        buf[r].b = (double)r * 0.5;
    }
    if (rows > 0) {
        cr_assert(H5Dwrite(dset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0);
    }
    free(buf);
    H5Dclose(dset);
    H5Sclose(space);
    H5Tclose(type);
    cr_assert(H5Fclose(file) >= 0);
}

void fx_add_scalar_dataset(const char *name, const char *path)
{
    hid_t file = open_rw(name);
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t dset =
        H5Dcreate2(file, path, H5T_STD_I32LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    cr_assert(dset >= 0, "H5Dcreate2 %s", path);
    int32_t v = 42;
    cr_assert(H5Dwrite(dset, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, &v) >= 0);
    H5Dclose(dset);
    H5Sclose(space);
    cr_assert(H5Fclose(file) >= 0);
}

void fx_write_text(const char *name, const char *text)
{
    FILE *f = fopen(fx_path(name), "w");
    cr_assert_not_null(f, "fopen %s: %s", name, strerror(errno));
    cr_assert(fputs(text, f) >= 0);
    cr_assert(fclose(f) == 0);
}

void fx_truncate(const char *name, double fraction)
{
    const char *p = fx_path(name);
    struct stat st;
    cr_assert(stat(p, &st) == 0, "stat %s", p);
    off_t size = (off_t)((double)st.st_size * fraction);
    cr_assert(truncate(p, size) == 0, "truncate %s: %s", p, strerror(errno));
}

void fx_corrupt_chunk(const char *name, const char *dset_path, uint64_t chunk_index,
                      uint64_t *first_row, uint64_t *nrows)
{
    const char *p = fx_path(name);
    hid_t file = H5Fopen(p, H5F_ACC_RDONLY, H5P_DEFAULT);
    cr_assert(file >= 0, "H5Fopen %s", p);
    hid_t dset = H5Dopen2(file, dset_path, H5P_DEFAULT);
    cr_assert(dset >= 0, "H5Dopen2 %s", dset_path);
    hid_t space = H5Dget_space(dset);
    hsize_t offset[FX_MAX_SAMPLE_DIMS + 1] = {0};
    unsigned mask = 0;
    haddr_t addr = 0;
    hsize_t size = 0;
    cr_assert(H5Dget_chunk_info(dset, space, chunk_index, offset, &mask, &addr, &size) >= 0,
              "H5Dget_chunk_info %s chunk %llu", dset_path, (unsigned long long)chunk_index);
    hid_t dcpl = H5Dget_create_plist(dset);
    hsize_t cdims[FX_MAX_SAMPLE_DIMS + 1] = {0};
    cr_assert(H5Pget_chunk(dcpl, FX_MAX_SAMPLE_DIMS + 1, cdims) >= 1);
    H5Pclose(dcpl);
    H5Sclose(space);
    H5Dclose(dset);
    H5Fclose(file);
    cr_assert(addr != HADDR_UNDEF && size >= 64, "chunk too small to corrupt (%llu bytes)",
              (unsigned long long)size);

    int fd = open(p, O_RDWR);
    cr_assert(fd >= 0, "open %s: %s", p, strerror(errno));
    unsigned char buf[32];
    off_t at = (off_t)(addr + size / 2 - sizeof buf / 2);
    cr_assert(pread(fd, buf, sizeof buf, at) == (ssize_t)sizeof buf);
    for (size_t i = 0; i < sizeof buf; i++) {
        buf[i] = (unsigned char)(buf[i] ^ 0x5a);
    }
    cr_assert(pwrite(fd, buf, sizeof buf, at) == (ssize_t)sizeof buf);
    cr_assert(close(fd) == 0);
    if (first_row != NULL) {
        *first_row = offset[0];
    }
    if (nrows != NULL) {
        *nrows = cdims[0];
    }
}

/* --- loader helpers ----------------------------------------------------------------------- */

hfeed_status fx_open(const char *json, hfeed_loader **out, char *errbuf)
{
    errbuf[0] = '\0';
    return hfeed_loader_open_json(json, fx_dir(), NULL, NULL, out, errbuf, HFEED_ERRBUF_SIZE);
}
