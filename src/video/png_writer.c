/* png_writer.c - one RGB24 frame as an 8-bit RGB PNG (libpng), written atomically. */
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ams/video.h"
#include "ams/video_out.h"
#include "video/av_status.h"

/* libpng reports errors by longjmp; keep the part that can jump small and free of locals that
 * change after setjmp. */
static int write_png(FILE *f, const uint8_t *rgb, int width, int height) {
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    if (!png) return -1;
    png_infop info = png_create_info_struct(png);
    if (!info || setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, info ? &info : NULL);
        return -1;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8, PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < height; y++)
        png_write_row(png, (png_const_bytep)(rgb + (size_t)y * (size_t)width * 3));
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return 0;
}

ams_status ams_png_write_rgb(const char *path, const uint8_t *rgb, int width, int height,
                             ams_err *err) {
    AMS_VFAIL_IF(!path || !rgb, err, AMS_E_INVAL, "ams_png_write_rgb: NULL argument");
    AMS_VFAIL_IF(width < 1 || height < 1 || width > AMS_VIDEO_MAX_DIM || height > AMS_VIDEO_MAX_DIM,
                 err, AMS_E_RANGE, "%s: image size %dx%d", path, width, height);
    char tmp[4200];
    AMS_VFAIL_IF(strlen(path) >= 4096, err, AMS_E_RANGE, "output path too long");
    snprintf(tmp, sizeof tmp, "%s.tmp-XXXXXX", path);
    int fd = mkstemp(tmp);
    AMS_VFAIL_IF(fd < 0, err, AMS_E_IO, "%s: cannot create a file in its folder", path);
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        close(fd);
        unlink(tmp);
        AMS_VFAIL(err, AMS_E_IO, "%s: cannot write", tmp);
    }
    int bad = write_png(f, rgb, width, height);
    bad |= fflush(f) != 0;
    bad |= fclose(f) != 0;
    if (!bad) {
        chmod(tmp, 0644);
        bad = rename(tmp, path) != 0;
    }
    if (bad) {
        unlink(tmp);
        AMS_VFAIL(err, AMS_E_IO, "%s: cannot write the PNG", path);
    }
    return AMS_OK;
}
