/* edge.h - the edge client's network side: sampling frames per the server's rate (ASR),
 * H.264 uploads on a network thread with a bounded queue, and verified updates applied to the
 * live weights between two frames. The model itself stays with the caller (`ams edge` runs the
 * student), so this works for any flat weight buffer.
 *
 *     ams_edge_config c;
 *     ams_edge_config_default(&c);
 *     c.server = "127.0.0.1:7070"; c.id = "cam1"; memcpy(c.key, psk, 32);
 *     c.total = p->total; c.initial = pretrained; c.width = 256; c.height = 256;
 *     ams_edge *e = ams_edge_new(&c, p->values, &err);       // connects in the background
 *     for each frame (rgb, t):
 *         ams_edge_sync(e, &err);        // between frames: apply what arrived (atomic)
 *         run the student on rgb;
 *         ams_edge_offer(e, rgb, t, &err);  // maybe sampled; never blocks on the network
 *     ams_edge_finish(e, 5.0, &err);     // last upload out, last updates in (bounded wait)
 *     ams_edge_stats s; ams_edge_stats_get(e, &s);
 *     ams_edge_free(e);
 *
 * Threads: ams_edge_new starts one network thread; every other call is made from the caller's
 * (inference) thread, which alone writes the weights. The network thread connects (with
 * exponential backoff, 0.1 s .. 5 s, forever), encodes and sends queued uploads, decodes and
 * checks updates (ams_update_decode), and hands them over; ams_edge_sync applies them with
 * ams_update_apply (base and result hash checked; a failing update leaves the weights exactly
 * as they were, is counted as rejected, and the edge reconnects so the server resends or
 * resynchronises). Backpressure: at most queue_max uploads wait; a new one beyond that is
 * dropped (its samples counted), frames are never held up. If the server no longer knows the
 * edge's weights (error 100), the edge returns to the pretrained weights and resynchronises.
 * Every stats_period seconds the network thread asks for the server's STATS of this client:
 * its sample_rate becomes the edge's sampling rate (ASR between connections), its mIoU
 * figures land in ams_edge_stats.
 * TLS (tls_ca): every connection runs TLS 1.3 and verifies the server's certificate; a failure
 * (not trusted, wrong name, a plain server) is a connection failure like any other: retried
 * with the backoff, its reason in ams_edge_stats.last_error.
 */
#ifndef AMS_EDGE_H
#define AMS_EDGE_H

#include <stddef.h>
#include <stdint.h>

#include "ams/proto.h"
#include "ams/status.h"

typedef struct ams_edge_config {
    const char *server;              /* "HOST:PORT" */
    const char *id;                  /* client id (proto.h rules) */
    uint8_t key[AMS_PROTO_KEY_BYTES]; /* its pre-shared key */
    const char *model_id;            /* told to the server ("" allowed) */
    size_t total;                    /* floats of the weights */
    const float *initial;            /* the pretrained weights (copied) */
    int width, height;               /* size of offered frames (even, >= 16) */
    double period;                   /* seconds of video per upload (10) */
    double first_period;             /* seconds of video in the first upload (< 0: period / 2,
                                      * so the first update comes a period sooner) */
    double kbps;                     /* uplink target, Kbps of video time (150) */
    int passes;                      /* x264 passes (1: faster; the reference uses 2) */
    int queue_max;                   /* uploads waiting to be sent (4) */
    int max_frames;                  /* frames per upload at most (64) */
    int timeout_ms;                  /* connect/handshake timeout (5000) */
    double stats_period;             /* seconds between STATS requests (1; 0: never): the
                                      * answer carries the ASR rate (adopted) and the
                                      * server's mIoU of this client's model */
    const char *tls_ca;              /* PEM file of the certificate(s) to trust: TLS 1.3 to the
                                      * server, whose certificate is verified (tls.h); NULL:
                                      * plain TCP */
    const char *tls_name;            /* name to check in the server's certificate (NULL: the
                                      * HOST of `server`; an IP address is checked as one) */
} ams_edge_config;

void ams_edge_config_default(ams_edge_config *c);

typedef struct ams_edge ams_edge;

typedef struct ams_edge_stats {
    uint64_t updates_applied, updates_rejected;
    uint64_t model_version;
    uint8_t model_hash[AMS_HASH_LEN];
    uint64_t bytes_up, bytes_down;    /* on the wire, all connections */
    uint64_t samples, samples_dropped; /* frames sampled; of them dropped under backpressure */
    uint64_t uploads_sent, uploads_acked;
    uint64_t connects;                /* successful handshakes */
    double sample_rate;               /* frames/s, as the server said */
    int connected;
    char last_error[256];             /* the last network error, "" if none */
    /* from the server's last STATS answer (NaN until one came): the mIoU, against the
     * teacher's labels, of this client's model and of the pretrained model on the frames of
     * its last upload job; frames labelled; horizon frames; server version */
    double server_miou, server_miou_pretrained;
    uint64_t server_labelled, server_horizon, server_version;
    uint64_t stats_received;
} ams_edge_stats;

/* values: the live weights (total floats, the caller's), which must equal `initial` or the
 * weights of an earlier session with this server (version/hash are taken from the values).
 * @return NULL on error. */
ams_edge *ams_edge_new(const ams_edge_config *c, float *values, ams_err *err);
/* Between frames: applies every update that arrived. @return AMS_OK (rejections are counted,
 * not errors) or AMS_E_INTERNAL. */
ams_status ams_edge_sync(ams_edge *e, ams_err *err);
/* After a frame: t is its video time (seconds, non-decreasing); rgb width*height*3 bytes. */
ams_status ams_edge_offer(ams_edge *e, const uint8_t *rgb, double t, ams_err *err);
/* End of stream: queues the partial upload, then keeps syncing until every upload is sent and
 * acknowledged, the server's stats (stats_period > 0, connected) say no upload of ours waits
 * for compute, and no update came for `quiet_s` seconds; or drain_s seconds passed. */
ams_status ams_edge_finish(ams_edge *e, double drain_s, double quiet_s, ams_err *err);
void ams_edge_stats_get(ams_edge *e, ams_edge_stats *out);
/* Stops the network thread (sends bye) and frees; NULL is a no-op. */
void ams_edge_free(ams_edge *e);

#endif
