/* Backups in the PostgreSQL store: row counts of every table of the schema
 * (from the catalogue) and a consistency check of what the gateway relies on
 * (row-level security on every tenant-owned table). The backup itself is
 * PostgreSQL's own tools' job for now (docs/postgres.md). */
#include <stdio.h>
#include <string.h>

#include "store/pg_int.h"

int gh_pg__backup(struct gh_store *st, const char *path, struct gh_err *err)
{
    (void)st;
    (void)path;
    /* NEEDSWORK: `gatehouse backup` writes a SQLite file and a manifest that
     * restore-drill opens as SQLite; with PostgreSQL it would run
     * `pg_dump --schema=gatehouse --role=gatehouse_operator` in one snapshot
     * and the drill would restore into a scratch database. */
    return gh_err_set(err, NULL, 0, 0,
                      "backup: not yet with PostgreSQL: use pg_dump --schema=gatehouse "
                      "(docs/postgres.md)");
}

struct count_walk {
    gh_store_count_cb cb;
    void *arg;
};

static int count_row(const PGresult *r, void *arg)
{
    struct count_walk *w = arg;

    return w->cb(PQgetvalue(r, 0, 0), (uint64_t)gh_pg__i64(r, 0, 1), w->arg);
}

int gh_pg__table_counts(struct gh_store *st, gh_store_count_cb cb, void *arg, struct gh_err *err)
{
    struct count_walk w = {cb, arg};
    struct gh_pg_tx tx;
    int rc = gh_pg__begin(gh_pg__of(st), GH_PG_OPERATOR, NULL, true, &tx, err);

    if (rc != GH_OK) return rc;
    rc = gh_pg__stream(&tx, GH_PG_TABLES, NULL, count_row, &w, err);
    return gh_pg__end(&tx, rc, err);
}

int gh_pg__integrity_check(struct gh_store *st, char *problem, size_t size, struct gh_err *err)
{
    struct gh_pg_tx tx;
    PGresult *r = NULL;
    int rc = gh_pg__begin(gh_pg__of(st), GH_PG_OPERATOR, NULL, true, &tx, err);

    if (rc != GH_OK) return rc;
    problem[0] = '\0';
    rc = gh_pg__run(&tx, GH_PG_RLS_CHECK, NULL, &r, err);
    if (rc == GH_OK && PQntuples(r) > 0)
        snprintf(problem, size,
                 "table %s: row-level security is not enabled, forced and "
                 "with a policy",
                 PQgetvalue(r, 0, 0));
    PQclear(r);
    return gh_pg__end(&tx, rc, err);
}
