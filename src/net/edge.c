/* edge.c - the edge client's network side: time-based sampling at the server's rate, a bounded
 * upload queue drained by a network thread (x264 encode, send, reconnect with backoff), and
 * verified sparse updates handed to the inference thread, which applies them between frames. */
#include "ams/edge.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ams/client.h"
#include "ams/server.h"
#include "ams/tls.h"
#include "ams/update_codec.h"
#include "ams/uplink.h"
#include "ams/weights_hash.h"

#define READY_MAX 64

typedef struct chunk {
    uint8_t *rgb; /* n frames */
    int n, cap;
    double t_first, t_last, fps;
} chunk;

typedef struct ready {
    ams_update *u;
    uint64_t version, seq;
} ready;

struct ams_edge {
    ams_edge_config cfg;
    char server[256], id[AMS_PROTO_ID_MAX + 1], model_id[AMS_PROTO_MODEL_MAX + 1];
    float *values;   /* the caller's live weights (inference thread only) */
    float *initial;  /* copy of the pretrained weights */
    size_t frame_bytes;
    ams_tls *tls;    /* NULL: plain TCP */
    pthread_t thread;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* ---- guarded by mu ---- */
    int stop;
    chunk *queue; /* queue_max slots, FIFO */
    int qhead, qlen;
    int sending;  /* the network thread holds a popped chunk */
    ready rd[READY_MAX];
    int nrd;
    uint64_t acks_seq[READY_MAX], acks_ver[READY_MAX];
    int nacks;
    int reset;      /* net -> inference: return to the pretrained weights */
    int reconnect;  /* inference -> net: drop the connection (resync by hello) */
    uint64_t version;
    uint8_t hash[AMS_HASH_LEN];
    ams_edge_stats st;
    double last_update_time;
    uint64_t stats_seq;      /* stats answers received */
    uint64_t stats_at_ack;   /* stats_seq when the last upload was acknowledged */
    double server_pending;   /* the last answer's uploads not yet turned into an update */
    /* ---- inference thread only ---- */
    chunk cur;
    double next_t;
    uint64_t chunks; /* pushed so far (the first one is first_period long) */
};

void ams_edge_config_default(ams_edge_config *c) {
    memset(c, 0, sizeof *c);
    c->model_id = "";
    c->period = 10.0;
    c->first_period = -1;
    c->kbps = 150.0;
    c->passes = 1;
    c->queue_max = 4;
    c->max_frames = 64;
    c->timeout_ms = 5000;
    c->stats_period = 1.0;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Waits on cv up to s seconds (mu held). */
static void wait_s(ams_edge *e, double s) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    double t = (double)ts.tv_sec + ts.tv_nsec * 1e-9 + s;
    ts.tv_sec = (time_t)t;
    ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
    pthread_cond_timedwait(&e->cv, &e->mu, &ts);
}

/* Encodes and sends one upload. */
static ams_status send_chunk(ams_edge *e, ams_client *c, chunk *k, ams_err *err) {
    const uint8_t **frames = malloc((size_t)k->n * sizeof *frames);
    AMS_FAIL_IF(!frames, err, AMS_E_NOMEM, "upload frames");
    for (int i = 0; i < k->n; i++) frames[i] = k->rgb + (size_t)i * e->frame_bytes;
    ams_uplink_opts o = {.width = e->cfg.width, .height = e->cfg.height, .fps = k->fps,
                         .kbps = e->cfg.kbps, .passes = e->cfg.passes, .threads = 1,
                         .preset = "veryfast"};
    ams_uplink_buf *up = NULL;
    ams_status s = ams_uplink_encode(&o, (const uint8_t *const *)frames, k->n, &up, err);
    free(frames);
    if (s != AMS_OK) return s;
    size_t n = AMS_MSG_UPLOAD_HEAD_BYTES + up->size;
    uint8_t *p = malloc(n);
    if (!p) {
        ams_uplink_buf_free(up);
        AMS_FAIL(err, AMS_E_NOMEM, "upload of %zu bytes", n);
    }
    ams_msg_upload_head h = {.frames = (uint32_t)k->n, .width = (uint32_t)e->cfg.width,
                             .height = (uint32_t)e->cfg.height, .fps = k->fps,
                             .t_first = k->t_first, .t_last = k->t_last};
    ams_msg_upload_head_pack(&h, p);
    memcpy(p + AMS_MSG_UPLOAD_HEAD_BYTES, up->data, up->size);
    ams_uplink_buf_free(up);
    s = ams_client_send(c, AMS_MSG_UPLOAD, p, n, err);
    free(p);
    return s;
}

/* An UPDATE frame: decoded and checked here, applied by the inference thread. */
static void on_update(ams_edge *e, const ams_proto_frame *f) {
    ams_err err = {0};
    ams_msg_update_head h;
    ams_update *u = NULL;
    int ok = ams_msg_update_head_parse(f->payload, f->len, &h, &err) == AMS_OK &&
             ams_update_decode(f->payload + AMS_MSG_UPDATE_HEAD_BYTES,
                               f->len - AMS_MSG_UPDATE_HEAD_BYTES, e->cfg.total, &u,
                               &err) == AMS_OK &&
             !memcmp(u->result_hash, h.result_hash, AMS_HASH_LEN);
    pthread_mutex_lock(&e->mu);
    e->last_update_time = now_s();
    if (!ok) {
        e->st.updates_rejected++;
        e->reconnect = 1; /* the server resends or resynchronises on the next hello */
        snprintf(e->st.last_error, sizeof e->st.last_error, "update rejected: %.200s", err.msg);
        ams_update_free(u);
    } else if (e->nrd == READY_MAX) { /* the inference thread stalled: start over cleanly */
        e->st.updates_rejected++;
        e->reconnect = 1;
        ams_update_free(u);
    } else {
        e->rd[e->nrd++] = (ready){.u = u, .version = h.version, .seq = f->seq};
    }
    pthread_mutex_unlock(&e->mu);
}

/* A number after "key": in the server's STATS JSON; NaN when absent or null. */
static double json_number(const char *js, const char *key) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(js, pat);
    if (!p) return NAN;
    p += strlen(pat);
    char *end;
    double v = strtod(p, &end);
    return end == p ? NAN : v;
}

/* The server's answer to our STATS request (untrusted text, bounded by the decoder). */
static void on_stats(ams_edge *e, const ams_proto_frame *f) {
    char js[4096];
    size_t n = f->len < sizeof js - 1 ? f->len : sizeof js - 1;
    memcpy(js, f->payload, n);
    js[n] = 0;
    double rate = json_number(js, "sample_rate"), miou = json_number(js, "miou");
    double pre = json_number(js, "miou_pretrained"), lab = json_number(js, "labelled");
    double hor = json_number(js, "horizon"), ver = json_number(js, "version");
    double pending = json_number(js, "pending");
    pthread_mutex_lock(&e->mu);
    e->st.stats_received++;
    e->stats_seq++;
    e->server_pending = isnan(pending) ? 0 : pending;
    if (rate > 0 && rate <= 1000) e->st.sample_rate = rate;
    if (!isnan(miou)) e->st.server_miou = miou;
    if (!isnan(pre)) e->st.server_miou_pretrained = pre;
    if (lab >= 0 && lab < 1e18) e->st.server_labelled = (uint64_t)lab;
    if (hor >= 0 && hor < 1e18) e->st.server_horizon = (uint64_t)hor;
    if (ver >= 0 && ver < 1e18) e->st.server_version = (uint64_t)ver;
    pthread_mutex_unlock(&e->mu);
}

static void *net_main(void *arg) {
    ams_edge *e = arg;
    ams_client *c = NULL;
    double backoff = 0.1;
    uint64_t base_up = 0, base_down = 0;
    double last_stats = 0;
    pthread_mutex_lock(&e->mu);
    while (!e->stop) {
        if (c && e->reconnect) {
            uint64_t up, down;
            ams_client_bytes(c, &up, &down);
            base_up += up, base_down += down;
            ams_client_free(c);
            c = NULL;
            e->st.connected = 0;
        }
        if (!c) {
            /* hello states the weights we hold: wait until every received update is applied */
            if (e->nrd || e->reset) {
                wait_s(e, 0.01);
                continue;
            }
            e->reconnect = 0;
            ams_msg_hello h = {.last_version = e->version};
            snprintf(h.client_id, sizeof h.client_id, "%s", e->cfg.id);
            snprintf(h.model_id, sizeof h.model_id, "%s", e->cfg.model_id);
            memcpy(h.weights_hash, e->hash, AMS_HASH_LEN);
            pthread_mutex_unlock(&e->mu);
            ams_msg_welcome w;
            ams_err err = {0};
            int code = 0;
            ams_status s = ams_client_open_tls(&c, e->cfg.server, e->tls, &h, e->cfg.key,
                                               e->cfg.timeout_ms, &w, &err);
            if (s != AMS_OK && strstr(err.msg, "server error 100")) code = 100;
            pthread_mutex_lock(&e->mu);
            if (s != AMS_OK) {
                snprintf(e->st.last_error, sizeof e->st.last_error, "%.200s", err.msg);
                if (code == AMS_SERVER_ERR_UNKNOWN_WEIGHTS) e->reset = 1;
                wait_s(e, backoff);
                backoff = backoff * 2 > 5 ? 5 : backoff * 2;
                continue;
            }
            backoff = 0.1;
            e->st.connects++;
            e->st.connected = 1;
            e->st.sample_rate = w.sample_rate;
        }
        /* one queued upload */
        if (e->qlen) {
            chunk k = e->queue[e->qhead];
            e->qhead = (e->qhead + 1) % e->cfg.queue_max;
            e->qlen--;
            e->sending = 1;
            pthread_mutex_unlock(&e->mu);
            ams_err err = {0};
            ams_status s = send_chunk(e, c, &k, &err);
            free(k.rgb);
            pthread_mutex_lock(&e->mu);
            e->sending = 0;
            if (s == AMS_OK) e->st.uploads_sent++;
            else {
                e->st.samples_dropped += (uint64_t)k.n;
                snprintf(e->st.last_error, sizeof e->st.last_error, "upload: %.200s", err.msg);
                if (s == AMS_E_IO) e->reconnect = 1;
                continue;
            }
        }
        /* acknowledgements of applied updates */
        int nacks = e->nacks;
        uint64_t aseq[READY_MAX], aver[READY_MAX];
        memcpy(aseq, e->acks_seq, sizeof aseq);
        memcpy(aver, e->acks_ver, sizeof aver);
        e->nacks = 0;
        pthread_mutex_unlock(&e->mu);
        ams_err err = {0};
        ams_status s = AMS_OK;
        for (int i = 0; i < nacks && s == AMS_OK; i++) {
            uint8_t a[AMS_MSG_ACK_BYTES];
            ams_msg_ack_pack(&(ams_msg_ack){.type = AMS_MSG_UPDATE, .seq = aseq[i],
                                            .version = aver[i]}, a);
            s = ams_client_send(c, AMS_MSG_ACK, a, sizeof a, &err);
        }
        if (s == AMS_OK && e->cfg.stats_period > 0 && now_s() - last_stats >= e->cfg.stats_period) {
            last_stats = now_s();
            s = ams_client_send(c, AMS_MSG_STATS, "{}", 2, &err);
        }
        ams_proto_frame f = {0};
        int code = 0;
        if (s == AMS_OK) s = ams_client_recv(c, 20, &f, &code, &err);
        if (s == AMS_OK && f.type == AMS_MSG_UPDATE) on_update(e, &f);
        if (s == AMS_OK && f.type == AMS_MSG_STATS) on_stats(e, &f);
        uint64_t up, down;
        ams_client_bytes(c, &up, &down);
        pthread_mutex_lock(&e->mu);
        e->st.bytes_up = base_up + up;
        e->st.bytes_down = base_down + down;
        if (s == AMS_OK && f.type == AMS_MSG_ACK) {
            ams_msg_ack a;
            if (ams_msg_ack_parse(f.payload, f.len, &a, &err) == AMS_OK &&
                a.type == AMS_MSG_UPLOAD) {
                e->st.uploads_acked++;
                e->stats_at_ack = e->stats_seq; /* its job shows in later stats answers */
            }
        }
        if (s != AMS_OK) {
            snprintf(e->st.last_error, sizeof e->st.last_error, "%.200s", err.msg);
            if (code == AMS_SERVER_ERR_UNKNOWN_WEIGHTS) e->reset = 1;
            e->reconnect = 1;
        }
    }
    pthread_mutex_unlock(&e->mu);
    if (c) {
        ams_err err = {0};
        ams_client_send(c, AMS_MSG_BYE, "done", 4, &err);
        uint64_t up, down;
        ams_client_bytes(c, &up, &down);
        pthread_mutex_lock(&e->mu);
        e->st.bytes_up = base_up + up;
        e->st.bytes_down = base_down + down;
        pthread_mutex_unlock(&e->mu);
        ams_client_free(c);
    }
    return NULL;
}

ams_edge *ams_edge_new(const ams_edge_config *c, float *values, ams_err *err) {
    if (!c || !c->server || !c->id || !ams_proto_id_valid(c->id) || !c->initial || !values ||
        c->total == 0 || c->width < 16 || c->height < 16 || (c->width & 1) || (c->height & 1) ||
        !(c->period > 0) || c->first_period == 0 || !isfinite(c->first_period) ||
        !(c->kbps > 0) || c->queue_max < 1 || c->max_frames < 1 ||
        (c->tls_name && !c->tls_ca)) {
        ams_err_set(err, AMS_E_INVAL, "edge: incomplete or invalid configuration");
        return NULL;
    }
    ams_edge *e = calloc(1, sizeof *e);
    if (!e) goto nomem;
    e->cfg = *c;
    /* the network thread keeps its own copies of the caller's strings */
    if (strlen(c->server) >= sizeof e->server ||
        strlen(c->model_id ? c->model_id : "") >= sizeof e->model_id) {
        free(e);
        ams_err_set(err, AMS_E_INVAL, "edge: server address or model id too long");
        return NULL;
    }
    snprintf(e->server, sizeof e->server, "%s", c->server);
    snprintf(e->id, sizeof e->id, "%s", c->id);
    snprintf(e->model_id, sizeof e->model_id, "%s", c->model_id ? c->model_id : "");
    e->cfg.server = e->server;
    e->cfg.id = e->id;
    e->cfg.model_id = e->model_id;
    e->cfg.tls_ca = e->cfg.tls_name = NULL; /* read here only, into the context */
    if (c->tls_ca && !(e->tls = ams_tls_client_new(c->tls_ca, c->tls_name, err))) goto fail;
    e->values = values;
    e->frame_bytes = (size_t)c->width * (size_t)c->height * 3;
    e->initial = malloc(c->total * sizeof(float));
    e->queue = calloc((size_t)c->queue_max, sizeof *e->queue);
    if (!e->initial || !e->queue) goto nomem;
    memcpy(e->initial, c->initial, c->total * sizeof(float));
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    e->st.sample_rate = 1.0;
    e->st.server_miou = e->st.server_miou_pretrained = NAN;
    /* version 0 means "the pretrained weights or unknown": the hash decides on the server */
    if (ams_weights_hash(values, c->total, e->hash, err) != AMS_OK) goto fail;
    if (pthread_create(&e->thread, NULL, net_main, e) != 0) goto nomem;
    e->started = 1;
    return e;
nomem:
    ams_err_set(err, AMS_E_NOMEM, "edge");
fail:
    ams_edge_free(e);
    return NULL;
}

ams_status ams_edge_sync(ams_edge *e, ams_err *err) {
    pthread_mutex_lock(&e->mu);
    ready rd[READY_MAX];
    int n = e->nrd;
    memcpy(rd, e->rd, (size_t)n * sizeof *rd);
    e->nrd = 0;
    int reset = e->reset;
    uint64_t version = e->version;
    uint8_t hash[AMS_HASH_LEN];
    memcpy(hash, e->hash, AMS_HASH_LEN);
    pthread_mutex_unlock(&e->mu);

    uint64_t applied = 0, rejected = 0;
    int reconnect = 0;
    uint64_t aseq[READY_MAX], aver[READY_MAX];
    int nacks = 0;
    if (reset) {
        memcpy(e->values, e->initial, e->cfg.total * sizeof(float));
        version = 0;
        AMS_TRY(ams_weights_hash(e->values, e->cfg.total, hash, err));
    }
    for (int i = 0; i < n; i++) {
        ams_err ae = {0};
        if (!reconnect && ams_update_apply(rd[i].u, e->values, e->cfg.total, &ae) == AMS_OK) {
            applied++;
            version = rd[i].version;
            memcpy(hash, rd[i].u->result_hash, AMS_HASH_LEN);
            aseq[nacks] = rd[i].seq;
            aver[nacks++] = version;
        } else { /* the weights are untouched (apply restores them); later ones fail too */
            rejected++;
            reconnect = 1;
        }
        ams_update_free(rd[i].u);
    }
    /* after a rejection, say what we really hold (the weights may have changed outside) */
    if (reconnect) AMS_TRY(ams_weights_hash(e->values, e->cfg.total, hash, err));
    pthread_mutex_lock(&e->mu);
    if (reset) e->reset = 0;
    e->version = version;
    memcpy(e->hash, hash, AMS_HASH_LEN);
    e->st.updates_applied += applied;
    e->st.updates_rejected += rejected;
    if (reconnect || reset) e->reconnect = 1;
    for (int i = 0; i < nacks && e->nacks < READY_MAX; i++) {
        e->acks_seq[e->nacks] = aseq[i];
        e->acks_ver[e->nacks++] = aver[i];
    }
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
    return AMS_OK;
}

/* Hands the current chunk to the queue, or drops it when the queue is full. */
static void push_chunk(ams_edge *e) {
    if (e->cur.n == 0) return;
    pthread_mutex_lock(&e->mu);
    if (e->qlen == e->cfg.queue_max) {
        e->st.samples_dropped += (uint64_t)e->cur.n;
        free(e->cur.rgb);
    } else {
        e->queue[(e->qhead + e->qlen) % e->cfg.queue_max] = e->cur;
        e->qlen++;
        pthread_cond_signal(&e->cv);
    }
    pthread_mutex_unlock(&e->mu);
    memset(&e->cur, 0, sizeof e->cur);
    e->chunks++;
}

ams_status ams_edge_offer(ams_edge *e, const uint8_t *rgb, double t, ams_err *err) {
    AMS_FAIL_IF(!isfinite(t) || t < 0, err, AMS_E_INVAL, "frame time %g", t);
    pthread_mutex_lock(&e->mu);
    double rate = e->st.sample_rate > 0 ? e->st.sample_rate : 1.0;
    pthread_mutex_unlock(&e->mu);
    if (t + 1e-9 < e->next_t) return AMS_OK;
    /* sampled: one frame every 1/rate seconds of video time */
    e->next_t = (e->next_t + 1.0 / rate > t) ? e->next_t + 1.0 / rate : t + 1.0 / rate;
    /* the first upload is shorter (half a period by default): its bits take about its own
     * length at the budget, so the server gets frames to train on a period sooner */
    double period = e->cfg.period;
    if (e->chunks == 0) period = e->cfg.first_period > 0 ? e->cfg.first_period : period / 2;
    if (e->cur.n && (t - e->cur.t_first >= period || e->cur.n >= e->cfg.max_frames))
        push_chunk(e);
    if (e->cur.n == e->cur.cap) {
        int cap = e->cur.cap ? e->cur.cap * 2 : 4;
        if (cap > e->cfg.max_frames) cap = e->cfg.max_frames;
        uint8_t *g = realloc(e->cur.rgb, (size_t)cap * e->frame_bytes);
        AMS_FAIL_IF(!g, err, AMS_E_NOMEM, "sample buffer");
        e->cur.rgb = g;
        e->cur.cap = cap;
    }
    memcpy(e->cur.rgb + (size_t)e->cur.n * e->frame_bytes, rgb, e->frame_bytes);
    if (e->cur.n == 0) e->cur.t_first = t;
    e->cur.t_last = t;
    e->cur.fps = rate;
    e->cur.n++;
    pthread_mutex_lock(&e->mu);
    e->st.samples++;
    pthread_mutex_unlock(&e->mu);
    return AMS_OK;
}

ams_status ams_edge_finish(ams_edge *e, double drain_s, double quiet_s, ams_err *err) {
    push_chunk(e);
    double t0 = now_s();
    for (;;) {
        AMS_TRY(ams_edge_sync(e, err));
        pthread_mutex_lock(&e->mu);
        double now = now_s();
        /* the server's work on our uploads is done too, when it answers stats: an answer
         * after the last upload's ack says nothing is pending */
        int server_done = e->cfg.stats_period <= 0 || !e->st.connected ||
                          (e->stats_seq > e->stats_at_ack && e->server_pending == 0);
        int idle = e->qlen == 0 && !e->sending && e->nrd == 0 &&
                   e->st.uploads_acked >= e->st.uploads_sent && server_done &&
                   now - e->last_update_time >= quiet_s && now - t0 >= quiet_s;
        pthread_mutex_unlock(&e->mu);
        if (idle || now - t0 >= drain_s) return AMS_OK;
        struct timespec ts = {.tv_nsec = 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

void ams_edge_stats_get(ams_edge *e, ams_edge_stats *out) {
    pthread_mutex_lock(&e->mu);
    *out = e->st;
    out->model_version = e->version;
    memcpy(out->model_hash, e->hash, AMS_HASH_LEN);
    pthread_mutex_unlock(&e->mu);
}

void ams_edge_free(ams_edge *e) {
    if (!e) return;
    if (e->started) {
        pthread_mutex_lock(&e->mu);
        e->stop = 1;
        pthread_cond_signal(&e->cv);
        pthread_mutex_unlock(&e->mu);
        pthread_join(e->thread, NULL);
        pthread_mutex_destroy(&e->mu);
        pthread_cond_destroy(&e->cv);
    }
    if (e->queue)
        for (int i = 0; i < e->qlen; i++) free(e->queue[(e->qhead + i) % e->cfg.queue_max].rgb);
    for (int i = 0; i < e->nrd; i++) ams_update_free(e->rd[i].u);
    free(e->queue);
    free(e->cur.rgb);
    free(e->initial);
    ams_tls_free(e->tls);
    free(e);
}
