/* The authn and authz stages, on the worker thread.
 *
 * A credential comes as "Authorization: Bearer <key or token>", in the
 * route's API-key header (default X-API-Key), or, only where a route names
 * `query_key_param`, in the query string; a gatehouse key found in any
 * other query parameter is refused (401), since URLs end up in logs.
 *
 * API keys: the key id is looked up in the worker's key directory (unknown:
 * 401 at once, no Argon2); a SHA-256 of the whole key is looked up in the
 * worker's verified-key cache (hit: no Argon2); a miss sends an Argon2id job
 * to the auth service and suspends the request until it comes back. Every
 * request checks the key's current status, expiry and tenant status in the
 * directory, so a revocation applies as soon as a directory without it is
 * published (within a second). */
#ifndef GH_AUTH_AUTHN_H
#define GH_AUTH_AUTHN_H

#include <stdint.h>

#include "auth/principal.h"
#include "core/str.h"

struct gh_req;
struct gh_worker;
struct gh_verify_job;
struct gh_authn_worker;

struct gh_authn_worker *gh_authn_worker_new(void);
void gh_authn_worker_free(struct gh_authn_worker *a);

/* The authn + authz stage: 1 = go on, 0 = answered, 2 = suspended. */
int gh_authn_stage(struct gh_req *r);

/* Authenticates the request by an API key alone (for the gateway's own
 * endpoints, without a route): 1 = principal set, 0 = answered (401/403),
 * 2 = suspended (the caller's stage runs again). */
int gh_authn_api_key(struct gh_req *r);

/* The request ends while its Argon2 job is out: the job is dropped when it
 * comes back. */
void gh_authn_cancel(struct gh_req *r);

/* Worker thread: a job came back. */
void gh_authn_job_done(struct gh_worker *w, struct gh_verify_job *job);

/* Worker thread, every tick: hands last-used times to the auth service. */
void gh_authn_tick(struct gh_worker *w);

/* Synchronous API-key check for the admin thread (Argon2 inline on a miss:
 * the admin thread is not a data-plane loop). Fills <out> and returns 0, or
 * returns the HTTP status to answer (401/403) with *<code> set. */
int gh_authn_api_key_sync(struct gh_worker *w, gh_str key, struct gh_principal *out,
                          const char **code);

/* Finds a credential in the request (see above). Returns the status to
 * answer (401) with *<code> when a refused form was used, else 0 with
 * <cred> empty when there is none. */
int gh_authn_credential(const struct gh_req *r, gh_str *cred, const char **code);

/* The header that carried <cred> (for removal before the upstream), or NULL
 * when it came from the query string. */
const struct gh_http_header *gh_authn_credential_header(const struct gh_req *r, gh_str cred);

#endif
