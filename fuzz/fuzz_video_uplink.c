/* fuzz_video_uplink.c - the server side of the uplink on arbitrary bytes (what a client can
 * send): H.264 parse + decode + RGB conversion must never crash, and the frame cap holds. */
#include <stdint.h>
#include <stdlib.h>

#include <libavutil/log.h>

#include "ams/uplink.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    av_log_set_level(AV_LOG_QUIET);
    ams_uplink_frames *f = NULL;
    ams_err err = {0};
    /* a small output size bounds the memory per frame whatever the stream claims */
    if (ams_uplink_decode(data, size, 64, 48, 8, &f, &err) == AMS_OK) {
        if (f->n < 1 || f->n > 8 || f->width != 64 || f->height != 48) abort();
        ams_uplink_frames_free(f);
    }
    return 0;
}
