/* The pipeline of DESIGN.md §2, as data. Each stage may answer early or
 * decline. */
#include "stages.h"

#include "admin/admin.h"
#include "auth/authn.h"
#include "audit/request.h"
#include "auth/tokens.h"
#include "core/clock.h"
#include "core/worker.h"
#include "hooks/stage.h"
#include "http/conn.h"
#include "idem/stage.h"
#include "limits/limits.h"
#include "proxy/proxy.h"
#include "proxy/router.h"
#include "telemetry/accesslog.h"
#include "telemetry/metrics.h"
#include "telemetry/trace.h"

/* trace: the caller's W3C trace context, or a new trace; never answers. */
static enum gh_stage_result stage_trace(struct gh_req *r)
{
    gh_trace_stage(r);
    return GH_STAGE_NEXT;
}

/* A stage's time span for its trace span: from its first call to the call
 * that did not suspend. The start is set before the stage runs: a stage
 * that answers (401, 429) ends the request inside its call, and the trace
 * record is built then, so a start set after the call came too late and
 * the refusal had no span. Returns the start it set (0: tracing is off, or
 * an earlier call set it). The clock is read only while tracing. */
static uint64_t timed_start(struct gh_req *r, uint64_t *start)
{
    if (!r->tr_on || *start != 0) return 0;
    *start = gh_now_ns();
    return *start;
}

/* The end of the span: <result> becomes 1 (passed) or 2 (answered). */
static enum gh_stage_result timed_end(struct gh_req *r, enum gh_stage_result res, uint64_t *end,
                                      uint8_t *result)
{
    if (!r->tr_on || res == GH_STAGE_SUSPEND) return res;
    *end = gh_now_ns();
    *result = res == GH_STAGE_NEXT ? 1 : 2;
    return res;
}

/* guard: size limits and target checks that need no route. */
static enum gh_stage_result stage_guard(struct gh_req *r)
{
    const struct gh_config_limits *lim = &r->snap->cfg->limits;

    if (r->head.framing.body == GH_BODY_LENGTH && lim->max_body_bytes &&
        r->head.framing.content_length > lim->max_body_bytes) {
        gh_conn_reply_error(r->conn, 413, "body_too_large", true);
        return GH_STAGE_DONE;
    }
    if (r->head.target_form == GH_TARGET_ASTERISK) {
        /* "OPTIONS *" asks about the gateway itself. */
        gh_conn_reply(r->conn, 200, "application/json", "{}\n", 3);
        return GH_STAGE_DONE;
    }
    if (gh_path_has_dot_segment(r->head.path)) {
        gh_conn_reply_error(r->conn, 400, "invalid_path", false);
        return GH_STAGE_DONE;
    }
    return GH_STAGE_NEXT;
}

/* tokens: the gateway's own endpoints, /oauth/token and the JWKS. */
static enum gh_stage_result stage_tokens(struct gh_req *r)
{
    switch (gh_tokens_stage(r)) {
    case 1: return GH_STAGE_NEXT;
    case 2: return GH_STAGE_SUSPEND;
    default: return GH_STAGE_DONE;
    }
}

/* route: host + path + method -> route. */
static enum gh_stage_result stage_route(struct gh_req *r)
{
    switch (gh_router_match(r->snap->router, r->head.authority, r->head.path, r->head.method_id,
                            &r->route)) {
    case GH_ROUTE_FOUND: return GH_STAGE_NEXT;
    case GH_ROUTE_METHOD_NOT_ALLOWED:
        gh_conn_reply_error(r->conn, 405, "method_not_allowed", false);
        return GH_STAGE_DONE;
    default: gh_conn_reply_error(r->conn, 404, "no_route", false); return GH_STAGE_DONE;
    }
}

/* authn + authz: the route's `auth`, `scopes` and `roles`. */
static enum gh_stage_result stage_auth(struct gh_req *r)
{
    enum gh_stage_result res;

    if (r->route->cfg->auth_mode == GH_ROUTE_AUTH_NONE) return GH_STAGE_NEXT;
    timed_start(r, &r->tr_auth0);
    switch (gh_authn_stage(r)) {
    case 1: res = GH_STAGE_NEXT; break;
    case 2: res = GH_STAGE_SUSPEND; break;
    default: res = GH_STAGE_DONE; break;
    }
    return timed_end(r, res, &r->tr_auth1, &r->tr_auth_result);
}

/* limits: quotas, rate limits, bulkheads (per tenant / key / route). */
static enum gh_stage_result stage_limits(struct gh_req *r)
{
    uint64_t t0 = timed_start(r, &r->tr_lim0);
    enum gh_stage_result res;

    switch (gh_limits_stage(r)) {
    case 1:
        /* Nothing to decide on this route: no span for it (unless an
         * earlier call of this request's suspended, and began one). */
        if (r->lim_nrules == 0 && !r->lim_counted && r->lim_nheld == 0 && t0 != 0) {
            r->tr_lim0 = 0;
            return GH_STAGE_NEXT;
        }
        res = GH_STAGE_NEXT;
        break;
    case 2: res = GH_STAGE_SUSPEND; break;
    default: res = GH_STAGE_DONE; break;
    }
    return timed_end(r, res, &r->tr_lim1, &r->tr_lim_result);
}

/* idempotency: replay the stored answer for a repeated Idempotency-Key. */
static enum gh_stage_result stage_idempotency(struct gh_req *r)
{
    if (!r->route->cfg->idempotency.enabled) return GH_STAGE_NEXT;
    switch (gh_idem_stage(r)) {
    case 1: return GH_STAGE_NEXT;
    case 2: return GH_STAGE_SUSPEND;
    default: return GH_STAGE_DONE;
    }
}

/* verify: a signed inbound webhook, where the route asks for one. Routes
 * that verify usually have `auth: none`: the signature is the credential. */
static enum gh_stage_result stage_verify(struct gh_req *r)
{
    if (r->route->wh == NULL) return GH_STAGE_NEXT;
    switch (gh_inbound_stage(r)) {
    case 1: return GH_STAGE_NEXT;
    case 2: return GH_STAGE_SUSPEND;
    default: return GH_STAGE_DONE;
    }
}

/* proxy: the terminal handler for the data plane. */
static enum gh_stage_result stage_proxy(struct gh_req *r)
{
    gh_proxy_start(r);
    return GH_STAGE_DONE;
}

static enum gh_stage_result stage_admin(struct gh_req *r)
{
    return gh_admin_handle(r) == 2 ? GH_STAGE_SUSPEND : GH_STAGE_DONE;
}

static const struct gh_stage proxy_stages[] = {
    {"trace", stage_trace},
    {"guard", stage_guard},
    {"tokens", stage_tokens},
    {"route", stage_route},
    {"auth", stage_auth},
    {"limits", stage_limits},
    /* verify first: a stored answer is never replayed to a request whose
     * signature was not checked (or whose delivery was seen already). */
    {"verify", stage_verify},
    {"idempotency", stage_idempotency},
    {"proxy", stage_proxy},
};

static const struct gh_stage admin_stages[] = {
    {"guard", stage_guard},
    {"admin", stage_admin},
};

static void run_from(struct gh_req *r, size_t first)
{
    const struct gh_stage *st = proxy_stages;
    size_t n = sizeof(proxy_stages) / sizeof(proxy_stages[0]);

    if (r->conn->listener->is_admin) {
        st = admin_stages;
        n = sizeof(admin_stages) / sizeof(admin_stages[0]);
    }
    for (size_t i = first; i < n; i++) {
        switch (st[i].on_request(r)) {
        case GH_STAGE_NEXT: continue;
        case GH_STAGE_SUSPEND: r->stage_index = (uint8_t)i; return;
        default: return;
        }
    }
    gh_conn_reply_error(r->conn, 500, "no_handler", true);
}

void gh_stages_run(struct gh_req *r)
{
    run_from(r, 0);
}

void gh_stages_resume(struct gh_req *r)
{
    run_from(r, r->stage_index);
}

void gh_stages_end(struct gh_worker *w, struct gh_req *r, bool answered)
{
    if (answered) gh_accesslog_request(w, r);
    gh_idem_request_end(w, r);
    gh_inbound_request_end(w, r);
    gh_audit_request_end(w, r);
    gh_trace_request_end(w, r);
    gh_metrics_request_end(w, r);
}
