/* API keys in the SQLite store: insert, get, list a page, revoke, set the
 * expiry, last-used batches, and the directory of every key that the auth
 * module loads into memory. Roles and scopes are stored as JSON arrays of
 * strings (jansson), checked again when read back. Input arrives validated
 * by the gh_store_* wrappers (store.c). */
#include <openssl/crypto.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/sqlite_int.h"
#include "store/store_int.h"

/* ---- Rows ------------------------------------------------------------------- */

/* Decodes the JSON array in column <col> into <items>; refuses a row that
 * the wrappers would have refused (too many, too long, not strings). */
static int list_decode(sqlite3_stmt *s, int col, char (*items)[GH_STORE_TOKEN_SIZE], size_t max,
                       size_t *n, struct gh_err *err)
{
    const char *text = (const char *)sqlite3_column_text(s, col);
    size_t len = (size_t)sqlite3_column_bytes(s, col);

    if (gh_store__list_decode(text, len, items, max, n) == GH_OK) return GH_OK;
    return gh_err_set(err, NULL, 0, 0, "store: api_keys.%s: not a valid list",
                      sqlite3_column_name(s, col));
}

/* Fills <k> from the 11 columns of KEY_COLS starting at column 0. */
static int key_row(sqlite3_stmt *s, struct gh_store_key *k, struct gh_err *err)
{
    char status[16];

    if (gh_sqlite__col_text(s, 0, k->id, sizeof(k->id), err) != GH_OK ||
        gh_sqlite__col_text(s, 1, k->tenant_id, sizeof(k->tenant_id), err) != GH_OK ||
        gh_sqlite__col_text(s, 2, k->name, sizeof(k->name), err) != GH_OK ||
        list_decode(s, 3, k->roles, GH_STORE_MAX_ROLES, &k->nroles, err) != GH_OK ||
        list_decode(s, 4, k->scopes, GH_STORE_MAX_SCOPES, &k->nscopes, err) != GH_OK ||
        gh_sqlite__col_text(s, 5, k->secret_hash, sizeof(k->secret_hash), err) != GH_OK ||
        gh_sqlite__col_text(s, 6, status, sizeof(status), err) != GH_OK ||
        gh_sqlite__col_text(s, 10, k->rotated_from, sizeof(k->rotated_from), err) != GH_OK)
        return GH_ERROR;
    k->status = gh_store_key_status_parse(status);
    if (k->status == GH_STORE_KEY_ANY)
        return gh_err_set(err, NULL, 0, 0, "store: api_keys.status: unknown value");
    k->expires_at = sqlite3_column_int64(s, 7);
    k->created_at = sqlite3_column_int64(s, 8);
    k->last_used_at = sqlite3_column_int64(s, 9);
    return GH_OK;
}

/* ---- Insert ----------------------------------------------------------------- */

/* Looks up the tenant owning key <key_id> into <tenant_id> (of
 * GH_STORE_TENANT_ID_SIZE bytes); NOT_FOUND when there is no such key. */
static int key_owner(struct gh_sqlite_conn *c, const char *key_id, char *tenant_id,
                     struct gh_err *err)
{
    sqlite3_stmt *s = gh_sqlite__stmt(c, GH_SQ_KEY_EXISTS, err);
    int rc;

    if (s == NULL) return GH_ERROR;
    gh_sqlite__bind_text(s, 1, key_id);
    rc = gh_sqlite__row(c, s, "key lookup", err);
    if (rc != GH_OK) return rc;
    rc = gh_sqlite__col_text(s, 0, tenant_id, GH_STORE_TENANT_ID_SIZE, err);
    gh_sqlite__done(s);
    return rc;
}

/* The checks before an insert, in the writer's transaction: the tenant
 * exists, the id is free, and rotated_from names a key of the same tenant. */
static int insert_checks(struct gh_sqlite_conn *c, const struct gh_store_key *k, struct gh_err *err)
{
    char owner[GH_STORE_TENANT_ID_SIZE];
    sqlite3_stmt *s = gh_sqlite__stmt(c, GH_SQ_TENANT_GET, err);
    int rc;

    if (s == NULL) return GH_ERROR;
    gh_sqlite__bind_text(s, 1, k->tenant_id);
    rc = gh_sqlite__row(c, s, "tenant", err);
    if (rc == GH_STORE_NOT_FOUND) gh_err_set(err, NULL, 0, 0, "tenant not found");
    if (rc != GH_OK) return rc;
    gh_sqlite__done(s);

    rc = key_owner(c, k->id, owner, err);
    if (rc == GH_OK) {
        gh_err_set(err, NULL, 0, 0, "id: a key with this id already exists");
        return GH_STORE_CONFLICT;
    }
    if (rc != GH_STORE_NOT_FOUND) return rc;

    if (k->rotated_from[0] == '\0') return GH_OK;
    rc = key_owner(c, k->rotated_from, owner, err);
    if (rc == GH_OK && strcmp(owner, k->tenant_id) != 0) rc = GH_STORE_NOT_FOUND;
    if (rc == GH_STORE_NOT_FOUND) gh_err_set(err, NULL, 0, 0, "rotated_from: key not found");
    return rc;
}

/* A rotation's second half, in the insert's transaction: the old key's
 * expiry (gh_store_ops.key_insert). */
static int expire_rotated(struct gh_sqlite_conn *c, const struct gh_store_key *k, int64_t old_until,
                          int64_t *old_expires_at, struct gh_err *err)
{
    sqlite3_stmt *s = gh_sqlite__stmt(c, GH_SQ_KEY_EXPIRE_ROTATED, err);
    int rc;

    if (s == NULL) return GH_ERROR;
    gh_sqlite__bind_text(s, 1, k->rotated_from);
    gh_sqlite__bind_text(s, 2, k->tenant_id);
    sqlite3_bind_int64(s, 3, old_until);
    rc = gh_sqlite__row(c, s, "rotated key expiry", err);
    if (rc == GH_STORE_NOT_FOUND) {
        gh_err_set(err, NULL, 0, 0, "rotated_from: the key is no longer active");
        return GH_STORE_CONFLICT;
    }
    if (rc != GH_OK) return rc;
    if (old_expires_at != NULL) *old_expires_at = sqlite3_column_int64(s, 0);
    gh_sqlite__done(s);
    return GH_OK;
}

int gh_sqlite__key_insert(struct gh_store *st, const struct gh_store_key *k, int64_t old_until,
                          int64_t *old_expires_at, struct gh_err *err)
{
    struct gh_sqlite_store *ss = gh_sqlite__of(st);
    struct gh_sqlite_conn *c = &ss->writer;
    char *roles = gh_store__list_encode(k->roles, k->nroles);
    char *scopes = gh_store__list_encode(k->scopes, k->nscopes);
    sqlite3_stmt *s;
    int rc;

    if (roles == NULL || scopes == NULL) {
        rc = gh_err_set(err, NULL, 0, 0, "store: out of memory");
        goto out;
    }
    rc = gh_sqlite__write_begin(ss, err);
    if (rc != GH_OK) goto out;
    rc = insert_checks(c, k, err);
    if (rc != GH_OK) goto end;
    s = gh_sqlite__stmt(c, GH_SQ_KEY_INSERT, err);
    if (s == NULL) {
        rc = GH_ERROR;
        goto end;
    }
    gh_sqlite__bind_text(s, 1, k->id);
    gh_sqlite__bind_text(s, 2, k->tenant_id);
    gh_sqlite__bind_text(s, 3, k->name);
    gh_sqlite__bind_text(s, 4, roles);
    gh_sqlite__bind_text(s, 5, scopes);
    gh_sqlite__bind_text(s, 6, k->secret_hash);
    gh_sqlite__bind_text(s, 7, gh_store_key_status_name(k->status));
    sqlite3_bind_int64(s, 8, k->expires_at);
    sqlite3_bind_int64(s, 9, k->created_at);
    if (k->rotated_from[0] != '\0') gh_sqlite__bind_text(s, 10, k->rotated_from);
    rc = gh_sqlite__exec(c, s, "key insert", err);
    rc = gh_sqlite__conflict(c, rc);
    if (rc == GH_OK && old_until >= 0) rc = expire_rotated(c, k, old_until, old_expires_at, err);
    if (rc == GH_OK) rc = gh_sqlite__bump(c, err);
end:
    rc = gh_sqlite__write_end(ss, rc, err);
out:
    free(roles);
    free(scopes);
    return rc;
}

/* ---- Reads ------------------------------------------------------------------ */

int gh_sqlite__key_get(struct gh_store *st, const char *tenant_id, const char *key_id,
                       struct gh_store_key *out, struct gh_err *err)
{
    struct gh_sqlite_conn *c = gh_sqlite__read_acquire(gh_sqlite__of(st));
    sqlite3_stmt *s = gh_sqlite__stmt(c, GH_SQ_KEY_GET, err);
    int rc = GH_ERROR;

    if (s == NULL) goto out;
    gh_sqlite__bind_text(s, 1, key_id);
    gh_sqlite__bind_text(s, 2, tenant_id);
    rc = gh_sqlite__row(c, s, "key", err);
    if (rc == GH_STORE_NOT_FOUND) gh_err_set(err, NULL, 0, 0, "key not found");
    if (rc != GH_OK) goto out;
    rc = key_row(s, out, err);
    gh_sqlite__done(s);
out:
    gh_sqlite__read_release(c);
    return rc;
}

int gh_sqlite__key_list(struct gh_store *st, const char *tenant_id,
                        const struct gh_store_keyset *after, size_t limit, struct gh_store_key *out,
                        size_t *count, bool *more, struct gh_err *err)
{
    struct gh_sqlite_conn *c = gh_sqlite__read_acquire(gh_sqlite__of(st));
    sqlite3_stmt *s = gh_sqlite__stmt(c, GH_SQ_KEY_LIST, err);
    int rc = GH_OK, step;

    *count = 0;
    *more = false;
    if (s == NULL) {
        rc = GH_ERROR;
        goto out;
    }
    gh_sqlite__bind_text(s, 1, tenant_id);
    sqlite3_bind_int64(s, 2, after ? after->created_at : INT64_MIN);
    gh_sqlite__bind_text(s, 3, after ? after->id : "");
    sqlite3_bind_int64(s, 4,
                       (int64_t)limit + 1); /* one more row tells whether a next page exists */
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        if (*count == limit) {
            *more = true;
            break;
        }
        rc = key_row(s, &out[*count], err);
        if (rc != GH_OK) break;
        (*count)++;
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE) rc = gh_sqlite__fail(c, "key list", err);
    gh_sqlite__done(s);
out:
    gh_sqlite__read_release(c);
    return rc;
}

/* ---- Changes ---------------------------------------------------------------- */

int gh_sqlite__key_set_status(struct gh_store *st, const char *tenant_id, const char *key_id,
                              enum gh_store_key_status status, bool *moved, struct gh_err *err)
{
    struct gh_sqlite_store *ss = gh_sqlite__of(st);
    struct gh_sqlite_conn *c = &ss->writer;
    enum gh_store_key_status cur;
    char text[16];
    sqlite3_stmt *s;
    int rc;

    rc = gh_sqlite__write_begin(ss, err);
    if (rc != GH_OK) return rc;
    s = gh_sqlite__stmt(c, GH_SQ_KEY_STATUS_GET, err);
    if (s == NULL) {
        rc = GH_ERROR;
        goto out;
    }
    gh_sqlite__bind_text(s, 1, key_id);
    gh_sqlite__bind_text(s, 2, tenant_id);
    rc = gh_sqlite__row(c, s, "key status", err);
    if (rc == GH_STORE_NOT_FOUND) gh_err_set(err, NULL, 0, 0, "key not found");
    if (rc != GH_OK) goto out;
    rc = gh_sqlite__col_text(s, 0, text, sizeof(text), err);
    gh_sqlite__done(s);
    if (rc != GH_OK) goto out;
    cur = gh_store_key_status_parse(text);
    if (cur == status) goto out; /* nothing changes: no bump */
    if (cur == GH_STORE_KEY_REVOKED) {
        rc = GH_STORE_CONFLICT;
        gh_err_set(err, NULL, 0, 0, "status: a revoked key cannot be made active again");
        goto out;
    }
    s = gh_sqlite__stmt(c, GH_SQ_KEY_SET_STATUS, err);
    if (s == NULL) {
        rc = GH_ERROR;
        goto out;
    }
    gh_sqlite__bind_text(s, 1, key_id);
    gh_sqlite__bind_text(s, 2, tenant_id);
    gh_sqlite__bind_text(s, 3, gh_store_key_status_name(status));
    rc = gh_sqlite__exec(c, s, "key status", err);
    if (rc == GH_OK) rc = gh_sqlite__bump(c, err);
    *moved = true;
out:
    return gh_sqlite__write_end(ss, rc, err);
}

int gh_sqlite__key_set_expiry(struct gh_store *st, const char *tenant_id, const char *key_id,
                              int64_t expires_at, struct gh_err *err)
{
    struct gh_sqlite_store *ss = gh_sqlite__of(st);
    struct gh_sqlite_conn *c = &ss->writer;
    sqlite3_stmt *s;
    int rc;

    rc = gh_sqlite__write_begin(ss, err);
    if (rc != GH_OK) return rc;
    s = gh_sqlite__stmt(c, GH_SQ_KEY_SET_EXPIRY, err);
    if (s == NULL) {
        rc = GH_ERROR;
        goto out;
    }
    gh_sqlite__bind_text(s, 1, key_id);
    gh_sqlite__bind_text(s, 2, tenant_id);
    sqlite3_bind_int64(s, 3, expires_at);
    rc = gh_sqlite__exec(c, s, "key expiry", err);
    if (rc != GH_OK) goto out;
    if (sqlite3_changes(c->db) == 0) {
        rc = GH_STORE_NOT_FOUND;
        gh_err_set(err, NULL, 0, 0, "key not found");
        goto out;
    }
    rc = gh_sqlite__bump(c, err);
out:
    return gh_sqlite__write_end(ss, rc, err);
}

int gh_sqlite__keys_touch_batch(struct gh_store *st, const struct gh_store_key_touch *touches,
                                size_t n, struct gh_err *err)
{
    struct gh_sqlite_store *ss = gh_sqlite__of(st);
    struct gh_sqlite_conn *c = &ss->writer;
    sqlite3_stmt *s;
    int rc;

    rc = gh_sqlite__write_begin(ss, err);
    if (rc != GH_OK) return rc;
    s = gh_sqlite__stmt(c, GH_SQ_KEY_TOUCH, err);
    if (s == NULL) rc = GH_ERROR;
    for (size_t i = 0; rc == GH_OK && i < n; i++) {
        gh_sqlite__bind_text(s, 1, touches[i].key_id);
        sqlite3_bind_int64(s, 2, touches[i].last_used_at);
        rc = gh_sqlite__exec(c, s, "key last used", err);
    }
    return gh_sqlite__write_end(ss, rc, err);
}

/* ---- The directory ---------------------------------------------------------- */

int gh_sqlite__key_directory_load(struct gh_store *st, gh_store_key_cb cb, void *arg,
                                  uint64_t *version, struct gh_err *err)
{
    struct gh_sqlite_conn *c = gh_sqlite__read_acquire(gh_sqlite__of(st));
    struct gh_store_key *k = malloc(sizeof(*k)); /* ~3.6 KiB: not on the caller's stack */
    sqlite3_stmt *s;
    char text[16];
    int rc, step;

    if (k == NULL) {
        rc = gh_err_set(err, NULL, 0, 0, "store: out of memory");
        goto out;
    }
    /* One transaction: the counter and the rows come from the same snapshot. */
    rc = gh_sqlite__read_begin(c, err);
    if (rc != GH_OK) goto out;
    rc = gh_sqlite__version(c, version, err);
    if (rc != GH_OK) goto end;
    s = gh_sqlite__stmt(c, GH_SQ_KEY_DIRECTORY, err);
    if (s == NULL) {
        rc = GH_ERROR;
        goto end;
    }
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        enum gh_store_tenant_status ts;

        memset(k, 0, sizeof(*k));
        rc = key_row(s, k, err);
        if (rc == GH_OK) rc = gh_sqlite__col_text(s, 11, text, sizeof(text), err);
        if (rc != GH_OK) break;
        ts = gh_store_tenant_status_parse(text);
        rc = cb(k, ts, arg);
        if (rc != GH_OK) break;
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE) rc = gh_sqlite__fail(c, "key directory", err);
    gh_sqlite__done(s);
end:
    gh_sqlite__read_end(c);
out:
    gh_sqlite__read_release(c);
    if (k != NULL) OPENSSL_cleanse(k, sizeof(*k)); /* the last row's hash */
    free(k);
    return rc;
}
