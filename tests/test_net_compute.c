/* test_net_compute.c - the server's real compute (server_trainer.h) without the network, on
 * the real pair (RVM teacher, selfie student) and H.264 uploads of vtest.avi frames: a job
 * labels and evaluates its frames and fills the horizon; no phase before the first train time,
 * then a phase whose target differs from the client's weights in about the coord fraction of
 * the elements; ASR moves the rate; the session clock continues when the client's time goes
 * back; the state file round-trips (horizon, clock, ASR/ATR) and a corrupt or mismatched one
 * is refused; an upload that is not H.264 fails the job without touching the state.
 * Skips (passes with SKIP) when the models or the video are not in the cache. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libavutil/log.h>

#include "ams/server_trainer.h"
#include "ams/uplink.h"
#include "ams/video.h"
#include "check.h"

#define W 192
#define H 144

static char g_student[4096], g_teacher[4096], g_video[4096];
static ams_compute g_comp;
static const ams_params *g_init;

static int have_assets(void) {
    const char *root = getenv("AMS_CACHE"), *home = getenv("HOME");
    char base[3000];
    if (root && root[0]) snprintf(base, sizeof base, "%s", root);
    else snprintf(base, sizeof base, "%s/.cache/ams", home ? home : "/tmp");
    snprintf(g_student, sizeof g_student, "%s/models/selfie.json", base);
    snprintf(g_teacher, sizeof g_teacher, "%s/models/rvm.json", base);
    snprintf(g_video, sizeof g_video, "%s/videos/vtest.avi", base);
    return access(g_student, R_OK) == 0 && access(g_teacher, R_OK) == 0 &&
           access(g_video, R_OK) == 0;
}

static const ams_tfjs_feed FEEDS[] = {{"r1i", 0}, {"r2i", 0}, {"r3i", 0}, {"r4i", 0},
                                      {"downsample_ratio", 0.5f}};

static void config(ams_server_trainer_config *c) {
    ams_server_trainer_config_default(c);
    c->student = g_student;
    c->teacher = g_teacher;
    c->teacher_output = "pha";
    c->teacher_feeds = FEEDS;
    c->n_teacher_feeds = 5;
    c->width = W;
    c->height = H;
    c->teacher_width = 288;
    c->teacher_height = 216;
    c->train.iters = 2;
    c->train.batch = 2;
    c->train_period = 4;
    c->memory_len = 30;
}

/* An upload of n frames of vtest.avi at 1 fps from t0 (H.264, as the edge sends it). */
static int make_upload(double t0, int n, ams_net_sample *out) {
    ams_video_reader *r = NULL;
    ams_video_opts vo = {.width = W, .height = H, .threads = 1};
    ams_err e = {0};
    CHECKF(ams_video_open(&r, g_video, &vo, &e) == AMS_OK, "%s", e.msg);
    uint8_t *rgb = malloc((size_t)n * W * H * 3);
    const uint8_t *frames[16];
    CHECK(rgb && n <= 16);
    for (int k = 0; k < n; k++) {
        ams_video_frame f;
        CHECKF(ams_video_read_at(r, t0 + k, &f, &e) == AMS_OK && f.rgb, "%s", e.msg);
        memcpy(rgb + (size_t)k * W * H * 3, f.rgb, (size_t)W * H * 3);
        frames[k] = rgb + (size_t)k * W * H * 3;
    }
    ams_video_free(r);
    ams_uplink_opts o = {.width = W, .height = H, .fps = 1, .kbps = 150, .passes = 1,
                         .threads = 1, .preset = "veryfast"};
    ams_uplink_buf *up = NULL;
    CHECKF(ams_uplink_encode(&o, frames, n, &up, &e) == AMS_OK, "%s", e.msg);
    free(rgb);
    uint8_t *copy = malloc(up->size);
    CHECK(copy);
    memcpy(copy, up->data, up->size);
    *out = (ams_net_sample){.head = {.frames = (uint32_t)n, .width = W, .height = H, .fps = 1,
                                     .t_first = t0, .t_last = t0 + n - 1},
                            .h264 = copy, .len = up->size};
    ams_uplink_buf_free(up);
    return 0;
}

typedef struct jobres {
    int changed;
    ams_status st;
    ams_compute_job job;
} jobres;

static float *g_cur, *g_tgt;

static void run_job(void **state, ams_net_sample *s, int n, jobres *r) {
    size_t total = g_init->total;
    memcpy(g_tgt, g_cur, total * sizeof(float));
    r->job = (ams_compute_job){.client_id = "t", .layout = g_init, .current = g_cur,
                               .target = g_tgt, .samples = s, .n_samples = n, .version = 0,
                               .sample_rate = 1.0, .state = state, .miou = NAN,
                               .miou_pretrained = NAN};
    ams_err e = {0};
    r->changed = 0;
    r->st = g_comp.run(g_comp.ctx, &r->job, &r->changed, &e);
    if (r->st != AMS_OK) fprintf(stderr, "job: %s\n", e.msg);
}

static int test_jobs_and_state(void) {
    ams_server_trainer_config c;
    config(&c);
    ams_err e = {0};
    CHECKF(ams_server_trainer_new(&c, &g_comp, &e) == AMS_OK, "%s", e.msg);
    g_init = ams_server_trainer_pretrained(&g_comp);
    CHECK(g_init && g_init->total > 100000);
    size_t total = g_init->total;
    g_cur = malloc(total * sizeof(float));
    g_tgt = malloc(total * sizeof(float));
    CHECK(g_cur && g_tgt);
    memcpy(g_cur, g_init->values, total * sizeof(float));

    void *state = NULL;
    ams_net_sample a, b, back;
    CHECK(make_upload(0, 3, &a) == 0);  /* t 0..2: before the first train time (4 s) */
    CHECK(make_upload(3, 3, &b) == 0);  /* t 3..5: a phase is due */
    CHECK(make_upload(0, 2, &back) == 0); /* the client's time goes back (a restarted edge) */
    jobres r;
    run_job(&state, &a, 1, &r);
    CHECK(r.st == AMS_OK && state);
    CHECK(r.changed == 0);
    CHECK(r.job.labelled == 3 && r.job.horizon == 3);
    CHECKF(r.job.miou > 0 && r.job.miou <= 1, "miou %g", r.job.miou);
    CHECKF(fabs(r.job.miou - r.job.miou_pretrained) < 1e-9, "the client holds the pretrained "
           "weights: %g vs %g", r.job.miou, r.job.miou_pretrained);
    CHECK(r.job.sample_rate >= 0.1 && r.job.sample_rate <= 1.0);

    run_job(&state, &b, 1, &r);
    CHECK(r.st == AMS_OK && r.changed == 1);
    CHECK(r.job.horizon == 6);
    size_t diff = 0;
    for (size_t i = 0; i < total; i++) diff += g_tgt[i] != g_cur[i];
    /* coord 5 % of the trainable elements (BatchNorm statistics never move) */
    CHECKF(diff > total / 100 && diff <= total / 20 + 1, "%zu of %zu changed", diff, total);
    ams_server_trainer_stats ts;
    ams_server_trainer_state_stats(state, &ts);
    CHECK(ts.phases == 1 && ts.labelled == 6 && fabs(ts.clock - 5) < 1e-9);

    /* the client moves to the trained weights; its time restarts at 0: the clock goes on */
    memcpy(g_cur, g_tgt, total * sizeof(float));
    run_job(&state, &back, 1, &r);
    CHECK(r.st == AMS_OK);
    ams_server_trainer_state_stats(state, &ts);
    CHECKF(ts.clock > 5 && ts.horizon == 8, "clock %g horizon %zu", ts.clock, ts.horizon);
    CHECKF(r.job.miou == r.job.miou && r.job.miou != r.job.miou_pretrained,
           "the trained model is evaluated: %g vs pretrained %g", r.job.miou,
           r.job.miou_pretrained);

    /* a bad upload: the job fails, the state keeps what it had */
    ams_net_sample junk = a;
    uint8_t bytes[64] = {0, 0, 0, 1, 0x67};
    junk.h264 = bytes;
    junk.len = sizeof bytes;
    run_job(&state, &junk, 1, &r);
    CHECK(r.st != AMS_OK && r.changed == 0);
    ams_server_trainer_stats ts2;
    ams_server_trainer_state_stats(state, &ts2);
    CHECK(ts2.horizon == ts.horizon && ts2.labelled == ts.labelled);

    /* persistence: save, load, the same figures */
    char dir[] = "/tmp/ams_net_compute.XXXXXX", path[300];
    CHECK(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/t.compute", dir);
    CHECKF(g_comp.state_save(g_comp.ctx, state, path, &e) == AMS_OK, "%s", e.msg);
    void *loaded = NULL;
    CHECKF(g_comp.state_load(g_comp.ctx, &loaded, path, &e) == AMS_OK, "%s", e.msg);
    ams_server_trainer_stats tl;
    ams_server_trainer_state_stats(loaded, &tl);
    CHECK(tl.horizon == ts.horizon && tl.labelled == ts.labelled && tl.phases == ts.phases &&
          tl.clock == ts.clock && tl.sample_rate == ts.sample_rate &&
          tl.train_period == ts.train_period);
    g_comp.state_free(g_comp.ctx, loaded);
    loaded = NULL;
    /* missing, corrupt */
    char missing[320];
    snprintf(missing, sizeof missing, "%s/none.compute", dir);
    CHECK(g_comp.state_load(g_comp.ctx, &loaded, missing, &e) == AMS_E_NOTFOUND && !loaded);
    FILE *f = fopen(path, "r+b");
    CHECK(f);
    fseek(f, 200, SEEK_SET);
    int ch = fgetc(f);
    fseek(f, 200, SEEK_SET);
    fputc(ch ^ 1, f);
    fclose(f);
    CHECK(g_comp.state_load(g_comp.ctx, &loaded, path, &e) == AMS_E_FORMAT && !loaded);
    /* another server's size */
    CHECK(g_comp.state_save(g_comp.ctx, state, path, &e) == AMS_OK);
    ams_compute other;
    ams_server_trainer_config c2;
    config(&c2);
    c2.width = 128;
    c2.height = 96;
    c2.teacher_width = 192;
    c2.teacher_height = 144;
    CHECKF(ams_server_trainer_new(&c2, &other, &e) == AMS_OK, "%s", e.msg);
    CHECK(other.state_load(other.ctx, &loaded, path, &e) == AMS_E_FORMAT && !loaded);
    ams_server_trainer_free(&other);
    unlink(path);
    rmdir(dir);

    g_comp.state_free(g_comp.ctx, state);
    free((void *)a.h264);
    free((void *)b.h264);
    free((void *)back.h264);
    free(g_cur);
    free(g_tgt);
    ams_server_trainer_free(&g_comp);
    CHECK(!g_comp.ctx);
    return 0;
}

static int test_bad_config(void) {
    ams_server_trainer_config c;
    config(&c);
    c.teacher_width = 300; /* another aspect ratio */
    ams_compute comp;
    ams_err e = {0};
    CHECK(ams_server_trainer_new(&c, &comp, &e) == AMS_E_INVAL && !comp.run);
    config(&c);
    c.teacher = "/nonexistent/rvm.json";
    CHECK(ams_server_trainer_new(&c, &comp, &e) != AMS_OK && !comp.run);
    config(&c);
    c.teacher = g_student; /* a student as teacher is fine (one channel) */
    c.student = g_teacher; /* a teacher as student: its output is not Sigmoid(logit) */
    CHECK(ams_server_trainer_new(&c, &comp, &e) != AMS_OK && !comp.run);
    ams_server_trainer_free(&comp); /* zeroed: no-op */
    return 0;
}

int main(int argc, char **argv) {
    av_log_set_level(AV_LOG_QUIET);
    if (!have_assets()) {
        printf("SKIP: needs selfie, rvm (tools/fetch-models) and vtest.avi (tools/fetch-videos)\n");
        return 0;
    }
    static const check_case cases[] = {{"jobs_and_state", test_jobs_and_state},
                                       {"bad_config", test_bad_config}};
    return check_run(cases, sizeof cases / sizeof cases[0], argc, argv);
}
