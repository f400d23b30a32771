/* test_data_parallel.c - a training step split over replicas (data_parallel.h) against one
 * graph over the whole batch (the oracle): the loss and every parameter gradient agree
 * within float rounding for 1..5 replicas, even and uneven splits, on the reference and
 * cpu backends, with ignored label pixels spread unevenly (the pixel weighting) and a
 * replica whose pixels are all ignored; replica counts; bad arguments; params' values are
 * never written; and the trainer's phase with replicas against one without.
 */
#include <malloc.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ams/backend.h"
#include "ams/data_parallel.h"
#include "ams/rng.h"
#include "ams/trainer.h"
#include "check.h"

enum { H = 9, W = 11, C1 = 6 };

static ams_rng rng;

/* A small student: conv 3x3 (3->C1) + ReLU, conv 1x1 (C1->1) + bias, BCE on the logit. */
typedef struct model {
    ams_params *p;
    int w1, b1, w2, b2;
} model;

static int model_make(model *m) {
    ams_err err = {0};
    m->p = ams_params_new();
    CHECK(m->p);
    m->w1 = ams_params_add(m->p, "w1", 4, (int64_t[]){3, 3, 3, C1}, 1, &err);
    m->b1 = ams_params_add(m->p, "b1", 1, (int64_t[]){C1}, 1, &err);
    m->w2 = ams_params_add(m->p, "w2", 4, (int64_t[]){1, 1, C1, 1}, 1, &err);
    m->b2 = ams_params_add(m->p, "b2", 1, (int64_t[]){1}, 1, &err);
    CHECKF(ams_params_alloc(m->p, &err) == AMS_OK, "%s", err.msg);
    for (size_t i = 0; i < m->p->total; i++) m->p->values[i] = ams_rng_uniform(&rng) - 0.5f;
    return 0;
}

static ams_status build(void *ctx, ams_graph *g, int n, int h, int w, int *image, int *labels,
                        int *loss, ams_err *err) {
    const model *m = ctx;
    ams_conv_opts same = {.padding = AMS_PAD_SAME};
    *image = ams_graph_input(g, "image", 4, (int64_t[]){n, h, w, 3});
    int x = ams_graph_conv2d(g, *image, ams_graph_param(g, m->w1), ams_graph_param(g, m->b1), &same);
    x = ams_graph_relu(g, x);
    x = ams_graph_conv2d(g, x, ams_graph_param(g, m->w2), ams_graph_param(g, m->b2), &same);
    *labels = ams_graph_labels(g, "labels", n, h, w);
    *loss = ams_graph_bce_logits(g, x, *labels);
    return ams_graph_error(g, err);
}

/* Frames and labels for n frames: 0/1 labels, some 255 (ignored), more of them in the
 * first frames; frame `blank` (if >= 0) entirely ignored. */
static void batch(int n, float *x, uint8_t *y, int blank) {
    for (size_t i = 0; i < (size_t)n * H * W * 3; i++) x[i] = ams_rng_uniform(&rng);
    for (int f = 0; f < n; f++)
        for (int i = 0; i < H * W; i++) {
            uint8_t l = (uint8_t)(ams_rng_u64(&rng) & 1);
            if (f == blank || ams_rng_uniform(&rng) < 0.4f / (float)(f + 1)) l = 255;
            y[(size_t)f * H * W + (size_t)i] = l;
        }
}

/* One step with `replicas` on be vs one graph on the reference backend. */
static int check_step(model *m, const ams_backend *be, int n, int replicas, int blank) {
    ams_err err = {0};
    float *x = malloc((size_t)n * H * W * 3 * sizeof *x);
    uint8_t *y = malloc((size_t)n * H * W);
    float *v0 = malloc(m->p->total * sizeof *v0), *g1 = malloc(m->p->total * sizeof *g1);
    CHECK(x && y && v0 && g1);
    batch(n, x, y, blank);
    memcpy(v0, m->p->values, m->p->total * sizeof *v0);
    ams_dp *one = NULL, *many = NULL;
    CHECKF(ams_dp_new(&one, m->p, build, m, n, H, W, 1, ams_backend_ref(), &err) == AMS_OK, "%s",
           err.msg);
    CHECKF(ams_dp_new(&many, m->p, build, m, n, H, W, replicas, be, &err) == AMS_OK, "%s", err.msg);
    CHECK(ams_dp_count(one) == 1 && ams_dp_batch(many) == n);
    CHECK(ams_dp_count(many) == (replicas < n ? replicas : n));
    double l1 = 0, l2 = 0;
    for (size_t i = 0; i < m->p->total; i++) m->p->grads[i] = 7.0f; /* overwritten, not added */
    CHECKF(ams_dp_step(one, x, y, &l1, &err) == AMS_OK, "%s", err.msg);
    memcpy(g1, m->p->grads, m->p->total * sizeof *g1);
    for (int rep = 0; rep < 2; rep++) { /* twice: the replicas' gradients are zeroed per step */
        for (size_t i = 0; i < m->p->total; i++) m->p->grads[i] = -3.0f;
        CHECKF(ams_dp_step(many, x, y, &l2, &err) == AMS_OK, "%s", err.msg);
        CHECKF(fabs(l1 - l2) <= 1e-5 * fabs(l1) + 1e-7, "loss %.9g vs %.9g (%d replicas of %d)",
               l2, l1, replicas, n);
        double gmax = 1e-6, dmax = 0;
        for (size_t i = 0; i < m->p->total; i++) {
            gmax = fmax(gmax, fabs(g1[i]));
            dmax = fmax(dmax, fabs((double)g1[i] - m->p->grads[i]));
        }
        CHECKF(dmax <= 2e-5 * gmax, "gradients differ by %.3g (max %.3g; %d replicas of %d, %s)",
               dmax, gmax, replicas, n, be->name);
    }
    CHECK(memcmp(v0, m->p->values, m->p->total * sizeof *v0) == 0);
    ams_dp_free(one);
    ams_dp_free(many);
    free(x), free(y), free(v0), free(g1);
    return 0;
}

static int test_matches_one_graph(void) {
    model m;
    CHECK(model_make(&m) == 0);
    ams_err err = {0};
    const ams_backend *cpu = ams_backend_by_name("cpu", 2, &err);
    CHECKF(cpu, "%s", err.msg);
    const ams_backend *bes[2] = {ams_backend_ref(), cpu};
    int rc = 0;
    for (int b = 0; b < 2 && !rc; b++)
        for (int n = 1; n <= 7 && !rc; n += 2)
            for (int r = 1; r <= 5 && !rc; r++) rc = check_step(&m, bes[b], n, r, -1);
    /* a replica whose pixels are all ignored: weight 0, its frames count for nothing */
    if (!rc) rc = check_step(&m, cpu, 4, 4, 2);
    if (!rc) rc = check_step(&m, ams_backend_ref(), 6, 3, 0);
    ams_backend_free(cpu);
    ams_params_free(m.p);
    return rc;
}

static int test_replica_count(void) {
    ams_err err = {0};
    const ams_backend *cpu = ams_backend_by_name("cpu", 3, &err);
    CHECKF(cpu, "%s", err.msg);
    CHECK(ams_dp_replicas(cpu, 8, 0) == 3);
    CHECK(ams_dp_replicas(cpu, 2, 0) == 2);
    CHECK(ams_dp_replicas(cpu, 8, 1) == 1);
    CHECK(ams_dp_replicas(cpu, 8, 5) == 5);
    CHECK(ams_dp_replicas(ams_backend_ref(), 8, 0) == 1);
    CHECK(ams_dp_replicas(ams_backend_ref(), 8, 2) == 2);
    CHECK(ams_dp_replicas(cpu, 1000, 1000) == AMS_DP_MAX_REPLICAS);
    ams_backend_free(cpu);
    return 0;
}

static int test_bad_arguments(void) {
    model m;
    CHECK(model_make(&m) == 0);
    ams_err err = {0};
    ams_dp *dp = (ams_dp *)&err; /* must come back NULL */
    CHECK(ams_dp_new(&dp, m.p, build, &m, 0, H, W, 0, ams_backend_ref(), &err) == AMS_E_INVAL);
    CHECK(dp == NULL);
    CHECK(ams_dp_new(&dp, m.p, build, &m, 2, H, W, -1, ams_backend_ref(), &err) == AMS_E_INVAL);
    CHECK(ams_dp_new(&dp, m.p, NULL, &m, 2, H, W, 0, ams_backend_ref(), &err) == AMS_E_INVAL);
    CHECK(ams_dp_new(&dp, m.p, build, &m, 2, H, W, 0, NULL, &err) == AMS_E_INVAL);
    ams_params *unalloc = ams_params_new();
    CHECK(ams_dp_new(&dp, unalloc, build, &m, 2, H, W, 0, ams_backend_ref(), &err) == AMS_E_INVAL);
    ams_params_free(unalloc);
    /* a build error of a replica comes back with the replica named */
    CHECK(ams_dp_new(&dp, m.p, build, &m, 2, 0, W, 2, ams_backend_ref(), &err) == AMS_E_INVAL);
    ams_params_free(m.p);
    return 0;
}

/* A step on frames held apart as bytes (ams_dp_step_u8, as the trainer draws them from the
 * horizon) is the step on those bytes times the scale as floats, bit for bit: loss and
 * gradients, for 1..3 replicas on both backends (H*W*3 = 297: the conversion's tail). */
static int test_bytes_step(void) {
    model m;
    CHECK(model_make(&m) == 0);
    ams_err err = {0};
    const ams_backend *cpu = ams_backend_by_name("cpu", 2, &err);
    CHECKF(cpu, "%s", err.msg);
    enum { B = 5, F = H * W * 3 };
    const float scale = 1.0f / 255;
    float *x = malloc((size_t)B * F * sizeof *x), *g1 = malloc(m.p->total * sizeof *g1);
    uint8_t *y = malloc((size_t)B * H * W), *bytes[B], *labs[B];
    CHECK(x && y && g1);
    for (int f = 0; f < B; f++) { /* apart, in their own allocations, the labels too */
        bytes[f] = malloc(F);
        labs[f] = malloc((size_t)H * W);
        CHECK(bytes[f] && labs[f]);
        for (int i = 0; i < F; i++) {
            bytes[f][i] = (uint8_t)(ams_rng_u64(&rng) & 255);
            x[(size_t)f * F + (size_t)i] = (float)bytes[f][i] * scale;
        }
        for (int i = 0; i < H * W; i++) {
            uint8_t l = (uint8_t)(ams_rng_u64(&rng) % 3);
            labs[f][i] = y[(size_t)f * H * W + (size_t)i] = l == 2 ? 255 : l;
        }
    }
    const ams_backend *bes[2] = {ams_backend_ref(), cpu};
    for (int b = 0; b < 2; b++)
        for (int r = 1; r <= 3; r++) {
            ams_dp *dp = NULL;
            CHECKF(ams_dp_new(&dp, m.p, build, &m, B, H, W, r, bes[b], &err) == AMS_OK, "%s",
                   err.msg);
            double l1 = 0, l2 = 0;
            CHECKF(ams_dp_step(dp, x, y, &l1, &err) == AMS_OK, "%s", err.msg);
            memcpy(g1, m.p->grads, m.p->total * sizeof *g1);
            for (size_t i = 0; i < m.p->total; i++) m.p->grads[i] = 5.0f;
            CHECKF(ams_dp_step_u8(dp, (const uint8_t *const *)bytes, scale,
                                  (const uint8_t *const *)labs, &l2, &err) == AMS_OK,
                   "%s", err.msg);
            CHECKF(l1 == l2, "loss %.9g vs %.9g (%s, %d replicas)", l2, l1, bes[b]->name, r);
            CHECKF(memcmp(g1, m.p->grads, m.p->total * sizeof *g1) == 0,
                   "gradients differ (%s, %d replicas)", bes[b]->name, r);
            /* a missing frame, an overflowing scale: errors, no step */
            uint8_t *keep = bytes[B - 1];
            bytes[B - 1] = NULL;
            CHECK(ams_dp_step_u8(dp, (const uint8_t *const *)bytes, scale,
                                 (const uint8_t *const *)labs, &l2, &err) == AMS_E_INVAL);
            bytes[B - 1] = keep;
            CHECK(ams_dp_step_u8(dp, (const uint8_t *const *)bytes, 1e38f,
                                 (const uint8_t *const *)labs, &l2, &err) == AMS_E_RANGE);
            CHECK(ams_dp_step_u8(dp, NULL, scale, (const uint8_t *const *)labs, &l2, &err) ==
                  AMS_E_INVAL);
            ams_dp_free(dp);
        }
    for (int f = 0; f < B; f++) free(bytes[f]), free(labs[f]);
    free(x), free(y), free(g1);
    ams_backend_free(cpu);
    ams_params_free(m.p);
    return 0;
}

/* After a warm-up, steps on replicas (cpu backends, caches made) leave glibc's in-use
 * heap unchanged: nothing allocated per step, nothing leaked. */
static int test_no_steady_state_allocation(void) {
    model m;
    CHECK(model_make(&m) == 0);
    ams_err err = {0};
    const ams_backend *cpu = ams_backend_by_name("cpu", 2, &err);
    CHECKF(cpu, "%s", err.msg);
    enum { B = 6 };
    float *x = malloc((size_t)B * H * W * 3 * sizeof *x);
    uint8_t *y = malloc((size_t)B * H * W);
    CHECK(x && y);
    batch(B, x, y, -1);
    ams_dp *dp = NULL;
    CHECKF(ams_dp_new(&dp, m.p, build, &m, B, H, W, 0, cpu, &err) == AMS_OK, "%s", err.msg);
    CHECK(ams_dp_count(dp) == 2);
    double loss;
    for (int i = 0; i < 3; i++) CHECK(ams_dp_step(dp, x, y, &loss, &err) == AMS_OK);
    size_t before = mallinfo2().uordblks;
    for (int i = 0; i < 3; i++) CHECK(ams_dp_step(dp, x, y, &loss, &err) == AMS_OK);
    size_t after = mallinfo2().uordblks;
    CHECKF(after == before, "in-use heap %zu -> %zu bytes over 3 steps", before, after);
    ams_dp_free(dp);
    free(x), free(y);
    ams_backend_free(cpu);
    ams_params_free(m.p);
    return 0;
}

/* The trainer with replicas: the same phase as with one graph, within rounding. */
static int test_trainer_replicas(void) {
    model m;
    CHECK(model_make(&m) == 0);
    ams_err err = {0};
    const ams_backend *cpu = ams_backend_by_name("cpu", 2, &err);
    CHECKF(cpu, "%s", err.msg);
    ams_horizon *hz = ams_horizon_new(H, W, 1000.0, 16, &err);
    CHECKF(hz, "%s", err.msg);
    uint8_t *rgb = malloc((size_t)H * W * 3), *lab = malloc((size_t)H * W);
    CHECK(rgb && lab);
    for (int f = 0; f < 6; f++) {
        for (int i = 0; i < H * W * 3; i++) rgb[i] = (uint8_t)(ams_rng_u64(&rng) & 255);
        for (int i = 0; i < H * W; i++) lab[i] = (uint8_t)(ams_rng_u64(&rng) % 3 == 0 ? 255 : ams_rng_u64(&rng) & 1);
        CHECKF(ams_horizon_add(hz, (double)f, rgb, lab, &err) == AMS_OK, "%s", err.msg);
    }
    float *start = malloc(m.p->total * sizeof *start), *w1 = malloc(m.p->total * sizeof *w1);
    CHECK(start && w1);
    memcpy(start, m.p->values, m.p->total * sizeof *start);
    double loss[2];
    for (int k = 0; k < 2; k++) {
        memcpy(m.p->values, start, m.p->total * sizeof *start);
        ams_trainer *t = NULL;
        CHECKF(ams_trainer_new(&t, m.p, build, &m, H, W, &err) == AMS_OK, "%s", err.msg);
        ams_trainer_opts o;
        ams_trainer_opts_default(&o);
        o.iters = 5, o.batch = 5, o.be = cpu, o.replicas = k == 0 ? 1 : 3;
        o.strategy = AMS_STRATEGY_FULL, o.input_scale = 1.0f / 255;
        ams_trainer_result r;
        CHECKF(ams_trainer_phase(t, hz, &o, &r, &err) == AMS_OK, "%s", err.msg);
        loss[k] = r.loss_last;
        if (k == 0) memcpy(w1, m.p->values, m.p->total * sizeof *w1);
        ams_trainer_free(t);
    }
    CHECKF(fabs(loss[0] - loss[1]) <= 1e-4 * fabs(loss[0]), "loss %.7g vs %.7g", loss[1], loss[0]);
    double dmax = 0;
    for (size_t i = 0; i < m.p->total; i++) dmax = fmax(dmax, fabs((double)w1[i] - m.p->values[i]));
    CHECKF(dmax <= 1e-4, "weights after the phase differ by %.3g", dmax);
    ams_trainer_opts o;
    ams_trainer_opts_default(&o);
    o.replicas = -1;
    ams_trainer *t = NULL;
    CHECK(ams_trainer_new(&t, m.p, build, &m, H, W, &err) == AMS_OK);
    ams_trainer_result r;
    CHECK(ams_trainer_phase(t, hz, &o, &r, &err) == AMS_E_INVAL);
    ams_trainer_free(t);
    /* a horizon of another frame size: refused, nothing read */
    ams_trainer_opts_default(&o);
    o.be = cpu;
    CHECK(ams_trainer_new(&t, m.p, build, &m, H + 1, W, &err) == AMS_OK);
    CHECK(ams_trainer_phase(t, hz, &o, &r, &err) == AMS_E_SHAPE);
    ams_trainer_free(t);
    free(rgb), free(lab), free(start), free(w1);
    ams_horizon_free(hz);
    ams_backend_free(cpu);
    ams_params_free(m.p);
    return 0;
}

int main(int argc, char **argv) {
    ams_rng_seed(&rng, 77);
    static const check_case cases[] = {
        {"matches_one_graph", test_matches_one_graph},
        {"replica_count", test_replica_count},
        {"bad_arguments", test_bad_arguments},
        {"no_steady_state_allocation", test_no_steady_state_allocation},
        {"trainer_replicas", test_trainer_replicas},
        {"bytes_step", test_bytes_step},
    };
    return check_run(cases, sizeof cases / sizeof cases[0], argc, argv);
}
