/* test_graph_relu_fold.c - a relu's backward folded into the conv that reads it first
 * (graph_plan.c plan_relu_fold; kernels.h conv2d_backward_relu).
 * - nets: x -> 3x3 conv -> relu r -> a conv reading r (depthwise 3x3 at stride 1 and 2,
 *   pointwise, depthwise 5x5 at stride 2 and dilated, a full 3x3, grouped: the kernels that
 *   mask as they store and the pass after the others) -> relu -> 1x1 head -> BCE, batch > 1;
 *   r also read later by an add, or by the head's input; the training plan with fusion (r
 *   folded, its input's gradient in r's buffer) gives the loss and every parameter gradient
 *   of the plan without fusion (each relu its own backward) within rounding, on the
 *   reference backend (the executor's mask) and the cpu one (the kernels'), two passes in a
 *   row, and with the conv's filter frozen;
 * - not folded (and then bitwise the plan without the fold): r read first by an add, r read
 *   first by a conv whose output is only kept (no gradient reaches it: it never runs its
 *   backward), a relu read first by a conv as its filter.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ams/backend.h"
#include "ams/graph.h"
#include "check.h"
#include "cpu_testlib.h"
#include "graph_testlib.h"
#include "nn/graph_internal.h"

enum {
    READ_DW,        /* r -> depthwise conv (kernel k, stride s, dilation dil) */
    READ_PW,        /* r -> 1x1 conv c -> oc */
    READ_FULL,      /* r -> 3x3 conv, groups g */
    FIRST_ADD,      /* r -> add(r, r) first, then the depthwise conv: not folded */
    FIRST_DEAD,     /* r -> a kept 1x1 conv nothing else reads, then the depthwise: not folded */
    AS_FILTER,      /* relu(param) used as a depthwise filter: not folded */
};

typedef struct spec {
    int kind;
    int n, h, w, c, oc;
    int k, s, dil, groups;
    int add_later;  /* r also read by an add after the conv (the conv writes last) */
    int freeze;     /* the reading conv's filter frozen */
    int folds;      /* relus expected folded */
} spec;

typedef struct net {
    ams_graph *g;
    int x, labels, loss, r, reader;
} net;

static int build(net *t, ams_params *ps, const spec *s, int fuse) {
    ams_err err;
    ams_graph *g = t->g = ams_graph_new(ps);
    CHECK(g);
    ams_conv_opts same = {.padding = AMS_PAD_SAME};
    t->x = ams_graph_input(g, "x", 4, (int64_t[]){s->n, s->h, s->w, 3});
    int p = ams_graph_conv2d(g, t->x, ams_graph_param(g, 0), ams_graph_param(g, 1), &same);
    int as_filter = s->kind == AS_FILTER;
    int r = t->r = ams_graph_relu(g, as_filter ? ams_graph_param(g, 2) : p);
    int first = -1;
    if (s->kind == FIRST_ADD) first = ams_graph_add(g, r, r);
    if (s->kind == FIRST_DEAD) {
        first = ams_graph_conv2d(g, r, ams_graph_param(g, 6), -1, &same);
        ams_graph_keep(g, first);
    }
    ams_conv_opts o = {.padding = AMS_PAD_SAME, .stride_h = s->s, .stride_w = s->s,
                       .dil_h = s->dil, .dil_w = s->dil,
                       .groups = s->kind == READ_PW ? 1 : s->kind == READ_FULL ? s->groups : s->c};
    int y = t->reader = ams_graph_conv2d(g, as_filter ? p : r, as_filter ? r : ams_graph_param(g, 2),
                                         ams_graph_param(g, 3), &o);
    y = ams_graph_relu(g, y);
    if (s->add_later) y = ams_graph_add(g, y, r);
    if (s->kind == FIRST_ADD) y = ams_graph_add(g, y, first);
    int logits = ams_graph_conv2d(g, y, ams_graph_param(g, 4), ams_graph_param(g, 5), &same);
    int64_t shape[4];
    ams_graph_shape(g, logits, shape);
    t->labels = ams_graph_labels(g, "labels", (int)shape[0], (int)shape[1], (int)shape[2]);
    t->loss = ams_graph_bce_logits(g, logits, t->labels);
    CHECKF(ams_graph_error(g, &err) == AMS_OK, "%s", err.msg);
    ams_graph_set_fusion(g, fuse);
    CHECKF(ams_graph_plan(g, AMS_PLAN_TRAIN, &err) == AMS_OK, "%s", err.msg);
    if (s->freeze) {
        uint8_t frozen[7] = {0};
        frozen[2] = 1;
        CHECKF(ams_graph_freeze(g, frozen, &err) == AMS_OK, "%s", err.msg);
    }
    return 0;
}

static char spec_buf[160];
static const char *spec_str(const spec *s) {
    snprintf(spec_buf, sizeof spec_buf,
             "kind %d n%d %dx%dx%d -> %d k%d s%d dil%d g%d add_later%d freeze%d", s->kind, s->n,
             s->h, s->w, s->c, s->oc, s->k, s->s, s->dil, s->groups, s->add_later, s->freeze);
    return spec_buf;
}

static int folded(const ams_graph *g) {
    int f = 0;
    for (int i = 0; i < g->count; i++) f += g->nodes[i].relu_fold >= 0;
    return f;
}

static int check_net(const spec *s) {
    ams_err err = {0};
    const ams_backend *ref = ams_backend_ref(), *cpu = ams_backend_by_name("cpu", 2, &err);
    CHECKF(cpu, "%s", err.msg);
    ams_params *ps = ams_params_new();
    CHECK(ps);
    int oc = s->kind == READ_DW || s->kind == FIRST_ADD || s->kind == FIRST_DEAD ? s->c : s->oc;
    int cin = s->kind == READ_PW ? s->c : s->kind == READ_FULL ? s->c / s->groups : 1;
    int kk = s->kind == READ_PW ? 1 : s->k;
    ams_params_add(ps, "a/w", 4, (int64_t[]){3, 3, 3, s->c}, 1, &err);
    ams_params_add(ps, "a/b", 1, (int64_t[]){s->c}, 1, &err);
    ams_params_add(ps, "read/w", 4, (int64_t[]){kk, kk, cin, oc}, 1, &err);
    ams_params_add(ps, "read/b", 1, (int64_t[]){oc}, 1, &err);
    ams_params_add(ps, "head/w", 4, (int64_t[]){1, 1, oc, 1}, 1, &err);
    ams_params_add(ps, "head/b", 1, (int64_t[]){1}, 1, &err);
    ams_params_add(ps, "dead/w", 4, (int64_t[]){1, 1, s->c, 2}, 1, &err);
    CHECKF(ams_params_alloc(ps, &err) == AMS_OK, "%s", err.msg);
    for (size_t i = 0; i < ps->total; i++) ps->values[i] = 0.6f * (2.0f * ams_rng_uniform(&rng) - 1.0f);
    size_t nx = (size_t)s->n * s->h * s->w * 3, npix = (size_t)s->n * s->h * s->w;
    float *x = rnd_range(nx, -1.0f, 1.0f), *grads = malloc(ps->total * sizeof *grads);
    uint8_t *lab = malloc(npix);
    CHECK(x && grads && lab);
    for (size_t i = 0; i < npix; i++) lab[i] = ams_rng_uniform(&rng) < 0.4f;
    const ams_backend *bes[2] = {ref, cpu};
    for (int b = 0; b < 2; b++) {
        const ams_backend *be = bes[b];
        net t0, t1;
        CHECK(!build(&t0, ps, s, 0)); /* each relu its own backward: the oracle */
        CHECKF(!folded(t0.g), "fusion off folded a relu: %s", spec_str(s));
        CHECK(!graph_pass(t0.g, t0.x, t0.labels, t0.loss, be, ps, x, lab, 1));
        double loss0 = ams_graph_value(t0.g, t0.loss)[0];
        memcpy(grads, ps->grads, ps->total * sizeof *grads);
        CHECK(!build(&t1, ps, s, 1));
        CHECKF(folded(t1.g) == s->folds, "%d relu(s) folded, expected %d: %s", folded(t1.g),
               s->folds, spec_str(s));
        if (s->kind <= READ_FULL)
            CHECKF(t1.g->nodes[t1.r].relu_fold == t1.reader && t1.g->nodes[t1.reader].din_relu,
                   "r folded into node %d, not its reader %d: %s", t1.g->nodes[t1.r].relu_fold,
                   t1.reader, spec_str(s));
        for (int pass = 0; pass < 2; pass++) { /* the second: a mask left from the first? */
            CHECK(!graph_pass(t1.g, t1.x, t1.labels, t1.loss, be, ps, x, lab, 1));
            double loss1 = ams_graph_value(t1.g, t1.loss)[0];
            double eg = rel_err(ps->grads, grads, ps->total);
            if (!s->folds) /* nothing folded: the same plan, the same bits */
                CHECKF(loss1 == loss0 && eg == 0, "not folded, yet different: %s", spec_str(s));
            CHECKF(fabs(loss1 - loss0) <= 1e-6 * fabs(loss0) && eg <= 1e-5,
                   "%s pass %d: loss %.9g vs %.9g, gradients %g: %s", be == ref ? "ref" : "cpu",
                   pass, loss1, loss0, eg, spec_str(s));
        }
        ams_graph_free(t1.g);
        ams_graph_free(t0.g);
    }
    free(x), free(grads), free(lab);
    ams_params_free(ps);
    ams_backend_free(cpu);
    return 0;
}

static int test_folded(void) {
    /* kind, n, h, w, c, oc, k, s, dil, groups, add_later, freeze, folds: the second relu,
     * read first by the 1x1 head, folds too (through the pointwise kernel) unless a later
     * add reads r, and so the second relu first */
    const spec specs[] = {
        /* the selfie's: depthwise 3x3 (16, 72, 27 channels: 16 + 8 lanes, a scalar rest) */
        {READ_DW, 2, 12, 16, 16, 16, 3, 1, 1, 1, 0, 0, 2},
        {READ_DW, 2, 13, 17, 72, 72, 3, 2, 1, 1, 0, 0, 2},
        {READ_DW, 3, 9, 11, 27, 27, 3, 1, 1, 1, 0, 0, 2},
        {READ_DW, 2, 12, 16, 16, 16, 3, 1, 1, 1, 1, 0, 1}, /* also read by a later add */
        {READ_DW, 2, 12, 16, 24, 24, 3, 2, 1, 1, 0, 1, 2}, /* filter frozen */
        {READ_DW, 2, 11, 15, 16, 16, 5, 1, 1, 1, 0, 0, 2},
        /* oneDNN's (5x5 strided, dilated): the mask in a pass after the kernel */
        {READ_DW, 2, 11, 15, 32, 32, 5, 2, 1, 1, 0, 0, 2},
        {READ_DW, 1, 9, 9, 24, 24, 3, 1, 2, 1, 1, 0, 1},
        /* pointwise (16 -> 72: a tail vector), a full and a grouped 3x3 */
        {READ_PW, 2, 12, 16, 16, 72, 1, 1, 1, 1, 0, 0, 2},
        {READ_PW, 2, 7, 9, 24, 24, 1, 1, 1, 1, 1, 1, 1},
        {READ_FULL, 2, 8, 10, 8, 12, 3, 1, 1, 1, 0, 0, 2},
        {READ_FULL, 2, 8, 10, 8, 8, 3, 1, 1, 4, 1, 0, 1},
        {READ_FULL, 2, 9, 10, 8, 12, 3, 2, 1, 4, 0, 0, 2},
    };
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) CHECK(!check_net(&specs[i]));
    return 0;
}

static int test_not_folded(void) {
    /* r stays unfolded; the second relu still folds into the head, but after FIRST_ADD's
     * net, where an add reads it first */
    const spec specs[] = {
        {FIRST_ADD, 2, 12, 16, 16, 16, 3, 1, 1, 1, 0, 0, 0},
        {FIRST_DEAD, 2, 12, 16, 16, 16, 3, 1, 1, 1, 0, 0, 1},
        {AS_FILTER, 2, 12, 16, 16, 16, 3, 1, 1, 1, 0, 0, 1},
    };
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) CHECK(!check_net(&specs[i]));
    return 0;
}

int main(int argc, char **argv) {
    ams_rng_seed(&rng, 20261207);
    static const check_case cases[] = {
        {"folded", test_folded},
        {"not_folded", test_not_folded},
    };
    return check_run(cases, sizeof cases / sizeof cases[0], argc, argv);
}
