/* Audit events of HTTP requests (see request.h). */
#include "audit/request.h"

#include <stdio.h>
#include <string.h>

#include "audit/audit.h"
#include "core/clock.h"
#include "core/runtime.h"
#include "core/worker.h"
#include "http/conn.h"
#include "proxy/proxy.h"
#include "proxy/router.h"
#include "store/store.h"
#include "telemetry/tracectx.h"

enum gh_audit_outcome gh_audit_outcome_of(int status)
{
    if (status > 0 && status < 400) return GH_AUDIT_SUCCESS;
    if (status == 401 || status == 403 || status == 429) return GH_AUDIT_DENIED;
    return GH_AUDIT_FAILED;
}

void gh_audit_set_actor(struct gh_audit_event *ev, const struct gh_principal *p, bool with_tenant)
{
    switch (p->kind) {
    case GH_PRINCIPAL_API_KEY:
        if (with_tenant) GH_AUDIT_SET(ev, tenant, gh_str_cstr(p->tenant));
        GH_AUDIT_SET(ev, actor, gh_str_cstr(p->subject)); /* "key:<id>" */
        break;
    case GH_PRINCIPAL_JWT: {
        char actor[GH_AUDIT_ACTOR_SIZE];
        snprintf(actor, sizeof(actor), "sub:%s", p->subject);
        if (with_tenant) GH_AUDIT_SET(ev, tenant, gh_str_cstr(p->tenant));
        GH_AUDIT_SET(ev, actor, gh_str_cstr(actor));
        break;
    }
    default: GH_AUDIT_SET(ev, actor, GH_STR_LIT("anonymous")); break;
    }
}

void gh_audit_fill_request(struct gh_audit_event *ev, const struct gh_req *r)
{
    const struct gh_conn *c = r->conn;
    const struct gh_http_header *ua;

    gh_audit_set_actor(ev, &r->principal, true);
    GH_AUDIT_SET(ev, method, r->head.method);
    GH_AUDIT_SET(ev, path, r->head.path);
    GH_AUDIT_SET(ev, request_id, gh_str_make(r->id, r->id_len));
    if (r->tr_on) {
        char hex[33];
        gh_trace_hex(hex, r->tr_trace_id, 16);
        GH_AUDIT_SET(ev, trace_id, gh_str_make(hex, 32));
    }
    GH_AUDIT_SET(ev, client_ip, gh_str_make(c->peer_ip, c->peer_ip_len));
    ua = gh_http_find_header(r->head.headers, r->head.nheaders, "user-agent");
    if (ua != NULL) GH_AUDIT_SET(ev, user_agent, ua->value);
}

static struct gh_audit_worker *audit_of(const struct gh_req *r)
{
    return r->conn->worker->audit;
}

int gh_audit_req_mode(struct gh_req *r)
{
    const struct gh_config_route_audit *a;
    int mode = 0;

    if (r->au_mode) return r->au_mode - 1;
    if (r->route && audit_of(r)) {
        a = &r->route->cfg->audit;
        if (a->enabled &&
            (a->methods == 0 || (a->methods & gh_route_method_bit(r->head.method_id))) &&
            (a->path_prefix == NULL ||
             gh_str_has_prefix(r->head.path, gh_str_cstr(a->path_prefix))))
            mode = (a->strict >= 0 ? a->strict : r->snap->cfg->audit.strict) ? 2 : 1;
    }
    r->au_mode = (uint8_t)(mode + 1);
    return mode;
}

/* Writes <r>'s http.request event with <status> into the worker's ring;
 * returns its ticket. */
static uint64_t record(struct gh_req *r, int status, uint64_t end_ns, bool strict)
{
    struct gh_audit_worker *aw = audit_of(r);
    struct gh_audit_event *ev = gh_audit_worker_slot(aw);

    gh_audit_fill_request(ev, r);
    GH_AUDIT_SET(ev, action, GH_STR_LIT(GH_STORE_AUDIT_REQUEST_ACTION));
    GH_AUDIT_SET(ev, resource, gh_str_cstr(r->route->cfg->name));
    ev->outcome = gh_audit_outcome_of(status);
    if (r->error) GH_AUDIT_SET(ev, reason, gh_str_cstr(r->error));
    ev->status = (uint16_t)(status > 0 ? status : 0);
    ev->latency_us = end_ns > r->t_start ? (end_ns - r->t_start) / 1000 : 0;
    gh_audit_params_from_query(ev, r->head.query, r->snap->cfg->audit.param_prefix);
    r->au_recorded = true;
    return gh_audit_worker_push(aw, strict);
}

/* The writer's answer for a held request, on its worker's loop. */
static void held_done(struct gh_audit_waiter *wt, bool ok)
{
    struct gh_req *r = (struct gh_req *)((char *)wt - offsetof(struct gh_req, au_waiter));
    enum gh_audit_hold hold = r->au_hold;

    r->au_hold = GH_AUDIT_HOLD_NONE;
    if (hold == GH_AUDIT_HOLD_PROXY)
        gh_proxy_audit_done(r, ok);
    else if (hold == GH_AUDIT_HOLD_REPLY)
        gh_conn_audit_done(r->conn, ok);
}

static void hold(struct gh_req *r, enum gh_audit_hold kind, uint64_t ticket)
{
    r->au_hold = (uint8_t)kind;
    r->au_waiter.done = held_done;
    gh_audit_worker_wait(audit_of(r), &r->au_waiter, ticket);
}

static int admin_reply(struct gh_req *r, int status);
static void token_reply(struct gh_req *r, int status);

int gh_audit_on_reply(struct gh_req *r, int status)
{
    if (r->au_admin) return admin_reply(r, status);
    if (r->au_token) token_reply(r, status);
    if (r->au_hold) {
        /* Another answer replaces the held one (a timeout, an upstream
         * error): stop waiting; the event is written or counted anyway. */
        gh_audit_worker_cancel(audit_of(r), &r->au_waiter);
        r->au_hold = GH_AUDIT_HOLD_NONE;
        return 0;
    }
    if (r->au_recorded || gh_audit_req_mode(r) != 2) return 0;
    hold(r, GH_AUDIT_HOLD_REPLY, record(r, status, gh_now_ns(), true));
    return 1;
}

bool gh_audit_on_upstream_head(struct gh_req *r)
{
    int mode;
    if (r->au_recorded || r->au_hold || (mode = gh_audit_req_mode(r)) != 2) return false;
    hold(r, GH_AUDIT_HOLD_PROXY, record(r, r->resp.status, r->t_up_head, true));
    return true;
}

void gh_audit_request_end(struct gh_worker *w, struct gh_req *r)
{
    (void)w;
    if (r->au_recorded || r->route == NULL || gh_audit_req_mode(r) == 0) return;
    record(r, r->status, gh_now_ns(), false);
}

void gh_audit_request_cancel(struct gh_worker *w, struct gh_req *r)
{
    if (r->au_waiter.linked) gh_audit_worker_cancel(w->audit, &r->au_waiter);
    r->au_hold = GH_AUDIT_HOLD_NONE;
}

void gh_audit_auth_denied(struct gh_req *r, int status, const char *code)
{
    struct gh_audit_worker *aw = audit_of(r);
    struct gh_audit_event *ev;

    if (aw == NULL || !r->snap->cfg->audit.events.auth_failures) return;
    ev = gh_audit_worker_slot(aw);
    gh_audit_fill_request(ev, r);
    GH_AUDIT_SET(ev, action, GH_STR_LIT("auth.denied"));
    if (r->route) GH_AUDIT_SET(ev, resource, gh_str_cstr(r->route->cfg->name));
    ev->outcome = GH_AUDIT_DENIED;
    GH_AUDIT_SET(ev, reason, gh_str_cstr(code));
    ev->status = (uint16_t)status;
    ev->latency_us = (gh_now_ns() - r->t_start) / 1000;
    gh_audit_params_from_query(ev, r->head.query, r->snap->cfg->audit.param_prefix);
    gh_audit_worker_push(aw, false);
}

void gh_audit_token_begin(struct gh_req *r)
{
    if (audit_of(r) && r->snap->cfg->audit.events.admin) {
        r->au_token = true;
        r->au_jti[0] = '\0';
    }
}

static void token_reply(struct gh_req *r, int status)
{
    struct gh_audit_worker *aw = audit_of(r);
    struct gh_audit_event *ev = gh_audit_worker_slot(aw);
    char res[GH_AUDIT_RESOURCE_SIZE];
    bool issued = status == 200 && r->au_jti[0];

    r->au_token = false;
    gh_audit_fill_request(ev, r);
    GH_AUDIT_SET(ev, action, GH_STR_LIT("token.issue"));
    snprintf(res, sizeof(res), "tokens%s%s", issued ? "/" : "", issued ? r->au_jti : "");
    GH_AUDIT_SET(ev, resource, gh_str_cstr(res));
    ev->outcome = gh_audit_outcome_of(status);
    if (r->error) GH_AUDIT_SET(ev, reason, gh_str_cstr(r->error));
    ev->status = (uint16_t)status;
    ev->latency_us = (gh_now_ns() - r->t_start) / 1000;
    /* The form's fields (grant_type, scope), hashed or redacted. */
    if (r->body_collected)
        gh_audit_params_from_query(ev, r->body_slice, r->snap->cfg->audit.param_prefix);
    gh_audit_worker_push(aw, false);
}

/* ---- admin API (admin thread) ---- */

void gh_audit_admin_begin(struct gh_req *r, struct gh_audit_event *ev)
{
    struct gh_audit_service *s = r->conn->worker->rt->audit;
    if (s == NULL || !r->snap->cfg->audit.events.admin) return;
    gh_audit_event_new(ev);
    gh_audit_fill_request(ev, r);
    r->au_admin = ev;
}

void gh_audit_admin_end(struct gh_req *r)
{
    r->au_admin = NULL;
}

static int admin_reply(struct gh_req *r, int status)
{
    struct gh_audit_event *ev = r->au_admin;
    struct gh_audit_service *s = r->conn->worker->rt->audit;

    r->au_admin = NULL; /* one event per call, whatever answers follow */
    ev->status = (uint16_t)status;
    ev->outcome = gh_audit_outcome_of(status);
    if (r->error && ev->reason[0] == '\0') GH_AUDIT_SET(ev, reason, gh_str_cstr(r->error));
    ev->latency_us = (gh_now_ns() - r->t_start) / 1000;
    if (gh_audit_submit(s, ev, r->snap->cfg->audit.strict) != GH_OK && r->snap->cfg->audit.strict)
        return -1;
    return 0;
}
