/* chunkcache: a fixed pool of decoded chunks shared by the workers (design in chunkcache.h).
 *
 * Data structures, all guarded by `mu`: `entries` (the pool), a chained hash from key to entry
 * (`buckets` + entry.next_in_bucket), a stack of free entries, and the READY entries nobody
 * references, each on one of NLISTS doubly linked lists (head = oldest). A referenced or
 * DECODING entry is on none of them, so it can never be reused under a reader.
 *
 * Foresight: `need[key]` has bit (seq % 64) set while batch seq is expected to use the key and
 * has not yet. Every pending seq lies in [base, base + 64), base = now - lag for whichever batch
 * `now` is calling (chunkcache.h gives the bound), so the pending seq nearest base is the key's
 * next use. An idle entry whose key some batch needs sits on list (next use % 64); one that no
 * batch in sight needs sits on list UNNEEDED, the only list without foresight (which is plain
 * LRU). Eviction takes the oldest UNNEEDED entry, else the head of the list of the farthest next
 * use: 64 lists to look at, whatever the number of entries. */
#include "chunkcache.h"

#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"

#define NONE UINT32_MAX
#define UNNEEDED 64u           /* the list of idle entries no batch in sight needs */
#define NLISTS (UNNEEDED + 1u) /* lists 0..63: next use at a seq of that value mod 64 */

enum entry_state { ENTRY_FREE, ENTRY_DECODING, ENTRY_READY };

struct entry {
    uint64_t key;
    enum entry_state state;
    uint32_t refs;
    uint32_t next_in_bucket;
    uint32_t prev, next;
    uint32_t list; /* which list the entry is on, when idle */
    unsigned char *data;
};

struct list {
    uint32_t head, tail; /* oldest, newest */
};

struct hfeed__chunkcache {
    pthread_mutex_t mu;
    pthread_cond_t decoded; /* an entry left DECODING */
    struct entry *entries;
    uint32_t nentries;
    uint32_t *buckets; /* nbuckets heads, NONE = empty */
    uint32_t nbuckets; /* a power of two */
    uint32_t *free_stack;
    uint32_t nfree;
    struct list lists[NLISTS];
    uint64_t *need; /* nkeys masks (see the top); NULL: no foresight */
    uint64_t nkeys;
    unsigned lag;
    unsigned char *arena;
    size_t memory;
    struct hfeed__chunkcache_stats stats;
};

static uint32_t bucket_of(const struct hfeed__chunkcache *c, uint64_t key)
{
    key ^= key >> 31;
    key *= 0x9e3779b97f4a7c15u;
    return (uint32_t)(key >> 32) & (c->nbuckets - 1);
}

static uint32_t lookup(const struct hfeed__chunkcache *c, uint64_t key)
{
    uint32_t i = c->buckets[bucket_of(c, key)];
    while (i != NONE && c->entries[i].key != key)
        i = c->entries[i].next_in_bucket;
    return i;
}

static void hash_insert(struct hfeed__chunkcache *c, uint32_t i)
{
    const uint32_t b = bucket_of(c, c->entries[i].key);
    c->entries[i].next_in_bucket = c->buckets[b];
    c->buckets[b] = i;
}

static void hash_remove(struct hfeed__chunkcache *c, uint32_t i)
{
    uint32_t *link = &c->buckets[bucket_of(c, c->entries[i].key)];
    while (*link != i)
        link = &c->entries[*link].next_in_bucket;
    *link = c->entries[i].next_in_bucket;
}

static void list_remove(struct hfeed__chunkcache *c, uint32_t i)
{
    struct entry *e = &c->entries[i];
    struct list *l = &c->lists[e->list];
    if (e->prev != NONE)
        c->entries[e->prev].next = e->next;
    else
        l->head = e->next;
    if (e->next != NONE)
        c->entries[e->next].prev = e->prev;
    else
        l->tail = e->prev;
    e->prev = e->next = NONE;
}

static void list_append(struct hfeed__chunkcache *c, uint32_t i, uint32_t which)
{
    struct entry *e = &c->entries[i];
    struct list *l = &c->lists[which];
    e->list = which;
    e->prev = l->tail;
    e->next = NONE;
    if (l->tail != NONE)
        c->entries[l->tail].next = i;
    else
        l->head = i;
    l->tail = i;
}

/* The list an idle entry for key belongs on, seen from batch `now` (see the top). */
static uint32_t list_for(const struct hfeed__chunkcache *c, uint64_t key, uint64_t now)
{
    if (c->need == NULL || key >= c->nkeys || c->need[key] == 0) return UNNEEDED;
    const unsigned base = (unsigned)((now - c->lag) & 63u);
    const uint64_t m = c->need[key];
    const uint64_t rotated = base == 0 ? m : m >> base | m << (64u - base);
    return (uint32_t)((base + (unsigned)__builtin_ctzll(rotated)) & 63u);
}

/* Puts an entry nobody references any more on its list. */
static void park(struct hfeed__chunkcache *c, uint32_t i, uint64_t now)
{
    list_append(c, i, list_for(c, c->entries[i].key, now));
}

static void make_free(struct hfeed__chunkcache *c, uint32_t i)
{
    c->entries[i].state = ENTRY_FREE;
    c->entries[i].refs = 0;
    c->free_stack[c->nfree++] = i;
}

/* A free entry, else an idle one: the oldest that no batch in sight needs, else the oldest of
 * those whose next use is farthest from `now` (Belady's rule); NONE when every entry is busy. */
static uint32_t take_entry(struct hfeed__chunkcache *c, uint64_t now)
{
    if (c->nfree > 0) return c->free_stack[--c->nfree];
    uint32_t i = c->lists[UNNEEDED].head;
    const unsigned base = (unsigned)((now - c->lag) & 63u);
    for (unsigned d = 64; i == NONE && c->need != NULL && d-- > 0;)
        i = c->lists[(base + d) & 63u].head;
    if (i == NONE) return NONE;
    list_remove(c, i);
    hash_remove(c, i);
    return i;
}

hfeed_status hfeed__chunkcache_create(size_t budget, size_t entry_bytes, uint64_t nkeys,
                                      unsigned lag, struct hfeed__chunkcache **out,
                                      struct hfeed__err *err)
{
    *out = NULL;
    struct hfeed__chunkcache *c = hfeed__calloc(1, sizeof *c);
    if (c == NULL) return HFEED__FAIL(err, HFEED_E_NOMEM, "chunk cache: out of memory");
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->decoded, NULL);
    for (uint32_t l = 0; l < NLISTS; l++)
        c->lists[l].head = c->lists[l].tail = NONE;
    const size_t n = entry_bytes > 0 ? budget / entry_bytes : 0;
    /* At most 2^30 entries, so that 2 * nentries buckets fit a uint32_t. */
    c->nentries = n < ((size_t)1 << 30) ? (uint32_t)n : (uint32_t)1 << 30;
    c->nbuckets = 1;
    while (c->nbuckets < 2 * c->nentries)
        c->nbuckets *= 2;
    c->entries = hfeed__calloc(c->nentries, sizeof *c->entries);
    c->buckets = hfeed__alloc(c->nbuckets * sizeof *c->buckets);
    c->free_stack = hfeed__alloc(c->nentries * sizeof *c->free_stack);
    c->arena = hfeed__alloc_aligned(c->nentries * entry_bytes);
    /* Foresight only pays where something is evicted: when the entries cannot hold every key. */
    const bool foresee = nkeys > c->nentries && c->nentries > 0 && lag <= HFEED__CHUNKCACHE_MAX_LAG;
    if (foresee) {
        c->need = hfeed__calloc(nkeys, sizeof *c->need);
        c->nkeys = nkeys;
        c->lag = lag;
    }
    if (c->entries == NULL || c->buckets == NULL || c->free_stack == NULL || c->arena == NULL ||
        (foresee && c->need == NULL)) {
        hfeed__chunkcache_destroy(c);
        return HFEED__FAIL(err, HFEED_E_NOMEM, "chunk cache: out of memory for %zu bytes", budget);
    }
    c->memory = c->nentries * entry_bytes + (size_t)c->nkeys * sizeof *c->need;
    for (uint32_t b = 0; b < c->nbuckets; b++)
        c->buckets[b] = NONE;
    for (uint32_t i = c->nentries; i-- > 0;) {
        c->entries[i].data = c->arena + (size_t)i * entry_bytes;
        c->entries[i].prev = c->entries[i].next = NONE;
        c->entries[i].list = UNNEEDED;
        make_free(c, i);
    }
    *out = c;
    return HFEED_OK;
}

unsigned hfeed__chunkcache_horizon(unsigned slots)
{
    const unsigned older = slots > 0 ? slots - 1u : 0u;
    if (older >= HFEED__CHUNKCACHE_MAX_LAG) return 0u;
    const unsigned room = HFEED__CHUNKCACHE_MAX_LAG - older;
    return room < HFEED__CHUNKCACHE_HORIZON ? room : HFEED__CHUNKCACHE_HORIZON;
}

uint64_t hfeed__chunkcache_entries(size_t budget, double total, uint64_t chunks)
{
    if (total <= (double)budget) return chunks;
    return (uint64_t)floor((double)budget / total * (double)chunks);
}

void hfeed__chunkcache_split(size_t budget, size_t n, const uint64_t *chunks,
                             const size_t *entry_bytes, uint64_t *entries)
{
    double total = 0.0; /* bytes to hold every chunk of every field; a double: may pass 2^64 */
    for (size_t k = 0; k < n; k++)
        total += (double)chunks[k] * (double)entry_bytes[k];
    double used = 0.0;
    for (size_t k = 0; k < n; k++) {
        entries[k] = hfeed__chunkcache_entries(budget, total, chunks[k]);
        used += (double)entries[k] * (double)entry_bytes[k];
    }
    /* floor() of a product rounded up by one ulp can add an entry: take it back. */
    for (size_t k = 0; used > (double)budget && k < n; k++) {
        if (entries[k] == 0) continue;
        entries[k]--;
        used -= (double)entry_bytes[k];
    }
}

uint64_t hfeed__chunkcache_auto_mb(bool global_shuffle, double all_bytes, double limit_bytes)
{
    const double mib = (double)(1u << 20);
    const uint64_t need = (uint64_t)ceil(all_bytes / mib);
    if (!global_shuffle || need <= HFEED__CACHE_AUTO_BASE_MB) return HFEED__CACHE_AUTO_BASE_MB;
    if (all_bytes <= limit_bytes) return need;
    const uint64_t most = (uint64_t)floor(limit_bytes / mib);
    return most > HFEED__CACHE_AUTO_BASE_MB ? most : HFEED__CACHE_AUTO_BASE_MB;
}

/* The most chunk rows a run of `rows` consecutive rows touches, for chunks of chunk_rows. */
static uint64_t span(uint64_t rows, uint64_t chunk_rows)
{
    return rows == 0 ? 0 : (rows - 1 + chunk_rows - 1) / chunk_rows + 1;
}

uint64_t hfeed__chunkcache_order_bytes(const struct hfeed__cache_need *fields, size_t n,
                                       unsigned workers, uint64_t batch_rows, unsigned window,
                                       uint64_t block_rows)
{
    double bytes = 0.0; /* a double: huge chunk counts must not wrap */
    for (size_t k = 0; k < n; k++) {
        const struct hfeed__cache_need *f = &fields[k];
        const uint64_t rows = f->chunk_rows > 0 ? f->chunk_rows : 1;
        double entries = (double)workers * (double)span(batch_rows, rows);
        if (window > 0) entries += 2.0 * window * (double)span(block_rows, rows);
        entries *= (double)(f->chunks_across > 0 ? f->chunks_across : 1);
        if (entries > (double)f->nchunks) entries = (double)f->nchunks;
        bytes += entries * (double)f->entry_bytes;
    }
    return bytes < 0x1p63 ? (uint64_t)bytes : (uint64_t)1 << 63;
}

/* The number in a cgroup limit file, in bytes; false when absent or "max". */
static bool read_limit(const char *path, double *out)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) return false;
    char text[64] = "";
    const bool got = fgets(text, sizeof text, f) != NULL;
    fclose(f);
    char *end = NULL;
    const double v = got ? strtod(text, &end) : 0.0;
    if (!got || end == text || v <= 0.0) return false;
    *out = v;
    return true;
}

/* The lowest limit in `file` of cgroup `path` (under `base`) and of each of its ancestors. */
static double lowest_along(const char *base, const char *path, const char *file)
{
    double lowest = INFINITY, v;
    char dir[PATH_MAX], at[PATH_MAX + 64];
    snprintf(dir, sizeof dir, "%s", path);
    for (;;) {
        const size_t n = strlen(dir);
        snprintf(at, sizeof at, "%s%s/%s", base, n > 1 ? dir : "", file);
        if (read_limit(at, &v) && v < lowest) lowest = v;
        char *slash = strrchr(dir, '/');
        if (slash == NULL || n <= 1) return lowest;
        slash[slash == dir ? 1 : 0] = '\0'; /* "/a/b" -> "/a" -> "/" */
    }
}

double hfeed__chunkcache_cgroup_limit(const char *root)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/proc/self/cgroup", root);
    FILE *f = fopen(path, "r");
    if (f == NULL) return INFINITY;
    double lowest = INFINITY;
    char line[PATH_MAX + 256], base[PATH_MAX];
    while (fgets(line, sizeof line, f) != NULL) {
        /* "hierarchy-id:controllers:path\n" */
        line[strcspn(line, "\n")] = '\0';
        char *c1 = strchr(line, ':'), *c2 = c1 != NULL ? strchr(c1 + 1, ':') : NULL;
        if (c2 == NULL) continue;
        *c1 = *c2 = '\0';
        const char *controllers = c1 + 1, *cg = c2 + 1;
        double v;
        if (strcmp(line, "0") == 0 && controllers[0] == '\0') { /* v2 */
            snprintf(base, sizeof base, "%s/sys/fs/cgroup", root);
            v = lowest_along(base, cg, "memory.max");
        } else {
            char list[256];
            snprintf(list, sizeof list, ",%s,", controllers);
            if (strstr(list, ",memory,") == NULL) continue;
            snprintf(base, sizeof base, "%s/sys/fs/cgroup/memory", root);
            v = lowest_along(base, cg, "memory.limit_in_bytes");
        }
        if (v < lowest) lowest = v;
    }
    fclose(f);
    return lowest;
}

double hfeed__chunkcache_usable_memory(void)
{
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || page <= 0) return 0.0;
    /* A container or a batch job may get much less than the machine has. */
    return fmin((double)pages * (double)page, hfeed__chunkcache_cgroup_limit(""));
}

double hfeed__chunkcache_auto_limit(void)
{
    static const char *const local_ranks[] = {"LOCAL_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_SIZE",
                                              "SLURM_NTASKS_PER_NODE", "MPI_LOCALNRANKS"};
    const double memory = hfeed__chunkcache_usable_memory();
    if (memory <= 0.0) return 0.0; /* unknown: "auto" stays at its base */
    unsigned long ranks = 1;
    for (size_t i = 0; i < sizeof local_ranks / sizeof local_ranks[0]; i++) {
        const char *v = getenv(local_ranks[i]);
        /* SLURM may say "4(x2)": the leading number is this node's. */
        const unsigned long n = v != NULL ? strtoul(v, NULL, 10) : 0;
        if (n > 0) {
            ranks = n;
            break;
        }
    }
    return memory / 8.0 / (double)ranks;
}

void hfeed__chunkcache_destroy(struct hfeed__chunkcache *c)
{
    if (c == NULL) return;
    hfeed__free(c->need);
    hfeed__free(c->arena);
    hfeed__free(c->free_stack);
    hfeed__free(c->buckets);
    hfeed__free(c->entries);
    pthread_cond_destroy(&c->decoded);
    pthread_mutex_destroy(&c->mu);
    hfeed__free(c);
}

/* Decodes into entry i (DECODING, referenced by us) outside the lock; lock held on entry and
 * on return. On failure the entry goes back to the free stack and waiters look again. */
static hfeed_status decode_into(struct hfeed__chunkcache *c, uint32_t i, hfeed__decode_fn decode,
                                void *ctx, struct hfeed__err *err)
{
    pthread_mutex_unlock(&c->mu);
    const hfeed_status st = decode(ctx, c->entries[i].data, err);
    pthread_mutex_lock(&c->mu);
    if (st == HFEED_OK) {
        c->entries[i].state = ENTRY_READY;
    } else {
        hash_remove(c, i);
        make_free(c, i);
    }
    pthread_cond_broadcast(&c->decoded);
    return st;
}

/* Batch seq no longer waits for key: it is using it now. */
static void consume(struct hfeed__chunkcache *c, uint64_t key, uint64_t seq)
{
    if (c->need != NULL && key < c->nkeys) c->need[key] &= ~((uint64_t)1 << (seq & 63u));
}

hfeed_status hfeed__chunkcache_acquire(struct hfeed__chunkcache *c, uint64_t key, uint64_t seq,
                                       bool wait, hfeed__decode_fn decode, void *ctx,
                                       unsigned char *own, const unsigned char **data, void **token,
                                       struct hfeed__err *err)
{
    *data = NULL;
    *token = NULL;
    pthread_mutex_lock(&c->mu);
    uint32_t i = lookup(c, key);
    while (i != NONE && c->entries[i].state == ENTRY_DECODING) {
        if (!wait) {
            pthread_mutex_unlock(&c->mu);
            return HFEED_E_BUSY;
        }
        pthread_cond_wait(&c->decoded, &c->mu);
        i = lookup(c, key);
    }
    hfeed_status st = HFEED_OK;
    consume(c, key, seq);
    if (i != NONE) { /* READY */
        if (c->entries[i].refs++ == 0) list_remove(c, i);
        c->stats.hits++;
    } else {
        i = take_entry(c, seq);
        if (i == NONE) {
            c->stats.uncached++;
            pthread_mutex_unlock(&c->mu);
            st = decode(ctx, own, err);
            *data = st == HFEED_OK ? own : NULL;
            return st;
        }
        struct entry *e = &c->entries[i];
        e->key = key;
        e->state = ENTRY_DECODING;
        e->refs = 1;
        hash_insert(c, i);
        c->stats.decodes++;
        st = decode_into(c, i, decode, ctx, err);
    }
    if (st == HFEED_OK) {
        *data = c->entries[i].data;
        *token = &c->entries[i];
    }
    pthread_mutex_unlock(&c->mu);
    return st;
}

void hfeed__chunkcache_release(struct hfeed__chunkcache *c, void *token, uint64_t seq)
{
    if (token == NULL) return;
    struct entry *e = token;
    const uint32_t i = (uint32_t)(e - c->entries);
    pthread_mutex_lock(&c->mu);
    if (--e->refs == 0) park(c, i, seq);
    pthread_mutex_unlock(&c->mu);
}

bool hfeed__chunkcache_holds(struct hfeed__chunkcache *c, uint64_t key)
{
    pthread_mutex_lock(&c->mu);
    const bool held = lookup(c, key) != NONE;
    pthread_mutex_unlock(&c->mu);
    return held;
}

bool hfeed__chunkcache_foresees(const struct hfeed__chunkcache *c)
{
    return c->need != NULL;
}

void hfeed__chunkcache_expect(struct hfeed__chunkcache *c, uint64_t seq, const uint64_t *keys,
                              size_t n)
{
    if (c->need == NULL) return;
    const uint64_t bit = (uint64_t)1 << (seq & 63u);
    pthread_mutex_lock(&c->mu);
    for (size_t j = 0; j < n; j++) {
        const uint64_t key = keys[j];
        if (key >= c->nkeys || (c->need[key] & bit) != 0) continue;
        c->need[key] |= bit;
        /* An idle entry may now be needed sooner: move it to its new list. */
        const uint32_t i = lookup(c, key);
        if (i == NONE || c->entries[i].state != ENTRY_READY || c->entries[i].refs > 0) continue;
        const uint32_t l = list_for(c, key, seq);
        if (l == c->entries[i].list) continue;
        list_remove(c, i);
        list_append(c, i, l);
    }
    pthread_mutex_unlock(&c->mu);
}

void hfeed__chunkcache_forget(struct hfeed__chunkcache *c)
{
    if (c->need == NULL) return;
    pthread_mutex_lock(&c->mu);
    memset(c->need, 0, c->nkeys * sizeof *c->need);
    for (uint32_t l = 0; l < UNNEEDED; l++) {
        while (c->lists[l].head != NONE) {
            const uint32_t i = c->lists[l].head;
            list_remove(c, i);
            list_append(c, i, UNNEEDED);
        }
    }
    pthread_mutex_unlock(&c->mu);
}

size_t hfeed__chunkcache_memory(const struct hfeed__chunkcache *c)
{
    return c->memory;
}

void hfeed__chunkcache_get_stats(struct hfeed__chunkcache *c, struct hfeed__chunkcache_stats *out)
{
    pthread_mutex_lock(&c->mu);
    *out = c->stats;
    pthread_mutex_unlock(&c->mu);
}
