/* horizon.h - the server's training horizon: the labelled frames of the last memory_len
 * seconds, in bounded memory, and random training batches drawn from them.
 *
 *     ams_horizon *h = ams_horizon_new(192, 256, 250.0, 300, &err);  // 250 s, <= 300 frames
 *     ams_horizon_add(h, t, rgb, label, &err);        // rgb [H,W,3] uint8, label [H,W] uint8
 *     ams_horizon_batch(h, &rng, 10, x, y, NULL, &err); // x [10,H,W,3] float 0..255, y [10,H,W]
 *     ams_horizon_free(h);
 * An entry is kept while its time t >= newest - memory_len; beyond max_entries the oldest goes
 * first. Memory is at most max_entries * H * W * 4 bytes, allocated as entries arrive and reused.
 * Frames keep raw RGB bytes: the model applies its own preprocessing (DESIGN.md). Batches are
 * drawn uniformly with replacement, as the reference's mini_batch (np.random.choice per slot),
 * from the caller's seeded rng: the same seed and adds give the same batches.
 * One ams_horizon belongs to one thread at a time.
 */
#ifndef AMS_HORIZON_H
#define AMS_HORIZON_H

#include <stddef.h>
#include <stdint.h>

#include "ams/rng.h"
#include "ams/status.h"

typedef struct ams_horizon ams_horizon;

/* A horizon for height x width frames. memory_len > 0 seconds; 1 <= max_entries <= 1e6.
 * @return NULL on error (err says why). Free with ams_horizon_free. */
ams_horizon *ams_horizon_new(int height, int width, double memory_len, size_t max_entries,
                             ams_err *err);
void ams_horizon_free(ams_horizon *h);

/* Copies one labelled frame taken at time t (seconds, never before the newest entry), then
 * drops what fell out of the window. @return AMS_OK, AMS_E_INVAL (time goes back or is not
 * finite), AMS_E_NOMEM. */
ams_status ams_horizon_add(ams_horizon *h, double t, const uint8_t *rgb, const uint8_t *label,
                           ams_err *err);
/* Drops entries older than now - memory_len (e.g. at a training event with no new frame). */
void ams_horizon_expire(ams_horizon *h, double now);

/* The frames' size. */
int ams_horizon_height(const ams_horizon *h);
int ams_horizon_width(const ams_horizon *h);
/* Entries held; entry 0 is the oldest. */
size_t ams_horizon_count(const ams_horizon *h);
double ams_horizon_time(const ams_horizon *h, size_t i);
const uint8_t *ams_horizon_frame(const ams_horizon *h, size_t i); /* [H,W,3] */
const uint8_t *ams_horizon_label(const ams_horizon *h, size_t i); /* [H,W] */

/* batch entries drawn uniformly with replacement: x receives their frames as float 0..255
 * (batch*H*W*3), y their labels (batch*H*W), picked (optional, batch entries) their indices.
 * @return AMS_OK, AMS_E_INVAL (empty horizon or batch < 1). */
ams_status ams_horizon_batch(const ams_horizon *h, ams_rng *rng, int batch, float *x, uint8_t *y,
                             size_t *picked, ams_err *err);
/* The same draws without copies: frames[b] and labels[b] (batch entries each) point at the
 * entries' bytes ([H,W,3], [H,W]), valid until the next add or expire. */
ams_status ams_horizon_pick(const ams_horizon *h, ams_rng *rng, int batch,
                            const uint8_t **frames, const uint8_t **labels, size_t *picked,
                            ams_err *err);

#endif
