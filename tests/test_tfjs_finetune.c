/* test_tfjs_finetune.c - fine-tuning an imported TF.js model: the MediaPipe selfie
 * student is trained for a few Adam steps on the RVM teacher's labels (person =
 * alpha > 0.5) of real vtest.avi frames, with a stable BCE on its pre-sigmoid logit.
 * Proves (1) the loss falls over the steps and (2) the backward pass through the whole
 * imported graph matches central finite differences along each tensor's gradient
 * direction (the independent oracle). Models and video come from tools/fetch-models
 * and tools/fetch-videos (cached); frames are decoded by ffmpeg. The test skips, saying
 * why, only when those cannot be fetched. */
#define _POSIX_C_SOURCE 200809L /* popen */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ams/optim.h"
#include "ams/tfjs.h"
#include "check.h"
#include "gradcheck.h"

enum { NB = 4, H = 192, W = 256, FH = H / 2, FW = W / 2, STEPS = 6 };

typedef struct assets {
    char selfie[2048], rvm[2048], video[2048];
} assets;

/* Runs cmd; returns the value of the line "KEY PATH" (or the last line when key is
 * NULL) in out; 0 if the command fails or prints no such line. */
static int command_path(const char *cmd, const char *key, char *out, size_t cap) {
    FILE *f = popen(cmd, "r");
    if (!f) return 0;
    char line[2048];
    out[0] = 0;
    size_t kl = key ? strlen(key) : 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        if (!key) snprintf(out, cap, "%s", line);
        else if (!strncmp(line, key, kl) && line[kl] == ' ') snprintf(out, cap, "%s", line + kl + 1);
    }
    int rc = pclose(f);
    return rc == 0 && out[0];
}

static int get_assets(assets *a) {
    return command_path(AMS_SOURCE_DIR "/tools/fetch-models 2>/dev/null", "selfie", a->selfie,
                        sizeof a->selfie) &&
           command_path(AMS_SOURCE_DIR "/tools/fetch-models 2>/dev/null", "rvm", a->rvm,
                        sizeof a->rvm) &&
           command_path(AMS_SOURCE_DIR "/tools/fetch-videos 2>/dev/null", NULL, a->video,
                        sizeof a->video);
}

/* NB frames (100, 200, 300, 400: pedestrians) of the video at WxH as RGB/255. */
static int read_frames(const char *video, float *x) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "ffmpeg -loglevel error -i '%s' -vf \"select='eq(n\\,100)+eq(n\\,200)+eq(n\\,300)+"
             "eq(n\\,400)',scale=%d:%d\" -vsync 0 -frames:v %d -f rawvideo -pix_fmt rgb24 - "
             "2>/dev/null",
             video, W, H, NB);
    FILE *f = popen(cmd, "r");
    if (!f) return 0;
    size_t n = (size_t)NB * H * W * 3;
    uint8_t *rgb = malloc(n);
    size_t got = rgb ? fread(rgb, 1, n, f) : 0;
    int rc = pclose(f);
    if (rc == 0 && got == n)
        for (size_t i = 0; i < n; i++) x[i] = rgb[i] / 255.0f;
    free(rgb);
    return rc == 0 && got == n;
}

/* RVM's pha for the batch (fresh state, downsample_ratio 1), thresholded at 0.5. */
static int teacher_labels(const char *rvm, const float *x, uint8_t *labels, int *positives) {
    ams_err err = {0};
    ams_tfjs_model *m = NULL;
    CHECKF(ams_tfjs_load(rvm, &m, &err) == AMS_OK, "%s", err.msg);
    ams_graph *g = ams_graph_new(ams_tfjs_params(m));
    CHECK(g);
    static const ams_tfjs_feed feeds[] = {{"r1i", 0}, {"r2i", 0}, {"r3i", 0}, {"r4i", 0},
                                          {"downsample_ratio", 1}};
    const char *outs[1] = {"pha"};
    int in = -1, out = -1;
    CHECKF(ams_tfjs_build(m, g, &(ams_tfjs_build_opts){NB, H, W, feeds, 5}, outs, 1, &out, &in,
                          &err) == AMS_OK,
           "%s", err.msg);
    CHECKF(ams_graph_plan(g, AMS_PLAN_INFER, &err) == AMS_OK, "%s", err.msg);
    CHECK(ams_graph_set_input(g, in, x, &err) == AMS_OK);
    CHECKF(ams_graph_forward(g, ams_backend_ref(), &err) == AMS_OK, "%s", err.msg);
    const float *pha = ams_graph_value(g, out);
    CHECK(pha);
    *positives = 0;
    for (int i = 0; i < NB * H * W; i++) {
        labels[i] = pha[i] > 0.5f;
        *positives += labels[i];
    }
    ams_graph_free(g);
    ams_tfjs_free(m);
    return 0;
}

typedef struct trainer {
    ams_graph *g;
    int in, lab, loss;
} trainer;

/* The selfie student's training graph: logit -> BCE against labels. */
static int build_trainer(ams_tfjs_model *m, int n, int h, int w, trainer *t) {
    ams_err err = {0};
    const char *logit = ams_tfjs_logit_name(m, ams_tfjs_output_key(m, 0));
    CHECKF(logit, "the selfie output is not a Sigmoid");
    t->g = ams_graph_new(ams_tfjs_params(m));
    CHECK(t->g);
    const char *outs[1] = {logit};
    int lg = -1;
    CHECKF(ams_tfjs_build(m, t->g, &(ams_tfjs_build_opts){n, h, w, NULL, 0}, outs, 1, &lg, &t->in,
                          &err) == AMS_OK,
           "%s", err.msg);
    t->lab = ams_graph_labels(t->g, "labels", n, h, w);
    t->loss = ams_graph_bce_logits(t->g, lg, t->lab);
    CHECKF(ams_graph_plan(t->g, AMS_PLAN_TRAIN, &err) == AMS_OK, "%s", err.msg);
    return 0;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int test_finetune_selfie_on_rvm_labels(void) {
    assets a;
    if (!get_assets(&a)) {
        printf("SKIP finetune_selfie_on_rvm_labels: models/video are not cached and cannot be "
               "fetched (tools/fetch-models, tools/fetch-videos)\n");
        return 0;
    }
    float *x = malloc((size_t)NB * H * W * 3 * sizeof(float));
    float *xs = malloc((size_t)FH * FW * 3 * sizeof(float));
    uint8_t *labels = malloc((size_t)NB * H * W), ls[FH * FW];
    CHECK(x && xs && labels);
    if (!read_frames(a.video, x)) {
        printf("SKIP finetune_selfie_on_rvm_labels: ffmpeg could not decode %s\n", a.video);
        free(x), free(xs), free(labels);
        return 0;
    }
    int pos = 0;
    double t0 = now();
    CHECK(teacher_labels(a.rvm, x, labels, &pos) == 0);
    fprintf(stderr, "RVM labels: %d person pixels of %d (%.1f s)\n", pos, NB * H * W, now() - t0);
    CHECKF(pos > 50, "the teacher found almost no people (%d pixels)", pos);

    ams_err err = {0};
    ams_tfjs_model *m = NULL;
    CHECKF(ams_tfjs_load(a.selfie, &m, &err) == AMS_OK, "%s", err.msg);
    ams_params *p = ams_tfjs_params(m);

    /* gradients: one frame, half size (2x2 subsampled image and labels) */
    for (int y = 0; y < FH; y++)
        for (int xx = 0; xx < FW; xx++) {
            ls[y * FW + xx] = labels[(2 * y) * W + 2 * xx];
            for (int c = 0; c < 3; c++) xs[(y * FW + xx) * 3 + c] = x[((2 * y) * W + 2 * xx) * 3 + c];
        }
    trainer small = {0};
    CHECK(build_trainer(m, 1, FH, FW, &small) == 0);
    CHECK(ams_graph_set_input(small.g, small.in, xs, &err) == AMS_OK);
    CHECK(ams_graph_set_labels(small.g, small.lab, ls, &err) == AMS_OK);
    t0 = now();
    CHECK(gradcheck_directions(small.g, small.loss, 0.25, 0.01, 1e-3f) == 0);
    fprintf(stderr, "finite-difference check: %.1f s\n", now() - t0);
    ams_graph_free(small.g);
    t0 = now();

    /* a few Adam steps on the batch */
    trainer t = {0};
    CHECK(build_trainer(m, NB, H, W, &t) == 0);
    CHECK(ams_graph_set_input(t.g, t.in, x, &err) == AMS_OK);
    CHECK(ams_graph_set_labels(t.g, t.lab, labels, &err) == AMS_OK);
    ams_adam *opt = ams_adam_new(p->total, &(ams_adam_config){1e-4f, 0.9f, 0.999f, 1e-8f});
    CHECK(opt);
    double losses[STEPS + 1];
    for (int s = 0; s <= STEPS; s++) {
        ams_params_zero_grads(p);
        CHECKF(ams_graph_forward(t.g, ams_backend_ref(), &err) == AMS_OK, "%s", err.msg);
        losses[s] = ams_graph_value(t.g, t.loss)[0];
        CHECKF(isfinite(losses[s]), "step %d: loss %g", s, losses[s]);
        fprintf(stderr, "step %d: loss %.5f\n", s, losses[s]);
        if (s == STEPS) break;
        CHECKF(ams_graph_backward(t.g, ams_backend_ref(), t.loss, &err) == AMS_OK, "%s", err.msg);
        ams_adam_step(opt, p->values, p->grads, NULL);
    }
    /* the loss falls steadily, and by a clear margin overall */
    for (int s = 1; s <= STEPS; s++) CHECKF(losses[s] < losses[s - 1], "step %d rose", s);
    CHECKF(losses[STEPS] < 0.8 * losses[0], "loss %g -> %g", losses[0], losses[STEPS]);
    fprintf(stderr, "%d Adam steps: %.1f s\n", STEPS, now() - t0);
    ams_adam_free(opt);
    ams_graph_free(t.g);
    ams_tfjs_free(m);
    free(x), free(xs), free(labels);
    return 0;
}

int main(int argc, char **argv) {
    static const check_case cases[] = {
        {"finetune_selfie_on_rvm_labels", test_finetune_selfie_on_rvm_labels},
    };
    return check_run(cases, sizeof cases / sizeof cases[0], argc, argv);
}
