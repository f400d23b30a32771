/* tfjs_convert.c - an imported TF.js graph model as ONE safetensors file, and back.
 *
 * The file holds every weight of the model under its TF.js node name (float weights as
 * F32, dequantized exactly as the importer does; int32 shape constants as I32; bool as
 * U8) and, in __metadata__, "format" = "ams-tfjs-graph-model" and "ams.tfjs.model" = the
 * model.json text with its weightsManifest rewritten to one group without paths whose
 * entries name those tensors, in order, with dtype float32/int32/bool and no
 * quantization. Loading rebuilds the weight bytes from the tensors in manifest order
 * and parses the JSON as a model.json: the same graph with bit-identical weights. */
#include <stdlib.h>
#include <string.h>

#include "ams/safetensors.h"
#include "models/tfjs_internal.h"

#define FORMAT_KEY "format"
#define FORMAT_VALUE "ams-tfjs-graph-model"
#define MODEL_KEY "ams.tfjs.model"

static cJSON *shape_json(int ndim, const int64_t *shape) {
    cJSON *a = cJSON_CreateArray();
    for (int k = 0; a && k < ndim; k++) cJSON_AddItemToArray(a, cJSON_CreateNumber((double)shape[k]));
    return a;
}

ams_status ams_tfjs_save_safetensors(const ams_tfjs_model *m, const char *path, ams_err *err) {
    int n = 0;
    for (int i = 0; i < m->count; i++)
        if (m->nodes[i].cdtype != TFJS_DT_NONE) n++;
    const char **names = calloc((size_t)n + 1, sizeof *names);
    ams_tensor *ts = calloc((size_t)n + 1, sizeof *ts);
    const ams_tensor **tp = calloc((size_t)n + 1, sizeof *tp);
    uint8_t **bools = calloc((size_t)n + 1, sizeof *bools);
    cJSON *root = cJSON_Duplicate(m->root, 1);
    cJSON *group = cJSON_CreateObject(), *list = cJSON_CreateArray(), *man = cJSON_CreateArray();
    char *json = NULL;
    ams_status st = AMS_OK;
    if (!names || !ts || !tp || !bools || !root || !group || !list || !man) {
        st = ams_err_set(err, AMS_E_NOMEM, "out of memory");
        goto done;
    }
    cJSON_AddItemToObject(group, "paths", cJSON_CreateArray());
    cJSON_AddItemToObject(group, "weights", list);
    cJSON_AddItemToArray(man, group);
    group = NULL;
    int k = 0;
    for (int i = 0; i < m->count; i++) {
        const tfjs_node *nd = &m->nodes[i];
        if (nd->cdtype == TFJS_DT_NONE) continue;
        ams_tensor *t = &ts[k];
        t->ndim = nd->cndim;
        memcpy(t->shape, nd->cshape, sizeof t->shape);
        int64_t numel = ams_tensor_numel(t);
        const char *dt = "float32";
        if (nd->cdtype == TFJS_DT_FLOAT) {
            t->dtype = AMS_F32;
            t->data = ams_params_data(m->params, nd->cparam);
        } else if (nd->cdtype == TFJS_DT_INT32) {
            t->dtype = AMS_I32;
            t->data = nd->cint;
            dt = "int32";
        } else {
            t->dtype = AMS_U8;
            bools[k] = malloc(numel ? (size_t)numel : 1);
            if (!bools[k]) {
                st = ams_err_set(err, AMS_E_NOMEM, "out of memory");
                goto done;
            }
            for (int64_t e = 0; e < numel; e++) bools[k][e] = nd->cint[e] != 0;
            t->data = bools[k];
            dt = "bool";
        }
        names[k] = nd->name;
        tp[k] = t;
        cJSON *w = cJSON_CreateObject();
        if (!w) {
            st = ams_err_set(err, AMS_E_NOMEM, "out of memory");
            goto done;
        }
        cJSON_AddItemToArray(list, w);
        cJSON_AddStringToObject(w, "name", nd->name);
        cJSON_AddItemToObject(w, "shape", shape_json(t->ndim, t->shape));
        cJSON_AddStringToObject(w, "dtype", dt);
        k++;
    }
    if (cJSON_GetObjectItemCaseSensitive(root, "weightsManifest"))
        cJSON_ReplaceItemInObjectCaseSensitive(root, "weightsManifest", man);
    else
        cJSON_AddItemToObject(root, "weightsManifest", man);
    man = NULL;
    json = cJSON_PrintUnformatted(root);
    if (!json) {
        st = ams_err_set(err, AMS_E_NOMEM, "out of memory");
        goto done;
    }
    const char *keys[2] = {FORMAT_KEY, MODEL_KEY}, *vals[2] = {FORMAT_VALUE, json};
    st = ams_safetensors_write(path, n, names, tp, 2, keys, vals, err);
done:
    for (int i = 0; bools && i < n; i++) free(bools[i]);
    free(bools);
    free(names);
    free(ts);
    free(tp);
    free(json);
    cJSON_Delete(root);
    cJSON_Delete(group);
    cJSON_Delete(man);
    return st;
}

/* Appends tensor t's bytes, which must be of dtype want and shape `shape`. */
static ams_status append(uint8_t **buf, size_t *len, size_t *cap, const ams_tensor *t,
                         ams_dtype want, const cJSON *shape, const char *name, ams_err *err) {
    AMS_FAIL_IF(t->dtype != want, err, AMS_E_DTYPE, "tensor '%s' is %s, the model says %s", name,
                ams_dtype_name(t->dtype), ams_dtype_name(want));
    int nd = cJSON_GetArraySize(shape);
    AMS_FAIL_IF(!cJSON_IsArray(shape) || nd != t->ndim, err, AMS_E_SHAPE,
                "tensor '%s': shape differs from the model's", name);
    for (int k = 0; k < nd; k++) {
        const cJSON *d = cJSON_GetArrayItem(shape, k);
        AMS_FAIL_IF(!cJSON_IsNumber(d) || d->valuedouble != (double)t->shape[k], err, AMS_E_SHAPE,
                    "tensor '%s': shape differs from the model's", name);
    }
    size_t bytes = (size_t)ams_tensor_numel(t) * ams_dtype_size(t->dtype), need;
    AMS_FAIL_IF(!ams_size_add_ok(*len, bytes, &need) || need > AMS_TFJS_MAX_WEIGHT_BYTES, err,
                AMS_E_RANGE, "weights too large");
    if (need > *cap) {
        size_t ncap = *cap ? *cap : 1 << 16;
        while (ncap < need) ncap *= 2;
        uint8_t *nb = realloc(*buf, ncap);
        AMS_FAIL_IF(!nb, err, AMS_E_NOMEM, "out of memory");
        *buf = nb;
        *cap = ncap;
    }
    if (bytes) memcpy(*buf + *len, t->data, bytes);
    *len = need;
    return AMS_OK;
}

ams_status ams_tfjs_load_safetensors(const char *path, ams_tfjs_model **out, ams_err *err) {
    *out = NULL;
    ams_safetensors *st = NULL;
    AMS_TRY(ams_safetensors_read(path, &st, err));
    const char *fmt = ams_safetensors_metadata(st, FORMAT_KEY);
    const char *json = ams_safetensors_metadata(st, MODEL_KEY);
    uint8_t *w = NULL;
    size_t wlen = 0, wcap = 0;
    cJSON *root = NULL;
    ams_status s = AMS_OK;
    if (!fmt || strcmp(fmt, FORMAT_VALUE) || !json) {
        s = ams_err_set(err, AMS_E_FORMAT,
                        "%s: not a converted TF.js model (no __metadata__ %s=%s and %s; "
                        "HINT: `ams convert model.json OUT.safetensors` writes one)",
                        path, FORMAT_KEY, FORMAT_VALUE, MODEL_KEY);
        goto done;
    }
    root = cJSON_Parse(json);
    const cJSON *man = root ? cJSON_GetObjectItemCaseSensitive(root, "weightsManifest") : NULL;
    if (!root || (man && !cJSON_IsArray(man))) {
        s = ams_err_set(err, AMS_E_FORMAT, "%s: the stored model.json is not valid", path);
        goto done;
    }
    const cJSON *g, *e;
    cJSON_ArrayForEach(g, man) {
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(g, "weights")) {
            const cJSON *nm = cJSON_GetObjectItemCaseSensitive(e, "name");
            const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
            const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
            if (!cJSON_IsString(nm) || !cJSON_IsString(dt) ||
                cJSON_GetObjectItemCaseSensitive(e, "quantization")) {
                s = ams_err_set(err, AMS_E_FORMAT, "%s: bad weightsManifest entry", path);
                goto done;
            }
            const ams_tensor *t = ams_safetensors_find(st, nm->valuestring);
            ams_dtype want = !strcmp(dt->valuestring, "int32") ? AMS_I32
                             : !strcmp(dt->valuestring, "bool") ? AMS_U8
                                                                 : AMS_F32;
            if (!t) {
                s = ams_err_set(err, AMS_E_NOTFOUND, "%s: no tensor '%s'", path, nm->valuestring);
                goto done;
            }
            if ((s = append(&w, &wlen, &wcap, t, want, sh, nm->valuestring, err))) {
                ams_err_prefix(err, "%s", path);
                goto done;
            }
        }
    }
    s = ams_tfjs_parse(json, strlen(json), w, wlen, out, err);
    if (s) ams_err_prefix(err, "%s", path);
done:
    cJSON_Delete(root);
    free(w);
    ams_safetensors_free(st);
    return s;
}
