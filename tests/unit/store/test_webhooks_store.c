/* Tests of the webhook part of src/store (store_webhooks.c, sqlite_webhooks.c
 * and pg_webhooks.c), each on a fresh store (store_fixture.h: a SQLite file,
 * or a PostgreSQL database with GH_TEST_PG_SERVER): endpoints, the
 * one-transaction publish and its fan-out by subscription, idempotent ids,
 * claims (and claims again after a crash), batched outcomes, the attempt
 * history, replay, disabling an endpoint that keeps failing, pausing the
 * deliveries of one an admin disables, retention, and
 * tenant isolation; on PostgreSQL, two nodes recording outcomes while one
 * of them disables an endpoint. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "store/store.h"
#include "store_fixture.h"

struct fixture {
    struct gh_test_store ts;
    struct gh_store *st; /* ts.st */
    char tenant[GH_STORE_TENANT_ID_SIZE], other[GH_STORE_TENANT_ID_SIZE];
};

static int teardown(void **state)
{
    struct fixture *f = *state;

    gh_test_store_close(&f->ts);
    free(f);
    return 0;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct gh_store_tenant t;
    struct gh_err err = {0};

    if (gh_test_store_open(&f->ts, "hooks", &err) != GH_OK) fail_msg("open: %s", err.msg);
    f->st = f->ts.st;
    *state = f;
    memset(&t, 0, sizeof(t));
    snprintf(t.name, sizeof(t.name), "acme");
    if (gh_store_tenant_create(f->st, &t, &err) != GH_OK) return -1;
    memcpy(f->tenant, t.id, sizeof(t.id));
    memset(&t, 0, sizeof(t));
    snprintf(t.name, sizeof(t.name), "globex");
    if (gh_store_tenant_create(f->st, &t, &err) != GH_OK) return -1;
    memcpy(f->other, t.id, sizeof(t.id));
    return 0;
}

static void endpoint_new(struct fixture *f, const char *tenant, const char *const *events,
                         struct gh_store_hook_endpoint *e)
{
    struct gh_err err = {0};

    memset(e, 0, sizeof(*e));
    snprintf(e->tenant_id, sizeof(e->tenant_id), "%s", tenant);
    snprintf(e->url, sizeof(e->url), "http://hooks.example/in");
    for (e->nevents = 0; events[e->nevents]; e->nevents++)
        snprintf(e->events[e->nevents], sizeof(e->events[0]), "%s", events[e->nevents]);
    e->secret_version = 1;
    if (gh_store_hook_endpoint_insert(f->st, e, &err) != GH_OK) fail_msg("insert: %s", err.msg);
}

struct claimed {
    size_t n;
    struct gh_store_hook_due due[16];
    char payload[16][128];
    char msg[16][GH_STORE_HOOK_MSG_ID_SIZE];
    char tenant[16][GH_STORE_TENANT_ID_SIZE];
    char endpoint[16][GH_STORE_HOOK_ID_SIZE];
};

static int on_due(const struct gh_store_hook_due *d, void *arg)
{
    struct claimed *c = arg;
    if (c->n == 16) return GH_ERROR;
    c->due[c->n] = *d;
    snprintf(c->payload[c->n], sizeof(c->payload[0]), "%.*s", (int)d->payload_len, d->payload);
    snprintf(c->msg[c->n], sizeof(c->msg[0]), "%s", d->msg_id);
    /* The strings live only during the callback. */
    snprintf(c->tenant[c->n], sizeof(c->tenant[0]), "%s", d->tenant_id);
    snprintf(c->endpoint[c->n], sizeof(c->endpoint[0]), "%s", d->endpoint_id);
    c->due[c->n].tenant_id = c->tenant[c->n];
    c->due[c->n].endpoint_id = c->endpoint[c->n];
    c->due[c->n].msg_id = c->msg[c->n];
    c->due[c->n].payload = c->payload[c->n];
    c->due[c->n].url = c->due[c->n].type = NULL;
    c->n++;
    return GH_OK;
}

static void publish(struct fixture *f, const char *tenant, const char *id, const char *type,
                    size_t want, bool want_dup)
{
    struct gh_err err = {0};
    size_t n = 99;
    bool dup = !want_dup;

    assert_int_equal(
        gh_store_hook_publish(f->st, tenant, id, type, "{\"a\":1}", 7, 0, &n, &dup, &err), GH_OK);
    assert_int_equal(n, want);
    assert_int_equal(dup, want_dup);
}

static void test_fan_out_and_claims(void **state)
{
    struct fixture *f = *state;
    static const char *const orders[] = {"order.*", NULL}, *const all[] = {"*", NULL},
                             *const exact[] = {"invoice.paid", NULL};
    struct gh_store_hook_endpoint a, b, c, x, got;
    struct claimed cl = {0};
    struct gh_err err = {0};

    endpoint_new(f, f->tenant, orders, &a);
    endpoint_new(f, f->tenant, all, &b);
    endpoint_new(f, f->tenant, exact, &c);
    endpoint_new(f, f->other, all, &x);
    assert_true(gh_store_valid_hook_id(a.id));
    assert_int_equal(gh_store_hook_endpoint_get(f->st, f->tenant, a.id, &got, &err), GH_OK);
    assert_string_equal(got.events[0], "order.*");
    assert_int_equal(got.status, GH_STORE_HOOK_ACTIVE);
    /* Another tenant's endpoint does not exist for this one. */
    assert_int_equal(gh_store_hook_endpoint_get(f->st, f->tenant, x.id, &got, &err),
                     GH_STORE_NOT_FOUND);

    publish(f, f->tenant, "msg_1", "order.created", 2, false);  /* a and b */
    publish(f, f->tenant, "msg_2", "invoice.paid", 2, false);   /* b and c */
    publish(f, f->tenant, "msg_3", "orders.created", 1, false); /* b only */
    publish(f, f->tenant, "msg_1", "order.created", 2, true);   /* the same id again */
    publish(f, f->other, "msg_1", "order.created", 1, false);   /* ids are per tenant */
    /* The same id for another message (type or payload): CONFLICT, and
     * nothing is queued for it (the claim below finds the 6 above). */
    {
        size_t n = 99;
        bool dup = true;
        assert_int_equal(gh_store_hook_publish(f->st, f->tenant, "msg_1", "order.updated",
                                               "{\"a\":1}", 7, 0, &n, &dup, &err),
                         GH_STORE_CONFLICT);
        assert_non_null(strstr(err.msg, "message id msg_1 was published before"));
        assert_int_equal(gh_store_hook_publish(f->st, f->tenant, "msg_1", "order.created",
                                               "{\"a\":2}", 7, 0, &n, &dup, &err),
                         GH_STORE_CONFLICT);
        assert_int_equal(n, 0);
        assert_false(dup);
    }

    assert_int_equal(gh_store_hook_claim(f->st, "owner-1", 16, on_due, &cl, &err), GH_OK);
    assert_int_equal(cl.n, 6);
    assert_string_equal(cl.payload[0], "{\"a\":1}");
    /* Claimed by this owner: not handed out again... */
    struct claimed again = {0};
    assert_int_equal(gh_store_hook_claim(f->st, "owner-1", 16, on_due, &again, &err), GH_OK);
    assert_int_equal(again.n, 0);
    /* ...but a new process (another owner: the first was killed) takes
     * them all back: at least once. */
    assert_int_equal(gh_store_hook_claim(f->st, "owner-2", 16, on_due, &again, &err), GH_OK);
    assert_int_equal(again.n, 6);

    /* Outcomes: one success, one retry in the future, one failure. */
    struct gh_store_hook_outcome o[3];
    memset(o, 0, sizeof(o));
    for (int i = 0; i < 3; i++) {
        o[i].delivery_id = again.due[i].delivery_id;
        snprintf(o[i].endpoint_id, sizeof(o[i].endpoint_id), "%s", again.due[i].endpoint_id);
        o[i].at = (int64_t)gh_wall_ms();
        o[i].latency_ms = 3;
    }
    o[0].status = 204;
    o[0].next = GH_STORE_DELIVERY_SUCCEEDED;
    o[1].status = 503;
    snprintf(o[1].snippet, sizeof(o[1].snippet), "busy");
    o[1].next = GH_STORE_DELIVERY_PENDING;
    o[1].next_attempt_at = (int64_t)gh_wall_ms() + 3600000;
    o[2].status = 404;
    o[2].next = GH_STORE_DELIVERY_FAILED;
    assert_int_equal(gh_store_hook_record(f->st, "owner-2", o, 3, 86400000, NULL, NULL, &err),
                     GH_OK);

    struct gh_store_hook_delivery dl;
    struct gh_store_hook_attempt at[4];
    size_t nat;
    assert_int_equal(gh_store_hook_delivery_get(f->st, again.due[1].tenant_id,
                                                again.due[1].endpoint_id, o[1].delivery_id, &dl, at,
                                                4, &nat, &err),
                     GH_OK);
    assert_int_equal(dl.status, GH_STORE_DELIVERY_PENDING);
    assert_int_equal(dl.attempts, 1);
    assert_int_equal(dl.last_status, 503);
    assert_int_equal(nat, 1);
    assert_string_equal(at[0].snippet, "busy");
    assert_int_equal(at[0].latency_ms, 3);
    /* Not due yet: not claimed. */
    struct claimed none = {0};
    assert_int_equal(gh_store_hook_claim(f->st, "owner-3", 16, on_due, &none, &err), GH_OK);
    assert_int_equal(none.n, 3); /* the three without an outcome */

    /* Replay: a failed one goes back to the queue; a pending one cannot. */
    assert_int_equal(gh_store_hook_delivery_replay(f->st, again.due[2].tenant_id,
                                                   again.due[2].endpoint_id, o[2].delivery_id,
                                                   &err),
                     GH_OK);
    assert_int_equal(gh_store_hook_delivery_replay(f->st, again.due[1].tenant_id,
                                                   again.due[1].endpoint_id, o[1].delivery_id,
                                                   &err),
                     GH_STORE_CONFLICT);
    /* Another tenant cannot reach it. */
    const char *stranger = strcmp(again.due[2].tenant_id, f->tenant) == 0 ? f->other : f->tenant;
    assert_int_equal(gh_store_hook_delivery_replay(f->st, stranger, again.due[2].endpoint_id,
                                                   o[2].delivery_id, &err),
                     GH_STORE_NOT_FOUND);
    assert_int_equal(gh_store_hook_delivery_get(f->st, again.due[2].tenant_id,
                                                again.due[2].endpoint_id, o[2].delivery_id, &dl, at,
                                                4, &nat, &err),
                     GH_OK);
    assert_int_equal(dl.status, GH_STORE_DELIVERY_PENDING);
    assert_int_equal(dl.attempts, 0);
    assert_int_equal(nat, 1); /* the history stays */

    uint64_t pending = 0;
    assert_int_equal(gh_store_hook_pending_count(f->st, &pending, &err), GH_OK);
    assert_int_equal(pending, 5);
}

static int on_disabled(const char *tenant, const char *endpoint, const char *reason, int64_t lease,
                       void *arg)
{
    assert_string_equal(reason, "failing");
    assert_true(lease > (int64_t)gh_wall_ms());
    (*(int *)arg)++;
    (void)tenant;
    (void)endpoint;
    return GH_OK;
}

/* An admin's read-modify-write (get, change, update) of an endpoint that
 * the dispatcher disabled in between: the update applies to the revision it
 * read only, so the disabling stands (before revisions, the admin's write
 * of every column set the endpoint active again, its failure clock with
 * it). A write over a current read applies, and moves the revision; a
 * delete answers the row it removed, whose keys are the ones to drop. */
static void test_disable_and_delete(void **state)
{
    struct fixture *f = *state;
    static const char *const all[] = {"*", NULL};
    struct gh_store_hook_endpoint e, got, stale, gone;
    struct claimed cl = {0};
    struct gh_store_hook_outcome o;
    struct gh_err err = {0};
    int disabled = 0;

    endpoint_new(f, f->tenant, all, &e);
    assert_int_equal(e.rev, 1);
    assert_int_equal(gh_store_hook_endpoint_get(f->st, f->tenant, e.id, &stale, &err), GH_OK);
    assert_int_equal(stale.rev, 1);
    snprintf(stale.description, sizeof(stale.description), "read before the disabling");
    publish(f, f->tenant, "m1", "a.b", 1, false);
    publish(f, f->tenant, "m2", "a.b", 1, false);
    assert_int_equal(gh_store_hook_claim(f->st, "o", 1, on_due, &cl, &err), GH_OK);
    assert_int_equal(cl.n, 1);
    memset(&o, 0, sizeof(o));
    o.delivery_id = cl.due[0].delivery_id;
    snprintf(o.endpoint_id, sizeof(o.endpoint_id), "%s", e.id);
    o.at = (int64_t)gh_wall_ms() - 10000; /* failing for 10 s */
    snprintf(o.error, sizeof(o.error), "timeout");
    o.next = GH_STORE_DELIVERY_FAILED;
    assert_int_equal(gh_store_hook_record(f->st, "o", &o, 1, 5000, on_disabled, &disabled, &err),
                     GH_OK);
    assert_int_equal(disabled, 1);
    assert_int_equal(gh_store_hook_endpoint_get(f->st, f->tenant, e.id, &got, &err), GH_OK);
    assert_int_equal(got.status, GH_STORE_HOOK_DISABLED);
    assert_string_equal(got.disabled_reason, "failing");
    /* The disabling moved the revision; the failure clock did not (an
     * update only ever resets it). */
    assert_int_equal(got.rev, 2);
    assert_int_equal(gh_store_hook_endpoint_update(f->st, &stale, &err), GH_STORE_CONFLICT);
    assert_string_equal(err.msg, "webhook endpoint changed since it was read");
    assert_int_equal(stale.rev, 1);
    assert_int_equal(gh_store_hook_endpoint_get(f->st, f->tenant, e.id, &stale, &err), GH_OK);
    assert_int_equal(stale.status, GH_STORE_HOOK_DISABLED);
    assert_string_equal(stale.description, got.description);
    assert_true(stale.failing_since > 0);
    /* Read again, the change applies over the disabling. */
    snprintf(stale.description, sizeof(stale.description), "read after the disabling");
    int64_t clock = stale.failing_since;
    stale.failing_since = 1; /* not a reset: the stored clock stays */
    assert_int_equal(gh_store_hook_endpoint_update(f->st, &stale, &err), GH_OK);
    assert_int_equal(stale.rev, 3);
    assert_int_equal(gh_store_hook_endpoint_get(f->st, f->tenant, e.id, &got, &err), GH_OK);
    assert_int_equal(got.rev, 3);
    assert_int_equal(got.status, GH_STORE_HOOK_DISABLED);
    assert_string_equal(got.description, "read after the disabling");
    assert_int_equal(got.failing_since, clock);
    /* Its other delivery failed with it; nothing more is claimed. */
    struct claimed none = {0};
    assert_int_equal(gh_store_hook_claim(f->st, "o2", 16, on_due, &none, &err), GH_OK);
    assert_int_equal(none.n, 0);
    /* A disabled endpoint gets no new deliveries. */
    publish(f, f->tenant, "m3", "a.b", 0, false);

    struct gh_store_page page = {.limit = 10};
    struct gh_store_hook_delivery dl[10];
    assert_int_equal(gh_store_hook_delivery_list(f->st, f->tenant, e.id, GH_STORE_DELIVERY_FAILED,
                                                 &page, dl, &err),
                     GH_OK);
    assert_int_equal(page.count, 2);

    assert_int_equal(gh_store_hook_endpoint_delete(f->st, f->other, e.id, &gone, &err),
                     GH_STORE_NOT_FOUND);
    /* A rotation between the admin's read and the delete: the delete
     * answers the row with the rotated keys. */
    got.prev_version = got.secret_version;
    got.secret_version = 77;
    assert_int_equal(gh_store_hook_endpoint_update(f->st, &got, &err), GH_OK);
    assert_int_equal(gh_store_hook_endpoint_delete(f->st, f->tenant, e.id, &gone, &err), GH_OK);
    assert_string_equal(gone.id, e.id);
    assert_int_equal(gone.secret_version, 77);
    assert_int_equal(gone.prev_version, e.secret_version);
    assert_int_equal(gone.rev, 4);
    assert_int_equal(gh_store_hook_endpoint_update(f->st, &got, &err), GH_STORE_NOT_FOUND);
    assert_int_equal(gh_store_hook_endpoint_get(f->st, f->tenant, e.id, &got, &err),
                     GH_STORE_NOT_FOUND);
}

/* The index in <c> of the delivery of message <msg>. */
static size_t due_of(const struct claimed *c, const char *msg)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->msg[i], msg) == 0) return i;
    fail_msg("no delivery of %s claimed", msg);
    return 0;
}

static void outcome_of(const struct claimed *c, const char *msg, enum gh_store_delivery_status next,
                       struct gh_store_hook_outcome *o)
{
    size_t i = due_of(c, msg);

    memset(o, 0, sizeof(*o));
    o->delivery_id = c->due[i].delivery_id;
    snprintf(o->endpoint_id, sizeof(o->endpoint_id), "%s", c->due[i].endpoint_id);
    o->at = (int64_t)gh_wall_ms();
    o->status = next == GH_STORE_DELIVERY_SUCCEEDED ? 200 : 400;
    o->next = next;
}

static void sleep_ms(unsigned ms)
{
    struct timespec t = {.tv_sec = 0, .tv_nsec = (long)ms * 1000000L};
    nanosleep(&t, NULL);
}

/* Retention: old messages go with their deliveries and attempts, in
 * batches, stopping at the first young one; a delivery in flight (claimed
 * by the purging process) or pending and active since the cutoff keeps its
 * message; a dead process's claim does not. */
static void test_retention(void **state)
{
    struct fixture *f = *state;
    static const char *const orders[] = {"order.*", NULL};
    struct gh_store_hook_endpoint e;
    struct claimed cl = {0};
    struct gh_store_hook_outcome o[2];
    struct gh_store_hook_purged p;
    struct gh_store_hook_delivery dl;
    struct gh_store_hook_attempt at[4];
    struct gh_err err = {0};
    size_t nat;

    endpoint_new(f, f->tenant, orders, &e);
    publish(f, f->tenant, "done", "order.a", 1, false);     /* delivered: goes */
    publish(f, f->tenant, "flying", "order.a", 1, false);   /* in flight: kept */
    publish(f, f->tenant, "replayed", "order.a", 1, false); /* active since: kept */
    publish(f, f->other, "quiet", "order.a", 0, false);     /* no delivery: goes */
    assert_int_equal(gh_store_hook_claim(f->st, "owner-1", 16, on_due, &cl, &err), GH_OK);
    assert_int_equal(cl.n, 3);
    outcome_of(&cl, "done", GH_STORE_DELIVERY_SUCCEEDED, &o[0]);
    outcome_of(&cl, "replayed", GH_STORE_DELIVERY_FAILED, &o[1]);
    assert_int_equal(gh_store_hook_record(f->st, "owner-1", o, 2, 86400000, NULL, NULL, &err),
                     GH_OK);
    sleep_ms(3);
    int64_t cutoff = (int64_t)gh_wall_ms();
    sleep_ms(3);
    size_t r = due_of(&cl, "replayed");
    assert_int_equal(
        gh_store_hook_delivery_replay(f->st, f->tenant, e.id, cl.due[r].delivery_id, &err), GH_OK);
    publish(f, f->tenant, "young", "order.a", 1, false); /* after the cutoff: stays */

    /* One message per batch: the first is looked at, and more may follow. */
    assert_int_equal(gh_store_hook_purge(f->st, "owner-1", 0, cutoff, 1, &p, &err), GH_OK);
    assert_int_equal(p.messages, 1);
    assert_int_equal(p.deliveries, 1);
    assert_int_equal(p.attempts, 1);
    assert_int_equal(p.undelivered, 0);
    assert_true(p.more);
    size_t d = due_of(&cl, "done");
    assert_int_equal(gh_store_hook_delivery_get(f->st, f->tenant, e.id, cl.due[d].delivery_id, &dl,
                                                at, 4, &nat, &err),
                     GH_STORE_NOT_FOUND);
    /* The rest of the pass: "flying" and "replayed" kept, "quiet" gone,
     * and it stops at "young". */
    assert_int_equal(gh_store_hook_purge(f->st, "owner-1", p.last_seq, cutoff, 100, &p, &err),
                     GH_OK);
    assert_int_equal(p.messages, 1);
    assert_int_equal(p.deliveries, 0);
    assert_int_equal(p.kept, 2);
    assert_false(p.more);
    assert_int_equal(gh_store_hook_delivery_get(f->st, f->tenant, e.id, cl.due[r].delivery_id, &dl,
                                                at, 4, &nat, &err),
                     GH_OK);
    assert_int_equal(nat, 1);

    /* Another pass by a new process: the old claim is a dead one's, so
     * "flying" goes, counted as never delivered; "replayed" is still
     * active since the cutoff. */
    assert_int_equal(gh_store_hook_purge(f->st, "owner-2", 0, cutoff, 100, &p, &err), GH_OK);
    assert_int_equal(p.messages, 1);
    assert_int_equal(p.deliveries, 1);
    assert_int_equal(p.undelivered, 1);
    assert_int_equal(p.attempts, 0);
    assert_int_equal(p.kept, 1);

    /* A later cutoff takes the young and the replayed ones too. */
    assert_int_equal(
        gh_store_hook_purge(f->st, "owner-2", 0, (int64_t)gh_wall_ms() + 1000, 100, &p, &err),
        GH_OK);
    assert_int_equal(p.messages, 2);
    assert_int_equal(p.attempts, 1);
    uint64_t pending = 99;
    assert_int_equal(gh_store_hook_pending_count(f->st, &pending, &err), GH_OK);
    assert_int_equal(pending, 0);
    /* An id whose message is gone is new again; delivery ids never come
     * back (migration 18), though every delivery was deleted. */
    int64_t top = 0;
    for (size_t i = 0; i < cl.n; i++)
        if (cl.due[i].delivery_id > top) top = cl.due[i].delivery_id;
    publish(f, f->tenant, "done", "order.a", 1, false);
    struct claimed fresh = {0};
    assert_int_equal(gh_store_hook_claim(f->st, "owner-3", 16, on_due, &fresh, &err), GH_OK);
    assert_int_equal(fresh.n, 1);
    assert_true(fresh.due[0].delivery_id > top);

    assert_int_equal(gh_store_hook_purge(f->st, "", 0, cutoff, 10, &p, &err), GH_STORE_INVALID);
    assert_int_equal(gh_store_hook_purge(f->st, "o", 0, cutoff, 1001, &p, &err), GH_STORE_INVALID);
}

/* Runs <sql> on the store's tables behind its back. */
static void raw(struct fixture *f, const char *sql)
{
    if (!gh_test_store_exec(&f->ts, sql)) fail_msg("%s failed", sql);
}

/* The one integer <sql> reads from the store's tables, behind its back. */
static int64_t raw_int(struct fixture *f, const char *sql)
{
    int64_t v = -1;

    if (f->ts.db[0]) {
        PGconn *c = gh_test_pg_connect(f->ts.db);
        PGresult *r = c ? PQexec(c, sql) : NULL;

        if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
            fail_msg("%s: %s", sql, c ? PQerrorMessage(c) : "no session");
        v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        PQclear(r);
        PQfinish(c);
        return v;
    }
    sqlite3 *db;
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_open(f->ts.path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* Sets endpoint <id>'s status through the admin path (read, change, write). */
static void set_status(struct fixture *f, const char *id, enum gh_store_hook_status status,
                       const char *description)
{
    struct gh_store_hook_endpoint e;
    struct gh_err err = {0};

    assert_int_equal(gh_store_hook_endpoint_get(f->st, f->tenant, id, &e, &err), GH_OK);
    e.status = status;
    snprintf(e.description, sizeof(e.description), "%s", description);
    assert_int_equal(gh_store_hook_endpoint_update(f->st, &e, &err), GH_OK);
}

/* A writer that does not move the revision itself (a gatehouse from before
 * migration 23 on the same store, during a rolling upgrade): the trigger
 * moves it when a field an update writes over changes, so an update over an
 * older read still conflicts; the failure clock and the report lease move
 * nothing. */
static void test_a_writer_that_does_not_move_the_revision(void **state)
{
    struct fixture *f = *state;
    static const char *const all[] = {"*", NULL};
    struct gh_store_hook_endpoint e, stale, got;
    struct gh_err err = {0};
    char sql[512];

    endpoint_new(f, f->tenant, all, &e);
    snprintf(sql, sizeof(sql),
             "UPDATE webhook_endpoints SET failing_since = 5, report_after = 7 WHERE id = '%s'",
             e.id);
    raw(f, sql);
    assert_int_equal(gh_store_hook_endpoint_get(f->st, f->tenant, e.id, &stale, &err), GH_OK);
    assert_int_equal(stale.rev, 1);
    snprintf(sql, sizeof(sql),
             "UPDATE webhook_endpoints SET status = 'disabled', disabled_reason = 'failing' "
             "WHERE id = '%s'",
             e.id);
    raw(f, sql);
    assert_int_equal(gh_store_hook_endpoint_get(f->st, f->tenant, e.id, &got, &err), GH_OK);
    assert_int_equal(got.rev, 2);
    snprintf(stale.description, sizeof(stale.description), "stale");
    assert_int_equal(gh_store_hook_endpoint_update(f->st, &stale, &err), GH_STORE_CONFLICT);
    /* A statement that moves it itself is not moved twice. */
    got.secret_version = 9;
    assert_int_equal(gh_store_hook_endpoint_update(f->st, &got, &err), GH_OK);
    assert_int_equal(got.rev, 3);
    assert_int_equal(gh_store_hook_endpoint_get(f->st, f->tenant, e.id, &got, &err), GH_OK);
    assert_int_equal(got.rev, 3);
    assert_int_equal(got.status, GH_STORE_HOOK_DISABLED);
}

/* An endpoint an admin disables keeps its pending deliveries pending but
 * paused, out of the claim's reach (the due index reads past paused ones
 * only); a replay while it is disabled is paused too; an update that keeps
 * the status changes none; enabling it again makes them all due. */
static void test_paused_while_disabled(void **state)
{
    struct fixture *f = *state;
    static const char *const all[] = {"*", NULL};
    struct gh_store_hook_endpoint a, p;
    struct gh_store_hook_outcome o[2];
    struct claimed cl = {0}, none = {0}, back = {0};
    struct gh_err err = {0};
    char sql[256];
    int64_t failed_id = 0;

    endpoint_new(f, f->tenant, all, &a);
    endpoint_new(f, f->tenant, all, &p);
    publish(f, f->tenant, "m1", "a.b", 2, false);
    assert_int_equal(gh_store_hook_claim(f->st, "o", 16, on_due, &cl, &err), GH_OK);
    assert_int_equal(cl.n, 2);
    for (size_t i = 0; i < 2; i++) {
        bool to_p = strcmp(cl.endpoint[i], p.id) == 0;
        outcome_of(&cl, "m1", to_p ? GH_STORE_DELIVERY_FAILED : GH_STORE_DELIVERY_SUCCEEDED, &o[i]);
        o[i].delivery_id = cl.due[i].delivery_id;
        snprintf(o[i].endpoint_id, sizeof(o[i].endpoint_id), "%s", cl.endpoint[i]);
        if (to_p) failed_id = cl.due[i].delivery_id;
    }
    assert_int_equal(gh_store_hook_record(f->st, "o", o, 2, 86400000, NULL, NULL, &err), GH_OK);
    assert_true(failed_id > 0);
    publish(f, f->tenant, "m2", "a.b", 2, false);
    publish(f, f->tenant, "m3", "a.b", 2, false);

    set_status(f, p.id, GH_STORE_HOOK_DISABLED, "paused by hand");
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = '%s' AND paused%s", p.id,
             f->ts.db[0] ? "" : " = 1");
    assert_int_equal(raw_int(f, sql), 2);
    /* Still pending, as the API lists them. */
    struct gh_store_page page = {.limit = 10};
    struct gh_store_hook_delivery dl[10];
    assert_int_equal(gh_store_hook_delivery_list(f->st, f->tenant, p.id, GH_STORE_DELIVERY_PENDING,
                                                 &page, dl, &err),
                     GH_OK);
    assert_int_equal(page.count, 2);
    assert_true(dl[0].paused && dl[1].paused);
    memset(&cl, 0, sizeof(cl));
    assert_int_equal(gh_store_hook_claim(f->st, "o", 16, on_due, &cl, &err), GH_OK);
    assert_int_equal(cl.n, 2);
    for (size_t i = 0; i < cl.n; i++)
        assert_string_equal(cl.endpoint[i], a.id);

    /* A replay while disabled waits with the others; an update that keeps
     * the status leaves them paused. */
    assert_int_equal(gh_store_hook_delivery_replay(f->st, f->tenant, p.id, failed_id, &err), GH_OK);
    set_status(f, p.id, GH_STORE_HOOK_DISABLED, "still paused");
    assert_int_equal(raw_int(f, sql), 3);
    assert_int_equal(gh_store_hook_claim(f->st, "o", 16, on_due, &none, &err), GH_OK);
    assert_int_equal(none.n, 0);

    set_status(f, p.id, GH_STORE_HOOK_ACTIVE, "back");
    assert_int_equal(raw_int(f, sql), 0);
    assert_int_equal(gh_store_hook_claim(f->st, "o", 16, on_due, &back, &err), GH_OK);
    assert_int_equal(back.n, 3);
    for (size_t i = 0; i < back.n; i++)
        assert_string_equal(back.endpoint[i], p.id);
    (void)due_of(&back, "m1");
    (void)due_of(&back, "m2");
    (void)due_of(&back, "m3");
}

/* The query counting endpoint <ep>'s paused deliveries, into <sql>. */
static const char *sql_paused_count(char *sql, size_t size, struct fixture *f, const char *ep)
{
    snprintf(sql, size,
             "SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = '%s' AND paused = %s", ep,
             f->ts.db[0] ? "true" : "1");
    return sql;
}

/* Deliveries an older gatehouse left paused on an active endpoint (it
 * enabled the endpoint knowing no pausing): setting the endpoint active
 * again resumes them, and so does the dispatcher's look
 * (hook_resume_stray), which leaves a disabled endpoint's alone. A paused
 * delivery that finishes is unpaused. A backlog longer than one step of
 * PostgreSQL's pausing is paused and resumed whole. */
static void test_paused_left_behind_and_long_backlogs(void **state)
{
    struct fixture *f = *state;
    static const char *const all[] = {"*", NULL};
    struct gh_store_hook_endpoint a, p;
    struct gh_store_hook_outcome o;
    struct claimed cl = {0}, none = {0}, back = {0};
    struct gh_err err = {0};
    char sql[512];
    uint64_t resumed = 99;

    endpoint_new(f, f->tenant, all, &a);
    endpoint_new(f, f->tenant, all, &p);
    publish(f, f->tenant, "m1", "a.b", 2, false);
    publish(f, f->tenant, "m2", "a.b", 2, false);
    /* As an older gatehouse leaves them: paused, endpoints active. */
    raw(f, f->ts.db[0] ? "UPDATE webhook_deliveries SET paused = true"
                       : "UPDATE webhook_deliveries SET paused = 1");
    assert_int_equal(gh_store_hook_claim(f->st, "o", 16, on_due, &none, &err), GH_OK);
    assert_int_equal(none.n, 0);
    set_status(f, a.id, GH_STORE_HOOK_ACTIVE, "active, again");
    assert_int_equal(gh_store_hook_claim(f->st, "o", 16, on_due, &cl, &err), GH_OK);
    assert_int_equal(cl.n, 2);
    for (size_t i = 0; i < cl.n; i++)
        assert_string_equal(cl.endpoint[i], a.id);
    assert_int_equal(gh_store_hook_resume_stray(f->st, 1, &resumed, &err), GH_OK);
    assert_int_equal(resumed, 1);
    assert_int_equal(gh_store_hook_resume_stray(f->st, 10, &resumed, &err), GH_OK);
    assert_int_equal(resumed, 1);
    assert_int_equal(gh_store_hook_resume_stray(f->st, 10, &resumed, &err), GH_OK);
    assert_int_equal(resumed, 0);
    assert_int_equal(gh_store_hook_claim(f->st, "o", 16, on_due, &back, &err), GH_OK);
    assert_int_equal(back.n, 2);
    for (size_t i = 0; i < back.n; i++)
        assert_string_equal(back.endpoint[i], p.id);
    assert_int_equal(gh_store_hook_resume_stray(f->st, 0, &resumed, &err), GH_STORE_INVALID);

    /* In flight when the endpoint is disabled: SQLite pauses them (one
     * process, whose outcomes wait for nothing); PostgreSQL leaves them
     * (another node's outcome batch would wait for the pause) and the
     * claim passes them over. Delivered, none stays paused. */
    set_status(f, p.id, GH_STORE_HOOK_DISABLED, "down");
    assert_int_equal(raw_int(f, sql_paused_count(sql, sizeof(sql), f, p.id)), f->ts.db[0] ? 0 : 2);
    outcome_of(&back, "m1", GH_STORE_DELIVERY_SUCCEEDED, &o);
    assert_int_equal(gh_store_hook_record(f->st, "o", &o, 1, 86400000, NULL, NULL, &err), GH_OK);
    assert_int_equal(raw_int(f, sql_paused_count(sql, sizeof(sql), f, p.id)), f->ts.db[0] ? 0 : 1);

    /* 25,000 more, pending: paused and resumed whole. */
    set_status(f, p.id, GH_STORE_HOOK_ACTIVE, "up");
    snprintf(sql, sizeof(sql),
             "%s INSERT INTO webhook_deliveries (message_seq, endpoint_id, tenant_id, status, "
             "next_attempt_at, created_at, updated_at) SELECT (SELECT max(seq) FROM "
             "webhook_messages), '%s', '%s', 'pending', 0, 1, 1 FROM %s",
             f->ts.db[0] ? ""
                         : "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s "
                           "WHERE i < 25000)",
             p.id, f->tenant, f->ts.db[0] ? "generate_series(1, 25000)" : "s");
    raw(f, sql);
    set_status(f, p.id, GH_STORE_HOOK_DISABLED, "down again");
    assert_int_equal(raw_int(f, sql_paused_count(sql, sizeof(sql), f, p.id)),
                     f->ts.db[0] ? 25000 : 25001);
    /* The look leaves a disabled endpoint's paused deliveries alone. */
    assert_int_equal(gh_store_hook_resume_stray(f->st, 10, &resumed, &err), GH_OK);
    assert_int_equal(resumed, 0);
    set_status(f, p.id, GH_STORE_HOOK_ACTIVE, "up again");
    assert_int_equal(raw_int(f, sql_paused_count(sql, sizeof(sql), f, p.id)), 0);
}

struct reports {
    size_t n;
    char tenant[4][GH_STORE_TENANT_ID_SIZE], reason[4][16];
    struct gh_store_hook_report r[4];
};

static int count_reports(const char *tenant, const char *endpoint, const char *reason,
                         int64_t lease, void *arg)
{
    struct reports *c = arg;

    assert_true(c->n < 4);
    snprintf(c->tenant[c->n], sizeof(c->tenant[0]), "%s", tenant);
    snprintf(c->r[c->n].endpoint_id, sizeof(c->r[0].endpoint_id), "%s", endpoint);
    snprintf(c->reason[c->n], sizeof(c->reason[0]), "%s", reason);
    c->r[c->n].lease = lease;
    c->n++;
    return GH_OK;
}

/* The report_after of endpoint <id>. */
static int64_t report_after(struct fixture *f, const char *id)
{
    char sql[160];

    snprintf(sql, sizeof(sql), "SELECT report_after FROM webhook_endpoints WHERE id = '%s'", id);
    return raw_int(f, sql);
}

/* A disabling's report is the disabling caller's for its lease: nobody
 * else takes it meanwhile; once the lease ran out without the report made
 * (hook_reports_done), one claim takes it, with its reason, and leases it
 * again; made, it is never taken again. A report made under a lease that
 * a later disabling replaced leaves the later one's to make. */
static void test_disabling_reports_made_once(void **state)
{
    struct fixture *f = *state;
    static const char *const all[] = {"*", NULL};
    struct gh_store_hook_endpoint e, quiet;
    struct gh_store_hook_outcome o;
    struct claimed cl = {0};
    struct reports r1 = {0}, r2 = {0}, r3 = {0};
    struct gh_store_hook_report bad[65];
    struct gh_err err = {0};
    char sql[256];
    int disabled = 0;

    endpoint_new(f, f->tenant, all, &e);
    endpoint_new(f, f->other, all, &quiet);
    publish(f, f->tenant, "m1", "a.b", 1, false);
    assert_int_equal(gh_store_hook_claim(f->st, "o", 16, on_due, &cl, &err), GH_OK);
    assert_int_equal(cl.n, 1);
    outcome_of(&cl, "m1", GH_STORE_DELIVERY_FAILED, &o);
    o.at = (int64_t)gh_wall_ms() - 10000;
    assert_int_equal(gh_store_hook_record(f->st, "o", &o, 1, 5000, on_disabled, &disabled, &err),
                     GH_OK);
    assert_int_equal(disabled, 1);
    int64_t first = report_after(f, e.id);
    assert_true(first > (int64_t)gh_wall_ms());
    /* Leased to the disabling caller: nobody else reports it. */
    assert_int_equal(gh_store_hook_reports_claim(f->st, count_reports, &r1, &err), GH_OK);
    assert_int_equal(r1.n, 0);
    /* The caller died: the lease runs out. */
    snprintf(sql, sizeof(sql), "UPDATE webhook_endpoints SET report_after = 1 WHERE id = '%s'",
             e.id);
    raw(f, sql);
    assert_int_equal(gh_store_hook_reports_claim(f->st, count_reports, &r2, &err), GH_OK);
    assert_int_equal(r2.n, 1);
    assert_string_equal(r2.tenant[0], f->tenant);
    assert_string_equal(r2.r[0].endpoint_id, e.id);
    assert_string_equal(r2.reason[0], "failing");
    assert_int_equal(r2.r[0].lease, report_after(f, e.id));
    memset(&r1, 0, sizeof(r1));
    assert_int_equal(gh_store_hook_reports_claim(f->st, count_reports, &r1, &err), GH_OK);
    assert_int_equal(r1.n, 0); /* leased again, to the second caller */
    /* The first caller comes back and says it made it: under a lease
     * that is no longer the endpoint's, so nothing changes. */
    struct gh_store_hook_report stale = r2.r[0];
    stale.lease = 1;
    assert_int_equal(gh_store_hook_reports_done(f->st, &stale, 1, &err), GH_OK);
    assert_int_equal(report_after(f, e.id), r2.r[0].lease);
    assert_int_equal(gh_store_hook_reports_done(f->st, r2.r, 1, &err), GH_OK);
    assert_int_equal(report_after(f, e.id), 0);
    assert_int_equal(gh_store_hook_reports_claim(f->st, count_reports, &r3, &err), GH_OK);
    assert_int_equal(r3.n, 0);
    /* An endpoint an admin disables has no report to make. */
    quiet.status = GH_STORE_HOOK_DISABLED;
    assert_int_equal(gh_store_hook_endpoint_update(f->st, &quiet, &err), GH_OK);
    assert_int_equal(report_after(f, quiet.id), 0);

    /* Validation. */
    assert_int_equal(gh_store_hook_reports_claim(f->st, NULL, NULL, &err), GH_STORE_INVALID);
    assert_int_equal(gh_store_hook_reports_done(f->st, bad, 0, &err), GH_OK);
    for (size_t i = 0; i < 65; i++)
        bad[i] = r2.r[0];
    assert_int_equal(gh_store_hook_reports_done(f->st, bad, 65, &err), GH_STORE_INVALID);
    bad[0].lease = 0;
    assert_int_equal(gh_store_hook_reports_done(f->st, bad, 1, &err), GH_STORE_INVALID);
    bad[0] = r2.r[0];
    snprintf(bad[0].endpoint_id, sizeof(bad[0].endpoint_id), "ep_bad'");
    assert_int_equal(gh_store_hook_reports_done(f->st, bad, 1, &err), GH_STORE_INVALID);
    memset(bad[0].endpoint_id, 'x', sizeof(bad[0].endpoint_id)); /* unterminated */
    assert_int_equal(gh_store_hook_reports_done(f->st, bad, 1, &err), GH_STORE_INVALID);
}

/* A message created after the cutoff (here: a node whose clock ran an hour
 * ahead) is passed over, not a stop, and the old ones behind it go; a
 * pending delivery whose next attempt is still to come (a retry gap longer
 * than the retention) keeps its message until that attempt is no longer
 * ahead. */
static void test_retention_young_ones_and_waiting_retries(void **state)
{
    struct fixture *f = *state;
    static const char *const all[] = {"*", NULL};
    struct gh_store_hook_endpoint e;
    struct gh_store_hook_purged p;
    struct gh_err err = {0};
    char sql[256];
    int64_t now = (int64_t)gh_wall_ms();

    publish(f, f->tenant, "ahead", "order.a", 0, false);
    publish(f, f->tenant, "old-1", "order.a", 0, false);
    endpoint_new(f, f->tenant, all, &e);
    publish(f, f->tenant, "retry", "order.a", 1, false);
    publish(f, f->other, "old-2", "order.a", 0, false);
    snprintf(sql, sizeof(sql),
             "UPDATE webhook_messages SET created_at = %lld WHERE id = 'ahead';"
             "UPDATE webhook_deliveries SET updated_at = 0, next_attempt_at = %lld;",
             (long long)(now + 3600000), (long long)(now + 3600000));
    raw(f, sql);

    /* Two at a time: "ahead" and "old-1" first; one old, so more follow. */
    assert_int_equal(gh_store_hook_purge(f->st, "o", 0, now + 1000, 2, &p, &err), GH_OK);
    assert_int_equal(p.messages, 1);
    assert_true(p.more);
    int64_t after = p.last_seq;
    assert_int_equal(gh_store_hook_purge(f->st, "o", after, now + 1000, 2, &p, &err), GH_OK);
    assert_int_equal(p.messages, 1); /* old-2; "retry" waits for its attempt */
    assert_int_equal(p.kept, 1);
    assert_true(p.more);
    assert_int_equal(gh_store_hook_purge(f->st, "o", p.last_seq, now + 1000, 2, &p, &err), GH_OK);
    assert_int_equal(p.messages, 0);
    assert_false(p.more);

    /* Its attempt no longer ahead (its endpoint disabled since, say): it goes. */
    raw(f, "UPDATE webhook_deliveries SET next_attempt_at = 0;");
    assert_int_equal(gh_store_hook_purge(f->st, "o", 0, now + 1000, 100, &p, &err), GH_OK);
    assert_int_equal(p.messages, 1);
    assert_int_equal(p.undelivered, 1);
    assert_false(p.more);
    /* A whole batch ahead of the clock is no end of the pass either. */
    publish(f, f->tenant, "ahead-2", "order.a", 1, false);
    publish(f, f->tenant, "old-3", "order.a", 1, false);
    snprintf(sql, sizeof(sql),
             "UPDATE webhook_messages SET created_at = %lld WHERE id = 'ahead-2';"
             "UPDATE webhook_deliveries SET updated_at = 0, next_attempt_at = 0;",
             (long long)(now + 3600000));
    raw(f, sql);
    assert_int_equal(gh_store_hook_purge(f->st, "o", 0, now + 1000, 2, &p, &err), GH_OK);
    assert_int_equal(p.messages, 0); /* "ahead" and "ahead-2" */
    assert_true(p.more);
    assert_int_equal(gh_store_hook_purge(f->st, "o", p.last_seq, now + 1000, 2, &p, &err), GH_OK);
    assert_int_equal(p.messages, 1); /* "old-3" */
    /* "ahead" is left. */
    size_t n;
    bool dup = false;
    assert_int_equal(gh_store_hook_publish(f->st, f->tenant, "ahead", "order.a", "{\"a\":1}", 7, 0,
                                           &n, &dup, &err),
                     GH_OK);
    assert_true(dup);
}

static void test_validation(void **state)
{
    struct fixture *f = *state;
    struct gh_store_hook_endpoint e;
    struct gh_err err = {0};
    size_t n;
    bool dup;

    assert_true(gh_store_hook_pattern_match("order.*", "order.created"));
    assert_true(gh_store_hook_pattern_match("order.*", "order.item.added"));
    assert_false(gh_store_hook_pattern_match("order.*", "order"));
    assert_false(gh_store_hook_pattern_match("order.*", "orders.created"));
    assert_true(gh_store_hook_pattern_match("*", "x"));
    assert_false(gh_store_valid_hook_pattern("order*"));
    assert_false(gh_store_valid_hook_type("Order.Created"));
    assert_false(gh_store_valid_hook_type(""));
    {
        char desc[GH_STORE_HOOK_DESC_MAX + 2];
        memset(desc, 'a', sizeof(desc) - 1);
        desc[sizeof(desc) - 1] = '\0';
        assert_false(gh_store_valid_hook_description(desc)); /* 257 bytes */
        desc[GH_STORE_HOOK_DESC_MAX] = '\0';
        assert_true(gh_store_valid_hook_description(desc)); /* 256 */
        assert_true(gh_store_valid_hook_description(""));
        assert_true(gh_store_valid_hook_description("caf\xc3\xa9 orders"));
        assert_false(gh_store_valid_hook_description("a\tb"));
        assert_false(gh_store_valid_hook_description("a\x1b[31m"));
        assert_false(gh_store_valid_hook_description("del\x7f"));
        assert_false(gh_store_valid_hook_description(NULL));
    }

    memset(&e, 0, sizeof(e));
    snprintf(e.tenant_id, sizeof(e.tenant_id), "%s", f->tenant);
    snprintf(e.url, sizeof(e.url), "http://x/");
    e.secret_version = 1;
    assert_int_equal(gh_store_hook_endpoint_insert(f->st, &e, &err), GH_STORE_INVALID); /* events */
    snprintf(e.events[0], sizeof(e.events[0]), "BAD");
    e.nevents = 1;
    assert_int_equal(gh_store_hook_endpoint_insert(f->st, &e, &err), GH_STORE_INVALID);
    snprintf(e.events[0], sizeof(e.events[0]), "ok");
    snprintf(e.description, sizeof(e.description), "tab\there");
    assert_int_equal(gh_store_hook_endpoint_insert(f->st, &e, &err), GH_STORE_INVALID);
    assert_int_equal(
        gh_store_hook_publish(f->st, f->tenant, "m", "Bad", "{}", 2, 0, &n, &dup, &err),
        GH_STORE_INVALID);
    assert_int_equal(
        gh_store_hook_publish(f->st, f->tenant, "m m", "ok", "{}", 2, 0, &n, &dup, &err),
        GH_STORE_INVALID);
}

/* ---- PostgreSQL: two nodes at once ---------------------------------------------- */

struct recorder {
    struct gh_store *st;
    const char *owner;
    struct gh_store_hook_outcome o;
    int64_t disable_after_ms;
    int rc;
    char msg[512];
};

static void *record_thread(void *arg)
{
    struct recorder *r = arg;
    struct gh_err err = {0};

    r->rc = gh_store_hook_record(r->st, r->owner, &r->o, 1, r->disable_after_ms, NULL, NULL, &err);
    snprintf(r->msg, sizeof(r->msg), "%s", err.msg);
    return NULL;
}

/* Waits until <n> sessions of the test's database wait for a lock. */
static void wait_for_lock_waiters(PGconn *c, int n)
{
    for (int tries = 0; tries < 500; tries++) {
        PGresult *r = PQexec(c, "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                                "current_database() AND wait_event_type = 'Lock'");
        int waiting = PQresultStatus(r) == PGRES_TUPLES_OK ? atoi(PQgetvalue(r, 0, 0)) : -1;
        PQclear(r);
        if (waiting >= n) return;
        usleep(10000);
    }
    fail_msg("%d sessions never waited for a lock", n);
}

/* Runs <fa>(<a>) and <fb>(<b>), each on a thread of its own, in a forced
 * order: a third session holds endpoint <ep>'s row until the first waits
 * for a lock and the second waits too, then commits. Both have finished
 * when this returns. */
static void behind_the_row(struct fixture *f, const char *ep, void *(*fa)(void *), void *a,
                           void *(*fb)(void *), void *b)
{
    PGconn *holder = gh_test_pg_connect(f->ts.db);
    pthread_t ta, tb;
    char sql[256];

    assert_non_null(holder);
    snprintf(sql, sizeof(sql), "BEGIN; SELECT 1 FROM webhook_endpoints WHERE id = '%s' FOR UPDATE",
             ep);
    assert_true(gh_test_pg_run(holder, sql));
    assert_int_equal(pthread_create(&ta, NULL, fa, a), 0);
    wait_for_lock_waiters(holder, 1);
    assert_int_equal(pthread_create(&tb, NULL, fb, b), 0);
    wait_for_lock_waiters(holder, 2);
    assert_true(gh_test_pg_run(holder, "COMMIT"));
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    PQfinish(holder);
}

/* <r> as node <owner>'s record of a retry of <delivery> of endpoint <ep>:
 * a 503, due again in an hour. */
static void retry_outcome(struct recorder *r, struct gh_store *st, const char *owner,
                          int64_t delivery, const char *ep, int64_t disable_after_ms)
{
    r->st = st;
    r->owner = owner;
    r->o.delivery_id = delivery;
    snprintf(r->o.endpoint_id, sizeof(r->o.endpoint_id), "%s", ep);
    r->o.at = (int64_t)gh_wall_ms();
    r->o.status = 503;
    r->o.next = GH_STORE_DELIVERY_PENDING;
    r->o.next_attempt_at = (int64_t)gh_wall_ms() + 3600000;
    r->disable_after_ms = disable_after_ms;
}

/* The set-up of the two-node tests: endpoint <e> for every event, two
 * messages (a delivery each), and another handle on the same database (a
 * second node), its lock timeout <lock_ms> (0: the default). */
static struct gh_store *
two_deliveries_and_a_node(struct fixture *f, struct gh_store_hook_endpoint *e, uint32_t lock_ms)
{
    static const char *const all[] = {"*", NULL};
    struct gh_store_params params = {0};
    struct gh_store *node = NULL;
    struct gh_err err = {0};
    char url[256];

    endpoint_new(f, f->tenant, all, e);
    publish(f, f->tenant, "m1", "order.a", 1, false);
    publish(f, f->tenant, "m2", "order.a", 1, false);
    gh_test_pg_url(url, sizeof(url), "gatehouse", f->ts.db);
    params.postgres_url = url;
    params.lock_timeout_ms = lock_ms;
    if (gh_store_open(&params, &node, &err) != GH_OK) fail_msg("open: %s", err.msg);
    return node;
}

/* Node A records the failure that disables endpoint E while node B records
 * a retry of its own delivery of E. Each batch writes its deliveries, then
 * E's health; A's then fails E's pending deliveries, B's among them. With
 * that last step in the same transaction, A held E's row and waited for
 * B's delivery while B held its delivery and waited for E's row: a
 * deadlock, and one batch refused. The order is forced: a third session
 * holds E's row until A, then B, wait behind it, so A takes it first. */
static void test_pg_outcomes_while_an_endpoint_is_disabled(void **state)
{
    struct fixture *f = *state;
    struct gh_store_hook_endpoint e, got;
    struct gh_store *node_b;
    struct claimed ca = {0}, cb = {0};
    struct recorder a = {0}, b = {0};
    struct gh_err err = {0};

    node_b = two_deliveries_and_a_node(f, &e, 0);
    assert_int_equal(gh_store_hook_claim(f->st, "node-a", 1, on_due, &ca, &err), GH_OK);
    assert_int_equal(gh_store_hook_claim(node_b, "node-b", 1, on_due, &cb, &err), GH_OK);
    assert_int_equal(ca.n, 1);
    assert_int_equal(cb.n, 1);

    a.st = f->st;
    a.owner = "node-a";
    a.o.delivery_id = ca.due[0].delivery_id;
    snprintf(a.o.endpoint_id, sizeof(a.o.endpoint_id), "%s", e.id);
    a.o.at = (int64_t)gh_wall_ms() - 10000; /* failing for 10 s */
    a.o.status = 500;
    a.o.next = GH_STORE_DELIVERY_FAILED;
    a.disable_after_ms = 5000;
    retry_outcome(&b, node_b, "node-b", cb.due[0].delivery_id, e.id, 5000);
    behind_the_row(f, e.id, record_thread, &a, record_thread, &b);

    /* Both batches stored, and E's deliveries failed with it. */
    assert_int_equal(a.rc, GH_OK);
    if (b.rc != GH_OK) fail_msg("node B: %d %s", b.rc, b.msg);
    assert_int_equal(gh_store_hook_endpoint_get(f->st, f->tenant, e.id, &got, &err), GH_OK);
    assert_int_equal(got.status, GH_STORE_HOOK_DISABLED);
    assert_string_equal(got.disabled_reason, "failing");
    struct gh_store_hook_delivery dl;
    struct gh_store_hook_attempt at[4];
    size_t nat;
    assert_int_equal(
        gh_store_hook_delivery_get(f->st, f->tenant, e.id, b.o.delivery_id, &dl, at, 4, &nat, &err),
        GH_OK);
    assert_int_equal(dl.status, GH_STORE_DELIVERY_FAILED);
    assert_int_equal(nat, 1); /* B's attempt is kept */
    uint64_t pending = 99;
    assert_int_equal(gh_store_hook_pending_count(f->st, &pending, &err), GH_OK);
    assert_int_equal(pending, 0);
    gh_store_close(node_b);
}

struct deleter {
    struct gh_store *st;
    const char *tenant, *id;
    int rc;
    char msg[512];
};

static void *delete_thread(void *arg)
{
    struct deleter *d = arg;
    struct gh_err err = {0};

    d->rc = gh_store_hook_endpoint_delete(d->st, d->tenant, d->id, NULL, &err);
    snprintf(d->msg, sizeof(d->msg), "%s", err.msg);
    return NULL;
}

/* An admin deletes endpoint E on one node while another node records the
 * first failure of its delivery of E. The batch writes the delivery, then
 * E's health (its failure clock); the delete takes E's deliveries, then
 * E's row. When the delete took E's row first, it waited for the batch's
 * delivery while the batch waited for E's row: a deadlock, and one of them
 * refused. The order is forced: a third session holds E's row until the
 * delete, then the batch, wait (the delete behind it, the batch behind the
 * delete's lock on the delivery; in the old order, behind the delete on E's
 * row, holding its delivery). */
static void test_pg_a_delete_while_an_outcome_is_stored(void **state)
{
    struct fixture *f = *state;
    struct gh_store_hook_endpoint e, got;
    struct gh_store *node_b;
    struct claimed cb = {0};
    struct recorder b = {0};
    struct deleter a = {0};
    struct gh_err err = {0};

    node_b = two_deliveries_and_a_node(f, &e, 0);
    assert_int_equal(gh_store_hook_claim(node_b, "node-b", 1, on_due, &cb, &err), GH_OK);
    assert_int_equal(cb.n, 1);
    a.st = f->st;
    a.tenant = f->tenant;
    a.id = e.id;
    retry_outcome(&b, node_b, "node-b", cb.due[0].delivery_id, e.id, 3600000);
    behind_the_row(f, e.id, delete_thread, &a, record_thread, &b);

    /* Neither refused: E is gone with its deliveries, and the batch's
     * outcome, for a delivery gone meanwhile, changed nothing. */
    if (a.rc != GH_OK) fail_msg("the delete: %d %s", a.rc, a.msg);
    if (b.rc != GH_OK) fail_msg("the batch: %d %s", b.rc, b.msg);
    assert_int_equal(gh_store_hook_endpoint_get(f->st, f->tenant, e.id, &got, &err),
                     GH_STORE_NOT_FOUND);
    uint64_t pending = 99;
    assert_int_equal(gh_store_hook_pending_count(f->st, &pending, &err), GH_OK);
    assert_int_equal(pending, 0);
    gh_store_close(node_b);
}

/* The outcomes of a batch are stored even when disabling an endpoint after
 * them fails (here: a delivery of the endpoint held by another session past
 * the lock timeout): the call answers GH_OK, so the dispatcher does not
 * record the batch again (that would release claims it made of the same
 * deliveries since), and the endpoint is disabled by a later batch. */
static void test_pg_outcomes_stored_when_disabling_fails(void **state)
{
    struct fixture *f = *state;
    struct gh_store_hook_endpoint e, got;
    struct gh_store *node;
    struct claimed cl = {0};
    struct gh_store_hook_outcome o;
    struct gh_store_hook_delivery dl;
    struct gh_store_hook_attempt at[4];
    struct gh_err err = {0};
    char sql[200];
    size_t nat;
    int disabled = 0;
    PGconn *holder;

    node = two_deliveries_and_a_node(f, &e, 300);
    assert_int_equal(gh_store_hook_claim(node, "node-a", 1, on_due, &cl, &err), GH_OK);
    assert_int_equal(cl.n, 1);

    holder = gh_test_pg_connect(f->ts.db);
    assert_non_null(holder);
    snprintf(sql, sizeof(sql),
             "BEGIN; SELECT 1 FROM webhook_deliveries WHERE id <> %lld FOR UPDATE",
             (long long)cl.due[0].delivery_id);
    assert_true(gh_test_pg_run(holder, sql));
    memset(&o, 0, sizeof(o));
    o.delivery_id = cl.due[0].delivery_id;
    snprintf(o.endpoint_id, sizeof(o.endpoint_id), "%s", e.id);
    o.at = (int64_t)gh_wall_ms() - 10000; /* failing for 10 s */
    o.status = 500;
    o.next = GH_STORE_DELIVERY_FAILED;
    assert_int_equal(
        gh_store_hook_record(node, "node-a", &o, 1, 5000, on_disabled, &disabled, &err), GH_OK);
    assert_int_equal(disabled, 0);
    assert_int_equal(
        gh_store_hook_delivery_get(f->st, f->tenant, e.id, o.delivery_id, &dl, at, 4, &nat, &err),
        GH_OK);
    assert_int_equal(dl.status, GH_STORE_DELIVERY_FAILED);
    assert_int_equal(nat, 1);
    assert_int_equal(gh_store_hook_endpoint_get(f->st, f->tenant, e.id, &got, &err), GH_OK);
    assert_int_equal(got.status, GH_STORE_HOOK_ACTIVE);

    /* Released: the next batch disables it, and says so once. */
    assert_true(gh_test_pg_run(holder, "COMMIT"));
    PQfinish(holder);
    o.at += 1;
    assert_int_equal(
        gh_store_hook_record(node, "node-a", &o, 1, 5000, on_disabled, &disabled, &err), GH_OK);
    assert_int_equal(disabled, 1);
    assert_int_equal(gh_store_hook_endpoint_get(f->st, f->tenant, e.id, &got, &err), GH_OK);
    assert_int_equal(got.status, GH_STORE_HOOK_DISABLED);
    gh_store_close(node);
}

struct status_setter {
    struct gh_store *st;
    struct gh_store_hook_endpoint e;
    int rc;
};

static void *status_thread(void *arg)
{
    struct status_setter *w = arg;
    struct gh_err err = {0};

    w->rc = gh_store_hook_endpoint_update(w->st, &w->e, &err);
    return NULL;
}

/* An admin disables endpoint E on one node while another admin enables it
 * on another, both from one read: the second waits for the first (the
 * endpoint's advisory lock), then finds the revision moved and writes
 * nothing; read again, its change resumes what the first paused. (Before
 * revisions and the lock, the second resumed nothing, the pause not
 * committed yet, then set E active: E active, its deliveries paused.) The
 * order is forced: a third session holds E's row until the first waits on
 * it and the second waits too. */
static void test_pg_status_changes_of_one_endpoint_do_not_cross(void **state)
{
    struct fixture *f = *state;
    struct gh_store_hook_endpoint e;
    struct status_setter off = {0}, on = {0};
    struct gh_err err = {0};
    char sql[256];
    struct gh_store *node = two_deliveries_and_a_node(f, &e, 0);

    off.st = f->st;
    on.st = node;
    assert_int_equal(gh_store_hook_endpoint_get(f->st, f->tenant, e.id, &off.e, &err), GH_OK);
    on.e = off.e;
    off.e.status = GH_STORE_HOOK_DISABLED;
    on.e.status = GH_STORE_HOOK_ACTIVE;
    behind_the_row(f, e.id, status_thread, &off, status_thread, &on);
    /* Both read one revision: the second to write finds it changed and
     * writes nothing, then (as the API does) reads again and applies. */
    assert_int_equal(off.rc, GH_OK);
    assert_int_equal(on.rc, GH_STORE_CONFLICT);
    assert_int_equal(raw_int(f, sql_paused_count(sql, sizeof(sql), f, e.id)), 2);
    assert_int_equal(gh_store_hook_endpoint_get(f->st, f->tenant, e.id, &on.e, &err), GH_OK);
    assert_int_equal(on.e.status, GH_STORE_HOOK_DISABLED);
    on.e.status = GH_STORE_HOOK_ACTIVE;
    assert_int_equal(gh_store_hook_endpoint_update(node, &on.e, &err), GH_OK);
    assert_int_equal(gh_store_hook_endpoint_get(f->st, f->tenant, e.id, &off.e, &err), GH_OK);
    assert_int_equal(off.e.status, GH_STORE_HOOK_ACTIVE);
    assert_int_equal(raw_int(f, sql_paused_count(sql, sizeof(sql), f, e.id)), 0);
    gh_store_close(node);
}

struct replayer {
    struct gh_store *st;
    const char *tenant, *endpoint;
    int64_t id;
    int rc;
};

static void *replay_thread(void *arg)
{
    struct replayer *r = arg;
    struct gh_err err = {0};

    r->rc = gh_store_hook_delivery_replay(r->st, r->tenant, r->endpoint, r->id, &err);
    return NULL;
}

/* The update's own check of the revision, for a change that commits
 * between its read and its write: here the dispatcher's disabling, which
 * takes no advisory lock, holding E's row while an admin's update of a
 * current read waits for it. The update writes nothing (CONFLICT) and E
 * stays disabled. Then the same with a disabling that does not move the
 * revision itself (an older build; the trigger moves it). */
static void test_pg_an_update_over_a_disabling_committed_meanwhile(void **state)
{
    struct fixture *f = *state;
    static const char *const all[] = {"*", NULL};
    /* As this build's disabling writes it, and as an older build's did. */
    static const char *const disablings[] = {", rev = rev + 1", ""};
    struct gh_store_hook_endpoint e, got;
    struct status_setter admin = {0};
    struct gh_err err = {0};
    pthread_t t;
    char sql[256];

    for (size_t i = 0; i < sizeof(disablings) / sizeof(disablings[0]); i++) {
        PGconn *holder = gh_test_pg_connect(f->ts.db);
        assert_non_null(holder);
        endpoint_new(f, f->tenant, all, &e);
        admin.st = f->st;
        assert_int_equal(gh_store_hook_endpoint_get(f->st, f->tenant, e.id, &admin.e, &err), GH_OK);
        snprintf(admin.e.description, sizeof(admin.e.description), "the admin's");
        assert_true(gh_test_pg_run(holder, "BEGIN"));
        snprintf(sql, sizeof(sql),
                 "UPDATE webhook_endpoints SET status = 'disabled', disabled_reason = 'failing'%s "
                 "WHERE id = '%s'",
                 disablings[i], e.id);
        assert_true(gh_test_pg_run(holder, sql));
        assert_int_equal(pthread_create(&t, NULL, status_thread, &admin), 0);
        wait_for_lock_waiters(holder, 1);
        assert_true(gh_test_pg_run(holder, "COMMIT"));
        pthread_join(t, NULL);
        PQfinish(holder);
        assert_int_equal(admin.rc, GH_STORE_CONFLICT);
        assert_int_equal(gh_store_hook_endpoint_get(f->st, f->tenant, e.id, &got, &err), GH_OK);
        assert_int_equal(got.status, GH_STORE_HOOK_DISABLED);
        assert_int_equal(got.rev, 2);
        assert_string_not_equal(got.description, "the admin's");
    }
}

/* A replay of E's failed delivery D while an admin disables E: the replay
 * waits for the disabling (the endpoint's advisory lock, which both take),
 * then reads E disabled and leaves D paused. Without the lock it read E
 * active before the disabling committed, and D stayed pending and unpaused
 * behind a disabled endpoint. The order is forced: a third session holds
 * E's row until the disabling waits on it and the replay waits too. */
static void test_pg_a_replay_while_an_admin_disables(void **state)
{
    struct fixture *f = *state;
    struct gh_store_hook_endpoint e;
    struct gh_store *node = two_deliveries_and_a_node(f, &e, 0);
    struct claimed cl = {0};
    struct gh_store_hook_outcome o;
    struct status_setter off = {0};
    struct replayer rp = {0};
    struct gh_err err = {0};
    char sql[256];

    assert_int_equal(gh_store_hook_claim(f->st, "node-a", 1, on_due, &cl, &err), GH_OK);
    assert_int_equal(cl.n, 1);
    memset(&o, 0, sizeof(o));
    o.delivery_id = cl.due[0].delivery_id;
    snprintf(o.endpoint_id, sizeof(o.endpoint_id), "%s", e.id);
    o.at = (int64_t)gh_wall_ms();
    o.status = 500;
    o.next = GH_STORE_DELIVERY_FAILED;
    assert_int_equal(gh_store_hook_record(f->st, "node-a", &o, 1, 3600000, NULL, NULL, &err),
                     GH_OK);

    off.st = f->st;
    assert_int_equal(gh_store_hook_endpoint_get(f->st, f->tenant, e.id, &off.e, &err), GH_OK);
    off.e.status = GH_STORE_HOOK_DISABLED;
    rp.st = node;
    rp.tenant = f->tenant;
    rp.endpoint = e.id;
    rp.id = o.delivery_id;
    behind_the_row(f, e.id, status_thread, &off, replay_thread, &rp);
    assert_int_equal(off.rc, GH_OK);
    assert_int_equal(rp.rc, GH_OK);
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM webhook_deliveries WHERE id = %lld AND status = 'pending' "
             "AND paused",
             (long long)o.delivery_id);
    assert_int_equal(raw_int(f, sql), 1);
    gh_store_close(node);
}

/* Migration 20 on a database at 19 (`postgres init` after an upgrade): the
 * pending deliveries of an endpoint disabled before it are paused, though
 * the owner that runs the migrations sees no tenant's row. */
static void test_pg_migration_20_pauses_waiting_deliveries(void **state)
{
    struct fixture *f = *state;
    static const char *const all[] = {"*", NULL};
    struct gh_store_hook_endpoint a, p;
    struct gh_err err = {0};
    char sql[2048], url[256];

    endpoint_new(f, f->tenant, all, &a);
    endpoint_new(f, f->tenant, all, &p);
    publish(f, f->tenant, "m1", "a.b", 2, false);
    publish(f, f->tenant, "m2", "a.b", 2, false);
    snprintf(sql, sizeof(sql),
             GH_TEST_WEBHOOKS_AT_19(GH_TEST_REV_TRIGGER_PG) "UPDATE webhook_endpoints SET status = "
                                                            "'disabled' WHERE id = '%s'",
             p.id);
    raw(f, sql);
    gh_test_pg_url(url, sizeof(url), NULL, f->ts.db);
    assert_int_equal(gh_store_postgres_init(url, NULL, "gatehouse", NULL, NULL, &err), GH_OK);
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FILTER (WHERE paused AND endpoint_id = '%s') * 10 + "
             "count(*) FILTER (WHERE paused) FROM webhook_deliveries",
             p.id);
    assert_int_equal(raw_int(f, sql), 22);
}

/* Migration 22 on a database at 21: a finished delivery left paused is
 * unpaused, a pending one stays paused, though the owner that runs the
 * migrations sees no tenant's row (its data step runs as the operator;
 * as the owner it unpaused nothing). */
static void test_pg_migration_22_unpauses_finished_deliveries(void **state)
{
    struct fixture *f = *state;
    static const char *const all[] = {"*", NULL};
    struct gh_store_hook_endpoint p;
    struct gh_err err = {0};
    char sql[1024], url[256];

    endpoint_new(f, f->tenant, all, &p);
    publish(f, f->tenant, "m1", "a.b", 1, false);
    publish(f, f->tenant, "m2", "a.b", 1, false);
    snprintf(sql, sizeof(sql),
             "DELETE FROM schema_migrations WHERE version IN (22, 23);" GH_TEST_REV_TRIGGER_PG
             "ALTER TABLE webhook_endpoints DROP COLUMN rev;"
             "DROP INDEX webhook_deliveries_paused;"
             "UPDATE webhook_deliveries SET paused = true WHERE endpoint_id = '%s';"
             "UPDATE webhook_deliveries SET status = 'failed' WHERE id = (SELECT min(id) "
             "FROM webhook_deliveries WHERE endpoint_id = '%s')",
             p.id, p.id);
    raw(f, sql);
    gh_test_pg_url(url, sizeof(url), NULL, f->ts.db);
    assert_int_equal(gh_store_postgres_init(url, NULL, "gatehouse", NULL, NULL, &err), GH_OK);
    assert_int_equal(raw_int(f, "SELECT count(*) FILTER (WHERE paused AND status = 'pending') * "
                                "10 + count(*) FILTER (WHERE paused AND status <> 'pending') "
                                "FROM webhook_deliveries"),
                     10);
    assert_int_equal(raw_int(f, "SELECT count(*) FROM pg_indexes WHERE indexname = "
                                "'webhook_deliveries_paused'"),
                     1);
    assert_int_equal(raw_int(f, "SELECT min(rev) FROM webhook_endpoints"), 1);
}

int main(void)
{
    const struct CMUnitTest both[] = {
        cmocka_unit_test_setup_teardown(test_fan_out_and_claims, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disable_and_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention_young_ones_and_waiting_retries, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_validation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_paused_while_disabled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_writer_that_does_not_move_the_revision, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_disabling_reports_made_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_paused_left_behind_and_long_backlogs, setup, teardown),
    };
    /* A claim is SQLite's own there: held until its process ends, not a
     * lease (docs/postgres.md; the PostgreSQL retention is in
     * tests/integration/test_webhooks.py). */
    const struct CMUnitTest sqlite_only[] = {
        cmocka_unit_test_setup_teardown(test_retention, setup, teardown),
    };
    const struct CMUnitTest postgres_only[] = {
        cmocka_unit_test_setup_teardown(test_pg_outcomes_while_an_endpoint_is_disabled, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pg_outcomes_stored_when_disabling_fails, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pg_a_delete_while_an_outcome_is_stored, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pg_migration_20_pauses_waiting_deliveries, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pg_migration_22_unpauses_finished_deliveries, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pg_status_changes_of_one_endpoint_do_not_cross, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pg_an_update_over_a_disabling_committed_meanwhile,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_pg_a_replay_while_an_admin_disables, setup, teardown),
    };

    if (gh_test_pg_server()) {
        print_message("webhook store on PostgreSQL at %s\n", gh_test_pg_server());
        return cmocka_run_group_tests_name("webhook store on PostgreSQL", both, NULL, NULL) +
               cmocka_run_group_tests_name("PostgreSQL: two nodes", postgres_only, NULL, NULL);
    }
    return cmocka_run_group_tests_name("webhook store on SQLite", both, NULL, NULL) +
           cmocka_run_group_tests_name("SQLite's claims", sqlite_only, NULL, NULL);
}
