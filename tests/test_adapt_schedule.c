/* test_adapt_schedule.c - ATR hibernation/wake-up and the training clock against
 * hand-computed sequences (run.py's rule, 2 s growth, 6x cap, 5-rate mean). */
#include "ams/schedule.h"
#include "check.h"

static int test_atr_sequence(void) {
    ams_atr a;
    ams_atr_init(&a, 10.0);
    CHECK(isnan(ams_atr_mean(&a)));
    /* rate pushed -> period, worked out by hand from the 5-rate mean */
    static const double rates[] = {0.2, 0.2, 0.2, 1.0, 0.3, 0.1, 0.1, 0.1, 0.1, 0.3, 0.5};
    static const double want[] = {12, 14, 16, 10, 10, 10, 10, 10, 12, 14, 16};
    /* means: .2 .2 .2 .4(wake) .38 .36 .34 .32 .14(hib) .14 .22 */
    for (size_t i = 0; i < sizeof rates / sizeof rates[0]; i++) {
        double p = ams_atr_update(&a, rates[i]);
        CHECKF(p == want[i], "step %zu: period %g want %g (mean %g)", i, p, want[i],
               ams_atr_mean(&a));
    }
    CHECK(a.hibernating == 1);
    /* hysteresis: a mean in [0.25, 0.35] keeps hibernating and growing */
    ams_atr_update(&a, 0.5); /* [.1 .1 .3 .5 .5] mean .30 */
    CHECK(a.hibernating == 1 && a.period == 18);
    ams_atr_update(&a, 0.9); /* [.1 .3 .5 .5 .9] mean .46 -> wake */
    CHECK(a.hibernating == 0 && a.period == 10);
    return 0;
}

static int test_atr_cap_and_step(void) {
    ams_atr a;
    ams_atr_init(&a, 10.0);
    for (int i = 0; i < 40; i++) ams_atr_update(&a, 0.1);
    CHECK(a.period == 60); /* 6 x base */
    ams_atr_init(&a, 10.0);
    a.step = a.base_period; /* the paper's reading: one base period per event */
    CHECK(ams_atr_update(&a, 0.1) == 20);
    CHECK(ams_atr_update(&a, 0.1) == 30);
    return 0;
}

static int test_schedule_clock(void) {
    CHECK(ams_schedule_reference_first(10) == 100);
    CHECK(ams_schedule_reference_first(30) == 120);
    CHECK(ams_schedule_reference_first(7) == 105);
    ams_schedule s;
    ams_schedule_init(&s, 10, 100, 0);
    CHECK(!ams_schedule_due(&s, 99.9) && ams_schedule_due(&s, 100));
    CHECK(ams_schedule_done(&s, 100, 0.1) == 110); /* no ATR: fixed period */
    CHECK(ams_schedule_done(&s, 113, 0.1) == 120); /* late by 3 s: the grid holds */
    CHECK(ams_schedule_done(&s, 135, 0.1) == 135); /* behind: train again at once */
    ams_schedule_init(&s, 10, 100, 1);
    CHECK(ams_schedule_done(&s, 100, 0.1) == 112); /* hibernating: 12 s */
    CHECK(ams_schedule_done(&s, 112, 0.1) == 126);
    CHECK(ams_schedule_done(&s, 126, 1.0) == 136); /* mean (.1+.1+1)/3 = .4 > .35: wake, 10 s */
    return 0;
}

int main(int argc, char **argv) {
    static const check_case cases[] = {
        {"atr_sequence", test_atr_sequence},
        {"atr_cap_and_step", test_atr_cap_and_step},
        {"schedule_clock", test_schedule_clock},
    };
    return check_run(cases, sizeof cases / sizeof cases[0], argc, argv);
}
