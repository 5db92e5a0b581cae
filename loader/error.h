/* error: the one way every module records a failure.
 *
 * A failing function returns an hfeed_status and, when it was given a struct hfeed__err, leaves
 * there a message that names the file, dataset, chunk or config key at fault. The first message
 * written wins until the caller clears it: an inner function's precise text is not overwritten
 * by an outer, vaguer one. */
#ifndef HFEED_ERROR_H
#define HFEED_ERROR_H

#include "h5feed.h"

struct hfeed__err {
    hfeed_status code;
    char msg[HFEED_ERRBUF_SIZE];
};

/* Records code and a printf-style message in e (may be NULL) unless e already holds one.
 * Returns: code, so that callers can write `return hfeed__err_set(e, ...)`. */
hfeed_status hfeed__err_set(struct hfeed__err *e, hfeed_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Forgets e's message. */
void hfeed__err_clear(struct hfeed__err *e);

/* Copies e's message into a caller's buffer (either may be NULL; buf is always terminated). */
void hfeed__err_copy(const struct hfeed__err *e, char *buf, size_t len);

/* The user's log callback (may be NULL), carried to the modules that log. */
struct hfeed__logger {
    hfeed_log_fn fn;
    void *user;
};

/* Formats one line and hands it to the logger's callback, if any. Never call it while holding a
 * lock: the callback is user code. */
void hfeed__log(const struct hfeed__logger *log, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Forwards a non-OK status from expr to the caller. */
#define HFEED__CHECK(expr)                                                                         \
    do {                                                                                           \
        const hfeed_status check_ = (expr);                                                        \
        if (check_ != HFEED_OK) return check_;                                                     \
    } while (0)

/* Records a failure; in debug builds the message ends with the library's file:line. */
#ifdef NDEBUG
#define HFEED__FAIL(e, code, ...) hfeed__err_set((e), (code), __VA_ARGS__)
#else
#define HFEED__FAIL(e, code, ...) hfeed__err_fail_at((e), (code), __FILE__, __LINE__, __VA_ARGS__)
hfeed_status hfeed__err_fail_at(struct hfeed__err *e, hfeed_status code, const char *file, int line,
                                const char *fmt, ...) __attribute__((format(printf, 5, 6)));
#endif

#endif
