/* Tests of src/limits/policy.h's parts that take data: tenant overrides
 * (valid combinations and refusals whose message names the field), the
 * rate syntax they and the config share (gh_config_parse_rate), and a rule's
 * GCRA parameters with this node's 1/nodes share. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "limits/policy.h"

#define MS  UINT64_C(1000000)
#define SEC UINT64_C(1000000000)

/* ---- Tenant overrides: valid ------------------------------------------------ */

static void parse_ok(const char *json, struct gh_tenant_overrides *o)
{
    char why[256] = "";

    if (gh_tenant_overrides_parse(json, o, why, sizeof(why)) != GH_OK)
        fail_msg("%s: refused: %s", json ? json : "(null)", why);
}

static void test_overrides_empty(void **state)
{
    struct gh_tenant_overrides o;
    const char *none[] = {NULL, "", "{}", " { } "};

    for (size_t i = 0; i < sizeof(none) / sizeof(none[0]); i++) {
        memset(&o, 0xa5, sizeof(o));
        parse_ok(none[i], &o);
        assert_false(o.has_concurrency);
        assert_int_equal(o.concurrency, 0);
        assert_int_equal(o.nrules, 0);
        for (int m = 0; m < GH_QUOTA_NMETRICS; m++)
            for (int p = 0; p < GH_QUOTA_NPERIODS; p++) {
                assert_int_equal(o.quota_set[m][p], 0);
                assert_int_equal(o.quotas.limit[m][p], 0);
            }
    }
}

static void test_overrides_valid(void **state)
{
    struct gh_tenant_overrides o;

    parse_ok("{\"concurrency\": 5}", &o);
    assert_true(o.has_concurrency);
    assert_int_equal(o.concurrency, 5);

    /* 0 lifts the limit, and is still "set". */
    parse_ok("{\"concurrency\": 0}", &o);
    assert_true(o.has_concurrency);
    assert_int_equal(o.concurrency, 0);
    parse_ok("{\"concurrency\": 4294967295}", &o);
    assert_int_equal(o.concurrency, UINT32_MAX);

    parse_ok("{\"quotas\": {\"requests_per_day\": 100, \"response_bytes_per_month\": 0, "
             "\"request_bytes_per_day\": 9223372036854775807}}",
             &o);
    assert_false(o.has_concurrency);
    assert_int_equal(o.quota_set[GH_QUOTA_REQUESTS][GH_QUOTA_DAY], 1);
    assert_int_equal(o.quotas.limit[GH_QUOTA_REQUESTS][GH_QUOTA_DAY], 100);
    assert_int_equal(o.quota_set[GH_QUOTA_RESPONSE_BYTES][GH_QUOTA_MONTH], 1);
    assert_int_equal(o.quotas.limit[GH_QUOTA_RESPONSE_BYTES][GH_QUOTA_MONTH], 0);
    assert_int_equal(o.quota_set[GH_QUOTA_REQUEST_BYTES][GH_QUOTA_DAY], 1);
    assert_int_equal(o.quotas.limit[GH_QUOTA_REQUEST_BYTES][GH_QUOTA_DAY], INT64_MAX);
    assert_int_equal(o.quota_set[GH_QUOTA_REQUESTS][GH_QUOTA_MONTH], 0);
    assert_int_equal(o.quota_set[GH_QUOTA_REQUEST_BYTES][GH_QUOTA_MONTH], 0);
    assert_int_equal(o.quota_set[GH_QUOTA_RESPONSE_BYTES][GH_QUOTA_DAY], 0);

    /* Every quota name. */
    parse_ok("{\"quotas\": {\"requests_per_day\": 1, \"requests_per_month\": 2, "
             "\"request_bytes_per_day\": 3, \"request_bytes_per_month\": 4, "
             "\"response_bytes_per_day\": 5, \"response_bytes_per_month\": 6}}",
             &o);
    for (int m = 0; m < GH_QUOTA_NMETRICS; m++)
        for (int p = 0; p < GH_QUOTA_NPERIODS; p++) {
            assert_int_equal(o.quota_set[m][p], 1);
            assert_int_equal(o.quotas.limit[m][p], (uint64_t)(m * 2 + p + 1));
        }

    /* Rate and burst; burst defaults to the rate's count. */
    parse_ok("{\"rate_limits\": {\"gold.0\": {\"rate\": \"50/s\", \"burst\": 100}, "
             "\"route:orders\": {\"rate\": \"600/m\"}, "
             "\"slow\": {\"burst\": 3, \"rate\": \"1/2h\"}}}",
             &o);
    assert_int_equal(o.nrules, 3);
    assert_string_equal(o.rules[0].rule, "gold.0");
    assert_int_equal(o.rules[0].rate.count, 50);
    assert_int_equal(o.rules[0].rate.period_ms, 1000);
    assert_int_equal(o.rules[0].burst, 100);
    assert_string_equal(o.rules[1].rule, "route:orders");
    assert_int_equal(o.rules[1].rate.count, 600);
    assert_int_equal(o.rules[1].rate.period_ms, 60000);
    assert_int_equal(o.rules[1].burst, 600);
    assert_string_equal(o.rules[2].rule, "slow");
    assert_int_equal(o.rules[2].rate.count, 1);
    assert_int_equal(o.rules[2].rate.period_ms, 2 * 3600000);
    assert_int_equal(o.rules[2].burst, 3);

    /* All together. */
    parse_ok("{\"concurrency\": 3, \"quotas\": {\"requests_per_month\": 1000}, "
             "\"rate_limits\": {\"r\": {\"rate\": \"5000/h\", \"burst\": 1}}}",
             &o);
    assert_true(o.has_concurrency);
    assert_int_equal(o.concurrency, 3);
    assert_int_equal(o.quotas.limit[GH_QUOTA_REQUESTS][GH_QUOTA_MONTH], 1000);
    assert_int_equal(o.nrules, 1);
    assert_int_equal(o.rules[0].rate.count, 5000);
    assert_int_equal(o.rules[0].burst, 1);

    /* Empty sections. */
    parse_ok("{\"quotas\": {}, \"rate_limits\": {}}", &o);
    assert_int_equal(o.nrules, 0);
}

/* The limits: 16 rule overrides and a 95-byte rule name are fine. */
static void test_overrides_at_limits(void **state)
{
    struct gh_tenant_overrides o;
    char json[4096], name[96];
    size_t n;

    n = (size_t)snprintf(json, sizeof(json), "{\"rate_limits\": {");
    for (int i = 0; i < GH_LIMITS_MAX_RULE_OVERRIDES; i++)
        n += (size_t)snprintf(json + n, sizeof(json) - n, "%s\"r%d\": {\"rate\": \"%d/s\"}",
                              i ? ", " : "", i, i + 1);
    snprintf(json + n, sizeof(json) - n, "}}");
    parse_ok(json, &o);
    assert_int_equal(o.nrules, 16);
    assert_string_equal(o.rules[15].rule, "r15");
    assert_int_equal(o.rules[15].rate.count, 16);
    assert_int_equal(o.rules[15].burst, 16);

    memset(name, 'n', 95);
    name[95] = '\0';
    snprintf(json, sizeof(json), "{\"rate_limits\": {\"%s\": {\"rate\": \"1/s\"}}}", name);
    parse_ok(json, &o);
    assert_int_equal(o.nrules, 1);
    assert_string_equal(o.rules[0].rule, name);
}

/* ---- Tenant overrides: refused ---------------------------------------------- */

static void parse_bad(const char *json, const char *mention)
{
    struct gh_tenant_overrides o;
    char why[256];

    memset(why, 0, sizeof(why));
    if (gh_tenant_overrides_parse(json, &o, why, sizeof(why)) != GH_ERROR)
        fail_msg("accepted: %s", json);
    if (strstr(why, mention) == NULL)
        fail_msg("%s: message \"%s\" does not mention \"%s\"", json, why, mention);
}

static void test_overrides_invalid(void **state)
{
    static const struct {
        const char *json, *mention;
    } cases[] = {
        /* Not an object (jansson refuses scalars at the top: invalid JSON). */
        {"[]", "overrides must be a JSON object"},
        {"[{\"concurrency\": 1}]", "overrides must be a JSON object"},
        {"42", "overrides"},
        {"\"x\"", "overrides"},
        {"null", "overrides"},
        /* Invalid JSON. */
        {"{", "invalid JSON"},
        {"{\"concurrency\": 1,}", "invalid JSON"},
        {"{concurrency: 1}", "invalid JSON"},
        {"{\"concurrency\": 1} x", "invalid JSON"},
        /* Duplicate keys are refused by the JSON reader (JSON_REJECT_DUPLICATES),
         * whose message is not passed on: only "invalid JSON" is said. */
        {"{\"concurrency\": 1, \"concurrency\": 2}", "invalid JSON"},
        {"{\"quotas\": {\"requests_per_day\": 1, \"requests_per_day\": 2}}", "invalid JSON"},
        /* Unknown keys. */
        {"{\"concurency\": 1}", "concurency"},
        {"{\"plan\": \"gold\"}", "plan"},
        /* concurrency. */
        {"{\"concurrency\": -1}", "concurrency"},
        {"{\"concurrency\": 1.5}", "concurrency"},
        {"{\"concurrency\": 1.0}", "concurrency"},
        {"{\"concurrency\": \"1\"}", "concurrency"},
        {"{\"concurrency\": true}", "concurrency"},
        {"{\"concurrency\": null}", "concurrency"},
        {"{\"concurrency\": 4294967296}", "concurrency"},
        /* quotas. */
        {"{\"quotas\": []}", "quotas must be an object"},
        {"{\"quotas\": 5}", "quotas must be an object"},
        {"{\"quotas\": {\"requests_per_week\": 1}}", "requests_per_week"},
        {"{\"quotas\": {\"requests\": 1}}", "requests"},
        {"{\"quotas\": {\"requests_per_day\": -5}}", "quotas.requests_per_day"},
        {"{\"quotas\": {\"requests_per_day\": 2.5}}", "quotas.requests_per_day"},
        {"{\"quotas\": {\"response_bytes_per_month\": \"1GiB\"}}",
         "quotas.response_bytes_per_month"},
        {"{\"quotas\": {\"requests_per_month\": {}}}", "quotas.requests_per_month"},
        /* rate_limits. */
        {"{\"rate_limits\": []}", "rate_limits must be an object"},
        {"{\"rate_limits\": {\"r\": \"50/s\"}}", "rate_limits.r"},
        {"{\"rate_limits\": {\"r\": null}}", "rate_limits.r"},
        {"{\"rate_limits\": {\"r\": {}}}", "rate_limits.r"},
        {"{\"rate_limits\": {\"r\": {\"burst\": 5}}}", "rate_limits.r"},
        {"{\"rate_limits\": {\"r\": {\"rate\": 50}}}", "rate_limits.r"},
        {"{\"rate_limits\": {\"r\": {\"rate\": \"fast\"}}}", "rate_limits.r.rate"},
        {"{\"rate_limits\": {\"r\": {\"rate\": \"0/s\"}}}", "rate_limits.r.rate"},
        {"{\"rate_limits\": {\"r\": {\"rate\": \"10/400d\"}}}", "rate_limits.r.rate"},
        {"{\"rate_limits\": {\"r\": {\"rate\": \"2000000000/s\"}}}", "rate_limits.r.rate"},
        {"{\"rate_limits\": {\"r\": {\"rate\": \"50/s\", \"burst\": 0}}}", "rate_limits.r.burst"},
        {"{\"rate_limits\": {\"r\": {\"rate\": \"50/s\", \"burst\": -1}}}", "rate_limits.r.burst"},
        {"{\"rate_limits\": {\"r\": {\"rate\": \"50/s\", \"burst\": 1.5}}}", "rate_limits.r.burst"},
        {"{\"rate_limits\": {\"r\": {\"rate\": \"50/s\", \"burst\": \"9\"}}}",
         "rate_limits.r.burst"},
        {"{\"rate_limits\": {\"r\": {\"rate\": \"50/s\", \"burst\": 4294967296}}}",
         "rate_limits.r.burst"},
        /* A rule object with an extra field. */
        {"{\"rate_limits\": {\"r\": {\"rate\": \"50/s\", \"burst\": 1, \"per\": 2}}}",
         "rate_limits.r"},
        {"{\"rate_limits\": {\"r\": {\"rate\": \"50/s\", \"per\": 2}}}", "rate_limits.r"},
        /* An empty rule name. */
        {"{\"rate_limits\": {\"\": {\"rate\": \"50/s\"}}}", "rule name"},
        /* The first bad section stops the parse, whatever follows. */
        {"{\"concurrency\": 2, \"quotas\": {\"x\": 1}, \"rate_limits\": {}}", "unknown quota"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        parse_bad(cases[i].json, cases[i].mention);
}

static void test_overrides_too_many_and_too_long(void **state)
{
    char json[4096], name[100];
    size_t n;

    /* 17 rule overrides. */
    n = (size_t)snprintf(json, sizeof(json), "{\"rate_limits\": {");
    for (int i = 0; i <= GH_LIMITS_MAX_RULE_OVERRIDES; i++)
        n += (size_t)snprintf(json + n, sizeof(json) - n, "%s\"r%d\": {\"rate\": \"1/s\"}",
                              i ? ", " : "", i);
    snprintf(json + n, sizeof(json) - n, "}}");
    parse_bad(json, "at most 16 rate_limits");

    /* Rule names of 96 bytes and more. */
    for (size_t len = 96; len < sizeof(name); len++) {
        memset(name, 'n', len);
        name[len] = '\0';
        snprintf(json, sizeof(json), "{\"rate_limits\": {\"%s\": {\"rate\": \"1/s\"}}}", name);
        parse_bad(json, "rate_limits: a rule name");
    }
    {
        char big[1100];
        memset(big, 'x', 1000);
        big[1000] = '\0';
        snprintf(json, sizeof(json), "{\"rate_limits\": {\"%s\": {\"rate\": \"1/s\"}}}", big);
        parse_bad(json, "rate_limits: a rule name");
        /* An unknown key is quoted, but cut short. */
        snprintf(json, sizeof(json), "{\"%s\": 1}", big);
        parse_bad(json, "unknown override \"xxxx");
    }
}

/* The message always fits <why>, whatever its size. */
static void test_overrides_small_why(void **state)
{
    struct gh_tenant_overrides o;
    char why[8];

    memset(why, 'z', sizeof(why));
    assert_int_equal(gh_tenant_overrides_parse("{\"concurency\": 1}", &o, why, sizeof(why)),
                     GH_ERROR);
    assert_int_equal(why[7], '\0');
    assert_int_equal(strlen(why), 7);
    assert_int_equal(gh_tenant_overrides_parse("[]", &o, why, 1), GH_ERROR);
    assert_int_equal(why[0], '\0');
}

/* ---- Rates ------------------------------------------------------------------ */

static void test_parse_rate(void **state)
{
    static const struct {
        const char *s;
        uint64_t count, period_ms;
    } good[] = {
        {"10/s", 10, 1000},
        {"600/m", 600, 60000},
        {"5000/h", 5000, 3600000},
        {"1/d", 1, 86400000},
        {"100/2s", 100, 2000},
        {"3/sec", 3, 1000},
        {"7/minute", 7, 60000},
        {"5/second", 5, 1000},
        {"2/min", 2, 60000},
        {"9/hour", 9, 3600000},
        {"4/day", 4, 86400000},
        {"1/500ms", 1, 500},
        {"1/ms", 1, 1},
        {"1/366d", 1, 366 * UINT64_C(86400000)},
        {"100/010s", 100, 10000},
        {"18446744073709551615/s", UINT64_MAX, 1000},
    };
    static const char *const bad[] = {
        "0/s",
        "/s",
        "10",
        "10/",
        "10/x",
        "10/0s",
        "-1/s",
        "10/400d",
        "10/367d",
        "18446744073709551616/s",
        "10/99999999999999999999s",
        "10/18446744073709551615d",
        "",
        "/",
        " 10/s",
        "10/s ",
        "10 /s",
        "10/ s",
        "+10/s",
        "10/-1s",
        "10/s/s",
        "10/ss",
        "10/secs",
        "1e3/s",
        "10.5/s",
        "10/1.5s",
        "0x10/s",
    };
    struct gh_config_rate r;

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        memset(&r, 0, sizeof(r));
        if (gh_config_parse_rate(good[i].s, &r) != GH_OK) fail_msg("refused: \"%s\"", good[i].s);
        if (r.count != good[i].count || r.period_ms != good[i].period_ms)
            fail_msg("\"%s\": %llu per %llu ms", good[i].s, (unsigned long long)r.count,
                     (unsigned long long)r.period_ms);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (gh_config_parse_rate(bad[i], &r) != GH_ERROR) fail_msg("accepted: \"%s\"", bad[i]);
    assert_int_equal(gh_config_parse_rate(NULL, &r), GH_ERROR);
}

/* ---- Rule parameters -------------------------------------------------------- */

static void test_rule_params(void **state)
{
    static const struct {
        uint64_t count, period_ms;
        uint32_t burst, nodes;
        uint64_t full_emission_ns, share_emission_ns;
        uint32_t share_burst, window_s;
    } cases[] = {
        /* 100/s burst 50 on 2 nodes: each node 50/s burst 25. Window: a full
         * burst refills in 0.5 s, rounded up to 1 s. */
        {100, 1000, 50, 2, 10 * MS, 20 * MS, 25, 1},
        /* One node, or none said: the share is the limit. */
        {100, 1000, 50, 1, 10 * MS, 10 * MS, 50, 1},
        {100, 1000, 50, 0, 10 * MS, 10 * MS, 50, 1},
        /* More nodes than the count (and the burst): the rate is still
         * shared (1000 nodes at one request every 10 s pass 100/s), the
         * burst never below one. Before, each node kept one request per
         * period: 1000 times the limit, 3/s on two nodes was 2/s. */
        {100, 1000, 50, 1000, 10 * MS, 10 * SEC, 1, 1},
        {3, 1000, 3, 2, 333333333, 666666666, 1, 1},
        {1, 1000, 1, 3, 1000 * MS, 3000 * MS, 1, 1},
        /* Windows: 1/min burst 5 refills in 5 min; 100/2s burst 100 in 2 s. */
        {1, 60000, 5, 1, 60 * SEC, 60 * SEC, 5, 300},
        {100, 2000, 100, 4, 20 * MS, 80 * MS, 25, 2},
        {10, 1000, 10, 3, 100 * MS, 300 * MS, 3, 1},
        {5000, 3600000, 5000, 2, 720 * MS, 1440 * MS, 2500, 3600},
        {1, 86400000, 1, 7, 86400 * SEC, 7 * 86400 * SEC, 1, 86400},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct gh_limit_rule rl;

        memset(&rl, 0, sizeof(rl));
        if (gh_limits_rule_params(&rl, cases[i].count, cases[i].period_ms, cases[i].burst,
                                  cases[i].nodes) != GH_OK)
            fail_msg("case %zu refused", i);
        assert_int_equal(rl.full.emission_ns, cases[i].full_emission_ns);
        assert_int_equal(rl.full.burst, cases[i].burst);
        assert_int_equal(rl.full.tau_ns, cases[i].full_emission_ns * cases[i].burst);
        assert_int_equal(rl.share.emission_ns, cases[i].share_emission_ns);
        assert_int_equal(rl.share.burst, cases[i].share_burst);
        assert_int_equal(rl.share.tau_ns, cases[i].share_emission_ns * cases[i].share_burst);
        if (rl.window_s != cases[i].window_s)
            fail_msg("case %zu: window %u s, expected %u", i, rl.window_s, cases[i].window_s);
    }
}

static void test_rule_params_refused(void **state)
{
    struct gh_limit_rule rl;

    memset(&rl, 0, sizeof(rl));
    /* Finer than one request per nanosecond. */
    assert_int_equal(gh_limits_rule_params(&rl, 2000000000, 1000, 1, 1), GH_ERROR);
    /* Zeros. */
    assert_int_equal(gh_limits_rule_params(&rl, 0, 1000, 1, 1), GH_ERROR);
    assert_int_equal(gh_limits_rule_params(&rl, 1, 0, 1, 1), GH_ERROR);
    assert_int_equal(gh_limits_rule_params(&rl, 1, 1000, 0, 1), GH_ERROR);
    /* A period whose nanoseconds overflow. */
    assert_int_equal(gh_limits_rule_params(&rl, 1, UINT64_MAX / 1000, 1, 1), GH_ERROR);
    /* A burst window beyond the GCRA's bound. */
    assert_int_equal(gh_limits_rule_params(&rl, 1, 366 * UINT64_C(86400000), UINT32_MAX, 1),
                     GH_ERROR);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_overrides_empty),
        cmocka_unit_test(test_overrides_valid),
        cmocka_unit_test(test_overrides_at_limits),
        cmocka_unit_test(test_overrides_invalid),
        cmocka_unit_test(test_overrides_too_many_and_too_long),
        cmocka_unit_test(test_overrides_small_why),
        cmocka_unit_test(test_parse_rate),
        cmocka_unit_test(test_rule_params),
        cmocka_unit_test(test_rule_params_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
