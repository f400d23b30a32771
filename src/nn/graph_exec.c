/* graph_exec.c - runs a planned graph: forward over nodes in order, backward in reverse,
 * every op through the chosen backend's kernels. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "nn/graph_internal.h"

static ams_node *in(ams_graph *g, const ams_node *n, int k) { return &g->nodes[n->xs[k]]; }

ams_status ams_graph_set_input(ams_graph *g, int node, const float *data, ams_err *err) {
    AMS_FAIL_IF(!g->planned, err, AMS_E_INVAL, "set_input before ams_graph_plan");
    AMS_FAIL_IF(node < 0 || node >= g->count || g->nodes[node].op != AMS_OP_INPUT, err,
                AMS_E_INVAL, "node %d is not an input", node);
    ams_node *n = &g->nodes[node];
    for (size_t i = 0; i < n->numel; i++)
        AMS_FAIL_IF(!isfinite(data[i]), err, AMS_E_RANGE,
                    "input '%s' holds a non-finite value (%g) at element %zu", n->name,
                    (double)data[i], i);
    memcpy(n->value, data, n->numel * sizeof(float));
    n->grad_ready = 1; /* marks "set" for inputs */
    return AMS_OK;
}

ams_status ams_graph_set_labels(ams_graph *g, int node, const uint8_t *labels, ams_err *err) {
    AMS_FAIL_IF(!g->planned, err, AMS_E_INVAL, "set_labels before ams_graph_plan");
    AMS_FAIL_IF(node < 0 || node >= g->count || g->nodes[node].op != AMS_OP_LABELS, err,
                AMS_E_INVAL, "node %d is not a labels input", node);
    ams_node *n = &g->nodes[node];
    memcpy(n->value, labels, n->numel);
    n->grad_ready = 1;
    return AMS_OK;
}

/* dst[i] = src[i] * scale, 16 at a time (the byte-to-float conversion vectorises). */
static void bytes_to_floats(float *dst, const uint8_t *src, size_t n, float scale) {
    typedef uint8_t u8x16 __attribute__((vector_size(16)));
    typedef float f32x16 __attribute__((vector_size(64)));
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        u8x16 b;
        memcpy(&b, src + i, sizeof b);
        f32x16 f = __builtin_convertvector(b, f32x16) * scale;
        memcpy(dst + i, &f, sizeof f);
    }
    for (; i < n; i++) dst[i] = (float)src[i] * scale;
}

ams_status ams_graph_set_parts_u8(ams_graph *g, int node, const uint8_t *const *parts,
                                  float scale, ams_err *err) {
    AMS_FAIL_IF(!g->planned, err, AMS_E_INVAL, "set_parts before ams_graph_plan");
    AMS_FAIL_IF(node < 0 || node >= g->count ||
                    (g->nodes[node].op != AMS_OP_INPUT && g->nodes[node].op != AMS_OP_LABELS),
                err, AMS_E_INVAL, "node %d is not an input", node);
    ams_node *n = &g->nodes[node];
    AMS_FAIL_IF(n->ndim < 1 || n->shape[0] < 1, err, AMS_E_SHAPE, "input '%s' has no parts",
                n->name);
    size_t np = (size_t)n->shape[0], per = n->numel / np;
    AMS_FAIL_IF(!isfinite(scale * 255.0f), err, AMS_E_RANGE,
                "input '%s': scale %g makes bytes non-finite", n->name, (double)scale);
    for (size_t b = 0; b < np; b++) {
        AMS_FAIL_IF(!parts[b], err, AMS_E_INVAL, "input '%s': part %zu missing", n->name, b);
        if (n->op == AMS_OP_LABELS) memcpy((uint8_t *)n->value + b * per, parts[b], per);
        else bytes_to_floats(n->value + b * per, parts[b], per, scale);
    }
    n->grad_ready = 1; /* marks "set" for inputs */
    return AMS_OK;
}

void ams_graph_set_seed(ams_graph *g, uint64_t seed) { ams_rng_seed(&g->rng, seed); }

const float *ams_graph_value(const ams_graph *g, int node) {
    if (node < 0 || node >= g->count || !g->planned || !g->forward_done) return NULL;
    const ams_node *n = &g->nodes[node];
    if (n->op == AMS_OP_PARAM || n->op == AMS_OP_CONST) return n->value;
    if (n->op == AMS_OP_SOFTMAX_CE || n->op == AMS_OP_BCE_LOGITS) return n->value;
    int consumed = 0;
    for (int j = node + 1; j < g->count && !consumed; j++)
        for (int k = 0; k < g->nodes[j].nin; k++)
            if (g->nodes[j].xs[k] == node) consumed = 1;
    return (n->keep || !consumed) ? n->value : NULL;
}

int64_t ams_graph_loss_count(const ams_graph *g, int node) {
    if (node < 0 || node >= g->count) return 0;
    return g->nodes[node].count;
}

/* A fused conv chain (graph_plan.c, plan_fusion): frozen BN folded into the conv's weights
 * and bias (w' = w * s, b' = (b - mean) * s + beta, s = gamma / sqrt(var + eps) per output
 * channel; recomputed every pass, so changed params are seen: a weight-sized pass, small
 * next to the conv), the activation applied by the kernel, the result written straight
 * into the chain's last node. The user's params are never written. */
static void forward_fused_conv(ams_graph *g, const ams_backend *be, ams_node *n) {
    const ams_node *wn = in(g, n, 1);
    const float *w = wn->value;
    const float *b = n->nin > 2 ? in(g, n, 2)->value : NULL;
    if (n->fuse_bn >= 0) {
        const ams_node *bn = &g->nodes[n->fuse_bn];
        const float *gamma = in(g, bn, 1)->value, *beta = in(g, bn, 2)->value;
        const float *mean = in(g, bn, 3)->value, *var = in(g, bn, 4)->value;
        const int oc = n->conv.oc;
        float *fw = n->fold, *fb = n->fold + wn->numel;
        for (int o = 0; o < oc; o++) /* the scale, for now */
            fb[o] = (float)((double)gamma[o] / sqrt((double)var[o] + (double)bn->eps));
        const size_t rows = wn->numel / (size_t)oc;
        for (size_t r = 0; r < rows; r++)
            for (int o = 0; o < oc; o++) fw[r * oc + o] = w[r * oc + o] * fb[o];
        for (int o = 0; o < oc; o++)
            fb[o] = (float)(((b ? (double)b[o] : 0.0) - (double)mean[o]) * (double)fb[o] +
                            (double)beta[o]);
        w = fw;
        b = fb;
    }
    be->conv2d_forward_act(be, g->nodes[n->fuse_last].value, in(g, n, 0)->value, w, b, &n->conv,
                           n->fuse_act, n->fuse_scale,
                           n->fuse_addend >= 0 ? g->nodes[n->fuse_addend].value : NULL);
}

static void forward_node(ams_graph *g, const ams_backend *be, ams_node *n) {
    float *out = n->value;
    if (n->hs_by >= 0) return; /* inside a hard-swish its mul runs */
    if (be->conv2d_forward_act) {
        if (n->fused_by >= 0) return; /* its conv ran it */
        if (n->fuse_last >= 0) {
            forward_fused_conv(g, be, n);
            return;
        }
    }
    if (n->hs_x >= 0) {
        be->hswish_forward(be, out, g->nodes[n->hs_x].value, n->hs_ab, (int64_t)n->numel);
        return;
    }
    switch (n->op) {
    case AMS_OP_INPUT:
    case AMS_OP_LABELS:
    case AMS_OP_PARAM:
    case AMS_OP_CONST:
    case AMS_OP__COUNT: break;
    case AMS_OP_CONV2D:
        be->conv2d_forward(be, out, in(g, n, 0)->value, in(g, n, 1)->value,
                           n->nin > 2 ? in(g, n, 2)->value : NULL, &n->conv);
        break;
    case AMS_OP_CONV2D_TRANSPOSE:
        be->conv2d_transpose_forward(be, out, in(g, n, 0)->value, in(g, n, 1)->value,
                                     n->nin > 2 ? in(g, n, 2)->value : NULL, &n->conv);
        break;
    case AMS_OP_BATCHNORM: {
        int c = (int)n->shape[n->ndim - 1];
        be->batchnorm_forward(be, out, in(g, n, 0)->value, in(g, n, 1)->value,
                              in(g, n, 2)->value, in(g, n, 3)->value, in(g, n, 4)->value, n->eps,
                              (int64_t)n->numel / c, c);
        break;
    }
    case AMS_OP_RELU: be->relu_forward(be, out, in(g, n, 0)->value, (int64_t)n->numel); break;
    case AMS_OP_RELU6: be->relu6_forward(be, out, in(g, n, 0)->value, (int64_t)n->numel); break;
    case AMS_OP_SIGMOID:
        be->sigmoid_forward(be, out, in(g, n, 0)->value, (int64_t)n->numel);
        break;
    case AMS_OP_TANH: be->tanh_forward(be, out, in(g, n, 0)->value, (int64_t)n->numel); break;
    case AMS_OP_AFFINE:
        be->affine_forward(be, out, in(g, n, 0)->value, n->a, n->b, (int64_t)n->numel);
        break;
    case AMS_OP_ADD:
        if (n->pooled_by >= 0 && be->global_avgpool_add_forward) break; /* the pool sums it */
        if (n->mul_add >= 0 && be->mul_add_forward) {
            const ams_node *m = &g->nodes[n->mul_add];
            const ams_node *c = in(g, n, n->xs[0] == n->mul_add ? 1 : 0);
            be->mul_add_forward(be, out, in(g, m, 0)->value, in(g, m, 1)->value, c->value, &m->bc);
            break;
        }
        be->add_forward(be, out, in(g, n, 0)->value, in(g, n, 1)->value, &n->bc);
        break;
    case AMS_OP_MUL:
        if (n->added_by >= 0 && be->mul_add_forward) break; /* its add computes it */
        be->mul_forward(be, out, in(g, n, 0)->value, in(g, n, 1)->value, &n->bc);
        break;
    case AMS_OP_DIV:
        be->div_forward(be, out, in(g, n, 0)->value, in(g, n, 1)->value, &n->bc);
        break;
    case AMS_OP_CONCAT: {
        const float *ins[AMS_CONCAT_MAX];
        AMS_ASSERT(n->nin <= AMS_CONCAT_MAX);
        for (int k = 0; k < n->nin; k++) ins[k] = in(g, n, k)->value;
        be->concat_forward(be, out, ins, n->chunk, n->nin, n->outer);
        break;
    }
    case AMS_OP_GLOBAL_AVGPOOL: {
        const ams_node *x = in(g, n, 0);
        if (n->pool_sum >= 0 && be->global_avgpool_add_forward)
            be->global_avgpool_add_forward(be, out, in(g, x, 0)->value, in(g, x, 1)->value,
                                           (int)x->shape[0], (int)x->shape[1], (int)x->shape[2],
                                           (int)x->shape[3]);
        else
            be->global_avgpool_forward(be, out, x->value, (int)x->shape[0], (int)x->shape[1],
                                       (int)x->shape[2], (int)x->shape[3]);
        break;
    }
    case AMS_OP_AVGPOOL: be->avgpool_forward(be, out, in(g, n, 0)->value, &n->pool); break;
    case AMS_OP_MAXPOOL: be->maxpool_forward(be, out, in(g, n, 0)->value, &n->pool); break;
    case AMS_OP_RESIZE_BILINEAR: {
        const ams_node *x = in(g, n, 0);
        be->resize_bilinear_forward(be, out, x->value, (int)x->shape[0], (int)x->shape[1],
                                    (int)x->shape[2], (int)x->shape[3], n->oh, n->ow, n->mode);
        break;
    }
    case AMS_OP_DROPOUT:
        if (g->mode == AMS_PLAN_TRAIN && n->a < 1.0f) {
            const float scale = 1.0f / n->a;
            for (size_t i = 0; i < n->numel; i++)
                n->aux[i] = ams_rng_uniform(&g->rng) < n->a ? scale : 0.0f;
            be->dropout_forward(be, out, in(g, n, 0)->value, n->aux, (int64_t)n->numel);
        } else {
            if (n->aux)
                for (size_t i = 0; i < n->numel; i++) n->aux[i] = 1.0f;
            memcpy(out, in(g, n, 0)->value, n->numel * sizeof(float));
        }
        break;
    case AMS_OP_RESHAPE: memcpy(out, in(g, n, 0)->value, n->numel * sizeof(float)); break;
    case AMS_OP_SOFTMAX_CE: {
        const ams_node *x = in(g, n, 0);
        int c = (int)x->shape[3];
        be->softmax_ce_forward(be, &n->scalar, &n->count, x->value,
                               (const uint8_t *)in(g, n, 1)->value, (int64_t)x->numel / c, c,
                               n->classes, n->nsub);
        break;
    }
    case AMS_OP_BCE_LOGITS: {
        const ams_node *x = in(g, n, 0);
        be->bce_logits_forward(be, &n->scalar, &n->count, x->value,
                               (const uint8_t *)in(g, n, 1)->value, (int64_t)x->numel);
        break;
    }
    }
}

ams_status ams_graph_forward(ams_graph *g, const ams_backend *be, ams_err *err) {
    AMS_FAIL_IF(!g->planned, err, AMS_E_INVAL, "forward before ams_graph_plan");
    AMS_FAIL_IF(g->hswish_fused && (!be->hswish_forward || !be->hswish_backward), err,
                AMS_E_INVAL,
                "backend '%s' has no hard-swish kernel: plan the graph with fusion off "
                "(ams_graph_set_fusion)",
                be->name);
    for (int i = 0; i < g->count; i++) {
        const ams_node *n = &g->nodes[i];
        AMS_FAIL_IF((n->op == AMS_OP_INPUT || n->op == AMS_OP_LABELS) && !n->grad_ready, err,
                    AMS_E_INVAL, "input '%s' was not set", n->name);
    }
    if (!g->prof) {
        for (int i = 0; i < g->count; i++) forward_node(g, be, &g->nodes[i]);
    } else {
        for (int i = 0; i < g->count; i++) {
            double t0 = ams_graph_prof_now();
            forward_node(g, be, &g->nodes[i]);
            g->prof->node[i].fwd_s += ams_graph_prof_now() - t0;
        }
        g->prof->fwd_passes++;
    }
    g->forward_done = 1;
    return AMS_OK;
}

/* The gradient buffer of node x if a gradient flows into it, else NULL; zeroes an
 * arena gradient the first time this backward pass touches it. */
static float *dnode(ams_graph *g, ams_node *x) {
    if (!x->needs_grad || x->frozen || !x->grad) return NULL;
    if (!x->grad_ready) {
        if (x->op != AMS_OP_PARAM) {
            double t0 = g->prof ? ams_graph_prof_now() : 0;
            memset(x->grad, 0, x->numel * sizeof(float));
            if (g->prof) g->prof->zero_s += ams_graph_prof_now() - t0;
        }
        x->grad_ready = 1;
    }
    return x->grad;
}

/* The gradient buffer of input k (dnode). */
static float *dinput(ams_graph *g, ams_node *n, int k) { return dnode(g, in(g, n, k)); }

/* Like dnode, but a gradient this pass has not touched yet is returned as it is (not
 * zeroed) with *fresh = 1: the caller's kernel overwrites it. */
static float *dnode_fresh(ams_graph *g, ams_node *x, int *fresh) {
    *fresh = 0;
    if (!x->needs_grad || x->frozen || !x->grad) return NULL;
    if (!x->grad_ready && x->op != AMS_OP_PARAM) {
        x->grad_ready = 1;
        *fresh = 1;
        return x->grad;
    }
    return dnode(g, x);
}

static float *dinput_fresh(ams_graph *g, ams_node *n, int k, int *fresh) {
    return dnode_fresh(g, in(g, n, k), fresh);
}

/* Is input k's gradient buffer n's own (graph_plan.c plan_grad_alias)? Then it already
 * holds input k's share, n's gradient itself: it is only marked written. */
static int aliased(ams_graph *g, ams_node *n, int k) {
    ams_node *x = in(g, n, k);
    if (x->grad_alias != (int)(n - g->nodes)) return 0;
    x->grad_ready = 1;
    return 1;
}

static void backward_node(ams_graph *g, const ams_backend *be, ams_node *n) {
    const float *dout = n->grad;
    if (n->hs_x >= 0) { /* a fused hard-swish: straight into its input's gradient */
        ams_node *x = &g->nodes[n->hs_x];
        int fresh = 0;
        float *dx = dnode_fresh(g, x, &fresh);
        if (dx) be->hswish_backward(be, dx, dout, x->value, n->hs_ab, (int64_t)n->numel, fresh);
        return;
    }
    switch (n->op) {
    case AMS_OP_INPUT:
    case AMS_OP_LABELS:
    case AMS_OP_PARAM:
    case AMS_OP_CONST:
    case AMS_OP__COUNT: break;
    case AMS_OP_CONV2D: {
        int fresh = 0;
        if (n->din_relu) { /* a folded relu (graph_plan.c plan_relu_fold): mask its gradient */
            ams_node *r = in(g, n, 0);
            float *dx = dinput_fresh(g, n, 0, &fresh), *dw = dinput(g, n, 1);
            float *db = n->nin > 2 ? dinput(g, n, 2) : NULL;
            if (be->conv2d_backward_relu) {
                be->conv2d_backward_relu(be, fresh, dx, dw, db, dout, r->value,
                                         in(g, n, 1)->value, &n->conv);
            } else {
                if (fresh && dx) memset(dx, 0, r->numel * sizeof *dx);
                be->conv2d_backward(be, dx, dw, db, dout, r->value, in(g, n, 1)->value,
                                    &n->conv);
                for (size_t i = 0; dx && i < r->numel; i++)
                    dx[i] = r->value[i] > 0.0f ? dx[i] : 0.0f;
            }
            r->relu_masked = dx != NULL;
            break;
        }
        float *dx = be->conv2d_backward_din_set ? dinput_fresh(g, n, 0, &fresh) : dinput(g, n, 0);
        (fresh ? be->conv2d_backward_din_set : be->conv2d_backward)(
            be, dx, dinput(g, n, 1), n->nin > 2 ? dinput(g, n, 2) : NULL, dout,
            in(g, n, 0)->value, in(g, n, 1)->value, &n->conv);
        break;
    }
    case AMS_OP_CONV2D_TRANSPOSE: {
        int fresh = 0;
        float *dx = be->conv2d_transpose_backward_din_set ? dinput_fresh(g, n, 0, &fresh)
                                                          : dinput(g, n, 0);
        (fresh ? be->conv2d_transpose_backward_din_set : be->conv2d_transpose_backward)(
            be, dx, dinput(g, n, 1), n->nin > 2 ? dinput(g, n, 2) : NULL, dout,
            in(g, n, 0)->value, in(g, n, 1)->value, &n->conv);
        break;
    }
    case AMS_OP_BATCHNORM: {
        int c = (int)n->shape[n->ndim - 1];
        be->batchnorm_backward(be, dinput(g, n, 0), dinput(g, n, 1), dinput(g, n, 2), dout,
                               in(g, n, 0)->value, in(g, n, 1)->value, in(g, n, 3)->value,
                               in(g, n, 4)->value, n->eps, (int64_t)n->numel / c, c);
        break;
    }
    case AMS_OP_RELU: {
        int fresh = 0;
        if (aliased(g, n, 0)) { /* folded: its input's gradient is this buffer */
            if (!n->relu_masked) /* its conv did not run, which a sound plan rules out */
                for (size_t i = 0; i < n->numel; i++)
                    n->grad[i] = n->value[i] > 0.0f ? n->grad[i] : 0.0f;
            break;
        }
        float *dx = be->relu_backward_set ? dinput_fresh(g, n, 0, &fresh) : dinput(g, n, 0);
        (fresh ? be->relu_backward_set : be->relu_backward)(be, dx, dout, n->value,
                                                            (int64_t)n->numel);
        break;
    }
    case AMS_OP_RELU6: {
        int fresh = 0;
        float *dx = be->relu6_backward_set ? dinput_fresh(g, n, 0, &fresh) : dinput(g, n, 0);
        (fresh ? be->relu6_backward_set : be->relu6_backward)(be, dx, dout, n->value,
                                                              (int64_t)n->numel);
        break;
    }
    case AMS_OP_SIGMOID:
        be->sigmoid_backward(be, dinput(g, n, 0), dout, n->value, (int64_t)n->numel);
        break;
    case AMS_OP_TANH:
        be->tanh_backward(be, dinput(g, n, 0), dout, n->value, (int64_t)n->numel);
        break;
    case AMS_OP_AFFINE:
    case AMS_OP_RESHAPE: {
        int fresh = 0;
        float a = n->op == AMS_OP_AFFINE ? n->a : 1.0f;
        if (aliased(g, n, 0)) break;
        float *dx = be->affine_backward_set ? dinput_fresh(g, n, 0, &fresh) : dinput(g, n, 0);
        (fresh ? be->affine_backward_set : be->affine_backward)(be, dx, dout, a, (int64_t)n->numel);
        break;
    }
    case AMS_OP_ADD:
    case AMS_OP_MUL: {
        int is_add = n->op == AMS_OP_ADD;
        if (is_add && n->pooled_by >= 0 && be->global_avgpool_add_backward) break; /* done */
        int fa = 0, fb = 0;
        float *da = NULL, *db = NULL;
        int alias_a = is_add && aliased(g, n, 0), alias_b = is_add && aliased(g, n, 1);
        if (is_add ? be->add_backward_set != NULL : be->mul_backward_set != NULL) {
            /* a second input that is the first (x + x) comes back not fresh */
            if (!alias_a) da = dinput_fresh(g, n, 0, &fa);
            if (!alias_b) db = dinput_fresh(g, n, 1, &fb);
        } else {
            if (!alias_a) da = dinput(g, n, 0);
            if (!alias_b) db = dinput(g, n, 1);
        }
        if (!da && !db) break;
        if (is_add && (fa || fb)) be->add_backward_set(be, da, db, dout, &n->bc, fa, fb);
        else if (is_add) be->add_backward(be, da, db, dout, &n->bc);
        else if (fa || fb)
            be->mul_backward_set(be, da, db, dout, in(g, n, 0)->value, in(g, n, 1)->value,
                                 &n->bc, fa, fb);
        else
            be->mul_backward(be, da, db, dout, in(g, n, 0)->value, in(g, n, 1)->value, &n->bc);
        break;
    }
    case AMS_OP_DIV:
        be->div_backward(be, dinput(g, n, 0), dinput(g, n, 1), dout, in(g, n, 0)->value,
                         in(g, n, 1)->value, &n->bc);
        break;
    case AMS_OP_CONCAT: {
        float *dins[AMS_CONCAT_MAX];
        AMS_ASSERT(n->nin <= AMS_CONCAT_MAX);
        for (int k = 0; k < n->nin; k++) dins[k] = dinput(g, n, k);
        be->concat_backward(be, dins, dout, n->chunk, n->nin, n->outer);
        break;
    }
    case AMS_OP_GLOBAL_AVGPOOL: {
        const ams_node *x = in(g, n, 0);
        if (n->pool_sum >= 0 && be->global_avgpool_add_backward) {
            /* straight into the add's inputs' gradients (a second input that is the first
             * comes back not fresh) */
            ams_node *sum = in(g, n, 0);
            int fa = 0, fb = 0;
            float *da = dinput_fresh(g, sum, 0, &fa), *db = dinput_fresh(g, sum, 1, &fb);
            if (da || db)
                be->global_avgpool_add_backward(be, da, db, dout, (int)x->shape[0],
                                                (int)x->shape[1], (int)x->shape[2],
                                                (int)x->shape[3], fa, fb);
            break;
        }
        int fresh = 0;
        float *dx = be->global_avgpool_backward_set ? dinput_fresh(g, n, 0, &fresh)
                                                    : dinput(g, n, 0);
        if (dx)
            (fresh ? be->global_avgpool_backward_set : be->global_avgpool_backward)(
                be, dx, dout, (int)x->shape[0], (int)x->shape[1], (int)x->shape[2],
                (int)x->shape[3]);
        break;
    }
    case AMS_OP_AVGPOOL: {
        float *dx = dinput(g, n, 0);
        if (dx) be->avgpool_backward(be, dx, dout, &n->pool);
        break;
    }
    case AMS_OP_MAXPOOL: {
        float *dx = dinput(g, n, 0);
        if (dx) be->maxpool_backward(be, dx, dout, in(g, n, 0)->value, &n->pool);
        break;
    }
    case AMS_OP_RESIZE_BILINEAR: {
        const ams_node *x = in(g, n, 0);
        float *dx = dinput(g, n, 0);
        if (dx)
            be->resize_bilinear_backward(be, dx, dout, (int)x->shape[0], (int)x->shape[1],
                                         (int)x->shape[2], (int)x->shape[3], n->oh, n->ow,
                                         n->mode);
        break;
    }
    case AMS_OP_DROPOUT: {
        float *dx = dinput(g, n, 0);
        if (dx) be->dropout_backward(be, dx, dout, n->aux, (int64_t)n->numel);
        break;
    }
    case AMS_OP_SOFTMAX_CE: {
        const ams_node *x = in(g, n, 0);
        float *dx = dinput(g, n, 0);
        int c = (int)x->shape[3];
        if (dx)
            be->softmax_ce_backward(be, dx, n->dscalar, x->value,
                                    (const uint8_t *)in(g, n, 1)->value, (int64_t)x->numel / c,
                                    c, n->classes, n->nsub);
        break;
    }
    case AMS_OP_BCE_LOGITS: {
        const ams_node *x = in(g, n, 0);
        float *dx = dinput(g, n, 0);
        if (dx)
            be->bce_logits_backward(be, dx, n->dscalar, x->value,
                                    (const uint8_t *)in(g, n, 1)->value, (int64_t)x->numel);
        break;
    }
    }
}

ams_status ams_graph_backward(ams_graph *g, const ams_backend *be, int loss, ams_err *err) {
    AMS_FAIL_IF(!g->planned || g->mode != AMS_PLAN_TRAIN, err, AMS_E_INVAL,
                "backward needs a graph planned with AMS_PLAN_TRAIN");
    AMS_FAIL_IF(loss != g->loss, err, AMS_E_INVAL,
                "backward from node %d, but the graph was planned for loss node %d", loss,
                g->loss);
    AMS_FAIL_IF(!g->forward_done, err, AMS_E_INVAL, "backward before forward");
    for (int i = 0; i < g->count; i++) {
        ams_node *n = &g->nodes[i];
        if (n->op != AMS_OP_INPUT && n->op != AMS_OP_LABELS) n->grad_ready = 0;
        n->relu_masked = 0;
    }
    ams_node *l = &g->nodes[loss];
    l->dscalar = 1.0f;
    l->grad_ready = 1;
    for (int i = loss; i >= 0; i--) {
        ams_node *n = &g->nodes[i];
        if (!n->needs_grad || n->frozen || !n->grad_ready || n->op == AMS_OP_PARAM) continue;
        if (!g->prof) {
            backward_node(g, be, n);
        } else { /* the node's time without the gradient zeroing it triggered */
            double t0 = ams_graph_prof_now(), z0 = g->prof->zero_s;
            backward_node(g, be, n);
            g->prof->node[i].bwd_s += ams_graph_prof_now() - t0 - (g->prof->zero_s - z0);
            g->prof->node[i].zero_s += g->prof->zero_s - z0;
        }
    }
    if (g->prof) g->prof->bwd_passes++;
    return AMS_OK;
}
