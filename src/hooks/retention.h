/* Webhook retention (docs/webhooks.md, "Retention"): messages older than
 * webhooks.retention leave the store with their deliveries and those
 * deliveries' attempts, except a message with a delivery still in flight,
 * due later (a retry gap longer than the retention), or pending and active
 * within the retention (a replay), which waits for a later pass.
 *
 * The dispatcher thread runs it in steps between its deliveries: a pass
 * every gh_hooks_retention_interval_ns(), each step one store transaction
 * over at most GH_HOOKS_RETENTION_BATCH messages (gh_store_hook_purge), so
 * a pass over a large backlog never holds deliveries or the store's writer
 * for long. On PostgreSQL every node runs its passes; their transactions
 * lock what they delete and skip what another node holds.
 *
 * Not thread-safe: one owner (the dispatcher thread). */
#ifndef GH_HOOKS_RETENTION_H
#define GH_HOOKS_RETENTION_H

#include <stdbool.h>
#include <stdint.h>

#include "store/store.h"

#define GH_HOOKS_RETENTION_BATCH 500

struct gh_hooks_retention {
    bool active;                      /* a pass is under way */
    int64_t after_seq;                /* where its next step starts */
    int64_t cutoff;                   /* unix ms: messages created before it go */
    struct gh_store_hook_purged pass; /* summed over the pass's steps */
    uint64_t next_ns;                 /* monotonic: when the next step or pass is due */
};

/* Time between two passes for <retention_ms>: an eighth of it, at least
 * 1 s and at most 10 min (a message outlives its retention by at most
 * that, plus the pass). */
uint64_t gh_hooks_retention_interval_ns(uint64_t retention_ms);

/* No pass under way; the first is due one interval after <now_ns>. */
void gh_hooks_retention_init(struct gh_hooks_retention *r, uint64_t retention_ms, uint64_t now_ns);

/* When due at <now_ns> (monotonic), runs one step for <owner> (the
 * dispatcher's claim owner) and <retention_ms>, and fills <step> with what
 * it deleted; returns true then (<*rc> the store's answer). A pass ends
 * when a step finds no more old messages or fails; its totals are logged.
 * Returns false, changing nothing, when not due. */
bool gh_hooks_retention_step(struct gh_hooks_retention *r, struct gh_store *st, const char *owner,
                             uint64_t retention_ms, uint64_t now_ns,
                             struct gh_store_hook_purged *step, int *rc);

#endif
