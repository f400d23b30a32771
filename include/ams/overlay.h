/* overlay.h - label masks drawn over RGB frames: a class -> colour palette and alpha blending.
 *
 *     ams_palette pal;
 *     ams_palette_cityscapes(&pal);              // 19 Cityscapes colours, 255 not drawn
 *     ams_overlay_blend(out, frame, w, h, labels, lw, lh, &pal, 0.5f);
 *
 * A label plane covers the same picture as the frame (both made by video.h's fill + centre-crop
 * rule); when their sizes differ, the label under output pixel (x, y) is the nearest one,
 * labels[(y * lh / h) * lw + x * lw / w]. Pure functions; no allocation.
 */
#ifndef AMS_OVERLAY_H
#define AMS_OVERLAY_H

#include <stdint.h>

typedef struct ams_palette {
    uint8_t rgb[256][3]; /* colour of each class id */
    uint8_t draw[256];   /* 0: leave the frame as is under this id */
} ams_palette;

/* Cityscapes' 19 training classes in their official colours (road purple, person red, car
 * blue, ...); ids 19..254 get distinct generated colours; 255 (ignore) is not drawn. */
void ams_palette_cityscapes(ams_palette *p);

/* Foreground/background masks (selfie, RVM): 0 is not drawn, 1 is red, 2.. generated colours,
 * 255 not drawn. */
void ams_palette_binary(ams_palette *p);

/* out = frame blended with the colour of each pixel's class: out = (1 - alpha) * frame +
 * alpha * colour, rounded, where the class is drawn; frame elsewhere. out may equal frame.
 * frame/out: w x h RGB24 packed; labels: lw x lh uint8. alpha is clamped to [0, 1]. */
void ams_overlay_blend(uint8_t *out, const uint8_t *frame, int w, int h, const uint8_t *labels,
                       int lw, int lh, const ams_palette *pal, float alpha);

#endif
