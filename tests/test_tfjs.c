/* test_tfjs.c - the TF.js graph-model importer on hand-made model.json files:
 * weight decoding (float32/float16/uint8/uint16 affine, int32, bool) against
 * hand-computed values; hostile manifests rejected with clear errors; every op
 * mapping and build-time fold (Pad, SpaceToBatchND atrous convs, tf.cond on fed
 * inputs, Split/Slice/Concat, resolution rebuild of resize / global pool / transposed
 * conv, RealDiv/Div on tensors) against naive C loops and formulas written here;
 * gradients of imported weights against finite differences; the `ams convert`
 * safetensors form loads back bit-identical. (Real models: tests/parity_tfjs.sh,
 * against TF.js itself; fine-tuning them: tests/test_tfjs_finetune.c.) */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ams/rng.h"
#include "ams/safetensors.h"
#include "ams/tfjs.h"
#include "check.h"
#include "models/tfjs_internal.h" /* the converted model's int/bool constants */

/* base64 of attribute strings */
#define B64_SAME "U0FNRQ=="
#define B64_VALID "VkFMSUQ="
#define B64_BIASADD "Qmlhc0FkZA=="
#define B64_RELU "UmVsdQ=="
#define B64_RELU6 "UmVsdTY="

/* ---------------------------------------------------------------- model writer */

typedef struct mb {
    char nodes[32768];
    char manifest[16384];
    char extra[1024];        /* extra top-level members, e.g. a signature */
    uint8_t w[1 << 16];
    size_t wlen;
    char json[65536];
} mb;

static void appendf(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void appendf(char *buf, size_t cap, const char *fmt, ...) {
    size_t len = strlen(buf);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + len, cap - len, fmt, ap);
    va_end(ap);
}

/* A node: name, op, inputs "a","b" (already quoted list body), attr object body. */
static void node(mb *m, const char *name, const char *op, const char *inputs, const char *attr) {
    appendf(m->nodes, sizeof m->nodes, "%s{\"name\":\"%s\",\"op\":\"%s\",\"input\":[%s],\"attr\":{%s}}",
            m->nodes[0] ? "," : "", name, op, inputs ? inputs : "", attr ? attr : "");
}

static void shape_json(char *buf, size_t cap, int ndim, const int64_t *shape) {
    buf[0] = 0;
    for (int i = 0; i < ndim; i++) appendf(buf, cap, "%s%lld", i ? "," : "", (long long)shape[i]);
}

static void placeholder(mb *m, const char *name, int64_t n, int64_t h, int64_t w, int64_t c) {
    char attr[512];
    snprintf(attr, sizeof attr,
             "\"dtype\":{\"type\":\"DT_FLOAT\"},\"shape\":{\"shape\":{\"dim\":[{\"size\":\"%lld\"},"
             "{\"size\":\"%lld\"},{\"size\":\"%lld\"},{\"size\":\"%lld\"}]}}",
             (long long)n, (long long)h, (long long)w, (long long)c);
    node(m, name, "Placeholder", NULL, attr);
}

static void scalar_placeholder(mb *m, const char *name) {
    node(m, name, "Placeholder", NULL, "\"dtype\":{\"type\":\"DT_FLOAT\"},\"shape\":{\"shape\":{\"unknownRank\":true}}");
}

static void const_f32(mb *m, const char *name, int ndim, const int64_t *shape, const float *v) {
    char s[128];
    shape_json(s, sizeof s, ndim, shape);
    appendf(m->manifest, sizeof m->manifest, "%s{\"name\":\"%s\",\"shape\":[%s],\"dtype\":\"float32\"}",
            m->manifest[0] ? "," : "", name, s);
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    memcpy(m->w + m->wlen, v, (size_t)n * 4);
    m->wlen += (size_t)n * 4;
    node(m, name, "Const", NULL, "\"dtype\":{\"type\":\"DT_FLOAT\"}");
}

static void const_i32(mb *m, const char *name, int ndim, const int64_t *shape, const int32_t *v) {
    char s[128];
    shape_json(s, sizeof s, ndim, shape);
    appendf(m->manifest, sizeof m->manifest, "%s{\"name\":\"%s\",\"shape\":[%s],\"dtype\":\"int32\"}",
            m->manifest[0] ? "," : "", name, s);
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    memcpy(m->w + m->wlen, v, (size_t)n * 4);
    m->wlen += (size_t)n * 4;
    node(m, name, "Const", NULL, "\"dtype\":{\"type\":\"DT_INT32\"}");
}

static const char *model_json(mb *m) {
    snprintf(m->json, sizeof m->json,
             "{\"format\":\"graph-model\",\"modelTopology\":{\"node\":[%s]},%s"
             "\"weightsManifest\":[{\"paths\":[\"w.bin\"],\"weights\":[%s]}]}",
             m->nodes, m->extra, m->manifest);
    return m->json;
}

static ams_status parse(mb *m, ams_tfjs_model **out, ams_err *err) {
    const char *j = model_json(m);
    return ams_tfjs_parse(j, strlen(j), m->w, m->wlen, out, err);
}

/* Loads, builds for (n,h,w) and runs; y gets the output (cap floats), yshape its shape. */
static int run(mb *mm, int n, int h, int w, const ams_tfjs_feed *feeds, int nfeeds,
               const char *output, const float *x, float *y, size_t cap, int64_t *yshape) {
    ams_err err = {0};
    ams_tfjs_model *m = NULL;
    CHECKF(parse(mm, &m, &err) == AMS_OK, "%s", err.msg);
    ams_graph *g = ams_graph_new(ams_tfjs_params(m));
    ams_tfjs_build_opts o = {n, h, w, feeds, nfeeds};
    int in = -1, out = -1;
    const char *outs[1] = {output};
    int ok = ams_tfjs_build(m, g, &o, output ? outs : NULL, 1, &out, &in, &err) == AMS_OK &&
             ams_graph_plan(g, AMS_PLAN_INFER, &err) == AMS_OK &&
             ams_graph_set_input(g, in, x, &err) == AMS_OK &&
             ams_graph_forward(g, ams_backend_ref(), &err) == AMS_OK;
    if (ok) {
        int nd = ams_graph_shape(g, out, yshape);
        int64_t cnt = 1;
        for (int i = 0; i < nd; i++) cnt *= yshape[i];
        ok = (size_t)cnt <= cap;
        if (ok) memcpy(y, ams_graph_value(g, out), (size_t)cnt * sizeof(float));
        else snprintf(err.msg, sizeof err.msg, "output too large");
    }
    ams_graph_free(g);
    ams_tfjs_free(m);
    CHECKF(ok, "%s", err.msg);
    return 0;
}

/* ---------------------------------------------------------------- naive oracles */

/* x (n,h,w,c), f (kh,kw,c,oc) or depthwise (kh,kw,c,1); explicit pads; out (n,oh,ow,oc) */
static void conv_ref(float *out, const float *x, const float *f, const float *bias, int n, int h,
                     int w, int c, int kh, int kw, int oc, int sh, int sw, int dh, int dw, int pt,
                     int pl, int oh, int ow, int depthwise) {
    for (int b = 0; b < n; b++)
        for (int i = 0; i < oh; i++)
            for (int j = 0; j < ow; j++)
                for (int o = 0; o < oc; o++) {
                    double s = bias ? bias[o] : 0;
                    for (int u = 0; u < kh; u++)
                        for (int v = 0; v < kw; v++) {
                            int y = i * sh - pt + u * dh, xx = j * sw - pl + v * dw;
                            if (y < 0 || y >= h || xx < 0 || xx >= w) continue;
                            if (depthwise) {
                                s += (double)x[((b * h + y) * w + xx) * c + o] * f[(u * kw + v) * c + o];
                            } else {
                                for (int ci = 0; ci < c; ci++)
                                    s += (double)x[((b * h + y) * w + xx) * c + ci] *
                                         f[((u * kw + v) * c + ci) * oc + o];
                            }
                        }
                    out[((b * oh + i) * ow + j) * oc + o] = (float)s;
                }
}

static void fill(float *v, size_t n, uint64_t seed) {
    ams_rng r;
    ams_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) v[i] = ams_rng_normal(&r);
}

/* ---------------------------------------------------------------- tests */

static int test_decode(void) {
    /* hand-encoded weights: f32 [2], f16 [3], u8 affine [4], u16 affine [2], i32 [2], bool [3] */
    static const char json[] =
        "{\"format\":\"graph-model\",\"modelTopology\":{\"node\":["
        "{\"name\":\"x\",\"op\":\"Placeholder\",\"attr\":{\"shape\":{\"shape\":{\"dim\":[{\"size\":\"1\"},{\"size\":\"4\"},{\"size\":\"4\"},{\"size\":\"1\"}]}}}},"
        "{\"name\":\"a\",\"op\":\"Const\"},{\"name\":\"h\",\"op\":\"Const\"},{\"name\":\"q\",\"op\":\"Const\"},"
        "{\"name\":\"q16\",\"op\":\"Const\"},{\"name\":\"i\",\"op\":\"Const\"},{\"name\":\"bo\",\"op\":\"Const\"},"
        "{\"name\":\"f\",\"op\":\"Const\"},"
        "{\"name\":\"c\",\"op\":\"Conv2D\",\"input\":[\"x\",\"f\"],\"attr\":{\"padding\":{\"s\":\"" B64_SAME "\"},\"strides\":{\"list\":{\"i\":[\"1\",\"1\",\"1\",\"1\"]}}}}"
        "]},\"weightsManifest\":[{\"paths\":[\"w.bin\"],\"weights\":["
        "{\"name\":\"a\",\"shape\":[2],\"dtype\":\"float32\"},"
        "{\"name\":\"h\",\"shape\":[3],\"dtype\":\"float32\",\"quantization\":{\"dtype\":\"float16\"}},"
        "{\"name\":\"q\",\"shape\":[2,2],\"dtype\":\"float32\",\"quantization\":{\"dtype\":\"uint8\",\"min\":-1,\"scale\":0.5}},"
        "{\"name\":\"q16\",\"shape\":[2],\"dtype\":\"float32\",\"quantization\":{\"dtype\":\"uint16\",\"min\":2,\"scale\":0.25}},"
        "{\"name\":\"i\",\"shape\":[2],\"dtype\":\"int32\"},"
        "{\"name\":\"bo\",\"shape\":[3],\"dtype\":\"bool\"},"
        "{\"name\":\"f\",\"shape\":[1,1,1,1],\"dtype\":\"float32\"}"
        "]}]}";
    uint8_t w[64];
    size_t n = 0;
    float a[2] = {1.5f, -3.25f};
    memcpy(w, a, 8), n = 8;
    const uint8_t h[6] = {0x00, 0x3c, 0x00, 0xc1, 0x00, 0x38}; /* 1.0, -2.5, 0.5 */
    memcpy(w + n, h, 6), n += 6;
    const uint8_t q[4] = {0, 1, 2, 255}; /* -1 + 0.5 q */
    memcpy(w + n, q, 4), n += 4;
    const uint8_t q16[4] = {0x04, 0x00, 0x00, 0x01}; /* 2 + 0.25 * {4, 256} */
    memcpy(w + n, q16, 4), n += 4;
    int32_t iv[2] = {-7, 2147483647};
    memcpy(w + n, iv, 8), n += 8;
    const uint8_t bo[3] = {1, 0, 3};
    memcpy(w + n, bo, 3), n += 3;
    float f = 2.0f;
    memcpy(w + n, &f, 4), n += 4;

    ams_err err = {0};
    ams_tfjs_model *m = NULL;
    CHECKF(ams_tfjs_parse(json, strlen(json), w, n, &m, &err) == AMS_OK, "%s", err.msg);
    ams_params *p = ams_tfjs_params(m);
    CHECK(p->count == 5); /* float constants only */
    const float *v = ams_params_data(p, ams_params_find(p, "a"));
    CHECK(v[0] == 1.5f && v[1] == -3.25f);
    v = ams_params_data(p, ams_params_find(p, "h"));
    CHECK(v[0] == 1.0f && v[1] == -2.5f && v[2] == 0.5f);
    v = ams_params_data(p, ams_params_find(p, "q"));
    CHECK(v[0] == -1.0f && v[1] == -0.5f && v[2] == 0.0f && v[3] == 126.5f);
    v = ams_params_data(p, ams_params_find(p, "q16"));
    CHECK(v[0] == 3.0f && v[1] == 66.0f);
    /* only the conv filter is trainable */
    CHECK(p->info[ams_params_find(p, "f")].trainable == 1);
    CHECK(p->info[ams_params_find(p, "a")].trainable == 0);
    int ch = 0, rh = 0, rw = 0;
    CHECK(!strcmp(ams_tfjs_image_input(m, &ch, &rh, &rw), "x") && ch == 1 && rh == 4 && rw == 4);
    /* no signature: the unconsumed non-Const node is the output */
    CHECK(ams_tfjs_output_count(m) == 1 && !strcmp(ams_tfjs_output_node(m, 0), "c"));
    /* `ams convert`: one safetensors file and back, every weight bit-identical */
    char path[600];
    snprintf(path, sizeof path, "%s/test_tfjs_decode.%d.safetensors", AMS_BINARY_DIR, (int)getpid());
    CHECKF(ams_tfjs_save_safetensors(m, path, &err) == AMS_OK, "%s", err.msg);
    ams_tfjs_model *m2 = NULL;
    CHECKF(ams_tfjs_load(path, &m2, &err) == AMS_OK, "%s", err.msg);
    ams_params *p2 = ams_tfjs_params(m2);
    CHECK(p2->count == p->count && p2->total == p->total);
    for (int k = 0; k < p->count; k++)
        CHECK(!strcmp(p->info[k].name, p2->info[k].name) &&
              p->info[k].trainable == p2->info[k].trainable);
    CHECK(!memcmp(p->values, p2->values, p->total * sizeof(float)));
    CHECK(ams_tfjs_node_count(m2) == ams_tfjs_node_count(m));
    const tfjs_node *ni = &m2->nodes[ams_tfjs_find(m2, "i", 1)];
    const tfjs_node *nb = &m2->nodes[ams_tfjs_find(m2, "bo", 2)];
    CHECK(ni->cdtype == TFJS_DT_INT32 && ni->cint[0] == -7 && ni->cint[1] == 2147483647);
    CHECK(nb->cdtype == TFJS_DT_BOOL && nb->cint[0] == 1 && nb->cint[1] == 0 && nb->cint[2] == 1);
    ams_tfjs_free(m2);
    /* plain weights are not a model */
    CHECK(ams_params_save_safetensors(p, path, 0, 0, &err) == AMS_OK);
    CHECK(ams_tfjs_load(path, &m2, &err) == AMS_E_FORMAT && !m2);
    CHECKF(strstr(err.msg, "not a converted TF.js model"), "%s", err.msg);
    remove(path);
    ams_tfjs_free(m);
    /* one byte short, one byte extra */
    CHECK(ams_tfjs_parse(json, strlen(json), w, n - 1, &m, &err) == AMS_E_FORMAT && !m);
    CHECKF(strstr(err.msg, "weight 'f' needs bytes"), "%s", err.msg);
    w[n] = 0;
    CHECK(ams_tfjs_parse(json, strlen(json), w, n + 1, &m, &err) == AMS_E_FORMAT);
    CHECKF(strstr(err.msg, "the shards hold"), "%s", err.msg);
    return 0;
}

static int expect_parse_error(const char *json, ams_status want, const char *msg) {
    ams_err err = {0};
    ams_tfjs_model *m = NULL;
    ams_status s = ams_tfjs_parse(json, strlen(json), (const uint8_t *)"", 0, &m, &err);
    ams_tfjs_free(m);
    CHECKF(s == want && strstr(err.msg, msg), "got %s '%s', want %s '%s'", ams_status_str(s),
           err.msg, ams_status_str(want), msg);
    return 0;
}

static int test_hostile(void) {
    CHECK(!expect_parse_error("{\"modelTopology\":", AMS_E_FORMAT, "not valid JSON"));
    CHECK(!expect_parse_error("{}", AMS_E_FORMAT, "no modelTopology.node"));
    CHECK(!expect_parse_error("{\"modelTopology\":{\"node\":[{\"name\":\"a\",\"op\":\"Relu\",\"input\":[\"b\"]},"
                              "{\"name\":\"b\",\"op\":\"Relu\",\"input\":[\"a\"]}]}}",
                              AMS_E_FORMAT, "cycle"));
    CHECK(!expect_parse_error("{\"modelTopology\":{\"node\":[{\"name\":\"a\",\"op\":\"Relu\",\"input\":[\"zz\"]}]}}",
                              AMS_E_FORMAT, "input 'zz' is not a node"));
    CHECK(!expect_parse_error("{\"modelTopology\":{\"node\":[{\"name\":\"a\",\"op\":\"Relu\",\"input\":[\"a:7\"]}]}}",
                              AMS_E_FORMAT, "names output 7"));
    CHECK(!expect_parse_error("{\"modelTopology\":{\"node\":[{\"name\":\"a\",\"op\":\"Const\"},{\"name\":\"a\",\"op\":\"Const\"}]}}",
                              AMS_E_FORMAT, "duplicate node name"));
    CHECK(!expect_parse_error("{\"modelTopology\":{\"node\":[{\"name\":\"a\",\"op\":\"Const\"}]},"
                              "\"weightsManifest\":[{\"paths\":[],\"weights\":[{\"name\":\"a\",\"shape\":[4294967296,4294967296],\"dtype\":\"float32\"}]}]}",
                              AMS_E_FORMAT, "bad dimension"));
    CHECK(!expect_parse_error("{\"modelTopology\":{\"node\":[{\"name\":\"a\",\"op\":\"Const\"}]},"
                              "\"weightsManifest\":[{\"paths\":[],\"weights\":[{\"name\":\"a\",\"shape\":[2147483647,2147483647,2147483647],\"dtype\":\"float32\"}]}]}",
                              AMS_E_RANGE, "overflows"));
    CHECK(!expect_parse_error("{\"modelTopology\":{\"node\":[{\"name\":\"a\",\"op\":\"Const\"}]},"
                              "\"weightsManifest\":[{\"paths\":[],\"weights\":[{\"name\":\"a\",\"shape\":[1],\"dtype\":\"float32\",\"quantization\":{\"dtype\":\"int4\"}}]}]}",
                              AMS_E_UNSUPPORTED, "unsupported quantization 'int4'"));
    CHECK(!expect_parse_error("{\"modelTopology\":{\"node\":[{\"name\":\"a\",\"op\":\"Const\"}]},"
                              "\"weightsManifest\":[{\"paths\":[],\"weights\":[{\"name\":\"a\",\"shape\":[1],\"dtype\":\"float32\",\"quantization\":{\"dtype\":\"uint8\",\"min\":0}}]}]}",
                              AMS_E_FORMAT, "finite min and scale"));
    CHECK(!expect_parse_error("{\"modelTopology\":{\"node\":[{\"name\":\"a\",\"op\":\"Const\"}]},"
                              "\"weightsManifest\":[{\"paths\":[],\"weights\":[{\"name\":\"a\",\"shape\":[1],\"dtype\":\"string\"}]}]}",
                              AMS_E_UNSUPPORTED, "unsupported dtype 'string'"));
    /* a shard name that escapes the model's folder */
    char dir[] = "/tmp/test_tfjs.XXXXXX";
    CHECK(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/model.json", dir);
    FILE *f = fopen(path, "w");
    CHECK(f);
    fputs("{\"modelTopology\":{\"node\":[{\"name\":\"a\",\"op\":\"Const\"}]},"
          "\"weightsManifest\":[{\"paths\":[\"../etc/passwd\"],\"weights\":[]}]}", f);
    fclose(f);
    ams_err err = {0};
    ams_tfjs_model *m = NULL;
    CHECK(ams_tfjs_load(path, &m, &err) == AMS_E_FORMAT && strstr(err.msg, "bad weight shard name"));
    remove(path);
    rmdir(dir);
    return 0;
}

/* Conv2D SAME stride 2 + bias Add + Relu6, and a fused depthwise conv (BiasAdd, Relu). */
static int test_conv_ops(void) {
    enum { H = 7, W = 6, C = 3, OC = 4 };
    static mb m;
    memset(&m, 0, sizeof m);
    float f[3 * 3 * C * OC], bias[OC], dw[3 * 3 * OC], db[OC], x[H * W * C];
    fill(f, sizeof f / 4, 1), fill(bias, OC, 2), fill(dw, sizeof dw / 4, 3), fill(db, OC, 4);
    fill(x, sizeof x / 4, 5);
    placeholder(&m, "x", 1, H, W, C);
    const_f32(&m, "f", 4, (int64_t[]){3, 3, C, OC}, f);
    const_f32(&m, "bias", 1, (int64_t[]){OC}, bias);
    const_f32(&m, "dw", 4, (int64_t[]){3, 3, OC, 1}, dw);
    const_f32(&m, "db", 1, (int64_t[]){OC}, db);
    node(&m, "conv", "Conv2D", "\"x\",\"f\"",
         "\"padding\":{\"s\":\"" B64_SAME "\"},\"strides\":{\"list\":{\"i\":[\"1\",\"2\",\"2\",\"1\"]}}");
    node(&m, "add", "AddV2", "\"bias\",\"conv\"", NULL); /* bias first: folded into the conv */
    node(&m, "r6", "Relu6", "\"add\"", NULL);
    node(&m, "dwc", "FusedDepthwiseConv2dNative", "\"r6\",\"dw\",\"db\"",
         "\"padding\":{\"s\":\"" B64_SAME "\"},\"strides\":{\"list\":{\"i\":[\"1\",\"1\",\"1\",\"1\"]}},"
         "\"fused_ops\":{\"list\":{\"s\":[\"" B64_BIASADD "\",\"" B64_RELU "\"]}}");
    float y[256], want1[4 * 3 * OC], want[4 * 3 * OC];
    int64_t ys[8];
    if (run(&m, 1, H, W, NULL, 0, NULL, x, y, 256, ys)) return 1;
    CHECK(ys[0] == 1 && ys[1] == 4 && ys[2] == 3 && ys[3] == OC);
    /* SAME, stride 2: 7 -> 4 (pad 1 top, 1 bottom), 6 -> 3 (pad 0 left, 1 right) */
    conv_ref(want1, x, f, bias, 1, H, W, C, 3, 3, OC, 2, 2, 1, 1, 1, 0, 4, 3, 0);
    for (int i = 0; i < 4 * 3 * OC; i++) want1[i] = fminf(fmaxf(want1[i], 0.0f), 6.0f);
    conv_ref(want, want1, dw, db, 1, 4, 3, OC, 3, 3, OC, 1, 1, 1, 1, 1, 1, 4, 3, 1);
    for (int i = 0; i < 4 * 3 * OC; i++) want[i] = fmaxf(want[i], 0.0f);
    double e = check_max_abs_diff(y, want, 4 * 3 * OC);
    CHECKF(e < 1e-5, "max abs err %g", e);
    return 0;
}

/* Pad + VALID conv and SpaceToBatchND + depthwise + BatchToSpaceND (TF's atrous conv,
 * shape plumbing included) against a naive dilated conv with SAME padding. */
static int test_atrous_fold(void) {
    enum { H = 7, W = 9, C = 2 };
    static mb m;
    memset(&m, 0, sizeof m);
    float dw[3 * 3 * C], x[H * W * C];
    fill(dw, sizeof dw / 4, 6), fill(x, sizeof x / 4, 7);
    placeholder(&m, "x", 1, -1, -1, C);
    const_f32(&m, "dw", 4, (int64_t[]){3, 3, C, 1}, dw);
    /* Pad 1 all around, then dilation-2 SAME as TF writes it: base pads 2/2 on the padded
     * map (9x11), plus extra to a multiple of 2 computed from Shape at build time */
    const_i32(&m, "pads", 2, (int64_t[]){4, 2}, (int32_t[]){0, 0, 1, 1, 1, 1, 0, 0});
    node(&m, "pad", "Pad", "\"x\",\"pads\"", NULL);
    node(&m, "shape", "Shape", "\"pad\"", NULL);
    const_i32(&m, "b1", 1, (int64_t[]){1}, (int32_t[]){1});
    const_i32(&m, "e3", 1, (int64_t[]){1}, (int32_t[]){3});
    const_i32(&m, "s1", 1, (int64_t[]){1}, (int32_t[]){1});
    node(&m, "hw", "StridedSlice", "\"shape\",\"b1\",\"e3\",\"s1\"", NULL);
    const_i32(&m, "base", 1, (int64_t[]){2}, (int32_t[]){4, 4}); /* 2+2 per axis */
    node(&m, "full", "AddV2", "\"hw\",\"base\"", NULL);
    const_i32(&m, "rate", 1, (int64_t[]){2}, (int32_t[]){2, 2});
    node(&m, "mod", "FloorMod", "\"full\",\"rate\"", NULL);
    node(&m, "sub", "Sub", "\"rate\",\"mod\"", NULL);
    node(&m, "extra", "FloorMod", "\"sub\",\"rate\"", NULL); /* (rate - full % rate) % rate */
    const_i32(&m, "two", 0, NULL, (int32_t[]){2});
    const_i32(&m, "i0", 1, (int64_t[]){1}, (int32_t[]){0});
    const_i32(&m, "i1", 1, (int64_t[]){1}, (int32_t[]){1});
    const_i32(&m, "i2", 1, (int64_t[]){1}, (int32_t[]){2});
    node(&m, "eh", "StridedSlice", "\"extra\",\"i0\",\"i1\",\"i1\"", "\"shrink_axis_mask\":{\"i\":\"1\"}");
    node(&m, "ew", "StridedSlice", "\"extra\",\"i1\",\"i2\",\"i1\"", "\"shrink_axis_mask\":{\"i\":\"1\"}");
    node(&m, "pbh", "AddV2", "\"two\",\"eh\"", NULL);
    node(&m, "pbw", "AddV2", "\"two\",\"ew\"", NULL);
    node(&m, "rowh", "Pack", "\"two\",\"pbh\"", "\"axis\":{\"i\":\"0\"}");
    node(&m, "roww", "Pack", "\"two\",\"pbw\"", "\"axis\":{\"i\":\"0\"}");
    node(&m, "paddings", "Pack", "\"rowh\",\"roww\"", "\"axis\":{\"i\":\"0\"}");
    const_i32(&m, "zero", 0, NULL, (int32_t[]){0});
    node(&m, "croph", "Pack", "\"zero\",\"eh\"", "\"axis\":{\"i\":\"0\"}");
    node(&m, "cropw", "Pack", "\"zero\",\"ew\"", "\"axis\":{\"i\":\"0\"}");
    node(&m, "crops", "Pack", "\"croph\",\"cropw\"", "\"axis\":{\"i\":\"0\"}");
    node(&m, "s2b", "SpaceToBatchND", "\"pad\",\"rate\",\"paddings\"", NULL);
    node(&m, "dwc", "DepthwiseConv2dNative", "\"s2b\",\"dw\"",
         "\"padding\":{\"s\":\"" B64_VALID "\"},\"strides\":{\"list\":{\"i\":[\"1\",\"1\",\"1\",\"1\"]}}");
    node(&m, "b2s", "BatchToSpaceND", "\"dwc\",\"rate\",\"crops\"", NULL);
    float y[1024], want[1024], xp[(H + 2) * (W + 2) * C];
    int64_t ys[8];
    if (run(&m, 1, H, W, NULL, 0, NULL, x, y, 1024, ys)) return 1;
    CHECKF(ys[1] == H + 2 && ys[2] == W + 2 && ys[3] == C, "shape %lld %lld", (long long)ys[1],
           (long long)ys[2]);
    /* oracle: zero-pad by 1, then a dilation-2 SAME depthwise conv (pads 2/2) */
    memset(xp, 0, sizeof xp);
    for (int i = 0; i < H; i++)
        for (int j = 0; j < W; j++)
            for (int c = 0; c < C; c++) xp[((i + 1) * (W + 2) + j + 1) * C + c] = x[(i * W + j) * C + c];
    conv_ref(want, xp, dw, NULL, 1, H + 2, W + 2, C, 3, 3, C, 1, 1, 2, 2, 2, 2, H + 2, W + 2, 1);
    double e = check_max_abs_diff(y, want, (size_t)(H + 2) * (W + 2) * C);
    CHECKF(e < 1e-5, "max abs err %g", e);
    return 0;
}

/* tf.cond on a fed scalar: Switch/Merge fold to one branch; unfed input is an error. */
static int test_cond_fold(void) {
    static mb m;
    memset(&m, 0, sizeof m);
    placeholder(&m, "x", 1, 2, 2, 1);
    scalar_placeholder(&m, "ratio");
    float one = 1.0f, three = 3.0f;
    const_f32(&m, "one", 0, NULL, &one);
    const_f32(&m, "three", 0, NULL, &three);
    node(&m, "eq", "Equal", "\"ratio\",\"one\"", NULL);
    node(&m, "sw", "Switch", "\"x\",\"eq\"", NULL);
    node(&m, "then", "Identity", "\"sw:1\"", NULL);
    node(&m, "else", "Mul", "\"sw\",\"three\"", NULL);
    node(&m, "merge", "Merge", "\"then\",\"else\"", NULL);
    node(&m, "out", "Identity", "\"merge\"", NULL);
    snprintf(m.extra, sizeof m.extra, "\"signature\":{\"outputs\":{\"res\":{\"name\":\"out:0\"}}},");
    float x[4] = {1, -2, 3, 4}, y[4];
    int64_t ys[8];
    ams_tfjs_feed f1 = {"ratio", 1.0f}, f2 = {"ratio", 0.5f};
    if (run(&m, 1, 2, 2, &f1, 1, "res", x, y, 4, ys)) return 1;
    CHECK(y[0] == 1 && y[1] == -2 && y[2] == 3 && y[3] == 4);
    if (run(&m, 1, 2, 2, &f2, 1, "out", x, y, 4, ys)) return 1;
    CHECK(y[0] == 3 && y[1] == -6 && y[2] == 9 && y[3] == 12);
    /* not fed */
    ams_err err = {0};
    ams_tfjs_model *mm = NULL;
    CHECK(parse(&m, &mm, &err) == AMS_OK);
    ams_graph *g = ams_graph_new(ams_tfjs_params(mm));
    ams_tfjs_build_opts o = {1, 2, 2, NULL, 0};
    int out, in;
    CHECK(ams_tfjs_build(mm, g, &o, NULL, 1, &out, &in, &err) == AMS_E_NOTFOUND);
    CHECKF(strstr(err.msg, "input 'ratio' is not fed"), "%s", err.msg);
    ams_graph_free(g);
    /* an unknown output name */
    g = ams_graph_new(ams_tfjs_params(mm));
    const char *bad_out[1] = {"nope"};
    CHECK(ams_tfjs_build(mm, g, &(ams_tfjs_build_opts){1, 2, 2, &f1, 1}, bad_out, 1, &out, &in,
                         &err) == AMS_E_NOTFOUND);
    ams_graph_free(g);
    ams_tfjs_free(mm);
    return 0;
}

/* Split, SplitV, Slice (crop), ConcatV2, Sub / Minimum / Maximum with constants. */
static int test_split_slice_concat(void) {
    enum { H = 5, W = 4, C = 4 };
    static mb m;
    memset(&m, 0, sizeof m);
    placeholder(&m, "x", 1, H, W, C);
    const_i32(&m, "ax", 0, NULL, (int32_t[]){3});
    const_i32(&m, "axm", 0, NULL, (int32_t[]){-1});
    node(&m, "sp", "Split", "\"ax\",\"x\"", "\"num_split\":{\"i\":\"2\"}");
    const_i32(&m, "sizes", 1, (int64_t[]){2}, (int32_t[]){1, -1});
    node(&m, "spv", "SplitV", "\"sp:1\",\"sizes\",\"axm\"", "\"num_split\":{\"i\":\"2\"}");
    /* (1 - a) clipped to [0, 1] in channel 0 ; channel c3 ; channels 0..1 */
    float one = 1.0f, zero = 0.0f;
    const_f32(&m, "one", 0, NULL, &one);
    const_f32(&m, "zero", 0, NULL, &zero);
    node(&m, "inv", "Sub", "\"one\",\"spv\"", NULL);
    node(&m, "mn", "Minimum", "\"inv\",\"one\"", NULL);
    node(&m, "mx", "Maximum", "\"mn\",\"zero\"", NULL);
    node(&m, "cat", "ConcatV2", "\"mx\",\"spv:1\",\"sp\",\"ax\"", NULL);
    /* crop rows 1..3, cols 1..3 (offset not at an edge in rows: a general one-hot kernel) */
    const_i32(&m, "begin", 1, (int64_t[]){4}, (int32_t[]){0, 1, 1, 0});
    const_i32(&m, "size", 1, (int64_t[]){4}, (int32_t[]){-1, 3, 3, -1});
    node(&m, "crop", "Slice", "\"cat\",\"begin\",\"size\"", NULL);
    float x[H * W * C], y[256];
    fill(x, sizeof x / 4, 9);
    int64_t ys[8];
    if (run(&m, 1, H, W, NULL, 0, NULL, x, y, 256, ys)) return 1;
    CHECK(ys[1] == 3 && ys[2] == 3 && ys[3] == 4);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            const float *px = &x[((i + 1) * W + j + 1) * C];
            const float *py = &y[(i * 3 + j) * 4];
            float inv = fminf(fmaxf(1.0f - px[2], 0.0f), 1.0f);
            CHECKF(fabsf(py[0] - inv) < 1e-6f, "%g vs %g", py[0], inv);
            CHECK(py[1] == px[3] && py[2] == px[0] && py[3] == px[1]);
        }
    return 0;
}

/* Built at another size than exported: a literal resize size, a global AvgPool window
 * and a transposed conv's output size follow the input; MaxPool / AvgPool SAME stay. */
static int test_resolution_rebuild(void) {
    static mb m;
    memset(&m, 0, sizeof m);
    placeholder(&m, "x", 1, 8, 8, 1);
    node(&m, "pool", "AvgPool", "\"x\"",
         "\"ksize\":{\"list\":{\"i\":[\"1\",\"2\",\"2\",\"1\"]}},\"strides\":{\"list\":{\"i\":[\"1\",\"2\",\"2\",\"1\"]}},"
         "\"padding\":{\"s\":\"" B64_VALID "\"}");
    const_i32(&m, "size", 1, (int64_t[]){2}, (int32_t[]){8, 8});
    node(&m, "up", "ResizeBilinear", "\"pool\",\"size\"", "\"half_pixel_centers\":{\"b\":true}");
    node(&m, "gp", "AvgPool", "\"x\"",
         "\"ksize\":{\"list\":{\"i\":[\"1\",\"8\",\"8\",\"1\"]}},\"strides\":{\"list\":{\"i\":[\"1\",\"8\",\"8\",\"1\"]}},"
         "\"padding\":{\"s\":\"" B64_VALID "\"}");
    node(&m, "prod", "Mul", "\"up\",\"gp\"", NULL);
    float ft[2 * 2 * 1 * 1] = {1, 1, 1, 1};
    const_f32(&m, "ft", 4, (int64_t[]){2, 2, 1, 1}, ft);
    const_i32(&m, "osz", 1, (int64_t[]){4}, (int32_t[]){1, 16, 16, 1});
    node(&m, "tconv", "Conv2DBackpropInput", "\"osz\",\"ft\",\"prod\"",
         "\"padding\":{\"s\":\"" B64_SAME "\"},\"strides\":{\"list\":{\"i\":[\"1\",\"2\",\"2\",\"1\"]}}");
    float x[12 * 20], y[24 * 40];
    for (int i = 0; i < 12 * 20; i++) x[i] = 1.5f;
    int64_t ys[8];
    if (run(&m, 1, 12, 20, NULL, 0, NULL, x, y, 24 * 40, ys)) return 1;
    CHECKF(ys[1] == 24 && ys[2] == 40, "shape %lldx%lld", (long long)ys[1], (long long)ys[2]);
    /* constant input c: pool c, resize c, global pool c, product c^2; the stride-2 2x2
     * transposed conv with ones writes each input once: c^2 everywhere */
    for (int i = 0; i < 24 * 40; i++) CHECKF(fabsf(y[i] - 2.25f) < 1e-5f, "y[%d] = %g", i, y[i]);
    /* at the export size the same model runs as is */
    if (run(&m, 1, 8, 8, NULL, 0, NULL, x, y, 24 * 40, ys)) return 1;
    CHECK(ys[1] == 16 && ys[2] == 16 && fabsf(y[17] - 2.25f) < 1e-5f);
    return 0;
}

static int test_unsupported(void) {
    static mb m;
    memset(&m, 0, sizeof m);
    placeholder(&m, "x", 1, 2, 2, 1);
    node(&m, "e", "Erf", "\"x\"", NULL);
    ams_err err = {0};
    ams_tfjs_model *mm = NULL;
    CHECK(parse(&m, &mm, &err) == AMS_OK);
    ams_graph *g = ams_graph_new(ams_tfjs_params(mm));
    int out, in;
    CHECK(ams_tfjs_build(mm, g, &(ams_tfjs_build_opts){1, 2, 2, NULL, 0}, NULL, 1, &out, &in, &err) ==
          AMS_E_UNSUPPORTED);
    CHECKF(!strcmp(err.msg, "unsupported op 'Erf' at node 'e'"), "%s", err.msg);
    ams_graph_free(g);
    ams_tfjs_free(mm);
    /* a Pad that no convolution absorbs */
    memset(&m, 0, sizeof m);
    placeholder(&m, "x", 1, 2, 2, 1);
    const_i32(&m, "pads", 2, (int64_t[]){4, 2}, (int32_t[]){0, 0, 1, 1, 1, 1, 0, 0});
    node(&m, "pad", "Pad", "\"x\",\"pads\"", NULL);
    node(&m, "r", "Relu", "\"pad\"", NULL);
    CHECK(parse(&m, &mm, &err) == AMS_OK);
    g = ams_graph_new(ams_tfjs_params(mm));
    CHECK(ams_tfjs_build(mm, g, &(ams_tfjs_build_opts){1, 2, 2, NULL, 0}, NULL, 1, &out, &in, &err) ==
          AMS_E_UNSUPPORTED);
    CHECKF(strstr(err.msg, "at node 'r'") && strstr(err.msg, "Pad"), "%s", err.msg);
    ams_graph_free(g);
    ams_tfjs_free(mm);
    return 0;
}

/* RealDiv / Div of tensors (RVM's guided filter) on the engine's broadcasting divide:
 * tensor / tensor, constant / tensor and tensor / broadcast weight, against the formula. */
static int test_realdiv(void) {
    static mb m;
    memset(&m, 0, sizeof m);
    placeholder(&m, "x", 1, 2, 3, 1);
    const_f32(&m, "one", 0, NULL, (float[]){1.0f});
    const_f32(&m, "two", 0, NULL, (float[]){2.0f});
    const_f32(&m, "w", 2, (int64_t[]){3, 1}, (float[]){1.0f, 2.0f, 4.0f});
    node(&m, "sq", "Square", "\"x\"", NULL);
    node(&m, "den", "AddV2", "\"sq\",\"one\"", NULL);
    node(&m, "q", "RealDiv", "\"x\",\"den\"", NULL);   /* x / (x^2 + 1) */
    node(&m, "r", "RealDiv", "\"two\",\"den\"", NULL); /* 2 / (x^2 + 1) */
    node(&m, "s", "AddV2", "\"q\",\"r\"", NULL);
    node(&m, "t", "Div", "\"s\",\"w\"", NULL);         /* broadcast over the width */
    const float x[6] = {-1.5f, 0.0f, 0.5f, 2.0f, -3.0f, 1.0f};
    float y[6];
    int64_t shp[AMS_MAX_DIMS];
    CHECK(run(&m, 1, 2, 3, NULL, 0, "t", x, y, 6, shp) == 0);
    CHECK(shp[0] == 1 && shp[1] == 2 && shp[2] == 3 && shp[3] == 1);
    const float w[3] = {1, 2, 4};
    for (int i = 0; i < 6; i++) {
        double want = ((double)x[i] + 2) / ((double)x[i] * x[i] + 1) / w[i % 3];
        CHECKF(fabs(y[i] - want) < 1e-6, "y[%d] = %g, want %g", i, y[i], want);
    }
    return 0;
}

/* Imported weights are trainable parameters: d loss / d filter and bias from backward
 * against central finite differences of the forward loss (BCE on the pre-sigmoid logit). */
static int test_gradients(void) {
    enum { H = 5, W = 6, C = 2 };
    static mb m;
    memset(&m, 0, sizeof m);
    float f[3 * 3 * C], bias[1], x[H * W * C];
    fill(f, sizeof f / 4, 21), fill(x, sizeof x / 4, 22);
    bias[0] = 0.1f;
    placeholder(&m, "x", 1, H, W, C);
    const_f32(&m, "f", 4, (int64_t[]){3, 3, C, 1}, f);
    const_f32(&m, "b", 1, (int64_t[]){1}, bias);
    node(&m, "conv", "Conv2D", "\"x\",\"f\"",
         "\"padding\":{\"s\":\"" B64_SAME "\"},\"strides\":{\"list\":{\"i\":[\"1\",\"1\",\"1\",\"1\"]}}");
    node(&m, "logit", "BiasAdd", "\"conv\",\"b\"", NULL);
    node(&m, "prob", "Sigmoid", "\"logit\"", NULL);
    ams_err err = {0};
    ams_tfjs_model *mm = NULL;
    CHECKF(parse(&m, &mm, &err) == AMS_OK, "%s", err.msg);
    CHECK(!strcmp(ams_tfjs_logit_name(mm, "prob"), "logit"));
    ams_params *p = ams_tfjs_params(mm);
    CHECK(p->info[ams_params_find(p, "f")].trainable && p->info[ams_params_find(p, "b")].trainable);
    ams_graph *g = ams_graph_new(p);
    const char *outs[1] = {"logit"};
    int lg = -1, in = -1;
    CHECKF(ams_tfjs_build(mm, g, &(ams_tfjs_build_opts){1, H, W, NULL, 0}, outs, 1, &lg, &in, &err) ==
               AMS_OK,
           "%s", err.msg);
    int lab = ams_graph_labels(g, "labels", 1, H, W);
    int loss = ams_graph_bce_logits(g, lg, lab);
    uint8_t labels[H * W];
    for (int i = 0; i < H * W; i++) labels[i] = (uint8_t)(i % 3 == 0 ? 255 : i % 2);
    CHECKF(ams_graph_plan(g, AMS_PLAN_TRAIN, &err) == AMS_OK, "%s", err.msg);
    CHECK(ams_graph_set_input(g, in, x, &err) == AMS_OK);
    CHECK(ams_graph_set_labels(g, lab, labels, &err) == AMS_OK);
    const ams_backend *be = ams_backend_ref();
    ams_params_zero_grads(p);
    CHECK(ams_graph_forward(g, be, &err) == AMS_OK);
    CHECK(ams_graph_backward(g, be, loss, &err) == AMS_OK);
    for (int k = 0; k < 2; k++) {
        int idx = ams_params_find(p, k ? "b" : "f");
        float *v = ams_params_data(p, idx);
        const float *gr = ams_params_grad(p, idx);
        for (int64_t i = 0; i < p->info[idx].numel; i++) {
            float save = v[i], eps = 1e-2f;
            v[i] = save + eps;
            CHECK(ams_graph_forward(g, be, &err) == AMS_OK);
            double lp = ams_graph_value(g, loss)[0];
            v[i] = save - eps;
            CHECK(ams_graph_forward(g, be, &err) == AMS_OK);
            double lm = ams_graph_value(g, loss)[0];
            v[i] = save;
            double fd = (lp - lm) / (2 * eps);
            CHECKF(fabs(fd - gr[i]) < 2e-3 + 1e-2 * fabs(fd), "%s[%lld]: fd %g, backward %g",
                   k ? "b" : "f", (long long)i, fd, gr[i]);
        }
    }
    ams_graph_free(g);
    ams_tfjs_free(mm);
    return 0;
}

int main(int argc, char **argv) {
    static const check_case cases[] = {
        {"decode", test_decode},
        {"hostile", test_hostile},
        {"conv_ops", test_conv_ops},
        {"atrous_fold", test_atrous_fold},
        {"cond_fold", test_cond_fold},
        {"split_slice_concat", test_split_slice_concat},
        {"resolution_rebuild", test_resolution_rebuild},
        {"unsupported", test_unsupported},
        {"gradients", test_gradients},
        {"realdiv", test_realdiv},
    };
    return check_run(cases, sizeof cases / sizeof cases[0], argc, argv);
}
