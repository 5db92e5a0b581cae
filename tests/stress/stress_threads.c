/* stress_threads: the threaded parts of h5feed, driven hard through the public API, in a plain C
 * program (no Criterion), so that it also runs under ThreadSanitizer: Criterion 2.4's runner
 * cannot start under TSan (its inheritable arena collides with TSan's memory layout).
 *
 * Every scenario checks real behaviour, not just "no crash": each sample exactly once per epoch,
 * every value equal to the synthetic formula cast independently, and clean closes. It exits 0
 * when all pass, 1 with a message naming the scenario otherwise.
 *
 * Usage: stress_threads [DIR]   (DIR for the data files; default: a new folder under /tmp) */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "h5feed.h"

#define ROWS 3000u
#define COLS 64u /* 1.5 MB of float64: more than cache_mb 1 holds */

static int failures;

static void fail(const char *scenario, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "FAIL %s: ", scenario);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    failures++;
}

/* Writes the synthetic file `name` in dir: ROWS x COLS float64 features and int64 labels. */
static void make_file(const char *dir, const char *name, uint64_t chunk_rows, int gzip, char *path,
                      size_t len)
{
    snprintf(path, len, "%s/%s", dir, name);
    hfeed_synth_spec spec = {.rows = ROWS,
                             .sample_ndim = 1,
                             .sample_shape = {COLS},
                             .dtype = HFEED_DTYPE_FLOAT64,
                             .chunk_rows = chunk_rows,
                             .gzip_level = gzip,
                             .shuffle = gzip > 0,
                             .seed = 7,
                             .label_classes = 13};
    char err[HFEED_ERRBUF_SIZE];
    if (hfeed_synth_write(path, &spec, err, sizeof err) != HFEED_OK) {
        fprintf(stderr, "cannot write %s: %s\n", path, err);
        exit(1);
    }
}

static hfeed_loader *open_loader(const char *scenario, const char *path, const char *extra)
{
    char json[2048];
    snprintf(json, sizeof json,
             "{\"files\": [\"%s\"], \"fields\": [{\"name\": \"x\", \"dataset\": \"/features\"},"
             " {\"name\": \"y\", \"dataset\": \"/labels\", \"dtype\": \"int64\"}]%s}",
             path, extra);
    char err[HFEED_ERRBUF_SIZE];
    hfeed_loader *l = NULL;
    if (hfeed_loader_open_json(json, NULL, NULL, NULL, &l, err, sizeof err) != HFEED_OK)
        fail(scenario, "open: %s", err);
    return l;
}

/* Checks one batch's values and marks its samples in seen[]. */
static void check_batch(const char *scenario, hfeed_batch *b, unsigned char *seen)
{
    hfeed_batch_info bi;
    hfeed_tensor x, y;
    const uint64_t *idx;
    if (hfeed_batch_get_info(b, &bi) != HFEED_OK || hfeed_batch_get_tensor(b, 0, &x) != HFEED_OK ||
        hfeed_batch_get_tensor(b, 1, &y) != HFEED_OK ||
        hfeed_batch_get_indices(b, &idx) != HFEED_OK) {
        fail(scenario, "batch accessors failed");
        return;
    }
    const float *xs = x.data;
    const int64_t *ys = y.data;
    for (size_t r = 0; r < bi.samples; r++) {
        const uint64_t s = idx[r];
        if (s >= ROWS || seen[s]++) {
            fail(scenario, "sample %llu delivered twice (epoch %llu)", (unsigned long long)s,
                 (unsigned long long)bi.epoch);
            return;
        }
        if (ys[r] != (int64_t)(s % 13))
            fail(scenario, "label of sample %llu", (unsigned long long)s);
        for (uint64_t c = 0; c < COLS; c++) {
            const float want = (float)hfeed_synth_value(7, s, COLS, c);
            if (xs[r * COLS + c] != want) {
                fail(scenario, "value of sample %llu element %llu", (unsigned long long)s,
                     (unsigned long long)c);
                return;
            }
        }
    }
}

/* A second thread that releases the batches the consumer hands it (release from any thread). */
struct releaser {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    hfeed_batch *queue[64];
    size_t head, tail;
    int done;
};

static void *release_loop(void *arg)
{
    struct releaser *q = arg;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        while (q->head == q->tail && !q->done)
            pthread_cond_wait(&q->cv, &q->mu);
        if (q->head == q->tail) break;
        hfeed_batch *b = q->queue[q->head++ % 64];
        pthread_mutex_unlock(&q->mu);
        hfeed_batch_release(b);
        pthread_mutex_lock(&q->mu);
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

static void hand_over(struct releaser *q, hfeed_batch *b)
{
    pthread_mutex_lock(&q->mu);
    q->queue[q->tail++ % 64] = b;
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

/* Full run: every epoch exactly once, values right, batches released on another thread. */
static void full_run(const char *scenario, const char *path, const char *extra, uint64_t epochs)
{
    hfeed_loader *l = open_loader(scenario, path, extra);
    if (l == NULL) return;
    struct releaser q = {.head = 0};
    pthread_mutex_init(&q.mu, NULL);
    pthread_cond_init(&q.cv, NULL);
    pthread_t t;
    pthread_create(&t, NULL, release_loop, &q);
    unsigned char *seen = calloc(epochs, ROWS);
    hfeed_batch *b;
    hfeed_status st;
    while ((st = hfeed_loader_next(l, &b)) == HFEED_OK || st == HFEED_E_BUSY) {
        if (st == HFEED_E_BUSY) { /* the releaser has not caught up yet */
            nanosleep(&(struct timespec){0, 100000}, NULL);
            continue;
        }
        hfeed_batch_info bi;
        hfeed_batch_get_info(b, &bi);
        check_batch(scenario, b, seen + bi.epoch * ROWS);
        hand_over(&q, b);
    }
    if (st != HFEED_END) fail(scenario, "next: %s: %s", hfeed_strerror(st), hfeed_loader_errmsg(l));
    pthread_mutex_lock(&q.mu);
    q.done = 1;
    pthread_cond_signal(&q.cv);
    pthread_mutex_unlock(&q.mu);
    pthread_join(t, NULL);
    for (uint64_t i = 0; i < epochs * ROWS; i++)
        if (!seen[i]) {
            fail(scenario, "sample %llu of epoch %llu never delivered",
                 (unsigned long long)(i % ROWS), (unsigned long long)(i / ROWS));
            break;
        }
    free(seen);
    if (hfeed_loader_close(l) != HFEED_OK) fail(scenario, "close");
}

/* Close while workers are busy, and with a batch still borrowed (released after close). */
static void close_early(const char *scenario, const char *path, const char *extra)
{
    hfeed_loader *l = open_loader(scenario, path, extra);
    if (l == NULL) return;
    hfeed_batch *b = NULL;
    if (hfeed_loader_next(l, &b) != HFEED_OK) fail(scenario, "first batch");
    if (hfeed_loader_close(l) != HFEED_OK) fail(scenario, "close");
    hfeed_batch_release(b);
    l = open_loader(scenario, path, extra);
    if (l != NULL && hfeed_loader_close(l) != HFEED_OK) fail(scenario, "close right after open");
}

/* Seek to the middle of epoch 1 and check the rest of that epoch is delivered exactly. */
static void seek_run(const char *scenario, const char *path, const char *extra)
{
    hfeed_loader *l = open_loader(scenario, path, extra);
    if (l == NULL) return;
    hfeed_batch *b;
    if (hfeed_loader_next(l, &b) == HFEED_OK) hfeed_batch_release(b);
    if (hfeed_loader_seek(l, 1, 5) != HFEED_OK) fail(scenario, "seek: %s", hfeed_loader_errmsg(l));
    hfeed_batch_info bi;
    uint64_t expect = 5;
    while (hfeed_loader_next(l, &b) == HFEED_OK) {
        hfeed_batch_get_info(b, &bi);
        if (bi.epoch != 1 || bi.index != expect++) fail(scenario, "batch order after seek");
        hfeed_batch_release(b);
    }
    hfeed_loader_close(l);
}

struct par_arg {
    const char *path;
    const char *extra;
};

static void *par_run(void *arg)
{
    const struct par_arg *a = arg;
    full_run("parallel loaders", a->path, a->extra, 2);
    return NULL;
}

int main(int argc, char **argv)
{
    char dir[256] = "/tmp/h5feed-stress-XXXXXX";
    if (argc > 1)
        snprintf(dir, sizeof dir, "%s", argv[1]);
    else if (mkdtemp(dir) == NULL)
        return 1;
    char contig[512], plain[512], gzip[512];
    make_file(dir, "contig.h5", 0, 0, contig, sizeof contig);
    make_file(dir, "plain.h5", 64, 0, plain, sizeof plain);
    make_file(dir, "gzip.h5", 50, 1, gzip, sizeof gzip);

    const char *paths[] = {contig, plain, gzip};
    const char *modes[] = {", \"workers\": 4, \"prefetch\": 3, \"batch_size\": 64, \"shuffle\": "
                           "\"chunk\", \"epochs\": 2",
                           ", \"workers\": 3, \"prefetch\": 5, \"batch_size\": 100, \"shuffle\": "
                           "\"global\", \"epochs\": 2",
                           ", \"workers\": 4, \"prefetch\": 2, \"batch_size\": 37, \"shuffle\": "
                           "\"none\", \"epochs\": 2, "
                           "\"cache_mb\": 0",
                           ", \"workers\": 2, \"prefetch\": 4, \"batch_size\": 64, \"shuffle\": "
                           "\"chunk\", \"epochs\": 2, "
                           "\"read_path\": \"hdf5\"",
                           /* The upload stage: the fake device's stream thread copies late. */
                           ", \"workers\": 3, \"prefetch\": 3, \"batch_size\": 64, \"shuffle\": "
                           "\"global\", \"epochs\": 2, \"device\": \"fake\"",
                           ", \"workers\": 2, \"prefetch\": 1, \"batch_size\": 50, \"shuffle\": "
                           "\"chunk\", \"epochs\": 2, \"device\": \"fake\", \"pinned\": false",
                           /* The caches' foresight: the gzip chunks do not all fit 1 MiB. */
                           ", \"workers\": 3, \"prefetch\": 5, \"batch_size\": 64, \"shuffle\": "
                           "\"global\", \"epochs\": 2, \"cache_mb\": 1"};
    /* Repeated, because interleavings differ from run to run. */
    for (int rep = 0; rep < 4; rep++)
        for (size_t p = 0; p < 3; p++)
            for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
                char scenario[600];
                snprintf(scenario, sizeof scenario, "full run %s%s", paths[p], modes[m]);
                full_run(scenario, paths[p], modes[m], 2);
            }
    for (size_t p = 0; p < 3; p++) {
        close_early("close early", paths[p], modes[0]);
        close_early("close early, fake device", paths[p], modes[4]);
        seek_run("seek", paths[p], modes[1]);
        seek_run("seek, fake device", paths[p], modes[4]);
        seek_run("seek, chunks that do not fit the cache", paths[p], modes[6]);
    }
    struct par_arg args[3] = {{contig, modes[0]}, {plain, modes[4]}, {gzip, modes[5]}};
    pthread_t t[3];
    for (int i = 0; i < 3; i++)
        pthread_create(&t[i], NULL, par_run, &args[i]);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);

    for (size_t p = 0; p < 3; p++)
        unlink(paths[p]);
    if (argc <= 1) rmdir(dir);
    if (failures == 0) printf("stress_threads: all scenarios passed\n");
    return failures == 0 ? 0 : 1;
}
