/* A worker thread: one libevent loop, its own SO_REUSEPORT listeners, its own
 * upstream connection pools, buffer pool and counters. A request lives on one
 * worker from start to end, so nothing here needs a lock. The admin listener
 * runs on a worker of its own (is_admin) with the same connection code. */
#ifndef GH_CORE_WORKER_H
#define GH_CORE_WORKER_H

#include <event2/event.h>
#include <event2/event_struct.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "core/buf.h"
#include "core/snapshot.h"

struct gh_runtime;
struct gh_conn;
struct gh_req;
struct gh_pool;
struct gh_upstream_rt;
struct gh_accesslog_buf;
struct gh_keydir;
struct gh_authn_worker;
struct gh_limits_worker;
struct gh_trace_worker;
struct gh_verify_job;
struct gh_metrics_worker;
struct gh_audit_worker;
struct gh_wh_worker;

struct gh_listener {
    struct gh_worker *worker;
    int fd;
    size_t listen_index; /* into cfg->listens; unused for admin */
    bool is_admin;
    bool paused; /* accept stopped (connection limit, EMFILE) */
    struct event ev;
};

/* Counters kept by one worker without locks; summed by readers. */
struct gh_worker_stats {
    _Atomic uint64_t requests;
    _Atomic uint64_t conns_accepted;
    _Atomic uint64_t tls_handshake_failures;
    _Atomic uint64_t upstream_connects;
    _Atomic uint64_t upstream_reuses;
    _Atomic uint64_t access_log_dropped;
};

struct gh_worker {
    /* read-only after start */
    int id;
    bool is_admin;
    struct gh_runtime *rt;
    struct event_base *base;
    pthread_t thread;
    struct gh_listener *listeners;
    size_t nlisteners;

    /* snapshot handling (see snapshot.h) */
    _Atomic(struct gh_snapshot *) pending;   /* mailbox written by the main thread */
    _Atomic bool stop_requested;             /* set by the main thread on SIGTERM */
    _Atomic(struct gh_keydir *) pending_dir; /* mailbox written by the auth service */
    pthread_mutex_t verify_mu;               /* guards verify_done */
    struct gh_verify_job *verify_done;       /* Argon2 jobs back from the auth service */
    struct event *verify_ev;
    struct event *notify_ev; /* activated by the main thread */
    struct gh_wsnap *cur;
    struct gh_wsnap *retired;

    /* private to the worker thread */
    struct gh_bufpool bufpool;
    struct gh_req *free_reqs;
    uint32_t nfree_reqs;
    struct gh_conn *conns;
    uint32_t nconns;
    struct gh_pool *pools;      /* every pool this worker has */
    struct gh_upstream_rt *ups; /* per upstream of cur->snap: pools + round robin */
    size_t nups;
    struct event *tick_ev; /* 250 ms housekeeping */
    struct gh_accesslog_buf *alog;
    struct gh_keydir *keydir; /* never NULL once started */
    struct gh_authn_worker *authn;
    struct gh_limits_worker *limits; /* NULL for the admin worker */
    struct gh_trace_worker *trace;   /* owned by the tracer; NULL for the admin worker */
    struct gh_audit_worker *audit;   /* owned by the audit service; NULL: admin, or audit off */
    uint64_t id_prefix;              /* request ids: random prefix + counter */
    uint64_t id_counter;
    bool draining;
    uint64_t drain_deadline_ns;
    time_t date_sec; /* cached HTTP Date header value */
    char date[32];
    struct gh_worker_stats stats;

    /* Metrics (src/telemetry/metrics.h): NULL for the admin worker. */
    struct gh_metrics_worker *metrics;

    /* Inbound webhook checks (src/hooks/stage.c): this thread's keyed HMAC
     * contexts per verify route, made at a route's first check. */
    struct gh_wh_worker *wh;

    /* Idempotency records (src/idem/stage.c): the counter of this worker's
     * claim tokens; <idem_redis_away> says a Redis outage was logged. */
    uint64_t idem_token_next;
    bool idem_redis_away;
};

/* Creates the worker's loop and listeners (one SO_REUSEPORT socket per
 * listen address, or the admin address). Runs on the main thread so that
 * bind errors come back before anything starts. Returns GH_OK or GH_ERROR
 * with <err>. */
int gh_worker_init(struct gh_worker *w, struct gh_runtime *rt, int id, bool is_admin,
                   struct gh_snapshot *snap, struct gh_err *err);
int gh_worker_start(struct gh_worker *w);
void gh_worker_release(struct gh_worker *w);

/* Main thread: hands <snap> (one reference already taken for this worker)
 * to the worker, which adopts it on its own loop. */
void gh_worker_publish(struct gh_worker *w, struct gh_snapshot *snap);
/* Any thread: hands <d> (one reference already taken for this worker). */
void gh_worker_publish_keydir(struct gh_worker *w, struct gh_keydir *d);

/* Main thread: asks the worker to stop accepting and finish. */
void gh_worker_shutdown(struct gh_worker *w);

/* Worker thread: the wsnap for a new request (counts it in flight). */
struct gh_wsnap *gh_worker_snap_enter(struct gh_worker *w);
void gh_worker_snap_leave(struct gh_worker *w, struct gh_wsnap *ws);

/* Worker thread: request objects from a free list. */
struct gh_req *gh_worker_req_get(struct gh_worker *w);
void gh_worker_req_put(struct gh_worker *w, struct gh_req *r);

/* Worker thread: the "Date:" header value for now (cached per second). */
const char *gh_worker_date(struct gh_worker *w);

/* Worker thread: a listener stops or resumes accepting (connection limit). */
void gh_worker_pause_accept(struct gh_worker *w, bool pause);

#endif
