/* test_net_server.c - the server on loopback (127.0.0.1, bounded in clients and time) with the
 * stub compute: 8 honest clients get updates whose weights hash equals the server's copy after
 * every update; a wrong key and an unknown id are refused; truncated, oversized, bit-flipped and
 * replayed frames are rejected (counted per reason) while honest clients keep being served; a
 * client killed with SIGKILL mid-upload does not disturb the server; a restarted server resumes
 * every session from the state directory (same version and hash; a missed update is resent; a
 * client back at the pretrained weights is resynchronised). */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "ams/client.h"
#include "ams/netkey.h"
#include "ams/rng.h"
#include "ams/server.h"
#include "ams/update_codec.h"
#include "check.h"

#define NCLIENTS 8
#define TIMEOUT_MS 10000
#include "net_testlib.h"

/* A compute whose state counts the session's jobs, persisted through state_save/state_load:
 * the count survives a server restart only through those hooks. */
static ams_status count_run(void *ctx, ams_compute_job *job, int *changed, ams_err *err) {
    (void)ctx;
    if (!*job->state && !(*job->state = calloc(1, sizeof(uint64_t))))
        return ams_err_set(err, AMS_E_NOMEM, "state");
    ++*(uint64_t *)*job->state;
    ams_compute stub = ams_compute_stub();
    return stub.run(NULL, job, changed, err);
}
static void count_free(void *ctx, void *state) {
    (void)ctx;
    free(state);
}
static ams_status count_save(void *ctx, const void *state, const char *path, ams_err *err) {
    (void)ctx;
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(state, 8, 1, f) != 1) {
        if (f) fclose(f);
        return ams_err_set(err, AMS_E_IO, "%s", path);
    }
    fclose(f);
    return AMS_OK;
}
static ams_status count_load(void *ctx, void **state, const char *path, ams_err *err) {
    (void)ctx;
    FILE *f = fopen(path, "rb");
    if (!f) return ams_err_set(err, AMS_E_NOTFOUND, "%s", path);
    uint64_t *v = calloc(1, sizeof *v);
    int ok = v && fread(v, 8, 1, f) == 1;
    fclose(f);
    if (!ok) {
        free(v);
        return ams_err_set(err, AMS_E_FORMAT, "%s", path);
    }
    *state = v;
    return AMS_OK;
}

static uint64_t compute_count(const char *id) {
    char path[400];
    snprintf(path, sizeof path, "%s/%s.compute", g_state, id);
    FILE *f = fopen(path, "rb");
    uint64_t v = 0;
    if (f) {
        if (fread(&v, 8, 1, f) != 1) v = 0;
        fclose(f);
    }
    return v;
}

static int server_start(void) {
    return net_server_start((ams_compute){.run = count_run, .state_free = count_free,
                                          .state_save = count_save, .state_load = count_load});
}

static void server_stop(void) { net_server_stop(); }

/* Waits for the next update; apply = 0 drops it (a client that missed it). Checks the
 * update's stated hash against the weights after applying. */
static int edge_wait_update(edge *d, int apply) {
    ams_err e = {0};
    for (;;) {
        ams_proto_frame f;
        CHECKF(ams_client_recv(d->c, TIMEOUT_MS, &f, NULL, &e) == AMS_OK, "%s: %s", d->id, e.msg);
        CHECKF(f.type != 0, "%s: no update within %d ms", d->id, TIMEOUT_MS);
        if (f.type != AMS_MSG_UPDATE) continue;
        if (!apply) {
            ams_msg_update_head h;
            CHECK(ams_msg_update_head_parse(f.payload, f.len, &h, &e) == AMS_OK);
            return 0;
        }
        return edge_apply_update(d, &f, NULL);
    }
}

/* The edge's weights equal the server's copy (hash and version). */
static int edge_matches_server(const edge *d) {
    ams_server_client_info i;
    ams_server_client_info_get(g_srv, d->id, &i);
    uint8_t hh[32];
    ams_err e = {0};
    CHECK(ams_weights_hash(d->w, g_init->total, hh, &e) == AMS_OK);
    CHECK(i.known);
    CHECKF(i.version == d->version, "%s: server v%llu edge v%llu", d->id,
           (unsigned long long)i.version, (unsigned long long)d->version);
    CHECK(!memcmp(hh, i.hash, 32));
    return 0;
}


/* One round: every edge uploads, then every edge gets and applies its update. */
static int round_all(void) {
    for (int i = 0; i < NCLIENTS; i++) CHECK(edge_upload(&g_edges[i], 3000 + 100 * i) == 0);
    for (int i = 0; i < NCLIENTS; i++) {
        CHECK(edge_wait_update(&g_edges[i], 1) == 0);
        CHECK(edge_matches_server(&g_edges[i]) == 0);
    }
    return 0;
}

/* ---- a raw peer: full control over the bytes it sends ---- */
typedef struct raw {
    int fd;
    uint8_t skey[32];
    uint64_t seq;
} raw;

static int raw_open(raw *r, const char *id, const uint8_t key[32]) {
    ams_err e = {0};
    ams_msg_hello h = {0};
    strcpy(h.client_id, id);
    memset(h.nonce, 0x5a, 16);
    CHECK(ams_weights_hash(g_init->values, g_init->total, h.weights_hash, &e) == AMS_OK);
    /* reuse the client for the handshake, then take its socket and derive the key ourselves */
    uint8_t p[1024];
    size_t n;
    CHECK(ams_msg_hello_pack(&h, p, sizeof p, &n, &e) == AMS_OK);
    ams_proto_buf b = {0};
    CHECK(ams_proto_encode(&b, AMS_MSG_HELLO, 1, key, p, n, &e) == AMS_OK);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)ams_server_port(g_srv)),
                            .sin_addr.s_addr = htonl(0x7f000001)};
    CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) == 0);
    CHECK(send(fd, b.data, b.len, MSG_NOSIGNAL) == (ssize_t)b.len);
    ams_proto_buf_free(&b);
    ams_proto_dec d;
    ams_proto_dec_init(&d, AMS_PROTO_ROLE_CLIENT);
    ams_proto_dec_set_key(&d, key);
    uint8_t in[4096];
    size_t have = 0;
    for (;;) {
        ssize_t got = recv(fd, in + have, sizeof in - have, 0);
        CHECK(got > 0);
        have += (size_t)got;
        ams_proto_frame f;
        size_t used;
        CHECK(ams_proto_dec_next(&d, in, have, &f, &used, &e) == AMS_PROTO_OK);
        if (!used) continue;
        CHECK(f.type == AMS_MSG_WELCOME);
        ams_msg_welcome w;
        CHECK(ams_msg_welcome_parse(f.payload, f.len, &w, &e) == AMS_OK);
        CHECK(ams_proto_session_key(key, h.nonce, w.nonce, r->skey, &e) == AMS_OK);
        break;
    }
    r->fd = fd;
    r->seq = 1;
    return 0;
}

/* A valid upload frame (next seq) into b. */
static int raw_upload_frame(raw *r, ams_proto_buf *b, size_t n) {
    uint8_t *p = calloc(1, AMS_MSG_UPLOAD_HEAD_BYTES + n);
    CHECK(p);
    ams_msg_upload_head h = {.frames = 1, .width = 64, .height = 48, .fps = 1};
    ams_msg_upload_head_pack(&h, p);
    ams_err e = {0};
    ams_status s = ams_proto_encode(b, AMS_MSG_UPLOAD, ++r->seq, r->skey, p,
                                    AMS_MSG_UPLOAD_HEAD_BYTES + n, &e);
    free(p);
    CHECK(s == AMS_OK);
    return 0;
}

/* Sends bytes and expects the server to answer with an error frame and close. */
static int expect_closed(int fd, const void *bytes, size_t n) {
    if (n) send(fd, bytes, n, MSG_NOSIGNAL);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    uint8_t buf[4096];
    ssize_t got, total = 0;
    while ((got = recv(fd, buf, sizeof buf, 0)) > 0) total += got;
    CHECKF(got == 0, "connection not closed (errno %d)", errno);
    (void)total;
    close(fd);
    return 0;
}

static uint64_t reason(ams_proto_reject r) {
    ams_server_totals t;
    ams_server_totals_get(g_srv, &t);
    return t.by_reason[r];
}

/* ---- tests ---- */

static int test_clients(void) {
    for (int i = 0; i < NCLIENTS; i++) CHECK(edge_connect(&g_edges[i]) == 0);
    for (int r = 0; r < 3; r++) CHECK(round_all() == 0);
    /* lag was measured for every client */
    for (int i = 0; i < NCLIENTS; i++) {
        ams_server_client_info in;
        ams_server_client_info_get(g_srv, g_edges[i].id, &in);
        CHECK(in.updates == 3 && in.uploads == 3 && in.lag_max > 0 && in.lag_max < 10);
        CHECK(in.acked_version <= 3);
    }
    return 0;
}

static int test_wrong_key(void) {
    ams_msg_hello h = {0};
    strcpy(h.client_id, "cam0");
    ams_err e = {0};
    ams_msg_welcome w;
    ams_client *c = NULL;
    uint8_t bad[32] = {1};
    uint64_t before = reason(AMS_PROTO_BAD_MAC);
    CHECK(ams_client_open(&c, g_addr, &h, bad, TIMEOUT_MS, &w, &e) == AMS_E_IO);
    CHECKF(strstr(e.msg, "bad mac") != NULL, "%s", e.msg);
    CHECK(reason(AMS_PROTO_BAD_MAC) == before + 1);
    strcpy(h.client_id, "nobody");
    CHECK(ams_client_open(&c, g_addr, &h, bad, TIMEOUT_MS, &w, &e) == AMS_E_IO);
    CHECKF(strstr(e.msg, "unknown client") != NULL, "%s", e.msg);
    CHECK(c == NULL);
    return 0;
}

static int test_hostile_frames(void) {
    uint8_t k[32];
    ams_err e = {0};
    CHECK(ams_netkey_load_id(g_keys, "rogue", k, &e) == AMS_OK);
    raw r;
    ams_proto_buf b = {0};
    /* truncated: half a frame, then the peer closes; the server just drops it */
    CHECK(raw_open(&r, "rogue", k) == 0);
    CHECK(raw_upload_frame(&r, &b, 5000) == 0);
    send(r.fd, b.data, b.len / 2, MSG_NOSIGNAL);
    close(r.fd);
    b.len = 0;
    /* oversized: a header announcing 5 MB */
    uint64_t o0 = reason(AMS_PROTO_OVERSIZED);
    CHECK(raw_open(&r, "rogue", k) == 0);
    CHECK(raw_upload_frame(&r, &b, 100) == 0);
    b.data[16] = 0, b.data[17] = 0, b.data[18] = 0x50, b.data[19] = 0;
    CHECK(expect_closed(r.fd, b.data, 20) == 0);
    CHECK(reason(AMS_PROTO_OVERSIZED) == o0 + 1);
    b.len = 0;
    /* bit-flipped payload */
    uint64_t m0 = reason(AMS_PROTO_BAD_MAC);
    CHECK(raw_open(&r, "rogue", k) == 0);
    CHECK(raw_upload_frame(&r, &b, 100) == 0);
    b.data[30] ^= 0x10;
    CHECK(expect_closed(r.fd, b.data, b.len) == 0);
    CHECK(reason(AMS_PROTO_BAD_MAC) == m0 + 1);
    b.len = 0;
    /* replayed: the same valid frame twice */
    uint64_t r0 = reason(AMS_PROTO_REPLAY);
    CHECK(raw_open(&r, "rogue", k) == 0);
    CHECK(raw_upload_frame(&r, &b, 100) == 0);
    CHECK(send(r.fd, b.data, b.len, MSG_NOSIGNAL) == (ssize_t)b.len);
    CHECK(expect_closed(r.fd, b.data, b.len) == 0);
    CHECK(reason(AMS_PROTO_REPLAY) == r0 + 1);
    /* replayed from another connection: the old session key does not verify */
    CHECK(raw_open(&r, "rogue", k) == 0);
    CHECK(expect_closed(r.fd, b.data, b.len) == 0);
    CHECK(reason(AMS_PROTO_BAD_MAC) == m0 + 2);
    b.len = 0;
    /* garbage before any hello */
    uint64_t g0 = reason(AMS_PROTO_BAD_MAGIC);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)ams_server_port(g_srv)),
                            .sin_addr.s_addr = htonl(0x7f000001)};
    CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) == 0);
    CHECK(expect_closed(fd, "GET / HTTP/1.0\r\n\r\n", 18) == 0);
    CHECK(reason(AMS_PROTO_BAD_MAGIC) == g0 + 1);
    ams_proto_buf_free(&b);
    /* the honest clients are still served */
    CHECK(round_all() == 0);
    return 0;
}

static int test_kill_mid_upload(void) {
    uint8_t k[32];
    ams_err e = {0};
    CHECK(ams_netkey_load_id(g_keys, "rogue", k, &e) == AMS_OK);
    raw r;
    CHECK(raw_open(&r, "rogue", k) == 0);
    ams_proto_buf b = {0};
    CHECK(raw_upload_frame(&r, &b, (size_t)1 << 20) == 0);
    int pipefd[2];
    CHECK(pipe(pipefd) == 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) { /* the client process: half an upload, then wait to be killed */
        ssize_t w = send(r.fd, b.data, b.len / 2, MSG_NOSIGNAL);
        char c = w > 0 ? 'y' : 'n';
        if (write(pipefd[1], &c, 1) != 1) _exit(1);
        for (;;) pause();
    }
    close(r.fd); /* only the child holds the connection now */
    char c = 0;
    CHECK(read(pipefd[0], &c, 1) == 1 && c == 'y');
    CHECK(kill(pid, SIGKILL) == 0);
    int st;
    CHECK(waitpid(pid, &st, 0) == pid && WIFSIGNALED(st));
    close(pipefd[0]);
    close(pipefd[1]);
    ams_proto_buf_free(&b);
    CHECK(round_all() == 0);
    return 0;
}

static int test_restart(void) {
    /* edge 0 misses its next update: the server made (and persisted) it, the edge dropped it */
    CHECK(edge_upload(&g_edges[0], 777) == 0);
    CHECK(edge_wait_update(&g_edges[0], 0) == 0);
    for (int i = 0; i < NCLIENTS; i++) {
        ams_client_free(g_edges[i].c);
        g_edges[i].c = NULL;
    }
    ams_server_client_info before[NCLIENTS];
    for (int i = 0; i < NCLIENTS; i++) ams_server_client_info_get(g_srv, g_edges[i].id, &before[i]);
    uint64_t jobs_before = compute_count(g_edges[1].id);
    CHECK(jobs_before >= 5);
    server_stop();
    CHECK(server_start() == 0);
    /* edge 7 restarts from the pretrained weights */
    memcpy(g_edges[7].w, g_init->values, g_init->total * sizeof(float));
    g_edges[7].version = 0;
    for (int i = 0; i < NCLIENTS; i++) CHECK(edge_connect(&g_edges[i]) == 0);
    for (int i = 0; i < NCLIENTS; i++) {
        ams_server_client_info in;
        ams_server_client_info_get(g_srv, g_edges[i].id, &in);
        CHECK(in.version == before[i].version && !memcmp(in.hash, before[i].hash, 32));
    }
    CHECK(edge_wait_update(&g_edges[0], 1) == 0); /* the missed update, sent again */
    CHECK(edge_matches_server(&g_edges[0]) == 0);
    CHECK(edge_wait_update(&g_edges[7], 1) == 0); /* resync from the pretrained weights */
    CHECK(edge_matches_server(&g_edges[7]) == 0);
    for (int i = 1; i < 7; i++) CHECK(edge_matches_server(&g_edges[i]) == 0);
    CHECK(round_all() == 0);
    /* the compute state was restored, not started over */
    CHECKF(compute_count(g_edges[1].id) == jobs_before + 1, "jobs %llu then %llu",
           (unsigned long long)jobs_before, (unsigned long long)compute_count(g_edges[1].id));
    return 0;
}

static int setup(void) {
    CHECK(net_fixture_setup("net", 7) == 0);
    ams_err e = {0};
    CHECK(ams_netkey_generate(g_keys, "rogue", 0, &e) == AMS_OK);
    return server_start();
}

static void teardown(void) {
    if (g_srv) server_stop();
    net_fixture_teardown();
}

int main(int argc, char **argv) {
    (void)argc, (void)argv;
    signal(SIGPIPE, SIG_IGN);
    if (setup() != 0) return 1;
    /* the cases share one server and its clients, in this order */
    static const check_case cases[] = {
        {"clients", test_clients},           {"wrong_key", test_wrong_key},
        {"hostile_frames", test_hostile_frames}, {"kill_mid_upload", test_kill_mid_upload},
        {"restart", test_restart},
    };
    int r = check_run(cases, sizeof cases / sizeof cases[0], 1, argv);
    teardown();
    return r;
}
