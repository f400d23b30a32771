/* sim_internal.h - what the emulator's files share and nobody else sees: the recording of
 * evaluated frames, the JITNet-like baseline's trainer, SVG plot helpers for the report. */
#ifndef AMS_SIM_INTERNAL_H
#define AMS_SIM_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ams/sim.h"

/* ---- the metric over the class subset (sim.c) ---- */

/* Sets up cm over c's class subset (c->nsubset > 0), else over 0..classes-1. */
ams_status ams_sim_confmat_init(ams_confmat *cm, const ams_sim_config *c, int classes,
                                ams_err *err);
/* The student's prediction from its logits y (npix x nc, NHWC): nc == 1 binary (1 where logit >
 * c->threshold); else the argmax over c's subset (every one of the nc classes without one). */
void ams_sim_predict(const ams_sim_config *c, const float *y, size_t npix, int nc,
                     uint8_t *pred);

/* ---- recording (sim_rec.c) ---- */

/* An empty recording of w x h planes. NULL when out of memory. */
ams_sim_rec *ams_sim_rec_new(int w, int h);
void ams_sim_rec_free(ams_sim_rec *r);
/* The largest class id recorded (predictions and labels; 255 not counted). */
int ams_sim_rec_max_id(const ams_sim_rec *r);
/* Appends one frame (run-length coded). @return AMS_OK or AMS_E_NOMEM. */
ams_status ams_sim_rec_add(ams_sim_rec *r, double t, const uint8_t *pred, const uint8_t *label,
                           ams_err *err);

/* ---- the jit baseline's trainer (sim_jit.c) ---- */

typedef struct ams_sim_jit ams_sim_jit;

typedef struct ams_sim_jit_result {
    int iters;                    /* Adam steps taken (0: the target was met already) */
    double miou_first, miou_last; /* the frame's mIoU before the first and after the last step */
    double loss_first, loss_last; /* loss of the first and the last step (NaN: no step) */
    size_t trainable;             /* elements the steps may move (every trainable one) */
} ams_sim_jit_result;

/* Inference and batch-1 training graphs over the server's params (h x w frames, classes and
 * c's subset for the mIoU), and Adam state that lives as long as the jit (carried over
 * between keyframes). */
ams_status ams_sim_jit_new(ams_sim_jit **out, ams_sim_student *server, int h, int w,
                           int classes, const ams_sim_config *c, ams_err *err);
void ams_sim_jit_free(ams_sim_jit *j);
/* Trains the server's params on one frame (rgb h*w*3, label h*w) until its mIoU reaches
 * c->jit_target or c->jit_iters steps were taken (lr, backend, input scale from c->train);
 * every trainable element may move. */
ams_status ams_sim_jit_train(ams_sim_jit *j, const ams_sim_config *c, const uint8_t *rgb,
                             const uint8_t *label, ams_sim_jit_result *res, ams_err *err);

/* ---- SVG plots (sim_svg.c) ---- */

/* One series of a plot: n points (x[i], y[i]); non-finite y are gaps. */
typedef struct ams_svg_series {
    const double *x, *y;
    int n;
    const char *color;
    const char *name;
    int dashed;   /* 1: a dashed line (budgets) */
    int points;   /* 0: a line; 1: filled circles; 2: hollow squares; 3: ticks at x on the
                     bottom axis, offset upwards by y pixels (y ignored as a value) */
} ams_svg_series;

typedef struct ams_svg_plot {
    const char *title, *xlabel, *ylabel;
    double xmin, xmax, ymin, ymax; /* axis ranges (xmax <= xmin: from the data, same for y) */
    int label_points;              /* write each point's series name next to it */
    int id;                        /* distinct per plot of a page (names its clip path) */
} ams_svg_plot;

/* Writes one <svg> element (720 x 260) with axes, ticks, a legend and the series. */
void ams_svg_write(FILE *f, const ams_svg_plot *p, const ams_svg_series *s, int ns);
/* Writes text with &, <, >, " escaped. */
void ams_html_escape(FILE *f, const char *text);

/* ---- a 5x7 bitmap font for the overlay's captions (sim_overlay.c) ---- */

/* Draws text (upper-cased; A-Z 0-9 space % - . / + and ':' ) into an RGB image of width w
 * and height h at (x, y), scale s, in colour rgb with a 1-pixel dark outline; clipped. */
void ams_sim_draw_text(uint8_t *img, int w, int h, int x, int y, int s, const char *text,
                       const uint8_t rgb[3]);

#endif
