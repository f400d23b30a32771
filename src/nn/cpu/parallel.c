/* parallel.c - the CPU backend's element-wise and row-wise kernels, one slice per OpenMP
 * thread: the reference kernels on disjoint slices (relu forward, tanh, affine, dropout),
 * and our own vectorised loops where the reference is slow or cannot be sliced (batch
 * norm, relu, relu6, sigmoid, bias gradients, softmax cross-entropy).
 * Small inputs stay on the calling thread: a parallel region costs a few microseconds.
 */
#include "nn/cpu/cpu_backend.h"
#include "nn/cpu/cpu_math.h"
#include "nn/ref/ref_kernels.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#ifdef _OPENMP
#define PARALLEL_THREADS _Pragma("omp parallel for num_threads(nt) schedule(static, 1)")
#else
#define PARALLEL_THREADS
#endif

/* Hot loops are compiled for AVX-512, AVX2 and the baseline; the loader picks one for
 * this CPU at start-up (GCC function multiversioning: run-time feature detection). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define MULTIVERSION __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define MULTIVERSION
#endif

/* Channels a batch-norm slice keeps its per-channel factors for on the stack. */
#define BN_MAX_C 2048

static int nthreads(const ams_backend *be, int64_t work) {
    const ams_cpu_state *st = (const ams_cpu_state *)be->state;
    return work < st->min_parallel || st->threads < 1 ? 1 : st->threads;
}

/* Slice t of nt of [0, n), aligned to 16 floats (whole cache lines). */
static void slice(int64_t n, int t, int nt, int64_t *lo, int64_t *hi) {
    int64_t per = (n + nt - 1) / nt;
    per = (per + 15) & ~(int64_t)15;
    *lo = per * t < n ? per * t : n;
    *hi = per * (t + 1) < n ? per * (t + 1) : n;
}

#define UNARY(name, ref, PARAMS, ARGS)                                      \
    static void name PARAMS {                                               \
        int nt = nthreads(be, n);                                           \
        PARALLEL_THREADS                                                    \
        for (int t = 0; t < nt; t++) {                                      \
            int64_t lo, hi;                                                 \
            slice(n, t, nt, &lo, &hi);                                      \
            if (hi > lo) ref ARGS;                                          \
        }                                                                   \
    }

/* The reference's expressions compiled for this CPU's widest vectors (the reference is
 * built for the baseline ISA): bitwise the same results. */
MULTIVERSION static void relu_fwd_slice(float *out, const float *in, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = in[i] < 0.0f ? 0.0f : in[i];
}
MULTIVERSION static void affine_fwd_slice(float *out, const float *in, float a, float b, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = in[i] * a + b;
}
MULTIVERSION static void affine_bwd_slice(float *din, const float *dout, float a, int64_t n) {
    for (int64_t i = 0; i < n; i++) din[i] += dout[i] * a;
}
UNARY(relu_fwd, relu_fwd_slice,
      (const ams_backend *be, float *out, const float *in, int64_t n), (out + lo, in + lo, hi - lo))
/* The reference's rule without its branch (a mispredicted branch per element made relu's
 * backward ten times slower than its forward). */
MULTIVERSION static void relu_bwd_slice(float *din, const float *dout, const float *out, int64_t n) {
    for (int64_t i = 0; i < n; i++) din[i] += out[i] > 0.0f ? dout[i] : 0.0f;
}
MULTIVERSION static void relu_bwd_set_slice(float *din, const float *dout, const float *out, int64_t n) {
    for (int64_t i = 0; i < n; i++) din[i] = out[i] > 0.0f ? dout[i] : 0.0f;
}
UNARY(relu_bwd_set, relu_bwd_set_slice,
      (const ams_backend *be, float *din, const float *dout, const float *out, int64_t n),
      (din + lo, dout + lo, out + lo, hi - lo))
UNARY(relu_bwd, relu_bwd_slice,
      (const ams_backend *be, float *din, const float *dout, const float *out, int64_t n),
      (din + lo, dout + lo, out + lo, hi - lo))
/* The reference's expressions (NaN passes through), vectorised. */
MULTIVERSION static void relu6_fwd_slice(float *out, const float *in, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float v = in[i] < 0.0f ? 0.0f : in[i];
        out[i] = v > 6.0f ? 6.0f : v;
    }
}
MULTIVERSION static void relu6_bwd_slice(float *din, const float *dout, const float *out, int64_t n) {
    for (int64_t i = 0; i < n; i++) din[i] += out[i] > 0.0f && out[i] < 6.0f ? dout[i] : 0.0f;
}
UNARY(relu6_fwd, relu6_fwd_slice,
      (const ams_backend *be, float *out, const float *in, int64_t n), (out + lo, in + lo, hi - lo))
MULTIVERSION static void relu6_bwd_set_slice(float *din, const float *dout, const float *out, int64_t n) {
    for (int64_t i = 0; i < n; i++) din[i] = out[i] > 0.0f && out[i] < 6.0f ? dout[i] : 0.0f;
}
UNARY(relu6_bwd_set, relu6_bwd_set_slice,
      (const ams_backend *be, float *din, const float *dout, const float *out, int64_t n),
      (din + lo, dout + lo, out + lo, hi - lo))
UNARY(relu6_bwd, relu6_bwd_slice,
      (const ams_backend *be, float *din, const float *dout, const float *out, int64_t n),
      (din + lo, dout + lo, out + lo, hi - lo))
/* The reference's formula (exp of a non-positive number only) with the vectorisable exp:
 * within 2 ulp of it (libm's expf was 0.5 ms of a 3.8 ms selfie inference). */
MULTIVERSION static void sigmoid_fwd_slice(float *out, const float *in, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float x = in[i], ax = x < 0.0f ? -x : x;
        float e = exp_nonpos(-ax), r = 1.0f / (1.0f + e);
        out[i] = (x >= 0.0f ? 1.0f : e) * r;
    }
}
UNARY(sigmoid_fwd, sigmoid_fwd_slice,
      (const ams_backend *be, float *out, const float *in, int64_t n), (out + lo, in + lo, hi - lo))
UNARY(sigmoid_bwd, ams_ref_sigmoid_backward,
      (const ams_backend *be, float *din, const float *dout, const float *out, int64_t n),
      (be, din + lo, dout + lo, out + lo, hi - lo))
/* libm's tanhf is a call per element (16 % of the RVM teacher's inference): the vectorisable
 * form, within a few ulp of it. */
MULTIVERSION static void tanh_fwd_slice(float *out, const float *in, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = tanh_vec(in[i]);
}
UNARY(tanh_fwd, tanh_fwd_slice,
      (const ams_backend *be, float *out, const float *in, int64_t n), (out + lo, in + lo, hi - lo))
UNARY(tanh_bwd, ams_ref_tanh_backward,
      (const ams_backend *be, float *din, const float *dout, const float *out, int64_t n),
      (be, din + lo, dout + lo, out + lo, hi - lo))
UNARY(affine_fwd, affine_fwd_slice,
      (const ams_backend *be, float *out, const float *in, float a, float b, int64_t n),
      (out + lo, in + lo, a, b, hi - lo))
MULTIVERSION static void affine_bwd_set_slice(float *din, const float *dout, float a, int64_t n) {
    for (int64_t i = 0; i < n; i++) din[i] = dout[i] * a;
}
UNARY(affine_bwd_set, affine_bwd_set_slice,
      (const ams_backend *be, float *din, const float *dout, float a, int64_t n),
      (din + lo, dout + lo, a, hi - lo))
UNARY(affine_bwd, affine_bwd_slice,
      (const ams_backend *be, float *din, const float *dout, float a, int64_t n),
      (din + lo, dout + lo, a, hi - lo))

/* Hard-swish (kernels.h): the reference's float operations, vectorised (bitwise the
 * reference's: this file does not contract multiply-adds). */
MULTIVERSION static void hswish_fwd_slice(float *out, const float *in, float a1, float b1, float a2,
                                          float b2, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float m = in[i] * a1 + b1, t = in[i] * a2 + b2;
        float r = t < 0.0f ? 0.0f : t;
        r = r > 6.0f ? 6.0f : r;
        out[i] = m * r;
    }
}
/* 0 < relu6(t) < 6 is 0 < t < 6 (NaN fails both): the test on t vectorises, on r it did not. */
MULTIVERSION static void hswish_bwd_slice(float *din, const float *dout, const float *in, float a1,
                                          float b1, float a2, float b2, int64_t n, int set) {
    if (set) {
        for (int64_t i = 0; i < n; i++) {
            float x = in[i], g = dout[i];
            float m = x * a1 + b1, t = x * a2 + b2;
            float r = t < 0.0f ? 0.0f : t;
            r = r > 6.0f ? 6.0f : r;
            float dr = g * m;
            float dt = t > 0.0f && t < 6.0f ? dr : 0.0f;
            din[i] = dt * a2 + (g * r) * a1;
        }
    } else {
        for (int64_t i = 0; i < n; i++) {
            float x = in[i], g = dout[i];
            float m = x * a1 + b1, t = x * a2 + b2;
            float r = t < 0.0f ? 0.0f : t;
            r = r > 6.0f ? 6.0f : r;
            float dr = g * m;
            float dt = t > 0.0f && t < 6.0f ? dr : 0.0f;
            din[i] = (din[i] + dt * a2) + (g * r) * a1;
        }
    }
}
UNARY(hswish_fwd, hswish_fwd_slice,
      (const ams_backend *be, float *out, const float *in, const float *ab, int64_t n),
      (out + lo, in + lo, ab[0], ab[1], ab[2], ab[3], hi - lo))
UNARY(hswish_bwd, hswish_bwd_slice,
      (const ams_backend *be, float *din, const float *dout, const float *in, const float *ab,
       int64_t n, int set),
      (din + lo, dout + lo, in + lo, ab[0], ab[1], ab[2], ab[3], hi - lo, set))

/* Rows [lo, hi) of a (rows, c) tensor for thread t. */
static void row_slice(int64_t rows, int t, int nt, int64_t *lo, int64_t *hi) {
    int64_t per = (rows + nt - 1) / nt;
    *lo = per * t < rows ? per * t : rows;
    *hi = per * (t + 1) < rows ? per * (t + 1) : rows;
}

/* Global average pooling, vectorised over channels: each channel sums its pixels in the
 * reference's order, so the results are bitwise the reference's. Images split over threads
 * when there are enough, else channel ranges. */
MULTIVERSION static void gap_fwd_part(float *out, const float *in, int64_t b0, int64_t b1, size_t hw,
                                      int c, int64_t k0, int64_t k1) {
    /* up to 64 channels' sums in a local block (registers), each summed in pixel order as
     * the reference does: summing in out itself reloaded it for every pixel */
    for (int64_t b = b0; b < b1; b++) {
        float *o = out + (size_t)b * (size_t)c;
        for (int64_t k = k0; k < k1; k += 64) {
            int m = k1 - k < 64 ? (int)(k1 - k) : 64;
            float s[64] = {0};
            const float *x = in + (size_t)b * hw * (size_t)c + (size_t)k;
            if (m == 64)
                for (size_t p = 0; p < hw; p++, x += c)
                    for (int j = 0; j < 64; j++) s[j] += x[j];
            else if (m == 16)
                for (size_t p = 0; p < hw; p++, x += c)
                    for (int j = 0; j < 16; j++) s[j] += x[j];
            else
                for (size_t p = 0; p < hw; p++, x += c)
                    for (int j = 0; j < m; j++) s[j] += x[j];
            for (int j = 0; j < m; j++) o[k + j] = hw ? s[j] / (float)hw : 0.0f;
        }
    }
}
/* gap_fwd_part of a + b, the float sums formed as the pool reads them (bitwise the pool of
 * the stored sum). */
MULTIVERSION static void gap_add_fwd_part(float *out, const float *a, const float *bb,
                                          int64_t b0, int64_t b1, size_t hw, int c, int64_t k0,
                                          int64_t k1) {
    for (int64_t b = b0; b < b1; b++) {
        float *o = out + (size_t)b * (size_t)c;
        for (int64_t k = k0; k < k1; k += 64) {
            int m = k1 - k < 64 ? (int)(k1 - k) : 64;
            float s[64] = {0};
            size_t off = (size_t)b * hw * (size_t)c + (size_t)k;
            const float *x = a + off, *y = bb + off;
            if (m == 16)
                for (size_t p = 0; p < hw; p++, x += c, y += c)
                    for (int j = 0; j < 16; j++) s[j] += x[j] + y[j];
            else
                for (size_t p = 0; p < hw; p++, x += c, y += c)
                    for (int j = 0; j < m; j++) s[j] += x[j] + y[j];
            for (int j = 0; j < m; j++) o[k + j] = hw ? s[j] / (float)hw : 0.0f;
        }
    }
}
/* da, db (+)= dout / hw at every pixel (set_a / set_b: overwritten; NULL: skipped; da == db:
 * one after the other per element, as two backward calls would): the pool's backward (db
 * NULL) and the pool of a sum's. The quotients once per image, 64 channels at a time (a
 * division per element was most of the loop). */
MULTIVERSION static void gap_add_bwd_part(float *da, float *db, const float *dout, int64_t b0,
                                          int64_t b1, size_t hw, int c, int64_t k0, int64_t k1,
                                          int set_a, int set_b) {
    for (int64_t b = b0; b < b1; b++) {
        const float *g = dout + (size_t)b * (size_t)c;
        for (int64_t k = k0; k < k1; k += 64) {
            int m = k1 - k < 64 ? (int)(k1 - k) : 64;
            float q[64];
            for (int j = 0; j < m; j++) q[j] = g[k + j] / (float)hw;
            size_t off = (size_t)b * hw * (size_t)c + (size_t)k;
            for (size_t p = 0; p < hw; p++, off += (size_t)c) {
                if (da && set_a)
                    for (int j = 0; j < m; j++) da[off + j] = q[j];
                else if (da)
                    for (int j = 0; j < m; j++) da[off + j] += q[j];
                if (db && set_b)
                    for (int j = 0; j < m; j++) db[off + j] = q[j];
                else if (db)
                    for (int j = 0; j < m; j++) db[off + j] += q[j];
            }
        }
    }
}
static void gap_split(int n, int c, int t, int nt, int64_t *b0, int64_t *b1, int64_t *k0, int64_t *k1) {
    *b0 = 0, *b1 = n, *k0 = 0, *k1 = c;
    if (n >= nt) row_slice(n, t, nt, b0, b1);
    else row_slice(c, t, nt, k0, k1);
}
static void gap_fwd(const ams_backend *be, float *out, const float *in, int n, int h, int w, int c) {
    size_t hw = (size_t)h * (size_t)w;
    int nt = nthreads(be, (int64_t)n * (int64_t)hw * c);
    if (n < nt && c < nt) nt = 1;
    PARALLEL_THREADS
    for (int t = 0; t < nt; t++) {
        int64_t b0, b1, k0, k1;
        gap_split(n, c, t, nt, &b0, &b1, &k0, &k1);
        gap_fwd_part(out, in, b0, b1, hw, c, k0, k1);
    }
}
static void gap_add_fwd(const ams_backend *be, float *out, const float *a, const float *b, int n,
                        int h, int w, int c) {
    size_t hw = (size_t)h * (size_t)w;
    int nt = nthreads(be, 2 * (int64_t)n * (int64_t)hw * c);
    if (n < nt && c < nt) nt = 1;
    PARALLEL_THREADS
    for (int t = 0; t < nt; t++) {
        int64_t b0, b1, k0, k1;
        gap_split(n, c, t, nt, &b0, &b1, &k0, &k1);
        gap_add_fwd_part(out, a, b, b0, b1, hw, c, k0, k1);
    }
}
static void gap_add_bwd(const ams_backend *be, float *da, float *db, const float *dout, int n,
                        int h, int w, int c, int set_a, int set_b) {
    size_t hw = (size_t)h * (size_t)w;
    if (hw == 0) return;
    int nt = nthreads(be, (db ? 2 : 1) * (int64_t)n * (int64_t)hw * c);
    if (n < nt && c < nt) nt = 1;
    PARALLEL_THREADS
    for (int t = 0; t < nt; t++) {
        int64_t b0, b1, k0, k1;
        gap_split(n, c, t, nt, &b0, &b1, &k0, &k1);
        gap_add_bwd_part(da, db, dout, b0, b1, hw, c, k0, k1, set_a, set_b);
    }
}
static void gap_bwd(const ams_backend *be, float *din, const float *dout, int n, int h, int w, int c) {
    gap_add_bwd(be, din, NULL, dout, n, h, w, c, 0, 0);
}
static void gap_bwd_set(const ams_backend *be, float *din, const float *dout, int n, int h, int w,
                        int c) {
    gap_add_bwd(be, din, NULL, dout, n, h, w, c, 1, 0);
}
UNARY(dropout_fwd, ams_ref_dropout_forward,
      (const ams_backend *be, float *out, const float *in, const float *mask, int64_t n),
      (be, out + lo, in + lo, mask + lo, hi - lo))
UNARY(dropout_bwd, ams_ref_dropout_backward,
      (const ams_backend *be, float *din, const float *dout, const float *mask, int64_t n),
      (be, din + lo, dout + lo, mask + lo, hi - lo))

MULTIVERSION static void add_into_slice(float *dst, const float *src, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] += src[i];
}

void ams_cpu_add_into(const ams_backend *be, float *dst, const float *src, int64_t n) {
    int nt = nthreads(be, n);
    PARALLEL_THREADS
    for (int t = 0; t < nt; t++) {
        int64_t lo, hi;
        slice(n, t, nt, &lo, &hi);
        add_into_slice(dst + lo, src + lo, hi - lo);
    }
}


/* Column sums of rows [r0, r1) of x (rows, c) added to p (c doubles): blocks of CS_ROWS
 * rows summed in float, four rows at a time, then added in double; columns in chunks of
 * CS_COLS (the block's sums stay in L1). The sums were one float chain per column through
 * memory (acc may alias x): 6 % of a selfie training step. */
#define CS_ROWS 64
#define CS_COLS 256
MULTIVERSION static void colsum_part(double *p, const float *x, int64_t r0, int64_t r1, int c) {
    float s[CS_COLS];
    for (int j0 = 0; j0 < c; j0 += CS_COLS) {
        int m = c - j0 < CS_COLS ? c - j0 : CS_COLS;
        for (int64_t b = r0; b < r1; b += CS_ROWS) {
            int64_t e = b + CS_ROWS < r1 ? b + CS_ROWS : r1, r = b;
            for (int j = 0; j < m; j++) s[j] = 0.0f;
            for (; r + 4 <= e; r += 4) {
                const float *x0 = x + r * c + j0, *x1 = x0 + c, *x2 = x1 + c, *x3 = x2 + c;
                for (int j = 0; j < m; j++) s[j] += (x0[j] + x1[j]) + (x2[j] + x3[j]);
            }
            for (; r < e; r++) {
                const float *x0 = x + r * c + j0;
                for (int j = 0; j < m; j++) s[j] += x0[j];
            }
            for (int j = 0; j < m; j++) p[j0 + j] += (double)s[j];
        }
    }
}

/* Column sums of (rows, c) into acc (c), added: per-thread double partials, then summed.
 * Fewer than 16 columns dividing 16 are summed as rows of 16 (lanes folded at the end). */
static void column_sums_acc(const ams_backend *be, float *acc, const float *x, int64_t rows, int c) {
    ams_cpu_state *st = (ams_cpu_state *)be->state;
    const int ch = c;
    if (c < 16 && 16 % c == 0 && rows * c % 16 == 0) rows = rows * c / 16, c = 16;
    if (rows <= 0) return;
    int nt = nthreads(be, rows * c);
    if (nt > rows) nt = (int)rows;
    if (!ams_cpu_part_reserve(st, (size_t)nt * (size_t)c * 2)) { /* the plain loop */
        for (int64_t r = 0; r < rows; r++)
            for (int j = 0; j < c; j++) acc[j % ch] += x[r * c + j];
        return;
    }
    double *part = (double *)(void *)st->part;
    PARALLEL_THREADS
    for (int t = 0; t < nt; t++) {
        int64_t lo, hi;
        row_slice(rows, t, nt, &lo, &hi);
        double *p = part + (size_t)t * (size_t)c;
        memset(p, 0, (size_t)c * sizeof *p);
        colsum_part(p, x, lo, hi, c);
    }
    for (int t = 1; t < nt; t++)
        for (int j = 0; j < c; j++) part[j] += part[(size_t)t * (size_t)c + (size_t)j];
    for (int k = 0; k < ch; k++) { /* c == ch: one term each */
        double v = 0;
        for (int j = k; j < c; j += ch) v += part[j];
        acc[k] += (float)v;
    }
}

void ams_cpu_bias_grad(const ams_backend *be, float *dbias, const float *dy, int64_t pixels, int ch) {
    column_sums_acc(be, dbias, dy, pixels, ch);
}

/* y = x * a + b with a = gamma / sqrt(var + eps), b = beta - mean * a per channel (the
 * reference computes the square root per element: 40 % of an inference's time; this form
 * differs from its expression by an ulp or two). */
MULTIVERSION static void bn_fwd_rows(float *out, const float *in, const float *gamma,
                                     const float *beta, const float *mean, const float *var,
                                     float eps, int64_t rows, int c) {
    float a[BN_MAX_C], b[BN_MAX_C];
    for (int j = 0; j < c; j++) {
        a[j] = gamma[j] * (1.0f / sqrtf(var[j] + eps));
        b[j] = beta[j] - mean[j] * a[j];
    }
    for (int64_t r = 0; r < rows; r++) {
        const float *x = in + r * c;
        float *y = out + r * c;
        for (int j = 0; j < c; j++) y[j] = x[j] * a[j] + b[j];
    }
}

/* One thread's rows of the batch-norm backward: din += dout * gamma / sqrt(var + eps), and
 * (when pg) dgamma / dbeta partials into pg / pb. Blocks of BN_SUM_ROWS rows: the block's
 * dout is read for din and again, from cache, for the sums; sums are float within a block,
 * double across blocks (rows can be 10^5 and more), as precise as the reference's. */
#define BN_SUM_ROWS 64
MULTIVERSION static void bn_bwd_rows(float *din, float *pg, float *pb, const float *dout,
                                     const float *in, const float *gamma, const float *mean,
                                     const float *var, float eps, int64_t rows, int c) {
    double dg[BN_MAX_C], db[BN_MAX_C];
    float inv[BN_MAX_C], gi[BN_MAX_C], sg[BN_MAX_C], sb[BN_MAX_C];
    for (int j = 0; j < c; j++) {
        inv[j] = 1.0f / sqrtf(var[j] + eps);
        gi[j] = gamma[j] * inv[j];
        dg[j] = db[j] = 0;
    }
    for (int64_t r0 = 0; r0 < rows; r0 += BN_SUM_ROWS) {
        int64_t r1 = r0 + BN_SUM_ROWS < rows ? r0 + BN_SUM_ROWS : rows;
        if (din)
            for (int64_t r = r0; r < r1; r++) {
                const float *g = dout + r * c;
                float *dx = din + r * c;
                for (int j = 0; j < c; j++) dx[j] += g[j] * gi[j];
            }
        if (!pg) continue;
        for (int j = 0; j < c; j++) sg[j] = sb[j] = 0.0f;
        for (int64_t r = r0; r < r1; r++) {
            const float *g = dout + r * c, *x = in + r * c;
            for (int j = 0; j < c; j++) {
                sg[j] += g[j] * ((x[j] - mean[j]) * inv[j]);
                sb[j] += g[j];
            }
        }
        for (int j = 0; j < c; j++) dg[j] += sg[j], db[j] += sb[j];
    }
    if (pg)
        for (int j = 0; j < c; j++) pg[j] = (float)dg[j], pb[j] = (float)db[j];
}

static void bn_fwd(const ams_backend *be, float *out, const float *in, const float *gamma,
                   const float *beta, const float *mean, const float *var, float eps, int64_t rows,
                   int c) {
    if (c > BN_MAX_C) {
        ams_ref_batchnorm_forward(be, out, in, gamma, beta, mean, var, eps, rows, c);
        return;
    }
    int nt = nthreads(be, rows * c);
    PARALLEL_THREADS
    for (int t = 0; t < nt; t++) {
        int64_t lo, hi;
        row_slice(rows, t, nt, &lo, &hi);
        if (hi > lo) bn_fwd_rows(out + lo * c, in + lo * c, gamma, beta, mean, var, eps, hi - lo, c);
    }
}

/* din and the dgamma/dbeta partials (2c floats per thread) by row slices; the partials
 * are summed at the end. */
static void bn_bwd(const ams_backend *be, float *din, float *dgamma, float *dbeta, const float *dout,
                   const float *in, const float *gamma, const float *mean, const float *var, float eps,
                   int64_t rows, int c) {
    ams_cpu_state *st = (ams_cpu_state *)be->state;
    int nt = nthreads(be, rows * c);
    int sums = dgamma || dbeta;
    if (c > BN_MAX_C || (sums && !ams_cpu_part_reserve(st, (size_t)nt * 2 * (size_t)c))) {
        ams_ref_batchnorm_backward(be, din, dgamma, dbeta, dout, in, gamma, mean, var, eps, rows, c);
        return;
    }
    float *part = st->part;
    PARALLEL_THREADS
    for (int t = 0; t < nt; t++) {
        int64_t lo, hi;
        row_slice(rows, t, nt, &lo, &hi);
        float *pg = sums ? part + (size_t)t * 2 * (size_t)c : NULL, *pb = sums ? pg + c : NULL;
        bn_bwd_rows(din ? din + lo * c : NULL, pg, pb, dout + lo * c, in + lo * c, gamma, mean, var,
                    eps, hi - lo, c);
    }
    for (int t = 0; t < nt && sums; t++) {
        const float *pg = part + (size_t)t * 2 * (size_t)c, *pb = pg + c;
        for (int j = 0; j < c; j++) {
            if (dgamma) dgamma[j] += pg[j];
            if (dbeta) dbeta[j] += pb[j];
        }
    }
}

/* Softmax cross-entropy by pixel slices (at most LOSS_MAX_SLICES, one per thread), over at
 * most CE_MAX_COLS columns (more: the reference). */
#define CE_MAX_COLS 256
#define LOSS_MAX_SLICES 64

/* Softmax column of a pixel's label, -1 when the pixel does not count (the reference's rule). */
static int ce_column(uint8_t label, int c, const int *classes, int nsub) {
    if (label == 255) return -1;
    if (nsub <= 0) return label < c ? (int)label : -1;
    for (int k = 0; k < nsub; k++)
        if (classes[k] == (int)label) return k;
    return -1;
}

/* Softmax of one pixel's columns into e (ncol floats); returns the log-sum-exp. Column k
 * is x[classes[k]] with a subset, x[k] without. */
static inline float pixel_softmax_exps(float *e, const float *x, int ncol, const int *classes,
                                       int nsub, float *sum_out) {
    float m = -INFINITY, sum = 0.0f;
    if (nsub > 0) {
        for (int k = 0; k < ncol; k++) e[k] = x[classes[k]];
    } else {
        for (int k = 0; k < ncol; k++) e[k] = x[k];
    }
    for (int k = 0; k < ncol; k++) m = e[k] > m ? e[k] : m;
    for (int k = 0; k < ncol; k++) {
        e[k] = exp_nonpos(e[k] - m);
        sum += e[k];
    }
    *sum_out = sum;
    return m + logf(sum);
}

/* The reference's loss in float; sums over pixels stay in double. */
MULTIVERSION static double ce_slice_fwd(int64_t *count, const float *logits, const uint8_t *labels,
                                        int64_t p, int c, const int *classes, int nsub) {
    int ncol = nsub > 0 ? nsub : c;
    float e[CE_MAX_COLS];
    double sum = 0;
    int64_t n = 0;
    for (int64_t i = 0; i < p; i++) {
        int s = ce_column(labels[i], c, classes, nsub);
        if (s < 0) continue;
        const float *x = logits + i * c;
        float total;
        float lse = pixel_softmax_exps(e, x, ncol, classes, nsub, &total);
        sum += (double)lse - (double)x[nsub > 0 ? classes[s] : s];
        n++;
    }
    *count = n;
    return sum;
}

MULTIVERSION static void ce_slice_bwd(float *dlogits, float scale, const float *logits,
                                      const uint8_t *labels, int64_t p, int c, const int *classes,
                                      int nsub) {
    int ncol = nsub > 0 ? nsub : c;
    float e[CE_MAX_COLS];
    for (int64_t i = 0; i < p; i++) {
        int s = ce_column(labels[i], c, classes, nsub);
        if (s < 0) continue;
        float total;
        pixel_softmax_exps(e, logits + i * c, ncol, classes, nsub, &total);
        float *g = dlogits + i * c;
        float f = scale / total;
        if (nsub > 0) {
            for (int k = 0; k < ncol; k++) g[classes[k]] += e[k] * f;
        } else {
            for (int k = 0; k < ncol; k++) g[k] += e[k] * f;
        }
        g[nsub > 0 ? classes[s] : s] -= scale;
    }
}

/* Slices for a softmax over c columns; 0 when the reference must run (over CE_MAX_COLS). */
static int loss_slices(const ams_backend *be, int64_t p, int c) {
    if (c > CE_MAX_COLS) return 0;
    int nt = nthreads(be, p * c);
    return nt > LOSS_MAX_SLICES ? LOSS_MAX_SLICES : nt;
}

static void softmax_ce_fwd(const ams_backend *be, float *loss, int64_t *count, const float *logits,
                           const uint8_t *labels, int64_t p, int c, const int *classes, int nsub) {
    int nt = loss_slices(be, p, c);
    if (nt == 0) {
        ams_ref_softmax_ce_forward(be, loss, count, logits, labels, p, c, classes, nsub);
        return;
    }
    double part_sum[LOSS_MAX_SLICES];
    int64_t part_n[LOSS_MAX_SLICES];
    PARALLEL_THREADS
    for (int t = 0; t < nt; t++) {
        int64_t lo, hi;
        row_slice(p, t, nt, &lo, &hi);
        part_sum[t] = ce_slice_fwd(&part_n[t], logits + lo * c, labels + lo, hi - lo, c, classes, nsub);
    }
    double sum = 0;
    int64_t n = 0;
    for (int t = 0; t < nt; t++) sum += part_sum[t], n += part_n[t];
    *loss = n > 0 ? (float)(sum / (double)n) : 0.0f;
    *count = n;
}

static void softmax_ce_bwd(const ams_backend *be, float *dlogits, float dloss, const float *logits,
                           const uint8_t *labels, int64_t p, int c, const int *classes, int nsub) {
    int nt = loss_slices(be, p, c);
    if (nt == 0) {
        ams_ref_softmax_ce_backward(be, dlogits, dloss, logits, labels, p, c, classes, nsub);
        return;
    }
    int64_t part_n[LOSS_MAX_SLICES], n = 0;
    PARALLEL_THREADS
    for (int t = 0; t < nt; t++) {
        int64_t lo, hi, k = 0;
        row_slice(p, t, nt, &lo, &hi);
        for (int64_t i = lo; i < hi; i++) k += ce_column(labels[i], c, classes, nsub) >= 0;
        part_n[t] = k;
    }
    for (int t = 0; t < nt; t++) n += part_n[t];
    if (n == 0) return;
    float scale = (float)((double)dloss / (double)n);
    PARALLEL_THREADS
    for (int t = 0; t < nt; t++) {
        int64_t lo, hi;
        row_slice(p, t, nt, &lo, &hi);
        ce_slice_bwd(dlogits + lo * c, scale, logits + lo * c, labels + lo, hi - lo, c, classes, nsub);
    }
}

void ams_cpu_fill_table(ams_backend *be) {
    be->softmax_ce_forward = softmax_ce_fwd;
    be->softmax_ce_backward = softmax_ce_bwd;
    be->conv2d_forward = ams_cpu_conv2d_forward;
    be->conv2d_forward_act = ams_cpu_conv2d_forward_act;
    be->conv2d_backward = ams_cpu_conv2d_backward;
    be->conv2d_backward_din_set = ams_cpu_conv2d_backward_din_set;
    be->conv2d_backward_relu = ams_cpu_conv2d_backward_relu;
    be->conv2d_transpose_forward = ams_cpu_conv2d_transpose_forward;
    be->conv2d_transpose_backward = ams_cpu_conv2d_transpose_backward;
    be->conv2d_transpose_backward_din_set = ams_cpu_conv2d_transpose_backward_din_set;
    be->batchnorm_forward = bn_fwd;
    be->batchnorm_backward = bn_bwd;
    be->relu_forward = relu_fwd;
    be->relu_backward = relu_bwd;
    be->relu_backward_set = relu_bwd_set;
    be->relu6_backward_set = relu6_bwd_set;
    be->affine_backward_set = affine_bwd_set;
    be->relu6_forward = relu6_fwd;
    be->relu6_backward = relu6_bwd;
    be->sigmoid_forward = sigmoid_fwd;
    be->sigmoid_backward = sigmoid_bwd;
    be->tanh_forward = tanh_fwd;
    be->tanh_backward = tanh_bwd;
    be->affine_forward = affine_fwd;
    be->affine_backward = affine_bwd;
    be->hswish_forward = hswish_fwd;
    be->hswish_backward = hswish_bwd;
    be->global_avgpool_forward = gap_fwd;
    be->global_avgpool_backward = gap_bwd;
    be->global_avgpool_backward_set = gap_bwd_set;
    be->global_avgpool_add_forward = gap_add_fwd;
    be->global_avgpool_add_backward = gap_add_bwd;
    be->dropout_forward = dropout_fwd;
    be->dropout_backward = dropout_bwd;
}
