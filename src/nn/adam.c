/* adam.c - Adam with TensorFlow's update rule and a per-element mask, over flat buffers. */
#include "ams/optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct ams_adam {
    size_t n;
    ams_adam_config cfg;
    long t;   /* steps since reset */
    float *m; /* first moments, n */
    float *v; /* second moments, n */
};

ams_adam *ams_adam_new(size_t n, const ams_adam_config *cfg) {
    ams_adam *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    a->n = n;
    a->cfg = cfg ? *cfg : (ams_adam_config){1e-3f, 0.9f, 0.999f, 1e-8f};
    a->m = calloc(n ? n : 1, sizeof(float));
    a->v = calloc(n ? n : 1, sizeof(float));
    if (!a->m || !a->v) {
        ams_adam_free(a);
        return NULL;
    }
    return a;
}

void ams_adam_free(ams_adam *a) {
    if (!a) return;
    free(a->m);
    free(a->v);
    free(a);
}

void ams_adam_step(ams_adam *a, float *values, const float *grads, const uint8_t *mask) {
    a->t++;
    const double b1 = a->cfg.beta1, b2 = a->cfg.beta2;
    /* TF: lr_t = lr * sqrt(1 - b2^t) / (1 - b1^t), epsilon added to sqrt(v) un-corrected */
    const float lr_t =
        (float)(a->cfg.lr * sqrt(1.0 - pow(b2, (double)a->t)) / (1.0 - pow(b1, (double)a->t)));
    const float fb1 = a->cfg.beta1, fb2 = a->cfg.beta2, eps = a->cfg.epsilon;
    float *m = a->m, *v = a->v;
    for (size_t i = 0; i < a->n; i++) {
        if (mask && !mask[i]) continue;
        float g = grads[i];
        m[i] = fb1 * m[i] + (1.0f - fb1) * g;
        v[i] = fb2 * v[i] + (1.0f - fb2) * g * g;
        values[i] -= lr_t * m[i] / (sqrtf(v[i]) + eps);
    }
}

void ams_adam_reset(ams_adam *a) {
    a->t = 0;
    memset(a->m, 0, a->n * sizeof(float));
    memset(a->v, 0, a->n * sizeof(float));
}

long ams_adam_steps(const ams_adam *a) { return a->t; }
const float *ams_adam_m(const ams_adam *a) { return a->m; }
const float *ams_adam_v(const ams_adam *a) { return a->v; }
