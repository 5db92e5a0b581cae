/* codec: undoes HDF5's deflate, shuffle and fletcher32 filters on one raw chunk (the contract is
 * in codec.h).
 *
 * DESIGN
 *
 * Pipelines. HDF5 applies a dataset's filters in pipeline order when writing and undoes them in
 * reverse order when reading; a chunk's filter mask says which filters were skipped for it
 * (deflate is optional: HDF5 stores a chunk without it when it fails, and H5Dwrite_chunk stores
 * whatever mask it is given). Each step
 * has a size rule: shuffle keeps the size, fletcher32 adds 4 bytes, deflate's output size is
 * whatever the stream says. The decoder only has buffers of chunk_bytes (out, tmp) besides the
 * input, so it accepts the pipelines in which every intermediate fits in chunk_bytes: fletcher32,
 * if present, is the last filter, and shuffle, if present, comes before deflate. That is the
 * order h5py and every HDF5 example write (shuffle, deflate, fletcher32); other orders are
 * refused by hfeed__codec_supports() and left to HDF5. Then deflate, when not skipped, must
 * inflate to exactly chunk_bytes, and the final size must be chunk_bytes.
 *
 * Buffers. fletcher32 works in place (it checks and drops the last 4 bytes). deflate and
 * shuffle each move the bytes into another buffer; the steps that move bytes alternate between
 * tmp and out, chosen from the number of such steps so that the last one lands in out. The
 * input is only ever read. With nothing to undo, in is copied to out. No allocation: the
 * libdeflate decompressor is allocated once, in hfeed__codec_create().
 *
 * fletcher32 is HDF5's H5_checksum_fletcher32: 16-bit words taken big-endian from byte pairs, an
 * odd trailing byte as the high byte of a last word, both sums folded (x & 0xffff) + (x >> 16)
 * after every block of 360 words and twice at the end; the result is (sum2 << 16) | sum1. The
 * fold is an end-around carry, not a true "mod 65535" (all-0xff data sums to 0xffffffff, not
 * 0), so the code below keeps HDF5's blocks and folds exactly and only regroups the additions
 * inside a block: sum1 += w0 + ... + w(n-1) and
 * sum2 += n * sum1 + n * w0 + (n - 1) * w1 + ... + 1 * w(n-1), modulo 2^32 like HDF5's
 * uint32_t, which is what its word-by-word loop computes; written as independent partial sums
 * (fletcher_full_block) the compiler vectorises it. The stored checksum is little-endian (HDF5's
 * UINT32ENCODE). HDF5 before 1.6.3 stored it with the two bytes of each 16-bit half swapped on
 * little-endian machines; HDF5 accepts both forms and so do we.
 *
 * Shuffle stores byte k of every element together: for n = len / elem_size elements, byte k of
 * element i is at k * n + i; the len % elem_size leftover bytes follow unchanged. HDF5 leaves
 * the data as it is when elem_size is 1 or there is at most one whole element. Unshuffling is a
 * transpose of an elem_size x n byte matrix; for 2, 4 and 8 byte elements it runs in blocks of
 * a fixed number of elements with one store per byte lane, a shape the compiler turns into
 * vector byte interleaves. */
#include "codec.h"

#include <assert.h>
#include <string.h>

#include <libdeflate.h>

#include "alloc.h"

struct hfeed__codec {
    struct libdeflate_decompressor *inflater;
};

/* Words per fletcher32 block: HDF5's constant; the sums are folded after each block. */
enum { FLETCHER_BLOCK = 360 };
enum { FLETCHER_LEN = 4 };
/* Independent partial sums in a full fletcher32 block (see fletcher_full_block). */
enum { LANES = 8 };
_Static_assert(FLETCHER_BLOCK % LANES == 0, "a full fletcher32 block splits evenly into lanes");

/* Elements per unshuffle block: a fixed trip count for the vectorised inner loops. */
enum { SHUFFLE_BLOCK = 64 };

/* Checks p against the rules in the DESIGN block.
 * Returns: HFEED_OK when the codec decodes p, else HFEED_E_READ with the reason in err (may be
 * NULL). */
static hfeed_status check_pipeline(const struct hfeed__pipeline *p, struct hfeed__err *err)
{
    if (p->nfilters > HFEED__MAX_FILTERS)
        return HFEED__FAIL(err, HFEED_E_READ, "%u filters, more than the %d supported", p->nfilters,
                           HFEED__MAX_FILTERS);
    int deflate_at = -1;
    int shuffle_at = -1;
    int fletcher_at = -1;
    for (unsigned i = 0; i < p->nfilters; i++) {
        const int id = p->ids[i];
        int *seen = NULL;
        if (id == HFEED__FILTER_DEFLATE) seen = &deflate_at;
        if (id == HFEED__FILTER_SHUFFLE) seen = &shuffle_at;
        if (id == HFEED__FILTER_FLETCHER32) seen = &fletcher_at;
        if (seen == NULL) return HFEED__FAIL(err, HFEED_E_READ, "unsupported filter id %d", id);
        if (*seen >= 0)
            return HFEED__FAIL(err, HFEED_E_READ, "filter id %d appears twice in the pipeline", id);
        *seen = (int)i;
    }
    if (fletcher_at >= 0 && (unsigned)fletcher_at != p->nfilters - 1)
        return HFEED__FAIL(err, HFEED_E_READ,
                           "unsupported filter order: fletcher32 is not the last filter");
    if (shuffle_at >= 0 && deflate_at >= 0 && shuffle_at > deflate_at)
        return HFEED__FAIL(err, HFEED_E_READ, "unsupported filter order: shuffle after deflate");
    if (shuffle_at >= 0 && p->elem_size == 0)
        return HFEED__FAIL(err, HFEED_E_READ, "shuffle: element size 0");
    return HFEED_OK;
}

bool hfeed__codec_supports(const struct hfeed__pipeline *p)
{
    return p != NULL && check_pipeline(p, NULL) == HFEED_OK;
}

hfeed_status hfeed__codec_create(struct hfeed__codec **out, struct hfeed__err *err)
{
    if (out == NULL) return HFEED__FAIL(err, HFEED_E_INVALID_ARG, "codec: NULL out-pointer");
    *out = NULL;
    struct hfeed__codec *c = hfeed__calloc(1, sizeof *c);
    if (c == NULL) goto fail;
    /* libdeflate 1.14 allocates with malloc (a per-call allocator arrived in 1.19), so this one
     * allocation is outside hfeed__alloc's failure injection. */
    c->inflater = libdeflate_alloc_decompressor();
    if (c->inflater == NULL) goto fail;
    *out = c;
    return HFEED_OK;
fail:
    hfeed__codec_destroy(c);
    return HFEED__FAIL(err, HFEED_E_NOMEM, "codec: out of memory for the deflate decompressor");
}

void hfeed__codec_destroy(struct hfeed__codec *c)
{
    if (c == NULL) return;
    if (c->inflater != NULL) libdeflate_free_decompressor(c->inflater);
    hfeed__free(c);
}

/* --- fletcher32 ------------------------------------------------------------------------------ */

static uint32_t fold16(uint32_t x)
{
    return (x & 0xffffu) + (x >> 16);
}

/* Adds n big-endian words at data to the sums, as n steps of HDF5's loop would (mod 2^32). */
static void fletcher_block(const unsigned char *data, size_t n, uint32_t *sum1, uint32_t *sum2)
{
    uint32_t words = 0;
    uint32_t weighted = 0;
    for (size_t j = 0; j < n; j++) {
        const uint32_t w = ((uint32_t)data[2 * j] << 8) | data[2 * j + 1];
        words += w;
        weighted += (uint32_t)(n - j) * w;
    }
    *sum2 += (uint32_t)n * *sum1 + weighted;
    *sum1 += words;
}

/* The same for a full block of FLETCHER_BLOCK words, in a shape the compiler vectorises at -O2.
 * Words go round-robin into LANES lanes and each lane runs HDF5's recurrence (a += w; b += a)
 * over its own words; word j = LANES * m + l then counts FLETCHER_BLOCK - j times in sum2, which
 * is LANES * b[l] - l * a[l] summed over the lanes. A word is 256 * (first byte) + second byte
 * and everything is linear modulo 2^32, so the lanes keep bytes, not words: the inner loop is
 * 2 * LANES independent byte additions (one 16-byte vector), with no byte swapping. */
static void fletcher_full_block(const unsigned char *data, uint32_t *sum1, uint32_t *sum2)
{
    uint32_t a[2 * LANES] = {0};
    uint32_t b[2 * LANES] = {0};
    for (size_t m = 0; m < FLETCHER_BLOCK / LANES; m++) {
        const unsigned char *q = data + 2 * LANES * m;
        for (size_t k = 0; k < 2 * LANES; k++) {
            a[k] += q[k];
            b[k] += a[k];
        }
    }
    uint32_t words = 0;
    uint32_t weighted = 0;
    for (size_t k = 0; k < 2 * LANES; k++) {
        const uint32_t scale = k % 2 == 0 ? 256 : 1;
        words += scale * a[k];
        weighted += scale * (LANES * b[k] - (uint32_t)(k / 2) * a[k]);
    }
    *sum2 += (uint32_t)FLETCHER_BLOCK * *sum1 + weighted;
    *sum1 += words;
}

uint32_t hfeed__fletcher32(const unsigned char *data, size_t len)
{
    uint32_t sum1 = 0;
    uint32_t sum2 = 0;
    size_t words = len / 2;
    while (words > 0) {
        const size_t n = words < FLETCHER_BLOCK ? words : FLETCHER_BLOCK;
        if (n == FLETCHER_BLOCK)
            fletcher_full_block(data, &sum1, &sum2);
        else
            fletcher_block(data, n, &sum1, &sum2);
        data += 2 * n;
        words -= n;
        sum1 = fold16(sum1);
        sum2 = fold16(sum2);
    }
    if (len % 2 != 0) {
        sum1 += (uint32_t)data[0] << 8;
        sum2 += sum1;
        sum1 = fold16(sum1);
        sum2 = fold16(sum2);
    }
    sum1 = fold16(sum1);
    sum2 = fold16(sum2);
    return (sum2 << 16) | sum1;
}

/* Checks and drops the checksum at the end of buf[0 .. *len). */
static hfeed_status undo_fletcher32(const unsigned char *buf, size_t *len, struct hfeed__err *err)
{
    if (*len < FLETCHER_LEN)
        return HFEED__FAIL(err, HFEED_E_READ,
                           "fletcher32: %zu stored bytes are too few to hold the checksum", *len);
    const size_t data_len = *len - FLETCHER_LEN;
    const unsigned char *s = buf + data_len;
    const uint32_t stored =
        (uint32_t)s[0] | ((uint32_t)s[1] << 8) | ((uint32_t)s[2] << 16) | ((uint32_t)s[3] << 24);
    const uint32_t sum = hfeed__fletcher32(buf, data_len);
    /* Before HDF5 1.6.3: each 16-bit half with its two bytes swapped. */
    const uint32_t old_sum = ((sum & 0x00ff00ffu) << 8) | ((sum >> 8) & 0x00ff00ffu);
    if (stored != sum && stored != old_sum)
        return HFEED__FAIL(err, HFEED_E_READ,
                           "fletcher32: checksum mismatch over %zu bytes (stored 0x%08x, "
                           "computed 0x%08x): the chunk is corrupt",
                           data_len, (unsigned)stored, (unsigned)sum);
    *len = data_len;
    return HFEED_OK;
}

/* --- deflate --------------------------------------------------------------------------------- */

static hfeed_status undo_deflate(struct hfeed__codec *c, const unsigned char *src, size_t len,
                                 unsigned char *dst, size_t expect, struct hfeed__err *err)
{
    size_t got = 0;
    const enum libdeflate_result r =
        libdeflate_zlib_decompress(c->inflater, src, len, dst, expect, &got);
    switch (r) {
    case LIBDEFLATE_SUCCESS:
        if (got != expect)
            return HFEED__FAIL(err, HFEED_E_READ,
                               "deflate: stream of %zu bytes inflates to %zu bytes, expected %zu",
                               len, got, expect);
        return HFEED_OK;
    case LIBDEFLATE_INSUFFICIENT_SPACE:
        return HFEED__FAIL(err, HFEED_E_READ,
                           "deflate: stream of %zu bytes inflates to more than the expected %zu "
                           "bytes",
                           len, expect);
    case LIBDEFLATE_BAD_DATA:
        return HFEED__FAIL(err, HFEED_E_READ,
                           "deflate: corrupt or truncated zlib stream (%zu bytes)", len);
    default:
        return HFEED__FAIL(err, HFEED_E_READ,
                           "deflate: libdeflate failed with code %d on %zu bytes", (int)r, len);
    }
}

/* --- shuffle --------------------------------------------------------------------------------- */

static void unshuffle2(unsigned char *restrict dst, const unsigned char *restrict src, size_t n)
{
    const unsigned char *restrict p0 = src;
    const unsigned char *restrict p1 = src + n;
    size_t i = 0;
    for (; i + SHUFFLE_BLOCK <= n; i += SHUFFLE_BLOCK) {
        unsigned char *restrict d = dst + 2 * i;
        for (size_t k = 0; k < SHUFFLE_BLOCK; k++) {
            d[2 * k] = p0[i + k];
            d[2 * k + 1] = p1[i + k];
        }
    }
    for (; i < n; i++) {
        dst[2 * i] = p0[i];
        dst[2 * i + 1] = p1[i];
    }
}

static void unshuffle4(unsigned char *restrict dst, const unsigned char *restrict src, size_t n)
{
    const unsigned char *restrict p0 = src;
    const unsigned char *restrict p1 = src + n;
    const unsigned char *restrict p2 = src + 2 * n;
    const unsigned char *restrict p3 = src + 3 * n;
    size_t i = 0;
    for (; i + SHUFFLE_BLOCK <= n; i += SHUFFLE_BLOCK) {
        unsigned char *restrict d = dst + 4 * i;
        for (size_t k = 0; k < SHUFFLE_BLOCK; k++) {
            d[4 * k] = p0[i + k];
            d[4 * k + 1] = p1[i + k];
            d[4 * k + 2] = p2[i + k];
            d[4 * k + 3] = p3[i + k];
        }
    }
    for (; i < n; i++) {
        dst[4 * i] = p0[i];
        dst[4 * i + 1] = p1[i];
        dst[4 * i + 2] = p2[i];
        dst[4 * i + 3] = p3[i];
    }
}

static void unshuffle8(unsigned char *restrict dst, const unsigned char *restrict src, size_t n)
{
    const unsigned char *restrict p[8];
    for (size_t b = 0; b < 8; b++)
        p[b] = src + b * n;
    size_t i = 0;
    for (; i + SHUFFLE_BLOCK <= n; i += SHUFFLE_BLOCK) {
        unsigned char *restrict d = dst + 8 * i;
        for (size_t k = 0; k < SHUFFLE_BLOCK; k++) {
            d[8 * k] = p[0][i + k];
            d[8 * k + 1] = p[1][i + k];
            d[8 * k + 2] = p[2][i + k];
            d[8 * k + 3] = p[3][i + k];
            d[8 * k + 4] = p[4][i + k];
            d[8 * k + 5] = p[5][i + k];
            d[8 * k + 6] = p[6][i + k];
            d[8 * k + 7] = p[7][i + k];
        }
    }
    for (; i < n; i++)
        for (size_t b = 0; b < 8; b++)
            dst[8 * i + b] = p[b][i];
}

/* Any other element size (rare): element by element, so that the writes are sequential and the
 * reads walk elem_size sequential streams. */
static void unshuffle_any(unsigned char *restrict dst, const unsigned char *restrict src, size_t n,
                          size_t es)
{
    for (size_t i = 0; i < n; i++)
        for (size_t b = 0; b < es; b++)
            dst[i * es + b] = src[b * n + i];
}

/* HDF5's unshuffle of len bytes from src into dst (distinct buffers). */
static void unshuffle(unsigned char *restrict dst, const unsigned char *restrict src, size_t len,
                      size_t es)
{
    const size_t n = len / es;
    if (es <= 1 || n <= 1) {
        memcpy(dst, src, len);
        return;
    }
    switch (es) {
    case 2:
        unshuffle2(dst, src, n);
        break;
    case 4:
        unshuffle4(dst, src, n);
        break;
    case 8:
        unshuffle8(dst, src, n);
        break;
    default:
        unshuffle_any(dst, src, n, es);
        break;
    }
    memcpy(dst + n * es, src + n * es, len - n * es);
}

/* --- the pipeline ---------------------------------------------------------------------------- */

/* Whether undoing filter id moves the bytes into another buffer (rather than working in place
 * or doing nothing). */
static bool moves_bytes(int id, size_t elem_size)
{
    return id == HFEED__FILTER_DEFLATE || (id == HFEED__FILTER_SHUFFLE && elem_size > 1);
}

hfeed_status hfeed__codec_decode(struct hfeed__codec *c, const struct hfeed__pipeline *p,
                                 unsigned filter_mask, unsigned char *in, size_t in_len,
                                 unsigned char *out, unsigned char *tmp, size_t chunk_bytes,
                                 struct hfeed__err *err)
{
    if (c == NULL || p == NULL || in == NULL || out == NULL || tmp == NULL)
        return HFEED__FAIL(err, HFEED_E_INVALID_ARG, "codec: NULL argument");
    HFEED__CHECK(check_pipeline(p, err));

    unsigned moves = 0;
    for (unsigned i = 0; i < p->nfilters; i++)
        if (!(filter_mask >> i & 1u) && moves_bytes(p->ids[i], p->elem_size)) moves++;

    const unsigned char *cur = in;
    size_t len = in_len;
    for (unsigned i = p->nfilters; i-- > 0;) {
        if (filter_mask >> i & 1u) continue;
        const int id = p->ids[i];
        if (id == HFEED__FILTER_FLETCHER32) {
            HFEED__CHECK(undo_fletcher32(cur, &len, err));
            continue;
        }
        if (!moves_bytes(id, p->elem_size)) continue;
        /* The last move lands in out, the one before in tmp, and so on. */
        moves--;
        unsigned char *dst = moves % 2 == 0 ? out : tmp;
        if (id == HFEED__FILTER_DEFLATE) {
            HFEED__CHECK(undo_deflate(c, cur, len, dst, chunk_bytes, err));
            len = chunk_bytes;
        } else {
            if (len > chunk_bytes)
                return HFEED__FAIL(err, HFEED_E_READ,
                                   "shuffle: %zu bytes to unshuffle, more than the chunk's %zu",
                                   len, chunk_bytes);
            unshuffle(dst, cur, len, p->elem_size);
        }
        cur = dst;
    }
    assert(moves == 0);

    if (len != chunk_bytes)
        return HFEED__FAIL(err, HFEED_E_READ, "chunk decodes to %zu bytes, expected %zu", len,
                           chunk_bytes);
    if (cur != out) memcpy(out, cur, len);
    return HFEED_OK;
}
