/* test_graph_hswish.c - plan-time fusion of hard-swish chains and of conv epilogues in
 * training plans (graph_plan.c plan_hswish / plan_fusion, graph_exec.c), and the hswish
 * kernels (kernels.h).
 * - kernels: the reference hswish forward/backward (overwriting and accumulating) equal,
 *   bitwise, the op chain they replace (affine, affine, relu6, mul) run by the reference
 *   kernels in the executor's order; the cpu backend's equal the reference's, bitwise, on
 *   odd sizes, threaded, with inputs on and around the clamps (-3, 3, NaN-free);
 * - graphs: random conv -> hard-swish -> [x also read by an add] -> conv -> relu -> conv +
 *   relu (a residual) -> 1x1 conv -> BCE blocks (odd sizes, stride 2 with TF SAME, depthwise, groups, batch > 1, bias or
 *   not, the selfie's half-precision 1/6, exact 1/6, arbitrary constants): a training plan
 *   with fusion (cpu) gives the loss and every parameter gradient of the unfused graph on
 *   the reference backend; an inference plan the same output; the fusions happened where
 *   they should (hswish in every plan, conv + hard-swish only in inference and only for
 *   x * relu6(x + 3) * s with x read by nothing else, conv + relu and conv + residual add in
 *   training, conv + residual add in inference);
 * - a backend without the hswish kernel gets an error from forward, not a crash.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ams/backend.h"
#include "ams/graph.h"
#include "ams/rng.h"
#include "check.h"
#include "graph_testlib.h"
#include "nn/graph_internal.h"

static ams_rng rng;

static int irand(int lo, int hi) { return lo + (int)(ams_rng_u64(&rng) % (uint64_t)(hi - lo + 1)); }
static float frand(float lo, float hi) { return lo + (hi - lo) * ams_rng_uniform(&rng); }

/* Inputs over the clamps, some exactly on them. */
static void fill_hs_input(float *x, size_t n, const float *ab) {
    for (size_t i = 0; i < n; i++) {
        int k = irand(0, 9);
        /* x*a2 + b2 == 0 or 6 exactly when a2 == 1 */
        x[i] = k == 0 ? -ab[3] / ab[2] : k == 1 ? (6.0f - ab[3]) / ab[2] : frand(-6.0f, 6.0f);
    }
}

static int bitwise_equal(const float *a, const float *b, size_t n) {
    return memcmp(a, b, n * sizeof *a) == 0;
}

static int test_kernels(void) {
    ams_err err = {0};
    const ams_backend *ref = ams_backend_ref(), *cpu = ams_backend_by_name("cpu", 2, &err);
    CHECKF(cpu, "%s", err.msg);
    const float abs[3][4] = {{0.16662598f, 0.0f, 1.0f, 3.0f},
                             {1.0f / 6.0f, 0.0f, 1.0f, 3.0f},
                             {0.37f, -0.25f, 1.5f, 2.0f}};
    int rc = 0;
    for (int it = 0; it < 12 && !rc; it++) {
        const float *ab = abs[it % 3];
        size_t n = (size_t)irand(1, 40000);
        float *x = malloc(n * sizeof *x), *dy = malloc(n * sizeof *dy);
        float *m = malloc(n * sizeof *m), *t = malloc(n * sizeof *t), *r = malloc(n * sizeof *r);
        float *y0 = malloc(n * sizeof *y0), *y1 = malloc(n * sizeof *y1), *y2 = malloc(n * sizeof *y2);
        float *dm = malloc(n * sizeof *dm), *dr = malloc(n * sizeof *dr), *dt = malloc(n * sizeof *dt);
        float *g0 = malloc(n * sizeof *g0), *g1 = malloc(n * sizeof *g1), *g2 = malloc(n * sizeof *g2);
        CHECK(x && dy && m && t && r && y0 && y1 && y2 && dm && dr && dt && g0 && g1 && g2);
        fill_hs_input(x, n, ab);
        for (size_t i = 0; i < n; i++) dy[i] = frand(-1.0f, 1.0f);
        /* the chain, as the executor runs it (backward in reverse node order) */
        ref->affine_forward(ref, m, x, ab[0], ab[1], (int64_t)n);
        ref->affine_forward(ref, t, x, ab[2], ab[3], (int64_t)n);
        ref->relu6_forward(ref, r, t, (int64_t)n);
        ams_bcast_desc bd = {.ndim = 1, .out = {(int64_t)n}, .a = {(int64_t)n}, .b = {(int64_t)n}};
        ref->mul_forward(ref, y0, m, r, &bd);
        ref->hswish_forward(ref, y1, x, ab, (int64_t)n);
        cpu->hswish_forward(cpu, y2, x, ab, (int64_t)n);
        CHECKF(bitwise_equal(y1, y0, n), "ref hswish forward != the op chain (n %zu)", n);
        CHECKF(bitwise_equal(y2, y1, n), "cpu hswish forward != ref (n %zu)", n);
        for (int set = 0; set < 2; set++) {
            memset(dm, 0, n * sizeof *dm), memset(dr, 0, n * sizeof *dr), memset(dt, 0, n * sizeof *dt);
            for (size_t i = 0; i < n; i++) g0[i] = set ? 0.0f : frand(-1.0f, 1.0f);
            memcpy(g1, g0, n * sizeof *g0);
            memcpy(g2, g0, n * sizeof *g0);
            ref->mul_backward(ref, dm, dr, dy, m, r, &bd);
            ref->relu6_backward(ref, dt, dr, r, (int64_t)n);
            ref->affine_backward(ref, g0, dt, ab[2], (int64_t)n);
            ref->affine_backward(ref, g0, dm, ab[0], (int64_t)n);
            if (set) { /* garbage that must be overwritten */
                for (size_t i = 0; i < n; i++) g1[i] = g2[i] = 1e30f;
            }
            ref->hswish_backward(ref, g1, dy, x, ab, (int64_t)n, set);
            cpu->hswish_backward(cpu, g2, dy, x, ab, (int64_t)n, set);
            /* equal values (0 + v, the chain's zeroed gradient, and v differ in bits for -0) */
            CHECKF(check_max_abs_diff(g1, g0, n) == 0.0, "ref hswish backward (set %d) != chain", set);
            CHECKF(bitwise_equal(g2, g1, n), "cpu hswish backward (set %d) != ref (n %zu)", set, n);
        }
        free(x), free(dy), free(m), free(t), free(r), free(y0), free(y1), free(y2);
        free(dm), free(dr), free(dt), free(g0), free(g1), free(g2);
    }
    ams_backend_free(cpu);
    return rc;
}

typedef struct spec {
    int n, h, w, c, oc, k, stride, groups, bias;
    int consts; /* 0: selfie's {0.16662598, 0, 1, 3}, 1: exact 1/6, 2: arbitrary */
    int extra;  /* x is also read by an add after the hard-swish */
} spec;

static char spec_buf[256];
static const char *spec_str(const spec *s) {
    snprintf(spec_buf, sizeof spec_buf, "n%d %dx%dx%d -> %d k%d s%d g%d bias%d consts%d extra%d",
             s->n, s->h, s->w, s->c, s->oc, s->k, s->stride, s->groups, s->bias, s->consts,
             s->extra);
    return spec_buf;
}

typedef struct net {
    ams_graph *g;
    int x, labels, loss, logits, conv1, mul, conv2, relu, conv3, res;
} net;

/* conv1 -> hard-swish [-> + x] -> conv2 (1x1) -> relu -> conv3 (1x1) + relu (residual)
 * -> head (1x1 to 1 channel) -> BCE. */
static int build(net *t, ams_params *ps, const spec *s, ams_plan_mode mode, int fuse) {
    ams_err err;
    const float abs[3][4] = {{0.16662598f, 0.0f, 1.0f, 3.0f},
                             {1.0f / 6.0f, 0.0f, 1.0f, 3.0f},
                             {0.37f, -0.25f, 1.5f, 2.0f}};
    const float *ab = abs[s->consts];
    ams_graph *g = t->g = ams_graph_new(ps);
    CHECK(g);
    t->x = ams_graph_input(g, "x", 4, (int64_t[]){s->n, s->h, s->w, s->c});
    int b1 = s->bias ? ams_graph_param(g, ams_params_find(ps, "c1/b")) : -1;
    int y = t->conv1 = ams_graph_conv2d(g, t->x, ams_graph_param(g, ams_params_find(ps, "c1/w")), b1,
                                        &(ams_conv_opts){.stride = s->stride, .padding = AMS_PAD_SAME,
                                                         .groups = s->groups});
    int m = ams_graph_affine(g, y, ab[0], ab[1]);
    int r = ams_graph_relu6(g, ams_graph_affine(g, y, ab[2], ab[3]));
    int h = t->mul = (s->consts & 1) ? ams_graph_mul(g, r, m) : ams_graph_mul(g, m, r);
    if (s->extra) h = ams_graph_add(g, h, y);
    t->conv2 = ams_graph_conv2d(g, h, ams_graph_param(g, ams_params_find(ps, "c2/w")),
                                ams_graph_param(g, ams_params_find(ps, "c2/b")),
                                &(ams_conv_opts){.padding = AMS_PAD_SAME});
    t->relu = ams_graph_relu(g, t->conv2);
    t->conv3 = ams_graph_conv2d(g, t->relu, ams_graph_param(g, ams_params_find(ps, "c3/w")),
                                ams_graph_param(g, ams_params_find(ps, "c3/b")),
                                &(ams_conv_opts){.padding = AMS_PAD_SAME});
    t->res = s->consts & 1 ? ams_graph_add(g, t->relu, t->conv3) : ams_graph_add(g, t->conv3, t->relu);
    t->logits = ams_graph_conv2d(g, t->res, ams_graph_param(g, ams_params_find(ps, "head/w")), -1,
                                 &(ams_conv_opts){.padding = AMS_PAD_SAME});
    const int oh = (s->h + s->stride - 1) / s->stride, ow = (s->w + s->stride - 1) / s->stride;
    t->labels = ams_graph_labels(g, "labels", s->n, oh, ow);
    t->loss = ams_graph_bce_logits(g, t->logits, t->labels);
    ams_graph_keep(g, t->logits);
    CHECKF(ams_graph_error(g, &err) == AMS_OK, "%s", err.msg);
    ams_graph_set_fusion(g, fuse);
    CHECKF(ams_graph_plan(g, mode, &err) == AMS_OK, "%s", err.msg);
    return 0;
}

static double rel_err(const float *a, const float *ref, size_t n) {
    double m = 1e-3;
    for (size_t i = 0; i < n; i++)
        if (fabs((double)ref[i]) > m) m = fabs((double)ref[i]);
    return check_max_abs_diff(a, ref, n) / m;
}

/* Forward (+ backward) of t on be; params' grads zeroed first. */
static int run(net *t, const ams_backend *be, ams_params *ps, const float *x, const uint8_t *lab,
               int train) {
    return graph_pass(t->g, t->x, t->labels, t->loss, be, ps, x, lab, train);
}

static int check_block(const spec *s) {
    ams_err err = {0};
    const ams_backend *ref = ams_backend_ref(), *cpu = ams_backend_by_name("cpu", 2, &err);
    CHECKF(cpu, "%s", err.msg);
    ams_params *ps = ams_params_new();
    CHECK(ps);
    const int cg = s->c / s->groups;
    ams_params_add(ps, "c1/w", 4, (int64_t[]){s->k, s->k, cg, s->oc}, 1, &err);
    if (s->bias) ams_params_add(ps, "c1/b", 1, (int64_t[]){s->oc}, 1, &err);
    ams_params_add(ps, "c2/w", 4, (int64_t[]){1, 1, s->oc, 8}, 1, &err);
    ams_params_add(ps, "c2/b", 1, (int64_t[]){8}, 1, &err);
    ams_params_add(ps, "c3/w", 4, (int64_t[]){1, 1, 8, 8}, 1, &err);
    ams_params_add(ps, "c3/b", 1, (int64_t[]){8}, 1, &err);
    ams_params_add(ps, "head/w", 4, (int64_t[]){1, 1, 8, 1}, 1, &err);
    CHECKF(ams_params_alloc(ps, &err) == AMS_OK, "%s", err.msg);
    for (size_t i = 0; i < ps->total; i++) ps->values[i] = frand(-1.0f, 1.0f);
    size_t nx = (size_t)s->n * (size_t)s->h * (size_t)s->w * (size_t)s->c;
    float *x = malloc(nx * sizeof *x);
    CHECK(x);
    for (size_t i = 0; i < nx; i++) x[i] = frand(-2.0f, 2.0f);
    const int oh = (s->h + s->stride - 1) / s->stride, ow = (s->w + s->stride - 1) / s->stride;
    size_t np = (size_t)s->n * (size_t)oh * (size_t)ow;
    uint8_t *lab = malloc(np);
    float *g_ref = malloc(ps->total * sizeof *g_ref), *y_ref = malloc(np * sizeof *y_ref);
    CHECK(lab && g_ref && y_ref);
    for (size_t i = 0; i < np; i++) lab[i] = (uint8_t)(irand(0, 9) == 0 ? 255 : irand(0, 1));

    int rc = 0;
    net a, b;
    /* training: unfused on the reference vs fused on cpu (and fused on the reference) */
    if (build(&a, ps, s, AMS_PLAN_TRAIN, 0) || build(&b, ps, s, AMS_PLAN_TRAIN, 1)) return 1;
    CHECKF(a.g->nodes[a.mul].hs_x < 0 && a.g->nodes[a.conv2].fuse_last < 0, "fused with fusion off");
    CHECKF(b.g->nodes[b.mul].hs_x == b.conv1, "hswish not fused in training (%s)", spec_str(s));
    CHECKF(b.g->nodes[b.conv1].fuse_last < 0, "conv + hswish fused in training (%s)", spec_str(s));
    CHECKF(b.g->nodes[b.conv2].fuse_last == b.relu && b.g->nodes[b.conv2].fuse_act == AMS_CONV_ACT_RELU,
           "conv + relu not fused in training (%s)", spec_str(s));
    CHECKF(b.g->nodes[b.conv3].fuse_last == b.res && b.g->nodes[b.conv3].fuse_addend == b.relu,
           "conv + residual add not fused in training (%s)", spec_str(s));
    CHECKF(ams_graph_arena_bytes(b.g) < ams_graph_arena_bytes(a.g), "fused arena %zu >= %zu",
           ams_graph_arena_bytes(b.g), ams_graph_arena_bytes(a.g));
    if (run(&a, ref, ps, x, lab, 1)) return 1;
    const float loss_ref = *ams_graph_value(a.g, a.loss);
    memcpy(g_ref, ps->grads, ps->total * sizeof *g_ref);
    for (int pass = 0; pass < 2 && !rc; pass++) { /* fused on ref, then twice on cpu */
        const ams_backend *be = pass == 0 ? ref : cpu;
        for (int rep = 0; rep < (pass ? 2 : 1); rep++)
            if (run(&b, be, ps, x, lab, 1)) return 1;
        float loss = *ams_graph_value(b.g, b.loss);
        CHECKF(fabsf(loss - loss_ref) <= 1e-5f * (1.0f + fabsf(loss_ref)),
               "%s loss %.8g vs unfused ref %.8g (%s)", be->name, (double)loss, (double)loss_ref,
               spec_str(s));
        double e = rel_err(ps->grads, g_ref, ps->total);
        /* fused on the reference: the same kernels' values, in the chain's order */
        CHECKF(e <= (pass == 0 ? 1e-6 : 2e-4), "%s gradients %.3g from the unfused ref (%s)",
               be->name, e, spec_str(s));
    }
    ams_graph_free(a.g), ams_graph_free(b.g);

    /* inference: unfused ref vs fused cpu */
    if (build(&a, ps, s, AMS_PLAN_INFER, 0) || build(&b, ps, s, AMS_PLAN_INFER, 1)) return 1;
    const int conv_hs = s->consts < 2 && !s->extra; /* x * relu6(x + 3) * scale, x read once */
    const ams_node *c1 = &b.g->nodes[b.conv1];
    CHECKF(b.g->nodes[b.mul].hs_x == b.conv1, "hswish not fused in inference (%s)", spec_str(s));
    CHECKF((c1->fuse_act == AMS_CONV_ACT_HSWISH && c1->fuse_last == b.mul) == conv_hs,
           "conv + hswish fusion %d, want %d (%s)", c1->fuse_act, conv_hs, spec_str(s));
    CHECKF(b.g->nodes[b.conv3].fuse_last == b.res && b.g->nodes[b.conv3].fuse_addend == b.relu,
           "conv + residual add not fused in inference (%s)", spec_str(s));
    if (run(&a, ref, ps, x, lab, 0)) return 1;
    memcpy(y_ref, ams_graph_value(a.g, a.logits), np * sizeof *y_ref);
    if (run(&b, cpu, ps, x, lab, 0)) return 1;
    double e = rel_err(ams_graph_value(b.g, b.logits), y_ref, np);
    CHECKF(e <= 2e-5, "inference logits %.3g from the unfused ref (%s)", e, spec_str(s));
    ams_graph_free(a.g), ams_graph_free(b.g);

    free(x), free(lab), free(g_ref), free(y_ref);
    ams_params_free(ps);
    ams_backend_free(cpu);
    return rc;
}

static int test_fixed_blocks(void) {
    const spec cases[] = {
        {1, 12, 16, 3, 16, 3, 2, 1, 1, 0, 0},  /* the selfie's first conv */
        {2, 9, 11, 16, 16, 3, 1, 16, 1, 0, 0}, /* depthwise, odd sizes */
        {2, 7, 10, 8, 24, 1, 1, 1, 0, 1, 0},   /* pointwise, no bias, exact 1/6 */
        {1, 13, 9, 6, 12, 5, 2, 2, 1, 2, 0},   /* groups 2, 5x5 s2, other constants */
        {2, 8, 8, 4, 8, 3, 1, 1, 1, 0, 1},     /* x also read by an add */
    };
    int rc = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0] && !rc; i++) rc = check_block(&cases[i]);
    return rc;
}

static int test_random_blocks(void) {
    int rc = 0;
    for (int it = 0; it < 12 && !rc; it++) {
        spec s = {irand(1, 3), irand(3, 14), irand(3, 14), 0, 0, 2 * irand(0, 2) + 1, irand(1, 2),
                  1, irand(0, 1), irand(0, 2), irand(0, 3) == 0};
        int kind = irand(0, 2);
        if (kind == 0) { /* depthwise */
            s.c = s.oc = irand(1, 20);
            s.groups = s.c;
        } else {
            s.groups = kind == 2 ? 2 : 1;
            s.c = s.groups * irand(1, 6);
            s.oc = s.groups * irand(1, 10);
        }
        rc = check_block(&s);
    }
    return rc;
}

/* A backend table without the hswish kernel: forward fails cleanly on a fused plan and
 * runs a plan with fusion off. */
static int test_backend_without_hswish(void) {
    ams_err err = {0};
    ams_backend bare = *ams_backend_ref();
    bare.hswish_forward = NULL;
    bare.hswish_backward = NULL;
    ams_params *ps = ams_params_new();
    CHECK(ps);
    CHECKF(ams_params_alloc(ps, &err) == AMS_OK, "%s", err.msg);
    for (int fuse = 1; fuse >= 0; fuse--) {
        ams_graph *g = ams_graph_new(ps);
        CHECK(g);
        int x = ams_graph_input(g, "x", 2, (int64_t[]){3, 5});
        int y = ams_graph_mul(g, ams_graph_affine(g, x, 0.5f, 0.0f),
                              ams_graph_relu6(g, ams_graph_affine(g, x, 1.0f, 3.0f)));
        ams_graph_set_fusion(g, fuse);
        CHECKF(ams_graph_plan(g, AMS_PLAN_INFER, &err) == AMS_OK, "%s", err.msg);
        float in[15];
        for (int i = 0; i < 15; i++) in[i] = (float)i - 7.0f;
        CHECKF(ams_graph_set_input(g, x, in, &err) == AMS_OK, "%s", err.msg);
        ams_status st = ams_graph_forward(g, &bare, &err);
        if (fuse) {
            CHECKF(st == AMS_E_INVAL && strstr(err.msg, "hard-swish"), "status %d: %s", (int)st,
                   err.msg);
        } else {
            CHECKF(st == AMS_OK, "%s", err.msg);
            const float *v = ams_graph_value(g, y);
            CHECK(v && fabsf(v[8] - 0.5f * 4.0f) < 1e-6f); /* x = 1: 0.5 * relu6(4) */
        }
        ams_graph_free(g);
    }
    ams_params_free(ps);
    return 0;
}

int main(int argc, char **argv) {
    ams_rng_seed(&rng, 777);
    setenv("AMS_CPU_MIN_PARALLEL", "4096", 1);
    static const check_case cases[] = {
        {"kernels", test_kernels},
        {"fixed_blocks", test_fixed_blocks},
        {"random_blocks", test_random_blocks},
        {"backend_without_hswish", test_backend_without_hswish},
    };
    return check_run(cases, sizeof cases / sizeof cases[0], argc, argv);
}
