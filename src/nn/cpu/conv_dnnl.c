/* conv_dnnl.c - convolutions of the CPU backend through oneDNN, NHWC in place.
 *
 * One cache entry per (descriptor, has-bias): up to three oneDNN primitives made the
 * first time each direction is needed (forward, backward-data, backward-weights), the
 * reorders from our HWIO weights to the layout each primitive wants, and buffers.
 * Activations stay NHWC (oneDNN's nhwc tag), so nothing big is ever reordered.
 * The transposed convolution is the same primitives with roles swapped (kernels.h).
 * oneDNN overwrites its outputs, our backward kernels accumulate: data gradients go
 * through a scratch buffer and an add, weight gradients through a reorder with a sum
 * post-op. Anything oneDNN cannot set up falls back to the reference kernel.
 */
#include "nn/cpu/cpu_backend.h"
#include "nn/ref/ref_kernels.h"

#include <stdlib.h>
#include <string.h>

/* A conv small enough for the plain loops (conv_small.c): its whole backward. */
static int small_backward(const ams_backend *be, float *din, float *dweight, float *dbias,
                          const float *dout, const float *in, const float *weight,
                          const ams_conv2d_desc *d) {
    if (!ams_cpu_conv_small(d)) return 0;
    if ((dweight || dbias) && !ams_cpu_conv_wgrad(be, dweight, dbias, in, dout, d)) {
        if (dweight) return 0;
        ams_cpu_bias_grad(be, dbias, dout, (int64_t)d->n * d->oh * d->ow, d->oc);
    }
    if (din) ams_cpu_conv_small_backward_data(din, dout, weight, d);
    return 1;
}

/* out[i] = act(out[i]) * scale on the calling thread (the paths without a fused epilogue;
 * kernels.h: the scale goes with an activation). */
static void apply_act(float *out, int64_t n, int act, float scale) {
    if (act == AMS_CONV_ACT_RELU)
        for (int64_t i = 0; i < n; i++) out[i] = (out[i] > 0.0f ? out[i] : 0.0f) * scale;
    else if (act == AMS_CONV_ACT_RELU6)
        for (int64_t i = 0; i < n; i++)
            out[i] = (out[i] > 0.0f ? (out[i] < 6.0f ? out[i] : 6.0f) : 0.0f) * scale;
    else if (act == AMS_CONV_ACT_HSWISH)
        for (int64_t i = 0; i < n; i++) {
            float t = out[i] + 3.0f;
            t = t > 0.0f ? (t < 6.0f ? t : 6.0f) : 0.0f;
            out[i] = out[i] * (scale / 6.0f) * t;
        }
}

static int64_t out_numel(const ams_conv2d_desc *d) { return (int64_t)d->n * d->oh * d->ow * d->oc; }

/* out[i] += addend[i] (the paths without a fused binary post-op). */
static void add_addend(const ams_backend *be, float *out, const float *addend,
                       const ams_conv2d_desc *d) {
    if (addend) ams_cpu_add_into(be, out, addend, out_numel(d));
}

#ifdef AMS_HAVE_DNNL
#include <oneapi/dnnl/dnnl.h>

/* Pointwise convs whose GEMM (conv_pointwise.c) is narrow: ours then (tiles in registers,
 * the epilogue and accumulation in the same pass); wider ones go to oneDNN, faster there
 * (measured per DeepLab / selfie shape, batch 1 and 8, two threads: ours 0.5-0.8x oneDNN's
 * time up to 64 output channels, 1.1-1.3x above). On one thread (a training replica) ours
 * stays ahead up to 128 (the selfie's 16->72, 24->88, 24->96 at batch 5: forward 0.67 ->
 * 0.36 ms, backward 0.91 -> 0.67 ms for the first; neutral at 128). n: the output channels
 * of the GEMM (oc forward, c for the data gradient). */
static int pw_ours(const ams_backend *be, const ams_conv2d_desc *d, int n) {
    static int avx512 = -1;
    if (avx512 < 0) avx512 = ams_cpu_pw_available();
    int most = ((const ams_cpu_state *)be->state)->threads == 1 ? 128 : 64;
    return avx512 && n <= most && ams_cpu_conv_pointwise(d);
}

/* Weight tensors whose reordered forward copy an entry keeps (selfie inference: convs of
 * the same shape, each reordered every call when there was one copy, 19 reorders a frame). */
#define W_SLOTS 4

/* One primitive and its argument memories (created once, handles set per call). */
typedef struct prim {
    dnnl_primitive_t p;
    int nargs;
    dnnl_exec_arg_t args[8];
} prim;

typedef struct conv_entry {
    ams_conv2d_desc d;
    int has_bias;
    int act;           /* AMS_CONV_ACT_*: an eltwise post-op of the forward primitive */
    float act_scale;   /* the post-op's scale */
    int has_addend;    /* a binary add post-op (a residual) after the activation */
    int threads;       /* 1 for convs too small to pay for a parallel region */
    int bad_fwd, bad_bwd_d, bad_bwd_w; /* setup failed: use the reference kernel */
    dnnl_primitive_desc_t fwd_pd;
    prim fwd, fwd_wre;   /* conv forward; weights reorder user -> its layout (p may be NULL) */
    prim bwd_d, bwd_d_wre;
    prim bwd_w, bwd_w_dwre; /* backward weights; reorder its dweight -> user HWIO with += */
    float *w_bwd_d, *dw_tmp;
    /* forward weights in the primitive's layout, for up to W_SLOTS weight tensors (convs
     * of one shape share an entry): w_fwd[k] was reordered from w_seen[k], a copy of the
     * tensor at w_ptr[k] (the reorder is skipped while it is unchanged) */
    float *w_fwd[W_SLOTS], *w_seen[W_SLOTS];
    const float *w_ptr[W_SLOTS];
    int w_valid[W_SLOTS];
    int w_next;        /* the slot a new weight tensor takes (round robin) */
    size_t w_user_bytes, w_fwd_bytes;
} conv_entry;

struct cpu_conv_cache {
    dnnl_engine_t eng;
    dnnl_stream_t stream;
    int bad;                 /* engine could not be created */
    conv_entry **e;
    size_t n, cap;
    void *scratchpad;        /* oneDNN's scratch, shared by every primitive */
    size_t scratchpad_size;
    float *tmp;              /* data-gradient scratch, shared */
    size_t tmp_len;
};

static ams_cpu_state *state(const ams_backend *be) { return (ams_cpu_state *)be->state; }

static cpu_conv_cache *cache(ams_cpu_state *st) {
    if (st->conv) return st->conv;
    cpu_conv_cache *c = ams_cpu_alloc(st, sizeof *c);
    if (!c) return NULL;
    memset(c, 0, sizeof *c);
    if (dnnl_engine_create(&c->eng, dnnl_cpu, 0) != dnnl_success ||
        dnnl_stream_create(&c->stream, c->eng, dnnl_stream_default_flags) != dnnl_success)
        c->bad = 1;
    st->conv = c;
    return c;
}

static conv_entry *find_entry(ams_cpu_state *st, cpu_conv_cache *c, const ams_conv2d_desc *d,
                              int has_bias, int act, float act_scale, int has_addend) {
    for (size_t i = 0; i < c->n; i++)
        if (c->e[i]->has_bias == has_bias && c->e[i]->act == act &&
            c->e[i]->has_addend == has_addend &&
            !memcmp(&c->e[i]->act_scale, &act_scale, sizeof act_scale) &&
            !memcmp(&c->e[i]->d, d, sizeof *d))
            return c->e[i];
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        conv_entry **ne = ams_cpu_alloc(st, cap * sizeof *ne);
        if (!ne) return NULL;
        if (c->n) memcpy(ne, c->e, c->n * sizeof *ne);
        free(c->e);
        c->e = ne;
        c->cap = cap;
    }
    conv_entry *e = ams_cpu_alloc(st, sizeof *e);
    if (!e) return NULL;
    memset(e, 0, sizeof *e);
    e->d = *d;
    e->has_bias = has_bias;
    e->act = act;
    e->act_scale = act_scale;
    e->has_addend = has_addend;
    double macs = (double)d->n * d->oh * d->ow * d->oc * d->kh * d->kw * (d->c / d->groups);
    /* under ~4 M multiply-adds (~50 us on one core) a conv runs on the calling thread: waking
     * the sleeping pool and its barrier cost more (selfie batch-1 inference, loaded 2-core
     * machine: 1.65-1.75 ms/frame at 4e6 vs 2.2-2.35 at the former 2e5; 1e6: 1.8-1.9) */
    e->threads = macs < 4e6 ? 1 : st->threads;
    /* dense convs over few input channels (the RGB input conv, 27 inputs an output) gain
     * nothing from a second thread below 16 M: the selfie's 5.3 M took 0.105 ms on one,
     * 0.109 on two, and the wake-up before it costs the frame more (1.29 vs 1.40 ms) */
    if (d->groups == 1 && d->c <= 4 && macs < 16e6) e->threads = 1;
    c->e[c->n++] = e;
    return e;
}

/* Memory descriptors of our tensors: NHWC data (logical NCHW dims) and HWIO weights. */
static int md_nhwc(dnnl_memory_desc_t *md, int n, int c, int h, int w) {
    dnnl_dims_t dims = {n, c, h, w};
    return dnnl_memory_desc_init_by_tag(md, 4, dims, dnnl_f32, dnnl_nhwc) == dnnl_success;
}
static int md_weights(dnnl_memory_desc_t *md, const ams_conv2d_desc *d, int any) {
    int g = d->groups, cpg = d->c / g, opg = d->oc / g;
    if (g == 1) {
        dnnl_dims_t dims = {d->oc, d->c, d->kh, d->kw};
        return dnnl_memory_desc_init_by_tag(md, 4, dims, dnnl_f32,
                                            any ? dnnl_format_tag_any : dnnl_hwio) == dnnl_success;
    }
    dnnl_dims_t dims = {g, opg, cpg, d->kh, d->kw};
    return dnnl_memory_desc_init_by_tag(md, 5, dims, dnnl_f32,
                                        any ? dnnl_format_tag_any : dnnl_hwigo) == dnnl_success;
}

static int make_mem(cpu_conv_cache *c, prim *p, int arg, const dnnl_memory_desc_t *md) {
    dnnl_memory_t m;
    if (dnnl_memory_create(&m, md, c->eng, DNNL_MEMORY_NONE) != dnnl_success) return 0;
    p->args[p->nargs].arg = arg;
    p->args[p->nargs].memory = m;
    p->nargs++;
    return 1;
}

/* Creates p from pd with memories for the listed args (queried from pd) + scratchpad. */
static int make_prim(ams_cpu_state *st, cpu_conv_cache *c, prim *p, dnnl_primitive_desc_t pd,
                     const int *args, int nargs) {
    for (int i = 0; i < nargs; i++) {
        const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, args[i]);
        if (!md || !make_mem(c, p, args[i], md)) return 0;
    }
    const dnnl_memory_desc_t *smd = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    size_t ss = smd ? dnnl_memory_desc_get_size(smd) : 0;
    if (ss) {
        if (ss > c->scratchpad_size) {
            void *s = ams_cpu_alloc(st, ss);
            if (!s) return 0;
            free(c->scratchpad);
            c->scratchpad = s;
            c->scratchpad_size = ss;
        }
        if (!make_mem(c, p, DNNL_ARG_SCRATCHPAD, smd)) return 0;
    }
    return dnnl_primitive_create(&p->p, pd) == dnnl_success;
}

/* Runs p with ptrs[i] bound to its i-th listed arg (the scratchpad is bound last) on
 * `threads` threads. */
static void run(int threads, cpu_conv_cache *c, prim *p, void *const *ptrs) {
    for (int i = 0; i < p->nargs; i++) {
        void *h = p->args[i].arg == DNNL_ARG_SCRATCHPAD ? c->scratchpad : ptrs[i];
        dnnl_memory_set_data_handle(p->args[i].memory, h);
    }
    ams_cpu_set_threads(threads);
    dnnl_primitive_execute(p->p, c->stream, p->nargs, p->args);
    dnnl_stream_wait(c->stream);
}

static dnnl_primitive_attr_t user_scratch_attr(void) {
    dnnl_primitive_attr_t a = NULL;
    if (dnnl_primitive_attr_create(&a) != dnnl_success) return NULL;
    dnnl_primitive_attr_set_scratchpad_mode(a, dnnl_scratchpad_mode_user);
    return a;
}

/* A reorder src_md -> dst_md (with dst += src when sum is set) into p; a buffer for the
 * reordered tensor is made when out_buf is given. Returns 0 on failure. */
static int make_reorder(ams_cpu_state *st, cpu_conv_cache *c, prim *p,
                        const dnnl_memory_desc_t *src, const dnnl_memory_desc_t *dst, int sum,
                        float **out_buf) {
    dnnl_primitive_attr_t a = user_scratch_attr();
    if (!a) return 0;
    dnnl_post_ops_t po = NULL;
    if (sum) {
        dnnl_post_ops_create(&po);
        dnnl_post_ops_append_sum(po, 1.0f);
        dnnl_primitive_attr_set_post_ops(a, po);
    }
    dnnl_primitive_desc_t pd = NULL;
    int ok = dnnl_reorder_primitive_desc_create(&pd, src, c->eng, dst, c->eng, a) == dnnl_success;
    static const int args[] = {DNNL_ARG_FROM, DNNL_ARG_TO};
    ok = ok && make_prim(st, c, p, pd, args, 2);
    if (ok && out_buf) {
        *out_buf = ams_cpu_alloc(st, dnnl_memory_desc_get_size(dst));
        ok = *out_buf != NULL;
    }
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (po) dnnl_post_ops_destroy(po);
    dnnl_primitive_attr_destroy(a);
    return ok;
}

/* The geometry of a descriptor in oneDNN's terms (dilation counts the gaps: d - 1). */
typedef struct geom {
    dnnl_memory_desc_t src, dst, wuser, wany, bias;
    dnnl_dims_t strides, dil, pl, pr;
} geom;

static int make_geom(geom *g, const ams_conv2d_desc *d) {
    memset(g, 0, sizeof *g);
    g->strides[0] = d->stride_h, g->strides[1] = d->stride_w;
    g->dil[0] = d->dil_h - 1, g->dil[1] = d->dil_w - 1;
    g->pl[0] = d->pad_t, g->pl[1] = d->pad_l;
    g->pr[0] = d->pad_b, g->pr[1] = d->pad_r;
    dnnl_dims_t bd = {d->oc};
    return md_nhwc(&g->src, d->n, d->c, d->h, d->w) && md_nhwc(&g->dst, d->n, d->oc, d->oh, d->ow) &&
           md_weights(&g->wuser, d, 0) && md_weights(&g->wany, d, 1) &&
           dnnl_memory_desc_init_by_tag(&g->bias, 1, bd, dnnl_f32, dnnl_a) == dnnl_success;
}

/* Forward primitive (+ the weights reorder when its layout is not ours). */
static int setup_fwd(ams_cpu_state *st, cpu_conv_cache *c, conv_entry *e) {
    geom g;
    dnnl_convolution_desc_t cd;
    if (!make_geom(&g, &e->d) ||
        dnnl_dilated_convolution_forward_desc_init(&cd, dnnl_forward_training, dnnl_convolution_direct,
                                                   &g.src, &g.wany, e->has_bias ? &g.bias : NULL, &g.dst,
                                                   g.strides, g.dil, g.pl, g.pr) != dnnl_success)
        return 0;
    dnnl_primitive_attr_t a = user_scratch_attr();
    if (!a) return 0;
    dnnl_post_ops_t po = NULL;
    int npo = 0; /* post-ops appended */
    if (e->act != AMS_CONV_ACT_NONE || e->has_addend) {
        /* relu = max(x, 0); relu6 = clip(x, 0, 6); hardswish = x * relu6(x + 3) / 6; then
         * the addend as a binary add of a tensor shaped like dst */
        dnnl_alg_kind_t alg = e->act == AMS_CONV_ACT_RELU    ? dnnl_eltwise_relu
                              : e->act == AMS_CONV_ACT_RELU6 ? dnnl_eltwise_clip
                                                             : dnnl_eltwise_hardswish;
        int ok = dnnl_post_ops_create(&po) == dnnl_success;
        if (ok && e->act != AMS_CONV_ACT_NONE) {
            ok = dnnl_post_ops_append_eltwise(po, e->act_scale, alg, 0.0f,
                                              e->act == AMS_CONV_ACT_RELU6 ? 6.0f : 0.0f) ==
                 dnnl_success;
            npo++;
        }
        if (ok && e->has_addend)
            ok = dnnl_post_ops_append_binary(po, dnnl_binary_add, &g.dst) == dnnl_success;
        ok = ok && dnnl_primitive_attr_set_post_ops(a, po) == dnnl_success;
        if (!ok) {
            if (po) dnnl_post_ops_destroy(po);
            dnnl_primitive_attr_destroy(a);
            return 0;
        }
    }
    int ok = dnnl_primitive_desc_create(&e->fwd_pd, &cd, a, c->eng, NULL) == dnnl_success;
    if (po) dnnl_post_ops_destroy(po);
    dnnl_primitive_attr_destroy(a);
    if (!ok) return 0;
    int args_b[5] = {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST, DNNL_ARG_BIAS}, nargs = 3;
    if (e->has_bias) nargs++;
    if (e->has_addend) args_b[nargs++] = DNNL_ARG_ATTR_MULTIPLE_POST_OP(npo) | DNNL_ARG_SRC_1;
    if (!make_prim(st, c, &e->fwd, e->fwd_pd, args_b, nargs)) return 0;
    const dnnl_memory_desc_t *wmd = dnnl_primitive_desc_query_md(e->fwd_pd, dnnl_query_weights_md, 0);
    if (dnnl_memory_desc_equal(wmd, &g.wuser)) return 1;
    e->w_user_bytes = dnnl_memory_desc_get_size(&g.wuser);
    e->w_fwd_bytes = dnnl_memory_desc_get_size(wmd);
    e->w_seen[0] = ams_cpu_alloc(st, e->w_user_bytes);
    return e->w_seen[0] && make_reorder(st, c, &e->fwd_wre, &g.wuser, wmd, 0, &e->w_fwd[0]);
}

static int ensure_fwd(ams_cpu_state *st, cpu_conv_cache *c, conv_entry *e) {
    if (e->bad_fwd) return 0;
    if (!e->fwd.p && !setup_fwd(st, c, e)) e->bad_fwd = 1;
    return !e->bad_fwd;
}

static int ensure_tmp(ams_cpu_state *st, cpu_conv_cache *c, size_t n) {
    if (n <= c->tmp_len) return 1;
    float *t = ams_cpu_alloc(st, n * sizeof(float));
    if (!t) return 0;
    free(c->tmp);
    c->tmp = t;
    c->tmp_len = n;
    return 1;
}

static int setup_bwd_d(ams_cpu_state *st, cpu_conv_cache *c, conv_entry *e) {
    geom g;
    dnnl_convolution_desc_t cd;
    if (!ensure_fwd(st, c, e) || !make_geom(&g, &e->d) ||
        dnnl_dilated_convolution_backward_data_desc_init(&cd, dnnl_convolution_direct, &g.src, &g.wany,
                                                         &g.dst, g.strides, g.dil, g.pl,
                                                         g.pr) != dnnl_success)
        return 0;
    dnnl_primitive_attr_t a = user_scratch_attr();
    if (!a) return 0;
    dnnl_primitive_desc_t pd = NULL;
    int ok = dnnl_primitive_desc_create(&pd, &cd, a, c->eng, e->fwd_pd) == dnnl_success;
    dnnl_primitive_attr_destroy(a);
    static const int args[] = {DNNL_ARG_DIFF_DST, DNNL_ARG_WEIGHTS, DNNL_ARG_DIFF_SRC};
    ok = ok && make_prim(st, c, &e->bwd_d, pd, args, 3);
    if (ok) {
        const dnnl_memory_desc_t *wmd = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
        if (!dnnl_memory_desc_equal(wmd, &g.wuser))
            ok = make_reorder(st, c, &e->bwd_d_wre, &g.wuser, wmd, 0, &e->w_bwd_d);
    }
    /* room for a whole data gradient of either role (conv din, transposed din) */
    size_t big = (size_t)e->d.n * (size_t)e->d.h * (size_t)e->d.w * (size_t)e->d.c;
    size_t big2 = (size_t)e->d.n * (size_t)e->d.oh * (size_t)e->d.ow * (size_t)e->d.oc;
    ok = ok && ensure_tmp(st, c, big > big2 ? big : big2);
    if (pd) dnnl_primitive_desc_destroy(pd);
    return ok;
}

static int setup_bwd_w(ams_cpu_state *st, cpu_conv_cache *c, conv_entry *e) {
    geom g;
    dnnl_convolution_desc_t cd;
    if (!ensure_fwd(st, c, e) || !make_geom(&g, &e->d) ||
        dnnl_dilated_convolution_backward_weights_desc_init(&cd, dnnl_convolution_direct, &g.src,
                                                            &g.wany, NULL, &g.dst, g.strides, g.dil,
                                                            g.pl, g.pr) != dnnl_success)
        return 0;
    dnnl_primitive_attr_t a = user_scratch_attr();
    if (!a) return 0;
    dnnl_primitive_desc_t pd = NULL;
    int ok = dnnl_primitive_desc_create(&pd, &cd, a, c->eng, e->fwd_pd) == dnnl_success;
    dnnl_primitive_attr_destroy(a);
    static const int args[] = {DNNL_ARG_SRC, DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_WEIGHTS};
    ok = ok && make_prim(st, c, &e->bwd_w, pd, args, 3);
    if (ok) {
        const dnnl_memory_desc_t *wmd = dnnl_primitive_desc_query_md(pd, dnnl_query_diff_weights_md, 0);
        e->dw_tmp = ams_cpu_alloc(st, dnnl_memory_desc_get_size(wmd));
        ok = e->dw_tmp && make_reorder(st, c, &e->bwd_w_dwre, wmd, &g.wuser, 1, NULL);
    }
    if (pd) dnnl_primitive_desc_destroy(pd);
    return ok;
}

/* The entry for d, or NULL when oneDNN cannot serve it (the caller uses the ref kernel). */
static conv_entry *entry_act(const ams_backend *be, const ams_conv2d_desc *d, int has_bias,
                             int act, float act_scale, int has_addend) {
    ams_cpu_state *st = state(be);
    if (d->n <= 0 || d->oh <= 0 || d->ow <= 0 || d->h <= 0 || d->w <= 0) return NULL;
    cpu_conv_cache *c = cache(st);
    if (!c || c->bad) return NULL;
    return find_entry(st, c, d, has_bias, act, act_scale, has_addend);
}

static conv_entry *entry(const ams_backend *be, const ams_conv2d_desc *d, int has_bias) {
    return entry_act(be, d, has_bias, AMS_CONV_ACT_NONE, 1.0f, 0);
}

/* Weights in the layout of primitive p: reordered into buf (one thread: weights are small),
 * or ours as they are. */
static const float *weights_for(int threads, cpu_conv_cache *c, prim *wre, float *buf,
                                const float *w) {
    if (!wre->p) return w;
    void *ptrs[] = {(void *)w, buf};
    run(threads, c, wre, ptrs);
    return buf;
}

static void conv_fwd_into(const ams_backend *be, conv_entry *e, float *out, const float *in,
                          const float *weight, const float *bias, const float *addend) {
    ams_cpu_state *st = state(be);
    cpu_conv_cache *c = st->conv;
    const float *w = weight;
    if (e->fwd_wre.p) {
        /* inference reuses the same weights frame after frame: comparing them with the copy
         * made at the last reorder (a fast read) beats reordering them again (10 % of an
         * OS16 inference); any changed bit reorders. One slot per weight tensor (by
         * address), up to W_SLOTS; slot 0 always exists (the fallback if an allocation
         * fails). */
        int k = -1;
        for (int i = 0; i < W_SLOTS && k < 0; i++)
            if (e->w_seen[i] && e->w_ptr[i] == weight) k = i;
        if (k < 0) {
            k = e->w_next;
            e->w_next = (e->w_next + 1) % W_SLOTS;
            if (!e->w_seen[k]) {
                e->w_seen[k] = ams_cpu_alloc(st, e->w_user_bytes);
                e->w_fwd[k] = e->w_seen[k] ? ams_cpu_alloc(st, e->w_fwd_bytes) : NULL;
                if (!e->w_fwd[k]) {
                    free(e->w_seen[k]);
                    e->w_seen[k] = NULL;
                    k = 0;
                }
            }
            e->w_valid[k] = 0;
            e->w_ptr[k] = weight;
        }
        if (!e->w_valid[k] || memcmp(e->w_seen[k], weight, e->w_user_bytes) != 0) {
            weights_for(1, c, &e->fwd_wre, e->w_fwd[k], weight);
            memcpy(e->w_seen[k], weight, e->w_user_bytes);
            e->w_valid[k] = 1;
        }
        w = e->w_fwd[k];
    }
    void *ptrs[] = {(void *)in, (void *)w, out, bias ? (void *)bias : (void *)addend,
                    (void *)addend};
    run(e->threads, c, &e->fwd, ptrs);
}

static void conv_bwd_d_into(const ams_backend *be, conv_entry *e, float *din, const float *dout,
                            const float *weight) {
    ams_cpu_state *st = state(be);
    cpu_conv_cache *c = st->conv;
    const float *w = weights_for(1, c, &e->bwd_d_wre, e->w_bwd_d, weight);
    void *ptrs[] = {(void *)dout, (void *)w, din};
    run(e->threads, c, &e->bwd_d, ptrs);
}

/* dweight += weight gradient of the forward conv with input x and output gradient dy. */
static void conv_bwd_w_acc(const ams_backend *be, conv_entry *e, float *dweight, const float *x,
                           const float *dy) {
    ams_cpu_state *st = state(be);
    cpu_conv_cache *c = st->conv;
    void *ptrs[] = {(void *)x, (void *)dy, e->dw_tmp};
    run(e->threads, c, &e->bwd_w, ptrs);
    void *rptrs[] = {e->dw_tmp, dweight};
    run(1, c, &e->bwd_w_dwre, rptrs); /* weight-sized: a parallel region costs more */
}

void ams_cpu_conv2d_forward(const ams_backend *be, float *out, const float *in, const float *weight,
                            const float *bias, const ams_conv2d_desc *d) {
    if (ams_cpu_conv_small(d)) {
        ams_cpu_conv_small_forward(out, in, weight, bias, d);
        return;
    }
    if (pw_ours(be, d, d->oc) && ams_cpu_pw_forward(be, out, in, weight, bias, d, AMS_CONV_ACT_NONE, 1.0f, NULL))
        return;
    conv_entry *e = entry(be, d, bias != NULL);
    if (!e || !ensure_fwd(state(be), state(be)->conv, e)) {
        ams_ref_conv2d_forward(be, out, in, weight, bias, d);
        return;
    }
    conv_fwd_into(be, e, out, in, weight, bias, NULL);
}

/* The forward with the activation as oneDNN's eltwise post-op (one pass over out). */
void ams_cpu_conv2d_forward_act(const ams_backend *be, float *out, const float *in,
                                const float *weight, const float *bias, const ams_conv2d_desc *d,
                                int act, float act_scale, const float *addend) {
    if (act == AMS_CONV_ACT_NONE && !addend) {
        ams_cpu_conv2d_forward(be, out, in, weight, bias, d);
        return;
    }
    if (ams_cpu_conv_small(d)) {
        ams_cpu_conv_small_forward(out, in, weight, bias, d);
        apply_act(out, out_numel(d), act, act_scale);
        add_addend(be, out, addend, d);
        return;
    }
    if (pw_ours(be, d, d->oc) && ams_cpu_pw_forward(be, out, in, weight, bias, d, act, act_scale, addend))
        return;
    conv_entry *e = entry_act(be, d, bias != NULL, act, act_scale, addend != NULL);
    if (!e || !ensure_fwd(state(be), state(be)->conv, e)) {
        if (addend) { /* oneDNN without the binary post-op: the conv, then the add */
            ams_cpu_conv2d_forward_act(be, out, in, weight, bias, d, act, act_scale, NULL);
            add_addend(be, out, addend, d);
            return;
        }
        ams_ref_conv2d_forward(be, out, in, weight, bias, d);
        apply_act(out, out_numel(d), act, act_scale);
        return;
    }
    conv_fwd_into(be, e, out, in, weight, bias, addend);
}

/* din, dweight: oneDNN when it can; each falls back to the reference kernel alone. With
 * set, din is overwritten (oneDNN writes it directly) instead of accumulated into. With
 * relu_of, the kernels of ours that write din apply its select (kernels.h
 * conv2d_backward_relu) as they do: returns 1 when one did, else 0 (conv_backward then
 * applies it in a pass of its own). */
static int conv_backward_body(const ams_backend *be, int set, float *din, const float *relu_of,
                              float *dweight, float *dbias, const float *dout, const float *in,
                              const float *weight, const ams_conv2d_desc *d) {
    ams_cpu_state *st = state(be);
    size_t nin = (size_t)d->n * (size_t)d->h * (size_t)d->w * (size_t)d->c;
    /* depthwise 3x3 and 5x5 at stride 1 and 3x3 at stride 2, undilated: ours, all gradients
     * in one pass over dout (conv_dw_bwd.c: faster than oneDNN's data gradient, the add after
     * it and its weight gradient, a generic kernel for 5x5) */
    int s = d->stride_h;
    if (d->kh == d->kw && d->stride_w == s && ((s == 1 && (d->kh == 3 || d->kh == 5)) ||
                                               (s == 2 && d->kh == 3)) &&
        d->dil_h == 1 && d->dil_w == 1 && !ams_cpu_conv_small(d) &&
        ams_cpu_dw_backward(be, set, din, relu_of, dweight, dbias, dout, in, weight, d))
        return 1;
    if (set && din && (ams_cpu_conv_small(d) || !entry(be, d, 0))) {
        memset(din, 0, nin * sizeof *din); /* the accumulating paths below */
        set = 0;
    }
    if (small_backward(be, din, dweight, dbias, dout, in, weight, d)) return 0;
    conv_entry *e = entry(be, d, 0);
    int64_t opix = (int64_t)d->n * d->oh * d->ow;
    if (!e) {
        ams_ref_conv2d_backward(be, din, dweight, dbias, dout, in, weight, d);
        return 0;
    }
    /* our weight gradient takes the bias gradient along (one pass over dout) */
    if ((dweight || dbias) && ams_cpu_conv_wgrad(be, dweight, dbias, in, dout, d))
        dweight = dbias = NULL;
    if (dbias) ams_cpu_bias_grad(be, dbias, dout, opix, d->oc);
    int masked = 0;
    if (din && pw_ours(be, d, d->c) &&
        ams_cpu_pw_backward_data(be, set, din, relu_of, dout, weight, d))
        din = NULL, masked = 1;
    if (din) {
        if (!e->bad_bwd_d && !e->bwd_d.p && !setup_bwd_d(st, st->conv, e)) e->bad_bwd_d = 1;
        if (e->bad_bwd_d) {
            if (set) memset(din, 0, nin * sizeof *din);
            ams_ref_conv2d_backward(be, din, NULL, NULL, dout, in, weight, d);
        } else if (set) {
            conv_bwd_d_into(be, e, din, dout, weight);
        } else {
            float *tmp = st->conv->tmp;
            conv_bwd_d_into(be, e, tmp, dout, weight);
            ams_cpu_add_into(be, din, tmp, (int64_t)nin);
        }
    }
    if (dweight) {
        if (!e->bad_bwd_w && !e->bwd_w.p && !setup_bwd_w(st, st->conv, e)) e->bad_bwd_w = 1;
        if (e->bad_bwd_w) ams_ref_conv2d_backward(be, NULL, dweight, NULL, dout, in, weight, d);
        else conv_bwd_w_acc(be, e, dweight, in, dout);
    }
    return masked;
}

/* Transposed forward = backward-data of the conv (out fully overwritten), then bias; tiling
 * windows with oc % 16 == 0 run our own kernel. */
void ams_cpu_conv2d_transpose_forward(const ams_backend *be, float *out, const float *in,
                                      const float *weight, const float *bias,
                                      const ams_conv2d_desc *d) {
    if (ams_cpu_conv_tiled(d) && d->oc % 16 == 0) { /* ours: 2-3x oneDNN's (conv_transpose_tiled.c) */
        ams_cpu_conv_tiled_forward(be, out, in, weight, bias, d);
        return;
    }
    ams_cpu_state *st = state(be);
    conv_entry *e = entry(be, d, 0);
    if (e && !e->bad_bwd_d && !e->bwd_d.p && !setup_bwd_d(st, st->conv, e)) e->bad_bwd_d = 1;
    if (!e || e->bad_bwd_d) {
        ams_ref_conv2d_transpose_forward(be, out, in, weight, bias, d);
        return;
    }
    conv_bwd_d_into(be, e, out, in, weight);
    if (bias) {
        int64_t pix = (int64_t)d->n * d->h * d->w;
        for (int64_t p = 0; p < pix; p++)
            for (int k = 0; k < d->c; k++) out[p * d->c + k] += bias[k];
    }
}

/* Transposed backward: din += conv forward(dout); dweight with the roles swapped. */
void ams_cpu_conv2d_transpose_backward(const ams_backend *be, float *din, float *dweight,
                                       float *dbias, const float *dout, const float *in,
                                       const float *weight, const ams_conv2d_desc *d) {
    ams_cpu_state *st = state(be);
    if (ams_cpu_conv_tiled(d) &&
        ams_cpu_conv_tiled_backward(be, 0, din, dweight, dbias, dout, in, weight, d))
        return;
    conv_entry *e = entry(be, d, 0);
    if (!e) {
        ams_ref_conv2d_transpose_backward(be, din, dweight, dbias, dout, in, weight, d);
        return;
    }
    if (dbias) ams_cpu_bias_grad(be, dbias, dout, (int64_t)d->n * d->h * d->w, d->c);
    if (din) {
        int ok = ensure_fwd(st, st->conv, e) &&
                 ensure_tmp(st, st->conv, (size_t)d->n * (size_t)d->oh * (size_t)d->ow * (size_t)d->oc);
        if (!ok) {
            ams_ref_conv2d_transpose_backward(be, din, NULL, NULL, dout, in, weight, d);
        } else {
            float *tmp = st->conv->tmp;
            conv_fwd_into(be, e, tmp, dout, weight, NULL, NULL);
            ams_cpu_add_into(be, din, tmp, (int64_t)d->n * d->oh * d->ow * d->oc);
        }
    }
    if (dweight && !ams_cpu_conv_wgrad(be, dweight, NULL, dout, in, d)) {
        if (!e->bad_bwd_w && !e->bwd_w.p && !setup_bwd_w(st, st->conv, e)) e->bad_bwd_w = 1;
        if (e->bad_bwd_w) ams_ref_conv2d_transpose_backward(be, NULL, dweight, NULL, dout, in, weight, d);
        else conv_bwd_w_acc(be, e, dweight, dout, in);
    }
}

static void prim_free(prim *p) {
    for (int i = 0; i < p->nargs; i++) dnnl_memory_destroy(p->args[i].memory);
    if (p->p) dnnl_primitive_destroy(p->p);
}

void ams_cpu_conv_cache_free(ams_cpu_state *st) {
    cpu_conv_cache *c = st->conv;
    if (!c) return;
    for (size_t i = 0; i < c->n; i++) {
        conv_entry *e = c->e[i];
        prim_free(&e->fwd), prim_free(&e->fwd_wre), prim_free(&e->bwd_d);
        prim_free(&e->bwd_d_wre), prim_free(&e->bwd_w), prim_free(&e->bwd_w_dwre);
        if (e->fwd_pd) dnnl_primitive_desc_destroy(e->fwd_pd);
        for (int k = 0; k < W_SLOTS; k++) free(e->w_fwd[k]), free(e->w_seen[k]);
        free(e->w_bwd_d), free(e->dw_tmp), free(e);
    }
    free(c->e);
    free(c->scratchpad);
    free(c->tmp);
    if (c->stream) dnnl_stream_destroy(c->stream);
    if (c->eng) dnnl_engine_destroy(c->eng);
    free(c);
    st->conv = NULL;
}

#else /* no oneDNN: the reference convolutions, but for our own kernels */

/* Without oneDNN our pointwise GEMM takes every pointwise conv the CPU can run it on. */
static int pw_ours(const ams_conv2d_desc *d) {
    static int avx512 = -1;
    if (avx512 < 0) avx512 = ams_cpu_pw_available();
    return avx512 && ams_cpu_conv_pointwise(d);
}

void ams_cpu_conv2d_forward(const ams_backend *be, float *out, const float *in, const float *weight,
                            const float *bias, const ams_conv2d_desc *d) {
    if (ams_cpu_conv_small(d)) ams_cpu_conv_small_forward(out, in, weight, bias, d);
    else if (!pw_ours(d) || !ams_cpu_pw_forward(be, out, in, weight, bias, d, AMS_CONV_ACT_NONE, 1.0f, NULL))
        ams_ref_conv2d_forward(be, out, in, weight, bias, d);
}
void ams_cpu_conv2d_forward_act(const ams_backend *be, float *out, const float *in,
                                const float *weight, const float *bias, const ams_conv2d_desc *d,
                                int act, float act_scale, const float *addend) {
    if (!ams_cpu_conv_small(d) && pw_ours(d) &&
        ams_cpu_pw_forward(be, out, in, weight, bias, d, act, act_scale, addend))
        return;
    ams_cpu_conv2d_forward(be, out, in, weight, bias, d);
    apply_act(out, out_numel(d), act, act_scale);
    add_addend(be, out, addend, d);
}
/* As the oneDNN build's conv_backward_body: returns 1 when relu_of's select was applied. */
static int conv_backward_body(const ams_backend *be, int set, float *din, const float *relu_of,
                              float *dweight, float *dbias, const float *dout, const float *in,
                              const float *weight, const ams_conv2d_desc *d) {
    if (!ams_cpu_conv_small(d) &&
        ams_cpu_dw_backward(be, set, din, relu_of, dweight, dbias, dout, in, weight, d))
        return 1; /* depthwise, ours: conv_dw_bwd.c */
    if (set && din) /* the accumulating paths below */
        memset(din, 0, (size_t)d->n * (size_t)d->h * (size_t)d->w * (size_t)d->c * sizeof *din);
    int masked = 0;
    if (din && !ams_cpu_conv_small(d) && pw_ours(d) &&
        ams_cpu_pw_backward_data(be, 0, din, relu_of, dout, weight, d))
        din = NULL, masked = 1;
    if (small_backward(be, din, dweight, dbias, dout, in, weight, d)) return masked;
    if ((dweight || dbias) && ams_cpu_conv_wgrad(be, dweight, dbias, in, dout, d))
        dweight = dbias = NULL;
    ams_ref_conv2d_backward(be, din, dweight, dbias, dout, in, weight, d);
    return masked;
}
void ams_cpu_conv2d_transpose_forward(const ams_backend *be, float *out, const float *in,
                                      const float *weight, const float *bias,
                                      const ams_conv2d_desc *d) {
    if (ams_cpu_conv_tiled(d)) ams_cpu_conv_tiled_forward(be, out, in, weight, bias, d);
    else ams_ref_conv2d_transpose_forward(be, out, in, weight, bias, d);
}
void ams_cpu_conv2d_transpose_backward(const ams_backend *be, float *din, float *dweight,
                                       float *dbias, const float *dout, const float *in,
                                       const float *weight, const ams_conv2d_desc *d) {
    if (ams_cpu_conv_tiled(d) &&
        ams_cpu_conv_tiled_backward(be, 0, din, dweight, dbias, dout, in, weight, d))
        return;
    if (dweight && ams_cpu_conv_wgrad(be, dweight, NULL, dout, in, d)) dweight = NULL;
    ams_ref_conv2d_transpose_backward(be, din, dweight, dbias, dout, in, weight, d);
}
void ams_cpu_conv_cache_free(ams_cpu_state *st) { (void)st; }

#endif

/* Either build's conv_backward_body, then a folded relu's select in a pass of its own where
 * no kernel of ours applied it as it stored din. */
static void conv_backward(const ams_backend *be, int set, float *din, const float *relu_of,
                          float *dweight, float *dbias, const float *dout, const float *in,
                          const float *weight, const ams_conv2d_desc *d) {
    if (!conv_backward_body(be, set, din, relu_of, dweight, dbias, dout, in, weight, d) &&
        relu_of && din) /* in place: an element reads and writes only itself */
        be->relu_backward_set(be, din, din, relu_of, (int64_t)d->n * d->h * d->w * d->c);
}

void ams_cpu_conv2d_backward(const ams_backend *be, float *din, float *dweight, float *dbias,
                             const float *dout, const float *in, const float *weight,
                             const ams_conv2d_desc *d) {
    conv_backward(be, 0, din, NULL, dweight, dbias, dout, in, weight, d);
}

void ams_cpu_conv2d_backward_din_set(const ams_backend *be, float *din, float *dweight,
                                     float *dbias, const float *dout, const float *in,
                                     const float *weight, const ams_conv2d_desc *d) {
    conv_backward(be, 1, din, NULL, dweight, dbias, dout, in, weight, d);
}

void ams_cpu_conv2d_backward_relu(const ams_backend *be, int set, float *din, float *dweight,
                                  float *dbias, const float *dout, const float *in,
                                  const float *weight, const ams_conv2d_desc *d) {
    conv_backward(be, set, din, in, dweight, dbias, dout, in, weight, d);
}

/* The tiled kernels overwrite din themselves; the other paths accumulate into zeros. */
void ams_cpu_conv2d_transpose_backward_din_set(const ams_backend *be, float *din,
                                               float *dweight, float *dbias, const float *dout,
                                               const float *in, const float *weight,
                                               const ams_conv2d_desc *d) {
    if (ams_cpu_conv_tiled(d) &&
        ams_cpu_conv_tiled_backward(be, 1, din, dweight, dbias, dout, in, weight, d))
        return;
    memset(din, 0, (size_t)d->n * (size_t)d->oh * (size_t)d->ow * (size_t)d->oc * sizeof *din);
    ams_cpu_conv2d_transpose_backward(be, din, dweight, dbias, dout, in, weight, d);
}
