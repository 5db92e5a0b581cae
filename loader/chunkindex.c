/* chunkindex: reads a chunked dataset's chunk index straight from the file (see chunkindex.h).
 *
 * DESIGN
 * The walk has three steps, each a few preads:
 *   1. The object header at base_addr + header_addr: version 1 (16-byte prefix, 8-byte message
 *      headers) or version 2 ("OHDR", checksummed, 4- or 6-byte message headers), and the
 *      blocks its continuation messages point to ("OCHK" in version 2). Each block is read whole
 *      with one pread. We keep the dataspace message (dims and max dims) and a copy of the data
 *      layout message, and stop as soon as we have both.
 *   2. The layout message: version 3 (always a version 1 B-tree) or version 4 (single chunk,
 *      implicit, fixed array; extensible array and version 2 B-tree are refused). Its chunk
 *      dims must equal the caller's and its dataspace the caller's dims: that is how a wrong
 *      header address shows.
 *   3. The index: a version 1 B-tree is walked depth-first, one pread per node; a fixed array
 *      is its header, its data block, and one pread per initialised page.
 *
 * Chunk order: the table is row-major over the chunk grid of the dims (chunkindex.h). The fixed
 * array and implicit indexes number chunks row-major over the grid of the *max* dims, so an
 * element is renumbered through its coordinates (elem_entry); the B-tree keys hold element
 * offsets, divided by the chunk dims.
 *
 * Invariants that keep a corrupt file from crashing or hanging us (it gets HFEED_E_READ):
 *   - every address and length taken from the file is checked against q->file_size before we
 *     allocate or read that much, and every pread must return all it asked for;
 *   - at most MAX_OH_BLOCKS object header blocks are followed (continuations may loop);
 *   - B-tree: levels must fall by one per step, nodes below the root must be non-empty, and
 *     leaf keys must strictly increase across the walk, so no node is ever visited twice;
 *   - checksummed structures (OHDR, OCHK, FAHD, FADB and its pages) are verified (lookup3).
 *
 * No HDF5, no threads, no globals; memory comes from hfeed__alloc and is freed before return. */
#include "chunkindex.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"

#define MAX_RANK 8               /* q->dims holds 8 */
#define LAYOUT_MAX 256           /* bytes of the layout message we keep (chunked needs < 100) */
#define MAX_OH_BLOCKS 4096       /* object header blocks followed before we call it a loop */
#define MAX_PENDING 128          /* continuation blocks found but not read yet */
#define MAX_OH_BLOCK (16u << 20) /* larger object header blocks are taken as corrupt */
#define BTREE_GUESS 64           /* entries per node we read at once: 2K for HDF5's default K=32 */
#define MAX_GRID (UINT64_C(1) << 48) /* chunks an implicit or fixed array index may count */
#define UNALLOC HFEED__CHUNK_UNALLOCATED

/* One call's state. */
struct walk {
    int fd;
    const struct hfeed__index_query *q;
    struct hfeed__err *err;
    const char **why;
    struct hfeed__chunk_ref *table;
    uint64_t nchunks;
    uint64_t chunk_bytes;       /* an unfiltered chunk's size: chunk dims times element size */
    bool have_max;              /* maxdims came from the dataspace message */
    uint64_t maxdims[MAX_RANK]; /* UINT64_MAX: unlimited */
    bool have_last;             /* last_key holds the previous B-tree leaf key */
    uint64_t last_key[MAX_RANK];
    uint64_t tiles[MAX_RANK];   /* chunks along each axis over the dims (a sample axis: >= 1) */
    uint64_t tstride[MAX_RANK]; /* the table's stride of each axis (row-major over tiles) */
    uint64_t mtiles[MAX_RANK];  /* chunks along each axis over the max dims (grid()) */
    uint64_t mstride[MAX_RANK]; /* the index's stride of each axis (row-major over mtiles) */
};

/* What the object header scan keeps. */
struct ohdr {
    int version;    /* 1 or 2 */
    bool crt_order; /* version 2: message headers carry a creation order */
    uint8_t layout[LAYOUT_MAX];
    size_t layout_len; /* 0 until the layout message is found */
    uint64_t layout_at;
    uint64_t pending_addr[MAX_PENDING];
    uint64_t pending_len[MAX_PENDING];
    size_t npending;
};

#define BAD(w, what, at)                                                                           \
    HFEED__FAIL((w)->err, HFEED_E_READ, "chunk index: %s (file offset %" PRIu64 ")", (what),       \
                (uint64_t)(at))

static hfeed_status unsupported(struct walk *w, const char *reason)
{
    if (w->why != NULL) *w->why = reason;
    return HFEED_E_TYPE;
}

/* Little-endian unsigned of n <= 8 bytes. */
static uint64_t le(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = n; i-- > 0;)
        v = (v << 8) | p[i];
    return v;
}

/* The "undefined address" / "unlimited" value of an n-byte field: all bits set. */
static bool all_ones(uint64_t v, unsigned n)
{
    return n >= 8 ? v == UINT64_MAX : v == ((uint64_t)1 << (8 * n)) - 1;
}

static bool fits(const struct walk *w, uint64_t off, uint64_t len)
{
    return off <= w->q->file_size && len <= w->q->file_size - off;
}

/* Reads exactly len bytes at absolute offset off, which must lie inside the file. */
static hfeed_status rd(struct walk *w, uint64_t off, void *buf, size_t len, const char *what)
{
    if (!fits(w, off, len))
        return HFEED__FAIL(w->err, HFEED_E_READ,
                           "chunk index: %s (%zu bytes at file offset %" PRIu64
                           ") runs past the end of the file (%" PRIu64 " bytes)",
                           what, len, off, w->q->file_size);
    size_t done = 0;
    while (done < len) {
        const ssize_t n = pread(w->fd, (uint8_t *)buf + done, len - done, (off_t)(off + done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            char why[128] = "unexpected end of file";
            if (n < 0) (void)strerror_r(errno, why, sizeof why);
            return HFEED__FAIL(w->err, HFEED_E_READ,
                               "chunk index: reading %s at file offset %" PRIu64 ": %s", what,
                               off + done, why);
        }
        done += (size_t)n;
    }
    return HFEED_OK;
}

/* Decodes the address at p to an absolute offset, or UNALLOC when undefined. */
static hfeed_status addr_at(struct walk *w, const uint8_t *p, uint64_t at, uint64_t *abs)
{
    const unsigned n = w->q->sizeof_addr;
    const uint64_t rel = le(p, n);
    *abs = UNALLOC;
    if (all_ones(rel, n)) return HFEED_OK;
    if (!fits(w, w->q->base_addr, rel)) return BAD(w, "address past the end of the file", at);
    *abs = w->q->base_addr + rel;
    return HFEED_OK;
}

/* --- Jenkins lookup3 (hashlittle, initval 0), HDF5's metadata checksum ------------------- */

static uint32_t rot(uint32_t x, unsigned k)
{
    return (x << k) | (x >> (32 - k));
}

static uint32_t lookup3(const uint8_t *k, size_t len)
{
    uint32_t a = 0xdeadbeefu + (uint32_t)len;
    uint32_t b = a;
    uint32_t c = a;
    uint8_t tail[12] = {0};
    if (len == 0) return c;
    while (len > 12) {
        a += (uint32_t)le(k, 4), b += (uint32_t)le(k + 4, 4), c += (uint32_t)le(k + 8, 4);
        a -= c, a ^= rot(c, 4), c += b;
        b -= a, b ^= rot(a, 6), a += c;
        c -= b, c ^= rot(b, 8), b += a;
        a -= c, a ^= rot(c, 16), c += b;
        b -= a, b ^= rot(a, 19), a += c;
        c -= b, c ^= rot(b, 4), b += a;
        len -= 12;
        k += 12;
    }
    /* The last 1..12 bytes, zero-padded: the same sums as the reference's fall-through. */
    memcpy(tail, k, len);
    a += (uint32_t)le(tail, 4), b += (uint32_t)le(tail + 4, 4), c += (uint32_t)le(tail + 8, 4);
    c ^= b, c -= rot(b, 14);
    a ^= c, a -= rot(c, 11);
    b ^= a, b -= rot(a, 25);
    c ^= b, c -= rot(b, 16);
    a ^= c, a -= rot(c, 4);
    b ^= a, b -= rot(a, 14);
    c ^= b, c -= rot(b, 24);
    return c;
}

/* buf[0..len) ends with the little-endian checksum of what precedes it. */
static bool checksum_ok(const uint8_t *buf, size_t len)
{
    return len >= 4 && lookup3(buf, len - 4) == (uint32_t)le(buf + len - 4, 4);
}

/* --- object header ------------------------------------------------------------------------ */

/* Dataspace message: checks rank and dims against the caller's, keeps the max dims. */
static hfeed_status space_msg(struct walk *w, const uint8_t *p, size_t size, uint64_t at)
{
    const unsigned ss = w->q->sizeof_size;
    const unsigned rank = (unsigned)w->q->rank;
    if (size < 4) return BAD(w, "dataspace message too short", at);
    const size_t hdr = p[0] == 1 ? 8 : p[0] == 2 ? 4 : 0;
    if (hdr == 0) return BAD(w, "unknown dataspace message version", at);
    if (p[1] != rank) return BAD(w, "dataspace rank differs from the caller's", at);
    const bool has_max = (p[2] & 1) != 0;
    if (size < hdr + (size_t)rank * ss * (has_max ? 2 : 1))
        return BAD(w, "dataspace message too short", at);
    for (unsigned d = 0; d < rank; d++) {
        const uint64_t dim = le(p + hdr + d * ss, ss);
        uint64_t max = has_max ? le(p + hdr + (rank + d) * ss, ss) : dim;
        if (dim != w->q->dims[d]) return BAD(w, "dataspace dims differ from the caller's", at);
        if (has_max && all_ones(max, ss)) max = UINT64_MAX;
        w->maxdims[d] = max;
    }
    w->have_max = true;
    return HFEED_OK;
}

/* One message of an object header block. */
static hfeed_status on_msg(struct walk *w, struct ohdr *h, unsigned type, unsigned flags,
                           const uint8_t *p, size_t size, uint64_t at)
{
    const unsigned sa = w->q->sizeof_addr;
    uint64_t addr = UNALLOC;
    if (type == 0x0001 && (flags & 0x02) == 0 && !w->have_max) return space_msg(w, p, size, at);
    if (type == 0x0008 && h->layout_len == 0) {
        if (size == 0) return BAD(w, "empty data layout message", at);
        memcpy(h->layout, p, size < LAYOUT_MAX ? size : LAYOUT_MAX);
        h->layout_len = size < LAYOUT_MAX ? size : LAYOUT_MAX;
        h->layout_at = at;
    }
    if (type != 0x0010) return HFEED_OK;
    if (size < (size_t)sa + w->q->sizeof_size) return BAD(w, "short continuation message", at);
    HFEED__CHECK(addr_at(w, p, at, &addr));
    const uint64_t len = le(p + sa, w->q->sizeof_size);
    if (addr == UNALLOC || len > MAX_OH_BLOCK) return BAD(w, "bad continuation message", at);
    if (h->npending == MAX_PENDING) return BAD(w, "too many header continuations", at);
    h->pending_addr[h->npending] = addr;
    h->pending_len[h->npending] = len;
    h->npending++;
    return HFEED_OK;
}

/* Walks the messages in buf[0..len), a block's message area that starts at file offset at. */
static hfeed_status scan(struct walk *w, struct ohdr *h, const uint8_t *buf, size_t len,
                         uint64_t at)
{
    const size_t mh = h->version == 1 ? 8 : h->crt_order ? 6 : 4;
    size_t off = 0;
    while (len - off >= mh && !(h->layout_len > 0 && w->have_max)) {
        const uint8_t *m = buf + off;
        const unsigned type = (unsigned)(h->version == 1 ? le(m, 2) : m[0]);
        const size_t size = (size_t)le(m + (h->version == 1 ? 2 : 1), 2);
        const unsigned flags = h->version == 1 ? m[4] : m[3];
        if (size > len - off - mh)
            return BAD(w, "object header message runs past its block", at + off);
        HFEED__CHECK(on_msg(w, h, type, flags, m + mh, size, at + off + mh));
        off += mh + size;
    }
    return HFEED_OK;
}

/* Reads one header block [at, at + len) whole; messages start at data_off, and a version 2
 * block ends with a checksum. */
static hfeed_status block(struct walk *w, struct ohdr *h, uint64_t at, uint64_t len,
                          size_t data_off)
{
    const size_t tail = h->version == 2 ? 4 : 0;
    if (len > MAX_OH_BLOCK || len < data_off + tail) return BAD(w, "bad object header size", at);
    if (!fits(w, at, len)) return BAD(w, "object header runs past the end of the file", at);
    uint8_t *buf = hfeed__alloc((size_t)len);
    if (buf == NULL) return HFEED__FAIL(w->err, HFEED_E_NOMEM, "chunk index: out of memory");
    hfeed_status st = rd(w, at, buf, (size_t)len, "object header");
    if (st == HFEED_OK && h->version == 2 && data_off == 4 && memcmp(buf, "OCHK", 4) != 0)
        st = BAD(w, "continuation block without its OCHK signature", at);
    if (st == HFEED_OK && h->version == 2 && !checksum_ok(buf, (size_t)len))
        st = BAD(w, "object header checksum mismatch", at);
    if (st == HFEED_OK)
        st = scan(w, h, buf + data_off, (size_t)len - data_off - tail, at + data_off);
    hfeed__free(buf);
    return st;
}

/* Decodes the header prefix at at: its version, chunk 0's extent and where its messages start. */
static hfeed_status prefix(struct walk *w, struct ohdr *h, uint64_t at, uint64_t *len,
                           size_t *data_off)
{
    uint8_t pre[40] = {0};
    if (!fits(w, at, 16)) return BAD(w, "object header address past the end of the file", at);
    const uint64_t avail = w->q->file_size - at;
    HFEED__CHECK(rd(w, at, pre, avail < sizeof pre ? (size_t)avail : sizeof pre, "header"));
    if (memcmp(pre, "OHDR", 4) == 0) {
        const unsigned flags = pre[5];
        const size_t off = 6u + ((flags & 0x20) ? 16u : 0u) + ((flags & 0x10) ? 4u : 0u);
        const unsigned n = 1u << (flags & 3);
        if (pre[4] != 2) return BAD(w, "unknown object header version", at);
        h->version = 2;
        h->crt_order = (flags & 0x04) != 0;
        *len = off + n + le(pre + off, n) + 4;
        *data_off = off + n;
    } else if (pre[0] == 1 && pre[1] == 0) {
        h->version = 1;
        *len = 16 + le(pre + 8, 4);
        *data_off = 16;
    } else {
        return BAD(w, "no object header at the dataset's address", at);
    }
    return HFEED_OK;
}

/* Finds the layout (and dataspace) messages in the header and its continuation blocks. */
static hfeed_status read_header(struct walk *w, struct ohdr *h)
{
    uint64_t len = 0;
    size_t data_off = 0;
    if (!fits(w, w->q->base_addr, w->q->header_addr))
        return BAD(w, "object header address past the end of the file", w->q->header_addr);
    const uint64_t at = w->q->base_addr + w->q->header_addr;
    HFEED__CHECK(prefix(w, h, at, &len, &data_off));
    HFEED__CHECK(block(w, h, at, len, data_off));
    /* A valid header's blocks do not overlap, so together they fit in the file: bounding the
     * bytes read (not only the number of blocks) stops a continuation that points back at its
     * own block from making us read the same megabytes thousands of times. */
    uint64_t total = len;
    for (unsigned n = 0; h->npending > 0 && !(h->layout_len > 0 && w->have_max); n++) {
        if (n == MAX_OH_BLOCKS) return BAD(w, "object header continuations loop", at);
        h->npending--;
        const uint64_t cat = h->pending_addr[h->npending];
        const uint64_t clen = h->pending_len[h->npending];
        if (clen > w->q->file_size - total)
            return BAD(w, "object header continuations read more than the file holds", cat);
        total += clen;
        HFEED__CHECK(block(w, h, cat, clen, h->version == 2 ? 4 : 0));
    }
    if (h->layout_len == 0) return BAD(w, "no data layout message in the object header", at);
    return HFEED_OK;
}

/* --- the table ----------------------------------------------------------------------------- */

/* Records chunk i (ignored when i is past the table: chunks beyond a shrunk extent). */
static hfeed_status put(struct walk *w, uint64_t i, uint64_t addr, uint64_t size, uint32_t mask)
{
    if (i >= w->nchunks) return HFEED_OK;
    if (size == 0 || !fits(w, addr, size)) return BAD(w, "chunk past the end of the file", addr);
    w->table[i].addr = addr;
    w->table[i].size = size;
    w->table[i].filter_mask = mask;
    return HFEED_OK;
}

/* The chunk grid over the max dims, which numbers the elements of a fixed array or implicit
 * index (row-major): w->mtiles, w->mstride, and the element count in *total. */
static hfeed_status grid(struct walk *w, uint64_t at, uint64_t *total)
{
    if (!w->have_max) return unsupported(w, "dataspace message not stored in the header");
    uint64_t stride = 1;
    for (int d = w->q->rank - 1; d >= 0; d--) {
        const uint64_t max = w->maxdims[d];
        const uint64_t n = max / w->q->chunk[d] + (max % w->q->chunk[d] != 0);
        if (max == UINT64_MAX || max < w->q->dims[d] || (n != 0 && stride > MAX_GRID / n))
            return BAD(w, "max dims out of range for this chunk index", at);
        if (d > 0 && n == 0) return unsupported(w, "a sample axis has length zero");
        w->mtiles[d] = n;
        w->mstride[d] = stride;
        stride *= n;
    }
    *total = stride;
    return HFEED_OK;
}

/* The table entry of index element e (numbered over the max dims' grid), or UINT64_MAX when
 * that chunk lies beyond the dims (room the dataset may grow into). */
static uint64_t elem_entry(const struct walk *w, uint64_t e)
{
    uint64_t i = 0;
    for (int d = 0; d < w->q->rank; d++) {
        const uint64_t t = d == 0 ? e / w->mstride[0] : e / w->mstride[d] % w->mtiles[d];
        if (t >= w->tiles[d]) return UINT64_MAX;
        i += t * w->tstride[d];
    }
    return i;
}

/* --- version 1 B-tree ---------------------------------------------------------------------- */

/* One leaf entry: key (size, filter mask, offsets) and the chunk address. */
static hfeed_status leaf(struct walk *w, const uint8_t *key, const uint8_t *child, uint64_t at)
{
    const int rank = w->q->rank;
    uint64_t off[MAX_RANK] = {0};
    uint64_t addr = UNALLOC;
    int cmp = w->have_last ? 0 : 1;
    bool bad = false;
    for (int d = 0; d < rank; d++) {
        off[d] = le(key + 8 + 8 * d, 8);
        bad = bad || off[d] % w->q->chunk[d] != 0;
        if (cmp == 0 && off[d] != w->last_key[d]) cmp = off[d] > w->last_key[d] ? 1 : -1;
    }
    if (cmp <= 0) return BAD(w, "B-tree keys out of order", at);
    memcpy(w->last_key, off, sizeof off);
    w->have_last = true;
    HFEED__CHECK(addr_at(w, child, at, &addr));
    const uint64_t size = le(key, 4);
    if (addr == UNALLOC || bad) return BAD(w, "bad B-tree entry", at);
    if (!w->q->filtered && size != w->chunk_bytes) return BAD(w, "bad B-tree chunk size", at);
    uint64_t i = 0;
    for (int d = 0; d < rank; d++) {
        if (off[d] / w->q->chunk[d] >= w->tiles[d]) return HFEED_OK; /* beyond the dims */
        i += off[d] / w->q->chunk[d] * w->tstride[d];
    }
    return put(w, i, addr, size, (uint32_t)le(key + 4, 4));
}

/* Reads a node at `at` into a new buffer of *len bytes (a guess, cut short near the end of the
 * file) or at least need bytes. */
static hfeed_status node_read(struct walk *w, uint64_t at, size_t need, uint8_t **buf, size_t *len)
{
    const uint64_t avail = fits(w, at, 0) ? w->q->file_size - at : 0;
    if (*len > avail && avail >= need) *len = (size_t)avail;
    *buf = hfeed__alloc(*len);
    if (*buf == NULL) return HFEED__FAIL(w->err, HFEED_E_NOMEM, "chunk index: out of memory");
    return rd(w, at, *buf, *len, "B-tree node");
}

/* The node at `at` and its subtree; level is the node's expected level, -1 for the root. */
static hfeed_status btree(struct walk *w, uint64_t at, int level)
{
    const unsigned sa = w->q->sizeof_addr;
    const size_t nh = 8 + 2 * (size_t)sa;
    const size_t ks = 8 + 8 * ((size_t)w->q->rank + 1);
    size_t len = nh + BTREE_GUESS * (ks + sa) + ks;
    uint8_t *buf = NULL;
    hfeed_status st = node_read(w, at, nh, &buf, &len);
    if (st != HFEED_OK) goto done;
    const size_t used = (size_t)le(buf + 6, 2);
    const size_t need = nh + used * (ks + sa) + ks;
    if (memcmp(buf, "TREE", 4) != 0 || buf[4] != 1 || (level >= 0 && buf[5] != level) ||
        (used == 0 && level >= 0)) {
        st = BAD(w, "bad B-tree node", at);
        goto done;
    }
    if (need > len) { /* a tree built with a larger K: read the whole node again */
        hfeed__free(buf);
        len = need;
        st = node_read(w, at, need, &buf, &len);
        if (st != HFEED_OK) goto done;
    }
    for (size_t k = 0; k < used && st == HFEED_OK; k++) {
        const uint8_t *key = buf + nh + k * (ks + sa);
        uint64_t child = UNALLOC;
        if (buf[5] == 0) {
            st = leaf(w, key, key + ks, at);
            continue;
        }
        st = addr_at(w, key + ks, at, &child);
        if (st == HFEED_OK && child == UNALLOC) st = BAD(w, "undefined B-tree child", at);
        if (st == HFEED_OK) st = btree(w, child, buf[5] - 1);
    }
done:
    hfeed__free(buf);
    return st;
}

/* --- fixed array --------------------------------------------------------------------------- */

struct farray {
    unsigned client; /* 0: plain addresses, 1: filtered (address, size, mask) */
    unsigned esize;  /* bytes per element */
};

/* count elements at p, the first being element number first. */
static hfeed_status fa_elems(struct walk *w, const struct farray *fa, const uint8_t *p,
                             uint64_t first, uint64_t count, uint64_t at)
{
    const unsigned sa = w->q->sizeof_addr;
    for (uint64_t k = 0; k < count; k++, p += fa->esize) {
        const uint64_t i = elem_entry(w, first + k);
        uint64_t addr = UNALLOC;
        if (i == UINT64_MAX) continue;
        HFEED__CHECK(addr_at(w, p, at, &addr));
        if (addr == UNALLOC) continue;
        if (fa->client == 0) {
            HFEED__CHECK(put(w, i, addr, w->chunk_bytes, 0));
            continue;
        }
        const uint64_t size = le(p + sa, fa->esize - sa - 4);
        HFEED__CHECK(put(w, i, addr, size, (uint32_t)le(p + fa->esize - 4, 4)));
    }
    return HFEED_OK;
}

/* Reads [at, at + len) whole (skip prefix bytes, which must equal head, then count elements and
 * a checksum) and hands its elements to fa_elems. */
static hfeed_status fa_part(struct walk *w, const struct farray *fa, uint64_t at,
                            const uint8_t *head, size_t skip, uint64_t first, uint64_t count)
{
    if (count > w->q->file_size / fa->esize) return BAD(w, "fixed array too large", at);
    const size_t len = skip + (size_t)count * fa->esize + 4;
    if (!fits(w, at, len)) return BAD(w, "fixed array past the end of the file", at);
    uint8_t *buf = hfeed__alloc(len);
    if (buf == NULL) return HFEED__FAIL(w->err, HFEED_E_NOMEM, "chunk index: out of memory");
    hfeed_status st = rd(w, at, buf, len, "fixed array data");
    if (st == HFEED_OK && (memcmp(buf, head, skip) != 0 || !checksum_ok(buf, len)))
        st = BAD(w, "bad fixed array data block or page", at);
    if (st == HFEED_OK) st = fa_elems(w, fa, buf + skip, first, count, at);
    hfeed__free(buf);
    return st;
}

/* A paged data block: a prefix with the page-initialised bitmap (most significant bit first),
 * then every page (elements and a checksum) back to back, written or not. */
static hfeed_status fa_paged(struct walk *w, const struct farray *fa, uint64_t dblk,
                             uint64_t nelmts, unsigned bits, const uint8_t *head)
{
    const size_t sa = w->q->sizeof_addr;
    const uint64_t per = UINT64_C(1) << bits;
    const uint64_t npages = nelmts / per + (nelmts % per != 0);
    const uint64_t plen = 6 + sa + (npages + 7) / 8 + 4;
    const uint64_t page_size = per * fa->esize + 4;
    if (!fits(w, dblk, plen)) return BAD(w, "fixed array past the end of the file", dblk);
    uint8_t *pre = hfeed__alloc((size_t)plen);
    if (pre == NULL) return HFEED__FAIL(w->err, HFEED_E_NOMEM, "chunk index: out of memory");
    hfeed_status st = rd(w, dblk, pre, (size_t)plen, "fixed array data block");
    if (st == HFEED_OK && (memcmp(pre, head, 6 + sa) != 0 || !checksum_ok(pre, (size_t)plen)))
        st = BAD(w, "bad fixed array data block", dblk);
    for (uint64_t pg = 0; pg < npages && st == HFEED_OK; pg++) {
        if ((pre[6 + sa + pg / 8] & (0x80u >> (pg % 8))) == 0) continue; /* never written */
        const uint64_t n = pg + 1 < npages ? per : nelmts - pg * per;
        st = fa_part(w, fa, dblk + plen + pg * page_size, head, 0, pg * per, n);
    }
    hfeed__free(pre);
    return st;
}

/* Fixed array header ("FAHD") at absolute offset at, then its data block ("FADB"). */
static hfeed_status farray(struct walk *w, uint64_t at, unsigned bits_in_layout)
{
    const unsigned sa = w->q->sizeof_addr;
    const unsigned ss = w->q->sizeof_size;
    const size_t hlen = 8 + ss + sa + 4;
    uint8_t h[8 + 8 + 8 + 4];
    uint8_t head[6 + 8] = {'F', 'A', 'D', 'B', 0, 0}; /* what the data block must start with */
    uint64_t dblk = UNALLOC;
    uint64_t total = 0;
    struct farray fa = {0, 0};
    HFEED__CHECK(rd(w, at, h, hlen, "fixed array header"));
    if (memcmp(h, "FAHD", 4) != 0 || h[4] != 0 || !checksum_ok(h, hlen))
        return BAD(w, "bad fixed array header", at);
    fa.client = h[5];
    fa.esize = h[6];
    const unsigned bits = h[7];
    const uint64_t nelmts = le(h + 8, ss);
    HFEED__CHECK(addr_at(w, h + 8 + ss, at, &dblk));
    HFEED__CHECK(grid(w, at, &total));
    if ((fa.client == 0 && fa.esize != sa) ||
        (fa.client == 1 && (fa.esize <= sa + 4 || fa.esize > sa + 12)) || fa.client > 1 ||
        bits == 0 || bits > 32 || bits != bits_in_layout || nelmts != total)
        return BAD(w, "fixed array header does not match the dataset", at);
    if (dblk == UNALLOC) return HFEED_OK;
    head[5] = h[5];
    for (unsigned i = 0; i < sa; i++) /* the block names its header's (relative) address */
        head[6 + i] = (uint8_t)((at - w->q->base_addr) >> (8 * i));
    if (nelmts > (UINT64_C(1) << bits)) return fa_paged(w, &fa, dblk, nelmts, bits, head);
    return fa_part(w, &fa, dblk, head, 6 + sa, 0, nelmts);
}

/* --- layout message ------------------------------------------------------------------------ */

/* Checks the message's chunk dims (ndims of them, the last the element size) against the
 * caller's and sets chunk_bytes. */
static hfeed_status chunk_dims(struct walk *w, const uint64_t *dims, unsigned ndims, uint64_t at)
{
    const unsigned rank = (unsigned)w->q->rank;
    uint64_t bytes = dims[rank];
    if (ndims != rank + 1) return BAD(w, "layout rank differs from the caller's", at);
    for (unsigned d = 0; d < rank; d++) {
        if (dims[d] != w->q->chunk[d]) return BAD(w, "chunk dims differ from the caller's", at);
        if (bytes > (UINT64_C(1) << 40) / dims[d]) return BAD(w, "chunk too large", at);
        bytes *= dims[d];
    }
    if (bytes == 0) return BAD(w, "zero element size in the layout message", at);
    w->chunk_bytes = bytes;
    return HFEED_OK;
}

/* Layout version 3, chunked: dimensionality, B-tree address, 4-byte dims. */
static hfeed_status layout_v3(struct walk *w, const uint8_t *p, size_t len, uint64_t at)
{
    const unsigned sa = w->q->sizeof_addr;
    uint64_t dims[MAX_RANK + 1];
    uint64_t root = UNALLOC;
    const unsigned ndims = len > 2 ? p[2] : 0;
    if (ndims == 0 || ndims > MAX_RANK + 1 || len < 3 + sa + 4 * (size_t)ndims)
        return BAD(w, "bad chunked layout message", at);
    for (unsigned d = 0; d < ndims; d++)
        dims[d] = le(p + 3 + sa + 4 * d, 4);
    HFEED__CHECK(chunk_dims(w, dims, ndims, at));
    HFEED__CHECK(addr_at(w, p + 3, at, &root));
    return root == UNALLOC ? HFEED_OK : btree(w, root, -1);
}

/* Layout version 4, chunked: flags, dimensionality, dims of enc bytes, index type and its
 * parameters, then the index address. */
static hfeed_status layout_v4(struct walk *w, const uint8_t *p, size_t len, uint64_t at)
{
    static const size_t info_len[6] = {0, 0, 0, 1, 5, 6};
    const unsigned sa = w->q->sizeof_addr;
    uint64_t dims[MAX_RANK + 1];
    uint64_t addr = UNALLOC;
    uint64_t total = 0;
    const unsigned flags = len > 4 ? p[2] : 0;
    const unsigned ndims = len > 4 ? p[3] : 0;
    const unsigned enc = len > 4 ? p[4] : 0;
    size_t off = 5 + (size_t)ndims * enc;
    if (ndims == 0 || ndims > MAX_RANK + 1 || enc == 0 || enc > 8 || len < off + 1)
        return BAD(w, "bad chunked layout message", at);
    for (unsigned d = 0; d < ndims; d++)
        dims[d] = le(p + 5 + d * enc, enc);
    HFEED__CHECK(chunk_dims(w, dims, ndims, at));
    const unsigned type = p[off++];
    if (type == 4) return unsupported(w, "extensible array chunk index not read directly");
    if (type == 5) return unsupported(w, "version 2 B-tree chunk index not read directly");
    if (type < 1 || type > 3) return BAD(w, "unknown chunk index type", at);
    if ((flags & 0x01) && w->q->filtered)
        return unsupported(w, "partial edge chunks stored unfiltered");
    const size_t single = (type == 1 && (flags & 0x02)) ? w->q->sizeof_size + 4u : 0;
    if (len < off + info_len[type] + single + sa) return BAD(w, "short layout message", at);
    HFEED__CHECK(addr_at(w, p + off + info_len[type] + single, at, &addr));
    if (addr == UNALLOC) return HFEED_OK;
    if (type == 3) return farray(w, addr, p[off]);
    if (type == 1 && single == 0) return put(w, 0, addr, w->chunk_bytes, 0);
    if (type == 1)
        return put(w, 0, addr, le(p + off, w->q->sizeof_size),
                   (uint32_t)le(p + off + w->q->sizeof_size, 4));
    HFEED__CHECK(grid(w, at, &total)); /* implicit: every chunk of the max dims, back to back */
    if (total > w->q->file_size / w->chunk_bytes) return BAD(w, "implicit index too large", at);
    for (uint64_t i = 0; i < w->nchunks; i++) {
        uint64_t e = 0; /* entry i's element: its coordinates, renumbered over the max dims */
        for (int d = 0; d < w->q->rank; d++)
            e += i / w->tstride[d] % w->tiles[d] * w->mstride[d];
        HFEED__CHECK(put(w, i, addr + e * w->chunk_bytes, w->chunk_bytes, 0));
    }
    return HFEED_OK;
}

static hfeed_status layout(struct walk *w, const uint8_t *p, size_t len, uint64_t at)
{
    const unsigned cls = len > 1 ? p[1] : 255;
    if (p[0] != 3 && p[0] != 4) return unsupported(w, "data layout message not version 3 or 4");
    if (cls == 0) return unsupported(w, "compact layout");
    if (cls == 1) return unsupported(w, "contiguous layout");
    if (cls == 3) return unsupported(w, "virtual layout");
    if (cls != 2) return BAD(w, "unknown layout class", at);
    return p[0] == 3 ? layout_v3(w, p, len, at) : layout_v4(w, p, len, at);
}

/* --- entry point --------------------------------------------------------------------------- */

/* Chunks along axis d over the dims; a sample axis counts at least one. */
static uint64_t tiles_along(const struct hfeed__index_query *q, int d)
{
    const uint64_t n = q->dims[d] / q->chunk[d] + (q->dims[d] % q->chunk[d] != 0);
    return d > 0 && n == 0 ? 1 : n;
}

uint64_t hfeed__chunkindex_count(const struct hfeed__index_query *q)
{
    uint64_t n = 1;
    for (int d = 0; d < q->rank && d < MAX_RANK; d++) {
        if (q->chunk[d] == 0) return UINT64_MAX;
        const uint64_t t = tiles_along(q, d);
        if (t != 0 && n > UINT64_MAX / t) return UINT64_MAX;
        n *= t;
    }
    return n;
}

static hfeed_status check_args(int fd, const struct hfeed__index_query *q,
                               const struct hfeed__chunk_ref *table, uint64_t nchunks,
                               struct hfeed__err *err)
{
    if (fd < 0 || q == NULL || (table == NULL && nchunks > 0) || q->rank < 1 ||
        q->rank > MAX_RANK || q->sizeof_addr < 2 || q->sizeof_addr > 8 || q->sizeof_size < 2 ||
        q->sizeof_size > 8)
        return HFEED__FAIL(err, HFEED_E_INVALID_ARG, "chunk index: bad arguments");
    for (int d = 0; d < q->rank; d++)
        if (q->chunk[d] == 0)
            return HFEED__FAIL(err, HFEED_E_INVALID_ARG, "chunk index: zero chunk dim %d", d);
    const uint64_t want = hfeed__chunkindex_count(q);
    if (nchunks != want)
        return HFEED__FAIL(err, HFEED_E_INVALID_ARG,
                           "chunk index: table of %" PRIu64 " chunks, dataset has %" PRIu64,
                           nchunks, want);
    return HFEED_OK;
}

hfeed_status hfeed__chunkindex_read(int fd, const struct hfeed__index_query *q,
                                    struct hfeed__chunk_ref *table, uint64_t nchunks,
                                    const char **why, struct hfeed__err *err)
{
    if (why != NULL) *why = NULL;
    HFEED__CHECK(check_args(fd, q, table, nchunks, err));
    for (uint64_t i = 0; i < nchunks; i++)
        table[i] = (struct hfeed__chunk_ref){.addr = UNALLOC, .size = 0, .filter_mask = 0};
    struct walk w = {.fd = fd, .q = q, .err = err, .why = why, .table = table, .nchunks = nchunks};
    uint64_t stride = 1;
    for (int d = q->rank - 1; d >= 0; d--) {
        w.tiles[d] = tiles_along(q, d);
        w.tstride[d] = stride;
        stride *= w.tiles[d];
    }
    struct ohdr h; /* about 2 KiB */
    memset(&h, 0, sizeof h);
    HFEED__CHECK(read_header(&w, &h));
    return layout(&w, h.layout, h.layout_len, h.layout_at);
}
