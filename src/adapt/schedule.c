/* schedule.c - the training clock and ATR (see include/ams/schedule.h for the rule). */
#include "ams/schedule.h"

#include <math.h>

void ams_atr_init(ams_atr *a, double base_period) {
    for (int i = 0; i < AMS_ATR_HISTORY; i++) a->history[i] = 0;
    a->n = 0;
    a->head = 0;
    a->base_period = base_period;
    a->period = base_period;
    a->step = 2.0;
    a->max_factor = 6.0;
    a->low = 0.25;
    a->high = 0.35;
    a->hibernating = 0;
}

double ams_atr_mean(const ams_atr *a) {
    if (a->n == 0) return NAN;
    double s = 0;
    for (int i = 0; i < a->n; i++) s += a->history[i];
    return s / a->n;
}

double ams_atr_update(ams_atr *a, double rate) {
    a->history[a->head] = rate;
    a->head = (a->head + 1) % AMS_ATR_HISTORY;
    if (a->n < AMS_ATR_HISTORY) a->n++;
    double m = ams_atr_mean(a);
    if (m < a->low) a->hibernating = 1;
    if (m > a->high && a->hibernating) {
        a->hibernating = 0;
        a->period = a->base_period;
    }
    if (a->hibernating) {
        double cap = a->max_factor * a->base_period;
        a->period = a->period + a->step < cap ? a->period + a->step : cap;
    }
    return a->period;
}

double ams_schedule_reference_first(double period) {
    return period > 0 ? ceil(100.0 / period) * period : 0.0;
}

void ams_schedule_init(ams_schedule *s, double base_period, double first_train, int use_atr) {
    ams_atr_init(&s->atr, base_period);
    s->use_atr = use_atr;
    s->next = first_train;
}

int ams_schedule_due(const ams_schedule *s, double now) { return now >= s->next; }

double ams_schedule_done(ams_schedule *s, double now, double rate) {
    if (s->use_atr) ams_atr_update(&s->atr, rate);
    double next = s->next + s->atr.period;
    s->next = next > now ? next : now;
    return s->next;
}
