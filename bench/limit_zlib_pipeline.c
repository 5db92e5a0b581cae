/* limit_zlib_pipeline: the best a zlib-based reader could do on a gzip+shuffle float64 dataset,
 * as a physical reference for h5feed's sequential gzip throughput.
 *
 * THREADS threads split the chunk list; each one preads a stored chunk, inflates it with zlib's
 * uncompress(), unshuffles the bytes (8-byte elements) and converts float64 to float32 into a
 * private buffer: exactly the work h5feed's direct path does per chunk, with zlib instead of
 * libdeflate and no queues, no cache, no HDF5. It prints GB/s of float32 output.
 *
 * Usage: limit_zlib_pipeline FILE CHUNKLIST CHUNK_BYTES [THREADS]
 *   CHUNKLIST: a text file with one "offset size" line per chunk (bench/zlib_limit.py writes it
 *   from h5py's get_chunk_info). Build: cc -O2 -pthread limit_zlib_pipeline.c -lz */
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

struct chunk {
    uint64_t offset, size;
};

struct job {
    int fd;
    const struct chunk *chunks;
    size_t first, count;
    size_t chunk_bytes;
    double sink;
};

static void *work(void *arg)
{
    struct job *j = arg;
    const size_t n = j->chunk_bytes / 8;
    unsigned char *raw = malloc(j->chunk_bytes * 2 + 4096);
    unsigned char *inflated = malloc(j->chunk_bytes);
    double *doubles = malloc(j->chunk_bytes);
    float *out = malloc(n * sizeof *out);
    for (size_t c = j->first; c < j->first + j->count; c++) {
        const struct chunk *ch = &j->chunks[c];
        if (pread(j->fd, raw, ch->size, (off_t)ch->offset) != (ssize_t)ch->size) exit(2);
        uLongf len = (uLongf)j->chunk_bytes;
        if (uncompress(inflated, &len, raw, (uLong)ch->size) != Z_OK || len != j->chunk_bytes)
            exit(3);
        unsigned char *bytes = (unsigned char *)doubles;
        for (size_t b = 0; b < 8; b++)
            for (size_t i = 0; i < n; i++) bytes[i * 8 + b] = inflated[b * n + i];
        for (size_t i = 0; i < n; i++) out[i] = (float)doubles[i];
        j->sink += out[n / 2];
    }
    free(raw);
    free(inflated);
    free(doubles);
    free(out);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s FILE CHUNKLIST CHUNK_BYTES [THREADS]\n", argv[0]);
        return 1;
    }
    const int fd = open(argv[1], O_RDONLY);
    FILE *list = fopen(argv[2], "r");
    const size_t chunk_bytes = strtoull(argv[3], NULL, 10);
    const int threads = argc > 4 ? atoi(argv[4]) : 2;
    if (fd < 0 || list == NULL || threads < 1 || threads > 64) return 1;
    size_t cap = 1024, n = 0;
    struct chunk *chunks = malloc(cap * sizeof *chunks);
    unsigned long long off, size;
    while (fscanf(list, "%llu %llu", &off, &size) == 2) {
        if (n == cap) chunks = realloc(chunks, (cap *= 2) * sizeof *chunks);
        chunks[n++] = (struct chunk){off, size};
    }
    fclose(list);
    struct job jobs[64];
    pthread_t t[64];
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < threads; i++) {
        const size_t per = (n + (size_t)threads - 1) / (size_t)threads;
        const size_t first = per * (size_t)i < n ? per * (size_t)i : n;
        const size_t count = first + per < n ? per : n - first;
        jobs[i] = (struct job){fd, chunks, first, count, chunk_bytes, 0};
        pthread_create(&t[i], NULL, work, &jobs[i]);
    }
    double sink = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(t[i], NULL);
        sink += jobs[i].sink;
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    const double s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) * 1e-9;
    const double out_bytes = (double)n * (double)chunk_bytes / 2;
    printf("{\"seconds\": %.6f, \"chunks\": %zu, \"bytes_out\": %.0f, \"gb_per_s\": %.4f, "
           "\"threads\": %d, \"sink\": %g}\n",
           s, n, out_bytes, out_bytes / s * 1e-9, threads, sink);
    free(chunks);
    close(fd);
    return 0;
}
