/* proto.h - the AMS wire protocol ("AMSP", version 1): authenticated frames over TCP, the
 * messages they carry, and an incremental decoder that turns socket bytes into verified frames
 * or a precise rejection. docs/protocol.md is the normative description; this header is its
 * C contract.
 *
 *     ams_proto_dec d;                              // one per connection and direction
 *     ams_proto_dec_init(&d, AMS_PROTO_ROLE_SERVER); // expects a hello first
 *     d.key_lookup = my_lookup; d.key_ctx = keys;    // client id -> pre-shared key
 *     size_t used; ams_proto_frame f;
 *     for (;;) {                                     // rbuf holds rlen received bytes
 *         ams_proto_reject why = ams_proto_dec_next(&d, rbuf, rlen, &f, &used, &err);
 *         if (why != AMS_PROTO_OK) { send error, close; break; }
 *         if (used == 0) break;                      // need more bytes
 *         handle(&f); consume(used);                 // f.payload points into rbuf
 *     }
 *
 * FRAME (little endian):
 *   off size
 *     0   4  magic "AMSP"
 *     4   2  version (1)
 *     6   1  type (ams_proto_type)
 *     7   1  flags (0; every bit reserved)
 *     8   8  sequence number: 1 for the first frame a side sends on a connection, then strictly
 *            increasing (the decoder rejects seq <= the last accepted one: replay protection)
 *    16   4  payload length (<= the type's maximum, ams_proto_max_payload)
 *    20   .  payload
 *   end  32  HMAC-SHA256 over bytes 0 .. 20+length-1 (header and payload)
 * Keys: a hello and the welcome that answers it are MACed with the client's 32-byte
 * pre-shared key; every later frame, both directions, with the session key
 * HMAC-SHA256(psk, "AMSP session v1" || client nonce || server nonce), so a frame recorded on
 * one connection never verifies on another (the server nonce is fresh per connection).
 *
 * Thread rules: plain values; one decoder per connection direction, one thread at a time.
 * Every byte that reaches the decoder is untrusted: lengths are checked against the type's
 * maximum before any payload is buffered, and the MAC before any payload is parsed.
 */
#ifndef AMS_PROTO_H
#define AMS_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "ams/status.h"
#include "ams/weights_hash.h"

#define AMS_PROTO_MAGIC "AMSP"
#define AMS_PROTO_VERSION 1
#define AMS_PROTO_HEADER_BYTES 20
#define AMS_PROTO_MAC_BYTES 32
#define AMS_PROTO_KEY_BYTES 32
#define AMS_PROTO_NONCE_BYTES 16
#define AMS_PROTO_ID_MAX 64      /* client id bytes: [A-Za-z0-9_.-], 1..64 */
#define AMS_PROTO_MODEL_MAX 128  /* model id bytes in a hello */
#define AMS_PROTO_MAX_FRAME (((size_t)8 << 20) + AMS_PROTO_HEADER_BYTES + AMS_PROTO_MAC_BYTES)

/* Wire values: append-only; a removed type stays as a tombstone comment. */
typedef enum {
    AMS_MSG_HELLO = 1,   /* c->s: id, model, capabilities, resume version + hash, nonce (1 KB) */
    AMS_MSG_WELCOME = 2, /* s->c: session version + hash, server nonce (1 KB) */
    AMS_MSG_UPLOAD = 3,  /* c->s: one H.264 sample chunk + timestamps (4 MB) */
    AMS_MSG_UPDATE = 4,  /* s->c: version, result hash, AMSU codec bytes (8 MB) */
    AMS_MSG_ACK = 5,     /* both: acknowledges a frame (64 B) */
    AMS_MSG_STATS = 6,   /* both: one JSON object (64 KB) */
    AMS_MSG_ERROR = 7,   /* both: code + one line of text (1 KB); the sender then closes */
    AMS_MSG_BYE = 8,     /* both: orderly close, optional reason (256 B) */
} ams_proto_type;
#define AMS_MSG_TYPE_MAX 8

/* Largest payload of a type (the table in docs/protocol.md); 0 for an unknown type. */
size_t ams_proto_max_payload(int type);
const char *ams_proto_type_name(int type);

/* Why a frame was rejected. Wire values (the error message's code): append-only. */
typedef enum {
    AMS_PROTO_OK = 0,
    AMS_PROTO_BAD_MAGIC = 1,    /* the first four bytes are not "AMSP" */
    AMS_PROTO_BAD_VERSION = 2,  /* a version other than 1 */
    AMS_PROTO_BAD_TYPE = 3,     /* unknown type, or nonzero flags */
    AMS_PROTO_OVERSIZED = 4,    /* payload length above the type's maximum */
    AMS_PROTO_BAD_MAC = 5,      /* HMAC does not verify (wrong key, corrupted, forged) */
    AMS_PROTO_REPLAY = 6,       /* sequence number not above the last accepted one */
    AMS_PROTO_OUT_OF_ORDER = 7, /* a type not allowed in the session's current state */
    AMS_PROTO_BAD_PAYLOAD = 8,  /* MAC fine but the payload does not parse */
    AMS_PROTO_UNKNOWN_CLIENT = 9, /* hello from a client id without a key */
    AMS_PROTO_CLOSED = 10,      /* a frame after bye or error */
    AMS_PROTO_INTERNAL = 11,    /* libcrypto failed (not the peer's fault) */
} ams_proto_reject;
const char *ams_proto_reject_name(ams_proto_reject r);

typedef enum {
    AMS_PROTO_ROLE_SERVER = 0, /* decodes what a client sends: hello first */
    AMS_PROTO_ROLE_CLIENT = 1, /* decodes what a server sends: welcome (or error) first */
} ams_proto_role;

/* Decoder state for one direction of one connection. */
typedef struct ams_proto_dec {
    ams_proto_role role;
    int state;                             /* 0 handshake, 1 established, 2 closed */
    uint64_t last_seq;                     /* last accepted sequence number (0: none) */
    int have_key;                          /* key valid (client: the psk; server: after hello) */
    uint8_t key[AMS_PROTO_KEY_BYTES];      /* current MAC key */
    /* server role: key of a client id; 1 found, 0 unknown. Called from ams_proto_dec_next. */
    int (*key_lookup)(void *ctx, const char *id, uint8_t key[AMS_PROTO_KEY_BYTES]);
    void *key_ctx;
    char client_id[AMS_PROTO_ID_MAX + 1];  /* server role: the authenticated id after hello */
} ams_proto_dec;

void ams_proto_dec_init(ams_proto_dec *d, ams_proto_role role);
/* Sets the MAC key (client: its psk before the welcome; both: the session key afterwards). */
void ams_proto_dec_set_key(ams_proto_dec *d, const uint8_t key[AMS_PROTO_KEY_BYTES]);

typedef struct ams_proto_frame {
    int type;               /* ams_proto_type */
    uint64_t seq;
    const uint8_t *payload; /* points into the caller's buffer */
    uint32_t len;
} ams_proto_frame;

/* Looks at the len bytes at buf (the start of the unconsumed input). Returns AMS_PROTO_OK with
 * *used = 0 when more bytes are needed (a header that is already invalid is rejected at once,
 * without waiting for its payload), AMS_PROTO_OK with *used = frame bytes and *f filled for a
 * verified frame, or the rejection (err says what, with the numbers). Accepting a hello (server)
 * or welcome (client) moves the decoder to the established state; the caller then installs the
 * session key with ams_proto_dec_set_key. An error or bye closes the decoder. */
ams_proto_reject ams_proto_dec_next(ams_proto_dec *d, const uint8_t *buf, size_t len,
                                    ams_proto_frame *f, size_t *used, ams_err *err);

/* Encoder: appends one frame to a growable buffer. */
typedef struct ams_proto_buf {
    uint8_t *data;
    size_t len, cap;
} ams_proto_buf;
void ams_proto_buf_free(ams_proto_buf *b);
/* Drops the first n bytes (sent). */
void ams_proto_buf_consume(ams_proto_buf *b, size_t n);

/* Appends a frame of `type` with sequence number seq (the caller's counter: 1, 2, ...) and
 * len payload bytes, MACed with key. @return AMS_OK, AMS_E_RANGE (len above the type's
 * maximum), AMS_E_INVAL (unknown type), AMS_E_NOMEM, AMS_E_INTERNAL (libcrypto). */
ams_status ams_proto_encode(ams_proto_buf *out, int type, uint64_t seq,
                            const uint8_t key[AMS_PROTO_KEY_BYTES], const void *payload,
                            size_t len, ams_err *err);

/* The session key of a connection. */
ams_status ams_proto_session_key(const uint8_t psk[AMS_PROTO_KEY_BYTES],
                                 const uint8_t cnonce[AMS_PROTO_NONCE_BYTES],
                                 const uint8_t snonce[AMS_PROTO_NONCE_BYTES],
                                 uint8_t out[AMS_PROTO_KEY_BYTES], ams_err *err);

/* ---- message payloads (fixed little-endian layouts, docs/protocol.md) ---- */

typedef struct ams_msg_hello {
    char client_id[AMS_PROTO_ID_MAX + 1];  /* NUL-terminated */
    char model_id[AMS_PROTO_MODEL_MAX + 1]; /* NUL-terminated, may be empty */
    uint32_t caps;                         /* capability bits (none defined: 0) */
    uint64_t last_version;                 /* version of the weights the client holds */
    uint8_t weights_hash[AMS_HASH_LEN];    /* hash of the weights the client holds */
    uint8_t nonce[AMS_PROTO_NONCE_BYTES];  /* fresh random per connection */
} ams_msg_hello;

typedef struct ams_msg_welcome {
    uint64_t version;                     /* the session's model version on the server */
    uint8_t weights_hash[AMS_HASH_LEN];   /* the server's copy of the client's weights */
    uint8_t nonce[AMS_PROTO_NONCE_BYTES]; /* fresh random per connection */
    uint64_t total;                       /* parameters (floats) of the model */
    double sample_rate;                   /* frames per second to upload (ASR) */
} ams_msg_welcome;

typedef struct ams_msg_upload_head {
    uint32_t frames;   /* frames in the chunk (1..AMS_UPLINK_MAX_FRAMES) */
    uint32_t width, height;
    double fps;        /* sampling rate of the chunk (the encoder's clock) */
    double t_first;    /* video time of the first and last frame, seconds */
    double t_last;
} ams_msg_upload_head;
#define AMS_MSG_UPLOAD_HEAD_BYTES 36

typedef struct ams_msg_update_head {
    uint64_t version;                   /* the model version after applying */
    uint8_t result_hash[AMS_HASH_LEN];  /* hash of the weights after applying */
} ams_msg_update_head;
#define AMS_MSG_UPDATE_HEAD_BYTES 40

typedef struct ams_msg_ack {
    uint8_t type;     /* type of the acknowledged frame */
    uint64_t seq;     /* its sequence number */
    uint64_t version; /* update acks: the version the client now runs */
} ams_msg_ack;
#define AMS_MSG_ACK_BYTES 17

/* Each pack writes into out (capacity cap) and sets *len; each parse checks every byte of an
 * untrusted payload (AMS_E_FORMAT on anything malformed). */
ams_status ams_msg_hello_pack(const ams_msg_hello *m, uint8_t *out, size_t cap, size_t *len,
                              ams_err *err);
ams_status ams_msg_hello_parse(const uint8_t *p, size_t n, ams_msg_hello *m, ams_err *err);
ams_status ams_msg_welcome_pack(const ams_msg_welcome *m, uint8_t *out, size_t cap, size_t *len,
                                ams_err *err);
ams_status ams_msg_welcome_parse(const uint8_t *p, size_t n, ams_msg_welcome *m, ams_err *err);
/* The upload's H.264 bytes follow the head: p + AMS_MSG_UPLOAD_HEAD_BYTES. */
void ams_msg_upload_head_pack(const ams_msg_upload_head *m, uint8_t out[AMS_MSG_UPLOAD_HEAD_BYTES]);
ams_status ams_msg_upload_head_parse(const uint8_t *p, size_t n, ams_msg_upload_head *m,
                                     ams_err *err);
/* The update's codec bytes follow the head: p + AMS_MSG_UPDATE_HEAD_BYTES. */
void ams_msg_update_head_pack(const ams_msg_update_head *m, uint8_t out[AMS_MSG_UPDATE_HEAD_BYTES]);
ams_status ams_msg_update_head_parse(const uint8_t *p, size_t n, ams_msg_update_head *m,
                                     ams_err *err);
void ams_msg_ack_pack(const ams_msg_ack *m, uint8_t out[AMS_MSG_ACK_BYTES]);
ams_status ams_msg_ack_parse(const uint8_t *p, size_t n, ams_msg_ack *m, ams_err *err);
/* Error: u16 code (ams_proto_reject or 100+ for application errors) then text (<= 1000 bytes,
 * printable ASCII; parse replaces anything else by '?'). text receives NUL-terminated text. */
ams_status ams_msg_error_pack(int code, const char *text, uint8_t *out, size_t cap, size_t *len,
                              ams_err *err);
ams_status ams_msg_error_parse(const uint8_t *p, size_t n, int *code, char *text, size_t text_cap,
                               ams_err *err);

/* 1 if s is a valid client id (1..AMS_PROTO_ID_MAX of [A-Za-z0-9_.-], not starting with '.'). */
int ams_proto_id_valid(const char *s);

#endif
