/* test_ref_pool.c - the reference average, max and global-average pooling kernels against
 * hand-computed values (TF's padding-excluding divisor, first-maximum tie rule), a naive
 * double-precision oracle written here, finite differences for every gradient, and
 * PyTorch fixtures (tools/ref/make_kernel_fixtures.py). */
#include "kernel_testlib.h"
#include "nn/ref/ref_kernels.h"

static ams_pool2d_desc make_pool(int n, int h, int w, int c, int kh, int kw, int sh, int sw,
                                 int pt, int pb, int pl, int pr) {
    ams_pool2d_desc d = {0};
    d.n = n, d.h = h, d.w = w, d.c = c, d.kh = kh, d.kw = kw, d.stride_h = sh, d.stride_w = sw;
    d.pad_t = pt, d.pad_b = pb, d.pad_l = pl, d.pad_r = pr;
    d.oh = ams_conv_out_size(h, kh, sh, 1, pt, pb);
    d.ow = ams_conv_out_size(w, kw, sw, 1, pl, pr);
    return d;
}

static ams_pool2d_desc make_pool_same(int n, int h, int w, int c, int k, int s) {
    int pt, pb, pl, pr;
    ams_tf_same_padding(h, k, s, 1, &pt, &pb);
    ams_tf_same_padding(w, k, s, 1, &pl, &pr);
    return make_pool(n, h, w, c, k, k, s, s, pt, pb, pl, pr);
}

static size_t in_size(const ams_pool2d_desc *d) { return (size_t)d->n * d->h * d->w * d->c; }
static size_t out_size(const ams_pool2d_desc *d) { return (size_t)d->n * d->oh * d->ow * d->c; }

#define N_FIXED 6
#define N_CASES 20
static ams_pool2d_desc any_case(int i, ams_rng *r) {
    switch (i) {
    case 0: return make_pool_same(2, 7, 6, 3, 3, 2);             /* SAME, odd x even */
    case 1: return make_pool_same(1, 8, 8, 2, 2, 2);             /* SAME, no padding */
    case 2: return make_pool(2, 5, 6, 3, 3, 2, 2, 2, 1, 1, 0, 1); /* asymmetric */
    case 3: return make_pool(1, 6, 5, 4, 3, 3, 1, 1, 2, 2, 2, 2); /* heavy clipping */
    case 4: return make_pool(3, 4, 4, 1, 4, 4, 1, 1, 0, 0, 0, 0); /* one window */
    case 5: return make_pool(1, 9, 3, 2, 3, 1, 3, 1, 0, 2, 0, 0); /* 3x1, stride 3 */
    default:
        for (;;) {
            int kh = kt_randint(r, 1, 3), kw = kt_randint(r, 1, 3);
            ams_pool2d_desc d = make_pool(kt_randint(r, 1, 2), kt_randint(r, 1, 8),
                                          kt_randint(r, 1, 8), kt_randint(r, 1, 3), kh, kw,
                                          kt_randint(r, 1, 3), kt_randint(r, 1, 3),
                                          kt_randint(r, 0, kh - 1), kt_randint(r, 0, kh - 1),
                                          kt_randint(r, 0, kw - 1), kt_randint(r, 0, kw - 1));
            if (d.oh >= 1 && d.ow >= 1) return d;
        }
    }
}

/* ---- naive oracle: per output element, scan the window and skip padded positions ---- */
static void naive_pool(double *out, const float *in, const ams_pool2d_desc *d, int is_max) {
    for (int b = 0; b < d->n; b++)
        for (int oy = 0; oy < d->oh; oy++)
            for (int ox = 0; ox < d->ow; ox++)
                for (int k = 0; k < d->c; k++) {
                    double s = 0, m = -INFINITY;
                    int cnt = 0;
                    for (int ky = 0; ky < d->kh; ky++)
                        for (int kx = 0; kx < d->kw; kx++) {
                            int y = oy * d->stride_h - d->pad_t + ky;
                            int x = ox * d->stride_w - d->pad_l + kx;
                            if (y < 0 || x < 0 || y >= d->h || x >= d->w) continue;
                            double v = in[((b * d->h + y) * d->w + x) * d->c + k];
                            s += v;
                            m = v > m ? v : m;
                            cnt++;
                        }
                    out[((b * d->oh + oy) * d->ow + ox) * d->c + k] =
                        cnt == 0 ? 0.0 : is_max ? m : s / cnt;
                }
}

static int test_hand(void) {
    /* 3x3 image 1..9, 2x2 window, stride 2, TF SAME: pads (0,1) on both axes, so the
     * windows are {1,2,4,5} {3,6} {7,8} {9}: the padded cells are not in the divisor */
    float in[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, out[4], din[9];
    ams_pool2d_desc d = make_pool_same(1, 3, 3, 1, 2, 2);
    CHECK(d.pad_t == 0 && d.pad_b == 1 && d.oh == 2 && d.ow == 2);
    ams_ref_avgpool_forward(NULL, out, in, &d);
    CHECK(out[0] == 3.0f && out[1] == 4.5f && out[2] == 7.5f && out[3] == 9.0f);
    ams_ref_maxpool_forward(NULL, out, in, &d);
    CHECK(out[0] == 5.0f && out[1] == 6.0f && out[2] == 8.0f && out[3] == 9.0f);
    const float ones[4] = {1, 1, 1, 1}, g[4] = {1, 2, 3, 4};
    memset(din, 0, sizeof din);
    ams_ref_avgpool_backward(NULL, din, ones, &d);
    const float want_avg[9] = {0.25f, 0.25f, 0.5f, 0.25f, 0.25f, 0.5f, 0.5f, 0.5f, 1.0f};
    for (int i = 0; i < 9; i++) CHECKF(din[i] == want_avg[i], "avg i=%d %g", i, din[i]);
    memset(din, 0, sizeof din);
    ams_ref_maxpool_backward(NULL, din, g, in, &d);
    const float want_max[9] = {0, 0, 0, 0, 1, 2, 0, 3, 4};
    for (int i = 0; i < 9; i++) CHECKF(din[i] == want_max[i], "max i=%d %g", i, din[i]);

    /* global average pool: (1,2,2,2) -> per-channel means; backward spreads 1/4 */
    float gin[8] = {1, 10, 2, 20, 3, 30, 6, 60}, gout[2], gd[8] = {0};
    ams_ref_global_avgpool_forward(NULL, gout, gin, 1, 2, 2, 2);
    CHECK(gout[0] == 3.0f && gout[1] == 30.0f);
    const float gg[2] = {4, 8};
    ams_ref_global_avgpool_backward(NULL, gd, gg, 1, 2, 2, 2);
    for (int i = 0; i < 8; i++) CHECK(gd[i] == (i % 2 ? 2.0f : 1.0f));
    return 0;
}

/* Ties: the whole gradient goes to the first maximum in row-major window order. */
static int test_max_ties(void) {
    {
        float in[4] = {1, 3, 3, 2}, out, dout = 5, din[4] = {0};
        ams_pool2d_desc d = make_pool(1, 2, 2, 1, 2, 2, 1, 1, 0, 0, 0, 0);
        ams_ref_maxpool_forward(NULL, &out, in, &d);
        CHECK(out == 3.0f);
        ams_ref_maxpool_backward(NULL, din, &dout, in, &d);
        CHECK(din[0] == 0 && din[1] == 5 && din[2] == 0 && din[3] == 0);
    }
    {
        /* all equal, overlapping 2x2 windows (stride 1): each window's top-left wins */
        float in[9] = {0}, dout[4] = {1, 2, 3, 4}, din[9] = {0};
        ams_pool2d_desc d = make_pool(1, 3, 3, 1, 2, 2, 1, 1, 0, 0, 0, 0);
        ams_ref_maxpool_backward(NULL, din, dout, in, &d);
        const float want[9] = {1, 2, 0, 3, 4, 0, 0, 0, 0};
        for (int i = 0; i < 9; i++) CHECKF(din[i] == want[i], "i=%d %g", i, din[i]);
    }
    {
        /* negative values with padding: padding must not act as a 0 (or -inf) candidate */
        float in[4] = {-4, -3, -2, -1}, out[4], dout[4] = {1, 1, 1, 1}, din[4] = {0};
        ams_pool2d_desc d = make_pool(1, 2, 2, 1, 3, 3, 1, 1, 1, 1, 1, 1);
        CHECK(d.oh == 2 && d.ow == 2);
        ams_ref_maxpool_forward(NULL, out, in, &d);
        for (int i = 0; i < 4; i++) CHECK(out[i] == -1.0f);
        ams_ref_maxpool_backward(NULL, din, dout, in, &d);
        CHECK(din[0] == 0 && din[1] == 0 && din[2] == 0 && din[3] == 4);
    }
    return 0;
}

/* A window that covers only padding (padding >= kernel; TF never builds one) gives 0 and
 * passes no gradient, for both pools. */
static int test_empty_window(void) {
    float in[2] = {7, 9}, out[3], dout[3] = {1, 1, 1}, din[2] = {0};
    ams_pool2d_desc d = make_pool(1, 2, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0);
    CHECK(d.oh == 3 && d.ow == 1);
    kt_set(out, 3, NAN);
    ams_ref_avgpool_forward(NULL, out, in, &d);
    CHECK(out[0] == 0 && out[1] == 7 && out[2] == 9);
    kt_set(out, 3, NAN);
    ams_ref_maxpool_forward(NULL, out, in, &d);
    CHECK(out[0] == 0 && out[1] == 7 && out[2] == 9);
    ams_ref_avgpool_backward(NULL, din, dout, &d);
    ams_ref_maxpool_backward(NULL, din, dout, in, &d);
    CHECK(din[0] == 2 && din[1] == 2);
    return 0;
}

static int test_vs_naive(void) {
    ams_rng r;
    ams_rng_seed(&r, 101);
    for (int i = 0; i < N_CASES; i++) {
        ams_pool2d_desc d = any_case(i, &r);
        size_t ni = in_size(&d), no = out_size(&d);
        float *x = kt_alloc(ni), *y = kt_alloc(no);
        double *ref = malloc(no * sizeof *ref);
        kt_fill(&r, x, ni, -3, 1); /* mostly negative: a 0 from padding would show */
        double worst = 0;
        for (int is_max = 0; is_max < 2; is_max++) {
            kt_set(y, no, NAN); /* forward overwrites */
            if (is_max)
                ams_ref_maxpool_forward(NULL, y, x, &d);
            else
                ams_ref_avgpool_forward(NULL, y, x, &d);
            naive_pool(ref, x, &d, is_max);
            for (size_t k = 0; k < no; k++) {
                double e = fabs(y[k] - ref[k]);
                if (!(e <= worst)) worst = e;
            }
        }
        free(x), free(y), free(ref);
        CHECKF(worst < 1e-6, "case %d err %g", i, worst);
    }
    return 0;
}

/* ---- finite differences ---- */

typedef struct fd_ctx {
    const ams_pool2d_desc *d;
    int kind; /* 0 avg, 1 max, 2 global avg */
    float *x, *y;
    const float *r;
    size_t ny;
} fd_ctx;

static double fd_loss(void *p) {
    fd_ctx *c = p;
    const ams_pool2d_desc *d = c->d;
    if (c->kind == 0) ams_ref_avgpool_forward(NULL, c->y, c->x, d);
    if (c->kind == 1) ams_ref_maxpool_forward(NULL, c->y, c->x, d);
    if (c->kind == 2) ams_ref_global_avgpool_forward(NULL, c->y, c->x, d->n, d->h, d->w, d->c);
    return kt_dot(c->y, c->r, c->ny);
}

/* Distinct values 0.01 apart in random order, so that a +-h probe never changes which
 * element of a window is the maximum (max pooling is piecewise linear). */
static void fill_distinct(ams_rng *r, float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = 0.01f * (float)i - 0.005f * (float)n;
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(ams_rng_u64(r) % i);
        float t = x[i - 1];
        x[i - 1] = x[j];
        x[j] = t;
    }
}

static int test_gradcheck(void) {
    ams_rng r;
    ams_rng_seed(&r, 111);
    for (int i = 0; i < N_CASES; i++) {
        ams_pool2d_desc d = any_case(i, &r);
        for (int kind = 0; kind < 3; kind++) {
            size_t ni = in_size(&d), no = kind == 2 ? (size_t)d.n * d.c : out_size(&d);
            float *x = kt_alloc(ni), *y = kt_alloc(no), *rr = kt_alloc(no);
            float *dx = kt_alloc(ni), *base = kt_alloc(ni);
            fill_distinct(&r, x, ni);
            kt_fill(&r, rr, no, -1, 1);
            kt_fill(&r, base, ni, -2, 2);
            memcpy(dx, base, ni * sizeof *dx); /* backward accumulates */
            if (kind == 0) ams_ref_avgpool_backward(NULL, dx, rr, &d);
            if (kind == 1) ams_ref_maxpool_backward(NULL, dx, rr, x, &d);
            if (kind == 2) ams_ref_global_avgpool_backward(NULL, dx, rr, d.n, d.h, d.w, d.c);
            for (size_t k = 0; k < ni; k++) dx[k] -= base[k];
            fd_ctx c = {&d, kind, x, y, rr, no};
            char what[64];
            snprintf(what, sizeof what, "%s case %d", kind == 0 ? "avg" : kind == 1 ? "max" : "global",
                     i);
            /* h below half the 0.01 spacing; the ops are linear between kinks */
            int fail = kt_gradcheck(what, fd_loss, &c, x, dx, ni, 0.004f, 2e-4, &r);
            free(x), free(y), free(rr), free(dx), free(base);
            CHECK(fail == 0);
        }
    }
    return 0;
}

/* ---- PyTorch fixtures: <name>_desc int32[14] = n h w c oh ow kh kw sh sw pt pb pl pr;
 *      <name> float32 = x y dy dx ---- */
static int check_fixture(const char *name, int is_max) {
    char key[128];
    int v[14];
    snprintf(key, sizeof key, "%s_desc", name);
    CHECK(kt_load_ints(key, v, 14) == 0);
    ams_pool2d_desc d = make_pool(v[0], v[1], v[2], v[3], v[6], v[7], v[8], v[9], v[10], v[11],
                                  v[12], v[13]);
    CHECK(d.oh == v[4] && d.ow == v[5]);
    size_t ni = in_size(&d), no = out_size(&d);
    ams_tensor *t = kt_load(name, (int64_t)(2 * ni + 2 * no));
    CHECK(t != NULL);
    const float *x = t->data, *ey = x + ni, *dy = ey + no, *edx = dy + no;
    float *y = kt_alloc(no), *dx = kt_alloc(ni);
    if (is_max) {
        ams_ref_maxpool_forward(NULL, y, x, &d);
        ams_ref_maxpool_backward(NULL, dx, dy, x, &d);
    } else {
        ams_ref_avgpool_forward(NULL, y, x, &d);
        ams_ref_avgpool_backward(NULL, dx, dy, &d);
    }
    double e_y = check_max_abs_diff(y, ey, no), e_x = check_max_abs_diff(dx, edx, ni);
    free(y), free(dx);
    ams_tensor_free(t);
    CHECKF(e_y < 1e-5 && e_x < 1e-5, "%s: y %g dx %g", name, e_y, e_x);
    return 0;
}

static int test_torch_fixtures(void) {
    CHECK(check_fixture("avgpool", 0) == 0);
    CHECK(check_fixture("avgpool_same", 0) == 0);
    CHECK(check_fixture("maxpool", 1) == 0);
    CHECK(check_fixture("maxpool_same", 1) == 0);
    return 0;
}

int main(int argc, char **argv) {
    static const check_case cases[] = {
        {"hand", test_hand},
        {"max_ties", test_max_ties},
        {"empty_window", test_empty_window},
        {"vs_naive", test_vs_naive},
        {"gradcheck", test_gradcheck},
        {"torch_fixtures", test_torch_fixtures},
    };
    return check_run(cases, sizeof cases / sizeof cases[0], argc, argv);
}
