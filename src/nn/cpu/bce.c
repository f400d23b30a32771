/* bce.c - the CPU backend's binary cross-entropy on logits (the selfie student's training
 * loss), forward and backward: pixel slices per thread, the stable form of the reference
 * (max(x,0) - x*y + log1p(exp(-|x|))) in float with vectorisable exp and log1p, sums in
 * double across blocks (the reference's loss is a double sum; its per-pixel terms are
 * double too, so the loss differs by float rounding of each term, ~1e-7 relative). */
#include "nn/cpu/cpu_loops.h"
#include "nn/cpu/cpu_math.h"

#define BCE_BLOCK 64
#define BCE_MAX_SLICES 64

/* The loss terms of pixels [0, n) summed (ignored pixels: label > 1 add nothing); *count
 * receives the pixels counted. */
CPU_MULTIVERSION static double bce_slice_fwd(int64_t *count, const float *x, const uint8_t *lab,
                                             int64_t n) {
    double sum = 0;
    int64_t cnt = 0;
    for (int64_t i0 = 0; i0 < n; i0 += BCE_BLOCK) {
        int m = n - i0 < BCE_BLOCK ? (int)(n - i0) : BCE_BLOCK;
        /* the labels as floats first: loops over one element type vectorise */
        float t[BCE_BLOCK], yb[BCE_BLOCK], wb[BCE_BLOCK], acc[16] = {0};
        for (int j = 0; j < m; j++) {
            uint8_t l = lab[i0 + j];
            yb[j] = l == 1 ? 1.0f : 0.0f;
            wb[j] = l <= 1 ? 1.0f : 0.0f;
        }
        for (int j = 0; j < m; j++) {
            float v = x[i0 + j], av = v < 0.0f ? -v : v;
            float term = (v > 0.0f ? v : 0.0f) - v * yb[j] + log1p_unit(exp_nonpos(-av));
            t[j] = term * wb[j];
        }
        float c = 0;
        for (int j = 0; j < m; j++) c += wb[j];
        for (int j = m; j < BCE_BLOCK; j++) t[j] = 0.0f;
        for (int j = 0; j < BCE_BLOCK; j += 16)
            for (int k = 0; k < 16; k++) acc[k] += t[j + k];
        for (int k = 0; k < 16; k++) sum += (double)acc[k];
        cnt += (int64_t)c;
    }
    *count = cnt;
    return sum;
}

CPU_MULTIVERSION static int64_t bce_slice_count(const uint8_t *lab, int64_t n) {
    int64_t c = 0;
    for (int64_t i = 0; i < n; i++) c += lab[i] <= 1;
    return c;
}

/* dlogits += scale * (sigmoid(x) - y) on counted pixels. */
CPU_MULTIVERSION static void bce_slice_bwd(float *dx, float scale, const float *x, const uint8_t *lab,
                                           int64_t n) {
    for (int64_t i0 = 0; i0 < n; i0 += BCE_BLOCK) {
        int m = n - i0 < BCE_BLOCK ? (int)(n - i0) : BCE_BLOCK;
        float yb[BCE_BLOCK], wb[BCE_BLOCK];
        for (int j = 0; j < m; j++) {
            uint8_t l = lab[i0 + j];
            yb[j] = l == 1 ? 1.0f : 0.0f;
            wb[j] = l <= 1 ? scale : 0.0f;
        }
        for (int j = 0; j < m; j++) {
            float v = x[i0 + j], av = v < 0.0f ? -v : v;
            float e = exp_nonpos(-av), r = 1.0f / (1.0f + e);
            float sig = (v >= 0.0f ? 1.0f : e) * r;
            dx[i0 + j] += wb[j] * (sig - yb[j]);
        }
    }
}

static int slices(const ams_backend *be, int64_t p) {
    int nt = cpu_threads_for(be, p);
    return nt > BCE_MAX_SLICES ? BCE_MAX_SLICES : nt;
}

static void bce_fwd(const ams_backend *be, float *loss, int64_t *count, const float *logits,
                    const uint8_t *labels, int64_t p) {
    int nt = slices(be, p);
    double part_sum[BCE_MAX_SLICES];
    int64_t part_n[BCE_MAX_SLICES];
    CPU_PARALLEL_FOR
    for (int t = 0; t < nt; t++) {
        int64_t lo, hi;
        cpu_split16(p, t, nt, &lo, &hi);
        part_sum[t] = bce_slice_fwd(&part_n[t], logits + lo, labels + lo, hi - lo);
    }
    double sum = 0;
    int64_t n = 0;
    for (int t = 0; t < nt; t++) sum += part_sum[t], n += part_n[t];
    *loss = n > 0 ? (float)(sum / (double)n) : 0.0f;
    *count = n;
}

static void bce_bwd(const ams_backend *be, float *dlogits, float dloss, const float *logits,
                    const uint8_t *labels, int64_t p) {
    int nt = slices(be, p);
    int64_t part_n[BCE_MAX_SLICES], n = 0;
    CPU_PARALLEL_FOR
    for (int t = 0; t < nt; t++) {
        int64_t lo, hi;
        cpu_split16(p, t, nt, &lo, &hi);
        part_n[t] = bce_slice_count(labels + lo, hi - lo);
    }
    for (int t = 0; t < nt; t++) n += part_n[t];
    if (n == 0) return;
    float scale = (float)((double)dloss / (double)n);
    CPU_PARALLEL_FOR
    for (int t = 0; t < nt; t++) {
        int64_t lo, hi;
        cpu_split16(p, t, nt, &lo, &hi);
        bce_slice_bwd(dlogits + lo, scale, logits + lo, labels + lo, hi - lo);
    }
}

void ams_cpu_fill_bce(ams_backend *be) {
    be->bce_logits_forward = bce_fwd;
    be->bce_logits_backward = bce_bwd;
}
