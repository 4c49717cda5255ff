/* Tests of src/audit/event.c and parse.c: the canonical form byte for byte,
 * the chain hash and checkpoint message, UUIDv7, the setters (UTF-8 repair
 * and clipping) and the strict parser.
 *
 * The expected bytes and hashes were computed independently of this code,
 * with Python's hashlib and a 30-line implementation of docs/audit-format.md
 * (escapes, member order, params with hashlib.sha256 and
 * bytes.decode('utf-8', 'replace') for the prefix), when the test was
 * written, and pasted here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "audit/event.h"

#define CHAIN "tn_abcdefghijklmnopqrst"

static const char SAMPLE_CANON[] =
    "{\"v\":1,\"chain\":\"tn_abcdefghijklmnopqrst\",\"seq\":1,\"id\":\"019aa9a5-b2fb-7001-8203-"
    "040506070809\",\"time_us\":1763782800123456,\"tenant\":\"tn_abcdefghijklmnopqrst\","
    "\"actor\":\"key:AbCdEfGh12345678\",\"action\":\"key.revoke\",\"resource\":\"tenants/"
    "tn_abcdefghijklmnopqrst/keys/AbC\",\"outcome\":\"denied\",\"reason\":\"forbidden\","
    "\"method\":\"DELETE\",\"path\":\"/v1/x\\\"y\\\\z\",\"status\":403,\"request_id\":\"req-1\","
    "\"trace_id\":\"0af7651916cd43dd8448eb211c80319c\",\"client_ip\":\"192.0.2.1\","
    "\"user_agent\":\"curl/8.5 \\u0001\\u007f \303\251\357\277\275x\",\"latency_us\":1234,"
    "\"params\":[{\"name\":\"q\",\"sha256\":"
    "\"b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9\",\"prefix\":\"hell\"},"
    "{\"name\":\"password\",\"redacted\":\"name\"},{\"name\":\"email\",\"redacted\":\"email\"},"
    "{\"name\":\"n\",\"sha256\":"
    "\"6b51d431df5d7f141cbececcf79edf3dd861c3b4069f0b11661a3eefacbba918\",\"prefix\":\"\"},"
    "{\"name\":\"u\",\"sha256\":"
    "\"4a7c5049796ca3310321233f478ec7669d18a76e61e14d01ae3160baa3143b28\",\"prefix\":"
    "\"\357\277\275\\u0001ab\"}]}";

/* The sample written by node "gw-1.eu_west-2": format version 2 is the
 * version-1 form with "v":2 and a last member "node" after "params". */
#define SAMPLE_NODE "gw-1.eu_west-2"

/* SHA-256 chain of the version-2 sample at seq 1, 2 and 3 (hashlib, on the
 * bytes of SAMPLE_CANON edited as docs/audit-format.md says). */
static const char *const SAMPLE_V2_HASHES[3] = {
    "040fdce96a0203e01f7bdf4f60bb6d3da03d96d12f4f042e1e440eed06fb70ed",
    "b0fb638cec4809b5b756314f3bfe93c9f5b1a328c226f474708ae6a17771992e",
    "6b93cf567972c7cd5b22a557e68b1f2c78e6a2e7ca3a5c28b2a4df45edc6f499",
};

/* SHA-256 chain of the sample event at seq 1, 2 and 3 (hashlib). */
static const char *const SAMPLE_HASHES[3] = {
    "edbc421a5e999fae9649a3307a40754001f4469cb2dfda57e0b2179d96f8ca12",
    "27ff9d16bce5cdf312afd3f022d3c133c3ea160a59514c925e5db44fca195cbf",
    "435e18dc533c85092036ca998105eb551d65bfa9caf5c2912dfc6b73e1ac4b14",
};

static void hex(const uint8_t *b, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
}

static void sample(struct gh_audit_event *ev)
{
    static const uint8_t rnd[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    static const char ua[] = "curl/8.5 \x01\x7f \xc3\xa9\0x";

    gh_audit_event_init(ev, 1763782800123456, rnd);
    GH_AUDIT_SET(ev, tenant, GH_STR_LIT(CHAIN));
    GH_AUDIT_SET(ev, actor, GH_STR_LIT("key:AbCdEfGh12345678"));
    GH_AUDIT_SET(ev, action, GH_STR_LIT("key.revoke"));
    GH_AUDIT_SET(ev, resource, GH_STR_LIT("tenants/" CHAIN "/keys/AbC"));
    ev->outcome = GH_AUDIT_DENIED;
    GH_AUDIT_SET(ev, reason, GH_STR_LIT("forbidden"));
    GH_AUDIT_SET(ev, method, GH_STR_LIT("DELETE"));
    GH_AUDIT_SET(ev, path, GH_STR_LIT("/v1/x\"y\\z"));
    ev->status = 403;
    GH_AUDIT_SET(ev, request_id, GH_STR_LIT("req-1"));
    GH_AUDIT_SET(ev, trace_id, GH_STR_LIT("0af7651916cd43dd8448eb211c80319c"));
    GH_AUDIT_SET(ev, client_ip, GH_STR_LIT("192.0.2.1"));
    GH_AUDIT_SET(ev, user_agent, gh_str_make(ua, sizeof(ua) - 1));
    ev->latency_us = 1234;
    gh_audit_params_begin(ev);
    gh_audit_params_from_query(
        ev, GH_STR_LIT("q=hello+world&password=hunter2&&email=a%40b.com&n=12&u=%FF%01abcdefgh"), 4);
    gh_audit_params_end(ev);
    snprintf(ev->chain, sizeof(ev->chain), "%s", gh_audit_chain_of(ev));
}

static void test_canonical_sample(void **state)
{
    struct gh_audit_event ev;
    char out[GH_AUDIT_CANON_MAX];
    size_t n;

    sample(&ev);
    ev.seq = 1;
    n = gh_audit_canonical(&ev, out);
    assert_int_equal(n, sizeof(SAMPLE_CANON) - 1);
    assert_memory_equal(out, SAMPLE_CANON, n);

    /* And it is JSON that jansson reads, with the members in order. */
    json_error_t e;
    json_t *doc = json_loadb(out, n, 0, &e);
    assert_non_null(doc);
    assert_int_equal(json_object_size(doc), 20);
    json_decref(doc);
}

/* An event without a node keeps version 1 byte for byte (existing stores
 * and archives still verify); with one, version 2: "v":2 and "node" last. */
static void test_canonical_v1_v2(void **state)
{
    static const char v1_head[] = "{\"v\":1,", v2_head[] = "{\"v\":2,";
    static const char v2_tail[] = "],\"node\":\"" SAMPLE_NODE "\"}";
    struct gh_audit_event ev, back;
    char out[GH_AUDIT_CANON_MAX], want[GH_AUDIT_CANON_MAX], h[65];
    uint8_t prev[32] = {0};
    size_t n, wn, body = sizeof(SAMPLE_CANON) - 1 - (sizeof(v1_head) - 1) - 2;

    sample(&ev);
    ev.seq = 1;
    assert_string_equal(ev.node, "");
    n = gh_audit_canonical(&ev, out);
    assert_int_equal(n, sizeof(SAMPLE_CANON) - 1);
    assert_memory_equal(out, SAMPLE_CANON, n);

    /* The expected version-2 bytes, spliced from the version-1 ones. */
    wn = (size_t)snprintf(want, sizeof(want), "%s%.*s%s", v2_head, (int)body,
                          SAMPLE_CANON + sizeof(v1_head) - 1, v2_tail);
    GH_AUDIT_SET(&ev, node, GH_STR_LIT(SAMPLE_NODE));
    for (int i = 0; i < 3; i++) {
        ev.seq = (uint64_t)i + 1;
        n = gh_audit_canonical(&ev, out);
        if (i == 0) {
            assert_int_equal(n, wn);
            assert_memory_equal(out, want, n);
        }
        gh_audit_chain_hash(prev, out, n, ev.hash);
        hex(ev.hash, 32, h);
        assert_string_equal(h, SAMPLE_V2_HASHES[i]);
        memcpy(prev, ev.hash, 32);
    }

    /* Read back: the node comes back, and the form again. */
    ev.seq = 1;
    n = gh_audit_canonical(&ev, out);
    memset(&back, 0x55, sizeof(back));
    assert_int_equal(gh_audit_canonical_parse(out, n, &back), GH_OK);
    assert_string_equal(back.node, SAMPLE_NODE);
    assert_string_equal(back.params, ev.params);
    assert_int_equal(gh_audit_canonical(&back, want), n);
    assert_memory_equal(want, out, n);
    /* A version-1 form reads back with no node. */
    memset(&back, 0x55, sizeof(back));
    assert_int_equal(gh_audit_canonical_parse(SAMPLE_CANON, sizeof(SAMPLE_CANON) - 1, &back),
                     GH_OK);
    assert_string_equal(back.node, "");

    json_error_t e;
    json_t *doc = json_loadb(out, n, 0, &e);
    assert_non_null(doc);
    assert_int_equal(json_object_size(doc), 21);
    assert_int_equal(json_integer_value(json_object_get(doc, "v")), 2);
    assert_string_equal(json_string_value(json_object_get(doc, "node")), SAMPLE_NODE);
    json_decref(doc);
}

/* One form per event: version 2 without its node (or with ""), version 1
 * with one, and a node anywhere but last are refused. */
static void test_parse_node_strict(void **state)
{
    struct gh_audit_event ev, back;
    char v2[GH_AUDIT_CANON_MAX], mod[GH_AUDIT_CANON_MAX + 64];
    const char *tail;
    size_t n;

    sample(&ev);
    ev.seq = 1;
    GH_AUDIT_SET(&ev, node, GH_STR_LIT("gw-1"));
    n = gh_audit_canonical(&ev, v2);
    v2[n] = '\0';
    tail = strstr(v2, ",\"node\":\"gw-1\"}");
    assert_non_null(tail);

    /* "v":2 with no node */
    snprintf(mod, sizeof(mod), "%.*s}", (int)(tail - v2), v2);
    assert_int_equal(gh_audit_canonical_parse(mod, strlen(mod), &back), GH_ERROR);
    /* "v":2 with an empty node */
    snprintf(mod, sizeof(mod), "%.*s,\"node\":\"\"}", (int)(tail - v2), v2);
    assert_int_equal(gh_audit_canonical_parse(mod, strlen(mod), &back), GH_ERROR);
    /* "v":1 with a node */
    snprintf(mod, sizeof(mod), "{\"v\":1,%s", v2 + 7);
    assert_int_equal(gh_audit_canonical_parse(mod, strlen(mod), &back), GH_ERROR);
    /* "v":3 */
    snprintf(mod, sizeof(mod), "{\"v\":3,%s", v2 + 7);
    assert_int_equal(gh_audit_canonical_parse(mod, strlen(mod), &back), GH_ERROR);
    /* the node twice, or something after it */
    snprintf(mod, sizeof(mod), "%.*s,\"node\":\"gw-1\",\"node\":\"gw-1\"}", (int)(tail - v2), v2);
    assert_int_equal(gh_audit_canonical_parse(mod, strlen(mod), &back), GH_ERROR);
    /* the unchanged form still reads */
    assert_int_equal(gh_audit_canonical_parse(v2, n, &back), GH_OK);
    assert_string_equal(back.node, "gw-1");
}

static void test_chain_hash(void **state)
{
    struct gh_audit_event ev;
    char out[GH_AUDIT_CANON_MAX], h[65];
    uint8_t prev[32] = {0};

    sample(&ev);
    for (int i = 0; i < 3; i++) {
        ev.seq = (uint64_t)i + 1;
        size_t n = gh_audit_canonical(&ev, out);
        gh_audit_chain_hash(prev, out, n, ev.hash);
        hex(ev.hash, 32, h);
        assert_string_equal(h, SAMPLE_HASHES[i]);
        memcpy(prev, ev.hash, 32);
    }
}

static void test_checkpoint_message(void **state)
{
    static const char want[] = "gatehouse-audit-checkpoint:v1\n" CHAIN "\n3\n"
                               "435e18dc533c85092036ca998105eb551d65bfa9caf5c2912dfc6b73e1ac4b14\n"
                               "1763782800123";
    uint8_t hash[32];
    char out[256];

    for (int i = 0; i < 32; i++)
        sscanf(SAMPLE_HASHES[2] + 2 * i, "%2hhx", &hash[i]);
    size_t n = gh_audit_checkpoint_message(CHAIN, 3, hash, 1763782800123, out);
    assert_int_equal(n, sizeof(want) - 1);
    assert_memory_equal(out, want, n);
}

static void test_uuidv7(void **state)
{
    uint8_t rnd[10];
    struct gh_audit_event a, b;

    memset(rnd, 0xff, sizeof(rnd));
    gh_audit_event_init(&a, 1763782800123999, rnd);
    /* 8-4-4-4-12, lowercase hex */
    assert_int_equal(strlen(a.id), 36);
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23)
            assert_int_equal(a.id[i], '-');
        else
            assert_non_null(strchr("0123456789abcdef", a.id[i]));
    }
    /* 48-bit milliseconds: 1763782800123 = 0x019aa9a5b2fb */
    assert_memory_equal(a.id, "019aa9a5-b2fb-", 14);
    assert_int_equal(a.id[14], '7');                         /* version */
    assert_non_null(strchr("89ab", a.id[19]));               /* variant 10 */
    assert_memory_equal(a.id + 19, "bfff-ffffffffffff", 17); /* all-ones random bits */
    memset(rnd, 0, sizeof(rnd));
    gh_audit_event_init(&b, 1763782800124000, rnd);
    assert_string_equal(b.id, "019aa9a5-b2fc-7000-8000-000000000000");
    assert_true(strcmp(a.id, b.id) < 0); /* sorts by time */
    assert_int_equal(b.time_us, 1763782800124000);
    assert_string_equal(b.params, "[]");
    assert_int_equal(b.params_len, 2);
}

static void test_control_bytes_escaped(void **state)
{
    struct gh_audit_event ev;
    char out[GH_AUDIT_CANON_MAX], want[32];

    for (int c = 1; c < 0x80; c++) {
        char in[2] = {(char)c, 0};
        size_t n;

        memset(&ev, 0, sizeof(ev));
        GH_AUDIT_SET(&ev, reason, gh_str_make(in, 1));
        n = gh_audit_canonical(&ev, out);
        assert_true(n > 0);
        out[n] = '\0';
        if (c < 0x20 || c == 0x7f)
            snprintf(want, sizeof(want), "\"reason\":\"\\u00%02x\"", c);
        else if (c == '"' || c == '\\')
            snprintf(want, sizeof(want), "\"reason\":\"\\%c\"", c);
        else
            snprintf(want, sizeof(want), "\"reason\":\"%c\"", c);
        if (strstr(out, want) == NULL) fail_msg("byte 0x%02x: %s not in %s", c, want, out);
        /* The parser reads back exactly the byte. */
        struct gh_audit_event back;
        assert_int_equal(gh_audit_canonical_parse(out, n, &back), GH_OK);
        assert_string_equal(back.reason, in);
    }
    /* NUL cannot be in a C string: the setter replaces it. */
    GH_AUDIT_SET(&ev, reason, gh_str_make("a\0b", 3));
    assert_string_equal(ev.reason, "a\xef\xbf\xbd"
                                   "b");
}

static void test_invalid_utf8(void **state)
{
    /* Input -> bytes.decode('utf-8', 'replace').encode() in Python. */
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd"},
        {"\xe0\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
        {"\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
        {"\xf4\x90\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
        {"\xe2\x82", "\xef\xbf\xbd"},
        {"\xe2\x82"
         "A",
         "\xef\xbf\xbd"
         "A"},
        {"\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80"},
        {"\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd"},
        {"\xf0\x9f\x98", "\xef\xbf\xbd"},
        {"a\xff"
         "b",
         "a\xef\xbf\xbd"
         "b"},
        {"\xf5\x80", "\xef\xbf\xbd\xef\xbf\xbd"},
        {"caf\xc3\xa9", "caf\xc3\xa9"},
    };
    char out[64];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        gh_audit_set(out, sizeof(out), gh_str_cstr(cases[i].in));
        if (strcmp(out, cases[i].out) != 0) fail_msg("case %zu", i);
    }
}

static void test_clip(void **state)
{
    char out[8];

    gh_audit_set(out, sizeof(out), GH_STR_LIT("abcdefghij"));
    assert_string_equal(out, "abcdefg");
    /* Never past a character: "abcdef" + "é" would need 8 bytes. */
    gh_audit_set(out, sizeof(out), GH_STR_LIT("abcdef\xc3\xa9"));
    assert_string_equal(out, "abcdef");
    /* The clip counts escapes: \u0001 takes 6 of the 7 bytes. */
    gh_audit_set(out, sizeof(out),
                 GH_STR_LIT("ab\x01"
                            "cd"));
    assert_string_equal(out, "ab");
    gh_audit_set(out, sizeof(out),
                 GH_STR_LIT("a\x01"
                            "cd"));
    assert_string_equal(out, "a\x01");
    gh_audit_set(out, sizeof(out), GH_STR_LIT("\"\"\"\"x"));
    assert_string_equal(out, "\"\"\"");
    gh_audit_set(out, sizeof(out), GH_STR_NULL);
    assert_string_equal(out, "");
}

/* The largest event: every field full of bytes that escape to 6, params
 * full: the canonical form still fits. */
static void test_worst_case_fits(void **state)
{
    struct gh_audit_event ev;
    char big[4096], out[GH_AUDIT_CANON_MAX];
    uint8_t rnd[10] = {0};

    memset(big, 0x01, sizeof(big));
    gh_audit_event_init(&ev, INT64_MAX, rnd);
    GH_AUDIT_SET(&ev, tenant, gh_str_make(big, sizeof(big)));
    GH_AUDIT_SET(&ev, actor, gh_str_make(big, sizeof(big)));
    GH_AUDIT_SET(&ev, action, gh_str_make(big, sizeof(big)));
    GH_AUDIT_SET(&ev, resource, gh_str_make(big, sizeof(big)));
    GH_AUDIT_SET(&ev, reason, gh_str_make(big, sizeof(big)));
    GH_AUDIT_SET(&ev, method, gh_str_make(big, sizeof(big)));
    GH_AUDIT_SET(&ev, path, gh_str_make(big, sizeof(big)));
    GH_AUDIT_SET(&ev, request_id, gh_str_make(big, sizeof(big)));
    GH_AUDIT_SET(&ev, trace_id, gh_str_make(big, sizeof(big)));
    GH_AUDIT_SET(&ev, client_ip, gh_str_make(big, sizeof(big)));
    GH_AUDIT_SET(&ev, user_agent, gh_str_make(big, sizeof(big)));
    GH_AUDIT_SET(&ev, chain, gh_str_make(big, sizeof(big)));
    GH_AUDIT_SET(&ev, node, gh_str_make(big, sizeof(big)));
    ev.seq = UINT64_MAX;
    ev.status = UINT16_MAX;
    ev.latency_us = UINT64_MAX;
    for (int i = 0; i < 100; i++)
        gh_audit_params_add(&ev, gh_str_make(big, 500), gh_str_make(big, 500), 64);
    size_t n = gh_audit_canonical(&ev, out);
    assert_true(n > 0 && n < 4600);
    struct gh_audit_event back;
    assert_int_equal(gh_audit_canonical_parse(out, n, &back), GH_OK);
    char again[GH_AUDIT_CANON_MAX];
    assert_int_equal(gh_audit_canonical(&back, again), n);
    assert_memory_equal(again, out, n);
}

static void test_params_truncated(void **state)
{
    struct gh_audit_event ev;
    uint8_t rnd[10] = {0};
    char name[16];
    json_error_t e;
    json_t *doc, *last;
    size_t kept;

    gh_audit_event_init(&ev, 1, rnd);
    for (int i = 0; i < 200; i++) {
        snprintf(name, sizeof(name), "p%d", i);
        gh_audit_params_add(&ev, gh_str_cstr(name), GH_STR_LIT("some value"), 4);
        /* A complete array after every call. */
        doc = json_loadb(ev.params, ev.params_len, 0, &e);
        if (doc == NULL) fail_msg("after %d: %s: %s", i, e.text, ev.params);
        json_decref(doc);
        assert_int_equal(strlen(ev.params), ev.params_len);
    }
    doc = json_loadb(ev.params, ev.params_len, 0, &e);
    kept = json_array_size(doc) - 1;
    last = json_array_get(doc, kept);
    assert_true(kept > 10 && kept < 200);
    assert_int_equal(json_object_size(last), 1);
    assert_int_equal(json_integer_value(json_object_get(last, "truncated")), 200 - kept);
    /* The kept ones are the first ones, in order. */
    assert_string_equal(json_string_value(json_object_get(json_array_get(doc, 0), "name")), "p0");
    snprintf(name, sizeof(name), "p%zu", kept - 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(doc, kept - 1), "name")),
                        name);
    json_decref(doc);
    /* A small parameter after a truncation is left out too: the kept ones stay a prefix. */
    gh_audit_params_add(&ev, GH_STR_LIT("x"), GH_STR_LIT(""), 0);
    assert_non_null(strstr(ev.params, "{\"truncated\":"));
    assert_null(strstr(ev.params, "\"name\":\"x\""));
    gh_audit_params_begin(&ev);
    assert_string_equal(ev.params, "[]");
}

static void test_parse_strict(void **state)
{
    static const struct {
        const char *from, *to;
    } bad[] = {
        {"\"seq\":1,", "\"seq\":01,"},
        {"\"seq\":1,", "\"seq\":+1,"},
        {"\"status\":403", "\"status\":70000"},
        {"\\u0001", "\\u0041"}, /* an escape of a byte that needs none */
        {"\\u0001", "\\u0A01"},
        {"\\u007f", "\\u007F"},
        {"{\"v\":1,", "{ \"v\":1,"},
        {"\"denied\"", "\"other\""},
        {"\"latency_us\":1234", "\"latency_us\":1234.0"},
        {"\"method\":\"DELETE\"", "\"method\":\"DEL\tTE\""},
        {"}]}", "}] }"},
        {"\"v\":1,", "\"v\":2,"},
    };
    struct gh_audit_event ev, back;
    char out[GH_AUDIT_CANON_MAX], mod[GH_AUDIT_CANON_MAX + 16];
    size_t n;

    sample(&ev);
    ev.seq = 1;
    n = gh_audit_canonical(&ev, out);
    out[n] = '\0';
    assert_int_equal(gh_audit_canonical_parse(out, n, &back), GH_OK);
    assert_string_equal(back.user_agent, ev.user_agent);
    assert_string_equal(back.path, ev.path);
    assert_int_equal(back.seq, 1);
    assert_int_equal(back.status, 403);
    assert_int_equal(back.outcome, GH_AUDIT_DENIED);
    assert_string_equal(back.params, ev.params);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *at = strstr(out, bad[i].from);
        size_t pre;
        assert_non_null(at);
        pre = (size_t)(at - out);
        snprintf(mod, sizeof(mod), "%.*s%s%s", (int)pre, out, bad[i].to, at + strlen(bad[i].from));
        if (gh_audit_canonical_parse(mod, strlen(mod), &back) != GH_ERROR)
            fail_msg("case %zu accepted", i);
    }
    assert_int_equal(gh_audit_canonical_parse(out, n - 1, &back), GH_ERROR);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_canonical_sample),
        cmocka_unit_test(test_canonical_v1_v2),
        cmocka_unit_test(test_parse_node_strict),
        cmocka_unit_test(test_chain_hash),
        cmocka_unit_test(test_checkpoint_message),
        cmocka_unit_test(test_uuidv7),
        cmocka_unit_test(test_control_bytes_escaped),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_clip),
        cmocka_unit_test(test_worst_case_fits),
        cmocka_unit_test(test_params_truncated),
        cmocka_unit_test(test_parse_strict),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
