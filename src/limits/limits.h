/* The limits stage (issue 4): quotas, rate limits and bulkheads, after
 * authentication and before the proxy.
 *
 * Order per request: (1) quota admission for the principal's tenant, (2)
 * rate-limit rules (the tenant's plan rules, then the route's), all decided
 * at once: locally in a sharded in-memory table, or with one EVALSHA to
 * Redis that checks every rule and takes from all or none, (3) bulkheads:
 * in-flight slots per tenant (plan), per route and per tenant on the route,
 * with an optional short queue. A request refused at a later step gives back
 * what an earlier step counted.
 *
 * Answers: 429 `rate_limited` / `quota_exceeded` (JSON body naming the rule,
 * RateLimit-Policy, RateLimit and Retry-After headers, after
 * draft-ietf-httpapi-ratelimit-headers), 503 `concurrency_limited`, and 503
 * `rate_limiter_unavailable` only where `on_redis_error: deny` asks for it.
 * Admitted responses carry RateLimit-Policy and RateLimit for the rule with
 * the least room left.
 *
 * Redis: one connection per worker, on the worker's loop. Once it is known
 * to be down, requests do not wait for it: they are decided at once by each
 * rule's `on_redis_error` policy (`local`: the local table at this node's
 * 1/limits.nodes share), while the connection retries with backoff. */
#ifndef GH_LIMITS_LIMITS_H
#define GH_LIMITS_LIMITS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"
#include "core/err.h"

struct gh_req;
struct gh_worker;
struct gh_store;
struct gh_limits_service;
struct gh_limits_worker;

/* Counters per worker, summed by readers (metrics). Each has one writer,
 * its worker, which adds with a relaxed load and store (no locked add). */
struct gh_limits_stats {
    _Atomic uint64_t allowed;             /* passed every limit */
    _Atomic uint64_t rate_limited;        /* 429 rate_limited */
    _Atomic uint64_t quota_exceeded;      /* 429 quota_exceeded */
    _Atomic uint64_t concurrency_limited; /* 503 */
    _Atomic uint64_t queued;              /* waited in a bulkhead queue */
    _Atomic uint64_t redis_decisions;     /* decided by Redis */
    _Atomic uint64_t fallback_decisions;  /* decided while Redis was unavailable */
    _Atomic uint64_t unavailable;         /* 503 rate_limiter_unavailable */
    _Atomic uint64_t quota_admitted;      /* admitted (and counted) by the quota table */
    _Atomic uint64_t bulkhead_admitted;   /* took bulkhead slots (at once or after queueing) */
};

/* Runtime: the shared tables and the quota flusher. <st> may be NULL (no
 * quotas are then kept). Returns NULL with <err>. */
struct gh_limits_service *gh_limits_service_new(const struct gh_config *cfg, struct gh_store *st,
                                                struct gh_err *err);
/* Starts the flusher thread. GH_OK or GH_ERROR. */
int gh_limits_service_start(struct gh_limits_service *s, struct gh_err *err);
/* Quota threshold events also go to the audit log through <a> (may be
 * NULL) and, as quota.warning / quota.exceeded, to the tenant's webhook
 * endpoints. Before gh_limits_service_start. */
struct gh_audit_service;
void gh_limits_service_set_audit(struct gh_limits_service *s, struct gh_audit_service *a);
/* Quota events published after this wake <d> at once (before it, they
 * wait for its next look at the queue). Any time; <d> must outlive <s>. */
struct gh_hooks_dispatcher;
void gh_limits_service_set_hooks(struct gh_limits_service *s, struct gh_hooks_dispatcher *d);
/* Stops the flusher after a last flush and frees everything. Workers must
 * have stopped. */
void gh_limits_service_free(struct gh_limits_service *s);
/* Any thread: what usage retention deleted so far (usage rows, limit
 * events) and the batches the store refused (usage_retention.h). */
void gh_limits_service_retention(const struct gh_limits_service *s, uint64_t *usage,
                                 uint64_t *events, uint64_t *failures);
/* Flushes the quota counters now (tests, shutdown). */
int gh_limits_service_flush(struct gh_limits_service *s, struct gh_err *err);

/* Worker thread, at start: the worker's Redis connection and queue. */
struct gh_limits_worker *gh_limits_worker_new(struct gh_worker *w, struct gh_limits_service *s,
                                              const struct gh_config *cfg);
void gh_limits_worker_free(struct gh_limits_worker *lw);
const struct gh_limits_stats *gh_limits_worker_stats(const struct gh_limits_worker *lw);
/* Worker thread (<lw> may be NULL): the worker's Redis connection, made at
 * start when `redis:` is set and limits.backend is redis or
 * inbound_webhooks.replay_store is redis; NULL otherwise or when it could
 * not be made. The verify stage borrows it; it lives as long as <lw>. */
struct gh_redis;
struct gh_redis *gh_limits_worker_redis(struct gh_limits_worker *lw);
/* Worker thread (<lw> may be NULL): 1 when its Redis connection is up, 0
 * when down, 2 when it has none (local backend). */
int gh_limits_worker_redis_state(const struct gh_limits_worker *lw);
/* Any thread: <tenant>'s quota usage of the current day and month and the
 * limits last applied to it (0: none). False when the tenant has no entry. */
bool gh_limits_service_quota_usage(struct gh_limits_service *s, const char *tenant,
                                   uint64_t used[GH_QUOTA_NMETRICS][GH_QUOTA_NPERIODS],
                                   uint64_t limit[GH_QUOTA_NMETRICS][GH_QUOTA_NPERIODS]);

/* The stage: 1 = go on, 0 = answered, 2 = suspended (Redis or a queue). */
int gh_limits_stage(struct gh_req *r);
/* The request ends (any way): gives back its slots, leaves any queue,
 * cancels its Redis call, counts its bytes towards the tenant's quotas. */
void gh_limits_request_end(struct gh_worker *w, struct gh_req *r);

#endif
