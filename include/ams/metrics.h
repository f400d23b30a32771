/* metrics.h - segmentation metrics: a confusion matrix over a class subset, per-class IoU,
 * mIoU exactly as the AMS reference computes it, and pixel accuracy.
 *
 *     ams_confmat cm;
 *     uint8_t subset[] = {0, 11, 13};           // e.g. road, person, car
 *     ams_confmat_init(&cm, subset, 3, &err);
 *     ams_confmat_add(&cm, teacher, student, h * w, AMS_CM_TRUTH);
 *     double miou = ams_confmat_miou(&cm);      // NaN when no class is present
 * ams_confmat is a plain value (no heap); copy it, sum it, reset it freely.
 *
 * THE REFERENCE'S RULE (modelstreaming/ams, utils.calculate_miou + SemanticNetwork):
 * - Class ids are mapped into the subset (one-hot over the subset); a pixel whose truth id is
 *   not in the subset (255 included) has weight 0 and is not counted.
 * - IoU_c = cm[c][c] / (row_c + col_c - cm[c][c]) (row = truth, col = prediction). A class with
 *   a zero denominator (neither in the truth nor in the prediction) is NaN, i.e. absent.
 * - mIoU = the mean of the IoUs that are not NaN (np.nanmean): over classes present in the truth
 *   OR the prediction; a class only predicted counts with IoU 0.
 * - It is computed per confusion matrix: per frame (one matrix per frame), per second (the
 *   matrices of that second's frames summed, then one mIoU), and the paper's headline figure:
 *   for every frame, the mIoU of the matrices of the last 10 s summed (a sliding window),
 *   averaged over frames (run.py's summary skips the first 7500 frames). Frames are NOT pooled
 *   over the whole video. ams_confmat_sum builds any of these (the window: a ring of the last
 *   10 * fps per-frame matrices, as run.py's deque).
 * - The ASR's frame-to-frame mIoU (phi) ignores a pixel when EITHER label is outside the
 *   subset (AMS_CM_EITHER); the student evaluation ignores only by truth (AMS_CM_TRUTH).
 * Our one addition: with AMS_CM_TRUTH a predicted id outside the subset (impossible when the
 * student's logits are restricted to the subset, as the reference does) is counted in the
 * `outside` column: a false negative of the truth class and a pixel-accuracy miss.
 */
#ifndef AMS_METRICS_H
#define AMS_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "ams/status.h"

#define AMS_CM_MAX_CLASSES 64 /* the largest class subset (Cityscapes has 19, ADE20K 150 is out) */

typedef enum {
    AMS_CM_TRUTH = 0,  /* count a pixel when its truth id is in the subset (student evaluation) */
    AMS_CM_EITHER = 1, /* count it only when both ids are in the subset (label-to-label phi) */
} ams_cm_rule;

typedef struct ams_confmat {
    int k;                                          /* classes in the subset */
    uint8_t ids[AMS_CM_MAX_CLASSES];                /* the subset's class ids, in order */
    uint8_t map[256];                               /* class id -> subset index, 255 = outside */
    uint64_t cm[AMS_CM_MAX_CLASSES][AMS_CM_MAX_CLASSES]; /* [truth][prediction] pixel counts */
    uint64_t outside[AMS_CM_MAX_CLASSES];           /* [truth]: prediction outside the subset */
} ams_confmat;

/* Sets up an empty matrix over the class ids subset[0..k-1] (distinct, none 255, 1 <= k <=
 * AMS_CM_MAX_CLASSES). @return AMS_OK or AMS_E_INVAL. */
ams_status ams_confmat_init(ams_confmat *cm, const uint8_t *subset, int k, ams_err *err);
/* Sets up the subset {0, 1, ..., k-1}. */
ams_status ams_confmat_init_range(ams_confmat *cm, int k, ams_err *err);
/* Zeroes the counts, keeps the subset. */
void ams_confmat_reset(ams_confmat *cm);
/* Counts n pixels of truth/pred (uint8 class ids) under rule. */
void ams_confmat_add(ams_confmat *cm, const uint8_t *truth, const uint8_t *pred, size_t n,
                     ams_cm_rule rule);
/* dst += src; both must have the same subset. @return AMS_OK or AMS_E_INVAL. */
ams_status ams_confmat_sum(ams_confmat *dst, const ams_confmat *src, ams_err *err);
/* dst -= src, for a running window sum (add the newest frame, subtract the one leaving); src
 * must have been added to dst before. @return AMS_OK, AMS_E_INVAL (other subset, or a count
 * that would go negative; dst is unchanged then). */
ams_status ams_confmat_sub(ams_confmat *dst, const ams_confmat *src, ams_err *err);

/* Pixels counted (the sum of all cells and of `outside`). */
uint64_t ams_confmat_total(const ams_confmat *cm);
/* iou[c] for c < k, NaN for an absent class (zero denominator). @return classes present. */
int ams_confmat_iou(const ams_confmat *cm, double *iou);
/* The mean of the non-NaN IoUs (the reference's np.nanmean); NaN when no class is present. */
double ams_confmat_miou(const ams_confmat *cm);
/* Correct pixels / counted pixels; NaN when nothing was counted. */
double ams_confmat_pixel_accuracy(const ams_confmat *cm);

/* mIoU of one pair of label planes: resets scratch (keeping its subset), counts, returns
 * ams_confmat_miou. */
double ams_label_miou(ams_confmat *scratch, const uint8_t *truth, const uint8_t *pred, size_t n,
                      ams_cm_rule rule);

#endif
