/* Unit tests of tools/progress.c: when the progress lines of `h5feed bench` and `h5feed convert`
 * may show a rate and an ETA (no ETA until a second of data or 5% of the work measures the
 * rate), and how durations read. Pure functions: no timing. */
#include <criterion/criterion.h>
#include <string.h>

#include "progress.h"

Test(progress, eta_waits_for_a_second_of_data_or_five_percent_of_the_work)
{
    static const struct {
        double span_s;
        uint64_t span_done, done, total;
        int known;
        double rate, eta_s;
    } rows[] = {
        /* The first batch of a 5-second run: 0.01 s and 0.4% measure nothing yet. */
        {0.01, 256, 256, 65536, 0, 0, 0},
        {0.5, 2000, 2000, 65536, 0, 0, 0},
        {0.999, 3276, 3276, 65536, 0, 0, 0},
        /* A second of data: known, whatever the share. */
        {1.0, 1000, 1000, 1000000, 1, 1000.0, 999.0},
        {2.0, 100, 300, 1000000, 1, 50.0, (1000000.0 - 300.0) / 50.0},
        /* 5% of the work in less than a second: known. */
        {0.25, 3277, 3277, 65536, 1, 3277.0 / 0.25, (65536.0 - 3277.0) / (3277.0 / 0.25)},
        {0.1, 50, 50, 1000, 1, 500.0, 1.9},
        {0.1, 49, 49, 1000, 0, 0, 0},
        /* Measured from the first report: the work before it does not count in the rate. */
        {1.5, 300, 1300, 2000, 1, 200.0, 3.5},
        /* Nothing done, or no time passed: never known. */
        {5.0, 0, 0, 100, 0, 0, 0},
        {0.0, 100, 100, 100, 0, 0, 0},
        {-1.0, 100, 100, 100, 0, 0, 0},
        /* Done: ETA 0. */
        {1.0, 100, 100, 100, 1, 100.0, 0.0},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        double rate = -7.0, eta = -7.0;
        const int known = hfeed_cmd_eta(rows[i].span_s, rows[i].span_done, rows[i].done,
                                        rows[i].total, &rate, &eta);
        cr_expect_eq(known, rows[i].known, "row %zu: known %d, wanted %d", i, known, rows[i].known);
        if (!rows[i].known) {
            cr_expect(rate == -7.0 && eta == -7.0, "row %zu: outputs written when unknown", i);
            continue;
        }
        cr_expect_float_eq(rate, rows[i].rate, 1e-9 * rows[i].rate, "row %zu: rate %g, wanted %g",
                           i, rate, rows[i].rate);
        cr_expect_float_eq(eta, rows[i].eta_s, 1e-9 * (rows[i].eta_s + 1.0),
                           "row %zu: eta %g, wanted %g", i, eta, rows[i].eta_s);
    }
}

Test(progress, durations_read_as_minutes_or_hours)
{
    static const struct {
        double s;
        const char *text;
    } rows[] = {
        {0.0, "0:00"},  {0.4, "0:00"},     {0.6, "0:01"},       {59.4, "0:59"},
        {61.0, "1:01"}, {3599.4, "59:59"}, {3600.0, "1:00:00"}, {86399.0, "23:59:59"},
        {-5.0, "0:00"}, {1e12, "0:00"},    {0.0 / 0.0, "0:00"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char buf[32];
        cr_expect_str_eq(hfeed_cmd_duration(rows[i].s, buf, sizeof buf), rows[i].text,
                         "row %zu: %g s", i, rows[i].s);
    }
}
