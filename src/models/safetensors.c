/* safetensors.c - the safetensors weight format: bounded parsing of hostile bytes and
 * atomic writing.
 *
 * Layout: u64 little-endian N, N bytes of UTF-8 JSON (an object; optional "__metadata__"
 * string->string map; every other key a tensor {"dtype", "shape", "data_offsets":[b,e]}
 * with offsets relative to the data that follows the header), then the data.
 * Reading enforces what the reference (Rust) implementation enforces: the header starts
 * with '{', N <= AMS_SAFETENSORS_MAX_HEADER, integers are exact and non-negative, every
 * tensor's byte range is numel * dtype size, and the ranges tile the data exactly (no
 * overlap, no gap, nothing after the last tensor). Unknown fields in a tensor entry are
 * ignored, as the reference does. JSON numbers are IEEE doubles in cJSON, so shapes and
 * offsets must be integers below 2^53. */
#include "ams/safetensors.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/file_io.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host"
#endif

#define ST_MAX_FILE ((size_t)1 << 36) /* 64 GiB: far beyond any student or teacher */
#define ST_MAX_VALUES 4000000        /* JSON values in a header: 100000 tensors need 1.4M */
#define ST_MAX_INT 9007199254740992.0 /* 2^53: doubles hold every integer below it */

typedef struct st_type {
    const char *name; /* as in the file */
    ams_dtype stored; /* element type on disk */
    ams_dtype loaded; /* element type of the tensor we return */
} st_type;

static const st_type st_types[] = {
    {"F32", AMS_F32, AMS_F32}, {"F16", AMS_F16, AMS_F32}, {"BF16", AMS_BF16, AMS_F32},
    {"U8", AMS_U8, AMS_U8},    {"I32", AMS_I32, AMS_I32},
};

typedef struct st_entry {
    char *name;
    const st_type *type;
    size_t begin, end; /* byte range within the data section */
    ams_tensor t;      /* t.data owned by the entry */
} st_entry;

struct ams_safetensors {
    int count;
    st_entry *e;    /* count entries, file (JSON) order */
    int *by_name;   /* count indices sorted by name, for find */
    int nmeta;
    char **meta;    /* 2 * nmeta strings: key, value, ... */
};

void ams_safetensors_free(ams_safetensors *st) {
    if (!st) return;
    for (int i = 0; i < st->count; i++) {
        free(st->e[i].name);
        free(st->e[i].t.data);
    }
    for (int i = 0; i < 2 * st->nmeta; i++) free(st->meta[i]);
    free(st->e);
    free(st->by_name);
    free(st->meta);
    free(st);
}

/* ---- helpers ---- */

/* 1 if s[0..n) is well-formed UTF-8 (no overlongs, surrogates or code points > U+10FFFF). */
static int utf8_valid(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t k;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            k = 1, cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            k = 2, cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            k = 3, cp = c & 0x07;
        } else {
            return 0;
        }
        if (n - i <= k) return 0;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80) return 0;
            cp = cp << 6 | (s[i + j] & 0x3f);
        }
        if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += k + 1;
    }
    return 1;
}

/* Offset of the first control byte JSON forbids (raw < 0x20 other than tab, LF, CR:
 * invalid inside strings and as whitespace), or n if none. cJSON would skip or keep them. */
static size_t find_control(const uint8_t *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x20 && s[i] != '\t' && s[i] != '\n' && s[i] != '\r') return i;
    return n;
}

/* An exact non-negative JSON integer below 2^53. */
static int json_uint(const cJSON *j, size_t *out) {
    if (!cJSON_IsNumber(j)) return 0;
    double d = j->valuedouble;
    if (!(d >= 0 && d < ST_MAX_INT) || d != (double)(uint64_t)d) return 0;
    *out = (size_t)d;
    return 1;
}

static const st_type *find_type(const char *name) {
    for (size_t i = 0; i < sizeof st_types / sizeof st_types[0]; i++)
        if (!strcmp(name, st_types[i].name)) return &st_types[i];
    return NULL;
}

static const char *type_name(ams_dtype d) {
    for (size_t i = 0; i < sizeof st_types / sizeof st_types[0]; i++)
        if (st_types[i].stored == d) return st_types[i].name;
    return NULL;
}

/* ---- parse ---- */

static ams_status parse_entry(const cJSON *j, st_entry *e, size_t data_len, ams_err *err) {
    const char *nm = e->name;
    AMS_FAIL_IF(!cJSON_IsObject(j), err, AMS_E_FORMAT, "tensor '%s': entry is not an object",
                nm);
    const cJSON *dtype = NULL, *shape = NULL, *offs = NULL;
    for (const cJSON *f = j->child; f; f = f->next) {
        const cJSON **slot = !strcmp(f->string, "dtype")          ? &dtype
                             : !strcmp(f->string, "shape")        ? &shape
                             : !strcmp(f->string, "data_offsets") ? &offs
                                                                  : NULL;
        if (!slot) continue; /* unknown fields are ignored, as the reference does */
        AMS_FAIL_IF(*slot, err, AMS_E_FORMAT, "tensor '%s': field '%s' appears twice", nm,
                    f->string);
        *slot = f;
    }
    AMS_FAIL_IF(!dtype || !cJSON_IsString(dtype), err, AMS_E_FORMAT,
                "tensor '%s': no \"dtype\" string", nm);
    e->type = find_type(dtype->valuestring);
    AMS_FAIL_IF(!e->type, err, AMS_E_DTYPE,
                "tensor '%s' has dtype %.32s, which is not supported (F32, F16, BF16, U8, I32)",
                nm, dtype->valuestring);
    AMS_FAIL_IF(!shape || !cJSON_IsArray(shape), err, AMS_E_FORMAT,
                "tensor '%s': no \"shape\" array", nm);
    int ndim = 0;
    size_t numel = 1;
    for (const cJSON *d = shape->child; d; d = d->next) {
        AMS_FAIL_IF(ndim == AMS_MAX_DIMS, err, AMS_E_SHAPE,
                    "tensor '%s' has more than %d dimensions", nm, AMS_MAX_DIMS);
        size_t v;
        AMS_FAIL_IF(!json_uint(d, &v), err, AMS_E_FORMAT,
                    "tensor '%s': shape[%d] is not a non-negative integer below 2^53", nm, ndim);
        /* every prefix product must fit, as in the reference (and ams_tensor_numel) */
        AMS_FAIL_IF(!ams_size_mul_ok(numel, v, &numel) || numel > (size_t)INT64_MAX, err,
                    AMS_E_RANGE, "tensor '%s': shape overflows (dimension %d is %zu)", nm, ndim,
                    v);
        e->t.shape[ndim++] = (int64_t)v;
    }
    e->t.ndim = ndim;
    AMS_FAIL_IF(!offs || !cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2, err,
                AMS_E_FORMAT, "tensor '%s': no \"data_offsets\" [begin, end] pair", nm);
    AMS_FAIL_IF(!json_uint(offs->child, &e->begin) || !json_uint(offs->child->next, &e->end),
                err, AMS_E_FORMAT, "tensor '%s': data_offsets are not non-negative integers",
                nm);
    AMS_FAIL_IF(e->begin > e->end, err, AMS_E_FORMAT,
                "tensor '%s': data_offsets [%zu, %zu] end before they begin", nm, e->begin,
                e->end);
    AMS_FAIL_IF(e->end > data_len, err, AMS_E_FORMAT,
                "tensor '%s': data_offsets [%zu, %zu] are outside the %zu bytes of data", nm,
                e->begin, e->end, data_len);
    size_t need;
    char s[256];
    AMS_FAIL_IF(!ams_size_mul_ok(numel, ams_dtype_size(e->type->stored), &need) ||
                    need != e->end - e->begin,
                err, AMS_E_FORMAT,
                "tensor '%s': shape %s of %s needs %zu bytes, data_offsets [%zu, %zu] hold %zu",
                nm, ams_shape_str(s, sizeof s, ndim, e->t.shape), e->type->name,
                numel * ams_dtype_size(e->type->stored), e->begin, e->end, e->end - e->begin);
    return AMS_OK;
}

/* qsort comparators need the entries; sort index arrays through a file-static-free trick:
 * sort (key, index) records instead. */
typedef struct by_off {
    size_t begin, end;
    int i;
} by_off;

static int cmp_off(const void *a, const void *b) {
    const by_off *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return x->i - y->i;
}

typedef struct by_name {
    const char *name;
    int i;
} by_name;

static int cmp_name(const void *a, const void *b) {
    const by_name *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : x->i - y->i;
}

/* The byte ranges must tile [0, data_len) exactly, in some order. */
static ams_status check_tiling(const ams_safetensors *st, size_t data_len, ams_err *err) {
    if (st->count == 0) {
        AMS_FAIL_IF(data_len, err, AMS_E_FORMAT, "%zu bytes of data but no tensors", data_len);
        return AMS_OK;
    }
    by_off *o = malloc((size_t)st->count * sizeof *o);
    AMS_FAIL_IF(!o, err, AMS_E_NOMEM, "out of memory sorting %d tensors", st->count);
    for (int i = 0; i < st->count; i++) o[i] = (by_off){st->e[i].begin, st->e[i].end, i};
    qsort(o, (size_t)st->count, sizeof *o, cmp_off);
    size_t pos = 0;
    int prev = -1;
    ams_status s = AMS_OK;
    for (int k = 0; k < st->count && s == AMS_OK; k++) {
        const st_entry *e = &st->e[o[k].i];
        if (e->begin < pos)
            s = ams_err_set(err, AMS_E_FORMAT,
                            "tensor '%s' data [%zu, %zu) overlaps tensor '%s' [%zu, %zu)", e->name,
                            e->begin, e->end, st->e[prev].name, st->e[prev].begin,
                            st->e[prev].end);
        else if (e->begin > pos)
            s = ams_err_set(err, AMS_E_FORMAT,
                            "gap in the data: tensor '%s' begins at %zu, the previous data ends "
                            "at %zu", e->name, e->begin, pos);
        pos = e->end;
        prev = o[k].i;
    }
    free(o);
    AMS_TRY(s);
    AMS_FAIL_IF(pos != data_len, err, AMS_E_FORMAT,
                "%zu bytes of data after the last tensor (data ends at %zu, file has %zu)",
                data_len - pos, pos, data_len);
    return AMS_OK;
}

static ams_status index_names(ams_safetensors *st, ams_err *err) {
    by_name *b = malloc((size_t)(st->count ? st->count : 1) * sizeof *b);
    st->by_name = malloc((size_t)(st->count ? st->count : 1) * sizeof *st->by_name);
    if (!b || !st->by_name) {
        free(b);
        AMS_FAIL(err, AMS_E_NOMEM, "out of memory indexing %d tensors", st->count);
    }
    for (int i = 0; i < st->count; i++) b[i] = (by_name){st->e[i].name, i};
    qsort(b, (size_t)st->count, sizeof *b, cmp_name);
    ams_status s = AMS_OK;
    for (int k = 0; k < st->count; k++) {
        st->by_name[k] = b[k].i;
        if (k > 0 && !strcmp(b[k].name, b[k - 1].name) && s == AMS_OK)
            s = ams_err_set(err, AMS_E_FORMAT, "duplicate tensor name '%s'", b[k].name);
    }
    free(b);
    return s;
}

static int cmp_meta(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static ams_status parse_metadata(const cJSON *j, ams_safetensors *st, ams_err *err) {
    AMS_FAIL_IF(st->meta, err, AMS_E_FORMAT, "__metadata__ appears twice");
    AMS_FAIL_IF(!cJSON_IsObject(j), err, AMS_E_FORMAT, "__metadata__ is not an object");
    int n = cJSON_GetArraySize(j);
    st->meta = calloc((size_t)(n ? 2 * n : 1), sizeof *st->meta);
    AMS_FAIL_IF(!st->meta, err, AMS_E_NOMEM, "out of memory for __metadata__");
    for (const cJSON *m = j->child; m; m = m->next) {
        AMS_FAIL_IF(!cJSON_IsString(m), err, AMS_E_FORMAT,
                    "__metadata__ value of '%.64s' is not a string", m->string);
        char *k = strdup(m->string), *v = strdup(m->valuestring);
        st->meta[2 * st->nmeta] = k;
        st->meta[2 * st->nmeta + 1] = v;
        st->nmeta++;
        AMS_FAIL_IF(!k || !v, err, AMS_E_NOMEM, "out of memory for __metadata__");
    }
    /* keys unique: sort (key, value) pairs by key; lookups stay a linear scan */
    qsort(st->meta, (size_t)st->nmeta, 2 * sizeof *st->meta, cmp_meta);
    for (int k = 1; k < st->nmeta; k++)
        AMS_FAIL_IF(!strcmp(st->meta[2 * k], st->meta[2 * k - 2]), err, AMS_E_FORMAT,
                    "__metadata__ key '%.64s' appears twice", st->meta[2 * k]);
    return AMS_OK;
}

/* Number of JSON values in the text, roughly (commas and openers outside strings + 1):
 * bounding it bounds what cJSON allocates for a hostile 100 MB header. */
static size_t count_values(const uint8_t *s, size_t n) {
    size_t count = 1;
    int in_str = 0;
    for (size_t i = 0; i < n; i++) {
        if (in_str) {
            if (s[i] == '\\') i++;
            else if (s[i] == '"') in_str = 0;
        } else if (s[i] == '"') {
            in_str = 1;
        } else if (s[i] == ',' || s[i] == '[' || s[i] == '{') {
            count++;
        }
    }
    return count;
}

static ams_status load_data(st_entry *e, const uint8_t *data, ams_err *err) {
    size_t n = (size_t)ams_tensor_numel(&e->t), out;
    e->t.dtype = e->type->loaded;
    e->t.owns = 1;
    if (!ams_size_mul_ok(n, ams_dtype_size(e->t.dtype), &out) ||
        !(e->t.data = malloc(out ? out : 1)))
        AMS_FAIL(err, AMS_E_NOMEM, "tensor '%s': cannot allocate %zu elements", e->name, n);
    const uint8_t *src = data + e->begin;
    float *dst = e->t.data;
    if (e->type->stored == AMS_F16) {
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            dst[i] = ams_f16_to_f32(h);
        }
    } else if (e->type->stored == AMS_BF16) {
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            dst[i] = ams_bf16_to_f32(h);
        }
    } else if (out) {
        memcpy(e->t.data, src, out);
    }
    return AMS_OK;
}

static ams_status parse_header(const cJSON *root, ams_safetensors *st, size_t data_len,
                               ams_err *err) {
    AMS_FAIL_IF(!cJSON_IsObject(root), err, AMS_E_FORMAT, "header is not a JSON object");
    int n = 0;
    for (const cJSON *c = root->child; c; c = c->next)
        if (strcmp(c->string, "__metadata__")) n++;
    AMS_FAIL_IF(n > AMS_SAFETENSORS_MAX_TENSORS, err, AMS_E_RANGE,
                "%d tensors exceed the limit of %d", n, AMS_SAFETENSORS_MAX_TENSORS);
    st->e = calloc((size_t)(n ? n : 1), sizeof *st->e);
    AMS_FAIL_IF(!st->e, err, AMS_E_NOMEM, "out of memory for %d tensors", n);
    for (const cJSON *c = root->child; c; c = c->next) {
        if (!strcmp(c->string, "__metadata__")) {
            AMS_TRY(parse_metadata(c, st, err));
            continue;
        }
        st_entry *e = &st->e[st->count];
        e->name = strdup(c->string);
        AMS_FAIL_IF(!e->name, err, AMS_E_NOMEM, "out of memory for tensor names");
        st->count++;
        AMS_TRY(parse_entry(c, e, data_len, err));
    }
    AMS_TRY(index_names(st, err));
    return check_tiling(st, data_len, err);
}

ams_status ams_safetensors_parse(const uint8_t *buf, size_t len, ams_safetensors **out,
                                 ams_err *err) {
    *out = NULL;
    AMS_FAIL_IF(len < 8, err, AMS_E_FORMAT,
                "file is %zu bytes, too short for the 8-byte header length", len);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | buf[i];
    AMS_FAIL_IF(n > AMS_SAFETENSORS_MAX_HEADER, err, AMS_E_FORMAT,
                "header length %llu exceeds the limit of %zu", (unsigned long long)n,
                AMS_SAFETENSORS_MAX_HEADER);
    AMS_FAIL_IF(n > len - 8, err, AMS_E_FORMAT,
                "truncated: header length says %llu bytes, the file has %zu after it",
                (unsigned long long)n, len - 8);
    const uint8_t *h = buf + 8, *data = buf + 8 + n;
    size_t hn = (size_t)n, data_len = len - 8 - hn;
    AMS_FAIL_IF(hn == 0 || h[0] != '{', err, AMS_E_FORMAT, "header does not start with '{'");
    AMS_FAIL_IF(!utf8_valid(h, hn), err, AMS_E_FORMAT, "header is not valid UTF-8");
    size_t ctl = find_control(h, hn);
    AMS_FAIL_IF(ctl < hn, err, AMS_E_FORMAT,
                "header is not valid JSON (control byte 0x%02x at byte %zu)", h[ctl], ctl);
    AMS_FAIL_IF(count_values(h, hn) > ST_MAX_VALUES, err, AMS_E_RANGE,
                "header holds more than %d JSON values", ST_MAX_VALUES);

    /* cJSON wants a terminated string; with the terminator it insists on nothing after the
     * JSON value but whitespace (the writer's padding) */
    char *text = malloc(hn + 1);
    AMS_FAIL_IF(!text, err, AMS_E_NOMEM, "cannot allocate %zu bytes for the header", hn + 1);
    memcpy(text, h, hn);
    text[hn] = 0;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, hn + 1, &end, 1);
    if (!root || end != text + hn) {
        size_t at = end && end >= text && end <= text + hn ? (size_t)(end - text) : 0;
        cJSON_Delete(root);
        free(text);
        AMS_FAIL(err, AMS_E_FORMAT, "header is not valid JSON (near byte %zu of %zu)", at, hn);
    }
    free(text);
    ams_safetensors *st = calloc(1, sizeof *st);
    ams_status s = st ? parse_header(root, st, data_len, err)
                      : ams_err_set(err, AMS_E_NOMEM, "out of memory");
    cJSON_Delete(root);
    for (int i = 0; i < (st ? st->count : 0) && s == AMS_OK; i++)
        s = load_data(&st->e[i], data, err);
    if (s != AMS_OK) {
        ams_safetensors_free(st);
        return s;
    }
    *out = st;
    return AMS_OK;
}

ams_status ams_safetensors_read(const char *path, ams_safetensors **out, ams_err *err) {
    *out = NULL;
    uint8_t *buf;
    size_t len;
    AMS_TRY(ams_file_read_all(path, ST_MAX_FILE, &buf, &len, err));
    ams_status s = ams_safetensors_parse(buf, len, out, err);
    free(buf);
    if (s != AMS_OK) ams_err_prefix(err, "%s", path);
    return s;
}

/* ---- queries ---- */

int ams_safetensors_count(const ams_safetensors *st) { return st ? st->count : 0; }

const ams_tensor *ams_safetensors_get(const ams_safetensors *st, int i, const char **name) {
    if (!st || i < 0 || i >= st->count) return NULL;
    if (name) *name = st->e[i].name;
    return &st->e[i].t;
}

const char *ams_safetensors_dtype(const ams_safetensors *st, int i) {
    if (!st || i < 0 || i >= st->count) return NULL;
    return st->e[i].type->name;
}

size_t ams_safetensors_nbytes(const ams_safetensors *st, int i) {
    if (!st || i < 0 || i >= st->count) return 0;
    return st->e[i].end - st->e[i].begin;
}

const ams_tensor *ams_safetensors_find(const ams_safetensors *st, const char *name) {
    if (!st) return NULL;
    int lo = 0, hi = st->count - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(name, st->e[st->by_name[mid]].name);
        if (!c) return &st->e[st->by_name[mid]].t;
        if (c < 0) hi = mid - 1;
        else lo = mid + 1;
    }
    return NULL;
}

const char *ams_safetensors_metadata(const ams_safetensors *st, const char *key) {
    if (!st) return NULL;
    for (int i = 0; i < st->nmeta; i++)
        if (!strcmp(st->meta[2 * i], key)) return st->meta[2 * i + 1];
    return NULL;
}

/* ---- write ---- */

typedef struct strbuf {
    char *p;
    size_t n, cap;
    int oom;
} strbuf;

static void sb_put(strbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->cap - b->n < n + 1) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->n < n + 1) {
            if (!ams_size_mul_ok(cap, 2, &cap)) {
                b->oom = 1;
                return;
            }
        }
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void sb_str(strbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

/* A JSON string literal, escaped as serde_json does. */
static void sb_json(strbuf *b, const char *s) {
    sb_put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        if (c == '"') sb_put(b, "\\\"", 2);
        else if (c == '\\') sb_put(b, "\\\\", 2);
        else if (c == '\n') sb_put(b, "\\n", 2);
        else if (c == '\r') sb_put(b, "\\r", 2);
        else if (c == '\t') sb_put(b, "\\t", 2);
        else if (c == '\b') sb_put(b, "\\b", 2);
        else if (c == '\f') sb_put(b, "\\f", 2);
        else if (c < 0x20) sb_put(b, esc, (size_t)snprintf(esc, sizeof esc, "\\u%04x", c));
        else sb_put(b, (const char *)&c, 1);
    }
    sb_put(b, "\"", 1);
}

static void sb_uint(strbuf *b, unsigned long long v) {
    char s[24];
    sb_put(b, s, (size_t)snprintf(s, sizeof s, "%llu", v));
}

static ams_status check_string(const char *s, const char *what, ams_err *err) {
    AMS_FAIL_IF(!s, err, AMS_E_INVAL, "%s is NULL", what);
    AMS_FAIL_IF(!utf8_valid((const uint8_t *)s, strlen(s)), err, AMS_E_INVAL,
                "%s is not valid UTF-8", what);
    return AMS_OK;
}

static ams_status build_header(strbuf *b, int count, const char *const *names,
                               const ams_tensor *const *tensors, size_t *nbytes, int nmeta,
                               const char *const *meta_keys, const char *const *meta_values,
                               ams_err *err) {
    sb_str(b, "{");
    if (nmeta > 0) {
        sb_str(b, "\"__metadata__\":{");
        for (int i = 0; i < nmeta; i++) {
            AMS_TRY(check_string(meta_keys[i], "a metadata key", err));
            AMS_TRY(check_string(meta_values[i], "a metadata value", err));
            for (int k = 0; k < i; k++)
                AMS_FAIL_IF(!strcmp(meta_keys[i], meta_keys[k]), err, AMS_E_INVAL,
                            "metadata key '%s' given twice", meta_keys[i]);
            if (i) sb_str(b, ",");
            sb_json(b, meta_keys[i]);
            sb_str(b, ":");
            sb_json(b, meta_values[i]);
        }
        sb_str(b, "}");
    }
    size_t off = 0;
    for (int i = 0; i < count; i++) {
        AMS_TRY(check_string(names[i], "a tensor name", err));
        const ams_tensor *t = tensors[i];
        const char *nm = names[i];
        AMS_FAIL_IF(!strcmp(nm, "__metadata__"), err, AMS_E_INVAL,
                    "'__metadata__' cannot be a tensor name");
        AMS_FAIL_IF(!t, err, AMS_E_INVAL, "tensor '%s' is NULL", nm);
        const char *tn = type_name(t->dtype);
        AMS_FAIL_IF(!tn, err, AMS_E_DTYPE, "tensor '%s': cannot write dtype %s", nm,
                    ams_dtype_name(t->dtype));
        AMS_FAIL_IF(t->ndim < 0 || t->ndim > AMS_MAX_DIMS, err, AMS_E_SHAPE,
                    "tensor '%s' has %d dimensions", nm, t->ndim);
        size_t numel = 1;
        for (int d = 0; d < t->ndim; d++)
            AMS_FAIL_IF(t->shape[d] < 0 || !ams_size_mul_ok(numel, (size_t)t->shape[d], &numel),
                        err, AMS_E_SHAPE, "tensor '%s' has an invalid shape", nm);
        AMS_FAIL_IF(!ams_size_mul_ok(numel, ams_dtype_size(t->dtype), &nbytes[i]), err,
                    AMS_E_SHAPE, "tensor '%s' is too large", nm);
        AMS_FAIL_IF(nbytes[i] && !t->data, err, AMS_E_INVAL, "tensor '%s' has no data", nm);
        size_t end;
        AMS_FAIL_IF(!ams_size_add_ok(off, nbytes[i], &end), err, AMS_E_RANGE,
                    "tensors too large");
        if (i || nmeta > 0) sb_str(b, ",");
        sb_json(b, nm);
        sb_str(b, ":{\"dtype\":\"");
        sb_str(b, tn);
        sb_str(b, "\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++) {
            if (d) sb_str(b, ",");
            sb_uint(b, (unsigned long long)t->shape[d]);
        }
        sb_str(b, "],\"data_offsets\":[");
        sb_uint(b, off);
        sb_str(b, ",");
        sb_uint(b, end);
        sb_str(b, "]}");
        off = end;
    }
    sb_str(b, "}");
    while (b->n % 8) sb_str(b, " "); /* the data starts 8-byte aligned, as the reference */
    AMS_FAIL_IF(b->oom, err, AMS_E_NOMEM, "out of memory building the header");
    AMS_FAIL_IF(b->n > AMS_SAFETENSORS_MAX_HEADER, err, AMS_E_RANGE,
                "header of %zu bytes exceeds the limit of %zu", b->n, AMS_SAFETENSORS_MAX_HEADER);
    /* names must be unique: sort a copy */
    by_name *s = malloc((size_t)(count ? count : 1) * sizeof *s);
    AMS_FAIL_IF(!s, err, AMS_E_NOMEM, "out of memory");
    for (int i = 0; i < count; i++) s[i] = (by_name){names[i], i};
    qsort(s, (size_t)count, sizeof *s, cmp_name);
    for (int k = 1; k < count; k++) {
        if (!strcmp(s[k].name, s[k - 1].name)) {
            ams_err_set(err, AMS_E_INVAL, "tensor name '%s' given twice", s[k].name);
            free(s);
            return AMS_E_INVAL;
        }
    }
    free(s);
    return AMS_OK;
}

ams_status ams_safetensors_write(const char *path, int count, const char *const *names,
                                 const ams_tensor *const *tensors, int nmeta,
                                 const char *const *meta_keys, const char *const *meta_values,
                                 ams_err *err) {
    AMS_FAIL_IF(count < 0 || count > AMS_SAFETENSORS_MAX_TENSORS, err, AMS_E_RANGE,
                "%s: %d tensors (at most %d)", path, count, AMS_SAFETENSORS_MAX_TENSORS);
    AMS_FAIL_IF(nmeta < 0 || (nmeta > 0 && (!meta_keys || !meta_values)), err, AMS_E_INVAL,
                "%s: bad metadata arguments", path);
    AMS_FAIL_IF(count > 0 && (!names || !tensors), err, AMS_E_INVAL, "%s: no tensors given",
                path);
    size_t *nbytes = malloc((size_t)(count ? count : 1) * sizeof *nbytes);
    ams_chunk *ch = malloc((size_t)(count + 2) * sizeof *ch);
    strbuf b = {0};
    ams_status s;
    if (!nbytes || !ch) {
        s = ams_err_set(err, AMS_E_NOMEM, "%s: out of memory", path);
        goto done;
    }
    s = build_header(&b, count, names, tensors, nbytes, nmeta, meta_keys, meta_values, err);
    if (s != AMS_OK) {
        ams_err_prefix(err, "%s", path);
        goto done;
    }
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)b.n >> (8 * i));
    ch[0] = (ams_chunk){len8, 8};
    ch[1] = (ams_chunk){b.p, b.n};
    for (int i = 0; i < count; i++) ch[i + 2] = (ams_chunk){tensors[i]->data, nbytes[i]};
    s = ams_file_write_atomic(path, ch, count + 2, err);
done:
    free(nbytes);
    free(ch);
    free(b.p);
    return s;
}
