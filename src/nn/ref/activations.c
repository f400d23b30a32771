/* activations.c - reference element-wise activations (relu, relu6, sigmoid, tanh), the
 * scalar affine map and hard-swish, forward and backward. Backward kernels read the forward
 * OUTPUT, but hard-swish's, which reads its input. */
#include <math.h>

#include "nn/ref/ref_kernels.h"

void ams_ref_relu_forward(const ams_backend *be, float *out, const float *in, int64_t n) {
    (void)be;
    /* written so that NaN passes through, as in PyTorch */
    for (int64_t i = 0; i < n; i++) out[i] = in[i] < 0.0f ? 0.0f : in[i];
}

void ams_ref_relu_backward(const ams_backend *be, float *din, const float *dout,
                           const float *out, int64_t n) {
    (void)be;
    for (int64_t i = 0; i < n; i++)
        if (out[i] > 0.0f) din[i] += dout[i];
}

void ams_ref_relu6_forward(const ams_backend *be, float *out, const float *in, int64_t n) {
    (void)be;
    for (int64_t i = 0; i < n; i++) {
        float v = in[i] < 0.0f ? 0.0f : in[i];
        out[i] = v > 6.0f ? 6.0f : v;
    }
}

void ams_ref_relu6_backward(const ams_backend *be, float *din, const float *dout,
                            const float *out, int64_t n) {
    (void)be;
    /* the gradient is zero on both clamped sides (PyTorch's hardtanh rule) */
    for (int64_t i = 0; i < n; i++)
        if (out[i] > 0.0f && out[i] < 6.0f) din[i] += dout[i];
}

void ams_ref_sigmoid_forward(const ams_backend *be, float *out, const float *in, int64_t n) {
    (void)be;
    /* exp of a non-positive number only: no overflow for large |x| */
    for (int64_t i = 0; i < n; i++) {
        float x = in[i];
        if (x >= 0.0f) {
            out[i] = 1.0f / (1.0f + expf(-x));
        } else {
            float e = expf(x);
            out[i] = e / (1.0f + e);
        }
    }
}

void ams_ref_sigmoid_backward(const ams_backend *be, float *din, const float *dout,
                              const float *out, int64_t n) {
    (void)be;
    for (int64_t i = 0; i < n; i++) din[i] += dout[i] * out[i] * (1.0f - out[i]);
}

void ams_ref_tanh_forward(const ams_backend *be, float *out, const float *in, int64_t n) {
    (void)be;
    for (int64_t i = 0; i < n; i++) out[i] = tanhf(in[i]);
}

void ams_ref_tanh_backward(const ams_backend *be, float *din, const float *dout,
                           const float *out, int64_t n) {
    (void)be;
    for (int64_t i = 0; i < n; i++) din[i] += dout[i] * (1.0f - out[i] * out[i]);
}

void ams_ref_affine_forward(const ams_backend *be, float *out, const float *in, float a,
                            float b, int64_t n) {
    (void)be;
    for (int64_t i = 0; i < n; i++) out[i] = in[i] * a + b;
}

void ams_ref_affine_backward(const ams_backend *be, float *din, const float *dout, float a,
                             int64_t n) {
    (void)be;
    for (int64_t i = 0; i < n; i++) din[i] += dout[i] * a;
}

/* The op chain m = in*a1 + b1, r = relu6(in*a2 + b2), out = m * r, in one loop, with the
 * same float operations (so the same bits). */
void ams_ref_hswish_forward(const ams_backend *be, float *out, const float *in, const float *ab,
                            int64_t n) {
    (void)be;
    for (int64_t i = 0; i < n; i++) {
        float m = in[i] * ab[0] + ab[1], t = in[i] * ab[2] + ab[3];
        float r = t < 0.0f ? 0.0f : t;
        r = r > 6.0f ? 6.0f : r;
        out[i] = m * r;
    }
}

/* The chain's backward in its order: mul (dm = dout*r, dr = dout*m), relu6 (dt = dr where
 * 0 < r < 6), then the two affine maps into din (the second's first, as the executor runs
 * them in reverse node order). */
void ams_ref_hswish_backward(const ams_backend *be, float *din, const float *dout,
                             const float *in, const float *ab, int64_t n, int set) {
    (void)be;
    for (int64_t i = 0; i < n; i++) {
        float m = in[i] * ab[0] + ab[1], t = in[i] * ab[2] + ab[3];
        float r = t < 0.0f ? 0.0f : t;
        r = r > 6.0f ? 6.0f : r;
        float dm = dout[i] * r, dr = dout[i] * m;
        float dt = r > 0.0f && r < 6.0f ? dr : 0.0f;
        float g = set ? dt * ab[2] : din[i] + dt * ab[2];
        din[i] = g + dm * ab[0];
    }
}
