/* cmd_infer.c - `ams infer`: DeepLab logits for a batch of images (.npy in, .npy out). */
#include <stdio.h>
#include <string.h>

#include "ams/npy.h"
#include "cli/cli_common.h"
#include "cli/commands.h"

static const char *const HELP =
    "usage: ams infer --arch ARCH --os {8,16} --classes C --weights W.safetensors\n"
    "                 --input X.npy --output Y.npy [--threads N] [--backend ref|cpu]\n"
    "  X: float32 [N,H,W,3], raw RGB 0..255, any H and W.\n"
    "  Y: float32 [N,H,W,C] logits, bilinearly upsampled (align_corners) to H,W.\n"
    "   or: ams infer --model MODEL --input X.npy --output Y.npy [--output-name NAME]\n"
    "                 [--feed NAME=VALUE ...]   (an imported model: ams infer --model x --help)\n"
    "  ARCH: deeplabv3-mnv2 (DeepLabV3, MobileNetV2) or deeplabv3plus-xception65\n"
    "        (DeepLabV3+, Xception65), with TF DeepLab variable names.\n";

/* Reads X, checks it is float32 [N,H,W,3]; prints the error itself. */
int cli_read_images(const char *cmd, const char *path, ams_tensor **out);

int cli_read_images(const char *cmd, const char *path, ams_tensor **out) {
    ams_err err = {0};
    ams_tensor *x = NULL;
    if (ams_npy_read(path, &x, &err) != AMS_OK) return cli_fail(cmd, &err, NULL);
    char s[96];
    if (x->dtype != AMS_F32 || x->ndim != 4 || x->shape[3] != 3 || x->shape[0] < 1 ||
        x->shape[1] < 1 || x->shape[2] < 1 || x->shape[0] > 4096 || x->shape[1] > 16384 ||
        x->shape[2] > 16384) {
        ams_err_set(&err, AMS_E_SHAPE, "%s: expected float32 [N,H,W,3] images, got %s %s", path,
                    ams_dtype_name(x->dtype), ams_shape_str(s, sizeof s, x->ndim, x->shape));
        ams_tensor_free(x);
        return cli_fail(cmd, &err, NULL);
    }
    *out = x;
    return CLI_OK;
}

int ams_cmd_infer(int argc, char **argv) {
    const char *cmd = "infer";
    for (int i = 1; i < argc; i++) /* an imported model: its own flags (cmd_infer_model.c) */
        if (!strcmp(argv[i], "--model")) return ams_cmd_infer_model(argc, argv);
    cli_deeplab m = {0};
    const char *input = NULL, *output = NULL;
    for (int i = 1; i < argc; i++) {
        int r = cli_deeplab_flag(cmd, &m, argc, argv, &i);
        if (r < 0) return CLI_USAGE;
        if (r > 0) continue;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(HELP, stdout);
            return CLI_OK;
        }
        if (i + 1 < argc && !strcmp(argv[i], "--input")) input = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--output")) output = argv[++i];
        else return cli_usage_error(cmd, "unknown or incomplete option '%s'", argv[i]);
    }
    if (!input || !output) return cli_usage_error(cmd, "--input and --output are required");
    if (!m.weights) return cli_usage_error(cmd, "--weights is required");
    const ams_backend *be = cli_backend_threads(cmd, m.backend, m.threads);
    if (!be) return CLI_USAGE;

    ams_params *p = NULL;
    ams_tensor *x = NULL, *y = NULL;
    ams_graph *g = NULL;
    ams_err err = {0};
    int rc = cli_deeplab_params(cmd, &m, &p);
    if (rc != CLI_OK) return rc;
    rc = cli_read_images(cmd, input, &x);
    if (rc != CLI_OK) goto done;
    int n = (int)x->shape[0], h = (int)x->shape[1], w = (int)x->shape[2];
    ams_deeplab_config cfg = {(int)m.classes, (int)m.os};
    int xin, logits;
    double t0 = cli_now();
    g = ams_graph_new(p);
    if (!g || cli_deeplab_build(&m, g, &cfg, n, h, w, 0, &xin, &logits, &err) != AMS_OK ||
        ams_graph_plan(g, AMS_PLAN_INFER, &err) != AMS_OK)
        goto fail;
    if (ams_graph_set_input(g, xin, x->data, &err) != AMS_OK) {
        ams_err_prefix(&err, "%s", input);
        goto fail;
    }
    if (ams_graph_forward(g, be, &err) != AMS_OK) goto fail;
    y = ams_tensor_new(4, (int64_t[]){n, h, w, m.classes});
    if (!y) {
        ams_err_set(&err, AMS_E_NOMEM, "out of memory for the output");
        goto fail;
    }
    memcpy(y->data, ams_graph_value(g, logits), (size_t)ams_tensor_numel(y) * sizeof(float));
    if (ams_npy_write(output, y, &err) != AMS_OK) goto fail;
    fprintf(stderr, "ams infer: %d image(s) %dx%d, %s backend, %.2f s\n", n, h, w, be->name,
            cli_now() - t0);
    rc = CLI_OK;
    goto done;
fail:
    rc = cli_fail(cmd, &err, NULL);
done:
    ams_graph_free(g);
    ams_tensor_free(x);
    ams_tensor_free(y);
    ams_params_free(p);
    return rc;
}
