/* parallel.c - the CPU backend's element-wise and row-wise kernels: the reference kernels
 * run on disjoint slices by OpenMP threads (one slice per thread), plus the few loops the
 * reference cannot be sliced into (bias gradients, batch-norm sums, resize by rows).
 * Small inputs stay on the calling thread: a parallel region costs a few microseconds.
 */
#include "nn/cpu/cpu_backend.h"
#include "nn/ref/ref_kernels.h"

#include <math.h>
#include <string.h>

#ifdef _OPENMP
#define PARALLEL_THREADS _Pragma("omp parallel for num_threads(nt) schedule(static, 1)")
#else
#define PARALLEL_THREADS
#endif

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
UNARY(relu6_fwd, ams_ref_relu6_forward,
      (const ams_backend *be, float *out, const float *in, int64_t n), (be, out + lo, in + lo, hi - lo))
UNARY(relu6_bwd, ams_ref_relu6_backward,
      (const ams_backend *be, float *din, const float *dout, const float *out, int64_t n),
      (be, din + lo, dout + lo, out + lo, hi - lo))
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

void ams_cpu_add_into(const ams_backend *be, float *dst, const float *src, int64_t n) {
    int nt = nthreads(be, n);
    PARALLEL_THREADS
    for (int t = 0; t < nt; t++) {
        int64_t lo, hi;
        slice(n, t, nt, &lo, &hi);
        for (int64_t i = lo; i < hi; i++) dst[i] += src[i];
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

static void bn_fwd(const ams_backend *be, float *out, const float *in, const float *gamma,
                   const float *beta, const float *mean, const float *var, float eps, int64_t rows,
                   int c) {
    int nt = nthreads(be, rows * c);
    PARALLEL_THREADS
    for (int t = 0; t < nt; t++) {
        int64_t lo, hi;
        row_slice(rows, t, nt, &lo, &hi);
        if (hi > lo)
            ams_ref_batchnorm_forward(be, out + lo * c, in + lo * c, gamma, beta, mean, var, eps,
                                      hi - lo, c);
    }
}

/* din by row slices; dgamma/dbeta by the reference on row slices into zeroed per-thread
 * partials (2c floats each), summed at the end. */
static void bn_bwd(const ams_backend *be, float *din, float *dgamma, float *dbeta, const float *dout,
                   const float *in, const float *gamma, const float *mean, const float *var, float eps,
                   int64_t rows, int c) {
    ams_cpu_state *st = (ams_cpu_state *)be->state;
    int nt = nthreads(be, rows * c);
    int sums = dgamma || dbeta;
    if (nt > 1 && sums && !ams_cpu_part_reserve(st, (size_t)nt * 2 * (size_t)c)) nt = 1;
    if (nt == 1) {
        ams_ref_batchnorm_backward(be, din, dgamma, dbeta, dout, in, gamma, mean, var, eps, rows, c);
        return;
    }
    float *part = st->part;
    PARALLEL_THREADS
    for (int t = 0; t < nt; t++) {
        int64_t lo, hi;
        row_slice(rows, t, nt, &lo, &hi);
        float *pg = part + (size_t)t * 2 * (size_t)c, *pb = pg + c;
        if (sums) memset(pg, 0, 2 * (size_t)c * sizeof *pg);
        if (hi > lo)
            ams_ref_batchnorm_backward(be, din ? din + lo * c : NULL, dgamma ? pg : NULL,
                                       dbeta ? pb : NULL, dout + lo * c, in + lo * c, gamma, mean, var,
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
        for (int64_t i = lo; i < hi; i++) out[i] = a[i] + b[i];
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

void ams_cpu_fill_table(ams_backend *be) {
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
