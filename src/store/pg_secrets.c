/* Sealed secrets and the master key rotation record in the PostgreSQL
 * store, as sqlite_secrets.c: rows hold ciphertext and wrapped keys only
 * (src/secrets seals them); this file moves bytes, it never decrypts. A
 * tenant's own calls run under row-level security; the rotation's calls
 * and the own keys' column are operator work. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/pg_int.h"

static void arg_blob(struct gh_pg_args *a, const uint8_t *p, size_t len)
{
    gh_pg__arg_bytes(a, (const char *)p, len);
}

/* Copies bytea column <col> (text format: hex) of row <row> into <dst> of
 * <cap> bytes and sets *len; GH_ERROR when it is missing, empty or larger
 * than the field (a row the gateway did not write). */
static int col_blob(const PGresult *r, int row, int col, uint8_t *dst, size_t cap, size_t *len,
                    struct gh_err *err)
{
    unsigned char *raw = NULL;
    size_t n = 0;
    int rc = GH_OK;

    if (!PQgetisnull(r, row, col))
        raw = PQunescapeBytea((const unsigned char *)PQgetvalue(r, row, col), &n);
    if (raw == NULL || n == 0 || n > cap)
        rc = gh_err_set(err, NULL, 0, 0, "store: column %s: missing or too long", PQfname(r, col));
    else {
        memcpy(dst, raw, n);
        *len = n;
    }
    if (raw != NULL) PQfreemem(raw);
    return rc;
}

/* Fills <out> from the GH_PG_SECRET_COLS of row <row>. */
static int secret_row(const PGresult *r, int row, struct gh_store_secret *out, struct gh_err *err)
{
    size_t nonce_len = 0;
    int64_t v;
    int rc;

    memset(out, 0, sizeof(*out));
    rc = gh_pg__text(r, row, 0, out->tenant_id, sizeof(out->tenant_id), err);
    if (rc == GH_OK) rc = gh_pg__text(r, row, 1, out->name, sizeof(out->name), err);
    if (rc == GH_OK)
        rc = col_blob(r, row, 2, out->ciphertext, sizeof(out->ciphertext), &out->ciphertext_len,
                      err);
    if (rc == GH_OK) rc = col_blob(r, row, 3, out->nonce, sizeof(out->nonce), &nonce_len, err);
    if (rc == GH_OK)
        rc =
            col_blob(r, row, 4, out->wrapped_dek, sizeof(out->wrapped_dek), &out->wrapped_len, err);
    if (rc != GH_OK) return rc;
    v = gh_pg__i64(r, row, 5);
    if (nonce_len != sizeof(out->nonce) || v < 1 || v > UINT32_MAX)
        return gh_err_set(err, NULL, 0, 0, "store: secrets: a row has a bad nonce or version");
    out->kek_version = (uint32_t)v;
    out->created_at = gh_pg__i64(r, row, 6);
    out->updated_at = gh_pg__i64(r, row, 7);
    return GH_OK;
}

int gh_pg__secret_put(struct gh_store *st, const struct gh_store_secret *sec, int64_t now,
                      struct gh_err *err)
{
    struct gh_pg_args a = {0};
    struct gh_pg_tx tx;
    int rc = gh_pg__begin(gh_pg__of(st), GH_PG_TENANT, sec->tenant_id, false, &tx, err);

    if (rc != GH_OK) return rc;
    gh_pg__arg(&a, sec->tenant_id);
    gh_pg__arg(&a, sec->name);
    arg_blob(&a, sec->ciphertext, sec->ciphertext_len);
    arg_blob(&a, sec->nonce, sizeof(sec->nonce));
    arg_blob(&a, sec->wrapped_dek, sec->wrapped_len);
    gh_pg__arg_i64(&a, sec->kek_version);
    gh_pg__arg_i64(&a, now);
    rc = gh_pg__run(&tx, GH_PG_SECRET_PUT, &a, NULL, err);
    return gh_pg__end(&tx, rc, err);
}

int gh_pg__secret_get(struct gh_store *st, const char *tenant_id, const char *name,
                      struct gh_store_secret *out, struct gh_err *err)
{
    struct gh_pg_args a = {0};
    struct gh_pg_tx tx;
    PGresult *r = NULL;
    int rc = gh_pg__begin(gh_pg__of(st), GH_PG_TENANT, tenant_id, false, &tx, err);

    if (rc != GH_OK) return rc;
    gh_pg__arg(&a, tenant_id);
    gh_pg__arg(&a, name);
    rc = gh_pg__run(&tx, GH_PG_SECRET_GET, &a, &r, err);
    if (rc == GH_OK && PQntuples(r) == 0) {
        gh_err_set(err, NULL, 0, 0, "secret not found");
        rc = GH_STORE_NOT_FOUND;
    }
    if (rc == GH_OK) rc = secret_row(r, 0, out, err);
    PQclear(r);
    return gh_pg__end_lookup(&tx, rc, err);
}

int gh_pg__secret_delete(struct gh_store *st, const char *tenant_id, const char *name,
                         struct gh_err *err)
{
    struct gh_pg_args a = {0};
    struct gh_pg_tx tx;
    PGresult *r = NULL;
    int rc = gh_pg__begin(gh_pg__of(st), GH_PG_TENANT, tenant_id, false, &tx, err);

    if (rc != GH_OK) return rc;
    gh_pg__arg(&a, tenant_id);
    gh_pg__arg(&a, name);
    rc = gh_pg__run(&tx, GH_PG_SECRET_DELETE, &a, &r, err);
    if (rc == GH_OK && strcmp(PQcmdTuples(r), "0") == 0) {
        gh_err_set(err, NULL, 0, 0, "secret not found");
        rc = GH_STORE_NOT_FOUND;
    }
    PQclear(r);
    return gh_pg__end(&tx, rc, err);
}

struct secret_walk {
    gh_store_secret_cb cb;
    void *arg;
    struct gh_store_secret *row; /* 9 KiB: not on a thread's stack */
    struct gh_err *err;
};

static int secret_walk_row(const PGresult *r, void *arg)
{
    struct secret_walk *w = arg;

    if (secret_row(r, 0, w->row, w->err) != GH_OK) return GH_ERROR;
    return w->cb(w->row, w->arg);
}

int gh_pg__secrets_walk(struct gh_store *st, const char *tenant_id, gh_store_secret_cb cb,
                        void *arg, struct gh_err *err)
{
    struct secret_walk w = {cb, arg, malloc(sizeof(struct gh_store_secret)), err};
    struct gh_pg_args a = {0};
    struct gh_pg_tx tx;
    int rc;

    if (w.row == NULL) return gh_err_set(err, NULL, 0, 0, "store: out of memory");
    rc = gh_pg__begin(gh_pg__of(st), tenant_id ? GH_PG_TENANT : GH_PG_OPERATOR, tenant_id, true,
                      &tx, err);
    if (rc != GH_OK) goto out;
    if (tenant_id) gh_pg__arg(&a, tenant_id);
    rc = gh_pg__stream(&tx, tenant_id ? GH_PG_SECRET_WALK_TENANT : GH_PG_SECRET_WALK, &a,
                       secret_walk_row, &w, err);
    rc = gh_pg__end(&tx, rc, err);
out:
    free(w.row);
    return rc;
}

int gh_pg__secrets_versions(struct gh_store *st, gh_store_secret_version_cb cb, void *arg,
                            struct gh_err *err)
{
    struct gh_pg_tx tx;
    PGresult *r = NULL;
    int rc = gh_pg__begin(gh_pg__of(st), GH_PG_OPERATOR, NULL, false, &tx, err);

    if (rc != GH_OK) return rc;
    /* One row per master key version in use: a handful. */
    rc = gh_pg__run(&tx, GH_PG_SECRET_VERSIONS, NULL, &r, err);
    for (int i = 0; rc == GH_OK && i < PQntuples(r); i++)
        rc = cb((uint32_t)gh_pg__i64(r, i, 0), (uint64_t)gh_pg__i64(r, i, 1), arg);
    PQclear(r);
    return gh_pg__end(&tx, rc, err);
}

int gh_pg__secrets_stale(struct gh_store *st, uint32_t version, size_t limit,
                         struct gh_store_secret *out, size_t *count, struct gh_err *err)
{
    struct gh_pg_args a = {0};
    struct gh_pg_tx tx;
    PGresult *r = NULL;
    int rc = gh_pg__begin(gh_pg__of(st), GH_PG_OPERATOR, NULL, false, &tx, err);

    *count = 0;
    if (rc != GH_OK) return rc;
    gh_pg__arg_i64(&a, version);
    gh_pg__arg_i64(&a, (int64_t)limit);
    rc = gh_pg__run(&tx, GH_PG_SECRET_STALE, &a, &r, err);
    for (int i = 0; rc == GH_OK && i < PQntuples(r) && *count < limit; i++) {
        rc = secret_row(r, i, &out[*count], err);
        if (rc == GH_OK) (*count)++;
    }
    PQclear(r);
    rc = gh_pg__end(&tx, rc, err);
    if (rc != GH_OK) *count = 0;
    return rc;
}

int gh_pg__secrets_rewrap(struct gh_store *st, const struct gh_store_secret_rewrap *rw, size_t n,
                          size_t *applied, struct gh_err *err)
{
    struct gh_pg_args a;
    struct gh_pg_tx tx;
    PGresult *r;
    size_t done = 0;
    int rc = gh_pg__begin(gh_pg__of(st), GH_PG_OPERATOR, NULL, false, &tx, err);

    *applied = 0;
    if (rc != GH_OK) return rc;
    for (size_t i = 0; i < n && rc == GH_OK; i++) {
        memset(&a, 0, sizeof(a));
        r = NULL;
        gh_pg__arg(&a, rw[i].tenant_id);
        gh_pg__arg(&a, rw[i].name);
        gh_pg__arg_i64(&a, rw[i].old_version);
        arg_blob(&a, rw[i].old_wrapped, rw[i].old_len);
        arg_blob(&a, rw[i].new_wrapped, rw[i].new_len);
        gh_pg__arg_i64(&a, rw[i].new_version);
        rc = gh_pg__run(&tx, GH_PG_SECRET_REWRAP, &a, &r, err);
        if (rc == GH_OK) done += (size_t)strtoul(PQcmdTuples(r), NULL, 10);
        PQclear(r);
    }
    if (rc == GH_OK) {
        memset(&a, 0, sizeof(a));
        gh_pg__arg_i64(&a, (int64_t)done);
        rc = gh_pg__run(&tx, GH_PG_SECRET_ROT_COUNT, &a, NULL, err);
    }
    rc = gh_pg__end(&tx, rc, err);
    if (rc == GH_OK) *applied = done;
    return rc;
}

static int rotation_row(struct gh_pg_tx *tx, struct gh_store_secrets_rotation *out,
                        struct gh_err *err)
{
    PGresult *r = NULL;
    int rc = gh_pg__run(tx, GH_PG_SECRET_ROT_GET, NULL, &r, err);

    if (rc == GH_OK && PQntuples(r) == 0) {
        gh_err_set(err, NULL, 0, 0, "no master key rotation recorded");
        rc = GH_STORE_NOT_FOUND;
    }
    if (rc == GH_OK) {
        out->from_version = (uint32_t)gh_pg__i64(r, 0, 0);
        out->to_version = (uint32_t)gh_pg__i64(r, 0, 1);
        out->started_at = gh_pg__i64(r, 0, 2);
        out->finished_at = gh_pg__i64(r, 0, 3);
        out->rewrapped = (uint64_t)gh_pg__i64(r, 0, 4);
    }
    PQclear(r);
    return rc;
}

int gh_pg__secrets_rotation_begin(struct gh_store *st, const struct gh_store_secrets_rotation *want,
                                  struct gh_store_secrets_rotation *out, bool *started,
                                  struct gh_err *err)
{
    struct gh_pg_args a = {0};
    struct gh_pg_tx tx;
    int rc = gh_pg__begin(gh_pg__of(st), GH_PG_OPERATOR, NULL, false, &tx, err);

    *started = false;
    if (rc != GH_OK) return rc;
    /* Under the lock, two operators starting a rotation at once (from two
     * nodes) see one record: the second resumes the first's instead of
     * making another master key version. */
    rc = gh_pg__run(&tx, GH_PG_SECRET_ROT_LOCK, NULL, NULL, err);
    if (rc == GH_OK) rc = rotation_row(&tx, out, err);
    if (rc == GH_OK && out->finished_at == 0) goto out; /* pending: resume it */
    if (rc != GH_OK && rc != GH_STORE_NOT_FOUND) goto out;
    gh_pg__arg_i64(&a, want->from_version);
    gh_pg__arg_i64(&a, want->to_version);
    gh_pg__arg_i64(&a, want->started_at);
    rc = gh_pg__run(&tx, GH_PG_SECRET_ROT_START, &a, NULL, err);
    if (rc == GH_OK) {
        *out = *want;
        out->finished_at = 0;
        out->rewrapped = 0;
        *started = true;
    }
out:
    rc = gh_pg__end(&tx, rc, err);
    if (rc != GH_OK) *started = false;
    return rc;
}

int gh_pg__secrets_rotation_get(struct gh_store *st, struct gh_store_secrets_rotation *out,
                                struct gh_err *err)
{
    struct gh_pg_tx tx;
    int rc = gh_pg__begin(gh_pg__of(st), GH_PG_OPERATOR, NULL, false, &tx, err);

    if (rc != GH_OK) return rc;
    rc = rotation_row(&tx, out, err);
    return gh_pg__end_lookup(&tx, rc, err);
}

int gh_pg__secrets_rotation_finish(struct gh_store *st, uint32_t to_version, int64_t now,
                                   struct gh_err *err)
{
    struct gh_pg_args a = {0};
    struct gh_pg_tx tx;
    PGresult *r = NULL;
    int rc = gh_pg__begin(gh_pg__of(st), GH_PG_OPERATOR, NULL, false, &tx, err);

    if (rc != GH_OK) return rc;
    gh_pg__arg_i64(&a, to_version);
    gh_pg__arg_i64(&a, now);
    rc = gh_pg__run(&tx, GH_PG_SECRET_ROT_FINISH, &a, &r, err);
    if (rc == GH_OK && strcmp(PQcmdTuples(r), "0") == 0) {
        gh_err_set(err, NULL, 0, 0, "no rotation to version %u is pending", to_version);
        rc = GH_STORE_CONFLICT;
    }
    PQclear(r);
    return gh_pg__end(&tx, rc, err);
}

int gh_pg__secrets_kek_check(struct gh_store *st, uint32_t version, const uint8_t *check,
                             size_t len, bool prepared, int64_t now, uint8_t *stored,
                             size_t *stored_len, uint32_t *newest, struct gh_err *err)
{
    struct gh_pg_args a = {0};
    struct gh_pg_tx tx;
    PGresult *r = NULL;
    int64_t top;
    int rc = gh_pg__begin(gh_pg__of(st), GH_PG_OPERATOR, NULL, false, &tx, err);

    if (rc != GH_OK) return rc;
    gh_pg__arg_i64(&a, version);
    arg_blob(&a, check, len);
    gh_pg__arg_i64(&a, now);
    gh_pg__arg(&a, prepared ? "true" : "false");
    rc = gh_pg__run(&tx, GH_PG_SECRET_KEK_CHECK_PUT, &a, NULL, err);
    if (rc == GH_OK) {
        memset(&a, 0, sizeof(a));
        gh_pg__arg_i64(&a, version);
        rc = gh_pg__run(&tx, GH_PG_SECRET_KEK_CHECK_GET, &a, &r, err);
    }
    if (rc == GH_OK && PQntuples(r) != 1)
        rc = gh_err_set(err, NULL, 0, 0, "store: secrets_kek_checks: the check was not kept");
    if (rc == GH_OK) rc = col_blob(r, 0, 0, stored, GH_STORE_SECRET_WRAP_MAX, stored_len, err);
    if (rc == GH_OK) {
        top = gh_pg__i64(r, 0, 1);
        if (top < 1 || top > UINT32_MAX)
            rc = gh_err_set(err, NULL, 0, 0, "store: secrets_kek_checks: a bad version");
        else
            *newest = (uint32_t)top;
    }
    PQclear(r);
    return gh_pg__end(&tx, rc, err);
}

int gh_pg__secrets_kek_state(struct gh_store *st, uint32_t *in_use, uint32_t *newest,
                             struct gh_err *err)
{
    struct gh_pg_tx tx;
    PGresult *r = NULL;
    int rc = gh_pg__begin(gh_pg__of(st), GH_PG_OPERATOR, NULL, false, &tx, err);

    if (rc != GH_OK) return rc;
    rc = gh_pg__run(&tx, GH_PG_SECRET_KEK_STATE, NULL, &r, err);
    if (rc == GH_OK && PQntuples(r) != 1)
        rc = gh_err_set(err, NULL, 0, 0, "store: secrets_kek_checks: no state");
    if (rc == GH_OK) {
        int64_t u = gh_pg__i64(r, 0, 0), n = gh_pg__i64(r, 0, 1);
        if (u < 0 || n < u || n > UINT32_MAX)
            rc = gh_err_set(err, NULL, 0, 0, "store: secrets_kek_checks: a bad version");
        else {
            *in_use = (uint32_t)u;
            *newest = (uint32_t)n;
        }
    }
    PQclear(r);
    return gh_pg__end(&tx, rc, err);
}

/* Runs <stmt> on version <version>'s <what>: NOT_FOUND when it answers no
 * row (none changed). */
static int kek_change(struct gh_store *st, enum gh_pg_stmt stmt, const char *what, uint32_t version,
                      struct gh_err *err)
{
    struct gh_pg_args a = {0};
    struct gh_pg_tx tx;
    PGresult *r = NULL;
    int rc = gh_pg__begin(gh_pg__of(st), GH_PG_OPERATOR, NULL, false, &tx, err);

    if (rc != GH_OK) return rc;
    gh_pg__arg_i64(&a, version);
    rc = gh_pg__run(&tx, stmt, &a, &r, err);
    if (rc == GH_OK && PQntuples(r) == 0) {
        gh_err_set(err, NULL, 0, 0, "the store has no %s of master key version %u", what, version);
        rc = GH_STORE_NOT_FOUND;
    }
    PQclear(r);
    return gh_pg__end(&tx, rc, err);
}

int gh_pg__secrets_kek_activate(struct gh_store *st, uint32_t version, struct gh_err *err)
{
    return kek_change(st, GH_PG_SECRET_KEK_ACTIVATE, "check", version, err);
}

int gh_pg__secrets_kek_unprepare(struct gh_store *st, uint32_t version, struct gh_err *err)
{
    return kek_change(st, GH_PG_SECRET_KEK_UNPREPARE, "prepared check", version, err);
}

/* No step like SQLite's WAL truncation: the old row version stays in the
 * table's file until VACUUM reclaims it (autovacuum, or VACUUM by hand
 * after sealing keys that were stored in clear: docs/postgres.md). */
int gh_pg__private_key_set(struct gh_store *st, enum gh_store_private_kind kind, const char *id,
                           const char *text, struct gh_err *err)
{
    struct gh_pg_args a = {0};
    struct gh_pg_tx tx;
    PGresult *r = NULL;
    int rc = gh_pg__begin(gh_pg__of(st), GH_PG_OPERATOR, NULL, false, &tx, err);

    if (rc != GH_OK) return rc;
    gh_pg__arg(&a, id);
    gh_pg__arg(&a, text);
    rc = gh_pg__run(&tx,
                    kind == GH_STORE_PRIVATE_AUDIT_KEY ? GH_PG_AUDIT_KEY_SET_PRIVATE
                                                       : GH_PG_SIGNING_SET_PRIVATE,
                    &a, &r, err);
    if (rc == GH_OK && strcmp(PQcmdTuples(r), "0") == 0) {
        gh_err_set(err, NULL, 0, 0, "key %s not found", id);
        rc = GH_STORE_NOT_FOUND;
    }
    PQclear(r);
    return gh_pg__end(&tx, rc, err);
}
