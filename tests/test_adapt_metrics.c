/* test_adapt_metrics.c - confusion matrix, IoU, mIoU and pixel accuracy against hand-computed
 * values, and against an independent per-class |T and P| / |T or P| count on random planes. */
#include "ams/metrics.h"
#include "ams/rng.h"
#include "check.h"

#define NEAR(a, b) (fabs((a) - (b)) < 1e-12)

/* subset {0, 11, 13}; ignore 255, ids outside the subset (5) in truth and prediction */
static const uint8_t T10[10] = {0, 0, 0, 11, 11, 13, 255, 5, 0, 11};
static const uint8_t P10[10] = {0, 11, 0, 11, 13, 13, 0, 0, 5, 0};

static int test_hand_truth_rule(void) {
    ams_confmat cm;
    ams_err err = {0};
    CHECK(ams_confmat_init(&cm, (const uint8_t[]){0, 11, 13}, 3, &err) == AMS_OK);
    ams_confmat_add(&cm, T10, P10, 10, AMS_CM_TRUTH);
    /* by hand: cm = [[2,1,0],[1,1,1],[0,0,1]], outside = [1,0,0] */
    static const uint64_t want[3][3] = {{2, 1, 0}, {1, 1, 1}, {0, 0, 1}};
    for (int t = 0; t < 3; t++)
        for (int p = 0; p < 3; p++) CHECK(cm.cm[t][p] == want[t][p]);
    CHECK(cm.outside[0] == 1 && cm.outside[1] == 0 && cm.outside[2] == 0);
    CHECK(ams_confmat_total(&cm) == 8);
    double iou[3];
    CHECK(ams_confmat_iou(&cm, iou) == 3);
    CHECK(NEAR(iou[0], 2.0 / 5.0)); /* 2 / (row 4 + col 3 - 2) */
    CHECK(NEAR(iou[1], 1.0 / 4.0)); /* 1 / (3 + 2 - 1) */
    CHECK(NEAR(iou[2], 1.0 / 2.0)); /* 1 / (1 + 2 - 1) */
    CHECK(NEAR(ams_confmat_miou(&cm), (0.4 + 0.25 + 0.5) / 3));
    CHECK(NEAR(ams_confmat_pixel_accuracy(&cm), 4.0 / 8.0));
    return 0;
}

static int test_hand_either_rule(void) {
    ams_confmat cm;
    CHECK(ams_confmat_init(&cm, (const uint8_t[]){0, 11, 13}, 3, NULL) == AMS_OK);
    /* pixel 8 (prediction 5) is dropped: IoU0 = 2 / (3 + 3 - 2) */
    CHECK(NEAR(ams_label_miou(&cm, T10, P10, 10, AMS_CM_EITHER), (0.5 + 0.25 + 0.5) / 3));
    CHECK(ams_confmat_total(&cm) == 7);
    return 0;
}

static int test_absent_and_predicted_only(void) {
    ams_confmat cm;
    CHECK(ams_confmat_init_range(&cm, 3, NULL) == AMS_OK);
    const uint8_t t[4] = {0, 0, 0, 0}, p[4] = {0, 0, 1, 1};
    ams_confmat_add(&cm, t, p, 4, AMS_CM_TRUTH);
    double iou[3];
    CHECK(ams_confmat_iou(&cm, iou) == 2);
    CHECK(NEAR(iou[0], 0.5) && NEAR(iou[1], 0.0) && isnan(iou[2]));
    CHECK(NEAR(ams_confmat_miou(&cm), 0.25)); /* nanmean: class 2 is absent, class 1 counts 0 */
    ams_confmat_reset(&cm);
    CHECK(isnan(ams_confmat_miou(&cm)) && isnan(ams_confmat_pixel_accuracy(&cm)));
    const uint8_t ign[2] = {255, 7};
    ams_confmat_add(&cm, ign, ign, 2, AMS_CM_TRUTH);
    CHECK(ams_confmat_total(&cm) == 0 && isnan(ams_confmat_miou(&cm)));
    return 0;
}

static int test_bad_subsets(void) {
    ams_confmat cm;
    ams_err err = {0};
    CHECK(ams_confmat_init(&cm, (const uint8_t[]){1, 1}, 2, &err) == AMS_E_INVAL);
    CHECK(strstr(err.msg, "twice") != NULL);
    CHECK(ams_confmat_init(&cm, (const uint8_t[]){255}, 1, &err) == AMS_E_INVAL);
    CHECK(ams_confmat_init(&cm, (const uint8_t[]){0}, 0, &err) == AMS_E_INVAL);
    CHECK(ams_confmat_init_range(&cm, AMS_CM_MAX_CLASSES + 1, &err) == AMS_E_INVAL);
    ams_confmat a, b;
    CHECK(ams_confmat_init_range(&a, 3, NULL) == AMS_OK);
    CHECK(ams_confmat_init_range(&b, 4, NULL) == AMS_OK);
    CHECK(ams_confmat_sum(&a, &b, &err) == AMS_E_INVAL);
    return 0;
}

/* Random planes: per-class IoU as |truth==c and pred==c| / |truth==c or pred==c| over counted
 * pixels, counted directly; summing per-frame matrices equals one matrix over all frames. */
static int test_random_vs_set_counts(void) {
    enum { N = 5000, F = 4 };
    static uint8_t t[F][N], p[F][N];
    const uint8_t subset[4] = {2, 3, 7, 9};
    ams_rng rng;
    ams_rng_seed(&rng, 42);
    for (int f = 0; f < F; f++)
        for (int i = 0; i < N; i++) {
            static const uint8_t ids[6] = {2, 3, 7, 9, 4, 255};
            t[f][i] = ids[ams_rng_u64(&rng) % 6];
            p[f][i] = ids[ams_rng_u64(&rng) % 5]; /* 4 = outside the subset */
        }
    ams_confmat all, frame, acc;
    CHECK(ams_confmat_init(&all, subset, 4, NULL) == AMS_OK);
    acc = frame = all;
    for (int f = 0; f < F; f++) {
        ams_confmat_add(&all, t[f], p[f], N, AMS_CM_TRUTH);
        ams_confmat_reset(&frame);
        ams_confmat_add(&frame, t[f], p[f], N, AMS_CM_TRUTH);
        CHECK(ams_confmat_sum(&acc, &frame, NULL) == AMS_OK);
    }
    CHECK(memcmp(acc.cm, all.cm, sizeof all.cm) == 0);
    CHECK(memcmp(acc.outside, all.outside, sizeof all.outside) == 0);
    double iou[4];
    CHECK(ams_confmat_iou(&all, iou) == 4);
    double msum = 0;
    for (int c = 0; c < 4; c++) {
        long inter = 0, uni = 0, counted = 0, correct = 0;
        for (int f = 0; f < F; f++)
            for (int i = 0; i < N; i++) {
                int in_subset = t[f][i] == 2 || t[f][i] == 3 || t[f][i] == 7 || t[f][i] == 9;
                if (!in_subset) continue;
                int tc = t[f][i] == subset[c], pc = p[f][i] == subset[c];
                inter += tc && pc;
                uni += tc || pc;
                counted++;
                correct += t[f][i] == p[f][i];
            }
        CHECKF(NEAR(iou[c], (double)inter / (double)uni), "class %d: %g vs %ld/%ld", c, iou[c],
               inter, uni);
        msum += (double)inter / (double)uni;
        CHECK(ams_confmat_total(&all) == (uint64_t)counted);
        CHECK(NEAR(ams_confmat_pixel_accuracy(&all), (double)correct / (double)counted));
    }
    CHECK(NEAR(ams_confmat_miou(&all), msum / 4));
    /* running window: all frames minus the last one == the first F-1 frames summed */
    ams_confmat first;
    CHECK(ams_confmat_init(&first, subset, 4, NULL) == AMS_OK);
    for (int f = 0; f < F - 1; f++) ams_confmat_add(&first, t[f], p[f], N, AMS_CM_TRUTH);
    CHECK(ams_confmat_sub(&acc, &frame, NULL) == AMS_OK); /* frame holds frame F-1 */
    CHECK(memcmp(acc.cm, first.cm, sizeof first.cm) == 0);
    CHECK(memcmp(acc.outside, first.outside, sizeof first.outside) == 0);
    ams_confmat keep = frame;
    CHECK(ams_confmat_sub(&frame, &all, NULL) == AMS_E_INVAL); /* would go negative */
    CHECK(memcmp(&keep, &frame, sizeof frame) == 0);
    return 0;
}

int main(int argc, char **argv) {
    static const check_case cases[] = {
        {"hand_truth_rule", test_hand_truth_rule},
        {"hand_either_rule", test_hand_either_rule},
        {"absent_and_predicted_only", test_absent_and_predicted_only},
        {"bad_subsets", test_bad_subsets},
        {"random_vs_set_counts", test_random_vs_set_counts},
    };
    return check_run(cases, sizeof cases / sizeof cases[0], argc, argv);
}
