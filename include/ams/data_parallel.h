/* data_parallel.h - one training step (forward + backward of a batch) split over replicas
 * of the training graph, each on its own core, instead of every kernel split over the
 * cores.
 *
 * Why: a mobile student's kernels are small (tens to hundreds of microseconds each at
 * batch 8), so splitting each one over two threads paid a wake-up and a join per kernel
 * and bought almost nothing (the selfie's batch-8 step took as long on two threads as on
 * one; docs/performance.md). Two replicas of batch 4, each on one thread with its own
 * single-threaded backend, meet once per step.
 *
 *     ams_dp *dp = NULL;
 *     ams_dp_new(&dp, params, build, ctx, 8, 192, 256, 0, be, &err);  // 0: replicas auto
 *     ams_dp_step(dp, x, y, &loss, &err);         // params->grads = d loss / d params
 *     ams_dp_free(dp);
 *
 * Replica r takes frames [n*r/R, n*(r+1)/R) and a params view that shares params' values
 * (and names) with its own gradients; replica 0 uses params' own. The batch's loss is the
 * pixel-weighted mean of the replicas' losses (each a mean over its counted pixels), and
 * the gradient is the same combination of theirs: what one graph over the whole batch
 * computes, up to float rounding. Batch statistics are not supported (frozen batch norm
 * only, as every student here trains).
 */
#ifndef AMS_DATA_PARALLEL_H
#define AMS_DATA_PARALLEL_H

#include <stdint.h>

#include "ams/backend.h"
#include "ams/graph.h"

/* Adds the training graph for n frames of h x w to g (created over the given params'
 * view). Sets *image (float NHWC input), *labels (uint8 (n,h,w) labels) and *loss (a
 * scalar loss node: a mean over counted pixels). Same as ams_trainer_build_fn. */
typedef ams_status (*ams_dp_build_fn)(void *ctx, ams_graph *g, int n, int h, int w, int *image,
                                      int *labels, int *loss, ams_err *err);

#define AMS_DP_MAX_REPLICAS 64

typedef struct ams_dp ams_dp;

/* The replica count for a batch of n on be when asked for `replicas` (0: auto): auto is
 * the backend's thread count for the cpu backend (at most n), 1 for any other. */
int ams_dp_replicas(const ams_backend *be, int n, int replicas);

/* Builds and plans (AMS_PLAN_TRAIN) the replicas' graphs. With one replica the step runs
 * on be itself; with more, each replica of a cpu backend gets a single-threaded cpu
 * backend of its own (other backends, e.g. the reference, are shared).
 * params must be allocated and outlive dp. @return AMS_OK and *out. */
ams_status ams_dp_new(ams_dp **out, ams_params *params, ams_dp_build_fn build, void *ctx, int n,
                      int h, int w, int replicas, const ams_backend *be, ams_err *err);
void ams_dp_free(ams_dp *dp);

int ams_dp_count(const ams_dp *dp);   /* replicas */
int ams_dp_batch(const ams_dp *dp);   /* frames per step */
/* Replica r's graph (for profiling and tests). */
ams_graph *ams_dp_graph(const ams_dp *dp, int r);

/* Gradients for some parameters only (ams_graph_freeze in every replica): frozen[i] != 0
 * (params->count entries) leaves parameter i's gradient zero in the following steps and
 * skips the work that only it needed; NULL (or all zero) unfreezes every parameter. */
ams_status ams_dp_freeze(ams_dp *dp, const uint8_t *frozen, ams_err *err);

/* One step: x (n,h,w,3 floats), y (n,h,w labels) -> *loss, and params->grads overwritten
 * with d loss / d params. */
ams_status ams_dp_step(ams_dp *dp, const float *x, const uint8_t *y, double *loss, ams_err *err);
/* The same step on n frames held apart as bytes (e.g. ams_horizon_pick): frame b is
 * frames[b] ([h,w,3]) times scale, its labels labels[b] ([h,w]). Each replica converts its
 * own frames straight into its graph: no float batch, no pass on one core. */
ams_status ams_dp_step_u8(ams_dp *dp, const uint8_t *const *frames, float scale,
                          const uint8_t *const *labels, double *loss, ams_err *err);

#endif
