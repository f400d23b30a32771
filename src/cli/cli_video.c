/* cli_video.c - option parsing and progress output shared by the video subcommands. */
#include "cli/cli_video.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <signal.h>

#include <libavutil/log.h>

#include "cli/cli_common.h"

int cli_double(const char *s, double lo, double hi, double *out) {
    if (!s || !*s) return 0;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v) || v < lo || v > hi) return 0;
    *out = v;
    return 1;
}

void cli_progress_start(cli_progress *p, const char *cmd, const char *unit) {
    p->cmd = cmd;
    p->unit = unit;
    p->t0 = p->last = cli_now();
    p->shown = 0;
}

void cli_progress_update(cli_progress *p, long done, long total) {
    double now = cli_now();
    if (now - p->t0 < 1.0 || now - p->last < 0.25) return;
    p->last = now;
    p->shown = 1;
    if (total > 0 && done > 0) {
        double eta = (now - p->t0) * (double)(total - done) / (double)done;
        fprintf(stderr, "\rams %s: %ld/%ld %s (%.0f %%) ETA %.0f s   ", p->cmd, done, total,
                p->unit, 100.0 * (double)done / (double)total, eta < 0 ? 0 : eta);
    } else {
        fprintf(stderr, "\rams %s: %ld %s, %.0f s   ", p->cmd, done, p->unit, now - p->t0);
    }
    fflush(stderr);
}

void cli_progress_end(cli_progress *p) {
    if (p->shown) fprintf(stderr, "\n");
    p->shown = 0;
}

/* Set from a signal handler: the one piece of process state a signal may touch. */
static volatile sig_atomic_t interrupted_flag;

static void on_signal(int sig) {
    (void)sig;
    interrupted_flag = 1;
}

void cli_interrupt_install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESETHAND; /* the second Ctrl-C terminates */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int cli_interrupted(void) { return interrupted_flag != 0; }

void cli_json_string(FILE *f, const char *s) {
    if (!s) {
        fputs("null", f);
        return;
    }
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
        else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
        else fputc(*p, f);
    }
    fputc('"', f);
}

void cli_video_quiet_ffmpeg(void) {
    const char *e = getenv("AMS_FFMPEG_LOG");
    av_log_set_level(e && *e == '1' ? AV_LOG_INFO : AV_LOG_QUIET);
}
