/* Tenants in the SQLite store: create, get (by id or name), list a page,
 * update, and their plans and limit overrides. Input arrives validated by
 * the gh_store_* wrappers (store.c). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/sqlite_int.h"

int gh_sqlite__tenant_row(sqlite3_stmt *s, int col, struct gh_store_tenant *t, struct gh_err *err)
{
    char status[16];

    if (gh_sqlite__col_text(s, col, t->id, sizeof(t->id), err) != GH_OK ||
        gh_sqlite__col_text(s, col + 1, t->name, sizeof(t->name), err) != GH_OK ||
        gh_sqlite__col_text(s, col + 2, status, sizeof(status), err) != GH_OK ||
        gh_sqlite__col_text(s, col + 3, t->plan, sizeof(t->plan), err) != GH_OK)
        return GH_ERROR;
    t->status = gh_store_tenant_status_parse(status);
    if (t->status == GH_STORE_TENANT_ANY)
        return gh_err_set(err, NULL, 0, 0, "store: tenants.status: unknown value");
    t->created_at = sqlite3_column_int64(s, col + 4);
    t->updated_at = sqlite3_column_int64(s, col + 5);
    return GH_OK;
}

/* Looks up one tenant with statement <id> (by id or by name) bound to <key>,
 * on connection <c> (locked). */
static int tenant_lookup(struct gh_sqlite_conn *c, enum gh_sqlite_stmt id, const char *key,
                         struct gh_store_tenant *out, struct gh_err *err)
{
    sqlite3_stmt *s = gh_sqlite__stmt(c, id, err);
    int rc;

    if (s == NULL) return GH_ERROR;
    gh_sqlite__bind_text(s, 1, key);
    rc = gh_sqlite__row(c, s, "tenant", err);
    if (rc == GH_STORE_NOT_FOUND) gh_err_set(err, NULL, 0, 0, "tenant not found");
    if (rc != GH_OK) return rc;
    rc = gh_sqlite__tenant_row(s, 0, out, err);
    gh_sqlite__done(s);
    return rc;
}

/* GH_STORE_CONFLICT when a tenant other than <id> is named <name>. */
static int name_free(struct gh_sqlite_conn *c, const char *name, const char *id, struct gh_err *err)
{
    sqlite3_stmt *s = gh_sqlite__stmt(c, GH_SQ_TENANT_NAME_TAKEN, err);
    int rc;

    if (s == NULL) return GH_ERROR;
    gh_sqlite__bind_text(s, 1, name);
    gh_sqlite__bind_text(s, 2, id);
    rc = gh_sqlite__row(c, s, "tenant name", err);
    if (rc == GH_STORE_NOT_FOUND) return GH_OK;
    if (rc != GH_OK) return rc;
    gh_sqlite__done(s);
    gh_err_set(err, NULL, 0, 0, "name: a tenant with this name already exists");
    return GH_STORE_CONFLICT;
}

int gh_sqlite__tenant_create(struct gh_store *st, const struct gh_store_tenant *t,
                             struct gh_err *err)
{
    struct gh_sqlite_store *ss = gh_sqlite__of(st);
    struct gh_sqlite_conn *c = &ss->writer;
    sqlite3_stmt *s;
    int rc;

    rc = gh_sqlite__write_begin(ss, err);
    if (rc != GH_OK) return rc;
    rc = name_free(c, t->name, t->id, err);
    if (rc != GH_OK) goto out;
    s = gh_sqlite__stmt(c, GH_SQ_TENANT_INSERT, err);
    if (s == NULL) {
        rc = GH_ERROR;
        goto out;
    }
    gh_sqlite__bind_text(s, 1, t->id);
    gh_sqlite__bind_text(s, 2, t->name);
    gh_sqlite__bind_text(s, 3, gh_store_tenant_status_name(t->status));
    gh_sqlite__bind_text(s, 4, t->plan);
    sqlite3_bind_int64(s, 5, t->created_at);
    sqlite3_bind_int64(s, 6, t->updated_at);
    rc = gh_sqlite__exec(c, s, "tenant insert", err);
    rc = gh_sqlite__conflict(c, rc);
out:
    return gh_sqlite__write_end(ss, rc, err);
}

int gh_sqlite__tenant_get(struct gh_store *st, const char *id, struct gh_store_tenant *out,
                          struct gh_err *err)
{
    struct gh_sqlite_conn *c = gh_sqlite__read_acquire(gh_sqlite__of(st));
    int rc = tenant_lookup(c, GH_SQ_TENANT_GET, id, out, err);

    gh_sqlite__read_release(c);
    return rc;
}

int gh_sqlite__tenant_get_by_name(struct gh_store *st, const char *name,
                                  struct gh_store_tenant *out, struct gh_err *err)
{
    struct gh_sqlite_conn *c = gh_sqlite__read_acquire(gh_sqlite__of(st));
    int rc = tenant_lookup(c, GH_SQ_TENANT_GET_BY_NAME, name, out, err);

    gh_sqlite__read_release(c);
    return rc;
}

int gh_sqlite__tenant_list(struct gh_store *st, enum gh_store_tenant_status status,
                           const struct gh_store_keyset *after, size_t limit,
                           struct gh_store_tenant *out, size_t *count, bool *more,
                           struct gh_err *err)
{
    struct gh_sqlite_conn *c = gh_sqlite__read_acquire(gh_sqlite__of(st));
    sqlite3_stmt *s = gh_sqlite__stmt(c, GH_SQ_TENANT_LIST, err);
    int rc = GH_OK, step;

    *count = 0;
    *more = false;
    if (s == NULL) {
        rc = GH_ERROR;
        goto out;
    }
    if (status != GH_STORE_TENANT_ANY)
        gh_sqlite__bind_text(s, 1, gh_store_tenant_status_name(status));
    sqlite3_bind_int64(s, 2, after ? after->created_at : INT64_MIN);
    gh_sqlite__bind_text(s, 3, after ? after->id : "");
    sqlite3_bind_int64(s, 4,
                       (int64_t)limit + 1); /* one more row tells whether a next page exists */
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        if (*count == limit) {
            *more = true;
            break;
        }
        rc = gh_sqlite__tenant_row(s, 0, &out[*count], err);
        if (rc != GH_OK) break;
        (*count)++;
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE) rc = gh_sqlite__fail(c, "tenant list", err);
    gh_sqlite__done(s);
out:
    gh_sqlite__read_release(c);
    return rc;
}

int gh_sqlite__tenant_update(struct gh_store *st, const char *id,
                             const struct gh_store_tenant_update *upd, int64_t now,
                             struct gh_store_tenant *out, bool *status_moved, struct gh_err *err)
{
    struct gh_sqlite_store *ss = gh_sqlite__of(st);
    struct gh_sqlite_conn *c = &ss->writer;
    struct gh_store_tenant cur;
    sqlite3_stmt *s;
    int rc;

    rc = gh_sqlite__write_begin(ss, err);
    if (rc != GH_OK) return rc;
    rc = tenant_lookup(c, GH_SQ_TENANT_GET, id, &cur, err);
    if (rc != GH_OK) goto out;
    if (upd->name != NULL && strcmp(upd->name, cur.name) != 0) {
        rc = name_free(c, upd->name, id, err);
        if (rc != GH_OK) goto out;
    }
    s = gh_sqlite__stmt(c, GH_SQ_TENANT_UPDATE, err);
    if (s == NULL) {
        rc = GH_ERROR;
        goto out;
    }
    gh_sqlite__bind_text(s, 1, id);
    if (upd->name != NULL) gh_sqlite__bind_text(s, 2, upd->name);
    if (upd->plan != NULL) gh_sqlite__bind_text(s, 3, upd->plan);
    if (upd->status != GH_STORE_TENANT_ANY)
        gh_sqlite__bind_text(s, 4, gh_store_tenant_status_name(upd->status));
    sqlite3_bind_int64(s, 5, now);
    rc = gh_sqlite__exec(c, s, "tenant update", err);
    rc = gh_sqlite__conflict(c, rc);
    if (rc != GH_OK) goto out;
    *status_moved = upd->status != GH_STORE_TENANT_ANY && upd->status != cur.status;
    /* A suspension or reinstatement changes who may pass, and so does a new
     * plan (its limits): caches reload. */
    if ((upd->status != GH_STORE_TENANT_ANY && upd->status != cur.status) ||
        (upd->plan != NULL && strcmp(upd->plan, cur.plan) != 0))
        rc = gh_sqlite__bump(c, err);
    if (rc == GH_OK && out != NULL) rc = tenant_lookup(c, GH_SQ_TENANT_GET, id, out, err);
out:
    return gh_sqlite__write_end(ss, rc, err);
}

/* ---- Plans and limit overrides ---------------------------------------------- */

/* The plan and limit overrides of tenant <id> on <c> (locked), into <plan>
 * (GH_STORE_NAME_SIZE bytes) and <json> (<cap> bytes). NOT_FOUND; INVALID
 * when the overrides do not fit in <cap>. */
static int limits_lookup(struct gh_sqlite_conn *c, const char *id, char *plan, char *json,
                         size_t cap, struct gh_err *err)
{
    sqlite3_stmt *s = gh_sqlite__stmt(c, GH_SQ_TENANT_LIMITS_GET, err);
    int rc;

    if (s == NULL) return GH_ERROR;
    gh_sqlite__bind_text(s, 1, id);
    rc = gh_sqlite__row(c, s, "tenant limits", err);
    if (rc == GH_STORE_NOT_FOUND) gh_err_set(err, NULL, 0, 0, "tenant not found");
    if (rc != GH_OK) return rc;
    rc = gh_sqlite__col_text(s, 0, plan, GH_STORE_NAME_SIZE, err);
    if (rc == GH_OK && (size_t)sqlite3_column_bytes(s, 1) >= cap) {
        json[0] = '\0';
        rc = GH_STORE_INVALID;
        gh_err_set(err, NULL, 0, 0, "json: a buffer of %zu bytes cannot hold the overrides (%d)",
                   cap, sqlite3_column_bytes(s, 1));
    } else if (rc == GH_OK) {
        rc = gh_sqlite__col_text(s, 1, json, cap, err);
    }
    gh_sqlite__done(s);
    return rc;
}

int gh_sqlite__tenant_limits_set(struct gh_store *st, const char *id, const char *plan,
                                 const char *overrides_json, int64_t now, struct gh_err *err)
{
    struct gh_sqlite_store *ss = gh_sqlite__of(st);
    struct gh_sqlite_conn *c = &ss->writer;
    char cur_plan[GH_STORE_NAME_SIZE];
    char *cur_json = malloc(GH_STORE_LIMITS_JSON_MAX + 1); /* not on the caller's stack */
    sqlite3_stmt *s;
    bool changed;
    int rc;

    if (cur_json == NULL) return gh_err_set(err, NULL, 0, 0, "store: out of memory");
    rc = gh_sqlite__write_begin(ss, err);
    if (rc != GH_OK) goto out;
    rc = limits_lookup(c, id, cur_plan, cur_json, GH_STORE_LIMITS_JSON_MAX + 1, err);
    if (rc == GH_STORE_INVALID) rc = GH_ERROR; /* a stored row that validation would refuse */
    if (rc != GH_OK) goto end;
    s = gh_sqlite__stmt(c, GH_SQ_TENANT_LIMITS_SET, err);
    if (s == NULL) {
        rc = GH_ERROR;
        goto end;
    }
    gh_sqlite__bind_text(s, 1, id);
    if (plan != NULL) gh_sqlite__bind_text(s, 2, plan);
    if (overrides_json != NULL) gh_sqlite__bind_text(s, 3, overrides_json);
    sqlite3_bind_int64(s, 4, now);
    rc = gh_sqlite__exec(c, s, "tenant limits", err);
    if (rc != GH_OK) goto end;
    /* A new plan or new overrides change what passes: caches reload. The
     * text is compared, so a reformatted object reloads them needlessly,
     * which is harmless. */
    changed = (plan != NULL && strcmp(plan, cur_plan) != 0) ||
              (overrides_json != NULL && strcmp(overrides_json, cur_json) != 0);
    if (changed) rc = gh_sqlite__bump(c, err);
end:
    rc = gh_sqlite__write_end(ss, rc, err);
out:
    free(cur_json);
    return rc;
}

int gh_sqlite__tenant_limits_get(struct gh_store *st, const char *id, char *plan, char *json,
                                 size_t cap, struct gh_err *err)
{
    struct gh_sqlite_conn *c = gh_sqlite__read_acquire(gh_sqlite__of(st));
    int rc = limits_lookup(c, id, plan, json, cap, err);

    gh_sqlite__read_release(c);
    return rc;
}

/* One row of the limits walk, off the caller's stack (~4.2 KiB). */
struct limits_row {
    char id[GH_STORE_TENANT_ID_SIZE];
    char status[16];
    char plan[GH_STORE_NAME_SIZE];
    char json[GH_STORE_LIMITS_JSON_MAX + 1];
};

int gh_sqlite__tenant_limits_load(struct gh_store *st, gh_store_tenant_limits_cb cb, void *arg,
                                  struct gh_err *err)
{
    struct gh_sqlite_conn *c = gh_sqlite__read_acquire(gh_sqlite__of(st));
    struct limits_row *r = malloc(sizeof(*r));
    sqlite3_stmt *s;
    int rc = GH_OK, step;

    if (r == NULL) {
        rc = gh_err_set(err, NULL, 0, 0, "store: out of memory");
        goto out;
    }
    s = gh_sqlite__stmt(c, GH_SQ_TENANT_LIMITS_LOAD, err);
    if (s == NULL) {
        rc = GH_ERROR;
        goto out;
    }
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        enum gh_store_tenant_status ts;

        if (gh_sqlite__col_text(s, 0, r->id, sizeof(r->id), err) != GH_OK ||
            gh_sqlite__col_text(s, 1, r->status, sizeof(r->status), err) != GH_OK ||
            gh_sqlite__col_text(s, 2, r->plan, sizeof(r->plan), err) != GH_OK ||
            gh_sqlite__col_text(s, 3, r->json, sizeof(r->json), err) != GH_OK) {
            rc = GH_ERROR;
            break;
        }
        ts = gh_store_tenant_status_parse(r->status);
        if (ts == GH_STORE_TENANT_ANY) {
            rc = gh_err_set(err, NULL, 0, 0, "store: tenants.status: unknown value");
            break;
        }
        rc = cb(r->id, ts, r->plan, r->json, arg);
        if (rc != GH_OK) break;
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE) rc = gh_sqlite__fail(c, "tenant limits", err);
    gh_sqlite__done(s);
out:
    gh_sqlite__read_release(c);
    free(r);
    return rc;
}
