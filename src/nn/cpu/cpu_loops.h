/* cpu_loops.h - what the CPU backend's own loops share: one OpenMP parallel-for per thread
 * slice, functions compiled for AVX-512, AVX2 and the baseline (the loader picks one at
 * start-up: run-time feature detection), and how work is cut into slices. */
#ifndef AMS_CPU_LOOPS_H
#define AMS_CPU_LOOPS_H

#include <stdint.h>

#include "nn/cpu/cpu_backend.h"

#ifdef _OPENMP
#define CPU_PARALLEL_FOR _Pragma("omp parallel for num_threads(nt) schedule(static, 1)")
#else
#define CPU_PARALLEL_FOR
#endif

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define CPU_MULTIVERSION __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CPU_MULTIVERSION
#endif

/* Threads for `work` floats of work: 1 when small (below the backend's min_parallel: a
 * parallel region, waking sleeping threads, costs more), else the backend's count. */
static inline int cpu_threads_for(const ams_backend *be, int64_t work) {
    const ams_cpu_state *st = (const ams_cpu_state *)be->state;
    return work < st->min_parallel || st->threads < 1 ? 1 : st->threads;
}

/* Part t of nt of [0, n), in whole units. */
static inline void cpu_split(int64_t n, int t, int nt, int64_t *lo, int64_t *hi) {
    int64_t per = (n + nt - 1) / nt;
    *lo = per * t < n ? per * t : n;
    *hi = per * (t + 1) < n ? per * (t + 1) : n;
}

/* Part t of nt of [0, n), aligned to 16 floats (whole cache lines). */
static inline void cpu_split16(int64_t n, int t, int nt, int64_t *lo, int64_t *hi) {
    int64_t per = (n + nt - 1) / nt;
    per = (per + 15) & ~(int64_t)15;
    *lo = per * t < n ? per * t : n;
    *hi = per * (t + 1) < n ? per * (t + 1) : n;
}

/* Weight (nw floats) and bias (nb) gradients summed by nt threads: thread 0 sums into
 * dweight and dbias themselves, thread t > 0 into a zeroed partial of `per` floats at
 * part + (t - 1) * per (weights, then bias), which cpu_partials_fold adds in at the end.
 * *acc / *bacc: where thread t sums (NULL where the gradient is not asked for). */
static inline void cpu_partials_take(float *part, size_t per, int t, float *dweight, size_t nw,
                                     float *dbias, size_t nb, float **acc, float **bacc) {
    *acc = dweight, *bacc = dbias;
    if (t == 0 || nw + nb == 0) return;
    float *p = part + (size_t)(t - 1) * per;
    for (size_t i = 0; i < nw + nb; i++) p[i] = 0.0f;
    *acc = dweight ? p : NULL;
    *bacc = dbias ? p + nw : NULL;
}

static inline void cpu_partials_fold(const float *part, size_t per, int nt, float *dweight,
                                     size_t nw, float *dbias, size_t nb) {
    for (int t = 1; t < nt && nw + nb > 0; t++) {
        const float *p = part + (size_t)(t - 1) * per;
        for (size_t i = 0; i < nw; i++) dweight[i] += p[i];
        for (size_t i = 0; i < nb; i++) dbias[i] += p[nw + i];
    }
}

#endif
