/* Private to the PostgreSQL store (src/store/pg_*.c, store_postgres.c): the
 * connection pool, the statement catalogue, transactions under the two roles,
 * parameters and result helpers. Nothing outside src/store includes this.
 *
 * A pool of connections (params.pool, default 8), each used by one thread
 * at a time: an op takes any free one, waiting at most the statement
 * timeout when all are busy (then UNAVAILABLE). Every op is
 * one transaction on one connection, opened by gh_pg__begin() with the role
 * its mark in store.h asks for (docs/postgres.md):
 *   [tenant]    SET LOCAL ROLE gatehouse_tenant + gatehouse.tenant_id = $1
 *               (row-level security keeps every other tenant's rows out)
 *   [operator]  SET LOCAL ROLE gatehouse_operator (BYPASSRLS)
 * The login role of the URL has no privileges of its own, so a statement run
 * outside such a transaction fails closed.
 *
 * A connection prepares a statement the first time it needs it and keeps it
 * until the connection is reset. A connection found broken is reset at the
 * start of the next op; an op that fails because the server went away
 * returns GH_STORE_UNAVAILABLE, and since each op is one transaction, nothing
 * of it was written (or, when the commit itself was cut, either all of it or
 * none: the caller is told UNAVAILABLE and may retry, so what is retried must
 * be idempotent: the audit append takes identical rows as stored, a usage
 * batch carries its id, an outcome is guarded by its owner's claim). So does
 * an op that lost a race or ran out of time (lock_timeout, statement_timeout,
 * a deadlock, a serialization failure): nothing was written, and a retry may
 * succeed. */
#ifndef GH_STORE_PG_INT_H
#define GH_STORE_PG_INT_H

#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>

#include "store/store.h"

/* Every statement the store runs; the SQL text of each is in store_postgres.c. */
enum gh_pg_stmt {
    GH_PG_SET_TENANT,
    GH_PG_VERSION_GET,
    GH_PG_VERSION_BUMP,
    GH_PG_MIGRATION_MAX,
    GH_PG_LOGIN_CHECK,
    GH_PG_TENANT_INSERT,
    GH_PG_TENANT_GET,
    GH_PG_TENANT_GET_BY_NAME,
    GH_PG_TENANT_LOCK,
    GH_PG_TENANT_LIST,
    GH_PG_TENANT_UPDATE,
    GH_PG_KEY_INSERT,
    GH_PG_KEY_OWNED,
    GH_PG_KEY_GET,
    GH_PG_KEY_STATUS_LOCK,
    GH_PG_KEY_LIST,
    GH_PG_KEY_SET_STATUS,
    GH_PG_KEY_SET_EXPIRY,
    GH_PG_KEY_EXPIRE_ROTATED,
    GH_PG_KEY_TOUCH,
    GH_PG_KEY_DIRECTORY,
    GH_PG_TOKEN_REVOKE,
    GH_PG_TOKEN_LOAD,
    GH_PG_TOKEN_PURGE,
    GH_PG_SIGNING_INSERT,
    GH_PG_SIGNING_LOAD,
    GH_PG_TENANT_LIMITS_GET,
    GH_PG_TENANT_LIMITS_LOCK,
    GH_PG_TENANT_LIMITS_SET,
    GH_PG_TENANT_LIMITS_LOAD,
    GH_PG_USAGE_ADD,
    GH_PG_USAGE_BATCH_INSERT,
    GH_PG_USAGE_BATCH_PURGE,
    GH_PG_USAGE_TOTALS,
    GH_PG_USAGE_GET,
    GH_PG_USAGE_LOAD,
    GH_PG_EVENT_INSERT,
    GH_PG_USAGE_PURGE,
    GH_PG_EVENT_PURGE,
    GH_PG_EVENT_LIST,
    GH_PG_EVENT_LIST_TENANT,
    GH_PG_AUDIT_LAST_ROWID,
    GH_PG_AUDIT_SEQ_CHECK,
    GH_PG_AUDIT_HEADS_OF,
    GH_PG_AUDIT_HEADS_FIRST,
    GH_PG_AUDIT_HASHES,
    GH_PG_AUDIT_HASH_AT,
    GH_PG_AUDIT_CHAIN_QUERY_START,
    GH_PG_SORT_OFF,
    GH_PG_CUSTOM_PLANS,
    GH_PG_AUDIT_CP_INSERT,
    GH_PG_AUDIT_CP_AT,
    GH_PG_AUDIT_HEADS,
    GH_PG_AUDIT_WALK,
    GH_PG_AUDIT_WALK_CHAIN,
    GH_PG_AUDIT_SEQ_SPAN,
    GH_PG_AUDIT_SEQ_SPAN_SYSTEM,
    GH_PG_AUDIT_SCAN,
    GH_PG_AUDIT_CP_WALK,
    GH_PG_AUDIT_CP_WALK_CHAIN,
    GH_PG_AUDIT_KEY_INSERT,
    GH_PG_AUDIT_KEYS_LIST,
    GH_PG_AUDIT_HOT_FIRST,
    GH_PG_AUDIT_ARCHIVE_LAST,
    GH_PG_AUDIT_ARCHIVE_DELETE,
    GH_PG_AUDIT_ARCHIVE_INSERT,
    GH_PG_AUDIT_ARCHIVES,
    GH_PG_AUDIT_ARCHIVES_CHAIN,
    GH_PG_TABLES,
    GH_PG_RLS_CHECK,
    GH_PG_EXPORT_SNAPSHOT,
    GH_PG_NO_IDLE_TIMEOUT,
    GH_PG_SECRET_PUT,
    GH_PG_SECRET_GET,
    GH_PG_SECRET_DELETE,
    GH_PG_SECRET_WALK,
    GH_PG_SECRET_WALK_TENANT,
    GH_PG_SECRET_VERSIONS,
    GH_PG_SECRET_STALE,
    GH_PG_SECRET_REWRAP,
    GH_PG_SECRET_ROT_LOCK,
    GH_PG_SECRET_ROT_GET,
    GH_PG_SECRET_ROT_START,
    GH_PG_SECRET_ROT_COUNT,
    GH_PG_SECRET_ROT_FINISH,
    GH_PG_SECRET_KEK_CHECK_PUT,
    GH_PG_SECRET_KEK_STATE,
    GH_PG_SECRET_KEK_ACTIVATE,
    GH_PG_SECRET_KEK_UNPREPARE,
    GH_PG_SECRET_KEK_CHECK_GET,
    GH_PG_AUDIT_KEY_SET_PRIVATE,
    GH_PG_SIGNING_SET_PRIVATE,
    GH_PG_HOOK_EP_INSERT,
    GH_PG_HOOK_EP_GET,
    GH_PG_HOOK_EP_LIST,
    GH_PG_HOOK_EP_UPDATE,
    GH_PG_HOOK_REPORTS_CLAIM,
    GH_PG_HOOK_REPORTS_DONE,
    GH_PG_HOOK_EP_STATUS_LOCK,
    GH_PG_HOOK_EP_STATUS,
    GH_PG_HOOK_DLV_PAUSE,
    GH_PG_HOOK_DLV_RESUME,
    GH_PG_HOOK_DLV_RESUME_STRAY,
    GH_PG_HOOK_EP_DELETE,
    GH_PG_HOOK_EP_LOCK_DELIVERIES,
    GH_PG_HOOK_EP_DEL_ATTEMPTS,
    GH_PG_HOOK_EP_DEL_DELIVERIES,
    GH_PG_HOOK_EP_SUBSCRIBED,
    GH_PG_HOOK_EP_OK,
    GH_PG_HOOK_EP_FAILING,
    GH_PG_HOOK_EP_DUE,
    GH_PG_HOOK_EP_DISABLE,
    GH_PG_HOOK_EP_GONE,
    GH_PG_HOOK_DLV_LOCK_EPS,
    GH_PG_HOOK_EP_LOCK_ROWS,
    GH_PG_HOOK_DLV_FAIL_EP,
    GH_PG_HOOK_MSG_INSERT,
    GH_PG_HOOK_MSG_COUNT,
    GH_PG_HOOK_MSG_SET_COUNT,
    GH_PG_HOOK_DLV_INSERT,
    GH_PG_HOOK_DUE,
    GH_PG_HOOK_CLAIM,
    GH_PG_HOOK_OWNER_LIVE,
    GH_PG_HOOK_ATTEMPT_INSERT,
    GH_PG_HOOK_DLV_SET,
    GH_PG_HOOK_DLV_LIST,
    GH_PG_HOOK_DLV_LIST_STATUS,
    GH_PG_HOOK_DLV_GET,
    GH_PG_HOOK_ATTEMPTS,
    GH_PG_HOOK_DLV_STATUS,
    GH_PG_HOOK_REPLAY,
    GH_PG_HOOK_PENDING,
    GH_PG_HOOK_PURGE_SCAN,
    GH_PG_HOOK_PURGE_LOCK,
    GH_PG_HOOK_PURGE_KEEP,
    GH_PG_HOOK_PURGE_ATTEMPTS,
    GH_PG_HOOK_PURGE_DELIVERIES,
    GH_PG_HOOK_PURGE_MESSAGES,
    GH_PG__COUNT
};

/* The columns of an audit row, in the order pg_audit.c reads them. */
#define GH_PG_AUDIT_COLS                                                                           \
    "rowid, chain, seq, id, time_us, tenant_id, actor, action, resource, outcome, request_id, "    \
    "hash, body, node"

/* The columns of a secret and of a webhook endpoint, in the order
 * pg_secrets.c and pg_webhooks.c read them. */
#define GH_PG_SECRET_COLS                                                                          \
    "tenant_id, name, ciphertext, nonce, wrapped_dek, kek_version, created_at, updated_at"
#define GH_PG_HOOK_EP_COLS                                                                         \
    "id, tenant_id, url, description, events, signing, public_key, secret_version, "               \
    "prev_version, prev_until, status, failing_since, disabled_reason, created_at, updated_at, "   \
    "rev"

/* How long a webhook delivery claimed by a live node is held from the
 * others (pg_webhooks.c, docs/postgres.md "Webhook claims"): longer than a
 * claim waits for a slot plus one attempt (webhooks.timeout, at most 120 s)
 * plus the outcome's batch. A dead node's claims go at once: see
 * GH_PG_HOOK_LOCK_NS. */
#define GH_PG_HOOK_LEASE_MS 300000
/* The first key of the claimers' advisory locks (pg_advisory_lock(ns,
 * hashtext(owner))): "ghk1". Its text is in the claim statement too. */
#define GH_PG_HOOK_LOCK_NS "1734896433"
/* The first key of the advisory locks that order changes of one endpoint's
 * status with the pausing of its deliveries and with replays
 * (pg_advisory_xact_lock(ns, hashtext(endpoint id))): "ghe1". */
#define GH_PG_HOOK_EP_LOCK_NS "1734895921"
/* Deliveries one statement pauses or resumes (about 0.15 s each). */
#define GH_PG_HOOK_PAUSE_STEP "10000"

/* Audit queries: one statement per combination of filters (pg_audit.c). */
#define GH_PG_AUDIT_QUERY_VARIANTS 2048 /* GH_AQ_SHAPES in store_int.h */

struct gh_pg_store;

struct gh_pg_conn {
    bool busy;                 /* under the pool's <pool_mu>: an op holds it */
    PGconn *db;                /* NULL until first use, and after a failed reconnect */
    unsigned gen;              /* the pool's <gen> when this session connected: behind it,
                                  the next op reconnects, though the socket may be up */
    struct gh_pg_store *owner; /* the pool it belongs to */
    bool prepared[GH_PG__COUNT];
    bool query_prepared[GH_PG_AUDIT_QUERY_VARIANTS];
};

struct gh_pg_store {
    struct gh_store base; /* first: the handle callers hold */
    char *url;            /* as configured: libpq parses it (several hosts, options) */
    char *options;        /* the pooled sessions' server settings (timeouts) */
    struct gh_pg_conn *conns;
    unsigned nconns;
    /* <pool_mu> guards each connection's <busy>; <pool_cv> is signalled
     * when one is given back. */
    pthread_mutex_t pool_mu;
    pthread_cond_t pool_cv;
    /* Moves on whenever a session finds that its server cannot serve us
     * (failure(): a failover, a server shutting down): every session
     * connected before is connected again at its next use, so the idle
     * ones do not each fail an op of their own on the old server first. */
    _Atomic unsigned gen;
    unsigned wait_ms; /* longest wait for a free connection */
    /* The webhook claimer's liveness (pg_webhooks.c): a session of its own
     * holding an advisory lock named after the owner of this process's
     * claims, for as long as the process lives. */
    pthread_mutex_t owner_mu;
    PGconn *owner_db;
    char owner[80];
    /* Audit appends by way (pg_audit.c): the two round trips' script, or
     * the long way (gh_store_postgres_audit_ways). */
    _Atomic uint64_t audit_scripted, audit_long_way;
};

static inline struct gh_pg_store *gh_pg__of(struct gh_store *st)
{
    return (struct gh_pg_store *)st;
}

/* The parameters of one statement: text values, or NULL for SQL NULL.
 * Numbers are formatted into <num>, so the struct owns them. */
#define GH_PG_MAX_ARGS 16
struct gh_pg_args {
    int n;
    const char *v[GH_PG_MAX_ARGS];
    int len[GH_PG_MAX_ARGS];
    int fmt[GH_PG_MAX_ARGS];
    char num[GH_PG_MAX_ARGS][24];
};

void gh_pg__arg(struct gh_pg_args *a, const char *text); /* NULL: SQL NULL */
void gh_pg__arg_i64(struct gh_pg_args *a, int64_t v);
/* <len> bytes of text that need not be NUL-terminated (sent in the binary
 * format, which for text is the bytes themselves). */
void gh_pg__arg_bytes(struct gh_pg_args *a, const char *p, size_t len);

/* The audit append lock, taken by gh_pg__begin_audit_locked(): one lock for
 * every audit append (and the archiver's move of a segment), held until the
 * commit: appends from every node are serialized, so a chain never forks
 * (the head is checked under the lock), and rowids are drawn in commit
 * order (what queries page by and the verifier's scan resumes from). */
#define GH_PG_AUDIT_LOCK_SQL "SELECT pg_advisory_xact_lock(hashtext('gatehouse.audit'))"

/* The columns of audit_checkpoints, in the order statements name them. */
#define GH_PG_AUDIT_CP_COLS "chain, seq, hash, time_ms, key_id, signature"

/* What a transaction runs as. */
enum gh_pg_role {
    GH_PG_OPERATOR, /* gatehouse_operator: every tenant's rows (BYPASSRLS) */
    GH_PG_TENANT,   /* gatehouse_tenant with gatehouse.tenant_id set: RLS */
};

/* One op's transaction on one pooled connection. */
struct gh_pg_tx {
    struct gh_pg_store *s;
    struct gh_pg_conn *c;
    bool snapshot;  /* REPEATABLE READ READ ONLY: several statements, one snapshot */
    bool unbounded; /* statement_timeout lifted for a walk (gh_pg__stream) */
    bool script;    /* opened by gh_pg__begin_audit_script: commits itself */
};

/* Takes a connection (reconnecting it when broken) and opens a transaction
 * as <role> (<tenant> is the tenant id for GH_PG_TENANT, else NULL);
 * <snapshot> asks for one snapshot over a read-only transaction. On GH_OK
 * the caller must call gh_pg__end(). GH_STORE_UNAVAILABLE when the server
 * cannot be reached (the connection is released). */
int gh_pg__begin(struct gh_pg_store *s, enum gh_pg_role role, const char *tenant, bool snapshot,
                 struct gh_pg_tx *tx, struct gh_err *err);

/* gh_pg__begin() as operator, then the audit append lock (GH_PG_AUDIT_LOCK_SQL),
 * in the same round trip. */
int gh_pg__begin_audit_locked(struct gh_pg_store *s, struct gh_pg_tx *tx, struct gh_err *err);

/* gh_pg__begin_audit_locked(), with the statements of script->tail sent in
 * the same message (the simple query protocol: nothing bound, so any value
 * in it is a literal the caller quoted), and script->meanwhile(arg) (may be
 * NULL) called once, while the server takes the lock: the caller prepares
 * its COPY input then. On GH_OK the caller reads the tail's results in
 * order with gh_pg__script_next(), feeds a COPY FROM STDIN in it with
 * gh_pg__script_copy(), and reads its COMMIT's answer with
 * gh_pg__script_commit(); the first failure skips the rest of the script
 * on the server. Then gh_pg__end() as for any transaction: it drops what
 * was not read and rolls back a transaction the script left open. This is
 * how an audit append fits in two round trips (pg_audit.c). */
struct gh_pg_script {
    const char *tail;
    /* Statements <tail> runs by name (EXECUTE s<id>, gh_pg__stmt_name):
     * prepared first on a session that has not got them yet (once per
     * session, as gh_pg__run does), so that the script's own statements
     * are not planned again on every append. */
    const enum gh_pg_stmt *uses;
    size_t nuses;
    void (*meanwhile)(void *arg);
    void *arg;
};
int gh_pg__begin_audit_script(struct gh_pg_store *s, const struct gh_pg_script *script,
                              struct gh_pg_tx *tx, struct gh_err *err);
/* The name statement <id> is prepared under on a session ("s<id>"), for a
 * script's EXECUTE; <out> holds 16 bytes. */
void gh_pg__stmt_name(enum gh_pg_stmt id, char out[16]);
/* The script's next result: GH_OK when its status is <want> (*res, may be
 * NULL: dropped; the caller PQclear()s it), else as gh_pg__run() fails. */
int gh_pg__script_next(struct gh_pg_tx *tx, ExecStatusType want, PGresult **res, const char *what,
                       struct gh_err *err);
/* After the script's COPY answered PGRES_COPY_IN: sends the <len> bytes of
 * <data> and ends the input, or, with <fail> not NULL, sends nothing and
 * fails the COPY with the message <fail> (the rest of the script is then
 * skipped and the transaction aborted). Its answer comes with
 * gh_pg__script_next(). */
int gh_pg__script_copy(struct gh_pg_tx *tx, const char *data, size_t len, const char *fail,
                       struct gh_err *err);
/* Reads the answer of the script's COMMIT: GH_OK only when it committed. */
int gh_pg__script_commit(struct gh_pg_tx *tx, struct gh_err *err);

/* Commits when <rc> is GH_OK, else rolls back (keeping <err>); releases the
 * connection. Returns <rc>, or the commit's failure (UNAVAILABLE when the
 * connection was lost during it). */
int gh_pg__end(struct gh_pg_tx *tx, int rc, struct gh_err *err);

/* Ends a lookup whose NOT_FOUND is an answer, not a failure: commits then,
 * and returns <rc> unless the end itself failed. */
int gh_pg__end_lookup(struct gh_pg_tx *tx, int rc, struct gh_err *err);

/* Runs statement <id> with <a> (may be NULL: no parameters) in <tx>; on
 * GH_OK sets *res (may be NULL: the result is dropped) and the caller
 * PQclear()s it. Errors: CONFLICT (unique_violation, with a message naming
 * the field), UNAVAILABLE (connection lost), GH_ERROR (anything else, with
 * the server's message, which names tables and columns, never values). */
int gh_pg__run(struct gh_pg_tx *tx, enum gh_pg_stmt id, const struct gh_pg_args *a, PGresult **res,
               struct gh_err *err);

/* As gh_pg__run() for SQL <sql> prepared under <name> with the <ntypes>
 * parameter <types> (NULL: the server infers them) when <*prepared> is
 * false (audit queries put their SQL together from constant pieces). */
int gh_pg__run_sql(struct gh_pg_tx *tx, const char *name, const char *sql, const Oid *types,
                   int ntypes, bool *prepared, const struct gh_pg_args *a, PGresult **res,
                   struct gh_err *err);

/* Runs `COPY ... FROM STDIN` <sql> in <tx> and sends the <len> bytes of
 * <data> (in the format <sql> names) as its input; *rows gets the rows the
 * server says it took. Errors as gh_pg__run(). */
int gh_pg__copy_in(struct gh_pg_tx *tx, const char *sql, const char *data, size_t len,
                   uint64_t *rows, struct gh_err *err);

/* Streams the rows of statement <id> to <row_cb> one at a time (libpq's
 * single-row mode: a walk of a million rows does not sit in memory). <row_cb>
 * returning anything but GH_OK stops the walk (the rest is read and dropped)
 * and is returned. */
typedef int (*gh_pg_row_cb)(const PGresult *res, void *arg);
int gh_pg__stream(struct gh_pg_tx *tx, enum gh_pg_stmt id, const struct gh_pg_args *a,
                  gh_pg_row_cb row_cb, void *arg, struct gh_err *err);

/* Copies text column <col> of row <row> into <dst> of <size> bytes;
 * GH_ERROR when it is NULL or does not fit. */
int gh_pg__text(const PGresult *r, int row, int col, char *dst, size_t size, struct gh_err *err);
/* The int64 in column <col> (text format); 0 for NULL. */
int64_t gh_pg__i64(const PGresult *r, int row, int col);

/* The indexes 0..<n>-1 of the <n> elements of <size> bytes at <base>, in
 * the order <cmp> gives the elements (ties by index); NULL when out of
 * memory; the caller frees it. A batch that updates many rows writes them
 * in primary-key order: two nodes updating some of the same rows lock them
 * in one order and never deadlock each other (a deadlock would cost both
 * batches a retry). */
size_t *gh_pg__order(const void *base, size_t n, size_t size,
                     int (*cmp)(const void *, const void *));

/* Increments the change counter, inside <tx>. */
int gh_pg__bump(struct gh_pg_tx *tx, struct gh_err *err);

/* Fills a tenant from the 6 columns starting at <col> (id, name, status,
 * plan, created_at, updated_at). */
int gh_pg__tenant_row(const PGresult *r, int row, int col, struct gh_store_tenant *t,
                      struct gh_err *err);

/* The application_name of the pool's sessions and of the change
 * listener's (pg_stat_activity tells them apart). */
#define GH_PG_APP        "gatehouse"
#define GH_PG_APP_LISTEN "gatehouse-listen"

/* The channel every change-counter bump notifies (docs/postgres.md,
 * "Propagation of changes"); the payload is the new version. */
#define GH_PG_CHANGES_CHANNEL "gatehouse_changes"

/* Opens one connection to <url> outside the pool (gatehouse postgres init,
 * the webhook claimer's session), named <app>; search_path is the gatehouse
 * schema. */
int gh_pg__connect(const char *url, const char *app, PGconn **out, struct gh_err *err);
/* The same, without blocking: PQconnectStartParams (NULL when out of
 * memory); the caller drives PQconnectPoll and PQfinish()es it. */
PGconn *gh_pg__connect_start(const char *url, const char *app);

/* Connection strings for another use (pg_tools.c). */
struct gh_pg_conninfo_edit {
    bool drop_user;     /* libpq's defaults name the user (PGUSER, the OS user) */
    bool keep_password; /* for a connection of this process, never a command line */
    const char *dbname; /* another database on the same server */
    const char *host;   /* this one server (its port: <port>, may be NULL) */
    const char *port;
};

/* The conninfo ("key='value' ...") of <url> with the changes of <e> (may be
 * NULL) and, unless e->keep_password, without its password: that goes to
 * *password (malloc'd, NULL when the URL has none; <password> may be NULL
 * to drop it). free() both. */
int gh_pg__conninfo(const char *url, const struct gh_pg_conninfo_edit *e, char **out,
                    char **password, struct gh_err *err);

/* PostgreSQL's client program <tool> ("pg_dump", "pg_restore") for a server
 * of <server_version> (PQserverVersion): /usr/lib/postgresql/<major>/bin,
 * then PATH, then the newest under /usr/lib/postgresql. */
int gh_pg__tool(const char *tool, int server_version, char *path, size_t size, struct gh_err *err);

/* Runs argv[0] (a path) with <argv>, stdin and stdout on /dev/null, and
 * PGPASSWORD=<password> in its environment when not NULL; GH_OK when it
 * exits 0, else GH_ERROR with the start of what it wrote to stderr. */
int gh_pg__tool_run(char *const argv[], const char *password, struct gh_err *err);

/* In an open transaction: every table's row count (GH_PG_TABLES) and every
 * audit chain's head (GH_PG_AUDIT_HEADS), to <cb>. */
int gh_pg__table_counts_tx(struct gh_pg_tx *tx, gh_store_count_cb cb, void *arg,
                           struct gh_err *err);
int gh_pg__audit_heads_tx(struct gh_pg_tx *tx, gh_store_audit_row_cb cb, void *arg,
                          struct gh_err *err);

/* The ops, one file per entity. */
int gh_pg__migrate(struct gh_store *st, int *applied, int *version, struct gh_err *err);
int gh_pg__tenant_create(struct gh_store *st, const struct gh_store_tenant *t, struct gh_err *err);
int gh_pg__tenant_get(struct gh_store *st, const char *id, struct gh_store_tenant *out,
                      struct gh_err *err);
int gh_pg__tenant_get_by_name(struct gh_store *st, const char *name, struct gh_store_tenant *out,
                              struct gh_err *err);
int gh_pg__tenant_list(struct gh_store *st, enum gh_store_tenant_status status,
                       const struct gh_store_keyset *after, size_t limit,
                       struct gh_store_tenant *out, size_t *count, bool *more, struct gh_err *err);
int gh_pg__tenant_update(struct gh_store *st, const char *id,
                         const struct gh_store_tenant_update *upd, int64_t now,
                         struct gh_store_tenant *out, bool *status_moved, struct gh_err *err);
int gh_pg__tenant_limits_set(struct gh_store *st, const char *id, const char *plan,
                             const char *overrides_json, int64_t now, struct gh_err *err);
int gh_pg__tenant_limits_get(struct gh_store *st, const char *id, char *plan, char *json,
                             size_t cap, struct gh_err *err);
int gh_pg__tenant_limits_load(struct gh_store *st, gh_store_tenant_limits_cb cb, void *arg,
                              struct gh_err *err);
int gh_pg__key_insert(struct gh_store *st, const struct gh_store_key *k, int64_t old_until,
                      int64_t *old_expires_at, struct gh_err *err);
int gh_pg__key_get(struct gh_store *st, const char *tenant_id, const char *key_id,
                   struct gh_store_key *out, struct gh_err *err);
int gh_pg__key_list(struct gh_store *st, const char *tenant_id, const struct gh_store_keyset *after,
                    size_t limit, struct gh_store_key *out, size_t *count, bool *more,
                    struct gh_err *err);
int gh_pg__key_set_status(struct gh_store *st, const char *tenant_id, const char *key_id,
                          enum gh_store_key_status status, bool *moved, struct gh_err *err);
int gh_pg__key_set_expiry(struct gh_store *st, const char *tenant_id, const char *key_id,
                          int64_t expires_at, struct gh_err *err);
int gh_pg__keys_touch_batch(struct gh_store *st, const struct gh_store_key_touch *touches, size_t n,
                            struct gh_err *err);
int gh_pg__key_directory_load(struct gh_store *st, gh_store_key_cb cb, void *arg, uint64_t *version,
                              struct gh_err *err);
int gh_pg__token_revoke(struct gh_store *st, const char *jti, int64_t expires_at, int64_t now,
                        struct gh_err *err);
int gh_pg__revoked_tokens_load(struct gh_store *st, int64_t now, gh_store_revoked_cb cb, void *arg,
                               uint64_t *version, struct gh_err *err);
int gh_pg__revoked_tokens_purge(struct gh_store *st, int64_t now, size_t *purged,
                                struct gh_err *err);
int gh_pg__signing_key_insert(struct gh_store *st, const struct gh_store_signing_key *k,
                              int64_t now, struct gh_err *err);
int gh_pg__signing_keys_load(struct gh_store *st, int64_t now, gh_store_signing_cb cb, void *arg,
                             struct gh_err *err);
int gh_pg__usage_add(struct gh_store *st, const char *batch_id, struct gh_store_usage *rows,
                     size_t n, int64_t now, struct gh_err *err);
int gh_pg__usage_get(struct gh_store *st, const char *tenant_id, const char *period,
                     struct gh_store_usage *out, struct gh_err *err);
int gh_pg__usage_load(struct gh_store *st, const char *period, gh_store_usage_cb cb, void *arg,
                      struct gh_err *err);
int gh_pg__limit_event_record(struct gh_store *st, struct gh_store_limit_event *ev, bool *inserted,
                              struct gh_err *err);
int gh_pg__limit_events_list(struct gh_store *st, const char *tenant_id, int64_t before_id,
                             size_t limit, struct gh_store_limit_event *out, size_t *count,
                             bool *more, struct gh_err *err);
int gh_pg__audit_append(struct gh_store *st, struct gh_store_audit_row *rows, size_t n,
                        const struct gh_store_audit_checkpoint *cps, size_t *ncp,
                        const struct gh_store_audit_rechain *rechain, bool *unsynced,
                        struct gh_err *err);
int gh_pg__audit_heads(struct gh_store *st, gh_store_audit_row_cb cb, void *arg,
                       struct gh_err *err);
int gh_pg__audit_query(struct gh_store *st, const struct gh_store_audit_filter *f,
                       const struct gh_store_audit_pos *after, size_t limit,
                       struct gh_store_audit_row *out, size_t *count, bool *more,
                       struct gh_err *err);
int gh_pg__audit_seq_span(struct gh_store *st, const char *chain, int64_t from_us, int64_t to_us,
                          uint64_t *first, uint64_t *last, struct gh_err *err);
int gh_pg__audit_walk(struct gh_store *st, const char *chain, uint64_t from_seq, uint64_t to_seq,
                      gh_store_audit_row_cb cb, void *arg, struct gh_err *err);
int gh_pg__audit_scan(struct gh_store *st, int64_t after_rowid, int64_t to_rowid,
                      gh_store_audit_row_cb cb, void *arg, struct gh_err *err);
int gh_pg__audit_checkpoints_walk(struct gh_store *st, const char *chain, uint64_t from_seq,
                                  uint64_t to_seq, gh_store_audit_cp_cb cb, void *arg,
                                  struct gh_err *err);
int gh_pg__audit_key_insert(struct gh_store *st, const struct gh_store_audit_key *k,
                            struct gh_err *err);
int gh_pg__audit_keys_list(struct gh_store *st, struct gh_store_audit_key *out, size_t max,
                           size_t *count, struct gh_err *err);
int gh_pg__audit_archive_commit(struct gh_store *st, const struct gh_store_audit_archive *a,
                                struct gh_err *err);
int gh_pg__audit_archives_walk(struct gh_store *st, const char *chain, gh_store_audit_archive_cb cb,
                               void *arg, struct gh_err *err);
int gh_pg__backup(struct gh_store *st, const char *path, struct gh_err *err);
int gh_pg__table_counts(struct gh_store *st, gh_store_count_cb cb, void *arg, struct gh_err *err);
int gh_pg__integrity_check(struct gh_store *st, char *problem, size_t size, struct gh_err *err);
int gh_pg__secret_put(struct gh_store *st, const struct gh_store_secret *s, int64_t now,
                      struct gh_err *err);
int gh_pg__secret_get(struct gh_store *st, const char *tenant_id, const char *name,
                      struct gh_store_secret *out, struct gh_err *err);
int gh_pg__secret_delete(struct gh_store *st, const char *tenant_id, const char *name,
                         struct gh_err *err);
int gh_pg__secrets_walk(struct gh_store *st, const char *tenant_id, gh_store_secret_cb cb,
                        void *arg, struct gh_err *err);
int gh_pg__secrets_versions(struct gh_store *st, gh_store_secret_version_cb cb, void *arg,
                            struct gh_err *err);
int gh_pg__secrets_stale(struct gh_store *st, uint32_t version, size_t limit,
                         struct gh_store_secret *out, size_t *count, struct gh_err *err);
int gh_pg__secrets_rewrap(struct gh_store *st, const struct gh_store_secret_rewrap *rw, size_t n,
                          size_t *applied, struct gh_err *err);
int gh_pg__secrets_rotation_begin(struct gh_store *st, const struct gh_store_secrets_rotation *want,
                                  struct gh_store_secrets_rotation *out, bool *started,
                                  struct gh_err *err);
int gh_pg__secrets_rotation_get(struct gh_store *st, struct gh_store_secrets_rotation *out,
                                struct gh_err *err);
int gh_pg__secrets_rotation_finish(struct gh_store *st, uint32_t to_version, int64_t now,
                                   struct gh_err *err);
int gh_pg__secrets_kek_check(struct gh_store *st, uint32_t version, const uint8_t *check,
                             size_t len, bool prepared, int64_t now, uint8_t *stored,
                             size_t *stored_len, uint32_t *newest, struct gh_err *err);
int gh_pg__secrets_kek_state(struct gh_store *st, uint32_t *in_use, uint32_t *newest,
                             struct gh_err *err);
int gh_pg__secrets_kek_activate(struct gh_store *st, uint32_t version, struct gh_err *err);
int gh_pg__secrets_kek_unprepare(struct gh_store *st, uint32_t version, struct gh_err *err);
int gh_pg__private_key_set(struct gh_store *st, enum gh_store_private_kind kind, const char *id,
                           const char *text, struct gh_err *err);
int gh_pg__hook_endpoint_insert(struct gh_store *st, const struct gh_store_hook_endpoint *e,
                                struct gh_err *err);
int gh_pg__hook_endpoint_get(struct gh_store *st, const char *tenant_id, const char *id,
                             struct gh_store_hook_endpoint *out, struct gh_err *err);
int gh_pg__hook_endpoint_list(struct gh_store *st, const char *tenant_id,
                              const struct gh_store_keyset *after, size_t limit,
                              struct gh_store_hook_endpoint *out, size_t *count, bool *more,
                              struct gh_err *err);
int gh_pg__hook_endpoint_update(struct gh_store *st, struct gh_store_hook_endpoint *e,
                                struct gh_err *err);
int gh_pg__hook_endpoint_delete(struct gh_store *st, const char *tenant_id, const char *id,
                                struct gh_store_hook_endpoint *gone, struct gh_err *err);
int gh_pg__hook_publish(struct gh_store *st, const char *tenant_id, const char *msg_id,
                        const char *type, const char *payload, size_t payload_len, int64_t now,
                        int64_t due, size_t *deliveries, bool *duplicate, struct gh_err *err);
int gh_pg__hook_claim(struct gh_store *st, const char *owner, int64_t now, size_t limit,
                      gh_store_hook_due_cb cb, void *arg, struct gh_err *err);
int gh_pg__hook_record(struct gh_store *st, const char *owner,
                       const struct gh_store_hook_outcome *o, size_t n, int64_t now,
                       int64_t disable_after_ms, gh_store_hook_disabled_cb cb, void *arg,
                       struct gh_err *err);
int gh_pg__hook_delivery_list(struct gh_store *st, const char *tenant_id, const char *endpoint_id,
                              enum gh_store_delivery_status status, int64_t after_id, size_t limit,
                              struct gh_store_hook_delivery *out, size_t *count, bool *more,
                              struct gh_err *err);
int gh_pg__hook_delivery_get(struct gh_store *st, const char *tenant_id, const char *endpoint_id,
                             int64_t id, struct gh_store_hook_delivery *out,
                             struct gh_store_hook_attempt *attempts, size_t max, size_t *nattempts,
                             struct gh_err *err);
int gh_pg__hook_delivery_replay(struct gh_store *st, const char *tenant_id, const char *endpoint_id,
                                int64_t id, int64_t now, struct gh_err *err);
int gh_pg__hook_pending_count(struct gh_store *st, uint64_t *count, struct gh_err *err);
int gh_pg__hook_resume_stray(struct gh_store *st, size_t limit, uint64_t *resumed,
                             struct gh_err *err);
int gh_pg__hook_reports_claim(struct gh_store *st, int64_t now, gh_store_hook_disabled_cb cb,
                              void *arg, struct gh_err *err);
int gh_pg__hook_reports_done(struct gh_store *st, const struct gh_store_hook_report *r, size_t n,
                             struct gh_err *err);
int gh_pg__usage_purge(struct gh_store *st, const char *day, const char *month, size_t limit,
                       struct gh_store_usage_purged *out, struct gh_err *err);
int gh_pg__hook_purge(struct gh_store *st, const char *owner, int64_t after_seq, int64_t cutoff,
                      int64_t now, size_t limit, struct gh_store_hook_purged *out,
                      struct gh_err *err);
int gh_pg__watch_start(struct gh_store *st, struct gh_store_watch *w, struct gh_err *err);
void gh_pg__watch_stop(struct gh_store_watch *w);

#endif
