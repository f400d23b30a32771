/* sampling.c - evenly spaced frame picking and the ASR rate rule (see include/ams/sampling.h). */
#include "ams/sampling.h"

#include <math.h>

void ams_asr_init(ams_asr *a) {
    a->rate_min = 0.1;
    a->rate_max = 1.0;
    a->gain = 0.2;
    a->target = 0.6;
    a->slope = 20.0;
    a->rate = a->rate_max;
}

double ams_sample_fraction(double rate, double fps) { return fps > 0 ? rate / fps : 0.0; }

size_t ams_sample_count(size_t n, double fraction) {
    if (!(fraction > 0)) return 0;
    double s = nearbyint(fraction * (double)n); /* ties to even, as numpy */
    return s >= (double)n ? n : (size_t)s;
}

ams_status ams_sample_pick(size_t n, double fraction, size_t *idx, size_t cap, size_t *count,
                           ams_err *err) {
    *count = 0;
    AMS_FAIL_IF(!(fraction >= 0 && fraction <= 1), err, AMS_E_INVAL,
                "sampling fraction %g outside [0, 1]", fraction);
    size_t s = ams_sample_count(n, fraction);
    AMS_FAIL_IF(s > cap, err, AMS_E_NOMEM, "%zu frames picked, room for %zu", s, cap);
    if (s == 0) return AMS_OK;
    /* numpy.linspace(-1, n-1, s+1): start + j*step, the last value exactly stop. */
    double step = (double)n / (double)s;
    for (size_t j = 1; j <= s; j++) {
        double v = j == s ? (double)n - 1.0 : -1.0 + (double)j * step;
        double r = nearbyint(v);
        idx[j - 1] = r < 0 ? 0 : (size_t)r;
    }
    *count = s;
    return AMS_OK;
}

double ams_asr_phi(ams_confmat *scratch, const uint8_t *const *labels, size_t count, size_t npix) {
    double sum = 0;
    size_t pairs = 0;
    for (size_t k = 0; k + 1 < count; k++) {
        double m = ams_label_miou(scratch, labels[k], labels[k + 1], npix, AMS_CM_EITHER);
        if (isnan(m)) continue;
        sum += m;
        pairs++;
    }
    return pairs ? sum / (double)pairs : NAN;
}

double ams_asr_update(ams_asr *a, double phi) {
    if (isnan(phi)) return a->rate;
    double r = a->rate - a->gain * tanh((phi - a->target) * a->slope);
    if (r < a->rate_min) r = a->rate_min;
    if (r > a->rate_max) r = a->rate_max;
    a->rate = r;
    return r;
}
