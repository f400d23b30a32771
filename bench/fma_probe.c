/* fma_probe.c - measures this machine's FP32 FMA peak (GFLOP/s) with N threads: each thread
 * runs independent chains of 512-bit (or 256-bit without AVX-512) fused multiply-adds,
 * enough of them to hide the FMA latency. Build: cc -O2 -march=native -pthread.
 * Usage: fma_probe [threads] ; prints one JSON line {"threads":N,"gflops":G}. */
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define ITERS 20000000L
#define CHAINS 12 /* CHAIN12 below */

#if defined(__AVX512F__)
typedef __m512 vec;
#define LANES 16
#define SET1 _mm512_set1_ps
#define FMA _mm512_fmadd_ps
#define ADD _mm512_add_ps
#define SUM(v) _mm512_reduce_add_ps(v)
#else
typedef __m256 vec;
#define LANES 8
#define SET1 _mm256_set1_ps
#define FMA _mm256_fmadd_ps
#define ADD _mm256_add_ps
static float SUM(__m256 v) {
    float t[8];
    _mm256_storeu_ps(t, v);
    return t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
}
#endif

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* The chains are named one by one, not an array: at -O2 GCC keeps an array of vectors in
 * memory, and its store-to-load forwarding, not the FMA units, would set the pace (a third
 * of the peak on Zen 5). */
#define CHAIN12(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
#define DECLARE(i) vec acc##i = SET1((float)(i));
#define STEP(i) acc##i = FMA(acc##i, a, b);
#define FOLD(i) s = ADD(s, acc##i);

static void *run(void *arg) {
    vec a = SET1(0.999999f), b = SET1(1e-7f), s = SET1(0.0f);
    CHAIN12(DECLARE)
    for (long it = 0; it < ITERS; it++) {
        CHAIN12(STEP)
    }
    CHAIN12(FOLD)
    *(float *)arg = SUM(s); /* keeps the loop alive */
    return NULL;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 1;
    if (n < 1 || n > 256) return 1;
    pthread_t th[256];
    float sink[256];
    double t0 = now();
    for (int i = 0; i < n; i++) pthread_create(&th[i], NULL, run, &sink[i]);
    for (int i = 0; i < n; i++) pthread_join(th[i], NULL);
    double t = now() - t0;
    double flops = 2.0 * LANES * CHAINS * (double)ITERS * n;
    printf("{\"threads\":%d,\"gflops\":%.1f,\"lanes\":%d,\"check\":%g}\n", n, flops / t / 1e9, LANES,
           (double)sink[0]);
    return 0;
}
