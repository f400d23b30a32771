/* test_graph_rewrite.c - the plan's exact rewrites (graph_rewrite.c): a 1x1 conv after an
 * upsampling bilinear resize runs before it.
 * - nets: relu(conv3x3(x)) -> resize (each mode, 2x and odd factors) -> 1x1 conv (bias or not;
 *   a second 1x1 conv after it: the chain moves too) -> relu -> 1x1 head -> BCE, batch > 1,
 *   on the reference and cpu backends: the plan with rewrites (the resize's id now a conv,
 *   the conv's a resize) gives the loss, the logits and every parameter gradient of the
 *   plan without them (fusion off: the graph as built) within rounding; an inference plan
 *   the same logits;
 * - not rewritten (and then bitwise the graph as built): a resize kept or read by another
 *   node too, a 3x3 conv, swaps that cost more (a downsampling resize, 3 -> 40 channels),
 *   and every graph planned with fusion off.
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

typedef struct spec {
    int n, h, w, c, oc;     /* the resize's input, the 1x1 conv's channels */
    int oh, ow;             /* the resize's output */
    ams_resize_mode mode;
    int bias, chain;        /* the 1x1 conv has a bias; a second 1x1 conv follows it */
    int k;                  /* the conv's kernel (1; 3: not rewritten) */
    int keep, second;       /* the resize kept; also read by the head's input (not rewritten) */
    int rewrites;           /* the plan is expected to rewrite this many pairs */
} spec;

typedef struct net {
    ams_graph *g;
    int x, labels, loss, logits, resize, conv;
} net;

static int build(net *t, ams_params *ps, const spec *s, ams_plan_mode mode, int fuse) {
    ams_err err;
    ams_graph *g = t->g = ams_graph_new(ps);
    CHECK(g);
    ams_conv_opts same = {.padding = AMS_PAD_SAME};
    t->x = ams_graph_input(g, "x", 4, (int64_t[]){s->n, s->h, s->w, 3});
    int a = ams_graph_relu(g, ams_graph_conv2d(g, t->x, ams_graph_param(g, 0),
                                               ams_graph_param(g, 1), &same));
    int u = t->resize = ams_graph_resize_bilinear(g, a, s->oh, s->ow, s->mode);
    int y = t->conv = ams_graph_conv2d(g, u, ams_graph_param(g, 2),
                                       s->bias ? ams_graph_param(g, 3) : -1, &same);
    if (s->chain) y = ams_graph_conv2d(g, y, ams_graph_param(g, 4), ams_graph_param(g, 5), &same);
    y = ams_graph_relu(g, y);
    if (s->second) { /* the resize read twice: summed into the head's input */
        int64_t shape[4];
        ams_graph_shape(g, u, shape);
        if (shape[3] == s->oc) y = ams_graph_add(g, y, u);
    }
    t->logits = ams_graph_conv2d(g, y, ams_graph_param(g, 6), -1, &same);
    t->labels = ams_graph_labels(g, "labels", s->n, s->oh, s->ow);
    t->loss = ams_graph_bce_logits(g, t->logits, t->labels);
    ams_graph_keep(g, t->logits);
    if (s->keep) ams_graph_keep(g, u);
    CHECKF(ams_graph_error(g, &err) == AMS_OK, "%s", err.msg);
    ams_graph_set_fusion(g, fuse);
    CHECKF(ams_graph_plan(g, mode, &err) == AMS_OK, "%s", err.msg);
    return 0;
}

static char spec_buf[160];
static const char *spec_str(const spec *s) {
    snprintf(spec_buf, sizeof spec_buf,
             "n%d %dx%dx%d -> %dx%d mode %d, %d -> %d k%d bias%d chain%d keep%d second%d", s->n,
             s->h, s->w, s->c, s->oh, s->ow, (int)s->mode, s->c, s->oc, s->k, s->bias, s->chain,
             s->keep, s->second);
    return spec_buf;
}

static int check_net(const spec *s) {
    ams_err err = {0};
    const ams_backend *ref = ams_backend_ref(), *cpu = ams_backend_by_name("cpu", 2, &err);
    CHECKF(cpu, "%s", err.msg);
    ams_params *ps = ams_params_new();
    CHECK(ps);
    int oc2 = s->oc + 3;
    ams_params_add(ps, "a/w", 4, (int64_t[]){3, 3, 3, s->c}, 1, &err);
    ams_params_add(ps, "a/b", 1, (int64_t[]){s->c}, 1, &err);
    ams_params_add(ps, "conv/w", 4, (int64_t[]){s->k, s->k, s->c, s->oc}, 1, &err);
    ams_params_add(ps, "conv/b", 1, (int64_t[]){s->oc}, 1, &err);
    ams_params_add(ps, "chain/w", 4, (int64_t[]){1, 1, s->oc, oc2}, 1, &err);
    ams_params_add(ps, "chain/b", 1, (int64_t[]){oc2}, 1, &err);
    ams_params_add(ps, "head/w", 4, (int64_t[]){1, 1, s->chain ? oc2 : s->oc, 1}, 1, &err);
    CHECKF(ams_params_alloc(ps, &err) == AMS_OK, "%s", err.msg);
    for (size_t i = 0; i < ps->total; i++) ps->values[i] = 0.6f * (2.0f * ams_rng_uniform(&rng) - 1.0f);
    size_t nx = (size_t)s->n * s->h * s->w * 3, npix = (size_t)s->n * s->oh * s->ow;
    float *x = rnd_range(nx, -1.0f, 1.0f), *logits = malloc(npix * sizeof *logits);
    float *grads = malloc(ps->total * sizeof *grads);
    uint8_t *lab = malloc(npix);
    CHECK(x && logits && grads && lab);
    for (size_t i = 0; i < npix; i++) lab[i] = ams_rng_uniform(&rng) < 0.4f;
    const ams_backend *bes[2] = {ref, cpu};
    for (int b = 0; b < 2; b++) {
        const ams_backend *be = bes[b];
        /* the graph as built: the oracle */
        net t0, t1;
        CHECK(!build(&t0, ps, s, AMS_PLAN_TRAIN, 0));
        CHECKF(ams_graph_node_op(t0.g, t0.resize) == AMS_OP_RESIZE_BILINEAR,
               "fusion off rewrote the graph: %s", spec_str(s));
        CHECK(!graph_pass(t0.g, t0.x, t0.labels, t0.loss, be, ps, x, lab, 1));
        double loss0 = ams_graph_value(t0.g, t0.loss)[0];
        memcpy(logits, ams_graph_value(t0.g, t0.logits), npix * sizeof *logits);
        memcpy(grads, ps->grads, ps->total * sizeof *grads);
        CHECK(!build(&t1, ps, s, AMS_PLAN_TRAIN, 1));
        int rewritten = (ams_graph_node_op(t1.g, t1.resize) == AMS_OP_CONV2D) +
                        (s->chain && ams_graph_node_op(t1.g, t1.conv) == AMS_OP_CONV2D);
        CHECKF(rewritten == s->rewrites, "%d pair(s) rewritten, expected %d: %s", rewritten,
               s->rewrites, spec_str(s));
        CHECK(!graph_pass(t1.g, t1.x, t1.labels, t1.loss, be, ps, x, lab, 1));
        double loss1 = ams_graph_value(t1.g, t1.loss)[0];
        double el = rel_err(ams_graph_value(t1.g, t1.logits), logits, npix);
        double eg = rel_err(ps->grads, grads, ps->total);
        if (!s->rewrites) /* nothing moved: the same graph, the same bits */
            CHECKF(loss1 == loss0 && el == 0 && eg == 0, "not rewritten, yet different: %s",
                   spec_str(s));
        CHECKF(fabs(loss1 - loss0) <= 1e-6 * fabs(loss0) && el <= 1e-5 && eg <= 1e-5,
               "%s: loss %.9g vs %.9g, logits %g, gradients %g: %s", be == ref ? "ref" : "cpu",
               loss1, loss0, el, eg, spec_str(s));
        ams_graph_free(t1.g);
        /* inference */
        CHECK(!build(&t1, ps, s, AMS_PLAN_INFER, 1));
        CHECK(!graph_pass(t1.g, t1.x, t1.labels, t1.loss, be, ps, x, lab, 0));
        el = rel_err(ams_graph_value(t1.g, t1.logits), logits, npix);
        CHECKF(el <= 1e-5, "%s inference: logits %g: %s", be == ref ? "ref" : "cpu", el,
               spec_str(s));
        ams_graph_free(t1.g);
        ams_graph_free(t0.g);
    }
    free(x), free(logits), free(grads), free(lab);
    ams_params_free(ps);
    ams_backend_free(cpu);
    return 0;
}

static int test_rewritten(void) {
    const spec specs[] = {
        /* the selfie decoder's three: 128 -> 24 at 2x, 24 -> 16, 16 -> 16 */
        {2, 6, 8, 128, 24, 12, 16, AMS_RESIZE_HALF_PIXEL, 1, 0, 1, 0, 0, 1},
        {2, 12, 16, 24, 16, 24, 32, AMS_RESIZE_HALF_PIXEL, 1, 0, 1, 0, 0, 1},
        {3, 9, 11, 16, 16, 18, 22, AMS_RESIZE_HALF_PIXEL, 0, 0, 1, 0, 0, 1},
        /* the other modes, odd factors, a chain of two 1x1 convs */
        {2, 5, 7, 20, 6, 9, 13, AMS_RESIZE_ALIGN_CORNERS, 1, 1, 1, 0, 0, 2},
        {1, 4, 6, 33, 17, 11, 13, AMS_RESIZE_ASYMMETRIC, 1, 0, 1, 0, 0, 1},
        {2, 3, 3, 8, 8, 7, 5, AMS_RESIZE_HALF_PIXEL, 1, 1, 1, 0, 0, 2},
    };
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) CHECK(!check_net(&specs[i]));
    return 0;
}

static int test_not_rewritten(void) {
    const spec specs[] = {
        {2, 6, 8, 16, 16, 12, 16, AMS_RESIZE_HALF_PIXEL, 1, 0, 1, 1, 0, 0}, /* kept */
        {2, 6, 8, 16, 16, 12, 16, AMS_RESIZE_HALF_PIXEL, 1, 0, 1, 0, 1, 0}, /* read twice */
        {2, 12, 16, 16, 8, 6, 8, AMS_RESIZE_HALF_PIXEL, 1, 0, 1, 0, 0, 0},  /* downsampling: costs more */
        {2, 6, 8, 16, 16, 12, 16, AMS_RESIZE_HALF_PIXEL, 1, 0, 3, 0, 0, 0}, /* 3x3 */
        {2, 6, 8, 3, 40, 12, 16, AMS_RESIZE_HALF_PIXEL, 1, 0, 1, 0, 0, 0},  /* costs more */
    };
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) CHECK(!check_net(&specs[i]));
    return 0;
}

int main(int argc, char **argv) {
    ams_rng_seed(&rng, 20261207);
    static const check_case cases[] = {
        {"rewritten", test_rewritten},
        {"not_rewritten", test_not_rewritten},
    };
    return check_run(cases, sizeof cases / sizeof cases[0], argc, argv);
}
