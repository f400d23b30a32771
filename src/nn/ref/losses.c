/* losses.c - reference losses: softmax cross-entropy over classes (ignore label 255,
 * optional class subset) and binary cross-entropy on logits; mean over counted pixels.
 * Per-pixel terms are computed in double (log-sum-exp, stable BCE) and summed in double.
 * A label that is neither 255 nor a valid class (>= c, not in the subset, or > 1 for BCE)
 * is not counted either: kernels cannot fail, and such data must not read out of bounds. */
#include <math.h>

#include "nn/ref/ref_kernels.h"

#define IGNORE_LABEL 255

/* Column position of label in the softmax (index into classes[] with a subset, the label
 * itself without), or -1 when the pixel is not counted. */
static int label_column(uint8_t label, int c, const int *classes, int nsub) {
    if (label == IGNORE_LABEL) return -1;
    if (nsub <= 0) return label < c ? (int)label : -1;
    for (int s = 0; s < nsub; s++)
        if (classes[s] == (int)label) return s;
    return -1;
}

/* logit of softmax column s of one pixel's row x */
static double column(const float *x, int s, const int *classes, int nsub) {
    return (double)x[nsub > 0 ? classes[s] : s];
}

/* log(sum_s exp(x_s)) over the softmax columns, shifted by the max for stability */
static double log_sum_exp(const float *x, int ncol, const int *classes, int nsub) {
    double m = -INFINITY;
    for (int s = 0; s < ncol; s++) {
        double v = column(x, s, classes, nsub);
        if (v > m) m = v;
    }
    double sum = 0;
    for (int s = 0; s < ncol; s++) sum += exp(column(x, s, classes, nsub) - m);
    return m + log(sum);
}

static int64_t ce_count(const uint8_t *labels, int64_t p, int c, const int *classes, int nsub) {
    int64_t count = 0;
    for (int64_t i = 0; i < p; i++)
        if (label_column(labels[i], c, classes, nsub) >= 0) count++;
    return count;
}

void ams_ref_softmax_ce_forward(const ams_backend *be, float *loss, int64_t *count,
                                const float *logits, const uint8_t *labels, int64_t p, int c,
                                const int *classes, int nsub) {
    (void)be;
    int ncol = nsub > 0 ? nsub : c;
    double sum = 0;
    int64_t n = 0;
    for (int64_t i = 0; i < p; i++) {
        int s = label_column(labels[i], c, classes, nsub);
        if (s < 0) continue;
        const float *x = logits + i * c;
        sum += log_sum_exp(x, ncol, classes, nsub) - column(x, s, classes, nsub);
        n++;
    }
    *loss = n > 0 ? (float)(sum / (double)n) : 0.0f;
    *count = n;
}

void ams_ref_softmax_ce_backward(const ams_backend *be, float *dlogits, float dloss,
                                 const float *logits, const uint8_t *labels, int64_t p, int c,
                                 const int *classes, int nsub) {
    (void)be;
    int ncol = nsub > 0 ? nsub : c;
    int64_t n = ce_count(labels, p, c, classes, nsub);
    if (n == 0) return;
    double scale = (double)dloss / (double)n;
    for (int64_t i = 0; i < p; i++) {
        int s = label_column(labels[i], c, classes, nsub);
        if (s < 0) continue;
        const float *x = logits + i * c;
        float *g = dlogits + i * c;
        double lse = log_sum_exp(x, ncol, classes, nsub);
        /* d/dx_t = softmax_t - [t == label], on the softmax columns only */
        for (int t = 0; t < ncol; t++) {
            double grad = exp(column(x, t, classes, nsub) - lse) - (t == s ? 1.0 : 0.0);
            g[nsub > 0 ? classes[t] : t] += (float)(scale * grad);
        }
    }
}

/* 0 or 1 for a counted pixel, -1 otherwise */
static int bce_target(uint8_t label) { return label <= 1 ? (int)label : -1; }

void ams_ref_bce_logits_forward(const ams_backend *be, float *loss, int64_t *count,
                                const float *logits, const uint8_t *labels, int64_t p) {
    (void)be;
    double sum = 0;
    int64_t n = 0;
    for (int64_t i = 0; i < p; i++) {
        int y = bce_target(labels[i]);
        if (y < 0) continue;
        double x = logits[i];
        /* -y log(sig(x)) - (1-y) log(1-sig(x)), without exp of a positive number */
        sum += fmax(x, 0.0) - x * y + log1p(exp(-fabs(x)));
        n++;
    }
    *loss = n > 0 ? (float)(sum / (double)n) : 0.0f;
    *count = n;
}

void ams_ref_bce_logits_backward(const ams_backend *be, float *dlogits, float dloss,
                                 const float *logits, const uint8_t *labels, int64_t p) {
    (void)be;
    int64_t n = 0;
    for (int64_t i = 0; i < p; i++)
        if (bce_target(labels[i]) >= 0) n++;
    if (n == 0) return;
    double scale = (double)dloss / (double)n;
    for (int64_t i = 0; i < p; i++) {
        int y = bce_target(labels[i]);
        if (y < 0) continue;
        double x = logits[i];
        double sig = x >= 0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x));
        dlogits[i] += (float)(scale * (sig - y));
    }
}
