/* compute_state.c - the real compute's per-session state and its "AMSC" v1 file (format in
 * compute_state.h): new/free, save (atomic, SHA-256 trailer), and load = read + a parse from
 * memory that checks every field before it is used. */
#include "net/compute_state.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ams/weights_hash.h"
#include "net/wire.h"

/* Bytes of a label (npix), of one entry (per) and of the largest file (maxn) under cfg. */
static int cfg_sizes(const ams_cstate_cfg *cfg, size_t *npix, size_t *per, size_t *maxn) {
    size_t px4, all;
    if (!cfg || cfg->width < 1 || cfg->height < 1 ||
        !ams_size_mul_ok((size_t)cfg->width, (size_t)cfg->height, npix) ||
        !ams_size_mul_ok(*npix, 4, &px4) || !ams_size_add_ok(px4, 8, per) ||
        !ams_size_mul_ok(cfg->hcap, *per, &all) ||
        !ams_size_add_ok(all, AMS_CSTATE_HEAD + AMS_HASH_LEN, &all) ||
        !ams_size_add_ok(all, *npix, maxn))
        return 0;
    return 1;
}

void ams_cstate_free(ams_cstate *cs) {
    if (!cs) return;
    ams_horizon_free(cs->h);
    free(cs->last_label);
    free(cs);
}

ams_cstate *ams_cstate_new(const ams_cstate_cfg *cfg, ams_err *err) {
    size_t npix, per, maxn;
    if (!cfg_sizes(cfg, &npix, &per, &maxn)) {
        ams_err_set(err, AMS_E_INVAL, "compute state: bad settings");
        return NULL;
    }
    ams_cstate *cs = calloc(1, sizeof *cs);
    if (!cs) {
        ams_err_set(err, AMS_E_NOMEM, "compute state");
        return NULL;
    }
    cs->h = ams_horizon_new(cfg->height, cfg->width, cfg->memory_len, cfg->hcap, err);
    cs->last_label = malloc(npix);
    if (!cs->h || !cs->last_label) {
        if (cs->h) ams_err_set(err, AMS_E_NOMEM, "compute state");
        ams_cstate_free(cs);
        return NULL;
    }
    ams_asr_init(&cs->asr);
    double first = cfg->first_train >= 0 ? cfg->first_train : cfg->train_period;
    ams_schedule_init(&cs->sched, cfg->train_period, first, cfg->atr);
    return cs;
}

/* ---- save ---- */

typedef struct wfile {
    int fd, ok;
    EVP_MD_CTX *md;
} wfile;

static void wput(wfile *w, const void *p, size_t n) {
    if (!w->ok) return;
    if (w->md && EVP_DigestUpdate(w->md, p, n) != 1) w->ok = 0;
    const uint8_t *b = p;
    while (w->ok && n) {
        ssize_t r = write(w->fd, b, n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            w->ok = 0;
            break;
        }
        b += r;
        n -= (size_t)r;
    }
}

ams_status ams_cstate_save(const ams_cstate_cfg *cfg, const ams_cstate *cs, const char *path,
                           ams_err *err) {
    size_t npix, per, maxn;
    AMS_FAIL_IF(!cfg_sizes(cfg, &npix, &per, &maxn), err, AMS_E_INVAL,
                "compute state: bad settings");
    char tmp[4200];
    AMS_FAIL_IF(snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp, err, AMS_E_INVAL,
                "state path too long");
    wfile w = {.fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600), .ok = 1};
    AMS_FAIL_IF(w.fd < 0, err, AMS_E_IO, "%s: %s", tmp, strerror(errno));
    w.md = EVP_MD_CTX_new();
    if (!w.md || EVP_DigestInit_ex(w.md, EVP_sha256(), NULL) != 1) w.ok = 0;
    size_t count = ams_horizon_count(cs->h);
    uint8_t h[AMS_CSTATE_HEAD] = {0};
    memcpy(h, "AMSC", 4);
    ams_wire_put16(h + 4, 1);
    ams_wire_put32(h + 8, (uint32_t)cfg->width);
    ams_wire_put32(h + 12, (uint32_t)cfg->height);
    ams_wire_putf64(h + 16, cs->toff);
    ams_wire_putf64(h + 24, cs->clock);
    ams_wire_put32(h + 32, (uint32_t)cs->have_clock);
    ams_wire_put32(h + 36, (uint32_t)cs->have_last);
    ams_wire_putf64(h + 40, cs->asr.rate);
    ams_wire_putf64(h + 48, cs->sched.next);
    ams_wire_putf64(h + 56, cs->sched.atr.period);
    for (int i = 0; i < AMS_ATR_HISTORY; i++) ams_wire_putf64(h + 64 + 8 * i, cs->sched.atr.history[i]);
    ams_wire_put32(h + 104, (uint32_t)cs->sched.atr.n);
    ams_wire_put32(h + 108, (uint32_t)cs->sched.atr.head);
    ams_wire_put32(h + 112, (uint32_t)cs->sched.atr.hibernating);
    ams_wire_put64(h + 120, cs->labelled);
    ams_wire_put64(h + 128, cs->phases);
    ams_wire_put32(h + 136, (uint32_t)count);
    ams_wire_putf64(h + 144, cs->covered);
    wput(&w, h, sizeof h);
    if (cs->have_last) wput(&w, cs->last_label, npix);
    for (size_t i = 0; i < count; i++) {
        uint8_t t[8];
        ams_wire_putf64(t, ams_horizon_time(cs->h, i));
        wput(&w, t, 8);
        wput(&w, ams_horizon_frame(cs->h, i), npix * 3);
        wput(&w, ams_horizon_label(cs->h, i), npix);
    }
    uint8_t digest[EVP_MAX_MD_SIZE];
    unsigned dlen = 0;
    if (w.ok && (EVP_DigestFinal_ex(w.md, digest, &dlen) != 1 || dlen != AMS_HASH_LEN)) w.ok = 0;
    EVP_MD_CTX_free(w.md);
    w.md = NULL;
    wput(&w, digest, AMS_HASH_LEN);
    int e = errno;
    if (w.ok && fsync(w.fd) != 0) w.ok = 0, e = errno;
    if (close(w.fd) != 0 && w.ok) w.ok = 0, e = errno;
    if (!w.ok || rename(tmp, path) != 0) {
        if (w.ok) e = errno;
        unlink(tmp);
        AMS_FAIL(err, AMS_E_IO, "%s: %s", path, strerror(e));
    }
    return AMS_OK;
}

/* ---- load ---- */

ams_status ams_cstate_parse(const ams_cstate_cfg *cfg, const uint8_t *buf, size_t n,
                            const char *name, ams_cstate **out, ams_err *err) {
    *out = NULL;
    size_t npix, per, maxn;
    AMS_FAIL_IF(!cfg_sizes(cfg, &npix, &per, &maxn), err, AMS_E_INVAL,
                "compute state: bad settings");
    if (!name) name = "compute state";
    AMS_FAIL_IF(n < AMS_CSTATE_HEAD + AMS_HASH_LEN || n > maxn, err, AMS_E_FORMAT,
                "%s: size does not fit this server's settings", name);
    uint8_t d[AMS_HASH_LEN];
    AMS_TRY(ams_sha256(buf, n - AMS_HASH_LEN, d, err));
    uint32_t count = ams_wire_get32(buf + 136), have_last = ams_wire_get32(buf + 36);
    AMS_FAIL_IF(memcmp(buf, "AMSC", 4) || ams_wire_get16(buf + 4) != 1 ||
                    memcmp(d, buf + n - AMS_HASH_LEN, AMS_HASH_LEN),
                err, AMS_E_FORMAT, "%s: not a version 1 compute state or corrupt", name);
    AMS_FAIL_IF(ams_wire_get32(buf + 8) != (uint32_t)cfg->width ||
                    ams_wire_get32(buf + 12) != (uint32_t)cfg->height || have_last > 1 ||
                    count > cfg->hcap ||
                    n != AMS_CSTATE_HEAD + have_last * npix + count * per + AMS_HASH_LEN,
                err, AMS_E_FORMAT, "%s: made with other settings (size, horizon)", name);
    ams_cstate *cs = ams_cstate_new(cfg, err);
    if (!cs) return err && err->code ? err->code : AMS_E_NOMEM;
    ams_status st = AMS_OK;
    cs->toff = ams_wire_getf64(buf + 16);
    cs->clock = ams_wire_getf64(buf + 24);
    cs->covered = ams_wire_getf64(buf + 144);
    cs->have_clock = ams_wire_get32(buf + 32) != 0;
    cs->have_last = (int)have_last;
    double rate = ams_wire_getf64(buf + 40), next = ams_wire_getf64(buf + 48);
    double period = ams_wire_getf64(buf + 56);
    uint32_t hn = ams_wire_get32(buf + 104), hh = ams_wire_get32(buf + 108);
    int ok = isfinite(cs->toff) && isfinite(cs->clock) && fabs(cs->clock) < 1e12 &&
             isfinite(cs->covered) &&
             rate >= cs->asr.rate_min && rate <= cs->asr.rate_max && isfinite(next) &&
             period > 0 && period <= cs->sched.atr.max_factor * cs->sched.atr.base_period + 1e-9 &&
             hn <= AMS_ATR_HISTORY && hh < AMS_ATR_HISTORY;
    for (int i = 0; i < AMS_ATR_HISTORY && ok; i++) {
        cs->sched.atr.history[i] = ams_wire_getf64(buf + 64 + 8 * i);
        ok = isfinite(cs->sched.atr.history[i]);
    }
    if (!ok) {
        st = ams_err_set(err, AMS_E_FORMAT, "%s: values out of range", name);
        goto done;
    }
    cs->asr.rate = rate;
    cs->sched.next = next;
    cs->sched.atr.period = period;
    cs->sched.atr.n = (int)hn;
    cs->sched.atr.head = (int)hh;
    cs->sched.atr.hibernating = ams_wire_get32(buf + 112) != 0;
    cs->labelled = ams_wire_get64(buf + 120);
    cs->phases = ams_wire_get64(buf + 128);
    const uint8_t *p = buf + AMS_CSTATE_HEAD;
    if (have_last) memcpy(cs->last_label, p, npix), p += npix;
    for (uint32_t i = 0; i < count && st == AMS_OK; i++, p += per)
        st = ams_horizon_add(cs->h, ams_wire_getf64(p), p + 8, p + 8 + npix * 3, err);
done:
    if (st != AMS_OK) {
        ams_cstate_free(cs);
        return st;
    }
    *out = cs;
    return AMS_OK;
}

ams_status ams_cstate_load(const ams_cstate_cfg *cfg, const char *path, ams_cstate **out,
                           ams_err *err) {
    *out = NULL;
    size_t npix, per, maxn;
    AMS_FAIL_IF(!cfg_sizes(cfg, &npix, &per, &maxn), err, AMS_E_INVAL,
                "compute state: bad settings");
    FILE *f = fopen(path, "rb");
    if (!f)
        AMS_FAIL(err, errno == ENOENT ? AMS_E_NOTFOUND : AMS_E_IO, "%s: %s", path,
                 strerror(errno));
    struct stat sb;
    uint8_t *buf = NULL;
    ams_status st = AMS_OK;
    /* the size first: never read (or allocate) more than these settings allow */
    if (fstat(fileno(f), &sb) != 0 || sb.st_size < AMS_CSTATE_HEAD + AMS_HASH_LEN ||
        (uint64_t)sb.st_size > maxn) {
        st = ams_err_set(err, AMS_E_FORMAT, "%s: size does not fit this server's settings", path);
        goto done;
    }
    size_t n = (size_t)sb.st_size;
    buf = malloc(n);
    if (!buf || fread(buf, 1, n, f) != n) {
        st = ams_err_set(err, buf ? AMS_E_IO : AMS_E_NOMEM, "%s: cannot read", path);
        goto done;
    }
    st = ams_cstate_parse(cfg, buf, n, path, out, err);
done:
    free(buf);
    fclose(f);
    return st;
}
