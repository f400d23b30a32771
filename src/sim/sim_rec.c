/* sim_rec.c - the emulator's recording of evaluated frames: the student's prediction and the
 * teacher's label of each, run-length coded in memory (a 256x192 mask is ~0.5 KB, not 48 KB),
 * for the overlay video and for tests. */
#include <stdlib.h>
#include <string.h>

#include "sim_internal.h"

struct ams_sim_rec {
    int w, h, n, cap;
    double *t;         /* n frame times */
    size_t *off;       /* 2n + 1 offsets into data: pred i at off[2i], label i at off[2i+1] */
    uint8_t *data;     /* runs: value byte, then the run length as LEB128 */
    size_t len, dcap;
    int max_id;        /* the largest class id seen (255 = ignore not counted) */
};

ams_sim_rec *ams_sim_rec_new(int w, int h) {
    if (w < 1 || h < 1) return NULL;
    ams_sim_rec *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->w = w;
    r->h = h;
    r->off = calloc(1, sizeof *r->off);
    if (!r->off) {
        free(r);
        return NULL;
    }
    return r;
}

void ams_sim_rec_free(ams_sim_rec *r) {
    if (!r) return;
    free(r->t);
    free(r->off);
    free(r->data);
    free(r);
}

int ams_sim_rec_count(const ams_sim_rec *r) { return r ? r->n : 0; }

void ams_sim_rec_size(const ams_sim_rec *r, int *w, int *h) {
    *w = r ? r->w : 0;
    *h = r ? r->h : 0;
}

int ams_sim_rec_max_id(const ams_sim_rec *r) { return r ? r->max_id : 0; }

double ams_sim_rec_time(const ams_sim_rec *r, int i) {
    return r && i >= 0 && i < r->n ? r->t[i] : 0.0;
}

/* Room for more bytes in data. */
static int reserve(ams_sim_rec *r, size_t more) {
    if (r->len + more <= r->dcap) return 1;
    size_t cap = r->dcap ? r->dcap * 2 : 4096;
    while (cap < r->len + more) cap *= 2;
    uint8_t *d = realloc(r->data, cap);
    if (!d) return 0;
    r->data = d;
    r->dcap = cap;
    return 1;
}

static int put_plane(ams_sim_rec *r, const uint8_t *p, size_t n) {
    size_t i = 0;
    while (i < n) {
        size_t j = i + 1;
        while (j < n && p[j] == p[i]) j++;
        if (p[i] != 255 && p[i] > r->max_id) r->max_id = p[i];
        if (!reserve(r, 1 + 10)) return 0;
        r->data[r->len++] = p[i];
        size_t run = j - i;
        do {
            uint8_t b = (uint8_t)(run & 0x7f);
            run >>= 7;
            r->data[r->len++] = (uint8_t)(b | (run ? 0x80 : 0));
        } while (run);
        i = j;
    }
    return 1;
}

ams_status ams_sim_rec_add(ams_sim_rec *r, double t, const uint8_t *pred, const uint8_t *label,
                           ams_err *err) {
    if (r->n == r->cap) {
        int cap = r->cap ? r->cap * 2 : 64;
        double *nt = realloc(r->t, (size_t)cap * sizeof *nt);
        if (nt) r->t = nt;
        size_t *no = realloc(r->off, (2 * (size_t)cap + 1) * sizeof *no);
        if (no) r->off = no;
        AMS_FAIL_IF(!nt || !no, err, AMS_E_NOMEM, "sim: out of memory for the recording");
        r->cap = cap;
    }
    size_t npix = (size_t)r->w * (size_t)r->h, len0 = r->len;
    int ok = put_plane(r, pred, npix);
    if (ok) {
        r->off[2 * r->n + 1] = r->len;
        ok = put_plane(r, label, npix);
    }
    if (!ok) {
        r->len = len0;
        AMS_FAIL(err, AMS_E_NOMEM, "sim: out of memory for the recording");
    }
    r->off[2 * r->n + 2] = r->len;
    r->t[r->n++] = t;
    return AMS_OK;
}

static void get_plane(const uint8_t *d, size_t a, size_t b, uint8_t *out, size_t n) {
    size_t o = 0;
    while (a < b && o < n) {
        uint8_t v = d[a++];
        size_t run = 0;
        int shift = 0;
        while (a < b) {
            uint8_t x = d[a++];
            run |= (size_t)(x & 0x7f) << shift;
            shift += 7;
            if (!(x & 0x80)) break;
        }
        if (run > n - o) run = n - o;
        memset(out + o, v, run);
        o += run;
    }
    if (o < n) memset(out + o, 0, n - o);
}

ams_status ams_sim_rec_get(const ams_sim_rec *r, int i, uint8_t *pred, uint8_t *label,
                           ams_err *err) {
    AMS_FAIL_IF(!r || i < 0 || i >= r->n, err, AMS_E_RANGE, "sim: no recorded frame %d", i);
    size_t npix = (size_t)r->w * (size_t)r->h;
    if (pred) get_plane(r->data, r->off[2 * i], r->off[2 * i + 1], pred, npix);
    if (label) get_plane(r->data, r->off[2 * i + 1], r->off[2 * i + 2], label, npix);
    return AMS_OK;
}
