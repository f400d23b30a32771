/* backend_ref.c - the table of reference kernels, and shape helpers every backend shares. */
#include "nn/ref/ref_kernels.h"

static const ams_backend ref_backend = {
    .name = "ref",
    .state = 0,
    .conv2d_forward = ams_ref_conv2d_forward,
    .conv2d_backward = ams_ref_conv2d_backward,
    .conv2d_transpose_forward = ams_ref_conv2d_transpose_forward,
    .conv2d_transpose_backward = ams_ref_conv2d_transpose_backward,
    .batchnorm_forward = ams_ref_batchnorm_forward,
    .batchnorm_backward = ams_ref_batchnorm_backward,
    .relu_forward = ams_ref_relu_forward,
    .relu_backward = ams_ref_relu_backward,
    .relu6_forward = ams_ref_relu6_forward,
    .relu6_backward = ams_ref_relu6_backward,
    .sigmoid_forward = ams_ref_sigmoid_forward,
    .sigmoid_backward = ams_ref_sigmoid_backward,
    .tanh_forward = ams_ref_tanh_forward,
    .tanh_backward = ams_ref_tanh_backward,
    .affine_forward = ams_ref_affine_forward,
    .affine_backward = ams_ref_affine_backward,
    .hswish_forward = ams_ref_hswish_forward,
    .hswish_backward = ams_ref_hswish_backward,
    .add_forward = ams_ref_add_forward,
    .add_backward = ams_ref_add_backward,
    .mul_forward = ams_ref_mul_forward,
    .mul_backward = ams_ref_mul_backward,
    .div_forward = ams_ref_div_forward,
    .div_backward = ams_ref_div_backward,
    .concat_forward = ams_ref_concat_forward,
    .concat_backward = ams_ref_concat_backward,
    .avgpool_forward = ams_ref_avgpool_forward,
    .avgpool_backward = ams_ref_avgpool_backward,
    .maxpool_forward = ams_ref_maxpool_forward,
    .maxpool_backward = ams_ref_maxpool_backward,
    .global_avgpool_forward = ams_ref_global_avgpool_forward,
    .global_avgpool_backward = ams_ref_global_avgpool_backward,
    .resize_bilinear_forward = ams_ref_resize_bilinear_forward,
    .resize_bilinear_backward = ams_ref_resize_bilinear_backward,
    .dropout_forward = ams_ref_dropout_forward,
    .dropout_backward = ams_ref_dropout_backward,
    .softmax_ce_forward = ams_ref_softmax_ce_forward,
    .softmax_ce_backward = ams_ref_softmax_ce_backward,
    .bce_logits_forward = ams_ref_bce_logits_forward,
    .bce_logits_backward = ams_ref_bce_logits_backward,
};

const ams_backend *ams_backend_ref(void) { return &ref_backend; }

int ams_conv_out_size(int in, int k, int stride, int dil, int pad_before, int pad_after) {
    int eff = dil * (k - 1) + 1;
    int span = in + pad_before + pad_after - eff;
    return span < 0 ? 0 : span / stride + 1;
}

void ams_tf_same_padding(int in, int k, int stride, int dil, int *before, int *after) {
    int eff = (k - 1) * dil + 1;
    int out = (in + stride - 1) / stride;
    int total = (out - 1) * stride + eff - in;
    if (total < 0) total = 0;
    *before = total / 2;
    *after = total - total / 2;
}
