/* tf_checkpoint.c - TF V2 checkpoint (tensor bundle) reader: the LevelDB-style table
 * of PREFIX.index (footer, index block, data blocks with restart points, CRC-checked
 * block trailers), the BundleHeaderProto / BundleEntryProto protobufs it holds (decoded
 * by hand), and tensor reads from PREFIX.data-* shards with their crc32c checked. */
#define _POSIX_C_SOURCE 200809L /* fseeko */
#include "ams/tf_checkpoint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/crc32c.h"
#include "models/file_io.h"

#define TABLE_MAGIC 0xdb4775248b80fb57ull
#define FOOTER_LEN 48 /* two BlockHandles padded to 40 bytes + the magic */
#define TRAILER_LEN 5 /* compression type + masked crc32c */
#define MAX_KEY 4096
#define MAX_TENSOR_BYTES ((uint64_t)1 << 33)

typedef struct entry {
    char *name;
    int dtype;
    int ndim;
    int64_t shape[AMS_MAX_DIMS];
    int shard;
    uint64_t offset, size;
    uint32_t crc;  /* unmasked */
    int has_crc;
    int sliced;    /* a partitioned variable: not read */
} entry;

struct ams_tf_checkpoint {
    char *prefix; /* NULL when parsed from bytes */
    int num_shards;
    entry *e;
    int count, cap;
};

/* ---------------------------------------------------------------- bounded decoding */

typedef struct cur {
    const uint8_t *p;
    size_t n, pos;
} cur;

static int get_varint(cur *c, uint64_t *v) {
    uint64_t r = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (c->pos >= c->n) return 0;
        uint8_t b = c->p[c->pos++];
        if (shift == 63 && b > 1) return 0; /* more than 64 bits */
        r |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = r;
            return 1;
        }
    }
    return 0;
}

static int get_varint32(cur *c, uint32_t *v) {
    uint64_t x;
    if (!get_varint(c, &x) || x > UINT32_MAX) return 0;
    *v = (uint32_t)x;
    return 1;
}

static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const uint8_t *p) { return rd32(p) | (uint64_t)rd32(p + 4) << 32; }

/* ---------------------------------------------------------------- protobuf */

/* One field: its number, wire type, and (varint/fixed) value or (bytes) sub-cursor. */
typedef struct field {
    uint32_t num;
    int wire;
    uint64_t v;
    cur sub;
} field;

/* 1: a field read, 0: end of message, -1: malformed. */
static int next_field(cur *c, field *f) {
    if (c->pos == c->n) return 0;
    uint64_t tag;
    if (!get_varint(c, &tag) || (tag >> 3) == 0 || (tag >> 3) > 536870911u) return -1;
    f->num = (uint32_t)(tag >> 3);
    f->wire = (int)(tag & 7);
    switch (f->wire) {
    case 0: return get_varint(c, &f->v) ? 1 : -1;
    case 1:
        if (c->n - c->pos < 8) return -1;
        f->v = rd64(c->p + c->pos);
        c->pos += 8;
        return 1;
    case 5:
        if (c->n - c->pos < 4) return -1;
        f->v = rd32(c->p + c->pos);
        c->pos += 4;
        return 1;
    case 2: {
        uint64_t len;
        if (!get_varint(c, &len) || len > c->n - c->pos) return -1;
        f->sub = (cur){c->p + c->pos, (size_t)len, 0};
        c->pos += (size_t)len;
        return 1;
    }
    default: return -1; /* groups (3, 4) and reserved types */
    }
}

static ams_status parse_shape(cur c, entry *e, ams_err *err) {
    field f = {0};
    int r;
    while ((r = next_field(&c, &f)) > 0) {
        if (f.num == 3 && f.wire == 0 && f.v) /* unknown_rank */
            AMS_FAIL(err, AMS_E_FORMAT, "tensor '%s': unknown rank", e->name);
        if (f.num != 2 || f.wire != 2) continue;
        AMS_FAIL_IF(e->ndim >= AMS_MAX_DIMS, err, AMS_E_RANGE, "tensor '%s': more than %d dims",
                    e->name, AMS_MAX_DIMS);
        int64_t size = 0;
        field d = {0};
        int rd;
        while ((rd = next_field(&f.sub, &d)) > 0)
            if (d.num == 1 && d.wire == 0) size = (int64_t)d.v;
        AMS_FAIL_IF(rd < 0, err, AMS_E_FORMAT, "tensor '%s': malformed shape", e->name);
        AMS_FAIL_IF(size < 0 || size > INT32_MAX, err, AMS_E_FORMAT,
                    "tensor '%s': bad dimension %lld", e->name, (long long)size);
        e->shape[e->ndim++] = size;
    }
    AMS_FAIL_IF(r < 0, err, AMS_E_FORMAT, "tensor '%s': malformed shape", e->name);
    return AMS_OK;
}

static ams_status parse_entry(cur c, entry *e, ams_err *err) {
    field f = {0};
    int r;
    while ((r = next_field(&c, &f)) > 0) {
        if (f.wire == 0 && f.num == 1) e->dtype = f.v > 1000 ? -1 : (int)f.v;
        else if (f.wire == 2 && f.num == 2) AMS_TRY(parse_shape(f.sub, e, err));
        else if (f.wire == 0 && f.num == 3) {
            AMS_FAIL_IF(f.v > AMS_TF_CHECKPOINT_MAX_SHARDS, err, AMS_E_FORMAT,
                        "tensor '%s': bad shard id", e->name);
            e->shard = (int)f.v;
        } else if (f.wire == 0 && f.num == 4) e->offset = f.v;
        else if (f.wire == 0 && f.num == 5) e->size = f.v;
        else if (f.wire == 5 && f.num == 6) {
            e->crc = ams_crc32c_unmask((uint32_t)f.v);
            e->has_crc = 1;
        } else if (f.num == 7) e->sliced = 1;
    }
    AMS_FAIL_IF(r < 0, err, AMS_E_FORMAT, "tensor '%s': malformed BundleEntryProto", e->name);
    return AMS_OK;
}

static ams_status parse_header(cur c, ams_tf_checkpoint *ck, ams_err *err) {
    field f = {0};
    int r;
    int64_t shards = 1;
    while ((r = next_field(&c, &f)) > 0) {
        if (f.wire == 0 && f.num == 1) shards = (int64_t)f.v;
        else if (f.wire == 0 && f.num == 2 && f.v != 0)
            AMS_FAIL(err, AMS_E_UNSUPPORTED, "big-endian tensor bundles are not supported");
    }
    AMS_FAIL_IF(r < 0, err, AMS_E_FORMAT, "malformed BundleHeaderProto");
    AMS_FAIL_IF(shards < 1 || shards > AMS_TF_CHECKPOINT_MAX_SHARDS, err, AMS_E_FORMAT,
                "bad num_shards %lld", (long long)shards);
    ck->num_shards = (int)shards;
    return AMS_OK;
}

/* ---------------------------------------------------------------- table */

typedef struct handle {
    uint64_t offset, size;
} handle;

static int get_handle(cur *c, handle *h) { return get_varint(c, &h->offset) && get_varint(c, &h->size); }

/* The contents of the block at h, after checking its trailer. */
static ams_status read_block(const uint8_t *buf, size_t len, handle h, cur *out, ams_err *err) {
    AMS_FAIL_IF(h.offset > len || h.size > len - h.offset || len - h.offset - h.size < TRAILER_LEN,
                err, AMS_E_FORMAT, "block [%llu, +%llu) is outside the %zu-byte index",
                (unsigned long long)h.offset, (unsigned long long)h.size, len);
    const uint8_t *p = buf + h.offset;
    size_t n = (size_t)h.size;
    uint8_t type = p[n];
    uint32_t crc = ams_crc32c_extend(ams_crc32c_extend(0, p, n), &type, 1);
    AMS_FAIL_IF(ams_crc32c_mask(crc) != rd32(p + n + 1), err, AMS_E_FORMAT,
                "block at %llu: crc32c mismatch", (unsigned long long)h.offset);
    AMS_FAIL_IF(type == 1, err, AMS_E_UNSUPPORTED, "snappy-compressed index blocks are not supported");
    AMS_FAIL_IF(type != 0, err, AMS_E_FORMAT, "block at %llu: unknown compression %u",
                (unsigned long long)h.offset, type);
    *out = (cur){p, n, 0};
    return AMS_OK;
}

typedef ams_status (*entry_fn)(void *ctx, const char *key, size_t klen, cur value, ams_err *err);

/* Walks a block's entries (shared/unshared key lengths, restart points checked),
 * calling fn with each full key and value (on_entry checks the keys' order). */
static ams_status walk_block(cur b, entry_fn fn, void *ctx, ams_err *err) {
    AMS_FAIL_IF(b.n < 4, err, AMS_E_FORMAT, "block of %zu bytes has no restart count", b.n);
    uint32_t nrestart = rd32(b.p + b.n - 4);
    AMS_FAIL_IF(nrestart > (b.n - 4) / 4, err, AMS_E_FORMAT, "block: %u restart points do not fit",
                nrestart);
    size_t limit = b.n - 4 - 4 * (size_t)nrestart;
    const uint8_t *restarts = b.p + limit;
    AMS_FAIL_IF(limit > 0 && nrestart == 0, err, AMS_E_FORMAT, "block with entries has no restart");
    uint32_t prev_r = 0;
    for (uint32_t i = 0; i < nrestart; i++) {
        uint32_t r = rd32(restarts + 4 * i);
        AMS_FAIL_IF((limit == 0 ? r != 0 : r >= limit) || (i > 0 && r <= prev_r) || (i == 0 && r != 0),
                    err, AMS_E_FORMAT, "block: bad restart point %u", r);
        prev_r = r;
    }
    char key[MAX_KEY + 1];
    size_t klen = 0;
    cur c = {b.p, limit, 0};
    uint32_t next_restart = 0;
    while (c.pos < limit) {
        int at_restart = next_restart < nrestart && rd32(restarts + 4 * next_restart) == c.pos;
        AMS_FAIL_IF(next_restart < nrestart && rd32(restarts + 4 * next_restart) < c.pos, err,
                    AMS_E_FORMAT, "block: a restart point is inside an entry");
        if (at_restart) next_restart++;
        uint32_t shared, unshared, vlen;
        AMS_FAIL_IF(!get_varint32(&c, &shared) || !get_varint32(&c, &unshared) ||
                        !get_varint32(&c, &vlen),
                    err, AMS_E_FORMAT, "block: truncated entry header");
        AMS_FAIL_IF(at_restart && shared != 0, err, AMS_E_FORMAT,
                    "block: an entry at a restart point shares its key");
        AMS_FAIL_IF(shared > klen || unshared > MAX_KEY - shared, err, AMS_E_FORMAT,
                    "block: bad key lengths (shared %u, unshared %u)", shared, unshared);
        AMS_FAIL_IF(unshared > c.n - c.pos || vlen > c.n - c.pos - unshared, err, AMS_E_FORMAT,
                    "block: entry runs past the block");
        memcpy(key + shared, c.p + c.pos, unshared);
        klen = shared + unshared;
        c.pos += unshared;
        cur value = {c.p + c.pos, vlen, 0};
        c.pos += vlen;
        key[klen] = 0;
        AMS_TRY(fn(ctx, key, klen, value, err));
    }
    AMS_FAIL_IF(limit > 0 && next_restart != nrestart, err, AMS_E_FORMAT,
                "block: a restart point is not at an entry");
    return AMS_OK;
}

typedef struct walk {
    const uint8_t *buf;
    size_t len;
    ams_tf_checkpoint *ck;
    int have_header;
    char last[MAX_KEY + 1];
    size_t last_len;
    int any;
} walk;

static ams_status on_entry(void *ctx, const char *key, size_t klen, cur value, ams_err *err) {
    walk *w = ctx;
    ams_tf_checkpoint *ck = w->ck;
    /* keys strictly increase across blocks too */
    if (w->any) {
        size_t m = w->last_len < klen ? w->last_len : klen;
        int cmp = memcmp(w->last, key, m);
        AMS_FAIL_IF(cmp > 0 || (cmp == 0 && w->last_len >= klen), err, AMS_E_FORMAT,
                    "index: keys out of order or repeated");
    }
    memcpy(w->last, key, klen);
    w->last_len = klen;
    w->any = 1;
    if (klen == 0) {
        AMS_TRY(parse_header(value, ck, err));
        w->have_header = 1;
        return AMS_OK;
    }
    AMS_FAIL_IF(memchr(key, 0, klen), err, AMS_E_FORMAT, "index: a tensor name holds a NUL byte");
    AMS_FAIL_IF(ck->count >= AMS_TF_CHECKPOINT_MAX_ENTRIES, err, AMS_E_RANGE,
                "more than %d tensors", AMS_TF_CHECKPOINT_MAX_ENTRIES);
    if (ck->count == ck->cap) {
        int ncap = ck->cap ? 2 * ck->cap : 64;
        entry *ne = realloc(ck->e, (size_t)ncap * sizeof *ne);
        AMS_FAIL_IF(!ne, err, AMS_E_NOMEM, "out of memory");
        ck->e = ne;
        ck->cap = ncap;
    }
    entry *e = &ck->e[ck->count];
    memset(e, 0, sizeof *e);
    e->name = malloc(klen + 1);
    AMS_FAIL_IF(!e->name, err, AMS_E_NOMEM, "out of memory");
    memcpy(e->name, key, klen + 1);
    ck->count++;
    return parse_entry(value, e, err);
}

static ams_status on_index(void *ctx, const char *key, size_t klen, cur value, ams_err *err) {
    (void)key, (void)klen;
    walk *w = ctx;
    handle h;
    AMS_FAIL_IF(!get_handle(&value, &h) || value.pos != value.n, err, AMS_E_FORMAT,
                "index block: bad BlockHandle");
    cur b;
    AMS_TRY(read_block(w->buf, w->len, h, &b, err));
    return walk_block(b, on_entry, w, err);
}

void ams_tf_checkpoint_free(ams_tf_checkpoint *ck) {
    if (!ck) return;
    for (int i = 0; i < ck->count; i++) free(ck->e[i].name);
    free(ck->e);
    free(ck->prefix);
    free(ck);
}

ams_status ams_tf_checkpoint_parse_index(const uint8_t *buf, size_t len, ams_tf_checkpoint **out,
                                         ams_err *err) {
    *out = NULL;
    AMS_FAIL_IF(len > AMS_TF_CHECKPOINT_MAX_INDEX, err, AMS_E_RANGE, "index of %zu bytes is too large",
                len);
    AMS_FAIL_IF(len < FOOTER_LEN, err, AMS_E_FORMAT, "index of %zu bytes has no table footer", len);
    const uint8_t *foot = buf + len - FOOTER_LEN;
    AMS_FAIL_IF(rd64(foot + 40) != TABLE_MAGIC, err, AMS_E_FORMAT,
                "not a TF table (bad footer magic)");
    cur fc = {foot, 40, 0};
    handle meta, index;
    AMS_FAIL_IF(!get_handle(&fc, &meta) || !get_handle(&fc, &index), err, AMS_E_FORMAT,
                "table footer: bad BlockHandles");
    ams_tf_checkpoint *ck = calloc(1, sizeof *ck);
    AMS_FAIL_IF(!ck, err, AMS_E_NOMEM, "out of memory");
    walk w = {.buf = buf, .len = len - FOOTER_LEN, .ck = ck};
    cur mb, ib;
    ams_status st = read_block(buf, w.len, meta, &mb, err);
    if (!st) st = read_block(buf, w.len, index, &ib, err);
    if (!st) st = walk_block(ib, on_index, &w, err);
    if (!st && !w.have_header) st = ams_err_set(err, AMS_E_FORMAT, "index has no bundle header");
    for (int i = 0; !st && i < ck->count; i++)
        if (ck->e[i].shard >= ck->num_shards)
            st = ams_err_set(err, AMS_E_FORMAT, "tensor '%s': shard %d of %d", ck->e[i].name,
                             ck->e[i].shard, ck->num_shards);
    if (st) {
        ams_tf_checkpoint_free(ck);
        return st;
    }
    *out = ck;
    return AMS_OK;
}

ams_status ams_tf_checkpoint_open(const char *prefix, ams_tf_checkpoint **out, ams_err *err) {
    *out = NULL;
    size_t pl = strlen(prefix);
    AMS_FAIL_IF(pl > 3900, err, AMS_E_RANGE, "checkpoint prefix too long");
    char path[4096];
    snprintf(path, sizeof path, "%s.index", prefix);
    uint8_t *buf = NULL;
    size_t len = 0;
    AMS_TRY(ams_file_read_all(path, AMS_TF_CHECKPOINT_MAX_INDEX, &buf, &len, err));
    ams_status st = ams_tf_checkpoint_parse_index(buf, len, out, err);
    free(buf);
    if (st) {
        ams_err_prefix(err, "%s", path);
        return st;
    }
    (*out)->prefix = malloc(pl + 1);
    if (!(*out)->prefix) {
        ams_tf_checkpoint_free(*out);
        *out = NULL;
        AMS_FAIL(err, AMS_E_NOMEM, "out of memory");
    }
    memcpy((*out)->prefix, prefix, pl + 1);
    return AMS_OK;
}

int ams_tf_checkpoint_num_shards(const ams_tf_checkpoint *ck) { return ck->num_shards; }
int ams_tf_checkpoint_count(const ams_tf_checkpoint *ck) { return ck->count; }
const char *ams_tf_checkpoint_name(const ams_tf_checkpoint *ck, int i) { return ck->e[i].name; }
int ams_tf_checkpoint_dtype(const ams_tf_checkpoint *ck, int i) { return ck->e[i].dtype; }

int ams_tf_checkpoint_shape(const ams_tf_checkpoint *ck, int i, int64_t *shape) {
    memcpy(shape, ck->e[i].shape, sizeof ck->e[i].shape);
    return ck->e[i].ndim;
}

int ams_tf_checkpoint_find(const ams_tf_checkpoint *ck, const char *name) {
    int lo = 0, hi = ck->count - 1; /* keys are sorted bytewise */
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(ck->e[mid].name, name);
        if (!c) return mid;
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

/* ---------------------------------------------------------------- tensor data */

/* Checks that tensor i is readable and returns its element size. */
static ams_status check_readable(const ams_tf_checkpoint *ck, int i, size_t *esize, ams_err *err) {
    AMS_FAIL_IF(i < 0 || i >= ck->count, err, AMS_E_INVAL, "no tensor %d", i);
    const entry *e = &ck->e[i];
    AMS_FAIL_IF(e->sliced, err, AMS_E_UNSUPPORTED, "tensor '%s' is partitioned (slices)", e->name);
    AMS_FAIL_IF(e->dtype != AMS_TF_DT_FLOAT && e->dtype != AMS_TF_DT_HALF, err, AMS_E_DTYPE,
                "tensor '%s' has TF dtype %d (float32 and float16 are read)", e->name, e->dtype);
    *esize = e->dtype == AMS_TF_DT_FLOAT ? 4 : 2;
    size_t bytes = *esize;
    for (int d = 0; d < e->ndim; d++)
        AMS_FAIL_IF(!ams_size_mul_ok(bytes, (size_t)e->shape[d], &bytes), err, AMS_E_RANGE,
                    "tensor '%s': size overflows", e->name);
    AMS_FAIL_IF(bytes != e->size || e->size > MAX_TENSOR_BYTES, err, AMS_E_FORMAT,
                "tensor '%s': %llu bytes stored, its shape needs %zu", e->name,
                (unsigned long long)e->size, bytes);
    AMS_FAIL_IF(!e->has_crc, err, AMS_E_FORMAT, "tensor '%s' has no crc32c", e->name);
    return AMS_OK;
}

static ams_status decode(const entry *e, const uint8_t *data, size_t esize, ams_tensor **out,
                         ams_err *err) {
    AMS_FAIL_IF(ams_crc32c_extend(0, data, (size_t)e->size) != e->crc, err, AMS_E_FORMAT,
                "tensor '%s': crc32c mismatch (corrupt data)", e->name);
    ams_tensor *t = ams_tensor_new(e->ndim, e->shape);
    AMS_FAIL_IF(!t, err, AMS_E_NOMEM, "out of memory for tensor '%s'", e->name);
    float *f = t->data;
    size_t n = (size_t)e->size / esize;
    for (size_t k = 0; k < n; k++) {
        if (esize == 4) {
            uint32_t u = rd32(data + 4 * k);
            memcpy(&f[k], &u, 4);
        } else {
            f[k] = ams_f16_to_f32((uint16_t)(data[2 * k] | data[2 * k + 1] << 8));
        }
    }
    *out = t;
    return AMS_OK;
}

ams_status ams_tf_checkpoint_read_bytes(const ams_tf_checkpoint *ck, int i, const uint8_t *shard,
                                        size_t shard_len, ams_tensor **out, ams_err *err) {
    *out = NULL;
    size_t esize;
    AMS_TRY(check_readable(ck, i, &esize, err));
    const entry *e = &ck->e[i];
    AMS_FAIL_IF(e->offset > shard_len || e->size > shard_len - e->offset, err, AMS_E_FORMAT,
                "tensor '%s': bytes [%llu, +%llu) are outside the %zu-byte shard", e->name,
                (unsigned long long)e->offset, (unsigned long long)e->size, shard_len);
    return decode(e, shard + e->offset, esize, out, err);
}

ams_status ams_tf_checkpoint_read(const ams_tf_checkpoint *ck, int i, ams_tensor **out,
                                  ams_err *err) {
    *out = NULL;
    size_t esize;
    AMS_TRY(check_readable(ck, i, &esize, err));
    AMS_FAIL_IF(!ck->prefix, err, AMS_E_INVAL, "checkpoint has no files (parsed from bytes)");
    const entry *e = &ck->e[i];
    char path[4096];
    snprintf(path, sizeof path, "%s.data-%05d-of-%05d", ck->prefix, e->shard, ck->num_shards);
    FILE *f = fopen(path, "rb");
    AMS_FAIL_IF(!f, err, AMS_E_IO, "%s: cannot open", path);
    ams_status st = AMS_OK;
    uint8_t *buf = NULL;
    off_t end = 0;
    if (fseeko(f, 0, SEEK_END) != 0 || (end = ftello(f)) < 0) {
        st = ams_err_set(err, AMS_E_IO, "%s: cannot seek", path);
        goto done;
    }
    if (e->offset > (uint64_t)end || e->size > (uint64_t)end - e->offset) {
        st = ams_err_set(err, AMS_E_FORMAT,
                         "%s: tensor '%s' needs bytes [%llu, +%llu) of a %lld-byte shard", path,
                         e->name, (unsigned long long)e->offset, (unsigned long long)e->size,
                         (long long)end);
        goto done;
    }
    buf = malloc(e->size ? (size_t)e->size : 1);
    if (!buf) {
        st = ams_err_set(err, AMS_E_NOMEM, "out of memory for tensor '%s'", e->name);
        goto done;
    }
    if (fseeko(f, (off_t)e->offset, SEEK_SET) != 0 || fread(buf, 1, (size_t)e->size, f) != e->size) {
        st = ams_err_set(err, AMS_E_IO, "%s: read failed", path);
        goto done;
    }
    st = decode(e, buf, esize, out, err);
    if (st) ams_err_prefix(err, "%s", path);
done:
    free(buf);
    fclose(f);
    return st;
}

/* ---------------------------------------------------------------- DeepLab names */

int ams_tf_checkpoint_deeplab_name(const char *tf_name, char *out, size_t cap) {
    static const char *const slots[] = {"/Momentum", "/Adam", "/Adam_1", "/ExponentialMovingAverage",
                                        "/RMSProp", "/RMSProp_1", "/Adagrad", "/Ftrl", "/Ftrl_1"};
    size_t n = strlen(tf_name);
    if (!n || n >= cap || !strcmp(tf_name, "global_step") || strstr(tf_name, "beta1_power") ||
        strstr(tf_name, "beta2_power"))
        return 0;
    for (size_t i = 0; i < sizeof slots / sizeof slots[0]; i++) {
        size_t sl = strlen(slots[i]);
        if (n >= sl && !strcmp(tf_name + n - sl, slots[i])) return 0;
    }
    memcpy(out, tf_name, n + 1);
    return 1;
}
