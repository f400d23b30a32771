/* netkey.h - the pre-shared client keys of the AMSP protocol: 32 random bytes per client id,
 * one file DIR/<id>.key (raw bytes, mode 0600) shared by the server's key folder and the edge.
 *
 *     uint8_t k[AMS_PROTO_KEY_BYTES];
 *     ams_netkey_generate("keys", "cam1", 0, &err);     // keys/cam1.key, refuses to overwrite
 *     ams_netkey_load_id("keys", "cam1", k, &err);
 * Thread-safe (no shared state).
 */
#ifndef AMS_NETKEY_H
#define AMS_NETKEY_H

#include <stdint.h>

#include "ams/proto.h"
#include "ams/status.h"

/* Writes 32 bytes from OpenSSL's RAND_bytes to dir/<id>.key atomically (a temporary file in
 * dir, fsync, then link (no overwrite) or rename (force)); mode 0600. dir must exist.
 * @return AMS_OK; AMS_E_INVAL (bad id: ams_proto_id_valid); AMS_E_IO (exists without force,
 * or a file system error); AMS_E_INTERNAL (RAND_bytes). */
ams_status ams_netkey_generate(const char *dir, const char *id, int force, ams_err *err);

/* Reads a key file: a regular file of exactly 32 bytes, not readable by group or others.
 * @return AMS_OK, AMS_E_NOTFOUND, AMS_E_FORMAT (size), AMS_E_IO (permissions, read error). */
ams_status ams_netkey_load(const char *path, uint8_t key[AMS_PROTO_KEY_BYTES], ams_err *err);

/* ams_netkey_load of dir/<id>.key after checking the id (AMS_E_INVAL). */
ams_status ams_netkey_load_id(const char *dir, const char *id, uint8_t key[AMS_PROTO_KEY_BYTES],
                              ams_err *err);

#endif
