/* video.h - decoded video frames: files, v4l2 cameras and image sequences as RGB24.
 *
 *     ams_video_opts o = {.width = 512, .height = 256};
 *     ams_video_reader *r = NULL;
 *     ams_video_frame f;
 *     ams_err err = {0};
 *     if (ams_video_open(&r, "vtest.avi", &o, &err) != AMS_OK) { puts(err.msg); return; }
 *     for (int k = 0; ; k++) {                      // one frame per second of video
 *         if (ams_video_read_at(r, k / 1.0, &f, &err) != AMS_OK) break;  // error
 *         if (!f.rgb) break;                        // end of stream
 *         use(f.rgb, f.width, f.height, f.pts);
 *     }
 *     ams_video_free(r);
 *
 * Sources (ams_video_open picks by the string unless opts.kind says otherwise):
 *   "/dev/videoN" or "v4l2:/dev/videoN"  a V4L2 camera (libavdevice);
 *   a folder                               its PNG/JPEG files in name order, at opts.image_fps;
 *   a string containing '%' (frame_%06d.png) a printf-numbered image sequence, at opts.image_fps;
 *   anything else                          a file (or URL) FFmpeg can demux.
 *
 * Size and aspect rule (one rule everywhere, also for labels and overlays): frames are
 * SCALED TO FILL the requested width x height, keeping the aspect ratio, and the excess is
 * CENTRE-CROPPED; nothing is stretched and nothing is letterboxed. Pixels are treated as square
 * (the sample aspect ratio is ignored). The crop offset is rounded down to the source's chroma
 * alignment (at most one pixel off centre for 4:2:0). width = height = 0 keeps the source size.
 *
 * Timestamps: pts is in seconds since the stream's start time (so the first frame of a file is
 * normally 0); frames without a timestamp get the previous one plus one frame duration.
 * Sampling rule (ams_video_read_at): the frame shown at time t is the latest frame whose
 * pts <= t (+1 us tolerance); before the first frame it is the first frame; the stream has ended
 * once t >= last pts + one frame duration. Sampling a 10 fps video at 4 fps thus drops frames,
 * at 20 fps repeats each frame twice.
 *
 * Errors: a missing file, a file that is not video, an unsupported codec, a camera that cannot be
 * opened -> AMS_E_NOTFOUND / AMS_E_FORMAT / AMS_E_UNSUPPORTED / AMS_E_IO with one line in err.
 * A damaged packet mid-stream is skipped (counted in ams_video_warning); a read error after some
 * frames (truncated file, camera unplugged) ends the stream cleanly and ams_video_warning() says
 * why, so callers keep what they did. Too many damaged packets in a row -> AMS_E_FORMAT.
 *
 * Memory: the reader owns frame pixels; f.rgb stays valid until the next call on the reader or
 * ams_video_free. Threads: one reader per thread. FFmpeg's own log (av_log) is process-global
 * and left to the program (the ams CLI silences it).
 */
#ifndef AMS_VIDEO_H
#define AMS_VIDEO_H

#include <stdint.h>

#include "ams/status.h"

#define AMS_VIDEO_MAX_DIM 16384          /* largest accepted width or height (source or output) */
#define AMS_VIDEO_DEFAULT_IMAGE_FPS 30.0 /* image sequences, when opts.image_fps is 0 */

typedef enum {
    AMS_VIDEO_AUTO = 0,   /* decide from the source string (see above) */
    AMS_VIDEO_FILE = 1,   /* a container FFmpeg can demux */
    AMS_VIDEO_CAMERA = 2, /* a V4L2 device */
    AMS_VIDEO_IMAGES = 3, /* a folder of PNG/JPEG or a printf pattern */
} ams_video_kind;

typedef struct ams_video_opts {
    int width, height;    /* output size; 0,0 = source size (both or neither) */
    ams_video_kind kind;  /* AMS_VIDEO_AUTO normally */
    double image_fps;     /* frame rate of an image sequence; 0 = AMS_VIDEO_DEFAULT_IMAGE_FPS */
    int threads;          /* decoder threads; 0 = FFmpeg's choice */
} ams_video_opts;

typedef struct ams_video_info {
    ams_video_kind kind;         /* what was opened */
    int src_width, src_height;   /* coded frame size */
    int width, height;           /* size of delivered frames */
    double fps;                  /* nominal frame rate, 0 if unknown */
    double duration;             /* seconds, < 0 if unknown (cameras) */
    int64_t frames;              /* frame count the container states, -1 if unknown */
    char codec[32];              /* decoder name, e.g. "h264" */
} ams_video_info;

typedef struct ams_video_frame {
    const uint8_t *rgb; /* RGB24, height rows of width*3 bytes, packed; NULL = end of stream */
    int width, height;  /* = info.width, info.height */
    double pts;         /* seconds since the stream start */
    int64_t index;      /* 0-based number of the frame in decode order since open/seek */
} ams_video_frame;

typedef struct ams_video_reader ams_video_reader;

/* Opens a source (see the top of this file). opts may be NULL (source size, defaults).
 * @return AMS_OK and *out (free with ams_video_free), or an error with one line in err. */
ams_status ams_video_open(ams_video_reader **out, const char *source, const ams_video_opts *opts,
                          ams_err *err);

/* Frees the reader; NULL is a no-op. */
void ams_video_free(ams_video_reader *r);

/* Stream properties (valid until ams_video_free). */
const ams_video_info *ams_video_info_get(const ams_video_reader *r);

/* Next frame in presentation order. At the end of the stream: AMS_OK with f->rgb == NULL. */
ams_status ams_video_read(ams_video_reader *r, ams_video_frame *f, ams_err *err);

/* The frame shown at time t seconds (the sampling rule above); reads forward, and seeks when
 * t lies before the last frame returned. End of stream: AMS_OK with f->rgb == NULL. */
ams_status ams_video_read_at(ams_video_reader *r, double t, ams_video_frame *f, ams_err *err);

/* Positions the reader so that the next ams_video_read returns the frame shown at time t
 * (seconds; the sampling rule). Cameras: AMS_E_UNSUPPORTED. t beyond the end: the next read
 * reports the end. */
ams_status ams_video_seek(ams_video_reader *r, double t, ams_err *err);

/* NULL, or one line on why the stream ended early or what was skipped (damaged packets). */
const char *ams_video_warning(const ams_video_reader *r);

/* The centre-crop rectangle (in source pixels) the size rule takes from a sw x sh source for a
 * dw x dh output, before chroma alignment; exposed for labels/overlays and tests. */
void ams_video_fill_crop(int sw, int sh, int dw, int dh, int *x, int *y, int *cw, int *ch);

#endif
