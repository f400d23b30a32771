/* test_video_decode.c - the frame reader: frame count and pts, seek, fps sampling, the
 * fill + centre-crop size rule, image sequences, bad input, and the real vtest.avi. */
#include <fcntl.h>
#include <stdint.h>

#include "ams/video.h"
#include "check.h"
#include "video_testutil.h"

/* A 3 s, 10 fps, 64x48 H.264 clip (with B-frames) whose frame N has red = 8 N, green = blue
 * = 128: the red level identifies the frame independently of any timestamp. */
static const char *clip(void) {
    static int made;
    const char *p = vt_path("clip.mp4");
    if (!made && vt_sh("ffmpeg -v error -y -f lavfi -i \"color=c=gray:s=64x48:r=10:d=3,format=rgb24,"
                       "geq=r='8*N':g=128:b=128\" -c:v libx264 -crf 8 -bf 2 -pix_fmt yuv420p '%s'",
                       p) == 0)
        made = 1;
    return p;
}

static int frame_no(const ams_video_frame *f) {
    return (int)floor(vt_mean(f->rgb, f->width, f->height, 0) / 8.0 + 0.5);
}

static int test_read_all(void) {
    ams_err err = {0};
    ams_video_reader *r = NULL;
    ams_video_opts o = {.width = 32, .height = 24};
    CHECKF(ams_video_open(&r, clip(), &o, &err) == AMS_OK, "%s", err.msg);
    const ams_video_info *in = ams_video_info_get(r);
    CHECK(in->src_width == 64 && in->src_height == 48 && in->width == 32 && in->height == 24);
    CHECK(fabs(in->fps - 10) < 1e-9);
    CHECKF(fabs(in->duration - 3.0) < 0.051, "duration %g", in->duration);
    ams_video_frame f;
    int n = 0;
    for (;;) {
        CHECKF(ams_video_read(r, &f, &err) == AMS_OK, "%s", err.msg);
        if (!f.rgb) break;
        CHECK(f.width == 32 && f.height == 24 && f.index == n);
        CHECKF(fabs(f.pts - n * 0.1) < 1e-6, "frame %d pts %g", n, f.pts);
        CHECKF(frame_no(&f) == n, "frame %d looks like %d", n, frame_no(&f));
        n++;
    }
    CHECKF(n == 30, "%d frames", n);
    CHECK(ams_video_read(r, &f, &err) == AMS_OK && f.rgb == NULL); /* end stays end */
    CHECK(ams_video_warning(r) == NULL);
    ams_video_free(r);
    ams_video_free(NULL);
    return 0;
}

/* Sampling at R fps: sample k is frame floor(k * 10 / R) (latest frame with pts <= k/R). */
static int sample_check(double fps, int expect_n) {
    ams_err err = {0};
    ams_video_reader *r = NULL;
    CHECKF(ams_video_open(&r, clip(), NULL, &err) == AMS_OK, "%s", err.msg);
    ams_video_frame f;
    int k = 0;
    for (;; k++) {
        double t = k / fps;
        CHECKF(ams_video_read_at(r, t, &f, &err) == AMS_OK, "%s", err.msg);
        if (!f.rgb) break;
        int want = (int)floor(t * 10 + 1e-9);
        CHECKF(frame_no(&f) == want, "fps %g sample %d: frame %d, want %d", fps, k, frame_no(&f), want);
        CHECKF(fabs(f.pts - want * 0.1) < 1e-6, "pts %g", f.pts);
    }
    CHECKF(k == expect_n, "fps %g: %d samples, want %d", fps, k, expect_n);
    ams_video_free(r);
    return 0;
}

static int test_sample(void) {
    CHECK(sample_check(4, 12) == 0);  /* t = 0, .25, ..., 2.75: drops frames */
    CHECK(sample_check(25, 75) == 0); /* repeats frames; ends at t >= 2.9 + 0.1 */
    CHECK(sample_check(10, 30) == 0); /* exactly the frames (float ties: 0.3 vs 3 * 0.1) */
    CHECK(sample_check(1.0 / 3, 1) == 0);
    return 0;
}

static int test_seek(void) {
    ams_err err = {0};
    ams_video_reader *r = NULL;
    CHECKF(ams_video_open(&r, clip(), NULL, &err) == AMS_OK, "%s", err.msg);
    ams_video_frame f;
    CHECKF(ams_video_seek(r, 1.25, &err) == AMS_OK, "%s", err.msg);
    CHECK(ams_video_read(r, &f, &err) == AMS_OK && f.rgb);
    CHECKF(frame_no(&f) == 12 && fabs(f.pts - 1.2) < 1e-6, "got %d at %g", frame_no(&f), f.pts);
    CHECK(ams_video_read(r, &f, &err) == AMS_OK && f.rgb && frame_no(&f) == 13);
    CHECK(ams_video_seek(r, 0, &err) == AMS_OK);
    CHECK(ams_video_read(r, &f, &err) == AMS_OK && f.rgb && frame_no(&f) == 0 && f.pts == 0);
    CHECK(ams_video_seek(r, 2.9, &err) == AMS_OK);
    CHECK(ams_video_read(r, &f, &err) == AMS_OK && f.rgb && frame_no(&f) == 29);
    CHECK(ams_video_read(r, &f, &err) == AMS_OK && !f.rgb);
    /* read_at going back in time seeks */
    CHECK(ams_video_read_at(r, 0.55, &f, &err) == AMS_OK && f.rgb && frame_no(&f) == 5);
    CHECK(ams_video_read_at(r, 2.0, &f, &err) == AMS_OK && f.rgb && frame_no(&f) == 20);
    CHECK(ams_video_read_at(r, 0.1, &f, &err) == AMS_OK && f.rgb && frame_no(&f) == 1);
    /* past the end */
    CHECK(ams_video_seek(r, 10, &err) == AMS_OK);
    CHECK(ams_video_read(r, &f, &err) == AMS_OK && !f.rgb);
    CHECK(ams_video_seek(r, NAN, &err) == AMS_E_RANGE);
    ams_video_free(r);
    return 0;
}

static int test_fill_crop_rule(void) {
    int x, y, w, h;
    ams_video_fill_crop(768, 576, 512, 256, &x, &y, &w, &h); /* 4:3 -> 2:1: crop rows */
    CHECK(x == 0 && w == 768 && h == 384 && y == 96);
    ams_video_fill_crop(200, 100, 50, 50, &x, &y, &w, &h); /* 2:1 -> 1:1: crop columns */
    CHECK(x == 50 && y == 0 && w == 100 && h == 100);
    ams_video_fill_crop(640, 480, 320, 240, &x, &y, &w, &h); /* same aspect: no crop */
    CHECK(x == 0 && y == 0 && w == 640 && h == 480);
    ams_video_fill_crop(3, 1000, 1000, 1, &x, &y, &w, &h); /* extreme: at least one row */
    CHECK(w == 3 && h == 1 && y == 499);

    /* A grey ramp (value = column) through the reader: output column j of a 50x50 frame from
     * the 200x100 source averages source columns 50+2j, 51+2j. */
    const char *p = vt_path("ramp.mkv");
    CHECK(vt_sh("ffmpeg -v error -y -f lavfi -i \"color=s=200x100:r=10:d=0.2,format=rgb24,"
                "geq=r='X':g='X':b='X'\" -c:v png '%s'", p) == 0);
    ams_err err = {0};
    ams_video_reader *r = NULL;
    ams_video_opts o = {.width = 50, .height = 50};
    CHECKF(ams_video_open(&r, p, &o, &err) == AMS_OK, "%s", err.msg);
    ams_video_frame f;
    CHECK(ams_video_read(r, &f, &err) == AMS_OK && f.rgb);
    for (int yy = 0; yy < 50; yy += 7)
        for (int j = 0; j < 50; j++)
            for (int c = 0; c < 3; c++) {
                double want = 50.5 + 2 * j, got = f.rgb[(yy * 50 + j) * 3 + c];
                CHECKF(fabs(got - want) <= 1.5, "row %d col %d: %g want %g", yy, j, got, want);
            }
    ams_video_free(r);
    return 0;
}

static int test_image_sequence(void) {
    CHECK(vt_sh("mkdir -p '%s' && ffmpeg -v error -y -f lavfi -i \"color=c=gray:s=40x30:r=10:d=1,"
                "format=rgb24,geq=r='8*N':g=128:b=128\" -start_number 7 '%s/f_%%04d.png'",
                vt_path("seq"), vt_path("seq")) == 0);
    const char *srcs[2] = {vt_path("seq"), vt_path("seq/f_%%04d.png")};
    for (int s = 0; s < 2; s++) {
        ams_err err = {0};
        ams_video_reader *r = NULL;
        ams_video_opts o = {.image_fps = 5};
        CHECKF(ams_video_open(&r, srcs[s], &o, &err) == AMS_OK, "%s: %s", srcs[s], err.msg);
        CHECK(ams_video_info_get(r)->kind == AMS_VIDEO_IMAGES);
        ams_video_frame f;
        int n = 0;
        for (;; n++) {
            CHECKF(ams_video_read(r, &f, &err) == AMS_OK, "%s", err.msg);
            if (!f.rgb) break;
            CHECK(f.width == 40 && f.height == 30);
            CHECKF(frame_no(&f) == n, "%s: frame %d is %d", srcs[s], n, frame_no(&f));
            CHECKF(fabs(f.pts - n / 5.0) < 1e-6, "pts %g", f.pts);
        }
        CHECKF(n == 10, "%s: %d frames", srcs[s], n);
        /* seek inside the sequence: t = 1.1 s at 5 fps -> image 5 */
        CHECK(ams_video_seek(r, 1.1, &err) == AMS_OK);
        CHECK(ams_video_read(r, &f, &err) == AMS_OK && f.rgb && frame_no(&f) == 5);
        ams_video_free(r);
    }
    return 0;
}

static int expect_open_error(const char *src, ams_status want) {
    ams_err err = {0};
    ams_video_reader *r = (ams_video_reader *)1;
    ams_status s = ams_video_open(&r, src, NULL, &err);
    CHECKF(s == want, "%s: got %d (%s), want %d", src, (int)(s), err.msg,
           (int)(want));
    CHECK(r == NULL);
    CHECK(err.msg[0] && !strchr(err.msg, '\n'));
    return 0;
}

/* Reads to the end; a damaged file may end early or fail, but never crash or hang. */
static int drain(const char *src, int *frames, ams_status *st) {
    ams_err err = {0};
    ams_video_reader *r = NULL;
    *frames = 0;
    *st = ams_video_open(&r, src, NULL, &err);
    if (*st != AMS_OK) return 0;
    ams_video_frame f;
    for (int k = 0; k < 1000; k++) {
        *st = ams_video_read(r, &f, &err);
        if (*st != AMS_OK || !f.rgb) break;
        (*frames)++;
    }
    ams_video_free(r);
    return 0;
}

static int test_bad_input(void) {
    CHECK(expect_open_error(vt_path("missing.mp4"), AMS_E_NOTFOUND) == 0);
    FILE *t = fopen(vt_path("text.mp4"), "w");
    CHECK(t);
    for (int i = 0; i < 200; i++) fprintf(t, "this is not a video, line %d\n", i);
    fclose(t);
    CHECK(expect_open_error(vt_path("text.mp4"), AMS_E_FORMAT) == 0);
    CHECK(vt_sh(": > '%s'", vt_path("zero.mp4")) == 0);
    CHECK(expect_open_error(vt_path("zero.mp4"), AMS_E_FORMAT) == 0);
    CHECK(vt_sh("ffmpeg -v error -y -f lavfi -i sine=d=0.5 '%s'", vt_path("tone.wav")) == 0);
    CHECK(expect_open_error(vt_path("tone.wav"), AMS_E_FORMAT) == 0); /* audio only */
    CHECK(vt_sh("mkdir -p '%s'", vt_path("empty")) == 0);
    CHECK(expect_open_error(vt_path("empty"), AMS_E_NOTFOUND) == 0);
    CHECK(expect_open_error(vt_path("nothing_%%03d.png"), AMS_E_NOTFOUND) == 0);
    ams_err err = {0};
    ams_video_reader *r = NULL;
    CHECK(ams_video_open(&r, "/dev/video99", NULL, &err) != AMS_OK && r == NULL);
    ams_video_opts bad = {.width = 10};
    CHECK(ams_video_open(&r, clip(), &bad, &err) == AMS_E_RANGE);
    CHECK(ams_video_open(&r, "", NULL, &err) == AMS_E_INVAL);

    /* an AVI (index at the end) truncated to 60 %: the frames before the cut, a clean end */
    const char *avi = vt_path("clip.avi"), *cut = vt_path("cut.avi"), *bent = vt_path("bent.avi");
    CHECK(vt_sh("ffmpeg -v error -y -f lavfi -i testsrc2=s=160x120:r=10:d=3 -c:v mpeg4 -q:v 2 "
                "'%s'", avi) == 0);
    struct stat st;
    CHECK(stat(avi, &st) == 0);
    CHECK(vt_sh("head -c %lld '%s' > '%s'", (long long)st.st_size * 6 / 10, avi, cut) == 0);
    int n;
    ams_status s;
    CHECK(drain(cut, &n, &s) == 0);
    CHECKF(s == AMS_OK && n >= 5 && n < 30, "truncated: %d, %d frames", (int)(s), n);
    /* mp4 truncated: moov atom missing or cut */
    CHECK(vt_sh("head -c 3000 '%s' > '%s'", clip(), vt_path("cut.mp4")) == 0);
    CHECK(drain(vt_path("cut.mp4"), &n, &s) == 0);
    CHECKF(s != AMS_OK || n < 30, "cut mp4: %d %d", (int)(s), n);
    /* garbage written over the middle of the stream: no crash, the stream still ends */
    CHECK(vt_sh("cp '%s' '%s'", avi, bent) == 0);
    int fd = open(bent, O_WRONLY);
    CHECK(fd >= 0);
    unsigned char junk[4000];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (unsigned char)((x = x * 1103515245u + 12345u) >> 24);
    CHECK(pwrite(fd, junk, sizeof junk, st.st_size / 2) == (ssize_t)sizeof junk);
    close(fd);
    CHECK(drain(bent, &n, &s) == 0);
    CHECKF(s == AMS_OK || s == AMS_E_FORMAT, "corrupt: %d", (int)(s));
    return 0;
}

static int test_vtest(void) {
    const char *v = vt_vtest();
    if (!v) return 0;
    ams_err err = {0};
    ams_video_reader *r = NULL;
    ams_video_opts o = {.width = 256, .height = 128, .threads = 2};
    CHECKF(ams_video_open(&r, v, &o, &err) == AMS_OK, "%s", err.msg);
    const ams_video_info *in = ams_video_info_get(r);
    CHECK(in->src_width == 768 && in->src_height == 576 && fabs(in->fps - 10) < 1e-9);
    CHECK(in->frames == 795 && fabs(in->duration - 79.5) < 1e-6);
    ams_video_frame f;
    int n = 0;
    double last = -1;
    for (;;) {
        CHECKF(ams_video_read(r, &f, &err) == AMS_OK, "%s", err.msg);
        if (!f.rgb) break;
        CHECKF(fabs(f.pts - n * 0.1) < 1e-6, "frame %d pts %g", n, f.pts);
        last = f.pts;
        n++;
    }
    CHECKF(n == 795 && fabs(last - 79.4) < 1e-6, "%d frames, last pts %g", n, last);
    /* 1 fps sampling: t = 0..79 (79.5 s long) */
    int k = 0;
    for (;; k++) {
        CHECKF(ams_video_read_at(r, k, &f, &err) == AMS_OK, "%s", err.msg);
        if (!f.rgb) break;
        CHECKF(fabs(f.pts - k) < 1e-6, "sample %d pts %g", k, f.pts);
    }
    CHECKF(k == 80, "%d samples", k);
    /* seek lands on the right frame: compare with the frame reached by reading forward */
    CHECK(ams_video_seek(r, 40.0, &err) == AMS_OK);
    CHECK(ams_video_read(r, &f, &err) == AMS_OK && f.rgb && fabs(f.pts - 40.0) < 1e-6);
    size_t sz = (size_t)f.width * f.height * 3;
    unsigned char *a = malloc(sz);
    CHECK(a);
    memcpy(a, f.rgb, sz);
    ams_video_free(r);
    CHECK(ams_video_open(&r, v, &o, &err) == AMS_OK);
    CHECK(ams_video_read_at(r, 40.0, &f, &err) == AMS_OK && f.rgb);
    long diff = 0;
    for (size_t i = 0; i < sz; i++) diff += abs((int)a[i] - (int)f.rgb[i]);
    free(a);
    ams_video_free(r);
    /* msmpeg4 has keyframes only every few seconds; a seek decodes from the keyframe */
    CHECKF(diff == 0, "seeked frame differs from the sequentially decoded one (%ld)", diff);
    return 0;
}

int main(int argc, char **argv) {
    static const check_case cases[] = {
        {"read_all", test_read_all},
        {"sample", test_sample},
        {"seek", test_seek},
        {"fill_crop_rule", test_fill_crop_rule},
        {"image_sequence", test_image_sequence},
        {"bad_input", test_bad_input},
        {"vtest", test_vtest},
    };
    int rc = check_run(cases, sizeof cases / sizeof cases[0], argc, argv);
    vt_cleanup();
    return rc;
}
