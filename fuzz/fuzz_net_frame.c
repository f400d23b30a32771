/* fuzz_net_frame.c - hostile bytes into the AMSP decoder (server and client roles, fed in
 * chunks whose sizes come from the input) and the message parsers of accepted frames. Never
 * crashes, never reads out of bounds, memory bounded by the input. Input: byte 0 = role (bit 0)
 * and chunk size (bits 1..7), the rest = the stream. The key of "cam1" is bytes 0..31, so seeds
 * with valid MACs reach the post-handshake states. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ams/proto.h"

static int lookup(void *ctx, const char *id, uint8_t key[32]) {
    (void)ctx;
    if (strcmp(id, "cam1")) return 0;
    for (int i = 0; i < 32; i++) key[i] = (uint8_t)i;
    return 1;
}

static void parse_payload(const ams_proto_frame *f) {
    ams_err e = {0};
    union {
        ams_msg_hello h;
        ams_msg_welcome w;
        ams_msg_upload_head u;
        ams_msg_update_head d;
        ams_msg_ack a;
    } m;
    int code;
    char text[64];
    switch (f->type) {
    case AMS_MSG_HELLO: ams_msg_hello_parse(f->payload, f->len, &m.h, &e); break;
    case AMS_MSG_WELCOME: ams_msg_welcome_parse(f->payload, f->len, &m.w, &e); break;
    case AMS_MSG_UPLOAD: ams_msg_upload_head_parse(f->payload, f->len, &m.u, &e); break;
    case AMS_MSG_UPDATE: ams_msg_update_head_parse(f->payload, f->len, &m.d, &e); break;
    case AMS_MSG_ACK: ams_msg_ack_parse(f->payload, f->len, &m.a, &e); break;
    case AMS_MSG_ERROR: ams_msg_error_parse(f->payload, f->len, &code, text, sizeof text, &e); break;
    default: break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1 || size > ((size_t)1 << 20)) return 0;
    int client = data[0] & 1;
    size_t chunk = (size_t)(data[0] >> 1) + 1;
    data++, size--;
    ams_proto_dec d;
    ams_proto_dec_init(&d, client ? AMS_PROTO_ROLE_CLIENT : AMS_PROTO_ROLE_SERVER);
    d.key_lookup = lookup;
    if (client) {
        uint8_t k[32];
        lookup(NULL, "cam1", k);
        ams_proto_dec_set_key(&d, k);
    }
    /* a private copy grows as bytes "arrive", as a socket buffer would */
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    size_t have = 0, off = 0;
    while (have < size) {
        size_t n = size - have < chunk ? size - have : chunk;
        memcpy(buf + have, data + have, n);
        have += n;
        for (;;) {
            ams_proto_frame f;
            size_t used;
            ams_err e = {0};
            ams_proto_reject r = ams_proto_dec_next(&d, buf + off, have - off, &f, &used, &e);
            if (r != AMS_PROTO_OK) goto done;
            if (!used) break;
            if (used > have - off) abort(); /* the decoder claimed bytes it was not given */
            parse_payload(&f);
            off += used;
        }
    }
done:
    free(buf);
    return 0;
}
