/* Sealed secrets and the master key rotation record in the SQLite store.
 * Rows hold ciphertext and wrapped keys only (src/secrets seals them); this
 * file moves bytes, it never decrypts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/sqlite_int.h"

static void bind_blob(sqlite3_stmt *s, int idx, const void *p, size_t len)
{
    sqlite3_bind_blob(s, idx, p, (int)len, SQLITE_TRANSIENT);
}

/* Copies blob column <col> into <dst> (<cap> bytes), sets *len; GH_ERROR
 * when it is missing or larger than the field (a row the gateway did not
 * write). */
static int col_blob(sqlite3_stmt *s, int col, uint8_t *dst, size_t cap, size_t *len,
                    struct gh_err *err)
{
    const void *p = sqlite3_column_blob(s, col);
    size_t n = (size_t)sqlite3_column_bytes(s, col);

    if (p == NULL || n == 0 || n > cap)
        return gh_err_set(err, NULL, 0, 0, "store: column %s: missing or too long",
                          sqlite3_column_name(s, col));
    memcpy(dst, p, n);
    *len = n;
    return GH_OK;
}

/* Fills <out> from the GH_SQ_SECRET_COLS of the current row of <s>. */
static int secret_row(sqlite3_stmt *s, struct gh_store_secret *out, struct gh_err *err)
{
    size_t nonce_len = 0;
    int64_t v;
    int rc;

    memset(out, 0, sizeof(*out));
    rc = gh_sqlite__col_text(s, 0, out->tenant_id, sizeof(out->tenant_id), err);
    if (rc == GH_OK) rc = gh_sqlite__col_text(s, 1, out->name, sizeof(out->name), err);
    if (rc == GH_OK)
        rc = col_blob(s, 2, out->ciphertext, sizeof(out->ciphertext), &out->ciphertext_len, err);
    if (rc == GH_OK) rc = col_blob(s, 3, out->nonce, sizeof(out->nonce), &nonce_len, err);
    if (rc == GH_OK)
        rc = col_blob(s, 4, out->wrapped_dek, sizeof(out->wrapped_dek), &out->wrapped_len, err);
    if (rc != GH_OK) return rc;
    v = sqlite3_column_int64(s, 5);
    if (nonce_len != sizeof(out->nonce) || v < 1 || v > UINT32_MAX)
        return gh_err_set(err, NULL, 0, 0, "store: secrets: a row has a bad nonce or version");
    out->kek_version = (uint32_t)v;
    out->created_at = sqlite3_column_int64(s, 6);
    out->updated_at = sqlite3_column_int64(s, 7);
    return GH_OK;
}

int gh_sqlite__secret_put(struct gh_store *st, const struct gh_store_secret *sec, int64_t now,
                          struct gh_err *err)
{
    struct gh_sqlite_store *ss = gh_sqlite__of(st);
    struct gh_sqlite_conn *c = &ss->writer;
    sqlite3_stmt *s;
    int rc;

    rc = gh_sqlite__write_begin(ss, err);
    if (rc != GH_OK) return rc;
    s = gh_sqlite__stmt(c, GH_SQ_SECRET_PUT, err);
    if (s == NULL) {
        rc = GH_ERROR;
        goto out;
    }
    gh_sqlite__bind_text(s, 1, sec->tenant_id);
    gh_sqlite__bind_text(s, 2, sec->name);
    bind_blob(s, 3, sec->ciphertext, sec->ciphertext_len);
    bind_blob(s, 4, sec->nonce, sizeof(sec->nonce));
    bind_blob(s, 5, sec->wrapped_dek, sec->wrapped_len);
    sqlite3_bind_int64(s, 6, sec->kek_version);
    sqlite3_bind_int64(s, 7, now);
    rc = gh_sqlite__exec(c, s, "secret put", err);
out:
    return gh_sqlite__write_end(ss, rc, err);
}

int gh_sqlite__secret_get(struct gh_store *st, const char *tenant_id, const char *name,
                          struct gh_store_secret *out, struct gh_err *err)
{
    struct gh_sqlite_conn *c = gh_sqlite__read_acquire(gh_sqlite__of(st));
    sqlite3_stmt *s = gh_sqlite__stmt(c, GH_SQ_SECRET_GET, err);
    int rc = GH_ERROR;

    if (s == NULL) goto out;
    gh_sqlite__bind_text(s, 1, tenant_id);
    gh_sqlite__bind_text(s, 2, name);
    rc = gh_sqlite__row(c, s, "secret get", err);
    if (rc != GH_OK) goto out;
    rc = secret_row(s, out, err);
    gh_sqlite__done(s);
out:
    gh_sqlite__read_release(c);
    return rc;
}

int gh_sqlite__secret_delete(struct gh_store *st, const char *tenant_id, const char *name,
                             struct gh_err *err)
{
    struct gh_sqlite_store *ss = gh_sqlite__of(st);
    struct gh_sqlite_conn *c = &ss->writer;
    sqlite3_stmt *s;
    int rc;

    rc = gh_sqlite__write_begin(ss, err);
    if (rc != GH_OK) return rc;
    s = gh_sqlite__stmt(c, GH_SQ_SECRET_DELETE, err);
    if (s == NULL) {
        rc = GH_ERROR;
        goto out;
    }
    gh_sqlite__bind_text(s, 1, tenant_id);
    gh_sqlite__bind_text(s, 2, name);
    rc = gh_sqlite__exec(c, s, "secret delete", err);
    if (rc == GH_OK && sqlite3_changes(c->db) == 0) {
        gh_err_set(err, NULL, 0, 0, "secret not found");
        rc = GH_STORE_NOT_FOUND;
    }
out:
    return gh_sqlite__write_end(ss, rc, err);
}

int gh_sqlite__secrets_walk(struct gh_store *st, const char *tenant_id, gh_store_secret_cb cb,
                            void *arg, struct gh_err *err)
{
    struct gh_sqlite_conn *c = gh_sqlite__read_acquire(gh_sqlite__of(st));
    sqlite3_stmt *s =
        gh_sqlite__stmt(c, tenant_id ? GH_SQ_SECRET_WALK_TENANT : GH_SQ_SECRET_WALK, err);
    struct gh_store_secret *row = NULL;
    int rc = GH_ERROR, step = SQLITE_DONE;

    if (s == NULL) goto out;
    row = malloc(sizeof(*row)); /* 9 KiB: not on a thread's stack */
    if (row == NULL) {
        rc = gh_err_set(err, NULL, 0, 0, "store: out of memory");
        goto out;
    }
    if (tenant_id) gh_sqlite__bind_text(s, 1, tenant_id);
    rc = GH_OK;
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        rc = secret_row(s, row, err);
        if (rc == GH_OK) rc = cb(row, arg);
        if (rc != GH_OK) break;
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE) rc = gh_sqlite__fail(c, "secrets walk", err);
    gh_sqlite__done(s);
out:
    free(row);
    gh_sqlite__read_release(c);
    return rc;
}

int gh_sqlite__secrets_versions(struct gh_store *st, gh_store_secret_version_cb cb, void *arg,
                                struct gh_err *err)
{
    struct gh_sqlite_conn *c = gh_sqlite__read_acquire(gh_sqlite__of(st));
    sqlite3_stmt *s = gh_sqlite__stmt(c, GH_SQ_SECRET_VERSIONS, err);
    int rc = GH_ERROR, step;

    if (s == NULL) goto out;
    rc = GH_OK;
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        rc = cb((uint32_t)sqlite3_column_int64(s, 0), (uint64_t)sqlite3_column_int64(s, 1), arg);
        if (rc != GH_OK) break;
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE) rc = gh_sqlite__fail(c, "secrets versions", err);
    gh_sqlite__done(s);
out:
    gh_sqlite__read_release(c);
    return rc;
}

int gh_sqlite__secrets_stale(struct gh_store *st, uint32_t version, size_t limit,
                             struct gh_store_secret *out, size_t *count, struct gh_err *err)
{
    struct gh_sqlite_conn *c = gh_sqlite__read_acquire(gh_sqlite__of(st));
    sqlite3_stmt *s = gh_sqlite__stmt(c, GH_SQ_SECRET_STALE, err);
    int rc = GH_ERROR, step = SQLITE_DONE;

    *count = 0;
    if (s == NULL) goto out;
    sqlite3_bind_int64(s, 1, version);
    sqlite3_bind_int64(s, 2, (int64_t)limit);
    rc = GH_OK;
    while (*count < limit && (step = sqlite3_step(s)) == SQLITE_ROW) {
        rc = secret_row(s, &out[*count], err);
        if (rc != GH_OK) break;
        (*count)++;
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE) rc = gh_sqlite__fail(c, "secrets stale", err);
    gh_sqlite__done(s);
out:
    gh_sqlite__read_release(c);
    return rc;
}

int gh_sqlite__secrets_rewrap(struct gh_store *st, const struct gh_store_secret_rewrap *rw,
                              size_t n, size_t *applied, struct gh_err *err)
{
    struct gh_sqlite_store *ss = gh_sqlite__of(st);
    struct gh_sqlite_conn *c = &ss->writer;
    sqlite3_stmt *s, *cnt;
    size_t done = 0;
    int rc;

    *applied = 0;
    rc = gh_sqlite__write_begin(ss, err);
    if (rc != GH_OK) return rc;
    s = gh_sqlite__stmt(c, GH_SQ_SECRET_REWRAP, err);
    cnt = gh_sqlite__stmt(c, GH_SQ_SECRET_ROT_COUNT, err);
    if (s == NULL || cnt == NULL) {
        rc = GH_ERROR;
        goto out;
    }
    for (size_t i = 0; i < n && rc == GH_OK; i++) {
        gh_sqlite__bind_text(s, 1, rw[i].tenant_id);
        gh_sqlite__bind_text(s, 2, rw[i].name);
        sqlite3_bind_int64(s, 3, rw[i].old_version);
        bind_blob(s, 4, rw[i].old_wrapped, rw[i].old_len);
        bind_blob(s, 5, rw[i].new_wrapped, rw[i].new_len);
        sqlite3_bind_int64(s, 6, rw[i].new_version);
        rc = gh_sqlite__exec(c, s, "secret rewrap", err);
        if (rc == GH_OK) done += (size_t)sqlite3_changes(c->db);
    }
    if (rc == GH_OK) {
        sqlite3_bind_int64(cnt, 1, (int64_t)done);
        rc = gh_sqlite__exec(c, cnt, "secrets rotation count", err);
    }
out:
    rc = gh_sqlite__write_end(ss, rc, err);
    if (rc == GH_OK) *applied = done;
    return rc;
}

static int rotation_row(struct gh_sqlite_conn *c, struct gh_store_secrets_rotation *out,
                        struct gh_err *err)
{
    sqlite3_stmt *s = gh_sqlite__stmt(c, GH_SQ_SECRET_ROT_GET, err);
    int rc;

    if (s == NULL) return GH_ERROR;
    rc = gh_sqlite__row(c, s, "secrets rotation", err);
    if (rc != GH_OK) return rc;
    out->from_version = (uint32_t)sqlite3_column_int64(s, 0);
    out->to_version = (uint32_t)sqlite3_column_int64(s, 1);
    out->started_at = sqlite3_column_int64(s, 2);
    out->finished_at = sqlite3_column_int64(s, 3);
    out->rewrapped = (uint64_t)sqlite3_column_int64(s, 4);
    gh_sqlite__done(s);
    return GH_OK;
}

int gh_sqlite__secrets_rotation_begin(struct gh_store *st,
                                      const struct gh_store_secrets_rotation *want,
                                      struct gh_store_secrets_rotation *out, bool *started,
                                      struct gh_err *err)
{
    struct gh_sqlite_store *ss = gh_sqlite__of(st);
    struct gh_sqlite_conn *c = &ss->writer;
    sqlite3_stmt *s;
    int rc;

    *started = false;
    /* BEGIN IMMEDIATE: two operators starting a rotation at once see one
     * record, and the second resumes the first's instead of making another
     * master key version. */
    rc = gh_sqlite__write_begin(ss, err);
    if (rc != GH_OK) return rc;
    rc = rotation_row(c, out, err);
    if (rc == GH_OK && out->finished_at == 0) goto out; /* pending: resume it */
    if (rc != GH_OK && rc != GH_STORE_NOT_FOUND) goto out;
    s = gh_sqlite__stmt(c, GH_SQ_SECRET_ROT_START, err);
    if (s == NULL) {
        rc = GH_ERROR;
        goto out;
    }
    sqlite3_bind_int64(s, 1, want->from_version);
    sqlite3_bind_int64(s, 2, want->to_version);
    sqlite3_bind_int64(s, 3, want->started_at);
    rc = gh_sqlite__exec(c, s, "secrets rotation start", err);
    if (rc == GH_OK) {
        *out = *want;
        out->finished_at = 0;
        out->rewrapped = 0;
        *started = true;
    }
out:
    return gh_sqlite__write_end(ss, rc, err);
}

int gh_sqlite__secrets_rotation_get(struct gh_store *st, struct gh_store_secrets_rotation *out,
                                    struct gh_err *err)
{
    struct gh_sqlite_conn *c = gh_sqlite__read_acquire(gh_sqlite__of(st));
    int rc = rotation_row(c, out, err);

    gh_sqlite__read_release(c);
    return rc;
}

int gh_sqlite__secrets_rotation_finish(struct gh_store *st, uint32_t to_version, int64_t now,
                                       struct gh_err *err)
{
    struct gh_sqlite_store *ss = gh_sqlite__of(st);
    struct gh_sqlite_conn *c = &ss->writer;
    sqlite3_stmt *s;
    int rc;

    rc = gh_sqlite__write_begin(ss, err);
    if (rc != GH_OK) return rc;
    s = gh_sqlite__stmt(c, GH_SQ_SECRET_ROT_FINISH, err);
    if (s == NULL) {
        rc = GH_ERROR;
        goto out;
    }
    sqlite3_bind_int64(s, 1, to_version);
    sqlite3_bind_int64(s, 2, now);
    rc = gh_sqlite__exec(c, s, "secrets rotation finish", err);
    if (rc == GH_OK && sqlite3_changes(c->db) == 0) {
        gh_err_set(err, NULL, 0, 0, "no rotation to version %u is pending", to_version);
        rc = GH_STORE_CONFLICT;
    }
out:
    return gh_sqlite__write_end(ss, rc, err);
}

int gh_sqlite__private_key_set(struct gh_store *st, enum gh_store_private_kind kind, const char *id,
                               const char *text, struct gh_err *err)
{
    struct gh_sqlite_store *ss = gh_sqlite__of(st);
    struct gh_sqlite_conn *c = &ss->writer;
    sqlite3_stmt *s;
    int rc;

    rc = gh_sqlite__write_begin(ss, err);
    if (rc != GH_OK) return rc;
    s = gh_sqlite__stmt(c,
                        kind == GH_STORE_PRIVATE_AUDIT_KEY ? GH_SQ_AUDIT_KEY_SET_PRIVATE
                                                           : GH_SQ_SIGNING_SET_PRIVATE,
                        err);
    if (s == NULL) {
        rc = GH_ERROR;
        goto out;
    }
    gh_sqlite__bind_text(s, 1, id);
    gh_sqlite__bind_text(s, 2, text);
    rc = gh_sqlite__exec(c, s, "private key set", err);
    if (rc == GH_OK && sqlite3_changes(c->db) == 0) {
        gh_err_set(err, NULL, 0, 0, "key %s not found", id);
        rc = GH_STORE_NOT_FOUND;
    }
out:
    rc = gh_sqlite__write_end(ss, rc, err);
    /* The WAL still holds the page as it was before: copy it into the file
     * (where secure_delete cleared the old bytes) and truncate the log. A
     * busy reader may keep the checkpoint from finishing; the next one
     * overwrites the frames. */
    if (rc == GH_OK) {
        pthread_mutex_lock(&c->lock);
        sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
        pthread_mutex_unlock(&c->lock);
    }
    return rc;
}

/* BEGIN IMMEDIATE: the insert and the read see one state; a check another
 * process recorded first is the one read back. */
int gh_sqlite__secrets_kek_check(struct gh_store *st, uint32_t version, const uint8_t *check,
                                 size_t len, bool prepared, int64_t now, uint8_t *stored,
                                 size_t *stored_len, uint32_t *newest, struct gh_err *err)
{
    struct gh_sqlite_store *ss = gh_sqlite__of(st);
    struct gh_sqlite_conn *c = &ss->writer;
    sqlite3_stmt *s;
    int rc = gh_sqlite__write_begin(ss, err);

    if (rc != GH_OK) return rc;
    s = gh_sqlite__stmt(c, GH_SQ_SECRET_KEK_CHECK_PUT, err);
    if (s == NULL) {
        rc = GH_ERROR;
        goto out;
    }
    sqlite3_bind_int64(s, 1, version);
    bind_blob(s, 2, check, len);
    sqlite3_bind_int64(s, 3, now);
    sqlite3_bind_int(s, 4, prepared ? 1 : 0);
    rc = gh_sqlite__exec(c, s, "master key check", err);
    if (rc != GH_OK) goto out;
    s = gh_sqlite__stmt(c, GH_SQ_SECRET_KEK_CHECK_GET, err);
    if (s == NULL) {
        rc = GH_ERROR;
        goto out;
    }
    sqlite3_bind_int64(s, 1, version);
    rc = gh_sqlite__row(c, s, "master key check", err);
    if (rc != GH_OK) goto out;
    {
        const void *blob = sqlite3_column_blob(s, 0);
        int n = sqlite3_column_bytes(s, 0);
        int64_t top = sqlite3_column_int64(s, 1);
        if (blob == NULL || n <= 0 || n > GH_STORE_SECRET_WRAP_MAX || top < 1 || top > UINT32_MAX) {
            rc = gh_err_set(err, NULL, 0, 0, "store: secrets_kek_checks: a row has a bad check");
        } else {
            memcpy(stored, blob, (size_t)n);
            *stored_len = (size_t)n;
            *newest = (uint32_t)top;
        }
    }
    gh_sqlite__done(s);
out:
    return gh_sqlite__write_end(ss, rc, err);
}

int gh_sqlite__secrets_kek_state(struct gh_store *st, uint32_t *in_use, uint32_t *newest,
                                 struct gh_err *err)
{
    struct gh_sqlite_conn *c = gh_sqlite__read_acquire(gh_sqlite__of(st));
    sqlite3_stmt *s = gh_sqlite__stmt(c, GH_SQ_SECRET_KEK_STATE, err);
    int rc = GH_ERROR;

    if (s == NULL) goto out;
    rc = gh_sqlite__row(c, s, "master key checks", err);
    if (rc != GH_OK) {
        if (rc == GH_STORE_NOT_FOUND) rc = GH_ERROR;
        goto out;
    }
    *in_use = (uint32_t)sqlite3_column_int64(s, 0);
    *newest = (uint32_t)sqlite3_column_int64(s, 1);
    gh_sqlite__done(s);
out:
    gh_sqlite__read_release(c);
    return rc;
}

/* Runs <stmt> on version <version>'s <what>: NOT_FOUND when no row changed. */
static int kek_change(struct gh_store *st, int stmt, const char *what, uint32_t version,
                      struct gh_err *err)
{
    struct gh_sqlite_store *ss = gh_sqlite__of(st);
    struct gh_sqlite_conn *c = &ss->writer;
    sqlite3_stmt *s;
    int rc = gh_sqlite__write_begin(ss, err);

    if (rc != GH_OK) return rc;
    s = gh_sqlite__stmt(c, stmt, err);
    if (s == NULL) {
        rc = GH_ERROR;
        goto out;
    }
    sqlite3_bind_int64(s, 1, version);
    rc = gh_sqlite__exec(c, s, "master key check", err);
    if (rc == GH_OK && sqlite3_changes(c->db) == 0) {
        gh_err_set(err, NULL, 0, 0, "the store has no %s of master key version %u", what, version);
        rc = GH_STORE_NOT_FOUND;
    }
out:
    return gh_sqlite__write_end(ss, rc, err);
}

int gh_sqlite__secrets_kek_activate(struct gh_store *st, uint32_t version, struct gh_err *err)
{
    return kek_change(st, GH_SQ_SECRET_KEK_ACTIVATE, "check", version, err);
}

int gh_sqlite__secrets_kek_unprepare(struct gh_store *st, uint32_t version, struct gh_err *err)
{
    return kek_change(st, GH_SQ_SECRET_KEK_UNPREPARE, "prepared check", version, err);
}
