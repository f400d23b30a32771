/* test_adapt_coord.c - training masks: exact counts, never a non-trainable element, top-|score|
 * selection equal to an independent sort (with ties -> lower index), hand-worked first/last/
 * both splits, determinism per seed and uniformity of the random choices. */
#include "ams/coord.h"
#include "check.h"

/* A[10] trainable, B[5] frozen (BN statistics), C[20] trainable, D[8] trainable: 38 of 43. */
static ams_params *small_layout(void) {
    ams_params *p = ams_params_new();
    if (!p) return NULL;
    if (ams_params_add(p, "A", 1, (int64_t[]){10}, 1, NULL) < 0 ||
        ams_params_add(p, "B", 1, (int64_t[]){5}, 0, NULL) < 0 ||
        ams_params_add(p, "C", 2, (int64_t[]){4, 5}, 1, NULL) < 0 ||
        ams_params_add(p, "D", 1, (int64_t[]){8}, 1, NULL) < 0 || ams_params_alloc(p, NULL) != AMS_OK) {
        ams_params_free(p);
        return NULL;
    }
    return p;
}

static size_t count_range(const uint8_t *m, size_t a, size_t b) {
    size_t n = 0;
    for (size_t i = a; i < b; i++) n += m[i];
    return n;
}

static int test_counts(void) {
    ams_params *p = small_layout();
    CHECK(p && p->total == 43);
    CHECK(ams_coord_count(p, 0.25) == 10); /* 9.5 rounds away from zero */
    CHECK(ams_coord_count(p, 0.5) == 19);
    CHECK(ams_coord_count(p, 0.0) == 0 && ams_coord_count(p, 1.0) == 38);
    CHECK(ams_coord_count(p, NAN) == 0);
    ams_params_free(p);
    return 0;
}

static int test_top_hand(void) {
    ams_params *p = small_layout();
    CHECK(p);
    float s[43] = {0};
    for (int i = 10; i < 15; i++) s[i] = 100.0f; /* frozen: never chosen */
    s[3] = -5.0f;                                 /* magnitude counts */
    s[20] = 4.0f;
    s[40] = 3.0f;
    s[41] = 3.0f; /* ties at 3: the lower index wins */
    s[1] = 3.0f;
    uint8_t m[43];
    size_t k;
    ams_err err = {0};
    /* f = 4/38 -> k = 4: 3, 20, then two of {1, 40, 41} -> 1 and 40 */
    CHECKF(ams_coord_top(p, s, 4.0 / 38.0, m, &k, &err) == AMS_OK, "%s", err.msg);
    CHECK(k == 4);
    for (int i = 0; i < 43; i++)
        CHECKF(m[i] == (i == 1 || i == 3 || i == 20 || i == 40), "element %d", i);
    /* k = 10 with only 5 nonzero trainable scores: the zeros fill by lowest index (0, 2, 4...) */
    CHECK(ams_coord_top(p, s, 0.25, m, &k, &err) == AMS_OK && k == 10);
    CHECK(m[0] && m[2] && m[4] && m[5] && m[6] && !m[7] && count_range(m, 10, 15) == 0);
    s[12] = NAN; /* frozen NaN is ignored */
    CHECK(ams_coord_top(p, s, 0.25, m, &k, &err) == AMS_OK);
    s[30] = NAN;
    CHECK(ams_coord_top(p, s, 0.25, m, &k, &err) == AMS_E_RANGE);
    CHECK(strstr(err.msg, "'C'") != NULL);
    CHECK(ams_coord_top(p, s, 1.5, m, &k, &err) == AMS_E_INVAL);
    ams_params_free(p);
    return 0;
}

typedef struct {
    uint32_t key;
    uint32_t idx;
} keyed;

static int by_key_desc_idx_asc(const void *a, const void *b) {
    const keyed *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? 1 : -1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* 106,377 elements like the selfie student; quantized scores force many ties (also across the
 * radix bins); the oracle sorts (|score| desc, index asc) and takes the first k. */
static int test_top_vs_sort(void) {
    ams_params *p = ams_params_new();
    CHECK(p);
    CHECK(ams_params_add(p, "w0", 1, (int64_t[]){50000}, 1, NULL) >= 0);
    CHECK(ams_params_add(p, "bn", 1, (int64_t[]){377}, 0, NULL) >= 0);
    CHECK(ams_params_add(p, "w1", 1, (int64_t[]){56000}, 1, NULL) >= 0);
    CHECK(ams_params_alloc(p, NULL) == AMS_OK);
    size_t n = p->total;
    float *s = malloc(n * sizeof *s);
    uint8_t *m = malloc(n);
    keyed *ks = malloc(n * sizeof *ks);
    CHECK(s && m && ks);
    ams_rng rng;
    ams_rng_seed(&rng, 7);
    for (int round = 0; round < 3; round++) {
        for (size_t i = 0; i < n; i++) {
            float g = ams_rng_normal(&rng) * 1e-3f;
            if (round == 1) g = (float)(int)(g * 3e3f) / 3e3f; /* ~10 distinct magnitudes */
            if (round == 2) g = (i % 7) ? 0.0f : g;            /* mostly zeros */
            s[i] = g;
        }
        double fracs[] = {0.01, 0.05, 0.1, 0.2, 0.9};
        for (int fi = 0; fi < 5; fi++) {
            size_t k, nk = 0;
            ams_err err = {0};
            CHECKF(ams_coord_top(p, s, fracs[fi], m, &k, &err) == AMS_OK, "%s", err.msg);
            CHECK(k == (size_t)llround(fracs[fi] * 106000));
            for (size_t i = 0; i < n; i++) {
                if (i >= 50000 && i < 50377) continue;
                float a = fabsf(s[i]);
                memcpy(&ks[nk].key, &a, 4);
                ks[nk++].idx = (uint32_t)i;
            }
            qsort(ks, nk, sizeof *ks, by_key_desc_idx_asc);
            uint8_t *want = calloc(n, 1);
            CHECK(want);
            for (size_t j = 0; j < k; j++) want[ks[j].idx] = 1;
            int same = memcmp(want, m, n) == 0;
            free(want);
            CHECKF(same, "round %d fraction %g differs from the sort", round, fracs[fi]);
            CHECK(count_range(m, 50000, 50377) == 0);
        }
    }
    free(s);
    free(m);
    free(ks);
    ams_params_free(p);
    return 0;
}

static int test_first_last_both(void) {
    ams_params *p = small_layout();
    CHECK(p);
    uint8_t m[43];
    size_t k;
    ams_rng rng;
    ams_rng_seed(&rng, 1);
    ams_err err = {0};
    /* k = 19. first: A whole (10), 9 of C's 20, none of D */
    CHECKF(ams_coord_mask(p, AMS_STRATEGY_FIRST, 0.5, NULL, &rng, m, &k, &err) == AMS_OK, "%s",
           err.msg);
    CHECK(k == 19 && count_range(m, 0, 10) == 10 && count_range(m, 10, 15) == 0);
    CHECK(count_range(m, 15, 35) == 9 && count_range(m, 35, 43) == 0);
    /* last: D whole (8), 11 of C, none of A */
    CHECK(ams_coord_mask(p, AMS_STRATEGY_LAST, 0.5, NULL, &rng, m, &k, &err) == AMS_OK);
    CHECK(k == 19 && count_range(m, 35, 43) == 8 && count_range(m, 15, 35) == 11);
    CHECK(count_range(m, 0, 15) == 0);
    /* both: first 9 (9 of A), last 10 (D whole + 2 of C) */
    CHECK(ams_coord_mask(p, AMS_STRATEGY_BOTH, 0.5, NULL, &rng, m, &k, &err) == AMS_OK);
    CHECK(k == 19 && count_range(m, 0, 10) == 9 && count_range(m, 10, 15) == 0);
    CHECK(count_range(m, 15, 35) == 2 && count_range(m, 35, 43) == 8);
    /* both at f = 1 overlaps in C: still exactly every trainable element */
    CHECK(ams_coord_mask(p, AMS_STRATEGY_BOTH, 1.0, NULL, &rng, m, &k, &err) == AMS_OK);
    CHECK(k == 38 && count_range(m, 0, 43) == 38 && count_range(m, 10, 15) == 0);
    CHECK(ams_coord_mask(p, AMS_STRATEGY_FULL, 0.01, NULL, NULL, m, &k, &err) == AMS_OK);
    CHECK(k == 38 && count_range(m, 10, 15) == 0);
    CHECK(ams_coord_mask(p, AMS_STRATEGY_LAST, 0.5, NULL, NULL, m, &k, &err) == AMS_E_INVAL);
    CHECK(ams_coord_mask(p, AMS_STRATEGY_COORD, 0.5, NULL, &rng, m, &k, &err) == AMS_E_INVAL);
    CHECK(ams_coord_mask(p, (ams_strategy)9, 0.5, NULL, &rng, m, &k, &err) == AMS_E_INVAL);
    ams_params_free(p);
    return 0;
}

/* rand and the boundary subset: exact count every time, the same mask for the same seed, and
 * each eligible element chosen with frequency ~ k / eligible over many seeds. */
static int test_random_masks(void) {
    ams_params *p = small_layout();
    CHECK(p);
    enum { RUNS = 4000 };
    int freq_rand[43] = {0}, freq_first[43] = {0};
    uint8_t m[43], m2[43];
    for (int r = 0; r < RUNS; r++) {
        ams_rng a, b;
        size_t k;
        ams_rng_seed(&a, (uint64_t)r);
        ams_rng_seed(&b, (uint64_t)r);
        CHECK(ams_coord_mask(p, AMS_STRATEGY_RAND, 0.5, NULL, &a, m, &k, NULL) == AMS_OK);
        CHECK(ams_coord_mask(p, AMS_STRATEGY_RAND, 0.5, NULL, &b, m2, &k, NULL) == AMS_OK);
        CHECK(k == 19 && memcmp(m, m2, 43) == 0 && count_range(m, 10, 15) == 0);
        for (int i = 0; i < 43; i++) freq_rand[i] += m[i];
        CHECK(ams_coord_mask(p, AMS_STRATEGY_FIRST, 0.5, NULL, &a, m, &k, NULL) == AMS_OK);
        for (int i = 0; i < 43; i++) freq_first[i] += m[i];
    }
    for (int i = 0; i < 43; i++) {
        if (i >= 10 && i < 15) {
            CHECK(freq_rand[i] == 0);
            continue;
        }
        double fr = (double)freq_rand[i] / RUNS;
        CHECKF(fabs(fr - 19.0 / 38.0) < 0.04, "rand element %d frequency %g", i, fr);
        if (i >= 15 && i < 35) {
            double ff = (double)freq_first[i] / RUNS;
            CHECKF(fabs(ff - 9.0 / 20.0) < 0.04, "first boundary element %d frequency %g", i, ff);
        }
    }
    ams_rng a, b;
    size_t k;
    ams_rng_seed(&a, 1);
    ams_rng_seed(&b, 2);
    CHECK(ams_coord_mask(p, AMS_STRATEGY_RAND, 0.5, NULL, &a, m, &k, NULL) == AMS_OK);
    CHECK(ams_coord_mask(p, AMS_STRATEGY_RAND, 0.5, NULL, &b, m2, &k, NULL) == AMS_OK);
    CHECK(memcmp(m, m2, 43) != 0);
    ams_params_free(p);
    return 0;
}

static int test_names(void) {
    ams_strategy s;
    for (int i = 0; i <= AMS_STRATEGY_RAND; i++) {
        CHECK(ams_strategy_parse(ams_strategy_name((ams_strategy)i), &s, NULL) == AMS_OK);
        CHECK((int)s == i);
    }
    ams_err err = {0};
    CHECK(ams_strategy_parse("auto", &s, &err) == AMS_E_INVAL && strstr(err.msg, "auto"));
    return 0;
}

int main(int argc, char **argv) {
    static const check_case cases[] = {
        {"counts", test_counts},
        {"top_hand", test_top_hand},
        {"top_vs_sort", test_top_vs_sort},
        {"first_last_both", test_first_last_both},
        {"random_masks", test_random_masks},
        {"names", test_names},
    };
    return check_run(cases, sizeof cases / sizeof cases[0], argc, argv);
}
