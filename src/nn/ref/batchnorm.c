/* batchnorm.c - reference frozen batch norm over the last axis (moving statistics are
 * constants): out = (in - mean) / sqrt(var + eps) * gamma + beta, in/out (rows, c).
 * The inverse standard deviation is computed in float, as PyTorch does. */
#include <math.h>

#include "nn/ref/ref_kernels.h"

/* channels reduced together in backward: a fixed stack block, so no allocation and
 * row-major reads of dout */
#define BN_BLOCK 64

static float inv_std(float var, float eps) { return 1.0f / sqrtf(var + eps); }

void ams_ref_batchnorm_forward(const ams_backend *be, float *out, const float *in,
                               const float *gamma, const float *beta, const float *mean,
                               const float *var, float eps, int64_t rows, int c) {
    (void)be;
    for (int64_t r = 0; r < rows; r++) {
        const float *x = in + r * c;
        float *y = out + r * c;
        for (int j = 0; j < c; j++)
            y[j] = (x[j] - mean[j]) * inv_std(var[j], eps) * gamma[j] + beta[j];
    }
}

void ams_ref_batchnorm_backward(const ams_backend *be, float *din, float *dgamma, float *dbeta,
                                const float *dout, const float *in, const float *gamma,
                                const float *mean, const float *var, float eps,
                                int64_t rows, int c) {
    (void)be;
    if (din) {
        for (int64_t r = 0; r < rows; r++) {
            const float *g = dout + r * c;
            float *dx = din + r * c;
            for (int j = 0; j < c; j++) dx[j] += g[j] * gamma[j] * inv_std(var[j], eps);
        }
    }
    if (!dgamma && !dbeta) return;
    /* sums over rows in double: rows can be n*h*w = 10^5 and more */
    for (int j0 = 0; j0 < c; j0 += BN_BLOCK) {
        int nb = c - j0 < BN_BLOCK ? c - j0 : BN_BLOCK;
        double sg[BN_BLOCK] = {0}, sb[BN_BLOCK] = {0};
        float inv[BN_BLOCK];
        for (int j = 0; j < nb; j++) inv[j] = inv_std(var[j0 + j], eps);
        for (int64_t r = 0; r < rows; r++) {
            const float *g = dout + r * c + j0;
            const float *x = in + r * c + j0;
            for (int j = 0; j < nb; j++) {
                sg[j] += (double)g[j] * (double)((x[j] - mean[j0 + j]) * inv[j]);
                sb[j] += (double)g[j];
            }
        }
        for (int j = 0; j < nb; j++) {
            if (dgamma) dgamma[j0 + j] += (float)sg[j];
            if (dbeta) dbeta[j0 + j] += (float)sb[j];
        }
    }
}
