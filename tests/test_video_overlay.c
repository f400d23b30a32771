/* test_video_overlay.c - mask blending against hand-computed pixels, then the `ams overlay`
 * and `ams encode` commands end to end: frame counts by ffprobe, pixel colours of the decoded
 * output, the PNG, the JSON line, exit codes, and no output file left behind on failure. */
#include <dirent.h>
#include <sys/wait.h>
#include <stdint.h>

#include "ams/label_store.h"
#include "ams/overlay.h"
#include "ams/video.h"
#include "check.h"
#include "video_testutil.h"

static int test_blend(void) {
    ams_palette pal;
    ams_palette_cityscapes(&pal);
    CHECK(pal.rgb[11][0] == 220 && pal.rgb[11][1] == 20 && pal.rgb[11][2] == 60); /* person */
    CHECK(pal.draw[0] && !pal.draw[255]);
    /* 4x2 frame, grey 128 / 100; labels 2x1: left person, right ignore */
    uint8_t frame[4 * 2 * 3], out[4 * 2 * 3];
    for (int i = 0; i < 24; i++) frame[i] = (uint8_t)(i < 12 ? 128 : 100);
    const uint8_t labels[2] = {11, 255};
    ams_overlay_blend(out, frame, 4, 2, labels, 2, 1, &pal, 0.5f);
    /* (128 + 220) / 2 = 174, (128 + 20) / 2 = 74, (128 + 60) / 2 = 94; row 1 from 100 */
    const uint8_t want0[3] = {174, 74, 94}, want1[3] = {160, 60, 80};
    for (int x = 0; x < 4; x++)
        for (int k = 0; k < 3; k++) {
            CHECK(out[x * 3 + k] == (x < 2 ? want0[k] : 128));
            CHECK(out[12 + x * 3 + k] == (x < 2 ? want1[k] : 100));
        }
    /* alpha 0 and 1, in place */
    memcpy(out, frame, sizeof frame);
    ams_overlay_blend(out, out, 4, 2, labels, 2, 1, &pal, 1.0f);
    CHECK(out[0] == 220 && out[1] == 20 && out[2] == 60 && out[9] == 128);
    ams_overlay_blend(out, frame, 4, 2, labels, 2, 1, &pal, 0.0f);
    CHECK(!memcmp(out, frame, sizeof frame));
    /* alpha 0.25 against the exact value round(0.75 f + 0.25 c) */
    ams_overlay_blend(out, frame, 4, 2, labels, 2, 1, &pal, 0.25f);
    CHECK(out[0] == (uint8_t)floor(0.75 * 128 + 0.25 * 220 + 0.5));
    CHECK(out[1] == (uint8_t)floor(0.75 * 128 + 0.25 * 20 + 0.5));
    ams_palette_binary(&pal);
    CHECK(!pal.draw[0] && pal.draw[1] && !pal.draw[255]);
    /* generated colours differ from each other */
    for (int i = 19; i < 255; i++)
        CHECK(memcmp(pal.rgb[i], pal.rgb[i - 1], 3) != 0);
    return 0;
}

static const char *ams_bin(void) {
    const char *b = getenv("AMS_BIN");
    static char path[4200];
    if (b && *b) return b;
    snprintf(path, sizeof path, "%s/ams", AMS_BINARY_DIR);
    return path;
}

/* Runs the ams binary with args; returns its exit status and its last stdout line. */
static int run_ams(char *last, size_t cap, const char *args) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' %s 2>'%s'", ams_bin(), args, vt_path("stderr.txt"));
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    char line[4096];
    last[0] = 0;
    while (fgets(line, sizeof line, p)) snprintf(last, cap, "%s", line);
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static long probe_frames(const char *mp4, char *codec, size_t cap) {
    char cmd[4200];
    snprintf(cmd, sizeof cmd,
             "ffprobe -v error -count_frames -select_streams v:0 -show_entries "
             "stream=codec_name,nb_read_frames -of default=nw=1 '%s'", mp4);
    FILE *p = popen(cmd, "r");
    long n = -1;
    char line[256];
    while (p && fgets(line, sizeof line, p)) {
        if (!strncmp(line, "codec_name=", 11)) snprintf(codec, cap, "%.*s", (int)strcspn(line + 11, "\n"), line + 11);
        if (!strncmp(line, "nb_read_frames=", 15)) n = atol(line + 15);
    }
    if (p) pclose(p);
    return n;
}

static int no_temp_files(void) {
    DIR *d = opendir(vt_scratch());
    struct dirent *e;
    int bad = 0;
    while (d && (e = readdir(d)) != NULL)
        if (strstr(e->d_name, ".tmp-")) bad = 1;
    if (d) closedir(d);
    return !bad;
}

/* grey 64x48 clip, 10 fps, 2 s; labels 64x48 at 0.5 s and 1.0 s: left half person (11),
 * right half car (13); at 1.0 s the halves swap. */
static int make_inputs(const char *clip, const char *labels) {
    CHECK(vt_sh("ffmpeg -v error -y -f lavfi -i color=c=0x808080:s=64x48:r=10:d=2 -c:v libx264 "
                "-crf 10 -pix_fmt yuv420p '%s'", clip) == 0);
    ams_err err = {0};
    ams_label_info in = {.width = 64, .height = 48, .classes = 19};
    ams_label_writer *w = NULL;
    CHECKF(ams_label_writer_open(&w, labels, &in, &err) == AMS_OK, "%s", err.msg);
    uint8_t p[64 * 48];
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < 64 * 48; i++) p[i] = (uint8_t)(((i % 64) < 32) == (k == 0) ? 11 : 13);
        CHECK(ams_label_writer_append(w, 0.5 * (k + 1), p, &err) == AMS_OK);
    }
    CHECK(ams_label_writer_close(w, &err) == AMS_OK);
    ams_label_writer_free(w);
    return 0;
}

static int near(const uint8_t *px, int r, int g, int b, int tol) {
    return abs(px[0] - r) <= tol && abs(px[1] - g) <= tol && abs(px[2] - b) <= tol;
}

static int test_overlay_cli(void) {
    const char *clip = vt_path("grey.mp4"), *lab = vt_path("grey.labels");
    const char *out = vt_path("ov.mp4"), *png = vt_path("ov.png");
    CHECK(make_inputs(clip, lab) == 0);
    char last[4096], args[8192], codec[64] = "";
    snprintf(args, sizeof args, "overlay --video '%s' --labels '%s' --output '%s' --png '%s' "
             "--png-time 1.0 --crf 12", clip, lab, out, png);
    int rc = run_ams(last, sizeof last, args);
    CHECKF(rc == 0, "exit %d: %s", rc, last);
    CHECKF(strstr(last, "\"frames\": 20") && strstr(last, "\"labelled\": 15"), "%s", last);
    CHECK(probe_frames(out, codec, sizeof codec) == 20 && !strcmp(codec, "h264"));
    /* decoded output: no mask before 0.5 s; person | car from 0.5 s; swapped from 1.0 s */
    ams_err err = {0};
    ams_video_reader *r = NULL;
    CHECKF(ams_video_open(&r, out, NULL, &err) == AMS_OK, "%s", err.msg);
    ams_video_frame f;
    const int person[3] = {174, 74, 94}, car[3] = {64, 64, 135};
    for (int k = 0; k < 20; k++) {
        CHECK(ams_video_read(r, &f, &err) == AMS_OK && f.rgb && f.width == 64);
        const uint8_t *left = f.rgb + (24 * 64 + 8) * 3, *right = f.rgb + (24 * 64 + 56) * 3;
        if (k < 5) CHECKF(near(left, 128, 128, 128, 6) && near(right, 128, 128, 128, 6), "frame %d", k);
        else if (k < 10) CHECKF(near(left, person[0], person[1], person[2], 8) &&
                                near(right, car[0], car[1], car[2], 8), "frame %d: %d %d %d", k, left[0], left[1], left[2]);
        else CHECKF(near(right, person[0], person[1], person[2], 8) &&
                    near(left, car[0], car[1], car[2], 8), "frame %d", k);
    }
    CHECK(ams_video_read(r, &f, &err) == AMS_OK && !f.rgb);
    ams_video_free(r);
    /* the PNG (lossless) is the frame at 1.0 s: car | person */
    CHECKF(ams_video_open(&r, png, NULL, &err) == AMS_OK, "%s", err.msg);
    CHECK(ams_video_read(r, &f, &err) == AMS_OK && f.rgb && f.width == 64 && f.height == 48);
    CHECK(near(f.rgb + (10 * 64 + 5) * 3, car[0], car[1], car[2], 3));
    CHECK(near(f.rgb + (10 * 64 + 60) * 3, person[0], person[1], person[2], 3));
    ams_video_free(r);

    /* side by side, sampled at 5 fps, 1 s */
    snprintf(args, sizeof args, "overlay --video '%s' --labels '%s' --labels2 '%s' --fps 5 "
             "--seconds 1 --output '%s'", clip, lab, lab, vt_path("sbs.mp4"));
    CHECK(run_ams(last, sizeof last, args) == 0);
    CHECKF(strstr(last, "\"frames\": 5") && strstr(last, "\"width\": 128"), "%s", last);
    CHECK(probe_frames(vt_path("sbs.mp4"), codec, sizeof codec) == 5);

    /* failures: exit 2, one line, nothing written */
    snprintf(args, sizeof args, "overlay --video '%s' --labels '%s' --output '%s'", vt_path("nope.mp4"),
             lab, vt_path("bad.mp4"));
    CHECK(run_ams(last, sizeof last, args) == 2);
    snprintf(args, sizeof args, "overlay --video '%s' --labels '%s' --output '%s'", clip,
             vt_path("nope.labels"), vt_path("bad.mp4"));
    CHECK(run_ams(last, sizeof last, args) == 2);
    CHECK(access(vt_path("bad.mp4"), F_OK) != 0 && no_temp_files());
    CHECK(run_ams(last, sizeof last, "overlay --video x") == 1);
    CHECK(run_ams(last, sizeof last, "overlay --help") == 0);
    return 0;
}

/* The real video: 10 s of vtest.avi (100 frames) under labels made once per second. */
static int test_vtest_overlay(void) {
    const char *v = vt_vtest();
    if (!v) return 0;
    const char *lab = vt_path("vtest.labels"), *out = vt_path("vtest_ov.mp4");
    ams_err err = {0};
    ams_label_info in = {.width = 256, .height = 192, .classes = 2};
    ams_label_writer *w = NULL;
    CHECKF(ams_label_writer_open(&w, lab, &in, &err) == AMS_OK, "%s", err.msg);
    static uint8_t p[256 * 192];
    for (int k = 0; k < 10; k++) {
        for (int i = 0; i < 256 * 192; i++) p[i] = (uint8_t)(((i % 256) / 32 + (i / 256) / 32 + k) % 5 == 0);
        CHECK(ams_label_writer_append(w, k, p, &err) == AMS_OK);
    }
    CHECK(ams_label_writer_close(w, &err) == AMS_OK);
    ams_label_writer_free(w);
    char last[4096], args[8192], codec[64] = "";
    snprintf(args, sizeof args, "overlay --video '%s' --labels '%s' --labels2 '%s' --seconds 10 "
             "--output '%s' --png '%s' --png-time 5", v, lab, lab, out, vt_path("vtest.png"));
    CHECK(run_ams(last, sizeof last, args) == 0);
    CHECKF(strstr(last, "\"frames\": 100") && strstr(last, "\"labelled\": 100"), "%s", last);
    CHECK(probe_frames(out, codec, sizeof codec) == 100 && !strcmp(codec, "h264"));
    ams_video_reader *r = NULL;
    CHECK(ams_video_open(&r, vt_path("vtest.png"), NULL, &err) == AMS_OK);
    CHECK(ams_video_info_get(r)->width == 512 && ams_video_info_get(r)->height == 192);
    ams_video_free(r);
    /* Ctrl-C during the whole video: exit 130, and the mp4 holds the frames done so far */
    const char *part = vt_path("part.mp4");
    CHECK(vt_sh("'%s' overlay --video '%s' --labels '%s' --width 768 --height 576 --output '%s' "
                "> '%s' 2>/dev/null & p=$!; sleep 2; kill -INT $p; wait $p; echo $? > '%s'", ams_bin(), v, lab, part,
                vt_path("part.json"), vt_path("part.rc")) == 0);
    FILE *f = fopen(vt_path("part.rc"), "r");
    int prc = -1;
    CHECK(f && fscanf(f, "%d", &prc) == 1);
    fclose(f);
    f = fopen(vt_path("part.json"), "r");
    CHECK(f && fgets(last, sizeof last, f));
    fclose(f);
    long n = strstr(last, "\"frames\": ") ? atol(strstr(last, "\"frames\": ") + 10) : -1;
    CHECKF(prc == 130 && n > 0 && n < 795, "exit %d, %s", prc, last);
    CHECK(probe_frames(part, codec, sizeof codec) == n && no_temp_files());
    return 0;
}

static double json_num(const char *json, const char *key) {
    char k[64];
    snprintf(k, sizeof k, "\"%s\": ", key);
    const char *p = strstr(json, k);
    return p ? atof(p + strlen(k)) : NAN;
}

static int test_encode_cli(void) {
    const char *clip = vt_path("src.mkv"), *out = vt_path("enc.mp4");
    CHECK(vt_sh("ffmpeg -v error -y -f lavfi -i testsrc2=s=160x120:r=10:d=4 -c:v ffv1 '%s'", clip) == 0);
    char last[4096], args[8192], codec[64] = "";
    snprintf(args, sizeof args, "encode --video '%s' --fps 5 --kbps 100 --period 2 --output '%s'",
             clip, out);
    int rc = run_ams(last, sizeof last, args);
    CHECKF(rc == 0, "exit %d", rc);
    CHECKF(json_num(last, "frames") == 20 && json_num(last, "uploads") == 2, "%s", last);
    CHECK(json_num(last, "kbps") > 0 && json_num(last, "psnr_db") > 15);
    CHECK(probe_frames(out, codec, sizeof codec) == 20 && !strcmp(codec, "h264"));
    snprintf(args, sizeof args, "encode --video '%s' --output '%s' --kbps 100", vt_path("none.avi"),
             vt_path("bad.mp4"));
    CHECK(run_ams(last, sizeof last, args) == 1); /* --fps missing */
    snprintf(args, sizeof args, "encode --video '%s' --fps 1 --output '%s' --kbps 100",
             vt_path("none.avi"), vt_path("bad.mp4"));
    CHECK(run_ams(last, sizeof last, args) == 2);
    CHECK(access(vt_path("bad.mp4"), F_OK) != 0 && no_temp_files());
    CHECK(run_ams(last, sizeof last, "encode --help") == 0);

    const char *v = vt_vtest();
    if (!v) return 0;
    for (int kb = 150; kb <= 300; kb += 150) {
        snprintf(args, sizeof args, "encode --video '%s' --fps 1 --kbps %d --start 10 --seconds 30 "
                 "--output '%s'", v, kb, vt_path("vtest%d.mp4", kb));
        CHECK(run_ams(last, sizeof last, args) == 0);
        double k = json_num(last, "kbps");
        printf("ams encode vtest.avi 30 s @1 fps, %d kbps: measured %.1f kbps (%+.1f %%), PSNR %.2f dB\n",
               kb, k, 100 * (k / kb - 1), json_num(last, "psnr_db"));
        CHECKF(fabs(k / kb - 1) <= 0.10, "%s", last);
        CHECK(json_num(last, "frames") == 30);
        CHECK(probe_frames(vt_path("vtest%d.mp4", kb), codec, sizeof codec) == 30);
    }
    return 0;
}

int main(int argc, char **argv) {
    static const check_case cases[] = {
        {"blend", test_blend},
        {"overlay_cli", test_overlay_cli},
        {"encode_cli", test_encode_cli},
        {"vtest_overlay", test_vtest_overlay},
    };
    int rc = check_run(cases, sizeof cases / sizeof cases[0], argc, argv);
    vt_cleanup();
    return rc;
}
