/* fuzz_npy.c - libFuzzer target: ams_npy_parse on arbitrary bytes. A parsed tensor must
 * be self-consistent (shape within bounds, every element readable). */
#include <stdio.h>
#include <stdlib.h>

#include "ams/npy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > (1u << 20)) return 0; /* cap: bytes and the tensor they describe */
    ams_tensor *t = NULL;
    ams_err err = {0};
    if (ams_npy_parse(data, size, &t, &err) != AMS_OK) {
        if (t || !err.msg[0]) abort(); /* a failure sets a message and no tensor */
        return 0;
    }
    if (t->ndim < 0 || t->ndim > AMS_MAX_DIMS || !t->owns) abort();
    for (int i = 0; i < t->ndim; i++)
        if (t->shape[i] < 0) abort();
    size_t bytes = (size_t)ams_tensor_numel(t) * ams_dtype_size(t->dtype);
    if (bytes > size * 2) abort(); /* never more than the input describes (f2 -> f4) */
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < bytes; i++) sink ^= ((const uint8_t *)t->data)[i];
    (void)sink;
    ams_tensor_free(t);
    return 0;
}
