/* graph.h - a graph of ops over tensors, with forward and reverse-mode backward.
 *
 * A graph is built for one concrete input shape (rebuild it for another shape:
 * building is cheap, the weights live in ams_params and are shared). Builders
 * return node ids; a failing builder returns -1, records the error in the graph,
 * and every later builder given a -1 returns -1 too, so a model builder checks
 * once at the end (ams_graph_error).
 *
 *     ams_graph *g = ams_graph_new(params);
 *     int x = ams_graph_input(g, "image", 4, (int64_t[]){1, 64, 64, 3});
 *     int w = ams_graph_param(g, ams_params_find(params, "conv/weights"));
 *     int y = ams_graph_relu6(g, ams_graph_conv2d(g, x, w, -1, &(ams_conv_opts){
 *                 .stride = 2, .padding = AMS_PAD_SAME}));
 *     ams_graph_plan(g, AMS_PLAN_INFER, &err);        // memory planned once
 *     ams_graph_set_input(g, x, pixels, &err);
 *     ams_graph_forward(g, ams_backend_ref(), &err);
 *     const float *out = ams_graph_value(g, y);        // valid until the next forward
 *
 * Training: plan with AMS_PLAN_TRAIN, forward, then ams_graph_backward(g, be, loss)
 * which ACCUMULATES d loss / d p into params->grads for every trainable parameter
 * reached (zero them first with ams_params_zero_grads).
 * Memory: all activations and activation gradients live in one arena, sized and
 * laid out by ams_graph_plan (tensors whose lifetimes do not overlap share bytes);
 * forward/backward allocate nothing.
 * One graph belongs to one thread at a time.
 */
#ifndef AMS_GRAPH_H
#define AMS_GRAPH_H

#include <stdio.h>

#include "ams/kernels.h"
#include "ams/params.h"

typedef enum {
    AMS_OP_INPUT = 0,
    AMS_OP_LABELS = 1,
    AMS_OP_PARAM = 2,
    AMS_OP_CONST = 3,
    AMS_OP_CONV2D = 4,
    AMS_OP_CONV2D_TRANSPOSE = 5,
    AMS_OP_BATCHNORM = 6,
    AMS_OP_RELU = 7,
    AMS_OP_RELU6 = 8,
    AMS_OP_SIGMOID = 9,
    AMS_OP_TANH = 10,
    AMS_OP_AFFINE = 11,
    AMS_OP_ADD = 12,
    AMS_OP_MUL = 13,
    AMS_OP_CONCAT = 14,
    AMS_OP_GLOBAL_AVGPOOL = 15,
    AMS_OP_AVGPOOL = 16,
    AMS_OP_MAXPOOL = 17,
    AMS_OP_RESIZE_BILINEAR = 18,
    AMS_OP_DROPOUT = 19,
    AMS_OP_SOFTMAX_CE = 20,
    AMS_OP_BCE_LOGITS = 21,
    AMS_OP_RESHAPE = 22,
    AMS_OP_DIV = 23,
    AMS_OP__COUNT
} ams_op;

typedef enum {
    AMS_PAD_EXPLICIT = 0, /* use pad_t/pad_b/pad_l/pad_r */
    AMS_PAD_SAME = 1,     /* TF SAME: out = ceil(in/stride), extra pad after */
    AMS_PAD_VALID = 2,    /* no padding */
} ams_padding;

typedef struct ams_conv_opts {
    int stride;                   /* both axes when stride_h/stride_w are 0; 0 means 1 */
    int stride_h, stride_w;
    int dilation;                 /* both axes when dil_h/dil_w are 0; 0 means 1 */
    int dil_h, dil_w;
    ams_padding padding;
    int pad_t, pad_b, pad_l, pad_r; /* AMS_PAD_EXPLICIT only */
    int groups;                   /* 0 means 1 */
} ams_conv_opts;

typedef struct ams_graph ams_graph;

typedef enum {
    AMS_PLAN_INFER = 0, /* forward only; activations reuse memory as soon as they die */
    AMS_PLAN_TRAIN = 1, /* forward + backward; dropout active */
} ams_plan_mode;

/* A graph over params (not owned; must outlive the graph). NULL if out of memory. */
ams_graph *ams_graph_new(ams_params *params);
void ams_graph_free(ams_graph *g);

/* The first builder error (AMS_OK if none) and its message in err. */
ams_status ams_graph_error(const ams_graph *g, ams_err *err);

/* ---- builders: each returns a node id, or -1 ---- */
int ams_graph_input(ams_graph *g, const char *name, int ndim, const int64_t *shape);
/* uint8 labels (n,h,w) */
int ams_graph_labels(ams_graph *g, const char *name, int n, int h, int w);
/* a view of parameter `index`; gradients flow into params->grads if trainable */
int ams_graph_param(ams_graph *g, int index);
/* a constant the graph copies and owns */
int ams_graph_const(ams_graph *g, const char *name, int ndim, const int64_t *shape,
                    const float *data);
/* x (n,h,w,c), w (kh,kw,c/groups,oc), b (oc) or -1 */
int ams_graph_conv2d(ams_graph *g, int x, int w, int b, const ams_conv_opts *o);
/* x (n,ih,iw,ic), w (kh,kw,oc,ic) as TF conv2d_transpose; output (n,out_h,out_w,oc);
 * o describes the forward conv (out_h,out_w) -> (ih,iw). b (oc) or -1 */
int ams_graph_conv2d_transpose(ams_graph *g, int x, int w, int b, int out_h, int out_w,
                               const ams_conv_opts *o);
/* frozen moving statistics; gamma/beta may be -1 (1 and 0) */
int ams_graph_batchnorm(ams_graph *g, int x, int gamma, int beta, int mean, int var,
                        float eps);
int ams_graph_relu(ams_graph *g, int x);
int ams_graph_relu6(ams_graph *g, int x);
int ams_graph_sigmoid(ams_graph *g, int x);
int ams_graph_tanh(ams_graph *g, int x);
/* x * a + b with scalar a, b */
int ams_graph_affine(ams_graph *g, int x, float a, float b);
int ams_graph_add(ams_graph *g, int a, int b); /* numpy broadcasting */
int ams_graph_mul(ams_graph *g, int a, int b);
int ams_graph_div(ams_graph *g, int a, int b); /* a / b, numpy broadcasting */
#define AMS_CONCAT_MAX 64
int ams_graph_concat(ams_graph *g, const int *xs, int k, int axis); /* k <= AMS_CONCAT_MAX */
int ams_graph_global_avgpool(ams_graph *g, int x); /* (n,h,w,c) -> (n,1,1,c) */
int ams_graph_avgpool(ams_graph *g, int x, int kh, int kw, int sh, int sw, ams_padding pad);
int ams_graph_maxpool(ams_graph *g, int x, int kh, int kw, int sh, int sw, ams_padding pad);
int ams_graph_resize_bilinear(ams_graph *g, int x, int oh, int ow, ams_resize_mode mode);
/* active only in AMS_PLAN_TRAIN; seeded by ams_graph_set_seed */
int ams_graph_dropout(ams_graph *g, int x, float keep_prob);
/* same elements, new shape */
int ams_graph_reshape(ams_graph *g, int x, int ndim, const int64_t *shape);
/* scalar mean loss; logits (n,h,w,c), labels node (n,h,w); classes NULL = all */
int ams_graph_softmax_ce(ams_graph *g, int logits, int labels, const int *classes, int nsub);
/* scalar mean loss; logits (n,h,w,1) pre-sigmoid, labels 0/1/255 */
int ams_graph_bce_logits(ams_graph *g, int logits, int labels);

/* Keeps a node's value readable after forward (plans never reuse its memory). Nodes
 * that nothing consumes are kept anyway. Call before ams_graph_plan. */
void ams_graph_keep(ams_graph *g, int node);
/* Plan-time fusion (default on; takes effect at the next ams_graph_plan): hard-swish chains
 * (affine, affine, relu6, mul) as one op in every plan; in AMS_PLAN_INFER, conv -> [frozen BN]
 * -> [relu | relu6 | hard-swish] -> [residual add] as one conv call; in AMS_PLAN_TRAIN,
 * conv -> relu | relu6 and conv -> residual add as one conv call (backends with
 * conv2d_forward_act), and a relu's backward done by the conv that reads it first (its data
 * gradient masked as it is stored: conv2d_backward_relu); the pool of a sum and the product
 * plus a tensor as one pass. With
 * fusion on, the first plan also rewrites the graph where exact algebra moves work to fewer
 * pixels (a 1x1 conv reading only an upsampling bilinear resize runs before it: the two
 * node ids swap roles, so a resize that is not kept may then be a conv of another shape;
 * the rewrite stays). Values are those of the unfused graph (hard-swish, pool of a sum and
 * product plus a tensor bitwise; fused conv epilogues and rewrites within rounding).
 * on = 0 before the first plan: every op runs alone, as built (the oracle the fused plans
 * are tested against). */
void ams_graph_set_fusion(ams_graph *g, int on);

/* ---- queries ---- */
ams_params *ams_graph_params(const ams_graph *g);
int ams_graph_node_count(const ams_graph *g);
ams_op ams_graph_node_op(const ams_graph *g, int node);
const char *ams_op_name(ams_op op);
/* shape of a node's value; returns ndim */
int ams_graph_shape(const ams_graph *g, int node, int64_t *shape);
/* Floating-point operations of one forward pass (2 per multiply-add of convolutions,
 * the work that dominates; element-wise ops are not counted). */
double ams_graph_forward_flops(const ams_graph *g);
/* pixels counted by a loss node in the last forward */
int64_t ams_graph_loss_count(const ams_graph *g, int node);

/* ---- execution ---- */
/* Plans memory (call once after building; again only to change mode). */
ams_status ams_graph_plan(ams_graph *g, ams_plan_mode mode, ams_err *err);
/* Bytes of the activation arena the plan uses. */
size_t ams_graph_arena_bytes(const ams_graph *g);
void ams_graph_set_seed(ams_graph *g, uint64_t seed);
/* Copies data (numel floats, or bytes for labels) into the node's buffer. */
ams_status ams_graph_set_input(ams_graph *g, int node, const float *data, ams_err *err);
ams_status ams_graph_set_labels(ams_graph *g, int node, const uint8_t *labels, ams_err *err);
/* The same from parts[0..N) of the node's first dimension N, e.g. batch frames held apart:
 * an input's value becomes parts' bytes times scale (one pass, no float copy of the batch),
 * a labels node's its bytes (scale unused). */
ams_status ams_graph_set_parts_u8(ams_graph *g, int node, const uint8_t *const *parts,
                                  float scale, ams_err *err);
ams_status ams_graph_forward(ams_graph *g, const ams_backend *be, ams_err *err);
/* The node's value after forward (NULL if the plan reused its memory: in
 * AMS_PLAN_INFER only graph outputs - nodes nobody consumes - stay readable). */
const float *ams_graph_value(const ams_graph *g, int node);
/* Backward from a scalar node (d loss/d loss = 1). AMS_PLAN_TRAIN only. */
ams_status ams_graph_backward(ams_graph *g, const ams_backend *be, int loss, ams_err *err);
/* Gradients for some parameters only, e.g. a training phase that updates a masked subset:
 * frozen[i] != 0 (i indexes the graph's ams_params, count entries) gives parameter i no
 * gradient in the following backward passes: its grads are left as they are and not
 * computed (a convolution skips its weight gradient), and every node whose gradient would
 * reach only frozen parameters skips its backward (what lies below the lowest unfrozen
 * layer). The gradients of the others are the same as without. NULL unfreezes all, as
 * ams_graph_plan does. One pass over the nodes: cheap enough per phase. AMS_PLAN_TRAIN only. */
ams_status ams_graph_freeze(ams_graph *g, const uint8_t *frozen, ams_err *err);

/* ---- profiling (opt-in; off, the executor pays one pointer test per pass) ---- */
/* on != 0 (after ams_graph_plan): from now on every node's forward and backward kernel
 * call is timed (counters allocated and zeroed; AMS_E_NOMEM if they cannot be,
 * AMS_E_INVAL before the plan); on == 0: stops and frees them. */
ams_status ams_graph_set_profile(ams_graph *g, int on, ams_err *err);
/* Zeroes the counters (e.g. after a warm-up pass). */
void ams_graph_profile_reset(ams_graph *g);
/* Writes the profile to f, averaged per pass: time per op kind (forward, backward, and the
 * gradient zeroing its backward triggered, i.e. for the gradients it was first to write;
 * not counted in its backward time), then the `top` slowest nodes with shape, GFLOP/s
 * (convolutions: 2 per multiply-add, backward counts each gradient computed) and the bytes
 * they move (an estimate: every input, output and gradient read or written once) in GB/s. */
void ams_graph_profile_report(const ams_graph *g, FILE *f, int top);

#endif
