/* test_adapt_sampling.c - frame picking (numpy's linspace + half-to-even rounding, values
 * computed with numpy), the ASR step and phi against hand-computed values. */
#include "ams/sampling.h"
#include "check.h"

static int pick_is(size_t n, double fraction, const size_t *want, size_t nwant) {
    size_t idx[400], count = 99;
    ams_err err = {0};
    CHECKF(ams_sample_pick(n, fraction, idx, 400, &count, &err) == AMS_OK, "%s", err.msg);
    CHECKF(count == nwant, "n=%zu f=%g: %zu picks, want %zu", n, fraction, count, nwant);
    for (size_t i = 0; i < nwant; i++)
        CHECKF(idx[i] == want[i], "n=%zu f=%g: idx[%zu]=%zu want %zu", n, fraction, i, idx[i],
               want[i]);
    return 0;
}

static int test_pick_numpy_values(void) {
    /* numpy: round(linspace(-1, n-1, round(f*n)+1)[1:]) */
    CHECK(pick_is(10, 0.25, (const size_t[]){4, 9}, 2) == 0);         /* 2.5 -> 2 picks */
    CHECK(pick_is(10, 0.35, (const size_t[]){2, 4, 6, 9}, 4) == 0);   /* 3.5 -> 4; 1.5 -> 2 */
    CHECK(pick_is(7, 0.5, (const size_t[]){1, 2, 4, 6}, 4) == 0);     /* 2.5 -> 2 */
    CHECK(pick_is(45, 0.1, (const size_t[]){10, 22, 33, 44}, 4) == 0); /* 4.5 -> 4; 21.5 -> 22 */
    CHECK(pick_is(10, 1.0, (const size_t[]){0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, 10) == 0);
    CHECK(pick_is(10, 0.0, NULL, 0) == 0);
    CHECK(pick_is(0, 0.5, NULL, 0) == 0);
    size_t idx[40], count;
    CHECK(ams_sample_pick(300, ams_sample_fraction(1.0, 10.0), idx, 40, &count, NULL) == AMS_OK);
    CHECK(count == 30 && idx[0] == 9 && idx[1] == 19 && idx[29] == 299);
    return 0;
}

static int test_pick_errors(void) {
    size_t idx[2], count = 7;
    ams_err err = {0};
    CHECK(ams_sample_pick(10, 0.5, idx, 2, &count, &err) == AMS_E_NOMEM && count == 0);
    CHECK(ams_sample_pick(10, 1.5, idx, 2, &count, &err) == AMS_E_INVAL);
    CHECK(ams_sample_pick(10, NAN, idx, 2, &count, &err) == AMS_E_INVAL);
    CHECK(ams_sample_count(10, -1) == 0);
    CHECK(ams_sample_fraction(1.0, 0.0) == 0.0);
    return 0;
}

static int test_asr_steps(void) {
    ams_asr a;
    ams_asr_init(&a);
    CHECK(a.rate == 1.0 && a.rate_min == 0.1);
    /* 1 - 0.2 tanh(6) = 0.8000024576698409 (numpy) */
    CHECK(fabs(ams_asr_update(&a, 0.9) - 0.8000024576698409) < 1e-15);
    a.rate = 0.5;
    CHECK(fabs(ams_asr_update(&a, 0.3) - 0.6999975423301591) < 1e-15);
    a.rate = 0.5;
    CHECK(fabs(ams_asr_update(&a, 0.65) - 0.34768116880884703) < 1e-15);
    a.rate = 0.5;
    CHECK(ams_asr_update(&a, 0.6) == 0.5); /* tanh(0) = 0 */
    a.rate = 0.15;
    CHECK(ams_asr_update(&a, 1.0) == 0.1); /* clipped low */
    a.rate = 0.95;
    CHECK(ams_asr_update(&a, 0.0) == 1.0); /* clipped high */
    a.rate = 0.4;
    CHECK(ams_asr_update(&a, NAN) == 0.4);
    return 0;
}

static int test_phi_hand(void) {
    ams_confmat scratch;
    CHECK(ams_confmat_init_range(&scratch, 2, NULL) == AMS_OK);
    const uint8_t l0[4] = {0, 0, 1, 1}, l1[4] = {0, 1, 1, 1}, l2[4] = {0, 1, 1, 255};
    const uint8_t *labels[3] = {l0, l1, l2};
    /* (l0,l1): IoU0 = 1/2, IoU1 = 2/3; (l1,l2): pixel 3 ignored, both IoU 1 */
    double want = ((0.5 + 2.0 / 3.0) / 2 + 1.0) / 2;
    CHECK(fabs(ams_asr_phi(&scratch, labels, 3, 4) - want) < 1e-12);
    CHECK(isnan(ams_asr_phi(&scratch, labels, 1, 4)));
    /* a pair with nothing counted is skipped, not averaged as NaN */
    const uint8_t e[4] = {255, 255, 255, 255};
    const uint8_t *with_empty[3] = {l0, l1, e};
    CHECK(fabs(ams_asr_phi(&scratch, with_empty, 3, 4) - (0.5 + 2.0 / 3.0) / 2) < 1e-12);
    return 0;
}

int main(int argc, char **argv) {
    static const check_case cases[] = {
        {"pick_numpy_values", test_pick_numpy_values},
        {"pick_errors", test_pick_errors},
        {"asr_steps", test_asr_steps},
        {"phi_hand", test_phi_hand},
    };
    return check_run(cases, sizeof cases / sizeof cases[0], argc, argv);
}
