/* Tests of src/limits/gcra.h with a fake clock: parameter checks, burst then
 * sustained rate, remaining/retry/reset values, long and short periods, and
 * the property that an expired tat decides like a fresh key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "limits/gcra.h"

#define MS   UINT64_C(1000000)
#define SEC  UINT64_C(1000000000)
#define MIN  (60 * SEC)
#define HOUR (60 * MIN)
#define DAY  (24 * HOUR)

/* A monotonic clock that is not near 0, as on a real machine after boot. */
#define T0 (1000 * SEC)

static struct gh_gcra_params params(uint64_t count, uint64_t period, uint32_t burst)
{
    struct gh_gcra_params p;
    assert_int_equal(gh_gcra_params_init(&p, count, period, burst), GH_OK);
    return p;
}

static void test_params_validation(void **state)
{
    struct gh_gcra_params p = {0};

    assert_int_equal(gh_gcra_params_init(&p, 0, SEC, 1), GH_ERROR);
    assert_int_equal(gh_gcra_params_init(&p, 1, 0, 1), GH_ERROR);
    assert_int_equal(gh_gcra_params_init(&p, 1, SEC, 0), GH_ERROR);
    /* Finer than one request per nanosecond. */
    assert_int_equal(gh_gcra_params_init(&p, 2000000000, SEC, 1), GH_ERROR);
    assert_int_equal(gh_gcra_params_init(&p, UINT64_MAX, SEC, 1), GH_ERROR);
    /* Refusals leave <p> alone. */
    assert_int_equal(p.emission_ns, 0);

    p = params(10, SEC, 10);
    assert_int_equal(p.emission_ns, 100 * MS);
    assert_int_equal(p.tau_ns, SEC);
    assert_int_equal(p.burst, 10);

    /* One per nanosecond is the finest rate: handled. */
    p = params(1000000000, SEC, 1000);
    assert_int_equal(p.emission_ns, 1);
    assert_int_equal(p.tau_ns, 1000);

    /* A burst window that would overflow (or come near it) is refused. */
    assert_int_equal(gh_gcra_params_init(&p, 1, DAY, UINT32_MAX), GH_ERROR);
    assert_int_equal(gh_gcra_params_init(&p, 1, UINT64_MAX, 1), GH_ERROR);
    assert_int_equal(gh_gcra_params_init(&p, 1, UINT64_MAX / 2, 1), GH_ERROR);
    /* Large but sane: one per day, burst 1000 (2.7 years of window). */
    p = params(1, DAY, 1000);
    assert_int_equal(p.tau_ns, 1000 * DAY);
}

static void test_burst_then_rate(void **state)
{
    struct gh_gcra_params p = params(10, SEC, 10);
    struct gh_gcra_result r;
    uint64_t tat = 0;

    for (int i = 0; i < 10; i++) {
        gh_gcra_step(&tat, T0, &p, &r);
        assert_true(r.allowed);
        assert_int_equal(r.remaining, 9 - i);
        assert_int_equal(r.retry_after_ns, 0);
        assert_int_equal(r.reset_ns, (uint64_t)(i + 1) * 100 * MS);
    }
    gh_gcra_step(&tat, T0, &p, &r);
    assert_false(r.allowed);
    assert_int_equal(r.remaining, 0);
    assert_int_equal(r.retry_after_ns, 100 * MS);
    assert_int_equal(r.reset_ns, SEC);
    assert_int_equal(tat, T0 + SEC); /* denials cost nothing */

    /* Just before the retry time: still denied, with the rest to wait. */
    gh_gcra_step(&tat, T0 + 100 * MS - 1, &p, &r);
    assert_false(r.allowed);
    assert_int_equal(r.retry_after_ns, 1);

    gh_gcra_step(&tat, T0 + 100 * MS, &p, &r);
    assert_true(r.allowed);
    assert_int_equal(r.remaining, 0);
    assert_int_equal(r.reset_ns, SEC);
    gh_gcra_step(&tat, T0 + 100 * MS, &p, &r);
    assert_false(r.allowed);
    assert_int_equal(r.retry_after_ns, 100 * MS);
}

/* Requests every 1 ms over 10 s (t = 0 ms .. 10000 ms, both ends included)
 * from an idle key: the burst of 10 goes to the first 10 requests (0-9 ms),
 * then one at each 100 ms mark from 100 ms to 10000 ms, 100 more. */
static void test_sustained_rate(void **state)
{
    struct gh_gcra_params p = params(10, SEC, 10);
    struct gh_gcra_result r;
    uint64_t tat = 0;
    int allowed = 0;

    for (uint64_t ms = 0; ms <= 10000; ms++) {
        gh_gcra_step(&tat, T0 + ms * MS, &p, &r);
        assert_int_equal(r.allowed, ms < 10 || ms % 100 == 0);
        allowed += r.allowed;
    }
    assert_int_equal(allowed, 10 + 100);
}

/* Idle time refills the burst, but never beyond it. */
static void test_refill(void **state)
{
    struct gh_gcra_params p = params(10, SEC, 10);
    struct gh_gcra_result r;
    uint64_t tat = 0;

    for (int i = 0; i < 10; i++)
        gh_gcra_step(&tat, T0, &p, &r);
    gh_gcra_step(&tat, T0 + 350 * MS, &p, &r); /* 3.5 refilled, takes one */
    assert_true(r.allowed);
    assert_int_equal(r.remaining, 2);
    assert_int_equal(r.reset_ns, 750 * MS);

    gh_gcra_step(&tat, T0 + 1000 * SEC, &p, &r);
    assert_true(r.allowed);
    assert_int_equal(r.remaining, 9);
    assert_int_equal(r.reset_ns, 100 * MS);
}

struct rate_case {
    uint64_t count, period;
    uint32_t burst;
};

/* Per minute, hour and day: the burst at once, then the next exactly one
 * emission later, and about count more over one more period. */
static void test_long_periods(void **state)
{
    static const struct rate_case cases[] = {
        {60, MIN, 5}, {100, MIN, 1}, {1000, HOUR, 50}, {1, DAY, 1}, {1000, DAY, 10}, {7, DAY, 3},
    };

    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        struct gh_gcra_params p = params(cases[c].count, cases[c].period, cases[c].burst);
        struct gh_gcra_result r;
        uint64_t tat = 0, e = cases[c].period / cases[c].count;
        uint64_t n = 0;

        for (uint32_t i = 0; i < cases[c].burst; i++) {
            gh_gcra_step(&tat, T0, &p, &r);
            assert_true(r.allowed);
        }
        gh_gcra_step(&tat, T0, &p, &r);
        assert_false(r.allowed);
        assert_int_equal(r.retry_after_ns, e);
        assert_int_equal(r.reset_ns, cases[c].burst * e);

        /* One request per emission for one more period: all allowed. */
        for (uint64_t t = T0 + e; t <= T0 + cases[c].period; t += e) {
            gh_gcra_step(&tat, t, &p, &r);
            assert_true(r.allowed);
            n++;
            gh_gcra_step(&tat, t, &p, &r);
            assert_false(r.allowed);
        }
        assert_int_equal(n, cases[c].count);
    }
}

/* The finest rate (1e9/s) and a tat near the end of the range: no wrap. */
static void test_no_overflow(void **state)
{
    struct gh_gcra_params p = params(1000000000, SEC, 1);
    struct gh_gcra_result r;
    uint64_t tat = 0, now = T0;

    gh_gcra_step(&tat, now, &p, &r);
    assert_true(r.allowed);
    gh_gcra_step(&tat, now, &p, &r);
    assert_false(r.allowed);
    assert_int_equal(r.retry_after_ns, 1);
    gh_gcra_step(&tat, now + 1, &p, &r);
    assert_true(r.allowed);

    /* The largest window allowed, at a clock reading of 2^63 - 1. */
    assert_int_equal(gh_gcra_params_init(&p, 1, GH_GCRA_MAX_WINDOW_NS / 2, 1), GH_OK);
    now = (UINT64_C(1) << 63) - 1;
    tat = 0;
    gh_gcra_step(&tat, now, &p, &r);
    assert_true(r.allowed);
    assert_true(tat > now);
    assert_int_equal(r.reset_ns, p.emission_ns);
    gh_gcra_step(&tat, now, &p, &r);
    assert_false(r.allowed);
    assert_int_equal(r.retry_after_ns, p.emission_ns);
}

/* A now older than the one that set tat (threads race to the table) still
 * decides sensibly: denied, remaining 0, nothing wraps. */
static void test_now_behind_tat(void **state)
{
    struct gh_gcra_params p = params(10, SEC, 2);
    struct gh_gcra_result r;
    uint64_t tat = 0;

    gh_gcra_step(&tat, T0 + SEC, &p, &r);
    gh_gcra_step(&tat, T0 + SEC, &p, &r);
    assert_true(r.allowed);
    gh_gcra_step(&tat, T0, &p, &r);
    assert_false(r.allowed);
    assert_int_equal(r.remaining, 0);
    assert_int_equal(r.retry_after_ns, SEC + 100 * MS);
    assert_int_equal(gh_gcra_remaining(tat, T0, &p), 0);
}

/* Any tat <= now decides exactly like a fresh key (tat 0): the same result
 * and the same new tat. */
static void test_expired_equals_absent(void **state)
{
    static const struct rate_case cases[] = {{10, SEC, 10}, {1, MIN, 1}, {5, HOUR, 3}};

    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        struct gh_gcra_params p = params(cases[c].count, cases[c].period, cases[c].burst);
        const uint64_t olds[] = {1, T0 / 2, T0 - 1, T0};

        for (size_t i = 0; i < sizeof(olds) / sizeof(olds[0]); i++) {
            uint64_t fresh = 0, old = olds[i];
            for (uint32_t n = 0; n <= cases[c].burst; n++) {
                struct gh_gcra_result a, b;
                gh_gcra_step(&fresh, T0, &p, &a);
                gh_gcra_step(&old, T0, &p, &b);
                assert_int_equal(a.allowed, b.allowed);
                assert_int_equal(a.remaining, b.remaining);
                assert_int_equal(a.retry_after_ns, b.retry_after_ns);
                assert_int_equal(a.reset_ns, b.reset_ns);
                assert_int_equal(fresh, old);
            }
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_params_validation), cmocka_unit_test(test_burst_then_rate),
        cmocka_unit_test(test_sustained_rate),    cmocka_unit_test(test_refill),
        cmocka_unit_test(test_long_periods),      cmocka_unit_test(test_no_overflow),
        cmocka_unit_test(test_now_behind_tat),    cmocka_unit_test(test_expired_equals_absent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
