/* cmd_sim.c - `ams sim`: the AMS emulator on a recorded video and its teacher labels
 * (src/sim, include/ams/sim.h); --compare runs the baselines and AMS into one report. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ams/sim.h"
#include "cli/cli_common.h"
#include "cli/cli_video.h"
#include "cli/commands.h"

static const char *const HELP =
    "usage: ams sim --video V --labels LABELS --student MODEL --mode M --out DIR [options]\n"
    "       ams sim --compare ... --out DIR\n"
    "  V: the video; LABELS: teacher labels (ams label, or --teacher below); MODEL: a TF.js\n"
    "  model.json, a fetched name (selfie), or deeplabv3-mnv2 (below). M: pretrained |\n"
    "  one-time | ams | jit.\n"
    "  --compare runs pretrained, one-time, ams (--strategy, coord if full), ams full and\n"
    "  jit with the same flags, each into DIR/<run>/, and one report comparing them in DIR.\n"
    "Writes into DIR: metrics.jsonl (per second: mIoU, sampling rate, up/down bits, model\n"
    "  version), summary.json (one object; --compare: a list), report.html (table, plots of\n"
    "  mIoU and Kbps over time and of mIoU vs Kbps, the overlay video), overlay.mp4 (each\n"
    "  evaluated frame: the student's mask in red for the run (--compare: pretrained and the\n"
    "  best ams run), then the teacher's label in green). Last stdout line: JSON (--compare:\n"
    "  a Markdown table).\n"
    "options, with the defaults for short videos (vtest.avi: 79.5 s at 10 fps):\n"
    "  --uplink-kbps B 150 --downlink-kbps B 150   link budgets (0 = unlimited, lossless)\n"
    "  --strategy S coord (full first last both rand) --fraction F 0.05\n"
    "  --coord-probe N 0  coord's score: 0 = |gradient| of the first batch; N = the change\n"
    "                 after N Adam steps on every element (the reference: 1), then undone\n"
    "  --send-period S 10 --first-send S (= S/2: the first upload leaves sooner)\n"
    "  --train-period T 10 --first-train S (= T) --memory S 60\n"
    "  --iters K 20 --batch B 8 --lr 0.001 --seed N 1 --no-restore --no-asr --no-atr\n"
    "  --seeds N 1    one-time and ams runs repeated with seeds seed..seed+N-1 (into\n"
    "                 DIR/seed-S/); summary and report add the mean, min and max mIoU\n"
    "  --start-rate R 1 (frames/s) --eval-fps E 2 --one-time-s S 20\n"
    "  --jit-target M 0.8   jit: train on the latest uploaded frame until the student's mIoU\n"
    "  --jit-max-iters K 20 on it reaches M, or K Adam steps (batch 1, whole model)\n"
    "  --width W 256 --height H 192 (student size) --threshold X 0 (binary: logit > X)\n"
    "  --compute-s C  simulated server seconds per phase (default: measured; set it for\n"
    "                 bit-for-bit determinism)\n"
    "  --max-seconds S  only the first S seconds\n"
    "  --no-video     no overlay.mp4 (it costs about a second per minute of video)\n"
    "  --teacher MODEL --label-fps R 10 --label-width W 384 --label-height H 288:\n"
    "                 make LABELS first when it does not exist (rvm: alpha > 0.5 = person)\n"
    "  --codec int8|f16  update deltas: int8 with a scale per tensor (default) or fp16\n"
    "A DeepLabV3-MobileNetV2 student (--student deeplabv3-mnv2; multi-class labels, e.g. from\n"
    "  ams label --teacher deeplabv3plus-xception65; docs/sim.md):\n"
    "  --weights W.safetensors  its weights, TF DeepLab names (the edge and the server each\n"
    "                 load a copy)\n"
    "  --classes C    its classes; must equal the classes LABELS holds\n"
    "  --os 8|16 16   output stride\n"
    "  --subset c1,c2,...  the video's classes: the loss is a softmax over these only and the\n"
    "                 mIoU is over these only (argmax over them; teacher pixels of other\n"
    "                 classes ignored). Default: every class\n"
    "  --backend cpu|ref (cpu)  --threads N (0 = all cores; training splits each batch\n"
    "    over one graph replica per thread)\n"
    "For 7-15 minute videos the AMS reference's constants are: --send-period 30\n"
    "  --first-send 30 --train-period 10 --first-train 100 --memory 250 --iters 200 --batch 10\n"
    "  (docs/sim.md). With the cpu backend a selfie batch-8 step at 256x192 takes about\n"
    "  0.3 s on one core (the ref kernels: several seconds).\n";

typedef struct named {
    const char *name, *file, *feeds, *output;
} named;

static const named NAMED[] = {
    {"selfie", "selfie.json", "", NULL},
    {"rvm", "rvm.json", "r1i=0,r2i=0,r3i=0,r4i=0,downsample_ratio=0.5", "pha"},
};

/* A model path (a fetched name resolves into the cache) and its default feeds. */
static const char *model_path(const char *m, char *buf, size_t cap, const char **feeds,
                              const char **output) {
    *feeds = "";
    *output = NULL;
    for (size_t i = 0; i < sizeof NAMED / sizeof NAMED[0]; i++)
        if (!strcmp(NAMED[i].name, m)) {
            const char *root = getenv("AMS_CACHE"), *home = getenv("HOME");
            if (root && root[0]) snprintf(buf, cap, "%s/models/%s", root, NAMED[i].file);
            else snprintf(buf, cap, "%s/.cache/ams/models/%s", home ? home : "/tmp", NAMED[i].file);
            *feeds = NAMED[i].feeds;
            *output = NAMED[i].output;
            return buf;
        }
    snprintf(buf, cap, "%s", m);
    return buf;
}

static int mkdirs(const char *dir) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", dir);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(buf, 0777) && errno != EEXIST) return 0;
            *p = '/';
        }
    return !mkdir(buf, 0777) || errno == EEXIST;
}

/* The student of a run: a TF.js model (path) or a DeepLab student (dl.arch set). */
typedef struct student_spec {
    const char *path;        /* TF.js model.json */
    cli_deeplab dl;          /* --student deeplabv3-mnv2: arch, weights, classes, os */
    ams_sim_deeplab *ctx;    /* its graph builders' ctx (shared by the edge and the server) */
} student_spec;

/* "0,3,5" -> distinct class ids in 0..nclasses-1 (at most cap); the count, or -1. */
static int parse_subset(const char *s, int *ids, int cap, long nclasses) {
    int n = 0;
    const char *p = s;
    if (!*p) return -1;
    while (*p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (errno || end == p || v < 0 || v >= nclasses || n >= cap) return -1;
        for (int i = 0; i < n; i++)
            if (ids[i] == v) return -1;
        ids[n++] = (int)v;
        if (*end == ',' && end[1]) end++;
        else if (*end) return -1;
        p = end;
    }
    return n;
}

typedef struct progress_state {
    double wall0;
    const char *name;
    double last_print;
} progress_state;

static void progress(void *ctx, double t, double duration, const char *what) {
    progress_state *p = ctx;
    double now = cli_now();
    if (now - p->last_print < 0.5 && strcmp(what, "train")) return;
    p->last_print = now;
    double el = now - p->wall0, frac = duration > 0 ? t / duration : 0;
    double eta = frac > 0.01 ? el / frac - el : NAN;
    fprintf(stderr, "\rams sim [%s] %s t %5.1f / %.1f s  elapsed %.0f s  eta %s%.0f s   ", p->name,
            what, t, duration, el, isfinite(eta) ? "" : "?", isfinite(eta) ? eta : 0.0);
    fflush(stderr);
}

/* dir/overlay.mp4 of the runs (overlay: write it; else remove a stale one, so the report
 * never shows a video of another run). */
static int write_overlay(const char *cmd, const ams_sim_result *const *runs, int n,
                         const char *video, const char *dir, int overlay) {
    char path[4200];
    snprintf(path, sizeof path, "%s/overlay.mp4", dir);
    if (!overlay) {
        if (unlink(path) != 0 && errno != ENOENT)
            fprintf(stderr, "ams sim: warning: cannot remove the stale %s\n", path);
        return CLI_OK;
    }
    ams_err err = {0};
    double t0 = cli_now();
    if (ams_sim_write_overlay(runs, n, video, path, &err) != AMS_OK)
        return cli_fail(cmd, &err, "--no-video skips the overlay video");
    fprintf(stderr, "ams sim: %s (%.1f s)\n", path, cli_now() - t0);
    return CLI_OK;
}

/* One run: loads the student twice (edge and server copies), runs, writes into dir (with
 * dir/overlay.mp4 of this run when overlay is set). */
static int run_one(const char *cmd, const ams_sim_config *c, const char *video,
                   ams_label_reader *labels, const student_spec *student, const char *dir,
                   const char *name, int overlay, ams_sim_result **out);

/* The run repeated with seeds + 1 .. nseeds - 1 (modes that draw random numbers: one-time
 * and ams), each into dir/seed-N/; r gets their mIoU and dir's summary and report are
 * rewritten with them. */
static int run_seeds(const char *cmd, ams_sim_result *r, int nseeds, const char *video,
                     ams_label_reader *labels, const student_spec *student, const char *dir,
                     const char *name) {
    if (nseeds < 2 || (r->config.mode != AMS_SIM_ONE_TIME && r->config.mode != AMS_SIM_AMS))
        return CLI_OK;
    r->nseeds = nseeds;
    r->seed_miou[0] = r->miou;
    r->seed_miou_after[0] = r->miou_after;
    for (int i = 1; i < nseeds; i++) {
        ams_sim_config c = r->config;
        c.train.seed += (uint64_t)i;
        c.record = 0;
        char sub[4200], sname[96];
        snprintf(sub, sizeof sub, "%s/seed-%llu", dir, (unsigned long long)c.train.seed);
        snprintf(sname, sizeof sname, "%s seed %llu", name, (unsigned long long)c.train.seed);
        ams_sim_result *q = NULL;
        int rc = run_one(cmd, &c, video, labels, student, sub, sname, 0, &q);
        if (rc != CLI_OK) return rc;
        r->seed_miou[i] = q->miou;
        r->seed_miou_after[i] = q->miou_after;
        ams_sim_result_free(q);
    }
    ams_err err = {0};
    if (ams_sim_write(r, dir, &err) != AMS_OK) return cli_fail(cmd, &err, NULL);
    double mean, lo, hi;
    ams_sim_seed_stats(r, &mean, &lo, &hi);
    fprintf(stderr, "ams sim [%s]: mIoU over %d seeds %.4f (%.4f..%.4f)\n", name, nseeds, mean,
            lo, hi);
    return CLI_OK;
}

static int run_one(const char *cmd, const ams_sim_config *c, const char *video,
                   ams_label_reader *labels, const student_spec *student, const char *dir,
                   const char *name, int overlay, ams_sim_result **out) {
    ams_err err = {0};
    ams_tfjs_model *me = NULL, *ms = NULL;
    ams_params *pe = NULL, *pserver = NULL;
    ams_sim_student edge, server;
    if (student->dl.arch) { /* two copies of the DeepLab weights */
        int rc = cli_deeplab_params(cmd, &student->dl, &pe);
        if (rc == CLI_OK) rc = cli_deeplab_params(cmd, &student->dl, &pserver);
        if (rc != CLI_OK) {
            ams_params_free(pe);
            return rc;
        }
        edge = (ams_sim_student){pe, ams_sim_deeplab_infer, ams_sim_deeplab_train, student->ctx};
        server = (ams_sim_student){pserver, ams_sim_deeplab_infer, ams_sim_deeplab_train,
                                   student->ctx};
    } else {
        if (ams_tfjs_load(student->path, &me, &err) != AMS_OK ||
            ams_tfjs_load(student->path, &ms, &err) != AMS_OK) {
            ams_tfjs_free(me);
            return cli_fail(cmd, &err, "is the student fetched? (tools/fetch-models)");
        }
        edge = (ams_sim_student){ams_tfjs_params(me), ams_sim_tfjs_infer, ams_trainer_tfjs_build,
                                 me};
        server = (ams_sim_student){ams_tfjs_params(ms), ams_sim_tfjs_infer,
                                   ams_trainer_tfjs_build, ms};
    }
    progress_state ps = {cli_now(), name, 0};
    ams_status s = ams_sim_run(c, video, labels, &edge, &server, progress, &ps, out, &err);
    fputc('\n', stderr);
    ams_tfjs_free(me);
    ams_tfjs_free(ms);
    ams_params_free(pe);
    ams_params_free(pserver);
    if (s != AMS_OK) return cli_fail(cmd, &err, NULL);
    if (!mkdirs(dir)) {
        ams_err_set(&err, AMS_E_IO, "cannot create %s", dir);
        return cli_fail(cmd, &err, NULL);
    }
    const ams_sim_result *r = *out;
    int rc = write_overlay(cmd, &r, 1, video, dir, overlay);
    if (rc != CLI_OK) return rc;
    if (ams_sim_write(*out, dir, &err) != AMS_OK) return cli_fail(cmd, &err, NULL);
    fprintf(stderr,
            "ams sim [%s]: mIoU %.4f (after first training %.4f), up %.1f Kbps, down %.1f Kbps, "
            "%d updates, %d phases, server %.1f s, codec %zu B vs reference %zu B, %.0f s\n",
            name, r->miou, r->miou_after, r->uplink_kbps, r->downlink_kbps, r->updates,
            r->nphases, r->server_compute_s, r->codec_bytes, r->ref_bytes, r->wall_s);
    return CLI_OK;
}

int ams_cmd_sim(int argc, char **argv) {
    const char *cmd = "sim";
    const char *video = NULL, *labels_path = NULL, *student = NULL, *out = NULL, *mode = NULL;
    const char *teacher = NULL, *backend = "cpu", *subset = NULL;
    cli_deeplab dl = {0};
    double label_fps = 10, lw = 384, lh = 288;
    int compare = 0, overlay = 1, nseeds = 1;
    long threads = 0;
    ams_sim_config c;
    ams_sim_config_default(&c);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(HELP, stdout);
            return CLI_OK;
        }
        if (!strcmp(a, "--compare")) { compare = 1; continue; }
        if (!strcmp(a, "--no-restore")) { c.train.restore = 0; continue; }
        if (!strcmp(a, "--no-asr")) { c.asr = 0; continue; }
        if (!strcmp(a, "--no-atr")) { c.atr = 0; continue; }
        if (!strcmp(a, "--no-video")) { overlay = 0; continue; }
        if (i + 1 >= argc) return cli_usage_error(cmd, "unknown or incomplete option '%s'", a);
        const char *v = argv[++i];
        double d = 0;
        long l = 0;
#define DBL(flag, lo, hi, dst)                                                              \
    else if (!strcmp(a, flag)) {                                                            \
        if (!cli_double(v, lo, hi, &d))                                                   \
            return cli_usage_error(cmd, "%s needs a number in %g..%g, got '%s'", flag,      \
                                   (double)(lo), (double)(hi), v);                          \
        dst = d;                                                                            \
    }
#define INT(flag, lo, hi, dst)                                                              \
    else if (!strcmp(a, flag)) {                                                            \
        if (!cli_int(v, lo, hi, &l))                                                        \
            return cli_usage_error(cmd, "%s needs an integer in %ld..%ld, got '%s'", flag,  \
                                   (long)(lo), (long)(hi), v);                              \
        dst = l;                                                                            \
    }
        if (!strcmp(a, "--video")) video = v;
        else if (!strcmp(a, "--labels")) labels_path = v;
        else if (!strcmp(a, "--student")) student = v;
        else if (!strcmp(a, "--teacher")) teacher = v;
        else if (!strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--mode")) mode = v;
        else if (!strcmp(a, "--backend")) backend = v;
        else if (!strcmp(a, "--weights")) dl.weights = v;
        else if (!strcmp(a, "--subset")) subset = v;
        else if (!strcmp(a, "--codec")) {
            if (!strcmp(v, "int8")) c.train.codec.values = AMS_UPDATE_INT8;
            else if (!strcmp(v, "f16")) c.train.codec.values = AMS_UPDATE_F16;
            else return cli_usage_error(cmd, "--codec is int8 or f16, got '%s'", v);
        } else if (!strcmp(a, "--strategy")) {
            ams_err e = {0};
            if (ams_strategy_parse(v, &c.train.strategy, &e) != AMS_OK)
                return cli_usage_error(cmd, "%s", e.msg);
        }
        DBL("--uplink-kbps", 0, 1e6, c.uplink_kbps)
        DBL("--downlink-kbps", 0, 1e6, c.downlink_kbps)
        DBL("--fraction", 1e-6, 1, c.train.fraction)
        DBL("--send-period", 0.1, 1e5, c.send_period)
        DBL("--first-send", 0.1, 1e5, c.first_send)
        DBL("--train-period", 0.1, 1e5, c.train_period)
        DBL("--first-train", 0, 1e6, c.first_train)
        DBL("--memory", 0.1, 1e6, c.memory_len)
        DBL("--eval-fps", 0.01, 1000, c.eval_fps)
        DBL("--one-time-s", 0, 1e6, c.one_time_s)
        DBL("--max-seconds", 0, 1e7, c.max_seconds)
        DBL("--compute-s", 0, 1e6, c.compute_s)
        DBL("--start-rate", 0.1, 1, c.start_rate)
        DBL("--threshold", -100, 100, c.threshold)
        DBL("--lr", 1e-9, 10, c.train.lr)
        DBL("--label-fps", 0.01, 1000, label_fps)
        DBL("--label-width", 16, 4096, lw)
        DBL("--label-height", 16, 4096, lh)
        INT("--iters", 1, 1000000, c.train.iters)
        INT("--seeds", 1, AMS_SIM_MAX_SEEDS, nseeds)
        INT("--coord-probe", 0, 10000, c.train.coord_probe)
        INT("--batch", 1, 1024, c.train.batch)
        INT("--jit-max-iters", 1, 1000000, c.jit_iters)
        INT("--jit-iters", 1, 1000000, c.jit_iters) /* the old name */
        DBL("--jit-target", 0, 1, c.jit_target)
        INT("--width", 16, 4096, c.width)
        INT("--height", 16, 4096, c.height)
        INT("--threads", 0, 1024, threads)
        INT("--classes", 1, 255, dl.classes)
        INT("--os", 8, 16, dl.os)
        else if (!strcmp(a, "--seed")) {
            char *end;
            errno = 0;
            unsigned long long s = strtoull(v, &end, 10);
            if (errno || end == v || *end) return cli_usage_error(cmd, "--seed needs an integer");
            c.train.seed = s;
        } else return cli_usage_error(cmd, "unknown option '%s'", a);
#undef DBL
#undef INT
    }
    if (!video || !labels_path || !student || !out || (!mode && !compare))
        return cli_usage_error(cmd, "--video, --labels, --student, --mode (or --compare) and "
                                    "--out are required");
    ams_err err = {0};
    if (mode && ams_sim_mode_parse(mode, &c.mode, &err) != AMS_OK)
        return cli_usage_error(cmd, "%s", err.msg);
    cli_video_quiet_ffmpeg();
    c.train.be = cli_backend_threads(cmd, backend, threads);
    if (!c.train.be) return CLI_USAGE;

    char spath[4096], tpath[4096];
    const char *sfeeds, *tfeeds, *sout, *tout;
    model_path(student, spath, sizeof spath, &sfeeds, &sout);
    student_spec spec = {spath, {0}, NULL};
    ams_sim_deeplab dctx;
    if (!strcmp(student, "deeplabv3-mnv2")) {
        if (!dl.weights)
            return cli_usage_error(cmd, "--student deeplabv3-mnv2 needs --weights W.safetensors");
        if (!dl.classes) return cli_usage_error(cmd, "--student deeplabv3-mnv2 needs --classes C");
        if (!dl.os) dl.os = 16;
        if (dl.os != 8 && dl.os != 16) return cli_usage_error(cmd, "--os must be 8 or 16");
        if (subset) {
            c.nsubset = parse_subset(subset, c.subset, AMS_CM_MAX_CLASSES, dl.classes);
            if (c.nsubset < 1)
                return cli_usage_error(cmd, "--subset '%s': distinct class ids in 0..%ld, comma "
                                       "separated (at most %d)", subset, dl.classes - 1,
                                       AMS_CM_MAX_CLASSES);
        }
        dl.arch = student;
        dl.backend = backend;
        dl.threads = threads;
        spec.dl = dl;
        ams_sim_deeplab_setup(&dctx, (int)dl.classes, (int)dl.os, &c);
        spec.ctx = &dctx;
        if (access(dl.weights, R_OK) != 0) {
            ams_err_set(&err, AMS_E_IO, "cannot read the weights '%s': %s", dl.weights,
                        strerror(errno));
            return cli_fail(cmd, &err, "make it from a TF DeepLab checkpoint: ams convert CKPT "
                            "W.safetensors --arch deeplabv3-mnv2 --classes C");
        }
    } else if (!strcmp(student, "deeplabv3plus-xception65")) {
        return cli_usage_error(cmd, "the student is deeplabv3-mnv2 or a TF.js model; "
                               "deeplabv3plus-xception65 is a teacher (ams label --teacher)");
    } else if (dl.weights || dl.classes || dl.os || subset) {
        return cli_usage_error(cmd, "--weights, --classes, --os and --subset are for --student "
                               "deeplabv3-mnv2 (not '%s')", student);
    }

    if (access(labels_path, F_OK) != 0) {
        if (!teacher) {
            ams_err_set(&err, AMS_E_NOTFOUND, "labels '%s' do not exist", labels_path);
            return cli_fail(cmd, &err, "make them with `ams label`, or pass --teacher rvm");
        }
        model_path(teacher, tpath, sizeof tpath, &tfeeds, &tout);
        ams_tfjs_model *tm = NULL;
        if (ams_tfjs_load(tpath, &tm, &err) != AMS_OK)
            return cli_fail(cmd, &err, "is the teacher fetched? (tools/fetch-models)");
        ams_tfjs_feed feeds[16];
        int nf = 0;
        char fb[256];
        snprintf(fb, sizeof fb, "%s", tfeeds);
        for (char *tok = strtok(fb, ","); tok && nf < 16; tok = strtok(NULL, ",")) {
            char *eq = strchr(tok, '=');
            if (!eq) continue;
            *eq = 0;
            feeds[nf].name = tok;
            feeds[nf++].value = strtof(eq + 1, NULL);
        }
        progress_state ps = {cli_now(), "label", 0};
        ams_status s = ams_sim_make_labels(tm, tout, feeds, nf, video, label_fps, (int)lw, (int)lh,
                                           c.max_seconds, labels_path, progress, &ps, &err);
        fputc('\n', stderr);
        ams_tfjs_free(tm);
        if (s != AMS_OK) return cli_fail(cmd, &err, NULL);
    }
    ams_label_reader *lr = NULL;
    if (ams_label_reader_open(&lr, labels_path, &err) != AMS_OK) return cli_fail(cmd, &err, NULL);
    const ams_label_info *li = ams_label_reader_info(lr);
    if (spec.dl.arch && li->classes != 0 && li->classes != spec.dl.classes) {
        ams_err_set(&err, AMS_E_INVAL,
                    "the labels %s hold %d classes, the student has --classes %ld", labels_path,
                    li->classes, spec.dl.classes);
        ams_label_reader_free(lr);
        return cli_fail(cmd, &err, "the student and the teacher that made LABELS must share "
                        "their classes (e.g. both Cityscapes' 19)");
    }
    if (spec.dl.arch) { /* the weights load once now: a bad file fails before any run */
        ams_params *probe = NULL;
        int rc = cli_deeplab_params(cmd, &spec.dl, &probe);
        ams_params_free(probe);
        if (rc != CLI_OK) {
            ams_label_reader_free(lr);
            return rc;
        }
    }
    if (ams_label_reader_dropped(lr))
        fprintf(stderr, "ams sim: warning: %llu damaged bytes at the end of %s ignored\n",
                (unsigned long long)ams_label_reader_dropped(lr), labels_path);

    int rc = CLI_OK;
    c.record = overlay;
    if (!compare) {
        ams_sim_result *r = NULL;
        rc = run_one(cmd, &c, video, lr, &spec, out, ams_sim_mode_name(c.mode), overlay, &r);
        if (rc == CLI_OK)
            rc = run_seeds(cmd, r, nseeds, video, lr, &spec, out, ams_sim_mode_name(c.mode));
        if (rc == CLI_OK)
            printf("{\"mode\": \"%s\", \"miou\": %.6f, \"uplink_kbps\": %.3f, "
                   "\"downlink_kbps\": %.3f, \"updates\": %d}\n",
                   ams_sim_mode_name(c.mode), r->miou, r->uplink_kbps, r->downlink_kbps,
                   r->updates);
        ams_sim_result_free(r);
    } else {
        /* the baselines and AMS with the same flags */
        enum { NRUNS = 5 };
        ams_sim_config cs[NRUNS];
        const char *names[NRUNS] = {"pretrained", "one-time", "ams-coord", "ams-full", "jit"};
        for (int i = 0; i < NRUNS; i++) cs[i] = c;
        cs[0].mode = AMS_SIM_PRETRAINED;
        cs[1].mode = AMS_SIM_ONE_TIME;
        cs[2].mode = AMS_SIM_AMS;
        if (cs[2].train.strategy == AMS_STRATEGY_FULL) cs[2].train.strategy = AMS_STRATEGY_COORD;
        cs[3].mode = AMS_SIM_AMS;
        cs[3].train.strategy = AMS_STRATEGY_FULL;
        cs[4].mode = AMS_SIM_JIT;
        ams_sim_result *rs[NRUNS] = {0};
        char sub[4096];
        for (int i = 0; i < NRUNS && rc == CLI_OK; i++) {
            snprintf(sub, sizeof sub, "%s/%s", out, names[i]);
            rc = run_one(cmd, &cs[i], video, lr, &spec, sub, names[i], 0, &rs[i]);
            if (rc == CLI_OK) rc = run_seeds(cmd, rs[i], nseeds, video, lr, &spec, sub, names[i]);
        }
        if (rc == CLI_OK) { /* the overlay: pretrained and the best ams run */
            int best = -1;
            double best_miou = 0;
            for (int i = 0; i < NRUNS; i++) {
                double mean, lo, hi;
                ams_sim_seed_stats(rs[i], &mean, &lo, &hi);
                if (rs[i]->config.mode == AMS_SIM_AMS && (best < 0 || mean > best_miou)) {
                    best = i;
                    best_miou = mean;
                }
            }
            const ams_sim_result *pair[2] = {rs[0], rs[best]};
            rc = write_overlay(cmd, pair, 2, video, out, overlay);
        }
        if (rc == CLI_OK &&
            ams_sim_write_compare((const ams_sim_result *const *)rs, NRUNS, out, &err) != AMS_OK)
            rc = cli_fail(cmd, &err, NULL);
        if (rc == CLI_OK) {
            printf("| run | mIoU%s | mIoU after first training | up Kbps | down Kbps | updates | "
                   "codec B | reference B |\n|---|---|---|---|---|---|---|---|\n",
                   nseeds > 1 ? " (seeds: mean, min-max)" : "");
            for (int i = 0; i < NRUNS; i++) {
                double mean, lo, hi;
                ams_sim_seed_stats(rs[i], &mean, &lo, &hi);
                char m[64];
                if (rs[i]->nseeds > 1) snprintf(m, sizeof m, "%.4f, %.4f-%.4f", mean, lo, hi);
                else snprintf(m, sizeof m, "%.4f", mean);
                printf("| %s | %s | %.4f | %.1f | %.1f | %d | %zu | %zu |\n", names[i], m,
                       rs[i]->miou_after, rs[i]->uplink_kbps, rs[i]->downlink_kbps,
                       rs[i]->updates, rs[i]->codec_bytes, rs[i]->ref_bytes);
            }
        }
        for (int i = 0; i < NRUNS; i++) ams_sim_result_free(rs[i]);
    }
    ams_label_reader_free(lr);
    return rc;
}
