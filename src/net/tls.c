/* tls.c - the transport under AMSP (transport.h): plain TCP, or TLS 1.3 through OpenSSL's libssl
 * on the same non-blocking calls; and the TLS contexts of tls.h (server certificate + key,
 * client trust + name check). Sockets are driven through our own BIO so that writes use
 * send(MSG_NOSIGNAL): a peer that vanished never raises SIGPIPE in the caller's process. */
#include <arpa/inet.h>
#include <errno.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/transport.h"

/* Our BIO's type: a fixed number in OpenSSL's range for application BIOs (BIO_get_new_index
 * hands out at most 127 per process, one per context would run out); nothing looks it up. */
#define AMS_BIO_TYPE (250 | BIO_TYPE_SOURCE_SINK)

struct ams_tls {
    SSL_CTX *ctx;
    BIO_METHOD *bio;   /* our socket BIO (send with MSG_NOSIGNAL) */
    int client;        /* 1: verifies the server */
    char name[256];    /* client: the name to check ("" = the dialled host) */
};

/* ---- the socket BIO ---- */

static int bio_write(BIO *b, const char *buf, int n) {
    int fd = (int)(intptr_t)BIO_get_data(b);
    ssize_t w;
    BIO_clear_retry_flags(b);
    do w = send(fd, buf, (size_t)n, MSG_NOSIGNAL);
    while (w < 0 && errno == EINTR);
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) BIO_set_retry_write(b);
    return (int)w;
}

static int bio_read(BIO *b, char *buf, int n) {
    int fd = (int)(intptr_t)BIO_get_data(b);
    ssize_t r;
    BIO_clear_retry_flags(b);
    do r = recv(fd, buf, (size_t)n, 0);
    while (r < 0 && errno == EINTR);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) BIO_set_retry_read(b);
    return (int)r;
}

static int bio_puts(BIO *b, const char *s) { return bio_write(b, s, (int)strlen(s)); }

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr) {
    (void)num;
    if (cmd == BIO_CTRL_FLUSH) return 1; /* unbuffered */
    if (cmd == BIO_C_GET_FD) {
        int fd = (int)(intptr_t)BIO_get_data(b);
        if (ptr) *(int *)ptr = fd;
        return fd;
    }
    return 0; /* nothing else to tell (no kTLS, no pending bytes of its own) */
}

static int bio_create(BIO *b) {
    BIO_set_init(b, 1);
    return 1;
}

/* OpenSSL's reasons queued on this thread, "a; b", into out (and the queue emptied). */
static void ssl_reasons(char *out, size_t cap) {
    size_t n = 0;
    out[0] = 0;
    unsigned long e;
    while ((e = ERR_get_error()) != 0) {
        const char *r = ERR_reason_error_string(e);
        char tmp[256];
        if (!r) {
            ERR_error_string_n(e, tmp, sizeof tmp);
            r = tmp;
        }
        if (n + 3 < cap) n += (size_t)snprintf(out + n, cap - n, "%s%s", n ? "; " : "", r);
        if (n >= cap) n = cap - 1;
    }
    if (!out[0]) snprintf(out, cap, "unknown TLS error");
}

static ams_tls *tls_new(int client, ams_err *err) {
    ams_tls *t = calloc(1, sizeof *t);
    if (!t) {
        ams_err_set(err, AMS_E_NOMEM, "TLS context");
        return NULL;
    }
    t->client = client;
    ERR_clear_error();
    t->ctx = SSL_CTX_new(client ? TLS_client_method() : TLS_server_method());
    t->bio = BIO_meth_new(AMS_BIO_TYPE, "ams socket");
    if (!t->ctx || !t->bio || !BIO_meth_set_write(t->bio, bio_write) ||
        !BIO_meth_set_read(t->bio, bio_read) || !BIO_meth_set_puts(t->bio, bio_puts) ||
        !BIO_meth_set_ctrl(t->bio, bio_ctrl) || !BIO_meth_set_create(t->bio, bio_create) ||
        !SSL_CTX_set_min_proto_version(t->ctx, TLS1_3_VERSION)) {
        char why[512];
        ssl_reasons(why, sizeof why);
        ams_err_set(err, AMS_E_INTERNAL, "TLS context: %s", why);
        ams_tls_free(t);
        return NULL;
    }
    /* no resumption (one long connection per edge); EOF without close_notify is a plain close:
     * AMSP frames carry their own lengths and MACs, so a cut stream cannot pass as complete */
    SSL_CTX_set_session_cache_mode(t->ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(t->ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_TICKET);
    SSL_CTX_set_mode(t->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    return t;
}

ams_tls *ams_tls_server_new(const char *cert_file, const char *key_file, ams_err *err) {
    if (!cert_file || !key_file) {
        ams_err_set(err, AMS_E_INVAL, "TLS needs both a certificate and a key file");
        return NULL;
    }
    ams_tls *t = tls_new(0, err);
    if (!t) return NULL;
    SSL_CTX_set_num_tickets(t->ctx, 0);
    const char *what = NULL;
    if (SSL_CTX_use_certificate_chain_file(t->ctx, cert_file) != 1) what = cert_file;
    else if (SSL_CTX_use_PrivateKey_file(t->ctx, key_file, SSL_FILETYPE_PEM) != 1)
        what = key_file;
    else if (SSL_CTX_check_private_key(t->ctx) != 1) what = "certificate and key";
    if (what) {
        char why[512];
        ssl_reasons(why, sizeof why);
        if (what != cert_file && (what != key_file || strstr(why, "mismatch")))
            ams_err_set(err, AMS_E_IO, "TLS key %s does not match the certificate %s (%s)",
                        key_file, cert_file, why);
        else
            ams_err_set(err, AMS_E_IO, "TLS %s: %s (a PEM file?)", what, why);
        ams_tls_free(t);
        return NULL;
    }
    return t;
}

ams_tls *ams_tls_client_new(const char *ca_file, const char *name, ams_err *err) {
    if (!ca_file) {
        ams_err_set(err, AMS_E_INVAL, "TLS needs a CA file to verify the server");
        return NULL;
    }
    if (name && (!name[0] || strlen(name) >= sizeof ((ams_tls *)0)->name)) {
        ams_err_set(err, AMS_E_INVAL, "bad TLS server name '%s'", name);
        return NULL;
    }
    ams_tls *t = tls_new(1, err);
    if (!t) return NULL;
    if (SSL_CTX_load_verify_locations(t->ctx, ca_file, NULL) != 1) {
        char why[512];
        ssl_reasons(why, sizeof why);
        ams_err_set(err, AMS_E_IO, "TLS CA file %s: %s (a PEM certificate?)", ca_file, why);
        ams_tls_free(t);
        return NULL;
    }
    SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
    if (name) snprintf(t->name, sizeof t->name, "%s", name);
    return t;
}

void ams_tls_free(ams_tls *t) {
    if (!t) return;
    SSL_CTX_free(t->ctx);
    BIO_meth_free(t->bio);
    free(t);
}

/* ---- the transport ---- */

static int is_ip(const char *s) {
    unsigned char a[16];
    return inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1;
}

ams_status ams_xport_start(ams_xport *x, int fd, const ams_tls *tls, int side,
                           const char *host_hint, ams_err *err) {
    memset(x, 0, sizeof *x);
    x->fd = -1; /* set on success only: on error the caller still owns fd */
    x->handshaken = 1;
    if (!tls) {
        x->fd = fd;
        return AMS_OK;
    }
    AMS_ASSERT((side == AMS_XPORT_CLIENT) == tls->client);
    ERR_clear_error();
    SSL *ssl = SSL_new(tls->ctx);
    BIO *b = ssl ? BIO_new(tls->bio) : NULL;
    if (!b) {
        SSL_free(ssl);
        ERR_clear_error();
        AMS_FAIL(err, AMS_E_NOMEM, "TLS connection state");
    }
    BIO_set_data(b, (void *)(intptr_t)fd);
    SSL_set_bio(ssl, b, b); /* ssl owns b */
    if (side == AMS_XPORT_SERVER) {
        SSL_set_accept_state(ssl);
    } else {
        const char *name = tls->name[0] ? tls->name : host_hint;
        int ok = name && name[0];
        if (ok && is_ip(name)) {
            ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) == 1;
        } else if (ok) {
            ok = SSL_set1_host(ssl, name) == 1 && SSL_set_tlsext_host_name(ssl, name) == 1;
            X509_VERIFY_PARAM_set_hostflags(SSL_get0_param(ssl),
                                            X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        }
        if (!ok) {
            SSL_free(ssl);
            ERR_clear_error();
            AMS_FAIL(err, AMS_E_INVAL, "TLS: cannot check the server's name '%s'",
                     name ? name : "");
        }
        SSL_set_connect_state(ssl);
    }
    x->fd = fd;
    x->ssl = ssl;
    x->handshaken = 0;
    return AMS_OK;
}

/* Maps an SSL_* failure to a transport result; err gets the reason on AMS_XPORT_ERROR. */
static int failure(ams_xport *x, int rc, const char *during, ams_err *err) {
    int sys = errno;
    int e = SSL_get_error(x->ssl, rc);
    if (e == SSL_ERROR_WANT_READ) return AMS_XPORT_WANT_READ;
    if (e == SSL_ERROR_WANT_WRITE) return AMS_XPORT_WANT_WRITE;
    char why[512];
    long v = x->handshaken ? X509_V_OK : SSL_get_verify_result(x->ssl);
    if (e == SSL_ERROR_SSL && v != X509_V_OK) {
        ERR_clear_error();
        ams_err_set(err, AMS_E_IO,
                    "TLS: the server's certificate is not trusted: %s (is --tls-ca the server's "
                    "certificate or its CA, and --tls-name a name in it?)",
                    X509_verify_cert_error_string(v));
        return AMS_XPORT_ERROR;
    }
    if (e == SSL_ERROR_SYSCALL) {
        ERR_clear_error();
        if (sys && rc < 0) snprintf(why, sizeof why, "%s", strerror(sys));
        else snprintf(why, sizeof why, "the peer closed the connection");
    } else if (e == SSL_ERROR_ZERO_RETURN) {
        snprintf(why, sizeof why, "the peer closed the connection");
    } else {
        ssl_reasons(why, sizeof why);
    }
    ams_err_set(err, AMS_E_IO, "TLS %s failed: %s", during, why);
    return AMS_XPORT_ERROR;
}

int ams_xport_handshake(ams_xport *x, ams_err *err) {
    if (x->handshaken) return AMS_XPORT_DONE;
    ERR_clear_error();
    errno = 0;
    int rc = SSL_do_handshake(x->ssl);
    if (rc == 1) {
        x->handshaken = 1;
        return AMS_XPORT_DONE;
    }
    return failure(x, rc, "handshake", err);
}

ssize_t ams_xport_read(ams_xport *x, void *buf, size_t n, ams_err *err) {
    if (!x->ssl) {
        ssize_t r;
        do r = recv(x->fd, buf, n, 0);
        while (r < 0 && errno == EINTR);
        if (r >= 0) return r;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return AMS_XPORT_WANT_READ;
        ams_err_set(err, AMS_E_IO, "recv: %s", strerror(errno));
        return AMS_XPORT_ERROR;
    }
    if (!x->handshaken) {
        int h = ams_xport_handshake(x, err);
        if (h != AMS_XPORT_DONE) return h;
    }
    size_t got = 0;
    ERR_clear_error();
    errno = 0;
    int rc = SSL_read_ex(x->ssl, buf, n, &got);
    if (rc == 1) return (ssize_t)got;
    if (SSL_get_error(x->ssl, rc) == SSL_ERROR_ZERO_RETURN) return 0;
    return failure(x, rc, "read", err);
}

ssize_t ams_xport_write(ams_xport *x, const void *buf, size_t n, ams_err *err) {
    if (!x->ssl) {
        ssize_t w;
        do w = send(x->fd, buf, n, MSG_NOSIGNAL);
        while (w < 0 && errno == EINTR);
        if (w > 0) return w;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return AMS_XPORT_WANT_WRITE;
        ams_err_set(err, AMS_E_IO, "send: %s", w < 0 ? strerror(errno) : "nothing written");
        return AMS_XPORT_ERROR;
    }
    if (!x->handshaken) {
        int h = ams_xport_handshake(x, err);
        if (h != AMS_XPORT_DONE) return h;
    }
    size_t put = 0;
    ERR_clear_error();
    errno = 0;
    int rc = SSL_write_ex(x->ssl, buf, n, &put);
    if (rc == 1) return (ssize_t)put;
    return failure(x, rc, "write", err);
}

int ams_xport_pending(const ams_xport *x) {
    /* decrypted bytes only: a partial record inside TLS (SSL_has_pending) needs the socket
     * first, and counting it would make the server poll without waiting until it came. With
     * read-ahead off (the default) TLS never holds a whole unprocessed record. */
    return x->ssl && x->handshaken && SSL_pending(x->ssl) > 0;
}

void ams_xport_close(ams_xport *x) {
    if (x->fd < 0) return;
    if (x->ssl) {
        if (x->handshaken) {
            ERR_clear_error();
            SSL_shutdown(x->ssl); /* close_notify if the socket takes it now; never waits */
        }
        ERR_clear_error();
        SSL_free(x->ssl);
        x->ssl = NULL;
    }
    close(x->fd);
    x->fd = -1;
}
