/* test_net_edge.c - the edge client library (edge.h) against a real server on loopback with the
 * stub compute: several edges stream synthetic video, upload H.264 chunks, apply the updates
 * between frames, and end with the server's exact weights (hash and version); a server restart
 * mid-stream on the same port is survived by reconnecting; with no server at all, frames are
 * never held up and samples are dropped under backpressure. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libavutil/log.h>

#include "ams/edge.h"
#include "ams/netkey.h"
#include "ams/rng.h"
#include "ams/server.h"
#include "check.h"

#define NEDGES 3
#define W 64
#define H 48

static char g_dir[256], g_keys[300], g_state[300], g_listen[64], g_addr[64];
static ams_params *g_init;
static ams_server *g_srv;
static pthread_t g_thread;

static void *serve(void *arg) {
    ams_err e = {0};
    ams_server_run(arg, &e);
    return NULL;
}

static int server_start(const char *listen) {
    ams_server_config c;
    ams_server_config_default(&c);
    c.listen = listen;
    c.keys_dir = g_keys;
    c.state_dir = g_state;
    c.initial = g_init;
    ams_err e = {0};
    g_srv = ams_server_new(&c, &e);
    CHECKF(g_srv, "%s", e.msg);
    snprintf(g_addr, sizeof g_addr, "127.0.0.1:%d", ams_server_port(g_srv));
    snprintf(g_listen, sizeof g_listen, "%s", g_addr);
    CHECK(pthread_create(&g_thread, NULL, serve, g_srv) == 0);
    return 0;
}

static void server_stop(void) {
    ams_server_stop(g_srv);
    pthread_join(g_thread, NULL);
    ams_server_free(g_srv);
    g_srv = NULL;
}

static void frame(uint8_t *rgb, int k, int who) {
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            uint8_t *p = rgb + ((size_t)y * W + x) * 3;
            p[0] = (uint8_t)(x * 4 + k);
            p[1] = (uint8_t)(y * 5 + who * 40);
            p[2] = (uint8_t)((x + y + k) * 2);
        }
}

typedef struct client {
    char id[16];
    float *w;
    ams_edge *e;
} client;

static int make_edge(client *c, const char *addr, int queue_max) {
    ams_edge_config cfg;
    ams_edge_config_default(&cfg);
    cfg.server = addr;
    cfg.id = c->id;
    ams_err e = {0};
    CHECK(ams_netkey_load_id(g_keys, c->id, cfg.key, &e) == AMS_OK);
    cfg.total = g_init->total;
    cfg.initial = g_init->values;
    cfg.width = W;
    cfg.height = H;
    cfg.period = 1.0;
    cfg.kbps = 100;
    cfg.queue_max = queue_max;
    cfg.timeout_ms = 2000;
    c->e = ams_edge_new(&cfg, c->w, &e);
    CHECKF(c->e, "%s", e.msg);
    return 0;
}

static int matches_server(client *c) {
    ams_edge_stats s;
    ams_edge_stats_get(c->e, &s);
    ams_server_client_info i;
    ams_server_client_info_get(g_srv, c->id, &i);
    uint8_t h[32];
    ams_err e = {0};
    CHECK(ams_weights_hash(c->w, g_init->total, h, &e) == AMS_OK);
    CHECK(!memcmp(h, s.model_hash, 32)); /* the edge reports what it runs */
    CHECKF(i.version == s.model_version, "%s: server v%llu edge v%llu (%s)", c->id,
           (unsigned long long)i.version, (unsigned long long)s.model_version, s.last_error);
    CHECK(!memcmp(h, i.hash, 32));
    return 0;
}

static client g_cl[NEDGES];

static int stream(int frames, int k0, int restart_at) {
    uint8_t rgb[W * H * 3];
    ams_err e = {0};
    for (int k = k0; k < k0 + frames; k++) {
        if (k == restart_at) {
            char listen[64];
            snprintf(listen, sizeof listen, "%s", g_listen);
            server_stop();
            CHECK(server_start(listen) == 0);
        }
        for (int i = 0; i < NEDGES; i++) {
            CHECK(ams_edge_sync(g_cl[i].e, &e) == AMS_OK);
            frame(rgb, k, i);
            CHECK(ams_edge_offer(g_cl[i].e, rgb, k / 10.0, &e) == AMS_OK);
        }
        usleep(2000);
    }
    for (int i = 0; i < NEDGES; i++) CHECK(ams_edge_finish(g_cl[i].e, 20.0, 0.5, &e) == AMS_OK);
    return 0;
}

static int test_stream(void) {
    for (int i = 0; i < NEDGES; i++) CHECK(make_edge(&g_cl[i], g_addr, 4) == 0);
    CHECK(stream(60, 0, -1) == 0); /* 6 s of video at 10 fps, uploads every second */
    for (int i = 0; i < NEDGES; i++) {
        ams_edge_stats s;
        ams_edge_stats_get(g_cl[i].e, &s);
        CHECKF(s.updates_applied >= 2 && s.updates_rejected == 0, "%s: %llu applied, %llu "
               "rejected (%s)", g_cl[i].id, (unsigned long long)s.updates_applied,
               (unsigned long long)s.updates_rejected, s.last_error);
        CHECK(s.uploads_sent >= 5 && s.uploads_acked == s.uploads_sent && s.samples >= 6);
        CHECK(s.bytes_up > 0 && s.bytes_down > 0);
        CHECK(matches_server(&g_cl[i]) == 0);
    }
    return 0;
}

/* The weights of edge 0 change behind the protocol's back: the next update's base hash does not
 * match, so it is rejected and the weights stay as they are; the server then does not know the
 * edge's weights (error 100), the edge returns to the pretrained weights and is resynchronised. */
static int test_tampered(void) {
    ams_edge_stats before;
    ams_edge_stats_get(g_cl[0].e, &before);
    g_cl[0].w[5] += 1.0f;
    CHECK(stream(30, 60, -1) == 0);
    ams_edge_stats s;
    ams_edge_stats_get(g_cl[0].e, &s);
    CHECKF(s.updates_rejected >= 1, "rejected %llu", (unsigned long long)s.updates_rejected);
    CHECK(s.connects > before.connects);
    CHECK(matches_server(&g_cl[0]) == 0);
    for (int i = 1; i < NEDGES; i++) {
        ams_edge_stats_get(g_cl[i].e, &s);
        CHECK(s.updates_rejected == 0);
        CHECK(matches_server(&g_cl[i]) == 0);
    }
    return 0;
}

static int test_restart(void) {
    CHECK(stream(60, 90, 120) == 0); /* the server restarts half way */
    for (int i = 0; i < NEDGES; i++) {
        ams_edge_stats s;
        ams_edge_stats_get(g_cl[i].e, &s);
        CHECK(s.connects >= 2);
        CHECK(matches_server(&g_cl[i]) == 0);
        ams_edge_free(g_cl[i].e);
        g_cl[i].e = NULL;
    }
    return 0;
}

static int test_backpressure(void) {
    /* a port nobody listens on: uploads pile up, the queue holds 1, the rest is dropped */
    client c = {.w = malloc(g_init->total * sizeof(float))};
    CHECK(c.w);
    memcpy(c.w, g_init->values, g_init->total * sizeof(float));
    strcpy(c.id, "cam0");
    CHECK(make_edge(&c, "127.0.0.1:1", 1) == 0);
    uint8_t rgb[W * H * 3];
    ams_err e = {0};
    double t0 = clock() / (double)CLOCKS_PER_SEC;
    for (int k = 0; k < 100; k++) {
        CHECK(ams_edge_sync(c.e, &e) == AMS_OK);
        frame(rgb, k, 0);
        CHECK(ams_edge_offer(c.e, rgb, k / 10.0, &e) == AMS_OK);
    }
    double t1 = clock() / (double)CLOCKS_PER_SEC;
    CHECK(t1 - t0 < 2.0); /* offering never waited for the network */
    CHECK(ams_edge_finish(c.e, 0.2, 0.1, &e) == AMS_OK);
    ams_edge_stats s;
    ams_edge_stats_get(c.e, &s);
    CHECKF(s.samples == 10 && s.samples_dropped >= 7, "samples %llu dropped %llu",
           (unsigned long long)s.samples, (unsigned long long)s.samples_dropped);
    CHECK(s.connects == 0 && s.updates_applied == 0);
    CHECK(!memcmp(c.w, g_init->values, g_init->total * sizeof(float)));
    ams_edge_free(c.e);
    free(c.w);
    return 0;
}

/* The first upload covers first_period seconds of video (default half the period), the
 * later ones a period. With no server, the queue (1) keeps the first chunk and every later
 * one is dropped: the dropped samples say how many the first chunk held. */
static int first_chunk_frames(double first_period, int *frames) {
    client c = {.w = malloc(g_init->total * sizeof(float))};
    CHECK(c.w);
    memcpy(c.w, g_init->values, g_init->total * sizeof(float));
    strcpy(c.id, "cam0");
    ams_edge_config cfg;
    ams_edge_config_default(&cfg);
    cfg.server = "127.0.0.1:1";
    cfg.id = c.id;
    ams_err e = {0};
    CHECK(ams_netkey_load_id(g_keys, c.id, cfg.key, &e) == AMS_OK);
    cfg.total = g_init->total;
    cfg.initial = g_init->values;
    cfg.width = W;
    cfg.height = H;
    cfg.period = 4.0;
    cfg.first_period = first_period;
    cfg.queue_max = 1;
    cfg.timeout_ms = 200;
    c.e = ams_edge_new(&cfg, c.w, &e);
    CHECKF(c.e, "%s", e.msg);
    uint8_t rgb[W * H * 3];
    for (int k = 0; k < 100; k++) { /* 10 s at 10 fps: samples at 0, 1, ..., 9 s */
        frame(rgb, k, 0);
        CHECK(ams_edge_offer(c.e, rgb, k / 10.0, &e) == AMS_OK);
    }
    CHECK(ams_edge_finish(c.e, 0.2, 0.1, &e) == AMS_OK);
    ams_edge_stats s;
    ams_edge_stats_get(c.e, &s);
    CHECKF(s.samples == 10, "samples %llu", (unsigned long long)s.samples);
    *frames = 10 - (int)s.samples_dropped;
    ams_edge_free(c.e);
    free(c.w);
    return 0;
}

static int test_first_period(void) {
    int n = 0;
    CHECK(first_chunk_frames(-1, &n) == 0);
    CHECKF(n == 2, "default (period / 2): first chunk of %d samples, want 2", n);
    CHECK(first_chunk_frames(3, &n) == 0);
    CHECKF(n == 3, "first period 3 s: first chunk of %d samples, want 3", n);
    CHECK(first_chunk_frames(4, &n) == 0);
    CHECKF(n == 4, "first period = period: first chunk of %d samples, want 4", n);
    return 0;
}

static int setup(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/ams_test_edge_XXXXXX");
    CHECK(mkdtemp(g_dir));
    snprintf(g_keys, sizeof g_keys, "%s/keys", g_dir);
    snprintf(g_state, sizeof g_state, "%s/state", g_dir);
    CHECK(mkdir(g_keys, 0700) == 0 && mkdir(g_state, 0700) == 0);
    ams_err e = {0};
    g_init = ams_params_new();
    CHECK(ams_params_add(g_init, "w", 2, (int64_t[]){60, 70}, 1, &e) >= 0);
    CHECK(ams_params_add(g_init, "b", 1, (int64_t[]){70}, 1, &e) >= 0);
    CHECK(ams_params_alloc(g_init, &e) == AMS_OK);
    ams_rng rng;
    ams_rng_seed(&rng, 3);
    for (size_t i = 0; i < g_init->total; i++) g_init->values[i] = ams_rng_normal(&rng);
    CHECK(ams_netkey_generate(g_keys, "cam0", 0, &e) == AMS_OK);
    for (int i = 0; i < NEDGES; i++) {
        snprintf(g_cl[i].id, sizeof g_cl[i].id, "edge%d", i);
        CHECK(ams_netkey_generate(g_keys, g_cl[i].id, 0, &e) == AMS_OK);
        g_cl[i].w = malloc(g_init->total * sizeof(float));
        CHECK(g_cl[i].w);
        memcpy(g_cl[i].w, g_init->values, g_init->total * sizeof(float));
    }
    return server_start("127.0.0.1:0");
}

static void teardown(void) {
    for (int i = 0; i < NEDGES; i++) {
        ams_edge_free(g_cl[i].e);
        free(g_cl[i].w);
    }
    if (g_srv) server_stop();
    ams_params_free(g_init);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_dir);
}

int main(int argc, char **argv) {
    (void)argc;
    signal(SIGPIPE, SIG_IGN);
    av_log_set_level(AV_LOG_QUIET); /* x264 chatter */
    if (setup() != 0) return 1;
    static const check_case cases[] = {
        {"stream", test_stream},
        {"tampered", test_tampered},
        {"restart", test_restart},
        {"backpressure", test_backpressure},
        {"first_period", test_first_period},
    };
    int r = check_run(cases, sizeof cases / sizeof cases[0], 1, argv);
    teardown();
    return r;
}
