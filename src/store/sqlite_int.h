/* Private to the SQLite store (src/store/sqlite_*.c, store_sqlite.c): the
 * connections, the statement catalogue, and the helpers that lock, begin,
 * commit and report errors. Nothing outside src/store includes this.
 *
 * One writer connection behind a mutex takes every write, in BEGIN
 * IMMEDIATE transactions; a pool of reader connections (each with its own
 * mutex) serves reads, which WAL lets run beside a write. Each connection
 * prepares a statement the first time it needs it and keeps it until close;
 * every use ends with gh_sqlite__done() (reset and clear bindings). */
#ifndef GH_STORE_SQLITE_INT_H
#define GH_STORE_SQLITE_INT_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <sys/types.h>

#include "store/store.h"

/* Audit rows per GH_SQ_AUDIT_INSERT_GROUP statement (sqlite_audit.c). */
#define GH_SQ_AUDIT_GROUP 64

/* Every statement the store runs; the SQL text of each is in store_sqlite.c. */
enum gh_sqlite_stmt {
    GH_SQ_BEGIN,
    GH_SQ_BEGIN_IMMEDIATE,
    GH_SQ_COMMIT,
    GH_SQ_ROLLBACK,
    GH_SQ_VERSION_GET,
    GH_SQ_VERSION_BUMP,
    GH_SQ_MIGRATION_MAX,
    GH_SQ_MIGRATION_RECORD,
    GH_SQ_TENANT_INSERT,
    GH_SQ_TENANT_GET,
    GH_SQ_TENANT_GET_BY_NAME,
    GH_SQ_TENANT_NAME_TAKEN,
    GH_SQ_TENANT_LIST,
    GH_SQ_TENANT_UPDATE,
    GH_SQ_KEY_INSERT,
    GH_SQ_KEY_EXISTS,
    GH_SQ_KEY_GET,
    GH_SQ_KEY_LIST,
    GH_SQ_KEY_STATUS_GET,
    GH_SQ_KEY_SET_STATUS,
    GH_SQ_KEY_SET_EXPIRY,
    GH_SQ_KEY_EXPIRE_ROTATED,
    GH_SQ_KEY_TOUCH,
    GH_SQ_KEY_DIRECTORY,
    GH_SQ_TOKEN_REVOKE,
    GH_SQ_TOKEN_LOAD,
    GH_SQ_TOKEN_PURGE,
    GH_SQ_SIGNING_INSERT,
    GH_SQ_SIGNING_LOAD,
    GH_SQ_TENANT_LIMITS_GET,
    GH_SQ_TENANT_LIMITS_SET,
    GH_SQ_TENANT_LIMITS_LOAD,
    GH_SQ_USAGE_ADD,
    GH_SQ_USAGE_GET,
    GH_SQ_USAGE_LOAD,
    GH_SQ_EVENT_INSERT,
    GH_SQ_USAGE_PURGE,
    GH_SQ_EVENT_PURGE,
    GH_SQ_EVENT_LIST,
    GH_SQ_EVENT_LIST_TENANT,
    GH_SQ_SYNC_FULL,
    GH_SQ_SYNC_NORMAL,
    GH_SQ_MMAP_ON,
    GH_SQ_MMAP_OFF,
    GH_SQ_AUDIT_INSERT,
    GH_SQ_AUDIT_INSERT_GROUP, /* GH_SQ_AUDIT_GROUP rows in one statement */
    GH_SQ_AUDIT_PREV_EXISTS,
    GH_SQ_AUDIT_HASH_AT,
    GH_SQ_AUDIT_CP_INSERT,
    GH_SQ_AUDIT_CP_HASH_AT,
    GH_SQ_AUDIT_HEADS,
    GH_SQ_AUDIT_WALK,
    GH_SQ_AUDIT_WALK_CHAIN,
    GH_SQ_AUDIT_SEQ_SPAN,
    GH_SQ_AUDIT_SEQ_SPAN_SYSTEM,
    GH_SQ_AUDIT_SCAN,
    GH_SQ_AUDIT_CP_WALK,
    GH_SQ_AUDIT_CP_WALK_CHAIN,
    GH_SQ_AUDIT_KEY_INSERT,
    GH_SQ_AUDIT_KEYS_LIST,
    GH_SQ_AUDIT_HOT_FIRST,
    GH_SQ_AUDIT_ARCHIVE_LAST,
    GH_SQ_AUDIT_ARCHIVE_DELETE,
    GH_SQ_AUDIT_ARCHIVE_INSERT,
    GH_SQ_AUDIT_ARCHIVES,
    GH_SQ_AUDIT_ARCHIVES_CHAIN,
    GH_SQ_SECRET_PUT,
    GH_SQ_SECRET_GET,
    GH_SQ_SECRET_DELETE,
    GH_SQ_SECRET_WALK,
    GH_SQ_SECRET_WALK_TENANT,
    GH_SQ_SECRET_VERSIONS,
    GH_SQ_SECRET_STALE,
    GH_SQ_SECRET_REWRAP,
    GH_SQ_SECRET_ROT_GET,
    GH_SQ_SECRET_ROT_START,
    GH_SQ_SECRET_ROT_COUNT,
    GH_SQ_SECRET_ROT_FINISH,
    GH_SQ_SECRET_KEK_CHECK_PUT,
    GH_SQ_SECRET_KEK_STATE,
    GH_SQ_SECRET_KEK_ACTIVATE,
    GH_SQ_SECRET_KEK_UNPREPARE,
    GH_SQ_SECRET_KEK_CHECK_GET,
    GH_SQ_AUDIT_KEY_SET_PRIVATE,
    GH_SQ_SIGNING_SET_PRIVATE,
    GH_SQ_HOOK_EP_INSERT,
    GH_SQ_HOOK_EP_GET,
    GH_SQ_HOOK_EP_LIST,
    GH_SQ_HOOK_EP_UPDATE,
    GH_SQ_HOOK_REPORTS_CLAIM,
    GH_SQ_HOOK_REPORTS_DONE,
    GH_SQ_HOOK_EP_STATUS,
    GH_SQ_HOOK_DLV_PAUSE,
    GH_SQ_HOOK_DLV_RESUME,
    GH_SQ_HOOK_DLV_RESUME_STRAY,
    GH_SQ_HOOK_EP_DELETE,
    GH_SQ_HOOK_EP_DEL_ATTEMPTS,
    GH_SQ_HOOK_EP_DEL_DELIVERIES,
    GH_SQ_HOOK_EP_SUBSCRIBED,
    GH_SQ_HOOK_EP_OK,
    GH_SQ_HOOK_EP_FAILING,
    GH_SQ_HOOK_EP_DISABLE,
    GH_SQ_HOOK_EP_GONE,
    GH_SQ_HOOK_DLV_FAIL_EP,
    GH_SQ_HOOK_MSG_FIND,
    GH_SQ_HOOK_MSG_COUNT,
    GH_SQ_HOOK_MSG_SET_COUNT,
    GH_SQ_HOOK_MSG_INSERT,
    GH_SQ_HOOK_DLV_INSERT,
    GH_SQ_HOOK_DUE,
    GH_SQ_HOOK_CLAIM,
    GH_SQ_HOOK_ATTEMPT_INSERT,
    GH_SQ_HOOK_DLV_SET,
    GH_SQ_HOOK_DLV_LIST,
    GH_SQ_HOOK_DLV_LIST_STATUS,
    GH_SQ_HOOK_DLV_GET,
    GH_SQ_HOOK_ATTEMPTS,
    GH_SQ_HOOK_DLV_STATUS,
    GH_SQ_HOOK_REPLAY,
    GH_SQ_HOOK_PENDING,
    GH_SQ_HOOK_PURGE_SCAN,
    GH_SQ_HOOK_PURGE_KEEP,
    GH_SQ_HOOK_PURGE_ATTEMPTS,
    GH_SQ_HOOK_PURGE_DELIVERIES,
    GH_SQ_HOOK_PURGE_MESSAGE,
    GH_SQ__COUNT
};

/* The columns of an audit row and of a checkpoint, in the order
 * sqlite_audit.c reads them. */
#define GH_SQ_AUDIT_COLS                                                                           \
    "rowid, chain, seq, id, time_us, tenant_id, actor, action, resource, outcome, request_id, "    \
    "hash, body, node"
#define GH_SQ_AUDIT_CP_COLS "chain, seq, hash, time_ms, key_id, signature"
#define GH_SQ_SECRET_COLS                                                                          \
    "tenant_id, name, ciphertext, nonce, wrapped_dek, kek_version, created_at, updated_at"
#define GH_SQ_AUDIT_ARCHIVE_COLS                                                                   \
    "chain, first_seq, last_seq, prev_hash, last_hash, events, file, file_sha256, created_at"

/* An audit query's statement depends on which filters are set (each adds
 * its own "column = ?N" so that an index serves it, and a tenant's query
 * always names its tenant): one bit per filter and one for the order (a
 * time range also changes the keyset: sqlite_audit.c). */
#define GH_SQ_AUDIT_QUERY_VARIANTS 2048 /* GH_AQ_SHAPES in store_int.h */

struct gh_sqlite_conn {
    pthread_mutex_t lock;
    sqlite3 *db;
    sqlite3_stmt *stmt[GH_SQ__COUNT];                      /* prepared on first use */
    sqlite3_stmt *audit_query[GH_SQ_AUDIT_QUERY_VARIANTS]; /* prepared on first use */
};

/* Checkpoints: the writer's commits do not copy the WAL into the database
 * file; a thread with its own connection does (sqlite_checkpoint.c), and
 * the writer copies what is left every RESTART_PAGES pages, so that the WAL
 * can start over (or after each commit when there is no thread). */
struct gh_sqlite_checkpointer {
    sqlite3 *db; /* the thread's own connection; NULL: none, the writer does it */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    bool wanted;            /* under mu: a commit asked for a checkpoint */
    bool stop;              /* under mu */
    atomic_bool running;    /* the thread runs: commits wake it rather than checkpoint */
    bool initialised;       /* mu and wake exist */
    atomic_int wal_frames;  /* the WAL's frames after the last commit */
    atomic_int done_frames; /* frames the last checkpoint had copied */
    int inline_at;          /* the writer's: WAL frames at which it copies the rest */
    atomic_uint_fast64_t background_runs, inline_runs, failed_runs;
    /* The store's sync_failed: after a failed sync of the log nothing is
     * copied into the database (it may hold pages the kernel dropped). */
    const atomic_bool *halt;
};

struct gh_sqlite_store {
    struct gh_store base; /* first: the handle callers hold */
    struct gh_sqlite_conn writer;
    struct gh_sqlite_checkpointer ckpt;
    struct gh_sqlite_conn *readers;
    unsigned nreaders;
    atomic_uint next_reader; /* where a caller that finds no free reader waits */
    bool durable;            /* the writer's transaction commits with synchronous=FULL */
    /* gh_sqlite__audit_sync: the write-ahead log's own descriptor, opened
     * with the store, used under <sync_lock>, which is not the writer's:
     * the fsync runs while the writer commits the next batch. */
    pthread_mutex_t sync_lock;
    char *wal_path;
    int wal_fd;
    dev_t wal_dev; /* the file it was opened on */
    ino_t wal_ino;
    /* A sync of the log failed: the store takes no write any more. */
    atomic_bool sync_failed;
};

static inline struct gh_sqlite_store *gh_sqlite__of(struct gh_store *st)
{
    return (struct gh_sqlite_store *)st;
}

/* Starts the checkpoint thread of <s> (its writer open, in WAL mode) on
 * the database at <path>. GH_ERROR only when the writer cannot be set up;
 * without a thread (no connection or thread to be had) the writer
 * checkpoints inline, as SQLite would. */
int gh_sqlite__checkpointer_start(struct gh_sqlite_store *s, const char *path, struct gh_err *err);

/* Stops the thread and closes its connection; before the writer closes. */
void gh_sqlite__checkpointer_stop(struct gh_sqlite_store *s);

void gh_sqlite__checkpoint_stats(struct gh_sqlite_store *s, struct gh_store_wal_stats *out);

/* The statement <id> of <c>, prepared on first use; NULL (and <err> filled)
 * when it cannot be prepared. <c> must be locked. */
sqlite3_stmt *gh_sqlite__stmt(struct gh_sqlite_conn *c, enum gh_sqlite_stmt id, struct gh_err *err);

/* Resets <s> and clears its bindings, so no bound value (a hash) lingers. */
void gh_sqlite__done(sqlite3_stmt *s);

/* Fills <err> with "store: <what>: <SQLite's message>" and returns GH_ERROR.
 * SQLite's messages name tables and columns, never bound values. */
int gh_sqlite__fail(struct gh_sqlite_conn *c, const char *what, struct gh_err *err);

/* Steps <s> (prepared on <c>) to completion, then gh_sqlite__done(). GH_OK on
 * SQLITE_DONE, else gh_sqlite__fail(). */
int gh_sqlite__exec(struct gh_sqlite_conn *c, sqlite3_stmt *s, const char *what,
                    struct gh_err *err);

/* Steps <s> for a row: GH_OK on SQLITE_ROW (the caller reads the row, then
 * calls gh_sqlite__done()); GH_STORE_NOT_FOUND on SQLITE_DONE and GH_ERROR
 * otherwise, both after gh_sqlite__done() (<err> is filled only on GH_ERROR). */
int gh_sqlite__row(struct gh_sqlite_conn *c, sqlite3_stmt *s, const char *what, struct gh_err *err);

/* Turns <rc> == GH_ERROR from a write on <c> into GH_STORE_CONFLICT when the
 * write broke a unique or primary key constraint (a race that the checks
 * before it could not see, e.g. another process); <err> keeps SQLite's
 * message, which names the constraint. Other codes pass through. */
int gh_sqlite__conflict(struct gh_sqlite_conn *c, int rc);

/* Runs the argument-less statement <id> on <c>. */
int gh_sqlite__run(struct gh_sqlite_conn *c, enum gh_sqlite_stmt id, const char *what,
                   struct gh_err *err);

/* Locks the writer and opens a BEGIN IMMEDIATE transaction; on failure the
 * writer is unlocked again. On GH_OK the caller must call
 * gh_sqlite__write_end(). */
int gh_sqlite__write_begin(struct gh_sqlite_store *s, struct gh_err *err);

/* As gh_sqlite__write_begin(), for a transaction that must be on disk when
 * its commit returns (the audit log): the writer runs with synchronous=FULL
 * until gh_sqlite__write_end() puts NORMAL back. */
int gh_sqlite__write_begin_durable(struct gh_sqlite_store *s, struct gh_err *err);

/* Syncs the write-ahead log: every transaction committed before the call
 * is then durable, whatever synchronous was (store.h, audit_sync). */
int gh_sqlite__audit_sync(struct gh_store *st, struct gh_err *err);

/* Commits when <rc> is GH_OK, else rolls back (keeping <err> as the first
 * failure filled it); unlocks the writer. Returns <rc>, or GH_ERROR when the
 * commit fails. */
int gh_sqlite__write_end(struct gh_sqlite_store *s, int rc, struct gh_err *err);

/* Increments the change counter, inside the writer's transaction. */
int gh_sqlite__bump(struct gh_sqlite_conn *c, struct gh_err *err);

/* Reads the change counter on <c> (locked). */
int gh_sqlite__version(struct gh_sqlite_conn *c, uint64_t *version, struct gh_err *err);

/* Opens a read transaction on reader <c>, so several statements see one
 * snapshot; gh_sqlite__read_end() closes it (whatever happened). */
int gh_sqlite__read_begin(struct gh_sqlite_conn *c, struct gh_err *err);
void gh_sqlite__read_end(struct gh_sqlite_conn *c);

/* Takes a reader: a free one if any, else waits for one. Never NULL. */
struct gh_sqlite_conn *gh_sqlite__read_acquire(struct gh_sqlite_store *s);
void gh_sqlite__read_release(struct gh_sqlite_conn *c);

/* Copies text column <col> of <s> into <dst> of <size> bytes; GH_ERROR when
 * it is NULL or does not fit (a row that validation would have refused). */
int gh_sqlite__col_text(sqlite3_stmt *s, int col, char *dst, size_t size, struct gh_err *err);

/* Binds a NUL-terminated string (copied by SQLite). */
int gh_sqlite__bind_text(sqlite3_stmt *s, int idx, const char *text);

/* Fills a tenant from the 6 columns starting at <col> (id, name, status,
 * plan, created_at, updated_at). */
int gh_sqlite__tenant_row(sqlite3_stmt *s, int col, struct gh_store_tenant *t, struct gh_err *err);

/* The ops, one file per entity. */
int gh_sqlite__migrate(struct gh_store *st, int *applied, int *version, struct gh_err *err);
int gh_sqlite__tenant_create(struct gh_store *st, const struct gh_store_tenant *t,
                             struct gh_err *err);
int gh_sqlite__tenant_get(struct gh_store *st, const char *id, struct gh_store_tenant *out,
                          struct gh_err *err);
int gh_sqlite__tenant_get_by_name(struct gh_store *st, const char *name,
                                  struct gh_store_tenant *out, struct gh_err *err);
int gh_sqlite__tenant_list(struct gh_store *st, enum gh_store_tenant_status status,
                           const struct gh_store_keyset *after, size_t limit,
                           struct gh_store_tenant *out, size_t *count, bool *more,
                           struct gh_err *err);
int gh_sqlite__tenant_update(struct gh_store *st, const char *id,
                             const struct gh_store_tenant_update *upd, int64_t now,
                             struct gh_store_tenant *out, bool *status_moved, struct gh_err *err);
int gh_sqlite__key_insert(struct gh_store *st, const struct gh_store_key *k, int64_t old_until,
                          int64_t *old_expires_at, struct gh_err *err);
int gh_sqlite__key_get(struct gh_store *st, const char *tenant_id, const char *key_id,
                       struct gh_store_key *out, struct gh_err *err);
int gh_sqlite__key_list(struct gh_store *st, const char *tenant_id,
                        const struct gh_store_keyset *after, size_t limit, struct gh_store_key *out,
                        size_t *count, bool *more, struct gh_err *err);
int gh_sqlite__key_set_status(struct gh_store *st, const char *tenant_id, const char *key_id,
                              enum gh_store_key_status status, bool *moved, struct gh_err *err);
int gh_sqlite__key_set_expiry(struct gh_store *st, const char *tenant_id, const char *key_id,
                              int64_t expires_at, struct gh_err *err);
int gh_sqlite__keys_touch_batch(struct gh_store *st, const struct gh_store_key_touch *touches,
                                size_t n, struct gh_err *err);
int gh_sqlite__key_directory_load(struct gh_store *st, gh_store_key_cb cb, void *arg,
                                  uint64_t *version, struct gh_err *err);
int gh_sqlite__token_revoke(struct gh_store *st, const char *jti, int64_t expires_at, int64_t now,
                            struct gh_err *err);
int gh_sqlite__revoked_tokens_load(struct gh_store *st, int64_t now, gh_store_revoked_cb cb,
                                   void *arg, uint64_t *version, struct gh_err *err);
int gh_sqlite__signing_key_insert(struct gh_store *st, const struct gh_store_signing_key *k,
                                  int64_t now, struct gh_err *err);
int gh_sqlite__signing_keys_load(struct gh_store *st, int64_t now, gh_store_signing_cb cb,
                                 void *arg, struct gh_err *err);
int gh_sqlite__revoked_tokens_purge(struct gh_store *st, int64_t now, size_t *purged,
                                    struct gh_err *err);
int gh_sqlite__tenant_limits_set(struct gh_store *st, const char *id, const char *plan,
                                 const char *overrides_json, int64_t now, struct gh_err *err);
int gh_sqlite__tenant_limits_get(struct gh_store *st, const char *id, char *plan, char *json,
                                 size_t cap, struct gh_err *err);
int gh_sqlite__tenant_limits_load(struct gh_store *st, gh_store_tenant_limits_cb cb, void *arg,
                                  struct gh_err *err);
int gh_sqlite__usage_add(struct gh_store *st, const char *batch_id, struct gh_store_usage *rows,
                         size_t n, int64_t now, struct gh_err *err);
int gh_sqlite__usage_get(struct gh_store *st, const char *tenant_id, const char *period,
                         struct gh_store_usage *out, struct gh_err *err);
int gh_sqlite__usage_load(struct gh_store *st, const char *period, gh_store_usage_cb cb, void *arg,
                          struct gh_err *err);
int gh_sqlite__limit_event_record(struct gh_store *st, struct gh_store_limit_event *ev,
                                  bool *inserted, struct gh_err *err);
int gh_sqlite__limit_events_list(struct gh_store *st, const char *tenant_id, int64_t before_id,
                                 size_t limit, struct gh_store_limit_event *out, size_t *count,
                                 bool *more, struct gh_err *err);
int gh_sqlite__audit_append(struct gh_store *st, struct gh_store_audit_row *rows, size_t n,
                            const struct gh_store_audit_checkpoint *cps, size_t *ncp,
                            const struct gh_store_audit_rechain *rechain, bool *unsynced,
                            struct gh_err *err);
int gh_sqlite__audit_heads(struct gh_store *st, gh_store_audit_row_cb cb, void *arg,
                           struct gh_err *err);
int gh_sqlite__audit_query(struct gh_store *st, const struct gh_store_audit_filter *f,
                           const struct gh_store_audit_pos *after, size_t limit,
                           struct gh_store_audit_row *out, size_t *count, bool *more,
                           struct gh_err *err);
int gh_sqlite__audit_seq_span(struct gh_store *st, const char *chain, int64_t from_us,
                              int64_t to_us, uint64_t *first, uint64_t *last, struct gh_err *err);
int gh_sqlite__audit_walk(struct gh_store *st, const char *chain, uint64_t from_seq,
                          uint64_t to_seq, gh_store_audit_row_cb cb, void *arg, struct gh_err *err);
int gh_sqlite__audit_scan(struct gh_store *st, int64_t after_rowid, int64_t to_rowid,
                          gh_store_audit_row_cb cb, void *arg, struct gh_err *err);
int gh_sqlite__audit_checkpoints_walk(struct gh_store *st, const char *chain, uint64_t from_seq,
                                      uint64_t to_seq, gh_store_audit_cp_cb cb, void *arg,
                                      struct gh_err *err);
int gh_sqlite__audit_key_insert(struct gh_store *st, const struct gh_store_audit_key *k,
                                struct gh_err *err);
int gh_sqlite__audit_archive_commit(struct gh_store *st, const struct gh_store_audit_archive *a,
                                    struct gh_err *err);
int gh_sqlite__audit_archives_walk(struct gh_store *st, const char *chain,
                                   gh_store_audit_archive_cb cb, void *arg, struct gh_err *err);
int gh_sqlite__audit_keys_list(struct gh_store *st, struct gh_store_audit_key *out, size_t max,
                               size_t *count, struct gh_err *err);
int gh_sqlite__backup(struct gh_store *st, const char *path, struct gh_err *err);
int gh_sqlite__table_counts(struct gh_store *st, gh_store_count_cb cb, void *arg,
                            struct gh_err *err);
int gh_sqlite__integrity_check(struct gh_store *st, char *problem, size_t size, struct gh_err *err);
int gh_sqlite__secret_put(struct gh_store *st, const struct gh_store_secret *sec, int64_t now,
                          struct gh_err *err);
int gh_sqlite__secret_get(struct gh_store *st, const char *tenant_id, const char *name,
                          struct gh_store_secret *out, struct gh_err *err);
int gh_sqlite__secret_delete(struct gh_store *st, const char *tenant_id, const char *name,
                             struct gh_err *err);
int gh_sqlite__secrets_walk(struct gh_store *st, const char *tenant_id, gh_store_secret_cb cb,
                            void *arg, struct gh_err *err);
int gh_sqlite__secrets_versions(struct gh_store *st, gh_store_secret_version_cb cb, void *arg,
                                struct gh_err *err);
int gh_sqlite__secrets_stale(struct gh_store *st, uint32_t version, size_t limit,
                             struct gh_store_secret *out, size_t *count, struct gh_err *err);
int gh_sqlite__secrets_rewrap(struct gh_store *st, const struct gh_store_secret_rewrap *rw,
                              size_t n, size_t *applied, struct gh_err *err);
int gh_sqlite__secrets_rotation_begin(struct gh_store *st,
                                      const struct gh_store_secrets_rotation *want,
                                      struct gh_store_secrets_rotation *out, bool *started,
                                      struct gh_err *err);
int gh_sqlite__secrets_rotation_get(struct gh_store *st, struct gh_store_secrets_rotation *out,
                                    struct gh_err *err);
int gh_sqlite__private_key_set(struct gh_store *st, enum gh_store_private_kind kind, const char *id,
                               const char *text, struct gh_err *err);
int gh_sqlite__secrets_rotation_finish(struct gh_store *st, uint32_t to_version, int64_t now,
                                       struct gh_err *err);
int gh_sqlite__secrets_kek_check(struct gh_store *st, uint32_t version, const uint8_t *check,
                                 size_t len, bool prepared, int64_t now, uint8_t *stored,
                                 size_t *stored_len, uint32_t *newest, struct gh_err *err);
int gh_sqlite__secrets_kek_state(struct gh_store *st, uint32_t *in_use, uint32_t *newest,
                                 struct gh_err *err);
int gh_sqlite__secrets_kek_activate(struct gh_store *st, uint32_t version, struct gh_err *err);
int gh_sqlite__secrets_kek_unprepare(struct gh_store *st, uint32_t version, struct gh_err *err);

int gh_sqlite__hook_endpoint_insert(struct gh_store *st, const struct gh_store_hook_endpoint *e,
                                    struct gh_err *err);
int gh_sqlite__hook_endpoint_get(struct gh_store *st, const char *tenant_id, const char *id,
                                 struct gh_store_hook_endpoint *out, struct gh_err *err);
int gh_sqlite__hook_endpoint_list(struct gh_store *st, const char *tenant_id,
                                  const struct gh_store_keyset *after, size_t limit,
                                  struct gh_store_hook_endpoint *out, size_t *count, bool *more,
                                  struct gh_err *err);
int gh_sqlite__hook_endpoint_update(struct gh_store *st, struct gh_store_hook_endpoint *e,
                                    struct gh_err *err);
int gh_sqlite__hook_endpoint_delete(struct gh_store *st, const char *tenant_id, const char *id,
                                    struct gh_store_hook_endpoint *gone, struct gh_err *err);
int gh_sqlite__hook_publish(struct gh_store *st, const char *tenant_id, const char *msg_id,
                            const char *type, const char *payload, size_t payload_len, int64_t now,
                            int64_t due, size_t *deliveries, bool *duplicate, struct gh_err *err);
int gh_sqlite__hook_claim(struct gh_store *st, const char *owner, int64_t now, size_t limit,
                          gh_store_hook_due_cb cb, void *arg, struct gh_err *err);
int gh_sqlite__hook_record(struct gh_store *st, const char *owner,
                           const struct gh_store_hook_outcome *o, size_t n, int64_t now,
                           int64_t disable_after_ms, gh_store_hook_disabled_cb cb, void *arg,
                           struct gh_err *err);
int gh_sqlite__hook_delivery_list(struct gh_store *st, const char *tenant_id,
                                  const char *endpoint_id, enum gh_store_delivery_status status,
                                  int64_t after_id, size_t limit,
                                  struct gh_store_hook_delivery *out, size_t *count, bool *more,
                                  struct gh_err *err);
int gh_sqlite__hook_delivery_get(struct gh_store *st, const char *tenant_id,
                                 const char *endpoint_id, int64_t id,
                                 struct gh_store_hook_delivery *out,
                                 struct gh_store_hook_attempt *attempts, size_t max,
                                 size_t *nattempts, struct gh_err *err);
int gh_sqlite__hook_delivery_replay(struct gh_store *st, const char *tenant_id,
                                    const char *endpoint_id, int64_t id, int64_t now,
                                    struct gh_err *err);
int gh_sqlite__hook_pending_count(struct gh_store *st, uint64_t *count, struct gh_err *err);
int gh_sqlite__hook_resume_stray(struct gh_store *st, size_t limit, uint64_t *resumed,
                                 struct gh_err *err);
int gh_sqlite__hook_reports_claim(struct gh_store *st, int64_t now, gh_store_hook_disabled_cb cb,
                                  void *arg, struct gh_err *err);
int gh_sqlite__hook_reports_done(struct gh_store *st, const struct gh_store_hook_report *r,
                                 size_t n, struct gh_err *err);
int gh_sqlite__usage_purge(struct gh_store *st, const char *day, const char *month, size_t limit,
                           struct gh_store_usage_purged *out, struct gh_err *err);
int gh_sqlite__hook_purge(struct gh_store *st, const char *owner, int64_t after_seq, int64_t cutoff,
                          int64_t now, size_t limit, struct gh_store_hook_purged *out,
                          struct gh_err *err);

#endif
