/* sim_deeplab.c - a DeepLabV3-MobileNetV2 student for the emulator: its inference and
 * training graph builders (the multi-class pairs, e.g. MobileNetV2 <- Xception65 on a
 * per-video class subset). */
#include <string.h>

#include "ams/sim.h"

void ams_sim_deeplab_setup(ams_sim_deeplab *d, int num_classes, int output_stride,
                           ams_sim_config *c) {
    memset(d, 0, sizeof *d);
    d->cfg.num_classes = num_classes;
    d->cfg.output_stride = output_stride;
    int n = c->nsubset;
    if (n < 0) n = 0;
    if (n > AMS_CM_MAX_CLASSES) n = AMS_CM_MAX_CLASSES;
    memcpy(d->subset, c->subset, (size_t)n * sizeof d->subset[0]);
    d->nsubset = n;
    c->train.input_scale = 1.0f;
}

/* Checks that the network's output is (n,h,w,classes). */
static ams_status check_logits(ams_graph *g, const ams_sim_deeplab *d, int logits, int n, int h,
                               int w, ams_err *err) {
    AMS_TRY(ams_graph_error(g, err));
    int64_t shape[AMS_MAX_DIMS];
    int nd = ams_graph_shape(g, logits, shape);
    AMS_FAIL_IF(nd != 4 || shape[0] != n || shape[1] != h || shape[2] != w ||
                    shape[3] != d->cfg.num_classes,
                err, AMS_E_SHAPE, "sim deeplab: the logits are not (%d,%d,%d,%d)", n, h, w,
                d->cfg.num_classes);
    return AMS_OK;
}

static ams_status check_ctx(const ams_sim_deeplab *d, ams_err *err) {
    AMS_FAIL_IF(!d, err, AMS_E_INVAL, "sim deeplab: no model config");
    AMS_FAIL_IF(d->nsubset < 0 || d->nsubset > AMS_CM_MAX_CLASSES, err, AMS_E_INVAL,
                "sim deeplab: %d subset classes (0..%d)", d->nsubset, AMS_CM_MAX_CLASSES);
    for (int i = 0; i < d->nsubset; i++)
        AMS_FAIL_IF(d->subset[i] < 0 || d->subset[i] >= d->cfg.num_classes, err, AMS_E_INVAL,
                    "sim deeplab: subset class %d is not one of the model's 0..%d",
                    d->subset[i], d->cfg.num_classes - 1);
    return AMS_OK;
}

ams_status ams_sim_deeplab_infer(void *ctx, ams_graph *g, int h, int w, int *image, int *logits,
                                 ams_err *err) {
    const ams_sim_deeplab *d = ctx;
    AMS_TRY(check_ctx(d, err));
    AMS_TRY(ams_deeplab_mnv2_build(g, &d->cfg, 1, h, w, 0, image, logits, err));
    return check_logits(g, d, *logits, 1, h, w, err);
}

ams_status ams_sim_deeplab_train(void *ctx, ams_graph *g, int n, int h, int w, int *image,
                                 int *labels, int *loss, ams_err *err) {
    const ams_sim_deeplab *d = ctx;
    AMS_TRY(check_ctx(d, err));
    int logits = -1;
    AMS_TRY(ams_deeplab_mnv2_build(g, &d->cfg, n, h, w, d->dropout, image, &logits, err));
    AMS_TRY(check_logits(g, d, logits, n, h, w, err));
    *labels = ams_graph_labels(g, "labels", n, h, w);
    *loss = ams_graph_softmax_ce(g, logits, *labels, d->nsubset > 0 ? d->subset : NULL,
                                 d->nsubset);
    return ams_graph_error(g, err);
}
