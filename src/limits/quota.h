/* Quotas: per tenant and UTC period (day, month), counts of requests,
 * request bytes and response bytes.
 *
 * Workers count into a table shared by all of them (sharded, a mutex per
 * shard, one short critical section per request); the limits service thread
 * flushes the counts to the store at least every second (limits.
 * quota_flush_interval), takes the store's totals back (so several nodes
 * sharing a store see each other's traffic at the next flush), and records
 * the 80% and 100% events once per period. A restart loses at most one flush
 * interval of counting: the table is preloaded from the store at start.
 *
 * A tenant's usage of a period is <stored total at the last flush> +
 * <counted here since>. A request is admitted only while every request quota
 * is below its limit (and counted at once, so one node never overshoots a
 * request quota); byte quotas stop new requests once reached. Periods roll
 * over by the wall clock: counts of a period that ended are still flushed to
 * that period. */
#ifndef GH_LIMITS_QUOTA_H
#define GH_LIMITS_QUOTA_H

#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"
#include "core/err.h"

struct gh_store;
struct gh_quota_table;

/* Which limit refused a request, for the 429 and its headers. */
struct gh_quota_verdict {
    int metric; /* GH_QUOTA_* */
    int period; /* GH_QUOTA_DAY / GH_QUOTA_MONTH */
    uint64_t limit, used;
    uint64_t retry_after_s; /* to the end of the period */
    uint64_t window_s;      /* the period's length */
};

/* Room for <capacity> tenants (rounded up). NULL on allocation failure. */
struct gh_quota_table *gh_quota_table_new(uint32_t capacity);
void gh_quota_table_free(struct gh_quota_table *t);

/* Admits one request of <tenant> against <limits> at <wall_ms>: true when
 * every quota allows it (the request is then counted), false with <v> set.
 * A tenant that finds no room in a full table is admitted uncounted (and
 * gh_quota_overflows() grows). */
bool gh_quota_admit(struct gh_quota_table *t, const char *tenant, size_t tenant_len,
                    const struct gh_config_quotas *limits, int64_t wall_ms,
                    struct gh_quota_verdict *v);
/* Takes back the count of an admitted request that a later limit refused. */
void gh_quota_unadmit(struct gh_quota_table *t, const char *tenant, size_t tenant_len,
                      int64_t wall_ms);
/* Adds the bytes of a finished request. */
void gh_quota_add_bytes(struct gh_quota_table *t, const char *tenant, size_t tenant_len,
                        uint64_t bytes_in, uint64_t bytes_out, int64_t wall_ms);
uint64_t gh_quota_overflows(const struct gh_quota_table *t);
/* Any thread (metrics): <tenant>'s usage of the periods of <wall_ms> and
 * the limits its last admission applied. False when it has no entry. */
bool gh_quota_usage(struct gh_quota_table *t, const char *tenant, size_t tenant_len,
                    int64_t wall_ms, uint64_t used[GH_QUOTA_NMETRICS][GH_QUOTA_NPERIODS],
                    uint64_t limit[GH_QUOTA_NMETRICS][GH_QUOTA_NPERIODS]);

/* Called on the limits service thread for each threshold event that a
 * flush recorded for the first time (the audit log's quota.threshold). */
struct gh_store_limit_event;
typedef void (*gh_quota_event_cb)(void *arg, const struct gh_store_limit_event *ev);
/* Sets the callback; before the flusher starts. */
void gh_quota_on_event(struct gh_quota_table *t, gh_quota_event_cb cb, void *arg);

/* Limits service thread: writes what was counted since the last flush to the
 * store in one transaction, refreshes the totals, and records threshold
 * events. Counts that could not be written are kept for the next flush. */
int gh_quota_flush(struct gh_quota_table *t, struct gh_store *st, int64_t wall_ms,
                   struct gh_err *err);
/* Loads the stored usage of the current day and month (at start). */
int gh_quota_preload(struct gh_quota_table *t, struct gh_store *st, int64_t wall_ms,
                     struct gh_err *err);

/* Periods: "2026-11-22" and "2026-11" (UTC) for <wall_ms>; <out> has 11 bytes. */
void gh_quota_period_name(int period, int64_t wall_ms, char out[11]);
/* Seconds from <wall_ms> to the end of its period, at least 1. */
uint64_t gh_quota_period_left_s(int period, int64_t wall_ms);
/* "requests_per_day" etc. */
const char *gh_quota_metric_name(int metric, int period);

#endif
