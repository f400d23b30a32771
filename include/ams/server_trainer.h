/* server_trainer.h - the real compute behind `ams server`: the AMS algorithms of src/adapt
 * (teacher labels, horizon, ASR, ATR, coordinate-descent training phases) behind the server's
 * ams_compute interface (server.h), with the same code paths as the emulator (sim.h).
 *
 *     ams_server_trainer_config tc;
 *     ams_server_trainer_config_default(&tc);        // the emulator's defaults
 *     tc.student = "selfie.json"; tc.teacher = "rvm.json"; tc.teacher_output = "pha";
 *     tc.teacher_feeds = feeds; tc.n_teacher_feeds = 5;  // r1i..r4i = 0, downsample_ratio 0.5
 *     tc.slots = server_config.workers;
 *     ams_compute comp;
 *     ams_server_trainer_new(&tc, &comp, &err);       // loads the models once per slot
 *     server_config.compute = comp;
 *     ...
 *     ams_server_free(s);                             // before the compute
 *     ams_server_trainer_free(&comp);
 *
 * One job (a session's uploads since its last job), on a server worker thread:
 *   1. every upload is decoded (ams_uplink_decode) at the teacher size and at the student size
 *      (video.h's fill + centre-crop rule; both sizes have one aspect ratio);
 *   2. the teacher labels each frame: person where its one-channel output (RVM's alpha) is
 *      above teacher_threshold, sampled to the student size by centre-nearest (`ams label`);
 *   3. with `evaluate`, the weights the client holds (job->current) and the pretrained weights
 *      segment the same frames (logit > 0): per-frame mIoU against the teacher, averaged over
 *      the session's last 10 evaluated frames (job->miou, job->miou_pretrained) - the edge's
 *      accuracy on what it saw, live (the window is not persisted);
 *   4. ASR: phi over the new labels and the previous upload's last one updates the sampling
 *      rate told to the client (per upload, as the emulator);
 *   5. the frames and labels enter the session's horizon (memory_len seconds);
 *   6. when a training event is due on the session's clock (the uploads' video timestamps;
 *      ATR adapts the period), one ams_trainer phase runs (restore, coord mask, K Adam steps)
 *      and job->target receives the trained weights; the server encodes the update.
 * The session clock is the frames' video time; when a client's time goes back (a restarted
 * edge), the session's clock continues from where it was.
 *
 * Threads: `slots` jobs run at once, each on its own slot (teacher model + graph, student model
 * + trainer + inference graph, a backend with `threads` threads), taken from a pool; the
 * server's workers must be <= slots. A slot serves one job at a time, for any session: the
 * teacher and the trainer are shared by every client through the server's fair scheduler.
 * Per-session state (horizon, ASR, ATR, clock, last label) is persisted with state_save /
 * state_load (file STATE/<id>.compute, "AMSC" v1, atomically replaced, SHA-256 checked;
 * the format is in src/net/compute_state.h).
 */
#ifndef AMS_SERVER_TRAINER_H
#define AMS_SERVER_TRAINER_H

#include "ams/server.h"
#include "ams/tfjs.h"
#include "ams/trainer.h"

typedef struct ams_server_trainer_config {
    const char *student;             /* the student's model.json (or .safetensors) path */
    const char *teacher;             /* the teacher's model.json path */
    const char *teacher_output;      /* its output (RVM: "pha"); NULL: the first */
    const ams_tfjs_feed *teacher_feeds; /* its scalar inputs (RVM: r1i..r4i, downsample_ratio) */
    int n_teacher_feeds;
    float teacher_threshold;         /* person where output > this (0.5) */
    int width, height;               /* student frames = horizon (256 x 256); even */
    int teacher_width, teacher_height; /* teacher input (384 x 384); the same aspect ratio */
    int slots;                       /* concurrent jobs (1..64; 1) */
    int threads;                     /* backend threads per slot (1) */
    const char *backend;             /* "cpu" (default) or "ref" */
    ams_trainer_opts train;          /* K 20, batch 8, lr 1e-3, coord 5 %, restore; be ignored */
    double train_period;             /* seconds of video between phases (ATR base; 10) */
    double first_train;              /* the first phase (< 0: train_period) */
    double memory_len;               /* seconds of horizon (60) */
    int asr, atr;                    /* adaptive sampling and training rates (1, 1) */
    int evaluate;                    /* 3. above (1) */
} ams_server_trainer_config;

/* The emulator's defaults (sim.h) for everything it shares; paths NULL. */
void ams_server_trainer_config_default(ams_server_trainer_config *c);

/* Loads the models into every slot and fills *out (its ctx owned by the compute).
 * @return AMS_OK; AMS_E_INVAL (bad config, sizes, a teacher output that is not one channel, a
 * student without a Sigmoid(logit) output); load and build errors. */
ams_status ams_server_trainer_new(const ams_server_trainer_config *c, ams_compute *out,
                                  ams_err *err);
/* The pretrained student (the sessions' start: pass it as ams_server_config.initial); owned
 * by the compute. NULL for another compute. */
const ams_params *ams_server_trainer_pretrained(const ams_compute *c);
/* Frees what ams_server_trainer_new made (after the server is freed); a zeroed compute is a
 * no-op. */
void ams_server_trainer_free(ams_compute *c);

/* Per-session figures of a compute state (for tests and reports); zeros for NULL. */
typedef struct ams_server_trainer_stats {
    size_t horizon;          /* frames held */
    uint64_t labelled;       /* frames labelled since the session began */
    uint64_t phases;         /* training phases run */
    double clock;            /* the session's clock (s of video) */
    double sample_rate;      /* ASR rate */
    double train_period;     /* ATR period */
} ams_server_trainer_stats;
void ams_server_trainer_state_stats(const void *state, ams_server_trainer_stats *out);

#endif
