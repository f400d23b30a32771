/* cpu_testlib.h - helpers shared by the tests that hold the CPU backend against the
 * reference kernels: one seeded rng, random and copied buffers, and the error measure.
 * Header-only (static functions) so that each test stays one binary. */
#ifndef AMS_TEST_CPU_TESTLIB_H
#define AMS_TEST_CPU_TESTLIB_H

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ams/rng.h"
#include "check.h"

static ams_rng rng;

/* n floats uniform in [lo, hi) from rng. */
static inline float *rnd_range(size_t n, float lo, float hi) {
    float *x = malloc((n ? n : 1) * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * ams_rng_uniform(&rng);
    return x;
}

static inline float *dup(const float *x, size_t n) {
    float *y = malloc((n ? n : 1) * sizeof *y);
    memcpy(y, x, n * sizeof *y);
    return y;
}

static inline int irand(int lo, int hi) {
    return lo + (int)(ams_rng_u64(&rng) % (uint64_t)(hi - lo + 1));
}

/* max |a-b| relative to the reference's largest magnitude (what fp32 reordering of sums
 * can change), with a floor so that all-tiny tensors compare absolutely. */
static inline double rel_err(const float *a, const float *ref, size_t n) {
    double m = 1e-3;
    for (size_t i = 0; i < n; i++)
        if (fabs((double)ref[i]) > m) m = fabs((double)ref[i]);
    return check_max_abs_diff(a, ref, n) / m;
}

#endif
