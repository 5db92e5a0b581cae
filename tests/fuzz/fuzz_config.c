/* libFuzzer harness for hfeed__config_parse (loader/config.c, config_json.c).
 *
 * Input: the config text itself (a NUL is appended; an input holding a NUL is parsed up to it,
 * as a C caller's string would be). base_dir is fixed, so relative paths are made absolute, and
 * shard "env" lookups get fixed answers (RANK=1, WORLD_SIZE=4, anything else unset), so that
 * the sharding code is reached without the process environment.
 * On success the parsed config must satisfy the invariants config.h promises; a violation
 * aborts (a finding). Seeds: the JSON files in configs/ and tests/data/. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

static const char *fixed_env(const char *name)
{
    if (strcmp(name, "RANK") == 0) return "1";
    if (strcmp(name, "WORLD_SIZE") == 0) return "4";
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1); /* exact size: ASan sees any read past the terminator */
    if (text == NULL) abort();
    memcpy(text, data, size);
    text[size] = '\0';
    struct hfeed__config *cfg = NULL;
    struct hfeed__err err;
    memset(&err, 0, sizeof err);
    const hfeed_status st = hfeed__config_parse(text, "/base", fixed_env, &cfg, &err);
    if (st == HFEED_OK) {
        if (cfg == NULL || cfg->nfields < 1 || cfg->nfields > HFEED__CONFIG_MAX_FIELDS ||
            cfg->nfiles < 1 || cfg->batch_size < 1 || cfg->workers < 1 || cfg->prefetch < 1 ||
            cfg->rank >= cfg->world_size)
            abort();
        for (size_t i = 0; i < cfg->nfields; i++)
            if (cfg->fields[i].name == NULL || cfg->fields[i].name[0] == '\0' ||
                cfg->fields[i].dataset == NULL)
                abort();
        for (size_t i = 0; i < cfg->nfiles; i++)
            if (cfg->files[i] == NULL || cfg->files[i][0] != '/') abort();
    } else if (cfg != NULL || err.msg[0] == '\0' || memchr(err.msg, '\0', sizeof err.msg) == NULL) {
        abort(); /* a failure leaves no config and always says why */
    }
    hfeed__config_destroy(cfg);
    free(text);
    return 0;
}
