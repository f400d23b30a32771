/* server_sched.c - the server's compute workers: a fair scheduler over sessions with work,
 * one job per session at a time; a job runs the compute (or a resync), encodes the update,
 * persists the session and hands the update to the event loop. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ams/update_codec.h"
#include "net/server_internal.h"

static int has_work(const session *ss) { return !ss->busy && (ss->resync || ss->n_pending > 0); }

void ams_sched_work_added(ams_server *s, session *ss) {
    if (!ss->resync && ss->n_pending == 0) ss->waiting_seq = s->picks; /* it starts waiting */
}

/* May y run before the other sessions waiting: has it not been served since any of them
 * began to wait? (served_seq <= waiting_seq holds for every session: work that waits came
 * after its last pick, so the one waiting longest always may.) */
static int may_go(const ams_server *s, const session *y) {
    for (int i = 0; i < s->n_sessions; i++) {
        const session *x = s->sessions[i];
        if (x != y && has_work(x) && y->served_seq > x->waiting_seq) return 0;
    }
    return 1;
}

/* Fair twice over. No session waits for more than one job of every other session (a session
 * served since another began to wait is passed over: round-robin's bound). Among those that
 * may go, the one whose last job's lag was largest first: clients whose uploads arrive
 * together take turns at being first (round-robin served them in the same order every
 * period, one client always a whole job later: its lag the sum of both). Ties: round-robin
 * order from the cursor. */
session *ams_sched_pick(ams_server *s) {
    int best = -1;
    for (int k = 0; k < s->n_sessions; k++) {
        int i = (s->rr + k) % s->n_sessions;
        session *ss = s->sessions[i];
        if (!has_work(ss) || !may_go(s, ss)) continue;
        if (best < 0 || ss->info.lag_last > s->sessions[best]->info.lag_last) best = i;
    }
    if (best < 0) return NULL;
    s->rr = (best + 1) % s->n_sessions;
    s->sessions[best]->served_seq = ++s->picks;
    return s->sessions[best];
}

static void wake_loop(ams_server *s) {
    uint64_t one = 1;
    ssize_t w = write(s->event_fd, &one, sizeof one);
    (void)w; /* a full eventfd counter still wakes the loop */
}

/* One job for ss (busy set by the caller; mu NOT held). Returns with mu not held. */
static void run_job(ams_server *s, session *ss, float *current, float *target, float *applied) {
    ams_err err = {0};
    pthread_mutex_lock(&s->mu);
    int resync = ss->resync;
    ams_net_sample *samples = NULL;
    int n = 0;
    if (!resync) {
        samples = ss->pending;
        n = ss->n_pending;
        ss->pending = NULL;
        ss->n_pending = ss->cap_pending = 0;
    }
    memcpy(current, ss->mirror, s->total * sizeof(float));
    uint64_t version = ss->version;
    double rate = ss->sample_rate;
    void *cstate = ss->cstate;
    pthread_mutex_unlock(&s->mu);

    char cpath[4200];
    snprintf(cpath, sizeof cpath, "%s/%s.compute", s->cfg.state_dir, ss->id);
    if (!cstate && s->cfg.compute.state_load) { /* resume training state after a restart */
        ams_err le = {0};
        s->cfg.compute.state_load(s->cfg.compute.ctx, &cstate, cpath, &le);
    }
    int changed = 0;
    const float *base = current;
    ams_status st = AMS_OK;
    ams_compute_job job = {.miou = NAN, .miou_pretrained = NAN};
    if (resync) { /* the client holds the initial weights: move it to the mirror */
        base = s->layout->values;
        memcpy(target, current, s->total * sizeof(float));
        changed = memcmp(base, target, s->total * sizeof(float)) != 0;
    } else {
        memcpy(target, current, s->total * sizeof(float));
        job = (ams_compute_job){.client_id = ss->id, .layout = s->layout, .current = current,
                                .target = target, .samples = samples, .n_samples = n,
                                .version = version, .sample_rate = rate, .state = &cstate,
                                .miou = NAN, .miou_pretrained = NAN};
        st = s->cfg.compute.run(s->cfg.compute.ctx, &job, &changed, &err);
        rate = job.sample_rate;
    }
    uint8_t *msg = NULL, *payload = NULL;
    size_t len = 0, plen = 0;
    uint8_t base_hash[AMS_HASH_LEN], hash[AMS_HASH_LEN];
    if (st == AMS_OK && changed) {
        ams_update_opts o;
        ams_update_opts_default(&o);
        st = ams_update_encode(s->layout, base, target, &o, &msg, &len, applied, &err);
        if (st == AMS_OK) st = ams_weights_hash(base, s->total, base_hash, &err);
        if (st == AMS_OK) st = ams_weights_hash(applied, s->total, hash, &err);
        if (st == AMS_OK) {
            plen = AMS_MSG_UPDATE_HEAD_BYTES + len;
            if (plen > ams_proto_max_payload(AMS_MSG_UPDATE) || !(payload = malloc(plen)))
                st = ams_err_set(&err, AMS_E_RANGE, "update of %zu bytes", plen);
        }
        if (st == AMS_OK) {
            ams_msg_update_head h = {.version = version + 1};
            memcpy(h.result_hash, hash, AMS_HASH_LEN);
            ams_msg_update_head_pack(&h, payload);
            memcpy(payload + AMS_MSG_UPDATE_HEAD_BYTES, msg, len);
            /* persisted before it is sent: a restart can always resend it */
            st = ams_session_save(s->cfg.state_dir, ss->id, version + 1, rate, applied, s->total,
                                  payload, plen, base_hash, &err);
        }
    }
    if (st == AMS_OK && !resync && cstate && s->cfg.compute.state_save) {
        /* after every job (its horizon grew); not fatal: the update stands, a restart would
         * resume training from older state */
        ams_err se = {0};
        s->cfg.compute.state_save(s->cfg.compute.ctx, cstate, cpath, &se);
    }
    free(msg);
    double now = ams_server_now();
    if (st == AMS_OK && changed && s->cfg.on_update)
        s->cfg.on_update(s->cfg.on_update_ctx, ss->id, version + 1, hash, plen,
                         n > 0 ? now - samples[0].arrived : 0, job.miou, job.miou_pretrained);
    pthread_mutex_lock(&s->mu);
    s->totals.jobs++;
    ss->cstate = cstate;
    ss->sample_rate = rate;
    if (resync) ss->resync = 0;
    if (st != AMS_OK) {
        ss->info.uploads_dropped += (uint64_t)n;
        free(payload);
    } else if (changed) {
        memcpy(ss->mirror, applied, s->total * sizeof(float));
        memcpy(ss->hash, hash, AMS_HASH_LEN);
        memcpy(ss->last_base, base_hash, AMS_HASH_LEN);
        ss->version = version + 1;
        free(ss->last_update);
        ss->last_update = payload;
        ss->last_update_len = plen;
        ss->send_pending = 1;
        ss->info.updates++;
        ss->info.update_bytes += plen;
    }
    if (st == AMS_OK && !resync) {
        ss->info.labelled += job.labelled;
        if (job.horizon) ss->info.horizon = job.horizon;
        if (!isnan(job.miou)) {
            ss->info.miou = job.miou;
            ss->miou_sum += job.miou;
            ss->info.miou_mean = ss->miou_sum / (double)++ss->miou_n;
        }
        if (!isnan(job.miou_pretrained)) {
            ss->info.miou_pretrained = job.miou_pretrained;
            ss->miou_pre_sum += job.miou_pretrained;
            ss->info.miou_pretrained_mean = ss->miou_pre_sum / (double)++ss->miou_pre_n;
        }
    }
    if (n > 0) {
        double lag = now - samples[0].arrived;
        ss->info.lag_last = lag;
        if (lag > ss->info.lag_max) ss->info.lag_max = lag;
        ss->lag_sum += lag;
        ss->lag_n++;
        ss->info.lag_mean = ss->lag_sum / (double)ss->lag_n;
    }
    ss->busy = 0;
    pthread_mutex_unlock(&s->mu);
    for (int i = 0; i < n; i++) free((void *)samples[i].h264);
    free(samples);
    wake_loop(s);
}

static void *worker(void *arg) {
    ams_server *s = arg;
    size_t bytes = s->total * sizeof(float);
    float *current = malloc(bytes), *target = malloc(bytes), *applied = malloc(bytes);
    pthread_mutex_lock(&s->mu);
    while (!s->workers_stop) {
        session *ss = (current && target && applied) ? ams_sched_pick(s) : NULL;
        if (!ss) {
            pthread_cond_wait(&s->cv, &s->mu);
            continue;
        }
        ss->busy = 1;
        pthread_mutex_unlock(&s->mu);
        run_job(s, ss, current, target, applied);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    free(current);
    free(target);
    free(applied);
    return NULL;
}

ams_status ams_sched_start(ams_server *s, ams_err *err) {
    s->workers = calloc((size_t)s->cfg.workers, sizeof *s->workers);
    AMS_FAIL_IF(!s->workers, err, AMS_E_NOMEM, "workers");
    for (int i = 0; i < s->cfg.workers; i++) {
        if (pthread_create(&s->workers[i], NULL, worker, s) != 0) {
            ams_sched_stop(s);
            AMS_FAIL(err, AMS_E_NOMEM, "cannot start worker thread %d", i);
        }
        s->n_workers++;
    }
    return AMS_OK;
}

void ams_sched_stop(ams_server *s) {
    pthread_mutex_lock(&s->mu);
    s->workers_stop = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    for (int i = 0; i < s->n_workers; i++) pthread_join(s->workers[i], NULL);
    s->n_workers = 0;
    free(s->workers);
    s->workers = NULL;
}
