/* config: a JSON config text -> a validated struct hfeed__config (see config.h; the keys, types
 * and defaults are documented in configs/README.md). This file holds the schema: which keys
 * exist in which object, their ranges, defaults and meaning, the paths they name and the shard
 * "env" lookup. Reading one typed value from the cJSON tree, with its message, is config_json.c's
 * (config_json.h); reading a config file is config_file.c's.
 *
 * DESIGN. cJSON parses the whole text into a tree first; this file then walks the tree once and
 * copies what it keeps into our structs. Each object's keys are checked against a fixed list
 * before any value is read (unknown and repeated keys are errors), then the keys are read in a
 * fixed order, so the first problem found is the one reported. Every message starts with the key
 * path (`fields[1].dtype: ...`) and says what was expected and what was found.
 *
 * Memory. Our structs come from hfeed__alloc and friends; the cJSON tree uses cJSON's default
 * malloc and never outlives one call. A config is built in place and, on any failure, handed to
 * hfeed__config_destroy(), which accepts it half built (arrays are zeroed and their counts set
 * as soon as they are allocated).
 *
 * Globals: one lock. cJSON keeps its last parse error and its allocator hooks in process-wide
 * statics, so we never call cJSON_GetErrorPtr() or cJSON_InitHooks(): the position of a parse
 * error comes from return_parse_end, which is per call. But every cJSON parse still writes that
 * static error record, so two loaders opening on two threads would race on it: `cjson_lock`
 * serialises our calls into the parser (it is a leaf lock, held for the parse alone). Like the
 * HDF5 lock, it guards a third-party global that we cannot make per-handle.
 *
 * Numbers. Integer keys accept only integral values below 2^53, exact in a double: see "Numbers"
 * in config_json.c. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include "config.h"

#include <cJSON.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "config_json.h"

struct ctx {
    const char *base_dir; /* as the caller gave it: NULL, relative or absolute */
    char *abs_base;       /* base_dir made absolute; computed at the first relative path */
    const char *(*getenv_fn)(const char *name);
    struct hfeed__err *err;
};

static pthread_mutex_t cjson_lock = PTHREAD_MUTEX_INITIALIZER; /* see "Globals" above */

static const struct hfeed__config_choice shuffle_choices[] = {{"none", HFEED__SHUFFLE_NONE},
                                                              {"global", HFEED__SHUFFLE_GLOBAL},
                                                              {"chunk", HFEED__SHUFFLE_CHUNK},
                                                              {NULL, 0}};
/* "native" maps to HFEED_DTYPE_INVALID, which struct hfeed__field_config uses for it. */
static const struct hfeed__config_choice dtype_choices[] = {
    {"float32", HFEED_DTYPE_FLOAT32}, {"float64", HFEED_DTYPE_FLOAT64},
    {"int32", HFEED_DTYPE_INT32},     {"int64", HFEED_DTYPE_INT64},
    {"native", HFEED_DTYPE_INVALID},  {NULL, 0}};
static const struct hfeed__config_choice remainder_choices[] = {{"pad", 1}, {"drop", 0}, {NULL, 0}};
static const struct hfeed__config_choice read_path_choices[] = {
    {"auto", 1}, {"hdf5", 0}, {NULL, 0}};
static const struct hfeed__config_choice read_rows_choices[] = {
    {"auto", HFEED__ROWS_AUTO}, {"pread", HFEED__ROWS_PREAD}, {"mapping", HFEED__ROWS_MAP},
    {NULL, 0}};
static const struct hfeed__config_choice device_choices[] = {{"auto", HFEED__DEVICE_AUTO},
                                                             {"cpu", HFEED__DEVICE_CPU},
                                                             {"cuda", HFEED__DEVICE_CUDA},
                                                             {"fake", HFEED__DEVICE_FAKE},
                                                             {NULL, 0}};

static const char *const top_keys[] = {
    "files",           "fields",    "batch_size", "drop_last", "shuffle", "seed",
    "shuffle_window",  "epochs",    "workers",    "prefetch",  "device",  "shard",
    "shard_remainder", "read_path", "cache_mb",   "output",    "pinned",  "read_rows",
    NULL};
static const char *const field_keys[] = {"name",  "dataset", "dtype", "normalize",
                                         "scale", "offset",  NULL};
static const char *const output_keys[] = {"path",       "chunk_rows", "compression",
                                          "gzip_level", "shuffle",    NULL};
static const struct hfeed__config_choice normalize_choices[] = {
    {"none", 0}, {"standard", 1}, {NULL, 0}};
static const struct hfeed__config_choice compression_choices[] = {
    {"none", 0}, {"gzip", 1}, {NULL, 0}};
static const char *const shard_keys[] = {"rank", "world_size", NULL};

/* Launchers' (rank, world size) variables for shard "env", in the order they are tried:
 * torchrun and most launchers, Slurm, Open MPI. */
static const char *const env_pairs[][2] = {
    {"RANK", "WORLD_SIZE"},
    {"SLURM_PROCID", "SLURM_NTASKS"},
    {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"},
};

/* ---- Paths ---------------------------------------------------------------------------------- */

/* Returns a new "dir/name", or NULL when out of memory. Trailing slashes of dir are dropped. */
static char *join_path(const char *dir, const char *name)
{
    size_t ld = strlen(dir);
    while (ld > 1 && dir[ld - 1] == '/')
        ld--;
    const size_t slash = (ld == 1 && dir[0] == '/') ? 0 : 1;
    const size_t ln = strlen(name);
    char *s = hfeed__alloc(ld + slash + ln + 1);
    if (s == NULL) return NULL;
    memcpy(s, dir, ld);
    if (slash) s[ld] = '/';
    memcpy(s + ld + slash, name, ln + 1);
    return s;
}

/* Sets cx->abs_base: base_dir, made absolute against the current directory when needed. */
static hfeed_status resolve_base(struct ctx *cx)
{
    char cwd[PATH_MAX];
    char why[128] = "unknown error";
    const char *base = cx->base_dir != NULL ? cx->base_dir : "";
    if (base[0] == '/') {
        cx->abs_base = hfeed__strdup(base);
    } else if (getcwd(cwd, sizeof cwd) != NULL) {
        cx->abs_base = base[0] != '\0' ? join_path(cwd, base) : hfeed__strdup(cwd);
    } else {
        (void)strerror_r(errno, why, sizeof why);
        return HFEED__FAIL(cx->err, HFEED_E_FILE,
                           "files: cannot make relative paths absolute: getcwd: %s", why);
    }
    return cx->abs_base != NULL ? HFEED_OK : hfeed__config_nomem(cx->err);
}

/* Stores in *out a new copy of path, prefixed with the absolute base dir when relative. */
static hfeed_status absolute_path(struct ctx *cx, const char *path, char **out)
{
    if (path[0] == '/') {
        *out = hfeed__strdup(path);
    } else {
        if (cx->abs_base == NULL) HFEED__CHECK(resolve_base(cx));
        *out = join_path(cx->abs_base, path);
    }
    return *out != NULL ? HFEED_OK : hfeed__config_nomem(cx->err);
}

/* ---- Sections ------------------------------------------------------------------------------- */

static hfeed_status parse_files(const cJSON *root, struct ctx *cx, struct hfeed__config *c)
{
    const cJSON *arr = NULL;
    size_t i = 0;
    HFEED__CHECK(hfeed__config_require(root, NULL, "files", &arr, cx->err));
    if (!cJSON_IsArray(arr) || arr->child == NULL)
        return CFG_FAIL(cx->err,
                        "files: expected a non-empty array of paths or glob patterns, got %s",
                        GOT(arr));
    const size_t n = (size_t)cJSON_GetArraySize(arr);
    c->files = hfeed__calloc(n, sizeof *c->files);
    if (c->files == NULL) return hfeed__config_nomem(cx->err);
    c->nfiles = n;
    for (const cJSON *f = arr->child; f != NULL; f = f->next, i++) {
        if (!cJSON_IsString(f) || f->valuestring[0] == '\0')
            return CFG_FAIL(cx->err, "files[%zu]: expected a non-empty string, got %s", i, GOT(f));
        HFEED__CHECK(absolute_path(cx, f->valuestring, &c->files[i]));
    }
    return HFEED_OK;
}

static hfeed_status parse_field(const cJSON *f, size_t i, struct hfeed__field_config *out,
                                struct hfeed__err *err)
{
    char where[32];
    const char *name = NULL;
    const char *dataset = NULL;
    int dtype = HFEED_DTYPE_FLOAT32;
    snprintf(where, sizeof where, "fields[%zu]", i);
    if (!cJSON_IsObject(f))
        return CFG_FAIL(err, "%s: expected an object {\"name\": ..., \"dataset\": ...}, got %s",
                        where, GOT(f));
    HFEED__CHECK(hfeed__config_check_keys(f, field_keys, where, err));
    HFEED__CHECK(hfeed__config_require_string(f, where, "name", &name, err));
    HFEED__CHECK(hfeed__config_require_string(f, where, "dataset", &dataset, err));
    if (dataset[0] != '/' || dataset[1] == '\0')
        return CFG_FAIL(err, "%s.dataset: expected an HDF5 path starting with \"/\", got %s", where,
                        QUOTE(dataset));
    HFEED__CHECK(hfeed__config_get_enum(f, where, "dtype", dtype_choices, &dtype, err));
    out->native = dtype == HFEED_DTYPE_INVALID;
    out->dtype = (hfeed_dtype)dtype;
    out->name = hfeed__strdup(name);
    out->dataset = hfeed__strdup(dataset);
    return out->name != NULL && out->dataset != NULL ? HFEED_OK : hfeed__config_nomem(err);
}

/* Reads a field's transform keys (see struct hfeed__field_config); they need a float dtype. */
static hfeed_status parse_transform(const cJSON *f, size_t i, struct hfeed__field_config *out,
                                    struct hfeed__err *err)
{
    static const char *const keys[] = {"normalize", "scale", "offset"};
    char where[32];
    int standard = 0;
    snprintf(where, sizeof where, "fields[%zu]", i);
    HFEED__CHECK(hfeed__config_get_enum(f, where, "normalize", normalize_choices, &standard, err));
    HFEED__CHECK(hfeed__config_get_numbers(f, where, "scale", &out->scale, &out->nscale, err));
    HFEED__CHECK(hfeed__config_get_numbers(f, where, "offset", &out->offset, &out->noffset, err));
    out->standardize = standard != 0;
    const bool is_float = out->dtype == HFEED_DTYPE_FLOAT32 || out->dtype == HFEED_DTYPE_FLOAT64;
    for (size_t k = 0; k < 3 && !is_float; k++) {
        if (cJSON_GetObjectItemCaseSensitive(f, keys[k]) == NULL) continue;
        if (k == 0 && !out->standardize) continue; /* "normalize": "none" needs nothing */
        return CFG_FAIL(err,
                        "%s: a transform needs \"dtype\": \"float32\" or \"float64\", but "
                        "%s.dtype is %s",
                        PATH(where, keys[k]), where,
                        out->native ? "\"native\"" : QUOTE(hfeed_dtype_name(out->dtype)));
    }
    return HFEED_OK;
}

static hfeed_status parse_fields(const cJSON *root, struct ctx *cx, struct hfeed__config *c)
{
    const cJSON *arr = NULL;
    size_t i = 0;
    HFEED__CHECK(hfeed__config_require(root, NULL, "fields", &arr, cx->err));
    if (!cJSON_IsArray(arr) || arr->child == NULL)
        return CFG_FAIL(cx->err, "fields: expected a non-empty array of objects, got %s", GOT(arr));
    const size_t n = (size_t)cJSON_GetArraySize(arr);
    if (n > HFEED__CONFIG_MAX_FIELDS)
        return CFG_FAIL(cx->err, "fields: %zu fields, over the limit of %d", n,
                        HFEED__CONFIG_MAX_FIELDS);
    c->fields = hfeed__calloc(n, sizeof *c->fields);
    if (c->fields == NULL) return hfeed__config_nomem(cx->err);
    c->nfields = n;
    for (const cJSON *f = arr->child; f != NULL; f = f->next, i++) {
        HFEED__CHECK(parse_field(f, i, &c->fields[i], cx->err));
        HFEED__CHECK(parse_transform(f, i, &c->fields[i], cx->err));
        for (size_t j = 0; j < i; j++) {
            if (strcmp(c->fields[j].name, c->fields[i].name) == 0)
                return CFG_FAIL(cx->err, "fields[%zu].name: %s is already the name of fields[%zu]",
                                i, QUOTE(c->fields[i].name), j);
        }
    }
    return HFEED_OK;
}

/* "cache_mb": an integer number of MiB, or "auto" (the default). */
static hfeed_status get_cache_mb(const cJSON *root, struct hfeed__config *c, struct hfeed__err *err)
{
    const uint64_t max = 1u << 20;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "cache_mb");
    if (v == NULL) return HFEED_OK;
    if (cJSON_IsString(v) && strcmp(v->valuestring, "auto") == 0) return HFEED_OK;
    c->cache_auto = false;
    if (hfeed__config_as_uint(v, 0, max, &c->cache_mb)) return HFEED_OK;
    return CFG_FAIL(err, "cache_mb: expected \"auto\" or an integer from 0 to %llu, got %s",
                    (unsigned long long)max, GOT(v));
}

/* Reads the integer, boolean and enum keys, starting from the defaults already in c. */
static hfeed_status parse_scalars(const cJSON *root, struct hfeed__config *c,
                                  struct hfeed__err *err)
{
    uint64_t window = c->shuffle_window;
    uint64_t workers = c->workers;
    uint64_t prefetch = c->prefetch;
    int shuffle = (int)c->shuffle;
    int pad = c->shard_pad;
    int direct = c->direct;
    HFEED__CHECK(
        hfeed__config_get_uint(root, NULL, "batch_size", 1, 1u << 24, &c->batch_size, err));
    HFEED__CHECK(hfeed__config_get_bool(root, "drop_last", &c->drop_last, err));
    HFEED__CHECK(hfeed__config_get_bool(root, "pinned", &c->pinned, err));
    HFEED__CHECK(hfeed__config_get_enum(root, NULL, "shuffle", shuffle_choices, &shuffle, err));
    HFEED__CHECK(
        hfeed__config_get_uint(root, NULL, "seed", 0, HFEED__CONFIG_MAX_EXACT, &c->seed, err));
    HFEED__CHECK(hfeed__config_get_uint(root, NULL, "shuffle_window", 1, UINT_MAX, &window, err));
    HFEED__CHECK(
        hfeed__config_get_uint(root, NULL, "epochs", 1, HFEED__CONFIG_MAX_EXACT, &c->epochs, err));
    HFEED__CHECK(hfeed__config_get_uint(root, NULL, "workers", 1, 256, &workers, err));
    HFEED__CHECK(hfeed__config_get_uint(root, NULL, "prefetch", 1, 1024, &prefetch, err));
    HFEED__CHECK(
        hfeed__config_get_enum(root, NULL, "shard_remainder", remainder_choices, &pad, err));
    HFEED__CHECK(hfeed__config_get_enum(root, NULL, "read_path", read_path_choices, &direct, err));
    HFEED__CHECK(
        hfeed__config_get_enum(root, NULL, "read_rows", read_rows_choices, &c->read_rows, err));
    HFEED__CHECK(get_cache_mb(root, c, err));
    c->direct = direct != 0;
    c->shuffle = (enum hfeed__shuffle)shuffle;
    c->shuffle_window = (unsigned)window;
    c->workers = (unsigned)workers;
    c->prefetch = (unsigned)prefetch;
    c->shard_pad = pad != 0;
    return HFEED_OK;
}

static hfeed_status parse_device(const cJSON *root, struct hfeed__config *c, struct hfeed__err *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "device");
    int device = HFEED__DEVICE_AUTO;
    uint64_t index = 0;
    if (v == NULL) return HFEED_OK;
    if (cJSON_IsString(v) && hfeed__config_find_choice(device_choices, v->valuestring, &device)) {
        c->device = (enum hfeed__device_req)device;
        c->device_index = -1; /* "cuda", "fake": the opening thread's current device, as torch */
        return HFEED_OK;
    }
    if (cJSON_IsString(v) && strncmp(v->valuestring, "cuda:", 5) == 0 &&
        hfeed__config_parse_decimal(v->valuestring + 5, INT_MAX, &index)) {
        c->device = HFEED__DEVICE_CUDA;
        c->device_index = (int)index;
        return HFEED_OK;
    }
    return CFG_FAIL(err,
                    "device: expected \"auto\", \"cpu\", \"cuda\", \"cuda:N\" (N a decimal "
                    "integer >= 0) or \"fake\", got %s",
                    GOT(v));
}

static hfeed_status shard_from_object(const cJSON *obj, struct hfeed__config *c,
                                      struct hfeed__err *err)
{
    const cJSON *v = NULL;
    uint64_t rank = 0;
    uint64_t world = 1;
    HFEED__CHECK(hfeed__config_check_keys(obj, shard_keys, "shard", err));
    HFEED__CHECK(hfeed__config_require(obj, "shard", "rank", &v, err));
    HFEED__CHECK(hfeed__config_require(obj, "shard", "world_size", &v, err));
    HFEED__CHECK(hfeed__config_get_uint(obj, "shard", "world_size", 1, UINT_MAX, &world, err));
    HFEED__CHECK(hfeed__config_get_uint(obj, "shard", "rank", 0, UINT_MAX, &rank, err));
    if (rank >= world)
        return CFG_FAIL(err, "shard.rank: expected an integer < shard.world_size (%llu), got %llu",
                        (unsigned long long)world, (unsigned long long)rank);
    c->rank = (unsigned)rank;
    c->world_size = (unsigned)world;
    return HFEED_OK;
}

/* Reads rank and world size from the first launcher variable pair that is set in full (a
 * variable set to "" counts as set, and is then refused as malformed). */
static hfeed_status shard_from_env(struct ctx *cx, struct hfeed__config *c)
{
    for (size_t i = 0; i < sizeof env_pairs / sizeof env_pairs[0]; i++) {
        const char *const *names = env_pairs[i];
        const char *rank_s = cx->getenv_fn(names[0]);
        const char *world_s = cx->getenv_fn(names[1]);
        uint64_t rank = 0;
        uint64_t world = 0;
        if (rank_s == NULL || world_s == NULL) continue;
        if (!hfeed__config_parse_decimal(world_s, UINT_MAX, &world) || world == 0)
            return CFG_FAIL(cx->err, "shard: \"env\": %s=%s: expected a decimal integer >= 1",
                            names[1], QUOTE(world_s));
        if (!hfeed__config_parse_decimal(rank_s, UINT_MAX, &rank))
            return CFG_FAIL(cx->err, "shard: \"env\": %s=%s: expected a decimal integer >= 0",
                            names[0], QUOTE(rank_s));
        if (rank >= world)
            return CFG_FAIL(cx->err, "shard: \"env\": %s=%llu: expected a value below %s=%llu",
                            names[0], (unsigned long long)rank, names[1],
                            (unsigned long long)world);
        c->rank = (unsigned)rank;
        c->world_size = (unsigned)world;
        c->shard_from_env = true;
        return HFEED_OK;
    }
    return CFG_FAIL(cx->err,
                    "shard: \"env\" but none of RANK/WORLD_SIZE, SLURM_PROCID/SLURM_NTASKS, "
                    "OMPI_COMM_WORLD_RANK/OMPI_COMM_WORLD_SIZE is set");
}

static hfeed_status parse_shard(const cJSON *root, struct ctx *cx, struct hfeed__config *c)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "shard");
    if (v == NULL) return HFEED_OK;
    if (cJSON_IsObject(v)) return shard_from_object(v, c, cx->err);
    if (cJSON_IsString(v) && strcmp(v->valuestring, "env") == 0) return shard_from_env(cx, c);
    return CFG_FAIL(cx->err,
                    "shard: expected an object {\"rank\": R, \"world_size\": W} or \"env\", "
                    "got %s",
                    GOT(v));
}

static hfeed_status parse_output(const cJSON *root, struct ctx *cx, struct hfeed__config *c)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "output");
    struct hfeed__output_config *o = &c->output;
    const char *path = NULL;
    int gzip = 0;
    uint64_t level = 4;
    if (v == NULL) return HFEED_OK;
    if (!cJSON_IsObject(v))
        return CFG_FAIL(cx->err, "output: expected an object {\"path\": ...}, got %s", GOT(v));
    HFEED__CHECK(hfeed__config_check_keys(v, output_keys, "output", cx->err));
    HFEED__CHECK(hfeed__config_require_string(v, "output", "path", &path, cx->err));
    HFEED__CHECK(
        hfeed__config_get_uint(v, "output", "chunk_rows", 0, 1u << 30, &o->chunk_rows, cx->err));
    HFEED__CHECK(
        hfeed__config_get_enum(v, "output", "compression", compression_choices, &gzip, cx->err));
    HFEED__CHECK(hfeed__config_get_uint(v, "output", "gzip_level", 1, 9, &level, cx->err));
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(v, "shuffle");
    if (sh != NULL && !cJSON_IsBool(sh))
        return CFG_FAIL(cx->err, "output.shuffle: expected true or false, got %s", GOT(sh));
    o->shuffle = cJSON_IsTrue(sh);
    if (!gzip && cJSON_GetObjectItemCaseSensitive(v, "gzip_level") != NULL)
        return CFG_FAIL(cx->err, "output.gzip_level: needs \"compression\": \"gzip\"");
    o->gzip_level = gzip ? (int)level : 0;
    if (o->chunk_rows == 0 && (gzip || o->shuffle))
        return CFG_FAIL(cx->err, "output.chunk_rows: 0 (contiguous) cannot hold %s; use chunks",
                        gzip ? "compression" : "the shuffle filter");
    o->present = true;
    return absolute_path(cx, path, &o->path);
}

static hfeed_status parse_root(const cJSON *root, struct ctx *cx, struct hfeed__config *c)
{
    if (!cJSON_IsObject(root))
        return CFG_FAIL(cx->err, "top level: expected an object, got %s", GOT(root));
    HFEED__CHECK(hfeed__config_check_keys(root, top_keys, NULL, cx->err));
    HFEED__CHECK(parse_files(root, cx, c));
    HFEED__CHECK(parse_fields(root, cx, c));
    HFEED__CHECK(parse_scalars(root, c, cx->err));
    HFEED__CHECK(parse_device(root, c, cx->err));
    HFEED__CHECK(parse_output(root, cx, c));
    return parse_shard(root, cx, c);
}

/* ---- Entry points --------------------------------------------------------------------------- */

static const char *system_getenv(const char *name)
{
    return getenv(name);
}

hfeed_status hfeed__config_parse(const char *json, const char *base_dir,
                                 const char *(*getenv_fn)(const char *name),
                                 struct hfeed__config **out, struct hfeed__err *err)
{
    const char *end = NULL;
    if (out == NULL || json == NULL)
        return HFEED__FAIL(err, HFEED_E_INVALID_ARG, "config: NULL json or out");
    *out = NULL;
    if (strncmp(json, "\xEF\xBB\xBF", 3) == 0) json += 3; /* a UTF-8 byte order mark */
    if (hfeed__config_is_blank(json))
        return CFG_FAIL(err, "config text is empty; a config is a JSON object such as "
                             "{\"files\": [\"data.h5\"], \"fields\": [{\"name\": \"x\", "
                             "\"dataset\": \"/x\"}]} (see configs/README.md)");
    HFEED__CHECK(hfeed__config_check_text(json, err));
    /* The length counts the terminator, so that cJSON refuses text after the value. */
    pthread_mutex_lock(&cjson_lock);
    cJSON *root = cJSON_ParseWithLengthOpts(json, strlen(json) + 1, &end, 1);
    pthread_mutex_unlock(&cjson_lock);
    if (root == NULL) return hfeed__config_json_error(json, end, err);
    struct ctx cx = {base_dir, NULL, getenv_fn != NULL ? getenv_fn : system_getenv, err};
    struct hfeed__config *c = hfeed__calloc(1, sizeof *c);
    hfeed_status st = c != NULL ? HFEED_OK : hfeed__config_nomem(err);
    if (st == HFEED_OK) {
        /* The defaults of every optional key (configs/README.md lists the same). */
        *c = (struct hfeed__config){.batch_size = 256,
                                    .shuffle = HFEED__SHUFFLE_NONE,
                                    .shuffle_window = 4,
                                    .epochs = 1,
                                    .workers = 2,
                                    .prefetch = 4,
                                    .device = HFEED__DEVICE_AUTO,
                                    .device_index = -1,
                                    .world_size = 1,
                                    .shard_pad = true,
                                    .direct = true,
                                    .cache_mb = 256,
                                    .cache_auto = true,
                                    .pinned = true,
                                    .output.chunk_rows = HFEED__OUTPUT_AUTO_CHUNK};
        st = parse_root(root, &cx, c);
    }
    cJSON_Delete(root);
    hfeed__free(cx.abs_base);
    if (st != HFEED_OK) {
        hfeed__config_destroy(c);
        return st;
    }
    *out = c;
    return HFEED_OK;
}

bool hfeed__config_is_blank(const char *text)
{
    if (strncmp(text, "\xEF\xBB\xBF", 3) == 0) text += 3;
    return text[strspn(text, " \t\r\n")] == '\0';
}

void hfeed__config_destroy(struct hfeed__config *c)
{
    if (c == NULL) return;
    for (size_t i = 0; c->files != NULL && i < c->nfiles; i++)
        hfeed__free(c->files[i]);
    for (size_t i = 0; c->fields != NULL && i < c->nfields; i++) {
        hfeed__free(c->fields[i].name);
        hfeed__free(c->fields[i].dataset);
        hfeed__free(c->fields[i].scale);
        hfeed__free(c->fields[i].offset);
    }
    hfeed__free(c->output.path);
    hfeed__free(c->files);
    hfeed__free(c->fields);
    hfeed__free(c);
}
