/* test_graph_profile.c - the executor's opt-in profiler: refused before the plan, counts
 * the passes it times, reports op kinds and nodes, does not change results, resets and
 * switches off. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ams/backend.h"
#include "ams/graph.h"
#include "ams/rng.h"
#include "check.h"

/* conv (bias) -> relu -> mul by a per-image scale -> BCE; returns the loss node. */
static int build(ams_params **pp, ams_graph **gp, int *x, int *lab, ams_err *err) {
    ams_params *p = *pp = ams_params_new();
    int w = ams_params_add(p, "w", 4, (int64_t[]){3, 3, 3, 1}, 1, err);
    int b = ams_params_add(p, "b", 1, (int64_t[]){1}, 1, err);
    if (b < 0 || ams_params_alloc(p, err) != AMS_OK) return -1;
    ams_rng r;
    ams_rng_seed(&r, 3);
    for (size_t i = 0; i < p->total; i++) p->values[i] = ams_rng_uniform(&r) - 0.5f;
    ams_graph *g = *gp = ams_graph_new(p);
    *x = ams_graph_input(g, "x", 4, (int64_t[]){2, 8, 10, 3});
    int y = ams_graph_conv2d(g, *x, ams_graph_param(g, w), ams_graph_param(g, b),
                             &(ams_conv_opts){.padding = AMS_PAD_SAME});
    y = ams_graph_relu(g, y);
    int s = ams_graph_global_avgpool(g, y);
    y = ams_graph_mul(g, y, s);
    *lab = ams_graph_labels(g, "labels", 2, 8, 10);
    return ams_graph_bce_logits(g, y, *lab);
}

static int test_profile(void) {
    ams_err err = {0};
    ams_params *p = NULL;
    ams_graph *g = NULL;
    int x, lab;
    int loss = build(&p, &g, &x, &lab, &err);
    CHECKF(loss >= 0 && ams_graph_error(g, &err) == AMS_OK, "%s", err.msg);
    CHECK(ams_graph_set_profile(g, 1, &err) == AMS_E_INVAL); /* before the plan */
    CHECKF(ams_graph_plan(g, AMS_PLAN_TRAIN, &err) == AMS_OK, "%s", err.msg);
    float xv[2 * 8 * 10 * 3];
    uint8_t lv[2 * 8 * 10];
    for (size_t i = 0; i < sizeof xv / sizeof xv[0]; i++) xv[i] = (float)(i % 7) * 0.1f;
    for (size_t i = 0; i < sizeof lv; i++) lv[i] = (uint8_t)(i % 3 == 0);
    CHECK(ams_graph_set_input(g, x, xv, &err) == AMS_OK);
    CHECK(ams_graph_set_labels(g, lab, lv, &err) == AMS_OK);
    const ams_backend *be = ams_backend_ref();
    /* unprofiled reference values */
    ams_params_zero_grads(p);
    CHECK(ams_graph_forward(g, be, &err) == AMS_OK && ams_graph_backward(g, be, loss, &err) == AMS_OK);
    float loss0 = *ams_graph_value(g, loss), grad0 = p->grads[0];
    CHECK(ams_graph_set_profile(g, 1, &err) == AMS_OK);
    for (int i = 0; i < 2; i++) {
        ams_params_zero_grads(p);
        CHECK(ams_graph_forward(g, be, &err) == AMS_OK);
        CHECK(ams_graph_backward(g, be, loss, &err) == AMS_OK);
    }
    CHECK(*ams_graph_value(g, loss) == loss0 && p->grads[0] == grad0);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    CHECK(f != NULL);
    ams_graph_profile_report(g, f, 3);
    fclose(f);
    int ok = strstr(buf, "profile: 2 forward, 2 backward pass(es)") && strstr(buf, "conv2d") &&
             strstr(buf, "bce_logits") && strstr(buf, "top 3 nodes") && strstr(buf, "2x8x10x1 k3x3 s1 3->1");
    if (!ok) fprintf(stderr, "%s", buf);
    free(buf);
    CHECK(ok);
    ams_graph_profile_reset(g);
    buf = NULL;
    f = open_memstream(&buf, &len);
    ams_graph_profile_report(g, f, 3);
    fclose(f);
    ok = strstr(buf, "no pass timed") != NULL;
    free(buf);
    CHECK(ok);
    CHECK(ams_graph_set_profile(g, 0, &err) == AMS_OK); /* off: freed (ASan checks) */
    CHECK(ams_graph_forward(g, be, &err) == AMS_OK);
    CHECK(ams_graph_set_profile(g, 1, &err) == AMS_OK); /* on again, freed by graph_free */
    ams_graph_free(g);
    ams_params_free(p);
    return 0;
}

int main(int argc, char **argv) {
    static const check_case cases[] = {{"profile", test_profile}};
    return check_run(cases, sizeof cases / sizeof cases[0], argc, argv);
}
