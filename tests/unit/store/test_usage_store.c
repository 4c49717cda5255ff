/* Tests of usage retention in src/store (gh_store_usage_purge, in
 * sqlite_usage.c and pg_usage.c), each on a fresh store (store_fixture.h: a
 * SQLite file, or a PostgreSQL database with GH_TEST_PG_SERVER): which
 * periods are wholly before the cutoff, batches of a given size, limit
 * events with their period, and validation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"
#include "store_fixture.h"

/* The cutoff's day and month, as the limits module names them. */
#define DAY   "2025-10-20"
#define MONTH "2025-10"

static int setup(void **state)
{
    struct gh_test_store *t = calloc(1, sizeof(*t));
    struct gh_err err = {0};

    if (gh_test_store_open(t, "usage", &err) != GH_OK) fail_msg("open: %s", err.msg);
    *state = t;
    return 0;
}

static int teardown(void **state)
{
    gh_test_store_close(*state);
    free(*state);
    return 0;
}

/* Runs <sql> on the store's tables behind its back. */
static void raw(struct gh_test_store *t, const char *sql)
{
    if (!gh_test_store_exec(t, sql)) fail_msg("%s failed", sql);
}

static uint64_t requests_of(struct gh_test_store *t, const char *period)
{
    struct gh_store_usage u;
    struct gh_err err = {0};

    assert_int_equal(gh_store_usage_get(t->st, "tn_acme", period, &u, &err), GH_OK);
    return u.requests;
}

static void test_periods_wholly_before_the_cutoff_go(void **state)
{
    struct gh_test_store *t = *state;
    /* Gone: days before the cutoff's day, months before its month. Kept:
     * the cutoff's day and month (they end after it), later ones. */
    static const char *const gone[] = {"2024-12", "2025-09", "2025-09-30", "2025-10-19"};
    static const char *const kept[] = {"2025-10", "2025-10-20", "2025-10-21", "2025-11",
                                       "2025-11-01"};
    struct gh_store_usage rows[9];
    struct gh_store_usage_purged p;
    struct gh_err err = {0};
    size_t n = 0;

    memset(rows, 0, sizeof(rows));
    for (size_t i = 0; i < 4; i++)
        snprintf(rows[n++].period, sizeof(rows[0].period), "%s", gone[i]);
    for (size_t i = 0; i < 5; i++)
        snprintf(rows[n++].period, sizeof(rows[0].period), "%s", kept[i]);
    for (size_t i = 0; i < n; i++) {
        snprintf(rows[i].tenant_id, sizeof(rows[i].tenant_id), "tn_acme");
        rows[i].requests = 7;
    }
    assert_int_equal(gh_store_usage_add(t->st, rows, n, &err), GH_OK);

    /* Two a batch: 2, 2, then none. */
    if (gh_store_usage_purge(t->st, DAY, MONTH, 2, &p, &err) != GH_OK) fail_msg("%s", err.msg);
    assert_int_equal(p.usage, 2);
    assert_int_equal(gh_store_usage_purge(t->st, DAY, MONTH, 2, &p, &err), GH_OK);
    assert_int_equal(p.usage, 2);
    assert_int_equal(gh_store_usage_purge(t->st, DAY, MONTH, 2, &p, &err), GH_OK);
    assert_int_equal(p.usage, 0);
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(requests_of(t, gone[i]), 0);
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(requests_of(t, kept[i]), 7);
}

/* An event goes with its period, whatever its time: the event of a period
 * not ended is what keeps its threshold from being announced twice. */
static void test_limit_events_with_their_period(void **state)
{
    struct gh_test_store *t = *state;
    static const char *const periods[] = {"2025-09", "2025-10-19", "2025-10", "2025-10-20"};
    struct gh_store_limit_event ev, list[8];
    struct gh_store_usage_purged p;
    struct gh_err err = {0};
    size_t count;
    bool inserted, more;

    for (size_t i = 0; i < 4; i++) {
        memset(&ev, 0, sizeof(ev));
        snprintf(ev.tenant_id, sizeof(ev.tenant_id), "tn_acme");
        snprintf(ev.period, sizeof(ev.period), "%s", periods[i]);
        snprintf(ev.metric, sizeof(ev.metric), "requests_per_month");
        ev.threshold = 80;
        ev.value = 80;
        ev.limit = 100;
        assert_int_equal(gh_store_limit_event_record(t->st, &ev, &inserted, &err), GH_OK);
        assert_true(inserted);
    }
    /* All recorded long before the cutoff: their periods decide. */
    raw(t, "UPDATE limit_events SET created_at = 1");
    assert_int_equal(gh_store_usage_purge(t->st, DAY, MONTH, 1, &p, &err), GH_OK);
    assert_int_equal(p.events, 1);
    assert_int_equal(gh_store_usage_purge(t->st, DAY, MONTH, 10, &p, &err), GH_OK);
    assert_int_equal(p.events, 1);
    assert_int_equal(p.usage, 0);
    assert_int_equal(gh_store_usage_purge(t->st, DAY, MONTH, 10, &p, &err), GH_OK);
    assert_int_equal(p.events, 0);
    assert_int_equal(gh_store_limit_events_list(t->st, NULL, 0, 8, list, &count, &more, &err),
                     GH_OK);
    assert_int_equal(count, 2);
    assert_string_equal(list[0].period, "2025-10-20");
    assert_string_equal(list[1].period, "2025-10");
}

static void test_validation(void **state)
{
    struct gh_test_store *t = *state;
    struct gh_store_usage_purged p;
    struct gh_err err = {0};

    assert_int_equal(gh_store_usage_purge(t->st, DAY, MONTH, 0, &p, &err), GH_STORE_INVALID);
    assert_int_equal(
        gh_store_usage_purge(t->st, DAY, MONTH, GH_STORE_USAGE_PURGE_MAX + 1, &p, &err),
        GH_STORE_INVALID);
    assert_int_equal(gh_store_usage_purge(t->st, MONTH, MONTH, 10, &p, &err), GH_STORE_INVALID);
    assert_int_equal(gh_store_usage_purge(t->st, DAY, DAY, 10, &p, &err), GH_STORE_INVALID);
    assert_int_equal(gh_store_usage_purge(t->st, "2025-13-01", MONTH, 10, &p, &err),
                     GH_STORE_INVALID);
    /* Nothing stored: nothing to delete. */
    assert_int_equal(gh_store_usage_purge(t->st, DAY, MONTH, 10, &p, &err), GH_OK);
    assert_int_equal(p.usage + p.events, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_periods_wholly_before_the_cutoff_go, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limit_events_with_their_period, setup, teardown),
        cmocka_unit_test_setup_teardown(test_validation, setup, teardown),
    };

    if (gh_test_pg_server()) {
        print_message("usage store on PostgreSQL at %s\n", gh_test_pg_server());
        return cmocka_run_group_tests_name("usage store on PostgreSQL", tests, NULL, NULL);
    }
    return cmocka_run_group_tests_name("usage store on SQLite", tests, NULL, NULL);
}
