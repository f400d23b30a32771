/* sim_svg.c - small inline SVG plots for the emulator's report.html: lines over time and
 * scatter points, with axes, "nice" ticks and a legend; no scripts, no network. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "sim_internal.h"

#define SW 720.0 /* the whole picture */
#define SH 260.0
#define ML 58.0  /* margins: left (y ticks), right, top, bottom (x ticks + label) */
#define MR 150.0 /* the legend */
#define MT 26.0
#define MB 40.0

void ams_html_escape(FILE *f, const char *text) {
    for (const char *p = text; p && *p; p++) {
        switch (*p) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*p, f);
        }
    }
}

/* A tick step of 1, 2 or 5 x 10^k giving about 5 ticks over span. */
static double nice_step(double span) {
    if (!(span > 0) || !isfinite(span)) return 1;
    double raw = span / 5, p = pow(10, floor(log10(raw))), m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

void ams_svg_write(FILE *f, const ams_svg_plot *p, const ams_svg_series *s, int ns) {
    double x0 = p->xmin, x1 = p->xmax, y0 = p->ymin, y1 = p->ymax;
    if (!(x1 > x0) || !(y1 > y0)) { /* ranges from the data */
        double dx0 = INFINITY, dx1 = -INFINITY, dy0 = INFINITY, dy1 = -INFINITY;
        for (int i = 0; i < ns; i++)
            for (int k = 0; k < s[i].n; k++) {
                if (!isfinite(s[i].x[k]) || !isfinite(s[i].y[k])) continue;
                dx0 = fmin(dx0, s[i].x[k]);
                dx1 = fmax(dx1, s[i].x[k]);
                dy0 = fmin(dy0, s[i].y[k]);
                dy1 = fmax(dy1, s[i].y[k]);
            }
        if (!(x1 > x0)) {
            x0 = isfinite(dx0) ? fmin(0, dx0) : 0;
            x1 = isfinite(dx1) ? dx1 * 1.08 : 1;
            if (!(x1 > x0)) x1 = x0 + 1;
        }
        if (!(y1 > y0)) {
            y0 = isfinite(dy0) ? fmin(0, dy0) : 0;
            y1 = isfinite(dy1) ? dy1 * 1.1 : 1;
            if (!(y1 > y0)) y1 = y0 + 1;
        }
    }
    double pw = SW - ML - MR, ph = SH - MT - MB;
#define PX(x) (ML + pw * ((x) - x0) / (x1 - x0))
#define PY(y) (MT + ph - ph * ((y) - y0) / (y1 - y0))
    fprintf(f, "<svg width=\"%g\" height=\"%g\" viewBox=\"0 0 %g %g\" "
               "xmlns=\"http://www.w3.org/2000/svg\" font-family=\"sans-serif\">\n",
            SW, SH, SW, SH);
    fputs("<text x=\"6\" y=\"16\" font-size=\"13\" font-weight=\"bold\">", f);
    ams_html_escape(f, p->title);
    fputs("</text>\n", f);
    fprintf(f, "<rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" fill=\"none\" "
               "stroke=\"#bbb\"/>\n", ML, MT, pw, ph);
    double ys = nice_step(y1 - y0), xs = nice_step(x1 - x0);
    for (double y = ceil(y0 / ys) * ys; y <= y1 + 1e-9 * ys; y += ys) {
        fprintf(f, "<line x1=\"%g\" x2=\"%g\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>"
                   "<text x=\"%g\" y=\"%.1f\" font-size=\"10\" text-anchor=\"end\">%g</text>\n",
                ML, ML + pw, PY(y), PY(y), ML - 4, PY(y) + 3, fabs(y) < 1e-12 ? 0.0 : y);
    }
    for (double x = ceil(x0 / xs) * xs; x <= x1 + 1e-9 * xs; x += xs)
        fprintf(f, "<text x=\"%.1f\" y=\"%g\" font-size=\"10\" text-anchor=\"middle\">%g</text>\n",
                PX(x), MT + ph + 13, fabs(x) < 1e-12 ? 0.0 : x);
    fprintf(f, "<text x=\"%g\" y=\"%g\" font-size=\"11\" text-anchor=\"middle\">", ML + pw / 2,
            SH - 8);
    ams_html_escape(f, p->xlabel);
    fprintf(f, "</text>\n<text x=\"12\" y=\"%g\" font-size=\"11\" text-anchor=\"middle\" "
               "transform=\"rotate(-90 12 %g)\">", MT + ph / 2, MT + ph / 2);
    ams_html_escape(f, p->ylabel);
    fputs("</text>\n", f);
    fprintf(f, "<clipPath id=\"clip%d\"><rect x=\"%g\" y=\"%g\" width=\"%g\" "
               "height=\"%g\"/></clipPath>\n<g clip-path=\"url(#clip%d)\">\n",
            p->id, ML - 6, MT - 6, pw + 12, ph + 12, p->id);
    for (int i = 0; i < ns; i++) {
        const ams_svg_series *q = &s[i];
        if (q->points == 0) {
            int open = 0;
            for (int k = 0; k < q->n; k++) {
                if (!isfinite(q->x[k]) || !isfinite(q->y[k])) {
                    if (open) fputs("\"/>\n", f);
                    open = 0;
                    continue;
                }
                if (!open)
                    fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.6\"%s "
                               "points=\"", q->color,
                            q->dashed ? " stroke-dasharray=\"5,4\"" : "");
                open = 1;
                fprintf(f, "%.1f,%.1f ", PX(q->x[k]), PY(q->y[k]));
            }
            if (open) fputs("\"/>\n", f);
            continue;
        }
        if (q->points == 3) {
            for (int k = 0; k < q->n; k++) {
                if (!isfinite(q->x[k]) || !isfinite(q->y[k])) continue;
                double base = MT + ph - q->y[k];
                fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                           "stroke-width=\"2\"/>\n", PX(q->x[k]), PX(q->x[k]), base, base - 7,
                        q->color);
            }
            continue;
        }
        for (int k = 0; k < q->n; k++) {
            if (!isfinite(q->x[k]) || !isfinite(q->y[k])) continue;
            double px = PX(q->x[k]), py = PY(q->y[k]);
            if (q->points == 1)
                fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"5\" fill=\"%s\"/>\n", px, py,
                        q->color);
            else
                fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"9\" height=\"9\" fill=\"white\" "
                           "stroke=\"%s\" stroke-width=\"2\"/>\n", px - 4.5, py - 4.5, q->color);
            if (p->label_points && q->name) { /* above, below, above ... : fewer overlaps */
                fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" fill=\"%s\">", px + 7,
                        i % 2 ? py + 14 : py - 6, q->color);
                ams_html_escape(f, q->name);
                fputs("</text>\n", f);
            }
        }
    }
    fputs("</g>\n", f);
    /* legend */
    int row = 0;
    for (int i = 0; i < ns; i++) {
        if (!s[i].name) continue;
        double ly = MT + 8 + 15 * row++, lx = ML + pw + 12;
        if (s[i].points == 0)
            fprintf(f, "<line x1=\"%g\" x2=\"%g\" y1=\"%g\" y2=\"%g\" stroke=\"%s\" "
                       "stroke-width=\"2\"%s/>", lx, lx + 18, ly, ly, s[i].color,
                    s[i].dashed ? " stroke-dasharray=\"5,4\"" : "");
        else if (s[i].points == 1)
            fprintf(f, "<circle cx=\"%g\" cy=\"%g\" r=\"5\" fill=\"%s\"/>", lx + 9, ly,
                    s[i].color);
        else
            fprintf(f, "<rect x=\"%g\" y=\"%g\" width=\"9\" height=\"9\" fill=\"white\" "
                       "stroke=\"%s\" stroke-width=\"2\"/>", lx + 4.5, ly - 4.5, s[i].color);
        fprintf(f, "<text x=\"%g\" y=\"%g\" font-size=\"11\">", lx + 24, ly + 4);
        ams_html_escape(f, s[i].name);
        fputs("</text>\n", f);
    }
    fputs("</svg>\n", f);
#undef PX
#undef PY
}
