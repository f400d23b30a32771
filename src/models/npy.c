/* npy.c - NumPy .npy files: header parsing (format 1.0/2.0/3.0), reading and atomic writing.
 *
 * Accepted element types: '<f4' (float32), '|u1' / '<u1' (uint8), '<i4' (int32), and, by
 * conversion, '<f2' -> float32 (exact), '<f8' -> float32 (rounded; a finite value outside
 * float32's range is AMS_E_RANGE), '<i8' -> int32 (a value outside int32 is AMS_E_RANGE).
 * Big-endian, structured and object dtypes are AMS_E_DTYPE; fortran_order True is
 * AMS_E_UNSUPPORTED. The header is the Python dict literal numpy writes; we accept what
 * numpy's own reader accepts for these keys (any key order, ' or " quotes, whitespace,
 * trailing commas, Python 2 "3L" integers) and reject everything else. */
#include "ams/npy.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/file_io.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "npy.c assumes a little-endian host"
#endif

#define NPY_MAX_HEADER ((size_t)1 << 20) /* numpy itself refuses headers over 10000 bytes */
#define NPY_GROWTH_DIGITS 21             /* numpy's GROWTH_AXIS_MAX_DIGITS */

typedef struct npy_type {
    const char *descr;
    ams_dtype dtype; /* what we load it as */
    size_t size;     /* bytes per element on disk */
} npy_type;

static const npy_type npy_types[] = {
    {"<f4", AMS_F32, 4}, {"|u1", AMS_U8, 1},  {"<u1", AMS_U8, 1},  {"<i4", AMS_I32, 4},
    {"<f2", AMS_F32, 2}, {"<f8", AMS_F32, 8}, {"<i8", AMS_I32, 8},
};

/* ---- the header dict ---- */

typedef struct cursor {
    const char *p, *end;
} cursor;

static void skip_ws(cursor *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static int eat(cursor *c, char ch) {
    skip_ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return 1;
    }
    return 0;
}

/* A quoted string without escapes; 0 if malformed or longer than cap-1. */
static int parse_str(cursor *c, char *out, size_t cap) {
    skip_ws(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"')) return 0;
    char q = *c->p++;
    size_t n = 0;
    while (c->p < c->end && *c->p != q) {
        if (*c->p == '\\' || *c->p == '\n' || n + 1 >= cap) return 0;
        out[n++] = *c->p++;
    }
    if (c->p >= c->end) return 0;
    c->p++;
    out[n] = 0;
    return 1;
}

static int parse_word(cursor *c, const char *w) {
    skip_ws(c);
    size_t n = strlen(w);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, w, n) != 0) return 0;
    const char *after = c->p + n;
    if (after < c->end && (after[0] == '_' || (after[0] >= 'a' && after[0] <= 'z') ||
                           (after[0] >= 'A' && after[0] <= 'Z') ||
                           (after[0] >= '0' && after[0] <= '9')))
        return 0;
    c->p = after;
    return 1;
}

/* A non-negative decimal integer (Python 2's trailing L allowed); 0 on syntax error,
 * -1 if it exceeds INT64_MAX. */
static int parse_dim(cursor *c, int64_t *out) {
    skip_ws(c);
    if (c->p >= c->end || *c->p < '0' || *c->p > '9') return 0;
    uint64_t v = 0;
    int big = 0;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        if (v > ((uint64_t)INT64_MAX - 9) / 10) big = 1;
        v = v * 10 + (uint64_t)(*c->p - '0');
        c->p++;
    }
    if (c->p < c->end && *c->p == 'L') c->p++;
    *out = (int64_t)v;
    return big ? -1 : 1;
}

/* "(2, 3)", "(3,)", "()": a Python tuple of ints. */
static ams_status parse_shape(cursor *c, int *ndim, int64_t *shape, ams_err *err) {
    AMS_FAIL_IF(!eat(c, '('), err, AMS_E_FORMAT, "'shape' is not a tuple");
    *ndim = 0;
    if (eat(c, ')')) return AMS_OK;
    for (;;) {
        int64_t d;
        int r = parse_dim(c, &d);
        AMS_FAIL_IF(r == 0, err, AMS_E_FORMAT, "'shape' holds something other than integers");
        AMS_FAIL_IF(r < 0, err, AMS_E_RANGE, "'shape' has a dimension beyond 2^63");
        AMS_FAIL_IF(*ndim == AMS_MAX_DIMS, err, AMS_E_SHAPE,
                    "'shape' has more than %d dimensions", AMS_MAX_DIMS);
        shape[(*ndim)++] = d;
        if (eat(c, ',')) {
            if (eat(c, ')')) return AMS_OK;
            continue;
        }
        AMS_FAIL_IF(!eat(c, ')'), err, AMS_E_FORMAT, "'shape' tuple is malformed");
        AMS_FAIL_IF(*ndim == 1, err, AMS_E_FORMAT, "'shape' (n) is not a tuple (needs a comma)");
        return AMS_OK;
    }
}

typedef struct npy_header {
    const npy_type *type;
    int ndim;
    int64_t shape[AMS_MAX_DIMS];
} npy_header;

static ams_status parse_dict(const char *p, size_t n, npy_header *h, ams_err *err) {
    cursor c = {p, p + n};
    int have_descr = 0, have_order = 0, have_shape = 0;
    AMS_FAIL_IF(!eat(&c, '{'), err, AMS_E_FORMAT, "header is not a Python dict");
    for (;;) {
        if (eat(&c, '}')) break;
        char key[32];
        AMS_FAIL_IF(!parse_str(&c, key, sizeof key), err, AMS_E_FORMAT,
                    "header dict has a malformed key");
        AMS_FAIL_IF(!eat(&c, ':'), err, AMS_E_FORMAT, "header dict: no ':' after '%s'", key);
        if (!strcmp(key, "descr")) {
            AMS_FAIL_IF(have_descr++, err, AMS_E_FORMAT, "header has 'descr' twice");
            char d[16];
            AMS_FAIL_IF(!parse_str(&c, d, sizeof d), err, AMS_E_DTYPE,
                        "'descr' is not a simple dtype string (structured arrays are not "
                        "supported)");
            h->type = NULL;
            for (size_t i = 0; i < sizeof npy_types / sizeof npy_types[0]; i++)
                if (!strcmp(d, npy_types[i].descr)) h->type = &npy_types[i];
            AMS_FAIL_IF(!h->type, err, AMS_E_DTYPE,
                        "dtype '%s' is not supported (<f4, |u1, <i4, <f2, <f8, <i8)", d);
        } else if (!strcmp(key, "fortran_order")) {
            AMS_FAIL_IF(have_order++, err, AMS_E_FORMAT, "header has 'fortran_order' twice");
            if (parse_word(&c, "True"))
                AMS_FAIL(err, AMS_E_UNSUPPORTED,
                         "fortran_order True is not supported (save a C-order array: "
                         "np.ascontiguousarray)");
            AMS_FAIL_IF(!parse_word(&c, "False"), err, AMS_E_FORMAT,
                        "'fortran_order' is not True or False");
        } else if (!strcmp(key, "shape")) {
            AMS_FAIL_IF(have_shape++, err, AMS_E_FORMAT, "header has 'shape' twice");
            AMS_TRY(parse_shape(&c, &h->ndim, h->shape, err));
        } else {
            AMS_FAIL(err, AMS_E_FORMAT, "header has an unexpected key '%s'", key);
        }
        if (eat(&c, ',')) continue;
        AMS_FAIL_IF(!eat(&c, '}'), err, AMS_E_FORMAT, "header dict is malformed after '%s'",
                    key);
        break;
    }
    skip_ws(&c);
    AMS_FAIL_IF(c.p != c.end, err, AMS_E_FORMAT, "header has bytes after the dict");
    AMS_FAIL_IF(!have_descr, err, AMS_E_FORMAT, "header has no 'descr'");
    AMS_FAIL_IF(!have_order, err, AMS_E_FORMAT, "header has no 'fortran_order'");
    AMS_FAIL_IF(!have_shape, err, AMS_E_FORMAT, "header has no 'shape'");
    return AMS_OK;
}

/* ---- parse ---- */

static ams_status convert(ams_tensor *t, const npy_type *ty, const uint8_t *src, size_t n,
                          ams_err *err) {
    if (ty->size == ams_dtype_size(t->dtype)) {
        if (n) memcpy(t->data, src, n * ty->size);
        return AMS_OK;
    }
    if (!strcmp(ty->descr, "<f2")) {
        float *dst = t->data;
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            dst[i] = ams_f16_to_f32(h);
        }
    } else if (!strcmp(ty->descr, "<f8")) {
        float *dst = t->data;
        for (size_t i = 0; i < n; i++) {
            double d;
            memcpy(&d, src + 8 * i, 8);
            AMS_FAIL_IF(isfinite(d) && fabs(d) > FLT_MAX, err, AMS_E_RANGE,
                        "float64 element %zu (%g) is outside the float32 range", i, d);
            dst[i] = (float)d;
        }
    } else { /* <i8 */
        int32_t *dst = t->data;
        for (size_t i = 0; i < n; i++) {
            int64_t v;
            memcpy(&v, src + 8 * i, 8);
            AMS_FAIL_IF(v < INT32_MIN || v > INT32_MAX, err, AMS_E_RANGE,
                        "int64 element %zu (%lld) is outside the int32 range", i, (long long)v);
            dst[i] = (int32_t)v;
        }
    }
    return AMS_OK;
}

ams_status ams_npy_parse(const uint8_t *buf, size_t len, ams_tensor **out, ams_err *err) {
    *out = NULL;
    AMS_FAIL_IF(len < 10, err, AMS_E_FORMAT, "not a .npy file: %zu bytes, too short", len);
    AMS_FAIL_IF(memcmp(buf, "\x93NUMPY", 6) != 0, err, AMS_E_FORMAT,
                "not a .npy file (bad magic)");
    int major = buf[6], minor = buf[7];
    AMS_FAIL_IF(major < 1 || major > 3 || minor != 0, err, AMS_E_FORMAT,
                ".npy format version %d.%d is not supported (1.0, 2.0, 3.0)", major, minor);
    size_t start, hlen;
    if (major == 1) {
        hlen = (size_t)buf[8] | (size_t)buf[9] << 8;
        start = 10;
    } else {
        AMS_FAIL_IF(len < 12, err, AMS_E_FORMAT, "truncated .npy preamble (%zu bytes)", len);
        hlen = (size_t)buf[8] | (size_t)buf[9] << 8 | (size_t)buf[10] << 16 |
               (size_t)buf[11] << 24;
        start = 12;
    }
    AMS_FAIL_IF(hlen > NPY_MAX_HEADER, err, AMS_E_FORMAT,
                "header length %zu exceeds the limit of %zu", hlen, NPY_MAX_HEADER);
    AMS_FAIL_IF(hlen > len - start, err, AMS_E_FORMAT,
                "truncated header: header length says %zu bytes, file has %zu after the preamble",
                hlen, len - start);
    npy_header h = {0};
    AMS_TRY(parse_dict((const char *)buf + start, hlen, &h, err));

    size_t numel = 1;
    for (int i = 0; i < h.ndim; i++) {
        char s[256];
        /* every prefix product must fit: tensor code multiplies shapes left to right */
        AMS_FAIL_IF(!ams_size_mul_ok(numel, (size_t)h.shape[i], &numel) ||
                        numel > (size_t)INT64_MAX,
                    err, AMS_E_RANGE, "shape %s is too large",
                    ams_shape_str(s, sizeof s, h.ndim, h.shape));
    }
    size_t need, have = len - start - hlen;
    AMS_FAIL_IF(!ams_size_mul_ok(numel, h.type->size, &need) || need > AMS_NPY_MAX_BYTES, err,
                AMS_E_RANGE, "data of %zu elements of %s exceeds the limit of %zu bytes", numel,
                h.type->descr, AMS_NPY_MAX_BYTES);
    AMS_FAIL_IF(have < need, err, AMS_E_FORMAT,
                "truncated: header says %zu bytes of data, file has %zu", need, have);
    AMS_FAIL_IF(have > need, err, AMS_E_FORMAT,
                "%zu trailing bytes: header says %zu bytes of data, file has %zu", have - need,
                need, have);
    ams_tensor *t = ams_tensor_new_dtype(h.type->dtype, h.ndim, h.shape);
    AMS_FAIL_IF(!t, err, AMS_E_NOMEM, "cannot allocate a tensor of %zu elements", numel);
    ams_status s = convert(t, h.type, buf + start + hlen, numel, err);
    if (s != AMS_OK) {
        ams_tensor_free(t);
        return s;
    }
    *out = t;
    return AMS_OK;
}

ams_status ams_npy_read(const char *path, ams_tensor **out, ams_err *err) {
    *out = NULL;
    uint8_t *buf;
    size_t len;
    AMS_TRY(ams_file_read_all(path, AMS_NPY_MAX_BYTES + NPY_MAX_HEADER + 12, &buf, &len, err));
    ams_status s = ams_npy_parse(buf, len, out, err);
    free(buf);
    if (s != AMS_OK) ams_err_prefix(err, "%s", path);
    return s;
}

/* ---- write ---- */

ams_status ams_npy_write(const char *path, const ams_tensor *t, ams_err *err) {
    const char *descr = t->dtype == AMS_F32   ? "<f4"
                        : t->dtype == AMS_U8  ? "|u1"
                        : t->dtype == AMS_I32 ? "<i4"
                                              : NULL;
    AMS_FAIL_IF(!descr, err, AMS_E_DTYPE, "%s: cannot write %s tensors to .npy", path,
                ams_dtype_name(t->dtype));
    AMS_FAIL_IF(t->ndim < 0 || t->ndim > AMS_MAX_DIMS, err, AMS_E_SHAPE,
                "%s: tensor has %d dimensions", path, t->ndim);
    size_t numel = 1, bytes;
    for (int i = 0; i < t->ndim; i++)
        AMS_FAIL_IF(t->shape[i] < 0 || !ams_size_mul_ok(numel, (size_t)t->shape[i], &numel),
                    err, AMS_E_SHAPE, "%s: tensor has an invalid shape", path);
    AMS_FAIL_IF(!ams_size_mul_ok(numel, ams_dtype_size(t->dtype), &bytes), err, AMS_E_SHAPE,
                "%s: tensor is too large", path);
    AMS_FAIL_IF(bytes && !t->data, err, AMS_E_INVAL, "%s: tensor has no data", path);

    /* byte-identical to numpy 1.24's np.save: sorted keys, repr(shape), growth padding,
     * then spaces so that the data starts at a multiple of 64 bytes, then '\n' */
    char shp[AMS_MAX_DIMS * 24 + 8], hdr[1024];
    size_t u = 0;
    shp[u++] = '(';
    for (int i = 0; i < t->ndim; i++)
        u += (size_t)snprintf(shp + u, sizeof shp - u, i ? ", %lld" : "%lld",
                              (long long)t->shape[i]);
    if (t->ndim == 1) shp[u++] = ',';
    shp[u++] = ')';
    shp[u] = 0;
    int n = snprintf(hdr, sizeof hdr, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }",
                     descr, shp);
    size_t h = (size_t)n;
    if (t->ndim > 0) {
        char d0[24];
        size_t digits = (size_t)snprintf(d0, sizeof d0, "%lld", (long long)t->shape[0]);
        for (size_t i = digits; i < NPY_GROWTH_DIGITS; i++) hdr[h++] = ' ';
    }
    size_t pad = 64 - ((10 + h + 1) % 64);
    memset(hdr + h, ' ', pad);
    h += pad;
    hdr[h++] = '\n';
    uint8_t pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (uint8_t)(h & 0xff),
                       (uint8_t)(h >> 8)};
    ams_chunk chunks[3] = {{pre, sizeof pre}, {hdr, h}, {t->data, bytes}};
    return ams_file_write_atomic(path, chunks, 3, err);
}
