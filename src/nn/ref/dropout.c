/* dropout.c - reference dropout with a precomputed mask of scales (0 or 1/keep_prob). */
#include "nn/ref/ref_kernels.h"

void ams_ref_dropout_forward(const ams_backend *be, float *out, const float *in,
                             const float *mask, int64_t n) {
    (void)be;
    for (int64_t i = 0; i < n; i++) out[i] = in[i] * mask[i];
}

void ams_ref_dropout_backward(const ams_backend *be, float *din, const float *dout,
                              const float *mask, int64_t n) {
    (void)be;
    for (int64_t i = 0; i < n; i++) din[i] += dout[i] * mask[i];
}
