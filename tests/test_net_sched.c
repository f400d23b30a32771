/* test_net_sched.c - the server's scheduler order (server_sched.c, ams_sched_pick) on
 * sessions built by hand, one job at a time:
 * - clients whose uploads arrive together every period take turns at being served first
 *   (their mean lags equal), where round-robin served them in one order every period;
 * - no session waits for more than one job of every other session: one with a large lag,
 *   served and given new work at once, waits for the others first; a new session (no lag
 *   yet) waiting behind busy ones is served after at most one job of each;
 * - equal lags go round-robin from the cursor; busy sessions and sessions without work are
 *   never picked; nothing to do gives NULL; a resync counts as work.
 */
#include <string.h>

#include "check.h"
#include "net/server_internal.h"

enum { MAXS = 6 };

typedef struct fixture {
    ams_server s;
    session ss[MAXS];
    session *list[MAXS];
} fixture;

static void fixture_init(fixture *f, int n) {
    memset(f, 0, sizeof *f);
    for (int i = 0; i < n; i++) f->list[i] = &f->ss[i];
    f->s.sessions = f->list;
    f->s.n_sessions = n;
}

static void upload(fixture *f, int i) {
    ams_sched_work_added(&f->s, &f->ss[i]);
    f->ss[i].n_pending++;
}

/* Picks one session and runs its job: its pending work taken, its lag set. */
static int run_one(fixture *f, double lag) {
    session *ss = ams_sched_pick(&f->s);
    if (!ss) return -1;
    ss->n_pending = 0;
    ss->resync = 0;
    ss->info.lag_last = lag;
    return (int)(ss - f->ss);
}

static int test_synchronised_turns(void) {
    fixture f;
    fixture_init(&f, 2);
    double sum[2] = {0, 0};
    int first[2] = {0, 0};
    const int periods = 8;
    for (int p = 0; p < periods; p++) {
        upload(&f, 0), upload(&f, 1); /* together; then two jobs of 5 s, 1 s after arrival */
        int a = run_one(&f, 6.0), b = run_one(&f, 11.0);
        CHECKF(a >= 0 && b >= 0 && a != b, "period %d: picked %d then %d", p, a, b);
        first[a]++;
        sum[a] += 6.0, sum[b] += 11.0;
        CHECK(run_one(&f, 0) == -1);
    }
    CHECKF(first[0] == periods / 2 && first[1] == periods / 2,
           "first in %d and %d of %d periods", first[0], first[1], periods);
    CHECKF(sum[0] == sum[1], "mean lags %g and %g", sum[0] / periods, sum[1] / periods);
    return 0;
}

static int test_bounded_wait(void) {
    fixture f;
    fixture_init(&f, 3);
    /* session 0 lagged far behind; 1 and 2 wait too */
    f.ss[0].info.lag_last = 100;
    upload(&f, 1), upload(&f, 2), upload(&f, 0);
    CHECK(run_one(&f, 100) == 0); /* the largest lag first */
    upload(&f, 0);                /* new work at once, still the largest lag */
    int a = run_one(&f, 1), b = run_one(&f, 1);
    CHECKF((a == 1 && b == 2) || (a == 2 && b == 1), "0 went again before 1 and 2: %d, %d", a, b);
    CHECK(run_one(&f, 1) == 0);
    CHECK(run_one(&f, 1) == -1);
    /* a new session waiting behind sessions that keep getting work: served after at most
     * one job of each */
    fixture_init(&f, 4);
    for (int i = 0; i < 3; i++) f.ss[i].info.lag_last = 50;
    upload(&f, 0), upload(&f, 1), upload(&f, 2), upload(&f, 3);
    int seen[4] = {0, 0, 0, 0}, got = -1;
    for (int k = 0; k < 4 && got != 3; k++) {
        got = run_one(&f, 50);
        CHECK(got >= 0);
        seen[got]++;
        if (got != 3) upload(&f, got); /* it has work again at once */
    }
    CHECKF(got == 3, "session 3 not served after one job of each other session");
    for (int i = 0; i < 3; i++) CHECKF(seen[i] <= 1, "session %d served %d times first", i, seen[i]);
    return 0;
}

static int test_ties_busy_idle(void) {
    fixture f;
    fixture_init(&f, 3);
    CHECK(ams_sched_pick(&f.s) == NULL);
    /* equal lags: round-robin from the cursor, as before */
    for (int r = 0; r < 2; r++) {
        upload(&f, 0), upload(&f, 1), upload(&f, 2);
        for (int k = 0; k < 3; k++) CHECKF(run_one(&f, 3) == k, "round %d, job %d", r, k);
    }
    /* a busy session is not picked even with the largest lag; a resync is work */
    f.ss[1].info.lag_last = 9;
    upload(&f, 1);
    f.ss[1].busy = 1;
    ams_sched_work_added(&f.s, &f.ss[2]);
    f.ss[2].resync = 1;
    CHECK(run_one(&f, 3) == 2);
    CHECK(ams_sched_pick(&f.s) == NULL);
    f.ss[1].busy = 0;
    CHECK(run_one(&f, 3) == 1);
    return 0;
}

int main(int argc, char **argv) {
    static const check_case cases[] = {
        {"synchronised_turns", test_synchronised_turns},
        {"bounded_wait", test_bounded_wait},
        {"ties_busy_idle", test_ties_busy_idle},
    };
    return check_run(cases, sizeof cases / sizeof cases[0], argc, argv);
}
