/* test_backend_cpu.c - the fast CPU backend against the reference kernels (the oracle):
 * every accelerated kernel forward and backward on fixed and random shapes (odd sizes,
 * stride 2 with TF SAME asymmetric padding, dilation, groups, depthwise, batch > 1,
 * bias or not, NULL gradients, accumulation into non-zero gradients), the depthwise
 * data-gradient kernel of conv_dw_bwd.c and the pointwise GEMM of conv_pointwise.c
 * (called directly too, with every epilogue), whole DeepLabV3-MNV2
 * logits and gradients, backend selection by name, and no allocation in the steady state.
 */
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>

#include "ams/backend.h"
#include "ams/deeplab.h"
#include "ams/rng.h"
#include "check.h"
#include "cpu_testlib.h"
#include "nn/cpu/cpu_backend.h"

static float *rnd(size_t n) { return rnd_range(n, -1.0f, 1.0f); }

#define CLOSE(a, ref, n, tol, what)                                                            \
    do {                                                                                       \
        double e_ = rel_err((a), (ref), (n));                                                  \
        CHECKF(e_ <= (tol), "%s: relative error %.3g > %.3g (%s)", (what), e_, (double)(tol), \
               desc_str(d));                                                                   \
    } while (0)

static char desc_buf[256];
static const char *desc_str(const ams_conv2d_desc *d) {
    snprintf(desc_buf, sizeof desc_buf,
             "n%d %dx%dx%d -> %dx%dx%d k%dx%d s%d,%d d%d,%d pad %d,%d,%d,%d g%d", d->n, d->h, d->w,
             d->c, d->oh, d->ow, d->oc, d->kh, d->kw, d->stride_h, d->stride_w, d->dil_h, d->dil_w,
             d->pad_t, d->pad_b, d->pad_l, d->pad_r, d->groups);
    return desc_buf;
}

/* A conv descriptor; same = 1: TF SAME padding, else explicit (pt, pb, pl, pr). */
static ams_conv2d_desc make_desc(int n, int h, int w, int c, int oc, int kh, int kw, int sh, int sw,
                                 int dh, int dw, int groups, int same, int pt, int pb, int pl, int pr) {
    ams_conv2d_desc d = {.n = n, .h = h, .w = w, .c = c, .oc = oc, .kh = kh, .kw = kw,
                         .stride_h = sh, .stride_w = sw, .dil_h = dh, .dil_w = dw, .groups = groups};
    if (same) {
        ams_tf_same_padding(h, kh, sh, dh, &d.pad_t, &d.pad_b);
        ams_tf_same_padding(w, kw, sw, dw, &d.pad_l, &d.pad_r);
    } else {
        d.pad_t = pt, d.pad_b = pb, d.pad_l = pl, d.pad_r = pr;
    }
    d.oh = ams_conv_out_size(h, kh, sh, dh, d.pad_t, d.pad_b);
    d.ow = ams_conv_out_size(w, kw, sw, dw, d.pad_l, d.pad_r);
    return d;
}

/* Forward (with and without bias) and backward (every subset of gradients, accumulating
 * into random non-zero gradients) of the conv and its transpose: cpu vs ref. */
static int check_conv(const ams_backend *cpu, const ams_conv2d_desc *d) {
    const ams_backend *ref = ams_backend_ref();
    size_t nin = (size_t)d->n * d->h * d->w * d->c, nout = (size_t)d->n * d->oh * d->ow * d->oc;
    size_t nw = (size_t)d->kh * d->kw * (d->c / d->groups) * d->oc;
    float *x = rnd(nin), *w = rnd(nw), *b = rnd((size_t)d->oc), *bc = rnd((size_t)d->c);
    float *dy = rnd(nout), *dyt = rnd(nin);
    float *y1 = rnd(nout), *y2 = rnd(nout), *t1 = rnd(nin), *t2 = rnd(nin);
    int rc = 1;
    const double tol = 2e-5;
    for (int bias = 0; bias < 2; bias++) {
        ref->conv2d_forward(ref, y1, x, w, bias ? b : NULL, d);
        cpu->conv2d_forward(cpu, y2, x, w, bias ? b : NULL, d);
        CLOSE(y2, y1, nout, tol, bias ? "forward+bias" : "forward");
        /* the backend caches reordered weights: a changed weight must be seen */
        w[nw - 1] += 0.5f, w[0] -= 0.25f;
        ref->conv2d_forward(ref, y1, x, w, bias ? b : NULL, d);
        cpu->conv2d_forward(cpu, y2, x, w, bias ? b : NULL, d);
        CLOSE(y2, y1, nout, tol, "forward after a weight change");
        ref->conv2d_transpose_forward(ref, t1, dy, w, bias ? bc : NULL, d);
        cpu->conv2d_transpose_forward(cpu, t2, dy, w, bias ? bc : NULL, d);
        CLOSE(t2, t1, nin, tol, bias ? "transpose forward+bias" : "transpose forward");
    }
    /* mask bit 0: din, 1: dweight, 2: dbias */
    for (int mask = 1; mask < 8; mask++) {
        float *g0[3] = {rnd(nin), rnd(nw), rnd((size_t)d->oc)};
        float *gr[3], *gc[3];
        for (int k = 0; k < 3; k++) {
            size_t len = k == 0 ? nin : k == 1 ? nw : (size_t)d->oc;
            gr[k] = mask >> k & 1 ? dup(g0[k], len) : NULL;
            gc[k] = mask >> k & 1 ? dup(g0[k], len) : NULL;
        }
        ref->conv2d_backward(ref, gr[0], gr[1], gr[2], dy, x, w, d);
        cpu->conv2d_backward(cpu, gc[0], gc[1], gc[2], dy, x, w, d);
        int bad = 0;
        if (gr[0] && rel_err(gc[0], gr[0], nin) > tol) bad = 1;
        if (gr[1] && rel_err(gc[1], gr[1], nw) > tol) bad = 2;
        if (gr[2] && rel_err(gc[2], gr[2], (size_t)d->oc) > tol) bad = 3;
        for (int k = 0; k < 3; k++) free(g0[k]), free(gr[k]), free(gc[k]);
        CHECKF(!bad, "conv backward gradient %d (mask %d): %s", bad - 1, mask, desc_str(d));
    }
    /* a folded relu's backward (conv2d_backward_relu), din accumulated into and overwritten:
     * the reference's backward, then its select by x > 0 (x with exact zeros, as a relu's
     * output has) */
    for (int set = 0; set < 2; set++) {
        float *xr = dup(x, nin), *r = rnd(nin), *a = dup(r, nin);
        float *dw1 = rnd(nw), *dw2 = dup(dw1, nw), *db1 = rnd((size_t)d->oc), *db2 = dup(db1, (size_t)d->oc);
        for (size_t i = 0; i < nin; i += 3) xr[i] = 0.0f;
        for (size_t i = 0; set && i < nin; i++) r[i] = 0.0f, a[i] = 1e30f;
        ref->conv2d_backward(ref, r, dw1, db1, dy, xr, w, d);
        for (size_t i = 0; i < nin; i++) r[i] = xr[i] > 0.0f ? r[i] : 0.0f;
        cpu->conv2d_backward_relu(cpu, set, a, dw2, db2, dy, xr, w, d);
        double e0 = rel_err(a, r, nin), e1 = rel_err(dw2, dw1, nw);
        double e2 = rel_err(db2, db1, (size_t)d->oc);
        free(xr), free(r), free(a), free(dw1), free(dw2), free(db1), free(db2);
        CHECKF(e0 <= tol && e1 <= tol && e2 <= tol,
               "conv backward with a folded relu (set %d): din %g dweight %g dbias %g: %s", set,
               e0, e1, e2, desc_str(d));
    }
    for (int mask = 1; mask < 8; mask++) {
        float *g0[3] = {rnd(nout), rnd(nw), rnd((size_t)d->c)};
        float *gr[3], *gc[3];
        for (int k = 0; k < 3; k++) {
            size_t len = k == 0 ? nout : k == 1 ? nw : (size_t)d->c;
            gr[k] = mask >> k & 1 ? dup(g0[k], len) : NULL;
            gc[k] = mask >> k & 1 ? dup(g0[k], len) : NULL;
        }
        ref->conv2d_transpose_backward(ref, gr[0], gr[1], gr[2], dyt, dy, w, d);
        cpu->conv2d_transpose_backward(cpu, gc[0], gc[1], gc[2], dyt, dy, w, d);
        int bad = 0;
        if (gr[0] && rel_err(gc[0], gr[0], nout) > tol) bad = 1;
        if (gr[1] && rel_err(gc[1], gr[1], nw) > tol) bad = 2;
        if (gr[2] && rel_err(gc[2], gr[2], (size_t)d->c) > tol) bad = 3;
        for (int k = 0; k < 3; k++) free(g0[k]), free(gr[k]), free(gc[k]);
        CHECKF(!bad, "transpose backward gradient %d (mask %d): %s", bad - 1, mask, desc_str(d));
    }
    /* the overwriting transposed backward: din garbage in, as the reference from zeros */
    {
        float *z = rnd(nout), *o = rnd(nout), *dw1 = rnd(nw), *dw2 = dup(dw1, nw);
        for (size_t i = 0; i < nout; i++) z[i] = 0.0f, o[i] = 1e30f;
        ref->conv2d_transpose_backward(ref, z, dw1, NULL, dyt, dy, w, d);
        cpu->conv2d_transpose_backward_din_set(cpu, o, dw2, NULL, dyt, dy, w, d);
        double e1 = rel_err(o, z, nout), e2 = rel_err(dw2, dw1, nw);
        free(z), free(o), free(dw1), free(dw2);
        CHECKF(e1 <= tol && e2 <= tol, "transpose backward_din_set: din %g dweight %g: %s", e1,
               e2, desc_str(d));
    }
    rc = 0;
    free(x), free(w), free(b), free(bc), free(dy), free(dyt), free(y1), free(y2), free(t1), free(t2);
    return rc;
}

static int test_conv_fixed_shapes(void) {
    ams_err err = {0};
    const ams_backend *cpu = ams_backend_by_name("cpu", 2, &err);
    CHECKF(cpu, "%s", err.msg);
    ams_conv2d_desc cases[] = {
        make_desc(2, 9, 11, 5, 7, 3, 3, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0),      /* odd sizes, batch 2 */
        make_desc(1, 10, 13, 8, 16, 3, 3, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0),    /* stride 2, TF SAME */
        make_desc(2, 12, 9, 6, 4, 3, 3, 1, 1, 2, 2, 1, 1, 0, 0, 0, 0),      /* dilation 2 */
        make_desc(2, 14, 15, 16, 16, 3, 3, 2, 2, 1, 1, 16, 1, 0, 0, 0, 0),  /* depthwise s2 */
        make_desc(1, 17, 11, 24, 24, 3, 3, 1, 1, 4, 4, 24, 1, 0, 0, 0, 0),  /* atrous depthwise */
        make_desc(2, 8, 10, 6, 4, 3, 1, 1, 2, 1, 1, 2, 1, 0, 0, 0, 0),      /* groups 2, 3x1 */
        make_desc(3, 7, 5, 32, 24, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0),     /* pointwise */
        make_desc(1, 9, 9, 8, 16, 3, 3, 1, 1, 1, 1, 8, 1, 0, 0, 0, 0),      /* depth multiplier 2 */
        make_desc(1, 11, 12, 3, 32, 3, 3, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0),    /* MNV2's first conv */
        make_desc(2, 6, 7, 4, 5, 2, 4, 2, 3, 1, 1, 1, 0, 2, 0, 1, 3),       /* explicit, asymmetric */
        make_desc(1, 5, 6, 4, 4, 5, 5, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0),       /* VALID, k > spatial/2 */
        /* the selfie student's shapes, on the backend's own kernels */
        make_desc(3, 1, 1, 24, 40, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0),     /* squeeze-excite 1x1 map */
        make_desc(2, 40, 37, 16, 24, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0),   /* pointwise, threaded */
        make_desc(2, 23, 31, 20, 20, 5, 5, 2, 2, 1, 1, 20, 1, 0, 0, 0, 0),  /* depthwise 5x5 s2 */
        make_desc(3, 12, 16, 33, 33, 5, 5, 1, 1, 1, 1, 33, 1, 0, 0, 0, 0),  /* depthwise 5x5, c % 16 */
        make_desc(1, 6, 9, 144, 144, 5, 5, 1, 1, 1, 1, 144, 1, 0, 0, 0, 0), /* 5x5, 8 + 1 vectors */
        make_desc(2, 18, 26, 5, 3, 2, 2, 2, 2, 1, 1, 1, 0, 0, 0, 0, 0),     /* tiled (transposed 2x2 s2) */
        make_desc(2, 32, 40, 1, 16, 2, 2, 2, 2, 1, 1, 1, 0, 0, 0, 0, 0),    /* selfie's 16 -> 1 upsampling */
        make_desc(2, 12, 42, 1, 32, 3, 2, 3, 2, 1, 1, 1, 0, 0, 0, 0, 0),    /* one channel, 2 blocks, 3x2, a tail */
        make_desc(3, 10, 70, 2, 32, 2, 2, 2, 2, 1, 1, 1, 0, 0, 0, 0, 0),    /* tiled, 16-lane paths, 2 blocks + tail */
        make_desc(1, 4, 12, 3, 80, 2, 2, 2, 2, 1, 1, 1, 0, 0, 0, 0, 0),     /* tiled, oc > 64: dot products */
        make_desc(1, 9, 12, 4, 6, 3, 2, 3, 2, 1, 1, 1, 0, 0, 0, 0, 0),      /* tiled, 3x2 windows */
    };
    int rc = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0] && !rc; i++) rc = check_conv(cpu, &cases[i]);
    ams_backend_free(cpu);
    return rc;
}

/* Convs of one shape with different weight tensors share a oneDNN entry, which keeps the
 * reordered weights of up to 4 tensors: 3 tensors called in turn for 3 rounds, one changed
 * in place between rounds (its kept copy must be refreshed), then 6 tensors in turn (more
 * than the slots: evictions), with and without a bias, all match the reference. */
static int test_conv_weight_slots(void) {
    ams_err err = {0};
    const ams_backend *cpu = ams_backend_by_name("cpu", 2, &err), *ref = ams_backend_ref();
    CHECKF(cpu, "%s", err.msg);
    ams_conv2d_desc dd = make_desc(1, 12, 16, 32, 32, 5, 5, 1, 1, 1, 1, 32, 1, 0, 0, 0, 0);
    const ams_conv2d_desc *d = &dd;
    size_t nin = (size_t)d->n * d->h * d->w * d->c, nout = (size_t)d->n * d->oh * d->ow * d->oc;
    size_t nw = (size_t)d->kh * d->kw * (d->c / d->groups) * d->oc;
    float *x = rnd(nin), *b = rnd((size_t)d->oc), *y1 = rnd(nout), *y2 = rnd(nout), *w[6];
    for (int k = 0; k < 6; k++) w[k] = rnd(nw);
    int rc = 0;
    for (int round = 0; round < 5 && !rc; round++) {
        const int nk = round < 3 ? 3 : 6;
        w[2][round] += 0.5f; /* changed in place */
        for (int k = 0; k < nk && !rc; k++) {
            const float *bias = k == 1 ? b : NULL;
            ref->conv2d_forward(ref, y1, x, w[k], bias, d);
            cpu->conv2d_forward(cpu, y2, x, w[k], bias, d);
            CLOSE(y2, y1, nout, 2e-5, "forward with one of several weight tensors");
        }
    }
    for (int k = 0; k < 6; k++) free(w[k]);
    free(x), free(b), free(y1), free(y2);
    ams_backend_free(cpu);
    return rc;
}

static int test_conv_random_shapes(void) {
    ams_err err = {0};
    const ams_backend *cpu = ams_backend_by_name("cpu", 2, &err);
    CHECKF(cpu, "%s", err.msg);
    int rc = 0;
    for (int it = 0; it < 30 && !rc; it++) {
        int groups = irand(1, 3), kind = irand(0, 2);
        int c = groups * irand(1, 6), oc = groups * irand(1, 6);
        if (kind == 0) groups = c, oc = c * irand(1, 2); /* depthwise */
        int k = irand(1, 4), s = irand(1, 2), dil = k > 1 ? irand(1, 3) : 1;
        int h = irand(1, 13), w = irand(1, 13);
        int same = irand(0, 1);
        ams_conv2d_desc d = make_desc(irand(1, 3), h, w, c, oc, k, irand(1, 4), s, irand(1, 2), dil,
                                      irand(1, 2), groups, same, irand(0, 2), irand(0, 2), irand(0, 2),
                                      irand(0, 2));
        if (d.oh < 1 || d.ow < 1) continue;
        rc = check_conv(cpu, &d);
    }
    ams_backend_free(cpu);
    return rc;
}

/* One depthwise descriptor: our data-gradient kernel (conv_dw_bwd.c) called directly,
 * overwriting and accumulating (every stride and dilation it takes, whatever the dispatch
 * picks), the backend's overwriting entry point with all three gradients, and the one-pass
 * backward with every subset of them: cpu vs ref. */
static int check_dw_backward(const ams_backend *cpu, const ams_conv2d_desc *d) {
    const ams_backend *ref = ams_backend_ref();
    size_t nin = (size_t)d->n * d->h * d->w * d->c, nout = (size_t)d->n * d->oh * d->ow * d->c;
    size_t nw = (size_t)d->kh * d->kw * d->c;
    float *x = rnd(nin), *w = rnd(nw), *dy = rnd(nout), *g0 = rnd(nin);
    float *r = dup(g0, nin), *a = dup(g0, nin), *z = calloc(nin, sizeof *z), *o = dup(g0, nin);
    const double tol = 2e-5;
    CHECKF(ams_cpu_dw_dgrad_ok(d), "not taken: %s", desc_str(d));
    ref->conv2d_backward(ref, r, NULL, NULL, dy, x, w, d);
    ams_cpu_dw_dgrad(cpu, 0, a, dy, w, d);
    CLOSE(a, r, nin, tol, "depthwise din, accumulated");
    ref->conv2d_backward(ref, z, NULL, NULL, dy, x, w, d);
    ams_cpu_dw_dgrad(cpu, 1, o, dy, w, d);
    CLOSE(o, z, nin, tol, "depthwise din, overwritten");
    float *dw1 = rnd(nw), *dw2 = dup(dw1, nw), *db1 = rnd((size_t)d->c), *db2 = dup(db1, (size_t)d->c);
    memset(z, 0, nin * sizeof *z);
    memcpy(o, g0, nin * sizeof *o);
    ref->conv2d_backward(ref, z, dw1, db1, dy, x, w, d);
    cpu->conv2d_backward_din_set(cpu, o, dw2, db2, dy, x, w, d);
    CLOSE(o, z, nin, tol, "depthwise backward_din_set din");
    CLOSE(dw2, dw1, nw, tol, "depthwise backward_din_set dweight");
    CLOSE(db2, db1, (size_t)d->c, tol, "depthwise backward_din_set dbias");
    /* the whole backward in one pass (conv_dw_bwd.c), called directly: every subset of the
     * gradients (mask bit 0: din, 1: dweight, 2: dbias), overwriting and accumulating (bit
     * 3), with a folded relu's select by x > 0 (bit 4; x with exact zeros, as a relu's) */
    for (size_t i = 0; i < nin; i += 3) x[i] = 0.0f;
    for (int mask = 1; mask < 32; mask++) {
        int set = mask >> 3 & 1, relu = mask >> 4;
        memcpy(r, g0, nin * sizeof *r), memcpy(a, g0, nin * sizeof *a);
        if (set && mask & 1) memset(r, 0, nin * sizeof *r);
        memcpy(dw2, dw1, nw * sizeof *dw2), memcpy(db2, db1, (size_t)d->c * sizeof *db2);
        float *rw = dup(dw1, nw), *rb = dup(db1, (size_t)d->c);
        ref->conv2d_backward(ref, mask & 1 ? r : NULL, mask & 2 ? rw : NULL, mask & 4 ? rb : NULL,
                             dy, x, w, d);
        for (size_t i = 0; relu && mask & 1 && i < nin; i++) r[i] = x[i] > 0.0f ? r[i] : 0.0f;
        int took = ams_cpu_dw_backward(cpu, set, mask & 1 ? a : NULL, relu ? x : NULL,
                                       mask & 2 ? dw2 : NULL, mask & 4 ? db2 : NULL, dy, x, w, d);
        double e0 = rel_err(a, r, nin), e1 = rel_err(dw2, rw, nw), e2 = rel_err(db2, rb, (size_t)d->c);
        free(rw), free(rb);
        CHECKF(took && e0 <= tol && e1 <= tol && e2 <= tol,
               "one-pass depthwise backward (mask %d, set %d, relu %d): took %d, din %g dweight "
               "%g dbias %g: %s", mask & 7, set, relu, took, e0, e1, e2, desc_str(d));
    }
    free(x), free(w), free(dy), free(g0), free(r), free(a), free(z), free(o);
    free(dw1), free(dw2), free(db1), free(db2);
    return 0;
}

static int test_depthwise_backward(void) {
    ams_err err = {0};
    const ams_backend *cpu = ams_backend_by_name("cpu", 2, &err);
    CHECKF(cpu, "%s", err.msg);
    /* the selfie student's kinds (TF SAME, asymmetric when strided), small */
    ams_conv2d_desc fixed[] = {
        make_desc(2, 24, 32, 16, 16, 3, 3, 2, 2, 1, 1, 16, 1, 0, 0, 0, 0),
        make_desc(2, 13, 17, 72, 72, 3, 3, 2, 2, 1, 1, 72, 1, 0, 0, 0, 0),
        make_desc(3, 12, 16, 88, 88, 3, 3, 1, 1, 1, 1, 88, 1, 0, 0, 0, 0),
        make_desc(2, 11, 15, 96, 96, 5, 5, 2, 2, 1, 1, 96, 1, 0, 0, 0, 0),
        make_desc(2, 6, 8, 128, 128, 5, 5, 1, 1, 1, 1, 128, 1, 0, 0, 0, 0),
        make_desc(1, 9, 9, 24, 24, 3, 3, 1, 1, 2, 2, 24, 1, 0, 0, 0, 0), /* dilated */
        /* 16 + 8 lanes and a scalar rest; 5x5 with 8 lanes; wide rows */
        make_desc(2, 7, 10, 27, 27, 3, 3, 1, 1, 1, 1, 27, 1, 0, 0, 0, 0),
        make_desc(2, 9, 11, 40, 40, 5, 5, 1, 1, 1, 1, 40, 1, 0, 0, 0, 0),
        make_desc(1, 5, 70, 16, 16, 3, 3, 1, 1, 1, 1, 16, 1, 0, 0, 0, 0),
        /* stride 2, unpadded with a column and a row past the last window; padded left */
        make_desc(2, 9, 11, 24, 24, 3, 3, 2, 2, 1, 1, 24, 0, 0, 0, 0, 0),
        make_desc(1, 8, 13, 16, 16, 3, 3, 2, 2, 1, 1, 16, 0, 1, 0, 1, 2),
    };
    int rc = 0;
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0] && !rc; i++) rc = check_dw_backward(cpu, &fixed[i]);
    for (int it = 0; it < 60 && !rc; it++) {
        int c = irand(1, 41), sh = irand(1, 3), sw = irand(1, 3);
        int dh = sh == 1 ? irand(1, 3) : 1, dw = sw == 1 ? irand(1, 3) : 1;
        ams_conv2d_desc d = make_desc(irand(1, 3), irand(1, 17), irand(1, 17), c, c, irand(1, 5),
                                      irand(1, 5), sh, sw, dh, dw, c, irand(0, 1), irand(0, 3),
                                      irand(0, 3), irand(0, 3), irand(0, 3));
        if (d.oh < 1 || d.ow < 1) continue;
        rc = check_dw_backward(cpu, &d);
    }
    ams_backend_free(cpu);
    return rc;
}

/* y = act(y) * scale, as kernels.h defines the fused activations (an independent spelling
 * of conv_dnnl.c's); no activation, no scale. */
static void act_ref(float *y, size_t n, int act, float scale) {
    for (size_t i = 0; i < n; i++) {
        float v = y[i];
        if (act == AMS_CONV_ACT_RELU) v = (v > 0 ? v : 0) * scale;
        if (act == AMS_CONV_ACT_RELU6) v = (v < 0 ? 0 : v > 6 ? 6 : v) * scale;
        if (act == AMS_CONV_ACT_HSWISH) v = v * (v + 3 < 0 ? 0 : v + 3 > 6 ? 6 : v + 3) / 6 * scale;
        y[i] = v;
    }
}

/* One pointwise descriptor through our GEMM (conv_pointwise.c, called directly where the
 * CPU has it) and the backend's entry points: forward with every epilogue (bias, each
 * activation, a residual addend), the data gradient overwriting and accumulating, and the
 * weight and bias gradients. */
static int check_pointwise(const ams_backend *cpu, const ams_conv2d_desc *d) {
    const ams_backend *ref = ams_backend_ref();
    size_t nin = (size_t)d->n * d->h * d->w * d->c, nout = (size_t)d->n * d->h * d->w * d->oc;
    float *x = rnd(nin), *w = rnd((size_t)d->c * d->oc), *b = rnd((size_t)d->oc);
    float *add = rnd(nout), *y1 = rnd(nout), *y2 = rnd(nout), *y3 = rnd(nout), *dy = rnd(nout);
    const double tol = 2e-5;
    const float scale = 0.16662598f * 6; /* the selfie's hard-swish */
    CHECKF(ams_cpu_conv_pointwise(d), "not pointwise: %s", desc_str(d));
    for (int act = AMS_CONV_ACT_NONE; act <= AMS_CONV_ACT_HSWISH; act++)
        for (int v = 0; v < 4; v++) { /* bit 0: bias, bit 1: addend */
            const float *bias = v & 1 ? b : NULL, *addend = v & 2 ? add : NULL;
            ref->conv2d_forward(ref, y1, x, w, bias, d);
            act_ref(y1, nout, act, scale);
            if (addend)
                for (size_t i = 0; i < nout; i++) y1[i] += addend[i];
            cpu->conv2d_forward_act(cpu, y2, x, w, bias, d, act, scale, addend);
            static const char *const what[] = {"forward_act none", "forward_act relu",
                                               "forward_act relu6", "forward_act hswish"};
            CLOSE(y2, y1, nout, tol, what[act]);
            if (ams_cpu_pw_available()) {
                CHECK(ams_cpu_pw_forward(cpu, y3, x, w, bias, d, act, scale, addend));
                CLOSE(y3, y1, nout, tol, "our pointwise forward");
            }
        }
    float *g0 = rnd(nin), *r = dup(g0, nin), *a = dup(g0, nin), *z = calloc(nin, sizeof *z);
    float *o = dup(g0, nin);
    ref->conv2d_backward(ref, r, NULL, NULL, dy, x, w, d);
    cpu->conv2d_backward(cpu, a, NULL, NULL, dy, x, w, d);
    CLOSE(a, r, nin, tol, "pointwise din, accumulated");
    ref->conv2d_backward(ref, z, NULL, NULL, dy, x, w, d);
    cpu->conv2d_backward_din_set(cpu, o, NULL, NULL, dy, x, w, d);
    CLOSE(o, z, nin, tol, "pointwise din, overwritten");
    if (ams_cpu_pw_available()) {
        memcpy(a, g0, nin * sizeof *a);
        CHECK(ams_cpu_pw_backward_data(cpu, 0, a, NULL, dy, w, d));
        CLOSE(a, r, nin, tol, "our pointwise din, accumulated");
        memcpy(o, g0, nin * sizeof *o);
        CHECK(ams_cpu_pw_backward_data(cpu, 1, o, NULL, dy, w, d));
        CLOSE(o, z, nin, tol, "our pointwise din, overwritten");
        /* with a folded relu's select: kept where x > 0 (x with exact zeros) */
        float *xr = dup(x, nin);
        for (size_t i = 0; i < nin; i += 3) xr[i] = 0.0f;
        for (size_t i = 0; i < nin; i++) {
            r[i] = xr[i] > 0.0f ? r[i] : 0.0f;
            z[i] = xr[i] > 0.0f ? z[i] : 0.0f;
        }
        memcpy(a, g0, nin * sizeof *a);
        CHECK(ams_cpu_pw_backward_data(cpu, 0, a, xr, dy, w, d));
        CLOSE(a, r, nin, tol, "our pointwise din with a relu's select, accumulated");
        memcpy(o, g0, nin * sizeof *o);
        CHECK(ams_cpu_pw_backward_data(cpu, 1, o, xr, dy, w, d));
        CLOSE(o, z, nin, tol, "our pointwise din with a relu's select, overwritten");
        free(xr);
    }
    /* the weight and bias gradients, accumulated into non-zero ones */
    size_t nw = (size_t)d->c * d->oc;
    float *dw1 = rnd(nw), *dw2 = dup(dw1, nw), *db1 = rnd((size_t)d->oc), *db2 = dup(db1, (size_t)d->oc);
    ref->conv2d_backward(ref, NULL, dw1, db1, dy, x, w, d);
    cpu->conv2d_backward(cpu, NULL, dw2, db2, dy, x, w, d);
    CLOSE(dw2, dw1, nw, tol, "pointwise dweight");
    CLOSE(db2, db1, (size_t)d->oc, tol, "pointwise dbias");
    free(x), free(w), free(b), free(add), free(y1), free(y2), free(y3), free(dy);
    free(g0), free(r), free(a), free(z), free(o), free(dw1), free(dw2), free(db1), free(db2);
    return 0;
}

static int pointwise_on(int threads) {
    ams_err err = {0};
    const ams_backend *cpu = ams_backend_by_name("cpu", threads, &err);
    CHECKF(cpu, "%s", err.msg);
    /* the selfie's and DeepLab's channel counts (panels of 64 and tails), and enough
     * multiply-adds (over 4 M) for the threaded path */
    ams_conv2d_desc fixed[] = {
        make_desc(2, 12, 16, 16, 16, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0),
        make_desc(1, 7, 9, 16, 72, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0),
        make_desc(2, 5, 6, 128, 24, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0),
        make_desc(1, 4, 5, 320, 130, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0),
        make_desc(2, 33, 31, 48, 80, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0),
        make_desc(1, 1, 1, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0),
        /* k = 16 (forward from 16 channels, data gradient to 16): 1..4 vectors, tails */
        make_desc(1, 5, 7, 16, 40, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0),
        make_desc(1, 3, 11, 24, 16, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0),
        make_desc(2, 9, 7, 16, 130, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0),
    };
    int rc = 0;
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0] && !rc; i++) rc = check_pointwise(cpu, &fixed[i]);
    for (int it = 0; it < 40 && !rc; it++) {
        ams_conv2d_desc d = make_desc(irand(1, 3), irand(1, 13), irand(1, 13), irand(1, 150),
                                      irand(1, 150), 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0);
        rc = check_pointwise(cpu, &d);
    }
    ams_backend_free(cpu);
    return rc;
}

static int test_pointwise(void) {
    int rc = 0;
    /* two threads, and one (a training replica: ours up to 128 output channels) */
    for (int threads = 2; threads >= 1 && !rc; threads--) rc = pointwise_on(threads);
    return rc;
}

/* Element-wise and row-wise kernels on sizes big enough to run in parallel. */
static int test_elementwise(void) {
    ams_err err = {0};
    const ams_backend *cpu = ams_backend_by_name("cpu", 2, &err), *ref = ams_backend_ref();
    CHECKF(cpu, "%s", err.msg);
    ams_conv2d_desc *d = NULL; /* for CLOSE's message */
    (void)d;
    const int64_t n = 100003;
    float *x = rnd((size_t)n), *y = rnd((size_t)n), *m = rnd((size_t)n);
    float *o1 = rnd((size_t)n), *o2 = dup(o1, (size_t)n), *g1 = rnd((size_t)n), *g2 = dup(g1, (size_t)n);
    for (int64_t i = 0; i < n; i++) x[i] *= 8.0f, m[i] = m[i] > 0 ? 1.25f : 0.0f;
#define UN(f, b) UN_TOL(f, b, 0)
    /* tol: forward within tol absolute (sigmoid: a vectorised exp, a few ulp of [0, 1]) */
#define UN_TOL(f, b, tol)                                                              \
    do {                                                                               \
        ref->f(ref, o1, x, n), cpu->f(cpu, o2, x, n);                                  \
        CHECKF(check_max_abs_diff(o1, o2, (size_t)n) <= (tol), #f);                    \
        ref->b(ref, g1, y, o1, n), cpu->b(cpu, g2, y, o1, n);                          \
        CHECKF(check_max_abs_diff(g1, g2, (size_t)n) == 0, #b);                        \
    } while (0)
    UN(relu_forward, relu_backward);
    UN(relu6_forward, relu6_backward);
    UN_TOL(sigmoid_forward, sigmoid_backward, 3e-7);
    UN_TOL(tanh_forward, tanh_backward, 3e-7);
    { /* tanh keeps its relative precision near 0 (a polynomial there), and NaN, +-inf */
        float t[8] = {1e-30f, -3e-8f, 1e-4f, -0.3f, 0.6249f, 0.6251f, INFINITY, -INFINITY}, r[8], c[8];
        ref->tanh_forward(ref, r, t, 8), cpu->tanh_forward(cpu, c, t, 8);
        for (int i = 0; i < 8; i++)
            CHECKF(fabsf(c[i] - r[i]) <= 3e-7f * fabsf(r[i]), "tanh(%g) = %.9g, want %.9g", t[i],
                   c[i], r[i]);
        t[0] = NAN;
        cpu->tanh_forward(cpu, c, t, 1);
        CHECKF(isnan(c[0]), "tanh(nan) = %g", c[0]);
    }
    ref->affine_forward(ref, o1, x, 0.5f, -1.0f, n), cpu->affine_forward(cpu, o2, x, 0.5f, -1.0f, n);
    CHECK(check_max_abs_diff(o1, o2, (size_t)n) == 0);
    ref->affine_backward(ref, g1, y, 0.5f, n), cpu->affine_backward(cpu, g2, y, 0.5f, n);
    CHECK(check_max_abs_diff(g1, g2, (size_t)n) == 0);
    ref->dropout_forward(ref, o1, x, m, n), cpu->dropout_forward(cpu, o2, x, m, n);
    CHECK(check_max_abs_diff(o1, o2, (size_t)n) == 0);
    ref->dropout_backward(ref, g1, y, m, n), cpu->dropout_backward(cpu, g2, y, m, n);
    CHECK(check_max_abs_diff(g1, g2, (size_t)n) == 0);
    /* add: same shapes (parallel) and a broadcast (reference path) */
    ams_bcast_desc bd = {.ndim = 2, .out = {n, 1}, .a = {n, 1}, .b = {n, 1}};
    ref->add_forward(ref, o1, x, y, &bd), cpu->add_forward(cpu, o2, x, y, &bd);
    CHECK(check_max_abs_diff(o1, o2, (size_t)n) == 0);
    float *da1 = dup(x, (size_t)n), *da2 = dup(x, (size_t)n);
    ref->add_backward(ref, da1, g1, y, &bd), cpu->add_backward(cpu, da2, g2, y, &bd);
    CHECK(check_max_abs_diff(da1, da2, (size_t)n) == 0 && check_max_abs_diff(g1, g2, (size_t)n) == 0);
    ref->add_backward(ref, NULL, g1, y, &bd), cpu->add_backward(cpu, NULL, g2, y, &bd);
    CHECK(check_max_abs_diff(g1, g2, (size_t)n) == 0);
    ams_bcast_desc bb = {.ndim = 2, .out = {n / 7, 7}, .a = {n / 7, 7}, .b = {1, 7}};
    ref->add_forward(ref, o1, x, y, &bb), cpu->add_forward(cpu, o2, x, y, &bb);
    CHECK(check_max_abs_diff(o1, o2, (size_t)(n / 7 * 7)) == 0);
    free(da1), free(da2);
    /* batch norm: rows x 19 channels, gradients accumulate into non-zero buffers */
    int c = 19;
    int64_t rows = n / c;
    float *gam = rnd((size_t)c), *bet = rnd((size_t)c), *mean = rnd((size_t)c), *var = rnd((size_t)c);
    for (int j = 0; j < c; j++) var[j] = var[j] * var[j] + 0.1f;
    ref->batchnorm_forward(ref, o1, x, gam, bet, mean, var, 1e-3f, rows, c);
    cpu->batchnorm_forward(cpu, o2, x, gam, bet, mean, var, 1e-3f, rows, c);
    CHECKF(rel_err(o2, o1, (size_t)(rows * c)) < 1e-6, "bn forward"); /* folded scale/shift */
    float *dg1 = rnd((size_t)c), *dg2 = dup(dg1, (size_t)c), *db1 = rnd((size_t)c), *db2 = dup(db1, (size_t)c);
    ref->batchnorm_backward(ref, g1, dg1, db1, y, x, gam, mean, var, 1e-3f, rows, c);
    cpu->batchnorm_backward(cpu, g2, dg2, db2, y, x, gam, mean, var, 1e-3f, rows, c);
    CHECKF(rel_err(g2, g1, (size_t)(rows * c)) < 1e-6, "bn din"); /* g * (gamma * inv) */
    CHECKF(rel_err(dg2, dg1, (size_t)c) < 1e-5 && rel_err(db2, db1, (size_t)c) < 1e-5, "bn sums");
    ref->batchnorm_backward(ref, NULL, NULL, db1, y, x, gam, mean, var, 1e-3f, rows, c);
    cpu->batchnorm_backward(cpu, NULL, NULL, db2, y, x, gam, mean, var, 1e-3f, rows, c);
    CHECK(rel_err(db2, db1, (size_t)c) < 1e-5);
    ref->batchnorm_backward(ref, g1, NULL, NULL, y, x, gam, mean, var, 1e-3f, rows, c);
    cpu->batchnorm_backward(cpu, g2, NULL, NULL, y, x, gam, mean, var, 1e-3f, rows, c);
    CHECK(rel_err(g2, g1, (size_t)(rows * c)) < 1e-6);
    free(gam), free(bet), free(mean), free(var), free(dg1), free(dg2), free(db1), free(db2);
    free(x), free(y), free(m), free(o1), free(o2), free(g1), free(g2);
    ams_backend_free(cpu);
    return 0;
}

/* Softmax cross-entropy by pixel slices: loss, count and gradient (with ignored pixels,
 * a class subset, and accumulation into a non-zero gradient). */
static int test_softmax_ce(void) {
    ams_err err = {0};
    const ams_backend *cpu = ams_backend_by_name("cpu", 2, &err), *ref = ams_backend_ref();
    CHECKF(cpu, "%s", err.msg);
    ams_conv2d_desc *d = NULL;
    (void)d;
    const int64_t p = 20011;
    const int c = 7;
    static const int sub[] = {5, 0, 3};
    float *x = rnd((size_t)(p * c));
    uint8_t *l = malloc((size_t)p);
    for (int64_t i = 0; i < p; i++) {
        x[i] *= 6.0f;
        l[i] = (uint8_t)(i % 5 == 0 ? 255 : ams_rng_u64(&rng) % (uint64_t)c);
    }
    for (int nsub = 0; nsub <= 3; nsub += 3) {
        float l1, l2;
        int64_t n1, n2;
        ref->softmax_ce_forward(ref, &l1, &n1, x, l, p, c, sub, nsub);
        cpu->softmax_ce_forward(cpu, &l2, &n2, x, l, p, c, sub, nsub);
        CHECKF(n1 == n2 && n1 > 0 && fabsf(l1 - l2) <= 1e-6f * fabsf(l1), "%g vs %g", l1, l2);
        float *g1 = rnd((size_t)(p * c)), *g2 = dup(g1, (size_t)(p * c));
        ref->softmax_ce_backward(ref, g1, 5000.0f, x, l, p, c, sub, nsub);
        cpu->softmax_ce_backward(cpu, g2, 5000.0f, x, l, p, c, sub, nsub);
        double e = rel_err(g2, g1, (size_t)(p * c));
        free(g1), free(g2);
        CHECKF(e < 1e-5, "softmax ce gradient nsub %d: %g", nsub, e);
    }
    free(x), free(l);
    ams_backend_free(cpu);
    return 0;
}

/* Bilinear resize, every mode, by rows (forward), by image and by channel (backward). */
static int test_resize(void) {
    ams_err err = {0};
    const ams_backend *cpu = ams_backend_by_name("cpu", 2, &err), *ref = ams_backend_ref();
    CHECKF(cpu, "%s", err.msg);
    /* (n, h, w, c, oh, ow): odd sizes; 16-channel vectors (the selfie's 2x upsampling), by
     * image and by channel ranges (16 + a tail each) */
    static const int shapes[][6] = {{1, 17, 33, 19, 129, 257}, {3, 9, 13, 5, 70, 95},
                                    {1, 40, 30, 3, 21, 17},    {2, 24, 32, 16, 48, 64},
                                    {1, 6, 8, 48, 12, 16},     {2, 5, 7, 35, 9, 15}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int *sh = shapes[s];
        size_t nin = (size_t)sh[0] * sh[1] * sh[2] * sh[3], nout = (size_t)sh[0] * sh[4] * sh[5] * sh[3];
        for (int mode = 0; mode < 3; mode++) {
            float *x = rnd(nin), *o1 = rnd(nout), *o2 = rnd(nout), *g = rnd(nout);
            float *d1 = rnd(nin), *d2 = dup(d1, nin);
            ref->resize_bilinear_forward(ref, o1, x, sh[0], sh[1], sh[2], sh[3], sh[4], sh[5], mode);
            cpu->resize_bilinear_forward(cpu, o2, x, sh[0], sh[1], sh[2], sh[3], sh[4], sh[5], mode);
            double ef = check_max_abs_diff(o1, o2, nout);
            ref->resize_bilinear_backward(ref, d1, g, sh[0], sh[1], sh[2], sh[3], sh[4], sh[5], mode);
            cpu->resize_bilinear_backward(cpu, d2, g, sh[0], sh[1], sh[2], sh[3], sh[4], sh[5], mode);
            double eb = check_max_abs_diff(d1, d2, nin);
            free(x), free(o1), free(o2), free(g), free(d1), free(d2);
            CHECKF(ef == 0 && eb == 0, "resize shape %zu mode %d: %g %g", s, mode, ef, eb);
        }
    }
    ams_backend_free(cpu);
    return 0;
}

/* One DeepLab training graph with its inputs. */
typedef struct net {
    ams_params *p;
    ams_graph *g;
    int x, out, labels, loss;
} net;

static int net_make(net *t, int os, int n, int h, int w, uint64_t seed) {
    ams_err err = {0};
    ams_deeplab_config cfg = {5, os};
    t->p = ams_params_new();
    CHECK(ams_deeplab_mnv2_declare(t->p, &cfg, &err) == AMS_OK && ams_params_alloc(t->p, &err) == AMS_OK);
    ams_deeplab_mnv2_init_random(t->p, seed);
    t->g = ams_graph_new(t->p);
    CHECKF(ams_deeplab_mnv2_build(t->g, &cfg, n, h, w, 0, &t->x, &t->out, &err) == AMS_OK, "%s", err.msg);
    t->labels = ams_graph_labels(t->g, "labels", n, h, w);
    t->loss = ams_graph_softmax_ce(t->g, t->out, t->labels, NULL, 0);
    ams_graph_keep(t->g, t->out);
    CHECK(ams_graph_plan(t->g, AMS_PLAN_TRAIN, &err) == AMS_OK);
    size_t np = (size_t)n * h * w;
    float *x = malloc(np * 3 * sizeof *x);
    uint8_t *l = malloc(np);
    for (size_t i = 0; i < np * 3; i++) x[i] = 255.0f * ams_rng_uniform(&rng);
    for (size_t i = 0; i < np; i++) l[i] = (uint8_t)(ams_rng_u64(&rng) % 6 == 5 ? 255 : ams_rng_u64(&rng) % 5);
    int ok = ams_graph_set_input(t->g, t->x, x, &err) == AMS_OK &&
             ams_graph_set_labels(t->g, t->labels, l, &err) == AMS_OK;
    free(x), free(l);
    CHECKF(ok, "%s", err.msg);
    return 0;
}

static void net_free(net *t) {
    ams_graph_free(t->g);
    ams_params_free(t->p);
}

static int step(net *t, const ams_backend *be) {
    ams_err err = {0};
    ams_params_zero_grads(t->p);
    CHECKF(ams_graph_forward(t->g, be, &err) == AMS_OK, "%s", err.msg);
    CHECKF(ams_graph_backward(t->g, be, t->loss, &err) == AMS_OK, "%s", err.msg);
    return 0;
}

/* Whole DeepLabV3-MNV2 (OS 16 and 8, batch 2, odd size): logits, loss and every
 * parameter's gradient with the cpu backend vs the reference backend. */
static int test_deeplab_cpu_vs_ref(void) {
    ams_err err = {0};
    const ams_backend *cpu = ams_backend_by_name("cpu", 0, &err), *ref = ams_backend_ref();
    CHECKF(cpu, "%s", err.msg);
    for (int os = 8; os <= 16; os += 8) {
        net t;
        ams_rng_seed(&rng, 40 + (uint64_t)os);
        if (net_make(&t, os, 2, 23, 19, 3)) return 1;
        int64_t shp[8];
        int nd = ams_graph_shape(t.g, t.out, shp);
        size_t nl = 1, np = t.p->total;
        for (int i = 0; i < nd; i++) nl *= (size_t)shp[i];
        CHECK(nd == 4 && shp[3] == 5);
        CHECK(step(&t, ref) == 0);
        CHECK(ams_graph_value(t.g, t.out) != NULL);
        float *lr = dup(ams_graph_value(t.g, t.out), nl), *gr = dup(t.p->grads, np);
        float loss_r = *ams_graph_value(t.g, t.loss);
        CHECK(step(&t, cpu) == 0);
        const float *lc = ams_graph_value(t.g, t.out);
        float loss_c = *ams_graph_value(t.g, t.loss);
        double el = check_rel_l2(lc, lr, nl), eg = check_rel_l2(t.p->grads, gr, np);
        double eloss = fabs((double)loss_c - loss_r) / fabs((double)loss_r);
        /* every tensor's gradient on its own scale */
        double worst = 0;
        const char *wname = "";
        for (int i = 0; i < t.p->count; i++) {
            const ams_param_info *pi = &t.p->info[i];
            if (!pi->trainable) continue;
            double e = check_rel_l2(t.p->grads + pi->offset, gr + pi->offset, (size_t)pi->numel);
            if (e > worst) worst = e, wname = pi->name;
        }
        free(lr), free(gr);
        net_free(&t);
        CHECKF(el < 1e-4 && eloss < 1e-5, "OS %d logits rel %.3g loss rel %.3g", os, el, eloss);
        CHECKF(eg < 1e-4 && worst < 1e-3, "OS %d grads rel %.3g, worst %s %.3g", os, eg, wname, worst);
    }
    ams_backend_free(cpu);
    return 0;
}

/* After a warm-up step, further identical steps allocate nothing of the backend's and
 * leave the heap's in-use bytes where they were (oneDNN frees what it takes per call). */
static int test_no_steady_state_allocation(void) {
    ams_err err = {0};
    const ams_backend *cpu = ams_backend_by_name("cpu", 2, &err);
    CHECKF(cpu, "%s", err.msg);
    net t;
    ams_rng_seed(&rng, 5);
    if (net_make(&t, 16, 2, 21, 17, 4)) return 1;
    CHECK(step(&t, cpu) == 0);
    CHECK(step(&t, cpu) == 0); /* the runtimes' own lazy set-up (thread teams) settles */
    size_t a0 = ams_cpu_alloc_count(cpu);
    CHECK(a0 > 0);
    struct mallinfo2 m0 = mallinfo2();
    for (int i = 0; i < 3; i++) CHECK(step(&t, cpu) == 0);
    struct mallinfo2 m1 = mallinfo2();
    CHECKF(ams_cpu_alloc_count(cpu) == a0, "%zu allocations after warm-up",
           ams_cpu_alloc_count(cpu) - a0);
#if !defined(__SANITIZE_ADDRESS__) /* ASan's allocator does not report to mallinfo2 */
    CHECKF(m1.uordblks + m1.hblkhd == m0.uordblks + m0.hblkhd, "heap in use %zu -> %zu",
           m0.uordblks + m0.hblkhd, m1.uordblks + m1.hblkhd);
#else
    (void)m0, (void)m1;
#endif
    net_free(&t);
    ams_backend_free(cpu);
    return 0;
}

static int test_selection(void) {
    ams_err err = {0};
    CHECK(ams_backend_by_name("ref", 3, &err) == ams_backend_ref());
    CHECK(ams_backend_threads(ams_backend_ref()) == 1);
    const ams_backend *be = ams_backend_by_name(NULL, 3, &err);
    CHECK(be && !strcmp(be->name, "cpu") && ams_backend_threads(be) >= 1);
    ams_backend_free(be);
    CHECK(ams_backend_by_name("gpu", 1, &err) == NULL && err.code == AMS_E_INVAL);
    CHECK(strstr(err.msg, "gpu") != NULL);
    const ams_backend *out = NULL;
    CHECK(ams_backend_cpu_create(-1, &out, &err) == AMS_E_RANGE && out == NULL);
    ams_backend_free(ams_backend_ref()); /* ignored */
    ams_backend_free(NULL);
    return 0;
}

int main(int argc, char **argv) {
    ams_rng_seed(&rng, 1234);
    /* threaded paths from 4096 floats of work on (the default is higher), so that the test
     * shapes exercise them */
    setenv("AMS_CPU_MIN_PARALLEL", "4096", 1);
    static const check_case cases[] = {
        {"selection", test_selection},
        {"conv_fixed_shapes", test_conv_fixed_shapes},
        {"conv_random_shapes", test_conv_random_shapes},
        {"conv_weight_slots", test_conv_weight_slots},
        {"depthwise_backward", test_depthwise_backward},
        {"pointwise", test_pointwise},
        {"elementwise", test_elementwise},
        {"resize", test_resize},
        {"softmax_ce", test_softmax_ce},
        {"deeplab_cpu_vs_ref", test_deeplab_cpu_vs_ref},
        {"no_steady_state_allocation", test_no_steady_state_allocation},
    };
    return check_run(cases, sizeof cases / sizeof cases[0], argc, argv);
}
