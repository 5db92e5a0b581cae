/* reader_worker: what the reader's two files share (reader.c: threads, batches, read-ahead;
 * reader_runs.c: reading one run of rows or chunks into a slot). Internal to the reader stage:
 * nothing outside reader*.c includes it. Design, threads and locking: reader.h. */
#ifndef HFEED_READER_WORKER_H
#define HFEED_READER_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "clock.h"
#include "reader.h"

/* Stored bytes fetched per read on the way to a conversion: small enough that the piece is
 * still in L2 when the conversion reads it back, large enough that the syscall is cheap beside
 * it. Converting straight from a mapping of the file was the alternative: fastest where the
 * first touch of a mapping is cheap, several times slower where it is not (a first pass at
 * 0.9-1.8 GB/s against 9 GB/s for pread + convert, ../shared/limits/README.md). pread costs
 * the same everywhere, and a file truncated under the loader becomes a clean error, not SIGBUS. */
#define PIECE_BYTES ((size_t)256 << 10)

/* A sample of the batch being filled: its global index and its row in the slot. */
struct hfeed__pick {
    uint64_t index;
    size_t pos;
};

/* A run of rows inside one chunk whose chunk another worker was decoding: done last. */
struct hfeed__piece {
    size_t k, fi;
    uint64_t row;
    size_t pick, n; /* w->picks[pick .. pick + n) */
};

struct hfeed__worker {
    struct hfeed__reader *reader;
    pthread_t thread;
    bool running;
    uint64_t seq;              /* the batch being filled (the chunk cache's foresight names it) */
    unsigned char *scratch;    /* scratch_bytes: a piece of stored rows on the way to convert */
    struct hfeed__pick *picks; /* batch_size */
    struct hfeed__piece *deferred; /* nfields * batch_size: at most one piece per pick and field */
    size_t ndeferred;
    struct hfeed__codec *codec;
    unsigned char *raw;  /* one stored chunk (the largest) */
    unsigned char *tmp;  /* one decoded chunk: the codec's scratch */
    unsigned char *own;  /* one decoded chunk, when the cache has no free entry */
    unsigned char *tile; /* one decoded tile of a slab whose chunks split samples (chunkio.h) */
    unsigned probe_every, probe_wait;     /* ask_ahead probes one batch in probe_every */
    const struct hfeed__direct *unshrunk; /* this batch: checked not truncated (mapped rows) */
    struct hfeed__reader_stats local;     /* this batch's counts; only this worker touches them */
    /* Published once per batch, so the consumer can sum them while workers run; aligned so
     * that two workers' counters never share a cache line. */
    _Alignas(64) atomic_uint_fast64_t read_ns, decode_ns, convert_ns, nan, overflow, h5_reads,
        read_ahead, decodes, mapped;
};

struct hfeed__reader {
    const struct hfeed__catalog *cat;
    struct hfeed__ring *ring;
    size_t batch_size;
    size_t scratch_bytes; /* PIECE_BYTES, at least the widest stored sample, at most a batch */
    unsigned nworkers;
    struct hfeed__worker *workers;
    struct hfeed__fieldcache *caches; /* the fields' chunk caches; NULL: no field decodes */
    /* The files together fit a quarter of the memory the process may use: the first time one
     * turns out not to be cached, it is asked for whole (ask_ahead), once (asked_whole[fi]). */
    bool whole_files;
    atomic_bool *asked_whole;
    size_t memory;
};

static inline void hfeed__reader_count(uint64_t *counter, uint64_t v)
{
    *counter += v;
}

/* Reads the n samples p[0..n) of field f, consecutive rows from `row` of file fi, into the slot
 * buffer dst (reader_runs.c). Returns: HFEED_OK, or the error (E_READ, E_RANGE) set in err. */
hfeed_status hfeed__reader_rows_run(struct hfeed__worker *w, const struct hfeed__field *f,
                                    size_t fi, uint64_t row, const struct hfeed__pick *p, size_t n,
                                    unsigned char *dst, struct hfeed__err *err);

/* The same for a source whose chunks are decoded (hfeed__chunkio_filtered): picks w->picks[pick
 * .. pick + n) of field k, rows from `row` of file fi; with !wait, a chunk another worker is
 * decoding is deferred to w->deferred (reader_runs.c). */
hfeed_status hfeed__reader_chunks_run(struct hfeed__worker *w, size_t k, size_t fi, uint64_t row,
                                      size_t pick, size_t n, unsigned char *dst, bool wait,
                                      struct hfeed__err *err);

#endif
