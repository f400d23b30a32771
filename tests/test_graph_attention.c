/* test_graph_attention.c - the fusions of the selfie decoder's attention block (graph_plan.c
 * plan_pool_sum and plan_mul_add, graph_exec.c, kernels.h): a global average pool of add(a,
 * b), the add read by nothing else, runs without the sum stored; add(mul(a, s), c), the mul
 * read by nothing else, in one pass without the product stored.
 * - graphs: the selfie decoder's attention block (skip and up from two convs, their sum
 *   pooled -> 1x1 conv -> sigmoid scales skip, + up, 1x1 head, BCE) with odd sizes, channel
 *   counts around the kernels' 16 and 64 blocks, batch > 1, on the cpu backend: the training
 *   plan with fusion gives the loss and every parameter gradient of the same plan without
 *   fusion bitwise, and of the reference backend (which has no fused kernel) within
 *   rounding; an inference plan the same output bitwise;
 * - the sum of one tensor with itself (both gradients into one buffer), frozen parameters
 *   (a NULL gradient), and an add with a second reader (not fused);
 * - the kernels: the cpu pair against the reference pool of the stored sum and the add's
 *   backward, bitwise, overwriting and accumulating; the product plus a tensor against the
 *   reference mul then add, bitwise, over broadcast patterns.
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

static float *rnd(size_t n) {
    float *p = malloc((n ? n : 1) * sizeof *p);
    for (size_t i = 0; p && i < n; i++) p[i] = frand(-1.0f, 1.0f);
    return p;
}

static int test_kernels(void) {
    ams_err err = {0};
    const ams_backend *ref = ams_backend_ref(), *cpu = ams_backend_by_name("cpu", 2, &err);
    CHECKF(cpu, "%s", err.msg);
    static const int shapes[][4] = {{2, 9, 11, 16}, {1, 5, 7, 70}, {3, 4, 3, 5}, {1, 13, 6, 130}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int *sh = shapes[s];
        size_t nx = (size_t)sh[0] * sh[1] * sh[2] * sh[3], np = (size_t)sh[0] * sh[3];
        float *a = rnd(nx), *b = rnd(nx), *sum = rnd(nx), *p1 = rnd(np), *p2 = rnd(np);
        float *g = rnd(np), *ds = rnd(nx), *da1 = rnd(nx), *db1 = rnd(nx);
        float *da2 = malloc(nx * sizeof *da2), *db2 = malloc(nx * sizeof *db2);
        CHECK(a && b && sum && p1 && p2 && g && ds && da1 && db1 && da2 && db2);
        ams_bcast_desc bd = {.ndim = 1, .out = {(int64_t)nx}, .a = {(int64_t)nx}, .b = {(int64_t)nx}};
        ref->add_forward(ref, sum, a, b, &bd);
        ref->global_avgpool_forward(ref, p1, sum, sh[0], sh[1], sh[2], sh[3]);
        cpu->global_avgpool_add_forward(cpu, p2, a, b, sh[0], sh[1], sh[2], sh[3]);
        CHECKF(memcmp(p1, p2, np * sizeof *p1) == 0, "pool of a sum, shape %zu", s);
        for (int set = 0; set < 2; set++) {
            memset(ds, 0, nx * sizeof *ds);
            ref->global_avgpool_backward(ref, ds, g, sh[0], sh[1], sh[2], sh[3]);
            memcpy(da2, da1, nx * sizeof *da2), memcpy(db2, db1, nx * sizeof *db2);
            if (set) /* garbage that must be overwritten; the reference adds into zeros */
                for (size_t i = 0; i < nx; i++) da1[i] = db1[i] = 0.0f, da2[i] = db2[i] = 1e30f;
            ref->add_backward(ref, da1, db1, ds, &bd);
            cpu->global_avgpool_add_backward(cpu, da2, db2, g, sh[0], sh[1], sh[2], sh[3], set,
                                             set);
            CHECKF(check_max_abs_diff(da1, da2, nx) == 0 && check_max_abs_diff(db1, db2, nx) == 0,
                   "pool-of-sum backward, shape %zu set %d", s, set);
            /* one operand only, and one buffer for both (a + a) */
            memcpy(da2, da1, nx * sizeof *da2);
            ref->add_backward(ref, da1, NULL, ds, &bd);
            cpu->global_avgpool_add_backward(cpu, da2, NULL, g, sh[0], sh[1], sh[2], sh[3], 0, 0);
            CHECKF(check_max_abs_diff(da1, da2, nx) == 0, "one operand, shape %zu", s);
            memcpy(da2, da1, nx * sizeof *da2);
            ref->add_backward(ref, da1, da1, ds, &bd);
            cpu->global_avgpool_add_backward(cpu, da2, da2, g, sh[0], sh[1], sh[2], sh[3], 0, 0);
            CHECKF(check_max_abs_diff(da1, da2, nx) == 0, "one buffer, shape %zu", s);
        }
        free(a), free(b), free(sum), free(p1), free(p2), free(g), free(ds);
        free(da1), free(db1), free(da2), free(db2);
    }
    /* the product plus a tensor: a * b broadcast as numpy does (a squeeze-excite's scale, a
     * scalar, a row, the same shape, a broadcast first operand), then + c */
    static const int64_t bshapes[][2][4] = {
        {{2, 9, 11, 16}, {2, 1, 1, 16}}, {{1, 5, 7, 70}, {1, 1, 1, 1}}, {{3, 4, 3, 5}, {1, 1, 3, 5}},
        {{2, 6, 5, 48}, {2, 6, 5, 48}},  {{1, 1, 1, 24}, {2, 3, 4, 24}}};
    for (size_t s = 0; s < sizeof bshapes / sizeof bshapes[0]; s++) {
        ams_bcast_desc bd = {.ndim = 4};
        size_t na = 1, nb = 1, no = 1;
        for (int k = 0; k < 4; k++) {
            bd.a[k] = bshapes[s][0][k], bd.b[k] = bshapes[s][1][k];
            bd.out[k] = bd.a[k] > bd.b[k] ? bd.a[k] : bd.b[k];
            na *= (size_t)bd.a[k], nb *= (size_t)bd.b[k], no *= (size_t)bd.out[k];
        }
        float *a = rnd(na), *b = rnd(nb), *c = rnd(no), *m = rnd(no), *o1 = rnd(no), *o2 = rnd(no);
        CHECK(a && b && c && m && o1 && o2);
        ams_bcast_desc ad = {.ndim = 4};
        for (int k = 0; k < 4; k++) ad.a[k] = ad.b[k] = ad.out[k] = bd.out[k];
        ref->mul_forward(ref, m, a, b, &bd);
        ref->add_forward(ref, o1, m, c, &ad);
        cpu->mul_add_forward(cpu, o2, a, b, c, &bd);
        CHECKF(memcmp(o1, o2, no * sizeof *o1) == 0, "product plus a tensor, shape %zu", s);
        free(a), free(b), free(c), free(m), free(o1), free(o2);
    }
    ams_backend_free(cpu);
    return 0;
}

typedef struct spec {
    int n, h, w, c;
    int self;   /* the pooled sum is skip + skip */
    int second; /* the sum is also read by the head (no fusion) */
    int freeze; /* the skip conv's weights frozen */
    int alone;  /* the sum's operands are convs read by nothing else (their memory would be
                 * free at the pool's step but for the fusion's lifetimes) */
} spec;

typedef struct net {
    ams_graph *g;
    int x, labels, loss, logits, sum, pool, skip, up, mul, mskip, se, madd;
} net;

/* Do the arena values of nodes a and b overlap? */
static int overlap(const ams_graph *g, int a, int b) {
    const ams_node *p = &g->nodes[a], *q = &g->nodes[b];
    size_t pe = p->value_off + p->numel * sizeof(float), qe = q->value_off + q->numel * sizeof(float);
    return p->value_off < qe && q->value_off < pe;
}

/* skip = relu(conv1x1(x)), up = conv3x3(x); s = sigmoid(conv1x1(pool(skip + up)));
 * y = skip * s + up [+ the sum]; logits = conv1x1(y) -> BCE. */
static int build(net *t, ams_params *ps, const spec *s, ams_plan_mode mode, int fuse) {
    ams_err err;
    ams_graph *g = t->g = ams_graph_new(ps);
    CHECK(g);
    ams_conv_opts same = {.padding = AMS_PAD_SAME};
    t->x = ams_graph_input(g, "x", 4, (int64_t[]){s->n, s->h, s->w, 3});
    int skip = ams_graph_relu(
        g, ams_graph_conv2d(g, t->x, ams_graph_param(g, ams_params_find(ps, "skip/w")),
                            ams_graph_param(g, ams_params_find(ps, "skip/b")), &same));
    int up = ams_graph_conv2d(g, t->x, ams_graph_param(g, ams_params_find(ps, "up/w")), -1, &same);
    t->skip = skip, t->up = up;
    if (s->alone) {
        /* sigmoids: no conv chain takes the add as its residual */
        t->skip = ams_graph_sigmoid(
            g, ams_graph_conv2d(g, t->x, ams_graph_param(g, ams_params_find(ps, "skip/w")), -1,
                                &same));
        t->up = ams_graph_sigmoid(
            g, ams_graph_conv2d(g, t->x, ams_graph_param(g, ams_params_find(ps, "up/w")), -1,
                                &same));
    }
    t->sum = ams_graph_add(g, t->skip, s->self ? t->skip : t->up);
    t->pool = ams_graph_global_avgpool(g, t->sum);
    int se = ams_graph_sigmoid(
        g, ams_graph_conv2d(g, t->pool, ams_graph_param(g, ams_params_find(ps, "se/w")),
                            ams_graph_param(g, ams_params_find(ps, "se/b")), &same));
    t->se = se, t->mskip = skip;
    t->mul = ams_graph_mul(g, skip, se);
    int y = t->madd = ams_graph_add(g, t->mul, up);
    if (s->second) y = ams_graph_add(g, y, t->sum);
    t->logits = ams_graph_conv2d(g, y, ams_graph_param(g, ams_params_find(ps, "head/w")), -1, &same);
    t->labels = ams_graph_labels(g, "labels", s->n, s->h, s->w);
    t->loss = ams_graph_bce_logits(g, t->logits, t->labels);
    ams_graph_keep(g, t->logits);
    CHECKF(ams_graph_error(g, &err) == AMS_OK, "%s", err.msg);
    ams_graph_set_fusion(g, fuse);
    CHECKF(ams_graph_plan(g, mode, &err) == AMS_OK, "%s", err.msg);
    if (s->freeze && mode == AMS_PLAN_TRAIN) {
        uint8_t *fr = calloc((size_t)ps->count, 1);
        CHECK(fr);
        fr[ams_params_find(ps, "skip/w")] = 1;
        CHECKF(ams_graph_freeze(g, fr, &err) == AMS_OK, "%s", err.msg);
        free(fr);
    }
    return 0;
}

static int run(net *t, const ams_backend *be, ams_params *ps, const float *x, const uint8_t *lab,
               int train) {
    return graph_pass(t->g, t->x, t->labels, t->loss, be, ps, x, lab, train);
}

static char spec_buf[128];
static const char *spec_str(const spec *s) {
    snprintf(spec_buf, sizeof spec_buf, "n%d %dx%dx%d self%d second%d freeze%d alone%d", s->n,
             s->h, s->w, s->c, s->self, s->second, s->freeze, s->alone);
    return spec_buf;
}

static int check_block(const spec *s) {
    ams_err err = {0};
    const ams_backend *ref = ams_backend_ref(), *cpu = ams_backend_by_name("cpu", 2, &err);
    CHECKF(cpu, "%s", err.msg);
    ams_params *ps = ams_params_new();
    CHECK(ps);
    ams_params_add(ps, "skip/w", 4, (int64_t[]){1, 1, 3, s->c}, 1, &err);
    ams_params_add(ps, "skip/b", 1, (int64_t[]){s->c}, 1, &err);
    ams_params_add(ps, "up/w", 4, (int64_t[]){3, 3, 3, s->c}, 1, &err);
    ams_params_add(ps, "se/w", 4, (int64_t[]){1, 1, s->c, s->c}, 1, &err);
    ams_params_add(ps, "se/b", 1, (int64_t[]){s->c}, 1, &err);
    ams_params_add(ps, "head/w", 4, (int64_t[]){1, 1, s->c, 1}, 1, &err);
    CHECKF(ams_params_alloc(ps, &err) == AMS_OK, "%s", err.msg);
    for (size_t i = 0; i < ps->total; i++) ps->values[i] = frand(-1.0f, 1.0f);
    size_t nx = (size_t)s->n * s->h * s->w * 3, np = (size_t)s->n * s->h * s->w;
    float *x = rnd(nx), *g0 = malloc(ps->total * sizeof *g0), *g1 = malloc(ps->total * sizeof *g1);
    float *o0 = malloc(np * sizeof *o0);
    uint8_t *lab = malloc(np);
    CHECK(x && g0 && g1 && o0 && lab);
    for (size_t i = 0; i < np; i++) lab[i] = (uint8_t)irand(0, 1);
    /* unfused on the cpu backend: the oracle for the fused plan, bitwise */
    net un, fu, rf;
    CHECK(build(&un, ps, s, AMS_PLAN_TRAIN, 0) == 0);
    CHECK(build(&fu, ps, s, AMS_PLAN_TRAIN, 1) == 0);
    CHECK(build(&rf, ps, s, AMS_PLAN_TRAIN, 1) == 0);
    CHECKF(fu.g->nodes[fu.pool].pool_sum == (s->second ? -1 : fu.sum), "fusion: %s", spec_str(s));
    CHECK(un.g->nodes[un.pool].pool_sum == -1);
    CHECKF(fu.g->nodes[fu.madd].mul_add == fu.mul && un.g->nodes[un.madd].mul_add == -1,
           "product plus a tensor: %s", spec_str(s));
    CHECKF(!overlap(fu.g, fu.madd, fu.mskip) && !overlap(fu.g, fu.madd, fu.se),
           "the product-plus-add's output overlaps the product's inputs: %s", spec_str(s));
    /* the pool reads the add's inputs: their memory is not the pool's output */
    CHECKF(!overlap(fu.g, fu.pool, fu.skip) && !overlap(fu.g, fu.pool, fu.up),
           "the pool's output overlaps its inputs: %s", spec_str(s));
    CHECK(run(&un, cpu, ps, x, lab, 1) == 0);
    float l0 = ams_graph_value(un.g, un.loss)[0];
    memcpy(g0, ps->grads, ps->total * sizeof *g0);
    CHECK(run(&fu, cpu, ps, x, lab, 1) == 0);
    float l1 = ams_graph_value(fu.g, fu.loss)[0];
    CHECKF(l0 == l1, "loss %.9g vs %.9g: %s", l1, l0, spec_str(s));
    CHECKF(memcmp(g0, ps->grads, ps->total * sizeof *g0) == 0, "gradients differ: %s", spec_str(s));
    if (s->freeze) {
        size_t off = ps->info[ams_params_find(ps, "skip/w")].offset;
        for (int64_t i = 0; i < ps->info[ams_params_find(ps, "skip/w")].numel; i++)
            CHECK(ps->grads[off + (size_t)i] == 0.0f);
    }
    /* the reference backend runs the plan op by op: the same within rounding */
    CHECK(run(&rf, ref, ps, x, lab, 1) == 0);
    memcpy(g1, ps->grads, ps->total * sizeof *g1);
    double gmax = 1e-6, dmax = 0;
    for (size_t i = 0; i < ps->total; i++) {
        gmax = fmax(gmax, fabs((double)g1[i]));
        dmax = fmax(dmax, fabs((double)g1[i] - g0[i]));
    }
    float l2 = ams_graph_value(rf.g, rf.loss)[0];
    CHECKF(fabsf(l2 - l0) <= 1e-5f * fabsf(l2) && dmax <= 1e-4 * gmax,
           "vs reference: loss %g vs %g, gradients %g (max %g): %s", l0, l2, dmax, gmax,
           spec_str(s));
    /* inference: the fused plan's output, bitwise the unfused one's */
    ams_graph_free(un.g), ams_graph_free(fu.g), ams_graph_free(rf.g);
    CHECK(build(&un, ps, s, AMS_PLAN_INFER, 0) == 0);
    CHECK(build(&fu, ps, s, AMS_PLAN_INFER, 1) == 0);
    CHECKF(fu.g->nodes[fu.pool].pool_sum < 0 ||
               (!overlap(fu.g, fu.pool, fu.skip) && !overlap(fu.g, fu.pool, fu.up)),
           "the pool's output overlaps its inputs (inference): %s", spec_str(s));
    CHECKF(!overlap(fu.g, fu.madd, fu.mskip) && !overlap(fu.g, fu.madd, fu.se),
           "the product-plus-add's output overlaps the product's inputs (inference): %s",
           spec_str(s));
    CHECK(run(&un, cpu, ps, x, lab, 0) == 0);
    memcpy(o0, ams_graph_value(un.g, un.logits), np * sizeof *o0);
    CHECK(run(&fu, cpu, ps, x, lab, 0) == 0);
    CHECKF(memcmp(o0, ams_graph_value(fu.g, fu.logits), np * sizeof *o0) == 0,
           "inference output differs: %s", spec_str(s));
    ams_graph_free(un.g), ams_graph_free(fu.g);
    free(x), free(g0), free(g1), free(o0), free(lab);
    ams_params_free(ps);
    ams_backend_free(cpu);
    return 0;
}

static int test_blocks(void) {
    static const spec fixed[] = {
        {2, 12, 16, 16, 0, 0, 0, 0}, /* the selfie's 16 channels */
        {1, 7, 9, 24, 1, 0, 0, 0},   /* skip + skip */
        {2, 5, 6, 70, 0, 1, 0, 0},   /* the sum read twice: not fused */
        {3, 4, 5, 5, 0, 0, 1, 0},    /* frozen skip weights */
        {2, 9, 8, 16, 0, 0, 0, 1},   /* operands read by nothing else */
        {1, 6, 5, 33, 1, 0, 1, 1},
    };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (check_block(&fixed[i])) return 1;
    for (int it = 0; it < 6; it++) {
        spec s = {irand(1, 3), irand(1, 11), irand(1, 13), irand(1, 80), irand(0, 1), irand(0, 1),
                  irand(0, 1), irand(0, 1)};
        if (check_block(&s)) return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    ams_rng_seed(&rng, 20261207);
    static const check_case cases[] = {
        {"kernels", test_kernels},
        {"blocks", test_blocks},
    };
    return check_run(cases, sizeof cases / sizeof cases[0], argc, argv);
}
