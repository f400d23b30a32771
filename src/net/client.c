/* client.c - the client end of an AMSP connection: TCP connect, optional TLS (transport.h),
 * hello/welcome handshake with the session key, blocking sends and receives of verified frames
 * with timeouts (the socket itself is non-blocking; poll waits). */
#include "ams/client.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "net/transport.h"

#define RBUF_MAX (AMS_PROTO_HEADER_BYTES + ((size_t)8 << 20) + AMS_PROTO_MAC_BYTES)

struct ams_client {
    ams_xport x;                      /* the socket, plain or TLS */
    int timeout_ms;                   /* a send that makes no progress for this long fails */
    ams_proto_dec dec;
    uint8_t key[AMS_PROTO_KEY_BYTES]; /* send key: psk, then the session key */
    uint64_t seq;
    uint8_t *rbuf;
    size_t rlen, rcap, consumed; /* consumed: bytes of the last returned frame */
    ams_proto_buf wbuf;
    uint64_t sent, received;
};

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

/* Waits until the socket is readable (want AMS_XPORT_WANT_READ) or writable, up to ms.
 * @return 1 ready, 0 timed out, -1 poll failed. */
static int wait_fd(int fd, int want, double ms) {
    if (ms <= 0) return 0;
    struct pollfd p = {.fd = fd, .events = want == AMS_XPORT_WANT_READ ? POLLIN : POLLOUT};
    int r = poll(&p, 1, (int)ms + 1);
    if (r < 0 && errno == EINTR) return 1; /* the caller loops and checks its deadline */
    return r < 0 ? -1 : r > 0;
}

static ams_status dial(const char *hostport, int timeout_ms, int *out, char *host_out,
                       size_t host_cap, ams_err *err) {
    char host[256];
    const char *colon = strrchr(hostport, ':');
    AMS_FAIL_IF(!colon || colon == hostport || (size_t)(colon - hostport) >= sizeof host, err,
                AMS_E_INVAL, "server address '%s' is not HOST:PORT", hostport);
    memcpy(host, hostport, (size_t)(colon - hostport));
    host[colon - hostport] = 0;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    int rc = getaddrinfo(host, colon + 1, &hints, &ai);
    AMS_FAIL_IF(rc != 0, err, AMS_E_IO, "%s: %s", hostport, gai_strerror(rc));
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        freeaddrinfo(ai);
        AMS_FAIL(err, AMS_E_IO, "socket: %s", strerror(errno));
    }
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv); /* bounds connect and sends */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        int e = errno;
        close(fd);
        freeaddrinfo(ai);
        AMS_FAIL(err, AMS_E_IO, "connect %s: %s", hostport, strerror(e));
    }
    freeaddrinfo(ai);
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0) {
        int e = errno;
        close(fd);
        AMS_FAIL(err, AMS_E_IO, "fcntl: %s", strerror(e));
    }
    snprintf(host_out, host_cap, "%s", host);
    *out = fd;
    return AMS_OK;
}

void ams_client_free(ams_client *c) {
    if (!c) return;
    ams_xport_close(&c->x);
    free(c->rbuf);
    ams_proto_buf_free(&c->wbuf);
    OPENSSL_cleanse(c->key, sizeof c->key);
    OPENSSL_cleanse(c->dec.key, sizeof c->dec.key);
    free(c);
}

ams_status ams_client_send(ams_client *c, int type, const void *payload, size_t len,
                           ams_err *err) {
    c->wbuf.len = 0;
    AMS_TRY(ams_proto_encode(&c->wbuf, type, ++c->seq, c->key, payload, len, err));
    size_t off = 0;
    double deadline = now_ms() + c->timeout_ms;
    while (off < c->wbuf.len) {
        ssize_t w = ams_xport_write(&c->x, c->wbuf.data + off, c->wbuf.len - off, err);
        if (w == AMS_XPORT_WANT_READ || w == AMS_XPORT_WANT_WRITE) {
            int r = wait_fd(c->x.fd, (int)w, deadline - now_ms());
            AMS_FAIL_IF(r == 0, err, AMS_E_IO, "send: timed out");
            AMS_FAIL_IF(r < 0, err, AMS_E_IO, "poll: %s", strerror(errno));
            continue;
        }
        if (w <= 0) return err ? err->code : AMS_E_IO;
        off += (size_t)w;
        c->sent += (uint64_t)w;
        deadline = now_ms() + c->timeout_ms;
    }
    return AMS_OK;
}

/* Tries to decode an ERROR frame MACed with the all-zero key (the server's answer to a hello
 * it could not authenticate) so the user sees the server's reason. */
static int unauth_error(const uint8_t *buf, size_t len, int *code, char *text, size_t cap) {
    static const uint8_t zero[AMS_PROTO_KEY_BYTES];
    ams_proto_dec d;
    ams_proto_dec_init(&d, AMS_PROTO_ROLE_CLIENT);
    ams_proto_dec_set_key(&d, zero);
    ams_proto_frame f;
    size_t used;
    ams_err e = {0};
    if (ams_proto_dec_next(&d, buf, len, &f, &used, &e) != AMS_PROTO_OK || !used ||
        f.type != AMS_MSG_ERROR)
        return 0;
    return ams_msg_error_parse(f.payload, f.len, code, text, cap, &e) == AMS_OK;
}

ams_status ams_client_recv(ams_client *c, int timeout_ms, ams_proto_frame *f, int *server_code,
                           ams_err *err) {
    memset(f, 0, sizeof *f);
    if (c->consumed) {
        memmove(c->rbuf, c->rbuf + c->consumed, c->rlen - c->consumed);
        c->rlen -= c->consumed;
        c->consumed = 0;
    }
    double deadline = now_ms() + timeout_ms;
    for (;;) {
        size_t used;
        ams_proto_reject why = ams_proto_dec_next(&c->dec, c->rbuf, c->rlen, f, &used, err);
        if (why != AMS_PROTO_OK) {
            int code;
            char text[1024];
            if (why == AMS_PROTO_BAD_MAC && unauth_error(c->rbuf, c->rlen, &code, text, sizeof text)) {
                if (server_code) *server_code = code;
                AMS_FAIL(err, AMS_E_IO, "server error %d: %s", code, text);
            }
            return err ? err->code : AMS_E_FORMAT;
        }
        if (used) {
            c->consumed = used;
            if (f->type == AMS_MSG_ERROR) {
                int code = 0;
                char text[1024] = "";
                ams_err e2 = {0};
                ams_msg_error_parse(f->payload, f->len, &code, text, sizeof text, &e2);
                if (server_code) *server_code = code;
                AMS_FAIL(err, AMS_E_IO, "server error %d: %s", code, text);
            }
            return AMS_OK;
        }
        if (c->rcap - c->rlen < 65536 && c->rcap < RBUF_MAX) {
            size_t cap = c->rcap ? c->rcap * 2 : 65536;
            if (cap > RBUF_MAX) cap = RBUF_MAX;
            uint8_t *g = realloc(c->rbuf, cap);
            AMS_FAIL_IF(!g, err, AMS_E_NOMEM, "receive buffer");
            c->rbuf = g;
            c->rcap = cap;
        }
        AMS_FAIL_IF(c->rlen == c->rcap, err, AMS_E_INTERNAL, "receive buffer full");
        ssize_t n = ams_xport_read(&c->x, c->rbuf + c->rlen, c->rcap - c->rlen, err);
        if (n == AMS_XPORT_WANT_READ || n == AMS_XPORT_WANT_WRITE) {
            double left = deadline - now_ms();
            if (left <= 0) return AMS_OK; /* timeout: f->type == 0 */
            int r = wait_fd(c->x.fd, (int)n, left);
            if (r < 0) AMS_FAIL(err, AMS_E_IO, "poll: %s", strerror(errno));
            continue;
        }
        if (n == AMS_XPORT_ERROR) return err ? err->code : AMS_E_IO;
        if (n == 0) AMS_FAIL(err, AMS_E_IO, "connection closed by the server");
        c->rlen += (size_t)n;
        c->received += (uint64_t)n;
    }
}

/* The TLS handshake on the fresh connection, bounded by timeout_ms. */
static ams_status tls_handshake(ams_client *c, const char *hostport, int timeout_ms,
                                ams_err *err) {
    double deadline = now_ms() + timeout_ms;
    for (;;) {
        int h = ams_xport_handshake(&c->x, err);
        if (h == AMS_XPORT_DONE) return AMS_OK;
        if (h == AMS_XPORT_ERROR) {
            if (!err) return AMS_E_IO;
            char why[sizeof err->msg];
            snprintf(why, sizeof why, "%s", err->msg);
            return ams_err_set(err, AMS_E_IO, "%s: %.900s%s", hostport, why,
                               strstr(why, "not trusted") ? ""
                                                          : " (does the server run with "
                                                            "--tls-cert?)");
        }
        int r = wait_fd(c->x.fd, h, deadline - now_ms());
        AMS_FAIL_IF(r == 0, err, AMS_E_IO, "%s: no TLS handshake within %d ms", hostport,
                    timeout_ms);
        AMS_FAIL_IF(r < 0, err, AMS_E_IO, "poll: %s", strerror(errno));
    }
}

ams_status ams_client_open(ams_client **out, const char *hostport, const ams_msg_hello *hello,
                           const uint8_t psk[AMS_PROTO_KEY_BYTES], int timeout_ms,
                           ams_msg_welcome *welcome, ams_err *err) {
    return ams_client_open_tls(out, hostport, NULL, hello, psk, timeout_ms, welcome, err);
}

ams_status ams_client_open_tls(ams_client **out, const char *hostport, const ams_tls *tls,
                               const ams_msg_hello *hello, const uint8_t psk[AMS_PROTO_KEY_BYTES],
                               int timeout_ms, ams_msg_welcome *welcome, ams_err *err) {
    *out = NULL;
    ams_client *c = calloc(1, sizeof *c);
    AMS_FAIL_IF(!c, err, AMS_E_NOMEM, "client");
    c->x.fd = -1;
    c->timeout_ms = timeout_ms;
    ams_proto_dec_init(&c->dec, AMS_PROTO_ROLE_CLIENT);
    ams_proto_dec_set_key(&c->dec, psk);
    memcpy(c->key, psk, AMS_PROTO_KEY_BYTES);
    ams_msg_hello h = *hello;
    uint8_t buf[1024];
    size_t n;
    ams_proto_frame f;
    ams_status st = AMS_OK;
    if (RAND_bytes(h.nonce, sizeof h.nonce) != 1)
        st = ams_err_set(err, AMS_E_INTERNAL, "RAND_bytes failed");
    if (st == AMS_OK) st = ams_msg_hello_pack(&h, buf, sizeof buf, &n, err);
    int fd = -1;
    char host[256];
    if (st == AMS_OK) st = dial(hostport, timeout_ms, &fd, host, sizeof host, err);
    if (st == AMS_OK && (st = ams_xport_start(&c->x, fd, tls, AMS_XPORT_CLIENT, host, err)) !=
                            AMS_OK)
        close(fd);
    if (st == AMS_OK && tls) st = tls_handshake(c, hostport, timeout_ms, err);
    if (st == AMS_OK) st = ams_client_send(c, AMS_MSG_HELLO, buf, n, err);
    if (st == AMS_OK) st = ams_client_recv(c, timeout_ms, &f, NULL, err);
    if (st == AMS_OK && f.type != AMS_MSG_WELCOME)
        st = ams_err_set(err, AMS_E_IO, "no welcome from %s within %d ms", hostport, timeout_ms);
    if (st == AMS_OK) st = ams_msg_welcome_parse(f.payload, f.len, welcome, err);
    uint8_t skey[AMS_PROTO_KEY_BYTES];
    if (st == AMS_OK) st = ams_proto_session_key(psk, h.nonce, welcome->nonce, skey, err);
    if (st != AMS_OK) {
        ams_client_free(c);
        return st;
    }
    memcpy(c->key, skey, sizeof skey);
    ams_proto_dec_set_key(&c->dec, skey);
    OPENSSL_cleanse(skey, sizeof skey);
    *out = c;
    return AMS_OK;
}

void ams_client_bytes(const ams_client *c, uint64_t *sent, uint64_t *received) {
    *sent = c->sent;
    *received = c->received;
}

int ams_client_fd(const ams_client *c) { return c->x.fd; }
