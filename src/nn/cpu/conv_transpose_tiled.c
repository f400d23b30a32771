/* conv_transpose_tiled.c - transposed convolutions whose windows tile the output exactly
 * (stride == kernel, no padding, no dilation, one group: the 2x2 stride-2 upsampling at the
 * end of the selfie student). Every output pixel then comes from one input pixel and one
 * tap, so forward, data gradient and weight gradient are short dot products per pixel;
 * oneDNN ran the backward as generic backward-data / backward-weights convolutions at
 * ~5 GFLOP/s, and the forward (oneDNN's backward-data kernel) at ~6 GFLOP/s on the selfie's
 * 16 -> 1 channels (2.2 ms of a batch-8 step; this one 0.9 ms). With oc a multiple of 16,
 * the forward takes 16 input pixels of a row at a time and sums their products with a tap's
 * weights over oc in 16 lanes, then all 16 pixels' lanes in one tree of shuffles; the
 * backward keeps a pixel's data gradient and the slice's weight gradient in 16-lane
 * registers (no per-element horizontal sums, no read-modify-write per tap). One output
 * channel with 2-wide taps (the selfie's) transposes 16 pixels x 16 channels instead, so
 * that each tap is 16 multiply-adds into one vector (with AVX-512: 0.49 -> 0.17 ms at
 * 5 x 96x128x16, one thread). Other shapes: a dot product per output element.
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

typedef float v16 __attribute__((vector_size(64)));
typedef int i16 __attribute__((vector_size(64)));

/* A shuffle of two vectors' lanes (indices 0-15: a, 16-31: b), in GCC's or clang's words. */
#if defined(__clang__)
#define SHUF(a, b, ...) __builtin_shufflevector(a, b, __VA_ARGS__)
#else
#define SHUF(a, b, ...) __builtin_shuffle(a, b, (i16){__VA_ARGS__})
#endif
#define LO1 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23
#define HI1 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31
#define LO2 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27
#define HI2 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31
#define LO3 0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29
#define HI3 2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23, 26, 27, 30, 31
#define LO4 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30
#define HI4 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31

/* (*s)[p] = sum of the 16 lanes of a[p], p < 16: a tree of 15 adds, each merging two vectors'
 * lanes by halves (pixel order kept), instead of 16 horizontal sums. */
static inline void sum_lanes16(v16 *s, const v16 *a) {
    v16 b[8], c[4], e[2];
    for (int i = 0; i < 8; i++)
        b[i] = SHUF(a[2 * i], a[2 * i + 1], LO1) + SHUF(a[2 * i], a[2 * i + 1], HI1);
    for (int i = 0; i < 4; i++)
        c[i] = SHUF(b[2 * i], b[2 * i + 1], LO2) + SHUF(b[2 * i], b[2 * i + 1], HI2);
    for (int i = 0; i < 2; i++)
        e[i] = SHUF(c[2 * i], c[2 * i + 1], LO3) + SHUF(c[2 * i], c[2 * i + 1], HI3);
    *s = SHUF(e[0], e[1], LO4) + SHUF(e[0], e[1], HI4);
}

/* Forward of input rows [r0, r1) (a row = (image, oy)): writes the kh output rows each
 * input row covers. When oc is a multiple of 16, 16 input pixels of a row at a time: per
 * tap, the 16 pixel x weight products summed over oc in 16 lanes, then one lane tree. */
CPU_MULTIVERSION static void tiled_fwd_rows(float *out, const float *in, const float *weight,
                                            const float *bias, const ams_conv2d_desc *d, int64_t r0,
                                            int64_t r1) {
    const int c = d->c, oc = d->oc;
    for (int64_t r = r0; r < r1; r++) {
        int b = (int)(r / d->oh), oy = (int)(r % d->oh);
        const float *irow = in + (size_t)r * (size_t)d->ow * (size_t)oc;
        int ox_done = 0;
        if (oc % 16 == 0) {
            for (; ox_done + 16 <= d->ow; ox_done += 16) {
                const float *xb = irow + (size_t)ox_done * (size_t)oc;
                for (int ky = 0; ky < d->kh; ky++) {
                    float *orow = out + ((size_t)b * (size_t)d->h + (size_t)(oy * d->kh + ky)) *
                                            (size_t)d->w * (size_t)c;
                    for (int kx = 0; kx < d->kw; kx++)
                        for (int ci = 0; ci < c; ci++) {
                            const float *wr = weight + (((size_t)ky * (size_t)d->kw + (size_t)kx) *
                                                            (size_t)c + (size_t)ci) * (size_t)oc;
                            v16 acc[16];
                            for (int p = 0; p < 16; p++) {
                                v16 s = {0};
                                for (int k = 0; k < oc; k += 16) {
                                    v16 x, w;
                                    memcpy(&x, xb + (size_t)p * (size_t)oc + (size_t)k, sizeof x);
                                    memcpy(&w, wr + k, sizeof w);
                                    s += x * w;
                                }
                                acc[p] = s;
                            }
                            v16 sum;
                            sum_lanes16(&sum, acc);
                            const float bv = bias ? bias[ci] : 0.0f;
                            float *o = orow + (size_t)(ox_done * d->kw + kx) * (size_t)c + (size_t)ci;
                            const size_t step = (size_t)d->kw * (size_t)c;
                            for (int p = 0; p < 16; p++) o[(size_t)p * step] = sum[p] + bv;
                        }
                }
            }
        }
        for (int ky = 0; ky < d->kh; ky++) {
            float *orow = out + ((size_t)b * (size_t)d->h + (size_t)(oy * d->kh + ky)) *
                                    (size_t)d->w * (size_t)c;
            for (int ox = ox_done; ox < d->ow; ox++) {
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

/* Weight floats (taps x c x oc) up to which the backward keeps a slice's weight gradient in
 * 16-lane accumulators on the stack; the data gradient's pixel in TILE_OC / 16 of them. */
#define TILE_OC 64
#define TILE_W 1024

/* Both gradients of rows [r0, r1) in one pass when oc % 16 == 0, oc <= TILE_OC and the
 * weights have at most TILE_W floats: per input pixel, its data gradient summed over the taps
 * in registers and added to din once; the weight gradient into acc (TILE_W floats, zeroed
 * here), where every tap's row gets one 16-lane FMA per pixel. Returns 0 (nothing done) for
 * other shapes. */
CPU_MULTIVERSION static int tiled_bwd_fast_rows(float *din, float *acc, const float *dout,
                                                const float *in, const float *weight,
                                                const ams_conv2d_desc *d, int64_t r0, int64_t r1) {
    const int c = d->c, oc = d->oc, nv = d->oc / 16;
    const size_t nw = (size_t)d->kh * (size_t)d->kw * (size_t)c * (size_t)oc;
    if (oc % 16 || oc > TILE_OC || nw > TILE_W) return 0;
    v16 wacc[TILE_W / 16];
    for (size_t i = 0; i < nw / 16; i++) wacc[i] = (v16){0};
    for (int64_t r = r0; r < r1; r++) {
        int b = (int)(r / d->oh), oy = (int)(r % d->oh);
        const float *irow = in + (size_t)r * (size_t)d->ow * (size_t)oc;
        float *drow = din ? din + (size_t)r * (size_t)d->ow * (size_t)oc : NULL;
        for (int ox = 0; ox < d->ow; ox++) {
            v16 x[TILE_OC / 16], dx[TILE_OC / 16];
            for (int v = 0; v < nv; v++) {
                memcpy(&x[v], irow + (size_t)ox * (size_t)oc + (size_t)v * 16, sizeof x[v]);
                dx[v] = (v16){0};
            }
            size_t t = 0; /* (ky, kx, ci) row of the weights */
            for (int ky = 0; ky < d->kh; ky++) {
                const float *g = dout + (((size_t)b * (size_t)d->h + (size_t)(oy * d->kh + ky)) *
                                             (size_t)d->w + (size_t)ox * (size_t)d->kw) * (size_t)c;
                for (int kx = 0; kx < d->kw; kx++)
                    for (int ci = 0; ci < c; ci++, t++) {
                        const float gv = g[(size_t)kx * (size_t)c + (size_t)ci];
                        const float *wr = weight + t * (size_t)oc;
                        for (int v = 0; v < nv; v++) {
                            v16 w;
                            memcpy(&w, wr + v * 16, sizeof w);
                            dx[v] += gv * w;
                            if (acc) wacc[t * (size_t)nv + (size_t)v] += gv * x[v];
                        }
                    }
            }
            if (drow)
                for (int v = 0; v < nv; v++) {
                    float *o = drow + (size_t)ox * (size_t)oc + (size_t)v * 16;
                    v16 cur;
                    memcpy(&cur, o, sizeof cur);
                    cur += dx[v];
                    memcpy(o, &cur, sizeof cur);
                }
        }
    }
    if (acc) memcpy(acc, wacc, nw * sizeof *acc);
    return 1;
}

/* tiled_bwd_fast_rows for the selfie's shape (2x2 taps, c 1, oc 16), with the four taps'
 * weights and weight-gradient rows in named registers: the general loop keeps its
 * accumulators in an indexed stack array, a load-FMA-store chain per tap and pixel
 * (1.4 ms of a batch-4 step, now ~0.2). Returns 0 for other shapes. */
CPU_MULTIVERSION static int tiled_bwd_2x2c1_rows(float *din, float *acc, const float *dout,
                                                 const float *in, const float *weight,
                                                 const ams_conv2d_desc *d, int64_t r0, int64_t r1,
                                                 int set) {
    if (d->kh != 2 || d->kw != 2 || d->c != 1 || d->oc != 16) return 0;
    v16 w0, w1, w2, w3, a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
    memcpy(&w0, weight, sizeof w0), memcpy(&w1, weight + 16, sizeof w1);
    memcpy(&w2, weight + 32, sizeof w2), memcpy(&w3, weight + 48, sizeof w3);
    for (int64_t r = r0; r < r1; r++) {
        int b = (int)(r / d->oh), oy = (int)(r % d->oh);
        const float *x = in + (size_t)r * (size_t)d->ow * 16;
        float *dx = din ? din + (size_t)r * (size_t)d->ow * 16 : NULL;
        const float *g0 = dout + ((size_t)b * (size_t)d->h + (size_t)(2 * oy)) * (size_t)d->w;
        const float *g1 = g0 + d->w;
        for (int ox = 0; ox < d->ow; ox++, x += 16) {
            const float t0 = g0[2 * ox], t1 = g0[2 * ox + 1], t2 = g1[2 * ox], t3 = g1[2 * ox + 1];
            v16 xv;
            memcpy(&xv, x, sizeof xv);
            a0 += t0 * xv, a1 += t1 * xv, a2 += t2 * xv, a3 += t3 * xv;
            if (dx) {
                v16 cur = {0}; /* set: din holds garbage, the sum starts from zero */
                if (!set) memcpy(&cur, dx + (size_t)ox * 16, sizeof cur);
                cur += t0 * w0 + t1 * w1 + t2 * w2 + t3 * w3;
                memcpy(dx + (size_t)ox * 16, &cur, sizeof cur);
            }
        }
    }
    if (acc) {
        memcpy(acc, &a0, sizeof a0), memcpy(acc + 16, &a1, sizeof a1);
        memcpy(acc + 32, &a2, sizeof a2), memcpy(acc + 48, &a3, sizeof a3);
    }
    return 1;
}

CPU_MULTIVERSION static void add_to(float *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] += src[i];
}

static int threads_for(const ams_backend *be, const ams_conv2d_desc *d) {
    int64_t rows = (int64_t)d->n * d->oh;
    int nt = cpu_threads_for(be, (int64_t)d->n * d->h * d->w * d->c * d->oc / 4);
    return nt > rows ? (int)rows : nt;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define AVX512 __attribute__((target("avx512f")))

/* r[0..15] (rows) transposed in place: r[j] lane p = old r[p] lane j. */
static inline __attribute__((always_inline)) AVX512 void transpose16(__m512 *r) {
    __m512 t[16];
    for (int i = 0; i < 8; i++) { /* pairs of rows, element by element */
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) { /* quads of rows, pairs of elements */
        r[4 * i] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
        r[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
        r[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
        r[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
    }
    for (int i = 0; i < 8; i++) { /* 128-bit lanes: rows 0-3 with 4-7, 8-11 with 12-15 */
        int a = (i / 4) * 8 + i % 4;
        t[a] = _mm512_shuffle_f32x4(r[a], r[a + 4], 0x88);
        t[a + 4] = _mm512_shuffle_f32x4(r[a], r[a + 4], 0xDD);
    }
    for (int i = 0; i < 8; i++) { /* and rows 0-7 with 8-15 */
        r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
        r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xDD);
    }
}

/* The forward for one output channel (c == 1) and 2-wide taps (kw == 2), oc % 16 == 0 (a
 * segmentation head's 2x upsampling, 16 -> 1 in the selfie): input rows [r0, r1), 16 pixels
 * of a row at a time, each 16 channels of them transposed so that lane p is pixel p: a tap's
 * 16 outputs are then 16 multiply-adds with broadcast weights (the lane trees of
 * tiled_fwd_rows cost 45 shuffles and adds per tap), and the two taps of a kernel row
 * interleave into 32 consecutive outputs. The rest of a row as tiled_fwd_rows. */
static AVX512 void tiled_fwd_c1_rows(float *out, const float *in, const float *weight,
                                     const float *bias, const ams_conv2d_desc *d, int64_t r0,
                                     int64_t r1) {
    const int oc = d->oc, kh = d->kh;
    const float bv = bias ? bias[0] : 0.0f;
    const __m512i lo_idx = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    const __m512i hi_idx =
        _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
    for (int64_t r = r0; r < r1; r++) {
        int b = (int)(r / d->oh), oy = (int)(r % d->oh);
        const float *irow = in + (size_t)r * (size_t)d->ow * (size_t)oc;
        int ox = 0;
        for (; ox + 16 <= d->ow; ox += 16) {
            const float *xb = irow + (size_t)ox * (size_t)oc;
            for (int ky = 0; ky < kh; ky++) {
                __m512 a0 = _mm512_set1_ps(bv), a1 = a0;
                const float *w0 = weight + (size_t)(ky * 2) * (size_t)oc, *w1 = w0 + oc;
                for (int j0 = 0; j0 < oc; j0 += 16) {
                    __m512 col[16];
                    for (int p = 0; p < 16; p++) col[p] = _mm512_loadu_ps(xb + (size_t)p * oc + j0);
                    transpose16(col);
                    for (int j = 0; j < 16; j++) {
                        a0 = _mm512_fmadd_ps(col[j], _mm512_set1_ps(w0[j0 + j]), a0);
                        a1 = _mm512_fmadd_ps(col[j], _mm512_set1_ps(w1[j0 + j]), a1);
                    }
                }
                float *o = out + ((size_t)b * (size_t)d->h + (size_t)(oy * kh + ky)) * (size_t)d->w +
                           (size_t)ox * 2;
                _mm512_storeu_ps(o, _mm512_permutex2var_ps(a0, lo_idx, a1));
                _mm512_storeu_ps(o + 16, _mm512_permutex2var_ps(a0, hi_idx, a1));
            }
        }
        for (int ky = 0; ky < kh && ox < d->ow; ky++) {
            float *orow = out + ((size_t)b * (size_t)d->h + (size_t)(oy * kh + ky)) * (size_t)d->w;
            for (int x = ox; x < d->ow; x++)
                for (int kx = 0; kx < 2; kx++)
                    orow[x * 2 + kx] = bv + dot16(irow + (size_t)x * (size_t)oc,
                                                  weight + (size_t)(ky * 2 + kx) * (size_t)oc, oc);
        }
    }
}

static int c1_fast(const ams_conv2d_desc *d) {
    return d->c == 1 && d->kw == 2 && d->oc % 16 == 0 && __builtin_cpu_supports("avx512f");
}
#else
static int c1_fast(const ams_conv2d_desc *d) { (void)d; return 0; }
static void tiled_fwd_c1_rows(float *out, const float *in, const float *weight,
                              const float *bias, const ams_conv2d_desc *d, int64_t r0,
                              int64_t r1) {
    tiled_fwd_rows(out, in, weight, bias, d, r0, r1);
}
#endif

void ams_cpu_conv_tiled_forward(const ams_backend *be, float *out, const float *in,
                                const float *weight, const float *bias, const ams_conv2d_desc *d) {
    int nt = threads_for(be, d), c1 = c1_fast(d);
    int64_t rows = (int64_t)d->n * d->oh;
    CPU_PARALLEL_FOR
    for (int t = 0; t < nt; t++) {
        int64_t lo, hi;
        cpu_split(rows, t, nt, &lo, &hi);
        if (c1) tiled_fwd_c1_rows(out, in, weight, bias, d, lo, hi);
        else tiled_fwd_rows(out, in, weight, bias, d, lo, hi);
    }
}

int ams_cpu_conv_tiled_backward(const ams_backend *be, int set, float *din, float *dweight,
                                float *dbias, const float *dout, const float *in,
                                const float *weight, const ams_conv2d_desc *d) {
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
        float *p = dweight ? part + (size_t)t * nw : NULL;
        if (tiled_bwd_2x2c1_rows(din, p, dout, in, weight, d, lo, hi, set)) continue;
        if (set && din) /* this slice's rows, zeroed where they are summed next */
            memset(din + (size_t)lo * (size_t)d->ow * (size_t)d->oc, 0,
                   (size_t)(hi - lo) * (size_t)d->ow * (size_t)d->oc * sizeof *din);
        if (tiled_bwd_fast_rows(din, p, dout, in, weight, d, lo, hi)) continue;
        if (din) tiled_bwd_data_rows(din, dout, weight, d, lo, hi);
        if (p) {
            memset(p, 0, nw * sizeof *p);
            tiled_wgrad_rows(p, in, dout, d, lo, hi);
        }
    }
    if (dweight)
        for (int t = 0; t < nt; t++) add_to(dweight, part + (size_t)t * nw, nw);
    return 1;
}
