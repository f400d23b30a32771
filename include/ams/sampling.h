/* sampling.h - which frames the edge uploads, and ASR (adaptive sampling rate).
 *
 *     ams_asr asr;
 *     ams_asr_init(&asr);                          // r = 1 fps, the reference's bounds
 *     size_t idx[64], n;
 *     ams_sample_pick(300, ams_sample_fraction(asr.rate, 10.0), idx, 64, &n, &err);
 *     ...                                          // upload frames idx[0..n-1] of the period
 *     double phi = ams_asr_phi(&scratch, labels, count, h * w);
 *     ams_asr_update(&asr, phi);                   // the new rate for the next period
 * Plain values, no heap.
 *
 * Checked against the reference (modelstreaming/ams, utils.choose_frames, run.py):
 * - Picking: from the n frames buffered in one upload period, s = round(fraction * n) frames
 *   at indices round(-1 + j * n / s), j = 1..s, both roundings half-to-even (numpy's round):
 *   each pick is the last frame of its equal share, the period's last frame always sent.
 * - The reference's rate is a fraction of frames (send_rate = sampling_period / fps, clipped
 *   to [0.1, 1]); the paper and our API use frames per second (0.1..1 fps) and convert with
 *   ams_sample_fraction(rate, fps) = rate / fps.
 * - phi: the mIoU (subset, pixels ignored when either label is outside it) of each pair of
 *   consecutive teacher labels, from the last label seen before through the labels that arrived
 *   since (the reference starts at len - unseen - 1), then the mean over pairs. run.py updates
 *   r at every training event (not every upload), over the labels that arrived since the last.
 *   A pair with no counted pixel is skipped (the reference would average a NaN into r).
 * - r <- clip(r - 0.2 * tanh((phi - 0.6) * 20), 0.1, 1), as run.py; a NaN phi leaves r as is.
 *   (run.py's label_memory.extend() appends label rows, not labels, so its ASR cannot run as
 *   published; this is the evident intent.)
 */
#ifndef AMS_SAMPLING_H
#define AMS_SAMPLING_H

#include <stddef.h>
#include <stdint.h>

#include "ams/metrics.h"
#include "ams/status.h"

typedef struct ams_asr {
    double rate;     /* frames per second uploaded; starts at rate_max */
    double rate_min; /* 0.1 */
    double rate_max; /* 1.0 */
    double gain;     /* 0.2: the largest change per period */
    double target;   /* 0.6: the phi at which r stays put */
    double slope;    /* 20: tanh steepness */
} ams_asr;

/* The reference's constants, rate = rate_max. */
void ams_asr_init(ams_asr *a);

/* rate (frames/s) over a video's fps as the fraction of frames to send; 0 if fps <= 0. */
double ams_sample_fraction(double rate, double fps);
/* Frames picked out of n: round_half_even(fraction * n), at most n; 0 for fraction <= 0 or NaN. */
size_t ams_sample_count(size_t n, double fraction);
/* The picked frame indices, ascending, into idx (capacity cap); *count receives how many.
 * @return AMS_OK, AMS_E_INVAL (fraction outside [0, 1] or NaN), AMS_E_NOMEM (cap too small). */
ams_status ams_sample_pick(size_t n, double fraction, size_t *idx, size_t cap, size_t *count,
                           ams_err *err);

/* phi over count label planes of npix pixels each (labels[0] is the previous period's last
 * label); the mean over consecutive pairs of their mIoU under AMS_CM_EITHER, with scratch's
 * subset. NaN when no pair counts (count < 2). */
double ams_asr_phi(ams_confmat *scratch, const uint8_t *const *labels, size_t count, size_t npix);
/* One ASR step: rate <- clip(rate - gain * tanh((phi - target) * slope), min, max).
 * A NaN phi leaves the rate unchanged. @return the new rate. */
double ams_asr_update(ams_asr *a, double phi);

#endif
