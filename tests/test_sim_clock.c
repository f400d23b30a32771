/* test_sim_clock.c - the emulator on a synthetic clip (a red "person" square moving over grey
 * noise, labels = the square) with a tiny student (1x1 conv logistic regression): updates
 * arrive at start + compute + bytes/downlink and not before, pretrained never changes the
 * weights, measured Kbps stay within the budgets, runs are deterministic, and AMS learns. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ams/sim.h"
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

/* Runs one simulation with fresh tiny students; *edge_out gets the edge's final weights. */
static ams_status run(const ams_sim_config *c, ams_sim_result **out, float *edge_out) {
    ams_err err = {0};
    char frames[4200];
    snprintf(frames, sizeof frames, "%s/frames", dir);
    ams_label_reader *lr = NULL;
    ams_status s = ams_label_reader_open(&lr, labels_path, &err);
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
    CHECK(jit->rejected == 0 && jit->updates >= 4 && jit->nphases == jit->uploads);
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

int main(int argc, char **argv) {
    static const check_case cases[] = {
        {"clock", test_clock},
        {"pretrained_and_learning", test_pretrained_and_learning},
        {"budgets", test_budgets},
        {"determinism", test_determinism},
        {"outputs", test_outputs},
        {"bad_input", test_bad_input},
    };
    int rc = check_run(cases, sizeof cases / sizeof cases[0], argc, argv);
    if (dir[0]) {
        char cmd[4400];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", dir);
    }
    return rc;
}
