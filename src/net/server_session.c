/* server_session.c - the server's sessions: creation from the initial weights or from the
 * state directory, and the atomic session file ("AMSS" v1) that lets a restarted server resume.
 *
 * FILE (little endian): "AMSS", u16 version 1, u16 0, u64 model version, u64 total floats,
 * f64 sample rate, u32 last-update bytes, 32-byte base hash of the last update, total f32
 * mirror values, the last UPDATE payload, SHA-256 of every byte before it. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ams/weights_hash.h"
#include "net/server_internal.h"
#include "net/wire.h"

#define HEAD_BYTES 68

static int path_of(char *out, size_t cap, const char *dir, const char *id, const char *suffix) {
    return snprintf(out, cap, "%s/%s%s", dir, id, suffix) < (int)cap;
}

ams_status ams_session_save(const char *state_dir, const char *id, uint64_t version,
                            double sample_rate, const float *mirror, size_t total,
                            const uint8_t *last_update, size_t last_update_len,
                            const uint8_t last_base[AMS_HASH_LEN], ams_err *err) {
    char path[4096], tmp[4200];
    AMS_FAIL_IF(!path_of(path, sizeof path, state_dir, id, ".session") ||
                    !path_of(tmp, sizeof tmp, state_dir, id, ".session.tmp"),
                err, AMS_E_INVAL, "state path too long");
    size_t n = HEAD_BYTES + total * 4 + last_update_len + AMS_HASH_LEN;
    uint8_t *buf = malloc(n);
    AMS_FAIL_IF(!buf, err, AMS_E_NOMEM, "session file of %zu bytes", n);
    uint8_t *p = buf;
    memcpy(p, "AMSS", 4);
    ams_wire_put16(p + 4, 1);
    ams_wire_put16(p + 6, 0);
    ams_wire_put64(p + 8, version);
    ams_wire_put64(p + 16, total);
    ams_wire_putf64(p + 24, sample_rate);
    ams_wire_put32(p + 32, (uint32_t)last_update_len);
    memcpy(p + 36, last_base, AMS_HASH_LEN);
    memcpy(p + HEAD_BYTES, mirror, total * 4); /* little-endian hosts only (weights_hash.h) */
    if (last_update_len) memcpy(p + HEAD_BYTES + total * 4, last_update, last_update_len);
    ams_status st = ams_sha256(buf, n - AMS_HASH_LEN, buf + n - AMS_HASH_LEN, err);
    if (st != AMS_OK) {
        free(buf);
        return st;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        free(buf);
        AMS_FAIL(err, AMS_E_IO, "%s: %s", tmp, strerror(errno));
    }
    size_t off = 0;
    while (off < n) {
        ssize_t w = write(fd, buf + off, n - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        off += (size_t)w;
    }
    free(buf);
    int ok = off == n && fsync(fd) == 0;
    int e = errno;
    if (close(fd) != 0) ok = 0;
    if (!ok || rename(tmp, path) != 0) {
        if (ok) e = errno;
        unlink(tmp);
        AMS_FAIL(err, AMS_E_IO, "%s: %s", path, strerror(e));
    }
    int dfd = open(state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) fsync(dfd), close(dfd);
    return AMS_OK;
}

/* Fills ss from its file; AMS_E_NOTFOUND when there is none. */
static ams_status load(ams_server *s, session *ss, ams_err *err) {
    char path[4096];
    AMS_FAIL_IF(!path_of(path, sizeof path, s->cfg.state_dir, ss->id, ".session"), err,
                AMS_E_INVAL, "state path too long");
    FILE *f = fopen(path, "rb");
    if (!f) AMS_FAIL(err, errno == ENOENT ? AMS_E_NOTFOUND : AMS_E_IO, "%s: %s", path,
                     strerror(errno));
    size_t maxn = HEAD_BYTES + s->total * 4 + ams_proto_max_payload(AMS_MSG_UPDATE) + AMS_HASH_LEN;
    struct stat st;
    ams_status r = AMS_OK;
    uint8_t *buf = NULL;
    if (fstat(fileno(f), &st) != 0 || st.st_size < HEAD_BYTES + AMS_HASH_LEN ||
        (uint64_t)st.st_size > maxn) {
        r = ams_err_set(err, AMS_E_FORMAT, "%s: size does not fit the model", path);
        goto done;
    }
    size_t n = (size_t)st.st_size;
    buf = malloc(n);
    if (!buf || fread(buf, 1, n, f) != n) {
        r = ams_err_set(err, buf ? AMS_E_IO : AMS_E_NOMEM, "%s: cannot read", path);
        goto done;
    }
    uint8_t h[AMS_HASH_LEN];
    if ((r = ams_sha256(buf, n - AMS_HASH_LEN, h, err)) != AMS_OK) goto done;
    if (memcmp(buf, "AMSS", 4) || ams_wire_get16(buf + 4) != 1 ||
        memcmp(h, buf + n - AMS_HASH_LEN, AMS_HASH_LEN)) {
        r = ams_err_set(err, AMS_E_FORMAT, "%s: not a version 1 session file or corrupt", path);
        goto done;
    }
    uint64_t total = ams_wire_get64(buf + 16);
    uint32_t ulen = ams_wire_get32(buf + 32);
    double rate = ams_wire_getf64(buf + 24);
    if (total != s->total || n != HEAD_BYTES + total * 4 + ulen + AMS_HASH_LEN ||
        (ulen && ulen < AMS_MSG_UPDATE_HEAD_BYTES) || !isfinite(rate) || rate < 0) {
        r = ams_err_set(err, AMS_E_FORMAT, "%s: made for another model (%llu floats, want %zu)",
                        path, (unsigned long long)total, s->total);
        goto done;
    }
    ss->version = ams_wire_get64(buf + 8);
    ss->sample_rate = rate;
    memcpy(ss->last_base, buf + 36, AMS_HASH_LEN);
    memcpy(ss->mirror, buf + HEAD_BYTES, s->total * 4);
    if (ulen) {
        ss->last_update = malloc(ulen);
        if (!ss->last_update) {
            r = ams_err_set(err, AMS_E_NOMEM, "last update");
            goto done;
        }
        memcpy(ss->last_update, buf + HEAD_BYTES + s->total * 4, ulen);
        ss->last_update_len = ulen;
    }
done:
    free(buf);
    fclose(f);
    return r;
}

session *ams_session_get(ams_server *s, const char *id, ams_err *err) {
    for (int i = 0; i < s->n_sessions; i++)
        if (!strcmp(s->sessions[i]->id, id)) return s->sessions[i];
    if (s->n_sessions >= AMS_SERVER_MAX_SESSIONS) {
        ams_err_set(err, AMS_E_NOMEM, "too many sessions (%d)", AMS_SERVER_MAX_SESSIONS);
        return NULL;
    }
    session *ss = calloc(1, sizeof *ss);
    if (ss) ss->mirror = malloc(s->total * sizeof(float));
    session **grown = realloc(s->sessions, (size_t)(s->n_sessions + 1) * sizeof *grown);
    if (grown) s->sessions = grown;
    if (!ss || !ss->mirror || !grown) {
        if (ss) free(ss->mirror);
        free(ss);
        ams_err_set(err, AMS_E_NOMEM, "session");
        return NULL;
    }
    snprintf(ss->id, sizeof ss->id, "%s", id);
    ss->sample_rate = s->cfg.sample_rate;
    ams_status r = load(s, ss, err);
    if (r == AMS_E_NOTFOUND) {
        memcpy(ss->mirror, s->layout->values, s->total * sizeof(float));
        ss->version = 0;
        r = AMS_OK;
    }
    if (r == AMS_OK) r = ams_weights_hash(ss->mirror, s->total, ss->hash, err);
    if (r != AMS_OK) {
        free(ss->last_update);
        free(ss->mirror);
        free(ss);
        return NULL;
    }
    ss->info.known = 1;
    ss->info.acked_version = ss->version;
    ss->info.miou = ss->info.miou_pretrained = NAN;
    ss->info.miou_mean = ss->info.miou_pretrained_mean = NAN;
    s->sessions[s->n_sessions++] = ss;
    return ss;
}

void ams_session_free(ams_server *s, session *ss) {
    if (!ss) return;
    for (int i = 0; i < ss->n_pending; i++) free((void *)ss->pending[i].h264);
    free(ss->pending);
    if (ss->cstate && s->cfg.compute.state_free) s->cfg.compute.state_free(s->cfg.compute.ctx, ss->cstate);
    free(ss->last_update);
    free(ss->mirror);
    free(ss);
}
