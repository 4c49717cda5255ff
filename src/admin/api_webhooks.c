/* Webhook endpoints, deliveries and event publishing on the admin API (see
 * api_webhooks.h). Runs on the admin thread: store and secrets calls are
 * synchronous. Signing secrets are shown once, in the answer that made
 * them, and are otherwise only in the secrets module, sealed. */
#include "admin/api_webhooks.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/api_call.h"
#include "audit/request.h"
#include "config/config.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/runtime.h"
#include "core/worker.h"
#include "hooks/dispatcher.h"
#include "hooks/events.h"
#include "hooks/keycache.h"
#include "hooks/sign.h"
#include "hooks/ssrf.h"
#include "http/conn.h"
#include "secrets/secrets.h"

#define ATTEMPTS_SHOWN GH_STORE_HOOK_ATTEMPTS_MAX

static struct gh_runtime *rt_of(struct call *c)
{
    return c->r->conn->worker->rt;
}

static json_t *endpoint_json(const struct gh_store_hook_endpoint *e)
{
    json_t *events = json_array();
    json_t *doc;

    for (size_t i = 0; i < e->nevents; i++)
        json_array_append_new(events, json_string(e->events[i]));
    doc = json_pack("{s:s, s:s, s:s, s:s, s:o, s:s, s:s, s:I, s:I}", "id", e->id, "tenant_id",
                    e->tenant_id, "url", e->url, "description", e->description, "events", events,
                    "signing", e->ed25519 ? "ed25519" : "hmac", "status",
                    e->status == GH_STORE_HOOK_DISABLED ? "disabled" : "active", "created_at",
                    (json_int_t)e->created_at, "updated_at", (json_int_t)e->updated_at);
    if (e->ed25519) json_object_set_new(doc, "public_key", json_string(e->public_key));
    if (e->disabled_reason[0])
        json_object_set_new(doc, "disabled_reason", json_string(e->disabled_reason));
    if (e->failing_since)
        json_object_set_new(doc, "failing_since", json_integer((json_int_t)e->failing_since));
    if (e->prev_version && e->prev_until > (int64_t)gh_wall_ms())
        json_object_set_new(doc, "previous_secret_valid_until",
                            json_integer((json_int_t)e->prev_until));
    return doc;
}

/* The url, events and description members of a create or change, checked
 * and copied into <e>. Members absent stay as they are in <e>; <create>
 * makes url and events required. Answers and returns false on bad input. */
static bool read_fields(struct call *c, struct gh_store_hook_endpoint *e, bool create)
{
    const struct gh_config_webhooks *w = &c->cfg->webhooks;
    const char *url, *desc, *why;
    json_t *ev = json_object_get(c->body, "events");
    size_t i;
    json_t *v;

    if (!gh_api_str_field(c, "url", &url) || !gh_api_str_field(c, "description", &desc))
        return false;
    if (create && (url == NULL || ev == NULL)) {
        gh_api_reply_error(c, 422, "invalid_field", "url and events are required");
        return false;
    }
    if (url) {
        /* SSRF at creation: scheme, userinfo, and a literal blocked
         * address. Names are checked at delivery, after DNS. */
        why = gh_hooks_url_check(url, w->allow, w->nallow_private);
        if (why) {
            gh_api_reply_error(c, 422, "invalid_url", why);
            return false;
        }
        snprintf(e->url, sizeof(e->url), "%s", url);
    }
    if (desc) {
        /* The store would refuse it too, but a creation makes and seals
         * the endpoint's key before the row is written: refuse it first. */
        if (!gh_store_valid_hook_description(desc)) {
            gh_api_reply_error(c, 422, "invalid_field",
                               "description: at most 256 bytes, no control characters");
            return false;
        }
        snprintf(e->description, sizeof(e->description), "%s", desc);
    }
    if (ev) {
        if (!json_is_array(ev) || json_array_size(ev) < 1 ||
            json_array_size(ev) > GH_STORE_HOOK_EVENTS_MAX) {
            gh_api_reply_error(c, 422, "invalid_field",
                               "events must be an array of 1-32 event types");
            return false;
        }
        e->nevents = 0;
        json_array_foreach(ev, i, v)
        {
            if (!json_is_string(v) || !gh_store_valid_hook_pattern(json_string_value(v))) {
                gh_api_reply_error(c, 422, "invalid_field",
                                   "events: each must be an event type ([a-z0-9_.-]{1,64}), "
                                   "\"<prefix>.*\" or \"*\"");
                return false;
            }
            snprintf(e->events[e->nevents++], GH_STORE_HOOK_TYPE_SIZE, "%s", json_string_value(v));
        }
    }
    return true;
}

/* A new key for version <version> of <e>, sealed in the secrets module.
 * Fills <shown> with what the answer shows once: the whsec_ secret, or for
 * ed25519 nothing (the public key goes into <e>). */
static int new_key(struct call *c, struct gh_store_hook_endpoint *e, uint32_t version, char *shown,
                   size_t cap, struct gh_err *err)
{
    uint8_t key[GH_HOOKS_KEY_LEN], pub[GH_HOOKS_KEY_LEN];
    char name[GH_HOOKS_SECRET_NAME_SIZE];
    int rc = GH_ERROR;

    shown[0] = '\0';
    if (gh_hooks_key_random(key) != GH_OK ||
        gh_hooks_secret_name(name, sizeof(name), e->id, version) != GH_OK) {
        gh_err_set(err, NULL, 0, 0, "webhooks: cannot make a key");
        goto out;
    }
    if (e->ed25519) {
        if (gh_hooks_ed25519_public(key, pub) != GH_OK ||
            gh_hooks_key_encode(GH_HOOKS_KEY_PUBLIC, pub, sizeof(pub), e->public_key,
                                sizeof(e->public_key)) != GH_OK) {
            gh_err_set(err, NULL, 0, 0, "webhooks: cannot make a key");
            goto out;
        }
    } else if (gh_hooks_key_encode(GH_HOOKS_KEY_SECRET, key, sizeof(key), shown, cap) != GH_OK) {
        gh_err_set(err, NULL, 0, 0, "webhooks: cannot encode a key");
        goto out;
    }
    rc = gh_secrets_put(rt_of(c)->secrets, e->tenant_id, name, key, sizeof(key), err);
out:
    OPENSSL_cleanse(key, sizeof(key));
    if (rc != GH_OK) OPENSSL_cleanse(shown, cap);
    return rc;
}

/* 500 for a signing key the secrets module could not seal, and why in the
 * log (its messages name files and tokens, never a key). */
static void secrets_failed(struct call *c, const struct gh_err *err)
{
    gh_log_error("webhooks: a signing key could not be sealed: %s", err->msg);
    gh_api_reply_error(c, 500, "secrets_error", "the secret could not be stored; see the log");
}

static void drop_key(struct call *c, const struct gh_store_hook_endpoint *e, uint32_t version)
{
    char name[GH_HOOKS_SECRET_NAME_SIZE];
    struct gh_err err = {0};

    if (version == 0 || gh_hooks_secret_name(name, sizeof(name), e->id, version) != GH_OK) return;
    gh_secrets_delete(rt_of(c)->secrets, e->tenant_id, name, &err);
}

void gh_api_hook_create(struct call *c)
{
    static const char *const fields[] = {"url", "events", "description", "signing", NULL};
    struct gh_store_hook_endpoint e;
    struct gh_store_tenant t;
    struct gh_err err = {0};
    char shown[GH_HOOKS_KEY_TEXT_MAX];
    const char *signing;
    int rc;

    memset(&e, 0, sizeof(e));
    if (!gh_api_only_fields(c, fields) || !gh_api_str_field(c, "signing", &signing) ||
        !read_fields(c, &e, true))
        return;
    if (signing && strcmp(signing, "hmac") != 0 && strcmp(signing, "ed25519") != 0) {
        gh_api_reply_error(c, 422, "invalid_field", "signing must be hmac or ed25519");
        return;
    }
    rc = gh_store_tenant_get(c->st, c->tenant, &t, &err);
    if (rc != GH_OK) {
        gh_api_reply_store_error(c, rc, &err);
        return;
    }
    snprintf(e.tenant_id, sizeof(e.tenant_id), "%s", c->tenant);
    e.ed25519 = signing && strcmp(signing, "ed25519") == 0;
    e.secret_version = 1;
    /* The id first: the key is sealed under it before the row exists, so
     * no delivery can find an endpoint without its key. */
    memcpy(e.id, "ep_", 3);
    rc = gh_store_random_base62(e.id + 3, GH_STORE_HOOK_ID_RAND, &err);
    if (rc == GH_OK) rc = new_key(c, &e, 1, shown, sizeof(shown), &err);
    if (rc != GH_OK) {
        secrets_failed(c, &err);
        return;
    }
    rc = gh_store_hook_endpoint_insert(c->st, &e, &err);
    if (rc != GH_OK) {
        drop_key(c, &e, 1);
        OPENSSL_cleanse(shown, sizeof(shown));
        gh_api_reply_store_error(c, rc, &err);
        return;
    }
    snprintf(c->hook, sizeof(c->hook), "%s", e.id);
    if (c->r->au_admin) {
        /* The audit record names the endpoint made, as key.create names
         * its key. */
        char res[GH_AUDIT_RESOURCE_SIZE];
        snprintf(res, sizeof(res), "tenants/%s/webhooks/%s", e.tenant_id, e.id);
        GH_AUDIT_SET(c->r->au_admin, resource, gh_str_cstr(res));
    }
    json_t *doc = endpoint_json(&e);
    if (!e.ed25519) json_object_set_new(doc, "secret", json_string(shown));
    OPENSSL_cleanse(shown, sizeof(shown));
    gh_api_reply_json(c, 201, doc);
}

void gh_api_hook_list(struct call *c)
{
    struct gh_store_page page = {0};
    struct gh_err err = {0};
    char cursor[GH_STORE_CURSOR_SIZE + 1];
    struct gh_store_hook_endpoint *out;
    json_t *items;
    int rc;

    if (!gh_api_page_params(c, &page, cursor, sizeof(cursor))) return;
    out = calloc(page.limit, sizeof(*out));
    rc = out ? gh_store_hook_endpoint_list(c->st, c->tenant, &page, out, &err) : GH_ERROR;
    if (rc != GH_OK) {
        free(out);
        gh_api_reply_store_error(c, rc, &err);
        return;
    }
    items = json_array();
    for (size_t i = 0; i < page.count; i++)
        json_array_append_new(items, endpoint_json(&out[i]));
    free(out);
    gh_api_reply_json(c, 200, gh_api_page_doc(items, &page));
}

void gh_api_hook_get(struct call *c)
{
    struct gh_store_hook_endpoint e;
    struct gh_err err = {0};
    int rc = gh_store_hook_endpoint_get(c->st, c->tenant, c->hook, &e, &err);

    if (rc != GH_OK)
        gh_api_reply_store_error(c, rc, &err);
    else
        gh_api_reply_json(c, 200, endpoint_json(&e));
}

/* How many times a read-modify-write of an endpoint is made again when the
 * row changed between its read and its write (the dispatcher's disabling,
 * another admin) before the answer is 409. */
#define HOOK_UPDATE_TRIES 8

/* A change of an endpoint: applies itself to <e> as read; false when it
 * answered the call itself (bad input). */
typedef bool (*endpoint_change)(struct call *c, struct gh_store_hook_endpoint *e, void *arg);

/* Applies <change> to endpoint <e>, which the caller read, and writes it
 * over the row as it stands: when the row changed since the read, reads it
 * again and applies <change> again, HOOK_UPDATE_TRIES times at most.
 * GH_DECLINED when <change> answered the call; else the store's code. */
static int update_endpoint(struct call *c, struct gh_store_hook_endpoint *e, endpoint_change change,
                           void *arg, struct gh_err *err)
{
    int rc;

    for (int tries = 1;; tries++) {
        if (!change(c, e, arg)) return GH_DECLINED;
        rc = gh_store_hook_endpoint_update(c->st, e, err);
        if (rc != GH_STORE_CONFLICT || tries == HOOK_UPDATE_TRIES) return rc;
        rc = gh_store_hook_endpoint_get(c->st, c->tenant, c->hook, e, err);
        if (rc != GH_OK) return rc;
    }
}

/* Sets status <status> ("active" or "disabled") on <e> as an admin does. */
static void set_status(struct gh_store_hook_endpoint *e, const char *status)
{
    if (strcmp(status, "active") == 0) {
        /* Enabled again by hand: its failure clock starts over. */
        e->status = GH_STORE_HOOK_ACTIVE;
        e->failing_since = 0;
        e->disabled_reason[0] = '\0';
        return;
    }
    if (e->status != GH_STORE_HOOK_DISABLED)
        snprintf(e->disabled_reason, sizeof(e->disabled_reason), "by_admin");
    e->status = GH_STORE_HOOK_DISABLED;
}

struct patch {
    const char *status; /* NULL: unchanged */
};

static bool apply_patch(struct call *c, struct gh_store_hook_endpoint *e, void *arg)
{
    const struct patch *p = arg;

    if (!read_fields(c, e, false)) return false;
    if (p->status) set_status(e, p->status);
    return true;
}

/* The body's fields over the endpoint as stored, whatever else changed it
 * meanwhile (update_endpoint). */
void gh_api_hook_patch(struct call *c)
{
    static const char *const fields[] = {"url", "events", "description", "status", NULL};
    struct gh_store_hook_endpoint e;
    struct gh_err err = {0};
    struct patch p;
    int rc;

    if (!gh_api_only_fields(c, fields) || !gh_api_str_field(c, "status", &p.status)) return;
    if (c->body == NULL || json_object_size(c->body) == 0) {
        gh_api_reply_error(c, 422, "invalid_field", "nothing to change");
        return;
    }
    if (p.status && strcmp(p.status, "active") != 0 && strcmp(p.status, "disabled") != 0) {
        gh_api_reply_error(c, 422, "invalid_field", "status must be active or disabled");
        return;
    }
    rc = gh_store_hook_endpoint_get(c->st, c->tenant, c->hook, &e, &err);
    if (rc == GH_OK) rc = update_endpoint(c, &e, apply_patch, &p, &err);
    if (rc == GH_DECLINED) return;
    if (rc != GH_OK) {
        gh_api_reply_store_error(c, rc, &err);
        return;
    }
    if (e.status == GH_STORE_HOOK_ACTIVE) gh_hooks_dispatcher_poke(rt_of(c)->hooks);
    gh_api_reply_json(c, 200, endpoint_json(&e));
}

/* The keys of the row the delete removed: a rotation committed after any
 * read of ours is in it, and one still running finds no row and drops its
 * own key. */
void gh_api_hook_delete(struct call *c)
{
    struct gh_store_hook_endpoint gone;
    struct gh_err err = {0};
    int rc = gh_store_hook_endpoint_delete(c->st, c->tenant, c->hook, &gone, &err);

    if (rc != GH_OK) {
        gh_api_reply_store_error(c, rc, &err);
        return;
    }
    drop_key(c, &gone, gone.secret_version);
    drop_key(c, &gone, gone.prev_version);
    gh_conn_reply(c->r->conn, 204, NULL, NULL, 0);
}

/* Whether a rotation to key <version> whose update went unanswered (the
 * store unavailable: its commit may have been made) is in the row: read
 * again; *e is the row when it is. When the read fails too it is not
 * known, and the caller keeps the key: one left over costs nothing, one
 * dropped while the row names it fails every delivery. */
enum rotation_state { ROTATION_NOT_MADE, ROTATION_MADE, ROTATION_UNKNOWN };

static enum rotation_state rotation_made(struct call *c, struct gh_store_hook_endpoint *e,
                                         uint32_t version)
{
    struct gh_store_hook_endpoint now;
    struct gh_err err = {0};
    int rc = gh_store_hook_endpoint_get(c->st, c->tenant, c->hook, &now, &err);

    if (rc == GH_STORE_NOT_FOUND) return ROTATION_NOT_MADE;
    if (rc != GH_OK) return ROTATION_UNKNOWN;
    if (now.secret_version != version) return ROTATION_NOT_MADE;
    *e = now;
    return ROTATION_MADE;
}

struct rotation {
    uint32_t version;    /* of the new key, sealed */
    uint32_t dropped;    /* the key the applied rotation put out of use */
    int64_t grace_ms;    /* webhooks.rotation_grace */
    char public_key[64]; /* the new key's, for ed25519 */
};
_Static_assert(sizeof(((struct rotation *)0)->public_key) ==
                   sizeof(((struct gh_store_hook_endpoint *)0)->public_key),
               "a rotation carries the endpoint's public key whole");

static bool apply_rotation(struct call *c, struct gh_store_hook_endpoint *e, void *arg)
{
    struct rotation *r = arg;

    (void)c;
    r->dropped = e->prev_version;
    e->prev_version = e->secret_version;
    e->prev_until = (int64_t)gh_wall_ms() + r->grace_ms;
    e->secret_version = r->version;
    memcpy(e->public_key, r->public_key, sizeof(e->public_key));
    return true;
}

/* A new key; the current one becomes the previous one and keeps signing
 * (both signatures, space-separated) for webhooks.rotation_grace. A key
 * still in its grace from an earlier rotation is dropped now. The new key
 * is sealed once, under a version no other rotation draws, and applied
 * over the row as it stands at the write: of two rotations at once, the
 * second applied keeps the first's key as the previous one. */
void gh_api_hook_rotate(struct call *c)
{
    struct gh_store_hook_endpoint e;
    struct gh_err err = {0};
    char shown[GH_HOOKS_KEY_TEXT_MAX];
    struct rotation r = {.grace_ms = (int64_t)c->cfg->webhooks.rotation_grace_ms};
    int rc;

    if (c->body && json_object_size(c->body) > 0) {
        gh_api_reply_error(c, 400, "unknown_field", "rotate-secret takes no body");
        return;
    }
    rc = gh_store_hook_endpoint_get(c->st, c->tenant, c->hook, &e, &err);
    if (rc != GH_OK) {
        gh_api_reply_store_error(c, rc, &err);
        return;
    }
    if (gh_hooks_key_version_new(e.secret_version, e.prev_version, &r.version) != GH_OK) {
        gh_err_set(&err, NULL, 0, 0, "webhooks: cannot draw a key version");
        secrets_failed(c, &err);
        return;
    }
    if (new_key(c, &e, r.version, shown, sizeof(shown), &err) != GH_OK) {
        secrets_failed(c, &err);
        return;
    }
    memcpy(r.public_key, e.public_key, sizeof(r.public_key));
    rc = update_endpoint(c, &e, apply_rotation, &r, &err);
    if (rc != GH_OK) {
        enum rotation_state made = ROTATION_NOT_MADE;
        if (rc != GH_STORE_CONFLICT && rc != GH_STORE_NOT_FOUND && rc != GH_STORE_INVALID)
            made = rotation_made(c, &e, r.version);
        if (made != ROTATION_MADE) {
            if (made == ROTATION_NOT_MADE) drop_key(c, &e, r.version);
            OPENSSL_cleanse(shown, sizeof(shown));
            gh_api_reply_store_error(c, rc, &err);
            return;
        }
    }
    if (r.dropped != r.version) drop_key(c, &e, r.dropped);
    json_t *doc = endpoint_json(&e);
    if (!e.ed25519) json_object_set_new(doc, "secret", json_string(shown));
    OPENSSL_cleanse(shown, sizeof(shown));
    gh_api_reply_json(c, 200, doc);
}

static json_t *delivery_json(const struct gh_store_hook_delivery *d)
{
    json_t *doc =
        json_pack("{s:I, s:s, s:s, s:s, s:s, s:i, s:I, s:I}", "id", (json_int_t)d->id,
                  "endpoint_id", d->endpoint_id, "message_id", d->msg_id, "type", d->type, "status",
                  gh_store_delivery_status_name(d->status), "attempts", (int)d->attempts,
                  "created_at", (json_int_t)d->created_at, "updated_at", (json_int_t)d->updated_at);
    if (d->next_attempt_at)
        json_object_set_new(doc, "next_attempt_at", json_integer((json_int_t)d->next_attempt_at));
    if (d->status == GH_STORE_DELIVERY_PENDING)
        json_object_set_new(doc, "paused", json_boolean(d->paused));
    if (d->last_status) json_object_set_new(doc, "last_status", json_integer(d->last_status));
    if (d->last_error[0]) json_object_set_new(doc, "last_error", json_string(d->last_error));
    return doc;
}

void gh_api_hook_deliveries(struct call *c)
{
    struct gh_store_page page = {0};
    struct gh_err err = {0};
    char cursor[GH_STORE_CURSOR_SIZE + 1], status[16];
    enum gh_store_delivery_status filter = GH_STORE_DELIVERY_ANY;
    struct gh_store_hook_delivery *out;
    json_t *items;
    int rc;

    if (!gh_api_page_params(c, &page, cursor, sizeof(cursor))) return;
    if (!gh_api_query_value(c, "status", status, sizeof(status))) status[0] = '?';
    if (status[0] && (filter = gh_store_delivery_status_parse(status)) == GH_STORE_DELIVERY_ANY) {
        gh_api_reply_error(c, 400, "invalid_query", "status must be pending, succeeded or failed");
        return;
    }
    /* An endpoint that does not exist has no deliveries to list: 404, as
     * reading it answers, not an empty page. */
    struct gh_store_hook_endpoint e;
    rc = gh_store_hook_endpoint_get(c->st, c->tenant, c->hook, &e, &err);
    if (rc != GH_OK) {
        gh_api_reply_store_error(c, rc, &err);
        return;
    }
    out = calloc(page.limit, sizeof(*out));
    rc = out ? gh_store_hook_delivery_list(c->st, c->tenant, c->hook, filter, &page, out, &err)
             : GH_ERROR;
    if (rc != GH_OK) {
        free(out);
        gh_api_reply_store_error(c, rc, &err);
        return;
    }
    items = json_array();
    for (size_t i = 0; i < page.count; i++)
        json_array_append_new(items, delivery_json(&out[i]));
    free(out);
    gh_api_reply_json(c, 200, gh_api_page_doc(items, &page));
}

static bool delivery_id(struct call *c, int64_t *id)
{
    char *end;
    long long v = strtoll(c->delivery, &end, 10);

    if (c->delivery[0] < '1' || c->delivery[0] > '9' || *end || v < 1) {
        gh_api_reply_error(c, 404, "not_found", "delivery not found");
        return false;
    }
    *id = v;
    return true;
}

void gh_api_hook_delivery(struct call *c)
{
    struct gh_store_hook_delivery d;
    struct gh_store_hook_attempt *at = calloc(ATTEMPTS_SHOWN, sizeof(*at));
    struct gh_err err = {0};
    size_t n = 0;
    int64_t id;
    int rc;

    if (at == NULL) {
        gh_api_reply_error(c, 500, "internal_error", "out of memory");
        return;
    }
    if (!delivery_id(c, &id)) goto out;
    rc =
        gh_store_hook_delivery_get(c->st, c->tenant, c->hook, id, &d, at, ATTEMPTS_SHOWN, &n, &err);
    if (rc != GH_OK) {
        gh_api_reply_store_error(c, rc, &err);
        goto out;
    }
    json_t *doc = delivery_json(&d), *list = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *a = json_pack("{s:I, s:I}", "at", (json_int_t)at[i].at, "latency_ms",
                              (json_int_t)at[i].latency_ms);
        if (at[i].status) json_object_set_new(a, "status", json_integer(at[i].status));
        if (at[i].error[0]) json_object_set_new(a, "error", json_string(at[i].error));
        json_object_set_new(a, "response", json_string(at[i].snippet));
        json_array_append_new(list, a);
    }
    json_object_set_new(doc, "attempt_history", list);
    gh_api_reply_json(c, 200, doc);
out:
    free(at);
}

void gh_api_hook_replay(struct call *c)
{
    struct gh_err err = {0};
    int64_t id;
    int rc;

    if (!delivery_id(c, &id)) return;
    rc = gh_store_hook_delivery_replay(c->st, c->tenant, c->hook, id, &err);
    if (rc != GH_OK) {
        gh_api_reply_store_error(c, rc, &err);
        return;
    }
    gh_hooks_dispatcher_poke(rt_of(c)->hooks);
    gh_api_reply_json(c, 202, json_pack("{s:I, s:s}", "id", (json_int_t)id, "status", "pending"));
}

/* POST /v1/events {"tenant", "type", "payload", "id"?}: the message and
 * its deliveries are committed in one transaction before the 202, so an
 * accepted event survives a crash. */
void gh_api_events_publish(struct call *c)
{
    static const char *const fields[] = {"tenant", "type", "payload", "id", NULL};
    struct gh_store_tenant t;
    struct gh_err err = {0};
    char id[GH_STORE_HOOK_MSG_ID_SIZE];
    const char *tenant, *type, *msg_id;
    json_t *payload = c->body ? json_object_get(c->body, "payload") : NULL;
    char *text;
    size_t n = 0;
    bool dup = false;
    int rc;

    if (!gh_api_only_fields(c, fields) || !gh_api_str_field(c, "tenant", &tenant) ||
        !gh_api_str_field(c, "type", &type) || !gh_api_str_field(c, "id", &msg_id))
        return;
    if (tenant == NULL || type == NULL || payload == NULL) {
        gh_api_reply_error(c, 422, "invalid_field", "tenant, type and payload are required");
        return;
    }
    if (!gh_store_valid_hook_type(type)) {
        gh_api_reply_error(c, 422, "invalid_field", "type must be 1-64 of [a-z0-9_.-]");
        return;
    }
    if (msg_id && !gh_store_valid_hook_msg_id(msg_id)) {
        gh_api_reply_error(c, 422, "invalid_field", "id must be 1-64 of [A-Za-z0-9_.-]");
        return;
    }
    if (!json_is_object(payload)) {
        gh_api_reply_error(c, 422, "invalid_field", "payload must be a JSON object");
        return;
    }
    /* A tenant admin publishes for its own tenant only; another tenant
     * does not exist for it. */
    if (!gh_principal_can_admin(&c->who, tenant) || !gh_store_valid_tenant_id(tenant)) {
        gh_api_reply_error(c, 404, "not_found", "no such tenant");
        return;
    }
    /* Only a tenant that is not there is 404: a store that cannot say
     * answers 503 (or 500), as every other call, so a publisher retries. */
    rc = gh_store_tenant_get(c->st, tenant, &t, &err);
    if (rc != GH_OK) {
        if (rc == GH_STORE_NOT_FOUND)
            gh_api_reply_error(c, 404, "not_found", "no such tenant");
        else
            gh_api_reply_store_error(c, rc, &err);
        return;
    }
    text = json_dumps(payload, JSON_COMPACT);
    if (text == NULL) {
        gh_api_reply_error(c, 500, "internal_error", "out of memory");
        return;
    }
    if (strlen(text) > c->cfg->webhooks.max_payload) {
        free(text);
        gh_api_reply_error(c, 413, "payload_too_large",
                           "payload is larger than webhooks.max_payload");
        return;
    }
    rc = gh_hooks_publish(c->st, rt_of(c)->hooks, tenant, msg_id, type, text, strlen(text), id, &n,
                          &dup, &err);
    free(text);
    if (rc != GH_OK) {
        gh_api_reply_store_error(c, rc, &err);
        return;
    }
    gh_api_reply_json(
        c, 202,
        json_pack("{s:s, s:I, s:b}", "id", id, "deliveries", (json_int_t)n, "duplicate", dup));
}
