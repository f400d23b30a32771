/* test_graph_alias.c - gradient aliasing in training plans (graph_plan.c plan_grad_alias,
 * graph_exec.c aliased): an input whose gradient an add (same shape), a reshape or an
 * affine with a = 1 passes on unchanged shares that node's gradient buffer when nobody else
 * writes it, or when the others accumulate into it only after every node sharing it has
 * read it.
 * - hand-built graphs: the aliases are exactly the expected ones (x + f(x), residual
 *   chains, an input read again after the add, x + x, broadcasting adds, a residual add
 *   fused into its conv, reshape / affine chains, a conv whose input and gradient would be
 *   one buffer);
 * - random graphs of convs, relus, affines, reshapes, adds (same-shape, x + x,
 *   broadcasting), muls, sigmoids, hard-swishes and residual blocks: the loss and every
 *   parameter gradient (the graph's input is a parameter, so its gradient too) equal,
 *   bitwise, those of the same graph planned without aliasing, on the ref and cpu backends,
 *   fusion on and off;
 * - the MediaPipe selfie model (when tools/fetch-models has it): the same, on the cpu
 *   backend, with the aliases its residual blocks should get.
 */
#define _POSIX_C_SOURCE 200809L /* popen */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ams/backend.h"
#include "ams/graph.h"
#include "ams/rng.h"
#include "ams/tfjs.h"
#include "check.h"
#include "nn/graph_internal.h"

enum { N = 2, H = 5, W = 7, C = 3, NW = 6, NB = 3 };

static ams_rng rng;

static int irand(ams_rng *r, int lo, int hi) {
    return lo + (int)(ams_rng_u64(r) % (uint64_t)(hi - lo + 1));
}

/* The parameters every graph draws from: the input X, 1x1 convs, biases, a (1,1,1,C)
 * tensor, the input conv and the head. */
typedef struct pool {
    ams_params *ps;
    int x, w[NW], b[NB], v, win, head;
} pool;

static int make_pool(pool *p) {
    ams_err err = {0};
    p->ps = ams_params_new();
    CHECK(p->ps);
    char name[32];
    p->x = ams_params_add(p->ps, "x", 4, (int64_t[]){N, H, W, C}, 1, &err);
    for (int i = 0; i < NW; i++) {
        snprintf(name, sizeof name, "w%d", i);
        p->w[i] = ams_params_add(p->ps, name, 4, (int64_t[]){1, 1, C, C}, 1, &err);
    }
    for (int i = 0; i < NB; i++) {
        snprintf(name, sizeof name, "b%d", i);
        p->b[i] = ams_params_add(p->ps, name, 1, (int64_t[]){C}, 1, &err);
    }
    p->v = ams_params_add(p->ps, "v", 4, (int64_t[]){1, 1, 1, C}, 1, &err);
    p->win = ams_params_add(p->ps, "win", 4, (int64_t[]){3, 3, C, C}, 1, &err);
    p->head = ams_params_add(p->ps, "head", 4, (int64_t[]){1, 1, C, 1}, 1, &err);
    CHECKF(ams_params_alloc(p->ps, &err) == AMS_OK, "%s", err.msg);
    for (size_t i = 0; i < p->ps->total; i++) p->ps->values[i] = 2.0f * ams_rng_uniform(&rng) - 1.0f;
    return 0;
}

typedef struct net {
    ams_graph *g;
    int in, labels, loss;
} net;

static int conv(ams_graph *g, const pool *p, int x, int wi, int bi) {
    return ams_graph_conv2d(g, x, ams_graph_param(g, p->w[wi % NW]),
                            bi < 0 ? -1 : ams_graph_param(g, p->b[bi % NB]),
                            &(ams_conv_opts){.padding = AMS_PAD_SAME});
}

static int relu_conv(ams_graph *g, const pool *p, int x, int wi) {
    return ams_graph_relu(g, conv(g, p, x, wi, wi));
}

/* The input conv (from the input node). */
static int stem(ams_graph *g, const pool *p, int in) {
    return ams_graph_relu(g, ams_graph_conv2d(g, in, ams_graph_param(g, p->win), -1,
                                              &(ams_conv_opts){.padding = AMS_PAD_SAME}));
}

/* Head (1x1 conv to one channel), BCE, plan. */
static int finish(net *t, const pool *p, int y, int alias, int fuse) {
    ams_err err = {0};
    ams_graph *g = t->g;
    int lg = ams_graph_conv2d(g, y, ams_graph_param(g, p->head), -1,
                              &(ams_conv_opts){.padding = AMS_PAD_SAME});
    t->labels = ams_graph_labels(g, "labels", N, H, W);
    t->loss = ams_graph_bce_logits(g, lg, t->labels);
    CHECKF(ams_graph_error(g, &err) == AMS_OK, "%s", err.msg);
    ams_graph_set_fusion(g, fuse);
    g->no_grad_alias = !alias;
    CHECKF(ams_graph_plan(g, AMS_PLAN_TRAIN, &err) == AMS_OK, "%s", err.msg);
    return 0;
}

/* A random graph from seed: every tensor (N,H,W,C). */
static int build_random(net *t, const pool *p, uint64_t seed, int alias, int fuse) {
    ams_rng r;
    ams_rng_seed(&r, seed);
    ams_graph *g = t->g = ams_graph_new(p->ps);
    CHECK(g);
    t->in = ams_graph_input(g, "in", 4, (int64_t[]){N, H, W, C});
    int live[64], nl = 0;
    live[nl++] = ams_graph_param(g, p->x);
    live[nl++] = stem(g, p, t->in);
    const int steps = irand(&r, 4, 14);
    for (int s = 0; s < steps; s++) {
#define PICK live[nl - 1 - irand(&r, 0, nl < 4 ? nl - 1 : 3)]
        int a = PICK, y;
        switch (irand(&r, 0, 12)) {
        case 0: y = conv(g, p, a, irand(&r, 0, NW), irand(&r, -1, NB)); break;
        case 1: y = ams_graph_relu(g, a); break;
        case 2: y = ams_graph_affine(g, a, 1.0f, irand(&r, 0, 1) ? 0.0f : 0.5f); break;
        case 3: y = ams_graph_affine(g, a, 0.5f, 0.25f); break;
        case 4:
            y = ams_graph_reshape(g, ams_graph_reshape(g, a, 3, (int64_t[]){N, H * W, C}), 4,
                                  (int64_t[]){N, H, W, C});
            break;
        case 5: y = ams_graph_add(g, a, PICK); break; /* may be x + x */
        case 6: y = ams_graph_add(g, a, a); break;
        case 7: /* broadcasting: a parameter, or a computed (1,1,1,C) tensor, either side */
            y = irand(&r, 0, 1) ? ams_graph_param(g, p->b[irand(&r, 0, NB - 1)])
                                : ams_graph_affine(g, ams_graph_param(g, p->v), 2.0f, 0.0f);
            y = irand(&r, 0, 1) ? ams_graph_add(g, a, y) : ams_graph_add(g, y, a);
            break;
        case 8: /* a residual block: the add can be fused into the projection conv */
            y = conv(g, p, relu_conv(g, p, a, irand(&r, 0, NW)), irand(&r, 0, NW), -1);
            y = irand(&r, 0, 1) ? ams_graph_add(g, y, a) : ams_graph_add(g, a, y);
            break;
        case 9: y = ams_graph_mul(g, a, PICK); break;
        case 10: y = ams_graph_sigmoid(g, a); break;
        case 11: /* hard-swish: the mul runs the chain, reading a */
            y = ams_graph_mul(g, ams_graph_affine(g, a, 0.16662598f, 0.0f),
                              ams_graph_relu6(g, ams_graph_affine(g, a, 1.0f, 3.0f)));
            break;
        default: y = ams_graph_add(g, relu_conv(g, p, a, irand(&r, 0, NW)), a); break;
        }
        if (nl < 64) live[nl++] = y;
#undef PICK
    }
    int y = live[nl - 1];
    for (int k = irand(&r, 0, 3); k > 0; k--) y = ams_graph_add(g, y, live[irand(&r, 0, nl - 2)]);
    return finish(t, p, y, alias, fuse);
}

/* Loss and every parameter gradient (into grads) after one training step. */
static int step(net *t, const ams_backend *be, const pool *p, float *loss, float *grads) {
    ams_err err = {0};
    float in[N * H * W * C];
    uint8_t lab[N * H * W];
    ams_rng r;
    ams_rng_seed(&r, 7);
    for (int i = 0; i < N * H * W * C; i++) in[i] = 2.0f * ams_rng_uniform(&r) - 1.0f;
    for (int i = 0; i < N * H * W; i++) lab[i] = (uint8_t)irand(&r, 0, 1);
    CHECKF(ams_graph_set_input(t->g, t->in, in, &err) == AMS_OK, "%s", err.msg);
    CHECKF(ams_graph_set_labels(t->g, t->labels, lab, &err) == AMS_OK, "%s", err.msg);
    CHECKF(ams_graph_forward(t->g, be, &err) == AMS_OK, "%s", err.msg);
    ams_params_zero_grads(p->ps);
    CHECKF(ams_graph_backward(t->g, be, t->loss, &err) == AMS_OK, "%s", err.msg);
    *loss = *ams_graph_value(t->g, t->loss);
    memcpy(grads, p->ps->grads, p->ps->total * sizeof *grads);
    return 0;
}

/* The aliased plan a gives the unaliased plan b's loss and gradients, bitwise. */
static int same_step(net *a, net *b, const ams_backend *be, const pool *p, const char *what) {
    size_t n = p->ps->total;
    float la, lb, *ga = malloc(n * sizeof *ga), *gb = malloc(n * sizeof *gb);
    CHECK(ga && gb);
    CHECK(step(a, be, p, &la, ga) == 0);
    CHECK(step(b, be, p, &lb, gb) == 0);
    CHECKF(memcmp(&la, &lb, sizeof la) == 0, "%s (%s): loss %g != %g", what, be->name,
           (double)la, (double)lb);
    for (size_t i = 0; i < n; i++)
        CHECKF(memcmp(&ga[i], &gb[i], sizeof *ga) == 0,
               "%s (%s): gradient element %zu: %.9g aliased, %.9g not", what, be->name, i,
               (double)ga[i], (double)gb[i]);
    CHECKF(b->g->grad_aliases == 0, "%s: aliases with aliasing off", what);
    free(ga), free(gb);
    return 0;
}

static int test_random(void) {
    ams_err err = {0};
    const ams_backend *cpu = ams_backend_by_name("cpu", 2, &err);
    CHECKF(cpu, "%s", err.msg);
    pool p;
    CHECK(make_pool(&p) == 0);
    const ams_backend *bes[2] = {ams_backend_ref(), cpu};
    long aliases = 0;
    for (int it = 0; it < 60; it++) {
        for (int fuse = 0; fuse < 2; fuse++) {
            net a, b;
            CHECK(build_random(&a, &p, 1000 + (uint64_t)it, 1, fuse) == 0);
            CHECK(build_random(&b, &p, 1000 + (uint64_t)it, 0, fuse) == 0);
            aliases += a.g->grad_aliases;
            char what[64];
            snprintf(what, sizeof what, "random graph %d, fusion %d", it, fuse);
            for (int k = 0; k < 2; k++) CHECK(same_step(&a, &b, bes[k], &p, what) == 0);
            ams_graph_free(a.g), ams_graph_free(b.g);
        }
    }
    CHECKF(aliases > 100, "only %ld aliases in the random graphs", aliases);
    printf("random graphs: %ld aliases\n", aliases);
    ams_params_free(p.ps);
    ams_backend_free(cpu);
    return 0;
}

/* Hand-built cases: node ids and the expected grad_alias of each listed node. */
typedef struct expect {
    int node, alias;
} expect;

enum { CASES = 9 };

static int build_case(net *t, const pool *p, int c, int alias, expect *e, int *ne, int *fused) {
    ams_graph *g = t->g = ams_graph_new(p->ps);
    CHECK(g);
    t->in = ams_graph_input(g, "in", 4, (int64_t[]){N, H, W, C});
    int x = stem(g, p, t->in), y = -1;
    *ne = 0;
    *fused = -1;
#define EXPECT(n_, a_) (e[(*ne)++] = (expect){(n_), (a_)})
    switch (c) {
    case 0: { /* x + conv(x): the conv's input gradient would be its output gradient's buffer */
        int cv = conv(g, p, x, 0, 0);
        y = ams_graph_add(g, cv, x);
        EXPECT(cv, y), EXPECT(x, -1);
        break;
    }
    case 1: { /* two residual blocks: x + proj(relu(expand(x))) */
        int p1 = conv(g, p, relu_conv(g, p, x, 1), 2, -1);
        int r1 = ams_graph_add(g, x, p1);
        int p2 = conv(g, p, relu_conv(g, p, r1, 3), 4, 0);
        y = ams_graph_add(g, p2, r1);
        EXPECT(p1, r1), EXPECT(x, r1), EXPECT(p2, y), EXPECT(r1, y);
        *fused = r1;
        break;
    }
    case 2: { /* x read again after the add: its last writer is that conv */
        int u = relu_conv(g, p, x, 1);
        int r = ams_graph_add(g, x, u);
        int v = conv(g, p, x, 2, 1);
        y = ams_graph_add(g, r, v);
        EXPECT(x, -1), EXPECT(u, r), EXPECT(r, y), EXPECT(v, y);
        break;
    }
    case 3: /* x + x */
        y = ams_graph_add(g, x, x);
        EXPECT(x, -1);
        break;
    case 4: { /* broadcasting: the (1,1,1,C) side keeps its own buffer (a reduction) */
        int v = ams_graph_affine(g, ams_graph_param(g, p->v), 2.0f, 0.0f);
        int r = ams_graph_add(g, v, x);
        y = ams_graph_add(g, ams_graph_param(g, p->b[0]), r);
        EXPECT(v, -1), EXPECT(x, r), EXPECT(r, y);
        break;
    }
    case 5: { /* reshape, reshape, affine(1), affine(0.5), relu read by the head conv (folded
               * into it: the relu's input takes its gradient buffer) */
        int r1 = ams_graph_reshape(g, x, 3, (int64_t[]){N, H * W, C});
        int r2 = ams_graph_reshape(g, r1, 4, (int64_t[]){N, H, W, C});
        int a1 = ams_graph_affine(g, r2, 1.0f, 0.5f);
        int a2 = ams_graph_affine(g, a1, 0.5f, 0.0f);
        y = ams_graph_relu(g, a2);
        EXPECT(x, r1), EXPECT(r1, r2), EXPECT(r2, a1), EXPECT(a1, -1), EXPECT(a2, y);
        break;
    }
    case 6: { /* both sides sole: both share the add's buffer; a chain of adds */
        int u = relu_conv(g, p, x, 1), v = conv(g, p, x, 2, -1);
        int r = ams_graph_add(g, u, v);
        int w = conv(g, p, x, 3, 2);
        y = ams_graph_add(g, w, r);
        EXPECT(u, r), EXPECT(v, r), EXPECT(w, y), EXPECT(r, y), EXPECT(x, -1);
        break;
    }
    default: { /* x + s, x also read by a conv j: x may share the add's buffer only if s
                * (sharing it too) reads it before j accumulates into it: s after j */
        int late = c == CASES - 1;
        int s = late ? -1 : conv(g, p, ams_graph_param(g, p->x), 1, -1);
        int j = conv(g, p, x, 2, 0), jr = ams_graph_relu(g, j);
        if (late) s = conv(g, p, ams_graph_param(g, p->x), 1, -1);
        int r = ams_graph_add(g, x, s);
        y = ams_graph_add(g, r, jr);
        EXPECT(x, late ? r : -1), EXPECT(s, r), EXPECT(r, y), EXPECT(jr, y), EXPECT(j, -1);
        break;
    }
    }
#undef EXPECT
    return finish(t, p, y, alias, 1);
}

static int test_cases(void) {
    ams_err err = {0};
    const ams_backend *cpu = ams_backend_by_name("cpu", 2, &err);
    CHECKF(cpu, "%s", err.msg);
    pool p;
    CHECK(make_pool(&p) == 0);
    const ams_backend *bes[2] = {ams_backend_ref(), cpu};
    for (int c = 0; c < CASES; c++) {
        net a, b;
        expect e[16];
        int ne = 0, fused = -1, ne2, fused2;
        CHECK(build_case(&a, &p, c, 1, e, &ne, &fused) == 0);
        CHECK(build_case(&b, &p, c, 0, e, &ne2, &fused2) == 0);
        for (int k = 0; k < ne; k++)
            CHECKF(a.g->nodes[e[k].node].grad_alias == e[k].alias,
                   "case %d: node %d (%s) aliases %d, expected %d", c, e[k].node,
                   ams_op_name(a.g->nodes[e[k].node].op), a.g->nodes[e[k].node].grad_alias,
                   e[k].alias);
        if (fused >= 0)
            CHECKF(a.g->nodes[fused].fused_by >= 0, "case %d: the residual add was not fused", c);
        char what[32];
        snprintf(what, sizeof what, "case %d", c);
        for (int k = 0; k < 2; k++) CHECK(same_step(&a, &b, bes[k], &p, what) == 0);
        ams_graph_free(a.g), ams_graph_free(b.g);
    }
    ams_params_free(p.ps);
    ams_backend_free(cpu);
    return 0;
}

/* The selfie model's path from tools/fetch-models, or 0. */
static int selfie_path(char *out, size_t cap) {
    FILE *f = popen(AMS_SOURCE_DIR "/tools/fetch-models 2>/dev/null", "r");
    if (!f) return 0;
    char line[2048];
    out[0] = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        if (!strncmp(line, "selfie ", 7)) snprintf(out, cap, "%s", line + 7);
    }
    return pclose(f) == 0 && out[0];
}

static int build_selfie(net *t, ams_tfjs_model *m, int alias) {
    ams_err err = {0};
    enum { SN = 2, SH = 96, SW = 128 };
    const char *outs[1] = {ams_tfjs_logit_name(m, ams_tfjs_output_key(m, 0))};
    CHECK(outs[0]);
    t->g = ams_graph_new(ams_tfjs_params(m));
    CHECK(t->g);
    int lg = -1;
    CHECKF(ams_tfjs_build(m, t->g, &(ams_tfjs_build_opts){SN, SH, SW, NULL, 0}, outs, 1, &lg,
                          &t->in, &err) == AMS_OK,
           "%s", err.msg);
    t->labels = ams_graph_labels(t->g, "labels", SN, SH, SW);
    t->loss = ams_graph_bce_logits(t->g, lg, t->labels);
    t->g->no_grad_alias = !alias;
    CHECKF(ams_graph_plan(t->g, AMS_PLAN_TRAIN, &err) == AMS_OK, "%s", err.msg);
    return 0;
}

/* One selfie training step: aliased == unaliased, bitwise. */
static int test_selfie(void) {
    char path[2048];
    if (!selfie_path(path, sizeof path)) {
        printf("SKIP selfie: the model is not cached and cannot be fetched (tools/fetch-models)\n");
        return 0;
    }
    ams_err err = {0};
    ams_tfjs_model *m = NULL;
    CHECKF(ams_tfjs_load(path, &m, &err) == AMS_OK, "%s", err.msg);
    const ams_backend *cpu = ams_backend_by_name("cpu", 2, &err);
    CHECKF(cpu, "%s", err.msg);
    ams_params *ps = ams_tfjs_params(m);
    net a, b;
    CHECK(build_selfie(&a, m, 1) == 0);
    CHECK(build_selfie(&b, m, 0) == 0);
    printf("selfie: %d gradient aliases\n", a.g->grad_aliases);
    CHECKF(a.g->grad_aliases >= 16, "selfie: only %d gradient aliases", a.g->grad_aliases);
    const size_t nin = a.g->nodes[a.in].numel, nl = a.g->nodes[a.labels].numel;
    float *x = malloc(nin * sizeof *x), *ga = malloc(ps->total * sizeof *ga);
    float *gb = malloc(ps->total * sizeof *gb);
    uint8_t *l = malloc(nl);
    CHECK(x && ga && gb && l);
    for (size_t i = 0; i < nin; i++) x[i] = ams_rng_uniform(&rng);
    for (size_t i = 0; i < nl; i++) l[i] = (uint8_t)(ams_rng_u64(&rng) & 1);
    net *ts[2] = {&a, &b};
    float loss[2];
    for (int k = 0; k < 2; k++) {
        net *t = ts[k];
        CHECKF(ams_graph_set_input(t->g, t->in, x, &err) == AMS_OK, "%s", err.msg);
        CHECKF(ams_graph_set_labels(t->g, t->labels, l, &err) == AMS_OK, "%s", err.msg);
        CHECKF(ams_graph_forward(t->g, cpu, &err) == AMS_OK, "%s", err.msg);
        ams_params_zero_grads(ps);
        CHECKF(ams_graph_backward(t->g, cpu, t->loss, &err) == AMS_OK, "%s", err.msg);
        loss[k] = *ams_graph_value(t->g, t->loss);
        memcpy(k ? gb : ga, ps->grads, ps->total * sizeof *ga);
    }
    CHECKF(memcmp(&loss[0], &loss[1], sizeof *loss) == 0, "selfie: loss %g != %g",
           (double)loss[0], (double)loss[1]);
    for (size_t i = 0; i < ps->total; i++)
        CHECKF(memcmp(&ga[i], &gb[i], sizeof *ga) == 0,
               "selfie: gradient element %zu: %.9g aliased, %.9g not", i, (double)ga[i],
               (double)gb[i]);
    free(x), free(ga), free(gb), free(l);
    ams_graph_free(a.g), ams_graph_free(b.g);
    ams_backend_free(cpu);
    ams_tfjs_free(m);
    return 0;
}

int main(int argc, char **argv) {
    ams_rng_seed(&rng, 42);
    setenv("AMS_CPU_MIN_PARALLEL", "64", 1); /* threaded kernels on these small tensors */
    static const check_case cases[] = {
        {"cases", test_cases},
        {"random", test_random},
        {"selfie", test_selfie},
    };
    return check_run(cases, sizeof cases / sizeof cases[0], argc, argv);
}
