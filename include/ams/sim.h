/* sim.h - the AMS emulator: replays a recorded video and its teacher labels against uplink
 * and downlink budgets on a simulated clock, with the real sampler, H.264 uplink, horizon,
 * trainer and update codec, and measures the student's mIoU over time.
 *
 *     ams_sim_config c;
 *     ams_sim_config_default(&c);                  // ams mode, coord 5 %, short-video timing
 *     ams_sim_student edge = {edge_params, build_infer, ctx}, server = {...};
 *     ams_sim_result *res = NULL;
 *     ams_sim_run(&c, "vtest.avi", labels, &edge, &server, progress, NULL, &res, &err);
 *     const ams_sim_result *runs[1] = {res};        // (config.record was set)
 *     ams_sim_write_overlay(runs, 1, "vtest.avi", "out/overlay.mp4", &err);
 *     ams_sim_write(res, "out/", &err);            // metrics.jsonl, summary.json, report.html
 *     ams_sim_result_free(res);
 *
 * The clock. The timeline is the label store's frames (the teacher labelled them on the
 * original video; the video frame shown at each label's pts is read and scaled to the student
 * size). At each frame time t, in this order:
 *   1. events due by t happen: an upload reaches the server (its frames, decoded from H.264,
 *      enter the horizon with their teacher labels); a training phase is due (schedule.h ATR)
 *      and the server is idle -> it trains now on what it holds; an update reaches the edge
 *      (verified and applied, model version + 1);
 *   2. the frame is evaluated (at most eval_fps frames per second) with the edge's weights;
 *   3. at the end of each send period the frames sampled by ASR are H.264-encoded at the uplink
 *      budget and leave; they arrive after bits / uplink budget seconds (the link is serial).
 *      Periods end at first_send + k * send_period: the first is shorter (half a period by
 *      default), so the first frames reach the server a period earlier.
 * A training phase started at s is ready at s + C (C = its measured compute seconds, or
 * compute_s when >= 0: deterministic); its update leaves when the downlink is free and arrives
 * after bytes * 8 / downlink budget seconds. Nothing is instant unless a budget is 0 (unlimited).
 * Modes: pretrained (no uploads, no training), one-time (uploads the send periods that end by
 * one_time_s, one phase once they have all arrived, then nothing), ams (all of the above), jit (JITNet-like: when an upload arrives,
 * the server trains the whole model from the edge's weights (no restore) on the upload's
 * latest frame, one Adam step at a time (batch 1; the Adam moments carry over from keyframe
 * to keyframe), until the student's mIoU on that frame vs its teacher label reaches
 * jit_target or jit_iters steps were taken, then sends the whole-model update; nothing when
 * the student matched the frame before any step).
 * Determinism: with compute_s >= 0 a run is a pure function of its inputs and seed.
 */
#ifndef AMS_SIM_H
#define AMS_SIM_H

#include <stddef.h>
#include <stdint.h>

#include "ams/deeplab.h"
#include "ams/label_store.h"
#include "ams/metrics.h"
#include "ams/trainer.h"

typedef enum {
    AMS_SIM_PRETRAINED = 0,
    AMS_SIM_ONE_TIME = 1,
    AMS_SIM_AMS = 2,
    AMS_SIM_JIT = 3,
} ams_sim_mode;

const char *ams_sim_mode_name(ams_sim_mode m);
ams_status ams_sim_mode_parse(const char *s, ams_sim_mode *out, ams_err *err);

typedef struct ams_sim_config {
    ams_sim_mode mode;
    int width, height;        /* student input (and horizon) size */
    double uplink_kbps;       /* 0 = unlimited: frames lossless, arrive at once */
    double downlink_kbps;     /* 0 = unlimited */
    double send_period;       /* s between uploads */
    double first_send;        /* s: the end of the first send period (< 0: send_period / 2) */
    double train_period;      /* s between training phases (ATR base) */
    double first_train;       /* s: the first phase (< 0: train_period) */
    double memory_len;        /* s of horizon */
    double eval_fps;          /* student evaluations per second of video (<= label fps) */
    double one_time_s;        /* one-time: train once at this time */
    double max_seconds;       /* only the first S seconds of the labels (<= 0: all) */
    double compute_s;         /* >= 0: simulated seconds per phase; < 0: the measured time */
    int asr;                  /* adaptive sampling rate */
    int atr;                  /* adaptive training rate */
    double start_rate;        /* initial sampling rate, frames/s (ASR bounds 0.1..1) */
    float threshold;          /* binary students: person where logit > threshold (0) */
    int jit_iters;            /* jit: at most this many Adam steps per keyframe */
    double jit_target;        /* jit: stop once the keyframe's mIoU reaches this (0..1) */
    int record;               /* keep every evaluated frame's prediction and label (ams_sim_rec,
                                 for ams_sim_write_overlay) */
    int subset[AMS_CM_MAX_CLASSES]; /* the video's class subset: the metric is over these ids
                                 (teacher pixels of other classes ignored, a multi-class
                                 student's prediction the argmax over them only), as the
                                 reference's; ASR's phi too. Distinct, < the label store's and
                                 the student's classes */
    int nsubset;              /* 0 (default): every class */
    ams_trainer_opts train;   /* K, batch, lr, strategy, fraction, restore, seed, codec */
} ams_sim_config;

/* Defaults for short videos (vtest.avi is 79.5 s at 10 fps): ams mode, 256x192, 150/150 Kbps,
 * send and train period 10 s, first train 10 s, memory 60 s, eval 2 fps, one-time at 20 s,
 * measured compute, ASR + ATR on, K 20, batch 8, coord 5 %, input scale 1/255, jit at most 20
 * steps per keyframe or mIoU 0.8 (JITNet stops at 0.9 or 8 updates at a high learning rate;
 * at lr 1e-3 the selfie student needs more steps), nothing recorded. */
void ams_sim_config_default(ams_sim_config *c);

/* A student instance: params, and a callback that adds its inference graph for one frame
 * (image input, output = logits (1,h,w,C): C == 1 binary via threshold, else argmax). The
 * edge's and the server's instances must have separate params with the same layout. */
typedef ams_status (*ams_sim_infer_fn)(void *ctx, ams_graph *g, int h, int w, int *image,
                                       int *logits, ams_err *err);
typedef struct ams_sim_student {
    ams_params *params;
    ams_sim_infer_fn build_infer;   /* edge */
    ams_trainer_build_fn build_train; /* server */
    void *ctx;
} ams_sim_student;

/* The TF.js builders: inference on the pre-sigmoid logit of the first output. */
ams_status ams_sim_tfjs_infer(void *ctx, ams_graph *g, int h, int w, int *image, int *logits,
                              ams_err *err);

/* A DeepLabV3-MobileNetV2 student (deeplab.h): the ctx of the two builders below. Its params
 * are declared by ams_deeplab_mnv2_declare with cfg; it takes raw RGB 0..255 (the graph
 * normalises), so config.train.input_scale must be 1 (ams_sim_deeplab_setup sets it). */
typedef struct ams_sim_deeplab {
    ams_deeplab_config cfg;          /* classes, output stride */
    int subset[AMS_CM_MAX_CLASSES];  /* the training loss's classes (softmax over them; labels
                                        of other classes ignored, 255 always) */
    int nsubset;                     /* 0: every class */
    int dropout;                     /* 1: concat_projection's dropout (keep 0.9) in training
                                        graphs; 0 (default): off, as `ams grad` */
} ams_sim_deeplab;

/* Fills d for a num_classes / output_stride student with c's class subset, and sets
 * c->train.input_scale to 1. */
void ams_sim_deeplab_setup(ams_sim_deeplab *d, int num_classes, int output_stride,
                           ams_sim_config *c);
/* Inference: the logits (1,h,w,classes) at the input size; BatchNorm frozen, no dropout. */
ams_status ams_sim_deeplab_infer(void *ctx, ams_graph *g, int h, int w, int *image, int *logits,
                                 ams_err *err);
/* Training (an ams_trainer_build_fn): mean softmax cross-entropy over d's subset (pixels
 * labelled 255 or outside the subset ignored), BatchNorm frozen (moving statistics; gamma and
 * beta train), dropout per d->dropout. */
ams_status ams_sim_deeplab_train(void *ctx, ams_graph *g, int n, int h, int w, int *image,
                                 int *labels, int *loss, ams_err *err);

/* One second of the run. */
typedef struct ams_sim_second {
    int second;          /* [second, second + 1) */
    int frames;          /* evaluated frames */
    double miou;         /* mean per-frame mIoU of the evaluated frames (NaN: none) */
    double rate;         /* sampling rate at the end of the second (frames/s) */
    uint64_t up_bits;    /* uplink bits that left in this second */
    uint64_t down_bits;  /* downlink bits of updates that arrived in this second */
    int version;         /* model version on the edge at the end of the second */
} ams_sim_second;

/* One training phase. */
typedef struct ams_sim_phase {
    double start, ready, arrive; /* s: started, update ready, applied on the edge */
    double compute_s;            /* simulated compute (measured or fixed) */
    double measured_s;           /* wall seconds it really took */
    size_t horizon;              /* frames trained on */
    size_t selected, changed;
    size_t bytes, ref_bytes;     /* our codec, the reference format */
    double loss_first, loss_last;
    int iters;                   /* Adam steps taken */
    double miou_first, miou_last; /* jit: the keyframe's mIoU before / after (NaN otherwise) */
} ams_sim_phase;

/* What the edge predicted at every evaluated frame, and the teacher's label (run-length coded
 * in memory); made when config.record is set. */
typedef struct ams_sim_rec ams_sim_rec;
/* Frames recorded (0 for NULL). */
int ams_sim_rec_count(const ams_sim_rec *r);
/* Plane size: *w x *h. */
void ams_sim_rec_size(const ams_sim_rec *r, int *w, int *h);
/* Time (s) of frame i. */
double ams_sim_rec_time(const ams_sim_rec *r, int i);
/* Decodes frame i's prediction and label (w*h bytes each; either may be NULL).
 * @return AMS_OK or AMS_E_RANGE (i out of range). */
ams_status ams_sim_rec_get(const ams_sim_rec *r, int i, uint8_t *pred, uint8_t *label,
                           ams_err *err);

#define AMS_SIM_MAX_SEEDS 16

typedef struct ams_sim_result {
    ams_sim_config config;
    char video[512];
    double duration;             /* seconds simulated */
    double miou;                 /* mean per-frame mIoU over evaluated frames, 0..1 */
    double miou_after;           /* the same over frames at t >= first_train */
    double person_iou;           /* IoU of class id 1 (binary: person), pooled over evaluated
                                    frames; NaN when config.subset leaves class 1 out */
    double pixel_accuracy;       /* pooled */
    int eval_frames;
    double uplink_kbps, downlink_kbps; /* measured over the duration */
    uint64_t up_bits, down_bits;
    int uploads, uploaded_frames;
    int updates;                 /* applied on the edge */
    int rejected;                /* updates the edge refused (never, unless a bug) */
    double server_compute_s;     /* sum of simulated phase compute */
    double server_measured_s;    /* sum of the phases' real wall seconds */
    double wall_s;               /* the run's own wall time */
    size_t codec_bytes, ref_bytes; /* summed over updates */
    ams_sim_second *seconds;
    int nseconds;
    ams_sim_phase *phases;
    int nphases;
    ams_sim_rec *rec;            /* config.record: every evaluated frame; else NULL */
    /* Repeats of this run with seeds config.train.seed + i (i < nseeds; filled by the caller
     * that ran them, e.g. `ams sim --seeds N`; 0: none): one run's mIoU moves by about 0.02
     * with the seed on a short clip, so comparisons use the mean. */
    int nseeds;
    double seed_miou[AMS_SIM_MAX_SEEDS];
    double seed_miou_after[AMS_SIM_MAX_SEEDS];
} ams_sim_result;

/* Progress: t of duration seconds simulated; what = "eval", "train", ... */
typedef void (*ams_sim_progress_fn)(void *ctx, double t, double duration, const char *what);

/* Runs the emulator. labels: the teacher labels (any size; nearest-resized with video.h's
 * fill + centre-crop rule to width x height; classes 0..C-1, 255 ignored). The edge's params
 * are written (updates applied); the server's params end with its last trained weights.
 * @return AMS_OK and *out (ams_sim_result_free), or the first error. */
ams_status ams_sim_run(const ams_sim_config *c, const char *video, ams_label_reader *labels,
                       ams_sim_student *edge, ams_sim_student *server,
                       ams_sim_progress_fn progress, void *progress_ctx, ams_sim_result **out,
                       ams_err *err);
void ams_sim_result_free(ams_sim_result *r);

/* Writes dir/metrics.jsonl, dir/summary.json and dir/report.html (dir must exist). The report
 * shows dir/overlay.mp4 in a <video> when that file exists: write it first. */
ams_status ams_sim_write(const ams_sim_result *r, const char *dir, ams_err *err);
/* Writes one summary.json (a list) and report.html comparing n runs into dir (plots of mIoU
 * and Kbps over time, mIoU vs Kbps, the table; dir/overlay.mp4 as for ams_sim_write). */
ams_status ams_sim_write_compare(const ams_sim_result *const *r, int n, const char *dir,
                                 ams_err *err);

/* Writes path (.mp4, H.264, atomically): for every frame the runs recorded (config.record;
 * all n >= 1 runs must have recorded the same frame times), panels side by side, each the
 * video frame at the student size: run 0's prediction over it (red), run 1's, ..., then the
 * teacher's label (green), with the run names written in the top-left corner; played at the
 * runs' eval fps. @return AMS_OK; AMS_E_INVAL (no recording, runs that differ, more than 4
 * runs); video errors. */
ams_status ams_sim_write_overlay(const ams_sim_result *const *runs, int n, const char *video,
                                 const char *path, ams_err *err);
/* The run's display name ("ams coord 5 %", "pretrained", ...) into buf. */
void ams_sim_run_name(const ams_sim_result *r, char *buf, size_t cap);
/* mIoU over the run's seeds (nseeds >= 2): mean, min and max; else its own mIoU three times. */
void ams_sim_seed_stats(const ams_sim_result *r, double *mean, double *lo, double *hi);

/* Teacher labels for a video: runs a TF.js teacher whose output `output` (NULL: the first)
 * is a probability or alpha (RVM: pha; person = value > 0.5) at width x height on the frames
 * shown at 0, 1/fps, ... (max_seconds <= 0: all), appending them to the label store at path
 * (resumes). feeds: the teacher's scalar inputs. */
ams_status ams_sim_make_labels(const ams_tfjs_model *teacher, const char *output,
                               const ams_tfjs_feed *feeds, int nfeeds, const char *video, double fps, int width, int height,
                               double max_seconds, const char *path,
                               ams_sim_progress_fn progress, void *progress_ctx, ams_err *err);

#endif
