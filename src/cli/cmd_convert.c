/* cmd_convert.c - `ams convert`: a TF.js graph model (model.json + shards) into one
 * safetensors file that `ams infer --model` loads again, or a TF checkpoint (V2 tensor
 * bundle) into safetensors under DeepLab's variable names. */
#include <stdio.h>
#include <string.h>

#include "ams/tf_checkpoint.h"
#include "ams/tfjs.h"
#include "cli/cli_common.h"
#include "cli/cli_model.h"
#include "cli/commands.h"

static const char *const HELP =
    "usage: ams convert MODEL OUT.safetensors\n"
    "       ams convert CKPT_PREFIX OUT.safetensors [--arch A --classes C [--os 16]]\n"
    "  MODEL: a TF.js graph model.json (or a fetch-cache name: selfie, rvm). OUT holds every\n"
    "         weight under its TF.js name plus the graph (in __metadata__); `ams infer\n"
    "         --model OUT.safetensors` gives the same outputs as the model.json.\n"
    "  CKPT_PREFIX: a TF checkpoint (PREFIX.index + PREFIX.data-*-of-*). Model variables are\n"
    "         written as float32 under their TF DeepLab names (optimizer slots such as\n"
    "         /Momentum, /ExponentialMovingAverage and global_step are dropped). With --arch\n"
    "         (deeplabv3-mnv2, ...) and --classes the file holds exactly that network's\n"
    "         tensors, checked against their shapes, for `ams infer --arch A --weights OUT`.\n";

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

static int convert_tfjs(const char *cmd, const char *model, const char *out) {
    cli_model cm;
    int rc = cli_model_resolve(cmd, model, &cm);
    if (rc != CLI_OK) return rc;
    if (!cm.named && !ends_with(cm.path, ".json"))
        return cli_usage_error(cmd, "'%s' is neither a model.json, a model name (selfie, rvm) "
                               "nor a checkpoint prefix (no %s.index)", model, model);
    ams_err err = {0};
    ams_tfjs_model *m = NULL;
    if (ams_tfjs_load(cm.path, &m, &err) != AMS_OK) return cli_fail(cmd, &err, NULL);
    if (ams_tfjs_save_safetensors(m, out, &err) != AMS_OK) {
        ams_tfjs_free(m);
        return cli_fail(cmd, &err, NULL);
    }
    fprintf(stderr, "ams convert: %s -> %s (%d parameters, %zu floats)\n", cm.path, out,
            ams_tfjs_params(m)->count, ams_tfjs_params(m)->total);
    ams_tfjs_free(m);
    return CLI_OK;
}

int ams_cmd_convert(int argc, char **argv) {
    const char *cmd = "convert";
    const char *pos[2] = {NULL, NULL};
    int npos = 0;
    cli_deeplab dl = {.os = 16};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(HELP, stdout);
            return CLI_OK;
        }
        int r = cli_deeplab_flag(cmd, &dl, argc, argv, &i);
        if (r < 0) return CLI_USAGE;
        if (r > 0) continue;
        if (argv[i][0] == '-' || npos == 2)
            return cli_usage_error(cmd, "unknown option or extra argument '%s'", argv[i]);
        pos[npos++] = argv[i];
    }
    if (npos != 2) return cli_usage_error(cmd, "needs an input and an OUT.safetensors");
    if (!ends_with(pos[1], ".safetensors"))
        return cli_usage_error(cmd, "the output must end in .safetensors, got '%s'", pos[1]);
    if (dl.weights) return cli_usage_error(cmd, "--weights is not an option of convert");

    char index[4200];
    snprintf(index, sizeof index, "%s.index", pos[0]);
    FILE *f = strlen(pos[0]) < 4000 ? fopen(index, "rb") : NULL;
    if (!f) {
        if (dl.arch) return cli_usage_error(cmd, "--arch needs a checkpoint (no %s)", index);
        return convert_tfjs(cmd, pos[0], pos[1]);
    }
    fclose(f);

    ams_params *expect = NULL;
    if (dl.arch || dl.classes) {
        int rc = cli_deeplab_params(cmd, &dl, &expect);
        if (rc != CLI_OK) return rc;
    }
    ams_err err = {0};
    int written = 0, extra = 0;
    ams_status st = ams_tf_checkpoint_convert(pos[0], pos[1], expect, &written, &extra, &err);
    ams_params_free(expect);
    if (st != AMS_OK)
        return cli_fail(cmd, &err, dl.arch ? "is --classes right? `ams convert CKPT OUT` without "
                                             "--arch writes every variable as it is"
                                           : NULL);
    fprintf(stderr, "ams convert: %s -> %s (%d tensors; %d other variables skipped)\n", pos[0],
            pos[1], written, extra);
    return CLI_OK;
}
