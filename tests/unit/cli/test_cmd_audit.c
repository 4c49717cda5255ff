/* Tests of `gatehouse audit verify` (src/cli/cmd_audit.c) through
 * gh_cli_main: its exit codes on an intact store (0), a tampered one (1),
 * and usage or read errors (2), with --tenant by id, by name and unknown. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit/chain.h"
#include "cli/cli.h"
#include "store/store.h"

struct fixture {
    char dir[64], db[128], config[128];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct gh_store_params p = {0};
    struct gh_store *st;
    struct gh_store_tenant t = {0};
    struct gh_store_audit_row rows[6];
    uint8_t prev[2][32] = {{0}};
    struct gh_err err = {0};
    FILE *cf;

    snprintf(f->dir, sizeof(f->dir), "/tmp/gh_cmd_audit_XXXXXX");
    if (mkdtemp(f->dir) == NULL) return -1;
    snprintf(f->db, sizeof(f->db), "%s/gatehouse.db", f->dir);
    snprintf(f->config, sizeof(f->config), "%s/gatehouse.yaml", f->dir);
    cf = fopen(f->config, "w");
    fprintf(cf,
            "listen:\n  - address: 127.0.0.1:18080\nupstreams:\n  app:\n    endpoints: "
            "[\"127.0.0.1:18081\"]\nroutes:\n  - path: /\n    upstream: app\nstore:\n  "
            "sqlite: %s\n",
            f->db);
    fclose(cf);
    p.sqlite_path = f->db;
    if (gh_store_open(&p, &st, &err) != GH_OK || gh_store_migrate(st, NULL, NULL, &err) != GH_OK)
        fail_msg("%s", err.msg);
    snprintf(t.name, sizeof(t.name), "acme");
    assert_int_equal(gh_store_tenant_create(st, &t, &err), GH_OK);
    for (int i = 0; i < 6; i++) {
        struct gh_audit_event ev;
        uint8_t rnd[10] = {(uint8_t)i};
        int c = i % 2;
        gh_audit_event_init(&ev, 1763782800000000 + i, rnd);
        if (c == 0) GH_AUDIT_SET(&ev, tenant, gh_str_cstr(t.id));
        ev.outcome = GH_AUDIT_SUCCESS;
        assert_int_equal(gh_audit_chain_event(&ev, (uint64_t)i / 2 + 1, prev[c], &rows[i]), GH_OK);
        memcpy(prev[c], ev.hash, 32);
    }
    assert_int_equal(gh_store_audit_append(st, rows, 6, NULL, 0, &err), GH_OK);
    gh_store_close(st);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char p[160];

    unlink(f->config);
    unlink(f->db);
    snprintf(p, sizeof(p), "%s-wal", f->db);
    unlink(p);
    snprintf(p, sizeof(p), "%s-shm", f->db);
    unlink(p);
    rmdir(f->dir);
    free(f);
    return 0;
}

static int run(struct fixture *f, const char *tenant)
{
    char *argv[] = {"gatehouse", "audit",    "verify",       "-c",
                    f->config,   "--tenant", (char *)tenant, NULL};
    int argc = tenant ? 7 : 5;

    fflush(stdout);
    return gh_cli_main(argc, argv);
}

static void test_exit_codes(void **state)
{
    struct fixture *f = *state;
    sqlite3 *db;
    char *argv_usage[] = {"gatehouse", "audit", "verify", NULL};
    char *argv_bad[] = {"gatehouse", "audit", "verify", "-c", "/nonexistent/gatehouse.yaml", NULL};
    char *argv_verb[] = {"gatehouse", "audit", "nonsense", NULL};

    assert_int_equal(run(f, NULL), 0);
    assert_int_equal(run(f, "system"), 0);
    assert_int_equal(run(f, "acme"), 0); /* by name */
    assert_int_equal(run(f, "bad\nname"), 2);
    assert_int_equal(gh_cli_main(3, argv_usage), 2);
    assert_int_equal(gh_cli_main(5, argv_bad), 2);
    assert_int_equal(gh_cli_main(3, argv_verb), 2);

    assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "UPDATE audit_events SET action = 'x' WHERE seq = 2 AND "
                                  "chain = 'system'",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(run(f, NULL), 1);
    assert_int_equal(run(f, "system"), 1);
    assert_int_equal(run(f, "acme"), 0); /* the other chain is intact */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_exit_codes, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
