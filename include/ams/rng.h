/* rng.h - explicit, seeded random numbers (no hidden global state).
 * xoshiro256** seeded by splitmix64; identical sequences on every platform. */
#ifndef AMS_RNG_H
#define AMS_RNG_H

#include <stdint.h>

typedef struct ams_rng {
    uint64_t s[4];
} ams_rng;

void ams_rng_seed(ams_rng *r, uint64_t seed);
uint64_t ams_rng_u64(ams_rng *r);
/* Uniform in [0, 1). */
float ams_rng_uniform(ams_rng *r);
/* Standard normal (Box-Muller). */
float ams_rng_normal(ams_rng *r);

#endif
