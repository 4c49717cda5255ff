/* The `idempotency` stage (docs/idempotency.md, after the IETF draft "The
 * Idempotency-Key HTTP Header Field"): on a route with `idempotency`, a
 * request carrying an Idempotency-Key is sent upstream once; a repeat with
 * the same key gets the stored answer (Idempotent-Replayed: true) without
 * touching the upstream, 409 while the first is still in flight, 422 when
 * the key was used for a different request (method, path and query, body).
 * Runs after `limits` and before `verify` (docs/ARCHITECTURE.md §2).
 *
 * Records are kept in Redis for every node (idempotency.store: redis,
 * redis_store.h) or in the process (table.h), under a digest of tenant,
 * route and key (record.h). */
#ifndef GH_IDEM_STAGE_H
#define GH_IDEM_STAGE_H

#include <stddef.h>

struct gh_req;
struct gh_worker;

/* Returns 1 (go on: the route does not ask, the method is not covered, no
 * key and none required, or the key is now claimed), 2 (suspended while
 * the body arrives or Redis answers; the stages resume) or 0 (answered:
 * 400 invalid_idempotency_key or idempotency_key_required, 409
 * idempotency_in_progress, 422 idempotency_key_reused, 413 over max_body,
 * 503 idempotency_store_full or idempotency_store_unavailable, or the
 * stored answer). After 0, <req> may already be reused. */
int gh_idem_stage(struct gh_req *req);

/* The proxy's hooks, called only when req->idem is set: the upstream's
 * final response head was relayed; <n> bytes of its (decoded) body were
 * relayed; the whole response was received (a status below 500 that fits
 * max_response is then stored at once, for the route's ttl; any other
 * answer takes the claim back). */
void gh_idem_on_head(struct gh_req *req);
void gh_idem_on_body(struct gh_req *req, const char *data, size_t n);
void gh_idem_on_complete(struct gh_req *req);

/* At the end of every request: a claim still held (no complete upstream
 * answer: a failure, a refusal by a later stage, the client gone) is taken
 * back so that a retry can proceed; a claim still out in Redis is
 * cancelled and released behind. Frees the request's state. */
void gh_idem_request_end(struct gh_worker *w, struct gh_req *req);

#endif
