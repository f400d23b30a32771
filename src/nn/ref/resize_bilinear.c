/* resize_bilinear.c - reference bilinear resize (NHWC), forward and backward, TF semantics.
 *
 * Source coordinate of destination index i along an axis of size in -> out
 * (TF's image_resizer_state.h / resize_bilinear_op.cc, computed in float as TF does):
 *   ASYMMETRIC     src = i * in/out                      (TF legacy default)
 *   ALIGN_CORNERS  src = i * (in-1)/(out-1), 0 when out == 1
 *   HALF_PIXEL     src = (i + 0.5) * in/out - 0.5, clamped at 0
 * then low = floor(src), high = min(low + 1, in - 1), weight of high = src - low.
 * (TF takes high = min(ceil(src), in-1) and keeps a negative src's fraction, but
 * there both taps are row 0, so the value is the same; PyTorch clamps at 0 too.)
 */
#include "nn/ref/ref_kernels.h"

#include <math.h>

typedef struct tap {
    int lo, hi;  /* the two source indices */
    float frac;  /* weight of hi; lo gets 1 - frac */
} tap;

static float axis_scale(int in, int out, ams_resize_mode mode) {
    if (mode == AMS_RESIZE_ALIGN_CORNERS) return out > 1 ? (float)(in - 1) / (float)(out - 1) : 0.0f;
    return (float)in / (float)out;
}

static tap axis_tap(int i, int in, float scale, ams_resize_mode mode) {
    float src = mode == AMS_RESIZE_HALF_PIXEL ? ((float)i + 0.5f) * scale - 0.5f
                                              : (float)i * scale;
    if (src < 0.0f) src = 0.0f;
    float fl = floorf(src);
    tap t;
    t.lo = (int)fl;
    if (t.lo > in - 1) t.lo = in - 1; /* float rounding at the last row */
    t.hi = t.lo + 1 < in - 1 ? t.lo + 1 : in - 1;
    t.frac = src - fl;
    return t;
}

static void check_args(int n, int h, int w, int c, int oh, int ow, ams_resize_mode mode) {
    AMS_ASSERT(n >= 0 && c >= 0 && h >= 1 && w >= 1 && oh >= 0 && ow >= 0);
    AMS_ASSERT(mode == AMS_RESIZE_ASYMMETRIC || mode == AMS_RESIZE_ALIGN_CORNERS ||
               mode == AMS_RESIZE_HALF_PIXEL);
}

void ams_ref_resize_bilinear_forward(const ams_backend *be, float *out, const float *in, int n,
                                     int h, int w, int c, int oh, int ow, ams_resize_mode mode) {
    (void)be;
    check_args(n, h, w, c, oh, ow, mode);
    float sy = axis_scale(h, oh, mode), sx = axis_scale(w, ow, mode);
    size_t cs = (size_t)c;
    for (int b = 0; b < n; b++) {
        const float *img = in + (size_t)b * (size_t)h * (size_t)w * cs;
        for (int y = 0; y < oh; y++) {
            tap ty = axis_tap(y, h, sy, mode);
            const float *top = img + (size_t)ty.lo * (size_t)w * cs;
            const float *bot = img + (size_t)ty.hi * (size_t)w * cs;
            for (int x = 0; x < ow; x++) {
                tap tx = axis_tap(x, w, sx, mode);
                float *orow = out + (((size_t)b * (size_t)oh + (size_t)y) * (size_t)ow + (size_t)x) * cs;
                const float *tl = top + (size_t)tx.lo * cs, *tr = top + (size_t)tx.hi * cs;
                const float *bl = bot + (size_t)tx.lo * cs, *br = bot + (size_t)tx.hi * cs;
                for (size_t k = 0; k < cs; k++) {
                    /* TF's compute_lerp: x first, then y */
                    float t = tl[k] + (tr[k] - tl[k]) * tx.frac;
                    float u = bl[k] + (br[k] - bl[k]) * tx.frac;
                    orow[k] = t + (u - t) * ty.frac;
                }
            }
        }
    }
}

void ams_ref_resize_bilinear_backward(const ams_backend *be, float *din, const float *dout,
                                      int n, int h, int w, int c, int oh, int ow,
                                      ams_resize_mode mode) {
    (void)be;
    check_args(n, h, w, c, oh, ow, mode);
    float sy = axis_scale(h, oh, mode), sx = axis_scale(w, ow, mode);
    size_t cs = (size_t)c;
    for (int b = 0; b < n; b++) {
        float *img = din + (size_t)b * (size_t)h * (size_t)w * cs;
        for (int y = 0; y < oh; y++) {
            tap ty = axis_tap(y, h, sy, mode);
            float *top = img + (size_t)ty.lo * (size_t)w * cs;
            float *bot = img + (size_t)ty.hi * (size_t)w * cs;
            for (int x = 0; x < ow; x++) {
                tap tx = axis_tap(x, w, sx, mode);
                const float *drow =
                    dout + (((size_t)b * (size_t)oh + (size_t)y) * (size_t)ow + (size_t)x) * cs;
                float *tl = top + (size_t)tx.lo * cs, *tr = top + (size_t)tx.hi * cs;
                float *bl = bot + (size_t)tx.lo * cs, *br = bot + (size_t)tx.hi * cs;
                float wy0 = 1.0f - ty.frac, wy1 = ty.frac;
                float wx0 = 1.0f - tx.frac, wx1 = tx.frac;
                /* taps may coincide (edges): += handles that */
                for (size_t k = 0; k < cs; k++) {
                    float g = drow[k];
                    tl[k] += g * wy0 * wx0;
                    tr[k] += g * wy0 * wx1;
                    bl[k] += g * wy1 * wx0;
                    br[k] += g * wy1 * wx1;
                }
            }
        }
    }
}
