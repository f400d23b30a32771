/* test_ref_conv.c - the reference conv2d and conv2d_transpose kernels against independent
 * oracles: hand-computed values, a naive double-precision convolution written here,
 * finite differences for every gradient, the adjoint identity, depthwise == grouped
 * conv by explicit slicing, TF SAME stride 2 == stride-1 conv sampled at odd centres,
 * and PyTorch fixtures (tools/ref/make_kernel_fixtures.py). */
#include "kernel_testlib.h"
#include "nn/ref/ref_kernels.h"

/* ---- descriptors ---- */

static ams_conv2d_desc make_desc(int n, int h, int w, int c, int oc, int kh, int kw, int sh,
                                 int sw, int dh, int dw, int pt, int pb, int pl, int pr,
                                 int groups) {
    ams_conv2d_desc d = {0};
    d.n = n, d.h = h, d.w = w, d.c = c, d.oc = oc, d.kh = kh, d.kw = kw;
    d.stride_h = sh, d.stride_w = sw, d.dil_h = dh, d.dil_w = dw;
    d.pad_t = pt, d.pad_b = pb, d.pad_l = pl, d.pad_r = pr, d.groups = groups;
    d.oh = ams_conv_out_size(h, kh, sh, dh, pt, pb);
    d.ow = ams_conv_out_size(w, kw, sw, dw, pl, pr);
    return d;
}

/* TF padding='SAME' on both axes. */
static ams_conv2d_desc make_same(int n, int h, int w, int c, int oc, int k, int s, int dil,
                                 int groups) {
    int pt, pb, pl, pr;
    ams_tf_same_padding(h, k, s, dil, &pt, &pb);
    ams_tf_same_padding(w, k, s, dil, &pl, &pr);
    return make_desc(n, h, w, c, oc, k, k, s, s, dil, dil, pt, pb, pl, pr, groups);
}

static size_t in_size(const ams_conv2d_desc *d) { return (size_t)d->n * d->h * d->w * d->c; }
static size_t out_size(const ams_conv2d_desc *d) { return (size_t)d->n * d->oh * d->ow * d->oc; }
static size_t w_size(const ams_conv2d_desc *d) {
    return (size_t)d->kh * d->kw * (d->c / d->groups) * d->oc;
}

/* A fixed list covering every feature, then seeded random ones. */
#define N_FIXED 11
static ams_conv2d_desc fixed_case(int i, int *bias) {
    *bias = i % 2 == 0;
    switch (i) {
    case 0: return make_desc(2, 5, 7, 3, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1);
    case 1: return make_same(1, 6, 8, 2, 3, 3, 2, 1, 1);   /* stride 2, even: pads (0,1) */
    case 2: return make_same(2, 7, 5, 3, 2, 3, 2, 1, 1);   /* stride 2, odd: pads (1,1) */
    case 3: return make_same(1, 7, 6, 2, 3, 3, 1, 2, 1);   /* dilation 2 */
    case 4: return make_desc(2, 6, 7, 4, 6, 2, 3, 2, 1, 1, 2, 1, 0, 2, 1, 2); /* groups 2 */
    case 5: return make_same(2, 5, 6, 3, 3, 3, 1, 1, 3);   /* depthwise */
    case 6: return make_same(1, 6, 8, 3, 6, 3, 2, 1, 3);   /* depthwise x2, stride 2 */
    case 7: return make_desc(3, 4, 3, 5, 7, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1); /* 1x1 */
    case 8: return make_desc(1, 3, 9, 2, 2, 1, 3, 1, 2, 1, 1, 0, 0, 1, 0, 1); /* 1x3 */
    case 9: return make_same(2, 9, 7, 4, 8, 3, 1, 2, 4);   /* depthwise x2, dilation 2 */
    default: return make_desc(1, 5, 5, 6, 3, 3, 3, 2, 2, 1, 1, 2, 2, 0, 1, 3); /* big pad */
    }
}

static ams_conv2d_desc random_case(ams_rng *r, int *bias) {
    for (;;) {
        int g = kt_randint(r, 1, 3);
        int c = g * kt_randint(r, 1, 3), oc = g * kt_randint(r, 1, 3);
        int k = kt_randint(r, 1, 3), kw = kt_randint(r, 1, 3);
        ams_conv2d_desc d = make_desc(kt_randint(r, 1, 2), kt_randint(r, 1, 8),
                                      kt_randint(r, 1, 8), c, oc, k, kw, kt_randint(r, 1, 2),
                                      kt_randint(r, 1, 2), kt_randint(r, 1, 2),
                                      kt_randint(r, 1, 2), kt_randint(r, 0, 2),
                                      kt_randint(r, 0, 2), kt_randint(r, 0, 2),
                                      kt_randint(r, 0, 2), g);
        *bias = kt_randint(r, 0, 1);
        if (d.oh >= 1 && d.ow >= 1) return d;
    }
}

#define N_RANDOM 14
static ams_conv2d_desc any_case(int i, ams_rng *r, int *bias) {
    return i < N_FIXED ? fixed_case(i, bias) : random_case(r, bias);
}

/* ---- an independent naive oracle, in double ---- */

/* out[b,oy,ox,o] = bias[o] + sum in[b, oy*s-p+ky*d, ox*s-p+kx*d, g*cpg+ci] * w[ky,kx,ci,o] */
static void naive_conv(double *out, const float *in, const float *w, const float *bias,
                       const ams_conv2d_desc *d) {
    int cpg = d->c / d->groups, opg = d->oc / d->groups;
    for (int b = 0; b < d->n; b++)
        for (int oy = 0; oy < d->oh; oy++)
            for (int ox = 0; ox < d->ow; ox++)
                for (int o = 0; o < d->oc; o++) {
                    int g = o / opg;
                    double s = bias ? bias[o] : 0.0;
                    for (int ky = 0; ky < d->kh; ky++)
                        for (int kx = 0; kx < d->kw; kx++)
                            for (int ci = 0; ci < cpg; ci++) {
                                int iy = oy * d->stride_h + ky * d->dil_h - d->pad_t;
                                int ix = ox * d->stride_w + kx * d->dil_w - d->pad_l;
                                if (iy < 0 || ix < 0 || iy >= d->h || ix >= d->w) continue;
                                s += (double)in[((b * d->h + iy) * d->w + ix) * d->c + g * cpg + ci] *
                                     (double)w[((ky * d->kw + kx) * cpg + ci) * d->oc + o];
                            }
                    out[((b * d->oh + oy) * d->ow + ox) * d->oc + o] = s;
                }
}

/* The transposed conv as a scatter: every input pixel of the transposed op (an output
 * pixel of the forward conv) spreads over the input pixels it was computed from. */
static void naive_conv_transpose(double *out, const float *in, const float *w,
                                 const float *bias, const ams_conv2d_desc *d) {
    int cpg = d->c / d->groups, opg = d->oc / d->groups;
    for (size_t i = 0; i < in_size(d); i++) out[i] = bias ? bias[i % (size_t)d->c] : 0.0;
    for (int b = 0; b < d->n; b++)
        for (int oy = 0; oy < d->oh; oy++)
            for (int ox = 0; ox < d->ow; ox++)
                for (int o = 0; o < d->oc; o++) {
                    double v = in[((b * d->oh + oy) * d->ow + ox) * d->oc + o];
                    int g = o / opg;
                    for (int ky = 0; ky < d->kh; ky++)
                        for (int kx = 0; kx < d->kw; kx++) {
                            int iy = oy * d->stride_h + ky * d->dil_h - d->pad_t;
                            int ix = ox * d->stride_w + kx * d->dil_w - d->pad_l;
                            if (iy < 0 || ix < 0 || iy >= d->h || ix >= d->w) continue;
                            for (int ci = 0; ci < cpg; ci++)
                                out[((b * d->h + iy) * d->w + ix) * d->c + g * cpg + ci] +=
                                    v * w[((ky * d->kw + kx) * cpg + ci) * d->oc + o];
                        }
                }
}

static double max_err_vs(const float *a, const double *ref, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - ref[i]) / (1.0 + fabs(ref[i]));
        if (!(e <= m)) m = e; /* NaN propagates */
    }
    return m;
}

/* ---- tests ---- */

static int test_hand(void) {
    /* 3x3 image 1..9, 2x2 kernel [1 2; 3 4], valid: 37 47 / 67 77 */
    {
        float in[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, w[4] = {1, 2, 3, 4}, out[4];
        ams_conv2d_desc d = make_desc(1, 3, 3, 1, 1, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0, 1);
        CHECK(d.oh == 2 && d.ow == 2);
        ams_ref_conv2d_forward(NULL, out, in, w, NULL, &d);
        CHECK(out[0] == 37 && out[1] == 47 && out[2] == 67 && out[3] == 77);
    }
    /* asymmetric padding: [[1 2 3],[4 5 6]], 2x2 ones, pad t=1 b=0 l=0 r=1, bias 0.5 */
    {
        float in[6] = {1, 2, 3, 4, 5, 6}, w[4] = {1, 1, 1, 1}, bias = 0.5f, out[6];
        ams_conv2d_desc d = make_desc(1, 2, 3, 1, 1, 2, 2, 1, 1, 1, 1, 1, 0, 0, 1, 1);
        CHECK(d.oh == 2 && d.ow == 3);
        ams_ref_conv2d_forward(NULL, out, in, w, &bias, &d);
        const float want[6] = {3.5f, 5.5f, 3.5f, 12.5f, 16.5f, 9.5f};
        for (int i = 0; i < 6; i++) CHECKF(out[i] == want[i], "i=%d %g", i, out[i]);
        /* the transpose of a 1x1-output conv is the kernel stamped into the image */
        float dout[6] = {0, 0, 0, 0, 0, 0}, tout[6];
        dout[0] = 2; /* output (0,0) reads rows -1..0, cols 0..1 */
        ams_ref_conv2d_transpose_forward(NULL, tout, dout, w, NULL, &d);
        const float twant[6] = {2, 2, 0, 0, 0, 0};
        for (int i = 0; i < 6; i++) CHECKF(tout[i] == twant[i], "i=%d %g", i, tout[i]);
    }
    /* dilation 2 stride 2 two channels: out = in[0,0]*w0 + in[0,2]*w1 per channel sum */
    {
        float in[1 * 1 * 5 * 2] = {1, 10, 2, 20, 3, 30, 4, 40, 5, 50};
        float w[1 * 2 * 2 * 1] = {1, 2, 3, 4}; /* (kh=1,kw=2,c=2,oc=1) */
        float out[2];
        ams_conv2d_desc d = make_desc(1, 1, 5, 2, 1, 1, 2, 1, 2, 1, 2, 0, 0, 0, 0, 1);
        CHECK(d.ow == 2);
        ams_ref_conv2d_forward(NULL, out, in, w, NULL, &d);
        CHECK(out[0] == 1 * 1 + 10 * 2 + 3 * 3 + 30 * 4);
        CHECK(out[1] == 3 * 1 + 30 * 2 + 5 * 3 + 50 * 4);
    }
    return 0;
}

/* forward and transposed forward against the naive oracle; forward overwrites garbage */
static int test_vs_naive(void) {
    ams_rng r;
    ams_rng_seed(&r, 11);
    for (int i = 0; i < N_FIXED + N_RANDOM; i++) {
        int has_bias;
        ams_conv2d_desc d = any_case(i, &r, &has_bias);
        size_t ni = in_size(&d), no = out_size(&d), nw = w_size(&d);
        float *x = kt_alloc(ni), *w = kt_alloc(nw), *b = kt_alloc((size_t)d.oc + d.c);
        float *y = kt_alloc(no), *t = kt_alloc(no), *tx = kt_alloc(ni);
        double *ref = malloc((ni > no ? ni : no) * sizeof *ref);
        kt_fill(&r, x, ni, -1, 1);
        kt_fill(&r, w, nw, -1, 1);
        kt_fill(&r, b, (size_t)d.oc + d.c, -1, 1);
        kt_fill(&r, t, no, -1, 1);
        kt_set(y, no, NAN);
        kt_set(tx, ni, NAN);
        const float *bias = has_bias ? b : NULL;
        ams_ref_conv2d_forward(NULL, y, x, w, bias, &d);
        naive_conv(ref, x, w, bias, &d);
        double e1 = max_err_vs(y, ref, no);
        ams_ref_conv2d_transpose_forward(NULL, tx, t, w, bias, &d);
        naive_conv_transpose(ref, t, w, bias, &d);
        double e2 = max_err_vs(tx, ref, ni);
        free(x), free(w), free(b), free(y), free(t), free(tx), free(ref);
        CHECKF(e1 < 1e-5, "case %d forward err %g", i, e1);
        CHECKF(e2 < 1e-5, "case %d transpose forward err %g", i, e2);
    }
    return 0;
}

/* ---- finite differences ---- */

typedef struct fd_ctx {
    const ams_conv2d_desc *d;
    int transpose;          /* 0: conv2d_forward, 1: conv2d_transpose_forward */
    float *x, *w, *b, *y;   /* inputs and a scratch output */
    const float *r;         /* the random projection of the output */
    size_t ny;
} fd_ctx;

static double fd_loss(void *p) {
    fd_ctx *c = p;
    if (c->transpose)
        ams_ref_conv2d_transpose_forward(NULL, c->y, c->x, c->w, c->b, c->d);
    else
        ams_ref_conv2d_forward(NULL, c->y, c->x, c->w, c->b, c->d);
    return kt_dot(c->y, c->r, c->ny);
}

/* Every gradient of conv2d (transpose = 0) or conv2d_transpose (1), by central differences,
 * with the gradients accumulated (+=) into buffers that already hold values. */
static int gradcheck_case(const ams_conv2d_desc *d, int has_bias, int transpose, ams_rng *r,
                          int idx) {
    size_t nx = transpose ? out_size(d) : in_size(d);
    size_t ny = transpose ? in_size(d) : out_size(d);
    size_t nw = w_size(d), nb = (size_t)(transpose ? d->c : d->oc);
    float *x = kt_alloc(nx), *w = kt_alloc(nw), *b = kt_alloc(nb), *y = kt_alloc(ny);
    float *rr = kt_alloc(ny);
    float *dx = kt_alloc(nx), *dw = kt_alloc(nw), *db = kt_alloc(nb);
    float *base_x = kt_alloc(nx), *base_w = kt_alloc(nw), *base_b = kt_alloc(nb);
    kt_fill(r, x, nx, -1, 1);
    kt_fill(r, w, nw, -1, 1);
    kt_fill(r, b, nb, -1, 1);
    kt_fill(r, rr, ny, -1, 1);
    /* gradients accumulate on top of what is there */
    kt_fill(r, base_x, nx, -2, 2);
    kt_fill(r, base_w, nw, -2, 2);
    kt_fill(r, base_b, nb, -2, 2);
    memcpy(dx, base_x, nx * sizeof *dx);
    memcpy(dw, base_w, nw * sizeof *dw);
    memcpy(db, base_b, nb * sizeof *db);
    if (transpose)
        ams_ref_conv2d_transpose_backward(NULL, dx, dw, has_bias ? db : NULL, rr, x, w, d);
    else
        ams_ref_conv2d_backward(NULL, dx, dw, has_bias ? db : NULL, rr, x, w, d);
    for (size_t i = 0; i < nx; i++) dx[i] -= base_x[i];
    for (size_t i = 0; i < nw; i++) dw[i] -= base_w[i];
    for (size_t i = 0; i < nb; i++) db[i] -= base_b[i];

    fd_ctx c = {d, transpose, x, w, has_bias ? b : NULL, y, rr, ny};
    char what[64];
    int fail = 0;
    /* the op is linear in each argument, so the central difference is exact up to
     * float rounding of the output; tolerance covers that rounding */
    const float h = 0.05f;
    const double tol = 2e-4;
    snprintf(what, sizeof what, "%s case %d din", transpose ? "transpose" : "conv", idx);
    fail |= kt_gradcheck(what, fd_loss, &c, x, dx, nx, h, tol, r);
    snprintf(what, sizeof what, "%s case %d dweight", transpose ? "transpose" : "conv", idx);
    fail |= kt_gradcheck(what, fd_loss, &c, w, dw, nw, h, tol, r);
    if (has_bias) {
        snprintf(what, sizeof what, "%s case %d dbias", transpose ? "transpose" : "conv", idx);
        fail |= kt_gradcheck(what, fd_loss, &c, b, db, nb, h, tol, r);
    } else {
        /* no bias: the dbias buffer was NULL and must be untouched */
        for (size_t i = 0; i < nb; i++) fail |= db[i] != 0.0f;
    }
    free(x), free(w), free(b), free(y), free(rr), free(dx), free(dw), free(db);
    free(base_x), free(base_w), free(base_b);
    return fail;
}

static int test_gradcheck_conv(void) {
    ams_rng r;
    ams_rng_seed(&r, 21);
    for (int i = 0; i < N_FIXED + N_RANDOM; i++) {
        int has_bias;
        ams_conv2d_desc d = any_case(i, &r, &has_bias);
        CHECKF(gradcheck_case(&d, has_bias, 0, &r, i) == 0, "case %d", i);
    }
    return 0;
}

static int test_gradcheck_transpose(void) {
    ams_rng r;
    ams_rng_seed(&r, 22);
    for (int i = 0; i < N_FIXED + N_RANDOM; i++) {
        int has_bias;
        ams_conv2d_desc d = any_case(i, &r, &has_bias);
        CHECKF(gradcheck_case(&d, has_bias, 1, &r, i) == 0, "case %d", i);
    }
    return 0;
}

/* Each gradient alone (others NULL) equals the same gradient computed with all of them. */
static int test_null_grads(void) {
    ams_rng r;
    ams_rng_seed(&r, 31);
    for (int tr = 0; tr < 2; tr++)
        for (int i = 0; i < N_FIXED; i++) {
            int unused;
            ams_conv2d_desc d = fixed_case(i, &unused);
            size_t nx = tr ? out_size(&d) : in_size(&d), ny = tr ? in_size(&d) : out_size(&d);
            size_t nw = w_size(&d), nb = (size_t)(tr ? d.c : d.oc);
            float *x = kt_alloc(nx), *w = kt_alloc(nw), *dy = kt_alloc(ny);
            float *ax = kt_alloc(nx), *aw = kt_alloc(nw), *ab = kt_alloc(nb);
            float *ox = kt_alloc(nx), *ow = kt_alloc(nw), *ob = kt_alloc(nb);
            kt_fill(&r, x, nx, -1, 1);
            kt_fill(&r, w, nw, -1, 1);
            kt_fill(&r, dy, ny, -1, 1);
            void (*bwd)(const ams_backend *, float *, float *, float *, const float *,
                        const float *, const float *, const ams_conv2d_desc *) =
                tr ? ams_ref_conv2d_transpose_backward : ams_ref_conv2d_backward;
            bwd(NULL, ax, aw, ab, dy, x, w, &d);
            bwd(NULL, ox, NULL, NULL, dy, x, w, &d);
            bwd(NULL, NULL, ow, NULL, dy, x, w, &d);
            bwd(NULL, NULL, NULL, ob, dy, x, w, &d);
            bwd(NULL, NULL, NULL, NULL, dy, x, w, &d); /* must not crash */
            int same = memcmp(ax, ox, nx * sizeof *ax) == 0 && memcmp(aw, ow, nw * sizeof *aw) == 0 &&
                       memcmp(ab, ob, nb * sizeof *ab) == 0;
            /* dbias is the sum of dy over pixels */
            double worst = 0;
            for (size_t k = 0; k < nb; k++) {
                double s = 0;
                for (size_t p = k; p < ny; p += nb) s += dy[p];
                worst = fmax(worst, fabs(s - ab[k]));
            }
            free(x), free(w), free(dy), free(ax), free(aw), free(ab), free(ox), free(ow), free(ob);
            CHECKF(same, "transpose=%d case %d", tr, i);
            CHECKF(worst < 1e-4, "transpose=%d case %d dbias err %g", tr, i, worst);
        }
    return 0;
}

/* <conv(x), y> == <x, conv_transpose(y)> with the same descriptor and weight. */
static int test_adjoint(void) {
    ams_rng r;
    ams_rng_seed(&r, 41);
    for (int i = 0; i < N_FIXED + N_RANDOM; i++) {
        int unused;
        ams_conv2d_desc d = any_case(i, &r, &unused);
        size_t ni = in_size(&d), no = out_size(&d), nw = w_size(&d);
        float *x = kt_alloc(ni), *w = kt_alloc(nw), *y = kt_alloc(no);
        float *cx = kt_alloc(no), *ty = kt_alloc(ni);
        kt_fill(&r, x, ni, -1, 1);
        kt_fill(&r, w, nw, -1, 1);
        kt_fill(&r, y, no, -1, 1);
        ams_ref_conv2d_forward(NULL, cx, x, w, NULL, &d);
        ams_ref_conv2d_transpose_forward(NULL, ty, y, w, NULL, &d);
        double lhs = kt_dot(cx, y, no), rhs = kt_dot(x, ty, ni);
        double scale = 1.0 + sqrt(kt_dot(cx, cx, no) * kt_dot(y, y, no));
        free(x), free(w), free(y), free(cx), free(ty);
        CHECKF(fabs(lhs - rhs) <= 1e-5 * scale, "case %d: %.9g vs %.9g", i, lhs, rhs);
    }
    return 0;
}

/* A grouped conv (incl. depthwise with multiplier) equals one ungrouped conv per group on
 * explicitly sliced input channels and weight columns. */
static int test_groups_by_slicing(void) {
    ams_rng r;
    ams_rng_seed(&r, 51);
    const int cases[][5] = {/* c, oc, groups, stride, k */
                            {3, 3, 3, 1, 3}, {3, 6, 3, 2, 3}, {4, 8, 4, 1, 3},
                            {4, 6, 2, 2, 3}, {6, 3, 3, 1, 2}, {6, 6, 2, 1, 1}};
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        int c = cases[ci][0], oc = cases[ci][1], g = cases[ci][2], s = cases[ci][3],
            k = cases[ci][4];
        ams_conv2d_desc d = make_same(2, 7, 8, c, oc, k, s, 1, g);
        int cpg = c / g, opg = oc / g;
        size_t ni = in_size(&d), no = out_size(&d), nw = w_size(&d);
        float *x = kt_alloc(ni), *w = kt_alloc(nw), *b = kt_alloc((size_t)oc), *y = kt_alloc(no);
        kt_fill(&r, x, ni, -1, 1);
        kt_fill(&r, w, nw, -1, 1);
        kt_fill(&r, b, (size_t)oc, -1, 1);
        ams_ref_conv2d_forward(NULL, y, x, w, b, &d);
        double worst = 0;
        for (int gi = 0; gi < g; gi++) {
            ams_conv2d_desc sd = d;
            sd.c = cpg, sd.oc = opg, sd.groups = 1;
            size_t npix = (size_t)d.n * d.h * d.w, opix = (size_t)d.n * d.oh * d.ow;
            size_t taps = (size_t)d.kh * d.kw;
            float *sx = kt_alloc(npix * cpg), *sw = kt_alloc(taps * cpg * opg);
            float *sy = kt_alloc(opix * opg);
            for (size_t p = 0; p < npix; p++)
                for (int j = 0; j < cpg; j++) sx[p * cpg + j] = x[p * c + gi * cpg + j];
            for (size_t t = 0; t < taps; t++)
                for (int j = 0; j < cpg; j++)
                    for (int o = 0; o < opg; o++)
                        sw[(t * cpg + j) * opg + o] = w[(t * cpg + j) * oc + gi * opg + o];
            ams_ref_conv2d_forward(NULL, sy, sx, sw, b + gi * opg, &sd);
            for (size_t p = 0; p < opix; p++)
                for (int o = 0; o < opg; o++)
                    worst = fmax(worst, fabs(sy[p * opg + o] - y[p * oc + gi * opg + o]));
            free(sx), free(sw), free(sy);
        }
        free(x), free(w), free(b), free(y);
        CHECKF(worst < 1e-5, "case %zu err %g", ci, worst);
    }
    return 0;
}

/* TF SAME, stride 2, even size: output i reads inputs 2i..2i+2, i.e. the stride-1
 * 'pad 1' conv sampled at odd centres 2i+1 (deeplab_mnv2.py selftest). */
static int test_same_stride2_even(void) {
    ams_rng r;
    ams_rng_seed(&r, 61);
    const int groups[] = {1, 4};
    for (int gi = 0; gi < 2; gi++) {
        int c = 4, oc = gi ? 8 : 5, g = groups[gi];
        ams_conv2d_desc d2 = make_same(2, 10, 12, c, oc, 3, 2, 1, g);
        ams_conv2d_desc d1 = make_desc(2, 10, 12, c, oc, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, g);
        CHECK(d2.pad_t == 0 && d2.pad_b == 1 && d2.pad_l == 0 && d2.pad_r == 1);
        CHECK(d2.oh == 5 && d2.ow == 6 && d1.oh == 10 && d1.ow == 12);
        size_t ni = in_size(&d2), nw = w_size(&d2);
        float *x = kt_alloc(ni), *w = kt_alloc(nw), *b = kt_alloc((size_t)oc);
        float *y2 = kt_alloc(out_size(&d2)), *y1 = kt_alloc(out_size(&d1));
        kt_fill(&r, x, ni, -1, 1);
        kt_fill(&r, w, nw, -1, 1);
        kt_fill(&r, b, (size_t)oc, -1, 1);
        ams_ref_conv2d_forward(NULL, y2, x, w, b, &d2);
        ams_ref_conv2d_forward(NULL, y1, x, w, b, &d1);
        double worst = 0;
        for (int n = 0; n < 2; n++)
            for (int i = 0; i < d2.oh; i++)
                for (int j = 0; j < d2.ow; j++)
                    for (int o = 0; o < oc; o++)
                        worst = fmax(worst,
                                     fabs(y2[((n * d2.oh + i) * d2.ow + j) * oc + o] -
                                          y1[((n * d1.oh + 2 * i + 1) * d1.ow + 2 * j + 1) * oc + o]));
        free(x), free(w), free(b), free(y1), free(y2);
        CHECKF(worst < 1e-6, "groups %d err %g", g, worst);
    }
    return 0;
}

/* ---- PyTorch fixtures ---- */

/* Fixture <name> (tools/ref/make_kernel_fixtures.py): <name>_desc int32[18] = n h w c oh ow
 * oc kh kw sh sw dh dw pt pb pl pr groups; <name> float32 = x w b y dy dx dw db
 * concatenated. transpose selects which op it describes. */
static int check_fixture(const char *name, int transpose) {
    char key[128];
    int v[18];
    snprintf(key, sizeof key, "%s_desc", name);
    CHECK(kt_load_ints(key, v, 18) == 0);
    ams_conv2d_desc d = {0};
    d.n = v[0], d.h = v[1], d.w = v[2], d.c = v[3], d.oh = v[4], d.ow = v[5], d.oc = v[6];
    d.kh = v[7], d.kw = v[8], d.stride_h = v[9], d.stride_w = v[10], d.dil_h = v[11],
    d.dil_w = v[12], d.pad_t = v[13], d.pad_b = v[14], d.pad_l = v[15], d.pad_r = v[16],
    d.groups = v[17];
    CHECK(d.oh == ams_conv_out_size(d.h, d.kh, d.stride_h, d.dil_h, d.pad_t, d.pad_b));
    CHECK(d.ow == ams_conv_out_size(d.w, d.kw, d.stride_w, d.dil_w, d.pad_l, d.pad_r));
    size_t nx = transpose ? out_size(&d) : in_size(&d), ny = transpose ? in_size(&d) : out_size(&d);
    size_t nw = w_size(&d), nb = (size_t)(transpose ? d.c : d.oc);
    ams_tensor *t = kt_load(name, (int64_t)(2 * nx + 2 * nw + 2 * nb + 2 * ny));
    CHECK(t != NULL);
    const float *x = t->data, *w = x + nx, *b = w + nw, *ey = b + nb, *dy = ey + ny;
    const float *edx = dy + ny, *edw = edx + nx, *edb = edw + nw;
    float *y = kt_alloc(ny), *dx = kt_alloc(nx), *dw = kt_alloc(nw), *db = kt_alloc(nb);
    if (transpose) {
        ams_ref_conv2d_transpose_forward(NULL, y, x, w, b, &d);
        ams_ref_conv2d_transpose_backward(NULL, dx, dw, db, dy, x, w, &d);
    } else {
        ams_ref_conv2d_forward(NULL, y, x, w, b, &d);
        ams_ref_conv2d_backward(NULL, dx, dw, db, dy, x, w, &d);
    }
    double e_y = check_max_abs_diff(y, ey, ny), e_x = check_max_abs_diff(dx, edx, nx);
    double e_w = check_max_abs_diff(dw, edw, nw), e_b = check_max_abs_diff(db, edb, nb);
    free(y), free(dx), free(dw), free(db);
    ams_tensor_free(t);
    /* values are O(1..10) sums of <= 50 products of N(0,1) numbers */
    CHECKF(e_y < 1e-4 && e_x < 1e-4 && e_w < 1e-4 && e_b < 1e-4,
           "%s: y %g dx %g dw %g db %g", name, e_y, e_x, e_w, e_b);
    return 0;
}

static int test_torch_fixtures(void) {
    CHECK(check_fixture("conv_grouped", 0) == 0);
    CHECK(check_fixture("conv_depthwise", 0) == 0);
    CHECK(check_fixture("convt_grouped", 1) == 0);
    return 0;
}

/* The size the brief asks to time: 1x97x131x32 -> 32, depthwise 3x3, SAME, stride 1. */
static int test_time_depthwise(void) {
    ams_rng r;
    ams_rng_seed(&r, 71);
    ams_conv2d_desc d = make_same(1, 97, 131, 32, 32, 3, 1, 1, 32);
    size_t ni = in_size(&d), no = out_size(&d), nw = w_size(&d);
    float *x = kt_alloc(ni), *w = kt_alloc(nw), *y = kt_alloc(no), *dy = kt_alloc(no);
    float *dx = kt_alloc(ni), *dw = kt_alloc(nw), *db = kt_alloc(32);
    kt_fill(&r, x, ni, -1, 1);
    kt_fill(&r, w, nw, -1, 1);
    kt_fill(&r, dy, no, -1, 1);
    double t0 = kt_now();
    ams_ref_conv2d_forward(NULL, y, x, w, NULL, &d);
    double t1 = kt_now();
    ams_ref_conv2d_backward(NULL, dx, dw, db, dy, x, w, &d);
    double t2 = kt_now();
    fprintf(stderr, "depthwise 1x97x131x32 3x3: forward %.2f ms, backward (din+dw+db) %.2f ms\n",
            1e3 * (t1 - t0), 1e3 * (t2 - t1));
    /* the interior output pixels are exact sums of 9 taps: spot-check one */
    double s = 0;
    for (int ky = 0; ky < 3; ky++)
        for (int kx = 0; kx < 3; kx++)
            s += (double)x[((10 + ky - 1) * 131 + 20 + kx - 1) * 32 + 5] * w[(ky * 3 + kx) * 32 + 5];
    double e = fabs(s - y[(10 * 131 + 20) * 32 + 5]);
    double sb = 0;
    for (size_t p = 0; p < no; p += 32) sb += dy[p + 7];
    double eb = fabs(sb - db[7]);
    free(x), free(w), free(y), free(dy), free(dx), free(dw), free(db);
    CHECK(e < 1e-5);
    CHECK(eb < 1e-2);
    return 0;
}

int main(int argc, char **argv) {
    static const check_case cases[] = {
        {"hand", test_hand},
        {"vs_naive", test_vs_naive},
        {"gradcheck_conv", test_gradcheck_conv},
        {"gradcheck_transpose", test_gradcheck_transpose},
        {"null_grads", test_null_grads},
        {"adjoint", test_adjoint},
        {"groups_by_slicing", test_groups_by_slicing},
        {"same_stride2_even", test_same_stride2_even},
        {"torch_fixtures", test_torch_fixtures},
        {"time_depthwise", test_time_depthwise},
    };
    return check_run(cases, sizeof cases / sizeof cases[0], argc, argv);
}
