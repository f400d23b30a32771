/* test_npy.c - .npy reading and writing against files numpy wrote (tests/data/formats,
 * made by tools/ref/make_format_fixtures.py), hand-built hostile headers, and round trips.
 * The oracle for the writer is numpy itself: our bytes must equal np.save's. */
#include <dirent.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ams/npy.h"
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

/* number of directory entries whose name starts with prefix */
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

/* ---- files written by numpy ---- */

static int test_numpy_fixtures(void) {
    ams_err err = {0};
    ams_tensor *t;

    CHECKF(ams_npy_read(FIX "f32_2x3.npy", &t, &err) == AMS_OK, "%s", err.msg);
    CHECK(t->dtype == AMS_F32 && shape_is(t, 2, (int64_t[]){2, 3}));
    for (int i = 0; i < 6; i++) CHECK(((float *)t->data)[i] == (float)i * 0.5f - 1.0f);
    ams_tensor_free(t);

    CHECKF(ams_npy_read(FIX "u8_5.npy", &t, &err) == AMS_OK, "%s", err.msg);
    CHECK(t->dtype == AMS_U8 && shape_is(t, 1, (int64_t[]){5}));
    CHECK(!memcmp(t->data, (uint8_t[]){0, 1, 127, 128, 255}, 5));
    ams_tensor_free(t);

    CHECKF(ams_npy_read(FIX "i32_scalar.npy", &t, &err) == AMS_OK, "%s", err.msg);
    CHECK(t->dtype == AMS_I32 && t->ndim == 0 && ams_tensor_numel(t) == 1);
    CHECK(((int32_t *)t->data)[0] == -123456789);
    ams_tensor_free(t);

    CHECKF(ams_npy_read(FIX "f32_0x3.npy", &t, &err) == AMS_OK, "%s", err.msg);
    CHECK(t->dtype == AMS_F32 && shape_is(t, 2, (int64_t[]){0, 3}) && ams_tensor_numel(t) == 0);
    ams_tensor_free(t);

    CHECKF(ams_npy_read(FIX "f32_1x2x3x4.npy", &t, &err) == AMS_OK, "%s", err.msg);
    CHECK(shape_is(t, 4, (int64_t[]){1, 2, 3, 4}));
    for (int i = 0; i < 24; i++) CHECK(((float *)t->data)[i] == (float)i / 8);
    ams_tensor_free(t);

    const char *versions[] = {FIX "f32_v2.npy", FIX "f32_v3.npy"};
    for (int v = 0; v < 2; v++) {
        CHECKF(ams_npy_read(versions[v], &t, &err) == AMS_OK, "%s", err.msg);
        CHECK(shape_is(t, 1, (int64_t[]){4}));
        for (int i = 0; i < 4; i++) CHECK(((float *)t->data)[i] == (float)i);
        ams_tensor_free(t);
    }

    /* converted types */
    CHECKF(ams_npy_read(FIX "f8_3.npy", &t, &err) == AMS_OK, "%s", err.msg);
    CHECK(t->dtype == AMS_F32 && shape_is(t, 1, (int64_t[]){3}));
    CHECK(((float *)t->data)[0] == 1.5f && ((float *)t->data)[1] == -2.25f &&
          ((float *)t->data)[2] == (float)1e-3);
    ams_tensor_free(t);

    CHECKF(ams_npy_read(FIX "i8_3.npy", &t, &err) == AMS_OK, "%s", err.msg);
    CHECK(t->dtype == AMS_I32);
    CHECK(((int32_t *)t->data)[0] == INT32_MIN && ((int32_t *)t->data)[1] == 0 &&
          ((int32_t *)t->data)[2] == INT32_MAX);
    ams_tensor_free(t);

    CHECKF(ams_npy_read(FIX "f2_4.npy", &t, &err) == AMS_OK, "%s", err.msg);
    float *f = t->data;
    CHECK(t->dtype == AMS_F32 && f[0] == 1.0f && f[1] == 0.0f && signbit(f[1]) &&
          f[2] == 65504.0f && f[3] == ldexpf(1.0f, -24));
    ams_tensor_free(t);
    return 0;
}

static int expect_read_fail(const char *path, ams_status want, const char *needle) {
    ams_err err = {0};
    ams_tensor *t = (ams_tensor *)&err; /* must be reset to NULL */
    ams_status s = ams_npy_read(path, &t, &err);
    CHECKF(s == want, "%s: got %s, want %s (%s)", path, ams_status_str(s), ams_status_str(want),
           err.msg);
    CHECK(t == NULL);
    CHECKF(!strncmp(err.msg, path, strlen(path)), "message does not start with the path: %s",
           err.msg);
    CHECKF(strstr(err.msg, needle) != NULL, "'%s' not in: %s", needle, err.msg);
    return 0;
}

static int test_numpy_unsupported(void) {
    CHECK(!expect_read_fail(FIX "f8_big.npy", AMS_E_RANGE, "element 1 (1e+300) is outside the float32 range"));
    CHECK(!expect_read_fail(FIX "i8_big.npy", AMS_E_RANGE, "element 1 (1099511627776) is outside the int32"));
    CHECK(!expect_read_fail(FIX "fortran.npy", AMS_E_UNSUPPORTED, "fortran_order True"));
    CHECK(!expect_read_fail(FIX "be_f4.npy", AMS_E_DTYPE, "dtype '>f4' is not supported"));
    CHECK(!expect_read_fail(FIX "f64c.npy", AMS_E_DTYPE, "dtype '<c8' is not supported"));
    CHECK(!expect_read_fail(FIX "no_such_file.npy", AMS_E_IO, "cannot open"));
    CHECK(!expect_read_fail(FIX, AMS_E_IO, "not a regular file"));
    return 0;
}

/* Our writer must produce exactly the bytes np.save produced. */
static int test_write_matches_numpy(void) {
    const char *names[] = {"f32_2x3.npy", "u8_5.npy", "i32_scalar.npy", "f32_0x3.npy",
                           "f32_1x2x3x4.npy"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char src[512];
        snprintf(src, sizeof src, FIX "%s", names[i]);
        ams_err err = {0};
        ams_tensor *t;
        CHECKF(ams_npy_read(src, &t, &err) == AMS_OK, "%s", err.msg);
        const char *dst = tmp_path(names[i]);
        CHECKF(ams_npy_write(dst, t, &err) == AMS_OK, "%s", err.msg);
        ams_tensor_free(t);
        size_t na, nb;
        uint8_t *a = slurp(src, &na), *b = slurp(dst, &nb);
        CHECK(a && b);
        CHECKF(na == nb && !memcmp(a, b, na), "%s: %zu bytes from numpy, %zu from us", names[i],
               na, nb);
        free(a);
        free(b);
    }
    CHECK(count_prefix(tmpdir, "f32_2x3.npy.tmp") == 0);
    return 0;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void) {
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng_state >> 33);
}

static int test_roundtrip(void) {
    const ams_dtype types[] = {AMS_F32, AMS_U8, AMS_I32};
    for (int it = 0; it < 60; it++) {
        int ndim = (int)(rnd() % (AMS_MAX_DIMS + 1));
        int64_t shape[AMS_MAX_DIMS];
        for (int d = 0; d < ndim; d++) shape[d] = ndim > 4 ? 1 + rnd() % 2 : rnd() % 6;
        ams_dtype dt = types[it % 3];
        ams_tensor *t = ams_tensor_new_dtype(dt, ndim, shape);
        CHECK(t);
        size_t bytes = (size_t)ams_tensor_numel(t) * ams_dtype_size(dt);
        for (size_t i = 0; i < bytes; i++) ((uint8_t *)t->data)[i] = (uint8_t)rnd();
        if (dt == AMS_F32) /* keep floats finite and NaN-free so memcmp is the test */
            for (size_t i = 0; i < bytes / 4; i++) ((float *)t->data)[i] = (float)rnd() / 7.0f - 1e8f;
        ams_err err = {0};
        CHECKF(ams_npy_write(tmp_path("rt.npy"), t, &err) == AMS_OK, "%s", err.msg);
        ams_tensor *u;
        CHECKF(ams_npy_read(tmp_path("rt.npy"), &u, &err) == AMS_OK, "%s", err.msg);
        CHECK(u->dtype == dt && shape_is(u, ndim, shape));
        CHECK(bytes == 0 || !memcmp(t->data, u->data, bytes));
        /* numpy aligns the data to 64 bytes */
        size_t n;
        uint8_t *raw = slurp(tmp_path("rt.npy"), &n);
        CHECK(raw && (n - bytes) % 64 == 0 && raw[n - bytes - 1] == '\n');
        free(raw);
        ams_tensor_free(t);
        ams_tensor_free(u);
    }
    return 0;
}

static int test_write_errors(void) {
    ams_err err = {0};
    ams_tensor *t = ams_tensor_new_dtype(AMS_F16, 1, (int64_t[]){3});
    CHECK(ams_npy_write(tmp_path("h.npy"), t, &err) == AMS_E_DTYPE);
    CHECK(strstr(err.msg, "float16"));
    ams_tensor_free(t);
    t = ams_tensor_new(1, (int64_t[]){3});
    CHECK(ams_npy_write(tmp_path("nodir/x.npy"), t, &err) == AMS_E_IO);
    /* the rename fails (target is a directory): no temporary file may remain */
    CHECK(mkdir(tmp_path("isdir.npy"), 0755) == 0);
    CHECK(ams_npy_write(tmp_path("isdir.npy"), t, &err) == AMS_E_IO);
    CHECKF(strstr(err.msg, "rename failed"), "%s", err.msg);
    CHECK(count_prefix(tmpdir, "isdir.npy.tmp") == 0);
    rmdir(tmp_path("isdir.npy"));
    ams_tensor_free(t);
    return 0;
}

/* ---- hostile headers ---- */

/* A .npy image: preamble for version major, header text, then data_len bytes. */
static uint8_t *make(int major, const char *header, size_t data_len, size_t *len) {
    size_t h = strlen(header), pre = major == 1 ? 10 : 12;
    *len = pre + h + data_len;
    uint8_t *b = calloc(*len, 1);
    memcpy(b, "\x93NUMPY", 6);
    b[6] = (uint8_t)major;
    b[8] = (uint8_t)h;
    b[9] = (uint8_t)(h >> 8);
    memcpy(b + pre, header, h);
    return b;
}

static int expect_parse(const uint8_t *b, size_t len, ams_status want, const char *needle) {
    ams_err err = {0};
    ams_tensor *t = NULL;
    ams_status s = ams_npy_parse(b, len, &t, &err);
    CHECKF(s == want, "got %s, want %s (%s)", ams_status_str(s), ams_status_str(want), err.msg);
    if (s == AMS_OK) {
        ams_tensor_free(t);
        return 0;
    }
    CHECK(t == NULL);
    CHECKF(strstr(err.msg, needle) != NULL, "'%s' not in: %s", needle, err.msg);
    return 0;
}

static int hdr_case(const char *header, size_t data_len, ams_status want, const char *needle) {
    size_t len;
    uint8_t *b = make(1, header, data_len, &len);
    int r = expect_parse(b, len, want, needle);
    free(b);
    if (r) fprintf(stderr, "  header: %s\n", header);
    return r;
}

#define GOOD(shape) "{'descr': '<f4', 'fortran_order': False, 'shape': " shape ", }\n"

static int test_bad_headers(void) {
    /* accepted spellings (numpy's reader is Python's literal_eval) */
    CHECK(!hdr_case(GOOD("(2, 3)"), 24, AMS_OK, ""));
    CHECK(!hdr_case("{\"shape\":(2,3),\"descr\":\"<f4\",\"fortran_order\":False}", 24, AMS_OK, ""));
    CHECK(!hdr_case("{ 'descr' : '<i4' ,\n 'fortran_order' : False , 'shape' : ( 3L , ) , }  \n", 12, AMS_OK, ""));
    CHECK(!hdr_case(GOOD("()"), 4, AMS_OK, ""));
    /* sizes */
    CHECK(!hdr_case(GOOD("(2, 3)"), 19, AMS_E_FORMAT,
                    "truncated: header says 24 bytes of data, file has 19"));
    CHECK(!hdr_case(GOOD("(2, 3)"), 26, AMS_E_FORMAT, "2 trailing bytes"));
    CHECK(!hdr_case(GOOD("(4294967296, 4294967296, 4294967296)"), 0, AMS_E_RANGE, "too large"));
    CHECK(!hdr_case(GOOD("(4294967296, 4294967296, 0)"), 0, AMS_E_RANGE, "too large"));
    CHECK(!hdr_case(GOOD("(99999999999999999999,)"), 0, AMS_E_RANGE, "beyond 2^63"));
    CHECK(!hdr_case(GOOD("(1073741824, 1073741824)"), 0, AMS_E_RANGE, "exceeds the limit"));
    CHECK(!hdr_case(GOOD("(1, 1, 1, 1, 1, 1, 1, 1, 1)"), 4, AMS_E_SHAPE, "more than 8"));
    /* shape syntax */
    CHECK(!hdr_case(GOOD("(3)"), 12, AMS_E_FORMAT, "not a tuple"));
    CHECK(!hdr_case(GOOD("[3]"), 12, AMS_E_FORMAT, "not a tuple"));
    CHECK(!hdr_case(GOOD("(-3,)"), 12, AMS_E_FORMAT, "other than integers"));
    CHECK(!hdr_case(GOOD("(2.5,)"), 12, AMS_E_FORMAT, "malformed"));
    CHECK(!hdr_case(GOOD("(2,,)"), 12, AMS_E_FORMAT, "other than integers"));
    CHECK(!hdr_case("{'descr': '<f4', 'fortran_order': False, 'shape': (2}", 12, AMS_E_FORMAT,
                    "malformed"));
    /* keys and values */
    CHECK(!hdr_case("{'descr': '<f4', 'shape': (3,), }", 12, AMS_E_FORMAT, "no 'fortran_order'"));
    CHECK(!hdr_case("{'fortran_order': False, 'shape': (3,), }", 12, AMS_E_FORMAT, "no 'descr'"));
    CHECK(!hdr_case("{'descr': '<f4', 'fortran_order': False}", 12, AMS_E_FORMAT, "no 'shape'"));
    CHECK(!hdr_case("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (3,)}", 12,
                    AMS_E_FORMAT, "'descr' twice"));
    CHECK(!hdr_case("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), 'x': 1}", 12,
                    AMS_E_FORMAT, "unexpected key 'x'"));
    CHECK(!hdr_case("{'descr': '<f4', 'fortran_order': Falsey, 'shape': (3,)}", 12, AMS_E_FORMAT,
                    "not True or False"));
    CHECK(!hdr_case("{'descr': '<f4', 'fortran_order': True, 'shape': (3,)}", 12,
                    AMS_E_UNSUPPORTED, "fortran_order True"));
    CHECK(!hdr_case("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (3,)}", 12,
                    AMS_E_DTYPE, "structured"));
    CHECK(!hdr_case("{'descr': '<f4, 'fortran_order': False, 'shape': (3,)}", 12, AMS_E_DTYPE,
                    "not supported"));
    CHECK(!hdr_case("{'descr': '<f4', 'fortran_order': False, 'shape': (3,)", 12, AMS_E_FORMAT,
                    "malformed after 'shape'"));
    CHECK(!hdr_case("{'descr': '<f4\\', 'fortran_order': False, 'shape': (3,)}", 12,
                    AMS_E_DTYPE, "not a simple dtype string"));
    CHECK(!hdr_case("{'descr': '<f4', 'fortran_order': False, 'shape': (3,)} x", 12, AMS_E_FORMAT,
                    "bytes after the dict"));
    CHECK(!hdr_case("{'descr': '<f4' 'fortran_order': False, 'shape': (3,)}", 12, AMS_E_FORMAT,
                    "malformed after 'descr'"));
    CHECK(!hdr_case("('descr', '<f4')", 12, AMS_E_FORMAT, "not a Python dict"));
    CHECK(!hdr_case("", 12, AMS_E_FORMAT, "not a Python dict"));

    /* preamble */
    size_t len;
    uint8_t *b = make(1, GOOD("(3,)"), 12, &len);
    CHECK(!expect_parse(b, 9, AMS_E_FORMAT, "too short"));
    CHECK(!expect_parse(b, 60, AMS_E_FORMAT, "truncated header: header length says"));
    b[0] = 'x';
    CHECK(!expect_parse(b, len, AMS_E_FORMAT, "bad magic"));
    b[0] = 0x93;
    b[6] = 4;
    CHECK(!expect_parse(b, len, AMS_E_FORMAT, "version 4.0"));
    b[6] = 1;
    b[7] = 1;
    CHECK(!expect_parse(b, len, AMS_E_FORMAT, "version 1.1"));
    free(b);
    b = make(2, GOOD("(3,)"), 12, &len);
    CHECK(!expect_parse(b, len, AMS_OK, ""));
    CHECK(!expect_parse(b, 11, AMS_E_FORMAT, "truncated .npy preamble"));
    b[10] = b[11] = 0xff; /* a 4 GiB header length */
    CHECK(!expect_parse(b, len, AMS_E_FORMAT, "exceeds the limit"));
    free(b);

    /* every truncation and every byte flip of a valid file: an error or a tensor, no crash
     * (under ASan this proves no read outside the buffer) */
    size_t n;
    uint8_t *good = slurp(FIX "f32_2x3.npy", &n);
    CHECK(good);
    for (size_t cut = 0; cut < n; cut++) {
        uint8_t *c = malloc(cut ? cut : 1);
        memcpy(c, good, cut);
        ams_tensor *t = NULL;
        CHECK(ams_npy_parse(c, cut, &t, NULL) != AMS_OK && t == NULL);
        free(c);
    }
    for (size_t i = 0; i < n; i++) {
        for (int bit = 0; bit < 8; bit++) {
            good[i] ^= (uint8_t)(1 << bit);
            ams_tensor *t = NULL;
            if (ams_npy_parse(good, n, &t, NULL) == AMS_OK) ams_tensor_free(t);
            good[i] ^= (uint8_t)(1 << bit);
        }
    }
    free(good);
    return 0;
}

int main(int argc, char **argv) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/ams_test_npy_XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    static const check_case cases[] = {
        {"numpy_fixtures", test_numpy_fixtures},
        {"numpy_unsupported", test_numpy_unsupported},
        {"write_matches_numpy", test_write_matches_numpy},
        {"roundtrip", test_roundtrip},
        {"write_errors", test_write_errors},
        {"bad_headers", test_bad_headers},
    };
    int r = check_run(cases, sizeof cases / sizeof cases[0], argc, argv);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return r;
}
