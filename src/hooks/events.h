/* Publishing webhook events (docs/webhooks.md, "Events"): a message for a
 * tenant, fanned out by the store to a delivery per subscribed endpoint in
 * the same transaction, then a poke to the dispatcher. Used by
 * `POST /v1/events` and by the gateway for the events it emits itself
 * (key.created, key.rotated, key.revoked, quota.warning, quota.exceeded,
 * tenant.suspended, webhook.endpoint_disabled).
 *
 * Threading: blocks on the store. Never from a worker event loop. */
#ifndef GH_HOOKS_EVENTS_H
#define GH_HOOKS_EVENTS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"
#include "hooks/sign.h"

struct gh_store;
struct gh_hooks_dispatcher;

/* Publishes (<msg_id> or a new "msg_..." when NULL or "", <type>, <payload>
 * JSON text) for <tenant>; the first attempts are due after entry 0 of
 * <d>'s schedule (at once when <d> is NULL: the quota flusher's events,
 * which the dispatcher finds at its next look at the queue). Writes the
 * message id into <id_out> (GH_STORE_HOOK_MSG_ID_SIZE bytes, may be NULL),
 * sets *deliveries and *duplicate (an id already published: nothing new).
 * Pokes <d> (may be NULL) when deliveries were queued. The store's codes. */
int gh_hooks_publish(struct gh_store *st, struct gh_hooks_dispatcher *d, const char *tenant,
                     const char *msg_id, const char *type, const char *payload, size_t len,
                     char *id_out, size_t *deliveries, bool *duplicate, struct gh_err *err);

/* An event the gateway emits about <tenant>: gh_hooks_publish with a new
 * id, for callers that need no answer. */
int gh_hooks_emit(struct gh_store *st, struct gh_hooks_dispatcher *d, const char *tenant,
                  const char *type, const char *payload, struct gh_err *err);

#endif
