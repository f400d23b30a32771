/* sim_report.c - the emulator's outputs: metrics.jsonl (per second), summary.json and a
 * self-contained report.html (inline SVG plots of mIoU and bandwidth over time, a table). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ams/sim.h"

static const char *const COLORS[] = {"#888888", "#e0a000", "#1f77b4", "#2ca02c",
                                     "#d62728", "#9467bd", "#8c564b", "#17becf"};

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

static void label_of(const ams_sim_result *r, char *buf, size_t cap) {
    const ams_sim_config *c = &r->config;
    if (c->mode == AMS_SIM_AMS && c->train.strategy != AMS_STRATEGY_FULL)
        snprintf(buf, cap, "ams %s %g %%", ams_strategy_name(c->train.strategy),
                 c->train.fraction * 100);
    else if (c->mode == AMS_SIM_AMS)
        snprintf(buf, cap, "ams full");
    else
        snprintf(buf, cap, "%s", ams_sim_mode_name(c->mode));
}

static void summary_obj(FILE *f, const ams_sim_result *r) {
    const ams_sim_config *c = &r->config;
    char name[64];
    label_of(r, name, sizeof name);
    fprintf(f, "{\"name\": \"%s\", \"mode\": \"%s\", \"strategy\": \"%s\", \"fraction\": ", name,
            ams_sim_mode_name(c->mode), ams_strategy_name(c->train.strategy));
    jnum(f, c->train.strategy == AMS_STRATEGY_FULL ? 1.0 : c->train.fraction);
    fputs(", \"miou\": ", f);
    jnum(f, r->miou);
    fputs(", \"miou_after_first_train\": ", f);
    jnum(f, r->miou_after);
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
            "\"train_phases\": %d, \"server_compute_s\": ",
            r->uploads, r->uploaded_frames, r->updates, r->rejected, r->nphases);
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
            ", \"config\": {\"width\": %d, \"height\": %d, \"send_period\": %g, "
            "\"train_period\": %g, \"memory\": %g, \"eval_fps\": %g, \"iters\": %d, "
            "\"batch\": %d, \"lr\": %g, \"restore\": %d, \"seed\": %llu, \"asr\": %d, \"atr\": %d, "
            "\"compute_s\": %g, \"one_time_s\": %g}, \"video\": \"",
            c->width, c->height, c->send_period, c->train_period, c->memory_len, c->eval_fps,
            c->train.iters, c->train.batch, (double)c->train.lr, c->train.restore,
            (unsigned long long)c->train.seed, c->asr, c->atr, c->compute_s, c->one_time_s);
    for (const char *p = r->video; *p; p++)
        if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
        else if ((unsigned char)*p >= 0x20) fputc(*p, f);
    fputs("\", \"phases\": [", f);
    for (int i = 0; i < r->nphases; i++) {
        const ams_sim_phase *p = &r->phases[i];
        fprintf(f,
                "%s{\"start\": %.3f, \"ready\": %.3f, \"arrive\": %.3f, \"measured_s\": %.3f, "
                "\"horizon\": %zu, \"selected\": %zu, \"changed\": %zu, \"bytes\": %zu, "
                "\"reference_bytes\": %zu, \"loss_first\": %.5f, \"loss_last\": %.5f}",
                i ? ", " : "", p->start, p->ready, p->arrive, p->measured_s, p->horizon,
                p->selected, p->changed, p->bytes, p->ref_bytes, p->loss_first, p->loss_last);
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

#define PW 720.0
#define PH 220.0
#define ML 50.0
#define MB 30.0

/* A line plot of per-second values (mIoU, or bandwidth in Kbps when kbps != 0) for n runs. */
static void svg_plot(FILE *f, const ams_sim_result *const *r, int n, int what, const char *title) {
    double tmax = 1, ymax = what == 0 ? 1.0 : 1.0;
    for (int i = 0; i < n; i++) {
        if (r[i]->duration > tmax) tmax = r[i]->duration;
        for (int k = 0; what && k < r[i]->nseconds; k++) {
            double v = (double)(what == 1 ? r[i]->seconds[k].up_bits
                                          : r[i]->seconds[k].down_bits) / 1000;
            if (v > ymax) ymax = v;
        }
    }
    fprintf(f, "<h3>%s</h3>\n<svg width=\"%g\" height=\"%g\" xmlns=\"http://www.w3.org/2000/svg\">\n",
            title, PW + ML + 10, PH + MB + 10);
    fprintf(f, "<rect x=\"%g\" y=\"5\" width=\"%g\" height=\"%g\" fill=\"none\" stroke=\"#ccc\"/>\n",
            ML, PW, PH);
    for (int j = 0; j <= 4; j++) {
        double y = 5 + PH - PH * j / 4;
        fprintf(f, "<text x=\"%g\" y=\"%g\" font-size=\"10\" text-anchor=\"end\">%.3g</text>\n",
                ML - 4, y + 3, ymax * j / 4);
    }
    for (int j = 0; j <= 8; j++)
        fprintf(f, "<text x=\"%g\" y=\"%g\" font-size=\"10\" text-anchor=\"middle\">%.0f s</text>\n",
                ML + PW * j / 8, PH + 20, tmax * j / 8);
    for (int i = 0; i < n; i++) {
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"",
                COLORS[i % 8]);
        for (int k = 0; k < r[i]->nseconds; k++) {
            const ams_sim_second *s = &r[i]->seconds[k];
            double v = what == 0 ? s->miou
                                 : (double)(what == 1 ? s->up_bits : s->down_bits) / 1000;
            if (!isfinite(v)) continue;
            fprintf(f, "%.1f,%.1f ", ML + PW * (s->second + 0.5) / tmax, 5 + PH - PH * v / ymax);
        }
        fputs("\"/>\n", f);
        char name[64];
        label_of(r[i], name, sizeof name);
        fprintf(f, "<text x=\"%g\" y=\"%g\" font-size=\"11\" fill=\"%s\">%s</text>\n", ML + 8,
                20.0 + 13 * i, COLORS[i % 8], name);
    }
    fputs("</svg>\n", f);
}

static void html_report(FILE *f, const ams_sim_result *const *r, int n) {
    fputs("<!doctype html><html><head><meta charset=\"utf-8\"><title>ams sim report</title>\n"
          "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
          "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}</style></head><body>\n",
          f);
    fprintf(f, "<h1>ams sim: %s</h1>\n", n ? r[0]->video : "");
    fputs("<table><tr><th>run</th><th>mIoU</th><th>mIoU after first training</th>"
          "<th>person IoU</th><th>uplink Kbps (budget)</th><th>downlink Kbps (budget)</th>"
          "<th>updates</th><th>phases</th><th>server compute s</th><th>codec bytes</th>"
          "<th>reference format bytes</th><th>ratio</th></tr>\n",
          f);
    for (int i = 0; i < n; i++) {
        char name[64];
        label_of(r[i], name, sizeof name);
        fprintf(f,
                "<tr><td style=\"text-align:left;color:%s\">%s</td><td>%.4f</td><td>%.4f</td>"
                "<td>%.4f</td><td>%.1f (%g)</td><td>%.1f (%g)</td><td>%d</td><td>%d</td>"
                "<td>%.1f</td><td>%zu</td><td>%zu</td><td>%.3f</td></tr>\n",
                COLORS[i % 8], name, r[i]->miou, r[i]->miou_after, r[i]->person_iou,
                r[i]->uplink_kbps, r[i]->config.uplink_kbps, r[i]->downlink_kbps,
                r[i]->config.downlink_kbps, r[i]->updates, r[i]->nphases,
                r[i]->server_compute_s, r[i]->codec_bytes, r[i]->ref_bytes,
                r[i]->ref_bytes ? (double)r[i]->codec_bytes / (double)r[i]->ref_bytes : 0.0);
    }
    fputs("</table>\n<p>mIoU: student vs teacher labels, per frame (background, person), "
          "averaged over evaluated frames. Budgets 0 = unlimited.</p>\n",
          f);
    svg_plot(f, r, n, 0, "mIoU per second");
    svg_plot(f, r, n, 1, "uplink Kbit per second (an upload leaves at the end of its period)");
    svg_plot(f, r, n, 2, "downlink Kbit per second (an update counts when it arrives)");
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
    html_report(f, &r, 1);
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
    html_report(f, r, n);
    return close_file(f, dir, "report.html", err);
}
