/* update_codec.h - sparse model updates on the wire: our versioned "AMSU" codec, and the AMS
 * reference's format (for its size and for comparison).
 *
 * Server (keeps `mirror`, its copy of exactly what the edge holds):
 *     ams_update_opts o;
 *     ams_update_opts_default(&o);                       // int8 deltas, zstd -19
 *     uint8_t *msg; size_t len;
 *     ams_update_encode(p, mirror, trained, &o, &msg, &len, mirror, &err);  // mirror <- applied
 *     send(msg, len); free(msg);
 * Edge:
 *     ams_update *u;
 *     if (ams_update_decode(msg, len, p->total, &u, &err) == AMS_OK &&
 *         ams_update_apply(u, p->values, p->total, &err) == AMS_OK) ...   // else: rejected
 *     ams_update_free(u);
 * Bytes from outside go only through ams_update_decode, which verifies the checksum, bounds
 * every count and length, and never reads or allocates past them (fuzzed:
 * fuzz/fuzz_update_decode.c, fuzz/fuzz_update_roundtrip.c). Functions are thread-safe on
 * distinct objects.
 *
 * WIRE FORMAT, version 1 (little endian):
 *   off size
 *     0   4  magic "AMSU"
 *     4   2  version (1)
 *     6   2  flags: bit 0 AMS_UPDATE_FLAG_F16 (deltas are fp16; else int8 x per-segment
 *            scale); every other bit 0
 *     8  32  base hash: SHA-256 of the receiver's flat buffer before (ams_weights_hash)
 *    40  32  result hash: SHA-256 of the flat buffer after applying
 *    72   8  total: elements of the flat buffer (1 .. AMS_UPDATE_MAX_ELEMS)
 *    80   4  count: changed elements (<= total)
 *    84   4  segments (<= count; 0 iff count is 0)
 *    88   4  raw payload bytes (before zstd; <= AMS_UPDATE_MAX_RAW and <= the most that count
 *            and segments can need)
 *    92   4  compressed payload bytes (exactly the rest of the message but the checksum)
 *    96   .  one zstd frame holding the raw payload
 *   end   4  CRC-32 (zlib's) of every byte before it
 * raw payload:
 *   segments x { varint n (>= 1; the segment's elements, in index order),
 *                f32 scale (int8 only; finite, >= 0) }         -- the n sum to count
 *   count x varint gap: index = previous index + 1 + gap (the first: gap itself); indices
 *                       strictly increase and stay below total
 *   int8:  count x int8 q (-127..127, never 0), delta = q * scale of its segment
 *   fp16:  count low bytes then count high bytes of the fp16 delta (finite, never zero)
 * varint = unsigned LEB128, at most 5 bytes, value < 2^32.
 *
 * Applying is bit-exact everywhere: the int8 scale carries at most 17 significant bits, so
 * q * scale is exact in float32, as is an fp16 delta; the new value is one IEEE float add,
 * base + delta. The encoder runs the same arithmetic and returns the result (`applied`), so
 * the server's mirror and the edge's weights hash the same (the result hash checks it).
 * Segments are the layout's tensors: int8 uses one scale per tensor.
 * Elements whose delta quantizes to zero are not sent (they keep the base value).
 */
#ifndef AMS_UPDATE_CODEC_H
#define AMS_UPDATE_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "ams/params.h"
#include "ams/status.h"
#include "ams/weights_hash.h"

#define AMS_UPDATE_MAGIC "AMSU"
#define AMS_UPDATE_VERSION 1
#define AMS_UPDATE_HEADER_BYTES 96
#define AMS_UPDATE_FLAG_F16 0x0001u
#define AMS_UPDATE_MAX_ELEMS ((uint64_t)1 << 31)     /* flat buffer elements (8 GiB of f32) */
#define AMS_UPDATE_MAX_RAW ((uint32_t)256 << 20)      /* raw payload bytes */

typedef enum {
    AMS_UPDATE_INT8 = 0, /* int8 deltas, one scale per tensor: ~1 byte per element */
    AMS_UPDATE_F16 = 1,  /* fp16 deltas: 2 bytes per element, error <= max(2^-11 |d|, 2^-25) */
} ams_update_values;

typedef struct ams_update_opts {
    ams_update_values values; /* AMS_UPDATE_INT8 */
    int zstd_level;           /* 19 (1..22) */
} ams_update_opts;

void ams_update_opts_default(ams_update_opts *o);

/* A decoded update (owned by ams_update_decode's caller; ams_update_free). */
typedef struct ams_update {
    uint16_t version;                      /* AMS_UPDATE_VERSION */
    uint16_t flags;                        /* AMS_UPDATE_FLAG_* */
    uint8_t base_hash[AMS_HASH_LEN];       /* weights the update applies to */
    uint8_t result_hash[AMS_HASH_LEN];     /* weights after applying */
    uint64_t total;                        /* elements of the flat buffer */
    size_t count;                          /* changed elements */
    uint32_t *index;                       /* count flat indices, strictly increasing */
    float *delta;                          /* count exact deltas (added to the base) */
} ams_update;

/* Encodes the change from base to target (layout->total floats each, the layout's tensors as
 * segments) into a new message *out (free with free()) of *out_len bytes. applied receives
 * base + the deltas as the receiver will compute them (may be base itself, or target, or a
 * separate buffer; NULL to skip). Elements equal in base and target (bitwise) are not sent.
 * @return AMS_OK; AMS_E_RANGE (a non-finite value or delta, or an fp16 delta overflow);
 * AMS_E_INVAL (bad options or layout); AMS_E_NOMEM; AMS_E_INTERNAL (zstd/libcrypto). */
ams_status ams_update_encode(const ams_params *layout, const float *base, const float *target,
                             const ams_update_opts *o, uint8_t **out, size_t *out_len,
                             float *applied, ams_err *err);

/* Parses and verifies (checksum, bounds, strict ordering) len untrusted bytes. expected_total:
 * the receiver's element count (the message must say the same), or 0 to accept any total up to
 * AMS_UPDATE_MAX_ELEMS. Allocation is bounded by 8 bytes per element of total plus the raw
 * payload. *out is NULL on error. @return AMS_OK or AMS_E_FORMAT (corrupt, truncated, lying
 * lengths), AMS_E_UNSUPPORTED (a newer version or unknown flag), AMS_E_SHAPE (total differs),
 * AMS_E_NOMEM. */
ams_status ams_update_decode(const uint8_t *buf, size_t len, uint64_t expected_total,
                             ams_update **out, ams_err *err);
void ams_update_free(ams_update *u);

/* Applies u to values (n floats) atomically: checks n and the base hash, adds the deltas, checks
 * the result hash, and on any mismatch restores values exactly and fails.
 * @return AMS_OK, AMS_E_SHAPE (n differs), AMS_E_FORMAT (base or result hash mismatch),
 * AMS_E_NOMEM. */
ams_status ams_update_apply(const ams_update *u, float *values, size_t n, ams_err *err);

/* THE REFERENCE FORMAT (modelstreaming/ams run.py, the downlink size of the paper): for each
 * tensor in order, np.packbits of its mask (MSB first, each tensor padded to a byte), then for
 * each tensor the fp16 VALUES (not deltas) of its masked elements, the whole gzip -9. Tensors:
 * the trainable ones (coord_desc_* strategies) or, with all_tensors, every one (full_model).
 * Ours is zlib's deflate level 9 in a gzip wrapper without a file name; run.py's
 * `gzip -9 -k` also stores the file name, ~40 more bytes. mask: layout->total bytes (nonzero =
 * sent); values: layout->total floats. *out: free with free(). */
ams_status ams_update_ref_encode(const ams_params *layout, int all_tensors, const uint8_t *mask,
                                 const float *values, uint8_t **out, size_t *out_len,
                                 ams_err *err);
/* Inverse, for tests and comparisons: sets mask (0/1) over the covered tensors and values (fp16
 * rounded) at masked elements; other elements are left as they are. */
ams_status ams_update_ref_decode(const ams_params *layout, int all_tensors, const uint8_t *buf,
                                 size_t len, uint8_t *mask, float *values, ams_err *err);

#endif
