/* cli_common.h - what every subcommand shares: option values, errors, the DeepLab model flags. */
#ifndef AMS_CLI_COMMON_H
#define AMS_CLI_COMMON_H

#include "ams/backend.h"
#include "ams/deeplab.h"
#include "ams/status.h"

/* Exit codes of every subcommand. */
enum { CLI_OK = 0, CLI_USAGE = 1, CLI_FAIL = 2 };

/* Prints "ams <cmd>: <message>" (+ an optional HINT line) to stderr; returns CLI_FAIL. */
int cli_fail(const char *cmd, const ams_err *err, const char *hint);
/* Prints "ams <cmd>: <message>" and "try 'ams <cmd> --help'"; returns CLI_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Parses a whole decimal integer in [lo, hi]; 0 on failure. */
int cli_int(const char *s, long lo, long hi, long *out);
/* Seconds since an arbitrary start (monotonic). */
double cli_now(void);

/* The model flags of `ams infer|grad|bench --arch ...`. */
typedef struct cli_deeplab {
    const char *arch;    /* "deeplabv3-mnv2" | "deeplabv3plus-xception65" */
    long os;             /* 8 or 16 */
    long classes;
    const char *weights; /* safetensors path, or NULL (random init: bench only) */
    long threads;
    const char *backend; /* "cpu" (default) or "ref" */
} cli_deeplab;

/* Consumes argv[*i] (and its value) if it is a model flag: 1 consumed, 0 not a model
 * flag, -1 bad value (message printed). */
int cli_deeplab_flag(const char *cmd, cli_deeplab *m, int argc, char **argv, int *i);
/* Checks the flags and creates the parameters (declared, allocated, loaded or random). */
int cli_deeplab_params(const char *cmd, const cli_deeplab *m, ams_params **out);
/* Builds the --arch network into g (declared by cli_deeplab_params), as the
 * ams_deeplab_*_build functions do. */
ams_status cli_deeplab_build(const cli_deeplab *m, ams_graph *g, const ams_deeplab_config *cfg,
                             int n, int h, int w, int dropout, int *input, int *logits,
                             ams_err *err);
/* The kernel backend NAME names ("cpu" when NULL, "ref"), with THREADS worker threads
 * (0 = all cores); NULL (message printed) if unknown. Freed at exit. */
const ams_backend *cli_backend_threads(const char *cmd, const char *name, long threads);
/* The same with all cores. */
const ams_backend *cli_backend(const char *cmd, const char *name);

#endif
