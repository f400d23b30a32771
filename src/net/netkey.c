/* netkey.c - pre-shared key files: generation (RAND_bytes, atomic, 0600) and loading. */
#include "ams/netkey.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int write_all(int fd, const uint8_t *p, size_t n) {
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return 0;
        p += w, n -= (size_t)w;
    }
    return 1;
}

ams_status ams_netkey_generate(const char *dir, const char *id, int force, ams_err *err) {
    AMS_FAIL_IF(!ams_proto_id_valid(id), err, AMS_E_INVAL,
                "bad client id '%s' (1..%d of A-Z a-z 0-9 _ . -)", id, AMS_PROTO_ID_MAX);
    char path[4096], tmp[4096];
    AMS_FAIL_IF(snprintf(path, sizeof path, "%s/%s.key", dir, id) >= (int)sizeof path ||
                    snprintf(tmp, sizeof tmp, "%s/.%s.key.%ld.tmp", dir, id, (long)getpid()) >=
                        (int)sizeof tmp,
                err, AMS_E_INVAL, "key path too long");
    uint8_t key[AMS_PROTO_KEY_BYTES];
    AMS_FAIL_IF(RAND_bytes(key, sizeof key) != 1, err, AMS_E_INTERNAL, "RAND_bytes failed");
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        OPENSSL_cleanse(key, sizeof key);
        AMS_FAIL(err, AMS_E_IO, "%s: %s", tmp, strerror(errno));
    }
    int ok = fchmod(fd, 0600) == 0 && write_all(fd, key, sizeof key) && fsync(fd) == 0;
    int e = errno;
    OPENSSL_cleanse(key, sizeof key);
    if (close(fd) != 0 && ok) ok = 0, e = errno;
    if (!ok) {
        unlink(tmp);
        AMS_FAIL(err, AMS_E_IO, "%s: %s", tmp, strerror(e));
    }
    /* link() never replaces an existing file: the no-overwrite check is atomic */
    int r = force ? rename(tmp, path) : link(tmp, path);
    e = errno;
    if (!force || r != 0) unlink(tmp);
    if (r != 0) {
        if (e == EEXIST) AMS_FAIL(err, AMS_E_IO, "%s exists (use --force to replace it)", path);
        AMS_FAIL(err, AMS_E_IO, "%s: %s", path, strerror(e));
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) fsync(dfd), close(dfd);
    return AMS_OK;
}

ams_status ams_netkey_load(const char *path, uint8_t key[AMS_PROTO_KEY_BYTES], ams_err *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        AMS_FAIL(err, errno == ENOENT ? AMS_E_NOTFOUND : AMS_E_IO, "%s: %s", path,
                 strerror(errno));
    struct stat st;
    ams_status s = AMS_OK;
    if (fstat(fd, &st) != 0) s = ams_err_set(err, AMS_E_IO, "%s: %s", path, strerror(errno));
    else if (!S_ISREG(st.st_mode)) s = ams_err_set(err, AMS_E_IO, "%s: not a regular file", path);
    else if (st.st_mode & 077)
        s = ams_err_set(err, AMS_E_IO, "%s: readable by others (mode %03o; chmod 600)", path,
                        (unsigned)(st.st_mode & 0777));
    else if (st.st_size != AMS_PROTO_KEY_BYTES)
        s = ams_err_set(err, AMS_E_FORMAT, "%s: %lld bytes, a key has %d", path,
                        (long long)st.st_size, AMS_PROTO_KEY_BYTES);
    else {
        size_t got = 0;
        while (got < AMS_PROTO_KEY_BYTES) {
            ssize_t r = read(fd, key + got, AMS_PROTO_KEY_BYTES - got);
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) break;
            got += (size_t)r;
        }
        if (got != AMS_PROTO_KEY_BYTES) s = ams_err_set(err, AMS_E_IO, "%s: short read", path);
    }
    close(fd);
    return s;
}

ams_status ams_netkey_load_id(const char *dir, const char *id, uint8_t key[AMS_PROTO_KEY_BYTES],
                              ams_err *err) {
    AMS_FAIL_IF(!ams_proto_id_valid(id), err, AMS_E_INVAL, "bad client id");
    char path[4096];
    AMS_FAIL_IF(snprintf(path, sizeof path, "%s/%s.key", dir, id) >= (int)sizeof path, err,
                AMS_E_INVAL, "key path too long");
    return ams_netkey_load(path, key, err);
}
