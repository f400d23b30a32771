/* cmd_grad.c - `ams grad`: loss and d loss / d parameters of DeepLab on a labelled batch. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ams/npy.h"
#include "ams/safetensors.h"
#include "cli/cli_common.h"
#include "cli/commands.h"

static const char *const HELP =
    "usage: ams grad --arch ARCH --os {8,16} --classes C --weights W.safetensors\n"
    "                --input X.npy --labels L.npy --output G.safetensors\n"
    "                [--subset c1,c2,...] [--threads N] [--backend ref|cpu]\n"
    "  ARCH: deeplabv3-mnv2 (DeepLabV3, MobileNetV2) or deeplabv3plus-xception65\n"
    "        (DeepLabV3+, Xception65), with TF DeepLab variable names.\n"
    "  X: float32 [N,H,W,3] raw RGB 0..255; L: uint8 [N,H,W] class ids, 255 = ignore.\n"
    "  BatchNorm frozen (moving statistics), dropout off. Loss = mean softmax cross-entropy\n"
    "  over pixels whose label != 255 (with --subset: softmax over those classes only, and\n"
    "  pixels of other classes ignored). G: d loss / d p for every trainable tensor, under\n"
    "  its own name. Prints 'loss <value>' on stdout.\n";

int cli_read_images(const char *cmd, const char *path, ams_tensor **out);

/* "0,3,5" -> classes; returns the count or -1. */
static int parse_subset(const char *s, int *classes, int cap, long nclasses) {
    int n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 0 || v >= nclasses || n >= cap) return -1;
        for (int i = 0; i < n; i++)
            if (classes[i] == v) return -1;
        classes[n++] = (int)v;
        if (*end == ',') end++;
        else if (*end) return -1;
        p = end;
    }
    return n;
}

int ams_cmd_grad(int argc, char **argv) {
    const char *cmd = "grad";
    cli_deeplab m = {0};
    const char *input = NULL, *labels = NULL, *output = NULL, *subset = NULL;
    for (int i = 1; i < argc; i++) {
        int r = cli_deeplab_flag(cmd, &m, argc, argv, &i);
        if (r < 0) return CLI_USAGE;
        if (r > 0) continue;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(HELP, stdout);
            return CLI_OK;
        }
        if (i + 1 < argc && !strcmp(argv[i], "--input")) input = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--labels")) labels = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--output")) output = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--subset")) subset = argv[++i];
        else return cli_usage_error(cmd, "unknown or incomplete option '%s'", argv[i]);
    }
    if (!input || !labels || !output)
        return cli_usage_error(cmd, "--input, --labels and --output are required");
    if (!m.weights) return cli_usage_error(cmd, "--weights is required");
    const ams_backend *be = cli_backend_threads(cmd, m.backend, m.threads);
    if (!be) return CLI_USAGE;
    int classes[256], nsub = 0;
    if (subset) {
        nsub = m.classes >= 1 ? parse_subset(subset, classes, 256, m.classes) : -1;
        if (nsub < 1)
            return cli_usage_error(cmd, "--subset '%s': distinct class ids in 0..%ld, comma separated",
                                   subset, m.classes - 1);
    }

    ams_params *p = NULL;
    ams_tensor *x = NULL, *l = NULL;
    ams_graph *g = NULL;
    ams_err err = {0};
    int rc = cli_deeplab_params(cmd, &m, &p);
    if (rc != CLI_OK) return rc;
    rc = cli_read_images(cmd, input, &x);
    if (rc != CLI_OK) goto done;
    if (ams_npy_read(labels, &l, &err) != AMS_OK) goto fail;
    char s1[96], s2[96];
    if (l->dtype != AMS_U8 || l->ndim != 3 || l->shape[0] != x->shape[0] ||
        l->shape[1] != x->shape[1] || l->shape[2] != x->shape[2]) {
        ams_err_set(&err, AMS_E_SHAPE, "%s: expected uint8 labels [%lld,%lld,%lld] for images %s, got %s %s",
                    labels, (long long)x->shape[0], (long long)x->shape[1],
                    (long long)x->shape[2], ams_shape_str(s1, sizeof s1, x->ndim, x->shape),
                    ams_dtype_name(l->dtype), ams_shape_str(s2, sizeof s2, l->ndim, l->shape));
        goto fail;
    }
    const uint8_t *lab = l->data;
    for (int64_t i = 0; i < ams_tensor_numel(l); i++)
        if (lab[i] != 255 && lab[i] >= m.classes) {
            ams_err_set(&err, AMS_E_RANGE, "%s: label %d at element %lld is not a class (0..%ld) or 255",
                        labels, lab[i], (long long)i, m.classes - 1);
            goto fail;
        }
    int n = (int)x->shape[0], h = (int)x->shape[1], w = (int)x->shape[2];
    ams_deeplab_config cfg = {(int)m.classes, (int)m.os};
    int xin, logits;
    double t0 = cli_now();
    g = ams_graph_new(p);
    if (!g || cli_deeplab_build(&m, g, &cfg, n, h, w, 0, &xin, &logits, &err) != AMS_OK)
        goto fail;
    int lin = ams_graph_labels(g, "labels", n, h, w);
    int loss = ams_graph_softmax_ce(g, logits, lin, nsub ? classes : NULL, nsub);
    if (ams_graph_error(g, &err) != AMS_OK || ams_graph_plan(g, AMS_PLAN_TRAIN, &err) != AMS_OK)
        goto fail;
    if (ams_graph_set_input(g, xin, x->data, &err) != AMS_OK) {
        ams_err_prefix(&err, "%s", input);
        goto fail;
    }
    if (ams_graph_set_labels(g, lin, l->data, &err) != AMS_OK) goto fail;
    ams_params_zero_grads(p);
    if (ams_graph_forward(g, be, &err) != AMS_OK || ams_graph_backward(g, be, loss, &err) != AMS_OK)
        goto fail;
    if (ams_params_save_safetensors(p, output, 1, 1, &err) != AMS_OK) goto fail;
    printf("loss %.9g\n", (double)*ams_graph_value(g, loss));
    fprintf(stderr, "ams grad: %d image(s) %dx%d, %lld labelled pixels, %s backend, %.2f s\n", n,
            h, w, (long long)ams_graph_loss_count(g, loss), be->name, cli_now() - t0);
    rc = CLI_OK;
    goto done;
fail:
    rc = cli_fail(cmd, &err, NULL);
done:
    ams_graph_free(g);
    ams_tensor_free(x);
    ams_tensor_free(l);
    ams_params_free(p);
    return rc;
}
