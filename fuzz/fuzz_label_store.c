/* fuzz_label_store.c - the label file reader on arbitrary bytes: open, walk the index, look up
 * timestamps and decompress every frame; it must never crash, hang or over-allocate. */
#include <stdint.h>
#include <stdlib.h>

#include "ams/label_store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ams_label_reader *r = NULL;
    ams_err err = {0};
    if (ams_label_reader_open_mem(&r, data, size, &err) != AMS_OK) return 0;
    const ams_label_info *in = ams_label_reader_info(r);
    size_t plane = (size_t)in->width * (size_t)in->height;
    int64_t n = ams_label_reader_count(r);
    if (ams_label_reader_find(r, ams_label_reader_pts(r, n - 1)) != n - 1) abort();
    if (ams_label_reader_find(r, -1e300) != -1) abort();
    if (plane <= (1u << 22)) { /* cap what the harness allocates */
        uint8_t *buf = malloc(plane);
        for (int64_t i = 0; buf && i < n && i < 64; i++) ams_label_reader_read(r, i, buf, plane, &err);
        free(buf);
    }
    ams_label_reader_free(r);
    return 0;
}
