/* safetensors.h - the safetensors weight format (8-byte little-endian header length,
 * JSON header of {name: {dtype, shape, data_offsets}} plus optional __metadata__,
 * then the data). Reading accepts F32, F16, BF16 (converted to float32), U8 and I32;
 * checks every offset, shape product and overlap; is bounded and safe on hostile bytes.
 * Writing is F32 (and U8/I32 as given), atomic (temporary file + rename).
 *
 *     ams_safetensors *st = NULL;
 *     if (ams_safetensors_read("w.safetensors", &st, &err) != AMS_OK) ...;
 *     const ams_tensor *w = ams_safetensors_find(st, "logits/semantic/weights");
 *     ams_safetensors_free(st);
 */
#ifndef AMS_SAFETENSORS_H
#define AMS_SAFETENSORS_H

#include "ams/params.h"
#include "ams/tensor.h"

#define AMS_SAFETENSORS_MAX_HEADER ((size_t)100 << 20) /* 100 MB, as the spec's reader */
#define AMS_SAFETENSORS_MAX_TENSORS 100000

typedef struct ams_safetensors ams_safetensors;

/* Parses a whole file image; *out owns copies of everything (buf may be freed after).
 * Integers in the header (shapes, offsets) must be exact and below 2^53; the tensors'
 * byte ranges must tile the data exactly, as the reference implementation requires.
 * Free *out with ams_safetensors_free (NULL is a no-op). */
ams_status ams_safetensors_parse(const uint8_t *buf, size_t len, ams_safetensors **out,
                                 ams_err *err);
ams_status ams_safetensors_read(const char *path, ams_safetensors **out, ams_err *err);
void ams_safetensors_free(ams_safetensors *st);

int ams_safetensors_count(const ams_safetensors *st);
/* i-th tensor in file order; *name (if name != NULL) gets its name. Owned by st. */
const ams_tensor *ams_safetensors_get(const ams_safetensors *st, int i, const char **name);
const ams_tensor *ams_safetensors_find(const ams_safetensors *st, const char *name);
/* The i-th tensor's dtype as stored in the file ("F32", "F16", "BF16", "U8", "I32"; the
 * tensor itself holds F16/BF16 converted to float32), and its size in the file in bytes.
 * NULL / 0 if i is out of range. (Added for `ams info`.) */
const char *ams_safetensors_dtype(const ams_safetensors *st, int i);
size_t ams_safetensors_nbytes(const ams_safetensors *st, int i);
/* Value of a __metadata__ key, or NULL. */
const char *ams_safetensors_metadata(const ams_safetensors *st, const char *key);

/* Writes count named tensors (in the given order) with optional metadata
 * (meta_keys/meta_values, nmeta pairs; NULL/0 for none). Tensors may be F32, U8, I32,
 * and also F16/BF16 holding raw 16-bit values. Names and metadata must be unique, valid
 * UTF-8, and no tensor may be called "__metadata__". The header is compact JSON as the
 * reference writes it (__metadata__ first, then the tensors in the given order), padded
 * with spaces to a multiple of 8 bytes; the data follows in the same order. */
ams_status ams_safetensors_write(const char *path, int count, const char *const *names,
                                 const ams_tensor *const *tensors, int nmeta,
                                 const char *const *meta_keys, const char *const *meta_values,
                                 ams_err *err);

/* Loads values of every parameter of p from a file: each must be present, float,
 * with exactly the declared shape; a tensor in the file that p lacks is an error
 * unless allow_extra. Messages name the file and tensor. */
ams_status ams_params_load_safetensors(ams_params *p, const char *path, int allow_extra,
                                       ams_err *err);
/* Writes p's values (what = 0) or grads (what = 1); trainable_only skips constants. */
ams_status ams_params_save_safetensors(const ams_params *p, const char *path, int what,
                                       int trainable_only, ams_err *err);

#endif
