/* conv_wgrad.c - weight gradients of the two convolution kinds small mobile networks are
 * made of, where oneDNN 2.6 is slow on NHWC data (measured on the selfie student, batch 8:
 * its jit_1x1 backward-weights ran at 1.5-5 GFLOP/s, its 5x5 depthwise backward-weights is
 * the generic jit kernel): pointwise (1x1, stride 1, no padding, one group) here, and
 * depthwise (groups == channels, multiplier 1; with oneDNN only kernels larger than 3x3)
 * by conv_dw_bwd.c.
 * The pointwise sums reduce over pixels: each thread sums its slice of pixels into its own
 * partial gradient (float, in blocks), the partials are added into dweight at the end.
 */
#include <string.h>

#include "nn/cpu/cpu_loops.h"

/* Pointwise: pixels summed in float before they are added to the thread's partial. */
#define PW_PIX 64

/* 16 floats as one value (GCC vector extension: one zmm with AVX-512, split into smaller
 * registers by the other clones); aligned(4) allows unaligned loads and stores. */
typedef float v16 __attribute__((vector_size(64), aligned(4)));

/* acc (8, 16) = sum over np pixels p of x[p*xs + 0..8) outer g[p*gs + 0..16): 8 accumulator
 * vectors in registers, one FMA per broadcast x. */
static inline __attribute__((always_inline)) void pw_tile(float acc[8][16], const float *x,
                                                          int64_t xs, const float *g, int64_t gs,
                                                          int np) {
    v16 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, a4 = {0}, a5 = {0}, a6 = {0}, a7 = {0};
    for (int p = 0; p < np; p++, x += xs, g += gs) {
        v16 gv = *(const v16 *)g;
        a0 += x[0] * gv, a1 += x[1] * gv, a2 += x[2] * gv, a3 += x[3] * gv;
        a4 += x[4] * gv, a5 += x[5] * gv, a6 += x[6] * gv, a7 += x[7] * gv;
    }
    *(v16 *)acc[0] = a0, *(v16 *)acc[1] = a1, *(v16 *)acc[2] = a2, *(v16 *)acc[3] = a3;
    *(v16 *)acc[4] = a4, *(v16 *)acc[5] = a5, *(v16 *)acc[6] = a6, *(v16 *)acc[7] = a7;
}

/* part (c, oc) = sum over pixels [p0, p1) of x[p] (c) outer dy[p] (oc), in blocks of
 * PW_PIX pixels summed in float, as 8 x 16 tiles read in place; only a tile's ragged
 * edge (c % 8 rows, oc % 16 columns) is copied, zero-padded, into xb / gb. */
CPU_MULTIVERSION static void pw_slice(float *part, float *bpart, const float *x, const float *dy,
                                      int64_t p0, int64_t p1, int c, int oc) {
    float xb[PW_PIX][8], gb[PW_PIX][16], acc[8][16];
    memset(part, 0, (size_t)c * (size_t)oc * sizeof *part);
    if (bpart) memset(bpart, 0, (size_t)oc * sizeof *bpart);
    for (int64_t b0 = p0; b0 < p1; b0 += PW_PIX) {
        int np = p1 - b0 < PW_PIX ? (int)(p1 - b0) : PW_PIX;
        for (int i0 = 0; i0 < c; i0 += 8) {
            int r = c - i0 < 8 ? c - i0 : 8;
            const float *xt = x + b0 * c + i0;
            int64_t xs = c;
            if (r < 8) {
                for (int p = 0; p < np; p++)
                    for (int i = 0; i < 8; i++) xb[p][i] = i < r ? xt[(int64_t)p * c + i] : 0.0f;
                xt = xb[0], xs = 8;
            }
            for (int k0 = 0; k0 < oc; k0 += 16) {
                int w = oc - k0 < 16 ? oc - k0 : 16;
                const float *gt = dy + b0 * oc + k0;
                int64_t gs = oc;
                if (w < 16) {
                    for (int p = 0; p < np; p++)
                        for (int j = 0; j < 16; j++) gb[p][j] = j < w ? gt[(int64_t)p * oc + j] : 0.0f;
                    gt = gb[0], gs = 16;
                }
                if (bpart && i0 == 0) { /* the bias gradient from the same dy tiles */
                    v16 bs = {0};
                    for (int p = 0; p < np; p++) bs += *(const v16 *)(gt + (int64_t)p * gs);
                    float *bt = acc[0];
                    *(v16 *)bt = bs;
                    for (int j = 0; j < w; j++) bpart[k0 + j] += bt[j];
                }
                pw_tile(acc, xt, xs, gt, gs, np);
                for (int i = 0; i < r; i++) {
                    float *row = part + (size_t)(i0 + i) * (size_t)oc + k0;
                    for (int j = 0; j < w; j++) row[j] += acc[i][j];
                }
            }
        }
    }
}

CPU_MULTIVERSION static void add_to(float *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] += src[i];
}

/* The pointwise weight gradient by conv_pointwise.c's register tiles (2-3x pw_slice's
 * 8 x 16 tiles on the selfie's 24-128 channels: more sums per broadcast, no copies of
 * ragged tiles), the bias gradient summed from the same blocks of dy while they are in
 * cache: one thread accumulates straight into dweight and dbias, more each into a zeroed
 * partial added at the end. */
static int pw_avx512(const ams_backend *be, float *dweight, float *dbias, const float *x,
                     const float *dy, int64_t pixels, int c, int oc) {
    ams_cpu_state *st = (ams_cpu_state *)be->state;
    /* the same threads and pixel slices with or without dweight: the bias gradient's sums
     * are the same bits either way (a frozen filter changes nothing else) */
    size_t nw = dweight ? (size_t)c * (size_t)oc : 0, nb = dbias ? (size_t)oc : 0;
    size_t per = (nw + nb + 15) & ~(size_t)15;
    int nt = cpu_threads_for(be, pixels * (int64_t)c * oc / 64);
    if (nt > pixels) nt = pixels > 0 ? (int)pixels : 1;
    if (nt > 1 && !ams_cpu_part_reserve(st, (size_t)(nt - 1) * per)) nt = 1;
    float *part = st->part;
    CPU_PARALLEL_FOR
    for (int t = 0; t < nt; t++) {
        int64_t lo, hi;
        cpu_split(pixels, t, nt, &lo, &hi);
        float *acc, *bacc;
        cpu_partials_take(part, per, t, dweight, nw, dbias, nb, &acc, &bacc);
        ams_cpu_pw_wgrad(acc, bacc, x, dy, lo, hi, c, oc);
    }
    cpu_partials_fold(part, per, nt, dweight, nw, dbias, nb);
    return 1;
}

int ams_cpu_conv_wgrad(const ams_backend *be, float *dweight, float *dbias, const float *x,
                       const float *dy, const ams_conv2d_desc *d) {
    ams_cpu_state *st = (ams_cpu_state *)be->state;
    int pointwise = ams_cpu_conv_pointwise(d);
    int depthwise = !pointwise && d->groups == d->c && d->oc == d->c;
#ifdef AMS_HAVE_DNNL
    /* 3x3 depthwise convs come here only strided by 3 or more or dilated (conv_dnnl.c's
     * backward gives the others to conv_dw_bwd.c whole): oneDNN's jit_dw serves those; its
     * larger depthwise kernels fall to a generic jit kernel */
    depthwise = depthwise && d->kh * d->kw > 9;
#endif
    if (!pointwise && !depthwise) return 0;
    int64_t pixels = (int64_t)d->n * d->oh * d->ow;
    if (pointwise && ams_cpu_pw_available()) /* our AVX-512 tiles: conv_pointwise.c */
        return pw_avx512(be, dweight, dbias, x, dy, pixels, d->c, d->oc);
    if (depthwise) /* conv_dw_bwd.c, with the bias gradient in the same pass */
        return ams_cpu_dw_backward(be, 0, NULL, NULL, dweight, dbias, dy, x, NULL, d);
    if (!dweight) return 0;
    if (dbias) { /* as the callers' bias-only path: the same bits with a frozen filter */
        ams_cpu_bias_grad(be, dbias, dy, pixels, d->oc);
        dbias = NULL;
    }
    size_t nw = (size_t)d->c * (size_t)d->oc;
    int nt = cpu_threads_for(be, pixels * (int64_t)nw / 64);
    if (nt > pixels) nt = pixels > 0 ? (int)pixels : 1;
    /* per thread: its partial (and the bias gradient's), 64-byte aligned */
    size_t per = (nw + (dbias ? (size_t)d->oc : 0) + 15) & ~(size_t)15;
    if (!ams_cpu_part_reserve(st, (size_t)nt * per)) return 0;
    float *part = st->part;
    CPU_PARALLEL_FOR
    for (int t = 0; t < nt; t++) {
        int64_t lo, hi;
        cpu_split(pixels, t, nt, &lo, &hi);
        float *p = part + (size_t)t * per;
        pw_slice(p, dbias ? p + nw : NULL, x, dy, lo, hi, d->c, d->oc);
    }
    for (int t = 0; t < nt; t++) {
        add_to(dweight, part + (size_t)t * per, nw);
        if (dbias) add_to(dbias, part + (size_t)t * per + nw, (size_t)d->oc);
    }
    return 1;
}
