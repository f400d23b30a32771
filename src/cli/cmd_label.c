/* cmd_label.c - `ams label`: runs a teacher on every frame (or R per second) of a video and
 * appends the label planes, with the frames' timestamps, to a label file; resumable. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ams/label_store.h"
#include "ams/video.h"
#include "cli/cli_common.h"
#include "cli/cli_model.h"
#include "cli/cli_segmenter.h"
#include "cli/cli_video.h"
#include "cli/commands.h"

static const char *const HELP =
    "usage: ams label --teacher MODEL --video V --output LABELS [--fps R] [--start S]\n"
    "                 [--seconds T] [--width W --height H] [--teacher-width TW --teacher-height TH]\n"
    "                 [--threshold X] [--feed NAME=VALUE ...] [--output-name NAME]\n"
    "                 [--image-fps F] [--threads N] [--backend cpu|ref]\n"
    "                 [--weights W.safetensors --classes C --os 8|16]   (an --arch teacher)\n"
    "  Runs MODEL (rvm, selfie, a TF.js model.json, or deeplabv3-mnv2 / deeplabv3plus-xception65\n"
    "  with --weights) on every frame of V, or on the frame shown at t = S + k/R with --fps, and\n"
    "  appends one label plane per frame (stamped with the frame's pts) to LABELS. Labels are\n"
    "  W x H (default 256x192, the size the sim evaluates at); the teacher sees the frame at\n"
    "  TW x TH (default W x H, same aspect ratio), its output sampled down by centre-nearest.\n"
    "  One-channel outputs (rvm's alpha, selfie's probability): label 1 where value > X (0.5),\n"
    "  else 0; logits: argmax.\n"
    "  Resumable: Ctrl-C stops after the frame in flight; rerunning the same command continues\n"
    "  after the last stored frame (the settings must match those stored in LABELS).\n"
    "  The last stdout line is JSON: frames, new, resumed, width, height, classes,\n"
    "  teacher_ms_per_frame, bytes_per_frame, fraction_1, output.\n";

typedef struct label_args {
    const char *teacher, *video, *output;
    double fps, start, seconds, image_fps, threshold;
    long width, height, tw, th;
    char *feeds[CLI_MAX_FEEDS];
    int nfeeds;
    cli_seg_opts so;
} label_args;

static int parse(int argc, char **argv, label_args *a) {
    const char *cmd = "label";
    memset(a, 0, sizeof *a);
    a->seconds = -1;
    a->threshold = 0.5;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
            fputs(HELP, stdout);
            return -1;
        }
        int dl = cli_deeplab_flag(cmd, &a->so.deeplab, argc, argv, &i);
        if (dl < 0) return CLI_USAGE;
        if (dl > 0) continue;
        if (i + 1 >= argc) return cli_usage_error(cmd, "unknown or incomplete option '%s'", f);
        char *v = argv[++i];
        int ok = 1;
        if (!strcmp(f, "--teacher")) a->teacher = v;
        else if (!strcmp(f, "--video")) a->video = v;
        else if (!strcmp(f, "--output")) a->output = v;
        else if (!strcmp(f, "--output-name")) a->so.output_name = v;
        else if (!strcmp(f, "--fps")) ok = cli_double(v, 1e-3, 1000, &a->fps);
        else if (!strcmp(f, "--start")) ok = cli_double(v, 0, 1e9, &a->start);
        else if (!strcmp(f, "--seconds")) ok = cli_double(v, 1e-3, 1e9, &a->seconds);
        else if (!strcmp(f, "--image-fps")) ok = cli_double(v, 1e-3, 1000, &a->image_fps);
        else if (!strcmp(f, "--threshold")) ok = cli_double(v, -1e9, 1e9, &a->threshold);
        else if (!strcmp(f, "--width")) ok = cli_int(v, 8, 16384, &a->width);
        else if (!strcmp(f, "--height")) ok = cli_int(v, 8, 16384, &a->height);
        else if (!strcmp(f, "--teacher-width")) ok = cli_int(v, 8, 16384, &a->tw);
        else if (!strcmp(f, "--teacher-height")) ok = cli_int(v, 8, 16384, &a->th);
        else if (!strcmp(f, "--feed")) {
            if (a->nfeeds >= CLI_MAX_FEEDS) return cli_usage_error(cmd, "more than %d --feed", CLI_MAX_FEEDS);
            a->feeds[a->nfeeds++] = v;
        } else return cli_usage_error(cmd, "unknown option '%s'", f);
        if (!ok) return cli_usage_error(cmd, "%s: bad value '%s'", f, v);
    }
    if (!a->teacher || !a->video || !a->output)
        return cli_usage_error(cmd, "--teacher, --video and --output are required");
    if ((a->width == 0) != (a->height == 0))
        return cli_usage_error(cmd, "give both --width and --height, or neither");
    if ((a->tw == 0) != (a->th == 0))
        return cli_usage_error(cmd, "give both --teacher-width and --teacher-height, or neither");
    if (!a->width) a->width = 256, a->height = 192;
    if (!a->tw) a->tw = a->width, a->th = a->height;
    if (a->tw * a->height != a->th * a->width)
        return cli_usage_error(cmd, "the teacher size %ldx%ld must have the aspect ratio of the "
                               "label size %ldx%ld", a->tw, a->th, a->width, a->height);
    if ((long long)a->width * a->height > (long long)AMS_LABEL_MAX_PIXELS)
        return cli_usage_error(cmd, "label size %ldx%ld too large", a->width, a->height);
    a->so.model = a->teacher;
    a->so.feeds = a->feeds;
    a->so.nfeeds = a->nfeeds;
    a->so.width = (int)a->tw;
    a->so.height = (int)a->th;
    a->so.threshold = a->threshold;
    a->so.backend = a->so.deeplab.backend;
    return 0;
}

/* Copies s into dst with the characters that would break the meta JSON replaced. */
static void json_safe(char *dst, size_t cap, const char *s) {
    size_t n = 0;
    for (; *s && n + 1 < cap; s++) dst[n++] = (*s == '"' || *s == '\\' || (unsigned char)*s < 0x20) ? '_' : *s;
    dst[n] = 0;
}

/* The value of "key" in our own flat meta JSON (values end at ', "' or '}'). */
static void meta_value(const char *meta, const char *key, char *out, size_t cap) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\": ", key);
    const char *p = strstr(meta, pat);
    out[0] = 0;
    if (!p) {
        snprintf(out, cap, "(none)");
        return;
    }
    p += strlen(pat);
    const char *e = strstr(p, ", \"");
    if (!e) e = strrchr(p, '}');
    size_t n = e ? (size_t)(e - p) : strlen(p);
    if (n >= cap) n = cap - 1;
    memcpy(out, p, n);
    out[n] = 0;
}

/* A clear line when LABELS exists with other settings than this run's (else AMS_OK; a file
 * that is not readable as labels is left to the writer's own checks). */
static ams_status check_resume(const char *path, const ams_label_info *want, ams_err *err) {
    struct stat st;
    if (stat(path, &st) != 0 || st.st_size == 0) return AMS_OK;
    ams_label_reader *r = NULL;
    ams_err ignore = {0};
    if (ams_label_reader_open(&r, path, &ignore) != AMS_OK) return AMS_OK;
    const ams_label_info *have = ams_label_reader_info(r);
    char what[512] = "";
    if (have->width != want->width || have->height != want->height)
        snprintf(what, sizeof what, "label size %dx%d there, %dx%d now", have->width, have->height,
                 want->width, want->height);
    else if (have->classes != want->classes)
        snprintf(what, sizeof what, "%d classes there, %d now", have->classes, want->classes);
    else {
        static const char *const keys[] = {"teacher", "video", "video_fps", "fps", "teacher_size"};
        for (size_t k = 0; k < sizeof keys / sizeof keys[0] && !what[0]; k++) {
            char a[240], b[240];
            meta_value(have->meta, keys[k], a, sizeof a);
            meta_value(want->meta, keys[k], b, sizeof b);
            if (strcmp(a, b)) snprintf(what, sizeof what, "%s %s there, %s now", keys[k], a, b);
        }
        if (!what[0] && strcmp(have->meta, want->meta)) snprintf(what, sizeof what, "meta differs");
    }
    ams_label_reader_free(r);
    if (what[0])
        return ams_err_set(err, AMS_E_INVAL, "%s holds labels made with other settings (%s); rerun "
                           "with the same settings or choose another --output", path, what);
    return AMS_OK;
}

int ams_cmd_label(int argc, char **argv) {
    const char *cmd = "label";
    label_args a;
    int prc = parse(argc, argv, &a);
    if (prc < 0) return CLI_OK;
    if (prc > 0) return prc;
    cli_video_quiet_ffmpeg();

    ams_err err = {0};
    cli_segmenter *seg = NULL;
    ams_video_reader *r = NULL;
    ams_label_writer *w = NULL;
    uint8_t *plane = NULL;
    cli_progress pr = {0};
    int rc = cli_segmenter_open(cmd, &a.so, &seg);
    if (rc != CLI_OK) return rc;
    rc = CLI_FAIL;
    ams_video_opts vo = {.width = (int)a.tw, .height = (int)a.th, .image_fps = a.image_fps};
    if (ams_video_open(&r, a.video, &vo, &err) != AMS_OK) goto fail;
    const ams_video_info *vi = ams_video_info_get(r);
    if (vi->kind == AMS_VIDEO_CAMERA && a.seconds <= 0) {
        rc = cli_usage_error(cmd, "a camera needs --seconds");
        goto done;
    }

    ams_label_info info = {.width = (int)a.width, .height = (int)a.height,
                           .classes = cli_segmenter_classes(seg)};
    char teacher[512], video[256], fps[32];
    json_safe(teacher, sizeof teacher, cli_segmenter_desc(seg));
    const char *vbase = strrchr(a.video, '/') ? strrchr(a.video, '/') + 1 : a.video;
    if (!*vbase) vbase = a.video; /* a folder given as "seq/" */
    json_safe(video, sizeof video, vbase);
    if (a.fps > 0) snprintf(fps, sizeof fps, "%g", a.fps);
    else snprintf(fps, sizeof fps, "\"all\"");
    snprintf(info.meta, sizeof info.meta,
             "{\"tool\": \"ams label\", \"teacher\": \"%s\", \"video\": \"%s\", \"video_fps\": %g, "
             "\"fps\": %s, \"teacher_size\": \"%ldx%ld\"}", teacher, video, vi->fps, fps, a.tw, a.th);
    if (check_resume(a.output, &info, &err) != AMS_OK) goto fail;
    if (ams_label_writer_open(&w, a.output, &info, &err) != AMS_OK) goto fail;
    if (ams_label_writer_dropped(w))
        fprintf(stderr, "ams %s: dropped %llu bytes of an incomplete last frame\n", cmd,
                (unsigned long long)ams_label_writer_dropped(w));
    struct stat st0;
    off_t size0 = stat(a.output, &st0) == 0 ? st0.st_size : 0;
    long resumed = (long)ams_label_writer_count(w);
    double last = ams_label_writer_last_pts(w);
    if (resumed) fprintf(stderr, "ams %s: resuming after %ld frames (t = %.3f s)\n", cmd, resumed, last);
    plane = malloc((size_t)a.width * (size_t)a.height);
    if (!plane) {
        ams_err_set(&err, AMS_E_NOMEM, "out of memory");
        goto fail;
    }

    double end = a.seconds > 0 ? a.start + a.seconds : INFINITY;
    double stop = vi->duration > 0 && vi->duration < end ? vi->duration : end;
    double span = isfinite(stop) ? stop - a.start : -1;
    long total = -1; /* samples (or frames) in the window, for the ETA */
    if (span > 0 && a.fps > 0) total = (long)ceil(span * a.fps - 1e-9);
    else if (span > 0 && vi->fps > 0) total = (long)ceil(span * vi->fps - 1e-9);
    long k = 0;
    if (a.fps > 0) {
        if (isfinite(last) && last > a.start) k = (long)floor((last - a.start) * a.fps);
        /* jump to the first sample not done instead of decoding up to it */
        if (a.start + (double)k / a.fps > 0 && vi->kind != AMS_VIDEO_CAMERA &&
            ams_video_seek(r, a.start + (double)k / a.fps, &err) != AMS_OK)
            goto fail;
    } else {
        double t = isfinite(last) && last > a.start ? last : a.start;
        if (t > 0 && vi->kind != AMS_VIDEO_CAMERA && ams_video_seek(r, t, &err) != AMS_OK) goto fail;
    }

    cli_interrupt_install();
    cli_progress_start(&pr, cmd, "frames");
    long added = 0;
    double teacher_s = 0, ones = 0, last_sync = cli_now();
    while (!cli_interrupted()) {
        ams_video_frame f;
        if (a.fps > 0) {
            double t = a.start + (double)k / a.fps;
            if (t >= end - 1e-9) break;
            if (ams_video_read_at(r, t, &f, &err) != AMS_OK) goto fail;
            k++;
        } else {
            if (ams_video_read(r, &f, &err) != AMS_OK) goto fail;
        }
        if (!f.rgb || f.pts >= end - 1e-6) break;
        if (f.pts <= last + 1e-9 || f.pts < a.start - 1e-6) continue; /* done before, or repeated */
        double t0 = cli_now();
        if (cli_segmenter_run(seg, f.rgb, plane, (int)a.width, (int)a.height, &err) != AMS_OK) goto fail;
        teacher_s += cli_now() - t0;
        if (ams_label_writer_append(w, f.pts, plane, &err) != AMS_OK) goto fail;
        last = f.pts;
        added++;
        size_t n1 = 0, np = (size_t)a.width * (size_t)a.height;
        for (size_t i = 0; i < np; i++) n1 += plane[i] == 1;
        ones += (double)n1 / (double)np;
        if (cli_now() - last_sync > 5) { /* bound what a power loss can take */
            if (ams_label_writer_sync(w, &err) != AMS_OK) goto fail;
            last_sync = cli_now();
        }
        cli_progress_update(&pr, added, total > resumed ? total - resumed : -1);
    }
    cli_progress_end(&pr);
    int stopped = cli_interrupted();
    if (stopped) fprintf(stderr, "ams %s: interrupted: %ld new frames kept; rerun to continue\n", cmd, added);
    if (ams_video_warning(r)) fprintf(stderr, "ams %s: warning: %s\n", cmd, ams_video_warning(r));
    long frames = (long)ams_label_writer_count(w);
    if (ams_label_writer_close(w, &err) != AMS_OK) goto fail;
    struct stat st1;
    off_t size1 = stat(a.output, &st1) == 0 ? st1.st_size : size0;
    if (frames == 0) fprintf(stderr, "ams %s: warning: no frame in the requested window\n", cmd);
    printf("{\"frames\": %ld, \"new\": %ld, \"resumed\": %ld, \"width\": %ld, \"height\": %ld, "
           "\"classes\": %d, \"teacher_ms_per_frame\": %.1f, \"bytes_per_frame\": %.1f, "
           "\"fraction_1\": %.4f, \"output\": ",
           frames, added, resumed, a.width, a.height, info.classes,
           added ? 1e3 * teacher_s / (double)added : 0.0,
           added ? (double)(size1 - size0) / (double)added : 0.0, added ? ones / (double)added : 0.0);
    cli_json_string(stdout, a.output);
    printf("}\n");
    rc = stopped ? 130 : CLI_OK;
    goto done;
fail:
    cli_progress_end(&pr);
    rc = cli_fail(cmd, &err, NULL);
done:
    ams_label_writer_free(w);
    ams_video_free(r);
    cli_segmenter_free(seg);
    free(plane);
    return rc;
}
