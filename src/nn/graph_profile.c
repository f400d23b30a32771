/* graph_profile.c - the executor's opt-in profile: wall time per node and direction
 * (graph_exec.c adds it up while g->prof is set), reported per op kind and per node with
 * the work done (GFLOP/s of convolutions) and the bytes moved (GB/s), to compare with the
 * machine's roofline. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nn/graph_internal.h"

double ams_graph_prof_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

ams_status ams_graph_set_profile(ams_graph *g, int on, ams_err *err) {
    if (!on) {
        if (g->prof) free(g->prof->node);
        free(g->prof);
        g->prof = NULL;
        return AMS_OK;
    }
    AMS_FAIL_IF(!g->planned, err, AMS_E_INVAL, "profile before ams_graph_plan");
    if (g->prof) {
        ams_graph_profile_reset(g);
        return AMS_OK;
    }
    ams_graph_prof *p = calloc(1, sizeof *p);
    ams_node_prof *nodes = calloc(g->count > 0 ? (size_t)g->count : 1, sizeof *nodes);
    if (!p || !nodes) {
        free(p);
        free(nodes);
        AMS_FAIL(err, AMS_E_NOMEM, "out of memory for the graph profile");
    }
    p->node = nodes;
    g->prof = p;
    return AMS_OK;
}

void ams_graph_profile_reset(ams_graph *g) {
    if (!g->prof) return;
    ams_node_prof *nodes = g->prof->node;
    memset(nodes, 0, (size_t)g->count * sizeof *nodes);
    memset(g->prof, 0, sizeof *g->prof);
    g->prof->node = nodes;
}

/* Multiply-adds of a convolution node (0 for other ops). */
static double conv_macs(const ams_node *n) {
    if (n->op != AMS_OP_CONV2D && n->op != AMS_OP_CONV2D_TRANSPOSE) return 0;
    const ams_conv2d_desc *d = &n->conv;
    return (double)d->n * d->oh * d->ow * d->oc * (double)(d->c / d->groups) * d->kh * d->kw;
}

static double node_bytes(const ams_node *n) {
    return (double)n->numel * (n->is_u8 ? 1.0 : 4.0);
}

/* Estimated bytes a node's forward and backward move: each input and the output once
 * (forward); the output gradient, the inputs (or the output, for activations) and each
 * input gradient read and written (backward). */
static void node_traffic(const ams_graph *g, const ams_node *n, double *fwd, double *bwd) {
    double in = 0, gin = 0;
    for (int k = 0; k < n->nin; k++) {
        const ams_node *x = &g->nodes[n->xs[k]];
        in += node_bytes(x);
        /* a gradient aliased to n's own (graph_plan.c) is not written */
        if (x->needs_grad && x->grad && x->grad_alias != (int)(n - g->nodes))
            gin += 2 * node_bytes(x);
    }
    *fwd = in + node_bytes(n);
    *bwd = node_bytes(n) + in + gin;
}

/* Floating-point operations of a node's forward and backward (convolutions only). */
static void node_flops(const ams_graph *g, const ams_node *n, double *fwd, double *bwd) {
    double macs = conv_macs(n);
    int grads = 0;
    for (int k = 0; k < 2 && k < n->nin; k++) {
        const ams_node *x = &g->nodes[n->xs[k]];
        grads += x->needs_grad && x->grad;
    }
    *fwd = 2 * macs;
    *bwd = 2 * macs * grads;
}

static void node_desc(const ams_node *n, char *buf, size_t cap) {
    int len = 0;
    buf[0] = 0;
    for (int i = 0; i < n->ndim && len >= 0 && (size_t)len < cap; i++)
        len += snprintf(buf + len, cap - (size_t)len, "%s%lld", i ? "x" : "", (long long)n->shape[i]);
    if ((n->op == AMS_OP_CONV2D || n->op == AMS_OP_CONV2D_TRANSPOSE) && len >= 0 && (size_t)len < cap) {
        const ams_conv2d_desc *d = &n->conv;
        const char *kind = d->groups == 1 ? "" : d->groups == d->c ? " dw" : " grouped";
        snprintf(buf + len, cap - (size_t)len, " k%dx%d s%d%s %d->%d", d->kh, d->kw, d->stride_h,
                 kind, n->op == AMS_OP_CONV2D ? d->c : d->oc, n->op == AMS_OP_CONV2D ? d->oc : d->c);
    }
}

static double rate(double amount, double seconds) { return seconds > 0 ? amount / seconds / 1e9 : 0; }

typedef struct ranked {
    double s; /* forward + backward seconds */
    int node;
} ranked;

static int slower_first(const void *a, const void *b) {
    double x = ((const ranked *)a)->s, y = ((const ranked *)b)->s;
    return (x < y) - (x > y);
}

void ams_graph_profile_report(const ams_graph *g, FILE *f, int top) {
    const ams_graph_prof *p = g->prof;
    if (!p || p->fwd_passes == 0) {
        fprintf(f, "profile: no pass timed\n");
        return;
    }
    double nf = (double)p->fwd_passes, nb = p->bwd_passes > 0 ? (double)p->bwd_passes : 1;
    double kf[AMS_OP__COUNT] = {0}, kb[AMS_OP__COUNT] = {0}, kbytes[AMS_OP__COUNT] = {0};
    double kz[AMS_OP__COUNT] = {0};
    int kn[AMS_OP__COUNT] = {0};
    double tf = 0, tb = 0;
    for (int i = 0; i < g->count; i++) {
        const ams_node *n = &g->nodes[i];
        double bf, bb;
        node_traffic(g, n, &bf, &bb);
        double sf = p->node[i].fwd_s / nf, sb = p->node[i].bwd_s / nb;
        if (n->op == AMS_OP_INPUT || n->op == AMS_OP_LABELS || n->op == AMS_OP_PARAM ||
            n->op == AMS_OP_CONST)
            continue;
        kf[n->op] += sf, kb[n->op] += sb, kn[n->op]++;
        kz[n->op] += p->node[i].zero_s / nb;
        kbytes[n->op] += bf + (p->bwd_passes > 0 && p->node[i].bwd_s > 0 ? bb : 0);
        tf += sf, tb += sb;
    }
    double zero = p->zero_s / nb, total = tf + tb + zero;
    fprintf(f, "profile: %ld forward, %ld backward pass(es); per pass: forward %.3f ms, backward "
               "%.3f ms + gradient zeroing %.3f ms\n",
            p->fwd_passes, p->bwd_passes, tf * 1e3, tb * 1e3, zero * 1e3);
    fprintf(f, "  %-18s %5s %9s %9s %6s %8s %9s\n", "op", "nodes", "fwd ms", "bwd ms", "%", "GB/s",
            "zeroing");
    for (;;) { /* op kinds, slowest first */
        int best = -1;
        for (int k = 0; k < AMS_OP__COUNT; k++)
            if (kn[k] && (best < 0 || kf[k] + kb[k] > kf[best] + kb[best])) best = k;
        if (best < 0) break;
        fprintf(f, "  %-18s %5d %9.3f %9.3f %5.1f%% %8.2f %9.3f\n", ams_op_name((ams_op)best), kn[best],
                kf[best] * 1e3, kb[best] * 1e3, total > 0 ? 100 * (kf[best] + kb[best]) / total : 0,
                rate(kbytes[best], kf[best] + kb[best]), kz[best] * 1e3);
        kn[best] = 0;
    }
    if (top <= 0) return;
    ranked *order = malloc((size_t)(g->count > 0 ? g->count : 1) * sizeof *order);
    if (!order) return;
    for (int i = 0; i < g->count; i++) order[i] = (ranked){p->node[i].fwd_s + p->node[i].bwd_s, i};
    qsort(order, (size_t)g->count, sizeof *order, slower_first);
    fprintf(f, "  top %d nodes:\n  %5s %-16s %-34s %8s %8s %8s %8s %8s %8s\n", top, "node", "op",
            "output, conv", "fwd ms", "bwd ms", "fwd GF/s", "bwd GF/s", "fwd GB/s", "bwd GB/s");
    for (int r = 0; r < top && r < g->count; r++) {
        int i = order[r].node;
        const ams_node *n = &g->nodes[i];
        double sf = p->node[i].fwd_s / nf, sb = p->node[i].bwd_s / nb;
        if (sf + sb <= 0) break;
        double ff, fb, bf, bb;
        node_flops(g, n, &ff, &fb);
        node_traffic(g, n, &bf, &bb);
        char desc[96];
        node_desc(n, desc, sizeof desc);
        fprintf(f, "  %5d %-16s %-34s %8.3f %8.3f %8.1f %8.1f %8.2f %8.2f\n", i, ams_op_name(n->op),
                desc, sf * 1e3, sb * 1e3, rate(ff, sf), rate(fb, sb), rate(bf, sf), rate(bb, sb));
    }
    free(order);
}
