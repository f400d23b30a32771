/* frame_reader.c - decodes files, V4L2 cameras and image sequences into RGB24 frames of a
 * requested size (scale to fill + centre crop), with timestamps, seeking and fps sampling. */
#include "ams/video.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <libavcodec/avcodec.h>
#include <libavdevice/avdevice.h>
#include <libavformat/avformat.h>

#include "video/av_status.h"
#include "video/rgb_scale.h"

#define PTS_EPS 1e-6        /* seconds: float slack when comparing pts with a sample time */
#define MAX_BAD_IN_A_ROW 64 /* damaged packets in a row before the stream counts as garbage */

struct ams_video_reader {
    AVFormatContext *fmt;
    AVCodecContext *dec;
    int stream;
    int is_camera;
    AVPacket *pkt;
    AVFrame *held;        /* latest consumed frame (the one shown "now") */
    AVFrame *pending;     /* decoded, not yet consumed (lookahead) */
    double held_t, pending_t;
    int have_held, have_pending, held_delivered;
    int demux_eof, dec_eof;
    int64_t next_index;   /* decode-order number of the next decoded frame */
    int64_t held_index, pending_index;
    int sought;           /* a seek happened: index numbering restarted */
    double start_t;       /* stream start, seconds (subtracted from every pts) */
    int have_start;
    double last_t;        /* pts of the last decoded frame */
    double frame_dur;     /* duration estimate: nominal rate, else the last pts step */
    ams_rgb_scaler scaler;
    uint8_t *rgb;         /* out_w * out_h * 3 */
    int bad_in_a_row, bad_total;
    ams_video_info info;
    char warning[256];
    char name[256];       /* the source string, for messages */
};

void ams_video_fill_crop(int sw, int sh, int dw, int dh, int *x, int *y, int *cw, int *ch) {
    /* Compare aspect ratios exactly in 64-bit: sw/sh > dw/dh  <=>  sw*dh > sh*dw. */
    int64_t a = (int64_t)sw * dh, b = (int64_t)sh * dw;
    int w = sw, h = sh;
    if (a > b) w = (int)(((int64_t)sh * dw * 2 + dh) / (2 * (int64_t)dh)); /* source wider */
    else if (a < b) h = (int)(((int64_t)sw * dh * 2 + dw) / (2 * (int64_t)dw));
    if (w < 1) w = 1;
    if (h < 1) h = 1;
    if (w > sw) w = sw;
    if (h > sh) h = sh;
    *cw = w;
    *ch = h;
    *x = (sw - w) / 2;
    *y = (sh - h) / 2;
}

static int is_image_name(const char *n) {
    const char *dot = strrchr(n, '.');
    if (!dot) return 0;
    return !strcasecmp(dot, ".png") || !strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg");
}

/* Builds an escaped glob "dir/ *.ext" for the image extension most common in the folder. */
static ams_status folder_glob(const char *dir, char *out, size_t cap, ams_err *err) {
    DIR *d = opendir(dir);
    AMS_VFAIL_IF(!d, err, AMS_E_IO, "%s: cannot list folder: %s", dir, strerror(errno));
    int n_png = 0, n_jpg = 0, n_jpeg = 0;
    char ext_png[8] = "png", ext_jpg[8] = "jpg", ext_jpeg[8] = "jpeg";
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || !is_image_name(e->d_name)) continue;
        const char *dot = strrchr(e->d_name, '.') + 1;
        /* Keep the case of the first name seen: the glob is case-sensitive. */
        if (!strcasecmp(dot, "png")) { if (!n_png++) snprintf(ext_png, sizeof ext_png, "%s", dot); }
        else if (!strcasecmp(dot, "jpg")) { if (!n_jpg++) snprintf(ext_jpg, sizeof ext_jpg, "%s", dot); }
        else if (!n_jpeg++) snprintf(ext_jpeg, sizeof ext_jpeg, "%s", dot);
    }
    closedir(d);
    const char *ext = n_png >= n_jpg && n_png >= n_jpeg ? ext_png : n_jpg >= n_jpeg ? ext_jpg : ext_jpeg;
    AMS_VFAIL_IF(n_png + n_jpg + n_jpeg == 0, err, AMS_E_NOTFOUND,
                "%s: folder holds no .png/.jpg/.jpeg frames", dir);
    size_t o = 0;
    for (const char *p = dir; *p; p++) {
        if (o + 3 >= cap) AMS_VFAIL(err, AMS_E_RANGE, "%s: folder name too long", dir);
        if (strchr("*?[]{}\\", *p)) out[o++] = '\\';
        out[o++] = *p;
    }
    int k = snprintf(out + o, cap - o, "/*.%s", ext);
    AMS_VFAIL_IF(k < 0 || (size_t)k >= cap - o, err, AMS_E_RANGE, "%s: folder name too long", dir);
    return AMS_OK;
}

/* The smallest number that a printf pattern "dir/prefix%0Nd.suffix" takes among the files in
 * dir (FFmpeg would otherwise probe the numbers one by one). */
static ams_status pattern_first(const char *pattern, long *first, ams_err *err) {
    const char *slash = strrchr(pattern, '/');
    char dir[4096];
    const char *file = slash ? slash + 1 : pattern;
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - pattern) : 1, slash ? pattern : ".");
    if (slash == pattern) snprintf(dir, sizeof dir, "/");
    const char *pct = strchr(file, '%');
    AMS_VFAIL_IF(!pct || strchr(pct + 1, '%'), err, AMS_E_INVAL,
                 "%s: an image pattern needs exactly one %%d or %%0Nd in the file name", pattern);
    size_t k = 1;
    while (pct[k] >= '0' && pct[k] <= '9') k++;
    AMS_VFAIL_IF(pct[k] != 'd', err, AMS_E_INVAL, "%s: only %%d / %%0Nd patterns are supported",
                 pattern);
    size_t plen = (size_t)(pct - file);
    const char *suffix = pct + k + 1;
    size_t slen = strlen(suffix);
    DIR *d = opendir(dir);
    AMS_VFAIL_IF(!d, err, AMS_E_NOTFOUND, "%s: cannot list folder %s: %s", pattern, dir,
                 strerror(errno));
    long best = -1;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n <= plen + slen || strncmp(e->d_name, file, plen) != 0 ||
            strcmp(e->d_name + n - slen, suffix) != 0)
            continue;
        long v = 0;
        size_t i = plen;
        for (; i < n - slen && e->d_name[i] >= '0' && e->d_name[i] <= '9' && v < 100000000; i++)
            v = v * 10 + (e->d_name[i] - '0');
        if (i == n - slen && (best < 0 || v < best)) best = v;
    }
    closedir(d);
    AMS_VFAIL_IF(best < 0, err, AMS_E_NOTFOUND, "%s: no file matches the pattern", pattern);
    *first = best;
    return AMS_OK;
}

static ams_video_kind guess_kind(const char *src) {
    struct stat st;
    if (!strncmp(src, "v4l2:", 5) || !strncmp(src, "/dev/video", 10)) return AMS_VIDEO_CAMERA;
    if (stat(src, &st) == 0 && S_ISDIR(st.st_mode)) return AMS_VIDEO_IMAGES;
    if (strchr(src, '%')) return AMS_VIDEO_IMAGES;
    return AMS_VIDEO_FILE;
}

static ams_status open_input(ams_video_reader *r, const char *source, const ams_video_opts *o,
                             ams_err *err) {
    ams_video_kind kind = o->kind ? o->kind : guess_kind(source);
    const AVInputFormat *ifmt = NULL;
    AVDictionary *dict = NULL;
    char url[4096];
    snprintf(url, sizeof url, "%s", source);
    if (kind == AMS_VIDEO_CAMERA) {
        avdevice_register_all();
        ifmt = av_find_input_format("video4linux2");
        AMS_VFAIL_IF(!ifmt, err, AMS_E_UNSUPPORTED, "%s: this FFmpeg has no v4l2 input", source);
        if (!strncmp(source, "v4l2:", 5)) snprintf(url, sizeof url, "%s", source + 5);
        r->is_camera = 1;
    } else if (kind == AMS_VIDEO_IMAGES) {
        double fps = o->image_fps > 0 ? o->image_fps : AMS_VIDEO_DEFAULT_IMAGE_FPS;
        AMS_VFAIL_IF(!(fps > 0 && fps <= 1000), err, AMS_E_RANGE, "%s: image fps %g out of (0, 1000]",
                    source, fps);
        ifmt = av_find_input_format("image2");
        AMS_VFAIL_IF(!ifmt, err, AMS_E_UNSUPPORTED, "this FFmpeg has no image2 demuxer");
        struct stat st;
        if (stat(source, &st) == 0 && S_ISDIR(st.st_mode)) {
            AMS_TRY(folder_glob(source, url, sizeof url, err));
            av_dict_set(&dict, "pattern_type", "glob", 0);
        } else {
            long first = 0;
            AMS_TRY(pattern_first(source, &first, err));
            av_dict_set(&dict, "pattern_type", "sequence", 0);
            av_dict_set_int(&dict, "start_number", first, 0);
        }
        AVRational q = av_d2q(fps, 100000);
        char rate[64];
        snprintf(rate, sizeof rate, "%d/%d", q.num, q.den);
        av_dict_set(&dict, "framerate", rate, 0);
    } else {
        struct stat st;
        if (!strstr(source, "://")) {
            AMS_VFAIL_IF(stat(source, &st) != 0, err, AMS_E_NOTFOUND, "%s: no such file", source);
            AMS_VFAIL_IF(S_ISDIR(st.st_mode), err, AMS_E_INVAL, "%s: is a folder", source);
            /* A local file must not make FFmpeg reach the network (playlists, concat lists). */
            av_dict_set(&dict, "protocol_whitelist", "file", 0);
        }
    }
    r->info.kind = kind;
    int rc = avformat_open_input(&r->fmt, url, ifmt, &dict);
    av_dict_free(&dict);
    if (rc < 0) {
        if (rc == AVERROR_INVALIDDATA)
            AMS_VFAIL(err, AMS_E_FORMAT, "%s: not a video FFmpeg can read", source);
        return ams_av_fail(err, rc, "%s: cannot open", source);
    }
    return AMS_OK;
}

static ams_status open_decoder(ams_video_reader *r, const ams_video_opts *o, ams_err *err) {
    int rc = avformat_find_stream_info(r->fmt, NULL);
    if (rc < 0) return ams_av_fail(err, rc, "%s: cannot read stream info", r->name);
    const AVCodec *codec = NULL;
    rc = av_find_best_stream(r->fmt, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
    if (rc == AVERROR_STREAM_NOT_FOUND)
        AMS_VFAIL(err, AMS_E_FORMAT, "%s: no video stream", r->name);
    if (rc == AVERROR_DECODER_NOT_FOUND || !codec)
        AMS_VFAIL(err, AMS_E_UNSUPPORTED, "%s: no decoder for its video codec", r->name);
    if (rc < 0) return ams_av_fail(err, rc, "%s: no usable video stream", r->name);
    r->stream = rc;
    AVStream *st = r->fmt->streams[rc];
    for (unsigned i = 0; i < r->fmt->nb_streams; i++)
        if ((int)i != rc) r->fmt->streams[i]->discard = AVDISCARD_ALL;
    r->dec = avcodec_alloc_context3(codec);
    AMS_VFAIL_IF(!r->dec, err, AMS_E_NOMEM, "%s: out of memory", r->name);
    rc = avcodec_parameters_to_context(r->dec, st->codecpar);
    if (rc < 0) return ams_av_fail(err, rc, "%s: bad codec parameters", r->name);
    r->dec->thread_count = o->threads > 0 ? o->threads : 0;
    rc = avcodec_open2(r->dec, codec, NULL);
    if (rc < 0) return ams_av_fail(err, rc, "%s: cannot open the %s decoder", r->name, codec->name);

    int sw = st->codecpar->width, sh = st->codecpar->height;
    AMS_VFAIL_IF(sw <= 0 || sh <= 0 || sw > AMS_VIDEO_MAX_DIM || sh > AMS_VIDEO_MAX_DIM, err,
                AMS_E_FORMAT, "%s: frame size %dx%d out of range", r->name, sw, sh);
    r->info.src_width = sw;
    r->info.src_height = sh;
    r->info.width = o->width ? o->width : sw;
    r->info.height = o->height ? o->height : sh;
    snprintf(r->info.codec, sizeof r->info.codec, "%s", codec->name);
    AVRational fr = st->avg_frame_rate.num > 0 ? st->avg_frame_rate : st->r_frame_rate;
    r->info.fps = fr.num > 0 && fr.den > 0 ? av_q2d(fr) : 0;
    r->frame_dur = r->info.fps > 0 ? 1.0 / r->info.fps : 1.0 / 30;
    r->info.duration = -1;
    if (st->duration != AV_NOPTS_VALUE && st->duration > 0)
        r->info.duration = (double)st->duration * av_q2d(st->time_base);
    else if (r->fmt->duration != AV_NOPTS_VALUE && r->fmt->duration > 0)
        r->info.duration = (double)r->fmt->duration / AV_TIME_BASE;
    if (r->is_camera) r->info.duration = -1;
    r->info.frames = st->nb_frames > 0 ? st->nb_frames : -1;
    if (st->start_time != AV_NOPTS_VALUE) {
        r->start_t = (double)st->start_time * av_q2d(st->time_base);
        r->have_start = 1;
    }
    size_t n;
    if (!ams_size_mul_ok((size_t)r->info.width * 3, (size_t)r->info.height, &n))
        AMS_VFAIL(err, AMS_E_RANGE, "output size overflows");
    r->rgb = av_malloc(n);
    r->pkt = av_packet_alloc();
    r->held = av_frame_alloc();
    r->pending = av_frame_alloc();
    AMS_VFAIL_IF(!r->rgb || !r->pkt || !r->held || !r->pending, err, AMS_E_NOMEM,
                "%s: out of memory", r->name);
    return AMS_OK;
}

ams_status ams_video_open(ams_video_reader **out, const char *source, const ams_video_opts *opts,
                          ams_err *err) {
    AMS_VFAIL_IF(!out || !source || !*source, err, AMS_E_INVAL, "ams_video_open: no source");
    *out = NULL;
    ams_video_opts o = {0};
    if (opts) o = *opts;
    AMS_VFAIL_IF((o.width == 0) != (o.height == 0) || o.width < 0 || o.height < 0 ||
                    o.width > AMS_VIDEO_MAX_DIM || o.height > AMS_VIDEO_MAX_DIM,
                err, AMS_E_RANGE, "%s: output size %dx%d invalid (1..%d each, or both 0)", source,
                o.width, o.height, AMS_VIDEO_MAX_DIM);
    ams_video_reader *r = calloc(1, sizeof *r);
    AMS_VFAIL_IF(!r, err, AMS_E_NOMEM, "out of memory");
    snprintf(r->name, sizeof r->name, "%s", source);
    ams_status s = open_input(r, source, &o, err);
    if (s == AMS_OK) s = open_decoder(r, &o, err);
    if (s != AMS_OK) {
        ams_video_free(r);
        return s;
    }
    *out = r;
    return AMS_OK;
}

void ams_video_free(ams_video_reader *r) {
    if (!r) return;
    ams_rgb_scaler_reset(&r->scaler);
    av_free(r->rgb);
    av_frame_free(&r->held);
    av_frame_free(&r->pending);
    av_packet_free(&r->pkt);
    avcodec_free_context(&r->dec);
    avformat_close_input(&r->fmt);
    free(r);
}

const ams_video_info *ams_video_info_get(const ams_video_reader *r) { return &r->info; }

const char *ams_video_warning(const ams_video_reader *r) {
    return r && r->warning[0] ? r->warning : NULL;
}

static void note_bad(ams_video_reader *r) {
    r->bad_in_a_row++;
    r->bad_total++;
    snprintf(r->warning, sizeof r->warning, "%.200s: skipped %d damaged packet(s)", r->name,
             r->bad_total);
}

/* Decodes the next frame into dst with its time in *t. *got = 0 at the end of the stream. */
static ams_status decode_next(ams_video_reader *r, AVFrame *dst, double *t, int *got,
                              ams_err *err) {
    *got = 0;
    for (;;) {
        int rc = avcodec_receive_frame(r->dec, dst);
        if (rc == 0) {
            r->bad_in_a_row = 0;
            int64_t ts = dst->best_effort_timestamp;
            double sec;
            if (ts == AV_NOPTS_VALUE) {
                sec = r->next_index || r->sought ? r->last_t + r->frame_dur : 0;
            } else {
                sec = (double)ts * av_q2d(r->fmt->streams[r->stream]->time_base);
                if (!r->have_start) {
                    r->start_t = sec;
                    r->have_start = 1;
                }
                sec -= r->start_t;
            }
            if (r->next_index && sec > r->last_t && r->info.fps <= 0) r->frame_dur = sec - r->last_t;
            r->last_t = sec;
            *t = sec;
            *got = 1;
            r->next_index++;
            if (dst->width <= 0 || dst->height <= 0 || dst->width > AMS_VIDEO_MAX_DIM ||
                dst->height > AMS_VIDEO_MAX_DIM)
                AMS_VFAIL(err, AMS_E_FORMAT, "%s: decoded frame size %dx%d out of range", r->name,
                         dst->width, dst->height);
            return AMS_OK;
        }
        if (rc == AVERROR_EOF) {
            r->dec_eof = 1;
            return AMS_OK;
        }
        if (rc == AVERROR_INVALIDDATA) {
            note_bad(r);
        } else if (rc != AVERROR(EAGAIN)) {
            return ams_av_fail(err, rc, "%s: decoding failed", r->name);
        }
        AMS_VFAIL_IF(r->bad_in_a_row > MAX_BAD_IN_A_ROW, err, AMS_E_FORMAT,
                    "%s: %d damaged packets in a row; not a decodable stream", r->name,
                    r->bad_in_a_row);
        if (r->demux_eof) {
            rc = avcodec_send_packet(r->dec, NULL); /* drain */
            if (rc < 0 && rc != AVERROR_EOF) return ams_av_fail(err, rc, "%s: drain", r->name);
            continue;
        }
        rc = av_read_frame(r->fmt, r->pkt);
        if (rc == AVERROR(EAGAIN)) continue;
        if (rc < 0) {
            if (rc != AVERROR_EOF) {
                /* A read error after the header: truncated file or camera gone. Stop cleanly. */
                char av[AV_ERROR_MAX_STRING_SIZE];
                av_strerror(rc, av, sizeof av);
                snprintf(r->warning, sizeof r->warning, "%.160s: stream ended early: %.60s", r->name, av);
                if (r->next_index == 0 && r->is_camera)
                    return ams_av_fail(err, rc, "%s: camera read failed", r->name);
            }
            r->demux_eof = 1;
            continue;
        }
        if (r->pkt->stream_index != r->stream) {
            av_packet_unref(r->pkt);
            continue;
        }
        rc = avcodec_send_packet(r->dec, r->pkt);
        av_packet_unref(r->pkt);
        if (rc == AVERROR_INVALIDDATA) note_bad(r);
        else if (rc < 0 && rc != AVERROR(EAGAIN))
            return ams_av_fail(err, rc, "%s: decoding failed", r->name);
    }
}

static ams_status fill_pending(ams_video_reader *r, ams_err *err) {
    if (r->have_pending || r->dec_eof) return AMS_OK;
    int got = 0;
    av_frame_unref(r->pending);
    AMS_TRY(decode_next(r, r->pending, &r->pending_t, &got, err));
    r->have_pending = got;
    r->pending_index = r->next_index - 1;
    return AMS_OK;
}

static void consume_pending(ams_video_reader *r) {
    AVFrame *tmp = r->held;
    r->held = r->pending;
    r->pending = tmp;
    av_frame_unref(r->pending);
    r->held_t = r->pending_t;
    r->held_index = r->pending_index;
    r->have_held = 1;
    r->have_pending = 0;
    r->held_delivered = 0;
}

/* Converts the held frame into r->rgb (fill + centre crop) and describes it in f. */
static ams_status deliver(ams_video_reader *r, ams_video_frame *f, ams_err *err) {
    AMS_TRY(ams_rgb_scale(&r->scaler, r->held, r->rgb, r->info.width, r->info.height, r->name, err));
    f->rgb = r->rgb;
    f->width = r->info.width;
    f->height = r->info.height;
    f->pts = r->held_t;
    f->index = r->held_index;
    r->held_delivered = 1;
    return AMS_OK;
}

static void end_of_stream(ams_video_frame *f) { memset(f, 0, sizeof *f); }

ams_status ams_video_read(ams_video_reader *r, ams_video_frame *f, ams_err *err) {
    AMS_VFAIL_IF(!r || !f, err, AMS_E_INVAL, "ams_video_read: NULL argument");
    if (!(r->have_held && !r->held_delivered)) {
        AMS_TRY(fill_pending(r, err));
        if (!r->have_pending) {
            end_of_stream(f);
            return AMS_OK;
        }
        consume_pending(r);
    }
    return deliver(r, f, err);
}

/* Consumes frames up to time t: afterwards held is the latest frame with pts <= t (or the
 * first frame when every frame is later). */
static ams_status advance_to(ams_video_reader *r, double t, ams_err *err) {
    for (;;) {
        AMS_TRY(fill_pending(r, err));
        if (!r->have_pending) return AMS_OK;
        if (r->have_held && r->pending_t > t + PTS_EPS) return AMS_OK;
        consume_pending(r);
        if (r->held_t > t + PTS_EPS) return AMS_OK; /* clamp: t precedes the first frame */
    }
}

static ams_status seek_to(ams_video_reader *r, double t, ams_err *err) {
    AMS_VFAIL_IF(r->is_camera, err, AMS_E_UNSUPPORTED, "%s: a camera cannot seek", r->name);
    AMS_VFAIL_IF(!isfinite(t), err, AMS_E_RANGE, "seek time is not finite");
    AVStream *st = r->fmt->streams[r->stream];
    double tb = av_q2d(st->time_base);
    /* Some demuxers land after the target (no index, imprecise seeking): then retry from
     * further back, doubling the margin, until a frame at or before t is reached. */
    for (double back = 0;; back = back ? back * 2 : 1) {
        double tt = (t < 0 ? 0 : t) - back;
        if (tt < 0) tt = 0;
        int64_t ts = (int64_t)floor((tt + r->start_t) / tb + 1e-6);
        int rc = av_seek_frame(r->fmt, r->stream, ts, AVSEEK_FLAG_BACKWARD);
        if (rc < 0) rc = av_seek_frame(r->fmt, r->stream, ts, AVSEEK_FLAG_BACKWARD | AVSEEK_FLAG_ANY);
        if (rc < 0) return ams_av_fail(err, rc, "%s: cannot seek to %.3f s", r->name, t);
        avcodec_flush_buffers(r->dec);
        av_frame_unref(r->held);
        av_frame_unref(r->pending);
        r->have_held = r->have_pending = 0;
        r->demux_eof = r->dec_eof = 0;
        r->next_index = 0;
        r->sought = 1;
        r->bad_in_a_row = 0;
        AMS_TRY(advance_to(r, t, err));
        if (!r->have_held || r->held_t <= t + PTS_EPS || tt <= 0 || back > 64) return AMS_OK;
    }
}

static int past_end(const ams_video_reader *r, double t) {
    return r->dec_eof && !r->have_pending && t >= r->held_t + r->frame_dur - PTS_EPS;
}

ams_status ams_video_seek(ams_video_reader *r, double t, ams_err *err) {
    AMS_VFAIL_IF(!r, err, AMS_E_INVAL, "ams_video_seek: NULL reader");
    AMS_TRY(seek_to(r, t, err));
    if (r->have_held) r->held_delivered = past_end(r, t);
    return AMS_OK;
}

ams_status ams_video_read_at(ams_video_reader *r, double t, ams_video_frame *f, ams_err *err) {
    AMS_VFAIL_IF(!r || !f, err, AMS_E_INVAL, "ams_video_read_at: NULL argument");
    AMS_VFAIL_IF(!isfinite(t), err, AMS_E_RANGE, "sample time is not finite");
    /* Going back in time needs a seek, unless we hold the very first frame since open. */
    if (r->have_held && t + PTS_EPS < r->held_t && (r->held_index > 0 || r->sought))
        AMS_TRY(seek_to(r, t, err));
    else AMS_TRY(advance_to(r, t, err));
    if (!r->have_held || past_end(r, t)) {
        end_of_stream(f);
        return AMS_OK;
    }
    return deliver(r, f, err);
}
