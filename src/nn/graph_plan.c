/* graph_plan.c - decides which nodes need gradients and lays out every activation,
 * activation gradient and dropout mask in one arena: tensors whose lifetimes do not
 * overlap share bytes, so forward/backward never allocate.
 *
 * Time line: forward runs node i at step i; backward runs node i at step 2n - i.
 * A value lives from its producer's step to the last step that reads it (a consumer's
 * forward, or a backward that needs it); a gradient lives from the first backward step
 * that accumulates into it to its producer's backward; gradients that are another node's
 * (plan_grad_alias) share its buffer, which lives as long as all of them. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nn/big_alloc.h"
#include "nn/graph_internal.h"

enum { ALIGN = 64 };

typedef struct interval {
    long start, end; /* inclusive steps */
    size_t bytes;
    size_t *offset;  /* where to store the placement */
    size_t placed;
} interval;

/* Is input slot k of an op differentiable (does a gradient flow into it)? */
static int differentiable(ams_op op, int k) {
    switch (op) {
    case AMS_OP_BATCHNORM: return k < 3;         /* not the moving statistics */
    case AMS_OP_SOFTMAX_CE:
    case AMS_OP_BCE_LOGITS: return k == 0;      /* not the labels */
    default: return 1;
    }
}

/* Does the backward of op read input slot k's forward value? */
static int backward_reads_input(ams_op op, int k) {
    switch (op) {
    case AMS_OP_CONV2D:
    case AMS_OP_CONV2D_TRANSPOSE: return k < 2;
    case AMS_OP_BATCHNORM: return 1;
    case AMS_OP_MUL:
    case AMS_OP_DIV: return 1;
    case AMS_OP_MAXPOOL: return 1;
    case AMS_OP_SOFTMAX_CE:
    case AMS_OP_BCE_LOGITS: return 1;
    default: return 0;
    }
}

static int backward_reads_output(ams_op op) {
    return op == AMS_OP_RELU || op == AMS_OP_RELU6 || op == AMS_OP_SIGMOID || op == AMS_OP_TANH;
}

static int is_loss(ams_op op) { return op == AMS_OP_SOFTMAX_CE || op == AMS_OP_BCE_LOGITS; }

/* Nodes whose value lives in the arena. */
static int in_arena(const ams_node *n) {
    return n->op != AMS_OP_PARAM && n->op != AMS_OP_CONST && !is_loss(n->op);
}

/* Is node v's value available before node `at` runs (a parameter, a constant, or an
 * earlier node's output)? */
static int ready_before(const ams_graph *g, int v, int at) {
    ams_op op = g->nodes[v].op;
    return op == AMS_OP_PARAM || op == AMS_OP_CONST || v < at;
}

/* The only consumer of node i (reading it in exactly one input slot) when that consumer
 * has op `op` and reads it as input 0; else -1. */
static int sole_consumer(const ams_graph *g, const int *uses, int i, ams_op op) {
    if (uses[i] != 1 || g->nodes[i].keep) return -1;
    for (int j = i + 1; j < g->count; j++) {
        const ams_node *nd = &g->nodes[j];
        for (int k = 0; k < nd->nin; k++)
            if (nd->xs[k] == i) return (nd->op == op && k == 0) ? j : -1;
    }
    return -1;
}

/* Is node j an intermediate (used once, not kept) affine / relu6 node? */
static int inner(const ams_graph *g, const int *uses, int j, ams_op op) {
    const ams_node *nd = &g->nodes[j];
    return nd->op == op && uses[j] == 1 && !nd->keep;
}

/* Hard-swish fusion: m = affine(x, a1, b1), r = relu6(affine(x, a2, b2)), y = mul(m, r) (or
 * mul(r, m)), every intermediate used once and not kept, runs as one hswish kernel call by
 * the mul node (graph_exec.c): one pass over x forward, one over x and dy backward, instead of
 * four and four; the intermediates get no arena memory. The backward reads x (its value
 * lives until the mul's backward step: the lifetimes below). */
static void plan_hswish(ams_graph *g, const int *uses) {
    for (int i = 0; i < g->count; i++) {
        ams_node *m = &g->nodes[i];
        if (m->op != AMS_OP_MUL || m->nin != 2) continue;
        for (int k = 0; k < 2; k++) {
            int a1 = m->xs[k], r = m->xs[1 - k];
            if (!inner(g, uses, a1, AMS_OP_AFFINE) || !inner(g, uses, r, AMS_OP_RELU6)) continue;
            int a2 = g->nodes[r].xs[0];
            if (!inner(g, uses, a2, AMS_OP_AFFINE)) continue;
            int x = g->nodes[a1].xs[0];
            if (g->nodes[a2].xs[0] != x || g->nodes[x].numel != m->numel || g->nodes[x].is_u8)
                continue;
            m->hs_x = x;
            m->hs_ab[0] = g->nodes[a1].a, m->hs_ab[1] = g->nodes[a1].b;
            m->hs_ab[2] = g->nodes[a2].a, m->hs_ab[3] = g->nodes[a2].b;
            g->nodes[a1].hs_by = g->nodes[a2].hs_by = g->nodes[r].hs_by = i;
            g->hswish_fused = 1;
            break;
        }
    }
}

/* Is a hard-swish's {a1, b1, a2, b2} oneDNN's hardswish, x * relu6(x + 3) / 6, times a
 * scale (a1 * 6: the selfie's a1 is 1/6 rounded to half precision)? */
static int standard_hswish(const float *ab) {
    const float std[3] = {0.0f, 1.0f, 3.0f};
    return memcmp(ab + 1, std, sizeof std) == 0;
}

/* The hard-swish mul node whose chain input is x when x feeds nothing else, else -1. */
static int hswish_of(const ams_graph *g, const int *uses, int x) {
    if (uses[x] != 2 || g->nodes[x].keep) return -1;
    for (int j = x + 1; j < g->count; j++)
        if (g->nodes[j].hs_x == x) return j;
    return -1;
}

/* Pool of a sum: gap(add(x, y)), x, y and the add of one shape, the add used by nothing else
 * (and not a conv chain's residual add): the pool reads x and y (one pass instead of the
 * add's write and the pool's read) and its backward adds its gradient straight into x's and
 * y's (the add's gradient never formed). The lifetimes below keep x and y to the pool. */
static void plan_pool_sum(ams_graph *g, const int *uses) {
    for (int i = 0; i < g->count; i++) {
        ams_node *p = &g->nodes[i];
        if (p->op != AMS_OP_GLOBAL_AVGPOOL) continue;
        int a = p->xs[0];
        const ams_node *s = &g->nodes[a];
        if (s->op != AMS_OP_ADD || s->nin != 2 || uses[a] != 1 || s->keep || s->fused_by >= 0)
            continue;
        const ams_node *x = &g->nodes[s->xs[0]], *y = &g->nodes[s->xs[1]];
        if (x->numel != s->numel || y->numel != s->numel || x->is_u8 || y->is_u8) continue;
        p->pool_sum = a;
        g->nodes[a].pooled_by = i;
    }
}

/* Product plus a tensor: add(mul(a, b), c) (either order), the mul used by nothing else and
 * not a hard-swish's, c and the add of the mul's shape, the add not a conv chain's or a
 * pool's: the add computes a * b + c in one pass (the mul's value never written; its
 * backward reads a and b, not its value). The lifetimes keep a and b to the add. */
static void plan_mul_add(ams_graph *g, const int *uses) {
    for (int i = 0; i < g->count; i++) {
        ams_node *ad = &g->nodes[i];
        if (ad->op != AMS_OP_ADD || ad->nin != 2 || ad->fused_by >= 0 || ad->pooled_by >= 0)
            continue;
        for (int k = 0; k < 2; k++) {
            int m = ad->xs[k], c = ad->xs[1 - k];
            const ams_node *mu = &g->nodes[m], *cn = &g->nodes[c];
            if (mu->op != AMS_OP_MUL || m == c || uses[m] != 1 || mu->keep || mu->hs_x >= 0 ||
                mu->numel != ad->numel || cn->numel != ad->numel || cn->is_u8)
                continue;
            ad->mul_add = m;
            g->nodes[m].added_by = i;
            break;
        }
    }
}

/* Relu folding (training): relu r, whose gradient flows (needs_grad), read first by conv c
 * as its input 0 and nowhere else in c, with c's backward run too (needs_grad: it reaches
 * the loss). Backward runs in reverse order, so c is the last to write r's gradient: its
 * backward then replaces it by (r > 0 ? gradient : 0), the relu's own backward (graph_exec.c),
 * and r's input can take that buffer as its gradient (passes_grad, plan_grad_alias): the
 * relu's pass over memory is gone (the data gradient's kernel applies the select as it
 * stores). The select is idempotent, so a relu whose gradient ends up in a buffer of its own
 * still runs its backward, on a gradient already masked, with the same result. */
static void plan_relu_fold(ams_graph *g) {
    for (int r = 0; r < g->count; r++) {
        ams_node *rl = &g->nodes[r];
        if (rl->op != AMS_OP_RELU || !rl->needs_grad) continue;
        int c = -1;
        for (int j = r + 1; j < g->count && c < 0; j++)
            for (int k = 0; k < g->nodes[j].nin; k++)
                if (g->nodes[j].xs[k] == r) c = j;
        if (c < 0) continue;
        ams_node *cv = &g->nodes[c];
        int elsewhere = 0;
        for (int k = 1; k < cv->nin; k++) elsewhere |= cv->xs[k] == r;
        if (cv->op != AMS_OP_CONV2D || cv->xs[0] != r || elsewhere || !cv->needs_grad) continue;
        rl->relu_fold = c;
        cv->din_relu = 1;
    }
}

/* Conv fusion. Inference: every conv2d whose value feeds only a frozen batch norm (whose
 * statistics and affine parameters exist before the conv runs) and/or only a ReLU/ReLU6 or
 * a standard hard-swish, and then only a residual add of a same-shaped tensor computed
 * before the conv, becomes one chain, run by the conv node (graph_exec.c) when the backend
 * has conv2d_forward_act: BN folded into a copy of the weights and bias (n->fold, refreshed
 * every forward), the activation and the add fused into the kernel (oneDNN post-ops).
 * Training: conv -> ReLU/ReLU6, or conv -> residual add (the conv's backward reads its
 * input, the activation's its output, the add's nothing: the conv's own value is never
 * needed). The chain's last node's value lives from the conv's step (see the lifetimes
 * below); the conv's value keeps its own buffer so that a backend without the fused kernel
 * still runs the chain op by op (a hard-swish then as its one hswish op). */
static ams_status plan_fusion(ams_graph *g, ams_err *err) {
    const int n = g->count;
    for (int i = 0; i < n; i++) {
        ams_node *nd = &g->nodes[i];
        nd->fuse_bn = nd->fuse_last = nd->fused_by = -1;
        nd->fuse_act = AMS_CONV_ACT_NONE;
        nd->fuse_scale = 1.0f;
        nd->fuse_addend = -1;
        nd->hs_x = nd->hs_by = -1;
        nd->pool_sum = nd->pooled_by = -1;
        nd->mul_add = nd->added_by = -1;
        nd->relu_fold = -1;
        nd->din_relu = 0;
        free(nd->fold);
        nd->fold = NULL;
    }
    g->hswish_fused = 0;
    if (g->no_fusion) return AMS_OK;
    int *uses = calloc((size_t)n + 1, sizeof *uses);
    AMS_FAIL_IF(!uses, err, AMS_E_NOMEM, "out of memory planning the graph");
    for (int j = 0; j < n; j++)
        for (int k = 0; k < g->nodes[j].nin; k++) uses[g->nodes[j].xs[k]]++;
    plan_hswish(g, uses);
    const int train = g->mode == AMS_PLAN_TRAIN;
    for (int i = 0; i < n; i++) {
        ams_node *cv = &g->nodes[i];
        if (cv->op != AMS_OP_CONV2D) continue;
        int last = i;
        /* training: BN's gamma/beta get gradients (no folding), and a hard-swish's backward
         * needs the conv's value (the chain stays one hswish op after the conv) */
        int bn = train ? -1 : sole_consumer(g, uses, i, AMS_OP_BATCHNORM);
        if (bn >= 0) {
            const ams_node *b = &g->nodes[bn];
            for (int k = 1; k < 5 && bn >= 0; k++)
                if (!ready_before(g, b->xs[k], i)) bn = -1;
        }
        if (bn >= 0) last = bn;
        int act = sole_consumer(g, uses, last, AMS_OP_RELU6);
        int kind = AMS_CONV_ACT_RELU6;
        if (act < 0) {
            act = sole_consumer(g, uses, last, AMS_OP_RELU);
            kind = AMS_CONV_ACT_RELU;
        }
        if (act < 0 && !train) {
            act = hswish_of(g, uses, last);
            kind = AMS_CONV_ACT_HSWISH;
            if (act >= 0 && !standard_hswish(g->nodes[act].hs_ab)) act = -1;
        }
        if (act >= 0) last = act;
        /* a residual add of the chain's value and a tensor computed before the conv, both
         * of its shape (training: not after an activation, whose output its backward reads) */
        int add = -1, addend = -1;
        if (!(train && act >= 0) && uses[last] == 1 && !g->nodes[last].keep) {
            for (int j = last + 1; j < n && add < 0; j++) {
                const ams_node *a = &g->nodes[j];
                int k = a->nin != 2 ? -1 : a->xs[0] == last ? 0 : a->xs[1] == last ? 1 : -1;
                if (a->op != AMS_OP_ADD || k < 0) {
                    if (k >= 0) break; /* the consumer is not an add */
                    continue;
                }
                int o = a->xs[1 - k];
                if (o != last && ready_before(g, o, i) && !g->nodes[o].is_u8 &&
                    g->nodes[o].numel == a->numel && g->nodes[last].numel == a->numel)
                    add = j, addend = o;
                break;
            }
        }
        if (add >= 0) last = add;
        if (last == i) continue;
        if (add >= 0) {
            cv->fuse_addend = addend;
            g->nodes[add].fused_by = i;
        }
        if (act >= 0 && kind == AMS_CONV_ACT_HSWISH) cv->fuse_scale = g->nodes[act].hs_ab[0] * 6.0f;
        if (bn >= 0) {
            size_t wn = g->nodes[cv->xs[1]].numel;
            cv->fold = malloc((wn + (size_t)cv->conv.oc) * sizeof(float));
            if (!cv->fold) {
                free(uses);
                AMS_FAIL(err, AMS_E_NOMEM, "out of memory planning the graph");
            }
            cv->fuse_bn = bn;
            g->nodes[bn].fused_by = i;
        }
        if (act >= 0) {
            cv->fuse_act = kind;
            g->nodes[act].fused_by = i;
        }
        cv->fuse_last = last;
    }
    plan_pool_sum(g, uses);
    plan_mul_add(g, uses);
    if (train) plan_relu_fold(g);
    free(uses);
    return AMS_OK;
}

/* Does node i get a gradient buffer in the arena (a training plan)? */
static int arena_grad(const ams_graph *g, const long *gstart, long inf, int i) {
    const ams_node *nd = &g->nodes[i];
    return in_arena(nd) && nd->hs_by < 0 && nd->needs_grad && gstart[i] < inf && !nd->is_u8;
}

/* Does the backward of node p hand input x exactly its own gradient (an add of a
 * same-shaped x, a reshape, an affine with a = 1, a folded relu)? */
static int passes_grad(const ams_graph *g, int p, int x) {
    const ams_node *nd = &g->nodes[p];
    if (g->nodes[x].numel != nd->numel) return 0;
    switch (nd->op) {
    case AMS_OP_ADD: return nd->nin == 2 && nd->xs[0] != nd->xs[1];
    case AMS_OP_RESHAPE: return 1;
    case AMS_OP_AFFINE: return nd->a == 1.0f;
    case AMS_OP_RELU: return nd->relu_fold >= 0;
    default: return 0;
    }
}

static int alias_root(const ams_graph *g, int i) {
    while (g->nodes[i].grad_alias >= 0) i = g->nodes[i].grad_alias;
    return i;
}

/* A first-writer alias c -> p is sound when every node sharing c's buffer whose gradient
 * is not c's (does not hang below c) reads it before c's other writers accumulate into it:
 * its backward runs first, its index is above theirs (the latest of them: prev[c]). */
static int first_writer_sound(const ams_graph *g, const int *nw, const int *prev) {
    for (int c = 0; c < g->count; c++) {
        if (g->nodes[c].grad_alias < 0 || nw[c] == 1) continue;
        int rc = alias_root(g, c);
        for (int m = prev[c]; m >= 0; m--) { /* members above prev[c] are fine */
            int below = 0, r = m;
            for (; g->nodes[r].grad_alias >= 0; r = g->nodes[r].grad_alias)
                if (r == c) below = 1;
            if (r == rc && !below && m != c) return 0;
        }
    }
    return 1;
}

/* Gradient aliasing (training plans). When node p's backward hands input x exactly p's
 * gradient (passes_grad) and is the only backward writing x's gradient (sole), or the
 * first (p is x's last reader, the others accumulate after it), x's gradient can live in
 * p's buffer: p's backward writes nothing for x (graph_exec.c, aliased), and the copy is
 * gone. Chains share one buffer, owned by their root; its lifetime is the union of theirs
 * (gstart, gend). A sole alias never changes the buffer after the root's backward; a
 * first-writer one does (first_writer_sound), so those are added one by one, each kept
 * only if the plan stays sound. */
static ams_status plan_grad_alias(ams_graph *g, long *gstart, long *gend, long inf,
                                  ams_err *err) {
    const int n = g->count;
    g->grad_aliases = 0;
    for (int i = 0; i < n; i++) g->nodes[i].grad_alias = -1;
    if (g->mode != AMS_PLAN_TRAIN || g->no_grad_alias) return AMS_OK;
    /* per node: gradient writes (input slots), the last writer and the one before it */
    int *nw = calloc((size_t)3 * n + 1, sizeof *nw);
    AMS_FAIL_IF(!nw, err, AMS_E_NOMEM, "out of memory planning the graph");
    int *last = nw + n, *prev = nw + 2 * n;
    for (int i = 0; i < n; i++) last[i] = prev[i] = -1;
    for (int j = 0; j < n; j++) {
        const ams_node *nd = &g->nodes[j];
        if (!nd->needs_grad || nd->hs_by >= 0 || nd->op == AMS_OP_PARAM) continue;
        for (int k = 0; k < (nd->hs_x >= 0 ? 1 : nd->nin); k++) {
            int x = nd->hs_x >= 0 ? nd->hs_x : nd->xs[k];
            if (!g->nodes[x].needs_grad || (nd->hs_x < 0 && !differentiable(nd->op, k)))
                continue;
            nw[x]++;
            if (last[x] != j) prev[x] = last[x], last[x] = j;
        }
    }
    for (int pass = 0; pass < 2; pass++) { /* sole aliases, then first-writer ones */
        for (int p = n - 1; p >= 0; p--) {
            const ams_node *nd = &g->nodes[p];
            if (!arena_grad(g, gstart, inf, p) || nd->pooled_by >= 0) continue;
            for (int k = 0; k < nd->nin; k++) {
                int x = nd->xs[k];
                if (!arena_grad(g, gstart, inf, x) || last[x] != p || !passes_grad(g, p, x) ||
                    g->nodes[x].grad_alias >= 0 || (nw[x] == 1) != (pass == 0))
                    continue;
                g->nodes[x].grad_alias = p;
                if (pass == 1 && !first_writer_sound(g, nw, prev)) g->nodes[x].grad_alias = -1;
                else g->grad_aliases++;
            }
        }
    }
    free(nw);
    for (int i = 0; i < n; i++) {
        if (g->nodes[i].grad_alias < 0) continue;
        int r = alias_root(g, i);
        if (gstart[r] > gstart[i]) gstart[r] = gstart[i];
        if (gend[r] < gend[i]) gend[r] = gend[i];
    }
    return AMS_OK;
}

static size_t align_up(size_t x) { return (x + ALIGN - 1) / ALIGN * ALIGN; }

static int by_size_desc(const void *a, const void *b) {
    const interval *x = a, *y = b;
    if (x->bytes != y->bytes) return x->bytes < y->bytes ? 1 : -1;
    return x->start < y->start ? -1 : x->start > y->start;
}

/* Greedy first-fit by decreasing size; returns the arena size. */
static size_t place(interval *iv, int n) {
    qsort(iv, (size_t)n, sizeof *iv, by_size_desc);
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        size_t off = 0;
        int moved = 1;
        while (moved) { /* bump past every placed, time-overlapping block we collide with */
            moved = 0;
            for (int j = 0; j < i; j++) {
                if (iv[j].end < iv[i].start || iv[i].end < iv[j].start) continue;
                if (off + iv[i].bytes <= iv[j].placed || iv[j].placed + iv[j].bytes <= off)
                    continue;
                off = align_up(iv[j].placed + iv[j].bytes);
                moved = 1;
            }
        }
        iv[i].placed = off;
        *iv[i].offset = off;
        if (off + iv[i].bytes > total) total = off + iv[i].bytes;
    }
    return total;
}

ams_status ams_graph_plan(ams_graph *g, ams_plan_mode mode, ams_err *err) {
    AMS_TRY(ams_graph_error(g, err));
    AMS_FAIL_IF(!g->params->values && g->params->count, err, AMS_E_INVAL,
                "graph planned before its parameters were allocated");
    if (!g->no_fusion) ams_graph_rewrite(g);
    const int n = g->count;
    const long inf = 4L * n + 8;
    g->mode = mode;
    g->loss = -1;
    if (mode == AMS_PLAN_TRAIN) {
        for (int i = n - 1; i >= 0 && g->loss < 0; i--)
            if (is_loss(g->nodes[i].op)) g->loss = i;
        AMS_FAIL_IF(g->loss < 0, err, AMS_E_INVAL, "a training plan needs a loss node");
    }

    /* needs_grad: reaches a trainable parameter forward AND reaches the loss backward */
    char *reach = calloc((size_t)n + 1, 1);
    AMS_FAIL_IF(!reach, err, AMS_E_NOMEM, "out of memory planning the graph");
    for (int i = 0; i < n; i++) {
        ams_node *nd = &g->nodes[i];
        nd->needs_grad = nd->frozen = 0;
        if (mode != AMS_PLAN_TRAIN) continue;
        if (nd->op == AMS_OP_PARAM) {
            nd->needs_grad = g->params->info[nd->param].trainable;
            continue;
        }
        for (int k = 0; k < nd->nin; k++)
            if (differentiable(nd->op, k) && g->nodes[nd->xs[k]].needs_grad) nd->needs_grad = 1;
    }
    if (mode == AMS_PLAN_TRAIN) {
        reach[g->loss] = 1;
        for (int i = g->loss; i >= 0; i--) {
            if (!reach[i]) continue;
            const ams_node *nd = &g->nodes[i];
            for (int k = 0; k < nd->nin; k++)
                if (differentiable(nd->op, k)) reach[nd->xs[k]] = 1;
        }
        for (int i = 0; i < n; i++) g->nodes[i].needs_grad &= reach[i];
    }
    free(reach);
    AMS_TRY(plan_fusion(g, err));

    /* lifetimes */
    interval *iv = calloc((size_t)3 * n + 1, sizeof *iv);
    AMS_FAIL_IF(!iv, err, AMS_E_NOMEM, "out of memory planning the graph");
    long *vend = malloc(((size_t)n + 1) * sizeof *vend);
    long *gstart = malloc(((size_t)2 * n + 1) * sizeof *gstart);
    long *gend = gstart + n; /* a gradient's last step: its producer's backward */
    if (!vend || !gstart) {
        free(iv);
        free(vend);
        free(gstart);
        AMS_FAIL(err, AMS_E_NOMEM, "out of memory planning the graph");
    }
    for (int i = 0; i < n; i++) {
        vend[i] = g->nodes[i].keep ? inf : i;
        gstart[i] = inf;
        gend[i] = 2L * n - i;
    }
    int *consumers = calloc((size_t)n + 1, sizeof(int));
    for (int j = 0; consumers && j < n; j++) {
        const ams_node *nd = &g->nodes[j];
        long tb = 2L * n - j;
        int bwd = nd->needs_grad;
        for (int k = 0; k < nd->nin; k++) {
            int i = nd->xs[k];
            consumers[i]++;
            if (vend[i] < j) vend[i] = j;
            if (bwd && backward_reads_input(nd->op, k) && vend[i] < tb) vend[i] = tb;
            if (bwd && differentiable(nd->op, k) && g->nodes[i].needs_grad && gstart[i] > tb)
                gstart[i] = tb;
        }
        if (bwd && backward_reads_output(nd->op) && vend[j] < tb) vend[j] = tb;
        if (nd->mul_add >= 0) /* the add reads its mul's inputs */
            for (int k = 0; k < 2; k++) {
                int x = g->nodes[nd->mul_add].xs[k];
                if (vend[x] < j) vend[x] = j;
            }
        if (nd->pool_sum >= 0) /* a pool of a sum reads the add's inputs, writes their grads */
            for (int k = 0; k < 2; k++) {
                int x = g->nodes[nd->pool_sum].xs[k];
                if (vend[x] < j) vend[x] = j;
                if (bwd && g->nodes[x].needs_grad && gstart[x] > tb) gstart[x] = tb;
            }
        if (nd->hs_x >= 0) { /* a fused hard-swish reads its chain's input x */
            int x = nd->hs_x;
            long e = bwd ? tb : j;
            if (vend[x] < e) vend[x] = e;
            if (bwd && g->nodes[x].needs_grad && gstart[x] > tb) gstart[x] = tb;
        }
    }
    ams_status st = consumers ? plan_grad_alias(g, gstart, gend, inf, err) : AMS_OK;
    int m = 0;
    for (int i = 0; consumers && st == AMS_OK && i < n; i++) {
        ams_node *nd = &g->nodes[i];
        nd->value_off = nd->grad_off = nd->aux_off = SIZE_MAX;
        if (!in_arena(nd) || nd->hs_by >= 0) continue;
        int is_input = nd->op == AMS_OP_INPUT || nd->op == AMS_OP_LABELS;
        /* inputs live across calls: set once, forward any number of times */
        /* a fused chain's output is written by its conv (plan_fusion) */
        long start = is_input ? 0 : (nd->fused_by >= 0 && g->nodes[nd->fused_by].fuse_last == i)
                                        ? nd->fused_by
                                        : i;
        iv[m++] = (interval){start, (consumers[i] && !is_input) ? vend[i] : inf,
                             align_up(nd->numel * (nd->is_u8 ? 1 : sizeof(float))),
                             &nd->value_off, 0};
        if (nd->needs_grad && gstart[i] < inf && nd->grad_alias < 0)
            iv[m++] = (interval){gstart[i], gend[i], align_up(nd->numel * sizeof(float)),
                                 &nd->grad_off, 0};
        if (nd->op == AMS_OP_DROPOUT && mode == AMS_PLAN_TRAIN)
            iv[m++] = (interval){i, nd->needs_grad ? 2L * n - i : i,
                                 align_up(nd->numel * sizeof(float)), &nd->aux_off, 0};
    }
    free(vend);
    free(gstart);
    if (!consumers || st != AMS_OK) {
        free(iv);
        free(consumers);
        if (st != AMS_OK) return st;
        AMS_FAIL(err, AMS_E_NOMEM, "out of memory planning the graph");
    }
    free(consumers);
    size_t bytes = place(iv, m);
    free(iv);
    for (int i = 0; i < n; i++) /* aliases: their root's buffer */
        if (g->nodes[i].grad_alias >= 0)
            g->nodes[i].grad_off = g->nodes[alias_root(g, i)].grad_off;

    free(g->arena);
    g->arena = ams_big_alloc(bytes, ALIGN);
    AMS_FAIL_IF(!g->arena, err, AMS_E_NOMEM, "out of memory: the graph needs %zu MB of activations",
                bytes >> 20);
    g->arena_bytes = bytes;
    for (int i = 0; i < n; i++) {
        ams_node *nd = &g->nodes[i];
        nd->value = nd->grad = nd->aux = NULL;
        if (nd->op == AMS_OP_PARAM) {
            nd->value = ams_params_data(g->params, nd->param);
            if (nd->needs_grad) nd->grad = ams_params_grad(g->params, nd->param);
        } else if (nd->op == AMS_OP_CONST) {
            nd->value = nd->const_data;
        } else if (is_loss(nd->op)) {
            nd->value = &nd->scalar;
            nd->grad = &nd->dscalar;
        } else if (nd->value_off == SIZE_MAX) { /* inside a fused hard-swish */
            continue;
        } else {
            nd->value = (float *)(void *)(g->arena + nd->value_off);
            if (nd->grad_off != SIZE_MAX) nd->grad = (float *)(void *)(g->arena + nd->grad_off);
            if (nd->aux_off != SIZE_MAX) nd->aux = (float *)(void *)(g->arena + nd->aux_off);
        }
    }
    g->planned = 1;
    g->forward_done = 0;
    return AMS_OK;
}

size_t ams_graph_arena_bytes(const ams_graph *g) { return g->arena_bytes; }

void ams_graph_set_fusion(ams_graph *g, int on) { g->no_fusion = !on; }

ams_status ams_graph_freeze(ams_graph *g, const uint8_t *frozen, ams_err *err) {
    AMS_FAIL_IF(!g->planned || g->mode != AMS_PLAN_TRAIN, err, AMS_E_INVAL,
                "freezing parameters needs a graph planned with AMS_PLAN_TRAIN");
    /* live: a gradient still flows in, i.e. the node reaches an unfrozen trainable
     * parameter forward (reaching the loss backward is in needs_grad already) */
    for (int i = 0; i < g->count; i++) {
        ams_node *nd = &g->nodes[i];
        int live = 0;
        if (nd->op == AMS_OP_PARAM) {
            live = !frozen || !frozen[nd->param];
        } else {
            for (int k = 0; k < nd->nin && !live; k++)
                live = differentiable(nd->op, k) && !g->nodes[nd->xs[k]].frozen &&
                       g->nodes[nd->xs[k]].needs_grad;
        }
        nd->frozen = nd->needs_grad && !live;
    }
    return AMS_OK;
}
