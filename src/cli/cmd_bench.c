/* cmd_bench.c - `ams bench`: times inference or a training step (forward, backward,
 * Adam) of a built-in architecture on random data; last stdout line is JSON. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "ams/optim.h"
#include "ams/rng.h"
#include "cli/cli_common.h"
#include "cli/commands.h"

static const char *const HELP =
    "usage: ams bench --arch ARCH --os {8,16} --classes C --batch B --height H\n"
    "                 --width W --mode infer|train [--reps N] [--threads N] [--backend ref|cpu]\n"
    "                 [--weights W.safetensors]\n"
    "  ARCH: deeplabv3-mnv2 (DeepLabV3, MobileNetV2) or deeplabv3plus-xception65\n"
    "        (DeepLabV3+, Xception65), with TF DeepLab variable names.\n"
    "  Random inputs (and weights unless --weights); one warm-up, then N timed repetitions.\n"
    "  train = forward + softmax cross-entropy + backward + one Adam step, BatchNorm frozen.\n"
    "  Prints a human line, then one JSON line: ms_per_image (median), ms_min, ms_max,\n"
    "  images_per_s, gflops, peak_rss_mb, arena_mb.\n";

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int ams_cmd_bench(int argc, char **argv) {
    const char *cmd = "bench";
    cli_deeplab m = {0};
    const char *mode = NULL;
    long batch = 1, height = 0, width = 0, reps = 10;
    for (int i = 1; i < argc; i++) {
        int r = cli_deeplab_flag(cmd, &m, argc, argv, &i);
        if (r < 0) return CLI_USAGE;
        if (r > 0) continue;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(HELP, stdout);
            return CLI_OK;
        }
        long *num = NULL, lo = 1, hi = 0;
        if (!strcmp(argv[i], "--batch")) num = &batch, hi = 1024;
        else if (!strcmp(argv[i], "--height")) num = &height, hi = 8192;
        else if (!strcmp(argv[i], "--width")) num = &width, hi = 8192;
        else if (!strcmp(argv[i], "--reps")) num = &reps, hi = 100000;
        if (i + 1 < argc && !strcmp(argv[i], "--mode")) {
            mode = argv[++i];
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
    const ams_backend *be = cli_backend_threads(cmd, m.backend, m.threads);
    if (!be) return CLI_USAGE;
    int train = !strcmp(mode, "train");

    ams_params *p = NULL;
    int rc = cli_deeplab_params(cmd, &m, &p);
    if (rc != CLI_OK) return rc;
    ams_err err = {0};
    ams_deeplab_config cfg = {(int)m.classes, (int)m.os};
    int n = (int)batch, h = (int)height, w = (int)width;
    size_t npix = (size_t)n * h * w;
    float *x = malloc(npix * 3 * sizeof(float));
    uint8_t *lab = malloc(npix);
    double *ms = calloc((size_t)reps, sizeof(double));
    ams_graph *g = ams_graph_new(p);
    ams_adam *opt = ams_adam_new(p->total, NULL);
    uint8_t *mask = malloc(p->total);
    int xin, logits, lin = -1, loss = -1;
    if (!x || !lab || !ms || !g || !opt || !mask) {
        ams_err_set(&err, AMS_E_NOMEM, "out of memory");
        goto fail;
    }
    ams_rng r;
    ams_rng_seed(&r, 42);
    for (size_t i = 0; i < npix * 3; i++) x[i] = 255.0f * ams_rng_uniform(&r);
    for (size_t i = 0; i < npix; i++) lab[i] = (uint8_t)(ams_rng_u64(&r) % (uint64_t)m.classes);
    /* Adam updates trainable tensors only */
    for (int i = 0; i < p->count; i++)
        memset(mask + p->info[i].offset, p->info[i].trainable, (size_t)p->info[i].numel);
    if (cli_deeplab_build(&m, g, &cfg, n, h, w, train, &xin, &logits, &err) != AMS_OK) goto fail;
    if (train) {
        lin = ams_graph_labels(g, "labels", n, h, w);
        loss = ams_graph_softmax_ce(g, logits, lin, NULL, 0);
    }
    if (ams_graph_plan(g, train ? AMS_PLAN_TRAIN : AMS_PLAN_INFER, &err) != AMS_OK ||
        ams_graph_set_input(g, xin, x, &err) != AMS_OK ||
        (train && ams_graph_set_labels(g, lin, lab, &err) != AMS_OK))
        goto fail;
    fprintf(stderr, "ams bench: %s, batch %d, %dx%d, OS %ld, %s backend, %ld rep(s)\n", mode, n,
            h, w, m.os, be->name, reps);
    for (long rep = -1; rep < reps; rep++) { /* rep -1: warm-up */
        double t0 = cli_now();
        if (ams_graph_forward(g, be, &err) != AMS_OK) goto fail;
        if (train) {
            ams_params_zero_grads(p);
            if (ams_graph_backward(g, be, loss, &err) != AMS_OK) goto fail;
            ams_adam_step(opt, p->values, p->grads, mask);
        }
        if (rep >= 0) ms[rep] = (cli_now() - t0) * 1e3;
    }
    qsort(ms, (size_t)reps, sizeof *ms, cmp_double);
    double med = ms[reps / 2] / n;
    double gflop = ams_graph_forward_flops(g) * (train ? 3.0 : 1.0) / n / 1e9;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("%s: %.2f ms/image (min %.2f, max %.2f), %.1f images/s, %.1f GFLOP/s\n", mode, med,
           ms[0] / n, ms[reps - 1] / n, 1e3 / med, gflop / (med / 1e3));
    printf("{\"mode\":\"%s\",\"arch\":\"%s\",\"os\":%ld,\"classes\":%ld,\"batch\":%d,"
           "\"height\":%d,\"width\":%d,\"backend\":\"%s\",\"threads\":%ld,\"reps\":%ld,"
           "\"ms_per_image\":%.4f,\"ms_min\":%.4f,\"ms_max\":%.4f,\"images_per_s\":%.3f,"
           "\"gflop_per_image\":%.4f,\"gflops\":%.3f,\"peak_rss_mb\":%.1f,\"arena_mb\":%.1f}\n",
           mode, m.arch, m.os, m.classes, n, h, w, be->name, (long)ams_backend_threads(be), reps, med,
           ms[0] / n, ms[reps - 1] / n, 1e3 / med, gflop, gflop / (med / 1e3),
           ru.ru_maxrss / 1024.0, ams_graph_arena_bytes(g) / 1048576.0);
    rc = CLI_OK;
    goto done;
fail:
    rc = cli_fail(cmd, &err, NULL);
done:
    ams_adam_free(opt);
    ams_graph_free(g);
    ams_params_free(p);
    free(mask);
    free(x);
    free(lab);
    free(ms);
    return rc;
}
