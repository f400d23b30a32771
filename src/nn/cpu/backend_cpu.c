/* backend_cpu.c - the fast CPU backend: creation, its table (the reference table with the
 * accelerated entries replaced), and choosing a backend by name. */
#include "nn/cpu/cpu_backend.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef _OPENMP
#include <omp.h>
#endif

typedef struct cpu_backend {
    ams_backend be;
    ams_cpu_state st;
} cpu_backend;

void *ams_cpu_alloc(ams_cpu_state *st, size_t bytes) {
    size_t rounded = (bytes + 63) & ~(size_t)63;
    if (rounded < bytes) return NULL;
    void *p = aligned_alloc(64, rounded ? rounded : 64);
    if (p) st->allocs++;
    return p;
}

int ams_cpu_part_reserve(ams_cpu_state *st, size_t n) {
    if (n <= st->part_len) return 1;
    float *p = ams_cpu_alloc(st, n * sizeof(float));
    if (!p) return 0;
    free(st->part);
    st->part = p;
    st->part_len = n;
    return 1;
}

void ams_cpu_set_threads(int threads) {
#ifdef _OPENMP
    if (omp_get_max_threads() != threads) omp_set_num_threads(threads);
#else
    (void)threads;
#endif
}

static int is_cpu(const ams_backend *be) { return be && be->name && !strcmp(be->name, "cpu"); }

size_t ams_cpu_alloc_count(const ams_backend *be) {
    return is_cpu(be) ? ((const ams_cpu_state *)be->state)->allocs : 0;
}

ams_status ams_backend_cpu_create(int threads, const ams_backend **out, ams_err *err) {
    *out = NULL;
    AMS_FAIL_IF(threads < 0 || threads > 1024, err, AMS_E_RANGE,
                "cpu backend: %d threads (want 0 = all cores, or 1..1024)", threads);
    if (threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n < 1 ? 1 : n > 1024 ? 1024 : (int)n;
    }
#ifndef _OPENMP
    threads = 1; /* built without OpenMP: no worker threads */
#endif
    cpu_backend *cb = calloc(1, sizeof *cb);
    AMS_FAIL_IF(!cb, err, AMS_E_NOMEM, "cpu backend: out of memory");
    cb->be = *ams_backend_ref();
    cb->be.name = "cpu";
    cb->be.state = &cb->st;
    cb->st.threads = threads;
    /* below this many floats of work a kernel runs on the calling thread; the variable is
     * for tuning experiments (docs/performance.md) */
    const char *mp = getenv("AMS_CPU_MIN_PARALLEL");
    long long v = mp ? atoll(mp) : 0;
    cb->st.min_parallel = v >= 1 && v <= ((long long)1 << 40) ? (int64_t)v : 400000;
    ams_cpu_fill_table(&cb->be);
    ams_cpu_fill_broadcast(&cb->be);
    ams_cpu_fill_bce(&cb->be);
    ams_cpu_fill_resize(&cb->be);
    *out = &cb->be;
    return AMS_OK;
}

const ams_backend *ams_backend_by_name(const char *name, int threads, ams_err *err) {
    if (!name || !strcmp(name, "cpu")) {
        const ams_backend *be = NULL;
        return ams_backend_cpu_create(threads, &be, err) == AMS_OK ? be : NULL;
    }
    if (!strcmp(name, "ref")) return ams_backend_ref();
    ams_err_set(err, AMS_E_INVAL, "unknown backend '%s' (known: %s)", name, AMS_BACKEND_NAMES);
    return NULL;
}

int ams_backend_threads(const ams_backend *be) {
    return is_cpu(be) ? ((const ams_cpu_state *)be->state)->threads : 1;
}

void ams_backend_free(const ams_backend *be) {
    if (!is_cpu(be)) return;
    cpu_backend *cb = (cpu_backend *)(uintptr_t)be; /* be is cb's first member */
    ams_cpu_conv_cache_free(&cb->st);
    free(cb->st.part);
    free(cb->st.pw);
    free(cb);
}
