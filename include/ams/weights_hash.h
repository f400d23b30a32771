/* weights_hash.h - the model hash: SHA-256 of a flat parameter buffer.
 *
 *     uint8_t h[AMS_HASH_LEN];
 *     char hex[AMS_HASH_HEX_LEN];
 *     ams_weights_hash(p->values, p->total, h, &err);
 *     ams_hash_hex(h, hex);                 // "3b2f...", what `ams edge` reports as model_hash
 * The hashed bytes are the n float32 values in little-endian order (the host order; AMS builds
 * only on little-endian hosts), so the same weights hash the same on server and edge, and one
 * flipped bit anywhere changes the hash. SHA-256 (OpenSSL libcrypto) rather than a 64-bit hash:
 * the update codec's "weights after applying match the server's" check then holds against
 * anything short of breaking SHA-256. About 3 ms per million parameters. Thread-safe.
 */
#ifndef AMS_WEIGHTS_HASH_H
#define AMS_WEIGHTS_HASH_H

#include <stddef.h>
#include <stdint.h>

#include "ams/status.h"

#define AMS_HASH_LEN 32      /* bytes of a SHA-256 digest */
#define AMS_HASH_HEX_LEN 65  /* lowercase hex digits + NUL */

/* out receives SHA-256 of the n floats at v. @return AMS_OK or AMS_E_INTERNAL (libcrypto). */
ams_status ams_weights_hash(const float *v, size_t n, uint8_t out[AMS_HASH_LEN], ams_err *err);
/* SHA-256 of len arbitrary bytes. */
ams_status ams_sha256(const void *data, size_t len, uint8_t out[AMS_HASH_LEN], ams_err *err);
/* Lowercase hex of a digest into out (AMS_HASH_HEX_LEN bytes); returns out. */
char *ams_hash_hex(const uint8_t h[AMS_HASH_LEN], char out[AMS_HASH_HEX_LEN]);

#endif
