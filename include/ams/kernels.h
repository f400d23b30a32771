/* kernels.h - the kernel interface: one table of functions per backend.
 *
 * The graph executor calls every op through an ams_backend, chosen at run time.
 * The reference backend (ams_backend_ref) is plain C, written for clarity, and
 * stays forever as the oracle every faster backend is tested against.
 *
 * Conventions for every kernel:
 * - tensors are float32, contiguous, NHWC for images;
 * - signature = outputs, then inputs, then sizes / descriptors;
 * - forward kernels overwrite their output;
 * - backward kernels ACCUMULATE (+=) into every gradient they are given, and
 *   skip any gradient pointer that is NULL (so only what needs a gradient is computed);
 *   the optional *_set entries (NULL in the reference table) overwrite the gradients they
 *   are told to, for a gradient's first write in a backward pass;
 * - kernels never allocate, never fail: shapes are validated when the graph is built.
 * The first argument (be) lets a backend reach its own state (thread pool, scratch).
 */
#ifndef AMS_KERNELS_H
#define AMS_KERNELS_H

#include "ams/status.h"

/* A 2-D convolution. Input (n,h,w,c), output (n,oh,ow,oc),
 * weight HWIO (kh,kw,c/groups,oc): output channel o belongs to group
 * o / (oc/groups) and reads input channels [g*c/groups, (g+1)*c/groups).
 * Depthwise = groups == c (TF's (kh,kw,c,mult) layout is the same memory).
 * Padding is explicit and may be asymmetric (TF SAME pads the extra row after):
 *   oh = (h + pad_t + pad_b - dil_h*(kh-1) - 1) / stride_h + 1.
 * The transposed convolution uses the SAME descriptor of the forward conv whose
 * data-gradient it is: its input is (n,oh,ow,oc), its output (n,h,w,c), and its
 * weight is TF's conv2d_transpose filter (kh,kw,c,oc) - identical memory. */
typedef struct ams_conv2d_desc {
    int n, h, w, c;            /* input of the forward conv */
    int oh, ow, oc;            /* output of the forward conv */
    int kh, kw;                /* kernel size */
    int stride_h, stride_w;    /* >= 1 */
    int dil_h, dil_w;          /* >= 1 */
    int pad_t, pad_b, pad_l, pad_r; /* zero padding, >= 0 */
    int groups;                /* divides c and oc */
} ams_conv2d_desc;

/* Activations a convolution can apply to its output (conv2d_forward_act). */
enum {
    AMS_CONV_ACT_NONE = 0,
    AMS_CONV_ACT_RELU = 1,
    AMS_CONV_ACT_RELU6 = 2,
    AMS_CONV_ACT_HSWISH = 3, /* x * relu6(x + 3) / 6 (oneDNN's hardswish) */
};

/* Average / max pooling, NHWC. Padded positions never count: an average divides
 * by the number of real input elements under the window (TF semantics). */
typedef struct ams_pool2d_desc {
    int n, h, w, c;
    int oh, ow;
    int kh, kw;
    int stride_h, stride_w;
    int pad_t, pad_b, pad_l, pad_r;
} ams_pool2d_desc;

/* Broadcast of two operands to one output, numpy rules; shapes are already
 * left-padded with 1 to ndim dims. A dimension of a or b is either 1 or out's. */
typedef struct ams_bcast_desc {
    int ndim;                  /* 1..8 */
    int64_t out[8], a[8], b[8];
} ams_bcast_desc;

/* Bilinear resize coordinate rules (TF names). */
typedef enum {
    AMS_RESIZE_ASYMMETRIC = 0,    /* src = dst * in/out (TF default, legacy) */
    AMS_RESIZE_ALIGN_CORNERS = 1, /* src = dst * (in-1)/(out-1) */
    AMS_RESIZE_HALF_PIXEL = 2,    /* src = (dst + 0.5) * in/out - 0.5 (TF half_pixel_centers) */
} ams_resize_mode;

typedef struct ams_backend ams_backend;

struct ams_backend {
    const char *name; /* "ref", "cpu", ... */
    void *state;      /* the backend's own state (NULL for ref) */

    /* out (n,oh,ow,oc); bias (oc) or NULL */
    void (*conv2d_forward)(const ams_backend *be, float *out, const float *in,
                           const float *weight, const float *bias, const ams_conv2d_desc *d);
    /* din (n,h,w,c), dweight like weight, dbias (oc): each may be NULL */
    void (*conv2d_backward)(const ams_backend *be, float *din, float *dweight, float *dbias,
                            const float *dout, const float *in, const float *weight,
                            const ams_conv2d_desc *d);
    /* Optional (NULL: not provided): conv2d_backward, except that din (never NULL) holds
     * garbage and is OVERWRITTEN with the data gradient instead of accumulated into - the
     * executor calls it for the first gradient an activation receives, which saves zeroing
     * it and a read-add pass. dweight and dbias still accumulate. */
    void (*conv2d_backward_din_set)(const ams_backend *be, float *din, float *dweight,
                                    float *dbias, const float *dout, const float *in,
                                    const float *weight, const ams_conv2d_desc *d);
    /* Optional (NULL: the executor masks din in a pass of its own): the backward of a relu
     * folded into the conv that reads its output (graph_plan.c, plan_relu_fold). As
     * conv2d_backward (set: din overwritten, as conv2d_backward_din_set; else added to),
     * then din, now the whole gradient of in = relu(p), is replaced by (in > 0 ? din : 0),
     * relu_backward's select, which makes it p's gradient. */
    void (*conv2d_backward_relu)(const ams_backend *be, int set, float *din, float *dweight,
                                 float *dbias, const float *dout, const float *in,
                                 const float *weight, const ams_conv2d_desc *d);
    /* Optional (NULL: not provided): conv2d_forward with an activation applied to every
     * output in the same pass (act: AMS_CONV_ACT_*), its result multiplied by act_scale (1
     * but for a hard-swish spelled with another constant than 1/6; ignored without an
     * activation), then addend (n,oh,ow,oc; NULL: none, else it must not overlap out)
     * added: out = act(conv + bias) * act_scale + addend. The executor uses it for fused conv chains (graph.h, ams_graph_set_fusion);
     * without it they run op by op. */
    void (*conv2d_forward_act)(const ams_backend *be, float *out, const float *in,
                               const float *weight, const float *bias, const ams_conv2d_desc *d,
                               int act, float act_scale, const float *addend);
    /* out (n,h,w,c) from in (n,oh,ow,oc); bias (c) or NULL */
    void (*conv2d_transpose_forward)(const ams_backend *be, float *out, const float *in,
                                     const float *weight, const float *bias,
                                     const ams_conv2d_desc *d);
    /* din (n,oh,ow,oc), dweight, dbias (c), from dout (n,h,w,c) */
    void (*conv2d_transpose_backward)(const ams_backend *be, float *din, float *dweight,
                                      float *dbias, const float *dout, const float *in,
                                      const float *weight, const ams_conv2d_desc *d);
    /* Optional (NULL: not provided): conv2d_transpose_backward with din (never NULL)
     * OVERWRITTEN (it holds garbage), as conv2d_backward_din_set. */
    void (*conv2d_transpose_backward_din_set)(const ams_backend *be, float *din,
                                              float *dweight, float *dbias, const float *dout,
                                              const float *in, const float *weight,
                                              const ams_conv2d_desc *d);

    /* Frozen batch norm over the last axis: out = (in - mean) / sqrt(var + eps) * gamma + beta.
     * in/out are (rows, c). Moving statistics are constants; gamma/beta are trainable. */
    void (*batchnorm_forward)(const ams_backend *be, float *out, const float *in,
                              const float *gamma, const float *beta, const float *mean,
                              const float *var, float eps, int64_t rows, int c);
    void (*batchnorm_backward)(const ams_backend *be, float *din, float *dgamma, float *dbeta,
                               const float *dout, const float *in, const float *gamma,
                               const float *mean, const float *var, float eps,
                               int64_t rows, int c);

    /* Element-wise activations; backward reads the forward OUTPUT (out). */
    void (*relu_forward)(const ams_backend *be, float *out, const float *in, int64_t n);
    void (*relu_backward)(const ams_backend *be, float *din, const float *dout,
                          const float *out, int64_t n);
    void (*relu6_forward)(const ams_backend *be, float *out, const float *in, int64_t n);
    void (*relu6_backward)(const ams_backend *be, float *din, const float *dout,
                           const float *out, int64_t n);
    void (*sigmoid_forward)(const ams_backend *be, float *out, const float *in, int64_t n);
    void (*sigmoid_backward)(const ams_backend *be, float *din, const float *dout,
                             const float *out, int64_t n);
    void (*tanh_forward)(const ams_backend *be, float *out, const float *in, int64_t n);
    void (*tanh_backward)(const ams_backend *be, float *din, const float *dout,
                          const float *out, int64_t n);
    /* out = in * a + b (scalars): preprocessing, scalar Mul/Add of imported graphs */
    void (*affine_forward)(const ams_backend *be, float *out, const float *in, float a,
                           float b, int64_t n);
    void (*affine_backward)(const ams_backend *be, float *din, const float *dout, float a,
                            int64_t n);

    /* Hard-swish as imported graphs spell it, in one pass: with ab = {a1, b1, a2, b2},
     * out = (in*a1 + b1) * relu6(in*a2 + b2) (TF.js MobileNetV3: {1/6, 0, 1, 3}); the value
     * of the op chain affine, affine, relu6, mul it replaces, bitwise. The backward reads the
     * forward INPUT: din (+)= dout*relu6(t)*a1 + [0 < relu6(t) < 6]*dout*(in*a1 + b1)*a2,
     * t = in*a2 + b2, in the chain's order; set = 1: din is OVERWRITTEN (holds garbage). */
    void (*hswish_forward)(const ams_backend *be, float *out, const float *in, const float *ab,
                           int64_t n);
    void (*hswish_backward)(const ams_backend *be, float *din, const float *dout,
                            const float *in, const float *ab, int64_t n, int set);

    /* Optional (NULL: not provided): relu / relu6 / affine backward with din OVERWRITTEN (it
     * holds garbage), for the first gradient an activation receives (saves zeroing it and
     * reading zeros). */
    void (*relu_backward_set)(const ams_backend *be, float *din, const float *dout,
                              const float *out, int64_t n);
    void (*relu6_backward_set)(const ams_backend *be, float *din, const float *dout,
                               const float *out, int64_t n);
    void (*affine_backward_set)(const ams_backend *be, float *din, const float *dout, float a,
                                int64_t n);

    /* Broadcasting add and mul. */
    void (*add_forward)(const ams_backend *be, float *out, const float *a, const float *b,
                        const ams_bcast_desc *d);
    void (*add_backward)(const ams_backend *be, float *da, float *db, const float *dout,
                         const ams_bcast_desc *d);
    void (*mul_forward)(const ams_backend *be, float *out, const float *a, const float *b,
                        const ams_bcast_desc *d);
    void (*mul_backward)(const ams_backend *be, float *da, float *db, const float *dout,
                         const float *a, const float *b, const ams_bcast_desc *d);
    /* Optional (NULL: not provided): out = a * b (broadcast as d) + c, c of out's shape,
     * bitwise the mul's value plus c, in one pass (the product never stored). */
    void (*mul_add_forward)(const ams_backend *be, float *out, const float *a, const float *b,
                            const float *c, const ams_bcast_desc *d);

    /* Optional (NULL: not provided): add_backward / mul_backward where a gradient whose
     * set_a / set_b flag is 1 is OVERWRITTEN (it holds garbage) instead of accumulated
     * into; when da and db are the same buffer (x + x), only set_a may be 1. */
    void (*add_backward_set)(const ams_backend *be, float *da, float *db, const float *dout,
                             const ams_bcast_desc *d, int set_a, int set_b);
    void (*mul_backward_set)(const ams_backend *be, float *da, float *db, const float *dout,
                             const float *a, const float *b, const ams_bcast_desc *d,
                             int set_a, int set_b);

    /* Broadcasting divide: out = a / b; da += dout / b, db -= dout * a / b^2. */
    void (*div_forward)(const ams_backend *be, float *out, const float *a, const float *b,
                        const ams_bcast_desc *d);
    void (*div_backward)(const ams_backend *be, float *da, float *db, const float *dout,
                         const float *a, const float *b, const ams_bcast_desc *d);

    /* Concatenation of k inputs along one axis. With outer = product of the dims
     * before the axis, input i contributes chunk[i] = dim_i * (product of dims after)
     * contiguous floats per outer index. dins[i] may be NULL. */
    void (*concat_forward)(const ams_backend *be, float *out, const float *const *ins,
                           const int64_t *chunk, int k, int64_t outer);
    void (*concat_backward)(const ams_backend *be, float *const *dins, const float *dout,
                            const int64_t *chunk, int k, int64_t outer);

    /* Pooling. Global average pool: (n,h,w,c) -> (n,1,1,c). */
    void (*avgpool_forward)(const ams_backend *be, float *out, const float *in,
                            const ams_pool2d_desc *d);
    void (*avgpool_backward)(const ams_backend *be, float *din, const float *dout,
                             const ams_pool2d_desc *d);
    void (*maxpool_forward)(const ams_backend *be, float *out, const float *in,
                            const ams_pool2d_desc *d);
    /* gradient goes to the first maximum of each window (row-major order) */
    void (*maxpool_backward)(const ams_backend *be, float *din, const float *dout,
                             const float *in, const ams_pool2d_desc *d);
    void (*global_avgpool_forward)(const ams_backend *be, float *out, const float *in,
                                   int n, int h, int w, int c);
    void (*global_avgpool_backward)(const ams_backend *be, float *din, const float *dout,
                                    int n, int h, int w, int c);
    /* Optional (NULL: not provided): the backward with din OVERWRITTEN (it holds garbage). */
    void (*global_avgpool_backward_set)(const ams_backend *be, float *din, const float *dout,
                                        int n, int h, int w, int c);
    /* Optional (NULL: not provided), both or neither: the pool of a + b (both (n,h,w,c)) without
     * the sum stored: out = the forward of the float sums a + b, bitwise; the backward adds
     * dout / (h*w) into da and db (each may be NULL; set_a / set_b: OVERWRITTEN instead; when
     * da and db are the same buffer, only set_a may be 1). */
    void (*global_avgpool_add_forward)(const ams_backend *be, float *out, const float *a,
                                       const float *b, int n, int h, int w, int c);
    void (*global_avgpool_add_backward)(const ams_backend *be, float *da, float *db,
                                        const float *dout, int n, int h, int w, int c,
                                        int set_a, int set_b);

    /* Bilinear resize (n,h,w,c) -> (n,oh,ow,c). */
    void (*resize_bilinear_forward)(const ams_backend *be, float *out, const float *in, int n,
                                    int h, int w, int c, int oh, int ow, ams_resize_mode mode);
    void (*resize_bilinear_backward)(const ams_backend *be, float *din, const float *dout,
                                     int n, int h, int w, int c, int oh, int ow,
                                     ams_resize_mode mode);

    /* Dropout with a precomputed mask of scales (0 or 1/keep_prob): out = in * mask. */
    void (*dropout_forward)(const ams_backend *be, float *out, const float *in,
                            const float *mask, int64_t n);
    void (*dropout_backward)(const ams_backend *be, float *din, const float *dout,
                             const float *mask, int64_t n);

    /* Softmax cross-entropy, mean over counted pixels. logits (p,c), labels (p).
     * A pixel counts when its label != 255 and, with a class subset (classes[0..nsub),
     * nsub > 0), the label is in the subset; the softmax then runs over the subset's
     * columns only. *loss = sum / count (0 when count == 0), *count = counted pixels. */
    void (*softmax_ce_forward)(const ams_backend *be, float *loss, int64_t *count,
                               const float *logits, const uint8_t *labels, int64_t p, int c,
                               const int *classes, int nsub);
    /* dlogits += dloss * d(loss)/d(logits); columns outside the subset get nothing. */
    void (*softmax_ce_backward)(const ams_backend *be, float *dlogits, float dloss,
                                const float *logits, const uint8_t *labels, int64_t p, int c,
                                const int *classes, int nsub);
    /* Binary cross-entropy on pre-sigmoid logits (p), labels 0/1 (255 ignored), mean over
     * counted pixels, computed stably: max(x,0) - x*y + log(1 + exp(-|x|)). */
    void (*bce_logits_forward)(const ams_backend *be, float *loss, int64_t *count,
                               const float *logits, const uint8_t *labels, int64_t p);
    void (*bce_logits_backward)(const ams_backend *be, float *dlogits, float dloss,
                                const float *logits, const uint8_t *labels, int64_t p);
};

/* The plain-C reference backend (a static table: never freed). */
const ams_backend *ams_backend_ref(void);

/* Output size of one axis of a conv/pool; TF 'SAME' padding (before, after) of one axis. */
int ams_conv_out_size(int in, int k, int stride, int dil, int pad_before, int pad_after);
void ams_tf_same_padding(int in, int k, int stride, int dil, int *before, int *after);

#endif
