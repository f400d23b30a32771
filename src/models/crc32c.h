/* crc32c.h - CRC-32C (Castagnoli), as LevelDB tables and TF tensor bundles store it
 * (with LevelDB's "mask" so that a CRC of data holding CRCs stays well distributed).
 * Internal to src/models. */
#ifndef AMS_MODELS_CRC32C_H
#define AMS_MODELS_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* CRC-32C of n bytes continuing from crc (0 to start): crc32c("123456789") = 0xe3069283. */
uint32_t ams_crc32c_extend(uint32_t crc, const void *data, size_t n);
/* LevelDB's mask: rotate right by 15 and add 0xa282ead8; unmask inverts it. */
uint32_t ams_crc32c_mask(uint32_t crc);
uint32_t ams_crc32c_unmask(uint32_t masked);

#endif
