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

#endif
