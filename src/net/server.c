/* server.c - the AMS server's event loop: epoll over non-blocking TCP connections (plain, or TLS
 * through transport.h: its handshake, reads and writes are non-blocking too), the AMSP
 * handshake, uploads into the sessions' queues, updates out; a bad frame closes only its
 * connection (after an error message). */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ams/netkey.h"
#include "ams/weights_hash.h"
#include "net/server_internal.h"
#include "net/transport.h"

#define READ_CHUNK ((size_t)256 << 10) /* per readiness event: fair across connections */
#define RBUF_MAX (AMS_PROTO_HEADER_BYTES + ((size_t)4 << 20) + AMS_PROTO_MAC_BYTES)

typedef struct conn {
    ams_xport x;                      /* the socket, plain or TLS */
    int hs_want;                      /* TLS handshake: AMS_XPORT_WANT_READ/WRITE */
    int peeked;                       /* TLS: the first byte was seen to be a TLS record */
    int rd_want_write;                /* TLS: a read waits for the socket to be writable */
    int wr_want_read;                 /* TLS: a write waits for the socket to be readable */
    int pend;                         /* TLS: bytes wait inside TLS (see ams_server_run) */
    ams_proto_dec dec;
    uint8_t *rbuf;
    size_t rlen, rcap;
    ams_proto_buf wbuf;
    int want_out;                     /* EPOLLOUT registered */
    uint64_t send_seq;                /* last sequence number sent */
    uint8_t psk[AMS_PROTO_KEY_BYTES]; /* the client's key (after hello) */
    uint8_t skey[AMS_PROTO_KEY_BYTES];
    int established;
    session *sess;
    double opened;
    struct conn *next, *prev;
} conn;

double ams_server_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void ams_server_config_default(ams_server_config *c) {
    memset(c, 0, sizeof *c);
    c->listen = "127.0.0.1:7070";
    c->compute = ams_compute_stub();
    c->workers = 1;
    c->max_conns = 256;
    c->max_pending = 64;
    c->sample_rate = 1.0;
    c->handshake_s = 10.0;
}

int ams_server_port(const ams_server *s) { return s->port; }

static int key_lookup(void *ctx, const char *id, uint8_t key[AMS_PROTO_KEY_BYTES]) {
    ams_server *s = ctx;
    ams_err e = {0};
    return ams_netkey_load_id(s->cfg.keys_dir, id, key, &e) == AMS_OK;
}

/* ---- connections ---- */

static void conn_close(ams_server *s, conn *c) {
    epoll_ctl(s->epoll_fd, EPOLL_CTL_DEL, c->x.fd, NULL);
    ams_xport_close(&c->x);
    if (c->sess) {
        pthread_mutex_lock(&s->mu);
        if (c->sess->conn == c) {
            c->sess->conn = NULL;
            c->sess->info.connected = 0;
        }
        pthread_mutex_unlock(&s->mu);
    }
    if (c->prev) c->prev->next = c->next;
    else s->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    s->n_conns--;
    free(c->rbuf);
    ams_proto_buf_free(&c->wbuf);
    OPENSSL_cleanse(c->psk, sizeof c->psk);
    OPENSSL_cleanse(c->skey, sizeof c->skey);
    free(c);
}

/* Registers EPOLLOUT exactly when progress waits for a writable socket: unsent bytes (unless
 * TLS needs to read first), a TLS read or handshake step that needs to write. */
static void conn_events(ams_server *s, conn *c) {
    int want = !c->x.handshaken ? c->hs_want == AMS_XPORT_WANT_WRITE
                                : c->rd_want_write || (c->wbuf.len > 0 && !c->wr_want_read);
    if (want != c->want_out) {
        struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c};
        epoll_ctl(s->epoll_fd, EPOLL_CTL_MOD, c->x.fd, &ev);
        c->want_out = want;
    }
}

/* Writes what the socket takes; 0 if the connection broke. */
static int conn_flush(ams_server *s, conn *c) {
    c->wr_want_read = 0;
    while (c->wbuf.len && c->x.handshaken) {
        ams_err e = {0};
        ssize_t w = ams_xport_write(&c->x, c->wbuf.data, c->wbuf.len, &e);
        if (w == AMS_XPORT_WANT_WRITE) break;
        if (w == AMS_XPORT_WANT_READ) { /* TLS: retried when the socket is readable */
            c->wr_want_read = 1;
            break;
        }
        if (w <= 0) return 0;
        ams_proto_buf_consume(&c->wbuf, (size_t)w);
    }
    conn_events(s, c);
    return 1;
}

/* Queues one frame with the connection's current key; 0 on failure (caller closes). */
static int conn_send(ams_server *s, conn *c, int type, const void *p, size_t n) {
    static const uint8_t zero[AMS_PROTO_KEY_BYTES];
    const uint8_t *key = c->established ? c->skey : c->sess ? c->psk : zero;
    ams_err e = {0};
    if (c->wbuf.len + n > AMS_SERVER_MAX_WBUF) return 0; /* a reader too slow to keep */
    if (ams_proto_encode(&c->wbuf, type, ++c->send_seq, key, p, n, &e) != AMS_OK) return 0;
    return conn_flush(s, c);
}

/* Error message (not before the TLS handshake finished), best-effort flush, close. */
static void conn_fail(ams_server *s, conn *c, int code, const char *text) {
    uint8_t buf[1100];
    size_t n;
    ams_err e = {0};
    if (code >= 1 && code <= AMS_PROTO_INTERNAL) { /* counted before the peer can see it */
        pthread_mutex_lock(&s->mu);
        s->totals.rejected++;
        s->totals.by_reason[code]++;
        pthread_mutex_unlock(&s->mu);
    }
    if (c->x.handshaken && ams_msg_error_pack(code, text, buf, sizeof buf, &n, &e) == AMS_OK)
        conn_send(s, c, AMS_MSG_ERROR, buf, n);
    conn_close(s, c);
}

static void send_update(ams_server *s, conn *c, session *ss) {
    pthread_mutex_lock(&s->mu);
    uint8_t *p = NULL;
    size_t n = ss->last_update_len;
    /* a client waiting for its resync holds other weights than this update's base */
    if (n && !ss->resync && (p = malloc(n))) memcpy(p, ss->last_update, n);
    ss->send_pending = 0;
    pthread_mutex_unlock(&s->mu);
    if (!p) return;
    int ok = conn_send(s, c, AMS_MSG_UPDATE, p, n);
    free(p);
    if (!ok) conn_close(s, c);
}

/* ---- messages ---- */

/* A JSON number with 4 decimals, or null for NaN/inf, into buf (returns buf). */
static const char *jnum(char buf[32], double v) {
    if (!isfinite(v)) snprintf(buf, 32, "null");
    else snprintf(buf, 32, "%.4f", v);
    return buf;
}

/* 0: the connection was closed. */
static int on_hello(ams_server *s, conn *c, const ams_proto_frame *f) {
    ams_err e = {0};
    ams_msg_hello h;
    if (ams_msg_hello_parse(f->payload, f->len, &h, &e) != AMS_OK) {
        conn_fail(s, c, AMS_PROTO_BAD_PAYLOAD, e.msg);
        return 0;
    }
    memcpy(c->psk, c->dec.key, AMS_PROTO_KEY_BYTES);
    pthread_mutex_lock(&s->mu);
    session *ss = ams_session_get(s, h.client_id, &e);
    conn *old = ss ? ss->conn : NULL;
    pthread_mutex_unlock(&s->mu);
    if (!ss) {
        conn_fail(s, c, AMS_SERVER_ERR_OVERLOAD, e.msg);
        return 0;
    }
    if (old) conn_fail(s, old, AMS_SERVER_ERR_REPLACED, "replaced by a newer connection");
    c->sess = ss;
    ams_msg_welcome w = {0};
    if (RAND_bytes(w.nonce, sizeof w.nonce) != 1 ||
        ams_proto_session_key(c->psk, h.nonce, w.nonce, c->skey, &e) != AMS_OK) {
        conn_fail(s, c, AMS_PROTO_INTERNAL, "cannot make a session key");
        return 0;
    }
    pthread_mutex_lock(&s->mu);
    s->totals.handshakes++;
    ss->conn = c;
    ss->info.connected = 1;
    w.version = ss->version;
    memcpy(w.weights_hash, ss->hash, AMS_HASH_LEN);
    w.total = s->total;
    w.sample_rate = ss->sample_rate;
    /* what does the client need to reach the mirror? */
    int action = 0; /* 0 nothing, 1 resend last update, 2 resync, 3 unknown */
    if (!memcmp(h.weights_hash, ss->hash, AMS_HASH_LEN)) action = 0;
    else if (ss->last_update && !memcmp(h.weights_hash, ss->last_base, AMS_HASH_LEN)) action = 1;
    else if (!memcmp(h.weights_hash, s->initial_hash, AMS_HASH_LEN)) action = 2;
    else action = 3;
    if (action == 2) {
        ams_sched_work_added(s, ss);
        ss->resync = 1;
        pthread_cond_signal(&s->cv);
    }
    /* an update finished while no connection was open is settled by the action (the client
     * holds it, gets it resent, or is resynchronised): nothing stale to send later */
    ss->send_pending = 0;
    pthread_mutex_unlock(&s->mu);
    uint8_t buf[256];
    size_t n;
    if (ams_msg_welcome_pack(&w, buf, sizeof buf, &n, &e) != AMS_OK ||
        !conn_send(s, c, AMS_MSG_WELCOME, buf, n)) {
        conn_close(s, c);
        return 0;
    }
    c->established = 1;
    ams_proto_dec_set_key(&c->dec, c->skey);
    if (action == 1) send_update(s, c, ss);
    if (action == 3) {
        conn_fail(s, c, AMS_SERVER_ERR_UNKNOWN_WEIGHTS,
                  "the server does not know the client's weights; restart from the pretrained "
                  "model");
        return 0;
    }
    return 1;
}

static int on_upload(ams_server *s, conn *c, const ams_proto_frame *f) {
    ams_err e = {0};
    ams_msg_upload_head h;
    if (ams_msg_upload_head_parse(f->payload, f->len, &h, &e) != AMS_OK ||
        f->len == AMS_MSG_UPLOAD_HEAD_BYTES) {
        conn_fail(s, c, AMS_PROTO_BAD_PAYLOAD, e.msg[0] ? e.msg : "upload without video");
        return 0;
    }
    size_t n = f->len - AMS_MSG_UPLOAD_HEAD_BYTES;
    uint8_t *copy = malloc(n);
    if (!copy) {
        conn_fail(s, c, AMS_PROTO_INTERNAL, "out of memory");
        return 0;
    }
    memcpy(copy, f->payload + AMS_MSG_UPLOAD_HEAD_BYTES, n);
    session *ss = c->sess;
    pthread_mutex_lock(&s->mu);
    if (ss->n_pending >= s->cfg.max_pending) { /* bounded: drop the oldest */
        free((void *)ss->pending[0].h264);
        memmove(ss->pending, ss->pending + 1, (size_t)(ss->n_pending - 1) * sizeof *ss->pending);
        ss->n_pending--;
        ss->info.uploads_dropped++;
    }
    if (ss->n_pending == ss->cap_pending) {
        int cap = ss->cap_pending ? ss->cap_pending * 2 : 8;
        ams_net_sample *g = realloc(ss->pending, (size_t)cap * sizeof *g);
        if (!g) {
            pthread_mutex_unlock(&s->mu);
            free(copy);
            conn_fail(s, c, AMS_PROTO_INTERNAL, "out of memory");
            return 0;
        }
        ss->pending = g;
        ss->cap_pending = cap;
    }
    ams_sched_work_added(s, ss);
    ss->pending[ss->n_pending++] =
        (ams_net_sample){.head = h, .h264 = copy, .len = n, .arrived = ams_server_now()};
    ss->info.uploads++;
    ss->info.upload_bytes += f->len;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    uint8_t ack[AMS_MSG_ACK_BYTES];
    ams_msg_ack_pack(&(ams_msg_ack){.type = AMS_MSG_UPLOAD, .seq = f->seq}, ack);
    if (!conn_send(s, c, AMS_MSG_ACK, ack, sizeof ack)) {
        conn_close(s, c);
        return 0;
    }
    return 1;
}

static int on_frame(ams_server *s, conn *c, const ams_proto_frame *f) {
    ams_err e = {0};
    switch (f->type) {
    case AMS_MSG_HELLO: return on_hello(s, c, f);
    case AMS_MSG_UPLOAD: return on_upload(s, c, f);
    case AMS_MSG_ACK: {
        ams_msg_ack a;
        if (ams_msg_ack_parse(f->payload, f->len, &a, &e) != AMS_OK) {
            conn_fail(s, c, AMS_PROTO_BAD_PAYLOAD, e.msg);
            return 0;
        }
        if (a.type == AMS_MSG_UPDATE) {
            pthread_mutex_lock(&s->mu);
            c->sess->info.acked_version = a.version;
            pthread_mutex_unlock(&s->mu);
        }
        return 1;
    }
    case AMS_MSG_STATS: { /* answered with the server's view of this client */
        char buf[2048], m1[32], m2[32];
        ams_server_client_info i;
        ams_server_client_info_get(s, c->sess->id, &i);
        pthread_mutex_lock(&s->mu);
        double rate = c->sess->sample_rate;
        /* uploads not yet turned into an update (queued, in a job, or its update unsent),
         * or a resync still to compute */
        int pending =
            c->sess->n_pending + c->sess->busy + c->sess->send_pending + c->sess->resync;
        pthread_mutex_unlock(&s->mu);
        int n = snprintf(buf, sizeof buf,
                         "{\"id\":\"%s\",\"version\":%llu,\"uploads\":%llu,\"updates\":%llu,"
                         "\"lag_last\":%.3f,\"lag_max\":%.3f,\"sample_rate\":%.4f,\"miou\":%s,"
                         "\"miou_pretrained\":%s,\"labelled\":%llu,\"horizon\":%llu,"
                         "\"pending\":%d}",
                         c->sess->id, (unsigned long long)i.version,
                         (unsigned long long)i.uploads, (unsigned long long)i.updates,
                         i.lag_last, i.lag_max, rate, jnum(m1, i.miou),
                         jnum(m2, i.miou_pretrained), (unsigned long long)i.labelled,
                         (unsigned long long)i.horizon, pending);
        if (!conn_send(s, c, AMS_MSG_STATS, buf, (size_t)n)) {
            conn_close(s, c);
            return 0;
        }
        return 1;
    }
    case AMS_MSG_ERROR:
    case AMS_MSG_BYE: conn_close(s, c); return 0;
    default: conn_fail(s, c, AMS_PROTO_OUT_OF_ORDER, "unexpected message"); return 0;
    }
}

/* Reads what arrived (at most READ_CHUNK: fair across connections) and handles every
 * complete frame. @return 0 if the connection was closed. */
static int on_readable(ams_server *s, conn *c) {
    size_t got = 0;
    c->rd_want_write = 0;
    while (got < READ_CHUNK) {
        if (c->rcap - c->rlen < READ_CHUNK && c->rcap < RBUF_MAX) {
            size_t cap = c->rcap ? c->rcap * 2 : 65536;
            while (cap - c->rlen < READ_CHUNK && cap < RBUF_MAX) cap *= 2;
            if (cap > RBUF_MAX) cap = RBUF_MAX;
            uint8_t *g = realloc(c->rbuf, cap);
            if (!g) {
                conn_fail(s, c, AMS_PROTO_INTERNAL, "out of memory");
                return 0;
            }
            c->rbuf = g;
            c->rcap = cap;
        }
        size_t room = c->rcap - c->rlen;
        if (room > READ_CHUNK - got) room = READ_CHUNK - got;
        if (room == 0) break; /* a whole frame is buffered: the decoder takes it below */
        ams_err e = {0};
        ssize_t r = ams_xport_read(&c->x, c->rbuf + c->rlen, room, &e);
        if (r == AMS_XPORT_WANT_READ) break;
        if (r == AMS_XPORT_WANT_WRITE) { /* TLS: retried when the socket is writable */
            c->rd_want_write = 1;
            break;
        }
        if (r <= 0) { /* peer gone (kill -9, crash, close), or a TLS failure */
            conn_close(s, c);
            return 0;
        }
        c->rlen += (size_t)r;
        got += (size_t)r;
        if (!ams_xport_is_tls(&c->x)) break; /* plain: one recv per readiness event */
    }
    conn_events(s, c);
    size_t off = 0;
    for (;;) {
        ams_proto_frame f;
        size_t used;
        ams_err e = {0};
        ams_proto_reject why = ams_proto_dec_next(&c->dec, c->rbuf + off, c->rlen - off, &f,
                                                  &used, &e);
        if (why != AMS_PROTO_OK) {
            conn_fail(s, c, (int)why, e.msg);
            return 0;
        }
        if (!used) break;
        if (!on_frame(s, c, &f)) return 0; /* closed */
        off += used;
    }
    if (off) {
        memmove(c->rbuf, c->rbuf + off, c->rlen - off);
        c->rlen -= off;
    }
    return 1;
}

/* A client that speaks plain AMSP to the TLS server: its bytes are drained (so that the close
 * is a FIN, not a reset that could destroy the answer), then one plain error frame MACed with
 * the all-zero key (as for a hello that cannot be authenticated) tells it why. */
static void refuse_plain(ams_server *s, conn *c) {
    uint8_t sink[4096];
    for (int i = 0; i < 64 && recv(c->x.fd, sink, sizeof sink, 0) > 0; i++) {
    }
    static const uint8_t zero[AMS_PROTO_KEY_BYTES];
    uint8_t buf[256];
    size_t n;
    ams_proto_buf out = {0};
    ams_err e = {0};
    if (ams_msg_error_pack(AMS_SERVER_ERR_TLS_REQUIRED,
                           "this server requires TLS (edge: --tls-ca FILE with the server's "
                           "certificate)", buf, sizeof buf, &n, &e) == AMS_OK &&
        ams_proto_encode(&out, AMS_MSG_ERROR, 1, zero, buf, n, &e) == AMS_OK) {
        ssize_t w = send(c->x.fd, out.data, out.len, MSG_NOSIGNAL); /* best effort */
        (void)w;
    }
    ams_proto_buf_free(&out);
    conn_close(s, c);
}

/* Advances a TLS handshake. @return 0 if the connection was closed. */
static int on_handshake(ams_server *s, conn *c) {
    if (!c->peeked) { /* a TLS stream starts with a handshake record (type 22) */
        uint8_t b;
        ssize_t r = recv(c->x.fd, &b, 1, MSG_PEEK);
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return 1;
        pthread_mutex_lock(&s->mu);
        if (r == 1 && b != 22) s->totals.rejected++;
        if (r != 1 || b != 22) s->totals.tls_failures++;
        pthread_mutex_unlock(&s->mu);
        if (r == 1 && b != 22) {
            refuse_plain(s, c);
            return 0;
        }
        if (r != 1) {
            conn_close(s, c);
            return 0;
        }
        c->peeked = 1;
    }
    ams_err e = {0};
    int h = ams_xport_handshake(&c->x, &e);
    if (h == AMS_XPORT_ERROR) { /* e.g. the client did not trust our certificate */
        pthread_mutex_lock(&s->mu);
        s->totals.tls_failures++;
        pthread_mutex_unlock(&s->mu);
        conn_close(s, c);
        return 0;
    }
    c->hs_want = h;
    conn_events(s, c);
    if (h != AMS_XPORT_DONE) return 1;
    return on_readable(s, c); /* the hello may be right behind the handshake */
}

static void on_accept(ams_server *s) {
    for (;;) {
        int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return; /* EAGAIN, or a transient error (EMFILE): try again later */
        conn *c = s->n_conns < s->cfg.max_conns ? calloc(1, sizeof *c) : NULL;
        ams_err e = {0};
        if (!c || ams_xport_start(&c->x, fd, s->tls, AMS_XPORT_SERVER, NULL, &e) != AMS_OK) {
            free(c);
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        c->opened = ams_server_now();
        ams_proto_dec_init(&c->dec, AMS_PROTO_ROLE_SERVER);
        c->dec.key_lookup = key_lookup;
        c->dec.key_ctx = s;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(s->epoll_fd, EPOLL_CTL_ADD, fd, &ev) != 0) {
            ams_xport_close(&c->x);
            free(c);
            continue;
        }
        c->next = s->conns;
        if (s->conns) s->conns->prev = c;
        s->conns = c;
        s->n_conns++;
        pthread_mutex_lock(&s->mu);
        s->totals.accepted++;
        pthread_mutex_unlock(&s->mu);
    }
}

/* ---- lifetime ---- */

static ams_status listen_on(ams_server *s, const char *spec, ams_err *err) {
    char host[256];
    const char *colon = strrchr(spec, ':');
    AMS_FAIL_IF(!colon || colon == spec || (size_t)(colon - spec) >= sizeof host, err,
                AMS_E_INVAL, "listen address '%s' is not ADDR:PORT", spec);
    memcpy(host, spec, (size_t)(colon - spec));
    host[colon - spec] = 0;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV}, *ai = NULL;
    int rc = getaddrinfo(host, colon + 1, &hints, &ai);
    AMS_FAIL_IF(rc != 0, err, AMS_E_INVAL, "listen address '%s': %s", spec, gai_strerror(rc));
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd >= 0) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 128) != 0) {
        int e = errno;
        if (fd >= 0) close(fd);
        freeaddrinfo(ai);
        AMS_FAIL(err, AMS_E_IO, "listen on %s: %s", spec, strerror(e));
    }
    freeaddrinfo(ai);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                             : ((struct sockaddr_in *)&ss)->sin_port);
    s->listen_fd = fd;
    return AMS_OK;
}

ams_server *ams_server_new(const ams_server_config *c, ams_err *err) {
    if (!c || !c->keys_dir || !c->state_dir || !c->initial || !c->initial->values ||
        !c->compute.run || c->workers < 1 || c->workers > 64 || c->max_conns < 1 ||
        c->max_pending < 1) {
        ams_err_set(err, AMS_E_INVAL, "server: incomplete configuration");
        return NULL;
    }
    ams_server *s = calloc(1, sizeof *s);
    if (!s) {
        ams_err_set(err, AMS_E_NOMEM, "server");
        return NULL;
    }
    s->cfg = *c;
    s->layout = c->initial;
    s->total = c->initial->total;
    s->listen_fd = s->epoll_fd = s->event_fd = -1;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    ams_status st = ams_weights_hash(s->layout->values, s->total, s->initial_hash, err);
    if (st == AMS_OK && (c->tls_cert || c->tls_key) &&
        !(s->tls = ams_tls_server_new(c->tls_cert, c->tls_key, err)))
        st = err ? err->code : AMS_E_INVAL;
    if (st == AMS_OK) st = listen_on(s, c->listen, err);
    if (st == AMS_OK) {
        s->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
        s->event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        struct epoll_event l = {.events = EPOLLIN, .data.ptr = &s->listen_fd};
        struct epoll_event v = {.events = EPOLLIN, .data.ptr = &s->event_fd};
        if (s->epoll_fd < 0 || s->event_fd < 0 ||
            epoll_ctl(s->epoll_fd, EPOLL_CTL_ADD, s->listen_fd, &l) != 0 ||
            epoll_ctl(s->epoll_fd, EPOLL_CTL_ADD, s->event_fd, &v) != 0)
            st = ams_err_set(err, AMS_E_IO, "epoll: %s", strerror(errno));
    }
    if (st == AMS_OK) st = ams_sched_start(s, err);
    if (st != AMS_OK) {
        ams_server_free(s);
        return NULL;
    }
    return s;
}

void ams_server_stop(ams_server *s) {
    atomic_store(&s->stop, 1);
    uint64_t one = 1;
    ssize_t w = write(s->event_fd, &one, sizeof one);
    (void)w;
}

ams_status ams_server_run(ams_server *s, ams_err *err) {
    struct epoll_event evs[64];
    double last_sweep = ams_server_now();
    int more = 0; /* TLS holds bytes no readiness event will announce: poll without waiting */
    while (!atomic_load(&s->stop)) {
        int n = epoll_wait(s->epoll_fd, evs, 64, more ? 0 : 200);
        if (n < 0 && errno != EINTR) AMS_FAIL(err, AMS_E_IO, "epoll_wait: %s", strerror(errno));
        for (int i = 0; i < n; i++) {
            void *p = evs[i].data.ptr;
            if (p == &s->listen_fd) {
                on_accept(s);
            } else if (p == &s->event_fd) {
                uint64_t v;
                ssize_t r = read(s->event_fd, &v, sizeof v);
                (void)r;
                /* updates the workers finished: send them */
                for (int k = 0; k < s->n_sessions; k++) {
                    session *ss = s->sessions[k];
                    pthread_mutex_lock(&s->mu);
                    int go = ss->send_pending;
                    pthread_mutex_unlock(&s->mu);
                    if (go && ss->conn && ss->conn->established) send_update(s, ss->conn, ss);
                }
            } else {
                conn *c = p;
                /* c may be closed by an earlier event of this batch only via its own events
                 * or a takeover; a takeover closes the old connection, whose later event in
                 * this batch would then be stale: guard by checking membership */
                int live = 0;
                for (conn *q = s->conns; q; q = q->next)
                    if (q == c) live = 1;
                if (!live) continue;
                if (evs[i].events & (EPOLLERR | EPOLLHUP) && !(evs[i].events & EPOLLIN)) {
                    conn_close(s, c);
                    continue;
                }
                if (!c->x.handshaken) {
                    on_handshake(s, c);
                    continue;
                }
                if (evs[i].events & EPOLLOUT && c->rd_want_write && !on_readable(s, c)) continue;
                if (evs[i].events & EPOLLOUT && !conn_flush(s, c)) {
                    conn_close(s, c);
                    continue;
                }
                if (evs[i].events & EPOLLIN && !on_readable(s, c)) continue;
                if (evs[i].events & EPOLLIN && c->wr_want_read && !conn_flush(s, c))
                    conn_close(s, c);
            }
        }
        /* TLS connections with decrypted bytes (or whole records) already inside TLS: read
         * them now, READ_CHUNK each, as a readiness event would. Marked first, then served
         * one at a time from the list head, since serving one may close others (takeover). */
        more = 0;
        for (conn *c = s->conns; c; c = c->next) c->pend = ams_xport_pending(&c->x);
        for (;;) {
            conn *c = s->conns;
            while (c && !c->pend) c = c->next;
            if (!c) break;
            c->pend = 0;
            if (on_readable(s, c) && ams_xport_pending(&c->x)) more = 1;
        }
        double now = ams_server_now();
        if (now - last_sweep > 0.5) { /* handshake deadline */
            last_sweep = now;
            for (conn *c = s->conns, *nx; c; c = nx) {
                nx = c->next;
                if (c->established || now - c->opened <= s->cfg.handshake_s) continue;
                if (!c->x.handshaken) { /* stalled in the TLS handshake: closed silently */
                    pthread_mutex_lock(&s->mu);
                    s->totals.tls_failures++;
                    pthread_mutex_unlock(&s->mu);
                }
                conn_fail(s, c, AMS_PROTO_OUT_OF_ORDER, "no hello in time");
            }
        }
    }
    atomic_store(&s->stop, 0);
    return AMS_OK;
}

void ams_server_free(ams_server *s) {
    if (!s) return;
    if (s->workers) ams_sched_stop(s);
    while (s->conns) conn_close(s, s->conns);
    ams_tls_free(s->tls);
    for (int i = 0; i < s->n_sessions; i++) ams_session_free(s, s->sessions[i]);
    free(s->sessions);
    if (s->listen_fd >= 0) close(s->listen_fd);
    if (s->epoll_fd >= 0) close(s->epoll_fd);
    if (s->event_fd >= 0) close(s->event_fd);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}

void ams_server_client_info_get(ams_server *s, const char *id, ams_server_client_info *out) {
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < s->n_sessions; i++) {
        session *ss = s->sessions[i];
        if (strcmp(ss->id, id)) continue;
        *out = ss->info;
        out->known = 1;
        out->version = ss->version;
        memcpy(out->hash, ss->hash, AMS_HASH_LEN);
    }
    pthread_mutex_unlock(&s->mu);
}

void ams_server_totals_get(ams_server *s, ams_server_totals *out) {
    pthread_mutex_lock(&s->mu);
    *out = s->totals;
    pthread_mutex_unlock(&s->mu);
}

size_t ams_server_stats_json(ams_server *s, char *buf, size_t cap) {
    if (cap == 0) return 0;
    size_t n = 0;
#define PUT(...)                                                           \
    do {                                                                   \
        int w_ = snprintf(buf + n, cap - n, __VA_ARGS__);                  \
        if (w_ < 0 || (size_t)w_ >= cap - n) { n = cap - 1; goto full; }   \
        n += (size_t)w_;                                                   \
    } while (0)
    pthread_mutex_lock(&s->mu);
    PUT("{\"accepted\":%llu,\"rejected\":%llu,\"handshakes\":%llu,\"jobs\":%llu,",
        (unsigned long long)s->totals.accepted, (unsigned long long)s->totals.rejected,
        (unsigned long long)s->totals.handshakes, (unsigned long long)s->totals.jobs);
    if (s->tls) PUT("\"tls_failures\":%llu,", (unsigned long long)s->totals.tls_failures);
    PUT("\"clients\":[");
    for (int i = 0; i < s->n_sessions; i++) {
        session *ss = s->sessions[i];
        char hex[AMS_HASH_HEX_LEN];
        ams_hash_hex(ss->hash, hex);
        char m1[32], m2[32], m3[32], m4[32];
        PUT("%s{\"id\":\"%s\",\"connected\":%d,\"version\":%llu,\"hash\":\"%s\",\"uploads\":%llu,"
            "\"uploads_dropped\":%llu,\"updates\":%llu,\"upload_bytes\":%llu,"
            "\"update_bytes\":%llu,\"lag_last\":%.3f,\"lag_mean\":%.3f,\"lag_max\":%.3f,"
            "\"sample_rate\":%.4f,\"labelled\":%llu,\"horizon\":%llu,\"miou\":%s,"
            "\"miou_pretrained\":%s,\"miou_mean\":%s,\"miou_pretrained_mean\":%s}",
            i ? "," : "", ss->id, ss->info.connected, (unsigned long long)ss->version, hex,
            (unsigned long long)ss->info.uploads, (unsigned long long)ss->info.uploads_dropped,
            (unsigned long long)ss->info.updates, (unsigned long long)ss->info.upload_bytes,
            (unsigned long long)ss->info.update_bytes, ss->info.lag_last, ss->info.lag_mean,
            ss->info.lag_max, ss->sample_rate, (unsigned long long)ss->info.labelled,
            (unsigned long long)ss->info.horizon, jnum(m1, ss->info.miou),
            jnum(m2, ss->info.miou_pretrained), jnum(m3, ss->info.miou_mean),
            jnum(m4, ss->info.miou_pretrained_mean));
    }
    PUT("]}");
full:
    pthread_mutex_unlock(&s->mu);
#undef PUT
    buf[n] = 0;
    return n;
}
