/* Tests of src/store/pg_tools.c without a server: connection strings for
 * pg_dump and pg_restore never carry the password (it comes back apart),
 * a pinned host replaces the URL's list of hosts, a new database name
 * replaces the URL's, quoting survives hostile values; running a program
 * reports its exit and the start of its error output, and hands it
 * PGPASSWORD in its environment only. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/pg_int.h"

static void test_password_never_in_conninfo(void **state)
{
    struct gh_pg_conninfo_edit e = {.host = "db2.example", .port = "6543", .dbname = "drill_x"};
    struct gh_err err = {0};
    char *ci = NULL, *pw = NULL;

    (void)state;
    assert_int_equal(gh_pg__conninfo("postgresql://gate:s3cr%27et@db1.example:5432,db2.example:"
                                     "6543/live?sslmode=require&target_session_attrs=read-write",
                                     &e, &ci, &pw, &err),
                     GH_OK);
    assert_non_null(ci);
    assert_string_equal(pw, "s3cr'et");
    assert_null(strstr(ci, "s3cr"));
    assert_null(strstr(ci, "password"));
    assert_null(strstr(ci, "db1.example"));
    assert_null(strstr(ci, "live"));
    assert_null(strstr(ci, "target_session_attrs"));
    assert_non_null(strstr(ci, "user='gate'"));
    assert_non_null(strstr(ci, "sslmode='require'"));
    assert_non_null(strstr(ci, "dbname='drill_x'"));
    assert_non_null(strstr(ci, "host='db2.example'"));
    assert_non_null(strstr(ci, "port='6543'"));
    free(ci);
    free(pw);

    /* Kept for this process's own connection; dropped without a place
     * to put it; a URL without one gives NULL. */
    e.keep_password = true;
    assert_int_equal(gh_pg__conninfo("postgresql://gate:pw@h/db", &e, &ci, NULL, &err), GH_OK);
    assert_non_null(strstr(ci, "password='pw'"));
    free(ci);
    assert_int_equal(gh_pg__conninfo("postgresql://gate:pw@h/db", NULL, &ci, NULL, &err), GH_OK);
    assert_null(strstr(ci, "pw"));
    free(ci);
    assert_int_equal(gh_pg__conninfo("postgresql://gate@h/db", NULL, &ci, &pw, &err), GH_OK);
    assert_null(pw);
    free(ci);
}

static void test_conninfo_quotes_and_round_trips(void **state)
{
    struct gh_pg_conninfo_edit e = {.dbname = "it's\\a db", .drop_user = true};
    struct gh_err err = {0};
    char *ci = NULL, *again = NULL;
    PQconninfoOption *opts;
    char *msg = NULL;
    bool found = false;

    (void)state;
    assert_int_equal(gh_pg__conninfo("host=h user=u application_name='a b'", &e, &ci, NULL, &err),
                     GH_OK);
    assert_null(strstr(ci, "user="));
    opts = PQconninfoParse(ci, &msg);
    assert_non_null(opts);
    for (PQconninfoOption *o = opts; o->keyword; o++)
        if (strcmp(o->keyword, "dbname") == 0) {
            assert_string_equal(o->val, "it's\\a db");
            found = true;
        }
    assert_true(found);
    PQconninfoFree(opts);
    /* Its own output parses back to the same options (in libpq's order
     * once through it: then a fixed point). */
    assert_int_equal(gh_pg__conninfo(ci, NULL, &again, NULL, &err), GH_OK);
    free(ci);
    assert_int_equal(gh_pg__conninfo(again, NULL, &ci, NULL, &err), GH_OK);
    assert_string_equal(ci, again);
    assert_non_null(strstr(ci, "dbname='it\\'s\\\\a db'"));
    free(ci);
    free(again);
    assert_int_equal(gh_pg__conninfo("postgresql://[bad", NULL, &ci, NULL, &err), GH_ERROR);
    assert_null(ci);
}

static void test_tool_run(void **state)
{
    struct gh_err err = {0};
    char *ok[] = {"/bin/sh", "-c", "test \"$PGPASSWORD\" = 'p w'", NULL};
    char *fail[] = {"/bin/sh", "-c", "echo 'pg_dump: error: first' >&2; echo second >&2; exit 3",
                    NULL};
    char *missing[] = {"/nonexistent/pg_dump", NULL};
    char path[4096];

    (void)state;
    assert_int_equal(gh_pg__tool_run(ok, "p w", &err), GH_OK);
    unsetenv("PGPASSWORD");
    assert_int_equal(gh_pg__tool_run(ok, NULL, &err), GH_ERROR);
    assert_int_equal(gh_pg__tool_run(fail, NULL, &err), GH_ERROR);
    assert_non_null(strstr(err.msg, "exited with 3"));
    assert_non_null(strstr(err.msg, "pg_dump: error: first second"));
    assert_int_equal(gh_pg__tool_run(missing, NULL, &err), GH_ERROR);
    assert_int_equal(gh_pg__tool("no-such-pg-tool", 150000, path, sizeof(path), &err), GH_ERROR);
    assert_non_null(strstr(err.msg, "not found"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_password_never_in_conninfo),
        cmocka_unit_test(test_conninfo_quotes_and_round_trips),
        cmocka_unit_test(test_tool_run),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
