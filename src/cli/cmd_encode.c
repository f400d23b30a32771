/* cmd_encode.c - `ams encode`: samples a video at R fps and encodes the samples as the uplink
 * does (x264 at B Kbps of video time, one stream per upload period), reports the measured
 * bitrate, PSNR of the decoded (lossy) frames, and writes them as one .mp4. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ams/uplink.h"
#include "ams/video.h"
#include "ams/video_out.h"
#include "cli/cli_common.h"
#include "cli/cli_video.h"
#include "cli/commands.h"

static const char *const HELP =
    "usage: ams encode --video V --fps R --kbps B --output OUT.mp4 [--start S] [--seconds T]\n"
    "                  [--width W --height H] [--period P] [--passes 1|2] [--preset X]\n"
    "                  [--image-fps F] [--threads N]\n"
    "  Samples V at R frames per second of video (the frame shown at t = S + k/R), groups the\n"
    "  samples into uploads of P seconds of video (default 10), and encodes each upload as its\n"
    "  own H.264 stream with x264 at B Kbps of video time: an upload covering P s gets B*P kbit\n"
    "  (two-pass by default, as the reference did). OUT.mp4 holds the uploads back to back.\n"
    "  V: a video file, a folder or printf pattern of PNG/JPEG frames (at --image-fps, default\n"
    "  30), or a camera /dev/videoN (then give --seconds).\n"
    "  --width/--height: frame size (even); scale to fill, centre crop. Default: the source's.\n"
    "  Last stdout line, JSON: kbps (measured: stream bytes * 8 / seconds of video), target_kbps,\n"
    "  psnr_db (decoded vs input, all frames), frames, uploads, bits_per_upload, seconds, ...\n";

typedef struct enc_args {
    const char *video, *output, *preset;
    double fps, kbps, start, seconds, period, image_fps;
    long width, height, passes, threads;
} enc_args;

static int parse(int argc, char **argv, enc_args *a) {
    const char *cmd = "encode";
    *a = (enc_args){.seconds = -1, .period = 10, .passes = 2};
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
            fputs(HELP, stdout);
            return -1;
        }
        if (i + 1 >= argc) return cli_usage_error(cmd, "unknown or incomplete option '%s'", f);
        const char *v = argv[++i];
        int ok = 1;
        if (!strcmp(f, "--video")) a->video = v;
        else if (!strcmp(f, "--output")) a->output = v;
        else if (!strcmp(f, "--preset")) a->preset = v;
        else if (!strcmp(f, "--fps")) ok = cli_double(v, 1e-3, 1000, &a->fps);
        else if (!strcmp(f, "--kbps")) ok = cli_double(v, 1, 1e6, &a->kbps);
        else if (!strcmp(f, "--start")) ok = cli_double(v, 0, 1e9, &a->start);
        else if (!strcmp(f, "--seconds")) ok = cli_double(v, 1e-3, 1e9, &a->seconds);
        else if (!strcmp(f, "--period")) ok = cli_double(v, 1e-3, 1e6, &a->period);
        else if (!strcmp(f, "--image-fps")) ok = cli_double(v, 1e-3, 1000, &a->image_fps);
        else if (!strcmp(f, "--width")) ok = cli_int(v, 16, AMS_VIDEO_MAX_DIM, &a->width);
        else if (!strcmp(f, "--height")) ok = cli_int(v, 16, AMS_VIDEO_MAX_DIM, &a->height);
        else if (!strcmp(f, "--passes")) ok = cli_int(v, 1, 2, &a->passes);
        else if (!strcmp(f, "--threads")) ok = cli_int(v, 0, 1024, &a->threads);
        else return cli_usage_error(cmd, "unknown option '%s'", f);
        if (!ok) return cli_usage_error(cmd, "%s: bad value '%s'", f, v);
    }
    if (!a->video || !a->output) return cli_usage_error(cmd, "--video and --output are required");
    if (!(a->fps > 0)) return cli_usage_error(cmd, "--fps is required");
    if (!(a->kbps > 0)) return cli_usage_error(cmd, "--kbps is required");
    if ((a->width == 0) != (a->height == 0))
        return cli_usage_error(cmd, "give both --width and --height, or neither");
    if (a->width % 2 || a->height % 2)
        return cli_usage_error(cmd, "--width and --height must be even (H.264 4:2:0)");
    return 0;
}

/* Opens the source at the requested size, or at its own size rounded down to even. */
static ams_status open_video(const enc_args *a, ams_video_reader **r, ams_err *err) {
    ams_video_opts o = {.width = (int)a->width, .height = (int)a->height,
                        .image_fps = a->image_fps, .threads = (int)a->threads};
    AMS_TRY(ams_video_open(r, a->video, &o, err));
    const ams_video_info *in = ams_video_info_get(*r);
    if (in->width % 2 == 0 && in->height % 2 == 0) return AMS_OK;
    o.width = in->width & ~1;
    o.height = in->height & ~1;
    ams_video_free(*r);
    *r = NULL;
    if (o.width < 16 || o.height < 16)
        return ams_err_set(err, AMS_E_RANGE, "%s: frame size too small to encode", a->video);
    return ams_video_open(r, a->video, &o, err);
}

int ams_cmd_encode(int argc, char **argv) {
    const char *cmd = "encode";
    enc_args a;
    int prc = parse(argc, argv, &a);
    if (prc < 0) return CLI_OK; /* --help */
    if (prc > 0) return prc;
    cli_video_quiet_ffmpeg();
    cli_interrupt_install();

    ams_err err = {0};
    ams_video_reader *r = NULL;
    ams_mp4_writer *mp4 = NULL;
    uint8_t *batch = NULL;
    const uint8_t **ptrs = NULL;
    long *bits_up = NULL;
    cli_progress pr = {0};
    int rc = CLI_FAIL;
    if (open_video(&a, &r, &err) != AMS_OK) return cli_fail(cmd, &err, NULL);
    const ams_video_info *in = ams_video_info_get(r);
    int w = in->width, h = in->height;
    double span = a.seconds;
    if (span < 0 && in->duration > 0) span = in->duration - a.start;
    if (span < 0 && in->kind == AMS_VIDEO_CAMERA) {
        ams_video_free(r);
        return cli_usage_error(cmd, "a camera needs --seconds");
    }
    long total = span > 0 ? (long)ceil(span * a.fps - 1e-9) : -1;
    int per_up = (int)lround(a.period * a.fps);
    if (per_up < 1) per_up = 1;
    if (per_up > AMS_UPLINK_MAX_FRAMES) per_up = AMS_UPLINK_MAX_FRAMES;
    size_t fb = (size_t)w * h * 3, bytes;
    if (!ams_size_mul_ok(fb, (size_t)per_up, &bytes) || !(batch = malloc(bytes)) ||
        !(ptrs = malloc(sizeof *ptrs * (size_t)per_up))) {
        ams_err_set(&err, AMS_E_NOMEM, "out of memory for %d frames of %dx%d (lower --period)",
                    per_up, w, h);
        goto fail;
    }
    ams_mp4_opts mo = {.width = w, .height = h, .fps = a.fps};
    if (ams_mp4_writer_open(&mp4, a.output, &mo, &err) != AMS_OK) goto fail;

    ams_uplink_opts uo = {.width = w, .height = h, .fps = a.fps, .kbps = a.kbps,
                          .passes = (int)a.passes, .threads = (int)a.threads, .preset = a.preset};
    cli_progress_start(&pr, cmd, "frames");
    double t_start = cli_now(), sse = 0;
    long frames = 0, uploads = 0, cap_up = 0;
    size_t total_bits = 0;
    int ended = 0;
    while (!ended) {
        int n = 0;
        if (cli_interrupted()) break;
        while (n < per_up && (total < 0 || frames + n < total) && !cli_interrupted()) {
            ams_video_frame f;
            double t = a.start + (double)(frames + n) / a.fps;
            if (ams_video_read_at(r, t, &f, &err) != AMS_OK) goto fail;
            if (!f.rgb) {
                ended = 1;
                break;
            }
            memcpy(batch + fb * (size_t)n, f.rgb, fb);
            ptrs[n] = batch + fb * (size_t)n;
            n++;
            cli_progress_update(&pr, frames + n, total);
        }
        if (total >= 0 && frames + n >= total) ended = 1;
        if (n == 0) break;
        ams_uplink_buf *up = NULL;
        ams_uplink_frames *dec = NULL;
        if (ams_uplink_encode(&uo, ptrs, n, &up, &err) != AMS_OK) goto fail;
        ams_status s = ams_uplink_decode(up->data, up->size, w, h, n, &dec, &err);
        if (s == AMS_OK && dec->n != n)
            s = ams_err_set(&err, AMS_E_INTERNAL, "upload decoded to %d frames, not %d", dec->n, n);
        if (s == AMS_OK) {
            double p = ams_psnr_rgb(batch, dec->rgb, fb * (size_t)n);
            if (isfinite(p)) sse += 65025.0 / pow(10, p / 10) * (double)(fb * (size_t)n);
            s = ams_mp4_writer_add_uplink(mp4, up, frames, &err);
        }
        if (s == AMS_OK && uploads == cap_up) {
            cap_up = cap_up ? 2 * cap_up : 16;
            long *nb = realloc(bits_up, sizeof *nb * (size_t)cap_up);
            if (!nb) s = ams_err_set(&err, AMS_E_NOMEM, "out of memory");
            else bits_up = nb;
        }
        if (s == AMS_OK) {
            bits_up[uploads++] = (long)(up->size * 8);
            total_bits += up->size * 8;
            frames += n;
        }
        ams_uplink_frames_free(dec);
        ams_uplink_buf_free(up);
        if (s != AMS_OK) goto fail;
    }
    cli_progress_end(&pr);
    if (cli_interrupted())
        fprintf(stderr, "ams %s: interrupted: keeping the %ld frames encoded so far\n", cmd, frames);
    if (ams_video_warning(r)) fprintf(stderr, "ams %s: warning: %s\n", cmd, ams_video_warning(r));
    if (frames == 0) {
        ams_err_set(&err, AMS_E_RANGE, "%s: no frames at or after --start %g s", a.video, a.start);
        goto fail;
    }
    if (ams_mp4_writer_close(mp4, &err) != AMS_OK) goto fail;
    double secs = (double)frames / a.fps, kbps = (double)total_bits / secs / 1000.0;
    double mse = sse / ((double)fb * (double)frames);
    double psnr = mse > 0 ? 10 * log10(65025.0 / mse) : 100.0;
    fprintf(stderr, "ams %s: %ld frames in %ld uploads, %.1f kbps (target %g), PSNR %.2f dB -> %s\n",
            cmd, frames, uploads, kbps, a.kbps, psnr, a.output);
    printf("{\"kbps\": %.3f, \"target_kbps\": %g, \"psnr_db\": %.3f, \"frames\": %ld, "
           "\"uploads\": %ld, \"seconds\": %.3f, \"fps\": %g, \"period_s\": %g, \"passes\": %ld, "
           "\"width\": %d, \"height\": %d, \"encode_s\": %.3f, \"bits_per_upload\": [",
           kbps, a.kbps, psnr, frames, uploads, secs, a.fps, a.period, a.passes, w, h,
           cli_now() - t_start);
    for (long i = 0; i < uploads; i++) printf("%s%ld", i ? ", " : "", bits_up[i]);
    printf("]}\n");
    rc = cli_interrupted() ? 130 : CLI_OK;
    goto done;
fail:
    cli_progress_end(&pr);
    rc = cli_fail(cmd, &err, NULL);
done:
    free(bits_up);
    free(ptrs);
    free(batch);
    ams_mp4_writer_free(mp4);
    ams_video_free(r);
    return rc;
}
