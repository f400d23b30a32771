/* test_ref_losses.c - the reference losses: softmax cross-entropy (ignore label 255, class
 * subsets) and binary cross-entropy on logits. Values against hand-computed cases and a
 * PyTorch fixture (tools/ref/make_loss_fixtures.py -> tests/data/losses/ (.npy): loss,
 * count and autograd gradients), gradients against central differences, and the edges:
 * nothing counted -> loss 0, count 0, no gradient, no NaN; logits of 1e4 -> finite. */
#include <math.h>

#include "kernel_testlib.h"
#include "nn/ref/ref_kernels.h"

/* the seeds are fixed; AMS_TEST_SEED=N varies them all (to hunt for a flaky tolerance) */
#define SEED (0x1055ULL ^ seed_env())

static uint64_t seed_env(void) {
    const char *s = getenv("AMS_TEST_SEED");
    return s ? strtoull(s, NULL, 0) : 0;
}

/* ---------- fixtures (layout in tools/ref/make_loss_fixtures.py) ---------- */

/* tests/data/losses/<name>.npy, checked to hold numel elements of dtype; NULL after a
 * message otherwise; the caller frees it with ams_tensor_free */
static ams_tensor *load_npy(const char *name, ams_dtype dtype, int64_t numel) {
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/data/losses/%s.npy", AMS_SOURCE_DIR, name);
    ams_tensor *t = NULL;
    ams_err err = {0};
    if (ams_npy_read(path, &t, &err) != AMS_OK) {
        fprintf(stderr, "fixture: %s\n", err.msg);
        return NULL;
    }
    if (t->dtype != dtype || (numel >= 0 && ams_tensor_numel(t) != numel)) {
        fprintf(stderr, "fixture %s: dtype %s, %lld elements; want %s, %lld\n", path,
                ams_dtype_name(t->dtype), (long long)ams_tensor_numel(t), ams_dtype_name(dtype),
                (long long)numel);
        ams_tensor_free(t);
        return NULL;
    }
    return t;
}

/* ---------- hand-computed values ---------- */

static int test_ce_hand(void) {
    /* pixel 0: uniform logits -> ln 3; pixel 1: ln(e^1+e^2+e^3) - 3; pixel 2 ignored */
    const float x[] = {0, 0, 0, 1, 2, 3, 1e30f, -1e30f, 7};
    const uint8_t lab[] = {1, 2, 255};
    float loss = -1;
    int64_t count = -1;
    ams_ref_softmax_ce_forward(NULL, &loss, &count, x, lab, 3, 3, NULL, 0);
    double l1 = log(exp(1.0) + exp(2.0) + exp(3.0)) - 3;
    CHECK(count == 2);
    CHECKF(fabs(loss - (log(3.0) + l1) / 2) < 1e-6, "loss %.9g", (double)loss);
    float g[9] = {0};
    ams_ref_softmax_ce_backward(NULL, g, 1.0f, x, lab, 3, 3, NULL, 0);
    double z = exp(1.0) + exp(2.0) + exp(3.0);
    const float want[] = {(float)(1 / 6.0), (float)(-1 / 3.0), (float)(1 / 6.0),
                          (float)(exp(1.0) / z / 2), (float)(exp(2.0) / z / 2),
                          (float)((exp(3.0) / z - 1) / 2), 0, 0, 0};
    CHECKF(check_max_abs_diff(g, want, 9) < 1e-7, "diff %.3g", check_max_abs_diff(g, want, 9));
    return 0;
}

static int test_ce_subset_hand(void) {
    /* c = 4, subset {2, 0}: pixel 0 (label 0) -> softmax over (x2, x0) = (2, 1), loss
     * ln(e^2 + e) - 1; pixel 1 has label 1, not in the subset: not counted */
    const float x[] = {1, 5, 2, 100, 3, 3, 3, 3};
    const uint8_t lab[] = {0, 1};
    const int classes[] = {2, 0};
    float loss = -1;
    int64_t count = -1;
    ams_ref_softmax_ce_forward(NULL, &loss, &count, x, lab, 2, 4, classes, 2);
    CHECK(count == 1);
    CHECKF(fabs(loss - (log(exp(2.0) + exp(1.0)) - 1)) < 1e-6, "loss %.9g", (double)loss);
    float g[8] = {0};
    ams_ref_softmax_ce_backward(NULL, g, 2.0f, x, lab, 2, 4, classes, 2);
    double p0 = exp(1.0) / (exp(1.0) + exp(2.0));
    const float want[] = {(float)(2 * (p0 - 1)), 0, (float)(2 * (1 - p0)), 0, 0, 0, 0, 0};
    CHECK(check_max_abs_diff(g, want, 8) < 1e-7);
    return 0;
}

static int test_bce_hand(void) {
    const float x[] = {0, 2, -3, 5};
    const uint8_t lab[] = {1, 0, 1, 255};
    float loss = -1;
    int64_t count = -1;
    ams_ref_bce_logits_forward(NULL, &loss, &count, x, lab, 4);
    /* -log sig(0) = ln 2; -log(1 - sig(2)) = ln(1 + e^2); -log sig(-3) = ln(1 + e^3) */
    double want = (log(2.0) + log(1 + exp(2.0)) + log(1 + exp(3.0))) / 3;
    CHECK(count == 3);
    CHECKF(fabs(loss - want) < 1e-6, "loss %.9g want %.9g", (double)loss, want);
    float g[4] = {0};
    ams_ref_bce_logits_backward(NULL, g, 3.0f, x, lab, 4);
    const float wg[] = {-0.5f, (float)(1 / (1 + exp(-2.0))), (float)(1 / (1 + exp(3.0)) - 1), 0};
    CHECK(check_max_abs_diff(g, wg, 4) < 1e-7);
    return 0;
}

/* ---------- PyTorch fixture ---------- */

/* One case: desc int32 [p, c, nsub, count, classes...], labels uint8 (p), and float32
 * logits (p,c) ++ grad (p,c) ++ loss (1). Loss, count and gradient (d loss = 1) must match
 * PyTorch's. */
static int check_case_vs_torch(const char *name, int bce) {
    char key[64];
    int bad = 1;
    ams_tensor *desc = NULL, *lab = NULL, *vals = NULL;
    float *g = NULL;
    snprintf(key, sizeof key, "%s_desc", name);
    desc = load_npy(key, AMS_I32, -1);
    if (!desc) goto done;
    const int32_t *dv = desc->data;
    int64_t nd = ams_tensor_numel(desc);
    if (nd < 4 || dv[0] < 1 || dv[1] < 1 || dv[2] < 0 || dv[2] > 8 || nd != 4 + dv[2]) goto done;
    int64_t p = dv[0], n = p * dv[1];
    int c = dv[1], nsub = dv[2], cls[8];
    for (int s = 0; s < nsub; s++) cls[s] = dv[4 + s];
    snprintf(key, sizeof key, "%s_labels", name);
    lab = load_npy(key, AMS_U8, p);
    vals = load_npy(name, AMS_F32, 2 * n + 1);
    if (!lab || !vals) goto done;
    const float *x = vals->data, *want_grad = x + n;
    double want = x[2 * n];
    float loss = -1;
    int64_t count = -1;
    g = kt_alloc(n);
    if (bce) {
        ams_ref_bce_logits_forward(NULL, &loss, &count, x, lab->data, p);
        ams_ref_bce_logits_backward(NULL, g, 1.0f, x, lab->data, p);
    } else {
        ams_ref_softmax_ce_forward(NULL, &loss, &count, x, lab->data, p, c, nsub ? cls : NULL,
                                   nsub);
        ams_ref_softmax_ce_backward(NULL, g, 1.0f, x, lab->data, p, c, nsub ? cls : NULL, nsub);
    }
    double gdiff = check_max_abs_diff(g, want_grad, n), rel = fabs(loss - want) / fabs(want);
    fprintf(stderr, "  %-8s loss %.8g torch %.8g (rel %.2g), count %lld, grad max diff %.2g\n",
            name, (double)loss, want, rel, (long long)count, gdiff);
    bad = count != dv[3] || !(rel <= 1e-6) || !(gdiff <= 1e-7);
done:
    if (bad) fprintf(stderr, "fixture case %s failed\n", name);
    free(g);
    ams_tensor_free(desc), ams_tensor_free(lab), ams_tensor_free(vals);
    return bad;
}

static int test_torch_fixture(void) {
    int bad = check_case_vs_torch("ce", 0);
    bad |= check_case_vs_torch("cehuge", 0);
    bad |= check_case_vs_torch("sub", 0);
    bad |= check_case_vs_torch("bce", 1);
    bad |= check_case_vs_torch("bcehuge", 1);
    CHECK(bad == 0);
    return 0;
}

/* ---------- finite differences ---------- */

typedef struct {
    const float *x;
    const uint8_t *lab;
    int64_t p;
    int c, nsub, bce;
    const int *classes;
    float dloss;
} loss_ctx;

static double loss_of(void *v) {
    loss_ctx *l = v;
    float loss;
    int64_t count;
    if (l->bce)
        ams_ref_bce_logits_forward(NULL, &loss, &count, l->x, l->lab, l->p);
    else
        ams_ref_softmax_ce_forward(NULL, &loss, &count, l->x, l->lab, l->p, l->c, l->classes,
                                   l->nsub);
    return (double)l->dloss * loss;
}

static int fd_case(ams_rng *r, int bce, int nsub, const char *what) {
    int64_t p = kt_randint(r, 1, 23);
    int c = bce ? 1 : kt_randint(r, nsub > 0 ? nsub : 2, 9);
    int classes[9];
    /* a random subset: the first nsub of a shuffled 0..c-1 */
    for (int k = 0; k < c; k++) classes[k] = k;
    for (int k = c - 1; k > 0; k--) {
        int j = kt_randint(r, 0, k), t = classes[k];
        classes[k] = classes[j], classes[j] = t;
    }
    int64_t n = p * c;
    float *x = kt_alloc(n), *g = kt_alloc(n), *base = kt_alloc(n), *g0 = kt_alloc(n);
    uint8_t *lab = malloc(p);
    CHECK(lab != NULL);
    kt_fill(r, x, n, -4, 4);
    kt_fill(r, base, n, -1, 1);
    for (int64_t i = 0; i < p; i++) {
        float u = ams_rng_uniform(r);
        lab[i] = u < 0.15f ? 255 : (uint8_t)kt_randint(r, 0, bce ? 1 : c - 1);
    }
    lab[0] = bce ? 1 : (uint8_t)classes[0]; /* at least one counted pixel */
    float dloss = 0.25f + ams_rng_uniform(r);
    memcpy(g, base, n * sizeof *g);
    if (bce)
        ams_ref_bce_logits_backward(NULL, g, dloss, x, lab, p);
    else
        ams_ref_softmax_ce_backward(NULL, g, dloss, x, lab, p, c, nsub ? classes : NULL, nsub);
    for (int64_t i = 0; i < n; i++) g0[i] = g[i] - base[i];
    loss_ctx l = {x, lab, p, c, nsub, bce, nsub ? classes : NULL, dloss};
    int bad = kt_gradcheck(what, loss_of, &l, x, g0, n, 5e-3f, 2e-4, r);
    /* columns outside the subset and uncounted pixels get exactly nothing */
    for (int64_t i = 0; i < p && !bad; i++)
        for (int k = 0; k < c; k++) {
            int in_sub = nsub == 0;
            for (int s = 0; s < nsub; s++) in_sub |= classes[s] == k;
            int counted = lab[i] != 255;
            if (nsub > 0) {
                counted = 0;
                for (int s = 0; s < nsub; s++) counted |= classes[s] == lab[i];
            }
            if ((!in_sub || !counted) && g0[i * c + k] != 0) bad = 1;
        }
    free(x), free(g), free(base), free(g0), free(lab);
    CHECKF(!bad, "%s (p=%lld c=%d nsub=%d)", what, (long long)p, c, nsub);
    return 0;
}

static int test_fd(void) {
    ams_rng r;
    ams_rng_seed(&r, SEED);
    for (int t = 0; t < 6; t++) {
        CHECK(fd_case(&r, 0, 0, "softmax_ce") == 0);
        CHECK(fd_case(&r, 0, kt_randint(&r, 1, 3), "softmax_ce subset") == 0);
        CHECK(fd_case(&r, 1, 0, "bce") == 0);
    }
    return 0;
}

/* ---------- edges ---------- */

static int all_finite(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return 0;
    return 1;
}

static int test_nothing_counted(void) {
    const float x[] = {1, 2, 3, 4, 5, 6};
    const uint8_t ign[] = {255, 255};
    const uint8_t not_in_subset[] = {1, 255};
    const int classes[] = {0, 2};
    float loss = -1, g[6] = {0};
    int64_t count = -1;
    ams_ref_softmax_ce_forward(NULL, &loss, &count, x, ign, 2, 3, NULL, 0);
    CHECK(loss == 0 && count == 0);
    ams_ref_softmax_ce_backward(NULL, g, 1.0f, x, ign, 2, 3, NULL, 0);
    loss = -1, count = -1;
    ams_ref_softmax_ce_forward(NULL, &loss, &count, x, not_in_subset, 2, 3, classes, 2);
    CHECK(loss == 0 && count == 0);
    ams_ref_softmax_ce_backward(NULL, g, 1.0f, x, not_in_subset, 2, 3, classes, 2);
    loss = -1, count = -1;
    ams_ref_bce_logits_forward(NULL, &loss, &count, x, ign, 2);
    CHECK(loss == 0 && count == 0);
    ams_ref_bce_logits_backward(NULL, g, 1.0f, x, ign, 2);
    for (int i = 0; i < 6; i++) CHECK(g[i] == 0);
    /* zero pixels at all */
    loss = -1, count = -1;
    ams_ref_softmax_ce_forward(NULL, &loss, &count, x, ign, 0, 3, NULL, 0);
    CHECK(loss == 0 && count == 0);
    return 0;
}

static int test_bad_labels_not_counted(void) {
    /* a label >= c (not 255) or a BCE label > 1 must not count and must not read outside */
    const float x[] = {0.5f, -1, 2, 0, 0, 0};
    const uint8_t lab[] = {7, 1};
    float loss, g[6] = {0};
    int64_t count;
    ams_ref_softmax_ce_forward(NULL, &loss, &count, x, lab, 2, 3, NULL, 0);
    CHECK(count == 1 && fabs(loss - log(3.0)) < 1e-6);
    ams_ref_softmax_ce_backward(NULL, g, 1.0f, x, lab, 2, 3, NULL, 0);
    CHECK(g[0] == 0 && g[1] == 0 && g[2] == 0 && g[4] != 0);
    const uint8_t blab[] = {2, 0};
    ams_ref_bce_logits_forward(NULL, &loss, &count, x, blab, 2);
    CHECK(count == 1 && fabs(loss - log(1 + exp(-1.0))) < 1e-6);
    return 0;
}

static int test_huge_logits(void) {
    /* [1e4, -1e4, 0] label 1: loss = lse - x1 = 1e4 + 1e4 */
    const float x[] = {1e4f, -1e4f, 0, -1e4f, -1e4f, 1e4f};
    const uint8_t lab[] = {1, 2};
    float loss, g[6] = {0};
    int64_t count;
    ams_ref_softmax_ce_forward(NULL, &loss, &count, x, lab, 2, 3, NULL, 0);
    CHECKF(isfinite(loss) && fabs(loss - 1e4) < 1e-2, "loss %.9g", (double)loss);
    ams_ref_softmax_ce_backward(NULL, g, 1.0f, x, lab, 2, 3, NULL, 0);
    CHECK(all_finite(g, 6));
    CHECK(fabs(g[0] - 0.5) < 1e-7 && fabs(g[1] + 0.5) < 1e-7 && fabs(g[5]) < 1e-7);
    /* BCE: x = 1e4 with y = 0 and x = -1e4 with y = 1 cost 1e4 each; the right sides 0 */
    const float bx[] = {1e4f, -1e4f, 1e4f, -1e4f};
    const uint8_t blab[] = {0, 1, 1, 0};
    float bg[4] = {0};
    ams_ref_bce_logits_forward(NULL, &loss, &count, bx, blab, 4);
    CHECKF(isfinite(loss) && fabs(loss - 5e3) < 1e-3, "bce loss %.9g", (double)loss);
    ams_ref_bce_logits_backward(NULL, bg, 1.0f, bx, blab, 4);
    CHECK(all_finite(bg, 4));
    CHECK(check_max_abs_diff(bg, (const float[]){0.25f, -0.25f, 0, 0}, 4) < 1e-7);
    return 0;
}

int main(int argc, char **argv) {
    static const check_case cases[] = {
        {"ce_hand", test_ce_hand},
        {"ce_subset_hand", test_ce_subset_hand},
        {"bce_hand", test_bce_hand},
        {"torch_fixture", test_torch_fixture},
        {"fd", test_fd},
        {"nothing_counted", test_nothing_counted},
        {"bad_labels_not_counted", test_bad_labels_not_counted},
        {"huge_logits", test_huge_logits},
    };
    return check_run(cases, sizeof cases / sizeof cases[0], argc, argv);
}
