/* video_out.h - writing video results: an H.264 .mp4 (from RGB frames, or from uplink
 * streams already encoded) and single RGB frames as PNG. Every output is written to a
 * temporary name in the same folder and renamed into place only when complete, so a crash or
 * an error never leaves a half-written file under the requested name.
 *
 *     ams_mp4_opts o = {.width = 512, .height = 256, .fps = 10};
 *     ams_mp4_writer *w = NULL;
 *     if (ams_mp4_writer_open(&w, "out.mp4", &o, &err) != AMS_OK) return;
 *     for (int i = 0; i < n; i++) ams_mp4_writer_add_rgb(w, frame[i], i, &err);
 *     ams_mp4_writer_close(w, &err);   // out.mp4 appears here
 *     ams_mp4_writer_free(w);          // after close: frees; before: discards the temp file
 *
 * Threads: one writer per thread; the PNG function is reentrant.
 */
#ifndef AMS_VIDEO_OUT_H
#define AMS_VIDEO_OUT_H

#include <stdint.h>

#include "ams/status.h"
#include "ams/uplink.h"

typedef struct ams_mp4_opts {
    int width, height;  /* even, 16..AMS_VIDEO_MAX_DIM */
    double fps;         /* frame clock: pts are counted in 1/fps s */
    int crf;            /* x264 constant quality for add_rgb: 1..51; 0 = 23 */
    const char *preset; /* x264 preset for add_rgb; NULL = "veryfast" */
    int threads;        /* x264 threads; 0 = x264's choice */
} ams_mp4_opts;

typedef struct ams_mp4_writer ams_mp4_writer;

/* Prepares to write path (an .mp4, H.264). Nothing appears under path before close.
 * @return AMS_OK and *out (free with ams_mp4_writer_free); AMS_E_IO if the folder is not
 * writable; AMS_E_RANGE for bad options. */
ams_status ams_mp4_writer_open(ams_mp4_writer **out, const char *path, const ams_mp4_opts *o,
                               ams_err *err);

/* Encodes one RGB24 frame (width*height*3 bytes) shown at pts (in frames, increasing). A writer
 * takes either add_rgb or add_uplink calls, not both. */
ams_status ams_mp4_writer_add_rgb(ams_mp4_writer *w, const uint8_t *rgb, int64_t pts,
                                  ams_err *err);

/* Muxes an encoded upload as is (no re-encode), its frame 0 at pts_offset frames. Its size and
 * fps must match the writer's. */
ams_status ams_mp4_writer_add_uplink(ams_mp4_writer *w, const ams_uplink_buf *up,
                                     int64_t pts_offset, ams_err *err);

/* Flushes, finishes the file and renames it into place. @return AMS_E_INVAL if no frame was
 * added; the writer must still be freed. */
ams_status ams_mp4_writer_close(ams_mp4_writer *w, ams_err *err);

/* Frees the writer; an unclosed writer's temporary file is removed. NULL is a no-op. */
void ams_mp4_writer_free(ams_mp4_writer *w);

/* Writes an RGB24 image (width*height*3 bytes, rows packed) as an 8-bit RGB PNG, atomically. */
ams_status ams_png_write_rgb(const char *path, const uint8_t *rgb, int width, int height,
                             ams_err *err);

#endif
