/* Webhook endpoints, messages, deliveries and attempts in the PostgreSQL
 * store, as sqlite_webhooks.c: the endpoint rows, the one-transaction
 * publish, the dispatcher's claims and batched outcomes, and the reads of
 * the admin API. Endpoint, publish and delivery calls run as the tenant
 * (row-level security); claims, outcomes and the pending count as the
 * operator. Unlike SQLite's, a claim is a lease that holds the delivery
 * from every other node until it runs out (docs/postgres.md, "Webhook
 * claims"). Input arrives validated by store_webhooks.c. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "store/pg_array.h"
#include "core/clock.h"
#include "store/pg_int.h"
#include "store/store_int.h"

/* ---- Endpoints -------------------------------------------------------------- */

/* Fills <e> from the 16 columns of GH_PG_HOOK_EP_COLS in row <row>. */
static int endpoint_row(const PGresult *r, int row, struct gh_store_hook_endpoint *e,
                        struct gh_err *err)
{
    char signing[16], status[16];

    memset(e, 0, sizeof(*e));
    if (gh_pg__text(r, row, 0, e->id, sizeof(e->id), err) != GH_OK ||
        gh_pg__text(r, row, 1, e->tenant_id, sizeof(e->tenant_id), err) != GH_OK ||
        gh_pg__text(r, row, 2, e->url, sizeof(e->url), err) != GH_OK ||
        gh_pg__text(r, row, 3, e->description, sizeof(e->description), err) != GH_OK ||
        gh_pg__text(r, row, 5, signing, sizeof(signing), err) != GH_OK ||
        gh_pg__text(r, row, 6, e->public_key, sizeof(e->public_key), err) != GH_OK ||
        gh_pg__text(r, row, 10, status, sizeof(status), err) != GH_OK ||
        gh_pg__text(r, row, 12, e->disabled_reason, sizeof(e->disabled_reason), err) != GH_OK)
        return GH_ERROR;
    if (gh_store__events_decode(PQgetvalue(r, row, 4), e->events, &e->nevents, err) != GH_OK)
        return GH_ERROR;
    e->ed25519 = strcmp(signing, "ed25519") == 0;
    e->secret_version = (uint32_t)gh_pg__i64(r, row, 7);
    e->prev_version = (uint32_t)gh_pg__i64(r, row, 8);
    e->prev_until = gh_pg__i64(r, row, 9);
    e->status = strcmp(status, "active") == 0 ? GH_STORE_HOOK_ACTIVE : GH_STORE_HOOK_DISABLED;
    e->failing_since = gh_pg__i64(r, row, 11);
    e->created_at = gh_pg__i64(r, row, 13);
    e->updated_at = gh_pg__i64(r, row, 14);
    e->rev = gh_pg__i64(r, row, 15);
    return GH_OK;
}

/* The 16 columns of GH_PG_HOOK_EP_COLS as $1..$16 (for an update, $16 is
 * the revision it applies to); <events> is the events
 * column's text, which the caller owns and frees after the statement. */
static void endpoint_args(struct gh_pg_args *a, const struct gh_store_hook_endpoint *e,
                          const char *events)
{
    gh_pg__arg(a, e->id);
    gh_pg__arg(a, e->tenant_id);
    gh_pg__arg(a, e->url);
    gh_pg__arg(a, e->description);
    gh_pg__arg(a, events);
    gh_pg__arg(a, e->ed25519 ? "ed25519" : "hmac");
    gh_pg__arg(a, e->public_key);
    gh_pg__arg_i64(a, e->secret_version);
    gh_pg__arg_i64(a, e->prev_version);
    gh_pg__arg_i64(a, e->prev_until);
    gh_pg__arg(a, e->status == GH_STORE_HOOK_DISABLED ? "disabled" : "active");
    gh_pg__arg_i64(a, e->failing_since);
    gh_pg__arg(a, e->disabled_reason);
    gh_pg__arg_i64(a, e->created_at);
    gh_pg__arg_i64(a, e->updated_at);
    gh_pg__arg_i64(a, e->rev);
}

/* Runs the endpoint statement <id> (insert or update) with every column of
 * <e> in <tx>; sets *rows to the rows it touched, and *rev (optional) to
 * the revision an update returns. */
static int endpoint_write(struct gh_pg_tx *tx, enum gh_pg_stmt id,
                          const struct gh_store_hook_endpoint *e, int *rows, int64_t *rev,
                          struct gh_err *err)
{
    struct gh_pg_args a = {0};
    char *events = gh_store__events_encode(e);
    PGresult *r = NULL;
    int rc;

    if (events == NULL) return gh_err_set(err, NULL, 0, 0, "store: out of memory");
    endpoint_args(&a, e, events);
    rc = gh_pg__run(tx, id, &a, &r, err);
    if (rc == GH_OK) *rows = atoi(PQcmdTuples(r));
    if (rc == GH_OK && rev && *rows == 1 && PQntuples(r) == 1) *rev = gh_pg__i64(r, 0, 0);
    PQclear(r);
    free(events);
    return rc;
}

int gh_pg__hook_endpoint_insert(struct gh_store *st, const struct gh_store_hook_endpoint *e,
                                struct gh_err *err)
{
    struct gh_pg_args a = {0};
    struct gh_pg_tx tx;
    PGresult *r = NULL;
    int rows = 0, rc = gh_pg__begin(gh_pg__of(st), GH_PG_TENANT, e->tenant_id, false, &tx, err);

    if (rc != GH_OK) return rc;
    /* The tenant's own row (its policy is on id): absent means no such
     * tenant, as SQLite's check says. The foreign key holds the race. */
    gh_pg__arg(&a, e->tenant_id);
    rc = gh_pg__run(&tx, GH_PG_TENANT_GET, &a, &r, err);
    if (rc == GH_OK && PQntuples(r) == 0) {
        gh_err_set(err, NULL, 0, 0, "tenant not found");
        rc = GH_STORE_NOT_FOUND;
    }
    PQclear(r);
    if (rc == GH_OK) rc = endpoint_write(&tx, GH_PG_HOOK_EP_INSERT, e, &rows, NULL, err);
    return gh_pg__end(&tx, rc, err);
}

int gh_pg__hook_endpoint_get(struct gh_store *st, const char *tenant_id, const char *id,
                             struct gh_store_hook_endpoint *out, struct gh_err *err)
{
    struct gh_pg_args a = {0};
    struct gh_pg_tx tx;
    PGresult *r = NULL;
    int rc = gh_pg__begin(gh_pg__of(st), GH_PG_TENANT, tenant_id, false, &tx, err);

    if (rc != GH_OK) return rc;
    gh_pg__arg(&a, tenant_id);
    gh_pg__arg(&a, id);
    rc = gh_pg__run(&tx, GH_PG_HOOK_EP_GET, &a, &r, err);
    if (rc == GH_OK && PQntuples(r) == 0) rc = gh_store__hook_endpoint_missing(err);
    if (rc == GH_OK) rc = endpoint_row(r, 0, out, err);
    PQclear(r);
    return gh_pg__end_lookup(&tx, rc, err);
}

int gh_pg__hook_endpoint_list(struct gh_store *st, const char *tenant_id,
                              const struct gh_store_keyset *after, size_t limit,
                              struct gh_store_hook_endpoint *out, size_t *count, bool *more,
                              struct gh_err *err)
{
    struct gh_pg_args a = {0};
    struct gh_pg_tx tx;
    PGresult *r = NULL;
    int rc = gh_pg__begin(gh_pg__of(st), GH_PG_TENANT, tenant_id, false, &tx, err);

    *count = 0;
    *more = false;
    if (rc != GH_OK) return rc;
    gh_pg__arg(&a, tenant_id);
    gh_pg__arg_i64(&a, after ? after->created_at : INT64_MIN);
    gh_pg__arg(&a, after ? after->id : "");
    gh_pg__arg_i64(&a, (int64_t)limit + 1); /* one more row: is there a next page? */
    rc = gh_pg__run(&tx, GH_PG_HOOK_EP_LIST, &a, &r, err);
    for (int i = 0; rc == GH_OK && i < PQntuples(r); i++) {
        if (*count == limit) {
            *more = true;
            break;
        }
        rc = endpoint_row(r, i, &out[*count], err);
        if (rc == GH_OK) (*count)++;
    }
    PQclear(r);
    return gh_pg__end(&tx, rc, err);
}

/* Runs pausing statement <id> (GH_PG_HOOK_DLV_PAUSE or _RESUME) over
 * endpoint <ep>'s deliveries, step after step, until one does fewer than a
 * step. Sorting off and plans for the values at hand, for the transaction:
 * otherwise the plan of a step can read and sort every delivery left of a
 * long backlog to keep the first 10,000 (a bitmap scan), where the index
 * gives them in order, and a generic plan reads the primary key past the
 * whole table for an endpoint of a few deliveries. */
static int pause_steps(struct gh_pg_tx *tx, enum gh_pg_stmt id, const char *ep, struct gh_err *err)
{
    int64_t after = 0, n;
    int rc = gh_pg__run(tx, GH_PG_SORT_OFF, NULL, NULL, err);

    if (rc == GH_OK) rc = gh_pg__run(tx, GH_PG_CUSTOM_PLANS, NULL, NULL, err);
    if (rc != GH_OK) return rc;
    do {
        struct gh_pg_args a = {0};
        PGresult *r = NULL;
        gh_pg__arg(&a, ep);
        gh_pg__arg_i64(&a, after);
        if (id == GH_PG_HOOK_DLV_PAUSE) gh_pg__arg_i64(&a, (int64_t)gh_wall_ms());
        rc = gh_pg__run(tx, id, &a, &r, err);
        n = rc == GH_OK && PQntuples(r) == 1 ? gh_pg__i64(r, 0, 0) : 0;
        if (n > 0) after = gh_pg__i64(r, 0, 1);
        PQclear(r);
    } while (rc == GH_OK && n == atoll(GH_PG_HOOK_PAUSE_STEP));
    return rc;
}

/* The status and revision of endpoint <e> under its advisory lock, which
 * replays and other updates take too: CONFLICT when the row is no longer
 * at the revision the caller read (e->rev), NOT_FOUND. Then pauses its
 * pending deliveries when the status changes to disabled; resumes its
 * paused ones whenever it is set active (an older gatehouse may have
 * enabled it without resuming them). A paused delivery is out of the
 * claim's reach (GH_PG_HOOK_DUE), so a disabled endpoint's backlog costs
 * no claim anything. Auto-disabling does not take the lock (it only turns
 * an active endpoint disabled and fails its pending deliveries), but it
 * moves the revision, which the update checks again. The deliveries are
 * locked before the endpoint's row, as every writer of both locks them. */
static int pause_deliveries(struct gh_pg_tx *tx, const struct gh_store_hook_endpoint *e,
                            struct gh_err *err)
{
    struct gh_pg_args k = {0};
    PGresult *r = NULL;
    bool disabled;
    int rc;

    gh_pg__arg(&k, e->id);
    rc = gh_pg__run(tx, GH_PG_HOOK_EP_STATUS_LOCK, &k, NULL, err);
    if (rc == GH_OK) rc = gh_pg__run(tx, GH_PG_HOOK_EP_STATUS, &k, &r, err);
    if (rc == GH_OK && PQntuples(r) != 1)
        rc = gh_store__hook_endpoint_missing(err);
    else if (rc == GH_OK && gh_pg__i64(r, 0, 1) != e->rev)
        rc = gh_store__hook_endpoint_changed(err);
    disabled = rc == GH_OK && strcmp(PQgetvalue(r, 0, 0), "disabled") == 0;
    PQclear(r);
    if (rc != GH_OK) return rc;
    if (e->status != GH_STORE_HOOK_DISABLED)
        return pause_steps(tx, GH_PG_HOOK_DLV_RESUME, e->id, err);
    return disabled ? GH_OK : pause_steps(tx, GH_PG_HOOK_DLV_PAUSE, e->id, err);
}

int gh_pg__hook_endpoint_update(struct gh_store *st, struct gh_store_hook_endpoint *e,
                                struct gh_err *err)
{
    struct gh_pg_tx tx;
    int64_t rev = 0;
    int rows = 0, rc = gh_pg__begin(gh_pg__of(st), GH_PG_TENANT, e->tenant_id, false, &tx, err);

    if (rc != GH_OK) return rc;
    rc = pause_deliveries(&tx, e, err);
    if (rc == GH_OK) rc = endpoint_write(&tx, GH_PG_HOOK_EP_UPDATE, e, &rows, &rev, err);
    if (rc == GH_OK && rows == 0) rc = gh_store__hook_endpoint_changed(err);
    rc = gh_pg__end(&tx, rc, err);
    if (rc == GH_OK) e->rev = rev;
    return rc;
}

int gh_pg__hook_endpoint_delete(struct gh_store *st, const char *tenant_id, const char *id,
                                struct gh_store_hook_endpoint *gone, struct gh_err *err)
{
    struct gh_pg_args a = {0}, b = {0};
    struct gh_pg_tx tx;
    PGresult *r = NULL;
    int rc = gh_pg__begin(gh_pg__of(st), GH_PG_TENANT, tenant_id, false, &tx, err);

    if (rc != GH_OK) return rc;
    /* Its deliveries and their attempts go with it, in the same
     * transaction (the messages stay for other endpoints), all before its
     * row: a delivery published after the first lock is locked by the
     * delete of the deliveries, and every writer of both takes deliveries
     * before endpoints' rows (docs/postgres.md). Row-level security shows
     * this tenant's only: another tenant's endpoint deletes nothing, then
     * answers NOT_FOUND, and the transaction rolls back. */
    gh_pg__arg(&b, id);
    rc = gh_pg__run(&tx, GH_PG_HOOK_EP_LOCK_DELIVERIES, &b, NULL, err);
    if (rc == GH_OK) rc = gh_pg__run(&tx, GH_PG_HOOK_EP_DEL_ATTEMPTS, &b, NULL, err);
    if (rc == GH_OK) rc = gh_pg__run(&tx, GH_PG_HOOK_EP_DEL_DELIVERIES, &b, NULL, err);
    gh_pg__arg(&a, tenant_id);
    gh_pg__arg(&a, id);
    if (rc == GH_OK) rc = gh_pg__run(&tx, GH_PG_HOOK_EP_DELETE, &a, &r, err);
    if (rc == GH_OK && PQntuples(r) == 0) rc = gh_store__hook_endpoint_missing(err);
    if (rc == GH_OK) rc = endpoint_row(r, 0, gone, err);
    PQclear(r);
    return gh_pg__end(&tx, rc, err);
}

/* ---- Publish ------------------------------------------------------------------ */

/* The message stored under (<tenant_id>, <msg_id>): its delivery count,
 * and CONFLICT when its type or payload differ from the ones published
 * again (the id names another message: answering "duplicate" would hide
 * the publisher's mistake). */
static int message_count(struct gh_pg_tx *tx, const char *tenant_id, const char *msg_id,
                         const char *type, const char *payload, size_t payload_len, size_t *n,
                         struct gh_err *err)
{
    struct gh_pg_args a = {0};
    PGresult *r = NULL;
    int rc;

    gh_pg__arg(&a, tenant_id);
    gh_pg__arg(&a, msg_id);
    gh_pg__arg(&a, type);
    gh_pg__arg_bytes(&a, payload, payload_len);
    rc = gh_pg__run(tx, GH_PG_HOOK_MSG_COUNT, &a, &r, err);
    if (rc == GH_OK && PQntuples(r) != 1)
        rc = gh_err_set(err, NULL, 0, 0, "store: webhook message: missing after a conflict");
    if (rc == GH_OK && strcmp(PQgetvalue(r, 0, 1), "t") != 0)
        rc = gh_store__hook_message_reused(msg_id, err);
    if (rc == GH_OK) *n = (size_t)gh_pg__i64(r, 0, 0);
    PQclear(r);
    return rc;
}

/* Inserts a pending delivery of message <seq> to each active endpoint of
 * <tenant_id> subscribed to <type>; sets *n. */
static int fan_out(struct gh_pg_tx *tx, const char *tenant_id, int64_t seq, const char *type,
                   int64_t now, int64_t due, size_t *n, struct gh_err *err)
{
    struct gh_pg_args a = {0};
    PGresult *r = NULL;
    int rc;

    gh_pg__arg(&a, tenant_id);
    /* A tenant's endpoints: a few, read whole. */
    rc = gh_pg__run(tx, GH_PG_HOOK_EP_SUBSCRIBED, &a, &r, err);
    for (int i = 0; rc == GH_OK && i < PQntuples(r); i++) {
        struct gh_pg_args d = {0};
        if (PQgetisnull(r, i, 1) || !gh_store__events_match(PQgetvalue(r, i, 1), type)) continue;
        gh_pg__arg_i64(&d, seq);
        gh_pg__arg(&d, PQgetvalue(r, i, 0));
        gh_pg__arg(&d, tenant_id);
        gh_pg__arg_i64(&d, due);
        gh_pg__arg_i64(&d, now);
        rc = gh_pg__run(tx, GH_PG_HOOK_DLV_INSERT, &d, NULL, err);
        if (rc == GH_OK) (*n)++;
    }
    PQclear(r);
    return rc;
}

int gh_pg__hook_publish(struct gh_store *st, const char *tenant_id, const char *msg_id,
                        const char *type, const char *payload, size_t payload_len, int64_t now,
                        int64_t due, size_t *deliveries, bool *duplicate, struct gh_err *err)
{
    struct gh_pg_args a = {0};
    struct gh_pg_tx tx;
    PGresult *r = NULL;
    int64_t seq = 0;
    int rc = gh_pg__begin(gh_pg__of(st), GH_PG_TENANT, tenant_id, false, &tx, err);

    *deliveries = 0;
    *duplicate = false;
    if (rc != GH_OK) return rc;
    gh_pg__arg(&a, msg_id);
    gh_pg__arg(&a, tenant_id);
    gh_pg__arg(&a, type);
    gh_pg__arg_bytes(&a, payload, payload_len);
    gh_pg__arg_i64(&a, now);
    rc = gh_pg__run(&tx, GH_PG_HOOK_MSG_INSERT, &a, &r, err);
    if (rc == GH_OK && PQntuples(r) == 0) {
        /* The id is stored already (by another call, maybe on another node
         * that committed while we waited): idempotent, its count. */
        *duplicate = true;
        rc = message_count(&tx, tenant_id, msg_id, type, payload, payload_len, deliveries, err);
        PQclear(r);
        goto out;
    }
    if (rc == GH_OK) seq = gh_pg__i64(r, 0, 0);
    PQclear(r);
    if (rc == GH_OK) rc = fan_out(&tx, tenant_id, seq, type, now, due, deliveries, err);
    if (rc == GH_OK && *deliveries > 0) {
        struct gh_pg_args c = {0};
        gh_pg__arg_i64(&c, seq);
        gh_pg__arg_i64(&c, (int64_t)*deliveries);
        rc = gh_pg__run(&tx, GH_PG_HOOK_MSG_SET_COUNT, &c, NULL, err);
    }
out:
    rc = gh_pg__end(&tx, rc, err);
    if (rc != GH_OK) {
        *deliveries = 0;
        *duplicate = false;
    }
    return rc;
}

/* ---- Dispatcher ----------------------------------------------------------------- */

/* The ids of claimed rows as a bigint[] literal ("{1,2,3}"). */
static char *id_array(const PGresult *r)
{
    size_t cap = 3 + (size_t)PQntuples(r) * 21, len = 0;
    char *s = malloc(cap);

    if (s == NULL) return NULL;
    s[len++] = '{';
    for (int i = 0; i < PQntuples(r); i++)
        len += (size_t)snprintf(s + len, cap - len, "%s%lld", i ? "," : "",
                                (long long)gh_pg__i64(r, i, 0));
    s[len++] = '}';
    s[len] = '\0';
    return s;
}

/* The owner session's check (owner_hold), prepared when the session is
 * made: it runs at every claim (10 times a second on an idle gateway), and
 * planning its look into pg_locks took most of the server's time for it. */
#define OWNER_CHECK "gh_owner_check"

/* Runs <sql> (NULL: the prepared OWNER_CHECK) with <owner> as $1 on the
 * claimer's session; true when it answered 't'. */
static bool owner_query(PGconn *db, const char *sql, const char *owner)
{
    const char *v[1] = {owner};
    PGresult *r = sql == NULL ? PQexecPrepared(db, OWNER_CHECK, 1, v, NULL, NULL, 0)
                              : PQexecParams(db, sql, 1, NULL, v, NULL, NULL, 0);
    bool yes = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
               strcmp(PQgetvalue(r, 0, 0), "t") == 0;

    PQclear(r);
    return yes;
}

/* Makes sure a session of this store holds the advisory lock of <owner>:
 * while it does, other nodes leave <owner>'s claims alone until their
 * lease runs out; when the process dies, the server ends the session, the
 * lock goes, and the claims are taken at once (what SQLite's rule "another
 * owner's claim does not hold" gives one process). One session per store,
 * checked with one round trip per claim; a session found broken, or when
 * <renew> (its lock is not on the server the claims go to), is made again
 * (meanwhile the claims looked dead to the others, who may have taken
 * them: at least once). */
static int owner_hold(struct gh_pg_store *s, const char *owner, bool renew, struct gh_err *err)
{
    static const char check[] =
        "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted "
        "AND pid = pg_backend_pid() AND objsubid = 2 AND classid = " GH_PG_HOOK_LOCK_NS "::oid "
        "AND objid = (hashtext($1::text)::bigint & 4294967295)::oid)";
    static const char take[] =
        "SELECT pg_try_advisory_lock(" GH_PG_HOOK_LOCK_NS ", hashtext($1::text))";
    PGresult *r;
    int rc = GH_OK;

    pthread_mutex_lock(&s->owner_mu);
    if (!renew && s->owner_db != NULL && strcmp(s->owner, owner) == 0 &&
        PQstatus(s->owner_db) == CONNECTION_OK && owner_query(s->owner_db, NULL, owner))
        goto out;
    if (s->owner_db != NULL) PQfinish(s->owner_db);
    s->owner_db = NULL;
    rc = gh_pg__connect(s->url, GH_PG_APP, &s->owner_db, err);
    if (rc != GH_OK) goto out;
    r = PQprepare(s->owner_db, OWNER_CHECK, check, 1, NULL);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        rc = gh_err_set(err, NULL, 0, 0,
                        "store: webhook claims: cannot prepare the lock check: %.300s",
                        PQerrorMessage(s->owner_db));
        PQclear(r);
        PQfinish(s->owner_db);
        s->owner_db = NULL;
        goto out;
    }
    PQclear(r);
    if (!owner_query(s->owner_db, take, owner)) {
        /* Taken by another session: owner names are drawn at random per
         * process, so this is a server in trouble, not a clash. */
        rc =
            gh_err_set(err, NULL, 0, 0, "store: webhook claims: cannot take the lock of %s", owner);
        PQfinish(s->owner_db);
        s->owner_db = NULL;
        goto out;
    }
    snprintf(s->owner, sizeof(s->owner), "%s", owner);
out:
    pthread_mutex_unlock(&s->owner_mu);
    return rc;
}

/* GH_OK when the advisory lock of <owner> is held on the server of <tx>;
 * NOT_FOUND when not. */
static int owner_live(struct gh_pg_tx *tx, const char *owner, struct gh_err *err)
{
    struct gh_pg_args a = {0};
    PGresult *r = NULL;
    int rc;

    gh_pg__arg(&a, owner);
    rc = gh_pg__run(tx, GH_PG_HOOK_OWNER_LIVE, &a, &r, err);
    if (rc == GH_OK && (PQntuples(r) != 1 || strcmp(PQgetvalue(r, 0, 0), "t") != 0))
        rc = GH_STORE_NOT_FOUND;
    PQclear(r);
    return rc;
}

int gh_pg__hook_claim(struct gh_store *st, const char *owner, int64_t now, size_t limit,
                      gh_store_hook_due_cb cb, void *arg, struct gh_err *err)
{
    struct gh_pg_args a = {0}, c = {0};
    struct gh_pg_tx tx;
    PGresult *r = NULL;
    char *ids = NULL;
    int rc = owner_hold(gh_pg__of(st), owner, false, err);

    if (rc == GH_OK) rc = gh_pg__begin(gh_pg__of(st), GH_PG_OPERATOR, NULL, false, &tx, err);
    if (rc != GH_OK) return rc;
    /* The lock must be on the server the claims are written to: after a
     * failover the claimer's session may still hold it on the old primary
     * (which may well be up), where no other node looks, and our claims
     * would look dead to them. Seen from this transaction, it is taken
     * again on this server before anything is claimed. */
    rc = owner_live(&tx, owner, err);
    if (rc == GH_STORE_NOT_FOUND) {
        gh_pg__end(&tx, GH_STORE_NOT_FOUND, err);
        rc = owner_hold(gh_pg__of(st), owner, true, err);
        if (rc == GH_OK) rc = gh_pg__begin(gh_pg__of(st), GH_PG_OPERATOR, NULL, false, &tx, err);
        if (rc != GH_OK) return rc;
        rc = owner_live(&tx, owner, err);
        if (rc == GH_STORE_NOT_FOUND) {
            gh_err_set(err, NULL, 0, 0,
                       "store: webhook claims: the claimer's lock is not on the server the "
                       "claims go to (a failover in progress?)");
            rc = GH_STORE_UNAVAILABLE;
        }
    }
    if (rc != GH_OK) goto out;
    gh_pg__arg(&a, owner);
    gh_pg__arg_i64(&a, now);
    gh_pg__arg_i64(&a, (int64_t)limit);
    /* Locks the due rows it returns (FOR UPDATE OF d) and skips those
     * another node's claim has locked right now (SKIP LOCKED): two nodes
     * claiming at once take disjoint sets, and neither waits. */
    rc = gh_pg__run(&tx, GH_PG_HOOK_DUE, &a, &r, err);
    if (rc != GH_OK || PQntuples(r) == 0) goto out;
    ids = id_array(r);
    if (ids == NULL) {
        rc = gh_err_set(err, NULL, 0, 0, "store: out of memory");
        goto out;
    }
    gh_pg__arg(&c, owner);
    gh_pg__arg_i64(&c, now + GH_PG_HOOK_LEASE_MS);
    gh_pg__arg(&c, ids);
    rc = gh_pg__run(&tx, GH_PG_HOOK_CLAIM, &c, NULL, err);
    for (int i = 0; rc == GH_OK && i < PQntuples(r); i++) {
        struct gh_store_hook_due d;

        d.delivery_id = gh_pg__i64(r, i, 0);
        d.attempts = (unsigned)gh_pg__i64(r, i, 1);
        d.tenant_id = PQgetvalue(r, i, 2);
        d.endpoint_id = PQgetvalue(r, i, 3);
        d.url = PQgetvalue(r, i, 4);
        d.ed25519 = strcmp(PQgetvalue(r, i, 5), "ed25519") == 0;
        d.secret_version = (uint32_t)gh_pg__i64(r, i, 6);
        d.prev_version = (uint32_t)gh_pg__i64(r, i, 7);
        d.prev_until = gh_pg__i64(r, i, 8);
        d.msg_id = PQgetvalue(r, i, 9);
        d.type = PQgetvalue(r, i, 10);
        d.payload = PQgetvalue(r, i, 11);
        d.payload_len = (size_t)PQgetlength(r, i, 11);
        d.msg_created_at = gh_pg__i64(r, i, 12);
        /* The claims are written but not committed: if <cb> or the commit
         * fails, the caller drops what it queued (the op's contract). */
        rc = cb(&d, arg);
    }
out:
    free(ids);
    PQclear(r);
    return gh_pg__end(&tx, rc, err);
}

/* An endpoint's health after a batch of outcomes: whether one succeeded,
 * and when the failures after the last success began (0: none). */
struct health {
    const char *endpoint;
    bool ok;
    int64_t failing_since;
};

static int health_cmp(const void *a, const void *b)
{
    return strcmp(((const struct health *)a)->endpoint, ((const struct health *)b)->endpoint);
}

static int outcome_cmp(const void *a, const void *b)
{
    int64_t x = ((const struct gh_store_hook_outcome *)a)->delivery_id;
    int64_t y = ((const struct gh_store_hook_outcome *)b)->delivery_id;
    return (x > y) - (x < y);
}

/* One outcome of <owner>'s claim. Both writes are idempotent, since a
 * batch whose commit went unanswered is recorded again: the attempt is
 * not added twice (one per delivery and start time), and the delivery
 * changes only while <owner> still holds it (the first commit released
 * it; or another node took it over after the lease ran out: its claim is
 * left alone). */
static int record_one(struct gh_pg_tx *tx, const char *owner, const struct gh_store_hook_outcome *o,
                      int64_t now, struct gh_err *err)
{
    struct gh_pg_args a = {0}, d = {0};
    int rc;

    gh_pg__arg_i64(&a, o->delivery_id);
    gh_pg__arg_i64(&a, o->at);
    gh_pg__arg_i64(&a, o->status);
    gh_pg__arg(&a, o->error);
    gh_pg__arg_i64(&a, o->latency_ms);
    gh_pg__arg(&a, o->snippet);
    rc = gh_pg__run(tx, GH_PG_HOOK_ATTEMPT_INSERT, &a, NULL, err);
    if (rc != GH_OK) return rc;
    gh_pg__arg_i64(&d, o->delivery_id);
    gh_pg__arg(&d, gh_store_delivery_status_name(o->next));
    gh_pg__arg_i64(&d, o->next == GH_STORE_DELIVERY_PENDING ? o->next_attempt_at : 0);
    gh_pg__arg_i64(&d, o->status);
    gh_pg__arg(&d, o->error);
    gh_pg__arg_i64(&d, now);
    gh_pg__arg(&d, owner);
    return gh_pg__run(tx, GH_PG_HOOK_DLV_SET, &d, NULL, err);
}

/* Writes the endpoints' health after the <n> outcomes <o>: the same end
 * state as SQLite's write at each change (failing_since 0 after a success,
 * else the first failure after the last success, kept when already set),
 * in one statement or two per endpoint, in the order of endpoint ids. Two
 * nodes recording outcomes of the same endpoints thus lock their rows in
 * one order and never deadlock each other. */
static int record_health(struct gh_pg_tx *tx, const struct gh_store_hook_outcome *o, size_t n,
                         int64_t now, struct gh_err *err)
{
    struct health *h = calloc(n, sizeof(*h));
    size_t nh = 0;
    int rc = GH_OK;

    if (h == NULL) return gh_err_set(err, NULL, 0, 0, "store: out of memory");
    for (size_t i = 0; i < n; i++) {
        size_t k = 0;
        while (k < nh && strcmp(h[k].endpoint, o[i].endpoint_id) != 0)
            k++;
        if (k == nh) h[nh++].endpoint = o[i].endpoint_id;
        if (o[i].next == GH_STORE_DELIVERY_SUCCEEDED) {
            h[k].ok = true;
            h[k].failing_since = 0;
        } else if (h[k].failing_since == 0) {
            h[k].failing_since = o[i].at > 0 ? o[i].at : now;
        }
    }
    qsort(h, nh, sizeof(*h), health_cmp);
    for (size_t k = 0; rc == GH_OK && k < nh; k++) {
        struct gh_pg_args a = {0}, b = {0};
        gh_pg__arg(&a, h[k].endpoint);
        if (h[k].ok) rc = gh_pg__run(tx, GH_PG_HOOK_EP_OK, &a, NULL, err);
        if (rc != GH_OK || h[k].failing_since == 0) continue;
        gh_pg__arg(&b, h[k].endpoint);
        gh_pg__arg_i64(&b, h[k].failing_since);
        rc = gh_pg__run(tx, GH_PG_HOOK_EP_FAILING, &b, NULL, err);
    }
    free(h);
    return rc;
}

/* Runs disabling statement <id> with <a> and fails the pending deliveries
 * of each endpoint it disabled among <locked> (a bigint[] text: those
 * GH_PG_HOOK_DLV_LOCK_EPS locked); *r keeps what it disabled (tenant_id,
 * id), reported once the transaction committed. */
static int disable_run(struct gh_pg_tx *tx, enum gh_pg_stmt id, const struct gh_pg_args *a,
                       int64_t now, const char *locked, PGresult **r, struct gh_err *err)
{
    struct gh_pg_array eps = {0};
    struct gh_pg_args f = {0};
    const char *list;
    int rc = gh_pg__run(tx, id, a, r, err);

    if (rc != GH_OK || PQntuples(*r) == 0) return rc;
    /* One statement for all of them: each locked id is looked up once. */
    gh_pg_array_reset(&eps);
    for (int i = 0; i < PQntuples(*r); i++)
        gh_pg_array_text(&eps, PQgetvalue(*r, i, 1), (size_t)PQgetlength(*r, i, 1));
    if ((list = gh_pg_array_end(&eps)) == NULL) {
        gh_pg_array_free(&eps);
        return gh_err_set(err, NULL, 0, 0, "store: out of memory");
    }
    gh_pg__arg(&f, list);
    gh_pg__arg_i64(&f, now);
    gh_pg__arg(&f, locked);
    rc = gh_pg__run(tx, GH_PG_HOOK_DLV_FAIL_EP, &f, NULL, err);
    gh_pg_array_free(&eps);
    return rc;
}

static void report(const PGresult *r, const char *reason, int64_t lease,
                   gh_store_hook_disabled_cb cb, void *arg)
{
    for (int i = 0; cb && r && i < PQntuples(r); i++)
        cb(PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), reason, lease, arg);
}

/* One transaction of disable_endpoints: the endpoints of outcomes marked
 * gone (<o>, NULL after the first), then up to 64 failing since before
 * <cutoff>. Their pending deliveries are locked first, in id order, then
 * their rows, in id order: every writer of both takes deliveries before
 * endpoints (an outcome batch: its deliveries, then the endpoints' health),
 * so a disable that took an endpoint's row first and then waited for a
 * delivery another node's batch held, while that batch waited for the row,
 * deadlocked. <cb> hears of what is disabled once it is committed.
 * *more: 64 were due, others may be. */
static int disable_some(struct gh_pg_store *s, const struct gh_store_hook_outcome *o, size_t no,
                        int64_t now, int64_t cutoff, gh_store_hook_disabled_cb cb, void *arg,
                        bool *more, struct gh_err *err)
{
    struct gh_pg_tx tx;
    struct gh_pg_array ids = {0}, gone = {0}, held = {0};
    struct gh_pg_args a = {0}, l = {0}, g = {0}, d = {0};
    PGresult *due = NULL, *locked = NULL, *by_gone = NULL, *by_failing = NULL;
    const char *list, *gone_list, *held_list = NULL;
    const int64_t lease = now + GH_STORE_HOOK_REPORT_LEASE_MS; /* of each report */
    int rc;

    *more = false;
    rc = gh_pg__begin(s, GH_PG_OPERATOR, NULL, false, &tx, err);
    if (rc != GH_OK) return rc;
    gh_pg__arg_i64(&a, cutoff);
    rc = gh_pg__run(&tx, GH_PG_HOOK_EP_DUE, &a, &due, err);
    if (rc != GH_OK) goto out;
    *more = PQntuples(due) == 64;
    gh_pg_array_reset(&ids);
    gh_pg_array_reset(&gone);
    for (size_t i = 0; o != NULL && i < no; i++)
        if (o[i].gone) {
            gh_pg_array_text(&ids, o[i].endpoint_id, strlen(o[i].endpoint_id));
            gh_pg_array_text(&gone, o[i].endpoint_id, strlen(o[i].endpoint_id));
        }
    for (int i = 0; i < PQntuples(due); i++)
        gh_pg_array_text(&ids, PQgetvalue(due, i, 0), (size_t)PQgetlength(due, i, 0));
    if (ids.n == 0) goto out;
    list = gh_pg_array_end(&ids);
    gone_list = gh_pg_array_end(&gone);
    if (list == NULL || gone_list == NULL) {
        rc = gh_err_set(err, NULL, 0, 0, "store: out of memory");
        goto out;
    }
    gh_pg__arg(&l, list);
    rc = gh_pg__run(&tx, GH_PG_HOOK_DLV_LOCK_EPS, &l, &locked, err);
    if (rc == GH_OK) {
        gh_pg_array_reset(&held);
        for (int i = 0; i < PQntuples(locked); i++)
            gh_pg_array_text(&held, PQgetvalue(locked, i, 0), (size_t)PQgetlength(locked, i, 0));
        if ((held_list = gh_pg_array_end(&held)) == NULL)
            rc = gh_err_set(err, NULL, 0, 0, "store: out of memory");
    }
    if (rc == GH_OK) rc = gh_pg__run(&tx, GH_PG_HOOK_EP_LOCK_ROWS, &l, NULL, err);
    if (rc == GH_OK && gone.n > 0) {
        gh_pg__arg_i64(&g, now);
        gh_pg__arg(&g, gone_list);
        gh_pg__arg_i64(&g, lease);
        rc = disable_run(&tx, GH_PG_HOOK_EP_GONE, &g, now, held_list, &by_gone, err);
    }
    if (rc == GH_OK && PQntuples(due) > 0) {
        gh_pg__arg_i64(&d, now);
        gh_pg__arg_i64(&d, cutoff);
        gh_pg__arg(&d, list);
        gh_pg__arg_i64(&d, lease);
        rc = disable_run(&tx, GH_PG_HOOK_EP_DISABLE, &d, now, held_list, &by_failing, err);
    }
out:
    PQclear(due);
    PQclear(locked);
    rc = gh_pg__end(&tx, rc, err);
    if (rc == GH_OK) {
        report(by_gone, "gone", lease, cb, arg);
        report(by_failing, "failing", lease, cb, arg);
    }
    PQclear(by_gone);
    PQclear(by_failing);
    gh_pg_array_free(&ids);
    gh_pg_array_free(&gone);
    gh_pg_array_free(&held);
    return rc;
}

/* Disables the endpoints of outcomes marked gone (410), then those failing
 * since before <cutoff>, 64 a transaction; their pending deliveries fail. */
static int disable_endpoints(struct gh_pg_store *s, const struct gh_store_hook_outcome *o,
                             size_t no, int64_t now, int64_t cutoff, gh_store_hook_disabled_cb cb,
                             void *arg, struct gh_err *err)
{
    bool more = false;
    int rc = disable_some(s, o, no, now, cutoff, cb, arg, &more, err);

    while (rc == GH_OK && more)
        rc = disable_some(s, NULL, 0, now, cutoff, cb, arg, &more, err);
    return rc;
}

int gh_pg__hook_record(struct gh_store *st, const char *owner,
                       const struct gh_store_hook_outcome *o, size_t n, int64_t now,
                       int64_t disable_after_ms, gh_store_hook_disabled_cb cb, void *arg,
                       struct gh_err *err)
{
    struct gh_pg_tx tx;
    struct gh_err derr = {0};
    size_t *order = gh_pg__order(o, n, sizeof(*o), outcome_cmp);
    int rc;

    if (order == NULL) return gh_err_set(err, NULL, 0, 0, "store: out of memory");
    rc = gh_pg__begin(gh_pg__of(st), GH_PG_OPERATOR, NULL, false, &tx, err);
    if (rc != GH_OK) {
        free(order);
        return rc;
    }
    /* Each node's deliveries are its own claims, but a lease that ran out
     * lets another node take one: the deliveries are written in id order,
     * the endpoints' rows (which do meet) in theirs (record_health). */
    for (size_t i = 0; rc == GH_OK && i < n; i++)
        rc = record_one(&tx, owner, &o[order[i]], now, err);
    free(order);
    if (rc == GH_OK) rc = record_health(&tx, o, n, now, err);
    rc = gh_pg__end(&tx, rc, err);
    if (rc != GH_OK || n == 0) return rc;
    /* Disabling takes other nodes' deliveries: in transactions of its own,
     * which hold no endpoint row when they lock them (disable_some). The
     * outcomes are stored whatever it answers, and their claims released:
     * recording the batch again would release claims this process made of
     * the same deliveries since, so a failure here is logged, not returned.
     * The next batch disables what is due by then; an endpoint that answered
     * 410 answers it again at its next delivery. */
    if (disable_endpoints(gh_pg__of(st), o, n, now, now - disable_after_ms, cb, arg, &derr) !=
        GH_OK)
        gh_log_warn("webhooks: outcomes stored, but disabling endpoints failed (the next batch "
                    "tries again): %s",
                    derr.msg);
    return GH_OK;
}

/* ---- Reads ---------------------------------------------------------------------- */

/* Fills <d> from the 12 columns of HOOK_DLV_COLS in row <row>. */
static int delivery_row(const PGresult *r, int row, struct gh_store_hook_delivery *d,
                        struct gh_err *err)
{
    char status[16];

    memset(d, 0, sizeof(*d));
    if (gh_pg__text(r, row, 1, d->endpoint_id, sizeof(d->endpoint_id), err) != GH_OK ||
        gh_pg__text(r, row, 2, d->msg_id, sizeof(d->msg_id), err) != GH_OK ||
        gh_pg__text(r, row, 3, d->type, sizeof(d->type), err) != GH_OK ||
        gh_pg__text(r, row, 4, status, sizeof(status), err) != GH_OK ||
        gh_pg__text(r, row, 8, d->last_error, sizeof(d->last_error), err) != GH_OK)
        return GH_ERROR;
    d->id = gh_pg__i64(r, row, 0);
    d->status = gh_store_delivery_status_parse(status);
    d->attempts = (unsigned)gh_pg__i64(r, row, 5);
    d->next_attempt_at = d->status == GH_STORE_DELIVERY_PENDING ? gh_pg__i64(r, row, 6) : 0;
    d->last_status = (long)gh_pg__i64(r, row, 7);
    d->created_at = gh_pg__i64(r, row, 9);
    d->updated_at = gh_pg__i64(r, row, 10);
    d->paused = d->status == GH_STORE_DELIVERY_PENDING && PQgetvalue(r, row, 11)[0] == 't';
    return GH_OK;
}

int gh_pg__hook_delivery_list(struct gh_store *st, const char *tenant_id, const char *endpoint_id,
                              enum gh_store_delivery_status status, int64_t after_id, size_t limit,
                              struct gh_store_hook_delivery *out, size_t *count, bool *more,
                              struct gh_err *err)
{
    struct gh_pg_args a = {0};
    struct gh_pg_tx tx;
    PGresult *r = NULL;
    bool any = status == GH_STORE_DELIVERY_ANY;
    int rc = gh_pg__begin(gh_pg__of(st), GH_PG_TENANT, tenant_id, false, &tx, err);

    *count = 0;
    *more = false;
    if (rc != GH_OK) return rc;
    gh_pg__arg(&a, tenant_id);
    gh_pg__arg(&a, endpoint_id);
    gh_pg__arg_i64(&a, after_id);
    gh_pg__arg(&a, any ? NULL : gh_store_delivery_status_name(status));
    gh_pg__arg_i64(&a, (int64_t)limit + 1);
    rc = gh_pg__run(&tx, any ? GH_PG_HOOK_DLV_LIST : GH_PG_HOOK_DLV_LIST_STATUS, &a, &r, err);
    for (int i = 0; rc == GH_OK && i < PQntuples(r); i++) {
        if (*count == limit) {
            *more = true;
            break;
        }
        rc = delivery_row(r, i, &out[*count], err);
        if (rc == GH_OK) (*count)++;
    }
    PQclear(r);
    return gh_pg__end(&tx, rc, err);
}

int gh_pg__hook_delivery_get(struct gh_store *st, const char *tenant_id, const char *endpoint_id,
                             int64_t id, struct gh_store_hook_delivery *out,
                             struct gh_store_hook_attempt *attempts, size_t max, size_t *nattempts,
                             struct gh_err *err)
{
    struct gh_pg_args a = {0}, b = {0};
    struct gh_pg_tx tx;
    PGresult *r = NULL;
    int rc;

    *nattempts = 0;
    /* One snapshot: the delivery and its attempts agree. */
    rc = gh_pg__begin(gh_pg__of(st), GH_PG_TENANT, tenant_id, true, &tx, err);
    if (rc != GH_OK) return rc;
    gh_pg__arg(&a, tenant_id);
    gh_pg__arg(&a, endpoint_id);
    gh_pg__arg_i64(&a, id);
    rc = gh_pg__run(&tx, GH_PG_HOOK_DLV_GET, &a, &r, err);
    if (rc == GH_OK && PQntuples(r) == 0) {
        gh_err_set(err, NULL, 0, 0, "delivery not found");
        rc = GH_STORE_NOT_FOUND;
    }
    if (rc == GH_OK) rc = delivery_row(r, 0, out, err);
    PQclear(r);
    r = NULL;
    if (rc == GH_OK && max > 0) {
        gh_pg__arg_i64(&b, id);
        gh_pg__arg_i64(&b, (int64_t)max);
        rc = gh_pg__run(&tx, GH_PG_HOOK_ATTEMPTS, &b, &r, err);
        for (int i = 0; rc == GH_OK && i < PQntuples(r) && *nattempts < max; i++) {
            struct gh_store_hook_attempt *at = &attempts[*nattempts];
            memset(at, 0, sizeof(*at));
            at->at = gh_pg__i64(r, i, 0);
            at->status = (long)gh_pg__i64(r, i, 1);
            at->latency_ms = gh_pg__i64(r, i, 3);
            rc = gh_pg__text(r, i, 2, at->error, sizeof(at->error), err);
            if (rc == GH_OK) rc = gh_pg__text(r, i, 4, at->snippet, sizeof(at->snippet), err);
            if (rc == GH_OK) (*nattempts)++;
        }
        PQclear(r);
    }
    return gh_pg__end_lookup(&tx, rc, err);
}

int gh_pg__hook_delivery_replay(struct gh_store *st, const char *tenant_id, const char *endpoint_id,
                                int64_t id, int64_t now, struct gh_err *err)
{
    struct gh_pg_args a = {0}, k = {0};
    struct gh_pg_tx tx;
    PGresult *r = NULL;
    int rc = gh_pg__begin(gh_pg__of(st), GH_PG_TENANT, tenant_id, false, &tx, err);

    if (rc != GH_OK) return rc;
    gh_pg__arg(&a, tenant_id);
    gh_pg__arg(&a, endpoint_id);
    gh_pg__arg_i64(&a, id);
    /* The endpoint's lock: a status change cannot cross the replay's
     * reading of it (the delivery is paused while the endpoint is
     * disabled: pause_deliveries). */
    gh_pg__arg(&k, endpoint_id);
    rc = gh_pg__run(&tx, GH_PG_HOOK_EP_STATUS_LOCK, &k, NULL, err);
    /* FOR UPDATE: an outcome recorded meanwhile cannot slip between the
     * check and the replay. */
    if (rc == GH_OK) rc = gh_pg__run(&tx, GH_PG_HOOK_DLV_STATUS, &a, &r, err);
    if (rc == GH_OK && PQntuples(r) == 0) {
        gh_err_set(err, NULL, 0, 0, "delivery not found");
        rc = GH_STORE_NOT_FOUND;
    }
    if (rc == GH_OK && strcmp(PQgetvalue(r, 0, 0), "pending") == 0) {
        gh_err_set(err, NULL, 0, 0, "the delivery is still pending");
        rc = GH_STORE_CONFLICT;
    }
    PQclear(r);
    if (rc == GH_OK) {
        gh_pg__arg_i64(&a, now);
        rc = gh_pg__run(&tx, GH_PG_HOOK_REPLAY, &a, NULL, err);
    }
    return gh_pg__end(&tx, rc, err);
}

int gh_pg__hook_reports_claim(struct gh_store *st, int64_t now, gh_store_hook_disabled_cb cb,
                              void *arg, struct gh_err *err)
{
    const int64_t lease = now + GH_STORE_HOOK_REPORT_LEASE_MS;
    struct gh_pg_args a = {0};
    struct gh_pg_tx tx;
    PGresult *r = NULL;
    int rc = gh_pg__begin(gh_pg__of(st), GH_PG_OPERATOR, NULL, false, &tx, err);

    if (rc != GH_OK) return rc;
    gh_pg__arg_i64(&a, now);
    gh_pg__arg_i64(&a, lease);
    gh_pg__arg_i64(&a, GH_STORE_HOOK_REPORTS_MAX);
    rc = gh_pg__run(&tx, GH_PG_HOOK_REPORTS_CLAIM, &a, &r, err);
    rc = gh_pg__end(&tx, rc, err);
    /* Reported once committed: an answer lost after the commit leaves
     * them leased until GH_STORE_HOOK_REPORT_LEASE_MS, then due again. */
    for (int i = 0; rc == GH_OK && i < PQntuples(r); i++)
        cb(PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
           strcmp(PQgetvalue(r, i, 2), "gone") == 0 ? "gone" : "failing", lease, arg);
    PQclear(r);
    return rc;
}

int gh_pg__hook_reports_done(struct gh_store *st, const struct gh_store_hook_report *r, size_t n,
                             struct gh_err *err)
{
    struct gh_pg_array ids = {0}, leases = {0};
    struct gh_pg_args a = {0};
    struct gh_pg_tx tx;
    const char *id_list, *lease_list;
    char num[24];
    int rc;

    gh_pg_array_reset(&ids);
    gh_pg_array_reset(&leases);
    for (size_t i = 0; i < n; i++) {
        gh_pg_array_text(&ids, r[i].endpoint_id, strlen(r[i].endpoint_id));
        snprintf(num, sizeof(num), "%lld", (long long)r[i].lease);
        gh_pg_array_text(&leases, num, strlen(num));
    }
    id_list = gh_pg_array_end(&ids);
    lease_list = gh_pg_array_end(&leases);
    if (id_list == NULL || lease_list == NULL) {
        rc = gh_err_set(err, NULL, 0, 0, "store: out of memory");
        goto out;
    }
    rc = gh_pg__begin(gh_pg__of(st), GH_PG_OPERATOR, NULL, false, &tx, err);
    if (rc == GH_OK) {
        gh_pg__arg(&a, id_list);
        gh_pg__arg(&a, lease_list);
        rc = gh_pg__run(&tx, GH_PG_HOOK_REPORTS_DONE, &a, NULL, err);
        rc = gh_pg__end(&tx, rc, err);
    }
out:
    gh_pg_array_free(&ids);
    gh_pg_array_free(&leases);
    return rc;
}

int gh_pg__hook_resume_stray(struct gh_store *st, size_t limit, uint64_t *resumed,
                             struct gh_err *err)
{
    struct gh_pg_args a = {0};
    struct gh_pg_tx tx;
    PGresult *r = NULL;
    int rc = gh_pg__begin(gh_pg__of(st), GH_PG_OPERATOR, NULL, false, &tx, err);

    *resumed = 0;
    if (rc != GH_OK) return rc;
    gh_pg__arg_i64(&a, (int64_t)limit);
    rc = gh_pg__run(&tx, GH_PG_HOOK_DLV_RESUME_STRAY, &a, &r, err);
    if (rc == GH_OK && PQntuples(r) == 1) *resumed = (uint64_t)gh_pg__i64(r, 0, 0);
    PQclear(r);
    rc = gh_pg__end(&tx, rc, err);
    if (rc != GH_OK) *resumed = 0;
    return rc;
}

int gh_pg__hook_pending_count(struct gh_store *st, uint64_t *count, struct gh_err *err)
{
    struct gh_pg_tx tx;
    PGresult *r = NULL;
    int rc = gh_pg__begin(gh_pg__of(st), GH_PG_OPERATOR, NULL, false, &tx, err);

    if (rc != GH_OK) return rc;
    rc = gh_pg__run(&tx, GH_PG_HOOK_PENDING, NULL, &r, err);
    if (rc == GH_OK && PQntuples(r) != 1)
        rc = gh_err_set(err, NULL, 0, 0, "store: pending deliveries: no count");
    if (rc == GH_OK) *count = (uint64_t)gh_pg__i64(r, 0, 0);
    PQclear(r);
    return gh_pg__end(&tx, rc, err);
}

/* ---- Retention ------------------------------------------------------------------ */

int gh_pg__hook_purge(struct gh_store *st, const char *owner, int64_t after_seq, int64_t cutoff,
                      int64_t now, size_t limit, struct gh_store_hook_purged *out,
                      struct gh_err *err)
{
    struct gh_pg_args a = {0}, b = {0}, c = {0}, d = {0};
    struct gh_pg_array old = {0};
    struct gh_pg_tx tx;
    PGresult *scan = NULL, *locked = NULL, *keep = NULL, *gone = NULL;
    const char *old_lit, *doomed;
    size_t nold = 0, ahead = 0;
    int last = -1, rc;

    (void)owner; /* a claim is in flight while its lease runs, whoever holds it */
    if (limit > GH_STORE_HOOK_PURGE_MAX) limit = GH_STORE_HOOK_PURGE_MAX;
    rc = gh_pg__begin(gh_pg__of(st), GH_PG_OPERATOR, NULL, false, &tx, err);
    if (rc != GH_OK) return rc;
    gh_pg__arg_i64(&a, after_seq);
    gh_pg__arg_i64(&a, (int64_t)limit);
    rc = gh_pg__run(&tx, GH_PG_HOOK_PURGE_SCAN, &a, &scan, err);
    if (rc != GH_OK) goto out;
    gh_pg_array_reset(&old);
    for (int i = 0; i < PQntuples(scan); i++) {
        int64_t created = gh_pg__i64(scan, i, 1);
        /* Young: passed over, the next pass sees it. Created after now (a
         * node whose clock runs ahead): no sign that the rest are young. */
        if (created >= cutoff) {
            ahead += created > now;
            continue;
        }
        gh_pg_array_i64(&old, gh_pg__i64(scan, i, 0));
        nold++;
    }
    last = PQntuples(scan) - 1;
    out->more = (nold > 0 || ahead > 0) && (size_t)PQntuples(scan) == limit;
    if (nold == 0) goto out;
    old_lit = gh_pg_array_end(&old);
    if (old_lit == NULL) {
        rc = gh_err_set(err, NULL, 0, 0, "store: out of memory");
        goto out;
    }
    gh_pg__arg(&b, old_lit);
    rc = gh_pg__run(&tx, GH_PG_HOOK_PURGE_LOCK, &b, &locked, err);
    if (rc != GH_OK || PQntuples(locked) == 0) goto out;
    gh_pg_array_reset(&old);
    for (int i = 0; i < PQntuples(locked); i++)
        gh_pg_array_i64(&old, gh_pg__i64(locked, i, 0));
    old_lit = gh_pg_array_end(&old);
    if (old_lit == NULL) {
        rc = gh_err_set(err, NULL, 0, 0, "store: out of memory");
        goto out;
    }
    gh_pg__arg(&c, old_lit);
    gh_pg__arg_i64(&c, now);
    gh_pg__arg_i64(&c, cutoff);
    rc = gh_pg__run(&tx, GH_PG_HOOK_PURGE_KEEP, &c, &keep, err);
    if (rc != GH_OK) goto out;
    /* <c> is done with: <old> now collects the messages that go. */
    gh_pg_array_reset(&old);
    for (int i = 0; i < PQntuples(keep); i++) {
        if (strcmp(PQgetvalue(keep, i, 1), "t") == 0)
            out->kept++;
        else
            gh_pg_array_i64(&old, gh_pg__i64(keep, i, 0));
    }
    if (old.n == 0) goto out;
    doomed = gh_pg_array_end(&old);
    if (doomed == NULL) {
        rc = gh_err_set(err, NULL, 0, 0, "store: out of memory");
        goto out;
    }
    gh_pg__arg(&d, doomed);
    rc = gh_pg__run(&tx, GH_PG_HOOK_PURGE_ATTEMPTS, &d, &gone, err);
    if (rc != GH_OK) goto out;
    out->attempts = strtoull(PQcmdTuples(gone), NULL, 10);
    PQclear(gone);
    gone = NULL;
    rc = gh_pg__run(&tx, GH_PG_HOOK_PURGE_DELIVERIES, &d, &gone, err);
    if (rc != GH_OK) goto out;
    if (PQntuples(gone) == 1) {
        out->deliveries = (uint64_t)gh_pg__i64(gone, 0, 0);
        out->undelivered = (uint64_t)gh_pg__i64(gone, 0, 1);
    }
    PQclear(gone);
    gone = NULL;
    rc = gh_pg__run(&tx, GH_PG_HOOK_PURGE_MESSAGES, &d, &gone, err);
    if (rc == GH_OK) out->messages = strtoull(PQcmdTuples(gone), NULL, 10);
out:
    /* Past every message looked at: those another node's purge held are
     * its own to delete, and kept and young ones wait for the next pass. */
    if (rc == GH_OK && last >= 0) out->last_seq = gh_pg__i64(scan, last, 0);
    PQclear(scan);
    PQclear(locked);
    PQclear(keep);
    PQclear(gone);
    gh_pg_array_free(&old);
    rc = gh_pg__end(&tx, rc, err);
    if (rc != GH_OK) { /* rolled back: nothing was deleted, and the cursor stays */
        memset(out, 0, sizeof(*out));
        out->last_seq = after_seq;
    }
    return rc;
}
