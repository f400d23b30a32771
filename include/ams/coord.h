/* coord.h - which parameter elements a training phase updates (and the edge receives):
 * coordinate-descent selection of the top fraction by a score, and the reference's fixed
 * strategies, all as uint8 masks over the flat parameter buffer (ams_params layout).
 *
 *     uint8_t *mask = malloc(p->total);
 *     size_t k;
 *     // score = |gradient of the first batch| (or |w after a few steps - w before|)
 *     ams_coord_top(p, p->grads, 0.05, mask, &k, &err);      // 5 % of the trainable elements
 *     ams_coord_mask(p, AMS_STRATEGY_LAST, 0.05, NULL, &rng, mask, &k, &err);
 * mask[i] = 1 selects flat element i; non-trainable elements (BatchNorm moving statistics)
 * are never selected. The caller owns mask (p->total bytes). Pure functions of their inputs:
 * safe from any thread on distinct masks.
 *
 * Counts: every fractional strategy selects exactly k = llround(f * N) elements, N = the
 * trainable element count (round half away from zero). The reference draws per element with
 * probability f (rand) or picks by `change > percentile`, so its counts are only close to f*N.
 *
 * Strategies (modelstreaming/ams SemanticNetwork.get_train_mask, in our words):
 *   full  - every trainable element (the reference sends them all, fp16).
 *   coord - the k largest |score| (reference "coord_desc_auto": the change after the first
 *           Adam iteration, which is nearly lr for every element; pass the gradient magnitude
 *           or a change over several iterations instead). Ties: the lower flat index first.
 *   first - whole trainable tensors in layout order from the first while they fit in k; in the
 *           tensor where k runs out, a uniformly random subset of exactly the remaining count.
 *   last  - the same from the last tensor backwards (logits, concat_projection, aspp ...).
 *   both  - first with k/2 (rounded down), then last with the rest among unselected elements.
 *   rand  - exactly k elements uniformly at random among all trainable ones.
 * The reference hard-codes, per fraction, the tensor names and the boundary probability for
 * DeepLab-MNV2; ours derives the same kind of mask from the layout for any model.
 */
#ifndef AMS_COORD_H
#define AMS_COORD_H

#include <stddef.h>
#include <stdint.h>

#include "ams/params.h"
#include "ams/rng.h"
#include "ams/status.h"

/* Values are stable (CLI/report names follow ams_strategy_name). */
typedef enum {
    AMS_STRATEGY_FULL = 0,
    AMS_STRATEGY_COORD = 1,
    AMS_STRATEGY_FIRST = 2,
    AMS_STRATEGY_LAST = 3,
    AMS_STRATEGY_BOTH = 4,
    AMS_STRATEGY_RAND = 5,
} ams_strategy;

/* "full", "coord", "first", "last", "both", "rand"; "?" for an unknown value. */
const char *ams_strategy_name(ams_strategy s);
/* Parses a name above. @return AMS_OK or AMS_E_INVAL. */
ams_status ams_strategy_parse(const char *name, ams_strategy *out, ams_err *err);

/* k = llround(fraction * trainable elements); 0 for fraction <= 0 or NaN, all for >= 1. */
size_t ams_coord_count(const ams_params *layout, double fraction);

/* Top fraction of trainable elements by |score[i]| (score has layout->total floats).
 * @return AMS_OK; AMS_E_INVAL (fraction outside [0,1]); AMS_E_RANGE (a NaN score on a
 * trainable element); AMS_E_NOMEM; AMS_E_SHAPE (a tensor outside the buffer). */
ams_status ams_coord_top(const ams_params *layout, const float *score, double fraction,
                         uint8_t *mask, size_t *selected, ams_err *err);

/* Any strategy. score is used by COORD only (may be NULL otherwise); rng by FIRST, LAST, BOTH
 * (boundary tensor) and RAND (may be NULL for FULL and COORD); fraction is ignored by FULL.
 * *selected receives the number of elements set. Errors as ams_coord_top, plus AMS_E_INVAL
 * for a missing score/rng or an unknown strategy. */
ams_status ams_coord_mask(const ams_params *layout, ams_strategy s, double fraction,
                          const float *score, ams_rng *rng, uint8_t *mask, size_t *selected,
                          ams_err *err);

#endif
