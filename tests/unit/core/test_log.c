/* Tests of the log (src/core/log.c): a record is one line, whatever its
 * message holds (libpq's messages carry their own newlines and tabs; a
 * value a client sent may carry anything), with the time, node and level in
 * front; records under the level are not written. And of failures logged
 * as episodes (src/core/log_episode.c). */
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
#include "core/log_episode.h"
#include "stderr_capture.h"

/* What gh_log writes to stderr while <fn> runs, in <out> (NUL-ended). */
static void capture(void (*fn)(void), char *out, size_t cap)
{
    int saved;
    FILE *tmp = gh_test_stderr_begin(&saved);

    fn();
    gh_test_stderr_end(tmp, saved, out, cap);
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

/* The episode the steps below work on (tests may keep state in statics). */
static struct gh_log_episode episode;

static void fail_a_hundred_times(void)
{
    for (int i = 0; i < 100; i++)
        gh_log_episode_fail(&episode, "store: cannot read: %s", "connection refused");
}

static void fail_after_the_rhythm(void)
{
    episode.last_log_ns -= (uint64_t)(GH_LOG_EVERY_S + 1) * 1000000000ull;
    gh_log_episode_fail(&episode, "store: cannot read: %s", "connection refused");
}

static void succeed_twice(void)
{
    gh_log_episode_ok(&episode, "store: reading");
    gh_log_episode_ok(&episode, "store: reading");
}

static int lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static void test_episode(void **state)
{
    char out[4096];

    gh_log_set_level(GH_LOG_INFO);
    episode = (struct gh_log_episode){0};
    /* A success outside an episode writes nothing. */
    capture(succeed_twice, out, sizeof(out));
    assert_string_equal(out, "");
    /* A hundred failures at once: the first is written, once. */
    capture(fail_a_hundred_times, out, sizeof(out));
    assert_int_equal(lines(out), 1);
    assert_non_null(strstr(out, " warn store: cannot read: connection refused (this line repeats "
                                "at most every 10 s while it lasts)\n"));
    /* Past the rhythm: one more line, counting the 99 left out. */
    capture(fail_after_the_rhythm, out, sizeof(out));
    assert_int_equal(lines(out), 1);
    assert_non_null(strstr(out, "connection refused (99 more failure(s) since the last such line"));
    /* The end: one line, with the count and the length; then nothing. */
    capture(succeed_twice, out, sizeof(out));
    assert_int_equal(lines(out), 1);
    assert_non_null(strstr(out, " info store: reading: works again after 101 failure(s) over "));
    assert_int_equal(episode.first_ns, 0);
    /* The next failure opens a new episode, written at once. */
    capture(fail_a_hundred_times, out, sizeof(out));
    assert_int_equal(lines(out), 1);
    assert_null(strstr(out, "more failure(s)"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_line_per_record),
        cmocka_unit_test(test_level),
        cmocka_unit_test(test_episode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
