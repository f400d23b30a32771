/* optim.h - Adam with TensorFlow's semantics and a per-element update mask.
 *
 * TF's tf.train.AdamOptimizer: with t counted from 1,
 *   lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t)
 *   m = beta1*m + (1-beta1)*g;  v = beta2*v + (1-beta2)*g^2
 *   p -= lr_t * m / (sqrt(v) + epsilon)        (epsilon outside the bias correction)
 * An element whose mask byte is 0 never changes, and neither do its m and v.
 *
 *     ams_adam *opt = ams_adam_new(params->total, NULL);   // TF defaults
 *     ams_adam_step(opt, params->values, params->grads, mask_or_NULL);
 *     ams_adam_free(opt);
 */
#ifndef AMS_OPTIM_H
#define AMS_OPTIM_H

#include "ams/status.h"

typedef struct ams_adam_config {
    float lr;      /* 1e-3 */
    float beta1;   /* 0.9 */
    float beta2;   /* 0.999 */
    float epsilon; /* 1e-8 */
} ams_adam_config;

typedef struct ams_adam ams_adam;

/* Adam state for n elements; cfg NULL = TF defaults. NULL if out of memory. */
ams_adam *ams_adam_new(size_t n, const ams_adam_config *cfg);
void ams_adam_free(ams_adam *a);
/* One step over all n elements; mask NULL = every element. Elements with a zero
 * mask byte keep value and moments. grads is read only. */
void ams_adam_step(ams_adam *a, float *values, const float *grads, const uint8_t *mask);
/* Zeroes m, v and the step count (a new training phase). */
void ams_adam_reset(ams_adam *a);
/* Steps taken since the last reset. */
long ams_adam_steps(const ams_adam *a);
const float *ams_adam_m(const ams_adam *a);
const float *ams_adam_v(const ams_adam *a);

#endif
