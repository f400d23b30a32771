/* pool.c - reference average, max and global-average pooling (NHWC), forward and backward.
 *
 * TF semantics: padded positions never take part. An average divides by the
 * number of real input elements under the window; a max is over real elements
 * only. A window with no real element (only possible when padding >= kernel,
 * which TF never produces) gives 0 and passes no gradient. Max pooling sends the
 * gradient to the first maximum of each window in row-major (ky, kx) order.
 */
#include "nn/ref/ref_kernels.h"

static void check_desc(const ams_pool2d_desc *d) {
    AMS_ASSERT(d->n >= 0 && d->h >= 0 && d->w >= 0 && d->c >= 0);
    AMS_ASSERT(d->kh >= 1 && d->kw >= 1 && d->stride_h >= 1 && d->stride_w >= 1);
    AMS_ASSERT(d->pad_t >= 0 && d->pad_b >= 0 && d->pad_l >= 0 && d->pad_r >= 0);
    AMS_ASSERT(d->oh == ams_conv_out_size(d->h, d->kh, d->stride_h, 1, d->pad_t, d->pad_b));
    AMS_ASSERT(d->ow == ams_conv_out_size(d->w, d->kw, d->stride_w, 1, d->pad_l, d->pad_r));
}

/* The window of output (oy, ox) clipped to the real input: rows [*y0,*y1), cols [*x0,*x1). */
static void window(const ams_pool2d_desc *d, int oy, int ox, int *y0, int *y1, int *x0, int *x1) {
    int ys = oy * d->stride_h - d->pad_t, xs = ox * d->stride_w - d->pad_l;
    int ye = ys + d->kh, xe = xs + d->kw;
    *y0 = ys < 0 ? 0 : ys;
    *x0 = xs < 0 ? 0 : xs;
    *y1 = ye > d->h ? d->h : ye;
    *x1 = xe > d->w ? d->w : xe;
}

static size_t in_pixel(const ams_pool2d_desc *d, int b, int y, int x) {
    return (((size_t)b * (size_t)d->h + (size_t)y) * (size_t)d->w + (size_t)x) * (size_t)d->c;
}
static size_t out_pixel(const ams_pool2d_desc *d, int b, int y, int x) {
    return (((size_t)b * (size_t)d->oh + (size_t)y) * (size_t)d->ow + (size_t)x) * (size_t)d->c;
}

void ams_ref_avgpool_forward(const ams_backend *be, float *out, const float *in,
                             const ams_pool2d_desc *d) {
    (void)be;
    check_desc(d);
    for (int b = 0; b < d->n; b++)
        for (int oy = 0; oy < d->oh; oy++)
            for (int ox = 0; ox < d->ow; ox++) {
                int y0, y1, x0, x1;
                window(d, oy, ox, &y0, &y1, &x0, &x1);
                float *orow = out + out_pixel(d, b, oy, ox);
                for (int k = 0; k < d->c; k++) orow[k] = 0.0f;
                for (int y = y0; y < y1; y++)
                    for (int x = x0; x < x1; x++) {
                        const float *irow = in + in_pixel(d, b, y, x);
                        for (int k = 0; k < d->c; k++) orow[k] += irow[k];
                    }
                int count = (y1 - y0) * (x1 - x0);
                if (count <= 0) continue;
                for (int k = 0; k < d->c; k++) orow[k] /= (float)count;
            }
}

void ams_ref_avgpool_backward(const ams_backend *be, float *din, const float *dout,
                              const ams_pool2d_desc *d) {
    (void)be;
    check_desc(d);
    for (int b = 0; b < d->n; b++)
        for (int oy = 0; oy < d->oh; oy++)
            for (int ox = 0; ox < d->ow; ox++) {
                int y0, y1, x0, x1;
                window(d, oy, ox, &y0, &y1, &x0, &x1);
                int count = (y1 - y0) * (x1 - x0);
                if (count <= 0) continue;
                const float *drow = dout + out_pixel(d, b, oy, ox);
                for (int y = y0; y < y1; y++)
                    for (int x = x0; x < x1; x++) {
                        float *irow = din + in_pixel(d, b, y, x);
                        for (int k = 0; k < d->c; k++) irow[k] += drow[k] / (float)count;
                    }
            }
}

void ams_ref_maxpool_forward(const ams_backend *be, float *out, const float *in,
                             const ams_pool2d_desc *d) {
    (void)be;
    check_desc(d);
    for (int b = 0; b < d->n; b++)
        for (int oy = 0; oy < d->oh; oy++)
            for (int ox = 0; ox < d->ow; ox++) {
                int y0, y1, x0, x1;
                window(d, oy, ox, &y0, &y1, &x0, &x1);
                float *orow = out + out_pixel(d, b, oy, ox);
                if (y1 <= y0 || x1 <= x0) {
                    for (int k = 0; k < d->c; k++) orow[k] = 0.0f;
                    continue;
                }
                const float *first = in + in_pixel(d, b, y0, x0);
                for (int k = 0; k < d->c; k++) orow[k] = first[k];
                for (int y = y0; y < y1; y++)
                    for (int x = x0; x < x1; x++) {
                        const float *irow = in + in_pixel(d, b, y, x);
                        for (int k = 0; k < d->c; k++)
                            if (irow[k] > orow[k]) orow[k] = irow[k];
                    }
            }
}

void ams_ref_maxpool_backward(const ams_backend *be, float *din, const float *dout,
                              const float *in, const ams_pool2d_desc *d) {
    (void)be;
    check_desc(d);
    for (int b = 0; b < d->n; b++)
        for (int oy = 0; oy < d->oh; oy++)
            for (int ox = 0; ox < d->ow; ox++) {
                int y0, y1, x0, x1;
                window(d, oy, ox, &y0, &y1, &x0, &x1);
                if (y1 <= y0 || x1 <= x0) continue;
                const float *drow = dout + out_pixel(d, b, oy, ox);
                for (int k = 0; k < d->c; k++) {
                    /* strict > keeps the first maximum in row-major order */
                    size_t best = in_pixel(d, b, y0, x0) + (size_t)k;
                    for (int y = y0; y < y1; y++)
                        for (int x = x0; x < x1; x++) {
                            size_t at = in_pixel(d, b, y, x) + (size_t)k;
                            if (in[at] > in[best]) best = at;
                        }
                    din[best] += drow[k];
                }
            }
}

void ams_ref_global_avgpool_forward(const ams_backend *be, float *out, const float *in, int n,
                                    int h, int w, int c) {
    (void)be;
    size_t hw = (size_t)h * (size_t)w;
    for (int b = 0; b < n; b++) {
        float *orow = out + (size_t)b * (size_t)c;
        for (int k = 0; k < c; k++) orow[k] = 0.0f;
        for (size_t p = 0; p < hw; p++) {
            const float *irow = in + ((size_t)b * hw + p) * (size_t)c;
            for (int k = 0; k < c; k++) orow[k] += irow[k];
        }
        if (hw == 0) continue;
        for (int k = 0; k < c; k++) orow[k] /= (float)hw;
    }
}

void ams_ref_global_avgpool_backward(const ams_backend *be, float *din, const float *dout,
                                     int n, int h, int w, int c) {
    (void)be;
    size_t hw = (size_t)h * (size_t)w;
    if (hw == 0) return;
    for (int b = 0; b < n; b++) {
        const float *drow = dout + (size_t)b * (size_t)c;
        for (size_t p = 0; p < hw; p++) {
            float *irow = din + ((size_t)b * hw + p) * (size_t)c;
            for (int k = 0; k < c; k++) irow[k] += drow[k] / (float)hw;
        }
    }
}
