/* Tests of the log (src/core/log.c): a record is one line, whatever its
 * message holds (libpq's messages carry their own newlines and tabs; a
 * value a client sent may carry anything), with the time, node and level in
 * front; records under the level are not written. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"

/* What gh_log writes to stderr while <fn> runs, in <out> (NUL-ended). */
static void capture(void (*fn)(void), char *out, size_t cap)
{
    FILE *tmp = tmpfile();
    int saved = dup(STDERR_FILENO);
    size_t n;

    assert_non_null(tmp);
    assert_true(saved >= 0);
    assert_true(dup2(fileno(tmp), STDERR_FILENO) >= 0);
    fn();
    assert_true(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);
    rewind(tmp);
    n = fread(out, 1, cap - 1, tmp);
    out[n] = '\0';
    fclose(tmp);
}

static void log_a_libpq_message(void)
{
    gh_log(GH_LOG_WARN, "store: %s",
           "could not connect: Connection refused\n\tIs the server running on that host?\n");
    gh_log(GH_LOG_ERROR, "from a client: %s", "a\r\nforged 2026-01-01T00:00:00Z error line\x1b[2J");
}

static void test_one_line_per_record(void **state)
{
    char out[4096], *first, *second;

    gh_log_set_level(GH_LOG_INFO);
    capture(log_a_libpq_message, out, sizeof(out));
    /* Two records, two lines. */
    first = out;
    second = strchr(first, '\n');
    assert_non_null(second);
    second++;
    assert_non_null(strchr(second, '\n'));
    assert_string_equal(strchr(second, '\n') + 1, "");
    assert_non_null(strstr(first, " warn store: could not connect: Connection refused  Is the "
                                  "server running on that host?\n"));
    assert_non_null(strstr(second, " error from a client: a  forged 2026-01-01T00:00:00Z error "
                                   "line [2J\n"));
    /* No control character is left but each record's end. */
    for (const char *p = out; *p; p++)
        if ((unsigned char)*p < 0x20) assert_int_equal(*p, '\n');
}

static void log_under_the_level(void)
{
    gh_log(GH_LOG_DEBUG, "not written");
}

static void test_level(void **state)
{
    char out[256];

    gh_log_set_level(GH_LOG_INFO);
    capture(log_under_the_level, out, sizeof(out));
    assert_string_equal(out, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_line_per_record),
        cmocka_unit_test(test_level),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
