/* test_net_compute_state.c - the compute state file ("AMSC" v1, src/net/compute_state.h)
 * without models: save + load round-trips every persisted field; the parse from memory gives
 * the same state; each kind of bad file (short, truncated, bad magic, bad digest, other
 * settings, values out of range, entries going back in time) is refused with AMS_E_FORMAT or
 * AMS_E_INVAL and no state; the valid seeds of fuzz/corpus/compute_state/ parse under the fuzz
 * target's settings.
 * With AMS_CSTATE_CORPUS_OUT=<dir> set, it also (re)writes that seed corpus there:
 *     AMS_CSTATE_CORPUS_OUT=fuzz/corpus/compute_state build/tests/test_net_compute_state */
#include <dirent.h>
#include <stdint.h>
#include <unistd.h>

#include "ams/weights_hash.h"
#include "check.h"
#include "net/compute_state.h"
#include "net/wire.h"

/* The fuzz target's settings (fuzz/fuzz_compute_state.c). */
static const ams_cstate_cfg g_cfg = {.width = 4, .height = 4, .memory_len = 3, .hcap = 6,
                                     .train_period = 10, .first_train = -1, .atr = 1};

/* A state with n entries (t = 0, 0.5, ...) and, with last, a last label. */
static ams_cstate *make_state(int n, int last) {
    ams_err e = {0};
    ams_cstate *cs = ams_cstate_new(&g_cfg, &e);
    if (!cs) return NULL;
    cs->toff = -1.25;
    cs->clock = 7.5;
    cs->covered = 8;
    cs->have_clock = 1;
    cs->asr.rate = 0.5;
    cs->sched.next = 12;
    cs->sched.atr.period = 14;
    cs->sched.atr.n = 3;
    cs->sched.atr.head = 3;
    for (int i = 0; i < 3; i++) cs->sched.atr.history[i] = 0.25 * (i + 1);
    cs->sched.atr.hibernating = 1;
    cs->labelled = 42;
    cs->phases = 3;
    cs->have_last = last;
    for (int i = 0; i < 16; i++) cs->last_label[i] = (uint8_t)(i & 1);
    for (int k = 0; k < n; k++) {
        uint8_t rgb[48], lab[16];
        for (int i = 0; i < 48; i++) rgb[i] = (uint8_t)(k * 31 + i);
        for (int i = 0; i < 16; i++) lab[i] = (uint8_t)((k + i) % 3 == 0);
        if (ams_horizon_add(cs->h, 0.5 * k, rgb, lab, &e) != AMS_OK) {
            ams_cstate_free(cs);
            return NULL;
        }
    }
    return cs;
}

static uint8_t *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(len > 0 ? (size_t)len : 1);
    if (b && len > 0 && fread(b, 1, (size_t)len, f) != (size_t)len) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *n = (size_t)(len > 0 ? len : 0);
    return b;
}

static int write_all(const char *dir, const char *name, const uint8_t *b, size_t n) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) return 1;
    int bad = fwrite(b, 1, n, f) != n;
    return fclose(f) != 0 || bad;
}

static void reseal(uint8_t *b, size_t n) {
    ams_sha256(b, n - AMS_HASH_LEN, b + n - AMS_HASH_LEN, NULL);
}

/* Saves make_state(n, last) into a temporary file and returns its bytes. */
static uint8_t *saved_bytes(int n, int last, size_t *len) {
    char dir[] = "/tmp/ams_cstate.XXXXXX", path[64];
    if (!mkdtemp(dir)) return NULL;
    snprintf(path, sizeof path, "%s/s.compute", dir);
    ams_cstate *cs = make_state(n, last);
    ams_err e = {0};
    uint8_t *b = NULL;
    if (cs && ams_cstate_save(&g_cfg, cs, path, &e) == AMS_OK) b = read_all(path, len);
    ams_cstate_free(cs);
    unlink(path);
    rmdir(dir);
    return b;
}

static int same_state(const ams_cstate *a, const ams_cstate *b) {
    CHECK(a->toff == b->toff && a->clock == b->clock && a->covered == b->covered);
    CHECK(a->have_clock == b->have_clock && a->have_last == b->have_last);
    CHECK(a->asr.rate == b->asr.rate && a->sched.next == b->sched.next);
    CHECK(a->sched.atr.period == b->sched.atr.period && a->sched.atr.n == b->sched.atr.n &&
          a->sched.atr.head == b->sched.atr.head &&
          a->sched.atr.hibernating == b->sched.atr.hibernating);
    CHECK(!memcmp(a->sched.atr.history, b->sched.atr.history, sizeof a->sched.atr.history));
    CHECK(a->labelled == b->labelled && a->phases == b->phases);
    if (a->have_last) CHECK(!memcmp(a->last_label, b->last_label, 16));
    size_t n = ams_horizon_count(a->h);
    CHECK(n == ams_horizon_count(b->h));
    for (size_t i = 0; i < n; i++) {
        CHECK(ams_horizon_time(a->h, i) == ams_horizon_time(b->h, i));
        CHECK(!memcmp(ams_horizon_frame(a->h, i), ams_horizon_frame(b->h, i), 48));
        CHECK(!memcmp(ams_horizon_label(a->h, i), ams_horizon_label(b->h, i), 16));
    }
    return 0;
}

static int test_roundtrip(void) {
    char dir[] = "/tmp/ams_cstate.XXXXXX", path[64];
    CHECK(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/s.compute", dir);
    ams_err e = {0};
    ams_cstate *cs = make_state(4, 1), *back = NULL, *mem = NULL;
    CHECK(cs);
    CHECKF(ams_cstate_save(&g_cfg, cs, path, &e) == AMS_OK, "%s", e.msg);
    CHECKF(ams_cstate_load(&g_cfg, path, &back, &e) == AMS_OK && back, "%s", e.msg);
    CHECK(same_state(cs, back) == 0);
    size_t n = 0;
    uint8_t *b = read_all(path, &n);
    CHECK(b && n == AMS_CSTATE_HEAD + 16 + 4 * 72 + AMS_HASH_LEN);
    CHECKF(ams_cstate_parse(&g_cfg, b, n, "mem", &mem, &e) == AMS_OK && mem, "%s", e.msg);
    CHECK(same_state(cs, mem) == 0);
    /* missing file */
    char missing[80];
    snprintf(missing, sizeof missing, "%s/none.compute", dir);
    ams_cstate *none = (ams_cstate *)1;
    CHECK(ams_cstate_load(&g_cfg, missing, &none, &e) == AMS_E_NOTFOUND && !none);
    free(b);
    ams_cstate_free(cs);
    ams_cstate_free(back);
    ams_cstate_free(mem);
    unlink(path);
    rmdir(dir);
    return 0;
}

/* Each corruption of a valid file: the expected code and message part. */
static int refused(const uint8_t *b, size_t n, const ams_cstate_cfg *cfg, ams_status want,
                   const char *msg) {
    ams_err e = {0};
    ams_cstate *cs = (ams_cstate *)1;
    ams_status st = ams_cstate_parse(cfg, b, n, "x.compute", &cs, &e);
    CHECKF(st == want && !cs, "got %d (%s), want %d", (int)st, e.msg, (int)want);
    CHECKF(strstr(e.msg, msg) != NULL, "'%s' lacks '%s'", e.msg, msg);
    return 0;
}

static int test_refused(void) {
    size_t n = 0;
    uint8_t *good = saved_bytes(3, 1, &n);
    CHECK(good);
    uint8_t *b = malloc(n + 72);
    CHECK(b);
    const char *size = "size does not fit", *corrupt = "not a version 1 compute state",
               *other = "made with other settings", *range = "values out of range";
    CHECK(refused(good, 100, &g_cfg, AMS_E_FORMAT, size) == 0);
    CHECK(refused(good, 0, &g_cfg, AMS_E_FORMAT, size) == 0);
    ams_cstate_cfg small = g_cfg;
    small.hcap = 1; /* the whole file is over this server's bound */
    CHECK(refused(good, n, &small, AMS_E_FORMAT, size) == 0);
    memcpy(b, good, n);
    b[200] ^= 1; /* a frame byte: the digest no longer matches */
    CHECK(refused(b, n, &g_cfg, AMS_E_FORMAT, corrupt) == 0);
    memcpy(b, good, n - 72); /* truncated by one entry, resealed */
    reseal(b, n - 72);
    CHECK(refused(b, n - 72, &g_cfg, AMS_E_FORMAT, other) == 0);
    memcpy(b, good, n);
    b[0] = 'X';
    reseal(b, n);
    CHECK(refused(b, n, &g_cfg, AMS_E_FORMAT, corrupt) == 0);
    memcpy(b, good, n);
    ams_wire_put16(b + 4, 2);
    reseal(b, n);
    CHECK(refused(b, n, &g_cfg, AMS_E_FORMAT, corrupt) == 0);
    ams_cstate_cfg wide = g_cfg;
    wide.width = 2;
    wide.height = 8;
    CHECK(refused(good, n, &wide, AMS_E_FORMAT, other) == 0);
    memcpy(b, good, n);
    ams_wire_put32(b + 36, 2); /* have_last */
    reseal(b, n);
    CHECK(refused(b, n, &g_cfg, AMS_E_FORMAT, other) == 0);
    memcpy(b, good, n);
    ams_wire_put32(b + 136, 7); /* entries > hcap */
    reseal(b, n);
    CHECK(refused(b, n, &g_cfg, AMS_E_FORMAT, other) == 0);
    static const struct {
        int off;
        double v;
    } bad_f64[] = {{16, NAN}, {24, INFINITY}, {24, 2e12}, {144, NAN}, {40, 0.01},
                   {40, 1.5}, {48, NAN},      {56, 0},    {56, 61},  {64 + 8 * 2, INFINITY}};
    for (size_t i = 0; i < sizeof bad_f64 / sizeof bad_f64[0]; i++) {
        memcpy(b, good, n);
        ams_wire_putf64(b + bad_f64[i].off, bad_f64[i].v);
        reseal(b, n);
        CHECKF(refused(b, n, &g_cfg, AMS_E_FORMAT, range) == 0, "f64 at %d", bad_f64[i].off);
    }
    static const struct {
        int off;
        uint32_t v;
    } bad_u32[] = {{104, 6}, {108, 5}};
    for (size_t i = 0; i < 2; i++) {
        memcpy(b, good, n);
        ams_wire_put32(b + bad_u32[i].off, bad_u32[i].v);
        reseal(b, n);
        CHECK(refused(b, n, &g_cfg, AMS_E_FORMAT, range) == 0);
    }
    memcpy(b, good, n); /* the last entry's time before the first's */
    ams_wire_putf64(b + AMS_CSTATE_HEAD + 16 + 2 * 72, -1);
    reseal(b, n);
    CHECK(refused(b, n, &g_cfg, AMS_E_INVAL, "") == 0);
    free(b);
    free(good);
    return 0;
}

/* The fuzz seeds: the valid ones parse (the harness reseals every input, and so do these). */
static int test_corpus(void) {
    const char *out = getenv("AMS_CSTATE_CORPUS_OUT");
    size_t n0, n3, n6;
    uint8_t *s0 = saved_bytes(0, 0, &n0), *s3 = saved_bytes(3, 1, &n3), *s6 = saved_bytes(6, 1, &n6);
    CHECK(s0 && s3 && s6);
    if (out) {
        uint8_t b[1024];
        CHECK(n6 <= sizeof b);
        CHECK(write_all(out, "valid_empty", s0, n0) == 0);
        CHECK(write_all(out, "valid_3", s3, n3) == 0);
        CHECK(write_all(out, "valid_full", s6, n6) == 0);
        CHECK(write_all(out, "short", s3, 100) == 0);
        memcpy(b, s3, n3 - 40); /* cut mid-entry */
        reseal(b, n3 - 40);
        CHECK(write_all(out, "truncated", b, n3 - 40) == 0);
        memcpy(b, s3, n3);
        b[6] = 0xff; /* keep the digest (the harness's switch), now wrong */
        CHECK(write_all(out, "bad_digest", b, n3) == 0);
        memcpy(b, s3, n3);
        b[0] = 'X';
        CHECK(write_all(out, "bad_magic", b, n3) == 0);
        memcpy(b, s3, n3);
        ams_wire_putf64(b + 40, 7);
        reseal(b, n3);
        CHECK(write_all(out, "bad_rate", b, n3) == 0);
        memcpy(b, s3, n3);
        ams_wire_putf64(b + AMS_CSTATE_HEAD + 16 + 72, -3);
        reseal(b, n3);
        CHECK(write_all(out, "time_back", b, n3) == 0);
        memcpy(b, s3, n3);
        ams_wire_put32(b + 8, 8);
        reseal(b, n3);
        CHECK(write_all(out, "other_width", b, n3) == 0);
    }
    free(s0);
    free(s3);
    free(s6);
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/fuzz/corpus/compute_state", AMS_SOURCE_DIR);
    DIR *d = opendir(dir);
    CHECK(d);
    int valid = 0;
    for (struct dirent *de; (de = readdir(d));) {
        if (strncmp(de->d_name, "valid_", 6)) continue;
        char path[2100];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        size_t n = 0;
        uint8_t *b = read_all(path, &n);
        CHECK(b && n >= AMS_CSTATE_HEAD + AMS_HASH_LEN);
        ams_err e = {0};
        ams_cstate *cs = NULL;
        CHECKF(ams_cstate_parse(&g_cfg, b, n, path, &cs, &e) == AMS_OK, "%s", e.msg);
        ams_cstate_free(cs);
        free(b);
        valid++;
    }
    closedir(d);
    CHECK(valid >= 3);
    return 0;
}

int main(int argc, char **argv) {
    static const check_case cases[] = {
        {"roundtrip", test_roundtrip}, {"refused", test_refused}, {"corpus", test_corpus}};
    return check_run(cases, sizeof cases / sizeof cases[0], argc, argv);
}
