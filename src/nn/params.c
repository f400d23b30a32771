/* params.c - named parameters as views into one flat float buffer (values + grads). */
#include "ams/params.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

ams_params *ams_params_new(void) { return calloc(1, sizeof(ams_params)); }

void ams_params_free(ams_params *p) {
    if (!p) return;
    free(p->info);
    free(p->values);
    free(p->grads);
    free(p);
}

int ams_params_add(ams_params *p, const char *name, int ndim, const int64_t *shape,
                   int trainable, ams_err *err) {
    AMS_FAIL_IF(p->values, err, AMS_E_INVAL, "parameter '%s' added after ams_params_alloc", name);
    AMS_FAIL_IF(strlen(name) >= AMS_PARAM_NAME_MAX, err, AMS_E_INVAL,
                "parameter name too long (%zu bytes): '%.64s...'", strlen(name), name);
    AMS_FAIL_IF(ndim < 0 || ndim > AMS_MAX_DIMS, err, AMS_E_SHAPE,
                "parameter '%s' has %d dimensions (at most %d)", name, ndim, AMS_MAX_DIMS);
    AMS_FAIL_IF(ams_params_find(p, name) >= 0, err, AMS_E_INVAL, "duplicate parameter '%s'", name);
    size_t numel = 1;
    for (int i = 0; i < ndim; i++)
        AMS_FAIL_IF(shape[i] < 0 || !ams_size_mul_ok(numel, (size_t)shape[i], &numel), err,
                    AMS_E_RANGE, "parameter '%s' is too large", name);
    size_t total;
    AMS_FAIL_IF(!ams_size_add_ok(p->total, numel, &total) || total > ((size_t)1 << 34), err,
                AMS_E_RANGE, "parameters too large (adding '%s')", name);
    if (p->count == p->cap) {
        int cap = p->cap ? p->cap * 2 : 64;
        ams_param_info *info = realloc(p->info, (size_t)cap * sizeof *info);
        AMS_FAIL_IF(!info, err, AMS_E_NOMEM, "out of memory adding parameter '%s'", name);
        p->info = info;
        p->cap = cap;
    }
    ams_param_info *pi = &p->info[p->count];
    memset(pi, 0, sizeof *pi);
    snprintf(pi->name, sizeof pi->name, "%s", name);
    pi->ndim = ndim;
    for (int i = 0; i < ndim; i++) pi->shape[i] = shape[i];
    pi->numel = (int64_t)numel;
    pi->offset = p->total;
    pi->trainable = trainable;
    p->total = total;
    return p->count++;
}

ams_status ams_params_alloc(ams_params *p, ams_err *err) {
    AMS_FAIL_IF(p->values, err, AMS_E_INVAL, "parameters already allocated");
    size_t n = p->total ? p->total : 1;
    p->values = calloc(n, sizeof(float));
    p->grads = calloc(n, sizeof(float));
    if (!p->values || !p->grads) {
        free(p->values);
        free(p->grads);
        p->values = p->grads = NULL;
        AMS_FAIL(err, AMS_E_NOMEM, "out of memory for %zu parameters", p->total);
    }
    return AMS_OK;
}

int ams_params_find(const ams_params *p, const char *name) {
    for (int i = 0; i < p->count; i++)
        if (!strcmp(p->info[i].name, name)) return i;
    return -1;
}

float *ams_params_data(const ams_params *p, int index) {
    AMS_ASSERT(index >= 0 && index < p->count && p->values);
    return p->values + p->info[index].offset;
}

float *ams_params_grad(const ams_params *p, int index) {
    AMS_ASSERT(index >= 0 && index < p->count && p->grads);
    return p->grads + p->info[index].offset;
}

void ams_params_zero_grads(ams_params *p) {
    if (p->grads) memset(p->grads, 0, p->total * sizeof(float));
}

size_t ams_params_trainable_count(const ams_params *p) {
    size_t n = 0;
    for (int i = 0; i < p->count; i++)
        if (p->info[i].trainable) n += (size_t)p->info[i].numel;
    return n;
}

ams_params *ams_params_clone(const ams_params *p, ams_err *err) {
    ams_params *c = ams_params_new();
    if (!c) {
        ams_err_set(err, AMS_E_NOMEM, "out of memory cloning parameters");
        return NULL;
    }
    c->info = malloc((size_t)(p->cap ? p->cap : 1) * sizeof *c->info);
    if (!c->info) goto nomem;
    if (p->count) memcpy(c->info, p->info, (size_t)p->count * sizeof *c->info);
    c->count = p->count;
    c->cap = p->cap ? p->cap : 1;
    c->total = p->total;
    if (p->values) {
        if (ams_params_alloc(c, err) != AMS_OK) {
            ams_params_free(c);
            return NULL;
        }
        memcpy(c->values, p->values, p->total * sizeof(float));
    }
    return c;
nomem:
    ams_params_free(c);
    ams_err_set(err, AMS_E_NOMEM, "out of memory cloning parameters");
    return NULL;
}

ams_status ams_params_copy_values(ams_params *dst, const ams_params *src, ams_err *err) {
    AMS_FAIL_IF(dst->count != src->count || dst->total != src->total || !dst->values ||
                    !src->values,
                err, AMS_E_SHAPE, "parameter sets differ in layout");
    for (int i = 0; i < src->count; i++)
        AMS_FAIL_IF(dst->info[i].offset != src->info[i].offset ||
                        dst->info[i].numel != src->info[i].numel,
                    err, AMS_E_SHAPE, "parameter sets differ at '%s'", src->info[i].name);
    memcpy(dst->values, src->values, src->total * sizeof(float));
    return AMS_OK;
}
