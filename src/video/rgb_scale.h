/* rgb_scale.h - private to src/video: any decoded AVFrame -> packed RGB24 of a requested size
 * by the one size rule (scale to fill, centre crop), with a cached swscale context. */
#ifndef AMS_VIDEO_RGB_SCALE_H
#define AMS_VIDEO_RGB_SCALE_H

#include <libavutil/frame.h>

#include "ams/status.h"

typedef struct ams_rgb_scaler {
    struct SwsContext *sws;
    int w, h, fmt, range, space, dw, dh; /* what the cached context was made for */
} ams_rgb_scaler;

/* Converts fr into dst (dw*dh*3 bytes, rows packed). name is for messages. */
ams_status ams_rgb_scale(ams_rgb_scaler *s, const AVFrame *fr, uint8_t *dst, int dw, int dh,
                         const char *name, ams_err *err);

/* Frees the cached context; the struct may be reused. */
void ams_rgb_scaler_reset(ams_rgb_scaler *s);

#endif
