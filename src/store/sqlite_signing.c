/* Signing keys for gateway-issued tokens in the SQLite store. */
#include <stdint.h>
#include <string.h>

#include "store/sqlite_int.h"

int gh_sqlite__signing_key_insert(struct gh_store *st, const struct gh_store_signing_key *k,
                                  int64_t now, struct gh_err *err)
{
    struct gh_sqlite_store *ss = gh_sqlite__of(st);
    struct gh_sqlite_conn *c = &ss->writer;
    sqlite3_stmt *s;
    int rc;

    rc = gh_sqlite__write_begin(ss, err);
    if (rc != GH_OK) return rc;
    s = gh_sqlite__stmt(c, GH_SQ_SIGNING_INSERT, err);
    if (s == NULL) {
        rc = GH_ERROR;
        goto out;
    }
    gh_sqlite__bind_text(s, 1, k->kid);
    gh_sqlite__bind_text(s, 2, k->alg);
    gh_sqlite__bind_text(s, 3, k->private_pem);
    sqlite3_bind_int64(s, 4, now);
    sqlite3_bind_int64(s, 5, k->publish_until);
    rc = gh_sqlite__conflict(c, gh_sqlite__exec(c, s, "signing key insert", err));
    if (rc == GH_OK) rc = gh_sqlite__bump(c, err);
out:
    return gh_sqlite__write_end(ss, rc, err);
}

int gh_sqlite__signing_keys_load(struct gh_store *st, int64_t now, gh_store_signing_cb cb,
                                 void *arg, struct gh_err *err)
{
    struct gh_sqlite_conn *c = gh_sqlite__read_acquire(gh_sqlite__of(st));
    struct gh_store_signing_key k;
    sqlite3_stmt *s = gh_sqlite__stmt(c, GH_SQ_SIGNING_LOAD, err);
    int rc = GH_OK, step;

    if (s == NULL) {
        gh_sqlite__read_release(c);
        return GH_ERROR;
    }
    sqlite3_bind_int64(s, 1, now);
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        memset(&k, 0, sizeof(k));
        rc = gh_sqlite__col_text(s, 0, k.kid, sizeof(k.kid), err);
        if (rc == GH_OK) rc = gh_sqlite__col_text(s, 1, k.alg, sizeof(k.alg), err);
        if (rc == GH_OK) rc = gh_sqlite__col_text(s, 2, k.private_pem, sizeof(k.private_pem), err);
        if (rc != GH_OK) break;
        k.created_at = sqlite3_column_int64(s, 3);
        k.publish_until = sqlite3_column_int64(s, 4);
        rc = cb(&k, arg);
        memset(k.private_pem, 0, sizeof(k.private_pem));
        if (rc != GH_OK) break;
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE) rc = gh_sqlite__fail(c, "signing keys", err);
    gh_sqlite__done(s);
    gh_sqlite__read_release(c);
    return rc;
}
