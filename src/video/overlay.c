/* overlay.c - class palettes and alpha blending of label masks over RGB frames. */
#include "ams/overlay.h"

#include <string.h>

/* Cityscapes trainId colours (from the dataset's labels.py). */
static const uint8_t CITYSCAPES[19][3] = {
    {128, 64, 128}, {244, 35, 232}, {70, 70, 70},   {102, 102, 156}, {190, 153, 153},
    {153, 153, 153}, {250, 170, 30}, {220, 220, 0},  {107, 142, 35},  {152, 251, 152},
    {70, 130, 180},  {220, 20, 60},  {255, 0, 0},    {0, 0, 142},     {0, 0, 70},
    {0, 60, 100},    {0, 80, 100},   {0, 0, 230},    {119, 11, 32},
};

/* Distinct, deterministic colours for ids without an official one (a bit-reversal spread). */
static void generated(ams_palette *p) {
    for (int i = 0; i < 256; i++) {
        int r = 0, g = 0, b = 0, id = i;
        for (int k = 7; k >= 0 && id; k--, id >>= 3) {
            r |= (id & 1) << k;
            g |= ((id >> 1) & 1) << k;
            b |= ((id >> 2) & 1) << k;
        }
        p->rgb[i][0] = (uint8_t)r;
        p->rgb[i][1] = (uint8_t)g;
        p->rgb[i][2] = (uint8_t)b;
        p->draw[i] = 1;
    }
    p->draw[255] = 0;
}

void ams_palette_cityscapes(ams_palette *p) {
    generated(p);
    memcpy(p->rgb, CITYSCAPES, sizeof CITYSCAPES);
}

void ams_palette_binary(ams_palette *p) {
    generated(p);
    p->draw[0] = 0;
    p->rgb[1][0] = 255;
    p->rgb[1][1] = 40;
    p->rgb[1][2] = 40;
}

void ams_overlay_blend(uint8_t *out, const uint8_t *frame, int w, int h, const uint8_t *labels,
                       int lw, int lh, const ams_palette *pal, float alpha) {
    if (!(alpha > 0)) alpha = 0; /* also NaN */
    if (alpha > 1) alpha = 1;
    int a = (int)(alpha * 256.0f + 0.5f); /* fixed point, 256 = 1 */
    for (int y = 0; y < h; y++) {
        const uint8_t *lrow = labels + (size_t)((int64_t)y * lh / h) * (size_t)lw;
        for (int x = 0; x < w; x++) {
            size_t i = ((size_t)y * (size_t)w + (size_t)x) * 3;
            uint8_t c = lrow[(int64_t)x * lw / w];
            if (!pal->draw[c]) {
                if (out != frame) memcpy(out + i, frame + i, 3);
                continue;
            }
            for (int k = 0; k < 3; k++)
                out[i + k] = (uint8_t)(((256 - a) * frame[i + k] + a * pal->rgb[c][k] + 128) >> 8);
        }
    }
}
