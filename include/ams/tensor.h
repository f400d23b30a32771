/* tensor.h - dense float32 tensors (NHWC for images), contiguous, row-major.
 *
 * A tensor is a shape plus a data pointer. It either owns its data
 * (ams_tensor_new / ams_tensor_free) or is a view into a buffer someone else
 * owns (parameters in ams_params' flat buffer, activations in a graph arena).
 *
 *     ams_tensor *x = ams_tensor_new(4, (int64_t[]){1, 64, 64, 3});
 *     x->data[0] = 1.0f;
 *     ams_tensor_free(x);
 */
#ifndef AMS_TENSOR_H
#define AMS_TENSOR_H

#include "ams/status.h"

#define AMS_MAX_DIMS 8

typedef enum {
    AMS_F32 = 0,
    AMS_U8 = 1,
    AMS_I32 = 2,
    AMS_F16 = 3,
    AMS_BF16 = 4,
} ams_dtype;

typedef struct ams_tensor {
    int ndim;                    /* 0..AMS_MAX_DIMS */
    int64_t shape[AMS_MAX_DIMS]; /* elements per dimension, outermost first */
    ams_dtype dtype;             /* element type of data */
    void *data;                  /* contiguous elements */
    int owns;                    /* 1: ams_tensor_free frees data */
} ams_tensor;

/* Size in bytes of one element of dtype. */
size_t ams_dtype_size(ams_dtype t);
const char *ams_dtype_name(ams_dtype t);

/* Number of elements (1 for a scalar). */
int64_t ams_tensor_numel(const ams_tensor *t);

/* New zero-filled tensor that owns its data; NULL if out of memory or the size overflows.
 * Free with ams_tensor_free. */
ams_tensor *ams_tensor_new(int ndim, const int64_t *shape);
ams_tensor *ams_tensor_new_dtype(ams_dtype dtype, int ndim, const int64_t *shape);
void ams_tensor_free(ams_tensor *t);

/* Writes "[1,64,64,3]" into buf (capacity cap); returns buf. */
const char *ams_shape_str(char *buf, size_t cap, int ndim, const int64_t *shape);

/* IEEE half and bfloat16 conversions (round to nearest even). */
float ams_f16_to_f32(uint16_t h);
uint16_t ams_f32_to_f16(float f);
float ams_bf16_to_f32(uint16_t h);

#endif
