/* fuzz_update_roundtrip.c - encode -> decode -> apply must reproduce the encoder's `applied`
 * weights bit for bit, with the same SHA-256, within the quantization error; abort otherwise.
 * The bytes give the layout (1..4 tensors, <= 2048 elements), the value coding, the base
 * weights and which elements change by how much (including zero, tiny, huge and subnormal
 * deltas). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ams/update_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
    const uint8_t *p;
    size_t n;
} reader;

static uint8_t next(reader *r) {
    if (r->n == 0) return 0;
    r->n--;
    return *r->p++;
}

static float delta_of(uint8_t kind, uint8_t mag) {
    float s = (kind & 1) ? -1.0f : 1.0f;
    switch ((kind >> 1) % 6) {
    case 0: return 0.0f;
    case 1: return s * (float)mag * 1e-5f;
    case 2: return s * (float)mag * 1e-2f;
    case 3: return s * ldexpf((float)mag + 1, -40); /* tiny: rounds to 0 in int8/fp16 */
    case 4: return s * (float)mag * 10.0f;          /* large next to small in one tensor */
    default: return s * 1e-3f;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 8192) return 0;
    reader r = {data, size};
    ams_params *p = ams_params_new();
    if (!p) return 0;
    int ntensors = 1 + next(&r) % 4;
    for (int t = 0; t < ntensors; t++) {
        char name[8] = {'t', (char)('0' + t), 0};
        int64_t n = 1 + (int64_t)(next(&r) | (next(&r) & 1) << 8);
        if (ams_params_add(p, name, 1, &n, next(&r) & 1, NULL) < 0) abort();
    }
    if (ams_params_alloc(p, NULL) != AMS_OK) abort();
    ams_update_opts o;
    ams_update_opts_default(&o);
    o.values = (next(&r) & 1) ? AMS_UPDATE_F16 : AMS_UPDATE_INT8;
    o.zstd_level = 1 + next(&r) % 3;
    size_t n = p->total;
    float *base = malloc(n * sizeof *base), *target = malloc(n * sizeof *target),
          *applied = malloc(n * sizeof *applied), *edge = malloc(n * sizeof *edge);
    if (!base || !target || !applied || !edge) abort();
    for (size_t i = 0; i < n; i++) {
        base[i] = (float)(int8_t)next(&r) * 0.01f;
        uint8_t kind = next(&r);
        target[i] = base[i] + delta_of(kind, next(&r));
    }
    uint8_t *msg = NULL;
    size_t len = 0;
    ams_err err = {0};
    if (ams_update_encode(p, base, target, &o, &msg, &len, applied, &err) != AMS_OK) abort();
    ams_update *u = NULL;
    if (ams_update_decode(msg, len, n, &u, &err) != AMS_OK) abort();
    memcpy(edge, base, n * sizeof *edge);
    if (ams_update_apply(u, edge, n, &err) != AMS_OK) abort();
    if (memcmp(edge, applied, n * sizeof *edge) != 0) abort();
    /* within the quantization error of each tensor (all tensors are segments) */
    for (int t = 0; t < p->count; t++) {
        const ams_param_info *pi = &p->info[t];
        double amax = 0;
        for (size_t i = pi->offset; i < pi->offset + (size_t)pi->numel; i++)
            amax = fmax(amax, fabs((double)target[i] - base[i]));
        for (size_t i = pi->offset; i < pi->offset + (size_t)pi->numel; i++) {
            double d = (double)target[i] - base[i], e = fabs((double)edge[i] - target[i]);
            double q = o.values == AMS_UPDATE_F16 ? fmax(fabs(d) * 0x1p-11, 0x1p-25)
                                                  : fmax(amax / 127 * 0.5 * 1.001, 0x1p-126);
            if (e > q + fabs((double)target[i]) * 0x1p-23) abort();
        }
    }
    ams_update_free(u);
    free(msg);
    free(base);
    free(target);
    free(applied);
    free(edge);
    ams_params_free(p);
    return 0;
}
