/* test_safetensors.c - the safetensors reader and writer, and loading/saving ams_params.
 * Oracles: files written byte by byte from the format spec by
 * tools/ref/make_format_fixtures.py (F16/BF16 bit patterns cross-checked against numpy
 * there) with values hand-computed here; the writer must reproduce the spec writer's
 * bytes exactly; every class of bad input is built here and must give its status and a
 * message that names the problem. */
#include <dirent.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ams/safetensors.h"
#include "check.h"

#define FIX AMS_SOURCE_DIR "/tests/data/formats/"

static char tmpdir[256];

static const char *tmp_path(const char *name) {
    static char p[512];
    snprintf(p, sizeof p, "%s/%s", tmpdir, name);
    return p;
}

static uint8_t *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(n > 0 ? (size_t)n : 1);
    if (b && n > 0 && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return b;
}

static int count_prefix(const char *dir, const char *prefix) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL)
        if (!strncmp(e->d_name, prefix, strlen(prefix))) n++;
    if (d) closedir(d);
    return n;
}

static int shape_is(const ams_tensor *t, int ndim, const int64_t *shape) {
    if (t->ndim != ndim) return 0;
    for (int i = 0; i < ndim; i++)
        if (t->shape[i] != shape[i]) return 0;
    return 1;
}

/* ---- reading spec-written files ---- */

static int test_multi(void) {
    ams_err err = {0};
    ams_safetensors *st;
    CHECKF(ams_safetensors_read(FIX "multi.safetensors", &st, &err) == AMS_OK, "%s", err.msg);
    CHECK(ams_safetensors_count(st) == 4);
    const char *want[] = {"a/weights", "b", "c", "d"}, *stored[] = {"F32", "U8", "I32", "F32"};
    const size_t nbytes[] = {24, 4, 4, 0};
    for (int i = 0; i < 4; i++) {
        const char *name;
        CHECK(ams_safetensors_get(st, i, &name) != NULL);
        CHECK(!strcmp(name, want[i]));
        CHECK(!strcmp(ams_safetensors_dtype(st, i), stored[i]));
        CHECK(ams_safetensors_nbytes(st, i) == nbytes[i]);
        CHECK(ams_safetensors_find(st, want[i]) == ams_safetensors_get(st, i, NULL));
    }
    CHECK(ams_safetensors_get(st, 4, NULL) == NULL && ams_safetensors_get(st, -1, NULL) == NULL);
    CHECK(ams_safetensors_dtype(st, 4) == NULL);
    CHECK(ams_safetensors_find(st, "a") == NULL && ams_safetensors_find(st, "zz") == NULL);
    const ams_tensor *a = ams_safetensors_find(st, "a/weights");
    CHECK(a->dtype == AMS_F32 && shape_is(a, 2, (int64_t[]){2, 3}));
    for (int i = 0; i < 6; i++) CHECK(((float *)a->data)[i] == 0.25f * (float)i);
    const ams_tensor *b = ams_safetensors_find(st, "b");
    CHECK(b->dtype == AMS_U8 && shape_is(b, 1, (int64_t[]){4}));
    CHECK(!memcmp(b->data, (uint8_t[]){0, 7, 200, 255}, 4));
    const ams_tensor *c = ams_safetensors_find(st, "c");
    CHECK(c->dtype == AMS_I32 && c->ndim == 0 && ((int32_t *)c->data)[0] == -5);
    const ams_tensor *d = ams_safetensors_find(st, "d");
    CHECK(shape_is(d, 2, (int64_t[]){0, 2}) && ams_tensor_numel(d) == 0);
    CHECK(!strcmp(ams_safetensors_metadata(st, "format"), "pt"));
    CHECK(!strcmp(ams_safetensors_metadata(st, "note"), "ams"));
    CHECK(ams_safetensors_metadata(st, "nope") == NULL);
    ams_safetensors_free(st);
    ams_safetensors_free(NULL);
    return 0;
}

static int test_f16_bf16(void) {
    ams_err err = {0};
    ams_safetensors *st;
    CHECKF(ams_safetensors_read(FIX "f16.safetensors", &st, &err) == AMS_OK, "%s", err.msg);
    const ams_tensor *h = ams_safetensors_find(st, "h");
    CHECK(h && h->dtype == AMS_F32 && shape_is(h, 2, (int64_t[]){3, 3}));
    CHECK(!strcmp(ams_safetensors_dtype(st, 0), "F16") && ams_safetensors_nbytes(st, 0) == 18);
    const float *f = h->data;
    CHECK(f[0] == ldexpf(1, -24));         /* 0x0001: smallest subnormal */
    CHECK(f[1] == ldexpf(1023, -24));      /* 0x03ff: largest subnormal */
    CHECK(isinf(f[2]) && f[2] > 0);        /* 0x7c00 */
    CHECK(isinf(f[3]) && f[3] < 0);        /* 0xfc00 */
    CHECK(f[4] == 0 && signbit(f[4]));     /* 0x8000: negative zero */
    CHECK(f[5] == 1.0f);                   /* 0x3c00 */
    CHECK(f[6] == 65504.0f);               /* 0x7bff: largest finite */
    CHECK(f[7] == -2.0f);                  /* 0xc000 */
    CHECK(isnan(f[8]));                    /* 0x7e00 */
    ams_safetensors_free(st);

    CHECKF(ams_safetensors_read(FIX "bf16.safetensors", &st, &err) == AMS_OK, "%s", err.msg);
    const ams_tensor *g = ams_safetensors_find(st, "g");
    CHECK(g && g->dtype == AMS_F32 && shape_is(g, 1, (int64_t[]){6}));
    CHECK(!strcmp(ams_safetensors_dtype(st, 0), "BF16"));
    f = g->data;
    CHECK(f[0] == 1.0f && f[1] == -2.0f);
    CHECK(f[2] == ldexpf(1, -133));        /* 0x0001: a float32 subnormal */
    CHECK(isinf(f[3]) && f[3] > 0);
    CHECK(f[4] == 0 && signbit(f[4]));
    CHECK(f[5] == 3.140625f);              /* 0x4049 = 1.5703125 * 2 */
    ams_safetensors_free(st);
    return 0;
}

/* Every one of the 65536 F16 and BF16 bit patterns, written and read back, decodes to
 * the value an independent formula (ldexp of the integer significand) gives. */
static float f16_formula(uint16_t h) {
    int sign = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    float v = e == 0 ? ldexpf((float)m, -24) : e == 31 ? (m ? NAN : INFINITY)
                                                       : ldexpf((float)(1024 + m), e - 25);
    return sign ? -v : v;
}

static float bf16_formula(uint16_t h) {
    int sign = h >> 15, e = (h >> 7) & 255, m = h & 127;
    float v = e == 0 ? ldexpf((float)m, -133) : e == 255 ? (m ? NAN : INFINITY)
                                                         : ldexpf((float)(128 + m), e - 134);
    return sign ? -v : v;
}

static int test_half_exhaustive(void) {
    ams_tensor *h = ams_tensor_new_dtype(AMS_F16, 2, (int64_t[]){256, 256});
    ams_tensor *b = ams_tensor_new_dtype(AMS_BF16, 1, (int64_t[]){65536});
    for (int i = 0; i < 65536; i++) ((uint16_t *)h->data)[i] = ((uint16_t *)b->data)[i] = (uint16_t)i;
    const char *names[] = {"half", "brain"};
    const ams_tensor *ts[] = {h, b};
    ams_err err = {0};
    CHECK(ams_safetensors_write(tmp_path("x.safetensors"), 2, names, ts, 0, NULL, NULL, &err) == AMS_OK);
    ams_safetensors *st;
    CHECKF(ams_safetensors_read(tmp_path("x.safetensors"), &st, &err) == AMS_OK, "%s", err.msg);
    const float *fh = ams_safetensors_find(st, "half")->data;
    const float *fb = ams_safetensors_find(st, "brain")->data;
    for (int i = 0; i < 65536; i++) {
        float w = f16_formula((uint16_t)i), v = bf16_formula((uint16_t)i);
        CHECKF(isnan(w) ? isnan(fh[i]) : (fh[i] == w && signbit(fh[i]) == signbit(w)),
               "F16 0x%04x: got %g, want %g", i, fh[i], w);
        CHECKF(isnan(v) ? isnan(fb[i]) : (fb[i] == v && signbit(fb[i]) == signbit(v)),
               "BF16 0x%04x: got %g, want %g", i, fb[i], v);
    }
    ams_safetensors_free(st);
    ams_tensor_free(h);
    ams_tensor_free(b);
    return 0;
}

static int test_json_order(void) {
    ams_err err = {0};
    ams_safetensors *st;
    CHECKF(ams_safetensors_read(FIX "order.safetensors", &st, &err) == AMS_OK, "%s", err.msg);
    const char *name;
    const ams_tensor *t = ams_safetensors_get(st, 0, &name);
    CHECK(!strcmp(name, "second") && ((float *)t->data)[0] == 3 && ((float *)t->data)[1] == 4);
    t = ams_safetensors_get(st, 1, &name);
    CHECK(!strcmp(name, "first") && ((float *)t->data)[0] == 1 && ((float *)t->data)[1] == 2);
    ams_safetensors_free(st);
    return 0;
}

/* ---- writing ---- */

/* Writing what we read from multi.safetensors, in the same order, with the same metadata,
 * must give the spec writer's bytes. */
static int test_write_matches_spec(void) {
    ams_err err = {0};
    ams_safetensors *st;
    CHECK(ams_safetensors_read(FIX "multi.safetensors", &st, &err) == AMS_OK);
    const char *names[4];
    const ams_tensor *ts[4];
    for (int i = 0; i < 4; i++) ts[i] = ams_safetensors_get(st, i, &names[i]);
    const char *keys[] = {"format", "note"}, *vals[] = {"pt", "ams"};
    CHECKF(ams_safetensors_write(tmp_path("m.safetensors"), 4, names, ts, 2, keys, vals, &err) ==
               AMS_OK, "%s", err.msg);
    ams_safetensors_free(st);
    size_t na, nb;
    uint8_t *a = slurp(FIX "multi.safetensors", &na), *b = slurp(tmp_path("m.safetensors"), &nb);
    CHECK(a && b);
    CHECKF(na == nb && !memcmp(a, b, na), "%zu bytes from the spec writer, %zu from us", na, nb);
    free(a);
    free(b);
    CHECK(count_prefix(tmpdir, "m.safetensors.tmp") == 0);
    return 0;
}

static uint64_t rng_state = 0x243f6a8885a308d3ull;
static uint32_t rnd(void) {
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng_state >> 33);
}

static int test_roundtrip(void) {
    enum { N = 12 };
    const ams_dtype types[] = {AMS_F32, AMS_U8, AMS_I32};
    for (int it = 0; it < 20; it++) {
        ams_tensor *t[N];
        const ams_tensor *tc[N];
        char namebuf[N][32];
        const char *names[N];
        for (int i = 0; i < N; i++) {
            int ndim = (int)(rnd() % (AMS_MAX_DIMS + 1));
            int64_t shape[AMS_MAX_DIMS];
            for (int d = 0; d < ndim; d++) shape[d] = ndim > 3 ? 1 + rnd() % 2 : rnd() % 5;
            t[i] = ams_tensor_new_dtype(types[rnd() % 3], ndim, shape);
            size_t bytes = (size_t)ams_tensor_numel(t[i]) * ams_dtype_size(t[i]->dtype);
            for (size_t k = 0; k < bytes; k++) ((uint8_t *)t[i]->data)[k] = (uint8_t)rnd();
            if (t[i]->dtype == AMS_F32)
                for (size_t k = 0; k < bytes / 4; k++) ((float *)t[i]->data)[k] = (float)rnd() - 3e9f;
            /* names that need JSON escaping */
            snprintf(namebuf[i], sizeof namebuf[i], "t%d/\"q\\%c\n\x01\xc3\xa9", i, 'a' + (int)(rnd() % 26));
            names[i] = namebuf[i];
            tc[i] = t[i];
        }
        const char *keys[] = {"k\"1", "\x7f"}, *vals[] = {"line\nbreak\t", ""};
        ams_err err = {0};
        CHECKF(ams_safetensors_write(tmp_path("rt.safetensors"), N, names, tc, 2, keys, vals,
                                     &err) == AMS_OK, "%s", err.msg);
        ams_safetensors *st;
        CHECKF(ams_safetensors_read(tmp_path("rt.safetensors"), &st, &err) == AMS_OK, "%s",
               err.msg);
        CHECK(ams_safetensors_count(st) == N);
        for (int i = 0; i < N; i++) {
            const char *nm;
            const ams_tensor *u = ams_safetensors_get(st, i, &nm);
            CHECK(!strcmp(nm, names[i]) && u->dtype == t[i]->dtype);
            CHECK(shape_is(u, t[i]->ndim, t[i]->shape));
            size_t bytes = (size_t)ams_tensor_numel(u) * ams_dtype_size(u->dtype);
            CHECK(bytes == 0 || !memcmp(u->data, t[i]->data, bytes));
            ams_tensor_free(t[i]);
        }
        CHECK(!strcmp(ams_safetensors_metadata(st, "k\"1"), "line\nbreak\t"));
        CHECK(!strcmp(ams_safetensors_metadata(st, "\x7f"), ""));
        ams_safetensors_free(st);
        size_t n;
        uint8_t *raw = slurp(tmp_path("rt.safetensors"), &n);
        uint64_t hl = 0;
        for (int i = 7; i >= 0; i--) hl = hl << 8 | raw[i];
        CHECK(hl % 8 == 0); /* data 8-byte aligned */
        free(raw);
    }
    /* F16 tensors are written raw and read back as floats */
    ams_tensor *h = ams_tensor_new_dtype(AMS_F16, 1, (int64_t[]){2});
    ((uint16_t *)h->data)[0] = 0x3555; /* 0.33325195 */
    ((uint16_t *)h->data)[1] = 0x8001;
    const char *hn[] = {"h"};
    const ams_tensor *hc[] = {h};
    ams_err err = {0};
    CHECK(ams_safetensors_write(tmp_path("h.safetensors"), 1, hn, hc, 0, NULL, NULL, &err) == AMS_OK);
    ams_safetensors *st;
    CHECK(ams_safetensors_read(tmp_path("h.safetensors"), &st, &err) == AMS_OK);
    const float *f = ams_safetensors_get(st, 0, NULL)->data;
    CHECK(f[0] == 1365.0f / 4096.0f && f[1] == -ldexpf(1, -24));
    CHECK(!strcmp(ams_safetensors_dtype(st, 0), "F16"));
    ams_safetensors_free(st);
    ams_tensor_free(h);
    /* an empty file: no tensors */
    CHECK(ams_safetensors_write(tmp_path("e.safetensors"), 0, NULL, NULL, 0, NULL, NULL, &err) == AMS_OK);
    CHECK(ams_safetensors_read(tmp_path("e.safetensors"), &st, &err) == AMS_OK);
    CHECK(ams_safetensors_count(st) == 0);
    ams_safetensors_free(st);
    return 0;
}

static int test_write_errors(void) {
    ams_err err = {0};
    ams_tensor *t = ams_tensor_new(1, (int64_t[]){2});
    const ams_tensor *ts[] = {t, t};
    const char *dup[] = {"x", "x"}, *meta[] = {"__metadata__"}, *bad[] = {"\xff"};
    CHECK(ams_safetensors_write(tmp_path("w"), 2, dup, ts, 0, NULL, NULL, &err) == AMS_E_INVAL);
    CHECKF(strstr(err.msg, "'x' given twice"), "%s", err.msg);
    CHECK(ams_safetensors_write(tmp_path("w"), 1, meta, ts, 0, NULL, NULL, &err) == AMS_E_INVAL);
    CHECK(ams_safetensors_write(tmp_path("w"), 1, bad, ts, 0, NULL, NULL, &err) == AMS_E_INVAL);
    CHECKF(strstr(err.msg, "UTF-8"), "%s", err.msg);
    const char *k[] = {"a", "a"}, *v[] = {"1", "2"}, *ok[] = {"x"};
    CHECK(ams_safetensors_write(tmp_path("w"), 1, ok, ts, 2, k, v, &err) == AMS_E_INVAL);
    CHECK(access(tmp_path("w"), F_OK) != 0);
    /* rename onto a directory fails: no temporary file remains */
    CHECK(mkdir(tmp_path("dir.safetensors"), 0755) == 0);
    CHECK(ams_safetensors_write(tmp_path("dir.safetensors"), 1, ok, ts, 0, NULL, NULL, &err) ==
          AMS_E_IO);
    CHECK(!strncmp(err.msg, tmp_path("dir.safetensors"), strlen(tmp_path("dir.safetensors"))));
    CHECK(count_prefix(tmpdir, "dir.safetensors.tmp") == 0);
    rmdir(tmp_path("dir.safetensors"));
    ams_tensor_free(t);
    return 0;
}

/* ---- hostile bytes ---- */

/* A file image: header length (hl, or strlen(header) if hl < 0), header, data_len zeros. */
static uint8_t *make(long long hl, const char *header, size_t data_len, size_t *len) {
    size_t h = strlen(header);
    *len = 8 + h + data_len;
    uint8_t *b = calloc(*len, 1);
    uint64_t n = hl < 0 ? h : (uint64_t)hl;
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(n >> (8 * i));
    memcpy(b + 8, header, h);
    return b;
}

static int st_case(long long hl, const char *header, size_t data_len, ams_status want,
                   const char *needle) {
    size_t len;
    uint8_t *b = make(hl, header, data_len, &len);
    ams_err err = {0};
    ams_safetensors *st = (ams_safetensors *)&err;
    ams_status s = ams_safetensors_parse(b, len, &st, &err);
    free(b);
    if (s == AMS_OK) ams_safetensors_free(st);
    CHECKF(s == want, "got %s, want %s (%s) for %.200s", ams_status_str(s), ams_status_str(want),
           err.msg, header);
    if (s != AMS_OK) {
        CHECK(st == NULL);
        CHECKF(strstr(err.msg, needle) != NULL, "'%s' not in: %s", needle, err.msg);
    }
    return 0;
}

#define T(name, dtype, shape, offs) \
    "\"" name "\":{\"dtype\":\"" dtype "\",\"shape\":" shape ",\"data_offsets\":" offs "}"

static int test_bad_input(void) {
    CHECK(!st_case(-1, "{" T("a", "F32", "[2]", "[0,8]") "}", 8, AMS_OK, ""));
    CHECK(!st_case(-1, "{" T("a", "F32", "[2]", "[0,8]") "}    ", 8, AMS_OK, ""));
    CHECK(!st_case(-1, "{}", 0, AMS_OK, ""));
    /* lengths */
    CHECK(!st_case(-1, "{}", 0, AMS_OK, ""));
    size_t len;
    uint8_t *b = make(-1, "{}", 0, &len);
    ams_safetensors *st;
    ams_err err = {0};
    CHECK(ams_safetensors_parse(b, 7, &st, &err) == AMS_E_FORMAT && strstr(err.msg, "too short"));
    free(b);
    CHECK(!st_case(3, "{}", 0, AMS_E_FORMAT, "truncated: header length says 3 bytes, the file has 2"));
    CHECK(!st_case(1LL << 40, "{}", 0, AMS_E_FORMAT, "exceeds the limit"));
    CHECK(!st_case(-1, "", 0, AMS_E_FORMAT, "does not start with '{'"));
    /* JSON */
    CHECK(!st_case(-1, "[1,2]", 0, AMS_E_FORMAT, "does not start with '{'"));
    CHECK(!st_case(-1, " {}", 0, AMS_E_FORMAT, "does not start with '{'"));
    CHECK(!st_case(-1, "{\"a\":", 0, AMS_E_FORMAT, "not valid JSON"));
    CHECK(!st_case(-1, "{} x", 0, AMS_E_FORMAT, "not valid JSON"));
    CHECK(!st_case(-1, "{}}", 0, AMS_E_FORMAT, "not valid JSON"));
    CHECK(!st_case(2, "{}", 0, AMS_OK, ""));
    b = make(-1, "{}\x01\x01", 0, &len);
    b[10] = 0; /* a NUL inside the header */
    CHECK(ams_safetensors_parse(b, len, &st, &err) == AMS_E_FORMAT && strstr(err.msg, "JSON"));
    free(b);
    CHECK(!st_case(-1, "{\"\xc3\":1}", 0, AMS_E_FORMAT, "UTF-8"));
    CHECK(!st_case(-1, "{\"\xed\xa0\x80\":1}", 0, AMS_E_FORMAT, "UTF-8")); /* a surrogate */
    /* entries */
    CHECK(!st_case(-1, "{\"a\":1}", 0, AMS_E_FORMAT, "tensor 'a': entry is not an object"));
    CHECK(!st_case(-1, "{\"a\":{\"shape\":[],\"data_offsets\":[0,4]}}", 4, AMS_E_FORMAT, "no \"dtype\""));
    CHECK(!st_case(-1, "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, AMS_E_FORMAT, "no \"shape\""));
    CHECK(!st_case(-1, "{\"a\":{\"dtype\":\"F32\",\"shape\":[]}}", 4, AMS_E_FORMAT, "data_offsets"));
    CHECK(!st_case(-1, "{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}",
                   4, AMS_E_FORMAT, "field 'dtype' appears twice"));
    CHECK(!st_case(-1, "{\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4],\"x\":{}}}", 4,
                   AMS_OK, ""));
    CHECK(!st_case(-1, "{" T("w", "F64", "[1]", "[0,8]") "}", 8, AMS_E_DTYPE,
                   "tensor 'w' has dtype F64, which is not supported"));
    CHECK(!st_case(-1, "{" T("w", "Q7", "[1]", "[0,8]") "}", 8, AMS_E_DTYPE, "dtype Q7"));
    CHECK(!st_case(-1, "{" T("w", "F32", "[-1]", "[0,0]") "}", 0, AMS_E_FORMAT,
                   "shape[0] is not a non-negative integer"));
    CHECK(!st_case(-1, "{" T("w", "F32", "[1.5]", "[0,0]") "}", 0, AMS_E_FORMAT, "shape[0]"));
    CHECK(!st_case(-1, "{" T("w", "F32", "[\"2\"]", "[0,8]") "}", 8, AMS_E_FORMAT, "shape[0]"));
    CHECK(!st_case(-1, "{" T("w", "F32", "[9007199254740992]", "[0,0]") "}", 0, AMS_E_FORMAT, "2^53"));
    CHECK(!st_case(-1, "{" T("w", "F32", "2", "[0,8]") "}", 8, AMS_E_FORMAT, "no \"shape\" array"));
    CHECK(!st_case(-1, "{" T("w", "F32", "[1,1,1,1,1,1,1,1,1]", "[0,4]") "}", 4, AMS_E_SHAPE,
                   "more than 8 dimensions"));
    CHECK(!st_case(-1, "{" T("w", "F32", "[4294967296,4294967296,0]", "[0,0]") "}", 0, AMS_E_RANGE,
                   "tensor 'w': shape overflows"));
    CHECK(!st_case(-1, "{" T("w", "F32", "[4294967296,4294967296,4294967296]", "[0,0]") "}", 0,
                   AMS_E_RANGE, "overflows"));
    CHECK(!st_case(-1, "{" T("w", "F32", "[1073741824,1073741824]", "[0,0]") "}", 0,
                   AMS_E_FORMAT, "needs"));
    /* offsets */
    CHECK(!st_case(-1, "{" T("w", "F32", "[2]", "[0,8,16]") "}", 16, AMS_E_FORMAT, "data_offsets"));
    CHECK(!st_case(-1, "{" T("w", "F32", "[2]", "[0,-8]") "}", 8, AMS_E_FORMAT, "not non-negative integers"));
    CHECK(!st_case(-1, "{" T("w", "F32", "[0]", "[8,0]") "}", 8, AMS_E_FORMAT, "end before they begin"));
    CHECK(!st_case(-1, "{" T("w", "F32", "[25]", "[0,100]") "}", 8, AMS_E_FORMAT,
                   "data_offsets [0, 100] are outside the 8 bytes of data"));
    CHECK(!st_case(-1, "{" T("w", "F32", "[3]", "[0,8]") "}", 8, AMS_E_FORMAT,
                   "tensor 'w': shape [3] of F32 needs 12 bytes, data_offsets [0, 8] hold 8"));
    CHECK(!st_case(-1, "{" T("w", "F16", "[3]", "[0,12]") "}", 12, AMS_E_FORMAT, "needs 6 bytes"));
    CHECK(!st_case(-1, "{" T("a", "F32", "[2]", "[0,8]") "," T("b", "F32", "[2]", "[4,12]") "}", 12,
                   AMS_E_FORMAT, "tensor 'b' data [4, 12) overlaps tensor 'a' [0, 8)"));
    CHECK(!st_case(-1, "{" T("a", "F32", "[2]", "[0,8]") "," T("b", "F32", "[2]", "[0,8]") "}", 8,
                   AMS_E_FORMAT, "overlaps"));
    CHECK(!st_case(-1, "{" T("a", "F32", "[1]", "[0,4]") "," T("b", "F32", "[1]", "[8,12]") "}", 12,
                   AMS_E_FORMAT, "gap in the data: tensor 'b' begins at 8"));
    CHECK(!st_case(-1, "{" T("a", "F32", "[1]", "[4,8]") "}", 8, AMS_E_FORMAT, "gap"));
    CHECK(!st_case(-1, "{" T("a", "F32", "[1]", "[0,4]") "}", 10, AMS_E_FORMAT,
                   "6 bytes of data after the last tensor"));
    CHECK(!st_case(-1, "{}", 3, AMS_E_FORMAT, "3 bytes of data but no tensors"));
    CHECK(!st_case(-1, "{" T("a", "U8", "[1]", "[0,1]") "," T("a", "U8", "[1]", "[1,2]") "}", 2,
                   AMS_E_FORMAT, "duplicate tensor name 'a'"));
    CHECK(!st_case(-1, "{" T("a", "U8", "[0]", "[0,0]") "," T("b", "U8", "[0]", "[0,0]") "}", 0,
                   AMS_OK, ""));
    /* metadata */
    CHECK(!st_case(-1, "{\"__metadata__\":{\"k\":\"v\"}}", 0, AMS_OK, ""));
    CHECK(!st_case(-1, "{\"__metadata__\":[]}", 0, AMS_E_FORMAT, "__metadata__ is not an object"));
    CHECK(!st_case(-1, "{\"__metadata__\":{\"k\":1}}", 0, AMS_E_FORMAT,
                   "__metadata__ value of 'k' is not a string"));
    CHECK(!st_case(-1, "{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0, AMS_E_FORMAT,
                   "key 'k' appears twice"));
    CHECK(!st_case(-1, "{\"__metadata__\":{},\"__metadata__\":{}}", 0, AMS_E_FORMAT,
                   "__metadata__ appears twice"));
    return 0;
}

/* Bounds that need big headers: the tensor count and the JSON value count. */
static int test_limits(void) {
    size_t cap = 60 * (size_t)(AMS_SAFETENSORS_MAX_TENSORS + 1) + 16, n = 0;
    char *h = malloc(cap);
    CHECK(h);
    n += (size_t)snprintf(h + n, cap - n, "{");
    for (int i = 0; i <= AMS_SAFETENSORS_MAX_TENSORS; i++)
        n += (size_t)snprintf(h + n, cap - n, "%s\"t%d\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}",
                              i ? "," : "", i);
    snprintf(h + n, cap - n, "}");
    CHECK(!st_case(-1, h, 0, AMS_E_RANGE, "100001 tensors exceed the limit of 100000"));
    /* a flat array of 4M+ numbers: refused before cJSON builds it */
    size_t vals = 4000001;
    char *a = malloc(2 * vals + 16);
    CHECK(a);
    memcpy(a, "{\"x\":[", 6);
    size_t k = 6;
    for (size_t i = 0; i < vals; i++) {
        a[k++] = '0';
        a[k++] = ',';
    }
    a[k - 1] = ']';
    a[k++] = '}';
    a[k] = 0;
    CHECK(!st_case(-1, a, 0, AMS_E_RANGE, "more than 4000000 JSON values"));
    free(a);
    free(h);
    return 0;
}

/* Every truncation and byte flip of valid files: an error or a result, never a crash
 * (under ASan: no read outside the exactly-sized buffer). */
static int test_mutations(void) {
    const char *files[] = {FIX "multi.safetensors", FIX "f16.safetensors"};
    for (int f = 0; f < 2; f++) {
        size_t n;
        uint8_t *good = slurp(files[f], &n);
        CHECK(good);
        for (size_t cut = 0; cut < n; cut++) {
            uint8_t *c = malloc(cut ? cut : 1);
            memcpy(c, good, cut);
            ams_safetensors *st = NULL;
            CHECK(ams_safetensors_parse(c, cut, &st, NULL) != AMS_OK && st == NULL);
            free(c);
        }
        for (size_t i = 0; i < n; i++) {
            for (int bit = 0; bit < 8; bit++) {
                good[i] ^= (uint8_t)(1 << bit);
                ams_safetensors *st = NULL;
                if (ams_safetensors_parse(good, n, &st, NULL) == AMS_OK) ams_safetensors_free(st);
                good[i] ^= (uint8_t)(1 << bit);
            }
        }
        free(good);
    }
    ams_err err = {0};
    ams_safetensors *st;
    CHECK(ams_safetensors_read(FIX "corrupt.safetensors", &st, &err) == AMS_E_FORMAT);
    CHECKF(!strncmp(err.msg, FIX "corrupt.safetensors: truncated", strlen(FIX) + 30), "%s", err.msg);
    CHECK(ams_safetensors_read(FIX "missing.safetensors", &st, &err) == AMS_E_IO);
    CHECK(strstr(err.msg, "missing.safetensors: cannot open"));
    return 0;
}

/* ---- ams_params ---- */

static ams_params *model(int variant) {
    ams_err err = {0};
    ams_params *p = ams_params_new();
    int64_t conv[4] = {3, 3, 3, 8};
    if (variant == 2) conv[2] = 8, conv[3] = 3; /* a model that expects another shape */
    if (ams_params_add(p, "conv/weights", 4, conv, 1, &err) < 0) return NULL;
    if (ams_params_add(p, "conv/biases", 1, (int64_t[]){8}, 1, &err) < 0) return NULL;
    if (variant != 1 && ams_params_add(p, "bn/moving_mean", 1, (int64_t[]){8}, 0, &err) < 0)
        return NULL;
    if (ams_params_alloc(p, &err) != AMS_OK) return NULL;
    for (size_t i = 0; i < p->total; i++) {
        p->values[i] = (float)i * 0.125f - 3.0f;
        p->grads[i] = (float)i * -0.5f;
    }
    return p;
}

static int test_params(void) {
    ams_err err = {0};
    ams_params *p = model(0), *q = model(0);
    CHECK(p && q);
    char file[512]; /* tmp_path's buffer is reused */
    snprintf(file, sizeof file, "%s", tmp_path("p.safetensors"));
    CHECKF(ams_params_save_safetensors(p, file, 0, 0, &err) == AMS_OK, "%s", err.msg);
    memset(q->values, 0, q->total * sizeof(float));
    CHECKF(ams_params_load_safetensors(q, file, 0, &err) == AMS_OK, "%s", err.msg);
    CHECK(!memcmp(p->values, q->values, p->total * sizeof(float)));

    /* grads, trainable only: the file has the two trainable tensors, holding grads */
    CHECK(ams_params_save_safetensors(p, tmp_path("g.safetensors"), 1, 1, &err) == AMS_OK);
    ams_safetensors *st;
    CHECK(ams_safetensors_read(tmp_path("g.safetensors"), &st, &err) == AMS_OK);
    CHECK(ams_safetensors_count(st) == 2 && !ams_safetensors_find(st, "bn/moving_mean"));
    const ams_tensor *g = ams_safetensors_find(st, "conv/biases");
    CHECK(g && shape_is(g, 1, (int64_t[]){8}));
    CHECK(!memcmp(g->data, ams_params_grad(p, 1), 8 * sizeof(float)));
    ams_safetensors_free(st);

    /* missing tensor: an error naming it, and q untouched */
    memcpy(q->values, p->grads, q->total * sizeof(float));
    CHECK(ams_params_load_safetensors(q, tmp_path("g.safetensors"), 0, &err) == AMS_E_NOTFOUND);
    char want[1200];
    snprintf(want, sizeof want, "%s: missing tensor 'bn/moving_mean'", tmp_path("g.safetensors"));
    CHECKF(!strcmp(err.msg, want), "%s", err.msg);
    CHECK(!memcmp(q->values, p->grads, q->total * sizeof(float)));

    /* extra tensor */
    ams_params *small = model(1);
    CHECKF(ams_params_load_safetensors(small, file, 0, &err) == AMS_E_FORMAT, "%s", err.msg);
    snprintf(want, sizeof want, "%s: unexpected tensor 'bn/moving_mean'", file);
    CHECKF(!strcmp(err.msg, want), "%s", err.msg);
    memset(small->values, 0, small->total * sizeof(float));
    CHECK(ams_params_load_safetensors(small, file, 1, &err) == AMS_OK);
    CHECK(!memcmp(small->values, p->values, small->total * sizeof(float)));

    /* wrong shape */
    ams_params *other = model(2);
    CHECK(ams_params_load_safetensors(other, file, 0, &err) == AMS_E_SHAPE);
    snprintf(want, sizeof want,
             "%s: tensor 'conv/weights' has shape [3,3,3,8], the model expects [3,3,8,3]", file);
    CHECKF(!strcmp(err.msg, want), "%s", err.msg);

    /* wrong dtype, and F16 weights load as floats */
    ams_tensor *u8 = ams_tensor_new_dtype(AMS_U8, 1, (int64_t[]){8});
    ams_tensor *w16 = ams_tensor_new_dtype(AMS_F16, 4, (int64_t[]){3, 3, 3, 8});
    ams_tensor *m32 = ams_tensor_new(1, (int64_t[]){8});
    for (int i = 0; i < 216; i++) ((uint16_t *)w16->data)[i] = ams_f32_to_f16((float)i / 4);
    const char *names[] = {"conv/weights", "conv/biases", "bn/moving_mean"};
    const ams_tensor *ts[] = {w16, u8, m32};
    CHECK(ams_safetensors_write(tmp_path("d.safetensors"), 3, names, ts, 0, NULL, NULL, &err) == AMS_OK);
    CHECK(ams_params_load_safetensors(q, tmp_path("d.safetensors"), 0, &err) == AMS_E_DTYPE);
    CHECKF(strstr(err.msg, "tensor 'conv/biases' has dtype uint8"), "%s", err.msg);
    ts[1] = m32;
    CHECK(ams_safetensors_write(tmp_path("d.safetensors"), 3, names, ts, 0, NULL, NULL, &err) == AMS_OK);
    CHECKF(ams_params_load_safetensors(q, tmp_path("d.safetensors"), 0, &err) == AMS_OK, "%s", err.msg);
    for (int i = 0; i < 216; i++) CHECK(ams_params_data(q, 0)[i] == (float)i / 4);
    ams_tensor_free(u8);
    ams_tensor_free(w16);
    ams_tensor_free(m32);

    CHECK(ams_params_save_safetensors(p, file, 2, 0, &err) == AMS_E_INVAL);
    ams_params_free(p);
    ams_params_free(q);
    ams_params_free(small);
    ams_params_free(other);
    return 0;
}

int main(int argc, char **argv) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/ams_test_st_XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    static const check_case cases[] = {
        {"multi", test_multi},
        {"f16_bf16", test_f16_bf16},
        {"half_exhaustive", test_half_exhaustive},
        {"json_order", test_json_order},
        {"write_matches_spec", test_write_matches_spec},
        {"roundtrip", test_roundtrip},
        {"write_errors", test_write_errors},
        {"bad_input", test_bad_input},
        {"limits", test_limits},
        {"mutations", test_mutations},
        {"params", test_params},
    };
    int r = check_run(cases, sizeof cases / sizeof cases[0], argc, argv);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return r;
}
