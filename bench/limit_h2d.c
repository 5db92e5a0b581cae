/* limit_h2d: the host-to-device copy rate of a plain cudaMemcpyAsync loop, the physical limit
 * h5feed's upload stage is compared with (bench/upload.py). It copies one host buffer of
 * BYTES bytes (pinned with cudaHostAlloc, or pageable from malloc) into a ring of DEPTH device
 * buffers on one non-blocking stream, COUNT times, timed with events around the whole loop,
 * after a warm-up copy. Prints one JSON object.
 *
 * Usage: limit_h2d BYTES COUNT pinned|pageable [DEPTH] */
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(call)                                                                                \
    do {                                                                                           \
        const cudaError_t e_ = (call);                                                             \
        if (e_ != cudaSuccess) {                                                                   \
            fprintf(stderr, "limit_h2d: %s: %s\n", #call, cudaGetErrorString(e_));                 \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

int main(int argc, char **argv)
{
    if (argc < 4 || (strcmp(argv[3], "pinned") != 0 && strcmp(argv[3], "pageable") != 0)) {
        fprintf(stderr, "usage: limit_h2d BYTES COUNT pinned|pageable [DEPTH]\n");
        return 2;
    }
    const size_t bytes = strtoull(argv[1], NULL, 10);
    const long count = strtol(argv[2], NULL, 10);
    const int pinned = strcmp(argv[3], "pinned") == 0;
    const int depth = argc > 4 ? atoi(argv[4]) : 4;
    if (bytes == 0 || count <= 0 || depth <= 0 || depth > 64) {
        fprintf(stderr, "limit_h2d: BYTES and COUNT must be > 0, DEPTH 1..64\n");
        return 2;
    }
    void *host = NULL;
    if (pinned) {
        CHECK(cudaHostAlloc(&host, bytes, cudaHostAllocDefault));
    } else {
        host = malloc(bytes);
        if (host == NULL) return 1;
    }
    memset(host, 1, bytes);
    void *dev[64];
    for (int i = 0; i < depth; i++) CHECK(cudaMalloc(&dev[i], bytes));
    cudaStream_t s;
    CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    cudaEvent_t start, end;
    CHECK(cudaEventCreate(&start));
    CHECK(cudaEventCreate(&end));
    CHECK(cudaMemcpyAsync(dev[0], host, bytes, cudaMemcpyHostToDevice, s));
    CHECK(cudaStreamSynchronize(s));
    CHECK(cudaEventRecord(start, s));
    for (long i = 0; i < count; i++)
        CHECK(cudaMemcpyAsync(dev[i % depth], host, bytes, cudaMemcpyHostToDevice, s));
    CHECK(cudaEventRecord(end, s));
    CHECK(cudaEventSynchronize(end));
    float ms = 0.0f;
    CHECK(cudaEventElapsedTime(&ms, start, end));
    const double seconds = (double)ms * 1e-3;
    int device = 0;
    struct cudaDeviceProp prop;
    CHECK(cudaGetDevice(&device));
    CHECK(cudaGetDeviceProperties(&prop, device));
    printf("{\"device\": \"%s\", \"bytes\": %zu, \"count\": %ld, \"memory\": \"%s\", "
           "\"seconds\": %.6f, \"gb_per_s\": %.4f}\n",
           prop.name, bytes, count, pinned ? "pinned" : "pageable", seconds,
           (double)bytes * (double)count / seconds * 1e-9);
    for (int i = 0; i < depth; i++) cudaFree(dev[i]);
    if (pinned) {
        cudaFreeHost(host);
    } else {
        free(host);
    }
    return 0;
}
