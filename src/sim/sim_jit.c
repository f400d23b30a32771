/* sim_jit.c - the JITNet-like baseline's server: train the whole student on the latest
 * teacher frame, one Adam step at a time, until the student matches it (its mIoU on that
 * frame reaches a target) or a step budget runs out (Mullapudi et al., "Online Model
 * Distillation for Efficient Video Inference", ICCV 2019: accuracy threshold, at most u_max
 * updates per keyframe; here both are flags). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ams/coord.h"
#include "ams/graph.h"
#include "ams/metrics.h"
#include "ams/optim.h"
#include "sim_internal.h"

struct ams_sim_jit {
    ams_params *params;     /* the server's (not owned) */
    int h, w;
    ams_graph *gi;          /* inference, batch 1 */
    int gi_in, gi_out, gi_c;
    ams_graph *gt;          /* training, batch 1 */
    int gt_image, gt_labels, gt_loss;
    ams_adam *adam;
    float adam_lr;
    uint8_t *mask;          /* every trainable element */
    size_t trainable;       /* their count */
    float *x;
    uint8_t *pred;
    ams_confmat cm;
};

void ams_sim_jit_free(ams_sim_jit *j) {
    if (!j) return;
    ams_graph_free(j->gi);
    ams_graph_free(j->gt);
    ams_adam_free(j->adam);
    free(j->mask);
    free(j->x);
    free(j->pred);
    free(j);
}

ams_status ams_sim_jit_new(ams_sim_jit **out, ams_sim_student *server, int h, int w,
                           int classes, const ams_sim_config *c, ams_err *err) {
    *out = NULL;
    AMS_FAIL_IF(!server || !server->params || !server->build_infer || !server->build_train, err,
                AMS_E_INVAL, "sim jit: needs the server's student with both graph builders");
    ams_sim_jit *j = calloc(1, sizeof *j);
    AMS_FAIL_IF(!j, err, AMS_E_NOMEM, "sim jit: out of memory");
    j->params = server->params;
    j->h = h;
    j->w = w;
    size_t npix = (size_t)h * (size_t)w, k = 0;
    ams_status st = ams_sim_confmat_init(&j->cm, c, classes, err);
    j->gi = ams_graph_new(j->params);
    j->gt = ams_graph_new(j->params);
    j->mask = malloc(j->params->total ? j->params->total : 1);
    j->x = malloc(npix * 3 * sizeof(float));
    j->pred = malloc(npix);
    if (st == AMS_OK && (!j->gi || !j->gt || !j->mask || !j->x || !j->pred))
        st = ams_err_set(err, AMS_E_NOMEM, "sim jit: out of memory");
    if (st == AMS_OK)
        st = server->build_infer(server->ctx, j->gi, h, w, &j->gi_in, &j->gi_out, err);
    if (st == AMS_OK) {
        ams_graph_keep(j->gi, j->gi_out);
        st = ams_graph_plan(j->gi, AMS_PLAN_INFER, err);
    }
    if (st == AMS_OK) {
        int64_t shape[AMS_MAX_DIMS];
        int nd = ams_graph_shape(j->gi, j->gi_out, shape);
        if (nd != 4 || shape[1] != h || shape[2] != w || shape[3] < 1)
            st = ams_err_set(err, AMS_E_SHAPE, "sim jit: the student's output is not (1,%d,%d,C)",
                             h, w);
        else j->gi_c = (int)shape[3];
    }
    if (st == AMS_OK)
        st = server->build_train(server->ctx, j->gt, 1, h, w, &j->gt_image, &j->gt_labels,
                                 &j->gt_loss, err);
    if (st == AMS_OK) st = ams_graph_plan(j->gt, AMS_PLAN_TRAIN, err);
    if (st == AMS_OK)
        st = ams_coord_mask(j->params, AMS_STRATEGY_FULL, 1.0, NULL, NULL, j->mask, &k, err);
    j->trainable = k;
    if (st != AMS_OK) {
        ams_sim_jit_free(j);
        return st;
    }
    *out = j;
    return AMS_OK;
}

/* The student's mIoU on the frame in j->x with the params as they are now. */
static ams_status frame_miou(ams_sim_jit *j, const ams_sim_config *c, const ams_backend *be,
                             const uint8_t *label, double *miou, ams_err *err) {
    AMS_TRY(ams_graph_set_input(j->gi, j->gi_in, j->x, err));
    AMS_TRY(ams_graph_forward(j->gi, be, err));
    const float *y = ams_graph_value(j->gi, j->gi_out);
    AMS_FAIL_IF(!y, err, AMS_E_INTERNAL, "sim jit: the student's output was not kept");
    size_t npix = (size_t)j->h * (size_t)j->w;
    ams_sim_predict(c, y, npix, j->gi_c, j->pred);
    *miou = ams_label_miou(&j->cm, label, j->pred, npix, AMS_CM_TRUTH);
    return AMS_OK;
}

ams_status ams_sim_jit_train(ams_sim_jit *j, const ams_sim_config *c, const uint8_t *rgb,
                             const uint8_t *label, ams_sim_jit_result *res, ams_err *err) {
    const ams_backend *be = c->train.be ? c->train.be : ams_backend_ref();
    res->iters = 0;
    res->loss_first = res->loss_last = NAN;
    res->trainable = j->trainable;
    AMS_FAIL_IF(c->jit_iters < 1 || !(c->train.lr > 0), err, AMS_E_INVAL,
                "sim jit: needs >= 1 step and lr > 0");
    if (!j->adam || j->adam_lr != c->train.lr) {
        ams_adam_free(j->adam);
        ams_adam_config cfg = {c->train.lr, 0.9f, 0.999f, 1e-8f};
        j->adam = ams_adam_new(j->params->total, &cfg);
        AMS_FAIL_IF(!j->adam, err, AMS_E_NOMEM, "sim jit: out of memory for Adam");
        j->adam_lr = c->train.lr;
    }
    size_t n3 = (size_t)j->h * (size_t)j->w * 3;
    for (size_t i = 0; i < n3; i++) j->x[i] = (float)rgb[i] * c->train.input_scale;
    AMS_TRY(ams_graph_set_labels(j->gt, j->gt_labels, label, err));
    for (int k = 0;; k++) {
        double m = NAN;
        AMS_TRY(frame_miou(j, c, be, label, &m, err));
        if (k == 0) res->miou_first = m;
        res->miou_last = m;
        /* a frame with nothing to count (all ignored) has nothing to teach */
        if (isnan(m) || m >= c->jit_target || k == c->jit_iters) break;
        AMS_TRY(ams_graph_set_input(j->gt, j->gt_image, j->x, err));
        AMS_TRY(ams_graph_forward(j->gt, be, err));
        double loss = ams_graph_value(j->gt, j->gt_loss)[0];
        if (k == 0) res->loss_first = loss;
        res->loss_last = loss;
        ams_params_zero_grads(j->params);
        AMS_TRY(ams_graph_backward(j->gt, be, j->gt_loss, err));
        ams_adam_step(j->adam, j->params->values, j->params->grads, j->mask);
        res->iters = k + 1;
    }
    return AMS_OK;
}
