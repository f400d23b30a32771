/* cmd_edge.c - `ams edge`: the AMS edge client. Runs the student on every frame of a video
 * (or camera), samples and uploads frames to the server (include/ams/edge.h), applies the
 * server's updates between frames; the last stdout line is the JSON of DESIGN.md. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ams/edge.h"
#include "ams/netkey.h"
#include "ams/tfjs.h"
#include "ams/tls.h"
#include "ams/video.h"
#include "cli/cli_common.h"
#include "cli/cli_model.h"
#include "cli/cli_video.h"
#include "cli/commands.h"

static const char *const HELP =
    "usage: ams edge --server HOST:PORT --id NAME --key FILE --video V [--fast]\n"
    "                [--model M] [--width W --height H] [--seconds T] [--period S] [--kbps B]\n"
    "                [--first-period S] [--drain S] [--queue N] [--stats-period S] [--quiet]\n"
    "                [--threads N] [--backend cpu|ref] [--tls-ca FILE [--tls-name NAME]]\n"
    "  Runs the student M (default selfie; the server's --student) on every frame of V (a file\n"
    "  or /dev/videoN) at W x H (default: the model's size), at the source's pace or, with\n"
    "  --fast, as fast as it can; uploads sampled frames (H.264 at B Kbps, 150; one upload per\n"
    "  S seconds of video, 10; the first after --first-period S, S/2) and applies the\n"
    "  server's updates between frames. --seconds: stop after T seconds of video. --drain:\n"
    "  seconds to wait at the end for the last updates (10).\n"
    "  Live lines on stderr (unless --quiet): each applied update (version, weights hash) and,\n"
    "  from the server's stats every --stats-period S seconds (1), the mIoU against the\n"
    "  teacher's labels of this edge's model and of the pretrained model on its latest\n"
    "  uploaded frames (a server with --teacher).\n"
    "  The last stdout line is JSON: frames, fps, updates_applied, updates_rejected,\n"
    "  model_version, model_hash, uplink_kbps, downlink_kbps, server_miou,\n"
    "  server_miou_pretrained, ...\n"
    "  --tls-ca FILE  TLS 1.3 to a server run with --tls-cert: FILE (PEM) is the certificate to\n"
    "                trust (the server's cert.pem from ams keygen --tls-cert, or its CA); the\n"
    "                server's certificate must chain to it and carry the server's name\n"
    "  --tls-name NAME  the name to check (default: HOST of --server; an IP is checked as one)\n";

/* A JSON number, or null for NaN. */
static const char *jnum(char buf[32], double v) {
    if (isnan(v) || isinf(v)) snprintf(buf, 32, "null");
    else snprintf(buf, 32, "%.4f", v);
    return buf;
}

/* What the live lines showed last. */
typedef struct live {
    uint64_t version, labelled;
    double shown_at;
} live;

/* Live lines on stderr: each applied update (version, hash); every few seconds the server's
 * accuracy figures for this edge. */
static void show_live(ams_edge *e, live *lv, const char *id, double t, long frames, double t0) {
    ams_edge_stats ls;
    ams_edge_stats_get(e, &ls);
    double now = cli_now();
    if (ls.model_version != lv->version) {
        char hx[AMS_HASH_HEX_LEN];
        ams_hash_hex(ls.model_hash, hx);
        fprintf(stderr, "ams edge [%s]: t %.1f s: model v%llu applied, hash %s\n", id, t,
                (unsigned long long)ls.model_version, hx);
        lv->version = ls.model_version;
    }
    if ((ls.server_labelled == lv->labelled || now - lv->shown_at < 2) && now - lv->shown_at < 10)
        return;
    char acc[128] = "no accuracy from the server yet";
    if (!isnan(ls.server_miou))
        snprintf(acc, sizeof acc, "mIoU vs teacher %.3f (pretrained %.3f)", ls.server_miou,
                 ls.server_miou_pretrained);
    double vt = t > 0 ? t : 1;
    fprintf(stderr, "ams edge [%s]: t %.1f s, %.1f fps, model v%llu, %s, %llu frames labelled, "
                    "up %.0f Kbps, down %.1f Kbps%s%s%s%s\n", id, t,
            frames / (now - t0 > 0 ? now - t0 : 1), (unsigned long long)ls.model_version, acc,
            (unsigned long long)ls.server_labelled, ls.bytes_up * 8.0 / 1000.0 / vt,
            ls.bytes_down * 8.0 / 1000.0 / vt, ls.connected ? "" : " (not connected",
            ls.connected ? "" : ls.last_error[0] ? ": " : "", ls.connected ? "" : ls.last_error,
            ls.connected ? "" : ")");
    lv->labelled = ls.server_labelled;
    lv->shown_at = now;
}

static void sleep_s(double s) {
    if (s <= 0) return;
    struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

int ams_cmd_edge(int argc, char **argv) {
    const char *cmd = "edge";
    const char *server = NULL, *id = NULL, *keyfile = NULL, *video = NULL, *model = "selfie";
    const char *backend = NULL, *tls_ca = NULL, *tls_name = NULL;
    int fast = 0, quiet = 0;
    long width = 0, height = 0, threads = 1, queue = 4;
    double seconds = -1, period = 10, first_period = -1, kbps = 150, drain = 10, stats_period = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(HELP, stdout);
            return CLI_OK;
        }
        if (!strcmp(a, "--fast")) {
            fast = 1;
            continue;
        }
        if (!strcmp(a, "--quiet")) {
            quiet = 1;
            continue;
        }
        if (i + 1 >= argc) return cli_usage_error(cmd, "unknown or incomplete option '%s'", a);
        const char *v = argv[++i];
        int ok = 1;
        if (!strcmp(a, "--server")) server = v;
        else if (!strcmp(a, "--id")) id = v;
        else if (!strcmp(a, "--key")) keyfile = v;
        else if (!strcmp(a, "--video")) video = v;
        else if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--backend")) backend = v;
        else if (!strcmp(a, "--tls-ca")) tls_ca = v;
        else if (!strcmp(a, "--tls-name")) tls_name = v;
        else if (!strcmp(a, "--width")) ok = cli_int(v, 16, 4096, &width);
        else if (!strcmp(a, "--height")) ok = cli_int(v, 16, 4096, &height);
        else if (!strcmp(a, "--threads")) ok = cli_int(v, 1, 1024, &threads);
        else if (!strcmp(a, "--queue")) ok = cli_int(v, 1, 1024, &queue);
        else if (!strcmp(a, "--seconds")) ok = cli_double(v, 0.001, 1e9, &seconds);
        else if (!strcmp(a, "--period")) ok = cli_double(v, 0.1, 3600, &period);
        else if (!strcmp(a, "--first-period")) ok = cli_double(v, 0.1, 3600, &first_period);
        else if (!strcmp(a, "--kbps")) ok = cli_double(v, 1, 1e6, &kbps);
        else if (!strcmp(a, "--drain")) ok = cli_double(v, 0, 3600, &drain);
        else if (!strcmp(a, "--stats-period")) ok = cli_double(v, 0, 3600, &stats_period);
        else return cli_usage_error(cmd, "unknown option '%s'", a);
        if (!ok) return cli_usage_error(cmd, "bad value '%s' for %s", v, a);
    }
    if (!server || !id || !keyfile || !video)
        return cli_usage_error(cmd, "--server, --id, --key and --video are required");
    if (!ams_proto_id_valid(id)) return cli_usage_error(cmd, "bad --id '%s'", id);
    if (tls_name && !tls_ca) return cli_usage_error(cmd, "--tls-name goes with --tls-ca");
    if ((width == 0) != (height == 0) || (width & 1) || (height & 1))
        return cli_usage_error(cmd, "--width and --height go together and must be even");
    cli_video_quiet_ffmpeg();
    cli_interrupt_install();

    ams_err err = {0};
    ams_edge_config ec;
    ams_edge_config_default(&ec);
    if (ams_netkey_load(keyfile, ec.key, &err) != AMS_OK)
        return cli_fail(cmd, &err, "make keys with: ams keygen --id NAME --keys DIR");
    if (tls_ca) { /* fail now, not after loading the model (the edge makes its own) */
        ams_tls *t = ams_tls_client_new(tls_ca, tls_name, &err);
        if (!t) return cli_fail(cmd, &err, "--tls-ca takes the server's cert.pem (ams keygen --tls-cert)");
        ams_tls_free(t);
    }
    cli_model cm;
    if (cli_model_resolve(cmd, model, &cm) != CLI_OK) return CLI_FAIL;
    const ams_backend *be = cli_backend_threads(cmd, backend, threads);
    if (!be) return CLI_FAIL;

    int rc = CLI_FAIL;
    ams_tfjs_model *m = NULL;
    ams_graph *g = NULL;
    ams_video_reader *r = NULL;
    ams_edge *e = NULL;
    float *initial = NULL, *x = NULL;
    if (ams_tfjs_load(cm.path, &m, &err) != AMS_OK) goto fail;
    int ch = 0, rh = 0, rw = 0;
    ams_tfjs_image_input(m, &ch, &rh, &rw);
    if (!width) {
        width = rw > 0 ? (rw + 1) / 2 * 2 : 256;
        height = rh > 0 ? (rh + 1) / 2 * 2 : 256;
    }
    if (ch != 3) {
        ams_err_set(&err, AMS_E_SHAPE, "%s: the image input has %d channels, not 3", model, ch);
        goto fail;
    }
    ams_params *p = ams_tfjs_params(m);
    g = ams_graph_new(p);
    ams_tfjs_build_opts bo = {.n = 1, .h = (int)height, .w = (int)width, .feeds = cm.feeds,
                              .nfeeds = cm.nfeeds};
    const char *outs[1] = {cm.output};
    int yout = -1, xin = -1;
    if (!g) {
        ams_err_set(&err, AMS_E_NOMEM, "graph");
        goto fail;
    }
    if (ams_tfjs_build(m, g, &bo, cm.output ? outs : NULL, 1, &yout, &xin, &err) != AMS_OK ||
        ams_graph_plan(g, AMS_PLAN_INFER, &err) != AMS_OK)
        goto fail;
    ams_video_opts vo = {.width = (int)width, .height = (int)height};
    if (ams_video_open(&r, video, &vo, &err) != AMS_OK) goto fail;
    const ams_video_info *vi = ams_video_info_get(r);
    size_t npix = (size_t)width * (size_t)height;
    initial = malloc(p->total * sizeof(float));
    x = malloc(npix * 3 * sizeof(float));
    if (!initial || !x) {
        ams_err_set(&err, AMS_E_NOMEM, "buffers");
        goto fail;
    }
    memcpy(initial, p->values, p->total * sizeof(float));
    ec.server = server;
    ec.id = id;
    ec.model_id = cm.name;
    ec.total = p->total;
    ec.initial = initial;
    ec.width = (int)width;
    ec.height = (int)height;
    ec.period = period;
    ec.first_period = first_period;
    ec.kbps = kbps;
    ec.queue_max = (int)queue;
    ec.stats_period = stats_period;
    ec.tls_ca = tls_ca;
    ec.tls_name = tls_name;
    e = ams_edge_new(&ec, p->values, &err);
    if (!e) goto fail;

    long frames = 0;
    live lv = {.shown_at = cli_now()};
    double person = 0, t_end = 0, t0 = cli_now(), infer_s = 0;
    double frame_dur = vi->fps > 0 ? 1.0 / vi->fps : 1.0 / 30;
    for (;;) {
        if (cli_interrupted()) break;
        ams_video_frame f;
        if (ams_video_read(r, &f, &err) != AMS_OK) goto fail;
        if (!f.rgb || (seconds > 0 && f.pts >= seconds)) break;
        if (!fast) sleep_s(f.pts - (cli_now() - t0)); /* the source's pace */
        if (ams_edge_sync(e, &err) != AMS_OK) goto fail; /* between frames: updates */
        for (size_t i = 0; i < npix * 3; i++) x[i] = f.rgb[i] * (1.0f / 255.0f);
        double ts = cli_now();
        if (ams_graph_set_input(g, xin, x, &err) != AMS_OK || ams_graph_forward(g, be, &err) != AMS_OK)
            goto fail;
        infer_s += cli_now() - ts;
        const float *y = ams_graph_value(g, yout);
        size_t on = 0;
        for (size_t i = 0; i < npix; i++) on += y[i] > 0.5f;
        person += (double)on / (double)npix;
        if (ams_edge_offer(e, f.rgb, f.pts, &err) != AMS_OK) goto fail;
        frames++;
        t_end = f.pts + frame_dur;
        if (!quiet) show_live(e, &lv, id, f.pts, frames, t0);
    }
    double wall = cli_now() - t0;
    /* drain: the last upload out, the last updates in (live lines go on meanwhile) */
    for (double td = cli_now();;) {
        double t1 = cli_now(), step = drain < 1.5 ? drain : 1.5;
        if (ams_edge_finish(e, step, 1.0, &err) != AMS_OK) goto fail;
        /* returned before its own deadline: nothing left to send or receive */
        int idle = cli_now() - t1 < step - 0.05;
        if (!quiet) show_live(e, &lv, id, t_end, frames, t0);
        if (idle || cli_now() - td >= drain || cli_interrupted()) break;
    }
    ams_edge_stats s;
    ams_edge_stats_get(e, &s);
    char hex[AMS_HASH_HEX_LEN], m1[32], m2[32];
    ams_hash_hex(s.model_hash, hex);
    double vt = t_end > 0 ? t_end : 1;
    if (s.last_error[0]) fprintf(stderr, "ams edge: last network event: %s\n", s.last_error);
    printf("{\"frames\":%ld,\"fps\":%.3f,\"infer_ms\":%.2f,\"updates_applied\":%llu,"
           "\"updates_rejected\":%llu,\"model_version\":%llu,\"model_hash\":\"%s\","
           "\"uplink_kbps\":%.3f,\"downlink_kbps\":%.3f,\"video_seconds\":%.3f,"
           "\"samples\":%llu,\"samples_dropped\":%llu,\"uploads\":%llu,\"connects\":%llu,"
           "\"sample_rate\":%.3f,\"person_fraction\":%.4f,\"width\":%ld,\"height\":%ld,"
           "\"server_miou\":%s,\"server_miou_pretrained\":%s,\"server_labelled\":%llu}\n",
           frames, frames / (wall > 0 ? wall : 1), frames ? infer_s * 1e3 / (double)frames : 0,
           (unsigned long long)s.updates_applied, (unsigned long long)s.updates_rejected,
           (unsigned long long)s.model_version, hex, s.bytes_up * 8.0 / 1000.0 / vt,
           s.bytes_down * 8.0 / 1000.0 / vt, vt, (unsigned long long)s.samples,
           (unsigned long long)s.samples_dropped, (unsigned long long)s.uploads_sent,
           (unsigned long long)s.connects, s.sample_rate,
           frames ? person / (double)frames : 0, width, height, jnum(m1, s.server_miou),
           jnum(m2, s.server_miou_pretrained), (unsigned long long)s.server_labelled);
    rc = CLI_OK;
    goto done;
fail:
    rc = cli_fail(cmd, &err, NULL);
done:
    ams_edge_free(e);
    ams_video_free(r);
    ams_graph_free(g);
    ams_tfjs_free(m);
    free(initial);
    free(x);
    return rc;
}
