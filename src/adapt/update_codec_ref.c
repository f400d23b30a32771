/* update_codec_ref.c - the AMS reference's update format (per-tensor packbits masks, then fp16
 * values of the masked elements, gzip -9), to report its size next to ours. */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "ams/tensor.h"
#include "ams/update_codec.h"

static int covered(const ams_param_info *pi, int all_tensors) {
    return all_tensors || pi->trainable;
}

static ams_status check_layout(const ams_params *l, ams_err *err) {
    for (int t = 0; t < l->count; t++) {
        size_t end;
        AMS_FAIL_IF(l->info[t].numel < 0 ||
                        !ams_size_add_ok(l->info[t].offset, (size_t)l->info[t].numel, &end) ||
                        end > l->total,
                    err, AMS_E_INVAL, "parameter '%s' lies outside the flat buffer",
                    l->info[t].name);
    }
    return AMS_OK;
}

ams_status ams_update_ref_encode(const ams_params *layout, int all_tensors, const uint8_t *mask,
                                 const float *values, uint8_t **out, size_t *out_len,
                                 ams_err *err) {
    *out = NULL;
    *out_len = 0;
    AMS_TRY(check_layout(layout, err));
    size_t bytes = 0;
    for (int t = 0; t < layout->count; t++) {
        const ams_param_info *pi = &layout->info[t];
        if (!covered(pi, all_tensors)) continue;
        bytes += ((size_t)pi->numel + 7) / 8;
        for (size_t i = pi->offset; i < pi->offset + (size_t)pi->numel; i++) bytes += 2 * !!mask[i];
    }
    AMS_FAIL_IF(bytes > UINT32_MAX / 2, err, AMS_E_RANGE, "reference update of %zu bytes", bytes);
    uint8_t *raw = calloc(bytes ? bytes : 1, 1);
    AMS_FAIL_IF(!raw, err, AMS_E_NOMEM, "out of memory for %zu bytes", bytes);
    size_t r = 0;
    for (int t = 0; t < layout->count; t++) { /* np.packbits: big-endian bit order, padded */
        const ams_param_info *pi = &layout->info[t];
        if (!covered(pi, all_tensors)) continue;
        for (size_t j = 0; j < (size_t)pi->numel; j++)
            if (mask[pi->offset + j]) raw[r + j / 8] |= (uint8_t)(0x80u >> (j % 8));
        r += ((size_t)pi->numel + 7) / 8;
    }
    for (int t = 0; t < layout->count; t++) {
        const ams_param_info *pi = &layout->info[t];
        if (!covered(pi, all_tensors)) continue;
        for (size_t i = pi->offset; i < pi->offset + (size_t)pi->numel; i++) {
            if (!mask[i]) continue;
            uint16_t h = ams_f32_to_f16(values[i]); /* .astype(np.float16).tobytes(): LE */
            raw[r++] = (uint8_t)h;
            raw[r++] = (uint8_t)(h >> 8);
        }
    }

    z_stream z;
    memset(&z, 0, sizeof z);
    /* windowBits 15 + 16: a gzip wrapper; level 9 as `gzip -9` */
    if (deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        free(raw);
        AMS_FAIL(err, AMS_E_INTERNAL, "zlib deflateInit2 failed");
    }
    uLong cap = deflateBound(&z, (uLong)bytes);
    uint8_t *gz = malloc(cap);
    ams_status st = AMS_OK;
    if (!gz) {
        st = ams_err_set(err, AMS_E_NOMEM, "out of memory for %lu bytes", (unsigned long)cap);
    } else {
        z.next_in = raw;
        z.avail_in = (uInt)bytes;
        z.next_out = gz;
        z.avail_out = (uInt)cap;
        if (deflate(&z, Z_FINISH) != Z_STREAM_END) {
            st = ams_err_set(err, AMS_E_INTERNAL, "zlib deflate did not finish");
        } else {
            *out = gz;
            *out_len = z.total_out;
            gz = NULL;
        }
    }
    deflateEnd(&z);
    free(gz);
    free(raw);
    return st;
}

ams_status ams_update_ref_decode(const ams_params *layout, int all_tensors, const uint8_t *buf,
                                 size_t len, uint8_t *mask, float *values, ams_err *err) {
    AMS_TRY(check_layout(layout, err));
    size_t mask_bytes = 0, max_bytes;
    for (int t = 0; t < layout->count; t++)
        if (covered(&layout->info[t], all_tensors))
            mask_bytes += ((size_t)layout->info[t].numel + 7) / 8;
    max_bytes = mask_bytes + 2 * layout->total; /* every element sent */
    AMS_FAIL_IF(max_bytes > UINT32_MAX / 2 || len > UINT32_MAX, err, AMS_E_RANGE,
                "reference update too large");
    uint8_t *raw = malloc(max_bytes ? max_bytes : 1);
    AMS_FAIL_IF(!raw, err, AMS_E_NOMEM, "out of memory for %zu bytes", max_bytes);
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, 15 + 16) != Z_OK) {
        free(raw);
        AMS_FAIL(err, AMS_E_INTERNAL, "zlib inflateInit2 failed");
    }
    z.next_in = (Bytef *)(uintptr_t)buf; /* zlib's API is not const-correct */
    z.avail_in = (uInt)len;
    z.next_out = raw;
    z.avail_out = (uInt)max_bytes;
    int zr = inflate(&z, Z_FINISH);
    size_t got = z.total_out;
    inflateEnd(&z);
    if (zr != Z_STREAM_END) {
        free(raw);
        AMS_FAIL(err, AMS_E_FORMAT, "reference update: gzip stream is corrupt or too long");
    }
    size_t r = 0, sent = 0;
    for (int t = 0; t < layout->count; t++) {
        const ams_param_info *pi = &layout->info[t];
        if (!covered(pi, all_tensors)) continue;
        if (got - r < ((size_t)pi->numel + 7) / 8) break;
        for (size_t j = 0; j < (size_t)pi->numel; j++) {
            mask[pi->offset + j] = (raw[r + j / 8] >> (7 - j % 8)) & 1;
            sent += mask[pi->offset + j];
        }
        r += ((size_t)pi->numel + 7) / 8;
    }
    if (r != mask_bytes || got - r != 2 * sent) {
        free(raw);
        AMS_FAIL(err, AMS_E_FORMAT, "reference update: %zu bytes do not fit the layout", got);
    }
    for (int t = 0; t < layout->count; t++) {
        const ams_param_info *pi = &layout->info[t];
        if (!covered(pi, all_tensors)) continue;
        for (size_t i = pi->offset; i < pi->offset + (size_t)pi->numel; i++) {
            if (!mask[i]) continue;
            values[i] = ams_f16_to_f32((uint16_t)(raw[r] | raw[r + 1] << 8));
            r += 2;
        }
    }
    free(raw);
    return AMS_OK;
}
