/* compute_state.h - the real compute's per-session state (horizon, ASR, ATR, clock, last label)
 * and its file STATE/<id>.compute ("AMSC" v1, SHA-256 checked); private to src/net. The parse
 * works on a memory buffer and needs only a few settings, no model: compute_trainer.c reads
 * the file with it, fuzz/fuzz_compute_state.c feeds it arbitrary bytes.
 *
 *     ams_cstate_cfg cfg = {.width = 256, .height = 256, .memory_len = 60, .hcap = 136,
 *                           .train_period = 10, .first_train = -1, .atr = 1};
 *     ams_cstate *cs = NULL;
 *     ams_cstate_load(&cfg, "STATE/abc.compute", &cs, &err);   // or ams_cstate_parse(buf, n)
 *     ams_cstate_save(&cfg, cs, "STATE/abc.compute", &err);
 *     ams_cstate_free(cs);
 *
 * FILE "AMSC" v1 (little endian): "AMSC", u16 1, u16 0, u32 width, u32 height,
 * f64 clock offset, f64 clock, u32 have_clock, u32 have_last_label, f64 ASR rate,
 * f64 next train time, f64 ATR period, f64 history[5], u32 history n, u32 head,
 * u32 hibernating, u32 0, u64 labelled, u64 phases, u32 entries, u32 0, f64 covered video
 * time (the last upload's end), the last label
 * (width*height bytes, when have_last_label), entries x {f64 t, rgb width*height*3,
 * label width*height}, SHA-256 of every byte before it.
 * A state is used by one thread at a time. */
#ifndef AMS_NET_COMPUTE_STATE_H
#define AMS_NET_COMPUTE_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "ams/horizon.h"
#include "ams/sampling.h"
#include "ams/schedule.h"
#include "ams/status.h"

#define AMS_CSTATE_HEAD 152      /* bytes of the fixed head */
#define AMS_CSTATE_EVAL_WINDOW 10 /* frames: the reported mIoU is the mean over the last ones */

/* The settings a state depends on (the server trainer's, validated there). */
typedef struct ams_cstate_cfg {
    int width, height;   /* student frames = horizon (>= 1) */
    double memory_len;   /* seconds of horizon (> 0) */
    size_t hcap;         /* horizon entries at most (1..1000000) */
    double train_period; /* ATR base period (s) */
    double first_train;  /* the first phase (< 0: train_period) */
    int atr;             /* adaptive training rate on */
} ams_cstate_cfg;

typedef struct ams_cstate {
    ams_horizon *h;
    ams_asr asr;
    ams_schedule sched;
    uint8_t *last_label; /* width*height bytes */
    int have_last;
    double toff, clock;
    double covered; /* end of the video time the uploads cover (last frame + 1/fps) */
    int have_clock;
    uint64_t labelled, phases;
    double win[2][AMS_CSTATE_EVAL_WINDOW]; /* per-frame mIoU: the client's model, the pretrained */
    int win_n[2], win_head[2];              /* (not persisted) */
} ams_cstate;

/* A session's start: empty horizon, ASR and ATR at their initial values. Freed by
 * ams_cstate_free. @return NULL with err set (AMS_E_INVAL bad cfg, AMS_E_NOMEM). */
ams_cstate *ams_cstate_new(const ams_cstate_cfg *cfg, ams_err *err);
/* NULL is a no-op. */
void ams_cstate_free(ams_cstate *cs);

/* Parses a whole state file held in buf[0..n) (name: for the messages, e.g. its path) into a
 * new state (*out, freed by ams_cstate_free; NULL on error). Bounded by cfg: a buffer larger
 * than the head, a last label, cfg->hcap entries and the digest is refused before any work.
 * @return AMS_OK; AMS_E_FORMAT (size, magic, version, digest, other settings, values out of
 * range); AMS_E_INVAL (bad cfg, a horizon entry's time); AMS_E_NOMEM; AMS_E_INTERNAL. */
ams_status ams_cstate_parse(const ams_cstate_cfg *cfg, const uint8_t *buf, size_t n,
                            const char *name, ams_cstate **out, ams_err *err);

/* Reads path and parses it (the size is checked before reading). @return as
 * ams_cstate_parse; AMS_E_NOTFOUND (no file), AMS_E_IO. */
ams_status ams_cstate_load(const ams_cstate_cfg *cfg, const char *path, ams_cstate **out,
                           ams_err *err);

/* Writes cs to path atomically (path.tmp, fsync, rename). @return AMS_OK, AMS_E_INVAL (path
 * too long), AMS_E_IO. */
ams_status ams_cstate_save(const ams_cstate_cfg *cfg, const ams_cstate *cs, const char *path,
                           ams_err *err);

#endif
