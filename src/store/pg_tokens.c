/* Revoked tokens and token signing keys in the PostgreSQL store: both are
 * operator-only tables (no tenant column), shared by every node. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/pg_int.h"

int gh_pg__token_revoke(struct gh_store *st, const char *jti, int64_t expires_at, int64_t now,
                        struct gh_err *err)
{
    struct gh_pg_args a = {0};
    struct gh_pg_tx tx;
    int rc = gh_pg__begin(gh_pg__of(st), GH_PG_OPERATOR, NULL, false, &tx, err);

    if (rc != GH_OK) return rc;
    gh_pg__arg(&a, jti);
    gh_pg__arg_i64(&a, expires_at);
    gh_pg__arg_i64(&a, now);
    rc = gh_pg__run(&tx, GH_PG_TOKEN_REVOKE, &a, NULL, err);
    if (rc == GH_OK) rc = gh_pg__bump(&tx, err);
    return gh_pg__end(&tx, rc, err);
}

struct token_walk {
    gh_store_revoked_cb cb;
    void *arg;
    struct gh_err *err;
};

static int token_row(const PGresult *r, void *arg)
{
    struct token_walk *w = arg;
    struct gh_store_revoked_token tok;

    memset(&tok, 0, sizeof(tok));
    if (gh_pg__text(r, 0, 0, tok.jti, sizeof(tok.jti), w->err) != GH_OK) return GH_ERROR;
    tok.expires_at = gh_pg__i64(r, 0, 1);
    tok.revoked_at = gh_pg__i64(r, 0, 2);
    return w->cb(&tok, w->arg);
}

int gh_pg__revoked_tokens_load(struct gh_store *st, int64_t now, gh_store_revoked_cb cb, void *arg,
                               uint64_t *version, struct gh_err *err)
{
    struct token_walk w = {cb, arg, err};
    struct gh_pg_args a = {0};
    struct gh_pg_tx tx;
    PGresult *r = NULL;
    /* One snapshot: the counter and the rows are of the same moment. */
    int rc = gh_pg__begin(gh_pg__of(st), GH_PG_OPERATOR, NULL, true, &tx, err);

    if (rc != GH_OK) return rc;
    rc = gh_pg__run(&tx, GH_PG_VERSION_GET, NULL, &r, err);
    if (rc == GH_OK && PQntuples(r) != 1)
        rc = gh_err_set(err, NULL, 0, 0, "store: change counter: missing (not migrated?)");
    if (rc == GH_OK) *version = (uint64_t)gh_pg__i64(r, 0, 0);
    PQclear(r);
    gh_pg__arg_i64(&a, now);
    if (rc == GH_OK) rc = gh_pg__stream(&tx, GH_PG_TOKEN_LOAD, &a, token_row, &w, err);
    return gh_pg__end(&tx, rc, err);
}

int gh_pg__revoked_tokens_purge(struct gh_store *st, int64_t now, size_t *purged,
                                struct gh_err *err)
{
    struct gh_pg_args a = {0};
    struct gh_pg_tx tx;
    PGresult *r = NULL;
    int rc;

    *purged = 0;
    rc = gh_pg__begin(gh_pg__of(st), GH_PG_OPERATOR, NULL, false, &tx, err);
    if (rc != GH_OK) return rc;
    gh_pg__arg_i64(&a, now);
    rc = gh_pg__run(&tx, GH_PG_TOKEN_PURGE, &a, &r, err);
    if (rc == GH_OK) *purged = (size_t)strtoull(PQcmdTuples(r), NULL, 10);
    PQclear(r);
    return gh_pg__end(&tx, rc, err);
}

int gh_pg__signing_key_insert(struct gh_store *st, const struct gh_store_signing_key *k,
                              int64_t now, struct gh_err *err)
{
    struct gh_pg_args a = {0};
    struct gh_pg_tx tx;
    int rc = gh_pg__begin(gh_pg__of(st), GH_PG_OPERATOR, NULL, false, &tx, err);

    if (rc != GH_OK) return rc;
    gh_pg__arg(&a, k->kid);
    gh_pg__arg(&a, k->alg);
    gh_pg__arg(&a, k->private_pem);
    gh_pg__arg_i64(&a, now);
    gh_pg__arg_i64(&a, k->publish_until);
    rc = gh_pg__run(&tx, GH_PG_SIGNING_INSERT, &a, NULL, err);
    if (rc == GH_OK) rc = gh_pg__bump(&tx, err);
    return gh_pg__end(&tx, rc, err);
}

struct signing_walk {
    gh_store_signing_cb cb;
    void *arg;
    struct gh_err *err;
    struct gh_store_signing_key k;
};

static int signing_row(const PGresult *r, void *arg)
{
    struct signing_walk *w = arg;
    int rc;

    memset(&w->k, 0, sizeof(w->k));
    if (gh_pg__text(r, 0, 0, w->k.kid, sizeof(w->k.kid), w->err) != GH_OK ||
        gh_pg__text(r, 0, 1, w->k.alg, sizeof(w->k.alg), w->err) != GH_OK ||
        gh_pg__text(r, 0, 2, w->k.private_pem, sizeof(w->k.private_pem), w->err) != GH_OK)
        return GH_ERROR;
    w->k.created_at = gh_pg__i64(r, 0, 3);
    w->k.publish_until = gh_pg__i64(r, 0, 4);
    rc = w->cb(&w->k, w->arg);
    memset(w->k.private_pem, 0, sizeof(w->k.private_pem));
    return rc;
}

int gh_pg__signing_keys_load(struct gh_store *st, int64_t now, gh_store_signing_cb cb, void *arg,
                             struct gh_err *err)
{
    struct signing_walk w = {.cb = cb, .arg = arg, .err = err};
    struct gh_pg_args a = {0};
    struct gh_pg_tx tx;
    int rc = gh_pg__begin(gh_pg__of(st), GH_PG_OPERATOR, NULL, true, &tx, err);

    if (rc != GH_OK) return rc;
    gh_pg__arg_i64(&a, now);
    rc = gh_pg__stream(&tx, GH_PG_SIGNING_LOAD, &a, signing_row, &w, err);
    return gh_pg__end(&tx, rc, err);
}
