/* deeplab.h - DeepLabV3 with a MobileNetV2 backbone (TF DeepLab's "mobilenet_v2"
 * model variant), with TF DeepLab's variable names and layouts (DESIGN.md).
 *
 *     ams_deeplab_config cfg = {.num_classes = 19, .output_stride = 16};
 *     ams_params *p = ams_params_new();
 *     ams_deeplab_mnv2_declare(p, &cfg, &err);      // every tensor, TF names
 *     ams_params_alloc(p, &err);
 *     ams_params_load_safetensors(p, "w.safetensors", 0, &err);
 *     ams_graph *g = ams_graph_new(p);
 *     int x, logits;
 *     ams_deeplab_mnv2_build(g, &cfg, 1, 256, 512, 0, &x, &logits, &err);
 *
 * Input: raw RGB 0..255, NHWC; the graph applies DeepLab's x/127.5 - 1. Output:
 * logits (n,h,w,num_classes) bilinearly upsampled (align_corners) to the input size.
 * BatchNorm uses the moving statistics (frozen); gamma/beta are trainable.
 */
#ifndef AMS_DEEPLAB_H
#define AMS_DEEPLAB_H

#include "ams/graph.h"

typedef struct ams_deeplab_config {
    int num_classes;   /* >= 1 */
    int output_stride; /* 8 or 16 */
} ams_deeplab_config;

/* Declares every parameter (trainable weights, frozen moving statistics) in TF order. */
ams_status ams_deeplab_mnv2_declare(ams_params *p, const ams_deeplab_config *cfg, ams_err *err);

/* Builds the network for an (n,h,w,3) input into g (whose params were declared by
 * ams_deeplab_mnv2_declare). dropout: 1 adds concat_projection's dropout (keep 0.9),
 * active in training plans. *input, *logits receive the node ids. */
ams_status ams_deeplab_mnv2_build(ams_graph *g, const ams_deeplab_config *cfg, int n, int h,
                                  int w, int dropout, int *input, int *logits, ams_err *err);

/* Fills the weights with a seeded He-style initialisation and unit BN statistics
 * (for tests and benchmarks; real use loads a checkpoint). */
void ams_deeplab_mnv2_init_random(ams_params *p, uint64_t seed);

/* DeepLabV3+ with the Xception-65 backbone (TF DeepLab "xception_65", the AMS
 * teacher): same config, input and output contract as above; decoder at output
 * stride 4, ASPP rates 6/12/18 (OS 16) or 12/24/36 (OS 8), TF names under
 * xception_65/..., aspp1..3_{depthwise,pointwise}, decoder/... (41.3 M values).
 * The PyTorch oracle is tools/ref/deeplab_xception65.py. */
ams_status ams_deeplab_xception65_declare(ams_params *p, const ams_deeplab_config *cfg,
                                          ams_err *err);
ams_status ams_deeplab_xception65_build(ams_graph *g, const ams_deeplab_config *cfg, int n,
                                        int h, int w, int dropout, int *input, int *logits,
                                        ams_err *err);
void ams_deeplab_xception65_init_random(ams_params *p, uint64_t seed);

#endif
