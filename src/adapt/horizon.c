/* horizon.c - a time-windowed ring of labelled frames and uniform batch sampling
 * (see include/ams/horizon.h). */
#include "ams/horizon.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct ams_horizon {
    int height, width;
    size_t pix;        /* height * width */
    double memory_len; /* seconds */
    size_t cap;        /* max entries */
    size_t head;       /* slot of the oldest entry */
    size_t count;
    double *t;         /* cap times */
    uint8_t **slot;    /* cap buffers of pix*3 frame bytes + pix label bytes, lazily allocated */
};

ams_horizon *ams_horizon_new(int height, int width, double memory_len, size_t max_entries,
                             ams_err *err) {
    size_t pix, bytes;
    if (height < 1 || width < 1 || !ams_size_mul_ok((size_t)height, (size_t)width, &pix) ||
        !ams_size_mul_ok(pix, 4, &bytes)) {
        ams_err_set(err, AMS_E_INVAL, "horizon frames of %dx%d", height, width);
        return NULL;
    }
    if (!(memory_len > 0) || !isfinite(memory_len) || max_entries < 1 || max_entries > 1000000) {
        ams_err_set(err, AMS_E_INVAL, "horizon of %g s and %zu entries", memory_len, max_entries);
        return NULL;
    }
    ams_horizon *h = calloc(1, sizeof *h);
    if (h) {
        h->t = calloc(max_entries, sizeof *h->t);
        h->slot = calloc(max_entries, sizeof *h->slot);
    }
    if (!h || !h->t || !h->slot) {
        ams_horizon_free(h);
        ams_err_set(err, AMS_E_NOMEM, "out of memory for a horizon of %zu entries", max_entries);
        return NULL;
    }
    h->height = height;
    h->width = width;
    h->pix = pix;
    h->memory_len = memory_len;
    h->cap = max_entries;
    return h;
}

void ams_horizon_free(ams_horizon *h) {
    if (!h) return;
    if (h->slot)
        for (size_t i = 0; i < h->cap; i++) free(h->slot[i]);
    free(h->slot);
    free(h->t);
    free(h);
}

static size_t slot_of(const ams_horizon *h, size_t i) { return (h->head + i) % h->cap; }

void ams_horizon_expire(ams_horizon *h, double now) {
    while (h->count > 0 && h->t[h->head] < now - h->memory_len) {
        h->head = (h->head + 1) % h->cap;
        h->count--;
    }
}

ams_status ams_horizon_add(ams_horizon *h, double t, const uint8_t *rgb, const uint8_t *label,
                           ams_err *err) {
    AMS_FAIL_IF(!isfinite(t), err, AMS_E_INVAL, "horizon: frame time %g", t);
    AMS_FAIL_IF(h->count > 0 && t < h->t[slot_of(h, h->count - 1)], err, AMS_E_INVAL,
                "horizon: frame at %g s after one at %g s", t, h->t[slot_of(h, h->count - 1)]);
    if (h->count == h->cap) { /* full: the oldest goes */
        h->head = (h->head + 1) % h->cap;
        h->count--;
    }
    size_t s = slot_of(h, h->count);
    if (!h->slot[s]) {
        h->slot[s] = malloc(h->pix * 4);
        AMS_FAIL_IF(!h->slot[s], err, AMS_E_NOMEM, "horizon: out of memory for a frame");
    }
    memcpy(h->slot[s], rgb, h->pix * 3);
    memcpy(h->slot[s] + h->pix * 3, label, h->pix);
    h->t[s] = t;
    h->count++;
    ams_horizon_expire(h, t);
    return AMS_OK;
}

int ams_horizon_height(const ams_horizon *h) { return h->height; }
int ams_horizon_width(const ams_horizon *h) { return h->width; }
size_t ams_horizon_count(const ams_horizon *h) { return h->count; }

double ams_horizon_time(const ams_horizon *h, size_t i) {
    AMS_ASSERT(i < h->count);
    return h->t[slot_of(h, i)];
}

const uint8_t *ams_horizon_frame(const ams_horizon *h, size_t i) {
    AMS_ASSERT(i < h->count);
    return h->slot[slot_of(h, i)];
}

const uint8_t *ams_horizon_label(const ams_horizon *h, size_t i) {
    AMS_ASSERT(i < h->count);
    return h->slot[slot_of(h, i)] + h->pix * 3;
}

/* Uniform in [0, n) without modulo bias (rejection of the short last block). */
static size_t uniform_index(ams_rng *rng, size_t n) {
    uint64_t limit = UINT64_MAX - UINT64_MAX % n, v;
    do v = ams_rng_u64(rng);
    while (v >= limit);
    return (size_t)(v % n);
}

ams_status ams_horizon_pick(const ams_horizon *h, ams_rng *rng, int batch,
                            const uint8_t **frames, const uint8_t **labels, size_t *picked,
                            ams_err *err) {
    AMS_FAIL_IF(h->count == 0, err, AMS_E_INVAL, "horizon: no frames to train on");
    AMS_FAIL_IF(batch < 1, err, AMS_E_INVAL, "horizon: batch of %d", batch);
    for (int b = 0; b < batch; b++) {
        size_t i = uniform_index(rng, h->count);
        frames[b] = ams_horizon_frame(h, i);
        labels[b] = ams_horizon_label(h, i);
        if (picked) picked[b] = i;
    }
    return AMS_OK;
}

ams_status ams_horizon_batch(const ams_horizon *h, ams_rng *rng, int batch, float *x, uint8_t *y,
                             size_t *picked, ams_err *err) {
    AMS_FAIL_IF(batch < 1, err, AMS_E_INVAL, "horizon: batch of %d", batch);
    size_t fbytes = h->pix * 3;
    for (int b = 0; b < batch; b++) {
        const uint8_t *src = NULL, *lab = NULL;
        AMS_TRY(ams_horizon_pick(h, rng, 1, &src, &lab, picked ? picked + b : NULL, err));
        float *dst = x + (size_t)b * fbytes;
        for (size_t k = 0; k < fbytes; k++) dst[k] = (float)src[k];
        memcpy(y + (size_t)b * h->pix, lab, h->pix);
    }
    return AMS_OK;
}
