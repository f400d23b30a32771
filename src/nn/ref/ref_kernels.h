/* ref_kernels.h - the plain-C reference kernels (private); ams_backend_ref() tables them. */
#ifndef AMS_REF_KERNELS_H
#define AMS_REF_KERNELS_H

#include "ams/kernels.h"

void ams_ref_conv2d_forward(const ams_backend *be, float *out, const float *in, const float *weight, const float *bias, const ams_conv2d_desc *d);
void ams_ref_conv2d_backward(const ams_backend *be, float *din, float *dweight, float *dbias, const float *dout, const float *in, const float *weight, const ams_conv2d_desc *d);
void ams_ref_conv2d_transpose_forward(const ams_backend *be, float *out, const float *in, const float *weight, const float *bias, const ams_conv2d_desc *d);
void ams_ref_conv2d_transpose_backward(const ams_backend *be, float *din, float *dweight, float *dbias, const float *dout, const float *in, const float *weight, const ams_conv2d_desc *d);
void ams_ref_batchnorm_forward(const ams_backend *be, float *out, const float *in, const float *gamma, const float *beta, const float *mean, const float *var, float eps, int64_t rows, int c);
void ams_ref_batchnorm_backward(const ams_backend *be, float *din, float *dgamma, float *dbeta, const float *dout, const float *in, const float *gamma, const float *mean, const float *var, float eps, int64_t rows, int c);
void ams_ref_relu_forward(const ams_backend *be, float *out, const float *in, int64_t n);
void ams_ref_relu_backward(const ams_backend *be, float *din, const float *dout, const float *out, int64_t n);
void ams_ref_relu6_forward(const ams_backend *be, float *out, const float *in, int64_t n);
void ams_ref_relu6_backward(const ams_backend *be, float *din, const float *dout, const float *out, int64_t n);
void ams_ref_sigmoid_forward(const ams_backend *be, float *out, const float *in, int64_t n);
void ams_ref_sigmoid_backward(const ams_backend *be, float *din, const float *dout, const float *out, int64_t n);
void ams_ref_tanh_forward(const ams_backend *be, float *out, const float *in, int64_t n);
void ams_ref_tanh_backward(const ams_backend *be, float *din, const float *dout, const float *out, int64_t n);
void ams_ref_affine_forward(const ams_backend *be, float *out, const float *in, float a, float b, int64_t n);
void ams_ref_affine_backward(const ams_backend *be, float *din, const float *dout, float a, int64_t n);
void ams_ref_hswish_forward(const ams_backend *be, float *out, const float *in, const float *ab, int64_t n);
void ams_ref_hswish_backward(const ams_backend *be, float *din, const float *dout, const float *in, const float *ab, int64_t n, int set);
void ams_ref_add_forward(const ams_backend *be, float *out, const float *a, const float *b, const ams_bcast_desc *d);
void ams_ref_add_backward(const ams_backend *be, float *da, float *db, const float *dout, const ams_bcast_desc *d);
void ams_ref_mul_forward(const ams_backend *be, float *out, const float *a, const float *b, const ams_bcast_desc *d);
void ams_ref_mul_backward(const ams_backend *be, float *da, float *db, const float *dout, const float *a, const float *b, const ams_bcast_desc *d);
void ams_ref_div_forward(const ams_backend *be, float *out, const float *a, const float *b, const ams_bcast_desc *d);
void ams_ref_div_backward(const ams_backend *be, float *da, float *db, const float *dout, const float *a, const float *b, const ams_bcast_desc *d);
void ams_ref_concat_forward(const ams_backend *be, float *out, const float *const *ins, const int64_t *chunk, int k, int64_t outer);
void ams_ref_concat_backward(const ams_backend *be, float *const *dins, const float *dout, const int64_t *chunk, int k, int64_t outer);
void ams_ref_avgpool_forward(const ams_backend *be, float *out, const float *in, const ams_pool2d_desc *d);
void ams_ref_avgpool_backward(const ams_backend *be, float *din, const float *dout, const ams_pool2d_desc *d);
void ams_ref_maxpool_forward(const ams_backend *be, float *out, const float *in, const ams_pool2d_desc *d);
void ams_ref_maxpool_backward(const ams_backend *be, float *din, const float *dout, const float *in, const ams_pool2d_desc *d);
void ams_ref_global_avgpool_forward(const ams_backend *be, float *out, const float *in, int n, int h, int w, int c);
void ams_ref_global_avgpool_backward(const ams_backend *be, float *din, const float *dout, int n, int h, int w, int c);
void ams_ref_resize_bilinear_forward(const ams_backend *be, float *out, const float *in, int n, int h, int w, int c, int oh, int ow, ams_resize_mode mode);
void ams_ref_resize_bilinear_backward(const ams_backend *be, float *din, const float *dout, int n, int h, int w, int c, int oh, int ow, ams_resize_mode mode);
void ams_ref_dropout_forward(const ams_backend *be, float *out, const float *in, const float *mask, int64_t n);
void ams_ref_dropout_backward(const ams_backend *be, float *din, const float *dout, const float *mask, int64_t n);
void ams_ref_softmax_ce_forward(const ams_backend *be, float *loss, int64_t *count, const float *logits, const uint8_t *labels, int64_t p, int c, const int *classes, int nsub);
void ams_ref_softmax_ce_backward(const ams_backend *be, float *dlogits, float dloss, const float *logits, const uint8_t *labels, int64_t p, int c, const int *classes, int nsub);
void ams_ref_bce_logits_forward(const ams_backend *be, float *loss, int64_t *count, const float *logits, const uint8_t *labels, int64_t p);
void ams_ref_bce_logits_backward(const ams_backend *be, float *dlogits, float dloss, const float *logits, const uint8_t *labels, int64_t p);

#endif
