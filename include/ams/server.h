/* server.h - the AMS server: many edge clients over AMSP (proto.h), one session per client id,
 * compute (teacher labelling + training) on worker threads behind a fair scheduler.
 *
 *     ams_server_config c;
 *     ams_server_config_default(&c);
 *     c.listen = "127.0.0.1:7070"; c.keys_dir = "keys"; c.state_dir = "state";
 *     c.initial = student_params;              // the pretrained student (borrowed)
 *     c.compute = ams_compute_stub();          // or the trainer's adapter
 *     ams_server *s = ams_server_new(&c, &err);
 *     ams_server_run(s, &err);                 // until ams_server_stop (any thread)
 *     ams_server_free(s);
 *
 * Event loop: one thread (the caller of ams_server_run), epoll, non-blocking sockets; every
 * connection has a read buffer bounded by the largest client frame and a write buffer bounded by
 * AMS_SERVER_MAX_WBUF. A rejected frame (proto.h's rejections, an unparsable payload, a slow
 * reader) gets an error message and closes that connection only; the loop never blocks on
 * compute or disk writes of session state (workers do those).
 *
 * TLS (tls_cert + tls_key): every connection is TLS 1.3 (transport.h in src/net); the TLS
 * handshake is non-blocking like everything else and counts against handshake_s, so a client
 * that stalls in it holds nobody up and is closed in time. Inside TLS the AMSP frames are
 * unchanged. A client that sends plain AMSP gets a plain error 103 (MACed with the all-zero key)
 * and is closed; any other broken handshake is closed silently (totals.tls_failures).
 *
 * Sessions: created at a client's first hello, from state_dir/<id>.session if present (so a
 * restarted server resumes), else from the initial weights. The server keeps a mirror: exactly
 * the weights the client holds after the updates it was sent. An update is persisted (temp file
 * + fsync + rename) before it is sent. On hello the client states its version and weights hash:
 * equal to the mirror -> nothing to do; equal to the last update's base -> that update is sent
 * again; equal to the initial weights -> a resync update (initial -> mirror) is computed; else the
 * client is told its weights are unknown (error 100) and closed.
 *
 * Compute interface (the seam for the trainer, src/adapt/trainer.c): ams_compute.run is called
 * on a worker thread with a session's uploads since its last job and the weights the client
 * holds; it writes the weights the client should move to into job->target and says whether they
 * changed. The server encodes (update_codec.h), persists and sends. One session is never in two
 * jobs at once; jobs of different sessions run concurrently on `workers` threads. The scheduler
 * is starvation-free (a session waits for at most one job of every other session) and fair in
 * lag: among the sessions with pending uploads it may serve, the one whose last job's lag was
 * largest goes first (ties: round-robin order), so clients whose uploads arrive together take
 * turns at being first. It reports per-client training lag (job finish time - arrival of its
 * oldest upload). ams_compute_stub is a test mode (updates
 * flow, nothing learns); server_trainer.h is the real compute (teacher, horizon, trainer).
 *
 * Stats: a client's STATS message is answered with one JSON object of this session: id,
 * version, uploads, updates, lag_last, lag_max, sample_rate (the current ASR rate: an edge
 * adopts it), miou, miou_pretrained (NaN as null), labelled, horizon, pending (uploads queued
 * or in a job whose update is not yet sent: an edge draining at its end waits for 0).
 */
#ifndef AMS_SERVER_H
#define AMS_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "ams/params.h"
#include "ams/proto.h"
#include "ams/status.h"

#define AMS_SERVER_MAX_WBUF ((size_t)64 << 20) /* unsent bytes per connection before it is cut */
#define AMS_SERVER_MAX_SESSIONS 4096
#define AMS_SERVER_ERR_UNKNOWN_WEIGHTS 100     /* error code: the client's weights are unknown */
#define AMS_SERVER_ERR_REPLACED 101            /* error code: a newer connection took the id */
#define AMS_SERVER_ERR_OVERLOAD 102            /* error code: too many connections or sessions */
#define AMS_SERVER_ERR_TLS_REQUIRED 103        /* error code: plain AMSP sent to a TLS server */

/* One upload as the compute sees it. */
typedef struct ams_net_sample {
    ams_msg_upload_head head; /* frames, size, fps, timestamps */
    const uint8_t *h264;      /* the Annex-B chunk (ams_uplink_decode it) */
    size_t len;
    double arrived;           /* monotonic seconds when the server received it */
} ams_net_sample;

typedef struct ams_compute_job {
    const char *client_id;
    const ams_params *layout;      /* tensors of the student (names, shapes; values: initial) */
    const float *current;          /* layout->total floats: what the client holds now */
    float *target;                 /* out: what it should hold (on entry, a copy of current) */
    const ams_net_sample *samples; /* uploads since the session's last job, oldest first */
    int n_samples;
    uint64_t version;              /* the client's version of current */
    double sample_rate;            /* in/out: the ASR rate (frames/s) the client is told */
    void **state;                  /* the session's compute state (*state NULL at first) */
    /* out, optional (the server sets NaN / 0 first): the mIoU against the teacher's labels of
     * this job's frames of the weights the client holds (`current`) and of the pretrained
     * weights; frames labelled; frames in the session's horizon after the job */
    double miou, miou_pretrained;
    uint64_t labelled;
    size_t horizon;
} ams_compute_job;

typedef struct ams_compute {
    void *ctx;
    /* Worker thread. *changed = 0: no update. @return AMS_OK or an error (the job's uploads are
     * dropped, counted, and the session goes on). */
    ams_status (*run)(void *ctx, ams_compute_job *job, int *changed, ams_err *err);
    /* Frees a session's state (may be NULL). */
    void (*state_free)(void *ctx, void *state);
    /* Optional persistence of the compute state (horizon, ATR, trained weights, optimizer), so
     * a restarted server resumes training where it was: path is STATE/<id>.compute. save is
     * called on the worker after every successful job (write atomically: temp + rename), after
     * the session file when the job produced an update; load before a session's first job after a start (*state NULL on entry; return
     * AMS_E_NOTFOUND when the file does not exist). NULL: not persisted. */
    ams_status (*state_save)(void *ctx, const void *state, const char *path, ams_err *err);
    ams_status (*state_load)(void *ctx, void **state, const char *path, ams_err *err);
} ams_compute;

/* A deterministic stand-in for the trainer: changes a few hundred weights by amounts derived
 * from SHA-256 of the uploaded bytes (never non-finite; bounded). For tests and `ams server`
 * without --teacher. */
ams_compute ams_compute_stub(void);

typedef struct ams_server_config {
    const char *listen;      /* "ADDR:PORT" (port 0: any; ams_server_port tells) */
    const char *keys_dir;    /* <id>.key files (netkey.h), read at each hello */
    const char *state_dir;   /* <id>.session files; must exist */
    const ams_params *initial; /* the pretrained student: layout + values (borrowed) */
    ams_compute compute;
    int workers;             /* compute threads (1..64; 1) */
    int max_conns;           /* open connections (256) */
    int max_pending;         /* uploads queued per session; beyond it the oldest is dropped (64) */
    double sample_rate;      /* initial ASR rate told to clients (1.0 frames/s) */
    double handshake_s;      /* seconds a connection may take to send its hello, TLS
                              * handshake included (10) */
    const char *tls_cert;    /* PEM certificate (chain) file: TLS 1.3 on every connection
                              * (tls.h); NULL: plain TCP */
    const char *tls_key;     /* PEM private key of tls_cert (both or neither) */
    /* Optional, called on a worker after an update is persisted and before it is sent (keep
     * it short; it must not call back into the server): client id, new version and weights
     * hash, update payload bytes, training lag (s), the job's mIoU figures (NaN: none). */
    void (*on_update)(void *ctx, const char *id, uint64_t version,
                      const uint8_t hash[AMS_HASH_LEN], size_t bytes, double lag, double miou,
                      double miou_pretrained);
    void *on_update_ctx;
} ams_server_config;

void ams_server_config_default(ams_server_config *c);

typedef struct ams_server ams_server;

/* Binds and listens, starts the workers. @return NULL on error (err says why). */
ams_server *ams_server_new(const ams_server_config *c, ams_err *err);
/* Runs the event loop until ams_server_stop. @return AMS_OK, or a fatal local error (epoll). */
ams_status ams_server_run(ams_server *s, ams_err *err);
/* Asks the loop to return (thread-safe, async-signal-safe). */
void ams_server_stop(ams_server *s);
/* Stops the workers (a job in progress finishes and is persisted) and frees everything. */
void ams_server_free(ams_server *s);
/* The bound TCP port. */
int ams_server_port(const ams_server *s);

typedef struct ams_server_client_info {
    int known;                       /* a session exists */
    int connected;                   /* an authenticated connection is open */
    uint64_t version;                /* mirror version */
    uint8_t hash[AMS_HASH_LEN];      /* mirror hash */
    uint64_t uploads, upload_bytes;  /* accepted */
    uint64_t uploads_dropped;        /* queue overflow or compute failure */
    uint64_t updates, update_bytes;  /* produced */
    uint64_t acked_version;          /* last version the client acknowledged */
    double lag_last, lag_max, lag_mean; /* training lag, seconds */
    double miou, miou_pretrained;    /* the last job's figures (ams_compute_job; NaN: none) */
    double miou_mean, miou_pretrained_mean; /* over every job that measured them */
    uint64_t labelled;               /* frames the compute labelled */
    uint64_t horizon;                /* frames in the horizon after the last job */
} ams_server_client_info;

/* A consistent snapshot of one client's session (thread-safe). */
void ams_server_client_info_get(ams_server *s, const char *id, ams_server_client_info *out);

typedef struct ams_server_totals {
    uint64_t accepted;    /* connections accepted */
    uint64_t rejected;    /* connections closed for a protocol rejection */
    uint64_t by_reason[AMS_PROTO_INTERNAL + 1]; /* rejections per ams_proto_reject */
    uint64_t handshakes;  /* authenticated hellos */
    uint64_t jobs;        /* compute jobs run */
    uint64_t tls_failures; /* TLS connections closed before or in the TLS handshake (a plain
                            * client, a client that does not trust us, a broken handshake) */
} ams_server_totals;
void ams_server_totals_get(ams_server *s, ams_server_totals *out);

/* One JSON line of global and per-client metrics into buf (cap bytes; truncated safely). */
size_t ams_server_stats_json(ams_server *s, char *buf, size_t cap);

#endif
