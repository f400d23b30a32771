/* compute_stub.c - a deterministic stand-in for the trainer behind ams_compute: it moves a few
 * hundred trainable weights by small amounts derived from SHA-256 of the uploaded bytes, so the
 * server's update path (encode, persist, send, verify on the edge) runs without a teacher. */
#include <string.h>

#include "ams/server.h"
#include "ams/weights_hash.h"

#define STUB_CHANGES 256

static ams_status stub_run(void *ctx, ams_compute_job *job, int *changed, ams_err *err) {
    (void)ctx;
    *changed = 0;
    size_t total = job->layout->total;
    if (job->n_samples == 0 || total == 0) return AMS_OK;
    /* seed = SHA-256(version || every upload's bytes) */
    uint8_t h[AMS_HASH_LEN];
    AMS_TRY(ams_sha256(&job->version, sizeof job->version, h, err));
    for (int i = 0; i < job->n_samples; i++) {
        uint8_t buf[AMS_HASH_LEN * 2];
        memcpy(buf, h, AMS_HASH_LEN);
        AMS_TRY(ams_sha256(job->samples[i].h264, job->samples[i].len, buf + AMS_HASH_LEN, err));
        AMS_TRY(ams_sha256(buf, sizeof buf, h, err));
    }
    uint64_t x = 0;
    memcpy(&x, h, sizeof x);
    x |= 1;
    for (int k = 0; k < STUB_CHANGES; k++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift64 */
        size_t i = (size_t)(x % total);
        float d = (float)((int)(x >> 40 & 0xff) - 128) * (1.0f / 4096.0f);
        float v = job->target[i] + d;
        if (v > -1e6f && v < 1e6f) job->target[i] = v; /* stays finite and bounded */
    }
    *changed = 1;
    return AMS_OK;
}

ams_compute ams_compute_stub(void) {
    ams_compute c = {.ctx = NULL, .run = stub_run, .state_free = NULL};
    return c;
}
