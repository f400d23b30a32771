/* graph_build.c - the graph builders: validate shapes, infer output shapes, record ops. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/graph_internal.h"

ams_graph *ams_graph_new(ams_params *params) {
    ams_graph *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->params = params;
    ams_rng_seed(&g->rng, 0x5eed);
    g->loss = -1;
    return g;
}

void ams_graph_free(ams_graph *g) {
    if (!g) return;
    for (int i = 0; i < g->count; i++) {
        free(g->nodes[i].xs);
        free(g->nodes[i].chunk);
        free(g->nodes[i].classes);
        free(g->nodes[i].const_data);
        free(g->nodes[i].fold);
    }
    free(g->nodes);
    free(g->arena);
    ams_graph_set_profile(g, 0, NULL);
    free(g);
}

ams_status ams_graph_error(const ams_graph *g, ams_err *err) {
    if (g->status != AMS_OK) ams_err_set(err, g->status, "%s", g->msg);
    return g->status;
}

/* Records the first builder error; returns -1 for the builder to return. */
__attribute__((format(printf, 3, 4))) static int fail(ams_graph *g, ams_status s,
                                                       const char *fmt, ...) {
    if (g->status == AMS_OK) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(g->msg, sizeof g->msg, fmt, ap);
        va_end(ap);
        g->status = s;
    }
    return -1;
}

static const char *shape_of(const ams_node *n, char *buf, size_t cap) {
    return ams_shape_str(buf, cap, n->ndim, n->shape);
}

/* Appends a node with inputs xs[0..nin); returns its index or -1. */
static int add_node(ams_graph *g, ams_op op, const int *xs, int nin) {
    if (g->status != AMS_OK) return -1;
    if (g->planned) return fail(g, AMS_E_INVAL, "graph changed after ams_graph_plan");
    for (int i = 0; i < nin; i++)
        if (xs[i] < 0 || xs[i] >= g->count)
            return fail(g, AMS_E_INVAL, "%s: input %d is not a node (%d)", ams_op_name(op), i,
                        xs[i]);
    if (g->count == g->cap) {
        int cap = g->cap ? g->cap * 2 : 128;
        ams_node *nodes = realloc(g->nodes, (size_t)cap * sizeof *nodes);
        if (!nodes) return fail(g, AMS_E_NOMEM, "out of memory building the graph");
        g->nodes = nodes;
        g->cap = cap;
    }
    ams_node *n = &g->nodes[g->count];
    memset(n, 0, sizeof *n);
    n->op = op;
    n->param = -1;
    n->nin = nin;
    if (nin) {
        n->xs = malloc((size_t)nin * sizeof(int));
        if (!n->xs) return fail(g, AMS_E_NOMEM, "out of memory building the graph");
        memcpy(n->xs, xs, (size_t)nin * sizeof(int));
    }
    return g->count++;
}

static int set_shape(ams_graph *g, int id, int ndim, const int64_t *shape) {
    if (id < 0) return -1;
    ams_node *n = &g->nodes[id];
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] <= 0 || !ams_size_mul_ok(numel, (size_t)shape[i], &numel) ||
            numel > ((size_t)1 << 36))
            return fail(g, AMS_E_SHAPE, "%s: bad output shape (dimension %d is %lld)",
                        ams_op_name(n->op), i, (long long)shape[i]);
    }
    n->ndim = ndim;
    for (int i = 0; i < ndim; i++) n->shape[i] = shape[i];
    n->numel = numel;
    return id;
}

static ams_node *node(ams_graph *g, int id) { return &g->nodes[id]; }

static int is_vec(const ams_node *n, int64_t len) { return n->ndim == 1 && n->shape[0] == len; }

int ams_graph_input(ams_graph *g, const char *name, int ndim, const int64_t *shape) {
    if (ndim < 0 || ndim > AMS_MAX_DIMS)
        return fail(g, AMS_E_SHAPE, "input '%s': %d dimensions", name, ndim);
    int id = add_node(g, AMS_OP_INPUT, NULL, 0);
    if (id >= 0) snprintf(node(g, id)->name, sizeof node(g, id)->name, "%s", name);
    return set_shape(g, id, ndim, shape);
}

int ams_graph_labels(ams_graph *g, const char *name, int n, int h, int w) {
    int id = add_node(g, AMS_OP_LABELS, NULL, 0);
    if (id < 0) return -1;
    snprintf(node(g, id)->name, sizeof node(g, id)->name, "%s", name);
    node(g, id)->is_u8 = 1;
    return set_shape(g, id, 3, (int64_t[]){n, h, w});
}

int ams_graph_param(ams_graph *g, int index) {
    if (index < 0 || index >= g->params->count)
        return fail(g, AMS_E_NOTFOUND, "parameter index %d out of range", index);
    /* one node per parameter, so gradients of shared weights accumulate in one place */
    for (int i = 0; i < g->count; i++)
        if (g->nodes[i].op == AMS_OP_PARAM && g->nodes[i].param == index) return i;
    int id = add_node(g, AMS_OP_PARAM, NULL, 0);
    if (id < 0) return -1;
    const ams_param_info *pi = &g->params->info[index];
    node(g, id)->param = index;
    snprintf(node(g, id)->name, sizeof node(g, id)->name, "%s", pi->name);
    return set_shape(g, id, pi->ndim, pi->shape);
}

int ams_graph_const(ams_graph *g, const char *name, int ndim, const int64_t *shape,
                    const float *data) {
    if (ndim < 0 || ndim > AMS_MAX_DIMS)
        return fail(g, AMS_E_SHAPE, "constant '%s': %d dimensions", name, ndim);
    int id = set_shape(g, add_node(g, AMS_OP_CONST, NULL, 0), ndim, shape);
    if (id < 0) return -1;
    ams_node *n = node(g, id);
    snprintf(n->name, sizeof n->name, "%s", name);
    n->const_data = malloc(n->numel * sizeof(float));
    if (!n->const_data) return fail(g, AMS_E_NOMEM, "out of memory for constant '%s'", name);
    memcpy(n->const_data, data, n->numel * sizeof(float));
    return id;
}

static int fill_const(ams_graph *g, const char *name, int64_t len, float v) {
    float *buf = malloc((size_t)(len > 0 ? len : 1) * sizeof(float));
    if (!buf) return fail(g, AMS_E_NOMEM, "out of memory");
    for (int64_t i = 0; i < len; i++) buf[i] = v;
    int id = ams_graph_const(g, name, 1, (int64_t[]){len}, buf);
    free(buf);
    return id;
}

/* Fills the padding of one axis; returns 0 if the options are invalid. */
static int axis_padding(ams_padding mode, int in, int k, int s, int d, int exp_before,
                        int exp_after, int *before, int *after) {
    switch (mode) {
    case AMS_PAD_SAME: ams_tf_same_padding(in, k, s, d, before, after); return 1;
    case AMS_PAD_VALID: *before = *after = 0; return 1;
    case AMS_PAD_EXPLICIT:
        *before = exp_before;
        *after = exp_after;
        return exp_before >= 0 && exp_after >= 0;
    }
    return 0;
}

static int pick(int specific, int both) { return specific ? specific : (both ? both : 1); }

/* Fills the spatial part of a conv descriptor from options; 0 on bad options. */
static int conv_geometry(ams_conv2d_desc *d, const ams_conv_opts *o) {
    d->stride_h = pick(o->stride_h, o->stride);
    d->stride_w = pick(o->stride_w, o->stride);
    d->dil_h = pick(o->dil_h, o->dilation);
    d->dil_w = pick(o->dil_w, o->dilation);
    d->groups = o->groups ? o->groups : 1;
    if (d->stride_h < 1 || d->stride_w < 1 || d->dil_h < 1 || d->dil_w < 1 || d->groups < 1)
        return 0;
    if (!axis_padding(o->padding, d->h, d->kh, d->stride_h, d->dil_h, o->pad_t, o->pad_b,
                      &d->pad_t, &d->pad_b))
        return 0;
    if (!axis_padding(o->padding, d->w, d->kw, d->stride_w, d->dil_w, o->pad_l, o->pad_r,
                      &d->pad_l, &d->pad_r))
        return 0;
    d->oh = ams_conv_out_size(d->h, d->kh, d->stride_h, d->dil_h, d->pad_t, d->pad_b);
    d->ow = ams_conv_out_size(d->w, d->kw, d->stride_w, d->dil_w, d->pad_l, d->pad_r);
    return 1;
}

int ams_graph_conv2d(ams_graph *g, int x, int w, int b, const ams_conv_opts *o) {
    int xs[3] = {x, w, b};
    int id = add_node(g, AMS_OP_CONV2D, xs, b >= 0 ? 3 : 2);
    if (id < 0) return -1;
    char s1[96], s2[96];
    const ams_node *nx = node(g, x), *nw = node(g, w);
    if (nx->ndim != 4 || nw->ndim != 4)
        return fail(g, AMS_E_SHAPE, "conv2d '%s': input %s and weight %s must be 4-D", nw->name,
                    shape_of(nx, s1, sizeof s1), shape_of(nw, s2, sizeof s2));
    ams_conv2d_desc d = {0};
    d.n = (int)nx->shape[0];
    d.h = (int)nx->shape[1];
    d.w = (int)nx->shape[2];
    d.c = (int)nx->shape[3];
    d.kh = (int)nw->shape[0];
    d.kw = (int)nw->shape[1];
    d.oc = (int)nw->shape[3];
    if (!conv_geometry(&d, o)) return fail(g, AMS_E_INVAL, "conv2d '%s': bad options", nw->name);
    /* depthwise weights in TF's (kh,kw,c,multiplier) layout: the same memory as HWIO
     * (kh,kw,1,c*multiplier) */
    int tf_depthwise = d.groups > 1 && d.groups == d.c && nw->shape[2] == d.c;
    if (tf_depthwise) d.oc = d.c * (int)nw->shape[3];
    if (!tf_depthwise && (d.c % d.groups || d.oc % d.groups || nw->shape[2] != d.c / d.groups))
        return fail(g, AMS_E_SHAPE,
                    "conv2d '%s': weight %s does not fit input %s with %d group(s)", nw->name,
                    shape_of(nw, s2, sizeof s2), shape_of(nx, s1, sizeof s1), d.groups);
    if (b >= 0 && !is_vec(node(g, b), d.oc))
        return fail(g, AMS_E_SHAPE, "conv2d '%s': bias %s, expected [%d]", nw->name,
                    shape_of(node(g, b), s1, sizeof s1), d.oc);
    if (d.oh < 1 || d.ow < 1)
        return fail(g, AMS_E_SHAPE, "conv2d '%s': input %s is smaller than the kernel",
                    nw->name, shape_of(nx, s1, sizeof s1));
    node(g, id)->conv = d;
    return set_shape(g, id, 4, (int64_t[]){d.n, d.oh, d.ow, d.oc});
}

int ams_graph_conv2d_transpose(ams_graph *g, int x, int w, int b, int out_h, int out_w,
                               const ams_conv_opts *o) {
    int xs[3] = {x, w, b};
    int id = add_node(g, AMS_OP_CONV2D_TRANSPOSE, xs, b >= 0 ? 3 : 2);
    if (id < 0) return -1;
    char s1[96], s2[96];
    const ams_node *nx = node(g, x), *nw = node(g, w);
    if (nx->ndim != 4 || nw->ndim != 4)
        return fail(g, AMS_E_SHAPE, "conv2d_transpose '%s': input %s and weight %s must be 4-D",
                    nw->name, shape_of(nx, s1, sizeof s1), shape_of(nw, s2, sizeof s2));
    /* the forward conv maps (n,out_h,out_w,oc) to x's (n,ih,iw,ic) */
    ams_conv2d_desc d = {0};
    d.n = (int)nx->shape[0];
    d.h = out_h;
    d.w = out_w;
    d.c = (int)nw->shape[2];
    d.kh = (int)nw->shape[0];
    d.kw = (int)nw->shape[1];
    d.oc = (int)nw->shape[3];
    if (out_h < 1 || out_w < 1 || !conv_geometry(&d, o) || d.groups != 1)
        return fail(g, AMS_E_INVAL, "conv2d_transpose '%s': bad options", nw->name);
    if (d.oc != nx->shape[3] || d.oh != nx->shape[1] || d.ow != nx->shape[2])
        return fail(g, AMS_E_SHAPE,
                    "conv2d_transpose '%s': input %s, weight %s and output %dx%d do not fit",
                    nw->name, shape_of(nx, s1, sizeof s1), shape_of(nw, s2, sizeof s2), out_h,
                    out_w);
    if (b >= 0 && !is_vec(node(g, b), d.c))
        return fail(g, AMS_E_SHAPE, "conv2d_transpose '%s': bias %s, expected [%d]", nw->name,
                    shape_of(node(g, b), s1, sizeof s1), d.c);
    node(g, id)->conv = d;
    return set_shape(g, id, 4, (int64_t[]){d.n, out_h, out_w, d.c});
}

int ams_graph_batchnorm(ams_graph *g, int x, int gamma, int beta, int mean, int var, float eps) {
    if (g->status != AMS_OK || x < 0 || x >= g->count) return add_node(g, AMS_OP_BATCHNORM, &x, 1);
    int64_t c = node(g, x)->ndim ? node(g, x)->shape[node(g, x)->ndim - 1] : 0;
    if (gamma < 0) gamma = fill_const(g, "ones", c, 1.0f);
    if (beta < 0) beta = fill_const(g, "zeros", c, 0.0f);
    int xs[5] = {x, gamma, beta, mean, var};
    int id = add_node(g, AMS_OP_BATCHNORM, xs, 5);
    if (id < 0) return -1;
    char s1[96];
    for (int i = 1; i < 5; i++)
        if (!is_vec(node(g, xs[i]), c))
            return fail(g, AMS_E_SHAPE, "batchnorm: '%s' has shape %s, expected [%lld]",
                        node(g, xs[i])->name, shape_of(node(g, xs[i]), s1, sizeof s1),
                        (long long)c);
    if (!(eps > 0)) return fail(g, AMS_E_INVAL, "batchnorm: epsilon %g must be > 0", eps);
    node(g, id)->eps = eps;
    return set_shape(g, id, node(g, x)->ndim, node(g, x)->shape);
}

static int unary(ams_graph *g, ams_op op, int x) {
    int id = add_node(g, op, &x, 1);
    if (id < 0) return -1;
    return set_shape(g, id, node(g, x)->ndim, node(g, x)->shape);
}

int ams_graph_relu(ams_graph *g, int x) { return unary(g, AMS_OP_RELU, x); }
int ams_graph_relu6(ams_graph *g, int x) { return unary(g, AMS_OP_RELU6, x); }
int ams_graph_sigmoid(ams_graph *g, int x) { return unary(g, AMS_OP_SIGMOID, x); }
int ams_graph_tanh(ams_graph *g, int x) { return unary(g, AMS_OP_TANH, x); }

int ams_graph_affine(ams_graph *g, int x, float a, float b) {
    int id = unary(g, AMS_OP_AFFINE, x);
    if (id >= 0) {
        node(g, id)->a = a;
        node(g, id)->b = b;
    }
    return id;
}

static int binary(ams_graph *g, ams_op op, int a, int b) {
    int xs[2] = {a, b};
    int id = add_node(g, op, xs, 2);
    if (id < 0) return -1;
    const ams_node *na = node(g, a), *nb = node(g, b);
    ams_bcast_desc d = {0};
    d.ndim = na->ndim > nb->ndim ? na->ndim : nb->ndim;
    if (d.ndim == 0) d.ndim = 1;
    char s1[96], s2[96];
    for (int i = 0; i < d.ndim; i++) {
        int ia = i - (d.ndim - na->ndim), ib = i - (d.ndim - nb->ndim);
        d.a[i] = ia >= 0 ? na->shape[ia] : 1;
        d.b[i] = ib >= 0 ? nb->shape[ib] : 1;
        if (d.a[i] != d.b[i] && d.a[i] != 1 && d.b[i] != 1)
            return fail(g, AMS_E_SHAPE, "%s: shapes %s and %s do not broadcast", ams_op_name(op),
                        shape_of(na, s1, sizeof s1), shape_of(nb, s2, sizeof s2));
        d.out[i] = d.a[i] > d.b[i] ? d.a[i] : d.b[i];
    }
    node(g, id)->bc = d;
    int nd = na->ndim > nb->ndim ? na->ndim : nb->ndim;
    return set_shape(g, id, nd, d.out + (d.ndim - nd));
}

int ams_graph_add(ams_graph *g, int a, int b) { return binary(g, AMS_OP_ADD, a, b); }
int ams_graph_mul(ams_graph *g, int a, int b) { return binary(g, AMS_OP_MUL, a, b); }
int ams_graph_div(ams_graph *g, int a, int b) { return binary(g, AMS_OP_DIV, a, b); }

int ams_graph_concat(ams_graph *g, const int *xs, int k, int axis) {
    if (k < 1 || k > AMS_CONCAT_MAX) /* the executor keeps input pointers on the stack */
        return fail(g, AMS_E_INVAL, "concat of %d inputs (1..%d)", k, AMS_CONCAT_MAX);
    int id = add_node(g, AMS_OP_CONCAT, xs, k);
    if (id < 0) return -1;
    const ams_node *n0 = node(g, xs[0]);
    int nd = n0->ndim;
    if (axis < 0) axis += nd;
    if (axis < 0 || axis >= nd) return fail(g, AMS_E_INVAL, "concat: axis out of range");
    int64_t shape[AMS_MAX_DIMS];
    memcpy(shape, n0->shape, sizeof shape);
    shape[axis] = 0;
    int64_t inner = 1, outer = 1;
    for (int i = 0; i < axis; i++) outer *= n0->shape[i];
    for (int i = axis + 1; i < nd; i++) inner *= n0->shape[i];
    int64_t *chunk = malloc((size_t)k * sizeof *chunk);
    if (!chunk) return fail(g, AMS_E_NOMEM, "out of memory");
    node(g, id)->chunk = chunk;
    char s1[96], s2[96];
    for (int j = 0; j < k; j++) {
        const ams_node *nj = node(g, xs[j]);
        int ok = nj->ndim == nd;
        for (int i = 0; ok && i < nd; i++) ok = i == axis || nj->shape[i] == n0->shape[i];
        if (!ok)
            return fail(g, AMS_E_SHAPE, "concat: shapes %s and %s differ off axis %d",
                        shape_of(n0, s1, sizeof s1), shape_of(nj, s2, sizeof s2), axis);
        shape[axis] += nj->shape[axis];
        chunk[j] = nj->shape[axis] * inner;
    }
    node(g, id)->outer = outer;
    node(g, id)->axis = axis;
    return set_shape(g, id, nd, shape);
}

static int need4(ams_graph *g, int x, const char *what) {
    if (node(g, x)->ndim != 4) {
        char s1[96];
        return fail(g, AMS_E_SHAPE, "%s: input %s must be 4-D (NHWC)", what,
                    shape_of(node(g, x), s1, sizeof s1));
    }
    return 0;
}

int ams_graph_global_avgpool(ams_graph *g, int x) {
    int id = add_node(g, AMS_OP_GLOBAL_AVGPOOL, &x, 1);
    if (id < 0 || need4(g, x, "global_avgpool")) return -1;
    const int64_t *s = node(g, x)->shape;
    return set_shape(g, id, 4, (int64_t[]){s[0], 1, 1, s[3]});
}

static int pool(ams_graph *g, ams_op op, int x, int kh, int kw, int sh, int sw,
                ams_padding pad) {
    int id = add_node(g, op, &x, 1);
    if (id < 0 || need4(g, x, ams_op_name(op))) return -1;
    const int64_t *s = node(g, x)->shape;
    ams_pool2d_desc d = {(int)s[0], (int)s[1], (int)s[2], (int)s[3], 0, 0, kh, kw, sh, sw,
                         0, 0, 0, 0};
    if (kh < 1 || kw < 1 || sh < 1 || sw < 1 || pad == AMS_PAD_EXPLICIT)
        return fail(g, AMS_E_INVAL, "%s: bad window", ams_op_name(op));
    axis_padding(pad, d.h, kh, sh, 1, 0, 0, &d.pad_t, &d.pad_b);
    axis_padding(pad, d.w, kw, sw, 1, 0, 0, &d.pad_l, &d.pad_r);
    d.oh = ams_conv_out_size(d.h, kh, sh, 1, d.pad_t, d.pad_b);
    d.ow = ams_conv_out_size(d.w, kw, sw, 1, d.pad_l, d.pad_r);
    node(g, id)->pool = d;
    return set_shape(g, id, 4, (int64_t[]){d.n, d.oh, d.ow, d.c});
}

int ams_graph_avgpool(ams_graph *g, int x, int kh, int kw, int sh, int sw, ams_padding pad) {
    return pool(g, AMS_OP_AVGPOOL, x, kh, kw, sh, sw, pad);
}

int ams_graph_maxpool(ams_graph *g, int x, int kh, int kw, int sh, int sw, ams_padding pad) {
    return pool(g, AMS_OP_MAXPOOL, x, kh, kw, sh, sw, pad);
}

int ams_graph_resize_bilinear(ams_graph *g, int x, int oh, int ow, ams_resize_mode mode) {
    int id = add_node(g, AMS_OP_RESIZE_BILINEAR, &x, 1);
    if (id < 0 || need4(g, x, "resize_bilinear")) return -1;
    if (mode != AMS_RESIZE_ASYMMETRIC && mode != AMS_RESIZE_ALIGN_CORNERS &&
        mode != AMS_RESIZE_HALF_PIXEL)
        return fail(g, AMS_E_INVAL, "resize_bilinear: unknown mode %d", (int)mode);
    node(g, id)->oh = oh;
    node(g, id)->ow = ow;
    node(g, id)->mode = mode;
    const int64_t *s = node(g, x)->shape;
    return set_shape(g, id, 4, (int64_t[]){s[0], oh, ow, s[3]});
}

int ams_graph_dropout(ams_graph *g, int x, float keep_prob) {
    if (!(keep_prob > 0 && keep_prob <= 1))
        return fail(g, AMS_E_INVAL, "dropout: keep_prob %g not in (0,1]", keep_prob);
    int id = unary(g, AMS_OP_DROPOUT, x);
    if (id >= 0) node(g, id)->a = keep_prob;
    return id;
}

int ams_graph_reshape(ams_graph *g, int x, int ndim, const int64_t *shape) {
    int id = add_node(g, AMS_OP_RESHAPE, &x, 1);
    if (id < 0) return -1;
    if (ndim < 0 || ndim > AMS_MAX_DIMS) return fail(g, AMS_E_SHAPE, "reshape: bad rank");
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i] > 0 ? (size_t)shape[i] : 0;
    if (n != node(g, x)->numel)
        return fail(g, AMS_E_SHAPE, "reshape: %zu elements into %zu", node(g, x)->numel, n);
    return set_shape(g, id, ndim, shape);
}

static int loss_common(ams_graph *g, ams_op op, int logits, int labels) {
    int xs[2] = {logits, labels};
    int id = add_node(g, op, xs, 2);
    if (id < 0 || need4(g, logits, ams_op_name(op))) return -1;
    const ams_node *nl = node(g, logits), *nb = node(g, labels);
    char s1[96], s2[96];
    if (nb->op != AMS_OP_LABELS || nb->shape[0] != nl->shape[0] || nb->shape[1] != nl->shape[1] ||
        nb->shape[2] != nl->shape[2])
        return fail(g, AMS_E_SHAPE, "%s: labels %s do not match logits %s", ams_op_name(op),
                    shape_of(nb, s1, sizeof s1), shape_of(nl, s2, sizeof s2));
    return set_shape(g, id, 0, NULL);
}

int ams_graph_softmax_ce(ams_graph *g, int logits, int labels, const int *classes, int nsub) {
    int id = loss_common(g, AMS_OP_SOFTMAX_CE, logits, labels);
    if (id < 0) return -1;
    int c = (int)node(g, logits)->shape[3];
    if (classes && nsub > 0) {
        if (nsub > c) return fail(g, AMS_E_INVAL, "softmax_ce: %d classes in a subset of %d", nsub, c);
        int *cl = malloc((size_t)nsub * sizeof(int));
        if (!cl) return fail(g, AMS_E_NOMEM, "out of memory");
        node(g, id)->classes = cl;
        for (int i = 0; i < nsub; i++) {
            if (classes[i] < 0 || classes[i] >= c || classes[i] == 255)
                return fail(g, AMS_E_INVAL, "softmax_ce: class %d not in 0..%d", classes[i], c - 1);
            for (int j = 0; j < i; j++)
                if (classes[j] == classes[i])
                    return fail(g, AMS_E_INVAL, "softmax_ce: class %d twice in the subset",
                                classes[i]);
            cl[i] = classes[i];
        }
        node(g, id)->nsub = nsub;
    }
    return id;
}

int ams_graph_bce_logits(ams_graph *g, int logits, int labels) {
    int id = loss_common(g, AMS_OP_BCE_LOGITS, logits, labels);
    if (id >= 0 && node(g, logits)->shape[3] != 1)
        return fail(g, AMS_E_SHAPE, "bce_logits: logits must have 1 channel, not %lld",
                    (long long)node(g, logits)->shape[3]);
    return id;
}

void ams_graph_keep(ams_graph *g, int n) {
    if (n >= 0 && n < g->count) g->nodes[n].keep = 1;
}

ams_params *ams_graph_params(const ams_graph *g) { return g->params; }

int ams_graph_node_count(const ams_graph *g) { return g->count; }

double ams_graph_forward_flops(const ams_graph *g) {
    double flops = 0;
    for (int i = 0; i < g->count; i++) {
        const ams_node *n = &g->nodes[i];
        if (n->op != AMS_OP_CONV2D && n->op != AMS_OP_CONV2D_TRANSPOSE) continue;
        const ams_conv2d_desc *d = &n->conv;
        flops += 2.0 * d->n * d->oh * d->ow * d->oc * (double)(d->c / d->groups) * d->kh * d->kw;
    }
    return flops;
}

ams_op ams_graph_node_op(const ams_graph *g, int n) {
    AMS_ASSERT(n >= 0 && n < g->count);
    return g->nodes[n].op;
}

int ams_graph_shape(const ams_graph *g, int n, int64_t *shape) {
    AMS_ASSERT(n >= 0 && n < g->count);
    for (int i = 0; i < g->nodes[n].ndim; i++) shape[i] = g->nodes[n].shape[i];
    return g->nodes[n].ndim;
}

const char *ams_op_name(ams_op op) {
    static const char *const names[AMS_OP__COUNT] = {
        "input", "labels", "param", "const", "conv2d", "conv2d_transpose", "batchnorm",
        "relu", "relu6", "sigmoid", "tanh", "affine", "add", "mul", "concat",
        "global_avgpool", "avgpool", "maxpool", "resize_bilinear", "dropout", "softmax_ce",
        "bce_logits", "reshape", "div"};
    return (op >= 0 && op < AMS_OP__COUNT) ? names[op] : "unknown";
}
