/* tf_checkpoint_convert.c - a TF checkpoint's model variables as a float32 safetensors
 * file under ams's (= TF DeepLab's) names, optimizer slots and bookkeeping dropped. */
#include <stdlib.h>
#include <string.h>

#include "ams/safetensors.h"
#include "ams/tf_checkpoint.h"

static int same_shape(const ams_tensor *t, const ams_param_info *pi) {
    if (t->ndim != pi->ndim) return 0;
    for (int d = 0; d < t->ndim; d++)
        if (t->shape[d] != pi->shape[d]) return 0;
    return 1;
}

ams_status ams_tf_checkpoint_convert(const char *prefix, const char *out_path,
                                    const ams_params *expect, int *written, int *extra,
                                    ams_err *err) {
    ams_tf_checkpoint *ck = NULL;
    AMS_TRY(ams_tf_checkpoint_open(prefix, &ck, err));
    int n = ams_tf_checkpoint_count(ck);
    int cap = expect ? expect->count : n;
    ams_tensor **ts = calloc((size_t)cap + 1, sizeof *ts);
    char **names = calloc((size_t)cap + 1, sizeof *names);
    int count = 0, skipped = 0;
    ams_status st = AMS_OK;
    if (!ts || !names) {
        st = ams_err_set(err, AMS_E_NOMEM, "out of memory");
        goto done;
    }
    if (expect) {
        /* which checkpoint variable feeds each expected parameter */
        int *src = malloc(((size_t)expect->count + 1) * sizeof *src);
        if (!src) {
            st = ams_err_set(err, AMS_E_NOMEM, "out of memory");
            goto done;
        }
        for (int p = 0; p < expect->count; p++) src[p] = -1;
        char name[AMS_PARAM_NAME_MAX];
        for (int i = 0; i < n; i++) {
            if (!ams_tf_checkpoint_deeplab_name(ams_tf_checkpoint_name(ck, i), name, sizeof name)) {
                skipped++;
                continue;
            }
            int p = ams_params_find(expect, name);
            if (p < 0) skipped++;
            else src[p] = i;
        }
        for (int p = 0; p < expect->count && !st; p++) {
            const ams_param_info *pi = &expect->info[p];
            if (src[p] < 0) {
                st = ams_err_set(err, AMS_E_NOTFOUND, "%s: no variable '%s'", prefix, pi->name);
                break;
            }
            st = ams_tf_checkpoint_read(ck, src[p], &ts[count], err);
            if (st) break;
            names[count] = malloc(strlen(pi->name) + 1);
            if (!names[count]) {
                st = ams_err_set(err, AMS_E_NOMEM, "out of memory");
                count++;
                break;
            }
            strcpy(names[count], pi->name);
            count++;
            if (!same_shape(ts[count - 1], pi)) {
                char a[96], b[96];
                st = ams_err_set(err, AMS_E_SHAPE, "%s: variable '%s' is %s, the model needs %s",
                                 prefix, pi->name,
                                 ams_shape_str(a, sizeof a, ts[count - 1]->ndim, ts[count - 1]->shape),
                                 ams_shape_str(b, sizeof b, pi->ndim, pi->shape));
            }
        }
        free(src);
    } else {
        char name[AMS_PARAM_NAME_MAX];
        for (int i = 0; i < n && !st; i++) {
            int dt = ams_tf_checkpoint_dtype(ck, i);
            if (!ams_tf_checkpoint_deeplab_name(ams_tf_checkpoint_name(ck, i), name, sizeof name) ||
                (dt != AMS_TF_DT_FLOAT && dt != AMS_TF_DT_HALF)) {
                skipped++;
                continue;
            }
            st = ams_tf_checkpoint_read(ck, i, &ts[count], err);
            if (st) break;
            names[count] = malloc(strlen(name) + 1);
            if (!names[count]) {
                st = ams_err_set(err, AMS_E_NOMEM, "out of memory");
                break;
            }
            strcpy(names[count], name);
            count++;
        }
    }
    if (!st && count == 0) st = ams_err_set(err, AMS_E_NOTFOUND, "%s: no model variables", prefix);
    if (!st)
        st = ams_safetensors_write(out_path, count, (const char *const *)names,
                                   (const ams_tensor *const *)ts, 0, NULL, NULL, err);
    if (!st) {
        if (written) *written = count;
        if (extra) *extra = skipped;
    }
done:
    for (int i = 0; ts && names && i <= count && i < cap + 1; i++) {
        ams_tensor_free(ts[i]);
        free(names[i]);
    }
    free(ts);
    free(names);
    ams_tf_checkpoint_free(ck);
    return st;
}
