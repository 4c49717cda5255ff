/* Tests of the audit writer (src/audit/writer.c) and the workers' rings
 * (src/audit/ring.c) on a temporary SQLite store: events from two rings
 * and from gh_audit_submit land in their chains without gaps, strict
 * waiters are answered on their loop in ticket order, checkpoints come every
 * checkpoint_every events, a restart goes on with the chains, and the
 * verifier finds everything intact. Also prints the sustained rate of async
 * events into the store (the target: 100,000/s). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "audit/audit.h"
#include "audit/verify.h"
#include "core/clock.h"
#include "store/sqlite_int.h"
#include "store/store.h"
#include "stderr_capture.h"

#define TA           "tn_AAAAAAAAAAAAAAAAAAAA"
#define TB           "tn_BBBBBBBBBBBBBBBBBBBB"
#define TA_ZERO_HASH "0000000000000000000000000000000000000000000000000000000000000000"

struct fixture {
    char dir[64];
    char path[128];
    struct gh_store *st;
    struct gh_config *cfg;
};

static struct gh_config *config(const char *audit)
{
    char yaml[1024];
    struct gh_config *cfg = NULL;
    struct gh_err err = {0};

    snprintf(yaml, sizeof(yaml),
             "listen: [{address: \"127.0.0.1:8080\"}]\n"
             "upstreams: {app: {endpoints: [\"127.0.0.1:9000\"]}}\n"
             "routes: [{path: /, upstream: app}]\n%s",
             audit);
    if (gh_config_load_buffer("test.yaml", yaml, strlen(yaml), &cfg, &err) != GH_OK)
        fail_msg("config: %s", err.msg);
    return cfg;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct gh_store_params p = {0};
    struct gh_err err = {0};

    snprintf(f->dir, sizeof(f->dir), "/tmp/gh_writer_XXXXXX");
    if (mkdtemp(f->dir) == NULL) return -1;
    snprintf(f->path, sizeof(f->path), "%s/gatehouse.db", f->dir);
    p.sqlite_path = f->path;
    if (gh_store_open(&p, &f->st, &err) != GH_OK || gh_store_migrate(f->st, NULL, NULL, &err))
        fail_msg("open: %s", err.msg);
    f->cfg = config("audit: {checkpoint_every: 100, batch_max: 256, queue_size: 1024}\n");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    const char *suffix[] = {"", "-wal", "-shm"};
    char p[160];

    gh_store_close(f->st);
    gh_config_free(f->cfg);
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof(p), "%s%s", f->path, suffix[i]);
        unlink(p);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

/* ---- strict waiters ---- */

struct waiter {
    struct gh_audit_waiter wt;
    int done; /* 1 ok, -1 failed */
    uint64_t order;
};
static uint64_t done_count;

static void waiter_done(struct gh_audit_waiter *wt, bool ok)
{
    struct waiter *w = (struct waiter *)wt;
    w->done = ok ? 1 : -1;
    w->order = ++done_count;
}

static void fill(struct gh_audit_event *ev, const char *tenant, const char *action, int i)
{
    char rid[32];
    snprintf(rid, sizeof(rid), "r-%d", i);
    GH_AUDIT_SET(ev, tenant, gh_str_cstr(tenant));
    GH_AUDIT_SET(ev, actor, GH_STR_LIT("key:AAAAAAAAAAAAAAAA"));
    GH_AUDIT_SET(ev, action, gh_str_cstr(action));
    GH_AUDIT_SET(ev, request_id, gh_str_cstr(rid));
    ev->outcome = GH_AUDIT_SUCCESS;
    ev->status = 200;
}

struct submitter {
    struct gh_audit_service *s;
    int n, failures;
};

static void *submit_main(void *arg)
{
    struct submitter *sb = arg;
    for (int i = 0; i < sb->n; i++) {
        struct gh_audit_event ev;
        gh_audit_event_new(&ev);
        fill(&ev, i % 2 ? TB : "", "tenant.update", i);
        if (gh_audit_submit(sb->s, &ev, i % 10 == 0) != GH_OK) sb->failures++;
    }
    return NULL;
}

struct counts {
    uint64_t events[3], checkpoints[3];
    size_t chains;
    int bad;
};

static void count_cb(const struct gh_audit_chain_report *r, void *arg)
{
    struct counts *c = arg;
    int i = strcmp(r->chain, TA) == 0 ? 0 : strcmp(r->chain, TB) == 0 ? 1 : 2;
    c->events[i] = r->events;
    c->checkpoints[i] = r->checkpoints;
    c->chains++;
    if (r->problem != GH_AUDIT_INTACT) {
        c->bad++;
        print_message("chain %s: %s\n", r->chain, r->reason);
    }
}

static void verify_counts(struct gh_store *st, struct counts *c)
{
    struct gh_err err = {0};
    size_t bad = 99;
    memset(c, 0, sizeof(*c));
    assert_int_equal(gh_audit_verify(st, NULL, count_cb, c, &bad, &err), GH_OK);
    assert_int_equal(bad, 0);
    assert_int_equal(c->bad, 0);
}

#define NSTRICT 300
#define NSUB    200

static void test_rings_submit_strict_and_restart(void **state)
{
    struct fixture *f = *state;
    struct gh_err err = {0};
    struct gh_audit_service *s = gh_audit_service_new(f->cfg, f->st, 2, &err);
    struct event_base *base = event_base_new();
    struct gh_audit_worker *aw;
    static struct waiter w[NSTRICT];
    struct submitter sb = {.n = NSUB};
    struct gh_audit_stats st;
    struct counts c;
    pthread_t th;
    uint64_t deadline;

    assert_non_null(s);
    assert_non_null(base);
    assert_int_equal(gh_audit_service_start(s, &err), GH_OK);
    aw = gh_audit_worker_of(s, 0);
    assert_int_equal(gh_audit_worker_bind(aw, base), GH_OK);
    assert_null(gh_audit_worker_of(s, 2));

    sb.s = s;
    pthread_create(&th, NULL, submit_main, &sb);
    /* Worker 0: strict events on chain A, each waited on. */
    done_count = 0;
    for (int i = 0; i < NSTRICT; i++) {
        struct gh_audit_event *ev = gh_audit_worker_slot(aw);
        fill(ev, TA, "http.request", i);
        w[i].wt.done = waiter_done;
        gh_audit_worker_wait(aw, &w[i].wt, gh_audit_worker_push(aw, true));
    }
    /* One cancelled waiter is never called. */
    gh_audit_worker_cancel(aw, &w[7].wt);
    deadline = gh_now_ns() + 10000000000ull;
    while (done_count < NSTRICT - 1 && gh_now_ns() < deadline)
        event_base_loop(base, EVLOOP_ONCE);
    pthread_join(th, NULL);
    assert_int_equal(done_count, NSTRICT - 1);
    assert_int_equal(sb.failures, 0);
    for (int i = 0, last = 0; i < NSTRICT; i++) {
        if (i == 7) {
            assert_int_equal(w[i].done, 0);
            continue;
        }
        assert_int_equal(w[i].done, 1);
        assert_true((int)w[i].order > last); /* in ticket order */
        last = (int)w[i].order;
    }
    gh_audit_worker_unbind(aw);
    gh_audit_stats(s, &st);
    gh_audit_service_free(s); /* writes what is queued, checkpoints every head */

    verify_counts(f->st, &c);
    assert_int_equal(c.chains, 3);
    assert_int_equal(c.events[0], NSTRICT);
    assert_int_equal(c.events[1], NSUB / 2);
    assert_int_equal(c.events[2], NSUB / 2);
    assert_int_equal(c.checkpoints[0], NSTRICT / 100); /* 100, 200, 300 */
    assert_true(c.checkpoints[1] >= 1 && c.checkpoints[2] >= 1);
    assert_int_equal(st.events_failed, 0);
    assert_true(st.batches > 0 && st.batch_events_sum <= NSTRICT + NSUB);

    /* A restart goes on with the chains (heads and checkpoints from the store). */
    s = gh_audit_service_new(f->cfg, f->st, 1, &err);
    assert_non_null(s);
    assert_int_equal(gh_audit_service_start(s, &err), GH_OK);
    sb.s = s;
    sb.n = 10;
    submit_main(&sb);
    gh_audit_service_free(s);
    verify_counts(f->st, &c);
    assert_int_equal(c.events[1], NSUB / 2 + 5);
    assert_int_equal(c.events[2], NSUB / 2 + 5);
    event_base_free(base);
}

/* Async events from one ring as fast as the worker can write them; the
 * writer must keep up (the producer waits when the ring is full). */
static void test_async_rate(void **state)
{
    struct fixture *f = *state;
    struct gh_err err = {0};
    struct gh_config *cfg = config("audit: {batch_max: 4096, queue_size: 65536}\n");
    struct gh_audit_service *s = gh_audit_service_new(cfg, f->st, 1, &err);
    struct gh_audit_worker *aw;
    struct gh_audit_stats st;
    const int n = 200000;
    uint64_t t0, t1;
    struct counts c;

    assert_non_null(s);
    assert_int_equal(gh_audit_service_start(s, &err), GH_OK);
    aw = gh_audit_worker_of(s, 0);
    t0 = gh_now_ns();
    for (int i = 0; i < n; i++) {
        struct gh_audit_event *ev = gh_audit_worker_slot(aw);
        fill(ev, i % 3 == 0 ? TA : i % 3 == 1 ? TB : "", "http.request", i);
        gh_audit_params_from_query(ev, GH_STR_LIT("page=12345678&password=hunter2hunter2"), 4);
        gh_audit_worker_push(aw, false);
    }
    do {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
        gh_audit_stats(s, &st);
    } while (st.events_written < (uint64_t)n);
    t1 = gh_now_ns();
    gh_audit_service_free(s);
    print_message("audit writer: %d async events in %.3f s: %.0f events/s; %llu commits, "
                  "%.2f ms each, %llu producer waits\n",
                  n, (double)(t1 - t0) / 1e9, (double)n / ((double)(t1 - t0) / 1e9),
                  (unsigned long long)st.batches,
                  (double)st.commit_ns_sum / 1e6 / (double)(st.batches ? st.batches : 1),
                  (unsigned long long)st.producer_waits);
    assert_true(st.chained_ahead > 0);
    verify_counts(f->st, &c);
    assert_int_equal(c.events[0] + c.events[1] + c.events[2], (uint64_t)n);
    gh_config_free(cfg);
}

/* Two writers on one store (two nodes, or a gateway and the CLI), both
 * appending to the same chains at once: a batch that meets a head the
 * other moved is chained again, so every event is stored, once, and each
 * chain verifies without a fork or a gap. */
static void test_two_writers_one_chain(void **state)
{
    struct fixture *f = *state;
    struct gh_store_params p = {.sqlite_path = f->path};
    struct gh_store *st2 = NULL;
    struct gh_err err = {0};
    struct gh_audit_service *a, *b;
    struct submitter ta, tb;
    pthread_t pa, pb;
    struct counts c;
    const int n = 400;

    assert_int_equal(gh_store_open(&p, &st2, &err), GH_OK);
    a = gh_audit_service_new(f->cfg, f->st, 1, &err);
    b = gh_audit_service_new(f->cfg, st2, 1, &err);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(gh_audit_service_start(a, &err), GH_OK);
    assert_int_equal(gh_audit_service_start(b, &err), GH_OK);
    ta = (struct submitter){.s = a, .n = n};
    tb = (struct submitter){.s = b, .n = n};
    assert_int_equal(pthread_create(&pa, NULL, submit_main, &ta), 0);
    assert_int_equal(pthread_create(&pb, NULL, submit_main, &tb), 0);
    pthread_join(pa, NULL);
    pthread_join(pb, NULL);
    gh_audit_service_free(a); /* drains what is queued */
    gh_audit_service_free(b);
    assert_int_equal(ta.failures + tb.failures, 0);
    verify_counts(f->st, &c);
    /* submit_main alternates TB and the system chain: n of each in all. */
    assert_int_equal(c.events[1], (uint64_t)n);
    assert_int_equal(c.events[2], (uint64_t)n);
    gh_store_close(st2);
}

/* ---- a commit whose outcome is unknown ---- */

/* The SQLite store with its audit append made to fail as PostgreSQL's can:
 * <landed_cuts> appends commit and then answer UNAVAILABLE (the connection
 * cut during COMMIT), <lost_cuts> answer UNAVAILABLE without storing
 * anything; while <outage> holds, every append answers UNAVAILABLE. */
static struct {
    const struct gh_store_ops *real;
    struct gh_store_ops ops;
    _Atomic int landed_cuts, lost_cuts, calls;
    _Atomic bool outage;
} cut;

static int cut_append(struct gh_store *st, struct gh_store_audit_row *rows, size_t n,
                      const struct gh_store_audit_checkpoint *cps, size_t *ncp,
                      const struct gh_store_audit_rechain *rechain, bool *unsynced,
                      struct gh_err *err)
{
    int rc;

    atomic_fetch_add(&cut.calls, 1);
    if (atomic_load(&cut.outage))
        return gh_err_set(err, NULL, 0, 0, "outage"), GH_STORE_UNAVAILABLE;
    if (atomic_load(&cut.lost_cuts) > 0) {
        atomic_fetch_sub(&cut.lost_cuts, 1);
        atomic_store(&cut.outage, true);
        return gh_err_set(err, NULL, 0, 0, "cut before the commit"), GH_STORE_UNAVAILABLE;
    }
    rc = cut.real->audit_append(st, rows, n, cps, ncp, rechain, unsynced, err);
    if (rc == GH_OK && atomic_load(&cut.landed_cuts) > 0) {
        atomic_fetch_sub(&cut.landed_cuts, 1);
        atomic_store(&cut.outage, true);
        return gh_err_set(err, NULL, 0, 0, "cut during the commit"), GH_STORE_UNAVAILABLE;
    }
    return rc;
}

/* <f>'s store with its appends through cut_append, counters at 0; every
 * append answers UNAVAILABLE from the start when <outage>. */
static void cut_install(struct fixture *f, bool outage)
{
    cut.real = f->st->ops;
    cut.ops = *f->st->ops;
    cut.ops.audit_append = cut_append;
    atomic_store(&cut.calls, 0);
    atomic_store(&cut.outage, outage);
    atomic_store(&cut.landed_cuts, 0);
    atomic_store(&cut.lost_cuts, 0);
    f->st->ops = &cut.ops;
}

static void submit_n(struct gh_audit_service *s, const char *tenant, int from, int n, bool durable)
{
    for (int i = from; i < from + n; i++) {
        struct gh_audit_event ev;
        gh_audit_event_new(&ev);
        fill(&ev, tenant, "tenant.update", i);
        assert_int_equal(gh_audit_submit(s, &ev, durable), GH_OK);
    }
}

static void wait_written(struct gh_audit_service *s, uint64_t n)
{
    struct gh_audit_stats st;
    uint64_t deadline = gh_now_ns() + 10000000000ull;

    do {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
        gh_audit_stats(s, &st);
    } while (st.events_written < n && gh_now_ns() < deadline);
    assert_int_equal(st.events_written, n);
    assert_int_equal(st.events_failed, 0);
}

/* Async events whose append is cut (<landed>: after the commit, else
 * before it); meanwhile another writer appends to the same chain and more
 * events arrive; then the store comes back. Every event is stored once:
 * the batch in doubt is neither chained again after the other writer's
 * events when it had landed (a second copy), nor dropped when it had not. */
static void cut_scenario(struct fixture *f, bool landed)
{
    struct gh_store_params p = {.sqlite_path = f->path};
    struct gh_store *st2 = NULL;
    struct gh_err err = {0};
    struct gh_audit_service *a, *b;
    struct gh_audit_worker *aw;
    struct counts c;
    uint64_t deadline;
    int base;

    cut_install(f, false);

    assert_int_equal(gh_store_open(&p, &st2, &err), GH_OK);
    a = gh_audit_service_new(f->cfg, f->st, 2, &err);
    b = gh_audit_service_new(f->cfg, st2, 1, &err);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(gh_audit_service_start(a, &err), GH_OK);
    assert_int_equal(gh_audit_service_start(b, &err), GH_OK);
    submit_n(a, TA, 0, 3, true); /* seq 1..3, stored */

    /* Five async events from one ring: their append is cut. */
    base = atomic_load(&cut.calls);
    atomic_store(landed ? &cut.landed_cuts : &cut.lost_cuts, 1);
    aw = gh_audit_worker_of(a, 0);
    for (int i = 0; i < 5; i++) {
        fill(gh_audit_worker_slot(aw), TA, "http.request", 100 + i);
        gh_audit_worker_push(aw, false);
    }
    deadline = gh_now_ns() + 5000000000ull;
    while (atomic_load(&cut.calls) < base + 3 && gh_now_ns() < deadline) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    assert_true(atomic_load(&cut.calls) >= base + 3); /* cut, then tried in the outage */

    /* Meanwhile: the other writer appends to the chain, and more events
     * come to this one, from a submitter and from the other ring. */
    submit_n(b, TA, 200, 4, true);
    submit_n(a, TA, 300, 2, false);
    fill(gh_audit_worker_slot(gh_audit_worker_of(a, 1)), TA, "http.request", 400);
    gh_audit_worker_push(gh_audit_worker_of(a, 1), false);
    atomic_store(&cut.outage, false);

    wait_written(a, 3 + 5 + 2 + 1);
    gh_audit_service_free(a);
    gh_audit_service_free(b);
    f->st->ops = cut.real;
    gh_store_close(st2);

    verify_counts(f->st, &c);
    assert_int_equal(c.events[0], 3 + 5 + 4 + 2 + 1);
}

static void test_cut_after_commit_stored_once(void **state)
{
    cut_scenario(*state, true);
}

static void test_cut_before_commit_not_lost(void **state)
{
    cut_scenario(*state, false);
}

/* The log of an outage (docs/runbooks.md, GatehouseAuditWriterLag): async
 * events held while the store is out of reach give one line at once; the
 * outage ends with "works again" once the store takes them, and a stop
 * during it ends with the error line alone: the empty last round of a stop
 * stores nothing, so it is no recovery to report. */
static void outage_log(struct fixture *f, bool back, char *log, size_t cap)
{
    struct gh_err err = {0};
    struct gh_audit_service *a;
    struct gh_audit_worker *aw;
    uint64_t deadline;
    FILE *tmp;
    int saved;

    cut_install(f, true);

    tmp = gh_test_stderr_begin(&saved);
    a = gh_audit_service_new(f->cfg, f->st, 1, &err);
    assert_non_null(a);
    assert_int_equal(gh_audit_service_start(a, &err), GH_OK);
    aw = gh_audit_worker_of(a, 0);
    for (int i = 0; i < 2; i++) {
        fill(gh_audit_worker_slot(aw), TA, "http.request", i);
        gh_audit_worker_push(aw, false);
    }
    deadline = gh_now_ns() + 5000000000ull;
    while (atomic_load(&cut.calls) < 3 && gh_now_ns() < deadline) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    assert_true(atomic_load(&cut.calls) >= 3); /* held, and tried again */
    if (back) {
        atomic_store(&cut.outage, false);
        wait_written(a, 2);
    }
    gh_audit_service_free(a);
    f->st->ops = cut.real;
    gh_test_stderr_end(tmp, saved, log, cap);
}

static size_t count_of(const char *log, const char *what)
{
    size_t n = 0;

    for (const char *p = strstr(log, what); p != NULL; p = strstr(p + 1, what))
        n++;
    return n;
}

static void test_outage_ends_with_works_again(void **state)
{
    static char log[16384];

    outage_log(*state, true, log, sizeof(log));
    assert_int_equal(count_of(log, "audit: the store is unavailable; "), 1);
    assert_int_equal(count_of(log, "audit: storing events: works again after "), 1);
}

static void test_stop_in_an_outage_is_no_recovery(void **state)
{
    static char log[16384];

    outage_log(*state, false, log, sizeof(log));
    assert_int_equal(count_of(log, "audit: the store is unavailable; "), 1);
    assert_int_equal(count_of(log, "audit: stopping with the store unavailable: "), 1);
    assert_int_equal(count_of(log, "works again"), 0);
}

/* ---- the pipeline: a batch that fails while the next is chained ahead ---- */

enum fault { NO_FAULT, DISK_ERROR, HEAD_MOVED, CUT };

/* The SQLite store with every append slowed (so the writer chains the next
 * batch while one is being stored) and the appends numbered in <at>
 * failing without storing anything: a disk error, a CONFLICT (as when
 * another node moved a head), or UNAVAILABLE (a connection cut before the
 * commit). <store_conflicts> counts the CONFLICTs of the store itself: a
 * head it found stale. */
static struct {
    const struct gh_store_ops *real;
    struct gh_store_ops ops;
    _Atomic int calls, store_conflicts;
    enum fault at[32];
} slow;

static int slow_append(struct gh_store *st, struct gh_store_audit_row *rows, size_t n,
                       const struct gh_store_audit_checkpoint *cps, size_t *ncp,
                       const struct gh_store_audit_rechain *rechain, bool *unsynced,
                       struct gh_err *err)
{
    int call = atomic_fetch_add(&slow.calls, 1) + 1, rc;
    struct timespec ts = {0, 2000000};

    nanosleep(&ts, NULL);
    switch (call < 32 ? slow.at[call] : NO_FAULT) {
    case DISK_ERROR: return gh_err_set(err, NULL, 0, 0, "disk I/O error"), GH_ERROR;
    case HEAD_MOVED: return gh_err_set(err, NULL, 0, 0, "a head moved"), GH_STORE_CONFLICT;
    case CUT: return gh_err_set(err, NULL, 0, 0, "cut"), GH_STORE_UNAVAILABLE;
    case NO_FAULT: break;
    }
    rc = slow.real->audit_append(st, rows, n, cps, ncp, rechain, unsynced, err);
    if (rc == GH_STORE_CONFLICT) atomic_fetch_add(&slow.store_conflicts, 1);
    return rc;
}

/* 1,500 events queued in one ring before the writer starts, batches of 50:
 * the writer always has the next batch chained ahead of the one being
 * stored. <run> events in a row go to one chain (TA, TB, system in turn; 0:
 * all to TA), and the appends in <faults> (numbered from 1) fail. Each
 * failed batch's events are counted failed (<lost> in all), and the batch
 * chained after it is undone, so it is chained again from the right heads:
 * the store never finds a head stale. A CONFLICT or a cut batch is stored
 * after all. Every other event is stored once, in chains without a gap or
 * a fork. */
static void pipeline_scenario(struct fixture *f, int run, const int *calls,
                              const enum fault *faults, size_t nfaults, uint64_t lost)
{
    struct gh_config *cfg =
        config("audit: {checkpoint_every: 30, batch_max: 50, queue_size: 4096}\n");
    struct gh_err err = {0};
    struct gh_audit_service *s = gh_audit_service_new(cfg, f->st, 1, &err);
    struct gh_audit_worker *aw;
    struct gh_audit_stats st;
    struct counts c;
    const int n = 1500;
    const char *chains[3] = {TA, TB, ""};
    uint64_t deadline;

    assert_non_null(s);
    slow.real = f->st->ops;
    slow.ops = *f->st->ops;
    slow.ops.audit_append = slow_append;
    atomic_store(&slow.calls, 0);
    atomic_store(&slow.store_conflicts, 0);
    memset(slow.at, 0, sizeof(slow.at));
    for (size_t i = 0; i < nfaults; i++)
        slow.at[calls[i]] = faults[i];
    f->st->ops = &slow.ops;
    aw = gh_audit_worker_of(s, 0);
    for (int i = 0; i < n; i++) {
        fill(gh_audit_worker_slot(aw), run ? chains[i / run % 3] : TA, "http.request", i);
        gh_audit_worker_push(aw, false);
    }
    assert_int_equal(gh_audit_service_start(s, &err), GH_OK);
    deadline = gh_now_ns() + 20000000000ull;
    do {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
        gh_audit_stats(s, &st);
    } while (st.events_written + st.events_failed < (uint64_t)n && gh_now_ns() < deadline);
    gh_audit_service_free(s);
    f->st->ops = slow.real;

    assert_int_equal(st.events_failed, lost);
    assert_int_equal(st.events_written, (uint64_t)n - lost);
    assert_true(st.chained_ahead > 5); /* the pipeline did run */
    /* Full batches queued behind the one being stored: the committer drops
     * the one queued behind a failed batch untried (store_conflicts). */
    assert_true(st.queued_ahead > 0);
    assert_true(atomic_load(&slow.calls) > calls[nfaults - 1]);
    assert_int_equal(atomic_load(&slow.store_conflicts), 0);
    verify_counts(f->st, &c);
    assert_int_equal(c.events[0] + c.events[1] + c.events[2], (uint64_t)n - lost);
    gh_config_free(cfg);
}

/* Chains in runs of 50: the two batches in flight are of different chains. */
static void test_failed_batch_with_the_next_chained_ahead(void **state)
{
    static const int calls[] = {3, 8, 14};
    static const enum fault faults[] = {DISK_ERROR, DISK_ERROR, HEAD_MOVED};
    pipeline_scenario(*state, 50, calls, faults, 3, 100);
}

/* One chain: the batch ahead goes on from the failed one's heads. */
static void test_failed_batch_one_chain(void **state)
{
    static const int calls[] = {3, 5, 9};
    static const enum fault faults[] = {DISK_ERROR, DISK_ERROR, HEAD_MOVED};
    pipeline_scenario(*state, 0, calls, faults, 3, 100);
}

/* A cut append, and the store still unreachable when asked at once: the
 * batch is held in doubt while the next was chained ahead; nothing lost. */
static void test_cut_batch_with_the_next_chained_ahead(void **state)
{
    static const int calls[] = {3, 4};
    static const enum fault faults[] = {CUT, CUT};
    pipeline_scenario(*state, 0, calls, faults, 2, 0);
}

/* ---- stopping while the store is out of reach ---- */

static int unreachable_append(struct gh_store *st, struct gh_store_audit_row *rows, size_t n,
                              const struct gh_store_audit_checkpoint *cps, size_t *ncp,
                              const struct gh_store_audit_rechain *rechain, bool *unsynced,
                              struct gh_err *err)
{
    struct timespec ts = {0, 100000000}; /* a connect that times out */

    nanosleep(&ts, NULL);
    return gh_err_set(err, NULL, 0, 0, "store out of reach"), GH_STORE_UNAVAILABLE;
}

/* 3,000 events queued, batches of 50, the store out of reach (each try
 * takes 100 ms): stopping tries the batch in doubt and one more, then
 * counts the rest as not stored, rather than 60 more tries (6 s and more). */
static void test_stop_with_the_store_out_of_reach(void **state)
{
    struct fixture *f = *state;
    struct gh_config *cfg = config("audit: {batch_max: 50, queue_size: 4096}\n");
    struct gh_err err = {0};
    struct gh_audit_service *s = gh_audit_service_new(cfg, f->st, 1, &err);
    const struct gh_store_ops *real = f->st->ops;
    struct gh_store_ops ops = *real;
    struct gh_audit_worker *aw;
    uint64_t t0;

    assert_non_null(s);
    assert_int_equal(gh_audit_service_start(s, &err), GH_OK);
    ops.audit_append = unreachable_append;
    f->st->ops = &ops;
    aw = gh_audit_worker_of(s, 0);
    for (int i = 0; i < 3000; i++) {
        fill(gh_audit_worker_slot(aw), TA, "http.request", i);
        gh_audit_worker_push(aw, false);
    }
    t0 = gh_now_ns();
    gh_audit_service_free(s);
    f->st->ops = real;
    assert_true(gh_now_ns() - t0 < 3000000000ull);
    gh_config_free(cfg);
}

/* Every append takes 20 ms, as a commit on a busy disk or server. */
static int sluggish_append(struct gh_store *st, struct gh_store_audit_row *rows, size_t n,
                           const struct gh_store_audit_checkpoint *cps, size_t *ncp,
                           const struct gh_store_audit_rechain *rechain, bool *unsynced,
                           struct gh_err *err)
{
    struct timespec ts = {0, 20000000};

    nanosleep(&ts, NULL);
    return slow.real->audit_append(st, rows, n, cps, ncp, rechain, unsynced, err);
}

/* A worker whose ring is full sleeps until the writer gives slots back: a
 * ring of 64, batches of 32, commits of 20 ms, 640 events, so the worker
 * waits about 0.4 s in all. It must not spend that time waking up to look
 * (a core it shares with the store's server), it must go on as soon as
 * the room is there (woken, not at its 1 s timeout: several seconds in
 * all when the writer's signal was left out, 0.4 s with it), and every
 * event must be stored. */
static void test_full_ring_waits_without_spinning(void **state)
{
    struct fixture *f = *state;
    struct gh_config *cfg = config("audit: {batch_max: 32, queue_size: 64}\n");
    struct gh_err err = {0};
    struct gh_audit_service *s = gh_audit_service_new(cfg, f->st, 1, &err);
    struct gh_audit_worker *aw;
    struct gh_audit_stats st;
    struct timespec c0, c1;
    uint64_t t0, cpu_ns = 0, wall_ns;
    struct counts c;

    assert_non_null(s);
    slow.real = f->st->ops;
    slow.ops = *slow.real;
    slow.ops.audit_append = sluggish_append;
    f->st->ops = &slow.ops;
    assert_int_equal(gh_audit_service_start(s, &err), GH_OK);
    aw = gh_audit_worker_of(s, 0);
    t0 = gh_now_ns();
    for (int i = 0; i < 640; i++) {
        struct gh_audit_event *ev;
        /* The worker's CPU while it takes a slot, which is where it waits
         * (not the event's own making, slow under the sanitizers). */
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
        ev = gh_audit_worker_slot(aw);
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
        cpu_ns += (uint64_t)((c1.tv_sec - c0.tv_sec) * 1000000000LL + (c1.tv_nsec - c0.tv_nsec));
        fill(ev, TA, "http.request", i);
        gh_audit_worker_push(aw, false);
    }
    wall_ns = gh_now_ns() - t0;
    gh_audit_stats(s, &st);
    gh_audit_service_free(s);
    f->st->ops = slow.real;
    print_message("full ring: 640 events pushed in %.3f s, %.2f ms of the worker's CPU waiting, "
                  "%llu producer waits\n",
                  (double)wall_ns / 1e9, (double)cpu_ns / 1e6,
                  (unsigned long long)st.producer_waits);
    assert_true(st.producer_waits > 0);
    assert_true(wall_ns > 200000000ull);  /* it did wait for the commits */
    assert_true(wall_ns < 1500000000ull); /* and was woken when room came */
    /* Looking every 100 us for 0.4 s took about 10 ms of CPU here. */
    assert_true(cpu_ns < 3000000ull);
    verify_counts(f->st, &c);
    assert_int_equal(c.events[0], 640);
    gh_config_free(cfg);
}

/* An idle writer sleeps (writer.c, IDLE_DEEP_MS) instead of looking at the
 * rings every IDLE_WAIT_MS: with nothing to do for a second, its thread
 * takes almost no CPU, and an async event pushed then wakes it at once
 * rather than at the end of the sleep. Looking every 5 ms took about 12 ms
 * of the process's CPU a second here. */
/* How many times so far this process's thread named <comm> gave up the CPU
 * by itself (voluntary_ctxt_switches in /proc/self/task/TID/status: each
 * sleep that ends and begins again); -1 when there is no such thread. */
static long thread_sleeps(const char *comm)
{
    char path[64], line[128];
    long n = -1;
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;

    assert_non_null(d);
    while (n < 0 && (e = readdir(d)) != NULL) {
        FILE *fp;
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof(path), "/proc/self/task/%.20s/comm", e->d_name);
        if ((fp = fopen(path, "r")) == NULL) continue;
        if (fgets(line, sizeof(line), fp) == NULL) line[0] = '\0';
        fclose(fp);
        line[strcspn(line, "\n")] = '\0';
        if (strcmp(line, comm) != 0) continue;
        snprintf(path, sizeof(path), "/proc/self/task/%.20s/status", e->d_name);
        if ((fp = fopen(path, "r")) == NULL) continue;
        while (fgets(line, sizeof(line), fp) != NULL)
            if (sscanf(line, "voluntary_ctxt_switches: %ld", &n) == 1) break;
        fclose(fp);
    }
    closedir(d);
    return n;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* An idle writer sleeps (writer.c, IDLE_DEEP_MS) instead of looking at the
 * rings every IDLE_WAIT_MS: in a second with nothing to do, it wakes a few
 * times (the interval checkpoints' look, every 250 ms), not 200; and an
 * async event pushed then wakes it at once rather than at the end of its
 * sleep. Wake-ups, not CPU time, are counted: a fast host makes 200 looks
 * cheap, never few. The median of the pushes' waits keeps one slow fsync
 * from failing the test; without the wake, each waits ~150 ms. */
static void test_idle_writer_sleeps_and_wakes(void **state)
{
    struct fixture *f = *state;
    struct gh_err err = {0};
    struct gh_audit_service *s = gh_audit_service_new(f->cfg, f->st, 1, &err);
    struct gh_audit_worker *aw;
    struct gh_audit_stats st;
    struct timespec pause = {0, 100000000};
    enum { PUSHES = 5 };
    uint64_t waits[PUSHES];
    long sleeps;

    assert_non_null(s);
    assert_int_equal(gh_audit_service_start(s, &err), GH_OK);
    aw = gh_audit_worker_of(s, 0);
    nanosleep(&pause, NULL); /* the writer's first looks, then its sleep */
    sleeps = thread_sleeps("gh-audit");
    assert_true(sleeps >= 0); /* the writer thread is found by its name */
    for (int i = 0; i < 10; i++)
        nanosleep(&pause, NULL);
    sleeps = thread_sleeps("gh-audit") - sleeps;
    for (int i = 0; i < PUSHES; i++) {
        uint64_t t0;
        nanosleep(&pause, NULL); /* asleep again */
        t0 = gh_now_ns();
        fill(gh_audit_worker_slot(aw), TA, "http.request", i);
        gh_audit_worker_push(aw, false);
        do {
            struct timespec ts = {0, 200000};
            nanosleep(&ts, NULL);
            gh_audit_stats(s, &st);
        } while (st.events_written < (uint64_t)i + 1 && gh_now_ns() - t0 < 2000000000ull);
        waits[i] = gh_now_ns() - t0;
    }
    gh_audit_service_free(s);
    qsort(waits, PUSHES, sizeof(waits[0]), cmp_u64);
    print_message("idle writer: %ld sleeps in 1 s idle; an async event after 100 ms idle written "
                  "in %.1f ms (median), %.1f ms at worst\n",
                  sleeps, (double)waits[PUSHES / 2] / 1e6, (double)waits[PUSHES - 1] / 1e6);
    assert_int_equal(st.events_written, PUSHES);
    assert_true(sleeps < 40);
    /* Woken by the push: not left to the end of a 250 ms sleep. */
    assert_true(waits[PUSHES / 2] < 50000000ull);
}

/* The committer stores a batch without its fsync and the writer makes the
 * fsync while the next batch is stored (writer.c, step): nobody may hear
 * that an event is stored before a sync that began after its commit has
 * ended. The store's calls are watched: each commit left unsynced gets a
 * number, and each sync covers the commits made before it began (it takes
 * 5 ms, so an answer sent before its end would be seen). Durable submits
 * check, as they return, that their commit was covered; async events from
 * a ring keep the pipeline busy meanwhile. */
#define SYNC_SUBMITS 60
static struct {
    const struct gh_store_ops *real;
    struct gh_store_ops ops;
    _Atomic uint64_t commits, synced;
    _Atomic uint64_t commit_of[SYNC_SUBMITS]; /* the commit of submit i ("s-i") */
} track;

static int tracking_append(struct gh_store *st, struct gh_store_audit_row *rows, size_t n,
                           const struct gh_store_audit_checkpoint *cps, size_t *ncp,
                           const struct gh_store_audit_rechain *rechain, bool *unsynced,
                           struct gh_err *err)
{
    int rc = track.real->audit_append(st, rows, n, cps, ncp, rechain, unsynced, err);
    uint64_t k;

    if (rc != GH_OK || unsynced == NULL || !*unsynced) return rc;
    k = atomic_fetch_add(&track.commits, 1) + 1;
    for (size_t i = 0; i < n; i++) {
        int j;
        if (sscanf(rows[i].request_id, "s-%d", &j) == 1 && j >= 0 && j < SYNC_SUBMITS)
            atomic_store(&track.commit_of[j], k);
    }
    return rc;
}

static int tracking_sync(struct gh_store *st, struct gh_err *err)
{
    uint64_t covered = atomic_load(&track.commits);
    struct timespec ts = {0, 5000000};
    int rc;

    nanosleep(&ts, NULL);
    rc = track.real->audit_sync(st, err);
    if (rc == GH_OK && covered > atomic_load(&track.synced)) atomic_store(&track.synced, covered);
    return rc;
}

struct pusher {
    struct gh_audit_worker *aw;
    _Atomic bool stop;
    int pushed;
};

static void *push_main(void *arg)
{
    struct pusher *p = arg;
    while (!atomic_load(&p->stop)) {
        fill(gh_audit_worker_slot(p->aw), TB, "http.request", p->pushed++);
        gh_audit_worker_push(p->aw, false);
        if (p->pushed % 64 == 0) usleep(500);
    }
    return NULL;
}

static void test_answered_only_once_synced(void **state)
{
    struct fixture *f = *state;
    struct gh_err err = {0};
    struct gh_audit_service *s;
    struct pusher p = {0};
    pthread_t t;
    struct counts c;
    int failed = 0, not_deferred = 0, early = 0;

    memset(&track, 0, sizeof(track));
    track.real = f->st->ops;
    track.ops = *track.real;
    track.ops.audit_append = tracking_append;
    track.ops.audit_sync = tracking_sync;
    f->st->ops = &track.ops;
    s = gh_audit_service_new(f->cfg, f->st, 1, &err);
    assert_non_null(s);
    assert_int_equal(gh_audit_service_start(s, &err), GH_OK);
    p.aw = gh_audit_worker_of(s, 0);
    assert_int_equal(pthread_create(&t, NULL, push_main, &p), 0);
    for (int i = 0; i < SYNC_SUBMITS; i++) {
        struct gh_audit_event ev;
        char rid[16];
        gh_audit_event_new(&ev);
        fill(&ev, TA, "tenant.update", i);
        snprintf(rid, sizeof(rid), "s-%d", i);
        GH_AUDIT_SET(&ev, request_id, gh_str_cstr(rid));
        if (gh_audit_submit(s, &ev, true) != GH_OK) failed++;
        /* Stored by the committer without its fsync, and synced since. */
        if (atomic_load(&track.commit_of[i]) == 0) not_deferred++;
        if (atomic_load(&track.synced) < atomic_load(&track.commit_of[i])) early++;
    }
    atomic_store(&p.stop, true);
    pthread_join(t, NULL);
    gh_audit_service_free(s);
    f->st->ops = track.real;
    /* Asserted once the threads are gone, so a failure is reported. */
    print_message("%d submit(s) failed, %d stored with their fsync, %d answered before theirs\n",
                  failed, not_deferred, early);
    assert_int_equal(failed, 0);
    assert_int_equal(not_deferred, 0);
    assert_int_equal(early, 0);
    /* The last batch too: no commit is left unsynced at the stop. */
    print_message("%llu commits left unsynced by the committer, all synced since\n",
                  (unsigned long long)atomic_load(&track.commits));
    assert_true(atomic_load(&track.commits) >= 2);
    assert_int_equal(atomic_load(&track.synced), atomic_load(&track.commits));
    verify_counts(f->st, &c);
    assert_int_equal(c.events[0], SYNC_SUBMITS);
    assert_int_equal(c.events[1], (uint64_t)p.pushed);
}

/* A sync of the log that fails (the store's descriptor of it swapped for a
 * pipe's for one sync: EINVAL, as a disk's EIO): the batch's waiter hears
 * "failed", so does every later one (the store takes no write any more),
 * the failures are counted, and the service still stops at once. */
static struct {
    const struct gh_store_ops *real;
    struct gh_store_ops ops;
    _Atomic int syncs, fail_at;
} bad;

static int failing_sync(struct gh_store *st, struct gh_err *err)
{
    struct gh_sqlite_store *ss = (struct gh_sqlite_store *)st;
    int k = atomic_fetch_add(&bad.syncs, 1) + 1, pipefd[2], saved, rc;

    if (k != atomic_load(&bad.fail_at)) return bad.real->audit_sync(st, err);
    if (pipe(pipefd) != 0) return gh_err_set(err, NULL, 0, 0, "pipe"), GH_ERROR;
    saved = ss->wal_fd;
    ss->wal_fd = pipefd[0];
    rc = bad.real->audit_sync(st, err);
    ss->wal_fd = saved;
    close(pipefd[0]);
    close(pipefd[1]);
    return rc;
}

static void test_failed_sync_fails_the_batch(void **state)
{
    struct fixture *f = *state;
    struct gh_err err = {0};
    struct gh_audit_service *s;
    struct gh_audit_stats st;
    struct gh_audit_event ev;
    int rc_failed, rc_after;
    uint64_t t0;

    bad.real = f->st->ops;
    bad.ops = *bad.real;
    bad.ops.audit_sync = failing_sync;
    atomic_store(&bad.syncs, 0);
    atomic_store(&bad.fail_at, 0);
    f->st->ops = &bad.ops;
    s = gh_audit_service_new(f->cfg, f->st, 1, &err);
    assert_non_null(s);
    assert_int_equal(gh_audit_service_start(s, &err), GH_OK);
    submit_n(s, TA, 0, 5, true);
    assert_true(atomic_load(&bad.syncs) >= 1); /* they went the unsynced way */
    atomic_store(&bad.fail_at, atomic_load(&bad.syncs) + 1);
    gh_audit_event_new(&ev);
    fill(&ev, TA, "tenant.update", 5);
    rc_failed = gh_audit_submit(s, &ev, true);
    gh_audit_event_new(&ev);
    fill(&ev, TA, "tenant.update", 6);
    rc_after = gh_audit_submit(s, &ev, true);
    gh_audit_stats(s, &st);
    t0 = gh_now_ns();
    gh_audit_service_free(s);
    f->st->ops = bad.real;
    assert_int_equal(rc_failed, GH_ERROR);
    assert_int_equal(rc_after, GH_ERROR);
    assert_int_equal(st.events_written, 5);
    assert_true(st.events_failed >= 2);
    assert_true(gh_now_ns() - t0 < 3000000000ull);
}

/* An interval checkpoint of a chain outside the batch names the writer's
 * idea of that chain's head; here that event was rewritten behind the
 * writer's back (as a failover that lost it, then another node, would), so
 * the store refuses the checkpoint. The batch's own events must still be
 * stored: they go in without interval checkpoints. */
static void test_refused_interval_checkpoint_fails_no_event(void **state)
{
    struct fixture *f = *state;
    struct gh_config *cfg = config("audit: {checkpoint_every: 1000, checkpoint_interval: 300ms}\n");
    struct gh_err err = {0};
    struct gh_audit_service *s = gh_audit_service_new(cfg, f->st, 1, &err);
    struct gh_audit_stats st;
    sqlite3 *db = NULL;
    struct timespec pause = {0, 400000000};

    assert_non_null(s);
    assert_int_equal(gh_audit_service_start(s, &err), GH_OK);
    submit_n(s, TA, 0, 5, true);
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    assert_int_equal(sqlite3_exec(db,
                                  "UPDATE audit_events SET hash = '" TA_ZERO_HASH "' "
                                  "WHERE chain = '" TA "' AND seq = 5",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    /* Events of TB, one durable batch after another, for longer than the
     * interval: some batch meets TA's due checkpoint (the writer looks for
     * due ones every 250 ms). */
    uint64_t until = gh_now_ns() + 3 * (uint64_t)pause.tv_nsec, n = 0;
    while (gh_now_ns() < until)
        submit_n(s, TB, (int)n++, 1, true);
    gh_audit_stats(s, &st);
    assert_int_equal(st.events_written, 5 + n);
    assert_int_equal(st.events_failed, 0);
    gh_audit_service_free(s);
    gh_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rings_submit_strict_and_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_async_rate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_writers_one_chain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cut_after_commit_stored_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cut_before_commit_not_lost, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outage_ends_with_works_again, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_in_an_outage_is_no_recovery, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_batch_with_the_next_chained_ahead, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_failed_batch_one_chain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cut_batch_with_the_next_chained_ahead, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_full_ring_waits_without_spinning, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_writer_sleeps_and_wakes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_answered_only_once_synced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_sync_fails_the_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_with_the_store_out_of_reach, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_interval_checkpoint_fails_no_event, setup,
                                        teardown),
    };
    evthread_use_pthreads();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
