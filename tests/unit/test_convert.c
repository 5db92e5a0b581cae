/* Unit tests of loader/convert: every stored type x byte order x output dtype against plain C
 * casts computed here, the special float values, float16 decoding, integer range errors, plan
 * refusals and the copy flag.
 *
 * Source bytes are built by this file's own encoder (explicit byte order, whatever the host),
 * and expected outputs are the C cast of the source value, so the library's byte swapping and
 * conversion code is never its own reference. The one exception is float16 -> float, whose
 * reference is hfeed__half_to_float(), itself checked against a literal table. */
#include <criterion/criterion.h>

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert.h"

/* A source value as the test knows it: an integer (signed or not) or a float with its bits. */
struct tval {
    enum hfeed__type_class cls;
    int64_t i;
    uint64_t u; /* unsigned value, or the float's bits */
    double f;   /* float value (exact for float16/32/64) */
};

static bool host_is_big_endian(void)
{
    const union {
        uint32_t word;
        unsigned char bytes[4];
    } probe = {0x01020304u};
    return probe.bytes[0] == 0x01;
}

/* Writes the low `size` bytes of bits in the requested byte order. */
static void put_bytes(unsigned char *p, uint64_t bits, size_t size, bool big_endian)
{
    for (size_t k = 0; k < size; k++) {
        const unsigned char byte = (unsigned char)(bits >> (8 * k));
        p[big_endian ? size - 1 - k : k] = byte;
    }
}

static struct tval int_val(int64_t v)
{
    return (struct tval){HFEED__CLASS_INT, v, (uint64_t)v, 0};
}

static struct tval uint_val(uint64_t v)
{
    return (struct tval){HFEED__CLASS_UINT, 0, v, 0};
}

static struct tval half_val(uint16_t bits)
{
    return (struct tval){HFEED__CLASS_FLOAT, 0, bits, hfeed__half_to_float(bits)};
}

static struct tval float_val(float x)
{
    uint32_t bits;
    memcpy(&bits, &x, 4);
    return (struct tval){HFEED__CLASS_FLOAT, 0, bits, x};
}

static struct tval double_val(double x)
{
    uint64_t bits;
    memcpy(&bits, &x, 8);
    return (struct tval){HFEED__CLASS_FLOAT, 0, bits, x};
}

static bool same_float(double got, double want)
{
    if (isnan(want)) return isnan(got);
    return got == want && signbit(got) == signbit(want);
}

/* ---- the test's own dtype table ------------------------------------------------------------ */

struct dinfo {
    enum hfeed__type_class cls;
    size_t size;
    int64_t min; /* integers: the range */
    uint64_t max;
};

static struct dinfo dinfo(hfeed_dtype d)
{
    switch (d) {
    case HFEED_DTYPE_INT8:
        return (struct dinfo){HFEED__CLASS_INT, 1, INT8_MIN, INT8_MAX};
    case HFEED_DTYPE_INT16:
        return (struct dinfo){HFEED__CLASS_INT, 2, INT16_MIN, INT16_MAX};
    case HFEED_DTYPE_INT32:
        return (struct dinfo){HFEED__CLASS_INT, 4, INT32_MIN, INT32_MAX};
    case HFEED_DTYPE_INT64:
        return (struct dinfo){HFEED__CLASS_INT, 8, INT64_MIN, INT64_MAX};
    case HFEED_DTYPE_UINT8:
        return (struct dinfo){HFEED__CLASS_UINT, 1, 0, UINT8_MAX};
    case HFEED_DTYPE_UINT16:
        return (struct dinfo){HFEED__CLASS_UINT, 2, 0, UINT16_MAX};
    case HFEED_DTYPE_UINT32:
        return (struct dinfo){HFEED__CLASS_UINT, 4, 0, UINT32_MAX};
    case HFEED_DTYPE_UINT64:
        return (struct dinfo){HFEED__CLASS_UINT, 8, 0, UINT64_MAX};
    case HFEED_DTYPE_FLOAT16:
        return (struct dinfo){HFEED__CLASS_FLOAT, 2, 0, 0};
    case HFEED_DTYPE_FLOAT32:
        return (struct dinfo){HFEED__CLASS_FLOAT, 4, 0, 0};
    case HFEED_DTYPE_FLOAT64:
        return (struct dinfo){HFEED__CLASS_FLOAT, 8, 0, 0};
    default:
        break;
    }
    cr_assert_fail("no dtype %d", (int)d);
    return (struct dinfo){HFEED__CLASS_INT, 0, 0, 0};
}

static hfeed_dtype native_of(enum hfeed__type_class cls, size_t size)
{
    for (int d = HFEED_DTYPE_FLOAT32; d <= HFEED_DTYPE_FLOAT16; d++) {
        const struct dinfo i = dinfo((hfeed_dtype)d);
        if (i.cls == cls && i.size == size) return (hfeed_dtype)d;
    }
    return HFEED_DTYPE_INVALID;
}

static bool fits(struct tval v, struct dinfo d)
{
    if (v.cls == HFEED__CLASS_UINT) return v.u <= d.max;
    return v.i >= d.min && (v.i < 0 || (uint64_t)v.i <= d.max);
}

/* ---- source values ------------------------------------------------------------------------- */

#define MAXV 40

static size_t source_values(struct hfeed__type t, struct tval *v)
{
    static const int64_t ints[] = {0,
                                   1,
                                   -1,
                                   2,
                                   100,
                                   -100,
                                   127,
                                   -128,
                                   128,
                                   -129,
                                   255,
                                   256,
                                   32767,
                                   -32768,
                                   32768,
                                   65535,
                                   65536,
                                   16777217,
                                   123456789,
                                   INT32_MAX,
                                   INT32_MIN,
                                   (int64_t)INT32_MAX + 1,
                                   UINT32_MAX,
                                   ((int64_t)1 << 53) + 1,
                                   -((int64_t)1 << 53) - 1,
                                   INT64_MAX,
                                   INT64_MIN};
    static const uint64_t uints[] = {0,
                                     1,
                                     2,
                                     100,
                                     127,
                                     128,
                                     255,
                                     256,
                                     32767,
                                     32768,
                                     65535,
                                     65536,
                                     16777217,
                                     (uint64_t)INT32_MAX + 1,
                                     UINT32_MAX,
                                     (uint64_t)UINT32_MAX + 1,
                                     ((uint64_t)1 << 53) + 1,
                                     INT64_MAX,
                                     (uint64_t)INT64_MAX + 1,
                                     UINT64_MAX};
    static const uint16_t halves[] = {0x0000, 0x8000, 0x0001, 0x03ff, 0x0400, 0x3c00, 0x7bff,
                                      0x7c00, 0xfc00, 0x7e00, 0x7c01, 0x3555, 0xc000};
    const float floats[] = {0.0f,     -0.0f,    1.0f,         -1.5f,      FLT_MAX,
                            -FLT_MAX, FLT_MIN,  FLT_TRUE_MIN, INFINITY,   -INFINITY,
                            NAN,      3.14159f, 1e-40f,       16777217.0f};
    const double doubles[] = {0.0,          -0.0,    1.0,      1.0 + 0x1p-24, 1.0 + 3 * 0x1p-24,
                              1e39,         -1e39,   DBL_MAX,  -DBL_MAX,      DBL_TRUE_MIN,
                              FLT_TRUE_MIN, FLT_MAX, INFINITY, -INFINITY,     NAN,
                              -NAN,         0.1,     65504.0,  1e-300,        0x1.ffffffp127};
    size_t n = 0;
    if (t.cls == HFEED__CLASS_INT) {
        const struct dinfo d = dinfo(native_of(t.cls, t.size));
        for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++)
            if (fits(int_val(ints[k]), d)) v[n++] = int_val(ints[k]);
    } else if (t.cls == HFEED__CLASS_UINT) {
        const struct dinfo d = dinfo(native_of(t.cls, t.size));
        for (size_t k = 0; k < sizeof uints / sizeof uints[0]; k++)
            if (uints[k] <= d.max) v[n++] = uint_val(uints[k]);
    } else if (t.size == 2) {
        for (size_t k = 0; k < sizeof halves / sizeof halves[0]; k++)
            v[n++] = half_val(halves[k]);
    } else if (t.size == 4) {
        for (size_t k = 0; k < sizeof floats / sizeof floats[0]; k++)
            v[n++] = float_val(floats[k]);
    } else {
        for (size_t k = 0; k < sizeof doubles / sizeof doubles[0]; k++)
            v[n++] = double_val(doubles[k]);
    }
    cr_assert_leq(n, MAXV);
    return n;
}

/* ---- checking one output element ----------------------------------------------------------- */

static void check_elem(hfeed_dtype dst, const unsigned char *p, struct tval v, const char *ctx)
{
    const struct dinfo d = dinfo(dst);
    if (dst == HFEED_DTYPE_FLOAT32) {
        float got;
        memcpy(&got, p, 4);
        const float want = v.cls == HFEED__CLASS_INT    ? (float)v.i
                           : v.cls == HFEED__CLASS_UINT ? (float)v.u
                                                        : (float)v.f;
        cr_assert(same_float(got, want), "%s: got %a, want %a", ctx, (double)got, (double)want);
    } else if (dst == HFEED_DTYPE_FLOAT64) {
        double got;
        memcpy(&got, p, 8);
        const double want = v.cls == HFEED__CLASS_INT    ? (double)v.i
                            : v.cls == HFEED__CLASS_UINT ? (double)v.u
                                                         : v.f;
        cr_assert(same_float(got, want), "%s: got %a, want %a", ctx, got, want);
    } else if (dst == HFEED_DTYPE_FLOAT16) {
        uint16_t got;
        memcpy(&got, p, 2);
        cr_assert_eq(got, v.u, "%s: got 0x%04x", ctx, got);
    } else {
        /* The C cast of a value in range is the value itself. */
        uint64_t bits = 0;
        for (size_t k = 0; k < d.size; k++) {
            const size_t at = host_is_big_endian() ? d.size - 1 - k : k;
            bits |= (uint64_t)p[at] << (8 * k);
        }
        if (d.cls == HFEED__CLASS_INT && d.size < 8 && (bits >> (8 * d.size - 1)) != 0)
            bits |= ~(uint64_t)0 << (8 * d.size); /* sign-extend */
        const uint64_t want = v.cls == HFEED__CLASS_UINT ? v.u : (uint64_t)v.i;
        cr_assert_eq(bits, want, "%s: got 0x%llx", ctx, (unsigned long long)bits);
    }
}

/* ---- the matrix ---------------------------------------------------------------------------- */

enum { REPEAT_TO = 300 }; /* longer than one internal block, not a multiple of a lane run */

static const struct hfeed__type all_types[] = {
    {HFEED__CLASS_INT, 1, false},   {HFEED__CLASS_INT, 2, false},   {HFEED__CLASS_INT, 4, false},
    {HFEED__CLASS_INT, 8, false},   {HFEED__CLASS_UINT, 1, false},  {HFEED__CLASS_UINT, 2, false},
    {HFEED__CLASS_UINT, 4, false},  {HFEED__CLASS_UINT, 8, false},  {HFEED__CLASS_FLOAT, 2, false},
    {HFEED__CLASS_FLOAT, 4, false}, {HFEED__CLASS_FLOAT, 8, false},
};

static bool plan_allowed(struct hfeed__type t, hfeed_dtype dst)
{
    if (t.cls == HFEED__CLASS_FLOAT && dinfo(dst).cls != HFEED__CLASS_FLOAT) return false;
    if (dst == HFEED_DTYPE_FLOAT16) return t.cls == HFEED__CLASS_FLOAT && t.size == 2;
    return true;
}

/* Runs n elements (from element `from` of vals repeated), resuming after each range error, and
 * checks every element, the error indices and the counts. `off` misaligns both buffers. */
static void run_and_check(const struct hfeed__conv *c, const struct tval *vals, size_t nv,
                          size_t off, const char *ctx)
{
    const size_t ss = c->src.size, ds = dinfo(c->dst).size, n = REPEAT_TO;
    unsigned char *src = malloc(n * ss + off), *dst = malloc(n * ds + off);
    cr_assert(src != NULL && dst != NULL);
    struct hfeed__conv_counts want = {0, 0}, got = {0, 0};
    for (size_t j = 0; j < n; j++) {
        const struct tval v = vals[j % nv];
        put_bytes(src + off + j * ss, v.u, ss, c->src.big_endian);
        if (v.cls != HFEED__CLASS_FLOAT) continue;
        want.nan += isnan(v.f) != 0;
        want.overflow += c->dst == HFEED_DTYPE_FLOAT32 && isfinite(v.f) && isinf((float)v.f);
    }
    const struct dinfo d = dinfo(c->dst);
    for (size_t start = 0; start < n;) {
        size_t bad = (size_t)-1;
        const hfeed_status st = hfeed__conv_run(c, src + off + start * ss, dst + off + start * ds,
                                                n - start, &got, &bad);
        size_t expect_bad = n;
        for (size_t j = start; j < n && expect_bad == n; j++)
            if (d.cls != HFEED__CLASS_FLOAT && !fits(vals[j % nv], d)) expect_bad = j;
        cr_assert_eq(st, expect_bad == n ? HFEED_OK : HFEED_E_RANGE, "%s from %zu", ctx, start);
        if (st == HFEED_E_RANGE) cr_assert_eq(start + bad, expect_bad, "%s: bad index", ctx);
        for (size_t j = start; j < expect_bad; j++)
            check_elem(c->dst, dst + off + j * ds, vals[j % nv], ctx);
        start = expect_bad + 1;
    }
    cr_assert_eq(got.nan, want.nan, "%s: nan", ctx);
    cr_assert_eq(got.overflow, want.overflow, "%s: overflow", ctx);
    free(src);
    free(dst);
}

Test(convert, every_type_order_and_dtype_matches_the_c_cast)
{
    char ctx[128];
    struct tval vals[MAXV];
    for (size_t t = 0; t < sizeof all_types / sizeof all_types[0]; t++) {
        for (int be = 0; be <= 1; be++) {
            struct hfeed__type type = all_types[t];
            type.big_endian = be;
            const size_t nv = source_values(type, vals);
            for (int dst = HFEED_DTYPE_FLOAT32; dst <= HFEED_DTYPE_FLOAT16; dst++) {
                snprintf(ctx, sizeof ctx, "class %d size %zu %s -> dtype %d", (int)type.cls,
                         type.size, be ? "BE" : "LE", dst);
                struct hfeed__conv c;
                struct hfeed__err err = {0};
                const hfeed_status st = hfeed__conv_plan(type, (hfeed_dtype)dst, &c, &err);
                const bool allowed = plan_allowed(type, (hfeed_dtype)dst);
                cr_assert_eq(st, allowed ? HFEED_OK : HFEED_E_TYPE, "%s: %s", ctx, err.msg);
                if (!allowed) continue;
                for (size_t off = 0; off < 2; off++)
                    run_and_check(&c, vals, nv, off, ctx);
            }
        }
    }
}

/* ---- explicit special values --------------------------------------------------------------- */

static hfeed_status convert(struct hfeed__type t, hfeed_dtype dst, const void *src, void *out,
                            size_t n, struct hfeed__conv_counts *counts, size_t *bad)
{
    struct hfeed__conv c;
    struct hfeed__err err = {0};
    cr_assert_eq(hfeed__conv_plan(t, dst, &c, &err), HFEED_OK, "%s", err.msg);
    return hfeed__conv_run(&c, src, out, n, counts, bad);
}

static const struct hfeed__type f64 = {HFEED__CLASS_FLOAT, 8, false};

Test(convert, float64_to_float32_special_values)
{
    const double in[] = {
        NAN,          -NAN,         INFINITY,      -INFINITY,      1e39,
        -1e39,        DBL_MAX,      -DBL_MAX,      0x1.ffffffp127, 0x1.fffffefp127,
        FLT_MAX,      DBL_TRUE_MIN, -DBL_TRUE_MIN, FLT_TRUE_MIN,   0x1p-150,
        0x1.8p-150,   -0.0,         0.0,           1.0 + 0x1p-24,  1.0 + 3 * 0x1p-24,
        1.0 - 0x1p-25};
    const float want[] = {
        NAN,       NAN,          INFINITY, -INFINITY, INFINITY, -INFINITY,       INFINITY,
        -INFINITY, INFINITY,     FLT_MAX,  FLT_MAX,   0.0f,     -0.0f,           FLT_TRUE_MIN,
        0.0f,      FLT_TRUE_MIN, -0.0f,    0.0f,      1.0f,     1.0f + 0x1p-22f, 1.0f};
    enum { N = sizeof in / sizeof in[0] };
    _Static_assert(N == sizeof want / sizeof want[0], "tables differ");
    for (int be = 0; be <= 1; be++) {
        unsigned char src[N * 8];
        float out[N];
        struct hfeed__type t = f64;
        t.big_endian = be;
        for (size_t j = 0; j < N; j++) {
            uint64_t bits;
            memcpy(&bits, &in[j], 8);
            put_bytes(src + 8 * j, bits, 8, be);
        }
        struct hfeed__conv_counts counts = {0, 0};
        cr_assert_eq(convert(t, HFEED_DTYPE_FLOAT32, src, out, N, &counts, NULL), HFEED_OK);
        for (size_t j = 0; j < N; j++)
            cr_assert(same_float(out[j], want[j]), "[%zu] %a -> %a, want %a", j, in[j],
                      (double)out[j], (double)want[j]);
        cr_assert_eq(counts.nan, 2);
        cr_assert_eq(counts.overflow, 5,
                     "1e39, -1e39, DBL_MAX, -DBL_MAX and the tie above FLT_MAX");
    }
}

Test(convert, float64_to_float32_counts_across_lane_runs)
{
    enum { N = 1000 };
    double *in = malloc(N * sizeof *in);
    float *out = malloc(N * sizeof *out);
    cr_assert(in != NULL && out != NULL);
    for (size_t j = 0; j < N; j++)
        in[j] = (double)j * 0.25 - 100.0;
    const size_t nans[] = {0, 63, 64, 999}, big[] = {1, 127, 128, 640, 998}, inf[] = {5, 700};
    for (size_t k = 0; k < 4; k++)
        in[nans[k]] = NAN;
    for (size_t k = 0; k < 5; k++)
        in[big[k]] = k % 2 ? 1e300 : -1e40;
    for (size_t k = 0; k < 2; k++)
        in[inf[k]] = -INFINITY;
    struct hfeed__conv_counts counts = {0, 0};
    cr_assert_eq(convert(f64, HFEED_DTYPE_FLOAT32, in, out, N, &counts, NULL), HFEED_OK);
    cr_assert_eq(counts.nan, 4);
    cr_assert_eq(counts.overflow, 5);
    for (size_t j = 0; j < N; j++)
        cr_assert(same_float(out[j], (float)in[j]), "[%zu]", j);
    cr_assert_eq(convert(f64, HFEED_DTYPE_FLOAT32, in, out, N, NULL, NULL), HFEED_OK);
    free(in);
    free(out);
}

Test(convert, float16_table_is_exact)
{
    static const struct {
        uint16_t bits;
        float value;
    } table[] = {
        {0x0000, 0.0f},      {0x8000, -0.0f},       {0x0001, 0x1p-24f}, {0x03ff, 0x1.ff8p-15f},
        {0x0400, 0x1p-14f},  {0x3c00, 1.0f},        {0x7bff, 65504.0f}, {0x7c00, INFINITY},
        {0xfc00, -INFINITY}, {0x3555, 0x1.554p-2f}, {0xc000, -2.0f},    {0x8001, -0x1p-24f},
    };
    for (size_t k = 0; k < sizeof table / sizeof table[0]; k++) {
        const float got = hfeed__half_to_float(table[k].bits);
        cr_assert(same_float(got, table[k].value), "0x%04x -> %a", table[k].bits, (double)got);
    }
    cr_assert(isnan(hfeed__half_to_float(0x7e00)));
    cr_assert(isnan(hfeed__half_to_float(0x7c01)));
    cr_assert(isnan(hfeed__half_to_float(0xfe00)));
}

Test(convert, float16_runs_count_nan)
{
    const uint16_t in[] = {0x7e00, 0x3c00, 0x7c00, 0xfe00, 0x0001, 0x7c01};
    const struct hfeed__type f16 = {HFEED__CLASS_FLOAT, 2, false};
    float out32[6];
    double out64[6];
    uint16_t out16[6];
    struct hfeed__conv_counts counts = {0, 0};
    cr_assert_eq(convert(f16, HFEED_DTYPE_FLOAT32, in, out32, 6, &counts, NULL), HFEED_OK);
    cr_assert_eq(convert(f16, HFEED_DTYPE_FLOAT64, in, out64, 6, &counts, NULL), HFEED_OK);
    cr_assert_eq(convert(f16, HFEED_DTYPE_FLOAT16, in, out16, 6, &counts, NULL), HFEED_OK);
    cr_assert_eq(counts.nan, 9);
    cr_assert_eq(counts.overflow, 0);
    cr_assert(isnan(out32[0]) && isnan(out64[3]));
    cr_assert(out32[1] == 1.0f && out64[2] == INFINITY && out64[4] == 0x1p-24);
    cr_assert(memcmp(out16, in, sizeof in) == 0);
}

/* ---- integers ------------------------------------------------------------------------------ */

Test(convert, int64_to_int32_out_of_range_reports_the_index)
{
    const struct hfeed__type i64 = {HFEED__CLASS_INT, 8, false};
    const int64_t in[] = {0, INT32_MAX, INT32_MIN, (int64_t)INT32_MAX + 1, 5};
    int32_t out[5] = {7, 7, 7, 7, 7};
    size_t bad = 99;
    cr_assert_eq(convert(i64, HFEED_DTYPE_INT32, in, out, 5, NULL, &bad), HFEED_E_RANGE);
    cr_assert_eq(bad, 3);
    cr_assert(out[0] == 0 && out[1] == INT32_MAX && out[2] == INT32_MIN);
    cr_assert_eq(out[3], 7, "nothing is written at or past the bad element");

    enum { N = 1000 };
    int64_t big[N];
    int32_t out2[N];
    for (size_t j = 0; j < N; j++)
        big[j] = (int64_t)j - 500;
    big[700] = INT64_MIN;
    cr_assert_eq(convert(i64, HFEED_DTYPE_INT32, big, out2, N, NULL, &bad), HFEED_E_RANGE);
    cr_assert_eq(bad, 700);
    for (size_t j = 0; j < 700; j++)
        cr_assert_eq(out2[j], (int32_t)j - 500);
}

/* The value a range error names: every stored integer size, both orders, and floats. */
Test(convert, value_text_names_the_stored_value)
{
    static const struct {
        struct hfeed__type t;
        unsigned char bytes[8];
        const char *text;
    } rows[] = {
        {{HFEED__CLASS_INT, 8, false}, {0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0}, "2147483647"},
        {{HFEED__CLASS_INT, 8, false}, {0, 0, 0, 0x80, 0, 0, 0, 0}, "2147483648"},
        {{HFEED__CLASS_INT, 8, false},
         {0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff},
         "-2147483649"},
        {{HFEED__CLASS_INT, 8, true}, {0x80, 0, 0, 0, 0, 0, 0, 0}, "-9223372036854775808"},
        {{HFEED__CLASS_UINT, 8, false},
         {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
         "18446744073709551615"},
        {{HFEED__CLASS_UINT, 4, false}, {0, 0x5e, 0xd0, 0xb2}, "3000000000"},
        {{HFEED__CLASS_UINT, 4, true}, {0xb2, 0xd0, 0x5e, 0}, "3000000000"},
        {{HFEED__CLASS_INT, 2, true}, {0xff, 0xfe}, "-2"},
        {{HFEED__CLASS_INT, 1, false}, {0x80}, "-128"},
        {{HFEED__CLASS_FLOAT, 8, false}, {0, 0, 0, 0, 0, 0, 0xf8, 0x3f}, "1.5"},
        {{HFEED__CLASS_FLOAT, 4, true}, {0xc0, 0x20, 0, 0}, "-2.5"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char buf[64];
        cr_expect_str_eq(hfeed__conv_value_text(rows[i].t, rows[i].bytes, buf, sizeof buf),
                         rows[i].text, "row %zu", i);
    }
}

Test(convert, uint64_above_int64_max_is_out_of_range)
{
    const struct hfeed__type u64 = {HFEED__CLASS_UINT, 8, false};
    const uint64_t in[] = {1, INT64_MAX, (uint64_t)INT64_MAX + 1};
    int64_t out[3];
    size_t bad = 99;
    cr_assert_eq(convert(u64, HFEED_DTYPE_INT64, in, out, 3, NULL, &bad), HFEED_E_RANGE);
    cr_assert_eq(bad, 2);
    cr_assert(out[0] == 1 && out[1] == INT64_MAX);
    uint64_t same[3];
    cr_assert_eq(convert(u64, HFEED_DTYPE_UINT64, in, same, 3, NULL, &bad), HFEED_OK);
    cr_assert(memcmp(same, in, sizeof in) == 0);
}

Test(convert, negative_int8_stays_native_and_refuses_unsigned)
{
    const struct hfeed__type i8 = {HFEED__CLASS_INT, 1, true};
    const int8_t in[] = {-1, -128, 127};
    int8_t native[3];
    int64_t wide[3];
    uint8_t unsig[3];
    size_t bad = 99;
    cr_assert_eq(hfeed__conv_native(i8), HFEED_DTYPE_INT8);
    cr_assert_eq(convert(i8, HFEED_DTYPE_INT8, in, native, 3, NULL, &bad), HFEED_OK);
    cr_assert(native[0] == -1 && native[1] == -128 && native[2] == 127);
    cr_assert_eq(convert(i8, HFEED_DTYPE_INT64, in, wide, 3, NULL, &bad), HFEED_OK);
    cr_assert(wide[0] == -1 && wide[1] == -128 && wide[2] == 127);
    cr_assert_eq(convert(i8, HFEED_DTYPE_UINT8, in, unsig, 3, NULL, &bad), HFEED_E_RANGE);
    cr_assert_eq(bad, 0);
    const struct hfeed__type u8 = {HFEED__CLASS_UINT, 1, false};
    const uint8_t big[] = {200, 255};
    cr_assert_eq(convert(u8, HFEED_DTYPE_INT8, big, native, 2, NULL, &bad), HFEED_E_RANGE);
    cr_assert_eq(bad, 0);
    cr_assert_eq(convert(u8, HFEED_DTYPE_INT32, big, wide, 2, NULL, &bad), HFEED_OK);
}

Test(convert, int64_to_float32_rounds_once)
{
    /* 2^53 + 2^29 + 1 rounds up to 2^53 + 2^30 directly, but via double (2^53 + 2^29 exactly, a
     * float tie) it would round to even, 2^53. The casts are done at run time (volatile): under
     * valgrind, whose emulated int64 -> float rounds twice, the literal check is skipped. */
    const struct hfeed__type i64 = {HFEED__CLASS_INT, 8, false};
    const int64_t in[] = {((int64_t)1 << 53) + ((int64_t)1 << 29) + 1};
    volatile int64_t v = in[0];
    const float direct = (float)v, twice = (float)(double)v;
    float out[1];
    cr_assert_eq(convert(i64, HFEED_DTYPE_FLOAT32, in, out, 1, NULL, NULL), HFEED_OK);
    cr_assert_eq(out[0], direct);
    if (direct != twice) cr_assert_eq(out[0], 0x1p53f + 0x1p30f);
}

Test(convert, zero_elements_do_nothing)
{
    struct hfeed__conv_counts counts = {0, 0};
    cr_assert_eq(convert(f64, HFEED_DTYPE_FLOAT32, NULL, NULL, 0, &counts, NULL), HFEED_OK);
    cr_assert_eq(counts.nan + counts.overflow, 0);
}

/* ---- plans --------------------------------------------------------------------------------- */

static void expect_refused(struct hfeed__type t, hfeed_dtype dst, const char *text)
{
    struct hfeed__conv c;
    struct hfeed__err err = {0};
    cr_assert_eq(hfeed__conv_plan(t, dst, &c, &err), HFEED_E_TYPE, "%s", text);
    cr_assert(strstr(err.msg, text) != NULL, "message \"%s\" lacks \"%s\"", err.msg, text);
}

Test(convert, plan_refuses_float_to_integer_and_float16_from_others)
{
    const struct hfeed__type f32 = {HFEED__CLASS_FLOAT, 4, false};
    const struct hfeed__type i16 = {HFEED__CLASS_INT, 2, false};
    expect_refused(f64, HFEED_DTYPE_INT32,
                   "cannot convert float64 to int32: float to integer output is refused");
    expect_refused(f32, HFEED_DTYPE_INT64,
                   "cannot convert float32 to int64: float to integer output is refused");
    expect_refused(f32, HFEED_DTYPE_UINT8, "cannot convert float32 to uint8");
    expect_refused(f32, HFEED_DTYPE_FLOAT16, "cannot convert float32 to float16");
    expect_refused(i16, HFEED_DTYPE_FLOAT16, "cannot convert int16 to float16");
}

Test(convert, plan_refuses_unsupported_types)
{
    expect_refused((struct hfeed__type){HFEED__CLASS_FLOAT, 1, false}, HFEED_DTYPE_FLOAT32,
                   "unsupported stored type: float of 1 bytes");
    expect_refused((struct hfeed__type){HFEED__CLASS_INT, 3, false}, HFEED_DTYPE_INT32,
                   "unsupported stored type: signed integer of 3 bytes");
    expect_refused((struct hfeed__type){HFEED__CLASS_UINT, 16, false}, HFEED_DTYPE_INT64,
                   "unsupported stored type: unsigned integer of 16 bytes");
    expect_refused((struct hfeed__type){(enum hfeed__type_class)9, 4, false}, HFEED_DTYPE_INT64,
                   "unsupported stored type");
    expect_refused(f64, HFEED_DTYPE_INVALID, "unknown output dtype 0");
    expect_refused(f64, (hfeed_dtype)99, "unknown output dtype 99");
}

Test(convert, native_maps_each_stored_type)
{
    for (size_t t = 0; t < sizeof all_types / sizeof all_types[0]; t++) {
        struct hfeed__type type = all_types[t];
        for (int be = 0; be <= 1; be++) {
            type.big_endian = be;
            cr_assert_eq(hfeed__conv_native(type), native_of(type.cls, type.size));
        }
    }
    cr_assert_eq(native_of(HFEED__CLASS_FLOAT, 2), HFEED_DTYPE_FLOAT16);
    cr_assert_eq(hfeed__conv_native((struct hfeed__type){HFEED__CLASS_INT, 3, false}),
                 HFEED_DTYPE_INVALID);
}

Test(convert, copy_only_when_bytes_pass_unchanged)
{
    const bool host_be = host_is_big_endian();
    for (size_t t = 0; t < sizeof all_types / sizeof all_types[0]; t++) {
        for (int be = 0; be <= 1; be++) {
            struct hfeed__type type = all_types[t];
            type.big_endian = be;
            for (int dst = HFEED_DTYPE_FLOAT32; dst <= HFEED_DTYPE_FLOAT16; dst++) {
                struct hfeed__conv c;
                if (hfeed__conv_plan(type, (hfeed_dtype)dst, &c, NULL) != HFEED_OK) continue;
                const bool want = (hfeed_dtype)dst == native_of(type.cls, type.size) &&
                                  (type.size == 1 || (bool)be == host_be);
                cr_assert_eq(c.copy, want, "class %d size %zu be %d -> %d", (int)type.cls,
                             type.size, be, dst);
            }
        }
    }
    struct hfeed__conv c;
    cr_assert_eq(hfeed__conv_plan(f64, HFEED_DTYPE_FLOAT32, &c, NULL), HFEED_OK);
    cr_assert(!c.copy);
    cr_assert_eq(hfeed__conv_plan(f64, HFEED_DTYPE_FLOAT64, &c, NULL), HFEED_OK);
    cr_assert_eq(c.copy, !host_be);
}

/* ---- transforms ----------------------------------------------------------------------------- */

/* The reference for one transformed element: the documented formula, written out here. */
static double affine_ref(double x, double center, double divide, double scale, double offset)
{
    return (x - center) / divide * scale + offset;
}

/* Runs n elements of type t (values v[i], encoded here in t's byte order) through a 3-column
 * transform and compares each output with the reference rounded once to dst. n crosses the
 * converter's 256-element blocks at a column that is not 0, so a column count that restarted
 * per block would show. */
static void check_affine(struct hfeed__type t, hfeed_dtype dst, const double *v, size_t n)
{
    static const double center[3] = {1.5, -2.0, 1e6};
    static const double divide[3] = {2.0, 0.1, 3.0};
    static const double scale[3] = {1.0, -4.0, 0.5};
    static const double offset[3] = {0.0, 7.25, -1.0};
    const struct hfeed__affine a = {3, center, divide, scale, offset};
    unsigned char src[8 * 1024];
    unsigned char out[8 * 1024];
    cr_assert(n <= 1024);
    for (size_t i = 0; i < n; i++) {
        uint64_t bits;
        if (t.cls == HFEED__CLASS_FLOAT && t.size == 8) {
            memcpy(&bits, &v[i], 8);
        } else if (t.cls == HFEED__CLASS_FLOAT) {
            const float f = (float)v[i];
            uint32_t b32;
            memcpy(&b32, &f, 4);
            bits = b32;
        } else {
            bits = (uint64_t)(int64_t)v[i];
        }
        put_bytes(src + i * t.size, bits, t.size, t.big_endian);
    }
    struct hfeed__conv c;
    cr_assert_eq(hfeed__conv_plan(t, dst, &c, NULL), HFEED_OK);
    hfeed__conv_set_affine(&c, &a);
    cr_assert(!c.copy);
    cr_assert_eq(hfeed__conv_run(&c, src, out, n, NULL, NULL), HFEED_OK);
    for (size_t i = 0; i < n; i++) {
        const size_t j = i % 3;
        const double x = t.cls == HFEED__CLASS_FLOAT && t.size == 4 ? (double)(float)v[i] : v[i];
        const double y = affine_ref(x, center[j], divide[j], scale[j], offset[j]);
        if (dst == HFEED_DTYPE_FLOAT32) {
            float got;
            memcpy(&got, out + 4 * i, 4);
            cr_assert_eq(got, (float)y, "element %zu (column %zu): got %.9g, want %.9g", i, j,
                         (double)got, (double)(float)y);
        } else {
            double got;
            memcpy(&got, out + 8 * i, 8);
            cr_assert_eq(got, y, "element %zu (column %zu): got %.17g, want %.17g", i, j, got, y);
        }
    }
}

Test(convert, affine_matches_the_formula_per_column_for_each_type_and_order)
{
    double v[1000];
    for (size_t i = 0; i < 1000; i++)
        v[i] = (double)((int64_t)(i * 7919u % 2001u) - 1000) * 1.25; /* mixed signs */
    double iv[1000];
    for (size_t i = 0; i < 1000; i++)
        iv[i] = (double)((int64_t)(i * 7919u % 60001u) - 30000); /* fits int16 */
    for (int be = 0; be <= 1; be++) {
        const struct hfeed__type tf64 = {HFEED__CLASS_FLOAT, 8, be};
        const struct hfeed__type tf32 = {HFEED__CLASS_FLOAT, 4, be};
        const struct hfeed__type ti16 = {HFEED__CLASS_INT, 2, be};
        const struct hfeed__type ti64 = {HFEED__CLASS_INT, 8, be};
        for (int d = HFEED_DTYPE_FLOAT32; d <= HFEED_DTYPE_FLOAT64; d++) {
            check_affine(tf64, (hfeed_dtype)d, v, 1000);
            check_affine(tf32, (hfeed_dtype)d, v, 999);
            check_affine(ti16, (hfeed_dtype)d, iv, 1000);
            check_affine(ti64, (hfeed_dtype)d, iv, 257);
        }
    }
}

Test(convert, identity_affine_keeps_float64_exact)
{
    static const double zero = 0.0, one = 1.0;
    const struct hfeed__affine a = {1, &zero, &one, &one, &zero};
    const double src[4] = {0.1, -3.0e300, 5e-324, NAN};
    double out[4];
    struct hfeed__conv c;
    struct hfeed__conv_counts counts = {0, 0};
    cr_assert_eq(hfeed__conv_plan(f64, HFEED_DTYPE_FLOAT64, &c, NULL), HFEED_OK);
    hfeed__conv_set_affine(&c, &a);
    cr_assert_eq(hfeed__conv_run(&c, src, out, 4, &counts, NULL), HFEED_OK);
    if (!host_is_big_endian()) {
        cr_assert_eq(memcmp(src, out, 3 * sizeof *out), 0);
        cr_assert(isnan(out[3]));
        cr_assert_eq(counts.nan, 1);
    }
}

Test(convert, affine_counts_overflow_into_float32)
{
    static const double zero = 0.0, one = 1.0, big = 1e300;
    const struct hfeed__affine a = {1, &zero, &one, &big, &zero};
    const double src[3] = {1.0, 0.0, -1.0};
    float out[3];
    struct hfeed__conv c;
    struct hfeed__conv_counts counts = {0, 0};
    cr_assert_eq(hfeed__conv_plan(f64, HFEED_DTYPE_FLOAT32, &c, NULL), HFEED_OK);
    hfeed__conv_set_affine(&c, &a);
    cr_assert_eq(hfeed__conv_run(&c, src, out, 3, &counts, NULL), HFEED_OK);
    cr_assert(isinf(out[0]) && out[0] > 0);
    cr_assert_eq(out[1], 0.0f);
    cr_assert(isinf(out[2]) && out[2] < 0);
    cr_assert_eq(counts.overflow, 2);
}
