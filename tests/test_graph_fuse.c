/* test_graph_fuse.c - inference fusion (graph_plan.c plan_fusion, graph_exec.c): in an
 * AMS_PLAN_INFER graph run on the cpu backend, conv -> frozen BN -> ReLU/ReLU6 chains run as
 * one conv call with BN folded into a copy of the weights and the activation fused.
 * Checked against the same graph on the reference backend (which runs every op on its own):
 * random chains with odd sizes, stride 2 with TF SAME padding, dilation, groups, depthwise
 * (multiplier 1 and 2), batch > 1, bias or not, BN with or without gamma/beta, relu / relu6 /
 * none, a BN whose value has a second consumer (no activation fused), stacked blocks;
 * that fusion really happened (and did not in a training plan); that changed params are
 * seen by the next forward; that the user's params are never written.
 */
#include <stdint.h>
#include <stdlib.h>

#include "ams/backend.h"
#include "ams/graph.h"
#include "ams/rng.h"
#include "check.h"
#include "nn/graph_internal.h"

static ams_rng rng;

static int irand(int lo, int hi) { return lo + (int)(ams_rng_u64(&rng) % (uint64_t)(hi - lo + 1)); }
static float frand(float lo, float hi) { return lo + (hi - lo) * ams_rng_uniform(&rng); }

static double rel_err(const float *a, const float *ref, size_t n) {
    double m = 1e-3;
    for (size_t i = 0; i < n; i++)
        if (fabs((double)ref[i]) > m) m = fabs((double)ref[i]);
    return check_max_abs_diff(a, ref, n) / m;
}

typedef struct spec {
    int n, h, w, c, oc, k, stride, dil, groups;
    int bias;   /* conv bias */
    int bn;     /* 0: none, 1: gamma/beta params, 2: gamma/beta -1 (constants) */
    int act;    /* AMS_CONV_ACT_* */
    int branch; /* the BN value also feeds an add (so only BN may be folded) */
    int second; /* a depthwise 3x3 -> BN -> ReLU6 -> 1x1 -> BN block after it */
} spec;

static char spec_buf[256];
static const char *spec_str(const spec *s) {
    snprintf(spec_buf, sizeof spec_buf,
             "n%d %dx%dx%d -> %d k%d s%d d%d g%d bias%d bn%d act%d branch%d second%d", s->n, s->h,
             s->w, s->c, s->oc, s->k, s->stride, s->dil, s->groups, s->bias, s->bn, s->act,
             s->branch, s->second);
    return spec_buf;
}

/* Adds a conv -> [BN] -> [act] chain's params named with prefix p. */
static void add_chain_params(ams_params *ps, const char *p, int k, int cin, int oc, int bias,
                             int bn, ams_err *err) {
    char nm[64];
    snprintf(nm, sizeof nm, "%s/w", p);
    ams_params_add(ps, nm, 4, (int64_t[]){k, k, cin, oc}, 1, err);
    if (bias) {
        snprintf(nm, sizeof nm, "%s/b", p);
        ams_params_add(ps, nm, 1, (int64_t[]){oc}, 1, err);
    }
    if (bn) {
        static const char *const bn_names[] = {"gamma", "beta", "mean", "var"};
        for (int i = bn == 2 ? 2 : 0; i < 4; i++) {
            snprintf(nm, sizeof nm, "%s/%s", p, bn_names[i]);
            ams_params_add(ps, nm, 1, (int64_t[]){oc}, i < 2, err);
        }
    }
}

static int pidx(const ams_params *ps, const char *p, const char *what) {
    char nm[64];
    snprintf(nm, sizeof nm, "%s/%s", p, what);
    return ams_params_find(ps, nm);
}

/* Builds conv -> [BN] -> [act]; *conv_id gets the conv node. */
static int chain(ams_graph *g, int x, const char *p, int stride, int dil, int groups,
                 int bn, int act, int *conv_id, int *bn_id) {
    ams_params *ps = ams_graph_params(g);
    int w = ams_graph_param(g, pidx(ps, p, "w"));
    int bi = pidx(ps, p, "b");
    int b = bi >= 0 ? ams_graph_param(g, bi) : -1;
    int y = ams_graph_conv2d(g, x, w, b,
                             &(ams_conv_opts){.stride = stride, .dilation = dil,
                                              .padding = AMS_PAD_SAME, .groups = groups});
    *conv_id = y;
    *bn_id = -1;
    if (bn) {
        int ga = bn == 1 ? ams_graph_param(g, pidx(ps, p, "gamma")) : -1;
        int be = bn == 1 ? ams_graph_param(g, pidx(ps, p, "beta")) : -1;
        y = ams_graph_batchnorm(g, y, ga, be, ams_graph_param(g, pidx(ps, p, "mean")),
                                ams_graph_param(g, pidx(ps, p, "var")), 1e-3f);
        *bn_id = y;
    }
    if (act == AMS_CONV_ACT_RELU) y = ams_graph_relu(g, y);
    if (act == AMS_CONV_ACT_RELU6) y = ams_graph_relu6(g, y);
    return y;
}

typedef struct built {
    ams_graph *g;
    int x, out, conv, bn, last, conv2;
} built;

static int build(built *t, ams_params *ps, const spec *s, ams_plan_mode mode) {
    ams_err err;
    t->g = ams_graph_new(ps);
    CHECK(t->g);
    t->x = ams_graph_input(t->g, "x", 4, (int64_t[]){s->n, s->h, s->w, s->c});
    int y = chain(t->g, t->x, "a", s->stride, s->dil, s->groups, s->bn, s->act, &t->conv,
                  &t->bn);
    t->last = y;
    if (s->branch) y = ams_graph_add(t->g, y, t->bn);
    t->conv2 = -1;
    if (s->second) {
        int c2, b2;
        y = chain(t->g, y, "dw", 1, 1, s->oc, 1, AMS_CONV_ACT_RELU6, &c2, &b2);
        t->conv2 = c2;
        y = chain(t->g, y, "pw", 1, 1, 1, 1, AMS_CONV_ACT_NONE, &c2, &b2);
    }
    t->out = y;
    CHECKF(ams_graph_error(t->g, &err) == AMS_OK, "%s", err.msg);
    CHECKF(ams_graph_plan(t->g, mode, &err) == AMS_OK, "%s", err.msg);
    return 0;
}

static void fill(ams_params *ps, int index, float lo, float hi) {
    float *v = ams_params_data(ps, index);
    size_t n = ps->info[index].numel;
    for (size_t i = 0; i < n; i++) v[i] = frand(lo, hi);
}

static void randomize(ams_params *ps) {
    for (int i = 0; i < ps->count; i++) {
        const char *nm = ps->info[i].name;
        const char *slash = strrchr(nm, '/');
        const char *what = slash ? slash + 1 : nm;
        if (!strcmp(what, "var")) fill(ps, i, 0.2f, 2.0f);
        else if (!strcmp(what, "gamma")) fill(ps, i, 0.5f, 3.0f);
        else if (!strcmp(what, "mean")) fill(ps, i, -0.5f, 0.5f);
        else fill(ps, i, -1.0f, 1.0f); /* weights, bias, beta */
    }
}

static int run(built *t, const ams_backend *be, const float *x, const float **out) {
    ams_err err;
    CHECKF(ams_graph_set_input(t->g, t->x, x, &err) == AMS_OK, "%s", err.msg);
    CHECKF(ams_graph_forward(t->g, be, &err) == AMS_OK, "%s", err.msg);
    *out = ams_graph_value(t->g, t->out);
    CHECK(*out);
    return 0;
}

/* One chain: fused cpu inference vs the reference, fusion present, params untouched,
 * a param change seen; and a training plan of the same graph unfused and equal too. */
static int check_spec(const ams_backend *cpu, const spec *s) {
    ams_err err;
    ams_params *ps = ams_params_new();
    CHECK(ps);
    int cin = s->c / s->groups;
    add_chain_params(ps, "a", s->k, cin, s->oc, s->bias, s->bn, &err);
    if (s->second) {
        add_chain_params(ps, "dw", 3, 1, s->oc, 0, 1, &err);
        add_chain_params(ps, "pw", 1, s->oc, 5, 1, 1, &err);
    }
    CHECKF(ams_params_alloc(ps, &err) == AMS_OK, "%s", err.msg);
    randomize(ps);
    built fused, ref;
    if (build(&fused, ps, s, AMS_PLAN_INFER) || build(&ref, ps, s, AMS_PLAN_INFER)) return 1;

    /* fusion decided by the plan */
    const ams_node *cv = &fused.g->nodes[fused.conv];
    int want_last = s->branch ? fused.bn : fused.last; /* branch: BN has two consumers */
    if (want_last == fused.conv) {
        CHECKF(cv->fuse_last < 0, "unexpected fusion (%s)", spec_str(s));
    } else {
        CHECKF(cv->fuse_last == want_last, "fuse_last %d, want %d (%s)", cv->fuse_last,
               want_last, spec_str(s));
        CHECKF((cv->fuse_bn >= 0) == (s->bn != 0), "fuse_bn %d (%s)", cv->fuse_bn, spec_str(s));
    }
    if (s->second) CHECK(fused.g->nodes[fused.conv2].fuse_last >= 0);

    size_t params_bytes = ps->total * sizeof(float);
    float *before = malloc(params_bytes);
    CHECK(before);
    memcpy(before, ps->values, params_bytes);

    size_t nx = (size_t)s->n * s->h * s->w * s->c;
    float *x = malloc(nx * sizeof *x);
    CHECK(x);
    for (size_t i = 0; i < nx; i++) x[i] = frand(-1.0f, 1.0f);
    int64_t shp[AMS_MAX_DIMS];
    int nd = ams_graph_shape(fused.g, fused.out, shp);
    size_t nout = 1;
    for (int i = 0; i < nd; i++) nout *= (size_t)shp[i];

    for (int round = 0; round < 2; round++) {
        const float *yf, *yr;
        if (run(&fused, cpu, x, &yf) || run(&ref, ams_backend_ref(), x, &yr)) return 1;
        double e = rel_err(yf, yr, nout);
        CHECKF(e <= 2e-5, "round %d: relative error %.3g (%s)", round, e, spec_str(s));
        CHECKF(!memcmp(before, ps->values, params_bytes),
               "the forward wrote into the params (%s)", spec_str(s));
        /* change every param: the next forward must see it */
        randomize(ps);
        memcpy(before, ps->values, params_bytes);
    }
    free(x);
    free(before);
    ams_graph_free(fused.g);
    ams_graph_free(ref.g);
    ams_params_free(ps);
    return 0;
}

static int test_fixed_chains(void) {
    ams_err err;
    const ams_backend *cpu = ams_backend_by_name("cpu", 2, &err);
    CHECKF(cpu, "%s", err.msg);
    static const spec specs[] = {
        /* MobileNetV2-like: 3x3 s2 first conv, pointwise, depthwise s2 and dilated */
        {1, 33, 47, 3, 16, 3, 2, 1, 1, 0, 1, AMS_CONV_ACT_RELU6, 0, 0},
        {2, 17, 19, 24, 40, 1, 1, 1, 1, 0, 1, AMS_CONV_ACT_RELU6, 0, 1},
        {2, 17, 19, 24, 24, 3, 2, 1, 24, 0, 1, AMS_CONV_ACT_RELU6, 0, 0},
        {1, 21, 23, 32, 32, 3, 1, 2, 32, 0, 1, AMS_CONV_ACT_RELU6, 0, 0},
        {3, 9, 11, 16, 32, 3, 1, 4, 16, 1, 1, AMS_CONV_ACT_RELU, 0, 0}, /* multiplier 2 */
        {1, 15, 13, 12, 20, 3, 1, 1, 4, 1, 2, AMS_CONV_ACT_NONE, 0, 0}, /* groups 4, BN only */
        {2, 16, 16, 8, 24, 1, 1, 1, 1, 1, 0, AMS_CONV_ACT_RELU6, 0, 0}, /* no BN */
        {2, 11, 14, 8, 24, 3, 2, 1, 1, 1, 2, AMS_CONV_ACT_RELU, 1, 0},  /* BN consumed twice */
        {1, 30, 34, 64, 96, 1, 1, 1, 1, 0, 1, AMS_CONV_ACT_RELU6, 0, 1}, /* oneDNN-sized */
        {1, 5, 7, 3, 2, 3, 1, 1, 1, 0, 1, AMS_CONV_ACT_RELU, 0, 0},      /* conv_small-sized */
    };
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++)
        if (check_spec(cpu, &specs[i])) return 1;
    ams_backend_free(cpu);
    return 0;
}

static int test_random_chains(void) {
    ams_err err;
    const ams_backend *cpu = ams_backend_by_name("cpu", 2, &err);
    CHECKF(cpu, "%s", err.msg);
    for (int it = 0; it < 30; it++) {
        spec s = {0};
        s.n = irand(1, 3);
        s.h = irand(3, 29);
        s.w = irand(3, 29);
        int kind = irand(0, 2); /* dense, depthwise, grouped */
        if (kind == 1) {
            s.c = irand(1, 40);
            s.groups = s.c;
            s.oc = s.c * irand(1, 2);
        } else if (kind == 2) {
            s.groups = irand(2, 4);
            s.c = s.groups * irand(1, 8);
            s.oc = s.groups * irand(1, 8);
        } else {
            s.groups = 1;
            s.c = irand(1, 48);
            s.oc = irand(1, 64);
        }
        s.k = irand(0, 1) ? 1 : irand(2, 5);
        s.stride = irand(1, 2);
        s.dil = s.k > 1 && irand(0, 2) == 0 ? irand(2, 3) : 1;
        s.bias = irand(0, 1);
        s.bn = irand(0, 2);
        s.act = irand(0, 2);
        s.branch = s.bn && irand(0, 3) == 0;
        if (!s.bn && !s.act) s.act = AMS_CONV_ACT_RELU6;
        if (check_spec(cpu, &s)) return 1;
    }
    ams_backend_free(cpu);
    return 0;
}

/* A training plan fuses nothing; re-planning a graph for inference fuses, and back. */
static int test_train_plan_unfused(void) {
    ams_err err;
    ams_params *ps = ams_params_new();
    CHECK(ps);
    add_chain_params(ps, "a", 3, 4, 6, 1, 1, &err);
    CHECKF(ams_params_alloc(ps, &err) == AMS_OK, "%s", err.msg);
    randomize(ps);
    ams_graph *g = ams_graph_new(ps);
    CHECK(g);
    int x = ams_graph_input(g, "x", 4, (int64_t[]){2, 7, 9, 4});
    int cv, bn;
    int y = chain(g, x, "a", 1, 1, 1, 1, AMS_CONV_ACT_RELU6, &cv, &bn);
    int labels = ams_graph_labels(g, "labels", 2, 7, 9);
    int loss = ams_graph_softmax_ce(g, y, labels, NULL, 0);
    CHECKF(loss >= 0 && ams_graph_error(g, &err) == AMS_OK, "%s", err.msg);
    CHECKF(ams_graph_plan(g, AMS_PLAN_TRAIN, &err) == AMS_OK, "%s", err.msg);
    for (int i = 0; i < ams_graph_node_count(g); i++) {
        CHECK(g->nodes[i].fuse_last < 0);
        CHECK(g->nodes[i].fused_by < 0);
        CHECK(g->nodes[i].fold == NULL);
    }
    /* the same graph planned for inference: conv -> bn -> relu6 fuses */
    CHECKF(ams_graph_plan(g, AMS_PLAN_INFER, &err) == AMS_OK, "%s", err.msg);
    CHECK(g->nodes[cv].fuse_last == y && g->nodes[cv].fuse_bn == bn && g->nodes[cv].fold);
    CHECKF(ams_graph_plan(g, AMS_PLAN_TRAIN, &err) == AMS_OK, "%s", err.msg);
    CHECK(g->nodes[cv].fuse_last < 0 && g->nodes[cv].fold == NULL);
    ams_graph_free(g);
    ams_params_free(ps);
    return 0;
}

int main(int argc, char **argv) {
    ams_rng_seed(&rng, 4242);
    setenv("AMS_CPU_MIN_PARALLEL", "4096", 1);
    static const check_case cases[] = {
        {"fixed_chains", test_fixed_chains},
        {"random_chains", test_random_chains},
        {"train_plan_unfused", test_train_plan_unfused},
    };
    return check_run(cases, sizeof cases / sizeof cases[0], argc, argv);
}
