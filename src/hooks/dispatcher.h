/* The webhook dispatcher: the thread "gh-webhooks" that delivers what
 * gh_store_hook_publish() queued (docs/webhooks.md).
 *
 * It claims due deliveries from the store in batches, signs each one
 * (Standard Webhooks v1 / v1a, with the previous key too during a rotation's
 * grace), posts them with libcurl's multi interface (up to
 * webhooks.concurrency at once, keep-alive connections reused, no
 * redirects, http and https only, no proxy), refuses at connect time any
 * address the SSRF rules block (after DNS: rebinding cannot get past), and
 * records the outcomes in batched transactions: success, a retry at the
 * next step of the schedule (network errors, 408, 429 with Retry-After,
 * 5xx), or failure. A delivery is recorded as succeeded only after its 2xx
 * came back, so anything not recorded is delivered again after a crash
 * (at least once).
 *
 * It is a thread of its own, beside the OTLP exporter's: the two have
 * nothing to share but libcurl, and a slow receiver must not hold spans
 * back (nor the reverse).
 *
 * Threading: start, configure, poke, stats and free are called from the
 * main or admin thread; poke and stats from any thread. */
#ifndef GH_HOOKS_DISPATCHER_H
#define GH_HOOKS_DISPATCHER_H

#include <stdint.h>

#include "core/err.h"

struct gh_store;
struct gh_secrets;
struct gh_config_webhooks;
struct gh_audit_service;
struct gh_hooks_dispatcher;

#define GH_HOOKS_NBUCKETS 17 /* = GH_METRICS_NBUCKETS (checked in dispatcher.c) */

/* Counters for the metrics (docs/metrics.md), read relaxed. */
struct gh_hooks_stats {
    uint64_t delivered, failed, retried; /* deliveries by result */
    /* Looks at the store's queue: that claimed deliveries, that found none
     * due, that failed (the store unreachable). */
    uint64_t looks_found, looks_empty, looks_failed;
    uint64_t attempts_ok, attempts_http_error, attempts_network_error, attempts_timeout,
        attempts_blocked; /* attempts by outcome */
    uint64_t in_flight;
    uint64_t pending; /* deliveries queued in the store, as of the last look (every second) */
    uint64_t disabled_endpoints;
    /* Retention (retention.h): rows deleted, the deliveries among them
     * still pending, and steps that failed. */
    uint64_t purged_messages, purged_deliveries, purged_attempts, purged_undelivered;
    uint64_t purge_failures;
    /* Attempt latency on the metrics' bucket layout (gh_metrics_bucket_ns:
     * per bucket, not cumulative, last +Inf) and its sum in ns. */
    uint64_t latency_buckets[GH_HOOKS_NBUCKETS];
    uint64_t latency_sum_ns;
};

/* Starts the thread with the settings of <cfg> (copied). <st> and <sec>
 * must outlive the dispatcher; <audit> may be NULL. NULL with <err> on
 * failure (then no thread runs). */
struct gh_hooks_dispatcher *gh_hooks_dispatcher_start(struct gh_store *st, struct gh_secrets *sec,
                                                      struct gh_audit_service *audit,
                                                      const struct gh_config_webhooks *cfg,
                                                      struct gh_err *err);

/* A reload: new settings apply from the next attempt. */
int gh_hooks_dispatcher_configure(struct gh_hooks_dispatcher *d,
                                  const struct gh_config_webhooks *cfg);

/* Something was published: look at the queue now rather than at the next
 * poll. Cheap; any thread. NULL is fine. */
void gh_hooks_dispatcher_poke(struct gh_hooks_dispatcher *d);

/* Entry 0 of the schedule: the delay of a new message's first attempt (0
 * when <d> is NULL). Any thread. */
uint64_t gh_hooks_dispatcher_first_delay(struct gh_hooks_dispatcher *d);

void gh_hooks_dispatcher_stats(struct gh_hooks_dispatcher *d, struct gh_hooks_stats *out);

/* Stops the thread: attempts in flight get a short grace, then are
 * abandoned unrecorded (they will be delivered again at the next start).
 * Records what finished, wipes the keys. NULL is fine. */
void gh_hooks_dispatcher_free(struct gh_hooks_dispatcher *d);

#endif
