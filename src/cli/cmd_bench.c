/* cmd_bench.c - `ams bench`: times inference or a training step (forward, backward,
 * Adam) of a built-in architecture (--arch) or an imported model (--model) on random data;
 * optionally profiles it per node; last stdout line is JSON. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "ams/optim.h"
#include "ams/rng.h"
#include "ams/tfjs.h"
#include "ams/trainer.h"
#include "cli/cli_common.h"
#include "cli/cli_model.h"
#include "cli/commands.h"

static const char *const HELP =
    "usage: ams bench --arch ARCH --os {8,16} --classes C --batch B --height H\n"
    "                 --width W --mode infer|train [--reps N] [--threads N] [--backend ref|cpu]\n"
    "                 [--weights W.safetensors] [--profile]\n"
    "   or: ams bench --model M --batch B --height H --width W --mode infer|train\n"
    "                 [--reps N] [--threads N] [--backend ref|cpu] [--feed NAME=VALUE ...]\n"
    "                 [--profile]\n"
    "  ARCH: deeplabv3-mnv2 (DeepLabV3, MobileNetV2) or deeplabv3plus-xception65\n"
    "        (DeepLabV3+, Xception65), with TF DeepLab variable names.\n"
    "  M: an imported TF.js model.json, or a name from tools/fetch-models (selfie, rvm).\n"
    "  Random inputs (and weights unless --weights or --model); one warm-up, then N timed\n"
    "  repetitions (default 10).\n"
    "  train = forward + loss + backward + one Adam step (every trainable tensor):\n"
    "    --arch: softmax cross-entropy, BatchNorm frozen;\n"
    "    --model: binary cross-entropy on the logit of the model's Sigmoid output, as the\n"
    "    AMS trainer trains it (random 0/1 labels).\n"
    "  --profile: time every node of the timed repetitions and print, on stderr, the time\n"
    "    per op kind and the slowest nodes with GFLOP/s and GB/s moved.\n"
    "  Prints a human line, then one JSON line: ms_per_image (median), ms_min, ms_max,\n"
    "  images_per_s, gflops, peak_rss_mb, arena_mb.\n";

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* One benchmark: a planned graph with its input (and labels + loss when training). */
typedef struct bench {
    ams_graph *g;
    ams_params *p;
    const ams_backend *be;
    int train, n, h, w, channels;
    int xin, lin, loss;
    long reps;
    int profile;
    int label_classes; /* labels drawn from 0..label_classes-1 */
    float x_scale;     /* inputs uniform in [0, x_scale) */
} bench;

/* Sets random inputs, runs one warm-up and b->reps timed repetitions into ms (sorted);
 * with b->profile prints the graph's profile and the optimizer's share to stderr. */
static ams_status bench_run(bench *b, double *ms, ams_err *err) {
    ams_status s = AMS_E_NOMEM;
    size_t npix = (size_t)b->n * b->h * b->w, nx = npix * (size_t)b->channels;
    float *x = malloc((nx ? nx : 1) * sizeof(float));
    uint8_t *lab = malloc(npix ? npix : 1);
    uint8_t *mask = malloc(b->p->total ? b->p->total : 1);
    ams_adam *opt = b->train ? ams_adam_new(b->p->total, NULL) : NULL;
    if (!x || !lab || !mask || (b->train && !opt)) {
        ams_err_set(err, AMS_E_NOMEM, "out of memory");
        goto done;
    }
    ams_rng r;
    ams_rng_seed(&r, 42);
    for (size_t i = 0; i < nx; i++) x[i] = b->x_scale * ams_rng_uniform(&r);
    for (size_t i = 0; i < npix; i++) lab[i] = (uint8_t)(ams_rng_u64(&r) % (uint64_t)b->label_classes);
    /* Adam updates trainable tensors only */
    for (int i = 0; i < b->p->count; i++)
        memset(mask + b->p->info[i].offset, b->p->info[i].trainable, (size_t)b->p->info[i].numel);
    if ((s = ams_graph_set_input(b->g, b->xin, x, err)) != AMS_OK ||
        (b->train && (s = ams_graph_set_labels(b->g, b->lin, lab, err)) != AMS_OK) ||
        (b->profile && (s = ams_graph_set_profile(b->g, 1, err)) != AMS_OK))
        goto done;
    double opt_s = 0;
    for (long rep = -1; rep < b->reps; rep++) { /* rep -1: warm-up */
        if (rep == 0) ams_graph_profile_reset(b->g), opt_s = 0;
        double t0 = cli_now();
        if ((s = ams_graph_forward(b->g, b->be, err)) != AMS_OK) goto done;
        if (b->train) {
            double z0 = cli_now();
            ams_params_zero_grads(b->p);
            double z1 = cli_now();
            if ((s = ams_graph_backward(b->g, b->be, b->loss, err)) != AMS_OK) goto done;
            double a0 = cli_now();
            ams_adam_step(opt, b->p->values, b->p->grads, mask);
            opt_s += (z1 - z0) + (cli_now() - a0);
        }
        if (rep >= 0) ms[rep] = (cli_now() - t0) * 1e3;
    }
    qsort(ms, (size_t)b->reps, sizeof *ms, cmp_double);
    if (b->profile) {
        ams_graph_profile_report(b->g, stderr, 20);
        if (b->train)
            fprintf(stderr, "  outside the graph: zeroing parameter gradients + Adam %.3f ms/step\n",
                    opt_s * 1e3 / (double)b->reps);
    }
    s = AMS_OK;
done:
    ams_adam_free(opt);
    free(mask);
    free(x);
    free(lab);
    return s;
}

/* The human line and the JSON line; `what` is the JSON fragment naming the model. */
static void bench_print(const bench *b, const char *mode, const char *what, const double *ms) {
    int n = b->n;
    long reps = b->reps;
    double med = ms[reps / 2] / n;
    double gflop = ams_graph_forward_flops(b->g) * (b->train ? 3.0 : 1.0) / n / 1e9;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("%s: %.3f ms/image (min %.3f, max %.3f), %.1f images/s, %.1f GFLOP/s\n", mode, med,
           ms[0] / n, ms[reps - 1] / n, 1e3 / med, gflop / (med / 1e3));
    printf("{\"mode\":\"%s\",%s,\"batch\":%d,"
           "\"height\":%d,\"width\":%d,\"backend\":\"%s\",\"threads\":%ld,\"reps\":%ld,"
           "\"ms_per_image\":%.4f,\"ms_min\":%.4f,\"ms_max\":%.4f,\"ms_per_step\":%.4f,"
           "\"images_per_s\":%.3f,\"gflop_per_image\":%.4f,\"gflops\":%.3f,"
           "\"peak_rss_mb\":%.1f,\"arena_mb\":%.1f}\n",
           mode, what, n, b->h, b->w, b->be->name, (long)ams_backend_threads(b->be), reps, med,
           ms[0] / n, ms[reps - 1] / n, ms[reps / 2], 1e3 / med, gflop, gflop / (med / 1e3),
           ru.ru_maxrss / 1024.0, ams_graph_arena_bytes(b->g) / 1048576.0);
}

/* `ams bench --model M ...`: the imported model as the trainer builds it. */
static int bench_model(const char *cmd, const char *model, bench *b, const char *mode,
                       char **feed_text, int nfeed) {
    cli_model cm;
    int rc = cli_model_resolve(cmd, model, &cm);
    if (rc != CLI_OK) return rc;
    for (int i = 0; i < nfeed; i++)
        if ((rc = cli_model_feed(cmd, &cm, feed_text[i])) != CLI_OK) return rc;
    ams_err err = {0};
    ams_tfjs_model *m = NULL;
    double *ms = calloc((size_t)b->reps, sizeof(double));
    if (!ms) {
        ams_err_set(&err, AMS_E_NOMEM, "out of memory");
        return cli_fail(cmd, &err, NULL);
    }
    if (ams_tfjs_load(cm.path, &m, &err) != AMS_OK) goto fail;
    ams_tfjs_image_input(m, &b->channels, NULL, NULL);
    b->p = ams_tfjs_params(m);
    b->g = ams_graph_new(b->p);
    if (!b->g) {
        ams_err_set(&err, AMS_E_NOMEM, "out of memory");
        goto fail;
    }
    if (b->train) {
        if (ams_trainer_tfjs_build(m, b->g, b->n, b->h, b->w, &b->xin, &b->lin, &b->loss, &err) !=
            AMS_OK)
            goto fail_path;
    } else {
        ams_tfjs_build_opts o = {b->n, b->h, b->w, cm.feeds, cm.nfeeds};
        const char *outs[1] = {cm.output};
        int out = -1;
        if (ams_tfjs_build(m, b->g, &o, cm.output ? outs : NULL, 1, &out, &b->xin, &err) != AMS_OK)
            goto fail_path;
    }
    if (ams_graph_plan(b->g, b->train ? AMS_PLAN_TRAIN : AMS_PLAN_INFER, &err) != AMS_OK) goto fail;
    fprintf(stderr, "ams bench: %s, %s, batch %d, %dx%d, %s backend, %ld rep(s)\n", model, mode,
            b->n, b->h, b->w, b->be->name, b->reps);
    if (bench_run(b, ms, &err) != AMS_OK) goto fail;
    char what[512], esc[256];
    size_t k = 0;
    for (const char *c = model; *c && k + 2 < sizeof esc; c++) { /* a path as a JSON string */
        if (*c == '"' || *c == '\\') esc[k++] = '\\';
        esc[k++] = (char)((unsigned char)*c < 0x20 ? '?' : *c);
    }
    esc[k] = 0;
    snprintf(what, sizeof what, "\"model\":\"%s\"", esc);
    bench_print(b, mode, what, ms);
    rc = CLI_OK;
    goto done;
fail_path:
    ams_err_prefix(&err, "%s", cm.path);
fail:
    rc = cli_fail(cmd, &err, NULL);
done:
    ams_graph_free(b->g);
    ams_tfjs_free(m);
    free(ms);
    return rc;
}

int ams_cmd_bench(int argc, char **argv) {
    const char *cmd = "bench";
    cli_deeplab m = {0};
    const char *mode = NULL, *model = NULL;
    long batch = 1, height = 0, width = 0, reps = 10;
    int profile = 0, nfeed = 0;
    char *feed_text[CLI_MAX_FEEDS];
    for (int i = 1; i < argc; i++) {
        int r = cli_deeplab_flag(cmd, &m, argc, argv, &i);
        if (r < 0) return CLI_USAGE;
        if (r > 0) continue;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(HELP, stdout);
            return CLI_OK;
        }
        if (!strcmp(argv[i], "--profile")) {
            profile = 1;
            continue;
        }
        long *num = NULL, lo = 1, hi = 0;
        if (!strcmp(argv[i], "--batch")) num = &batch, hi = 1024;
        else if (!strcmp(argv[i], "--height")) num = &height, hi = 8192;
        else if (!strcmp(argv[i], "--width")) num = &width, hi = 8192;
        else if (!strcmp(argv[i], "--reps")) num = &reps, hi = 100000;
        if (i + 1 < argc && !strcmp(argv[i], "--mode")) {
            mode = argv[++i];
        } else if (i + 1 < argc && !strcmp(argv[i], "--model")) {
            model = argv[++i];
        } else if (i + 1 < argc && !strcmp(argv[i], "--feed")) {
            if (nfeed >= CLI_MAX_FEEDS) return cli_usage_error(cmd, "more than %d --feed", CLI_MAX_FEEDS);
            feed_text[nfeed++] = argv[++i];
        } else if (num && i + 1 < argc) {
            if (!cli_int(argv[i + 1], lo, hi, num))
                return cli_usage_error(cmd, "%s: '%s' is not an integer in %ld..%ld", argv[i],
                                       argv[i + 1], lo, hi);
            i++;
        } else {
            return cli_usage_error(cmd, "unknown or incomplete option '%s'", argv[i]);
        }
    }
    if (!mode || (strcmp(mode, "infer") && strcmp(mode, "train")))
        return cli_usage_error(cmd, "--mode infer|train is required");
    if (!height || !width) return cli_usage_error(cmd, "--height and --width are required");
    if (model && (m.arch || m.os || m.classes || m.weights))
        return cli_usage_error(cmd, "--model excludes --arch, --os, --classes and --weights");
    if (!model && nfeed) return cli_usage_error(cmd, "--feed needs --model");
    const ams_backend *be = cli_backend_threads(cmd, m.backend, m.threads);
    if (!be) return CLI_USAGE;
    bench b = {.be = be, .train = !strcmp(mode, "train"), .n = (int)batch, .h = (int)height,
               .w = (int)width, .reps = reps, .profile = profile, .channels = 3};
    if (model) {
        b.label_classes = 2, b.x_scale = 1.0f; /* RGB/255, labels 0/1 */
        return bench_model(cmd, model, &b, mode, feed_text, nfeed);
    }

    int rc = cli_deeplab_params(cmd, &m, &b.p);
    if (rc != CLI_OK) return rc;
    ams_err err = {0};
    ams_deeplab_config cfg = {(int)m.classes, (int)m.os};
    double *ms = calloc((size_t)reps, sizeof(double));
    b.g = ams_graph_new(b.p);
    b.label_classes = (int)m.classes, b.x_scale = 255.0f; /* raw RGB */
    int logits;
    if (!ms || !b.g) {
        ams_err_set(&err, AMS_E_NOMEM, "out of memory");
        goto fail;
    }
    if (cli_deeplab_build(&m, b.g, &cfg, b.n, b.h, b.w, b.train, &b.xin, &logits, &err) != AMS_OK)
        goto fail;
    if (b.train) {
        b.lin = ams_graph_labels(b.g, "labels", b.n, b.h, b.w);
        b.loss = ams_graph_softmax_ce(b.g, logits, b.lin, NULL, 0);
    }
    if (ams_graph_plan(b.g, b.train ? AMS_PLAN_TRAIN : AMS_PLAN_INFER, &err) != AMS_OK) goto fail;
    fprintf(stderr, "ams bench: %s, batch %d, %dx%d, OS %ld, %s backend, %ld rep(s)\n", mode, b.n,
            b.h, b.w, m.os, be->name, reps);
    if (bench_run(&b, ms, &err) != AMS_OK) goto fail;
    char what[256];
    snprintf(what, sizeof what, "\"arch\":\"%s\",\"os\":%ld,\"classes\":%ld", m.arch, m.os,
             m.classes);
    bench_print(&b, mode, what, ms);
    rc = CLI_OK;
    goto done;
fail:
    rc = cli_fail(cmd, &err, NULL);
done:
    ams_graph_free(b.g);
    ams_params_free(b.p);
    free(ms);
    return rc;
}
