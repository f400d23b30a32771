/* schedule.h - when the server trains: the train-period clock and ATR (adaptive training rate).
 *
 *     ams_schedule s;
 *     ams_schedule_init(&s, 10.0, ams_schedule_reference_first(10.0), 1);  // ATR on
 *     for (t = ...; ; t += dt)
 *         if (ams_schedule_due(&s, t)) { train(...); ams_schedule_done(&s, t, asr.rate); }
 * Plain values, no heap.
 *
 * ATR, checked against the reference (modelstreaming/ams, run.py train_model): at every training
 * event, with the mean m of the last 5 sampling rates (frames/s):
 *     m < 0.25                  -> hibernate
 *     m > 0.35 and hibernating  -> wake: period = base
 *     hibernating (after both)  -> period = min(period + step, 6 * base)
 * Two differences from the published code, both deliberate:
 * - run.py grows the period by step = 2 s per event (min(train_period_current + 2, 6 * reset)),
 *   not by one base period as the paper's text and our issue put it; our default is run.py's
 *   2 s and `step` is a field (set it to base_period for the other reading).
 * - run.py never appends to its rate deque (send_rate_deq), so its mean is NaN and ATR never
 *   fires; we push the rate of each event before the rule (the evident intent). An empty
 *   history never hibernates.
 * Train events, as run.py: the first at `first_train` (run.py: ceil(100 / T) * T, data must
 * accumulate first), then every `period` seconds after the previous event's scheduled time;
 * when training falls behind (now past the next time), the next event is `now` (no pile-up).
 */
#ifndef AMS_SCHEDULE_H
#define AMS_SCHEDULE_H

#define AMS_ATR_HISTORY 5

typedef struct ams_atr {
    double history[AMS_ATR_HISTORY]; /* the last sampling rates, a ring */
    int n;                           /* valid entries (<= AMS_ATR_HISTORY) */
    int head;                        /* next slot to write */
    double base_period;              /* seconds between trainings when awake (10) */
    double period;                   /* current seconds between trainings */
    double step;                     /* growth per event while hibernating (run.py: 2 s) */
    double max_factor;               /* period <= max_factor * base_period (6) */
    double low;                      /* mean rate below this: hibernate (0.25) */
    double high;                     /* mean rate above this: wake up (0.35) */
    int hibernating;                 /* 1 while the scene is judged static */
} ams_atr;

/* The reference's constants around base_period (seconds). */
void ams_atr_init(ams_atr *a, double base_period);
/* Mean of the history; NaN when empty. */
double ams_atr_mean(const ams_atr *a);
/* One training event: pushes rate, applies the rule. @return the new period (seconds). */
double ams_atr_update(ams_atr *a, double rate);

typedef struct ams_schedule {
    double next; /* time (s) of the next training event */
    int use_atr; /* 0: fixed period */
    ams_atr atr; /* period state (atr.period is the fixed period when use_atr == 0) */
} ams_schedule;

/* run.py's first training time: ceil(100 / period) * period. */
double ams_schedule_reference_first(double period);
void ams_schedule_init(ams_schedule *s, double base_period, double first_train, int use_atr);
/* 1 when a training event is due at time now. */
int ams_schedule_due(const ams_schedule *s, double now);
/* Records the event that was due: updates ATR with the current sampling rate (if enabled) and
 * sets the next time. @return the next event time. */
double ams_schedule_done(ams_schedule *s, double now, double rate);

#endif
