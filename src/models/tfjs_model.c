/* tfjs_model.c - loads a TF.js graph model: model.json (nodes, signature, weights
 * manifest) and its weight shards; dequantizes float16 / uint8 / uint16 affine weights
 * into a flat ams_params; keeps the op list in topological order. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/file_io.h"
#include "models/tfjs_internal.h"

/* ---------------------------------------------------------------- helpers */

static uint32_t hash_name(const char *s, size_t len) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < len; i++) h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

int ams_tfjs_find(const ams_tfjs_model *m, const char *name, size_t len) {
    if (!m->hcap) return -1;
    uint32_t i = hash_name(name, len) & (uint32_t)(m->hcap - 1);
    for (;;) {
        int k = m->hash[i];
        if (k < 0) return -1;
        const char *s = m->nodes[k].name;
        if (strlen(s) == len && memcmp(s, name, len) == 0) return k;
        i = (i + 1) & (uint32_t)(m->hcap - 1);
    }
}

const cJSON *ams_tfjs_attr(const tfjs_node *n, const char *key) {
    return n->attr ? cJSON_GetObjectItemCaseSensitive(n->attr, key) : NULL;
}

static int b64_val(int c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
}

/* Decodes base64 text into buf (NUL-terminated); 0 on bad input or overflow. */
static int b64_decode(const char *in, char *buf, size_t cap) {
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (const char *p = in; *p && *p != '='; p++) {
        int v = b64_val((unsigned char)*p);
        if (v < 0) return 0;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o + 1 >= cap) return 0;
            buf[o++] = (char)((acc >> bits) & 0xff);
        }
    }
    if (cap == 0) return 0;
    buf[o] = 0;
    return 1;
}

int ams_tfjs_attr_str(const tfjs_node *n, const char *key, char *buf, size_t cap) {
    const cJSON *a = ams_tfjs_attr(n, key);
    const cJSON *s = a ? cJSON_GetObjectItemCaseSensitive(a, "s") : NULL;
    if (!cJSON_IsString(s)) return 0;
    return b64_decode(s->valuestring, buf, cap);
}

/* An integer written as a JSON number or a decimal string (TF.js writes int64 as text). */
static int json_int(const cJSON *j, int64_t *v) {
    if (cJSON_IsNumber(j)) {
        double d = j->valuedouble;
        if (!(d >= -9.0e15 && d <= 9.0e15) || d != floor(d)) return 0;
        *v = (int64_t)d;
        return 1;
    }
    if (cJSON_IsString(j)) {
        char *end;
        errno = 0;
        long long x = strtoll(j->valuestring, &end, 10);
        if (errno || end == j->valuestring || *end) return 0;
        *v = x;
        return 1;
    }
    return 0;
}

int ams_tfjs_attr_ints(const tfjs_node *n, const char *key, int64_t *v, int cap) {
    const cJSON *a = ams_tfjs_attr(n, key);
    const cJSON *l = a ? cJSON_GetObjectItemCaseSensitive(a, "list") : NULL;
    if (!cJSON_IsObject(l)) return -1;
    const cJSON *is = cJSON_GetObjectItemCaseSensitive(l, "i");
    if (!is) return 0;
    if (!cJSON_IsArray(is)) return -1;
    int k = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, is) {
        if (k >= cap || !json_int(e, &v[k])) return -1;
        k++;
    }
    return k;
}

int64_t ams_tfjs_attr_int(const tfjs_node *n, const char *key, int64_t def) {
    const cJSON *a = ams_tfjs_attr(n, key);
    int64_t v;
    if (a && json_int(cJSON_GetObjectItemCaseSensitive(a, "i"), &v)) return v;
    return def;
}

int ams_tfjs_attr_bool(const tfjs_node *n, const char *key, int def) {
    const cJSON *a = ams_tfjs_attr(n, key);
    const cJSON *b = a ? cJSON_GetObjectItemCaseSensitive(a, "b") : NULL;
    if (cJSON_IsBool(b)) return cJSON_IsTrue(b);
    return def;
}

int ams_tfjs_attr_strs(const tfjs_node *n, const char *key, char (*out)[32], int cap) {
    const cJSON *a = ams_tfjs_attr(n, key);
    const cJSON *l = a ? cJSON_GetObjectItemCaseSensitive(a, "list") : NULL;
    const cJSON *ss = l ? cJSON_GetObjectItemCaseSensitive(l, "s") : NULL;
    if (!cJSON_IsArray(ss)) return 0;
    int k = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, ss) {
        if (k >= cap || !cJSON_IsString(e) || !b64_decode(e->valuestring, out[k], 32)) break;
        k++;
    }
    return k;
}

/* ---------------------------------------------------------------- free / queries */

void ams_tfjs_free(ams_tfjs_model *m) {
    if (!m) return;
    for (int i = 0; i < m->count; i++) {
        free(m->nodes[i].in_node);
        free(m->nodes[i].in_port);
        free(m->nodes[i].ctl);
        free(m->nodes[i].cint);
    }
    for (int i = 0; i < m->nout; i++) {
        free(m->out_node[i]);
        free(m->out_key[i]);
    }
    free(m->out_node);
    free(m->out_key);
    free(m->nodes);
    free(m->order);
    free(m->hash);
    ams_params_free(m->params);
    cJSON_Delete(m->root);
    free(m);
}

ams_params *ams_tfjs_params(const ams_tfjs_model *m) { return m->params; }
int ams_tfjs_node_count(const ams_tfjs_model *m) { return m->count; }
const char *ams_tfjs_node_name(const ams_tfjs_model *m, int i) { return m->nodes[i].name; }
const char *ams_tfjs_node_op(const ams_tfjs_model *m, int i) { return m->nodes[i].op; }
int ams_tfjs_output_count(const ams_tfjs_model *m) { return m->nout; }
const char *ams_tfjs_output_node(const ams_tfjs_model *m, int i) { return m->out_node[i]; }
const char *ams_tfjs_output_key(const ams_tfjs_model *m, int i) { return m->out_key[i]; }

const char *ams_tfjs_image_input(const ams_tfjs_model *m, int *channels, int *ref_h,
                                 int *ref_w) {
    if (channels) *channels = m->image_c;
    if (ref_h) *ref_h = m->ref_h;
    if (ref_w) *ref_w = m->ref_w;
    return m->image >= 0 ? m->nodes[m->image].name : NULL;
}

const char *ams_tfjs_logit_name(const ams_tfjs_model *m, const char *output) {
    const char *node = output;
    for (int i = 0; i < m->nout; i++)
        if (!strcmp(m->out_key[i], output)) node = m->out_node[i];
    int k = ams_tfjs_find(m, node, strlen(node));
    /* follow Identity chains to the op that made the output */
    for (int hops = 0; k >= 0 && hops < 64 && !strcmp(m->nodes[k].op, "Identity") &&
                       m->nodes[k].nin == 1;
         hops++)
        k = m->nodes[k].in_node[0];
    if (k < 0 || strcmp(m->nodes[k].op, "Sigmoid") || m->nodes[k].nin != 1) return NULL;
    return m->nodes[m->nodes[k].in_node[0]].name;
}

/* ---------------------------------------------------------------- nodes */

static int is_conv_op(const char *op) {
    return !strcmp(op, "Conv2D") || !strcmp(op, "DepthwiseConv2dNative") ||
           !strcmp(op, "_FusedConv2D") || !strcmp(op, "FusedDepthwiseConv2dNative") ||
           !strcmp(op, "Conv2DBackpropInput");
}

/* Splits "name:port" / "^name" references; returns the node or -1. */
static int resolve_ref(const ams_tfjs_model *m, const char *ref, int *port, int *control) {
    *control = ref[0] == '^';
    if (*control) ref++;
    size_t len = strlen(ref);
    *port = 0;
    const char *colon = strrchr(ref, ':');
    if (colon && colon[1]) {
        char *end;
        long p = strtol(colon + 1, &end, 10);
        if (!*end && p >= 0 && p < TFJS_MAX_OUTPUTS) {
            int k = ams_tfjs_find(m, ref, (size_t)(colon - ref));
            if (k >= 0) {
                *port = (int)p;
                return k;
            }
        }
    }
    return ams_tfjs_find(m, ref, len);
}

static int outputs_of(const tfjs_node *n) {
    if (!strcmp(n->op, "Switch")) return 2;
    if (!strcmp(n->op, "Merge")) return 2;
    if (!strcmp(n->op, "Split") || !strcmp(n->op, "SplitV") || !strcmp(n->op, "Unpack")) {
        int64_t k = ams_tfjs_attr_int(n, !strcmp(n->op, "Unpack") ? "num" : "num_split", 1);
        return k >= 1 && k <= TFJS_MAX_OUTPUTS ? (int)k : 1;
    }
    return 1;
}

static ams_status parse_nodes(ams_tfjs_model *m, const cJSON *list, ams_err *err) {
    int count = cJSON_GetArraySize(list);
    AMS_FAIL_IF(count <= 0, err, AMS_E_FORMAT, "modelTopology.node is empty");
    AMS_FAIL_IF(count > AMS_TFJS_MAX_NODES, err, AMS_E_RANGE,
                "modelTopology.node has %d nodes (at most %d)", count, AMS_TFJS_MAX_NODES);
    m->nodes = calloc((size_t)count, sizeof *m->nodes);
    m->hcap = 16;
    while (m->hcap < 2 * count) m->hcap *= 2;
    m->hash = malloc((size_t)m->hcap * sizeof *m->hash);
    AMS_FAIL_IF(!m->nodes || !m->hash, err, AMS_E_NOMEM, "out of memory for %d nodes", count);
    memset(m->hash, 0xff, (size_t)m->hcap * sizeof *m->hash);
    m->count = count;
    int i = 0;
    const cJSON *j;
    cJSON_ArrayForEach(j, list) {
        tfjs_node *n = &m->nodes[i];
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(j, "name");
        const cJSON *op = cJSON_GetObjectItemCaseSensitive(j, "op");
        AMS_FAIL_IF(!cJSON_IsString(name) || !cJSON_IsString(op) || !name->valuestring[0], err,
                    AMS_E_FORMAT, "node %d has no name or op", i);
        n->name = name->valuestring;
        n->op = op->valuestring;
        n->cparam = -1;
        const cJSON *attr = cJSON_GetObjectItemCaseSensitive(j, "attr");
        n->attr = cJSON_IsObject(attr) ? attr : NULL;
        size_t len = strlen(n->name);
        AMS_FAIL_IF(ams_tfjs_find(m, n->name, len) >= 0, err, AMS_E_FORMAT,
                    "duplicate node name '%s'", n->name);
        uint32_t h = hash_name(n->name, len) & (uint32_t)(m->hcap - 1);
        while (m->hash[h] >= 0) h = (h + 1) & (uint32_t)(m->hcap - 1);
        m->hash[h] = i;
        n->nout = outputs_of(n);
        i++;
    }
    /* inputs, now that every name is known */
    i = 0;
    cJSON_ArrayForEach(j, list) {
        tfjs_node *n = &m->nodes[i];
        const cJSON *ins = cJSON_GetObjectItemCaseSensitive(j, "input");
        int k = ins ? cJSON_GetArraySize(ins) : 0;
        AMS_FAIL_IF(ins && !cJSON_IsArray(ins), err, AMS_E_FORMAT,
                    "node '%s': input is not a list", n->name);
        AMS_FAIL_IF(k > AMS_TFJS_MAX_INPUTS, err, AMS_E_RANGE,
                    "node '%s' has %d inputs (at most %d)", n->name, k, AMS_TFJS_MAX_INPUTS);
        if (k) {
            n->in_node = malloc((size_t)k * sizeof(int));
            n->in_port = malloc((size_t)k * sizeof(int));
            n->ctl = malloc((size_t)k * sizeof(int));
            AMS_FAIL_IF(!n->in_node || !n->in_port || !n->ctl, err, AMS_E_NOMEM,
                        "out of memory");
        }
        const cJSON *e;
        cJSON_ArrayForEach(e, ins) {
            AMS_FAIL_IF(!cJSON_IsString(e), err, AMS_E_FORMAT,
                        "node '%s': an input is not a string", n->name);
            int port, control;
            int src = resolve_ref(m, e->valuestring, &port, &control);
            if (control) {
                if (src >= 0) n->ctl[n->nctl++] = src; /* a missing control input is harmless */
                continue;
            }
            AMS_FAIL_IF(n->nctl > 0, err, AMS_E_FORMAT,
                        "node '%s': data input '%s' after a control input", n->name,
                        e->valuestring);
            AMS_FAIL_IF(src < 0, err, AMS_E_FORMAT, "node '%s': input '%s' is not a node",
                        n->name, e->valuestring);
            AMS_FAIL_IF(port >= m->nodes[src].nout, err, AMS_E_FORMAT,
                        "node '%s': input '%s' names output %d of a node with %d", n->name,
                        e->valuestring, port, m->nodes[src].nout);
            n->in_node[n->nin] = src;
            n->in_port[n->nin] = port;
            n->nin++;
        }
        i++;
    }
    return AMS_OK;
}

/* Kahn's algorithm over data and control edges; a cycle is an error. */
static ams_status topo_sort(ams_tfjs_model *m, ams_err *err) {
    int n = m->count;
    int *indeg = calloc((size_t)n, sizeof(int));
    int *start = calloc((size_t)n + 1, sizeof(int));
    size_t edges = 0;
    for (int i = 0; i < n; i++) edges += (size_t)(m->nodes[i].nin + m->nodes[i].nctl);
    int *users = malloc((edges ? edges : 1) * sizeof(int));
    m->order = malloc((size_t)n * sizeof(int));
    if (!indeg || !start || !users || !m->order) {
        free(indeg), free(start), free(users);
        AMS_FAIL(err, AMS_E_NOMEM, "out of memory sorting %d nodes", n);
    }
    for (int i = 0; i < n; i++) {
        const tfjs_node *d = &m->nodes[i];
        for (int k = 0; k < d->nin + d->nctl; k++) {
            int src = k < d->nin ? d->in_node[k] : d->ctl[k - d->nin];
            start[src + 1]++;
            indeg[i]++;
        }
    }
    for (int i = 0; i < n; i++) start[i + 1] += start[i];
    int *fill = calloc((size_t)n, sizeof(int));
    if (!fill) {
        free(indeg), free(start), free(users);
        AMS_FAIL(err, AMS_E_NOMEM, "out of memory sorting %d nodes", n);
    }
    for (int i = 0; i < n; i++) {
        const tfjs_node *d = &m->nodes[i];
        for (int k = 0; k < d->nin + d->nctl; k++) {
            int src = k < d->nin ? d->in_node[k] : d->ctl[k - d->nin];
            users[start[src] + fill[src]++] = i;
        }
    }
    int head = 0, tail = 0;
    for (int i = 0; i < n; i++)
        if (indeg[i] == 0) m->order[tail++] = i;
    while (head < tail) {
        int v = m->order[head++];
        for (int k = start[v]; k < start[v + 1]; k++)
            if (--indeg[users[k]] == 0) m->order[tail++] = users[k];
    }
    free(indeg), free(start), free(users), free(fill);
    AMS_FAIL_IF(tail != n, err, AMS_E_FORMAT, "the graph has a cycle (%d of %d nodes sorted)",
                tail, n);
    return AMS_OK;
}

/* Float constants that a convolution uses as filter or bias are trainable. */
static void mark_trainable(ams_tfjs_model *m) {
    for (int i = 0; i < m->count; i++) {
        const tfjs_node *n = &m->nodes[i];
        if (is_conv_op(n->op)) {
            /* filter (input 1) and fused bias (input 2); Conv2DBackpropInput's input 0 is
             * its output shape and input 2 the image */
            int last = !strcmp(n->op, "Conv2DBackpropInput") ? 2 : n->nin;
            for (int k = 1; k < last && k < n->nin; k++) m->nodes[n->in_node[k]].trainable = 1;
        } else if ((!strcmp(n->op, "Add") || !strcmp(n->op, "AddV2") ||
                    !strcmp(n->op, "BiasAdd")) &&
                   n->nin == 2) {
            for (int k = 0; k < 2; k++) {
                const tfjs_node *a = &m->nodes[n->in_node[k]];
                tfjs_node *b = &m->nodes[n->in_node[1 - k]];
                if (is_conv_op(a->op) && !strcmp(b->op, "Const")) b->trainable = 1;
            }
        }
    }
}

/* ---------------------------------------------------------------- signature */

static char *strip_port(const char *s) {
    size_t len = strlen(s);
    if (len > 2 && !strcmp(s + len - 2, ":0")) len -= 2;
    char *r = malloc(len + 1);
    if (r) memcpy(r, s, len), r[len] = 0;
    return r;
}

static ams_status parse_signature(ams_tfjs_model *m, const cJSON *root, ams_err *err) {
    const cJSON *sig = cJSON_GetObjectItemCaseSensitive(root, "signature");
    const cJSON *outs = sig ? cJSON_GetObjectItemCaseSensitive(sig, "outputs") : NULL;
    int k = cJSON_IsObject(outs) ? cJSON_GetArraySize(outs) : 0;
    AMS_FAIL_IF(k > TFJS_MAX_OUTPUTS * 16, err, AMS_E_RANGE, "signature has %d outputs", k);
    if (k > 0) {
        m->out_node = calloc((size_t)k, sizeof(char *));
        m->out_key = calloc((size_t)k, sizeof(char *));
        AMS_FAIL_IF(!m->out_node || !m->out_key, err, AMS_E_NOMEM, "out of memory");
        const cJSON *o;
        cJSON_ArrayForEach(o, outs) {
            const cJSON *name = cJSON_GetObjectItemCaseSensitive(o, "name");
            const char *node = cJSON_IsString(name) ? name->valuestring : o->string;
            AMS_FAIL_IF(!node || !o->string, err, AMS_E_FORMAT, "signature output without a name");
            m->out_node[m->nout] = strip_port(node);
            m->out_key[m->nout] = strip_port(o->string);
            m->nout++;
            AMS_FAIL_IF(!m->out_node[m->nout - 1] || !m->out_key[m->nout - 1], err, AMS_E_NOMEM,
                        "out of memory");
        }
        return AMS_OK;
    }
    /* No signature: every node nobody consumes (except Const/NoOp) is an output. */
    char *used = calloc((size_t)m->count, 1);
    AMS_FAIL_IF(!used, err, AMS_E_NOMEM, "out of memory");
    for (int i = 0; i < m->count; i++)
        for (int j = 0; j < m->nodes[i].nin; j++) used[m->nodes[i].in_node[j]] = 1;
    int cnt = 0;
    for (int i = 0; i < m->count; i++)
        if (!used[i] && strcmp(m->nodes[i].op, "Const") && strcmp(m->nodes[i].op, "NoOp")) cnt++;
    m->out_node = calloc((size_t)cnt + 1, sizeof(char *));
    m->out_key = calloc((size_t)cnt + 1, sizeof(char *));
    if (!m->out_node || !m->out_key) {
        free(used);
        AMS_FAIL(err, AMS_E_NOMEM, "out of memory");
    }
    for (int i = 0; i < m->count; i++) {
        if (used[i] || !strcmp(m->nodes[i].op, "Const") || !strcmp(m->nodes[i].op, "NoOp"))
            continue;
        m->out_node[m->nout] = strip_port(m->nodes[i].name);
        m->out_key[m->nout] = strip_port(m->nodes[i].name);
        m->nout++;
        if (!m->out_node[m->nout - 1] || !m->out_key[m->nout - 1]) {
            free(used);
            AMS_FAIL(err, AMS_E_NOMEM, "out of memory");
        }
    }
    free(used);
    return AMS_OK;
}

static void find_image_input(ams_tfjs_model *m) {
    m->image = -1;
    for (int i = 0; i < m->count; i++) {
        const tfjs_node *n = &m->nodes[i];
        if (strcmp(n->op, "Placeholder")) continue;
        const cJSON *a = ams_tfjs_attr(n, "shape");
        const cJSON *s = a ? cJSON_GetObjectItemCaseSensitive(a, "shape") : NULL;
        const cJSON *dims = s ? cJSON_GetObjectItemCaseSensitive(s, "dim") : NULL;
        if (!cJSON_IsArray(dims) || cJSON_GetArraySize(dims) != 4) continue;
        int64_t d[4];
        for (int k = 0; k < 4; k++) {
            const cJSON *e = cJSON_GetArrayItem(dims, k);
            const cJSON *sz = e ? cJSON_GetObjectItemCaseSensitive(e, "size") : NULL;
            if (!json_int(sz, &d[k])) d[k] = -1;
        }
        m->image = i;
        m->image_c = d[3] > 0 && d[3] <= 4096 ? (int)d[3] : 3;
        m->ref_h = d[1] > 0 && d[1] <= 65536 ? (int)d[1] : 0;
        m->ref_w = d[2] > 0 && d[2] <= 65536 ? (int)d[2] : 0;
        return;
    }
}

/* ---------------------------------------------------------------- weights */

typedef enum { ENC_F32, ENC_I32, ENC_BOOL, ENC_F16, ENC_U8, ENC_U16 } encoding;

typedef struct spec {
    int node;           /* Const node it fills, or -1 */
    encoding enc;
    int ndim;
    int64_t shape[AMS_MAX_DIMS];
    size_t numel;
    size_t offset;      /* in the weight bytes */
    double qmin, qscale;
} spec;

static size_t enc_size(encoding e) {
    switch (e) {
    case ENC_F32: case ENC_I32: return 4;
    case ENC_F16: case ENC_U16: return 2;
    case ENC_BOOL: case ENC_U8: return 1;
    }
    return 4;
}

static ams_status parse_spec(const cJSON *w, spec *s, size_t *offset, size_t weights_len,
                             const ams_tfjs_model *m, ams_err *err) {
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(w, "name");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(w, "shape");
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(w, "dtype");
    AMS_FAIL_IF(!cJSON_IsString(name) || !cJSON_IsArray(shape) || !cJSON_IsString(dtype), err,
                AMS_E_FORMAT, "weightsManifest entry without name, shape or dtype");
    const char *nm = name->valuestring;
    s->ndim = cJSON_GetArraySize(shape);
    AMS_FAIL_IF(s->ndim > AMS_MAX_DIMS, err, AMS_E_RANGE, "weight '%s' has %d dims (at most %d)",
                nm, s->ndim, AMS_MAX_DIMS);
    s->numel = 1;
    for (int k = 0; k < s->ndim; k++) {
        int64_t d;
        AMS_FAIL_IF(!json_int(cJSON_GetArrayItem(shape, k), &d) || d < 0 || d > INT32_MAX, err,
                    AMS_E_FORMAT, "weight '%s': bad dimension %d", nm, k);
        s->shape[k] = d;
        AMS_FAIL_IF(!ams_size_mul_ok(s->numel, (size_t)d, &s->numel), err, AMS_E_RANGE,
                    "weight '%s': size overflows", nm);
    }
    const char *dt = dtype->valuestring;
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(w, "quantization");
    if (q) {
        const cJSON *qd = cJSON_GetObjectItemCaseSensitive(q, "dtype");
        AMS_FAIL_IF(!cJSON_IsString(qd), err, AMS_E_FORMAT, "weight '%s': quantization without dtype",
                    nm);
        AMS_FAIL_IF(strcmp(dt, "float32"), err, AMS_E_UNSUPPORTED,
                    "weight '%s': quantized %s weights are not supported", nm, dt);
        if (!strcmp(qd->valuestring, "float16")) {
            s->enc = ENC_F16;
        } else if (!strcmp(qd->valuestring, "uint8") || !strcmp(qd->valuestring, "uint16")) {
            s->enc = qd->valuestring[4] == '8' ? ENC_U8 : ENC_U16;
            const cJSON *mn = cJSON_GetObjectItemCaseSensitive(q, "min");
            const cJSON *sc = cJSON_GetObjectItemCaseSensitive(q, "scale");
            AMS_FAIL_IF(!cJSON_IsNumber(mn) || !cJSON_IsNumber(sc) || !isfinite(mn->valuedouble) ||
                            !isfinite(sc->valuedouble),
                        err, AMS_E_FORMAT, "weight '%s': %s quantization needs finite min and scale",
                        nm, qd->valuestring);
            s->qmin = mn->valuedouble;
            s->qscale = sc->valuedouble;
        } else {
            AMS_FAIL(err, AMS_E_UNSUPPORTED, "weight '%s': unsupported quantization '%s'", nm,
                     qd->valuestring);
        }
    } else if (!strcmp(dt, "float32")) {
        s->enc = ENC_F32;
    } else if (!strcmp(dt, "int32")) {
        s->enc = ENC_I32;
    } else if (!strcmp(dt, "bool")) {
        s->enc = ENC_BOOL;
    } else {
        AMS_FAIL(err, AMS_E_UNSUPPORTED, "weight '%s': unsupported dtype '%s'", nm, dt);
    }
    size_t bytes;
    AMS_FAIL_IF(!ams_size_mul_ok(s->numel, enc_size(s->enc), &bytes), err, AMS_E_RANGE,
                "weight '%s': size overflows", nm);
    AMS_FAIL_IF(*offset > weights_len || bytes > weights_len - *offset, err, AMS_E_FORMAT,
                "weight '%s' needs bytes [%zu, %zu+%zu) but the shards hold %zu", nm, *offset,
                *offset, bytes, weights_len);
    s->offset = *offset;
    *offset += bytes;
    s->node = ams_tfjs_find(m, nm, strlen(nm));
    if (s->node >= 0 && strcmp(m->nodes[s->node].op, "Const")) s->node = -1;
    return AMS_OK;
}

static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static float dequant(const spec *s, const uint8_t *w, size_t i) {
    const uint8_t *p = w + s->offset;
    switch (s->enc) {
    case ENC_F32: {
        uint32_t u = rd32(p + 4 * i);
        float f;
        memcpy(&f, &u, 4);
        return f;
    }
    case ENC_F16: return ams_f16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
    case ENC_U8: return (float)(s->qmin + s->qscale * p[i]);
    case ENC_U16: return (float)(s->qmin + s->qscale * (double)(p[2 * i] | p[2 * i + 1] << 8));
    case ENC_I32: return (float)(int32_t)rd32(p + 4 * i);
    case ENC_BOOL: return p[i] ? 1.0f : 0.0f;
    }
    return 0;
}

static ams_status parse_weights(ams_tfjs_model *m, const cJSON *root, const uint8_t *weights,
                                size_t weights_len, ams_err *err) {
    const cJSON *man = cJSON_GetObjectItemCaseSensitive(root, "weightsManifest");
    AMS_FAIL_IF(man && !cJSON_IsArray(man), err, AMS_E_FORMAT, "weightsManifest is not a list");
    int total = 0;
    const cJSON *g, *w;
    cJSON_ArrayForEach(g, man) {
        const cJSON *ws = cJSON_GetObjectItemCaseSensitive(g, "weights");
        AMS_FAIL_IF(!cJSON_IsArray(ws), err, AMS_E_FORMAT, "weightsManifest group without weights");
        total += cJSON_GetArraySize(ws);
        AMS_FAIL_IF(total > AMS_TFJS_MAX_NODES, err, AMS_E_RANGE, "too many weights (%d)", total);
    }
    spec *specs = calloc((size_t)total + 1, sizeof *specs);
    AMS_FAIL_IF(!specs, err, AMS_E_NOMEM, "out of memory");
    ams_status st = AMS_OK;
    size_t offset = 0;
    int k = 0;
    cJSON_ArrayForEach(g, man) {
        cJSON_ArrayForEach(w, cJSON_GetObjectItemCaseSensitive(g, "weights")) {
            st = parse_spec(w, &specs[k], &offset, weights_len, m, err);
            if (st) goto done;
            k++;
        }
    }
    /* declare a parameter per float constant, then fill */
    for (int i = 0; i < total; i++) {
        spec *s = &specs[i];
        if (s->node < 0) continue;
        tfjs_node *n = &m->nodes[s->node];
        if (n->cdtype != TFJS_DT_NONE) {
            st = ams_err_set(err, AMS_E_FORMAT, "const '%s' has two manifest entries", n->name);
            goto done;
        }
        n->cndim = s->ndim;
        memcpy(n->cshape, s->shape, sizeof s->shape);
        if (s->enc == ENC_I32 || s->enc == ENC_BOOL) {
            n->cdtype = s->enc == ENC_I32 ? TFJS_DT_INT32 : TFJS_DT_BOOL;
            n->cint = malloc((s->numel ? s->numel : 1) * sizeof(int32_t));
            if (!n->cint) {
                st = ams_err_set(err, AMS_E_NOMEM, "out of memory for '%s'", n->name);
                goto done;
            }
            const uint8_t *src = weights + s->offset;
            for (size_t e = 0; e < s->numel; e++)
                n->cint[e] = s->enc == ENC_I32 ? (int32_t)rd32(src + 4 * e) : src[e] != 0;
        } else {
            n->cdtype = TFJS_DT_FLOAT;
            if (strlen(n->name) >= AMS_PARAM_NAME_MAX) {
                st = ams_err_set(err, AMS_E_RANGE, "const name too long: '%.64s...'", n->name);
                goto done;
            }
            int idx = ams_params_add(m->params, n->name, s->ndim, s->shape, n->trainable, err);
            if (idx < 0) {
                st = (ams_status)idx;
                goto done;
            }
            n->cparam = idx;
        }
    }
    st = ams_params_alloc(m->params, err);
    if (st) goto done;
    for (int i = 0; i < total; i++) {
        spec *s = &specs[i];
        if (s->node < 0 || m->nodes[s->node].cparam < 0) continue;
        float *dst = ams_params_data(m->params, m->nodes[s->node].cparam);
        for (size_t e = 0; e < s->numel; e++) dst[e] = dequant(s, weights, e);
    }
    if (offset != weights_len)
        st = ams_err_set(err, AMS_E_FORMAT, "the manifest describes %zu weight bytes, the shards hold %zu",
                         offset, weights_len);
done:
    free(specs);
    return st;
}

/* ---------------------------------------------------------------- entry points */

ams_status ams_tfjs_parse(const char *json, size_t json_len, const uint8_t *weights,
                          size_t weights_len, ams_tfjs_model **out, ams_err *err) {
    *out = NULL;
    AMS_FAIL_IF(json_len > AMS_TFJS_MAX_JSON_BYTES, err, AMS_E_RANGE,
                "model.json is %zu bytes (at most %zu)", json_len, AMS_TFJS_MAX_JSON_BYTES);
    AMS_FAIL_IF(weights_len > AMS_TFJS_MAX_WEIGHT_BYTES, err, AMS_E_RANGE,
                "weights are %zu bytes (at most %zu)", weights_len, AMS_TFJS_MAX_WEIGHT_BYTES);
    ams_tfjs_model *m = calloc(1, sizeof *m);
    AMS_FAIL_IF(!m, err, AMS_E_NOMEM, "out of memory");
    m->image = -1;
    ams_status st = AMS_OK;
    m->root = cJSON_ParseWithLength(json, json_len);
    m->params = ams_params_new();
    if (!m->root) {
        st = ams_err_set(err, AMS_E_FORMAT, "model.json is not valid JSON");
        goto fail;
    }
    if (!m->params) {
        st = ams_err_set(err, AMS_E_NOMEM, "out of memory");
        goto fail;
    }
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(m->root, "format");
    if (cJSON_IsString(fmt) && strcmp(fmt->valuestring, "graph-model")) {
        st = ams_err_set(err, AMS_E_UNSUPPORTED, "format '%s' is not a TF.js graph-model",
                         fmt->valuestring);
        goto fail;
    }
    const cJSON *topo = cJSON_GetObjectItemCaseSensitive(m->root, "modelTopology");
    const cJSON *list = topo ? cJSON_GetObjectItemCaseSensitive(topo, "node") : NULL;
    if (!cJSON_IsArray(list)) {
        st = ams_err_set(err, AMS_E_FORMAT, "model.json has no modelTopology.node list");
        goto fail;
    }
    if ((st = parse_nodes(m, list, err)) || (st = topo_sort(m, err))) goto fail;
    mark_trainable(m);
    if ((st = parse_weights(m, m->root, weights, weights_len, err)) ||
        (st = parse_signature(m, m->root, err)))
        goto fail;
    find_image_input(m);
    *out = m;
    return AMS_OK;
fail:
    ams_tfjs_free(m);
    return st;
}

/* A shard name must be a plain file name in the model's folder. */
static int safe_shard_name(const char *s) {
    return s[0] && s[0] != '.' && !strchr(s, '/') && !strchr(s, '\\') && strlen(s) < 512;
}

ams_status ams_tfjs_load(const char *json_path, ams_tfjs_model **out, ams_err *err) {
    *out = NULL;
    size_t pl = strlen(json_path);
    if (pl >= 12 && !strcmp(json_path + pl - 12, ".safetensors"))
        return ams_tfjs_load_safetensors(json_path, out, err); /* what `ams convert` wrote */
    uint8_t *json = NULL, *weights = NULL;
    size_t json_len = 0, wlen = 0;
    cJSON *root = NULL;
    ams_status st = ams_file_read_all(json_path, AMS_TFJS_MAX_JSON_BYTES, &json, &json_len, err);
    if (st) return st;
    root = cJSON_ParseWithLength((const char *)json, json_len);
    if (!root) {
        st = ams_err_set(err, AMS_E_FORMAT, "%s: not valid JSON", json_path);
        goto done;
    }
    const char *slash = strrchr(json_path, '/');
    size_t dirlen = slash ? (size_t)(slash - json_path + 1) : 0;
    const cJSON *man = cJSON_GetObjectItemCaseSensitive(root, "weightsManifest");
    const cJSON *g, *p;
    cJSON_ArrayForEach(g, man) {
        const cJSON *paths = cJSON_GetObjectItemCaseSensitive(g, "paths");
        if (!cJSON_IsArray(paths)) {
            st = ams_err_set(err, AMS_E_FORMAT, "%s: weightsManifest group without paths", json_path);
            goto done;
        }
        cJSON_ArrayForEach(p, paths) {
            if (!cJSON_IsString(p) || !safe_shard_name(p->valuestring)) {
                st = ams_err_set(err, AMS_E_FORMAT, "%s: bad weight shard name", json_path);
                goto done;
            }
            char path[4096];
            if (dirlen + strlen(p->valuestring) + 1 > sizeof path) {
                st = ams_err_set(err, AMS_E_RANGE, "%s: path too long", json_path);
                goto done;
            }
            memcpy(path, json_path, dirlen);
            strcpy(path + dirlen, p->valuestring);
            uint8_t *buf = NULL;
            size_t len = 0;
            st = ams_file_read_all(path, AMS_TFJS_MAX_WEIGHT_BYTES - wlen, &buf, &len, err);
            if (st) goto done;
            uint8_t *nw = realloc(weights, wlen + len + 1);
            if (!nw) {
                free(buf);
                st = ams_err_set(err, AMS_E_NOMEM, "%s: out of memory", path);
                goto done;
            }
            weights = nw;
            memcpy(weights + wlen, buf, len);
            wlen += len;
            free(buf);
        }
    }
    st = ams_tfjs_parse((const char *)json, json_len, weights, wlen, out, err);
    if (st) ams_err_prefix(err, "%s", json_path);
done:
    cJSON_Delete(root);
    free(json);
    free(weights);
    return st;
}
