/* cmd_overlay.c - `ams overlay`: label masks from a label file blended over a video, written
 * as an H.264 .mp4 (optionally two label files side by side) and one frame as a PNG. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ams/label_store.h"
#include "ams/overlay.h"
#include "ams/video.h"
#include "ams/video_out.h"
#include "cli/cli_common.h"
#include "cli/cli_video.h"
#include "cli/commands.h"

static const char *const HELP =
    "usage: ams overlay --video V --labels L --output OUT.mp4 [--labels2 L2] [--png P.png]\n"
    "                   [--png-time T] [--start S] [--seconds T] [--fps R] [--alpha A]\n"
    "                   [--width W --height H] [--palette auto|cityscapes|binary] [--crf Q]\n"
    "                   [--image-fps F] [--threads N]\n"
    "  Decodes V (every frame, or R per second with --fps) at the labels' size (or W x H; scale\n"
    "  to fill, centre crop) and blends over each frame the label of L shown at its time (the\n"
    "  latest label with pts <= t; none before the first) with opacity A (default 0.5).\n"
    "  --labels2: a second label file drawn on a copy of the frame to the right (student |\n"
    "  teacher). --png: also write the first output frame at or after --png-time (default: the\n"
    "  first frame). Palette auto: binary (0 clear, 1 red) for 2-class labels, else Cityscapes.\n"
    "  The last stdout line is JSON: frames, labelled, width, height, fps, output, png.\n";

typedef struct ov_args {
    const char *video, *labels, *labels2, *output, *png, *palette;
    double png_time, start, seconds, fps, alpha, image_fps;
    long width, height, crf, threads;
} ov_args;

static int parse(int argc, char **argv, ov_args *a) {
    const char *cmd = "overlay";
    *a = (ov_args){.png_time = -1, .seconds = -1, .alpha = 0.5, .palette = "auto"};
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
        else if (!strcmp(f, "--labels")) a->labels = v;
        else if (!strcmp(f, "--labels2")) a->labels2 = v;
        else if (!strcmp(f, "--output")) a->output = v;
        else if (!strcmp(f, "--png")) a->png = v;
        else if (!strcmp(f, "--palette")) a->palette = v;
        else if (!strcmp(f, "--png-time")) ok = cli_double(v, 0, 1e9, &a->png_time);
        else if (!strcmp(f, "--start")) ok = cli_double(v, 0, 1e9, &a->start);
        else if (!strcmp(f, "--seconds")) ok = cli_double(v, 1e-3, 1e9, &a->seconds);
        else if (!strcmp(f, "--fps")) ok = cli_double(v, 1e-3, 1000, &a->fps);
        else if (!strcmp(f, "--alpha")) ok = cli_double(v, 0, 1, &a->alpha);
        else if (!strcmp(f, "--image-fps")) ok = cli_double(v, 1e-3, 1000, &a->image_fps);
        else if (!strcmp(f, "--width")) ok = cli_int(v, 16, AMS_VIDEO_MAX_DIM, &a->width);
        else if (!strcmp(f, "--height")) ok = cli_int(v, 16, AMS_VIDEO_MAX_DIM, &a->height);
        else if (!strcmp(f, "--crf")) ok = cli_int(v, 1, 51, &a->crf);
        else if (!strcmp(f, "--threads")) ok = cli_int(v, 0, 1024, &a->threads);
        else return cli_usage_error(cmd, "unknown option '%s'", f);
        if (!ok) return cli_usage_error(cmd, "%s: bad value '%s'", f, v);
    }
    if (!a->video || !a->labels || !a->output)
        return cli_usage_error(cmd, "--video, --labels and --output are required");
    if ((a->width == 0) != (a->height == 0))
        return cli_usage_error(cmd, "give both --width and --height, or neither");
    if (a->width % 2 || a->height % 2) return cli_usage_error(cmd, "--width and --height must be even");
    if (strcmp(a->palette, "auto") && strcmp(a->palette, "cityscapes") && strcmp(a->palette, "binary"))
        return cli_usage_error(cmd, "--palette: auto, cityscapes or binary");
    return 0;
}

typedef struct mask_src {
    ams_label_reader *r;
    const ams_label_info *in;
    uint8_t *plane;
    int64_t loaded; /* index of the plane in memory, -1 none */
    ams_palette pal;
} mask_src;

static ams_status mask_open(mask_src *m, const char *path, const char *palette, ams_err *err) {
    m->loaded = -1;
    AMS_TRY(ams_label_reader_open(&m->r, path, err));
    m->in = ams_label_reader_info(m->r);
    if (ams_label_reader_dropped(m->r))
        fprintf(stderr, "ams overlay: warning: %s: ignoring %llu bytes of an incomplete last frame\n",
                path, (unsigned long long)ams_label_reader_dropped(m->r));
    if (ams_label_reader_count(m->r) == 0)
        return ams_err_set(err, AMS_E_FORMAT, "%s: holds no complete label frame", path);
    m->plane = malloc((size_t)m->in->width * (size_t)m->in->height);
    if (!m->plane) return ams_err_set(err, AMS_E_NOMEM, "out of memory");
    int binary = !strcmp(palette, "binary") || (!strcmp(palette, "auto") && m->in->classes == 2);
    if (binary) ams_palette_binary(&m->pal);
    else ams_palette_cityscapes(&m->pal);
    return AMS_OK;
}

static void mask_close(mask_src *m) {
    ams_label_reader_free(m->r);
    free(m->plane);
}

/* Blends the label shown at t over frame into out (w x h, row stride ostride pixels). */
static ams_status draw(mask_src *m, double t, const uint8_t *frame, int w, int h, uint8_t *tmp,
                       uint8_t *out, int ostride, float alpha, int *labelled, ams_err *err) {
    int64_t i = ams_label_reader_find(m->r, t);
    const uint8_t *src = frame;
    if (i >= 0) {
        if (i != m->loaded) {
            AMS_TRY(ams_label_reader_read(m->r, i, m->plane,
                                          (size_t)m->in->width * (size_t)m->in->height, err));
            m->loaded = i;
        }
        ams_overlay_blend(tmp, frame, w, h, m->plane, m->in->width, m->in->height, &m->pal, alpha);
        src = tmp;
        *labelled = 1;
    }
    for (int y = 0; y < h; y++)
        memcpy(out + (size_t)y * (size_t)ostride * 3, src + (size_t)y * (size_t)w * 3, (size_t)w * 3);
    return AMS_OK;
}

int ams_cmd_overlay(int argc, char **argv) {
    const char *cmd = "overlay";
    ov_args a;
    int prc = parse(argc, argv, &a);
    if (prc < 0) return CLI_OK;
    if (prc > 0) return prc;
    cli_video_quiet_ffmpeg();
    cli_interrupt_install();

    ams_err err = {0};
    mask_src m1 = {0}, m2 = {0};
    ams_video_reader *r = NULL;
    ams_mp4_writer *mp4 = NULL;
    uint8_t *tmp = NULL, *out = NULL;
    cli_progress pr = {0};
    int rc = CLI_FAIL, png_done = 0;
    long frames = 0, labelled = 0;
    if (mask_open(&m1, a.labels, a.palette, &err) != AMS_OK) goto fail;
    if (a.labels2 && mask_open(&m2, a.labels2, a.palette, &err) != AMS_OK) goto fail;
    int w = a.width ? (int)a.width : m1.in->width & ~1, h = a.height ? (int)a.height : m1.in->height & ~1;
    if (w < 16 || h < 16) {
        ams_err_set(&err, AMS_E_RANGE, "output %dx%d too small; give --width/--height", w, h);
        goto fail;
    }
    ams_video_opts vo = {.width = w, .height = h, .image_fps = a.image_fps, .threads = (int)a.threads};
    if (ams_video_open(&r, a.video, &vo, &err) != AMS_OK) goto fail;
    const ams_video_info *in = ams_video_info_get(r);
    double fps = a.fps > 0 ? a.fps : in->fps > 0 ? in->fps : 30;
    int panes = a.labels2 ? 2 : 1, ow = w * panes;
    size_t fb = (size_t)w * h * 3;
    tmp = malloc(fb);
    out = malloc(fb * (size_t)panes);
    if (!tmp || !out) {
        ams_err_set(&err, AMS_E_NOMEM, "out of memory");
        goto fail;
    }
    ams_mp4_opts mo = {.width = ow, .height = h, .fps = fps, .crf = (int)a.crf, .threads = (int)a.threads};
    if (ams_mp4_writer_open(&mp4, a.output, &mo, &err) != AMS_OK) goto fail;
    if (a.fps <= 0 && a.start > 0 && ams_video_seek(r, a.start, &err) != AMS_OK) goto fail;
    double span = a.seconds > 0 ? a.seconds : (in->duration > 0 ? in->duration - a.start : -1);
    long total = span > 0 ? (long)ceil(span * fps - 1e-9) : -1;
    if (in->kind == AMS_VIDEO_CAMERA && a.seconds <= 0) {
        rc = cli_usage_error(cmd, "a camera needs --seconds");
        goto done;
    }
    double png_t = a.png_time >= 0 ? a.png_time : a.start;
    cli_progress_start(&pr, cmd, "frames");
    while (!cli_interrupted()) {
        ams_video_frame f;
        if (a.fps > 0) {
            if (total >= 0 && frames >= total) break;
            if (ams_video_read_at(r, a.start + (double)frames / a.fps, &f, &err) != AMS_OK) goto fail;
        } else {
            if (ams_video_read(r, &f, &err) != AMS_OK) goto fail;
            if (f.rgb && a.seconds > 0 && f.pts >= a.start + a.seconds - 1e-6) break;
        }
        if (!f.rgb) break;
        int got = 0, got2 = 0;
        if (draw(&m1, f.pts, f.rgb, w, h, tmp, out, ow, (float)a.alpha, &got, &err) != AMS_OK) goto fail;
        if (panes == 2 &&
            draw(&m2, f.pts, f.rgb, w, h, tmp, out + (size_t)w * 3, ow, (float)a.alpha, &got2, &err) != AMS_OK)
            goto fail;
        labelled += got || got2;
        if (ams_mp4_writer_add_rgb(mp4, out, frames, &err) != AMS_OK) goto fail;
        if (a.png && !png_done && f.pts >= png_t - 1e-6) {
            if (ams_png_write_rgb(a.png, out, ow, h, &err) != AMS_OK) goto fail;
            png_done = 1;
        }
        frames++;
        cli_progress_update(&pr, frames, total);
    }
    cli_progress_end(&pr);
    if (cli_interrupted())
        fprintf(stderr, "ams %s: interrupted: keeping the %ld frames done so far\n", cmd, frames);
    if (ams_video_warning(r)) fprintf(stderr, "ams %s: warning: %s\n", cmd, ams_video_warning(r));
    if (frames == 0) {
        ams_err_set(&err, AMS_E_RANGE, "%s: no frames at or after --start %g s", a.video, a.start);
        goto fail;
    }
    if (a.png && !png_done) {
        ams_err_set(&err, AMS_E_RANGE, "--png-time %g s is after the last frame", png_t);
        goto fail;
    }
    if (ams_mp4_writer_close(mp4, &err) != AMS_OK) goto fail;
    if (labelled == 0)
        fprintf(stderr, "ams %s: warning: no frame had a label at or before its time\n", cmd);
    printf("{\"frames\": %ld, \"labelled\": %ld, \"width\": %d, \"height\": %d, \"fps\": %g, "
           "\"output\": ", frames, labelled, ow, h, fps);
    cli_json_string(stdout, a.output);
    printf(", \"png\": ");
    cli_json_string(stdout, a.png);
    printf("}\n");
    rc = cli_interrupted() ? 130 : CLI_OK;
    goto done;
fail:
    cli_progress_end(&pr);
    rc = cli_fail(cmd, &err, NULL);
done:
    ams_mp4_writer_free(mp4);
    ams_video_free(r);
    mask_close(&m1);
    mask_close(&m2);
    free(tmp);
    free(out);
    return rc;
}
