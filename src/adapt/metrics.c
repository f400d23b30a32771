/* metrics.c - confusion matrix over a class subset, IoU, mIoU (the AMS reference's rule), pixel
 * accuracy. See include/ams/metrics.h for the exact rule. */
#include "ams/metrics.h"

#include <math.h>
#include <string.h>

#define OUTSIDE 255 /* map[] value of an id that is not in the subset */

ams_status ams_confmat_init(ams_confmat *cm, const uint8_t *subset, int k, ams_err *err) {
    AMS_FAIL_IF(k < 1 || k > AMS_CM_MAX_CLASSES, err, AMS_E_INVAL,
                "class subset has %d classes (1..%d)", k, AMS_CM_MAX_CLASSES);
    memset(cm, 0, sizeof *cm);
    memset(cm->map, OUTSIDE, sizeof cm->map);
    for (int c = 0; c < k; c++) {
        AMS_FAIL_IF(subset[c] == 255, err, AMS_E_INVAL, "class 255 (ignore) cannot be in a subset");
        AMS_FAIL_IF(cm->map[subset[c]] != OUTSIDE, err, AMS_E_INVAL,
                    "class %d appears twice in the subset", subset[c]);
        cm->map[subset[c]] = (uint8_t)c;
        cm->ids[c] = subset[c];
    }
    cm->k = k;
    return AMS_OK;
}

ams_status ams_confmat_init_range(ams_confmat *cm, int k, ams_err *err) {
    uint8_t ids[AMS_CM_MAX_CLASSES];
    AMS_FAIL_IF(k < 1 || k > AMS_CM_MAX_CLASSES, err, AMS_E_INVAL,
                "class subset has %d classes (1..%d)", k, AMS_CM_MAX_CLASSES);
    for (int c = 0; c < k; c++) ids[c] = (uint8_t)c;
    return ams_confmat_init(cm, ids, k, err);
}

void ams_confmat_reset(ams_confmat *cm) {
    memset(cm->cm, 0, sizeof cm->cm);
    memset(cm->outside, 0, sizeof cm->outside);
}

void ams_confmat_add(ams_confmat *cm, const uint8_t *truth, const uint8_t *pred, size_t n,
                     ams_cm_rule rule) {
    for (size_t i = 0; i < n; i++) {
        uint8_t t = cm->map[truth[i]], p = cm->map[pred[i]];
        if (t == OUTSIDE) continue;
        if (p != OUTSIDE)
            cm->cm[t][p]++;
        else if (rule == AMS_CM_TRUTH)
            cm->outside[t]++;
    }
}

ams_status ams_confmat_sum(ams_confmat *dst, const ams_confmat *src, ams_err *err) {
    AMS_FAIL_IF(dst->k != src->k || memcmp(dst->ids, src->ids, (size_t)dst->k) != 0, err,
                AMS_E_INVAL, "confusion matrices over different class subsets");
    for (int t = 0; t < dst->k; t++) {
        for (int p = 0; p < dst->k; p++) dst->cm[t][p] += src->cm[t][p];
        dst->outside[t] += src->outside[t];
    }
    return AMS_OK;
}

ams_status ams_confmat_sub(ams_confmat *dst, const ams_confmat *src, ams_err *err) {
    AMS_FAIL_IF(dst->k != src->k || memcmp(dst->ids, src->ids, (size_t)dst->k) != 0, err,
                AMS_E_INVAL, "confusion matrices over different class subsets");
    for (int t = 0; t < dst->k; t++) {
        AMS_FAIL_IF(dst->outside[t] < src->outside[t], err, AMS_E_INVAL,
                    "subtracting counts that were never added");
        for (int p = 0; p < dst->k; p++)
            AMS_FAIL_IF(dst->cm[t][p] < src->cm[t][p], err, AMS_E_INVAL,
                        "subtracting counts that were never added");
    }
    for (int t = 0; t < dst->k; t++) {
        for (int p = 0; p < dst->k; p++) dst->cm[t][p] -= src->cm[t][p];
        dst->outside[t] -= src->outside[t];
    }
    return AMS_OK;
}

uint64_t ams_confmat_total(const ams_confmat *cm) {
    uint64_t s = 0;
    for (int t = 0; t < cm->k; t++) {
        for (int p = 0; p < cm->k; p++) s += cm->cm[t][p];
        s += cm->outside[t];
    }
    return s;
}

int ams_confmat_iou(const ams_confmat *cm, double *iou) {
    int present = 0;
    for (int c = 0; c < cm->k; c++) {
        uint64_t row = cm->outside[c], col = 0;
        for (int j = 0; j < cm->k; j++) {
            row += cm->cm[c][j];
            col += cm->cm[j][c];
        }
        uint64_t den = row + col - cm->cm[c][c];
        if (den == 0) {
            iou[c] = NAN;
        } else {
            iou[c] = (double)cm->cm[c][c] / (double)den;
            present++;
        }
    }
    return present;
}

double ams_confmat_miou(const ams_confmat *cm) {
    double iou[AMS_CM_MAX_CLASSES], s = 0;
    int present = ams_confmat_iou(cm, iou);
    if (present == 0) return NAN;
    for (int c = 0; c < cm->k; c++)
        if (!isnan(iou[c])) s += iou[c];
    return s / present;
}

double ams_confmat_pixel_accuracy(const ams_confmat *cm) {
    uint64_t total = ams_confmat_total(cm), correct = 0;
    if (total == 0) return NAN;
    for (int c = 0; c < cm->k; c++) correct += cm->cm[c][c];
    return (double)correct / (double)total;
}

double ams_label_miou(ams_confmat *scratch, const uint8_t *truth, const uint8_t *pred, size_t n,
                      ams_cm_rule rule) {
    ams_confmat_reset(scratch);
    ams_confmat_add(scratch, truth, pred, n, rule);
    return ams_confmat_miou(scratch);
}
