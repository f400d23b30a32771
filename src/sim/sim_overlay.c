/* sim_overlay.c - the emulator's side-by-side overlay video: for every evaluated frame, the
 * video frame with each run's student mask over it and then the teacher's label, captioned
 * with a tiny built-in 5x7 bitmap font, written with the video layer's mp4 writer. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ams/overlay.h"
#include "ams/video.h"
#include "ams/video_out.h"
#include "sim_internal.h"

#define MAX_RUNS 4
#define GAP 4 /* black pixels between panels (even: the width stays even) */

/* 5x7 glyphs, one byte per row, bit 4 = the leftmost pixel. */
typedef struct glyph {
    char c;
    uint8_t rows[7];
} glyph;

static const glyph FONT[] = {
    {'A', {0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11}}, {'B', {0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E}},
    {'C', {0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E}}, {'D', {0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C}},
    {'E', {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F}}, {'F', {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10}},
    {'G', {0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F}}, {'H', {0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11}},
    {'I', {0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E}}, {'J', {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C}},
    {'K', {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11}}, {'L', {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F}},
    {'M', {0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11}}, {'N', {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11}},
    {'O', {0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}}, {'P', {0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10}},
    {'Q', {0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D}}, {'R', {0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11}},
    {'S', {0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E}}, {'T', {0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04}},
    {'U', {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}}, {'V', {0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04}},
    {'W', {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A}}, {'X', {0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11}},
    {'Y', {0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04}}, {'Z', {0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F}},
    {'0', {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E}}, {'1', {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E}},
    {'2', {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F}}, {'3', {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E}},
    {'4', {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02}}, {'5', {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E}},
    {'6', {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E}}, {'7', {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08}},
    {'8', {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E}}, {'9', {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C}},
    {'%', {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03}}, {'-', {0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00}},
    {'.', {0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C}}, {'/', {0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00}},
    {'+', {0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00}}, {':', {0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00}},
};

static const uint8_t *glyph_rows(char c) {
    c = (char)toupper((unsigned char)c);
    for (size_t i = 0; i < sizeof FONT / sizeof FONT[0]; i++)
        if (FONT[i].c == c) return FONT[i].rows;
    return NULL; /* space and anything unknown: blank */
}

static void put_px(uint8_t *img, int w, int h, int x, int y, const uint8_t rgb[3]) {
    if (x < 0 || y < 0 || x >= w || y >= h) return;
    memcpy(img + ((size_t)y * (size_t)w + (size_t)x) * 3, rgb, 3);
}

void ams_sim_draw_text(uint8_t *img, int w, int h, int x, int y, int s, const char *text,
                       const uint8_t rgb[3]) {
    static const uint8_t dark[3] = {0, 0, 0};
    if (s < 1) s = 1;
    for (int pass = 0; pass < 2; pass++) { /* the outline first, then the letters */
        int cx = x;
        for (const char *p = text; *p; p++, cx += 6 * s) {
            const uint8_t *rows = glyph_rows(*p);
            if (!rows) continue;
            for (int r = 0; r < 7; r++)
                for (int q = 0; q < 5; q++) {
                    if (!(rows[r] & (0x10 >> q))) continue;
                    for (int dy = 0; dy < s; dy++)
                        for (int dx = 0; dx < s; dx++) {
                            int px = cx + q * s + dx, py = y + r * s + dy;
                            if (pass == 1) {
                                put_px(img, w, h, px, py, rgb);
                                continue;
                            }
                            for (int oy = -1; oy <= 1; oy++)
                                for (int ox = -1; ox <= 1; ox++)
                                    put_px(img, w, h, px + ox, py + oy, dark);
                        }
                }
        }
    }
}

/* Copies a w x h panel into the canvas (cw wide) at column x0. */
static void blit(uint8_t *canvas, int cw, const uint8_t *panel, int w, int h, int x0) {
    for (int y = 0; y < h; y++)
        memcpy(canvas + ((size_t)y * (size_t)cw + (size_t)x0) * 3, panel + (size_t)y * w * 3,
               (size_t)w * 3);
}

ams_status ams_sim_write_overlay(const ams_sim_result *const *runs, int n, const char *video,
                                 const char *path, ams_err *err) {
    AMS_FAIL_IF(n < 1 || n > MAX_RUNS, err, AMS_E_INVAL, "overlay: 1..%d runs, got %d", MAX_RUNS,
                n);
    const ams_sim_rec *r0 = runs[0]->rec;
    int w, h, frames = ams_sim_rec_count(r0);
    ams_sim_rec_size(r0, &w, &h);
    AMS_FAIL_IF(!r0 || frames < 1, err, AMS_E_INVAL,
                "overlay: the run recorded no frame (config.record)");
    int max_id = ams_sim_rec_max_id(r0);
    for (int i = 1; i < n; i++) {
        const ams_sim_rec *ri = runs[i]->rec;
        int wi, hi;
        ams_sim_rec_size(ri, &wi, &hi);
        AMS_FAIL_IF(ams_sim_rec_count(ri) != frames || wi != w || hi != h, err, AMS_E_INVAL,
                    "overlay: the runs recorded different frames");
        for (int k = 0; k < frames; k++)
            AMS_FAIL_IF(fabs(ams_sim_rec_time(ri, k) - ams_sim_rec_time(r0, k)) > 1e-6, err,
                        AMS_E_INVAL, "overlay: the runs recorded different frame times");
        if (ams_sim_rec_max_id(ri) > max_id) max_id = ams_sim_rec_max_id(ri);
    }
    ams_palette student, teacher;
    if (max_id <= 1) {
        ams_palette_binary(&student);
        ams_palette_binary(&teacher);
        teacher.rgb[1][0] = 0;
        teacher.rgb[1][1] = 220;
        teacher.rgb[1][2] = 0;
    } else { /* many classes: the same colours on both sides */
        ams_palette_cityscapes(&student);
        ams_palette_cityscapes(&teacher);
    }
    int cw = (n + 1) * w + n * GAP, scale = w >= 480 ? 2 : 1;
    double fps = runs[0]->config.eval_fps;
    size_t npix = (size_t)w * (size_t)h;
    uint8_t *canvas = calloc((size_t)cw * (size_t)h * 3, 1), *panel = malloc(npix * 3);
    uint8_t *pred = malloc(npix), *label = malloc(npix);
    ams_video_reader *vr = NULL;
    ams_mp4_writer *mw = NULL;
    ams_status st = AMS_OK;
    if (!canvas || !panel || !pred || !label) {
        st = ams_err_set(err, AMS_E_NOMEM, "overlay: out of memory");
        goto done;
    }
    ams_video_opts vo = {.width = w, .height = h, .threads = 1};
    if ((st = ams_video_open(&vr, video, &vo, err)) != AMS_OK) goto done;
    ams_mp4_opts mo = {.width = cw, .height = h, .fps = fps, .crf = 26, .threads = 1};
    if ((st = ams_mp4_writer_open(&mw, path, &mo, err)) != AMS_OK) goto done;
    static const uint8_t white[3] = {255, 255, 255};
    char names[MAX_RUNS][64];
    for (int i = 0; i < n; i++) ams_sim_run_name(runs[i], names[i], sizeof names[i]);
    int64_t last_pts = -1;
    for (int k = 0; k < frames; k++) {
        double t = ams_sim_rec_time(r0, k);
        ams_video_frame f;
        if ((st = ams_video_read_at(vr, t, &f, err)) != AMS_OK) goto done;
        if (!f.rgb) break;
        for (int i = 0; i <= n; i++) {
            const ams_sim_rec *ri = runs[i < n ? i : 0]->rec;
            if ((st = ams_sim_rec_get(ri, k, pred, label, err)) != AMS_OK) goto done;
            ams_overlay_blend(panel, f.rgb, w, h, i < n ? pred : label, w, h,
                              i < n ? &student : &teacher, 0.55f);
            ams_sim_draw_text(panel, w, h, 4, 4, scale, i < n ? names[i] : "teacher", white);
            if (i == 0) {
                char ts[32];
                snprintf(ts, sizeof ts, "%.1f s", t);
                ams_sim_draw_text(panel, w, h, 4, h - 4 - 7 * scale, scale, ts, white);
            }
            blit(canvas, cw, panel, w, h, i * (w + GAP));
        }
        int64_t pts = llround(t * fps);
        if (pts <= last_pts) pts = last_pts + 1;
        last_pts = pts;
        if ((st = ams_mp4_writer_add_rgb(mw, canvas, pts, err)) != AMS_OK) goto done;
    }
    st = ams_mp4_writer_close(mw, err);
done:
    ams_mp4_writer_free(mw);
    ams_video_free(vr);
    free(canvas);
    free(panel);
    free(pred);
    free(label);
    return st;
}
