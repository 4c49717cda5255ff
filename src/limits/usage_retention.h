/* Usage retention (limits.usage_retention, docs/internals/store.md): usage
 * rows of periods that ended longer ago than the retention (a day's row
 * once the whole day is, a month's once the whole month is) and limit
 * events older than it leave the store.
 *
 * The quota flusher thread runs a pass after its first flush and then once
 * an hour (a minute after a pass the store refused, 10 s after one that
 * stopped at its cap): batches of GH_STORE_USAGE_PURGE_MAX rows of each
 * table, one transaction each, until a batch is not full or
 * GH_USAGE_RETENTION_BATCHES ran. On PostgreSQL every node runs its passes; a batch skips the rows
 * another holds. The counters are read by any thread (/metrics).
 *
 * One owner calls gh_usage_retention_run (the flusher thread). */
#ifndef GH_LIMITS_USAGE_RETENTION_H
#define GH_LIMITS_USAGE_RETENTION_H

#include <stdatomic.h>
#include <stdint.h>

#include "store/store.h"

#define GH_USAGE_RETENTION_BATCHES 20 /* batches per pass: 20,000 rows of each table */

struct gh_usage_retention {
    uint64_t retention_ms;
    uint64_t next_ns; /* monotonic: when the next pass is due (0: now) */
    _Atomic uint64_t deleted_usage, deleted_events, failures;
};

void gh_usage_retention_init(struct gh_usage_retention *r, uint64_t retention_ms);

/* Runs a pass when one is due at <now_ns> (monotonic), deleting what is
 * older than <retention_ms> before <wall_ms>; logs what it deleted (or why
 * the store refused). Does nothing when not due. */
void gh_usage_retention_run(struct gh_usage_retention *r, struct gh_store *st, uint64_t now_ns,
                            int64_t wall_ms);

#endif
