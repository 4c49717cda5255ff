/* Tests of the compact form of stored audit bodies (src/store/audit_body.c)
 * against the audit module's own canonical form: events made and chained as
 * the audit writer makes them (gh_audit_chain_event) must lose exactly the
 * front their columns hold and have their request_id and node members
 * marked, and get the same bytes back; a value the canonical form escapes,
 * a negative time or a body whose front is not its columns' keeps the body
 * whole; a member whose value needs escaping or is not its column's keeps
 * its place; a changed column changes the body read back (so the chain's
 * hash catches it); a column's byte the canonical form escapes, raw in a
 * body that is not canonical, keeps its value in the body; bodies stored
 * by builds before the marks read as before. Many random events, values drawn from every byte but
 * NUL, must come back byte for byte whichever form they take. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/chain.h"
#include "audit/event.h"
#include "store/audit_body.h"

static const uint8_t zero[32];

/* A request's event as the gateway makes one; <node> "" keeps version 1. */
static void request_event(struct gh_audit_event *ev, const char *node)
{
    static const uint8_t rnd[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};

    gh_audit_event_init(ev, 1795000000123456, rnd);
    GH_AUDIT_SET(ev, tenant, GH_STR_LIT("tn_AAAAAAAAAAAAAAAAAAAA"));
    GH_AUDIT_SET(ev, actor, GH_STR_LIT("key:ak_BBBBBBBBBBBBBBBBBBBB"));
    GH_AUDIT_SET(ev, action, GH_STR_LIT("http.request"));
    GH_AUDIT_SET(ev, resource, GH_STR_LIT("route:api"));
    ev->outcome = GH_AUDIT_SUCCESS;
    GH_AUDIT_SET(ev, method, GH_STR_LIT("GET"));
    GH_AUDIT_SET(ev, path, GH_STR_LIT("/v1/things?id=7"));
    ev->status = 200;
    GH_AUDIT_SET(ev, request_id, GH_STR_LIT("0123456789abcdef0000000000000001"));
    GH_AUDIT_SET(ev, client_ip, GH_STR_LIT("127.0.0.1"));
    GH_AUDIT_SET(ev, user_agent, GH_STR_LIT("curl/7.88.1"));
    ev->latency_us = 1234;
    GH_AUDIT_SET(ev, node, gh_str_cstr(node));
}

static char scratch[GH_STORE_AUDIT_BODY_MAX];

/* <got>'s body is <want>'s, byte for byte. */
static void assert_same_body(const struct gh_store_audit_row *got,
                             const struct gh_store_audit_row *want)
{
    assert_int_equal(got->body_len, want->body_len);
    assert_memory_equal(got->body, want->body, want->body_len);
}

/* What an engine stores for <row> (*stored, *len), and the row it reads
 * back from that (the columns as stored, the body from the stored bytes). */
static bool store_and_read(const struct gh_store_audit_row *row, const char **stored, size_t *len,
                           struct gh_store_audit_row *back)
{
    *stored = gh_store__audit_body_stored(row, scratch, len);
    *back = *row;
    memset(back->body, 0x55, sizeof(back->body));
    back->body_len = 0;
    return gh_store__audit_body_expand(back, *stored, *len);
}

static void test_request_event_round_trip(void **state)
{
    static struct gh_audit_event ev;
    static struct gh_store_audit_row row, back;
    const char *nodes[] = {"", "gw-1"};

    (void)state;
    for (size_t i = 0; i < 2; i++) {
        char front[512], expect[512];
        const char *stored;
        size_t len;
        int n, m;

        request_event(&ev, nodes[i]);
        assert_int_equal(gh_audit_chain_event(&ev, 42, zero, &row), GH_OK);
        assert_true(store_and_read(&row, &stored, &len, &back));
        /* Exactly the members the columns hold are left out: the front, and
         * request_id and node, each for its mark. */
        n = snprintf(front, sizeof(front),
                     "{\"v\":%c,\"chain\":\"%s\",\"seq\":42,\"id\":\"%s\",\"time_us\":"
                     "1795000000123456,\"tenant\":\"tn_AAAAAAAAAAAAAAAAAAAA\",\"actor\":"
                     "\"key:ak_BBBBBBBBBBBBBBBBBBBB\",\"action\":\"http.request\",\"resource\":"
                     "\"route:api\",\"outcome\":\"success\"",
                     i ? '2' : '1', row.chain, row.id);
        assert_memory_equal(row.body, front, (size_t)n);
        m = snprintf(expect, sizeof(expect),
                     ",\"reason\":\"\",\"method\":\"GET\",\"path\":\"/v1/things?id=7\","
                     "\"status\":200\001,\"trace_id\":\"\",\"client_ip\":\"127.0.0.1\","
                     "\"user_agent\":\"curl/7.88.1\",\"latency_us\":1234,\"params\":[]%s}",
                     i ? "\002" : "");
        assert_int_equal(len, (size_t)m);
        assert_memory_equal(stored, expect, len);
        /* 48 bytes of request_id, 14 of node, for one byte each. */
        assert_int_equal(row.body_len - (size_t)n - len, i ? 47 + 13 : 47);
        assert_same_body(&back, &row);
        assert_int_equal(back.body[back.body_len], '\0');
    }
}

static void test_kept_whole(void **state)
{
    static struct gh_audit_event ev;
    static struct gh_store_audit_row row, back;
    const char *stored;
    size_t len;

    (void)state;
    /* A value the canonical form escapes. */
    request_event(&ev, "gw-1");
    GH_AUDIT_SET(&ev, resource, GH_STR_LIT("route:\"quoted\"\n"));
    assert_int_equal(gh_audit_chain_event(&ev, 1, zero, &row), GH_OK);
    assert_true(store_and_read(&row, &stored, &len, &back));
    assert_ptr_equal(stored, row.body);
    assert_int_equal(len, row.body_len);
    assert_same_body(&back, &row);

    /* A column that is not what the body says (a caller's row, not the
     * writer's): stored whole, read back whole. */
    request_event(&ev, "gw-1");
    assert_int_equal(gh_audit_chain_event(&ev, 1, zero, &row), GH_OK);
    snprintf(row.actor, sizeof(row.actor), "%s", "key:ak_CCCCCCCCCCCCCCCCCCCC");
    assert_true(store_and_read(&row, &stored, &len, &back));
    assert_ptr_equal(stored, row.body);
    assert_memory_equal(back.body, row.body, row.body_len);

    /* A body that holds a mark's byte (no canonical body does). */
    request_event(&ev, "gw-1");
    assert_int_equal(gh_audit_chain_event(&ev, 1, zero, &row), GH_OK);
    row.body[row.body_len - 3] = GH_STORE_AUDIT_MARK_NODE;
    assert_true(store_and_read(&row, &stored, &len, &back));
    assert_ptr_equal(stored, row.body);
    assert_memory_equal(back.body, row.body, row.body_len);

    /* A negative time: the canonical form writes 0. */
    request_event(&ev, "");
    ev.time_us = -5;
    assert_int_equal(gh_audit_chain_event(&ev, 1, zero, &row), GH_OK);
    row.time_us = -5;
    assert_ptr_equal(gh_store__audit_body_stored(&row, scratch, &len), row.body);
}

/* A member whose column needs escaping, or is not what the body says,
 * keeps its place in the compact form: the front still goes. */
static void test_member_kept(void **state)
{
    static struct gh_audit_event ev;
    static struct gh_store_audit_row row, back;
    const char *stored, *tail;
    size_t len, at;

    (void)state;
    /* A request id the canonical form escapes. */
    request_event(&ev, "gw-1");
    GH_AUDIT_SET(&ev, request_id, GH_STR_LIT("req\"1"));
    assert_int_equal(gh_audit_chain_event(&ev, 3, zero, &row), GH_OK);
    assert_true(store_and_read(&row, &stored, &len, &back));
    assert_int_equal(stored[0], ',');
    assert_null(memchr(stored, GH_STORE_AUDIT_MARK_REQUEST, len));
    assert_non_null(memchr(stored, GH_STORE_AUDIT_MARK_NODE, len));
    assert_memory_equal(back.body, row.body, row.body_len);
    assert_int_equal(back.body_len, row.body_len);

    /* Columns that differ from the body's members (a caller's row). */
    request_event(&ev, "gw-1");
    assert_int_equal(gh_audit_chain_event(&ev, 3, zero, &row), GH_OK);
    snprintf(row.request_id, sizeof(row.request_id), "%s", "other");
    snprintf(row.node, sizeof(row.node), "%s", "gw-2");
    /* The node column sets the version the front says: v2 either way. */
    assert_true(store_and_read(&row, &stored, &len, &back));
    assert_int_equal(stored[0], ',');
    assert_null(memchr(stored, GH_STORE_AUDIT_MARK_REQUEST, len));
    assert_null(memchr(stored, GH_STORE_AUDIT_MARK_NODE, len));
    assert_same_body(&back, &row);

    /* Bodies that are not canonical ones. A node member before the
     * request_id member: the node is marked, the request_id kept. */
    request_event(&ev, "gw-1");
    assert_int_equal(gh_audit_chain_event(&ev, 3, zero, &row), GH_OK);
    snprintf(row.request_id, sizeof(row.request_id), "%s", "R");
    tail = strstr(row.body, ",\"reason\":");
    assert_non_null(tail);
    at = (size_t)(tail - row.body);
    row.body_len =
        at + (size_t)snprintf(row.body + at, sizeof(row.body) - at, "%s",
                              ",\"reason\":\"\",\"node\":\"gw-1\",\"request_id\":\"R\"}");
    assert_true(store_and_read(&row, &stored, &len, &back));
    assert_int_equal(len, strlen(",\"reason\":\"\"\002,\"request_id\":\"R\"}"));
    assert_memory_equal(stored, ",\"reason\":\"\"\002,\"request_id\":\"R\"}", len);
    assert_same_body(&back, &row);

    /* A member first of all after the front keeps its place: the compact
     * form begins with ','. */
    row.body_len =
        at + (size_t)snprintf(row.body + at, sizeof(row.body) - at, "%s", ",\"node\":\"gw-1\"}");
    assert_true(store_and_read(&row, &stored, &len, &back));
    assert_int_equal(len, strlen(",\"node\":\"gw-1\"}"));
    assert_memory_equal(stored, ",\"node\":\"gw-1\"}", len);
    assert_same_body(&back, &row);
    /* The same for the request_id member. */
    row.body_len = at + (size_t)snprintf(row.body + at, sizeof(row.body) - at, "%s",
                                         ",\"request_id\":\"R\",\"node\":\"gw-1\"}");
    assert_true(store_and_read(&row, &stored, &len, &back));
    assert_int_equal(len, strlen(",\"request_id\":\"R\"\002}"));
    assert_memory_equal(stored, ",\"request_id\":\"R\"\002}", len);
    assert_same_body(&back, &row);
}

/* An event chained with <column> (the row's field for it) holding 20 times
 * <fill>; then byte <pos> of the column and of its value in the body both
 * set to <b>, raw. */
static void raw_byte_row(struct gh_audit_event *ev, struct gh_store_audit_row *row, char *column,
                         char fill, size_t pos, char b)
{
    char value[21], *v;

    memset(value, fill, 20);
    value[20] = '\0';
    assert_int_equal(gh_audit_chain_event(ev, 5, zero, row), GH_OK);
    v = strstr(row->body, value);
    assert_non_null(v);
    v[pos] = column[pos] = b;
}

/* A column holding a byte the canonical form escapes, as it is in a body
 * that is not a canonical one (a caller's row): the bytes match, but
 * reading could not put them back (it refuses such a column), so the
 * front goes with the body and the member keeps its place. Each byte at
 * each place in a 20-byte value (eight at a time, then the last four). */
static void test_raw_escapable_bytes_kept(void **state)
{
    static const char bad[] = {'"', '\\', '\t', 0x1f, 0x7f};
    static struct gh_audit_event ev;
    static struct gh_store_audit_row row, back;
    const char *stored;
    size_t len;

    (void)state;
    for (size_t b = 0; b < sizeof(bad); b++) {
        for (size_t pos = 0; pos < 20; pos++) {
            /* In the front: the actor. */
            request_event(&ev, "gw-1");
            GH_AUDIT_SET(&ev, actor, GH_STR_LIT("AAAAAAAAAAAAAAAAAAAA"));
            raw_byte_row(&ev, &row, row.actor, 'A', pos, bad[b]);
            assert_true(store_and_read(&row, &stored, &len, &back));
            assert_ptr_equal(stored, row.body);
            assert_same_body(&back, &row);

            /* In a member: the request_id. */
            request_event(&ev, "gw-1");
            GH_AUDIT_SET(&ev, request_id, GH_STR_LIT("RRRRRRRRRRRRRRRRRRRR"));
            raw_byte_row(&ev, &row, row.request_id, 'R', pos, bad[b]);
            assert_true(store_and_read(&row, &stored, &len, &back));
            assert_int_equal(stored[0], ',');
            assert_null(memchr(stored, GH_STORE_AUDIT_MARK_REQUEST, len));
            assert_non_null(memchr(stored, GH_STORE_AUDIT_MARK_NODE, len));
            assert_same_body(&back, &row);
        }
    }
}

/* A body stored by a build before the marks (the front left out, nothing
 * marked) reads as before. */
static void test_front_only_form_reads(void **state)
{
    static struct gh_audit_event ev;
    static struct gh_store_audit_row row, back;
    const char *tail;

    (void)state;
    request_event(&ev, "gw-1");
    assert_int_equal(gh_audit_chain_event(&ev, 5, zero, &row), GH_OK);
    tail = strstr(row.body, ",\"reason\":");
    assert_non_null(tail);
    back = row;
    assert_true(gh_store__audit_body_expand(&back, tail, strlen(tail)));
    assert_same_body(&back, &row);
}

static void test_changed_column_changes_body(void **state)
{
    static struct gh_audit_event ev;
    static struct gh_store_audit_row row, back;
    const char *stored;
    size_t len;

    (void)state;
    request_event(&ev, "gw-1");
    assert_int_equal(gh_audit_chain_event(&ev, 9, zero, &row), GH_OK);
    stored = gh_store__audit_body_stored(&row, scratch, &len);
    assert_int_equal(stored[0], ',');
    back = row;
    snprintf(back.actor, sizeof(back.actor), "%s", "key:ak_CCCCCCCCCCCCCCCCCCCC");
    snprintf(back.request_id, sizeof(back.request_id), "%s", "changed");
    assert_true(gh_store__audit_body_expand(&back, stored, len));
    assert_memory_not_equal(back.body, row.body, row.body_len);
    assert_non_null(strstr(back.body, "\"actor\":\"key:ak_CCCCCCCCCCCCCCCCCCCC\""));
    assert_non_null(strstr(back.body, "\"status\":200,\"request_id\":\"changed\",\"trace_id\""));
    assert_non_null(strstr(back.body, "\"params\":[],\"node\":\"gw-1\"}"));

    /* A stored compact body whose columns now need escaping cannot come
     * back: the row is not as written. */
    back = row;
    snprintf(back.tenant_id, sizeof(back.tenant_id), "%s", "tn_\"");
    assert_false(gh_store__audit_body_expand(&back, stored, len));
    back = row;
    snprintf(back.request_id, sizeof(back.request_id), "%s", "r\\");
    assert_false(gh_store__audit_body_expand(&back, stored, len));

    /* The version follows the node column; a node mark needs a node. */
    back = row;
    back.node[0] = '\0';
    assert_false(gh_store__audit_body_expand(&back, stored, len));
    assert_memory_equal(back.body, stored, len);
    request_event(&ev, "");
    assert_int_equal(gh_audit_chain_event(&ev, 9, zero, &row), GH_OK);
    stored = gh_store__audit_body_stored(&row, scratch, &len);
    back = row;
    snprintf(back.node, sizeof(back.node), "%s", "gw-9");
    assert_true(gh_store__audit_body_expand(&back, stored, len));
    assert_memory_equal(back.body, "{\"v\":2,", 7);
}

static void test_too_long_is_cut(void **state)
{
    static struct gh_store_audit_row row;
    static char stored[GH_STORE_AUDIT_BODY_MAX + 100];

    (void)state;
    memset(&row, 0, sizeof(row));
    snprintf(row.chain, sizeof(row.chain), "%s", "system");
    snprintf(row.outcome, sizeof(row.outcome), "%s", "success");
    memset(stored, 'x', sizeof(stored));
    stored[0] = ',';
    /* Fits whole, not with the front. */
    assert_false(gh_store__audit_body_expand(&row, stored, GH_STORE_AUDIT_BODY_MAX - 10));
    assert_int_equal(row.body_len, GH_STORE_AUDIT_BODY_MAX - 10);
    assert_memory_equal(row.body, stored, row.body_len);
    stored[0] = '{';
    assert_false(gh_store__audit_body_expand(&row, stored, sizeof(stored)));
    assert_int_equal(row.body_len, GH_STORE_AUDIT_BODY_MAX);
    assert_int_equal(row.body[GH_STORE_AUDIT_BODY_MAX], '\0');
    assert_true(gh_store__audit_body_expand(&row, stored, 100));
    assert_int_equal(row.body_len, 100);
}

/* A value of up to <max> bytes drawn from every byte but NUL, mostly
 * plain ones (so that most rows are compact and some are not). */
static void random_value(char *dst, size_t size, unsigned *seed)
{
    size_t n = (size_t)rand_r(seed) % (size > 40 ? 40 : size);
    char v[64];

    for (size_t i = 0; i < n; i++) {
        unsigned r = (unsigned)rand_r(seed);
        v[i] = (char)(r % 50 == 0 ? 1 + (r >> 8) % 255 : 'a' + (r >> 8) % 26);
    }
    gh_audit_set(dst, size, gh_str_make(v, n));
}

static void test_random_events(void **state)
{
    static struct gh_audit_event ev;
    static struct gh_store_audit_row row, back;
    static const uint8_t rnd[10];
    unsigned seed = 20261123;
    size_t compact = 0, whole = 0, marked = 0;

    (void)state;
    for (int i = 0; i < 20000; i++) {
        const char *stored;
        size_t len;
        gh_audit_event_init(&ev, (int64_t)rand_r(&seed) * 1000, rnd);
        random_value(ev.tenant, sizeof(ev.tenant), &seed);
        random_value(ev.actor, sizeof(ev.actor), &seed);
        random_value(ev.action, sizeof(ev.action), &seed);
        random_value(ev.resource, sizeof(ev.resource), &seed);
        random_value(ev.path, sizeof(ev.path), &seed);
        random_value(ev.request_id, sizeof(ev.request_id), &seed);
        if (rand_r(&seed) % 2) GH_AUDIT_SET(&ev, node, GH_STR_LIT("n1"));
        ev.outcome = (enum gh_audit_outcome)(1 + rand_r(&seed) % 3);
        assert_int_equal(gh_audit_chain_event(&ev, 1 + (uint64_t)rand_r(&seed), zero, &row), GH_OK);
        assert_true(store_and_read(&row, &stored, &len, &back));
        if (stored != row.body) {
            compact++;
            assert_int_equal(stored[0], ',');
            assert_true(len < row.body_len);
            marked += memchr(stored, GH_STORE_AUDIT_MARK_REQUEST, len) != NULL;
        } else {
            whole++;
            assert_int_equal(len, row.body_len);
        }
        assert_same_body(&back, &row);
    }
    /* Both forms were exercised, and compact bodies with and without a
     * request_id mark. */
    assert_true(compact > 1000);
    assert_true(whole > 1000);
    assert_true(marked > 1000);
    assert_true(compact - marked > 100);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_event_round_trip),
        cmocka_unit_test(test_kept_whole),
        cmocka_unit_test(test_member_kept),
        cmocka_unit_test(test_raw_escapable_bytes_kept),
        cmocka_unit_test(test_front_only_form_reads),
        cmocka_unit_test(test_changed_column_changes_body),
        cmocka_unit_test(test_too_long_is_cut),
        cmocka_unit_test(test_random_events),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
