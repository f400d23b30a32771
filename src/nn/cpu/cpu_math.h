/* cpu_math.h - float exp and log1p written so that loops over them vectorise (libm's are a
 * call per element), for the CPU backend's losses. */
#ifndef AMS_CPU_MATH_H
#define AMS_CPU_MATH_H

#include <stdint.h>

/* Every conditional below selects between values already computed: GCC (honouring
 * floating-point traps) does not vectorise a loop in which an operation that may trap, such
 * as arithmetic inside a ?: or a float-to-int conversion on a path it has split, is
 * conditional. */

/* e^x for x <= 0 (Cephes' expf: range reduction by ln 2, degree-6 polynomial, ~1 ulp). */
static inline float exp_nonpos(float x) {
    x = x < -87.0f ? -87.0f : x;
    /* n = round(x / ln 2) by the 1.5 * 2^23 trick: no float-to-int conversion (which GCC
     * will not vectorise under conditional code, as it may trap) */
    union { float f; uint32_t u; } t = {.f = x * 1.44269504088896341f + 12582912.0f};
    float n = t.f - 12582912.0f;
    int32_t ni = (int32_t)(t.u - 0x4B400000u);
    x = x - n * 0.693359375f - n * -2.12194440e-4f;
    float y = 1.9875691500e-4f;
    y = y * x + 1.3981999507e-3f;
    y = y * x + 8.3334519073e-3f;
    y = y * x + 4.1665795894e-2f;
    y = y * x + 1.6666665459e-1f;
    y = y * x + 5.0000001201e-1f;
    y = y * x * x + x + 1.0f;
    union { uint32_t u; float f; } p = {.u = (uint32_t)(ni + 127) << 23};
    return y * p.f;
}

/* tanh(x) (Cephes' tanhf: an odd polynomial for |x| < 0.625, else (1 - e) / (1 + e) with
 * e = exp(-2|x|), signed; ~2 ulp), NaN passing through. */
static inline float tanh_vec(float x) {
    float ax = x < 0.0f ? -x : x, z = x * x;
    float p = -5.70498872745e-3f;
    p = p * z + 2.06390887954e-2f;
    p = p * z - 5.37397155531e-2f;
    p = p * z + 1.33314422036e-1f;
    p = p * z - 3.33332819422e-1f;
    float small = x + x * z * p;
    float e = exp_nonpos(-2.0f * (ax < 44.0f ? ax : 44.0f)), big = (1.0f - e) / (1.0f + e);
    big = x < 0.0f ? -big : big;
    return ax < 0.625f ? small : (ax == ax ? big : x);
}

/* log(1 + e) for e in [0, 1] (Cephes' logf polynomial on u = 1 + e, plus the rounding error
 * of u, so that tiny e keep their precision; ~2 ulp). */
static inline float log1p_unit(float e) {
    float u = 1.0f + e;
    union { float f; uint32_t u; } b = {.f = u};
    float k = (float)((int32_t)(b.u >> 23) - 126); /* u = m * 2^k, m in [0.5, 1) */
    b.u = (b.u & 0x007fffffu) | 0x3f000000u;
    float m = b.f;
    /* m < sqrt(1/2): use 2m - 1 and k - 1 */
    int lo = m < 0.707106781186547524f;
    k -= lo ? 1.0f : 0.0f;
    float x = m * (lo ? 2.0f : 1.0f) - 1.0f;
    float z = x * x;
    float y = 7.0376836292e-2f;
    y = y * x - 1.1514610310e-1f;
    y = y * x + 1.1676998740e-1f;
    y = y * x - 1.2420140846e-1f;
    y = y * x + 1.4249322787e-1f;
    y = y * x - 1.6668057665e-1f;
    y = y * x + 2.0000714765e-1f;
    y = y * x - 2.4999993993e-1f;
    y = y * x + 3.3333331174e-1f;
    y = y * x * z;
    y += -2.12194440e-4f * k;
    y += -0.5f * z;
    float r = x + y + 0.693359375f * k;
    return r + (e - (u - 1.0f)) / u; /* d log(u) = du / u */
}

#endif
