/* The SQLite store's WAL checkpoints, off the writer's path (sqlite_int.h,
 * "Checkpoints").
 *
 * SQLite's default checkpoints run inside the COMMIT that crosses 1,000 WAL
 * pages: that commit copies the WAL into the database file and syncs it,
 * which takes tens of milliseconds on a busy store, and whoever waits on
 * that commit (a strict-audit request, an admin call) waits for all of it.
 * Here the writer's commit only notes the WAL's size (a WAL hook, which
 * also turns SQLite's own checkpoints off), and a thread with its own
 * connection runs PASSIVE checkpoints: they block neither the writer nor
 * the readers. Should that thread fall behind (it shares the cores with
 * the workers), and in any case every RESTART_PAGES frames, the writer
 * copies what is left itself, so the WAL stays bounded. */
#include <string.h>

#include "store/sqlite_int.h"

/* WAL frames (pages) after which the thread is woken: SQLite's default
 * autocheckpoint. */
#define WAKE_PAGES 1000
/* WAL frames after which the writer copies the rest itself, so that the WAL
 * can start over (see on_commit). */
#define RESTART_PAGES 8000
/* When the WAL is reset, its file is cut back to this size. */
#define WAL_SIZE_LIMIT "PRAGMA journal_size_limit = 67108864"

/* Frames in a WAL of <log> frames not yet copied, given that a checkpoint
 * last copied <done> of them (a WAL that was reset since starts over). */
static int uncopied(int log, int done)
{
    return log >= done ? log - done : log;
}

/* What a checkpoint did. <done> is a hint for the next wake-up only: the
 * thread may store it just after the writer saw the WAL start over. */
static void note_checkpoint(struct gh_sqlite_checkpointer *k, int rc, int log, int done,
                            atomic_uint_fast64_t *count)
{
    /* BUSY is another checkpoint running: not a failure. Anything else
     * (an I/O error, a full disk) is counted: the WAL then keeps growing. */
    if (rc != SQLITE_OK && rc != SQLITE_BUSY)
        atomic_fetch_add_explicit(&k->failed_runs, 1, memory_order_relaxed);
    if (rc != SQLITE_OK || log < 0 || done < 0) return;
    atomic_store_explicit(&k->done_frames, done, memory_order_relaxed);
    atomic_fetch_add_explicit(count, 1, memory_order_relaxed);
}

/* The writer's WAL hook: runs after each commit, with the writer locked
 * and no transaction open. */
static int on_commit(void *arg, sqlite3 *db, const char *name, int log)
{
    struct gh_sqlite_checkpointer *k = arg;
    int done = atomic_load_explicit(&k->done_frames, memory_order_relaxed);
    int behind;

    /* Fewer frames than after the last commit: the WAL was started over
     * (all of it had been copied), and what the last checkpoint copied is
     * gone. */
    if (log < atomic_load_explicit(&k->wal_frames, memory_order_relaxed)) {
        done = 0;
        atomic_store_explicit(&k->done_frames, 0, memory_order_relaxed);
        k->inline_at = RESTART_PAGES;
    }
    behind = uncopied(log, done);
    atomic_store_explicit(&k->wal_frames, log, memory_order_relaxed);
    if (atomic_load(k->halt)) return SQLITE_OK; /* a sync failed: nothing more is copied */
    if (log >= k->inline_at || (!atomic_load(&k->running) && behind >= WAKE_PAGES)) {
        /* A WAL is started over only by a write transaction that begins
         * with all of it copied, and the writer begins its next one before
         * the thread, woken by this commit, can be done: so the writer
         * copies here what the thread has not yet, now and then (the
         * frames since the thread's last pass), and the WAL stays bounded.
         * When readers hold old snapshots the WAL cannot start over; the
         * next try waits for it to grow by half as much again. */
        int nlog = -1, ncopied = -1;
        int rc = sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, &nlog, &ncopied);
        note_checkpoint(k, rc, nlog, ncopied, &k->inline_runs);
        /* BUSY: the thread is checkpointing right now; try again after the
         * next commit, not RESTART_PAGES / 2 later (the WAL would grow by
         * that much for nothing). */
        k->inline_at = rc == SQLITE_BUSY ? log + 1 : log + RESTART_PAGES / 2;
    } else if (behind >= WAKE_PAGES) {
        pthread_mutex_lock(&k->mu);
        k->wanted = true;
        pthread_cond_signal(&k->wake);
        pthread_mutex_unlock(&k->mu);
    }
    return SQLITE_OK; /* a checkpoint's failure is not the commit's */
}

static void *checkpointer_main(void *arg)
{
    struct gh_sqlite_checkpointer *k = arg;

    for (;;) {
        int nlog = -1, ncopied = -1, rc;

        pthread_mutex_lock(&k->mu);
        while (!k->wanted && !k->stop)
            pthread_cond_wait(&k->wake, &k->mu);
        if (k->stop) {
            pthread_mutex_unlock(&k->mu);
            return NULL;
        }
        k->wanted = false;
        pthread_mutex_unlock(&k->mu);
        if (atomic_load(k->halt)) continue; /* a sync failed: nothing more is copied */
        /* PASSIVE copies what no reader still needs, without waiting on
         * anyone; SQLITE_BUSY (an inline checkpoint at the same moment)
         * only means this one is not needed. */
        rc = sqlite3_wal_checkpoint_v2(k->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &nlog, &ncopied);
        note_checkpoint(k, rc, nlog, ncopied, &k->background_runs);
    }
}

int gh_sqlite__checkpointer_start(struct gh_sqlite_store *s, const char *path, struct gh_err *err)
{
    struct gh_sqlite_checkpointer *k = &s->ckpt;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
    char *msg = NULL;

    pthread_mutex_init(&k->mu, NULL);
    pthread_cond_init(&k->wake, NULL);
    k->initialised = true;
    k->halt = &s->sync_failed;
    if (sqlite3_exec(s->writer.db, WAL_SIZE_LIMIT, NULL, NULL, &msg) != SQLITE_OK) {
        gh_err_set(err, NULL, 0, 0, "store: journal_size_limit: %s", msg ? msg : "failed");
        sqlite3_free(msg);
        return GH_ERROR;
    }
    k->inline_at = RESTART_PAGES;
    /* From here on the writer's commits report to on_commit(); while the
     * thread is not running, on_commit() checkpoints inline. */
    sqlite3_wal_hook(s->writer.db, on_commit, k);
    if (sqlite3_open_v2(path, &k->db, flags, NULL) != SQLITE_OK) {
        /* Not fatal: the writer keeps checkpointing inline. */
        sqlite3_close(k->db);
        k->db = NULL;
        return GH_OK;
    }
    sqlite3_db_config(k->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
    /* A checkpoint syncs the WAL before it copies and the database file
     * after, unless synchronous is OFF: said here rather than left to how
     * the library was built. */
    if (sqlite3_exec(k->db, "PRAGMA synchronous = NORMAL", NULL, NULL, NULL) != SQLITE_OK) {
        sqlite3_close(k->db);
        k->db = NULL;
        return GH_OK;
    }
    /* A connection learns that the file is in WAL mode when it first reads
     * it; until then its checkpoints do nothing. */
    if (sqlite3_exec(k->db, "SELECT count(*) FROM sqlite_schema", NULL, NULL, NULL) != SQLITE_OK) {
        sqlite3_close(k->db);
        k->db = NULL;
        return GH_OK;
    }
    if (pthread_create(&k->thread, NULL, checkpointer_main, k) != 0) {
        sqlite3_close(k->db);
        k->db = NULL;
        return GH_OK;
    }
    pthread_setname_np(k->thread, "gh-sqlite-ckpt");
    atomic_store(&k->running, true);
    return GH_OK;
}

void gh_sqlite__checkpointer_stop(struct gh_sqlite_store *s)
{
    struct gh_sqlite_checkpointer *k = &s->ckpt;

    if (!k->initialised) return;
    if (atomic_load(&k->running)) {
        pthread_mutex_lock(&k->mu);
        k->stop = true;
        pthread_cond_signal(&k->wake);
        pthread_mutex_unlock(&k->mu);
        pthread_join(k->thread, NULL);
        atomic_store(&k->running, false);
    }
    /* Not the last connection: the writer, closed after it, checkpoints
     * what is left and removes the WAL. */
    sqlite3_close(k->db);
    k->db = NULL;
    pthread_mutex_destroy(&k->mu);
    pthread_cond_destroy(&k->wake);
    k->initialised = false;
}

void gh_sqlite__checkpoint_stats(struct gh_sqlite_store *s, struct gh_store_wal_stats *out)
{
    struct gh_sqlite_checkpointer *k = &s->ckpt;

    memset(out, 0, sizeof(*out));
    out->supported = true;
    out->wal_frames = (uint64_t)atomic_load_explicit(&k->wal_frames, memory_order_relaxed);
    out->background = atomic_load_explicit(&k->background_runs, memory_order_relaxed);
    out->inline_ = atomic_load_explicit(&k->inline_runs, memory_order_relaxed);
    out->failed = atomic_load_explicit(&k->failed_runs, memory_order_relaxed);
}
