/* cmd_server.c - `ams server`: the networked AMS server (include/ams/server.h) until SIGINT or
 * SIGTERM; metrics as JSON lines on stderr and in STATE/metrics.jsonl. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "ams/server.h"
#include "ams/tfjs.h"
#include "cli/cli_common.h"
#include "cli/cli_model.h"
#include "cli/commands.h"

static const char *const HELP =
    "usage: ams server --listen ADDR:PORT --keys DIR --state DIR [--student M] [--teacher M]\n"
    "                  [--workers N] [--stats-every S] [--synthetic N]\n"
    "  --keys DIR    client keys, DIR/<id>.key (ams keygen); read at each hello\n"
    "  --state DIR   session state (created 0700): a restarted server resumes every session\n"
    "  --student M   the edge's model (selfie, or a model.json): its weights are every\n"
    "                session's start; default selfie\n"
    "  --teacher M   the labelling model (the trainer is not plugged in yet: the server runs\n"
    "                its stub compute, which exercises updates without learning)\n"
    "  --workers N   compute threads (1)\n"
    "  --stats-every S  seconds between metrics lines (10)\n"
    "  --synthetic N a synthetic N-float model instead of --student (tests)\n"
    "Stops on SIGINT/SIGTERM; the last stdout line is the final metrics JSON.\n";

typedef struct run_arg {
    ams_server *s;
    ams_err err;
    ams_status st;
} run_arg;

static void *serve(void *p) {
    run_arg *a = p;
    a->st = ams_server_run(a->s, &a->err);
    return NULL;
}

static void log_stats(ams_server *s, const char *state, FILE *out) {
    static char buf[1 << 16]; /* the CLI's own buffer: one server per process */
    ams_server_stats_json(s, buf, sizeof buf);
    fprintf(out, "%s\n", buf);
    fflush(out);
    char path[4200];
    snprintf(path, sizeof path, "%s/metrics.jsonl", state);
    FILE *f = fopen(path, "a");
    if (f) {
        fprintf(f, "{\"time\":%ld,\"server\":%s}\n", (long)time(NULL), buf);
        fclose(f);
    }
}

int ams_cmd_server(int argc, char **argv) {
    const char *cmd = "server";
    const char *listen = NULL, *keys = NULL, *state = NULL, *student = "selfie", *teacher = NULL;
    long workers = 1, every = 10, synthetic = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(HELP, stdout);
            return CLI_OK;
        }
        if (i + 1 >= argc) return cli_usage_error(cmd, "unknown or incomplete option '%s'", a);
        const char *v = argv[++i];
        if (!strcmp(a, "--listen")) listen = v;
        else if (!strcmp(a, "--keys")) keys = v;
        else if (!strcmp(a, "--state")) state = v;
        else if (!strcmp(a, "--student")) student = v;
        else if (!strcmp(a, "--teacher")) teacher = v;
        else if (!strcmp(a, "--workers") || !strcmp(a, "--threads")) {
            if (!cli_int(v, 1, 64, &workers))
                return cli_usage_error(cmd, "%s needs 1..64, got '%s'", a, v);
        } else if (!strcmp(a, "--stats-every")) {
            if (!cli_int(v, 1, 86400, &every))
                return cli_usage_error(cmd, "--stats-every needs 1..86400 seconds, got '%s'", v);
        } else if (!strcmp(a, "--synthetic")) {
            if (!cli_int(v, 1, 100000000, &synthetic))
                return cli_usage_error(cmd, "--synthetic needs 1..1e8 floats, got '%s'", v);
        } else return cli_usage_error(cmd, "unknown option '%s'", a);
    }
    if (!listen || !keys || !state)
        return cli_usage_error(cmd, "--listen, --keys and --state are required");
    struct stat st;
    ams_err err = {0};
    if (stat(keys, &st) != 0 || !S_ISDIR(st.st_mode)) {
        ams_err_set(&err, AMS_E_NOTFOUND, "--keys %s is not a folder", keys);
        return cli_fail(cmd, &err, "create keys with: ams keygen --id NAME --keys DIR");
    }
    if (mkdir(state, 0700) != 0 && errno != EEXIST) {
        ams_err_set(&err, AMS_E_IO, "--state %s: %s", state, strerror(errno));
        return cli_fail(cmd, &err, NULL);
    }
    if (teacher)
        fprintf(stderr, "ams server: --teacher %s noted; the trainer is not plugged in yet, "
                        "using the stub compute\n", teacher);
    ams_tfjs_model *m = NULL;
    ams_params *syn = NULL;
    const ams_params *initial = NULL;
    int rc = CLI_FAIL;
    if (synthetic) {
        syn = ams_params_new();
        if (!syn || ams_params_add(syn, "synthetic", 1, (int64_t[]){synthetic}, 1, &err) < 0 ||
            ams_params_alloc(syn, &err) != AMS_OK)
            goto fail;
        for (long i = 0; i < synthetic; i++) syn->values[i] = (float)(i % 97) * 0.01f;
        initial = syn;
    } else {
        cli_model cm;
        if (cli_model_resolve(cmd, student, &cm) != CLI_OK) return CLI_FAIL;
        if (ams_tfjs_load(cm.path, &m, &err) != AMS_OK) goto fail;
        initial = ams_tfjs_params(m);
    }
    ams_server_config c;
    ams_server_config_default(&c);
    c.listen = listen;
    c.keys_dir = keys;
    c.state_dir = state;
    c.initial = initial;
    c.workers = (int)workers;
    /* signals are taken by this thread only (sigtimedwait), never by the loop or workers */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    run_arg ra = {0};
    ra.s = ams_server_new(&c, &err);
    if (!ra.s) goto fail;
    fprintf(stderr, "ams server: listening on %s (port %d), %zu parameters, %ld worker(s)\n",
            listen, ams_server_port(ra.s), initial->total, workers);
    pthread_t t;
    if (pthread_create(&t, NULL, serve, &ra) != 0) {
        ams_server_free(ra.s);
        ams_err_set(&err, AMS_E_NOMEM, "cannot start the server thread");
        goto fail;
    }
    for (;;) {
        struct timespec ts = {.tv_sec = every};
        int sig = sigtimedwait(&set, NULL, &ts);
        if (sig == SIGINT || sig == SIGTERM) break;
        log_stats(ra.s, state, stderr);
    }
    ams_server_stop(ra.s);
    pthread_join(t, NULL);
    log_stats(ra.s, state, stdout);
    ams_server_free(ra.s);
    if (ra.st != AMS_OK) {
        err = ra.err;
        goto fail;
    }
    rc = CLI_OK;
    goto done;
fail:
    rc = cli_fail(cmd, &err, NULL);
done:
    ams_params_free(syn);
    ams_tfjs_free(m);
    return rc;
}
