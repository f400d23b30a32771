/* concat.c - reference concatenation of k inputs along one axis, forward and backward.
 * Per outer index, input i contributes chunk[i] contiguous floats, in input order. */
#include <string.h>

#include "nn/ref/ref_kernels.h"

void ams_ref_concat_forward(const ams_backend *be, float *out, const float *const *ins,
                            const int64_t *chunk, int k, int64_t outer) {
    (void)be;
    float *dst = out;
    for (int64_t o = 0; o < outer; o++) {
        for (int i = 0; i < k; i++) {
            if (chunk[i] > 0) memcpy(dst, ins[i] + o * chunk[i], (size_t)chunk[i] * sizeof(float));
            dst += chunk[i];
        }
    }
}

void ams_ref_concat_backward(const ams_backend *be, float *const *dins, const float *dout,
                             const int64_t *chunk, int k, int64_t outer) {
    (void)be;
    const float *src = dout;
    for (int64_t o = 0; o < outer; o++) {
        for (int i = 0; i < k; i++) {
            if (dins[i]) {
                float *dst = dins[i] + o * chunk[i];
                for (int64_t j = 0; j < chunk[i]; j++) dst[j] += src[j];
            }
            src += chunk[i];
        }
    }
}
