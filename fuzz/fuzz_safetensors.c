/* fuzz_safetensors.c - libFuzzer target: ams_safetensors_parse on arbitrary bytes. On
 * success every tensor is walked and the queries must agree with each other. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ams/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t stored_size(const char *dtype) {
    if (!strcmp(dtype, "F32") || !strcmp(dtype, "I32")) return 4;
    if (!strcmp(dtype, "F16") || !strcmp(dtype, "BF16")) return 2;
    if (!strcmp(dtype, "U8")) return 1;
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > (1u << 20)) return 0; /* cap */
    ams_safetensors *st = NULL;
    ams_err err = {0};
    if (ams_safetensors_parse(data, size, &st, &err) != AMS_OK) {
        if (st || !err.msg[0]) abort();
        return 0;
    }
    size_t total = 0;
    volatile uint8_t sink = 0;
    for (int i = 0; i < ams_safetensors_count(st); i++) {
        const char *name = NULL;
        const ams_tensor *t = ams_safetensors_get(st, i, &name);
        if (!t || !name || ams_safetensors_find(st, name) != t) abort();
        if (t->ndim < 0 || t->ndim > AMS_MAX_DIMS) abort();
        size_t n = (size_t)ams_tensor_numel(t);
        if (n * stored_size(ams_safetensors_dtype(st, i)) != ams_safetensors_nbytes(st, i)) abort();
        total += ams_safetensors_nbytes(st, i);
        size_t bytes = n * ams_dtype_size(t->dtype);
        for (size_t k = 0; k < bytes; k++) sink ^= ((const uint8_t *)t->data)[k];
    }
    (void)sink;
    if (total > size) abort(); /* the tensors tile the data */
    (void)ams_safetensors_metadata(st, "format");
    ams_safetensors_free(st);
    return 0;
}
