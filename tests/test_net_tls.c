/* test_net_tls.c - AMSP over TLS 1.3 on loopback (127.0.0.1, bounded in time) with the stub
 * compute: a self-signed certificate from ams_tls_cert_generate (key file 0600, no overwrite);
 * two TLS edges get verified updates, large uploads included, also when a server read ends
 * inside a TLS record; what a client sends is ciphertext (seen through a relay); a client whose
 * record stops halfway makes the server wait, not spin; a plain client is refused with
 * error 103 while a TLS edge keeps working; a client trusting another certificate, or checking
 * another name, is refused with "not trusted"; a TLS client against a plain server fails
 * cleanly; clients that stall before or in the TLS handshake hold nobody up and are closed
 * after the handshake deadline. SIGPIPE is not ignored here: the transport must never raise it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ams/client.h"
#include "ams/tls.h"
#include "check.h"

#define NCLIENTS 2
#define TIMEOUT_MS 5000
#include "net_testlib.h"

#define HANDSHAKE_S 1.5

static char g_cert[512], g_key[512], g_other[512];
static ams_tls *g_ctls;    /* trusts the server's certificate; name = the dialled IP */
static uint16_t g_port;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* The server on 127.0.0.1 with TLS (or plain when cert is NULL) into *srv / *th / addr. */
static int start(ams_server **srv, pthread_t *th, char *addr, size_t cap, const char *cert,
                 const char *key) {
    ams_server_config c;
    ams_server_config_default(&c);
    c.listen = "127.0.0.1:0";
    c.keys_dir = g_keys;
    c.state_dir = g_state;
    c.initial = g_init;
    c.workers = 2;
    c.compute = ams_compute_stub();
    c.handshake_s = HANDSHAKE_S;
    c.tls_cert = cert;
    c.tls_key = key;
    ams_err e = {0};
    *srv = ams_server_new(&c, &e);
    CHECKF(*srv, "%s", e.msg);
    snprintf(addr, cap, "127.0.0.1:%d", ams_server_port(*srv));
    CHECK(pthread_create(th, NULL, serve, *srv) == 0);
    return 0;
}

static void stop(ams_server *srv, pthread_t th) {
    ams_server_stop(srv);
    pthread_join(th, NULL);
    ams_server_free(srv);
}

static int hello_of(const edge *d, ams_msg_hello *h) {
    memset(h, 0, sizeof *h);
    h->last_version = d->version;
    strcpy(h->client_id, d->id);
    strcpy(h->model_id, "test");
    ams_err e = {0};
    CHECK(ams_weights_hash(d->w, g_init->total, h->weights_hash, &e) == AMS_OK);
    return 0;
}

static int edge_connect_tls(edge *d) {
    ams_msg_hello h;
    CHECK(hello_of(d, &h) == 0);
    ams_msg_welcome w;
    ams_err e = {0};
    ams_client_free(d->c);
    d->c = NULL;
    CHECKF(ams_client_open_tls(&d->c, g_addr, g_ctls, &h, d->key, TIMEOUT_MS, &w, &e) == AMS_OK,
           "%s: %s", d->id, e.msg);
    CHECK(w.total == g_init->total);
    return 0;
}

/* Waits for the next update, applies it, checks its hash, acknowledges it. */
static int edge_wait_update(edge *d) {
    ams_err e = {0};
    for (;;) {
        ams_proto_frame f;
        CHECKF(ams_client_recv(d->c, TIMEOUT_MS, &f, NULL, &e) == AMS_OK, "%s: %s", d->id, e.msg);
        CHECKF(f.type != 0, "%s: no update within %d ms", d->id, TIMEOUT_MS);
        if (f.type != AMS_MSG_UPDATE) continue;
        return edge_apply_update(d, &f, NULL);
    }
}

/* The edge's weights equal the server's copy. */
static int edge_matches_server(const edge *d) {
    ams_server_client_info i;
    ams_server_client_info_get(g_srv, d->id, &i);
    uint8_t hh[32];
    ams_err e = {0};
    CHECK(ams_weights_hash(d->w, g_init->total, hh, &e) == AMS_OK);
    CHECKF(i.known && i.version == d->version && !memcmp(i.hash, hh, 32), "%s: v%llu vs v%llu",
           d->id, (unsigned long long)d->version, (unsigned long long)i.version);
    return 0;
}

/* One upload of n bytes and its update, for edge d. */
static int round_one(edge *d, size_t n) {
    CHECK(edge_upload(d, n) == 0);
    CHECK(edge_wait_update(d) == 0);
    CHECK(edge_matches_server(d) == 0);
    return 0;
}

/* A raw TCP connection to the server (no TLS, nothing sent). */
static int raw_connect(void) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(g_port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* 1 when the server closed fd within ms (EOF or reset), 0 otherwise. */
static int closed_within(int fd, int ms) {
    double end = now_s() + ms / 1000.0;
    for (;;) {
        int left = (int)((end - now_s()) * 1000);
        if (left <= 0) return 0;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, left) <= 0) continue;
        char b[4096];
        ssize_t r = recv(fd, b, sizeof b, 0);
        if (r == 0 || (r < 0 && errno == ECONNRESET)) return 1;
    }
}

static uint64_t tls_failures(void) {
    ams_server_totals t;
    ams_server_totals_get(g_srv, &t);
    return t.tls_failures;
}

/* A one-connection TCP relay in front of the server that records what the client sends. */
typedef struct relay {
    int lfd, port;
    uint8_t *seen;
    size_t nseen, cap;
    size_t cut;      /* > 0: forward only this many client bytes, then hold the rest */
    size_t fwd;      /* client bytes forwarded */
    pthread_t th;
} relay;

static void *relay_main(void *arg) {
    relay *r = arg;
    int a = accept(r->lfd, NULL, NULL);
    int b = raw_connect();
    if (a < 0 || b < 0) goto done;
    for (;;) {
        struct pollfd p[2] = {{.fd = a, .events = POLLIN}, {.fd = b, .events = POLLIN}};
        if (poll(p, 2, 10000) <= 0) break;
        uint8_t buf[65536];
        int from = (p[0].revents & (POLLIN | POLLHUP | POLLERR)) ? 0 : 1;
        ssize_t n = recv(p[from].fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        if (from == 0 && r->nseen + (size_t)n <= r->cap) {
            memcpy(r->seen + r->nseen, buf, (size_t)n);
            r->nseen += (size_t)n;
        }
        size_t k = (size_t)n;
        if (from == 0 && r->cut) k = r->fwd >= r->cut ? 0 : k < r->cut - r->fwd ? k : r->cut - r->fwd;
        if (from == 0) r->fwd += k;
        if (k && send(p[1 - from].fd, buf, k, MSG_NOSIGNAL) != (ssize_t)k) break;
    }
done:
    if (a >= 0) close(a);
    if (b >= 0) close(b);
    return NULL;
}

static int relay_start(relay *r) {
    memset(r, 0, sizeof *r);
    r->cap = (size_t)1 << 20;
    r->seen = malloc(r->cap);
    CHECK(r->seen);
    r->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    socklen_t al = sizeof a;
    CHECK(r->lfd >= 0 && bind(r->lfd, (struct sockaddr *)&a, sizeof a) == 0 &&
          listen(r->lfd, 1) == 0 && getsockname(r->lfd, (struct sockaddr *)&a, &al) == 0);
    r->port = ntohs(a.sin_port);
    CHECK(pthread_create(&r->th, NULL, relay_main, r) == 0);
    return 0;
}

/* Waits for the relayed connection to end (r->seen stays: the caller frees it). */
static void relay_stop(relay *r) {
    pthread_join(r->th, NULL);
    close(r->lfd);
}

/* ---- tests ---- */

static int test_cert(void) {
    struct stat st;
    CHECK(stat(g_key, &st) == 0 && (st.st_mode & 0777) == 0600);
    CHECK(stat(g_cert, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 100);
    /* no silent overwrite; a bad name is refused */
    ams_err e = {0};
    char dir[400];
    snprintf(dir, sizeof dir, "%s/tls", g_dir);
    CHECK(ams_tls_cert_generate(dir, NULL, 0, &e) == AMS_E_IO && strstr(e.msg, "exists"));
    CHECK(ams_tls_cert_generate(dir, "bad,name", 1, &e) == AMS_E_INVAL);
    /* a key that does not match the certificate, a missing file, a non-PEM file */
    CHECK(!ams_tls_server_new(g_other, g_key, &e) && strstr(e.msg, "does not match"));
    CHECK(!ams_tls_server_new("/nonexistent/cert.pem", g_key, &e));
    CHECK(!ams_tls_client_new(g_keys, NULL, &e)); /* a folder, not a PEM file */
    return 0;
}

static int test_two_edges(void) {
    for (int i = 0; i < NCLIENTS; i++) CHECK(edge_connect_tls(&g_edges[i]) == 0);
    for (int r = 0; r < 3; r++)
        for (int i = 0; i < NCLIENTS; i++) CHECK(round_one(&g_edges[i], 2000 + 500 * (size_t)r) == 0);
    /* a large upload: many TLS records, more than one read chunk per readiness event */
    CHECK(round_one(&g_edges[0], (size_t)3 << 20) == 0);
    CHECK(round_one(&g_edges[1], (size_t)1 << 20) == 0);
    for (int i = 0; i < NCLIENTS; i++) CHECK(g_edges[i].updates >= 4);
    return 0;
}

/* A small record (a stats request) right before an upload whose end lies 10 bytes past a
 * multiple of the server's 256 KB read chunk: when both arrive for one readiness event, the
 * server's last read of the upload ends inside a TLS record and 10 bytes stay inside TLS with
 * nothing more on the socket. The server must still read them (or no update would come). */
static int test_record_straddle(void) {
    edge *d = &g_edges[0];
    const size_t stats_frame = AMS_PROTO_HEADER_BYTES + 2 + AMS_PROTO_MAC_BYTES;
    const size_t upload_over = AMS_PROTO_HEADER_BYTES + AMS_MSG_UPLOAD_HEAD_BYTES +
                               AMS_PROTO_MAC_BYTES;
    ams_err e = {0};
    for (int k = 0; k < 6; k++) {
        size_t m = 1 + (size_t)k % 3;
        size_t n = m * ((size_t)256 << 10) + 10 - stats_frame - upload_over;
        CHECK(ams_client_send(d->c, AMS_MSG_STATS, "{}", 2, &e) == AMS_OK);
        CHECK(round_one(d, n) == 0);
    }
    return 0;
}

/* edge_connect_tls through the relay listening on port (g_addr is put back afterwards). */
static int edge_connect_tls_via(edge *d, int port) {
    char saved[64];
    snprintf(saved, sizeof saved, "%s", g_addr);
    snprintf(g_addr, sizeof g_addr, "127.0.0.1:%d", port);
    int rc = edge_connect_tls(d);
    snprintf(g_addr, sizeof g_addr, "%s", saved);
    return rc;
}

/* What the client sends is ciphertext: a TLS record first, and neither the AMSP magic nor the
 * upload's bytes anywhere in it. */
static int test_encrypted(void) {
    edge *d = &g_edges[1];
    relay r;
    CHECK(relay_start(&r) == 0);
    int ok = edge_connect_tls_via(d, r.port) == 0 && round_one(d, 50000) == 0;
    ams_client_free(d->c);
    d->c = NULL;
    relay_stop(&r);
    int tls_first = r.nseen > 50000 && r.seen[0] == 22; /* a TLS handshake record first */
    /* the upload's pattern (edge_upload): 64 consecutive payload bytes, as they were sent */
    uint8_t pat[64];
    for (size_t i = 0; i < sizeof pat; i++)
        pat[i] = (uint8_t)((i + 1000) * 31 + (size_t)(d->uploads - 1) + (size_t)d->id[3]);
    int magic = memmem(r.seen, r.nseen, AMS_PROTO_MAGIC, 4) != NULL;
    int plain = memmem(r.seen, r.nseen, pat, sizeof pat) != NULL;
    free(r.seen);
    CHECK(ok && tls_first && !magic && !plain);
    CHECK(edge_connect_tls(d) == 0);
    return 0;
}

static double cpu_s(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (double)u.ru_utime.tv_sec + u.ru_utime.tv_usec * 1e-6 + (double)u.ru_stime.tv_sec +
           u.ru_stime.tv_usec * 1e-6;
}

/* An established TLS client whose upload stops in the middle of a TLS record: the server
 * waits for the rest on the socket (no busy polling: the process stays nearly idle), serves
 * the other edge meanwhile, and drops the client when it goes away. */
static int test_stalled_record(void) {
    edge *d = &g_edges[1];
    relay r;
    CHECK(relay_start(&r) == 0);
    int ok = edge_connect_tls_via(d, r.port) == 0;
    r.cut = r.fwd + 30000; /* about two records into the next upload */
    ok = ok && edge_upload(d, 100000) == 0;
    double c0 = cpu_s(), t0 = now_s();
    ok = ok && round_one(&g_edges[0], 700) == 0; /* the other edge is served */
    struct timespec ts = {.tv_sec = 1};
    nanosleep(&ts, NULL);
    double cpu = cpu_s() - c0, wall = now_s() - t0;
    fprintf(stderr, "  (server beside a half-sent record: %.3f s CPU in %.3f s)\n", cpu, wall);
    ams_client_free(d->c); /* the relay then ends both sides */
    d->c = NULL;
    relay_stop(&r);
    free(r.seen);
    CHECK(ok);
    CHECK(cpu < 0.5 * wall);
    CHECK(edge_connect_tls(d) == 0);
    CHECK(round_one(d, 600) == 0);
    return 0;
}

static int test_plain_client_refused(void) {
    uint64_t f0 = tls_failures();
    edge *d = &g_edges[1];
    ams_msg_hello h;
    CHECK(hello_of(d, &h) == 0);
    ams_msg_welcome w;
    ams_err e = {0};
    ams_client *c = NULL;
    double t0 = now_s();
    ams_status s = ams_client_open(&c, g_addr, &h, d->key, TIMEOUT_MS, &w, &e);
    CHECK(s == AMS_E_IO && !c);
    CHECKF(strstr(e.msg, "server error 103") && strstr(e.msg, "TLS"), "%s", e.msg);
    CHECK(now_s() - t0 < 2.0); /* refused at once, not after a timeout */
    CHECK(tls_failures() == f0 + 1);
    /* the TLS edge of the same id is still served (the refused hello displaced nothing) */
    CHECK(round_one(d, 1500) == 0);
    CHECK(round_one(&g_edges[0], 1500) == 0);
    return 0;
}

static int test_wrong_ca(void) {
    edge *d = &g_edges[0];
    ams_msg_hello h;
    CHECK(hello_of(d, &h) == 0);
    ams_msg_welcome w;
    ams_err e = {0};
    ams_client *c = NULL;
    /* trusting another certificate */
    ams_tls *other = ams_tls_client_new(g_other, NULL, &e);
    CHECKF(other, "%s", e.msg);
    ams_status s = ams_client_open_tls(&c, g_addr, other, &h, d->key, TIMEOUT_MS, &w, &e);
    ams_tls_free(other);
    CHECK(s == AMS_E_IO && !c);
    CHECKF(strstr(e.msg, "not trusted"), "%s", e.msg);
    fprintf(stderr, "  (wrong CA: %s)\n", e.msg);
    /* the right certificate, but a name it does not carry: a DNS name, then an IP */
    const char *names[] = {"server.example", "10.1.2.3"};
    for (int i = 0; i < 2; i++) {
        ams_tls *t = ams_tls_client_new(g_cert, names[i], &e);
        CHECKF(t, "%s", e.msg);
        s = ams_client_open_tls(&c, g_addr, t, &h, d->key, TIMEOUT_MS, &w, &e);
        ams_tls_free(t);
        CHECK(s == AMS_E_IO && !c);
        CHECKF(strstr(e.msg, "not trusted"), "%s", e.msg);
    }
    /* ... and names it carries: localhost (DNS) and the generated --name */
    const char *good[] = {"localhost", "ams-test.example"};
    for (int i = 0; i < 2; i++) {
        ams_tls *t = ams_tls_client_new(g_cert, good[i], &e);
        CHECKF(t, "%s", e.msg);
        ams_client_free(d->c);
        d->c = NULL;
        CHECK(hello_of(d, &h) == 0);
        s = ams_client_open_tls(&d->c, g_addr, t, &h, d->key, TIMEOUT_MS, &w, &e);
        CHECKF(s == AMS_OK, "%s: %s", good[i], e.msg);
        CHECK(round_one(d, 1200) == 0);
        ams_client_free(d->c);
        d->c = NULL;
        ams_tls_free(t);
    }
    CHECK(edge_connect_tls(d) == 0);
    CHECK(round_one(d, 1000) == 0);
    CHECK(round_one(&g_edges[1], 1000) == 0);
    return 0;
}

static int test_stalled_handshake(void) {
    uint64_t f0 = tls_failures();
    /* one connects and says nothing; one sends the start of a TLS ClientHello and stops */
    int quiet = raw_connect(), half = raw_connect();
    CHECK(quiet >= 0 && half >= 0);
    static const uint8_t part[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03};
    CHECK(send(half, part, sizeof part, MSG_NOSIGNAL) == (ssize_t)sizeof part);
    /* meanwhile: a new TLS connection and rounds of both edges, quickly */
    double t0 = now_s();
    CHECK(edge_connect_tls(&g_edges[1]) == 0);
    for (int i = 0; i < NCLIENTS; i++) CHECK(round_one(&g_edges[i], 4000) == 0);
    double took = now_s() - t0;
    fprintf(stderr, "  (handshake + 2 rounds beside 2 stalled handshakes: %.3f s)\n", took);
    CHECK(took < HANDSHAKE_S); /* nobody waited for the stalled ones */
    /* the server closes both after its handshake deadline (+ its 0.5 s sweep) */
    CHECK(closed_within(quiet, (int)(HANDSHAKE_S * 1000) + 3000));
    CHECK(closed_within(half, 3000));
    CHECK(now_s() - t0 >= HANDSHAKE_S - 0.6); /* and not before it */
    close(quiet);
    close(half);
    CHECK(tls_failures() == f0 + 2);
    for (int i = 0; i < NCLIENTS; i++) CHECK(round_one(&g_edges[i], 800) == 0);
    return 0;
}

static int test_tls_client_plain_server(void) {
    ams_server *plain = NULL;
    pthread_t th;
    char addr[64];
    CHECK(start(&plain, &th, addr, sizeof addr, NULL, NULL) == 0);
    edge *d = &g_edges[0];
    ams_msg_hello h;
    CHECK(hello_of(d, &h) == 0);
    ams_msg_welcome w;
    ams_err e = {0};
    ams_client *c = NULL;
    double t0 = now_s();
    ams_status s = ams_client_open_tls(&c, addr, g_ctls, &h, d->key, TIMEOUT_MS, &w, &e);
    double took = now_s() - t0;
    stop(plain, th);
    CHECK(s == AMS_E_IO && !c);
    CHECKF(strstr(e.msg, "TLS") && strstr(e.msg, "--tls-cert"), "%s", e.msg);
    fprintf(stderr, "  (TLS client, plain server: %s)\n", e.msg);
    CHECK(took < 2.0);
    /* the TLS server is untouched */
    CHECK(round_one(d, 900) == 0);
    return 0;
}

static int setup(void) {
    CHECK(net_fixture_setup("tls", 11) == 0);
    ams_err e = {0};
    char dir[300], odir[300];
    snprintf(dir, sizeof dir, "%s/tls", g_dir);
    snprintf(odir, sizeof odir, "%s/other", g_dir);
    CHECK(mkdir(dir, 0700) == 0 && mkdir(odir, 0700) == 0);
    CHECKF(ams_tls_cert_generate(dir, "ams-test.example", 0, &e) == AMS_OK, "%s", e.msg);
    CHECKF(ams_tls_cert_generate(odir, NULL, 0, &e) == AMS_OK, "%s", e.msg);
    snprintf(g_cert, sizeof g_cert, "%s/cert.pem", dir);
    snprintf(g_key, sizeof g_key, "%s/key.pem", dir);
    snprintf(g_other, sizeof g_other, "%s/cert.pem", odir);
    g_ctls = ams_tls_client_new(g_cert, NULL, &e);
    CHECKF(g_ctls, "%s", e.msg);
    CHECK(start(&g_srv, &g_thread, g_addr, sizeof g_addr, g_cert, g_key) == 0);
    g_port = (uint16_t)ams_server_port(g_srv);
    return 0;
}

int main(int argc, char **argv) {
    if (setup() != 0) return 1;
    static const check_case cases[] = {
        {"cert", test_cert},
        {"two_edges", test_two_edges},
        {"record_straddle", test_record_straddle},
        {"encrypted", test_encrypted},
        {"stalled_record", test_stalled_record},
        {"plain_client_refused", test_plain_client_refused},
        {"wrong_ca", test_wrong_ca},
        {"stalled_handshake", test_stalled_handshake},
        {"tls_client_plain_server", test_tls_client_plain_server},
    };
    /* a single named test still needs the edges connected */
    if (argc > 1 && strcmp(argv[1], "two_edges") && strcmp(argv[1], "cert"))
        for (int i = 0; i < NCLIENTS; i++)
            if (edge_connect_tls(&g_edges[i]) != 0) return 1;
    int rc = check_run(cases, sizeof cases / sizeof cases[0], argc, argv);
    for (int i = 0; i < NCLIENTS; i++) {
        ams_client_free(g_edges[i].c);
        g_edges[i].c = NULL;
    }
    stop(g_srv, g_thread);
    g_srv = NULL;
    ams_tls_free(g_ctls);
    net_fixture_teardown();
    return rc;
}
