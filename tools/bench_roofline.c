/* bench_roofline: the --roofline part of bench's reports (bench_roofline.h). The run's rate is
 * the one the report prints, samples over the wall time from open to the end; the arithmetic is
 * the library's (hfeed_roofline_judge()), so that the tool and any other user agree. */
#include "bench_roofline.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "cmd.h"

/* The measurement, and the run judged against it. */
struct judged {
    hfeed_roofline_info info;
    hfeed_roofline_field *fields;
    double *limit, *time_share, *field_share; /* info.fields each */
    hfeed_roofline_verdict v;
};

static void judged_free(struct judged *j)
{
    free(j->fields);
    free(j->limit);
    free(j->time_share);
    free(j->field_share);
}

/* Reads run->roofline and judges the run. Returns: 0, or -1 (message printed on stderr). */
static int judge(const struct bench_run *run, struct judged *j)
{
    *j = (struct judged){0};
    if (hfeed_roofline_get_info(run->roofline, &j->info) != HFEED_OK) return -1;
    const size_t n = j->info.fields > 0 ? j->info.fields : 1;
    j->fields = calloc(n, sizeof *j->fields);
    j->limit = calloc(n, sizeof *j->limit);
    j->time_share = calloc(n, sizeof *j->time_share);
    j->field_share = calloc(n, sizeof *j->field_share);
    int ok = j->fields != NULL && j->limit != NULL && j->time_share != NULL &&
             j->field_share != NULL;
    for (size_t k = 0; ok && k < j->info.fields; k++) {
        ok = hfeed_roofline_get_field(run->roofline, k, &j->fields[k]) == HFEED_OK;
        j->limit[k] = j->fields[k].limit;
    }
    const double achieved = run->seconds > 0.0 ? (double)run->samples / run->seconds : 0.0;
    ok = ok && hfeed_roofline_judge(j->limit, j->info.fields, achieved, run->seconds,
                                    run->info.workers, &run->stats, j->time_share,
                                    j->field_share, &j->v) == HFEED_OK;
    if (!ok) {
        fprintf(stderr, "h5feed bench: --roofline: out of memory for the report\n");
        judged_free(j);
        return -1;
    }
    return 0;
}

static void print_field_json(const hfeed_roofline_field *f, double time_share, double share)
{
    printf("{\"name\": ");
    hfeed_cmd_json_string(f->name);
    printf(", \"path\": \"%s\", \"limit_samples_per_s\": %.9g, \"pread_samples_per_s\": %.9g"
           ", \"map_samples_per_s\": %.9g, \"samples\": %" PRIu64
           ", \"time_share\": %.9g, \"achieved_share\": %.9g}",
           hfeed_roofline_path_name(f->path), f->limit, f->pread_limit, f->map_limit, f->samples,
           time_share, share);
}

void bench_roofline_print_json(const struct bench_run *run)
{
    struct judged j;
    if (run->roofline == NULL || judge(run, &j) != 0) return;
    printf(", \"roofline\": {\"workers\": %u, \"batch_size\": %" PRIu64
           ", \"shuffle\": \"%s\", \"reps\": %u, \"budget_seconds\": %.3f, \"seconds\": %.6f"
           ", \"fields\": [",
           j.info.workers, j.info.batch_size, hfeed_shuffle_name(j.info.shuffle), j.info.reps,
           j.info.budget_seconds, j.info.seconds);
    for (size_t k = 0; k < j.info.fields; k++) {
        printf(k > 0 ? ", " : "");
        print_field_json(&j.fields[k], j.time_share[k], j.field_share[k]);
    }
    printf("], \"limit_samples_per_s\": %.9g, \"achieved_samples_per_s\": %.9g"
           ", \"share\": %.9g, \"partial\": %s, \"bounding_field\": ",
           j.v.limit, j.v.achieved, j.v.share, j.v.partial ? "true" : "false");
    hfeed_cmd_json_string(j.v.bounding_field < j.info.fields ? j.fields[j.v.bounding_field].name
                                                             : NULL);
    printf(", \"worker_busy\": %.9g, \"consumer_wait\": %.9g, \"bound\": \"%s\"}",
           j.v.worker_busy, j.v.consumer_wait, hfeed_bound_name(j.v.bound));
    judged_free(&j);
}

void bench_roofline_print_text(const struct bench_run *run)
{
    struct judged j;
    if (run->roofline == NULL || judge(run, &j) != 0) return;
    printf("  roofline    limits on this machine, files cached: %u workers, batches of %" PRIu64
           ", %s rows; median of %u runs of at most %.2f s each (%.1f s in all)\n",
           j.info.workers, j.info.batch_size,
           j.info.shuffle == HFEED_SHUFFLE_GLOBAL ? "random" : "sequential", j.info.reps,
           j.info.budget_seconds, j.info.seconds);
    printf("    %-16s %-16s %14s %11s %15s\n", "field", "path", "limit/s", "time share",
           "achieved share");
    for (size_t k = 0; k < j.info.fields; k++) {
        const hfeed_roofline_field *f = &j.fields[k];
        if (f->limit > 0.0) {
            printf("    %-16s %-16s %14.0f %10.1f%% %14.1f%%\n", f->name,
                   hfeed_roofline_path_name(f->path), f->limit, 100.0 * j.time_share[k],
                   100.0 * j.field_share[k]);
        } else {
            printf("    %-16s %-16s %14s %11s %15s\n", f->name, hfeed_roofline_path_name(f->path),
                   "no limit", "-", "-");
        }
    }
    printf("    %-16s %-16s %14.0f %10.1f%% %14.1f%%%s\n", "all fields", "", j.v.limit,
           j.v.limit > 0.0 ? 100.0 : 0.0, 100.0 * j.v.share,
           j.v.partial ? " (fields without a limit left out: a lower bound)" : "");
    if (j.v.bounding_field < j.info.fields)
        printf("    the limit is set mostly by field \"%s\"\n", j.fields[j.v.bounding_field].name);
    /* The loader reads random rows with pread unless the config says otherwise: the faster way
     * changes with the machine and the page cache's state (configs/README.md "read_rows"). */
    for (size_t k = 0; k < j.info.fields; k++)
        if (j.fields[k].path == HFEED_ROOFLINE_RAND_MAP && j.fields[k].pread_limit > 0.0)
            printf("    field \"%s\": random rows ran %.2fx faster from a mapping than with pread "
                   "here; \"read_rows\": \"mapping\" reads them that way\n",
                   j.fields[k].name, j.fields[k].map_limit / j.fields[k].pread_limit);
    printf("  bound       %s (run at %.1f%% of the limit; workers busy %.1f%% of their time, "
           "consumer waited %.1f%%)\n",
           hfeed_bound_name(j.v.bound), 100.0 * j.v.share, 100.0 * j.v.worker_busy,
           100.0 * j.v.consumer_wait);
    judged_free(&j);
}
