/* conv_dw_bwd.c - the data gradient of depthwise convolutions (groups == channels,
 * multiplier 1), NHWC, for the builds without oneDNN (where the alternative is the
 * reference kernel). Each input pixel gathers, per channel vector, its taps
 * dout (oy, ox) * w (ky, kx) in registers and writes its din once (overwritten or
 * accumulated into), so input rows split over threads never share a float; full 3x3 and
 * 5x5 stride-1 rows keep the weights in registers for their interior columns.
 * Rows: any stride and dilation; columns: stride up to MAX_STRIDE with dilation 1, or
 * stride 1 with any dilation.
 * With oneDNN, its jit_dw backward-data stays: measured on the selfie student (batch 8,
 * docs/performance.md), this kernel was at parity or slower in the training step, both
 * being bound by memory traffic (e.g. the stride-2 16-channel conv moves ~20 MB in ~1 ms).
 */
#include <string.h>

#include "nn/cpu/cpu_loops.h"

/* Kernel heights and column strides up to these are ours (tap tables on the stack). */
#define MAX_KH 64
#define MAX_STRIDE 8

typedef float v16 __attribute__((vector_size(64), aligned(4)));
typedef float v8 __attribute__((vector_size(32), aligned(4)));

int ams_cpu_dw_dgrad_ok(const ams_conv2d_desc *d) {
    return d->groups == d->c && d->oc == d->c && d->c > 0 && d->n > 0 && d->h > 0 && d->w > 0 &&
           d->oh > 0 && d->ow > 0 && d->kh <= MAX_KH && d->stride_w <= MAX_STRIDE &&
           (d->stride_w == 1 || d->dil_w == 1);
}

/* acc (vector type V) = din's value (or 0) + the taps of one input pixel: for each of the nr
 * vertical taps (g[j], w[j]: dout row at ox = oxb, weight row at kx = kxb), nc column taps
 * t stepping dout by -gstep and the weights by +wstep floats; two accumulators halve the
 * chain of dependent multiply-adds. */
#define DW_PIXEL(V, k)                                                                         \
    do {                                                                                       \
        V a0 = set ? (V){0} : *(const V *)(dp + (k)), a1 = {0};                                \
        for (int j = 0; j < nr; j++) {                                                         \
            const float *g = gb[j] + (k), *wv = wb[j] + (k);                                   \
            int t = 0;                                                                         \
            for (; t + 2 <= nc; t += 2, g -= 2 * gstep, wv += 2 * wstep) {                     \
                a0 += *(const V *)g * *(const V *)wv;                                          \
                a1 += *(const V *)(g - gstep) * *(const V *)(wv + wstep);                      \
            }                                                                                  \
            if (t < nc) a0 += *(const V *)g * *(const V *)wv;                                  \
        }                                                                                      \
        *(V *)(dp + (k)) = a0 + a1;                                                            \
    } while (0)

/* The interior of a stride-1, undilated K x K row (every tap inside): columns [x0, x1),
 * channels [0, c16) in 16-lane blocks, the K x K weights of a block held in registers and
 * one accumulator per kernel row. g[j]: dout row of kernel row j (ky = j). */
#define DW_INTERIOR(K)                                                                         \
    static inline __attribute__((always_inline)) void dw_interior##K(                          \
        float *drow, const float *const *g, const float *weight, int c, int c16, int pad_l,    \
        int x0, int x1, int set) {                                                             \
        const size_t cs = (size_t)c;                                                           \
        for (int k = 0; k < c16; k += 16) {                                                    \
            v16 wv[K][K];                                                                      \
            for (int j = 0; j < K; j++)                                                        \
                for (int t = 0; t < K; t++)                                                    \
                    wv[j][t] = *(const v16 *)(weight + (size_t)(j * K + t) * cs + (size_t)k); \
            for (int ix = x0; ix < x1; ix++) {                                                 \
                size_t o = (size_t)(ix + pad_l) * cs + (size_t)k;                              \
                v16 acc[K];                                                                    \
                for (int j = 0; j < K; j++) {                                                  \
                    const float *gp = g[j] + o;                                                \
                    acc[j] = *(const v16 *)gp * wv[j][0];                                      \
                    for (int t = 1; t < K; t++) acc[j] += *(const v16 *)(gp - t * cs) * wv[j][t]; \
                }                                                                              \
                for (int j = 1; j < K; j++) acc[0] += acc[j];                                  \
                float *dp = drow + (size_t)ix * cs + (size_t)k;                                \
                *(v16 *)dp = set ? acc[0] : *(const v16 *)dp + acc[0];                         \
            }                                                                                  \
        }                                                                                      \
    }
DW_INTERIOR(3)
DW_INTERIOR(5)

/* din rows [r0, r1) (a row = (image, iy)): each input pixel gathers its taps in registers
 * and writes its din once. Column taps of ix (u = ix + pad_l): with stride s > 1 (dilation
 * 1) u = q * s + ph, kx = ph + t * s, ox = q - t; with stride 1, kx = t, ox = u - t * dil. */
CPU_MULTIVERSION static void dw_dgrad_rows(float *din, const float *dout, const float *weight,
                                           const ams_conv2d_desc *d, int64_t r0, int64_t r1,
                                           int set) {
    const int c = d->c, sw = d->stride_w, dil = d->dil_w, kw = d->kw, ow = d->ow;
    const size_t cs = (size_t)c;
    const int64_t wstep = sw > 1 ? (int64_t)sw * c : c, gstep = sw > 1 ? c : (int64_t)dil * c;
    int nk[MAX_STRIDE]; /* kx with kx % s == ph */
    for (int ph = 0; ph < sw; ph++) nk[ph] = ph < kw ? (kw - 1 - ph) / sw + 1 : 0;
    const float *grow[MAX_KH], *wrow[MAX_KH], *gb[MAX_KH], *wb[MAX_KH]; /* vertical taps */
    const int c16 = c & ~15;
    const int fast = d->stride_h == 1 && d->dil_h == 1 && sw == 1 && dil == 1 && d->kh == kw &&
                     (kw == 3 || kw == 5) && c16 > 0;
    for (int64_t r = r0; r < r1; r++) {
        int b = (int)(r / d->h), iy = (int)(r % d->h), nr = 0;
        for (int ky = 0; ky < d->kh; ky++) {
            int u = iy + d->pad_t - ky * d->dil_h;
            if (u < 0 || u % d->stride_h || u / d->stride_h >= d->oh) continue;
            grow[nr] = dout + ((size_t)b * (size_t)d->oh + (size_t)(u / d->stride_h)) * (size_t)ow * cs;
            wrow[nr++] = weight + (size_t)ky * (size_t)kw * cs;
        }
        float *drow = din + (size_t)r * (size_t)d->w * cs;
        /* interior columns of a full 3x3 / 5x5 stride-1 row: the register kernel above */
        int fx0 = 0, fx1 = 0;
        if (fast && nr == kw) {
            fx0 = kw - 1 - d->pad_l > 0 ? kw - 1 - d->pad_l : 0;
            fx1 = ow - d->pad_l < d->w ? ow - d->pad_l : d->w;
            if (fx1 > fx0 && kw == 3) dw_interior3(drow, grow, weight, c, c16, d->pad_l, fx0, fx1, set);
            else if (fx1 > fx0) dw_interior5(drow, grow, weight, c, c16, d->pad_l, fx0, fx1, set);
        }
        int q = d->pad_l / sw, ph = d->pad_l % sw;
        for (int ix = 0; ix < d->w; ix++) {
            int kxb, oxb, nc;
            if (sw > 1) {
                int tlo = q - ow + 1 > 0 ? q - ow + 1 : 0, thi = nk[ph] - 1 < q ? nk[ph] - 1 : q;
                kxb = ph + tlo * sw, oxb = q - tlo, nc = thi - tlo + 1;
                if (++ph == sw) ph = 0, q++;
            } else {
                int u = ix + d->pad_l;
                int tlo, thi;
                if (dil == 1) {
                    tlo = u - ow < 0 ? 0 : u - ow + 1, thi = u < kw - 1 ? u : kw - 1;
                } else {
                    tlo = u - ow < 0 ? 0 : (u - ow) / dil + 1, thi = u / dil < kw - 1 ? u / dil : kw - 1;
                }
                kxb = tlo, oxb = u - tlo * dil, nc = thi - tlo + 1;
            }
            float *dp = drow + (size_t)ix * cs;
            if (nc <= 0 || nr == 0) {
                if (set) memset(dp, 0, cs * sizeof *dp);
                continue;
            }
            for (int j = 0; j < nr; j++) {
                gb[j] = grow[j] + (size_t)oxb * cs;
                wb[j] = wrow[j] + (size_t)kxb * cs;
            }
            int k = ix >= fx0 && ix < fx1 ? c16 : 0;
            for (; k + 16 <= c; k += 16) DW_PIXEL(v16, k);
            if (k + 8 <= c) {
                DW_PIXEL(v8, k);
                k += 8;
            }
            for (; k < c; k++) {
                float a = set ? 0.0f : dp[k];
                for (int j = 0; j < nr; j++)
                    for (int t = 0; t < nc; t++) a += gb[j][k - t * gstep] * wb[j][k + t * wstep];
                dp[k] = a;
            }
        }
    }
}

void ams_cpu_dw_dgrad(const ams_backend *be, int set, float *din, const float *dout,
                      const float *weight, const ams_conv2d_desc *d) {
    int64_t rows = (int64_t)d->n * d->h;
    int64_t work = (int64_t)d->n * d->oh * d->ow * d->c * d->kh * d->kw / 8;
    int nt = cpu_threads_for(be, work);
    if (nt > rows) nt = (int)rows;
    CPU_PARALLEL_FOR
    for (int t = 0; t < nt; t++) {
        int64_t lo, hi;
        cpu_split(rows, t, nt, &lo, &hi);
        dw_dgrad_rows(din, dout, weight, d, lo, hi, set);
    }
}
