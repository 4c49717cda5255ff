/* Backups of the SQLite store: an online copy through SQLite's backup API,
 * row counts per table and the engine's own integrity check (what
 * `gatehouse backup` and `gatehouse restore-drill` build on). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/sqlite_int.h"

/* The copy is taken from a reader connection in one step: the backup API
 * then reads every page inside one read transaction, so the copy is the
 * database as of one commit, while the writer goes on (WAL lets it). Doing
 * it in several steps would restart whenever a write lands in between. */
int gh_sqlite__backup(struct gh_store *st, const char *path, struct gh_err *err)
{
    struct gh_sqlite_conn *c = gh_sqlite__read_acquire(gh_sqlite__of(st));
    sqlite3 *dst = NULL;
    sqlite3_backup *b = NULL;
    int rc = GH_ERROR, fd, step;

    /* The file is created here, 0600 and exclusively: a backup holds every
     * key hash and audit event, and never overwrites anything. */
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        gh_err_set(err, NULL, 0, 0, "store: backup: %s: %s", path, strerror(errno));
        goto out;
    }
    close(fd);
    if (sqlite3_open_v2(path, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        gh_err_set(err, NULL, 0, 0, "store: backup: %s: %s", path,
                   dst ? sqlite3_errmsg(dst) : "out of memory");
        goto out;
    }
    b = sqlite3_backup_init(dst, "main", c->db, "main");
    if (b == NULL) {
        gh_err_set(err, NULL, 0, 0, "store: backup: %s", sqlite3_errmsg(dst));
        goto out;
    }
    /* The copy's snapshot first, then a sync of the log: the copy then
     * holds no commit the audit writer had left unsynced (store.h,
     * gh_store_audit_append_unsynced) and a crash could still take from
     * the store, whose audit chains would then go on differently. */
    if (gh_sqlite__read_begin(c, err) != GH_OK) goto out;
    /* BEGIN takes the snapshot at the first read. */
    if (sqlite3_exec(c->db, "SELECT count(*) FROM sqlite_schema", NULL, NULL, NULL) != SQLITE_OK) {
        gh_sqlite__fail(c, "backup", err);
        goto out;
    }
    if (gh_sqlite__audit_sync(st, err) != GH_OK) goto out;
    step = sqlite3_backup_step(b, -1);
    if (step != SQLITE_DONE) {
        gh_err_set(err, NULL, 0, 0, "store: backup: %s", sqlite3_errstr(step));
        goto out;
    }
    rc = GH_OK;
out:
    gh_sqlite__read_end(c); /* (nothing to end when BEGIN was not reached) */
    if (b != NULL && sqlite3_backup_finish(b) != SQLITE_OK && rc == GH_OK)
        rc = gh_err_set(err, NULL, 0, 0, "store: backup: %s", sqlite3_errmsg(dst));
    /* The copy is in WAL mode like its source: fold its WAL into the file
     * so that the backup is one self-contained file. */
    if (rc == GH_OK &&
        sqlite3_wal_checkpoint_v2(dst, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL) != SQLITE_OK)
        rc = gh_err_set(err, NULL, 0, 0, "store: backup: checkpoint: %s", sqlite3_errmsg(dst));
    if (rc == GH_OK &&
        sqlite3_exec(dst, "PRAGMA journal_mode = DELETE", NULL, NULL, NULL) != SQLITE_OK)
        rc = gh_err_set(err, NULL, 0, 0, "store: backup: %s", sqlite3_errmsg(dst));
    if (dst != NULL) sqlite3_close(dst);
    gh_sqlite__read_release(c);
    return rc;
}

/* Every table of the schema with its row count, from one read transaction.
 * The table list comes from the catalogue, so a table added by a later
 * migration is counted without a change here. */
int gh_sqlite__table_counts(struct gh_store *st, gh_store_count_cb cb, void *arg,
                            struct gh_err *err)
{
    struct gh_sqlite_conn *c = gh_sqlite__read_acquire(gh_sqlite__of(st));
    sqlite3_stmt *list = NULL, *count = NULL;
    int rc, step = SQLITE_DONE;

    rc = gh_sqlite__read_begin(c, err);
    if (rc != GH_OK) goto out;
    if (sqlite3_prepare_v2(c->db,
                           "SELECT name FROM sqlite_schema WHERE type = 'table' "
                           "AND name NOT LIKE 'sqlite_%' ORDER BY name",
                           -1, &list, NULL) != SQLITE_OK) {
        rc = gh_sqlite__fail(c, "table list", err);
        goto out;
    }
    while (rc == GH_OK && (step = sqlite3_step(list)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(list, 0);
        /* Names come from our own schema; quoting keeps any name safe. */
        char *q = sqlite3_mprintf("SELECT count(*) FROM \"%w\"", name);
        if (q == NULL) {
            rc = gh_err_set(err, NULL, 0, 0, "store: out of memory");
            break;
        }
        int prepared = sqlite3_prepare_v2(c->db, q, -1, &count, NULL);
        sqlite3_free(q);
        if (prepared != SQLITE_OK || sqlite3_step(count) != SQLITE_ROW) {
            rc = gh_sqlite__fail(c, "table count", err);
            break;
        }
        rc = cb(name, (uint64_t)sqlite3_column_int64(count, 0), arg);
        sqlite3_finalize(count);
        count = NULL;
    }
    if (rc == GH_OK && step != SQLITE_DONE) rc = gh_sqlite__fail(c, "table list", err);
out:
    sqlite3_finalize(count);
    sqlite3_finalize(list);
    gh_sqlite__read_end(c);
    gh_sqlite__read_release(c);
    return rc;
}

/* PRAGMA integrity_check: "ok", or the first problem SQLite finds (a
 * damaged page, an index that disagrees with its table). */
int gh_sqlite__integrity_check(struct gh_store *st, char *problem, size_t size, struct gh_err *err)
{
    struct gh_sqlite_conn *c = gh_sqlite__read_acquire(gh_sqlite__of(st));
    sqlite3_stmt *s = NULL;
    int rc = GH_OK;

    problem[0] = '\0';
    if (sqlite3_prepare_v2(c->db, "PRAGMA integrity_check(1)", -1, &s, NULL) != SQLITE_OK ||
        sqlite3_step(s) != SQLITE_ROW) {
        rc = gh_sqlite__fail(c, "integrity check", err);
    } else {
        const char *r = (const char *)sqlite3_column_text(s, 0);
        if (r == NULL || strcmp(r, "ok") != 0) snprintf(problem, size, "%s", r ? r : "no answer");
    }
    sqlite3_finalize(s);
    gh_sqlite__read_release(c);
    return rc;
}
