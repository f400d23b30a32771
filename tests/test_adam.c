/* test_adam.c - Adam against a hand-written TF update in double, and the mask invariants. */
#include <math.h>
#include <stdint.h>

#include "ams/optim.h"
#include "ams/rng.h"
#include "check.h"

/* TF's Adam in double, written out from the formula of tf.train.AdamOptimizer. */
static void tf_adam_double(double *p, double *m, double *v, const double *g, int n, int t) {
    double lr = 1e-3, b1 = 0.9, b2 = 0.999, eps = 1e-8;
    double lr_t = lr * sqrt(1 - pow(b2, t)) / (1 - pow(b1, t));
    for (int i = 0; i < n; i++) {
        m[i] = b1 * m[i] + (1 - b1) * g[i];
        v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
        p[i] -= lr_t * m[i] / (sqrt(v[i]) + eps);
    }
}

static int test_matches_tf_formula(void) {
    enum { N = 257, STEPS = 20 };
    ams_rng r;
    ams_rng_seed(&r, 7);
    float p[N], g[N];
    double pd[N], md[N] = {0}, vd[N] = {0}, gd[N];
    for (int i = 0; i < N; i++) pd[i] = p[i] = ams_rng_normal(&r);
    ams_adam *a = ams_adam_new(N, NULL);
    CHECK(a);
    for (int t = 1; t <= STEPS; t++) {
        for (int i = 0; i < N; i++) {
            /* include tiny gradients, where epsilon's placement matters */
            g[i] = ams_rng_normal(&r) * (i % 3 == 0 ? 1e-7f : 1.0f);
            gd[i] = g[i];
        }
        ams_adam_step(a, p, g, NULL);
        tf_adam_double(pd, md, vd, gd, N, t);
    }
    double worst = 0;
    for (int i = 0; i < N; i++) worst = fmax(worst, fabs(p[i] - pd[i]));
    CHECKF(worst < 1e-6, "max |p - p_tf| = %g", worst);
    CHECK(ams_adam_steps(a) == STEPS);
    /* first step of plain Adam moves every element by ~lr (sign of g) */
    ams_adam_reset(a);
    CHECK(ams_adam_steps(a) == 0);
    float q[N], q0[N];
    for (int i = 0; i < N; i++) q0[i] = q[i] = 0, g[i] = (i % 2) ? 2.0f : -0.5f;
    ams_adam_step(a, q, g, NULL);
    for (int i = 0; i < N; i++) CHECK(fabsf(fabsf(q[i] - q0[i]) - 1e-3f) < 1e-6f);
    ams_adam_free(a);
    return 0;
}

static int test_mask_freezes_values_and_moments(void) {
    enum { N = 100 };
    float p[N], g[N], before[N];
    uint8_t mask[N];
    ams_rng r;
    ams_rng_seed(&r, 3);
    for (int i = 0; i < N; i++) {
        before[i] = p[i] = ams_rng_normal(&r);
        mask[i] = (i % 7) == 0;
    }
    ams_adam *a = ams_adam_new(N, NULL);
    CHECK(a);
    for (int t = 0; t < 5; t++) {
        for (int i = 0; i < N; i++) g[i] = ams_rng_normal(&r);
        ams_adam_step(a, p, g, mask);
    }
    for (int i = 0; i < N; i++) {
        if (mask[i]) {
            CHECK(p[i] != before[i]);
            CHECK(ams_adam_v(a)[i] > 0);
        } else {
            CHECK(p[i] == before[i]);
            CHECK(ams_adam_m(a)[i] == 0 && ams_adam_v(a)[i] == 0);
        }
    }
    ams_adam_free(a);
    return 0;
}

int main(int argc, char **argv) {
    static const check_case cases[] = {
        {"matches_tf_formula", test_matches_tf_formula},
        {"mask_freezes_values_and_moments", test_mask_freezes_values_and_moments},
    };
    return check_run(cases, sizeof cases / sizeof cases[0], argc, argv);
}
