/* cli_common.c - option parsing, error printing and model loading shared by subcommands. */
#include "cli/cli_common.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ams/safetensors.h"

int cli_fail(const char *cmd, const ams_err *err, const char *hint) {
    fprintf(stderr, "ams %s: %s\n", cmd, err && err->msg[0] ? err->msg : "failed");
    if (hint) fprintf(stderr, "HINT: %s\n", hint);
    return CLI_FAIL;
}

int cli_usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "ams %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\ntry 'ams %s --help'\n", cmd);
    return CLI_USAGE;
}

int cli_int(const char *s, long lo, long hi, long *out) {
    if (!s || !*s) return 0;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi) return 0;
    *out = v;
    return 1;
}

double cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int cli_deeplab_flag(const char *cmd, cli_deeplab *m, int argc, char **argv, int *i) {
    const char *f = argv[*i];
    long *num = NULL;
    const char **str = NULL;
    long lo = 0, hi = 0;
    if (!strcmp(f, "--arch")) str = &m->arch;
    else if (!strcmp(f, "--weights")) str = &m->weights;
    else if (!strcmp(f, "--backend")) str = &m->backend;
    else if (!strcmp(f, "--os")) num = &m->os, lo = 8, hi = 16;
    else if (!strcmp(f, "--classes")) num = &m->classes, lo = 1, hi = 255;
    else if (!strcmp(f, "--threads")) num = &m->threads, lo = 1, hi = 1024;
    else return 0;
    if (*i + 1 >= argc) {
        cli_usage_error(cmd, "%s needs a value", f);
        return -1;
    }
    const char *v = argv[++*i];
    if (str) *str = v;
    else if (!cli_int(v, lo, hi, num)) {
        cli_usage_error(cmd, "%s: '%s' is not an integer in %ld..%ld", f, v, lo, hi);
        return -1;
    }
    return 1;
}

int cli_deeplab_params(const char *cmd, const cli_deeplab *m, ams_params **out) {
    ams_err err = {0};
    if (!m->arch) return cli_usage_error(cmd, "--arch is required (deeplabv3-mnv2)");
    if (strcmp(m->arch, "deeplabv3-mnv2") != 0)
        return cli_usage_error(cmd, "unknown --arch '%s' (known: deeplabv3-mnv2)", m->arch);
    if (m->os != 8 && m->os != 16) return cli_usage_error(cmd, "--os must be 8 or 16");
    if (m->classes < 1) return cli_usage_error(cmd, "--classes is required");
    ams_deeplab_config cfg = {(int)m->classes, (int)m->os};
    ams_params *p = ams_params_new();
    if (!p) return cli_fail(cmd, &(ams_err){AMS_E_NOMEM, "out of memory"}, NULL);
    if (ams_deeplab_mnv2_declare(p, &cfg, &err) != AMS_OK || ams_params_alloc(p, &err) != AMS_OK)
        goto fail;
    if (m->weights) {
        if (ams_params_load_safetensors(p, m->weights, 0, &err) != AMS_OK) goto fail;
    } else {
        ams_deeplab_mnv2_init_random(p, 1);
    }
    *out = p;
    return CLI_OK;
fail:
    ams_params_free(p);
    return cli_fail(cmd, &err,
                    m->weights ? "the weights must hold exactly the tensors of "
                                 "deeplabv3-mnv2 with --classes and TF DeepLab names "
                                 "(see 'ams info')"
                               : NULL);
}

const ams_backend *cli_backend(const char *cmd, const char *name) {
    if (!name || !strcmp(name, "ref")) return ams_backend_ref();
    cli_usage_error(cmd, "unknown --backend '%s' (known: ref)", name);
    return NULL;
}
