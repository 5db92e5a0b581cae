/* config_json: the config module's private header, shared by config.c (the schema) and
 * config_json.c (typed readers of cJSON values whose messages name the key path). It declares
 * cJSON types, so only config*.c include it: cJSON never leaves the config module, and nothing
 * outside it (config.h included) sees a cJSON type.
 *
 * Every reader fails with HFEED_E_CONFIG and a message that starts with the key path
 * (`fields[1].dtype: ...`) and says what was expected and what was found. `where` is always the
 * key path of the object that holds the key, NULL for the top level. Readers of optional keys
 * leave *out as it was when the key is absent, so the caller presets the default. */
#ifndef HFEED_CONFIG_JSON_H
#define HFEED_CONFIG_JSON_H

#include <cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* The largest integer accepted anywhere: 2^53 - 1, see "Numbers" in config_json.c. */
#define HFEED__CONFIG_MAX_EXACT ((uint64_t)9007199254740991u)

/* A string a string-enum key accepts and the value it stands for. Lists end with {NULL, 0}. */
struct hfeed__config_choice {
    const char *name;
    int value;
};

/* ---- Message pieces ------------------------------------------------------------------------- */

/* Writes s in double quotes into buf (len >= 16): at most 40 bytes of it, "..." when cut (never
 * inside a UTF-8 sequence), quotes and backslashes escaped, control bytes as \xNN, so that a
 * message stays one short line. Returns: buf. */
const char *hfeed__config_quote(const char *s, char *buf, size_t len);

/* Describes a JSON value for the "got ..." part of a message. Returns: buf. */
const char *hfeed__config_describe(const cJSON *v, char *buf, size_t len);

/* Writes "where.key" (or "key" when where is NULL, the top level) into buf. Returns: buf. */
const char *hfeed__config_key_path(char *buf, size_t len, const char *where, const char *key);

/* Message arguments formatted into a compound literal, which lives until the end of the
 * enclosing block (C11 6.5.2.5), so `CFG_FAIL(err, ..., GOT(v))` needs no buffer of its own. */
#define GOT(v) hfeed__config_describe((v), (char[64]){""}, 64)
#define QUOTE(s) hfeed__config_quote((s), (char[64]){""}, 64)
#define PATH(where, key) hfeed__config_key_path((char[96]){""}, 96, (where), (key))
/* Records an HFEED_E_CONFIG message; in debug builds it ends with the caller's file and line. */
#define CFG_FAIL(err, ...) HFEED__FAIL((err), HFEED_E_CONFIG, __VA_ARGS__)

/* Records "config: out of memory". Returns: HFEED_E_NOMEM. */
hfeed_status hfeed__config_nomem(struct hfeed__err *err);

/* Records where cJSON stopped parsing json (`at`, its return_parse_end; NULL = the start) as a
 * "malformed JSON" message with a 1-based line and column. Returns: HFEED_E_CONFIG. */
hfeed_status hfeed__config_json_error(const char *json, const char *at, struct hfeed__err *err);

/* Refuses what cJSON lets through but JSON or this config does not allow: a control byte
 * outside a string other than space, tab, CR and LF (cJSON skips every byte below 0x21 as
 * white space), a raw control byte inside a string, and the escape \u0000 (cJSON's strings end
 * at a NUL, so "none\u0000" would read as "none"). Returns: HFEED_OK or HFEED_E_CONFIG with the
 * line and column. */
hfeed_status hfeed__config_check_text(const char *json, struct hfeed__err *err);

/* ---- Key readers ---------------------------------------------------------------------------- */

/* Fails on the first key of obj that is not in allowed (NULL-terminated, fewer names than an
 * unsigned long has bits) or that repeats; an unknown key's message suggests the nearest
 * allowed one (hfeed__config_nearest), as in `unknown key "bach_size" (top level); did you mean
 * "batch_size"?`. */
hfeed_status hfeed__config_check_keys(const cJSON *obj, const char *const *allowed,
                                      const char *where, struct hfeed__err *err);

/* The name in allowed (NULL-terminated) nearest to key by edit distance (insertions,
 * deletions, substitutions and swaps of adjacent bytes), when it is close enough to be a typo
 * of it: at most 2 edits, or a third of the longer name's length, and fewer than key's length.
 * Returns: that name (borrowed from allowed), or NULL. Pure. */
const char *hfeed__config_nearest(const char *key, const char *const *allowed);

/* Points *out at obj's member key, failing when it is absent.
 * Ownership: *out is borrowed from obj's tree. */
hfeed_status hfeed__config_require(const cJSON *obj, const char *where, const char *key,
                                   const cJSON **out, struct hfeed__err *err);

/* Points *out at obj's member key, which must be a non-empty string.
 * Ownership: *out is borrowed from obj's tree. */
hfeed_status hfeed__config_require_string(const cJSON *obj, const char *where, const char *key,
                                          const char **out, struct hfeed__err *err);

/* Whether v is an integral number in [min, max] (max <= HFEED__CONFIG_MAX_EXACT); stores it in
 * *out. Records no message. */
bool hfeed__config_as_uint(const cJSON *v, uint64_t min, uint64_t max, uint64_t *out);

/* Reads obj's member key as an integer in [min, max] into *out. A max of HFEED__CONFIG_MAX_EXACT
 * means "no limit of its own" and is not spelled out unless exceeded. */
hfeed_status hfeed__config_get_uint(const cJSON *obj, const char *where, const char *key,
                                    uint64_t min, uint64_t max, uint64_t *out,
                                    struct hfeed__err *err);

/* Reads the top-level key as true/false into *out. */
hfeed_status hfeed__config_get_bool(const cJSON *obj, const char *key, bool *out,
                                    struct hfeed__err *err);

/* Looks s up in choices; stores its value in *out and returns true when found. */
bool hfeed__config_find_choice(const struct hfeed__config_choice *choices, const char *s, int *out);

/* Reads obj's member key as one of the strings in choices into *out. */
hfeed_status hfeed__config_get_enum(const cJSON *obj, const char *where, const char *key,
                                    const struct hfeed__config_choice *choices, int *out,
                                    struct hfeed__err *err);

/* Reads obj's member key as a finite number (stored as one value) or a non-empty array of
 * finite numbers (one per feature column; the count is checked against the sample shape when the
 * files are open) into a new array *out of *n values. An absent key leaves *out NULL.
 * Ownership: *out is the caller's (hfeed__free), also when a later element fails. */
hfeed_status hfeed__config_get_numbers(const cJSON *obj, const char *where, const char *key,
                                       double **out, size_t *n, struct hfeed__err *err);

/* Parses s as a plain decimal integer (digits only: no sign, space or dot) no larger than max.
 * Records no message. */
bool hfeed__config_parse_decimal(const char *s, uint64_t max, uint64_t *out);

#endif
