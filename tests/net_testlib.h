/* net_testlib.h - what the loopback server tests share: the fixture (a temporary keys and
 * state directory, a small random student layout, NCLIENTS honest edges with their keys and
 * weights), the server thread, and an edge's hello and upload. The including test defines
 * NCLIENTS and TIMEOUT_MS first, and its own update handling (what it checks differs).
 * Header-only (static functions) so that each test stays one binary. */
#ifndef AMS_TEST_NET_TESTLIB_H
#define AMS_TEST_NET_TESTLIB_H

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ams/client.h"
#include "ams/netkey.h"
#include "ams/rng.h"
#include "ams/server.h"
#include "ams/update_codec.h"
#include "check.h"

static char g_dir[256], g_keys[300], g_state[300];
static ams_params *g_init;
static ams_server *g_srv;
static pthread_t g_thread;
static char g_addr[64];

/* An honest edge: holds weights, applies verified updates. */
typedef struct edge {
    char id[16];
    uint8_t key[32];
    ams_client *c;
    float *w;
    uint64_t version;
    int uploads, updates, stats, reconnects;
    int failed;
} edge;
static edge g_edges[NCLIENTS];

static inline void *serve(void *arg) {
    ams_err e = {0};
    ams_server_run(arg, &e);
    return NULL;
}

/* mkdtemp under /tmp (name: ams_test_<tag>_XXXXXX) with keys/ and state/, the layout with
 * values N(0, 1) from seed, and the edges cam0..cam<NCLIENTS-1> with keys and weights. */
static inline int net_fixture_setup(const char *tag, uint64_t seed) {
    snprintf(g_dir, sizeof g_dir, "/tmp/ams_test_%s_XXXXXX", tag);
    CHECK(mkdtemp(g_dir));
    snprintf(g_keys, sizeof g_keys, "%s/keys", g_dir);
    snprintf(g_state, sizeof g_state, "%s/state", g_dir);
    CHECK(mkdir(g_keys, 0700) == 0 && mkdir(g_state, 0700) == 0);
    ams_err e = {0};
    g_init = ams_params_new();
    CHECK(ams_params_add(g_init, "a/weights", 2, (int64_t[]){40, 50}, 1, &e) >= 0);
    CHECK(ams_params_add(g_init, "a/bias", 1, (int64_t[]){50}, 1, &e) >= 0);
    CHECK(ams_params_add(g_init, "b/weights", 4, (int64_t[]){3, 3, 8, 16}, 1, &e) >= 0);
    CHECK(ams_params_alloc(g_init, &e) == AMS_OK);
    ams_rng rng;
    ams_rng_seed(&rng, seed);
    for (size_t i = 0; i < g_init->total; i++) g_init->values[i] = ams_rng_normal(&rng);
    for (int i = 0; i < NCLIENTS; i++) {
        edge *d = &g_edges[i];
        snprintf(d->id, sizeof d->id, "cam%d", i);
        CHECK(ams_netkey_generate(g_keys, d->id, 0, &e) == AMS_OK);
        CHECK(ams_netkey_load_id(g_keys, d->id, d->key, &e) == AMS_OK);
        d->w = malloc(g_init->total * sizeof(float));
        CHECK(d->w);
        memcpy(d->w, g_init->values, g_init->total * sizeof(float));
    }
    return 0;
}

/* Frees the edges and the layout and removes the directory (the server is stopped first). */
static inline void net_fixture_teardown(void) {
    for (int i = 0; i < NCLIENTS; i++) {
        ams_client_free(g_edges[i].c);
        free(g_edges[i].w);
    }
    ams_params_free(g_init);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_dir);
}

/* Starts the server on 127.0.0.1 (any port; g_addr says which) with 2 workers and compute,
 * on its own thread. */
static inline int net_server_start(ams_compute compute) {
    ams_server_config c;
    ams_server_config_default(&c);
    c.listen = "127.0.0.1:0";
    c.keys_dir = g_keys;
    c.state_dir = g_state;
    c.initial = g_init;
    c.workers = 2;
    c.compute = compute;
    ams_err e = {0};
    g_srv = ams_server_new(&c, &e);
    CHECKF(g_srv, "%s", e.msg);
    snprintf(g_addr, sizeof g_addr, "127.0.0.1:%d", ams_server_port(g_srv));
    CHECK(pthread_create(&g_thread, NULL, serve, g_srv) == 0);
    return 0;
}

static inline void net_server_stop(void) {
    ams_server_stop(g_srv);
    pthread_join(g_thread, NULL);
    ams_server_free(g_srv);
    g_srv = NULL;
}

static inline int edge_connect(edge *d) {
    ams_msg_hello h = {.last_version = d->version};
    strcpy(h.client_id, d->id);
    strcpy(h.model_id, "test");
    ams_err e = {0};
    CHECK(ams_weights_hash(d->w, g_init->total, h.weights_hash, &e) == AMS_OK);
    ams_msg_welcome wel;
    CHECKF(ams_client_open(&d->c, g_addr, &h, d->key, TIMEOUT_MS, &wel, &e) == AMS_OK, "%s: %s",
           d->id, e.msg);
    CHECK(wel.total == g_init->total);
    return 0;
}

/* One upload of n payload bytes (a pattern of the edge and its upload count). */
static inline int edge_upload(edge *d, size_t n) {
    uint8_t *p = malloc(AMS_MSG_UPLOAD_HEAD_BYTES + n);
    CHECK(p);
    ams_msg_upload_head h = {.frames = 1, .width = 64, .height = 48, .fps = 1,
                             .t_first = d->uploads, .t_last = d->uploads};
    ams_msg_upload_head_pack(&h, p);
    for (size_t i = 0; i < n; i++)
        p[AMS_MSG_UPLOAD_HEAD_BYTES + i] =
            (uint8_t)(i * 31 + (size_t)d->uploads + (size_t)d->id[3]);
    d->uploads++;
    ams_err e = {0};
    ams_status s = ams_client_send(d->c, AMS_MSG_UPLOAD, p, AMS_MSG_UPLOAD_HEAD_BYTES + n, &e);
    free(p);
    CHECKF(s == AMS_OK, "%s: %s", d->id, e.msg);
    return 0;
}

/* Applies the update frame f to d's weights: decodes it, checks the weights' hash after
 * applying against the update's stated one and that its version is newer, then acknowledges
 * it. *head (may be NULL) receives the update's header. */
static inline int edge_apply_update(edge *d, const ams_proto_frame *f, ams_msg_update_head *head) {
    ams_err e = {0};
    ams_msg_update_head h;
    CHECK(ams_msg_update_head_parse(f->payload, f->len, &h, &e) == AMS_OK);
    ams_update *u = NULL;
    CHECK(ams_update_decode(f->payload + AMS_MSG_UPDATE_HEAD_BYTES,
                            f->len - AMS_MSG_UPDATE_HEAD_BYTES, g_init->total, &u, &e) == AMS_OK);
    ams_status s = ams_update_apply(u, d->w, g_init->total, &e);
    ams_update_free(u);
    CHECKF(s == AMS_OK, "%s: %s", d->id, e.msg);
    uint8_t hh[32];
    CHECK(ams_weights_hash(d->w, g_init->total, hh, &e) == AMS_OK);
    CHECK(!memcmp(hh, h.result_hash, 32));
    CHECKF(h.version > d->version, "%s: update v%llu after v%llu", d->id,
           (unsigned long long)h.version, (unsigned long long)d->version);
    d->version = h.version;
    d->updates++;
    uint8_t ack[AMS_MSG_ACK_BYTES];
    ams_msg_ack_pack(&(ams_msg_ack){.type = AMS_MSG_UPDATE, .seq = f->seq, .version = h.version},
                     ack);
    CHECK(ams_client_send(d->c, AMS_MSG_ACK, ack, sizeof ack, &e) == AMS_OK);
    if (head) *head = h;
    return 0;
}

#endif
