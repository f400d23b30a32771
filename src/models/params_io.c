/* params_io.c - loading and saving a model's ams_params as .safetensors.
 *
 * Loading is all-or-nothing: every check (presence, dtype, exact shape, no unexpected
 * tensors) runs before the first value is copied, so a bad file leaves p unchanged. */
#include <stdlib.h>
#include <string.h>

#include "ams/safetensors.h"

static int same_shape(const ams_tensor *t, const ams_param_info *pi) {
    if (t->ndim != pi->ndim) return 0;
    for (int d = 0; d < t->ndim; d++)
        if (t->shape[d] != pi->shape[d]) return 0;
    return 1;
}

static ams_status check_all(const ams_params *p, const ams_safetensors *st, const char *path,
                            int allow_extra, ams_err *err) {
    for (int i = 0; i < p->count; i++) {
        const ams_param_info *pi = &p->info[i];
        const ams_tensor *t = ams_safetensors_find(st, pi->name);
        AMS_FAIL_IF(!t, err, AMS_E_NOTFOUND, "%s: missing tensor '%s'", path, pi->name);
        AMS_FAIL_IF(t->dtype != AMS_F32, err, AMS_E_DTYPE,
                    "%s: tensor '%s' has dtype %s, the model expects a float type", path,
                    pi->name, ams_dtype_name(t->dtype));
        if (!same_shape(t, pi)) {
            char a[256], b[256];
            AMS_FAIL(err, AMS_E_SHAPE, "%s: tensor '%s' has shape %s, the model expects %s",
                     path, pi->name, ams_shape_str(a, sizeof a, t->ndim, t->shape),
                     ams_shape_str(b, sizeof b, pi->ndim, pi->shape));
        }
    }
    if (!allow_extra) {
        for (int i = 0; i < ams_safetensors_count(st); i++) {
            const char *name;
            ams_safetensors_get(st, i, &name);
            AMS_FAIL_IF(ams_params_find(p, name) < 0, err, AMS_E_FORMAT,
                        "%s: unexpected tensor '%s'", path, name);
        }
    }
    return AMS_OK;
}

ams_status ams_params_load_safetensors(ams_params *p, const char *path, int allow_extra,
                                       ams_err *err) {
    AMS_FAIL_IF(!p->values, err, AMS_E_INVAL, "%s: parameters are not allocated", path);
    ams_safetensors *st;
    AMS_TRY(ams_safetensors_read(path, &st, err));
    ams_status s = check_all(p, st, path, allow_extra, err);
    for (int i = 0; i < p->count && s == AMS_OK; i++) {
        const ams_tensor *t = ams_safetensors_find(st, p->info[i].name);
        memcpy(ams_params_data(p, i), t->data, (size_t)p->info[i].numel * sizeof(float));
    }
    ams_safetensors_free(st);
    return s;
}

ams_status ams_params_save_safetensors(const ams_params *p, const char *path, int what,
                                       int trainable_only, ams_err *err) {
    AMS_FAIL_IF(what != 0 && what != 1, err, AMS_E_INVAL,
                "%s: what must be 0 (values) or 1 (grads), not %d", path, what);
    AMS_FAIL_IF(!p->values || !p->grads, err, AMS_E_INVAL, "%s: parameters are not allocated",
                path);
    int n = 0;
    const char **names = malloc((size_t)(p->count ? p->count : 1) * sizeof *names);
    ams_tensor *views = calloc((size_t)(p->count ? p->count : 1), sizeof *views);
    const ams_tensor **tp = malloc((size_t)(p->count ? p->count : 1) * sizeof *tp);
    ams_status s;
    if (!names || !views || !tp) {
        s = ams_err_set(err, AMS_E_NOMEM, "%s: out of memory", path);
        goto done;
    }
    for (int i = 0; i < p->count; i++) {
        const ams_param_info *pi = &p->info[i];
        if (trainable_only && !pi->trainable) continue;
        ams_tensor *v = &views[n];
        v->ndim = pi->ndim;
        memcpy(v->shape, pi->shape, sizeof v->shape);
        v->dtype = AMS_F32;
        v->data = what ? ams_params_grad(p, i) : ams_params_data(p, i);
        v->owns = 0;
        names[n] = pi->name;
        tp[n] = v;
        n++;
    }
    s = ams_safetensors_write(path, n, names, tp, 0, NULL, NULL, err);
done:
    free(names);
    free(views);
    free(tp);
    return s;
}
