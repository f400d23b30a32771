/* fuzz_compute_state.c - the server's per-session compute state parser ("AMSC" v1,
 * src/net/compute_state.h) on arbitrary bytes, at a tiny size (4x4 frames, <= 6 entries) so
 * every allocation stays small; it must never crash, leak or accept a state that breaks the
 * documented bounds. The trailing SHA-256 is recomputed over the input (once it is long
 * enough) so the fuzzer gets past the digest to the field checks - except when byte 6 (the
 * head's reserved u16, never read) is 0xff: then the digest is left as it is. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ams/weights_hash.h"
#include "net/compute_state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const ams_cstate_cfg cfg = {.width = 4, .height = 4, .memory_len = 3, .hcap = 6,
                                .train_period = 10, .first_train = -1, .atr = 1};
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    if (size) memcpy(buf, data, size);
    ams_err err = {0};
    if (size >= AMS_CSTATE_HEAD + AMS_HASH_LEN && buf[6] != 0xff &&
        ams_sha256(buf, size - AMS_HASH_LEN, buf + size - AMS_HASH_LEN, &err) != AMS_OK) {
        free(buf);
        return 0;
    }
    ams_cstate *cs = NULL;
    ams_status st = ams_cstate_parse(&cfg, buf, size, "fuzz", &cs, &err);
    if ((st == AMS_OK) != (cs != NULL)) abort();
    if (st != AMS_OK && !err.msg[0]) abort(); /* every refusal says why */
    if (cs) {
        /* what the parse accepted is within the documented bounds */
        if (ams_horizon_count(cs->h) > cfg.hcap || !isfinite(cs->clock) ||
            !(cs->asr.rate >= cs->asr.rate_min && cs->asr.rate <= cs->asr.rate_max) ||
            cs->sched.atr.n > AMS_ATR_HISTORY || cs->sched.atr.head >= AMS_ATR_HISTORY ||
            !(cs->sched.atr.period > 0))
            abort();
        volatile unsigned sink = 0; /* read the last byte of every frame and label held */
        for (size_t i = 0; i < ams_horizon_count(cs->h); i++)
            sink += ams_horizon_frame(cs->h, i)[4 * 4 * 3 - 1] + ams_horizon_label(cs->h, i)[15];
        (void)sink;
    }
    ams_cstate_free(cs);
    free(buf);
    return 0;
}
