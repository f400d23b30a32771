/* gradcheck.h - finite-difference check of a whole graph's parameter gradients, shared by
 * the engine and importer tests.
 *
 * For each trainable tensor, the derivative of the loss along its own normalised gradient
 * g/|g| must equal |g|: a high signal-to-noise check that still catches a wrong gradient in
 * any single tensor (random directions drown in a deep net's ReLU/ReLU6 kinks). Kinks
 * crossed by the step make single tensors noisy, so each is bounded loosely (tol) and the
 * median of |numeric/|g| - 1| tightly (median_tol). Uses the reference backend. */
#ifndef AMS_TEST_GRADCHECK_H
#define AMS_TEST_GRADCHECK_H

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ams/graph.h"
#include "check.h"

static inline double gradcheck_loss(ams_graph *g, int loss) {
    ams_err err = {0};
    if (ams_graph_forward(g, ams_backend_ref(), &err) != AMS_OK) return NAN;
    return ams_graph_value(g, loss)[0];
}

static inline int gradcheck_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* g planned with AMS_PLAN_TRAIN, inputs set; p = ams_graph_params(g). */
static inline int gradcheck_directions(ams_graph *g, int loss, double tol, double median_tol,
                                       float eps) {
    ams_err err = {0};
    ams_params *p = ams_graph_params(g);
    ams_params_zero_grads(p);
    CHECK(ams_graph_forward(g, ams_backend_ref(), &err) == AMS_OK);
    CHECK(ams_graph_backward(g, ams_backend_ref(), loss, &err) == AMS_OK);
    int checked = 0, bad = 0;
    double *dev = calloc((size_t)p->count + 1, sizeof(double));
    CHECK(dev);
    for (int i = 0; i < p->count; i++) {
        const ams_param_info *pi = &p->info[i];
        if (!pi->trainable) continue;
        float *v = ams_params_data(p, i);
        const float *gr = ams_params_grad(p, i);
        double norm = 0;
        for (int64_t j = 0; j < pi->numel; j++) norm += (double)gr[j] * gr[j];
        norm = sqrt(norm);
        if (norm < 1e-3) continue; /* too little signal for float32 finite differences */
        float *save = malloc((size_t)pi->numel * sizeof(float));
        if (!save) break;
        memcpy(save, v, (size_t)pi->numel * sizeof(float));
        for (int64_t j = 0; j < pi->numel; j++) v[j] = save[j] + eps * (float)(gr[j] / norm);
        double lp = gradcheck_loss(g, loss);
        for (int64_t j = 0; j < pi->numel; j++) v[j] = save[j] - eps * (float)(gr[j] / norm);
        double lm = gradcheck_loss(g, loss);
        memcpy(v, save, (size_t)pi->numel * sizeof(float));
        free(save);
        double numeric = (lp - lm) / (2 * eps);
        if (getenv("FD_VERBOSE")) fprintf(stderr, "%-70s %.5f %.4g\n", pi->name, numeric / norm, norm);
        if (!(fabs(numeric - norm) <= tol * norm)) {
            fprintf(stderr, "  %s: numeric %.6g, gradient norm %.6g\n", pi->name, numeric, norm);
            bad++;
        }
        dev[checked++] = fabs(numeric / norm - 1);
    }
    qsort(dev, (size_t)checked, sizeof *dev, gradcheck_cmp_double);
    double median = checked ? dev[checked / 2] : INFINITY;
    free(dev);
    fprintf(stderr, "finite differences: %d tensors, median |numeric/analytic - 1| = %.2e\n",
            checked, median);
    CHECKF(bad == 0, "%d tensors failed the finite-difference check", bad);
    CHECKF(checked > 20, "only %d tensors had a measurable gradient", checked);
    CHECKF(median <= median_tol, "median |numeric/analytic - 1| = %g", median);
    return 0;
}

#endif
