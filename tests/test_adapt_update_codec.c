/* test_adapt_update_codec.c - the AMSU update codec and the reference format:
 * - round trip (int8 and fp16): the edge's weights after decode+apply are bit-identical to the
 *   encoder's `applied` and hash the same; the error to the trained weights stays within the
 *   quantization bound; aliasing and empty updates;
 * - corruption: every single-bit flip of the message and every truncation is rejected;
 * - bounds: hand-built messages (this file's own writer, from the format in the header) with
 *   lying counts, lengths, indices, varints, flags and versions are rejected with the right code;
 * - apply: wrong base or wrong result hash leaves the weights exactly as they were;
 * - the reference format: np.packbits bytes worked out by hand, decode(encode), and the sizes of
 *   both formats on a realistic sparse update (printed; ours must be smaller);
 * - the SHA-256 model hash against hashlib vectors. */
#include <zlib.h>
#include <zstd.h>

#include "ams/rng.h"
#include "ams/update_codec.h"
#include "check.h"
#include "selfie_layout.h"

/* base ~ N(0, 0.1); target = base + N(0, 1e-3) on ~5 % of the trainable elements, in runs
 * (mean length 16) as a gradient-chosen mask is clustered. Returns the changed count. */
static size_t realistic_update(const ams_params *p, float *base, float *target, uint64_t seed) {
    ams_rng r;
    ams_rng_seed(&r, seed);
    size_t n = p->total, changed = 0;
    for (size_t i = 0; i < n; i++) target[i] = base[i] = 0.1f * ams_rng_normal(&r);
    size_t want = (size_t)llround(0.05 * (double)n); /* 5,319 as in the PyTorch note */
    while (changed < want) {
        int t = (int)(ams_rng_u64(&r) % (uint64_t)p->count);
        if (!p->info[t].trainable) continue;
        size_t len = 1 + (size_t)(-16.0 * log(1.0 - ams_rng_uniform(&r)));
        size_t start = p->info[t].offset + ams_rng_u64(&r) % (uint64_t)p->info[t].numel;
        size_t end = p->info[t].offset + (size_t)p->info[t].numel;
        for (size_t i = start; i < end && i < start + len && changed < want; i++)
            if (target[i] == base[i]) {
                target[i] = base[i] + 1e-3f * ams_rng_normal(&r);
                changed += target[i] != base[i];
            }
    }
    return changed;
}

static int roundtrip(ams_update_values vals, size_t *msg_bytes) {
    ams_params *p = selfie_layout();
    CHECK(p);
    size_t n = p->total;
    float *base = malloc(n * 4), *target = malloc(n * 4), *applied = malloc(n * 4),
          *edge = malloc(n * 4);
    CHECK(base && target && applied && edge);
    size_t changed = realistic_update(p, base, target, 11);
    ams_update_opts o;
    ams_update_opts_default(&o);
    o.values = vals;
    uint8_t *msg;
    size_t len;
    ams_err err = {0};
    CHECKF(ams_update_encode(p, base, target, &o, &msg, &len, applied, &err) == AMS_OK, "%s",
           err.msg);
    *msg_bytes = len;
    ams_update *u;
    CHECKF(ams_update_decode(msg, len, n, &u, &err) == AMS_OK, "%s", err.msg);
    CHECK(u->total == n && u->count <= changed && u->count > changed * 9 / 10);
    CHECK(u->flags == (vals == AMS_UPDATE_F16 ? AMS_UPDATE_FLAG_F16 : 0));
    memcpy(edge, base, n * 4);
    CHECKF(ams_update_apply(u, edge, n, &err) == AMS_OK, "%s", err.msg);
    CHECK(memcmp(edge, applied, n * 4) == 0); /* bit-identical to the server's copy */
    uint8_t h1[AMS_HASH_LEN], h2[AMS_HASH_LEN];
    CHECK(ams_weights_hash(edge, n, h1, NULL) == AMS_OK);
    CHECK(ams_weights_hash(applied, n, h2, NULL) == AMS_OK);
    CHECK(memcmp(h1, h2, AMS_HASH_LEN) == 0 && memcmp(h1, u->result_hash, AMS_HASH_LEN) == 0);
    /* error vs the trained weights: per tensor, int8 <= scale/2 (+ rounding), fp16 <= 2^-11 |d| */
    for (int t = 0; t < p->count; t++) {
        const ams_param_info *pi = &p->info[t];
        double amax = 0;
        for (size_t i = pi->offset; i < pi->offset + (size_t)pi->numel; i++)
            amax = fmax(amax, fabs((double)target[i] - base[i]));
        for (size_t i = pi->offset; i < pi->offset + (size_t)pi->numel; i++) {
            double d = (double)target[i] - base[i], e = fabs((double)edge[i] - target[i]);
            /* quantization (fp16 subnormals: 2^-25 absolute), plus the float32 rounding of base + delta (<= 2^-24 |x|) */
            double bound = (vals == AMS_UPDATE_F16 ? fmax(fabs(d) * 0x1p-11, 0x1p-25) : amax / 127 * 0.5 * 1.0001) +
                           fabs((double)target[i]) * 0x1p-23;
            CHECKF(e <= bound, "tensor %d element %zu: error %g > %g", t, i, e, bound);
            if (d == 0) CHECK(edge[i] == base[i]);
        }
    }
    /* the encoder may write applied into base (the server's mirror, in place) */
    float *mirror = malloc(n * 4);
    CHECK(mirror);
    memcpy(mirror, base, n * 4);
    uint8_t *msg2;
    size_t len2;
    CHECK(ams_update_encode(p, mirror, target, &o, &msg2, &len2, mirror, &err) == AMS_OK);
    CHECK(len2 == len && memcmp(msg, msg2, len) == 0 && memcmp(mirror, applied, n * 4) == 0);
    free(msg2);
    /* a second update from the mirror: nothing left but the quantization residue */
    CHECK(ams_update_encode(p, mirror, mirror, &o, &msg2, &len2, NULL, &err) == AMS_OK);
    ams_update *u2;
    CHECK(ams_update_decode(msg2, len2, 0, &u2, &err) == AMS_OK && u2->count == 0);
    memcpy(edge, mirror, n * 4);
    CHECK(ams_update_apply(u2, edge, n, &err) == AMS_OK && memcmp(edge, mirror, n * 4) == 0);
    ams_update_free(u2);
    free(msg2);
    free(mirror);
    ams_update_free(u);
    free(msg);
    free(base);
    free(target);
    free(applied);
    free(edge);
    ams_params_free(p);
    return 0;
}

static int test_roundtrip_int8(void) {
    size_t bytes;
    return roundtrip(AMS_UPDATE_INT8, &bytes);
}

static int test_roundtrip_f16(void) {
    size_t bytes;
    return roundtrip(AMS_UPDATE_F16, &bytes);
}

/* A 3-tensor update small enough to flip every bit of. */
static int small_message(uint8_t **msg, size_t *len, float **base, size_t *n) {
    ams_params *p = ams_params_new();
    CHECK(p);
    CHECK(ams_params_add(p, "a", 1, (int64_t[]){40}, 1, NULL) >= 0);
    CHECK(ams_params_add(p, "b", 1, (int64_t[]){8}, 0, NULL) >= 0);
    CHECK(ams_params_add(p, "c", 1, (int64_t[]){50}, 1, NULL) >= 0);
    CHECK(ams_params_alloc(p, NULL) == AMS_OK);
    *n = p->total;
    float *b = malloc(*n * 4), *t = malloc(*n * 4);
    CHECK(b && t);
    for (size_t i = 0; i < *n; i++) b[i] = t[i] = (float)i * 0.01f;
    for (size_t i = 3; i < 90; i += 4) t[i] += 0.001f * (float)(i % 7 + 1);
    ams_update_opts o;
    ams_update_opts_default(&o);
    CHECK(ams_update_encode(p, b, t, &o, msg, len, NULL, NULL) == AMS_OK);
    free(t);
    *base = b;
    ams_params_free(p);
    return 0;
}

static int test_corruption(void) {
    uint8_t *msg;
    size_t len, n;
    float *base;
    CHECK(small_message(&msg, &len, &base, &n) == 0);
    ams_update *u;
    ams_err err = {0};
    CHECK(ams_update_decode(msg, len, n, &u, &err) == AMS_OK);
    ams_update_free(u);
    size_t flips = 0;
    for (size_t i = 0; i < len; i++)
        for (int b = 0; b < 8; b++) {
            msg[i] ^= (uint8_t)(1 << b);
            ams_status st = ams_update_decode(msg, len, n, &u, &err);
            if (st == AMS_OK) { /* cannot happen with CRC-32; if it did, apply must refuse */
                float *w = malloc(n * 4);
                CHECK(w);
                memcpy(w, base, n * 4);
                CHECKF(ams_update_apply(u, w, n, &err) != AMS_OK, "flip at byte %zu bit %d", i, b);
                free(w);
                ams_update_free(u);
            } else {
                CHECK(u == NULL);
                flips++;
            }
            msg[i] ^= (uint8_t)(1 << b);
        }
    CHECKF(flips == len * 8, "%zu of %zu bit flips rejected by decode", flips, len * 8);
    for (size_t l = 0; l < len; l++) {
        CHECK(ams_update_decode(msg, l, n, &u, &err) != AMS_OK && u == NULL);
    }
    /* a longer buffer (trailing garbage) is rejected too */
    uint8_t *longer = malloc(len + 3);
    CHECK(longer);
    memcpy(longer, msg, len);
    memset(longer + len, 0, 3);
    CHECK(ams_update_decode(longer, len + 3, n, &u, &err) == AMS_E_FORMAT);
    free(longer);
    free(msg);
    free(base);
    return 0;
}

/* ---- this test's own writer of the documented wire format ---- */

static size_t build(uint8_t *out, uint16_t version, uint16_t flags, uint64_t total, uint32_t count,
                    uint32_t nseg, const uint8_t *raw, uint32_t rawlen, int32_t clen_adjust) {
    memcpy(out, "AMSU", 4);
    out[4] = (uint8_t)version;
    out[5] = (uint8_t)(version >> 8);
    out[6] = (uint8_t)flags;
    out[7] = (uint8_t)(flags >> 8);
    memset(out + 8, 0xab, 64);
    for (int i = 0; i < 8; i++) out[72 + i] = (uint8_t)(total >> (8 * i));
    uint32_t v[4] = {count, nseg, rawlen, 0};
    size_t c = ZSTD_compress(out + 96, 4096, raw, rawlen, 3);
    if (ZSTD_isError(c)) return 0;
    v[3] = (uint32_t)((int32_t)c + clen_adjust);
    for (int k = 0; k < 4; k++)
        for (int i = 0; i < 4; i++) out[80 + 4 * k + i] = (uint8_t)(v[k] >> (8 * i));
    uLong crc = crc32(0L, out, (uInt)(96 + c));
    for (int i = 0; i < 4; i++) out[96 + c + (size_t)i] = (uint8_t)(crc >> (8 * i));
    return 96 + c + 4;
}

static ams_status decode_built(uint16_t version, uint16_t flags, uint64_t total, uint32_t count,
                               uint32_t nseg, const uint8_t *raw, uint32_t rawlen,
                               uint64_t expect, ams_update **u) {
    static uint8_t buf[8192];
    size_t len = build(buf, version, flags, total, count, nseg, raw, rawlen, 0);
    if (len == 0) return AMS_E_INTERNAL;
    ams_err err = {0};
    ams_status st = ams_update_decode(buf, len, expect, u, &err);
    if (st != AMS_OK) fprintf(stderr, "  (rejected: %s)\n", err.msg);
    return st;
}

static int test_bounds(void) {
    ams_update *u = NULL;
    /* valid: one segment of 2 elements, scale 0.5, indices 3 and 5, q = 2, -4 */
    const uint8_t ok[] = {2, 0, 0, 0, 0x3f, 3, 1, 2, 0xfc};
    CHECK(decode_built(1, 0, 10, 2, 1, ok, sizeof ok, 10, &u) == AMS_OK);
    CHECK(u->count == 2 && u->index[0] == 3 && u->index[1] == 5);
    CHECK(u->delta[0] == 1.0f && u->delta[1] == -2.0f);
    ams_update_free(u);
    CHECK(decode_built(2, 0, 10, 2, 1, ok, sizeof ok, 10, &u) == AMS_E_UNSUPPORTED);
    CHECK(decode_built(1, 4, 10, 2, 1, ok, sizeof ok, 10, &u) == AMS_E_UNSUPPORTED);
    CHECK(decode_built(1, 0, 10, 2, 1, ok, sizeof ok, 11, &u) == AMS_E_SHAPE);
    CHECK(decode_built(1, 0, 0, 0, 0, ok, 0, 0, &u) == AMS_E_FORMAT);          /* total 0 */
    CHECK(decode_built(1, 0, (uint64_t)1 << 40, 2, 1, ok, sizeof ok, 0, &u) == AMS_E_FORMAT);
    CHECK(decode_built(1, 0, 1, 2, 1, ok, sizeof ok, 0, &u) == AMS_E_FORMAT);  /* count > total */
    CHECK(decode_built(1, 0, 10, 2, 3, ok, sizeof ok, 0, &u) == AMS_E_FORMAT); /* nseg > count */
    CHECK(decode_built(1, 0, 10, 2, 0, ok, sizeof ok, 0, &u) == AMS_E_FORMAT); /* no segment */
    CHECK(decode_built(1, 0, 10, 2, 1, ok, sizeof ok - 1, 0, &u) == AMS_E_FORMAT); /* short */
    CHECK(decode_built(1, 0, 10, 1, 1, ok, sizeof ok, 0, &u) == AMS_E_FORMAT); /* sum != count */
    const uint8_t idx_out[] = {2, 0, 0, 0, 0x3f, 3, 5, 2, 0xfc};                 /* 3, 9 ok */
    CHECK(decode_built(1, 0, 10, 2, 1, idx_out, sizeof idx_out, 0, &u) == AMS_OK);
    ams_update_free(u);
    CHECK(decode_built(1, 0, 9, 2, 1, idx_out, sizeof idx_out, 0, &u) == AMS_E_FORMAT); /* 9>=9 */
    const uint8_t q_zero[] = {2, 0, 0, 0, 0x3f, 3, 1, 0, 0xfc};
    CHECK(decode_built(1, 0, 10, 2, 1, q_zero, sizeof q_zero, 0, &u) == AMS_E_FORMAT);
    const uint8_t q_min[] = {2, 0, 0, 0, 0x3f, 3, 1, 0x80, 0xfc};
    CHECK(decode_built(1, 0, 10, 2, 1, q_min, sizeof q_min, 0, &u) == AMS_E_FORMAT);
    const uint8_t nan_scale[] = {2, 0, 0, 0xc0, 0x7f, 3, 1, 2, 0xfc};
    CHECK(decode_built(1, 0, 10, 2, 1, nan_scale, sizeof nan_scale, 0, &u) == AMS_E_FORMAT);
    const uint8_t neg_scale[] = {2, 0, 0, 0, 0xbf, 3, 1, 2, 0xfc};
    CHECK(decode_built(1, 0, 10, 2, 1, neg_scale, sizeof neg_scale, 0, &u) == AMS_E_FORMAT);
    /* varints: 6-byte and > 2^32 encodings of the first index are refused */
    const uint8_t long_var[] = {2, 0, 0, 0, 0x3f, 0x83, 0x80, 0x80, 0x80, 0x80, 0x00, 1, 2, 0xfc};
    CHECK(decode_built(1, 0, 10, 2, 1, long_var, sizeof long_var, 0, &u) == AMS_E_FORMAT);
    const uint8_t big_var[] = {2, 0, 0, 0, 0x3f, 0x83, 0x80, 0x80, 0x80, 0x7f, 1, 2, 0xfc};
    CHECK(decode_built(1, 0, 10, 2, 1, big_var, sizeof big_var, 0, &u) == AMS_E_FORMAT);
    /* fp16: indices 3, 5 with deltas 1.0 (0x3c00) and -2.0 (0xc000): low bytes then high */
    const uint8_t f16[] = {2, 3, 1, 0x00, 0x00, 0x3c, 0xc0};
    CHECK(decode_built(1, 1, 10, 2, 1, f16, sizeof f16, 0, &u) == AMS_OK);
    CHECK(u->delta[0] == 1.0f && u->delta[1] == -2.0f && u->index[1] == 5);
    ams_update_free(u);
    const uint8_t f16_inf[] = {2, 3, 1, 0x00, 0x00, 0x7c, 0xc0};
    CHECK(decode_built(1, 1, 10, 2, 1, f16_inf, sizeof f16_inf, 0, &u) == AMS_E_FORMAT);
    /* a compressed length that lies */
    static uint8_t buf[4096];
    size_t len = build(buf, 1, 0, 10, 2, 1, ok, sizeof ok, 1);
    CHECK(len > 0 && ams_update_decode(buf, len, 0, &u, NULL) == AMS_E_FORMAT && u == NULL);
    /* raw length beyond the cap with a consistent CRC */
    len = build(buf, 1, 0, 10, 2, 1, ok, sizeof ok, 0);
    buf[88] = 0xff, buf[89] = 0xff, buf[90] = 0xff, buf[91] = 0x7f;
    uLong crc = crc32(0L, buf, (uInt)(len - 4));
    for (int i = 0; i < 4; i++) buf[len - 4 + (size_t)i] = (uint8_t)(crc >> (8 * i));
    CHECK(ams_update_decode(buf, len, 0, &u, NULL) == AMS_E_FORMAT);
    CHECK(ams_update_decode((const uint8_t *)"AMSX", 4, 0, &u, NULL) == AMS_E_FORMAT);
    return 0;
}

static int test_apply_refuses(void) {
    uint8_t *msg;
    size_t len, n;
    float *base;
    CHECK(small_message(&msg, &len, &base, &n) == 0);
    ams_update *u;
    ams_err err = {0};
    CHECK(ams_update_decode(msg, len, n, &u, &err) == AMS_OK);
    float *w = malloc(n * 4), *keep = malloc(n * 4);
    CHECK(w && keep);
    memcpy(w, base, n * 4);
    w[0] = 1.0f; /* not the weights the update was made for */
    memcpy(keep, w, n * 4);
    CHECK(ams_update_apply(u, w, n, &err) == AMS_E_FORMAT && strstr(err.msg, "base"));
    CHECK(memcmp(w, keep, n * 4) == 0);
    CHECK(ams_update_apply(u, w, n - 1, &err) == AMS_E_SHAPE);
    memcpy(w, base, n * 4);
    u->result_hash[5] ^= 1; /* a sender whose arithmetic differs */
    CHECK(ams_update_apply(u, w, n, &err) == AMS_E_FORMAT && strstr(err.msg, "rolled back"));
    CHECK(memcmp(w, base, n * 4) == 0);
    u->result_hash[5] ^= 1;
    CHECK(ams_update_apply(u, w, n, &err) == AMS_OK && memcmp(w, base, n * 4) != 0);
    ams_update_free(u);
    free(w);
    free(keep);
    free(msg);
    free(base);
    return 0;
}

static int test_encode_errors(void) {
    ams_params *p = ams_params_new();
    CHECK(p && ams_params_add(p, "a", 1, (int64_t[]){4}, 1, NULL) >= 0);
    CHECK(ams_params_alloc(p, NULL) == AMS_OK);
    float b[4] = {0, 1, 2, 3}, t[4] = {0, 1, 2, 3};
    ams_update_opts o;
    ams_update_opts_default(&o);
    uint8_t *msg;
    size_t len;
    ams_err err = {0};
    t[2] = NAN;
    CHECK(ams_update_encode(p, b, t, &o, &msg, &len, NULL, &err) == AMS_E_RANGE && !msg);
    t[2] = 3e38f;
    b[2] = -3e38f;
    CHECK(ams_update_encode(p, b, t, &o, &msg, &len, NULL, &err) == AMS_E_RANGE);
    b[2] = 2;
    t[2] = 70000.0f;
    o.values = AMS_UPDATE_F16;
    CHECK(ams_update_encode(p, b, t, &o, &msg, &len, NULL, &err) == AMS_E_RANGE);
    o.zstd_level = 0;
    CHECK(ams_update_encode(p, b, t, &o, &msg, &len, NULL, &err) == AMS_E_INVAL);
    ams_params_free(p);
    return 0;
}

static int test_reference_format(void) {
    /* packbits by hand: tensor x[10] mask 1,0,1,1,0,0,0,1,1,0 -> 0xb1 0x80; frozen y[3] not
     * covered; z[3] mask 0,0,1 -> 0x20; then fp16 values of x[0],x[2],x[3],x[7],x[8],z[2] */
    ams_params *p = ams_params_new();
    CHECK(p);
    CHECK(ams_params_add(p, "x", 1, (int64_t[]){10}, 1, NULL) >= 0);
    CHECK(ams_params_add(p, "y", 1, (int64_t[]){3}, 0, NULL) >= 0);
    CHECK(ams_params_add(p, "z", 1, (int64_t[]){3}, 1, NULL) >= 0);
    CHECK(ams_params_alloc(p, NULL) == AMS_OK);
    const uint8_t mask[16] = {1, 0, 1, 1, 0, 0, 0, 1, 1, 0, 1, 1, 1, 0, 0, 1};
    float v[16];
    for (int i = 0; i < 16; i++) v[i] = (float)i + 0.5f;
    uint8_t *gz;
    size_t gzlen;
    ams_err err = {0};
    CHECK(ams_update_ref_encode(p, 0, mask, v, &gz, &gzlen, &err) == AMS_OK);
    CHECK(gzlen > 18 && gz[0] == 0x1f && gz[1] == 0x8b && gz[2] == 8); /* a gzip member */
    uint8_t raw[64];
    z_stream z;
    memset(&z, 0, sizeof z);
    CHECK(inflateInit2(&z, 16 + 15) == Z_OK);
    z.next_in = gz;
    z.avail_in = (uInt)gzlen;
    z.next_out = raw;
    z.avail_out = sizeof raw;
    CHECK(inflate(&z, Z_FINISH) == Z_STREAM_END);
    CHECK(z.total_out == 3 + 2 * 6);
    inflateEnd(&z);
    CHECK(raw[0] == 0xb1 && raw[1] == 0x80 && raw[2] == 0x20);
    const int sent[6] = {0, 2, 3, 7, 8, 15};
    for (int j = 0; j < 6; j++) {
        uint16_t h = (uint16_t)(raw[3 + 2 * j] | raw[4 + 2 * j] << 8);
        CHECK(ams_f16_to_f32(h) == v[sent[j]]); /* k + 0.5 is exact in fp16 */
    }
    uint8_t m2[16];
    float v2[16] = {0};
    memset(m2, 7, sizeof m2);
    CHECK(ams_update_ref_decode(p, 0, gz, gzlen, m2, v2, &err) == AMS_OK);
    for (int i = 0; i < 16; i++) {
        if (i >= 10 && i < 13) {
            CHECK(m2[i] == 7); /* frozen tensor not covered */
            continue;
        }
        CHECK(m2[i] == mask[i] && v2[i] == (mask[i] ? v[i] : 0.0f));
    }
    CHECK(ams_update_ref_decode(p, 0, gz, gzlen - 1, m2, v2, &err) == AMS_E_FORMAT);
    CHECK(ams_update_ref_decode(p, 1, gz, gzlen, m2, v2, &err) == AMS_E_FORMAT); /* layout */
    free(gz);
    ams_params_free(p);
    return 0;
}

/* The numbers for the report: the realistic 5 % update in both formats. */
static int test_sizes_vs_reference(void) {
    ams_params *p = selfie_layout();
    CHECK(p);
    size_t n = p->total;
    float *base = malloc(n * 4), *target = malloc(n * 4);
    uint8_t *mask = malloc(n);
    CHECK(base && target && mask);
    size_t changed = realistic_update(p, base, target, 11);
    for (size_t i = 0; i < n; i++) mask[i] = target[i] != base[i];
    uint8_t *gz, *full;
    size_t ref_len, full_len, int8_len, f16_len;
    ams_err err = {0};
    CHECK(ams_update_ref_encode(p, 0, mask, target, &gz, &ref_len, &err) == AMS_OK);
    memset(mask, 1, n);
    CHECK(ams_update_ref_encode(p, 1, mask, target, &full, &full_len, &err) == AMS_OK);
    CHECK(roundtrip(AMS_UPDATE_INT8, &int8_len) == 0);
    CHECK(roundtrip(AMS_UPDATE_F16, &f16_len) == 0);
    fprintf(stderr,
            "  update of %zu of %zu elements (5 %% of all, in trainable tensors, clustered, deltas N(0,1e-3)):\n"
            "    reference (packbits + fp16 values, gzip -9): %zu bytes\n"
            "    reference, full model (fp16, gzip -9):       %zu bytes\n"
            "    AMSU int8 deltas, zstd -19:                  %zu bytes (%.2f of reference)\n"
            "    AMSU fp16 deltas, zstd -19:                  %zu bytes (%.2f of reference)\n",
            changed, n, ref_len, full_len, int8_len, (double)int8_len / (double)ref_len, f16_len,
            (double)f16_len / (double)ref_len);
    CHECK(int8_len < ref_len * 3 / 4);
    CHECK(f16_len < ref_len);
    free(gz);
    free(full);
    free(base);
    free(target);
    free(mask);
    ams_params_free(p);
    return 0;
}

/* SHA-256 vectors from Python's hashlib: FIPS "abc", the empty string, three LE floats. */
static int test_hash_vectors(void) {
    uint8_t h[AMS_HASH_LEN];
    char hex[AMS_HASH_HEX_LEN];
    CHECK(ams_sha256("abc", 3, h, NULL) == AMS_OK);
    CHECK(strcmp(ams_hash_hex(h, hex),
                 "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0);
    CHECK(ams_weights_hash(NULL, 0, h, NULL) == AMS_OK);
    CHECK(strcmp(ams_hash_hex(h, hex),
                 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") == 0);
    const float v[3] = {1.0f, -2.5f, 0.1f};
    CHECK(ams_weights_hash(v, 3, h, NULL) == AMS_OK);
    CHECK(strcmp(ams_hash_hex(h, hex),
                 "2f9cc761bc2594fa578868daeedc59b0fc115513fae3e5dc09c4e86e50b8aaf6") == 0);
    return 0;
}

int main(int argc, char **argv) {
    static const check_case cases[] = {
        {"roundtrip_int8", test_roundtrip_int8},
        {"roundtrip_f16", test_roundtrip_f16},
        {"corruption", test_corruption},
        {"bounds", test_bounds},
        {"apply_refuses", test_apply_refuses},
        {"encode_errors", test_encode_errors},
        {"reference_format", test_reference_format},
        {"sizes_vs_reference", test_sizes_vs_reference},
        {"hash_vectors", test_hash_vectors},
    };
    return check_run(cases, sizeof cases / sizeof cases[0], argc, argv);
}
