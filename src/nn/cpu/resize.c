/* resize.c - the CPU backend's bilinear resize, forward and backward, with TF's coordinate
 * rules computed as the reference computes them (the results are bitwise the reference's).
 * The horizontal taps are computed once per call (the reference computes them per output
 * pixel: with 16 channels that was most of the work); forward by output rows, backward by
 * images (batch >= threads) or channel ranges, so that no two threads write one float.
 * The backward gathers: each input column sums, in registers, the terms the reference's
 * scatter adds to it, in the scatter's order (so bitwise the same sums); the scatter's
 * four read-modify-writes per output pixel, through memory that may alias, were its time.
 */
#include <math.h>

#include "nn/cpu/cpu_loops.h"
#include "nn/ref/ref_kernels.h"

/* 16 floats as one value (one zmm with AVX-512); aligned(4): unaligned loads and stores. */
typedef float v16 __attribute__((vector_size(64), aligned(4)));
typedef float v8 __attribute__((vector_size(32), aligned(4)));

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
            size_t k = 0;
            for (; k + 16 <= cs; k += 16) { /* the loop below, 16 channels at a time */
                v16 t0 = *(const v16 *)(tl + k), t1 = *(const v16 *)(tr + k);
                v16 b0 = *(const v16 *)(bl + k), b1 = *(const v16 *)(br + k);
                v16 tt = t0 + (t1 - t0) * fx, u = b0 + (b1 - b0) * fx;
                *(v16 *)(orow + k) = tt + (u - tt) * fy;
            }
            for (; k < cs; k++) {
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

/* The terms each input column receives from one output row, in the reference's scatter
 * order: column j's are cols[start[j] .. start[j + 1]) (output column x, its weight). The
 * scatter visits x in order, adding x's lo term before its hi term (lo == hi at an edge:
 * both). */
typedef struct term {
    int x;
    float w;
} term;

static void column_terms(int *start, term *cols, const tap *tx, int ow, int w) {
    for (int j = 0; j <= w; j++) start[j] = 0;
    for (int x = 0; x < ow; x++) start[tx[x].lo + 1]++, start[tx[x].hi + 1]++;
    for (int j = 0; j < w; j++) start[j + 1] += start[j];
    int pos[TAPS_MAX];
    for (int j = 0; j < w; j++) pos[j] = start[j];
    for (int x = 0; x < ow; x++) {
        cols[pos[tx[x].lo]++] = (term){x, 1.0f - tx[x].frac};
        cols[pos[tx[x].hi]++] = (term){x, tx[x].frac};
    }
}

/* Channels [k0, k1) of input row d (w pixels) += the terms of output row g (weight wy), or,
 * with wy2 >= 0 (the row is both the top and the bottom tap), each output column's terms
 * with wy, then with wy2, as the scatter adds them. V channels at a time (V: a vector type of
 * STEP floats, or float), from k; k moves past the channels done. */
#define GATHER_STEP(V, STEP)                                                                     \
    for (; k + (STEP) <= k1; k += (STEP)) {                                                      \
        V acc = *(V *)(dj + k);                                                                  \
        if (wy2 < 0.0f && end - e == 4) { /* one tap row, four terms (2x upsampling) */          \
            acc = acc + *(const V *)(g + (size_t)e[0].x * cs + k) * wy * e[0].w;                 \
            acc = acc + *(const V *)(g + (size_t)e[1].x * cs + k) * wy * e[1].w;                 \
            acc = acc + *(const V *)(g + (size_t)e[2].x * cs + k) * wy * e[2].w;                 \
            acc = acc + *(const V *)(g + (size_t)e[3].x * cs + k) * wy * e[3].w;                 \
        } else if (wy2 < 0.0f) {                                                                 \
            for (const term *t = e; t < end; t++)                                                \
                acc = acc + *(const V *)(g + (size_t)t->x * cs + k) * wy * t->w;                 \
        } else {                                                                                 \
            for (const term *t = e; t < end;) {                                                  \
                const term *u = t + 1; /* the terms of one output column: t .. u */              \
                while (u < end && u->x == t->x) u++;                                             \
                for (const term *q = t; q < u; q++)                                              \
                    acc = acc + *(const V *)(g + (size_t)q->x * cs + k) * wy * q->w;             \
                for (const term *q = t; q < u; q++)                                              \
                    acc = acc + *(const V *)(g + (size_t)q->x * cs + k) * wy2 * q->w;            \
                t = u;                                                                           \
            }                                                                                    \
        }                                                                                        \
        *(V *)(dj + k) = acc;                                                                    \
    }

static inline __attribute__((always_inline)) void gather_row(float *d, const float *g,
                                                             const int *start, const term *cols,
                                                             int w, size_t cs, int64_t k0,
                                                             int64_t k1, float wy, float wy2) {
    for (int j = 0; j < w; j++) {
        const term *e = cols + start[j], *end = cols + start[j + 1];
        float *dj = d + (size_t)j * cs;
        int64_t k = k0;
        GATHER_STEP(v16, 16)
        GATHER_STEP(v8, 8)
        GATHER_STEP(float, 1)
    }
}

/* Images [b0, b1), channels [k0, k1): din += the gradient of dout, row by output row. */
CPU_MULTIVERSION static void bwd_part(float *din, const float *dout, const int *start,
                                      const term *cols, int h, int w, int c, int oh, int ow,
                                      ams_resize_mode mode, int64_t b0, int64_t b1, int64_t k0,
                                      int64_t k1) {
    float sy = axis_scale(h, oh, mode);
    size_t cs = (size_t)c;
    for (int64_t b = b0; b < b1; b++) {
        float *img = din + (size_t)b * (size_t)h * (size_t)w * cs;
        for (int y = 0; y < oh; y++) {
            tap ty = axis_tap(y, h, sy, mode);
            float *top = img + (size_t)ty.lo * (size_t)w * cs;
            float *bot = img + (size_t)ty.hi * (size_t)w * cs;
            const float *drow = dout + ((size_t)b * (size_t)oh + (size_t)y) * (size_t)ow * cs;
            float wy0 = 1.0f - ty.frac, wy1 = ty.frac;
            if (top == bot) {
                gather_row(top, drow, start, cols, w, cs, k0, k1, wy0, wy1);
            } else {
                gather_row(top, drow, start, cols, w, cs, k0, k1, wy0, -1.0f);
                gather_row(bot, drow, start, cols, w, cs, k0, k1, wy1, -1.0f);
            }
        }
    }
}

static void resize_bwd(const ams_backend *be, float *din, const float *dout, int n, int h, int w,
                       int c, int oh, int ow, ams_resize_mode mode) {
    int nt = cpu_threads_for(be, (int64_t)n * oh * ow * c);
    int by_image = n >= nt;
    if (h < 1 || w < 1 || ow > TAPS_MAX || w > TAPS_MAX || (!by_image && c < 2 * nt)) {
        ams_ref_resize_bilinear_backward(be, din, dout, n, h, w, c, oh, ow, mode);
        return;
    }
    tap tx[TAPS_MAX];
    axis_taps(tx, ow, w, mode);
    int start[TAPS_MAX + 1];
    term cols[2 * TAPS_MAX];
    column_terms(start, cols, tx, ow, w);
    CPU_PARALLEL_FOR
    for (int t = 0; t < nt; t++) {
        int64_t b0 = 0, b1 = n, k0 = 0, k1 = c;
        if (by_image) cpu_split(n, t, nt, &b0, &b1);
        else cpu_split(c, t, nt, &k0, &k1);
        bwd_part(din, dout, start, cols, h, w, c, oh, ow, mode, b0, b1, k0, k1);
    }
}

void ams_cpu_fill_resize(ams_backend *be) {
    be->resize_bilinear_forward = resize_fwd;
    be->resize_bilinear_backward = resize_bwd;
}
