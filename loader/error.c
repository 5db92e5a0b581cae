/* error: message recording shared by every module (see error.h). */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static hfeed_status vset(struct hfeed__err *e, hfeed_status code, const char *fmt, va_list ap)
{
    if (e == NULL || e->code != HFEED_OK) return code;
    e->code = code;
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    return code;
}

hfeed_status hfeed__err_set(struct hfeed__err *e, hfeed_status code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vset(e, code, fmt, ap);
    va_end(ap);
    return code;
}

#ifndef NDEBUG
hfeed_status hfeed__err_fail_at(struct hfeed__err *e, hfeed_status code, const char *file, int line,
                                const char *fmt, ...)
{
    if (e == NULL || e->code != HFEED_OK) return code;
    va_list ap;
    va_start(ap, fmt);
    vset(e, code, fmt, ap);
    va_end(ap);
    const char *base = strrchr(file, '/');
    const size_t used = strlen(e->msg);
    snprintf(e->msg + used, sizeof e->msg - used, " [%s:%d]", base ? base + 1 : file, line);
    return code;
}
#endif

void hfeed__err_clear(struct hfeed__err *e)
{
    if (e == NULL) return;
    e->code = HFEED_OK;
    e->msg[0] = '\0';
}

void hfeed__err_copy(const struct hfeed__err *e, char *buf, size_t len)
{
    if (buf == NULL || len == 0) return;
    snprintf(buf, len, "%s", e != NULL ? e->msg : "");
}

void hfeed__log(const struct hfeed__logger *log, int level, const char *fmt, ...)
{
    if (log == NULL || log->fn == NULL) return;
    char line[HFEED_ERRBUF_SIZE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    log->fn(log->user, level, line);
}
