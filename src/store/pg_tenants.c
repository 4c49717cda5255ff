/* Tenants in the PostgreSQL store: create, get (by id or name), list a page,
 * update, and their plans and limit overrides. Input arrives validated by
 * the gh_store_* wrappers (store.c). [tenant] calls run under row-level
 * security with the tenant's own id: its row is the only one they see. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/pg_int.h"

int gh_pg__tenant_row(const PGresult *r, int row, int col, struct gh_store_tenant *t,
                      struct gh_err *err)
{
    char status[16];

    if (gh_pg__text(r, row, col, t->id, sizeof(t->id), err) != GH_OK ||
        gh_pg__text(r, row, col + 1, t->name, sizeof(t->name), err) != GH_OK ||
        gh_pg__text(r, row, col + 2, status, sizeof(status), err) != GH_OK ||
        gh_pg__text(r, row, col + 3, t->plan, sizeof(t->plan), err) != GH_OK)
        return GH_ERROR;
    t->status = gh_store_tenant_status_parse(status);
    if (t->status == GH_STORE_TENANT_ANY)
        return gh_err_set(err, NULL, 0, 0, "store: tenants.status: unknown value");
    t->created_at = gh_pg__i64(r, row, col + 4);
    t->updated_at = gh_pg__i64(r, row, col + 5);
    return GH_OK;
}

/* One tenant by statement <id> (by id or name, or locked) bound to <key>. */
static int lookup(struct gh_pg_tx *tx, enum gh_pg_stmt id, const char *key,
                  struct gh_store_tenant *out, struct gh_err *err)
{
    struct gh_pg_args a = {0};
    PGresult *r = NULL;
    int rc;

    gh_pg__arg(&a, key);
    rc = gh_pg__run(tx, id, &a, &r, err);
    if (rc == GH_OK && PQntuples(r) == 0) {
        gh_err_set(err, NULL, 0, 0, "tenant not found");
        rc = GH_STORE_NOT_FOUND;
    }
    if (rc == GH_OK) rc = gh_pg__tenant_row(r, 0, 0, out, err);
    PQclear(r);
    return rc;
}

int gh_pg__tenant_create(struct gh_store *st, const struct gh_store_tenant *t, struct gh_err *err)
{
    struct gh_pg_args a = {0};
    struct gh_pg_tx tx;
    int rc = gh_pg__begin(gh_pg__of(st), GH_PG_OPERATOR, NULL, false, &tx, err);

    if (rc != GH_OK) return rc;
    gh_pg__arg(&a, t->id);
    gh_pg__arg(&a, t->name);
    gh_pg__arg(&a, gh_store_tenant_status_name(t->status));
    gh_pg__arg(&a, t->plan);
    gh_pg__arg_i64(&a, t->created_at);
    gh_pg__arg_i64(&a, t->updated_at);
    /* The name's uniqueness is the constraint's: a race with another node
     * ends in a unique violation, which is CONFLICT with the same message. */
    rc = gh_pg__run(&tx, GH_PG_TENANT_INSERT, &a, NULL, err);
    return gh_pg__end(&tx, rc, err);
}

int gh_pg__tenant_get(struct gh_store *st, const char *id, struct gh_store_tenant *out,
                      struct gh_err *err)
{
    struct gh_pg_tx tx;
    int rc = gh_pg__begin(gh_pg__of(st), GH_PG_TENANT, id, false, &tx, err);

    if (rc != GH_OK) return rc;
    rc = lookup(&tx, GH_PG_TENANT_GET, id, out, err);
    return gh_pg__end(&tx, rc, err);
}

int gh_pg__tenant_get_by_name(struct gh_store *st, const char *name, struct gh_store_tenant *out,
                              struct gh_err *err)
{
    struct gh_pg_tx tx;
    int rc = gh_pg__begin(gh_pg__of(st), GH_PG_OPERATOR, NULL, false, &tx, err);

    if (rc != GH_OK) return rc;
    rc = lookup(&tx, GH_PG_TENANT_GET_BY_NAME, name, out, err);
    return gh_pg__end(&tx, rc, err);
}

int gh_pg__tenant_list(struct gh_store *st, enum gh_store_tenant_status status,
                       const struct gh_store_keyset *after, size_t limit,
                       struct gh_store_tenant *out, size_t *count, bool *more, struct gh_err *err)
{
    struct gh_pg_args a = {0};
    struct gh_pg_tx tx;
    PGresult *r = NULL;
    int rc;

    *count = 0;
    *more = false;
    rc = gh_pg__begin(gh_pg__of(st), GH_PG_OPERATOR, NULL, false, &tx, err);
    if (rc != GH_OK) return rc;
    gh_pg__arg(&a, status != GH_STORE_TENANT_ANY ? gh_store_tenant_status_name(status) : NULL);
    gh_pg__arg_i64(&a, after ? after->created_at : INT64_MIN);
    gh_pg__arg(&a, after ? after->id : "");
    gh_pg__arg_i64(&a, (int64_t)limit + 1); /* one more row tells whether a next page exists */
    rc = gh_pg__run(&tx, GH_PG_TENANT_LIST, &a, &r, err);
    for (int i = 0; rc == GH_OK && i < PQntuples(r); i++) {
        if (*count == limit) {
            *more = true;
            break;
        }
        rc = gh_pg__tenant_row(r, i, 0, &out[*count], err);
        if (rc == GH_OK) (*count)++;
    }
    PQclear(r);
    return gh_pg__end(&tx, rc, err);
}

int gh_pg__tenant_update(struct gh_store *st, const char *id,
                         const struct gh_store_tenant_update *upd, int64_t now,
                         struct gh_store_tenant *out, bool *status_moved, struct gh_err *err)
{
    struct gh_store_tenant cur;
    struct gh_pg_args a = {0};
    struct gh_pg_tx tx;
    /* Operator work (suspending a tenant, changing its plan): the tenant
     * role holds no UPDATE on tenants (migration 15). */
    int rc = gh_pg__begin(gh_pg__of(st), GH_PG_OPERATOR, NULL, false, &tx, err);

    if (rc != GH_OK) return rc;
    /* FOR UPDATE: the row as it is now, held until the commit, so the
     * change counter is bumped for exactly the change that happened. */
    rc = lookup(&tx, GH_PG_TENANT_LOCK, id, &cur, err);
    if (rc != GH_OK) goto out;
    gh_pg__arg(&a, id);
    gh_pg__arg(&a, upd->name);
    gh_pg__arg(&a, upd->plan);
    gh_pg__arg(&a, upd->status != GH_STORE_TENANT_ANY ? gh_store_tenant_status_name(upd->status)
                                                      : NULL);
    gh_pg__arg_i64(&a, now);
    /* A name taken by another tenant: the constraint's unique violation, a
     * CONFLICT with the same message as SQLite's. */
    rc = gh_pg__run(&tx, GH_PG_TENANT_UPDATE, &a, NULL, err);
    if (rc != GH_OK) goto out;
    *status_moved = upd->status != GH_STORE_TENANT_ANY && upd->status != cur.status;
    if ((upd->status != GH_STORE_TENANT_ANY && upd->status != cur.status) ||
        (upd->plan != NULL && strcmp(upd->plan, cur.plan) != 0))
        rc = gh_pg__bump(&tx, err);
    if (rc == GH_OK && out != NULL) rc = lookup(&tx, GH_PG_TENANT_GET, id, out, err);
out:
    return gh_pg__end(&tx, rc, err);
}

/* ---- Plans and limit overrides ------------------------------------------------ */

/* Plan and overrides of tenant <id> by statement <sid>, into <plan>
 * (GH_STORE_NAME_SIZE bytes) and <json> (<cap> bytes). NOT_FOUND; INVALID
 * when the overrides do not fit. */
static int limits_lookup(struct gh_pg_tx *tx, enum gh_pg_stmt sid, const char *id, char *plan,
                         char *json, size_t cap, struct gh_err *err)
{
    struct gh_pg_args a = {0};
    PGresult *r = NULL;
    int rc;

    gh_pg__arg(&a, id);
    rc = gh_pg__run(tx, sid, &a, &r, err);
    if (rc == GH_OK && PQntuples(r) == 0) {
        gh_err_set(err, NULL, 0, 0, "tenant not found");
        rc = GH_STORE_NOT_FOUND;
    }
    if (rc == GH_OK) rc = gh_pg__text(r, 0, 0, plan, GH_STORE_NAME_SIZE, err);
    if (rc == GH_OK && (size_t)PQgetlength(r, 0, 1) >= cap) {
        json[0] = '\0';
        rc = gh_err_set(err, NULL, 0, 0,
                        "json: a buffer of %zu bytes cannot hold the overrides (%d)", cap,
                        PQgetlength(r, 0, 1));
        rc = GH_STORE_INVALID;
    } else if (rc == GH_OK) {
        rc = gh_pg__text(r, 0, 1, json, cap, err);
    }
    PQclear(r);
    return rc;
}

int gh_pg__tenant_limits_set(struct gh_store *st, const char *id, const char *plan,
                             const char *overrides_json, int64_t now, struct gh_err *err)
{
    char cur_plan[GH_STORE_NAME_SIZE];
    char *cur_json = malloc(GH_STORE_LIMITS_JSON_MAX + 1);
    struct gh_pg_args a = {0};
    struct gh_pg_tx tx;
    int rc;

    if (cur_json == NULL) return gh_err_set(err, NULL, 0, 0, "store: out of memory");
    rc = gh_pg__begin(gh_pg__of(st), GH_PG_OPERATOR, NULL, false, &tx, err);
    if (rc != GH_OK) goto out;
    rc = limits_lookup(&tx, GH_PG_TENANT_LIMITS_LOCK, id, cur_plan, cur_json,
                       GH_STORE_LIMITS_JSON_MAX + 1, err);
    if (rc == GH_STORE_INVALID) rc = GH_ERROR; /* a stored row that validation would refuse */
    if (rc != GH_OK) goto end;
    gh_pg__arg(&a, id);
    gh_pg__arg(&a, plan);
    gh_pg__arg(&a, overrides_json);
    gh_pg__arg_i64(&a, now);
    rc = gh_pg__run(&tx, GH_PG_TENANT_LIMITS_SET, &a, NULL, err);
    /* The text is kept as given (text, not jsonb) and compared as text, as
     * SQLite does: a reformatted object reloads caches needlessly. */
    if (rc == GH_OK && ((plan != NULL && strcmp(plan, cur_plan) != 0) ||
                        (overrides_json != NULL && strcmp(overrides_json, cur_json) != 0)))
        rc = gh_pg__bump(&tx, err);
end:
    rc = gh_pg__end(&tx, rc, err);
out:
    free(cur_json);
    return rc;
}

int gh_pg__tenant_limits_get(struct gh_store *st, const char *id, char *plan, char *json,
                             size_t cap, struct gh_err *err)
{
    struct gh_pg_tx tx;
    int rc = gh_pg__begin(gh_pg__of(st), GH_PG_TENANT, id, false, &tx, err);

    if (rc != GH_OK) return rc;
    rc = limits_lookup(&tx, GH_PG_TENANT_LIMITS_GET, id, plan, json, cap, err);
    return gh_pg__end(&tx, rc, err);
}

struct limits_walk {
    gh_store_tenant_limits_cb cb;
    void *arg;
    struct gh_err *err;
    char id[GH_STORE_TENANT_ID_SIZE];
    char status[16];
    char plan[GH_STORE_NAME_SIZE];
    char json[GH_STORE_LIMITS_JSON_MAX + 1];
};

static int limits_row(const PGresult *r, void *arg)
{
    struct limits_walk *w = arg;
    enum gh_store_tenant_status ts;

    if (gh_pg__text(r, 0, 0, w->id, sizeof(w->id), w->err) != GH_OK ||
        gh_pg__text(r, 0, 1, w->status, sizeof(w->status), w->err) != GH_OK ||
        gh_pg__text(r, 0, 2, w->plan, sizeof(w->plan), w->err) != GH_OK ||
        gh_pg__text(r, 0, 3, w->json, sizeof(w->json), w->err) != GH_OK)
        return GH_ERROR;
    ts = gh_store_tenant_status_parse(w->status);
    if (ts == GH_STORE_TENANT_ANY)
        return gh_err_set(w->err, NULL, 0, 0, "store: tenants.status: unknown value");
    return w->cb(w->id, ts, w->plan, w->json, w->arg);
}

int gh_pg__tenant_limits_load(struct gh_store *st, gh_store_tenant_limits_cb cb, void *arg,
                              struct gh_err *err)
{
    struct limits_walk *w = malloc(sizeof(*w)); /* ~4.2 KiB: not on the caller's stack */
    struct gh_pg_tx tx;
    int rc;

    if (w == NULL) return gh_err_set(err, NULL, 0, 0, "store: out of memory");
    w->cb = cb;
    w->arg = arg;
    w->err = err;
    rc = gh_pg__begin(gh_pg__of(st), GH_PG_OPERATOR, NULL, true, &tx, err);
    if (rc == GH_OK) {
        rc = gh_pg__stream(&tx, GH_PG_TENANT_LIMITS_LOAD, NULL, limits_row, w, err);
        rc = gh_pg__end(&tx, rc, err);
    }
    free(w);
    return rc;
}
