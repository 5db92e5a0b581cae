/* chunkio: pread-based reads of stored dataset bytes, no HDF5 (design in chunkio.h). */
#define _GNU_SOURCE 1 /* mincore(), RUSAGE_THREAD, which POSIX lacks */
#include "chunkio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"

bool hfeed__chunkio_filtered(const struct hfeed__direct *d)
{
    return d->chunked && (d->pipeline.nfilters > 0 || d->tiled);
}

/* Copies run bytes; the common element-sized runs without a call (a tile whose last axis has
 * extent 1, as image channels do, copies one element per run). */
static inline void copy_run(unsigned char *dst, const unsigned char *src, size_t run)
{
    switch (run) {
    case 1:
        *dst = *src;
        return;
    case 2:
        memcpy(dst, src, 2);
        return;
    case 4:
        memcpy(dst, src, 4);
        return;
    case 8:
        memcpy(dst, src, 8);
        return;
    default:
        memcpy(dst, src, run);
    }
}

void hfeed__chunkio_place_tile(const struct hfeed__direct *d, uint64_t j,
                               const unsigned char *tile, unsigned char *slab)
{
    const int n = d->sample_rank;
    if (n <= 0 || n > 7) return; /* scalar samples: a chunk row is one chunk, never tiled */
    uint64_t origin[8], extent[8], tstride[8], sstride[8];
    /* Tile j's coordinates on the sample axes (row-major, last axis fastest), its origin in the
     * sample and the part of it inside the dims; and byte strides in the tile and the row. */
    const size_t e = d->elem_size;
    uint64_t rest = j, ts = e, ss = e;
    for (int a = n - 1; a >= 0; a--) {
        const uint64_t c = d->tile_dims[a + 1], dim = d->sample_dims[a];
        const uint64_t across = dim / c + (dim % c != 0);
        origin[a] = across > 0 ? rest % across * c : 0;
        rest = across > 0 ? rest / across : rest;
        extent[a] = origin[a] < dim ? (dim - origin[a] < c ? dim - origin[a] : c) : 0;
        tstride[a] = ts;
        sstride[a] = ss;
        ts *= c;
        ss *= dim;
    }
    uint64_t at0 = 0; /* where the tile's part starts in a row */
    for (int a = 0; a < n; a++) {
        if (extent[a] == 0) return;
        at0 += origin[a] * sstride[a];
    }
    /* Runs along the last axis, a line of them along the axis before it, and the axes before
     * those counted in `at`. */
    const size_t run = (size_t)(extent[n - 1] * e);
    const int line = n >= 2 ? n - 2 : -1;
    const uint64_t lines = line >= 0 ? extent[line] : 1;
    const uint64_t lt = line >= 0 ? tstride[line] : 0, ls = line >= 0 ? sstride[line] : 0;
    for (uint64_t r = 0; r < d->tile_dims[0]; r++) {
        const unsigned char *src_row = tile + r * ts;
        unsigned char *dst_row = slab + r * d->row_bytes + at0;
        uint64_t at[8] = {0}; /* the position on axes 0 .. n - 3 */
        for (;;) {
            uint64_t src = 0, dst = 0;
            for (int a = 0; a < line; a++) {
                src += at[a] * tstride[a];
                dst += at[a] * sstride[a];
            }
            for (uint64_t i = 0; i < lines; i++)
                copy_run(dst_row + dst + i * ls, src_row + src + i * lt, run);
            int a = line - 1;
            while (a >= 0 && ++at[a] == extent[a])
                at[a--] = 0;
            if (a < 0) break;
        }
    }
}

void hfeed__chunkio_fill(const struct hfeed__direct *d, unsigned char *dst, uint64_t n)
{
    bool zero = true;
    for (size_t i = 0; i < d->elem_size; i++)
        zero = zero && d->fill[i] == 0;
    if (zero) {
        memset(dst, 0, (size_t)n * d->elem_size);
        return;
    }
    for (uint64_t i = 0; i < n; i++)
        memcpy(dst + i * d->elem_size, d->fill, d->elem_size);
}

/* pread of exactly len bytes, retrying short reads; a read past the end is an error. */
static hfeed_status pread_all(const struct hfeed__direct *d, unsigned char *dst, size_t len,
                              uint64_t off, struct hfeed__err *err)
{
    size_t done = 0;
    while (done < len) {
        const ssize_t got = pread(d->fd, dst + done, len - done, (off_t)(off + done));
        if (got > 0) {
            done += (size_t)got;
            continue;
        }
        if (got < 0 && errno == EINTR) continue;
        return HFEED__FAIL(err, HFEED_E_READ,
                           "file \"%s\" dataset \"%s\": %s reading %zu bytes at offset %llu%s",
                           d->path, d->dataset, got < 0 ? strerror(errno) : "end of file", len,
                           (unsigned long long)off, got == 0 ? " (truncated file?)" : "");
    }
    return HFEED_OK;
}

hfeed_status hfeed__chunkio_read_rows(const struct hfeed__direct *d, uint64_t row, uint64_t n,
                                      unsigned char *dst, struct hfeed__err *err)
{
    if (!d->chunked) {
        if (d->contiguous_addr == HFEED__CHUNK_UNALLOCATED) {
            hfeed__chunkio_fill(d, dst, n * (d->row_bytes / d->elem_size));
            return HFEED_OK;
        }
        return pread_all(d, dst, (size_t)n * d->row_bytes, d->contiguous_addr + row * d->row_bytes,
                         err);
    }
    while (n > 0) {
        const uint64_t c = row / d->chunk_rows, first = row - c * d->chunk_rows;
        const uint64_t take = d->chunk_rows - first < n ? d->chunk_rows - first : n;
        const size_t bytes = (size_t)take * d->row_bytes;
        if (d->chunks[c].addr == HFEED__CHUNK_UNALLOCATED)
            hfeed__chunkio_fill(d, dst, bytes / d->elem_size);
        else
            HFEED__CHECK(pread_all(d, dst, bytes, d->chunks[c].addr + first * d->row_bytes, err));
        dst += bytes;
        row += take;
        n -= take;
    }
    return HFEED_OK;
}

const unsigned char *hfeed__chunkio_map_rows(const struct hfeed__direct *d, uint64_t row,
                                             uint64_t n)
{
    if (d->map == NULL || hfeed__chunkio_filtered(d)) return NULL;
    if (!d->chunked)
        return d->contiguous_addr == HFEED__CHUNK_UNALLOCATED
                   ? NULL
                   : d->map + d->contiguous_addr + row * d->row_bytes;
    const uint64_t c = row / d->chunk_rows, first = row - c * d->chunk_rows;
    if (first + n > d->chunk_rows || d->chunks[c].addr == HFEED__CHUNK_UNALLOCATED) return NULL;
    return d->map + d->chunks[c].addr + first * d->row_bytes;
}

bool hfeed__chunkio_shrunk(const struct hfeed__direct *d)
{
    struct stat st;
    return fstat(d->fd, &st) != 0 || (uint64_t)st.st_size < d->map_bytes;
}

/* hfeed__chunkio_huge_cached: regions probed, and their size (a PMD's, on x86-64 and arm64
 * with 4 KiB pages). */
#define HUGE_PROBES 16
#define HUGE_REGION ((uint64_t)2 << 20)

/* Minor and major page faults of the calling thread so far. */
static long thread_faults(void)
{
    struct rusage u;
    return getrusage(RUSAGE_THREAD, &u) == 0 ? u.ru_minflt + u.ru_majflt : 0;
}

bool hfeed__chunkio_huge_cached(const struct hfeed__direct *d)
{
    if (d->map == NULL || ((uintptr_t)d->map & (HUGE_REGION - 1)) != 0 ||
        d->map_bytes < 2 * HUGE_REGION)
        return false;
    const uint64_t regions = d->map_bytes / HUGE_REGION;
    unsigned probed = 0;
    long faults = 0;
    for (unsigned i = 0; i < HUGE_PROBES; i++) {
        const unsigned char *a = d->map + regions * (2 * i + 1) / (2 * HUGE_PROBES) * HUGE_REGION;
        const unsigned char *b = a + HUGE_REGION / 2; /* far beyond fault-around's 64 KiB */
        unsigned char in_a = 0, in_b = 0;
        /* Only cached pages: touching others would read the disk, for a probe. */
        if (mincore((void *)a, 1, &in_a) != 0 || mincore((void *)b, 1, &in_b) != 0 ||
            (in_a & in_b & 1) == 0)
            continue;
        (void)*(const volatile unsigned char *)a; /* maps a's page, or a's whole 2 MiB page */
        const long before = thread_faults();
        (void)*(const volatile unsigned char *)b;
        faults += thread_faults() - before;
        probed++;
    }
    return probed >= HUGE_PROBES / 4 && faults * 4 <= (long)probed;
}

/* Where the stored bytes of row `row` begin: its own offset (unfiltered), or its chunk's
 * (filtered: a chunk is stored and read whole); UINT64_MAX when unallocated. */
static uint64_t stored_offset(const struct hfeed__direct *d, uint64_t row)
{
    if (!d->chunked)
        return d->contiguous_addr == HFEED__CHUNK_UNALLOCATED ? UINT64_MAX
                                                              : d->contiguous_addr + row * d->row_bytes;
    const uint64_t c = row / d->chunk_rows;
    if (hfeed__chunkio_filtered(d)) { /* the slab's first tile stands for it */
        const uint64_t addr = d->chunks[c * d->tiles_per_slab].addr;
        return addr == HFEED__CHUNK_UNALLOCATED ? UINT64_MAX : addr;
    }
    if (d->chunks[c].addr == HFEED__CHUNK_UNALLOCATED) return UINT64_MAX;
    return d->chunks[c].addr + (row - c * d->chunk_rows) * d->row_bytes;
}

bool hfeed__chunkio_cached(const struct hfeed__direct *d, uint64_t row)
{
    if (d->map == NULL) return true;
    const uint64_t off = stored_offset(d, row);
    const long page = sysconf(_SC_PAGESIZE);
    if (off == UINT64_MAX || page <= 0) return true;
    const uintptr_t at = (uintptr_t)(d->map + off) & ~((uintptr_t)page - 1);
    unsigned char resident = 1;
    if (mincore((void *)at, 1, &resident) != 0) return true;
    return (resident & 1) != 0;
}

void hfeed__chunkio_will_need(const struct hfeed__direct *d, uint64_t row, uint64_t n)
{
    while (n > 0) {
        const uint64_t in_chunk = d->chunked ? d->chunk_rows - row % d->chunk_rows : n;
        const uint64_t take = in_chunk < n ? in_chunk : n;
        /* Advice only: a refusal changes nothing but the speed. */
        if (hfeed__chunkio_filtered(d)) {
            const uint64_t first = row / d->chunk_rows * d->tiles_per_slab;
            for (uint64_t t = first; t < first + d->tiles_per_slab; t++)
                if (d->chunks[t].addr != HFEED__CHUNK_UNALLOCATED)
                    (void)posix_fadvise(d->fd, (off_t)d->chunks[t].addr, (off_t)d->chunks[t].size,
                                        POSIX_FADV_WILLNEED);
        } else {
            const uint64_t off = stored_offset(d, row);
            if (off != UINT64_MAX)
                (void)posix_fadvise(d->fd, (off_t)off, (off_t)(take * d->row_bytes),
                                    POSIX_FADV_WILLNEED);
        }
        row += take;
        n -= take;
    }
}

/* Linux reads at most the device's readahead size (read_ahead_kb, often 128 KiB) per
 * WILLNEED call, so a whole file is asked for in windows of that much. */
#define WILLNEED_WINDOW ((off_t)128 << 10)

/* Pages of a file probed to tell a mostly cached file from a mostly evicted one. */
#define RESIDENCY_PROBES 64

/* Whether at least half of RESIDENCY_PROBES pages spread evenly over the file's first len bytes
 * are in the page cache; false when the mapping cannot tell. */
static bool mostly_cached(const struct hfeed__direct *d, off_t len, long page)
{
    if (d->map == NULL || len <= 0) return false;
    unsigned resident = 0;
    for (unsigned i = 0; i < RESIDENCY_PROBES; i++) {
        const off_t at = len / RESIDENCY_PROBES * i / page * page;
        unsigned char r = 0;
        if (mincore((void *)(d->map + at), 1, &r) != 0) return false;
        resident += r & 1;
    }
    return resident * 2 >= RESIDENCY_PROBES;
}

void hfeed__chunkio_will_need_file(const struct hfeed__direct *d)
{
    struct stat st;
    const long page = sysconf(_SC_PAGESIZE);
    if (fstat(d->fd, &st) != 0 || page <= 0) return;
    /* A file that is mostly cached is left to the batches' own asking (ask_ahead in reader.c):
     * on a 1 GiB file missing a few pages (reclaimed by the kernel's proactive pageout), the
     * 8192 calls below took 10-25 ms of a worker's time in a one-epoch run of 90 ms. */
    if (mostly_cached(d, st.st_size, page)) return;
    for (off_t at = 0; at < st.st_size; at += WILLNEED_WINDOW)
        (void)posix_fadvise(d->fd, at, WILLNEED_WINDOW, POSIX_FADV_WILLNEED); /* advice only */
}

hfeed_status hfeed__chunkio_read_chunk(const struct hfeed__direct *d, uint64_t c,
                                       unsigned char *buf, size_t *len, struct hfeed__err *err)
{
    const struct hfeed__chunk_ref *ref = &d->chunks[c];
    *len = 0;
    if (ref->addr == HFEED__CHUNK_UNALLOCATED) return HFEED_OK;
    if (ref->size > d->max_stored_chunk)
        return HFEED__FAIL(err, HFEED_E_READ,
                           "file \"%s\" dataset \"%s\" chunk %llu: stored "
                           "size %llu is larger than the index said",
                           d->path, d->dataset, (unsigned long long)c,
                           (unsigned long long)ref->size);
    HFEED__CHECK(pread_all(d, buf, (size_t)ref->size, ref->addr, err));
    *len = (size_t)ref->size;
    return HFEED_OK;
}

/* The clock when counting, else 0 (no clock read). */
static uint64_t clock_if(const struct hfeed__slab_counts *counts)
{
    return counts != NULL ? hfeed__now_ns() : 0;
}

/* Reads index entry e of d and undoes its filters into dst (tile_bytes), or fills dst when the
 * chunk was never written. */
static hfeed_status decode_entry(const struct hfeed__direct *d, uint64_t e,
                                 const struct hfeed__slab_bufs *b, unsigned char *dst,
                                 struct hfeed__slab_counts *counts, struct hfeed__err *err)
{
    const uint64_t t0 = clock_if(counts);
    size_t len = 0;
    HFEED__CHECK(hfeed__chunkio_read_chunk(d, e, b->raw, &len, err));
    const uint64_t t1 = clock_if(counts);
    hfeed_status st = HFEED_OK;
    if (len == 0) {
        hfeed__chunkio_fill(d, dst, d->tile_bytes / d->elem_size);
    } else if (d->pipeline.nfilters == 0) { /* an unfiltered tile: stored as it is */
        memcpy(dst, b->raw, d->tile_bytes);
    } else {
        struct hfeed__err why = {0};
        st = hfeed__codec_decode(b->codec, &d->pipeline, d->chunks[e].filter_mask, b->raw, len,
                                 dst, b->tmp, d->tile_bytes, &why);
        if (st != HFEED_OK && !d->tiled)
            HFEED__FAIL(err, st, "file \"%s\" dataset \"%s\" chunk %llu (rows %llu..): %s",
                        d->path, d->dataset, (unsigned long long)e,
                        (unsigned long long)(e * d->chunk_rows), why.msg);
        else if (st != HFEED_OK)
            HFEED__FAIL(err, st,
                        "file \"%s\" dataset \"%s\" chunk %llu of rows %llu.. (tile %llu of "
                        "%llu): %s",
                        d->path, d->dataset, (unsigned long long)e,
                        (unsigned long long)(e / d->tiles_per_slab * d->chunk_rows),
                        (unsigned long long)(e % d->tiles_per_slab + 1),
                        (unsigned long long)d->tiles_per_slab, why.msg);
    }
    if (counts != NULL) {
        counts->chunks++;
        counts->read_ns += t1 - t0;
        counts->decode_ns += hfeed__now_ns() - t1;
    }
    return st;
}

hfeed_status hfeed__chunkio_decode_slab(const struct hfeed__direct *d, uint64_t slab,
                                        const struct hfeed__slab_bufs *b, unsigned char *dst,
                                        struct hfeed__slab_counts *counts, struct hfeed__err *err)
{
    if (!d->tiled) return decode_entry(d, slab, b, dst, counts, err);
    for (uint64_t t = 0; t < d->tiles_per_slab; t++) {
        HFEED__CHECK(decode_entry(d, slab * d->tiles_per_slab + t, b, b->tile, counts, err));
        const uint64_t t0 = clock_if(counts);
        hfeed__chunkio_place_tile(d, t, b->tile, dst);
        if (counts != NULL) counts->decode_ns += hfeed__now_ns() - t0;
    }
    return HFEED_OK;
}
