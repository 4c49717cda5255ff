/* Backups of the PostgreSQL store (store_postgres.h): a pg_dump of the
 * gatehouse schema from one exported snapshot, with the row counts and
 * audit chain heads read in that same snapshot; restore drills into a
 * scratch database of the same server; row counts of every table of the
 * schema (from the catalogue) and a consistency check of what the gateway
 * relies on (row-level security on every tenant-owned table). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "store/pg_int.h"
#include "store/store_postgres.h"

/* The role pg_dump reads as: the login role has no privileges of its own
 * (NOINHERIT), the operator reads every tenant's rows (BYPASSRLS). */
#define DUMP_ROLE "gatehouse_operator"

int gh_store_postgres_backup(struct gh_store *st, const char *path, gh_store_count_cb count_cb,
                             gh_store_audit_row_cb head_cb, void *arg, char *server_version,
                             size_t size, struct gh_err *err)
{
    struct gh_pg_store *s = gh_pg__of(st);
    struct gh_pg_conninfo_edit e = {0};
    struct gh_pg_tx tx;
    PGresult *r = NULL;
    char tool[PATH_MAX], snap[128], snapshot_arg[160], *dbname_arg = NULL, *file_arg = NULL;
    char *ci = NULL, *pw = NULL;
    const char *v;
    int rc, fd;

    if (server_version != NULL && size > 0) server_version[0] = '\0';
    /* The file is created here, 0600 and exclusively, as the SQLite copy
     * is: a backup holds every key hash and audit event. pg_dump then
     * writes into it, keeping its mode. */
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return gh_err_set(err, NULL, 0, 0, "backup: %s: %s", path, strerror(errno));
    close(fd);
    rc = gh_pg__begin(s, GH_PG_OPERATOR, NULL, true, &tx, err);
    if (rc != GH_OK) return rc;
    /* The snapshot first: everything after it, in this transaction and in
     * pg_dump, sees the store as of one instant while writers go on. The
     * transaction sits idle while pg_dump runs: a server's
     * idle_in_transaction_session_timeout must not end it meanwhile. */
    rc = gh_pg__run(&tx, GH_PG_NO_IDLE_TIMEOUT, NULL, NULL, err);
    if (rc == GH_OK) rc = gh_pg__run(&tx, GH_PG_EXPORT_SNAPSHOT, NULL, &r, err);
    if (rc == GH_OK && gh_pg__text(r, 0, 0, snap, sizeof(snap), err) != GH_OK) rc = GH_ERROR;
    PQclear(r);
    if (rc == GH_OK && count_cb != NULL) {
        rc = gh_pg__table_counts_tx(&tx, count_cb, arg, err);
        if (rc != GH_OK && err->msg[0] == '\0')
            gh_err_set(err, NULL, 0, 0, "backup: too many tables, or a name too long");
    }
    if (rc == GH_OK && head_cb != NULL) {
        rc = gh_pg__audit_heads_tx(&tx, head_cb, arg, err);
        if (rc != GH_OK && err->msg[0] == '\0') gh_err_set(err, NULL, 0, 0, "out of memory");
    }
    if (rc == GH_OK && server_version != NULL && size > 0) {
        v = PQparameterStatus(tx.c->db, "server_version");
        snprintf(server_version, size, "%s", v ? v : "");
    }
    if (rc == GH_OK)
        rc = gh_pg__tool("pg_dump", PQserverVersion(tx.c->db), tool, sizeof(tool), err);
    /* pg_dump must reach the server this transaction is on: the snapshot
     * lives there only (a URL may list several hosts). */
    if (rc == GH_OK) {
        e.host = PQhost(tx.c->db);
        e.port = PQport(tx.c->db);
        rc = gh_pg__conninfo(s->url, &e, &ci, &pw, err);
    }
    if (rc == GH_OK) {
        size_t n = strlen(ci) + 16, m = strlen(path) + 16;
        dbname_arg = malloc(n);
        file_arg = malloc(m);
        if (dbname_arg == NULL || file_arg == NULL)
            rc = gh_err_set(err, NULL, 0, 0, "backup: out of memory");
    }
    if (rc == GH_OK) {
        /* A lock the dump cannot get within a minute (a migration holds
         * a table) fails the backup rather than hanging it. */
        char *argv[] = {tool,
                        "--format=custom",
                        "--schema=gatehouse",
                        "--role=" DUMP_ROLE,
                        "--no-password",
                        "--lock-wait-timeout=60000",
                        snapshot_arg,
                        file_arg,
                        dbname_arg,
                        NULL};
        snprintf(snapshot_arg, sizeof(snapshot_arg), "--snapshot=%s", snap);
        snprintf(file_arg, strlen(path) + 16, "--file=%s", path);
        snprintf(dbname_arg, strlen(ci) + 16, "--dbname=%s", ci);
        rc = gh_pg__tool_run(argv, pw, err);
    }
    /* The snapshot is released only now: pg_dump has read everything. */
    rc = gh_pg__end(&tx, rc, err);
    if (pw != NULL) {
        explicit_bzero(pw, strlen(pw));
        free(pw);
    }
    free(ci);
    free(dbname_arg);
    free(file_arg);
    return rc;
}

int gh_pg__backup(struct gh_store *st, const char *path, struct gh_err *err)
{
    return gh_store_postgres_backup(st, path, NULL, NULL, NULL, NULL, 0, err);
}

/* ---- Restore drills ----------------------------------------------------------- */

struct gh_store_postgres_drill {
    PGconn *admin;
    char *admin_url;
    int server_version;
    bool created;
    char name[48];
    char *url; /* the store's URL, on the drill database */
};

/* One DROP DATABASE; <force> adds WITH (FORCE). */
static int drop_once(PGconn *db, const char *name, bool force, struct gh_err *err)
{
    char sql[160];
    PGresult *r;
    int rc = GH_OK;

    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS \"%s\"%s", name,
             force ? " WITH (FORCE)" : "");
    r = PQexec(db, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        const char *msg = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
        rc = gh_err_set(err, NULL, 0, 0, "drop database %s: %.300s", name,
                        msg ? msg : PQerrorMessage(db));
    }
    PQclear(r);
    return rc;
}

/* The checks' sessions were closed, but a backend exits a moment after
 * its client said goodbye: a plain DROP waits (up to 5 s) for such
 * sessions to end, which needs no privilege over them; only then are any
 * still there forced out (PostgreSQL 13+; that needs the right to
 * terminate them). */
static int drop(PGconn *db, const char *name, int version, struct gh_err *err)
{
    if (drop_once(db, name, false, err) == GH_OK) return GH_OK;
    if (version < 130000) return GH_ERROR;
    return drop_once(db, name, true, err);
}

int gh_store_postgres_drill_restore(const char *admin_url, const char *store_url, const char *dump,
                                    struct gh_store_postgres_drill **out, struct gh_err *err)
{
    struct gh_store_postgres_drill *d = calloc(1, sizeof(*d));
    struct gh_pg_conninfo_edit e = {0};
    char tool[PATH_MAX], sql[160], *ci = NULL, *pw = NULL, *dbname_arg = NULL;
    unsigned char rnd[8];
    PGresult *r = NULL;
    int rc;

    *out = d;
    if (d == NULL || (d->admin_url = strdup(admin_url)) == NULL)
        return gh_err_set(err, NULL, 0, 0, "restore: out of memory");
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
        return gh_err_set(err, NULL, 0, 0, "restore: getrandom: %s", strerror(errno));
    /* A name of our own prefix and lowercase hex: no quoting surprises,
     * and a left-over drill database (a killed drill) is recognisable. */
    snprintf(d->name, sizeof(d->name), "gatehouse_drill_");
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(d->name + strlen(d->name), 3, "%02x", rnd[i]);
    rc = gh_pg__connect(admin_url, GH_PG_APP, &d->admin, err);
    if (rc != GH_OK) return rc;
    d->server_version = PQserverVersion(d->admin);
    /* template0: a copy of nothing, whatever template1 holds here. */
    snprintf(sql, sizeof(sql), "CREATE DATABASE \"%s\" TEMPLATE template0", d->name);
    r = PQexec(d->admin, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
        rc = gh_err_set(err, NULL, 0, 0, "create database %s: %.200s%s", d->name,
                        msg ? msg : PQerrorMessage(d->admin),
                        state && strcmp(state, "42501") == 0
                            ? " (the drill needs a role that may create databases: --admin-url)"
                            : "");
        PQclear(r);
        return rc;
    }
    PQclear(r);
    d->created = true;
    /* The checks connect as the gateway does, by the store's URL (its
     * hosts, its way of authenticating), to the new database; pg_restore
     * goes to the very server the database was created on. */
    e.dbname = d->name;
    e.keep_password = true;
    rc = gh_pg__conninfo(store_url, &e, &d->url, NULL, err);
    e.keep_password = false;
    e.host = PQhost(d->admin);
    e.port = PQport(d->admin);
    if (rc == GH_OK) rc = gh_pg__conninfo(admin_url, &e, &ci, &pw, err);
    if (rc == GH_OK) rc = gh_pg__tool("pg_restore", d->server_version, tool, sizeof(tool), err);
    if (rc == GH_OK && (dbname_arg = malloc(strlen(ci) + 16)) == NULL)
        rc = gh_err_set(err, NULL, 0, 0, "restore: out of memory");
    if (rc == GH_OK) {
        /* One transaction: a dump that does not restore whole leaves
         * nothing half-restored to check. Owners, grants and policies are
         * restored as dumped (the roles are the cluster's). */
        char *argv[] = {tool,
                        "--exit-on-error",
                        "--single-transaction",
                        "--no-password",
                        dbname_arg,
                        (char *)dump,
                        NULL};
        snprintf(dbname_arg, strlen(ci) + 16, "--dbname=%s", ci);
        rc = gh_pg__tool_run(argv, pw, err);
    }
    if (pw != NULL) {
        explicit_bzero(pw, strlen(pw));
        free(pw);
    }
    free(ci);
    free(dbname_arg);
    return rc;
}

const char *gh_store_postgres_drill_url(const struct gh_store_postgres_drill *d)
{
    return d->url;
}

const char *gh_store_postgres_drill_name(const struct gh_store_postgres_drill *d)
{
    return d->name;
}

bool gh_store_postgres_drill_created(const struct gh_store_postgres_drill *d)
{
    return d->created;
}

int gh_store_postgres_drill_drop(struct gh_store_postgres_drill *d, struct gh_err *err)
{
    int rc = GH_OK;

    if (d == NULL) return GH_OK;
    if (d->created) {
        /* The admin session may have been cut during the checks: one new
         * one before giving up. */
        if (d->admin == NULL || PQstatus(d->admin) != CONNECTION_OK) {
            if (d->admin != NULL) PQfinish(d->admin);
            d->admin = NULL;
            rc = gh_pg__connect(d->admin_url, GH_PG_APP, &d->admin, err);
        }
        if (rc == GH_OK) rc = drop(d->admin, d->name, d->server_version, err);
    }
    if (d->admin != NULL) PQfinish(d->admin);
    if (d->url != NULL) explicit_bzero(d->url, strlen(d->url));
    free(d->url);
    free(d->admin_url);
    free(d);
    return rc;
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

int gh_pg__table_counts_tx(struct gh_pg_tx *tx, gh_store_count_cb cb, void *arg, struct gh_err *err)
{
    struct count_walk w = {cb, arg};

    return gh_pg__stream(tx, GH_PG_TABLES, NULL, count_row, &w, err);
}

int gh_pg__table_counts(struct gh_store *st, gh_store_count_cb cb, void *arg, struct gh_err *err)
{
    struct gh_pg_tx tx;
    int rc = gh_pg__begin(gh_pg__of(st), GH_PG_OPERATOR, NULL, true, &tx, err);

    if (rc != GH_OK) return rc;
    rc = gh_pg__table_counts_tx(&tx, cb, arg, err);
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
