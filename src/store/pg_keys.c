/* API keys in the PostgreSQL store: insert, get, list a page, revoke, set
 * the expiry, last-used batches, and the directory of every key. Roles and
 * scopes are JSON text as in SQLite (store_lists.c). The [tenant] calls run
 * under row-level security: another tenant's key is NOT_FOUND because the
 * server does not return it, whatever the SQL says. */
#include <openssl/crypto.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/pg_int.h"
#include "store/store_int.h"

/* Fills <k> from the 11 key columns of row <row>. */
static int key_row(const PGresult *r, int row, struct gh_store_key *k, struct gh_err *err)
{
    char status[16];

    if (gh_pg__text(r, row, 0, k->id, sizeof(k->id), err) != GH_OK ||
        gh_pg__text(r, row, 1, k->tenant_id, sizeof(k->tenant_id), err) != GH_OK ||
        gh_pg__text(r, row, 2, k->name, sizeof(k->name), err) != GH_OK ||
        gh_pg__text(r, row, 5, k->secret_hash, sizeof(k->secret_hash), err) != GH_OK ||
        gh_pg__text(r, row, 6, status, sizeof(status), err) != GH_OK ||
        gh_pg__text(r, row, 10, k->rotated_from, sizeof(k->rotated_from), err) != GH_OK)
        return GH_ERROR;
    if (gh_store__list_decode(PQgetvalue(r, row, 3), (size_t)PQgetlength(r, row, 3), k->roles,
                              GH_STORE_MAX_ROLES, &k->nroles) != GH_OK ||
        gh_store__list_decode(PQgetvalue(r, row, 4), (size_t)PQgetlength(r, row, 4), k->scopes,
                              GH_STORE_MAX_SCOPES, &k->nscopes) != GH_OK)
        return gh_err_set(err, NULL, 0, 0, "store: api_keys roles or scopes: not a valid list");
    k->status = gh_store_key_status_parse(status);
    if (k->status == GH_STORE_KEY_ANY)
        return gh_err_set(err, NULL, 0, 0, "store: api_keys.status: unknown value");
    k->expires_at = gh_pg__i64(r, row, 7);
    k->created_at = gh_pg__i64(r, row, 8);
    k->last_used_at = gh_pg__i64(r, row, 9);
    return GH_OK;
}

/* GH_OK when statement <id> bound to (<a1>, <a2>) returns a row, else
 * NOT_FOUND (or the failure). */
static int exists(struct gh_pg_tx *tx, enum gh_pg_stmt id, const char *a1, const char *a2,
                  struct gh_err *err)
{
    struct gh_pg_args a = {0};
    PGresult *r = NULL;
    int rc;

    gh_pg__arg(&a, a1);
    gh_pg__arg(&a, a2);
    rc = gh_pg__run(tx, id, &a, &r, err);
    if (rc == GH_OK && PQntuples(r) == 0) rc = GH_STORE_NOT_FOUND;
    PQclear(r);
    return rc;
}

/* A rotation's second half, in the insert's transaction: the old key's
 * expiry (gh_store_ops.key_insert). */
static int expire_rotated(struct gh_pg_tx *tx, const struct gh_store_key *k, int64_t old_until,
                          int64_t *old_expires_at, struct gh_err *err)
{
    struct gh_pg_args a = {0};
    PGresult *r = NULL;
    int rc;

    gh_pg__arg(&a, k->rotated_from);
    gh_pg__arg(&a, k->tenant_id);
    gh_pg__arg_i64(&a, old_until);
    rc = gh_pg__run(tx, GH_PG_KEY_EXPIRE_ROTATED, &a, &r, err);
    if (rc == GH_OK && PQntuples(r) == 0) {
        gh_err_set(err, NULL, 0, 0, "rotated_from: the key is no longer active");
        rc = GH_STORE_CONFLICT;
    }
    if (rc == GH_OK && old_expires_at != NULL) *old_expires_at = gh_pg__i64(r, 0, 0);
    PQclear(r);
    return rc;
}

int gh_pg__key_insert(struct gh_store *st, const struct gh_store_key *k, int64_t old_until,
                      int64_t *old_expires_at, struct gh_err *err)
{
    char *roles = gh_store__list_encode(k->roles, k->nroles);
    char *scopes = gh_store__list_encode(k->scopes, k->nscopes);
    struct gh_pg_args a = {0};
    struct gh_pg_tx tx;
    PGresult *r = NULL;
    int rc;

    if (roles == NULL || scopes == NULL) {
        rc = gh_err_set(err, NULL, 0, 0, "store: out of memory");
        goto out;
    }
    rc = gh_pg__begin(gh_pg__of(st), GH_PG_TENANT, k->tenant_id, false, &tx, err);
    if (rc != GH_OK) goto out;
    /* The tenant exists (its own row is the one RLS lets us see). */
    gh_pg__arg(&a, k->tenant_id);
    rc = gh_pg__run(&tx, GH_PG_TENANT_GET, &a, &r, err);
    if (rc == GH_OK && PQntuples(r) == 0) {
        rc = GH_STORE_NOT_FOUND;
        gh_err_set(err, NULL, 0, 0, "tenant not found");
    }
    PQclear(r);
    /* rotated_from names a key of the same tenant: only those are visible. */
    if (rc == GH_OK && k->rotated_from[0] != '\0') {
        rc = exists(&tx, GH_PG_KEY_OWNED, k->rotated_from, k->tenant_id, err);
        if (rc == GH_STORE_NOT_FOUND) gh_err_set(err, NULL, 0, 0, "rotated_from: key not found");
    }
    if (rc != GH_OK) goto end;
    memset(&a, 0, sizeof(a));
    gh_pg__arg(&a, k->id);
    gh_pg__arg(&a, k->tenant_id);
    gh_pg__arg(&a, k->name);
    gh_pg__arg(&a, roles);
    gh_pg__arg(&a, scopes);
    gh_pg__arg(&a, k->secret_hash);
    gh_pg__arg(&a, gh_store_key_status_name(k->status));
    gh_pg__arg_i64(&a, k->expires_at);
    gh_pg__arg_i64(&a, k->created_at);
    gh_pg__arg(&a, k->rotated_from[0] != '\0' ? k->rotated_from : NULL);
    /* A taken id (of any tenant, invisible here) is the primary key's
     * unique violation: CONFLICT "id: a key with this id already exists". */
    rc = gh_pg__run(&tx, GH_PG_KEY_INSERT, &a, NULL, err);
    if (rc == GH_OK && old_until >= 0) rc = expire_rotated(&tx, k, old_until, old_expires_at, err);
    if (rc == GH_OK) rc = gh_pg__bump(&tx, err);
end:
    rc = gh_pg__end(&tx, rc, err);
out:
    free(roles);
    free(scopes);
    return rc;
}

int gh_pg__key_get(struct gh_store *st, const char *tenant_id, const char *key_id,
                   struct gh_store_key *out, struct gh_err *err)
{
    struct gh_pg_args a = {0};
    struct gh_pg_tx tx;
    PGresult *r = NULL;
    int rc = gh_pg__begin(gh_pg__of(st), GH_PG_TENANT, tenant_id, false, &tx, err);

    if (rc != GH_OK) return rc;
    gh_pg__arg(&a, key_id);
    gh_pg__arg(&a, tenant_id);
    rc = gh_pg__run(&tx, GH_PG_KEY_GET, &a, &r, err);
    if (rc == GH_OK && PQntuples(r) == 0) {
        rc = GH_STORE_NOT_FOUND;
        gh_err_set(err, NULL, 0, 0, "key not found");
    }
    if (rc == GH_OK) rc = key_row(r, 0, out, err);
    PQclear(r);
    return gh_pg__end(&tx, rc, err);
}

int gh_pg__key_list(struct gh_store *st, const char *tenant_id, const struct gh_store_keyset *after,
                    size_t limit, struct gh_store_key *out, size_t *count, bool *more,
                    struct gh_err *err)
{
    struct gh_pg_args a = {0};
    struct gh_pg_tx tx;
    PGresult *r = NULL;
    int rc;

    *count = 0;
    *more = false;
    rc = gh_pg__begin(gh_pg__of(st), GH_PG_TENANT, tenant_id, false, &tx, err);
    if (rc != GH_OK) return rc;
    gh_pg__arg(&a, tenant_id);
    gh_pg__arg_i64(&a, after ? after->created_at : INT64_MIN);
    gh_pg__arg(&a, after ? after->id : "");
    gh_pg__arg_i64(&a, (int64_t)limit + 1);
    rc = gh_pg__run(&tx, GH_PG_KEY_LIST, &a, &r, err);
    for (int i = 0; rc == GH_OK && i < PQntuples(r); i++) {
        if (*count == limit) {
            *more = true;
            break;
        }
        rc = key_row(r, i, &out[*count], err);
        if (rc == GH_OK) (*count)++;
    }
    PQclear(r);
    return gh_pg__end(&tx, rc, err);
}

int gh_pg__key_set_status(struct gh_store *st, const char *tenant_id, const char *key_id,
                          enum gh_store_key_status status, bool *moved, struct gh_err *err)
{
    enum gh_store_key_status cur = GH_STORE_KEY_ANY;
    struct gh_pg_args a = {0};
    struct gh_pg_tx tx;
    PGresult *r = NULL;
    int rc = gh_pg__begin(gh_pg__of(st), GH_PG_TENANT, tenant_id, false, &tx, err);

    if (rc != GH_OK) return rc;
    gh_pg__arg(&a, key_id);
    gh_pg__arg(&a, tenant_id);
    /* FOR UPDATE: two nodes revoking at once bump the counter once. */
    rc = gh_pg__run(&tx, GH_PG_KEY_STATUS_LOCK, &a, &r, err);
    if (rc == GH_OK && PQntuples(r) == 0) {
        rc = GH_STORE_NOT_FOUND;
        gh_err_set(err, NULL, 0, 0, "key not found");
    }
    if (rc == GH_OK) cur = gh_store_key_status_parse(PQgetvalue(r, 0, 0));
    PQclear(r);
    if (rc != GH_OK || cur == status) goto out; /* nothing changes: no bump */
    if (cur == GH_STORE_KEY_REVOKED) {
        rc = GH_STORE_CONFLICT;
        gh_err_set(err, NULL, 0, 0, "status: a revoked key cannot be made active again");
        goto out;
    }
    gh_pg__arg(&a, gh_store_key_status_name(status));
    rc = gh_pg__run(&tx, GH_PG_KEY_SET_STATUS, &a, NULL, err);
    if (rc == GH_OK) rc = gh_pg__bump(&tx, err);
    *moved = true;
out:
    return gh_pg__end(&tx, rc, err);
}

int gh_pg__key_set_expiry(struct gh_store *st, const char *tenant_id, const char *key_id,
                          int64_t expires_at, struct gh_err *err)
{
    struct gh_pg_args a = {0};
    struct gh_pg_tx tx;
    PGresult *r = NULL;
    int rc = gh_pg__begin(gh_pg__of(st), GH_PG_TENANT, tenant_id, false, &tx, err);

    if (rc != GH_OK) return rc;
    gh_pg__arg(&a, key_id);
    gh_pg__arg(&a, tenant_id);
    gh_pg__arg_i64(&a, expires_at);
    rc = gh_pg__run(&tx, GH_PG_KEY_SET_EXPIRY, &a, &r, err);
    if (rc == GH_OK && strcmp(PQcmdTuples(r), "0") == 0) {
        rc = GH_STORE_NOT_FOUND;
        gh_err_set(err, NULL, 0, 0, "key not found");
    }
    PQclear(r);
    if (rc == GH_OK) rc = gh_pg__bump(&tx, err);
    return gh_pg__end(&tx, rc, err);
}

static int touch_cmp(const void *a, const void *b)
{
    return strcmp(((const struct gh_store_key_touch *)a)->key_id,
                  ((const struct gh_store_key_touch *)b)->key_id);
}

/* In key id order (gh_pg__order): every node touches the keys its traffic
 * used, often the same ones. */
int gh_pg__keys_touch_batch(struct gh_store *st, const struct gh_store_key_touch *touches, size_t n,
                            struct gh_err *err)
{
    struct gh_pg_tx tx;
    size_t *order = gh_pg__order(touches, n, sizeof(*touches), touch_cmp);
    int rc;

    if (order == NULL) return gh_err_set(err, NULL, 0, 0, "store: out of memory");
    rc = gh_pg__begin(gh_pg__of(st), GH_PG_OPERATOR, NULL, false, &tx, err);
    if (rc != GH_OK) {
        free(order);
        return rc;
    }
    for (size_t i = 0; rc == GH_OK && i < n; i++) {
        struct gh_pg_args a = {0};
        gh_pg__arg(&a, touches[order[i]].key_id);
        gh_pg__arg_i64(&a, touches[order[i]].last_used_at);
        rc = gh_pg__run(&tx, GH_PG_KEY_TOUCH, &a, NULL, err);
    }
    free(order);
    return gh_pg__end(&tx, rc, err);
}

/* ---- The directory ------------------------------------------------------------ */

struct dir_walk {
    gh_store_key_cb cb;
    void *arg;
    struct gh_err *err;
    struct gh_store_key k;
};

static int dir_row(const PGresult *r, void *arg)
{
    struct dir_walk *w = arg;
    int rc;

    memset(&w->k, 0, sizeof(w->k));
    rc = key_row(r, 0, &w->k, w->err);
    if (rc != GH_OK) return rc;
    return w->cb(&w->k, gh_store_tenant_status_parse(PQgetvalue(r, 0, 11)), w->arg);
}

int gh_pg__key_directory_load(struct gh_store *st, gh_store_key_cb cb, void *arg, uint64_t *version,
                              struct gh_err *err)
{
    struct dir_walk *w = malloc(sizeof(*w)); /* ~3.6 KiB: not on the caller's stack */
    struct gh_pg_tx tx;
    PGresult *r = NULL;
    int rc;

    if (w == NULL) return gh_err_set(err, NULL, 0, 0, "store: out of memory");
    w->cb = cb;
    w->arg = arg;
    w->err = err;
    /* One snapshot: the counter and the rows are of the same moment. */
    rc = gh_pg__begin(gh_pg__of(st), GH_PG_OPERATOR, NULL, true, &tx, err);
    if (rc != GH_OK) goto out;
    rc = gh_pg__run(&tx, GH_PG_VERSION_GET, NULL, &r, err);
    if (rc == GH_OK && PQntuples(r) != 1)
        rc = gh_err_set(err, NULL, 0, 0, "store: change counter: missing (not migrated?)");
    if (rc == GH_OK) *version = (uint64_t)gh_pg__i64(r, 0, 0);
    PQclear(r);
    if (rc == GH_OK) rc = gh_pg__stream(&tx, GH_PG_KEY_DIRECTORY, NULL, dir_row, w, err);
    rc = gh_pg__end(&tx, rc, err);
out:
    OPENSSL_cleanse(w, sizeof(*w)); /* the last row's hash */
    free(w);
    return rc;
}
