/* libFuzzer harness for hfeed__chunkindex_read (loader/chunkindex.c).
 *
 * Input layout (little-endian), PREFIX_LEN bytes of query then the file image:
 *   [0..3]   header_addr (u32)      object header address inside the file image
 *   [4]      flags: bits 0-1 rank-1 (clamped to 1..3), bit 2 filtered,
 *            bits 3-4 sizeof_addr/size selector (0,1 -> 8; 2 -> 4; 3 -> 2/8 mixed),
 *            bit 5: chunks split the sample axes (chunk[d] = ceil(dims[d] / 2) for d >= 1;
 *            else chunk[d] = dims[d])
 *   [5..6]   dims0 (u16), [7..8] chunk0 (u16, 0 -> 1)
 *   [9..10]  dims1 (u16), [11..12] dims2 (u16)
 *   [13..16] base_addr (u32)        superblock base (userblock size)
 * The rest is written to a memfd and is the "file"; file_size = its length.
 * seed_corpus.py writes real HDF5 files with this prefix. */
#define _GNU_SOURCE
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "chunkindex.h"

#define PREFIX_LEN 17
#define MAX_CHUNKS 4096

static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

static int memfd = -1;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < PREFIX_LEN) return 0;
    if (memfd < 0) {
        memfd = memfd_create("fuzz_chunkindex", 0);
        if (memfd < 0) abort();
    }
    const uint8_t *file = data + PREFIX_LEN;
    size_t file_len = size - PREFIX_LEN;
    if (ftruncate(memfd, 0) != 0) abort();
    size_t off = 0;
    while (off < file_len) {
        ssize_t n = pwrite(memfd, file + off, file_len - off, (off_t)off);
        if (n <= 0) abort();
        off += (size_t)n;
    }

    struct hfeed__index_query q;
    memset(&q, 0, sizeof q);
    q.header_addr = rd32(data);
    unsigned flags = data[4];
    q.rank = (int)(flags & 3u) + 1;
    if (q.rank > 3) q.rank = 3;
    q.filtered = (flags >> 2) & 1u;
    switch ((flags >> 3) & 3u) {
    case 2: q.sizeof_addr = 4; q.sizeof_size = 4; break;
    case 3: q.sizeof_addr = 2; q.sizeof_size = 8; break;
    default: q.sizeof_addr = 8; q.sizeof_size = 8; break;
    }
    q.dims[0] = rd16(data + 5);
    q.chunk[0] = rd16(data + 7);
    if (q.chunk[0] == 0) q.chunk[0] = 1;
    q.dims[1] = rd16(data + 9);
    q.dims[2] = rd16(data + 11);
    const int split = (flags >> 5) & 1u;
    for (int d = 1; d < q.rank; d++) {
        q.chunk[d] = q.dims[d] ? q.dims[d] : 1;
        if (split && q.dims[d] > 1) q.chunk[d] = (q.dims[d] + 1) / 2;
    }
    q.base_addr = rd32(data + 13);
    q.file_size = file_len;

    uint64_t nchunks = hfeed__chunkindex_count(&q);
    if (nchunks > MAX_CHUNKS) return 0;
    struct hfeed__chunk_ref *table = malloc((nchunks ? nchunks : 1) * sizeof *table);
    if (!table) abort();
    const char *why = NULL;
    struct hfeed__err err;
    memset(&err, 0, sizeof err);
    hfeed_status st = hfeed__chunkindex_read(memfd, &q, table, nchunks, &why, &err);
    if (st == HFEED_OK) {
        /* Touch every entry so MSan/ASan would see uninitialised or short fills. */
        volatile uint64_t sink = 0;
        for (uint64_t i = 0; i < nchunks; i++) sink ^= table[i].addr ^ table[i].size;
        (void)sink;
    }
    free(table);
    return 0;
}
