/* cpu_backend.h - the fast CPU backend's private state and its kernel entry points.
 *
 * Threads: the backend runs its own loops and oneDNN's on ONE pool, libgomp's (oneDNN
 * as Debian builds it uses OpenMP), so the two never fight over the machine's cores.
 * Caches: a conv descriptor seen for the first time gets its oneDNN primitives,
 * reordered-weight buffers and scratch; later calls only set pointers and run.
 */
#ifndef AMS_CPU_BACKEND_H
#define AMS_CPU_BACKEND_H

#include "ams/backend.h"

#include <stddef.h>

typedef struct cpu_conv_cache cpu_conv_cache;

typedef struct ams_cpu_state {
    int threads;
    int64_t min_parallel;   /* fewer floats of work than this run on the calling thread */
    size_t allocs;          /* allocations made by this backend (caches, scratch) */
    float *part;            /* per-thread partial sums (reductions), part_len floats */
    size_t part_len;
    cpu_conv_cache *conv;   /* oneDNN primitives per descriptor (conv_dnnl.c) */
    float *pw;              /* packed weights of our pointwise convs, pw_len floats */
    size_t pw_len;
} ams_cpu_state;

/* Allocation used for every cache and scratch buffer: 64-byte aligned, counted in
 * st->allocs (tests check that a warmed-up pass makes none). NULL on failure. */
void *ams_cpu_alloc(ams_cpu_state *st, size_t bytes);
/* Ensures st->part holds at least n floats; 0 if that allocation failed. */
int ams_cpu_part_reserve(ams_cpu_state *st, size_t n);
/* Allocations made so far by a cpu backend (0 for others). */
size_t ams_cpu_alloc_count(const ams_backend *be);
/* Sets the OpenMP thread count for the calling thread's next parallel regions. */
void ams_cpu_set_threads(int threads);

/* Convolutions (conv_dnnl.c): oneDNN with the reference kernel as fallback. */
void ams_cpu_conv2d_forward(const ams_backend *be, float *out, const float *in, const float *weight, const float *bias, const ams_conv2d_desc *d);
/* conv2d_forward + activation as a oneDNN post-op (kernels.h: conv2d_forward_act) */
void ams_cpu_conv2d_forward_act(const ams_backend *be, float *out, const float *in, const float *weight, const float *bias, const ams_conv2d_desc *d, int act, float act_scale, const float *addend);
void ams_cpu_conv2d_backward(const ams_backend *be, float *din, float *dweight, float *dbias, const float *dout, const float *in, const float *weight, const ams_conv2d_desc *d);
/* conv2d_backward with din overwritten (kernels.h: conv2d_backward_din_set) */
void ams_cpu_conv2d_backward_din_set(const ams_backend *be, float *din, float *dweight, float *dbias, const float *dout, const float *in, const float *weight, const ams_conv2d_desc *d);
/* conv2d_backward with a folded relu's backward (kernels.h conv2d_backward_relu) */
void ams_cpu_conv2d_backward_relu(const ams_backend *be, int set, float *din, float *dweight, float *dbias, const float *dout, const float *in, const float *weight, const ams_conv2d_desc *d);
void ams_cpu_conv2d_transpose_forward(const ams_backend *be, float *out, const float *in, const float *weight, const float *bias, const ams_conv2d_desc *d);
void ams_cpu_conv2d_transpose_backward(const ams_backend *be, float *din, float *dweight, float *dbias, const float *dout, const float *in, const float *weight, const ams_conv2d_desc *d);
/* the transposed backward with din overwritten (kernels.h: conv2d_transpose_backward_din_set) */
void ams_cpu_conv2d_transpose_backward_din_set(const ams_backend *be, float *din, float *dweight, float *dbias, const float *dout, const float *in, const float *weight, const ams_conv2d_desc *d);
void ams_cpu_conv_cache_free(ams_cpu_state *st);
/* dweight += the weight gradient of the forward conv d with input x and output gradient dy,
 * and dbias (oc) += its bias gradient (each NULL: not asked for), for pointwise (1x1,
 * stride 1, unpadded, one group) and depthwise (multiplier 1; with oneDNN larger than 3x3)
 * convs, the bias gradient the same bits with or without dweight; returns 0 (nothing done)
 * for any other conv, or a bias alone it leaves to ams_cpu_bias_grad (conv_wgrad.c). */
int ams_cpu_conv_wgrad(const ams_backend *be, float *dweight, float *dbias, const float *x,
                       const float *dy, const ams_conv2d_desc *d);

/* Data gradient of depthwise convs (groups == c == oc; column stride <= 8 with dilation 1
 * or stride 1 with any dilation; kernel height <= 64) (conv_dw_bwd.c), used by the build
 * without oneDNN: ams_cpu_dw_dgrad_ok says whether d is one; ams_cpu_dw_dgrad overwrites
 * din (set) or accumulates into it. */
int ams_cpu_dw_dgrad_ok(const ams_conv2d_desc *d);
void ams_cpu_dw_dgrad(const ams_backend *be, int set, float *din, const float *dout,
                      const float *weight, const ams_conv2d_desc *d);
/* The whole backward of a depthwise conv (multiplier 1) in one pass over dout (conv_dw_bwd.c):
 * din overwritten (set) or accumulated into, then, with relu_of (din's layout; NULL: none),
 * kept only where relu_of > 0 (a folded relu's backward, kernels.h conv2d_backward_relu);
 * dweight and dbias accumulated into; each may be NULL (weight may be NULL without din).
 * Returns 0, nothing written, when d is not depthwise or din is asked for a d that
 * ams_cpu_dw_dgrad_ok refuses. */
int ams_cpu_dw_backward(const ams_backend *be, int set, float *din, const float *relu_of,
                        float *dweight, float *dbias, const float *dout, const float *x,
                        const float *weight, const ams_conv2d_desc *d);
/* Transposed convolutions whose windows tile the output (conv_transpose_tiled.c):
 * ams_cpu_conv_tiled says whether d is one (stride == kernel, unpadded, undilated, one
 * group, exact tiling); backward (set: din overwritten, else accumulated into) returns 0
 * when it could not get its scratch (nothing written). */
int ams_cpu_conv_tiled(const ams_conv2d_desc *d);
void ams_cpu_conv_tiled_forward(const ams_backend *be, float *out, const float *in,
                                const float *weight, const float *bias, const ams_conv2d_desc *d);
int ams_cpu_conv_tiled_backward(const ams_backend *be, int set, float *din, float *dweight,
                                float *dbias, const float *dout, const float *in,
                                const float *weight, const ams_conv2d_desc *d);
/* Pointwise convolutions (1x1, stride 1, unpadded, one group, output the input's size) as
 * our own GEMM (conv_pointwise.c): ams_cpu_conv_pointwise says whether d is one; the forward applies
 * its epilogue (bias, act scaled by act_scale, then + addend; NULLs: none) as it stores,
 * the data gradient overwrites din (set) or accumulates, then keeps it only where relu_of
 * (din's layout; NULL: none) is > 0. Both return 0 when the packed weights' buffer could
 * not be allocated (nothing was written). */
int ams_cpu_conv_pointwise(const ams_conv2d_desc *d);
int ams_cpu_pw_available(void); /* the CPU runs them (AVX-512) */
int ams_cpu_pw_forward(const ams_backend *be, float *out, const float *in, const float *weight,
                       const float *bias, const ams_conv2d_desc *d, int act, float act_scale,
                       const float *addend);
int ams_cpu_pw_backward_data(const ams_backend *be, int set, float *din, const float *relu_of,
                             const float *dout, const float *weight, const ams_conv2d_desc *d);
/* acc (c, oc) += x (p, c)^T . dy (p, oc) over pixels [p0, p1): the pointwise weight gradient,
 * and bacc (oc; NULL: none) += the column sums of dy (the bias gradient) in the same pass
 * (only where ams_cpu_pw_available). */
void ams_cpu_pw_wgrad(float *acc, float *bacc, const float *x, const float *dy, int64_t p0,
                      int64_t p1, int c, int oc);
/* Pointwise convolutions too small for a oneDNN call (conv_small.c), on the calling thread. */
int ams_cpu_conv_small(const ams_conv2d_desc *d);
void ams_cpu_conv_small_forward(float *out, const float *in, const float *weight,
                                const float *bias, const ams_conv2d_desc *d);
void ams_cpu_conv_small_backward_data(float *din, const float *dout, const float *weight,
                                      const ams_conv2d_desc *d);

/* Parallel element-wise / row-wise kernels (parallel.c). */
void ams_cpu_fill_table(ams_backend *be);
/* Broadcasting add, mul, div forward and backward (broadcast.c). */
void ams_cpu_fill_broadcast(ams_backend *be);
/* Bilinear resize (resize.c). */
void ams_cpu_fill_resize(ams_backend *be);
/* Binary cross-entropy on logits (bce.c). */
void ams_cpu_fill_bce(ams_backend *be);
/* dst[i] += src[i], i < n, in parallel. */
void ams_cpu_add_into(const ams_backend *be, float *dst, const float *src, int64_t n);
/* dbias (ch) += column sums of dy (pixels, ch), in parallel. */
void ams_cpu_bias_grad(const ams_backend *be, float *dbias, const float *dy, int64_t pixels, int ch);

#endif
