/* convert: stored element type and byte order -> output dtype (the contract is in convert.h).
 *
 * DESIGN
 *
 * hfeed__conv_plan() decides whether a conversion is allowed; hfeed__conv_run() then picks one of
 * four paths from the plan, once per call:
 *   copy    : same type, native order: memcpy (plus a NaN count over the output when asked).
 *   swap    : same type, foreign order: a byte-swap loop.
 *   f64->f32: the hot narrowing: one fused loop (cast, store, count NaN and infinity on the
 *             result) without branches, in LANES-sized runs so that it vectorises at -O2.
 *   generic : everything else, in blocks of BLOCK elements: decode a block into a stack scratch
 *             of int64, uint64 or double (exact for every source type), then encode it into the
 *             output. Each half is a tight loop with the type switch hoisted out of it, and the
 *             scratch is small enough to stay in L1; no allocation.
 *
 * Byte order: elements are loaded with memcpy (no alignment or aliasing assumptions) and swapped
 * when the source order differs from the host's, found by looking at the bytes of a constant, so
 * the code does not depend on the host being little-endian.
 *
 * Integer -> float is the C cast from the integer itself (int64 -> float directly, never through
 * double, which would round twice). Integer -> integer checks the range of a whole block first,
 * converts up to the first value that does not fit and reports its index.
 *
 * Transforms (affine_run) take the generic path's shape: decode a block, turn it into float64
 * in place, apply the per-column formula in place, encode as a float block. The formula is
 * written exactly as documented, (x - center) / divide * scale + offset, not folded into one
 * multiply-add, so that float64 results equal a plain reference computation bit for bit. */
#include "convert.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

enum { BLOCK = 256 };

/* What a source element is decoded to in the generic path. */
enum kind { KIND_INT, KIND_UINT, KIND_FLOAT };

union scratch {
    int64_t i[BLOCK];
    uint64_t u[BLOCK];
    double f[BLOCK];
};

static bool host_big_endian(void)
{
    const uint16_t one = 1;
    unsigned char first;
    memcpy(&first, &one, 1);
    return first == 0;
}

static uint16_t bswap16(uint16_t v)
{
    return (uint16_t)((v >> 8) | (v << 8));
}

static uint32_t bswap32(uint32_t v)
{
    v = ((v & 0x00ff00ffu) << 8) | ((v >> 8) & 0x00ff00ffu);
    return (v << 16) | (v >> 16);
}

static uint64_t bswap64(uint64_t v)
{
    return ((uint64_t)bswap32((uint32_t)v) << 32) | bswap32((uint32_t)(v >> 32));
}

/* ---- types -------------------------------------------------------------------------------- */

hfeed_dtype hfeed__conv_native(struct hfeed__type src)
{
    static const hfeed_dtype ints[] = {HFEED_DTYPE_INT8, HFEED_DTYPE_INT16, HFEED_DTYPE_INT32,
                                       HFEED_DTYPE_INT64};
    static const hfeed_dtype uints[] = {HFEED_DTYPE_UINT8, HFEED_DTYPE_UINT16, HFEED_DTYPE_UINT32,
                                        HFEED_DTYPE_UINT64};
    static const hfeed_dtype floats[] = {HFEED_DTYPE_INVALID, HFEED_DTYPE_FLOAT16,
                                         HFEED_DTYPE_FLOAT32, HFEED_DTYPE_FLOAT64};
    const int lg = src.size == 1 ? 0 : src.size == 2 ? 1 : src.size == 4 ? 2 : 3;
    if (src.size != ((size_t)1 << lg)) return HFEED_DTYPE_INVALID;
    switch (src.cls) {
    case HFEED__CLASS_INT:
        return ints[lg];
    case HFEED__CLASS_UINT:
        return uints[lg];
    case HFEED__CLASS_FLOAT:
        return floats[lg];
    }
    return HFEED_DTYPE_INVALID;
}

/* Class and size of each output dtype; size 0 marks an unknown one. */
static const struct {
    enum hfeed__type_class cls;
    size_t size;
} dtypes[] = {
    [HFEED_DTYPE_INT8] = {HFEED__CLASS_INT, 1},
    [HFEED_DTYPE_INT16] = {HFEED__CLASS_INT, 2},
    [HFEED_DTYPE_INT32] = {HFEED__CLASS_INT, 4},
    [HFEED_DTYPE_INT64] = {HFEED__CLASS_INT, 8},
    [HFEED_DTYPE_UINT8] = {HFEED__CLASS_UINT, 1},
    [HFEED_DTYPE_UINT16] = {HFEED__CLASS_UINT, 2},
    [HFEED_DTYPE_UINT32] = {HFEED__CLASS_UINT, 4},
    [HFEED_DTYPE_UINT64] = {HFEED__CLASS_UINT, 8},
    [HFEED_DTYPE_FLOAT16] = {HFEED__CLASS_FLOAT, 2},
    [HFEED_DTYPE_FLOAT32] = {HFEED__CLASS_FLOAT, 4},
    [HFEED_DTYPE_FLOAT64] = {HFEED__CLASS_FLOAT, 8},
};

static bool dst_info(hfeed_dtype d, enum hfeed__type_class *cls, size_t *size)
{
    const unsigned i = (unsigned)d;
    if (i >= sizeof dtypes / sizeof dtypes[0] || dtypes[i].size == 0) return false;
    *cls = dtypes[i].cls;
    *size = dtypes[i].size;
    return true;
}

/* Our own names: this module must not depend on the public facade. */
static const char *dtype_name(hfeed_dtype d)
{
    static const char *const names[] = {"invalid", "float32", "float64", "int32",
                                        "int64",   "int8",    "uint8",   "int16",
                                        "uint16",  "uint32",  "uint64",  "float16"};
    const unsigned i = (unsigned)d;
    return i < sizeof names / sizeof names[0] ? names[i] : "invalid";
}

hfeed_status hfeed__conv_plan(struct hfeed__type src, hfeed_dtype dst, struct hfeed__conv *out,
                              struct hfeed__err *err)
{
    static const char *const classes[] = {"?", "signed integer", "unsigned integer", "float"};
    memset(out, 0, sizeof *out);
    const hfeed_dtype native = hfeed__conv_native(src);
    enum hfeed__type_class dcls;
    size_t dsize;
    if (native == HFEED_DTYPE_INVALID) {
        const unsigned c = (unsigned)src.cls < 4 ? (unsigned)src.cls : 0;
        return HFEED__FAIL(err, HFEED_E_TYPE, "unsupported stored type: %s of %zu bytes",
                           classes[c], src.size);
    }
    if (!dst_info(dst, &dcls, &dsize))
        return HFEED__FAIL(err, HFEED_E_TYPE, "unknown output dtype %d", (int)dst);
    if (src.cls == HFEED__CLASS_FLOAT && dcls != HFEED__CLASS_FLOAT)
        return HFEED__FAIL(err, HFEED_E_TYPE,
                           "cannot convert %s to %s: float to integer output is refused",
                           dtype_name(native), dtype_name(dst));
    if (dst == HFEED_DTYPE_FLOAT16 && native != HFEED_DTYPE_FLOAT16)
        return HFEED__FAIL(err, HFEED_E_TYPE,
                           "cannot convert %s to float16: float16 output needs a float16 "
                           "stored type",
                           dtype_name(native));
    out->src = src;
    out->dst = dst;
    /* Order does not matter for single bytes. */
    out->copy = native == dst && (src.size == 1 || src.big_endian == host_big_endian());
    return HFEED_OK;
}

/* ---- float16 ------------------------------------------------------------------------------ */

float hfeed__half_to_float(uint16_t h)
{
    const uint32_t sign = (uint32_t)(h >> 15) << 31;
    const uint32_t exp = (h >> 10) & 0x1fu;
    const uint32_t mant = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0) {
        /* Zero or subnormal: mant * 2^-24, exact in float (10 bits times a power of two). */
        const float mag = (float)mant * 0x1p-24f;
        return sign ? -mag : mag;
    }
    if (exp == 31)
        bits = sign | 0x7f800000u | (mant << 13); /* inf, or NaN keeping its payload */
    else
        bits = sign | ((exp + 112) << 23) | (mant << 13); /* rebias 15 -> 127 */
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static bool half_is_nan(uint16_t h)
{
    return (h & 0x7fffu) > 0x7c00u;
}

/* ---- NaN counting over native floats ------------------------------------------------------- */

/* The hot loops below run over LANES elements at a time with 32-bit counters, restrict pointers
 * and a constant trip count: that is what GCC's -O2 (very cheap) cost model needs to vectorise
 * them with plain SSE2. A double is tested through its float cast (NaN stays NaN), because SSE2
 * has no 64-bit mask that a 32-bit counter could take. */
enum { LANES = 64 };

static uint32_t nan_lanes(const unsigned char *p, size_t k, size_t size)
{
    uint32_t nan = 0;
    if (size == 8) {
        for (size_t i = 0; i < k; i++) {
            double x;
            memcpy(&x, p + 8 * i, 8);
            const float f = (float)x;
            nan += (uint32_t)(f != f);
        }
    } else if (size == 4) {
        for (size_t i = 0; i < k; i++) {
            float x;
            memcpy(&x, p + 4 * i, 4);
            nan += (uint32_t)(x != x);
        }
    } else {
        for (size_t i = 0; i < k; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            nan += (uint32_t)half_is_nan(h);
        }
    }
    return nan;
}

static uint64_t count_nan(const unsigned char *p, size_t n, size_t size)
{
    uint64_t nan = 0;
    size_t i = 0;
    for (; n - i >= LANES; i += LANES)
        nan += nan_lanes(p + size * i, LANES, size);
    return nan + nan_lanes(p + size * i, n - i, size);
}

/* ---- same type: swap ---------------------------------------------------------------------- */

static void swap_run(const unsigned char *s, unsigned char *d, size_t n, size_t size)
{
    if (size == 2) {
        for (size_t i = 0; i < n; i++) {
            uint16_t v;
            memcpy(&v, s + 2 * i, 2);
            v = bswap16(v);
            memcpy(d + 2 * i, &v, 2);
        }
    } else if (size == 4) {
        for (size_t i = 0; i < n; i++) {
            uint32_t v;
            memcpy(&v, s + 4 * i, 4);
            v = bswap32(v);
            memcpy(d + 4 * i, &v, 4);
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            uint64_t v;
            memcpy(&v, s + 8 * i, 8);
            v = bswap64(v);
            memcpy(d + 8 * i, &v, 8);
        }
    }
}

/* ---- float64 -> float32, native order ----------------------------------------------------- */

/* Casts k elements. NaN and infinity are counted on the float result, branch-free; only when a
 * lane block produced an infinity (rare) are the sources rescanned, so that infinite sources are
 * not counted as overflow. */
static void cast_lanes(const unsigned char *restrict s, unsigned char *restrict d, size_t k,
                       struct hfeed__conv_counts *c)
{
    uint32_t nan = 0, inf = 0;
    for (size_t i = 0; i < k; i++) {
        double x;
        memcpy(&x, s + 8 * i, 8);
        const float f = (float)x;
        memcpy(d + 4 * i, &f, 4);
        nan += (uint32_t)(f != f);
        inf += (uint32_t)(fabsf(f) == INFINITY);
    }
    c->nan += nan;
    if (inf == 0) return;
    for (size_t i = 0; i < k; i++) {
        double x;
        memcpy(&x, s + 8 * i, 8);
        inf -= (uint32_t)(fabs(x) == INFINITY);
    }
    c->overflow += inf;
}

static void f64_to_f32(const unsigned char *restrict s, unsigned char *restrict d, size_t n,
                       struct hfeed__conv_counts *counts)
{
    struct hfeed__conv_counts c = {0, 0};
    size_t i = 0;
    for (; n - i >= LANES; i += LANES)
        cast_lanes(s + 8 * i, d + 4 * i, LANES, &c);
    cast_lanes(s + 8 * i, d + 4 * i, n - i, &c);
    if (counts != NULL) {
        counts->nan += c.nan;
        counts->overflow += c.overflow;
    }
}

/* ---- generic: decode ---------------------------------------------------------------------- */

/* Loads k unsigned elements of `size` bytes, swapping when asked. One loop per size, so each
 * is a straight load (and bswap) the compiler can vectorise. */
static void decode_bits(const unsigned char *s, size_t size, bool swap, size_t k, uint64_t *u)
{
    switch (size) {
    case 1:
        for (size_t j = 0; j < k; j++)
            u[j] = s[j];
        break;
    case 2:
        for (size_t j = 0; j < k; j++) {
            uint16_t v;
            memcpy(&v, s + 2 * j, 2);
            u[j] = swap ? bswap16(v) : v;
        }
        break;
    case 4:
        for (size_t j = 0; j < k; j++) {
            uint32_t v;
            memcpy(&v, s + 4 * j, 4);
            u[j] = swap ? bswap32(v) : v;
        }
        break;
    default:
        for (size_t j = 0; j < k; j++) {
            uint64_t v;
            memcpy(&v, s + 8 * j, 8);
            u[j] = swap ? bswap64(v) : v;
        }
    }
}

/* Sign-extends in place. The sign bit test avoids implementation-defined narrowing casts. */
static void sign_extend(size_t size, size_t k, union scratch *b)
{
    if (size == 8) return; /* int64 and uint64 share their object representation */
    const uint64_t sign = (uint64_t)1 << (8 * size - 1);
    const uint64_t high = ~((sign << 1) - 1);
    for (size_t j = 0; j < k; j++) {
        const uint64_t v = b->u[j] & sign ? b->u[j] | high : b->u[j];
        memcpy(&b->i[j], &v, sizeof v);
    }
}

static void bits_to_float(size_t size, size_t k, union scratch *b)
{
    if (size == 2) {
        for (size_t j = 0; j < k; j++)
            b->f[j] = hfeed__half_to_float((uint16_t)b->u[j]);
    } else if (size == 4) {
        for (size_t j = 0; j < k; j++) {
            const uint32_t v = (uint32_t)b->u[j];
            float f;
            memcpy(&f, &v, 4);
            b->f[j] = f;
        }
    }
    /* size 8: the bits already are the double (union scratch shares the storage). */
}

static enum kind decode(struct hfeed__type t, const unsigned char *s, size_t k, union scratch *b)
{
    const bool swap = t.size > 1 && t.big_endian != host_big_endian();
    decode_bits(s, t.size, swap, k, b->u);
    if (t.cls == HFEED__CLASS_INT) {
        sign_extend(t.size, k, b);
        return KIND_INT;
    }
    if (t.cls == HFEED__CLASS_UINT) return KIND_UINT;
    bits_to_float(t.size, k, b);
    return KIND_FLOAT;
}

/* ---- generic: encode ---------------------------------------------------------------------- */

static void encode_float32(enum kind kind, const union scratch *b, size_t k, unsigned char *d,
                           struct hfeed__conv_counts *counts)
{
    if (kind != KIND_FLOAT) {
        for (size_t j = 0; j < k; j++) {
            const float f = kind == KIND_INT ? (float)b->i[j] : (float)b->u[j];
            memcpy(d + 4 * j, &f, 4);
        }
        return;
    }
    uint64_t nan = 0, overflow = 0;
    for (size_t j = 0; j < k; j++) {
        const double x = b->f[j];
        const float f = (float)x;
        memcpy(d + 4 * j, &f, 4);
        nan += (uint64_t)(x != x);
        overflow += (uint64_t)((fabsf(f) == INFINITY) & (fabs(x) != INFINITY));
    }
    if (counts != NULL) {
        counts->nan += nan;
        counts->overflow += overflow;
    }
}

static void encode_float64(enum kind kind, const union scratch *b, size_t k, unsigned char *d,
                           struct hfeed__conv_counts *counts)
{
    if (kind != KIND_FLOAT) {
        for (size_t j = 0; j < k; j++) {
            const double x = kind == KIND_INT ? (double)b->i[j] : (double)b->u[j];
            memcpy(d + 8 * j, &x, 8);
        }
        return;
    }
    uint64_t nan = 0;
    for (size_t j = 0; j < k; j++)
        nan += (uint64_t)(b->f[j] != b->f[j]);
    memcpy(d, b->f, k * 8);
    if (counts != NULL) counts->nan += nan;
}

/* The number of leading elements that fit an integer dtype of (cls, size). */
static size_t fitting(enum kind kind, const union scratch *b, size_t k, enum hfeed__type_class cls,
                      size_t size)
{
    const uint64_t umax =
        cls == HFEED__CLASS_UINT ? UINT64_MAX >> (64 - 8 * size) : UINT64_MAX >> (65 - 8 * size);
    const int64_t smin = cls == HFEED__CLASS_UINT ? 0 : -(int64_t)umax - 1;
    size_t j = 0;
    if (kind == KIND_UINT) {
        while (j < k && b->u[j] <= umax)
            j++;
    } else {
        while (j < k && b->i[j] >= smin && (b->i[j] < 0 || (uint64_t)b->i[j] <= umax))
            j++;
    }
    return j;
}

/* Stores the low `size` bytes of each value: for values in range, that is the two's complement
 * (or plain binary) representation in either signed or unsigned output. */
static void encode_int(const union scratch *b, size_t k, size_t size, unsigned char *d)
{
    switch (size) {
    case 1:
        for (size_t j = 0; j < k; j++)
            d[j] = (unsigned char)b->u[j];
        break;
    case 2:
        for (size_t j = 0; j < k; j++) {
            const uint16_t w = (uint16_t)b->u[j];
            memcpy(d + 2 * j, &w, 2);
        }
        break;
    case 4:
        for (size_t j = 0; j < k; j++) {
            const uint32_t w = (uint32_t)b->u[j];
            memcpy(d + 4 * j, &w, 4);
        }
        break;
    default:
        memcpy(d, b->u, k * 8);
    }
}

static hfeed_status generic_run(const struct hfeed__conv *c, const unsigned char *s,
                                unsigned char *d, size_t n, struct hfeed__conv_counts *counts,
                                size_t *bad)
{
    enum hfeed__type_class dcls = HFEED__CLASS_INT;
    size_t dsize = 0;
    const bool planned = dst_info(c->dst, &dcls, &dsize);
    assert(planned && "hfeed__conv_run needs a conversion from hfeed__conv_plan");
    (void)planned;
    union scratch b;
    for (size_t done = 0; done < n;) {
        const size_t k = n - done < BLOCK ? n - done : BLOCK;
        const enum kind kind = decode(c->src, s + done * c->src.size, k, &b);
        unsigned char *out = d + done * dsize;
        if (c->dst == HFEED_DTYPE_FLOAT32) {
            encode_float32(kind, &b, k, out, counts);
        } else if (c->dst == HFEED_DTYPE_FLOAT64) {
            encode_float64(kind, &b, k, out, counts);
        } else {
            const size_t ok = fitting(kind, &b, k, dcls, dsize);
            encode_int(&b, ok, dsize, out);
            if (ok < k) {
                if (bad != NULL) *bad = done + ok;
                return HFEED_E_RANGE;
            }
        }
        done += k;
    }
    return HFEED_OK;
}

const char *hfeed__conv_value_text(struct hfeed__type src, const void *elem, char *buf, size_t len)
{
    union scratch b;
    switch (decode(src, elem, 1, &b)) {
    case KIND_INT:
        snprintf(buf, len, "%lld", (long long)b.i[0]);
        break;
    case KIND_UINT:
        snprintf(buf, len, "%llu", (unsigned long long)b.u[0]);
        break;
    default:
        snprintf(buf, len, "%.17g", b.f[0]);
        break;
    }
    return buf;
}

/* ---- transforms --------------------------------------------------------------------------- */

void hfeed__conv_set_affine(struct hfeed__conv *c, const struct hfeed__affine *a)
{
    assert(a == NULL || c->dst == HFEED_DTYPE_FLOAT32 || c->dst == HFEED_DTYPE_FLOAT64);
    c->affine = a;
    if (a != NULL) c->copy = false;
}

/* Applies the transform to k float64 values in place; *col is the column of f[0] and comes back
 * as the column after the last one. */
static void affine_block(const struct hfeed__affine *a, double *f, size_t k, size_t *col)
{
    size_t j = *col;
    for (size_t i = 0; i < k; i++) {
        f[i] = (f[i] - a->center[j]) / a->divide[j] * a->scale[j] + a->offset[j];
        if (++j == a->cols) j = 0;
    }
    *col = j;
}

static void affine_run(const struct hfeed__conv *c, const unsigned char *s, unsigned char *d,
                       size_t n, struct hfeed__conv_counts *counts)
{
    const size_t dsize = c->dst == HFEED_DTYPE_FLOAT32 ? 4 : 8;
    union scratch b;
    size_t col = 0;
    for (size_t done = 0; done < n;) {
        const size_t k = n - done < BLOCK ? n - done : BLOCK;
        const enum kind kind = decode(c->src, s + done * c->src.size, k, &b);
        if (kind == KIND_INT) {
            for (size_t j = 0; j < k; j++) {
                const double x = (double)b.i[j]; /* the same slot: read, then write */
                b.f[j] = x;
            }
        } else if (kind == KIND_UINT) {
            for (size_t j = 0; j < k; j++) {
                const double x = (double)b.u[j];
                b.f[j] = x;
            }
        }
        affine_block(c->affine, b.f, k, &col);
        if (dsize == 4)
            encode_float32(KIND_FLOAT, &b, k, d + done * 4, counts);
        else
            encode_float64(KIND_FLOAT, &b, k, d + done * 8, counts);
        done += k;
    }
}

void hfeed__conv_count(const struct hfeed__conv *c, const void *data, size_t n,
                       struct hfeed__conv_counts *counts)
{
    if (c->src.cls == HFEED__CLASS_FLOAT && counts != NULL)
        counts->nan += count_nan(data, n, c->src.size);
}

/* ---- run ---------------------------------------------------------------------------------- */

hfeed_status hfeed__conv_run(const struct hfeed__conv *c, const void *src, void *dst, size_t n,
                             struct hfeed__conv_counts *counts, size_t *bad)
{
    const unsigned char *s = src;
    unsigned char *d = dst;
    const size_t size = c->src.size;
    const bool is_float = c->src.cls == HFEED__CLASS_FLOAT;
    if (n == 0) return HFEED_OK;
    if (c->affine != NULL) {
        affine_run(c, s, d, n, counts);
        return HFEED_OK;
    }
    if (c->copy) {
        memcpy(d, s, n * size);
        hfeed__conv_count(c, d, n, counts);
        return HFEED_OK;
    }
    if (hfeed__conv_native(c->src) == c->dst) {
        swap_run(s, d, n, size);
        if (is_float && counts != NULL) counts->nan += count_nan(d, n, size);
        return HFEED_OK;
    }
    if (is_float && size == 8 && c->dst == HFEED_DTYPE_FLOAT32 &&
        c->src.big_endian == host_big_endian()) {
        f64_to_f32(s, d, n, counts);
        return HFEED_OK;
    }
    return generic_run(c, s, d, n, counts, bad);
}
