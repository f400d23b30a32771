/* test_video_label_store.c - the label file: round trip, byte layout checked by hand (with
 * zstd's own decoder as the oracle for payloads), timestamp lookup, resume after truncation at
 * every byte of the last record, damaged bytes, and the writer's refusals. */
#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "ams/label_store.h"
#include "check.h"
#include "video_testutil.h"

enum { W = 37, H = 23, PLANE = W * H };

/* Plane k: blocks of class ids that move with k, plus an ignore (255) stripe. */
static void make_plane(uint8_t *p, int k) {
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            p[y * W + x] = (uint8_t)(y == (k % H) ? AMS_LABEL_IGNORE : ((x + k) / 8 + y / 6) % 19);
}

static ams_label_info info_for(void) {
    ams_label_info in = {.width = W, .height = H, .classes = 19};
    snprintf(in.meta, sizeof in.meta, "{\"teacher\": \"test\", \"fps\": 10}");
    return in;
}

/* Writes frames [from, to) with pts 0.1 k into path (creating or resuming). */
static int write_frames(const char *path, int from, int to) {
    ams_err err = {0};
    ams_label_info in = info_for();
    ams_label_writer *w = NULL;
    CHECKF(ams_label_writer_open(&w, path, &in, &err) == AMS_OK, "%s", err.msg);
    CHECK(ams_label_writer_count(w) == from);
    uint8_t p[PLANE];
    for (int k = from; k < to; k++) {
        make_plane(p, k);
        CHECKF(ams_label_writer_append(w, 0.1 * k, p, &err) == AMS_OK, "%s", err.msg);
    }
    CHECK(ams_label_writer_close(w, &err) == AMS_OK);
    ams_label_writer_free(w);
    return 0;
}

/* Reads everything back and compares with make_plane; n = expected frame count. */
static int verify(const char *path, int n, uint64_t dropped) {
    ams_err err = {0};
    ams_label_reader *r = NULL;
    CHECKF(ams_label_reader_open(&r, path, &err) == AMS_OK, "%s", err.msg);
    const ams_label_info *in = ams_label_reader_info(r);
    CHECK(in->width == W && in->height == H && in->classes == 19);
    CHECK(!strcmp(in->meta, info_for().meta));
    CHECKF(ams_label_reader_count(r) == n, "%lld frames, want %d", (long long)ams_label_reader_count(r), n);
    CHECKF(ams_label_reader_dropped(r) == dropped, "dropped %llu, want %llu",
           (unsigned long long)ams_label_reader_dropped(r), (unsigned long long)dropped);
    uint8_t p[PLANE], q[PLANE];
    for (int k = 0; k < n; k++) {
        CHECK(ams_label_reader_pts(r, k) == 0.1 * k);
        CHECKF(ams_label_reader_read(r, k, q, sizeof q, &err) == AMS_OK, "%s", err.msg);
        make_plane(p, k);
        CHECKF(!memcmp(p, q, PLANE), "frame %d differs", k);
    }
    ams_label_reader_free(r);
    return 0;
}

static long file_size(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 ? (long)st.st_size : -1;
}

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int test_round_trip_and_layout(void) {
    const char *path = vt_path("a.labels");
    CHECK(write_frames(path, 0, 7) == 0);
    CHECK(verify(path, 7, 0) == 0);
    /* The layout, parsed here by hand: header, then records whose payloads zstd decodes. */
    long size = file_size(path);
    uint8_t *b = malloc((size_t)size);
    FILE *f = fopen(path, "rb");
    CHECK(b && f && fread(b, 1, (size_t)size, f) == (size_t)size);
    fclose(f);
    CHECK(!memcmp(b, "AMSLABEL", 8) && le32(b + 8) == 1);
    uint32_t meta_len = le32(b + 28), hs = le32(b + 12);
    CHECK(meta_len == strlen(info_for().meta) && hs == 32 + meta_len + 4);
    CHECK(le32(b + 16) == W && le32(b + 20) == H && le32(b + 24) == 19);
    CHECK(!memcmp(b + 32, info_for().meta, meta_len));
    long off = hs;
    uint8_t p[PLANE], q[PLANE];
    for (int k = 0; k < 7; k++) {
        CHECK(!memcmp(b + off, "LFRM", 4));
        uint32_t z = le32(b + off + 4);
        double pts;
        uint64_t u = 0;
        for (int i = 7; i >= 0; i--) u = u << 8 | b[off + 8 + i];
        memcpy(&pts, &u, 8);
        CHECK(pts == 0.1 * k);
        size_t got = ZSTD_decompress(q, sizeof q, b + off + 20, z);
        make_plane(p, k);
        CHECK(got == PLANE && !memcmp(p, q, PLANE));
        off += 20 + (long)z;
    }
    CHECK(off == size);
    free(b);
    /* compact: blocky planes compress well */
    CHECKF(size < 7 * PLANE / 3, "%ld bytes for %d raw", size, 7 * PLANE);
    return 0;
}

static int test_find(void) {
    const char *path = vt_path("a.labels");
    if (file_size(path) < 0) CHECK(write_frames(path, 0, 7) == 0);
    ams_err err = {0};
    ams_label_reader *r = NULL;
    CHECK(ams_label_reader_open(&r, path, &err) == AMS_OK);
    CHECK(ams_label_reader_find(r, -1) == -1);
    CHECK(ams_label_reader_find(r, 0) == 0);
    CHECK(ams_label_reader_find(r, 0.3) == 3); /* 3 * 0.1 != 0.3 in binary: the tolerance */
    CHECK(ams_label_reader_find(r, 0.35) == 3);
    CHECK(ams_label_reader_find(r, 0.6) == 6);
    CHECK(ams_label_reader_find(r, 1e9) == 6);
    CHECK(ams_label_reader_find(r, NAN) == -1);
    CHECK(isnan(ams_label_reader_pts(r, 7)) && isnan(ams_label_reader_pts(r, -1)));
    uint8_t q[PLANE];
    CHECK(ams_label_reader_read(r, 7, q, sizeof q, &err) == AMS_E_RANGE);
    CHECK(ams_label_reader_read(r, 0, q, PLANE - 1, &err) == AMS_E_RANGE);
    ams_label_reader_free(r);
    ams_label_reader_free(NULL);
    return 0;
}

static int test_resume(void) {
    const char *path = vt_path("b.labels");
    CHECK(write_frames(path, 0, 4) == 0);
    CHECK(write_frames(path, 4, 9) == 0); /* reopen continues */
    CHECK(verify(path, 9, 0) == 0);
    /* Cut the file at every byte inside the last record: 8 complete frames and a dropped
     * tail for the reader; the writer drops the tail and continues. */
    long full = file_size(path);
    ams_err err = {0};
    ams_label_reader *r = NULL;
    CHECK(ams_label_reader_open(&r, path, &err) == AMS_OK);
    CHECK(ams_label_reader_count(r) == 9);
    ams_label_reader_free(r);
    uint8_t *b = malloc((size_t)full);
    FILE *f = fopen(path, "rb");
    CHECK(b && f && fread(b, 1, (size_t)full, f) == (size_t)full);
    fclose(f);
    /* start of the last record = end of an 8-frame file */
    const char *p8 = vt_path("c.labels");
    CHECK(write_frames(p8, 0, 8) == 0);
    long end8 = file_size(p8);
    CHECK(end8 > 0 && end8 < full && !memcmp(b, "AMSLABEL", 8));
    const char *cut = vt_path("cut.labels");
    for (long len = end8; len < full; len++) {
        f = fopen(cut, "wb");
        CHECK(f && fwrite(b, 1, (size_t)len, f) == (size_t)len);
        fclose(f);
        CHECK(verify(cut, 8, (uint64_t)(len - end8)) == 0);
        if (len % 7 == 0 || len == end8 + 1 || len == full - 1) {
            ams_label_info in = info_for();
            ams_label_writer *w = NULL;
            CHECK(ams_label_writer_open(&w, cut, &in, &err) == AMS_OK);
            CHECK(ams_label_writer_count(w) == 8 && ams_label_writer_dropped(w) == (uint64_t)(len - end8));
            CHECK(ams_label_writer_last_pts(w) == 0.1 * 7);
            ams_label_writer_free(w);
            CHECK(file_size(cut) == end8);
            CHECK(write_frames(cut, 8, 12) == 0);
            CHECK(verify(cut, 12, 0) == 0);
        }
    }
    /* a file cut inside the header: readers refuse it, a writer with the same settings starts
     * over (it was its own header being written), one with other settings leaves it alone */
    CHECK(verify(vt_path("c.labels"), 8, 0) == 0);
    long hs = 32 + (long)strlen(info_for().meta) + 4;
    for (long len = 1; len < hs; len += 13) {
        f = fopen(cut, "wb");
        CHECK(f && fwrite(b, 1, (size_t)len, f) == (size_t)len);
        fclose(f);
        CHECK(ams_label_reader_open(&r, cut, &err) == AMS_E_FORMAT && !r);
        ams_label_info other = info_for();
        other.width++; /* the headers differ from byte 16 on */
        ams_label_writer *w = NULL;
        if (len > 16) {
            CHECK(ams_label_writer_open(&w, cut, &other, &err) != AMS_OK && !w);
            CHECK(file_size(cut) == len);
        }
        CHECK(write_frames(cut, 0, 2) == 0);
        CHECK(verify(cut, 2, 0) == 0);
    }
    free(b);
    return 0;
}

static int test_damage(void) {
    const char *path = vt_path("d.labels");
    CHECK(write_frames(path, 0, 5) == 0);
    long size = file_size(path);
    ams_err err = {0};
    ams_label_reader *r = NULL;
    /* flip a byte in the middle of the last payload: its zstd checksum catches it */
    int fd = open(path, O_RDWR);
    CHECK(fd >= 0);
    uint8_t byte;
    CHECK(pread(fd, &byte, 1, size - 6) == 1);
    byte ^= 0x5a;
    CHECK(pwrite(fd, &byte, 1, size - 6) == 1);
    CHECK(ams_label_reader_open(&r, path, &err) == AMS_OK && ams_label_reader_count(r) == 5);
    uint8_t q[PLANE];
    CHECK(ams_label_reader_read(r, 3, q, sizeof q, &err) == AMS_OK);
    CHECK(ams_label_reader_read(r, 4, q, sizeof q, &err) == AMS_E_FORMAT);
    ams_label_reader_free(r);
    /* a record header that does not verify ends the index there */
    CHECK(write_frames(path = vt_path("e.labels"), 0, 5) == 0);
    long hs = 32 + (long)strlen(info_for().meta) + 4;
    CHECK((fd = open(path, O_RDWR)) >= 0);
    CHECK(pread(fd, &byte, 1, hs + 9) == 1);
    byte ^= 1;
    CHECK(pwrite(fd, &byte, 1, hs + 9) == 1); /* first record's pts */
    close(fd);
    CHECK(ams_label_reader_open(&r, path, &err) == AMS_OK);
    CHECK(ams_label_reader_count(r) == 0 && ams_label_reader_dropped(r) == (uint64_t)(file_size(path) - hs));
    ams_label_reader_free(r);
    /* header damage and foreign files */
    CHECK((fd = open(path, O_RDWR)) >= 0);
    CHECK(pwrite(fd, "X", 1, 20) == 1);
    close(fd);
    CHECK(ams_label_reader_open(&r, path, &err) == AMS_E_FORMAT && strstr(err.msg, "checksum"));
    CHECK(ams_label_reader_open(&r, vt_path("none.labels"), &err) == AMS_E_NOTFOUND);
    uint8_t junk[64] = "AMSLABEL\2\0\0\0";
    CHECK(ams_label_reader_open_mem(&r, junk, sizeof junk, &err) == AMS_E_FORMAT && strstr(err.msg, "version"));
    CHECK(ams_label_reader_open_mem(&r, junk, 0, &err) == AMS_E_FORMAT);
    return 0;
}

static int test_writer_refusals(void) {
    const char *path = vt_path("f.labels");
    CHECK(write_frames(path, 0, 2) == 0);
    ams_err err = {0};
    ams_label_writer *w = NULL, *w2 = NULL;
    ams_label_info in = info_for();
    in.width++;
    CHECK(ams_label_writer_open(&w, path, &in, &err) == AMS_E_INVAL && !w);
    in = info_for();
    in.meta[0] = '[';
    CHECK(ams_label_writer_open(&w, path, &in, &err) == AMS_E_INVAL);
    in = info_for();
    in.classes = 300;
    CHECK(ams_label_writer_open(&w, vt_path("g.labels"), &in, &err) == AMS_E_RANGE);
    in = info_for();
    CHECK(ams_label_writer_open(&w, path, &in, &err) == AMS_OK);
    CHECK(ams_label_writer_open(&w2, path, &in, &err) == AMS_E_IO && !w2); /* locked */
    uint8_t p[PLANE];
    make_plane(p, 2);
    CHECK(ams_label_writer_append(w, 0.1, p, &err) == AMS_E_RANGE);  /* not after 0.1 */
    CHECK(ams_label_writer_append(w, NAN, p, &err) == AMS_E_RANGE);
    CHECK(ams_label_writer_append(w, 0.2, p, &err) == AMS_OK);
    ams_label_writer_free(w); /* no close: still readable, all appended frames present */
    CHECK(verify(path, 3, 0) == 0);
    CHECK(ams_label_writer_open(&w, vt_path("no/such/dir.labels"), &in, &err) == AMS_E_IO);
    return 0;
}

int main(int argc, char **argv) {
    static const check_case cases[] = {
        {"round_trip_and_layout", test_round_trip_and_layout},
        {"find", test_find},
        {"resume", test_resume},
        {"damage", test_damage},
        {"writer_refusals", test_writer_refusals},
    };
    int rc = check_run(cases, sizeof cases / sizeof cases[0], argc, argv);
    vt_cleanup();
    return rc;
}
