/* Unit tests of loader/chunkio's read-ahead: hfeed__chunkio_cached() says whether a row's page
 * is in the page cache, and hfeed__chunkio_will_need() brings the rows asked for (and only
 * those chunks) into it, for contiguous and chunked storage, and whole stored chunks when they
 * are compressed. The file is a plain file of known
 * bytes described by a hand-built struct hfeed__direct, evicted from the page cache with
 * posix_fadvise(DONTNEED) after fsync; where the file system keeps it cached anyway (tmpfs),
 * the cold half is skipped with a warning. The loader-level effect (the same values, cold) is
 * in tests/api/test_direct.c; the speed, in bench/ab.py cold. */
#define _DEFAULT_SOURCE 1 /* mincore() */
#include <criterion/criterion.h>
#include <criterion/logging.h>

#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "chunkio.h"
#include "fixtures.h"

TestSuite(chunkio, .init = fx_setup, .fini = fx_teardown);

#define ROW 4096u                  /* bytes per row: a page */
#define FILE_BYTES (16u << 20)     /* 16 MiB */
#define CHUNK_ROWS 64u             /* chunked: 256 KiB per chunk */
#define FAR ((8u << 20) / ROW)     /* a row 8 MiB into the file */

struct file {
    int fd;
    unsigned char *map;
};

static struct file make_file(void)
{
    const char *path = fx_path("rows.bin");
    const int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    cr_assert_geq(fd, 0);
    unsigned char *buf = malloc(FILE_BYTES);
    cr_assert_not_null(buf);
    for (size_t i = 0; i < FILE_BYTES; i++)
        buf[i] = (unsigned char)(i / ROW);
    cr_assert_eq(write(fd, buf, FILE_BYTES), (ssize_t)FILE_BYTES);
    free(buf);
    cr_assert_eq(fsync(fd), 0);
    void *m = mmap(NULL, FILE_BYTES, PROT_READ, MAP_SHARED, fd, 0);
    cr_assert_neq(m, MAP_FAILED);
    return (struct file){fd, m};
}

static void close_file(struct file f)
{
    munmap(f.map, FILE_BYTES);
    close(f.fd);
}

/* Drops the file from the page cache; false when the file system keeps it anyway. Checked
 * with mincore() here, not with the function under test. */
static bool evict(struct file f)
{
    posix_fadvise(f.fd, 0, 0, POSIX_FADV_DONTNEED);
    unsigned char in[FILE_BYTES / ROW];
    cr_assert_eq(mincore(f.map, FILE_BYTES, in), 0);
    for (size_t i = 0; i < sizeof in; i++)
        if (in[i] & 1) return false;
    return true;
}

/* evict(), saying so when the file system keeps the pages and the cold checks are skipped. */
static bool cold(struct file f)
{
    if (evict(f)) return true;
    cr_log_warn("the file system keeps evicted pages (tmpfs?): cold checks skipped");
    return false;
}

/* Whether row becomes cached within a second (WILLNEED starts the reads; it does not wait). */
static bool becomes_cached(const struct hfeed__direct *d, uint64_t row)
{
    for (int i = 0; i < 200; i++) {
        if (hfeed__chunkio_cached(d, row)) return true;
        nanosleep(&(struct timespec){0, 5000000}, NULL);
    }
    return false;
}

static struct hfeed__direct contiguous(struct file f)
{
    return (struct hfeed__direct){.path = "rows.bin",
                                  .dataset = "/d",
                                  .fd = f.fd,
                                  .map = f.map,
                                  .elem_size = 1,
                                  .row_bytes = ROW,
                                  .nrows = FILE_BYTES / ROW,
                                  .contiguous_addr = 0};
}

/* The first stored byte of row `row`, read with pread. */
static unsigned char read_byte(const struct hfeed__direct *d, uint64_t row)
{
    unsigned char buf[ROW];
    struct hfeed__err err = {0};
    cr_assert_eq(hfeed__chunkio_read_rows(d, row, 1, buf, &err), HFEED_OK, "%s", err.msg);
    return buf[0];
}

Test(chunkio, contiguous_rows_come_into_the_cache_when_asked_for)
{
    struct file f = make_file();
    struct hfeed__direct d = contiguous(f);
    cr_assert(hfeed__chunkio_cached(&d, 10), "a row just written is cached");
    if (!cold(f)) {
        close_file(f);
        return;
    }
    hfeed__chunkio_will_need(&d, 10, 3);
    for (uint64_t r = 10; r < 13; r++)
        cr_expect(becomes_cached(&d, r), "row %llu was asked for", (unsigned long long)r);
    cr_expect(!hfeed__chunkio_cached(&d, FAR), "a row 8 MiB away came in too");
    cr_expect(!hfeed__chunkio_cached(&d, 40), "row 40 came in too");
    /* pread still reads the right bytes. */
    cr_expect_eq(read_byte(&d, 11), 11);
    close_file(f);
}

Test(chunkio, chunked_rows_are_asked_for_in_each_chunk_they_span)
{
    struct file f = make_file();
    /* Two chunks stored out of order: chunk 0 at 8 MiB, chunk 1 at 0. */
    struct hfeed__chunk_ref chunks[2] = {{.addr = (uint64_t)FAR * ROW, .size = CHUNK_ROWS * ROW},
                                         {.addr = 0, .size = CHUNK_ROWS * ROW}};
    struct hfeed__direct d = contiguous(f);
    d.chunked = true;
    d.chunk_rows = CHUNK_ROWS;
    d.chunk_bytes = CHUNK_ROWS * ROW;
    d.chunks = chunks;
    d.nchunks = 2;
    d.tiles_per_slab = 1;
    d.nrows = 2 * CHUNK_ROWS;
    if (!cold(f)) {
        close_file(f);
        return;
    }
    /* Rows 62..65: the last two of chunk 0 (8 MiB in) and the first two of chunk 1 (at 0). */
    hfeed__chunkio_will_need(&d, CHUNK_ROWS - 2, 4);
    for (uint64_t r = CHUNK_ROWS - 2; r < CHUNK_ROWS + 2; r++)
        cr_expect(becomes_cached(&d, r), "row %llu was asked for", (unsigned long long)r);
    cr_expect_eq(read_byte(&d, CHUNK_ROWS - 1), (unsigned char)(FAR + CHUNK_ROWS - 1));
    cr_expect_eq(read_byte(&d, CHUNK_ROWS), 0);
    close_file(f);
}

Test(chunkio, a_compressed_chunk_is_asked_for_whole)
{
    struct file f = make_file();
    /* Compressed chunks of 64 rows stored in 20 pages each: chunk 0 at 8 MiB, chunk 1 at 0. */
    struct hfeed__chunk_ref chunks[2] = {{.addr = (uint64_t)FAR * ROW, .size = 20 * ROW},
                                         {.addr = 0, .size = 20 * ROW}};
    struct hfeed__direct d = contiguous(f);
    d.chunked = true;
    d.chunk_rows = CHUNK_ROWS;
    d.chunk_bytes = CHUNK_ROWS * ROW;
    d.chunks = chunks;
    d.nchunks = 2;
    d.tiles_per_slab = 1;
    d.nrows = 2 * CHUNK_ROWS;
    d.pipeline = (struct hfeed__pipeline){.nfilters = 1, .ids = {1}, .elem_size = 1};
    struct hfeed__direct plain = contiguous(f); /* to probe single pages */
    if (!cold(f)) {
        close_file(f);
        return;
    }
    cr_expect(!hfeed__chunkio_cached(&d, CHUNK_ROWS + 5), "any row probes its chunk's start");
    hfeed__chunkio_will_need(&d, CHUNK_ROWS + 5, 1); /* one row of chunk 1: all of chunk 1 */
    cr_expect(becomes_cached(&d, CHUNK_ROWS + 63));
    cr_expect(becomes_cached(&plain, 19), "the chunk's last stored page");
    cr_expect(!hfeed__chunkio_cached(&d, 0), "chunk 0 came in too");
    close_file(f);
}

Test(chunkio, a_whole_file_is_asked_for_window_by_window)
{
    /* One WILLNEED call reads at most the device's readahead size (8 MiB here, 128 KiB on many
     * machines): the last page of a 16 MiB file comes in only if every window was asked for. */
    struct file f = make_file();
    struct hfeed__direct d = contiguous(f);
    if (!cold(f)) {
        close_file(f);
        return;
    }
    hfeed__chunkio_will_need_file(&d);
    const uint64_t last = FILE_BYTES / ROW - 1;
    cr_expect(becomes_cached(&d, last), "the file's last page");
    cr_expect(becomes_cached(&d, FAR), "a page in the middle");
    close_file(f);
}

Test(chunkio, what_cannot_be_probed_counts_as_cached)
{
    struct file f = make_file();
    struct hfeed__direct d = contiguous(f);
    d.map = NULL; /* the pread path: no mapping to probe */
    posix_fadvise(f.fd, 0, 0, POSIX_FADV_DONTNEED);
    cr_expect(hfeed__chunkio_cached(&d, 0));
    d = contiguous(f);
    d.contiguous_addr = HFEED__CHUNK_UNALLOCATED; /* never written: the fill value */
    cr_expect(hfeed__chunkio_cached(&d, 0));
    hfeed__chunkio_will_need(&d, 0, 4); /* nothing to read: must not fault or fail */
    close_file(f);
}

/* hfeed__chunkio_place_tile puts every element of every tile of a slab where a plain
 * coordinate computation says it belongs, clipping the tiles at the sample's edges on every
 * axis: samples of 5 x 7 x 3 uint16 in tiles of 2 x 3 x 2 (3 x 3 x 2 = 18 tiles), 4 rows. */
Test(chunkio, place_tile_puts_every_element_in_place)
{
    enum { ROWS = 4, A = 5, B = 7, C = 3, TA = 2, TB = 3, TC = 2 };
    struct hfeed__direct d = {.chunked = true,
                              .elem_size = 2,
                              .row_bytes = A * B * C * 2,
                              .chunk_rows = ROWS,
                              .tiled = true,
                              .sample_rank = 3,
                              .sample_dims = {A, B, C},
                              .tile_dims = {ROWS, TA, TB, TC}};
    const uint64_t na = (A + TA - 1) / TA, nb = (B + TB - 1) / TB, nc = (C + TC - 1) / TC;
    d.tiles_per_slab = na * nb * nc;
    cr_assert_eq(d.tiles_per_slab, 18);
    uint16_t slab[ROWS * A * B * C];
    memset(slab, 0xff, sizeof slab);
    for (uint64_t j = 0; j < d.tiles_per_slab; j++) {
        uint16_t tile[ROWS * TA * TB * TC];
        for (size_t i = 0; i < sizeof tile / sizeof tile[0]; i++)
            tile[i] = (uint16_t)(j * 1000 + i); /* which tile, which element of it */
        hfeed__chunkio_place_tile(&d, j, (const unsigned char *)tile, (unsigned char *)slab);
    }
    for (int r = 0; r < ROWS; r++)
        for (int a = 0; a < A; a++)
            for (int b = 0; b < B; b++)
                for (int c = 0; c < C; c++) {
                    const uint64_t j = (uint64_t)(a / TA) * nb * nc + (uint64_t)(b / TB) * nc +
                                       (uint64_t)(c / TC);
                    const int in = ((r * TA + a % TA) * TB + b % TB) * TC + c % TC;
                    const uint16_t got = slab[((r * A + a) * B + b) * C + c];
                    cr_assert_eq(got, (uint16_t)(j * 1000 + (uint64_t)in),
                                 "row %d element (%d, %d, %d): %u, want tile %llu element %d", r,
                                 a, b, c, got, (unsigned long long)j, in);
                }
}

/* hfeed__chunkio_huge_cached says no where it cannot know or a mapping cannot map 2 MiB pages
 * whole, and never reads the disk to find out: an evicted file stays evicted. (Whether a page
 * cache holds 2 MiB pages is the kernel's choice: the "yes" case is measured by
 * bench/limits.py, not asserted here.) */
Test(chunkio, huge_page_probe_says_no_without_reading_the_disk)
{
    struct file f = make_file();
    struct hfeed__direct d = contiguous(f);
    d.map_bytes = FILE_BYTES;
    struct hfeed__direct unmapped = d;
    unmapped.map = NULL;
    cr_expect(!hfeed__chunkio_huge_cached(&unmapped), "no mapping");
    struct hfeed__direct small = d;
    small.map_bytes = (4u << 20) - 1;
    cr_expect(!hfeed__chunkio_huge_cached(&small), "a file under 4 MiB");
    struct hfeed__direct shifted = d;
    shifted.map = f.map + 4096; /* not 2 MiB aligned */
    shifted.map_bytes = FILE_BYTES - 4096;
    cr_expect(!hfeed__chunkio_huge_cached(&shifted), "a mapping not aligned to 2 MiB");
    if (cold(f)) {
        cr_expect(!hfeed__chunkio_huge_cached(&d), "an evicted file");
        cr_expect(evict(f), "the probe read the evicted file");
    }
    close_file(f);
}
