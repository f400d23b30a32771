/* npy.h - NumPy .npy files (format versions 1.0, 2.0, 3.0): float32 '<f4', uint8 '|u1'
 * ('<u1'), int32 '<i4'; C order only. Reading also converts '<f2' and '<f8' to float32
 * and '<i8' to int32 (a value outside the target range is AMS_E_RANGE); other dtypes are
 * AMS_E_DTYPE, fortran_order True is AMS_E_UNSUPPORTED. Reading is bounded
 * (AMS_NPY_MAX_BYTES) and safe on hostile bytes; writing is atomic (temporary file +
 * rename) and byte-identical to numpy's np.save (format 1.0, data 64-byte aligned).
 *
 *     ams_tensor *x = NULL;
 *     if (ams_npy_read("x.npy", &x, &err) != AMS_OK) ...;   // caller frees x
 *     ams_npy_write("y.npy", y, &err);
 */
#ifndef AMS_NPY_H
#define AMS_NPY_H

#include "ams/tensor.h"

#define AMS_NPY_MAX_BYTES ((size_t)1 << 34) /* 16 GiB of data */

/* Parses a whole .npy image; *out is a new owning tensor (ams_tensor_free), NULL on error.
 * Errors name the problem ("truncated: header says 4096 bytes of data, file has 100"). */
ams_status ams_npy_parse(const uint8_t *buf, size_t len, ams_tensor **out, ams_err *err);
/* Reads a file; error messages start with the path. */
ams_status ams_npy_read(const char *path, ams_tensor **out, ams_err *err);
/* Writes t (F32, U8 or I32) atomically. */
ams_status ams_npy_write(const char *path, const ams_tensor *t, ams_err *err);

#endif
