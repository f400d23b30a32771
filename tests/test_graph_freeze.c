/* test_graph_freeze.c - gradients for some parameters only (ams_graph_freeze, ams_dp_freeze):
 * for every subset of frozen parameters of a three-conv network, on the reference and cpu
 * backends, the unfrozen parameters' gradients are bitwise those of the full backward (the
 * oracle) and the frozen ones' buffers are not touched; a counting backend shows the work
 * skipped (no weight gradient for a frozen filter, no backward below the lowest unfrozen
 * layer, none at all with everything frozen); a new plan unfreezes; bad calls are refused;
 * replicas (ams_dp_freeze) give the unfrozen gradients of the step without freezing and
 * zero for the frozen ones.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ams/backend.h"
#include "ams/data_parallel.h"
#include "ams/graph.h"
#include "ams/kernels.h"
#include "ams/rng.h"
#include "check.h"

enum { N = 2, H = 7, W = 9, C1 = 5, C2 = 4, NP = 6 };

static ams_rng rng;

/* conv 3x3 (3->C1) + ReLU, conv 1x1 (C1->C2) + ReLU, conv 1x1 (C2->1), BCE on the logit.
 * Parameters in order: w1 b1 w2 b2 w3 b3. */
static ams_params *params_make(void) {
    ams_err err = {0};
    ams_params *p = ams_params_new();
    if (!p) return NULL;
    ams_params_add(p, "w1", 4, (int64_t[]){3, 3, 3, C1}, 1, &err);
    ams_params_add(p, "b1", 1, (int64_t[]){C1}, 1, &err);
    ams_params_add(p, "w2", 4, (int64_t[]){1, 1, C1, C2}, 1, &err);
    ams_params_add(p, "b2", 1, (int64_t[]){C2}, 1, &err);
    ams_params_add(p, "w3", 4, (int64_t[]){1, 1, C2, 1}, 1, &err);
    ams_params_add(p, "b3", 1, (int64_t[]){1}, 1, &err);
    if (ams_params_alloc(p, &err) != AMS_OK) {
        ams_params_free(p);
        return NULL;
    }
    for (size_t i = 0; i < p->total; i++) p->values[i] = ams_rng_uniform(&rng) - 0.4f;
    return p;
}

static ams_status build(void *ctx, ams_graph *g, int n, int h, int w, int *image, int *labels,
                        int *loss, ams_err *err) {
    (void)ctx;
    ams_conv_opts same = {.padding = AMS_PAD_SAME};
    *image = ams_graph_input(g, "image", 4, (int64_t[]){n, h, w, 3});
    int x = ams_graph_conv2d(g, *image, ams_graph_param(g, 0), ams_graph_param(g, 1), &same);
    x = ams_graph_relu(g, x);
    x = ams_graph_conv2d(g, x, ams_graph_param(g, 2), ams_graph_param(g, 3), &same);
    x = ams_graph_relu(g, x);
    x = ams_graph_conv2d(g, x, ams_graph_param(g, 4), ams_graph_param(g, 5), &same);
    *labels = ams_graph_labels(g, "labels", n, h, w);
    *loss = ams_graph_bce_logits(g, x, *labels);
    return ams_graph_error(g, err);
}

static void batch(int n, float *x, uint8_t *y) {
    for (size_t i = 0; i < (size_t)n * H * W * 3; i++) x[i] = ams_rng_uniform(&rng);
    for (size_t i = 0; i < (size_t)n * H * W; i++) y[i] = (uint8_t)(ams_rng_u64(&rng) & 1);
}

/* ---- a reference backend that records its conv backward calls ---- */
static ams_backend counting;
static int calls, calls_din, calls_dw, calls_db;

static void count_conv_backward(const ams_backend *be, float *din, float *dweight, float *dbias,
                                const float *dout, const float *in, const float *weight,
                                const ams_conv2d_desc *d) {
    calls++;
    calls_din += din != NULL, calls_dw += dweight != NULL, calls_db += dbias != NULL;
    ams_backend_ref()->conv2d_backward(be, din, dweight, dbias, dout, in, weight, d);
}

static const ams_backend *counting_backend(void) {
    counting = *ams_backend_ref();
    counting.conv2d_backward = count_conv_backward;
    counting.conv2d_backward_din_set = NULL;
    return &counting;
}

typedef struct net {
    ams_graph *g;
    int image, labels, loss;
} net;

static int net_make(net *t, ams_params *p) {
    ams_err err = {0};
    t->g = ams_graph_new(p);
    CHECK(t->g);
    CHECKF(build(NULL, t->g, N, H, W, &t->image, &t->labels, &t->loss, &err) == AMS_OK, "%s",
           err.msg);
    CHECKF(ams_graph_plan(t->g, AMS_PLAN_TRAIN, &err) == AMS_OK, "%s", err.msg);
    return 0;
}

/* Forward + backward into zeroed grads, but those of the `sentinel` parameters (NULL: none)
 * filled with 7. */
static int net_grad(net *t, ams_params *p, const ams_backend *be, const float *x, const uint8_t *y,
                    const uint8_t *sentinel) {
    ams_err err = {0};
    for (int i = 0; i < p->count; i++)
        for (int64_t k = 0; k < p->info[i].numel; k++)
            p->grads[p->info[i].offset + (size_t)k] = sentinel && sentinel[i] ? 7.0f : 0.0f;
    CHECKF(ams_graph_set_input(t->g, t->image, x, &err) == AMS_OK, "%s", err.msg);
    CHECKF(ams_graph_set_labels(t->g, t->labels, y, &err) == AMS_OK, "%s", err.msg);
    CHECKF(ams_graph_forward(t->g, be, &err) == AMS_OK, "%s", err.msg);
    CHECKF(ams_graph_backward(t->g, be, t->loss, &err) == AMS_OK, "%s", err.msg);
    return 0;
}

/* Every subset of frozen parameters: unfrozen gradients bitwise the full ones, frozen
 * buffers untouched (filled with 7 before). */
static int test_same_gradients(void) {
    ams_err err = {0};
    const ams_backend *cpu = ams_backend_by_name("cpu", 2, &err);
    CHECKF(cpu, "%s", err.msg);
    const ams_backend *bes[2] = {ams_backend_ref(), cpu};
    ams_params *p = params_make();
    CHECK(p);
    float *x = malloc((size_t)N * H * W * 3 * sizeof *x), *full = malloc(p->total * sizeof *full);
    uint8_t *y = malloc((size_t)N * H * W);
    CHECK(x && y && full);
    batch(N, x, y);
    net t;
    CHECK(net_make(&t, p) == 0);
    for (int b = 0; b < 2; b++) {
        CHECK(ams_graph_freeze(t.g, NULL, &err) == AMS_OK);
        CHECK(net_grad(&t, p, bes[b], x, y, NULL) == 0);
        memcpy(full, p->grads, p->total * sizeof *full);
        for (int set = 0; set < 1 << NP; set++) {
            uint8_t frozen[NP];
            for (int i = 0; i < NP; i++) frozen[i] = (uint8_t)((set >> i) & 1);
            CHECKF(ams_graph_freeze(t.g, frozen, &err) == AMS_OK, "%s", err.msg);
            CHECK(net_grad(&t, p, bes[b], x, y, frozen) == 0);
            for (int i = 0; i < NP; i++) {
                const ams_param_info *pi = &p->info[i];
                for (int64_t k = 0; k < pi->numel; k++) {
                    float got = p->grads[pi->offset + (size_t)k];
                    float want = frozen[i] ? 7.0f : full[pi->offset + (size_t)k];
                    CHECKF(memcmp(&got, &want, sizeof got) == 0,
                           "%s, frozen set 0x%02x: %s[%lld] = %.9g, want %.9g", bes[b]->name, set,
                           pi->name, (long long)k, got, want);
                }
            }
        }
    }
    ams_graph_free(t.g);
    ams_params_free(p);
    ams_backend_free(cpu);
    free(x), free(y), free(full);
    return 0;
}

static int count_pass(net *t, ams_params *p, const uint8_t *frozen, const float *x,
                      const uint8_t *y) {
    ams_err err = {0};
    CHECKF(ams_graph_freeze(t->g, frozen, &err) == AMS_OK, "%s", err.msg);
    calls = calls_din = calls_dw = calls_db = 0;
    return net_grad(t, p, counting_backend(), x, y, NULL);
}

/* The conv backward calls and the gradients each computes. */
static int test_skips_work(void) {
    ams_params *p = params_make();
    CHECK(p);
    float *x = malloc((size_t)N * H * W * 3 * sizeof *x);
    uint8_t *y = malloc((size_t)N * H * W);
    CHECK(x && y);
    batch(N, x, y);
    net t;
    CHECK(net_make(&t, p) == 0);
    /* nothing frozen: three convs, data gradients into the two upper ones' inputs */
    CHECK(count_pass(&t, p, NULL, x, y) == 0);
    CHECKF(calls == 3 && calls_din == 2 && calls_dw == 3 && calls_db == 3, "%d %d %d %d", calls,
           calls_din, calls_dw, calls_db);
    /* the last filter frozen: its weight gradient is skipped, its bias still trains */
    CHECK(count_pass(&t, p, (uint8_t[NP]){0, 0, 0, 0, 1, 0}, x, y) == 0);
    CHECKF(calls == 3 && calls_din == 2 && calls_dw == 2 && calls_db == 3, "%d %d %d %d", calls,
           calls_din, calls_dw, calls_db);
    /* the first conv frozen: no backward of it, and none into its output */
    CHECK(count_pass(&t, p, (uint8_t[NP]){1, 1, 0, 0, 0, 0}, x, y) == 0);
    CHECKF(calls == 2 && calls_din == 1 && calls_dw == 2 && calls_db == 2, "%d %d %d %d", calls,
           calls_din, calls_dw, calls_db);
    /* only the last bias trains: one call, bias gradient only */
    CHECK(count_pass(&t, p, (uint8_t[NP]){1, 1, 1, 1, 1, 0}, x, y) == 0);
    CHECKF(calls == 1 && calls_din == 0 && calls_dw == 0 && calls_db == 1, "%d %d %d %d", calls,
           calls_din, calls_dw, calls_db);
    /* everything frozen: no conv backward at all */
    CHECK(count_pass(&t, p, (uint8_t[NP]){1, 1, 1, 1, 1, 1}, x, y) == 0);
    CHECKF(calls == 0, "%d calls", calls);
    /* a new plan unfreezes */
    ams_err err = {0};
    CHECKF(ams_graph_plan(t.g, AMS_PLAN_TRAIN, &err) == AMS_OK, "%s", err.msg);
    calls = calls_din = calls_dw = calls_db = 0;
    CHECK(net_grad(&t, p, counting_backend(), x, y, NULL) == 0);
    CHECKF(calls == 3 && calls_dw == 3, "%d %d", calls, calls_dw);
    ams_graph_free(t.g);
    ams_params_free(p);
    free(x), free(y);
    return 0;
}

static int test_bad_calls(void) {
    ams_params *p = params_make();
    CHECK(p);
    ams_err err = {0};
    ams_graph *g = ams_graph_new(p);
    CHECK(g);
    int image, labels, loss;
    CHECK(build(NULL, g, N, H, W, &image, &labels, &loss, &err) == AMS_OK);
    CHECK(ams_graph_freeze(g, NULL, &err) == AMS_E_INVAL); /* before the plan */
    CHECK(ams_graph_plan(g, AMS_PLAN_INFER, &err) == AMS_OK);
    CHECK(ams_graph_freeze(g, (uint8_t[NP]){1, 0, 0, 0, 0, 0}, &err) == AMS_E_INVAL);
    ams_graph_free(g);
    ams_params_free(p);
    return 0;
}

/* Replicas: the unfrozen gradients of the step without freezing (the same replicas, so
 * bitwise), zero for the frozen ones; unfreezing restores every gradient. */
static int test_replicas(void) {
    ams_err err = {0};
    const ams_backend *cpu = ams_backend_by_name("cpu", 2, &err);
    CHECKF(cpu, "%s", err.msg);
    ams_params *p = params_make();
    CHECK(p);
    enum { B = 5 };
    float *x = malloc((size_t)B * H * W * 3 * sizeof *x), *full = malloc(p->total * sizeof *full);
    uint8_t *y = malloc((size_t)B * H * W);
    CHECK(x && y && full);
    batch(B, x, y);
    ams_dp *dp = NULL;
    CHECKF(ams_dp_new(&dp, p, build, NULL, B, H, W, 2, cpu, &err) == AMS_OK, "%s", err.msg);
    CHECK(ams_dp_count(dp) == 2);
    double l0, l1;
    CHECK(ams_dp_step(dp, x, y, &l0, &err) == AMS_OK);
    memcpy(full, p->grads, p->total * sizeof *full);
    const uint8_t frozen[NP] = {1, 0, 0, 1, 1, 0};
    CHECK(ams_dp_freeze(dp, frozen, &err) == AMS_OK);
    for (int rep = 0; rep < 2; rep++) {
        for (size_t i = 0; i < p->total; i++) p->grads[i] = 7.0f;
        CHECK(ams_dp_step(dp, x, y, &l1, &err) == AMS_OK);
        CHECK(l1 == l0);
        for (int i = 0; i < NP; i++)
            for (int64_t k = 0; k < p->info[i].numel; k++) {
                size_t e = p->info[i].offset + (size_t)k;
                CHECKF(p->grads[e] == (frozen[i] ? 0.0f : full[e]), "%s[%lld] = %.9g, want %.9g",
                       p->info[i].name, (long long)k, p->grads[e], frozen[i] ? 0.0 : full[e]);
            }
    }
    CHECK(ams_dp_freeze(dp, (uint8_t[NP]){0}, &err) == AMS_OK); /* all zero = none */
    CHECK(ams_dp_step(dp, x, y, &l1, &err) == AMS_OK);
    CHECK(memcmp(full, p->grads, p->total * sizeof *full) == 0);
    CHECK(ams_dp_freeze(dp, frozen, &err) == AMS_OK);
    CHECK(ams_dp_freeze(dp, NULL, &err) == AMS_OK);
    CHECK(ams_dp_step(dp, x, y, &l1, &err) == AMS_OK);
    CHECK(memcmp(full, p->grads, p->total * sizeof *full) == 0);
    ams_dp_free(dp);
    ams_params_free(p);
    ams_backend_free(cpu);
    free(x), free(y), free(full);
    return 0;
}

int main(int argc, char **argv) {
    ams_rng_seed(&rng, 2026);
    static const check_case cases[] = {
        {"same_gradients", test_same_gradients},
        {"skips_work", test_skips_work},
        {"bad_calls", test_bad_calls},
        {"replicas", test_replicas},
    };
    return check_run(cases, sizeof cases / sizeof cases[0], argc, argv);
}
