/* cmd_infer_model.c - `ams infer --model M`: runs an imported TF.js graph model
 * (model.json, or a name the fetch script provides: selfie, rvm) on .npy images. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ams/npy.h"
#include "ams/tfjs.h"
#include "cli/cli_common.h"
#include "cli/cli_model.h"
#include "cli/commands.h"

static const char *const HELP =
    "usage: ams infer --model M --input X.npy --output Y.npy [--output-name NAME]\n"
    "                 [--feed NAME=VALUE ...] [--threads N] [--backend ref|cpu]\n"
    "  M: a TF.js model.json, or a model name from tools/fetch-models (selfie, rvm).\n"
    "  X: float32 [N,H,W,C] fed to the graph's image input as is (selfie, rvm: RGB/255).\n"
    "  Y: the named output (node name such as Identity_1, or signature key such as pha),\n"
    "     else the model's default output (selfie: the person probability; rvm: pha).\n"
    "  --feed: a scalar input (rvm: r1i=0 ... r4i=0, downsample_ratio=1; the defaults;\n"
    "          downsample_ratio=0.5 for frames of 384x288 and larger).\n";

int ams_cmd_infer_model(int argc, char **argv) {
    const char *cmd = "infer";
    const char *model = NULL, *input = NULL, *output = NULL, *out_name = NULL;
    const char *backend = "cpu";
    char *feed_text[CLI_MAX_FEEDS];
    int nuser = 0;
    long threads = 0, reps = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(HELP, stdout);
            return CLI_OK;
        }
        if (i + 1 >= argc) return cli_usage_error(cmd, "unknown or incomplete option '%s'", a);
        const char *v = argv[++i];
        if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--input")) input = v;
        else if (!strcmp(a, "--output")) output = v;
        else if (!strcmp(a, "--output-name")) out_name = v;
        else if (!strcmp(a, "--backend")) backend = v;
        else if (!strcmp(a, "--threads")) {
            if (!cli_int(v, 1, 1024, &threads))
                return cli_usage_error(cmd, "--threads needs a number in 1..1024, got '%s'", v);
        } else if (!strcmp(a, "--reps")) { /* timing: run the forward pass N times */
            if (!cli_int(v, 1, 10000, &reps))
                return cli_usage_error(cmd, "--reps needs a number in 1..10000, got '%s'", v);
        } else if (!strcmp(a, "--feed")) {
            if (nuser >= CLI_MAX_FEEDS) return cli_usage_error(cmd, "more than %d --feed", CLI_MAX_FEEDS);
            feed_text[nuser++] = (char *)v;
        } else {
            return cli_usage_error(cmd, "unknown option '%s'", a);
        }
    }
    if (!model || !input || !output)
        return cli_usage_error(cmd, "--model, --input and --output are required");
    const ams_backend *be = cli_backend_threads(cmd, backend, threads);
    if (!be) return CLI_USAGE;

    ams_err err = {0};
    cli_model cm; /* a fetch-cache name (with its default output and feeds) or a path */
    int rc = cli_model_resolve(cmd, model, &cm);
    if (rc != CLI_OK) return rc;
    if (!out_name) out_name = cm.output;
    for (int i = 0; i < nuser; i++)
        if ((rc = cli_model_feed(cmd, &cm, feed_text[i])) != CLI_OK) return rc;
    const char *path = cm.path;
    ams_tfjs_feed *feeds = cm.feeds;
    int nfeeds = cm.nfeeds;

    ams_tfjs_model *m = NULL;
    ams_tensor *x = NULL, *y = NULL;
    ams_graph *g = NULL;
    double t0 = cli_now();
    if (ams_tfjs_load(path, &m, &err) != AMS_OK) return cli_fail(cmd, &err, NULL);
    if (ams_npy_read(input, &x, &err) != AMS_OK) goto fail;
    int channels = 0;
    ams_tfjs_image_input(m, &channels, NULL, NULL);
    char s[96];
    if (x->dtype != AMS_F32 || x->ndim != 4 || x->shape[3] != channels || x->shape[0] < 1 ||
        x->shape[1] < 1 || x->shape[2] < 1 || x->shape[0] > 4096 || x->shape[1] > 16384 ||
        x->shape[2] > 16384) {
        ams_err_set(&err, AMS_E_SHAPE, "%s: expected float32 [N,H,W,%d] images, got %s %s", input,
                    channels, ams_dtype_name(x->dtype), ams_shape_str(s, sizeof s, x->ndim, x->shape));
        goto fail;
    }
    ams_tfjs_build_opts o = {(int)x->shape[0], (int)x->shape[1], (int)x->shape[2], feeds, nfeeds};
    int xin = -1, yout = -1;
    g = ams_graph_new(ams_tfjs_params(m));
    if (!g) {
        ams_err_set(&err, AMS_E_NOMEM, "out of memory");
        goto fail;
    }
    const char *outs[1] = {out_name};
    if (ams_tfjs_build(m, g, &o, out_name ? outs : NULL, 1, &yout, &xin, &err) != AMS_OK) {
        ams_err_prefix(&err, "%s", path);
        goto fail;
    }
    if (ams_graph_plan(g, AMS_PLAN_INFER, &err) != AMS_OK) goto fail;
    double t1 = cli_now(), best = 1e30;
    if (ams_graph_set_input(g, xin, x->data, &err) != AMS_OK) goto fail;
    for (long r = 0; r < reps; r++) {
        double ts = cli_now();
        if (ams_graph_forward(g, be, &err) != AMS_OK) goto fail;
        double dt = cli_now() - ts;
        if (dt < best) best = dt;
    }
    int64_t shape[AMS_MAX_DIMS];
    int nd = ams_graph_shape(g, yout, shape);
    y = ams_tensor_new(nd, shape);
    const float *val = ams_graph_value(g, yout);
    if (!y || !val) {
        ams_err_set(&err, AMS_E_NOMEM, "out of memory for the output");
        goto fail;
    }
    memcpy(y->data, val, (size_t)ams_tensor_numel(y) * sizeof(float));
    if (ams_npy_write(output, y, &err) != AMS_OK) goto fail;
    fprintf(stderr, "ams infer: %s, %d image(s) %dx%d -> %s, %s backend: load+build %.2f s, "
                    "forward %.1f ms (best of %ld)\n",
            model, o.n, o.h, o.w, ams_shape_str(s, sizeof s, nd, shape), be->name, t1 - t0,
            best * 1e3, reps);
    rc = CLI_OK;
    goto done;
fail:
    rc = cli_fail(cmd, &err, NULL);
done:
    ams_graph_free(g);
    ams_tfjs_free(m);
    ams_tensor_free(x);
    ams_tensor_free(y);
    return rc;
}
