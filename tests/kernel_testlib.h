/* kernel_testlib.h - helpers shared by the reference-kernel tests: random buffers,
 * double-precision dot products, fixture loading, and a finite-difference probe.
 * Header-only (static functions) so that each test stays one binary. */
#ifndef AMS_TEST_KERNEL_TESTLIB_H
#define AMS_TEST_KERNEL_TESTLIB_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ams/npy.h"
#include "ams/rng.h"
#include "check.h"

/* calloc that aborts the test on failure (sizes here are tiny and trusted) */
static inline float *kt_alloc(size_t n) {
    float *p = calloc(n ? n : 1, sizeof *p);
    if (!p) {
        fprintf(stderr, "out of memory (%zu floats)\n", n);
        exit(2);
    }
    return p;
}

static inline float *kt_dup(const float *x, size_t n) {
    float *p = kt_alloc(n);
    memcpy(p, x, n * sizeof *p);
    return p;
}

/* uniform in [lo, hi) */
static inline void kt_fill(ams_rng *r, float *x, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * ams_rng_uniform(r);
}

static inline void kt_set(float *x, size_t n, float v) {
    for (size_t i = 0; i < n; i++) x[i] = v;
}

static inline int kt_randint(ams_rng *r, int lo, int hi) { /* inclusive */
    return lo + (int)(ams_rng_u64(r) % (uint64_t)(hi - lo + 1));
}

static inline double kt_dot(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * (double)b[i];
    return s;
}

static inline double kt_max_abs(const float *a, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fabs((double)a[i]) > m ? fabs((double)a[i]) : m;
    return m;
}

static inline double kt_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Element indices to probe by finite differences: all when n <= max, else a seeded sample. */
static inline size_t kt_probe_index(ams_rng *r, size_t n, size_t max, size_t k) {
    return n <= max ? k : (size_t)(ams_rng_u64(r) % n);
}
static inline size_t kt_probe_count(size_t n, size_t max) { return n <= max ? n : max; }

/* A scalar loss of some inputs, evaluated by running a forward kernel: L = <r, f(x)>. */
typedef double (*kt_loss_fn)(void *ctx);

/* Central-difference check of the analytic gradient g (n floats) of f with respect to
 * x (n floats, perturbed in place and restored). Probes every element when n <= 48,
 * else 48 seeded random ones. Passes when |numeric - analytic| <= tol * (1 + |analytic|).
 * Returns 0 on success, 1 (after printing the worst element) on failure. */
static inline int kt_gradcheck(const char *what, kt_loss_fn f, void *ctx, float *x,
                               const float *g, size_t n, float h, double tol, ams_rng *r) {
    size_t probes = kt_probe_count(n, 48);
    double worst = 0;
    size_t worst_i = 0;
    double worst_num = 0;
    for (size_t k = 0; k < probes; k++) {
        size_t i = kt_probe_index(r, n, 48, k);
        float x0 = x[i];
        float xp = x0 + h, xm = x0 - h;
        x[i] = xp;
        double lp = f(ctx);
        x[i] = xm;
        double lm = f(ctx);
        x[i] = x0;
        double num = (lp - lm) / ((double)xp - (double)xm);
        double err = fabs(num - (double)g[i]) / (1.0 + fabs((double)g[i]));
        if (err > worst) {
            worst = err;
            worst_i = i;
            worst_num = num;
        }
    }
    if (getenv("KT_VERBOSE"))
        fprintf(stderr, "gradcheck %s: worst err %.3g (tol %.3g)\n", what, worst, tol);
    if (worst > tol) {
        fprintf(stderr, "gradcheck %s: element %zu numeric %.7g analytic %.7g (err %.3g > tol %.3g)\n",
                what, worst_i, worst_num, (double)g[worst_i], worst, tol);
        return 1;
    }
    return 0;
}

/* Loads tests/data/kernels/<name>.npy as float32 with the expected element count;
 * NULL (after printing why) on any mismatch. Caller frees with ams_tensor_free. */
static inline ams_tensor *kt_load(const char *name, int64_t numel) {
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/data/kernels/%s.npy", AMS_SOURCE_DIR, name);
    ams_tensor *t = NULL;
    ams_err err = {0};
    if (ams_npy_read(path, &t, &err) != AMS_OK) {
        fprintf(stderr, "fixture: %s\n", err.msg);
        return NULL;
    }
    if ((t->dtype != AMS_F32 && t->dtype != AMS_I32) || ams_tensor_numel(t) != numel) {
        fprintf(stderr, "fixture %s: dtype %d, %lld elements, expected %lld\n", path,
                (int)t->dtype, (long long)ams_tensor_numel(t), (long long)numel);
        ams_tensor_free(t);
        return NULL;
    }
    return t;
}

/* Loads an int32 vector fixture of exactly n entries into out[]; 0 on success. */
static inline int kt_load_ints(const char *name, int *out, int n) {
    ams_tensor *t = kt_load(name, n);
    if (!t) return 1;
    if (t->dtype != AMS_I32) {
        fprintf(stderr, "fixture %s: expected int32\n", name);
        ams_tensor_free(t);
        return 1;
    }
    memcpy(out, t->data, (size_t)n * sizeof *out);
    ams_tensor_free(t);
    return 0;
}

#endif
