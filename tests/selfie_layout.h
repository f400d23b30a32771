/* selfie_layout.h - a parameter layout like the selfie student's, shared by the adapt tests:
 * 106,377 elements in 60 tensors, every 5th a frozen BatchNorm statistic (not trainable).
 * Header-only so that each test stays one binary. */
#ifndef AMS_TEST_SELFIE_LAYOUT_H
#define AMS_TEST_SELFIE_LAYOUT_H

#include <stdio.h>

#include "ams/params.h"

/* NULL when out of memory. */
static inline ams_params *selfie_layout(void) {
    ams_params *p = ams_params_new();
    if (!p) return NULL;
    size_t left = 106377;
    char name[32];
    for (int t = 0; t < 60 && left > 0; t++) {
        size_t n = t == 59 ? left : (size_t)(200 + (t * 7919) % 3400);
        if (n > left) n = left;
        snprintf(name, sizeof name, "t%d", t);
        if (ams_params_add(p, name, 1, (int64_t[]){(int64_t)n}, t % 5 != 4, NULL) < 0) break;
        left -= n;
    }
    if (left != 0 || ams_params_alloc(p, NULL) != AMS_OK) {
        ams_params_free(p);
        return NULL;
    }
    return p;
}

#endif
