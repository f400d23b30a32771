/* broadcast.c - the CPU backend's add, mul and div with numpy broadcasting, forward and
 * backward. The shapes are first collapsed: dimensions of extent 1 dropped, neighbours where
 * each operand is either full or broadcast in both merged, so a squeeze-excite product
 * (n,h,w,c) * (n,1,1,c) becomes [n][h*w][c] with b's middle stride 0, a bias (n,h,w,c) +
 * (c) becomes [n*h*w][c]. Rows (all but the last collapsed dimension) are split over
 * threads; the last dimension is a vectorised loop with each operand's stride 1 or 0.
 * Rows of whole vectors (16k floats: a squeeze-excite's channels) go by runs along the
 * second-to-last dimension, where both operands move by fixed strides: no loop set-up per
 * row of 16 floats (that set-up was most of the selfie's mul forward and backward).
 * A gradient of a broadcast operand is a reduction: each thread sums into its own double
 * partial (like the reference, which sums in double; runs of short rows sum 64 rows in
 * float first), the partials are added at the end. A squeeze-excite product's two
 * gradients are summed in one sweep over dout (the same bits as two).
 * More than CPU_BC_DIMS collapsed dimensions, or a reduced operand too big for partials,
 * runs the reference kernel.
 */
#include <string.h>

#include "nn/cpu/cpu_loops.h"
#include "nn/ref/ref_kernels.h"

#define CPU_BC_DIMS 4

/* 16 floats as one value (one zmm with AVX-512); aligned(4): unaligned loads and stores. */
typedef float v16 __attribute__((vector_size(64), aligned(4)));
/* Reductions over runs of short rows: float sums of this many rows, then double. */
#define RUN_SUM_ROWS 64
#define RUN_SUM_COLS 256
/* Largest reduced operand (elements) summed through per-thread double partials. */
#define MAX_PARTIAL ((int64_t)1 << 20)

/* Collapsed shape: extents and each operand's element strides (0 = broadcast). */
typedef struct bshape {
    int nd;
    int64_t e[CPU_BC_DIMS];
    int64_t sa[CPU_BC_DIMS], sb[CPU_BC_DIMS];
    int64_t rows, inner;
    int64_t na, nb; /* elements of a and b */
} bshape;

static int collapse(const ams_bcast_desc *d, bshape *s) {
    int fa[8], fb[8], nd = 0;
    int64_t e[8];
    for (int k = 0; k < d->ndim; k++) {
        if (d->out[k] == 1) continue;
        int a = d->a[k] == d->out[k], b = d->b[k] == d->out[k];
        if (nd > 0 && fa[nd - 1] == a && fb[nd - 1] == b) {
            e[nd - 1] *= d->out[k];
        } else {
            fa[nd] = a, fb[nd] = b, e[nd] = d->out[k];
            nd++;
        }
    }
    if (nd == 0) fa[0] = fb[0] = 1, e[0] = 1, nd = 1;
    if (nd > CPU_BC_DIMS) return 0;
    s->nd = nd;
    int64_t acc_a = 1, acc_b = 1;
    for (int k = nd - 1; k >= 0; k--) {
        s->e[k] = e[k];
        s->sa[k] = fa[k] ? acc_a : 0;
        s->sb[k] = fb[k] ? acc_b : 0;
        if (fa[k]) acc_a *= e[k];
        if (fb[k]) acc_b *= e[k];
    }
    s->na = acc_a, s->nb = acc_b;
    s->inner = e[nd - 1];
    s->rows = 1;
    for (int k = 0; k < nd - 1; k++) s->rows *= e[k];
    return 1;
}

/* Offsets of a and b at the start of row r, and the row odometer. */
typedef struct rowpos {
    int64_t idx[CPU_BC_DIMS];
    int64_t oa, ob;
} rowpos;

static void row_start(const bshape *s, int64_t r, rowpos *p) {
    p->oa = p->ob = 0;
    for (int k = s->nd - 2; k >= 0; k--) {
        p->idx[k] = r % s->e[k];
        r /= s->e[k];
        p->oa += p->idx[k] * s->sa[k];
        p->ob += p->idx[k] * s->sb[k];
    }
}

static void row_next(const bshape *s, rowpos *p) {
    for (int k = s->nd - 2; k >= 0; k--) {
        p->idx[k]++;
        p->oa += s->sa[k], p->ob += s->sb[k];
        if (p->idx[k] < s->e[k]) return;
        p->oa -= s->sa[k] * s->e[k], p->ob -= s->sb[k] * s->e[k];
        p->idx[k] = 0;
    }
}

/* Rows from r (at p) to r1 that stay inside one run along the second-to-last dimension
 * (a and b move by constant strides from row to row there). */
static int64_t run_len(const bshape *s, const rowpos *p, int64_t r, int64_t r1) {
    int64_t left = s->e[s->nd - 2] - p->idx[s->nd - 2];
    return r1 - r < left ? r1 - r : left;
}

/* The odometer moved on by a run of m rows (run_len). */
static void run_next(const bshape *s, rowpos *p, int64_t m) {
    int k = s->nd - 2;
    p->idx[k] += m - 1;
    p->oa += (m - 1) * s->sa[k], p->ob += (m - 1) * s->sb[k];
    row_next(s, p);
}

enum { OP_ADD, OP_MUL, OP_DIV, OP_MULADD /* out = a * b + c, c (out's shape) in cc */ };
/* gradient terms: d(a op b)/d(a or b) times g */
enum { T_ONE, T_TIMES_B, T_TIMES_A, T_OVER_B, T_DIV_B };

static inline __attribute__((always_inline)) float fwd_op(int op, float a, float b) {
    return op == OP_ADD ? a + b : op == OP_MUL ? a * b : a / b;
}

static inline __attribute__((always_inline)) float term(int t, float g, float a, float b) {
    switch (t) {
    case T_ONE: return g;
    case T_TIMES_B: return g * b;
    case T_TIMES_A: return g * a;
    case T_OVER_B: return (float)((double)g / (double)b);
    default: return (float)(-(double)g * (double)a / ((double)b * (double)b));
    }
}

/* term in double, for the reduced gradients (the reference's products are double too) */
static inline __attribute__((always_inline)) double term_d(int t, float g, float a, float b) {
    switch (t) {
    case T_ONE: return (double)g;
    case T_TIMES_B: return (double)g * (double)b;
    case T_TIMES_A: return (double)g * (double)a;
    case T_OVER_B: return (double)g / (double)b;
    default: return -(double)g * (double)a / ((double)b * (double)b);
    }
}

/* One row: out[j] = a[j*sa] op b[j*sb], sa, sb in {0, 1}; the four stride cases apart so
 * that each vectorises. */
static inline __attribute__((always_inline)) void fwd_row(int op, float *out, const float *a,
                                                          const float *b, const float *c,
                                                          int64_t n, int sa, int sb) {
    if (op == OP_MULADD) { /* out = a * b + c, c full along the row */
        if (sa && sb)
            for (int64_t j = 0; j < n; j++) out[j] = a[j] * b[j] + c[j];
        else if (sa)
            for (int64_t j = 0; j < n; j++) out[j] = a[j] * b[0] + c[j];
        else if (sb)
            for (int64_t j = 0; j < n; j++) out[j] = a[0] * b[j] + c[j];
        else
            for (int64_t j = 0; j < n; j++) out[j] = a[0] * b[0] + c[j];
        return;
    }
    if (sa && sb) {
        for (int64_t j = 0; j < n; j++) out[j] = fwd_op(op, a[j], b[j]);
    } else if (sa) {
        const float bv = b[0];
        for (int64_t j = 0; j < n; j++) out[j] = fwd_op(op, a[j], bv);
    } else if (sb) {
        const float av = a[0];
        for (int64_t j = 0; j < n; j++) out[j] = fwd_op(op, av, b[j]);
    } else {
        const float v = fwd_op(op, a[0], b[0]);
        for (int64_t j = 0; j < n; j++) out[j] = v;
    }
}

/* dx[j] += term(g[j], a[j*sa], b[j*sb]) (x full along the row); with SET, dx[j] = term. */
#define ACC(SET, d, v) ((SET) ? ((d) = (v)) : ((d) += (v)))
static inline __attribute__((always_inline)) void acc_row(int t, int set, float *dx, const float *g,
                                                          const float *a, const float *b,
                                                          int64_t n, int sa, int sb) {
    if (sa && sb) {
        for (int64_t j = 0; j < n; j++) ACC(set, dx[j], term(t, g[j], a[j], b[j]));
    } else if (sa) {
        const float bv = b[0];
        for (int64_t j = 0; j < n; j++) ACC(set, dx[j], term(t, g[j], a[j], bv));
    } else if (sb) {
        const float av = a[0];
        for (int64_t j = 0; j < n; j++) ACC(set, dx[j], term(t, g[j], av, b[j]));
    } else {
        for (int64_t j = 0; j < n; j++) ACC(set, dx[j], term(t, g[j], a[0], b[0]));
    }
}

/* acc_row with t and set as constants in each instance (so that each loop vectorises). */
static inline __attribute__((always_inline)) void acc_row_any(int t, int set, float *dx,
                                                              const float *g, const float *a,
                                                              const float *b, int64_t n, int sa,
                                                              int sb) {
#define ACC_T(T)                                                 \
    case T:                                                      \
        if (set) acc_row(T, 1, dx, g, a, b, n, sa, sb);          \
        else acc_row(T, 0, dx, g, a, b, n, sa, sb);              \
        break;
    switch (t) {
        ACC_T(T_ONE)
        ACC_T(T_TIMES_B)
        ACC_T(T_TIMES_A)
        ACC_T(T_OVER_B)
        ACC_T(T_DIV_B)
    }
#undef ACC_T
}

/* p[j] += term(...) in double (x full along the row, broadcast elsewhere). */
static inline __attribute__((always_inline)) void part_row(int t, double *p, const float *g,
                                                           const float *a, const float *b,
                                                           int64_t n, int sa, int sb) {
    if (sa && sb) {
        for (int64_t j = 0; j < n; j++) p[j] += term_d(t, g[j], a[j], b[j]);
    } else if (sa) {
        const float bv = b[0];
        for (int64_t j = 0; j < n; j++) p[j] += term_d(t, g[j], a[j], bv);
    } else if (sb) {
        const float av = a[0];
        for (int64_t j = 0; j < n; j++) p[j] += term_d(t, g[j], av, b[j]);
    } else {
        for (int64_t j = 0; j < n; j++) p[j] += term_d(t, g[j], a[0], b[0]);
    }
}

/* The sum of term(...) over a row (x broadcast along it), 8 double accumulators. */
static inline __attribute__((always_inline)) double sum_row(int t, const float *g, const float *a,
                                                            const float *b, int64_t n, int sa,
                                                            int sb) {
    double s8[8] = {0};
    int64_t j = 0;
    for (; j + 8 <= n; j += 8)
        for (int k = 0; k < 8; k++)
            s8[k] += term_d(t, g[j + k], a[(j + k) * sa], b[(j + k) * sb]);
    double s = 0;
    for (; j < n; j++) s += term_d(t, g[j], a[j * sa], b[j * sb]);
    for (int k = 0; k < 8; k++) s += s8[k];
    return s;
}

/* Forward rows [r0, r1) (or, with one dimension, elements [r0, r1)). */
CPU_MULTIVERSION static void fwd_rows(int op, const bshape *s, float *out, const float *a,
                                      const float *b, const float *cc, int64_t r0, int64_t r1) {
    int sa = s->sa[s->nd - 1] != 0, sb = s->sb[s->nd - 1] != 0;
    if (s->nd == 1) {
        fwd_row(op, out + r0, a + r0 * sa, b + r0 * sb, cc ? cc + r0 : NULL, r1 - r0, sa, sb);
        return;
    }
    rowpos p;
    row_start(s, r0, &p);
    const int64_t n = s->inner, ia = s->sa[s->nd - 2], ib = s->sb[s->nd - 2];
    for (int64_t r = r0, m; r < r1; r += m, run_next(s, &p, m)) {
        m = run_len(s, &p, r, r1);
        float *o = out + r * n;
        const float *pa = a + p.oa, *pb = b + p.ob, *pc = cc ? cc + r * n : NULL;
        if (sa && sb && n % 16 == 0) { /* short rows (a squeeze-excite's channels): whole
                                        * vectors, no loop set-up per row */
            if (op == OP_MULADD)
                for (int64_t q = 0; q < m; q++, o += n, pa += ia, pb += ib, pc += n)
                    for (int64_t j = 0; j < n; j += 16) {
                        v16 x = *(const v16 *)(pa + j), y = *(const v16 *)(pb + j);
                        *(v16 *)(o + j) = x * y + *(const v16 *)(pc + j);
                    }
            else
                for (int64_t q = 0; q < m; q++, o += n, pa += ia, pb += ib)
                    for (int64_t j = 0; j < n; j += 16) {
                        v16 x = *(const v16 *)(pa + j), y = *(const v16 *)(pb + j);
                        *(v16 *)(o + j) = op == OP_ADD ? x + y : op == OP_MUL ? x * y : x / y;
                    }
            continue;
        }
        for (int64_t q = 0; q < m; q++, o += n, pa += ia, pb += ib) {
            if (op == OP_ADD) fwd_row(OP_ADD, o, pa, pb, NULL, n, sa, sb);
            else if (op == OP_MUL) fwd_row(OP_MUL, o, pa, pb, NULL, n, sa, sb);
            else if (op == OP_MULADD) fwd_row(OP_MULADD, o, pa, pb, pc, n, sa, sb), pc += n;
            else fwd_row(OP_DIV, o, pa, pb, NULL, n, sa, sb);
        }
    }
}

/* The gradient of operand x (xb: 0 = a, 1 = b) over rows [r0, r1): into dx when x is full
 * (part NULL), else into the double partial part (x's elements). */
CPU_MULTIVERSION static void bwd_rows(int t, int set, int xb, const bshape *s, float *dx,
                                      double *part, const float *g, const float *a, const float *b,
                                      int64_t r0, int64_t r1) {
    int sa = s->sa[s->nd - 1] != 0, sb = s->sb[s->nd - 1] != 0;
    const int64_t *sx = xb ? s->sb : s->sa;
    int xin = sx[s->nd - 1] != 0; /* x full along the row */
    if (s->nd == 1) { /* an element slice: x full, or a scalar summed into part[0] */
        g += r0, a += r0 * sa, b += r0 * sb;
        int64_t n = r1 - r0;
        if (part) {
            switch (t) {
            case T_ONE: part[0] += sum_row(T_ONE, g, a, b, n, sa, sb); break;
            case T_TIMES_B: part[0] += sum_row(T_TIMES_B, g, a, b, n, sa, sb); break;
            case T_TIMES_A: part[0] += sum_row(T_TIMES_A, g, a, b, n, sa, sb); break;
            case T_OVER_B: part[0] += sum_row(T_OVER_B, g, a, b, n, sa, sb); break;
            default: part[0] += sum_row(T_DIV_B, g, a, b, n, sa, sb); break;
            }
            return;
        }
        acc_row_any(t, set, dx + r0, g, a, b, n, sa, sb);
        return;
    }
    rowpos p;
    row_start(s, r0, &p);
    const int64_t n = s->inner, ia = s->sa[s->nd - 2], ib = s->sb[s->nd - 2], ix = sx[s->nd - 2];
    /* short rows (a squeeze-excite's channels) as whole vectors, runs of rows at a time:
     * into a full x, or summed into a reduced x whose row stays put through a run */
    const int vec = sa && sb && n % 16 == 0 && (t == T_ONE || t == T_TIMES_B || t == T_TIMES_A) &&
                    (!part || (ix == 0 && n <= RUN_SUM_COLS));
    for (int64_t r = r0, m; vec && r < r1; r += m, run_next(s, &p, m)) {
        m = run_len(s, &p, r, r1);
        const float *gr = g + r * n, *pa = a + p.oa, *pb = b + p.ob;
        int64_t ox = xb ? p.ob : p.oa;
        if (!part) {
            float *d = dx + ox;
            for (int64_t q = 0; q < m; q++, gr += n, pa += ia, pb += ib, d += ix)
                for (int64_t j = 0; j < n; j += 16) {
                    v16 v = *(const v16 *)(gr + j);
                    if (t == T_TIMES_B) v *= *(const v16 *)(pb + j);
                    if (t == T_TIMES_A) v *= *(const v16 *)(pa + j);
                    *(v16 *)(d + j) = set ? v : *(const v16 *)(d + j) + v;
                }
        } else { /* float sums over blocks of RUN_SUM_ROWS rows, each added in double */
            float acc[RUN_SUM_COLS] __attribute__((aligned(64)));
            for (int64_t q0 = 0; q0 < m; q0 += RUN_SUM_ROWS) {
                int64_t q1 = q0 + RUN_SUM_ROWS < m ? q0 + RUN_SUM_ROWS : m;
                memset(acc, 0, (size_t)n * sizeof *acc);
                for (int64_t q = q0; q < q1; q++)
                    for (int64_t j = 0; j < n; j += 16) {
                        v16 v = *(const v16 *)(gr + q * n + j);
                        if (t == T_TIMES_B) v *= *(const v16 *)(pb + q * ib + j);
                        if (t == T_TIMES_A) v *= *(const v16 *)(pa + q * ia + j);
                        *(v16 *)(acc + j) += v;
                    }
                for (int64_t j = 0; j < n; j++) part[ox + j] += (double)acc[j];
            }
        }
    }
    if (vec) return;
    for (int64_t r = r0; r < r1; r++, row_next(s, &p)) {
        const float *gr = g + r * n, *pa = a + p.oa, *pb = b + p.ob;
        int64_t ox = xb ? p.ob : p.oa;
        if (!part) {
            acc_row_any(t, set, dx + ox, gr, pa, pb, n, sa, sb);
        } else if (xin) {
            double *q = part + ox;
            switch (t) {
            case T_ONE: part_row(T_ONE, q, gr, pa, pb, n, sa, sb); break;
            case T_TIMES_B: part_row(T_TIMES_B, q, gr, pa, pb, n, sa, sb); break;
            case T_TIMES_A: part_row(T_TIMES_A, q, gr, pa, pb, n, sa, sb); break;
            case T_OVER_B: part_row(T_OVER_B, q, gr, pa, pb, n, sa, sb); break;
            default: part_row(T_DIV_B, q, gr, pa, pb, n, sa, sb); break;
            }
        } else {
            double v;
            switch (t) {
            case T_ONE: v = sum_row(T_ONE, gr, pa, pb, n, sa, sb); break;
            case T_TIMES_B: v = sum_row(T_TIMES_B, gr, pa, pb, n, sa, sb); break;
            case T_TIMES_A: v = sum_row(T_TIMES_A, gr, pa, pb, n, sa, sb); break;
            case T_OVER_B: v = sum_row(T_OVER_B, gr, pa, pb, n, sa, sb); break;
            default: v = sum_row(T_DIV_B, gr, pa, pb, n, sa, sb); break;
            }
            part[ox] += v;
        }
    }
}

/* Units the work is split into: rows, or elements when there is one dimension. */
static int64_t units(const bshape *s) { return s->nd == 1 ? s->inner : s->rows; }

static void split(const bshape *s, int t, int nt, int64_t *lo, int64_t *hi) {
    if (s->nd == 1) cpu_split16(s->inner, t, nt, lo, hi);
    else cpu_split(s->rows, t, nt, lo, hi);
}

static void bc_forward(int op, const ams_backend *be, float *out, const float *a, const float *b,
                       const float *c, const bshape *s) {
    int64_t n = s->rows * s->inner;
    int nt = cpu_threads_for(be, n);
    if (nt > units(s)) nt = (int)units(s);
    CPU_PARALLEL_FOR
    for (int t = 0; t < nt; t++) {
        int64_t lo, hi;
        split(s, t, nt, &lo, &hi);
        if (hi > lo) fwd_rows(op, s, out, a, b, c, lo, hi);
    }
}

/* dx (= or +=, set) the sum of nt per-thread double partials of nx elements each. */
static void fold_partials(const double *part, int nt, int64_t nx, float *dx, int set) {
    for (int64_t j = 0; j < nx; j++) {
        double v = 0;
        for (int k = 0; k < nt; k++) v += part[(size_t)k * (size_t)nx + (size_t)j];
        dx[j] = set ? (float)v : dx[j] + (float)v;
    }
}

/* dx += the gradient of operand xb with term t; 0 when the partials do not fit. */
static int bc_grad(const ams_backend *be, int t, int set, int xb, const bshape *s, float *dx,
                   const float *g, const float *a, const float *b) {
    ams_cpu_state *st = (ams_cpu_state *)be->state;
    int64_t n = s->rows * s->inner, nx = xb ? s->nb : s->na;
    int nt = cpu_threads_for(be, n);
    if (nt > units(s)) nt = (int)units(s);
    if (nx == n) { /* x full: every dx element is one output element's */
        CPU_PARALLEL_FOR
        for (int k = 0; k < nt; k++) {
            int64_t lo, hi;
            split(s, k, nt, &lo, &hi);
            if (hi > lo) bwd_rows(t, set, xb, s, dx, NULL, g, a, b, lo, hi);
        }
        return 1;
    }
    if (nx > MAX_PARTIAL || !ams_cpu_part_reserve(st, (size_t)nt * (size_t)nx * 2)) return 0;
    double *part = (double *)(void *)st->part;
    CPU_PARALLEL_FOR
    for (int k = 0; k < nt; k++) {
        int64_t lo, hi;
        split(s, k, nt, &lo, &hi);
        double *p = part + (size_t)k * (size_t)nx;
        memset(p, 0, (size_t)nx * sizeof *p);
        if (hi > lo) bwd_rows(t, 0, xb, s, NULL, p, g, a, b, lo, hi);
    }
    fold_partials(part, nt, nx, dx, set);
    return 1;
}

/* Rows [r0, r1) of a product's two gradients at once, operand f full (b when fb) and r
 * constant through each run of rows: df (=|+=) g * r, and part (r's partial, double) += the
 * sum of g * f, 64 rows in float first: bwd_rows' two sweeps in one (the same operations on
 * each element, so the same bits), g read once. */
CPU_MULTIVERSION static void both_rows(const bshape *s, int fb, int set_f, float *df, double *part,
                                       const float *g, const float *a, const float *b,
                                       int64_t r0, int64_t r1) {
    rowpos p;
    row_start(s, r0, &p);
    const int64_t n = s->inner, is_f = fb ? s->sb[s->nd - 2] : s->sa[s->nd - 2];
    float acc[RUN_SUM_COLS] __attribute__((aligned(64)));
    for (int64_t r = r0, m; r < r1; r += m, run_next(s, &p, m)) {
        m = run_len(s, &p, r, r1);
        const float *gr = g + r * n, *pf = fb ? b + p.ob : a + p.oa, *pr = fb ? a + p.oa : b + p.ob;
        float *d = df + (fb ? p.ob : p.oa);
        double *q_r = part + (fb ? p.oa : p.ob);
        for (int64_t q0 = 0; q0 < m; q0 += RUN_SUM_ROWS) {
            int64_t q1 = q0 + RUN_SUM_ROWS < m ? q0 + RUN_SUM_ROWS : m;
            memset(acc, 0, (size_t)n * sizeof *acc);
            for (int64_t q = q0; q < q1; q++)
                for (int64_t j = 0; j < n; j += 16) {
                    v16 gv = *(const v16 *)(gr + q * n + j), v = gv, w = gv;
                    v *= *(const v16 *)(pr + j);
                    float *dp = d + q * is_f + j;
                    *(v16 *)dp = set_f ? v : *(const v16 *)dp + v;
                    w *= *(const v16 *)(pf + q * is_f + j);
                    *(v16 *)(acc + j) += w;
                }
            for (int64_t j = 0; j < n; j++) q_r[j] += (double)acc[j];
        }
    }
}

/* A product's two gradients in one sweep over dout when one operand is full and the other
 * constant along the second-to-last dimension in whole vectors (a squeeze-excite's
 * (n,h,w,c) * (n,1,1,c)): da and db as bc_grad's two passes give them, bit for bit, dout
 * read once instead of twice. 0 (nothing written) for other shapes, or when the partials do
 * not fit. */
static int mul_grads_one_sweep(const ams_backend *be, const bshape *s, float *da, int set_a,
                               float *db, int set_b, const float *g, const float *a,
                               const float *b) {
    ams_cpu_state *st = (ams_cpu_state *)be->state;
    const int64_t n = s->rows * s->inner;
    if (s->nd < 2 || s->inner % 16 || s->inner > RUN_SUM_COLS || !s->sa[s->nd - 1] ||
        !s->sb[s->nd - 1] || (s->na == n) == (s->nb == n))
        return 0;
    const int fb = s->nb == n; /* b full, a constant through runs */
    const int64_t nr = fb ? s->na : s->nb;
    if ((fb ? s->sa : s->sb)[s->nd - 2] != 0 || nr > MAX_PARTIAL) return 0;
    int nt = cpu_threads_for(be, n); /* as bc_grad: the same slices, the same sums */
    if (nt > units(s)) nt = (int)units(s);
    if (!ams_cpu_part_reserve(st, (size_t)nt * (size_t)nr * 2)) return 0;
    double *part = (double *)(void *)st->part;
    float *df = fb ? db : da, *dr = fb ? da : db;
    int set_f = fb ? set_b : set_a, set_r = fb ? set_a : set_b;
    CPU_PARALLEL_FOR
    for (int k = 0; k < nt; k++) {
        int64_t lo, hi;
        split(s, k, nt, &lo, &hi);
        double *p = part + (size_t)k * (size_t)nr;
        memset(p, 0, (size_t)nr * sizeof *p);
        if (hi > lo) both_rows(s, fb, set_f, df, p, g, a, b, lo, hi);
    }
    fold_partials(part, nt, nr, dr, set_r);
    return 1;
}

static void add_fwd(const ams_backend *be, float *out, const float *a, const float *b,
                    const ams_bcast_desc *d) {
    bshape s;
    if (!collapse(d, &s)) ams_ref_add_forward(be, out, a, b, d);
    else bc_forward(OP_ADD, be, out, a, b, NULL, &s);
}

static void mul_fwd(const ams_backend *be, float *out, const float *a, const float *b,
                    const ams_bcast_desc *d) {
    bshape s;
    if (!collapse(d, &s)) ams_ref_mul_forward(be, out, a, b, d);
    else bc_forward(OP_MUL, be, out, a, b, NULL, &s);
}

static void div_fwd(const ams_backend *be, float *out, const float *a, const float *b,
                    const ams_bcast_desc *d) {
    bshape s;
    if (!collapse(d, &s)) ams_ref_div_forward(be, out, a, b, d);
    else bc_forward(OP_DIV, be, out, a, b, NULL, &s);
}

/* A reference gradient of one operand, overwriting it when set (zeroed first). */
static void zero_if(int set, float *dx, const ams_bcast_desc *d, int xb) {
    if (!set) return;
    int64_t n = 1;
    for (int k = 0; k < d->ndim; k++) n *= xb ? d->b[k] : d->a[k];
    memset(dx, 0, (size_t)n * sizeof *dx);
}

/* An add's gradient reads neither operand: dout stands in for both (any offset of a or b
 * is inside it). da is done before db (x + x: da and db are one buffer, set_a only). */
static void add_bwd_set(const ams_backend *be, float *da, float *db, const float *dout,
                        const ams_bcast_desc *d, int set_a, int set_b) {
    bshape s;
    int ok = collapse(d, &s);
    if (da && !(ok && bc_grad(be, T_ONE, set_a, 0, &s, da, dout, dout, dout))) {
        zero_if(set_a, da, d, 0);
        ams_ref_add_backward(be, da, NULL, dout, d);
    }
    if (db && !(ok && bc_grad(be, T_ONE, set_b, 1, &s, db, dout, dout, dout))) {
        zero_if(set_b, db, d, 1);
        ams_ref_add_backward(be, NULL, db, dout, d);
    }
}

static void add_bwd(const ams_backend *be, float *da, float *db, const float *dout,
                    const ams_bcast_desc *d) {
    add_bwd_set(be, da, db, dout, d, 0, 0);
}

static void mul_bwd_set(const ams_backend *be, float *da, float *db, const float *dout,
                        const float *a, const float *b, const ams_bcast_desc *d, int set_a,
                        int set_b) {
    bshape s;
    int ok = collapse(d, &s);
    if (da && db && ok && mul_grads_one_sweep(be, &s, da, set_a, db, set_b, dout, a, b)) return;
    if (da && !(ok && bc_grad(be, T_TIMES_B, set_a, 0, &s, da, dout, a, b))) {
        zero_if(set_a, da, d, 0);
        ams_ref_mul_backward(be, da, NULL, dout, a, b, d);
    }
    if (db && !(ok && bc_grad(be, T_TIMES_A, set_b, 1, &s, db, dout, a, b))) {
        zero_if(set_b, db, d, 1);
        ams_ref_mul_backward(be, NULL, db, dout, a, b, d);
    }
}

static void mul_bwd(const ams_backend *be, float *da, float *db, const float *dout,
                    const float *a, const float *b, const ams_bcast_desc *d) {
    mul_bwd_set(be, da, db, dout, a, b, d, 0, 0);
}

static void div_bwd(const ams_backend *be, float *da, float *db, const float *dout,
                    const float *a, const float *b, const ams_bcast_desc *d) {
    bshape s;
    int ok = collapse(d, &s);
    if (da && !(ok && bc_grad(be, T_OVER_B, 0, 0, &s, da, dout, a, b)))
        ams_ref_div_backward(be, da, NULL, dout, a, b, d);
    if (db && !(ok && bc_grad(be, T_DIV_B, 0, 1, &s, db, dout, a, b)))
        ams_ref_div_backward(be, NULL, db, dout, a, b, d);
}

/* The product's value plus c (out's shape), in one pass. */
static void mul_add_fwd(const ams_backend *be, float *out, const float *a, const float *b,
                        const float *c, const ams_bcast_desc *d) {
    bshape s;
    if (collapse(d, &s)) {
        bc_forward(OP_MULADD, be, out, a, b, c, &s);
        return;
    }
    ams_ref_mul_forward(be, out, a, b, d);
    int64_t n = 1;
    for (int k = 0; k < d->ndim; k++) n *= d->out[k];
    for (int64_t i = 0; i < n; i++) out[i] += c[i];
}
void ams_cpu_fill_broadcast(ams_backend *be) {
    be->mul_add_forward = mul_add_fwd;
    be->add_forward = add_fwd;
    be->add_backward = add_bwd;
    be->mul_forward = mul_fwd;
    be->mul_backward = mul_bwd;
    be->add_backward_set = add_bwd_set;
    be->mul_backward_set = mul_bwd_set;
    be->div_forward = div_fwd;
    be->div_backward = div_bwd;
}
