/* sim.c - the AMS emulator's simulated clock: uploads, training phases and updates as timed
 * events over a recorded video and its teacher labels (see sim.h). */
#include "ams/sim.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ams/horizon.h"
#include "ams/metrics.h"
#include "ams/sampling.h"
#include "ams/schedule.h"
#include "ams/uplink.h"
#include "ams/video.h"
#include "sim_internal.h"

#define MAX_QUEUE 4096 /* uploads or updates in flight */

static double wall_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

const char *ams_sim_mode_name(ams_sim_mode m) {
    switch (m) {
    case AMS_SIM_PRETRAINED: return "pretrained";
    case AMS_SIM_ONE_TIME: return "one-time";
    case AMS_SIM_AMS: return "ams";
    case AMS_SIM_JIT: return "jit";
    }
    return "?";
}

ams_status ams_sim_mode_parse(const char *s, ams_sim_mode *out, ams_err *err) {
    for (int m = 0; m <= AMS_SIM_JIT; m++)
        if (s && !strcmp(s, ams_sim_mode_name((ams_sim_mode)m))) {
            *out = (ams_sim_mode)m;
            return AMS_OK;
        }
    AMS_FAIL(err, AMS_E_INVAL, "unknown mode '%s' (pretrained, one-time, ams, jit)", s ? s : "");
}

void ams_sim_config_default(ams_sim_config *c) {
    memset(c, 0, sizeof *c);
    c->mode = AMS_SIM_AMS;
    c->width = 256;
    c->height = 192;
    c->uplink_kbps = 150;
    c->downlink_kbps = 150;
    c->send_period = 10;
    c->first_send = -1;
    c->train_period = 10;
    c->first_train = -1;
    c->memory_len = 60;
    c->eval_fps = 2;
    c->one_time_s = 20;
    c->max_seconds = 0;
    c->compute_s = -1;
    c->asr = 1;
    c->atr = 1;
    c->start_rate = 1.0;
    c->threshold = 0;
    c->jit_iters = 20;
    c->jit_target = 0.8;
    c->record = 0;
    ams_trainer_opts_default(&c->train);
    c->train.input_scale = 1.0f / 255;
}

ams_status ams_sim_tfjs_infer(void *ctx, ams_graph *g, int h, int w, int *image, int *logits,
                              ams_err *err) {
    const ams_tfjs_model *m = ctx;
    AMS_FAIL_IF(ams_tfjs_output_count(m) < 1, err, AMS_E_INVAL, "sim: model has no output");
    const char *logit = ams_tfjs_logit_name(m, ams_tfjs_output_node(m, 0));
    AMS_FAIL_IF(!logit, err, AMS_E_UNSUPPORTED, "sim: output '%s' is not Sigmoid(logit)",
                ams_tfjs_output_node(m, 0));
    ams_tfjs_build_opts bo = {.n = 1, .h = h, .w = w};
    const char *outs[1] = {logit};
    AMS_TRY(ams_tfjs_build(m, g, &bo, outs, 1, logits, image, err));
    int64_t shape[AMS_MAX_DIMS];
    int nd = ams_graph_shape(g, *logits, shape);
    AMS_FAIL_IF(nd != 4, err, AMS_E_SHAPE, "sim: logit '%s' is not (1,h,w,c)", logit);
    if (shape[1] != h || shape[2] != w)
        *logits = ams_graph_resize_bilinear(g, *logits, h, w, AMS_RESIZE_HALF_PIXEL);
    return ams_graph_error(g, err);
}

/* An upload in flight: frames (decoded as the server sees them) and their labels. */
typedef struct upload {
    double arrive;
    int n;
    uint8_t *rgb;    /* n frames */
    uint8_t *labels; /* n planes */
    double *t;       /* n frame times */
} upload;

typedef struct update {
    double arrive;
    uint8_t *msg;
    size_t len;
    int from_pretrained; /* base = the pretrained weights (a restoring phase) */
    int phase;           /* index into the phases */
} update;

/* Everything one run holds. */
typedef struct sim {
    const ams_sim_config *c;
    ams_sim_result *res;
    int w, h;
    size_t npix;
    int classes;
    /* edge */
    ams_params *edge;
    ams_graph *g;
    int g_in, g_out, g_c;
    float *x;
    uint8_t *pred;
    float *scratch;        /* pretrained + update */
    /* server */
    ams_params *server;
    ams_trainer *trainer;
    ams_horizon *horizon;
    float *mirror;         /* the edge's weights after every update sent so far */
    double server_free;
    /* links */
    double up_free, down_free;
    upload ups[MAX_QUEUE];
    int nups;
    update upds[MAX_QUEUE];
    int nupds;
    int version;
    /* metrics */
    ams_confmat cm_frame, cm_all;
    double miou_sum, miou_after_sum;
    int miou_n, miou_after_n;
    /* sampling */
    ams_asr asr;
    uint8_t *last_label; /* the previous upload's last label (phi) */
    int have_last_label;
    ams_schedule sched;
    int one_time_done;
    ams_sim_jit *jit;    /* jit mode's trainer */
} sim;

/* Nearest resize of a label plane with video.h's fill + centre-crop rule. */
static void resize_labels(const uint8_t *src, int sw, int sh, uint8_t *dst, int dw, int dh) {
    int cx, cy, cw, ch;
    ams_video_fill_crop(sw, sh, dw, dh, &cx, &cy, &cw, &ch);
    for (int r = 0; r < dh; r++) {
        int sy = cy + (int)(((double)r + 0.5) * ch / dh);
        if (sy >= sh) sy = sh - 1;
        for (int q = 0; q < dw; q++) {
            int sx = cx + (int)(((double)q + 0.5) * cw / dw);
            if (sx >= sw) sx = sw - 1;
            dst[(size_t)r * dw + q] = src[(size_t)sy * sw + sx];
        }
    }
}

static ams_sim_second *second_at(sim *s, double t) {
    int k = (int)floor(t);
    if (k < 0) k = 0;
    if (k >= s->res->nseconds) return NULL;
    return &s->res->seconds[k];
}

static ams_status push_phase(sim *s, ams_sim_phase *ph, int *index, ams_err *err) {
    ams_sim_result *r = s->res;
    ams_sim_phase *p = realloc(r->phases, (size_t)(r->nphases + 1) * sizeof *p);
    AMS_FAIL_IF(!p, err, AMS_E_NOMEM, "sim: out of memory");
    r->phases = p;
    p[r->nphases] = *ph;
    *index = r->nphases++;
    return AMS_OK;
}

/* Queues the update msg (owned from here on) of phase ph (start, ready, compute filled) for the
 * downlink: it leaves when ready and the link is free, and arrives after its bits. */
static ams_status queue_update(sim *s, ams_sim_phase ph, uint8_t *msg, size_t len,
                               int from_pretrained, ams_err *err) {
    double leave = ph.ready > s->down_free ? ph.ready : s->down_free;
    double tx = s->c->downlink_kbps > 0 ? (double)len * 8 / (s->c->downlink_kbps * 1000) : 0;
    ph.arrive = leave + tx;
    s->down_free = ph.arrive;
    s->server_free = ph.ready;
    s->res->server_compute_s += ph.compute_s;
    s->res->server_measured_s += ph.measured_s;
    int idx = 0;
    if (push_phase(s, &ph, &idx, err) != AMS_OK || s->nupds >= MAX_QUEUE) {
        free(msg);
        AMS_FAIL(err, AMS_E_NOMEM, "sim: too many updates in flight");
    }
    s->upds[s->nupds++] = (update){ph.arrive, msg, len, from_pretrained, idx};
    return AMS_OK;
}

/* A training phase starting at t on the server horizon h; queues the update for the
 * downlink. */
static ams_status train_now(sim *s, const ams_horizon *h, const ams_trainer_opts *o, double t,
                            ams_err *err) {
    ams_trainer_result tr;
    double w0 = wall_now();
    AMS_TRY(ams_trainer_phase(s->trainer, h, o, &tr, err));
    /* the base the edge applies to: the pretrained weights after a restore, else its own */
    const float *base = o->restore ? ams_trainer_pretrained(s->trainer)->values : s->mirror;
    uint8_t *msg = NULL;
    size_t len = 0;
    AMS_TRY(ams_trainer_encode(s->trainer, o, base, &msg, &len, s->mirror, &tr, err));
    double measured = wall_now() - w0;
    double compute = s->c->compute_s >= 0 ? s->c->compute_s : measured;
    ams_sim_phase ph = {.start = t, .ready = t + compute, .compute_s = compute,
                        .measured_s = measured, .horizon = ams_horizon_count(h),
                        .selected = tr.selected, .changed = tr.changed, .bytes = len,
                        .ref_bytes = tr.ref_bytes, .loss_first = tr.loss_first,
                        .loss_last = tr.loss_last, .iters = o->iters, .miou_first = NAN,
                        .miou_last = NAN};
    return queue_update(s, ph, msg, len, o->restore, err);
}

/* jit: at t, the server trains the whole model from the edge's weights on the latest frame
 * (rgb, label) until it matches it (sim_jit.c), and sends the whole-model update. */
static ams_status jit_now(sim *s, const uint8_t *rgb, const uint8_t *label, double t,
                          ams_err *err) {
    double w0 = wall_now();
    size_t total = s->server->total;
    memcpy(s->server->values, s->mirror, total * sizeof(float));
    ams_sim_jit_result jr;
    AMS_TRY(ams_sim_jit_train(s->jit, s->c, rgb, label, &jr, err));
    if (jr.iters == 0) return AMS_OK; /* the student matches the frame already: nothing to send */
    /* the update: every element that moved, as deltas on what the edge holds; the reference
     * format sends the whole model (fp16 values of every tensor) */
    uint8_t *msg = NULL, *ref = NULL;
    size_t len = 0, ref_len = 0, changed = 0;
    for (size_t i = 0; i < total; i++)
        changed += memcmp(&s->server->values[i], &s->mirror[i], sizeof(float)) != 0;
    uint8_t *all = malloc(total ? total : 1);
    AMS_FAIL_IF(!all, err, AMS_E_NOMEM, "sim: out of memory");
    memset(all, 1, total);
    ams_status st = ams_update_ref_encode(s->server, 1, all, s->server->values, &ref, &ref_len,
                                          err);
    free(all);
    free(ref);
    AMS_TRY(st);
    AMS_TRY(ams_update_encode(s->server, s->mirror, s->server->values, &s->c->train.codec, &msg,
                              &len, s->mirror, err));
    double measured = wall_now() - w0;
    double compute = s->c->compute_s >= 0 ? s->c->compute_s : measured;
    ams_sim_phase ph = {.start = t, .ready = t + compute, .compute_s = compute,
                        .measured_s = measured, .horizon = 1, .selected = jr.trainable,
                        .changed = changed, .bytes = len, .ref_bytes = ref_len,
                        .loss_first = jr.loss_first, .loss_last = jr.loss_last,
                        .iters = jr.iters, .miou_first = jr.miou_first,
                        .miou_last = jr.miou_last};
    return queue_update(s, ph, msg, len, 0, err);
}

/* Applies the updates that reached the edge by t. */
static ams_status deliver_updates(sim *s, double t, ams_err *err) {
    while (s->nupds > 0 && s->upds[0].arrive <= t) {
        update u = s->upds[0];
        memmove(&s->upds[0], &s->upds[1], (size_t)(s->nupds - 1) * sizeof u);
        s->nupds--;
        ams_update *dec = NULL;
        ams_status st = ams_update_decode(u.msg, u.len, s->edge->total, &dec, err);
        if (st == AMS_OK) {
            float *target = s->edge->values;
            if (u.from_pretrained) {
                memcpy(s->scratch, ams_trainer_pretrained(s->trainer)->values,
                       s->edge->total * sizeof(float));
                target = s->scratch;
            }
            st = ams_update_apply(dec, target, s->edge->total, err);
            if (st == AMS_OK && u.from_pretrained)
                memcpy(s->edge->values, s->scratch, s->edge->total * sizeof(float));
        }
        ams_update_free(dec);
        free(u.msg);
        if (st != AMS_OK) {
            s->res->rejected++;
            continue;
        }
        s->version++;
        s->res->updates++;
        s->res->codec_bytes += u.len;
        s->res->ref_bytes += s->res->phases[u.phase].ref_bytes;
        s->res->down_bits += (uint64_t)u.len * 8;
        ams_sim_second *sec = second_at(s, u.arrive);
        if (sec) sec->down_bits += (uint64_t)u.len * 8;
    }
    return AMS_OK;
}

/* Moves the uploads that reached the server by t into the horizon (and, for jit, trains). */
static ams_status receive_uploads(sim *s, double t, ams_err *err) {
    while (s->nups > 0 && s->ups[0].arrive <= t) {
        upload u = s->ups[0];
        memmove(&s->ups[0], &s->ups[1], (size_t)(s->nups - 1) * sizeof u);
        s->nups--;
        ams_status st = AMS_OK;
        for (int i = 0; i < u.n && st == AMS_OK; i++)
            st = ams_horizon_add(s->horizon, u.t[i], u.rgb + (size_t)i * s->npix * 3,
                                 u.labels + (size_t)i * s->npix, err);
        if (st == AMS_OK && s->c->mode == AMS_SIM_JIT && u.n > 0) {
            /* JITNet-like: the upload's latest frame, from the edge's weights */
            double start = u.arrive > s->server_free ? u.arrive : s->server_free;
            st = jit_now(s, u.rgb + (size_t)(u.n - 1) * s->npix * 3,
                         u.labels + (size_t)(u.n - 1) * s->npix, start, err);
        }
        free(u.rgb);
        free(u.labels);
        free(u.t);
        AMS_TRY(st);
    }
    return AMS_OK;
}

/* End of a send period at t_end: ASR picks frames among the n buffered ones, they are
 * H.264-encoded at the uplink budget and leave. */
static ams_status send_period(sim *s, const uint8_t *rgb, const uint8_t *labels,
                              const double *times, int n, double t_end, double label_fps,
                              ams_err *err) {
    if (n == 0) return AMS_OK;
    double frac = ams_sample_fraction(s->asr.rate, label_fps);
    if (frac > 1) frac = 1;
    size_t *idx = malloc((size_t)n * sizeof *idx);
    AMS_FAIL_IF(!idx, err, AMS_E_NOMEM, "sim: out of memory");
    size_t k = 0;
    ams_status st = ams_sample_pick((size_t)n, frac, idx, (size_t)n, &k, err);
    if (st != AMS_OK || k == 0) {
        free(idx);
        return st;
    }
    upload u = {0};
    u.n = (int)k;
    u.rgb = malloc(k * s->npix * 3);
    u.labels = malloc(k * s->npix);
    u.t = malloc(k * sizeof *u.t);
    const uint8_t **frames = malloc(k * sizeof *frames);
    const uint8_t **labs = malloc((k + 1) * sizeof *labs);
    if (!u.rgb || !u.labels || !u.t || !frames || !labs) {
        st = ams_err_set(err, AMS_E_NOMEM, "sim: out of memory");
        goto done;
    }
    size_t nl = 0;
    if (s->have_last_label) labs[nl++] = s->last_label;
    for (size_t i = 0; i < k; i++) {
        frames[i] = rgb + idx[i] * s->npix * 3;
        memcpy(u.labels + i * s->npix, labels + idx[i] * s->npix, s->npix);
        labs[nl++] = u.labels + i * s->npix;
        u.t[i] = times[idx[i]];
    }
    uint64_t bits = 0;
    if (s->c->uplink_kbps > 0) {
        ams_uplink_opts uo = {.width = s->w, .height = s->h, .fps = s->asr.rate,
                              .kbps = s->c->uplink_kbps, .passes = 2, .threads = 1};
        ams_uplink_buf *buf = NULL;
        ams_uplink_frames *dec = NULL;
        st = ams_uplink_encode(&uo, frames, (int)k, &buf, err);
        if (st == AMS_OK)
            st = ams_uplink_decode(buf->data, buf->size, s->w, s->h, (int)k + 1, &dec, err);
        if (st == AMS_OK) {
            bits = (uint64_t)buf->size * 8;
            if (dec->n < u.n) u.n = dec->n;
            memcpy(u.rgb, dec->rgb, (size_t)u.n * s->npix * 3);
        }
        ams_uplink_frames_free(dec);
        ams_uplink_buf_free(buf);
        if (st != AMS_OK) goto done;
    } else {
        for (size_t i = 0; i < k; i++) memcpy(u.rgb + i * s->npix * 3, frames[i], s->npix * 3);
    }
    /* ASR: phi over the labels of this upload and the last one before it */
    if (s->c->asr) {
        double phi = ams_asr_phi(&s->cm_frame, labs, nl, s->npix);
        ams_asr_update(&s->asr, phi);
    }
    memcpy(s->last_label, u.labels + (k - 1) * s->npix, s->npix);
    s->have_last_label = 1;
    double leave = t_end > s->up_free ? t_end : s->up_free;
    u.arrive = leave + (s->c->uplink_kbps > 0 ? (double)bits / (s->c->uplink_kbps * 1000) : 0);
    s->up_free = u.arrive;
    s->res->up_bits += bits;
    s->res->uploads++;
    s->res->uploaded_frames += u.n;
    ams_sim_second *sec = second_at(s, t_end - 1e-9);
    if (sec) sec->up_bits += bits;
    if (s->nups >= MAX_QUEUE) {
        st = ams_err_set(err, AMS_E_NOMEM, "sim: too many uploads in flight");
        goto done;
    }
    s->ups[s->nups++] = u;
    u.rgb = NULL;
    u.labels = NULL;
    u.t = NULL;
done:
    free(u.rgb);
    free(u.labels);
    free(u.t);
    free(frames);
    free(labs);
    free(idx);
    return st;
}

ams_status ams_sim_confmat_init(ams_confmat *cm, const ams_sim_config *c, int classes,
                                ams_err *err) {
    if (c->nsubset <= 0) return ams_confmat_init_range(cm, classes, err);
    uint8_t ids[AMS_CM_MAX_CLASSES];
    AMS_FAIL_IF(c->nsubset > AMS_CM_MAX_CLASSES, err, AMS_E_INVAL,
                "sim: %d subset classes (at most %d)", c->nsubset, AMS_CM_MAX_CLASSES);
    for (int i = 0; i < c->nsubset; i++) {
        AMS_FAIL_IF(c->subset[i] < 0 || c->subset[i] >= classes, err, AMS_E_INVAL,
                    "sim: subset class %d is not one of the labels' 0..%d", c->subset[i],
                    classes - 1);
        ids[i] = (uint8_t)c->subset[i];
    }
    return ams_confmat_init(cm, ids, c->nsubset, err);
}

void ams_sim_predict(const ams_sim_config *c, const float *y, size_t npix, int nc,
                     uint8_t *pred) {
    if (nc == 1) {
        for (size_t i = 0; i < npix; i++) pred[i] = y[i] > c->threshold;
    } else if (c->nsubset > 0) { /* the argmax over the subset's classes only */
        for (size_t i = 0; i < npix; i++) {
            const float *v = y + i * (size_t)nc;
            int best = c->subset[0];
            for (int k = 1; k < c->nsubset; k++)
                if (v[c->subset[k]] > v[best]) best = c->subset[k];
            pred[i] = (uint8_t)best;
        }
    } else {
        for (size_t i = 0; i < npix; i++) {
            const float *v = y + i * (size_t)nc;
            int best = 0;
            for (int k = 1; k < nc; k++)
                if (v[k] > v[best]) best = k;
            pred[i] = (uint8_t)best;
        }
    }
}

/* Student inference on one frame with the edge's weights; metrics. */
static ams_status evaluate(sim *s, const uint8_t *rgb, const uint8_t *label, double t,
                           ams_err *err) {
    size_t n3 = s->npix * 3;
    for (size_t i = 0; i < n3; i++) s->x[i] = (float)rgb[i] * s->c->train.input_scale;
    AMS_TRY(ams_graph_set_input(s->g, s->g_in, s->x, err));
    AMS_TRY(ams_graph_forward(s->g, s->c->train.be ? s->c->train.be : ams_backend_ref(), err));
    const float *y = ams_graph_value(s->g, s->g_out);
    AMS_FAIL_IF(!y, err, AMS_E_INTERNAL, "sim: the student's output was not kept");
    ams_sim_predict(s->c, y, s->npix, s->g_c, s->pred);
    double m = ams_label_miou(&s->cm_frame, label, s->pred, s->npix, AMS_CM_TRUTH);
    AMS_TRY(ams_confmat_sum(&s->cm_all, &s->cm_frame, err));
    if (s->res->rec) AMS_TRY(ams_sim_rec_add(s->res->rec, t, s->pred, label, err));
    if (!isnan(m)) {
        s->miou_sum += m;
        s->miou_n++;
        double first = s->c->first_train >= 0 ? s->c->first_train : s->c->train_period;
        if (s->c->mode == AMS_SIM_ONE_TIME) first = s->c->one_time_s;
        if (t >= first) {
            s->miou_after_sum += m;
            s->miou_after_n++;
        }
        ams_sim_second *sec = second_at(s, t);
        if (sec) {
            sec->miou = sec->frames ? sec->miou + m : m;
            sec->frames++;
        }
    }
    s->res->eval_frames++;
    return AMS_OK;
}

/* The end of send period p (0-based): the first one is first_send long, so the server has
 * frames to train on a period earlier (its bits take about a period at the budget). */
static double send_end(const ams_sim_config *c, int p) {
    double first = c->first_send >= 0 ? c->first_send : c->send_period / 2;
    return first + p * c->send_period;
}

static ams_status check_config(const ams_sim_config *c, ams_err *err) {
    AMS_FAIL_IF(c->width < 16 || c->height < 16 || c->width > 4096 || c->height > 4096 ||
                    (c->width & 1) || (c->height & 1),
                err, AMS_E_INVAL, "sim: size %dx%d must be even, 16..4096", c->width, c->height);
    AMS_FAIL_IF(!(c->uplink_kbps >= 0) || !(c->downlink_kbps >= 0), err, AMS_E_INVAL,
                "sim: budgets must be >= 0 Kbps (0 = unlimited)");
    AMS_FAIL_IF(!(c->send_period > 0) || !(c->train_period > 0) || !(c->memory_len > 0) ||
                    !(c->eval_fps > 0) || !isfinite(c->send_period) ||
                    !isfinite(c->train_period) || !isfinite(c->eval_fps),
                err, AMS_E_INVAL, "sim: periods, memory and eval fps must be > 0");
    AMS_FAIL_IF(c->first_send == 0 || !isfinite(c->first_send), err, AMS_E_INVAL,
                "sim: the first send period must be > 0 s (or < 0: half the send period)");
    AMS_FAIL_IF(!(c->start_rate >= 0.1 && c->start_rate <= 1), err, AMS_E_INVAL,
                "sim: start rate must be in 0.1..1 frames/s");
    AMS_FAIL_IF(c->jit_iters < 1, err, AMS_E_INVAL, "sim: jit iterations must be >= 1");
    AMS_FAIL_IF(c->nsubset < 0 || c->nsubset > AMS_CM_MAX_CLASSES, err, AMS_E_INVAL,
                "sim: %d subset classes (0..%d)", c->nsubset, AMS_CM_MAX_CLASSES);
    for (int i = 0; i < c->nsubset; i++) {
        AMS_FAIL_IF(c->subset[i] < 0 || c->subset[i] > 254, err, AMS_E_INVAL,
                    "sim: subset class %d is not a class id (0..254)", c->subset[i]);
        for (int j = 0; j < i; j++)
            AMS_FAIL_IF(c->subset[j] == c->subset[i], err, AMS_E_INVAL,
                        "sim: subset class %d twice", c->subset[i]);
    }
    AMS_FAIL_IF(!(c->jit_target >= 0 && c->jit_target <= 1), err, AMS_E_INVAL,
                "sim: the jit target mIoU must be in 0..1");
    return AMS_OK;
}

static void sim_free(sim *s) {
    ams_graph_free(s->g);
    ams_trainer_free(s->trainer);
    ams_horizon_free(s->horizon);
    ams_sim_jit_free(s->jit);
    free(s->x);
    free(s->pred);
    free(s->scratch);
    free(s->mirror);
    free(s->last_label);
    for (int i = 0; i < s->nups; i++) {
        free(s->ups[i].rgb);
        free(s->ups[i].labels);
        free(s->ups[i].t);
    }
    for (int i = 0; i < s->nupds; i++) free(s->upds[i].msg);
}

void ams_sim_result_free(ams_sim_result *r) {
    if (!r) return;
    free(r->seconds);
    free(r->phases);
    ams_sim_rec_free(r->rec);
    free(r);
}

/* Sets up the edge graph, trainer, horizon and buffers. */
static ams_status sim_init(sim *s, ams_sim_student *edge, ams_sim_student *server,
                           ams_err *err) {
    const ams_sim_config *c = s->c;
    AMS_FAIL_IF(!edge || !server || !edge->params || !server->params || !edge->build_infer ||
                    !server->build_train || edge->params == server->params ||
                    edge->params->total != server->params->total,
                err, AMS_E_INVAL, "sim: needs an edge and a server student with own params");
    s->edge = edge->params;
    s->server = server->params;
    size_t total = s->edge->total;
    s->g = ams_graph_new(s->edge);
    AMS_FAIL_IF(!s->g, err, AMS_E_NOMEM, "sim: out of memory");
    AMS_TRY(edge->build_infer(edge->ctx, s->g, s->h, s->w, &s->g_in, &s->g_out, err));
    ams_graph_keep(s->g, s->g_out);
    AMS_TRY(ams_graph_plan(s->g, AMS_PLAN_INFER, err));
    int64_t shape[AMS_MAX_DIMS];
    int nd = ams_graph_shape(s->g, s->g_out, shape);
    AMS_FAIL_IF(nd != 4 || shape[0] != 1 || shape[1] != s->h || shape[2] != s->w ||
                    shape[3] < 1 || shape[3] > AMS_CM_MAX_CLASSES,
                err, AMS_E_SHAPE, "sim: the student's output is not (1,%d,%d,C)", s->h, s->w);
    s->g_c = (int)shape[3];
    for (int i = 0; i < c->nsubset && s->g_c > 1; i++)
        AMS_FAIL_IF(c->subset[i] >= s->g_c, err, AMS_E_INVAL,
                    "sim: subset class %d is not one of the student's 0..%d", c->subset[i],
                    s->g_c - 1);
    AMS_TRY(ams_trainer_new(&s->trainer, s->server, server->build_train, server->ctx, s->h, s->w,
                            err));
    size_t cap = (size_t)(c->memory_len * 2 + 16); /* <= 1 frame/s plus slack */
    if (cap > 100000) cap = 100000;
    s->horizon = ams_horizon_new(s->h, s->w, c->memory_len, cap, err);
    if (!s->horizon) return err ? err->code : AMS_E_NOMEM;
    s->x = malloc(s->npix * 3 * sizeof(float));
    s->pred = malloc(s->npix);
    s->scratch = malloc(total * sizeof(float));
    s->mirror = malloc(total * sizeof(float));
    s->last_label = malloc(s->npix);
    AMS_FAIL_IF(!s->x || !s->pred || !s->scratch || !s->mirror || !s->last_label, err,
                AMS_E_NOMEM, "sim: out of memory");
    memcpy(s->mirror, s->edge->values, total * sizeof(float));
    AMS_FAIL_IF(memcmp(s->mirror, s->server->values, total * sizeof(float)) != 0, err,
                AMS_E_INVAL, "sim: the edge and the server must start from the same weights");
    ams_asr_init(&s->asr);
    s->asr.rate = c->start_rate;
    double first = c->first_train >= 0 ? c->first_train : c->train_period;
    ams_schedule_init(&s->sched, c->train_period, first, c->atr);
    if (c->mode == AMS_SIM_JIT)
        AMS_TRY(ams_sim_jit_new(&s->jit, server, s->h, s->w, s->classes, c, err));
    if (c->record) {
        s->res->rec = ams_sim_rec_new(s->w, s->h);
        AMS_FAIL_IF(!s->res->rec, err, AMS_E_NOMEM, "sim: out of memory");
    }
    return AMS_OK;
}

ams_status ams_sim_run(const ams_sim_config *c, const char *video, ams_label_reader *labels,
                       ams_sim_student *edge, ams_sim_student *server,
                       ams_sim_progress_fn progress, void *progress_ctx, ams_sim_result **out,
                       ams_err *err) {
    double wall0 = wall_now();
    *out = NULL;
    AMS_TRY(check_config(c, err));
    const ams_label_info *li = ams_label_reader_info(labels);
    int64_t nlab = ams_label_reader_count(labels);
    AMS_FAIL_IF(nlab < 2, err, AMS_E_INVAL, "sim: the label store holds %lld frames (need >= 2)",
                (long long)nlab);
    /* the timeline: label frames before max_seconds */
    int64_t n = nlab;
    if (c->max_seconds > 0)
        while (n > 0 && ams_label_reader_pts(labels, n - 1) >= c->max_seconds) n--;
    AMS_FAIL_IF(n < 2, err, AMS_E_INVAL, "sim: fewer than 2 labelled frames in the first %g s",
                c->max_seconds);
    double t0 = ams_label_reader_pts(labels, 0), tl = ams_label_reader_pts(labels, n - 1);
    double label_fps = (double)(n - 1) / (tl - t0);
    AMS_FAIL_IF(!(label_fps <= 1000) || !(tl < 1e6) || !(t0 >= 0), err, AMS_E_RANGE,
                "sim: labels at %g fps over %g..%g s (at most 1000 fps, 0..1e6 s)", label_fps,
                t0, tl);
    double duration = tl + 1.0 / label_fps;
    if (c->max_seconds > 0 && duration > c->max_seconds) duration = c->max_seconds;

    sim s = {0};
    s.c = c;
    s.w = c->width;
    s.h = c->height;
    s.npix = (size_t)s.w * (size_t)s.h;
    s.classes = li->classes >= 2 ? li->classes : 2;
    AMS_FAIL_IF(s.classes > AMS_CM_MAX_CLASSES, err, AMS_E_UNSUPPORTED,
                "sim: %d classes (at most %d)", s.classes, AMS_CM_MAX_CLASSES);
    ams_sim_result *res = calloc(1, sizeof *res);
    AMS_FAIL_IF(!res, err, AMS_E_NOMEM, "sim: out of memory");
    s.res = res;
    res->config = *c;
    snprintf(res->video, sizeof res->video, "%s", video);
    res->duration = duration;
    res->nseconds = (int)ceil(duration - 1e-9);
    res->seconds = calloc((size_t)res->nseconds, sizeof *res->seconds);
    ams_video_reader *vr = NULL;
    uint8_t *src_label = NULL, *pbuf_rgb = NULL, *pbuf_lab = NULL;
    double *pbuf_t = NULL;
    ams_status st = AMS_OK;
    if (!res->seconds) {
        st = ams_err_set(err, AMS_E_NOMEM, "sim: out of memory");
        goto done;
    }
    for (int k = 0; k < res->nseconds; k++) {
        res->seconds[k].second = k;
        res->seconds[k].miou = NAN;
    }
    if ((st = ams_sim_confmat_init(&s.cm_frame, c, s.classes, err)) != AMS_OK) goto done;
    if ((st = ams_sim_confmat_init(&s.cm_all, c, s.classes, err)) != AMS_OK) goto done;
    if ((st = sim_init(&s, edge, server, err)) != AMS_OK) goto done;
    ams_video_opts vo = {.width = s.w, .height = s.h, .threads = 1};
    if ((st = ams_video_open(&vr, video, &vo, err)) != AMS_OK) goto done;

    /* one send period of frames, buffered */
    int per_cap = (int)ceil(c->send_period * label_fps) + 2;
    src_label = malloc((size_t)li->width * (size_t)li->height);
    pbuf_rgb = malloc((size_t)per_cap * s.npix * 3);
    pbuf_lab = malloc((size_t)per_cap * s.npix);
    pbuf_t = malloc((size_t)per_cap * sizeof *pbuf_t);
    if (!src_label || !pbuf_rgb || !pbuf_lab || !pbuf_t) {
        st = ams_err_set(err, AMS_E_NOMEM, "sim: out of memory");
        goto done;
    }
    int pn = 0;
    int period = 0;      /* index of the current send period */
    long last_slot = -1; /* eval slot of the last evaluated frame */
    int uploading = c->mode != AMS_SIM_PRETRAINED;
    for (int64_t i = 0; i < n && st == AMS_OK; i++) {
        double t = ams_label_reader_pts(labels, i);
        /* a send period ended before this frame: upload it */
        while (t >= send_end(c, period)) {
            double t_end = send_end(c, period);
            if (uploading && c->mode == AMS_SIM_ONE_TIME && t_end > c->one_time_s + 1e-9)
                uploading = 0;
            if (uploading)
                st = send_period(&s, pbuf_rgb, pbuf_lab, pbuf_t, pn, t_end, label_fps, err);
            if (st != AMS_OK) goto done;
            pn = 0;
            period++;
        }
        /* events due by t */
        if ((st = receive_uploads(&s, t, err)) != AMS_OK) goto done;
        int due = 0;
        if (c->mode == AMS_SIM_AMS) due = ams_schedule_due(&s.sched, t);
        /* one-time trains once on every frame it sent: when its last upload has arrived */
        if (c->mode == AMS_SIM_ONE_TIME)
            due = !s.one_time_done && t >= c->one_time_s && s.nups == 0;
        if (due && s.server_free <= t) {
            ams_horizon_expire(s.horizon, t);
            if (ams_horizon_count(s.horizon) > 0) {
                if (progress) progress(progress_ctx, t, duration, "train");
                if ((st = train_now(&s, s.horizon, &c->train, t, err)) != AMS_OK) goto done;
                if (c->mode == AMS_SIM_AMS) ams_schedule_done(&s.sched, t, s.asr.rate);
                s.one_time_done = 1;
            }
        }
        if ((st = deliver_updates(&s, t, err)) != AMS_OK) goto done;

        /* the frame and its label */
        ams_video_frame f;
        if ((st = ams_video_read_at(vr, t, &f, err)) != AMS_OK) goto done;
        if (!f.rgb) break; /* the video is shorter than the labels */
        if ((st = ams_label_reader_read(labels, i, src_label,
                                        (size_t)li->width * (size_t)li->height, err)) != AMS_OK)
            goto done;
        if (pn == per_cap) { /* irregular label times: grow the period's buffer */
            int cap2 = per_cap * 2;
            uint8_t *r2 = realloc(pbuf_rgb, (size_t)cap2 * s.npix * 3);
            if (r2) pbuf_rgb = r2;
            uint8_t *l2 = realloc(pbuf_lab, (size_t)cap2 * s.npix);
            if (l2) pbuf_lab = l2;
            double *t2 = realloc(pbuf_t, (size_t)cap2 * sizeof *pbuf_t);
            if (t2) pbuf_t = t2;
            if (!r2 || !l2 || !t2) {
                st = ams_err_set(err, AMS_E_NOMEM, "sim: out of memory");
                goto done;
            }
            per_cap = cap2;
        }
        memcpy(pbuf_rgb + (size_t)pn * s.npix * 3, f.rgb, s.npix * 3);
        resize_labels(src_label, li->width, li->height, pbuf_lab + (size_t)pn * s.npix, s.w,
                      s.h);
        pbuf_t[pn] = t;
        long slot = (long)floor(t * c->eval_fps + 1e-6);
        if (slot != last_slot) {
            last_slot = slot;
            st = evaluate(&s, pbuf_rgb + (size_t)pn * s.npix * 3, pbuf_lab + (size_t)pn * s.npix,
                          t, err);
            if (st != AMS_OK) goto done;
        }
        pn++;
        ams_sim_second *sec = second_at(&s, t);
        if (sec) {
            sec->rate = uploading ? s.asr.rate : 0;
            sec->version = s.version;
        }
        if (progress) progress(progress_ctx, t, duration, "eval");
    }
    /* the last period's upload cannot help any more frame: not sent */

    /* summary */
    for (int k = 0; k < res->nseconds; k++) {
        ams_sim_second *sec = &res->seconds[k];
        if (sec->frames) sec->miou /= sec->frames;
        if (k > 0 && sec->version < res->seconds[k - 1].version)
            sec->version = res->seconds[k - 1].version;
    }
    res->miou = s.miou_n ? s.miou_sum / s.miou_n : NAN;
    res->miou_after = s.miou_after_n ? s.miou_after_sum / s.miou_after_n : NAN;
    double iou[AMS_CM_MAX_CLASSES];
    ams_confmat_iou(&s.cm_all, iou);
    /* class id 1 (person in the binary pairs); NaN when a subset leaves it out */
    res->person_iou = s.cm_all.map[1] < s.cm_all.k ? iou[s.cm_all.map[1]] : NAN;
    res->pixel_accuracy = ams_confmat_pixel_accuracy(&s.cm_all);
    res->uplink_kbps = (double)res->up_bits / duration / 1000;
    res->downlink_kbps = (double)res->down_bits / duration / 1000;
done:
    ams_video_free(vr);
    free(src_label);
    free(pbuf_rgb);
    free(pbuf_lab);
    free(pbuf_t);
    sim_free(&s);
    res->wall_s = wall_now() - wall0;
    if (st != AMS_OK) {
        ams_sim_result_free(res);
        return st;
    }
    *out = res;
    return AMS_OK;
}
