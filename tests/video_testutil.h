/* video_testutil.h - helpers shared by the video tests: scratch folders, generated clips made
 * with the ffmpeg CLI, and the real sample video from tools/fetch-videos. */
#ifndef AMS_TEST_VIDEO_TESTUTIL_H
#define AMS_TEST_VIDEO_TESTUTIL_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libavutil/log.h>

/* A fresh folder under the build tree (removed by vt_cleanup). */
static inline const char *vt_scratch(void) {
    static char dir[4096];
    if (!dir[0]) {
        av_log_set_level(AV_LOG_QUIET);
        snprintf(dir, sizeof dir, "%s/video-test-XXXXXX", AMS_BINARY_DIR);
        if (!mkdtemp(dir)) {
            perror("mkdtemp");
            exit(2);
        }
    }
    return dir;
}

static inline void vt_cleanup(void) {
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", vt_scratch());
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", vt_scratch());
}

/* Formats a path inside the scratch folder (a rotating set of buffers). */
static inline const char *vt_path(const char *fmt, ...) {
    static char bufs[8][6144];
    static int k;
    char name[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    char *b = bufs[k++ & 7];
    snprintf(b, 6144, "%s/%s", vt_scratch(), name);
    return b;
}

/* Runs a shell command quietly; 0 on success. */
static inline int vt_sh(const char *fmt, ...) {
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    if (rc != 0) fprintf(stderr, "command failed (%d): %s\n", rc, cmd);
    return rc;
}

/* Path of vtest.avi via tools/fetch-videos, or NULL (with a printed reason) when fetching is
 * impossible (offline and not cached). */
static inline const char *vt_vtest(void) {
    static char path[4096];
    static int tried;
    av_log_set_level(AV_LOG_QUIET);
    if (tried) return path[0] ? path : NULL;
    tried = 1;
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "sh '%s/tools/fetch-videos' 2>&1", AMS_SOURCE_DIR);
    FILE *p = popen(cmd, "r");
    char line[4096] = "", last[4096] = "";
    while (p && fgets(line, sizeof line, p)) snprintf(last, sizeof last, "%s", line);
    int rc = p ? pclose(p) : -1;
    last[strcspn(last, "\n")] = 0;
    if (rc != 0 || access(last, R_OK) != 0) {
        printf("SKIP real-video checks: tools/fetch-videos could not provide vtest.avi (%s)\n", last);
        return NULL;
    }
    snprintf(path, sizeof path, "%s", last);
    return path;
}

/* Mean of channel c over an RGB24 image. */
static inline double vt_mean(const unsigned char *rgb, int w, int h, int c) {
    double s = 0;
    for (int i = 0; i < w * h; i++) s += rgb[3 * i + c];
    return s / (w * h);
}

#endif
