/* conv_dw_bwd.c - the backward of depthwise convolutions (groups == channels, multiplier 1),
 * NHWC: the data gradient alone (ams_cpu_dw_dgrad) and all three gradients in one pass over
 * dout (ams_cpu_dw_backward: per output row its weight and bias sums, then the input rows
 * that row's dout reaches, while those dout rows are in cache).
 * Data gradient: each input pixel gathers, per channel vector, its taps
 * dout (oy, ox) * w (ky, kx) in registers and writes its din once (overwritten or
 * accumulated into), so input rows split over threads never share a float; full 3x3 and
 * 5x5 stride-1 rows keep the weights in registers for their interior columns.
 * Rows: any stride and dilation; columns: stride up to MAX_STRIDE with dilation 1, or
 * stride 1 with any dilation.
 * Weight gradient: per thread partial sums (thread 0 sums into dweight itself); 3x3 rows
 * inside the image sum their nine taps side by side.
 * Rows of 3x3 / 5x5 at stride 1 and 3x3 at stride 2 (undilated) have register kernels for
 * their interior columns; the rest goes pixel by pixel.
 * With oneDNN the one-pass backward takes those convs, where it measured faster than
 * oneDNN's data gradient (into scratch, then an add when accumulating) plus its weight
 * gradient (5 images, one thread: 96x128x16 0.78 -> 0.56-0.68 ms, 3x3 stride 2 from 96x128x16
 * 0.24 -> 0.16 ms; 5x5 at 12x16x128 0.27 -> 0.22 ms); oneDNN's jit_dw keeps 5x5 strided and
 * dilated convs, where ours, without a register kernel for them, measured slower
 * (docs/performance.md).
 */
#include <stddef.h>
#include <string.h>

#include "nn/cpu/cpu_loops.h"

/* Kernel heights and column strides up to these are ours (tap tables on the stack). */
#define MAX_KH 64
#define MAX_STRIDE 8

typedef float v16 __attribute__((vector_size(64), aligned(4)));
typedef float v8 __attribute__((vector_size(32), aligned(4)));
typedef int32_t vi16 __attribute__((vector_size(64), aligned(4)));
typedef int32_t vi8 __attribute__((vector_size(32), aligned(4)));

/* A folded relu's backward (ams_cpu_dw_backward's relu_of): v where the relu's output r is
 * > 0, else 0 (relu_backward's select; NaN gives 0), for vectors of type V (int twin IV). */
#define RELU_KEEP(V, IV, v, r) ((V)((IV)(v) & (IV)((r) > (V){0})))

int ams_cpu_dw_dgrad_ok(const ams_conv2d_desc *d) {
    return d->groups == d->c && d->oc == d->c && d->c > 0 && d->n > 0 && d->h > 0 && d->w > 0 &&
           d->oh > 0 && d->ow > 0 && d->kh <= MAX_KH && d->stride_w <= MAX_STRIDE &&
           (d->stride_w == 1 || d->dil_w == 1);
}

/* acc (vector type V) = din's value (or 0) + the taps of one input pixel: for each of the nr
 * vertical taps (g[j], w[j]: dout row at ox = oxb, weight row at kx = kxb), nc column taps
 * t stepping dout by -gstep and the weights by +wstep floats; two accumulators halve the
 * chain of dependent multiply-adds. */
#define DW_PIXEL(V, IV, k)                                                                         \
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
        a0 += a1;                                                                              \
        if (mp) a0 = RELU_KEEP(V, IV, a0, *(const V *)(mp + (k)));                             \
        *(V *)(dp + (k)) = a0;                                                                 \
    } while (0)

/* The interior of a stride-1, undilated K x K row (every tap inside): columns [x0, x1),
 * channels [k0, k1) in blocks of V's lanes (L), the K x K weights of a block held in
 * registers and one accumulator per kernel row. g[j]: dout row of kernel row j (ky = j). */
#define DW_INTERIOR(K, V, IV, L)                                                               \
    static inline __attribute__((always_inline)) void dw_interior##K##_##L(                    \
        float *drow, const float *mrow, const float *const *g, const float *weight, int c,     \
        int k0, int k1, int pad_l, int x0, int x1, int set) {                                  \
        const size_t cs = (size_t)c;                                                           \
        for (int k = k0; k + (L) <= k1; k += (L)) {                                            \
            V wv[K][K];                                                                        \
            for (int j = 0; j < K; j++)                                                        \
                for (int t = 0; t < K; t++)                                                    \
                    wv[j][t] = *(const V *)(weight + (size_t)(j * K + t) * cs + (size_t)k);    \
            for (int ix = x0; ix < x1; ix++) {                                                 \
                size_t o = (size_t)(ix + pad_l) * cs + (size_t)k;                              \
                V acc[K];                                                                      \
                for (int j = 0; j < K; j++) {                                                  \
                    const float *gp = g[j] + o;                                                \
                    acc[j] = *(const V *)gp * wv[j][0];                                        \
                    for (int t = 1; t < K; t++) acc[j] += *(const V *)(gp - t * cs) * wv[j][t]; \
                }                                                                              \
                for (int j = 1; j < K; j++) acc[0] += acc[j];                                  \
                float *dp = drow + (size_t)ix * cs + (size_t)k;                                \
                V v = set ? acc[0] : *(const V *)dp + acc[0];                                  \
                if (mrow) v = RELU_KEEP(V, IV, v, *(const V *)(mrow + (dp - drow)));           \
                *(V *)dp = v;                                                                  \
            }                                                                                  \
        }                                                                                      \
    }
DW_INTERIOR(3, v16, vi16, 16)
DW_INTERIOR(5, v16, vi16, 16)
DW_INTERIOR(3, v8, vi8, 8)
DW_INTERIOR(5, v8, vi8, 8)

/* The interior for channels [0, cv): 16-lane blocks, then an 8-lane one. */
static inline __attribute__((always_inline)) void dw_interior(int K, float *drow,
                                                              const float *mrow,
                                                              const float *const *g,
                                                              const float *weight, int c, int cv,
                                                              int pad_l, int x0, int x1, int set) {
    int c16 = c & ~15;
    if (K == 3) {
        dw_interior3_16(drow, mrow, g, weight, c, 0, c16, pad_l, x0, x1, set);
        if (cv > c16) dw_interior3_8(drow, mrow, g, weight, c, c16, cv, pad_l, x0, x1, set);
    } else {
        dw_interior5_16(drow, mrow, g, weight, c, 0, c16, pad_l, x0, x1, set);
        if (cv > c16) dw_interior5_8(drow, mrow, g, weight, c, c16, cv, pad_l, x0, x1, set);
    }
}


/* The interior of a stride-2, undilated 3x3 row whose nr (1 or 2) vertical taps are g[j]
 * (dout rows) and w[j] (their weight rows): input columns [x0, x1) whose column taps are all
 * inside: u = ix + pad_l even takes kx 0 and 2 (dout columns u/2 and u/2 - 1), odd takes
 * kx 1 (column u/2). Channels [k0, k1) in blocks of V's lanes (L), weights in registers. */
#define DW_INTERIOR_S2(V, IV, L)                                                               \
    static inline __attribute__((always_inline)) void dw_interior_s2_##L(                      \
        float *drow, const float *mrow, const float *const *g, const float *const *w, int nr,  \
        int c, int k0, int k1, int pad_l, int x0, int x1, int set) {                           \
        const size_t cs = (size_t)c;                                                           \
        for (int k = k0; k + (L) <= k1; k += (L)) {                                            \
            V w0[2], w1[2], w2[2];                                                             \
            for (int j = 0; j < 2; j++) {                                                      \
                const float *wr = w[j < nr ? j : 0] + k;                                       \
                w0[j] = *(const V *)wr, w1[j] = *(const V *)(wr + cs);                         \
                w2[j] = *(const V *)(wr + 2 * cs);                                             \
            }                                                                                  \
            for (int ix = x0; ix < x1; ix++) {                                                 \
                int u = ix + pad_l;                                                            \
                size_t o = (size_t)(u >> 1) * cs + (size_t)k;                                  \
                V acc;                                                                         \
                if (u & 1) {                                                                   \
                    acc = *(const V *)(g[0] + o) * w1[0];                                      \
                    if (nr > 1) acc += *(const V *)(g[1] + o) * w1[1];                         \
                } else {                                                                       \
                    acc = *(const V *)(g[0] + o) * w0[0] + *(const V *)(g[0] + o - cs) * w2[0]; \
                    if (nr > 1)                                                                \
                        acc += *(const V *)(g[1] + o) * w0[1] +                                \
                               *(const V *)(g[1] + o - cs) * w2[1];                            \
                }                                                                              \
                float *dp = drow + (size_t)ix * cs + (size_t)k;                                \
                if (!set) acc += *(const V *)dp;                                               \
                if (mrow) acc = RELU_KEEP(V, IV, acc, *(const V *)(mrow + (dp - drow)));       \
                *(V *)dp = acc;                                                                \
            }                                                                                  \
        }                                                                                      \
    }
DW_INTERIOR_S2(v16, vi16, 16)
DW_INTERIOR_S2(v8, vi8, 8)

/* din rows [r0, r1) (a row = (image, iy)): each input pixel gathers its taps in registers
 * and writes its din once (times relu_of's select when not NULL: din's layout). Column taps
 * of ix (u = ix + pad_l): with stride s > 1 (dilation 1) u = q * s + ph, kx = ph + t * s,
 * ox = q - t; with stride 1, kx = t, ox = u - t * dil. */
CPU_MULTIVERSION static void dw_dgrad_rows(float *din, const float *relu_of, const float *dout,
                                           const float *weight, const ams_conv2d_desc *d,
                                           int64_t r0, int64_t r1, int set) {
    const int c = d->c, sw = d->stride_w, dil = d->dil_w, kw = d->kw, ow = d->ow;
    const size_t cs = (size_t)c;
    const int64_t wstep = sw > 1 ? (int64_t)sw * c : c, gstep = sw > 1 ? c : (int64_t)dil * c;
    int nk[MAX_STRIDE]; /* kx with kx % s == ph */
    for (int ph = 0; ph < sw; ph++) nk[ph] = ph < kw ? (kw - 1 - ph) / sw + 1 : 0;
    const float *grow[MAX_KH], *wrow[MAX_KH], *gb[MAX_KH], *wb[MAX_KH]; /* vertical taps */
    const int cv = c & ~7, c16 = c & ~15; /* channels in 16- and 8-lane vectors */
    const int fast = d->stride_h == 1 && d->dil_h == 1 && sw == 1 && dil == 1 && d->kh == kw &&
                     (kw == 3 || kw == 5) && cv > 0;
    const int fast2 = d->stride_h == 2 && d->dil_h == 1 && sw == 2 && dil == 1 && d->kh == 3 &&
                      kw == 3 && cv > 0;
    for (int64_t r = r0; r < r1; r++) {
        int b = (int)(r / d->h), iy = (int)(r % d->h), nr = 0;
        for (int ky = 0; ky < d->kh; ky++) {
            int u = iy + d->pad_t - ky * d->dil_h;
            if (u < 0 || u % d->stride_h || u / d->stride_h >= d->oh) continue;
            grow[nr] = dout + ((size_t)b * (size_t)d->oh + (size_t)(u / d->stride_h)) * (size_t)ow * cs;
            wrow[nr++] = weight + (size_t)ky * (size_t)kw * cs;
        }
        float *drow = din + (size_t)r * (size_t)d->w * cs;
        const float *mrow = relu_of ? relu_of + (drow - din) : NULL;
        /* interior columns of a full 3x3 / 5x5 stride-1 row: the register kernel above */
        int fx0 = 0, fx1 = 0;
        if (fast && nr == kw) {
            fx0 = kw - 1 - d->pad_l > 0 ? kw - 1 - d->pad_l : 0;
            fx1 = ow - d->pad_l < d->w ? ow - d->pad_l : d->w;
            if (fx1 > fx0) dw_interior(kw, drow, mrow, grow, weight, c, cv, d->pad_l, fx0, fx1, set);
        } else if (fast2 && nr > 0 && nr <= 2) { /* stride 2: u = ix + pad_l in [2, 2 * ow) */
            fx0 = 2 - d->pad_l > 0 ? 2 - d->pad_l : 0;
            fx1 = 2 * ow - d->pad_l < d->w ? 2 * ow - d->pad_l : d->w;
            if (fx1 > fx0) {
                dw_interior_s2_16(drow, mrow, grow, wrow, nr, c, 0, c16, d->pad_l, fx0, fx1, set);
                dw_interior_s2_8(drow, mrow, grow, wrow, nr, c, c16, cv, d->pad_l, fx0, fx1, set);
            }
        }
        for (int ix = 0; ix < d->w; ix++) {
            if (ix == fx0 && fx1 > fx0 && cv == c) { /* the interior did these */
                ix = fx1 - 1;
                continue;
            }
            int kxb, oxb, nc;
            if (sw > 1) {
                int q = (ix + d->pad_l) / sw, ph = (ix + d->pad_l) % sw;
                int tlo = q - ow + 1 > 0 ? q - ow + 1 : 0, thi = nk[ph] - 1 < q ? nk[ph] - 1 : q;
                kxb = ph + tlo * sw, oxb = q - tlo, nc = thi - tlo + 1;
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
            const float *mp = mrow ? mrow + (size_t)ix * cs : NULL;
            if (nc <= 0 || nr == 0) { /* no tap reaches this pixel */
                if (set) memset(dp, 0, cs * sizeof *dp);
                else if (mp)
                    for (int k = 0; k < c; k++) dp[k] = mp[k] > 0.0f ? dp[k] : 0.0f;
                continue;
            }
            for (int j = 0; j < nr; j++) {
                gb[j] = grow[j] + (size_t)oxb * cs;
                wb[j] = wrow[j] + (size_t)kxb * cs;
            }
            int k = ix >= fx0 && ix < fx1 ? cv : 0;
            for (; k + 16 <= c; k += 16) DW_PIXEL(v16, vi16, k);
            if (k + 8 <= c) {
                DW_PIXEL(v8, vi8, k);
                k += 8;
            }
            for (; k < c; k++) {
                float a = set ? 0.0f : dp[k];
                for (int j = 0; j < nr; j++)
                    for (int t = 0; t < nc; t++) a += gb[j][k - t * gstep] * wb[j][k + t * wstep];
                dp[k] = mp && !(mp[k] > 0.0f) ? 0.0f : a;
            }
        }
    }
}

/* Channel vectors whose sums a depthwise tap keeps at once (registers). */
#define DW_VECS 8

/* One tap (ky, kx) of one output row: a (c) += x (ox * s + off) * dy (ox) summed over the
 * columns [ox0, ox1), channels [k0, c): up to DW_VECS channel vectors side by side (one
 * vector's chain of dependent multiply-adds ran at a quarter of the peak), then the rest. */
static inline __attribute__((always_inline)) void dw_tap(float *a, const float *xrow,
                                                         const float *dyrow, int off, int ox0,
                                                         int ox1, int k0, int c, int stride) {
    const size_t cs = (size_t)c, xs = (size_t)stride * cs;
    int k = k0;
    for (; k + 16 <= c; k += DW_VECS * 16) {
        int m = (c - k) / 16 < DW_VECS ? (c - k) / 16 : DW_VECS;
        v16 s[DW_VECS];
        for (int j = 0; j < DW_VECS; j++) s[j] = (v16){0};
        const float *xp = xrow + (ptrdiff_t)(ox0 * stride + off) * (ptrdiff_t)cs + k;
        const float *gp = dyrow + (size_t)ox0 * cs + (size_t)k;
        if (m == DW_VECS)
            for (int ox = ox0; ox < ox1; ox++, xp += xs, gp += cs)
                for (int j = 0; j < DW_VECS; j++)
                    s[j] += *(const v16 *)(xp + 16 * j) * *(const v16 *)(gp + 16 * j);
        else
            for (int ox = ox0; ox < ox1; ox++, xp += xs, gp += cs)
                for (int j = 0; j < m; j++)
                    s[j] += *(const v16 *)(xp + 16 * j) * *(const v16 *)(gp + 16 * j);
        for (int j = 0; j < m; j++) *(v16 *)(a + k + 16 * j) += s[j];
        k += (m - DW_VECS) * 16; /* a short block ends the vectors */
    }
    for (; k < c; k++) {
        float s = 0;
        const float *xp = xrow + (ptrdiff_t)(ox0 * stride + off) * (ptrdiff_t)cs + k;
        const float *gp = dyrow + (size_t)ox0 * cs + (size_t)k;
        for (int ox = ox0; ox < ox1; ox++, xp += xs, gp += cs) s += *xp * *gp;
        a[k] += s;
    }
}

/* The interior of a 3x3 undilated row (all three input rows inside, columns [ox0, ox1) whose
 * taps are all inside), channels [k0, k1) in blocks of V's lanes (L): the nine taps of a
 * block summed side by side, one load of dy per pixel (the taps one at a time chained their
 * sums: few channels, one vector). */
#define DW_INTERIOR3_WGRAD(V, L)                                                               \
    static inline __attribute__((always_inline)) void dw_interior3_wgrad_##L(                  \
        float *acc, const float *const *xrow, const float *dyrow, int off, int ox0, int ox1,   \
        int k0, int k1, int c, int stride) {                                                   \
        const size_t cs = (size_t)c, xs = (size_t)stride * cs;                                 \
        for (int k = k0; k + (L) <= k1; k += (L)) {                                            \
            V s[3][3];                                                                         \
            for (int j = 0; j < 3; j++) s[j][0] = s[j][1] = s[j][2] = (V){0};                  \
            const float *gp = dyrow + (size_t)ox0 * cs + (size_t)k;                            \
            size_t xo = (size_t)(ox0 * stride + off) * cs + (size_t)k;                         \
            for (int ox = ox0; ox < ox1; ox++, gp += cs, xo += xs) {                           \
                V g = *(const V *)gp;                                                          \
                for (int j = 0; j < 3; j++)                                                    \
                    for (int t = 0; t < 3; t++)                                                \
                        s[j][t] += *(const V *)(xrow[j] + xo + t * cs) * g;                    \
            }                                                                                  \
            for (int j = 0; j < 3; j++)                                                        \
                for (int t = 0; t < 3; t++)                                                    \
                    *(V *)(acc + (size_t)(j * 3 + t) * cs + k) += s[j][t];                     \
        }                                                                                      \
    }
DW_INTERIOR3_WGRAD(v16, 16)
DW_INTERIOR3_WGRAD(v8, 8)

/* Output column ox of a 3x3 undilated row with all three input rows inside, channels
 * [k0, k1) in blocks of V's lanes (L): its taps that land inside the row (the columns the
 * interior leaves). */
#define DW_EDGE3_WGRAD(V, L)                                                                   \
    static inline __attribute__((always_inline)) void dw_edge3_wgrad_##L(                      \
        float *acc, const float *const *xrow, const float *dyrow, int ox, int k0, int k1,      \
        int c, int stride, int pad_l, int w) {                                                 \
        const size_t cs = (size_t)c;                                                           \
        for (int t = 0; t < 3; t++) {                                                          \
            int ix = ox * stride - pad_l + t;                                                  \
            if (ix < 0 || ix >= w) continue;                                                   \
            for (int k = k0; k + (L) <= k1; k += (L)) {                                        \
                V g = *(const V *)(dyrow + (size_t)ox * cs + (size_t)k);                       \
                for (int j = 0; j < 3; j++)                                                    \
                    *(V *)(acc + (size_t)(j * 3 + t) * cs + k) +=                              \
                        *(const V *)(xrow[j] + (size_t)ix * cs + (size_t)k) * g;               \
            }                                                                                  \
        }                                                                                      \
    }
DW_EDGE3_WGRAD(v16, 16)
DW_EDGE3_WGRAD(v8, 8)

/* The weight gradient: acc (kh, kw, c) += the taps of output rows [r0, r1) (a row = (image,
 * oy)); 3x3 undilated rows inside the image by dw_interior3_wgrad, the rest tap by tap. */
CPU_MULTIVERSION static void dw_wgrad_rows(float *acc, const float *x, const float *dy, int64_t r0,
                                           int64_t r1, const ams_conv2d_desc *d) {
    const int c = d->c, sw = d->stride_w, c16 = c & ~15, cv = c & ~7;
    const size_t cs = (size_t)c;
    const int three = d->kh == 3 && d->kw == 3 && d->dil_h == 1 && d->dil_w == 1 && cv > 0;
    /* columns whose three taps are all inside: ox * sw - pad_l >= 0, ox * sw - pad_l + 2 < w */
    int f0 = (d->pad_l + sw - 1) / sw, f1 = d->w - 3 + d->pad_l < 0 ? 0 : (d->w - 3 + d->pad_l) / sw + 1;
    if (f1 > d->ow) f1 = d->ow;
    for (int64_t r = r0; r < r1; r++) {
        int b = (int)(r / d->oh), oy = (int)(r % d->oh);
        const float *dyrow = dy + (size_t)r * (size_t)d->ow * cs;
        const float *xrows[MAX_KH];
        int inside = 1;
        for (int ky = 0; ky < d->kh; ky++) {
            int iy = oy * d->stride_h - d->pad_t + ky * d->dil_h;
            xrows[ky] = iy < 0 || iy >= d->h ? NULL
                        : x + ((size_t)b * (size_t)d->h + (size_t)iy) * (size_t)d->w * cs;
            inside &= xrows[ky] != NULL;
        }
        if (three && inside && f1 > f0) { /* channels [0, cv) here, the rest tap by tap */
            dw_interior3_wgrad_16(acc, xrows, dyrow, -d->pad_l, f0, f1, 0, c16, c, sw);
            dw_interior3_wgrad_8(acc, xrows, dyrow, -d->pad_l, f0, f1, c16, cv, c, sw);
            for (int e = 0; e < 2; e++)
                for (int ox = e ? f1 : 0; ox < (e ? d->ow : f0); ox++) {
                    dw_edge3_wgrad_16(acc, xrows, dyrow, ox, 0, c16, c, sw, d->pad_l, d->w);
                    dw_edge3_wgrad_8(acc, xrows, dyrow, ox, c16, cv, c, sw, d->pad_l, d->w);
                }
            if (cv == c) continue;
            for (int ky = 0; ky < 3; ky++)
                for (int kx = 0; kx < 3; kx++) {
                    int off = kx - d->pad_l;
                    int ox0 = off >= 0 ? 0 : (-off + sw - 1) / sw;
                    int ox1 = d->w - 1 - off < 0 ? 0 : (d->w - 1 - off) / sw + 1;
                    if (ox1 > d->ow) ox1 = d->ow;
                    if (ox0 < ox1)
                        dw_tap(acc + (size_t)(ky * 3 + kx) * cs, xrows[ky], dyrow, off, ox0, ox1,
                               cv, c, sw);
                }
            continue;
        }
        for (int ky = 0; ky < d->kh; ky++) {
            if (!xrows[ky]) continue;
            for (int kx = 0; kx < d->kw; kx++) {
                /* output columns whose tap kx lands inside the row */
                int off = kx * d->dil_w - d->pad_l;
                int ox0 = off >= 0 ? 0 : (-off + sw - 1) / sw;
                int ox1 = d->w - 1 - off < 0 ? 0 : (d->w - 1 - off) / sw + 1;
                if (ox1 > d->ow) ox1 = d->ow;
                if (ox0 >= ox1) continue;
                dw_tap(acc + ((size_t)ky * (size_t)d->kw + (size_t)kx) * cs, xrows[ky], dyrow,
                       off, ox0, ox1, 0, c, sw);
            }
        }
    }
}

/* The bias gradient: bacc (c) += output rows [r0, r1) summed over their columns, 16-channel
 * vectors in registers (two sums side by side), the rest one channel at a time. */
CPU_MULTIVERSION static void bias_rows(float *bacc, const float *dy, int64_t r0, int64_t r1,
                                       int ow, int c) {
    const size_t cs = (size_t)c;
    const int64_t np = (r1 - r0) * ow;
    const float *g = dy + (size_t)r0 * (size_t)ow * cs;
    int k = 0;
    for (; k + 16 <= c; k += 16) {
        v16 s0 = {0}, s1 = {0};
        int64_t p = 0;
        for (; p + 2 <= np; p += 2) {
            s0 += *(const v16 *)(g + (size_t)p * cs + k);
            s1 += *(const v16 *)(g + (size_t)(p + 1) * cs + k);
        }
        if (p < np) s0 += *(const v16 *)(g + (size_t)p * cs + k);
        *(v16 *)(bacc + k) += s0 + s1;
    }
    for (; k < c; k++) {
        float s = 0;
        for (int64_t p = 0; p < np; p++) s += g[(size_t)p * cs + k];
        bacc[k] += s;
    }
}

/* Output rows [u0, u1) (a unit = (image, oy)) of the whole backward: the weight and bias
 * gradients of row oy, then the data gradient of the input rows [oy * s, (oy + 1) * s)
 * (the last row of an image takes the rest): the dout rows they read are the ones just
 * summed, still in cache, so dout, x and din each cross memory once. */
static void dw_units(float *din, const float *relu_of, float *acc, float *bacc,
                     const float *dout, const float *x, const float *weight,
                     const ams_conv2d_desc *d, int64_t u0, int64_t u1, int set) {
    const int s = d->stride_h;
    for (int64_t u = u0; u < u1; u++) {
        if (acc) dw_wgrad_rows(acc, x, dout, u, u + 1, d);
        if (bacc) bias_rows(bacc, dout, u, u + 1, d->ow, d->c);
        if (!din) continue;
        int64_t b = u / d->oh;
        int oy = (int)(u % d->oh);
        int lo = oy * s < d->h ? oy * s : d->h;
        int hi = oy == d->oh - 1 ? d->h : ((oy + 1) * s < d->h ? (oy + 1) * s : d->h);
        if (hi > lo)
            dw_dgrad_rows(din, relu_of, dout, weight, d, b * d->h + lo, b * d->h + hi, set);
    }
}

int ams_cpu_dw_backward(const ams_backend *be, int set, float *din, const float *relu_of,
                        float *dweight, float *dbias, const float *dout, const float *x,
                        const float *weight, const ams_conv2d_desc *d) {
    ams_cpu_state *st = (ams_cpu_state *)be->state;
    if (d->groups != d->c || d->oc != d->c || d->c <= 0 || d->n <= 0 || d->oh <= 0 ||
        d->ow <= 0 || d->h <= 0 || d->w <= 0 || d->kh > MAX_KH ||
        (din && !ams_cpu_dw_dgrad_ok(d)))
        return 0;
    const int64_t units = (int64_t)d->n * d->oh;
    const size_t nw = dweight ? (size_t)d->kh * (size_t)d->kw * (size_t)d->c : 0;
    const size_t nb = dbias ? (size_t)d->c : 0;
    /* the same threads and rows whichever gradients are asked for: a frozen filter or input
     * leaves the others' bits as they are */
    int64_t work = (int64_t)d->n * d->oh * d->ow * d->c * d->kh * d->kw / 4;
    int nt = cpu_threads_for(be, work);
    if (nt > units) nt = (int)units;
    size_t per = (nw + nb + 15) & ~(size_t)15;
    if (nt > 1 && per && !ams_cpu_part_reserve(st, (size_t)(nt - 1) * per)) nt = 1;
    float *part = st->part;
    CPU_PARALLEL_FOR
    for (int t = 0; t < nt; t++) {
        int64_t lo, hi;
        cpu_split(units, t, nt, &lo, &hi);
        float *acc, *bacc;
        cpu_partials_take(part, per, t, dweight, nw, dbias, nb, &acc, &bacc);
        dw_units(din, relu_of, acc, bacc, dout, x, weight, d, lo, hi, set);
    }
    cpu_partials_fold(part, per, nt, dweight, nw, dbias, nb);
    return 1;
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
        dw_dgrad_rows(din, NULL, dout, weight, d, lo, hi, set);
    }
}
