/* Tests of src/hooks/retention.c on a fresh SQLite store: the interval
 * between passes, a pass over a backlog in steps of
 * GH_HOOKS_RETENTION_BATCH (the next step due at once, the next pass one
 * interval on), nothing run before it is due, and messages younger than
 * the retention left alone. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "hooks/retention.h"
#include "store/store.h"

#define MS 1000000ull

static void test_interval(void **state)
{
    (void)state;
    assert_true(gh_hooks_retention_interval_ns(30ull * 86400000) == 600000 * MS); /* 10 min cap */
    assert_true(gh_hooks_retention_interval_ns(40000) == 5000 * MS);              /* an eighth */
    assert_true(gh_hooks_retention_interval_ns(3000) == 1000 * MS);               /* 1 s floor */
    assert_true(gh_hooks_retention_interval_ns(1000) == 1000 * MS);
}

static void publish(struct gh_store *st, const char *tenant, int i)
{
    struct gh_err err = {0};
    char id[32];
    size_t n;
    bool dup;

    snprintf(id, sizeof(id), "m-%d", i);
    assert_int_equal(gh_store_hook_publish(st, tenant, id, "a.b", "{}", 2, 0, &n, &dup, &err),
                     GH_OK);
}

static void test_pass_in_steps(void **state)
{
    char dir[256], path[300], cmd[300];
    struct gh_store_params p = {0};
    struct gh_store_tenant t = {0};
    struct gh_store *st = NULL;
    struct gh_store_hook_purged step;
    struct gh_hooks_retention r;
    struct gh_err err = {0};
    int applied, version, rc = -1;
    const char *tmp = getenv("TMPDIR");
    uint64_t now = 1000 * MS, iv = gh_hooks_retention_interval_ns(1000);
    (void)state;

    snprintf(dir, sizeof(dir), "%s/gh_retention_XXXXXX", tmp && tmp[0] ? tmp : P_tmpdir);
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/gatehouse.db", dir);
    p.sqlite_path = path;
    assert_int_equal(gh_store_open(&p, &st, &err), GH_OK);
    assert_int_equal(gh_store_migrate(st, &applied, &version, &err), GH_OK);
    snprintf(t.name, sizeof(t.name), "acme");
    assert_int_equal(gh_store_tenant_create(st, &t, &err), GH_OK);
    for (int i = 0; i < 1100; i++)
        publish(st, t.id, i);
    struct timespec pause = {.tv_sec = 1, .tv_nsec = 100 * 1000000L};
    nanosleep(&pause, NULL); /* older than a retention of 1 s */
    publish(st, t.id, 9999); /* younger */

    gh_hooks_retention_init(&r, 1000, now);
    assert_false(r.active);
    assert_false(gh_hooks_retention_step(&r, st, "owner", 1000, now + iv - 1, &step, &rc));
    assert_true(gh_hooks_retention_step(&r, st, "owner", 1000, now + iv, &step, &rc));
    assert_int_equal(rc, GH_OK);
    assert_int_equal(step.messages, GH_HOOKS_RETENTION_BATCH);
    assert_true(r.active && r.next_ns == now + iv); /* the next step at once */
    assert_true(gh_hooks_retention_step(&r, st, "owner", 1000, now + iv, &step, &rc));
    assert_int_equal(step.messages, GH_HOOKS_RETENTION_BATCH);
    assert_true(gh_hooks_retention_step(&r, st, "owner", 1000, now + iv + 5, &step, &rc));
    assert_int_equal(rc, GH_OK);
    assert_int_equal(step.messages, 100);
    assert_false(step.more);
    assert_false(r.active);
    assert_int_equal(r.pass.messages, 1100);
    assert_true(r.next_ns == now + iv + 5 + iv); /* the next pass */
    assert_false(gh_hooks_retention_step(&r, st, "owner", 1000, now + 2 * iv, &step, &rc));

    /* The young one is still there: its id is a duplicate. */
    size_t n;
    bool dup = false;
    assert_int_equal(gh_store_hook_publish(st, t.id, "m-9999", "a.b", "{}", 2, 0, &n, &dup, &err),
                     GH_OK);
    assert_true(dup);
    assert_int_equal(gh_store_hook_publish(st, t.id, "m-1", "a.b", "{}", 2, 0, &n, &dup, &err),
                     GH_OK);
    assert_false(dup);

    gh_store_close(st);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_interval),
        cmocka_unit_test(test_pass_in_steps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
