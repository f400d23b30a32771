/* mp4_writer.c - an H.264 .mp4 written atomically (temp name + rename): frames encoded with
 * x264 at constant quality, or uplink streams muxed without re-encoding. */
#include "ams/video_out.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>

#include "ams/video.h"
#include "video/av_status.h"

struct ams_mp4_writer {
    ams_mp4_opts o;
    char path[4096], tmp[4200];
    AVFormatContext *fmt;
    AVStream *st;
    AVCodecContext *enc;  /* add_rgb mode */
    struct SwsContext *sws;
    AVFrame *fr;
    AVPacket *pkt;
    AVRational tb;        /* 1/fps: the clock of pts given to us */
    int mode;             /* 0 none yet, 1 rgb, 2 uplink */
    int header_done, closed;
    int64_t frames;
};

ams_status ams_mp4_writer_open(ams_mp4_writer **out, const char *path, const ams_mp4_opts *o,
                               ams_err *err) {
    AMS_VFAIL_IF(!out || !path || !o, err, AMS_E_INVAL, "ams_mp4_writer_open: NULL argument");
    *out = NULL;
    AMS_VFAIL_IF(o->width < 16 || o->height < 16 || o->width % 2 || o->height % 2 ||
                     o->width > AMS_VIDEO_MAX_DIM || o->height > AMS_VIDEO_MAX_DIM,
                 err, AMS_E_RANGE, "%s: frame size %dx%d (even, 16..%d)", path, o->width,
                 o->height, AMS_VIDEO_MAX_DIM);
    AMS_VFAIL_IF(!(o->fps > 0 && o->fps <= 1000), err, AMS_E_RANGE, "%s: fps %g", path, o->fps);
    AMS_VFAIL_IF(o->crf < 0 || o->crf > 51, err, AMS_E_RANGE, "%s: crf %d (1..51)", path, o->crf);
    AMS_VFAIL_IF(strlen(path) >= 4096, err, AMS_E_RANGE, "output path too long");
    ams_mp4_writer *w = calloc(1, sizeof *w);
    AMS_VFAIL_IF(!w, err, AMS_E_NOMEM, "out of memory");
    w->o = *o;
    snprintf(w->path, sizeof w->path, "%s", path);
    snprintf(w->tmp, sizeof w->tmp, "%s.tmp-XXXXXX", path);
    int fd = mkstemp(w->tmp);
    if (fd < 0) {
        free(w);
        AMS_VFAIL(err, AMS_E_IO, "%s: cannot create a file in its folder", path);
    }
    close(fd);
    AVRational rate = av_d2q(o->fps, 100000);
    w->tb = (AVRational){rate.den, rate.num};
    ams_status s = AMS_OK;
    int rc = avformat_alloc_output_context2(&w->fmt, NULL, "mp4", w->tmp);
    if (rc < 0) s = ams_av_fail(err, rc, "%s: no mp4 muxer", path);
    else if (!(w->st = avformat_new_stream(w->fmt, NULL)))
        s = ams_video_fail(err, AMS_E_NOMEM, "out of memory");
    else if ((rc = avio_open(&w->fmt->pb, w->tmp, AVIO_FLAG_WRITE)) < 0)
        s = ams_av_fail(err, rc, "%s: cannot write", w->tmp);
    w->pkt = av_packet_alloc();
    if (s == AMS_OK && !w->pkt) s = ams_video_fail(err, AMS_E_NOMEM, "out of memory");
    if (s != AMS_OK) {
        ams_mp4_writer_free(w);
        return s;
    }
    *out = w;
    return AMS_OK;
}

void ams_mp4_writer_free(ams_mp4_writer *w) {
    if (!w) return;
    if (w->fmt) {
        avio_closep(&w->fmt->pb);
        avformat_free_context(w->fmt);
    }
    if (!w->closed) unlink(w->tmp);
    sws_freeContext(w->sws);
    av_frame_free(&w->fr);
    av_packet_free(&w->pkt);
    avcodec_free_context(&w->enc);
    free(w);
}

static ams_status write_header(ams_mp4_writer *w, ams_err *err) {
    w->st->time_base = w->tb;
    w->st->avg_frame_rate = (AVRational){w->tb.den, w->tb.num};
    int rc = avformat_write_header(w->fmt, NULL);
    if (rc < 0) return ams_av_fail(err, rc, "%s: cannot write the mp4 header", w->path);
    w->header_done = 1;
    return AMS_OK;
}

static ams_status open_encoder(ams_mp4_writer *w, ams_err *err) {
    const AVCodec *codec = avcodec_find_encoder_by_name("libx264");
    AMS_VFAIL_IF(!codec, err, AMS_E_UNSUPPORTED, "this FFmpeg has no libx264 encoder");
    AVCodecContext *c = w->enc = avcodec_alloc_context3(codec);
    w->fr = av_frame_alloc();
    AMS_VFAIL_IF(!c || !w->fr, err, AMS_E_NOMEM, "out of memory");
    c->width = w->o.width;
    c->height = w->o.height;
    c->pix_fmt = AV_PIX_FMT_YUV420P;
    c->time_base = w->tb;
    c->framerate = (AVRational){w->tb.den, w->tb.num};
    c->thread_count = w->o.threads > 0 ? w->o.threads : 0;
    c->colorspace = AVCOL_SPC_SMPTE170M;
    c->color_primaries = AVCOL_PRI_SMPTE170M;
    c->color_trc = AVCOL_TRC_SMPTE170M;
    c->color_range = AVCOL_RANGE_MPEG;
    c->flags |= AV_CODEC_FLAG_GLOBAL_HEADER; /* mp4 keeps SPS/PPS in the sample entry */
    av_opt_set(c->priv_data, "preset", w->o.preset ? w->o.preset : "veryfast", 0);
    av_opt_set_int(c->priv_data, "crf", w->o.crf ? w->o.crf : 23, 0);
    int rc = avcodec_open2(c, codec, NULL);
    if (rc < 0) return ams_av_fail(err, rc, "cannot open x264");
    rc = avcodec_parameters_from_context(w->st->codecpar, c);
    if (rc < 0) return ams_av_fail(err, rc, "codec parameters");
    w->fr->format = AV_PIX_FMT_YUV420P;
    w->fr->width = c->width;
    w->fr->height = c->height;
    if ((rc = av_frame_get_buffer(w->fr, 0)) < 0) return ams_av_fail(err, rc, "frame buffer");
    w->sws = sws_getContext(c->width, c->height, AV_PIX_FMT_RGB24, c->width, c->height,
                            AV_PIX_FMT_YUV420P, SWS_BICUBIC | SWS_ACCURATE_RND, NULL, NULL, NULL);
    AMS_VFAIL_IF(!w->sws, err, AMS_E_INTERNAL, "no RGB -> YUV converter");
    sws_setColorspaceDetails(w->sws, sws_getCoefficients(SWS_CS_ITU601), 1,
                             sws_getCoefficients(SWS_CS_ITU601), 0, 0, 1 << 16, 1 << 16);
    return write_header(w, err);
}

/* Sends the encoder's pending packets to the muxer. */
static ams_status drain(ams_mp4_writer *w, ams_err *err) {
    for (;;) {
        int rc = avcodec_receive_packet(w->enc, w->pkt);
        if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) return AMS_OK;
        if (rc < 0) return ams_av_fail(err, rc, "x264 failed");
        av_packet_rescale_ts(w->pkt, w->tb, w->st->time_base);
        w->pkt->stream_index = 0;
        rc = av_interleaved_write_frame(w->fmt, w->pkt);
        if (rc < 0) return ams_av_fail(err, rc, "%s: write failed", w->path);
    }
}

ams_status ams_mp4_writer_add_rgb(ams_mp4_writer *w, const uint8_t *rgb, int64_t pts,
                                  ams_err *err) {
    AMS_VFAIL_IF(!w || !rgb || w->closed, err, AMS_E_INVAL, "ams_mp4_writer_add_rgb: bad call");
    AMS_VFAIL_IF(w->mode == 2, err, AMS_E_INVAL, "%s: mixing RGB frames and uplink streams", w->path);
    if (w->mode == 0) {
        w->mode = 1;
        AMS_TRY(open_encoder(w, err));
    }
    int rc = av_frame_make_writable(w->fr);
    if (rc < 0) return ams_av_fail(err, rc, "frame buffer");
    const uint8_t *src[1] = {rgb};
    int ls[1] = {w->o.width * 3};
    sws_scale(w->sws, src, ls, 0, w->o.height, w->fr->data, w->fr->linesize);
    w->fr->pts = pts;
    rc = avcodec_send_frame(w->enc, w->fr);
    if (rc < 0) return ams_av_fail(err, rc, "x264 rejected frame at pts %lld", (long long)pts);
    w->frames++;
    return drain(w, err);
}

/* SPS and PPS NAL units (with 4-byte start codes) of an Annex-B access unit. */
static ams_status param_sets(const uint8_t *d, size_t n, uint8_t **out, size_t *out_n,
                             ams_err *err) {
    uint8_t *buf = av_mallocz(n + 4 * 16 + AV_INPUT_BUFFER_PADDING_SIZE);
    AMS_VFAIL_IF(!buf, err, AMS_E_NOMEM, "out of memory");
    size_t o = 0, i = 0;
    while (i + 3 <= n) {
        if (!(d[i] == 0 && d[i + 1] == 0 && d[i + 2] == 1)) {
            i++;
            continue;
        }
        size_t start = i + 3, end = start;
        while (end + 3 <= n && !(d[end] == 0 && d[end + 1] == 0 && (d[end + 2] == 1 ||
                                 (d[end + 2] == 0 && end + 3 < n && d[end + 3] == 1))))
            end++;
        if (end + 3 > n) end = n;
        int type = start < n ? d[start] & 0x1f : 0;
        if (type == 7 || type == 8) {
            memcpy(buf + o, "\0\0\0\1", 4);
            memcpy(buf + o + 4, d + start, end - start);
            o += 4 + end - start;
        }
        i = end;
    }
    if (o == 0) {
        av_free(buf);
        AMS_VFAIL(err, AMS_E_FORMAT, "uplink stream has no SPS/PPS in its first access unit");
    }
    *out = buf;
    *out_n = o;
    return AMS_OK;
}

ams_status ams_mp4_writer_add_uplink(ams_mp4_writer *w, const ams_uplink_buf *up,
                                     int64_t pts_offset, ams_err *err) {
    AMS_VFAIL_IF(!w || !up || w->closed, err, AMS_E_INVAL, "ams_mp4_writer_add_uplink: bad call");
    AMS_VFAIL_IF(w->mode == 1, err, AMS_E_INVAL, "%s: mixing RGB frames and uplink streams", w->path);
    AMS_VFAIL_IF(up->width != w->o.width || up->height != w->o.height || up->n_packets < 1, err,
                 AMS_E_SHAPE, "%s: upload %dx%d does not match the file's %dx%d", w->path,
                 up->width, up->height, w->o.width, w->o.height);
    if (w->mode == 0) {
        w->mode = 2;
        AVCodecParameters *par = w->st->codecpar;
        par->codec_type = AVMEDIA_TYPE_VIDEO;
        par->codec_id = AV_CODEC_ID_H264;
        par->width = up->width;
        par->height = up->height;
        par->format = AV_PIX_FMT_YUV420P;
        size_t n = 0;
        AMS_TRY(param_sets(up->data + up->packets[0].offset, up->packets[0].size, &par->extradata,
                           &n, err));
        par->extradata_size = (int)n;
        AMS_TRY(write_header(w, err));
    }
    for (int i = 0; i < up->n_packets; i++) {
        const ams_uplink_packet *p = &up->packets[i];
        AMS_VFAIL_IF(p->offset > up->size || p->size > up->size - p->offset || p->size > INT32_MAX,
                     err, AMS_E_INVAL, "uplink packet %d out of bounds", i);
        int rc = av_new_packet(w->pkt, (int)p->size);
        if (rc < 0) return ams_av_fail(err, rc, "packet");
        memcpy(w->pkt->data, up->data + p->offset, p->size);
        w->pkt->pts = p->pts + pts_offset;
        w->pkt->dts = p->dts + pts_offset;
        w->pkt->duration = 1;
        if (p->key) w->pkt->flags |= AV_PKT_FLAG_KEY;
        av_packet_rescale_ts(w->pkt, w->tb, w->st->time_base);
        w->pkt->stream_index = 0;
        rc = av_interleaved_write_frame(w->fmt, w->pkt);
        if (rc < 0) return ams_av_fail(err, rc, "%s: write failed", w->path);
        w->frames++;
    }
    return AMS_OK;
}

ams_status ams_mp4_writer_close(ams_mp4_writer *w, ams_err *err) {
    AMS_VFAIL_IF(!w || w->closed, err, AMS_E_INVAL, "ams_mp4_writer_close: bad call");
    AMS_VFAIL_IF(w->frames == 0, err, AMS_E_INVAL, "%s: no frames to write", w->path);
    if (w->mode == 1) {
        int rc = avcodec_send_frame(w->enc, NULL);
        if (rc < 0) return ams_av_fail(err, rc, "x264 flush");
        AMS_TRY(drain(w, err));
    }
    int rc = av_write_trailer(w->fmt);
    if (rc < 0) return ams_av_fail(err, rc, "%s: cannot finish the file", w->path);
    rc = avio_closep(&w->fmt->pb);
    if (rc < 0) return ams_av_fail(err, rc, "%s: write failed", w->path);
    chmod(w->tmp, 0644); /* mkstemp made it 0600 */
    AMS_VFAIL_IF(rename(w->tmp, w->path) != 0, err, AMS_E_IO, "%s: cannot rename %s into place",
                 w->path, w->tmp);
    w->closed = 1;
    return AMS_OK;
}
