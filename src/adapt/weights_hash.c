/* weights_hash.c - SHA-256 of a flat float buffer (OpenSSL libcrypto), the model hash. */
#include "ams/weights_hash.h"

#include <openssl/evp.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "ams hashes and serializes floats in host order, which must be little endian"
#endif

ams_status ams_sha256(const void *data, size_t len, uint8_t out[AMS_HASH_LEN], ams_err *err) {
    unsigned int outlen = 0;
    static const uint8_t empty = 0;
    if (!data) data = &empty; /* len is 0 then */
    AMS_FAIL_IF(EVP_Digest(data, len, out, &outlen, EVP_sha256(), NULL) != 1 ||
                    outlen != AMS_HASH_LEN,
                err, AMS_E_INTERNAL, "SHA-256 failed in libcrypto");
    return AMS_OK;
}

ams_status ams_weights_hash(const float *v, size_t n, uint8_t out[AMS_HASH_LEN], ams_err *err) {
    size_t bytes;
    AMS_FAIL_IF(!ams_size_mul_ok(n, sizeof(float), &bytes), err, AMS_E_RANGE,
                "%zu floats overflow a byte count", n);
    return ams_sha256(v, bytes, out, err);
}

char *ams_hash_hex(const uint8_t h[AMS_HASH_LEN], char out[AMS_HASH_HEX_LEN]) {
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < AMS_HASH_LEN; i++) {
        out[2 * i] = digits[h[i] >> 4];
        out[2 * i + 1] = digits[h[i] & 15];
    }
    out[2 * AMS_HASH_LEN] = '\0';
    return out;
}
