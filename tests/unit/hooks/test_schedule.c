/* Tests of src/hooks/schedule.c: delays with jitter, what is retried, and
 * Retry-After in both forms. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "hooks/schedule.h"

static const uint64_t dflt[] = {0, 5000, 300000, 1800000, 7200000, 18000000, 36000000, 36000000};

static void test_schedule(void **state)
{
    uint64_t d;

    for (unsigned i = 0; i < 8; i++) {
        assert_true(gh_hooks_schedule_delay(dflt, 8, i, 0.0, 0.3, &d));
        assert_int_equal(d, dflt[i]);
    }
    assert_false(gh_hooks_schedule_delay(dflt, 8, 8, 0.0, 0.3, &d));
    assert_false(gh_hooks_schedule_delay(dflt, 0, 0, 0.0, 0.3, &d));
    /* Jitter 0.1: u = 0 gives -10 %, u -> 1 gives +10 %, u = 0.5 none. */
    assert_true(gh_hooks_schedule_delay(dflt, 8, 1, 0.1, 0.0, &d));
    assert_int_equal(d, 4500);
    assert_true(gh_hooks_schedule_delay(dflt, 8, 1, 0.1, 0.5, &d));
    assert_int_equal(d, 5000);
    assert_true(gh_hooks_schedule_delay(dflt, 8, 1, 0.1, 0.999999, &d));
    assert_true(d >= 5499 && d <= 5500);
    /* At once stays at once. */
    assert_true(gh_hooks_schedule_delay(dflt, 8, 0, 1.0, 0.0, &d));
    assert_int_equal(d, 0);
}

static void test_retryable(void **state)
{
    static const struct {
        long status;
        bool retry, ok;
    } cases[] = {
        {0, true, false},    {200, false, true},  {204, false, true},  {299, false, true},
        {301, false, false}, {302, false, false}, {400, false, false}, {401, false, false},
        {404, false, false}, {408, true, false},  {410, false, false}, {422, false, false},
        {429, true, false},  {500, true, false},  {502, true, false},  {503, true, false},
        {599, true, false},  {600, false, false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (gh_hooks_retryable(cases[i].status) != cases[i].retry)
            fail_msg("%ld: retryable wrong", cases[i].status);
        if (gh_hooks_success(cases[i].status) != cases[i].ok)
            fail_msg("%ld: success wrong", cases[i].status);
    }
}

static void test_retry_after(void **state)
{
    /* Sun, 06 Nov 1994 08:49:37 GMT = 784111777 (RFC 9110's example). */
    const int64_t now = 784111777000LL;
    uint64_t d;

    assert_true(gh_hooks_retry_after("120", now, &d));
    assert_int_equal(d, 120000);
    assert_true(gh_hooks_retry_after(" 0 ", now, &d));
    assert_int_equal(d, 0);
    assert_true(gh_hooks_retry_after("999999999999999999999", now, &d));
    assert_int_equal(d, 24ull * 3600 * 1000);
    assert_true(gh_hooks_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now - 5000, &d));
    assert_int_equal(d, 5000);
    assert_true(gh_hooks_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", now - 5000, &d));
    assert_int_equal(d, 5000);
    assert_true(gh_hooks_retry_after("Sun Nov  6 08:49:37 1994", now - 5000, &d));
    assert_int_equal(d, 5000);
    assert_true(gh_hooks_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now + 5000, &d));
    assert_int_equal(d, 0); /* in the past */
    /* Regression (fuzz_hooks): a year curl reads but milliseconds since
     * 1970 overflow; the delay is capped, not undefined. */
    if (gh_hooks_retry_after("///,6 Nov402222211\x03\x05", now, &d))
        assert_true(d <= 24ull * 3600 * 1000);
    assert_true(gh_hooks_retry_after("Sun, 06 Nov 2994 08:49:37 GMT", now, &d));
    assert_int_equal(d, 24ull * 3600 * 1000);
    assert_false(gh_hooks_retry_after("", now, &d));
    assert_false(gh_hooks_retry_after("-5", now, &d));
    assert_false(gh_hooks_retry_after("12s", now, &d));
    assert_false(gh_hooks_retry_after("soon", now, &d));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schedule),
        cmocka_unit_test(test_retryable),
        cmocka_unit_test(test_retry_after),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
