/* cli_segmenter.h - a segmentation model as `ams label` and `ams segment` run it: RGB24
 * frames in, uint8 label planes out. The model is an imported TF.js model (a fetch-cache
 * name such as rvm or selfie, or a model.json path) or a built-in architecture
 * (deeplabv3-mnv2, deeplabv3plus-xception65) with --weights.
 *
 * Preprocessing follows the model (DESIGN.md): TF.js models get RGB/255, DeepLab raw 0..255.
 * Label rule: a one-channel output (selfie's probability, RVM's alpha) gives 2 classes,
 * 1 where the value > threshold, else 0; a C-channel output (logits) gives its argmax.
 * The model runs at one size (width x height, fixed at open); its output is sampled to the
 * label size by centre-nearest: label (x, y) of an lw x lh plane takes output pixel
 * ((2x+1) * ow / (2 lw), (2y+1) * oh / (2 lh)). */
#ifndef AMS_CLI_SEGMENTER_H
#define AMS_CLI_SEGMENTER_H

#include <stdint.h>

#include "ams/status.h"
#include "cli/cli_common.h"

typedef struct cli_seg_opts {
    const char *model;       /* fetch-cache name, model.json path, or an --arch name */
    cli_deeplab deeplab;     /* --weights, --classes, --os for an arch; --threads, --backend */
    char **feeds;            /* nfeeds "NAME=VALUE" texts (modified in place) */
    int nfeeds;
    const char *output_name; /* NULL: the model's default output */
    int width, height;       /* the size the model runs at */
    double threshold;        /* one-channel outputs */
    const char *backend;     /* kernel backend name, NULL = the default (cpu) */
} cli_seg_opts;

typedef struct cli_segmenter cli_segmenter;

/* Loads and builds the model. @return CLI_OK and *out, or CLI_USAGE/CLI_FAIL with the
 * message printed as "ams <cmd>: ...". */
int cli_segmenter_open(const char *cmd, const cli_seg_opts *o, cli_segmenter **out);
void cli_segmenter_free(cli_segmenter *s);

/* Number of classes of the labels (2 for one-channel outputs). */
int cli_segmenter_classes(const cli_segmenter *s);

/* One line naming everything that decides the labels (model, output, feeds, rule), for the
 * label file's settings. */
const char *cli_segmenter_desc(const cli_segmenter *s);

/* Runs the model on rgb (width x height RGB24 packed, the size given at open) and writes an
 * lw x lh label plane. */
ams_status cli_segmenter_run(cli_segmenter *s, const uint8_t *rgb, uint8_t *labels, int lw,
                             int lh, ams_err *err);

#endif
