/* av_status.c - the video layer's error lines, and FFmpeg's AVERROR codes as ams_status. */
#include "video/av_status.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include <libavutil/error.h>

static ams_status map_code(int averr) {
    switch (averr) {
    case AVERROR(ENOENT): return AMS_E_NOTFOUND;
    case AVERROR(ENOMEM): return AMS_E_NOMEM;
    case AVERROR(EINVAL): return AMS_E_INVAL;
    case AVERROR_INVALIDDATA:
    case AVERROR_EOF: return AMS_E_FORMAT;
    case AVERROR_DECODER_NOT_FOUND:
    case AVERROR_DEMUXER_NOT_FOUND:
    case AVERROR_ENCODER_NOT_FOUND:
    case AVERROR_MUXER_NOT_FOUND:
    case AVERROR_PATCHWELCOME:
    case AVERROR(ENOSYS): return AMS_E_UNSUPPORTED;
    default: return AMS_E_IO;
    }
}

ams_status ams_video_fail(ams_err *err, ams_status code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

ams_status ams_av_fail(ams_err *err, int averr, const char *fmt, ...) {
    ams_status code = map_code(averr);
    if (!err) return code;
    char ctx[512], av[AV_ERROR_MAX_STRING_SIZE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx, sizeof ctx, fmt, ap);
    va_end(ap);
    av_strerror(averr, av, sizeof av);
    return ams_video_fail(err, code, "%s: %s", ctx, av);
}
