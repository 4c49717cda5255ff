/* Operations on tenants and keys shared by the admin API and the CLI, so
 * both do exactly the same thing (one place generates, hashes and stores a
 * key; one place rotates). Synchronous: call from the admin thread or the
 * CLI, never from a worker loop. */
#ifndef GH_ADMIN_OPS_H
#define GH_ADMIN_OPS_H

#include <jansson.h>

#include "auth/apikey.h"
#include "config/config.h"
#include "store/store.h"

struct gh_hooks_dispatcher;

struct gh_argon2_params gh_ops_argon2(const struct gh_config *cfg);

/* Creates a key. <k> in: tenant_id, name, roles, scopes, expires_at,
 * rotated_from; out: the stored record. <key_out> gets the full key, to be
 * shown once. Returns GH_OK or a store code (GH_STORE_INVALID, ...). */
int gh_ops_key_create(struct gh_store *st, const struct gh_argon2_params *ap,
                      struct gh_store_key *k, char key_out[GH_APIKEY_LEN + 1], struct gh_err *err);

/* Rotates <key_id> of <tenant_id>: a new key with the same name, roles and
 * scopes, and the old one expiring <grace_ms> from now (at once when 0),
 * or earlier if it already expired earlier; *<old_expires_at> says when. */
int gh_ops_key_rotate(struct gh_store *st, const struct gh_argon2_params *ap, const char *tenant_id,
                      const char *key_id, int64_t grace_ms, struct gh_store_key *out,
                      char key_out[GH_APIKEY_LEN + 1], int64_t *old_expires_at, struct gh_err *err);

/* The changes the admin API and the CLI announce: each applies it, then
 * sends the tenant's event when it changed something (key.revoked for a key
 * not revoked already, tenant.suspended for a tenant not suspended already),
 * through <d> (NULL in the CLI, as below). <out> gets the row as it is now.
 * The store's codes. */
int gh_ops_key_revoke(struct gh_store *st, struct gh_hooks_dispatcher *d, const char *tenant_id,
                      const char *key_id, struct gh_store_key *out, struct gh_err *err);
int gh_ops_tenant_update(struct gh_store *st, struct gh_hooks_dispatcher *d, const char *tenant_id,
                         const struct gh_store_tenant_update *upd, struct gh_store_tenant *out,
                         struct gh_err *err);

/* The tenant's webhook event about one of its keys, just made
 * (docs/webhooks.md, "Events"), by the admin API or the CLI: ids only,
 * never a key. <from> is
 * the key a rotation replaced (NULL otherwise). <d> is poked (NULL in the
 * CLI: every gateway's dispatcher finds the deliveries at its next look, in
 * at most a second). A failure is logged; the change stands. */
void gh_ops_emit_key_event(struct gh_store *st, struct gh_hooks_dispatcher *d, const char *tenant,
                           const char *type, const char *key_id, const char *from);

/* The error code the admin API answers for a store return code other than
 * GH_OK ("not_found", "conflict", ...): also the reason of an audit event
 * of a change that failed. */
const char *gh_ops_store_error_code(int rc);

/* JSON views (never with secrets or hashes). New references. */
json_t *gh_ops_tenant_json(const struct gh_store_tenant *t);
json_t *gh_ops_key_json(const struct gh_store_key *k);

/* Fills roles/scopes of <k> from a JSON array of strings, validating each.
 * Returns GH_OK or GH_STORE_INVALID with <err> naming the field. */
int gh_ops_set_list(json_t *arr, const char *field, struct gh_store_key *k, struct gh_err *err);

#endif
