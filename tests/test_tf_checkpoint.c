/* test_tf_checkpoint.c - the TF checkpoint (tensor bundle) reader against bundles that
 * tools/ref/write_tf_bundle.py writes byte by byte (the independent oracle): values,
 * dtypes and names read back; CRC-32C against its published check values; every
 * truncation and every bit flip of the index and of the data is an error (never a
 * crash), and flips inside checksummed bytes are always caught. */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ams/tf_checkpoint.h"
#include "check.h"
#include "models/crc32c.h"

static char dir[512], prefix[600];

/* Writes the demo bundle once (python3 from Debian; the writer needs only numpy). */
static int demo_bundle(void) {
    if (prefix[0]) return 0;
    snprintf(dir, sizeof dir, "%s/tf_checkpoint.XXXXXX", AMS_BINARY_DIR);
    CHECK(mkdtemp(dir) != NULL);
    snprintf(prefix, sizeof prefix, "%s/demo", dir);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/tools/ref/write_tf_bundle.py --demo --prefix %s",
             AMS_SOURCE_DIR, prefix);
    CHECKF(system(cmd) == 0, "the bundle writer failed: %s", cmd);
    return 0;
}

static uint8_t *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(n > 0 ? (size_t)n : 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return b;
}

static int test_crc32c(void) {
    CHECK(ams_crc32c_extend(0, "123456789", 9) == 0xe3069283u); /* the CRC-32C check value */
    uint8_t z[32] = {0}, ff[32];
    memset(ff, 0xff, sizeof ff);
    CHECK(ams_crc32c_extend(0, z, 32) == 0x8a9136aau); /* RFC 3720 B.4 */
    CHECK(ams_crc32c_extend(0, ff, 32) == 0x62a8ab43u);
    CHECK(ams_crc32c_extend(ams_crc32c_extend(0, "1234", 4), "56789", 5) == 0xe3069283u);
    for (uint32_t v = 1; v < 0xf0000000u; v += 0x01234567u) {
        CHECK(ams_crc32c_unmask(ams_crc32c_mask(v)) == v);
        CHECK(ams_crc32c_mask(v) != v);
    }
    return 0;
}

static int test_read_demo(void) {
    CHECK(demo_bundle() == 0);
    ams_err err = {0};
    ams_tf_checkpoint *ck = NULL;
    CHECKF(ams_tf_checkpoint_open(prefix, &ck, &err) == AMS_OK, "%s", err.msg);
    CHECK(ams_tf_checkpoint_num_shards(ck) == 1);
    CHECK(ams_tf_checkpoint_count(ck) == 44);
    for (int i = 1; i < ams_tf_checkpoint_count(ck); i++)
        CHECK(strcmp(ams_tf_checkpoint_name(ck, i - 1), ams_tf_checkpoint_name(ck, i)) < 0);
    int a = ams_tf_checkpoint_find(ck, "a"), bc = ams_tf_checkpoint_find(ck, "b/c");
    int gs = ams_tf_checkpoint_find(ck, "global_step"), t17 = ams_tf_checkpoint_find(ck, "t017");
    CHECK(a >= 0 && bc >= 0 && gs >= 0 && t17 >= 0 && ams_tf_checkpoint_find(ck, "nope") < 0);
    int64_t shape[AMS_MAX_DIMS];
    CHECK(ams_tf_checkpoint_shape(ck, a, shape) == 2 && shape[0] == 2 && shape[1] == 3);
    CHECK(ams_tf_checkpoint_dtype(ck, a) == AMS_TF_DT_FLOAT);
    CHECK(ams_tf_checkpoint_dtype(ck, bc) == AMS_TF_DT_HALF);
    CHECK(ams_tf_checkpoint_dtype(ck, gs) == AMS_TF_DT_INT64);
    CHECK(ams_tf_checkpoint_shape(ck, gs, shape) == 0);
    ams_tensor *t = NULL;
    CHECKF(ams_tf_checkpoint_read(ck, a, &t, &err) == AMS_OK, "%s", err.msg);
    for (int i = 0; i < 6; i++) CHECK(((float *)t->data)[i] == 0.5f * (float)i);
    ams_tensor_free(t);
    CHECKF(ams_tf_checkpoint_read(ck, bc, &t, &err) == AMS_OK, "%s", err.msg);
    const float want[4] = {1, -2, 0.5f, 65504};
    CHECK(t->ndim == 1 && t->shape[0] == 4 && !memcmp(t->data, want, sizeof want));
    ams_tensor_free(t);
    CHECKF(ams_tf_checkpoint_read(ck, t17, &t, &err) == AMS_OK, "%s", err.msg);
    CHECK(((float *)t->data)[0] == 17 && ((float *)t->data)[1] == -17);
    ams_tensor_free(t);
    CHECK(ams_tf_checkpoint_read(ck, gs, &t, &err) == AMS_E_DTYPE && !t);
    CHECK(strstr(err.msg, "global_step"));
    ams_tf_checkpoint_free(ck);

    char name[AMS_PARAM_NAME_MAX];
    CHECK(ams_tf_checkpoint_deeplab_name("MobilenetV2/Conv/weights", name, sizeof name) &&
          !strcmp(name, "MobilenetV2/Conv/weights"));
    CHECK(ams_tf_checkpoint_deeplab_name("logits/semantic/biases", name, sizeof name));
    CHECK(!ams_tf_checkpoint_deeplab_name("logits/semantic/biases/Momentum", name, sizeof name));
    CHECK(!ams_tf_checkpoint_deeplab_name("aspp0/weights/ExponentialMovingAverage", name, sizeof name));
    CHECK(!ams_tf_checkpoint_deeplab_name("global_step", name, sizeof name));
    CHECK(!ams_tf_checkpoint_deeplab_name("beta1_power", name, sizeof name));

    /* files that are missing */
    char other[700];
    snprintf(other, sizeof other, "%s/none", dir);
    CHECK(ams_tf_checkpoint_open(other, &ck, &err) == AMS_E_IO && !ck);
    return 0;
}

/* Every truncation and every single-bit flip of the index: an error or a checkpoint,
 * never a crash; flips in the blocks (all CRC-covered) and in the magic always fail. */
static int test_hostile_index(void) {
    CHECK(demo_bundle() == 0);
    char path[700];
    snprintf(path, sizeof path, "%s.index", prefix);
    size_t len;
    uint8_t *idx = slurp(path, &len);
    CHECK(idx && len > 48);
    ams_err err = {0};
    ams_tf_checkpoint *ck = NULL;
    for (size_t n = 0; n < len; n++) {
        uint8_t *cut = malloc(n ? n : 1); /* exact-size copies so ASan sees overreads */
        memcpy(cut, idx, n);
        CHECKF(ams_tf_checkpoint_parse_index(cut, n, &ck, &err) != AMS_OK && !ck,
               "truncated to %zu bytes", n);
        free(cut);
    }
    int caught = 0, passed = 0;
    for (size_t i = 0; i < len; i++)
        for (int bit = 0; bit < 8; bit++) {
            idx[i] ^= (uint8_t)(1u << bit);
            err.msg[0] = 0;
            ams_status st = ams_tf_checkpoint_parse_index(idx, len, &ck, &err);
            idx[i] ^= (uint8_t)(1u << bit);
            if (st == AMS_OK) {
                passed++;
                ams_tf_checkpoint_free(ck);
                ck = NULL;
                CHECKF(i >= len - 48 && i < len - 8, "flip of byte %zu bit %d went unnoticed", i, bit);
            } else {
                caught++;
                CHECK(!ck && err.msg[0]);
            }
        }
    fprintf(stderr, "index bit flips: %d caught, %d in the footer's padding/handles accepted\n",
            caught, passed);
    CHECK(ams_tf_checkpoint_parse_index(idx, len, &ck, &err) == AMS_OK);
    ams_tf_checkpoint_free(ck);
    free(idx);
    return 0;
}

/* Every bit flip of the data fails exactly the tensor holding that byte (crc32c);
 * truncated data fails the tensors past the cut. */
static int test_hostile_data(void) {
    CHECK(demo_bundle() == 0);
    char path[700];
    snprintf(path, sizeof path, "%s.index", prefix);
    size_t ilen, dlen;
    uint8_t *idx = slurp(path, &ilen);
    snprintf(path, sizeof path, "%s.data-00000-of-00001", prefix);
    uint8_t *data = slurp(path, &dlen);
    CHECK(idx && data && dlen > 100);
    ams_err err = {0};
    ams_tf_checkpoint *ck = NULL;
    CHECKF(ams_tf_checkpoint_parse_index(idx, ilen, &ck, &err) == AMS_OK, "%s", err.msg);
    int n = ams_tf_checkpoint_count(ck), readable = 0;
    ams_tensor *t = NULL;
    for (int i = 0; i < n; i++)
        if (ams_tf_checkpoint_read_bytes(ck, i, data, dlen, &t, &err) == AMS_OK) {
            readable++;
            ams_tensor_free(t);
        }
    CHECK(readable == n - 1); /* all but global_step (int64) */
    for (size_t b = 0; b < dlen; b += 3) {
        data[b] ^= 0x10;
        int bad = 0;
        for (int i = 0; i < n; i++) {
            ams_status st = ams_tf_checkpoint_read_bytes(ck, i, data, dlen, &t, &err);
            if (st == AMS_OK) ams_tensor_free(t);
            else if (ams_tf_checkpoint_dtype(ck, i) != AMS_TF_DT_INT64) {
                CHECK(st == AMS_E_FORMAT && strstr(err.msg, "crc32c") && !t);
                bad++;
            }
        }
        data[b] ^= 0x10;
        /* the shard holds, in key order, a (24 bytes), b/c (8), b/c/Momentum (16),
         * global_step (int64, 8: not read), t000..: one float tensor covers each byte */
        int in_step = b >= 48 && b < 56;
        CHECKF(bad == (in_step ? 0 : 1), "byte %zu: %d tensors failed", b, bad);
    }
    int failed_at_cut = 0;
    for (int i = 0; i < n; i++) {
        uint8_t *cut = malloc(dlen / 2);
        memcpy(cut, data, dlen / 2);
        if (ams_tf_checkpoint_read_bytes(ck, i, cut, dlen / 2, &t, &err) == AMS_OK) ams_tensor_free(t);
        else failed_at_cut++;
        free(cut);
    }
    CHECK(failed_at_cut > n / 3);
    ams_tf_checkpoint_free(ck);
    free(idx);
    free(data);
    return 0;
}

/* A flipped byte in a shard file on disk: ams_tf_checkpoint_read reports the crc. */
static int test_corrupt_file(void) {
    CHECK(demo_bundle() == 0);
    char path[700];
    snprintf(path, sizeof path, "%s.data-00000-of-00001", prefix);
    size_t dlen;
    uint8_t *data = slurp(path, &dlen);
    CHECK(data);
    data[0] ^= 1; /* the first tensor in key order: "a" */
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(data, 1, dlen, f) == dlen);
    fclose(f);
    ams_err err = {0};
    ams_tf_checkpoint *ck = NULL;
    CHECK(ams_tf_checkpoint_open(prefix, &ck, &err) == AMS_OK);
    ams_tensor *t = NULL;
    CHECK(ams_tf_checkpoint_read(ck, ams_tf_checkpoint_find(ck, "a"), &t, &err) == AMS_E_FORMAT);
    CHECK(strstr(err.msg, "crc32c") && strstr(err.msg, "'a'"));
    data[0] ^= 1;
    f = fopen(path, "wb");
    CHECK(f && fwrite(data, 1, dlen / 2, f) == dlen / 2); /* truncated shard */
    fclose(f);
    CHECK(ams_tf_checkpoint_read(ck, ams_tf_checkpoint_find(ck, "t039"), &t, &err) == AMS_E_FORMAT);
    CHECK(strstr(err.msg, "shard"));
    CHECK(remove(path) == 0);
    CHECK(ams_tf_checkpoint_read(ck, ams_tf_checkpoint_find(ck, "a"), &t, &err) == AMS_E_IO);
    ams_tf_checkpoint_free(ck);
    free(data);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
    prefix[0] = 0;
    return 0;
}

int main(int argc, char **argv) {
    static const check_case cases[] = {
        {"crc32c", test_crc32c},
        {"read_demo", test_read_demo},
        {"hostile_index", test_hostile_index},
        {"hostile_data", test_hostile_data},
        {"corrupt_file", test_corrupt_file},
    };
    return check_run(cases, sizeof cases / sizeof cases[0], argc, argv);
}
