/* test_net_frame.c - AMSP framing and messages: bytes and MAC against Python's hmac (the
 * documented layout), round trips fed whole and byte by byte, every rejection class of the
 * decoder, the per-type limits, and the message payload parsers. */
#include <stdint.h>
#include <string.h>

#include "ams/proto.h"
#include "check.h"

static const uint8_t K1[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                               17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
static const uint8_t K2[32] = {9};

static int lookup(void *ctx, const char *id, uint8_t key[32]) {
    (void)ctx;
    if (strcmp(id, "cam1")) return 0;
    memcpy(key, K1, 32);
    return 1;
}

static void server_dec(ams_proto_dec *d) {
    ams_proto_dec_init(d, AMS_PROTO_ROLE_SERVER);
    d->key_lookup = lookup;
}

static int hexeq(const uint8_t *b, size_t n, const char *hex) {
    static const char digits[] = "0123456789abcdef";
    if (strlen(hex) != 2 * n) return 0;
    for (size_t i = 0; i < n; i++)
        if (hex[2 * i] != digits[b[i] >> 4] || hex[2 * i + 1] != digits[b[i] & 15]) return 0;
    return 1;
}

/* a valid hello frame for id (seq 1) MACed with key */
static int make_hello(ams_proto_buf *b, const char *id, const uint8_t *key, uint64_t seq) {
    ams_msg_hello h = {.caps = 0, .last_version = 3};
    strcpy(h.client_id, id);
    strcpy(h.model_id, "selfie");
    memset(h.weights_hash, 0xab, sizeof h.weights_hash);
    memset(h.nonce, 0x11, sizeof h.nonce);
    uint8_t p[1024];
    size_t n;
    ams_err e = {0};
    if (ams_msg_hello_pack(&h, p, sizeof p, &n, &e) != AMS_OK) return 0;
    return ams_proto_encode(b, AMS_MSG_HELLO, seq, key, p, n, &e) == AMS_OK;
}

/* Python: hmac.new(bytes(range(32)), hdr + payload, sha256) for an ACK frame, seq 42 */
static int test_known_answer(void) {
    uint8_t key[32];
    for (int i = 0; i < 32; i++) key[i] = (uint8_t)i;
    uint8_t ack[AMS_MSG_ACK_BYTES];
    ams_msg_ack_pack(&(ams_msg_ack){.type = 5, .seq = 7, .version = 3}, ack);
    ams_proto_buf b = {0};
    ams_err e = {0};
    CHECK(ams_proto_encode(&b, AMS_MSG_ACK, 42, key, ack, sizeof ack, &e) == AMS_OK);
    CHECK(b.len == 20 + 17 + 32);
    CHECK(hexeq(b.data, 37, "414d5350010005002a000000000000001100000005070000000000000003000000"
                            "00000000"));
    CHECK(hexeq(b.data + 37, 32,
                "8ddb304bae03c2d6241a3545745094127e2ecf2806944abd8bd8773d49858624"));
    uint8_t cn[16], sn[16], sk[32];
    memset(cn, 1, 16);
    memset(sn, 2, 16);
    CHECK(ams_proto_session_key(key, cn, sn, sk, &e) == AMS_OK);
    CHECK(hexeq(sk, 32, "b066f480bb1a7f59df707ef24e143fb9859260a4ef102bc8d6d05dfe0dbecc56"));
    ams_proto_buf_free(&b);
    return 0;
}

/* hello + uploads + bye through the server decoder, whole and byte by byte */
static int test_round_trip(void) {
    for (int bytewise = 0; bytewise < 2; bytewise++) {
        ams_proto_buf b = {0};
        ams_err e = {0};
        CHECK(make_hello(&b, "cam1", K1, 1));
        uint8_t up[1000];
        for (int i = 0; i < 1000; i++) up[i] = (uint8_t)(i * 7);
        CHECK(ams_proto_encode(&b, AMS_MSG_UPLOAD, 2, K1, up, sizeof up, &e) == AMS_OK);
        CHECK(ams_proto_encode(&b, AMS_MSG_STATS, 5, K1, "{}", 2, &e) == AMS_OK); /* gap ok */
        CHECK(ams_proto_encode(&b, AMS_MSG_BYE, 6, K1, NULL, 0, &e) == AMS_OK);
        ams_proto_dec d;
        server_dec(&d);
        int types[8], nt = 0;
        size_t off = 0, avail = bytewise ? 0 : b.len;
        while (off < b.len) {
            if (bytewise && avail < b.len) avail++;
            ams_proto_frame f;
            size_t used;
            CHECK(ams_proto_dec_next(&d, b.data + off, avail - off, &f, &used, &e) ==
                  AMS_PROTO_OK);
            if (!used) {
                CHECK(bytewise);
                continue;
            }
            CHECK(nt < 8);
            types[nt++] = f.type;
            if (f.type == AMS_MSG_HELLO) {
                CHECK(!strcmp(d.client_id, "cam1"));
                ams_msg_hello h;
                CHECK(ams_msg_hello_parse(f.payload, f.len, &h, &e) == AMS_OK);
                CHECK(!strcmp(h.model_id, "selfie") && h.last_version == 3);
                CHECK(h.weights_hash[31] == 0xab && h.nonce[0] == 0x11);
            }
            if (f.type == AMS_MSG_UPLOAD) CHECK(f.len == 1000 && !memcmp(f.payload, up, 1000));
            off += used;
        }
        CHECK(nt == 4);
        CHECK(types[0] == AMS_MSG_HELLO && types[1] == AMS_MSG_UPLOAD &&
              types[2] == AMS_MSG_STATS && types[3] == AMS_MSG_BYE);
        CHECK(d.last_seq == 6 && d.state == 2);
        ams_proto_buf_free(&b);
    }
    return 0;
}

/* Runs a server decoder over hello(seq 1) + the frame in b2 and returns the verdict of b2. */
static ams_proto_reject verdict_after_hello(const uint8_t *bytes, size_t n) {
    ams_proto_buf b = {0};
    ams_err e = {0};
    if (!make_hello(&b, "cam1", K1, 1)) return AMS_PROTO_INTERNAL;
    ams_proto_dec d;
    server_dec(&d);
    ams_proto_frame f;
    size_t used;
    if (ams_proto_dec_next(&d, b.data, b.len, &f, &used, &e) != AMS_PROTO_OK || !used)
        return AMS_PROTO_INTERNAL;
    ams_proto_buf_free(&b);
    ams_proto_reject r = ams_proto_dec_next(&d, bytes, n, &f, &used, &e);
    if (r == AMS_PROTO_OK && used == 0) return (ams_proto_reject)-1; /* wants more */
    return r;
}

static int test_rejections(void) {
    ams_err e = {0};
    ams_proto_buf b = {0};
    uint8_t pay[64] = {0};
    CHECK(ams_proto_encode(&b, AMS_MSG_STATS, 2, K1, pay, 10, &e) == AMS_OK);
    size_t n = b.len;
    uint8_t fr[256];
    memcpy(fr, b.data, n);
    CHECK(verdict_after_hello(fr, n) == AMS_PROTO_OK);
    uint8_t t[256];
    /* bad magic: visible from the first byte */
    memcpy(t, fr, n), t[0] = 'X';
    CHECK(verdict_after_hello(t, 1) == AMS_PROTO_BAD_MAGIC);
    memcpy(t, fr, n), t[3] = 'Q';
    CHECK(verdict_after_hello(t, 4) == AMS_PROTO_BAD_MAGIC);
    memcpy(t, fr, n), t[4] = 2;
    CHECK(verdict_after_hello(t, 20) == AMS_PROTO_BAD_VERSION);
    memcpy(t, fr, n), t[6] = 99;
    CHECK(verdict_after_hello(t, 20) == AMS_PROTO_BAD_TYPE);
    memcpy(t, fr, n), t[7] = 1;
    CHECK(verdict_after_hello(t, 20) == AMS_PROTO_BAD_TYPE);
    /* oversized: rejected from the header alone, no payload buffered */
    memcpy(t, fr, n), t[16] = 0x01, t[17] = 0x00, t[18] = 0x01; /* 65537 > 64 KB */
    CHECK(verdict_after_hello(t, 20) == AMS_PROTO_OVERSIZED);
    memcpy(t, fr, n), t[19] = 0x80;
    CHECK(verdict_after_hello(t, 20) == AMS_PROTO_OVERSIZED);
    /* truncation: never a verdict, just "more" */
    for (size_t k = 0; k < n; k++) CHECK(verdict_after_hello(fr, k) == (ams_proto_reject)-1);
    /* every single bit flip in the frame is caught */
    for (size_t bit = 0; bit < n * 8; bit++) {
        memcpy(t, fr, n);
        t[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        ams_proto_reject r = verdict_after_hello(t, n);
        CHECKF(r != AMS_PROTO_OK, "bit %zu accepted", bit);
    }
    /* a bit flip in the payload or MAC is a bad MAC */
    memcpy(t, fr, n), t[22] ^= 4;
    CHECK(verdict_after_hello(t, n) == AMS_PROTO_BAD_MAC);
    memcpy(t, fr, n), t[n - 1] ^= 0x80;
    CHECK(verdict_after_hello(t, n) == AMS_PROTO_BAD_MAC);
    /* wrong key */
    ams_proto_buf w = {0};
    CHECK(ams_proto_encode(&w, AMS_MSG_STATS, 2, K2, pay, 10, &e) == AMS_OK);
    CHECK(verdict_after_hello(w.data, w.len) == AMS_PROTO_BAD_MAC);
    ams_proto_buf_free(&w);
    /* replay: seq 1 again (the hello's), and the same frame twice */
    CHECK(ams_proto_encode(&w, AMS_MSG_STATS, 1, K1, pay, 10, &e) == AMS_OK);
    CHECK(verdict_after_hello(w.data, w.len) == AMS_PROTO_REPLAY);
    ams_proto_buf_free(&w);
    {
        ams_proto_buf h = {0};
        CHECK(make_hello(&h, "cam1", K1, 1));
        ams_proto_dec d;
        server_dec(&d);
        ams_proto_frame f;
        size_t used;
        CHECK(ams_proto_dec_next(&d, h.data, h.len, &f, &used, &e) == AMS_PROTO_OK && used);
        CHECK(ams_proto_dec_next(&d, fr, n, &f, &used, &e) == AMS_PROTO_OK && used == n);
        CHECK(ams_proto_dec_next(&d, fr, n, &f, &used, &e) == AMS_PROTO_REPLAY);
        CHECK(strstr(e.msg, "seq 2 after 2") != NULL);
        /* a rejected stream stays closed */
        CHECK(ams_proto_dec_next(&d, fr, n, &f, &used, &e) == AMS_PROTO_CLOSED);
        ams_proto_buf_free(&h);
    }
    /* out of order: upload before hello, hello twice, update sent to a server */
    {
        ams_proto_dec d;
        server_dec(&d);
        ams_proto_frame f;
        size_t used;
        ams_proto_buf u = {0};
        CHECK(ams_proto_encode(&u, AMS_MSG_UPLOAD, 1, K1, pay, 40, &e) == AMS_OK);
        CHECK(ams_proto_dec_next(&d, u.data, 20, &f, &used, &e) == AMS_PROTO_OUT_OF_ORDER);
        ams_proto_buf_free(&u);
        ams_proto_buf h = {0};
        CHECK(make_hello(&h, "cam1", K1, 2));
        CHECK(verdict_after_hello(h.data, h.len) == AMS_PROTO_OUT_OF_ORDER);
        ams_proto_buf_free(&h);
        CHECK(ams_proto_encode(&u, AMS_MSG_UPDATE, 2, K1, pay, 40, &e) == AMS_OK);
        CHECK(verdict_after_hello(u.data, u.len) == AMS_PROTO_OUT_OF_ORDER);
        ams_proto_buf_free(&u);
    }
    /* unknown client, hello with a bad MAC, malformed hello with a good MAC */
    {
        ams_proto_dec d;
        ams_proto_frame f;
        size_t used;
        ams_proto_buf h = {0};
        CHECK(make_hello(&h, "cam2", K1, 1));
        server_dec(&d);
        CHECK(ams_proto_dec_next(&d, h.data, h.len, &f, &used, &e) == AMS_PROTO_UNKNOWN_CLIENT);
        ams_proto_buf_free(&h);
        CHECK(make_hello(&h, "cam1", K2, 1));
        server_dec(&d);
        CHECK(ams_proto_dec_next(&d, h.data, h.len, &f, &used, &e) == AMS_PROTO_BAD_MAC);
        ams_proto_buf_free(&h);
        uint8_t bad[8] = {3, 'c', 'a', 'm'}; /* id length ok, nothing after */
        CHECK(ams_proto_encode(&h, AMS_MSG_HELLO, 1, K1, bad, 4, &e) == AMS_OK);
        server_dec(&d);
        CHECK(ams_proto_dec_next(&d, h.data, h.len, &f, &used, &e) == AMS_PROTO_BAD_PAYLOAD);
        ams_proto_buf_free(&h);
    }
    /* client side: an upload from the server is out of order; a welcome first is fine */
    {
        ams_proto_dec d;
        ams_proto_dec_init(&d, AMS_PROTO_ROLE_CLIENT);
        ams_proto_dec_set_key(&d, K1);
        ams_proto_frame f;
        size_t used;
        ams_proto_buf u = {0};
        CHECK(ams_proto_encode(&u, AMS_MSG_UPDATE, 1, K1, pay, 40, &e) == AMS_OK);
        CHECK(ams_proto_dec_next(&d, u.data, u.len, &f, &used, &e) == AMS_PROTO_OUT_OF_ORDER);
        ams_proto_buf_free(&u);
    }
    ams_proto_buf_free(&b);
    return 0;
}

static int test_limits(void) {
    ams_err e = {0};
    static const int types[] = {AMS_MSG_HELLO, AMS_MSG_UPLOAD, AMS_MSG_UPDATE, AMS_MSG_ACK,
                                AMS_MSG_STATS, AMS_MSG_ERROR,  AMS_MSG_BYE};
    CHECK(ams_proto_max_payload(AMS_MSG_UPLOAD) == 4u << 20);
    CHECK(ams_proto_max_payload(AMS_MSG_UPDATE) == 8u << 20);
    CHECK(ams_proto_max_payload(AMS_MSG_HELLO) == 1024);
    CHECK(ams_proto_max_payload(AMS_MSG_STATS) == 64u << 10);
    CHECK(ams_proto_max_payload(0) == 0 && ams_proto_max_payload(9) == 0);
    uint8_t *big = calloc(1, (8u << 20) + 1);
    CHECK(big);
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        size_t m = ams_proto_max_payload(types[i]);
        ams_proto_buf b = {0};
        CHECK(ams_proto_encode(&b, types[i], 1, K1, big, m + 1, &e) == AMS_E_RANGE);
        CHECK(ams_proto_encode(&b, types[i], 1, K1, big, m, &e) == AMS_OK);
        CHECK(b.len == m + 52);
        ams_proto_buf_free(&b);
    }
    CHECK(ams_proto_encode(&(ams_proto_buf){0}, 42, 1, K1, big, 0, &e) == AMS_E_INVAL);
    /* an upload of exactly 4 MB passes the server decoder; 4 MB + 1 (forged header) does not */
    ams_proto_buf b = {0};
    CHECK(ams_proto_encode(&b, AMS_MSG_UPLOAD, 2, K1, big, 4u << 20, &e) == AMS_OK);
    CHECK(verdict_after_hello(b.data, b.len) == AMS_PROTO_OK);
    b.data[16] = 1; /* length 4 MB + 1 */
    CHECK(verdict_after_hello(b.data, 20) == AMS_PROTO_OVERSIZED);
    ams_proto_buf_free(&b);
    free(big);
    return 0;
}

static int test_messages(void) {
    ams_err e = {0};
    uint8_t p[2048];
    size_t n;
    ams_msg_hello h = {0}, h2;
    strcpy(h.client_id, "edge-01.a_b");
    CHECK(ams_msg_hello_pack(&h, p, sizeof p, &n, &e) == AMS_OK);
    CHECK(ams_msg_hello_parse(p, n, &h2, &e) == AMS_OK && !strcmp(h2.client_id, "edge-01.a_b"));
    CHECK(h2.model_id[0] == 0);
    CHECK(ams_msg_hello_parse(p, n - 1, &h2, &e) == AMS_E_FORMAT);
    CHECK(ams_msg_hello_parse(p, n + 1, &h2, &e) == AMS_E_FORMAT);
    p[1] = '/';
    CHECK(ams_msg_hello_parse(p, n, &h2, &e) == AMS_E_FORMAT);
    strcpy(h.client_id, "../etc");
    CHECK(ams_msg_hello_pack(&h, p, sizeof p, &n, &e) == AMS_E_INVAL);
    CHECK(!ams_proto_id_valid("") && !ams_proto_id_valid(".hidden") && !ams_proto_id_valid("a b"));
    CHECK(ams_proto_id_valid("cam1"));

    ams_msg_welcome w = {.version = 9, .total = 1234, .sample_rate = 0.5}, w2;
    w.nonce[15] = 7;
    CHECK(ams_msg_welcome_pack(&w, p, sizeof p, &n, &e) == AMS_OK);
    CHECK(ams_msg_welcome_parse(p, n, &w2, &e) == AMS_OK);
    CHECK(w2.version == 9 && w2.total == 1234 && w2.sample_rate == 0.5 && w2.nonce[15] == 7);

    ams_msg_upload_head u = {.frames = 3, .width = 64, .height = 48, .fps = 1, .t_first = 1,
                             .t_last = 3},
                        u2;
    ams_msg_upload_head_pack(&u, p);
    CHECK(ams_msg_upload_head_parse(p, AMS_MSG_UPLOAD_HEAD_BYTES, &u2, &e) == AMS_OK);
    CHECK(u2.frames == 3 && u2.width == 64 && u2.height == 48 && u2.t_last == 3);
    u.t_last = 0.5; /* before t_first */
    ams_msg_upload_head_pack(&u, p);
    CHECK(ams_msg_upload_head_parse(p, AMS_MSG_UPLOAD_HEAD_BYTES, &u2, &e) == AMS_E_FORMAT);
    u.t_last = 3, u.width = 17;
    ams_msg_upload_head_pack(&u, p);
    CHECK(ams_msg_upload_head_parse(p, AMS_MSG_UPLOAD_HEAD_BYTES, &u2, &e) == AMS_E_FORMAT);
    u.width = 64, u.frames = 0;
    ams_msg_upload_head_pack(&u, p);
    CHECK(ams_msg_upload_head_parse(p, AMS_MSG_UPLOAD_HEAD_BYTES, &u2, &e) == AMS_E_FORMAT);

    ams_msg_ack a;
    ams_msg_ack_pack(&(ams_msg_ack){.type = 4, .seq = 77, .version = 5}, p);
    CHECK(ams_msg_ack_parse(p, AMS_MSG_ACK_BYTES, &a, &e) == AMS_OK && a.seq == 77 && a.version == 5);
    p[0] = 0;
    CHECK(ams_msg_ack_parse(p, AMS_MSG_ACK_BYTES, &a, &e) == AMS_E_FORMAT);

    int code;
    char text[32];
    CHECK(ams_msg_error_pack(5, "bad\nmac", p, sizeof p, &n, &e) == AMS_OK);
    CHECK(ams_msg_error_parse(p, n, &code, text, sizeof text, &e) == AMS_OK);
    CHECK(code == 5 && !strcmp(text, "bad?mac"));
    CHECK(ams_msg_error_parse(p, 1, &code, text, sizeof text, &e) == AMS_E_FORMAT);
    return 0;
}

int main(int argc, char **argv) {
    static const check_case cases[] = {
        {"known_answer", test_known_answer}, {"round_trip", test_round_trip},
        {"rejections", test_rejections},     {"limits", test_limits},
        {"messages", test_messages},
    };
    return check_run(cases, sizeof cases / sizeof cases[0], argc, argv);
}
