/* limit_pread_convert: the "pread + convert" limit for bench/compare.py.
 *
 * Usage: limit_pread_convert FILE OFFSET NBYTES [THREADS [BLOCK_BYTES [PASSES]]]
 *
 * Reads the byte range [OFFSET, OFFSET + NBYTES) of FILE (the raw float64 data of a
 * contiguous HDF5 dataset; bench/compare.py gets OFFSET from h5py's dset.id.get_offset())
 * with THREADS threads (default 2). Block b (BLOCK_BYTES each, default 2 MiB) goes to thread
 * b % THREADS, which preads it into its own buffer and converts float64 -> float32 into its
 * own output buffer: no HDF5, no locks, no allocation in the loop. That is what a reader
 * that delivers float32 from a cached uncompressed file cannot beat by much. PASSES (default
 * 1) repeats the whole range. Prints one JSON object: seconds, bytes_in, bytes_out, and
 * gb_per_s = float32 bytes out / seconds / 10^9. A checksum of the output keeps the compiler
 * from dropping the conversion. Build: cc -O3 -march=native -pthread
 * limit_pread_convert.c (-O3 so that gcc vectorizes the conversion loop, as numpy does).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct job {
    int fd;
    unsigned tid, nthreads;
    uint64_t offset, nbytes, block;
    unsigned passes;
    double checksum;
    int err;
};

static void *run(void *arg)
{
    struct job *j = arg;
    double *in = NULL;
    float *out = NULL;
    if (posix_memalign((void **)&in, 64, j->block) != 0 ||
        posix_memalign((void **)&out, 64, j->block / 2) != 0) {
        j->err = ENOMEM;
        free(in);
        return NULL;
    }
    const uint64_t nblocks = (j->nbytes + j->block - 1) / j->block;
    double sum = 0;
    for (unsigned p = 0; p < j->passes; p++) {
        for (uint64_t b = j->tid; b < nblocks; b += j->nthreads) {
            const uint64_t pos = b * j->block;
            const size_t len = (size_t)(pos + j->block <= j->nbytes ? j->block : j->nbytes - pos);
            size_t got = 0;
            while (got < len) {
                const ssize_t r = pread(j->fd, (char *)in + got, len - got,
                                        (off_t)(j->offset + pos + got));
                if (r < 0 && errno == EINTR) continue;
                if (r <= 0) {
                    j->err = r < 0 ? errno : EIO;
                    goto done;
                }
                got += (size_t)r;
            }
            const size_t n = len / sizeof(double);
            for (size_t i = 0; i < n; i++) out[i] = (float)in[i];
            sum += out[b % (n ? n : 1)];
        }
    }
done:
    j->checksum = sum;
    free(in);
    free(out);
    return NULL;
}

static uint64_t parse_u64(const char *s, const char *what)
{
    char *end = NULL;
    errno = 0;
    const unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0') {
        fprintf(stderr, "limit_pread_convert: bad %s: %s\n", what, s);
        exit(2);
    }
    return (uint64_t)v;
}

int main(int argc, char **argv)
{
    if (argc < 4 || argc > 7) {
        fprintf(stderr, "usage: %s FILE OFFSET NBYTES [THREADS [BLOCK_BYTES [PASSES]]]\n", argv[0]);
        return 2;
    }
    const uint64_t offset = parse_u64(argv[2], "OFFSET");
    const uint64_t nbytes = parse_u64(argv[3], "NBYTES");
    const unsigned nthreads = argc > 4 ? (unsigned)parse_u64(argv[4], "THREADS") : 2;
    const uint64_t block = argc > 5 ? parse_u64(argv[5], "BLOCK_BYTES") : 2u << 20;
    const unsigned passes = argc > 6 ? (unsigned)parse_u64(argv[6], "PASSES") : 1;
    if (nthreads < 1 || nthreads > 256 || block < 8 || block % 8 != 0 || passes < 1 ||
        nbytes % 8 != 0) {
        fprintf(stderr, "limit_pread_convert: need 1-256 threads, a block and NBYTES that are "
                        "multiples of 8, PASSES >= 1\n");
        return 2;
    }
    const int fd = open(argv[1], O_RDONLY);
    if (fd < 0) {
        fprintf(stderr, "limit_pread_convert: %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    struct job jobs[256];
    pthread_t th[256];
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (unsigned i = 0; i < nthreads; i++) {
        jobs[i] = (struct job){fd, i, nthreads, offset, nbytes, block, passes, 0, 0};
        if (pthread_create(&th[i], NULL, run, &jobs[i]) != 0) {
            fprintf(stderr, "limit_pread_convert: pthread_create failed\n");
            return 1;
        }
    }
    double checksum = 0;
    int err = 0;
    for (unsigned i = 0; i < nthreads; i++) {
        pthread_join(th[i], NULL);
        checksum += jobs[i].checksum;
        if (jobs[i].err) err = jobs[i].err;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    close(fd);
    if (err) {
        fprintf(stderr, "limit_pread_convert: %s: read failed: %s\n", argv[1], strerror(err));
        return 1;
    }
    const double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    const double in = (double)nbytes * passes, out = in / 2;
    printf("{\"seconds\": %.6f, \"bytes_in\": %.0f, \"bytes_out\": %.0f, \"gb_per_s\": %.4f, "
           "\"threads\": %u, \"block\": %llu, \"passes\": %u, \"checksum\": %.6g}\n",
           secs, in, out, out / secs / 1e9, nthreads, (unsigned long long)block, passes, checksum);
    return 0;
}
