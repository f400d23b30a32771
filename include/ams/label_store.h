/* label_store.h - per-frame label planes (uint8 class ids, 255 = ignore) with their video
 * timestamps, stored losslessly and compactly in ONE appendable, crash-resumable file.
 *
 *     ams_label_info info = {.width = 512, .height = 256, .classes = 19};
 *     snprintf(info.meta, sizeof info.meta, "{\"teacher\": \"rvm\"}");
 *     ams_label_writer *w = NULL;
 *     ams_label_writer_open(&w, "vtest.labels", &info, &err);   // creates, or resumes
 *     double t0 = ams_label_writer_last_pts(w);                  // -INFINITY when new
 *     for (each frame with pts > t0) ams_label_writer_append(w, pts, labels, &err);
 *     ams_label_writer_close(w, &err);
 *     ams_label_writer_free(w);
 *
 *     ams_label_reader *r = NULL;
 *     ams_label_reader_open(&r, "vtest.labels", &err);
 *     int64_t i = ams_label_reader_find(r, 12.3);                // label shown at t = 12.3 s
 *     ams_label_reader_read(r, i, buf, sizeof buf, &err);
 *     ams_label_reader_free(r);
 *
 * File format, version 1 (all integers little endian):
 *   header:  "AMSLABEL" | u32 version=1 | u32 header_size | u32 width | u32 height |
 *            u32 classes | u32 meta_len | meta bytes (meta_len) | u32 crc32(all before)
 *   records, back to back, one per frame in increasing pts:
 *            "LFRM" | u32 payload_size | f64 pts (seconds) | u32 crc32(the 16 bytes before) |
 *            payload = one zstd frame (content size = width*height, with its own checksum)
 * The index (pts, offset, size) of every record is rebuilt at open by walking the record
 * headers (no payload is read), so appending never rewrites anything. A record is appended
 * with one write(): a crash or Ctrl-C leaves at most one incomplete record at the end. Readers
 * stop at the first record that is incomplete or whose header does not verify and report the
 * ignored bytes (ams_label_reader_dropped: the caller warns); a writer reopening the file
 * truncates them and continues after the last complete frame (and restarts a file that holds
 * only a prefix of the header it would write itself: a crash during creation).
 *
 * Bounds (untrusted files): width, height 1..16384, width*height <= AMS_LABEL_MAX_PIXELS,
 * classes 0..256, meta < AMS_LABEL_META_MAX bytes, payload <= zstd's bound for one plane,
 * at most AMS_LABEL_MAX_FRAMES records, pts finite and strictly increasing.
 *
 * Threads: one reader or writer per thread. A writer holds an exclusive flock on the file.
 */
#ifndef AMS_LABEL_STORE_H
#define AMS_LABEL_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "ams/status.h"

#define AMS_LABEL_META_MAX 1024                 /* bytes of meta text, NUL included */
#define AMS_LABEL_MAX_PIXELS (64u * 1024 * 1024) /* width * height */
#define AMS_LABEL_MAX_FRAMES (1 << 24)
#define AMS_LABEL_IGNORE 255 /* the label value that means "no label" */

typedef struct ams_label_info {
    int width, height;             /* size of every label plane */
    int classes;                   /* number of classes (ids 0..classes-1); 0 = unknown */
    char meta[AMS_LABEL_META_MAX]; /* free text (e.g. JSON: teacher, video, fps), NUL-ended */
} ams_label_info;

typedef struct ams_label_reader ams_label_reader;
typedef struct ams_label_writer ams_label_writer;

/* Opens a label file for reading and indexes it. @return AMS_OK and *out (free with
 * ams_label_reader_free); AMS_E_NOTFOUND/AMS_E_IO if it cannot be read; AMS_E_FORMAT for a bad
 * header. An incomplete or damaged tail is not an error (see ams_label_reader_dropped). */
ams_status ams_label_reader_open(ams_label_reader **out, const char *path, ams_err *err);

/* The same over size bytes in memory (which must outlive the reader). */
ams_status ams_label_reader_open_mem(ams_label_reader **out, const uint8_t *data, size_t size,
                                     ams_err *err);

/* Frees the reader; NULL is a no-op. */
void ams_label_reader_free(ams_label_reader *r);

const ams_label_info *ams_label_reader_info(const ams_label_reader *r);
int64_t ams_label_reader_count(const ams_label_reader *r);      /* complete frames */
double ams_label_reader_pts(const ams_label_reader *r, int64_t i); /* NAN if i is out of range */
uint64_t ams_label_reader_dropped(const ams_label_reader *r);   /* bytes ignored at the end */

/* Index of the latest frame with pts <= t (+1 us), or -1 if every frame is later. */
int64_t ams_label_reader_find(const ams_label_reader *r, double t);

/* Decompresses frame i into dst (cap >= width*height bytes). @return AMS_E_RANGE for a bad i
 * or a small cap; AMS_E_FORMAT if the payload does not decompress to exactly one plane. */
ams_status ams_label_reader_read(ams_label_reader *r, int64_t i, uint8_t *dst, size_t cap,
                                 ams_err *err);

/* Opens path for appending: creates it with info, or, if it exists, checks that its width,
 * height, classes and meta equal info's (AMS_E_INVAL otherwise), drops an incomplete tail and
 * continues after the last complete frame. @return AMS_OK and *out (free with
 * ams_label_writer_free); AMS_E_IO if locked by another writer or not writable. */
ams_status ams_label_writer_open(ams_label_writer **out, const char *path,
                                 const ams_label_info *info, ams_err *err);

int64_t ams_label_writer_count(const ams_label_writer *w);     /* frames in the file */
double ams_label_writer_last_pts(const ams_label_writer *w);   /* -INFINITY when empty */
uint64_t ams_label_writer_dropped(const ams_label_writer *w);  /* tail bytes dropped at open */

/* Appends one plane (width*height bytes) shown at pts seconds (finite, > the last pts).
 * Compressed with zstd; written with a single write(). */
ams_status ams_label_writer_append(ams_label_writer *w, double pts, const uint8_t *labels,
                                   ams_err *err);

/* fsync: what was appended survives a power loss too. */
ams_status ams_label_writer_sync(ams_label_writer *w, ams_err *err);

/* Syncs and closes the file (the writer must still be freed). */
ams_status ams_label_writer_close(ams_label_writer *w, ams_err *err);

/* Frees the writer (closing the file without sync if still open); NULL is a no-op. */
void ams_label_writer_free(ams_label_writer *w);

#endif
