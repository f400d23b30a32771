/* uplink.h - the H.264 uplink: the edge encodes one upload (the frames it sampled in one
 * period) with x264 at a target bitrate; the server decodes the bytes back into the lossy
 * frames it will label.
 *
 *     ams_uplink_opts o = {.width = 768, .height = 576, .fps = 1, .kbps = 150};
 *     ams_uplink_buf *up = NULL;          // one self-contained Annex-B H.264 stream
 *     ams_uplink_frames *dec = NULL;      // what the server sees
 *     if (ams_uplink_encode(&o, frames, 10, &up, &err) == AMS_OK &&
 *         ams_uplink_decode(up->data, up->size, 0, 0, 64, &dec, &err) == AMS_OK)
 *         printf("%zu bits, PSNR %.2f dB\n", up->size * 8,
 *                ams_psnr_rgb(frames_flat, dec->rgb, dec->n * 768 * 576 * 3));
 *     ams_uplink_frames_free(dec);
 *     ams_uplink_buf_free(up);
 *
 * Bitrate definition ("Kbps of video time"): frames sampled at R fps are 1/R s of *source
 * video time* apart, and that is the encoder's clock. An upload of n frames covers n/R seconds
 * of video, and its budget is kbps * 1000 * n / R bits: for an upload every T seconds this is
 * the reference's "bitrate = uplink budget x period" (budget x T bits per upload). The measured
 * rate is 8 * (bytes of the Annex-B stream, headers included, no container) / (n / R) / 1000.
 * Rate control: two-pass x264 ABR by default (as the reference), or one pass ABR with a VBV
 * buffer of the whole upload.
 *
 * Colour: RGB -> BT.601 limited-range 4:2:0 (signalled in the stream's VUI), and back.
 * Threads: the functions are reentrant; no state is kept between calls. Two-pass keeps its
 * statistics in a temporary file under $TMPDIR (or /tmp), removed before returning.
 */
#ifndef AMS_UPLINK_H
#define AMS_UPLINK_H

#include <stddef.h>
#include <stdint.h>

#include "ams/status.h"

#define AMS_UPLINK_MAX_FRAMES 100000 /* per upload (encode), and the decode cap's upper bound */
#define AMS_UPLINK_MAX_PIXELS (4096 * 4096) /* largest coded frame the decoder accepts */

typedef struct ams_uplink_opts {
    int width, height;  /* frame size: even, 16..AMS_VIDEO_MAX_DIM */
    double fps;         /* sampling rate R (frames per second of video time), > 0 */
    double kbps;        /* target Kbps of video time, > 0 */
    int passes;         /* 2 = two-pass ABR (0 means 2), 1 = one-pass ABR + VBV */
    int threads;        /* x264 threads; 0 = x264's choice */
    const char *preset; /* x264 preset; NULL = "medium" */
} ams_uplink_opts;

typedef struct ams_uplink_packet {
    size_t offset, size; /* bytes of this access unit inside data */
    int64_t pts, dts;    /* in frames (units of 1/R s), from 0 */
    int key;             /* an IDR */
} ams_uplink_packet;

typedef struct ams_uplink_buf {
    uint8_t *data;               /* Annex-B H.264, SPS/PPS in band: decodable on its own */
    size_t size;                 /* bytes */
    ams_uplink_packet *packets;  /* one per frame, in decode order */
    int n_packets;
    int width, height;           /* coded size */
    double fps;                  /* R */
} ams_uplink_buf;

typedef struct ams_uplink_frames {
    uint8_t *rgb;      /* n frames of width*height*3 bytes, packed, in presentation order */
    int n;             /* frames decoded */
    int width, height; /* size of each frame */
} ams_uplink_frames;

/* Encodes n RGB24 frames (rgb[i]: o->width*o->height*3 bytes, packed) as one upload.
 * @return AMS_OK and *out (free with ams_uplink_buf_free); AMS_E_INVAL/AMS_E_RANGE for bad
 * options; AMS_E_UNSUPPORTED without libx264; AMS_E_IO if the stats file cannot be written. */
ams_status ams_uplink_encode(const ams_uplink_opts *o, const uint8_t *const *rgb, int n,
                             ams_uplink_buf **out, ams_err *err);

/* Frees an upload; NULL is a no-op. */
void ams_uplink_buf_free(ams_uplink_buf *b);

/* Decodes an upload (untrusted bytes: any H.264 Annex-B stream) into RGB24 frames of
 * width x height (0,0 = the coded size; otherwise the fill + centre-crop rule of video.h).
 * At most max_frames (1..AMS_UPLINK_MAX_FRAMES) are accepted: more -> AMS_E_RANGE; frames
 * larger than AMS_UPLINK_MAX_PIXELS are not decoded.
 * @return AMS_OK and *out (free with ams_uplink_frames_free); AMS_E_FORMAT if no frame decodes
 * or the frame size changes mid-stream. */
ams_status ams_uplink_decode(const uint8_t *data, size_t size, int width, int height,
                             int max_frames, ams_uplink_frames **out, ams_err *err);

/* Frees decoded frames; NULL is a no-op. */
void ams_uplink_frames_free(ams_uplink_frames *f);

/* PSNR in dB of b against a over n bytes (8-bit samples, peak 255), from the mean squared
 * error over all bytes; INFINITY when identical, NAN when n == 0. */
double ams_psnr_rgb(const uint8_t *a, const uint8_t *b, size_t n);

#endif
