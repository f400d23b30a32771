/* test_ref_resize.c - the reference bilinear resize (TF asymmetric / align_corners /
 * half_pixel rules) against hand-computed values, a naive "tent filter" oracle in double
 * written here, the adjoint identity and finite differences for the backward, and PyTorch
 * fixtures (F.interpolate, F.grid_sample; tools/ref/make_kernel_fixtures.py). */
#include "kernel_testlib.h"
#include "nn/ref/ref_kernels.h"

static const ams_resize_mode modes[3] = {AMS_RESIZE_ASYMMETRIC, AMS_RESIZE_ALIGN_CORNERS,
                                         AMS_RESIZE_HALF_PIXEL};

/* Resizes a (1,1,in,1) row to (1,1,out,1) and compares with want[]. */
static int row_case(ams_resize_mode mode, const float *in, int nin, const float *want, int nout) {
    float out[16];
    kt_set(out, 16, NAN);
    ams_ref_resize_bilinear_forward(NULL, out, in, 1, 1, nin, 1, 1, nout, mode);
    for (int i = 0; i < nout; i++)
        CHECKF(fabsf(out[i] - want[i]) < 1e-6f, "mode %d %d->%d: out[%d] = %g, want %g",
               (int)mode, nin, nout, i, out[i], want[i]);
    /* the same along the other axis: (1,in,1,1) -> (1,out,1,1) */
    kt_set(out, 16, NAN);
    ams_ref_resize_bilinear_forward(NULL, out, in, 1, nin, 1, 1, nout, 1, mode);
    for (int i = 0; i < nout; i++) CHECKF(fabsf(out[i] - want[i]) < 1e-6f, "column %d", i);
    return 0;
}

static int test_hand(void) {
    const float r2[2] = {0, 1}, r4[4] = {0, 1, 2, 3};
    /* up 2 -> 4 */
    CHECK(row_case(AMS_RESIZE_ASYMMETRIC, r2, 2, (const float[]){0, 0.5f, 1, 1}, 4) == 0);
    CHECK(row_case(AMS_RESIZE_ALIGN_CORNERS, r2, 2, (const float[]){0, 1.f / 3, 2.f / 3, 1}, 4) == 0);
    /* half pixel: src = -0.25 (clamped to 0), 0.25, 0.75, 1.25 (past the last row) */
    CHECK(row_case(AMS_RESIZE_HALF_PIXEL, r2, 2, (const float[]){0, 0.25f, 0.75f, 1}, 4) == 0);
    /* down 4 -> 2 */
    CHECK(row_case(AMS_RESIZE_ASYMMETRIC, r4, 4, (const float[]){0, 2}, 2) == 0);
    CHECK(row_case(AMS_RESIZE_ALIGN_CORNERS, r4, 4, (const float[]){0, 3}, 2) == 0);
    CHECK(row_case(AMS_RESIZE_HALF_PIXEL, r4, 4, (const float[]){0.5f, 2.5f}, 2) == 0);
    /* 4 -> 3: asymmetric src 0, 4/3, 8/3; align 0, 1.5, 3; half 1/6, 1.5, 17/6 */
    CHECK(row_case(AMS_RESIZE_ASYMMETRIC, r4, 4, (const float[]){0, 4.f / 3, 8.f / 3}, 3) == 0);
    CHECK(row_case(AMS_RESIZE_ALIGN_CORNERS, r4, 4, (const float[]){0, 1.5f, 3}, 3) == 0);
    CHECK(row_case(AMS_RESIZE_HALF_PIXEL, r4, 4, (const float[]){1.f / 6, 1.5f, 17.f / 6}, 3) == 0);
    /* out == 1 with align_corners reads the first element */
    CHECK(row_case(AMS_RESIZE_ALIGN_CORNERS, r4, 4, (const float[]){0}, 1) == 0);
    /* same size is the identity in every mode */
    for (int m = 0; m < 3; m++) CHECK(row_case(modes[m], r4, 4, r4, 4) == 0);

    /* 2-D, 2 channels: [[0 1],[2 3]] (and x10) -> 3x3 align_corners */
    float in[8] = {0, 0, 1, 10, 2, 20, 3, 30}, out[18];
    ams_ref_resize_bilinear_forward(NULL, out, in, 1, 2, 2, 2, 3, 3, AMS_RESIZE_ALIGN_CORNERS);
    const float want[9] = {0, 0.5f, 1, 1, 1.5f, 2, 2, 2.5f, 3};
    for (int i = 0; i < 9; i++) {
        CHECKF(fabsf(out[2 * i] - want[i]) < 1e-6f, "i=%d", i);
        CHECKF(fabsf(out[2 * i + 1] - 10 * want[i]) < 1e-5f, "i=%d", i);
    }

    /* backward, asymmetric 2 -> 4 (taps 0 | .5,.5 | 1 | 1 of x1): din += {1.5, 2.5} */
    float dout[4] = {1, 1, 1, 1}, din[2] = {10, 20};
    ams_ref_resize_bilinear_backward(NULL, din, dout, 1, 1, 2, 1, 1, 4, AMS_RESIZE_ASYMMETRIC);
    CHECK(din[0] == 11.5f && din[1] == 22.5f);
    return 0;
}

/* ---- naive oracle: a tent filter over every input element, in double ---- */
static double src_coord(int i, int in, int out, ams_resize_mode mode) {
    double s;
    if (mode == AMS_RESIZE_ALIGN_CORNERS)
        s = out > 1 ? (double)i * (in - 1) / (out - 1) : 0.0;
    else if (mode == AMS_RESIZE_HALF_PIXEL)
        s = (i + 0.5) * in / out - 0.5;
    else
        s = (double)i * in / out;
    return s < 0 ? 0 : s > in - 1 ? in - 1 : s;
}

static void naive_resize(double *out, const float *in, int n, int h, int w, int c, int oh,
                         int ow, ams_resize_mode mode) {
    for (int b = 0; b < n; b++)
        for (int y = 0; y < oh; y++)
            for (int x = 0; x < ow; x++)
                for (int k = 0; k < c; k++) {
                    double sy = src_coord(y, h, oh, mode), sx = src_coord(x, w, ow, mode), s = 0;
                    for (int i = 0; i < h; i++)
                        for (int j = 0; j < w; j++) {
                            double wy = fmax(0.0, 1.0 - fabs(sy - i));
                            double wx = fmax(0.0, 1.0 - fabs(sx - j));
                            s += wy * wx * in[((b * h + i) * w + j) * c + k];
                        }
                    out[((b * oh + y) * ow + x) * c + k] = s;
                }
}

typedef struct rcase {
    int n, h, w, c, oh, ow;
} rcase;

#define N_CASES 24
static rcase any_case(int i, ams_rng *r) {
    /* up, down, identity, 1-pixel axes, x2, and DeepLab's (k*16+1) -> (k*64+1) */
    static const rcase fixed[] = {{2, 3, 4, 3, 7, 9}, {1, 7, 9, 2, 3, 5},  {1, 5, 5, 1, 5, 5},
                                  {2, 1, 6, 2, 4, 1}, {1, 6, 8, 3, 12, 16}, {1, 17, 17, 2, 65, 65}};
    if (i < (int)(sizeof fixed / sizeof fixed[0])) return fixed[i];
    rcase c = {kt_randint(r, 1, 2), kt_randint(r, 1, 7), kt_randint(r, 1, 7),
               kt_randint(r, 1, 3), kt_randint(r, 1, 9), kt_randint(r, 1, 9)};
    return c;
}

static size_t in_size(const rcase *c) { return (size_t)c->n * c->h * c->w * c->c; }
static size_t out_size(const rcase *c) { return (size_t)c->n * c->oh * c->ow * c->c; }

static int test_vs_naive(void) {
    ams_rng r;
    ams_rng_seed(&r, 201);
    for (int i = 0; i < N_CASES; i++) {
        rcase rc = any_case(i, &r);
        size_t ni = in_size(&rc), no = out_size(&rc);
        float *x = kt_alloc(ni), *y = kt_alloc(no);
        double *ref = malloc(no * sizeof *ref);
        kt_fill(&r, x, ni, -1, 1);
        for (int m = 0; m < 3; m++) {
            kt_set(y, no, NAN);
            ams_ref_resize_bilinear_forward(NULL, y, x, rc.n, rc.h, rc.w, rc.c, rc.oh, rc.ow,
                                            modes[m]);
            naive_resize(ref, x, rc.n, rc.h, rc.w, rc.c, rc.oh, rc.ow, modes[m]);
            double worst = 0;
            for (size_t k = 0; k < no; k++) {
                double e = fabs(y[k] - ref[k]);
                if (!(e <= worst)) worst = e;
            }
            CHECKF(worst < 1e-5, "case %d mode %d err %g", i, m, worst);
        }
        free(x), free(y), free(ref);
    }
    return 0;
}

/* <resize(x), y> == <x, resize_backward(y)>: the backward is exactly the adjoint. The
 * backward accumulates onto a prefilled din. */
static int test_adjoint(void) {
    ams_rng r;
    ams_rng_seed(&r, 211);
    for (int i = 0; i < N_CASES; i++) {
        rcase rc = any_case(i, &r);
        size_t ni = in_size(&rc), no = out_size(&rc);
        float *x = kt_alloc(ni), *y = kt_alloc(no), *rx = kt_alloc(no), *ty = kt_alloc(ni);
        float *base = kt_alloc(ni);
        kt_fill(&r, x, ni, -1, 1);
        kt_fill(&r, y, no, -1, 1);
        kt_fill(&r, base, ni, -1, 1);
        for (int m = 0; m < 3; m++) {
            memcpy(ty, base, ni * sizeof *ty);
            ams_ref_resize_bilinear_forward(NULL, rx, x, rc.n, rc.h, rc.w, rc.c, rc.oh, rc.ow,
                                            modes[m]);
            ams_ref_resize_bilinear_backward(NULL, ty, y, rc.n, rc.h, rc.w, rc.c, rc.oh, rc.ow,
                                             modes[m]);
            for (size_t k = 0; k < ni; k++) ty[k] -= base[k];
            double lhs = kt_dot(rx, y, no), rhs = kt_dot(x, ty, ni);
            double scale = 1.0 + sqrt(kt_dot(rx, rx, no) * kt_dot(y, y, no));
            CHECKF(fabs(lhs - rhs) <= 1e-5 * scale, "case %d mode %d: %.9g vs %.9g", i, m, lhs, rhs);
        }
        free(x), free(y), free(rx), free(ty), free(base);
    }
    return 0;
}

typedef struct fd_ctx {
    rcase rc;
    ams_resize_mode mode;
    float *x, *y;
    const float *r;
} fd_ctx;

static double fd_loss(void *p) {
    fd_ctx *c = p;
    ams_ref_resize_bilinear_forward(NULL, c->y, c->x, c->rc.n, c->rc.h, c->rc.w, c->rc.c, c->rc.oh,
                                    c->rc.ow, c->mode);
    return kt_dot(c->y, c->r, out_size(&c->rc));
}

static int test_gradcheck(void) {
    ams_rng r;
    ams_rng_seed(&r, 221);
    for (int i = 0; i < N_CASES; i++) {
        rcase rc = any_case(i, &r);
        size_t ni = in_size(&rc), no = out_size(&rc);
        float *x = kt_alloc(ni), *y = kt_alloc(no), *rr = kt_alloc(no), *dx = kt_alloc(ni);
        kt_fill(&r, x, ni, -1, 1);
        kt_fill(&r, rr, no, -1, 1);
        for (int m = 0; m < 3; m++) {
            memset(dx, 0, ni * sizeof *dx);
            ams_ref_resize_bilinear_backward(NULL, dx, rr, rc.n, rc.h, rc.w, rc.c, rc.oh, rc.ow,
                                             modes[m]);
            fd_ctx c = {rc, modes[m], x, y, rr};
            char what[64];
            snprintf(what, sizeof what, "case %d mode %d", i, m);
            CHECK(kt_gradcheck(what, fd_loss, &c, x, dx, ni, 0.05f, 2e-4, &r) == 0);
        }
        free(x), free(y), free(rr), free(dx);
    }
    return 0;
}

/* PyTorch fixtures: <name>_desc int32[7] = n h w c oh ow mode; <name> float32 = x y dy dx */
static int check_fixture(const char *name) {
    char key[128];
    int v[7];
    snprintf(key, sizeof key, "%s_desc", name);
    CHECK(kt_load_ints(key, v, 7) == 0);
    rcase rc = {v[0], v[1], v[2], v[3], v[4], v[5]};
    CHECK(v[6] >= 0 && v[6] <= 2);
    ams_resize_mode mode = modes[v[6]];
    size_t ni = in_size(&rc), no = out_size(&rc);
    ams_tensor *t = kt_load(name, (int64_t)(2 * ni + 2 * no));
    CHECK(t != NULL);
    const float *x = t->data, *ey = x + ni, *dy = ey + no, *edx = dy + no;
    float *y = kt_alloc(no), *dx = kt_alloc(ni);
    ams_ref_resize_bilinear_forward(NULL, y, x, rc.n, rc.h, rc.w, rc.c, rc.oh, rc.ow, mode);
    ams_ref_resize_bilinear_backward(NULL, dx, dy, rc.n, rc.h, rc.w, rc.c, rc.oh, rc.ow, mode);
    double e_y = check_max_abs_diff(y, ey, no), e_x = check_max_abs_diff(dx, edx, ni);
    free(y), free(dx);
    ams_tensor_free(t);
    CHECKF(e_y < 1e-5 && e_x < 1e-5, "%s: y %g dx %g", name, e_y, e_x);
    return 0;
}

static int test_torch_fixtures(void) {
    static const char *names[] = {"resize_asym_up",  "resize_asym_down", "resize_align_up",
                                  "resize_align_down", "resize_half_up",  "resize_half_down",
                                  "resize_align_one"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        CHECKF(check_fixture(names[i]) == 0, "%s", names[i]);
    return 0;
}

int main(int argc, char **argv) {
    static const check_case cases[] = {
        {"hand", test_hand},
        {"vs_naive", test_vs_naive},
        {"adjoint", test_adjoint},
        {"gradcheck", test_gradcheck},
        {"torch_fixtures", test_torch_fixtures},
    };
    return check_run(cases, sizeof cases / sizeof cases[0], argc, argv);
}
