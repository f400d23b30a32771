/* test_ref_elementwise.c - the reference element-wise kernels: relu, relu6, sigmoid, tanh,
 * affine, dropout, broadcasting add/mul and concat. Forward values against hand-computed
 * cases and independent index arithmetic; every gradient against central differences of
 * L = <w, forward(x)> (w random), with the gradient buffer pre-filled so that the check
 * also proves accumulation (+=); NULL gradients are skipped without touching the others. */
#include <float.h>
#include <math.h>

#include "kernel_testlib.h"
#include "nn/ref/ref_kernels.h"

/* the seeds are fixed; AMS_TEST_SEED=N varies them all (to hunt for a flaky tolerance) */
#define SEED (0x5eedULL ^ seed_env())

static uint64_t seed_env(void) {
    const char *s = getenv("AMS_TEST_SEED");
    return s ? strtoull(s, NULL, 0) : 0;
}

/* ---------- unary activations ---------- */

typedef void (*unary_fwd)(const ams_backend *, float *, const float *, int64_t);
typedef void (*unary_bwd)(const ams_backend *, float *, const float *, const float *, int64_t);

typedef struct {
    unary_fwd fwd;
    const float *x;
    const float *w;
    float *out;
    int64_t n;
} unary_ctx;

static double unary_loss(void *p) {
    unary_ctx *c = p;
    c->fwd(NULL, c->out, c->x, c->n);
    return kt_dot(c->w, c->out, (size_t)c->n);
}

/* random points in [lo, hi) that keep a distance of at least gap from every kink */
static void fill_away(ams_rng *r, float *x, size_t n, float lo, float hi, const float *kinks,
                      int nk, float gap) {
    for (size_t i = 0; i < n; i++) {
        int ok;
        do {
            x[i] = lo + (hi - lo) * ams_rng_uniform(r);
            ok = 1;
            for (int k = 0; k < nk; k++)
                if (fabsf(x[i] - kinks[k]) < gap) ok = 0;
        } while (!ok);
    }
}

/* analytic gradient = (din after backward) - (din before): checks += as well */
static int unary_gradcheck(const char *name, unary_fwd fwd, unary_bwd bwd, float lo, float hi,
                           const float *kinks, int nk, double tol) {
    ams_rng r;
    ams_rng_seed(&r, SEED);
    for (int trial = 0; trial < 4; trial++) {
        int64_t n = kt_randint(&r, 1, 67);
        float *x = kt_alloc((size_t)n), *w = kt_alloc((size_t)n), *out = kt_alloc((size_t)n);
        float *din = kt_alloc((size_t)n), *base = kt_alloc((size_t)n), *g = kt_alloc((size_t)n);
        fill_away(&r, x, (size_t)n, lo, hi, kinks, nk, 0.05f);
        kt_fill(&r, w, (size_t)n, -1, 1);
        kt_fill(&r, base, (size_t)n, -2, 2);
        memcpy(din, base, (size_t)n * sizeof *din);
        fwd(NULL, out, x, n);
        bwd(NULL, din, w, out, n);
        for (int64_t i = 0; i < n; i++) g[i] = din[i] - base[i];
        unary_ctx c = {fwd, x, w, out, n};
        int bad = kt_gradcheck(name, unary_loss, &c, x, g, (size_t)n, 1e-3f, tol, &r);
        free(x), free(w), free(out), free(din), free(base), free(g);
        CHECK(bad == 0);
    }
    return 0;
}

static int test_relu_grad(void) {
    const float kinks[] = {0};
    return unary_gradcheck("relu", ams_ref_relu_forward, ams_ref_relu_backward, -3, 3, kinks, 1,
                           2e-4);
}
static int test_relu6_grad(void) {
    const float kinks[] = {0, 6};
    return unary_gradcheck("relu6", ams_ref_relu6_forward, ams_ref_relu6_backward, -3, 9, kinks,
                           2, 2e-4);
}
static int test_sigmoid_grad(void) {
    return unary_gradcheck("sigmoid", ams_ref_sigmoid_forward, ams_ref_sigmoid_backward, -6, 6,
                           NULL, 0, 2e-4);
}
static int test_tanh_grad(void) {
    return unary_gradcheck("tanh", ams_ref_tanh_forward, ams_ref_tanh_backward, -3, 3, NULL, 0,
                           2e-4);
}

static int test_relu_values(void) {
    const float in[] = {-2.0f, -0.5f, 0.0f, 0.5f, 3.0f, 6.0f, 7.5f, -FLT_MAX, FLT_MAX};
    const float relu[] = {0, 0, 0, 0.5f, 3, 6, 7.5f, 0, FLT_MAX};
    const float relu6[] = {0, 0, 0, 0.5f, 3, 6, 6, 0, 6};
    float out[9];
    ams_ref_relu_forward(NULL, out, in, 9);
    CHECK(check_max_abs_diff(out, relu, 9) == 0);
    ams_ref_relu6_forward(NULL, out, in, 9);
    CHECK(check_max_abs_diff(out, relu6, 9) == 0);
    /* NaN is not hidden as 0 (PyTorch propagates it too) */
    float nan_in = NAN, nan_out = 0;
    ams_ref_relu_forward(NULL, &nan_out, &nan_in, 1);
    CHECK(isnan(nan_out));
    ams_ref_relu6_forward(NULL, &nan_out, &nan_in, 1);
    CHECK(isnan(nan_out));
    /* backward: gradient only where the output is strictly inside the linear range */
    const float outs[] = {0, 0.5f, 6, 3};
    const float dout[] = {1, 2, 3, 4};
    float din[4] = {10, 10, 10, 10};
    ams_ref_relu6_backward(NULL, din, dout, outs, 4);
    const float want6[] = {10, 12, 10, 14};
    CHECK(check_max_abs_diff(din, want6, 4) == 0);
    float din2[4] = {0};
    ams_ref_relu_backward(NULL, din2, dout, outs, 4);
    const float want[] = {0, 2, 3, 4};
    CHECK(check_max_abs_diff(din2, want, 4) == 0);
    return 0;
}

static int test_sigmoid_tanh_values(void) {
    const float in[] = {-1e4f, -100, -88, -30, -5, -1e-3f, 0, 1e-3f, 5, 30, 88, 100, 1e4f};
    enum { N = sizeof in / sizeof in[0] };
    float s[N], t[N];
    ams_ref_sigmoid_forward(NULL, s, in, N);
    ams_ref_tanh_forward(NULL, t, in, N);
    for (int i = 0; i < N; i++) {
        double x = in[i];
        double ref = x >= 0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x));
        CHECKF(isfinite(s[i]) && s[i] >= 0 && s[i] <= 1, "sigmoid(%g) = %g", x, (double)s[i]);
        /* relative 1e-6; sigmoid(-100) = 3.7e-44 is a float denormal, exact to 0.5 ulp
         * (7e-46) only when computed without exp(+100), which overflows to 0 */
        CHECKF(fabs(s[i] - ref) <= 1e-6 * ref + 1e-45, "sigmoid(%g) = %.9g, want %.9g", x,
               (double)s[i], ref);
        CHECKF(fabs(t[i] - tanh(x)) <= 2e-7, "tanh(%g) = %.9g, want %.9g", x, (double)t[i],
               tanh(x));
    }
    CHECK(s[6] == 0.5f && t[6] == 0.0f);
    return 0;
}

static int test_affine(void) {
    const float in[] = {1, -2, 0.5f, 4};
    float out[4];
    ams_ref_affine_forward(NULL, out, in, 2.0f, -1.0f, 4);
    const float want[] = {1, -5, 0, 7};
    CHECK(check_max_abs_diff(out, want, 4) == 0);
    /* gradient: FD with random a, b */
    ams_rng r;
    ams_rng_seed(&r, SEED + 1);
    for (int trial = 0; trial < 3; trial++) {
        int64_t n = kt_randint(&r, 1, 41);
        float a = -3 + 6 * ams_rng_uniform(&r), b = -3 + 6 * ams_rng_uniform(&r);
        float *x = kt_alloc((size_t)n), *w = kt_alloc((size_t)n), *y = kt_alloc((size_t)n);
        float *din = kt_alloc((size_t)n), *base = kt_alloc((size_t)n);
        kt_fill(&r, x, (size_t)n, -2, 2);
        kt_fill(&r, w, (size_t)n, -1, 1);
        kt_fill(&r, base, (size_t)n, -1, 1);
        memcpy(din, base, (size_t)n * sizeof *din);
        ams_ref_affine_backward(NULL, din, w, a, n);
        int bad = 0;
        for (int64_t i = 0; i < n && !bad; i++) {
            float xp = x[i] + 1e-2f, xm = x[i] - 1e-2f;
            double num = (double)w[i] * ((double)(xp * a + b) - (double)(xm * a + b)) /
                         ((double)xp - (double)xm);
            if (fabs(num - (double)(din[i] - base[i])) > 1e-3 * (1 + fabs(num))) bad = 1;
        }
        ams_ref_affine_forward(NULL, y, x, a, b, n);
        for (int64_t i = 0; i < n && !bad; i++)
            if (fabs((double)y[i] - ((double)x[i] * a + b)) > 1e-5) bad = 2;
        free(x), free(w), free(y), free(din), free(base);
        CHECKF(bad == 0, "affine trial %d: %s", trial, bad == 1 ? "gradient" : "forward");
    }
    return 0;
}

typedef struct {
    const float *x, *mask, *w;
    float *out;
    int64_t n;
} dropout_ctx;

static double dropout_loss(void *p) {
    dropout_ctx *c = p;
    ams_ref_dropout_forward(NULL, c->out, c->x, c->mask, c->n);
    return kt_dot(c->w, c->out, (size_t)c->n);
}

static int test_dropout(void) {
    const float in[] = {1, 2, 3, 4}, mask[] = {0, 2, 2, 0}, want[] = {0, 4, 6, 0};
    float out[4];
    ams_ref_dropout_forward(NULL, out, in, mask, 4);
    CHECK(check_max_abs_diff(out, want, 4) == 0);
    ams_rng r;
    ams_rng_seed(&r, SEED + 2);
    int64_t n = 53;
    float *x = kt_alloc(n), *m = kt_alloc(n), *w = kt_alloc(n), *y = kt_alloc(n);
    float *din = kt_alloc(n), *base = kt_alloc(n), *g = kt_alloc(n);
    kt_fill(&r, x, n, -2, 2);
    kt_fill(&r, w, n, -1, 1);
    kt_fill(&r, base, n, -1, 1);
    for (int64_t i = 0; i < n; i++) m[i] = ams_rng_uniform(&r) < 0.3f ? 0.0f : 1.0f / 0.7f;
    memcpy(din, base, n * sizeof *din);
    ams_ref_dropout_backward(NULL, din, w, m, n);
    for (int64_t i = 0; i < n; i++) g[i] = din[i] - base[i];
    dropout_ctx c = {x, m, w, y, n};
    int bad = kt_gradcheck("dropout", dropout_loss, &c, x, g, n, 1e-2f, 1e-4, &r);
    free(x), free(m), free(w), free(y), free(din), free(base), free(g);
    CHECK(bad == 0);
    return 0;
}

/* ---------- broadcasting add / mul ---------- */

/* desc from shapes of any rank <= ndim, left-padded with 1 (numpy rules) */
static ams_bcast_desc make_desc(int ndim, int na, const int64_t *a, int nb, const int64_t *b) {
    ams_bcast_desc d = {.ndim = ndim};
    for (int k = 0; k < ndim; k++) {
        int ka = k - (ndim - na), kb = k - (ndim - nb);
        d.a[k] = ka >= 0 ? a[ka] : 1;
        d.b[k] = kb >= 0 ? b[kb] : 1;
        d.out[k] = d.a[k] > d.b[k] ? d.a[k] : d.b[k];
    }
    return d;
}

static int64_t prod(const int64_t *s, int n) {
    int64_t p = 1;
    for (int k = 0; k < n; k++) p *= s[k];
    return p;
}

/* independent oracle: unravel the output index, wrap it into each operand with % */
static int64_t operand_index(int64_t i, const int64_t *out, const int64_t *x, int nd) {
    int64_t ix = 0, mul = 1;
    for (int k = nd - 1; k >= 0; k--) {
        int64_t q = i % out[k];
        i /= out[k];
        ix += (q % x[k]) * mul;
        mul *= x[k];
    }
    return ix;
}

typedef struct {
    const ams_bcast_desc *d;
    const float *a, *b, *w;
    float *out;
    int mul;
} bcast_ctx;

static double bcast_loss(void *p) {
    bcast_ctx *c = p;
    if (c->mul)
        ams_ref_mul_forward(NULL, c->out, c->a, c->b, c->d);
    else
        ams_ref_add_forward(NULL, c->out, c->a, c->b, c->d);
    return kt_dot(c->w, c->out, (size_t)prod(c->d->out, c->d->ndim));
}

/* forward against the oracle, both gradients against FD, and NULL-gradient skipping */
static int check_bcast(const ams_bcast_desc *d, ams_rng *r, const char *what) {
    int nd = d->ndim;
    int64_t na = prod(d->a, nd), nb = prod(d->b, nd), no = prod(d->out, nd);
    float *a = kt_alloc(na), *b = kt_alloc(nb), *out = kt_alloc(no), *w = kt_alloc(no);
    float *da = kt_alloc(na), *db = kt_alloc(nb), *basea = kt_alloc(na), *baseb = kt_alloc(nb);
    float *ga = kt_alloc(na), *gb = kt_alloc(nb), *da2 = kt_alloc(na), *db2 = kt_alloc(nb);
    kt_fill(r, a, na, -2, 2);
    kt_fill(r, b, nb, -2, 2);
    kt_fill(r, w, no, -1, 1);
    kt_fill(r, basea, na, -1, 1);
    kt_fill(r, baseb, nb, -1, 1);
    int bad = 0;
    for (int mul = 0; mul < 2 && !bad; mul++) {
        bcast_ctx c = {d, a, b, w, out, mul};
        bcast_loss(&c);
        for (int64_t i = 0; i < no; i++) {
            float x = a[operand_index(i, d->out, d->a, nd)];
            float y = b[operand_index(i, d->out, d->b, nd)];
            if (out[i] != (mul ? x * y : x + y)) {
                fprintf(stderr, "%s %s: forward element %lld wrong\n", what, mul ? "mul" : "add",
                        (long long)i);
                bad = 1;
                break;
            }
        }
        memcpy(da, basea, na * sizeof *da);
        memcpy(db, baseb, nb * sizeof *db);
        if (mul)
            ams_ref_mul_backward(NULL, da, db, w, a, b, d);
        else
            ams_ref_add_backward(NULL, da, db, w, d);
        for (int64_t i = 0; i < na; i++) ga[i] = da[i] - basea[i];
        for (int64_t i = 0; i < nb; i++) gb[i] = db[i] - baseb[i];
        /* FD probes a sample; the index oracle covers every element */
        double *oa = calloc((size_t)na, sizeof *oa), *ob = calloc((size_t)nb, sizeof *ob);
        CHECK(oa && ob);
        for (int64_t i = 0; i < no; i++) {
            int64_t ia = operand_index(i, d->out, d->a, nd);
            int64_t ib = operand_index(i, d->out, d->b, nd);
            oa[ia] += (double)w[i] * (mul ? b[ib] : 1.0);
            ob[ib] += (double)w[i] * (mul ? a[ia] : 1.0);
        }
        for (int64_t i = 0; i < na; i++)
            if (fabs(ga[i] - oa[i]) > 1e-5 * (1 + fabs(oa[i]))) bad = 1;
        for (int64_t i = 0; i < nb; i++)
            if (fabs(gb[i] - ob[i]) > 1e-5 * (1 + fabs(ob[i]))) bad = 1;
        free(oa), free(ob);
        if (bad) fprintf(stderr, "%s %s: gradient differs from the index oracle\n", what,
                         mul ? "mul" : "add");
        char name[96];
        snprintf(name, sizeof name, "%s %s da", what, mul ? "mul" : "add");
        bad |= kt_gradcheck(name, bcast_loss, &c, a, ga, na, 1e-2f, 1e-4, r);
        snprintf(name, sizeof name, "%s %s db", what, mul ? "mul" : "add");
        bad |= kt_gradcheck(name, bcast_loss, &c, b, gb, nb, 1e-2f, 1e-4, r);
        /* one gradient NULL: the other is the same as before, bit for bit */
        memcpy(da2, basea, na * sizeof *da2);
        memcpy(db2, baseb, nb * sizeof *db2);
        if (mul) {
            ams_ref_mul_backward(NULL, da2, NULL, w, a, b, d);
            ams_ref_mul_backward(NULL, NULL, db2, w, a, b, d);
            ams_ref_mul_backward(NULL, NULL, NULL, w, a, b, d);
        } else {
            ams_ref_add_backward(NULL, da2, NULL, w, d);
            ams_ref_add_backward(NULL, NULL, db2, w, d);
            ams_ref_add_backward(NULL, NULL, NULL, w, d);
        }
        if (memcmp(da, da2, na * sizeof *da) || memcmp(db, db2, nb * sizeof *db)) {
            fprintf(stderr, "%s: NULL gradient changed the other one\n", what);
            bad = 1;
        }
    }
    free(a), free(b), free(out), free(w), free(da), free(db), free(basea), free(baseb);
    free(ga), free(gb), free(da2), free(db2);
    return bad;
}

static int test_bcast_hand(void) {
    /* a (2,1) + b (3) -> (2,3) */
    const float a[] = {1, 2}, b[] = {10, 20, 30};
    ams_bcast_desc d = make_desc(2, 2, (const int64_t[]){2, 1}, 1, (const int64_t[]){3});
    float out[6];
    ams_ref_add_forward(NULL, out, a, b, &d);
    CHECK(check_max_abs_diff(out, (const float[]){11, 21, 31, 12, 22, 32}, 6) == 0);
    ams_ref_mul_forward(NULL, out, a, b, &d);
    CHECK(check_max_abs_diff(out, (const float[]){10, 20, 30, 20, 40, 60}, 6) == 0);
    const float ones[6] = {1, 1, 1, 1, 1, 1};
    float da[2] = {0}, db[3] = {0};
    ams_ref_add_backward(NULL, da, db, ones, &d);
    CHECK(check_max_abs_diff(da, (const float[]){3, 3}, 2) == 0);
    CHECK(check_max_abs_diff(db, (const float[]){2, 2, 2}, 3) == 0);
    float ma[2] = {0}, mb[3] = {0};
    ams_ref_mul_backward(NULL, ma, mb, ones, a, b, &d);
    CHECK(check_max_abs_diff(ma, (const float[]){60, 60}, 2) == 0);
    CHECK(check_max_abs_diff(mb, (const float[]){3, 3, 3}, 3) == 0);
    return 0;
}

static int test_bcast_patterns(void) {
    static const struct {
        const char *what;
        int nd, na, nb;
        int64_t a[4], b[4];
    } pats[] = {
        {"same (2,3,5,4)", 4, 4, 4, {2, 3, 5, 4}, {2, 3, 5, 4}},
        {"(n,h,w,c)*(n,1,1,c)", 4, 4, 4, {2, 3, 5, 4}, {2, 1, 1, 4}},
        {"(n,1,1,c)*(n,h,w,c)", 4, 4, 4, {2, 1, 1, 3}, {2, 3, 5, 3}},
        {"tensor*scalar", 3, 3, 0, {3, 5, 4}, {0}},
        {"scalar*tensor", 3, 0, 3, {0}, {3, 5, 4}},
        {"(3,1,5)*(4,1)", 3, 3, 2, {3, 1, 5}, {4, 1}},
        {"bias (n,h,w,c)+(c)", 4, 4, 1, {2, 3, 5, 7}, {7}},
        {"1-d", 1, 1, 1, {9}, {9}},
        {"(1,1)*(1,1)", 2, 2, 2, {1, 1}, {1, 1}},
    };
    ams_rng r;
    ams_rng_seed(&r, SEED + 3);
    for (size_t i = 0; i < sizeof pats / sizeof pats[0]; i++) {
        ams_bcast_desc d = make_desc(pats[i].nd, pats[i].na, pats[i].a, pats[i].nb, pats[i].b);
        CHECKF(check_bcast(&d, &r, pats[i].what) == 0, "%s", pats[i].what);
    }
    return 0;
}

static int test_bcast_random(void) {
    ams_rng r;
    ams_rng_seed(&r, SEED + 4);
    for (int trial = 0; trial < 40; trial++) {
        ams_bcast_desc d = {.ndim = trial < 4 ? 8 : kt_randint(&r, 1, 6)};
        for (int k = 0; k < d.ndim; k++) {
            d.out[k] = kt_randint(&r, 1, d.ndim > 5 ? 2 : 4);
            d.a[k] = ams_rng_uniform(&r) < 0.4f ? 1 : d.out[k];
            d.b[k] = ams_rng_uniform(&r) < 0.4f ? 1 : d.out[k];
            if (d.a[k] == 1 && d.b[k] == 1) d.out[k] = 1;
        }
        char what[32];
        snprintf(what, sizeof what, "random trial %d", trial);
        CHECK(check_bcast(&d, &r, what) == 0);
    }
    return 0;
}

/* ---------- concat ---------- */

typedef struct {
    const float *const *ins;
    const int64_t *chunk;
    int k;
    int64_t outer, total;
    const float *w;
    float *out;
} concat_ctx;

static double concat_loss(void *p) {
    concat_ctx *c = p;
    ams_ref_concat_forward(NULL, c->out, c->ins, c->chunk, c->k, c->outer);
    return kt_dot(c->w, c->out, (size_t)c->total);
}

/* oracle: output element e (NHWC index arithmetic) comes from input *j at the returned index */
static int64_t concat_source(int64_t e, int axis, const int64_t oshape[4], const int64_t dims[3],
                             const int64_t shp[3][4], int *j) {
    int64_t idx[4], rem = e;
    for (int k = 3; k >= 0; k--) idx[k] = rem % oshape[k], rem /= oshape[k];
    int64_t pos = idx[axis];
    *j = 0;
    while (pos >= dims[*j]) pos -= dims[(*j)++];
    idx[axis] = pos;
    const int64_t *s = shp[*j];
    return ((idx[0] * s[1] + idx[1]) * s[2] + idx[2]) * s[3] + idx[3];
}

/* three (2,3,4,5)-like inputs that differ along axis; checks forward element by element
 * through NHWC index arithmetic, backward by FD, dins[1] = NULL by comparison */
static int check_concat(int axis, const int64_t dims[3], ams_rng *r) {
    int64_t shp[3][4], oshape[4] = {2, 3, 4, 5};
    oshape[axis] = dims[0] + dims[1] + dims[2];
    int64_t outer = prod(oshape, axis), after = prod(oshape + axis + 1, 3 - axis);
    int64_t chunk[3], n[3];
    float *in[3], *din[3], *base[3], *g[3], *din2[3];
    for (int i = 0; i < 3; i++) {
        memcpy(shp[i], oshape, sizeof oshape);
        shp[i][axis] = dims[i];
        chunk[i] = dims[i] * after;
        n[i] = prod(shp[i], 4);
        in[i] = kt_alloc(n[i]);
        din[i] = kt_alloc(n[i]);
        din2[i] = kt_alloc(n[i]);
        base[i] = kt_alloc(n[i]);
        g[i] = kt_alloc(n[i]);
        kt_fill(r, in[i], n[i], -1, 1);
        kt_fill(r, base[i], n[i], -1, 1);
    }
    int64_t total = prod(oshape, 4);
    float *out = kt_alloc(total), *w = kt_alloc(total);
    kt_fill(r, w, total, -1, 1);
    const float *cins[3] = {in[0], in[1], in[2]};
    concat_ctx c = {cins, chunk, 3, outer, total, w, out};
    concat_loss(&c);
    int bad = 0;
    for (int64_t e = 0; e < total && !bad; e++) {
        int j;
        int64_t src = concat_source(e, axis, oshape, dims, shp, &j);
        if (out[e] != in[j][src]) bad = 1;
    }
    CHECKF(!bad, "concat axis %d forward", axis);
    float *dins[3] = {din[0], din[1], din[2]}, *dins2[3] = {din2[0], NULL, din2[2]};
    for (int i = 0; i < 3; i++) {
        memcpy(din[i], base[i], n[i] * sizeof(float));
        memcpy(din2[i], base[i], n[i] * sizeof(float));
    }
    ams_ref_concat_backward(NULL, dins, w, chunk, 3, outer);
    ams_ref_concat_backward(NULL, dins2, w, chunk, 3, outer);
    for (int64_t e = 0; e < total && !bad; e++) { /* every element: d in_j[src] = w[e] */
        int j;
        int64_t src = concat_source(e, axis, oshape, dims, shp, &j);
        if (fabsf(din[j][src] - base[j][src] - w[e]) > 1e-6f) bad = 1;
    }
    for (int i = 0; i < 3; i++) {
        for (int64_t e = 0; e < n[i]; e++) g[i][e] = din[i][e] - base[i][e];
        char name[48];
        snprintf(name, sizeof name, "concat axis %d input %d", axis, i);
        bad |= kt_gradcheck(name, concat_loss, &c, in[i], g[i], n[i], 1e-2f, 1e-4, r);
    }
    bad |= memcmp(din[0], din2[0], n[0] * sizeof(float)) != 0;
    bad |= memcmp(din[2], din2[2], n[2] * sizeof(float)) != 0;
    bad |= memcmp(din2[1], base[1], n[1] * sizeof(float)) != 0;
    for (int i = 0; i < 3; i++) free(in[i]), free(din[i]), free(din2[i]), free(base[i]), free(g[i]);
    free(out), free(w);
    CHECKF(!bad, "concat axis %d backward", axis);
    return 0;
}

static int test_concat(void) {
    ams_rng r;
    ams_rng_seed(&r, SEED + 5);
    const int64_t sizes[4][3] = {{1, 2, 1}, {1, 3, 2}, {2, 1, 3}, {3, 1, 4}};
    for (int axis = 0; axis < 4; axis++) CHECK(check_concat(axis, sizes[axis], &r) == 0);
    /* hand case: (2,2) ++ (2,1) along axis 1 */
    const float a[] = {1, 2, 3, 4}, b[] = {9, 8};
    const float *ins[] = {a, b};
    float out[6];
    ams_ref_concat_forward(NULL, out, ins, (const int64_t[]){2, 1}, 2, 2);
    CHECK(check_max_abs_diff(out, (const float[]){1, 2, 9, 3, 4, 8}, 6) == 0);
    return 0;
}

int main(int argc, char **argv) {
    static const check_case cases[] = {
        {"relu_values", test_relu_values},
        {"sigmoid_tanh_values", test_sigmoid_tanh_values},
        {"relu_grad", test_relu_grad},
        {"relu6_grad", test_relu6_grad},
        {"sigmoid_grad", test_sigmoid_grad},
        {"tanh_grad", test_tanh_grad},
        {"affine", test_affine},
        {"dropout", test_dropout},
        {"bcast_hand", test_bcast_hand},
        {"bcast_patterns", test_bcast_patterns},
        {"bcast_random", test_bcast_random},
        {"concat", test_concat},
    };
    return check_run(cases, sizeof cases / sizeof cases[0], argc, argv);
}
