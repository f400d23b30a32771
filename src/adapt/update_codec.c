/* update_codec.c - our sparse update codec "AMSU" v1: sorted indices as varint gaps, per-tensor
 * int8 (or fp16) deltas, zstd, CRC-32, SHA-256 model hashes. Format: include/ams/update_codec.h. */
#include "ams/update_codec.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "ams/tensor.h"

void ams_update_opts_default(ams_update_opts *o) {
    o->values = AMS_UPDATE_INT8;
    o->zstd_level = 19;
}

void ams_update_free(ams_update *u) {
    if (!u) return;
    free(u->index);
    free(u->delta);
    free(u);
}

/* ---- little-endian bytes and varints ---- */

static void put_u16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint16_t get_u16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t get_u64(const uint8_t *p) {
    return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

static size_t put_varint(uint8_t *p, uint32_t v) {
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

/* Reads a varint < 2^32 from [*p, end); 0 on truncation or overlong/oversized encodings. */
static int get_varint(const uint8_t **p, const uint8_t *end, uint32_t *v) {
    uint64_t x = 0;
    for (int i = 0; i < 5; i++) {
        if (*p >= end) return 0;
        uint8_t b = *(*p)++;
        x |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            if (x > UINT32_MAX) return 0;
            *v = (uint32_t)x;
            return 1;
        }
    }
    return 0;
}

static uint32_t crc32_of(const uint8_t *p, size_t n) {
    uLong c = crc32(0L, Z_NULL, 0);
    while (n > 0) { /* zlib takes uInt lengths */
        uInt chunk = n > (1u << 30) ? (1u << 30) : (uInt)n;
        c = crc32(c, p, chunk);
        p += chunk;
        n -= chunk;
    }
    return (uint32_t)c;
}

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* The most raw payload bytes count elements in nseg segments can take (u64: no overflow). */
static uint64_t raw_bound(uint64_t count, uint64_t nseg, int f16) {
    return nseg * (5 + (f16 ? 0 : 4)) + count * (5 + (f16 ? 2 : 1));
}

/* A scale >= s with at most 17 significant bits (so q * scale, |q| <= 127, is exact). */
static float coarse_scale(float s) {
    uint32_t u = f32_bits(s);
    if (u & 0x7fu) u = (u & ~0x7fu) + 0x80u; /* carry may bump the exponent: still valid */
    return bits_f32(u);
}

/* ---- encoder ---- */

typedef struct {
    uint32_t *index;
    float *delta; /* exact dequantized deltas */
    int8_t *q;
    uint16_t *h;
    uint32_t *seg_n;
    float *seg_scale;
    size_t count, nseg;
} enc_state;

static void enc_free(enc_state *s) {
    free(s->index);
    free(s->delta);
    free(s->q);
    free(s->h);
    free(s->seg_n);
    free(s->seg_scale);
}

/* Segment boundaries: the layout's tensors in flat order, plus any gaps between them. */
static int cmp_size(const void *a, const void *b) {
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

static ams_status quantize(const ams_params *l, const float *base, const float *target,
                           int f16, enc_state *s, ams_err *err) {
    size_t n = l->total;
    /* boundaries: 0, every tensor start and end, n; sorted, deduplicated */
    size_t nb = 2 * (size_t)l->count + 2, *b = malloc(nb * sizeof *b);
    AMS_FAIL_IF(!b, err, AMS_E_NOMEM, "out of memory for %zu segment bounds", nb);
    b[0] = 0;
    b[1] = n;
    for (int t = 0; t < l->count; t++) {
        b[2 + 2 * t] = l->info[t].offset;
        b[3 + 2 * t] = l->info[t].offset + (size_t)l->info[t].numel;
    }
    qsort(b, nb, sizeof *b, cmp_size);

    ams_status st = AMS_OK;
    size_t changed = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(base[i]) || !isfinite(target[i])) {
            st = ams_err_set(err, AMS_E_RANGE, "element %zu is not finite (base %g, target %g)",
                             i, (double)base[i], (double)target[i]);
            goto done;
        }
        changed += f32_bits(base[i]) != f32_bits(target[i]);
    }
    size_t cap = changed ? changed : 1;
    s->index = malloc(cap * sizeof *s->index);
    s->delta = malloc(cap * sizeof *s->delta);
    s->q = malloc(cap);
    s->h = malloc(cap * sizeof *s->h);
    s->seg_n = malloc(nb * sizeof *s->seg_n);
    s->seg_scale = malloc(nb * sizeof *s->seg_scale);
    if (!s->index || !s->delta || !s->q || !s->h || !s->seg_n || !s->seg_scale) {
        st = ams_err_set(err, AMS_E_NOMEM, "out of memory for %zu changed elements", changed);
        goto done;
    }
    for (size_t j = 0; j + 1 < nb; j++) {
        size_t lo = b[j], hi = b[j + 1];
        if (lo >= hi) continue;
        float amax = 0;
        for (size_t i = lo; i < hi; i++) {
            if (f32_bits(base[i]) == f32_bits(target[i])) continue;
            float d = target[i] - base[i];
            if (!isfinite(d)) {
                st = ams_err_set(err, AMS_E_RANGE, "delta of element %zu overflows", i);
                goto done;
            }
            if (fabsf(d) > amax) amax = fabsf(d);
        }
        float scale = 0;
        if (!f16 && amax > 0) {
            scale = amax / 127.0f;
            if (scale < 0x1p-126f) scale = 0x1p-126f; /* keep it normal: products stay exact */
            scale = coarse_scale(scale);
        }
        size_t first = s->count;
        for (size_t i = lo; i < hi; i++) {
            if (f32_bits(base[i]) == f32_bits(target[i])) continue;
            float d = target[i] - base[i], dq;
            if (f16) {
                uint16_t h = ams_f32_to_f16(d);
                dq = ams_f16_to_f32(h);
                if (!isfinite(dq)) {
                    st = ams_err_set(err, AMS_E_RANGE, "delta %g of element %zu overflows fp16",
                                     (double)d, i);
                    goto done;
                }
                if (dq == 0) continue;
                s->h[s->count] = h;
            } else {
                float r = nearbyintf(d / scale);
                if (r > 127) r = 127;
                if (r < -127) r = -127;
                if (r == 0) continue;
                s->q[s->count] = (int8_t)r;
                dq = r * scale; /* exact: 7 x 17 significant bits */
            }
            s->index[s->count] = (uint32_t)i;
            s->delta[s->count] = dq;
            s->count++;
        }
        if (s->count > first) {
            s->seg_n[s->nseg] = (uint32_t)(s->count - first);
            s->seg_scale[s->nseg] = scale;
            s->nseg++;
        }
    }
done:
    free(b);
    return st;
}

static ams_status check_layout(const ams_params *l, ams_err *err) {
    AMS_FAIL_IF(l->total < 1 || l->total > AMS_UPDATE_MAX_ELEMS, err, AMS_E_INVAL,
                "flat buffer of %zu elements (1..%llu)", l->total,
                (unsigned long long)AMS_UPDATE_MAX_ELEMS);
    for (int t = 0; t < l->count; t++) {
        size_t end;
        AMS_FAIL_IF(l->info[t].numel < 0 ||
                        !ams_size_add_ok(l->info[t].offset, (size_t)l->info[t].numel, &end) ||
                        end > l->total,
                    err, AMS_E_INVAL, "parameter '%s' lies outside the flat buffer",
                    l->info[t].name);
    }
    return AMS_OK;
}

ams_status ams_update_encode(const ams_params *layout, const float *base, const float *target,
                             const ams_update_opts *o, uint8_t **out, size_t *out_len,
                             float *applied, ams_err *err) {
    *out = NULL;
    *out_len = 0;
    AMS_TRY(check_layout(layout, err));
    AMS_FAIL_IF(o->values != AMS_UPDATE_INT8 && o->values != AMS_UPDATE_F16, err, AMS_E_INVAL,
                "unknown update value coding %d", (int)o->values);
    AMS_FAIL_IF(o->zstd_level < 1 || o->zstd_level > ZSTD_maxCLevel(), err, AMS_E_INVAL,
                "zstd level %d (1..%d)", o->zstd_level, ZSTD_maxCLevel());
    int f16 = o->values == AMS_UPDATE_F16;
    size_t n = layout->total;
    uint8_t base_hash[AMS_HASH_LEN], result_hash[AMS_HASH_LEN];
    AMS_TRY(ams_weights_hash(base, n, base_hash, err));

    enc_state s = {0};
    uint8_t *raw = NULL, *msg = NULL;
    ams_status st = quantize(layout, base, target, f16, &s, err);
    if (st != AMS_OK) goto done;

    uint64_t rb = raw_bound(s.count, s.nseg, f16);
    if (rb > AMS_UPDATE_MAX_RAW) {
        st = ams_err_set(err, AMS_E_RANGE, "update of %zu elements exceeds %u raw bytes", s.count,
                         AMS_UPDATE_MAX_RAW);
        goto done;
    }
    raw = malloc(rb ? rb : 1);
    if (!raw) {
        st = ams_err_set(err, AMS_E_NOMEM, "out of memory for %llu payload bytes",
                         (unsigned long long)rb);
        goto done;
    }
    size_t r = 0;
    for (size_t j = 0; j < s.nseg; j++) {
        r += put_varint(raw + r, s.seg_n[j]);
        if (!f16) {
            put_u32(raw + r, f32_bits(s.seg_scale[j]));
            r += 4;
        }
    }
    uint32_t prev = 0;
    for (size_t i = 0; i < s.count; i++) {
        r += put_varint(raw + r, i == 0 ? s.index[0] : s.index[i] - prev - 1);
        prev = s.index[i];
    }
    if (f16) {
        for (size_t i = 0; i < s.count; i++) raw[r++] = (uint8_t)s.h[i];
        for (size_t i = 0; i < s.count; i++) raw[r++] = (uint8_t)(s.h[i] >> 8);
    } else {
        for (size_t i = 0; i < s.count; i++) raw[r++] = (uint8_t)s.q[i];
    }

    size_t cb = ZSTD_compressBound(r), total_len = AMS_UPDATE_HEADER_BYTES + cb + 4;
    msg = malloc(total_len);
    if (!msg) {
        st = ams_err_set(err, AMS_E_NOMEM, "out of memory for a %zu-byte message", total_len);
        goto done;
    }
    size_t c = ZSTD_compress(msg + AMS_UPDATE_HEADER_BYTES, cb, raw, r, o->zstd_level);
    if (ZSTD_isError(c) || c > UINT32_MAX) {
        st = ams_err_set(err, AMS_E_INTERNAL, "zstd: %s", ZSTD_getErrorName(c));
        goto done;
    }

    /* The receiver's arithmetic, here: applied = base + exact delta. */
    if (applied) {
        if (applied != base) memmove(applied, base, n * sizeof *applied);
        for (size_t i = 0; i < s.count; i++) applied[s.index[i]] = base[s.index[i]] + s.delta[i];
        st = ams_weights_hash(applied, n, result_hash, err);
    } else {
        float *tmp = malloc(n * sizeof *tmp);
        if (!tmp) {
            st = ams_err_set(err, AMS_E_NOMEM, "out of memory for %zu floats", n);
            goto done;
        }
        memcpy(tmp, base, n * sizeof *tmp);
        for (size_t i = 0; i < s.count; i++) tmp[s.index[i]] = base[s.index[i]] + s.delta[i];
        st = ams_weights_hash(tmp, n, result_hash, err);
        free(tmp);
    }
    if (st != AMS_OK) goto done;

    memcpy(msg, AMS_UPDATE_MAGIC, 4);
    put_u16(msg + 4, AMS_UPDATE_VERSION);
    put_u16(msg + 6, f16 ? AMS_UPDATE_FLAG_F16 : 0);
    memcpy(msg + 8, base_hash, AMS_HASH_LEN);
    memcpy(msg + 40, result_hash, AMS_HASH_LEN);
    put_u64(msg + 72, n);
    put_u32(msg + 80, (uint32_t)s.count);
    put_u32(msg + 84, (uint32_t)s.nseg);
    put_u32(msg + 88, (uint32_t)r);
    put_u32(msg + 92, (uint32_t)c);
    size_t end = AMS_UPDATE_HEADER_BYTES + c;
    put_u32(msg + end, crc32_of(msg, end));
    *out = msg;
    *out_len = end + 4;
    msg = NULL;
done:
    free(raw);
    free(msg);
    enc_free(&s);
    return st;
}

/* ---- decoder ---- */

#define BAD(...) ams_err_set(err, AMS_E_FORMAT, "update: " __VA_ARGS__)

ams_status ams_update_decode(const uint8_t *buf, size_t len, uint64_t expected_total,
                             ams_update **out, ams_err *err) {
    *out = NULL;
    if (len < AMS_UPDATE_HEADER_BYTES + 4) return BAD("%zu bytes is shorter than a header", len);
    if (memcmp(buf, AMS_UPDATE_MAGIC, 4) != 0) return BAD("bad magic (not an AMSU message)");
    uint16_t version = get_u16(buf + 4), flags = get_u16(buf + 6);
    AMS_FAIL_IF(version != AMS_UPDATE_VERSION, err, AMS_E_UNSUPPORTED,
                "update: version %u (this build reads %d)", version, AMS_UPDATE_VERSION);
    if (crc32_of(buf, len - 4) != get_u32(buf + len - 4))
        return BAD("checksum mismatch (corrupt or truncated, %zu bytes)", len);
    AMS_FAIL_IF(flags & ~AMS_UPDATE_FLAG_F16, err, AMS_E_UNSUPPORTED, "update: unknown flags 0x%x",
                flags);
    int f16 = (flags & AMS_UPDATE_FLAG_F16) != 0;
    uint64_t total = get_u64(buf + 72);
    uint32_t count = get_u32(buf + 80), nseg = get_u32(buf + 84);
    uint32_t rawlen = get_u32(buf + 88), clen = get_u32(buf + 92);
    if (total < 1 || total > AMS_UPDATE_MAX_ELEMS) return BAD("total %llu out of range",
                                                              (unsigned long long)total);
    AMS_FAIL_IF(expected_total && total != expected_total, err, AMS_E_SHAPE,
                "update: for a model of %llu elements, this one has %llu",
                (unsigned long long)total, (unsigned long long)expected_total);
    if (count > total) return BAD("%u changed elements of %llu", count, (unsigned long long)total);
    if (nseg > count || (count > 0 && nseg == 0)) return BAD("%u segments for %u elements", nseg,
                                                             count);
    if (rawlen > AMS_UPDATE_MAX_RAW || rawlen > raw_bound(count, nseg, f16))
        return BAD("raw payload of %u bytes is too large", rawlen);
    /* each element takes >= 1 gap byte and 1 or 2 value bytes; each segment >= 1 or 5 bytes */
    if ((uint64_t)rawlen < (uint64_t)count * (f16 ? 3 : 2) + (uint64_t)nseg * (f16 ? 1 : 5))
        return BAD("raw payload of %u bytes is too small for %u elements", rawlen, count);
    if ((uint64_t)clen != (uint64_t)len - 4 - AMS_UPDATE_HEADER_BYTES)
        return BAD("payload length %u, %zu bytes present", clen,
                   len - 4 - AMS_UPDATE_HEADER_BYTES);
    const uint8_t *cpay = buf + AMS_UPDATE_HEADER_BYTES;
    unsigned long long fcs = ZSTD_getFrameContentSize(cpay, clen);
    if (fcs != rawlen) return BAD("zstd frame holds %lld bytes, header says %u", (long long)fcs,
                                  rawlen);

    ams_status st = AMS_OK;
    uint8_t *raw = malloc(rawlen ? rawlen : 1);
    ams_update *u = NULL;
    float *scale = NULL;
    uint32_t *segn = NULL;
    if (!raw) {
        st = ams_err_set(err, AMS_E_NOMEM, "update: out of memory for %u payload bytes", rawlen);
        goto done;
    }
    size_t d = ZSTD_decompress(raw, rawlen, cpay, clen);
    if (ZSTD_isError(d) || d != rawlen) {
        st = BAD("zstd payload: %s", ZSTD_isError(d) ? ZSTD_getErrorName(d) : "short");
        goto done;
    }
    /* allocate per element only once the bytes that must describe them are here */
    u = calloc(1, sizeof *u);
    if (u) {
        u->index = malloc((count ? count : 1) * sizeof *u->index);
        u->delta = malloc((count ? count : 1) * sizeof *u->delta);
    }
    scale = malloc((nseg ? nseg : 1) * sizeof *scale);
    segn = malloc((nseg ? nseg : 1) * sizeof *segn);
    if (!u || !u->index || !u->delta || !scale || !segn) {
        st = ams_err_set(err, AMS_E_NOMEM, "update: out of memory for %u elements", count);
        goto done;
    }
    const uint8_t *p = raw, *end = raw + rawlen;
    uint64_t sum = 0;
    for (uint32_t j = 0; j < nseg; j++) {
        if (!get_varint(&p, end, &segn[j]) || segn[j] == 0) {
            st = BAD("segment %u: bad element count", j);
            goto done;
        }
        sum += segn[j];
        if (f16) {
            scale[j] = 0;
        } else {
            if (end - p < 4) {
                st = BAD("segment %u: truncated scale", j);
                goto done;
            }
            scale[j] = bits_f32(get_u32(p));
            p += 4;
            if (!isfinite(scale[j]) || !(scale[j] >= 0)) {
                st = BAD("segment %u: scale %g", j, (double)scale[j]);
                goto done;
            }
        }
    }
    if (sum != count) {
        st = BAD("segments hold %llu elements, header says %u", (unsigned long long)sum, count);
        goto done;
    }
    uint64_t idx = 0;
    for (uint32_t i = 0; i < count; i++) {
        uint32_t gap;
        if (!get_varint(&p, end, &gap)) {
            st = BAD("index %u: truncated", i);
            goto done;
        }
        idx = (i == 0 ? 0 : idx + 1) + gap;
        if (idx >= total) {
            st = BAD("index %llu outside %llu elements", (unsigned long long)idx,
                     (unsigned long long)total);
            goto done;
        }
        u->index[i] = (uint32_t)idx;
    }
    size_t need = (size_t)count * (f16 ? 2 : 1);
    if ((size_t)(end - p) != need) {
        st = BAD("%zu value bytes, %zu expected", (size_t)(end - p), need);
        goto done;
    }
    uint32_t seg = 0, left = nseg ? segn[0] : 0;
    for (uint32_t i = 0; i < count; i++) {
        while (left == 0) left = segn[++seg]; /* segn[] > 0 and sums to count */
        left--;
        float v;
        if (f16) {
            v = ams_f16_to_f32((uint16_t)(p[i] | p[count + i] << 8));
            if (!isfinite(v) || v == 0) {
                st = BAD("element %u: fp16 delta %g", i, (double)v);
                goto done;
            }
        } else {
            int8_t q = (int8_t)p[i];
            if (q == 0 || q == -128) {
                st = BAD("element %u: int8 delta %d", i, q);
                goto done;
            }
            v = (float)q * scale[seg];
            if (!isfinite(v)) {
                st = BAD("element %u: delta overflows", i);
                goto done;
            }
        }
        u->delta[i] = v;
    }
    u->version = version;
    u->flags = flags;
    memcpy(u->base_hash, buf + 8, AMS_HASH_LEN);
    memcpy(u->result_hash, buf + 40, AMS_HASH_LEN);
    u->total = total;
    u->count = count;
    *out = u;
    u = NULL;
done:
    free(raw);
    free(scale);
    free(segn);
    ams_update_free(u);
    return st;
}

ams_status ams_update_apply(const ams_update *u, float *values, size_t n, ams_err *err) {
    AMS_FAIL_IF(n != u->total, err, AMS_E_SHAPE, "update for %llu elements, model has %zu",
                (unsigned long long)u->total, n);
    uint8_t h[AMS_HASH_LEN];
    AMS_TRY(ams_weights_hash(values, n, h, err));
    AMS_FAIL_IF(memcmp(h, u->base_hash, AMS_HASH_LEN) != 0, err, AMS_E_FORMAT,
                "update: made for other weights (base hash mismatch)");
    float *old = malloc((u->count ? u->count : 1) * sizeof *old);
    AMS_FAIL_IF(!old, err, AMS_E_NOMEM, "out of memory saving %zu values", u->count);
    for (size_t i = 0; i < u->count; i++) {
        old[i] = values[u->index[i]];
        values[u->index[i]] = old[i] + u->delta[i];
    }
    ams_status st = ams_weights_hash(values, n, h, err);
    if (st == AMS_OK && memcmp(h, u->result_hash, AMS_HASH_LEN) != 0)
        st = ams_err_set(err, AMS_E_FORMAT, "update: weights after applying do not match the "
                                            "sender's (result hash mismatch); rolled back");
    if (st != AMS_OK)
        for (size_t i = 0; i < u->count; i++) values[u->index[i]] = old[i];
    free(old);
    return st;
}
