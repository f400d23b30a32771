/* graph_rewrite.c - rewrites the first ams_graph_plan makes (unless fusion is off): exact
 * algebra that moves work to fewer pixels.
 *
 * A 1x1 convolution after an upsampling bilinear resize runs before it instead:
 * conv(resize(x)) == resize(conv(x)), both being linear, the resize per channel over space
 * and the conv per pixel over channels, and the bias passing through (a bilinear
 * resize's weights sum to 1 at every output pixel, so a constant stays that constant).
 * The conv then runs on the resize's input pixels (a quarter at 2x), the resize on the
 * conv's output channels. The selfie student's decoder has three of these (a resize, then
 * a 1x1 conv to fewer channels): 128 -> 24 channels at 12x16 instead of 24x32, etc.
 *
 * The two nodes keep their ids and swap roles: the resize's id becomes the conv (on the
 * resize's input, the conv's parameters), the conv's id the resize (of that conv): the
 * conv's consumers read the same id, of the same shape. Results differ from the graph as
 * built by rounding only. Not rewritten: a resize kept (ams_graph_keep: its value is
 * someone's) or read by anything else, a conv whose parameters are computed after the
 * resize, or a pair the swap would not make cheaper (a downsampling resize, a conv to many
 * more channels). */
#include <stdlib.h>
#include <string.h>

#include "nn/graph_internal.h"

/* Is node i read in exactly one input slot of node j (and by no other node)? */
static int only_reader(const ams_graph *g, int i, int j) {
    int reads = 0;
    for (int m = i + 1; m < g->count; m++) {
        const ams_node *nd = &g->nodes[m];
        for (int k = 0; k < nd->nin; k++)
            if (nd->xs[k] == i) {
                if (m != j) return 0;
                reads++;
            }
    }
    return reads == 1;
}

/* The 1x1 conv reading resize r as its input and nothing else reading r, when swapping
 * them is exact and cheaper; else -1. */
static int commutable_conv(const ams_graph *g, int r) {
    const ams_node *rs = &g->nodes[r];
    if (rs->op != AMS_OP_RESIZE_BILINEAR || rs->keep || rs->ndim != 4) return -1;
    const ams_node *in = &g->nodes[rs->xs[0]];
    int64_t lo = in->shape[1] * in->shape[2], hi = rs->shape[1] * rs->shape[2];
    int j = -1;
    for (int m = r + 1; m < g->count && j < 0; m++) {
        const ams_node *nd = &g->nodes[m];
        for (int k = 0; k < nd->nin; k++)
            if (nd->xs[k] == r) {
                j = m;
                break;
            }
    }
    if (j < 0 || !only_reader(g, r, j)) return -1;
    const ams_node *cv = &g->nodes[j];
    const ams_conv2d_desc *d = &cv->conv;
    if (cv->op != AMS_OP_CONV2D || cv->xs[0] != r || d->kh != 1 || d->kw != 1 ||
        d->stride_h != 1 || d->stride_w != 1 || d->pad_t || d->pad_b || d->pad_l || d->pad_r)
        return -1;
    for (int k = 1; k < cv->nin; k++) { /* the weights and bias, ready where the conv goes */
        ams_op op = g->nodes[cv->xs[k]].op;
        if (op != AMS_OP_PARAM && op != AMS_OP_CONST && cv->xs[k] >= r) return -1;
    }
    /* multiply-adds per output pixel of the conv (c / groups each) and ~4 per resized
     * element: before, the conv on hi pixels and the resize of c channels; after, the conv
     * on lo pixels and the resize of oc channels */
    double macs = (double)(d->c / d->groups) * d->oc;
    double before = (double)hi * (macs + 4.0 * d->c), after = (double)lo * macs + 4.0 * hi * d->oc;
    return after < before ? j : -1;
}

void ams_graph_rewrite(ams_graph *g) {
    for (int r = 0; r < g->count; r++) {
        int j = commutable_conv(g, r);
        if (j < 0) continue;
        ams_node *rs = &g->nodes[r], *cv = &g->nodes[j];
        const int x = rs->xs[0];
        const ams_node *in = &g->nodes[x];
        /* the conv needs room for its inputs where the resize had one */
        int *xs = realloc(rs->xs, (size_t)cv->nin * sizeof *xs);
        if (!xs) continue; /* this pair stays as built */
        rs->xs = xs;
        xs[0] = x;
        for (int k = 1; k < cv->nin; k++) xs[k] = cv->xs[k];
        /* node r: the conv on x's pixels */
        ams_node conv = *cv;
        conv.xs = xs;
        conv.keep = 0;
        conv.conv.h = conv.conv.oh = (int)in->shape[1];
        conv.conv.w = conv.conv.ow = (int)in->shape[2];
        conv.shape[1] = in->shape[1], conv.shape[2] = in->shape[2];
        conv.numel = (size_t)conv.shape[0] * (size_t)conv.shape[1] * (size_t)conv.shape[2] *
                     (size_t)conv.shape[3];
        /* node j: the resize of node r, at the conv's old shape (its xs[0] is r already) */
        ams_node resize = *rs;
        resize.xs = cv->xs;
        resize.nin = 1;
        memcpy(resize.shape, cv->shape, sizeof resize.shape);
        resize.numel = cv->numel;
        resize.keep = cv->keep;
        *rs = conv;
        *cv = resize;
    }
}
