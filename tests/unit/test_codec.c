/* Unit tests of loader/codec: HDF5's own chunks (every combination of shuffle, deflate levels 1
 * and 9 and fletcher32, element sizes 1, 2, 4 and 8, odd chunk sizes, partial edge chunks)
 * decoded and compared byte for byte with H5Dread; chunks whose filter mask skips filters
 * (written with H5Dwrite_chunk); checksums against values HDF5 stored; hand-built chunks
 * (libdeflate's compressor, a test-side shuffle); corrupt, truncated and mis-sized chunks; and
 * pipelines the codec refuses.
 *
 * References: HDF5 itself (H5Dread, the checksums it stores), and this file's own shuffle and
 * word-by-word fletcher32, written from HDF5's definitions, never from codec.c. Every buffer
 * handed to the codec is malloc'ed to its exact size, so that ASan catches any write past it. */
#include <criterion/criterion.h>

#include <hdf5.h>
#include <libdeflate.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "codec.h"
#include "fixtures.h"

TestSuite(codec, .init = fx_setup, .fini = fx_teardown);

/* --- test-side references ------------------------------------------------------------------ */

/* HDF5's fletcher32, one word at a time, as H5_checksum_fletcher32 defines it. */
static uint32_t ref_fletcher32(const unsigned char *data, size_t len)
{
    uint32_t sum1 = 0;
    uint32_t sum2 = 0;
    size_t words = len / 2;
    while (words > 0) {
        size_t block = words > 360 ? 360 : words;
        words -= block;
        while (block-- > 0) {
            sum1 += ((uint32_t)data[0] << 8) | (uint32_t)data[1];
            sum2 += sum1;
            data += 2;
        }
        sum1 = (sum1 & 0xffff) + (sum1 >> 16);
        sum2 = (sum2 & 0xffff) + (sum2 >> 16);
    }
    if (len % 2 == 1) {
        sum1 += (uint32_t)data[0] << 8;
        sum2 += sum1;
        sum1 = (sum1 & 0xffff) + (sum1 >> 16);
        sum2 = (sum2 & 0xffff) + (sum2 >> 16);
    }
    sum1 = (sum1 & 0xffff) + (sum1 >> 16);
    sum2 = (sum2 & 0xffff) + (sum2 >> 16);
    return (sum2 << 16) | sum1;
}

static void put_le32(unsigned char *p, uint32_t v)
{
    for (int k = 0; k < 4; k++)
        p[k] = (unsigned char)(v >> (8 * k));
}

/* HDF5's shuffle: byte b of element i goes to b * n + i; leftover bytes stay at the end; one-byte
 * elements and buffers of at most one element are left alone. */
static void ref_shuffle(unsigned char *dst, const unsigned char *src, size_t len, size_t es)
{
    const size_t n = es == 0 ? 0 : len / es;
    if (es <= 1 || n <= 1) {
        memcpy(dst, src, len);
        return;
    }
    for (size_t i = 0; i < n; i++)
        for (size_t b = 0; b < es; b++)
            dst[b * n + i] = src[i * es + b];
    memcpy(dst + n * es, src + n * es, len - n * es);
}

/* zlib-wrapped deflate at `level`; returns a malloc'ed stream of *out_len bytes. */
static unsigned char *zcompress(int level, const unsigned char *src, size_t len, size_t *out_len)
{
    struct libdeflate_compressor *z = libdeflate_alloc_compressor(level);
    cr_assert_not_null(z);
    const size_t bound = libdeflate_zlib_compress_bound(z, len);
    unsigned char *dst = malloc(bound);
    cr_assert_not_null(dst);
    *out_len = libdeflate_zlib_compress(z, src, len, dst, bound);
    cr_assert_gt(*out_len, 0);
    libdeflate_free_compressor(z);
    return dst;
}

static uint64_t rng_state = 42;

/* splitmix64: good enough that "random" chunks do not compress. */
static uint64_t rng(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* Bytes of n elements of es bytes: smooth little-endian integers (they compress), or random. */
static void fill(unsigned char *dst, size_t n, size_t es, bool random)
{
    for (size_t i = 0; i < n; i++) {
        const uint64_t v = random ? rng() : (uint64_t)(i * 37 / 5) + (rng() & 3);
        for (size_t b = 0; b < es; b++)
            dst[i * es + b] = (unsigned char)(v >> (8 * b));
    }
}

static unsigned char *xmalloc(size_t n)
{
    unsigned char *p = malloc(n == 0 ? 1 : n);
    cr_assert_not_null(p);
    return p;
}

static unsigned char *dup_bytes(const unsigned char *src, size_t n)
{
    unsigned char *p = xmalloc(n);
    memcpy(p, src, n);
    return p;
}

static struct hfeed__codec *new_codec(void)
{
    struct hfeed__codec *c = NULL;
    struct hfeed__err err = {0};
    cr_assert_eq(hfeed__codec_create(&c, &err), HFEED_OK, "%s", err.msg);
    cr_assert_not_null(c);
    return c;
}

/* Decodes a copy of stored into exact-size buffers. Returns the status; on HFEED_OK *out gets a
 * malloc'ed copy of the chunk_bytes decoded bytes, otherwise err holds the message. */
static hfeed_status decode(struct hfeed__codec *c, const struct hfeed__pipeline *p, unsigned mask,
                           const unsigned char *stored, size_t stored_len, size_t chunk_bytes,
                           unsigned char **out, struct hfeed__err *err)
{
    unsigned char *in = dup_bytes(stored, stored_len);
    unsigned char *dst = xmalloc(chunk_bytes);
    unsigned char *tmp = xmalloc(chunk_bytes);
    hfeed__err_clear(err);
    const hfeed_status st =
        hfeed__codec_decode(c, p, mask, in, stored_len, dst, tmp, chunk_bytes, err);
    free(in);
    free(tmp);
    if (st == HFEED_OK) {
        *out = dst;
    } else {
        free(dst);
        *out = NULL;
    }
    return st;
}

/* Asserts that stored decodes to exactly want (chunk_bytes = want_len). */
static void expect_decodes(struct hfeed__codec *c, const struct hfeed__pipeline *p, unsigned mask,
                           const unsigned char *stored, size_t stored_len,
                           const unsigned char *want, size_t want_len, const char *what)
{
    struct hfeed__err err = {0};
    unsigned char *got = NULL;
    const hfeed_status st = decode(c, p, mask, stored, stored_len, want_len, &got, &err);
    cr_assert_eq(st, HFEED_OK, "%s: %s", what, err.msg);
    cr_assert(memcmp(got, want, want_len) == 0, "%s: decoded bytes differ", what);
    free(got);
}

/* Asserts that decoding fails with HFEED_E_READ and a message containing each of the words. */
static void expect_fails(struct hfeed__codec *c, const struct hfeed__pipeline *p, unsigned mask,
                         const unsigned char *stored, size_t stored_len, size_t chunk_bytes,
                         const char *const *words, size_t nwords, const char *what)
{
    struct hfeed__err err = {0};
    unsigned char *got = NULL;
    const hfeed_status st = decode(c, p, mask, stored, stored_len, chunk_bytes, &got, &err);
    free(got);
    cr_assert_eq(st, HFEED_E_READ, "%s: status %d (%s)", what, (int)st, err.msg);
    cr_assert_eq(err.code, HFEED_E_READ, "%s", what);
    for (size_t k = 0; k < nwords; k++)
        cr_assert_not_null(strstr(err.msg, words[k]), "%s: \"%s\" lacks \"%s\"", what, err.msg,
                           words[k]);
}

static struct hfeed__pipeline pipeline(size_t es, unsigned n, const int *ids)
{
    struct hfeed__pipeline p;
    memset(&p, 0, sizeof p);
    p.nfilters = n;
    p.elem_size = es;
    for (unsigned i = 0; i < n; i++)
        p.ids[i] = ids[i];
    return p;
}

/* --- HDF5 side ----------------------------------------------------------------------------- */

static hid_t uint_type(size_t es)
{
    switch (es) {
    case 1:
        return H5T_NATIVE_UINT8;
    case 2:
        return H5T_NATIVE_UINT16;
    case 4:
        return H5T_NATIVE_UINT32;
    default:
        cr_assert_eq(es, 8);
        return H5T_NATIVE_UINT64;
    }
}

/* One 2-D dataset: rows x cols elements of es bytes in chunks of chunk_rows x cols. */
struct h5case {
    size_t es;
    bool shuffle;
    int gzip; /* 0 = no deflate */
    bool fletcher32;
    bool fletcher_first; /* fletcher32 before the others (an order the codec refuses) */
    hsize_t rows, cols, chunk_rows;
    bool random;
};

static hid_t create_dataset(hid_t file, const char *name, const struct h5case *k)
{
    const hsize_t dims[2] = {k->rows, k->cols};
    const hsize_t chunk[2] = {k->chunk_rows, k->cols};
    const hid_t space = H5Screate_simple(2, dims, NULL);
    const hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    cr_assert(space >= 0 && dcpl >= 0);
    cr_assert(H5Pset_chunk(dcpl, 2, chunk) >= 0);
    if (k->fletcher32 && k->fletcher_first) cr_assert(H5Pset_fletcher32(dcpl) >= 0);
    if (k->shuffle) cr_assert(H5Pset_shuffle(dcpl) >= 0);
    if (k->gzip > 0) cr_assert(H5Pset_deflate(dcpl, (unsigned)k->gzip) >= 0);
    if (k->fletcher32 && !k->fletcher_first) cr_assert(H5Pset_fletcher32(dcpl) >= 0);
    const hid_t d = H5Dcreate2(file, name, uint_type(k->es), space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    cr_assert(d >= 0, "H5Dcreate2 %s", name);
    H5Pclose(dcpl);
    H5Sclose(space);
    return d;
}

/* The dataset's pipeline in write order, as the direct path would read it. */
static struct hfeed__pipeline read_pipeline(hid_t d)
{
    struct hfeed__pipeline p;
    memset(&p, 0, sizeof p);
    const hid_t dcpl = H5Dget_create_plist(d);
    const hid_t type = H5Dget_type(d);
    const int n = H5Pget_nfilters(dcpl);
    cr_assert(n >= 0 && n <= HFEED__MAX_FILTERS);
    p.nfilters = (unsigned)n;
    p.elem_size = H5Tget_size(type);
    for (int i = 0; i < n; i++) {
        unsigned flags = 0;
        unsigned cd[8];
        size_t ncd = 8;
        unsigned config = 0;
        char fname[64];
        const H5Z_filter_t id =
            H5Pget_filter2(dcpl, (unsigned)i, &flags, &ncd, cd, sizeof fname, fname, &config);
        cr_assert(id >= 0);
        p.ids[i] = (int)id;
    }
    H5Tclose(type);
    H5Pclose(dcpl);
    return p;
}

/* The stored bytes of the chunk starting at row r0; sets *len and *mask. */
static unsigned char *read_raw_chunk(hid_t d, hsize_t r0, size_t *len, unsigned *mask)
{
    const hsize_t offset[2] = {r0, 0};
    hsize_t size = 0;
    cr_assert(H5Dget_chunk_storage_size(d, offset, &size) >= 0);
    cr_assert_gt(size, 0);
    unsigned char *buf = xmalloc((size_t)size);
    uint32_t filters = 0;
    cr_assert(H5Dread_chunk(d, H5P_DEFAULT, offset, &filters, buf) >= 0);
    *len = (size_t)size;
    *mask = filters;
    return buf;
}

/* Rows [r0, r0 + n) through H5Dread, as stored bytes (memory type = file type). */
static unsigned char *h5_read_rows(hid_t d, hsize_t r0, hsize_t n, hsize_t cols, size_t es)
{
    unsigned char *buf = xmalloc((size_t)(n * cols) * es);
    const hid_t fspace = H5Dget_space(d);
    const hsize_t start[2] = {r0, 0};
    const hsize_t count[2] = {n, cols};
    cr_assert(H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL) >= 0);
    const hid_t mspace = H5Screate_simple(2, count, NULL);
    const hid_t type = H5Dget_type(d);
    cr_assert(H5Dread(d, type, mspace, fspace, H5P_DEFAULT, buf) >= 0);
    H5Tclose(type);
    H5Sclose(mspace);
    H5Sclose(fspace);
    return buf;
}

/* Decodes every chunk of d with the codec and compares it with H5Dread of the same rows.
 * Returns: how many stored chunks were larger than decoded ones. */
static size_t check_chunks_against_h5dread(struct hfeed__codec *c, hid_t d, const struct h5case *k,
                                           const char *name)
{
    const struct hfeed__pipeline p = read_pipeline(d);
    cr_assert(hfeed__codec_supports(&p), "%s: pipeline refused", name);
    const size_t chunk_bytes = (size_t)(k->chunk_rows * k->cols) * k->es;
    size_t expanded = 0;
    for (hsize_t r0 = 0; r0 < k->rows; r0 += k->chunk_rows) {
        size_t len = 0;
        unsigned mask = 0;
        unsigned char *raw = read_raw_chunk(d, r0, &len, &mask);
        const hsize_t n = k->rows - r0 < k->chunk_rows ? k->rows - r0 : k->chunk_rows;
        unsigned char *want = h5_read_rows(d, r0, n, k->cols, k->es);
        struct hfeed__err err = {0};
        unsigned char *got = NULL;
        const hfeed_status st = decode(c, &p, mask, raw, len, chunk_bytes, &got, &err);
        cr_assert_eq(st, HFEED_OK, "%s chunk at row %" PRIu64 ": %s", name, (uint64_t)r0, err.msg);
        cr_assert(memcmp(got, want, (size_t)(n * k->cols) * k->es) == 0,
                  "%s chunk at row %" PRIu64 " (mask 0x%x, %zu stored bytes): differs from H5Dread",
                  name, (uint64_t)r0, mask, len);
        if (len > chunk_bytes) expanded++;
        free(got);
        free(want);
        free(raw);
    }
    return expanded;
}

static hid_t new_file(const char *name)
{
    const hid_t f = H5Fcreate(fx_path(name), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    cr_assert(f >= 0);
    return f;
}

/* Writes and checks every filter combination for one chunk geometry: element size 1, 2, 4, 8 x
 * shuffle or not x no deflate, level 1, level 9 x fletcher32 or not x smooth or random bytes. */
static void check_all_pipelines(hsize_t rows, hsize_t cols, hsize_t chunk_rows, const char *file)
{
    static const size_t sizes[] = {1, 2, 4, 8};
    static const int levels[] = {0, 1, 9};
    struct hfeed__codec *c = new_codec();
    const hid_t f = new_file(file);
    const size_t n = (size_t)(rows * cols);
    for (unsigned combo = 0; combo < 4 * 2 * 3 * 2 * 2; combo++) {
        const struct h5case k = {.es = sizes[combo % 4],
                                 .shuffle = combo / 4 % 2,
                                 .gzip = levels[combo / 8 % 3],
                                 .fletcher32 = combo / 24 % 2,
                                 .rows = rows,
                                 .cols = cols,
                                 .chunk_rows = chunk_rows,
                                 .random = combo / 48 % 2};
        const char *name = fx_fmt("es%zu_shuffle%d_gzip%d_fletcher%d_%s", k.es, k.shuffle, k.gzip,
                                  k.fletcher32, k.random ? "random" : "smooth");
        unsigned char *data = xmalloc(n * k.es);
        fill(data, n, k.es, k.random);
        const hid_t d = create_dataset(f, name, &k);
        cr_assert(H5Dwrite(d, uint_type(k.es), H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0);
        const size_t expanded = check_chunks_against_h5dread(c, d, &k, name);
        /* Random bytes do not compress: such stored chunks are larger than decoded ones. */
        if (k.gzip > 0 && k.random && n * k.es > 64)
            cr_assert_gt(expanded, 0, "%s: no chunk larger than decoded", name);
        H5Dclose(d);
        free(data);
    }
    H5Fclose(f);
    hfeed__codec_destroy(c);
}

/* 7 x 13 = 91 elements a chunk (91 bytes for one-byte elements), 50 rows: a partial last chunk. */
Test(codec, hdf5_pipelines_small_odd_chunks)
{
    check_all_pipelines(50, 13, 7, "small.h5");
}

/* 333 x 37 = 12321 elements a chunk: many fletcher32 blocks and unshuffle blocks, odd tails. */
Test(codec, hdf5_pipelines_large_odd_chunks)
{
    check_all_pipelines(1000, 37, 333, "large.h5");
}

/* One element a chunk: HDF5's shuffle leaves a single element alone. */
Test(codec, hdf5_pipelines_single_element_chunks)
{
    check_all_pipelines(5, 1, 1, "single.h5");
}

/* --- fletcher32 ---------------------------------------------------------------------------- */

/* Checksums HDF5 1.10.8 stored at the end of fletcher32-only chunks of these bytes. */
Test(codec, fletcher32_known_vectors_from_hdf5)
{
    cr_expect_eq(hfeed__fletcher32((const unsigned char *)"abcde", 5), 0x4ff029c7u);
    cr_expect_eq(hfeed__fletcher32((const unsigned char *)"abcdef", 6), 0x50562a2du);
    unsigned char *b = xmalloc(100000);
    for (size_t i = 0; i < 1000; i++)
        b[i] = (unsigned char)i;
    cr_expect_eq(hfeed__fletcher32(b, 1000), 0x0d689183u);
    /* All 0xff: HDF5's end-around-carry folds leave 0xffff where "mod 65535" would give 0. */
    memset(b, 0xff, 100000);
    cr_expect_eq(hfeed__fletcher32(b, 100000), 0xffffffffu);
    cr_expect_eq(hfeed__fletcher32(b, 99999), 0xff00ff00u);
    cr_expect_eq(hfeed__fletcher32(b, 0), 0u);
    free(b);
}

/* Writes one fletcher32-only uint8 dataset of data in a single chunk and returns the checksum
 * HDF5 stored (little-endian, after the data). */
static uint32_t hdf5_stored_fletcher32(hid_t f, const char *name, const unsigned char *data,
                                       size_t n)
{
    const struct h5case k = {.es = 1, .fletcher32 = true, .rows = n, .cols = 1, .chunk_rows = n};
    const hid_t d = create_dataset(f, name, &k);
    cr_assert(H5Dwrite(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0);
    size_t len = 0;
    unsigned mask = 0;
    unsigned char *raw = read_raw_chunk(d, 0, &len, &mask);
    cr_assert_eq(len, n + 4);
    cr_assert_eq(mask, 0u);
    cr_assert(memcmp(raw, data, n) == 0);
    const uint32_t stored = (uint32_t)raw[n] | (uint32_t)raw[n + 1] << 8 |
                            (uint32_t)raw[n + 2] << 16 | (uint32_t)raw[n + 3] << 24;
    free(raw);
    H5Dclose(d);
    return stored;
}

/* Lengths around the 360-word block boundary, odd and even, random and saturated bytes. */
Test(codec, fletcher32_matches_checksums_hdf5_stores)
{
    static const size_t lengths[] = {1, 2, 3, 719, 720, 721, 722, 1439, 1440, 1441, 65537, 200001};
    const hid_t f = new_file("fletcher.h5");
    unsigned char *b = xmalloc(200001);
    for (int pattern = 0; pattern < 3; pattern++) {
        for (size_t i = 0; i < 200001; i++)
            b[i] = pattern == 0   ? (unsigned char)rng()
                   : pattern == 1 ? 0xff
                                  : (unsigned char)(i % 7 == 0 ? 0 : 0xff);
        for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++) {
            const size_t n = lengths[li];
            const uint32_t stored = hdf5_stored_fletcher32(f, fx_fmt("p%d_n%zu", pattern, n), b, n);
            cr_expect_eq(hfeed__fletcher32(b, n), stored, "pattern %d, %zu bytes", pattern, n);
        }
    }
    free(b);
    H5Fclose(f);
}

/* Every length up to 3 blocks and beyond, on random, all-0xff and all-zero bytes. */
Test(codec, fletcher32_matches_word_by_word_reference)
{
    const size_t max = 4 * 720 + 3;
    unsigned char *b = xmalloc(max);
    for (int pattern = 0; pattern < 3; pattern++) {
        for (size_t i = 0; i < max; i++)
            b[i] = pattern == 0 ? (unsigned char)rng() : pattern == 1 ? 0xff : 0;
        for (size_t n = 0; n <= max; n++)
            cr_assert_eq(hfeed__fletcher32(b, n), ref_fletcher32(b, n), "pattern %d, %zu bytes",
                         pattern, n);
    }
    free(b);
    /* A large buffer, misaligned start. */
    const size_t big = (size_t)1 << 21;
    unsigned char *r = xmalloc(big + 1);
    for (size_t i = 0; i < big + 1; i++)
        r[i] = (unsigned char)rng();
    cr_assert_eq(hfeed__fletcher32(r + 1, big), ref_fletcher32(r + 1, big));
    free(r);
}

/* The checksum in HDF5's byte order and in the pre-1.6.3 order (bytes of each half swapped) are
 * both accepted; any other value is not. */
Test(codec, fletcher32_accepts_both_historical_byte_orders)
{
    struct hfeed__codec *c = new_codec();
    const int ids[] = {HFEED__FILTER_FLETCHER32};
    const struct hfeed__pipeline p = pipeline(1, 1, ids);
    unsigned char data[1001];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (unsigned char)rng();
    unsigned char stored[sizeof data + 4];
    memcpy(stored, data, sizeof data);
    const uint32_t sum = ref_fletcher32(data, sizeof data);
    put_le32(stored + sizeof data, sum);
    expect_decodes(c, &p, 0, stored, sizeof stored, data, sizeof data, "current order");
    const uint32_t old = ((sum & 0x00ff00ffu) << 8) | ((sum >> 8) & 0x00ff00ffu);
    cr_assert_neq(old, sum);
    put_le32(stored + sizeof data, old);
    expect_decodes(c, &p, 0, stored, sizeof stored, data, sizeof data, "pre-1.6.3 order");
    const char *words[] = {"fletcher32", "mismatch"};
    const uint32_t wrong[] = {sum ^ 1u, (sum << 16) | (sum >> 16), ~sum, 0};
    for (size_t w = 0; w < 4; w++) {
        put_le32(stored + sizeof data, wrong[w]);
        expect_fails(c, &p, 0, stored, sizeof stored, sizeof data, words, 2, "wrong checksum");
    }
    hfeed__codec_destroy(c);
}

/* HDF5 chunks with fletcher32 (alone, and after shuffle + deflate): any one flipped byte, data
 * or checksum, is reported as a fletcher32 failure. */
Test(codec, fletcher32_detects_any_flipped_byte)
{
    struct hfeed__codec *c = new_codec();
    const hid_t f = new_file("flip.h5");
    const struct h5case cases[] = {
        {.es = 4, .fletcher32 = true, .rows = 20, .cols = 9, .chunk_rows = 20},
        {.es = 4,
         .shuffle = true,
         .gzip = 6,
         .fletcher32 = true,
         .rows = 20,
         .cols = 9,
         .chunk_rows = 20},
        {.es = 1, .fletcher32 = true, .rows = 33, .cols = 1, .chunk_rows = 33},
    };
    const char *words[] = {"fletcher32"};
    for (size_t ci = 0; ci < 3; ci++) {
        const struct h5case *k = &cases[ci];
        const size_t n = (size_t)(k->rows * k->cols);
        unsigned char *data = xmalloc(n * k->es);
        fill(data, n, k->es, false);
        const hid_t d = create_dataset(f, fx_fmt("case%zu", ci), k);
        cr_assert(H5Dwrite(d, uint_type(k->es), H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0);
        const struct hfeed__pipeline p = read_pipeline(d);
        size_t len = 0;
        unsigned mask = 0;
        unsigned char *raw = read_raw_chunk(d, 0, &len, &mask);
        expect_decodes(c, &p, mask, raw, len, data, n * k->es, "intact");
        for (size_t pos = 0; pos < len; pos++) {
            for (unsigned x = 1; x < 256; x <<= 3) {
                raw[pos] ^= (unsigned char)x;
                expect_fails(c, &p, mask, raw, len, n * k->es, words, 1, "flipped byte");
                raw[pos] ^= (unsigned char)x;
            }
        }
        /* Shorter than the checksum itself. */
        for (size_t short_len = 0; short_len < 4; short_len++)
            expect_fails(c, &p, mask, raw, short_len, n * k->es, words, 1, "short chunk");
        free(raw);
        H5Dclose(d);
        free(data);
    }
    H5Fclose(f);
    hfeed__codec_destroy(c);
}

/* --- deflate ------------------------------------------------------------------------------- */

/* Streams from libdeflate's compressor at several levels, compressible and not. */
Test(codec, deflate_decodes_independent_streams)
{
    struct hfeed__codec *c = new_codec();
    const int ids[] = {HFEED__FILTER_DEFLATE};
    const struct hfeed__pipeline p = pipeline(4, 1, ids);
    static const size_t lengths[] = {0, 1, 2, 3, 1000, 4099, 65536, 300007};
    static const int levels[] = {0, 1, 6, 9, 12};
    for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++) {
        const size_t n = lengths[li];
        unsigned char *data = xmalloc(n);
        for (int random = 0; random < 2; random++) {
            fill(data, n, 1, random);
            for (size_t vi = 0; vi < 5; vi++) {
                size_t zlen = 0;
                unsigned char *z = zcompress(levels[vi], data, n, &zlen);
                expect_decodes(c, &p, 0, z, zlen, data, n,
                               fx_fmt("%zu bytes, level %d", n, levels[vi]));
                free(z);
            }
        }
        free(data);
    }
    hfeed__codec_destroy(c);
}

/* Any corrupted byte and any truncation: HFEED_E_READ naming deflate (or, for the rare change
 * that leaves a valid stream, such as the zlib header's level hint, the right bytes); never a
 * crash or a write past the buffers. */
Test(codec, deflate_rejects_corrupt_and_truncated_streams)
{
    struct hfeed__codec *c = new_codec();
    const int ids[] = {HFEED__FILTER_SHUFFLE, HFEED__FILTER_DEFLATE};
    const struct hfeed__pipeline p = pipeline(4, 2, ids);
    const size_t n = 4 * 301;
    unsigned char *data = xmalloc(n);
    fill(data, 301, 4, false);
    unsigned char *shuffled = xmalloc(n);
    ref_shuffle(shuffled, data, n, 4);
    size_t zlen = 0;
    unsigned char *z = zcompress(9, shuffled, n, &zlen);
    expect_decodes(c, &p, 0, z, zlen, data, n, "intact");
    const char *words[] = {"deflate"};
    size_t still_valid = 0;
    for (size_t pos = 0; pos < zlen; pos++) {
        static const unsigned xors[] = {0x01, 0x10, 0x80, 0x55, 0xff};
        for (size_t xi = 0; xi < 5; xi++) {
            z[pos] ^= (unsigned char)xors[xi];
            struct hfeed__err err = {0};
            unsigned char *got = NULL;
            const hfeed_status st = decode(c, &p, 0, z, zlen, n, &got, &err);
            if (st == HFEED_OK) {
                cr_assert(memcmp(got, data, n) == 0, "byte %zu ^ 0x%x: wrong bytes accepted", pos,
                          xors[xi]);
                still_valid++;
            } else {
                cr_assert_eq(st, HFEED_E_READ);
                cr_assert_not_null(strstr(err.msg, "deflate"), "%s", err.msg);
            }
            free(got);
            z[pos] ^= (unsigned char)xors[xi];
        }
    }
    cr_assert_lt(still_valid, 8, "%zu corruptions went unnoticed", still_valid);
    for (size_t cut = 0; cut < zlen; cut++)
        expect_fails(c, &p, 0, z, cut, n, words, 1, fx_fmt("truncated to %zu bytes", cut));
    /* Garbage that is not zlib at all. */
    unsigned char junk[64];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (unsigned char)rng();
    expect_fails(c, &p, 0, junk, sizeof junk, n, words, 1, "garbage");
    free(z);
    free(shuffled);
    free(data);
    hfeed__codec_destroy(c);
}

/* --- shuffle ------------------------------------------------------------------------------- */

/* Element sizes with and without fast paths, lengths with leftover bytes and around the
 * unshuffle block size, against this file's shuffle. */
Test(codec, unshuffle_undoes_reference_shuffle)
{
    struct hfeed__codec *c = new_codec();
    const int ids[] = {HFEED__FILTER_SHUFFLE};
    static const size_t sizes[] = {1, 2, 3, 4, 5, 7, 8, 16, 24};
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        const size_t es = sizes[si];
        const struct hfeed__pipeline p = pipeline(es, 1, ids);
        const size_t lengths[] = {
            0,           1,       es - 1,      es,      es + 1,       2 * es - 1,    2 * es,
            63 * es + 5, 64 * es, 64 * es + 1, 65 * es, 130 * es - 1, 1000 * es + 3, 100003 * es};
        for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++) {
            const size_t n = lengths[li];
            unsigned char *data = xmalloc(n);
            fill(data, n, 1, true);
            unsigned char *shuffled = xmalloc(n);
            ref_shuffle(shuffled, data, n, es);
            expect_decodes(c, &p, 0, shuffled, n, data, n, fx_fmt("es %zu, %zu bytes", es, n));
            free(shuffled);
            free(data);
        }
    }
    hfeed__codec_destroy(c);
}

/* --- the pipeline -------------------------------------------------------------------------- */

/* Every subset of shuffle, deflate, fletcher32 built by hand, each with every filter mask. */
Test(codec, hand_built_pipelines_with_every_mask)
{
    struct hfeed__codec *c = new_codec();
    const size_t es = 8;
    const size_t n = es * 517 + 0;
    unsigned char *data = xmalloc(n);
    fill(data, n / es, es, false);
    for (unsigned subset = 0; subset < 8; subset++) {
        int ids[3];
        unsigned nf = 0;
        if (subset & 1u) ids[nf++] = HFEED__FILTER_SHUFFLE;
        if (subset & 2u) ids[nf++] = HFEED__FILTER_DEFLATE;
        if (subset & 4u) ids[nf++] = HFEED__FILTER_FLETCHER32;
        const struct hfeed__pipeline p = pipeline(es, nf, ids);
        cr_assert(hfeed__codec_supports(&p));
        for (unsigned mask = 0; mask < (1u << nf); mask++) {
            /* Encode in write order, skipping masked filters. */
            unsigned char *cur = dup_bytes(data, n);
            size_t len = n;
            for (unsigned i = 0; i < nf; i++) {
                if (mask >> i & 1u) continue;
                unsigned char *next = NULL;
                if (ids[i] == HFEED__FILTER_SHUFFLE) {
                    next = xmalloc(len);
                    ref_shuffle(next, cur, len, es);
                } else if (ids[i] == HFEED__FILTER_DEFLATE) {
                    next = zcompress(1, cur, len, &len);
                } else {
                    next = xmalloc(len + 4);
                    memcpy(next, cur, len);
                    put_le32(next + len, ref_fletcher32(cur, len));
                    len += 4;
                }
                free(cur);
                cur = next;
            }
            expect_decodes(c, &p, mask, cur, len, data, n,
                           fx_fmt("subset %u, mask 0x%x", subset, mask));
            /* Mask bits past the pipeline are ignored. */
            expect_decodes(c, &p, mask | 0xf0u, cur, len, data, n, "high mask bits");
            free(cur);
        }
    }
    free(data);
    hfeed__codec_destroy(c);
}

/* Chunks written with H5Dwrite_chunk and a filter mask (pipeline shuffle=0, deflate=1,
 * fletcher32=2): HDF5 reads each back right (so the test's encoding is right), and so must we. */
Test(codec, hdf5_filter_mask_skips_filters)
{
    struct hfeed__codec *c = new_codec();
    const hid_t f = new_file("mask.h5");
    const struct h5case k = {.es = 4,
                             .shuffle = true,
                             .gzip = 5,
                             .fletcher32 = true,
                             .rows = 60,
                             .cols = 9,
                             .chunk_rows = 10};
    const hid_t d = create_dataset(f, "masked", &k);
    const struct hfeed__pipeline p = read_pipeline(d);
    cr_assert_eq(p.nfilters, 3);
    cr_assert_eq(p.ids[0], HFEED__FILTER_SHUFFLE);
    cr_assert_eq(p.ids[1], HFEED__FILTER_DEFLATE);
    cr_assert_eq(p.ids[2], HFEED__FILTER_FLETCHER32);
    cr_assert_eq(p.elem_size, 4);
    const size_t chunk_bytes = 10 * 9 * 4;
    static const unsigned masks[] = {0x0, 0x2, 0x1, 0x4, 0x7, 0x3};
    unsigned char *data = xmalloc(60 * chunk_bytes / 10);
    fill(data, 60 * 9, 4, false);
    for (size_t ci = 0; ci < 6; ci++) {
        const unsigned mask = masks[ci];
        const unsigned char *chunk = data + ci * chunk_bytes;
        unsigned char *cur = dup_bytes(chunk, chunk_bytes);
        size_t len = chunk_bytes;
        if (!(mask & 1u)) {
            unsigned char *next = xmalloc(len);
            ref_shuffle(next, cur, len, 4);
            free(cur);
            cur = next;
        }
        if (!(mask & 2u)) {
            unsigned char *next = zcompress(5, cur, len, &len);
            free(cur);
            cur = next;
        }
        if (!(mask & 4u)) {
            unsigned char *next = xmalloc(len + 4);
            memcpy(next, cur, len);
            put_le32(next + len, ref_fletcher32(cur, len));
            len += 4;
            free(cur);
            cur = next;
        }
        const hsize_t offset[2] = {ci * 10, 0};
        cr_assert(H5Dwrite_chunk(d, H5P_DEFAULT, mask, offset, len, cur) >= 0);
        free(cur);
    }
    for (size_t ci = 0; ci < 6; ci++) {
        unsigned char *back = h5_read_rows(d, ci * 10, 10, 9, 4);
        cr_assert(memcmp(back, data + ci * chunk_bytes, chunk_bytes) == 0,
                  "HDF5 reads chunk %zu (mask 0x%x) differently: the test's encoding is wrong", ci,
                  masks[ci]);
        free(back);
        size_t len = 0;
        unsigned mask = 0;
        unsigned char *raw = read_raw_chunk(d, ci * 10, &len, &mask);
        cr_assert_eq(mask, masks[ci]);
        expect_decodes(c, &p, mask, raw, len, data + ci * chunk_bytes, chunk_bytes,
                       fx_fmt("mask 0x%x", mask));
        free(raw);
    }
    check_chunks_against_h5dread(c, d, &k, "masked");
    free(data);
    H5Dclose(d);
    H5Fclose(f);
    hfeed__codec_destroy(c);
}

/* A chunk_bytes that differs from what the chunk holds is an error with both sizes, whichever
 * filter finds it. */
Test(codec, wrong_chunk_bytes_is_an_error)
{
    struct hfeed__codec *c = new_codec();
    const size_t n = 4 * 250;
    unsigned char *data = xmalloc(n);
    fill(data, 250, 4, false);
    unsigned char shuffled[4 * 250];
    ref_shuffle(shuffled, data, n, 4);
    size_t zlen = 0;
    unsigned char *z = zcompress(6, shuffled, n, &zlen);
    unsigned char *zf = xmalloc(zlen + 4);
    memcpy(zf, z, zlen);
    put_le32(zf + zlen, ref_fletcher32(z, zlen));
    unsigned char df[4 * 250 + 4];
    memcpy(df, data, n);
    put_le32(df + n, ref_fletcher32(data, n));

    const int none[] = {0};
    const int shuf[] = {HFEED__FILTER_SHUFFLE};
    const int fl[] = {HFEED__FILTER_FLETCHER32};
    const int all[] = {HFEED__FILTER_SHUFFLE, HFEED__FILTER_DEFLATE, HFEED__FILTER_FLETCHER32};
    const struct hfeed__pipeline p_none = pipeline(4, 0, none);
    const struct hfeed__pipeline p_shuf = pipeline(4, 1, shuf);
    const struct hfeed__pipeline p_fl = pipeline(4, 1, fl);
    const struct hfeed__pipeline p_all = pipeline(4, 3, all);
    const char *one_less[] = {"1000", "999"};
    const char *one_more[] = {"1000", "1001"};
    expect_fails(c, &p_none, 0, data, n, n - 1, one_less, 2, "none, smaller");
    expect_fails(c, &p_none, 0, data, n, n + 1, one_more, 2, "none, larger");
    expect_fails(c, &p_shuf, 0, shuffled, n, n + 1, one_more, 2, "shuffle, larger");
    expect_fails(c, &p_fl, 0, df, n + 4, n - 1, one_less, 2, "fletcher32, smaller");
    expect_fails(c, &p_fl, 0, df, n + 4, n + 1, one_more, 2, "fletcher32, larger");
    const char *deflate_less[] = {"deflate", "999"};
    const char *deflate_more[] = {"deflate", "1000", "1001"};
    expect_fails(c, &p_all, 0, zf, zlen + 4, n - 1, deflate_less, 2, "all, smaller");
    expect_fails(c, &p_all, 0, zf, zlen + 4, n + 1, deflate_more, 3, "all, larger");
    /* The chunk with deflate skipped, too long for chunk_bytes: shuffle would not fit. */
    const char *shuffle_more[] = {"shuffle", "1000", "999"};
    unsigned char sf[4 * 250 + 4];
    memcpy(sf, shuffled, n);
    put_le32(sf + n, ref_fletcher32(shuffled, n));
    expect_fails(c, &p_all, 0x2, sf, n + 4, n - 1, shuffle_more, 3, "deflate skipped, smaller");
    expect_decodes(c, &p_all, 0x2, sf, n + 4, data, n, "deflate skipped, right size");
    free(zf);
    free(z);
    free(data);
    hfeed__codec_destroy(c);
}

/* --- what the codec refuses ---------------------------------------------------------------- */

Test(codec, supports_only_decodable_pipelines)
{
    const int sdf[] = {HFEED__FILTER_SHUFFLE, HFEED__FILTER_DEFLATE, HFEED__FILTER_FLETCHER32};
    const int none[] = {0};
    const int szip[] = {HFEED__FILTER_SHUFFLE, 4};
    const int lzf[] = {32000};
    const int f_first[] = {HFEED__FILTER_FLETCHER32, HFEED__FILTER_DEFLATE};
    const int d_then_s[] = {HFEED__FILTER_DEFLATE, HFEED__FILTER_SHUFFLE};
    const int twice[] = {HFEED__FILTER_DEFLATE, HFEED__FILTER_DEFLATE};
    struct hfeed__pipeline p = pipeline(4, 3, sdf);
    cr_expect(hfeed__codec_supports(&p));
    p = pipeline(4, 0, none);
    cr_expect(hfeed__codec_supports(&p));
    p = pipeline(4, 2, szip);
    cr_expect_not(hfeed__codec_supports(&p));
    p = pipeline(4, 1, lzf);
    cr_expect_not(hfeed__codec_supports(&p));
    p = pipeline(4, 2, f_first);
    cr_expect_not(hfeed__codec_supports(&p));
    p = pipeline(4, 2, d_then_s);
    cr_expect_not(hfeed__codec_supports(&p));
    p = pipeline(4, 2, twice);
    cr_expect_not(hfeed__codec_supports(&p));
    p = pipeline(0, 1, sdf);
    cr_expect_not(hfeed__codec_supports(&p), "shuffle with element size 0");
    p = pipeline(4, 3, sdf);
    p.nfilters = HFEED__MAX_FILTERS + 1;
    cr_expect_not(hfeed__codec_supports(&p));
    cr_expect_not(hfeed__codec_supports(NULL));
}

/* Decoding with a pipeline the codec refuses fails cleanly, naming the filter or the order. */
Test(codec, decode_refuses_unsupported_pipelines)
{
    struct hfeed__codec *c = new_codec();
    unsigned char data[64];
    fill(data, 16, 4, false);
    const int lzf[] = {HFEED__FILTER_SHUFFLE, 32000};
    const struct hfeed__pipeline p_lzf = pipeline(4, 2, lzf);
    const char *unsupported[] = {"unsupported filter id 32000"};
    expect_fails(c, &p_lzf, 0, data, 64, 64, unsupported, 1, "lzf");
    /* Even when the chunk skipped it: the pipeline as a whole is refused. */
    expect_fails(c, &p_lzf, 0x2, data, 64, 64, unsupported, 1, "lzf skipped");
    const int f_first[] = {HFEED__FILTER_FLETCHER32, HFEED__FILTER_DEFLATE};
    const struct hfeed__pipeline p_order = pipeline(4, 2, f_first);
    const char *order[] = {"order", "fletcher32"};
    expect_fails(c, &p_order, 0, data, 64, 64, order, 2, "fletcher32 first");
    hfeed__codec_destroy(c);
}

/* HDF5 keeps filters in the order they were added: fletcher32 added first is first, and the
 * codec refuses that dataset (the loader then reads it through H5Dread). */
Test(codec, hdf5_nonstandard_order_is_refused)
{
    const hid_t f = new_file("order.h5");
    const struct h5case k = {.es = 4,
                             .gzip = 1,
                             .fletcher32 = true,
                             .fletcher_first = true,
                             .rows = 10,
                             .cols = 3,
                             .chunk_rows = 5};
    const hid_t d = create_dataset(f, "fletcher_first", &k);
    const struct hfeed__pipeline p = read_pipeline(d);
    cr_assert_eq(p.nfilters, 2);
    cr_assert_eq(p.ids[0], HFEED__FILTER_FLETCHER32);
    cr_assert_eq(p.ids[1], HFEED__FILTER_DEFLATE);
    cr_assert_not(hfeed__codec_supports(&p));
    H5Dclose(d);
    H5Fclose(f);
}

Test(codec, no_filters_copies)
{
    struct hfeed__codec *c = new_codec();
    const struct hfeed__pipeline p = pipeline(8, 0, NULL);
    unsigned char data[123];
    fill(data, sizeof data, 1, true);
    expect_decodes(c, &p, 0, data, sizeof data, data, sizeof data, "no filters");
    hfeed__codec_destroy(c);
}

Test(codec, create_and_destroy)
{
    hfeed__codec_destroy(NULL);
    struct hfeed__err err = {0};
    cr_assert_eq(hfeed__codec_create(NULL, &err), HFEED_E_INVALID_ARG);
    struct hfeed__codec *c = (struct hfeed__codec *)&err;
    hfeed__err_clear(&err);
    hfeed__alloc_fail_after(0);
    const hfeed_status st = hfeed__codec_create(&c, &err);
    hfeed__alloc_fail_after(-1);
    cr_assert_eq(st, HFEED_E_NOMEM);
    cr_assert_null(c);
    cr_assert_not_null(strstr(err.msg, "codec"), "%s", err.msg);
    c = new_codec();
    hfeed__codec_destroy(c);
}

Test(codec, decode_rejects_null_arguments)
{
    struct hfeed__codec *c = new_codec();
    const struct hfeed__pipeline p = pipeline(1, 0, NULL);
    unsigned char a[4] = {1, 2, 3, 4}, b[4], t[4];
    struct hfeed__err err = {0};
    cr_expect_eq(hfeed__codec_decode(NULL, &p, 0, a, 4, b, t, 4, &err), HFEED_E_INVALID_ARG);
    cr_expect_eq(hfeed__codec_decode(c, NULL, 0, a, 4, b, t, 4, NULL), HFEED_E_INVALID_ARG);
    cr_expect_eq(hfeed__codec_decode(c, &p, 0, a, 4, b, t, 4, NULL), HFEED_OK);
    cr_expect(memcmp(a, b, 4) == 0);
    hfeed__codec_destroy(c);
}
