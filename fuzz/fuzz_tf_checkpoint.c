/* fuzz_tf_checkpoint.c - libFuzzer target: the TF checkpoint reader on arbitrary bytes.
 * Input: u32 LE index length, the .index bytes, then shard 0's bytes. Every tensor the
 * parsed index lists is read from the shard; a failure must set a message and no
 * tensor, a success a tensor whose size matches its shape. */
#include <stdlib.h>
#include <string.h>

#include "ams/tf_checkpoint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 4 || size > (1u << 20)) return 0;
    size_t ilen = (size_t)data[0] | (size_t)data[1] << 8 | (size_t)data[2] << 16 |
                  (size_t)data[3] << 24;
    if (ilen > size - 4) ilen = size - 4;
    const uint8_t *index = data + 4, *shard = data + 4 + ilen;
    size_t slen = size - 4 - ilen;
    ams_tf_checkpoint *ck = NULL;
    ams_err err = {0};
    if (ams_tf_checkpoint_parse_index(index, ilen, &ck, &err) != AMS_OK) {
        if (ck || !err.msg[0]) abort();
        return 0;
    }
    if (ams_tf_checkpoint_num_shards(ck) < 1) abort();
    for (int i = 0; i < ams_tf_checkpoint_count(ck); i++) {
        const char *name = ams_tf_checkpoint_name(ck, i);
        if (ams_tf_checkpoint_find(ck, name) != i) abort(); /* sorted, unique */
        char mapped[AMS_PARAM_NAME_MAX];
        ams_tf_checkpoint_deeplab_name(name, mapped, sizeof mapped);
        int64_t shape[AMS_MAX_DIMS];
        int nd = ams_tf_checkpoint_shape(ck, i, shape);
        if (nd < 0 || nd > AMS_MAX_DIMS) abort();
        ams_tensor *t = NULL;
        err.msg[0] = 0;
        if (ams_tf_checkpoint_read_bytes(ck, i, shard, slen, &t, &err) != AMS_OK) {
            if (t || !err.msg[0]) abort();
            continue;
        }
        if (t->ndim != nd || (size_t)ams_tensor_numel(t) * 2 > slen) abort();
        volatile float sink = 0;
        for (int64_t k = 0; k < ams_tensor_numel(t); k++) sink += ((const float *)t->data)[k];
        (void)sink;
        ams_tensor_free(t);
    }
    ams_tf_checkpoint_free(ck);
    return 0;
}
