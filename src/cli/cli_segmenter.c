/* cli_segmenter.c - RGB frames -> label planes with an imported model or DeepLab. */
#include "cli/cli_segmenter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ams/graph.h"
#include "ams/tfjs.h"
#include "cli/cli_model.h"

struct cli_segmenter {
    ams_tfjs_model *tm;    /* imported model, or NULL */
    ams_params *dp;        /* DeepLab parameters, or NULL */
    ams_graph *g;
    const ams_backend *be;
    int xin, yout;
    int w, h;              /* input size */
    int oh, ow, oc;        /* output size and channels */
    float scale;           /* preprocessing: x = rgb * scale */
    float threshold;
    float *x;              /* the input tensor, h*w*3 */
    char desc[768];
};

static int fail_err(const char *cmd, ams_err *err) { return cli_fail(cmd, err, NULL); }

static int open_tfjs(const char *cmd, const cli_seg_opts *o, cli_segmenter *s, ams_err *err) {
    cli_model m;
    int rc = cli_model_resolve(cmd, o->model, &m);
    if (rc != CLI_OK) return rc;
    for (int i = 0; i < o->nfeeds; i++)
        if ((rc = cli_model_feed(cmd, &m, o->feeds[i])) != CLI_OK) return rc;
    if (ams_tfjs_load(m.path, &s->tm, err) != AMS_OK) return fail_err(cmd, err);
    int channels = 0;
    if (!ams_tfjs_image_input(s->tm, &channels, NULL, NULL) || channels != 3) {
        ams_err_set(err, AMS_E_UNSUPPORTED, "%s: the model has no RGB image input", m.path);
        return fail_err(cmd, err);
    }
    s->g = ams_graph_new(ams_tfjs_params(s->tm));
    if (!s->g) return fail_err(cmd, &(ams_err){AMS_E_NOMEM, "out of memory"});
    const char *out_name = o->output_name ? o->output_name : m.output;
    const char *outs[1] = {out_name};
    ams_tfjs_build_opts bo = {1, s->h, s->w, m.feeds, m.nfeeds};
    if (ams_tfjs_build(s->tm, s->g, &bo, out_name ? outs : NULL, 1, &s->yout, &s->xin, err) != AMS_OK) {
        ams_err_prefix(err, "%s", m.path);
        return fail_err(cmd, err);
    }
    s->scale = 1.0f / 255.0f;
    /* the settings that decide the labels; a path is named by its last component */
    const char *base = strrchr(m.name, '/') ? strrchr(m.name, '/') + 1 : m.name;
    int n = snprintf(s->desc, sizeof s->desc, "%s output=%s", base, out_name ? out_name : "first");
    for (int i = 0; i < m.nfeeds && n > 0 && (size_t)n < sizeof s->desc; i++)
        n += snprintf(s->desc + n, sizeof s->desc - (size_t)n, "%s%s=%g", i ? ";" : " feeds=",
                      m.feeds[i].name, (double)m.feeds[i].value);
    return CLI_OK;
}

/* The built-in architectures a teacher may name (weights from --weights). */
static int is_arch(const char *model) {
    return !strcmp(model, "deeplabv3-mnv2") || !strcmp(model, "deeplabv3plus-xception65");
}

static int open_deeplab(const char *cmd, const cli_seg_opts *o, cli_segmenter *s, ams_err *err) {
    if (!o->deeplab.weights) return cli_usage_error(cmd, "%s needs --weights W.safetensors", o->model);
    cli_deeplab d = o->deeplab;
    d.arch = o->model;
    if (d.os == 0) d.os = 16;
    int rc = cli_deeplab_params(cmd, &d, &s->dp);
    if (rc != CLI_OK) return rc;
    s->g = ams_graph_new(s->dp);
    if (!s->g) return fail_err(cmd, &(ams_err){AMS_E_NOMEM, "out of memory"});
    ams_deeplab_config cfg = {(int)d.classes, (int)d.os};
    if (cli_deeplab_build(&d, s->g, &cfg, 1, s->h, s->w, 0, &s->xin, &s->yout, err) != AMS_OK)
        return fail_err(cmd, err);
    s->scale = 1.0f; /* DeepLab normalises raw RGB itself */
    const char *base = strrchr(d.weights, '/') ? strrchr(d.weights, '/') + 1 : d.weights;
    snprintf(s->desc, sizeof s->desc, "%s os=%ld classes=%ld weights=%s", d.arch, d.os,
             d.classes, base);
    return CLI_OK;
}

int cli_segmenter_open(const char *cmd, const cli_seg_opts *o, cli_segmenter **out) {
    *out = NULL;
    ams_err err = {0};
    const ams_backend *be = cli_backend_threads(cmd, o->backend, o->deeplab.threads);
    if (!be) return CLI_USAGE;
    cli_segmenter *s = calloc(1, sizeof *s);
    if (!s) return fail_err(cmd, &(ams_err){AMS_E_NOMEM, "out of memory"});
    s->be = be;
    s->w = o->width;
    s->h = o->height;
    s->threshold = (float)o->threshold;
    int rc = is_arch(o->model) ? open_deeplab(cmd, o, s, &err) : open_tfjs(cmd, o, s, &err);
    if (rc != CLI_OK) goto fail;
    rc = CLI_FAIL;
    if (ams_graph_plan(s->g, AMS_PLAN_INFER, &err) != AMS_OK) {
        fail_err(cmd, &err);
        goto fail;
    }
    int64_t shape[AMS_MAX_DIMS];
    int nd = ams_graph_shape(s->g, s->yout, shape);
    if (nd != 4 || shape[0] != 1 || shape[3] < 1 || shape[3] > 255) {
        char t[96];
        ams_err_set(&err, AMS_E_SHAPE, "%s: the output is %s, not [1,H,W,C] with C in 1..255",
                    o->model, ams_shape_str(t, sizeof t, nd, shape));
        fail_err(cmd, &err);
        goto fail;
    }
    s->oh = (int)shape[1];
    s->ow = (int)shape[2];
    s->oc = (int)shape[3];
    size_t len = strlen(s->desc);
    if (s->oc == 1) snprintf(s->desc + len, sizeof s->desc - len, " rule=value>%g", (double)s->threshold);
    else snprintf(s->desc + len, sizeof s->desc - len, " rule=argmax");
    s->x = malloc((size_t)s->w * (size_t)s->h * 3 * sizeof(float));
    if (!s->x) {
        fail_err(cmd, &(ams_err){AMS_E_NOMEM, "out of memory"});
        goto fail;
    }
    *out = s;
    return CLI_OK;
fail:
    cli_segmenter_free(s);
    return rc;
}

void cli_segmenter_free(cli_segmenter *s) {
    if (!s) return;
    ams_graph_free(s->g);
    ams_tfjs_free(s->tm);
    ams_params_free(s->dp);
    free(s->x);
    free(s);
}

int cli_segmenter_classes(const cli_segmenter *s) { return s->oc == 1 ? 2 : s->oc; }

const char *cli_segmenter_desc(const cli_segmenter *s) { return s->desc; }

ams_status cli_segmenter_run(cli_segmenter *s, const uint8_t *rgb, uint8_t *labels, int lw,
                             int lh, ams_err *err) {
    size_t n = (size_t)s->w * (size_t)s->h * 3;
    for (size_t i = 0; i < n; i++) s->x[i] = (float)rgb[i] * s->scale;
    AMS_TRY(ams_graph_set_input(s->g, s->xin, s->x, err));
    AMS_TRY(ams_graph_forward(s->g, s->be, err));
    const float *y = ams_graph_value(s->g, s->yout);
    if (!y) return ams_err_set(err, AMS_E_INVAL, "the model's output is not readable");
    for (int ly = 0; ly < lh; ly++) {
        int oy = (int)(((int64_t)2 * ly + 1) * s->oh / (2 * (int64_t)lh));
        for (int lx = 0; lx < lw; lx++) {
            int ox = (int)(((int64_t)2 * lx + 1) * s->ow / (2 * (int64_t)lw));
            const float *v = y + ((size_t)oy * (size_t)s->ow + (size_t)ox) * (size_t)s->oc;
            uint8_t c = 0;
            if (s->oc == 1) {
                c = v[0] > s->threshold;
            } else {
                for (int k = 1; k < s->oc; k++)
                    if (v[k] > v[c]) c = (uint8_t)k;
            }
            labels[(size_t)ly * (size_t)lw + (size_t)lx] = c;
        }
    }
    return AMS_OK;
}
