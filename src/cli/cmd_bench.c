/* cmd_bench.c - `ams bench`: times inference or a training step (forward, backward,
 * Adam) of a built-in architecture (--arch) or an imported model (--model) on random data;
 * optionally profiles it per node; last stdout line is JSON. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "ams/data_parallel.h"
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
    "                 [--weights W.safetensors] [--replicas R] [--profile]\n"
    "   or: ams bench --model M --batch B --height H --width W --mode infer|train\n"
    "                 [--reps N] [--threads N] [--backend ref|cpu] [--feed NAME=VALUE ...]\n"
    "                 [--replicas R] [--profile]\n"
    "  ARCH: deeplabv3-mnv2 (DeepLabV3, MobileNetV2) or deeplabv3plus-xception65\n"
    "        (DeepLabV3+, Xception65), with TF DeepLab variable names.\n"
    "  M: an imported TF.js model.json, or a name from tools/fetch-models (selfie, rvm).\n"
    "  Random inputs (and weights unless --weights or --model); one warm-up, then N timed\n"
    "  repetitions (default 10).\n"
    "  train = forward + loss + backward + one Adam step (every trainable tensor):\n"
    "    --arch: softmax cross-entropy, BatchNorm frozen;\n"
    "    --model: binary cross-entropy on the logit of the model's Sigmoid output, as the\n"
    "    AMS trainer trains it (random 0/1 labels).\n"
    "    The batch is split over R replicas of the graph, one per thread, as the trainer\n"
    "    does (--replicas: default 0 = one per thread of the cpu backend; 1 = one graph\n"
    "    whose kernels use every thread).\n"
    "  --profile: time every node of the timed repetitions and print, on stderr, the time\n"
    "    per op kind and the slowest nodes with GFLOP/s and GB/s moved (training with\n"
    "    replicas: the first replica's graph, i.e. its share of the batch).\n"
    "  Prints a human line, then one JSON line: ms_per_image (median), ms_min, ms_max,\n"
    "  images_per_s, gflops, peak_rss_mb, arena_mb, replicas.\n";

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* One benchmark: a planned inference graph with its input, or a training step over
 * replicas (data_parallel.h) whose first graph is g. */
typedef struct bench {
    ams_graph *g;
    ams_dp *dp;
    ams_params *p;
    const ams_backend *be;
    int train, n, h, w, channels;
    int replicas;      /* asked for: 0 = auto */
    int xin;
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
    if ((!b->train && (s = ams_graph_set_input(b->g, b->xin, x, err)) != AMS_OK) ||
        (b->profile && (s = ams_graph_set_profile(b->g, 1, err)) != AMS_OK))
        goto done;
    double opt_s = 0;
    for (long rep = -1; rep < b->reps; rep++) { /* rep -1: warm-up */
        if (rep == 0) ams_graph_profile_reset(b->g), opt_s = 0;
        double t0 = cli_now();
        if (b->train) { /* forward, loss, backward (gradients overwritten), Adam */
            double loss;
            if ((s = ams_dp_step(b->dp, x, lab, &loss, err)) != AMS_OK) goto done;
            double a0 = cli_now();
            ams_adam_step(opt, b->p->values, b->p->grads, mask);
            opt_s += cli_now() - a0;
        } else if ((s = ams_graph_forward(b->g, b->be, err)) != AMS_OK) {
            goto done;
        }
        if (rep >= 0) ms[rep] = (cli_now() - t0) * 1e3;
    }
    qsort(ms, (size_t)b->reps, sizeof *ms, cmp_double);
    if (b->profile) {
        ams_graph_profile_report(b->g, stderr, getenv("AMS_TOP") ? atoi(getenv("AMS_TOP")) : 20);
        if (b->train)
            fprintf(stderr, "  outside the graph: Adam %.3f ms/step\n",
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
    int n = b->n, nr = b->train ? ams_dp_count(b->dp) : 1;
    long reps = b->reps;
    double med = ms[reps / 2] / n, flops = 0, arena = 0;
    for (int r = 0; r < nr; r++) { /* the replicas' graphs together: the whole batch */
        const ams_graph *g = b->train ? ams_dp_graph(b->dp, r) : b->g;
        flops += ams_graph_forward_flops(g);
        arena += (double)ams_graph_arena_bytes(g);
    }
    double gflop = flops * (b->train ? 3.0 : 1.0) / n / 1e9;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("%s: %.3f ms/image (min %.3f, max %.3f), %.1f images/s, %.1f GFLOP/s\n", mode, med,
           ms[0] / n, ms[reps - 1] / n, 1e3 / med, gflop / (med / 1e3));
    printf("{\"mode\":\"%s\",%s,\"batch\":%d,"
           "\"height\":%d,\"width\":%d,\"backend\":\"%s\",\"threads\":%ld,\"reps\":%ld,"
           "\"ms_per_image\":%.4f,\"ms_min\":%.4f,\"ms_max\":%.4f,\"ms_per_step\":%.4f,"
           "\"images_per_s\":%.3f,\"gflop_per_image\":%.4f,\"gflops\":%.3f,"
           "\"peak_rss_mb\":%.1f,\"arena_mb\":%.1f,\"replicas\":%d}\n",
           mode, what, n, b->h, b->w, b->be->name, (long)ams_backend_threads(b->be), reps, med,
           ms[0] / n, ms[reps - 1] / n, ms[reps / 2], 1e3 / med, gflop, gflop / (med / 1e3),
           ru.ru_maxrss / 1024.0, arena / 1048576.0, nr);
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
    if (b->train) {
        if (ams_dp_new(&b->dp, b->p, ams_trainer_tfjs_build, m, b->n, b->h, b->w, b->replicas,
                       b->be, &err) != AMS_OK)
            goto fail_path;
        b->g = ams_dp_graph(b->dp, 0);
    } else {
        b->g = ams_graph_new(b->p);
        if (!b->g) {
            ams_err_set(&err, AMS_E_NOMEM, "out of memory");
            goto fail;
        }
        ams_tfjs_build_opts o = {b->n, b->h, b->w, cm.feeds, cm.nfeeds};
        const char *outs[1] = {cm.output};
        int out = -1;
        if (ams_tfjs_build(m, b->g, &o, cm.output ? outs : NULL, 1, &out, &b->xin, &err) != AMS_OK)
            goto fail_path;
    }
    if (!b->train && ams_graph_plan(b->g, AMS_PLAN_INFER, &err) != AMS_OK) goto fail;
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
    if (b->train) ams_dp_free(b->dp);
    else ams_graph_free(b->g);
    ams_tfjs_free(m);
    free(ms);
    return rc;
}

/* The DeepLab training graph (softmax cross-entropy, batch norm frozen) for one replica. */
typedef struct deeplab_build {
    cli_deeplab *m;
    ams_deeplab_config cfg;
} deeplab_build;

static ams_status build_deeplab_train(void *ctx, ams_graph *g, int n, int h, int w, int *image,
                                      int *labels, int *loss, ams_err *err) {
    deeplab_build *d = ctx;
    int logits;
    AMS_TRY(cli_deeplab_build(d->m, g, &d->cfg, n, h, w, 1, image, &logits, err));
    *labels = ams_graph_labels(g, "labels", n, h, w);
    *loss = ams_graph_softmax_ce(g, logits, *labels, NULL, 0);
    return ams_graph_error(g, err);
}

int ams_cmd_bench(int argc, char **argv) {
    const char *cmd = "bench";
    cli_deeplab m = {0};
    const char *mode = NULL, *model = NULL;
    long batch = 1, height = 0, width = 0, reps = 10, replicas = 0;
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
        else if (!strcmp(argv[i], "--replicas")) num = &replicas, lo = 0, hi = AMS_DP_MAX_REPLICAS;
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
               .w = (int)width, .reps = reps, .profile = profile, .channels = 3,
               .replicas = (int)replicas};
    if (model) {
        b.label_classes = 2, b.x_scale = 1.0f; /* RGB/255, labels 0/1 */
        return bench_model(cmd, model, &b, mode, feed_text, nfeed);
    }

    int rc = cli_deeplab_params(cmd, &m, &b.p);
    if (rc != CLI_OK) return rc;
    ams_err err = {0};
    ams_deeplab_config cfg = {(int)m.classes, (int)m.os};
    double *ms = calloc((size_t)reps, sizeof(double));
    b.label_classes = (int)m.classes, b.x_scale = 255.0f; /* raw RGB */
    int logits;
    deeplab_build db = {&m, cfg};
    if (!ms) {
        ams_err_set(&err, AMS_E_NOMEM, "out of memory");
        goto fail;
    }
    if (b.train) {
        if (ams_dp_new(&b.dp, b.p, build_deeplab_train, &db, b.n, b.h, b.w, b.replicas, be,
                       &err) != AMS_OK)
            goto fail;
        b.g = ams_dp_graph(b.dp, 0);
    } else {
        b.g = ams_graph_new(b.p);
        if (!b.g) {
            ams_err_set(&err, AMS_E_NOMEM, "out of memory");
            goto fail;
        }
        if (cli_deeplab_build(&m, b.g, &cfg, b.n, b.h, b.w, 0, &b.xin, &logits, &err) != AMS_OK ||
            ams_graph_plan(b.g, AMS_PLAN_INFER, &err) != AMS_OK)
            goto fail;
    }
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
    if (b.train) ams_dp_free(b.dp);
    else ams_graph_free(b.g);
    ams_params_free(b.p);
    free(ms);
    return rc;
}
