/* test_net_soak.c - memory stays flat over time: one server (loopback, stub compute, 2 workers)
 * and 8 concurrent clients, each on its own thread, doing many rounds of upload -> update
 * (applied, hash-checked against the update's and the server's copy) -> ack, with a STATS
 * request every 5th round and a reconnect (close + resume) every 25th. The heap in use of the
 * whole process (server and clients) is measured after a warm-up and at the end, both at a quiet
 * point (every client's last update acknowledged, all threads alive); its growth must stay under
 * LEAK_BOUND, which a leak of one malloc per job (ROUNDS x 8 jobs) would pass many times over.
 *
 * Heap in use: glibc's mallinfo2 (uordblks + hblkhd, all arenas), with glibc's per-thread cache
 * off (the test re-executes itself with GLIBC_TUNABLES=glibc.malloc.tcache_count=0: chunks
 * parked in a thread's cache count as in use and fill up slowly, tens of KB over a run, with no
 * leak); under AddressSanitizer, whose allocator does not report to mallinfo2,
 * __sanitizer_get_current_allocated_bytes. AMS_SOAK_LEAK=BYTES makes the test's compute leak
 * that many bytes per job (on the server's worker thread): the check must then fail (it proves
 * the test can fail). AMS_SOAK_ROUNDS overrides ROUNDS. */
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
/* sanitizer/allocator_interface.h (not every toolchain installs it) */
size_t __sanitizer_get_current_allocated_bytes(void);
#define HEAP_KIND "ASan allocator (__sanitizer_get_current_allocated_bytes)"
#else
#define HEAP_KIND "glibc mallinfo2 (uordblks + hblkhd)"
#endif

#include "ams/client.h"
#include "ams/netkey.h"
#include "ams/rng.h"
#include "ams/server.h"
#include "ams/update_codec.h"
#include "check.h"

#define NCLIENTS 8
#define WARM 100           /* rounds before the first measurement */
#define ROUNDS 600         /* rounds between the two measurements */
#define LEAK_BOUND 4096     /* bytes of growth allowed (measured: |growth| < 100 bytes) */
#define LEAK_BOUND_TCACHE (192 << 10) /* if the re-exec without the thread cache failed */
#define TIMEOUT_MS 20000
#include "net_testlib.h"

static size_t g_leak;   /* AMS_SOAK_LEAK: bytes leaked per job on purpose */
static int g_rounds = ROUNDS;
static long g_bound = LEAK_BOUND;
static pthread_barrier_t g_bar;

static size_t heap_in_use(void) {
#if defined(__SANITIZE_ADDRESS__)
    return __sanitizer_get_current_allocated_bytes();
#else
    struct mallinfo2 m = mallinfo2();
    return m.uordblks + m.hblkhd;
#endif
}

static ams_status leak_run(void *ctx, ams_compute_job *job, int *changed, ams_err *err) {
    (void)ctx;
    if (g_leak) {
        volatile char *p = malloc(g_leak); /* deliberately never freed (AMS_SOAK_LEAK) */
        if (p) p[0] = 1;
    }
    ams_compute stub = ams_compute_stub();
    return stub.run(NULL, job, changed, err);
}

/* Waits for the next update (a STATS answer on the way is counted), applies it, checks the
 * stated hash, acknowledges it. */
static int edge_wait_update(edge *d) {
    ams_err e = {0};
    for (;;) {
        ams_proto_frame f;
        CHECKF(ams_client_recv(d->c, TIMEOUT_MS, &f, NULL, &e) == AMS_OK, "%s: %s", d->id, e.msg);
        CHECKF(f.type != 0, "%s: no update within %d ms", d->id, TIMEOUT_MS);
        if (f.type == AMS_MSG_STATS) {
            CHECK(f.len > 2 && f.payload[0] == '{');
            d->stats++;
            continue;
        }
        if (f.type != AMS_MSG_UPDATE) continue;
        uint64_t before = d->version;
        CHECK(edge_apply_update(d, &f, NULL) == 0);
        CHECK(d->version == before + 1);
        uint8_t hh[32];
        CHECK(ams_weights_hash(d->w, g_init->total, hh, &e) == AMS_OK);
        /* the server's copy is the edge's */
        ams_server_client_info in;
        ams_server_client_info_get(g_srv, d->id, &in);
        CHECKF(in.version == d->version && !memcmp(in.hash, hh, 32), "%s: server v%llu edge v%llu",
               d->id, (unsigned long long)in.version, (unsigned long long)d->version);
        return 0;
    }
}

static int edge_round(edge *d, int r) {
    if (r % 25 == 24) { /* reconnect: a new connection resumes the session */
        ams_client_free(d->c);
        d->c = NULL;
        CHECK(edge_connect(d) == 0);
        d->reconnects++;
    }
    CHECK(edge_upload(d, 2000 + 150 * (size_t)(r % 7) + 100 * (size_t)(d - g_edges)) == 0);
    if (r % 5 == 2) {
        ams_err e = {0};
        CHECKF(ams_client_send(d->c, AMS_MSG_STATS, "{}", 2, &e) == AMS_OK, "%s", e.msg);
    }
    CHECK(edge_wait_update(d) == 0);
    return 0;
}

static void *edge_thread(void *arg) {
    edge *d = arg;
    for (int r = 0; r < WARM && !d->failed; r++) d->failed = edge_round(d, r) != 0;
    pthread_barrier_wait(&g_bar); /* warm-up done */
    pthread_barrier_wait(&g_bar); /* measured */
    for (int r = WARM; r < WARM + g_rounds && !d->failed; r++) d->failed = edge_round(d, r) != 0;
    /* measured again while this thread lives: a thread's exit returns its malloc cache (tcache
     * chunks count as in use), which would hide a leak of that size */
    pthread_barrier_wait(&g_bar);
    pthread_barrier_wait(&g_bar);
    return NULL;
}

/* A quiet point: every client's last update is acknowledged and no upload is pending. */
static int quiesce(void) {
    for (int t = 0; t < 2000; t++) {
        int quiet = 1;
        for (int i = 0; i < NCLIENTS && quiet; i++) {
            ams_server_client_info in;
            ams_server_client_info_get(g_srv, g_edges[i].id, &in);
            quiet = in.acked_version == g_edges[i].version && in.updates == in.uploads;
        }
        if (quiet) {
            usleep(20000); /* the loop finishes the last read */
            return 0;
        }
        usleep(5000);
    }
    CHECKF(0, "the server did not settle");
    return 1;
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int test_memory_flat(void) {
    for (int i = 0; i < NCLIENTS; i++) CHECK(edge_connect(&g_edges[i]) == 0);
    CHECK(pthread_barrier_init(&g_bar, NULL, NCLIENTS + 1) == 0);
    pthread_t th[NCLIENTS];
    double t0 = now_s();
    for (int i = 0; i < NCLIENTS; i++)
        CHECK(pthread_create(&th[i], NULL, edge_thread, &g_edges[i]) == 0);
    pthread_barrier_wait(&g_bar);
    int bad = quiesce();
    size_t m0 = heap_in_use();
    double t1 = now_s();
    pthread_barrier_wait(&g_bar);
    pthread_barrier_wait(&g_bar); /* the rounds are done */
    double t2 = now_s();
    bad |= quiesce();
    size_t m1 = heap_in_use();
    pthread_barrier_wait(&g_bar);
    for (int i = 0; i < NCLIENTS; i++) pthread_join(th[i], NULL);
    pthread_barrier_destroy(&g_bar);
    CHECK(!bad);
    for (int i = 0; i < NCLIENTS; i++) CHECKF(!g_edges[i].failed, "%s failed", g_edges[i].id);
    long growth = (long)m1 - (long)m0;
    ams_server_totals tot;
    ams_server_totals_get(g_srv, &tot);
    printf("soak: %d clients x %d rounds (%d warm-up, %.1f s) + %d rounds (%.1f s, %.0f updates/s); "
           "%llu jobs, %llu connections, %llu rejected; heap in use %zu -> %zu bytes (%+ld; "
           "bound %ld; %s)%s\n",
           NCLIENTS, WARM + g_rounds, WARM, t1 - t0, g_rounds, t2 - t1,
           NCLIENTS * g_rounds / (t2 - t1), (unsigned long long)tot.jobs,
           (unsigned long long)tot.accepted, (unsigned long long)tot.rejected, m0, m1, growth,
           g_bound, HEAP_KIND, g_leak ? " [AMS_SOAK_LEAK set: must fail]" : "");
    for (int i = 0; i < NCLIENTS; i++) {
        edge *d = &g_edges[i];
        ams_server_client_info in;
        ams_server_client_info_get(g_srv, d->id, &in);
        CHECKF(d->updates == WARM + g_rounds && in.updates == (uint64_t)(WARM + g_rounds) &&
                   in.uploads_dropped == 0,
               "%s: %d updates applied, server %llu updates, %llu dropped", d->id, d->updates,
               (unsigned long long)in.updates, (unsigned long long)in.uploads_dropped);
        CHECK(d->stats > 0 && d->reconnects > 0);
    }
    CHECK(tot.rejected == 0);
    CHECKF(growth < g_bound, "heap grew by %ld bytes over %d rounds of %d clients (%.1f bytes "
           "per job)", growth, g_rounds, NCLIENTS, (double)growth / (NCLIENTS * g_rounds));
    return 0;
}

static int setup(void) {
    const char *leak = getenv("AMS_SOAK_LEAK"), *rounds = getenv("AMS_SOAK_ROUNDS");
    if (leak) g_leak = (size_t)strtoul(leak, NULL, 10);
    if (rounds && atoi(rounds) > 0) g_rounds = atoi(rounds);
    CHECK(net_fixture_setup("soak", 11) == 0);
    return net_server_start((ams_compute){.run = leak_run});
}

static void teardown(void) {
    if (g_srv) net_server_stop();
    net_fixture_teardown();
}

/* Re-executes this program with glibc's thread cache off (once; see the top). */
static void no_tcache(char **argv) {
#if !defined(__SANITIZE_ADDRESS__)
    const char *t = getenv("GLIBC_TUNABLES");
    if (t && strstr(t, "glibc.malloc.tcache_count=0")) return;
    char v[512];
    snprintf(v, sizeof v, "%s%sglibc.malloc.tcache_count=0", t ? t : "", t && *t ? ":" : "");
    if (setenv("GLIBC_TUNABLES", v, 1) == 0) execv("/proc/self/exe", argv);
    fprintf(stderr, "soak: could not re-execute without the thread cache; bound %d bytes\n",
            LEAK_BOUND_TCACHE);
    g_bound = LEAK_BOUND_TCACHE;
#else
    (void)argv;
#endif
}

int main(int argc, char **argv) {
    (void)argc;
    no_tcache(argv);
    signal(SIGPIPE, SIG_IGN);
    if (setup() != 0) return 1;
    static const check_case cases[] = {{"memory_flat", test_memory_flat}};
    int r = check_run(cases, sizeof cases / sizeof cases[0], 1, argv);
    teardown();
    return r;
}
