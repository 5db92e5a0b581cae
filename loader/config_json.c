/* config_json: the config module's typed readers of cJSON values (declared in config_json.h,
 * which only config*.c include): integers, booleans, string enums, number lists, required keys
 * and the allowed-key check, each failing with a message that starts with the key path and says
 * what was expected and what was found; plus the pieces of those messages (a quoted string, a
 * described value, a key path) and the "malformed JSON" message. The schema, which keys exist
 * where and what they mean, is config.c's; nothing here knows a key name.
 *
 * Numbers. JSON numbers reach us as doubles. Integer keys accept only integral values below
 * 2^53, where every integer is exact in a double, so no accepted value was silently rounded:
 * 2.5, 1e300 and "3" are refused; 1e3 and 64.0 are the integers 1000 and 64. */
#include "config_json.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"

/* ---- Message pieces ------------------------------------------------------------------------- */

hfeed_status hfeed__config_nomem(struct hfeed__err *err)
{
    return HFEED__FAIL(err, HFEED_E_NOMEM, "config: out of memory");
}

const char *hfeed__config_quote(const char *s, char *buf, size_t len)
{
    size_t o = 0;
    size_t i = 0;
    buf[o++] = '"';
    for (; s[i] != '\0' && i < 40 && o + 8 < len; i++) {
        const unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20) {
            o += (size_t)snprintf(buf + o, len - o, "\\x%02x", ch);
            continue;
        }
        if (ch == '"' || ch == '\\') buf[o++] = '\\';
        buf[o++] = (char)ch;
    }
    if (s[i] != '\0') {
        if (((unsigned char)s[i] & 0xC0) == 0x80) { /* the cut splits a character: drop it */
            while (o > 1 && ((unsigned char)buf[o - 1] & 0xC0) == 0x80)
                o--;
            if (o > 1 && (unsigned char)buf[o - 1] >= 0xC0) o--;
        }
        o += (size_t)snprintf(buf + o, len - o, "...");
    }
    snprintf(buf + o, len - o, "\"");
    return buf;
}

const char *hfeed__config_describe(const cJSON *v, char *buf, size_t len)
{
    const double d = v->valuedouble;
    if (cJSON_IsString(v)) return hfeed__config_quote(v->valuestring, buf, len);
    if (cJSON_IsNumber(v) && d > -1e18 && d < 1e18 && d == (double)(long long)d)
        snprintf(buf, len, "%lld", (long long)d);
    else if (cJSON_IsNumber(v))
        snprintf(buf, len, "%.15g", d);
    else if (cJSON_IsBool(v))
        snprintf(buf, len, "%s", cJSON_IsTrue(v) ? "true" : "false");
    else if (cJSON_IsNull(v))
        snprintf(buf, len, "null");
    else if (cJSON_IsArray(v))
        snprintf(buf, len, "%s", v->child == NULL ? "an empty array" : "an array");
    else
        snprintf(buf, len, "an object");
    return buf;
}

const char *hfeed__config_key_path(char *buf, size_t len, const char *where, const char *key)
{
    snprintf(buf, len, "%s%s%s", where ? where : "", where ? "." : "", key);
    return buf;
}

/* Reports where cJSON stopped as a 1-based line and column (in bytes). cJSON stops at the
 * mistake or just after the token before it (after a trailing comma, past the closing brace), so
 * whitespace there is skipped back over to point at that token. */
/* Line and column (from 1; columns in bytes) of `at` in json. */
static void line_col(const char *json, const char *at, size_t *line, size_t *col)
{
    const char *line_start = json;
    *line = 1;
    for (const char *p = json; p < at; p++) {
        if (*p == '\n') {
            ++*line;
            line_start = p + 1;
        }
    }
    *col = (size_t)(at - line_start) + 1;
}

hfeed_status hfeed__config_check_text(const char *json, struct hfeed__err *err)
{
    bool in_string = false;
    size_t line, col;
    for (const char *p = json; *p != '\0'; p++) {
        const unsigned char ch = (unsigned char)*p;
        if (in_string && ch == '\\') {
            if (strncmp(p + 1, "u0000", 5) == 0) {
                line_col(json, p, &line, &col);
                return CFG_FAIL(err,
                                "\\u0000 (a NUL character) in a string at line %zu, column %zu: "
                                "strings in a config may not contain NUL",
                                line, col);
            }
            if (p[1] != '\0') p++; /* the escaped character cannot end the string */
            continue;
        }
        if (ch == '"') in_string = !in_string;
        if (ch >= 0x20 || (!in_string && (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r')))
            continue;
        line_col(json, p, &line, &col);
        return CFG_FAIL(err,
                        "control character 0x%02x %s at line %zu, column %zu: JSON allows only "
                        "space, tab, CR and LF between values, and escapes such as \\n or "
                        "\\u0001 in strings",
                        ch, in_string ? "in a string" : "between values", line, col);
    }
    return HFEED_OK;
}

hfeed_status hfeed__config_json_error(const char *json, const char *at, struct hfeed__err *err)
{
    size_t line = 1, col = 1;
    char near[24] = "";
    if (at == NULL || at < json) at = json;
    while (*at != '\0' && at > json && strchr(" \t\r\n", *at) != NULL)
        at--;
    line_col(json, at, &line, &col);
    if (*at == '\0')
        return CFG_FAIL(err, "malformed JSON at line %zu, column %zu (end of text)", line, col);
    const size_t n = strcspn(at, "\r\n");
    memcpy(near, at, n < sizeof near - 1 ? n : sizeof near - 1);
    return CFG_FAIL(err, "malformed JSON at line %zu, column %zu, near %s", line, col, QUOTE(near));
}

/* ---- Key readers ---------------------------------------------------------------------------- */

hfeed_status hfeed__config_check_keys(const cJSON *obj, const char *const *allowed,
                                      const char *where, struct hfeed__err *err)
{
    unsigned long seen = 0; /* bit i: allowed[i] was met */
    for (const cJSON *c = obj->child; c != NULL; c = c->next) {
        size_t i = 0;
        while (allowed[i] != NULL && strcmp(allowed[i], c->string) != 0)
            i++;
        if (allowed[i] != NULL && (seen & (1ul << i)) == 0) {
            seen |= 1ul << i;
            continue;
        }
        const char *what = allowed[i] != NULL ? "duplicate" : "unknown";
        const char *near = allowed[i] != NULL ? NULL : hfeed__config_nearest(c->string, allowed);
        char hint[96] = "";
        if (near != NULL) snprintf(hint, sizeof hint, "; did you mean %s?", QUOTE(near));
        if (where == NULL)
            return CFG_FAIL(err, "%s key %s (top level)%s", what, QUOTE(c->string), hint);
        return CFG_FAIL(err, "%s: %s key %s%s", where, what, QUOTE(c->string), hint);
    }
    return HFEED_OK;
}

/* Optimal string alignment distance (Levenshtein plus the swap of two adjacent characters,
 * the commonest typo) between a and b, in bytes; 99 when either is longer than 63 bytes. */
static size_t edit_distance(const char *a, const char *b)
{
    enum { MAX = 64 };
    const size_t la = strlen(a), lb = strlen(b);
    if (la >= MAX || lb >= MAX) return 99;
    size_t d[MAX][MAX];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            const size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            size_t best = d[i - 1][j - 1] + cost;
            if (d[i - 1][j] + 1 < best) best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best) best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    }
    return d[la][lb];
}

const char *hfeed__config_nearest(const char *key, const char *const *allowed)
{
    const char *best = NULL;
    size_t best_d = SIZE_MAX;
    for (size_t i = 0; allowed[i] != NULL; i++) {
        const size_t d = edit_distance(key, allowed[i]);
        if (d < best_d) {
            best_d = d;
            best = allowed[i];
        }
    }
    /* Close enough to be a typo of it: 2 edits, or a third of the longer name. */
    const size_t lk = strlen(key), lb = best != NULL ? strlen(best) : 0;
    const size_t most = (lk > lb ? lk : lb) / 3 > 2 ? (lk > lb ? lk : lb) / 3 : 2;
    return best != NULL && best_d <= most && best_d < lk ? best : NULL;
}

hfeed_status hfeed__config_require(const cJSON *obj, const char *where, const char *key,
                                   const cJSON **out, struct hfeed__err *err)
{
    *out = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (*out != NULL) return HFEED_OK;
    return CFG_FAIL(err, "%s: required key missing", PATH(where, key));
}

hfeed_status hfeed__config_require_string(const cJSON *obj, const char *where, const char *key,
                                          const char **out, struct hfeed__err *err)
{
    const cJSON *v = NULL;
    HFEED__CHECK(hfeed__config_require(obj, where, key, &v, err));
    if (!cJSON_IsString(v) || v->valuestring[0] == '\0')
        return CFG_FAIL(err, "%s: expected a non-empty string, got %s", PATH(where, key), GOT(v));
    *out = v->valuestring;
    return HFEED_OK;
}

bool hfeed__config_as_uint(const cJSON *v, uint64_t min, uint64_t max, uint64_t *out)
{
    if (!cJSON_IsNumber(v)) return false;
    const double d = v->valuedouble;
    if (!(d >= (double)min && d <= (double)max)) return false; /* false for NaN too */
    const uint64_t u = (uint64_t)d;
    if ((double)u != d) return false;
    *out = u;
    return true;
}

hfeed_status hfeed__config_get_uint(const cJSON *obj, const char *where, const char *key,
                                    uint64_t min, uint64_t max, uint64_t *out,
                                    struct hfeed__err *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    const unsigned long long lo = min;
    if (v == NULL || hfeed__config_as_uint(v, min, max, out)) return HFEED_OK;
    if (max != HFEED__CONFIG_MAX_EXACT)
        return CFG_FAIL(err, "%s: expected an integer from %llu to %llu, got %s", PATH(where, key),
                        lo, (unsigned long long)max, GOT(v));
    if (cJSON_IsNumber(v) && v->valuedouble > (double)max)
        return CFG_FAIL(err, "%s: expected an integer >= %llu and below 2^53, got %s",
                        PATH(where, key), lo, GOT(v));
    return CFG_FAIL(err, "%s: expected an integer >= %llu, got %s", PATH(where, key), lo, GOT(v));
}

hfeed_status hfeed__config_get_bool(const cJSON *obj, const char *key, bool *out,
                                    struct hfeed__err *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (v == NULL) return HFEED_OK;
    if (!cJSON_IsBool(v)) return CFG_FAIL(err, "%s: expected true or false, got %s", key, GOT(v));
    *out = cJSON_IsTrue(v);
    return HFEED_OK;
}

bool hfeed__config_find_choice(const struct hfeed__config_choice *choices, const char *s, int *out)
{
    for (const struct hfeed__config_choice *c = choices; c->name != NULL; c++) {
        if (strcmp(c->name, s) == 0) {
            *out = c->value;
            return true;
        }
    }
    return false;
}

hfeed_status hfeed__config_get_enum(const cJSON *obj, const char *where, const char *key,
                                    const struct hfeed__config_choice *choices, int *out,
                                    struct hfeed__err *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    char list[160] = "";
    size_t used = 0;
    if (v == NULL || (cJSON_IsString(v) && hfeed__config_find_choice(choices, v->valuestring, out)))
        return HFEED_OK;
    for (const struct hfeed__config_choice *c = choices; c->name != NULL && used < sizeof list; c++)
        used += (size_t)snprintf(list + used, sizeof list - used, "%s\"%s\"",
                                 c == choices ? "" : ", ", c->name);
    return CFG_FAIL(err, "%s: expected one of %s, got %s", PATH(where, key), list, GOT(v));
}

hfeed_status hfeed__config_get_numbers(const cJSON *obj, const char *where, const char *key,
                                       double **out, size_t *n, struct hfeed__err *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    size_t i = 0;
    if (v == NULL) return HFEED_OK;
    const bool one = cJSON_IsNumber(v);
    if (!one && !(cJSON_IsArray(v) && v->child != NULL))
        return CFG_FAIL(err,
                        "%s: expected a number or a non-empty array of numbers (one per feature "
                        "column), got %s",
                        PATH(where, key), GOT(v));
    *n = one ? 1 : (size_t)cJSON_GetArraySize(v);
    *out = hfeed__calloc(*n, sizeof **out);
    if (*out == NULL) return hfeed__config_nomem(err);
    for (const cJSON *x = one ? v : v->child; x != NULL; x = one ? NULL : x->next, i++) {
        if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble)) {
            if (one)
                return CFG_FAIL(err, "%s: expected a finite number, got %s", PATH(where, key),
                                GOT(x));
            return CFG_FAIL(err, "%s[%zu]: expected a finite number, got %s", PATH(where, key), i,
                            GOT(x));
        }
        (*out)[i] = x->valuedouble;
    }
    return HFEED_OK;
}

bool hfeed__config_parse_decimal(const char *s, uint64_t max, uint64_t *out)
{
    uint64_t n = 0;
    if (*s == '\0') return false;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9') return false;
        const uint64_t digit = (uint64_t)(*s - '0');
        if (digit > max || n > (max - digit) / 10) return false;
        n = n * 10 + digit;
    }
    *out = n;
    return true;
}
