/* tf_checkpoint.h - reading TensorFlow V2 checkpoints (tensor bundles), by hand.
 *
 * A checkpoint PREFIX is PREFIX.index plus PREFIX.data-0000K-of-0000N shards. The index
 * is a LevelDB-style table (data blocks of prefix-compressed keys with restart points,
 * an index block of BlockHandles, a 48-byte footer with magic 0xdb4775248b80fb57; each
 * block followed by a compression byte and a masked CRC-32C, checked). Its entry ""
 * holds BundleHeaderProto (num_shards, endianness); every other key is a tensor name
 * with a BundleEntryProto (dtype, shape, shard_id, offset, size, masked crc32c of the
 * tensor's bytes, checked on read). Protobuf fields are decoded by a small bounded
 * varint reader; no protobuf library.
 *
 *     ams_tf_checkpoint *ck = NULL;
 *     AMS_TRY(ams_tf_checkpoint_open("model.ckpt-30000", &ck, &err));
 *     for (int i = 0; i < ams_tf_checkpoint_count(ck); i++) {
 *         ams_tensor *t = NULL;   // float32 (float16 converted)
 *         if (ams_tf_checkpoint_dtype(ck, i) == AMS_TF_DT_FLOAT &&
 *             ams_tf_checkpoint_read(ck, i, &t, &err) == AMS_OK) ...
 *     }
 *     ams_tf_checkpoint_free(ck);
 * Untrusted input: every length, offset and count is bounded and checked; hostile
 * bytes are an error (AMS_E_FORMAT), never a crash. Only uncompressed tables (what
 * TF's BundleWriter writes), little-endian bundles and unsliced tensors are read.
 */
#ifndef AMS_TF_CHECKPOINT_H
#define AMS_TF_CHECKPOINT_H

#include "ams/params.h"

#define AMS_TF_CHECKPOINT_MAX_INDEX ((size_t)256 << 20) /* .index bytes */
#define AMS_TF_CHECKPOINT_MAX_ENTRIES 200000
#define AMS_TF_CHECKPOINT_MAX_SHARDS 100000

/* TF DataType values of the tensors ams reads (others are listed, not read). */
enum { AMS_TF_DT_FLOAT = 1, AMS_TF_DT_INT32 = 3, AMS_TF_DT_INT64 = 9, AMS_TF_DT_HALF = 19 };

typedef struct ams_tf_checkpoint ams_tf_checkpoint;

/* Reads PREFIX.index (the shards are opened on each read). Free with
 * ams_tf_checkpoint_free. Messages start with the file name. */
ams_status ams_tf_checkpoint_open(const char *prefix, ams_tf_checkpoint **out, ams_err *err);
/* Parses index bytes (a fuzzing and test entry; reads of such a checkpoint need
 * ams_tf_checkpoint_read_bytes). */
ams_status ams_tf_checkpoint_parse_index(const uint8_t *buf, size_t len, ams_tf_checkpoint **out,
                                         ams_err *err);
void ams_tf_checkpoint_free(ams_tf_checkpoint *ck);

int ams_tf_checkpoint_num_shards(const ams_tf_checkpoint *ck);
/* Tensors in key (sorted name) order. */
int ams_tf_checkpoint_count(const ams_tf_checkpoint *ck);
const char *ams_tf_checkpoint_name(const ams_tf_checkpoint *ck, int i);
int ams_tf_checkpoint_dtype(const ams_tf_checkpoint *ck, int i); /* TF DataType number */
/* Shape into shape[AMS_MAX_DIMS]; returns ndim. */
int ams_tf_checkpoint_shape(const ams_tf_checkpoint *ck, int i, int64_t *shape);
/* Index of the tensor called name, or -1. */
int ams_tf_checkpoint_find(const ams_tf_checkpoint *ck, const char *name);

/* Reads tensor i (float32 or float16) from its shard, checks size and crc32c, and
 * returns it as a new float32 tensor (free with ams_tensor_free). */
ams_status ams_tf_checkpoint_read(const ams_tf_checkpoint *ck, int i, ams_tensor **out,
                                  ams_err *err);
/* The same from the bytes of tensor i's shard held in memory. */
ams_status ams_tf_checkpoint_read_bytes(const ams_tf_checkpoint *ck, int i, const uint8_t *shard,
                                        size_t shard_len, ams_tensor **out, ams_err *err);

/* The ams parameter name of a TF DeepLab variable, into out (cap bytes): 1 kept, 0
 * dropped (optimizer slots such as .../Momentum, .../Adam, .../ExponentialMovingAverage,
 * global_step and other bookkeeping). DeepLab's names are ams's names (DESIGN.md), so a
 * kept variable keeps its name. */
int ams_tf_checkpoint_deeplab_name(const char *tf_name, char *out, size_t cap);

/* `ams convert CKPT out.safetensors`: reads every variable that
 * ams_tf_checkpoint_deeplab_name keeps and writes it as float32 under that name
 * (layouts unchanged: conv HWIO, depthwise (kh,kw,c,1)). With expect != NULL (e.g. the
 * parameters ams_deeplab_mnv2_declare declared) every expected parameter must be present
 * with exactly its shape and the file holds exactly those, in expect's order (kept
 * variables expect lacks are skipped). Without expect every kept float32/float16
 * variable is written. *written: tensors written; *extra: checkpoint entries not
 * written (dropped or skipped); either may be NULL. */
ams_status ams_tf_checkpoint_convert(const char *prefix, const char *out_path,
                                    const ams_params *expect, int *written, int *extra,
                                    ams_err *err);

#endif
