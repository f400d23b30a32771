/* trainer.h - one AMS training phase on the server, for any student the engine can build:
 * restore the pretrained snapshot, choose the elements to train (coord.h strategy), run K
 * masked Adam iterations on batches drawn from the horizon, and encode the update for the edge.
 *
 *     ams_trainer *t = NULL;
 *     ams_trainer_new(&t, params, build_fn, ctx, 192, 256, &err);      // snapshots params
 *     ams_trainer_opts o;
 *     ams_trainer_opts_default(&o);                                  // K 20, batch 8, lr 1e-3
 *     ams_trainer_result r;
 *     ams_trainer_phase(t, horizon, &o, &r, &err);                   // params <- trained
 *     uint8_t *msg; size_t len;
 *     ams_trainer_encode(t, &o, base, &msg, &len, applied, &r, &err);   // the update
 *     ams_trainer_free(t);
 *
 * The model is a callback: it adds its training graph for a batch of n frames of h x w to a
 * graph over the same params and names the image input (float NHWC, fed as 0..255 times
 * opts.input_scale), the uint8 label input (n,h,w) and the scalar loss. The batch is split
 * over replicas of that graph, one per thread (data_parallel.h: opts.replicas); the graphs
 * of a batch shape are built and planned (AMS_PLAN_TRAIN) once and reused by later phases.
 * ams_trainer_tfjs_build is that callback for an imported TF.js model whose output is
 * Sigmoid(logit) (the selfie student): binary cross-entropy on the logit.
 *
 * Coord selection: the score is |d loss / d p| over the FIRST batch of the phase (at the
 * restored weights); the same batch is then the first Adam step. The note
 * ../shared/notes/adaptation-baseline.md shows 5 % by that rule beats training everything.
 * opts.coord_probe = N scores by the change after N probe steps instead (docs/sim.md compares
 * the two on vtest.avi).
 *
 * Determinism: batches and random masks come from an rng seeded by opts.seed and the phase
 * number, so a phase is a pure function of (restored weights, horizon, opts, phase).
 * One trainer belongs to one thread; it writes the params it was given.
 */
#ifndef AMS_TRAINER_H
#define AMS_TRAINER_H

#include <stddef.h>
#include <stdint.h>

#include "ams/coord.h"
#include "ams/data_parallel.h"
#include "ams/graph.h"
#include "ams/horizon.h"
#include "ams/tfjs.h"
#include "ams/update_codec.h"

/* Adds the training graph for n frames of h x w to g (created over the trainer's params).
 * Sets *image (float input node), *labels (ams_graph_labels node) and *loss (scalar). */
typedef ams_dp_build_fn ams_trainer_build_fn;

typedef struct ams_trainer_opts {
    int iters;              /* K Adam iterations per phase (>= 1) */
    int batch;              /* frames per iteration (>= 1) */
    float lr;               /* Adam learning rate (1e-3); TF defaults otherwise */
    ams_strategy strategy;  /* which elements train (and are sent) */
    double fraction;        /* for every strategy but full (0 < f <= 1) */
    int coord_probe;        /* coord's score: 0 = |gradient| of the first batch (default);
                             * N >= 1 = |change| of each element after N unmasked Adam steps
                             * from the phase's start weights (the reference: N = 1), which
                             * are then undone (weights and Adam state) before the K steps */
    int restore;            /* 1: restore the pretrained snapshot first (the reference) */
    uint64_t seed;          /* batches and random masks */
    float input_scale;      /* frames are 0..255 times this (TF.js selfie: 1/255) */
    const ams_backend *be;  /* NULL: ams_backend_ref() */
    int replicas;           /* the batch split over this many graphs, one per thread
                             * (data_parallel.h); 0: auto (the cpu backend's threads) */
    ams_update_opts codec;  /* our update codec */
} ams_trainer_opts;

typedef struct ams_trainer_result {
    int phase;              /* 0-based phase number */
    size_t selected;        /* elements the mask allows to change */
    double loss_first;      /* loss of the first batch */
    double loss_last;       /* loss of the last batch (before its step) */
    double compute_s;       /* wall seconds of the phase (and of the encode, when encoded) */
    size_t update_bytes;    /* our codec's message (after ams_trainer_encode) */
    size_t ref_bytes;       /* the reference format for the same mask (after encode) */
    size_t changed;         /* elements our update changes */
} ams_trainer_result;

typedef struct ams_trainer ams_trainer;

/* Defaults: K 20, batch 8, lr 1e-3, coord 5 %, restore, seed 1, scale 1, ref backend, int8. */
void ams_trainer_opts_default(ams_trainer_opts *o);

/* A trainer over params (not owned, must outlive it) whose current values become the
 * pretrained snapshot. Frames are h x w. @return AMS_OK and *out (ams_trainer_free). */
ams_status ams_trainer_new(ams_trainer **out, ams_params *params, ams_trainer_build_fn build,
                           void *ctx, int h, int w, ams_err *err);
void ams_trainer_free(ams_trainer *t);

/* The pretrained snapshot (same layout as params). */
const ams_params *ams_trainer_pretrained(const ams_trainer *t);
/* The mask of the last phase (params->total bytes; NULL before the first phase). */
const uint8_t *ams_trainer_mask(const ams_trainer *t);

/* One phase: restore (if opts->restore), mask, K masked Adam steps; params hold the result.
 * @return AMS_OK; AMS_E_INVAL (bad opts, empty horizon, horizon of another size); graph
 * errors. */
ams_status ams_trainer_phase(ams_trainer *t, const ams_horizon *h, const ams_trainer_opts *o,
                             ams_trainer_result *res, ams_err *err);

/* Encodes the change from base (what the edge will apply it to: the pretrained snapshot
 * after a restoring phase, else the edge's current weights) to the trained params with our
 * codec into *msg (free()), and the reference format's size for the phase's mask into res.
 * applied (params->total floats, may be NULL) receives base + the update as the edge will
 * compute it. Adds the encode time to res->compute_s. */
ams_status ams_trainer_encode(ams_trainer *t, const ams_trainer_opts *o, const float *base,
                              uint8_t **msg, size_t *len, float *applied,
                              ams_trainer_result *res, ams_err *err);

/* The build callback for a TF.js model (ctx = const ams_tfjs_model *; its params must be the
 * trainer's): the first output must be Sigmoid(logit) (ams_tfjs_logit_name); BCE on the logit
 * with labels 0/1 (255 ignored). */
ams_status ams_trainer_tfjs_build(void *ctx, ams_graph *g, int n, int h, int w, int *image,
                                  int *labels, int *loss, ams_err *err);

#endif
