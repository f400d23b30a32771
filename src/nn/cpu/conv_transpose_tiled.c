/* conv_transpose_tiled.c - transposed convolutions whose windows tile the output exactly
 * (stride == kernel, no padding, no dilation, one group: the 2x2 stride-2 upsampling at the
 * end of the selfie student). Every output pixel then comes from one input pixel and one
 * tap, so forward, data gradient and weight gradient are short dot products per pixel;
 * oneDNN ran the backward as generic backward-data / backward-weights convolutions at
 * ~5 GFLOP/s. The forward (dot products over oc per output element) was slower than
 * oneDNN's on the selfie's 16 -> 1 channels and is used only without oneDNN.
 * Descriptor roles as in kernels.h: the transposed input is (n,oh,ow,oc), its output
 * (n,h,w,c), the weight (kh,kw,c,oc).
 */
#include <string.h>

#include "nn/cpu/cpu_loops.h"

int ams_cpu_conv_tiled(const ams_conv2d_desc *d) {
    return d->kh == d->stride_h && d->kw == d->stride_w && d->dil_h == 1 && d->dil_w == 1 &&
           d->pad_t == 0 && d->pad_b == 0 && d->pad_l == 0 && d->pad_r == 0 && d->groups == 1 &&
           d->h == d->oh * d->kh && d->w == d->ow * d->kw && d->n > 0 && d->oh > 0 && d->ow > 0;
}

/* sum_j x[j] * w[j], j < n, in 16 lanes (vectorised) then a pairwise sum. */
static inline float dot16(const float *x, const float *w, int n) {
    float s[16] = {0};
    int j = 0;
    for (; j + 16 <= n; j += 16)
        for (int k = 0; k < 16; k++) s[k] += x[j + k] * w[j + k];
    for (int k = 0; j < n; j++, k++) s[k] += x[j] * w[j];
    for (int h = 8; h > 0; h /= 2)
        for (int k = 0; k < h; k++) s[k] += s[k + h];
    return s[0];
}

/* Forward of input rows [r0, r1) (a row = (image, oy)): writes the kh output rows each
 * input row covers. */
CPU_MULTIVERSION static void tiled_fwd_rows(float *out, const float *in, const float *weight,
                                            const float *bias, const ams_conv2d_desc *d, int64_t r0,
                                            int64_t r1) {
    const int c = d->c, oc = d->oc;
    for (int64_t r = r0; r < r1; r++) {
        int b = (int)(r / d->oh), oy = (int)(r % d->oh);
        const float *irow = in + (size_t)r * (size_t)d->ow * (size_t)oc;
        for (int ky = 0; ky < d->kh; ky++) {
            float *orow = out + ((size_t)b * (size_t)d->h + (size_t)(oy * d->kh + ky)) *
                                    (size_t)d->w * (size_t)c;
            for (int ox = 0; ox < d->ow; ox++) {
                const float *x = irow + (size_t)ox * (size_t)oc;
                for (int kx = 0; kx < d->kw; kx++) {
                    float *o = orow + (size_t)(ox * d->kw + kx) * (size_t)c;
                    const float *wt = weight + ((size_t)ky * (size_t)d->kw + (size_t)kx) *
                                                   (size_t)c * (size_t)oc;
                    for (int ci = 0; ci < c; ci++)
                        o[ci] = (bias ? bias[ci] : 0.0f) + dot16(x, wt + (size_t)ci * (size_t)oc, oc);
                }
            }
        }
    }
}

/* din (the transposed input's gradient) of rows [r0, r1) += sum over taps and c of
 * dout * weight. */
CPU_MULTIVERSION static void tiled_bwd_data_rows(float *din, const float *dout, const float *weight,
                                                 const ams_conv2d_desc *d, int64_t r0, int64_t r1) {
    const int c = d->c, oc = d->oc;
    for (int64_t r = r0; r < r1; r++) {
        int b = (int)(r / d->oh), oy = (int)(r % d->oh);
        float *drow = din + (size_t)r * (size_t)d->ow * (size_t)oc;
        for (int ky = 0; ky < d->kh; ky++) {
            const float *grow = dout + ((size_t)b * (size_t)d->h + (size_t)(oy * d->kh + ky)) *
                                           (size_t)d->w * (size_t)c;
            for (int ox = 0; ox < d->ow; ox++) {
                float *dx = drow + (size_t)ox * (size_t)oc;
                for (int kx = 0; kx < d->kw; kx++) {
                    const float *g = grow + (size_t)(ox * d->kw + kx) * (size_t)c;
                    const float *wt = weight + ((size_t)ky * (size_t)d->kw + (size_t)kx) *
                                                   (size_t)c * (size_t)oc;
                    for (int ci = 0; ci < c; ci++) {
                        const float gv = g[ci], *wr = wt + (size_t)ci * (size_t)oc;
                        for (int o = 0; o < oc; o++) dx[o] += gv * wr[o];
                    }
                }
            }
        }
    }
}

/* acc (kh,kw,c,oc) += over rows [r0, r1): dout (tap, ci) * in (o). */
CPU_MULTIVERSION static void tiled_wgrad_rows(float *acc, const float *in, const float *dout,
                                              const ams_conv2d_desc *d, int64_t r0, int64_t r1) {
    const int c = d->c, oc = d->oc;
    for (int64_t r = r0; r < r1; r++) {
        int b = (int)(r / d->oh), oy = (int)(r % d->oh);
        const float *irow = in + (size_t)r * (size_t)d->ow * (size_t)oc;
        for (int ky = 0; ky < d->kh; ky++) {
            const float *grow = dout + ((size_t)b * (size_t)d->h + (size_t)(oy * d->kh + ky)) *
                                           (size_t)d->w * (size_t)c;
            for (int ox = 0; ox < d->ow; ox++) {
                const float *x = irow + (size_t)ox * (size_t)oc;
                for (int kx = 0; kx < d->kw; kx++) {
                    const float *g = grow + (size_t)(ox * d->kw + kx) * (size_t)c;
                    float *a = acc + ((size_t)ky * (size_t)d->kw + (size_t)kx) * (size_t)c * (size_t)oc;
                    for (int ci = 0; ci < c; ci++) {
                        const float gv = g[ci];
                        float *ar = a + (size_t)ci * (size_t)oc;
                        for (int o = 0; o < oc; o++) ar[o] += gv * x[o];
                    }
                }
            }
        }
    }
}

CPU_MULTIVERSION static void add_to(float *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] += src[i];
}

static int threads_for(const ams_backend *be, const ams_conv2d_desc *d) {
    int64_t rows = (int64_t)d->n * d->oh;
    int nt = cpu_threads_for(be, (int64_t)d->n * d->h * d->w * d->c * d->oc / 4);
    return nt > rows ? (int)rows : nt;
}

void ams_cpu_conv_tiled_forward(const ams_backend *be, float *out, const float *in,
                                const float *weight, const float *bias, const ams_conv2d_desc *d) {
    int nt = threads_for(be, d);
    int64_t rows = (int64_t)d->n * d->oh;
    CPU_PARALLEL_FOR
    for (int t = 0; t < nt; t++) {
        int64_t lo, hi;
        cpu_split(rows, t, nt, &lo, &hi);
        tiled_fwd_rows(out, in, weight, bias, d, lo, hi);
    }
}

int ams_cpu_conv_tiled_backward(const ams_backend *be, float *din, float *dweight, float *dbias,
                                const float *dout, const float *in, const float *weight,
                                const ams_conv2d_desc *d) {
    ams_cpu_state *st = (ams_cpu_state *)be->state;
    int nt = threads_for(be, d);
    int64_t rows = (int64_t)d->n * d->oh;
    size_t nw = (size_t)d->kh * (size_t)d->kw * (size_t)d->c * (size_t)d->oc;
    if (dweight && !ams_cpu_part_reserve(st, (size_t)nt * nw)) return 0;
    if (dbias) ams_cpu_bias_grad(be, dbias, dout, (int64_t)d->n * d->h * d->w, d->c);
    float *part = st->part;
    CPU_PARALLEL_FOR
    for (int t = 0; t < nt; t++) {
        int64_t lo, hi;
        cpu_split(rows, t, nt, &lo, &hi);
        if (din) tiled_bwd_data_rows(din, dout, weight, d, lo, hi);
        if (dweight) {
            float *p = part + (size_t)t * nw;
            memset(p, 0, nw * sizeof *p);
            tiled_wgrad_rows(p, in, dout, d, lo, hi);
        }
    }
    if (dweight)
        for (int t = 0; t < nt; t++) add_to(dweight, part + (size_t)t * nw, nw);
    return 1;
}
