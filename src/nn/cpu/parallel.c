/* parallel.c - the CPU backend's element-wise and row-wise kernels, one slice per OpenMP
 * thread: the reference kernels on disjoint slices (relu, sigmoid, tanh, affine, dropout),
 * and our own vectorised loops where the reference is slow or cannot be sliced (batch
 * norm, relu6, adds, bias gradients, bilinear resize, softmax cross-entropy).
 * Small inputs stay on the calling thread: a parallel region costs a few microseconds.
 */
#include "nn/cpu/cpu_backend.h"
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

/* Below this many floats of work a kernel runs on one thread. */
#define MIN_PARALLEL 32768

static int nthreads(const ams_backend *be, int64_t work) {
    int t = ((const ams_cpu_state *)be->state)->threads;
    if (work < MIN_PARALLEL || t < 1) return 1;
    return t;
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

UNARY(relu_fwd, ams_ref_relu_forward,
      (const ams_backend *be, float *out, const float *in, int64_t n), (be, out + lo, in + lo, hi - lo))
UNARY(relu_bwd, ams_ref_relu_backward,
      (const ams_backend *be, float *din, const float *dout, const float *out, int64_t n),
      (be, din + lo, dout + lo, out + lo, hi - lo))
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
UNARY(relu6_bwd, relu6_bwd_slice,
      (const ams_backend *be, float *din, const float *dout, const float *out, int64_t n),
      (din + lo, dout + lo, out + lo, hi - lo))
UNARY(sigmoid_fwd, ams_ref_sigmoid_forward,
      (const ams_backend *be, float *out, const float *in, int64_t n), (be, out + lo, in + lo, hi - lo))
UNARY(sigmoid_bwd, ams_ref_sigmoid_backward,
      (const ams_backend *be, float *din, const float *dout, const float *out, int64_t n),
      (be, din + lo, dout + lo, out + lo, hi - lo))
UNARY(tanh_fwd, ams_ref_tanh_forward,
      (const ams_backend *be, float *out, const float *in, int64_t n), (be, out + lo, in + lo, hi - lo))
UNARY(tanh_bwd, ams_ref_tanh_backward,
      (const ams_backend *be, float *din, const float *dout, const float *out, int64_t n),
      (be, din + lo, dout + lo, out + lo, hi - lo))
UNARY(affine_fwd, ams_ref_affine_forward,
      (const ams_backend *be, float *out, const float *in, float a, float b, int64_t n),
      (be, out + lo, in + lo, a, b, hi - lo))
UNARY(affine_bwd, ams_ref_affine_backward,
      (const ams_backend *be, float *din, const float *dout, float a, int64_t n),
      (be, din + lo, dout + lo, a, hi - lo))
UNARY(dropout_fwd, ams_ref_dropout_forward,
      (const ams_backend *be, float *out, const float *in, const float *mask, int64_t n),
      (be, out + lo, in + lo, mask + lo, hi - lo))
UNARY(dropout_bwd, ams_ref_dropout_backward,
      (const ams_backend *be, float *din, const float *dout, const float *mask, int64_t n),
      (be, din + lo, dout + lo, mask + lo, hi - lo))

MULTIVERSION static void add_into_slice(float *dst, const float *src, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] += src[i];
}
MULTIVERSION static void add_slice(float *out, const float *a, const float *b, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = a[i] + b[i];
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

/* Rows [lo, hi) of a (rows, c) tensor for thread t. */
static void row_slice(int64_t rows, int t, int nt, int64_t *lo, int64_t *hi) {
    int64_t per = (rows + nt - 1) / nt;
    *lo = per * t < rows ? per * t : rows;
    *hi = per * (t + 1) < rows ? per * (t + 1) : rows;
}

/* Column sums of (rows, c) into acc (c), added: per-thread partials, then summed. */
static void column_sums_acc(const ams_backend *be, float *acc, const float *x, int64_t rows, int c) {
    ams_cpu_state *st = (ams_cpu_state *)be->state;
    int nt = nthreads(be, rows * c);
    if (nt > 1 && !ams_cpu_part_reserve(st, (size_t)nt * (size_t)c)) nt = 1;
    if (nt == 1) {
        for (int64_t r = 0; r < rows; r++)
            for (int j = 0; j < c; j++) acc[j] += x[r * c + j];
        return;
    }
    float *part = st->part;
    PARALLEL_THREADS
    for (int t = 0; t < nt; t++) {
        int64_t lo, hi;
        row_slice(rows, t, nt, &lo, &hi);
        float *p = part + (size_t)t * (size_t)c;
        memset(p, 0, (size_t)c * sizeof *p);
        for (int64_t r = lo; r < hi; r++)
            for (int j = 0; j < c; j++) p[j] += x[r * c + j];
    }
    for (int t = 0; t < nt; t++)
        for (int j = 0; j < c; j++) acc[j] += part[(size_t)t * (size_t)c + (size_t)j];
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

/* Element-wise when a, b and out all have out's shape; else the reference. */
static int same_shapes(const ams_bcast_desc *d, int64_t *n) {
    int64_t total = 1;
    for (int i = 0; i < d->ndim; i++) {
        if (d->a[i] != d->out[i] || d->b[i] != d->out[i]) return 0;
        total *= d->out[i];
    }
    *n = total;
    return 1;
}

static void add_fwd(const ams_backend *be, float *out, const float *a, const float *b,
                    const ams_bcast_desc *d) {
    int64_t n;
    int nt;
    if (!same_shapes(d, &n) || (nt = nthreads(be, n)) == 1) {
        ams_ref_add_forward(be, out, a, b, d);
        return;
    }
    PARALLEL_THREADS
    for (int t = 0; t < nt; t++) {
        int64_t lo, hi;
        slice(n, t, nt, &lo, &hi);
        add_slice(out + lo, a + lo, b + lo, hi - lo);
    }
}

static void add_bwd(const ams_backend *be, float *da, float *db, const float *dout,
                    const ams_bcast_desc *d) {
    int64_t n;
    int nt;
    if (!same_shapes(d, &n) || (nt = nthreads(be, n)) == 1) {
        ams_ref_add_backward(be, da, db, dout, d);
        return;
    }
    if (da) ams_cpu_add_into(be, da, dout, n);
    if (db) ams_cpu_add_into(be, db, dout, n);
}

/* Bilinear taps, as the reference computes them (TF's rules). */
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

/* Forward by output rows (b, y): every output row is written by one thread. */
static void resize_fwd(const ams_backend *be, float *out, const float *in, int n, int h, int w,
                       int c, int oh, int ow, ams_resize_mode mode) {
    int nt = nthreads(be, (int64_t)n * oh * ow * c);
    if (nt == 1 || h < 1 || w < 1) {
        ams_ref_resize_bilinear_forward(be, out, in, n, h, w, c, oh, ow, mode);
        return;
    }
    float sy = axis_scale(h, oh, mode), sx = axis_scale(w, ow, mode);
    size_t cs = (size_t)c;
    int64_t rows = (int64_t)n * oh;
    PARALLEL_THREADS
    for (int t = 0; t < nt; t++) {
        int64_t lo, hi;
        row_slice(rows, t, nt, &lo, &hi);
        for (int64_t r = lo; r < hi; r++) {
            int b = (int)(r / oh), y = (int)(r % oh);
            const float *img = in + (size_t)b * (size_t)h * (size_t)w * cs;
            tap ty = axis_tap(y, h, sy, mode);
            const float *top = img + (size_t)ty.lo * (size_t)w * cs;
            const float *bot = img + (size_t)ty.hi * (size_t)w * cs;
            float *orow = out + (size_t)r * (size_t)ow * cs;
            for (int x = 0; x < ow; x++, orow += cs) {
                tap tx = axis_tap(x, w, sx, mode);
                const float *tl = top + (size_t)tx.lo * cs, *tr = top + (size_t)tx.hi * cs;
                const float *bl = bot + (size_t)tx.lo * cs, *br = bot + (size_t)tx.hi * cs;
                for (size_t k = 0; k < cs; k++) {
                    float tt = tl[k] + (tr[k] - tl[k]) * tx.frac;
                    float u = bl[k] + (br[k] - bl[k]) * tx.frac;
                    orow[k] = tt + (u - tt) * ty.frac;
                }
            }
        }
    }
}

/* Backward scatters into din: each thread owns a range of images when there are enough,
 * else a range of channels (no two threads ever write the same float). */
static void resize_bwd(const ams_backend *be, float *din, const float *dout, int n, int h, int w,
                       int c, int oh, int ow, ams_resize_mode mode) {
    int nt = nthreads(be, (int64_t)n * oh * ow * c);
    int by_image = n >= nt;
    if (nt == 1 || h < 1 || w < 1 || (!by_image && c < 2 * nt)) {
        ams_ref_resize_bilinear_backward(be, din, dout, n, h, w, c, oh, ow, mode);
        return;
    }
    float sy = axis_scale(h, oh, mode), sx = axis_scale(w, ow, mode);
    size_t cs = (size_t)c;
    PARALLEL_THREADS
    for (int t = 0; t < nt; t++) {
        int64_t b0 = 0, b1 = n, k0 = 0, k1 = c;
        if (by_image) row_slice(n, t, nt, &b0, &b1);
        else row_slice(c, t, nt, &k0, &k1);
        for (int64_t b = b0; b < b1; b++) {
            float *img = din + (size_t)b * (size_t)h * (size_t)w * cs;
            for (int y = 0; y < oh; y++) {
                tap ty = axis_tap(y, h, sy, mode);
                float *top = img + (size_t)ty.lo * (size_t)w * cs;
                float *bot = img + (size_t)ty.hi * (size_t)w * cs;
                const float *drow = dout + ((size_t)b * (size_t)oh + (size_t)y) * (size_t)ow * cs;
                for (int x = 0; x < ow; x++, drow += cs) {
                    tap tx = axis_tap(x, w, sx, mode);
                    float *tl = top + (size_t)tx.lo * cs, *tr = top + (size_t)tx.hi * cs;
                    float *bl = bot + (size_t)tx.lo * cs, *br = bot + (size_t)tx.hi * cs;
                    float wy0 = 1.0f - ty.frac, wy1 = ty.frac;
                    float wx0 = 1.0f - tx.frac, wx1 = tx.frac;
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

/* e^x for x <= 0 (Cephes' expf: range reduction by ln 2, degree-6 polynomial, ~1 ulp),
 * written so that loops over classes vectorise (libm's expf is a call per element). */
static inline float exp_nonpos(float x) {
    x = x < -87.0f ? -87.0f : x;
    float fx = x * 1.44269504088896341f + 0.5f;
    float n = (float)(int)fx;
    n = n > fx ? n - 1.0f : n; /* floor */
    x = x - n * 0.693359375f - n * -2.12194440e-4f;
    float y = 1.9875691500e-4f;
    y = y * x + 1.3981999507e-3f;
    y = y * x + 8.3334519073e-3f;
    y = y * x + 4.1665795894e-2f;
    y = y * x + 1.6666665459e-1f;
    y = y * x + 5.0000001201e-1f;
    y = y * x * x + x + 1.0f;
    union { uint32_t u; float f; } p = {.u = (uint32_t)((int32_t)n + 127) << 23};
    return y * p.f;
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
    be->conv2d_backward = ams_cpu_conv2d_backward;
    be->conv2d_transpose_forward = ams_cpu_conv2d_transpose_forward;
    be->conv2d_transpose_backward = ams_cpu_conv2d_transpose_backward;
    be->batchnorm_forward = bn_fwd;
    be->batchnorm_backward = bn_bwd;
    be->relu_forward = relu_fwd;
    be->relu_backward = relu_bwd;
    be->relu6_forward = relu6_fwd;
    be->relu6_backward = relu6_bwd;
    be->sigmoid_forward = sigmoid_fwd;
    be->sigmoid_backward = sigmoid_bwd;
    be->tanh_forward = tanh_fwd;
    be->tanh_backward = tanh_bwd;
    be->affine_forward = affine_fwd;
    be->affine_backward = affine_bwd;
    be->add_forward = add_fwd;
    be->add_backward = add_bwd;
    be->dropout_forward = dropout_fwd;
    be->dropout_backward = dropout_bwd;
    be->resize_bilinear_forward = resize_fwd;
    be->resize_bilinear_backward = resize_bwd;
}
