/* conv_small.c - pointwise (1x1, stride 1, unpadded, one group) convolutions too small to
 * pay for a oneDNN call: the squeeze-excite convs of mobile networks run on 1x1 maps (one
 * pixel per image), where oneDNN's per-call cost (argument binding, weight check, stream)
 * was ~80 us for ~4 K multiply-adds. A plain loop on the calling thread takes a
 * microsecond. Forward and data gradient; the weight gradient is conv_wgrad.c's. */
#include "nn/cpu/cpu_loops.h"

/* At most this many multiply-adds go through the plain loops. */
#define SMALL_MACS 65536

int ams_cpu_conv_small(const ams_conv2d_desc *d) {
    double macs = (double)d->n * d->oh * d->ow * d->c * d->oc;
    return ams_cpu_conv_pointwise(d) && macs <= SMALL_MACS;
}

/* out (p, oc) = bias + x (p, c) . W (c, oc) */
CPU_MULTIVERSION void ams_cpu_conv_small_forward(float *out, const float *in, const float *weight,
                                                 const float *bias, const ams_conv2d_desc *d) {
    const int64_t pixels = (int64_t)d->n * d->h * d->w;
    const int c = d->c, oc = d->oc;
    for (int64_t p = 0; p < pixels; p++) {
        float *o = out + p * oc;
        const float *x = in + p * c;
        for (int k = 0; k < oc; k++) o[k] = bias ? bias[k] : 0.0f;
        for (int i = 0; i < c; i++) {
            const float xv = x[i], *w = weight + (size_t)i * (size_t)oc;
            for (int k = 0; k < oc; k++) o[k] += xv * w[k];
        }
    }
}

/* din (p, c) += dy (p, oc) . W^T, as 16-lane partial sums then a pairwise sum */
CPU_MULTIVERSION void ams_cpu_conv_small_backward_data(float *din, const float *dout,
                                                       const float *weight,
                                                       const ams_conv2d_desc *d) {
    const int64_t pixels = (int64_t)d->n * d->h * d->w;
    const int c = d->c, oc = d->oc;
    for (int64_t p = 0; p < pixels; p++) {
        const float *g = dout + p * oc;
        float *dx = din + p * c;
        for (int i = 0; i < c; i++) {
            const float *w = weight + (size_t)i * (size_t)oc;
            float s[16] = {0};
            int k = 0;
            for (; k + 16 <= oc; k += 16)
                for (int j = 0; j < 16; j++) s[j] += g[k + j] * w[k + j];
            for (int j = 0; k < oc; k++, j++) s[j] += g[k] * w[k];
            for (int h = 8; h > 0; h /= 2)
                for (int j = 0; j < h; j++) s[j] += s[j + h];
            dx[i] += s[0];
        }
    }
}
