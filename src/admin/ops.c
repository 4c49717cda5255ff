/* Shared tenant and key operations. */
#include "admin/ops.h"

#include <stdio.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "hooks/events.h"

struct gh_argon2_params gh_ops_argon2(const struct gh_config *cfg)
{
    struct gh_argon2_params p = {
        .memory_kib = cfg->auth.argon2.memory_bytes / 1024,
        .iterations = cfg->auth.argon2.iterations,
        .parallelism = cfg->auth.argon2.parallelism,
    };
    return p;
}

/* The new key's id and hash into <k> (the caller's record), then
 * <insert>: a plain insert, or a rotation's (<old_until> >= 0). */
static int key_make(struct gh_store *st, const struct gh_argon2_params *ap, struct gh_store_key *k,
                    char key_out[GH_APIKEY_LEN + 1], int64_t old_until, int64_t *old_expires_at,
                    struct gh_err *err)
{
    char id[GH_APIKEY_ID_LEN + 1];
    int rc;

    /* Bad lists (a duplicate role) are refused before the key's hash is
     * computed: tens of ms of Argon2id, which the insert's own check would
     * come after. */
    rc = gh_store_key_check_lists(k, err);
    if (rc != GH_OK) return rc;
    if (gh_apikey_new_id(id) != 0)
        return gh_err_set(err, NULL, 0, 0, "no randomness available"), GH_ERROR;
    if (gh_apikey_generate(id, ap, key_out, k->secret_hash) != 0)
        return gh_err_set(err, NULL, 0, 0, "cannot hash the key"), GH_ERROR;
    snprintf(k->id, sizeof(k->id), "%s", id);
    k->status = GH_STORE_KEY_ACTIVE;
    rc = old_until >= 0 ? gh_store_key_rotate(st, k, old_until, old_expires_at, err)
                        : gh_store_key_insert(st, k, err);
    if (rc != GH_OK) gh_apikey_wipe(key_out, GH_APIKEY_LEN + 1);
    memset(k->secret_hash, 0, sizeof(k->secret_hash));
    return rc;
}

int gh_ops_key_create(struct gh_store *st, const struct gh_argon2_params *ap,
                      struct gh_store_key *k, char key_out[GH_APIKEY_LEN + 1], struct gh_err *err)
{
    return key_make(st, ap, k, key_out, -1, NULL, err);
}

int gh_ops_key_rotate(struct gh_store *st, const struct gh_argon2_params *ap, const char *tenant_id,
                      const char *key_id, int64_t grace_ms, struct gh_store_key *out,
                      char key_out[GH_APIKEY_LEN + 1], int64_t *old_expires_at, struct gh_err *err)
{
    struct gh_store_key old;
    int64_t now = (int64_t)gh_wall_ms();
    int rc = gh_store_key_get(st, tenant_id, key_id, &old, err);

    if (rc != GH_OK) return rc;
    if (old.status != GH_STORE_KEY_ACTIVE) {
        gh_err_set(err, NULL, 0, 0, "key %s is revoked", key_id);
        return GH_STORE_CONFLICT;
    }
    *out = old;
    out->id[0] = '\0';
    out->created_at = out->last_used_at = 0;
    snprintf(out->rotated_from, sizeof(out->rotated_from), "%s", old.id);
    /* The new key and the old one's expiry in one transaction: the old key
     * keeps working for the grace period, then expires (an earlier expiry
     * it already had is kept). */
    return key_make(st, ap, out, key_out, now + (grace_ms > 0 ? grace_ms : 0), old_expires_at, err);
}

static void emit(struct gh_store *st, struct gh_hooks_dispatcher *d, const char *tenant,
                 const char *type, const char *payload)
{
    struct gh_err err = {0};

    if (gh_hooks_emit(st, d, tenant, type, payload, &err) != GH_OK)
        gh_log_warn("webhooks: cannot publish %s for tenant %s: %s", type, tenant, err.msg);
}

void gh_ops_emit_key_event(struct gh_store *st, struct gh_hooks_dispatcher *d, const char *tenant,
                           const char *type, const char *key_id, const char *from)
{
    char payload[160];

    snprintf(payload, sizeof(payload), "{\"tenant_id\":\"%s\",\"key_id\":\"%s\"%s%s%s}", tenant,
             key_id, from ? ",\"rotated_from\":\"" : "", from ? from : "", from ? "\"" : "");
    emit(st, d, tenant, type, payload);
}

static void emit_suspended(struct gh_store *st, struct gh_hooks_dispatcher *d, const char *tenant)
{
    char payload[96];

    snprintf(payload, sizeof(payload), "{\"tenant_id\":\"%s\"}", tenant);
    emit(st, d, tenant, "tenant.suspended", payload);
}

int gh_ops_key_revoke(struct gh_store *st, struct gh_hooks_dispatcher *d, const char *tenant_id,
                      const char *key_id, struct gh_store_key *out, struct gh_err *err)
{
    bool moved = false;
    int rc = gh_store_key_get(st, tenant_id, key_id, out, err);

    /* Whether to announce is the store's answer, not the status read
     * above: of two revocations at once (two admins, two nodes) exactly one
     * moves the status under the row's lock, and only that one announces. */
    if (rc == GH_OK)
        rc = gh_store_key_set_status(st, tenant_id, key_id, GH_STORE_KEY_REVOKED, &moved, err);
    if (rc != GH_OK) return rc;
    out->status = GH_STORE_KEY_REVOKED; /* nothing else of the row moves */
    if (moved) gh_ops_emit_key_event(st, d, tenant_id, "key.revoked", key_id, NULL);
    return GH_OK;
}

int gh_ops_tenant_update(struct gh_store *st, struct gh_hooks_dispatcher *d, const char *tenant_id,
                         const struct gh_store_tenant_update *upd, struct gh_store_tenant *out,
                         struct gh_err *err)
{
    bool status_moved = false;
    /* As for a key above: of two suspensions at once, the one the store
     * says moved the status announces. */
    int rc = gh_store_tenant_update(st, tenant_id, upd, out, &status_moved, err);

    if (status_moved && upd->status == GH_STORE_TENANT_SUSPENDED) emit_suspended(st, d, tenant_id);
    return rc;
}

const char *gh_ops_store_error_code(int rc)
{
    switch (rc) {
    case GH_STORE_NOT_FOUND: return "not_found";
    case GH_STORE_CONFLICT: return "conflict";
    case GH_STORE_INVALID: return "invalid_field";
    case GH_STORE_UNAVAILABLE: return "store_unavailable";
    default: return "store_error";
    }
}

json_t *gh_ops_tenant_json(const struct gh_store_tenant *t)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:I, s:I}", "id", t->id, "name", t->name, "status",
                     gh_store_tenant_status_name(t->status), "plan", t->plan, "created_at",
                     (json_int_t)t->created_at, "updated_at", (json_int_t)t->updated_at);
}

json_t *gh_ops_key_json(const struct gh_store_key *k)
{
    json_t *roles = json_array(), *scopes = json_array();
    for (size_t i = 0; i < k->nroles; i++)
        json_array_append_new(roles, json_string(k->roles[i]));
    for (size_t i = 0; i < k->nscopes; i++)
        json_array_append_new(scopes, json_string(k->scopes[i]));
    return json_pack("{s:s, s:s, s:s, s:o, s:o, s:s, s:I, s:I, s:I, s:s*}", "id", k->id,
                     "tenant_id", k->tenant_id, "name", k->name, "roles", roles, "scopes", scopes,
                     "status", gh_store_key_status_name(k->status), "expires_at",
                     (json_int_t)k->expires_at, "created_at", (json_int_t)k->created_at,
                     "last_used_at", (json_int_t)k->last_used_at, "rotated_from",
                     k->rotated_from[0] ? k->rotated_from : NULL);
}

int gh_ops_set_list(json_t *arr, const char *field, struct gh_store_key *k, struct gh_err *err)
{
    bool roles = strcmp(field, "roles") == 0;
    size_t max = roles ? GH_STORE_MAX_ROLES : GH_STORE_MAX_SCOPES;
    size_t i;
    json_t *v;

    if (!json_is_array(arr)) {
        gh_err_set(err, NULL, 0, 0, "%s must be an array of strings", field);
        return GH_STORE_INVALID;
    }
    if (json_array_size(arr) > max) {
        gh_err_set(err, NULL, 0, 0, "%s: at most %zu entries", field, max);
        return GH_STORE_INVALID;
    }
    json_array_foreach(arr, i, v)
    {
        const char *s = json_string_value(v);
        bool ok = s && (roles ? gh_store_valid_role(s) : gh_store_valid_scope(s));
        if (!ok) {
            gh_err_set(err, NULL, 0, 0, "%s[%zu] must match [a-z0-9:._-]{1,64}", field, i);
            return GH_STORE_INVALID;
        }
        snprintf(roles ? k->roles[i] : k->scopes[i], GH_STORE_TOKEN_SIZE, "%s", s);
    }
    if (roles)
        k->nroles = json_array_size(arr);
    else
        k->nscopes = json_array_size(arr);
    return GH_OK;
}
