/* cmd_segment.c - `ams segment`: people (or class) masks of an image or a video with a model,
 * blended over the frames: a PNG of one frame, or an H.264 .mp4 of the video. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ams/overlay.h"
#include "ams/video.h"
#include "ams/video_out.h"
#include "cli/cli_common.h"
#include "cli/cli_model.h"
#include "cli/cli_segmenter.h"
#include "cli/cli_video.h"
#include "cli/commands.h"

static const char *const HELP =
    "usage: ams segment --model M --input IMG|VIDEO --output OUT.png|OUT.mp4 [--width W --height H]\n"
    "                   [--threshold X] [--alpha A] [--time T] [--start S] [--seconds T] [--fps R]\n"
    "                   [--feed NAME=VALUE ...] [--output-name NAME] [--crf Q] [--image-fps F]\n"
    "                   [--threads N] [--backend cpu|ref]\n"
    "                   [--weights W.safetensors --classes C --os 8|16]   (an --arch model)\n"
    "  Runs M (selfie, rvm, a TF.js model.json, or deeplabv3-mnv2 / deeplabv3plus-xception65 with\n"
    "  --weights) on the input at W x H (default: the input's aspect ratio, longer side 512 at\n"
    "  most, even; scale to fill, centre crop) and blends the mask over the frame with opacity\n"
    "  A (0.5): one-channel outputs are 'person' where value > X (0.5), drawn red; logits:\n"
    "  argmax, Cityscapes colours.\n"
    "  OUT.png: one frame (an image, or the first video frame at or after --time T, default 0).\n"
    "  OUT.mp4: every frame (or R per second) from S for T seconds, H.264 (CRF Q, default 23).\n"
    "  The last stdout line is JSON: frames, width, height, classes, fraction_1, ms_per_frame, output.\n";

typedef struct seg_args {
    const char *model, *input, *output;
    double threshold, alpha, time, start, seconds, fps, image_fps;
    long width, height, crf, threads;
    char *feeds[CLI_MAX_FEEDS];
    int nfeeds;
    cli_seg_opts so;
} seg_args;

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcasecmp(s + n - m, suffix);
}

static int parse(int argc, char **argv, seg_args *a) {
    const char *cmd = "segment";
    memset(a, 0, sizeof *a);
    a->threshold = 0.5;
    a->alpha = 0.5;
    a->seconds = -1;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
            fputs(HELP, stdout);
            return -1;
        }
        if (!strcmp(f, "--threads")) { /* also the x264 threads, so not left to the model flags */
            if (i + 1 >= argc || !cli_int(argv[i + 1], 1, 1024, &a->threads))
                return cli_usage_error(cmd, "--threads needs a number in 1..1024");
            i++;
            continue;
        }
        int dl = cli_deeplab_flag(cmd, &a->so.deeplab, argc, argv, &i);
        if (dl < 0) return CLI_USAGE;
        if (dl > 0) continue;
        if (i + 1 >= argc) return cli_usage_error(cmd, "unknown or incomplete option '%s'", f);
        char *v = argv[++i];
        int ok = 1;
        if (!strcmp(f, "--model")) a->model = v;
        else if (!strcmp(f, "--input")) a->input = v;
        else if (!strcmp(f, "--output")) a->output = v;
        else if (!strcmp(f, "--output-name")) a->so.output_name = v;
        else if (!strcmp(f, "--threshold")) ok = cli_double(v, -1e9, 1e9, &a->threshold);
        else if (!strcmp(f, "--alpha")) ok = cli_double(v, 0, 1, &a->alpha);
        else if (!strcmp(f, "--time")) ok = cli_double(v, 0, 1e9, &a->time);
        else if (!strcmp(f, "--start")) ok = cli_double(v, 0, 1e9, &a->start);
        else if (!strcmp(f, "--seconds")) ok = cli_double(v, 1e-3, 1e9, &a->seconds);
        else if (!strcmp(f, "--fps")) ok = cli_double(v, 1e-3, 1000, &a->fps);
        else if (!strcmp(f, "--image-fps")) ok = cli_double(v, 1e-3, 1000, &a->image_fps);
        else if (!strcmp(f, "--width")) ok = cli_int(v, 16, AMS_VIDEO_MAX_DIM, &a->width);
        else if (!strcmp(f, "--height")) ok = cli_int(v, 16, AMS_VIDEO_MAX_DIM, &a->height);
        else if (!strcmp(f, "--crf")) ok = cli_int(v, 1, 51, &a->crf);
        else if (!strcmp(f, "--feed")) {
            if (a->nfeeds >= CLI_MAX_FEEDS) return cli_usage_error(cmd, "more than %d --feed", CLI_MAX_FEEDS);
            a->feeds[a->nfeeds++] = v;
        } else return cli_usage_error(cmd, "unknown option '%s'", f);
        if (!ok) return cli_usage_error(cmd, "%s: bad value '%s'", f, v);
    }
    if (!a->model || !a->input || !a->output)
        return cli_usage_error(cmd, "--model, --input and --output are required");
    if ((a->width == 0) != (a->height == 0))
        return cli_usage_error(cmd, "give both --width and --height, or neither");
    if (a->width % 2 || a->height % 2) return cli_usage_error(cmd, "--width and --height must be even");
    if (!ends_with(a->output, ".png") && !ends_with(a->output, ".mp4"))
        return cli_usage_error(cmd, "--output must end in .png or .mp4");
    a->so.model = a->model;
    a->so.feeds = a->feeds;
    a->so.nfeeds = a->nfeeds;
    a->so.threshold = a->threshold;
    a->so.backend = a->so.deeplab.backend;
    a->so.deeplab.threads = a->threads;
    return 0;
}

/* The default size: the source's aspect ratio, the longer side at most 512, even. */
static ams_status default_size(const char *input, double image_fps, long *w, long *h, ams_err *err) {
    ams_video_reader *r = NULL;
    ams_video_opts vo = {.image_fps = image_fps};
    AMS_TRY(ams_video_open(&r, input, &vo, err));
    const ams_video_info *in = ams_video_info_get(r);
    double sw = in->src_width, sh = in->src_height, s = 512.0 / (sw > sh ? sw : sh);
    if (s > 1) s = 1;
    *w = (long)floor(sw * s / 2 + 0.5) * 2;
    *h = (long)floor(sh * s / 2 + 0.5) * 2;
    ams_video_free(r);
    if (*w < 16 || *h < 16)
        return ams_err_set(err, AMS_E_RANGE, "%s: %gx%g is too small; give --width/--height", input, sw, sh);
    return AMS_OK;
}

int ams_cmd_segment(int argc, char **argv) {
    const char *cmd = "segment";
    seg_args a;
    int prc = parse(argc, argv, &a);
    if (prc < 0) return CLI_OK;
    if (prc > 0) return prc;
    cli_video_quiet_ffmpeg();

    ams_err err = {0};
    cli_segmenter *seg = NULL;
    ams_video_reader *r = NULL;
    ams_mp4_writer *mp4 = NULL;
    uint8_t *plane = NULL, *out = NULL;
    cli_progress pr = {0};
    int rc = CLI_FAIL, png = ends_with(a.output, ".png");
    if (!a.width && default_size(a.input, a.image_fps, &a.width, &a.height, &err) != AMS_OK)
        return cli_fail(cmd, &err, NULL);
    a.so.width = (int)a.width;
    a.so.height = (int)a.height;
    rc = cli_segmenter_open(cmd, &a.so, &seg);
    if (rc != CLI_OK) return rc;
    rc = CLI_FAIL;
    int w = (int)a.width, h = (int)a.height;
    ams_video_opts vo = {.width = w, .height = h, .image_fps = a.image_fps, .threads = (int)a.threads};
    if (ams_video_open(&r, a.input, &vo, &err) != AMS_OK) goto fail;
    const ams_video_info *in = ams_video_info_get(r);
    if (in->kind == AMS_VIDEO_CAMERA && !png && a.seconds <= 0) {
        rc = cli_usage_error(cmd, "a camera needs --seconds");
        goto done;
    }
    ams_palette pal;
    if (cli_segmenter_classes(seg) == 2) ams_palette_binary(&pal);
    else ams_palette_cityscapes(&pal);
    plane = malloc((size_t)w * (size_t)h);
    out = malloc((size_t)w * (size_t)h * 3);
    if (!plane || !out) {
        ams_err_set(&err, AMS_E_NOMEM, "out of memory");
        goto fail;
    }
    double fps = a.fps > 0 ? a.fps : in->fps > 0 ? in->fps : 30;
    double start = png ? a.time : a.start;
    double end = !png && a.seconds > 0 ? start + a.seconds : INFINITY;
    long total = -1;
    if (!png) {
        double stop = in->duration > 0 && in->duration < end ? in->duration : end;
        if (isfinite(stop) && stop > start) total = (long)ceil((stop - start) * fps - 1e-9);
        ams_mp4_opts mo = {.width = w, .height = h, .fps = fps, .crf = (int)a.crf, .threads = (int)a.threads};
        if (ams_mp4_writer_open(&mp4, a.output, &mo, &err) != AMS_OK) goto fail;
        cli_interrupt_install();
    }
    if (a.fps <= 0 && start > 0 && ams_video_seek(r, start, &err) != AMS_OK) goto fail;
    cli_progress_start(&pr, cmd, "frames");
    long frames = 0;
    double ones = 0, model_s = 0;
    while (!cli_interrupted()) {
        ams_video_frame f;
        if (a.fps > 0) {
            double t = start + (double)frames / a.fps;
            if (t >= end - 1e-9) break;
            if (ams_video_read_at(r, t, &f, &err) != AMS_OK) goto fail;
        } else {
            if (ams_video_read(r, &f, &err) != AMS_OK) goto fail;
            if (f.rgb && f.pts < start - 1e-6) continue;
        }
        if (!f.rgb || f.pts >= end - 1e-6) break;
        double t0 = cli_now();
        if (cli_segmenter_run(seg, f.rgb, plane, w, h, &err) != AMS_OK) goto fail;
        model_s += cli_now() - t0;
        size_t n1 = 0, np = (size_t)w * (size_t)h;
        for (size_t i = 0; i < np; i++) n1 += plane[i] == 1;
        ones += (double)n1 / (double)np;
        ams_overlay_blend(out, f.rgb, w, h, plane, w, h, &pal, (float)a.alpha);
        frames++;
        if (png) {
            if (ams_png_write_rgb(a.output, out, w, h, &err) != AMS_OK) goto fail;
            break;
        }
        if (ams_mp4_writer_add_rgb(mp4, out, frames - 1, &err) != AMS_OK) goto fail;
        cli_progress_update(&pr, frames, total);
    }
    cli_progress_end(&pr);
    if (cli_interrupted())
        fprintf(stderr, "ams %s: interrupted: keeping the %ld frames done so far\n", cmd, frames);
    if (ams_video_warning(r)) fprintf(stderr, "ams %s: warning: %s\n", cmd, ams_video_warning(r));
    if (frames == 0) {
        ams_err_set(&err, AMS_E_RANGE, "%s: no frame at or after %g s", a.input, start);
        goto fail;
    }
    if (mp4 && ams_mp4_writer_close(mp4, &err) != AMS_OK) goto fail;
    printf("{\"frames\": %ld, \"width\": %d, \"height\": %d, \"classes\": %d, \"fraction_1\": %.4f, "
           "\"ms_per_frame\": %.1f, \"output\": ", frames, w, h, cli_segmenter_classes(seg),
           ones / (double)frames, 1e3 * model_s / (double)frames);
    cli_json_string(stdout, a.output);
    printf("}\n");
    rc = cli_interrupted() ? 130 : CLI_OK;
    goto done;
fail:
    cli_progress_end(&pr);
    rc = cli_fail(cmd, &err, NULL);
done:
    ams_mp4_writer_free(mp4);
    ams_video_free(r);
    cli_segmenter_free(seg);
    free(plane);
    free(out);
    return rc;
}
