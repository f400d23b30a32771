/* sim_report.c - the emulator's outputs: metrics.jsonl (per second), summary.json and a
 * self-contained report.html (the table, the overlay video when there is one, inline SVG
 * plots of mIoU and Kbps over time and of mIoU vs Kbps). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sim_internal.h"

static const char *const COLORS[] = {"#888888", "#e0a000", "#1f77b4", "#2ca02c",
                                     "#d62728", "#9467bd", "#8c564b", "#17becf"};

#define WINDOW_S 10 /* seconds of the trailing window of the over-time plots */

/* a JSON number, or null for NaN/inf */
static void jnum(FILE *f, double v) {
    if (isfinite(v)) fprintf(f, "%.6g", v);
    else fputs("null", f);
}

static FILE *open_in(const char *dir, const char *name, ams_err *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) ams_err_set(err, AMS_E_IO, "cannot write %s", path);
    return f;
}

static ams_status close_file(FILE *f, const char *dir, const char *name, ams_err *err) {
    int bad = ferror(f);
    bad |= fclose(f) != 0;
    AMS_FAIL_IF(bad, err, AMS_E_IO, "write error on %s/%s", dir, name);
    return AMS_OK;
}

void ams_sim_run_name(const ams_sim_result *r, char *buf, size_t cap) {
    const ams_sim_config *c = &r->config;
    if (c->mode == AMS_SIM_AMS && c->train.strategy != AMS_STRATEGY_FULL)
        snprintf(buf, cap, "ams %s %g %%%s", ams_strategy_name(c->train.strategy),
                 c->train.fraction * 100, c->train.restore ? "" : " no-restore");
    else if (c->mode == AMS_SIM_AMS)
        snprintf(buf, cap, "ams full%s", c->train.restore ? "" : " no-restore");
    else
        snprintf(buf, cap, "%s", ams_sim_mode_name(c->mode));
}

/* mean Adam steps per phase (jit: per keyframe) */
static double mean_iters(const ams_sim_result *r) {
    double s = 0;
    for (int i = 0; i < r->nphases; i++) s += r->phases[i].iters;
    return r->nphases ? s / r->nphases : NAN;
}

void ams_sim_seed_stats(const ams_sim_result *r, double *mean, double *lo, double *hi) {
    *mean = *lo = *hi = r->miou;
    if (r->nseeds < 2) return;
    double sum = 0;
    *lo = *hi = r->seed_miou[0];
    for (int i = 0; i < r->nseeds; i++) {
        sum += r->seed_miou[i];
        if (r->seed_miou[i] < *lo) *lo = r->seed_miou[i];
        if (r->seed_miou[i] > *hi) *hi = r->seed_miou[i];
    }
    *mean = sum / r->nseeds;
}

/* "seeds": [...], "seed_miou": [...], "seed_miou_after_first_train": [...], "miou_mean" */
static void seeds_json(FILE *f, const ams_sim_result *r) {
    if (r->nseeds < 2) return;
    fputs(", \"seeds\": [", f);
    for (int i = 0; i < r->nseeds; i++)
        fprintf(f, "%s%llu", i ? ", " : "", (unsigned long long)(r->config.train.seed + (uint64_t)i));
    fputs("], \"seed_miou\": [", f);
    for (int i = 0; i < r->nseeds; i++) {
        if (i) fputs(", ", f);
        jnum(f, r->seed_miou[i]);
    }
    fputs("], \"seed_miou_after_first_train\": [", f);
    for (int i = 0; i < r->nseeds; i++) {
        if (i) fputs(", ", f);
        jnum(f, r->seed_miou_after[i]);
    }
    double mean, lo, hi;
    ams_sim_seed_stats(r, &mean, &lo, &hi);
    fputs("], \"miou_mean\": ", f);
    jnum(f, mean);
}

static void summary_obj(FILE *f, const ams_sim_result *r) {
    const ams_sim_config *c = &r->config;
    char name[64];
    ams_sim_run_name(r, name, sizeof name);
    fprintf(f, "{\"name\": \"%s\", \"mode\": \"%s\", \"strategy\": \"%s\", \"fraction\": ", name,
            ams_sim_mode_name(c->mode),
            ams_strategy_name(c->mode == AMS_SIM_JIT ? AMS_STRATEGY_FULL : c->train.strategy));
    jnum(f, c->train.strategy == AMS_STRATEGY_FULL || c->mode == AMS_SIM_JIT
                ? 1.0 : c->train.fraction);
    fputs(", \"miou\": ", f);
    jnum(f, r->miou);
    fputs(", \"miou_after_first_train\": ", f);
    jnum(f, r->miou_after);
    seeds_json(f, r);
    fputs(", \"person_iou\": ", f);
    jnum(f, r->person_iou);
    fputs(", \"pixel_accuracy\": ", f);
    jnum(f, r->pixel_accuracy);
    fprintf(f, ", \"eval_frames\": %d, \"uplink_kbps\": ", r->eval_frames);
    jnum(f, r->uplink_kbps);
    fputs(", \"downlink_kbps\": ", f);
    jnum(f, r->downlink_kbps);
    fputs(", \"uplink_budget_kbps\": ", f);
    jnum(f, c->uplink_kbps);
    fputs(", \"downlink_budget_kbps\": ", f);
    jnum(f, c->downlink_kbps);
    fprintf(f,
            ", \"uploads\": %d, \"uploaded_frames\": %d, \"updates\": %d, \"rejected\": %d, "
            "\"train_phases\": %d, \"mean_iters\": ",
            r->uploads, r->uploaded_frames, r->updates, r->rejected, r->nphases);
    jnum(f, mean_iters(r));
    fputs(", \"server_compute_s\": ", f);
    jnum(f, r->server_compute_s);
    fputs(", \"server_measured_s\": ", f);
    jnum(f, r->server_measured_s);
    fprintf(f, ", \"codec_bytes\": %zu, \"reference_format_bytes\": %zu, \"codec_vs_reference\": ",
            r->codec_bytes, r->ref_bytes);
    jnum(f, r->ref_bytes ? (double)r->codec_bytes / (double)r->ref_bytes : NAN);
    fputs(", \"duration_s\": ", f);
    jnum(f, r->duration);
    fputs(", \"wall_s\": ", f);
    jnum(f, r->wall_s);
    fprintf(f,
            ", \"config\": {\"width\": %d, \"height\": %d, \"send_period\": %g, \"first_send\": %g, "
            "\"train_period\": %g, \"memory\": %g, \"eval_fps\": %g, \"iters\": %d, "
            "\"batch\": %d, \"lr\": %g, \"coord_probe\": %d, \"restore\": %d, \"seed\": %llu, "
            "\"asr\": %d, \"atr\": %d, "
            "\"compute_s\": %g, \"one_time_s\": %g, \"jit_iters\": %d, \"jit_target\": %g",
            c->width, c->height, c->send_period,
            c->first_send >= 0 ? c->first_send : c->send_period / 2, c->train_period,
            c->memory_len, c->eval_fps,
            c->train.iters, c->train.batch, (double)c->train.lr, c->train.coord_probe,
            c->train.restore,
            (unsigned long long)c->train.seed, c->asr, c->atr, c->compute_s, c->one_time_s,
            c->jit_iters, c->jit_target);
    if (c->nsubset > 0) { /* the class subset of the metric */
        fputs(", \"subset\": [", f);
        for (int i = 0; i < c->nsubset; i++) fprintf(f, "%s%d", i ? ", " : "", c->subset[i]);
        fputc(']', f);
    }
    fputs("}, \"video\": \"", f);
    for (const char *p = r->video; *p; p++)
        if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
        else if ((unsigned char)*p >= 0x20) fputc(*p, f);
    fputs("\", \"phases\": [", f);
    for (int i = 0; i < r->nphases; i++) {
        const ams_sim_phase *p = &r->phases[i];
        fprintf(f,
                "%s{\"start\": %.3f, \"ready\": %.3f, \"arrive\": %.3f, \"measured_s\": %.3f, "
                "\"horizon\": %zu, \"selected\": %zu, \"changed\": %zu, \"bytes\": %zu, "
                "\"reference_bytes\": %zu, \"iters\": %d, \"loss_first\": ",
                i ? ", " : "", p->start, p->ready, p->arrive, p->measured_s, p->horizon,
                p->selected, p->changed, p->bytes, p->ref_bytes, p->iters);
        jnum(f, p->loss_first);
        fputs(", \"loss_last\": ", f);
        jnum(f, p->loss_last);
        if (r->config.mode == AMS_SIM_JIT) {
            fputs(", \"miou_first\": ", f);
            jnum(f, p->miou_first);
            fputs(", \"miou_last\": ", f);
            jnum(f, p->miou_last);
        }
        fputc('}', f);
    }
    fputs("]}", f);
}

static void metrics_jsonl(FILE *f, const ams_sim_result *r) {
    for (int k = 0; k < r->nseconds; k++) {
        const ams_sim_second *s = &r->seconds[k];
        fprintf(f, "{\"t\": %d, \"miou\": ", s->second);
        jnum(f, s->miou);
        fprintf(f, ", \"frames\": %d, \"r\": ", s->frames);
        jnum(f, s->rate);
        fprintf(f, ", \"up_bits\": %llu, \"down_bits\": %llu, \"model_version\": %d}\n",
                (unsigned long long)s->up_bits, (unsigned long long)s->down_bits, s->version);
    }
}

/* Per-second series over the trailing WINDOW_S seconds: what 0 = mIoU (frame-weighted mean),
 * 1 = uplink Kbps, 2 = downlink Kbps; x = end of the second. */
static void window_series(const ams_sim_result *r, int what, double *x, double *y) {
    for (int k = 0; k < r->nseconds; k++) {
        double num = 0, den = 0;
        int a = k - WINDOW_S + 1 < 0 ? 0 : k - WINDOW_S + 1;
        for (int j = a; j <= k; j++) {
            const ams_sim_second *s = &r->seconds[j];
            if (what == 0) {
                if (s->frames > 0 && isfinite(s->miou)) {
                    num += s->miou * s->frames;
                    den += s->frames;
                }
            } else {
                num += (double)(what == 1 ? s->up_bits : s->down_bits) / 1000;
                den += 1;
            }
        }
        x[k] = k + 1;
        y[k] = den > 0 ? num / den : NAN;
    }
}

/* A plot over time for n runs; budgets (what 1, 2) as dashed lines; mIoU (what 0): a tick per
 * update at the time the edge applied it, one row per run. */
static void time_plot(FILE *f, const ams_sim_result *const *r, int n, int what, int id) {
    ams_svg_series s[3 * 8];
    double *buf[3 * 8] = {0};
    char names[8][64];
    int ns = 0;
    double tmax = 1;
    for (int i = 0; i < n && i < 8; i++) tmax = fmax(tmax, r[i]->duration);
    for (int i = 0; i < n && i < 8; i++) {
        int m = r[i]->nseconds;
        double *xy = malloc(2 * (size_t)(m > 2 ? m : 2) * sizeof *xy);
        if (!xy) continue;
        buf[ns] = xy;
        window_series(r[i], what, xy, xy + m);
        ams_sim_run_name(r[i], names[i], sizeof names[i]);
        s[ns++] = (ams_svg_series){xy, xy + m, m, COLORS[i % 8], names[i], 0, 0};
    }
    for (int i = 0; what == 0 && i < n && i < 8; i++) {
        int m = r[i]->nphases;
        double *xy = malloc(2 * (size_t)(m > 0 ? m : 1) * sizeof *xy);
        if (!xy) continue;
        buf[ns] = xy;
        int k = 0;
        for (int j = 0; j < m; j++)
            if (r[i]->phases[j].arrive < r[i]->duration) { /* applied before the end */
                xy[k] = r[i]->phases[j].arrive;
                xy[m + k++] = 2 + 8 * i;
            }
        s[ns++] = (ams_svg_series){xy, xy + m, k, COLORS[i % 8], NULL, 0, 3};
    }
    /* budgets: one dashed line per distinct budget */
    double seen[8];
    int nseen = 0;
    for (int i = 0; what && i < n && i < 8; i++) {
        double b = what == 1 ? r[i]->config.uplink_kbps : r[i]->config.downlink_kbps;
        int dup = 0;
        for (int j = 0; j < nseen; j++) dup |= seen[j] == b;
        if (b <= 0 || dup) continue;
        seen[nseen++] = b;
        double *xy = malloc(4 * sizeof *xy);
        if (!xy) continue;
        xy[0] = 0, xy[1] = tmax, xy[2] = b, xy[3] = b;
        buf[ns] = xy;
        s[ns++] = (ams_svg_series){xy, xy + 2, 2, "#444444", nseen == 1 ? "budget" : NULL, 1, 0};
    }
    ams_svg_plot p = {.xlabel = "video time (s)", .xmin = 0, .xmax = tmax, .id = id};
    if (what == 0) {
        p.title = "mIoU over time (vs the teacher, mean over the last 10 s; ticks: updates "
                  "applied)";
        p.ylabel = "mIoU";
        p.ymin = 0;
        p.ymax = 1;
    } else {
        p.title = what == 1 ? "uplink Kbps over time (mean over the last 10 s; an upload counts "
                              "when it leaves)"
                            : "downlink Kbps over time (mean over the last 10 s; an update counts "
                              "when it arrives)";
        p.ylabel = "Kbps";
    }
    ams_svg_write(f, &p, s, ns);
    for (int i = 0; i < ns; i++) free(buf[i]);
}

/* mIoU vs Kbps: per run, a filled circle at its downlink Kbps, a hollow square at its uplink
 * (drawn first, so a circle at the same place stays visible) */
static void tradeoff_plot(FILE *f, const ams_sim_result *const *r, int n, int id) {
    ams_svg_series s[2 * 8 + 1];
    double xy[8][4];
    char names[8][64];
    int ns = 0;
    for (int i = 0; i < n && i < 8; i++) {
        ams_sim_run_name(r[i], names[i], sizeof names[i]);
        xy[i][0] = r[i]->downlink_kbps;
        xy[i][1] = r[i]->miou;
        xy[i][2] = r[i]->uplink_kbps;
        xy[i][3] = r[i]->miou;
        s[ns++] = (ams_svg_series){&xy[i][2], &xy[i][3], 1, COLORS[i % 8], NULL, 0, 2};
    }
    for (int i = 0; i < n && i < 8; i++)
        s[ns++] = (ams_svg_series){&xy[i][0], &xy[i][1], 1, COLORS[i % 8], names[i], 0, 1};
    static const double none = NAN;
    s[ns++] = (ams_svg_series){&none, &none, 0, "#444444", "(square: uplink)", 0, 2};
    double lo = 1, hi = 0;
    for (int i = 0; i < n && i < 8; i++)
        if (isfinite(r[i]->miou)) {
            lo = fmin(lo, r[i]->miou);
            hi = fmax(hi, r[i]->miou);
        }
    ams_svg_plot p = {.title = "mIoU vs Kbps (one point per run; circle: downlink, square: "
                               "uplink)",
                      .xlabel = "Kbps (measured over the run)", .ylabel = "mean mIoU",
                      .label_points = 1, .id = id};
    double xmax = 1;
    for (int i = 0; i < n && i < 8; i++)
        xmax = fmax(xmax, fmax(r[i]->uplink_kbps, r[i]->downlink_kbps) * 1.08);
    p.xmin = -0.03 * xmax; /* points at 0 Kbps (pretrained) stay whole */
    p.xmax = xmax;
    if (hi >= lo) { /* zoom on the runs, with some room */
        double pad = fmax(0.02, (hi - lo) * 0.25);
        p.ymin = fmax(0, floor((lo - pad) * 50) / 50);
        p.ymax = fmin(1, ceil((hi + pad) * 50) / 50);
    }
    ams_svg_write(f, &p, s, ns);
}

static void phases_table(FILE *f, const ams_sim_result *r, const char *name) {
    if (r->nphases == 0) return;
    int jit = r->config.mode == AMS_SIM_JIT;
    fputs("<details><summary>training phases of ", f);
    ams_html_escape(f, name);
    fprintf(f, " (%d)</summary><table><tr><th>start s</th><th>ready s</th><th>applied s</th>"
               "<th>steps</th><th>frames</th><th>elements sent</th><th>loss first</th>"
               "<th>loss last</th>%s<th>bytes</th><th>reference bytes</th></tr>\n",
            r->nphases,
            jit ? "<th>keyframe mIoU before</th><th>after</th>" : "");
    for (int i = 0; i < r->nphases; i++) {
        const ams_sim_phase *p = &r->phases[i];
        fprintf(f, "<tr><td>%.1f</td><td>%.1f</td><td>%.1f</td><td>%d</td><td>%zu</td>"
                   "<td>%zu</td><td>%.4f</td><td>%.4f</td>",
                p->start, p->ready, p->arrive, p->iters, p->horizon, p->changed, p->loss_first,
                p->loss_last);
        if (jit) fprintf(f, "<td>%.3f</td><td>%.3f</td>", p->miou_first, p->miou_last);
        fprintf(f, "<td>%zu</td><td>%zu</td></tr>\n", p->bytes, p->ref_bytes);
    }
    fputs("</table></details>\n", f);
}

static void html_report(FILE *f, const ams_sim_result *const *r, int n, const char *dir) {
    fputs("<!doctype html><html><head><meta charset=\"utf-8\"><title>ams sim report</title>\n"
          "<style>body{font-family:sans-serif;margin:2em;max-width:1100px}"
          "table{border-collapse:collapse;margin:0.5em 0}"
          "td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}"
          "th{background:#f4f4f4}details{margin:0.3em 0}</style></head><body>\n",
          f);
    fputs("<h1>ams sim: ", f);
    if (n) ams_html_escape(f, r[0]->video);
    fputs("</h1>\n", f);
    if (n) {
        const ams_sim_config *c = &r[0]->config;
        fprintf(f, "<p>%.1f s of video; student at %dx%d, evaluated at %g frames/s against the "
                   "teacher's labels; budgets %g Kbps up, %g Kbps down (0 = unlimited); send "
                   "period %g s, train period %g s, horizon %g s, K %d Adam steps of batch %d, "
                   "lr %g; server compute per phase %s.</p>\n",
                r[0]->duration, c->width, c->height, c->eval_fps, c->uplink_kbps,
                c->downlink_kbps, c->send_period, c->train_period, c->memory_len,
                c->train.iters, c->train.batch, (double)c->train.lr,
                c->compute_s >= 0 ? "fixed (--compute-s)" : "measured on this machine");
    }
    int seeds = 0;
    for (int i = 0; i < n; i++)
        if (r[i]->nseeds > seeds) seeds = r[i]->nseeds;
    fputs("<table><tr><th>run</th>", f);
    if (seeds > 1) fprintf(f, "<th>mIoU over %d seeds: mean (min&ndash;max)</th>", seeds);
    fputs("<th>mIoU</th><th>mIoU after first training</th>"
          "<th>person IoU</th><th>pixel accuracy</th><th>uplink Kbps</th><th>downlink Kbps</th>"
          "<th>updates</th><th>phases</th><th>steps per phase</th><th>server compute s</th>"
          "<th>our codec bytes</th><th>reference format bytes</th><th>ours / reference</th>"
          "</tr>\n",
          f);
    for (int i = 0; i < n; i++) {
        char name[64];
        ams_sim_run_name(r[i], name, sizeof name);
        fprintf(f, "<tr><td style=\"text-align:left;color:%s\"><b>%s</b></td>", COLORS[i % 8],
                name);
        if (seeds > 1) {
            double mean, lo, hi;
            ams_sim_seed_stats(r[i], &mean, &lo, &hi);
            if (r[i]->nseeds > 1)
                fprintf(f, "<td><b>%.4f</b> (%.4f&ndash;%.4f)</td>", mean, lo, hi);
            else
                fprintf(f, "<td>%.4f (no seed)</td>", mean);
        }
        fprintf(f,
                "<td>%.4f</td>"
                "<td>%.4f</td><td>%.4f</td><td>%.4f</td><td>%.1f</td><td>%.1f</td><td>%d</td>"
                "<td>%d</td><td>%.1f</td><td>%.1f</td><td>%zu</td><td>%zu</td><td>%.3f</td></tr>\n",
                r[i]->miou, r[i]->miou_after, r[i]->person_iou,
                r[i]->pixel_accuracy, r[i]->uplink_kbps, r[i]->downlink_kbps, r[i]->updates,
                r[i]->nphases, r[i]->nphases ? mean_iters(r[i]) : 0.0, r[i]->server_compute_s,
                r[i]->codec_bytes, r[i]->ref_bytes,
                r[i]->ref_bytes ? (double)r[i]->codec_bytes / (double)r[i]->ref_bytes : 0.0);
    }
    if (seeds > 1)
        fprintf(f, "</table>\n<p>Over seeds: the run repeated with seeds %llu..%llu (the "
                   "training batches and masks; pretrained and jit use no random numbers). The "
                   "other columns, the plots and the video are of seed %llu.",
                (unsigned long long)r[0]->config.train.seed,
                (unsigned long long)(r[0]->config.train.seed + (uint64_t)seeds - 1),
                (unsigned long long)r[0]->config.train.seed);
    else
        fputs("</table>\n<p>", f);
    fputs(" mIoU: the student's prediction vs the teacher's label, per evaluated "
          "frame, averaged over frames; after first training: frames from the first training "
          "time on. Kbps: bits sent over the run's duration. Our codec: int8 (or fp16) deltas, "
          "zstd (AMSU); reference format: the AMS reference's packbits mask + fp16 values, gzip "
          "-9 (whole-model runs: every tensor).</p>\n",
          f);
    char path[4096];
    snprintf(path, sizeof path, "%s/overlay.mp4", dir);
    if (access(path, R_OK) == 0) {
        fputs("<h3>overlay video</h3>\n<video src=\"overlay.mp4\" controls loop muted "
              "playsinline style=\"max-width:100%\"></video>\n<p>Each evaluated frame at the "
              "student's size: the runs named in each panel (the student's mask in red), then "
              "the teacher's label (green).</p>\n",
              f);
    }
    int id = 0;
    time_plot(f, r, n, 0, id++);
    time_plot(f, r, n, 2, id++);
    time_plot(f, r, n, 1, id++);
    tradeoff_plot(f, r, n, id++);
    for (int i = 0; i < n; i++) {
        char name[64];
        ams_sim_run_name(r[i], name, sizeof name);
        phases_table(f, r[i], name);
    }
    fputs("</body></html>\n", f);
}

ams_status ams_sim_write(const ams_sim_result *r, const char *dir, ams_err *err) {
    FILE *f = open_in(dir, "metrics.jsonl", err);
    if (!f) return AMS_E_IO;
    metrics_jsonl(f, r);
    AMS_TRY(close_file(f, dir, "metrics.jsonl", err));
    if (!(f = open_in(dir, "summary.json", err))) return AMS_E_IO;
    summary_obj(f, r);
    fputc('\n', f);
    AMS_TRY(close_file(f, dir, "summary.json", err));
    if (!(f = open_in(dir, "report.html", err))) return AMS_E_IO;
    html_report(f, &r, 1, dir);
    return close_file(f, dir, "report.html", err);
}

ams_status ams_sim_write_compare(const ams_sim_result *const *r, int n, const char *dir,
                                 ams_err *err) {
    FILE *f = open_in(dir, "summary.json", err);
    if (!f) return AMS_E_IO;
    fputs("[\n", f);
    for (int i = 0; i < n; i++) {
        summary_obj(f, r[i]);
        fputs(i + 1 < n ? ",\n" : "\n", f);
    }
    fputs("]\n", f);
    AMS_TRY(close_file(f, dir, "summary.json", err));
    if (!(f = open_in(dir, "report.html", err))) return AMS_E_IO;
    html_report(f, r, n, dir);
    return close_file(f, dir, "report.html", err);
}
