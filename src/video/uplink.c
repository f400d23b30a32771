/* uplink.c - one upload's frames -> H.264 (x264 via libavcodec, two-pass or ABR+VBV, at a
 * bitrate of video time) and back to the lossy RGB frames the server sees; PSNR. */
#include "ams/uplink.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libavcodec/avcodec.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>

#include "ams/video.h"
#include "video/av_status.h"
#include "video/rgb_scale.h"

double ams_psnr_rgb(const uint8_t *a, const uint8_t *b, size_t n) {
    if (n == 0) return NAN;
    double se = 0;
    for (size_t i = 0; i < n; i++) {
        int d = (int)a[i] - (int)b[i];
        se += (double)(d * d);
    }
    if (se == 0) return INFINITY;
    return 10.0 * log10(255.0 * 255.0 / (se / (double)n));
}

void ams_uplink_buf_free(ams_uplink_buf *b) {
    if (!b) return;
    free(b->data);
    free(b->packets);
    free(b);
}

void ams_uplink_frames_free(ams_uplink_frames *f) {
    if (!f) return;
    free(f->rgb);
    free(f);
}

/* Appends one packet to the upload (grows the buffers geometrically). */
static ams_status append_packet(ams_uplink_buf *b, const AVPacket *pkt, size_t *cap_data,
                                int *cap_pkts, ams_err *err) {
    size_t need;
    AMS_VFAIL_IF(!ams_size_add_ok(b->size, (size_t)pkt->size, &need), err, AMS_E_RANGE,
                 "upload too large");
    if (need > *cap_data) {
        size_t cap = *cap_data ? *cap_data : 65536;
        while (cap < need) AMS_VFAIL_IF(!ams_size_mul_ok(cap, 2, &cap), err, AMS_E_RANGE, "upload too large");
        uint8_t *d = realloc(b->data, cap);
        AMS_VFAIL_IF(!d, err, AMS_E_NOMEM, "out of memory for the upload");
        b->data = d;
        *cap_data = cap;
    }
    if (b->n_packets == *cap_pkts) {
        int cap = *cap_pkts ? *cap_pkts * 2 : 64;
        ams_uplink_packet *p = realloc(b->packets, (size_t)cap * sizeof *p);
        AMS_VFAIL_IF(!p, err, AMS_E_NOMEM, "out of memory for the upload");
        b->packets = p;
        *cap_pkts = cap;
    }
    memcpy(b->data + b->size, pkt->data, (size_t)pkt->size);
    b->packets[b->n_packets++] = (ams_uplink_packet){
        .offset = b->size, .size = (size_t)pkt->size, .pts = pkt->pts, .dts = pkt->dts,
        .key = (pkt->flags & AV_PKT_FLAG_KEY) != 0};
    b->size = need;
    return AMS_OK;
}

/* One x264 run over all frames. pass: 0 = single pass (ABR + VBV), 1 or 2 = two-pass.
 * out == NULL discards the packets (first pass). */
static ams_status encode_run(const ams_uplink_opts *o, const uint8_t *const *rgb, int n, int pass,
                             const char *stats, ams_uplink_buf *out, ams_err *err) {
    ams_status st = AMS_OK;
    AVCodecContext *c = NULL;
    AVFrame *fr = NULL;
    AVPacket *pkt = NULL;
    struct SwsContext *sws = NULL;
    size_t cap_data = 0;
    int cap_pkts = 0, rc;
    const AVCodec *codec = avcodec_find_encoder_by_name("libx264");
    if (!codec) return ams_video_fail(err, AMS_E_UNSUPPORTED, "this FFmpeg has no libx264 encoder");
    c = avcodec_alloc_context3(codec);
    fr = av_frame_alloc();
    pkt = av_packet_alloc();
    if (!c || !fr || !pkt) {
        st = ams_video_fail(err, AMS_E_NOMEM, "out of memory for the encoder");
        goto done;
    }
    AVRational rate = av_d2q(o->fps, 100000);
    c->width = o->width;
    c->height = o->height;
    c->pix_fmt = AV_PIX_FMT_YUV420P;
    c->time_base = (AVRational){rate.den, rate.num};
    c->framerate = rate;
    c->bit_rate = (int64_t)llround(o->kbps * 1000.0);
    c->gop_size = n; /* one IDR per upload: each upload is decoded on its own */
    c->thread_count = o->threads > 0 ? o->threads : 0;
    c->colorspace = AVCOL_SPC_SMPTE170M;
    c->color_primaries = AVCOL_PRI_SMPTE170M;
    c->color_trc = AVCOL_TRC_SMPTE170M;
    c->color_range = AVCOL_RANGE_MPEG;
    if (pass == 0) {
        /* VBV of the whole upload: the budget may move between frames, not past the upload. */
        c->rc_max_rate = c->bit_rate;
        double buf = (double)c->bit_rate * n / o->fps;
        c->rc_buffer_size = buf > INT32_MAX ? INT32_MAX : (int)buf;
    } else {
        c->flags |= pass == 1 ? AV_CODEC_FLAG_PASS1 : AV_CODEC_FLAG_PASS2;
        av_opt_set(c->priv_data, "stats", stats, 0);
    }
    av_opt_set(c->priv_data, "preset", o->preset ? o->preset : "medium", 0);
    rc = avcodec_open2(c, codec, NULL);
    if (rc < 0) {
        st = ams_av_fail(err, rc, "cannot open x264 (%dx%d, %g fps, %g kbps, preset %s)", o->width,
                         o->height, o->fps, o->kbps, o->preset ? o->preset : "medium");
        goto done;
    }
    fr->format = AV_PIX_FMT_YUV420P;
    fr->width = o->width;
    fr->height = o->height;
    if ((rc = av_frame_get_buffer(fr, 0)) < 0) {
        st = ams_av_fail(err, rc, "frame buffer");
        goto done;
    }
    sws = sws_getContext(o->width, o->height, AV_PIX_FMT_RGB24, o->width, o->height,
                         AV_PIX_FMT_YUV420P, SWS_BICUBIC | SWS_ACCURATE_RND, NULL, NULL, NULL);
    if (!sws) {
        st = ams_video_fail(err, AMS_E_INTERNAL, "no RGB -> YUV converter");
        goto done;
    }
    sws_setColorspaceDetails(sws, sws_getCoefficients(SWS_CS_ITU601), 1,
                             sws_getCoefficients(SWS_CS_ITU601), 0, 0, 1 << 16, 1 << 16);
    for (int i = 0; i <= n; i++) {
        if (i < n) {
            if ((rc = av_frame_make_writable(fr)) < 0) {
                st = ams_av_fail(err, rc, "frame buffer");
                goto done;
            }
            const uint8_t *src[1] = {rgb[i]};
            int src_ls[1] = {o->width * 3};
            sws_scale(sws, src, src_ls, 0, o->height, fr->data, fr->linesize);
            fr->pts = i;
            rc = avcodec_send_frame(c, fr);
        } else {
            rc = avcodec_send_frame(c, NULL); /* flush */
        }
        if (rc < 0) {
            st = ams_av_fail(err, rc, "x264 rejected frame %d", i);
            goto done;
        }
        for (;;) {
            rc = avcodec_receive_packet(c, pkt);
            if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) break;
            if (rc < 0) {
                st = ams_av_fail(err, rc, "x264 failed");
                goto done;
            }
            if (out) st = append_packet(out, pkt, &cap_data, &cap_pkts, err);
            av_packet_unref(pkt);
            if (st != AMS_OK) goto done;
        }
    }
done:
    sws_freeContext(sws);
    av_packet_free(&pkt);
    av_frame_free(&fr);
    avcodec_free_context(&c);
    return st;
}

static void remove_stats(const char *path) {
    static const char *const suffix[] = {"", ".temp", ".mbtree", ".mbtree.temp"};
    char p[4200];
    for (size_t i = 0; i < sizeof suffix / sizeof suffix[0]; i++) {
        snprintf(p, sizeof p, "%s%s", path, suffix[i]);
        unlink(p);
    }
}

ams_status ams_uplink_encode(const ams_uplink_opts *o, const uint8_t *const *rgb, int n,
                             ams_uplink_buf **out, ams_err *err) {
    AMS_VFAIL_IF(!o || !rgb || !out, err, AMS_E_INVAL, "ams_uplink_encode: NULL argument");
    *out = NULL;
    AMS_VFAIL_IF(n < 1 || n > AMS_UPLINK_MAX_FRAMES, err, AMS_E_RANGE,
                 "upload of %d frames (1..%d)", n, AMS_UPLINK_MAX_FRAMES);
    AMS_VFAIL_IF(o->width < 16 || o->height < 16 || o->width > AMS_VIDEO_MAX_DIM ||
                     o->height > AMS_VIDEO_MAX_DIM || o->width % 2 || o->height % 2,
                 err, AMS_E_RANGE, "upload frame size %dx%d: need even sizes in 16..%d",
                 o->width, o->height, AMS_VIDEO_MAX_DIM);
    AMS_VFAIL_IF(!(o->fps > 0 && o->fps <= 1000), err, AMS_E_RANGE, "upload fps %g (0, 1000]",
                 o->fps);
    AMS_VFAIL_IF(!(o->kbps >= 1 && o->kbps <= 1e6), err, AMS_E_RANGE, "upload kbps %g [1, 1e6]",
                 o->kbps);
    AMS_VFAIL_IF(o->passes < 0 || o->passes > 2, err, AMS_E_RANGE, "passes %d: 1 or 2", o->passes);
    for (int i = 0; i < n; i++)
        AMS_VFAIL_IF(!rgb[i], err, AMS_E_INVAL, "upload frame %d is NULL", i);

    ams_uplink_buf *b = calloc(1, sizeof *b);
    AMS_VFAIL_IF(!b, err, AMS_E_NOMEM, "out of memory");
    b->width = o->width;
    b->height = o->height;
    b->fps = o->fps;
    ams_status st;
    if (o->passes == 1) {
        st = encode_run(o, rgb, n, 0, NULL, b, err);
    } else {
        const char *tmp = getenv("TMPDIR");
        char stats[4096];
        snprintf(stats, sizeof stats, "%s/ams-x264-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        int fd = mkstemp(stats);
        if (fd < 0) {
            ams_uplink_buf_free(b);
            AMS_VFAIL(err, AMS_E_IO, "cannot create the two-pass stats file %s", stats);
        }
        close(fd);
        st = encode_run(o, rgb, n, 1, stats, NULL, err);
        if (st == AMS_OK) st = encode_run(o, rgb, n, 2, stats, b, err);
        remove_stats(stats);
    }
    if (st == AMS_OK && b->n_packets != n)
        st = ams_video_fail(err, AMS_E_INTERNAL, "x264 gave %d packets for %d frames", b->n_packets, n);
    if (st != AMS_OK) {
        ams_uplink_buf_free(b);
        return st;
    }
    *out = b;
    return AMS_OK;
}

typedef struct decode_state {
    AVCodecContext *c;
    AVFrame *fr;
    ams_rgb_scaler scaler;
    ams_uplink_frames *f;
    int want_w, want_h, max_frames, cap;
} decode_state;

static ams_status take_frames(decode_state *d, ams_err *err) {
    for (;;) {
        int rc = avcodec_receive_frame(d->c, d->fr);
        if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) return AMS_OK;
        if (rc == AVERROR_INVALIDDATA) continue; /* a damaged frame: skip it */
        if (rc < 0) return ams_av_fail(err, rc, "uplink: decoding failed");
        ams_uplink_frames *f = d->f;
        int w = d->want_w ? d->want_w : d->fr->width, h = d->want_h ? d->want_h : d->fr->height;
        AMS_VFAIL_IF(d->fr->width < 1 || d->fr->height < 1 || d->fr->width > AMS_VIDEO_MAX_DIM ||
                         d->fr->height > AMS_VIDEO_MAX_DIM,
                     err, AMS_E_FORMAT, "uplink: frame size %dx%d out of range", d->fr->width,
                     d->fr->height);
        if (f->n == 0) {
            f->width = w;
            f->height = h;
        }
        AMS_VFAIL_IF(w != f->width || h != f->height, err, AMS_E_FORMAT,
                     "uplink: frame size changes from %dx%d to %dx%d", f->width, f->height, w, h);
        AMS_VFAIL_IF(f->n >= d->max_frames, err, AMS_E_RANGE, "uplink: more than %d frames",
                     d->max_frames);
        size_t frame_bytes, need;
        AMS_VFAIL_IF(!ams_size_mul_ok((size_t)w * 3, (size_t)h, &frame_bytes), err, AMS_E_RANGE,
                     "uplink: frame too large");
        if (f->n == d->cap) {
            int cap = d->cap ? d->cap * 2 : 8;
            if (cap > d->max_frames) cap = d->max_frames;
            AMS_VFAIL_IF(!ams_size_mul_ok(frame_bytes, (size_t)cap, &need), err, AMS_E_RANGE,
                         "uplink: %d frames of %dx%d are too large", cap, w, h);
            uint8_t *p = realloc(f->rgb, need);
            AMS_VFAIL_IF(!p, err, AMS_E_NOMEM, "uplink: out of memory for %d frames", cap);
            f->rgb = p;
            d->cap = cap;
        }
        AMS_TRY(ams_rgb_scale(&d->scaler, d->fr, f->rgb + (size_t)f->n * frame_bytes, w, h,
                              "uplink", err));
        f->n++;
        av_frame_unref(d->fr);
    }
}

ams_status ams_uplink_decode(const uint8_t *data, size_t size, int width, int height,
                             int max_frames, ams_uplink_frames **out, ams_err *err) {
    AMS_VFAIL_IF(!out || (!data && size), err, AMS_E_INVAL, "ams_uplink_decode: NULL argument");
    *out = NULL;
    AMS_VFAIL_IF((width == 0) != (height == 0) || width < 0 || height < 0 ||
                     width > AMS_VIDEO_MAX_DIM || height > AMS_VIDEO_MAX_DIM,
                 err, AMS_E_RANGE, "uplink: output size %dx%d invalid", width, height);
    AMS_VFAIL_IF(max_frames < 1 || max_frames > AMS_UPLINK_MAX_FRAMES, err, AMS_E_RANGE,
                 "uplink: max_frames %d (1..%d)", max_frames, AMS_UPLINK_MAX_FRAMES);
    AMS_VFAIL_IF(size > (size_t)INT32_MAX - AV_INPUT_BUFFER_PADDING_SIZE, err, AMS_E_RANGE,
                 "uplink: %zu bytes is too large", size);
    ams_status st = AMS_OK;
    decode_state d = {.want_w = width, .want_h = height, .max_frames = max_frames};
    AVCodecParserContext *parser = NULL;
    AVPacket *pkt = NULL;
    /* The parser and decoder may read past the end: give them a zero-padded copy. */
    uint8_t *buf = calloc(1, size + AV_INPUT_BUFFER_PADDING_SIZE);
    const AVCodec *codec = avcodec_find_decoder(AV_CODEC_ID_H264);
    d.f = calloc(1, sizeof *d.f);
    if (!codec) {
        st = ams_video_fail(err, AMS_E_UNSUPPORTED, "this FFmpeg has no H.264 decoder");
        goto done;
    }
    parser = av_parser_init(AV_CODEC_ID_H264);
    d.c = avcodec_alloc_context3(codec);
    d.fr = av_frame_alloc();
    pkt = av_packet_alloc();
    if (!buf || !d.f || !parser || !d.c || !d.fr || !pkt) {
        st = ams_video_fail(err, AMS_E_NOMEM, "uplink: out of memory");
        goto done;
    }
    if (size) memcpy(buf, data, size);
    d.c->thread_count = 1;
    d.c->max_pixels = AMS_UPLINK_MAX_PIXELS; /* bounds what a hostile SPS can make us allocate */
    int rc = avcodec_open2(d.c, codec, NULL);
    if (rc < 0) {
        st = ams_av_fail(err, rc, "uplink: cannot open the H.264 decoder");
        goto done;
    }
    size_t off = 0;
    for (;;) {
        int left = (int)(size - off);
        int used = av_parser_parse2(parser, d.c, &pkt->data, &pkt->size, buf + off, left,
                                    AV_NOPTS_VALUE, AV_NOPTS_VALUE, 0);
        if (used < 0) {
            st = ams_av_fail(err, used, "uplink: H.264 parse error");
            goto done;
        }
        off += (size_t)used;
        if (pkt->size > 0) {
            rc = avcodec_send_packet(d.c, pkt);
            if (rc < 0 && rc != AVERROR_INVALIDDATA && rc != AVERROR(EAGAIN)) {
                st = ams_av_fail(err, rc, "uplink: decoding failed");
                goto done;
            }
            if ((st = take_frames(&d, err)) != AMS_OK) goto done;
        }
        if (left == 0) break; /* that call flushed the parser */
    }
    avcodec_send_packet(d.c, NULL);
    if ((st = take_frames(&d, err)) != AMS_OK) goto done;
    if (d.f->n == 0) st = ams_video_fail(err, AMS_E_FORMAT, "uplink: no decodable H.264 frame in %zu bytes", size);
done:
    ams_rgb_scaler_reset(&d.scaler);
    av_packet_free(&pkt);
    av_frame_free(&d.fr);
    avcodec_free_context(&d.c);
    av_parser_close(parser);
    free(buf);
    if (st != AMS_OK) {
        ams_uplink_frames_free(d.f);
        return st;
    }
    *out = d.f;
    return AMS_OK;
}
