/* resize.c - the CPU backend's bilinear resize, forward and backward, with TF's coordinate
 * rules computed as the reference computes them (the results are bitwise the reference's).
 * The horizontal taps are computed once per call (the reference computes them per output
 * pixel: with 16 channels that was most of the work); forward by output rows, backward by
 * images (batch >= threads) or channel ranges, so that no two threads write one float.
 */
#include <math.h>

#include "nn/cpu/cpu_loops.h"
#include "nn/ref/ref_kernels.h"

/* Output widths up to this take the precomputed taps (on the stack); wider: the reference. */
#define TAPS_MAX 4096

typedef struct tap {
    int lo, hi;
    float frac;
} tap;

static float axis_scale(int in, int out, ams_resize_mode mode) {
    if (mode == AMS_RESIZE_ALIGN_CORNERS) return out > 1 ? (float)(in - 1) / (float)(out - 1) : 0.0f;
    return (float)in / (float)out;
}

static tap axis_tap(int i, int in, float scale, ams_resize_mode mode) {
    float src = mode == AMS_RESIZE_HALF_PIXEL ? ((float)i + 0.5f) * scale - 0.5f : (float)i * scale;
    if (src < 0.0f) src = 0.0f;
    float fl = floorf(src);
    tap t;
    t.lo = (int)fl;
    if (t.lo > in - 1) t.lo = in - 1;
    t.hi = t.lo + 1 < in - 1 ? t.lo + 1 : in - 1;
    t.frac = src - fl;
    return t;
}

static void axis_taps(tap *t, int out, int in, ams_resize_mode mode) {
    float s = axis_scale(in, out, mode);
    for (int i = 0; i < out; i++) t[i] = axis_tap(i, in, s, mode);
}

/* Output rows [r0, r1) (a row = (image, y)). */
CPU_MULTIVERSION static void fwd_rows(float *out, const float *in, const tap *tx, int h, int w, int c,
                                      int oh, int ow, ams_resize_mode mode, int64_t r0, int64_t r1) {
    float sy = axis_scale(h, oh, mode);
    size_t cs = (size_t)c;
    for (int64_t r = r0; r < r1; r++) {
        int b = (int)(r / oh), y = (int)(r % oh);
        const float *img = in + (size_t)b * (size_t)h * (size_t)w * cs;
        tap ty = axis_tap(y, h, sy, mode);
        const float *top = img + (size_t)ty.lo * (size_t)w * cs;
        const float *bot = img + (size_t)ty.hi * (size_t)w * cs;
        float *orow = out + (size_t)r * (size_t)ow * cs;
        for (int x = 0; x < ow; x++, orow += cs) {
            const float *tl = top + (size_t)tx[x].lo * cs, *tr = top + (size_t)tx[x].hi * cs;
            const float *bl = bot + (size_t)tx[x].lo * cs, *br = bot + (size_t)tx[x].hi * cs;
            const float fx = tx[x].frac, fy = ty.frac;
            for (size_t k = 0; k < cs; k++) {
                float tt = tl[k] + (tr[k] - tl[k]) * fx;
                float u = bl[k] + (br[k] - bl[k]) * fx;
                orow[k] = tt + (u - tt) * fy;
            }
        }
    }
}

static void resize_fwd(const ams_backend *be, float *out, const float *in, int n, int h, int w,
                       int c, int oh, int ow, ams_resize_mode mode) {
    if (h < 1 || w < 1 || ow > TAPS_MAX) {
        ams_ref_resize_bilinear_forward(be, out, in, n, h, w, c, oh, ow, mode);
        return;
    }
    tap tx[TAPS_MAX];
    axis_taps(tx, ow, w, mode);
    int64_t rows = (int64_t)n * oh;
    int nt = cpu_threads_for(be, (int64_t)n * oh * ow * c);
    if (nt > rows) nt = (int)rows;
    CPU_PARALLEL_FOR
    for (int t = 0; t < nt; t++) {
        int64_t lo, hi;
        cpu_split(rows, t, nt, &lo, &hi);
        fwd_rows(out, in, tx, h, w, c, oh, ow, mode, lo, hi);
    }
}

/* Images [b0, b1), channels [k0, k1): scatter dout into din. */
CPU_MULTIVERSION static void bwd_part(float *din, const float *dout, const tap *tx, int h, int w,
                                      int c, int oh, int ow, ams_resize_mode mode, int64_t b0,
                                      int64_t b1, int64_t k0, int64_t k1) {
    float sy = axis_scale(h, oh, mode);
    size_t cs = (size_t)c;
    for (int64_t b = b0; b < b1; b++) {
        float *img = din + (size_t)b * (size_t)h * (size_t)w * cs;
        for (int y = 0; y < oh; y++) {
            tap ty = axis_tap(y, h, sy, mode);
            float *top = img + (size_t)ty.lo * (size_t)w * cs;
            float *bot = img + (size_t)ty.hi * (size_t)w * cs;
            const float *drow = dout + ((size_t)b * (size_t)oh + (size_t)y) * (size_t)ow * cs;
            for (int x = 0; x < ow; x++, drow += cs) {
                float *tl = top + (size_t)tx[x].lo * cs, *tr = top + (size_t)tx[x].hi * cs;
                float *bl = bot + (size_t)tx[x].lo * cs, *br = bot + (size_t)tx[x].hi * cs;
                float wy0 = 1.0f - ty.frac, wy1 = ty.frac;
                float wx0 = 1.0f - tx[x].frac, wx1 = tx[x].frac;
                for (int64_t k = k0; k < k1; k++) {
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

static void resize_bwd(const ams_backend *be, float *din, const float *dout, int n, int h, int w,
                       int c, int oh, int ow, ams_resize_mode mode) {
    int nt = cpu_threads_for(be, (int64_t)n * oh * ow * c);
    int by_image = n >= nt;
    if (h < 1 || w < 1 || ow > TAPS_MAX || (!by_image && c < 2 * nt)) {
        ams_ref_resize_bilinear_backward(be, din, dout, n, h, w, c, oh, ow, mode);
        return;
    }
    tap tx[TAPS_MAX];
    axis_taps(tx, ow, w, mode);
    CPU_PARALLEL_FOR
    for (int t = 0; t < nt; t++) {
        int64_t b0 = 0, b1 = n, k0 = 0, k1 = c;
        if (by_image) cpu_split(n, t, nt, &b0, &b1);
        else cpu_split(c, t, nt, &k0, &k1);
        bwd_part(din, dout, tx, h, w, c, oh, ow, mode, b0, b1, k0, k1);
    }
}

void ams_cpu_fill_resize(ams_backend *be) {
    be->resize_bilinear_forward = resize_fwd;
    be->resize_bilinear_backward = resize_bwd;
}
