/* client.h - the client end of an AMSP connection (proto.h): connect, handshake, send frames,
 * receive verified frames. Blocking with timeouts; used by `ams edge`'s network thread and by
 * the loopback tests.
 *
 *     ams_msg_hello h = {.client_id = "cam1", .last_version = v};   // + weights_hash
 *     ams_msg_welcome w;
 *     ams_client *c = NULL;
 *     if (ams_client_open(&c, "127.0.0.1:7070", &h, psk, 5000, &w, &err) == AMS_OK) {
 *         ams_client_send(c, AMS_MSG_UPLOAD, payload, n, &err);
 *         ams_proto_frame f;
 *         ams_client_recv(c, 100, &f, &err);        // f.type == 0: nothing within 100 ms
 *     }
 *     ams_client_free(c);
 * A frame's payload stays valid until the next ams_client_recv. An ERROR frame from the server
 * is returned as AMS_E_IO with its code and text in err (and *server_code when asked).
 * TLS: ams_client_open_tls with a client context (tls.h) runs the TLS 1.3 handshake first and
 * verifies the server's certificate; the frames inside are the same.
 * One client per thread at a time.
 */
#ifndef AMS_CLIENT_H
#define AMS_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "ams/proto.h"
#include "ams/status.h"
#include "ams/tls.h"

typedef struct ams_client ams_client;

/* Connects to "HOST:PORT", sends hello (its nonce is filled here), waits for the welcome up
 * to timeout_ms. @return AMS_OK and *out (free with ams_client_free); AMS_E_IO (connection
 * refused/closed, timeout, an error message from the server: err has its text). */
ams_status ams_client_open(ams_client **out, const char *hostport, const ams_msg_hello *hello,
                           const uint8_t psk[AMS_PROTO_KEY_BYTES], int timeout_ms,
                           ams_msg_welcome *welcome, ams_err *err);
/* ams_client_open over TLS when tls is non-NULL (a context from ams_tls_client_new; the
 * server's name defaults to HOST): the handshake, certificate check included, is bounded by
 * timeout_ms too. @return as ams_client_open; AMS_E_IO with "not trusted" in err when the
 * server's certificate fails verification. tls must outlive the client. */
ams_status ams_client_open_tls(ams_client **out, const char *hostport, const ams_tls *tls,
                               const ams_msg_hello *hello, const uint8_t psk[AMS_PROTO_KEY_BYTES],
                               int timeout_ms, ams_msg_welcome *welcome, ams_err *err);
void ams_client_free(ams_client *c);

/* Sends one frame (blocking until written). @return AMS_OK, AMS_E_IO, AMS_E_RANGE (too big). */
ams_status ams_client_send(ams_client *c, int type, const void *payload, size_t len,
                           ams_err *err);
/* Waits up to timeout_ms for one verified frame: AMS_OK with f->type 0 on timeout.
 * @return AMS_E_IO (closed, error message: *server_code set when non-NULL), AMS_E_FORMAT (a
 * frame the decoder rejected). */
ams_status ams_client_recv(ams_client *c, int timeout_ms, ams_proto_frame *f, int *server_code,
                           ams_err *err);
/* Bytes sent and received on the socket so far (frames, headers and MACs included). */
void ams_client_bytes(const ams_client *c, uint64_t *sent, uint64_t *received);
/* The socket. Over TLS, bytes may wait inside TLS while the socket shows nothing: poll it only
 * with a short timeout, then call ams_client_recv anyway. */
int ams_client_fd(const ams_client *c);

#endif
