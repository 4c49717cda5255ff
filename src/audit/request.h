/* Audit events of HTTP requests: what the connection, the proxy, the
 * authentication stage, the token endpoint and the admin API call to have
 * their events written (docs/audit-format.md names the fields).
 *
 * Data-plane workers write into their own ring (audit.h) with no lock and no
 * allocation. A route audited in strict mode holds its response until the
 * event is durable: the proxy when the upstream's head is parsed, the
 * connection for answers the gateway makes itself; the request resumes on
 * its worker's loop, or is answered 503 audit_unavailable when the event
 * could not be stored. Admin API mutations are submitted from the admin
 * thread (which may block), durable first in strict mode. */
#ifndef GH_AUDIT_REQUEST_H
#define GH_AUDIT_REQUEST_H

#include <stdbool.h>
#include <stddef.h>

#include "audit/event.h"

struct gh_req;
struct gh_worker;

enum gh_audit_hold {
    GH_AUDIT_HOLD_NONE = 0,
    GH_AUDIT_HOLD_PROXY, /* the upstream's head waits (proxy.c) */
    GH_AUDIT_HOLD_REPLY, /* the gateway's own answer waits in conn->out (conn.c) */
};

/* 0: <r>'s route does not audit this request; 1: async; 2: strict. */
int gh_audit_req_mode(struct gh_req *r);

/* conn.c, before a locally made answer with <status> is queued. Returns 0
 * (go on), 1 (queue it but hold it: gh_conn_audit_done releases it), or -1
 * (strict and the event could not be stored: answer 503 instead). */
int gh_audit_on_reply(struct gh_req *r, int status);

/* proxy.c, the upstream's final head parsed: true when the request must
 * wait (strict: gh_proxy_audit_done resumes it). Records the event once. */
bool gh_audit_on_upstream_head(struct gh_req *r);

/* The request ends (any way): its async event, if its route audits it and
 * none was written yet. Before the request's snapshot is left. */
void gh_audit_request_end(struct gh_worker *w, struct gh_req *r);

/* gh_worker_req_put: stops waiting for an event. */
void gh_audit_request_cancel(struct gh_worker *w, struct gh_req *r);

/* The auth stage refused <r> with <status> (401 or 403) and <code>. */
void gh_audit_auth_denied(struct gh_req *r, int status, const char *code);

/* POST /oauth/token, once the caller is authenticated: its token.issue
 * event is written when it is answered (r->au_jti: the token's id, set
 * when one is issued). */
void gh_audit_token_begin(struct gh_req *r);

/* Admin API (admin thread): <ev> (owned by the caller, alive until the
 * request is answered) is written when the request is answered, with the
 * status and outcome; durable first when audit.mode is strict. */
void gh_audit_admin_begin(struct gh_req *r, struct gh_audit_event *ev);
void gh_audit_admin_end(struct gh_req *r);

/* Sets <ev>'s actor from <p> (`key:<id>`, `sub:<subject>`, `anonymous`),
 * and its tenant when <with_tenant>. */
struct gh_principal;
void gh_audit_set_actor(struct gh_audit_event *ev, const struct gh_principal *p, bool with_tenant);

/* Fills the request fields of <ev> (method, path, request id, trace id,
 * client, user agent; tenant and actor from the principal). */
void gh_audit_fill_request(struct gh_audit_event *ev, const struct gh_req *r);
/* "success" below 400, "denied" for 401, 403 and 429, else "failed". */
enum gh_audit_outcome gh_audit_outcome_of(int status);

#endif
