/* server_internal.h - the server's shared structures (event loop, scheduler, session store);
 * private to src/net. Locking: ams_server.mu guards every session field except `conn` (event
 * loop thread only) and the scheduler state; the mirror of a busy session belongs to the worker
 * that runs its job. */
#ifndef AMS_NET_SERVER_INTERNAL_H
#define AMS_NET_SERVER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "ams/server.h"
#include "ams/tls.h"

struct conn;

typedef struct session {
    char id[AMS_PROTO_ID_MAX + 1];
    uint64_t version;             /* mirror version */
    float *mirror;                /* total floats: what the client holds after our updates */
    uint8_t hash[AMS_HASH_LEN];   /* hash of mirror */
    double sample_rate;           /* ASR rate told to the client */
    uint8_t *last_update;         /* UPDATE payload (head + codec) of version, or NULL */
    size_t last_update_len;
    uint8_t last_base[AMS_HASH_LEN]; /* weights the last update applies to */
    ams_net_sample *pending;      /* uploads waiting for compute (h264 owned) */
    int n_pending, cap_pending;
    int busy;                     /* a worker runs its job */
    uint64_t served_seq;          /* the scheduler's pick count at its last job (0: none) */
    uint64_t waiting_seq;         /* the pick count when its work now waiting came */
    int resync;                   /* the client holds the initial weights: send initial->mirror */
    int send_pending;             /* a new update waits for the loop to send it */
    void *cstate;                 /* compute state */
    struct conn *conn;            /* loop thread only */
    ams_server_client_info info;  /* metrics (version/hash mirrored on read) */
    double lag_sum;
    uint64_t lag_n;
    double miou_sum, miou_pre_sum; /* over jobs that measured them */
    uint64_t miou_n, miou_pre_n;
} session;

struct ams_server {
    ams_server_config cfg;
    const ams_params *layout;
    size_t total;
    uint8_t initial_hash[AMS_HASH_LEN];
    int listen_fd, epoll_fd, event_fd, port;
    ams_tls *tls;                 /* NULL: plain TCP */
    atomic_int stop;
    pthread_mutex_t mu;
    pthread_cond_t cv;            /* workers wait for work */
    int workers_stop;
    pthread_t *workers;
    int n_workers;
    session **sessions;           /* n_sessions, in creation order (round-robin order) */
    int n_sessions;
    int rr;                       /* next session index the scheduler looks at */
    uint64_t picks;               /* jobs the scheduler has started */
    struct conn *conns;           /* loop thread only: open connections, a list */
    int n_conns;
    ams_server_totals totals;
};

/* Monotonic seconds. */
double ams_server_now(void);

/* The scheduler (server_sched.c), mu held. ams_sched_work_added: before work (an upload, a
 * resync) is queued for ss. ams_sched_pick: the next session to run a job for (marked
 * served, not busy: the caller sets that), or NULL when none has work. */
void ams_sched_work_added(ams_server *s, session *ss);
session *ams_sched_pick(ams_server *s);

/* Session store (server_session.c). Finds or creates (from state_dir or the initial weights)
 * the session of id; called with mu held. NULL on error. */
session *ams_session_get(ams_server *s, const char *id, ams_err *err);
/* Frees a session (its pending uploads and compute state). */
void ams_session_free(ams_server *s, session *ss);
/* Writes state_dir/<id>.session atomically from the given fields (any thread, no lock needed:
 * the arguments are the caller's private copies). */
ams_status ams_session_save(const char *state_dir, const char *id, uint64_t version,
                            double sample_rate, const float *mirror, size_t total,
                            const uint8_t *last_update, size_t last_update_len,
                            const uint8_t last_base[AMS_HASH_LEN], ams_err *err);

/* Scheduler (server_sched.c). */
ams_status ams_sched_start(ams_server *s, ams_err *err);
void ams_sched_stop(ams_server *s);

#endif
