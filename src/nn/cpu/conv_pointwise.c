/* conv_pointwise.c - pointwise convolutions (1x1, stride 1, unpadded, one group) as our own
 * GEMM over NHWC pixels: the forward with its epilogue (bias, activation, residual add)
 * and the data gradient (overwriting or accumulating).
 *
 * Why not oneDNN: mobile networks' pointwise convs have 16-128 channels, so each call is a
 * tall, thin GEMM. On the selfie's batch-8 training step oneDNN 2.6's brgconv_1x1 forward
 * and jit_1x1 backward-data ran the 16->16 convs at 96x128 at 50-170 GFLOP/s (a fifth of
 * the machine's peak), and its backward-data cannot accumulate (a scratch and an add pass).
 * Here the weights are packed once per call into panels of 16-column vectors (weight-sized:
 * small), a tile of R pixels x up to 64 output channels is summed in registers (one
 * broadcast input times one weight vector per FMA), and the epilogue is applied while the
 * tile is stored, so the output is written once. AVX-512 only (chosen at run time); other
 * CPUs keep oneDNN's kernels.
 */
#include <stdlib.h>

#include "nn/cpu/cpu_loops.h"

/* Output channels per panel (4 vectors of 16) and pixels per chunk (a multiple of every
 * tile height below, so thread slices and chunks never split a tile; a chunk's inputs,
 * CHUNK x c floats, stay in cache while every panel is applied to them). */
#define PANEL 64
#define CHUNK 96

/* What happens to a tile on its way out. */
typedef struct epilogue {
    const float *bias;    /* packed, padded with zeros to the panels' width; NULL: none */
    int act;              /* AMS_CONV_ACT_* */
    float act_scale;
    const float *addend;  /* same layout as the output; NULL: none */
    int accumulate;       /* out += result (data gradients) */
    const float *relu_of; /* same layout: result kept only where it is > 0 (a folded relu's
                           * backward, after accumulating); NULL: none */
} epilogue;

/* Geometry only (dilation does nothing to a 1x1 kernel); conv_small.c and conv_wgrad.c ask
 * the same question. */
int ams_cpu_conv_pointwise(const ams_conv2d_desc *d) {
    return d->kh == 1 && d->kw == 1 && d->stride_h == 1 && d->stride_w == 1 && d->pad_t == 0 &&
           d->pad_b == 0 && d->pad_l == 0 && d->pad_r == 0 && d->groups == 1 && d->oh == d->h &&
           d->ow == d->w;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define AVX512 __attribute__((target("avx512f")))

int ams_cpu_pw_available(void) { return __builtin_cpu_supports("avx512f"); }

/* A tile of R rows x NB vectors (acc, row-major) through the epilogue into out (row stride
 * n; the last vector's real columns are m): bias, activation times its scale (as apply_act
 * in conv_dnnl.c: relu, clip(0, 6), x * (scale / 6) * clip(x + 3, 0, 6)), + addend, + out
 * when accumulating, then zero where relu_of (the tile's rows of e->relu_of) is not > 0.
 * Each step is a loop over the whole tile behind one test, so the tests are paid per tile,
 * not per vector (they were a quarter of a 16-channel conv's time). */
static inline __attribute__((always_inline)) AVX512 void store_tile(
    float *out, const float *addend, const float *relu_of, int64_t n, __m512 *acc, int R,
    int NB, __mmask16 m, const epilogue *e, const float *bias) {
    const __m512 zero = _mm512_setzero_ps(), six = _mm512_set1_ps(6.0f);
    const int full = m == 0xffff; /* masked loads and stores are slow on AMD: a real tail only */
    if (bias)
        for (int j = 0; j < NB; j++) {
            __m512 bv = _mm512_load_ps(bias + j * 16);
            for (int r = 0; r < R; r++) acc[r * NB + j] = _mm512_add_ps(acc[r * NB + j], bv);
        }
    const __m512 sc = _mm512_set1_ps(e->act_scale), sc6 = _mm512_set1_ps(e->act_scale / 6.0f);
    switch (e->act) {
    case AMS_CONV_ACT_RELU:
        for (int i = 0; i < R * NB; i++) acc[i] = _mm512_mul_ps(_mm512_max_ps(acc[i], zero), sc);
        break;
    case AMS_CONV_ACT_RELU6:
        for (int i = 0; i < R * NB; i++)
            acc[i] = _mm512_mul_ps(_mm512_min_ps(_mm512_max_ps(acc[i], zero), six), sc);
        break;
    case AMS_CONV_ACT_HSWISH:
        for (int i = 0; i < R * NB; i++) {
            __m512 t = _mm512_add_ps(acc[i], _mm512_set1_ps(3.0f));
            __m512 r6 = _mm512_min_ps(_mm512_max_ps(t, zero), six);
            acc[i] = _mm512_mul_ps(_mm512_mul_ps(acc[i], sc6), r6);
        }
        break;
    default: break;
    }
    if (addend)
        for (int r = 0; r < R; r++)
            for (int j = 0; j < NB; j++) {
                const float *p = addend + r * n + j * 16;
                __m512 v = j < NB - 1 || full ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps(m, p);
                acc[r * NB + j] = _mm512_add_ps(acc[r * NB + j], v);
            }
    if (e->accumulate)
        for (int r = 0; r < R; r++)
            for (int j = 0; j < NB; j++) {
                const float *p = out + r * n + j * 16;
                __m512 v = j < NB - 1 || full ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps(m, p);
                acc[r * NB + j] = _mm512_add_ps(acc[r * NB + j], v);
            }
    if (relu_of)
        for (int r = 0; r < R; r++)
            for (int j = 0; j < NB; j++) {
                const float *p = relu_of + r * n + j * 16;
                __m512 v = j < NB - 1 || full ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps(m, p);
                acc[r * NB + j] =
                    _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v, zero, _CMP_GT_OQ), acc[r * NB + j]);
            }
    for (int r = 0; r < R; r++)
        for (int j = 0; j < NB; j++) {
            float *p = out + r * n + j * 16;
            if (j < NB - 1 || full) _mm512_storeu_ps(p, acc[r * NB + j]);
            else _mm512_mask_storeu_ps(p, m, acc[r * NB + j]);
        }
}

/* Rows [0, rows) of out (row stride n) = epilogue(a (rows, k; row stride k) . panel), where
 * the panel holds NB vectors of 16 columns (k rows of NB*16 floats, zero-padded) and the
 * last vector's real columns are mask m. R rows at a time in registers, then one. */
#define PW_TILES(NAME, R, NB, KC)                                                                 \
    static AVX512 void NAME(float *out, const float *addend, int64_t n, const float *a, int k,    \
                            const float *panel, int64_t rows, __mmask16 m, const epilogue *e,     \
                            const float *bias) {                                                  \
        const int kk = KC > 0 ? KC : k;                                                           \
        const epilogue ec = *e; /* a local copy: out's stores cannot change it */                 \
        int64_t r0 = 0;                                                                           \
        for (; r0 + R <= rows; r0 += R) {                                                         \
            __m512 acc[R][NB];                                                                    \
            for (int r = 0; r < R; r++)                                                           \
                for (int j = 0; j < NB; j++) acc[r][j] = _mm512_setzero_ps();                     \
            const float *ar = a + r0 * kk, *bq = panel;                                           \
            for (int q = 0; q < kk; q++, bq += NB * 16) {                                         \
                __m512 b[NB];                                                                     \
                for (int j = 0; j < NB; j++) b[j] = _mm512_load_ps(bq + j * 16);                  \
                for (int r = 0; r < R; r++) {                                                     \
                    __m512 av = _mm512_set1_ps(ar[(int64_t)r * kk + q]);                          \
                    for (int j = 0; j < NB; j++) acc[r][j] = _mm512_fmadd_ps(av, b[j], acc[r][j]); \
                }                                                                                 \
            }                                                                                     \
            store_tile(out + r0 * n, addend ? addend + r0 * n : NULL,                             \
                       ec.relu_of ? ec.relu_of + r0 * n : NULL, n, &acc[0][0], R, NB, m, &ec,     \
                       bias);                                                                     \
        }                                                                                         \
        for (; r0 < rows; r0++) {                                                                 \
            __m512 acc[NB];                                                                       \
            for (int j = 0; j < NB; j++) acc[j] = _mm512_setzero_ps();                            \
            const float *ar = a + r0 * kk, *bq = panel;                                           \
            for (int q = 0; q < kk; q++, bq += NB * 16) {                                         \
                __m512 av = _mm512_set1_ps(ar[q]);                                                \
                for (int j = 0; j < NB; j++)                                                      \
                    acc[j] = _mm512_fmadd_ps(av, _mm512_load_ps(bq + j * 16), acc[j]);            \
            }                                                                                     \
            store_tile(out + r0 * n, addend ? addend + r0 * n : NULL,                             \
                       ec.relu_of ? ec.relu_of + r0 * n : NULL, n, acc, 1, NB, m, &ec, bias);     \
        }                                                                                         \
    }

PW_TILES(tiles1, 16, 1, 0)
PW_TILES(tiles2, 12, 2, 0)
PW_TILES(tiles3, 8, 3, 0)
PW_TILES(tiles4, 6, 4, 0)
/* k = 16 (mobile networks' narrowest layers, most of their pixels): the row offsets become
 * constants, so the R rows need no index registers (the generic tiles spill them) */
PW_TILES(tiles1_k16, 16, 1, 16)
PW_TILES(tiles2_k16, 12, 2, 16)
PW_TILES(tiles3_k16, 8, 3, 16)
PW_TILES(tiles4_k16, 6, 4, 16)

/* Pixels [p0, p1) of out (p, n) = epilogue(a (p, k) . B), B packed as panels of PANEL
 * columns: panel i is k rows of its width (a multiple of 16) floats, at packed + i*k*PANEL. */
static AVX512 void gemm_slice(float *out, const float *a, const float *packed, int64_t p0,
                              int64_t p1, int k, int n, const epilogue *e) {
    for (int64_t c0 = p0; c0 < p1; c0 += CHUNK) {
        int64_t rows = p1 - c0 < CHUNK ? p1 - c0 : CHUNK;
        const float *ac = a + c0 * k;
        for (int col = 0; col < n; col += PANEL) {
            int width = n - col < PANEL ? n - col : PANEL;
            int nb = (width + 15) / 16, tail = width - (nb - 1) * 16;
            __mmask16 m = (__mmask16)((1u << tail) - 1u);
            const float *panel = packed + (int64_t)(col / PANEL) * k * PANEL;
            float *o = out + c0 * n + col;
            const float *ad = e->addend ? e->addend + c0 * n + col : NULL;
            const float *bias = e->bias ? e->bias + col : NULL;
            epilogue ep = *e; /* relu_of at this chunk's and panel's corner */
            if (e->relu_of) ep.relu_of = e->relu_of + c0 * n + col;
            switch (nb + (k == 16 ? 4 : 0)) {
            case 1: tiles1(o, ad, n, ac, k, panel, rows, m, &ep, bias); break;
            case 2: tiles2(o, ad, n, ac, k, panel, rows, m, &ep, bias); break;
            case 3: tiles3(o, ad, n, ac, k, panel, rows, m, &ep, bias); break;
            case 4: tiles4(o, ad, n, ac, k, panel, rows, m, &ep, bias); break;
            case 5: tiles1_k16(o, ad, n, ac, k, panel, rows, m, &ep, bias); break;
            case 6: tiles2_k16(o, ad, n, ac, k, panel, rows, m, &ep, bias); break;
            case 7: tiles3_k16(o, ad, n, ac, k, panel, rows, m, &ep, bias); break;
            default: tiles4_k16(o, ad, n, ac, k, panel, rows, m, &ep, bias); break;
            }
        }
    }
}

/* Weight gradient tiles: acc rows [i0, i0 + R) (input channels) x NB vectors of output
 * channels (row stride ldacc; the last vector's real lanes are m) += sum over np pixels of
 * x (p, i) times dy (p, j): R broadcasts of x and NB loads of dy per pixel, the R x NB sums
 * in registers for the whole block of pixels. Then the rows left over, one at a time. */
#define WG_TILES(NAME, R, NB)                                                                     \
    static AVX512 void NAME(float *acc, int64_t ldacc, const float *x, int c, const float *g,     \
                            int64_t ldg, int64_t np, __mmask16 m) {                               \
        int i0 = 0;                                                                               \
        for (; i0 + R <= c; i0 += R) {                                                            \
            __m512 s[R][NB];                                                                      \
            for (int r = 0; r < R; r++)                                                           \
                for (int j = 0; j < NB; j++)                                                      \
                    s[r][j] = _mm512_maskz_loadu_ps(j == NB - 1 ? m : (__mmask16)0xffff,          \
                                                    acc + (i0 + r) * ldacc + j * 16);             \
            const float *xp = x + i0, *gp = g;                                                    \
            for (int64_t p = 0; p < np; p++, xp += c, gp += ldg) {                                \
                __m512 b[NB];                                                                     \
                for (int j = 0; j < NB - 1; j++) b[j] = _mm512_loadu_ps(gp + j * 16);             \
                b[NB - 1] = m == 0xffff ? _mm512_loadu_ps(gp + (NB - 1) * 16)                     \
                                        : _mm512_maskz_loadu_ps(m, gp + (NB - 1) * 16);           \
                for (int r = 0; r < R; r++) {                                                     \
                    __m512 av = _mm512_set1_ps(xp[r]);                                            \
                    for (int j = 0; j < NB; j++) s[r][j] = _mm512_fmadd_ps(av, b[j], s[r][j]);    \
                }                                                                                 \
            }                                                                                     \
            for (int r = 0; r < R; r++)                                                           \
                for (int j = 0; j < NB; j++)                                                      \
                    _mm512_mask_storeu_ps(acc + (i0 + r) * ldacc + j * 16,                        \
                                          j == NB - 1 ? m : (__mmask16)0xffff, s[r][j]);          \
        }                                                                                         \
        for (; i0 < c; i0++) {                                                                    \
            __m512 s[NB];                                                                         \
            for (int j = 0; j < NB; j++)                                                          \
                s[j] = _mm512_maskz_loadu_ps(j == NB - 1 ? m : (__mmask16)0xffff,                 \
                                             acc + i0 * ldacc + j * 16);                          \
            const float *xp = x + i0, *gp = g;                                                    \
            for (int64_t p = 0; p < np; p++, xp += c, gp += ldg) {                                \
                __m512 av = _mm512_set1_ps(*xp);                                                  \
                for (int j = 0; j < NB; j++)                                                      \
                    s[j] = _mm512_fmadd_ps(av, _mm512_maskz_loadu_ps(j == NB - 1 ? m : (__mmask16)0xffff, gp + j * 16), s[j]); \
            }                                                                                     \
            for (int j = 0; j < NB; j++)                                                          \
                _mm512_mask_storeu_ps(acc + i0 * ldacc + j * 16,                                  \
                                      j == NB - 1 ? m : (__mmask16)0xffff, s[j]);                 \
        }                                                                                         \
    }

WG_TILES(wtiles1, 16, 1)
WG_TILES(wtiles2, 12, 2)
WG_TILES(wtiles3, 8, 3)
WG_TILES(wtiles4, 6, 4)

/* Pixels summed into registers before a tile goes back to memory (x's block, WG_PIX x c
 * floats, stays in cache while every tile sweeps it). */
#define WG_PIX 256

/* bacc (oc) += the column sums of np pixels of g (row stride oc): four sums side by side. */
static AVX512 void colsums(float *bacc, const float *g, int64_t np, int oc) {
    for (int col = 0; col < oc; col += 16) {
        __mmask16 m = oc - col >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (oc - col)) - 1u);
        __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
        const float *gp = g + col;
        int64_t p = 0;
        for (; p + 4 <= np; p += 4, gp += 4 * (int64_t)oc) {
            s0 = _mm512_add_ps(s0, _mm512_maskz_loadu_ps(m, gp));
            s1 = _mm512_add_ps(s1, _mm512_maskz_loadu_ps(m, gp + oc));
            s2 = _mm512_add_ps(s2, _mm512_maskz_loadu_ps(m, gp + 2 * (int64_t)oc));
            s3 = _mm512_add_ps(s3, _mm512_maskz_loadu_ps(m, gp + 3 * (int64_t)oc));
        }
        for (; p < np; p++, gp += oc) s0 = _mm512_add_ps(s0, _mm512_maskz_loadu_ps(m, gp));
        __m512 s = _mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3));
        _mm512_mask_storeu_ps(bacc + col, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, bacc + col), s));
    }
}

static AVX512 void wgrad_slice(float *acc, float *bacc, const float *x, const float *dy,
                               int64_t p0, int64_t p1, int c, int oc) {
    for (int64_t b0 = p0; b0 < p1; b0 += WG_PIX) {
        int64_t np = p1 - b0 < WG_PIX ? p1 - b0 : WG_PIX;
        const float *xb = x + b0 * c, *gb = dy + b0 * oc;
        /* the bias gradient from the block of dy the tiles below read again from cache */
        if (bacc) colsums(bacc, gb, np, oc);
        if (!acc) continue;
        for (int col = 0; col < oc; col += PANEL) {
            int width = oc - col < PANEL ? oc - col : PANEL;
            int nb = (width + 15) / 16, tail = width - (nb - 1) * 16;
            __mmask16 m = (__mmask16)((1u << tail) - 1u);
            switch (nb) {
            case 1: wtiles1(acc + col, oc, xb, c, gb + col, oc, np, m); break;
            case 2: wtiles2(acc + col, oc, xb, c, gb + col, oc, np, m); break;
            case 3: wtiles3(acc + col, oc, xb, c, gb + col, oc, np, m); break;
            default: wtiles4(acc + col, oc, xb, c, gb + col, oc, np, m); break;
            }
        }
    }
}

void ams_cpu_pw_wgrad(float *acc, float *bacc, const float *x, const float *dy, int64_t p0,
                      int64_t p1, int c, int oc) {
    wgrad_slice(acc, bacc, x, dy, p0, p1, c, oc);
}

/* Packs B (k, n), element (q, j) at b[q*bs_q + j*bs_j], into PANEL-wide panels whose
 * last vector is zero-padded; the bias (n; NULL: none) into pbias padded likewise. */
static void pack(float *packed, const float *b, int64_t bs_q, int64_t bs_j, int k, int n,
                 float *pbias, const float *bias) {
    for (int col = 0; col < n; col += PANEL) {
        int width = n - col < PANEL ? n - col : PANEL, wpad = (width + 15) / 16 * 16;
        float *panel = packed + (int64_t)(col / PANEL) * k * PANEL;
        for (int q = 0; q < k; q++) {
            float *row = panel + (int64_t)q * wpad;
            for (int j = 0; j < width; j++) row[j] = b[q * bs_q + (int64_t)(col + j) * bs_j];
            for (int j = width; j < wpad; j++) row[j] = 0.0f;
        }
    }
    if (pbias) {
        int npad = (n + 15) / 16 * 16;
        for (int j = 0; j < npad; j++) pbias[j] = j < n ? bias[j] : 0.0f;
    }
}

/* out = epilogue(in (pixels, k) . B (k, n)) over all pixels, threads splitting whole
 * chunks; 0 when the packing buffer could not be grown. */
static int gemm(const ams_backend *be, float *out, const float *in, const float *b,
                int64_t bs_q, int64_t bs_j, int k, int n, int64_t pixels, const float *bias,
                const epilogue *e0) {
    ams_cpu_state *st = (ams_cpu_state *)be->state;
    size_t plen = (size_t)k * (size_t)((n + 15) / 16 * 16), need = plen + (size_t)n + 16;
    if (need > st->pw_len) {
        float *p = ams_cpu_alloc(st, need * sizeof *p);
        if (!p) return 0;
        free(st->pw);
        st->pw = p, st->pw_len = need;
    }
    float *packed = st->pw, *pbias = st->pw + plen; /* plen is a multiple of 16: aligned */
    pack(packed, b, bs_q, bs_j, k, n, bias ? pbias : NULL, bias);
    epilogue e = *e0;
    e.bias = bias ? pbias : NULL;
    double macs = (double)pixels * k * n;
    int nt = macs < 4e6 || st->threads < 1 ? 1 : st->threads; /* as conv_dnnl.c's threshold */
    int64_t chunks = (pixels + CHUNK - 1) / CHUNK;
    CPU_PARALLEL_FOR
    for (int t = 0; t < nt; t++) {
        int64_t lo, hi;
        cpu_split(chunks, t, nt, &lo, &hi);
        lo *= CHUNK, hi = hi * CHUNK < pixels ? hi * CHUNK : pixels;
        if (lo < hi) gemm_slice(out, in, packed, lo, hi, k, n, &e);
    }
    return 1;
}

int ams_cpu_pw_forward(const ams_backend *be, float *out, const float *in, const float *weight,
                       const float *bias, const ams_conv2d_desc *d, int act, float act_scale,
                       const float *addend) {
    epilogue e = {NULL, act, act_scale, addend, 0, NULL};
    /* HWIO 1x1: weight (c, oc) is B as it is */
    return gemm(be, out, in, weight, d->oc, 1, d->c, d->oc, (int64_t)d->n * d->h * d->w, bias, &e);
}

int ams_cpu_pw_backward_data(const ams_backend *be, int set, float *din, const float *relu_of,
                             const float *dout, const float *weight, const ams_conv2d_desc *d) {
    epilogue e = {NULL, AMS_CONV_ACT_NONE, 1.0f, NULL, !set, relu_of};
    /* din (p, c) = dy (p, oc) . W^T: B (oc, c) element (q, j) = weight[j*oc + q] */
    return gemm(be, din, dout, weight, 1, d->oc, d->oc, d->c, (int64_t)d->n * d->h * d->w, NULL, &e);
}

#else /* not x86-64 GCC/clang: oneDNN's or the reference kernels */

int ams_cpu_pw_available(void) { return 0; }
int ams_cpu_pw_forward(const ams_backend *be, float *out, const float *in, const float *weight,
                       const float *bias, const ams_conv2d_desc *d, int act, float act_scale,
                       const float *addend) {
    (void)be, (void)out, (void)in, (void)weight, (void)bias, (void)d, (void)act;
    (void)act_scale, (void)addend;
    return 0;
}
int ams_cpu_pw_backward_data(const ams_backend *be, int set, float *din, const float *relu_of,
                             const float *dout, const float *weight, const ams_conv2d_desc *d) {
    (void)be, (void)set, (void)din, (void)relu_of, (void)dout, (void)weight, (void)d;
    return 0;
}
void ams_cpu_pw_wgrad(float *acc, float *bacc, const float *x, const float *dy, int64_t p0,
                      int64_t p1, int c, int oc) {
    (void)acc, (void)bacc, (void)x, (void)dy, (void)p0, (void)p1, (void)c, (void)oc;
}
#endif
