/* graph_internal.h - the graph's private structures, shared by the builder,
 * the memory planner and the executor. */
#ifndef AMS_GRAPH_INTERNAL_H
#define AMS_GRAPH_INTERNAL_H

#include "ams/graph.h"
#include "ams/rng.h"

typedef struct ams_node {
    ams_op op;
    char name[AMS_PARAM_NAME_MAX]; /* inputs, params, constants */
    int *xs;                /* input node ids */
    int nin;
    int ndim;
    int64_t shape[AMS_MAX_DIMS];
    size_t numel;
    int is_u8;              /* labels: uint8 elements */
    int param;              /* AMS_OP_PARAM: index into params, else -1 */
    float *const_data;      /* AMS_OP_CONST: owned */
    int keep;               /* value stays readable after forward */

    /* op attributes */
    ams_conv2d_desc conv;   /* conv2d, conv2d_transpose */
    ams_pool2d_desc pool;   /* avgpool, maxpool */
    ams_bcast_desc bc;      /* add, mul */
    float eps;              /* batchnorm */
    float a, b;             /* affine: x*a+b; dropout: a = keep_prob */
    int oh, ow;             /* resize */
    ams_resize_mode mode;   /* resize */
    int axis;               /* concat */
    int64_t outer;          /* concat */
    int64_t *chunk;         /* concat: per input, owned */
    int *classes;           /* softmax_ce subset, owned */
    int nsub;

    /* plan */
    int needs_grad;         /* a gradient flows into this node during backward */
    int frozen;             /* ams_graph_freeze: no gradient this pass after all */
    float *value;           /* forward value (arena, params, const, or &scalar) */
    float *grad;            /* gradient (arena, params->grads, or &dscalar); NULL if none */
    float *aux;             /* dropout mask (arena) */
    size_t value_off, grad_off, aux_off; /* arena byte offsets, SIZE_MAX = not in arena */
    int grad_ready;         /* backward: grad buffer zeroed this pass */
    int grad_alias;         /* training: the add / reshape / affine(a = 1) node whose gradient
                             * buffer this node's gradient is (graph_plan.c plan_grad_alias):
                             * that node's backward writes nothing for it, only marks it
                             * written; -1: a buffer of its own */
    /* conv fusion (graph_plan.c plan_fusion; backends with conv2d_forward_act): a conv whose
     * value only feeds a frozen BN (inference) and/or an activation and/or a residual add
     * runs the chain as one kernel call */
    int fuse_bn;            /* conv: the BN node folded into it, or -1 */
    int fuse_last;          /* conv: the chain's last node (its value is the output), or -1 */
    int fuse_act;           /* conv: AMS_CONV_ACT_* */
    float fuse_scale;       /* conv: the activation's scale (conv2d_forward_act) */
    int fuse_addend;        /* conv: the other operand of a residual add ending the chain, or -1 */
    int fused_by;           /* BN / activation / residual add run by conv node fused_by, or -1 */
    float *fold;            /* conv with fuse_bn: folded weights then bias (owned) */
    /* hard-swish fusion (every plan unless fusion is off): mul(affine(x), relu6(affine(x)))
     * runs as one hswish kernel call by the mul node */
    int hs_x;               /* mul: the chain's input node x, or -1 */
    float hs_ab[4];         /* mul: {a1, b1, a2, b2}: (x*a1 + b1) * relu6(x*a2 + b2) */
    int hs_by;              /* the chain's affine/affine/relu6 nodes: the mul running them, or -1
                             * (no value, no gradient in the arena) */
    /* pool of a sum (every plan unless fusion is off; backends with global_avgpool_add_*):
     * a global average pool of add(x, y), the add used by nothing else, reads x and y itself
     * and its backward adds into their gradients: the sum is never stored */
    int pool_sum;           /* global_avgpool: the add node it pools, or -1 */
    int pooled_by;          /* add: the pool running it, or -1 */
    /* product plus a tensor (the same plans; backends with mul_add_forward): add(mul(a, b),
     * c), the mul used by nothing else, c of the add's shape, runs as one forward pass by
     * the add (the product never stored; the backward as before) */
    int mul_add;            /* add: its mul operand, or -1 */
    int added_by;           /* mul: the add running it, or -1 */
    /* relu folding (training plans unless fusion is off; graph_plan.c plan_relu_fold): a
     * relu whose first reader is a conv (as its input, only there) leaves its backward to
     * that conv's, which writes the relu's gradient last and masks it there (kernels.h
     * conv2d_backward_relu); the relu's input then takes the relu's gradient buffer */
    int relu_fold;          /* relu: the conv masking its gradient, or -1 */
    int din_relu;           /* conv: its input is a folded relu's output */
    int relu_masked;        /* relu: this backward pass's conv has masked its gradient */
    float scalar, dscalar;  /* loss value and its gradient */
    int64_t count;          /* loss: pixels counted */
} ams_node;

/* Opt-in profile (ams_graph_set_profile): wall time per node and direction. */
typedef struct ams_node_prof {
    double fwd_s, bwd_s;    /* seconds summed over passes */
    double zero_s;          /* zeroing gradients this node's backward was first to write */
} ams_node_prof;

typedef struct ams_graph_prof {
    ams_node_prof *node;    /* count entries */
    long fwd_passes, bwd_passes;
    double zero_s;          /* backward: zeroing gradient buffers (not in any node's time) */
} ams_graph_prof;

struct ams_graph {
    ams_params *params;     /* not owned */
    ams_node *nodes;
    int count, cap;
    ams_status status;      /* first builder error */
    char msg[1024];
    int planned;
    ams_plan_mode mode;
    int loss;               /* the loss node backward starts from (TRAIN), or -1 */
    unsigned char *arena;   /* activations and activation gradients */
    size_t arena_bytes;
    ams_rng rng;            /* dropout masks */
    int forward_done;
    int no_fusion;          /* ams_graph_set_fusion(g, 0) */
    int no_grad_alias;      /* tests: plan every gradient in a buffer of its own */
    int grad_aliases;       /* the plan's gradient aliases (nodes with grad_alias >= 0) */
    int hswish_fused;       /* the plan has hard-swish fusions (the backend must have hswish) */
    ams_graph_prof *prof;   /* NULL: profiling off (the executor checks nothing else) */
};

/* Exact rewrites that move work to fewer pixels (graph_rewrite.c): made by the first
 * ams_graph_plan unless fusion is off, and kept (later plans see the rewritten graph). */
void ams_graph_rewrite(ams_graph *g);

/* Monotonic seconds, for the profile (graph_profile.c). */
double ams_graph_prof_now(void);

#endif
