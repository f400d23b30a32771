/* compute_trainer.c - the server's real compute (server_trainer.h): uploads decoded, labelled
 * by the teacher, evaluated, added to the session's horizon; ASR and ATR; ams_trainer phases on
 * a pool of slots (one model set and backend per concurrent job). The per-session state and
 * its file live in compute_state.c. */
#include "ams/server_trainer.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ams/backend.h"
#include "ams/horizon.h"
#include "ams/metrics.h"
#include "ams/sampling.h"
#include "ams/schedule.h"
#include "ams/uplink.h"
#include "net/compute_state.h"

#define MAX_FEEDS 32
#define MAX_UPLOAD_FRAMES 256 /* frames of one upload the compute decodes at most */
#define EVAL_WINDOW AMS_CSTATE_EVAL_WINDOW

typedef struct slot {
    int busy;
    const ams_backend *be;
    ams_tfjs_model *teacher;
    ams_graph *tg;
    int t_in, t_out, toh, tow;
    float *tx;
    ams_tfjs_model *student;
    ams_params *sp;
    ams_trainer *trainer;
    ams_graph *sg; /* student inference on its logit (evaluate) */
    int s_in, s_out;
    float *sx;
    uint8_t *pred;
    ams_confmat cm;
} slot;

typedef struct tctx {
    ams_server_trainer_config c;
    char student[4096], teacher[4096], toutput[256], feed_names[MAX_FEEDS][128];
    ams_tfjs_feed feeds[MAX_FEEDS];
    slot *slots;
    int n_slots;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t total, npix, tpix;
    size_t hcap; /* horizon entries at most */
    ams_cstate_cfg scfg; /* what the per-session state depends on */
} tctx;

void ams_server_trainer_config_default(ams_server_trainer_config *c) {
    memset(c, 0, sizeof *c);
    c->teacher_threshold = 0.5f;
    c->width = c->height = 256;
    c->teacher_width = c->teacher_height = 384;
    c->slots = 1;
    c->threads = 1;
    c->backend = "cpu";
    ams_trainer_opts_default(&c->train); /* K 20, batch 8, lr 1e-3, coord 5 %, restore */
    c->train.input_scale = 1.0f / 255;   /* TF.js students take RGB / 255 */
    c->train_period = 10;
    c->first_train = -1;
    c->memory_len = 60;
    c->asr = 1;
    c->atr = 1;
    c->evaluate = 1;
}

/* ---- slots ---- */

/* The student's inference graph on the logit of its Sigmoid output (the emulator's rule). */
static ams_status student_infer_build(const ams_tfjs_model *m, ams_graph *g, int h, int w,
                                      int *image, int *logits, ams_err *err) {
    AMS_FAIL_IF(ams_tfjs_output_count(m) < 1, err, AMS_E_INVAL, "student: no output");
    const char *logit = ams_tfjs_logit_name(m, ams_tfjs_output_node(m, 0));
    AMS_FAIL_IF(!logit, err, AMS_E_UNSUPPORTED, "student: output '%s' is not Sigmoid(logit)",
                ams_tfjs_output_node(m, 0));
    ams_tfjs_build_opts bo = {.n = 1, .h = h, .w = w};
    const char *outs[1] = {logit};
    AMS_TRY(ams_tfjs_build(m, g, &bo, outs, 1, logits, image, err));
    int64_t shape[AMS_MAX_DIMS];
    AMS_FAIL_IF(ams_graph_shape(g, *logits, shape) != 4 || shape[3] != 1, err, AMS_E_SHAPE,
                "student: logit '%s' is not (1,h,w,1)", logit);
    if (shape[1] != h || shape[2] != w)
        *logits = ams_graph_resize_bilinear(g, *logits, h, w, AMS_RESIZE_HALF_PIXEL);
    return ams_graph_error(g, err);
}

static void slot_free(slot *s) {
    ams_graph_free(s->tg);
    ams_graph_free(s->sg);
    ams_trainer_free(s->trainer);
    ams_tfjs_free(s->teacher);
    ams_tfjs_free(s->student);
    ams_backend_free(s->be);
    free(s->tx);
    free(s->sx);
    free(s->pred);
    memset(s, 0, sizeof *s);
}

static ams_status slot_init(tctx *x, slot *s, ams_err *err) {
    const ams_server_trainer_config *c = &x->c;
    s->be = ams_backend_by_name(c->backend ? c->backend : "cpu", c->threads, err);
    if (!s->be) return err && err->code ? err->code : AMS_E_INVAL;
    /* the teacher, at its size */
    AMS_TRY(ams_tfjs_load(x->teacher, &s->teacher, err));
    s->tg = ams_graph_new(ams_tfjs_params(s->teacher));
    AMS_FAIL_IF(!s->tg, err, AMS_E_NOMEM, "teacher graph");
    ams_tfjs_build_opts bo = {.n = 1, .h = c->teacher_height, .w = c->teacher_width,
                              .feeds = x->feeds, .nfeeds = c->n_teacher_feeds};
    const char *outs[1] = {x->toutput};
    AMS_TRY(ams_tfjs_build(s->teacher, s->tg, &bo, x->toutput[0] ? outs : NULL, 1, &s->t_out,
                           &s->t_in, err));
    ams_graph_keep(s->tg, s->t_out);
    AMS_TRY(ams_graph_plan(s->tg, AMS_PLAN_INFER, err));
    int64_t sh[AMS_MAX_DIMS];
    AMS_FAIL_IF(ams_graph_shape(s->tg, s->t_out, sh) != 4 || sh[0] != 1 || sh[3] != 1, err,
                AMS_E_INVAL, "teacher %s: the output is not one channel (1,h,w,1)", x->teacher);
    s->toh = (int)sh[1];
    s->tow = (int)sh[2];
    s->tx = malloc(x->tpix * 3 * sizeof(float));
    AMS_FAIL_IF(!s->tx, err, AMS_E_NOMEM, "teacher input");
    /* the student: trainer (its params are the pretrained snapshot) and inference graph */
    AMS_TRY(ams_tfjs_load(x->student, &s->student, err));
    s->sp = ams_tfjs_params(s->student);
    AMS_TRY(ams_trainer_new(&s->trainer, s->sp, ams_trainer_tfjs_build, s->student, c->height,
                            c->width, err));
    s->sg = ams_graph_new(s->sp);
    AMS_FAIL_IF(!s->sg, err, AMS_E_NOMEM, "student graph");
    AMS_TRY(student_infer_build(s->student, s->sg, c->height, c->width, &s->s_in, &s->s_out,
                                err));
    ams_graph_keep(s->sg, s->s_out);
    AMS_TRY(ams_graph_plan(s->sg, AMS_PLAN_INFER, err));
    s->sx = malloc(x->npix * 3 * sizeof(float));
    s->pred = malloc(x->npix);
    AMS_FAIL_IF(!s->sx || !s->pred, err, AMS_E_NOMEM, "student buffers");
    return ams_confmat_init_range(&s->cm, 2, err);
}

static slot *slot_take(tctx *x) {
    pthread_mutex_lock(&x->mu);
    for (;;) {
        for (int i = 0; i < x->n_slots; i++)
            if (!x->slots[i].busy) {
                x->slots[i].busy = 1;
                pthread_mutex_unlock(&x->mu);
                return &x->slots[i];
            }
        pthread_cond_wait(&x->cv, &x->mu);
    }
}

static void slot_give(tctx *x, slot *s) {
    pthread_mutex_lock(&x->mu);
    s->busy = 0;
    pthread_cond_signal(&x->cv);
    pthread_mutex_unlock(&x->mu);
}

/* ---- per-session state ---- */

static void state_free(void *vctx, void *state) {
    (void)vctx;
    ams_cstate_free(state);
}

void ams_server_trainer_state_stats(const void *state, ams_server_trainer_stats *out) {
    memset(out, 0, sizeof *out);
    const ams_cstate *cs = state;
    if (!cs) return;
    out->horizon = ams_horizon_count(cs->h);
    out->labelled = cs->labelled;
    out->phases = cs->phases;
    out->clock = cs->clock;
    out->sample_rate = cs->asr.rate;
    out->train_period = cs->sched.atr.period;
}

/* ---- one job ---- */

/* Teacher labels of one frame (teacher size RGB) at the student size. */
static ams_status teacher_label(tctx *x, slot *s, const uint8_t *rgb, uint8_t *label,
                                ams_err *err) {
    for (size_t i = 0; i < x->tpix * 3; i++) s->tx[i] = (float)rgb[i] * (1.0f / 255.0f);
    AMS_TRY(ams_graph_set_input(s->tg, s->t_in, s->tx, err));
    AMS_TRY(ams_graph_forward(s->tg, s->be, err));
    const float *y = ams_graph_value(s->tg, s->t_out);
    AMS_FAIL_IF(!y, err, AMS_E_INTERNAL, "teacher output not kept");
    int lw = x->c.width, lh = x->c.height;
    for (int ly = 0; ly < lh; ly++) { /* centre-nearest, as `ams label` */
        int oy = (int)(((int64_t)2 * ly + 1) * s->toh / (2 * (int64_t)lh));
        for (int lx = 0; lx < lw; lx++) {
            int ox = (int)(((int64_t)2 * lx + 1) * s->tow / (2 * (int64_t)lw));
            label[(size_t)ly * lw + lx] = y[(size_t)oy * s->tow + ox] > x->c.teacher_threshold;
        }
    }
    return AMS_OK;
}

/* Per-frame mIoU of the student's current params on n frames against labels, into window
 * `which` of cs. */
static ams_status evaluate(tctx *x, slot *s, ams_cstate *cs, int which, const uint8_t *rgb,
                           const uint8_t *labels, int n, ams_err *err) {
    for (int k = 0; k < n; k++) {
        const uint8_t *f = rgb + (size_t)k * x->npix * 3;
        for (size_t i = 0; i < x->npix * 3; i++) s->sx[i] = (float)f[i] * x->c.train.input_scale;
        AMS_TRY(ams_graph_set_input(s->sg, s->s_in, s->sx, err));
        AMS_TRY(ams_graph_forward(s->sg, s->be, err));
        const float *y = ams_graph_value(s->sg, s->s_out);
        AMS_FAIL_IF(!y, err, AMS_E_INTERNAL, "student output not kept");
        for (size_t i = 0; i < x->npix; i++) s->pred[i] = y[i] > 0;
        double m = ams_label_miou(&s->cm, labels + (size_t)k * x->npix, s->pred, x->npix,
                                  AMS_CM_TRUTH);
        if (isnan(m)) continue;
        cs->win[which][cs->win_head[which]] = m;
        cs->win_head[which] = (cs->win_head[which] + 1) % EVAL_WINDOW;
        if (cs->win_n[which] < EVAL_WINDOW) cs->win_n[which]++;
    }
    return AMS_OK;
}

static double window_mean(const ams_cstate *cs, int which) {
    if (!cs->win_n[which]) return NAN;
    double sum = 0;
    for (int i = 0; i < cs->win_n[which]; i++) sum += cs->win[which][i];
    return sum / cs->win_n[which];
}

/* One upload into the session: decode, label, evaluate, ASR, horizon. */
static ams_status take_upload(tctx *x, slot *s, ams_cstate *cs, ams_compute_job *job,
                              const ams_net_sample *u, ams_err *err) {
    int cap = (int)(u->head.frames < MAX_UPLOAD_FRAMES ? u->head.frames : MAX_UPLOAD_FRAMES);
    ams_uplink_frames *ft = NULL, *fs = NULL;
    uint8_t *labels = NULL;
    const uint8_t **labs = NULL;
    ams_status st = ams_uplink_decode(u->h264, u->len, x->c.teacher_width, x->c.teacher_height,
                                      cap, &ft, err);
    if (st == AMS_OK)
        st = ams_uplink_decode(u->h264, u->len, x->c.width, x->c.height, cap, &fs, err);
    if (st != AMS_OK) goto done;
    int n = ft->n < fs->n ? ft->n : fs->n;
    labels = malloc((size_t)n * x->npix);
    labs = malloc((size_t)(n + 1) * sizeof *labs);
    if (!labels || !labs) {
        st = ams_err_set(err, AMS_E_NOMEM, "labels of an upload");
        goto done;
    }
    for (int k = 0; k < n && st == AMS_OK; k++)
        st = teacher_label(x, s, ft->rgb + (size_t)k * x->tpix * 3, labels + (size_t)k * x->npix,
                           err);
    if (st != AMS_OK) goto done;
    if (x->c.evaluate) { /* what the client ran on these frames, and the pretrained model */
        memcpy(s->sp->values, job->current, x->total * sizeof(float));
        st = evaluate(x, s, cs, 0, fs->rgb, labels, n, err);
        if (st == AMS_OK) {
            memcpy(s->sp->values, ams_trainer_pretrained(s->trainer)->values,
                   x->total * sizeof(float));
            st = evaluate(x, s, cs, 1, fs->rgb, labels, n, err);
        }
        if (st != AMS_OK) goto done;
    }
    /* ASR over this upload's labels and the last one before them */
    size_t nl = 0;
    if (cs->have_last) labs[nl++] = cs->last_label;
    for (int k = 0; k < n; k++) labs[nl++] = labels + (size_t)k * x->npix;
    if (x->c.asr && n > 0) ams_asr_update(&cs->asr, ams_asr_phi(&s->cm, labs, nl, x->npix));
    /* the session clock: video time, continued when the client's time goes back */
    double t0 = u->head.t_first, t1 = u->head.t_last;
    if (cs->have_clock && t0 + cs->toff < cs->clock)
        cs->toff = cs->clock - t0 + (u->head.fps > 0 ? 1.0 / u->head.fps : 0);
    for (int k = 0; k < n && st == AMS_OK; k++) {
        double t = (n > 1 ? t0 + (t1 - t0) * k / (n - 1) : t1) + cs->toff;
        if (cs->have_clock && t < cs->clock) t = cs->clock;
        st = ams_horizon_add(cs->h, t, fs->rgb + (size_t)k * x->npix * 3,
                             labels + (size_t)k * x->npix, err);
        cs->clock = t;
        cs->have_clock = 1;
    }
    if (st == AMS_OK && n > 0) /* the upload stands for its whole sampling interval */
        cs->covered = cs->clock + (u->head.fps > 0 && u->head.fps <= 1000 ? 1.0 / u->head.fps : 0);
    if (st == AMS_OK && n > 0) {
        memcpy(cs->last_label, labels + (size_t)(n - 1) * x->npix, x->npix);
        cs->have_last = 1;
        cs->labelled += (uint64_t)n;
        job->labelled += (uint64_t)n;
    }
done:
    free(labs);
    free(labels);
    ams_uplink_frames_free(ft);
    ams_uplink_frames_free(fs);
    return st;
}

static ams_status run_on(tctx *x, slot *s, ams_cstate *cs, ams_compute_job *job, int *changed,
                         ams_err *err) {
    int good = 0;
    ams_status bad = AMS_OK;
    for (int i = 0; i < job->n_samples; i++) {
        ams_err ue = {0};
        ams_status st = take_upload(x, s, cs, job, &job->samples[i], &ue);
        if (st == AMS_OK) good++;
        else if (st == AMS_E_NOMEM || st == AMS_E_INTERNAL) { /* ours, not the client's */
            if (err) *err = ue;
            return st;
        } else if (bad == AMS_OK) { /* an upload that does not decode: skipped */
            bad = st;
            if (err) *err = ue;
        }
    }
    if (job->n_samples > 0 && good == 0) return bad;
    if (x->c.evaluate) {
        job->miou = window_mean(cs, 0);
        job->miou_pretrained = window_mean(cs, 1);
    }
    if (x->c.asr) job->sample_rate = cs->asr.rate;
    if (cs->have_clock) ams_horizon_expire(cs->h, cs->clock);
    job->horizon = ams_horizon_count(cs->h);
    double now = cs->covered > cs->clock ? cs->covered : cs->clock;
    if (!cs->have_clock || !ams_schedule_due(&cs->sched, now) || job->horizon == 0)
        return AMS_OK;
    ams_trainer_opts o = x->c.train;
    o.be = s->be;
    if (!o.restore) memcpy(s->sp->values, job->current, x->total * sizeof(float));
    ams_trainer_result r;
    AMS_TRY(ams_trainer_phase(s->trainer, cs->h, &o, &r, err));
    ams_schedule_done(&cs->sched, now, cs->asr.rate);
    cs->phases++;
    memcpy(job->target, s->sp->values, x->total * sizeof(float));
    *changed = memcmp(job->target, job->current, x->total * sizeof(float)) != 0;
    return AMS_OK;
}

static ams_status trainer_run(void *vctx, ams_compute_job *job, int *changed, ams_err *err) {
    tctx *x = vctx;
    *changed = 0;
    AMS_FAIL_IF(job->layout->total != x->total, err, AMS_E_SHAPE,
                "compute: the server's student has %zu parameters, the trainer's %zu",
                job->layout->total, x->total);
    ams_cstate *cs = *job->state;
    if (!cs) {
        cs = ams_cstate_new(&x->scfg, err);
        if (!cs) return err && err->code ? err->code : AMS_E_NOMEM;
        *job->state = cs;
    }
    slot *s = slot_take(x);
    ams_status st = run_on(x, s, cs, job, changed, err);
    slot_give(x, s);
    return st;
}

/* ---- persistence ---- */

static ams_status state_save(void *vctx, const void *state, const char *path, ams_err *err) {
    tctx *x = vctx;
    return ams_cstate_save(&x->scfg, state, path, err);
}

static ams_status state_load(void *vctx, void **state, const char *path, ams_err *err) {
    tctx *x = vctx;
    ams_cstate *cs = NULL;
    ams_status st = ams_cstate_load(&x->scfg, path, &cs, err);
    *state = cs;
    return st;
}

/* ---- lifetime ---- */

static void ctx_free(tctx *x) {
    if (!x) return;
    for (int i = 0; i < x->n_slots; i++) slot_free(&x->slots[i]);
    free(x->slots);
    pthread_mutex_destroy(&x->mu);
    pthread_cond_destroy(&x->cv);
    free(x);
}

ams_status ams_server_trainer_new(const ams_server_trainer_config *c, ams_compute *out,
                                  ams_err *err) {
    memset(out, 0, sizeof *out);
    AMS_FAIL_IF(!c || !c->student || !c->teacher, err, AMS_E_INVAL,
                "server trainer: needs a student and a teacher");
    AMS_FAIL_IF(c->width < 16 || c->height < 16 || c->width > 4096 || c->height > 4096 ||
                    (c->width & 1) || (c->height & 1),
                err, AMS_E_INVAL, "server trainer: student size %dx%d must be even, 16..4096",
                c->width, c->height);
    AMS_FAIL_IF(c->teacher_width < 16 || c->teacher_height < 16 || c->teacher_width > 4096 ||
                    c->teacher_height > 4096 || (c->teacher_width & 1) || (c->teacher_height & 1),
                err, AMS_E_INVAL, "server trainer: teacher size %dx%d must be even, 16..4096",
                c->teacher_width, c->teacher_height);
    AMS_FAIL_IF(llabs((long long)c->teacher_width * c->height -
                      (long long)c->teacher_height * c->width) > (long long)c->width,
                err, AMS_E_INVAL,
                "server trainer: teacher size %dx%d must have the aspect ratio of %dx%d",
                c->teacher_width, c->teacher_height, c->width, c->height);
    AMS_FAIL_IF(c->slots < 1 || c->slots > 64 || c->threads < 0 || c->threads > 1024 ||
                    c->n_teacher_feeds < 0 || c->n_teacher_feeds > MAX_FEEDS,
                err, AMS_E_INVAL, "server trainer: slots 1..64, threads 0..1024, feeds <= %d",
                MAX_FEEDS);
    AMS_FAIL_IF(!(c->train_period > 0) || !(c->memory_len > 0) || !isfinite(c->train_period) ||
                    !isfinite(c->memory_len) || c->memory_len > 1e6,
                err, AMS_E_INVAL, "server trainer: periods and memory must be > 0");
    AMS_FAIL_IF(c->train.iters < 1 || c->train.batch < 1 || c->train.batch > 1024 ||
                    !(c->train.lr > 0) ||
                    (c->train.strategy != AMS_STRATEGY_FULL &&
                     !(c->train.fraction > 0 && c->train.fraction <= 1)),
                err, AMS_E_INVAL, "server trainer: bad training options");
    AMS_FAIL_IF(strlen(c->student) >= 4096 || strlen(c->teacher) >= 4096 ||
                    (c->teacher_output && strlen(c->teacher_output) >= 256),
                err, AMS_E_INVAL, "server trainer: model path too long");
    tctx *x = calloc(1, sizeof *x);
    AMS_FAIL_IF(!x, err, AMS_E_NOMEM, "server trainer");
    pthread_mutex_init(&x->mu, NULL);
    pthread_cond_init(&x->cv, NULL);
    x->c = *c;
    snprintf(x->student, sizeof x->student, "%s", c->student);
    snprintf(x->teacher, sizeof x->teacher, "%s", c->teacher);
    snprintf(x->toutput, sizeof x->toutput, "%s", c->teacher_output ? c->teacher_output : "");
    for (int i = 0; i < c->n_teacher_feeds; i++) {
        snprintf(x->feed_names[i], sizeof x->feed_names[i], "%s", c->teacher_feeds[i].name);
        x->feeds[i] = (ams_tfjs_feed){x->feed_names[i], c->teacher_feeds[i].value};
    }
    x->c.student = x->student;
    x->c.teacher = x->teacher;
    x->c.teacher_output = x->toutput[0] ? x->toutput : NULL;
    x->c.teacher_feeds = x->feeds;
    x->npix = (size_t)c->width * (size_t)c->height;
    x->tpix = (size_t)c->teacher_width * (size_t)c->teacher_height;
    double cap = c->memory_len * 2 + 16; /* <= 1 frame/s (the ASR bound) plus slack, as sim */
    x->hcap = cap > 100000 ? 100000 : (size_t)cap;
    x->scfg = (ams_cstate_cfg){.width = c->width, .height = c->height, .memory_len = c->memory_len,
                               .hcap = x->hcap, .train_period = c->train_period,
                               .first_train = c->first_train, .atr = c->atr};
    ams_status st = AMS_OK;
    x->slots = calloc((size_t)c->slots, sizeof *x->slots);
    if (!x->slots) st = ams_err_set(err, AMS_E_NOMEM, "server trainer");
    for (int i = 0; i < c->slots && st == AMS_OK; i++) {
        x->n_slots++;
        st = slot_init(x, &x->slots[i], err);
        if (st == AMS_OK && i == 0) x->total = x->slots[0].sp->total;
    }
    if (st != AMS_OK) {
        ctx_free(x);
        return st;
    }
    *out = (ams_compute){.ctx = x, .run = trainer_run, .state_free = state_free,
                         .state_save = state_save, .state_load = state_load};
    return AMS_OK;
}

const ams_params *ams_server_trainer_pretrained(const ams_compute *c) {
    const tctx *x = c ? c->ctx : NULL;
    if (!x || !x->n_slots) return NULL;
    return ams_trainer_pretrained(x->slots[0].trainer);
}

void ams_server_trainer_free(ams_compute *c) {
    if (!c || c->run != trainer_run) return;
    ctx_free(c->ctx);
    memset(c, 0, sizeof *c);
}
