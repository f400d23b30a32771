/* frame.c - AMSP framing: encode a MACed frame, and the incremental decoder that verifies
 * header, length limit, HMAC, sequence number and session state of untrusted bytes. */
#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ams/proto.h"
#include "net/wire.h"

size_t ams_proto_max_payload(int type) {
    switch (type) {
    case AMS_MSG_HELLO: return 1024;
    case AMS_MSG_WELCOME: return 1024;
    case AMS_MSG_UPLOAD: return (size_t)4 << 20;
    case AMS_MSG_UPDATE: return (size_t)8 << 20;
    case AMS_MSG_ACK: return 64;
    case AMS_MSG_STATS: return (size_t)64 << 10;
    case AMS_MSG_ERROR: return 1024;
    case AMS_MSG_BYE: return 256;
    default: return 0;
    }
}

const char *ams_proto_type_name(int type) {
    static const char *const names[] = {"?",   "hello", "welcome", "upload", "update",
                                        "ack", "stats", "error",   "bye"};
    return type >= 1 && type <= AMS_MSG_TYPE_MAX ? names[type] : "unknown";
}

const char *ams_proto_reject_name(ams_proto_reject r) {
    switch (r) {
    case AMS_PROTO_OK: return "ok";
    case AMS_PROTO_BAD_MAGIC: return "bad magic";
    case AMS_PROTO_BAD_VERSION: return "bad version";
    case AMS_PROTO_BAD_TYPE: return "bad type";
    case AMS_PROTO_OVERSIZED: return "oversized";
    case AMS_PROTO_BAD_MAC: return "bad mac";
    case AMS_PROTO_REPLAY: return "replayed sequence number";
    case AMS_PROTO_OUT_OF_ORDER: return "out-of-order message";
    case AMS_PROTO_BAD_PAYLOAD: return "bad payload";
    case AMS_PROTO_UNKNOWN_CLIENT: return "unknown client";
    case AMS_PROTO_CLOSED: return "frame after close";
    case AMS_PROTO_INTERNAL: return "internal error";
    }
    return "unknown";
}

void ams_proto_dec_init(ams_proto_dec *d, ams_proto_role role) {
    memset(d, 0, sizeof *d);
    d->role = role;
}

void ams_proto_dec_set_key(ams_proto_dec *d, const uint8_t key[AMS_PROTO_KEY_BYTES]) {
    memcpy(d->key, key, AMS_PROTO_KEY_BYTES);
    d->have_key = 1;
}

/* HMAC-SHA256 of n bytes (OpenSSL's one-shot HMAC); 1 on success. */
static int hmac(const uint8_t key[AMS_PROTO_KEY_BYTES], const uint8_t *data, size_t n,
                uint8_t out[AMS_PROTO_MAC_BYTES]) {
    unsigned int olen = 0;
    return HMAC(EVP_sha256(), key, AMS_PROTO_KEY_BYTES, data, n, out, &olen) != NULL &&
           olen == AMS_PROTO_MAC_BYTES;
}

ams_status ams_proto_session_key(const uint8_t psk[AMS_PROTO_KEY_BYTES],
                                 const uint8_t cnonce[AMS_PROTO_NONCE_BYTES],
                                 const uint8_t snonce[AMS_PROTO_NONCE_BYTES],
                                 uint8_t out[AMS_PROTO_KEY_BYTES], ams_err *err) {
    static const char label[] = "AMSP session v1";
    uint8_t msg[sizeof label - 1 + 2 * AMS_PROTO_NONCE_BYTES];
    memcpy(msg, label, sizeof label - 1);
    memcpy(msg + sizeof label - 1, cnonce, AMS_PROTO_NONCE_BYTES);
    memcpy(msg + sizeof label - 1 + AMS_PROTO_NONCE_BYTES, snonce, AMS_PROTO_NONCE_BYTES);
    AMS_FAIL_IF(!hmac(psk, msg, sizeof msg, out), err, AMS_E_INTERNAL,
                "HMAC-SHA256 failed (libcrypto)");
    return AMS_OK;
}

void ams_proto_buf_free(ams_proto_buf *b) {
    if (!b) return;
    free(b->data);
    memset(b, 0, sizeof *b);
}

void ams_proto_buf_consume(ams_proto_buf *b, size_t n) {
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

ams_status ams_proto_encode(ams_proto_buf *out, int type, uint64_t seq,
                            const uint8_t key[AMS_PROTO_KEY_BYTES], const void *payload,
                            size_t len, ams_err *err) {
    size_t maxp = ams_proto_max_payload(type);
    AMS_FAIL_IF(maxp == 0, err, AMS_E_INVAL, "unknown message type %d", type);
    AMS_FAIL_IF(len > maxp, err, AMS_E_RANGE, "%s payload of %zu bytes exceeds the limit %zu",
                ams_proto_type_name(type), len, maxp);
    size_t need = out->len + AMS_PROTO_HEADER_BYTES + len + AMS_PROTO_MAC_BYTES;
    if (need > out->cap) {
        size_t cap = out->cap ? out->cap : 4096;
        while (cap < need) cap *= 2;
        uint8_t *d = realloc(out->data, cap);
        AMS_FAIL_IF(!d, err, AMS_E_NOMEM, "frame buffer of %zu bytes", cap);
        out->data = d;
        out->cap = cap;
    }
    uint8_t *h = out->data + out->len;
    memcpy(h, AMS_PROTO_MAGIC, 4);
    ams_wire_put16(h + 4, AMS_PROTO_VERSION);
    h[6] = (uint8_t)type;
    h[7] = 0;
    ams_wire_put64(h + 8, seq);
    ams_wire_put32(h + 16, (uint32_t)len);
    if (len) memcpy(h + AMS_PROTO_HEADER_BYTES, payload, len);
    AMS_FAIL_IF(!hmac(key, h, AMS_PROTO_HEADER_BYTES + len, h + AMS_PROTO_HEADER_BYTES + len),
                err, AMS_E_INTERNAL, "HMAC-SHA256 failed (libcrypto)");
    out->len = need;
    return AMS_OK;
}

static ams_proto_reject reject(ams_proto_dec *d, ams_proto_reject r, ams_err *err,
                               const char *what) {
    d->state = 2; /* a rejected stream is never resynchronised */
    ams_err_set(err, AMS_E_FORMAT, "%s: %s", ams_proto_reject_name(r), what);
    return r;
}

/* Is type acceptable in the decoder's state? */
static int allowed(const ams_proto_dec *d, int type) {
    if (d->state == 0) {
        if (d->role == AMS_PROTO_ROLE_SERVER) return type == AMS_MSG_HELLO;
        return type == AMS_MSG_WELCOME || type == AMS_MSG_ERROR;
    }
    switch (type) {
    case AMS_MSG_ACK:
    case AMS_MSG_STATS:
    case AMS_MSG_ERROR:
    case AMS_MSG_BYE: return 1;
    case AMS_MSG_UPLOAD: return d->role == AMS_PROTO_ROLE_SERVER;
    case AMS_MSG_UPDATE: return d->role == AMS_PROTO_ROLE_CLIENT;
    default: return 0;
    }
}

ams_proto_reject ams_proto_dec_next(ams_proto_dec *d, const uint8_t *buf, size_t len,
                                    ams_proto_frame *f, size_t *used, ams_err *err) {
    char what[160];
    *used = 0;
    memset(f, 0, sizeof *f);
    if (len == 0) return AMS_PROTO_OK;
    if (d->state == 2) return reject(d, AMS_PROTO_CLOSED, err, "bytes after the stream ended");
    /* reject a bad prefix as soon as it is visible */
    size_t m = len < 4 ? len : 4;
    if (memcmp(buf, AMS_PROTO_MAGIC, m) != 0)
        return reject(d, AMS_PROTO_BAD_MAGIC, err, "stream does not start with \"AMSP\"");
    if (len < AMS_PROTO_HEADER_BYTES) return AMS_PROTO_OK;
    unsigned version = ams_wire_get16(buf + 4);
    int type = buf[6];
    uint64_t seq = ams_wire_get64(buf + 8);
    uint32_t plen = ams_wire_get32(buf + 16);
    if (version != AMS_PROTO_VERSION) {
        snprintf(what, sizeof what, "version %u, expected %d", version, AMS_PROTO_VERSION);
        return reject(d, AMS_PROTO_BAD_VERSION, err, what);
    }
    size_t maxp = ams_proto_max_payload(type);
    if (maxp == 0 || buf[7] != 0) {
        snprintf(what, sizeof what, "type %d flags 0x%02x", type, buf[7]);
        return reject(d, AMS_PROTO_BAD_TYPE, err, what);
    }
    if (plen > maxp) {
        snprintf(what, sizeof what, "%s payload of %u bytes exceeds the limit %zu",
                 ams_proto_type_name(type), plen, maxp);
        return reject(d, AMS_PROTO_OVERSIZED, err, what);
    }
    if (!allowed(d, type)) {
        snprintf(what, sizeof what, "%s not allowed %s", ams_proto_type_name(type),
                 d->state == 0 ? "before the handshake" : "after the handshake");
        return reject(d, AMS_PROTO_OUT_OF_ORDER, err, what);
    }
    size_t total = AMS_PROTO_HEADER_BYTES + (size_t)plen + AMS_PROTO_MAC_BYTES;
    if (len < total) return AMS_PROTO_OK;
    const uint8_t *payload = buf + AMS_PROTO_HEADER_BYTES;

    uint8_t key[AMS_PROTO_KEY_BYTES];
    char id[AMS_PROTO_ID_MAX + 1] = "";
    if (d->role == AMS_PROTO_ROLE_SERVER && d->state == 0) {
        /* the key depends on the claimed id; nothing else of the payload is trusted yet */
        ams_msg_hello h;
        if (ams_msg_hello_parse(payload, plen, &h, err) != AMS_OK)
            return reject(d, AMS_PROTO_BAD_PAYLOAD, err, "hello does not parse");
        if (!d->key_lookup || !d->key_lookup(d->key_ctx, h.client_id, key)) {
            snprintf(what, sizeof what, "no key for client '%s'", h.client_id);
            return reject(d, AMS_PROTO_UNKNOWN_CLIENT, err, what);
        }
        memcpy(id, h.client_id, sizeof id);
    } else {
        if (!d->have_key) return reject(d, AMS_PROTO_INTERNAL, err, "decoder has no key");
        memcpy(key, d->key, sizeof key);
    }
    uint8_t mac[AMS_PROTO_MAC_BYTES];
    if (!hmac(key, buf, AMS_PROTO_HEADER_BYTES + plen, mac)) {
        OPENSSL_cleanse(key, sizeof key);
        return reject(d, AMS_PROTO_INTERNAL, err, "HMAC-SHA256 failed (libcrypto)");
    }
    if (CRYPTO_memcmp(mac, payload + plen, AMS_PROTO_MAC_BYTES) != 0) {
        OPENSSL_cleanse(key, sizeof key);
        snprintf(what, sizeof what, "%s frame seq %llu", ams_proto_type_name(type),
                 (unsigned long long)seq);
        return reject(d, AMS_PROTO_BAD_MAC, err, what);
    }
    if (seq <= d->last_seq) {
        OPENSSL_cleanse(key, sizeof key);
        snprintf(what, sizeof what, "seq %llu after %llu", (unsigned long long)seq,
                 (unsigned long long)d->last_seq);
        return reject(d, AMS_PROTO_REPLAY, err, what);
    }
    d->last_seq = seq;
    if (d->state == 0 && d->role == AMS_PROTO_ROLE_SERVER) {
        memcpy(d->client_id, id, sizeof id);
        ams_proto_dec_set_key(d, key);
    }
    OPENSSL_cleanse(key, sizeof key);
    if (type == AMS_MSG_BYE || type == AMS_MSG_ERROR) d->state = 2;
    else if (d->state == 0) d->state = 1;
    f->type = type;
    f->seq = seq;
    f->payload = payload;
    f->len = plen;
    *used = total;
    return AMS_PROTO_OK;
}
