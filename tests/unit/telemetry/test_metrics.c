/* Tests of src/telemetry/metrics*.c: the exposition of a small registry in
 * the text format and in OpenMetrics (exact bodies), label and HELP
 * escaping, seconds formatting, histogram bucket edges (le is inclusive),
 * counters summed across workers, the name registry across reloads (a name
 * keeps its slot, a full registry folds into "other"), and the top-N tenant
 * selection with its sticky rule. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "telemetry/metrics.h"
#include "telemetry/metrics_expo.h"
#include "telemetry/metrics_scrape.h"
#include "telemetry/metrics_tenants.h"

static char *body(struct gh_expo *e)
{
    char *s = malloc(e->len + 1);
    memcpy(s, e->data, e->len);
    s[e->len] = '\0';
    return s;
}

/* A small registry written by hand: one counter with labels, one gauge,
 * one info, one histogram. */
static void small_registry(struct gh_expo *e)
{
    struct gh_label l[2] = {{"route", GH_STR_LIT("api")}, {"code", GH_STR_LIT("2xx")}};
    uint64_t b[GH_METRICS_NBUCKETS] = {0};

    gh_expo_family(e, "x_requests", GH_EXPO_COUNTER, "Requests.");
    gh_expo_counter(e, l, 2, 42);
    gh_expo_family(e, "x_open", GH_EXPO_GAUGE, "Open now.");
    gh_expo_gauge_u64(e, NULL, 0, 7);
    gh_expo_family(e, "x_build", GH_EXPO_INFO, "Build.");
    l[0] = (struct gh_label){"version", GH_STR_LIT("1.2")};
    gh_expo_info(e, l, 1);
    gh_expo_family(e, "x_seconds", GH_EXPO_HISTOGRAM, "Time.");
    b[0] = 1;  /* <= 100 us */
    b[12] = 2; /* <= 1 s */
    b[16] = 1; /* +Inf */
    gh_expo_histogram(e, NULL, 0, b, 12500000000ull);
    gh_expo_finish(e);
}

static const char hist_text[] = "x_seconds_bucket{le=\"0.0001\"} 1\n"
                                "x_seconds_bucket{le=\"0.00025\"} 1\n"
                                "x_seconds_bucket{le=\"0.0005\"} 1\n"
                                "x_seconds_bucket{le=\"0.001\"} 1\n"
                                "x_seconds_bucket{le=\"0.0025\"} 1\n"
                                "x_seconds_bucket{le=\"0.005\"} 1\n"
                                "x_seconds_bucket{le=\"0.01\"} 1\n"
                                "x_seconds_bucket{le=\"0.025\"} 1\n"
                                "x_seconds_bucket{le=\"0.05\"} 1\n"
                                "x_seconds_bucket{le=\"0.1\"} 1\n"
                                "x_seconds_bucket{le=\"0.25\"} 1\n"
                                "x_seconds_bucket{le=\"0.5\"} 1\n"
                                "x_seconds_bucket{le=\"%s\"} 3\n"
                                "x_seconds_bucket{le=\"2.5\"} 3\n"
                                "x_seconds_bucket{le=\"%s\"} 3\n"
                                "x_seconds_bucket{le=\"%s\"} 3\n"
                                "x_seconds_bucket{le=\"+Inf\"} 4\n"
                                "x_seconds_sum 12.5\n"
                                "x_seconds_count 4\n";

static void test_text_format(void **state)
{
    struct gh_expo e;
    char expect[4096], hist[2048];
    char *got;

    (void)state;
    snprintf(hist, sizeof(hist), hist_text, "1", "5", "10");
    snprintf(expect, sizeof(expect),
             "# HELP x_requests_total Requests.\n"
             "# TYPE x_requests_total counter\n"
             "x_requests_total{route=\"api\",code=\"2xx\"} 42\n"
             "# HELP x_open Open now.\n"
             "# TYPE x_open gauge\n"
             "x_open 7\n"
             "# HELP x_build_info Build.\n"
             "# TYPE x_build_info gauge\n"
             "x_build_info{version=\"1.2\"} 1\n"
             "# HELP x_seconds Time.\n"
             "# TYPE x_seconds histogram\n"
             "%s",
             hist);
    gh_expo_init(&e, false);
    small_registry(&e);
    assert_false(e.failed);
    got = body(&e);
    assert_string_equal(got, expect);
    free(got);
    gh_expo_release(&e);
}

static void test_openmetrics_format(void **state)
{
    struct gh_expo e;
    char expect[4096], hist[2048];
    char *got;

    (void)state;
    snprintf(hist, sizeof(hist), hist_text, "1.0", "5.0", "10.0");
    snprintf(expect, sizeof(expect),
             "# HELP x_requests Requests.\n"
             "# TYPE x_requests counter\n"
             "x_requests_total{route=\"api\",code=\"2xx\"} 42\n"
             "# HELP x_open Open now.\n"
             "# TYPE x_open gauge\n"
             "x_open 7\n"
             "# HELP x_build Build.\n"
             "# TYPE x_build info\n"
             "x_build_info{version=\"1.2\"} 1\n"
             "# HELP x_seconds Time.\n"
             "# TYPE x_seconds histogram\n"
             "%s"
             "# EOF\n",
             hist);
    gh_expo_init(&e, true);
    small_registry(&e);
    got = body(&e);
    assert_string_equal(got, expect);
    free(got);
    gh_expo_release(&e);
}

static void test_escaping(void **state)
{
    static const struct {
        const char *value;
        const char *written;
    } cases[] = {
        {"plain", "plain"},
        {"a\\b", "a\\\\b"},
        {"say \"hi\"", "say \\\"hi\\\""},
        {"two\nlines", "two\\nlines"},
        {"\\\"\n", "\\\\\\\"\\n"},
        {"", ""},
        {"ünï", "ünï"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct gh_expo e;
        struct gh_label l = {"tenant", gh_str_cstr(cases[i].value)};
        char expect[256];
        char *got;

        gh_expo_init(&e, false);
        gh_expo_family(&e, "t", GH_EXPO_GAUGE, "h");
        e.len = 0; /* only the sample */
        gh_expo_gauge_u64(&e, &l, 1, 1);
        snprintf(expect, sizeof(expect), "t{tenant=\"%s\"} 1\n", cases[i].written);
        got = body(&e);
        assert_string_equal(got, expect);
        free(got);
        gh_expo_release(&e);
    }
}

static void test_help_escaping(void **state)
{
    struct gh_expo e;
    char *got;

    (void)state;
    /* Text format: \\ and \n only; OpenMetrics: also the double quote. */
    gh_expo_init(&e, false);
    gh_expo_family(&e, "h", GH_EXPO_GAUGE, "a \"b\" \\ c\nd");
    got = body(&e);
    assert_string_equal(got, "# HELP h a \"b\" \\\\ c\\nd\n# TYPE h gauge\n");
    free(got);
    gh_expo_release(&e);
    gh_expo_init(&e, true);
    gh_expo_family(&e, "h", GH_EXPO_GAUGE, "a \"b\" \\ c\nd");
    got = body(&e);
    assert_string_equal(got, "# HELP h a \\\"b\\\" \\\\ c\\nd\n# TYPE h gauge\n");
    free(got);
    gh_expo_release(&e);
}

static void test_seconds(void **state)
{
    static const struct {
        uint64_t ns;
        const char *s;
    } cases[] = {
        {0, "0"},
        {1, "0.000000001"},
        {100000, "0.0001"},
        {1500000000ull, "1.5"},
        {2000000000ull, "2"},
        {123456789012ull, "123.456789012"},
        {UINT64_MAX, "18446744073.709551615"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct gh_expo e;
        char *got;
        gh_expo_init(&e, false);
        gh_expo_seconds(&e, cases[i].ns);
        got = body(&e);
        assert_string_equal(got, cases[i].s);
        free(got);
        gh_expo_release(&e);
    }
}

static void test_bucket_edges(void **state)
{
    (void)state;
    /* Exactly on a bound goes in that bucket (le is inclusive); one
     * nanosecond more goes in the next. */
    for (unsigned i = 0; i < GH_METRICS_NBUCKETS - 1; i++) {
        assert_int_equal(gh_metrics_bucket(gh_metrics_bucket_ns[i]), i);
        assert_int_equal(gh_metrics_bucket(gh_metrics_bucket_ns[i] + 1), i + 1);
        assert_int_equal(gh_metrics_bucket(gh_metrics_bucket_ns[i] - 1), i);
    }
    assert_int_equal(gh_metrics_bucket(0), 0);
    assert_int_equal(gh_metrics_bucket(100000), 0);          /* 0.0001 s */
    assert_int_equal(gh_metrics_bucket(1000000000), 12);     /* 1 s */
    assert_int_equal(gh_metrics_bucket(10000000000ull), 15); /* 10 s */
    assert_int_equal(gh_metrics_bucket(10000000001ull), 16); /* +Inf */
    assert_int_equal(gh_metrics_bucket(UINT64_MAX), 16);
}

/* ---- Workers, registry, tenants ------------------------------------------ */

static char *scrape_workers(struct gh_metrics *svc, struct gh_metrics_worker **ws, size_t n,
                            const struct gh_mtenant_view *tv)
{
    struct gh_expo e;
    char *got;
    gh_expo_init(&e, false);
    gh_metrics_write_workers(&e, svc, ws, n, tv);
    got = body(&e);
    gh_expo_release(&e);
    return got;
}

static void test_sum_across_workers(void **state)
{
    struct gh_metrics *svc = gh_metrics_new();
    struct gh_metrics_worker *ws[3] = {gh_metrics_worker_new(), NULL, gh_metrics_worker_new()};
    int api = gh_metrics_names_slot(&svc->routes, "api");
    char *got;

    (void)state;
    assert_int_equal(api, 2); /* after "none" and "other" */
    gh_mc_add(&ws[0]->routes[api].requests[GH_MM_GET][GH_MC_2XX], 3);
    gh_mc_add(&ws[2]->routes[api].requests[GH_MM_GET][GH_MC_2XX], 4);
    gh_mc_add(&ws[2]->routes[GH_METRICS_ROUTE_NONE].requests[GH_MM_OTHER][GH_MC_4XX], 1);
    gh_mhist_observe(&ws[0]->routes[api].duration, 1000000000ull);
    gh_mhist_observe(&ws[2]->routes[api].duration, 500000000ull);
    gh_mc_add(&ws[0]->req_started, 5);
    gh_mc_add(&ws[0]->req_ended, 4);
    gh_mc_add(&ws[2]->req_started, 2);
    gh_mc_add(&ws[2]->req_ended, 2);
    gh_mc_add(&ws[0]->tls_failed, 2);

    got = scrape_workers(svc, ws, 3, NULL);
    assert_non_null(strstr(got, "gatehouse_http_requests_total{route=\"api\",method=\"GET\","
                                "code=\"2xx\"} 7\n"));
    assert_non_null(strstr(got, "gatehouse_http_requests_total{route=\"none\",method=\"OTHER\","
                                "code=\"4xx\"} 1\n"));
    assert_non_null(strstr(
        got, "gatehouse_http_request_duration_seconds_bucket{route=\"api\",le=\"0.5\"} 1\n"));
    assert_non_null(
        strstr(got, "gatehouse_http_request_duration_seconds_bucket{route=\"api\",le=\"1\"} 2\n"));
    assert_non_null(
        strstr(got, "gatehouse_http_request_duration_seconds_sum{route=\"api\"} 1.5\n"));
    assert_non_null(strstr(got, "gatehouse_http_requests_in_flight 1\n"));
    assert_non_null(strstr(got, "gatehouse_tls_handshakes_total{result=\"failure\"} 2\n"));
    assert_non_null(strstr(got, "gatehouse_tls_handshakes_total{result=\"success\"} 0\n"));
    /* Nothing counted: no series (the unrouted route has no histogram). */
    assert_null(strstr(got, "{route=\"other\""));
    assert_null(strstr(got, "duration_seconds_count{route=\"none\"}"));
    free(got);
    gh_metrics_worker_free(ws[0]);
    gh_metrics_worker_free(ws[2]);
    gh_metrics_free(svc);
}

static void test_registry_across_reloads(void **state)
{
    struct gh_metrics *svc = gh_metrics_new();
    char name[32];
    int a, b, a2, b2, c;

    (void)state;
    /* Load 1: routes a, b. Load 2 (reload): b removed then back, c new,
     * order changed. Slots stay with their names. */
    a = gh_metrics_names_slot(&svc->routes, "a");
    b = gh_metrics_names_slot(&svc->routes, "b");
    c = gh_metrics_names_slot(&svc->routes, "c");
    b2 = gh_metrics_names_slot(&svc->routes, "b");
    a2 = gh_metrics_names_slot(&svc->routes, "a");
    assert_int_equal(a, a2);
    assert_int_equal(b, b2);
    assert_true(c != a && c != b);
    assert_string_equal(gh_metrics_names_get(&svc->routes, (uint32_t)b), "b");
    /* "none" and "other" are fixed. */
    assert_int_equal(gh_metrics_names_slot(&svc->routes, "none"), GH_METRICS_ROUTE_NONE);
    assert_int_equal(gh_metrics_names_slot(&svc->routes, "other"), GH_METRICS_ROUTE_OTHER);
    /* Full: new names fold into "other". */
    for (int i = 0; i < GH_METRICS_MAX_UPSTREAMS + 10; i++) {
        snprintf(name, sizeof(name), "up%d", i);
        int s = gh_metrics_names_slot(&svc->upstreams, name);
        if (i < GH_METRICS_MAX_UPSTREAMS - 1)
            assert_int_equal(s, i + 1);
        else
            assert_int_equal(s, GH_METRICS_SLOT_OTHER);
    }
    assert_int_equal(gh_metrics_names_count(&svc->upstreams), GH_METRICS_MAX_UPSTREAMS);
    assert_int_equal(gh_metrics_names_slot(&svc->upstreams, "up3"), 4);
    gh_metrics_free(svc);
}

static void count(struct gh_mtenants *t, const char *id, unsigned cls, int n)
{
    for (int i = 0; i < n; i++)
        gh_mtenants_count(t, id, strlen(id), cls);
}

static void test_top_tenants_sticky(void **state)
{
    struct gh_metrics_sticky sticky = {0};
    struct gh_mtenants *t[2] = {gh_mtenants_new(), gh_mtenants_new()};
    struct gh_mtenant_view v;
    char long_id[200];

    (void)state;
    count(t[0], "acme", GH_MC_2XX, 10);
    count(t[1], "acme", GH_MC_2XX, 5); /* 15 in all: busiest */
    count(t[0], "beta", GH_MC_2XX, 8);
    count(t[1], "beta", GH_MC_4XX, 4); /* 12 */
    count(t[0], "gamma", GH_MC_2XX, 3);
    count(t[1], "delta", GH_MC_5XX, 2);
    memset(long_id, 'x', sizeof(long_id) - 1);
    long_id[sizeof(long_id) - 1] = '\0';
    count(t[0], long_id, GH_MC_2XX, 1); /* too long: overflow, "other" */

    assert_int_equal(gh_mtenants_collect(t, 2, &sticky, 2, &v), GH_OK);
    assert_int_equal(v.nrows, 2);
    assert_string_equal(v.rows[0].id, "acme");
    assert_int_equal(v.rows[0].codes[GH_MC_2XX], 15);
    assert_string_equal(v.rows[1].id, "beta");
    assert_int_equal(v.rows[1].codes[GH_MC_2XX], 8);
    assert_int_equal(v.rows[1].codes[GH_MC_4XX], 4);
    assert_int_equal(v.other[GH_MC_2XX], 4); /* gamma 3 + the long id */
    assert_int_equal(v.other[GH_MC_5XX], 2); /* delta */
    free(v.rows);

    /* gamma becomes the busiest: the set is full, so acme and beta keep
     * their series and gamma stays in "other" (sticky rule). */
    count(t[1], "gamma", GH_MC_2XX, 100);
    assert_int_equal(gh_mtenants_collect(t, 2, &sticky, 2, &v), GH_OK);
    assert_int_equal(v.nrows, 2);
    assert_string_equal(v.rows[0].id, "acme");
    assert_string_equal(v.rows[1].id, "beta");
    assert_int_equal(v.other[GH_MC_2XX], 104);
    free(v.rows);

    /* top_tenants raised at a reload: one promotion, the busiest; "other"
     * drops by what moved, never otherwise. */
    assert_int_equal(gh_mtenants_collect(t, 2, &sticky, 3, &v), GH_OK);
    assert_int_equal(v.nrows, 3);
    assert_string_equal(v.rows[2].id, "gamma");
    assert_int_equal(v.rows[2].codes[GH_MC_2XX], 103);
    assert_int_equal(v.other[GH_MC_2XX], 1);
    free(v.rows);

    /* top_tenants lowered: nobody loses a series. */
    assert_int_equal(gh_mtenants_collect(t, 2, &sticky, 1, &v), GH_OK);
    assert_int_equal(v.nrows, 3);
    free(v.rows);

    /* The exposition: escaped tenant labels and the "other" series. */
    {
        struct gh_metrics *svc = gh_metrics_new();
        struct gh_mtenant_row rows[1] = {{"we\"ird", {0, 2, 0, 0, 0}}};
        struct gh_mtenant_view tv = {rows, 1, {0, 0, 0, 1, 0}};
        char *got = scrape_workers(svc, NULL, 0, &tv);
        assert_non_null(
            strstr(got, "gatehouse_tenant_requests_total{tenant=\"we\\\"ird\",code=\"2xx\"} 2\n"));
        assert_non_null(
            strstr(got, "gatehouse_tenant_requests_total{tenant=\"other\",code=\"4xx\"} 1\n"));
        free(got);
        gh_metrics_free(svc);
    }
    for (uint32_t i = 0; i < sticky.n; i++)
        free(sticky.ids[i]);
    free(sticky.ids);
    gh_mtenants_free(t[0]);
    gh_mtenants_free(t[1]);
}

static void test_tenant_table_full(void **state)
{
    struct gh_metrics_sticky sticky = {0};
    struct gh_mtenants *t = gh_mtenants_new();
    struct gh_mtenant_view v;
    char id[32];
    uint64_t all = 0;

    (void)state;
    /* More tenants than slots: none is lost, the extra ones are "other". */
    for (int i = 0; i < GH_MTENANTS_SLOTS + 500; i++) {
        snprintf(id, sizeof(id), "t%d", i);
        count(t, id, GH_MC_2XX, 1);
    }
    assert_int_equal(gh_mtenants_collect(&t, 1, &sticky, 5, &v), GH_OK);
    assert_int_equal(v.nrows, 5);
    for (size_t i = 0; i < v.nrows; i++)
        all += v.rows[i].codes[GH_MC_2XX];
    all += v.other[GH_MC_2XX];
    assert_int_equal(all, GH_MTENANTS_SLOTS + 500);
    free(v.rows);
    for (uint32_t i = 0; i < sticky.n; i++)
        free(sticky.ids[i]);
    free(sticky.ids);
    gh_mtenants_free(t);
}

static void test_auth_result_mapping(void **state)
{
    (void)state;
    assert_int_equal(gh_metrics_auth_result("missing_credentials"), GH_MAR_MISSING);
    assert_int_equal(gh_metrics_auth_result("invalid_credentials"), GH_MAR_INVALID);
    assert_int_equal(gh_metrics_auth_result("bad_signature"), GH_MAR_INVALID);
    assert_int_equal(gh_metrics_auth_result("token_expired"), GH_MAR_EXPIRED);
    assert_int_equal(gh_metrics_auth_result("key_expired"), GH_MAR_EXPIRED);
    assert_int_equal(gh_metrics_auth_result("key_revoked"), GH_MAR_REVOKED);
    assert_int_equal(gh_metrics_auth_result("token_revoked"), GH_MAR_REVOKED);
    assert_int_equal(gh_metrics_auth_result("tenant_suspended"), GH_MAR_SUSPENDED);
    assert_int_equal(gh_metrics_auth_result("insufficient_scope"), GH_MAR_FORBIDDEN);
    assert_int_equal(gh_metrics_auth_result("insufficient_role"), GH_MAR_FORBIDDEN);
    assert_int_equal(gh_metrics_auth_result("jwks_unavailable"), GH_MAR_UNAVAILABLE);
    assert_int_equal(gh_metrics_auth_result("auth_busy"), GH_MAR_UNAVAILABLE);
    assert_int_equal(gh_metrics_auth_result(NULL), GH_MAR_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_format),
        cmocka_unit_test(test_openmetrics_format),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_help_escaping),
        cmocka_unit_test(test_seconds),
        cmocka_unit_test(test_bucket_edges),
        cmocka_unit_test(test_sum_across_workers),
        cmocka_unit_test(test_registry_across_reloads),
        cmocka_unit_test(test_top_tenants_sticky),
        cmocka_unit_test(test_tenant_table_full),
        cmocka_unit_test(test_auth_result_mapping),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
