/* Revoked tokens in the SQLite store: revoke a jti, load those not yet
 * expired into the verifier's in-memory set, purge the expired ones. */
#include <stdint.h>
#include <string.h>

#include "store/sqlite_int.h"

int gh_sqlite__token_revoke(struct gh_store *st, const char *jti, int64_t expires_at, int64_t now,
                            struct gh_err *err)
{
    struct gh_sqlite_store *ss = gh_sqlite__of(st);
    struct gh_sqlite_conn *c = &ss->writer;
    sqlite3_stmt *s;
    int rc;

    rc = gh_sqlite__write_begin(ss, err);
    if (rc != GH_OK) return rc;
    s = gh_sqlite__stmt(c, GH_SQ_TOKEN_REVOKE, err);
    if (s == NULL) {
        rc = GH_ERROR;
        goto out;
    }
    gh_sqlite__bind_text(s, 1, jti);
    sqlite3_bind_int64(s, 2, expires_at);
    sqlite3_bind_int64(s, 3, now);
    rc = gh_sqlite__exec(c, s, "token revoke", err);
    if (rc == GH_OK) rc = gh_sqlite__bump(c, err);
out:
    return gh_sqlite__write_end(ss, rc, err);
}

int gh_sqlite__revoked_tokens_load(struct gh_store *st, int64_t now, gh_store_revoked_cb cb,
                                   void *arg, uint64_t *version, struct gh_err *err)
{
    struct gh_sqlite_conn *c = gh_sqlite__read_acquire(gh_sqlite__of(st));
    struct gh_store_revoked_token tok;
    sqlite3_stmt *s;
    int rc, step;

    /* One transaction: the counter and the rows come from the same snapshot. */
    rc = gh_sqlite__read_begin(c, err);
    if (rc != GH_OK) goto out;
    rc = gh_sqlite__version(c, version, err);
    if (rc != GH_OK) goto end;
    s = gh_sqlite__stmt(c, GH_SQ_TOKEN_LOAD, err);
    if (s == NULL) {
        rc = GH_ERROR;
        goto end;
    }
    sqlite3_bind_int64(s, 1, now);
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        memset(&tok, 0, sizeof(tok));
        rc = gh_sqlite__col_text(s, 0, tok.jti, sizeof(tok.jti), err);
        if (rc != GH_OK) break;
        tok.expires_at = sqlite3_column_int64(s, 1);
        tok.revoked_at = sqlite3_column_int64(s, 2);
        rc = cb(&tok, arg);
        if (rc != GH_OK) break;
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE) rc = gh_sqlite__fail(c, "revoked tokens", err);
    gh_sqlite__done(s);
end:
    gh_sqlite__read_end(c);
out:
    gh_sqlite__read_release(c);
    return rc;
}

int gh_sqlite__revoked_tokens_purge(struct gh_store *st, int64_t now, size_t *purged,
                                    struct gh_err *err)
{
    struct gh_sqlite_store *ss = gh_sqlite__of(st);
    struct gh_sqlite_conn *c = &ss->writer;
    sqlite3_stmt *s;
    int rc;

    *purged = 0;
    rc = gh_sqlite__write_begin(ss, err);
    if (rc != GH_OK) return rc;
    s = gh_sqlite__stmt(c, GH_SQ_TOKEN_PURGE, err);
    if (s == NULL) {
        rc = GH_ERROR;
        goto out;
    }
    sqlite3_bind_int64(s, 1, now);
    rc = gh_sqlite__exec(c, s, "revoked tokens purge", err);
    if (rc == GH_OK) *purged = (size_t)sqlite3_changes(c->db);
out:
    return gh_sqlite__write_end(ss, rc, err);
}
