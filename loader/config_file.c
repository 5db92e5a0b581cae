/* config_file: hfeed__config_load(), the config module's file half: reads a config file (also a
 * pipe, of unknown size; at most 16 MiB, no NUL bytes) and parses it with its folder as the base
 * of relative paths. Messages about the content name the file first, as compilers do. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "config.h"

/* Config files larger than this are refused: a config is a few lines, not a data file. */
#define MAX_FILE_BYTES ((size_t)16 << 20)

static hfeed_status nomem(struct hfeed__err *err)
{
    return HFEED__FAIL(err, HFEED_E_NOMEM, "config: out of memory");
}

/* Records `config file "path": <strerror(e)>` as HFEED_E_FILE. */
static hfeed_status file_error(const char *path, int e, struct hfeed__err *err)
{
    char why[128] = "unknown error";
    (void)strerror_r(e, why, sizeof why);
    return HFEED__FAIL(err, HFEED_E_FILE, "config file \"%s\": %s", path, why);
}

/* Doubles the buffer *buf of *cap bytes (4096 at first, at most `most`), keeping its first len
 * bytes. */
static bool grow(char **buf, size_t len, size_t *cap, size_t most)
{
    const size_t want = *cap == 0 ? 4096 : 2 * *cap < most ? 2 * *cap : most;
    char *bigger = hfeed__alloc(want);
    if (bigger == NULL) return false;
    if (len > 0) memcpy(bigger, *buf, len);
    hfeed__free(*buf);
    *buf = bigger;
    *cap = want;
    return true;
}

/* Reads the whole file at path into a new NUL-terminated buffer *out (freed by the caller, also
 * on failure). The buffer grows as needed: the file may be a pipe, whose size is unknown. It
 * holds at most MAX_FILE_BYTES + 1 bytes and the terminator, so that a file of exactly
 * MAX_FILE_BYTES is read and one byte more is seen. */
static hfeed_status read_text(const char *path, char **out, struct hfeed__err *err)
{
    size_t len = 0;
    size_t cap = 0;
    hfeed_status st = HFEED_OK;
    FILE *f = fopen(path, "rb");
    if (f == NULL) return file_error(path, errno, err);
    while (st == HFEED_OK && len <= MAX_FILE_BYTES) {
        if (len + 1 >= cap && !grow(out, len, &cap, MAX_FILE_BYTES + 2)) {
            st = nomem(err);
            break;
        }
        const size_t got = fread(*out + len, 1, cap - len - 1, f);
        len += got;
        if (got == 0 && ferror(f)) st = file_error(path, errno, err);
        if (got == 0) break;
    }
    fclose(f);
    if (st != HFEED_OK) return st;
    if (len > MAX_FILE_BYTES)
        return HFEED__FAIL(err, HFEED_E_FILE,
                           "config file \"%s\": larger than %zu MiB, the limit for a config "
                           "(is it a data file?)",
                           path, MAX_FILE_BYTES >> 20);
    (*out)[len] = '\0';
    if (strlen(*out) != len)
        return HFEED__FAIL(err, HFEED_E_CONFIG, "%s: contains a NUL byte at offset %zu", path,
                           strlen(*out));
    return HFEED_OK;
}

/* Stores in *out a new copy of path's folder, or NULL (the current directory) for a bare name. */
static hfeed_status folder_of(const char *path, char **out, struct hfeed__err *err)
{
    const char *slash = strrchr(path, '/');
    *out = NULL;
    if (slash == NULL) return HFEED_OK;
    *out = hfeed__strdup(path);
    if (*out == NULL) return nomem(err);
    /* "/cfg.json" -> "/", "a/b/cfg.json" -> "a/b" */
    (*out)[slash == path ? 1 : (size_t)(slash - path)] = '\0';
    return HFEED_OK;
}

hfeed_status hfeed__config_load(const char *path, struct hfeed__config **out,
                                struct hfeed__err *err)
{
    char *text = NULL;
    char *dir = NULL;
    if (out == NULL || path == NULL)
        return HFEED__FAIL(err, HFEED_E_INVALID_ARG, "config: NULL path or out");
    *out = NULL;
    const bool fresh = err != NULL && err->code == HFEED_OK;
    hfeed_status st = read_text(path, &text, err);
    if (st == HFEED_OK && hfeed__config_is_blank(text))
        st = HFEED__FAIL(err, HFEED_E_CONFIG,
                         "%s: config file is empty; a config is a JSON object such as "
                         "{\"files\": [\"data.h5\"], \"fields\": [{\"name\": \"x\", "
                         "\"dataset\": \"/x\"}]} (see configs/README.md)",
                         path);
    if (st == HFEED_OK) st = folder_of(path, &dir, err);
    if (st == HFEED_OK) {
        st = hfeed__config_parse(text, dir, NULL, out, err);
        /* Messages about the content name the file first, as compilers do: "path: ...". */
        if (st == HFEED_E_CONFIG && fresh) {
            char msg[sizeof err->msg];
            snprintf(msg, sizeof msg, "%.200s: %.800s", path, err->msg);
            memcpy(err->msg, msg, sizeof msg);
        }
    }
    hfeed__free(text);
    hfeed__free(dir);
    return st;
}
