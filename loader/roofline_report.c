/* roofline_report: the public hfeed_roofline_* API (h5feed bench --roofline): the measurement
 * object and its getters, and the verdict's arithmetic.
 *
 * Design. hfeed_roofline_measure() runs on the caller's thread: it parses the config (config.c),
 * applies HFEED_READ_PATH as a loader's open does (loader.h), opens the catalog (catalog.c: the
 * files, the fields' datasets, their direct-path descriptors, exactly what a loader would read),
 * measures each field in config order (roofline.c, which starts and joins its own threads), and
 * closes the catalog: the object keeps plain numbers and the config, whose field names it lends.
 * hfeed_roofline_judge() is pure arithmetic on numbers the caller passes (h5feed.h states its
 * rules); it is here, not in roofline.c, because it is the public API's and no stage's. */
#include <inttypes.h>
#include <math.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "catalog.h"
#include "config.h"
#include "loader.h"
#include "roofline.h"

#define DEFAULT_BUDGET_S 0.3
#define MAX_BUDGET_S 60.0
#define REPS 3
/* One pass of a measurement reads at most this many stored bytes. */
#define CAP_BYTES ((uint64_t)256 << 20)

struct hfeed_roofline {
    hfeed_roofline_info info;
    hfeed_roofline_field *fields; /* names borrowed from cfg */
    struct hfeed__config *cfg;
};

static double seconds_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Measures every field of cfg into r->fields; logs one line per field. */
static hfeed_status measure_fields(hfeed_roofline *r, const struct hfeed__roofline_plan *p,
                                   const struct hfeed__logger *log, struct hfeed__err *err)
{
    struct hfeed__catalog *cat = NULL;
    HFEED__CHECK(hfeed__catalog_open(r->cfg, log, &cat, err));
    hfeed_status st = HFEED_OK;
    for (size_t k = 0; st == HFEED_OK && k < cat->nfields; k++) {
        struct hfeed__roofline_limit lim;
        st = hfeed__roofline_measure_field(cat, k, p, &lim, err);
        if (st != HFEED_OK) break;
        r->fields[k] = (hfeed_roofline_field){.name = r->cfg->fields[k].name,
                                              .path = lim.path,
                                              .limit = lim.limit,
                                              .pread_limit = lim.pread_limit,
                                              .map_limit = lim.map_limit,
                                              .samples = lim.samples};
        hfeed__log(log, HFEED_LOG_INFO,
                   "roofline: field \"%s\": %s, %.0f samples/s (%" PRIu64 " samples a repetition)",
                   r->fields[k].name, hfeed_roofline_path_name(lim.path), lim.limit, lim.samples);
    }
    hfeed__catalog_close(cat);
    return st;
}

hfeed_status hfeed_roofline_measure(const char *config_path, double budget_seconds,
                                    hfeed_log_fn log, void *log_user, hfeed_roofline **out,
                                    char *errbuf, size_t errbuf_len)
{
    const double t0 = seconds_now();
    const struct hfeed__logger logger = {log, log_user};
    struct hfeed__err err = {0};
    hfeed_roofline *r = NULL;
    hfeed_status st = HFEED_OK;
    if (out != NULL) *out = NULL;
    if (out == NULL || config_path == NULL || !(budget_seconds >= 0.0) ||
        budget_seconds > MAX_BUDGET_S) {
        st = HFEED__FAIL(&err, HFEED_E_INVALID_ARG,
                         "hfeed_roofline_measure: need a config, an out-pointer and a budget "
                         "from 0 to %.0f s",
                         MAX_BUDGET_S);
        goto done;
    }
    r = hfeed__calloc(1, sizeof *r);
    st = r != NULL ? hfeed__config_load(config_path, &r->cfg, &err)
                   : HFEED__FAIL(&err, HFEED_E_NOMEM, "roofline: out of memory");
    if (st == HFEED_OK) {
        hfeed__loader_apply_env(r->cfg, &logger);
        r->fields = hfeed__calloc(r->cfg->nfields, sizeof *r->fields);
        if (r->fields == NULL) st = HFEED__FAIL(&err, HFEED_E_NOMEM, "roofline: out of memory");
    }
    const double budget = budget_seconds > 0.0 ? budget_seconds : DEFAULT_BUDGET_S;
    if (st == HFEED_OK) {
        const struct hfeed__roofline_plan plan = {
            .workers = r->cfg->workers,
            .batch_size = r->cfg->batch_size,
            .random = r->cfg->shuffle == HFEED__SHUFFLE_GLOBAL,
            .budget_ns = (uint64_t)(budget * 1e9),
            .cap_bytes = CAP_BYTES,
            .reps = REPS,
        };
        st = measure_fields(r, &plan, &logger, &err);
    }
    if (st == HFEED_OK) {
        r->info = (hfeed_roofline_info){.fields = r->cfg->nfields,
                                        .workers = r->cfg->workers,
                                        .batch_size = r->cfg->batch_size,
                                        .shuffle = (hfeed_shuffle_mode)r->cfg->shuffle,
                                        .reps = REPS,
                                        .budget_seconds = budget,
                                        .seconds = seconds_now() - t0};
        *out = r;
        return HFEED_OK;
    }
done:
    hfeed_roofline_destroy(r);
    hfeed__err_copy(&err, errbuf, errbuf_len);
    return st;
}

void hfeed_roofline_destroy(hfeed_roofline *r)
{
    if (r == NULL) return;
    hfeed__config_destroy(r->cfg);
    hfeed__free(r->fields);
    hfeed__free(r);
}

hfeed_status hfeed_roofline_get_info(const hfeed_roofline *r, hfeed_roofline_info *out)
{
    if (out != NULL) memset(out, 0, sizeof *out);
    if (r == NULL || out == NULL) return HFEED_E_INVALID_ARG;
    *out = r->info;
    return HFEED_OK;
}

hfeed_status hfeed_roofline_get_field(const hfeed_roofline *r, size_t i, hfeed_roofline_field *out)
{
    if (out != NULL) memset(out, 0, sizeof *out);
    if (r == NULL || out == NULL || i >= r->info.fields) return HFEED_E_INVALID_ARG;
    *out = r->fields[i];
    return HFEED_OK;
}

/* names[i], or "invalid" past the n names: an enum's text for any value. */
static const char *name_of(const char *const *names, size_t n, unsigned i)
{
    return i < n ? names[i] : "invalid";
}

const char *hfeed_roofline_path_name(hfeed_roofline_path path)
{
    static const char *const names[] = {"hdf5",       "seq pread",    "seq mapping",
                                        "rand pread", "rand mapping", "decode pipeline",
                                        "mixed"};
    return name_of(names, sizeof names / sizeof names[0], (unsigned)path);
}

const char *hfeed_bound_name(hfeed_bound bound)
{
    static const char *const names[] = {"unknown",        "machine",         "loader: read",
                                        "loader: decode", "loader: convert", "consumer",
                                        "loader: hand-off"};
    return name_of(names, sizeof names / sizeof names[0], (unsigned)bound);
}

/* ---- the verdict: pure arithmetic ---- */

/* Seconds per sample at the limits, summed over the fields that have one; sets *slowest to the
 * field with the most (SIZE_MAX: none) and *partial when some field has no limit. */
static double time_per_sample(const double *limit, size_t n, size_t *slowest, int *partial)
{
    double total = 0.0, most = 0.0;
    *slowest = SIZE_MAX;
    *partial = 0;
    for (size_t k = 0; k < n; k++) {
        if (!(limit[k] > 0.0) || !isfinite(limit[k])) {
            *partial = 1;
            continue;
        }
        const double t = 1.0 / limit[k];
        total += t;
        if (t > most) {
            most = t;
            *slowest = k;
        }
    }
    return total;
}

/* The bound by the rules in h5feed.h, from a verdict whose other fields are set. */
static hfeed_bound bound_of(const hfeed_roofline_verdict *v, const hfeed_stats *s, double seconds)
{
    if (!(v->limit > 0.0) || !(v->achieved > 0.0) || !(seconds > 0.0)) return HFEED_BOUND_UNKNOWN;
    if (v->share >= HFEED_ROOFLINE_MACHINE_SHARE) return HFEED_BOUND_MACHINE;
    if (v->worker_busy < HFEED_ROOFLINE_BUSY_SHARE)
        return v->consumer_wait < HFEED_ROOFLINE_WAIT_SHARE ? HFEED_BOUND_CONSUMER
                                                            : HFEED_BOUND_HANDOFF;
    if (s->read_ns >= s->decode_ns && s->read_ns >= s->convert_ns) return HFEED_BOUND_READ;
    return s->decode_ns >= s->convert_ns ? HFEED_BOUND_DECODE : HFEED_BOUND_CONVERT;
}

hfeed_status hfeed_roofline_judge(const double *limit, size_t nfields, double achieved,
                                  double seconds, unsigned workers, const hfeed_stats *stats,
                                  double *time_share, double *field_share,
                                  hfeed_roofline_verdict *out)
{
    if (out != NULL) memset(out, 0, sizeof *out);
    if (out == NULL || (nfields > 0 && limit == NULL)) return HFEED_E_INVALID_ARG;
    const hfeed_stats zero = {0};
    const hfeed_stats *s = stats != NULL ? stats : &zero;
    const double total = time_per_sample(limit, nfields, &out->bounding_field, &out->partial);
    out->achieved = achieved;
    out->limit = total > 0.0 ? 1.0 / total : 0.0;
    out->share = out->limit > 0.0 ? achieved / out->limit : 0.0;
    for (size_t k = 0; k < nfields; k++) {
        const bool has = limit[k] > 0.0 && isfinite(limit[k]);
        if (time_share != NULL) time_share[k] = has ? 1.0 / limit[k] / total : 0.0;
        if (field_share != NULL) field_share[k] = has ? achieved / limit[k] : 0.0;
    }
    const double wall_ns = seconds > 0.0 ? seconds * 1e9 : 0.0;
    const double work_ns = (double)s->read_ns + (double)s->decode_ns + (double)s->convert_ns;
    out->worker_busy = wall_ns > 0.0 ? work_ns / ((workers > 0 ? workers : 1) * wall_ns) : 0.0;
    out->consumer_wait = wall_ns > 0.0 ? (double)s->wait_ns / wall_ns : 0.0;
    out->bound = bound_of(out, s, seconds);
    return HFEED_OK;
}
