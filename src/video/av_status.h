/* av_status.h - private to src/video: error reporting for the video layer, which links no
 * other ams layer (status.c lives in nn), and FFmpeg error codes -> ams_status. */
#ifndef AMS_VIDEO_AV_STATUS_H
#define AMS_VIDEO_AV_STATUS_H

#include "ams/status.h"

/* Like ams_err_set: formats one line into err (if not NULL) and returns code. */
ams_status ams_video_fail(ams_err *err, ams_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Maps an AVERROR to the closest ams_status and writes "<context>: <FFmpeg's text>" into err. */
ams_status ams_av_fail(ams_err *err, int averr, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define AMS_VFAIL(err, code, ...) return ams_video_fail((err), (code), __VA_ARGS__)
#define AMS_VFAIL_IF(cond, err, code, ...)               \
    do {                                                 \
        if (cond) AMS_VFAIL((err), (code), __VA_ARGS__); \
    } while (0)

#endif
