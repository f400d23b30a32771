/* test_sim_clock.c - the emulator on a synthetic clip (a red "person" square moving over grey
 * noise, labels = the square) with a tiny student (1x1 conv logistic regression): updates
 * arrive at start + compute + bytes/downlink and not before, and the edge predicts with the old
 * weights until then (a late update is applied late); pretrained never changes the weights,
 * measured Kbps stay within the budgets, runs are deterministic, and AMS learns; jit trains
 * until the student matches the frame or its step budget runs out; ASR and ATR inside the
 * emulator follow hand-computed rates and training times on a static clip; the overlay video
 * and the report. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ams/sim.h"
#include "ams/video.h"
#include "ams/video_out.h"
#include "check.h"

#include <libavutil/log.h>

#define W 32
#define H 24
#define FPS 30 /* image sequences play at AMS_VIDEO_DEFAULT_IMAGE_FPS */
#define SECONDS 8

static char dir[4096];
static char labels_path[4200];

static ams_status tiny_train(void *ctx, ams_graph *g, int n, int h, int w, int *image,
                             int *labels, int *loss, ams_err *err) {
    (void)ctx;
    ams_params *p = ams_graph_params(g);
    *image = ams_graph_input(g, "image", 4, (int64_t[]){n, h, w, 3});
    int logit = ams_graph_conv2d(g, *image, ams_graph_param(g, ams_params_find(p, "w")),
                                 ams_graph_param(g, ams_params_find(p, "b")),
                                 &(ams_conv_opts){.padding = AMS_PAD_VALID});
    *labels = ams_graph_labels(g, "labels", n, h, w);
    *loss = ams_graph_bce_logits(g, logit, *labels);
    return ams_graph_error(g, err);
}

static ams_status tiny_infer(void *ctx, ams_graph *g, int h, int w, int *image, int *logits,
                             ams_err *err) {
    (void)ctx;
    ams_params *p = ams_graph_params(g);
    *image = ams_graph_input(g, "image", 4, (int64_t[]){1, h, w, 3});
    *logits = ams_graph_conv2d(g, *image, ams_graph_param(g, ams_params_find(p, "w")),
                               ams_graph_param(g, ams_params_find(p, "b")),
                               &(ams_conv_opts){.padding = AMS_PAD_VALID});
    return ams_graph_error(g, err);
}

static ams_params *tiny_params(void) {
    ams_err err = {0};
    ams_params *p = ams_params_new();
    ams_params_add(p, "w", 4, (int64_t[]){1, 1, 3, 1}, 1, &err);
    ams_params_add(p, "b", 1, (int64_t[]){1}, 1, &err);
    if (ams_params_alloc(p, &err) != AMS_OK) return NULL;
    p->values[3] = -1.0f; /* predicts background everywhere */
    return p;
}

/* The clip (PNG folder) and its labels, once. */
static int make_data(void) {
    if (dir[0]) return 0;
    av_log_set_level(AV_LOG_QUIET);
    snprintf(dir, sizeof dir, "%s/sim-test-XXXXXX", AMS_BINARY_DIR);
    CHECK(mkdtemp(dir) != NULL);
    char frames[4200];
    snprintf(frames, sizeof frames, "%s/frames", dir);
    CHECK(mkdir(frames, 0777) == 0);
    snprintf(labels_path, sizeof labels_path, "%s/clip.labels", dir);
    ams_err err = {0};
    ams_label_info info = {.width = W, .height = H, .classes = 2};
    ams_label_writer *lw = NULL;
    CHECK(ams_label_writer_open(&lw, labels_path, &info, &err) == AMS_OK);
    uint8_t rgb[W * H * 3], lab[W * H];
    uint32_t s = 99;
    for (int f = 0; f < SECONDS * FPS; f++) {
        int x0 = (f / 3) % (W - 8), y0 = (f / 7) % (H - 8);
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                int in = x >= x0 && x < x0 + 8 && y >= y0 && y < y0 + 8;
                uint8_t *px = &rgb[(y * W + x) * 3];
                s = s * 1664525u + 1013904223u;
                uint8_t g = (uint8_t)(16 + (s >> 27));
                px[0] = in ? 250 : g;
                px[1] = in ? 40 : g;
                px[2] = in ? 40 : g;
                lab[y * W + x] = (uint8_t)in;
            }
        char path[4400];
        snprintf(path, sizeof path, "%s/f%05d.png", frames, f);
        CHECK(ams_png_write_rgb(path, rgb, W, H, &err) == AMS_OK);
        CHECK(ams_label_writer_append(lw, (double)f / FPS, lab, &err) == AMS_OK);
    }
    CHECK(ams_label_writer_close(lw, &err) == AMS_OK);
    ams_label_writer_free(lw);
    return 0;
}

static void config(ams_sim_config *c, ams_sim_mode m) {
    ams_sim_config_default(c);
    c->mode = m;
    c->width = W;
    c->height = H;
    c->uplink_kbps = 0;
    c->downlink_kbps = 0.2; /* ~120-byte updates take ~5 s */
    c->send_period = 1;
    c->first_send = 1; /* the hand-computed times below assume whole periods */
    c->train_period = 2;
    c->first_train = 1;
    c->memory_len = 4;
    c->eval_fps = FPS;
    c->one_time_s = 2;
    c->compute_s = 1.5;
    c->atr = 0;
    c->train.iters = 60;
    c->train.batch = 2;
    c->train.lr = 0.1f;
    c->train.strategy = AMS_STRATEGY_FULL;
}

/* Runs one simulation of video and labels with fresh tiny students; *edge_out gets the edge's
 * final weights. */
static ams_status run_with(const ams_sim_config *c, const char *frames, const char *labels,
                           ams_sim_result **out, float *edge_out) {
    ams_err err = {0};
    ams_label_reader *lr = NULL;
    ams_status s = ams_label_reader_open(&lr, labels, &err);
    ams_params *pe = tiny_params(), *ps = tiny_params();
    ams_sim_student e = {pe, tiny_infer, tiny_train, NULL}, sv = {ps, tiny_infer, tiny_train, NULL};
    if (s == AMS_OK) s = ams_sim_run(c, frames, lr, &e, &sv, NULL, NULL, out, &err);
    if (s != AMS_OK) fprintf(stderr, "run: %s\n", err.msg);
    if (edge_out) memcpy(edge_out, pe->values, 4 * sizeof(float));
    ams_params_free(pe);
    ams_params_free(ps);
    ams_label_reader_free(lr);
    return s;
}

/* The same on the moving-square clip. */
static ams_status run(const ams_sim_config *c, ams_sim_result **out, float *edge_out) {
    char frames[4200];
    snprintf(frames, sizeof frames, "%s/frames", dir);
    return run_with(c, frames, labels_path, out, edge_out);
}

static ams_status run_on(const ams_sim_config *c, const char *video, const char *labels,
                         ams_sim_result **out) {
    return run_with(c, video, labels, out, NULL);
}

static int test_clock(void) {
    CHECK(make_data() == 0);
    ams_sim_config c;
    config(&c, AMS_SIM_AMS);
    ams_sim_result *r = NULL;
    CHECK(run(&c, &r, NULL) == AMS_OK);
    CHECK(r->nseconds == SECONDS && r->eval_frames == SECONDS * FPS);
    CHECK(r->nphases >= 2);
    double link_free = 0;
    for (int i = 0; i < r->nphases; i++) {
        const ams_sim_phase *p = &r->phases[i];
        CHECK(p->compute_s == 1.5 && p->ready == p->start + 1.5);
        double leave = p->ready > link_free ? p->ready : link_free;
        double x = (double)p->bytes * 8 / (0.2 * 1000);
        CHECKF(fabs(p->arrive - (leave + x)) < 1e-9, "arrive %g, expected %g", p->arrive,
               leave + x);
        CHECK(x > 2.0); /* the test means something: transmission takes seconds */
        link_free = p->arrive;
        /* the server is busy while it computes: the next phase starts after it is ready */
        if (i > 0) CHECK(p->start >= r->phases[i - 1].ready);
    }
    /* the edge's version at the end of each second = updates arrived by its last frame */
    for (int k = 0; k < r->nseconds; k++) {
        double last_frame = k + (FPS - 1.0) / FPS;
        int v = 0;
        for (int i = 0; i < r->nphases; i++) v += r->phases[i].arrive <= last_frame + 1e-9;
        CHECKF(r->seconds[k].version == v, "second %d: version %d, expected %d", k,
               r->seconds[k].version, v);
    }
    CHECK(r->updates == r->seconds[r->nseconds - 1].version && r->rejected == 0);
    ams_sim_result_free(r);
    return 0;
}

static int test_pretrained_and_learning(void) {
    CHECK(make_data() == 0);
    ams_sim_config c;
    config(&c, AMS_SIM_PRETRAINED);
    ams_sim_result *pre = NULL, *ams = NULL, *one = NULL;
    float w[4];
    CHECK(run(&c, &pre, w) == AMS_OK);
    ams_params *p0 = tiny_params();
    CHECK(memcmp(w, p0->values, sizeof w) == 0);
    ams_params_free(p0);
    CHECK(pre->updates == 0 && pre->nphases == 0 && pre->up_bits == 0 && pre->down_bits == 0);
    CHECK(pre->uploads == 0);
    /* all-background predictions: mIoU = background IoU / 2 per frame (the person is present) */
    CHECK(pre->miou < 0.5);
    config(&c, AMS_SIM_AMS);
    c.downlink_kbps = 0;
    CHECK(run(&c, &ams, w) == AMS_OK);
    CHECKF(ams->miou_after > pre->miou + 0.2, "ams %g vs pretrained %g", ams->miou_after,
           pre->miou);
    CHECKF(w[0] > 0 && w[1] < 0, "%g %g %g %g", w[0], w[1], w[2], w[3]); /* red up, green down */
    config(&c, AMS_SIM_ONE_TIME);
    c.downlink_kbps = 0;
    CHECK(run(&c, &one, NULL) == AMS_OK);
    CHECK(one->nphases == 1 && one->updates == 1);
    CHECK(one->phases[0].start >= 2.0 && one->phases[0].start < 2.1);
    /* jit: no restore, updates relative to the edge's own weights, one per upload */
    ams_sim_result *jit = NULL;
    config(&c, AMS_SIM_JIT);
    c.downlink_kbps = 0;
    c.jit_iters = 20;
    CHECK(run(&c, &jit, w) == AMS_OK);
    CHECKF(jit->rejected == 0 && jit->updates >= 2 && jit->nphases <= jit->uploads &&
               jit->updates == jit->nphases,
           "%d updates, %d phases, %d uploads", jit->updates, jit->nphases, jit->uploads);
    CHECKF(jit->miou_after > pre->miou + 0.2, "jit %g", jit->miou_after);
    ams_sim_result_free(jit);
    ams_sim_result_free(pre);
    ams_sim_result_free(ams);
    ams_sim_result_free(one);
    return 0;
}

static int test_budgets(void) {
    CHECK(make_data() == 0);
    ams_sim_config c;
    config(&c, AMS_SIM_AMS);
    c.uplink_kbps = 20; /* H.264 at 20 Kbps of video time */
    c.downlink_kbps = 1;
    c.train.strategy = AMS_STRATEGY_COORD;
    c.train.fraction = 0.5;
    ams_sim_result *r = NULL;
    CHECK(run(&c, &r, NULL) == AMS_OK);
    CHECK(r->uploads >= 5 && r->up_bits > 0 && r->updates >= 1);
    CHECKF(r->uplink_kbps <= 20 * 1.05, "uplink %g Kbps", r->uplink_kbps);
    CHECKF(r->downlink_kbps <= 1.0, "downlink %g Kbps", r->downlink_kbps);
    uint64_t up = 0, down = 0;
    for (int k = 0; k < r->nseconds; k++) {
        up += r->seconds[k].up_bits;
        down += r->seconds[k].down_bits;
    }
    CHECK(up == r->up_bits && down == r->down_bits);
    CHECK(r->codec_bytes > 0 && r->ref_bytes > 0);
    ams_sim_result_free(r);
    return 0;
}

static int test_determinism(void) {
    CHECK(make_data() == 0);
    ams_sim_config c;
    config(&c, AMS_SIM_AMS);
    c.train.strategy = AMS_STRATEGY_RAND;
    c.train.fraction = 0.5;
    c.downlink_kbps = 0; /* several updates arrive */
    ams_sim_result *a = NULL, *b = NULL, *d = NULL;
    float wa[4], wb[4], wd[4];
    CHECK(run(&c, &a, wa) == AMS_OK && run(&c, &b, wb) == AMS_OK);
    CHECK(memcmp(wa, wb, sizeof wa) == 0);
    CHECK(a->miou == b->miou && a->codec_bytes == b->codec_bytes && a->nphases == b->nphases);
    for (int k = 0; k < a->nseconds; k++)
        CHECK(memcmp(&a->seconds[k], &b->seconds[k], sizeof a->seconds[k]) == 0);
    c.train.seed = 2;
    CHECK(run(&c, &d, wd) == AMS_OK);
    CHECK(memcmp(wa, wd, sizeof wa) != 0);
    ams_sim_result_free(a);
    ams_sim_result_free(b);
    ams_sim_result_free(d);
    return 0;
}

static int test_outputs(void) {
    CHECK(make_data() == 0);
    ams_sim_config c;
    config(&c, AMS_SIM_AMS);
    ams_sim_result *r = NULL;
    ams_err err = {0};
    CHECK(run(&c, &r, NULL) == AMS_OK);
    CHECK(ams_sim_write(r, dir, &err) == AMS_OK);
    char path[4400], line[4096];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    FILE *f = fopen(path, "r");
    CHECK(f);
    int lines = 0;
    while (fgets(line, sizeof line, f)) lines++;
    fclose(f);
    CHECK(lines == SECONDS);
    snprintf(path, sizeof path, "%s/summary.json", dir);
    f = fopen(path, "r");
    CHECK(f && fgets(line, sizeof line, f));
    fclose(f);
    CHECK(strstr(line, "\"mode\": \"ams\"") && strstr(line, "\"miou\": 0.") &&
          strstr(line, "\"updates\": "));
    CHECK(ams_sim_write(r, "/nonexistent-dir/x", &err) == AMS_E_IO);
    ams_sim_result_free(r);
    return 0;
}

static int test_bad_input(void) {
    CHECK(make_data() == 0);
    ams_sim_config c;
    config(&c, AMS_SIM_AMS);
    c.width = 31; /* odd */
    ams_sim_result *r = NULL;
    CHECK(run(&c, &r, NULL) == AMS_E_INVAL && r == NULL);
    config(&c, AMS_SIM_AMS);
    ams_err err = {0};
    ams_label_reader *lr = NULL;
    CHECK(ams_label_reader_open(&lr, labels_path, &err) == AMS_OK);
    ams_params *pe = tiny_params();
    ams_sim_student e = {pe, tiny_infer, tiny_train, NULL};
    /* the same params for edge and server is refused */
    CHECK(ams_sim_run(&c, "/nonexistent.avi", lr, &e, &e, NULL, NULL, &r, &err) == AMS_E_INVAL);
    ams_params *ps = tiny_params();
    ams_sim_student sv = {ps, tiny_infer, tiny_train, NULL};
    CHECK(ams_sim_run(&c, "/nonexistent.avi", lr, &e, &sv, NULL, NULL, &r, &err) != AMS_OK);
    CHECK(r == NULL);
    ams_params_free(pe);
    ams_params_free(ps);
    ams_label_reader_free(lr);
    /* bursty label times (100 in the first second, then one at 7.9 s): the period buffer grows */
    char bursty[4400];
    snprintf(bursty, sizeof bursty, "%s/bursty.labels", dir);
    ams_label_info info = {.width = W, .height = H, .classes = 2};
    ams_label_writer *lw = NULL;
    uint8_t lab[W * H];
    memset(lab, 0, sizeof lab);
    lab[5] = 1;
    CHECK(ams_label_writer_open(&lw, bursty, &info, &err) == AMS_OK);
    for (int i = 0; i < 100; i++) CHECK(ams_label_writer_append(lw, i * 0.01, lab, &err) == AMS_OK);
    CHECK(ams_label_writer_append(lw, 7.9, lab, &err) == AMS_OK);
    CHECK(ams_label_writer_close(lw, &err) == AMS_OK);
    ams_label_writer_free(lw);
    char frames[4200];
    snprintf(frames, sizeof frames, "%s/frames", dir);
    CHECK(ams_label_reader_open(&lr, bursty, &err) == AMS_OK);
    pe = tiny_params();
    ps = tiny_params();
    e.params = pe;
    sv.params = ps;
    c.eval_fps = 100;
    CHECKF(ams_sim_run(&c, frames, lr, &e, &sv, NULL, NULL, &r, &err) == AMS_OK, "%s", err.msg);
    CHECK(r->eval_frames == 101 && r->uploads >= 1);
    ams_sim_result_free(r);
    ams_params_free(pe);
    ams_params_free(ps);
    ams_label_reader_free(lr);
    ams_sim_mode m;
    CHECK(ams_sim_mode_parse("one-time", &m, &err) == AMS_OK && m == AMS_SIM_ONE_TIME);
    CHECK(ams_sim_mode_parse("bogus", &m, &err) == AMS_E_INVAL);
    return 0;
}

/* The clip's label of frame f (make_data's square). */
static void clip_label(int f, uint8_t *lab) {
    int x0 = (f / 3) % (W - 8), y0 = (f / 7) % (H - 8);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            lab[y * W + x] = (uint8_t)(x >= x0 && x < x0 + 8 && y >= y0 && y < y0 + 8);
}

/* The recorded predictions: identical to pretrained's until the first update arrives, even
 * while it is computed and on the link (seconds after training started); different after. */
static int test_late_update_applied_late(void) {
    CHECK(make_data() == 0);
    ams_sim_config c;
    config(&c, AMS_SIM_PRETRAINED);
    c.record = 1;
    ams_sim_result *pre = NULL, *ams = NULL;
    CHECK(run(&c, &pre, NULL) == AMS_OK);
    config(&c, AMS_SIM_AMS); /* compute 1.5 s, downlink 0.2 Kbps: updates take seconds */
    c.record = 1;
    CHECK(run(&c, &ams, NULL) == AMS_OK);
    int n = ams_sim_rec_count(ams->rec);
    CHECK(n == SECONDS * FPS && ams_sim_rec_count(pre->rec) == n);
    CHECK(ams->nphases >= 2);
    const ams_sim_phase *p0 = &ams->phases[0];
    double next = ams->phases[1].arrive;
    CHECKF(p0->ready == p0->start + 1.5 && p0->arrive > p0->ready + 2.0, "phase 0: %g %g %g",
           p0->start, p0->ready, p0->arrive);
    static uint8_t a[W * H], b[W * H], la[W * H], lb[W * H], want[W * H];
    int waiting = 0, changed = 0, after = 0;
    ams_err err = {0};
    for (int k = 0; k < n; k++) {
        double t = ams_sim_rec_time(ams->rec, k);
        CHECK(t == ams_sim_rec_time(pre->rec, k) && fabs(t - (double)k / FPS) < 1e-9);
        CHECK(ams_sim_rec_get(ams->rec, k, a, la, &err) == AMS_OK);
        CHECK(ams_sim_rec_get(pre->rec, k, b, lb, &err) == AMS_OK);
        clip_label(k, want);
        CHECKF(memcmp(la, want, sizeof want) == 0 && memcmp(lb, want, sizeof want) == 0,
               "frame %d: recorded label is not the clip's", k);
        if (t < p0->arrive - 1e-9) {
            CHECKF(memcmp(a, b, sizeof a) == 0, "frame %d (t %g): new weights before arrival %g",
                   k, t, p0->arrive);
            waiting += t >= p0->start;
        } else if (t < next) {
            after++;
            changed += memcmp(a, b, sizeof a) != 0;
        }
    }
    CHECKF(waiting > 2 * FPS, "%d frames between training and arrival", waiting);
    CHECKF(after > 0 && changed > after / 2, "%d of %d frames changed after the update", changed,
           after);
    CHECK(ams_sim_rec_get(ams->rec, n, a, la, &err) == AMS_E_RANGE);
    ams_sim_result_free(pre);
    ams_sim_result_free(ams);
    return 0;
}

/* jit: each keyframe trains until its mIoU reaches the target or the step budget is spent, on
 * the whole model, from the edge's weights. */
static int test_jit_until_match(void) {
    CHECK(make_data() == 0);
    ams_sim_config c;
    config(&c, AMS_SIM_JIT);
    c.downlink_kbps = 0;
    c.jit_iters = 50;
    c.jit_target = 0.9;
    c.train.lr = 0.01f;
    ams_sim_result *r = NULL;
    CHECK(run(&c, &r, NULL) == AMS_OK);
    int arrived = 0;
    for (int i = 0; i < r->nphases; i++)
        arrived += r->phases[i].arrive <= (SECONDS * FPS - 1.0) / FPS + 1e-9; /* the last frame */
    CHECKF(r->nphases >= 3 && r->rejected == 0 && r->updates == arrived,
           "%d phases, %d updates, %d uploads", r->nphases, r->updates, r->uploads);
    int reached = 0;
    for (int i = 0; i < r->nphases; i++) {
        const ams_sim_phase *p = &r->phases[i];
        CHECKF(p->iters >= 1 && p->iters <= 50, "phase %d: %d steps", i, p->iters);
        CHECKF(p->miou_first < 0.9, "phase %d trained although it matched (%g)", i, p->miou_first);
        if (p->iters < 50) {
            CHECKF(p->miou_last >= 0.9, "phase %d stopped at %d steps with mIoU %g", i, p->iters,
                   p->miou_last);
            reached++;
        }
        CHECK(p->horizon == 1 && p->selected == 4 && p->changed == 4); /* the whole model */
        CHECK(p->bytes > 0 && p->ref_bytes > 0);
    }
    CHECKF(reached > 0, "no keyframe reached the target");
    ams_sim_result_free(r);
    /* a budget of one step */
    c.jit_iters = 1;
    CHECK(run(&c, &r, NULL) == AMS_OK);
    CHECK(r->nphases >= 3);
    for (int i = 0; i < r->nphases; i++) CHECK(r->phases[i].iters == 1);
    ams_sim_result_free(r);
    /* a target every student meets: nothing is trained or sent */
    c.jit_iters = 50;
    c.jit_target = 0;
    CHECK(run(&c, &r, NULL) == AMS_OK);
    CHECK(r->nphases == 0 && r->updates == 0 && r->down_bits == 0 && r->uploads >= 5);
    ams_sim_result_free(r);
    c.jit_target = 1.5;
    CHECK(run(&c, &r, NULL) == AMS_E_INVAL);
    return 0;
}

/* ASR and ATR inside the emulator, on a static clip (the square never moves: phi = 1 for every
 * pair of labels), 50 s at 2 fps, send and train period 5 s, no link limits. By hand:
 *   uploads at 5, 10, 15, 20, 25 s take round(5 r) frames: 5, 4, 3, 2, 1; at r = 0.1,
 *   round(0.5) = 0 (half to even): nothing more is sent;
 *   r after each: r - 0.2 tanh((1 - 0.6) 20) = r - d, d = 0.19999995498593517 (tanh(8) =
 *   0.9999997749296758), clipped at 0.1 after the fifth;
 *   ATR at the training events (t, rate, mean of the last 5): 5 .8 .8; 10 .6 .7; 15 .4 .6;
 *   20 .2 .5; 25 .1 .42; 30 .1 .28 (between .25 and .35: awake); 35 .1 .18 -> hibernate,
 *   period 5 + 2 = 7 -> 42; 42 .1 .12 -> period 9 -> 51, past the end. */
static int test_asr_atr_in_sim(void) {
    CHECK(make_data() == 0);
    char video[4400], labs[4400];
    snprintf(video, sizeof video, "%s/static.mp4", dir);
    snprintf(labs, sizeof labs, "%s/static.labels", dir);
    ams_err err = {0};
    ams_mp4_opts mo = {.width = W, .height = H, .fps = 2};
    ams_mp4_writer *mw = NULL;
    CHECK(ams_mp4_writer_open(&mw, video, &mo, &err) == AMS_OK);
    ams_label_info info = {.width = W, .height = H, .classes = 2};
    ams_label_writer *lw = NULL;
    CHECK(ams_label_writer_open(&lw, labs, &info, &err) == AMS_OK);
    uint8_t rgb[W * H * 3], lab[W * H];
    uint32_t s = 7;
    for (int f = 0; f < 100; f++) {
        for (int i = 0; i < W * H; i++) {
            int in = (i % W) >= 10 && (i % W) < 18 && (i / W) >= 8 && (i / W) < 16;
            s = s * 1664525u + 1013904223u;
            uint8_t g = (uint8_t)(16 + (s >> 27));
            rgb[3 * i] = in ? 250 : g;
            rgb[3 * i + 1] = rgb[3 * i + 2] = in ? 40 : g;
            lab[i] = (uint8_t)in;
        }
        CHECK(ams_mp4_writer_add_rgb(mw, rgb, f, &err) == AMS_OK);
        CHECK(ams_label_writer_append(lw, f * 0.5, lab, &err) == AMS_OK);
    }
    CHECK(ams_mp4_writer_close(mw, &err) == AMS_OK);
    ams_mp4_writer_free(mw);
    CHECK(ams_label_writer_close(lw, &err) == AMS_OK);
    ams_label_writer_free(lw);

    ams_sim_config c;
    config(&c, AMS_SIM_AMS);
    c.uplink_kbps = c.downlink_kbps = 0;
    c.send_period = c.first_send = c.train_period = c.first_train = 5;
    c.memory_len = 100;
    c.eval_fps = 2;
    c.compute_s = 0.1;
    c.atr = 1;
    c.train.iters = 2;
    c.train.batch = 1;
    ams_sim_result *r = NULL;
    CHECK(run_on(&c, video, labs, &r) == AMS_OK);
    CHECK(r->nseconds == 50);
    CHECKF(r->uploads == 5 && r->uploaded_frames == 15, "%d uploads, %d frames", r->uploads,
           r->uploaded_frames);
    static const double rate[] = {1.0, 0.8000000450140649, 0.6000000900281297,
                                  0.40000013504219445, 0.2000001800562593, 0.1};
    for (int k = 0; k < 50; k++) {
        double want = rate[k / 5 < 5 ? k / 5 : 5];
        CHECKF(fabs(r->seconds[k].rate - want) < 1e-12, "second %d: rate %.17g, want %.17g", k,
               r->seconds[k].rate, want);
    }
    static const double start[] = {5, 10, 15, 20, 25, 30, 35, 42};
    CHECKF(r->nphases == 8, "%d phases", r->nphases);
    for (int i = 0; i < 8; i++)
        CHECKF(r->phases[i].start == start[i], "phase %d at %g, want %g", i, r->phases[i].start,
               start[i]);
    ams_sim_result_free(r);
    /* without ATR the period stays 5 s: 5, 10, ..., 45 */
    c.atr = 0;
    CHECK(run_on(&c, video, labs, &r) == AMS_OK);
    CHECK(r->nphases == 9 && r->phases[8].start == 45);
    ams_sim_result_free(r);
    /* without ASR the rate stays 1 frame/s: 5 frames every period */
    c.asr = 0;
    CHECK(run_on(&c, video, labs, &r) == AMS_OK);
    CHECK(r->uploads == 9 && r->uploaded_frames == 45 && r->seconds[49].rate == 1.0);
    ams_sim_result_free(r);
    return 0;
}

static int file_has(const char *path, const char *needle, int *count) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    int c = 0;
    for (const char *p = buf; (p = strstr(p, needle)) != NULL; p++) c++;
    if (count) *count = c;
    return c > 0;
}

/* The overlay video (pretrained | ams | teacher) and the report that shows it. */
static int test_overlay_and_report(void) {
    CHECK(make_data() == 0);
    ams_sim_config c;
    config(&c, AMS_SIM_PRETRAINED);
    c.record = 1;
    ams_sim_result *pre = NULL, *ams = NULL, *plain = NULL, *shorter = NULL;
    CHECK(run(&c, &pre, NULL) == AMS_OK);
    config(&c, AMS_SIM_AMS);
    c.record = 1;
    c.downlink_kbps = 0;
    CHECK(run(&c, &ams, NULL) == AMS_OK);
    char frames[4200], out[4200], path[4400];
    snprintf(frames, sizeof frames, "%s/frames", dir);
    snprintf(out, sizeof out, "%s/report", dir);
    CHECK(mkdir(out, 0777) == 0);
    snprintf(path, sizeof path, "%s/overlay.mp4", out);
    ams_err err = {0};
    const ams_sim_result *pair[2] = {pre, ams};
    CHECKF(ams_sim_write_overlay(pair, 2, frames, path, &err) == AMS_OK, "%s", err.msg);
    /* read it back: 3 panels + 2 gaps wide, one frame per evaluated frame */
    ams_video_reader *vr = NULL;
    ams_video_opts vo = {0};
    CHECKF(ams_video_open(&vr, path, &vo, &err) == AMS_OK, "%s", err.msg);
    CHECK(ams_video_info_get(vr)->width == 3 * W + 8 && ams_video_info_get(vr)->height == H);
    int nf = 0;
    double green = 0, red = 0;
    static uint8_t lab[W * H];
    for (;;) {
        ams_video_frame f;
        CHECK(ams_video_read(vr, &f, &err) == AMS_OK);
        if (!f.rgb) break;
        if (nf == 120) { /* the teacher panel is green on the square, the student's red */
            clip_label(nf, lab);
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++)
                    if (lab[y * W + x]) {
                        const uint8_t *tp = f.rgb + ((size_t)y * (3 * W + 8) + 2 * (W + 4) + x) * 3;
                        green += (double)tp[1] - tp[0];
                        const uint8_t *ap = f.rgb + ((size_t)y * (3 * W + 8) + (W + 4) + x) * 3;
                        red += (double)ap[0] - ap[1];
                    }
        }
        nf++;
    }
    ams_video_free(vr);
    CHECKF(nf == SECONDS * FPS, "%d frames", nf);
    CHECKF(green > 0 && red > 0, "teacher panel green-red %g, ams panel red-green %g", green, red);
    /* the report shows it, with the plots */
    CHECK(ams_sim_write_compare(pair, 2, out, &err) == AMS_OK);
    snprintf(path, sizeof path, "%s/report.html", out);
    int svgs = 0;
    CHECK(file_has(path, "<video src=\"overlay.mp4\"", NULL));
    CHECK(file_has(path, "<svg", &svgs) && svgs == 4);
    CHECK(file_has(path, "mIoU vs Kbps", NULL) && file_has(path, "downlink Kbps over time", NULL));
    CHECK(file_has(path, "reference format bytes", NULL));
    snprintf(path, sizeof path, "%s/overlay.mp4", out);
    CHECK(unlink(path) == 0);
    CHECK(ams_sim_write_compare(pair, 2, out, &err) == AMS_OK);
    snprintf(path, sizeof path, "%s/report.html", out);
    CHECK(!file_has(path, "<video", NULL));
    /* refused: a run without a recording, runs of other frames, too many runs */
    config(&c, AMS_SIM_PRETRAINED);
    CHECK(run(&c, &plain, NULL) == AMS_OK && plain->rec == NULL);
    snprintf(path, sizeof path, "%s/x.mp4", out);
    const ams_sim_result *bad[2] = {pre, plain};
    CHECK(ams_sim_write_overlay(bad, 2, frames, path, &err) == AMS_E_INVAL);
    c.record = 1;
    c.max_seconds = 4;
    CHECK(run(&c, &shorter, NULL) == AMS_OK);
    bad[1] = shorter;
    CHECK(ams_sim_write_overlay(bad, 2, frames, path, &err) == AMS_E_INVAL);
    const ams_sim_result *five[5] = {pre, pre, pre, pre, pre};
    CHECK(ams_sim_write_overlay(five, 5, frames, path, &err) == AMS_E_INVAL);
    CHECK(access(path, F_OK) != 0);
    ams_sim_result_free(pre);
    ams_sim_result_free(ams);
    ams_sim_result_free(plain);
    ams_sim_result_free(shorter);
    return 0;
}

/* The first send period is first_send long (default half a period), later ones send_period:
 * with lossless instant uploads the first phase starts as soon as the first upload is in. */
static int test_first_send(void) {
    CHECK(make_data() == 0);
    ams_sim_config c;
    config(&c, AMS_SIM_AMS);
    c.send_period = 2;
    c.first_send = -1; /* periods end at 1, 3, 5, 7 s */
    ams_sim_result *r = NULL;
    CHECK(run(&c, &r, NULL) == AMS_OK);
    CHECKF(r->uploads == 4 && r->nphases >= 1 && r->phases[0].start == 1.0,
           "%d uploads, first phase at %g", r->uploads, r->nphases ? r->phases[0].start : -1);
    ams_sim_result_free(r);
    c.first_send = 2; /* whole periods: 2, 4, 6 s */
    CHECK(run(&c, &r, NULL) == AMS_OK);
    CHECKF(r->uploads == 3 && r->nphases >= 1 && r->phases[0].start == 2.0,
           "%d uploads, first phase at %g", r->uploads, r->nphases ? r->phases[0].start : -1);
    ams_sim_result_free(r);
    c.first_send = 0; /* refused */
    ams_err err = {0};
    ams_label_reader *lr = NULL;
    CHECK(ams_label_reader_open(&lr, labels_path, &err) == AMS_OK);
    ams_params *pe = tiny_params(), *ps = tiny_params();
    ams_sim_student e = {pe, tiny_infer, tiny_train, NULL}, sv = {ps, tiny_infer, tiny_train, NULL};
    char frames[4200];
    snprintf(frames, sizeof frames, "%s/frames", dir);
    CHECK(ams_sim_run(&c, frames, lr, &e, &sv, NULL, NULL, &r, &err) == AMS_E_INVAL);
    ams_params_free(pe);
    ams_params_free(ps);
    ams_label_reader_free(lr);
    return 0;
}

/* one-time trains once, on every frame it sent: after its last upload has arrived, which over
 * a slow uplink is later than one_time_s. */
static int test_one_time_waits_for_its_uploads(void) {
    CHECK(make_data() == 0);
    ams_sim_config c;
    config(&c, AMS_SIM_ONE_TIME); /* periods of 1 s, one_time_s 2: uploads at 1 and 2 s */
    c.uplink_kbps = 20;
    ams_sim_result *r = NULL;
    CHECK(run(&c, &r, NULL) == AMS_OK);
    CHECKF(r->uploads == 2 && r->nphases == 1, "%d uploads, %d phases", r->uploads, r->nphases);
    const ams_sim_phase *p = &r->phases[0];
    CHECKF(p->start > c.one_time_s && p->horizon == (size_t)r->uploaded_frames,
           "phase at %g on %zu frames; %d sent", p->start, (size_t)p->horizon,
           r->uploaded_frames);
    ams_sim_result_free(r);
    return 0;
}

int main(int argc, char **argv) {
    static const check_case cases[] = {
        {"clock", test_clock},
        {"pretrained_and_learning", test_pretrained_and_learning},
        {"budgets", test_budgets},
        {"determinism", test_determinism},
        {"outputs", test_outputs},
        {"bad_input", test_bad_input},
        {"late_update_applied_late", test_late_update_applied_late},
        {"jit_until_match", test_jit_until_match},
        {"asr_atr_in_sim", test_asr_atr_in_sim},
        {"overlay_and_report", test_overlay_and_report},
        {"first_send", test_first_send},
        {"one_time_waits_for_its_uploads", test_one_time_waits_for_its_uploads},
    };
    int rc = check_run(cases, sizeof cases / sizeof cases[0], argc, argv);
    if (dir[0]) {
        char cmd[4400];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", dir);
    }
    return rc;
}
