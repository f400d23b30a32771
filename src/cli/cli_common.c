/* cli_common.c - option parsing, error printing and model loading shared by subcommands. */
#include "cli/cli_common.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ams/backend.h"
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

/* The built-in DeepLab architectures of --arch. */
static const struct {
    const char *name;
    ams_status (*declare)(ams_params *, const ams_deeplab_config *, ams_err *);
    ams_status (*build)(ams_graph *, const ams_deeplab_config *, int, int, int, int, int *,
                        int *, ams_err *);
    void (*init_random)(ams_params *, uint64_t);
} ARCHS[] = {
    {"deeplabv3-mnv2", ams_deeplab_mnv2_declare, ams_deeplab_mnv2_build,
     ams_deeplab_mnv2_init_random},
    {"deeplabv3plus-xception65", ams_deeplab_xception65_declare, ams_deeplab_xception65_build,
     ams_deeplab_xception65_init_random},
};
#define NARCHS (int)(sizeof ARCHS / sizeof ARCHS[0])
#define ARCH_NAMES "deeplabv3-mnv2, deeplabv3plus-xception65"

static int arch_index(const char *name) {
    for (int i = 0; name && i < NARCHS; i++)
        if (!strcmp(name, ARCHS[i].name)) return i;
    return -1;
}

int cli_deeplab_params(const char *cmd, const cli_deeplab *m, ams_params **out) {
    ams_err err = {0};
    if (!m->arch) return cli_usage_error(cmd, "--arch is required (" ARCH_NAMES ")");
    int a = arch_index(m->arch);
    if (a < 0) return cli_usage_error(cmd, "unknown --arch '%s' (known: " ARCH_NAMES ")", m->arch);
    if (m->os != 8 && m->os != 16) return cli_usage_error(cmd, "--os must be 8 or 16");
    if (m->classes < 1) return cli_usage_error(cmd, "--classes is required");
    ams_deeplab_config cfg = {(int)m->classes, (int)m->os};
    ams_params *p = ams_params_new();
    if (!p) return cli_fail(cmd, &(ams_err){AMS_E_NOMEM, "out of memory"}, NULL);
    if (ARCHS[a].declare(p, &cfg, &err) != AMS_OK || ams_params_alloc(p, &err) != AMS_OK)
        goto fail;
    if (m->weights) {
        if (ams_params_load_safetensors(p, m->weights, 0, &err) != AMS_OK) goto fail;
    } else {
        ARCHS[a].init_random(p, 1);
    }
    *out = p;
    return CLI_OK;
fail:
    ams_params_free(p);
    char hint[160];
    snprintf(hint, sizeof hint, "the weights must hold exactly the tensors of %s with "
             "--classes and TF DeepLab names (see 'ams info')", m->arch);
    return cli_fail(cmd, &err, m->weights ? hint : NULL);
}

ams_status cli_deeplab_build(const cli_deeplab *m, ams_graph *g, const ams_deeplab_config *cfg,
                             int n, int h, int w, int dropout, int *input, int *logits,
                             ams_err *err) {
    int a = arch_index(m->arch);
    AMS_FAIL_IF(a < 0, err, AMS_E_INVAL, "unknown architecture '%s'", m->arch ? m->arch : "");
    return ARCHS[a].build(g, cfg, n, h, w, dropout, input, logits, err);
}

/* Backends made by cli_backend_threads live until exit (freed then, for leak checkers). */
static const ams_backend *cli_made[8];
static int cli_nmade;

static void cli_free_backends(void) {
    for (int i = 0; i < cli_nmade; i++) ams_backend_free(cli_made[i]);
    cli_nmade = 0;
}

const ams_backend *cli_backend_threads(const char *cmd, const char *name, long threads) {
    ams_err err = {0};
    if (name && strcmp(name, "ref") != 0 && strcmp(name, "cpu") != 0) {
        cli_usage_error(cmd, "unknown --backend '%s' (known: %s)", name, AMS_BACKEND_NAMES);
        return NULL;
    }
    if (cli_nmade == (int)(sizeof cli_made / sizeof cli_made[0])) {
        cli_fail(cmd, &(ams_err){AMS_E_INTERNAL, "too many backends"}, NULL);
        return NULL;
    }
    const ams_backend *be = ams_backend_by_name(name, (int)threads, &err);
    if (!be) {
        cli_fail(cmd, &err, NULL);
        return NULL;
    }
    if (be != ams_backend_ref()) {
        if (cli_nmade == 0) atexit(cli_free_backends);
        cli_made[cli_nmade++] = be;
    }
    return be;
}

const ams_backend *cli_backend(const char *cmd, const char *name) {
    return cli_backend_threads(cmd, name, 0);
}
