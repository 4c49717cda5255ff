/* Usage counters and limit events in the SQLite store: batches of counts
 * added to (tenant, period) rows, reads of one row or of a whole period, and
 * the record and listing of quota thresholds crossed. Input arrives
 * validated by the gh_store_* wrappers (store.c). */
#include <stdint.h>
#include <string.h>

#include "store/sqlite_int.h"

/* ---- Usage ------------------------------------------------------------------ */

/* Fills <u> from the 6 columns of USAGE_COLS starting at column 0. */
static int usage_row(sqlite3_stmt *s, struct gh_store_usage *u, struct gh_err *err)
{
    if (gh_sqlite__col_text(s, 0, u->tenant_id, sizeof(u->tenant_id), err) != GH_OK ||
        gh_sqlite__col_text(s, 1, u->period, sizeof(u->period), err) != GH_OK)
        return GH_ERROR;
    u->requests = (uint64_t)sqlite3_column_int64(s, 2);
    u->request_bytes = (uint64_t)sqlite3_column_int64(s, 3);
    u->response_bytes = (uint64_t)sqlite3_column_int64(s, 4);
    u->updated_at = sqlite3_column_int64(s, 5);
    return GH_OK;
}

int gh_sqlite__usage_add(struct gh_store *st, const char *batch_id, struct gh_store_usage *rows,
                         size_t n, int64_t now, struct gh_err *err)
{
    struct gh_sqlite_store *ss = gh_sqlite__of(st);
    struct gh_sqlite_conn *c = &ss->writer;
    sqlite3_stmt *s;
    int rc;

    /* A SQLite commit is always answered: a batch is never sent again
     * after it landed, so no id is kept. */
    (void)batch_id;
    rc = gh_sqlite__write_begin(ss, err);
    if (rc != GH_OK) return rc;
    s = gh_sqlite__stmt(c, GH_SQ_USAGE_ADD, err);
    if (s == NULL) rc = GH_ERROR;
    for (size_t i = 0; rc == GH_OK && i < n; i++) {
        gh_sqlite__bind_text(s, 1, rows[i].tenant_id);
        gh_sqlite__bind_text(s, 2, rows[i].period);
        sqlite3_bind_int64(s, 3, (int64_t)rows[i].requests);
        sqlite3_bind_int64(s, 4, (int64_t)rows[i].request_bytes);
        sqlite3_bind_int64(s, 5, (int64_t)rows[i].response_bytes);
        sqlite3_bind_int64(s, 6, now);
        /* RETURNING gives the row as it is after the insert or update. */
        rc = gh_sqlite__row(c, s, "usage add", err);
        if (rc == GH_STORE_NOT_FOUND)
            rc = gh_err_set(err, NULL, 0, 0, "store: usage add: no row returned");
        if (rc != GH_OK) break;
        rows[i].requests = (uint64_t)sqlite3_column_int64(s, 0);
        rows[i].request_bytes = (uint64_t)sqlite3_column_int64(s, 1);
        rows[i].response_bytes = (uint64_t)sqlite3_column_int64(s, 2);
        rows[i].updated_at = now;
        gh_sqlite__done(s);
    }
    return gh_sqlite__write_end(ss, rc, err);
}

int gh_sqlite__usage_get(struct gh_store *st, const char *tenant_id, const char *period,
                         struct gh_store_usage *out, struct gh_err *err)
{
    struct gh_sqlite_conn *c = gh_sqlite__read_acquire(gh_sqlite__of(st));
    sqlite3_stmt *s = gh_sqlite__stmt(c, GH_SQ_USAGE_GET, err);
    int rc = GH_ERROR;

    if (s == NULL) goto out;
    gh_sqlite__bind_text(s, 1, tenant_id);
    gh_sqlite__bind_text(s, 2, period);
    rc = gh_sqlite__row(c, s, "usage", err);
    if (rc != GH_OK) goto out;
    rc = usage_row(s, out, err);
    gh_sqlite__done(s);
out:
    gh_sqlite__read_release(c);
    return rc;
}

int gh_sqlite__usage_load(struct gh_store *st, const char *period, gh_store_usage_cb cb, void *arg,
                          struct gh_err *err)
{
    struct gh_sqlite_conn *c = gh_sqlite__read_acquire(gh_sqlite__of(st));
    sqlite3_stmt *s = gh_sqlite__stmt(c, GH_SQ_USAGE_LOAD, err);
    struct gh_store_usage u;
    int rc = GH_OK, step;

    if (s == NULL) {
        rc = GH_ERROR;
        goto out;
    }
    gh_sqlite__bind_text(s, 1, period);
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        memset(&u, 0, sizeof(u));
        rc = usage_row(s, &u, err);
        if (rc != GH_OK) break;
        rc = cb(&u, arg);
        if (rc != GH_OK) break;
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE) rc = gh_sqlite__fail(c, "usage load", err);
    gh_sqlite__done(s);
out:
    gh_sqlite__read_release(c);
    return rc;
}

/* ---- Limit events ----------------------------------------------------------- */

/* Fills <ev> from the 8 columns of EVENT_COLS starting at column 0. */
static int event_row(sqlite3_stmt *s, struct gh_store_limit_event *ev, struct gh_err *err)
{
    if (gh_sqlite__col_text(s, 1, ev->tenant_id, sizeof(ev->tenant_id), err) != GH_OK ||
        gh_sqlite__col_text(s, 2, ev->period, sizeof(ev->period), err) != GH_OK ||
        gh_sqlite__col_text(s, 3, ev->metric, sizeof(ev->metric), err) != GH_OK)
        return GH_ERROR;
    ev->id = sqlite3_column_int64(s, 0);
    ev->threshold = (uint32_t)sqlite3_column_int64(s, 4);
    ev->value = (uint64_t)sqlite3_column_int64(s, 5);
    ev->limit = (uint64_t)sqlite3_column_int64(s, 6);
    ev->created_at = sqlite3_column_int64(s, 7);
    return GH_OK;
}

int gh_sqlite__limit_event_record(struct gh_store *st, struct gh_store_limit_event *ev,
                                  bool *inserted, struct gh_err *err)
{
    struct gh_sqlite_store *ss = gh_sqlite__of(st);
    struct gh_sqlite_conn *c = &ss->writer;
    sqlite3_stmt *s;
    int rc;

    *inserted = false;
    rc = gh_sqlite__write_begin(ss, err);
    if (rc != GH_OK) return rc;
    s = gh_sqlite__stmt(c, GH_SQ_EVENT_INSERT, err);
    if (s == NULL) {
        rc = GH_ERROR;
        goto out;
    }
    gh_sqlite__bind_text(s, 1, ev->tenant_id);
    gh_sqlite__bind_text(s, 2, ev->period);
    gh_sqlite__bind_text(s, 3, ev->metric);
    sqlite3_bind_int64(s, 4, ev->threshold);
    sqlite3_bind_int64(s, 5, (int64_t)ev->value);
    sqlite3_bind_int64(s, 6, (int64_t)ev->limit);
    sqlite3_bind_int64(s, 7, ev->created_at);
    /* RETURNING yields the new id only when a row was inserted; ON CONFLICT
     * DO NOTHING yields no row when the event is already recorded. */
    rc = gh_sqlite__row(c, s, "limit event", err);
    if (rc == GH_STORE_NOT_FOUND) {
        rc = GH_OK;
        goto out;
    }
    if (rc != GH_OK) goto out;
    ev->id = sqlite3_column_int64(s, 0);
    *inserted = true;
    gh_sqlite__done(s);
out:
    rc = gh_sqlite__write_end(ss, rc, err);
    if (rc != GH_OK) *inserted = false;
    return rc;
}

int gh_sqlite__limit_events_list(struct gh_store *st, const char *tenant_id, int64_t before_id,
                                 size_t limit, struct gh_store_limit_event *out, size_t *count,
                                 bool *more, struct gh_err *err)
{
    struct gh_sqlite_conn *c = gh_sqlite__read_acquire(gh_sqlite__of(st));
    /* Two statements rather than "?1 IS NULL OR tenant_id = ?1": a tenant's
     * list is answered from its index, and cannot fall back to every row. */
    sqlite3_stmt *s =
        gh_sqlite__stmt(c, tenant_id != NULL ? GH_SQ_EVENT_LIST_TENANT : GH_SQ_EVENT_LIST, err);
    int rc = GH_OK, step;

    *count = 0;
    *more = false;
    if (s == NULL) {
        rc = GH_ERROR;
        goto out;
    }
    if (tenant_id != NULL) gh_sqlite__bind_text(s, 1, tenant_id);
    sqlite3_bind_int64(s, 2, before_id);
    sqlite3_bind_int64(s, 3,
                       (int64_t)limit + 1); /* one more row tells whether a next page exists */
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        if (*count == limit) {
            *more = true;
            break;
        }
        memset(&out[*count], 0, sizeof(out[*count]));
        rc = event_row(s, &out[*count], err);
        if (rc != GH_OK) break;
        (*count)++;
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE) rc = gh_sqlite__fail(c, "limit events", err);
    gh_sqlite__done(s);
out:
    gh_sqlite__read_release(c);
    return rc;
}

int gh_sqlite__usage_purge(struct gh_store *st, const char *day, const char *month, size_t limit,
                           struct gh_store_usage_purged *out, struct gh_err *err)
{
    static const enum gh_sqlite_stmt ids[2] = {GH_SQ_USAGE_PURGE, GH_SQ_EVENT_PURGE};
    uint64_t *counts[2] = {&out->usage, &out->events};
    struct gh_sqlite_store *ss = gh_sqlite__of(st);
    struct gh_sqlite_conn *c = &ss->writer;
    int rc = gh_sqlite__write_begin(ss, err);

    if (rc != GH_OK) return rc;
    /* The same period rule for both tables (store_sqlite.c). */
    for (size_t i = 0; rc == GH_OK && i < 2; i++) {
        sqlite3_stmt *s = gh_sqlite__stmt(c, ids[i], err);
        if (s == NULL) {
            rc = GH_ERROR;
            break;
        }
        gh_sqlite__bind_text(s, 1, day);
        gh_sqlite__bind_text(s, 2, month);
        sqlite3_bind_int64(s, 3, (int64_t)limit);
        rc = gh_sqlite__exec(c, s, "usage purge", err);
        if (rc == GH_OK) *counts[i] = (uint64_t)sqlite3_changes(c->db);
    }
    rc = gh_sqlite__write_end(ss, rc, err);
    if (rc != GH_OK) memset(out, 0, sizeof(*out));
    return rc;
}
