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
#include <unistd.h>

#include "ams/server.h"
#include "ams/server_trainer.h"
#include "ams/tfjs.h"
#include "ams/tls.h"
#include "ams/weights_hash.h"
#include "cli/cli_common.h"
#include "cli/cli_model.h"
#include "cli/cli_video.h"
#include "cli/commands.h"

static const char *const HELP =
    "usage: ams server --listen ADDR:PORT --keys DIR --state DIR [--teacher M] [--student M]\n"
    "                  [--width W --height H] [--teacher-width W --teacher-height H]\n"
    "                  [--iters K] [--batch B] [--lr X] [--strategy S] [--fraction F]\n"
    "                  [--train-period T] [--first-train S] [--memory S] [--seed N]\n"
    "                  [--no-restore] [--no-asr] [--no-atr] [--no-eval] [--feed NAME=V ...]\n"
    "                  [--workers N] [--threads N] [--backend cpu|ref] [--stats-every S]\n"
    "                  [--synthetic N] [--tls-cert FILE --tls-key FILE]\n"
    "  --keys DIR    client keys, DIR/<id>.key (ams keygen); read at each hello\n"
    "  --state DIR   session state (created 0700): a restarted server resumes every session\n"
    "                (weights, version, horizon, ASR/ATR state)\n"
    "  --student M   the edge's model (selfie, or a model.json): its weights are every\n"
    "                session's start; default selfie\n"
    "  --teacher M   the labelling model (rvm, or a model.json with a one-channel output;\n"
    "                person = output > 0.5): with it the server runs AMS for real - uploads\n"
    "                are labelled, kept in each client's horizon, and the student is trained\n"
    "                (restore, coordinate descent, K Adam steps) every train period of the\n"
    "                client's video time. WITHOUT --teacher the server runs a TEST MODE: a\n"
    "                stub compute that changes a few weights per upload (updates flow and\n"
    "                verify, nothing learns)\n"
    "  --width W --height H   the student's frames (default: the student's own size, 256x256\n"
    "                for selfie); edges should send this size (ams edge's default)\n"
    "  --teacher-width W --teacher-height H   the teacher's input (default 1.5 x the student's)\n"
    "  --feed NAME=V the teacher's scalar inputs (rvm: r1i..r4i=0, downsample_ratio=0.5)\n"
    "  training, as ams sim: --iters K 20 --batch B 8 --lr 0.001 --strategy coord --fraction 0.05\n"
    "                --train-period 10 --first-train (= T) --memory 60 --seed 1, ASR + ATR on\n"
    "  --no-eval     skip the per-job mIoU of the client's and the pretrained model (stats)\n"
    "  --workers N   compute threads, each with its own teacher, trainer and backend (1)\n"
    "  --threads N   threads per worker (default: the cores / workers, at least 1); a\n"
    "                training step splits its batch over one graph replica per thread\n"
    "  --stats-every S  seconds between metrics lines (10)\n"
    "  --synthetic N a synthetic N-float model and the stub compute (tests)\n"
    "  --tls-cert FILE --tls-key FILE   TLS 1.3 on every connection (PEM certificate and key;\n"
    "                make a self-signed pair with: ams keygen --tls-cert DIR); edges then need\n"
    "                --tls-ca with that certificate. The client keys still authenticate the\n"
    "                edges; TLS adds encryption. Plain edges are refused (error 103)\n"
    "Each update is logged on stderr (client, version, hash, bytes, lag, mIoU); metrics JSON\n"
    "lines go to stderr and STATE/metrics.jsonl. Stops on SIGINT/SIGTERM; the last stdout line\n"
    "is the final metrics JSON.\n";

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

/* One stderr line per update (worker threads; one fprintf each). */
static void on_update(void *ctx, const char *id, uint64_t version, const uint8_t hash[AMS_HASH_LEN],
                      size_t bytes, double lag, double miou, double miou_pre) {
    (void)ctx;
    char hex[AMS_HASH_HEX_LEN], acc[96] = "";
    ams_hash_hex(hash, hex);
    if (miou == miou && miou_pre == miou_pre)
        snprintf(acc, sizeof acc, ", mIoU of its model %.3f (pretrained %.3f)", miou, miou_pre);
    fprintf(stderr, "ams server: update %s v%llu hash %s, %zu B, lag %.1f s%s\n", id,
            (unsigned long long)version, hex, bytes, lag, acc);
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
    const char *backend = "cpu", *tls_cert = NULL, *tls_key = NULL;
    long workers = 1, every = 10, synthetic = 0, threads = -1, width = 0, height = 0, tw = 0,
         th = 0;
    char *feeds[CLI_MAX_FEEDS];
    int nfeeds = 0;
    char dr[] = "downsample_ratio=0.5"; /* outlives the feeds that point into it */
    ams_server_trainer_config tc;
    ams_server_trainer_config_default(&tc);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(HELP, stdout);
            return CLI_OK;
        }
        if (!strcmp(a, "--no-restore")) { tc.train.restore = 0; continue; }
        if (!strcmp(a, "--no-asr")) { tc.asr = 0; continue; }
        if (!strcmp(a, "--no-atr")) { tc.atr = 0; continue; }
        if (!strcmp(a, "--no-eval")) { tc.evaluate = 0; continue; }
        if (i + 1 >= argc) return cli_usage_error(cmd, "unknown or incomplete option '%s'", a);
        char *v = argv[++i];
        long l = 0;
        double d = 0;
        int ok = 1;
        if (!strcmp(a, "--listen")) listen = v;
        else if (!strcmp(a, "--keys")) keys = v;
        else if (!strcmp(a, "--state")) state = v;
        else if (!strcmp(a, "--student")) student = v;
        else if (!strcmp(a, "--teacher")) teacher = v;
        else if (!strcmp(a, "--backend")) backend = v;
        else if (!strcmp(a, "--tls-cert")) tls_cert = v;
        else if (!strcmp(a, "--tls-key")) tls_key = v;
        else if (!strcmp(a, "--feed")) {
            if (nfeeds >= CLI_MAX_FEEDS) return cli_usage_error(cmd, "more than %d --feed", CLI_MAX_FEEDS);
            feeds[nfeeds++] = v;
        } else if (!strcmp(a, "--strategy")) {
            ams_err e = {0};
            if (ams_strategy_parse(v, &tc.train.strategy, &e) != AMS_OK)
                return cli_usage_error(cmd, "%s", e.msg);
        } else if (!strcmp(a, "--workers")) ok = cli_int(v, 1, 64, &workers);
        else if (!strcmp(a, "--threads")) ok = cli_int(v, 0, 1024, &threads);
        else if (!strcmp(a, "--stats-every")) ok = cli_int(v, 1, 86400, &every);
        else if (!strcmp(a, "--synthetic")) ok = cli_int(v, 1, 100000000, &synthetic);
        else if (!strcmp(a, "--width")) ok = cli_int(v, 16, 4096, &width);
        else if (!strcmp(a, "--height")) ok = cli_int(v, 16, 4096, &height);
        else if (!strcmp(a, "--teacher-width")) ok = cli_int(v, 16, 4096, &tw);
        else if (!strcmp(a, "--teacher-height")) ok = cli_int(v, 16, 4096, &th);
        else if (!strcmp(a, "--iters")) ok = cli_int(v, 1, 1000000, &l), tc.train.iters = (int)l;
        else if (!strcmp(a, "--batch")) ok = cli_int(v, 1, 1024, &l), tc.train.batch = (int)l;
        else if (!strcmp(a, "--seed")) ok = cli_int(v, 0, 2147483647L, &l), tc.train.seed = (uint64_t)l;
        else if (!strcmp(a, "--lr")) ok = cli_double(v, 1e-9, 10, &d), tc.train.lr = (float)d;
        else if (!strcmp(a, "--fraction")) ok = cli_double(v, 1e-6, 1, &tc.train.fraction);
        else if (!strcmp(a, "--train-period")) ok = cli_double(v, 0.1, 1e5, &tc.train_period);
        else if (!strcmp(a, "--first-train")) ok = cli_double(v, 0, 1e6, &tc.first_train);
        else if (!strcmp(a, "--memory")) ok = cli_double(v, 0.1, 1e6, &tc.memory_len);
        else return cli_usage_error(cmd, "unknown option '%s'", a);
        if (!ok) return cli_usage_error(cmd, "bad value '%s' for %s", v, a);
    }
    if (!listen || !keys || !state)
        return cli_usage_error(cmd, "--listen, --keys and --state are required");
    if ((width == 0) != (height == 0) || (width & 1) || (height & 1))
        return cli_usage_error(cmd, "--width and --height go together and must be even");
    if ((tw == 0) != (th == 0) || (tw & 1) || (th & 1))
        return cli_usage_error(cmd, "--teacher-width and --teacher-height go together and must be even");
    if (synthetic && teacher)
        return cli_usage_error(cmd, "--synthetic runs the stub compute: no --teacher");
    if (nfeeds && !teacher) return cli_usage_error(cmd, "--feed is for the --teacher");
    if (!tls_cert != !tls_key) return cli_usage_error(cmd, "--tls-cert and --tls-key go together");
    struct stat st;
    ams_err err = {0};
    if (stat(keys, &st) != 0 || !S_ISDIR(st.st_mode)) {
        ams_err_set(&err, AMS_E_NOTFOUND, "--keys %s is not a folder", keys);
        return cli_fail(cmd, &err, "create keys with: ams keygen --id NAME --keys DIR");
    }
    if (tls_cert) { /* fail now, not after loading the models */
        ams_tls *t = ams_tls_server_new(tls_cert, tls_key, &err);
        if (!t) return cli_fail(cmd, &err, "make a self-signed pair with: ams keygen --tls-cert DIR");
        ams_tls_free(t);
    }
    if (mkdir(state, 0700) != 0 && errno != EEXIST) {
        ams_err_set(&err, AMS_E_IO, "--state %s: %s", state, strerror(errno));
        return cli_fail(cmd, &err, NULL);
    }
    ams_tfjs_model *m = NULL;
    ams_params *syn = NULL;
    const ams_params *initial = NULL;
    ams_compute comp = {0};
    int rc = CLI_FAIL;
    if (synthetic) {
        syn = ams_params_new();
        if (!syn || ams_params_add(syn, "synthetic", 1, (int64_t[]){synthetic}, 1, &err) < 0 ||
            ams_params_alloc(syn, &err) != AMS_OK)
            goto fail;
        for (long i = 0; i < synthetic; i++) syn->values[i] = (float)(i % 97) * 0.01f;
        initial = syn;
    } else if (!teacher) {
        cli_model cm;
        if (cli_model_resolve(cmd, student, &cm) != CLI_OK) return CLI_FAIL;
        if (ams_tfjs_load(cm.path, &m, &err) != AMS_OK) goto fail;
        initial = ams_tfjs_params(m);
        fprintf(stderr, "ams server: no --teacher: TEST MODE, the stub compute changes a few "
                        "weights per upload; nothing learns\n");
    } else {
        cli_model sm, tm;
        if (cli_model_resolve(cmd, student, &sm) != CLI_OK ||
            cli_model_resolve(cmd, teacher, &tm) != CLI_OK)
            return CLI_FAIL;
        if (!strcmp(teacher, "rvm")) { /* the emulator's teacher setting: refiner on */
            if (cli_model_feed(cmd, &tm, dr) != CLI_OK) return CLI_USAGE;
        }
        for (int i = 0; i < nfeeds; i++)
            if (cli_model_feed(cmd, &tm, feeds[i]) != CLI_OK) return CLI_USAGE;
        if (!width) { /* the student's own size */
            ams_tfjs_model *probe = NULL;
            int ch = 0, rh = 0, rw = 0;
            if (ams_tfjs_load(sm.path, &probe, &err) != AMS_OK) goto fail;
            ams_tfjs_image_input(probe, &ch, &rh, &rw);
            ams_tfjs_free(probe);
            width = rw > 0 ? (rw + 1) / 2 * 2 : 256;
            height = rh > 0 ? (rh + 1) / 2 * 2 : 256;
        }
        if (!tw) tw = (width * 3 / 2 + 1) / 2 * 2, th = (height * 3 / 2 + 1) / 2 * 2;
        tc.student = sm.path;
        tc.teacher = tm.path;
        tc.teacher_output = tm.output;
        tc.teacher_feeds = tm.feeds;
        tc.n_teacher_feeds = tm.nfeeds;
        tc.width = (int)width;
        tc.height = (int)height;
        tc.teacher_width = (int)tw;
        tc.teacher_height = (int)th;
        if (threads < 0) { /* share the cores among the workers */
            long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
            threads = ncpu > workers ? ncpu / workers : 1;
        }
        tc.slots = (int)workers;
        tc.threads = (int)threads;
        tc.backend = backend;
        fprintf(stderr, "ams server: loading %s (teacher, %ldx%ld) and %s (student, %ldx%ld) "
                        "for %ld worker(s) x %ld thread(s)\n", teacher, tw, th, student, width,
                height, workers, threads);
        if (ams_server_trainer_new(&tc, &comp, &err) != AMS_OK) goto fail;
        initial = ams_server_trainer_pretrained(&comp);
    }
    ams_server_config c;
    ams_server_config_default(&c);
    c.listen = listen;
    c.keys_dir = keys;
    c.state_dir = state;
    c.initial = initial;
    c.workers = (int)workers;
    if (comp.run) c.compute = comp;
    c.on_update = on_update;
    c.tls_cert = tls_cert;
    c.tls_key = tls_key;
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
    if (comp.run)
        fprintf(stderr, "ams server: AMS training: K %d, batch %d, %s %g, train every %g s of "
                        "video (ATR %s), horizon %g s, ASR %s\n", tc.train.iters, tc.train.batch,
                ams_strategy_name(tc.train.strategy), tc.train.fraction, tc.train_period,
                tc.atr ? "on" : "off", tc.memory_len, tc.asr ? "on" : "off");
    fprintf(stderr, "ams server: listening on %s (port %d%s), %zu parameters, %ld worker(s)\n",
            listen, ams_server_port(ra.s), tls_cert ? ", TLS" : "", initial->total, workers);
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
    ams_server_trainer_free(&comp);
    ams_params_free(syn);
    ams_tfjs_free(m);
    return rc;
}
