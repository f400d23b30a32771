/* deeplab_mnv2.c - DeepLabV3-MobileNetV2 (TF DeepLab "mobilenet_v2"): layer plan,
 * parameter names and the graph. Mirrors research/deeplab + nets/mobilenet/mobilenet_v2.py:
 * backbone to layer_18 (no Conv_1), ASPP with image pooling + aspp0 only, no decoder. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ams/deeplab.h"
#include "ams/rng.h"

#define BACKBONE_BN_EPS 1e-3f /* slim.batch_norm default */
#define ASPP_BN_EPS 1e-5f     /* deeplab model.py get_batch_norm_params */
#define ASPP_DEPTH 256

/* V2_DEF: op, stride, output channels, expansion (0 = plain conv) for layer_1..layer_18 */
static const struct {
    int stride, nout, expansion;
} V2_SPEC[18] = {
    {2, 32, 0}, {1, 16, 1}, {2, 24, 6}, {1, 24, 6}, {2, 32, 6}, {1, 32, 6},
    {1, 32, 6}, {2, 64, 6}, {1, 64, 6}, {1, 64, 6}, {1, 64, 6}, {1, 96, 6},
    {1, 96, 6}, {1, 96, 6}, {2, 160, 6}, {1, 160, 6}, {1, 160, 6}, {1, 320, 6},
};

typedef struct layer {
    char name[48]; /* "Conv", "expanded_conv", "expanded_conv_N" */
    int cin, cout, inner, stride, rate, residual, expand;
} layer;

/* nets/mobilenet/mobilenet.py _make_divisible */
static int make_divisible(double v, int divisor) {
    int nv = (int)(v + divisor / 2.0) / divisor * divisor;
    if (nv < divisor) nv = divisor;
    if (nv < 0.9 * v) nv += divisor;
    return nv;
}

/* mobilenet_base's stride/rate rule: once the output stride is reached, later
 * stride-2 layers get stride 1 and the rate grows AFTER the converted layer. */
static int backbone_plan(int output_stride, layer *plan) {
    int current = 1, rate = 1, cin = 3;
    for (int i = 0; i < 18; i++) {
        layer *l = &plan[i];
        memset(l, 0, sizeof *l);
        int s = V2_SPEC[i].stride;
        if (current == output_stride) {
            l->stride = 1;
            l->rate = rate;
            rate *= s;
        } else {
            l->stride = s;
            l->rate = 1;
            current *= s;
        }
        l->cin = cin;
        l->cout = V2_SPEC[i].nout;
        if (i == 0) {
            snprintf(l->name, sizeof l->name, "Conv");
        } else {
            if (i == 1) snprintf(l->name, sizeof l->name, "expanded_conv");
            else snprintf(l->name, sizeof l->name, "expanded_conv_%d", i - 1);
            int t = V2_SPEC[i].expansion;
            l->inner = t == 1 ? cin : make_divisible(cin * t, 8);
            l->expand = l->inner > cin;
            l->residual = l->stride == 1 && cin == l->cout;
        }
        cin = l->cout;
    }
    return current == output_stride;
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

/* dst = a + "/" + b, truncated to cap (names are far shorter than AMS_PARAM_NAME_MAX) */
static void join(char *dst, size_t cap, const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > cap - 2) la = cap - 2;
    if (lb > cap - 2 - la) lb = cap - 2 - la;
    memcpy(dst, a, la);
    dst[la] = '/';
    memcpy(dst + la + 1, b, lb);
    dst[la + 1 + lb] = 0;
}

static ams_status declare_convbn(ams_params *p, const char *prefix, int k, int cin, int cout,
                                 int depthwise, ams_err *err) {
    char name[AMS_PARAM_NAME_MAX];
    join(name, sizeof name, prefix, depthwise ? "depthwise_weights" : "weights");
    int64_t wshape[4] = {k, k, depthwise ? cin : cin, depthwise ? 1 : cout};
    if (ams_params_add(p, name, 4, wshape, 1, err) < 0) return err ? err->code : AMS_E_INVAL;
    static const char *const bn[4] = {"gamma", "beta", "moving_mean", "moving_variance"};
    for (int i = 0; i < 4; i++) {
        char bnp[AMS_PARAM_NAME_MAX];
        join(bnp, sizeof bnp, prefix, "BatchNorm");
        join(name, sizeof name, bnp, bn[i]);
        if (ams_params_add(p, name, 1, (int64_t[]){cout}, i < 2, err) < 0)
            return err ? err->code : AMS_E_INVAL;
    }
    return AMS_OK;
}

ams_status ams_deeplab_mnv2_declare(ams_params *p, const ams_deeplab_config *cfg, ams_err *err) {
    AMS_TRY(check_config(cfg, err));
    layer plan[18];
    backbone_plan(cfg->output_stride, plan);
    char prefix[128];
    for (int i = 0; i < 18; i++) {
        const layer *l = &plan[i];
        join(prefix, sizeof prefix, "MobilenetV2", l->name);
        if (i == 0) {
            AMS_TRY(declare_convbn(p, prefix, 3, l->cin, l->cout, 0, err));
            continue;
        }
        char sub[160];
        if (l->expand) {
            join(sub, sizeof sub, prefix, "expand");
            AMS_TRY(declare_convbn(p, sub, 1, l->cin, l->inner, 0, err));
        }
        join(sub, sizeof sub, prefix, "depthwise");
        AMS_TRY(declare_convbn(p, sub, 3, l->inner, l->inner, 1, err));
        join(sub, sizeof sub, prefix, "project");
        AMS_TRY(declare_convbn(p, sub, 1, l->inner, l->cout, 0, err));
    }
    int c = plan[17].cout;
    AMS_TRY(declare_convbn(p, "image_pooling", 1, c, ASPP_DEPTH, 0, err));
    AMS_TRY(declare_convbn(p, "aspp0", 1, c, ASPP_DEPTH, 0, err));
    AMS_TRY(declare_convbn(p, "concat_projection", 1, 2 * ASPP_DEPTH, ASPP_DEPTH, 0, err));
    if (ams_params_add(p, "logits/semantic/weights", 4,
                       (int64_t[]){1, 1, ASPP_DEPTH, cfg->num_classes}, 1, err) < 0 ||
        ams_params_add(p, "logits/semantic/biases", 1, (int64_t[]){cfg->num_classes}, 1, err) < 0)
        return err ? err->code : AMS_E_INVAL;
    return AMS_OK;
}

/* A parameter node by name; -1 (recorded as a graph error by ams_graph_param) if absent. */
static int pnode(ams_graph *g, const ams_params *p, const char *prefix, const char *leaf) {
    char name[AMS_PARAM_NAME_MAX];
    join(name, sizeof name, prefix, leaf);
    return ams_graph_param(g, ams_params_find(p, name));
}

typedef enum { ACT_NONE, ACT_RELU, ACT_RELU6 } act;

static int convbn(ams_graph *g, const ams_params *p, int x, const char *prefix, int stride,
                  int rate, int depthwise, int channels, float eps, act a) {
    int w = pnode(g, p, prefix, depthwise ? "depthwise_weights" : "weights");
    ams_conv_opts o = {.stride = stride, .dilation = rate, .padding = AMS_PAD_SAME,
                       .groups = depthwise ? channels : 1};
    int y = ams_graph_conv2d(g, x, w, -1, &o);
    y = ams_graph_batchnorm(g, y, pnode(g, p, prefix, "BatchNorm/gamma"),
                            pnode(g, p, prefix, "BatchNorm/beta"),
                            pnode(g, p, prefix, "BatchNorm/moving_mean"),
                            pnode(g, p, prefix, "BatchNorm/moving_variance"), eps);
    if (a == ACT_RELU) y = ams_graph_relu(g, y);
    if (a == ACT_RELU6) y = ams_graph_relu6(g, y);
    return y;
}

ams_status ams_deeplab_mnv2_build(ams_graph *g, const ams_deeplab_config *cfg, int n, int h,
                                  int w, int dropout, int *input, int *logits, ams_err *err) {
    AMS_TRY(check_config(cfg, err));
    AMS_FAIL_IF(n < 1 || h < 1 || w < 1, err, AMS_E_SHAPE, "bad input size %dx%dx%d", n, h, w);
    const ams_params *p = ams_graph_params(g);
    layer plan[18];
    backbone_plan(cfg->output_stride, plan);

    int x = ams_graph_input(g, "image", 4, (int64_t[]){n, h, w, 3});
    int y = ams_graph_affine(g, x, 1.0f / 127.5f, -1.0f); /* DeepLab: x * 2/255 - 1 */
    char prefix[128], sub[160];
    for (int i = 0; i < 18; i++) {
        const layer *l = &plan[i];
        join(prefix, sizeof prefix, "MobilenetV2", l->name);
        if (i == 0) {
            y = convbn(g, p, y, prefix, l->stride, l->rate, 0, l->cout, BACKBONE_BN_EPS,
                       ACT_RELU6);
            continue;
        }
        int z = y;
        if (l->expand) {
            join(sub, sizeof sub, prefix, "expand");
            z = convbn(g, p, z, sub, 1, 1, 0, l->inner, BACKBONE_BN_EPS, ACT_RELU6);
        }
        join(sub, sizeof sub, prefix, "depthwise");
        z = convbn(g, p, z, sub, l->stride, l->rate, 1, l->inner, BACKBONE_BN_EPS, ACT_RELU6);
        join(sub, sizeof sub, prefix, "project");
        z = convbn(g, p, z, sub, 1, 1, 0, l->cout, BACKBONE_BN_EPS, ACT_NONE);
        y = l->residual ? ams_graph_add(g, z, y) : z;
    }
    int64_t fs[AMS_MAX_DIMS] = {0};
    if (y >= 0) ams_graph_shape(g, y, fs);

    /* ASPP: image-level feature (pool over the whole map, broadcast back) + aspp0 */
    int pool = ams_graph_global_avgpool(g, y);
    pool = convbn(g, p, pool, "image_pooling", 1, 1, 0, ASPP_DEPTH, ASPP_BN_EPS, ACT_RELU);
    pool = ams_graph_resize_bilinear(g, pool, (int)fs[1], (int)fs[2], AMS_RESIZE_ALIGN_CORNERS);
    int a0 = convbn(g, p, y, "aspp0", 1, 1, 0, ASPP_DEPTH, ASPP_BN_EPS, ACT_RELU);
    int cat = ams_graph_concat(g, (int[]){pool, a0}, 2, 3);
    y = convbn(g, p, cat, "concat_projection", 1, 1, 0, ASPP_DEPTH, ASPP_BN_EPS, ACT_RELU);
    if (dropout) y = ams_graph_dropout(g, y, 0.9f);
    y = ams_graph_conv2d(g, y, pnode(g, p, "logits/semantic", "weights"),
                         pnode(g, p, "logits/semantic", "biases"),
                         &(ams_conv_opts){.padding = AMS_PAD_SAME});
    y = ams_graph_resize_bilinear(g, y, h, w, AMS_RESIZE_ALIGN_CORNERS);
    if (ams_graph_error(g, err) != AMS_OK) {
        ams_err_prefix(err, "deeplabv3-mnv2");
        return err ? err->code : AMS_E_INVAL;
    }
    *input = x;
    *logits = y;
    return AMS_OK;
}

void ams_deeplab_mnv2_init_random(ams_params *p, uint64_t seed) {
    ams_rng rng;
    ams_rng_seed(&rng, seed);
    for (int i = 0; i < p->count; i++) {
        const ams_param_info *pi = &p->info[i];
        float *v = ams_params_data(p, i);
        const char *leaf = strrchr(pi->name, '/');
        leaf = leaf ? leaf + 1 : pi->name;
        float fill = -1.0f;
        if (!strcmp(leaf, "gamma") || !strcmp(leaf, "moving_variance")) fill = 1.0f;
        else if (!strcmp(leaf, "beta") || !strcmp(leaf, "moving_mean") || !strcmp(leaf, "biases"))
            fill = 0.0f;
        if (fill >= 0.0f) {
            for (int64_t j = 0; j < pi->numel; j++) v[j] = fill;
            continue;
        }
        /* He init over the fan-in (kh*kw*cin_per_group) */
        double fan_in = (double)pi->shape[0] * (double)pi->shape[1] *
                        (strstr(leaf, "depthwise") ? 1.0 : (double)pi->shape[2]);
        float sd = (float)sqrt(2.0 / fan_in);
        for (int64_t j = 0; j < pi->numel; j++) v[j] = sd * ams_rng_normal(&rng);
    }
}
