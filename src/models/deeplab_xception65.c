/* deeplab_xception65.c - DeepLabV3+ with the Xception-65 backbone (TF DeepLab
 * "xception_65", the AMS teacher): unit plan, parameter names and the graph.
 * Mirrors research/deeplab/core/xception.py (entry/middle/exit flows of xception
 * modules made of split separable convs) and model.py (ASPP with image pooling,
 * 1x1 and three atrous separable branches; decoder at output stride 4 on the
 * entry block2 separable_conv2_pointwise features). The PyTorch oracle is
 * tools/ref/deeplab_xception65.py. */
#include <stdio.h>
#include <string.h>

#include "ams/deeplab.h"

#define BACKBONE_BN_EPS 1e-3f /* xception arg scope in feature_extractor.py */
#define HEAD_BN_EPS 1e-5f     /* model.py get_batch_norm_params */
#define ASPP_DEPTH 256
#define DECODER_DEPTH 256
#define PROJECTION_DEPTH 48
#define NUNITS 21 /* 3 entry + 16 middle + 2 exit */

typedef enum { SKIP_CONV, SKIP_SUM, SKIP_NONE } skip_kind;

/* xception_65 blocks: scope, depth list, skip, ReLU inside the separable convs, units, stride */
static const struct {
    const char *scope;
    int depth[3];
    skip_kind skip;
    int relu_inside, units, stride;
} BLOCKS[6] = {
    {"entry_flow/block1", {128, 128, 128}, SKIP_CONV, 0, 1, 2},
    {"entry_flow/block2", {256, 256, 256}, SKIP_CONV, 0, 1, 2},
    {"entry_flow/block3", {728, 728, 728}, SKIP_CONV, 0, 1, 2},
    {"middle_flow/block1", {728, 728, 728}, SKIP_SUM, 0, 16, 1},
    {"exit_flow/block1", {728, 1024, 1024}, SKIP_CONV, 0, 1, 2},
    {"exit_flow/block2", {1536, 1536, 2048}, SKIP_NONE, 1, 1, 1},
};

typedef struct unit {
    char name[80]; /* "xception_65/<flow>/<block>/unit_<i>/xception_module" */
    int cin, depth[3], stride, rate, relu_inside;
    skip_kind skip;
} unit;

/* stack_blocks_dense: the root conv takes a factor 2 of the output stride; once the
 * blocks reach the rest, later strides become 1 and the rate grows AFTER the unit. */
static void unit_plan(int output_stride, unit *plan) {
    int target = output_stride / 2, current = 1, rate = 1, cin = 64, k = 0;
    for (int b = 0; b < 6; b++)
        for (int u = 0; u < BLOCKS[b].units; u++, k++) {
            unit *l = &plan[k];
            memset(l, 0, sizeof *l);
            snprintf(l->name, sizeof l->name, "xception_65/%s/unit_%d/xception_module",
                     BLOCKS[b].scope, u + 1);
            l->cin = cin;
            memcpy(l->depth, BLOCKS[b].depth, sizeof l->depth);
            l->skip = BLOCKS[b].skip;
            l->relu_inside = BLOCKS[b].relu_inside;
            if (current == target) {
                l->stride = 1;
                l->rate = rate;
                rate *= BLOCKS[b].stride;
            } else {
                l->stride = BLOCKS[b].stride;
                l->rate = 1;
                current *= BLOCKS[b].stride;
            }
            cin = l->depth[2];
        }
}

static int check_config(const ams_deeplab_config *cfg, ams_err *err) {
    if (cfg->output_stride != 8 && cfg->output_stride != 16)
        return ams_err_set(err, AMS_E_INVAL, "output stride must be 8 or 16, not %d",
                           cfg->output_stride);
    if (cfg->num_classes < 1 || cfg->num_classes > 255)
        return ams_err_set(err, AMS_E_INVAL, "number of classes must be 1..255, not %d",
                           cfg->num_classes);
    return AMS_OK;
}

/* dst = a + sep + b, truncated to cap (names are far shorter than AMS_PARAM_NAME_MAX) */
static void join(char *dst, size_t cap, const char *a, const char *sep, const char *b) {
    const char *parts[3] = {a, sep, b};
    size_t len = 0;
    for (int i = 0; i < 3; i++) {
        size_t l = strlen(parts[i]);
        if (l > cap - 1 - len) l = cap - 1 - len;
        memcpy(dst + len, parts[i], l);
        len += l;
    }
    dst[len] = 0;
}

/* "<unit>/separable_conv<i>" */
static void sep_name(char *dst, size_t cap, const char *unit_name, int i) {
    char leaf[24];
    snprintf(leaf, sizeof leaf, "separable_conv%d", i);
    join(dst, cap, unit_name, "/", leaf);
}

static ams_status declare_convbn(ams_params *p, const char *prefix, int k, int cin, int cout,
                                 int depthwise, ams_err *err) {
    char name[AMS_PARAM_NAME_MAX];
    join(name, sizeof name, prefix, "/", depthwise ? "depthwise_weights" : "weights");
    int64_t wshape[4] = {k, k, cin, depthwise ? 1 : cout};
    if (ams_params_add(p, name, 4, wshape, 1, err) < 0) return err ? err->code : AMS_E_INVAL;
    static const char *const bn[4] = {"gamma", "beta", "moving_mean", "moving_variance"};
    for (int i = 0; i < 4; i++) {
        join(name, sizeof name, prefix, "/BatchNorm/", bn[i]);
        if (ams_params_add(p, name, 1, (int64_t[]){cout}, i < 2, err) < 0)
            return err ? err->code : AMS_E_INVAL;
    }
    return AMS_OK;
}

/* <prefix>_depthwise (3x3) + <prefix>_pointwise (1x1) */
static ams_status declare_sep(ams_params *p, const char *prefix, int cin, int cout,
                              ams_err *err) {
    char name[AMS_PARAM_NAME_MAX];
    join(name, sizeof name, prefix, "_", "depthwise");
    AMS_TRY(declare_convbn(p, name, 3, cin, cin, 1, err));
    join(name, sizeof name, prefix, "_", "pointwise");
    return declare_convbn(p, name, 1, cin, cout, 0, err);
}

ams_status ams_deeplab_xception65_declare(ams_params *p, const ams_deeplab_config *cfg,
                                          ams_err *err) {
    AMS_TRY(check_config(cfg, err));
    unit plan[NUNITS];
    unit_plan(cfg->output_stride, plan);
    AMS_TRY(declare_convbn(p, "xception_65/entry_flow/conv1_1", 3, 3, 32, 0, err));
    AMS_TRY(declare_convbn(p, "xception_65/entry_flow/conv1_2", 3, 32, 64, 0, err));
    char prefix[AMS_PARAM_NAME_MAX];
    for (int k = 0; k < NUNITS; k++) {
        const unit *l = &plan[k];
        int c = l->cin;
        for (int i = 0; i < 3; i++) {
            sep_name(prefix, sizeof prefix, l->name, i + 1);
            AMS_TRY(declare_sep(p, prefix, c, l->depth[i], err));
            c = l->depth[i];
        }
        if (l->skip == SKIP_CONV) {
            join(prefix, sizeof prefix, l->name, "/", "shortcut");
            AMS_TRY(declare_convbn(p, prefix, 1, l->cin, l->depth[2], 0, err));
        }
    }
    int c = plan[NUNITS - 1].depth[2];
    AMS_TRY(declare_convbn(p, "image_pooling", 1, c, ASPP_DEPTH, 0, err));
    AMS_TRY(declare_convbn(p, "aspp0", 1, c, ASPP_DEPTH, 0, err));
    AMS_TRY(declare_sep(p, "aspp1", c, ASPP_DEPTH, err));
    AMS_TRY(declare_sep(p, "aspp2", c, ASPP_DEPTH, err));
    AMS_TRY(declare_sep(p, "aspp3", c, ASPP_DEPTH, err));
    AMS_TRY(declare_convbn(p, "concat_projection", 1, 5 * ASPP_DEPTH, ASPP_DEPTH, 0, err));
    AMS_TRY(declare_convbn(p, "decoder/feature_projection0", 1, BLOCKS[1].depth[1],
                           PROJECTION_DEPTH, 0, err));
    AMS_TRY(declare_sep(p, "decoder/decoder_conv0", ASPP_DEPTH + PROJECTION_DEPTH,
                        DECODER_DEPTH, err));
    AMS_TRY(declare_sep(p, "decoder/decoder_conv1", DECODER_DEPTH, DECODER_DEPTH, err));
    if (ams_params_add(p, "logits/semantic/weights", 4,
                       (int64_t[]){1, 1, DECODER_DEPTH, cfg->num_classes}, 1, err) < 0 ||
        ams_params_add(p, "logits/semantic/biases", 1, (int64_t[]){cfg->num_classes}, 1, err) < 0)
        return err ? err->code : AMS_E_INVAL;
    return AMS_OK;
}

/* A parameter node by name; -1 (recorded as a graph error by ams_graph_param) if absent. */
static int pnode(ams_graph *g, const char *prefix, const char *leaf) {
    char name[AMS_PARAM_NAME_MAX];
    join(name, sizeof name, prefix, "/", leaf);
    return ams_graph_param(g, ams_params_find(ams_graph_params(g), name));
}

/* conv (or depthwise conv) + BN (+ ReLU). fixed_pad: xception's fixed_padding
 * (symmetric (k_eff-1)/2, then VALID) instead of TF SAME, for strided 3x3 convs. */
static int convbn(ams_graph *g, int x, const char *prefix, int k, int stride, int rate,
                  int depthwise, int channels, int fixed_pad, float eps, int relu) {
    int w = pnode(g, prefix, depthwise ? "depthwise_weights" : "weights");
    ams_conv_opts o = {.stride = stride, .dilation = rate, .padding = AMS_PAD_SAME,
                       .groups = depthwise ? channels : 1};
    if (fixed_pad) {
        int total = (k - 1) * rate;
        o.padding = AMS_PAD_EXPLICIT;
        o.pad_t = o.pad_l = total / 2;
        o.pad_b = o.pad_r = total - total / 2;
    }
    int y = ams_graph_conv2d(g, x, w, -1, &o);
    y = ams_graph_batchnorm(g, y, pnode(g, prefix, "BatchNorm/gamma"),
                            pnode(g, prefix, "BatchNorm/beta"),
                            pnode(g, prefix, "BatchNorm/moving_mean"),
                            pnode(g, prefix, "BatchNorm/moving_variance"), eps);
    return relu ? ams_graph_relu(g, y) : y;
}

/* split separable conv: <prefix>_depthwise 3x3 + BN, <prefix>_pointwise 1x1 + BN; relu
 * after each BN when asked (exit block2, ASPP, decoder). */
static int sepconv(ams_graph *g, int x, const char *prefix, int cin, int stride, int rate,
                   float eps, int relu) {
    char name[AMS_PARAM_NAME_MAX];
    join(name, sizeof name, prefix, "_", "depthwise");
    int y = convbn(g, x, name, 3, stride, rate, 1, cin, stride > 1, eps, relu);
    join(name, sizeof name, prefix, "_", "pointwise");
    return convbn(g, y, name, 1, 1, 1, 0, 0, 0, eps, relu);
}

/* model.py scale_dimension for a static size */
static int scale_dimension(int dim, int inv_scale) {
    return (int)((double)(dim - 1) / inv_scale + 1.0);
}

/* bilinear (align_corners) resize of x to oh x ow, skipped when it is the identity */
static int resize_to(ams_graph *g, int x, int oh, int ow) {
    int64_t s[AMS_MAX_DIMS] = {0};
    if (x >= 0) ams_graph_shape(g, x, s);
    if (s[1] == oh && s[2] == ow) return x;
    return ams_graph_resize_bilinear(g, x, oh, ow, AMS_RESIZE_ALIGN_CORNERS);
}

ams_status ams_deeplab_xception65_build(ams_graph *g, const ams_deeplab_config *cfg, int n,
                                        int h, int w, int dropout, int *input, int *logits,
                                        ams_err *err) {
    AMS_TRY(check_config(cfg, err));
    AMS_FAIL_IF(n < 1 || h < 1 || w < 1, err, AMS_E_SHAPE, "bad input size %dx%dx%d", n, h, w);
    unit plan[NUNITS];
    unit_plan(cfg->output_stride, plan);

    int x = ams_graph_input(g, "image", 4, (int64_t[]){n, h, w, 3});
    int y = ams_graph_affine(g, x, 1.0f / 127.5f, -1.0f); /* DeepLab: x * 2/255 - 1 */
    y = convbn(g, y, "xception_65/entry_flow/conv1_1", 3, 2, 1, 0, 32, 1, BACKBONE_BN_EPS, 1);
    y = convbn(g, y, "xception_65/entry_flow/conv1_2", 3, 1, 1, 0, 64, 0, BACKBONE_BN_EPS, 1);
    int low = -1; /* entry block2 separable_conv2_pointwise: the decoder's features */
    char prefix[AMS_PARAM_NAME_MAX];
    for (int k = 0; k < NUNITS; k++) {
        const unit *l = &plan[k];
        int r = y, c = l->cin;
        for (int i = 0; i < 3; i++) {
            if (!l->relu_inside) r = ams_graph_relu(g, r); /* ReLU before each separable conv */
            sep_name(prefix, sizeof prefix, l->name, i + 1);
            r = sepconv(g, r, prefix, c, i == 2 ? l->stride : 1, l->rate, BACKBONE_BN_EPS,
                        l->relu_inside);
            c = l->depth[i];
            if (k == 1 && i == 1) low = r;
        }
        if (l->skip == SKIP_CONV) {
            join(prefix, sizeof prefix, l->name, "/", "shortcut");
            r = ams_graph_add(g, r, convbn(g, y, prefix, 1, l->stride, 1, 0, 0, 0,
                                           BACKBONE_BN_EPS, 0));
        } else if (l->skip == SKIP_SUM) {
            r = ams_graph_add(g, r, y);
        }
        y = r;
    }
    int64_t fs[AMS_MAX_DIMS] = {0};
    if (y >= 0) ams_graph_shape(g, y, fs);
    int c = plan[NUNITS - 1].depth[2];

    /* ASPP: [image pooling, aspp0, aspp1..3] -> concat_projection */
    int br[5];
    br[0] = ams_graph_global_avgpool(g, y);
    br[0] = convbn(g, br[0], "image_pooling", 1, 1, 1, 0, 0, 0, HEAD_BN_EPS, 1);
    br[0] = ams_graph_resize_bilinear(g, br[0], (int)fs[1], (int)fs[2],
                                      AMS_RESIZE_ALIGN_CORNERS);
    br[1] = convbn(g, y, "aspp0", 1, 1, 1, 0, 0, 0, HEAD_BN_EPS, 1);
    int base = cfg->output_stride == 16 ? 6 : 12;
    for (int i = 1; i <= 3; i++) {
        snprintf(prefix, sizeof prefix, "aspp%d", i);
        br[i + 1] = sepconv(g, y, prefix, c, 1, base * i, HEAD_BN_EPS, 1);
    }
    y = ams_graph_concat(g, br, 5, 3);
    y = convbn(g, y, "concat_projection", 1, 1, 1, 0, 0, 0, HEAD_BN_EPS, 1);
    if (dropout) y = ams_graph_dropout(g, y, 0.9f);

    /* decoder at output stride 4 */
    int dh = scale_dimension(h, 4), dw = scale_dimension(w, 4);
    int proj = convbn(g, low, "decoder/feature_projection0", 1, 1, 1, 0, 0, 0, HEAD_BN_EPS, 1);
    int cat[2] = {resize_to(g, y, dh, dw), resize_to(g, proj, dh, dw)};
    y = ams_graph_concat(g, cat, 2, 3);
    y = sepconv(g, y, "decoder/decoder_conv0", ASPP_DEPTH + PROJECTION_DEPTH, 1, 1,
                HEAD_BN_EPS, 1);
    y = sepconv(g, y, "decoder/decoder_conv1", DECODER_DEPTH, 1, 1, HEAD_BN_EPS, 1);
    y = ams_graph_conv2d(g, y, pnode(g, "logits/semantic", "weights"),
                         pnode(g, "logits/semantic", "biases"),
                         &(ams_conv_opts){.padding = AMS_PAD_SAME});
    y = ams_graph_resize_bilinear(g, y, h, w, AMS_RESIZE_ALIGN_CORNERS);
    if (ams_graph_error(g, err) != AMS_OK) {
        ams_err_prefix(err, "deeplabv3plus-xception65");
        return err ? err->code : AMS_E_INVAL;
    }
    *input = x;
    *logits = y;
    return AMS_OK;
}

void ams_deeplab_xception65_init_random(ams_params *p, uint64_t seed) {
    /* the MobileNetV2 initialiser goes by the leaf names only, which both share */
    ams_deeplab_mnv2_init_random(p, seed);
}
