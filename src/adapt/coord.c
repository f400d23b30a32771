/* coord.c - training masks: top-|score| selection by radix select (exact count, deterministic
 * ties) and the reference's first/last/both/rand/full strategies (see include/ams/coord.h). */
#include "ams/coord.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const NAMES[] = {"full", "coord", "first", "last", "both", "rand"};
#define NSTRAT ((int)(sizeof NAMES / sizeof NAMES[0]))

const char *ams_strategy_name(ams_strategy s) {
    return (int)s >= 0 && (int)s < NSTRAT ? NAMES[s] : "?";
}

ams_status ams_strategy_parse(const char *name, ams_strategy *out, ams_err *err) {
    for (int i = 0; i < NSTRAT; i++)
        if (strcmp(name, NAMES[i]) == 0) {
            *out = (ams_strategy)i;
            return AMS_OK;
        }
    AMS_FAIL(err, AMS_E_INVAL, "unknown train strategy '%s' (full, coord, first, last, both, rand)",
             name);
}

static ams_status check_layout(const ams_params *l, ams_err *err) {
    for (int t = 0; t < l->count; t++) {
        size_t end;
        AMS_FAIL_IF(l->info[t].numel < 0 ||
                        !ams_size_add_ok(l->info[t].offset, (size_t)l->info[t].numel, &end) ||
                        end > l->total,
                    err, AMS_E_SHAPE, "parameter '%s' lies outside the flat buffer",
                    l->info[t].name);
    }
    return AMS_OK;
}

static size_t trainable_total(const ams_params *l) {
    size_t n = 0;
    for (int t = 0; t < l->count; t++)
        if (l->info[t].trainable) n += (size_t)l->info[t].numel;
    return n;
}

size_t ams_coord_count(const ams_params *layout, double fraction) {
    size_t n = trainable_total(layout);
    if (!(fraction > 0)) return 0;
    if (fraction >= 1) return n;
    double k = round(fraction * (double)n);
    return k >= (double)n ? n : (size_t)k;
}

/* |x| as an order-preserving integer key (non-negative floats order like their bits). */
static uint32_t mag_key(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u & 0x7fffffffu;
}

ams_status ams_coord_top(const ams_params *layout, const float *score, double fraction,
                         uint8_t *mask, size_t *selected, ams_err *err) {
    *selected = 0;
    AMS_FAIL_IF(!(fraction >= 0 && fraction <= 1), err, AMS_E_INVAL,
                "coordinate fraction %g outside [0, 1]", fraction);
    AMS_TRY(check_layout(layout, err));
    memset(mask, 0, layout->total);
    size_t k = ams_coord_count(layout, fraction);
    if (k == 0) return AMS_OK;

    /* Two-level radix select of the k-th largest key T: 16 high bits, then 16 low bits. */
    size_t *hist = calloc(65536, sizeof *hist);
    AMS_FAIL_IF(!hist, err, AMS_E_NOMEM, "out of memory for the selection histogram");
    for (int t = 0; t < layout->count; t++) {
        const ams_param_info *pi = &layout->info[t];
        if (!pi->trainable) continue;
        for (size_t i = pi->offset; i < pi->offset + (size_t)pi->numel; i++) {
            uint32_t key = mag_key(score[i]);
            if (key > 0x7f800000u) {
                free(hist);
                AMS_FAIL(err, AMS_E_RANGE, "score of '%s' element %zu is NaN", pi->name,
                         i - pi->offset);
            }
            hist[key >> 16]++;
        }
    }
    size_t above = 0, need = k;
    uint32_t hi = 65535;
    for (;; hi--) {
        if (above + hist[hi] >= k) break;
        above += hist[hi];
    }
    need = k - above; /* elements wanted from bin hi, 1..hist[hi] */
    memset(hist, 0, 65536 * sizeof *hist);
    for (int t = 0; t < layout->count; t++) {
        const ams_param_info *pi = &layout->info[t];
        if (!pi->trainable) continue;
        for (size_t i = pi->offset; i < pi->offset + (size_t)pi->numel; i++) {
            uint32_t key = mag_key(score[i]);
            if (key >> 16 == hi) hist[key & 0xffffu]++;
        }
    }
    above = 0;
    uint32_t lo = 65535;
    for (;; lo--) {
        if (above + hist[lo] >= need) break;
        above += hist[lo];
    }
    free(hist);
    uint32_t thr = hi << 16 | lo;
    size_t ties = need - above; /* elements equal to thr to take, lowest index first */

    size_t n = 0;
    for (int t = 0; t < layout->count; t++) {
        const ams_param_info *pi = &layout->info[t];
        if (!pi->trainable) continue;
        for (size_t i = pi->offset; i < pi->offset + (size_t)pi->numel; i++) {
            uint32_t key = mag_key(score[i]);
            if (key > thr || (key == thr && ties > 0 && ties--)) {
                mask[i] = 1;
                n++;
            }
        }
    }
    /* Parameters may be laid out in any order: ties are broken by tensor order, which equals
     * flat index order when offsets ascend with the tensor index (ams_params_add does so). */
    AMS_FAIL_IF(n != k, err, AMS_E_INTERNAL, "selected %zu elements, wanted %zu", n, k);
    *selected = n;
    return AMS_OK;
}

/* Uniform double in [0, 1) with 53 bits. */
static double uniform53(ams_rng *rng) { return (double)(ams_rng_u64(rng) >> 11) * 0x1p-53; }

/* Selects exactly `want` of the unselected elements of tensor pi, uniformly (selection
 * sampling, Knuth's Algorithm S). */
static void sample_in_tensor(const ams_param_info *pi, size_t want, ams_rng *rng, uint8_t *mask) {
    size_t avail = 0;
    for (size_t i = pi->offset; i < pi->offset + (size_t)pi->numel; i++) avail += !mask[i];
    for (size_t i = pi->offset; i < pi->offset + (size_t)pi->numel && want > 0; i++) {
        if (mask[i]) continue;
        if (uniform53(rng) * (double)avail < (double)want) {
            mask[i] = 1;
            want--;
        }
        avail--;
    }
}

/* Whole tensors from one end while they fit, then a random part of the boundary tensor. */
static size_t take_from_end(const ams_params *l, int from_last, size_t want, ams_rng *rng,
                            uint8_t *mask) {
    size_t taken = 0;
    for (int j = 0; j < l->count && taken < want; j++) {
        const ams_param_info *pi = &l->info[from_last ? l->count - 1 - j : j];
        if (!pi->trainable) continue;
        size_t avail = 0;
        for (size_t i = pi->offset; i < pi->offset + (size_t)pi->numel; i++) avail += !mask[i];
        if (avail <= want - taken) {
            for (size_t i = pi->offset; i < pi->offset + (size_t)pi->numel; i++) mask[i] = 1;
            taken += avail;
        } else {
            sample_in_tensor(pi, want - taken, rng, mask);
            taken = want;
        }
    }
    return taken;
}

ams_status ams_coord_mask(const ams_params *layout, ams_strategy s, double fraction,
                          const float *score, ams_rng *rng, uint8_t *mask, size_t *selected,
                          ams_err *err) {
    *selected = 0;
    if (s == AMS_STRATEGY_COORD) {
        AMS_FAIL_IF(!score, err, AMS_E_INVAL, "strategy coord needs a score buffer");
        return ams_coord_top(layout, score, fraction, mask, selected, err);
    }
    AMS_TRY(check_layout(layout, err));
    if (s == AMS_STRATEGY_FULL) fraction = 1.0;
    AMS_FAIL_IF(!(fraction >= 0 && fraction <= 1), err, AMS_E_INVAL,
                "train fraction %g outside [0, 1]", fraction);
    AMS_FAIL_IF(s != AMS_STRATEGY_FULL && !rng, err, AMS_E_INVAL, "strategy %s needs an rng",
                ams_strategy_name(s));
    memset(mask, 0, layout->total);
    size_t k = ams_coord_count(layout, fraction), n = 0;
    switch (s) {
    case AMS_STRATEGY_FULL:
    case AMS_STRATEGY_FIRST: n = take_from_end(layout, 0, k, rng, mask); break;
    case AMS_STRATEGY_LAST: n = take_from_end(layout, 1, k, rng, mask); break;
    case AMS_STRATEGY_BOTH:
        n = take_from_end(layout, 0, k / 2, rng, mask);
        n += take_from_end(layout, 1, k - k / 2, rng, mask);
        break;
    case AMS_STRATEGY_RAND: {
        size_t left = trainable_total(layout), want = k;
        for (int t = 0; t < layout->count && want > 0; t++) {
            const ams_param_info *pi = &layout->info[t];
            if (!pi->trainable) continue;
            for (size_t i = pi->offset; i < pi->offset + (size_t)pi->numel && want > 0; i++) {
                if (uniform53(rng) * (double)left < (double)want) {
                    mask[i] = 1;
                    want--;
                    n++;
                }
                left--;
            }
        }
        break;
    }
    case AMS_STRATEGY_COORD:
    default: AMS_FAIL(err, AMS_E_INVAL, "unknown train strategy %d", (int)s);
    }
    AMS_FAIL_IF(n != k, err, AMS_E_INTERNAL, "selected %zu elements, wanted %zu", n, k);
    *selected = n;
    return AMS_OK;
}
