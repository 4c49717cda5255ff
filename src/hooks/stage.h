/* The `verify` stage: a route with `webhook_verify` passes a request on only
 * when its whole body, read into memory first, carries a valid signature
 * that was not seen before. Runs after `limits` and before `proxy`
 * (docs/ARCHITECTURE.md §2), so nothing of a refused request reaches the
 * upstream. */
#ifndef GH_HOOKS_STAGE_H
#define GH_HOOKS_STAGE_H

struct gh_req;

/* Returns 1 (verified, or the route does not ask: go on), 2 (suspended
 * while the body arrives or while Redis records the message; the stages
 * resume) or 0 (answered: 401 with missing_signature, invalid_signature,
 * stale_timestamp or replayed; 413 over max_body; 503 replay_store_full,
 * or replay_store_unavailable under on_redis_error: deny). After 0, <req>
 * may already be reused: the caller must not touch it. */
int gh_inbound_stage(struct gh_req *req);

/* At the end of every request: a Redis record still out is cancelled (the
 * request failed); when the request failed (no answer, 5xx, 408, 429) the
 * replay keys it recorded are taken back, locally and in Redis, so the
 * sender's retry of the same message is not refused as a replay. */
struct gh_worker;
void gh_inbound_request_end(struct gh_worker *w, struct gh_req *req);

/* The answer's status (req->status) is set and none of it is sent yet: when
 * it is one the sender retries on (5xx, 408, 429), the replay keys go back
 * now, not at the request's end, which comes only once the answer is
 * written: the retry, sent as soon as the answer is read, may reach another
 * worker before that. */
void gh_inbound_on_status(struct gh_worker *w, struct gh_req *req);

/* A worker's state for the stage: keyed HMAC contexts for the last few
 * verify routes it saw (made on the worker at a route's first check). */
struct gh_wh_worker;
/* Frees it (NULL is fine); on the worker's thread or after it stopped. */
void gh_inbound_worker_free(struct gh_wh_worker *ww);

#endif
