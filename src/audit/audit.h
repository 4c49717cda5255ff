/* The audit service: one writer thread that takes events from every
 * producer, chains them (event.h) and signs checkpoints, and a committer
 * thread that commits them to the store in groups (one fsync per batch)
 * while the writer chains the next group (writer.c, "the pipeline").
 *
 * Producers:
 * - worker threads (the data plane): through their own single-producer ring
 *   (struct gh_audit_worker below), no lock; in strict mode the request is
 *   suspended until the writer says its event is durable, and resumed on its
 *   own loop (src/audit/request.c);
 * - every other thread (the admin worker's handlers, the main thread on
 *   reload, the limits flusher): gh_audit_submit, which may block.
 * A full queue makes producers wait (backpressure); no event is dropped
 * silently: an event the writer could not store is counted and logged, and a
 * strict waiter gets an error (the request is answered 503 audit_unavailable).
 *
 * At start the writer loads every chain's head and last checkpoint from the
 * store, and the audit signing key (creating one when there is none). */
#ifndef GH_AUDIT_AUDIT_H
#define GH_AUDIT_AUDIT_H

#include <stdbool.h>
#include <stdint.h>

#include "audit/event.h"
#include "config/config.h"
#include "core/err.h"

struct event_base;
struct gh_store;
struct gh_secrets;
struct gh_audit_service;
struct gh_audit_worker;

/* The commit-latency histogram uses the metrics buckets (metrics.h). */
#define GH_AUDIT_NBUCKETS 17

/* Counters and gauges for metrics (docs/metrics.md: gatehouse_audit_*). */
struct gh_audit_stats {
    uint64_t events_written;
    uint64_t events_failed;    /* could not be stored */
    uint64_t queue_depth;      /* events waiting now (rings and submit queue) */
    uint64_t batches;          /* commits, good or not */
    uint64_t batch_events_sum; /* for the mean batch size */
    uint64_t commit_ns_sum;
    uint64_t commit_buckets[GH_AUDIT_NBUCKETS]; /* per bucket, not cumulative */
    uint64_t checkpoints;
    uint64_t producer_waits;   /* times a producer waited on a full queue */
    uint64_t chained_ahead;    /* batches chained while the one before was being stored */
    uint64_t queued_ahead;     /* of them, full ones queued behind it (the committer went on) */
    int64_t oldest_pending_us; /* age of the oldest event being written, 0 when none */
};

/* Which automatic events are written (`audit.events`), read by producers. */
enum gh_audit_kind {
    GH_AUDIT_KIND_AUTH_FAILURES,
    GH_AUDIT_KIND_ADMIN,
    GH_AUDIT_KIND_LIMITS,
    GH_AUDIT_KIND_RELOADS,
};

/* NULL with <err> on failure. Nothing runs yet: rings for <nworkers>
 * workers (cfg->audit.queue_size each) and the submit queue are allocated. */
struct gh_audit_service *gh_audit_service_new(const struct gh_config *cfg, struct gh_store *st,
                                              int nworkers, struct gh_err *err);
/* Before start: the signing key is sealed with <secrets> (secrets.h, "own
 * private keys") when it is made, and opened with it when it is loaded.
 * Without it, a new key is stored in clear (unit tests, tools). */
void gh_audit_service_set_secrets(struct gh_audit_service *s, struct gh_secrets *secrets);
/* Before start: the writer of a short-lived command (the CLI) next to
 * running gateways. It reads no checkpoint at start and signs checkpoints
 * only of the chains it wrote, when it stops: the other chains are the
 * gateways' to sign, and a head it read at start may be stale by then. */
void gh_audit_service_set_tool(struct gh_audit_service *s);
/* Loads chain heads, checkpoints and the signing key (making one when the
 * store has none), then starts the writer thread. GH_OK or GH_ERROR. */
int gh_audit_service_start(struct gh_audit_service *s, struct gh_err *err);
/* A reload: checkpoint settings, param_prefix, the global mode and the event
 * switches apply from the next event. Thread-safe. (queue_size and
 * batch_max keep their start values.) */
void gh_audit_service_configure(struct gh_audit_service *s, const struct gh_config *cfg);
/* Writes what is queued, stops the writer, frees. Producers must have
 * stopped; workers must have unbound (gh_audit_worker_unbind). NULL is fine. */
void gh_audit_service_free(struct gh_audit_service *s);

/* Any thread but a worker loop: queues <ev> (copied) and, when <durable>,
 * blocks until it is committed. Returns GH_OK, or GH_ERROR when it could not
 * be stored (then it is counted and logged). Blocks while the queue is full.
 * <s> may be NULL (auditing off): a no-op returning GH_OK. */
int gh_audit_submit(struct gh_audit_service *s, const struct gh_audit_event *ev, bool durable);

/* Any thread: a new event (UUIDv7 from the wall clock and getrandom). */
void gh_audit_event_new(struct gh_audit_event *ev);

/* Whether events of <kind> are on (false when <s> is NULL), the global
 * strict mode, and the params prefix length. Thread-safe. */
bool gh_audit_wants(struct gh_audit_service *s, enum gh_audit_kind kind);
bool gh_audit_strict(struct gh_audit_service *s);
unsigned gh_audit_param_prefix(struct gh_audit_service *s);

void gh_audit_stats(struct gh_audit_service *s, struct gh_audit_stats *out);

/* ---- a data-plane worker's side (worker thread only, unless said) ---- */

/* A request (or anything) waiting for its event to be durable. */
struct gh_audit_waiter {
    uint64_t ticket; /* the event's position in the worker's ring */
    struct gh_audit_waiter *prev, *next;
    bool linked;
    /* Called on the worker's loop once the event is stored (<ok>) or could
     * not be (!<ok>). The waiter is unlinked before the call. */
    void (*done)(struct gh_audit_waiter *wt, bool ok);
};

/* Worker <i>'s side, or NULL (no service). */
struct gh_audit_worker *gh_audit_worker_of(struct gh_audit_service *s, int i);
/* Main thread, before the worker starts: completions arrive on <base>. */
int gh_audit_worker_bind(struct gh_audit_worker *aw, struct event_base *base);
/* Any thread, before <base> is freed: no more completions are posted. */
void gh_audit_worker_unbind(struct gh_audit_worker *aw);

/* The slot for the next event, initialised (id, time, "[]" params). When the
 * ring is full the worker waits for the writer (counted: producer_waits):
 * that is the backpressure. Fill it, then gh_audit_worker_push. */
struct gh_audit_event *gh_audit_worker_slot(struct gh_audit_worker *aw);
/* Publishes the slot; returns its ticket. <strict>: someone will wait on it
 * (the writer is woken now and reports its outcome). */
uint64_t gh_audit_worker_push(struct gh_audit_worker *aw, bool strict);
/* Waits on <ticket>: <wt>->done runs later on this loop. */
void gh_audit_worker_wait(struct gh_audit_worker *aw, struct gh_audit_waiter *wt, uint64_t ticket);
/* Stops waiting (the request ended another way); no call to done. */
void gh_audit_worker_cancel(struct gh_audit_worker *aw, struct gh_audit_waiter *wt);
/* The params prefix and mode for events made on this worker. */
struct gh_audit_service *gh_audit_worker_service(struct gh_audit_worker *aw);

#endif
