/* fuzz_update_decode.c - hostile bytes into the AMSU update decoder (and apply) never crash,
 * leak or read out of bounds. The first byte picks how deep the bytes get:
 *   0: the bytes are the message (the checksum stops almost everything: the honest case);
 *   1: the message with its trailing CRC-32 recomputed (every header and payload check);
 *   2: the bytes are a raw payload, wrapped in a valid header + zstd frame + CRC (the varint,
 *      segment, index and value parsers).
 * Messages are decoded for a 4096-element model, which bounds every allocation. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "ams/update_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MODEL 4096
#define INPUT_CAP (1 << 16)

static void put32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static void fix_crc(uint8_t *m, size_t len) {
    uLong c = crc32(0L, m, (uInt)(len - 4));
    put32(m + len - 4, (uint32_t)c);
}

static void try_decode(const uint8_t *m, size_t len) {
    ams_update *u = NULL;
    ams_err err = {0};
    if (ams_update_decode(m, len, MODEL, &u, &err) != AMS_OK) {
        if (u) abort(); /* *out must be NULL on error */
        return;
    }
    for (size_t i = 1; i < u->count; i++)
        if (u->index[i] <= u->index[i - 1] || u->index[i] >= MODEL) abort();
    static float w[MODEL];
    memset(w, 0, sizeof w);
    (void)ams_update_apply(u, w, MODEL, &err);
    ams_update_free(u);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1 || size > INPUT_CAP) return 0;
    int mode = data[0] % 3;
    data++;
    size--;
    if (mode == 0) {
        try_decode(data, size);
        return 0;
    }
    if (mode == 1) {
        if (size < AMS_UPDATE_HEADER_BYTES + 4) {
            try_decode(data, size);
            return 0;
        }
        uint8_t *m = malloc(size);
        if (!m) return 0;
        memcpy(m, data, size);
        fix_crc(m, size);
        try_decode(m, size);
        free(m);
        return 0;
    }
    /* mode 2: data = flags, count (2 bytes), nseg, then the raw payload */
    if (size < 4) return 0;
    uint16_t flags = data[0] & 1;
    uint32_t count = (uint32_t)(data[1] | data[2] << 8), nseg = data[3];
    const uint8_t *raw = data + 4;
    size_t rawlen = size - 4;
    size_t cap = ZSTD_compressBound(rawlen), len;
    uint8_t *m = malloc(AMS_UPDATE_HEADER_BYTES + cap + 4);
    if (!m) return 0;
    memset(m, 0, AMS_UPDATE_HEADER_BYTES);
    memcpy(m, AMS_UPDATE_MAGIC, 4);
    m[4] = AMS_UPDATE_VERSION;
    m[6] = (uint8_t)flags;
    m[72] = (uint8_t)(MODEL & 0xff);
    m[73] = (uint8_t)(MODEL >> 8);
    put32(m + 80, count);
    put32(m + 84, nseg);
    put32(m + 88, (uint32_t)rawlen);
    size_t c = ZSTD_compress(m + AMS_UPDATE_HEADER_BYTES, cap, raw, rawlen, 1);
    if (!ZSTD_isError(c)) {
        put32(m + 92, (uint32_t)c);
        len = AMS_UPDATE_HEADER_BYTES + c + 4;
        fix_crc(m, len);
        try_decode(m, len);
    }
    free(m);
    return 0;
}
