/* conv2d.c - reference 2-D convolution and transposed convolution, forward and backward.
 *
 * Layouts (kernels.h): input (n,h,w,c), output (n,oh,ow,oc), weight HWIO
 * (kh,kw,c/groups,oc), explicit asymmetric zero padding, stride, dilation, groups.
 * Output channel o belongs to group o / (oc/groups) and reads input channels
 * [g*c/groups, (g+1)*c/groups).
 *
 * Everything is built from three accumulating loops over the same index space
 * (n, oy, ox, ky, kx, group, ci, o), each with output channels innermost so that
 * it walks weight rows and NHWC pixels contiguously:
 *   conv_acc         out[o]        += in[ci] * w[ci][o]      (the convolution)
 *   conv_data_acc    din[ci]       += w[ci][o] * dout[o]     (its data adjoint)
 *   conv_weight_acc  dw[ci][o]     += in[ci] * dout[o]       (its weight gradient)
 * The transposed convolution is the data adjoint of the forward conv of the same
 * descriptor, so its forward is conv_data_acc and its data gradient is conv_acc.
 * This is the oracle: clarity over speed, float accumulation as TF does.
 */
#include "nn/ref/ref_kernels.h"

/* The descriptor's invariants; a violation is a bug in whoever built the graph. */
static void check_desc(const ams_conv2d_desc *d) {
    AMS_ASSERT(d->n >= 0 && d->h >= 0 && d->w >= 0 && d->c >= 1 && d->oc >= 1);
    AMS_ASSERT(d->kh >= 1 && d->kw >= 1 && d->stride_h >= 1 && d->stride_w >= 1);
    AMS_ASSERT(d->dil_h >= 1 && d->dil_w >= 1);
    AMS_ASSERT(d->pad_t >= 0 && d->pad_b >= 0 && d->pad_l >= 0 && d->pad_r >= 0);
    AMS_ASSERT(d->groups >= 1 && d->c % d->groups == 0 && d->oc % d->groups == 0);
    int span_h = d->h + d->pad_t + d->pad_b - d->dil_h * (d->kh - 1) - 1;
    int span_w = d->w + d->pad_l + d->pad_r - d->dil_w * (d->kw - 1) - 1;
    AMS_ASSERT(d->oh == (span_h < 0 ? 0 : span_h / d->stride_h + 1));
    AMS_ASSERT(d->ow == (span_w < 0 ? 0 : span_w / d->stride_w + 1));
}

/* Pixel offsets (in elements) of image b, row y, column x. */
static size_t in_pixel(const ams_conv2d_desc *d, int b, int y, int x) {
    return (((size_t)b * (size_t)d->h + (size_t)y) * (size_t)d->w + (size_t)x) * (size_t)d->c;
}
static size_t out_pixel(const ams_conv2d_desc *d, int b, int y, int x) {
    return (((size_t)b * (size_t)d->oh + (size_t)y) * (size_t)d->ow + (size_t)x) * (size_t)d->oc;
}

/* Offset of weight row (ky, kx, ci): oc contiguous floats. */
static size_t weight_row(const ams_conv2d_desc *d, int ky, int kx, int ci) {
    int cpg = d->c / d->groups;
    return (((size_t)ky * (size_t)d->kw + (size_t)kx) * (size_t)cpg + (size_t)ci) * (size_t)d->oc;
}

/* out (n,oh,ow,oc) += conv(in (n,h,w,c), weight). */
static void conv_acc(float *out, const float *in, const float *weight, const ams_conv2d_desc *d) {
    int cpg = d->c / d->groups, opg = d->oc / d->groups;
    for (int b = 0; b < d->n; b++)
        for (int oy = 0; oy < d->oh; oy++)
            for (int ox = 0; ox < d->ow; ox++) {
                float *orow = out + out_pixel(d, b, oy, ox);
                for (int ky = 0; ky < d->kh; ky++) {
                    int iy = oy * d->stride_h - d->pad_t + ky * d->dil_h;
                    if (iy < 0 || iy >= d->h) continue;
                    for (int kx = 0; kx < d->kw; kx++) {
                        int ix = ox * d->stride_w - d->pad_l + kx * d->dil_w;
                        if (ix < 0 || ix >= d->w) continue;
                        const float *irow = in + in_pixel(d, b, iy, ix);
                        for (int g = 0; g < d->groups; g++)
                            for (int ci = 0; ci < cpg; ci++) {
                                float v = irow[g * cpg + ci];
                                const float *wrow = weight + weight_row(d, ky, kx, ci) + g * opg;
                                float *og = orow + g * opg;
                                for (int o = 0; o < opg; o++) og[o] += v * wrow[o];
                            }
                    }
                }
            }
}

/* din (n,h,w,c) += conv^T(dout (n,oh,ow,oc), weight): the data adjoint of conv_acc. */
static void conv_data_acc(float *din, const float *dout, const float *weight,
                          const ams_conv2d_desc *d) {
    int cpg = d->c / d->groups, opg = d->oc / d->groups;
    for (int b = 0; b < d->n; b++)
        for (int oy = 0; oy < d->oh; oy++)
            for (int ox = 0; ox < d->ow; ox++) {
                const float *drow = dout + out_pixel(d, b, oy, ox);
                for (int ky = 0; ky < d->kh; ky++) {
                    int iy = oy * d->stride_h - d->pad_t + ky * d->dil_h;
                    if (iy < 0 || iy >= d->h) continue;
                    for (int kx = 0; kx < d->kw; kx++) {
                        int ix = ox * d->stride_w - d->pad_l + kx * d->dil_w;
                        if (ix < 0 || ix >= d->w) continue;
                        float *irow = din + in_pixel(d, b, iy, ix);
                        for (int g = 0; g < d->groups; g++)
                            for (int ci = 0; ci < cpg; ci++) {
                                const float *wrow = weight + weight_row(d, ky, kx, ci) + g * opg;
                                const float *dg = drow + g * opg;
                                float acc = 0.0f;
                                for (int o = 0; o < opg; o++) acc += wrow[o] * dg[o];
                                irow[g * cpg + ci] += acc;
                            }
                    }
                }
            }
}

/* dweight (kh,kw,c/groups,oc) += sum over pixels of in (n,h,w,c) x dout (n,oh,ow,oc). */
static void conv_weight_acc(float *dweight, const float *in, const float *dout,
                            const ams_conv2d_desc *d) {
    int cpg = d->c / d->groups, opg = d->oc / d->groups;
    for (int b = 0; b < d->n; b++)
        for (int oy = 0; oy < d->oh; oy++)
            for (int ox = 0; ox < d->ow; ox++) {
                const float *drow = dout + out_pixel(d, b, oy, ox);
                for (int ky = 0; ky < d->kh; ky++) {
                    int iy = oy * d->stride_h - d->pad_t + ky * d->dil_h;
                    if (iy < 0 || iy >= d->h) continue;
                    for (int kx = 0; kx < d->kw; kx++) {
                        int ix = ox * d->stride_w - d->pad_l + kx * d->dil_w;
                        if (ix < 0 || ix >= d->w) continue;
                        const float *irow = in + in_pixel(d, b, iy, ix);
                        for (int g = 0; g < d->groups; g++)
                            for (int ci = 0; ci < cpg; ci++) {
                                float v = irow[g * cpg + ci];
                                float *wrow = dweight + weight_row(d, ky, kx, ci) + g * opg;
                                const float *dg = drow + g * opg;
                                for (int o = 0; o < opg; o++) wrow[o] += v * dg[o];
                            }
                    }
                }
            }
}

/* Sets every pixel of x (pixels, ch) to bias, or to zero without one. */
static void fill_bias(float *x, const float *bias, size_t pixels, int ch) {
    for (size_t p = 0; p < pixels; p++)
        for (int k = 0; k < ch; k++) x[p * (size_t)ch + (size_t)k] = bias ? bias[k] : 0.0f;
}

/* dbias (ch) += sum over pixels of dy (pixels, ch). */
static void bias_grad_acc(float *dbias, const float *dy, size_t pixels, int ch) {
    for (size_t p = 0; p < pixels; p++)
        for (int k = 0; k < ch; k++) dbias[k] += dy[p * (size_t)ch + (size_t)k];
}

void ams_ref_conv2d_forward(const ams_backend *be, float *out, const float *in,
                            const float *weight, const float *bias, const ams_conv2d_desc *d) {
    (void)be;
    check_desc(d);
    fill_bias(out, bias, (size_t)d->n * (size_t)d->oh * (size_t)d->ow, d->oc);
    conv_acc(out, in, weight, d);
}

void ams_ref_conv2d_backward(const ams_backend *be, float *din, float *dweight, float *dbias,
                             const float *dout, const float *in, const float *weight,
                             const ams_conv2d_desc *d) {
    (void)be;
    check_desc(d);
    if (dbias) bias_grad_acc(dbias, dout, (size_t)d->n * (size_t)d->oh * (size_t)d->ow, d->oc);
    if (din) conv_data_acc(din, dout, weight, d);
    if (dweight) conv_weight_acc(dweight, in, dout, d);
}

/* Transposed: in (n,oh,ow,oc) -> out (n,h,w,c); bias (c). */
void ams_ref_conv2d_transpose_forward(const ams_backend *be, float *out, const float *in,
                                      const float *weight, const float *bias,
                                      const ams_conv2d_desc *d) {
    (void)be;
    check_desc(d);
    fill_bias(out, bias, (size_t)d->n * (size_t)d->h * (size_t)d->w, d->c);
    conv_data_acc(out, in, weight, d);
}

/* Transposed backward: dout (n,h,w,c) -> din (n,oh,ow,oc), dweight, dbias (c). */
void ams_ref_conv2d_transpose_backward(const ams_backend *be, float *din, float *dweight,
                                       float *dbias, const float *dout, const float *in,
                                       const float *weight, const ams_conv2d_desc *d) {
    (void)be;
    check_desc(d);
    if (dbias) bias_grad_acc(dbias, dout, (size_t)d->n * (size_t)d->h * (size_t)d->w, d->c);
    if (din) conv_acc(din, dout, weight, d);
    /* the forward conv's roles: its input is our dout, its output gradient our in */
    if (dweight) conv_weight_acc(dweight, dout, in, d);
}
