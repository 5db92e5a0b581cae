/* Unit tests of loader/config.c and config_json.c: defaults, every key's valid and invalid
 * forms, the text of the error messages, path resolution, shard "env" resolution, file loading,
 * the shipped configs (configs/), the broken and edge-case configs (tests/data/) and an
 * allocation-failure sweep.
 *
 * JSON in this file is written with single quotes, which parse() turns into double quotes, so
 * that the configs read like JSON. HFEED_TEST_DATA and HFEED_CONFIGS_DIR come from the build. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "config.h"

/* The smallest valid config; tests add keys after it. */
#define MIN_KEYS "'files': ['a.h5'], 'fields': [{'name': 'x', 'dataset': '/x'}]"

/* ---- Helpers -------------------------------------------------------------------------------- */

/* A fake environment for shard "env": tests fill it; fake_getenv answers from it. */
static struct {
    const char *name;
    const char *value;
} fake_env[8];
static size_t fake_env_count;

static void env_put(const char *name, const char *value)
{
    cr_assert_lt(fake_env_count, sizeof fake_env / sizeof fake_env[0], "fake env full");
    fake_env[fake_env_count].name = name;
    fake_env[fake_env_count].value = value;
    fake_env_count++;
}

static const char *fake_getenv(const char *name)
{
    for (size_t i = 0; i < fake_env_count; i++)
        if (strcmp(fake_env[i].name, name) == 0) return fake_env[i].value;
    return NULL;
}

/* Parses text (with ' for ") against base_dir "/base" and the fake environment. */
static hfeed_status parse_in(const char *text, const char *base_dir, struct hfeed__config **out,
                             struct hfeed__err *err)
{
    char json[4096];
    size_t i = 0;
    for (; text[i] != '\0'; i++) {
        cr_assert_lt(i, sizeof json - 1, "test JSON too long");
        json[i] = text[i] == '\'' ? '"' : text[i];
    }
    json[i] = '\0';
    hfeed__err_clear(err);
    return hfeed__config_parse(json, base_dir, fake_getenv, out, err);
}

static hfeed_status parse(const char *text, struct hfeed__config **out, struct hfeed__err *err)
{
    return parse_in(text, "/base", out, err);
}

/* "{MIN_KEYS, extra}", or "{MIN_KEYS}" when extra is empty. */
static const char *with(const char *extra)
{
    static char buf[4096];
    snprintf(buf, sizeof buf, "{" MIN_KEYS "%s%s}", extra[0] ? ", " : "", extra);
    return buf;
}

/* Parses text, which must succeed; the caller destroys the result. */
static struct hfeed__config *must_parse(const char *text)
{
    struct hfeed__config *c = NULL;
    struct hfeed__err err;
    const hfeed_status st = parse(text, &c, &err);
    cr_assert_eq(st, HFEED_OK, "parse failed (%d): %s\n  config: %s", st, err.msg, text);
    cr_assert_not_null(c);
    return c;
}

/* Parses text, which must fail with HFEED_E_CONFIG and a message containing needle. */
static void must_fail(const char *text, const char *needle)
{
    struct hfeed__config *c = (struct hfeed__config *)&c; /* not NULL: checks *out is reset */
    struct hfeed__err err;
    const hfeed_status st = parse(text, &c, &err);
    cr_assert_eq(st, HFEED_E_CONFIG, "expected HFEED_E_CONFIG, got %d (%s)\n  config: %s", st,
                 err.msg, text);
    cr_assert_null(c, "out not reset on failure");
    cr_assert_eq(err.code, HFEED_E_CONFIG, "err.code not set");
    cr_assert_not_null(strstr(err.msg, needle), "message\n  %s\nlacks\n  %s", err.msg, needle);
}

/* Whether msg is exactly want, but for the " [file.c:line]" that debug builds append. */
static int is_message(const char *msg, const char *want)
{
    const size_t n = strlen(want);
    return strncmp(msg, want, n) == 0 && (msg[n] == '\0' || strncmp(msg + n, " [", 2) == 0);
}

/* Writes text to dir/name; returns the path in a static buffer. */
static const char *write_file(const char *dir, const char *name, const char *text, size_t len)
{
    static char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "fopen %s: %s", path, strerror(errno));
    cr_assert_eq(fwrite(text, 1, len, f), len, "short write");
    cr_assert_eq(fclose(f), 0, "fclose");
    return path;
}

static char *make_temp_dir(void)
{
    static char dir[] = "/tmp/hfeed_test_config_XXXXXX";
    cr_assert_not_null(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
    return dir;
}

/* Removes the files in dir (one level) and dir itself. */
static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "opendir %s: %s", dir, strerror(errno));
    for (struct dirent *e = readdir(d); e != NULL; e = readdir(d)) {
        char path[2048];
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        cr_expect_eq(unlink(path), 0, "unlink %s: %s", path, strerror(errno));
    }
    closedir(d);
    cr_expect_eq(rmdir(dir), 0, "rmdir %s: %s", dir, strerror(errno));
}

/* Whether name ends in suffix. */
static int ends_with(const char *name, const char *suffix)
{
    const size_t ln = strlen(name);
    const size_t ls = strlen(suffix);
    return ln >= ls && strcmp(name + ln - ls, suffix) == 0;
}

/* ---- Defaults and a full config ------------------------------------------------------------- */

Test(config, applies_defaults_when_optional_keys_are_absent)
{
    struct hfeed__config *c = must_parse(with(""));
    cr_assert_eq(c->nfiles, 1);
    cr_assert_str_eq(c->files[0], "/base/a.h5");
    cr_assert_eq(c->nfields, 1);
    cr_assert_str_eq(c->fields[0].name, "x");
    cr_assert_str_eq(c->fields[0].dataset, "/x");
    cr_assert_eq(c->fields[0].dtype, HFEED_DTYPE_FLOAT32);
    cr_assert_not(c->fields[0].native);
    cr_assert_eq(c->batch_size, 256);
    cr_assert_not(c->drop_last);
    cr_assert_eq(c->shuffle, HFEED__SHUFFLE_NONE);
    cr_assert_eq(c->seed, 0);
    cr_assert_eq(c->shuffle_window, 4);
    cr_assert_eq(c->epochs, 1);
    cr_assert_eq(c->workers, 2);
    cr_assert_eq(c->prefetch, 4);
    cr_assert_eq(c->device, HFEED__DEVICE_AUTO);
    cr_assert_eq(c->device_index, -1);
    cr_assert_eq(c->rank, 0);
    cr_assert_eq(c->world_size, 1);
    cr_assert_not(c->shard_from_env);
    cr_assert(c->shard_pad);
    hfeed__config_destroy(c);
}

#define FULL_CONFIG                                                                                \
    "{'files': ['data/a.h5', '/abs/b-*.h5'],"                                                      \
    " 'fields': [{'name': 'x', 'dataset': '/features', 'dtype': 'float64'},"                       \
    "            {'name': 'y', 'dataset': '/labels', 'dtype': 'int32'},"                           \
    "            {'name': 'z', 'dataset': '/g/z', 'dtype': 'native'}],"                            \
    " 'batch_size': 32, 'drop_last': true, 'shuffle': 'chunk', 'seed': 42,"                        \
    " 'shuffle_window': 16, 'epochs': 3, 'workers': 8, 'prefetch': 12, 'device': 'cuda:1',"        \
    " 'shard': {'rank': 2, 'world_size': 4}, 'shard_remainder': 'drop'}"

Test(config, reads_every_key)
{
    struct hfeed__config *c = must_parse(FULL_CONFIG);
    cr_assert_eq(c->nfiles, 2);
    cr_assert_str_eq(c->files[0], "/base/data/a.h5");
    cr_assert_str_eq(c->files[1], "/abs/b-*.h5");
    cr_assert_eq(c->nfields, 3);
    cr_assert_eq(c->fields[0].dtype, HFEED_DTYPE_FLOAT64);
    cr_assert_str_eq(c->fields[1].name, "y");
    cr_assert_str_eq(c->fields[1].dataset, "/labels");
    cr_assert_eq(c->fields[1].dtype, HFEED_DTYPE_INT32);
    cr_assert(c->fields[2].native);
    cr_assert_eq(c->fields[2].dtype, HFEED_DTYPE_INVALID);
    cr_assert_eq(c->batch_size, 32);
    cr_assert(c->drop_last);
    cr_assert_eq(c->shuffle, HFEED__SHUFFLE_CHUNK);
    cr_assert_eq(c->seed, 42);
    cr_assert_eq(c->shuffle_window, 16);
    cr_assert_eq(c->epochs, 3);
    cr_assert_eq(c->workers, 8);
    cr_assert_eq(c->prefetch, 12);
    cr_assert_eq(c->device, HFEED__DEVICE_CUDA);
    cr_assert_eq(c->device_index, 1);
    cr_assert_eq(c->rank, 2);
    cr_assert_eq(c->world_size, 4);
    cr_assert_not(c->shard_from_env);
    cr_assert_not(c->shard_pad);
    hfeed__config_destroy(c);
}

Test(config, destroy_accepts_null)
{
    hfeed__config_destroy(NULL);
}

Test(config, refuses_null_arguments)
{
    struct hfeed__config *c = NULL;
    struct hfeed__err err = {HFEED_OK, ""};
    cr_assert_eq(hfeed__config_parse(NULL, NULL, NULL, &c, &err), HFEED_E_INVALID_ARG);
    cr_assert_null(c);
    cr_assert_eq(hfeed__config_parse("{}", NULL, NULL, NULL, NULL), HFEED_E_INVALID_ARG);
    cr_assert_eq(hfeed__config_load(NULL, &c, NULL), HFEED_E_INVALID_ARG);
}

Test(config, works_without_an_error_struct)
{
    struct hfeed__config *c = NULL;
    cr_assert_eq(hfeed__config_parse("[]", NULL, NULL, &c, NULL), HFEED_E_CONFIG);
    cr_assert_null(c);
}

/* ---- files ---------------------------------------------------------------------------------- */

Test(config, files_resolve_relative_paths_against_base_dir)
{
    struct hfeed__config *c = NULL;
    struct hfeed__err err;
    const char *text = "{'files': ['a.h5', './b/c.h5', '../d/*.h5', '/e.h5'], "
                       "'fields': [{'name': 'x', 'dataset': '/x'}]}";
    cr_assert_eq(parse_in(text, "/data/run1/", &c, &err), HFEED_OK, "%s", err.msg);
    cr_assert_str_eq(c->files[0], "/data/run1/a.h5");
    cr_assert_str_eq(c->files[1], "/data/run1/./b/c.h5");
    cr_assert_str_eq(c->files[2], "/data/run1/../d/*.h5");
    cr_assert_str_eq(c->files[3], "/e.h5");
    hfeed__config_destroy(c);
    cr_assert_eq(parse_in(text, "/", &c, &err), HFEED_OK, "%s", err.msg);
    cr_assert_str_eq(c->files[0], "/a.h5");
    hfeed__config_destroy(c);
}

Test(config, files_resolve_against_the_current_directory_without_base_dir)
{
    char cwd[4096];
    char want[4200];
    struct hfeed__config *c = NULL;
    struct hfeed__err err;
    cr_assert_not_null(getcwd(cwd, sizeof cwd));
    snprintf(want, sizeof want, "%s/a.h5", strcmp(cwd, "/") == 0 ? "" : cwd);
    cr_assert_eq(parse_in(with(""), NULL, &c, &err), HFEED_OK, "%s", err.msg);
    cr_assert_str_eq(c->files[0], want);
    hfeed__config_destroy(c);
    /* A relative base_dir is itself relative to the current directory. */
    snprintf(want, sizeof want, "%s/sub/a.h5", strcmp(cwd, "/") == 0 ? "" : cwd);
    cr_assert_eq(parse_in(with(""), "sub", &c, &err), HFEED_OK, "%s", err.msg);
    cr_assert_str_eq(c->files[0], want);
    hfeed__config_destroy(c);
}

Test(config, files_must_be_a_non_empty_array_of_non_empty_strings)
{
    const char *fields = "'fields': [{'name': 'x', 'dataset': '/x'}]";
    char text[512];
    must_fail("{'fields': [{'name': 'x', 'dataset': '/x'}]}", "files: required key missing");
    snprintf(text, sizeof text, "{'files': [], %s}", fields);
    must_fail(text,
              "files: expected a non-empty array of paths or glob patterns, got an empty array");
    snprintf(text, sizeof text, "{'files': 'a.h5', %s}", fields);
    must_fail(text, "files: expected a non-empty array of paths or glob patterns, got \"a.h5\"");
    snprintf(text, sizeof text, "{'files': null, %s}", fields);
    must_fail(text, "got null");
    snprintf(text, sizeof text, "{'files': ['a.h5', 3], %s}", fields);
    must_fail(text, "files[1]: expected a non-empty string, got 3");
    snprintf(text, sizeof text, "{'files': ['a.h5', ''], %s}", fields);
    must_fail(text, "files[1]: expected a non-empty string, got \"\"");
    snprintf(text, sizeof text, "{'files': [['a.h5']], %s}", fields);
    must_fail(text, "files[0]: expected a non-empty string, got an array");
}

/* ---- fields --------------------------------------------------------------------------------- */

Test(config, fields_accept_every_dtype)
{
    struct hfeed__config *c = must_parse(
        "{'files': ['a.h5'], 'fields': [{'name': 'a', 'dataset': '/a', 'dtype': 'float32'},"
        " {'name': 'b', 'dataset': '/b', 'dtype': 'float64'},"
        " {'name': 'c', 'dataset': '/c', 'dtype': 'int32'},"
        " {'name': 'd', 'dataset': '/d', 'dtype': 'int64'},"
        " {'name': 'e', 'dataset': '/e', 'dtype': 'native'}, {'name': 'f', 'dataset': '/f'}]}");
    const hfeed_dtype want[] = {HFEED_DTYPE_FLOAT32, HFEED_DTYPE_FLOAT64, HFEED_DTYPE_INT32,
                                HFEED_DTYPE_INT64,   HFEED_DTYPE_INVALID, HFEED_DTYPE_FLOAT32};
    cr_assert_eq(c->nfields, 6);
    for (size_t i = 0; i < 6; i++) {
        cr_assert_eq(c->fields[i].dtype, want[i], "fields[%zu]", i);
        cr_assert_eq(c->fields[i].native, i == 4, "fields[%zu]", i);
    }
    hfeed__config_destroy(c);
}

Test(config, fields_refuse_an_unknown_dtype)
{
    must_fail("{'files': ['a.h5'], 'fields': [{'name': 'x', 'dataset': '/x'},"
              " {'name': 'y', 'dataset': '/y', 'dtype': 'float8'}]}",
              "fields[1].dtype: expected one of \"float32\", \"float64\", \"int32\", \"int64\", "
              "\"native\", got \"float8\"");
    must_fail("{'files': ['a.h5'], 'fields': [{'name': 'x', 'dataset': '/x', 'dtype': 32}]}",
              "fields[0].dtype: expected one of");
    must_fail("{'files': ['a.h5'], 'fields': [{'name': 'x', 'dataset': '/x', 'dtype': 'FLOAT32'}]}",
              "got \"FLOAT32\"");
    must_fail("{'files': ['a.h5'], 'fields': [{'name': 'x', 'dataset': '/x', 'dtype': 'float16'}]}",
              "got \"float16\"");
}

Test(config, fields_require_name_and_dataset)
{
    must_fail("{'files': ['a.h5'], 'fields': [{'dataset': '/x'}]}",
              "fields[0].name: required key missing");
    must_fail("{'files': ['a.h5'], 'fields': [{'name': 'x'}]}",
              "fields[0].dataset: required key missing");
    must_fail("{'files': ['a.h5'], 'fields': [{'name': '', 'dataset': '/x'}]}",
              "fields[0].name: expected a non-empty string, got \"\"");
    must_fail("{'files': ['a.h5'], 'fields': [{'name': 7, 'dataset': '/x'}]}",
              "fields[0].name: expected a non-empty string, got 7");
    must_fail("{'files': ['a.h5'], 'fields': [{'name': 'x', 'dataset': true}]}",
              "fields[0].dataset: expected a non-empty string, got true");
}

Test(config, fields_require_absolute_dataset_paths)
{
    must_fail("{'files': ['a.h5'], 'fields': [{'name': 'x', 'dataset': 'features'}]}",
              "fields[0].dataset: expected an HDF5 path starting with \"/\", got \"features\"");
    must_fail("{'files': ['a.h5'], 'fields': [{'name': 'x', 'dataset': '/'}]}",
              "fields[0].dataset: expected an HDF5 path");
}

Test(config, fields_must_be_a_non_empty_array_of_objects)
{
    must_fail("{'files': ['a.h5']}", "fields: required key missing");
    must_fail("{'files': ['a.h5'], 'fields': []}",
              "fields: expected a non-empty array of objects, got an empty array");
    must_fail("{'files': ['a.h5'], 'fields': {'name': 'x', 'dataset': '/x'}}",
              "fields: expected a non-empty array of objects, got an object");
    must_fail("{'files': ['a.h5'], 'fields': [{'name': 'x', 'dataset': '/x'}, 'y']}",
              "fields[1]: expected an object");
}

Test(config, fields_refuse_duplicate_names_naming_both_indices)
{
    must_fail("{'files': ['a.h5'], 'fields': [{'name': 'x', 'dataset': '/a'},"
              " {'name': 'y', 'dataset': '/b'}, {'name': 'x', 'dataset': '/c'}]}",
              "fields[2].name: \"x\" is already the name of fields[0]");
}

Test(config, fields_names_are_case_sensitive)
{
    struct hfeed__config *c = must_parse("{'files': ['a.h5'], 'fields': [{'name': 'x', "
                                         "'dataset': '/x'}, {'name': 'X', 'dataset': '/x'}]}");
    cr_assert_eq(c->nfields, 2);
    hfeed__config_destroy(c);
}

Test(config, fields_refuse_unknown_and_duplicate_keys)
{
    must_fail("{'files': ['a.h5'], 'fields': [{'name': 'x', 'dataset': '/x', 'dtyp': 'int64'}]}",
              "fields[0]: unknown key \"dtyp\"");
    must_fail("{'files': ['a.h5'], 'fields': [{'name': 'x', 'dataset': '/x', 'name': 'y'}]}",
              "fields[0]: duplicate key \"name\"");
}

/* ---- Integer keys --------------------------------------------------------------------------- */

Test(config, batch_size_accepts_integers_from_1)
{
    struct hfeed__config *c = must_parse(with("'batch_size': 1"));
    cr_assert_eq(c->batch_size, 1);
    hfeed__config_destroy(c);
    c = must_parse(with("'batch_size': 1e3"));
    cr_assert_eq(c->batch_size, 1000);
    hfeed__config_destroy(c);
    c = must_parse(with("'batch_size': 64.0"));
    cr_assert_eq(c->batch_size, 64);
    hfeed__config_destroy(c);
}

/* a followed by b, in a static buffer per call site use (tests run one at a time). */
static const char *fmt2(const char *a, const char *b)
{
    static char buf[4][256];
    static int next;
    char *out = buf[next++ % 4];
    snprintf(out, sizeof buf[0], "%s%s", a, b);
    return out;
}

Test(config, cache_mb_is_auto_by_default_or_a_number_of_mib)
{
    struct hfeed__config *c = must_parse(with(""));
    cr_assert(c->cache_auto, "cache_mb defaults to \"auto\"");
    cr_assert_eq(c->cache_mb, 256, "\"auto\" starts from 256 MiB");
    hfeed__config_destroy(c);
    c = must_parse(with("'cache_mb': 'auto'"));
    cr_assert(c->cache_auto);
    hfeed__config_destroy(c);
    c = must_parse(with("'cache_mb': 0"));
    cr_assert(!c->cache_auto && c->cache_mb == 0, "an explicit number is kept as given");
    hfeed__config_destroy(c);
    c = must_parse(with("'cache_mb': 1048576"));
    cr_assert(!c->cache_auto && c->cache_mb == 1048576);
    hfeed__config_destroy(c);
    const char *range = "cache_mb: expected \"auto\" or an integer from 0 to 1048576";
    must_fail(with("'cache_mb': 'AUTO'"), fmt2(range, ", got \"AUTO\""));
    must_fail(with("'cache_mb': -1"), fmt2(range, ", got -1"));
    must_fail(with("'cache_mb': 1048577"), fmt2(range, ", got 1048577"));
    must_fail(with("'cache_mb': 1.5"), fmt2(range, ", got 1.5"));
    must_fail(with("'cache_mb': null"), fmt2(range, ", got null"));
}

Test(config, batch_size_refuses_non_integers_and_out_of_range)
{
    const char *range = "batch_size: expected an integer from 1 to 16777216";
    must_fail(with("'batch_size': -3"), fmt2(range, ", got -3"));
    must_fail(with("'batch_size': 0"), fmt2(range, ", got 0"));
    must_fail(with("'batch_size': 2.5"), fmt2(range, ", got 2.5"));
    must_fail(with("'batch_size': '256'"), fmt2(range, ", got \"256\""));
    must_fail(with("'batch_size': true"), fmt2(range, ", got true"));
    must_fail(with("'batch_size': null"), fmt2(range, ", got null"));
    must_fail(with("'batch_size': [256]"), "got an array");
    must_fail(with("'batch_size': 16777217"), fmt2(range, ", got 16777217"));
    must_fail(with("'batch_size': 1e300"), range);
    must_fail(with("'batch_size': 1e400"), range);
}

Test(config, batch_size_accepts_its_maximum)
{
    struct hfeed__config *c = must_parse(with("'batch_size': 16777216"));
    cr_assert_eq(c->batch_size, 16777216u);
    hfeed__config_destroy(c);
}

Test(config, seed_accepts_0_to_2_pow_53_minus_1)
{
    struct hfeed__config *c = must_parse(with("'seed': 9007199254740991"));
    cr_assert_eq(c->seed, 9007199254740991ull);
    hfeed__config_destroy(c);
    c = must_parse(with("'seed': 0"));
    cr_assert_eq(c->seed, 0);
    hfeed__config_destroy(c);
    must_fail(with("'seed': 9007199254740992"), "seed: expected an integer >= 0 and below 2^53");
    must_fail(with("'seed': 18446744073709551615"), "seed: expected an integer >= 0 and below");
    must_fail(with("'seed': -1"), "seed: expected an integer >= 0, got -1");
    must_fail(with("'seed': 0.5"), "seed: expected an integer >= 0, got 0.5");
    must_fail(with("'seed': '1'"), "seed: expected an integer >= 0, got \"1\"");
}

Test(config, shuffle_window_and_epochs_start_at_1)
{
    struct hfeed__config *c = must_parse(with("'shuffle_window': 1, 'epochs': 1000000"));
    cr_assert_eq(c->shuffle_window, 1);
    cr_assert_eq(c->epochs, 1000000);
    hfeed__config_destroy(c);
    must_fail(with("'shuffle_window': 0"), "shuffle_window: expected an integer from 1 to ");
    must_fail(with("'shuffle_window': 4294967296"), "shuffle_window: expected an integer from 1");
    must_fail(with("'shuffle_window': 1.5"), "shuffle_window: expected an integer");
    must_fail(with("'epochs': 0"), "epochs: expected an integer >= 1, got 0");
    must_fail(with("'epochs': -1"), "epochs: expected an integer >= 1, got -1");
}

Test(config, workers_range_is_1_to_256)
{
    struct hfeed__config *c = must_parse(with("'workers': 256"));
    cr_assert_eq(c->workers, 256);
    hfeed__config_destroy(c);
    c = must_parse(with("'workers': 1"));
    cr_assert_eq(c->workers, 1);
    hfeed__config_destroy(c);
    must_fail(with("'workers': 0"), "workers: expected an integer from 1 to 256, got 0");
    must_fail(with("'workers': 257"), "workers: expected an integer from 1 to 256, got 257");
    must_fail(with("'workers': 'many'"),
              "workers: expected an integer from 1 to 256, got \"many\"");
}

Test(config, prefetch_range_is_1_to_1024)
{
    struct hfeed__config *c = must_parse(with("'prefetch': 1024"));
    cr_assert_eq(c->prefetch, 1024);
    hfeed__config_destroy(c);
    c = must_parse(with("'prefetch': 1"));
    cr_assert_eq(c->prefetch, 1);
    hfeed__config_destroy(c);
    must_fail(with("'prefetch': 0"), "prefetch: expected an integer from 1 to 1024, got 0");
    must_fail(with("'prefetch': 1025"), "prefetch: expected an integer from 1 to 1024, got 1025");
}

/* ---- Booleans and string enums -------------------------------------------------------------- */

Test(config, drop_last_takes_json_booleans_only)
{
    struct hfeed__config *c = must_parse(with("'drop_last': true"));
    cr_assert(c->drop_last);
    hfeed__config_destroy(c);
    c = must_parse(with("'drop_last': false"));
    cr_assert_not(c->drop_last);
    hfeed__config_destroy(c);
    must_fail(with("'drop_last': 1"), "drop_last: expected true or false, got 1");
    must_fail(with("'drop_last': 'true'"), "drop_last: expected true or false, got \"true\"");
    must_fail(with("'drop_last': null"), "drop_last: expected true or false, got null");
}

Test(config, shuffle_takes_none_global_or_chunk)
{
    const char *names[] = {"none", "global", "chunk"};
    const enum hfeed__shuffle want[] = {HFEED__SHUFFLE_NONE, HFEED__SHUFFLE_GLOBAL,
                                        HFEED__SHUFFLE_CHUNK};
    for (size_t i = 0; i < 3; i++) {
        char extra[64];
        snprintf(extra, sizeof extra, "'shuffle': '%s'", names[i]);
        struct hfeed__config *c = must_parse(with(extra));
        cr_assert_eq(c->shuffle, want[i], "%s", names[i]);
        hfeed__config_destroy(c);
    }
    must_fail(with("'shuffle': 'random'"),
              "shuffle: expected one of \"none\", \"global\", \"chunk\", got \"random\"");
    must_fail(with("'shuffle': true"), "shuffle: expected one of");
    must_fail(with("'shuffle': 'Chunk'"), "got \"Chunk\"");
}

Test(config, shard_remainder_takes_pad_or_drop)
{
    struct hfeed__config *c = must_parse(with("'shard_remainder': 'drop'"));
    cr_assert_not(c->shard_pad);
    hfeed__config_destroy(c);
    c = must_parse(with("'shard_remainder': 'pad'"));
    cr_assert(c->shard_pad);
    hfeed__config_destroy(c);
    must_fail(with("'shard_remainder': 'wrap'"),
              "shard_remainder: expected one of \"pad\", \"drop\", got \"wrap\"");
}

Test(config, device_takes_auto_cpu_cuda_cuda_n_and_fake)
{
    const char *names[] = {"auto", "cpu", "cuda", "cuda:0", "cuda:7", "cuda:2147483647", "fake"};
    const enum hfeed__device_req want[] = {HFEED__DEVICE_AUTO, HFEED__DEVICE_CPU,
                                           HFEED__DEVICE_CUDA, HFEED__DEVICE_CUDA,
                                           HFEED__DEVICE_CUDA, HFEED__DEVICE_CUDA,
                                           HFEED__DEVICE_FAKE};
    const int index[] = {-1, -1, -1, 0, 7, 2147483647, -1}; /* -1: resolved at open */
    for (size_t i = 0; i < 7; i++) {
        char extra[64];
        snprintf(extra, sizeof extra, "'device': '%s'", names[i]);
        struct hfeed__config *c = must_parse(with(extra));
        cr_assert_eq(c->device, want[i], "%s", names[i]);
        cr_assert_eq(c->device_index, index[i], "%s", names[i]);
        hfeed__config_destroy(c);
    }
}

Test(config, device_refuses_other_strings)
{
    const char *bad[] = {
        "gpu",    "CUDA",    "cuda:",   "cuda:-1",         "cuda:+1",
        "cuda:x", "cuda:1x", "cuda: 1", "cuda:2147483648", "cuda:99999999999999999999",
        "cpu:0",  ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char extra[64];
        char got[64];
        snprintf(extra, sizeof extra, "'device': '%s'", bad[i]);
        snprintf(got, sizeof got, "got \"%s\"", bad[i]);
        must_fail(with(extra), "device: expected \"auto\", \"cpu\", \"cuda\", \"cuda:N\" (N a "
                               "decimal integer >= 0) or \"fake\"");
        must_fail(with(extra), got);
    }
    must_fail(with("'device': 0"), "device: expected");
}

Test(config, pinned_is_a_boolean_defaulting_to_true)
{
    struct hfeed__config *c = must_parse(with("'batch_size': 4"));
    cr_assert(c->pinned);
    hfeed__config_destroy(c);
    c = must_parse(with("'pinned': false"));
    cr_assert_not(c->pinned);
    hfeed__config_destroy(c);
    must_fail(with("'pinned': 1"), "pinned: expected");
}

/* ---- shard ---------------------------------------------------------------------------------- */

Test(config, shard_object_sets_rank_and_world_size)
{
    struct hfeed__config *c = must_parse(with("'shard': {'world_size': 8, 'rank': 7}"));
    cr_assert_eq(c->rank, 7);
    cr_assert_eq(c->world_size, 8);
    cr_assert_not(c->shard_from_env);
    hfeed__config_destroy(c);
}

Test(config, shard_object_is_validated)
{
    must_fail(with("'shard': {'rank': 4, 'world_size': 4}"),
              "shard.rank: expected an integer < shard.world_size (4), got 4");
    must_fail(with("'shard': {'world_size': 4}"), "shard.rank: required key missing");
    must_fail(with("'shard': {'rank': 0}"), "shard.world_size: required key missing");
    must_fail(with("'shard': {'rank': 0, 'world_size': 0}"),
              "shard.world_size: expected an integer from 1 to");
    must_fail(with("'shard': {'rank': -1, 'world_size': 2}"),
              "shard.rank: expected an integer from 0 to");
    must_fail(with("'shard': {'rank': 0.5, 'world_size': 2}"), "shard.rank: expected an integer");
    must_fail(with("'shard': {'rank': 0, 'world_size': 2, 'local_rank': 0}"),
              "shard: unknown key \"local_rank\"");
    must_fail(with("'shard': {'rank': 0, 'world_size': 2, 'rank': 1}"),
              "shard: duplicate key \"rank\"");
    must_fail(
        with("'shard': 'auto'"),
        "shard: expected an object {\"rank\": R, \"world_size\": W} or \"env\", got \"auto\"");
    must_fail(with("'shard': 2"), "shard: expected an object");
    must_fail(with("'shard': null"), "got null");
}

Test(config, shard_env_reads_rank_and_world_size)
{
    env_put("RANK", "3");
    env_put("WORLD_SIZE", "4");
    struct hfeed__config *c = must_parse(with("'shard': 'env'"));
    cr_assert_eq(c->rank, 3);
    cr_assert_eq(c->world_size, 4);
    cr_assert(c->shard_from_env);
    hfeed__config_destroy(c);
}

Test(config, shard_env_reads_slurm_variables)
{
    env_put("SLURM_PROCID", "5");
    env_put("SLURM_NTASKS", "16");
    struct hfeed__config *c = must_parse(with("'shard': 'env'"));
    cr_assert_eq(c->rank, 5);
    cr_assert_eq(c->world_size, 16);
    cr_assert(c->shard_from_env);
    hfeed__config_destroy(c);
}

Test(config, shard_env_reads_open_mpi_variables)
{
    env_put("OMPI_COMM_WORLD_RANK", "0");
    env_put("OMPI_COMM_WORLD_SIZE", "2");
    struct hfeed__config *c = must_parse(with("'shard': 'env'"));
    cr_assert_eq(c->rank, 0);
    cr_assert_eq(c->world_size, 2);
    cr_assert(c->shard_from_env);
    hfeed__config_destroy(c);
}

Test(config, shard_env_prefers_rank_then_slurm_then_open_mpi)
{
    env_put("OMPI_COMM_WORLD_RANK", "1");
    env_put("OMPI_COMM_WORLD_SIZE", "8");
    env_put("SLURM_PROCID", "2");
    env_put("SLURM_NTASKS", "8");
    struct hfeed__config *c = must_parse(with("'shard': 'env'"));
    cr_assert_eq(c->rank, 2, "SLURM wins over Open MPI");
    hfeed__config_destroy(c);
    env_put("RANK", "3");
    env_put("WORLD_SIZE", "8");
    c = must_parse(with("'shard': 'env'"));
    cr_assert_eq(c->rank, 3, "RANK/WORLD_SIZE win over SLURM");
    hfeed__config_destroy(c);
}

Test(config, shard_env_skips_a_half_set_pair)
{
    env_put("RANK", "1");         /* WORLD_SIZE missing: this pair is not used */
    env_put("SLURM_NTASKS", "4"); /* SLURM_PROCID missing: neither */
    env_put("OMPI_COMM_WORLD_RANK", "2");
    env_put("OMPI_COMM_WORLD_SIZE", "3");
    struct hfeed__config *c = must_parse(with("'shard': 'env'"));
    cr_assert_eq(c->rank, 2);
    cr_assert_eq(c->world_size, 3);
    hfeed__config_destroy(c);
}

Test(config, shard_env_fails_when_nothing_is_set)
{
    env_put("RANK", "1");
    env_put("SLURM_NTASKS", "4");
    must_fail(with("'shard': 'env'"),
              "shard: \"env\" but none of RANK/WORLD_SIZE, SLURM_PROCID/SLURM_NTASKS, "
              "OMPI_COMM_WORLD_RANK/OMPI_COMM_WORLD_SIZE is set");
}

Test(config, shard_env_names_a_malformed_variable)
{
    env_put("SLURM_PROCID", "x1");
    env_put("SLURM_NTASKS", "4");
    must_fail(with("'shard': 'env'"),
              "shard: \"env\": SLURM_PROCID=\"x1\": expected a decimal integer >= 0");
}

Test(config, shard_env_refuses_bad_world_sizes_and_ranks)
{
    const char *bad_world[] = {"0", "", " 4", "4 ", "-4", "+4", "4.0", "99999999999"};
    for (size_t i = 0; i < sizeof bad_world / sizeof bad_world[0]; i++) {
        char want[128];
        fake_env_count = 0;
        env_put("RANK", "0");
        env_put("WORLD_SIZE", bad_world[i]);
        snprintf(want, sizeof want, "WORLD_SIZE=\"%s\": expected a decimal integer >= 1",
                 bad_world[i]);
        must_fail(with("'shard': 'env'"), want);
    }
    fake_env_count = 0;
    env_put("OMPI_COMM_WORLD_RANK", "4");
    env_put("OMPI_COMM_WORLD_SIZE", "4");
    must_fail(with("'shard': 'env'"),
              "shard: \"env\": OMPI_COMM_WORLD_RANK=4: expected a value below "
              "OMPI_COMM_WORLD_SIZE=4");
    fake_env_count = 0;
    env_put("RANK", "-1");
    env_put("WORLD_SIZE", "4");
    must_fail(with("'shard': 'env'"), "RANK=\"-1\": expected a decimal integer >= 0");
}

Test(config, shard_env_escapes_odd_values_in_messages)
{
    env_put("RANK", "1\n\"2");
    env_put("WORLD_SIZE", "4");
    must_fail(with("'shard': 'env'"), "RANK=\"1\\x0a\\\"2\"");
}

/* ---- Unknown keys, root, malformed JSON ----------------------------------------------------- */

Test(config, refuses_unknown_top_level_keys)
{
    must_fail(with("'bach_size': 32"), "unknown key \"bach_size\" (top level)");
    must_fail(with("'Batch_size': 32"), "unknown key \"Batch_size\" (top level)");
    must_fail(with("'comment': 'hello'"), "unknown key \"comment\" (top level)");
}

/* ---- Transforms and the output section ------------------------------------------------------ */

/* A config whose one field is {'name': 'x', 'dataset': '/x', <field_extra>}. */
static const char *with_field(const char *field_extra)
{
    static char buf[1024];
    snprintf(buf, sizeof buf,
             "{'files': ['a.h5'], 'fields': [{'name': 'x', 'dataset': '/x', %s}]}", field_extra);
    return buf;
}

/* A misspelt key names the known key it is nearest to (edit distance), in every object; a name
 * far from every known key gets no guess. */
Test(config, unknown_keys_suggest_the_nearest_known_key)
{
    static const struct {
        const char *extra; /* added to MIN_KEYS at the top level */
        const char *msg;   /* the whole message must equal this */
    } rows[] = {
        {"'bach_size': 32", "unknown key \"bach_size\" (top level); did you mean \"batch_size\"?"},
        {"'Batch_size': 32",
         "unknown key \"Batch_size\" (top level); did you mean \"batch_size\"?"},
        {"'shufle': 'none'", "unknown key \"shufle\" (top level); did you mean \"shuffle\"?"},
        {"'wokrers': 2", "unknown key \"wokrers\" (top level); did you mean \"workers\"?"},
        {"'shuffle_windw': 2",
         "unknown key \"shuffle_windw\" (top level); did you mean \"shuffle_window\"?"},
        {"'cachemb': 2", "unknown key \"cachemb\" (top level); did you mean \"cache_mb\"?"},
        {"'comment': 'hi'", "unknown key \"comment\" (top level)"},
        {"'x': 1", "unknown key \"x\" (top level)"},
        {"'shard': {'rnak': 0, 'world_size': 1}",
         "shard: unknown key \"rnak\"; did you mean \"rank\"?"},
        {"'shard': {'rank': 0, 'worldsize': 1}",
         "shard: unknown key \"worldsize\"; did you mean \"world_size\"?"},
        {"'output': {'path': 'o.h5', 'chunkrows': 8}",
         "output: unknown key \"chunkrows\"; did you mean \"chunk_rows\"?"},
        {"'output': {'path': 'o.h5', 'level': 8}", "output: unknown key \"level\""},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct hfeed__config *c = NULL;
        struct hfeed__err err;
        cr_assert_eq(parse(with(rows[i].extra), &c, &err), HFEED_E_CONFIG, "row %zu", i);
        cr_expect(is_message(err.msg, rows[i].msg), "row %zu: %s", i, err.msg);
    }
    static const struct {
        const char *field;
        const char *msg;
    } fields[] = {
        {"'dtyp': 'float32'", "fields[0]: unknown key \"dtyp\"; did you mean \"dtype\"?"},
        {"'datset': '/y'", "fields[0]: unknown key \"datset\"; did you mean \"dataset\"?"},
        {"'normalise': 'standard'",
         "fields[0]: unknown key \"normalise\"; did you mean \"normalize\"?"},
        {"'Scale': 2", "fields[0]: unknown key \"Scale\"; did you mean \"scale\"?"},
        {"'units': 'm'", "fields[0]: unknown key \"units\""},
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        char text[512];
        struct hfeed__config *c = NULL;
        struct hfeed__err err;
        snprintf(text, sizeof text,
                 "{'files': ['a.h5'], 'fields': [{'name': 'x', 'dataset': '/x', %s}]}",
                 fields[i].field);
        cr_assert_eq(parse(text, &c, &err), HFEED_E_CONFIG, "field row %zu", i);
        cr_expect(is_message(err.msg, fields[i].msg), "field row %zu: %s", i, err.msg);
    }
}

/* Empty or blank text is "empty", not "malformed JSON at line 1". */
Test(config, empty_text_and_files_say_empty)
{
    static const char *const blank[] = {
        "", " ", "\n\n", " \t\r\n ", "\xEF\xBB\xBF", "\xEF\xBB\xBF \n"};
    for (size_t i = 0; i < sizeof blank / sizeof blank[0]; i++) {
        struct hfeed__config *c = NULL;
        struct hfeed__err err = {HFEED_OK, ""};
        cr_assert_eq(hfeed__config_parse(blank[i], NULL, NULL, &c, &err), HFEED_E_CONFIG, "row %zu",
                     i);
        cr_assert_null(c);
        cr_expect(strncmp(err.msg, "config text is empty; a config is a JSON object", 47) == 0,
                  "row %zu: %s", i, err.msg);
    }
    const char *dir = make_temp_dir();
    for (size_t i = 0; i < sizeof blank / sizeof blank[0]; i++) {
        struct hfeed__config *c = NULL;
        struct hfeed__err err = {HFEED_OK, ""};
        char want[1100];
        const char *path = write_file(dir, "empty.json", blank[i], strlen(blank[i]));
        snprintf(want, sizeof want, "%s: config file is empty; a config is a JSON object", path);
        cr_assert_eq(hfeed__config_load(path, &c, &err), HFEED_E_CONFIG, "row %zu: %s", i, err.msg);
        cr_assert_null(c);
        cr_expect(strncmp(err.msg, want, strlen(want)) == 0, "row %zu: %s", i, err.msg);
    }
    remove_dir(dir);
}

Test(config, reads_transform_keys)
{
    struct hfeed__config *c =
        must_parse(with_field("'dtype': 'float64', 'normalize': 'standard', 'scale': [1, 2.5], "
                              "'offset': -3"));
    const struct hfeed__field_config *f = &c->fields[0];
    cr_assert(f->standardize);
    cr_assert_eq(f->nscale, 2);
    cr_assert_eq(f->scale[0], 1.0);
    cr_assert_eq(f->scale[1], 2.5);
    cr_assert_eq(f->noffset, 1);
    cr_assert_eq(f->offset[0], -3.0);
    hfeed__config_destroy(c);
    c = must_parse(with("'batch_size': 8"));
    cr_assert(!c->fields[0].standardize);
    cr_assert_null(c->fields[0].scale);
    cr_assert_null(c->fields[0].offset);
    cr_assert(!c->output.present);
    hfeed__config_destroy(c);
    c = must_parse(with_field("'dtype': 'int64', 'normalize': 'none'")); /* "none" needs nothing */
    cr_assert(!c->fields[0].standardize);
    hfeed__config_destroy(c);
}

Test(config, refuses_bad_transform_keys)
{
    must_fail(with_field("'normalize': 'minmax'"),
              "fields[0].normalize: expected one of \"none\", \"standard\", got \"minmax\"");
    must_fail(with_field("'normalize': true"), "fields[0].normalize: expected one of");
    must_fail(with_field("'scale': '2'"), "fields[0].scale: expected a number or a non-empty array");
    must_fail(with_field("'scale': []"), "fields[0].scale: expected a number or a non-empty array");
    must_fail(with_field("'offset': [1, null]"),
              "fields[0].offset[1]: expected a finite number, got null");
    must_fail(with_field("'scale': 1e999"), "fields[0].scale: expected a finite number");
    must_fail(with_field("'dtype': 'int32', 'normalize': 'standard'"),
              "fields[0].normalize: a transform needs \"dtype\": \"float32\" or \"float64\", "
              "but fields[0].dtype is \"int32\"");
    must_fail(with_field("'dtype': 'native', 'scale': 2"),
              "fields[0].scale: a transform needs \"dtype\": \"float32\" or \"float64\", but "
              "fields[0].dtype is \"native\"");
    must_fail(with_field("'dtype': 'int64', 'offset': [1]"), "fields[0].offset: a transform needs");
    must_fail(with_field("'Normalize': 'standard'"), "fields[0]: unknown key \"Normalize\"");
}

Test(config, reads_the_output_section)
{
    struct hfeed__config *c = must_parse(with("'output': {'path': 'out/x.h5'}"));
    cr_assert(c->output.present);
    cr_assert_str_eq(c->output.path, "/base/out/x.h5");
    cr_assert_eq(c->output.chunk_rows, HFEED__OUTPUT_AUTO_CHUNK);
    cr_assert_eq(c->output.gzip_level, 0);
    cr_assert(!c->output.shuffle);
    hfeed__config_destroy(c);
    c = must_parse(with("'output': {'path': '/abs.h5', 'chunk_rows': 64, 'compression': 'gzip', "
                        "'gzip_level': 9, 'shuffle': true}"));
    cr_assert_str_eq(c->output.path, "/abs.h5");
    cr_assert_eq(c->output.chunk_rows, 64);
    cr_assert_eq(c->output.gzip_level, 9);
    cr_assert(c->output.shuffle);
    hfeed__config_destroy(c);
    c = must_parse(with("'output': {'path': 'o.h5', 'compression': 'gzip'}"));
    cr_assert_eq(c->output.gzip_level, 4); /* the default level */
    hfeed__config_destroy(c);
    c = must_parse(with("'output': {'path': 'o.h5', 'chunk_rows': 0}"));
    cr_assert_eq(c->output.chunk_rows, 0);
    hfeed__config_destroy(c);
}

Test(config, refuses_bad_output_keys)
{
    must_fail(with("'output': {'dtype': 'float16'}"), "output: unknown key \"dtype\"");
    must_fail(with("'output': 'x.h5'"), "output: expected an object");
    must_fail(with("'output': {}"), "output.path: required key missing");
    must_fail(with("'output': {'path': ''}"), "output.path: expected a non-empty string");
    must_fail(with("'output': {'path': 'o.h5', 'chunk_rows': -1}"),
              "output.chunk_rows: expected an integer from 0 to");
    must_fail(with("'output': {'path': 'o.h5', 'chunk_rows': 1.5}"), "output.chunk_rows:");
    must_fail(with("'output': {'path': 'o.h5', 'compression': 'lzf'}"),
              "output.compression: expected one of \"none\", \"gzip\", got \"lzf\"");
    must_fail(with("'output': {'path': 'o.h5', 'compression': 'gzip', 'gzip_level': 10}"),
              "output.gzip_level: expected an integer from 1 to 9, got 10");
    must_fail(with("'output': {'path': 'o.h5', 'gzip_level': 3}"),
              "output.gzip_level: needs \"compression\": \"gzip\"");
    must_fail(with("'output': {'path': 'o.h5', 'shuffle': 1}"),
              "output.shuffle: expected true or false, got 1");
    must_fail(with("'output': {'path': 'o.h5', 'chunk_rows': 0, 'shuffle': true}"),
              "output.chunk_rows: 0 (contiguous) cannot hold the shuffle filter");
    must_fail(with("'output': {'path': 'o.h5', 'chunk_rows': 0, 'compression': 'gzip'}"),
              "output.chunk_rows: 0 (contiguous) cannot hold compression");
    must_fail(with("'output': {'path': 'o.h5', 'path': 'p.h5'}"), "output: duplicate key");
}

Test(config, refuses_duplicate_top_level_keys)
{
    must_fail(with("'seed': 1, 'seed': 1"), "duplicate key \"seed\" (top level)");
    must_fail("{'files': ['a.h5'], 'files': ['b.h5'], 'fields': [{'name': 'x', 'dataset': '/x'}]}",
              "duplicate key \"files\" (top level)");
}

Test(config, root_must_be_an_object)
{
    must_fail("[]", "top level: expected an object, got an empty array");
    must_fail("3", "top level: expected an object, got 3");
    must_fail("'x'", "top level: expected an object, got \"x\"");
    must_fail("null", "top level: expected an object, got null");
}

Test(config, malformed_json_reports_line_and_column)
{
    must_fail("{\n  'files': ['a.h5'],\n  'fields': [{'name': 'x' 'dataset': '/x'}]\n}",
              "malformed JSON at line 3, column 27, near \"\\\"dataset\\\": ");
    must_fail("{\n'files': [\n  'a.h5',\n  tru\n]}",
              "malformed JSON at line 4, column 3, near \"tru");
    must_fail("{'files': ['a.h5']} x", "malformed JSON at line 1, column 21, near \"x\"");
    /* cJSON notices a trailing comma past the closing brace; the message points at the brace. */
    must_fail("{\n  'files': ['a.h5'],\n}\n", "malformed JSON at line 3, column 1, near \"}\"");
    must_fail("{'files': [1, 2}", "malformed JSON at line 1, column 16, near \"}\"");
    must_fail("{", "malformed JSON at line 1, column 2 (end of text)");
    must_fail("{\n  'files': ['a.h5'],\n", "malformed JSON at line 3, column 1 (end of text)");
}

Test(config, accepts_a_byte_order_mark_and_crlf)
{
    struct hfeed__config *c = must_parse("\xEF\xBB\xBF{\r\n" MIN_KEYS ",\r\n'seed': 5\r\n}\r\n");
    cr_assert_eq(c->seed, 5);
    hfeed__config_destroy(c);
}

Test(config, messages_escape_and_shorten_long_values)
{
    must_fail(with("'shuffle': 'a\\nb'"), "got \"a\\x0ab\"");
    must_fail(with("'shuffle': 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'"),
              "got \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...\"");
    /* 39 ASCII bytes, then a 2-byte character the cut would split: it is dropped whole. */
    must_fail(with("'shuffle': 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\xC3\xA9tail'"),
              "got \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...\"");
}

/* ---- JSON text rules cJSON does not enforce ---------------------------------------------- */

/* cJSON ends a string at a NUL, so "none\u0000" would read as "none"; and it skips every byte
 * below 0x21 as white space. Each row is refused with its line and column. */
Test(config, refuses_nul_escapes_and_control_bytes)
{
    static const struct {
        const char *text;
        const char *needle;
    } rows[] = {
        {"{" MIN_KEYS ", 'shuffle': 'none\\u0000'}", "\\u0000 (a NUL character) in a string at line 1"},
        {"{" MIN_KEYS ", 'shuffle': 'chunk\\u0000x'}", "may not contain NUL"},
        {"{'files': ['a\\u0000.h5'], 'fields': [{'name': 'x', 'dataset': '/x'}]}",
         "column 14"},
        {"{" MIN_KEYS ",\x01 'epochs': 2}", "control character 0x01 between values at line 1"},
        {"{" MIN_KEYS ",\n\x0b'epochs': 2}", "control character 0x0b between values at line 2, "
                                           "column 1"},
        {"{" MIN_KEYS ", 'shuffle': 'no\x1fne'}", "control character 0x1f in a string"},
        {"{" MIN_KEYS ", 'shuffle': 'none\t'}", "control character 0x09 in a string"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct hfeed__config *c = NULL;
        struct hfeed__err err;
        const hfeed_status st = parse(rows[i].text, &c, &err);
        cr_expect_eq(st, HFEED_E_CONFIG, "row %zu: %d %s", i, st, err.msg);
        cr_expect_null(c, "row %zu", i);
        cr_expect_not_null(strstr(err.msg, rows[i].needle), "row %zu: %s\n  lacks %s", i, err.msg,
                           rows[i].needle);
        hfeed__config_destroy(c);
    }
    /* Escapes that are not NUL, and the white space JSON allows, still parse. */
    struct hfeed__config *c = must_parse("{" MIN_KEYS ",\r\n\t'shuffle':\n'chunk',"
                                         " 'read_path': '\\u0061uto'}");
    cr_assert_eq(c->shuffle, HFEED__SHUFFLE_CHUNK);
    cr_assert(c->direct);
    hfeed__config_destroy(c);
}

/* A field limit that fails at once, saying the limit, rather than an open that takes seconds. */
Test(config, fields_are_limited_to_1024)
{
    const size_t n = HFEED__CONFIG_MAX_FIELDS + 1, each = 48;
    char *json = malloc(n * each + 128);
    cr_assert_not_null(json);
    for (size_t count = n - 1; count <= n; count++) {
        size_t used = (size_t)sprintf(json, "{\"files\": [\"a.h5\"], \"fields\": [");
        for (size_t i = 0; i < count; i++)
            used += (size_t)sprintf(json + used, "%s{\"name\": \"f%zu\", \"dataset\": \"/x\"}",
                                    i ? ", " : "", i);
        strcpy(json + used, "]}");
        struct hfeed__config *c = NULL;
        struct hfeed__err err = {HFEED_OK, ""};
        const hfeed_status st = hfeed__config_parse(json, "/base", fake_getenv, &c, &err);
        if (count < n) {
            cr_assert_eq(st, HFEED_OK, "%s", err.msg);
            cr_assert_eq(c->nfields, count);
        } else {
            cr_assert_eq(st, HFEED_E_CONFIG);
            cr_assert_not_null(strstr(err.msg, "fields: 1025 fields, over the limit of 1024"),
                               "%s", err.msg);
        }
        hfeed__config_destroy(c);
    }
    free(json);
}

/* ---- hfeed__config_load --------------------------------------------------------------------- */

Test(config, load_reports_a_missing_file)
{
    struct hfeed__config *c = (struct hfeed__config *)&c;
    struct hfeed__err err = {HFEED_OK, ""};
    const hfeed_status st = hfeed__config_load("/nonexistent/dir/cfg.json", &c, &err);
    cr_assert_eq(st, HFEED_E_FILE);
    cr_assert_null(c);
    cr_assert_not_null(strstr(err.msg, "/nonexistent/dir/cfg.json"), "%s", err.msg);
    cr_assert_not_null(strstr(err.msg, strerror(ENOENT)), "%s", err.msg);
}

Test(config, load_refuses_endless_files)
{
    struct hfeed__config *c = NULL;
    struct hfeed__err err = {HFEED_OK, ""};
    cr_assert_eq(hfeed__config_load("/dev/zero", &c, &err), HFEED_E_FILE, "%s", err.msg);
    cr_assert_null(c);
    cr_assert_not_null(strstr(err.msg, "larger than 16 MiB, the limit for a config"), "%s",
                       err.msg);
}

/* The documented limit is 16 MiB: a file of exactly that size is read, one byte more is not. */
Test(config, load_takes_16_mib_and_refuses_one_byte_more)
{
    const size_t limit = (size_t)16 << 20;
    const char *head = "{\"files\": [\"a.h5\"], \"fields\": [{\"name\": \"x\", "
                       "\"dataset\": \"/x\"}]";
    char *text = malloc(limit + 2);
    cr_assert_not_null(text);
    const char *dir = make_temp_dir();
    for (size_t extra = 0; extra < 2; extra++) {
        const size_t len = limit + extra;
        memset(text, ' ', len);
        memcpy(text, head, strlen(head));
        text[len - 1] = '}';
        struct hfeed__config *c = NULL;
        struct hfeed__err err = {HFEED_OK, ""};
        const char *path = write_file(dir, "big.json", text, len);
        const hfeed_status st = hfeed__config_load(path, &c, &err);
        if (extra == 0) {
            cr_assert_eq(st, HFEED_OK, "exactly 16 MiB: %s", err.msg);
            cr_assert_eq(c->nfields, 1);
            hfeed__config_destroy(c);
        } else {
            cr_assert_eq(st, HFEED_E_FILE, "16 MiB + 1: %d %s", st, err.msg);
            cr_assert_not_null(strstr(err.msg, "larger than 16 MiB"), "%s", err.msg);
        }
    }
    free(text);
    remove_dir(dir);
}

Test(config, load_reads_a_file_of_unknown_size)
{
    struct hfeed__config *c = NULL;
    struct hfeed__err err = {HFEED_OK, ""};
    cr_assert_eq(hfeed__config_load("/dev/null", &c, &err), HFEED_E_CONFIG, "%s", err.msg);
    cr_assert_not_null(strstr(err.msg, "/dev/null: config file is empty"), "%s", err.msg);
}

Test(config, load_reports_a_directory)
{
    struct hfeed__config *c = NULL;
    struct hfeed__err err = {HFEED_OK, ""};
    const char *dir = make_temp_dir();
    cr_assert_eq(hfeed__config_load(dir, &c, &err), HFEED_E_FILE, "%s", err.msg);
    cr_assert_null(c);
    cr_assert_not_null(strstr(err.msg, strerror(EISDIR)), "%s", err.msg);
    remove_dir(dir);
}

Test(config, load_resolves_paths_against_the_file_folder)
{
    const char *dir = make_temp_dir();
    const char *text = "{\"files\": [\"a.h5\", \"../b.h5\"], "
                       "\"fields\": [{\"name\": \"x\", \"dataset\": \"/x\"}]}";
    char want[1100];
    struct hfeed__config *c = NULL;
    struct hfeed__err err = {HFEED_OK, ""};
    const char *path = write_file(dir, "cfg.json", text, strlen(text));
    cr_assert_eq(hfeed__config_load(path, &c, &err), HFEED_OK, "%s", err.msg);
    snprintf(want, sizeof want, "%s/a.h5", dir);
    cr_assert_str_eq(c->files[0], want);
    snprintf(want, sizeof want, "%s/../b.h5", dir);
    cr_assert_str_eq(c->files[1], want);
    hfeed__config_destroy(c);
    /* A relative config path: its folder is relative to the current directory. */
    char cwd[4096];
    cr_assert_not_null(getcwd(cwd, sizeof cwd));
    cr_assert_eq(chdir("/tmp"), 0);
    cr_assert_eq(hfeed__config_load(path + strlen("/tmp/"), &c, &err), HFEED_OK, "%s", err.msg);
    snprintf(want, sizeof want, "%s/a.h5", dir);
    cr_assert_str_eq(c->files[0], want);
    hfeed__config_destroy(c);
    cr_assert_eq(chdir(dir), 0);
    cr_assert_eq(hfeed__config_load("cfg.json", &c, &err), HFEED_OK, "%s", err.msg);
    cr_assert_str_eq(c->files[0], want);
    hfeed__config_destroy(c);
    cr_assert_eq(chdir(cwd), 0);
    remove_dir(dir);
}

Test(config, load_prefixes_content_errors_with_the_path)
{
    const char *dir = make_temp_dir();
    const char *text =
        "{\"files\": [\"a.h5\"],\n \"fields\": [{\"name\": \"x\", \"dataset\": \"/x\"}],"
        "\n \"workers\": 0}";
    struct hfeed__config *c = NULL;
    struct hfeed__err err = {HFEED_OK, ""};
    char want[1100];
    const char *path = write_file(dir, "w.json", text, strlen(text));
    cr_assert_eq(hfeed__config_load(path, &c, &err), HFEED_E_CONFIG);
    snprintf(want, sizeof want, "%s: workers: expected an integer from 1 to 256, got 0", path);
    cr_assert_not_null(strstr(err.msg, want), "%s", err.msg);
    remove_dir(dir);
}

Test(config, load_refuses_a_nul_byte)
{
    const char *dir = make_temp_dir();
    struct hfeed__config *c = NULL;
    struct hfeed__err err = {HFEED_OK, ""};
    const char text[] = "{\"files\": [\"a.h5\"]}\0garbage";
    const char *path = write_file(dir, "nul.json", text, sizeof text - 1);
    cr_assert_eq(hfeed__config_load(path, &c, &err), HFEED_E_CONFIG, "%s", err.msg);
    cr_assert_null(c);
    cr_assert_not_null(strstr(err.msg, "contains a NUL byte at offset 19"), "%s", err.msg);
    remove_dir(dir);
}

Test(config, load_reads_files_larger_than_one_buffer)
{
    const char *dir = make_temp_dir();
    static char text[20000];
    size_t n = (size_t)snprintf(text, sizeof text, "{\"files\": [");
    for (int i = 0; i < 800; i++)
        n += (size_t)snprintf(text + n, sizeof text - n, "%s\"f%03d.h5\"", i ? ", " : "", i);
    n += (size_t)snprintf(text + n, sizeof text - n,
                          "], \"fields\": [{\"name\": \"x\", \"dataset\": \"/x\"}]}");
    struct hfeed__config *c = NULL;
    struct hfeed__err err = {HFEED_OK, ""};
    const char *path = write_file(dir, "big.json", text, n);
    cr_assert_eq(hfeed__config_load(path, &c, &err), HFEED_OK, "%s", err.msg);
    cr_assert_eq(c->nfiles, 800);
    cr_assert(ends_with(c->files[799], "/f799.h5"));
    hfeed__config_destroy(c);
    remove_dir(dir);
}

/* ---- Shipped configs and data files --------------------------------------------------------- */

/* Loads every file in dir whose name starts with prefix and ends in ".json"; each must give
 * want. Returns how many there were. */
static int load_each(const char *dir, const char *prefix, hfeed_status want)
{
    DIR *d = opendir(dir);
    int n = 0;
    cr_assert_not_null(d, "opendir %s: %s", dir, strerror(errno));
    for (struct dirent *e = readdir(d); e != NULL; e = readdir(d)) {
        if (strncmp(e->d_name, prefix, strlen(prefix)) != 0 || !ends_with(e->d_name, ".json"))
            continue;
        char path[2048];
        struct hfeed__config *c = NULL;
        struct hfeed__err err = {HFEED_OK, ""};
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        const hfeed_status st = hfeed__config_load(path, &c, &err);
        cr_expect_eq(st, want, "%s: got %d: %s", e->d_name, st, err.msg);
        cr_expect(st == HFEED_OK || strstr(err.msg, e->d_name) != NULL, "%s: %s", e->d_name,
                  err.msg);
        hfeed__config_destroy(c);
        n++;
    }
    closedir(d);
    return n;
}

Test(config, parses_every_shipped_config)
{
    /* Examples that use "shard": "env" read the real environment. */
    cr_assert_eq(setenv("RANK", "0", 1), 0);
    cr_assert_eq(setenv("WORLD_SIZE", "2", 1), 0);
    cr_assert_geq(load_each(HFEED_CONFIGS_DIR, "", HFEED_OK), 3);
}

Test(config, demo_config_matches_the_demo)
{
    struct hfeed__config *c = NULL;
    struct hfeed__err err = {HFEED_OK, ""};
    cr_assert_eq(hfeed__config_load(HFEED_CONFIGS_DIR "/demo.json", &c, &err), HFEED_OK, "%s",
                 err.msg);
    cr_assert_eq(c->nfiles, 1);
    cr_assert(ends_with(c->files[0], "/configs/../demo/demo.h5"), "%s", c->files[0]);
    cr_assert_eq(c->nfields, 2);
    cr_assert_str_eq(c->fields[0].name, "x");
    cr_assert_str_eq(c->fields[0].dataset, "/features");
    cr_assert_eq(c->fields[0].dtype, HFEED_DTYPE_FLOAT32);
    cr_assert_str_eq(c->fields[1].name, "y");
    cr_assert_str_eq(c->fields[1].dataset, "/labels");
    cr_assert_eq(c->fields[1].dtype, HFEED_DTYPE_INT64);
    cr_assert_eq(c->batch_size, 256);
    cr_assert_eq(c->shuffle, HFEED__SHUFFLE_CHUNK);
    cr_assert_eq(c->workers, 2);
    cr_assert_eq(c->prefetch, 4);
    cr_assert_eq(c->epochs, 1);
    cr_assert_eq(c->seed, 0);
    hfeed__config_destroy(c);
}

Test(config, refuses_every_bad_data_file)
{
    cr_assert_geq(load_each(HFEED_TEST_DATA, "bad-", HFEED_E_CONFIG), 30);
}

Test(config, accepts_every_edge_data_file)
{
    cr_assert_geq(load_each(HFEED_TEST_DATA, "edge-", HFEED_OK), 5);
}

/* ---- Allocation failures -------------------------------------------------------------------- */

/* Fails the nth allocation for n = 0, 1, ... until parse succeeds; each attempt must fail
 * cleanly with HFEED_E_NOMEM (leaks are caught by the sanitizer or valgrind run). */
static void sweep(hfeed_status (*run)(const void *arg, struct hfeed__config **out,
                                      struct hfeed__err *err),
                  const void *arg)
{
    for (long n = 0;; n++) {
        struct hfeed__config *c = (struct hfeed__config *)&c;
        struct hfeed__err err = {HFEED_OK, ""};
        cr_assert_lt(n, 10000, "never succeeded");
        hfeed__alloc_fail_after(n);
        const hfeed_status st = run(arg, &c, &err);
        hfeed__alloc_fail_after(-1);
        if (st == HFEED_OK) {
            cr_assert_gt(n, 10, "suspiciously few allocations: %ld", n);
            hfeed__config_destroy(c);
            return;
        }
        cr_assert_eq(st, HFEED_E_NOMEM, "n=%ld: %d %s", n, st, err.msg);
        cr_assert_null(c, "n=%ld: out not reset", n);
        cr_assert_not_null(strstr(err.msg, "out of memory"), "n=%ld: %s", n, err.msg);
    }
}

static hfeed_status run_parse(const void *arg, struct hfeed__config **out, struct hfeed__err *err)
{
    return parse_in(arg, NULL, out, err);
}

static hfeed_status run_load(const void *arg, struct hfeed__config **out, struct hfeed__err *err)
{
    return hfeed__config_load(arg, out, err);
}

Test(config, survives_every_allocation_failure_in_parse)
{
    env_put("SLURM_PROCID", "1");
    env_put("SLURM_NTASKS", "2");
    sweep(run_parse, "{'files': ['a.h5', '/b.h5', 'c/*.h5'], 'fields': ["
                     "{'name': 'x', 'dataset': '/x'}, {'name': 'y', 'dataset': '/y', "
                     "'dtype': 'native'}], 'batch_size': 8, 'shuffle': 'chunk', 'seed': 3, "
                     "'device': 'cuda:1', 'shard': 'env', 'shard_remainder': 'drop'}");
}

Test(config, survives_every_allocation_failure_in_load)
{
    sweep(run_load, HFEED_CONFIGS_DIR "/example-images.json");
}
