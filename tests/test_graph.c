/* test_graph.c - the graph executor: whole-graph gradients against finite differences,
 * memory plans that must not change results, builder errors, and DeepLab's layer plan. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ams/deeplab.h"
#include "ams/graph.h"
#include "ams/rng.h"
#include "check.h"
#include "gradcheck.h"

typedef struct net {
    ams_params *p;
    ams_graph *g;
    int x, labels, out, loss;
    float *xdata;
    uint8_t *ldata;
} net;

static void fill_normal(float *v, size_t n, float sd, ams_rng *r) {
    for (size_t i = 0; i < n; i++) v[i] = sd * ams_rng_normal(r);
}

enum { N = 2, H = 9, W = 11, C = 5 };

/* A small graph touching most ops: conv (stride 2, SAME), BN, relu6, depthwise dilated
 * conv, residual add, global pool branch + mul broadcast, concat, maxpool/avgpool,
 * transposed conv, sigmoid/tanh, bias conv, resize, softmax CE over a class subset. */
static int build_small(net *t, ams_plan_mode mode, ams_err *err) {
    ams_rng r;
    ams_rng_seed(&r, 11);
    t->p = ams_params_new();
    int w1 = ams_params_add(t->p, "w1", 4, (int64_t[]){3, 3, 3, 8}, 1, err);
    int gam = ams_params_add(t->p, "gamma", 1, (int64_t[]){8}, 1, err);
    int bet = ams_params_add(t->p, "beta", 1, (int64_t[]){8}, 1, err);
    int mea = ams_params_add(t->p, "mean", 1, (int64_t[]){8}, 0, err);
    int var = ams_params_add(t->p, "var", 1, (int64_t[]){8}, 0, err);
    int wd = ams_params_add(t->p, "dw", 4, (int64_t[]){3, 3, 1, 8}, 1, err);
    int wp = ams_params_add(t->p, "wp", 4, (int64_t[]){1, 1, 8, 8}, 1, err);
    int wt = ams_params_add(t->p, "wt", 4, (int64_t[]){2, 2, 4, 16}, 1, err);
    int wl = ams_params_add(t->p, "wl", 4, (int64_t[]){1, 1, 4, C}, 1, err);
    int bl = ams_params_add(t->p, "bl", 1, (int64_t[]){C}, 1, err);
    if (bl < 0 || ams_params_alloc(t->p, err) != AMS_OK) return 1;
    for (int i = 0; i < t->p->count; i++)
        fill_normal(ams_params_data(t->p, i), (size_t)t->p->info[i].numel, 0.5f, &r);
    for (int i = 0; i < 8; i++) {
        ams_params_data(t->p, gam)[i] = 1.0f + 0.2f * ams_rng_normal(&r);
        ams_params_data(t->p, var)[i] = 0.5f + ams_rng_uniform(&r);
    }
    ams_graph *g = t->g = ams_graph_new(t->p);
    t->x = ams_graph_input(g, "x", 4, (int64_t[]){N, H, W, 3});
    int y = ams_graph_conv2d(g, t->x, ams_graph_param(g, w1), -1,
                             &(ams_conv_opts){.stride = 2, .padding = AMS_PAD_SAME});
    y = ams_graph_batchnorm(g, y, ams_graph_param(g, gam), ams_graph_param(g, bet),
                            ams_graph_param(g, mea), ams_graph_param(g, var), 1e-3f);
    y = ams_graph_relu6(g, ams_graph_affine(g, y, 0.5f, 0.5f)); /* few clipped values */
    int z = ams_graph_conv2d(g, y, ams_graph_param(g, wd), -1,
                             &(ams_conv_opts){.dilation = 2, .padding = AMS_PAD_SAME, .groups = 8});
    z = ams_graph_conv2d(g, ams_graph_relu(g, z), ams_graph_param(g, wp), -1,
                         &(ams_conv_opts){.padding = AMS_PAD_VALID});
    y = ams_graph_add(g, y, z);                                     /* (N,5,6,8) */
    int pool = ams_graph_sigmoid(g, ams_graph_global_avgpool(g, y)); /* (N,1,1,8) */
    y = ams_graph_mul(g, y, pool);
    int mp = ams_graph_maxpool(g, y, 2, 2, 1, 1, AMS_PAD_SAME);
    int ap = ams_graph_avgpool(g, y, 3, 3, 1, 1, AMS_PAD_SAME);
    y = ams_graph_concat(g, (int[]){mp, ap}, 2, 3);                  /* (N,5,6,16) */
    y = ams_graph_conv2d_transpose(g, y, ams_graph_param(g, wt), -1, 10, 12,
                                   &(ams_conv_opts){.stride = 2, .padding = AMS_PAD_SAME});
    y = ams_graph_tanh(g, y);                                        /* (N,10,12,4) */
    y = ams_graph_conv2d(g, y, ams_graph_param(g, wl), ams_graph_param(g, bl),
                         &(ams_conv_opts){.padding = AMS_PAD_SAME});
    t->out = ams_graph_resize_bilinear(g, y, H, W, AMS_RESIZE_HALF_PIXEL);
    t->labels = ams_graph_labels(g, "labels", N, H, W);
    t->loss = ams_graph_softmax_ce(g, t->out, t->labels, (int[]){0, 2, 3}, 3);
    ams_graph_keep(g, t->out);
    if (ams_graph_plan(g, mode, err) != AMS_OK) return 1;
    t->xdata = malloc(N * H * W * 3 * sizeof(float));
    t->ldata = malloc(N * H * W);
    fill_normal(t->xdata, N * H * W * 3, 1.0f, &r);
    for (int i = 0; i < N * H * W; i++) {
        uint32_t u = (uint32_t)(ams_rng_u64(&r) % 6);
        t->ldata[i] = u == 5 ? 255 : (uint8_t)u;
    }
    if (ams_graph_set_input(g, t->x, t->xdata, err) != AMS_OK) return 1;
    return ams_graph_set_labels(g, t->labels, t->ldata, err) != AMS_OK;
}

static void net_free(net *t) {
    ams_graph_free(t->g);
    ams_params_free(t->p);
    free(t->xdata);
    free(t->ldata);
}

static double loss_at(net *t) {
    ams_err err = {0};
    if (ams_graph_forward(t->g, ams_backend_ref(), &err) != AMS_OK) return NAN;
    return *ams_graph_value(t->g, t->loss);
}

/* Directional and per-element finite differences of the loss vs the backward pass. */
static int check_param_grads(net *t, double tol, float eps, int elements) {
    ams_err err = {0};
    ams_params *p = t->p;
    ams_params_zero_grads(p);
    CHECK(ams_graph_forward(t->g, ams_backend_ref(), &err) == AMS_OK);
    CHECKF(ams_graph_backward(t->g, ams_backend_ref(), t->loss, &err) == AMS_OK, "%s", err.msg);
    ams_rng r;
    ams_rng_seed(&r, 5);
    for (int i = 0; i < p->count; i++) {
        const ams_param_info *pi = &p->info[i];
        float *v = ams_params_data(p, i), *gr = ams_params_grad(p, i);
        if (!pi->trainable) {
            for (int64_t j = 0; j < pi->numel; j++) CHECK(gr[j] == 0);
            continue;
        }
        /* a few single elements (float loss: absolute noise ~1e-4 at this step) */
        for (int64_t j = 0; j < pi->numel && j < elements; j++) {
            int64_t k = (int64_t)(ams_rng_u64(&r) % (uint64_t)pi->numel);
            float e = eps, old = v[k];
            v[k] = old + e;
            double l1 = loss_at(t);
            v[k] = old - e;
            double l2 = loss_at(t);
            v[k] = old;
            double num = (l1 - l2) / (2 * e);
            CHECKF(fabs(num - gr[k]) <= tol * fmax(fabs(num), fabs(gr[k])) + 3e-4,
                   "%s[%lld]: numeric %.6g analytic %.6g", pi->name, (long long)k, num, gr[k]);
        }
        /* directional derivative along a random unit direction of this tensor */
        float *d = malloc((size_t)pi->numel * sizeof(float));
        double dn = 0, analytic = 0;
        for (int64_t j = 0; j < pi->numel; j++) {
            d[j] = ams_rng_normal(&r);
            dn += (double)d[j] * d[j];
        }
        for (int64_t j = 0; j < pi->numel; j++) {
            d[j] /= (float)sqrt(dn);
            analytic += (double)d[j] * gr[j];
        }
        for (int64_t j = 0; j < pi->numel; j++) v[j] += eps * d[j];
        double lp = loss_at(t);
        for (int64_t j = 0; j < pi->numel; j++) v[j] -= 2 * eps * d[j];
        double lm = loss_at(t);
        for (int64_t j = 0; j < pi->numel; j++) v[j] += eps * d[j];
        free(d);
        double numeric = (lp - lm) / (2 * eps);
        CHECKF(fabs(numeric - analytic) <= tol * fmax(fabs(numeric), fabs(analytic)) + 3e-4, "%s: numeric %.6g analytic %.6g",
               pi->name, numeric, analytic);
    }
    return 0;
}

static int test_small_graph_gradients(void) {
    net t = {0};
    ams_err err = {0};
    CHECKF(build_small(&t, AMS_PLAN_TRAIN, &err) == 0, "%s", err.msg);
    int r = check_param_grads(&t, 2e-2, 1e-3f, 4);
    net_free(&t);
    return r;
}

/* The same graph planned for inference (aggressive reuse) and training (activations
 * kept) must give bit-identical outputs, and inference must need less memory. */
static int test_plans_agree(void) {
    net a = {0}, b = {0};
    ams_err err = {0};
    CHECKF(build_small(&a, AMS_PLAN_INFER, &err) == 0, "%s", err.msg);
    CHECKF(build_small(&b, AMS_PLAN_TRAIN, &err) == 0, "%s", err.msg);
    CHECK(ams_graph_forward(a.g, ams_backend_ref(), &err) == AMS_OK);
    CHECK(ams_graph_forward(b.g, ams_backend_ref(), &err) == AMS_OK);
    const float *ya = ams_graph_value(a.g, a.out), *yb = ams_graph_value(b.g, b.out);
    CHECK(ya && yb);
    CHECK(memcmp(ya, yb, N * H * W * C * sizeof(float)) == 0);
    CHECK(*ams_graph_value(a.g, a.loss) == *ams_graph_value(b.g, b.loss));
    CHECK(ams_graph_arena_bytes(a.g) < ams_graph_arena_bytes(b.g));
    /* an intermediate value of an inference plan is not promised */
    int conv = -1;
    for (int i = 0; i < ams_graph_node_count(a.g) && conv < 0; i++)
        if (ams_graph_node_op(a.g, i) == AMS_OP_CONV2D) conv = i;
    CHECK(conv >= 0 && ams_graph_value(a.g, conv) == NULL);
    CHECK(ams_graph_value(b.g, conv) == NULL);
    /* repeated forward/backward gives identical gradients (no state leaks between passes) */
    ams_params_zero_grads(b.p);
    CHECK(ams_graph_forward(b.g, ams_backend_ref(), &err) == AMS_OK);
    CHECK(ams_graph_backward(b.g, ams_backend_ref(), b.loss, &err) == AMS_OK);
    float *g1 = malloc(b.p->total * sizeof(float));
    memcpy(g1, b.p->grads, b.p->total * sizeof(float));
    ams_params_zero_grads(b.p);
    CHECK(ams_graph_forward(b.g, ams_backend_ref(), &err) == AMS_OK);
    CHECK(ams_graph_backward(b.g, ams_backend_ref(), b.loss, &err) == AMS_OK);
    int same = memcmp(g1, b.p->grads, b.p->total * sizeof(float)) == 0;
    free(g1);
    CHECK(same);
    net_free(&a);
    net_free(&b);
    return 0;
}

/* Broadcasting divide: gradients into both operands, reduced over broadcast dims. */
static int test_div_gradients(void) {
    ams_err err = {0};
    net t = {0};
    ams_rng r;
    ams_rng_seed(&r, 21);
    t.p = ams_params_new();
    int w = ams_params_add(t.p, "w", 1, (int64_t[]){4}, 1, &err);
    int v = ams_params_add(t.p, "v", 4, (int64_t[]){1, 3, 1, 1}, 1, &err);
    CHECK(v >= 0 && ams_params_alloc(t.p, &err) == AMS_OK);
    fill_normal(ams_params_data(t.p, w), 4, 1.0f, &r);
    fill_normal(ams_params_data(t.p, v), 3, 1.0f, &r);
    ams_graph *g = t.g = ams_graph_new(t.p);
    t.x = ams_graph_input(g, "x", 4, (int64_t[]){2, 3, 5, 4});
    int num = ams_graph_mul(g, t.x, ams_graph_param(g, w));
    int den = ams_graph_affine(g, ams_graph_sigmoid(g, ams_graph_param(g, v)), 1.0f, 0.5f);
    t.out = ams_graph_div(g, num, den);
    t.labels = ams_graph_labels(g, "labels", 2, 3, 5);
    t.loss = ams_graph_softmax_ce(g, t.out, t.labels, NULL, 0);
    CHECKF(ams_graph_plan(g, AMS_PLAN_TRAIN, &err) == AMS_OK, "%s", err.msg);
    t.xdata = malloc(2 * 3 * 5 * 4 * sizeof(float));
    t.ldata = malloc(2 * 3 * 5);
    fill_normal(t.xdata, 120, 1.0f, &r);
    for (int i = 0; i < 30; i++) t.ldata[i] = (uint8_t)(ams_rng_u64(&r) % 4);
    CHECK(ams_graph_set_input(g, t.x, t.xdata, &err) == AMS_OK);
    CHECK(ams_graph_set_labels(g, t.labels, t.ldata, &err) == AMS_OK);
    int rc = check_param_grads(&t, 1e-2, 1e-3f, 4);
    net_free(&t);
    return rc;
}

static int test_builder_errors(void) {
    ams_err err = {0};
    ams_params *p = ams_params_new();
    int w = ams_params_add(p, "w", 4, (int64_t[]){3, 3, 4, 8}, 1, &err);
    CHECK(ams_params_alloc(p, &err) == AMS_OK);
    ams_graph *g = ams_graph_new(p);
    int x = ams_graph_input(g, "x", 4, (int64_t[]){1, 8, 8, 3});
    int y = ams_graph_conv2d(g, x, ams_graph_param(g, w), -1, &(ams_conv_opts){0});
    CHECK(y == -1);
    CHECK(ams_graph_error(g, &err) == AMS_E_SHAPE);
    CHECKF(strstr(err.msg, "conv2d 'w'") && strstr(err.msg, "[1,8,8,3]"), "%s", err.msg);
    CHECK(ams_graph_relu(g, y) == -1); /* errors stick */
    CHECK(ams_graph_plan(g, AMS_PLAN_INFER, &err) != AMS_OK);
    ams_graph_free(g);
    /* a training plan without a loss, an unset input, NaN input */
    g = ams_graph_new(p);
    x = ams_graph_input(g, "x", 4, (int64_t[]){1, 8, 8, 4});
    y = ams_graph_conv2d(g, x, ams_graph_param(g, w), -1, &(ams_conv_opts){.padding = AMS_PAD_SAME});
    CHECK(ams_graph_plan(g, AMS_PLAN_TRAIN, &err) == AMS_E_INVAL);
    CHECK(ams_graph_plan(g, AMS_PLAN_INFER, &err) == AMS_OK);
    CHECK(ams_graph_forward(g, ams_backend_ref(), &err) == AMS_E_INVAL);
    CHECK(strstr(err.msg, "'x' was not set"));
    float *buf = calloc(256, sizeof(float));
    buf[17] = NAN;
    CHECK(ams_graph_set_input(g, x, buf, &err) == AMS_E_RANGE);
    CHECK(strstr(err.msg, "element 17"));
    free(buf);
    ams_graph_free(g);
    ams_params_free(p);
    return 0;
}

/* TF names and layouts, the reference's parameter count (`python3 deeplab_mnv2.py`:
 * 2,113,043 trainable at 19 classes), and OS8/OS16 declaring the same tensors. */
static int test_deeplab_declares_tf_names(void) {
    ams_err err = {0};
    ams_params *p16 = ams_params_new(), *p8 = ams_params_new();
    CHECK(ams_deeplab_mnv2_declare(p16, &(ams_deeplab_config){19, 16}, &err) == AMS_OK);
    CHECK(ams_deeplab_mnv2_declare(p8, &(ams_deeplab_config){19, 8}, &err) == AMS_OK);
    CHECK(p16->count == p8->count && p16->total == p8->total);
    int i = ams_params_find(p16, "MobilenetV2/Conv/weights");
    CHECK(i >= 0 && p16->info[i].shape[0] == 3 && p16->info[i].shape[3] == 32);
    i = ams_params_find(p16, "MobilenetV2/expanded_conv/depthwise/depthwise_weights");
    CHECK(i >= 0 && p16->info[i].shape[2] == 32 && p16->info[i].shape[3] == 1);
    CHECK(ams_params_find(p16, "MobilenetV2/expanded_conv/expand/weights") < 0);
    CHECK(ams_params_find(p16, "MobilenetV2/expanded_conv_16/project/weights") >= 0);
    CHECK(ams_params_find(p16, "MobilenetV2/expanded_conv_16/project/BatchNorm/moving_variance") >= 0);
    CHECK(ams_params_find(p16, "concat_projection/weights") >= 0);
    i = ams_params_find(p16, "logits/semantic/biases");
    CHECK(i >= 0 && p16->info[i].shape[0] == 19);
    CHECK(!p16->info[ams_params_find(p16, "aspp0/BatchNorm/moving_mean")].trainable);
    CHECK(p16->info[ams_params_find(p16, "aspp0/BatchNorm/gamma")].trainable);
    /* from `python3 deeplab_mnv2.py` (reference): trainable params at 19 classes */
    size_t trainable = ams_params_trainable_count(p16);
    CHECKF(trainable == 2113043, "%zu", trainable);
    CHECK(p16->total == 2113043 + 33088); /* + BN moving statistics */
    ams_params_free(p16);
    ams_params_free(p8);
    ams_params *bad = ams_params_new();
    CHECK(ams_deeplab_mnv2_declare(bad, &(ams_deeplab_config){19, 32}, &err) == AMS_E_INVAL);
    ams_params_free(bad);
    return 0;
}

/* Whole DeepLab at a tiny odd size: directional finite differences on every tensor. */
static int test_deeplab_gradients(void) {
    ams_err err = {0};
    ams_deeplab_config cfg = {4, 16};
    ams_params *p = ams_params_new();
    CHECK(ams_deeplab_mnv2_declare(p, &cfg, &err) == AMS_OK && ams_params_alloc(p, &err) == AMS_OK);
    ams_deeplab_mnv2_init_random(p, 9);
    net t = {.p = p};
    t.g = ams_graph_new(p);
    CHECKF(ams_deeplab_mnv2_build(t.g, &cfg, 1, 35, 29, 0, &t.x, &t.out, &err) == AMS_OK, "%s",
           err.msg);
    t.labels = ams_graph_labels(t.g, "labels", 1, 35, 29);
    t.loss = ams_graph_softmax_ce(t.g, t.out, t.labels, NULL, 0);
    CHECK(ams_graph_plan(t.g, AMS_PLAN_TRAIN, &err) == AMS_OK);
    ams_rng r;
    ams_rng_seed(&r, 1);
    t.xdata = malloc(35 * 29 * 3 * sizeof(float));
    t.ldata = malloc(35 * 29);
    for (int i = 0; i < 35 * 29 * 3; i++) t.xdata[i] = 255.0f * ams_rng_uniform(&r);
    for (int i = 0; i < 35 * 29; i++) t.ldata[i] = (uint8_t)(ams_rng_u64(&r) % 4);
    CHECK(ams_graph_set_input(t.g, t.x, t.xdata, &err) == AMS_OK);
    CHECK(ams_graph_set_labels(t.g, t.labels, t.ldata, &err) == AMS_OK);
    /* ReLU6 kinks on a 3x2 feature map move a few tensors by up to ~15 % */
    int rc = gradcheck_directions(t.g, t.loss, 0.25, 0.01, 1e-4f);
    net_free(&t);
    return rc;
}

int main(int argc, char **argv) {
    static const check_case cases[] = {
        {"small_graph_gradients", test_small_graph_gradients},
        {"plans_agree", test_plans_agree},
        {"div_gradients", test_div_gradients},
        {"builder_errors", test_builder_errors},
        {"deeplab_declares_tf_names", test_deeplab_declares_tf_names},
        {"deeplab_gradients", test_deeplab_gradients},
    };
    return check_run(cases, sizeof cases / sizeof cases[0], argc, argv);
}
