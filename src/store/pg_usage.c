/* Usage counters and limit events in the PostgreSQL store. Batches and the
 * period walk are operator work; a tenant's own row and its event list run
 * under row-level security. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/pg_int.h"

static int usage_row(const PGresult *r, int row, struct gh_store_usage *u, struct gh_err *err)
{
    if (gh_pg__text(r, row, 0, u->tenant_id, sizeof(u->tenant_id), err) != GH_OK ||
        gh_pg__text(r, row, 1, u->period, sizeof(u->period), err) != GH_OK)
        return GH_ERROR;
    u->requests = (uint64_t)gh_pg__i64(r, row, 2);
    u->request_bytes = (uint64_t)gh_pg__i64(r, row, 3);
    u->response_bytes = (uint64_t)gh_pg__i64(r, row, 4);
    u->updated_at = gh_pg__i64(r, row, 5);
    return GH_OK;
}

static int usage_cmp(const void *a, const void *b)
{
    const struct gh_store_usage *x = a, *y = b;
    int c = strcmp(x->tenant_id, y->tenant_id);
    return c != 0 ? c : strcmp(x->period, y->period);
}

/* The rows are written in (tenant_id, period) order (gh_pg__order), the
 * primary key's: every node flushes the same busy tenants. A pair given
 * twice keeps its order, so each row still gets the total after its own
 * addition. */
/* Records <batch_id> in <tx>; *seen when it was there already (the batch
 * was stored by a commit whose answer was lost). Ids older than 7 days go,
 * a few at a time, skipping those another node's purge holds. */
static int batch_seen(struct gh_pg_tx *tx, const char *batch_id, int64_t now, bool *seen,
                      struct gh_err *err)
{
    struct gh_pg_args a = {0}, p = {0};
    PGresult *r = NULL;
    int rc;

    gh_pg__arg(&a, batch_id);
    gh_pg__arg_i64(&a, now);
    rc = gh_pg__run(tx, GH_PG_USAGE_BATCH_INSERT, &a, &r, err);
    *seen = rc == GH_OK && PQntuples(r) == 0;
    PQclear(r);
    if (rc != GH_OK || *seen) return rc;
    gh_pg__arg_i64(&p, now - 7 * 86400000LL);
    return gh_pg__run(tx, GH_PG_USAGE_BATCH_PURGE, &p, NULL, err);
}

int gh_pg__usage_add(struct gh_store *st, const char *batch_id, struct gh_store_usage *rows,
                     size_t n, int64_t now, struct gh_err *err)
{
    struct gh_pg_tx tx;
    size_t *order = gh_pg__order(rows, n, sizeof(*rows), usage_cmp);
    bool seen = false;
    int rc;

    if (order == NULL) return gh_err_set(err, NULL, 0, 0, "store: out of memory");
    rc = gh_pg__begin(gh_pg__of(st), GH_PG_OPERATOR, NULL, false, &tx, err);
    if (rc != GH_OK) {
        free(order);
        return rc;
    }
    if (batch_id != NULL) rc = batch_seen(&tx, batch_id, now, &seen, err);
    for (size_t k = 0; rc == GH_OK && k < n; k++) {
        struct gh_pg_args a = {0};
        PGresult *r = NULL;
        size_t i = order[k];

        if (seen) {
            /* Stored already: the totals as they are now (another node may
             * have added since, which a later flush would read anyway). */
            gh_pg__arg(&a, rows[i].tenant_id);
            gh_pg__arg(&a, rows[i].period);
            rc = gh_pg__run(&tx, GH_PG_USAGE_TOTALS, &a, &r, err);
            if (rc == GH_OK && PQntuples(r) != 1)
                rc = gh_err_set(err, NULL, 0, 0, "store: usage add: the stored row is missing");
            if (rc == GH_OK) {
                rows[i].requests = (uint64_t)gh_pg__i64(r, 0, 0);
                rows[i].request_bytes = (uint64_t)gh_pg__i64(r, 0, 1);
                rows[i].response_bytes = (uint64_t)gh_pg__i64(r, 0, 2);
                rows[i].updated_at = now;
            }
            PQclear(r);
            continue;
        }

        gh_pg__arg(&a, rows[i].tenant_id);
        gh_pg__arg(&a, rows[i].period);
        gh_pg__arg_i64(&a, (int64_t)rows[i].requests);
        gh_pg__arg_i64(&a, (int64_t)rows[i].request_bytes);
        gh_pg__arg_i64(&a, (int64_t)rows[i].response_bytes);
        gh_pg__arg_i64(&a, now);
        /* RETURNING gives the row as it is after the insert or update; the
         * wrapper copies the totals back only after the commit. */
        rc = gh_pg__run(&tx, GH_PG_USAGE_ADD, &a, &r, err);
        if (rc == GH_OK && PQntuples(r) != 1)
            rc = gh_err_set(err, NULL, 0, 0, "store: usage add: no row returned");
        if (rc == GH_OK) {
            rows[i].requests = (uint64_t)gh_pg__i64(r, 0, 0);
            rows[i].request_bytes = (uint64_t)gh_pg__i64(r, 0, 1);
            rows[i].response_bytes = (uint64_t)gh_pg__i64(r, 0, 2);
            rows[i].updated_at = now;
        }
        PQclear(r);
    }
    free(order);
    return gh_pg__end(&tx, rc, err);
}

int gh_pg__usage_get(struct gh_store *st, const char *tenant_id, const char *period,
                     struct gh_store_usage *out, struct gh_err *err)
{
    struct gh_pg_args a = {0};
    struct gh_pg_tx tx;
    PGresult *r = NULL;
    int rc = gh_pg__begin(gh_pg__of(st), GH_PG_TENANT, tenant_id, false, &tx, err);

    if (rc != GH_OK) return rc;
    gh_pg__arg(&a, tenant_id);
    gh_pg__arg(&a, period);
    rc = gh_pg__run(&tx, GH_PG_USAGE_GET, &a, &r, err);
    if (rc == GH_OK && PQntuples(r) == 0) rc = GH_STORE_NOT_FOUND;
    if (rc == GH_OK) rc = usage_row(r, 0, out, err);
    PQclear(r);
    /* No row is an answer (the wrapper reads it as zeros), not a failure. */
    return gh_pg__end_lookup(&tx, rc, err);
}

struct usage_walk {
    gh_store_usage_cb cb;
    void *arg;
    struct gh_err *err;
};

static int usage_walk_row(const PGresult *r, void *arg)
{
    struct usage_walk *w = arg;
    struct gh_store_usage u;

    memset(&u, 0, sizeof(u));
    if (usage_row(r, 0, &u, w->err) != GH_OK) return GH_ERROR;
    return w->cb(&u, w->arg);
}

int gh_pg__usage_load(struct gh_store *st, const char *period, gh_store_usage_cb cb, void *arg,
                      struct gh_err *err)
{
    struct usage_walk w = {cb, arg, err};
    struct gh_pg_args a = {0};
    struct gh_pg_tx tx;
    int rc = gh_pg__begin(gh_pg__of(st), GH_PG_OPERATOR, NULL, true, &tx, err);

    if (rc != GH_OK) return rc;
    gh_pg__arg(&a, period);
    rc = gh_pg__stream(&tx, GH_PG_USAGE_LOAD, &a, usage_walk_row, &w, err);
    return gh_pg__end(&tx, rc, err);
}

/* ---- Limit events ------------------------------------------------------------- */

static int event_row(const PGresult *r, int row, struct gh_store_limit_event *ev,
                     struct gh_err *err)
{
    if (gh_pg__text(r, row, 1, ev->tenant_id, sizeof(ev->tenant_id), err) != GH_OK ||
        gh_pg__text(r, row, 2, ev->period, sizeof(ev->period), err) != GH_OK ||
        gh_pg__text(r, row, 3, ev->metric, sizeof(ev->metric), err) != GH_OK)
        return GH_ERROR;
    ev->id = gh_pg__i64(r, row, 0);
    ev->threshold = (uint32_t)gh_pg__i64(r, row, 4);
    ev->value = (uint64_t)gh_pg__i64(r, row, 5);
    ev->limit = (uint64_t)gh_pg__i64(r, row, 6);
    ev->created_at = gh_pg__i64(r, row, 7);
    return GH_OK;
}

int gh_pg__limit_event_record(struct gh_store *st, struct gh_store_limit_event *ev, bool *inserted,
                              struct gh_err *err)
{
    struct gh_pg_args a = {0};
    struct gh_pg_tx tx;
    PGresult *r = NULL;
    int64_t id = 0;
    int rc;

    *inserted = false;
    rc = gh_pg__begin(gh_pg__of(st), GH_PG_OPERATOR, NULL, false, &tx, err);
    if (rc != GH_OK) return rc;
    gh_pg__arg(&a, ev->tenant_id);
    gh_pg__arg(&a, ev->period);
    gh_pg__arg(&a, ev->metric);
    gh_pg__arg_i64(&a, ev->threshold);
    gh_pg__arg_i64(&a, (int64_t)ev->value);
    gh_pg__arg_i64(&a, (int64_t)ev->limit);
    gh_pg__arg_i64(&a, ev->created_at);
    /* DO NOTHING ... RETURNING yields a row only when the event is new. */
    rc = gh_pg__run(&tx, GH_PG_EVENT_INSERT, &a, &r, err);
    if (rc == GH_OK && PQntuples(r) == 1) id = gh_pg__i64(r, 0, 0);
    PQclear(r);
    rc = gh_pg__end(&tx, rc, err);
    if (rc != GH_OK) return rc;
    *inserted = id != 0;
    ev->id = id;
    if (!*inserted) ev->created_at = 0;
    return GH_OK;
}

int gh_pg__limit_events_list(struct gh_store *st, const char *tenant_id, int64_t before_id,
                             size_t limit, struct gh_store_limit_event *out, size_t *count,
                             bool *more, struct gh_err *err)
{
    struct gh_pg_args a = {0};
    struct gh_pg_tx tx;
    PGresult *r = NULL;
    int rc;

    *count = 0;
    *more = false;
    /* A tenant's list runs under RLS and its own statement (tenant_id in
     * the SQL too): it can never fall back to every row. */
    rc = gh_pg__begin(gh_pg__of(st), tenant_id ? GH_PG_TENANT : GH_PG_OPERATOR, tenant_id, false,
                      &tx, err);
    if (rc != GH_OK) return rc;
    if (tenant_id) gh_pg__arg(&a, tenant_id);
    gh_pg__arg_i64(&a, before_id);
    gh_pg__arg_i64(&a, (int64_t)limit + 1);
    rc = gh_pg__run(&tx, tenant_id ? GH_PG_EVENT_LIST_TENANT : GH_PG_EVENT_LIST, &a, &r, err);
    for (int i = 0; rc == GH_OK && i < PQntuples(r); i++) {
        if (*count == limit) {
            *more = true;
            break;
        }
        memset(&out[*count], 0, sizeof(out[*count]));
        rc = event_row(r, i, &out[*count], err);
        if (rc == GH_OK) (*count)++;
    }
    PQclear(r);
    return gh_pg__end(&tx, rc, err);
}

int gh_pg__usage_purge(struct gh_store *st, const char *day, const char *month, size_t limit,
                       struct gh_store_usage_purged *out, struct gh_err *err)
{
    static const enum gh_pg_stmt ids[2] = {GH_PG_USAGE_PURGE, GH_PG_EVENT_PURGE};
    uint64_t *counts[2] = {&out->usage, &out->events};
    struct gh_pg_args a = {0};
    struct gh_pg_tx tx;
    int rc = gh_pg__begin(gh_pg__of(st), GH_PG_OPERATOR, NULL, false, &tx, err);

    if (rc != GH_OK) return rc;
    gh_pg__arg(&a, day);
    gh_pg__arg(&a, month);
    gh_pg__arg_i64(&a, (int64_t)limit);
    /* The same period rule for both tables (store_postgres.c). */
    for (size_t i = 0; rc == GH_OK && i < 2; i++) {
        PGresult *r = NULL;
        rc = gh_pg__run(&tx, ids[i], &a, &r, err);
        if (rc == GH_OK) *counts[i] = (uint64_t)gh_pg__i64(r, 0, 0);
        PQclear(r);
    }
    rc = gh_pg__end(&tx, rc, err);
    if (rc != GH_OK) memset(out, 0, sizeof(*out));
    return rc;
}
