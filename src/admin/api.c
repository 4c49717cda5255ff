/* The admin API (/v1/...) on the admin listener: JSON in and out,
 * authenticated by an API key with role "admin", on the system tenant
 * (operators: everything) or on a tenant (that tenant's admins: only their
 * tenant; another tenant's objects answer 404, as if they did not exist).
 *
 * Endpoints are rows in one table: method, path pattern, who may call it,
 * handler. Store calls are synchronous: this runs on the admin thread,
 * never on a data-plane worker. docs/openapi.yaml describes every row. */
#include "admin/api.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/api_audit.h"
#include "admin/api_call.h"
#include "admin/api_webhooks.h"
#include "admin/ops.h"
#include "audit/request.h"
#include "auth/authn.h"
#include "auth/service.h"
#include "core/clock.h"
#include "core/runtime.h"
#include "core/worker.h"
#include "http/conn.h"
#include "limits/policy.h"
#include "limits/quota.h"

/* ---- answers ---- */

static void reply_json(struct call *c, int status, json_t *doc)
{
    char *text = json_dumps(doc, JSON_COMPACT), *lined = NULL;
    size_t n = text ? strlen(text) : 0;

    json_decref(doc);
    if (text != NULL) lined = realloc(text, n + 2);
    if (lined == NULL) {
        free(text); /* realloc left it as it was */
        gh_conn_reply_error(c->r->conn, 500, "internal_error", false);
        return;
    }
    lined[n++] = '\n';
    gh_conn_reply(c->r->conn, status, "application/json", lined, n);
    free(lined);
}

/* {"error": code, "message": ..., "request_id": ...}; <message> must never
 * carry a secret (store messages are written to be safe). */
static void reply_error(struct call *c, int status, const char *code, const char *message)
{
    if (c->r->au_admin) GH_AUDIT_SET(c->r->au_admin, reason, gh_str_cstr(code));
    json_t *doc = json_pack("{s:s, s:s, s:s%}", "error", code, "message", message ? message : code,
                            "request_id", c->r->id, (size_t)c->r->id_len);
    reply_json(c, status, doc);
}

static void reply_store_error(struct call *c, int rc, const struct gh_err *err)
{
    const char *code = gh_ops_store_error_code(rc);

    switch (rc) {
    case GH_STORE_NOT_FOUND: reply_error(c, 404, code, err->msg); return;
    case GH_STORE_CONFLICT: reply_error(c, 409, code, err->msg); return;
    case GH_STORE_INVALID: reply_error(c, 422, code, err->msg); return;
    /* The store is out of reach (PostgreSQL restarting, failing over): the
     * call changed nothing and may be retried; the next call reconnects. */
    case GH_STORE_UNAVAILABLE:
        reply_error(c, 503, code, "the store is unavailable; retry later");
        return;
    default: reply_error(c, 500, code, "the store failed; see the gateway log"); return;
    }
}

static void changed(struct call *c)
{
    /* Make the key directory catch up now rather than at the next poll. */
    if (c->r->conn->worker->rt->auth) gh_auth_service_poke(c->r->conn->worker->rt->auth);
}

/* ---- audit (issue 5) ---- */

/* The resource an admin call acts on: tenants/<t>[/keys/<k>], set once the
 * object exists (creation) or from the path. */
static void audit_resource(struct call *c, const char *tenant, const char *key)
{
    char res[GH_AUDIT_RESOURCE_SIZE];
    struct gh_audit_event *ev = c->r->au_admin;

    if (ev == NULL) return;
    snprintf(res, sizeof(res), "tenants/%s%s%s", tenant, key ? "/keys/" : "", key ? key : "");
    GH_AUDIT_SET(ev, resource, gh_str_cstr(res));
}

/* ---- request helpers ---- */

/* Checks that the body object has only <allowed> fields. */
static bool only_fields(struct call *c, const char *const *allowed)
{
    const char *k;
    json_t *v;
    if (c->body == NULL) return true;
    json_object_foreach(c->body, k, v)
    {
        size_t i;
        for (i = 0; allowed[i]; i++)
            if (strcmp(k, allowed[i]) == 0) break;
        if (allowed[i] == NULL) {
            char msg[160];
            char kb[65];
            snprintf(msg, sizeof(msg), "unknown field \"%s\"", gh_utf8_clip(k, kb, sizeof(kb)));
            reply_error(c, 400, "unknown_field", msg);
            return false;
        }
    }
    return true;
}

/* A string field: NULL when absent; false (answered) when the type is wrong. */
static bool str_field(struct call *c, const char *name, const char **out)
{
    json_t *v = c->body ? json_object_get(c->body, name) : NULL;
    *out = NULL;
    if (v == NULL || json_is_null(v)) return true;
    if (!json_is_string(v)) {
        char msg[96];
        snprintf(msg, sizeof(msg), "%s must be a string", name);
        reply_error(c, 400, "invalid_type", msg);
        return false;
    }
    *out = json_string_value(v);
    return true;
}

static bool int_field(struct call *c, const char *name, bool *present, int64_t *out)
{
    json_t *v = c->body ? json_object_get(c->body, name) : NULL;
    *present = false;
    if (v == NULL || json_is_null(v)) return true;
    if (!json_is_integer(v) || json_integer_value(v) < 0) {
        char msg[96];
        snprintf(msg, sizeof(msg), "%s must be a non-negative integer", name);
        reply_error(c, 400, "invalid_type", msg);
        return false;
    }
    *present = true;
    *out = (int64_t)json_integer_value(v);
    return true;
}

/* ?cursor=...&limit=...&status=... (values are URL-safe by construction;
 * anything else is refused). */
static bool query_value(gh_str q, const char *name, char *out, size_t size)
{
    size_t nl = strlen(name), i = 0;
    out[0] = '\0';
    while (i < q.len) {
        size_t e = i;
        while (e < q.len && q.ptr[e] != '&')
            e++;
        if (e - i > nl && memcmp(q.ptr + i, name, nl) == 0 && q.ptr[i + nl] == '=') {
            size_t vl = e - i - nl - 1;
            if (vl >= size) return false;
            memcpy(out, q.ptr + i + nl + 1, vl);
            out[vl] = '\0';
            return true;
        }
        i = e + 1;
    }
    return true;
}

bool gh_api_limit_value(const char *v, size_t *n)
{
    char *end;
    long got;

    if (v[0] == '\0') return true;
    /* Digits only: strtol alone would also take "+5" and " 5". */
    if (v[0] < '0' || v[0] > '9') return false;
    got = strtol(v, &end, 10);
    if (*end || got < 1 || got > GH_STORE_LIST_MAX) return false;
    *n = (size_t)got;
    return true;
}

static bool page_params(struct call *c, struct gh_store_page *page, char *cursor, size_t csize)
{
    char limit[16];
    size_t n = 50;
    if (!query_value(c->r->head.query, "cursor", cursor, csize) ||
        !query_value(c->r->head.query, "limit", limit, sizeof(limit))) {
        reply_error(c, 400, "invalid_query", "cursor or limit is malformed");
        return false;
    }
    if (!gh_api_limit_value(limit, &n)) {
        reply_error(c, 400, "invalid_query", "limit must be between 1 and 200");
        return false;
    }
    page->cursor = cursor[0] ? cursor : NULL;
    page->limit = n;
    return true;
}

static json_t *page_doc(json_t *items, const struct gh_store_page *page)
{
    return json_pack("{s:o, s:s?}", "items", items, "next_cursor",
                     page->next[0] ? page->next : NULL);
}

/* For the endpoint files (api_call.h). */
void gh_api_reply_json(struct call *c, int status, json_t *doc)
{
    reply_json(c, status, doc);
}

void gh_api_reply_error(struct call *c, int status, const char *code, const char *message)
{
    reply_error(c, status, code, message);
}

void gh_api_reply_store_error(struct call *c, int rc, const struct gh_err *err)
{
    reply_store_error(c, rc, err);
}

bool gh_api_only_fields(struct call *c, const char *const *allowed)
{
    return only_fields(c, allowed);
}

bool gh_api_str_field(struct call *c, const char *name, const char **out)
{
    return str_field(c, name, out);
}

bool gh_api_query_value(struct call *c, const char *name, char *out, size_t size)
{
    return query_value(c->r->head.query, name, out, size);
}

bool gh_api_page_params(struct call *c, struct gh_store_page *page, char *cursor, size_t csize)
{
    return page_params(c, page, cursor, csize);
}

json_t *gh_api_page_doc(json_t *items, const struct gh_store_page *page)
{
    return page_doc(items, page);
}

/* ---- handlers ---- */

static void h_whoami(struct call *c)
{
    json_t *doc = json_pack("{s:s, s:s, s:s, s:s, s:s, s:b}", "tenant_id", c->who.tenant, "subject",
                            c->who.subject, "key_id", c->who.key_id, "roles", c->who.roles,
                            "scopes", c->who.scopes, "operator", gh_principal_is_operator(&c->who));
    reply_json(c, 200, doc);
}

static void h_tenant_create(struct call *c)
{
    static const char *const fields[] = {"name", "plan", NULL};
    struct gh_store_tenant t;
    struct gh_err err = {0};
    const char *name, *plan;
    int rc;

    if (!only_fields(c, fields) || !str_field(c, "name", &name) || !str_field(c, "plan", &plan))
        return;
    if (name == NULL) {
        reply_error(c, 422, "invalid_field", "name is required");
        return;
    }
    memset(&t, 0, sizeof(t));
    snprintf(t.name, sizeof(t.name), "%s", name);
    if (strlen(name) >= sizeof(t.name) || (plan && strlen(plan) >= sizeof(t.plan))) {
        reply_error(c, 422, "invalid_field", "name and plan have at most 64 characters");
        return;
    }
    if (plan) snprintf(t.plan, sizeof(t.plan), "%s", plan);
    rc = gh_store_tenant_create(c->st, &t, &err);
    if (rc != GH_OK) {
        reply_store_error(c, rc, &err);
        return;
    }
    audit_resource(c, t.id, NULL);
    changed(c);
    reply_json(c, 201, gh_ops_tenant_json(&t));
}

static void h_tenant_list(struct call *c)
{
    struct gh_store_page page = {0};
    struct gh_err err = {0};
    char cursor[GH_STORE_CURSOR_SIZE + 1], status[16];
    enum gh_store_tenant_status filter = GH_STORE_TENANT_ANY;
    json_t *items;

    if (!page_params(c, &page, cursor, sizeof(cursor))) return;
    if (!query_value(c->r->head.query, "status", status, sizeof(status))) status[0] = '?';
    if (status[0]) {
        filter = gh_store_tenant_status_parse(status);
        if (filter == GH_STORE_TENANT_ANY) {
            reply_error(c, 400, "invalid_query", "status must be active or suspended");
            return;
        }
    }
    items = json_array();
    if (!gh_principal_is_operator(&c->who)) {
        /* A tenant admin sees its own tenant only. */
        struct gh_store_tenant t;
        if (gh_store_tenant_get(c->st, c->who.tenant, &t, &err) == GH_OK &&
            (filter == GH_STORE_TENANT_ANY || t.status == filter) && page.cursor == NULL)
            json_array_append_new(items, gh_ops_tenant_json(&t));
        reply_json(c, 200, page_doc(items, &page));
        return;
    }
    struct gh_store_tenant *out = calloc(page.limit, sizeof(*out));
    int rc = out ? gh_store_tenant_list(c->st, filter, &page, out, &err) : GH_ERROR;
    if (rc != GH_OK) {
        free(out);
        json_decref(items);
        reply_store_error(c, rc, &err);
        return;
    }
    for (size_t i = 0; i < page.count; i++)
        json_array_append_new(items, gh_ops_tenant_json(&out[i]));
    free(out);
    reply_json(c, 200, page_doc(items, &page));
}

static void h_tenant_get(struct call *c)
{
    struct gh_store_tenant t;
    struct gh_err err = {0};
    int rc = gh_store_tenant_get(c->st, c->tenant, &t, &err);
    if (rc != GH_OK)
        reply_store_error(c, rc, &err);
    else
        reply_json(c, 200, gh_ops_tenant_json(&t));
}

/* Applies <upd> (ops.c also announces a suspension) and answers. */
static void tenant_update(struct call *c, const struct gh_store_tenant_update *upd)
{
    struct gh_store_tenant t;
    struct gh_err err = {0};
    int rc = gh_ops_tenant_update(c->st, c->r->conn->worker->rt->hooks, c->tenant, upd, &t, &err);

    if (rc != GH_OK) {
        reply_store_error(c, rc, &err);
        return;
    }
    changed(c);
    reply_json(c, 200, gh_ops_tenant_json(&t));
}

/* The tenant's webhook event about one of its keys (<from>: the key a
 * rotation replaced, or NULL). */
static void emit_key_event(struct call *c, const char *type, const char *key_id, const char *from)
{
    gh_ops_emit_key_event(c->st, c->r->conn->worker->rt->hooks, c->tenant, type, key_id, from);
}

static void h_tenant_patch(struct call *c)
{
    static const char *const fields[] = {"name", "plan", "status", NULL};
    const char *name, *plan, *status;
    enum gh_store_tenant_status st = GH_STORE_TENANT_ANY;

    if (!only_fields(c, fields) || !str_field(c, "name", &name) || !str_field(c, "plan", &plan) ||
        !str_field(c, "status", &status))
        return;
    if (status && (st = gh_store_tenant_status_parse(status)) == GH_STORE_TENANT_ANY) {
        reply_error(c, 422, "invalid_field", "status must be active or suspended");
        return;
    }
    tenant_update(c, &(struct gh_store_tenant_update){.name = name, .plan = plan, .status = st});
}

static void h_tenant_suspend(struct call *c)
{
    tenant_update(c, &(struct gh_store_tenant_update){.status = GH_STORE_TENANT_SUSPENDED});
}

static void h_tenant_activate(struct call *c)
{
    tenant_update(c, &(struct gh_store_tenant_update){.status = GH_STORE_TENANT_ACTIVE});
}

static void h_key_create(struct call *c)
{
    static const char *const fields[] = {"name",       "roles",       "scopes",
                                         "expires_at", "ttl_seconds", NULL};
    struct gh_store_key k;
    struct gh_store_tenant t;
    struct gh_err err = {0};
    char key[GH_APIKEY_LEN + 1];
    const char *name;
    json_t *v;
    bool has_exp, has_ttl;
    int64_t exp = 0, ttl = 0;
    int rc;

    if (!only_fields(c, fields) || !str_field(c, "name", &name) ||
        !int_field(c, "expires_at", &has_exp, &exp) || !int_field(c, "ttl_seconds", &has_ttl, &ttl))
        return;
    memset(&k, 0, sizeof(k));
    snprintf(k.tenant_id, sizeof(k.tenant_id), "%s", c->tenant);
    if (name) {
        if (strlen(name) >= sizeof(k.name) || !gh_store_valid_key_name(name)) {
            reply_error(c, 422, "invalid_field",
                        "name: at most 64 characters, no control characters");
            return;
        }
        snprintf(k.name, sizeof(k.name), "%s", name);
    }
    for (const char *const *f = (const char *const[]){"roles", "scopes", NULL}; *f; f++) {
        v = json_object_get(c->body, *f);
        if (v && !json_is_array(v)) {
            char msg[96];
            snprintf(msg, sizeof(msg), "%s must be an array of strings", *f);
            reply_error(c, 400, "invalid_type", msg);
            return;
        }
    }
    if ((v = json_object_get(c->body, "roles")) && gh_ops_set_list(v, "roles", &k, &err) != GH_OK) {
        reply_error(c, 422, "invalid_field", err.msg);
        return;
    }
    if ((v = json_object_get(c->body, "scopes")) &&
        gh_ops_set_list(v, "scopes", &k, &err) != GH_OK) {
        reply_error(c, 422, "invalid_field", err.msg);
        return;
    }
    if (has_exp && has_ttl) {
        reply_error(c, 422, "invalid_field", "give expires_at or ttl_seconds, not both");
        return;
    }
    if (has_ttl && ttl > 315360000) {
        reply_error(c, 422, "invalid_field", "ttl_seconds: at most 315360000 (10 years)");
        return;
    }
    k.expires_at = has_exp ? exp : has_ttl ? (int64_t)gh_wall_ms() + ttl * 1000 : 0;
    if (k.expires_at && k.expires_at <= (int64_t)gh_wall_ms()) {
        reply_error(c, 422, "invalid_field", "the expiry is in the past");
        return;
    }
    rc = gh_store_tenant_get(c->st, c->tenant, &t, &err);
    if (rc != GH_OK) {
        reply_store_error(c, rc, &err);
        return;
    }
    struct gh_argon2_params ap = gh_ops_argon2(c->cfg);
    rc = gh_ops_key_create(c->st, &ap, &k, key, &err);
    if (rc != GH_OK) {
        reply_store_error(c, rc, &err);
        return;
    }
    audit_resource(c, c->tenant, k.id);
    changed(c);
    emit_key_event(c, "key.created", k.id, NULL);
    json_t *doc = gh_ops_key_json(&k);
    json_object_set_new(doc, "key", json_string(key));
    gh_apikey_wipe(key, sizeof(key));
    reply_json(c, 201, doc);
}

static void h_key_list(struct call *c)
{
    struct gh_store_page page = {0};
    struct gh_err err = {0};
    char cursor[GH_STORE_CURSOR_SIZE + 1];
    struct gh_store_key *out;
    struct gh_store_tenant t;
    int rc;

    if (!page_params(c, &page, cursor, sizeof(cursor))) return;
    rc = gh_store_tenant_get(c->st, c->tenant, &t, &err);
    if (rc != GH_OK) {
        reply_store_error(c, rc, &err);
        return;
    }
    out = calloc(page.limit, sizeof(*out));
    rc = out ? gh_store_key_list(c->st, c->tenant, &page, out, &err) : GH_ERROR;
    if (rc != GH_OK) {
        free(out);
        reply_store_error(c, rc, &err);
        return;
    }
    json_t *items = json_array();
    for (size_t i = 0; i < page.count; i++)
        json_array_append_new(items, gh_ops_key_json(&out[i]));
    free(out);
    reply_json(c, 200, page_doc(items, &page));
}

static void h_key_get(struct call *c)
{
    struct gh_store_key k;
    struct gh_err err = {0};
    int rc = gh_store_key_get(c->st, c->tenant, c->key, &k, &err);
    if (rc != GH_OK)
        reply_store_error(c, rc, &err);
    else
        reply_json(c, 200, gh_ops_key_json(&k));
}

static void h_key_rotate(struct call *c)
{
    static const char *const fields[] = {"grace_period_seconds", NULL};
    struct gh_store_key k;
    struct gh_err err = {0};
    char key[GH_APIKEY_LEN + 1];
    bool has_grace;
    int64_t grace = 0;
    int rc;

    if (!only_fields(c, fields) || !int_field(c, "grace_period_seconds", &has_grace, &grace))
        return;
    /* Ten years is more than any grace period means; it also keeps the
     * product in milliseconds far from overflowing. */
    if (has_grace && grace > 315360000) {
        reply_error(c, 422, "invalid_field", "grace_period_seconds: at most 315360000 (10 years)");
        return;
    }
    int64_t grace_ms = has_grace ? grace * 1000 : (int64_t)c->cfg->auth.rotation_grace_ms;
    struct gh_argon2_params ap = gh_ops_argon2(c->cfg);
    int64_t old_exp = 0;
    rc = gh_ops_key_rotate(c->st, &ap, c->tenant, c->key, grace_ms, &k, key, &old_exp, &err);
    if (rc != GH_OK) {
        reply_store_error(c, rc, &err);
        return;
    }
    changed(c);
    emit_key_event(c, "key.rotated", k.id, c->key);
    json_t *doc = gh_ops_key_json(&k);
    json_object_set_new(doc, "key", json_string(key));
    json_object_set_new(doc, "previous_key_expires_at", json_integer((json_int_t)old_exp));
    gh_apikey_wipe(key, sizeof(key));
    reply_json(c, 201, doc);
}

static void h_key_revoke(struct call *c)
{
    struct gh_store_key k;
    struct gh_err err = {0};
    int rc = gh_ops_key_revoke(c->st, c->r->conn->worker->rt->hooks, c->tenant, c->key, &k, &err);

    if (rc != GH_OK) {
        reply_store_error(c, rc, &err);
        return;
    }
    changed(c);
    reply_json(c, 200, gh_ops_key_json(&k));
}

static void h_token_revoke(struct call *c)
{
    static const char *const fields[] = {"jti", "expires_at", NULL};
    struct gh_err err = {0};
    const char *jti;
    bool has_exp;
    int64_t exp = 0;
    int rc;

    if (!only_fields(c, fields) || !str_field(c, "jti", &jti) ||
        !int_field(c, "expires_at", &has_exp, &exp))
        return;
    if (jti == NULL || jti[0] == '\0' || strlen(jti) > GH_STORE_JTI_MAX) {
        reply_error(c, 422, "invalid_field", "jti is required (at most 128 characters)");
        return;
    }
    /* Without an expiry, remember the revocation for a day: longer than any
     * token the gateway accepts lives. */
    if (!has_exp) exp = (int64_t)gh_wall_ms() + 86400000;
    rc = gh_store_token_revoke(c->st, jti, exp, &err);
    if (rc != GH_OK) {
        reply_store_error(c, rc, &err);
        return;
    }
    changed(c);
    reply_json(
        c, 200,
        json_pack("{s:s, s:I, s:b}", "jti", jti, "expires_at", (json_int_t)exp, "revoked", 1));
}

/* ---- limits, usage and limit events (issue 4) ---- */

static json_t *quotas_json(const struct gh_config_quotas *q)
{
    json_t *o = json_object();
    for (int m = 0; m < GH_QUOTA_NMETRICS; m++)
        for (int p = 0; p < GH_QUOTA_NPERIODS; p++)
            if (q->limit[m][p])
                json_object_set_new(o, gh_quota_metric_name(m, p),
                                    json_integer((json_int_t)q->limit[m][p]));
    return o;
}

static void limits_reply(struct call *c, int status)
{
    struct gh_err err = {0};
    char plan[GH_STORE_NAME_SIZE], json[GH_STORE_LIMITS_JSON_MAX + 1], why[200];
    const struct gh_config_plan *cp;
    struct gh_tenant_overrides ov;
    struct gh_config_quotas q = {0};
    uint32_t conc = 0;
    json_t *doc, *rules;
    int rc = gh_store_tenant_limits_get(c->st, c->tenant, plan, json, sizeof(json), &err);

    if (rc != GH_OK) {
        reply_store_error(c, rc, &err);
        return;
    }
    cp = gh_config_plan_find(c->cfg, plan);
    if (cp == NULL) cp = gh_config_plan_find(c->cfg, c->cfg->limits.default_plan);
    if (gh_tenant_overrides_parse(json, &ov, why, sizeof(why)) != GH_OK) memset(&ov, 0, sizeof(ov));
    if (cp) {
        q = cp->quotas;
        conc = cp->concurrency;
    }
    for (int m = 0; m < GH_QUOTA_NMETRICS; m++)
        for (int p = 0; p < GH_QUOTA_NPERIODS; p++)
            if (ov.quota_set[m][p]) q.limit[m][p] = ov.quotas.limit[m][p];
    if (ov.has_concurrency) conc = ov.concurrency;
    rules = json_array();
    for (size_t i = 0; cp && i < cp->nrate_limits; i++) {
        const struct gh_config_rate_limit *rl = &cp->rate_limits[i];
        struct gh_config_rate rate = rl->rate;
        uint32_t burst = rl->burst;
        char text[48];
        for (uint32_t k = 0; k < ov.nrules; k++)
            if (strcmp(ov.rules[k].rule, rl->name) == 0) {
                rate = ov.rules[k].rate;
                burst = ov.rules[k].burst;
            }
        snprintf(text, sizeof(text), "%llu/%llums", (unsigned long long)rate.count,
                 (unsigned long long)rate.period_ms);
        json_array_append_new(rules,
                              json_pack("{s:s, s:s, s:I, s:I, s:i}", "name", rl->name, "rate", text,
                                        "count", (json_int_t)rate.count, "period_ms",
                                        (json_int_t)rate.period_ms, "burst", (int)burst));
    }
    doc = json_pack("{s:s, s:s, s:s?, s:o, s:{s:o, s:i, s:o}}", "tenant_id", c->tenant, "plan",
                    plan, "effective_plan", cp ? cp->name : NULL, "overrides",
                    json[0] ? json_loads(json, 0, NULL) : json_null(), "effective", "quotas",
                    quotas_json(&q), "concurrency", (int)conc, "rate_limits", rules);
    reply_json(c, status, doc);
}

static void h_limits_get(struct call *c)
{
    limits_reply(c, 200);
}

/* Whether every rate-limit override of <ov> names a rule of the plan the
 * tenant will be on: <plan> when the body names one, else the one it has
 * (else the default plan). A typo would otherwise be stored and do
 * nothing. False after answering 422 (or the store's error). */
static bool overrides_name_rules(struct call *c, const char *plan,
                                 const struct gh_tenant_overrides *ov)
{
    char current[GH_STORE_NAME_SIZE], json[GH_STORE_LIMITS_JSON_MAX + 1], msg[320], rb[65];
    const struct gh_config_plan *cp;
    struct gh_err err = {0};

    if (ov->nrules == 0) return true;
    if (plan == NULL) {
        int rc = gh_store_tenant_limits_get(c->st, c->tenant, current, json, sizeof(json), &err);
        if (rc != GH_OK) {
            reply_store_error(c, rc, &err);
            return false;
        }
        plan = current;
    }
    cp = gh_config_plan_find(c->cfg, plan);
    if (cp == NULL) cp = gh_config_plan_find(c->cfg, c->cfg->limits.default_plan);
    for (uint32_t k = 0; k < ov->nrules; k++) {
        bool found = false;
        for (size_t i = 0; cp && i < cp->nrate_limits && !found; i++)
            found = strcmp(ov->rules[k].rule, cp->rate_limits[i].name) == 0;
        if (found) continue;
        snprintf(msg, sizeof(msg),
                 "overrides.rate_limits: plan %s has no rule named \"%s\" (send overrides that "
                 "fit the plan, or \"overrides\": null)",
                 cp ? cp->name : "(none)", gh_utf8_clip(ov->rules[k].rule, rb, sizeof(rb)));
        reply_error(c, 422, "invalid_field", msg);
        return false;
    }
    return true;
}

/* A plan change that keeps the stored overrides: they must fit the new
 * plan as new ones would (a rule of the old plan would do nothing). */
static bool stored_overrides_fit(struct call *c, const char *plan)
{
    char current[GH_STORE_NAME_SIZE], json[GH_STORE_LIMITS_JSON_MAX + 1], why[200];
    struct gh_tenant_overrides ov;
    struct gh_err err = {0};
    int rc = gh_store_tenant_limits_get(c->st, c->tenant, current, json, sizeof(json), &err);

    if (rc != GH_OK) {
        reply_store_error(c, rc, &err);
        return false;
    }
    /* What no longer parses is ignored where it is read (keydir.c). */
    if (gh_tenant_overrides_parse(json, &ov, why, sizeof(why)) != GH_OK) return true;
    return overrides_name_rules(c, plan, &ov);
}

/* PUT {"plan": "pro", "overrides": {...} | null}: operators set what a
 * tenant may use. Unknown plans, malformed overrides and overrides of
 * rules the plan does not have are 422. */
static void h_limits_put(struct call *c)
{
    static const char *const fields[] = {"plan", "overrides", NULL};
    struct gh_err err = {0};
    struct gh_tenant_overrides ov;
    const char *plan;
    json_t *o;
    char *text = NULL, why[200];
    int rc;

    if (!only_fields(c, fields) || !str_field(c, "plan", &plan)) return;
    if (plan && gh_config_plan_find(c->cfg, plan) == NULL) {
        char msg[160];
        char pb[65];
        snprintf(msg, sizeof(msg), "plan: no plan named \"%s\" in the configuration",
                 gh_utf8_clip(plan, pb, sizeof(pb)));
        reply_error(c, 422, "invalid_field", msg);
        return;
    }
    o = c->body ? json_object_get(c->body, "overrides") : NULL;
    if (plan != NULL && o == NULL && !stored_overrides_fit(c, plan)) return;
    if (o != NULL && !json_is_null(o)) {
        if (!json_is_object(o)) {
            reply_error(c, 400, "invalid_type", "overrides must be an object or null");
            return;
        }
        text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
        if (text == NULL || strlen(text) > GH_STORE_LIMITS_JSON_MAX) {
            free(text);
            reply_error(c, 422, "invalid_field", "overrides: at most 4096 bytes of JSON");
            return;
        }
        if (gh_tenant_overrides_parse(text, &ov, why, sizeof(why)) != GH_OK) {
            free(text);
            reply_error(c, 422, "invalid_field", why);
            return;
        }
        if (!overrides_name_rules(c, plan, &ov)) {
            free(text);
            return;
        }
    }
    rc = gh_store_tenant_limits_set(c->st, c->tenant, plan, o == NULL ? NULL : (text ? text : ""),
                                    &err);
    free(text);
    if (rc != GH_OK) {
        reply_store_error(c, rc, &err);
        return;
    }
    changed(c);
    limits_reply(c, 200);
}

/* ?period=day|month|YYYY-MM-DD|YYYY-MM (default: today, UTC). */
static void h_usage(struct call *c)
{
    struct gh_store_usage u;
    struct gh_err err = {0};
    char period[16];
    int rc;

    if (!query_value(c->r->head.query, "period", period, sizeof(period))) {
        reply_error(c, 400, "invalid_query", "period must be day, month, YYYY-MM-DD or YYYY-MM");
        return;
    }
    if (period[0] == '\0' || strcmp(period, "day") == 0)
        gh_quota_period_name(GH_QUOTA_DAY, (int64_t)gh_wall_ms(), period);
    else if (strcmp(period, "month") == 0)
        gh_quota_period_name(GH_QUOTA_MONTH, (int64_t)gh_wall_ms(), period);
    rc = gh_store_usage_get(c->st, c->tenant, period, &u, &err);
    if (rc == GH_STORE_INVALID) {
        reply_error(c, 400, "invalid_query", "period must be day, month, YYYY-MM-DD or YYYY-MM");
        return;
    }
    if (rc != GH_OK) {
        reply_store_error(c, rc, &err);
        return;
    }
    reply_json(c, 200,
               json_pack("{s:s, s:s, s:I, s:I, s:I, s:I}", "tenant_id", c->tenant, "period", period,
                         "requests", (json_int_t)u.requests, "request_bytes",
                         (json_int_t)u.request_bytes, "response_bytes",
                         (json_int_t)u.response_bytes, "updated_at", (json_int_t)u.updated_at));
}

static void events_list(struct call *c, const char *tenant)
{
    struct gh_store_limit_event out[GH_STORE_LIST_MAX];
    struct gh_err err = {0};
    char before[24], limit[16];
    long long b = 0;
    size_t n = 50, count = 0;
    bool more = false;
    json_t *items;
    int rc;

    if (!query_value(c->r->head.query, "before", before, sizeof(before)) ||
        !query_value(c->r->head.query, "limit", limit, sizeof(limit))) {
        reply_error(c, 400, "invalid_query", "before or limit is malformed");
        return;
    }
    if (before[0]) {
        char *end;
        b = strtoll(before, &end, 10);
        if (*end || b < 1) {
            reply_error(c, 400, "invalid_query", "before must be an event id");
            return;
        }
    }
    if (!gh_api_limit_value(limit, &n)) {
        reply_error(c, 400, "invalid_query", "limit must be between 1 and 200");
        return;
    }
    rc = gh_store_limit_events_list(c->st, tenant, (int64_t)b, n, out, &count, &more, &err);
    if (rc != GH_OK) {
        reply_store_error(c, rc, &err);
        return;
    }
    items = json_array();
    for (size_t i = 0; i < count; i++)
        json_array_append_new(items,
                              json_pack("{s:I, s:s, s:s, s:s, s:s, s:i, s:I, s:I, s:I}", "id",
                                        (json_int_t)out[i].id, "kind", "quota", "tenant_id",
                                        out[i].tenant_id, "period", out[i].period, "metric",
                                        out[i].metric, "threshold", (int)out[i].threshold, "value",
                                        (json_int_t)out[i].value, "limit", (json_int_t)out[i].limit,
                                        "created_at", (json_int_t)out[i].created_at));
    {
        json_t *doc = json_pack("{s:o}", "items", items);
        /* The next page: events older than the last one here. */
        if (more && count)
            json_object_set_new(doc, "next_before", json_integer((json_int_t)out[count - 1].id));
        reply_json(c, 200, doc);
    }
}

static void h_tenant_events(struct call *c)
{
    events_list(c, c->tenant);
}

static void h_all_events(struct call *c)
{
    events_list(c, NULL);
}

/* Admin calls that change something are audited: their action names. */
static const struct {
    void (*handle)(struct call *c);
    const char *action;
} audit_actions[] = {
    {h_tenant_create, "tenant.create"},
    {h_tenant_patch, "tenant.update"},
    {h_tenant_suspend, "tenant.suspend"},
    {h_tenant_activate, "tenant.activate"},
    {h_key_create, "key.create"},
    {h_key_rotate, "key.rotate"},
    {h_key_revoke, "key.revoke"},
    {h_token_revoke, "token.revoke"},
    {h_limits_put, "tenant.limits.update"},
    {gh_api_hook_create, "webhook.create"},
    {gh_api_hook_patch, "webhook.update"},
    {gh_api_hook_delete, "webhook.delete"},
    {gh_api_hook_rotate, "webhook.rotate_secret"},
    {gh_api_hook_replay, "webhook.delivery.replay"},
    {gh_api_events_publish, "event.publish"},
};

static bool is_mutation(enum gh_http_method m)
{
    return m == GH_HTTP_POST || m == GH_HTTP_PUT || m == GH_HTTP_PATCH || m == GH_HTTP_DELETE;
}

/* Starts the audit event of a mutation, written when the call is answered
 * (whatever answers: refusals included). <ev> lives in the caller's frame. */
static void audit_begin(struct call *c, const struct endpoint *e, struct gh_audit_event *ev)
{
    const char *action = "admin.call";

    if (!is_mutation(e->method)) return;
    gh_audit_admin_begin(c->r, ev);
    if (c->r->au_admin == NULL) return;
    for (size_t i = 0; i < sizeof(audit_actions) / sizeof(audit_actions[0]); i++)
        if (audit_actions[i].handle == e->handle) action = audit_actions[i].action;
    GH_AUDIT_SET(ev, action, gh_str_cstr(action));
    if (c->tenant[0]) {
        /* The tenant acted on owns the record (its chain), whoever acts. */
        GH_AUDIT_SET(ev, tenant, gh_str_cstr(c->tenant));
        audit_resource(c, c->tenant, c->key[0] ? c->key : NULL);
        if (c->hook[0]) {
            char res[GH_AUDIT_RESOURCE_SIZE];
            snprintf(res, sizeof(res), "tenants/%s/webhooks/%s%s%s", c->tenant, c->hook,
                     c->delivery[0] ? "/deliveries/" : "", c->delivery);
            GH_AUDIT_SET(ev, resource, gh_str_cstr(res));
        }
    } else {
        GH_AUDIT_SET(ev, tenant, GH_STR_LIT(""));
        GH_AUDIT_SET(ev, resource,
                     strncmp(e->pattern, "v1/", 3) == 0 ? gh_str_cstr(e->pattern + 3)
                                                        : gh_str_cstr(e->pattern));
    }
}

/* The body's top-level members as params: names, and values hashed or
 * redacted (never the values themselves). */
static void audit_params(struct call *c)
{
    struct gh_audit_event *ev = c->r->au_admin;
    unsigned prefix = c->cfg->audit.param_prefix;
    const char *k;
    json_t *v;

    if (ev == NULL || c->body == NULL) return;
    gh_audit_params_begin(ev);
    json_object_foreach(c->body, k, v)
    {
        if (json_is_string(v)) {
            gh_audit_params_add(ev, gh_str_cstr(k),
                                gh_str_make(json_string_value(v), json_string_length(v)), prefix);
        } else {
            char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS);
            gh_audit_params_add(ev, gh_str_cstr(k), gh_str_cstr(text ? text : ""), prefix);
            free(text);
        }
    }
    gh_audit_params_end(ev);
}

static const struct endpoint endpoints[] = {
    {GH_HTTP_GET, "v1/whoami", ACCESS_ADMIN, h_whoami},
    {GH_HTTP_POST, "v1/tenants", ACCESS_OPERATOR, h_tenant_create},
    {GH_HTTP_GET, "v1/tenants", ACCESS_ADMIN, h_tenant_list},
    {GH_HTTP_GET, "v1/tenants/{t}", ACCESS_TENANT, h_tenant_get},
    {GH_HTTP_PATCH, "v1/tenants/{t}", ACCESS_OPERATOR, h_tenant_patch},
    {GH_HTTP_POST, "v1/tenants/{t}/suspend", ACCESS_OPERATOR, h_tenant_suspend},
    {GH_HTTP_POST, "v1/tenants/{t}/activate", ACCESS_OPERATOR, h_tenant_activate},
    {GH_HTTP_POST, "v1/tenants/{t}/keys", ACCESS_TENANT, h_key_create},
    {GH_HTTP_GET, "v1/tenants/{t}/keys", ACCESS_TENANT, h_key_list},
    {GH_HTTP_GET, "v1/tenants/{t}/keys/{k}", ACCESS_TENANT, h_key_get},
    {GH_HTTP_POST, "v1/tenants/{t}/keys/{k}/rotate", ACCESS_TENANT, h_key_rotate},
    {GH_HTTP_POST, "v1/tenants/{t}/keys/{k}/revoke", ACCESS_TENANT, h_key_revoke},
    {GH_HTTP_POST, "v1/tokens/revoke", ACCESS_OPERATOR, h_token_revoke},
    {GH_HTTP_GET, "v1/tenants/{t}/limits", ACCESS_TENANT, h_limits_get},
    {GH_HTTP_PUT, "v1/tenants/{t}/limits", ACCESS_OPERATOR, h_limits_put},
    {GH_HTTP_GET, "v1/tenants/{t}/usage", ACCESS_TENANT, h_usage},
    {GH_HTTP_GET, "v1/tenants/{t}/limit-events", ACCESS_TENANT, h_tenant_events},
    {GH_HTTP_GET, "v1/limit-events", ACCESS_OPERATOR, h_all_events},
    /* The audit log (api_audit.c): scoped to the caller's tenant inside. */
    {GH_HTTP_GET, "v1/audit", ACCESS_ADMIN, gh_api_audit_list},
    {GH_HTTP_GET, "v1/audit/export", ACCESS_ADMIN, gh_api_audit_export},
    {GH_HTTP_GET, "v1/audit/checkpoints", ACCESS_ADMIN, gh_api_audit_checkpoints},
    {GH_HTTP_GET, "v1/audit/keys", ACCESS_ADMIN, gh_api_audit_keys},
    /* Outbound webhooks (api_webhooks.c). */
    {GH_HTTP_POST, "v1/tenants/{t}/webhooks", ACCESS_TENANT, gh_api_hook_create},
    {GH_HTTP_GET, "v1/tenants/{t}/webhooks", ACCESS_TENANT, gh_api_hook_list},
    {GH_HTTP_GET, "v1/tenants/{t}/webhooks/{w}", ACCESS_TENANT, gh_api_hook_get},
    {GH_HTTP_PATCH, "v1/tenants/{t}/webhooks/{w}", ACCESS_TENANT, gh_api_hook_patch},
    {GH_HTTP_DELETE, "v1/tenants/{t}/webhooks/{w}", ACCESS_TENANT, gh_api_hook_delete},
    {GH_HTTP_POST, "v1/tenants/{t}/webhooks/{w}/rotate-secret", ACCESS_TENANT, gh_api_hook_rotate},
    {GH_HTTP_GET, "v1/tenants/{t}/webhooks/{w}/deliveries", ACCESS_TENANT, gh_api_hook_deliveries},
    {GH_HTTP_GET, "v1/tenants/{t}/webhooks/{w}/deliveries/{d}", ACCESS_TENANT,
     gh_api_hook_delivery},
    {GH_HTTP_POST, "v1/tenants/{t}/webhooks/{w}/deliveries/{d}/replay", ACCESS_TENANT,
     gh_api_hook_replay},
    /* The tenant is in the body: checked inside. */
    {GH_HTTP_POST, "v1/events", ACCESS_ADMIN, gh_api_events_publish},
};

/* Splits the path into segments; false when there are too many. */
static bool split(gh_str path, struct call *c)
{
    size_t i = 0;
    c->nseg = 0;
    while (i < path.len) {
        size_t s;
        while (i < path.len && path.ptr[i] == '/')
            i++;
        if (i == path.len) break;
        s = i;
        while (i < path.len && path.ptr[i] != '/')
            i++;
        if (c->nseg == MAX_SEGMENTS) return false;
        c->seg[c->nseg++] = gh_str_make(path.ptr + s, i - s);
    }
    return true;
}

/* Matches <pattern> against the segments, capturing {t}, {k}, {w} and {d}. A captured
 * id with characters no id has cannot name anything: it does not match. */
static bool match(const char *pattern, struct call *c)
{
    size_t n = 0;
    const char *p = pattern;
    while (*p) {
        const char *e = strchr(p, '/');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (n >= c->nseg) return false;
        gh_str s = c->seg[n++];
        if (len == 3 && p[0] == '{') {
            char *dst = p[1] == 't'   ? c->tenant
                        : p[1] == 'w' ? c->hook
                        : p[1] == 'd' ? c->delivery
                                      : c->key;
            size_t cap = p[1] == 't'   ? sizeof(c->tenant)
                         : p[1] == 'w' ? sizeof(c->hook)
                         : p[1] == 'd' ? sizeof(c->delivery)
                                       : sizeof(c->key);
            if (s.len == 0 || s.len >= cap) return false;
            for (size_t i = 0; i < s.len; i++) {
                char ch = s.ptr[i];
                if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                      (ch >= '0' && ch <= '9') || ch == '_'))
                    return false;
            }
            memcpy(dst, s.ptr, s.len);
            dst[s.len] = '\0';
        } else if (s.len != len || memcmp(s.ptr, p, len) != 0) {
            return false;
        }
        p += len;
        if (*p == '/') p++;
    }
    return n == c->nseg;
}

/* The admin API's authentication: an API key with role "admin", as a
 * Bearer token. Returns true with <who> filled, or false after answering
 * 401 or 403. */
static bool authenticate(struct call *c, struct gh_principal *who)
{
    struct gh_req *r = c->r;
    const char *code = NULL;
    gh_str cred;
    int st;

    if (gh_authn_credential(r, &cred, &code) != 0 || cred.len == 0) {
        gh_conn_reply_error_ex(r->conn, 401, code ? code : "missing_credentials", false,
                               "WWW-Authenticate: Bearer realm=\"gatehouse-admin\"\r\n");
        return false;
    }
    st = gh_authn_api_key_sync(r->conn->worker, cred, who, &code);
    if (st != 0) {
        gh_conn_reply_error_ex(r->conn, st, code, false,
                               st == 401 ? "WWW-Authenticate: Bearer realm=\"gatehouse-admin\", "
                                           "error=\"invalid_token\"\r\n"
                                         : NULL);
        return false;
    }
    if (!gh_principal_list_has(who->roles, GH_STR_LIT("admin"))) {
        reply_error(c, 403, "forbidden", "the admin API needs a key with role admin");
        return false;
    }
    return true;
}

bool gh_admin_api_operator(struct gh_req *r)
{
    struct call c;

    memset(&c, 0, sizeof(c));
    c.r = r;
    c.st = r->conn->worker->rt->store;
    c.cfg = r->snap->cfg;
    if (!authenticate(&c, &c.who)) return false;
    if (!gh_principal_is_operator(&c.who)) {
        reply_error(&c, 403, "forbidden", "operators only");
        return false;
    }
    return true;
}

int gh_admin_api_handle(struct gh_req *r, gh_str body)
{
    struct gh_worker *w = r->conn->worker;
    struct call c;
    const struct endpoint *found = NULL;
    bool path_known = false;
    struct gh_audit_event aev; /* a mutation's audit event (audit_begin) */

    memset(&c, 0, sizeof(c));
    c.r = r;
    c.st = w->rt->store;
    c.cfg = r->snap->cfg;
    if (!split(r->head.path, &c)) {
        reply_error(&c, 404, "not_found", "no such endpoint");
        return 0;
    }
    for (size_t i = 0; i < sizeof(endpoints) / sizeof(endpoints[0]); i++) {
        if (!match(endpoints[i].pattern, &c)) continue;
        path_known = true;
        if (endpoints[i].method == r->head.method_id) {
            found = &endpoints[i];
            break;
        }
    }
    if (found == NULL) {
        if (path_known)
            reply_error(&c, 405, "method_not_allowed", "method not allowed here");
        else
            reply_error(&c, 404, "not_found", "no such endpoint");
        return 0;
    }

    audit_begin(&c, found, &aev);
    if (!authenticate(&c, &c.who)) goto out;
    if (r->au_admin) gh_audit_set_actor(r->au_admin, &c.who, false);
    switch (found->access) {
    case ACCESS_OPERATOR:
        if (!gh_principal_is_operator(&c.who)) {
            reply_error(&c, 403, "forbidden", "operators only");
            goto out;
        }
        break;
    case ACCESS_TENANT:
        /* Another tenant's objects do not exist for a tenant admin. */
        if (!gh_principal_can_admin(&c.who, c.tenant)) {
            reply_error(&c, 404, "not_found", "no such tenant");
            goto out;
        }
        break;
    default: break;
    }

    if (body.len > 0) {
        json_error_t jerr;
        c.body = json_loadb(body.ptr, body.len, JSON_REJECT_DUPLICATES, &jerr);
        if (c.body == NULL || !json_is_object(c.body)) {
            char msg[300];
            if (c.body)
                snprintf(msg, sizeof(msg), "the body must be a JSON object");
            else
                snprintf(msg, sizeof(msg), "the body is not valid JSON: %s (line %d, column %d)",
                         jerr.text, jerr.line, jerr.column);
            json_decref(c.body);
            c.body = NULL;
            reply_error(&c, 400, "invalid_json", msg);
            goto out;
        }
    }
    audit_params(&c);
    found->handle(&c);
out:
    /* Every path answered, and the answer wrote the event: forget <aev>. */
    gh_audit_admin_end(r);
    json_decref(c.body);
    return 0;
}
