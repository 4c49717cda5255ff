/* Webhook endpoints, messages, deliveries and attempts in the SQLite store:
 * the endpoint rows, the one-transaction publish (a message and all its
 * deliveries), the dispatcher's claims and batched outcomes, and the reads
 * of the admin API. Input arrives validated by the gh_store_hook_*
 * wrappers (store_webhooks.c). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/sqlite_int.h"
#include "store/store_int.h"

static const char *dlv_status_sql(enum gh_store_delivery_status s)
{
    return gh_store_delivery_status_name(s);
}

/* ---- Endpoints -------------------------------------------------------------- */

/* Fills <e> from the 16 columns of HOOK_EP_COLS. */
static int endpoint_row(sqlite3_stmt *s, struct gh_store_hook_endpoint *e, struct gh_err *err)
{
    char signing[16], status[16];
    const char *events = (const char *)sqlite3_column_text(s, 4);

    memset(e, 0, sizeof(*e));
    if (gh_sqlite__col_text(s, 0, e->id, sizeof(e->id), err) != GH_OK ||
        gh_sqlite__col_text(s, 1, e->tenant_id, sizeof(e->tenant_id), err) != GH_OK ||
        gh_sqlite__col_text(s, 2, e->url, sizeof(e->url), err) != GH_OK ||
        gh_sqlite__col_text(s, 3, e->description, sizeof(e->description), err) != GH_OK ||
        gh_sqlite__col_text(s, 5, signing, sizeof(signing), err) != GH_OK ||
        gh_sqlite__col_text(s, 6, e->public_key, sizeof(e->public_key), err) != GH_OK ||
        gh_sqlite__col_text(s, 10, status, sizeof(status), err) != GH_OK ||
        gh_sqlite__col_text(s, 12, e->disabled_reason, sizeof(e->disabled_reason), err) != GH_OK)
        return GH_ERROR;
    if (gh_store__events_decode(events ? events : "", e->events, &e->nevents, err) != GH_OK)
        return GH_ERROR;
    e->ed25519 = strcmp(signing, "ed25519") == 0;
    e->secret_version = (uint32_t)sqlite3_column_int64(s, 7);
    e->prev_version = (uint32_t)sqlite3_column_int64(s, 8);
    e->prev_until = sqlite3_column_int64(s, 9);
    e->status = strcmp(status, "active") == 0 ? GH_STORE_HOOK_ACTIVE : GH_STORE_HOOK_DISABLED;
    e->failing_since = sqlite3_column_int64(s, 11);
    e->created_at = sqlite3_column_int64(s, 13);
    e->updated_at = sqlite3_column_int64(s, 14);
    e->rev = sqlite3_column_int64(s, 15);
    return GH_OK;
}

/* Binds the 16 columns of HOOK_EP_COLS as ?1..?16 (for an update, ?16 is
 * the revision it applies to). */
static int endpoint_bind(sqlite3_stmt *s, const struct gh_store_hook_endpoint *e,
                         struct gh_err *err)
{
    char *events = gh_store__events_encode(e);

    if (events == NULL) return gh_err_set(err, NULL, 0, 0, "store: out of memory");
    gh_sqlite__bind_text(s, 1, e->id);
    gh_sqlite__bind_text(s, 2, e->tenant_id);
    gh_sqlite__bind_text(s, 3, e->url);
    gh_sqlite__bind_text(s, 4, e->description);
    gh_sqlite__bind_text(s, 5, events);
    gh_sqlite__bind_text(s, 6, e->ed25519 ? "ed25519" : "hmac");
    gh_sqlite__bind_text(s, 7, e->public_key);
    sqlite3_bind_int64(s, 8, e->secret_version);
    sqlite3_bind_int64(s, 9, e->prev_version);
    sqlite3_bind_int64(s, 10, e->prev_until);
    gh_sqlite__bind_text(s, 11, e->status == GH_STORE_HOOK_DISABLED ? "disabled" : "active");
    sqlite3_bind_int64(s, 12, e->failing_since);
    gh_sqlite__bind_text(s, 13, e->disabled_reason);
    sqlite3_bind_int64(s, 14, e->created_at);
    sqlite3_bind_int64(s, 15, e->updated_at);
    sqlite3_bind_int64(s, 16, e->rev);
    free(events);
    return GH_OK;
}

static int tenant_exists(struct gh_sqlite_conn *c, const char *tenant_id, struct gh_err *err)
{
    sqlite3_stmt *s = gh_sqlite__stmt(c, GH_SQ_TENANT_GET, err);
    int rc;

    if (s == NULL) return GH_ERROR;
    gh_sqlite__bind_text(s, 1, tenant_id);
    rc = gh_sqlite__row(c, s, "tenant", err);
    if (rc == GH_OK) gh_sqlite__done(s);
    if (rc == GH_STORE_NOT_FOUND) gh_err_set(err, NULL, 0, 0, "tenant not found");
    return rc;
}

int gh_sqlite__hook_endpoint_insert(struct gh_store *st, const struct gh_store_hook_endpoint *e,
                                    struct gh_err *err)
{
    struct gh_sqlite_store *ss = gh_sqlite__of(st);
    struct gh_sqlite_conn *c = &ss->writer;
    sqlite3_stmt *s;
    int rc = gh_sqlite__write_begin(ss, err);

    if (rc != GH_OK) return rc;
    rc = tenant_exists(c, e->tenant_id, err);
    if (rc != GH_OK) goto out;
    s = gh_sqlite__stmt(c, GH_SQ_HOOK_EP_INSERT, err);
    rc = s ? endpoint_bind(s, e, err) : GH_ERROR;
    if (rc == GH_OK) rc = gh_sqlite__conflict(c, gh_sqlite__exec(c, s, "webhook endpoint", err));
out:
    return gh_sqlite__write_end(ss, rc, err);
}

int gh_sqlite__hook_endpoint_get(struct gh_store *st, const char *tenant_id, const char *id,
                                 struct gh_store_hook_endpoint *out, struct gh_err *err)
{
    struct gh_sqlite_conn *c = gh_sqlite__read_acquire(gh_sqlite__of(st));
    sqlite3_stmt *s = gh_sqlite__stmt(c, GH_SQ_HOOK_EP_GET, err);
    int rc = GH_ERROR;

    if (s == NULL) goto out;
    gh_sqlite__bind_text(s, 1, tenant_id);
    gh_sqlite__bind_text(s, 2, id);
    rc = gh_sqlite__row(c, s, "webhook endpoint", err);
    if (rc == GH_STORE_NOT_FOUND) gh_store__hook_endpoint_missing(err);
    if (rc != GH_OK) goto out;
    rc = endpoint_row(s, out, err);
    gh_sqlite__done(s);
out:
    gh_sqlite__read_release(c);
    return rc;
}

int gh_sqlite__hook_endpoint_list(struct gh_store *st, const char *tenant_id,
                                  const struct gh_store_keyset *after, size_t limit,
                                  struct gh_store_hook_endpoint *out, size_t *count, bool *more,
                                  struct gh_err *err)
{
    struct gh_sqlite_conn *c = gh_sqlite__read_acquire(gh_sqlite__of(st));
    sqlite3_stmt *s = gh_sqlite__stmt(c, GH_SQ_HOOK_EP_LIST, err);
    int rc = GH_OK, step = SQLITE_DONE;

    *count = 0;
    *more = false;
    if (s == NULL) {
        rc = GH_ERROR;
        goto out;
    }
    gh_sqlite__bind_text(s, 1, tenant_id);
    sqlite3_bind_int64(s, 2, after ? after->created_at : INT64_MIN);
    gh_sqlite__bind_text(s, 3, after ? after->id : "");
    sqlite3_bind_int64(s, 4, (int64_t)limit + 1); /* one more row: is there a next page? */
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        if (*count == limit) {
            *more = true;
            break;
        }
        rc = endpoint_row(s, &out[*count], err);
        if (rc != GH_OK) break;
        (*count)++;
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE) rc = gh_sqlite__fail(c, "webhook list", err);
    gh_sqlite__done(s);
out:
    gh_sqlite__read_release(c);
    return rc;
}

/* Reads the status and revision of endpoint <e> in the write transaction:
 * CONFLICT when the row is no longer at the revision the caller read
 * (e->rev), NOT_FOUND. Then pauses its pending deliveries when the status
 * changes to disabled; resumes its paused ones whenever it is set active
 * (whatever the status was: an older gatehouse may have enabled it
 * without resuming them). A paused delivery is out of the claim's reach
 * (GH_SQ_HOOK_DUE), so a disabled endpoint's backlog costs no claim
 * anything. */
static int pause_deliveries(struct gh_sqlite_conn *c, const struct gh_store_hook_endpoint *e,
                            struct gh_err *err)
{
    sqlite3_stmt *s = gh_sqlite__stmt(c, GH_SQ_HOOK_EP_STATUS, err);
    bool disabled;
    int rc;

    if (s == NULL) return GH_ERROR;
    gh_sqlite__bind_text(s, 1, e->tenant_id);
    gh_sqlite__bind_text(s, 2, e->id);
    rc = gh_sqlite__row(c, s, "webhook status", err);
    if (rc == GH_STORE_NOT_FOUND) return gh_store__hook_endpoint_missing(err);
    if (rc != GH_OK) return rc;
    disabled = strcmp((const char *)sqlite3_column_text(s, 0), "disabled") == 0;
    rc = sqlite3_column_int64(s, 1) == e->rev ? GH_OK : gh_store__hook_endpoint_changed(err);
    gh_sqlite__done(s);
    if (rc != GH_OK || (e->status == GH_STORE_HOOK_DISABLED && disabled)) return rc;
    s = gh_sqlite__stmt(
        c, e->status == GH_STORE_HOOK_DISABLED ? GH_SQ_HOOK_DLV_PAUSE : GH_SQ_HOOK_DLV_RESUME, err);
    if (s == NULL) return GH_ERROR;
    gh_sqlite__bind_text(s, 1, e->id);
    return gh_sqlite__exec(c, s, "webhook deliveries pause", err);
}

int gh_sqlite__hook_endpoint_update(struct gh_store *st, struct gh_store_hook_endpoint *e,
                                    struct gh_err *err)
{
    struct gh_sqlite_store *ss = gh_sqlite__of(st);
    struct gh_sqlite_conn *c = &ss->writer;
    sqlite3_stmt *s;
    int64_t rev = 0;
    int rc = gh_sqlite__write_begin(ss, err);

    if (rc != GH_OK) return rc;
    rc = pause_deliveries(c, e, err);
    if (rc != GH_OK) return gh_sqlite__write_end(ss, rc, err);
    s = gh_sqlite__stmt(c, GH_SQ_HOOK_EP_UPDATE, err);
    rc = s ? endpoint_bind(s, e, err) : GH_ERROR;
    if (rc == GH_OK) {
        /* In the write transaction that read the revision: the row is the
         * one just read. */
        rc = gh_sqlite__row(c, s, "webhook update", err);
        if (rc == GH_OK) rev = sqlite3_column_int64(s, 0);
        if (rc == GH_OK) gh_sqlite__done(s);
        if (rc == GH_STORE_NOT_FOUND) rc = gh_store__hook_endpoint_changed(err);
    }
    rc = gh_sqlite__write_end(ss, rc, err);
    if (rc == GH_OK) e->rev = rev;
    return rc;
}

int gh_sqlite__hook_endpoint_delete(struct gh_store *st, const char *tenant_id, const char *id,
                                    struct gh_store_hook_endpoint *gone, struct gh_err *err)
{
    struct gh_sqlite_store *ss = gh_sqlite__of(st);
    struct gh_sqlite_conn *c = &ss->writer;
    sqlite3_stmt *s;
    int rc = gh_sqlite__write_begin(ss, err);

    if (rc != GH_OK) return rc;
    s = gh_sqlite__stmt(c, GH_SQ_HOOK_EP_DELETE, err);
    if (s == NULL) {
        rc = GH_ERROR;
        goto out;
    }
    gh_sqlite__bind_text(s, 1, tenant_id);
    gh_sqlite__bind_text(s, 2, id);
    rc = gh_sqlite__row(c, s, "webhook delete", err);
    if (rc == GH_STORE_NOT_FOUND) gh_store__hook_endpoint_missing(err);
    if (rc != GH_OK) goto out;
    rc = endpoint_row(s, gone, err);
    gh_sqlite__done(s);
    if (rc != GH_OK) goto out;
    /* The endpoint row is gone: its deliveries and attempts go with it, in
     * the same transaction (the messages stay for other endpoints). */
    for (int k = 0; k < 2 && rc == GH_OK; k++) {
        s = gh_sqlite__stmt(c, k == 0 ? GH_SQ_HOOK_EP_DEL_ATTEMPTS : GH_SQ_HOOK_EP_DEL_DELIVERIES,
                            err);
        if (s == NULL) {
            rc = GH_ERROR;
            break;
        }
        gh_sqlite__bind_text(s, 1, id);
        rc = gh_sqlite__exec(c, s, "webhook delete", err);
    }
out:
    return gh_sqlite__write_end(ss, rc, err);
}

/* ---- Publish ------------------------------------------------------------------ */

/* The message with <msg_id> of <tenant_id>, if any: *found and *seq. */
static int message_find(struct gh_sqlite_conn *c, const char *tenant_id, const char *msg_id,
                        bool *found, int64_t *seq, struct gh_err *err)
{
    sqlite3_stmt *s = gh_sqlite__stmt(c, GH_SQ_HOOK_MSG_FIND, err);
    int rc;

    *found = false;
    if (s == NULL) return GH_ERROR;
    gh_sqlite__bind_text(s, 1, tenant_id);
    gh_sqlite__bind_text(s, 2, msg_id);
    rc = gh_sqlite__row(c, s, "webhook message", err);
    if (rc == GH_STORE_NOT_FOUND) return GH_OK;
    if (rc != GH_OK) return rc;
    *found = true;
    *seq = sqlite3_column_int64(s, 0);
    gh_sqlite__done(s);
    return GH_OK;
}

/* Message <seq>'s delivery count, and CONFLICT when its type or payload
 * differ from the ones published again under its id (see pg_webhooks.c). */
static int message_count(struct gh_sqlite_conn *c, int64_t seq, const char *msg_id,
                         const char *type, const char *payload, size_t payload_len, size_t *n,
                         struct gh_err *err)
{
    sqlite3_stmt *s = gh_sqlite__stmt(c, GH_SQ_HOOK_MSG_COUNT, err);
    bool same;
    int rc;

    if (s == NULL) return GH_ERROR;
    sqlite3_bind_int64(s, 1, seq);
    gh_sqlite__bind_text(s, 2, type);
    sqlite3_bind_text(s, 3, payload, (int)payload_len, SQLITE_TRANSIENT);
    rc = gh_sqlite__row(c, s, "webhook message", err);
    if (rc != GH_OK) return rc == GH_STORE_NOT_FOUND ? GH_ERROR : rc;
    *n = (size_t)sqlite3_column_int64(s, 0);
    same = sqlite3_column_int(s, 1) == 1;
    gh_sqlite__done(s);
    return same ? GH_OK : gh_store__hook_message_reused(msg_id, err);
}

int gh_sqlite__hook_publish(struct gh_store *st, const char *tenant_id, const char *msg_id,
                            const char *type, const char *payload, size_t payload_len, int64_t now,
                            int64_t due, size_t *deliveries, bool *duplicate, struct gh_err *err)
{
    struct gh_sqlite_store *ss = gh_sqlite__of(st);
    struct gh_sqlite_conn *c = &ss->writer;
    sqlite3_stmt *s, *ins;
    int64_t seq = 0;
    bool found;
    int rc, step;

    *deliveries = 0;
    *duplicate = false;
    rc = gh_sqlite__write_begin(ss, err);
    if (rc != GH_OK) return rc;
    rc = message_find(c, tenant_id, msg_id, &found, &seq, err);
    if (rc != GH_OK) goto out;
    if (found) {
        *duplicate = true;
        rc = message_count(c, seq, msg_id, type, payload, payload_len, deliveries, err);
        goto out;
    }
    s = gh_sqlite__stmt(c, GH_SQ_HOOK_MSG_INSERT, err);
    if (s == NULL) {
        rc = GH_ERROR;
        goto out;
    }
    gh_sqlite__bind_text(s, 1, msg_id);
    gh_sqlite__bind_text(s, 2, tenant_id);
    gh_sqlite__bind_text(s, 3, type);
    sqlite3_bind_text(s, 4, payload, (int)payload_len, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 5, now);
    rc = gh_sqlite__row(c, s, "webhook message", err);
    if (rc != GH_OK) {
        if (rc == GH_STORE_NOT_FOUND) rc = GH_ERROR;
        goto out;
    }
    seq = sqlite3_column_int64(s, 0);
    gh_sqlite__done(s);

    /* Each active endpoint of the tenant that subscribes to <type> gets a
     * delivery. Both statements run on the writer, inside this
     * transaction: the message and its deliveries commit together. */
    s = gh_sqlite__stmt(c, GH_SQ_HOOK_EP_SUBSCRIBED, err);
    ins = gh_sqlite__stmt(c, GH_SQ_HOOK_DLV_INSERT, err);
    if (s == NULL || ins == NULL) {
        rc = GH_ERROR;
        goto out;
    }
    gh_sqlite__bind_text(s, 1, tenant_id);
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        const char *events = (const char *)sqlite3_column_text(s, 1);
        if (events == NULL || !gh_store__events_match(events, type)) continue;
        sqlite3_bind_int64(ins, 1, seq);
        sqlite3_bind_text(ins, 2, (const char *)sqlite3_column_text(s, 0), -1, SQLITE_TRANSIENT);
        gh_sqlite__bind_text(ins, 3, tenant_id);
        sqlite3_bind_int64(ins, 4, due);
        sqlite3_bind_int64(ins, 5, now);
        rc = gh_sqlite__exec(c, ins, "webhook delivery", err);
        if (rc != GH_OK) break;
        (*deliveries)++;
    }
    if (rc == GH_OK && step != SQLITE_DONE) rc = gh_sqlite__fail(c, "webhook fan-out", err);
    gh_sqlite__done(s);
    if (rc == GH_OK && *deliveries > 0) {
        /* On the message's own page, written anyway in this transaction. */
        s = gh_sqlite__stmt(c, GH_SQ_HOOK_MSG_SET_COUNT, err);
        if (s == NULL) {
            rc = GH_ERROR;
            goto out;
        }
        sqlite3_bind_int64(s, 1, seq);
        sqlite3_bind_int64(s, 2, (int64_t)*deliveries);
        rc = gh_sqlite__exec(c, s, "webhook message", err);
    }
out:
    rc = gh_sqlite__write_end(ss, rc, err);
    if (rc != GH_OK) {
        *deliveries = 0;
        *duplicate = false;
    }
    return rc;
}

/* ---- Dispatcher ----------------------------------------------------------------- */

int gh_sqlite__hook_claim(struct gh_store *st, const char *owner, int64_t now, size_t limit,
                          gh_store_hook_due_cb cb, void *arg, struct gh_err *err)
{
    struct gh_sqlite_store *ss = gh_sqlite__of(st);
    struct gh_sqlite_conn *c = &ss->writer;
    sqlite3_stmt *s, *claim;
    int rc, step = SQLITE_DONE;

    rc = gh_sqlite__write_begin(ss, err);
    if (rc != GH_OK) return rc;
    s = gh_sqlite__stmt(c, GH_SQ_HOOK_DUE, err);
    claim = gh_sqlite__stmt(c, GH_SQ_HOOK_CLAIM, err);
    if (s == NULL || claim == NULL) {
        rc = GH_ERROR;
        goto out;
    }
    gh_sqlite__bind_text(s, 1, owner);
    sqlite3_bind_int64(s, 2, now);
    sqlite3_bind_int64(s, 3, (int64_t)limit);
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        struct gh_store_hook_due d;
        const char *signing = (const char *)sqlite3_column_text(s, 5);

        d.delivery_id = sqlite3_column_int64(s, 0);
        d.attempts = (unsigned)sqlite3_column_int64(s, 1);
        d.tenant_id = (const char *)sqlite3_column_text(s, 2);
        d.endpoint_id = (const char *)sqlite3_column_text(s, 3);
        d.url = (const char *)sqlite3_column_text(s, 4);
        d.ed25519 = signing && strcmp(signing, "ed25519") == 0;
        d.secret_version = (uint32_t)sqlite3_column_int64(s, 6);
        d.prev_version = (uint32_t)sqlite3_column_int64(s, 7);
        d.prev_until = sqlite3_column_int64(s, 8);
        d.msg_id = (const char *)sqlite3_column_text(s, 9);
        d.type = (const char *)sqlite3_column_text(s, 10);
        d.payload = (const char *)sqlite3_column_text(s, 11);
        d.payload_len = (size_t)sqlite3_column_bytes(s, 11);
        d.msg_created_at = sqlite3_column_int64(s, 12);
        if (d.tenant_id == NULL || d.endpoint_id == NULL || d.url == NULL || d.msg_id == NULL ||
            d.type == NULL || d.payload == NULL)
            continue; /* NULL columns: not a row the store wrote */
        gh_sqlite__bind_text(claim, 1, owner);
        sqlite3_bind_int64(claim, 2, d.delivery_id);
        rc = gh_sqlite__exec(c, claim, "webhook claim", err);
        if (rc != GH_OK) break;
        rc = cb(&d, arg);
        if (rc != GH_OK) break;
    }
    if (rc == GH_OK && step != SQLITE_ROW && step != SQLITE_DONE)
        rc = gh_sqlite__fail(c, "webhook claim", err);
    gh_sqlite__done(s);
out:
    return gh_sqlite__write_end(ss, rc, err);
}

/* The endpoint health last written in this batch, per endpoint: a batch
 * holds mostly outcomes of a few endpoints, and writing the same state again
 * changes nothing (failing_since keeps the first failure), so only changes
 * of state are written. */
#define HEALTH_SEEN 32
struct health {
    char endpoint[GH_STORE_HOOK_ID_SIZE];
    bool ok;
};
struct health_seen {
    struct health e[HEALTH_SEEN];
    size_t n;
};

/* True when the health of <endpoint> must be written (and notes it). */
static bool health_changes(struct health_seen *h, const char *endpoint, bool ok)
{
    for (size_t i = 0; i < h->n; i++) {
        if (strcmp(h->e[i].endpoint, endpoint) != 0) continue;
        if (h->e[i].ok == ok) return false;
        h->e[i].ok = ok;
        return true;
    }
    if (h->n < HEALTH_SEEN) {
        snprintf(h->e[h->n].endpoint, sizeof(h->e[h->n].endpoint), "%s", endpoint);
        h->e[h->n++].ok = ok;
    }
    return true;
}

static int record_one(struct gh_sqlite_conn *c, const struct gh_store_hook_outcome *o, int64_t now,
                      struct health_seen *seen, struct gh_err *err)
{
    sqlite3_stmt *a = gh_sqlite__stmt(c, GH_SQ_HOOK_ATTEMPT_INSERT, err);
    sqlite3_stmt *d = gh_sqlite__stmt(c, GH_SQ_HOOK_DLV_SET, err);
    bool ok = o->next == GH_STORE_DELIVERY_SUCCEEDED;
    sqlite3_stmt *e = gh_sqlite__stmt(c, ok ? GH_SQ_HOOK_EP_OK : GH_SQ_HOOK_EP_FAILING, err);
    int rc;

    if (a == NULL || d == NULL || e == NULL) return GH_ERROR;
    sqlite3_bind_int64(a, 1, o->delivery_id);
    sqlite3_bind_int64(a, 2, o->at);
    sqlite3_bind_int64(a, 3, o->status);
    gh_sqlite__bind_text(a, 4, o->error);
    sqlite3_bind_int64(a, 5, o->latency_ms);
    gh_sqlite__bind_text(a, 6, o->snippet);
    rc = gh_sqlite__exec(c, a, "webhook attempt", err);
    if (rc != GH_OK) return rc;
    sqlite3_bind_int64(d, 1, o->delivery_id);
    gh_sqlite__bind_text(d, 2, dlv_status_sql(o->next));
    sqlite3_bind_int64(d, 3, o->next == GH_STORE_DELIVERY_PENDING ? o->next_attempt_at : 0);
    sqlite3_bind_int64(d, 4, o->status);
    gh_sqlite__bind_text(d, 5, o->error);
    sqlite3_bind_int64(d, 6, now);
    rc = gh_sqlite__exec(c, d, "webhook delivery", err);
    if (rc != GH_OK || !health_changes(seen, o->endpoint_id, ok)) return rc;
    gh_sqlite__bind_text(e, 1, o->endpoint_id);
    if (!ok) sqlite3_bind_int64(e, 2, o->at > 0 ? o->at : now);
    return gh_sqlite__exec(c, e, "webhook endpoint health", err);
}

/* Runs disabling statement <s> (bound, its report leased until <lease>)
 * and, for each endpoint it disabled, fails its pending deliveries and
 * calls <cb>. Sets *n to how many. */
static int disable_run(struct gh_sqlite_conn *c, sqlite3_stmt *s, const char *reason, int64_t now,
                       int64_t lease, gh_store_hook_disabled_cb cb, void *arg, size_t *n,
                       struct gh_err *err)
{
    char ids[64][GH_STORE_HOOK_ID_SIZE], tenants[64][GH_STORE_TENANT_ID_SIZE];
    int rc = GH_OK, step;

    *n = 0;
    /* RETURNING rows are all made before the first is handed out; the
     * statements return at most 64. */
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        if (*n == 64) continue;
        if (gh_sqlite__col_text(s, 0, tenants[*n], sizeof(tenants[0]), err) != GH_OK ||
            gh_sqlite__col_text(s, 1, ids[*n], sizeof(ids[0]), err) != GH_OK)
            continue;
        (*n)++;
    }
    if (step != SQLITE_DONE) rc = gh_sqlite__fail(c, "webhook disable", err);
    gh_sqlite__done(s);
    for (size_t i = 0; rc == GH_OK && i < *n; i++) {
        sqlite3_stmt *f = gh_sqlite__stmt(c, GH_SQ_HOOK_DLV_FAIL_EP, err);
        if (f == NULL) return GH_ERROR;
        gh_sqlite__bind_text(f, 1, ids[i]);
        sqlite3_bind_int64(f, 2, now);
        rc = gh_sqlite__exec(c, f, "webhook disable", err);
        if (rc == GH_OK && cb) cb(tenants[i], ids[i], reason, lease, arg);
    }
    return rc;
}

/* Disables the endpoints of outcomes marked gone (410), then those failing
 * since before <cutoff>, 64 at a time; their pending deliveries fail. */
static int disable_endpoints(struct gh_sqlite_conn *c, const struct gh_store_hook_outcome *o,
                             size_t no, int64_t now, int64_t cutoff, gh_store_hook_disabled_cb cb,
                             void *arg, struct gh_err *err)
{
    const int64_t lease = now + GH_STORE_HOOK_REPORT_LEASE_MS; /* of each report */
    sqlite3_stmt *s;
    size_t n = 0;
    int rc = GH_OK;

    for (size_t i = 0; rc == GH_OK && i < no; i++) {
        if (!o[i].gone) continue;
        s = gh_sqlite__stmt(c, GH_SQ_HOOK_EP_GONE, err);
        if (s == NULL) return GH_ERROR;
        sqlite3_bind_int64(s, 1, now);
        gh_sqlite__bind_text(s, 2, o[i].endpoint_id);
        sqlite3_bind_int64(s, 3, lease);
        rc = disable_run(c, s, "gone", now, lease, cb, arg, &n, err);
    }
    do {
        if (rc != GH_OK) break;
        s = gh_sqlite__stmt(c, GH_SQ_HOOK_EP_DISABLE, err);
        if (s == NULL) return GH_ERROR;
        sqlite3_bind_int64(s, 1, now);
        sqlite3_bind_int64(s, 2, cutoff);
        sqlite3_bind_int64(s, 3, lease);
        rc = disable_run(c, s, "failing", now, lease, cb, arg, &n, err);
    } while (n == 64);
    return rc;
}

int gh_sqlite__hook_record(struct gh_store *st, const char *owner,
                           const struct gh_store_hook_outcome *o, size_t n, int64_t now,
                           int64_t disable_after_ms, gh_store_hook_disabled_cb cb, void *arg,
                           struct gh_err *err)
{
    struct gh_sqlite_store *ss = gh_sqlite__of(st);
    struct health_seen seen = {.n = 0};
    int rc = gh_sqlite__write_begin(ss, err);

    /* One process claims (docs/internals/store.md): an outcome is always
     * of its own claim, and a commit's outcome is always known, so the
     * owner guard of PostgreSQL's record (pg_webhooks.c) is not needed. */
    (void)owner;

    if (rc != GH_OK) return rc;
    for (size_t i = 0; rc == GH_OK && i < n; i++)
        rc = record_one(&ss->writer, &o[i], now, &seen, err);
    if (rc == GH_OK && n > 0)
        rc = disable_endpoints(&ss->writer, o, n, now, now - disable_after_ms, cb, arg, err);
    return gh_sqlite__write_end(ss, rc, err);
}

/* ---- Reads ---------------------------------------------------------------------- */

/* Fills <d> from the 12 columns of HOOK_DLV_COLS. */
static int delivery_row(sqlite3_stmt *s, struct gh_store_hook_delivery *d, struct gh_err *err)
{
    char status[16];

    memset(d, 0, sizeof(*d));
    if (gh_sqlite__col_text(s, 1, d->endpoint_id, sizeof(d->endpoint_id), err) != GH_OK ||
        gh_sqlite__col_text(s, 2, d->msg_id, sizeof(d->msg_id), err) != GH_OK ||
        gh_sqlite__col_text(s, 3, d->type, sizeof(d->type), err) != GH_OK ||
        gh_sqlite__col_text(s, 4, status, sizeof(status), err) != GH_OK ||
        gh_sqlite__col_text(s, 8, d->last_error, sizeof(d->last_error), err) != GH_OK)
        return GH_ERROR;
    d->id = sqlite3_column_int64(s, 0);
    d->status = gh_store_delivery_status_parse(status);
    d->attempts = (unsigned)sqlite3_column_int64(s, 5);
    d->next_attempt_at = d->status == GH_STORE_DELIVERY_PENDING ? sqlite3_column_int64(s, 6) : 0;
    d->last_status = (long)sqlite3_column_int64(s, 7);
    d->created_at = sqlite3_column_int64(s, 9);
    d->updated_at = sqlite3_column_int64(s, 10);
    d->paused = d->status == GH_STORE_DELIVERY_PENDING && sqlite3_column_int64(s, 11) != 0;
    return GH_OK;
}

int gh_sqlite__hook_delivery_list(struct gh_store *st, const char *tenant_id,
                                  const char *endpoint_id, enum gh_store_delivery_status status,
                                  int64_t after_id, size_t limit,
                                  struct gh_store_hook_delivery *out, size_t *count, bool *more,
                                  struct gh_err *err)
{
    struct gh_sqlite_conn *c = gh_sqlite__read_acquire(gh_sqlite__of(st));
    sqlite3_stmt *s = gh_sqlite__stmt(
        c, status == GH_STORE_DELIVERY_ANY ? GH_SQ_HOOK_DLV_LIST : GH_SQ_HOOK_DLV_LIST_STATUS, err);
    int rc = GH_OK, step = SQLITE_DONE;

    *count = 0;
    *more = false;
    if (s == NULL) {
        rc = GH_ERROR;
        goto out;
    }
    gh_sqlite__bind_text(s, 1, tenant_id);
    gh_sqlite__bind_text(s, 2, endpoint_id);
    sqlite3_bind_int64(s, 3, after_id);
    if (status != GH_STORE_DELIVERY_ANY) gh_sqlite__bind_text(s, 4, dlv_status_sql(status));
    sqlite3_bind_int64(s, 5, (int64_t)limit + 1);
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        if (*count == limit) {
            *more = true;
            break;
        }
        rc = delivery_row(s, &out[*count], err);
        if (rc != GH_OK) break;
        (*count)++;
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE) rc = gh_sqlite__fail(c, "deliveries", err);
    gh_sqlite__done(s);
out:
    gh_sqlite__read_release(c);
    return rc;
}

int gh_sqlite__hook_delivery_get(struct gh_store *st, const char *tenant_id,
                                 const char *endpoint_id, int64_t id,
                                 struct gh_store_hook_delivery *out,
                                 struct gh_store_hook_attempt *attempts, size_t max,
                                 size_t *nattempts, struct gh_err *err)
{
    struct gh_sqlite_conn *c = gh_sqlite__read_acquire(gh_sqlite__of(st));
    sqlite3_stmt *s;
    int rc, step = SQLITE_DONE;

    *nattempts = 0;
    /* One snapshot: the delivery and its attempts agree. */
    rc = gh_sqlite__read_begin(c, err);
    if (rc != GH_OK) goto out;
    s = gh_sqlite__stmt(c, GH_SQ_HOOK_DLV_GET, err);
    if (s == NULL) {
        rc = GH_ERROR;
        goto end;
    }
    gh_sqlite__bind_text(s, 1, tenant_id);
    gh_sqlite__bind_text(s, 2, endpoint_id);
    sqlite3_bind_int64(s, 3, id);
    rc = gh_sqlite__row(c, s, "delivery", err);
    if (rc == GH_STORE_NOT_FOUND) gh_err_set(err, NULL, 0, 0, "delivery not found");
    if (rc != GH_OK) goto end;
    rc = delivery_row(s, out, err);
    gh_sqlite__done(s);
    if (rc != GH_OK || max == 0) goto end;
    s = gh_sqlite__stmt(c, GH_SQ_HOOK_ATTEMPTS, err);
    if (s == NULL) {
        rc = GH_ERROR;
        goto end;
    }
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int64(s, 2, (int64_t)max);
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        struct gh_store_hook_attempt *a = &attempts[*nattempts];
        memset(a, 0, sizeof(*a));
        a->at = sqlite3_column_int64(s, 0);
        a->status = (long)sqlite3_column_int64(s, 1);
        a->latency_ms = sqlite3_column_int64(s, 3);
        if (gh_sqlite__col_text(s, 2, a->error, sizeof(a->error), err) != GH_OK ||
            gh_sqlite__col_text(s, 4, a->snippet, sizeof(a->snippet), err) != GH_OK) {
            rc = GH_ERROR;
            break;
        }
        (*nattempts)++;
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE) rc = gh_sqlite__fail(c, "attempts", err);
    gh_sqlite__done(s);
end:
    gh_sqlite__read_end(c);
out:
    gh_sqlite__read_release(c);
    return rc;
}

int gh_sqlite__hook_delivery_replay(struct gh_store *st, const char *tenant_id,
                                    const char *endpoint_id, int64_t id, int64_t now,
                                    struct gh_err *err)
{
    struct gh_sqlite_store *ss = gh_sqlite__of(st);
    struct gh_sqlite_conn *c = &ss->writer;
    sqlite3_stmt *s;
    int rc = gh_sqlite__write_begin(ss, err);

    if (rc != GH_OK) return rc;
    s = gh_sqlite__stmt(c, GH_SQ_HOOK_DLV_STATUS, err);
    if (s == NULL) {
        rc = GH_ERROR;
        goto out;
    }
    gh_sqlite__bind_text(s, 1, tenant_id);
    gh_sqlite__bind_text(s, 2, endpoint_id);
    sqlite3_bind_int64(s, 3, id);
    rc = gh_sqlite__row(c, s, "delivery", err);
    if (rc == GH_STORE_NOT_FOUND) gh_err_set(err, NULL, 0, 0, "delivery not found");
    if (rc != GH_OK) goto out;
    bool pending = strcmp((const char *)sqlite3_column_text(s, 0), "pending") == 0;
    gh_sqlite__done(s);
    if (pending) {
        rc = gh_err_set(err, NULL, 0, 0, "the delivery is still pending");
        rc = GH_STORE_CONFLICT;
        goto out;
    }
    s = gh_sqlite__stmt(c, GH_SQ_HOOK_REPLAY, err);
    if (s == NULL) {
        rc = GH_ERROR;
        goto out;
    }
    gh_sqlite__bind_text(s, 1, tenant_id);
    gh_sqlite__bind_text(s, 2, endpoint_id);
    sqlite3_bind_int64(s, 3, id);
    sqlite3_bind_int64(s, 4, now);
    rc = gh_sqlite__exec(c, s, "delivery replay", err);
out:
    return gh_sqlite__write_end(ss, rc, err);
}

int gh_sqlite__hook_reports_claim(struct gh_store *st, int64_t now, gh_store_hook_disabled_cb cb,
                                  void *arg, struct gh_err *err)
{
    struct gh_sqlite_store *ss = gh_sqlite__of(st);
    struct gh_sqlite_conn *c = &ss->writer;
    char ids[GH_STORE_HOOK_REPORTS_MAX][GH_STORE_HOOK_ID_SIZE];
    char tenants[GH_STORE_HOOK_REPORTS_MAX][GH_STORE_TENANT_ID_SIZE];
    char reasons[GH_STORE_HOOK_REPORTS_MAX][16];
    const int64_t lease = now + GH_STORE_HOOK_REPORT_LEASE_MS;
    sqlite3_stmt *s;
    size_t n = 0;
    int rc = gh_sqlite__write_begin(ss, err), step;

    if (rc != GH_OK) return rc;
    s = gh_sqlite__stmt(c, GH_SQ_HOOK_REPORTS_CLAIM, err);
    if (s == NULL) return gh_sqlite__write_end(ss, GH_ERROR, err);
    sqlite3_bind_int64(s, 1, now);
    sqlite3_bind_int64(s, 2, lease);
    sqlite3_bind_int64(s, 3, GH_STORE_HOOK_REPORTS_MAX);
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        if (n == GH_STORE_HOOK_REPORTS_MAX) continue;
        if (gh_sqlite__col_text(s, 0, tenants[n], sizeof(tenants[0]), err) != GH_OK ||
            gh_sqlite__col_text(s, 1, ids[n], sizeof(ids[0]), err) != GH_OK ||
            gh_sqlite__col_text(s, 2, reasons[n], sizeof(reasons[0]), err) != GH_OK)
            continue;
        n++;
    }
    if (step != SQLITE_DONE) rc = gh_sqlite__fail(c, "webhook reports", err);
    gh_sqlite__done(s);
    rc = gh_sqlite__write_end(ss, rc, err);
    for (size_t i = 0; rc == GH_OK && i < n; i++)
        cb(tenants[i], ids[i], strcmp(reasons[i], "gone") == 0 ? "gone" : "failing", lease, arg);
    return rc;
}

int gh_sqlite__hook_reports_done(struct gh_store *st, const struct gh_store_hook_report *r,
                                 size_t n, struct gh_err *err)
{
    struct gh_sqlite_store *ss = gh_sqlite__of(st);
    struct gh_sqlite_conn *c = &ss->writer;
    int rc = gh_sqlite__write_begin(ss, err);

    if (rc != GH_OK) return rc;
    for (size_t i = 0; rc == GH_OK && i < n; i++) {
        sqlite3_stmt *s = gh_sqlite__stmt(c, GH_SQ_HOOK_REPORTS_DONE, err);
        if (s == NULL) {
            rc = GH_ERROR;
            break;
        }
        gh_sqlite__bind_text(s, 1, r[i].endpoint_id);
        sqlite3_bind_int64(s, 2, r[i].lease);
        rc = gh_sqlite__exec(c, s, "webhook reports", err);
    }
    return gh_sqlite__write_end(ss, rc, err);
}

int gh_sqlite__hook_resume_stray(struct gh_store *st, size_t limit, uint64_t *resumed,
                                 struct gh_err *err)
{
    struct gh_sqlite_store *ss = gh_sqlite__of(st);
    struct gh_sqlite_conn *c = &ss->writer;
    sqlite3_stmt *s;
    int rc = gh_sqlite__write_begin(ss, err);

    *resumed = 0;
    if (rc != GH_OK) return rc;
    s = gh_sqlite__stmt(c, GH_SQ_HOOK_DLV_RESUME_STRAY, err);
    if (s == NULL) return gh_sqlite__write_end(ss, GH_ERROR, err);
    sqlite3_bind_int64(s, 1, (int64_t)limit);
    rc = gh_sqlite__exec(c, s, "webhook deliveries resume", err);
    if (rc == GH_OK) *resumed = (uint64_t)sqlite3_changes(c->db);
    rc = gh_sqlite__write_end(ss, rc, err);
    if (rc != GH_OK) *resumed = 0;
    return rc;
}

int gh_sqlite__hook_pending_count(struct gh_store *st, uint64_t *count, struct gh_err *err)
{
    struct gh_sqlite_conn *c = gh_sqlite__read_acquire(gh_sqlite__of(st));
    sqlite3_stmt *s = gh_sqlite__stmt(c, GH_SQ_HOOK_PENDING, err);
    int rc = GH_ERROR;

    if (s == NULL) goto out;
    rc = gh_sqlite__row(c, s, "pending deliveries", err);
    if (rc != GH_OK) {
        if (rc == GH_STORE_NOT_FOUND) rc = GH_ERROR;
        goto out;
    }
    *count = (uint64_t)sqlite3_column_int64(s, 0);
    gh_sqlite__done(s);
out:
    gh_sqlite__read_release(c);
    return rc;
}

/* ---- Retention ------------------------------------------------------------------ */

/* Deletes message <seq>'s attempts, deliveries and itself; adds to <out>. */
static int purge_message(struct gh_sqlite_conn *c, int64_t seq, struct gh_store_hook_purged *out,
                         struct gh_err *err)
{
    sqlite3_stmt *a = gh_sqlite__stmt(c, GH_SQ_HOOK_PURGE_ATTEMPTS, err);
    sqlite3_stmt *d = gh_sqlite__stmt(c, GH_SQ_HOOK_PURGE_DELIVERIES, err);
    sqlite3_stmt *m = gh_sqlite__stmt(c, GH_SQ_HOOK_PURGE_MESSAGE, err);
    int rc, step;

    if (a == NULL || d == NULL || m == NULL) return GH_ERROR;
    sqlite3_bind_int64(a, 1, seq);
    rc = gh_sqlite__exec(c, a, "webhook retention", err);
    if (rc != GH_OK) return rc;
    out->attempts += (uint64_t)sqlite3_changes(c->db);
    sqlite3_bind_int64(d, 1, seq);
    while ((step = sqlite3_step(d)) == SQLITE_ROW) {
        out->deliveries++;
        if (sqlite3_column_int(d, 0)) out->undelivered++;
    }
    rc = step == SQLITE_DONE ? GH_OK : gh_sqlite__fail(c, "webhook retention", err);
    gh_sqlite__done(d);
    if (rc != GH_OK) return rc;
    sqlite3_bind_int64(m, 1, seq);
    rc = gh_sqlite__exec(c, m, "webhook retention", err);
    if (rc == GH_OK) out->messages++;
    return rc;
}

int gh_sqlite__hook_purge(struct gh_store *st, const char *owner, int64_t after_seq, int64_t cutoff,
                          int64_t now, size_t limit, struct gh_store_hook_purged *out,
                          struct gh_err *err)
{
    struct gh_sqlite_store *ss = gh_sqlite__of(st);
    struct gh_sqlite_conn *c = &ss->writer;
    int64_t old[GH_STORE_HOOK_PURGE_MAX];
    size_t nold = 0, seen = 0, ahead = 0;
    int64_t last = 0;
    sqlite3_stmt *s;
    int rc, step = SQLITE_DONE;

    if (limit > GH_STORE_HOOK_PURGE_MAX) limit = GH_STORE_HOOK_PURGE_MAX;
    rc = gh_sqlite__write_begin(ss, err);
    if (rc != GH_OK) return rc;
    s = gh_sqlite__stmt(c, GH_SQ_HOOK_PURGE_SCAN, err);
    if (s == NULL) {
        rc = GH_ERROR;
        goto out;
    }
    sqlite3_bind_int64(s, 1, after_seq);
    sqlite3_bind_int64(s, 2, (int64_t)limit);
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        int64_t created = sqlite3_column_int64(s, 1);
        seen++;
        last = sqlite3_column_int64(s, 0);
        /* A young one is passed over: the next pass sees it. One created
         * after now (a node whose clock runs ahead) is no sign that the
         * rest are young too, so it keeps the pass going. */
        if (created < cutoff)
            old[nold++] = last;
        else if (created > now)
            ahead++;
    }
    if (step != SQLITE_DONE) rc = gh_sqlite__fail(c, "webhook retention", err);
    gh_sqlite__done(s);
    if (rc != GH_OK) goto out;
    for (size_t i = 0; rc == GH_OK && i < nold; i++) {
        sqlite3_stmt *k = gh_sqlite__stmt(c, GH_SQ_HOOK_PURGE_KEEP, err);
        if (k == NULL) {
            rc = GH_ERROR;
            break;
        }
        sqlite3_bind_int64(k, 1, old[i]);
        gh_sqlite__bind_text(k, 2, owner);
        sqlite3_bind_int64(k, 3, cutoff);
        sqlite3_bind_int64(k, 4, now);
        rc = gh_sqlite__row(c, k, "webhook retention", err);
        if (rc == GH_OK) { /* a delivery in flight or active: kept */
            gh_sqlite__done(k);
            out->kept++;
            continue;
        }
        if (rc != GH_STORE_NOT_FOUND) break;
        rc = purge_message(c, old[i], out, err);
    }
    if (rc == GH_OK) {
        if (seen > 0) out->last_seq = last;
        out->more = (nold > 0 || ahead > 0) && seen == limit;
    }
out:
    rc = gh_sqlite__write_end(ss, rc, err);
    if (rc != GH_OK) { /* rolled back: nothing was deleted, and the cursor stays */
        memset(out, 0, sizeof(*out));
        out->last_seq = after_seq;
    }
    return rc;
}
