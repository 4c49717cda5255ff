/* A fresh store for one test, on SQLite or on PostgreSQL.
 *
 * Without GH_TEST_PG_SERVER each test gets a fresh SQLite file in a new
 * temporary folder. With GH_TEST_PG_SERVER=HOST:PORT (a PostgreSQL server
 * whose superuser GH_TEST_PG_SUPERUSER, default gh_super, logs in without a
 * password: tests/integration/test_postgres.py runs the store's unit tests
 * so) each gets a fresh database instead, made by `gatehouse postgres
 * init`'s own function and reached as the gateway's login role. The same
 * tests then run on both engines through store.h.
 *
 * Header-only: each unit test is one translation unit (Makefile). */
#ifndef GH_TESTS_STORE_FIXTURE_H
#define GH_TESTS_STORE_FIXTURE_H

#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/store.h"
#include "store/store_postgres.h"

struct gh_test_store {
    char dir[256];  /* SQLite: the temporary folder */
    char path[300]; /* SQLite: the file */
    char db[64];    /* PostgreSQL: the test's database ("": SQLite) */
    struct gh_store *st;
};

static inline const char *gh_test_pg_server(void)
{
    const char *s = getenv("GH_TEST_PG_SERVER");
    return s && *s ? s : NULL;
}

/* The URL of database <db> as <user> (NULL: the superuser). */
static inline void gh_test_pg_url(char *out, size_t size, const char *user, const char *db)
{
    const char *super = getenv("GH_TEST_PG_SUPERUSER");

    if (user == NULL) user = super && *super ? super : "gh_super";
    snprintf(out, size, "postgresql://%s@%s/%s", user, gh_test_pg_server(), db);
}

/* SQL that takes a store's webhook tables back to how migration 19 left
 * them, for the tests of migrations 20 to 23: their indexes, columns and
 * trigger gone, their versions unrecorded. The trigger of migration 23 is
 * dropped in each engine's words (GH_TEST_REV_TRIGGER_*), the rest is the
 * same in both. */
#define GH_TEST_REV_TRIGGER_SQLITE "DROP TRIGGER webhook_endpoints_rev;"
#define GH_TEST_REV_TRIGGER_PG                                                                     \
    "DROP TRIGGER webhook_endpoints_rev ON webhook_endpoints;"                                     \
    "DROP FUNCTION webhook_endpoints_rev();"
#define GH_TEST_WEBHOOKS_AT_19(drop_rev_trigger)                                                   \
    "DELETE FROM schema_migrations WHERE version = 23;" drop_rev_trigger                           \
    "ALTER TABLE webhook_endpoints DROP COLUMN rev;"                                               \
    "DELETE FROM schema_migrations WHERE version = 22;"                                            \
    "DROP INDEX webhook_deliveries_paused;"                                                        \
    "DELETE FROM schema_migrations WHERE version = 21;"                                            \
    "DROP INDEX webhook_endpoints_reports;"                                                        \
    "ALTER TABLE webhook_endpoints DROP COLUMN report_after;"                                      \
    "DELETE FROM schema_migrations WHERE version = 20;"                                            \
    "DROP INDEX webhook_deliveries_due;"                                                           \
    "ALTER TABLE webhook_deliveries DROP COLUMN paused;"                                           \
    "CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);"

/* A session on database <db> as the superuser, in schema gatehouse; NULL
 * (and the reason on stderr) when it cannot connect. */
static inline PGconn *gh_test_pg_connect(const char *db)
{
    char url[256];
    PGconn *c;

    gh_test_pg_url(url, sizeof(url), NULL, db);
    c = PQconnectdb(url);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "connect %s: %s", url, PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    PQclear(PQexec(c, "SET search_path = gatehouse"));
    return c;
}

/* Runs <sql> on session <c>; false (and the error on stderr) on failure. */
static inline bool gh_test_pg_run(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;

    if (!ok) fprintf(stderr, "%s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    return ok;
}

/* Runs <sql> on database <db> as the superuser, in schema gatehouse. */
static inline bool gh_test_pg_exec(const char *db, const char *sql)
{
    PGconn *c = gh_test_pg_connect(db);
    bool ok = c != NULL && gh_test_pg_run(c, sql);

    PQfinish(c);
    return ok;
}

/* Runs <sql> on the test's store behind its back, as its owner (the
 * superuser on PostgreSQL); false (and the error on stderr) on failure. */
static inline bool gh_test_store_exec(const struct gh_test_store *t, const char *sql)
{
    sqlite3 *db = NULL;
    bool ok;

    if (t->db[0]) return gh_test_pg_exec(t->db, sql);
    ok = sqlite3_open(t->path, &db) == SQLITE_OK &&
         sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK;
    if (!ok) fprintf(stderr, "%s: %s\n", sql, sqlite3_errmsg(db));
    sqlite3_close(db);
    return ok;
}

static inline void gh_test_store_drop(struct gh_test_store *t)
{
    char sql[128];
    const char *suffix[] = {"", "-wal", "-shm"};

    if (t->db[0]) {
        snprintf(sql, sizeof(sql), "DROP DATABASE %s WITH (FORCE)", t->db);
        gh_test_pg_exec("postgres", sql);
        t->db[0] = '\0';
        return;
    }
    if (t->dir[0] == '\0') return;
    for (size_t i = 0; i < 3; i++) {
        char path[320];
        snprintf(path, sizeof(path), "%s%s", t->path, suffix[i]);
        unlink(path);
    }
    rmdir(t->dir);
    t->dir[0] = '\0';
}

/* Makes a fresh store named after <what> (a few [a-z_] letters) and opens
 * it at the newest schema version. Non-zero (and the reason in <err>) on
 * failure, with nothing left behind. */
static inline int gh_test_store_open(struct gh_test_store *t, const char *what, struct gh_err *err)
{
    static unsigned made;
    struct gh_store_params p = {0};
    char url[256], sql[128];

    memset(t, 0, sizeof(*t));
    if (gh_test_pg_server()) {
        snprintf(t->db, sizeof(t->db), "gh_unit_%s_%d_%u", what, (int)getpid(), ++made);
        snprintf(sql, sizeof(sql), "CREATE DATABASE %s", t->db);
        if (!gh_test_pg_exec("postgres", sql)) {
            gh_err_set(err, NULL, 0, 0, "cannot make database %s", t->db);
            t->db[0] = '\0';
            return GH_ERROR;
        }
        gh_test_pg_url(url, sizeof(url), NULL, t->db);
        if (gh_store_postgres_init(url, NULL, "gatehouse", NULL, NULL, err) != GH_OK) goto fail;
        gh_test_pg_url(url, sizeof(url), "gatehouse", t->db);
        p.postgres_url = url;
    } else {
        const char *tmp = getenv("TMPDIR");
        snprintf(t->dir, sizeof(t->dir), "%s/gh_%s_XXXXXX", tmp && tmp[0] ? tmp : P_tmpdir, what);
        if (mkdtemp(t->dir) == NULL) {
            t->dir[0] = '\0';
            gh_err_set(err, NULL, 0, 0, "mkdtemp: cannot make a folder");
            return GH_ERROR;
        }
        snprintf(t->path, sizeof(t->path), "%s/gatehouse.db", t->dir);
        p.sqlite_path = t->path;
    }
    if (gh_store_open(&p, &t->st, err) != GH_OK) goto fail;
    if (gh_store_migrate(t->st, NULL, NULL, err) != GH_OK) {
        gh_store_close(t->st);
        t->st = NULL;
        goto fail;
    }
    return GH_OK;
fail:
    gh_test_store_drop(t);
    return GH_ERROR;
}

static inline void gh_test_store_close(struct gh_test_store *t)
{
    gh_store_close(t->st);
    t->st = NULL;
    gh_test_store_drop(t);
}

#endif
