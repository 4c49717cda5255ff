/* Private to src/audit: the service and the workers' rings, shared by the
 * writer thread (writer.c), the worker side (ring.c) and the signing key
 * (keys.c). */
#ifndef GH_AUDIT_WRITER_INT_H
#define GH_AUDIT_WRITER_INT_H

#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>

#include "audit/audit.h"
#include "core/log_episode.h"

struct event;

/* One ring slot: the event and whether a request waits on it. */
struct gh_audit_slot {
    struct gh_audit_event ev;
    bool strict;
};

#define GH_AUDIT_FAILED_MAX 64

/* A worker's side. The ring is single producer (the worker) and single
 * consumer (the writer), as the trace rings (telemetry/trace.h): head and
 * tail on their own cache lines, release/acquire order, no lock. The
 * writer's answers come back under <mu> with one event_active per batch,
 * as Argon2 results do (core/worker.c verify_done). */
struct gh_audit_worker {
    _Atomic uint64_t head; /* next slot the worker writes */
    char pad1[56];
    _Atomic uint64_t tail; /* next slot the writer reads */
    char pad2[56];
    uint32_t mask;
    struct gh_audit_slot *slots;
    struct gh_audit_service *svc;

    /* writer -> worker, under <mu> */
    pthread_mutex_t mu;
    uint64_t done_upto; /* every ticket below it is finished */
    struct {
        uint64_t from, to; /* tickets [from, to) could not be stored */
    } failed[GH_AUDIT_FAILED_MAX];
    unsigned nfailed;
    struct event *done_ev; /* NULL once unbound */
    pthread_cond_t room;   /* signalled when slots are given back ... */
    bool room_wanted;      /* ... and the worker waits for them (ring full) */

    /* worker thread only */
    uint64_t rng[4];
    struct gh_audit_waiter *wait_head, *wait_tail;
};

/* Settings a reload may change, copied under the service's lock. */
struct gh_audit_conf {
    bool strict;
    uint32_t checkpoint_every;
    uint32_t checkpoint_interval_ms;
    uint32_t param_prefix;
    struct gh_config_audit_events events;
};

/* An event from gh_audit_submit, and who waits on it (NULL: nobody). */
struct gh_audit_sub_waiter {
    bool done;
    int rc;
};
struct gh_audit_sub {
    struct gh_audit_event ev;
    struct gh_audit_sub_waiter *waiter;
};

struct gh_audit_chain;
struct gh_audit_round;

/* One batch's buffers. There are two: the writer thread gathers and chains
 * a batch into one while the committer thread stores the batch before it
 * from the other (writer.c, "the pipeline"). */
struct gh_audit_buf {
    struct gh_store_audit_row *rows;
    struct gh_store_audit_checkpoint *cps;
    struct gh_audit_event **batch; /* the batch's events */
    struct gh_audit_sub *taken_subs;
    uint64_t *taken;   /* per worker: slots in the batch */
    bool *strict_seen; /* per worker: a strict slot in the batch */
};

enum { GH_AUDIT_AWAKE, GH_AUDIT_NAP, GH_AUDIT_IDLE }; /* gh_audit_service.sleeping */

struct gh_audit_service {
    struct gh_store *store;
    struct gh_secrets *secrets; /* seals the signing key; NULL: kept in clear (tests) */
    bool tool; /* a command's writer: checkpoints only the chains it wrote (audit.h) */
    int nworkers;
    struct gh_audit_worker **workers;
    uint32_t batch_max;
    /* config node.id, fixed at new: the writer stamps it into every event
     * it chains, so no producer can forget it ("" keeps version 1). */
    char node[GH_AUDIT_NODE_SIZE];
    pthread_t thread;
    bool started;
    _Atomic bool stop;

    /* <mu> guards conf, the submit queue and the writer's sleep. */
    pthread_mutex_t mu;
    pthread_cond_t wake; /* the writer: work arrived */
    pthread_cond_t room; /* submitters: the queue has room */
    pthread_cond_t done; /* durable submitters: an answer arrived */
    /* How the writer waits on <wake>: GH_AUDIT_NAP, up to IDLE_WAIT_MS (a
     * strict event or a submit wakes it: gh_audit_wake_); GH_AUDIT_IDLE,
     * after a whole nap found nothing, up to IDLE_DEEP_MS (an async event
     * wakes it too: gh_audit_wake_idle_), so that an idle gateway does not
     * wake 200 times a second for nothing. */
    _Atomic int sleeping;
    struct gh_audit_conf conf;
    struct gh_audit_sub *subq; /* ring of <subcap> */
    uint32_t subcap, subhead, sublen;

    /* The committer thread: stores the batch <commit_round> names, then
     * says so (the round's committer_done), then goes straight on to
     * <commit_next> if the writer queued one behind it. <commit_mu> guards
     * the hand-over fields; a round belongs to the committer between
     * hand-over and answer. */
    pthread_t commit_thread;
    bool commit_started;
    pthread_mutex_t commit_mu;
    pthread_cond_t commit_cv;
    struct gh_audit_round *commit_round; /* being stored */
    struct gh_audit_round *commit_next;  /* queued behind it (writer.c, commit_queue) */
    bool commit_stop;

    /* writer thread only */
    struct gh_audit_chain **buckets; /* chains by name */
    struct gh_audit_chain *dirty;    /* chains with events after their last checkpoint */
    struct gh_audit_buf buf[2];
    uint32_t cps_cap;
    uint64_t last_log_ns;
    /* The store out of reach (events held in memory): its first line, one
     * every 10 s, and one when events are stored again. */
    struct gh_log_episode unavailable;
    uint64_t last_cp_scan_ns;
    uint64_t serial_until_ns; /* after a CONFLICT: one batch at a time until then */
    uint64_t serial_ns;       /* the next such period */
    /* A batch whose commit outcome is unknown (the store went away during
     * the append, and could not say after): its chained rows and
     * checkpoints in buf[pending_buf], its ring slots (taken, strict_seen)
     * and submitted events (taken_subs) are kept as they are, and nothing
     * else is gathered until the store tells whether it was stored
     * (writer.c resolve): so it is stored once, never twice, never lost. */
    bool pending;
    int pending_buf;
    size_t pending_n, pending_nsubs, pending_nrows, pending_ncp;
    EVP_PKEY *key;
    char key_id[17];

    _Atomic uint64_t events_written, events_failed, batches, batch_events_sum, commit_ns_sum;
    _Atomic uint64_t commit_buckets[GH_AUDIT_NBUCKETS];
    _Atomic uint64_t checkpoints, producer_waits;
    _Atomic uint64_t rechains;       /* batches chained again under the store's lock (PostgreSQL) */
    _Atomic uint64_t chained_ahead;  /* batches chained while the one before was being stored */
    _Atomic uint64_t queued_ahead;   /* of them, queued behind it (writer.c, commit_queue) */
    _Atomic int64_t oldest_since_us; /* time of the oldest event being written, 0 when none */
};

/* ring.c */
struct gh_audit_worker *gh_audit_worker_new_(struct gh_audit_service *s, uint32_t capacity);
void gh_audit_worker_free_(struct gh_audit_worker *aw);
uint64_t gh_audit_worker_pending_(struct gh_audit_worker *aw);
/* Writer: the writer finished tickets below <upto>; [from, upto) failed
 * when !<ok>. Wakes the worker's loop when <wake>, and the worker itself
 * when it waits for room (called right after the tail moved). */
void gh_audit_worker_report_(struct gh_audit_worker *aw, uint64_t from, uint64_t upto, bool ok,
                             bool wake);
/* Any thread: wakes the writer if it sleeps. */
void gh_audit_wake_(struct gh_audit_service *s);
/* Any thread, after publishing an async event: wakes the writer if it
 * sleeps the long idle sleep (a fence and a load when it does not). */
void gh_audit_wake_idle_(struct gh_audit_service *s);

/* keys.c: the signing key, loaded or made at start. */
int gh_audit_key_load_(struct gh_audit_service *s, struct gh_err *err);

#endif
