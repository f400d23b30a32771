/* test_ref_losses.c - the reference losses: softmax cross-entropy (ignore label 255, class
 * subsets) and binary cross-entropy on logits. Values against hand-computed cases and a
 * PyTorch fixture (tools/ref/make_loss_fixtures.py -> tests/data/losses/losses.fix: loss,
 * count and autograd gradients), gradients against central differences, and the edges:
 * nothing counted -> loss 0, count 0, no gradient, no NaN; logits of 1e4 -> finite. */
#include <math.h>

#include "kernel_testlib.h"
#include "nn/ref/ref_kernels.h"

#define SEED 0x1055ULL

/* ---------- the fixture file (format in tools/ref/make_loss_fixtures.py) ---------- */

typedef struct {
    uint8_t *buf;
    size_t len;
} fixture;

enum { FIX_F32 = 0, FIX_U8 = 1, FIX_I32 = 2 };

static int fixture_open(fixture *f) {
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/data/losses/losses.fix", AMS_SOURCE_DIR);
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        fprintf(stderr, "%s: cannot open\n", path);
        return 1;
    }
    f->buf = malloc(1 << 20);
    f->len = f->buf ? fread(f->buf, 1, 1 << 20, fp) : 0;
    fclose(fp);
    if (f->len < 16 || memcmp(f->buf, "AMSFIX\0\1", 8) != 0 || f->buf[8] != 1) {
        fprintf(stderr, "%s: not a version 1 fixture\n", path);
        free(f->buf);
        return 1;
    }
    return 0;
}

static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* A malloc'd, aligned copy of the elements of tensor `name`, checked to have dtype and
 * numel elements (little-endian host assumed, as everywhere in the project); NULL after a
 * message otherwise. The caller frees it. */
static void *fixture_get(const fixture *f, const char *name, int dtype, int64_t numel) {
    static const size_t esize[] = {4, 1, 4};
    size_t pos = 16, count = rd32(f->buf + 12);
    for (size_t t = 0; t < count; t++) {
        if (pos + 2 > f->len) break;
        size_t nl = (size_t)f->buf[pos] | (size_t)f->buf[pos + 1] << 8;
        if (pos + 2 + nl + 2 > f->len) break;
        const uint8_t *nm = f->buf + pos + 2;
        int dt = f->buf[pos + 2 + nl], nd = f->buf[pos + 3 + nl];
        pos += 4 + nl;
        if (dt > 2 || pos + 4 * (size_t)nd > f->len) break;
        int64_t n = 1;
        for (int k = 0; k < nd; k++) n *= rd32(f->buf + pos + 4 * k);
        pos += 4 * (size_t)nd;
        size_t bytes = (size_t)n * esize[dt];
        if (pos + bytes > f->len) break;
        if (nl == strlen(name) && memcmp(nm, name, nl) == 0) {
            if (dt != dtype || n != numel) {
                fprintf(stderr, "fixture %s: dtype %d, %lld elements; want %d, %lld\n", name, dt,
                        (long long)n, dtype, (long long)numel);
                return NULL;
            }
            void *copy = malloc(bytes ? bytes : 1);
            if (copy) memcpy(copy, f->buf + pos, bytes);
            return copy;
        }
        pos += bytes;
    }
    fprintf(stderr, "fixture: no tensor %s (or truncated file)\n", name);
    return NULL;
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

/* the tensors of one fixture case */
typedef struct {
    float *x, *loss, *grad;
    uint8_t *lab;
    int32_t *count, *classes;
} torch_case;

static void torch_case_free(torch_case *t) {
    free(t->x), free(t->loss), free(t->grad), free(t->lab), free(t->count), free(t->classes);
}

static int torch_case_load(torch_case *t, const fixture *f, const char *name, int64_t p, int c,
                           int nsub) {
    char key[64];
#define GET(var, suffix, dt, num)                         \
    snprintf(key, sizeof key, "%s/%s", name, suffix);     \
    t->var = fixture_get(f, key, dt, num);                \
    if (!t->var) return 1
    GET(x, "logits", FIX_F32, p * c);
    GET(lab, "labels", FIX_U8, p);
    GET(loss, "loss", FIX_F32, 1);
    GET(count, "count", FIX_I32, 1);
    GET(grad, "grad", FIX_F32, p * c);
    if (nsub > 0) {
        GET(classes, "classes", FIX_I32, nsub);
    }
#undef GET
    return 0;
}

static int check_case_vs_torch(const fixture *f, const char *name, int64_t p, int c, int nsub,
                               int bce) {
    torch_case t = {0};
    int64_t n = p * c;
    if (torch_case_load(&t, f, name, p, c, nsub)) {
        torch_case_free(&t);
        return 1;
    }
    const float *x = t.x, *want_loss = t.loss, *want_grad = t.grad;
    const uint8_t *lab = t.lab;
    int32_t want_count = *t.count;
    int cls[8];
    for (int s = 0; s < nsub && s < 8; s++) cls[s] = t.classes[s];
    float loss = -1;
    int64_t count = -1;
    float *g = kt_alloc(n);
    if (bce) {
        ams_ref_bce_logits_forward(NULL, &loss, &count, x, lab, p);
        ams_ref_bce_logits_backward(NULL, g, 1.0f, x, lab, p);
    } else {
        ams_ref_softmax_ce_forward(NULL, &loss, &count, x, lab, p, c, nsub ? cls : NULL, nsub);
        ams_ref_softmax_ce_backward(NULL, g, 1.0f, x, lab, p, c, nsub ? cls : NULL, nsub);
    }
    double gdiff = check_max_abs_diff(g, want_grad, n);
    double want = *want_loss, rel = fabs(loss - want) / fabs(want);
    free(g);
    torch_case_free(&t);
    fprintf(stderr, "  %-8s loss %.8g torch %.8g (rel %.2g), count %lld, grad max diff %.2g\n",
            name, (double)loss, want, rel, (long long)count, gdiff);
    CHECK(count == want_count);
    CHECK(rel <= 1e-6);
    CHECK(gdiff <= 1e-7);
    return 0;
}

static int test_torch_fixture(void) {
    fixture f;
    CHECK(fixture_open(&f) == 0);
    int bad = check_case_vs_torch(&f, "ce", 37, 7, 0, 0);
    bad |= check_case_vs_torch(&f, "cehuge", 5, 7, 0, 0);
    bad |= check_case_vs_torch(&f, "sub", 45, 7, 4, 0);
    bad |= check_case_vs_torch(&f, "bce", 41, 1, 0, 1);
    bad |= check_case_vs_torch(&f, "bcehuge", 7, 1, 0, 1);
    free(f.buf);
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
    int bad = kt_gradcheck(what, loss_of, &l, x, g0, n, 5e-3f, 1e-3, r);
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
