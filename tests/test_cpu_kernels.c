/* test_cpu_kernels.c - the CPU backend's own element-wise kernels against the reference
 * kernels (the oracle): broadcasting add / mul / div forward and backward on random shapes
 * and every broadcast pattern (same shape, squeeze-excite (n,1,1,c), bias (c), scalar,
 * per-pixel (n,h,w,1), both operands broadcast, more dimensions than the fast path takes),
 * odd sizes, batch > 1, NULL gradients, accumulation into non-zero gradients, the
 * overwriting (_set) variants for a gradient's first write; binary
 * cross-entropy with ignored pixels; sigmoid, relu, relu6, affine; global average pooling; and no
 * allocation once warmed up.
 * (Convolutions, including the backend's own weight-gradient, tiled-transposed and small
 * pointwise kernels, are checked in test_backend_cpu.c.)
 */
#include <stdint.h>
#include <stdlib.h>

#include "ams/backend.h"
#include "ams/graph.h"
#include "ams/rng.h"
#include "check.h"
#include "cpu_testlib.h"
#include "nn/cpu/cpu_backend.h"

static int64_t numel(const int64_t *s, int nd) {
    int64_t n = 1;
    for (int k = 0; k < nd; k++) n *= s[k];
    return n;
}

static const char *shape_str(char *buf, size_t cap, const int64_t *s, int nd) {
    int len = 0;
    buf[0] = 0;
    for (int k = 0; k < nd && (size_t)len < cap; k++)
        len += snprintf(buf + len, cap - (size_t)len, "%s%lld", k ? "x" : "", (long long)s[k]);
    return buf;
}

/* One broadcast case: forward of add, mul, div and every gradient subset, cpu vs ref. */
static int check_bcast(const ams_backend *cpu, const ams_bcast_desc *d) {
    const ams_backend *ref = ams_backend_ref();
    int64_t no = numel(d->out, d->ndim), na = numel(d->a, d->ndim), nb = numel(d->b, d->ndim);
    float *a = rnd_range((size_t)na, -2, 2), *b = rnd_range((size_t)nb, 0.5f, 2); /* b away from 0: div */
    float *g = rnd_range((size_t)no, -1, 1), *o1 = rnd_range((size_t)no, -1, 1), *o2 = dup(o1, (size_t)no);
    char sa[96], sb[96], so[96];
    shape_str(sa, sizeof sa, d->a, d->ndim), shape_str(sb, sizeof sb, d->b, d->ndim);
    shape_str(so, sizeof so, d->out, d->ndim);
    int rc = 0;
    for (int op = 0; op < 3 && !rc; op++) {
        static const char *const names[] = {"add", "mul", "div"};
        if (op == 0) ref->add_forward(ref, o1, a, b, d), cpu->add_forward(cpu, o2, a, b, d);
        if (op == 1) ref->mul_forward(ref, o1, a, b, d), cpu->mul_forward(cpu, o2, a, b, d);
        if (op == 2) ref->div_forward(ref, o1, a, b, d), cpu->div_forward(cpu, o2, a, b, d);
        double ef = rel_err(o2, o1, (size_t)no);
        CHECKF(ef <= 1e-6, "%s forward %s op %s -> %s: %g", names[op], sa, sb, so, ef);
        for (int mask = 1; mask < 4; mask++) { /* bit 0: da, bit 1: db */
            float *da0 = rnd_range((size_t)na, -1, 1), *db0 = rnd_range((size_t)nb, -1, 1);
            float *da1 = mask & 1 ? dup(da0, (size_t)na) : NULL, *da2 = mask & 1 ? dup(da0, (size_t)na) : NULL;
            float *db1 = mask & 2 ? dup(db0, (size_t)nb) : NULL, *db2 = mask & 2 ? dup(db0, (size_t)nb) : NULL;
            if (op == 0) ref->add_backward(ref, da1, db1, g, d), cpu->add_backward(cpu, da2, db2, g, d);
            if (op == 1)
                ref->mul_backward(ref, da1, db1, g, a, b, d), cpu->mul_backward(cpu, da2, db2, g, a, b, d);
            if (op == 2)
                ref->div_backward(ref, da1, db1, g, a, b, d), cpu->div_backward(cpu, da2, db2, g, a, b, d);
            double ea = da1 ? rel_err(da2, da1, (size_t)na) : 0, eb = db1 ? rel_err(db2, db1, (size_t)nb) : 0;
            if (op < 2) { /* the overwriting variants: garbage in, as the reference from zeros */
                int set_a = mask & 1, set_b = mask >> 1 & 1;
                if (da1) memset(da1, 0, (size_t)na * sizeof *da1);
                if (db1) memset(db1, 0, (size_t)nb * sizeof *db1);
                for (int64_t i = 0; da2 && i < na; i++) da2[i] = 1e30f;
                for (int64_t i = 0; db2 && i < nb; i++) db2[i] = -1e30f;
                if (op == 0)
                    ref->add_backward(ref, da1, db1, g, d),
                        cpu->add_backward_set(cpu, da2, db2, g, d, set_a, set_b);
                else
                    ref->mul_backward(ref, da1, db1, g, a, b, d),
                        cpu->mul_backward_set(cpu, da2, db2, g, a, b, d, set_a, set_b);
                if (da1 && rel_err(da2, da1, (size_t)na) > ea) ea = rel_err(da2, da1, (size_t)na);
                if (db1 && rel_err(db2, db1, (size_t)nb) > eb) eb = rel_err(db2, db1, (size_t)nb);
            }
            free(da0), free(db0), free(da1), free(da2), free(db1), free(db2);
            /* the reference's div backward adds every term into the float gradient one by
             * one (its add and mul sum in double): a reduced div gradient differs by that */
            double tol = op == 2 ? 1e-4 : 2e-6;
            if (ea > tol || eb > tol) {
                fprintf(stderr, "%s backward (mask %d) %s op %s -> %s: da %g db %g\n", names[op], mask,
                        sa, sb, so, ea, eb);
                rc = 1;
                break;
            }
        }
    }
    free(a), free(b), free(g), free(o1), free(o2);
    return rc;
}

/* A descriptor from out's shape and, per dim, whether a and b keep it (else 1). */
static ams_bcast_desc make_bcast(int nd, const int64_t *out, const int *keep_a, const int *keep_b) {
    ams_bcast_desc d = {.ndim = nd};
    for (int k = 0; k < nd; k++) {
        d.out[k] = out[k];
        d.a[k] = keep_a[k] ? out[k] : 1;
        d.b[k] = keep_b[k] ? out[k] : 1;
    }
    return d;
}

static int test_broadcast_patterns(void) {
    ams_err err = {0};
    const ams_backend *cpu = ams_backend_by_name("cpu", 2, &err);
    CHECKF(cpu, "%s", err.msg);
    /* (n,h,w,c) shapes big enough to run threaded, and small ones on one thread */
    static const int64_t shapes[][4] = {{8, 24, 32, 16}, {3, 7, 9, 5}, {1, 1, 1, 1}, {2, 33, 17, 3},
                                        {5, 1, 130, 7}, {2, 9, 11, 48}, {1, 70, 3, 32}};
    static const int pats[][8] = {
        {1, 1, 1, 1, 1, 1, 1, 1}, /* same shapes */
        {1, 1, 1, 1, 1, 0, 0, 1}, /* squeeze-excite: b (n,1,1,c) */
        {1, 0, 0, 1, 1, 1, 1, 1}, /* ... and a broadcast instead */
        {1, 1, 1, 1, 0, 0, 0, 1}, /* bias (c) */
        {1, 1, 1, 1, 0, 0, 0, 0}, /* scalar */
        {1, 1, 1, 1, 1, 1, 1, 0}, /* per pixel (n,h,w,1) */
        {0, 1, 0, 1, 1, 0, 1, 0}, /* both broadcast, alternating */
        {1, 0, 1, 0, 0, 1, 0, 1}, /* ... the other way */
        {0, 0, 0, 0, 1, 1, 1, 1}, /* a scalar */
    };
    int rc = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0] && !rc; s++)
        for (size_t p = 0; p < sizeof pats / sizeof pats[0] && !rc; p++) {
            ams_bcast_desc d = make_bcast(4, shapes[s], pats[p], pats[p] + 4);
            rc = check_bcast(cpu, &d);
        }
    ams_backend_free(cpu);
    return rc;
}

static int test_broadcast_random(void) {
    ams_err err = {0};
    const ams_backend *cpu = ams_backend_by_name("cpu", 2, &err);
    CHECKF(cpu, "%s", err.msg);
    int rc = 0;
    for (int it = 0; it < 60 && !rc; it++) {
        int nd = irand(1, 7); /* up to 7: more collapsed dimensions than the fast path takes */
        int64_t out[8];
        int ka[8], kb[8];
        int64_t total = 1;
        for (int k = 0; k < nd; k++) {
            out[k] = irand(1, nd > 4 ? 4 : 13);
            total *= out[k];
            ka[k] = irand(0, 3) != 0, kb[k] = irand(0, 2) != 0;
        }
        if (total > 400000) continue;
        ams_bcast_desc d = make_bcast(nd, out, ka, kb);
        rc = check_bcast(cpu, &d);
    }
    /* a large reduction: a per-image scalar gradient summed over 100 K elements per image */
    int64_t big[4] = {3, 100, 101, 10};
    int ka[4] = {1, 1, 1, 1}, kb[4] = {1, 0, 0, 0};
    ams_bcast_desc d = make_bcast(4, big, ka, kb);
    if (!rc) rc = check_bcast(cpu, &d);
    ams_backend_free(cpu);
    return rc;
}

/* BCE on logits with ignored pixels, several sizes (threaded and not), gradients
 * accumulating into non-zero buffers; sigmoid and relu element-wise. */
static int test_bce_and_activations(void) {
    ams_err err = {0};
    const ams_backend *cpu = ams_backend_by_name("cpu", 2, &err), *ref = ams_backend_ref();
    CHECKF(cpu, "%s", err.msg);
    static const int64_t sizes[] = {1, 17, 1000, 65537, 393216};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        int64_t p = sizes[s];
        float *x = rnd_range((size_t)p, -30, 30);
        uint8_t *l = malloc((size_t)p);
        for (int64_t i = 0; i < p; i++) {
            l[i] = (uint8_t)(ams_rng_u64(&rng) % 7 == 0 ? 255 : ams_rng_u64(&rng) % 2);
            if (i % 5 == 0) x[i] *= 0.01f; /* small logits: log1p of values near 1 */
        }
        float l1, l2;
        int64_t n1, n2;
        ref->bce_logits_forward(ref, &l1, &n1, x, l, p);
        cpu->bce_logits_forward(cpu, &l2, &n2, x, l, p);
        CHECKF(n1 == n2 && fabsf(l1 - l2) <= 2e-6f * fabsf(l1) + 1e-7f, "bce p=%lld: %g vs %g (%lld, %lld)",
               (long long)p, l1, l2, (long long)n1, (long long)n2);
        float *g1 = rnd_range((size_t)p, -1, 1), *g2 = dup(g1, (size_t)p);
        ref->bce_logits_backward(ref, g1, 3.0f, x, l, p);
        cpu->bce_logits_backward(cpu, g2, 3.0f, x, l, p);
        double eg = check_max_abs_diff(g1, g2, (size_t)p);
        /* sigmoid: within a few ulp of the reference's libm expf form */
        float *s1 = rnd_range((size_t)p, -1, 1), *s2 = rnd_range((size_t)p, -1, 1);
        ref->sigmoid_forward(ref, s1, x, p), cpu->sigmoid_forward(cpu, s2, x, p);
        double es = check_max_abs_diff(s1, s2, (size_t)p);
        /* relu backward: exactly the reference */
        float *r1 = rnd_range((size_t)p, -1, 1), *r2 = dup(r1, (size_t)p), *o = rnd_range((size_t)p, -1, 1);
        ref->relu_backward(ref, r1, g1, o, p), cpu->relu_backward(cpu, r2, g1, o, p);
        double er = check_max_abs_diff(r1, r2, (size_t)p);
        /* the overwriting variant: garbage in, as the reference from zeros */
        for (int64_t i = 0; i < p; i++) r1[i] = 0.0f, r2[i] = 1e30f;
        ref->relu_backward(ref, r1, g1, o, p), cpu->relu_backward_set(cpu, r2, g1, o, p);
        if (check_max_abs_diff(r1, r2, (size_t)p) > er) er = check_max_abs_diff(r1, r2, (size_t)p);
        for (int64_t i = 0; i < p; i++) r1[i] = 0.0f, r2[i] = 1e30f, o[i] *= 8.0f; /* relu6 clips */
        ref->relu6_backward(ref, r1, g1, o, p), cpu->relu6_backward_set(cpu, r2, g1, o, p);
        if (check_max_abs_diff(r1, r2, (size_t)p) > er) er = check_max_abs_diff(r1, r2, (size_t)p);
        for (int64_t i = 0; i < p; i++) r1[i] = 0.0f, r2[i] = 1e30f;
        ref->affine_backward(ref, r1, g1, -0.75f, p), cpu->affine_backward_set(cpu, r2, g1, -0.75f, p);
        if (check_max_abs_diff(r1, r2, (size_t)p) > er) er = check_max_abs_diff(r1, r2, (size_t)p);
        free(x), free(l), free(g1), free(g2), free(s1), free(s2), free(r1), free(r2), free(o);
        CHECKF(eg <= 1e-6 && es <= 3e-7 && er == 0, "p=%lld: bce grad %g, sigmoid %g, relu %g",
               (long long)p, eg, es, er);
    }
    ams_backend_free(cpu);
    return 0;
}

/* Global average pooling: bitwise the reference (same per-channel order), split by images
 * and by channels, gradients accumulating into non-zero buffers. */
static int test_global_avgpool(void) {
    ams_err err = {0};
    const ams_backend *cpu = ams_backend_by_name("cpu", 2, &err), *ref = ams_backend_ref();
    CHECKF(cpu, "%s", err.msg);
    static const int shapes[][4] = {{8, 12, 16, 128}, {1, 96, 128, 16}, {3, 5, 7, 1},
                                    {1, 40, 30, 1},   {2, 3, 5, 70},    {1, 4, 3, 150}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int *sh = shapes[s];
        size_t nin = (size_t)sh[0] * sh[1] * sh[2] * sh[3], nout = (size_t)sh[0] * sh[3];
        float *x = rnd_range(nin, -1, 1), *o1 = rnd_range(nout, -1, 1), *o2 = rnd_range(nout, -1, 1), *g = rnd_range(nout, -1, 1);
        float *d1 = rnd_range(nin, -1, 1), *d2 = dup(d1, nin);
        ref->global_avgpool_forward(ref, o1, x, sh[0], sh[1], sh[2], sh[3]);
        cpu->global_avgpool_forward(cpu, o2, x, sh[0], sh[1], sh[2], sh[3]);
        ref->global_avgpool_backward(ref, d1, g, sh[0], sh[1], sh[2], sh[3]);
        cpu->global_avgpool_backward(cpu, d2, g, sh[0], sh[1], sh[2], sh[3]);
        double ef = check_max_abs_diff(o1, o2, nout), eb = check_max_abs_diff(d1, d2, nin);
        /* the overwriting backward: garbage in, as the reference from zeros */
        for (size_t i = 0; i < nin; i++) d1[i] = 0.0f, d2[i] = 1e30f;
        ref->global_avgpool_backward(ref, d1, g, sh[0], sh[1], sh[2], sh[3]);
        cpu->global_avgpool_backward_set(cpu, d2, g, sh[0], sh[1], sh[2], sh[3]);
        double es = check_max_abs_diff(d1, d2, nin);
        free(x), free(o1), free(o2), free(g), free(d1), free(d2);
        CHECKF(ef == 0 && eb == 0 && es == 0, "shape %zu: forward %g backward %g (set %g)", s, ef,
               eb, es);
    }
    ams_backend_free(cpu);
    return 0;
}

/* A whole graph whose activations get their first gradients from every kernel with an
 * overwriting variant (conv, relu, relu6, affine, add, mul, x + x, squeeze-excite mul),
 * so that the executor takes those paths: parameter gradients cpu vs reference. */
static int test_graph_first_gradients(void) {
    ams_err err = {0};
    const ams_backend *cpu = ams_backend_by_name("cpu", 2, &err), *ref = ams_backend_ref();
    CHECKF(cpu, "%s", err.msg);
    ams_params *p = ams_params_new();
    int w1 = ams_params_add(p, "w1", 4, (int64_t[]){3, 3, 3, 8}, 1, &err);
    int b1 = ams_params_add(p, "b1", 1, (int64_t[]){8}, 1, &err);
    int w2 = ams_params_add(p, "w2", 4, (int64_t[]){1, 1, 8, 8}, 1, &err);
    int w3 = ams_params_add(p, "w3", 4, (int64_t[]){1, 1, 8, 1}, 1, &err);
    CHECKF(w3 >= 0 && ams_params_alloc(p, &err) == AMS_OK, "%s", err.msg);
    for (size_t i = 0; i < p->total; i++) p->values[i] = 0.6f * (ams_rng_uniform(&rng) - 0.5f);
    ams_graph *g = ams_graph_new(p);
    const int n = 3, h = 24, w = 20;
    int x = ams_graph_input(g, "x", 4, (int64_t[]){n, h, w, 3});
    ams_conv_opts same = {.padding = AMS_PAD_SAME};
    int y = ams_graph_conv2d(g, x, ams_graph_param(g, w1), ams_graph_param(g, b1), &same);
    int hs = ams_graph_mul(g, y, ams_graph_affine(g, ams_graph_relu6(g, ams_graph_affine(g, y, 1.0f, 3.0f)),
                                                   1.0f / 6.0f, 0.0f)); /* hard-swish */
    int z = ams_graph_conv2d(g, hs, ams_graph_param(g, w2), -1, &same);
    int se = ams_graph_sigmoid(g, ams_graph_global_avgpool(g, z));
    z = ams_graph_mul(g, z, se);                      /* squeeze-excite */
    z = ams_graph_add(g, ams_graph_relu(g, z), hs);   /* residual */
    z = ams_graph_add(g, z, z);                       /* x + x */
    int logit = ams_graph_conv2d(g, z, ams_graph_param(g, w3), -1, &same);
    int lab = ams_graph_labels(g, "labels", n, h, w);
    int loss = ams_graph_bce_logits(g, logit, lab);
    CHECKF(ams_graph_error(g, &err) == AMS_OK && ams_graph_plan(g, AMS_PLAN_TRAIN, &err) == AMS_OK,
           "%s", err.msg);
    size_t np = (size_t)n * h * w;
    float *xv = rnd_range(np * 3, 0, 1);
    uint8_t *lv = malloc(np);
    for (size_t i = 0; i < np; i++) lv[i] = (uint8_t)(ams_rng_u64(&rng) % 5 == 0 ? 255 : ams_rng_u64(&rng) % 2);
    CHECK(ams_graph_set_input(g, x, xv, &err) == AMS_OK && ams_graph_set_labels(g, lab, lv, &err) == AMS_OK);
    float *gr = NULL;
    double e = 0;
    for (int k = 0; k < 2; k++) { /* ref, then cpu twice (the second on dirty arena memory) */
        for (int rep = 0; rep < (k ? 2 : 1); rep++) {
            const ams_backend *be = k ? cpu : ref;
            ams_params_zero_grads(p);
            CHECK(ams_graph_forward(g, be, &err) == AMS_OK && ams_graph_backward(g, be, loss, &err) == AMS_OK);
        }
        if (!k) gr = dup(p->grads, p->total);
        else e = check_rel_l2(p->grads, gr, p->total);
    }
    free(xv), free(lv), free(gr);
    ams_graph_free(g);
    ams_params_free(p);
    ams_backend_free(cpu);
    CHECKF(e < 1e-5, "parameter gradients cpu vs ref: relative L2 %g", e);
    return 0;
}

/* After one call of each kernel on a shape, the same calls allocate nothing more. */
static int test_no_steady_state_allocation(void) {
    ams_err err = {0};
    const ams_backend *cpu = ams_backend_by_name("cpu", 2, &err);
    CHECKF(cpu, "%s", err.msg);
    int64_t out[4] = {8, 24, 32, 16};
    int ka[4] = {1, 1, 1, 1}, kb[4] = {1, 0, 0, 1};
    ams_bcast_desc d = make_bcast(4, out, ka, kb);
    size_t n = (size_t)numel(out, 4), nb = 8 * 16;
    float *a = rnd_range(n, -1, 1), *b = rnd_range(nb, 1, 2), *g = rnd_range(n, -1, 1), *y = rnd_range(n, -1, 1);
    float *da = rnd_range(n, -1, 1), *db = rnd_range(nb, -1, 1), loss;
    uint8_t *l = calloc(n, 1);
    int64_t cnt;
    size_t a0 = 0;
    for (int round = 0; round < 3; round++) {
        cpu->mul_forward(cpu, y, a, b, &d);
        cpu->mul_backward(cpu, da, db, g, a, b, &d);
        cpu->add_backward(cpu, da, db, g, &d);
        cpu->div_backward(cpu, da, db, g, a, b, &d);
        cpu->bce_logits_forward(cpu, &loss, &cnt, a, l, (int64_t)n);
        cpu->bce_logits_backward(cpu, da, 1.0f, a, l, (int64_t)n);
        if (round == 0) a0 = ams_cpu_alloc_count(cpu);
    }
    CHECKF(ams_cpu_alloc_count(cpu) == a0, "%zu allocations after warm-up", ams_cpu_alloc_count(cpu) - a0);
    free(a), free(b), free(g), free(y), free(da), free(db), free(l);
    ams_backend_free(cpu);
    return 0;
}

int main(int argc, char **argv) {
    ams_rng_seed(&rng, 777);
    /* threaded paths from 4096 floats of work on (the default is higher), so that the test
     * shapes exercise them */
    setenv("AMS_CPU_MIN_PARALLEL", "4096", 1);
    static const check_case cases[] = {
        {"broadcast_patterns", test_broadcast_patterns},
        {"broadcast_random", test_broadcast_random},
        {"bce_and_activations", test_bce_and_activations},
        {"global_avgpool", test_global_avgpool},
        {"graph_first_gradients", test_graph_first_gradients},
        {"no_steady_state_allocation", test_no_steady_state_allocation},
    };
    return check_run(cases, sizeof cases / sizeof cases[0], argc, argv);
}
