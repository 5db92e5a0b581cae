/* rowprobe: pread or the mapping for rows read one at a time (design in rowprobe.h). */
#include "rowprobe.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"

enum { ROUNDS = 5 };
/* Bytes of one probe window: its rows, in a shuffled order. */
#define WINDOW_BYTES ((uint64_t)512 << 10)
#define MAP_MARGIN 0.85

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The next of a fixed sequence of numbers in [0, n) (an LCG: the same every open). */
static uint64_t next_below(uint64_t *state, uint64_t n)
{
    *state = *state * 6364136223846793005u + 1442695040888963407u;
    return (*state >> 17) % n;
}

/* Rows in a window: a power of two, about WINDOW_BYTES, at most the dataset's rows. */
static uint64_t window_rows(const struct hfeed__direct *d)
{
    uint64_t w = 1;
    while (2 * w * d->row_bytes <= WINDOW_BYTES && 2 * w <= d->nrows)
        w *= 2;
    return w;
}

/* The first source the workers could read through the mapping: direct, unfiltered, mapped. */
static bool pick(const struct hfeed__catalog *c, size_t *field, size_t *file)
{
    for (size_t k = 0; k < c->nfields; k++)
        for (size_t fi = 0; fi < c->nfiles; fi++) {
            const struct hfeed__direct *d = c->fields[k].sources[fi].direct;
            if (d != NULL && d->map != NULL && !hfeed__chunkio_filtered(d) && d->nrows > 0 &&
                hfeed__chunkio_map_rows(d, 0, 1) != NULL) {
                *field = k;
                *file = fi;
                return true;
            }
        }
    return false;
}

/* Nanoseconds per row to convert every row of a window of s taken at random, in a shuffled
 * order, each row read with pread into `raw` or converted straight from the mapping; 0 on a
 * read error or when the window is not in the page cache. A whole window, as an epoch of global shuffle touches every row once: a page
 * fault maps the pages around it too (fault-around), and a window shares its page tables, so
 * the mapping's cost per row is what an epoch pays, not that of an isolated row. */
static double time_rows(const struct hfeed__field *f, const struct hfeed__source *s,
                        bool mapped, uint64_t *state, unsigned char *raw, unsigned char *out)
{
    const struct hfeed__direct *d = s->direct;
    struct hfeed__conv_counts counts = {0, 0};
    const uint64_t w = window_rows(d), start = next_below(state, d->nrows - w + 1);
    /* Data that is not cached would time the disk, and be read for nothing: no probe. */
    if (!hfeed__chunkio_cached(d, start) || !hfeed__chunkio_cached(d, start + w / 2) ||
        !hfeed__chunkio_cached(d, start + w - 1))
        return 0;
    const uint64_t t0 = now_ns();
    for (uint64_t i = 0; i < w; i++) {
        const uint64_t row = start + i * 37 % w; /* 37 is odd: a permutation of the window */
        const unsigned char *src = mapped ? hfeed__chunkio_map_rows(d, row, 1) : raw;
        struct hfeed__err ignored = {0};
        if (!mapped && hfeed__chunkio_read_rows(d, row, 1, raw, &ignored) != HFEED_OK) return 0;
        if (src == NULL) return 0; /* an unallocated chunk: no way to compare */
        size_t bad;
        (void)hfeed__conv_run(&s->conv, src, out, f->row_elems, &counts, &bad); /* timing only */
    }
    const uint64_t t = now_ns() - t0;
    return (double)(t > 0 ? t : 1) / (double)w;
}

static int by_value(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

hfeed_status hfeed__rowprobe_run(const struct hfeed__catalog *c, struct hfeed__rowprobe *out,
                                 struct hfeed__err *err)
{
    memset(out, 0, sizeof *out);
    if (!pick(c, &out->field, &out->file)) return HFEED_OK;
    const struct hfeed__field *f = &c->fields[out->field];
    const struct hfeed__source *s = &f->sources[out->file];
    unsigned char *raw = hfeed__alloc(s->stored_row_bytes);
    unsigned char *row_out = hfeed__alloc(f->row_bytes);
    if (raw == NULL || row_out == NULL) {
        hfeed__free(raw);
        hfeed__free(row_out);
        return HFEED__FAIL(err, HFEED_E_NOMEM, "reader: out of memory for the row probe");
    }
    uint64_t state = 0x9e3779b97f4a7c15u;
    double by_pread[ROUNDS], by_map[ROUNDS];
    bool ok = true;
    for (unsigned r = 0; r < ROUNDS && ok; r++) { /* alternating: noise hits both ways */
        by_pread[r] = time_rows(f, s, false, &state, raw, row_out);
        by_map[r] = time_rows(f, s, true, &state, raw, row_out);
        ok = by_pread[r] > 0 && by_map[r] > 0;
    }
    hfeed__free(raw);
    hfeed__free(row_out);
    if (!ok) return HFEED_OK;
    /* The fastest round of each: whatever else runs on the machine only adds time. */
    qsort(by_pread, ROUNDS, sizeof *by_pread, by_value);
    qsort(by_map, ROUNDS, sizeof *by_map, by_value);
    out->probed = true;
    out->pread_ns = by_pread[0];
    out->map_ns = by_map[0];
    out->use_map = out->map_ns < MAP_MARGIN * out->pread_ns;
    return HFEED_OK;
}
