/* messages.c - pack and parse the AMSP message payloads (hello, welcome, upload and update
 * heads, ack, error); parsing checks every byte of untrusted input. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ams/proto.h"
#include "ams/uplink.h"
#include "ams/video.h"
#include "net/wire.h"

int ams_proto_id_valid(const char *s) {
    size_t n = strlen(s);
    if (n < 1 || n > AMS_PROTO_ID_MAX || s[0] == '.') return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return 0;
    }
    return 1;
}

static int model_valid(const char *s) {
    for (; *s; s++)
        if (*s < 0x21 || *s > 0x7e) return 0;
    return 1;
}

ams_status ams_msg_hello_pack(const ams_msg_hello *m, uint8_t *out, size_t cap, size_t *len,
                              ams_err *err) {
    size_t il = strlen(m->client_id), ml = strlen(m->model_id);
    AMS_FAIL_IF(!ams_proto_id_valid(m->client_id), err, AMS_E_INVAL, "bad client id '%s'",
                m->client_id);
    AMS_FAIL_IF(ml > AMS_PROTO_MODEL_MAX || !model_valid(m->model_id), err, AMS_E_INVAL,
                "bad model id");
    size_t n = 1 + il + 1 + ml + 4 + 8 + AMS_HASH_LEN + AMS_PROTO_NONCE_BYTES;
    AMS_FAIL_IF(n > cap, err, AMS_E_NOMEM, "hello needs %zu bytes, have %zu", n, cap);
    uint8_t *p = out;
    *p++ = (uint8_t)il;
    memcpy(p, m->client_id, il), p += il;
    *p++ = (uint8_t)ml;
    memcpy(p, m->model_id, ml), p += ml;
    ams_wire_put32(p, m->caps), p += 4;
    ams_wire_put64(p, m->last_version), p += 8;
    memcpy(p, m->weights_hash, AMS_HASH_LEN), p += AMS_HASH_LEN;
    memcpy(p, m->nonce, AMS_PROTO_NONCE_BYTES);
    *len = n;
    return AMS_OK;
}

ams_status ams_msg_hello_parse(const uint8_t *p, size_t n, ams_msg_hello *m, ams_err *err) {
    memset(m, 0, sizeof *m);
    AMS_FAIL_IF(n < 1, err, AMS_E_FORMAT, "hello: empty");
    size_t il = p[0];
    AMS_FAIL_IF(il < 1 || il > AMS_PROTO_ID_MAX || n < 2 + il, err, AMS_E_FORMAT,
                "hello: bad client id length %zu", il);
    size_t ml = p[1 + il];
    size_t want = 1 + il + 1 + ml + 4 + 8 + AMS_HASH_LEN + AMS_PROTO_NONCE_BYTES;
    AMS_FAIL_IF(ml > AMS_PROTO_MODEL_MAX || n != want, err, AMS_E_FORMAT,
                "hello: %zu bytes, expected %zu", n, want);
    memcpy(m->client_id, p + 1, il);
    memcpy(m->model_id, p + 2 + il, ml);
    AMS_FAIL_IF(strlen(m->client_id) != il || !ams_proto_id_valid(m->client_id), err,
                AMS_E_FORMAT, "hello: invalid client id");
    AMS_FAIL_IF(strlen(m->model_id) != ml || !model_valid(m->model_id), err, AMS_E_FORMAT,
                "hello: invalid model id");
    const uint8_t *q = p + 2 + il + ml;
    m->caps = ams_wire_get32(q), q += 4;
    m->last_version = ams_wire_get64(q), q += 8;
    memcpy(m->weights_hash, q, AMS_HASH_LEN), q += AMS_HASH_LEN;
    memcpy(m->nonce, q, AMS_PROTO_NONCE_BYTES);
    return AMS_OK;
}

#define WELCOME_BYTES (8 + AMS_HASH_LEN + AMS_PROTO_NONCE_BYTES + 8 + 8)

ams_status ams_msg_welcome_pack(const ams_msg_welcome *m, uint8_t *out, size_t cap, size_t *len,
                                ams_err *err) {
    AMS_FAIL_IF(cap < WELCOME_BYTES, err, AMS_E_NOMEM, "welcome needs %d bytes", WELCOME_BYTES);
    uint8_t *p = out;
    ams_wire_put64(p, m->version), p += 8;
    memcpy(p, m->weights_hash, AMS_HASH_LEN), p += AMS_HASH_LEN;
    memcpy(p, m->nonce, AMS_PROTO_NONCE_BYTES), p += AMS_PROTO_NONCE_BYTES;
    ams_wire_put64(p, m->total), p += 8;
    ams_wire_putf64(p, m->sample_rate);
    *len = WELCOME_BYTES;
    return AMS_OK;
}

ams_status ams_msg_welcome_parse(const uint8_t *p, size_t n, ams_msg_welcome *m, ams_err *err) {
    memset(m, 0, sizeof *m);
    AMS_FAIL_IF(n != WELCOME_BYTES, err, AMS_E_FORMAT, "welcome: %zu bytes, expected %d", n,
                WELCOME_BYTES);
    m->version = ams_wire_get64(p), p += 8;
    memcpy(m->weights_hash, p, AMS_HASH_LEN), p += AMS_HASH_LEN;
    memcpy(m->nonce, p, AMS_PROTO_NONCE_BYTES), p += AMS_PROTO_NONCE_BYTES;
    m->total = ams_wire_get64(p), p += 8;
    m->sample_rate = ams_wire_getf64(p);
    AMS_FAIL_IF(!isfinite(m->sample_rate) || m->sample_rate < 0 || m->sample_rate > 1000, err,
                AMS_E_FORMAT, "welcome: sample rate out of range");
    return AMS_OK;
}

void ams_msg_upload_head_pack(const ams_msg_upload_head *m,
                              uint8_t out[AMS_MSG_UPLOAD_HEAD_BYTES]) {
    ams_wire_put32(out, m->frames);
    ams_wire_put32(out + 4, m->width);
    ams_wire_put32(out + 8, m->height);
    ams_wire_putf64(out + 12, m->fps);
    ams_wire_putf64(out + 20, m->t_first);
    ams_wire_putf64(out + 28, m->t_last);
}

ams_status ams_msg_upload_head_parse(const uint8_t *p, size_t n, ams_msg_upload_head *m,
                                     ams_err *err) {
    memset(m, 0, sizeof *m);
    AMS_FAIL_IF(n < AMS_MSG_UPLOAD_HEAD_BYTES, err, AMS_E_FORMAT, "upload: %zu bytes", n);
    m->frames = ams_wire_get32(p);
    m->width = ams_wire_get32(p + 4);
    m->height = ams_wire_get32(p + 8);
    m->fps = ams_wire_getf64(p + 12);
    m->t_first = ams_wire_getf64(p + 20);
    m->t_last = ams_wire_getf64(p + 28);
    AMS_FAIL_IF(m->frames < 1 || m->frames > AMS_UPLINK_MAX_FRAMES, err, AMS_E_FORMAT,
                "upload: %u frames", m->frames);
    AMS_FAIL_IF(m->width < 16 || m->height < 16 || m->width > AMS_VIDEO_MAX_DIM ||
                    m->height > AMS_VIDEO_MAX_DIM || (m->width & 1) || (m->height & 1),
                err, AMS_E_FORMAT, "upload: frame size %ux%u", m->width, m->height);
    AMS_FAIL_IF(!isfinite(m->fps) || m->fps <= 0 || m->fps > 1000, err, AMS_E_FORMAT,
                "upload: fps out of range");
    AMS_FAIL_IF(!isfinite(m->t_first) || !isfinite(m->t_last) || m->t_first < 0 ||
                    m->t_last < m->t_first || m->t_last > 1e9,
                err, AMS_E_FORMAT, "upload: bad timestamps");
    return AMS_OK;
}

void ams_msg_update_head_pack(const ams_msg_update_head *m,
                              uint8_t out[AMS_MSG_UPDATE_HEAD_BYTES]) {
    ams_wire_put64(out, m->version);
    memcpy(out + 8, m->result_hash, AMS_HASH_LEN);
}

ams_status ams_msg_update_head_parse(const uint8_t *p, size_t n, ams_msg_update_head *m,
                                     ams_err *err) {
    memset(m, 0, sizeof *m);
    AMS_FAIL_IF(n < AMS_MSG_UPDATE_HEAD_BYTES, err, AMS_E_FORMAT, "update: %zu bytes", n);
    m->version = ams_wire_get64(p);
    memcpy(m->result_hash, p + 8, AMS_HASH_LEN);
    return AMS_OK;
}

void ams_msg_ack_pack(const ams_msg_ack *m, uint8_t out[AMS_MSG_ACK_BYTES]) {
    out[0] = m->type;
    ams_wire_put64(out + 1, m->seq);
    ams_wire_put64(out + 9, m->version);
}

ams_status ams_msg_ack_parse(const uint8_t *p, size_t n, ams_msg_ack *m, ams_err *err) {
    memset(m, 0, sizeof *m);
    AMS_FAIL_IF(n != AMS_MSG_ACK_BYTES, err, AMS_E_FORMAT, "ack: %zu bytes", n);
    m->type = p[0];
    m->seq = ams_wire_get64(p + 1);
    m->version = ams_wire_get64(p + 9);
    AMS_FAIL_IF(m->type < 1 || m->type > AMS_MSG_TYPE_MAX, err, AMS_E_FORMAT,
                "ack: bad type %u", m->type);
    return AMS_OK;
}

#define ERROR_TEXT_MAX 1000

ams_status ams_msg_error_pack(int code, const char *text, uint8_t *out, size_t cap, size_t *len,
                              ams_err *err) {
    size_t tl = strlen(text);
    if (tl > ERROR_TEXT_MAX) tl = ERROR_TEXT_MAX;
    AMS_FAIL_IF(cap < 2 + tl || code < 0 || code > 65535, err, AMS_E_INVAL, "error message");
    ams_wire_put16(out, (uint16_t)code);
    for (size_t i = 0; i < tl; i++) {
        char c = text[i];
        out[2 + i] = (uint8_t)(c >= 0x20 && c <= 0x7e ? c : '?');
    }
    *len = 2 + tl;
    return AMS_OK;
}

ams_status ams_msg_error_parse(const uint8_t *p, size_t n, int *code, char *text, size_t text_cap,
                               ams_err *err) {
    AMS_FAIL_IF(n < 2 || n > 2 + ERROR_TEXT_MAX || text_cap < 1, err, AMS_E_FORMAT,
                "error: %zu bytes", n);
    *code = ams_wire_get16(p);
    size_t tl = n - 2;
    if (tl > text_cap - 1) tl = text_cap - 1;
    for (size_t i = 0; i < tl; i++) {
        uint8_t c = p[2 + i];
        text[i] = (char)(c >= 0x20 && c <= 0x7e ? c : '?');
    }
    text[tl] = 0;
    return AMS_OK;
}
