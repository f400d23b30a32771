/* test_ref_batchnorm.c - the reference frozen batch norm (rows, c): forward against a
 * hand-computed case, a double-precision oracle (channel counts across the kernel's
 * 64-channel blocks) and PyTorch's eval-mode BatchNorm2d (tools/ref/make_batchnorm_fixture.py);
 * din / dgamma / dbeta against central differences, a double oracle and PyTorch autograd,
 * with += and NULL semantics; the double accumulation of dgamma / dbeta over many rows. */
#include <math.h>

#include "kernel_testlib.h"
#include "nn/ref/ref_kernels.h"

/* the seeds are fixed; AMS_TEST_SEED=N varies them all (to hunt for a flaky tolerance) */
#define SEED (0xb47c4ULL ^ seed_env())

static uint64_t seed_env(void) {
    const char *s = getenv("AMS_TEST_SEED");
    return s ? strtoull(s, NULL, 0) : 0;
}

static int test_hand(void) {
    /* eps 0 so that every number is exact: (x - mean) / sqrt(var) * gamma + beta */
    const float in[] = {1, 2, 3, 4}, mean[] = {1, 2}, var[] = {4, 0.25f};
    const float gamma[] = {2, -1}, beta[] = {0.5f, 1};
    float out[4];
    ams_ref_batchnorm_forward(NULL, out, in, gamma, beta, mean, var, 0.0f, 2, 2);
    CHECK(check_max_abs_diff(out, (const float[]){0.5f, 1, 2.5f, -3}, 4) == 0);
    /* dout = 1: din = gamma / sqrt(var), dgamma = sum (x - mean) / sqrt(var), dbeta = rows */
    const float dout[] = {1, 1, 1, 1};
    float din[4] = {0}, dgamma[2] = {0}, dbeta[2] = {0};
    ams_ref_batchnorm_backward(NULL, din, dgamma, dbeta, dout, in, gamma, mean, var, 0.0f, 2, 2);
    CHECK(check_max_abs_diff(din, (const float[]){1, -2, 1, -2}, 4) == 0);
    CHECK(check_max_abs_diff(dgamma, (const float[]){1, 4}, 2) == 0);
    CHECK(check_max_abs_diff(dbeta, (const float[]){2, 2}, 2) == 0);
    return 0;
}

typedef struct {
    float *in, *gamma, *beta, *mean, *var, *out, *w;
    float eps;
    int64_t rows;
    int c;
} bn_case;

static void bn_new(bn_case *b, int64_t rows, int c, ams_rng *r) {
    size_t n = (size_t)(rows * c);
    b->rows = rows, b->c = c, b->eps = 1e-3f;
    b->in = kt_alloc(n), b->out = kt_alloc(n), b->w = kt_alloc(n);
    b->gamma = kt_alloc(c), b->beta = kt_alloc(c), b->mean = kt_alloc(c), b->var = kt_alloc(c);
    kt_fill(r, b->in, n, -3, 3);
    kt_fill(r, b->w, n, -1, 1);
    kt_fill(r, b->gamma, c, -2, 2);
    kt_fill(r, b->beta, c, -1, 1);
    kt_fill(r, b->mean, c, -1, 1);
    kt_fill(r, b->var, c, 0.05f, 3);
}

static void bn_free(bn_case *b) {
    free(b->in), free(b->out), free(b->w), free(b->gamma), free(b->beta), free(b->mean),
        free(b->var);
}

static double bn_loss(void *p) {
    bn_case *b = p;
    ams_ref_batchnorm_forward(NULL, b->out, b->in, b->gamma, b->beta, b->mean, b->var, b->eps,
                              b->rows, b->c);
    return kt_dot(b->w, b->out, (size_t)(b->rows * b->c));
}

static int test_forward_oracle(void) {
    ams_rng r;
    ams_rng_seed(&r, SEED);
    const int cs[] = {1, 13, 64, 70, 130};
    for (size_t t = 0; t < sizeof cs / sizeof cs[0]; t++) {
        bn_case b;
        bn_new(&b, kt_randint(&r, 1, 9), cs[t], &r);
        bn_loss(&b);
        double worst = 0;
        for (int64_t i = 0; i < b.rows; i++)
            for (int j = 0; j < b.c; j++) {
                double want = ((double)b.in[i * b.c + j] - b.mean[j]) /
                                  sqrt((double)b.var[j] + (double)b.eps) * b.gamma[j] +
                              b.beta[j];
                double e = fabs(b.out[i * b.c + j] - want) / (1 + fabs(want));
                if (e > worst) worst = e;
            }
        bn_free(&b);
        CHECKF(worst < 1e-6, "c=%d: worst relative error %.3g", cs[t], worst);
    }
    return 0;
}

static int test_gradients(void) {
    ams_rng r;
    ams_rng_seed(&r, SEED + 1);
    const int cs[] = {1, 5, 67, 130};
    for (size_t t = 0; t < sizeof cs / sizeof cs[0]; t++) {
        bn_case b;
        bn_new(&b, kt_randint(&r, 1, 7), cs[t], &r);
        size_t n = (size_t)(b.rows * b.c), c = (size_t)b.c;
        float *din = kt_alloc(n), *dg = kt_alloc(c), *db = kt_alloc(c);
        float *b0 = kt_alloc(n), *bg = kt_alloc(c), *bb = kt_alloc(c);
        float *gin = kt_alloc(n), *gg = kt_alloc(c), *gb = kt_alloc(c);
        kt_fill(&r, b0, n, -1, 1);
        kt_fill(&r, bg, c, -1, 1);
        kt_fill(&r, bb, c, -1, 1);
        memcpy(din, b0, n * 4), memcpy(dg, bg, c * 4), memcpy(db, bb, c * 4);
        ams_ref_batchnorm_backward(NULL, din, dg, db, b.w, b.in, b.gamma, b.mean, b.var, b.eps,
                                   b.rows, b.c);
        for (size_t i = 0; i < n; i++) gin[i] = din[i] - b0[i];
        for (size_t j = 0; j < c; j++) gg[j] = dg[j] - bg[j], gb[j] = db[j] - bb[j];
        int bad = kt_gradcheck("bn din", bn_loss, &b, b.in, gin, n, 1e-2f, 1e-4, &r);
        bad |= kt_gradcheck("bn dgamma", bn_loss, &b, b.gamma, gg, c, 1e-2f, 1e-4, &r);
        bad |= kt_gradcheck("bn dbeta", bn_loss, &b, b.beta, gb, c, 1e-2f, 1e-4, &r);
        /* FD probes a sample; a double oracle covers every element */
        for (int j = 0; j < b.c; j++) {
            double inv = 1 / sqrt((double)b.var[j] + (double)b.eps), sg = 0, sb = 0;
            for (int64_t i = 0; i < b.rows; i++) {
                double w = b.w[i * b.c + j];
                sg += w * ((double)b.in[i * b.c + j] - b.mean[j]) * inv;
                sb += w;
                if (fabs(gin[i * b.c + j] - w * b.gamma[j] * inv) > 1e-5 * (1 + fabs(w * inv)))
                    bad |= 2;
            }
            if (fabs(gg[j] - sg) > 1e-5 * (1 + fabs(sg))) bad |= 4;
            if (fabs(gb[j] - sb) > 1e-5 * (1 + fabs(sb))) bad |= 8;
        }

        /* each gradient alone (the others NULL) is bit-identical to all three at once */
        float *din2 = kt_dup(b0, n), *dg2 = kt_dup(bg, c), *db2 = kt_dup(bb, c);
        ams_ref_batchnorm_backward(NULL, din2, NULL, NULL, b.w, b.in, b.gamma, b.mean, b.var,
                                   b.eps, b.rows, b.c);
        ams_ref_batchnorm_backward(NULL, NULL, dg2, NULL, b.w, b.in, b.gamma, b.mean, b.var,
                                   b.eps, b.rows, b.c);
        ams_ref_batchnorm_backward(NULL, NULL, NULL, db2, b.w, b.in, b.gamma, b.mean, b.var,
                                   b.eps, b.rows, b.c);
        ams_ref_batchnorm_backward(NULL, NULL, NULL, NULL, b.w, b.in, b.gamma, b.mean, b.var,
                                   b.eps, b.rows, b.c);
        bad |= memcmp(din, din2, n * 4) != 0;
        bad |= memcmp(dg, dg2, c * 4) != 0;
        bad |= memcmp(db, db2, c * 4) != 0;
        free(din), free(dg), free(db), free(b0), free(bg), free(bb), free(gin), free(gg),
            free(gb), free(din2), free(dg2), free(db2);
        bn_free(&b);
        CHECKF(!bad, "c=%d: failure bits %d", cs[t], bad);
    }
    return 0;
}

static int test_many_rows(void) {
    /* dbeta = sum of 300000 x 0.1: float accumulation drifts by whole units here */
    const int64_t rows = 300000;
    const int c = 3;
    float *dout = kt_alloc(rows * c), *in = kt_alloc(rows * c);
    kt_set(dout, rows * c, 0.1f);
    kt_set(in, rows * c, 2.0f);
    const float gamma[] = {1, 1, 1}, mean[] = {1, 1, 1}, var[] = {1, 1, 1};
    float dgamma[3] = {0}, dbeta[3] = {0};
    ams_ref_batchnorm_backward(NULL, NULL, dgamma, dbeta, dout, in, gamma, mean, var, 0.0f, rows,
                               c);
    free(dout), free(in);
    double want = (double)rows * (double)0.1f;
    for (int j = 0; j < c; j++) {
        CHECKF(fabs(dbeta[j] - want) <= 1e-6 * want, "dbeta %.9g want %.9g", (double)dbeta[j],
               want);
        CHECKF(fabs(dgamma[j] - want) <= 1e-6 * want, "dgamma %.9g want %.9g", (double)dgamma[j],
               want);
    }
    return 0;
}

/* tests/data/batchnorm/<name>.npy of dtype with numel elements, or NULL after a message */
static ams_tensor *load_npy(const char *name, ams_dtype dtype, int64_t numel) {
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/data/batchnorm/%s.npy", AMS_SOURCE_DIR, name);
    ams_tensor *t = NULL;
    ams_err err = {0};
    if (ams_npy_read(path, &t, &err) != AMS_OK) {
        fprintf(stderr, "fixture: %s\n", err.msg);
        return NULL;
    }
    if (t->dtype != dtype || ams_tensor_numel(t) != numel) {
        fprintf(stderr, "fixture %s: %lld elements of %s, want %lld of %s\n", path,
                (long long)ams_tensor_numel(t), ams_dtype_name(t->dtype), (long long)numel,
                ams_dtype_name(dtype));
        ams_tensor_free(t);
        return NULL;
    }
    return t;
}

/* torch.nn.BatchNorm2d in eval mode (tools/ref/make_batchnorm_fixture.py): output and the
 * autograd gradients of input, gamma and beta for a random dy */
static int test_torch_fixture(void) {
    ams_tensor *desc = load_npy("bn_desc", AMS_I32, 2);
    CHECK(desc != NULL);
    int64_t rows = ((int32_t *)desc->data)[0];
    int c = ((int32_t *)desc->data)[1];
    ams_tensor_free(desc);
    CHECK(rows > 0 && rows < 4096 && c > 0 && c < 4096);
    int64_t n = rows * c;
    ams_tensor *t = load_npy("bn", AMS_F32, 1 + 4 * n + 6 * c);
    CHECK(t != NULL);
    const float *v = t->data;
    float eps = v[0];
    const float *x = v + 1, *gamma = x + n, *beta = gamma + c, *mean = beta + c,
                *var = mean + c, *y = var + c, *dy = y + n, *dx = dy + n, *dgamma = dx + n,
                *dbeta = dgamma + c;
    float *out = kt_alloc(n), *din = kt_alloc(n), *dg = kt_alloc(c), *db = kt_alloc(c);
    ams_ref_batchnorm_forward(NULL, out, x, gamma, beta, mean, var, eps, rows, c);
    ams_ref_batchnorm_backward(NULL, din, dg, db, dy, x, gamma, mean, var, eps, rows, c);
    /* torch folds (x - mean) * rsqrt(var + eps) * gamma + beta into x * a + b: a few ulp */
    double ey = check_max_abs_diff(out, y, n) / (1 + kt_max_abs(y, n));
    double ex = check_max_abs_diff(din, dx, n) / (1 + kt_max_abs(dx, n));
    double eg = check_max_abs_diff(dg, dgamma, c) / (1 + kt_max_abs(dgamma, c));
    double eb = check_max_abs_diff(db, dbeta, c) / (1 + kt_max_abs(dbeta, c));
    fprintf(stderr, "  vs torch (relative to max): y %.2g, din %.2g, dgamma %.2g, dbeta %.2g\n",
            ey, ex, eg, eb);
    free(out), free(din), free(dg), free(db);
    ams_tensor_free(t);
    CHECK(ey < 1e-6 && ex < 1e-6 && eg < 1e-6 && eb < 1e-6);
    return 0;
}

int main(int argc, char **argv) {
    static const check_case cases[] = {
        {"hand", test_hand},
        {"forward_oracle", test_forward_oracle},
        {"gradients", test_gradients},
        {"many_rows", test_many_rows},
        {"torch_fixture", test_torch_fixture},
    };
    return check_run(cases, sizeof cases / sizeof cases[0], argc, argv);
}
