/* trainer.c - one AMS training phase: restore, choose the mask, K masked Adam steps on horizon
 * batches, encode the update (see trainer.h). */
#include "ams/trainer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ams/data_parallel.h"
#include "ams/optim.h"
#include "ams/rng.h"

#define MAX_SHAPES 4 /* steps kept, one per (batch size, backend, replicas) */

typedef struct shape_graph {
    int n, replicas;
    const ams_backend *be;
    ams_dp *dp;      /* the batch's graphs, split over replicas (data_parallel.h) */
} shape_graph;

struct ams_trainer {
    ams_params *params;
    ams_params *pretrained;
    ams_trainer_build_fn build;
    void *ctx;
    int h, w;
    shape_graph graphs[MAX_SHAPES];
    int ngraphs;
    ams_adam *adam;
    float adam_lr;
    uint8_t *mask;
    int have_mask;
    uint8_t *frozen; /* per tensor: no element in the mask (its gradient is not computed) */
    int phase;
    float *w0;     /* coord_probe: the weights before the probe steps */
    const uint8_t **x; /* batch frames (the horizon's bytes) */
    const uint8_t **y; /* batch labels */
    int xcap;          /* frames the pointer arrays hold */
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void ams_trainer_opts_default(ams_trainer_opts *o) {
    memset(o, 0, sizeof *o);
    o->iters = 20;
    o->batch = 8;
    o->lr = 1e-3f;
    o->strategy = AMS_STRATEGY_COORD;
    o->fraction = 0.05;
    o->restore = 1;
    o->seed = 1;
    o->input_scale = 1.0f;
    o->be = NULL;
    ams_update_opts_default(&o->codec);
}

ams_status ams_trainer_new(ams_trainer **out, ams_params *params, ams_trainer_build_fn build,
                           void *ctx, int h, int w, ams_err *err) {
    *out = NULL;
    AMS_FAIL_IF(!params || !build || !params->values, err, AMS_E_INVAL,
                "trainer: needs allocated params and a build callback");
    AMS_FAIL_IF(h < 1 || w < 1 || h > 16384 || w > 16384, err, AMS_E_INVAL,
                "trainer: bad frame size %dx%d", w, h);
    ams_trainer *t = calloc(1, sizeof *t);
    AMS_FAIL_IF(!t, err, AMS_E_NOMEM, "trainer: out of memory");
    t->params = params;
    t->build = build;
    t->ctx = ctx;
    t->h = h;
    t->w = w;
    t->pretrained = ams_params_clone(params, err);
    t->mask = malloc(params->total ? params->total : 1);
    t->frozen = malloc(params->count ? (size_t)params->count : 1);
    if (!t->pretrained || !t->mask || !t->frozen) {
        int no_mask = !t->mask || !t->frozen;
        ams_trainer_free(t);
        if (no_mask) AMS_FAIL(err, AMS_E_NOMEM, "trainer: out of memory");
        return err ? err->code : AMS_E_NOMEM;
    }
    *out = t;
    return AMS_OK;
}

void ams_trainer_free(ams_trainer *t) {
    if (!t) return;
    for (int i = 0; i < t->ngraphs; i++) ams_dp_free(t->graphs[i].dp);
    ams_params_free(t->pretrained);
    ams_adam_free(t->adam);
    free(t->mask);
    free(t->frozen);
    free(t->w0);
    free((void *)t->x);
    free((void *)t->y);
    free(t);
}

const ams_params *ams_trainer_pretrained(const ams_trainer *t) { return t->pretrained; }

const uint8_t *ams_trainer_mask(const ams_trainer *t) { return t->have_mask ? t->mask : NULL; }

/* The planned step for a batch of o->batch on o's backend, built on first use. */
static ams_status graph_for(ams_trainer *t, const ams_trainer_opts *o, shape_graph **out,
                           ams_err *err) {
    const ams_backend *be = o->be ? o->be : ams_backend_ref();
    int n = o->batch;
    for (int i = 0; i < t->ngraphs; i++)
        if (t->graphs[i].n == n && t->graphs[i].be == be && t->graphs[i].replicas == o->replicas) {
            *out = &t->graphs[i];
            return AMS_OK;
        }
    if (t->ngraphs == MAX_SHAPES) { /* evict the oldest shape */
        ams_dp_free(t->graphs[0].dp);
        memmove(&t->graphs[0], &t->graphs[1], (MAX_SHAPES - 1) * sizeof t->graphs[0]);
        t->ngraphs--;
    }
    shape_graph sg = {.n = n, .replicas = o->replicas, .be = be};
    ams_status s = ams_dp_new(&sg.dp, t->params, t->build, t->ctx, n, t->h, t->w, o->replicas,
                              be, err);
    if (s != AMS_OK) {
        ams_err_prefix(err, "trainer graph for batch %d", n);
        return s;
    }
    t->graphs[t->ngraphs] = sg;
    *out = &t->graphs[t->ngraphs++];
    return AMS_OK;
}

/* The steps after the mask is chosen compute only what the masked Adam step uses: the
 * tensors without a selected element are frozen (no weight gradient, and no backward at all
 * below the lowest selected layer). */
static ams_status freeze_unselected(ams_trainer *t, shape_graph *sg, ams_err *err) {
    const ams_params *p = t->params;
    for (int i = 0; i < p->count; i++) {
        const uint8_t *m = t->mask + p->info[i].offset;
        int64_t k = 0;
        while (k < p->info[i].numel && !m[k]) k++;
        t->frozen[i] = k == p->info[i].numel;
    }
    return ams_dp_freeze(sg->dp, t->frozen, err);
}

/* Draws a batch, runs forward + backward; grads hold d loss / d p of this batch. */
static ams_status batch_grad(ams_trainer *t, shape_graph *sg, const ams_horizon *h,
                             const ams_trainer_opts *o, ams_rng *rng, double *loss,
                             ams_err *err) {
    AMS_TRY(ams_horizon_pick(h, rng, o->batch, t->x, t->y, NULL, err));
    return ams_dp_step_u8(sg->dp, t->x, o->input_scale, t->y, loss, err);
}

/* coord by change: n unmasked Adam steps from the current weights, the mask = the elements
 * that moved most, then the weights and Adam's state go back to where they were. */
static ams_status probe_mask(ams_trainer *t, shape_graph *sg, const ams_horizon *h,
                             const ams_trainer_opts *o, int n, ams_rng *rng,
                             ams_trainer_result *res, ams_err *err) {
    size_t total = t->params->total;
    if (!t->w0) {
        t->w0 = malloc(total ? total * sizeof(float) : 1);
        AMS_FAIL_IF(!t->w0, err, AMS_E_NOMEM, "trainer: out of memory");
    }
    float *v = t->params->values;
    memcpy(t->w0, v, total * sizeof(float));
    double loss = 0;
    for (int k = 0; k < n; k++) {
        AMS_TRY(batch_grad(t, sg, h, o, rng, &loss, err));
        ams_adam_step(t->adam, v, t->params->grads, NULL);
    }
    /* the score goes into grads (overwritten by the next batch anyway) */
    for (size_t i = 0; i < total; i++) t->params->grads[i] = v[i] - t->w0[i];
    AMS_TRY(ams_coord_mask(t->params, o->strategy, o->fraction, t->params->grads, rng, t->mask,
                           &res->selected, err));
    t->have_mask = 1;
    memcpy(v, t->w0, total * sizeof(float));
    ams_adam_reset(t->adam);
    return freeze_unselected(t, sg, err);
}

ams_status ams_trainer_phase(ams_trainer *t, const ams_horizon *h, const ams_trainer_opts *o,
                             ams_trainer_result *res, ams_err *err) {
    double t0 = now_s();
    memset(res, 0, sizeof *res);
    AMS_FAIL_IF(o->iters < 1 || o->iters > 1000000 || o->batch < 1 || o->batch > 4096, err,
                AMS_E_INVAL, "trainer: iterations (%d) and batch (%d) must be >= 1", o->iters,
                o->batch);
    AMS_FAIL_IF(!(o->lr > 0) || !isfinite(o->lr), err, AMS_E_INVAL, "trainer: bad lr");
    AMS_FAIL_IF(o->strategy != AMS_STRATEGY_FULL && !(o->fraction > 0 && o->fraction <= 1), err,
                AMS_E_INVAL, "trainer: fraction must be in (0, 1], got %g", o->fraction);
    AMS_FAIL_IF(o->replicas < 0 || o->replicas > AMS_DP_MAX_REPLICAS, err, AMS_E_INVAL,
                "trainer: replicas must be in 0..%d, got %d", AMS_DP_MAX_REPLICAS, o->replicas);
    AMS_FAIL_IF(o->coord_probe < 0 || o->coord_probe > 10000, err, AMS_E_INVAL,
                "trainer: coord probe steps must be in 0..10000, got %d", o->coord_probe);
    AMS_FAIL_IF(!h || ams_horizon_count(h) == 0, err, AMS_E_INVAL,
                "trainer: the horizon holds no labelled frame");
    AMS_FAIL_IF(ams_horizon_height(h) != t->h || ams_horizon_width(h) != t->w, err, AMS_E_SHAPE,
                "trainer: horizon frames are %dx%d, the trainer's %dx%d", ams_horizon_width(h),
                ams_horizon_height(h), t->w, t->h);
    if (o->batch > t->xcap) {
        const uint8_t **x = realloc((void *)t->x, (size_t)o->batch * sizeof *x);
        if (x) t->x = x;
        const uint8_t **y = realloc((void *)t->y, (size_t)o->batch * sizeof *y);
        if (y) t->y = y;
        AMS_FAIL_IF(!x || !y, err, AMS_E_NOMEM, "trainer: out of memory for the batch");
        t->xcap = o->batch;
    }
    if (!t->adam || t->adam_lr != o->lr) {
        ams_adam_free(t->adam);
        ams_adam_config cfg = {o->lr, 0.9f, 0.999f, 1e-8f};
        t->adam = ams_adam_new(t->params->total, &cfg);
        AMS_FAIL_IF(!t->adam, err, AMS_E_NOMEM, "trainer: out of memory for Adam");
        t->adam_lr = o->lr;
    }
    ams_adam_reset(t->adam);
    if (o->restore) AMS_TRY(ams_params_copy_values(t->params, t->pretrained, err));

    shape_graph *sg = NULL;
    AMS_TRY(graph_for(t, o, &sg, err));
    ams_rng rng;
    ams_rng_seed(&rng, o->seed * 0x9E3779B97F4A7C15ull + (uint64_t)t->phase);

    double loss = 0;
    int probe = o->strategy == AMS_STRATEGY_COORD ? o->coord_probe : 0;
    AMS_TRY(ams_dp_freeze(sg->dp, NULL, err)); /* the mask's scores need every gradient */
    if (probe > 0) AMS_TRY(probe_mask(t, sg, h, o, probe, &rng, res, err));
    for (int k = 0; k < o->iters; k++) {
        AMS_TRY(batch_grad(t, sg, h, o, &rng, &loss, err));
        if (k == 0) {
            res->loss_first = loss;
            /* the mask: the first batch's gradient magnitude scores coord */
            if (probe == 0) {
                AMS_TRY(ams_coord_mask(t->params, o->strategy, o->fraction, t->params->grads,
                                       &rng, t->mask, &res->selected, err));
                t->have_mask = 1;
                AMS_TRY(freeze_unselected(t, sg, err));
            }
        }
        res->loss_last = loss;
        ams_adam_step(t->adam, t->params->values, t->params->grads, t->mask);
    }
    res->phase = t->phase++;
    res->compute_s = now_s() - t0;
    return AMS_OK;
}

ams_status ams_trainer_encode(ams_trainer *t, const ams_trainer_opts *o, const float *base,
                              uint8_t **msg, size_t *len, float *applied,
                              ams_trainer_result *res, ams_err *err) {
    double t0 = now_s();
    *msg = NULL;
    *len = 0;
    AMS_FAIL_IF(!t->have_mask, err, AMS_E_INVAL, "trainer: encode before any phase");
    AMS_TRY(ams_update_encode(t->params, base, t->params->values, &o->codec, msg, len, applied,
                              err));
    const float *v = t->params->values;
    size_t changed = 0;
    for (size_t i = 0; i < t->params->total; i++)
        changed += memcmp(&v[i], &base[i], sizeof(float)) != 0;
    res->changed = changed;
    res->update_bytes = *len;
    /* the reference format: the full model sends every tensor, the others the phase's mask */
    uint8_t *ref = NULL;
    size_t ref_len = 0;
    ams_status s;
    if (o->strategy == AMS_STRATEGY_FULL) {
        uint8_t *all = malloc(t->params->total ? t->params->total : 1);
        if (!all) {
            free(*msg);
            *msg = NULL;
            AMS_FAIL(err, AMS_E_NOMEM, "trainer: out of memory");
        }
        memset(all, 1, t->params->total);
        s = ams_update_ref_encode(t->params, 1, all, v, &ref, &ref_len, err);
        free(all);
    } else {
        s = ams_update_ref_encode(t->params, 0, t->mask, v, &ref, &ref_len, err);
    }
    free(ref);
    if (s != AMS_OK) {
        free(*msg);
        *msg = NULL;
        return s;
    }
    res->ref_bytes = ref_len;
    res->compute_s += now_s() - t0;
    return AMS_OK;
}

ams_status ams_trainer_tfjs_build(void *ctx, ams_graph *g, int n, int h, int w, int *image,
                                  int *labels, int *loss, ams_err *err) {
    const ams_tfjs_model *m = ctx;
    AMS_FAIL_IF(ams_tfjs_output_count(m) < 1, err, AMS_E_INVAL, "trainer: model has no output");
    const char *logit = ams_tfjs_logit_name(m, ams_tfjs_output_node(m, 0));
    AMS_FAIL_IF(!logit, err, AMS_E_UNSUPPORTED,
                "trainer: the model's output '%s' is not Sigmoid(logit); cannot train BCE",
                ams_tfjs_output_node(m, 0));
    ams_tfjs_build_opts bo = {.n = n, .h = h, .w = w};
    const char *outs[1] = {logit};
    int out = -1;
    AMS_TRY(ams_tfjs_build(m, g, &bo, outs, 1, &out, image, err));
    int64_t shape[AMS_MAX_DIMS];
    int nd = ams_graph_shape(g, out, shape);
    AMS_FAIL_IF(nd != 4 || shape[0] != n || shape[3] != 1, err, AMS_E_SHAPE,
                "trainer: logit '%s' is not (n,h,w,1)", logit);
    if (shape[1] != h || shape[2] != w)
        out = ams_graph_resize_bilinear(g, out, h, w, AMS_RESIZE_HALF_PIXEL);
    *labels = ams_graph_labels(g, "labels", n, h, w);
    *loss = ams_graph_bce_logits(g, out, *labels);
    return ams_graph_error(g, err);
}
