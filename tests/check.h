/* check.h - the tiny test harness: named tests, checks that fail the process.
 *
 *     static int test_relu(void) { CHECK(1 + 1 == 2); return 0; }
 *     int main(int argc, char **argv) {
 *         static const check_case cases[] = {{"relu", test_relu}};
 *         return check_run(cases, sizeof cases / sizeof cases[0], argc, argv);
 *     }
 * A test returns 0 on success; CHECK failures print file:line and make it return 1.
 * `./test_x name` runs only that test. The last line is "N passed, M failed".
 */
#ifndef AMS_TEST_CHECK_H
#define AMS_TEST_CHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
            return 1;                                                          \
        }                                                                      \
    } while (0)

#define CHECKF(cond, ...)                                                      \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                      \
            fprintf(stderr, "\n");                                             \
            return 1;                                                          \
        }                                                                      \
    } while (0)

typedef struct check_case {
    const char *name;
    int (*fn)(void);
} check_case;

static inline int check_run(const check_case *cases, size_t n, int argc, char **argv) {
    int passed = 0, failed = 0;
    for (size_t i = 0; i < n; i++) {
        if (argc > 1 && strcmp(argv[1], cases[i].name) != 0) continue;
        int r = cases[i].fn();
        fprintf(stderr, "%s %s\n", r == 0 ? "ok  " : "FAIL", cases[i].name);
        if (r == 0) passed++; else failed++;
    }
    printf("%d passed, %d failed\n", passed, failed);
    return (failed == 0 && passed > 0) ? 0 : 1;
}

/* max |a-b| over n floats; NaN anywhere gives INFINITY */
static inline double check_max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d != d) return INFINITY;
        if (d > m) m = d;
    }
    return m;
}

/* ||a-b|| / max(||b||, tiny); defined as 0 when both are all zero */
static inline double check_rel_l2(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        num += d * d;
        den += (double)b[i] * (double)b[i];
    }
    if (num != num) return INFINITY;
    if (den == 0) return num == 0 ? 0 : INFINITY;
    return sqrt(num / den);
}

#endif
