/* Tests of src/limits/quota.h against a real SQLite store in a temporary
 * folder: admission at a request quota (and the verdict's numbers), taking a
 * count back, byte quotas, independent tenants, the flush to the store and
 * the totals it brings back (two nodes, a restart), the 80% / 100% events
 * once per period, day / month / year rollovers with explicit wall clocks,
 * period names and lengths at the boundaries, and a full table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "limits/quota.h"
#include "store/store.h"

#define DAY_S (24 * 3600)

struct fixture {
    char dir[64];
    char path[128];
    struct gh_store *st;
};

/* ---- Helpers ---------------------------------------------------------------- */

static int teardown(void **state);

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct gh_store_params p = {0};
    struct gh_err err = {0};
    int applied = -1, version = -1;

    if (f == NULL) return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/gh_quota_XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof(f->path), "%s/gatehouse.db", f->dir);
    p.sqlite_path = f->path;
    *state = f;
    if (gh_store_open(&p, &f->st, &err) != GH_OK) {
        fprintf(stderr, "open: %s\n", err.msg);
        teardown(state);
        return -1;
    }
    if (gh_store_migrate(f->st, &applied, &version, &err) != GH_OK) {
        fprintf(stderr, "migrate: %s\n", err.msg);
        teardown(state);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    const char *suffix[] = {"", "-wal", "-shm", "-journal"};
    char path[160];

    if (f->st != NULL) gh_store_close(f->st);
    for (size_t i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
        snprintf(path, sizeof(path), "%s%s", f->path, suffix[i]);
        unlink(path);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

/* A UTC wall clock in milliseconds, from the calendar (timegm normalizes
 * day 32 and month 13, which the tests use to find the next midnight). */
static int64_t utc_ms(int y, int mo, int d, int h, int mi, int s, int ms)
{
    struct tm tm = {0};

    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = s;
    return (int64_t)timegm(&tm) * 1000 + ms;
}

/* Whole seconds from <from_ms> up to <to_ms>, rounded up. */
static uint64_t secs_until(int64_t from_ms, int64_t to_ms)
{
    return (uint64_t)((to_ms - from_ms + 999) / 1000);
}

static struct gh_quota_table *table_new(uint32_t capacity)
{
    struct gh_quota_table *t = gh_quota_table_new(capacity);
    assert_non_null(t);
    return t;
}

static bool admit(struct gh_quota_table *t, const char *tenant, const struct gh_config_quotas *q,
                  int64_t wall_ms, struct gh_quota_verdict *v)
{
    memset(v, 0xa5, sizeof(*v));
    return gh_quota_admit(t, tenant, strlen(tenant), q, wall_ms, v);
}

/* Admits <n> requests, each of which must pass. */
static void admit_n(struct gh_quota_table *t, const char *tenant, const struct gh_config_quotas *q,
                    int64_t wall_ms, int n)
{
    struct gh_quota_verdict v;

    for (int i = 0; i < n; i++)
        if (!admit(t, tenant, q, wall_ms, &v))
            fail_msg("%s: request %d of %d refused (%s, used %llu of %llu)", tenant, i + 1, n,
                     gh_quota_metric_name(v.metric, v.period), (unsigned long long)v.used,
                     (unsigned long long)v.limit);
}

static void refused(struct gh_quota_table *t, const char *tenant, const struct gh_config_quotas *q,
                    int64_t wall_ms, int metric, int period, uint64_t limit, uint64_t used)
{
    struct gh_quota_verdict v;

    assert_false(admit(t, tenant, q, wall_ms, &v));
    assert_int_equal(v.metric, metric);
    assert_int_equal(v.period, period);
    assert_int_equal(v.limit, limit);
    assert_int_equal(v.used, used);
}

static void flush(struct gh_quota_table *t, struct gh_store *st, int64_t wall_ms)
{
    struct gh_err err = {0};

    if (gh_quota_flush(t, st, wall_ms, &err) != GH_OK) fail_msg("flush: %s", err.msg);
}

static void assert_usage(struct gh_store *st, const char *tenant, const char *period,
                         uint64_t requests, uint64_t in, uint64_t out)
{
    struct gh_store_usage u;
    struct gh_err err = {0};

    memset(&u, 0, sizeof(u));
    if (gh_store_usage_get(st, tenant, period, &u, &err) != GH_OK)
        fail_msg("usage_get %s %s: %s", tenant, period, err.msg);
    if (u.requests != requests || u.request_bytes != in || u.response_bytes != out)
        fail_msg("%s %s: requests %llu, in %llu, out %llu; expected %llu, %llu, %llu", tenant,
                 period, (unsigned long long)u.requests, (unsigned long long)u.request_bytes,
                 (unsigned long long)u.response_bytes, (unsigned long long)requests,
                 (unsigned long long)in, (unsigned long long)out);
}

static size_t events_of(struct gh_store *st, const char *tenant, struct gh_store_limit_event *out,
                        size_t max)
{
    struct gh_err err = {0};
    size_t count = 0;
    bool more = false;

    if (gh_store_limit_events_list(st, tenant, 0, max, out, &count, &more, &err) != GH_OK)
        fail_msg("events_list: %s", err.msg);
    assert_false(more);
    return count;
}

/* Runs <sql> on the file directly, under the store (to make it fail). */
static void raw_exec(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    char *msg = NULL;

    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) fail_msg("%s: %s", sql, msg);
    sqlite3_close(db);
}

/* ---- Admission -------------------------------------------------------------- */

/* Limit 5 a day: five pass, the sixth is refused with the day's numbers and
 * a Retry-After to the next UTC midnight. */
static void test_admit_refuses_at_limit(void **state)
{
    struct gh_quota_table *t = table_new(64);
    struct gh_config_quotas q = {0};
    struct gh_quota_verdict v;
    const int64_t now = utc_ms(2026, 11, 22, 10, 20, 30, 250);
    const int64_t midnight = utc_ms(2026, 11, 23, 0, 0, 0, 0);

    q.limit[GH_QUOTA_REQUESTS][GH_QUOTA_DAY] = 5;
    admit_n(t, "tn_a", &q, now, 5);
    assert_false(admit(t, "tn_a", &q, now, &v));
    assert_int_equal(v.metric, GH_QUOTA_REQUESTS);
    assert_int_equal(v.period, GH_QUOTA_DAY);
    assert_int_equal(v.limit, 5);
    assert_int_equal(v.used, 5);
    assert_int_equal(v.retry_after_s, secs_until(now, midnight));
    assert_int_equal(v.retry_after_s, 13 * 3600 + 39 * 60 + 30); /* 13:39:29.75, rounded up */
    assert_int_equal(v.window_s, DAY_S);
    assert_string_equal(gh_quota_metric_name(v.metric, v.period), "requests_per_day");
    /* Refusals are not counted: still refused at 5, later in the day too. */
    refused(t, "tn_a", &q, now + 1000, GH_QUOTA_REQUESTS, GH_QUOTA_DAY, 5, 5);
    assert_false(admit(t, "tn_a", &q, midnight - 1, &v));
    assert_int_equal(v.retry_after_s, 1);
    assert_int_equal(gh_quota_overflows(t), 0);
    gh_quota_table_free(t);
}

/* A month quota refuses with the month's numbers: Retry-After to December
 * 1st, a window of November's 30 days. No limit at all admits forever. */
static void test_admit_month_limit(void **state)
{
    struct gh_quota_table *t = table_new(64);
    struct gh_config_quotas q = {0}, none = {0};
    struct gh_quota_verdict v;
    const int64_t now = utc_ms(2026, 11, 22, 10, 0, 0, 0);

    q.limit[GH_QUOTA_REQUESTS][GH_QUOTA_DAY] = 10;
    q.limit[GH_QUOTA_REQUESTS][GH_QUOTA_MONTH] = 3;
    admit_n(t, "tn_m", &q, now, 3);
    assert_false(admit(t, "tn_m", &q, now, &v));
    assert_int_equal(v.metric, GH_QUOTA_REQUESTS);
    assert_int_equal(v.period, GH_QUOTA_MONTH);
    assert_int_equal(v.limit, 3);
    assert_int_equal(v.used, 3);
    assert_int_equal(v.retry_after_s, secs_until(now, utc_ms(2026, 12, 1, 0, 0, 0, 0)));
    assert_int_equal(v.window_s, 30 * DAY_S);
    assert_string_equal(gh_quota_metric_name(v.metric, v.period), "requests_per_month");

    admit_n(t, "tn_free", &none, now, 1000);
    gh_quota_table_free(t);
}

static void test_unadmit(void **state)
{
    struct gh_quota_table *t = table_new(64);
    struct gh_config_quotas q = {0};
    const int64_t now = utc_ms(2026, 11, 22, 12, 0, 0, 0);

    q.limit[GH_QUOTA_REQUESTS][GH_QUOTA_DAY] = 2;
    admit_n(t, "tn_u", &q, now, 2);
    refused(t, "tn_u", &q, now, GH_QUOTA_REQUESTS, GH_QUOTA_DAY, 2, 2);
    gh_quota_unadmit(t, "tn_u", 4, now);
    admit_n(t, "tn_u", &q, now, 1);
    refused(t, "tn_u", &q, now, GH_QUOTA_REQUESTS, GH_QUOTA_DAY, 2, 2);
    gh_quota_unadmit(t, "tn_u", 4, now);
    gh_quota_unadmit(t, "tn_u", 4, now);
    admit_n(t, "tn_u", &q, now, 2);
    refused(t, "tn_u", &q, now, GH_QUOTA_REQUESTS, GH_QUOTA_DAY, 2, 2);

    /* Taking back more than was counted stops at zero (no wrap to a huge
     * count that would refuse everything). */
    gh_quota_unadmit(t, "tn_v", 4, now);
    gh_quota_unadmit(t, "tn_v", 4, now);
    admit_n(t, "tn_v", &q, now, 2);
    refused(t, "tn_v", &q, now, GH_QUOTA_REQUESTS, GH_QUOTA_DAY, 2, 2);
    gh_quota_table_free(t);
}

/* Bytes are known after a request: a byte quota admits while below its limit
 * and refuses once reached. */
static void test_byte_quotas(void **state)
{
    struct gh_quota_table *t = table_new(64);
    struct gh_config_quotas in = {0}, out = {0};
    const int64_t now = utc_ms(2026, 11, 22, 12, 0, 0, 0);

    in.limit[GH_QUOTA_REQUEST_BYTES][GH_QUOTA_DAY] = 1000;
    admit_n(t, "tn_in", &in, now, 1);
    gh_quota_add_bytes(t, "tn_in", 5, 999, 50000, now);
    admit_n(t, "tn_in", &in, now, 1); /* 999 of 1000: still room */
    gh_quota_add_bytes(t, "tn_in", 5, 1, 0, now);
    refused(t, "tn_in", &in, now, GH_QUOTA_REQUEST_BYTES, GH_QUOTA_DAY, 1000, 1000);

    out.limit[GH_QUOTA_RESPONSE_BYTES][GH_QUOTA_MONTH] = 1 << 20;
    admit_n(t, "tn_out", &out, now, 1);
    gh_quota_add_bytes(t, "tn_out", 6, 123, (1 << 20) + 5, now);
    refused(t, "tn_out", &out, now, GH_QUOTA_RESPONSE_BYTES, GH_QUOTA_MONTH, 1 << 20,
            (1 << 20) + 5);
    {
        struct gh_quota_verdict v;
        assert_false(admit(t, "tn_out", &out, now, &v));
        assert_string_equal(gh_quota_metric_name(v.metric, v.period), "response_bytes_per_month");
        assert_int_equal(v.retry_after_s, secs_until(now, utc_ms(2026, 12, 1, 0, 0, 0, 0)));
    }
    gh_quota_table_free(t);
}

static void test_tenants_independent(void **state)
{
    struct gh_quota_table *t = table_new(64);
    struct gh_config_quotas q = {0};
    const int64_t now = utc_ms(2026, 11, 22, 12, 0, 0, 0);
    char name[32];

    q.limit[GH_QUOTA_REQUESTS][GH_QUOTA_DAY] = 3;
    for (int i = 0; i < 50; i++) {
        snprintf(name, sizeof(name), "tn_%d", i);
        admit_n(t, name, &q, now, 3);
    }
    for (int i = 0; i < 50; i++) {
        snprintf(name, sizeof(name), "tn_%d", i);
        refused(t, name, &q, now, GH_QUOTA_REQUESTS, GH_QUOTA_DAY, 3, 3);
    }
    /* Bytes and take-backs land on their own tenant only. */
    gh_quota_unadmit(t, "tn_7", 4, now);
    admit_n(t, "tn_7", &q, now, 1);
    refused(t, "tn_8", &q, now, GH_QUOTA_REQUESTS, GH_QUOTA_DAY, 3, 3);
    /* A prefix is another tenant. */
    admit_n(t, "tn_", &q, now, 3);
    refused(t, "tn_1", &q, now, GH_QUOTA_REQUESTS, GH_QUOTA_DAY, 3, 3);
    gh_quota_table_free(t);
}

/* ---- Flush and preload ------------------------------------------------------ */

static void test_flush_writes_usage(void **state)
{
    struct fixture *f = *state;
    struct gh_quota_table *t = table_new(64);
    struct gh_config_quotas q = {0}, none = {0};
    const int64_t now = utc_ms(2026, 11, 22, 8, 0, 0, 0);

    q.limit[GH_QUOTA_REQUESTS][GH_QUOTA_DAY] = 100;
    for (int i = 0; i < 3; i++) {
        admit_n(t, "tn_f", &q, now, 1);
        gh_quota_add_bytes(t, "tn_f", 4, 10, 20, now);
    }
    admit_n(t, "tn_nolimit", &none, now, 2);
    flush(t, f->st, now + 500);
    assert_usage(f->st, "tn_f", "2026-11-22", 3, 30, 60);
    assert_usage(f->st, "tn_f", "2026-11", 3, 30, 60);
    assert_usage(f->st, "tn_nolimit", "2026-11-22", 2, 0, 0);
    assert_usage(f->st, "tn_nolimit", "2026-11", 2, 0, 0);
    assert_usage(f->st, "tn_f", "2026-11-21", 0, 0, 0);

    /* Nothing new: flushing again adds nothing. */
    flush(t, f->st, now + 1500);
    flush(t, f->st, now + 2500);
    assert_usage(f->st, "tn_f", "2026-11-22", 3, 30, 60);
    assert_usage(f->st, "tn_nolimit", "2026-11", 2, 0, 0);

    admit_n(t, "tn_f", &q, now + 3000, 2);
    gh_quota_add_bytes(t, "tn_f", 4, 1, 2, now + 3000);
    flush(t, f->st, now + 3500);
    assert_usage(f->st, "tn_f", "2026-11-22", 5, 31, 62);
    assert_usage(f->st, "tn_f", "2026-11", 5, 31, 62);

    /* Flushed counts still count here: usage = stored total + counted since. */
    q.limit[GH_QUOTA_REQUESTS][GH_QUOTA_DAY] = 7;
    admit_n(t, "tn_f", &q, now + 4000, 2);
    refused(t, "tn_f", &q, now + 4000, GH_QUOTA_REQUESTS, GH_QUOTA_DAY, 7, 7);
    flush(t, f->st, now + 4500);
    refused(t, "tn_f", &q, now + 5000, GH_QUOTA_REQUESTS, GH_QUOTA_DAY, 7, 7);
    assert_usage(f->st, "tn_f", "2026-11-22", 7, 31, 62);
    gh_quota_table_free(t);
}

/* The restart case: a new table preloaded from the store refuses at the
 * right count. */
static void test_preload_after_restart(void **state)
{
    struct fixture *f = *state;
    struct gh_quota_table *t = table_new(64), *t2;
    struct gh_config_quotas q = {0};
    struct gh_err err = {0};
    const int64_t now = utc_ms(2026, 11, 22, 8, 0, 0, 0);

    q.limit[GH_QUOTA_REQUESTS][GH_QUOTA_DAY] = 5;
    q.limit[GH_QUOTA_REQUESTS][GH_QUOTA_MONTH] = 9;
    admit_n(t, "tn_r", &q, now, 3);
    gh_quota_add_bytes(t, "tn_r", 4, 100, 200, now);
    admit_n(t, "tn_s", &q, now, 5);
    flush(t, f->st, now + 1000);
    gh_quota_table_free(t);

    t2 = table_new(64);
    assert_int_equal(gh_quota_preload(t2, f->st, now + 2000, &err), GH_OK);
    admit_n(t2, "tn_r", &q, now + 3000, 2);
    refused(t2, "tn_r", &q, now + 3000, GH_QUOTA_REQUESTS, GH_QUOTA_DAY, 5, 5);
    refused(t2, "tn_s", &q, now + 3000, GH_QUOTA_REQUESTS, GH_QUOTA_DAY, 5, 5);
    /* Bytes come back too. */
    {
        struct gh_config_quotas b = {0};
        b.limit[GH_QUOTA_RESPONSE_BYTES][GH_QUOTA_DAY] = 200;
        refused(t2, "tn_r", &b, now + 3000, GH_QUOTA_RESPONSE_BYTES, GH_QUOTA_DAY, 200, 200);
    }
    flush(t2, f->st, now + 4000);
    gh_quota_table_free(t2);

    /* The next day starts at zero but the month's total still counts: both
     * tenants have 5 of their 9 this month, so 4 more each. */
    t2 = table_new(64);
    assert_int_equal(gh_quota_preload(t2, f->st, now + DAY_S * 1000LL, &err), GH_OK);
    admit_n(t2, "tn_s", &q, now + DAY_S * 1000LL, 4);
    refused(t2, "tn_s", &q, now + DAY_S * 1000LL, GH_QUOTA_REQUESTS, GH_QUOTA_MONTH, 9, 9);
    admit_n(t2, "tn_r", &q, now + DAY_S * 1000LL, 4);
    refused(t2, "tn_r", &q, now + DAY_S * 1000LL, GH_QUOTA_REQUESTS, GH_QUOTA_MONTH, 9, 9);
    gh_quota_table_free(t2);
}

/* Two nodes sharing a store see each other's traffic at the next flush,
 * including a node that counted nothing itself since. */
static void test_two_nodes(void **state)
{
    struct fixture *f = *state;
    struct gh_quota_table *a = table_new(64), *b = table_new(64);
    struct gh_config_quotas q = {0};
    const int64_t now = utc_ms(2026, 11, 22, 8, 0, 0, 0);

    q.limit[GH_QUOTA_REQUESTS][GH_QUOTA_DAY] = 6;
    admit_n(a, "tn_n", &q, now, 2);
    admit_n(b, "tn_n", &q, now, 2);
    flush(a, f->st, now + 1000);
    flush(b, f->st, now + 1000);
    flush(a, f->st, now + 2000); /* a learns b's 2 */
    admit_n(a, "tn_n", &q, now + 2500, 2);
    refused(a, "tn_n", &q, now + 2500, GH_QUOTA_REQUESTS, GH_QUOTA_DAY, 6, 6);
    flush(a, f->st, now + 3000);
    flush(b, f->st, now + 3000);
    refused(b, "tn_n", &q, now + 3500, GH_QUOTA_REQUESTS, GH_QUOTA_DAY, 6, 6);
    assert_usage(f->st, "tn_n", "2026-11-22", 6, 0, 0);
    gh_quota_table_free(a);
    gh_quota_table_free(b);
}

/* A flush the store refuses keeps the counts for the next one, including
 * those of a day that ended before it. */
static void test_flush_failure_keeps_counts(void **state)
{
    struct fixture *f = *state;
    struct gh_quota_table *t = table_new(64);
    struct gh_config_quotas q = {0};
    struct gh_err err = {0};
    const int64_t before = utc_ms(2026, 11, 22, 23, 59, 59, 500);
    const int64_t after = utc_ms(2026, 11, 23, 0, 0, 0, 500);

    q.limit[GH_QUOTA_REQUESTS][GH_QUOTA_DAY] = 100;
    admit_n(t, "tn_k", &q, before, 3);
    admit_n(t, "tn_k", &q, after, 2);
    raw_exec(f->path, "ALTER TABLE usage RENAME TO usage_away");
    assert_int_not_equal(gh_quota_flush(t, f->st, after + 500, &err), GH_OK);
    raw_exec(f->path, "ALTER TABLE usage_away RENAME TO usage");
    flush(t, f->st, after + 1500);
    assert_usage(f->st, "tn_k", "2026-11-22", 3, 0, 0);
    assert_usage(f->st, "tn_k", "2026-11-23", 2, 0, 0);
    assert_usage(f->st, "tn_k", "2026-11", 5, 0, 0);
    gh_quota_table_free(t);
}

/* The SQLite store with usage_add made to fail as PostgreSQL's can: while
 * <cut> is set, a batch commits and then answers UNAVAILABLE (the
 * connection cut during COMMIT), and while <down> is set, nothing is
 * stored and the answer is UNAVAILABLE. It keeps the ids of the batches it
 * stored, as PostgreSQL's usage_batches does: a batch sent again under a
 * stored id adds nothing and reads the totals. */
static struct {
    const struct gh_store_ops *real;
    struct gh_store_ops ops;
    bool cut, down;
    char ids[8][65];
    int nids, calls;
} cut;

static int cut_usage_add(struct gh_store *st, const char *batch_id, struct gh_store_usage *rows,
                         size_t n, int64_t now, struct gh_err *err)
{
    int rc;

    cut.calls++;
    if (cut.down) return gh_err_set(err, NULL, 0, 0, "down"), GH_STORE_UNAVAILABLE;
    for (int i = 0; batch_id != NULL && i < cut.nids; i++) {
        if (strcmp(cut.ids[i], batch_id) != 0) continue;
        for (size_t k = 0; k < n; k++) {
            struct gh_store_usage u;
            if (cut.real->usage_get(st, rows[k].tenant_id, rows[k].period, &u, err) != GH_OK)
                return GH_ERROR;
            rows[k].requests = u.requests;
            rows[k].request_bytes = u.request_bytes;
            rows[k].response_bytes = u.response_bytes;
        }
        return GH_OK;
    }
    rc = cut.real->usage_add(st, batch_id, rows, n, now, err);
    if (rc == GH_OK && batch_id != NULL && cut.nids < 8)
        snprintf(cut.ids[cut.nids++], sizeof(cut.ids[0]), "%s", batch_id);
    if (rc == GH_OK && cut.cut) {
        cut.cut = false;
        return gh_err_set(err, NULL, 0, 0, "cut during the commit"), GH_STORE_UNAVAILABLE;
    }
    return rc;
}

/* A flush whose commit is cut after it landed, then an outage, then more
 * traffic: the counts are stored once. Put back into the entries for good
 * (as for a refused batch) they would be added a second time by the next
 * flush; left out of them, admission would not count them meanwhile. */
static void test_flush_cut_after_commit_counts_once(void **state)
{
    struct fixture *f = *state;
    struct gh_quota_table *t = table_new(64);
    struct gh_config_quotas q = {0};
    struct gh_err err = {0};
    const int64_t now = utc_ms(2026, 11, 22, 12, 0, 0, 0);

    memset(&cut, 0, sizeof(cut));
    cut.real = f->st->ops;
    cut.ops = *f->st->ops;
    cut.ops.usage_add = cut_usage_add;
    f->st->ops = &cut.ops;

    q.limit[GH_QUOTA_REQUESTS][GH_QUOTA_DAY] = 8;
    admit_n(t, "tn_c", &q, now, 5);
    cut.cut = true;
    assert_int_equal(gh_quota_flush(t, f->st, now + 100, &err), GH_STORE_UNAVAILABLE);
    cut.down = true;
    admit_n(t, "tn_c", &q, now + 200, 2);
    assert_int_equal(gh_quota_flush(t, f->st, now + 300, &err), GH_STORE_UNAVAILABLE);
    cut.down = false;
    admit_n(t, "tn_c", &q, now + 400, 1);
    /* The counts in doubt still count here. */
    refused(t, "tn_c", &q, now + 450, GH_QUOTA_REQUESTS, GH_QUOTA_DAY, 8, 8);
    flush(t, f->st, now + 500); /* the batch in doubt, found stored, then the rest */
    flush(t, f->st, now + 600);
    assert_usage(f->st, "tn_c", "2026-11-22", 8, 0, 0);
    assert_usage(f->st, "tn_c", "2026-11", 8, 0, 0);
    refused(t, "tn_c", &q, now + 700, GH_QUOTA_REQUESTS, GH_QUOTA_DAY, 8, 8);
    f->st->ops = cut.real;
    gh_quota_table_free(t);
}

/* ---- Threshold events ------------------------------------------------------- */

static void test_events_once(void **state)
{
    struct fixture *f = *state;
    struct gh_quota_table *t = table_new(64), *t2;
    struct gh_config_quotas q = {0};
    struct gh_store_limit_event ev[16];
    struct gh_err err = {0};
    const int64_t now = utc_ms(2026, 11, 22, 8, 0, 0, 0);
    size_t n;

    q.limit[GH_QUOTA_REQUESTS][GH_QUOTA_DAY] = 10;
    admit_n(t, "tn_e", &q, now, 7);
    flush(t, f->st, now + 1000);
    assert_int_equal(events_of(f->st, "tn_e", ev, 16), 0);

    admit_n(t, "tn_e", &q, now + 1500, 1); /* 8 of 10: 80% */
    for (int i = 0; i < 3; i++)
        flush(t, f->st, now + 2000 + i * 1000);
    n = events_of(f->st, "tn_e", ev, 16);
    assert_int_equal(n, 1);
    assert_string_equal(ev[0].tenant_id, "tn_e");
    assert_string_equal(ev[0].period, "2026-11-22");
    assert_string_equal(ev[0].metric, "requests_per_day");
    assert_int_equal(ev[0].threshold, 80);
    assert_int_equal(ev[0].value, 8);
    assert_int_equal(ev[0].limit, 10);

    admit_n(t, "tn_e", &q, now + 6000, 1); /* 9: nothing new */
    flush(t, f->st, now + 6500);
    assert_int_equal(events_of(f->st, "tn_e", ev, 16), 1);

    admit_n(t, "tn_e", &q, now + 7000, 1); /* 10: 100% */
    refused(t, "tn_e", &q, now + 7000, GH_QUOTA_REQUESTS, GH_QUOTA_DAY, 10, 10);
    for (int i = 0; i < 3; i++)
        flush(t, f->st, now + 8000 + i * 1000);
    n = events_of(f->st, "tn_e", ev, 16);
    assert_int_equal(n, 2);
    /* Newest first. */
    assert_int_equal(ev[0].threshold, 100);
    assert_int_equal(ev[0].value, 10);
    assert_int_equal(ev[0].limit, 10);
    assert_string_equal(ev[0].metric, "requests_per_day");
    assert_int_equal(ev[1].threshold, 80);
    gh_quota_table_free(t);

    /* After a restart, the same totals do not record the events again. */
    t2 = table_new(64);
    assert_int_equal(gh_quota_preload(t2, f->st, now + 20000, &err), GH_OK);
    refused(t2, "tn_e", &q, now + 20000, GH_QUOTA_REQUESTS, GH_QUOTA_DAY, 10, 10);
    flush(t2, f->st, now + 21000);
    flush(t2, f->st, now + 22000);
    assert_int_equal(events_of(f->st, "tn_e", ev, 16), 2);

    /* The next day is a new period: its events are recorded anew. */
    admit_n(t2, "tn_e", &q, now + DAY_S * 1000LL, 8);
    flush(t2, f->st, now + DAY_S * 1000LL + 1000);
    flush(t2, f->st, now + DAY_S * 1000LL + 2000);
    n = events_of(f->st, "tn_e", ev, 16);
    assert_int_equal(n, 3);
    assert_string_equal(ev[0].period, "2026-11-23");
    assert_int_equal(ev[0].threshold, 80);
    gh_quota_table_free(t2);
}

/* Month and byte events carry their own metric names. */
static void test_events_month_and_bytes(void **state)
{
    struct fixture *f = *state;
    struct gh_quota_table *t = table_new(64);
    struct gh_config_quotas q = {0};
    struct gh_store_limit_event ev[16];
    const int64_t now = utc_ms(2026, 11, 22, 8, 0, 0, 0);
    bool month100 = false, bytes80 = false;
    size_t n;

    q.limit[GH_QUOTA_REQUESTS][GH_QUOTA_MONTH] = 4;
    q.limit[GH_QUOTA_REQUEST_BYTES][GH_QUOTA_DAY] = 1000;
    admit_n(t, "tn_mb", &q, now, 4);
    gh_quota_add_bytes(t, "tn_mb", 5, 850, 0, now);
    flush(t, f->st, now + 1000);
    flush(t, f->st, now + 2000);
    n = events_of(f->st, "tn_mb", ev, 16);
    /* requests_per_month 80% and 100%, request_bytes_per_day 80%. */
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(ev[i].metric, "requests_per_month") == 0 && ev[i].threshold == 100) {
            assert_string_equal(ev[i].period, "2026-11");
            month100 = true;
        }
        if (strcmp(ev[i].metric, "request_bytes_per_day") == 0) {
            assert_int_equal(ev[i].threshold, 80);
            assert_string_equal(ev[i].period, "2026-11-22");
            assert_int_equal(ev[i].value, 850);
            bytes80 = true;
        }
    }
    assert_true(month100);
    assert_true(bytes80);
    gh_quota_table_free(t);
}

/* ---- Rollovers -------------------------------------------------------------- */

/* Counts of a day that ended go to that day's row; the new day starts at
 * zero; the month keeps counting. */
static void test_day_rollover(void **state)
{
    struct fixture *f = *state;
    struct gh_quota_table *t = table_new(64);
    struct gh_config_quotas q = {0};
    struct gh_quota_verdict v;
    const int64_t before = utc_ms(2026, 11, 22, 23, 59, 59, 500);
    const int64_t after = utc_ms(2026, 11, 23, 0, 0, 0, 500);
    const int64_t next = utc_ms(2026, 11, 24, 0, 0, 0, 500);

    q.limit[GH_QUOTA_REQUESTS][GH_QUOTA_DAY] = 3;
    q.limit[GH_QUOTA_REQUESTS][GH_QUOTA_MONTH] = 8;
    admit_n(t, "tn_d", &q, before, 3);
    gh_quota_add_bytes(t, "tn_d", 4, 7, 9, before);
    assert_false(admit(t, "tn_d", &q, before, &v));
    assert_int_equal(v.period, GH_QUOTA_DAY);
    assert_int_equal(v.retry_after_s, 1);

    /* No flush in between: the old day's counts wait aside. */
    admit_n(t, "tn_d", &q, after, 3);
    gh_quota_add_bytes(t, "tn_d", 4, 1, 1, after);
    refused(t, "tn_d", &q, after, GH_QUOTA_REQUESTS, GH_QUOTA_DAY, 3, 3);
    flush(t, f->st, after + 500);
    assert_usage(f->st, "tn_d", "2026-11-22", 3, 7, 9);
    assert_usage(f->st, "tn_d", "2026-11-23", 3, 1, 1);
    assert_usage(f->st, "tn_d", "2026-11", 6, 8, 10);
    /* Flushing again moves nothing twice. */
    flush(t, f->st, after + 1500);
    assert_usage(f->st, "tn_d", "2026-11-22", 3, 7, 9);
    assert_usage(f->st, "tn_d", "2026-11", 6, 8, 10);

    /* A rollover right after a flush: the month's total carries on. */
    admit_n(t, "tn_d", &q, next, 2);
    assert_false(admit(t, "tn_d", &q, next, &v));
    assert_int_equal(v.metric, GH_QUOTA_REQUESTS);
    assert_int_equal(v.period, GH_QUOTA_MONTH);
    assert_int_equal(v.used, 8);
    assert_int_equal(v.limit, 8);
    assert_int_equal(v.retry_after_s, secs_until(next, utc_ms(2026, 12, 1, 0, 0, 0, 0)));
    assert_int_equal(v.window_s, 30 * DAY_S);
    flush(t, f->st, next + 500);
    assert_usage(f->st, "tn_d", "2026-11-24", 2, 0, 0);
    assert_usage(f->st, "tn_d", "2026-11", 8, 8, 10);
    gh_quota_table_free(t);
}

/* A month that ends: the old month's and day's rows get their counts, the
 * new month starts at zero. */
static void rollover_case(struct fixture *f, const char *tenant, int64_t before, int64_t after,
                          const char *old_day, const char *old_month, const char *new_day,
                          const char *new_month, uint64_t new_window_s)
{
    struct gh_quota_table *t = table_new(64);
    struct gh_config_quotas q = {0};
    struct gh_quota_verdict v;

    q.limit[GH_QUOTA_REQUESTS][GH_QUOTA_MONTH] = 4;
    admit_n(t, tenant, &q, before, 4);
    gh_quota_add_bytes(t, tenant, strlen(tenant), 11, 22, before);
    assert_false(admit(t, tenant, &q, before, &v));
    assert_int_equal(v.period, GH_QUOTA_MONTH);
    assert_int_equal(v.retry_after_s, 1);

    admit_n(t, tenant, &q, after, 4);
    gh_quota_add_bytes(t, tenant, strlen(tenant), 1, 2, after);
    assert_false(admit(t, tenant, &q, after, &v));
    assert_int_equal(v.period, GH_QUOTA_MONTH);
    assert_int_equal(v.used, 4);
    assert_int_equal(v.window_s, new_window_s);
    assert_int_equal(v.retry_after_s, new_window_s); /* 0.1 s into the month */
    flush(t, f->st, after + 400);
    flush(t, f->st, after + 900);
    assert_usage(f->st, tenant, old_day, 4, 11, 22);
    assert_usage(f->st, tenant, old_month, 4, 11, 22);
    assert_usage(f->st, tenant, new_day, 4, 1, 2);
    assert_usage(f->st, tenant, new_month, 4, 1, 2);
    gh_quota_table_free(t);
}

static void test_month_rollover(void **state)
{
    struct fixture *f = *state;

    rollover_case(f, "tn_nov", utc_ms(2026, 11, 30, 23, 59, 59, 900),
                  utc_ms(2026, 12, 1, 0, 0, 0, 100), "2026-11-30", "2026-11", "2026-12-01",
                  "2026-12", 31 * DAY_S);
    rollover_case(f, "tn_dec", utc_ms(2026, 12, 31, 23, 59, 59, 900),
                  utc_ms(2027, 1, 1, 0, 0, 0, 100), "2026-12-31", "2026-12", "2027-01-01",
                  "2027-01", 31 * DAY_S);
    rollover_case(f, "tn_feb", utc_ms(2028, 1, 31, 23, 59, 59, 900),
                  utc_ms(2028, 2, 1, 0, 0, 0, 100), "2028-01-31", "2028-01", "2028-02-01",
                  "2028-02", 29 * DAY_S);
    /* Each case's counts went to its own rows only. */
    assert_usage(f->st, "tn_nov", "2026-12-31", 0, 0, 0);
    assert_usage(f->st, "tn_dec", "2026-11", 0, 0, 0);
}

static void test_period_names(void **state)
{
    static const struct {
        int y, mo, d, h, mi, s, ms;
        const char *day, *month;
    } cases[] = {
        {2026, 11, 22, 0, 0, 0, 0, "2026-11-22", "2026-11"},
        {2026, 11, 22, 23, 59, 59, 999, "2026-11-22", "2026-11"},
        {2026, 11, 23, 0, 0, 0, 0, "2026-11-23", "2026-11"},
        {2026, 11, 30, 23, 59, 59, 999, "2026-11-30", "2026-11"},
        {2026, 12, 1, 0, 0, 0, 0, "2026-12-01", "2026-12"},
        {2026, 12, 31, 23, 59, 59, 999, "2026-12-31", "2026-12"},
        {2027, 1, 1, 0, 0, 0, 0, "2027-01-01", "2027-01"},
        {2028, 2, 29, 12, 0, 0, 0, "2028-02-29", "2028-02"},
        {1970, 1, 1, 0, 0, 0, 0, "1970-01-01", "1970-01"},
        {2099, 12, 31, 23, 59, 59, 999, "2099-12-31", "2099-12"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t ms = utc_ms(cases[i].y, cases[i].mo, cases[i].d, cases[i].h, cases[i].mi,
                            cases[i].s, cases[i].ms);
        char out[11];

        memset(out, 'x', sizeof(out));
        gh_quota_period_name(GH_QUOTA_DAY, ms, out);
        assert_string_equal(out, cases[i].day);
        memset(out, 'x', sizeof(out));
        gh_quota_period_name(GH_QUOTA_MONTH, ms, out);
        assert_string_equal(out, cases[i].month);
    }
}

static void test_period_left(void **state)
{
    static const struct {
        int period;
        int y, mo, d, h, mi, s, ms;
        uint64_t left;
    } cases[] = {
        {GH_QUOTA_DAY, 2026, 11, 22, 23, 59, 59, 500, 1},
        {GH_QUOTA_DAY, 2026, 11, 22, 23, 59, 59, 0, 1},
        {GH_QUOTA_DAY, 2026, 11, 22, 23, 59, 58, 999, 2},
        {GH_QUOTA_DAY, 2026, 11, 22, 23, 59, 59, 999, 1},
        {GH_QUOTA_DAY, 2026, 11, 23, 0, 0, 0, 0, DAY_S},
        {GH_QUOTA_DAY, 2026, 11, 23, 0, 0, 0, 500, DAY_S},
        {GH_QUOTA_DAY, 2026, 11, 23, 0, 0, 1, 0, DAY_S - 1},
        {GH_QUOTA_DAY, 2026, 11, 23, 12, 0, 0, 0, DAY_S / 2},
        {GH_QUOTA_MONTH, 2026, 11, 30, 23, 59, 59, 500, 1},
        {GH_QUOTA_MONTH, 2026, 11, 1, 0, 0, 0, 0, 30 * DAY_S},
        {GH_QUOTA_MONTH, 2026, 12, 1, 0, 0, 0, 0, 31 * DAY_S},
        {GH_QUOTA_MONTH, 2026, 12, 31, 23, 59, 59, 999, 1},
        {GH_QUOTA_MONTH, 2026, 12, 31, 0, 0, 0, 0, DAY_S},
        {GH_QUOTA_MONTH, 2027, 1, 1, 0, 0, 0, 0, 31 * DAY_S},
        {GH_QUOTA_MONTH, 2027, 2, 1, 0, 0, 0, 0, 28 * DAY_S},
        {GH_QUOTA_MONTH, 2028, 2, 1, 0, 0, 0, 0, 29 * DAY_S},
        {GH_QUOTA_MONTH, 2028, 2, 29, 0, 0, 0, 0, DAY_S},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t ms = utc_ms(cases[i].y, cases[i].mo, cases[i].d, cases[i].h, cases[i].mi,
                            cases[i].s, cases[i].ms);
        uint64_t got = gh_quota_period_left_s(cases[i].period, ms);
        if (got != cases[i].left)
            fail_msg("case %zu: %llu s left, expected %llu", i, (unsigned long long)got,
                     (unsigned long long)cases[i].left);
    }
}

/* ---- A full table ----------------------------------------------------------- */

/* The smallest table (16 slots in each of 64 shards) cannot hold 5000
 * tenants: those without a slot are admitted uncounted and counted in
 * gh_quota_overflows(); those with one keep being limited. */
static void test_full_table(void **state)
{
    struct fixture *f = *state;
    struct gh_quota_table *t = table_new(1);
    struct gh_config_quotas q = {0};
    struct gh_quota_verdict v;
    const int64_t now = utc_ms(2026, 11, 22, 8, 0, 0, 0);
    const int tenants = 5000;
    uint64_t over1, over2;
    int refusals = 0;
    char name[32];

    q.limit[GH_QUOTA_REQUESTS][GH_QUOTA_DAY] = 1;
    for (int i = 0; i < tenants; i++) {
        snprintf(name, sizeof(name), "tn_full_%d", i);
        admit_n(t, name, &q, now, 1);
    }
    over1 = gh_quota_overflows(t);
    assert_true(over1 > 0);
    assert_true(over1 >= (uint64_t)(tenants - 64 * 16));
    assert_true(over1 < (uint64_t)tenants);

    for (int i = 0; i < tenants; i++) {
        snprintf(name, sizeof(name), "tn_full_%d", i);
        if (!admit(t, name, &q, now, &v)) {
            assert_int_equal(v.used, 1);
            refusals++;
        }
    }
    over2 = gh_quota_overflows(t);
    /* The same tenants overflow again; the others are refused. */
    assert_int_equal(over2, 2 * over1);
    assert_int_equal((uint64_t)refusals, (uint64_t)tenants - over1);

    /* The counted ones are flushed, the others are not in the store. */
    flush(t, f->st, now + 1000);
    {
        uint64_t stored = 0;
        for (int i = 0; i < tenants; i++) {
            struct gh_store_usage u;
            struct gh_err err = {0};
            snprintf(name, sizeof(name), "tn_full_%d", i);
            assert_int_equal(gh_store_usage_get(f->st, name, "2026-11-22", &u, &err), GH_OK);
            assert_true(u.requests <= 1);
            stored += u.requests;
        }
        assert_int_equal(stored, (uint64_t)refusals);
    }
    gh_quota_table_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_admit_refuses_at_limit),
        cmocka_unit_test(test_admit_month_limit),
        cmocka_unit_test(test_unadmit),
        cmocka_unit_test(test_byte_quotas),
        cmocka_unit_test(test_tenants_independent),
        cmocka_unit_test_setup_teardown(test_flush_writes_usage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_preload_after_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_nodes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flush_failure_keeps_counts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flush_cut_after_commit_counts_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events_month_and_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_day_rollover, setup, teardown),
        cmocka_unit_test_setup_teardown(test_month_rollover, setup, teardown),
        cmocka_unit_test(test_period_names),
        cmocka_unit_test(test_period_left),
        cmocka_unit_test_setup_teardown(test_full_table, setup, teardown),
    };
    /* The flush logs every threshold crossed; the store has the events. */
    gh_log_set_level(GH_LOG_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
