/* test_video_uplink.c - the H.264 uplink: PSNR against hand values, encode -> decode round
 * trip checked against the ffmpeg CLI's decode, bitrate within 10 % on 30 s of vtest.avi at
 * 150 and 300 Kbps, and bad bytes on the decoder side. */
#include <stdint.h>

#include "ams/uplink.h"
#include "ams/video.h"
#include "check.h"
#include "video_testutil.h"

static int test_psnr(void) {
    uint8_t a[300], b[300];
    for (int i = 0; i < 300; i++) {
        a[i] = (uint8_t)(i % 250);
        b[i] = (uint8_t)(a[i] + 5);
    }
    /* MSE 25 -> 10 log10(65025 / 25) */
    CHECK(fabs(ams_psnr_rgb(a, b, 300) - 10 * log10(65025.0 / 25)) < 1e-9);
    CHECK(isinf(ams_psnr_rgb(a, a, 300)));
    CHECK(isnan(ams_psnr_rgb(a, b, 0)));
    b[0] = (uint8_t)(a[0] + 255 > 255 ? 255 : a[0] + 255); /* one sample off by 255 */
    memcpy(b + 1, a + 1, 299);
    CHECK(fabs(ams_psnr_rgb(a, b, 300) - 10 * log10(300.0)) < 1e-9);
    return 0;
}

/* n frames sampled at fps from src (start t0) at w x h into one malloc'd block. */
static uint8_t *sample(const char *src, double t0, double fps, int n, int w, int h, int *got) {
    ams_err err = {0};
    ams_video_reader *r = NULL;
    ams_video_opts o = {.width = w, .height = h};
    *got = 0;
    if (ams_video_open(&r, src, &o, &err) != AMS_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return NULL;
    }
    size_t fb = (size_t)w * h * 3;
    uint8_t *all = malloc(fb * n);
    ams_video_frame f;
    for (int k = 0; all && k < n; k++) {
        if (ams_video_read_at(r, t0 + k / fps, &f, &err) != AMS_OK || !f.rgb) break;
        memcpy(all + fb * k, f.rgb, fb);
        (*got)++;
    }
    ams_video_free(r);
    return all;
}

static int test_round_trip(void) {
    /* grey content: the 4:2:0 chroma loss of saturated synthetic edges would cap the PSNR */
    const char *src = vt_path("src.mkv");
    CHECK(vt_sh("ffmpeg -v error -y -f lavfi -i testsrc2=s=320x240:r=10:d=2,hue=s=0 -c:v ffv1 '%s'", src) == 0);
    int n = 0, w = 160, h = 120;
    uint8_t *in = sample(src, 0, 10, 20, w, h, &n);
    CHECK(in && n == 20);
    size_t fb = (size_t)w * h * 3;
    const uint8_t *frames[20];
    for (int i = 0; i < n; i++) frames[i] = in + fb * i;
    double psnr[2];
    size_t bytes[2];
    const double kbps[2] = {30, 150};
    for (int q = 0; q < 2; q++) {
        ams_err err = {0};
        ams_uplink_opts o = {.width = w, .height = h, .fps = 10, .kbps = kbps[q], .preset = "fast"};
        ams_uplink_buf *up = NULL;
        ams_uplink_frames *dec = NULL;
        CHECKF(ams_uplink_encode(&o, frames, n, &up, &err) == AMS_OK, "%s", err.msg);
        CHECK(up->n_packets == n && up->packets[0].key && up->packets[0].offset == 0);
        size_t sum = 0;
        for (int i = 0; i < up->n_packets; i++) sum += up->packets[i].size;
        CHECK(sum == up->size);
        CHECKF(ams_uplink_decode(up->data, up->size, 0, 0, 64, &dec, &err) == AMS_OK, "%s", err.msg);
        CHECK(dec->n == n && dec->width == w && dec->height == h);
        psnr[q] = ams_psnr_rgb(in, dec->rgb, fb * n);
        bytes[q] = up->size;
        /* independent decoder: the ffmpeg CLI reads the same bytes (same RGB conversion flags,
         * so the frames must agree exactly) */
        const char *es = vt_path("up%d.h264", q), *raw = vt_path("up%d.rgb", q);
        FILE *fo = fopen(es, "wb");
        CHECK(fo && fwrite(up->data, 1, up->size, fo) == up->size);
        fclose(fo);
        CHECK(vt_sh("ffmpeg -v error -y -i '%s' -sws_flags bicubic+accurate_rnd+full_chroma_int -f rawvideo "
                    "-pix_fmt rgb24 '%s'", es, raw) == 0);
        FILE *fi = fopen(raw, "rb");
        CHECK(fi);
        uint8_t *ref = malloc(fb * n + 1);
        size_t got = fread(ref, 1, fb * n + 1, fi);
        fclose(fi);
        CHECKF(got == fb * n, "ffmpeg decoded %zu bytes, want %zu", got, fb * n);
        double agree = ams_psnr_rgb(ref, dec->rgb, fb * n);
        free(ref);
        CHECKF(agree > 50, "our decode vs ffmpeg's: %.2f dB", agree);
        /* a cap on frames is enforced */
        ams_uplink_frames *few = NULL;
        CHECK(ams_uplink_decode(up->data, up->size, 0, 0, 5, &few, &err) == AMS_E_RANGE && !few);
        /* scaled decode */
        CHECK(ams_uplink_decode(up->data, up->size, 80, 60, 64, &few, &err) == AMS_OK);
        CHECK(few->n == n && few->width == 80 && few->height == 60);
        ams_uplink_frames_free(few);
        /* the first half of the bytes: some frames or a clean error, never a crash */
        ams_status s = ams_uplink_decode(up->data, up->size / 2, 0, 0, 64, &few, &err);
        CHECK(s == AMS_OK ? few->n < n : few == NULL);
        ams_uplink_frames_free(few);
        ams_uplink_frames_free(dec);
        ams_uplink_buf_free(up);
    }
    free(in);
    printf("round trip 160x120: %g kbps %.2f dB (%zu B), %g kbps %.2f dB (%zu B)\n", kbps[0],
           psnr[0], bytes[0], kbps[1], psnr[1], bytes[1]);
    CHECK(psnr[0] > 20 && psnr[1] > psnr[0] + 3 && isfinite(psnr[1]));
    CHECK(bytes[1] > 3 * bytes[0]);
    return 0;
}

static int test_bad_bytes(void) {
    ams_err err = {0};
    ams_uplink_frames *f = NULL;
    uint8_t junk[5000];
    uint32_t x = 7;
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (uint8_t)((x = x * 1664525u + 1013904223u) >> 24);
    CHECK(ams_uplink_decode(junk, sizeof junk, 0, 0, 10, &f, &err) == AMS_E_FORMAT && !f);
    CHECK(err.msg[0]);
    CHECK(ams_uplink_decode(junk, 0, 0, 0, 10, &f, &err) == AMS_E_FORMAT);
    CHECK(ams_uplink_decode(junk, 10, 0, 0, 0, &f, &err) == AMS_E_RANGE);
    CHECK(ams_uplink_decode(junk, 10, 10, 0, 5, &f, &err) == AMS_E_RANGE);
    ams_uplink_opts o = {.width = 15, .height = 16, .fps = 1, .kbps = 100};
    ams_uplink_buf *up = NULL;
    const uint8_t *fr[1] = {junk};
    CHECK(ams_uplink_encode(&o, fr, 1, &up, &err) == AMS_E_RANGE && !up);
    o.width = 16;
    o.kbps = 0;
    CHECK(ams_uplink_encode(&o, fr, 1, &up, &err) == AMS_E_RANGE);
    o.kbps = 100;
    CHECK(ams_uplink_encode(&o, fr, 0, &up, &err) == AMS_E_RANGE);
    return 0;
}

/* 30 s of vtest.avi (t = 10..39 s) at 1 fps, 768x576, three uploads of 10 s each. */
static int test_vtest_bitrate(void) {
    const char *v = vt_vtest();
    if (!v) return 0;
    int n = 0, w = 768, h = 576;
    uint8_t *in = sample(v, 10, 1, 30, w, h, &n);
    CHECK(in && n == 30);
    size_t fb = (size_t)w * h * 3;
    const uint8_t *frames[30];
    for (int i = 0; i < n; i++) frames[i] = in + fb * i;
    const double kbps[2] = {150, 300};
    double psnr[2];
    for (int passes = 2; passes >= 1; passes--)
        for (int q = 0; q < 2; q++) {
            ams_err err = {0};
            ams_uplink_opts o = {.width = w, .height = h, .fps = 1, .kbps = kbps[q],
                                 .passes = passes, .threads = 2};
            size_t bits = 0;
            double se_psnr = 0;
            for (int u = 0; u < 3; u++) {
                ams_uplink_buf *up = NULL;
                ams_uplink_frames *dec = NULL;
                CHECKF(ams_uplink_encode(&o, frames + 10 * u, 10, &up, &err) == AMS_OK, "%s", err.msg);
                bits += up->size * 8;
                CHECKF(ams_uplink_decode(up->data, up->size, 0, 0, 10, &dec, &err) == AMS_OK, "%s",
                       err.msg);
                CHECK(dec->n == 10);
                se_psnr += ams_psnr_rgb(in + fb * 10 * u, dec->rgb, fb * 10) / 3;
                ams_uplink_frames_free(dec);
                ams_uplink_buf_free(up);
            }
            double measured = bits / 30.0 / 1000.0, rel = measured / kbps[q] - 1;
            printf("vtest 30 s @1 fps 768x576, %d-pass, target %g kbps: measured %.1f kbps "
                   "(%+.1f %%), PSNR %.2f dB\n", passes, kbps[q], measured, 100 * rel, se_psnr);
            if (passes == 2) {
                CHECKF(fabs(rel) <= 0.10, "two-pass bitrate off by %.1f %%", 100 * rel);
                psnr[q] = se_psnr;
            }
        }
    free(in);
    CHECK(psnr[0] > 25 && psnr[0] < 45 && psnr[1] > psnr[0] + 0.5);
    return 0;
}

int main(int argc, char **argv) {
    static const check_case cases[] = {
        {"psnr", test_psnr},
        {"round_trip", test_round_trip},
        {"bad_bytes", test_bad_bytes},
        {"vtest_bitrate", test_vtest_bitrate},
    };
    int rc = check_run(cases, sizeof cases / sizeof cases[0], argc, argv);
    vt_cleanup();
    return rc;
}
