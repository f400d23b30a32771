/* label_store.c - the label file: a header, then one record per frame (pts + a zstd plane),
 * indexed at open by walking the record headers; appendable and resumable after a crash. */
#include "ams/label_store.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zstd.h>

#include "video/av_status.h"

#define MAGIC "AMSLABEL"
#define REC_MAGIC "LFRM"
#define VERSION 1u
#define FIXED_HEADER 32 /* magic .. meta_len */
#define REC_HEADER 20
#define PTS_EPS 1e-6
#define ZSTD_LEVEL 3

typedef struct source {
    int fd;                /* >= 0: a file */
    const uint8_t *mem;    /* else: memory */
    uint64_t size;
} source;

typedef struct index_entry {
    double pts;
    uint64_t offset; /* of the payload */
    uint32_t size;
} index_entry;

typedef struct label_index {
    ams_label_info info;
    uint64_t header_size;
    index_entry *e;
    int64_t n, cap;
    uint64_t end;     /* end of the last complete record */
    uint64_t dropped; /* bytes after it */
} label_index;

struct ams_label_reader {
    source src;
    label_index ix;
    uint8_t *buf;     /* one compressed payload */
    size_t buf_cap;
    ZSTD_DCtx *dctx;
};

struct ams_label_writer {
    int fd;
    char path[4096];
    label_index ix;
    size_t plane;
    uint8_t *buf; /* record header + compressed payload */
    size_t buf_cap;
    ZSTD_CCtx *cctx;
};

/* CRC-32 (IEEE, reflected), bitwise: it only covers headers. */
static uint32_t crc32_of(const uint8_t *p, size_t n) {
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
    }
    return ~c;
}

static uint32_t get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static double get_f64(const uint8_t *p) {
    uint64_t u = 0;
    for (int i = 7; i >= 0; i--) u = u << 8 | p[i];
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

static void put_f64(uint8_t *p, double d) {
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(u >> (8 * i));
}

/* Reads exactly n bytes at off: 1 ok, 0 short (end of data), -1 I/O error. */
static int src_read(const source *s, uint64_t off, void *dst, size_t n) {
    if (off > s->size || n > s->size - off) return 0;
    if (s->fd < 0) {
        memcpy(dst, s->mem + off, n);
        return 1;
    }
    size_t got = 0;
    while (got < n) {
        ssize_t k = pread(s->fd, (uint8_t *)dst + got, n - got, (off_t)(off + got));
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) return -1;
        if (k == 0) return 0;
        got += (size_t)k;
    }
    return 1;
}

static ams_status check_info(const ams_label_info *in, const char *what, ams_err *err) {
    AMS_VFAIL_IF(in->width < 1 || in->height < 1 || in->width > 16384 || in->height > 16384 ||
                     (uint64_t)in->width * (uint64_t)in->height > AMS_LABEL_MAX_PIXELS,
                 err, AMS_E_RANGE, "%s: label size %dx%d out of range", what, in->width,
                 in->height);
    AMS_VFAIL_IF(in->classes < 0 || in->classes > 256, err, AMS_E_RANGE,
                 "%s: %d classes (0..256)", what, in->classes);
    AMS_VFAIL_IF(memchr(in->meta, 0, sizeof in->meta) == NULL, err, AMS_E_RANGE,
                 "%s: meta text not NUL-terminated", what);
    return AMS_OK;
}

/* Serialises the header of info into out (capacity FIXED_HEADER + META_MAX + 4). */
static size_t build_header(const ams_label_info *in, uint8_t *out) {
    uint32_t meta_len = (uint32_t)strlen(in->meta);
    uint32_t size = FIXED_HEADER + meta_len + 4;
    memcpy(out, MAGIC, 8);
    put_u32(out + 8, VERSION);
    put_u32(out + 12, size);
    put_u32(out + 16, (uint32_t)in->width);
    put_u32(out + 20, (uint32_t)in->height);
    put_u32(out + 24, (uint32_t)in->classes);
    put_u32(out + 28, meta_len);
    memcpy(out + FIXED_HEADER, in->meta, meta_len);
    put_u32(out + FIXED_HEADER + meta_len, crc32_of(out, FIXED_HEADER + meta_len));
    return size;
}

static ams_status parse_header(const source *s, const char *name, label_index *ix, ams_err *err) {
    uint8_t h[FIXED_HEADER + AMS_LABEL_META_MAX + 4];
    int rc = src_read(s, 0, h, FIXED_HEADER);
    AMS_VFAIL_IF(rc < 0, err, AMS_E_IO, "%s: read failed: %s", name, strerror(errno));
    AMS_VFAIL_IF(rc == 0, err, AMS_E_FORMAT, "%s: too short for a label file", name);
    AMS_VFAIL_IF(memcmp(h, MAGIC, 8) != 0, err, AMS_E_FORMAT, "%s: not a label file (bad magic)",
                 name);
    uint32_t version = get_u32(h + 8), size = get_u32(h + 12), meta_len = get_u32(h + 28);
    AMS_VFAIL_IF(version != VERSION, err, AMS_E_FORMAT,
                 "%s: label file version %u, this build reads %u", name, version, VERSION);
    AMS_VFAIL_IF(meta_len >= AMS_LABEL_META_MAX || size != FIXED_HEADER + meta_len + 4, err,
                 AMS_E_FORMAT, "%s: bad header size %u (meta %u)", name, size, meta_len);
    rc = src_read(s, FIXED_HEADER, h + FIXED_HEADER, meta_len + 4);
    AMS_VFAIL_IF(rc < 0, err, AMS_E_IO, "%s: read failed: %s", name, strerror(errno));
    AMS_VFAIL_IF(rc == 0, err, AMS_E_FORMAT, "%s: truncated header", name);
    AMS_VFAIL_IF(crc32_of(h, FIXED_HEADER + meta_len) != get_u32(h + FIXED_HEADER + meta_len), err,
                 AMS_E_FORMAT, "%s: header checksum mismatch", name);
    uint32_t w = get_u32(h + 16), hh = get_u32(h + 20), classes = get_u32(h + 24);
    AMS_VFAIL_IF(w > 16384 || hh > 16384 || classes > 256, err, AMS_E_FORMAT,
                 "%s: label size %ux%u / %u classes out of range", name, w, hh, classes);
    memset(&ix->info, 0, sizeof ix->info);
    ix->info.width = (int)w;
    ix->info.height = (int)hh;
    ix->info.classes = (int)classes;
    memcpy(ix->info.meta, h + FIXED_HEADER, meta_len);
    AMS_VFAIL_IF(memchr(ix->info.meta, 0, meta_len) != NULL, err, AMS_E_FORMAT,
                 "%s: meta holds a NUL byte", name);
    ams_err why = {0};
    if (check_info(&ix->info, name, &why) != AMS_OK) AMS_VFAIL(err, AMS_E_FORMAT, "%s", why.msg);
    ix->header_size = size;
    return AMS_OK;
}

/* Walks the records after the header; stops at the first incomplete or invalid one. */
static ams_status build_index(const source *s, const char *name, label_index *ix, ams_err *err) {
    uint64_t plane = (uint64_t)ix->info.width * (uint64_t)ix->info.height;
    uint64_t max_payload = ZSTD_compressBound((size_t)plane);
    uint64_t off = ix->header_size;
    double last = -INFINITY;
    for (;;) {
        uint8_t h[REC_HEADER];
        int rc = src_read(s, off, h, REC_HEADER);
        AMS_VFAIL_IF(rc < 0, err, AMS_E_IO, "%s: read failed: %s", name, strerror(errno));
        if (rc == 0) break;
        uint32_t size = get_u32(h + 4);
        double pts = get_f64(h + 8);
        if (memcmp(h, REC_MAGIC, 4) != 0 || crc32_of(h, 16) != get_u32(h + 16)) break;
        if (size == 0 || size > max_payload || !isfinite(pts) || !(pts > last)) break;
        if (off + REC_HEADER > s->size || size > s->size - off - REC_HEADER) break; /* torn */
        if (ix->n == AMS_LABEL_MAX_FRAMES) break;
        if (ix->n == ix->cap) {
            int64_t cap = ix->cap ? ix->cap * 2 : 256;
            index_entry *e = realloc(ix->e, (size_t)cap * sizeof *e);
            AMS_VFAIL_IF(!e, err, AMS_E_NOMEM, "%s: out of memory for the index", name);
            ix->e = e;
            ix->cap = cap;
        }
        ix->e[ix->n++] = (index_entry){pts, off + REC_HEADER, size};
        last = pts;
        off += REC_HEADER + size;
    }
    ix->end = off;
    ix->dropped = s->size - off;
    return AMS_OK;
}

static ams_status reader_init(ams_label_reader *r, const char *name, ams_err *err) {
    AMS_TRY(parse_header(&r->src, name, &r->ix, err));
    AMS_TRY(build_index(&r->src, name, &r->ix, err));
    r->dctx = ZSTD_createDCtx();
    AMS_VFAIL_IF(!r->dctx, err, AMS_E_NOMEM, "out of memory");
    return AMS_OK;
}

ams_status ams_label_reader_open(ams_label_reader **out, const char *path, ams_err *err) {
    AMS_VFAIL_IF(!out || !path, err, AMS_E_INVAL, "ams_label_reader_open: NULL argument");
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        AMS_VFAIL(err, errno == ENOENT ? AMS_E_NOTFOUND : AMS_E_IO, "%s: cannot open: %s", path,
                  strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        AMS_VFAIL(err, AMS_E_IO, "%s: not a regular file", path);
    }
    ams_label_reader *r = calloc(1, sizeof *r);
    if (!r) {
        close(fd);
        AMS_VFAIL(err, AMS_E_NOMEM, "out of memory");
    }
    r->src = (source){.fd = fd, .size = (uint64_t)st.st_size};
    ams_status s = reader_init(r, path, err);
    if (s != AMS_OK) {
        ams_label_reader_free(r);
        return s;
    }
    *out = r;
    return AMS_OK;
}

ams_status ams_label_reader_open_mem(ams_label_reader **out, const uint8_t *data, size_t size,
                                     ams_err *err) {
    AMS_VFAIL_IF(!out || (!data && size), err, AMS_E_INVAL, "ams_label_reader_open_mem: NULL");
    *out = NULL;
    ams_label_reader *r = calloc(1, sizeof *r);
    AMS_VFAIL_IF(!r, err, AMS_E_NOMEM, "out of memory");
    r->src = (source){.fd = -1, .mem = data, .size = size};
    ams_status s = reader_init(r, "label data", err);
    if (s != AMS_OK) {
        ams_label_reader_free(r);
        return s;
    }
    *out = r;
    return AMS_OK;
}

void ams_label_reader_free(ams_label_reader *r) {
    if (!r) return;
    if (r->src.fd >= 0) close(r->src.fd);
    ZSTD_freeDCtx(r->dctx);
    free(r->ix.e);
    free(r->buf);
    free(r);
}

const ams_label_info *ams_label_reader_info(const ams_label_reader *r) { return &r->ix.info; }
int64_t ams_label_reader_count(const ams_label_reader *r) { return r->ix.n; }
uint64_t ams_label_reader_dropped(const ams_label_reader *r) { return r->ix.dropped; }

double ams_label_reader_pts(const ams_label_reader *r, int64_t i) {
    return i >= 0 && i < r->ix.n ? r->ix.e[i].pts : NAN;
}

int64_t ams_label_reader_find(const ams_label_reader *r, double t) {
    if (isnan(t)) return -1;
    int64_t lo = 0, hi = r->ix.n; /* first index with pts > t */
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (r->ix.e[mid].pts <= t + PTS_EPS) lo = mid + 1;
        else hi = mid;
    }
    return lo - 1;
}

ams_status ams_label_reader_read(ams_label_reader *r, int64_t i, uint8_t *dst, size_t cap,
                                 ams_err *err) {
    AMS_VFAIL_IF(!r || !dst, err, AMS_E_INVAL, "ams_label_reader_read: NULL argument");
    AMS_VFAIL_IF(i < 0 || i >= r->ix.n, err, AMS_E_RANGE, "label frame %lld of %lld",
                 (long long)i, (long long)r->ix.n);
    size_t plane = (size_t)r->ix.info.width * (size_t)r->ix.info.height;
    AMS_VFAIL_IF(cap < plane, err, AMS_E_RANGE, "label buffer of %zu bytes < %zu", cap, plane);
    const index_entry *e = &r->ix.e[i];
    if (e->size > r->buf_cap) {
        uint8_t *b = realloc(r->buf, e->size);
        AMS_VFAIL_IF(!b, err, AMS_E_NOMEM, "out of memory");
        r->buf = b;
        r->buf_cap = e->size;
    }
    int rc = src_read(&r->src, e->offset, r->buf, e->size);
    AMS_VFAIL_IF(rc <= 0, err, rc < 0 ? AMS_E_IO : AMS_E_FORMAT, "label frame %lld: read failed",
                 (long long)i);
    unsigned long long content = ZSTD_getFrameContentSize(r->buf, e->size);
    AMS_VFAIL_IF(content != plane, err, AMS_E_FORMAT,
                 "label frame %lld: payload is not one %dx%d plane", (long long)i,
                 r->ix.info.width, r->ix.info.height);
    size_t got = ZSTD_decompressDCtx(r->dctx, dst, plane, r->buf, e->size);
    AMS_VFAIL_IF(ZSTD_isError(got) || got != plane, err, AMS_E_FORMAT,
                 "label frame %lld: corrupt payload (%s)", (long long)i,
                 ZSTD_isError(got) ? ZSTD_getErrorName(got) : "short");
    return AMS_OK;
}

/* ---- writer ---- */

static ams_status write_all(int fd, const uint8_t *p, size_t n) {
    while (n) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return AMS_E_IO;
        p += k;
        n -= (size_t)k;
    }
    return AMS_OK;
}

static ams_status writer_setup(ams_label_writer *w, const ams_label_info *info, ams_err *err) {
    struct stat st;
    AMS_VFAIL_IF(fstat(w->fd, &st) != 0, err, AMS_E_IO, "%s: stat failed", w->path);
    uint8_t h[FIXED_HEADER + AMS_LABEL_META_MAX + 4];
    size_t n = build_header(info, h);
    if (st.st_size > 0 && (uint64_t)st.st_size < n) {
        /* A writer that died while writing this very header left a prefix of it: start over.
         * Anything else that short is not ours to overwrite. */
        uint8_t old[sizeof h];
        source s = {.fd = w->fd, .size = (uint64_t)st.st_size};
        if (src_read(&s, 0, old, (size_t)st.st_size) == 1 && !memcmp(old, h, (size_t)st.st_size)) {
            AMS_VFAIL_IF(ftruncate(w->fd, 0) != 0, err, AMS_E_IO, "%s: truncate failed", w->path);
            w->ix.dropped = (uint64_t)st.st_size;
            st.st_size = 0;
        }
    }
    if (st.st_size == 0) { /* a new file */
        AMS_VFAIL_IF(write_all(w->fd, h, n) != AMS_OK, err, AMS_E_IO, "%s: write failed: %s",
                     w->path, strerror(errno));
        w->ix.info = *info;
        w->ix.header_size = w->ix.end = n;
        return AMS_OK;
    }
    source s = {.fd = w->fd, .size = (uint64_t)st.st_size};
    AMS_TRY(parse_header(&s, w->path, &w->ix, err));
    const ams_label_info *have = &w->ix.info;
    AMS_VFAIL_IF(have->width != info->width || have->height != info->height ||
                     have->classes != info->classes || strcmp(have->meta, info->meta) != 0,
                 err, AMS_E_INVAL,
                 "%s: exists with other settings (%dx%d, %d classes, meta '%.200s'); "
                 "remove it or choose another output",
                 w->path, have->width, have->height, have->classes, have->meta);
    AMS_TRY(build_index(&s, w->path, &w->ix, err));
    if (w->ix.dropped)
        AMS_VFAIL_IF(ftruncate(w->fd, (off_t)w->ix.end) != 0, err, AMS_E_IO,
                     "%s: cannot drop the incomplete tail: %s", w->path, strerror(errno));
    return AMS_OK;
}

ams_status ams_label_writer_open(ams_label_writer **out, const char *path,
                                 const ams_label_info *info, ams_err *err) {
    AMS_VFAIL_IF(!out || !path || !info, err, AMS_E_INVAL, "ams_label_writer_open: NULL argument");
    *out = NULL;
    AMS_TRY(check_info(info, path, err));
    AMS_VFAIL_IF(strlen(path) >= 4096, err, AMS_E_RANGE, "label path too long");
    ams_label_writer *w = calloc(1, sizeof *w);
    AMS_VFAIL_IF(!w, err, AMS_E_NOMEM, "out of memory");
    snprintf(w->path, sizeof w->path, "%s", path);
    w->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    ams_status s = AMS_OK;
    if (w->fd < 0) s = ams_video_fail(err, AMS_E_IO, "%s: cannot open for writing: %s", path, strerror(errno));
    else if (flock(w->fd, LOCK_EX | LOCK_NB) != 0)
        s = ams_video_fail(err, AMS_E_IO, "%s: another writer has it open", path);
    if (s == AMS_OK) s = writer_setup(w, info, err);
    if (s == AMS_OK && lseek(w->fd, (off_t)w->ix.end, SEEK_SET) < 0)
        s = ams_video_fail(err, AMS_E_IO, "%s: seek failed", path);
    w->plane = (size_t)info->width * (size_t)info->height;
    w->buf_cap = REC_HEADER + ZSTD_compressBound(w->plane);
    if (s == AMS_OK && (!(w->buf = malloc(w->buf_cap)) || !(w->cctx = ZSTD_createCCtx())))
        s = ams_video_fail(err, AMS_E_NOMEM, "out of memory");
    if (s == AMS_OK) {
        ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_compressionLevel, ZSTD_LEVEL);
        ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_checksumFlag, 1);
        ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_contentSizeFlag, 1);
    }
    if (s != AMS_OK) {
        ams_label_writer_free(w);
        return s;
    }
    *out = w;
    return AMS_OK;
}

int64_t ams_label_writer_count(const ams_label_writer *w) { return w->ix.n; }
uint64_t ams_label_writer_dropped(const ams_label_writer *w) { return w->ix.dropped; }
double ams_label_writer_last_pts(const ams_label_writer *w) {
    return w->ix.n ? w->ix.e[w->ix.n - 1].pts : -INFINITY;
}

ams_status ams_label_writer_append(ams_label_writer *w, double pts, const uint8_t *labels,
                                   ams_err *err) {
    AMS_VFAIL_IF(!w || !labels || w->fd < 0, err, AMS_E_INVAL, "ams_label_writer_append: bad call");
    AMS_VFAIL_IF(!isfinite(pts) || !(pts > ams_label_writer_last_pts(w)), err, AMS_E_RANGE,
                 "%s: label pts %g must be finite and after the last (%g)", w->path, pts,
                 ams_label_writer_last_pts(w));
    AMS_VFAIL_IF(w->ix.n >= AMS_LABEL_MAX_FRAMES, err, AMS_E_RANGE, "%s: too many frames", w->path);
    size_t z = ZSTD_compress2(w->cctx, w->buf + REC_HEADER, w->buf_cap - REC_HEADER, labels, w->plane);
    AMS_VFAIL_IF(ZSTD_isError(z), err, AMS_E_INTERNAL, "zstd: %s", ZSTD_getErrorName(z));
    memcpy(w->buf, REC_MAGIC, 4);
    put_u32(w->buf + 4, (uint32_t)z);
    put_f64(w->buf + 8, pts);
    put_u32(w->buf + 16, crc32_of(w->buf, 16));
    if (w->ix.n == w->ix.cap) {
        int64_t cap = w->ix.cap ? w->ix.cap * 2 : 256;
        index_entry *e = realloc(w->ix.e, (size_t)cap * sizeof *e);
        AMS_VFAIL_IF(!e, err, AMS_E_NOMEM, "out of memory");
        w->ix.e = e;
        w->ix.cap = cap;
    }
    if (write_all(w->fd, w->buf, REC_HEADER + z) != AMS_OK) {
        int e = errno;
        /* Leave no partial record behind: cut back to the last complete one. */
        if (ftruncate(w->fd, (off_t)w->ix.end) != 0 || lseek(w->fd, (off_t)w->ix.end, SEEK_SET) < 0) {
            close(w->fd);
            w->fd = -1;
        }
        AMS_VFAIL(err, AMS_E_IO, "%s: write failed: %s", w->path, strerror(e));
    }
    w->ix.e[w->ix.n++] = (index_entry){pts, w->ix.end + REC_HEADER, (uint32_t)z};
    w->ix.end += REC_HEADER + z;
    return AMS_OK;
}

ams_status ams_label_writer_sync(ams_label_writer *w, ams_err *err) {
    AMS_VFAIL_IF(!w || w->fd < 0, err, AMS_E_INVAL, "ams_label_writer_sync: not open");
    AMS_VFAIL_IF(fsync(w->fd) != 0, err, AMS_E_IO, "%s: fsync failed: %s", w->path, strerror(errno));
    return AMS_OK;
}

ams_status ams_label_writer_close(ams_label_writer *w, ams_err *err) {
    AMS_TRY(ams_label_writer_sync(w, err));
    int rc = close(w->fd);
    w->fd = -1;
    AMS_VFAIL_IF(rc != 0, err, AMS_E_IO, "%s: close failed: %s", w->path, strerror(errno));
    return AMS_OK;
}

void ams_label_writer_free(ams_label_writer *w) {
    if (!w) return;
    if (w->fd >= 0) close(w->fd);
    ZSTD_freeCCtx(w->cctx);
    free(w->ix.e);
    free(w->buf);
    free(w);
}
