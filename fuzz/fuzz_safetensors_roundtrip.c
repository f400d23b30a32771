/* fuzz_safetensors_roundtrip.c - libFuzzer target: builds named tensors (all dtypes,
 * 0..4 dims, names needing JSON escapes) and metadata from the fuzz bytes, writes them
 * with ams_safetensors_write, reads the file back and aborts on any difference. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ams/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct src {
    const uint8_t *p;
    size_t n, i;
} src;

static uint8_t next(src *s) { return s->i < s->n ? s->p[s->i++] : 0; }

/* A string of 0..maxlen bytes from the input, each in 1..127 (JSON-escaping territory). */
static void str(src *s, char *out, size_t maxlen) {
    size_t len = next(s) % (maxlen + 1);
    for (size_t k = 0; k < len; k++) out[k] = (char)(1 + next(s) % 127);
    out[len] = 0;
}

#define MAXT 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 4096) return 0;
    static const ams_dtype types[] = {AMS_F32, AMS_U8, AMS_I32, AMS_F16, AMS_BF16};
    static const char *const type_names[] = {"F32", "U8", "I32", "F16", "BF16"};
    src s = {data, size, 0};
    int count = next(&s) % (MAXT + 1), nmeta = next(&s) % 3;
    ams_tensor *t[MAXT];
    int kind[MAXT];
    char names[MAXT][40], mk[2][24], mv[2][24];
    const char *np[MAXT], *kp[2], *vp[2];
    const ams_tensor *tp[MAXT];
    for (int i = 0; i < count; i++) {
        kind[i] = next(&s) % 5;
        int ndim = next(&s) % 5;
        int64_t shape[4];
        for (int d = 0; d < ndim; d++) shape[d] = next(&s) % 5;
        t[i] = ams_tensor_new_dtype(types[kind[i]], ndim, shape);
        if (!t[i]) abort();
        size_t bytes = (size_t)ams_tensor_numel(t[i]) * ams_dtype_size(t[i]->dtype);
        for (size_t k = 0; k < bytes; k++) ((uint8_t *)t[i]->data)[k] = next(&s);
        snprintf(names[i], sizeof names[i], "%d:", i); /* unique, never "__metadata__" */
        str(&s, names[i] + strlen(names[i]), 24);
        np[i] = names[i];
        tp[i] = t[i];
    }
    for (int m = 0; m < nmeta; m++) {
        snprintf(mk[m], sizeof mk[m], "%d", m);
        str(&s, mk[m] + 1, 20);
        str(&s, mv[m], 20);
        kp[m] = mk[m];
        vp[m] = mv[m];
    }
    char path[96];
    snprintf(path, sizeof path, "%s/ams_fuzz_rt_%ld.safetensors",
             access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp", (long)getpid());
    ams_err err = {0};
    if (ams_safetensors_write(path, count, np, tp, nmeta, kp, vp, &err) != AMS_OK) {
        fprintf(stderr, "write failed: %s\n", err.msg);
        abort();
    }
    ams_safetensors *st = NULL;
    if (ams_safetensors_read(path, &st, &err) != AMS_OK) {
        fprintf(stderr, "read back failed: %s\n", err.msg);
        abort();
    }
    unlink(path);
    if (ams_safetensors_count(st) != count) abort();
    for (int i = 0; i < count; i++) {
        const char *name;
        const ams_tensor *u = ams_safetensors_get(st, i, &name);
        if (strcmp(name, names[i]) || strcmp(ams_safetensors_dtype(st, i), type_names[kind[i]]))
            abort();
        if (u->ndim != t[i]->ndim || memcmp(u->shape, t[i]->shape, sizeof(int64_t) * (size_t)u->ndim))
            abort();
        size_t n = (size_t)ams_tensor_numel(u);
        for (size_t k = 0; k < n; k++) {
            if (kind[i] >= 3) { /* 16-bit floats come back converted, bit for bit */
                uint16_t h = ((const uint16_t *)t[i]->data)[k];
                float want = kind[i] == 3 ? ams_f16_to_f32(h) : ams_bf16_to_f32(h);
                if (memcmp(&want, (const float *)u->data + k, 4)) abort();
            } else if (memcmp((const uint8_t *)u->data + k * ams_dtype_size(u->dtype),
                              (const uint8_t *)t[i]->data + k * ams_dtype_size(u->dtype),
                              ams_dtype_size(u->dtype))) {
                abort();
            }
        }
        ams_tensor_free(t[i]);
    }
    for (int m = 0; m < nmeta; m++) {
        const char *v = ams_safetensors_metadata(st, mk[m]);
        if (!v || strcmp(v, mv[m])) abort();
    }
    ams_safetensors_free(st);
    return 0;
}
