/* file_io.h - bounded whole-file reads and atomic (temporary file + rename) writes,
 * shared by the model-layer file formats (.npy, .safetensors). Internal to src/. */
#ifndef AMS_MODELS_FILE_IO_H
#define AMS_MODELS_FILE_IO_H

#include "ams/status.h"

/* One piece of a file being written. */
typedef struct ams_chunk {
    const void *data; /* n bytes (may be NULL when n == 0) */
    size_t n;
} ams_chunk;

/* Reads the regular file at path into a new buffer (*buf, free with free(); at least one
 * byte is allocated so *buf != NULL on success) of *len bytes. A file larger than max
 * bytes is AMS_E_RANGE. Every error message starts with the path. */
ams_status ams_file_read_all(const char *path, size_t max, uint8_t **buf, size_t *len,
                             ams_err *err);

/* Writes the chunks, in order, to "path.tmp.<pid>", flushes it to disk and renames it
 * over path, so readers see the old file or the whole new one, never a part. On failure
 * the temporary file is removed and path is untouched. Messages start with the path. */
ams_status ams_file_write_atomic(const char *path, const ams_chunk *chunks, int nchunks,
                                 ams_err *err);

#endif
