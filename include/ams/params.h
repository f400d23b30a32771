/* params.h - a model's named parameters, all in ONE contiguous float buffer.
 *
 * Every tensor of a model (trainable weights and frozen BatchNorm statistics)
 * is a named view into the flat buffer `values`; the gradient buffer `grads`
 * has the same layout. Optimizer state, "restore initial weights", sparse
 * update masks and the update codec are flat loops over these buffers.
 *
 *     ams_params *p = ams_params_new();
 *     int w = ams_params_add(p, "conv/weights", 4, (int64_t[]){3,3,3,32}, 1, &err);
 *     ams_params_alloc(p, &err);           // after the last add
 *     float *wdata = ams_params_data(p, w);
 *     ams_params_free(p);
 * One ams_params belongs to one thread at a time.
 */
#ifndef AMS_PARAMS_H
#define AMS_PARAMS_H

#include "ams/tensor.h"

#define AMS_PARAM_NAME_MAX 256

typedef struct ams_param_info {
    char name[AMS_PARAM_NAME_MAX]; /* e.g. "MobilenetV2/Conv/weights" */
    int ndim;
    int64_t shape[AMS_MAX_DIMS];
    int64_t numel;                 /* product of shape */
    size_t offset;                 /* first element in the flat buffers */
    int trainable;                 /* 0: a constant such as BN moving statistics */
} ams_param_info;

typedef struct ams_params {
    ams_param_info *info; /* count entries */
    int count;
    int cap;
    size_t total;         /* elements in values/grads */
    float *values;        /* total floats, allocated by ams_params_alloc */
    float *grads;         /* total floats, zeroed by ams_params_zero_grads */
} ams_params;

ams_params *ams_params_new(void);
void ams_params_free(ams_params *p);

/* Declares a parameter; returns its index (>= 0) or a negative ams_status.
 * Names are unique. Only before ams_params_alloc. */
int ams_params_add(ams_params *p, const char *name, int ndim, const int64_t *shape,
                   int trainable, ams_err *err);
/* Allocates the zero-filled values and grads buffers. */
ams_status ams_params_alloc(ams_params *p, ams_err *err);

/* Index of the named parameter, or -1. */
int ams_params_find(const ams_params *p, const char *name);
float *ams_params_data(const ams_params *p, int index);
float *ams_params_grad(const ams_params *p, int index);
void ams_params_zero_grads(ams_params *p);
/* Elements that are trainable (sum of numel over trainable tensors). */
size_t ams_params_trainable_count(const ams_params *p);

/* A new parameter set with the same names, shapes and values (a snapshot, e.g. the
 * pretrained weights AMS restores before each training phase). Free with ams_params_free. */
ams_params *ams_params_clone(const ams_params *p, ams_err *err);
/* Copies values from src, which must have the same layout. */
ams_status ams_params_copy_values(ams_params *dst, const ams_params *src, ams_err *err);

#endif
