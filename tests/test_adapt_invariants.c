/* test_adapt_invariants.c - the invariants the AMS issue names, on a layout like the selfie
 * student's (106,377 elements in 60 tensors, every 5th a frozen BatchNorm statistic):
 * - every strategy (coord, first, last, both, rand) at every fraction the reference uses
 *   (1, 5, 10, 20 %) and 50 % selects exactly llround(f * trainable) elements, never a frozen
 *   one, in the shape it promises (coord: the largest |score|; first: a prefix of the
 *   trainable tensors; last: a suffix; both: a prefix and a suffix; full: everything);
 * - masked Adam changes nothing outside the mask: values and moments stay bit-identical,
 *   while every masked element with a gradient moves;
 * - the reference format (packbits + fp16 values, gzip -9) round-trips a realistic sparse
 *   update and a whole model: mask exact, values exactly the fp16 rounding.
 * (Hand-worked small cases live in test_adapt_coord.c, test_adam.c and
 * test_adapt_update_codec.c; this file checks the same rules at scale.) */
#include "ams/coord.h"
#include "ams/optim.h"
#include "ams/rng.h"
#include "ams/tensor.h"
#include "ams/update_codec.h"
#include "check.h"
#include "selfie_layout.h"

static size_t trainable_count(const ams_params *p) {
    size_t n = 0;
    for (int t = 0; t < p->count; t++)
        if (p->info[t].trainable) n += (size_t)p->info[t].numel;
    return n;
}

/* selected elements per tensor */
static void per_tensor(const ams_params *p, const uint8_t *m, size_t *sel) {
    for (int t = 0; t < p->count; t++) {
        sel[t] = 0;
        for (size_t i = 0; i < (size_t)p->info[t].numel; i++) sel[t] += m[p->info[t].offset + i];
    }
}

/* Trainable tensors [0, a) full, tensor a partial (any count), the rest of [a+1, b) empty. */
static int prefix_shape(const ams_params *p, const size_t *sel, int from, int to, int step) {
    int t = from;
    while (t != to && (!p->info[t].trainable || sel[t] == (size_t)p->info[t].numel)) t += step;
    if (t != to) t += step; /* the boundary tensor */
    for (; t != to; t += step) CHECKF(sel[t] == 0, "tensor %d selected after the boundary", t);
    return 0;
}

static int test_strategies_exact_fraction(void) {
    ams_params *p = selfie_layout();
    CHECK(p);
    size_t n = p->total, nt = trainable_count(p);
    CHECK(nt > 80000 && nt < n);
    float *score = malloc(n * sizeof *score);
    uint8_t *m = malloc(n);
    size_t sel[60];
    CHECK(score && m);
    ams_rng rng;
    ams_rng_seed(&rng, 5);
    for (size_t i = 0; i < n; i++) score[i] = ams_rng_normal(&rng);
    static const ams_strategy strategies[] = {AMS_STRATEGY_COORD, AMS_STRATEGY_FIRST,
                                              AMS_STRATEGY_LAST, AMS_STRATEGY_BOTH,
                                              AMS_STRATEGY_RAND};
    /* the reference's four, then ones whose f * 86,642 ends in .5 and .86 (rounding) */
    static const double fracs[] = {0.01, 0.05, 0.1, 0.2, 0.25, 0.33, 0.5};
    ams_err err = {0};
    for (size_t si = 0; si < sizeof strategies / sizeof strategies[0]; si++)
        for (size_t fi = 0; fi < sizeof fracs / sizeof fracs[0]; fi++) {
            ams_strategy s = strategies[si];
            double f = fracs[fi];
            size_t k = 0, want = (size_t)llround(f * (double)nt), sum = 0;
            memset(m, 0xcc, n);
            CHECKF(ams_coord_mask(p, s, f, score, &rng, m, &k, &err) == AMS_OK, "%s", err.msg);
            for (size_t i = 0; i < n; i++) {
                CHECKF(m[i] == 0 || m[i] == 1, "%s: mask byte %u", ams_strategy_name(s), m[i]);
                sum += m[i];
            }
            CHECKF(k == want && sum == want, "%s %g: selected %zu (mask %zu), want %zu",
                   ams_strategy_name(s), f, k, sum, want);
            per_tensor(p, m, sel);
            for (int t = 0; t < p->count; t++)
                if (!p->info[t].trainable)
                    CHECKF(sel[t] == 0, "%s %g: frozen tensor %d selected", ams_strategy_name(s),
                           f, t);
            if (s == AMS_STRATEGY_COORD) { /* every chosen |score| >= every unchosen one */
                float lo = INFINITY, hi = 0;
                for (int t = 0; t < p->count; t++) {
                    if (!p->info[t].trainable) continue;
                    for (size_t i = p->info[t].offset;
                         i < p->info[t].offset + (size_t)p->info[t].numel; i++) {
                        float a = fabsf(score[i]);
                        if (m[i]) lo = fminf(lo, a);
                        else hi = fmaxf(hi, a);
                    }
                }
                CHECKF(lo >= hi, "coord %g: chosen min %g < unchosen max %g", f, lo, hi);
            }
            if (s == AMS_STRATEGY_FIRST) CHECK(prefix_shape(p, sel, 0, p->count, 1) == 0);
            if (s == AMS_STRATEGY_LAST) CHECK(prefix_shape(p, sel, p->count - 1, -1, -1) == 0);
            if (s == AMS_STRATEGY_BOTH && f < 0.5) { /* k/2 in front, the rest at the back */
                int a = 0, b = p->count - 1;
                size_t front = 0, back = 0, middle = 0;
                while (a < p->count && (!p->info[a].trainable ||
                                        sel[a] == (size_t)p->info[a].numel)) front += sel[a++];
                front += sel[a]; /* the front boundary */
                while (b > a && (!p->info[b].trainable || sel[b] == (size_t)p->info[b].numel))
                    back += sel[b--];
                back += sel[b]; /* the back boundary */
                for (int t = a + 1; t < b; t++) middle += sel[t];
                CHECKF(a < b && front == want / 2 && back == want - want / 2 && middle == 0,
                       "both %g: front %zu back %zu middle %zu (tensors %d..%d)", f, front, back,
                       middle, a, b);
            }
        }
    size_t k = 0;
    CHECK(ams_coord_mask(p, AMS_STRATEGY_FULL, 0.05, NULL, NULL, m, &k, &err) == AMS_OK);
    CHECK(k == nt);
    for (int t = 0; t < p->count; t++)
        for (size_t i = 0; i < (size_t)p->info[t].numel; i++)
            CHECK(m[p->info[t].offset + i] == (p->info[t].trainable ? 1 : 0));
    free(score);
    free(m);
    ams_params_free(p);
    return 0;
}

static int test_masked_adam_outside_unchanged(void) {
    ams_params *p = selfie_layout();
    CHECK(p);
    size_t n = p->total;
    float *v0 = malloc(n * 4), *v = malloc(n * 4), *g = malloc(n * 4);
    uint8_t *m = malloc(n);
    CHECK(v0 && v && g && m);
    ams_rng rng;
    ams_rng_seed(&rng, 9);
    for (size_t i = 0; i < n; i++) v0[i] = 0.1f * ams_rng_normal(&rng);
    static const ams_strategy strategies[] = {AMS_STRATEGY_COORD, AMS_STRATEGY_FIRST,
                                              AMS_STRATEGY_LAST, AMS_STRATEGY_BOTH,
                                              AMS_STRATEGY_RAND, AMS_STRATEGY_FULL};
    ams_adam *a = ams_adam_new(n, NULL);
    CHECK(a);
    ams_err err = {0};
    for (size_t si = 0; si < sizeof strategies / sizeof strategies[0]; si++) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++) g[i] = ams_rng_normal(&rng);
        CHECK(ams_coord_mask(p, strategies[si], 0.05, g, &rng, m, &k, &err) == AMS_OK);
        memcpy(v, v0, n * 4);
        ams_adam_reset(a);
        for (int step = 0; step < 5; step++) {
            for (size_t i = 0; i < n; i++) g[i] = ams_rng_normal(&rng) + 0.5f; /* never 0 */
            ams_adam_step(a, v, g, m);
        }
        const float *mm = ams_adam_m(a), *vv = ams_adam_v(a);
        size_t moved = 0;
        for (size_t i = 0; i < n; i++) {
            if (!m[i]) {
                CHECKF(memcmp(&v[i], &v0[i], 4) == 0 && mm[i] == 0 && vv[i] == 0,
                       "%s: element %zu outside the mask changed", ams_strategy_name(strategies[si]),
                       i);
            } else {
                moved += memcmp(&v[i], &v0[i], 4) != 0;
            }
        }
        CHECKF(moved == k, "%s: %zu of %zu masked elements moved", ams_strategy_name(strategies[si]),
               moved, k);
    }
    ams_adam_free(a);
    free(v0);
    free(v);
    free(g);
    free(m);
    ams_params_free(p);
    return 0;
}

static int ref_roundtrip(const ams_params *p, int all_tensors, const uint8_t *mask,
                         const float *values, size_t *bytes) {
    size_t n = p->total;
    uint8_t *buf = NULL, *m2 = malloc(n);
    size_t len = 0;
    float *v2 = malloc(n * 4);
    CHECK(m2 && v2);
    ams_err err = {0};
    CHECKF(ams_update_ref_encode(p, all_tensors, mask, values, &buf, &len, &err) == AMS_OK, "%s",
           err.msg);
    memset(m2, 7, n);
    for (size_t i = 0; i < n; i++) v2[i] = -1234.0f;
    CHECKF(ams_update_ref_decode(p, all_tensors, buf, len, m2, v2, &err) == AMS_OK, "%s", err.msg);
    for (int t = 0; t < p->count; t++) {
        int covered = all_tensors || p->info[t].trainable;
        for (size_t i = p->info[t].offset; i < p->info[t].offset + (size_t)p->info[t].numel; i++) {
            if (!covered) {
                CHECK(m2[i] == 7 && v2[i] == -1234.0f);
                continue;
            }
            CHECKF(m2[i] == (mask[i] != 0), "element %zu: mask %u, want %u", i, m2[i], mask[i]);
            float want = mask[i] ? ams_f16_to_f32(ams_f32_to_f16(values[i])) : -1234.0f;
            CHECKF(memcmp(&v2[i], &want, 4) == 0, "element %zu: %g, want %g", i, v2[i], want);
        }
    }
    /* corrupted bytes are refused, not misread */
    buf[len / 2] ^= 0x10;
    CHECK(ams_update_ref_decode(p, all_tensors, buf, len, m2, v2, &err) != AMS_OK);
    *bytes = len;
    free(buf);
    free(m2);
    free(v2);
    return 0;
}

static int test_reference_format_roundtrip(void) {
    ams_params *p = selfie_layout();
    CHECK(p);
    size_t n = p->total, nt = trainable_count(p);
    float *w = malloc(n * 4);
    uint8_t *m = malloc(n);
    CHECK(w && m);
    ams_rng rng;
    ams_rng_seed(&rng, 3);
    for (size_t i = 0; i < n; i++) w[i] = 0.1f * ams_rng_normal(&rng);
    size_t k = 0, sparse = 0, full = 0;
    ams_err err = {0};
    CHECK(ams_coord_mask(p, AMS_STRATEGY_RAND, 0.05, NULL, &rng, m, &k, &err) == AMS_OK);
    CHECK(ref_roundtrip(p, 0, m, w, &sparse) == 0);
    memset(m, 1, n);
    CHECK(ref_roundtrip(p, 1, m, w, &full) == 0);
    /* sizes: a bit per trainable element + ~2 bytes per sent value, compressed a little */
    CHECKF(sparse > k && sparse < nt / 8 + 2 * k + 1024, "sparse %zu bytes for %zu", sparse, k);
    CHECKF(full > n && full < n / 8 + 2 * n + 4096, "full %zu bytes for %zu", full, n);
    fprintf(stderr, "  reference format: 5 %% (%zu elements) %zu bytes, whole model %zu bytes\n",
            k, sparse, full);
    free(w);
    free(m);
    ams_params_free(p);
    return 0;
}

int main(int argc, char **argv) {
    static const check_case cases[] = {
        {"strategies_exact_fraction", test_strategies_exact_fraction},
        {"masked_adam_outside_unchanged", test_masked_adam_outside_unchanged},
        {"reference_format_roundtrip", test_reference_format_roundtrip},
    };
    return check_run(cases, sizeof cases / sizeof cases[0], argc, argv);
}
