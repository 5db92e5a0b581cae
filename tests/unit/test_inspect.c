/* Unit tests of loader/costmodel (the read-amplification model, pure) and loader/inspect (the
 * hfeed_report_* API): the model's exact cases (no compression, everything cached, no cache on
 * a sequential epoch), its monotonicity in the cache, sharding, the cache shared by two fields,
 * the H5Dread path's own cache; the report's descriptions of fixture files, a file named twice
 * (described once, modelled as the config reads it), its argument checks and an
 * allocation-failure sweep of hfeed_report_create() with a config (ASan checks that every
 * failed create frees what it built). tests/tool/test_inspect.py checks the model against the
 * running loader. */
#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "chunkcache.h"
#include "costmodel.h"
#include "fixtures.h"
#include "h5feed.h"

#define MIB ((uint64_t)1 << 20)

/* A filtered direct source of `rows` rows of 256 float64, chunks of 64 rows (128 KiB). */
static struct hfeed__cost_source gz_source(uint64_t rows)
{
    return (struct hfeed__cost_source){.rows = rows,
                                       .row_bytes = 2048,
                                       .filtered = true,
                                       .direct = true,
                                       .group_rows = 64,
                                       .group_chunks = 1,
                                       .chunk_bytes = 64 * 2048,
                                       .group_stored = 100000.0,
                                       .block_rows = 64};
}

static struct hfeed__cost_params one_source(const struct hfeed__cost_source *s, uint64_t cache)
{
    return (struct hfeed__cost_params){.total = s->rows,
                                       .samples = s->rows,
                                       .batch_size = 32,
                                       .window = 4,
                                       .cache_bytes = cache,
                                       .nfields = 1,
                                       .nfiles = 1,
                                       .src = s};
}

Test(costmodel, uncompressed_reads_each_byte_once)
{
    const struct hfeed__cost_source s = {.rows = 1000, .row_bytes = 40, .direct = true,
                                         .block_rows = 100};
    const struct hfeed__cost_params p = one_source(&s, 0);
    hfeed_shuffle_cost out[HFEED_SHUFFLE_MODES];
    struct hfeed__cost_cache cache;
    hfeed__cost_model(&p, out, &cache);
    cr_assert_eq(cache.entries, 0);
    for (int m = 0; m < HFEED_SHUFFLE_MODES; m++) {
        cr_expect_eq(out[m].chunk_decodes, 0.0);
        cr_expect_eq(out[m].bytes_read, 40000.0);
        cr_expect_eq(out[m].read_amplification, 1.0);
        cr_expect_eq(out[m].decode_amplification, 0.0);
    }
}

Test(costmodel, every_chunk_once_when_all_fit)
{
    const struct hfeed__cost_source s = gz_source(4096);
    const struct hfeed__cost_params p = one_source(&s, 8 * MIB); /* 64 entries: all 64 chunks */
    hfeed_shuffle_cost out[HFEED_SHUFFLE_MODES];
    struct hfeed__cost_cache cache;
    hfeed__cost_model(&p, out, &cache);
    cr_assert_eq(cache.entries, 64);
    cr_expect_float_eq(cache.bytes_all, 64.0 * 64 * 2048, 1e-6);
    for (int m = 0; m < HFEED_SHUFFLE_MODES; m++) {
        cr_expect_float_eq(out[m].chunk_decodes, 64.0, 1e-6, "mode %d: %f", m,
                           out[m].chunk_decodes);
        cr_expect_float_eq(out[m].decode_amplification, 1.0, 1e-9);
        cr_expect_float_eq(out[m].bytes_read, 64 * 100000.0, 1e-3);
    }
}

Test(costmodel, chunk_shuffle_decodes_once_when_a_window_fits)
{
    const struct hfeed__cost_source s = gz_source(4096);
    const struct hfeed__cost_params p = one_source(&s, 1 * MIB); /* 8 entries, window needs 4 */
    hfeed_shuffle_cost out[HFEED_SHUFFLE_MODES];
    struct hfeed__cost_cache cache;
    hfeed__cost_model(&p, out, &cache);
    cr_assert_eq(cache.entries, 8);
    cr_expect_float_eq(cache.window_need, 4.0, 1e-9);
    cr_expect_float_eq(out[HFEED_SHUFFLE_CHUNK].chunk_decodes, 64.0, 1e-6);
    cr_expect_float_eq(out[HFEED_SHUFFLE_NONE].chunk_decodes, 64.0, 1e-6);
    /* 8 entries against 25 chunks per batch: the sorted scans evict what the next batch needs
     * first, so nearly every use misses: 128 batches x 25.3 chunks. */
    const double per_batch = 64.0 * -expm1(32.0 * log1p(-1.0 / 64.0));
    cr_expect_float_eq(out[HFEED_SHUFFLE_GLOBAL].chunk_decodes, 128.0 * per_batch, 5.0, "%f",
                       out[HFEED_SHUFFLE_GLOBAL].chunk_decodes);
}

Test(costmodel, no_cache_sequential_counts_batch_chunk_pairs)
{
    /* Batches of 48 rows over chunks of 64: [0,48) [48,96) [96,144) [144,192) touch 1, 2, 2, 1
     * chunks. */
    struct hfeed__cost_source s = gz_source(192);
    struct hfeed__cost_params p = one_source(&s, 0);
    p.batch_size = 48;
    hfeed_shuffle_cost out[HFEED_SHUFFLE_MODES];
    struct hfeed__cost_cache cache;
    hfeed__cost_model(&p, out, &cache);
    cr_assert_eq(cache.entries, 0);
    cr_expect_float_eq(out[HFEED_SHUFFLE_NONE].chunk_decodes, 6.0, 1e-9, "%f",
                       out[HFEED_SHUFFLE_NONE].chunk_decodes);
    /* Global without a cache: a decode per run of consecutive rows; 48 of 192 rows sorted
     * leave about 11.6 neighbours per batch, so about 4 x 36.4 runs. */
    cr_expect_float_eq(out[HFEED_SHUFFLE_GLOBAL].chunk_decodes,
                       4.0 * (48.0 - 47.0 * (48.0 / 192.0) * (63.0 / 64.0)), 1e-6);
    cr_expect_leq(out[HFEED_SHUFFLE_GLOBAL].chunk_decodes, 192.0);
}

Test(costmodel, global_decodes_fall_as_the_cache_grows)
{
    const struct hfeed__cost_source s = gz_source(65536); /* 1024 chunks */
    double last = INFINITY;
    for (uint64_t mb = 1; mb <= 128; mb *= 2) {
        const struct hfeed__cost_params p = one_source(&s, mb * MIB);
        hfeed_shuffle_cost out[HFEED_SHUFFLE_MODES];
        struct hfeed__cost_cache cache;
        hfeed__cost_model(&p, out, &cache);
        const double d = out[HFEED_SHUFFLE_GLOBAL].chunk_decodes;
        cr_expect_leq(d, last + 1e-6, "cache %llu MiB: %f decodes > %f", (unsigned long long)mb,
                      d, last);
        cr_expect_geq(d, 1024.0 - 1e-6);
        last = d;
    }
    cr_expect_float_eq(last, 1024.0, 1e-3); /* 128 MiB holds all 1024 chunks */
}

/* The loader's caches see the next batches' chunks (chunkcache.h: foresight) and keep those
 * needed soonest, where LRU keeps what the sorted scans evict first. */
Test(costmodel, foresight_beats_lru_and_keeps_the_model_bounds)
{
    const struct hfeed__cost_source s = gz_source(4096); /* 64 chunks of 128 KiB */
    double last = INFINITY;
    for (uint64_t mib = 1; mib <= 8; mib++) { /* 8 .. 64 entries */
        struct hfeed__cost_params p = one_source(&s, mib * MIB);
        hfeed_shuffle_cost lru[HFEED_SHUFFLE_MODES], seen[HFEED_SHUFFLE_MODES];
        struct hfeed__cost_cache cache;
        hfeed__cost_model(&p, lru, &cache);
        p.horizon = HFEED__CHUNKCACHE_HORIZON;
        hfeed__cost_model(&p, seen, &cache);
        const double g = seen[HFEED_SHUFFLE_GLOBAL].chunk_decodes;
        cr_expect_leq(g, lru[HFEED_SHUFFLE_GLOBAL].chunk_decodes, "%llu MiB",
                      (unsigned long long)mib);
        cr_expect_geq(g, 64.0 - 1e-9, "%llu MiB: fewer decodes than chunks",
                      (unsigned long long)mib);
        cr_expect_leq(g, last, "%llu MiB: more decodes with a bigger cache",
                      (unsigned long long)mib);
        last = g;
        if (mib < 8)
            cr_expect_lt(g, 0.8 * lru[HFEED_SHUFFLE_GLOBAL].chunk_decodes, "%llu MiB: %f vs %f",
                         (unsigned long long)mib, g, lru[HFEED_SHUFFLE_GLOBAL].chunk_decodes);
        else
            cr_expect_float_eq(g, 64.0, 1e-6);
    }
    /* Against a simulation of the cache's policy (bench/cache_sim.py, its defaults: a
     * global-shuffle epoch of 131072 samples over 512 chunks of 256 rows, batches of 256, 8
     * batches of foresight): 52,159 decodes with 128 entries, 25,874 with 256, 9,800 with 384. */
    struct hfeed__cost_source big = gz_source(131072);
    big.group_rows = big.block_rows = 256;
    big.chunk_bytes = 256 * 2048;
    const double simulated[3] = {52159.0, 25874.0, 9800.0};
    for (int i = 0; i < 3; i++) {
        struct hfeed__cost_params p = one_source(&big, (uint64_t)(i + 1) * 128 * big.chunk_bytes);
        p.batch_size = 256;
        p.horizon = HFEED__CHUNKCACHE_HORIZON;
        hfeed_shuffle_cost out[HFEED_SHUFFLE_MODES];
        struct hfeed__cost_cache cache;
        hfeed__cost_model(&p, out, &cache);
        cr_expect_eq(cache.entries, (uint64_t)(i + 1) * 128);
        const double g = out[HFEED_SHUFFLE_GLOBAL].chunk_decodes;
        cr_expect(fabs(g - simulated[i]) <= 0.08 * simulated[i],
                  "%d entries: model %f, simulated %f", (i + 1) * 128, g, simulated[i]);
    }
}

Test(costmodel, a_rank_pays_for_its_share)
{
    const struct hfeed__cost_source s = gz_source(4096);
    struct hfeed__cost_params p = one_source(&s, 1 * MIB);
    p.samples = 2048; /* world_size 2 */
    hfeed_shuffle_cost out[HFEED_SHUFFLE_MODES];
    struct hfeed__cost_cache cache;
    hfeed__cost_model(&p, out, &cache);
    cr_expect_float_eq(out[HFEED_SHUFFLE_CHUNK].chunk_decodes, 32.0, 1e-6);
    cr_expect_float_eq(out[HFEED_SHUFFLE_CHUNK].decode_amplification, 1.0, 1e-9);
}

Test(costmodel, two_fields_split_the_cache_by_the_bytes_of_their_chunks)
{
    /* Chunks of 128 and 256 KiB, 64 of each: 24 MiB in all. 1 MiB is 1/24 of that: 2 entries
     * each, and a window needs 4 of each. */
    struct hfeed__cost_source src[2] = {gz_source(4096), gz_source(4096)};
    src[1].row_bytes = 4096;
    src[1].chunk_bytes = 64 * 4096;
    struct hfeed__cost_params p = one_source(&src[0], 1 * MIB);
    p.nfields = 2;
    hfeed_shuffle_cost out[2 * HFEED_SHUFFLE_MODES];
    struct hfeed__cost_cache cache;
    hfeed__cost_model(&p, out, &cache);
    cr_assert_eq(cache.entries, 4);
    cr_expect_float_eq(cache.bytes_all, 24.0 * MIB, 1e-6);
    cr_expect_float_eq(cache.chunks, 128.0, 1e-9);
    cr_expect_float_eq(cache.window_need, 8.0, 1e-9);
    cr_expect_float_eq(cache.bytes_window, 4.0 * 64 * 2048 + 4.0 * 64 * 4096, 1e-6);
    cr_expect_gt(out[HFEED_SHUFFLE_CHUNK].chunk_decodes, 64.0);
    /* With 8 MiB (a third: 21 entries each) the window fits again. */
    p.cache_bytes = 8 * MIB;
    hfeed__cost_model(&p, out, &cache);
    cr_assert_eq(cache.entries, 42);
    cr_expect_float_eq(out[HFEED_SHUFFLE_CHUNK].chunk_decodes, 64.0, 1e-6);
    cr_expect_float_eq(out[HFEED_SHUFFLE_MODES + HFEED_SHUFFLE_CHUNK].chunk_decodes, 64.0, 1e-6);
}

Test(costmodel, small_chunks_take_small_entries)
{
    /* 64 chunks of 128 KiB and 64 of 512 bytes (labels): 9 MiB holds both fields' chunks, so
     * global shuffle decodes each once. Entries the size of the big chunk would be 72 for 128
     * chunks, and global shuffle would thrash them. */
    struct hfeed__cost_source src[2] = {gz_source(4096), gz_source(4096)};
    src[1].row_bytes = 8;
    src[1].chunk_bytes = 64 * 8;
    struct hfeed__cost_params p = one_source(&src[0], 9 * MIB);
    p.nfields = 2;
    hfeed_shuffle_cost out[2 * HFEED_SHUFFLE_MODES];
    struct hfeed__cost_cache cache;
    hfeed__cost_model(&p, out, &cache);
    cr_assert_eq(cache.entries, 128);
    for (size_t k = 0; k < 2; k++)
        cr_expect_float_eq(out[k * HFEED_SHUFFLE_MODES + HFEED_SHUFFLE_GLOBAL].chunk_decodes, 64.0,
                           1e-6, "field %zu: %f", k,
                           out[k * HFEED_SHUFFLE_MODES + HFEED_SHUFFLE_GLOBAL].chunk_decodes);
}

Test(chunkcache, auto_holds_every_chunk_it_can_for_global_shuffle)
{
    const double mib = 1048576.0, gib = 1024 * mib;
    /* Only global shuffle gains from holding every chunk; none and chunk keep the base. */
    cr_expect_eq(hfeed__chunkcache_auto_mb(false, 1025 * mib, 8 * gib), 256);
    cr_expect_eq(hfeed__chunkcache_auto_mb(true, 1025 * mib, 8 * gib), 1025);
    cr_expect_eq(hfeed__chunkcache_auto_mb(true, 1024 * mib + 1, 8 * gib), 1025, "rounded up");
    /* Never below the base, never over the limit: as many chunks as the limit holds. */
    cr_expect_eq(hfeed__chunkcache_auto_mb(true, 100 * mib, 8 * gib), 256);
    cr_expect_eq(hfeed__chunkcache_auto_mb(true, 0.0, 8 * gib), 256);
    cr_expect_eq(hfeed__chunkcache_auto_mb(true, 9 * gib, 8 * gib), 8192);
    cr_expect_eq(hfeed__chunkcache_auto_mb(true, 8 * gib, 8 * gib), 8192);
    cr_expect_eq(hfeed__chunkcache_auto_mb(true, 9 * gib, 8 * gib + mib / 2), 8192, "floor");
    cr_expect_eq(hfeed__chunkcache_auto_mb(true, 9 * gib, 100 * mib), 256, "limit below base");
    cr_expect_eq(hfeed__chunkcache_auto_mb(false, 9 * gib, 8 * gib), 256);
}

/* Writes text to dir/rel, creating the folders on the way. */
static void put(const char *dir, const char *rel, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    for (char *p = path + strlen(dir) + 1; (p = strchr(p, '/')) != NULL; p++) {
        *p = '\0';
        mkdir(path, 0700);
        *p = '/';
    }
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s", path);
    fputs(text, f);
    fclose(f);
}

Test(chunkcache, cgroup_limits_bound_auto)
{
    char root[] = "/tmp/h5feed-cgroup-XXXXXX";
    cr_assert_not_null(mkdtemp(root));
    /* No /proc/self/cgroup: no limit. */
    cr_expect(isinf(hfeed__chunkcache_cgroup_limit(root)));
    /* v2: the lowest memory.max along the path; "max" is none. */
    put(root, "proc/self/cgroup", "0::/job/step\n");
    put(root, "sys/fs/cgroup/job/step/memory.max", "max\n");
    put(root, "sys/fs/cgroup/job/memory.max", "1073741824\n");
    cr_expect_float_eq(hfeed__chunkcache_cgroup_limit(root), 1073741824.0, 0.5);
    put(root, "sys/fs/cgroup/job/step/memory.max", "536870912\n");
    cr_expect_float_eq(hfeed__chunkcache_cgroup_limit(root), 536870912.0, 0.5);
    /* v1: the memory controller's line (in a list), memory.limit_in_bytes; the kernel's
     * "unlimited" is just a huge number. */
    put(root, "proc/self/cgroup", "5:cpu,memory:/pod\n3:pids:/\n0::/\n");
    put(root, "sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n");
    put(root, "sys/fs/cgroup/memory/pod/memory.limit_in_bytes", "2147483648\n");
    cr_expect_float_eq(hfeed__chunkcache_cgroup_limit(root), 2147483648.0, 0.5);
    /* A lower limit on the v2 line too ("0::/", the root's memory.max): the lowest wins. */
    put(root, "sys/fs/cgroup/memory.max", "1000000\n");
    cr_expect_float_eq(hfeed__chunkcache_cgroup_limit(root), 1000000.0, 0.5);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    cr_assert_eq(system(cmd), 0);
    /* This machine's real answer never exceeds its physical memory in the limit "auto" uses. */
    const double phys = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
    cr_expect_leq(hfeed__chunkcache_auto_limit(), phys / 8.0 + 1.0);
}

Test(chunkcache, auto_limit_is_an_eighth_of_memory_per_local_rank)
{
    const char *vars[] = {"LOCAL_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_SIZE",
                          "SLURM_NTASKS_PER_NODE", "MPI_LOCALNRANKS"};
    for (size_t i = 0; i < 4; i++)
        unsetenv(vars[i]);
    const double one = hfeed__chunkcache_auto_limit();
    const double phys = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
    cr_expect_float_eq(one, phys / 8.0, 1.0, "%f of %f bytes", one, phys);
    for (size_t i = 0; i < 4; i++) {
        setenv(vars[i], i == 2 ? "4(x2)" : "4", 1);
        cr_expect_float_eq(hfeed__chunkcache_auto_limit(), one / 4.0, 1.0, "%s", vars[i]);
        unsetenv(vars[i]);
    }
    setenv("LOCAL_WORLD_SIZE", "zero", 1); /* not a number: one rank */
    cr_expect_float_eq(hfeed__chunkcache_auto_limit(), one, 1.0);
    unsetenv("LOCAL_WORLD_SIZE");
}

Test(chunkcache, split_gives_every_field_the_same_share_of_its_chunks)
{
    const uint64_t chunks[] = {64, 64, 0, 10};
    const size_t bytes[] = {131072, 512, 1 << 20, 262144};
    uint64_t e[4];
    const size_t all = 64 * 131072 + 64 * 512 + 10 * 262144;
    hfeed__chunkcache_split(all, 4, chunks, bytes, e);
    cr_expect(e[0] == 64 && e[1] == 64 && e[2] == 0 && e[3] == 10, "all fit: %llu %llu %llu %llu",
              (unsigned long long)e[0], (unsigned long long)e[1], (unsigned long long)e[2],
              (unsigned long long)e[3]);
    hfeed__chunkcache_split(all / 2, 4, chunks, bytes, e);
    cr_expect(e[0] == 32 && e[1] == 32 && e[2] == 0 && e[3] == 5, "half: %llu %llu %llu %llu",
              (unsigned long long)e[0], (unsigned long long)e[1], (unsigned long long)e[2],
              (unsigned long long)e[3]);
    for (size_t budget = 0; budget <= all; budget += all / 97 + 1) {
        hfeed__chunkcache_split(budget, 4, chunks, bytes, e);
        size_t used = 0;
        for (size_t k = 0; k < 4; k++) {
            cr_expect_leq(e[k], chunks[k]);
            used += e[k] * bytes[k];
        }
        cr_expect_leq(used, budget, "budget %zu: %zu bytes of entries", budget, used);
        cr_expect_eq(e[0], hfeed__chunkcache_entries(budget, (double)all, chunks[0]),
                     "the split and the model's per-field count agree at %zu", budget);
    }
}

Test(costmodel, hdf5_path_has_its_own_small_cache)
{
    /* 2 MiB chunks on the H5Dread path: HDF5's 1 MiB cache keeps none, whatever cache_mb. */
    struct hfeed__cost_source s = gz_source(4096);
    s.direct = false;
    s.row_bytes = 32768;
    s.chunk_bytes = 64 * 32768;
    const struct hfeed__cost_params p = one_source(&s, 1024 * MIB);
    hfeed_shuffle_cost out[HFEED_SHUFFLE_MODES];
    struct hfeed__cost_cache cache;
    hfeed__cost_model(&p, out, &cache);
    cr_assert_eq(cache.entries, 0, "no direct source: the loader's cache is not used");
    cr_expect_gt(out[HFEED_SHUFFLE_GLOBAL].chunk_decodes, 3500.0);
    cr_expect_float_eq(out[HFEED_SHUFFLE_NONE].chunk_decodes, 128.0, 1e-9); /* 2 per chunk */
}

/* ---- the report API ---- */

TestSuite(inspect, .init = fx_setup, .fini = fx_teardown);

static void write_fixture(void)
{
    const fx_dataset ds[] = {
        {.path = "/x", .kind = FX_FLOAT64, .rows = 100, .ndim = 1, .shape = {8},
         .layout = FX_CHUNKED, .chunk = {10, 8}, .gzip = 3, .shuffle = true},
        {.path = "/g/y", .kind = FX_INT32, .big_endian = true, .rows = 100},
    };
    fx_write_file("a.h5", ds, 2);
    fx_add_string_dataset("a.h5", "/s", 4);
    fx_add_compound_dataset("a.h5", "/c", 4);
    fx_add_scalar_dataset("a.h5", "/k");
}

Test(inspect, describes_fixture_datasets)
{
    write_fixture();
    const char *paths[] = {fx_path("a.h5")};
    hfeed_report *r = NULL;
    char err[HFEED_ERRBUF_SIZE] = "";
    cr_assert_eq(hfeed_report_create(paths, 1, NULL, &r, err, sizeof err), HFEED_OK, "%s", err);
    hfeed_report_info in;
    cr_assert_eq(hfeed_report_get_info(r, &in), HFEED_OK);
    cr_assert_eq(in.files, 1);
    cr_assert_eq(in.datasets, 5); /* /c /g/y /k /s /x, in name order */
    cr_assert_eq(in.fields, 0);
    cr_assert_eq(in.has_config, 0);
    const char *want[] = {"/c", "/g/y", "/k", "/s", "/x"};
    hfeed_dataset_desc d;
    for (size_t i = 0; i < 5; i++) {
        cr_assert_eq(hfeed_report_get_dataset(r, i, &d), HFEED_OK);
        cr_expect_str_eq(d.path, want[i]);
        cr_expect_str_eq(d.file, paths[0]);
        const bool numeric = i == 1 || i == 4;
        cr_expect_eq(d.skipped == NULL, numeric, "%s: skipped %s", d.path, d.skipped);
    }
    cr_assert_eq(hfeed_report_get_dataset(r, 4, &d), HFEED_OK);
    cr_expect_eq(d.dtype, HFEED_DTYPE_FLOAT64);
    cr_expect_eq(d.big_endian, 0);
    cr_expect_eq(d.rank, 2);
    cr_expect_eq(d.shape[0], 100);
    cr_expect_eq(d.shape[1], 8);
    cr_expect_eq(d.layout, HFEED_LAYOUT_CHUNKED);
    cr_expect_eq(d.chunk[0], 10);
    cr_expect_eq(d.chunk_bytes, 10 * 8 * 8);
    cr_expect_eq(d.data_bytes, 100 * 8 * 8);
    cr_assert_eq(d.nfilters, 2);
    cr_expect_str_eq(d.filters[0].name, "shuffle");
    cr_expect_str_eq(d.filters[1].name, "deflate");
    cr_expect_eq(d.filters[1].params[0], 3);
    cr_expect_eq(d.direct, 1);
    cr_expect_str_eq(d.slow_reason, "");
    cr_assert_eq(hfeed_report_get_dataset(r, 1, &d), HFEED_OK);
    cr_expect_eq(d.dtype, HFEED_DTYPE_INT32);
    cr_expect_eq(d.big_endian, 1);
    cr_expect_eq(d.layout, HFEED_LAYOUT_CONTIGUOUS);
    cr_assert_eq(hfeed_report_get_dataset(r, 2, &d), HFEED_OK);
    cr_expect_not_null(strstr(d.skipped, "scalar"), "%s", d.skipped);
    cr_expect_eq(in.warnings, 0);
    cr_expect_eq(hfeed_report_get_dataset(r, 5, &d), HFEED_E_INVALID_ARG);
    cr_expect_null(d.path);
    hfeed_field_cost f;
    cr_expect_eq(hfeed_report_get_field(r, 0, &f), HFEED_E_INVALID_ARG);
    hfeed_warning w;
    cr_expect_eq(hfeed_report_get_warning(r, 0, &w), HFEED_E_INVALID_ARG);
    hfeed_report_destroy(r);
}

Test(inspect, refuses_bad_arguments)
{
    hfeed_report *r = (hfeed_report *)&r;
    char err[HFEED_ERRBUF_SIZE] = "";
    cr_expect_eq(hfeed_report_create(NULL, 0, NULL, &r, err, sizeof err), HFEED_E_INVALID_ARG);
    cr_expect_null(r);
    cr_expect_neq(err[0], '\0');
    const char *paths[] = {"/nonexistent/h5feed.h5"};
    cr_expect_eq(hfeed_report_create(paths, 1, NULL, NULL, NULL, 0), HFEED_E_INVALID_ARG);
    cr_expect_eq(hfeed_report_create(paths, 1, NULL, &r, err, sizeof err), HFEED_E_FILE);
    cr_expect_not_null(strstr(err, "/nonexistent/h5feed.h5"), "%s", err);
    cr_expect_eq(hfeed_report_get_info(NULL, NULL), HFEED_E_INVALID_ARG);
    hfeed_report_destroy(NULL);
    cr_expect_str_eq(hfeed_shuffle_name(HFEED_SHUFFLE_CHUNK), "chunk");
    cr_expect_str_eq(hfeed_shuffle_name((hfeed_shuffle_mode)9), "invalid");
}

/* A report on the FILEs `paths` and config c.json: field x of the files in files_json. */
static hfeed_report *report_of(const char *const *paths, size_t npaths, const char *files_json)
{
    fx_write_text("c.json", fx_fmt("{\"files\": %s, \"batch_size\": 8, \"fields\": [{\"name\": "
                                   "\"x\", \"dataset\": \"/x\", \"dtype\": \"float32\"}]}",
                                   files_json));
    hfeed_report *r = NULL;
    char err[HFEED_ERRBUF_SIZE] = "";
    const hfeed_status st =
        hfeed_report_create(paths, npaths, fx_path("c.json"), &r, err, sizeof err);
    cr_assert_eq(st, HFEED_OK, "%s: %s", hfeed_strerror(st), err);
    return r;
}

/* The field's figures, bit for bit (the model runs the same arithmetic on the same inputs). */
static void expect_same_field(const hfeed_report *a, const hfeed_report *b, const char *label)
{
    hfeed_field_cost fa, fb;
    cr_assert_eq(hfeed_report_get_field(a, 0, &fa), HFEED_OK);
    cr_assert_eq(hfeed_report_get_field(b, 0, &fb), HFEED_OK);
    cr_expect_eq(fa.path, fb.path, "%s", label);
    cr_expect_eq(fa.samples, fb.samples, "%s: %llu samples", label, (unsigned long long)fa.samples);
    cr_expect_eq(fa.bytes_delivered, fb.bytes_delivered, "%s", label);
    cr_expect_eq(fa.chunks, fb.chunks, "%s", label);
    cr_expect_eq(fa.chunk_bytes, fb.chunk_bytes, "%s", label);
    cr_expect_eq(memcmp(fa.cost, fb.cost, sizeof fa.cost), 0, "%s: costs differ", label);
}

/* A file given as a FILE and by the config, however spelt, is described once and still counts
 * as the config's file; a config that lists a file twice is read (and modelled) twice. */
Test(inspect, a_file_named_twice_is_described_once)
{
    write_fixture();
    cr_assert_eq(symlink(fx_path("a.h5"), fx_path("link.h5")), 0);
    hfeed_report *alone = report_of(NULL, 0, "[\"a.h5\"]");
    char spellings[3][4096]; /* copies: fx_path()'s buffers rotate */
    snprintf(spellings[0], sizeof spellings[0], "%s", fx_path("a.h5"));
    snprintf(spellings[1], sizeof spellings[1], "%s/./a.h5", fx_dir());
    snprintf(spellings[2], sizeof spellings[2], "%s", fx_path("link.h5"));
    for (size_t i = 0; i < 3; i++) {
        const char *paths[] = {spellings[i], spellings[(i + 1) % 3]};
        hfeed_report *r = report_of(paths, 2, "[\"a.h5\"]");
        hfeed_report_info in;
        cr_assert_eq(hfeed_report_get_info(r, &in), HFEED_OK);
        cr_expect_eq(in.files, 1, "%s: %zu files", spellings[i], in.files);
        cr_expect_eq(in.datasets, 5, "%s: %zu datasets", spellings[i], in.datasets);
        hfeed_dataset_desc d;
        cr_assert_eq(hfeed_report_get_dataset(r, 0, &d), HFEED_OK);
        cr_expect_str_eq(d.file, spellings[i], "the first spelling names the file");
        expect_same_field(r, alone, spellings[i]);
        hfeed_report_destroy(r);
    }
    hfeed_report *twice = report_of(NULL, 0, "[\"a.h5\", \"./a.h5\"]");
    hfeed_report_info in;
    cr_assert_eq(hfeed_report_get_info(twice, &in), HFEED_OK);
    cr_expect_eq(in.files, 1);
    cr_expect_eq(in.datasets, 5);
    hfeed_field_cost f;
    cr_assert_eq(hfeed_report_get_field(twice, 0, &f), HFEED_OK);
    cr_expect_eq(f.samples, 200, "the loader reads a file listed twice twice: %llu",
                 (unsigned long long)f.samples);
    cr_expect_eq(f.chunks, 20);
    hfeed_report_destroy(twice);
    hfeed_report_destroy(alone);
}

/* Fails the Nth allocation of hfeed_report_create() with a config, for every N until it
 * succeeds: each failure returns HFEED_E_NOMEM with a message and frees what it built. */
Test(inspect, oom_sweep)
{
    write_fixture();
    fx_write_text("c.json", "{\"files\": [\"a.h5\"], \"shuffle\": \"global\", \"batch_size\": 8,"
                            " \"fields\": [{\"name\": \"x\", \"dataset\": \"/x\", \"dtype\": "
                            "\"float32\"}, {\"name\": \"y\", \"dataset\": \"/g/y\", "
                            "\"dtype\": \"int64\"}]}");
    const char *config = fx_path("c.json");
    long n = 0;
    for (;; n++) {
        char err[HFEED_ERRBUF_SIZE] = "";
        hfeed_report *r = NULL;
        hfeed__alloc_fail_after(n);
        const hfeed_status st = hfeed_report_create(NULL, 0, config, &r, err, sizeof err);
        hfeed__alloc_fail_after(-1);
        if (st == HFEED_OK) {
            hfeed_report_info in;
            cr_assert_eq(hfeed_report_get_info(r, &in), HFEED_OK);
            cr_expect_eq(in.fields, 2);
            cr_expect_eq(in.datasets, 5);
            hfeed_field_cost f;
            cr_assert_eq(hfeed_report_get_field(r, 0, &f), HFEED_OK);
            cr_expect_str_eq(f.name, "x");
            cr_expect_eq(f.path, HFEED_READ_DIRECT_DECODE);
            cr_expect_eq(f.chunks, 10);
            cr_expect_eq(f.samples, 100);
            hfeed_report_destroy(r);
            break;
        }
        cr_assert_eq(st, HFEED_E_NOMEM, "allocation %ld: %s: %s", n, hfeed_strerror(st), err);
        cr_assert_null(r);
        cr_assert_neq(err[0], '\0', "allocation %ld: no message", n);
        cr_assert_lt(n, 10000, "create never succeeded");
    }
    cr_assert_gt(n, 10, "the sweep covered only %ld allocations", n);
}
