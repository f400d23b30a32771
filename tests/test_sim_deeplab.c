/* test_sim_deeplab.c - the emulator with multi-class students: a hand-checked class-subset
 * metric (a 4-class 1x1-conv student with fixed weights on a two-colour clip: mIoU, pixel
 * accuracy and class-1 IoU over a subset, the argmax over the subset only, teacher pixels of
 * other classes ignored), bad subsets refused; and a random-initialised DeepLabV3-MobileNetV2
 * student (ams_sim_deeplab_*) on a synthetic 4-class clip (moving red and blue squares, a
 * green band, grey noise): it runs, updates arrive, the training loss falls, AMS beats
 * pretrained, and with a subset the edge predicts subset classes only. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ams/backend.h"
#include "ams/sim.h"
#include "ams/video.h"
#include "ams/video_out.h"
#include "check.h"

#include <libavutil/log.h>

#define FPS 30 /* image sequences play at AMS_VIDEO_DEFAULT_IMAGE_FPS */

static char dir[4096];

/* ---- the hand-checked metric: 32x24, left half red, right half blue ---- */

#define MW 32
#define MH 24
static char m_frames[4200], m_labels[4200], m_labels8[4200];

/* The label plane (class ids 0..3, 255):
 *   left (x < 16):  rows 0-5 class 2 (96 px), rows 6-11 class 1 (96), rows 12-23 class 3 (192)
 *   right:          rows 0-11 class 1 (192), rows 12-17 class 0 (96), rows 18-23 255 (96) */
static uint8_t metric_label(int x, int y) {
    if (x < MW / 2) return y < 6 ? 2 : y < 12 ? 1 : 3;
    return y < 12 ? 1 : y < 18 ? 0 : 255;
}

static int make_dir(void) {
    if (dir[0]) return 0;
    av_log_set_level(AV_LOG_QUIET);
    snprintf(dir, sizeof dir, "%s/sim-deeplab-XXXXXX", AMS_BINARY_DIR);
    CHECK(mkdtemp(dir) != NULL);
    return 0;
}

/* 2 s of the two-colour clip; labels at 10 fps in a 4-class store and an 8-class one. */
static int make_metric_data(void) {
    if (m_frames[0]) return 0;
    CHECK(make_dir() == 0);
    snprintf(m_frames, sizeof m_frames, "%s/metric", dir);
    CHECK(mkdir(m_frames, 0777) == 0);
    snprintf(m_labels, sizeof m_labels, "%s/metric.labels", dir);
    snprintf(m_labels8, sizeof m_labels8, "%s/metric8.labels", dir);
    ams_err err = {0};
    uint8_t rgb[MW * MH * 3], lab[MW * MH];
    for (int y = 0; y < MH; y++)
        for (int x = 0; x < MW; x++) {
            uint8_t *px = &rgb[(y * MW + x) * 3];
            int left = x < MW / 2;
            px[0] = left ? 250 : 40;
            px[1] = 40;
            px[2] = left ? 40 : 250;
            lab[y * MW + x] = metric_label(x, y);
        }
    for (int f = 0; f < 2 * FPS; f++) {
        char path[4400];
        snprintf(path, sizeof path, "%s/f%05d.png", m_frames, f);
        CHECK(ams_png_write_rgb(path, rgb, MW, MH, &err) == AMS_OK);
    }
    for (int k = 0; k < 2; k++) {
        ams_label_info info = {.width = MW, .height = MH, .classes = k ? 8 : 4};
        ams_label_writer *lw = NULL;
        CHECK(ams_label_writer_open(&lw, k ? m_labels8 : m_labels, &info, &err) == AMS_OK);
        for (int f = 0; f < 20; f++)
            CHECK(ams_label_writer_append(lw, f / 10.0, lab, &err) == AMS_OK);
        CHECK(ams_label_writer_close(lw, &err) == AMS_OK);
        ams_label_writer_free(lw);
    }
    return 0;
}

/* A 4-class student: logits = rgb/255 . w + b (a 1x1 conv) with w = 4 (R - B) into class 2,
 * b = (5, 1, 0, 4). Red pixels: logits (5, 1, 3.3, 4); blue: (5, 1, -3.3, 4). So the argmax
 * over all classes is 0 everywhere; over {1, 2}: 2 on the left, 1 on the right; over {1, 3}:
 * 3 everywhere. */
static ams_status four_infer(void *ctx, ams_graph *g, int h, int w, int *image, int *logits,
                             ams_err *err) {
    (void)ctx;
    ams_params *p = ams_graph_params(g);
    *image = ams_graph_input(g, "image", 4, (int64_t[]){1, h, w, 3});
    *logits = ams_graph_conv2d(g, *image, ams_graph_param(g, ams_params_find(p, "w")),
                               ams_graph_param(g, ams_params_find(p, "b")),
                               &(ams_conv_opts){.padding = AMS_PAD_VALID});
    return ams_graph_error(g, err);
}

static ams_status four_train(void *ctx, ams_graph *g, int n, int h, int w, int *image,
                             int *labels, int *loss, ams_err *err) {
    (void)ctx;
    ams_params *p = ams_graph_params(g);
    *image = ams_graph_input(g, "image", 4, (int64_t[]){n, h, w, 3});
    int logits = ams_graph_conv2d(g, *image, ams_graph_param(g, ams_params_find(p, "w")),
                                  ams_graph_param(g, ams_params_find(p, "b")),
                                  &(ams_conv_opts){.padding = AMS_PAD_VALID});
    *labels = ams_graph_labels(g, "labels", n, h, w);
    *loss = ams_graph_softmax_ce(g, logits, *labels, NULL, 0);
    return ams_graph_error(g, err);
}

static ams_params *four_params(void) {
    ams_err err = {0};
    ams_params *p = ams_params_new();
    ams_params_add(p, "w", 4, (int64_t[]){1, 1, 3, 4}, 1, &err);
    ams_params_add(p, "b", 1, (int64_t[]){4}, 1, &err);
    if (ams_params_alloc(p, &err) != AMS_OK) return NULL;
    float *w = p->values, *b = p->values + 12; /* HWIO: w[ci * 4 + co] */
    w[0 * 4 + 2] = 4.0f;
    w[2 * 4 + 2] = -4.0f;
    b[0] = 5.0f;
    b[1] = 1.0f;
    b[2] = 0.0f;
    b[3] = 4.0f;
    return p;
}

/* A pretrained run of the 4-class student on the two-colour clip with subset[0..n-1]. */
static ams_status metric_run(const int *subset, int n, const char *labels, ams_sim_result **out,
                             ams_err *err) {
    ams_sim_config c;
    ams_sim_config_default(&c);
    c.mode = AMS_SIM_PRETRAINED;
    c.width = MW;
    c.height = MH;
    c.eval_fps = 10;
    c.compute_s = 0;
    c.record = 1;
    c.nsubset = n;
    for (int i = 0; i < n && i < AMS_CM_MAX_CLASSES; i++) c.subset[i] = subset[i];
    ams_label_reader *lr = NULL;
    ams_status s = ams_label_reader_open(&lr, labels, err);
    ams_params *pe = four_params(), *ps = four_params();
    ams_sim_student e = {pe, four_infer, four_train, NULL}, sv = {ps, four_infer, four_train, NULL};
    if (s == AMS_OK) s = ams_sim_run(&c, m_frames, lr, &e, &sv, NULL, NULL, out, err);
    ams_params_free(pe);
    ams_params_free(ps);
    ams_label_reader_free(lr);
    return s;
}

/* Every recorded prediction of r is in ids[0..n-1]. */
static int preds_within(const ams_sim_result *r, const int *ids, int n) {
    int w = 0, h = 0;
    ams_sim_rec_size(r->rec, &w, &h);
    uint8_t *pred = malloc((size_t)w * (size_t)h);
    CHECK(pred != NULL);
    ams_err err = {0};
    int bad = 0;
    for (int k = 0; k < ams_sim_rec_count(r->rec) && !bad; k++) {
        if (ams_sim_rec_get(r->rec, k, pred, NULL, &err) != AMS_OK) bad = 1;
        for (int i = 0; i < w * h && !bad; i++) {
            int in = 0;
            for (int j = 0; j < n; j++) in |= pred[i] == ids[j];
            if (!in) {
                fprintf(stderr, "frame %d pixel %d: predicted %d, outside the subset\n", k, i,
                        pred[i]);
                bad = 1;
            }
        }
    }
    free(pred);
    CHECK(ams_sim_rec_count(r->rec) > 0 && !bad);
    return 0;
}

static int near(double a, double b) { return fabs(a - b) < 1e-9; }

static int test_metric_subset(void) {
    CHECK(make_metric_data() == 0);
    ams_err err = {0};
    ams_sim_result *r = NULL;
    /* no subset: argmax 0 everywhere; counted: the 672 non-255 pixels; IoU_0 = 96/672 and
     * classes 1, 2, 3 (present in the truth) IoU 0: mIoU = (1/7)/4 */
    CHECKF(metric_run(NULL, 0, m_labels, &r, &err) == AMS_OK, "%s", err.msg);
    CHECKF(r->eval_frames == 20 && near(r->miou, 1.0 / 28), "%d frames, mIoU %.9f",
           r->eval_frames, r->miou);
    CHECK(near(r->pixel_accuracy, 1.0 / 7) && near(r->person_iou, 0));
    CHECK(preds_within(r, (const int[]){0}, 1) == 0);
    ams_sim_result_free(r);
    /* {1, 2}: left predicted 2, right 1; only truth 1 and 2 count: cm[1][1] = 192,
     * cm[1][2] = 96, cm[2][2] = 96: IoU_1 = 192/288, IoU_2 = 96/192, mIoU 7/12 (either order) */
    const int s12[2][2] = {{1, 2}, {2, 1}};
    for (int k = 0; k < 2; k++) {
        CHECKF(metric_run(s12[k], 2, m_labels, &r, &err) == AMS_OK, "%s", err.msg);
        CHECKF(near(r->miou, 7.0 / 12), "subset {%d,%d}: %.9f",
               s12[k][0], s12[k][1], r->miou);
        CHECKF(near(r->pixel_accuracy, 0.75) && near(r->person_iou, 2.0 / 3), "%.9f %.9f",
               r->pixel_accuracy, r->person_iou);
        CHECK(preds_within(r, s12[k], 2) == 0);
        ams_sim_result_free(r);
    }
    /* {1, 3}: 3 everywhere (class 0 would win without the subset); truth 1 (288 px) all
     * wrong, truth 3 (192 px) all right: IoU_1 = 0, IoU_3 = 192/480, mIoU 0.2 */
    const int s13[2] = {1, 3};
    CHECKF(metric_run(s13, 2, m_labels, &r, &err) == AMS_OK, "%s", err.msg);
    CHECKF(near(r->miou, 0.2) && near(r->pixel_accuracy, 0.4), "%.9f %.9f", r->miou,
           r->pixel_accuracy);
    CHECK(preds_within(r, (const int[]){3}, 1) == 0);
    ams_sim_result_free(r);
    /* {2, 3}: class 1 left out: its IoU is NaN */
    CHECK(metric_run((const int[]){2, 3}, 2, m_labels, &r, &err) == AMS_OK);
    CHECK(isnan(r->person_iou));
    ams_sim_result_free(r);
    /* bad subsets: a class twice, not in the labels' 0..3, not a class id, too many, and
     * (8-class labels) not one of the student's 4 outputs */
    const int twice[2] = {1, 1}, four[1] = {4}, neg[1] = {-1}, five[1] = {5};
    CHECK(metric_run(twice, 2, m_labels, &r, &err) == AMS_E_INVAL && !r);
    CHECK(strstr(err.msg, "twice") != NULL);
    CHECK(metric_run(four, 1, m_labels, &r, &err) == AMS_E_INVAL && !r);
    CHECKF(strstr(err.msg, "labels") != NULL, "%s", err.msg);
    CHECK(metric_run(neg, 1, m_labels, &r, &err) == AMS_E_INVAL && !r);
    int many[AMS_CM_MAX_CLASSES + 1];
    for (int i = 0; i <= AMS_CM_MAX_CLASSES; i++) many[i] = i;
    CHECK(metric_run(many, AMS_CM_MAX_CLASSES + 1, m_labels, &r, &err) == AMS_E_INVAL && !r);
    CHECK(metric_run(five, 1, m_labels8, &r, &err) == AMS_E_INVAL && !r);
    CHECKF(strstr(err.msg, "student") != NULL, "%s", err.msg);
    /* the same subset over 8-class labels is fine */
    CHECKF(metric_run(s12[0], 2, m_labels8, &r, &err) == AMS_OK, "%s", err.msg);
    CHECK(near(r->miou, 7.0 / 12));
    ams_sim_result_free(r);
    return 0;
}

/* ---- a DeepLabV3-MobileNetV2 student on a 4-class clip ---- */

#define DW 64
#define DH 48
#define EVAL_FPS 5
#define DSECONDS 6
#define DCLASSES 4
static char d_frames[4200], d_labels[4200];

/* 0 grey noise, 1 a red RS x RS square moving right, 2 a blue BS x BS square moving down, 3 a
 * green band (the bottom GB rows); labels at 10 fps. */
#define RS (DW / 4)
#define BS (DH / 4)
#define GB (DH / 6)
static int make_deeplab_data(void) {
    if (d_frames[0]) return 0;
    CHECK(make_dir() == 0);
    snprintf(d_frames, sizeof d_frames, "%s/clip", dir);
    CHECK(mkdir(d_frames, 0777) == 0);
    snprintf(d_labels, sizeof d_labels, "%s/clip.labels", dir);
    ams_err err = {0};
    ams_label_info info = {.width = DW, .height = DH, .classes = DCLASSES};
    ams_label_writer *lw = NULL;
    CHECK(ams_label_writer_open(&lw, d_labels, &info, &err) == AMS_OK);
    static uint8_t rgb[DW * DH * 3], lab[DW * DH];
    uint32_t s = 7;
    for (int f = 0; f < DSECONDS * FPS; f++) {
        int rx = (f / 2) % (DW - RS), ry = DH / 6;
        int bx = DW - BS - DW / 8, by = (f / 4) % (DH - GB - BS);
        for (int y = 0; y < DH; y++)
            for (int x = 0; x < DW; x++) {
                uint8_t *px = &rgb[(y * DW + x) * 3];
                s = s * 1664525u + 1013904223u;
                uint8_t g = (uint8_t)(90 + (s >> 26));
                int cls = 0;
                if (y >= DH - GB) cls = 3;
                else if (x >= bx && x < bx + BS && y >= by && y < by + BS) cls = 2;
                else if (x >= rx && x < rx + RS && y >= ry && y < ry + RS) cls = 1;
                static const uint8_t col[4][3] = {{0, 0, 0}, {230, 30, 30}, {30, 30, 230},
                                                  {30, 200, 30}};
                for (int q = 0; q < 3; q++) px[q] = cls ? col[cls][q] : g;
                lab[y * DW + x] = (uint8_t)cls;
            }
        char path[4400];
        snprintf(path, sizeof path, "%s/f%05d.png", d_frames, f);
        CHECK(ams_png_write_rgb(path, rgb, DW, DH, &err) == AMS_OK);
        if (f % 3 == 0) CHECK(ams_label_writer_append(lw, (double)f / FPS, lab, &err) == AMS_OK);
    }
    CHECK(ams_label_writer_close(lw, &err) == AMS_OK);
    ams_label_writer_free(lw);
    return 0;
}

static const ams_backend *cpu_be; /* the cpu backend, one thread */

static ams_params *deeplab_params(void) {
    ams_err err = {0};
    ams_params *p = ams_params_new();
    ams_deeplab_config cfg = {DCLASSES, 16};
    if (!p || ams_deeplab_mnv2_declare(p, &cfg, &err) != AMS_OK ||
        ams_params_alloc(p, &err) != AMS_OK) {
        fprintf(stderr, "deeplab params: %s\n", err.msg);
        ams_params_free(p);
        return NULL;
    }
    ams_deeplab_mnv2_init_random(p, 5);
    return p;
}

static void deeplab_config(ams_sim_config *c, ams_sim_mode m) {
    ams_sim_config_default(c);
    c->mode = m;
    c->width = DW;
    c->height = DH;
    c->uplink_kbps = 0; /* lossless frames */
    c->downlink_kbps = 0;
    c->send_period = 1;
    c->first_send = 1;
    c->train_period = 1.5;
    c->first_train = 1;
    c->memory_len = 6;
    c->eval_fps = EVAL_FPS;
    c->compute_s = 0.5;
    c->atr = 0;
    c->train.iters = 8;
    c->train.batch = 2;
    c->train.lr = 2e-3f;
    c->train.be = cpu_be; /* what `ams sim` runs (the ref kernels take minutes under ASan) */
    c->train.restore = 0;
    c->train.strategy = AMS_STRATEGY_COORD;
    c->train.fraction = 0.2;
}

static ams_status deeplab_run(ams_sim_config *c, ams_sim_result **out, ams_err *err) {
    ams_sim_deeplab d;
    ams_sim_deeplab_setup(&d, DCLASSES, 16, c);
    ams_label_reader *lr = NULL;
    ams_status s = ams_label_reader_open(&lr, d_labels, err);
    ams_params *pe = deeplab_params(), *ps = deeplab_params();
    ams_sim_student e = {pe, ams_sim_deeplab_infer, ams_sim_deeplab_train, &d};
    ams_sim_student sv = {ps, ams_sim_deeplab_infer, ams_sim_deeplab_train, &d};
    if (s == AMS_OK && (!pe || !ps)) s = ams_err_set(err, AMS_E_NOMEM, "params");
    if (s == AMS_OK) s = ams_sim_run(c, d_frames, lr, &e, &sv, NULL, NULL, out, err);
    ams_params_free(pe);
    ams_params_free(ps);
    ams_label_reader_free(lr);
    return s;
}

static int test_deeplab_learns(void) {
    CHECK(make_deeplab_data() == 0);
    ams_err err = {0};
    ams_sim_config c;
    ams_sim_result *pre = NULL, *ams = NULL;
    deeplab_config(&c, AMS_SIM_PRETRAINED);
    CHECKF(deeplab_run(&c, &pre, &err) == AMS_OK, "%s", err.msg);
    CHECK(c.train.input_scale == 1.0f); /* ams_sim_deeplab_setup: raw RGB */
    CHECK(pre->updates == 0 && pre->eval_frames == DSECONDS * EVAL_FPS);
    deeplab_config(&c, AMS_SIM_AMS);
    CHECKF(deeplab_run(&c, &ams, &err) == AMS_OK, "%s", err.msg);
    fprintf(stderr, "  deeplab: pretrained mIoU %.4f (after %.4f), ams %.4f (after %.4f), "
                    "%d updates, %d phases, %.1f s server\n",
            pre->miou, pre->miou_after, ams->miou, ams->miou_after, ams->updates, ams->nphases,
            ams->server_measured_s);
    for (int i = 0; i < ams->nphases; i++)
        fprintf(stderr, "    phase %d at %.1f s: %zu frames, loss %.4f -> %.4f\n", i,
                ams->phases[i].start, ams->phases[i].horizon, ams->phases[i].loss_first,
                ams->phases[i].loss_last);
    CHECK(ams->nphases >= 3 && ams->updates >= 3 && ams->rejected == 0);
    CHECK(ams->seconds[DSECONDS - 1].version == ams->updates);
    /* training lowers the loss: within the first phase, and every later phase starts (on
     * newer frames, from the trained weights: no restore) well below where the first did */
    const ams_sim_phase *p0 = &ams->phases[0];
    CHECK(p0->loss_last < p0->loss_first);
    for (int i = 1; i < ams->nphases; i++)
        CHECKF(ams->phases[i].loss_first < 0.75 * p0->loss_first, "phase %d starts at %.4f", i,
               ams->phases[i].loss_first);
    /* and the edge gets better than pretrained */
    CHECKF(ams->miou_after > pre->miou_after + 0.05, "ams %.4f vs pretrained %.4f",
           ams->miou_after, pre->miou_after);
    ams_sim_result_free(pre);
    ams_sim_result_free(ams);
    return 0;
}

/* With a subset the loss and the metric ignore the other classes, and the edge never
 * predicts them. */
static int test_deeplab_subset(void) {
    CHECK(make_deeplab_data() == 0);
    ams_err err = {0};
    ams_sim_config c;
    ams_sim_result *r = NULL;
    deeplab_config(&c, AMS_SIM_AMS);
    c.nsubset = 2;
    c.subset[0] = 1;
    c.subset[1] = 2;
    c.record = 1;
    CHECKF(deeplab_run(&c, &r, &err) == AMS_OK, "%s", err.msg);
    fprintf(stderr, "  deeplab subset {1,2}: mIoU %.4f (after %.4f), %d updates\n", r->miou,
            r->miou_after, r->updates);
    CHECK(r->updates >= 1 && r->rejected == 0 && isfinite(r->miou));
    CHECK(r->phases[0].loss_last < r->phases[0].loss_first);
    CHECK(preds_within(r, c.subset, 2) == 0);
    ams_sim_result_free(r);
    /* a subset class the DeepLab student does not have: its builder refuses */
    ams_sim_deeplab d;
    ams_sim_deeplab_setup(&d, DCLASSES, 16, &c);
    d.subset[1] = DCLASSES;
    ams_params *p = deeplab_params();
    CHECK(p != NULL);
    ams_graph *g = ams_graph_new(p);
    int x = -1, y = -1, l = -1;
    CHECK(ams_sim_deeplab_train(&d, g, 1, DH, DW, &x, &l, &y, &err) == AMS_E_INVAL);
    ams_graph_free(g);
    ams_params_free(p);
    return 0;
}

int main(int argc, char **argv) {
    ams_err err = {0};
    cpu_be = ams_backend_by_name("cpu", 1, &err);
    if (!cpu_be) {
        fprintf(stderr, "cpu backend: %s\n", err.msg);
        return 1;
    }
    static const check_case cases[] = {
        {"metric_subset", test_metric_subset},
        {"deeplab_learns", test_deeplab_learns},
        {"deeplab_subset", test_deeplab_subset},
    };
    int rc = check_run(cases, sizeof cases / sizeof cases[0], argc, argv);
    ams_backend_free(cpu_be);
    if (dir[0]) {
        char cmd[4400];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", dir);
    }
    return rc;
}
