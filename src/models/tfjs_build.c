/* tfjs_build.c - builds an ams_graph from a loaded TF.js graph model for one input
 * size: an interpreter over the op list that evaluates shape plumbing and fixed
 * conditionals on the host (constant folding) and emits engine ops for tensors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/tfjs_internal.h"

#define MAX_HOST_ELEMS ((int64_t)1 << 26) /* a folded constant's or engine constant's size */
#define HOST_BUDGET ((int64_t)1 << 24)    /* folded elements stored per build (128 MiB) */

typedef enum {
    V_NONE = 0, /* not evaluated (not needed) */
    V_DEAD,     /* on an untaken tf.cond branch */
    V_TENSOR,   /* a graph node (maybe with a pending pad / space-to-batch / conv) */
    V_HOST,     /* a value known at build time */
} vkind;

typedef enum { ACT_NONE = 0, ACT_RELU, ACT_RELU6 } act_kind;

/* A convolution waiting for its BatchToSpaceND (atrous conv folding). */
typedef struct pending_conv {
    int x, w, b;          /* graph nodes (b may be -1) */
    ams_conv_opts o;      /* EXPLICIT pads, dilation = block */
    act_kind act;
    int blk[2];
} pending_conv;

typedef struct val {
    vkind kind;
    int ndim;
    int64_t shape[AMS_MAX_DIMS]; /* the shape TF sees (after pending ops) */
    /* V_TENSOR */
    int node;             /* the graph node (for pending ops: their unpadded input) */
    int pad[4];           /* pending zero padding t, b, l, r (Pad / SpaceToBatchND) */
    int blk[2];           /* pending SpaceToBatchND block (0: none) */
    pending_conv *pc;     /* pending conv in space-to-batch space, or NULL */
    /* V_HOST */
    int is_int;           /* int32 / bool values (still stored as double) */
    double *d;            /* numel values (1 if splat), or NULL when param-backed */
    int splat;            /* every element is d[0] (BroadcastTo of a scalar) */
    int param;            /* >= 0: float values live in params (a model weight) */
    int gnode;            /* graph node made for this host value, or -1 */
} val;

typedef struct ref_info {
    int in_h, in_w;       /* a node's image-plane input size in the reference build */
} ref_info;

typedef struct builder {
    const ams_tfjs_model *m;
    ams_graph *g;
    const ams_tfjs_build_opts *o;
    val **vals;           /* per node: nout values */
    int *param_node;      /* per param: its graph node or -1 */
    void **pool;          /* every allocation, freed at the end */
    int npool, cappool;
    ref_info *ref;        /* reference-size shapes (NULL: none) */
    int recording;        /* 1: this is the reference pass; fill ref */
    int *bias_of;         /* per conv node: the Const its only consumer adds (fused), or -1 */
    char *passthru;       /* per node: 1 = an Add whose bias went into its conv */
    int input_node;
    int64_t host_used;    /* folded elements stored so far (HOST_BUDGET) */
    ams_err *err;
} builder;

/* ---------------------------------------------------------------- memory */

static void *balloc(builder *b, size_t n) {
    if (b->npool == b->cappool) {
        int cap = b->cappool ? 2 * b->cappool : 256;
        void **p = realloc(b->pool, (size_t)cap * sizeof *p);
        if (!p) return NULL;
        b->pool = p;
        b->cappool = cap;
    }
    void *r = calloc(1, n ? n : 1);
    if (r) b->pool[b->npool++] = r;
    return r;
}

/* Product of the dims, saturating at INT64_MAX (shapes may come from hostile files). */
static int64_t numel_of(int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 0 || __builtin_mul_overflow(n, shape[i], &n)) return INT64_MAX;
    return n;
}

static const char *shape_s(char *buf, size_t cap, const val *v) {
    return ams_shape_str(buf, cap, v->ndim, v->shape);
}

/* ---------------------------------------------------------------- host values */

static ams_status host_new(builder *b, val *v, int is_int, int ndim, const int64_t *shape) {
    memset(v, 0, sizeof *v);
    v->kind = V_HOST;
    v->is_int = is_int;
    v->param = -1;
    v->gnode = -1;
    v->node = -1;
    AMS_FAIL_IF(ndim > AMS_MAX_DIMS || ndim < 0, b->err, AMS_E_RANGE, "rank %d too large", ndim);
    v->ndim = ndim;
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        AMS_FAIL_IF(shape[i] < 0 || shape[i] > MAX_HOST_ELEMS, b->err, AMS_E_RANGE,
                    "bad dimension %lld", (long long)shape[i]);
        v->shape[i] = shape[i];
        n *= shape[i];
        AMS_FAIL_IF(n > MAX_HOST_ELEMS, b->err, AMS_E_RANGE,
                    "a folded constant of more than %lld elements", (long long)MAX_HOST_ELEMS);
    }
    b->host_used += n;
    AMS_FAIL_IF(b->host_used > HOST_BUDGET, b->err, AMS_E_RANGE,
                "folded constants exceed %lld elements", (long long)HOST_BUDGET);
    v->d = balloc(b, (size_t)n * sizeof(double));
    AMS_FAIL_IF(!v->d, b->err, AMS_E_NOMEM, "out of memory");
    return AMS_OK;
}

static double hget(const builder *b, const val *v, int64_t i) {
    if (v->splat) return v->d[0];
    if (v->d) return v->d[i];
    return ams_params_data(b->m->params, v->param)[i];
}

static int64_t hnumel(const val *v) { return numel_of(v->ndim, v->shape); }

/* A host value as graph node (a parameter view for model weights). */
static int host_node(builder *b, val *v) {
    if (v->gnode >= 0) return v->gnode;
    if (v->param >= 0) {
        if (b->param_node[v->param] < 0) b->param_node[v->param] = ams_graph_param(b->g, v->param);
        return v->gnode = b->param_node[v->param];
    }
    int64_t n = hnumel(v);
    if (n > MAX_HOST_ELEMS) return -1;
    float *f = malloc((size_t)(n ? n : 1) * sizeof(float));
    if (!f) return -1;
    for (int64_t i = 0; i < n; i++) f[i] = (float)hget(b, v, i);
    v->gnode = ams_graph_const(b->g, "tfjs_const", v->ndim, v->shape, f);
    free(f);
    return v->gnode;
}

/* ---------------------------------------------------------------- node access */

static val *in_val(builder *b, const tfjs_node *n, int k) {
    return &b->vals[n->in_node[k]][n->in_port[k]];
}

static ams_status bad(builder *b, const tfjs_node *n, const char *what) {
    return ams_err_set(b->err, AMS_E_UNSUPPORTED, "unsupported op '%s' at node '%s': %s", n->op,
                       n->name, what);
}

/* The graph node of a plain tensor input (pending ops are an error here). */
static ams_status tensor_in(builder *b, const tfjs_node *n, int k, int *node) {
    val *v = in_val(b, n, k);
    if (v->kind == V_HOST) {
        *node = host_node(b, v);
        return *node >= 0 ? AMS_OK : ams_graph_error(b->g, b->err);
    }
    AMS_FAIL_IF(v->kind != V_TENSOR, b->err, AMS_E_INTERNAL, "node '%s': input %d has no value",
                n->name, k);
    if (v->pc || v->blk[0] || v->pad[0] || v->pad[1] || v->pad[2] || v->pad[3])
        return bad(b, n, "its input is a Pad / SpaceToBatchND that only a convolution can absorb");
    *node = v->node;
    return AMS_OK;
}

static ams_status set_tensor(builder *b, const tfjs_node *n, int port, int node) {
    if (node < 0) {
        ams_status s = ams_graph_error(b->g, b->err);
        if (s == AMS_OK) s = ams_err_set(b->err, AMS_E_INTERNAL, "builder failed");
        ams_err_prefix(b->err, "node '%s' (%s)", n->name, n->op);
        return s;
    }
    val *v = &b->vals[n - b->m->nodes][port];
    memset(v, 0, sizeof *v);
    v->kind = V_TENSOR;
    v->node = node;
    v->param = -1;
    v->gnode = -1;
    v->ndim = ams_graph_shape(b->g, node, v->shape);
    return AMS_OK;
}

static ams_status host_ints(builder *b, const tfjs_node *n, int k, int64_t *out, int cap,
                            int *count) {
    val *v = in_val(b, n, k);
    if (v->kind != V_HOST) return bad(b, n, "a size/axis input is not a build-time constant");
    int64_t cnt = hnumel(v);
    AMS_FAIL_IF(cnt > cap, b->err, AMS_E_RANGE, "node '%s': %lld values (at most %d)", n->name,
                (long long)cnt, cap);
    for (int64_t i = 0; i < cnt; i++) {
        double x = hget(b, v, i);
        AMS_FAIL_IF(!(x >= -2147483648.0 && x <= 2147483647.0), b->err, AMS_E_RANGE,
                    "node '%s': value %g out of range", n->name, x);
        out[i] = (int64_t)x;
    }
    *count = (int)cnt;
    return AMS_OK;
}

/* ---------------------------------------------------------------- broadcasting */

static int bcast_shape(const val *a, const val *c, int *ndim, int64_t *out) {
    int nd = a->ndim > c->ndim ? a->ndim : c->ndim;
    for (int i = 0; i < nd; i++) {
        int ia = i - (nd - a->ndim), ic = i - (nd - c->ndim);
        int64_t da = ia >= 0 ? a->shape[ia] : 1, dc = ic >= 0 ? c->shape[ic] : 1;
        if (da != dc && da != 1 && dc != 1) return 0;
        out[i] = da == 1 ? dc : da;
    }
    *ndim = nd;
    return 1;
}

/* Element index into a of output element idx (row-major) under broadcasting. */
static int64_t bcast_index(const val *a, int nd, const int64_t *out, int64_t idx) {
    int64_t r = 0, stride = 1;
    for (int i = nd - 1; i >= 0; i--) {
        int64_t coord = idx % out[i];
        idx /= out[i];
        int ia = i - (nd - a->ndim);
        if (ia >= 0) {
            if (a->shape[ia] != 1) r += coord * stride;
            stride *= a->shape[ia];
        }
    }
    return r;
}

typedef enum {
    BIN_ADD, BIN_SUB, BIN_MUL, BIN_DIV, BIN_FLOORDIV, BIN_FLOORMOD, BIN_MAX, BIN_MIN,
    BIN_EQ, BIN_NE, BIN_LT, BIN_LE, BIN_GT, BIN_GE, BIN_POW, BIN_SQDIFF,
} binop;

static double bin_apply(binop op, double x, double y, int ints) {
    switch (op) {
    case BIN_ADD: return x + y;
    case BIN_SUB: return x - y;
    case BIN_MUL: return x * y;
    case BIN_DIV:
        if (ints) return y != 0 ? trunc(x / y) : 0;
        return x / y;
    case BIN_FLOORDIV: return y != 0 ? floor(x / y) : 0;
    case BIN_FLOORMOD: {
        if (y == 0) return 0;
        double r = fmod(x, y);
        if (r != 0 && ((r < 0) != (y < 0))) r += y;
        return r;
    }
    case BIN_MAX: return x > y ? x : y;
    case BIN_MIN: return x < y ? x : y;
    case BIN_EQ: return x == y;
    case BIN_NE: return x != y;
    case BIN_LT: return x < y;
    case BIN_LE: return x <= y;
    case BIN_GT: return x > y;
    case BIN_GE: return x >= y;
    case BIN_POW: return pow(x, y);
    case BIN_SQDIFF: return (x - y) * (x - y);
    }
    return 0;
}

static ams_status host_binary(builder *b, const tfjs_node *n, binop op, val *out) {
    val *a = in_val(b, n, 0), *c = in_val(b, n, 1);
    int nd;
    int64_t shp[AMS_MAX_DIMS];
    char s1[96], s2[96];
    AMS_FAIL_IF(!bcast_shape(a, c, &nd, shp), b->err, AMS_E_SHAPE,
                "node '%s' (%s): shapes %s and %s do not broadcast", n->name, n->op,
                shape_s(s1, sizeof s1, a), shape_s(s2, sizeof s2, c));
    int ints = a->is_int && c->is_int;
    int cmp = op >= BIN_EQ && op <= BIN_GE;
    AMS_TRY(host_new(b, out, ints || cmp, nd, shp));
    int64_t cnt = hnumel(out);
    for (int64_t i = 0; i < cnt; i++)
        out->d[i] = bin_apply(op, hget(b, a, bcast_index(a, nd, shp, i)),
                              hget(b, c, bcast_index(c, nd, shp, i)), ints);
    if (!cmp && !ints)
        for (int64_t i = 0; i < cnt; i++) out->d[i] = (float)out->d[i]; /* float32 math */
    return AMS_OK;
}

/* ---------------------------------------------------------------- tensor elementwise */

static int is_scalar_host(const val *v) { return v->kind == V_HOST && hnumel(v) == 1; }

/* Tensor (op) tensor-or-host with numpy broadcasting, mapped onto engine ops. */
static ams_status tensor_binary(builder *b, const tfjs_node *n, binop op) {
    val *a = in_val(b, n, 0), *c = in_val(b, n, 1);
    ams_graph *g = b->g;
    int swapped = 0;
    if (a->kind == V_HOST) { /* keep the tensor first */
        val *t = a;
        a = c;
        c = t;
        swapped = 1;
    }
    int x = -1, y = -1;
    AMS_TRY(tensor_in(b, n, swapped ? 1 : 0, &x));
    /* scalar constants that are not trainable weights become an affine op */
    if (is_scalar_host(c) && !(c->param >= 0 && b->m->nodes[n->in_node[swapped ? 0 : 1]].trainable)) {
        double s = hget(b, c, 0);
        switch (op) {
        case BIN_ADD: return set_tensor(b, n, 0, ams_graph_affine(g, x, 1.0f, (float)s));
        case BIN_SUB:
            return set_tensor(b, n, 0,
                              swapped ? ams_graph_affine(g, x, -1.0f, (float)s)
                                      : ams_graph_affine(g, x, 1.0f, (float)-s));
        case BIN_MUL: return set_tensor(b, n, 0, ams_graph_affine(g, x, (float)s, 0.0f));
        case BIN_DIV:
            if (!swapped) return set_tensor(b, n, 0, ams_graph_affine(g, x, (float)(1.0 / s), 0.0f));
            break; /* s / x: a broadcasting divide below */
        case BIN_MAX: /* max(x, s) = relu(x - s) + s */
            return set_tensor(b, n, 0,
                              ams_graph_affine(g, ams_graph_relu(g, ams_graph_affine(g, x, 1.0f, (float)-s)),
                                               1.0f, (float)s));
        case BIN_MIN: /* min(x, s) = s - relu(s - x) */
            return set_tensor(b, n, 0,
                              ams_graph_affine(g, ams_graph_relu(g, ams_graph_affine(g, x, -1.0f, (float)s)),
                                               -1.0f, (float)s));
        default: return bad(b, n, "this elementwise op has no engine mapping");
        }
    }
    AMS_TRY(tensor_in(b, n, swapped ? 0 : 1, &y));
    switch (op) {
    case BIN_ADD: return set_tensor(b, n, 0, ams_graph_add(g, x, y));
    case BIN_MUL: return set_tensor(b, n, 0, ams_graph_mul(g, x, y));
    case BIN_SUB: {
        /* a - b with a = first TF input */
        int first = swapped ? y : x, second = swapped ? x : y;
        return set_tensor(b, n, 0, ams_graph_add(g, first, ams_graph_affine(g, second, -1.0f, 0.0f)));
    }
    case BIN_SQDIFF: {
        int d = ams_graph_add(g, x, ams_graph_affine(g, y, -1.0f, 0.0f));
        return set_tensor(b, n, 0, ams_graph_mul(g, d, d));
    }
    case BIN_DIV:
        if (!swapped && c->kind == V_HOST && c->param < 0) {
            /* x / c = x * (1/c) for a folded constant c */
            val r;
            AMS_TRY(host_new(b, &r, 0, c->ndim, c->shape));
            for (int64_t i = 0; i < hnumel(c); i++) r.d[i] = (float)(1.0 / hget(b, c, i));
            int rn = host_node(b, &r);
            return set_tensor(b, n, 0, ams_graph_mul(g, x, rn));
        }
        /* RealDiv/Div of float tensors (RVM's guided filter): a / b, TF input order */
        return set_tensor(b, n, 0, swapped ? ams_graph_div(g, y, x) : ams_graph_div(g, x, y));
    default: return bad(b, n, "this elementwise op on two tensors has no engine mapping");
    }
}

/* ---------------------------------------------------------------- convolutions */

static ams_status conv_attrs(builder *b, const tfjs_node *n, int64_t st[4], int64_t dl[4],
                             char *pad, size_t padcap, int64_t ex[8], int *nex) {
    char fmt[16] = "NHWC";
    ams_tfjs_attr_str(n, "data_format", fmt, sizeof fmt);
    if (strcmp(fmt, "NHWC")) return bad(b, n, "only NHWC data_format is supported");
    st[1] = st[2] = dl[1] = dl[2] = 1;
    int k = ams_tfjs_attr_ints(n, "strides", st, 4);
    AMS_FAIL_IF(k != 4 && k != -1, b->err, AMS_E_FORMAT, "node '%s': bad strides", n->name);
    k = ams_tfjs_attr_ints(n, "dilations", dl, 4);
    if (k != 4) dl[1] = dl[2] = 1;
    AMS_FAIL_IF(st[1] < 1 || st[2] < 1 || st[1] > 1024 || st[2] > 1024 || dl[1] < 1 ||
                    dl[2] < 1 || dl[1] > 1024 || dl[2] > 1024,
                b->err, AMS_E_FORMAT, "node '%s': bad strides or dilations", n->name);
    if (!ams_tfjs_attr_str(n, "padding", pad, padcap)) snprintf(pad, padcap, "VALID");
    *nex = ams_tfjs_attr_ints(n, "explicit_paddings", ex, 8);
    if (!strcmp(pad, "EXPLICIT")) {
        AMS_FAIL_IF(*nex != 8, b->err, AMS_E_FORMAT, "node '%s': EXPLICIT padding needs 8 values",
                    n->name);
        for (int i = 0; i < 8; i++)
            AMS_FAIL_IF(ex[i] < 0 || ex[i] > 65536, b->err, AMS_E_FORMAT,
                        "node '%s': bad explicit padding", n->name);
    } else if (strcmp(pad, "SAME") && strcmp(pad, "VALID")) {
        return bad(b, n, "padding is neither SAME, VALID nor EXPLICIT");
    }
    return AMS_OK;
}

static void same_pad(int64_t in, int64_t k, int64_t s, int64_t d, int *before, int *after) {
    int64_t out = (in + s - 1) / s;
    int64_t total = (out - 1) * s + (k - 1) * d + 1 - in;
    if (total < 0) total = 0;
    *before = (int)(total / 2);
    *after = (int)(total - total / 2);
}

static int apply_act(ams_graph *g, int x, act_kind a) {
    if (a == ACT_RELU) return ams_graph_relu(g, x);
    if (a == ACT_RELU6) return ams_graph_relu6(g, x);
    return x;
}

static ams_status eval_const(builder *b, int idx);

/* Conv2D, DepthwiseConv2dNative and their fused forms (BiasAdd + Relu / Relu6). */
static ams_status build_conv(builder *b, const tfjs_node *n, int depthwise, int fused) {
    AMS_FAIL_IF(n->nin < 2, b->err, AMS_E_FORMAT, "node '%s': %s needs 2 inputs", n->name, n->op);
    int64_t st[4], dl[4], ex[8];
    int nex;
    char pad[16];
    AMS_TRY(conv_attrs(b, n, st, dl, pad, sizeof pad, ex, &nex));
    val *xv = in_val(b, n, 0), *wv = in_val(b, n, 1);
    AMS_FAIL_IF(xv->kind != V_TENSOR || xv->pc, b->err, AMS_E_UNSUPPORTED,
                "unsupported op '%s' at node '%s': the input is not an image tensor", n->op, n->name);
    AMS_FAIL_IF(wv->ndim != 4, b->err, AMS_E_SHAPE, "node '%s': the filter is not 4-D", n->name);
    int w = -1, bias = -1;
    AMS_TRY(tensor_in(b, n, 1, &w));
    act_kind act = ACT_NONE;
    int bidx = b->bias_of[n - b->m->nodes];
    if (bidx >= 0) { /* Conv2D + Add(bias): one conv with a bias */
        if (b->vals[bidx][0].kind == V_NONE) AMS_TRY(eval_const(b, bidx));
        bias = host_node(b, &b->vals[bidx][0]);
        if (bias < 0) return set_tensor(b, n, 0, -1);
    }
    if (fused) {
        char ops[4][32];
        int nops = ams_tfjs_attr_strs(n, "fused_ops", ops, 4);
        for (int i = 0; i < nops; i++) {
            if (!strcmp(ops[i], "BiasAdd")) {
                AMS_FAIL_IF(n->nin < 3, b->err, AMS_E_FORMAT, "node '%s': BiasAdd without a bias",
                            n->name);
                AMS_TRY(tensor_in(b, n, 2, &bias));
            } else if (!strcmp(ops[i], "Relu") && act == ACT_NONE) {
                act = ACT_RELU;
            } else if (!strcmp(ops[i], "Relu6") && act == ACT_NONE) {
                act = ACT_RELU6;
            } else {
                char what[160];
                snprintf(what, sizeof what, "fused op '%s'", ops[i]);
                return bad(b, n, what);
            }
        }
    }
    /* the image plane after any pending Pad (and SpaceToBatchND paddings) */
    int64_t h = xv->blk[0] ? xv->shape[1] * xv->blk[0] : xv->shape[1];
    int64_t wd = xv->blk[0] ? xv->shape[2] * xv->blk[1] : xv->shape[2];
    ams_conv_opts o = {0};
    o.padding = AMS_PAD_EXPLICIT;
    o.stride_h = (int)st[1];
    o.stride_w = (int)st[2];
    o.dil_h = (int)dl[1];
    o.dil_w = (int)dl[2];
    int kh = (int)wv->shape[0], kw = (int)wv->shape[1];
    if (!strcmp(pad, "SAME")) {
        same_pad(h, kh, st[1], dl[1], &o.pad_t, &o.pad_b);
        same_pad(wd, kw, st[2], dl[2], &o.pad_l, &o.pad_r);
    } else if (!strcmp(pad, "EXPLICIT")) {
        o.pad_t = (int)ex[2], o.pad_b = (int)ex[3], o.pad_l = (int)ex[4], o.pad_r = (int)ex[5];
    }
    o.pad_t += xv->pad[0], o.pad_b += xv->pad[1], o.pad_l += xv->pad[2], o.pad_r += xv->pad[3];
    o.groups = depthwise ? (int)xv->shape[3] : 1;
    if (xv->blk[0]) {
        /* VALID conv in space-to-batch space = conv dilated by the block on the image */
        if (o.stride_h != 1 || o.stride_w != 1 || o.dil_h != 1 || o.dil_w != 1 || strcmp(pad, "VALID"))
            return bad(b, n, "SpaceToBatchND feeding a strided, dilated or padded conv");
        pending_conv *pc = balloc(b, sizeof *pc);
        AMS_FAIL_IF(!pc, b->err, AMS_E_NOMEM, "out of memory");
        pc->x = xv->node;
        pc->w = w;
        pc->b = bias;
        pc->o = o;
        pc->o.dil_h = xv->blk[0];
        pc->o.dil_w = xv->blk[1];
        pc->act = act;
        pc->blk[0] = xv->blk[0];
        pc->blk[1] = xv->blk[1];
        val *v = &b->vals[n - b->m->nodes][0];
        memset(v, 0, sizeof *v);
        v->kind = V_TENSOR;
        v->node = -1;
        v->param = v->gnode = -1;
        v->pc = pc;
        v->ndim = 4;
        v->shape[0] = xv->shape[0];
        v->shape[1] = xv->shape[1] - (int64_t)(kh - 1);
        v->shape[2] = xv->shape[2] - (int64_t)(kw - 1);
        v->shape[3] = depthwise ? xv->shape[3] * wv->shape[3] : wv->shape[3];
        AMS_FAIL_IF(v->shape[1] < 1 || v->shape[2] < 1, b->err, AMS_E_SHAPE,
                    "node '%s': input smaller than the kernel", n->name);
        return AMS_OK;
    }
    int y = ams_graph_conv2d(b->g, xv->node, w, bias, &o);
    return set_tensor(b, n, 0, apply_act(b->g, y, act));
}

static ams_status build_space_to_batch(builder *b, const tfjs_node *n) {
    val *xv = in_val(b, n, 0);
    if (xv->kind != V_TENSOR || xv->pc || xv->blk[0] || xv->ndim != 4)
        return bad(b, n, "the input is not a 4-D image tensor");
    int64_t blk[2], pads[4];
    int nb, np;
    AMS_TRY(host_ints(b, n, 1, blk, 2, &nb));
    AMS_TRY(host_ints(b, n, 2, pads, 4, &np));
    if (nb != 2 || np != 4) return bad(b, n, "only 2 spatial block dimensions are supported");
    AMS_FAIL_IF(blk[0] < 1 || blk[1] < 1 || blk[0] > 1024 || blk[1] > 1024, b->err, AMS_E_FORMAT,
                "node '%s': bad block shape", n->name);
    for (int i = 0; i < 4; i++)
        AMS_FAIL_IF(pads[i] < 0 || pads[i] > 65536, b->err, AMS_E_FORMAT,
                    "node '%s': bad paddings", n->name);
    int64_t ph = xv->shape[1] + pads[0] + pads[1], pw = xv->shape[2] + pads[2] + pads[3];
    AMS_FAIL_IF(ph % blk[0] || pw % blk[1], b->err, AMS_E_SHAPE,
                "node '%s': padded size %lldx%lld is not a multiple of the block", n->name,
                (long long)ph, (long long)pw);
    val *v = &b->vals[n - b->m->nodes][0];
    *v = *xv;
    for (int i = 0; i < 4; i++) v->pad[i] += (int)pads[i];
    v->blk[0] = (int)blk[0];
    v->blk[1] = (int)blk[1];
    v->shape[0] = xv->shape[0] * blk[0] * blk[1];
    v->shape[1] = ph / blk[0];
    v->shape[2] = pw / blk[1];
    return AMS_OK;
}

static ams_status build_batch_to_space(builder *b, const tfjs_node *n) {
    val *xv = in_val(b, n, 0);
    if (xv->kind != V_TENSOR || !xv->pc)
        return bad(b, n, "only a BatchToSpaceND right after a SpaceToBatchND convolution is supported");
    int64_t blk[2], crops[4];
    int nb, nc;
    AMS_TRY(host_ints(b, n, 1, blk, 2, &nb));
    AMS_TRY(host_ints(b, n, 2, crops, 4, &nc));
    pending_conv *pc = xv->pc;
    if (nb != 2 || nc != 4 || blk[0] != pc->blk[0] || blk[1] != pc->blk[1])
        return bad(b, n, "the block does not match its SpaceToBatchND");
    for (int i = 0; i < 4; i++)
        AMS_FAIL_IF(crops[i] < 0 || crops[i] > 65536, b->err, AMS_E_FORMAT, "node '%s': bad crops",
                    n->name);
    ams_conv_opts o = pc->o;
    /* cropping the output start = padding less at the start (stride 1) */
    o.pad_t -= (int)crops[0];
    o.pad_b -= (int)crops[1];
    o.pad_l -= (int)crops[2];
    o.pad_r -= (int)crops[3];
    if (o.pad_t < 0 || o.pad_b < 0 || o.pad_l < 0 || o.pad_r < 0)
        return bad(b, n, "crops larger than the paddings");
    int y = ams_graph_conv2d(b->g, pc->x, pc->w, pc->b, &o);
    return set_tensor(b, n, 0, apply_act(b->g, y, pc->act));
}

static ams_status build_pad(builder *b, const tfjs_node *n) {
    val *xv = in_val(b, n, 0);
    if (xv->kind != V_TENSOR || xv->pc || xv->blk[0] || xv->ndim != 4)
        return bad(b, n, "only zero padding of a 4-D image tensor feeding a convolution");
    if (!strcmp(n->op, "PadV2")) {
        val *cv = in_val(b, n, 2);
        if (cv->kind != V_HOST || hget(b, cv, 0) != 0.0) return bad(b, n, "non-zero pad value");
    }
    int64_t p[8];
    int np;
    AMS_TRY(host_ints(b, n, 1, p, 8, &np));
    if (np != 8 || p[0] || p[1] || p[6] || p[7]) return bad(b, n, "padding of the batch or channel axis");
    for (int i = 2; i < 6; i++)
        AMS_FAIL_IF(p[i] < 0 || p[i] > 65536, b->err, AMS_E_FORMAT, "node '%s': bad paddings", n->name);
    val *v = &b->vals[n - b->m->nodes][0];
    *v = *xv;
    for (int i = 0; i < 4; i++) v->pad[i] += (int)p[2 + i];
    v->shape[1] += p[2] + p[3];
    v->shape[2] += p[4] + p[5];
    return AMS_OK;
}

static ams_status build_conv_transpose(builder *b, const tfjs_node *n) {
    AMS_FAIL_IF(n->nin != 3, b->err, AMS_E_FORMAT, "node '%s': needs 3 inputs", n->name);
    int64_t st[4], dl[4], ex[8], sizes[4];
    int nex, ns;
    char pad[16];
    AMS_TRY(conv_attrs(b, n, st, dl, pad, sizeof pad, ex, &nex));
    AMS_TRY(host_ints(b, n, 0, sizes, 4, &ns));
    if (ns != 4) return bad(b, n, "input_sizes is not 4 values");
    int x = -1, w = -1;
    AMS_TRY(tensor_in(b, n, 2, &x));
    AMS_TRY(tensor_in(b, n, 1, &w));
    int64_t xs[AMS_MAX_DIMS];
    AMS_FAIL_IF(ams_graph_shape(b->g, x, xs) != 4, b->err, AMS_E_SHAPE, "node '%s': input not 4-D",
                n->name);
    int64_t oh = sizes[1], ow = sizes[2];
    int idx = (int)(n - b->m->nodes);
    const tfjs_node *src = &b->m->nodes[n->in_node[0]];
    if (b->recording) {
        b->ref[idx].in_h = (int)xs[1];
        b->ref[idx].in_w = (int)xs[2];
    } else if (b->ref && b->ref[idx].in_h > 0 && !strcmp(src->op, "Const")) {
        /* a literal output size belongs to the export resolution: scale it */
        oh = xs[1] * oh / b->ref[idx].in_h;
        ow = xs[2] * ow / b->ref[idx].in_w;
    }
    ams_conv_opts o = {0};
    o.stride_h = (int)st[1];
    o.stride_w = (int)st[2];
    o.dil_h = (int)dl[1];
    o.dil_w = (int)dl[2];
    if (!strcmp(pad, "SAME")) o.padding = AMS_PAD_SAME;
    else if (!strcmp(pad, "VALID")) o.padding = AMS_PAD_VALID;
    else {
        o.padding = AMS_PAD_EXPLICIT;
        o.pad_t = (int)ex[2], o.pad_b = (int)ex[3], o.pad_l = (int)ex[4], o.pad_r = (int)ex[5];
    }
    AMS_FAIL_IF(oh < 1 || ow < 1 || oh > 1 << 20 || ow > 1 << 20, b->err, AMS_E_SHAPE,
                "node '%s': bad output size %lldx%lld", n->name, (long long)oh, (long long)ow);
    return set_tensor(b, n, 0,
                      ams_graph_conv2d_transpose(b->g, x, w, -1, (int)oh, (int)ow, &o));
}

/* ---------------------------------------------------------------- other tensor ops */

static ams_status build_pool(builder *b, const tfjs_node *n, int is_max) {
    int x = -1;
    AMS_TRY(tensor_in(b, n, 0, &x));
    int64_t ks[4] = {1, 1, 1, 1}, st[4] = {1, 1, 1, 1}, xs[AMS_MAX_DIMS];
    char pad[16] = "VALID";
    if (ams_tfjs_attr_ints(n, "ksize", ks, 4) != 4 || ams_tfjs_attr_ints(n, "strides", st, 4) != 4)
        return bad(b, n, "ksize/strides are not 4 values");
    ams_tfjs_attr_str(n, "padding", pad, sizeof pad);
    if (ks[0] != 1 || ks[3] != 1 || st[0] != 1 || st[3] != 1) return bad(b, n, "pooling over batch/channels");
    AMS_FAIL_IF(ks[1] < 1 || ks[2] < 1 || st[1] < 1 || st[2] < 1 || ks[1] > 65536 ||
                    ks[2] > 65536 || st[1] > 65536 || st[2] > 65536,
                b->err, AMS_E_FORMAT, "node '%s': bad ksize/strides", n->name);
    ams_padding p;
    if (!strcmp(pad, "SAME")) p = AMS_PAD_SAME;
    else if (!strcmp(pad, "VALID")) p = AMS_PAD_VALID;
    else return bad(b, n, "padding is neither SAME nor VALID");
    AMS_FAIL_IF(ams_graph_shape(b->g, x, xs) != 4, b->err, AMS_E_SHAPE, "node '%s': input not 4-D",
                n->name);
    int idx = (int)(n - b->m->nodes);
    int global = 0;
    if (b->recording) {
        b->ref[idx].in_h = (int)xs[1];
        b->ref[idx].in_w = (int)xs[2];
    }
    if (!is_max && p == AMS_PAD_VALID) {
        /* a window that covered the whole map at the export size is a global pool */
        int rh = b->ref && !b->recording ? b->ref[idx].in_h : (int)xs[1];
        int rw = b->ref && !b->recording ? b->ref[idx].in_w : (int)xs[2];
        global = ks[1] == rh && ks[2] == rw;
    }
    if (global) return set_tensor(b, n, 0, ams_graph_global_avgpool(b->g, x));
    int y = is_max ? ams_graph_maxpool(b->g, x, (int)ks[1], (int)ks[2], (int)st[1], (int)st[2], p)
                   : ams_graph_avgpool(b->g, x, (int)ks[1], (int)ks[2], (int)st[1], (int)st[2], p);
    return set_tensor(b, n, 0, y);
}

static ams_status build_resize(builder *b, const tfjs_node *n) {
    int x = -1;
    AMS_TRY(tensor_in(b, n, 0, &x));
    int64_t sz[2], xs[AMS_MAX_DIMS];
    int ns;
    AMS_TRY(host_ints(b, n, 1, sz, 2, &ns));
    if (ns != 2) return bad(b, n, "size is not 2 values");
    AMS_FAIL_IF(ams_graph_shape(b->g, x, xs) != 4, b->err, AMS_E_SHAPE, "node '%s': input not 4-D",
                n->name);
    int idx = (int)(n - b->m->nodes);
    const tfjs_node *src = &b->m->nodes[n->in_node[1]];
    if (b->recording) {
        b->ref[idx].in_h = (int)xs[1];
        b->ref[idx].in_w = (int)xs[2];
    } else if (b->ref && b->ref[idx].in_h > 0 && !strcmp(src->op, "Const")) {
        sz[0] = xs[1] * sz[0] / b->ref[idx].in_h;
        sz[1] = xs[2] * sz[1] / b->ref[idx].in_w;
    }
    AMS_FAIL_IF(sz[0] < 1 || sz[1] < 1 || sz[0] > 1 << 20 || sz[1] > 1 << 20, b->err, AMS_E_SHAPE,
                "node '%s': bad size %lldx%lld", n->name, (long long)sz[0], (long long)sz[1]);
    ams_resize_mode mode = AMS_RESIZE_ASYMMETRIC;
    if (ams_tfjs_attr_bool(n, "align_corners", 0)) mode = AMS_RESIZE_ALIGN_CORNERS;
    else if (ams_tfjs_attr_bool(n, "half_pixel_centers", 0)) mode = AMS_RESIZE_HALF_PIXEL;
    return set_tensor(b, n, 0, ams_graph_resize_bilinear(b->g, x, (int)sz[0], (int)sz[1], mode));
}

static int norm_axis(int64_t axis, int ndim) { return (int)(axis < 0 ? axis + ndim : axis); }

static ams_status build_mean(builder *b, const tfjs_node *n) {
    int x = -1;
    AMS_TRY(tensor_in(b, n, 0, &x));
    int64_t ax[8], xs[AMS_MAX_DIMS];
    int na;
    AMS_TRY(host_ints(b, n, 1, ax, 8, &na));
    int nd = ams_graph_shape(b->g, x, xs);
    int keep = ams_tfjs_attr_bool(n, "keep_dims", 0) || ams_tfjs_attr_bool(n, "keepdims", 0);
    int mask = 0;
    for (int i = 0; i < na; i++) {
        int a = norm_axis(ax[i], nd);
        if (a < 0 || a >= nd) return bad(b, n, "axis out of range");
        mask |= 1 << a;
    }
    if (nd == 4 && mask == 6) {
        int y = ams_graph_global_avgpool(b->g, x);
        if (!keep) y = ams_graph_reshape(b->g, y, 2, (int64_t[]){xs[0], xs[3]});
        return set_tensor(b, n, 0, y);
    }
    if (nd == 4 && mask == 8) {
        /* mean over channels = 1x1 conv with weights 1/C */
        int64_t c = xs[3];
        float *wt = malloc((size_t)c * sizeof(float));
        AMS_FAIL_IF(!wt, b->err, AMS_E_NOMEM, "out of memory");
        for (int64_t i = 0; i < c; i++) wt[i] = 1.0f / (float)c;
        int w = ams_graph_const(b->g, "tfjs_mean_c", 4, (int64_t[]){1, 1, c, 1}, wt);
        free(wt);
        int y = ams_graph_conv2d(b->g, x, w, -1, &(ams_conv_opts){.padding = AMS_PAD_VALID});
        if (!keep) y = ams_graph_reshape(b->g, y, 3, xs);
        return set_tensor(b, n, 0, y);
    }
    return bad(b, n, "only means over (H,W) or over channels of a 4-D tensor");
}

static ams_status build_concat(builder *b, const tfjs_node *n) {
    int k = n->nin - 1;
    AMS_FAIL_IF(k < 1, b->err, AMS_E_FORMAT, "node '%s': ConcatV2 without inputs", n->name);
    int64_t axis;
    int na;
    AMS_TRY(host_ints(b, n, k, &axis, 1, &na));
    int *xs = balloc(b, (size_t)k * sizeof(int));
    AMS_FAIL_IF(!xs, b->err, AMS_E_NOMEM, "out of memory");
    for (int i = 0; i < k; i++) AMS_TRY(tensor_in(b, n, i, &xs[i]));
    int nd = in_val(b, n, 0)->ndim;
    return set_tensor(b, n, 0, ams_graph_concat(b->g, xs, k, norm_axis(axis, nd)));
}

/* Channel slice [c0, c0 + cn) of x (n,h,w,c) as a 1x1 conv with 0/1 weights (exact). */
static int channel_slice(builder *b, int x, int64_t c, int64_t c0, int64_t cn) {
    if (c0 == 0 && cn == c) return x;
    if (c * cn > MAX_HOST_ELEMS) return -1;
    float *wt = calloc((size_t)(c * cn), sizeof(float));
    if (!wt) return -1;
    for (int64_t i = 0; i < cn; i++) wt[(c0 + i) * cn + i] = 1.0f;
    int w = ams_graph_const(b->g, "tfjs_split", 4, (int64_t[]){1, 1, c, cn}, wt);
    free(wt);
    return ams_graph_conv2d(b->g, x, w, -1, &(ams_conv_opts){.padding = AMS_PAD_VALID});
}

static ams_status build_split(builder *b, const tfjs_node *n, int is_v) {
    int vin = is_v ? 0 : 1;
    int64_t axis;
    int na;
    AMS_TRY(host_ints(b, n, is_v ? 2 : 0, &axis, 1, &na));
    int x = -1;
    AMS_TRY(tensor_in(b, n, vin, &x));
    int64_t xs[AMS_MAX_DIMS];
    int nd = ams_graph_shape(b->g, x, xs);
    if (nd != 4 || norm_axis(axis, nd) != 3) return bad(b, n, "only splits along channels of 4-D tensors");
    int64_t c = xs[3], sizes[TFJS_MAX_OUTPUTS];
    int k = n->nout;
    if (is_v) {
        int ns;
        AMS_TRY(host_ints(b, n, 1, sizes, TFJS_MAX_OUTPUTS, &ns));
        AMS_FAIL_IF(ns != k, b->err, AMS_E_FORMAT, "node '%s': %d sizes for %d outputs", n->name, ns, k);
        int64_t known = 0, neg = -1;
        for (int i = 0; i < k; i++) {
            if (sizes[i] < 0) {
                AMS_FAIL_IF(neg >= 0, b->err, AMS_E_FORMAT, "node '%s': two -1 sizes", n->name);
                neg = i;
            } else {
                known += sizes[i];
            }
        }
        if (neg >= 0) sizes[neg] = c - known;
    } else {
        AMS_FAIL_IF(c % k, b->err, AMS_E_SHAPE, "node '%s': %lld channels do not split in %d",
                    n->name, (long long)c, k);
        for (int i = 0; i < k; i++) sizes[i] = c / k;
    }
    int64_t c0 = 0;
    for (int i = 0; i < k; i++) {
        AMS_FAIL_IF(sizes[i] < 0 || c0 + sizes[i] > c, b->err, AMS_E_SHAPE,
                    "node '%s': split sizes exceed %lld channels", n->name, (long long)c);
        AMS_TRY(set_tensor(b, n, i, channel_slice(b, x, c, c0, sizes[i])));
        c0 += sizes[i];
    }
    AMS_FAIL_IF(c0 != c, b->err, AMS_E_SHAPE, "node '%s': split sizes do not sum to %lld", n->name,
                (long long)c);
    return AMS_OK;
}

/* One spatial axis of a crop as conv taps: kernel size, dilation and the tap that is 1. */
static void crop_taps(int64_t full, int64_t off, int64_t keep, int *k, int *dil, int *tap) {
    int64_t extra = full - keep;
    if (extra == 0) *k = 1, *dil = 1, *tap = 0;
    else if (off == 0 || off == extra) *k = 2, *dil = (int)extra, *tap = off ? 1 : 0;
    else *k = (int)extra + 1, *dil = 1, *tap = (int)off;
}

/* Slice of a tensor: a spatial crop, done as a depthwise conv with one-hot taps (exact). */
static ams_status build_slice_tensor(builder *b, const tfjs_node *n) {
    int x = -1;
    AMS_TRY(tensor_in(b, n, 0, &x));
    int64_t be[8], sz[8], xs[AMS_MAX_DIMS];
    int nb, ns;
    AMS_TRY(host_ints(b, n, 1, be, 8, &nb));
    AMS_TRY(host_ints(b, n, 2, sz, 8, &ns));
    int nd = ams_graph_shape(b->g, x, xs);
    if (nd != 4 || nb != 4 || ns != 4) return bad(b, n, "only slices of 4-D tensors");
    for (int i = 0; i < 4; i++) {
        if (sz[i] < 0) sz[i] = xs[i] - be[i];
        AMS_FAIL_IF(be[i] < 0 || sz[i] < 0 || be[i] + sz[i] > xs[i], b->err, AMS_E_SHAPE,
                    "node '%s': slice out of bounds", n->name);
    }
    if (be[0] || sz[0] != xs[0] || be[3] || sz[3] != xs[3]) {
        if (be[0] || sz[0] != xs[0] || be[1] || sz[1] != xs[1] || be[2] || sz[2] != xs[2])
            return bad(b, n, "slices of the batch axis, or mixing channels and space");
        return set_tensor(b, n, 0, channel_slice(b, x, xs[3], be[3], sz[3]));
    }
    if (sz[1] == xs[1] && sz[2] == xs[2]) return set_tensor(b, n, 0, x);
    int kh, kw, dh, dw, th, tw;
    crop_taps(xs[1], be[1], sz[1], &kh, &dh, &th);
    crop_taps(xs[2], be[2], sz[2], &kw, &dw, &tw);
    int64_t c = xs[3];
    size_t cnt = (size_t)kh * (size_t)kw * (size_t)c;
    AMS_FAIL_IF(cnt > (size_t)MAX_HOST_ELEMS, b->err, AMS_E_RANGE, "node '%s': crop too large", n->name);
    float *wt = calloc(cnt, sizeof(float));
    AMS_FAIL_IF(!wt, b->err, AMS_E_NOMEM, "out of memory");
    for (int64_t ch = 0; ch < c; ch++) wt[((size_t)th * (size_t)kw + (size_t)tw) * (size_t)c + (size_t)ch] = 1.0f;
    int w = ams_graph_const(b->g, "tfjs_crop", 4, (int64_t[]){kh, kw, c, 1}, wt);
    free(wt);
    ams_conv_opts o = {.padding = AMS_PAD_VALID, .dil_h = dh, .dil_w = dw, .groups = (int)c};
    return set_tensor(b, n, 0, ams_graph_conv2d(b->g, x, w, -1, &o));
}

/* ---------------------------------------------------------------- host-only ops */

static ams_status host_strided_slice(builder *b, const tfjs_node *n, val *out) {
    val *x = in_val(b, n, 0);
    int64_t be[8], en[8], st[8];
    int nb, ne, ns;
    AMS_TRY(host_ints(b, n, 1, be, 8, &nb));
    AMS_TRY(host_ints(b, n, 2, en, 8, &ne));
    AMS_TRY(host_ints(b, n, 3, st, 8, &ns));
    if (nb != ne || nb != ns || nb > x->ndim) return bad(b, n, "begin/end/strides disagree");
    int64_t bm = ams_tfjs_attr_int(n, "begin_mask", 0), em = ams_tfjs_attr_int(n, "end_mask", 0);
    int64_t sm = ams_tfjs_attr_int(n, "shrink_axis_mask", 0);
    if (ams_tfjs_attr_int(n, "ellipsis_mask", 0) || ams_tfjs_attr_int(n, "new_axis_mask", 0))
        return bad(b, n, "ellipsis_mask / new_axis_mask");
    int64_t lo[AMS_MAX_DIMS], cnt[AMS_MAX_DIMS], step[AMS_MAX_DIMS], oshape[AMS_MAX_DIMS];
    int ond = 0;
    for (int i = 0; i < x->ndim; i++) {
        int64_t d = x->shape[i];
        if (i >= nb) {
            lo[i] = 0, cnt[i] = d, step[i] = 1;
            oshape[ond++] = d;
            continue;
        }
        int64_t s = st[i];
        AMS_FAIL_IF(s == 0, b->err, AMS_E_FORMAT, "node '%s': zero stride", n->name);
        if (sm >> i & 1) {
            int64_t k = be[i] < 0 ? be[i] + d : be[i];
            AMS_FAIL_IF(k < 0 || k >= d, b->err, AMS_E_SHAPE, "node '%s': index out of range", n->name);
            lo[i] = k, cnt[i] = 1, step[i] = 1;
            continue;
        }
        int64_t bi = be[i], ei = en[i];
        if (s > 0) {
            bi = (bm >> i & 1) ? 0 : (bi < 0 ? bi + d : bi);
            ei = (em >> i & 1) ? d : (ei < 0 ? ei + d : ei);
            bi = bi < 0 ? 0 : bi > d ? d : bi;
            ei = ei < 0 ? 0 : ei > d ? d : ei;
            cnt[i] = ei > bi ? (ei - bi + s - 1) / s : 0;
        } else {
            bi = (bm >> i & 1) ? d - 1 : (bi < 0 ? bi + d : bi);
            ei = (em >> i & 1) ? -1 : (ei < 0 ? ei + d : ei);
            bi = bi < -1 ? -1 : bi > d - 1 ? d - 1 : bi;
            ei = ei < -1 ? -1 : ei > d - 1 ? d - 1 : ei;
            cnt[i] = bi > ei ? (bi - ei - s - 1) / -s : 0;
        }
        lo[i] = bi, step[i] = s;
        oshape[ond++] = cnt[i];
    }
    AMS_TRY(host_new(b, out, x->is_int, ond, oshape));
    int64_t total = 1;
    for (int i = 0; i < x->ndim; i++) total *= cnt[i];
    for (int64_t o = 0; o < total; o++) {
        int64_t rem = o, src = 0, stride = 1;
        for (int i = x->ndim - 1; i >= 0; i--) {
            int64_t c = rem % cnt[i];
            rem /= cnt[i];
            src += (lo[i] + c * step[i]) * stride;
            stride *= x->shape[i];
        }
        out->d[o] = hget(b, x, src);
    }
    return AMS_OK;
}

static ams_status host_concat(builder *b, const tfjs_node *n, int k, int axis_in, int first,
                              val *out) {
    int64_t axis = 0;
    if (axis_in >= 0) {
        int na;
        AMS_TRY(host_ints(b, n, axis_in, &axis, 1, &na));
    }
    val *v0 = in_val(b, n, first);
    int nd = v0->ndim;
    int ax = norm_axis(axis, nd);
    AMS_FAIL_IF(ax < 0 || ax >= nd, b->err, AMS_E_SHAPE, "node '%s': bad axis", n->name);
    int64_t shp[AMS_MAX_DIMS];
    memcpy(shp, v0->shape, sizeof shp);
    shp[ax] = 0;
    int ints = 1;
    for (int i = 0; i < k; i++) {
        val *v = in_val(b, n, first + i);
        AMS_FAIL_IF(v->ndim != nd, b->err, AMS_E_SHAPE, "node '%s': ranks differ", n->name);
        for (int d = 0; d < nd; d++)
            AMS_FAIL_IF(d != ax && v->shape[d] != v0->shape[d], b->err, AMS_E_SHAPE,
                        "node '%s': shapes differ", n->name);
        shp[ax] += v->shape[ax];
        ints &= v->is_int;
    }
    AMS_TRY(host_new(b, out, ints, nd, shp));
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < ax; d++) outer *= shp[d];
    for (int d = ax + 1; d < nd; d++) inner *= shp[d];
    int64_t o = 0;
    for (int64_t i = 0; i < outer; i++)
        for (int j = 0; j < k; j++) {
            val *v = in_val(b, n, first + j);
            int64_t chunk = v->shape[ax] * inner;
            for (int64_t e = 0; e < chunk; e++) out->d[o++] = hget(b, v, i * chunk + e);
        }
    return AMS_OK;
}

/* Pack: stack along a new axis = concat of inputs reshaped with a 1 at axis. */
static ams_status host_pack(builder *b, const tfjs_node *n, val *out) {
    int64_t axis = ams_tfjs_attr_int(n, "axis", 0);
    val *v0 = in_val(b, n, 0);
    int nd = v0->ndim + 1;
    AMS_FAIL_IF(nd > AMS_MAX_DIMS, b->err, AMS_E_RANGE, "node '%s': rank too large", n->name);
    int ax = norm_axis(axis, nd);
    AMS_FAIL_IF(ax < 0 || ax >= nd, b->err, AMS_E_SHAPE, "node '%s': bad axis", n->name);
    int64_t shp[AMS_MAX_DIMS];
    for (int d = 0, s = 0; d < nd; d++) shp[d] = d == ax ? n->nin : v0->shape[s++];
    int ints = 1;
    for (int i = 0; i < n->nin; i++) {
        val *v = in_val(b, n, i);
        AMS_FAIL_IF(v->kind != V_HOST || v->ndim != v0->ndim || hnumel(v) != hnumel(v0), b->err,
                    AMS_E_UNSUPPORTED, "unsupported op 'Pack' at node '%s': inputs differ or are tensors",
                    n->name);
        ints &= v->is_int;
    }
    AMS_TRY(host_new(b, out, ints, nd, shp));
    int64_t outer = 1, inner = hnumel(v0);
    for (int d = 0; d < ax; d++) outer *= shp[d];
    inner /= outer ? outer : 1;
    int64_t o = 0;
    for (int64_t i = 0; i < outer; i++)
        for (int j = 0; j < n->nin; j++)
            for (int64_t e = 0; e < inner; e++) out->d[o++] = hget(b, in_val(b, n, j), i * inner + e);
    return AMS_OK;
}

static ams_status host_reshape(builder *b, const tfjs_node *n, val *x, const int64_t *shp, int nd,
                               val *out) {
    int64_t want[AMS_MAX_DIMS], known = 1;
    int neg = -1;
    AMS_FAIL_IF(nd > AMS_MAX_DIMS, b->err, AMS_E_RANGE, "node '%s': rank too large", n->name);
    for (int i = 0; i < nd; i++) {
        want[i] = shp[i];
        if (shp[i] == -1 && neg < 0) neg = i;
        else if (shp[i] < 0) return bad(b, n, "bad shape");
        else if (__builtin_mul_overflow(known, shp[i], &known)) return bad(b, n, "shape overflows");
    }
    int64_t total = x->kind == V_HOST ? hnumel(x) : numel_of(x->ndim, x->shape);
    if (neg >= 0) want[neg] = known ? total / known : 0;
    AMS_FAIL_IF(numel_of(nd, want) != total, b->err, AMS_E_SHAPE,
                "node '%s': reshape of %lld elements to another count", n->name, (long long)total);
    if (x->kind == V_TENSOR) {
        int xn;
        AMS_TRY(tensor_in(b, n, 0, &xn));
        return set_tensor(b, n, 0, ams_graph_reshape(b->g, xn, nd, want));
    }
    *out = *x;
    out->gnode = -1;
    out->ndim = nd;
    memcpy(out->shape, want, sizeof want);
    return AMS_OK;
}

static ams_status host_unary(builder *b, const tfjs_node *n, val *out) {
    val *x = in_val(b, n, 0);
    const char *op = n->op;
    int to_int = 0, to_float = 0;
    if (!strcmp(op, "Cast")) {
        const cJSON *a = ams_tfjs_attr(n, "DstT");
        const cJSON *t = a ? cJSON_GetObjectItemCaseSensitive(a, "type") : NULL;
        const char *dt = cJSON_IsString(t) ? t->valuestring : "DT_FLOAT";
        to_int = !strcmp(dt, "DT_INT32") || !strcmp(dt, "DT_INT64") || !strcmp(dt, "DT_BOOL");
        to_float = !to_int;
    }
    AMS_TRY(host_new(b, out, to_int ? 1 : to_float ? 0 : x->is_int, x->ndim, x->shape));
    const cJSON *a = ams_tfjs_attr(n, "DstT");
    const cJSON *t = a ? cJSON_GetObjectItemCaseSensitive(a, "type") : NULL;
    int to_bool = cJSON_IsString(t) && !strcmp(t->valuestring, "DT_BOOL");
    for (int64_t i = 0; i < hnumel(x); i++) {
        double v = hget(b, x, i), r = v;
        if (!strcmp(op, "Cast")) r = to_bool ? (v != 0) : to_int ? trunc(v) : (float)v;
        else if (!strcmp(op, "Relu")) r = v > 0 ? v : 0;
        else if (!strcmp(op, "Relu6")) r = v < 0 ? 0 : v > 6 ? 6 : v;
        else if (!strcmp(op, "Sigmoid")) r = (float)(1.0 / (1.0 + exp(-v)));
        else if (!strcmp(op, "Tanh")) r = (float)tanh(v);
        else if (!strcmp(op, "Neg")) r = -v;
        else if (!strcmp(op, "Square")) r = v * v;
        else if (!strcmp(op, "Sqrt")) r = (float)sqrt(v);
        else if (!strcmp(op, "Floor")) r = floor(v);
        else if (!strcmp(op, "LogicalNot")) r = v == 0;
        out->d[i] = r;
    }
    return AMS_OK;
}

static ams_status host_broadcast_to(builder *b, const tfjs_node *n, val *out) {
    val *x = in_val(b, n, 0);
    int64_t shp[8];
    int ns;
    AMS_TRY(host_ints(b, n, 1, shp, 8, &ns));
    if (x->kind != V_HOST) {
        if (x->ndim == ns && !memcmp(x->shape, shp, (size_t)ns * sizeof(int64_t))) {
            b->vals[n - b->m->nodes][0] = *x;
            return AMS_OK;
        }
        return bad(b, n, "broadcasting a tensor");
    }
    val tgt = {0};
    tgt.ndim = ns;
    memcpy(tgt.shape, shp, (size_t)ns * sizeof(int64_t));
    int nd;
    int64_t o[AMS_MAX_DIMS];
    AMS_FAIL_IF(!bcast_shape(x, &tgt, &nd, o) || nd != ns, b->err, AMS_E_SHAPE,
                "node '%s': cannot broadcast", n->name);
    if (hnumel(x) == 1) { /* a scalar: one stored element */
        AMS_TRY(host_new(b, out, x->is_int, 0, NULL));
        out->d[0] = hget(b, x, 0);
        out->splat = 1;
        out->ndim = nd;
        memcpy(out->shape, o, sizeof o);
        return AMS_OK;
    }
    AMS_TRY(host_new(b, out, x->is_int, nd, o));
    for (int64_t i = 0; i < hnumel(out); i++) out->d[i] = hget(b, x, bcast_index(x, nd, o, i));
    return AMS_OK;
}

static ams_status host_slice(builder *b, const tfjs_node *n, val *out) {
    val *x = in_val(b, n, 0);
    int64_t be[8], sz[8];
    int nb, ns;
    AMS_TRY(host_ints(b, n, 1, be, 8, &nb));
    AMS_TRY(host_ints(b, n, 2, sz, 8, &ns));
    AMS_FAIL_IF(nb != x->ndim || ns != x->ndim, b->err, AMS_E_SHAPE, "node '%s': bad slice", n->name);
    int64_t shp[AMS_MAX_DIMS];
    for (int i = 0; i < x->ndim; i++) {
        if (sz[i] < 0) sz[i] = x->shape[i] - be[i];
        AMS_FAIL_IF(be[i] < 0 || sz[i] < 0 || be[i] + sz[i] > x->shape[i], b->err, AMS_E_SHAPE,
                    "node '%s': slice out of bounds", n->name);
        shp[i] = sz[i];
    }
    AMS_TRY(host_new(b, out, x->is_int, x->ndim, shp));
    for (int64_t o = 0; o < hnumel(out); o++) {
        int64_t rem = o, src = 0, stride = 1;
        for (int i = x->ndim - 1; i >= 0; i--) {
            int64_t c = rem % shp[i];
            rem /= shp[i];
            src += (be[i] + c) * stride;
            stride *= x->shape[i];
        }
        out->d[o] = hget(b, x, src);
    }
    return AMS_OK;
}

/* ---------------------------------------------------------------- dispatch */

static int op_is(const tfjs_node *n, const char *a) { return !strcmp(n->op, a); }

static binop binop_of(const char *op, int *ok) {
    static const struct { const char *name; binop op; } tab[] = {
        {"Add", BIN_ADD}, {"AddV2", BIN_ADD}, {"BiasAdd", BIN_ADD}, {"Sub", BIN_SUB},
        {"Mul", BIN_MUL}, {"RealDiv", BIN_DIV}, {"Div", BIN_DIV}, {"FloorDiv", BIN_FLOORDIV},
        {"FloorMod", BIN_FLOORMOD}, {"Mod", BIN_FLOORMOD}, {"Maximum", BIN_MAX},
        {"Minimum", BIN_MIN}, {"Equal", BIN_EQ}, {"NotEqual", BIN_NE}, {"Less", BIN_LT},
        {"LessEqual", BIN_LE}, {"Greater", BIN_GT}, {"GreaterEqual", BIN_GE}, {"Pow", BIN_POW},
        {"SquaredDifference", BIN_SQDIFF},
    };
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
        if (!strcmp(op, tab[i].name)) {
            *ok = 1;
            return tab[i].op;
        }
    *ok = 0;
    return BIN_ADD;
}

static ams_status eval_const(builder *b, int idx) {
    const tfjs_node *n = &b->m->nodes[idx];
    val *out = b->vals[idx];
    AMS_FAIL_IF(n->cdtype == TFJS_DT_NONE, b->err, AMS_E_FORMAT,
                "const '%s' has no entry in the weights manifest", n->name);
    memset(out, 0, sizeof *out);
    out->kind = V_HOST;
    out->ndim = n->cndim;
    memcpy(out->shape, n->cshape, sizeof n->cshape);
    out->param = n->cparam;
    out->gnode = -1;
    out->node = -1;
    out->is_int = n->cdtype != TFJS_DT_FLOAT;
    if (n->cint) {
        AMS_TRY(host_new(b, out, 1, n->cndim, n->cshape));
        for (int64_t i = 0; i < hnumel(out); i++) out->d[i] = n->cint[i];
    }
    return AMS_OK;
}

/* Finds Conv2D / DepthwiseConv2dNative nodes whose only consumer adds a float vector
 * constant (TF.js's unfused "conv + bias" form), so the bias rides in the conv. */
static ams_status plan_bias_fusion(builder *b, const char *need, const int *want, int nout) {
    const ams_tfjs_model *m = b->m;
    int *uses = calloc((size_t)m->count, sizeof(int)), *user = malloc((size_t)m->count * sizeof(int));
    b->bias_of = malloc((size_t)m->count * sizeof(int));
    b->passthru = calloc((size_t)m->count, 1);
    if (!uses || !user || !b->bias_of || !b->passthru) {
        free(uses), free(user);
        AMS_FAIL(b->err, AMS_E_NOMEM, "out of memory");
    }
    for (int i = 0; i < m->count; i++) {
        b->bias_of[i] = -1;
        const tfjs_node *n = &m->nodes[i];
        for (int k = 0; k < n->nin + n->nctl; k++) {
            int s = k < n->nin ? n->in_node[k] : n->ctl[k - n->nin];
            uses[s]++;
            user[s] = i;
        }
    }
    for (int i = 0; i < nout; i++) uses[want[i]] += 2; /* a wanted output keeps its value */
    for (int c = 0; c < m->count; c++) {
        const tfjs_node *n = &m->nodes[c];
        if (!need[c] || uses[c] != 1 ||
            (strcmp(n->op, "Conv2D") && strcmp(n->op, "DepthwiseConv2dNative")))
            continue;
        const tfjs_node *a = &m->nodes[user[c]];
        if ((strcmp(a->op, "Add") && strcmp(a->op, "AddV2") && strcmp(a->op, "BiasAdd")) ||
            a->nin != 2 || a->nctl || a->in_node[0] == a->in_node[1] || a->in_port[0] || a->in_port[1])
            continue;
        int k = a->in_node[0] == c ? 1 : 0;
        const tfjs_node *cst = &m->nodes[a->in_node[k]];
        const tfjs_node *f = n->nin == 2 ? &m->nodes[n->in_node[1]] : NULL;
        if (strcmp(cst->op, "Const") || cst->cdtype != TFJS_DT_FLOAT || cst->cndim != 1 || cst->nctl ||
            !f || strcmp(f->op, "Const") || f->cndim != 4 ||
            cst->cshape[0] != (strcmp(n->op, "Conv2D") ? f->cshape[2] * f->cshape[3] : f->cshape[3]))
            continue;
        b->bias_of[c] = a->in_node[k];
        /* the Add passes its conv input through; make that input 0 */
        b->passthru[user[c]] = (char)(k == 1 ? 1 : 2); /* 1 + the conv's input index */
    }
    free(uses), free(user);
    return AMS_OK;
}

/* Data inputs an op reads (at least); checked before any op looks at them. */
static int min_inputs(const char *op) {
    static const struct { const char *op; int n; } tab[] = {
        {"Conv2D", 2}, {"DepthwiseConv2dNative", 2}, {"_FusedConv2D", 2},
        {"FusedDepthwiseConv2dNative", 2}, {"Conv2DBackpropInput", 3}, {"Pad", 2}, {"PadV2", 3},
        {"SpaceToBatchND", 3}, {"BatchToSpaceND", 3}, {"Switch", 2}, {"StridedSlice", 4},
        {"ConcatV2", 2}, {"Concat", 2}, {"Slice", 3}, {"BroadcastTo", 2}, {"Reshape", 2},
        {"ExpandDims", 2}, {"ResizeBilinear", 2}, {"Mean", 2}, {"Split", 2}, {"SplitV", 3},
    };
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
        if (!strcmp(op, tab[i].op)) return tab[i].n;
    return 1;
}

static ams_status eval_node(builder *b, int idx) {
    const ams_tfjs_model *m = b->m;
    const tfjs_node *n = &m->nodes[idx];
    val *out = b->vals[idx];
    /* dead inputs make a dead node (Merge needs just one live input) */
    int dead = 0, live = 0;
    for (int k = 0; k < n->nin; k++) {
        vkind kd = in_val(b, n, k)->kind;
        AMS_FAIL_IF(kd == V_NONE, b->err, AMS_E_INTERNAL, "node '%s': input %d not evaluated",
                    n->name, k);
        if (kd == V_DEAD) dead = 1;
        else live = 1;
    }
    /* a dead control input kills a node too, except a Merge (TF's executor rule) */
    for (int k = 0; k < n->nctl; k++)
        if (b->vals[n->ctl[k]][0].kind == V_DEAD) dead = 1;
    if (op_is(n, "Merge")) dead = !live;
    if (dead) {
        for (int p = 0; p < n->nout; p++) out[p].kind = V_DEAD;
        return AMS_OK;
    }
    int all_host = 1;
    for (int k = 0; k < n->nin; k++)
        if (in_val(b, n, k)->kind != V_HOST) all_host = 0;
    int isbin;
    binop bop = binop_of(n->op, &isbin);
    if (isbin && n->nin != 2)
        return ams_err_set(b->err, AMS_E_FORMAT, "node '%s': %s needs 2 inputs", n->name, n->op);

    if (op_is(n, "Const")) return eval_const(b, idx);
    if (b->passthru[idx]) {
        out[0] = *in_val(b, n, b->passthru[idx] - 1); /* its bias is inside the conv */
        return AMS_OK;
    }
    if (op_is(n, "Placeholder")) {
        if (idx == m->image) {
            int64_t shp[4] = {b->o->n, b->o->h, b->o->w, m->image_c};
            b->input_node = ams_graph_input(b->g, n->name, 4, shp);
            return set_tensor(b, n, 0, b->input_node);
        }
        for (int i = 0; i < b->o->nfeeds; i++)
            if (b->o->feeds[i].name && !strcmp(b->o->feeds[i].name, n->name)) {
                AMS_TRY(host_new(b, out, 0, 0, NULL));
                out->d[0] = b->o->feeds[i].value;
                return AMS_OK;
            }
        return ams_err_set(b->err, AMS_E_NOTFOUND, "input '%s' is not fed (HINT: --feed %s=VALUE)",
                           n->name, n->name);
    }
    if (op_is(n, "NoOp")) {
        memset(out, 0, sizeof *out);
        out->kind = V_HOST; /* a live marker for control edges */
        out->param = out->gnode = out->node = -1;
        return AMS_OK;
    }
    AMS_FAIL_IF(n->nin < min_inputs(n->op), b->err, AMS_E_FORMAT,
                "node '%s' (%s) has %d inputs, needs %d", n->name, n->op, n->nin, min_inputs(n->op));
    if (op_is(n, "Identity") || op_is(n, "StopGradient") || op_is(n, "Snapshot") ||
        op_is(n, "IdentityN")) {
        for (int p = 0; p < n->nout && p < n->nin; p++) out[p] = *in_val(b, n, p);
        return AMS_OK;
    }
    if (op_is(n, "Switch")) {
        val *pred = in_val(b, n, 1);
        if (pred->kind != V_HOST || hnumel(pred) != 1)
            return bad(b, n, "the predicate is not a build-time constant (feed the inputs it depends on)");
        int taken = hget(b, pred, 0) != 0;
        out[taken] = *in_val(b, n, 0);
        out[1 - taken].kind = V_DEAD;
        return AMS_OK;
    }
    if (op_is(n, "Merge")) {
        for (int k = 0; k < n->nin; k++)
            if (in_val(b, n, k)->kind != V_DEAD) {
                out[0] = *in_val(b, n, k);
                AMS_TRY(host_new(b, &out[1], 1, 0, NULL));
                out[1].d[0] = k;
                return AMS_OK;
            }
    }
    if (op_is(n, "Shape")) {
        val *x = in_val(b, n, 0);
        AMS_TRY(host_new(b, out, 1, 1, (int64_t[]){x->ndim}));
        for (int i = 0; i < x->ndim; i++) out->d[i] = (double)x->shape[i];
        return AMS_OK;
    }
    if (op_is(n, "Pad") || op_is(n, "PadV2")) return build_pad(b, n);
    if (op_is(n, "SpaceToBatchND")) return build_space_to_batch(b, n);
    if (op_is(n, "BatchToSpaceND")) return build_batch_to_space(b, n);
    if (op_is(n, "Conv2D")) return build_conv(b, n, 0, 0);
    if (op_is(n, "DepthwiseConv2dNative")) return build_conv(b, n, 1, 0);
    if (op_is(n, "_FusedConv2D")) return build_conv(b, n, 0, 1);
    if (op_is(n, "FusedDepthwiseConv2dNative")) return build_conv(b, n, 1, 1);
    if (op_is(n, "Conv2DBackpropInput")) return build_conv_transpose(b, n);

    if (all_host) {
        if (isbin) return host_binary(b, n, bop, out);
        if (op_is(n, "StridedSlice")) return host_strided_slice(b, n, out);
        if (op_is(n, "Pack")) return host_pack(b, n, out);
        if (op_is(n, "ConcatV2")) return host_concat(b, n, n->nin - 1, n->nin - 1, 0, out);
        if (op_is(n, "Concat")) return host_concat(b, n, n->nin - 1, 0, 1, out);
        if (op_is(n, "Slice")) return host_slice(b, n, out);
        if (op_is(n, "BroadcastTo")) return host_broadcast_to(b, n, out);
        if (op_is(n, "Cast") || op_is(n, "Relu") || op_is(n, "Relu6") || op_is(n, "Sigmoid") ||
            op_is(n, "Tanh") || op_is(n, "Neg") || op_is(n, "Square") || op_is(n, "Sqrt") ||
            op_is(n, "Floor") || op_is(n, "LogicalNot"))
            return host_unary(b, n, out);
    }
    if (op_is(n, "Squeeze") || op_is(n, "Reshape") || op_is(n, "ExpandDims")) {
        val *x = in_val(b, n, 0);
        int64_t shp[AMS_MAX_DIMS];
        int nd = 0;
        if (op_is(n, "Reshape")) {
            AMS_TRY(host_ints(b, n, 1, shp, AMS_MAX_DIMS, &nd));
        } else if (op_is(n, "ExpandDims")) {
            int64_t ax;
            int na;
            AMS_TRY(host_ints(b, n, 1, &ax, 1, &na));
            int a = norm_axis(ax, x->ndim + 1);
            AMS_FAIL_IF(a < 0 || a > x->ndim || x->ndim >= AMS_MAX_DIMS, b->err, AMS_E_SHAPE,
                        "node '%s': bad axis", n->name);
            for (int i = 0, s = 0; i <= x->ndim; i++) shp[nd++] = i == a ? 1 : x->shape[s++];
        } else {
            int64_t dims[AMS_MAX_DIMS];
            int k = ams_tfjs_attr_ints(n, "squeeze_dims", dims, AMS_MAX_DIMS);
            if (k < 0) k = ams_tfjs_attr_ints(n, "axis", dims, AMS_MAX_DIMS);
            for (int i = 0; i < x->ndim; i++) {
                int drop = 0;
                if (k <= 0) drop = x->shape[i] == 1;
                for (int j = 0; j < k; j++) drop |= norm_axis(dims[j], x->ndim) == i;
                if (drop && x->shape[i] != 1) return bad(b, n, "squeezing a dimension that is not 1");
                if (!drop) shp[nd++] = x->shape[i];
            }
        }
        return host_reshape(b, n, x, shp, nd, out);
    }
    /* ---- tensor ops ---- */
    if (isbin) return tensor_binary(b, n, bop);
    ams_graph *g = b->g;
    int x = -1;
    if (op_is(n, "Relu") || op_is(n, "Relu6") || op_is(n, "Sigmoid") || op_is(n, "Tanh") ||
        op_is(n, "Neg") || op_is(n, "Square")) {
        AMS_TRY(tensor_in(b, n, 0, &x));
        int y = op_is(n, "Relu")    ? ams_graph_relu(g, x)
                : op_is(n, "Relu6") ? ams_graph_relu6(g, x)
                : op_is(n, "Sigmoid") ? ams_graph_sigmoid(g, x)
                : op_is(n, "Tanh")  ? ams_graph_tanh(g, x)
                : op_is(n, "Neg")   ? ams_graph_affine(g, x, -1.0f, 0.0f)
                                    : ams_graph_mul(g, x, x);
        return set_tensor(b, n, 0, y);
    }
    if (op_is(n, "AddN")) {
        int acc;
        AMS_TRY(tensor_in(b, n, 0, &acc));
        for (int k = 1; k < n->nin; k++) {
            int y = -1;
            AMS_TRY(tensor_in(b, n, k, &y));
            acc = ams_graph_add(g, acc, y);
        }
        return set_tensor(b, n, 0, acc);
    }
    if (op_is(n, "AvgPool")) return build_pool(b, n, 0);
    if (op_is(n, "MaxPool")) return build_pool(b, n, 1);
    if (op_is(n, "ResizeBilinear")) return build_resize(b, n);
    if (op_is(n, "Mean")) return build_mean(b, n);
    if (op_is(n, "ConcatV2")) return build_concat(b, n);
    if (op_is(n, "Split")) return build_split(b, n, 0);
    if (op_is(n, "SplitV")) return build_split(b, n, 1);
    if (op_is(n, "Slice")) return build_slice_tensor(b, n);
    if (op_is(n, "BroadcastTo")) return host_broadcast_to(b, n, out);
    return ams_err_set(b->err, AMS_E_UNSUPPORTED, "unsupported op '%s' at node '%s'", n->op, n->name);
}

/* ---------------------------------------------------------------- entry */

static int find_output(const ams_tfjs_model *m, const char *name, int *port) {
    for (int i = 0; i < m->nout; i++)
        if (!strcmp(m->out_key[i], name)) name = m->out_node[i];
    *port = 0;
    const char *colon = strrchr(name, ':');
    if (colon) {
        char *end;
        long p = strtol(colon + 1, &end, 10);
        if (!*end && p >= 0 && p < TFJS_MAX_OUTPUTS) {
            int k = ams_tfjs_find(m, name, (size_t)(colon - name));
            if (k >= 0 && p < m->nodes[k].nout) {
                *port = (int)p;
                return k;
            }
        }
    }
    return ams_tfjs_find(m, name, strlen(name));
}

static ams_status run_build(builder *b, const char *const *outputs, int nout, int *out_nodes) {
    const ams_tfjs_model *m = b->m;
    ams_status st = AMS_OK;
    int *want = calloc((size_t)nout + 1, sizeof(int)), *port = calloc((size_t)nout + 1, sizeof(int));
    char *need = calloc((size_t)m->count, 1);
    int *stack = malloc((size_t)m->count * sizeof(int));
    b->vals = calloc((size_t)m->count, sizeof(val *));
    b->param_node = malloc(((size_t)m->params->count + 1) * sizeof(int));
    if (!want || !port || !need || !stack || !b->vals || !b->param_node) {
        st = ams_err_set(b->err, AMS_E_NOMEM, "out of memory");
        goto done;
    }
    for (int i = 0; i < m->params->count; i++) b->param_node[i] = -1;
    for (int i = 0; i < m->count; i++) {
        b->vals[i] = balloc(b, (size_t)m->nodes[i].nout * sizeof(val));
        if (!b->vals[i]) {
            st = ams_err_set(b->err, AMS_E_NOMEM, "out of memory");
            goto done;
        }
    }
    /* what the wanted outputs need, through data and control edges */
    int sp = 0;
    for (int i = 0; i < nout; i++) {
        const char *name = outputs ? outputs[i] : (i < m->nout ? m->out_node[i] : NULL);
        want[i] = name ? find_output(m, name, &port[i]) : -1;
        if (want[i] < 0) {
            st = ams_err_set(b->err, AMS_E_NOTFOUND, "no output or node named '%s'",
                             name ? name : "(none: the model has fewer outputs)");
            goto done;
        }
        if (!need[want[i]]) need[want[i]] = 1, stack[sp++] = want[i];
    }
    while (sp > 0) {
        const tfjs_node *n = &m->nodes[stack[--sp]];
        for (int k = 0; k < n->nin + n->nctl; k++) {
            int s = k < n->nin ? n->in_node[k] : n->ctl[k - n->nin];
            if (!need[s]) need[s] = 1, stack[sp++] = s;
        }
    }
    st = plan_bias_fusion(b, need, want, nout);
    if (st) goto done;
    if (m->image >= 0 && !need[m->image]) {
        st = ams_err_set(b->err, AMS_E_INVAL, "the wanted outputs do not depend on the image input");
        goto done;
    }
    for (int i = 0; i < m->count; i++) {
        int idx = m->order[i];
        if (!need[idx] || b->vals[idx][0].kind != V_NONE) continue;
        st = eval_node(b, idx);
        if (st) goto done;
    }
    for (int i = 0; i < nout; i++) {
        val *v = &b->vals[want[i]][port[i]];
        if (v->kind != V_TENSOR || v->pc || v->blk[0] || v->pad[0] || v->pad[1] || v->pad[2] || v->pad[3]) {
            st = ams_err_set(b->err, AMS_E_UNSUPPORTED, "output '%s' is %s", m->nodes[want[i]].name,
                             v->kind == V_DEAD ? "on an untaken branch" : "not a tensor of the image");
            goto done;
        }
        out_nodes[i] = v->node;
    }
    st = ams_graph_error(b->g, b->err);
done:
    free(want), free(port), free(need), free(stack);
    return st;
}

static void builder_reset(builder *b) {
    for (int i = 0; i < b->npool; i++) free(b->pool[i]);
    free(b->pool);
    free(b->vals);
    free(b->param_node);
    free(b->bias_of);
    free(b->passthru);
    b->bias_of = NULL;
    b->passthru = NULL;
    b->pool = NULL;
    b->npool = b->cappool = 0;
    b->vals = NULL;
    b->param_node = NULL;
}

ams_status ams_tfjs_build(const ams_tfjs_model *m, ams_graph *g, const ams_tfjs_build_opts *o,
                          const char *const *outputs, int nout, int *out_nodes, int *input_node,
                          ams_err *err) {
    AMS_FAIL_IF(!m || !g || !o || nout < 1 || !out_nodes, err, AMS_E_INVAL,
                "ams_tfjs_build: bad arguments");
    AMS_FAIL_IF(m->image < 0, err, AMS_E_UNSUPPORTED, "the model has no 4-D image input");
    AMS_FAIL_IF(o->n < 1 || o->h < 1 || o->w < 1 || o->n > 65536 || o->h > 65536 || o->w > 65536,
                err, AMS_E_INVAL, "bad input size %dx%dx%d", o->n, o->h, o->w);
    builder b = {.m = m, .o = o, .err = err, .input_node = -1};
    ams_status st = AMS_OK;
    int *scratch_out = malloc((size_t)nout * sizeof(int));
    AMS_FAIL_IF(!scratch_out, err, AMS_E_NOMEM, "out of memory");
    if (m->ref_h > 0 && m->ref_w > 0 && (o->h != m->ref_h || o->w != m->ref_w)) {
        /* A reference build at the export size tells which constants are resolution-specific. */
        b.ref = calloc((size_t)m->count, sizeof *b.ref);
        ams_graph *rg = ams_graph_new(m->params);
        ams_tfjs_build_opts ro = *o;
        ro.n = 1;
        ro.h = m->ref_h;
        ro.w = m->ref_w;
        if (!b.ref || !rg) {
            ams_graph_free(rg);
            st = ams_err_set(err, AMS_E_NOMEM, "out of memory");
            goto done;
        }
        b.g = rg;
        b.o = &ro;
        b.recording = 1;
        st = run_build(&b, outputs, nout, scratch_out);
        ams_graph_free(rg);
        builder_reset(&b);
        if (st) {
            ams_err_prefix(err, "reference build at %dx%d", m->ref_h, m->ref_w);
            goto done;
        }
        b.recording = 0;
        b.o = o;
    }
    b.g = g;
    b.input_node = -1;
    st = run_build(&b, outputs, nout, out_nodes);
    if (!st && input_node) *input_node = b.input_node;
done:
    builder_reset(&b);
    free(b.ref);
    free(scratch_out);
    return st;
}
