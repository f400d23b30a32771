/* cli_video.h - what the video subcommands (encode, overlay) share: number options,
 * a progress line on stderr, FFmpeg's log level. */
#ifndef AMS_CLI_VIDEO_H
#define AMS_CLI_VIDEO_H

#include <stdio.h>

/* Parses a finite decimal number in [lo, hi]; 0 on failure. */
int cli_double(const char *s, double lo, double hi, double *out);

/* Progress on stderr, at most 4 updates a second, and only once the work has run for a
 * second: "ams <cmd>: <done>/<total> <unit> (P %) ETA Ns". total <= 0: unknown. */
typedef struct cli_progress {
    const char *cmd, *unit;
    double t0, last;
    int shown;
} cli_progress;
void cli_progress_start(cli_progress *p, const char *cmd, const char *unit);
void cli_progress_update(cli_progress *p, long done, long total);
void cli_progress_end(cli_progress *p); /* ends the line if anything was shown */

/* Writes s as a JSON string literal (quoted, escaped); NULL as null. */
void cli_json_string(FILE *f, const char *s);

/* Ctrl-C (SIGINT/SIGTERM) handling for long loops: after install, the first signal only sets
 * a flag that cli_interrupted() returns, so the command can stop between frames and finish its
 * output with what it did; a second signal kills as usual. */
void cli_interrupt_install(void);
int cli_interrupted(void);

/* Keeps FFmpeg quiet (errors come back as ams_status); AMS_FFMPEG_LOG=1 shows its log. */
void cli_video_quiet_ffmpeg(void);

#endif
