/* file_io.c - bounded whole-file reads and atomic writes (temporary file + fsync + rename). */
#include "models/file_io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

ams_status ams_file_read_all(const char *path, size_t max, uint8_t **buf, size_t *len,
                             ams_err *err) {
    *buf = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    AMS_FAIL_IF(fd < 0, err, AMS_E_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        AMS_FAIL(err, AMS_E_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        AMS_FAIL(err, AMS_E_IO, "%s: not a regular file", path);
    }
    if (st.st_size < 0 || (uint64_t)st.st_size > (uint64_t)max) {
        close(fd);
        AMS_FAIL(err, AMS_E_RANGE, "%s: file is %lld bytes, more than the limit of %zu", path,
                 (long long)st.st_size, max);
    }
    size_t size = (size_t)st.st_size;
    uint8_t *b = malloc(size ? size : 1);
    if (!b) {
        close(fd);
        AMS_FAIL(err, AMS_E_NOMEM, "%s: cannot allocate %zu bytes", path, size);
    }
    size_t got = 0;
    while (got < size) {
        ssize_t r = read(fd, b + got, size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            int e = r < 0 ? errno : 0;
            close(fd);
            free(b);
            if (e) AMS_FAIL(err, AMS_E_IO, "%s: read failed: %s", path, strerror(e));
            AMS_FAIL(err, AMS_E_IO, "%s: file shrank while reading (%zu of %zu bytes)", path,
                     got, size);
        }
        got += (size_t)r;
    }
    close(fd);
    *buf = b;
    *len = size;
    return AMS_OK;
}

static int write_all(int fd, const uint8_t *p, size_t n) {
    while (n > 0) {
        /* large writes in pieces: some kernels cap one write() near 2 GiB */
        size_t part = n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n;
        ssize_t w = write(fd, p, part);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

ams_status ams_file_write_atomic(const char *path, const ams_chunk *chunks, int nchunks,
                                 ams_err *err) {
    char tmp[4096];
    int n = snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    AMS_FAIL_IF(n < 0 || (size_t)n >= sizeof tmp, err, AMS_E_INVAL, "%s: path too long", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    AMS_FAIL_IF(fd < 0, err, AMS_E_IO, "%s: cannot create %s: %s", path, tmp, strerror(errno));
    const char *what = NULL;
    for (int i = 0; i < nchunks && !what; i++)
        if (write_all(fd, chunks[i].data, chunks[i].n) != 0) what = "write";
    if (!what && fsync(fd) != 0) what = "fsync";
    int e = errno;
    if (close(fd) != 0 && !what) {
        what = "close";
        e = errno;
    }
    if (!what && rename(tmp, path) != 0) {
        what = "rename";
        e = errno;
    }
    if (what) {
        unlink(tmp);
        AMS_FAIL(err, AMS_E_IO, "%s: %s failed: %s", path, what, strerror(e));
    }
    return AMS_OK;
}
