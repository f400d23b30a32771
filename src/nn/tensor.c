/* tensor.c - owning float/uint8/int32 tensors, shapes, and half-float conversions. */
#include "ams/tensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t ams_dtype_size(ams_dtype t) {
    switch (t) {
    case AMS_F32: return 4;
    case AMS_I32: return 4;
    case AMS_U8: return 1;
    case AMS_F16: return 2;
    case AMS_BF16: return 2;
    }
    return 0;
}

const char *ams_dtype_name(ams_dtype t) {
    switch (t) {
    case AMS_F32: return "float32";
    case AMS_I32: return "int32";
    case AMS_U8: return "uint8";
    case AMS_F16: return "float16";
    case AMS_BF16: return "bfloat16";
    }
    return "unknown";
}

int64_t ams_tensor_numel(const ams_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

ams_tensor *ams_tensor_new_dtype(ams_dtype dtype, int ndim, const int64_t *shape) {
    if (ndim < 0 || ndim > AMS_MAX_DIMS) return NULL;
    size_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || !ams_size_mul_ok(n, (size_t)shape[i], &n)) return NULL;
    }
    size_t bytes;
    if (!ams_size_mul_ok(n, ams_dtype_size(dtype), &bytes)) return NULL;
    ams_tensor *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->data = calloc(bytes ? bytes : 1, 1);
    if (!t->data) {
        free(t);
        return NULL;
    }
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->dtype = dtype;
    t->owns = 1;
    return t;
}

ams_tensor *ams_tensor_new(int ndim, const int64_t *shape) {
    return ams_tensor_new_dtype(AMS_F32, ndim, shape);
}

void ams_tensor_free(ams_tensor *t) {
    if (!t) return;
    if (t->owns) free(t->data);
    free(t);
}

const char *ams_shape_str(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t used = 0;
    if (cap == 0) return buf;
    buf[0] = 0;
    used += (size_t)snprintf(buf + used, cap - used, "[");
    for (int i = 0; i < ndim && used < cap; i++)
        used += (size_t)snprintf(buf + used, cap - used, i ? ",%lld" : "%lld", (long long)shape[i]);
    if (used < cap) snprintf(buf + used, cap - used, "]");
    return buf;
}

float ams_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else { /* subnormal: normalise */
            exp = 1;
            while (!(mant & 0x400)) {
                mant <<= 1;
                exp--;
            }
            mant &= 0x3ff;
            bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t ams_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t exp = (x >> 23) & 0xff;
    uint32_t mant = x & 0x7fffff;
    if (exp == 0xff) return (uint16_t)(sign | 0x7c00 | (mant ? 0x200 : 0));
    int e = (int)exp - 127 + 15;
    if (e >= 31) return (uint16_t)(sign | 0x7c00);
    if (e <= 0) {
        if (e < -10) return (uint16_t)sign;
        mant |= 0x800000;
        int shift = 14 - e;
        uint32_t half = mant >> shift;
        uint32_t rem = mant & ((1u << shift) - 1);
        uint32_t mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t half = sign | ((uint32_t)e << 10) | (mant >> 13);
    uint32_t rem = mant & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (half & 1))) half++; /* may carry into exp: correct */
    return (uint16_t)half;
}

float ams_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}
