/* A finished request's record as spans (src/telemetry/trace_spans.c):
 * parent links, names, attributes after the HTTP semantic conventions, and
 * which spans are errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "telemetry/otlp.h"
#include "telemetry/trace.h"

#define SET(rec, field, text)                                                                      \
    do {                                                                                           \
        (rec)->field##_len = (__typeof__((rec)->field##_len))strlen(text);                         \
        memcpy((rec)->field, (text), strlen(text));                                                \
    } while (0)

static void record(struct gh_trace_rec *rec)
{
    memset(rec, 0, sizeof(*rec));
    memset(rec->trace_id, 0xab, 16);
    memset(rec->server_id, 0x01, 8);
    memset(rec->auth_id, 0x02, 8);
    memset(rec->limits_id, 0x03, 8);
    memset(rec->upstream_id, 0x04, 8);
    rec->flags = 1;
    rec->status = 200;
    rec->up_status = 200;
    rec->t_start = 1000;
    rec->t_auth0 = 1100, rec->t_auth1 = 1200;
    rec->t_lim0 = 1200, rec->t_lim1 = 1300;
    rec->t_up0 = 1300, rec->t_up1 = 1900;
    rec->t_end = 2000;
    rec->has_auth = rec->has_limits = rec->has_upstream = true;
    rec->auth_ok = rec->limits_ok = true;
    rec->server_port = 8080;
    rec->up_port = 9000;
    rec->peer_port = 5555;
    rec->attempts = 1;
    SET(rec, method, "GET");
    SET(rec, path, "/orders/7");
    SET(rec, route, "orders");
    SET(rec, route_path, "/orders");
    SET(rec, host, "api.example.com");
    SET(rec, peer, "10.0.0.9");
    SET(rec, tenant, "tn_1");
    SET(rec, up_host, "10.1.1.1");
    SET(rec, upstream, "app");
    SET(rec, id, "req-1");
    SET(rec, scheme, "http");
    SET(rec, ua, "curl/8");
}

static const struct gh_span_attr *attr(const struct gh_span *s, const char *key)
{
    for (uint8_t i = 0; i < s->nattrs; i++)
        if (strcmp(s->attrs[i].key, key) == 0) return &s->attrs[i];
    return NULL;
}

static void assert_attr_str(const struct gh_span *s, const char *key, const char *want)
{
    const struct gh_span_attr *a = attr(s, key);
    if (a == NULL) fail_msg("no attribute %s", key);
    assert_int_equal(a->type, GH_ATTR_STR);
    assert_int_equal(a->s.len, strlen(want));
    assert_memory_equal(a->s.ptr, want, a->s.len);
}

static void assert_attr_int(const struct gh_span *s, const char *key, int64_t want)
{
    const struct gh_span_attr *a = attr(s, key);
    if (a == NULL) fail_msg("no attribute %s", key);
    assert_int_equal(a->type, GH_ATTR_INT);
    assert_int_equal(a->i, want);
}

static void assert_name(const struct gh_span *s, const char *want)
{
    assert_int_equal(s->name.len, strlen(want));
    assert_memory_equal(s->name.ptr, want, s->name.len);
}

static void test_four_spans_linked_to_the_server_span(void **state)
{
    struct gh_trace_rec rec;
    struct gh_span sp[4];
    char name[160];

    (void)state;
    record(&rec);
    assert_int_equal(gh_trace_rec_spans(&rec, sp, name, sizeof(name)), 4);
    assert_int_equal(sp[0].kind, GH_SPAN_SERVER);
    assert_false(sp[0].has_parent);
    assert_name(&sp[0], "GET /orders");
    assert_memory_equal(sp[0].span_id, rec.server_id, 8);
    for (int i = 1; i < 4; i++) {
        assert_true(sp[i].has_parent);
        assert_memory_equal(sp[i].parent_id, rec.server_id, 8);
        assert_memory_equal(sp[i].trace_id, rec.trace_id, 16);
        assert_int_equal(sp[i].status, GH_SPAN_STATUS_UNSET);
    }
    assert_name(&sp[1], "gatehouse.authenticate");
    assert_name(&sp[2], "gatehouse.limits");
    assert_int_equal(sp[3].kind, GH_SPAN_CLIENT);
    assert_name(&sp[3], "GET");
    /* The client span's id is what the upstream got as its parent. */
    assert_memory_equal(sp[3].span_id, rec.upstream_id, 8);
    assert_int_equal(sp[3].start_unix_ns, 1300);
    assert_int_equal(sp[3].end_unix_ns, 1900);

    assert_attr_str(&sp[0], "http.request.method", "GET");
    assert_attr_str(&sp[0], "url.path", "/orders/7");
    assert_attr_str(&sp[0], "http.route", "/orders");
    assert_attr_int(&sp[0], "http.response.status_code", 200);
    assert_attr_str(&sp[0], "server.address", "api.example.com");
    assert_attr_int(&sp[0], "server.port", 8080);
    assert_attr_str(&sp[0], "network.peer.address", "10.0.0.9");
    assert_attr_str(&sp[0], "user_agent.original", "curl/8");
    assert_attr_str(&sp[0], "gatehouse.tenant", "tn_1");
    assert_attr_str(&sp[3], "server.address", "10.1.1.1");
    assert_attr_int(&sp[3], "server.port", 9000);
    assert_null(attr(&sp[3], "http.request.resend_count"));
    assert_int_equal(sp[0].status, GH_SPAN_STATUS_UNSET);
}

static void test_caller_parent_and_tracestate(void **state)
{
    struct gh_trace_rec rec;
    struct gh_span sp[4];
    char name[160];

    (void)state;
    record(&rec);
    rec.has_parent = true;
    memset(rec.parent_id, 0x77, 8);
    SET(&rec, state, "rojo=1");
    rec.has_auth = rec.has_limits = rec.has_upstream = false;
    assert_int_equal(gh_trace_rec_spans(&rec, sp, name, sizeof(name)), 1);
    assert_true(sp[0].has_parent);
    assert_memory_equal(sp[0].parent_id, rec.parent_id, 8);
    assert_int_equal(sp[0].trace_state.len, 6);
}

static void test_errors_by_kind(void **state)
{
    struct gh_trace_rec rec;
    struct gh_span sp[4];
    char name[160];

    (void)state;
    /* 4xx from the upstream: the client span is an error, the server's not. */
    record(&rec);
    rec.status = rec.up_status = 404;
    gh_trace_rec_spans(&rec, sp, name, sizeof(name));
    assert_int_equal(sp[0].status, GH_SPAN_STATUS_UNSET);
    assert_int_equal(sp[3].status, GH_SPAN_STATUS_ERROR);

    /* No answer from the upstream: both, with the reason. */
    record(&rec);
    rec.status = 504;
    rec.up_status = 0;
    rec.attempts = 2;
    SET(&rec, error, "upstream_timeout");
    gh_trace_rec_spans(&rec, sp, name, sizeof(name));
    assert_int_equal(sp[0].status, GH_SPAN_STATUS_ERROR);
    assert_attr_str(&sp[0], "error.type", "upstream_timeout");
    assert_int_equal(sp[3].status, GH_SPAN_STATUS_ERROR);
    assert_attr_str(&sp[3], "error.type", "upstream_timeout");
    assert_attr_int(&sp[3], "http.request.resend_count", 1);

    /* Refused by authentication: the auth span is the error. */
    record(&rec);
    rec.status = 401;
    rec.auth_ok = false;
    rec.has_limits = rec.has_upstream = false;
    SET(&rec, error, "invalid_key");
    assert_int_equal(gh_trace_rec_spans(&rec, sp, name, sizeof(name)), 2);
    assert_int_equal(sp[0].status, GH_SPAN_STATUS_UNSET);
    assert_int_equal(sp[1].status, GH_SPAN_STATUS_ERROR);
    assert_attr_str(&sp[1], "gatehouse.auth.result", "denied");
}

static void test_other_methods_and_no_route(void **state)
{
    struct gh_trace_rec rec;
    struct gh_span sp[4];
    char name[160];

    (void)state;
    record(&rec);
    SET(&rec, method, "PURGE");
    rec.route_len = rec.route_path_len = 0;
    rec.has_auth = rec.has_limits = rec.has_upstream = false;
    rec.status = 404;
    gh_trace_rec_spans(&rec, sp, name, sizeof(name));
    assert_name(&sp[0], "HTTP");
    assert_attr_str(&sp[0], "http.request.method", "_OTHER");
    assert_attr_str(&sp[0], "http.request.method_original", "PURGE");
    assert_null(attr(&sp[0], "http.route"));
}

static void test_ring_peek_and_release_in_order(void **state)
{
    struct gh_trace_worker *tw = gh_trace_worker_new(10);
    const struct gh_trace_rec *recs;

    (void)state;
    assert_non_null(tw);
    assert_int_equal(tw->mask, 15); /* rounded up to a power of two */
    for (uint8_t i = 0; i < 6; i++) {
        tw->slots[i].status = (uint16_t)(200 + i);
        atomic_store(&tw->head, (uint64_t)i + 1);
    }
    assert_int_equal(gh_trace_worker_pending(tw), 6);
    assert_int_equal(gh_trace_worker_peek(tw, 0, &recs, 4), 4);
    assert_int_equal(recs[0].status, 200);
    assert_int_equal(recs[3].status, 203);
    assert_int_equal(gh_trace_worker_peek(tw, 4, &recs, 4), 2);
    assert_int_equal(recs[1].status, 205);
    assert_int_equal(gh_trace_worker_pending(tw), 6); /* nothing released yet */
    gh_trace_worker_release(tw, 6);
    assert_int_equal(gh_trace_worker_pending(tw), 0);
    /* Across the end of the ring: two contiguous pieces. */
    for (uint64_t i = 6; i < 20; i++) {
        tw->slots[i & tw->mask].status = (uint16_t)(200 + i);
        atomic_store(&tw->head, i + 1);
    }
    assert_int_equal(gh_trace_worker_peek(tw, 0, &recs, 100), 10);
    assert_int_equal(recs[9].status, 215);
    assert_int_equal(gh_trace_worker_peek(tw, 10, &recs, 100), 4);
    assert_int_equal(recs[0].status, 216);
    gh_trace_worker_free(tw);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_four_spans_linked_to_the_server_span),
        cmocka_unit_test(test_caller_parent_and_tracestate),
        cmocka_unit_test(test_errors_by_kind),
        cmocka_unit_test(test_other_methods_and_no_route),
        cmocka_unit_test(test_ring_peek_and_release_in_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
