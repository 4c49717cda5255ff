/* Usage retention passes (see usage_retention.h). */
#include "limits/usage_retention.h"

#include <stdbool.h>

#include "core/log.h"
#include "limits/quota.h"

#define NS_PER_S     1000000000ull
#define PASS_EVERY   (3600 * NS_PER_S) /* a day's rows go within the hour after their time */
#define AFTER_REFUSE (60 * NS_PER_S)
/* A pass that stopped at its cap: the next soon, so that a backlog (a store
 * from before retention, or a retention made shorter) goes at about 2,000
 * rows a second and the writer is free most of the time meanwhile. */
#define AFTER_FULL (10 * NS_PER_S)

void gh_usage_retention_init(struct gh_usage_retention *r, uint64_t retention_ms)
{
    r->retention_ms = retention_ms;
    r->next_ns = 0;
    atomic_init(&r->deleted_usage, 0);
    atomic_init(&r->deleted_events, 0);
    atomic_init(&r->failures, 0);
}

void gh_usage_retention_run(struct gh_usage_retention *r, struct gh_store *st, uint64_t now_ns,
                            int64_t wall_ms)
{
    struct gh_store_usage_purged batch, pass = {0};
    struct gh_err err = {0};
    int64_t cutoff = wall_ms - (int64_t)r->retention_ms;
    char day[11], month[11];
    int rc = GH_OK;
    bool full = false;

    if (st == NULL || now_ns < r->next_ns) return;
    /* The cutoff's periods, named as the quota table names them. */
    gh_quota_period_name(GH_QUOTA_DAY, cutoff < 0 ? 0 : cutoff, day);
    gh_quota_period_name(GH_QUOTA_MONTH, cutoff < 0 ? 0 : cutoff, month);
    for (int i = 0; i < GH_USAGE_RETENTION_BATCHES; i++) {
        rc = gh_store_usage_purge(st, day, month, GH_STORE_USAGE_PURGE_MAX, &batch, &err);
        if (rc != GH_OK) break;
        pass.usage += batch.usage;
        pass.events += batch.events;
        atomic_fetch_add_explicit(&r->deleted_usage, batch.usage, memory_order_relaxed);
        atomic_fetch_add_explicit(&r->deleted_events, batch.events, memory_order_relaxed);
        full = batch.usage == GH_STORE_USAGE_PURGE_MAX || batch.events == GH_STORE_USAGE_PURGE_MAX;
        if (!full) break;
    }
    if (pass.usage > 0 || pass.events > 0)
        gh_log_info("usage retention: deleted %llu usage rows and %llu limit events older than "
                    "limits.usage_retention",
                    (unsigned long long)pass.usage, (unsigned long long)pass.events);
    if (rc != GH_OK) {
        atomic_fetch_add_explicit(&r->failures, 1, memory_order_relaxed);
        gh_log_warn("usage retention: the store refused a batch (next try in a minute): %s",
                    err.msg);
    }
    r->next_ns = now_ns + (rc != GH_OK ? AFTER_REFUSE : full ? AFTER_FULL : PASS_EVERY);
}
