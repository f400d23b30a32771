/* transport.h - the byte stream under AMSP (private to src/net): plain TCP or TLS behind one
 * read/write/close interface, so the server and the client call the same functions whichever
 * mode a connection is in. Every call is non-blocking: a socket in blocking mode would block
 * only where the plain call would.
 *
 *     ams_xport x;
 *     ams_xport_start(&x, fd, tls, AMS_XPORT_SERVER, NULL, &err);   // tls NULL: plain TCP
 *     while ((r = ams_xport_handshake(&x, &err)) > 0) wait for r (READ or WRITE);
 *     n = ams_xport_read(&x, buf, cap, &err);   // > 0 bytes, 0 closed, < 0 want or error
 *     ams_xport_close(&x);                      // closes the socket too
 *
 * One connection per ams_xport; one thread at a time.
 */
#ifndef AMS_NET_TRANSPORT_H
#define AMS_NET_TRANSPORT_H

#include <stddef.h>
#include <sys/types.h>

#include "ams/status.h"
#include "ams/tls.h"

typedef struct ssl_st ams_xport_ssl; /* OpenSSL's SSL, kept out of the includers */

typedef struct ams_xport {
    int fd;               /* the socket (owned: ams_xport_close closes it) */
    ams_xport_ssl *ssl;   /* NULL: plain TCP */
    int handshaken;       /* TLS handshake finished (always 1 in plain mode) */
} ams_xport;

enum {
    AMS_XPORT_SERVER = 0,
    AMS_XPORT_CLIENT = 1,
};

/* Results of handshake, read and write that are not byte counts. */
enum {
    AMS_XPORT_DONE = 0,         /* handshake: finished */
    AMS_XPORT_WANT_READ = -1,   /* would block until the socket is readable */
    AMS_XPORT_WANT_WRITE = -2,  /* would block until the socket is writable */
    AMS_XPORT_ERROR = -3,       /* broken: err says why; close it */
};

/* Takes fd (plain: nothing else happens). With tls, makes the TLS state for one side; a client
 * checks the server's certificate against host_hint (when the context has no name of its
 * own). On error fd is not closed. @return AMS_OK, AMS_E_NOMEM, AMS_E_INVAL (bad name). */
ams_status ams_xport_start(ams_xport *x, int fd, const ams_tls *tls, int side,
                           const char *host_hint, ams_err *err);
/* Advances the TLS handshake: AMS_XPORT_DONE, AMS_XPORT_WANT_READ/WRITE, or AMS_XPORT_ERROR
 * (err: OpenSSL's reason, a certificate verification failure spelled out). Plain: DONE. */
int ams_xport_handshake(ams_xport *x, ams_err *err);
/* Up to n (> 0) bytes: > 0 read, 0 the peer closed, or AMS_XPORT_WANT_* / AMS_XPORT_ERROR. */
ssize_t ams_xport_read(ams_xport *x, void *buf, size_t n, ams_err *err);
/* Up to n (> 0) bytes: > 0 written (maybe fewer than n), or AMS_XPORT_WANT_* /
 * AMS_XPORT_ERROR. Never raises SIGPIPE. After a WANT, TLS must be given the same bytes again
 * (they may have moved, and more may follow them). */
ssize_t ams_xport_write(ams_xport *x, const void *buf, size_t n, ams_err *err);
/* 1 when decrypted bytes wait inside TLS (a read stopped inside a record), so a poll of the
 * socket would not show them; 0 otherwise (always 0 in plain mode). */
int ams_xport_pending(const ams_xport *x);
/* Best-effort TLS close_notify (never waits), frees the TLS state, closes the socket;
 * fd < 0 is a no-op. */
void ams_xport_close(ams_xport *x);
/* 1 when TLS is on. */
static inline int ams_xport_is_tls(const ams_xport *x) { return x->ssl != 0; }

#endif
