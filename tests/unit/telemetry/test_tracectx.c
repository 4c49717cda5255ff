/* Tests of src/telemetry/tracectx.c: one table of traceparent/tracestate
 * header values (as a request carries them) and what the gateway keeps,
 * after the W3C Recommendation and its test suite (test/test.py), then
 * formatting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "telemetry/tracectx.h"

/* Runs of one character, to build keys and values at the length limits. */
#define R2(c)   c c
#define R4(c)   R2(c) R2(c)
#define R8(c)   R4(c) R4(c)
#define R16(c)  R8(c) R8(c)
#define R32(c)  R16(c) R16(c)
#define R64(c)  R32(c) R32(c)
#define R128(c) R64(c) R64(c)
#define R256(c) R128(c) R128(c)

#define T       "4bf92f3577b34da6a3ce929d0e0e4736"
#define P       "00f067aa0ba902b7"
#define TP      "00-" T "-" P "-01"
#define TP0     "00-" T "-" P "-00"

/* 128 characters ("k=" and 126), 202 ("k=" and 200): around the 128 mark
 * of the spec's truncation rule. */
#define V126     R64("v") R32("v") R16("v") R8("v") R4("v") R2("v")
#define V200     R128("w") R64("w") R8("w")
#define V123     R64("u") R32("u") R16("u") R8("u") R2("u") "u"
#define KEY241   R128("t") R64("t") R32("t") R16("t") "t"
#define VALUE_OK " !\"#$%&'()*+-./0123456789:;<>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`{|}~"

#define M10(p)                                                                                     \
    p "1=1," p "2=2," p "3=3," p "4=4," p "5=5," p "6=6," p "7=7," p "8=8," p "9=9," p "10=10"

struct tc_case {
    const char *name;
    const char *tp[2]; /* traceparent header values */
    size_t ntp;
    const char *ts[4]; /* tracestate header values */
    size_t nts;
    bool valid;
    const char *trace_id; /* hex; NULL: all zero */
    const char *parent_id;
    uint8_t flags;
    const char *state; /* propagated tracestate */
};

#define INVALID   false, NULL, NULL, 0, ""
#define OK(flags) true, T, P, (flags)

static const struct tc_case cases[] = {
    /* traceparent, §3.2 */
    {"sampled", {TP}, 1, {0}, 0, OK(1), ""},
    {"unsampled", {TP0}, 1, {0}, 0, OK(0), ""},
    {"all flags as received", {"00-" T "-" P "-ff"}, 1, {0}, 0, OK(0xff), ""},
    {"no traceparent", {0}, 0, {0}, 0, INVALID},
    {"empty value", {""}, 1, {0}, 0, INVALID},
    {"only spaces", {"   "}, 1, {0}, 0, INVALID},
    {"ows around the value", {" \t" TP "\t "}, 1, {0}, 0, OK(1), ""},
    {"uppercase trace-id", {"00-4BF92F3577B34DA6A3CE929D0E0E4736-" P "-01"}, 1, {0}, 0, INVALID},
    {"uppercase parent-id", {"00-" T "-00F067AA0BA902B7-01"}, 1, {0}, 0, INVALID},
    {"uppercase version", {"0A-" T "-" P "-01"}, 1, {0}, 0, INVALID},
    {"uppercase flags", {"00-" T "-" P "-0A"}, 1, {0}, 0, INVALID},
    {"all-zero trace-id", {"00-00000000000000000000000000000000-" P "-01"}, 1, {0}, 0, INVALID},
    {"all-zero parent-id", {"00-" T "-0000000000000000-01"}, 1, {0}, 0, INVALID},
    {"version ff", {"ff-" T "-" P "-01"}, 1, {0}, 0, INVALID},
    {"version 01, 55 chars", {"01-" T "-" P "-01"}, 1, {0}, 0, OK(1), ""},
    {"version cc, -xyz suffix", {"cc-" T "-" P "-01-xyz"}, 1, {0}, 0, OK(1), ""},
    {"version cc, tail without dash", {"cc-" T "-" P "-01.what-the-future"}, 1, {0}, 0, INVALID},
    {"version cc, longer flags", {"cc-" T "-" P "-011"}, 1, {0}, 0, INVALID},
    {"version cc, too short", {"cc-" T "-" P "-1"}, 1, {0}, 0, INVALID},
    {"version cc, all-zero trace-id",
     {"cc-00000000000000000000000000000000-" P "-01-x"},
     1,
     {0},
     0,
     INVALID},
    {"version 00 with a future tail", {TP "-what-the-future-will-be-like"}, 1, {0}, 0, INVALID},
    {"version 00 with a trailing dot", {TP "."}, 1, {0}, 0, INVALID},
    {"too short", {"00-" T "-" P "-"}, 1, {0}, 0, INVALID},
    {"version of 3 digits", {"000-" T "-" P "-01"}, 1, {0}, 0, INVALID},
    {"version of 1 digit", {"0-" T "-" P "-01"}, 1, {0}, 0, INVALID},
    {"version not hex", {".0-" T "-" P "-01"}, 1, {0}, 0, INVALID},
    {"trace-id of 33", {"00-" T "3-" P "-01"}, 1, {0}, 0, INVALID},
    {"trace-id of 31", {"00-4bf92f3577b34da6a3ce929d0e0e473-" P "-01"}, 1, {0}, 0, INVALID},
    {"parent-id of 17", {"00-" T "-" P "7-01"}, 1, {0}, 0, INVALID},
    {"parent-id of 15", {"00-" T "-00f067aa0ba902b-01"}, 1, {0}, 0, INVALID},
    {"flags of 3", {"00-" T "-" P "-001"}, 1, {0}, 0, INVALID},
    {"flags of 1", {"00-" T "-" P "-1"}, 1, {0}, 0, INVALID},
    {"bad separator after version", {"00_" T "-" P "-01"}, 1, {0}, 0, INVALID},
    {"bad separator after trace-id", {"00-" T "_" P "-01"}, 1, {0}, 0, INVALID},
    {"bad separator after parent-id", {"00-" T "-" P ".01"}, 1, {0}, 0, INVALID},
    {"non-hex in trace-id", {"00-4bf92f3577b34da6a3ce929d0e0e473g-" P "-01"}, 1, {0}, 0, INVALID},
    {"non-hex in parent-id", {"00-" T "-00f067aa0ba902b.-01"}, 1, {0}, 0, INVALID},
    {"non-hex in flags", {"00-" T "-" P "-.0"}, 1, {0}, 0, INVALID},
    {"inner space", {"00- " T "-" P "-01"}, 1, {0}, 0, INVALID},
    {"two traceparent headers", {TP, TP}, 2, {0}, 0, INVALID},
    {"two headers, second empty", {TP, ""}, 2, {0}, 0, INVALID},
    {"comma: two values joined", {TP "," TP}, 1, {0}, 0, INVALID},
    {"comma in a future tail", {"cc-" T "-" P "-01-a,b"}, 1, {0}, 0, INVALID},

    /* tracestate, §3.3 */
    {"tracestate kept", {TP}, 1, {"foo=1,bar=2"}, 1, OK(1), "foo=1,bar=2"},
    {"tracestate without traceparent", {0}, 0, {"foo=1"}, 1, INVALID},
    {"tracestate with an invalid traceparent",
     {"00-00000000000000000000000000000000-" P "-01"},
     1,
     {"foo=1"},
     1,
     INVALID},
    {"tracestate with two traceparents", {TP, TP}, 2, {"foo=1"}, 1, INVALID},
    {"empty tracestate", {TP}, 1, {""}, 1, OK(1), ""},
    {"spaces and tabs around members",
     {TP},
     1,
     {"foo=1 \t , \t bar=2, \t baz=3"},
     1,
     OK(1),
     "foo=1,bar=2,baz=3"},
    {"ows at both ends", {TP}, 1, {"\t foo=1 \t"}, 1, OK(1), "foo=1"},
    {"empty members", {TP}, 1, {",,foo=1, ,\t,bar=2,"}, 1, OK(1), "foo=1,bar=2"},
    {"empty header first", {TP}, 1, {"", "foo=1"}, 2, OK(1), "foo=1"},
    {"empty header last", {TP}, 1, {"foo=1", ""}, 2, OK(1), "foo=1"},
    {"headers joined in order",
     {TP},
     1,
     {"foo=1,bar=2", "rojo=1,congo=2", "baz=3"},
     3,
     OK(1),
     "foo=1,bar=2,rojo=1,congo=2,baz=3"},
    {"future version keeps tracestate", {"cc-" T "-" P "-01-x"}, 1, {"foo=1"}, 1, OK(1), "foo=1"},
    {"multi-tenant keys",
     {TP},
     1,
     {"fw529a3039@dt=cHJveHk,1tenant@sys=1"},
     1,
     OK(1),
     "fw529a3039@dt=cHJveHk,1tenant@sys=1"},
    {"key of every allowed char",
     {TP},
     1,
     {"abcdefghijklmnopqrstuvwxyz0123456789_-*/=1,a0_-*/@z9_-*/=2"},
     1,
     OK(1),
     "abcdefghijklmnopqrstuvwxyz0123456789_-*/=1,a0_-*/@z9_-*/=2"},
    {"simple key starting with a digit", {TP}, 1, {"foo=1", "1foo=1"}, 2, OK(1), ""},
    {"key of 256", {TP}, 1, {"foo=1", R256("z") "=1"}, 2, OK(1), "foo=1," R256("z") "=1"},
    {"key of 257", {TP}, 1, {"foo=1", R256("z") "z=1"}, 2, OK(1), ""},
    {"tenant of 241, system of 14",
     {TP},
     1,
     {KEY241 "@" R8("s") R4("s") R2("s") "=1"},
     1,
     OK(1),
     KEY241 "@" R8("s") R4("s") R2("s") "=1"},
    {"tenant of 242", {TP}, 1, {"foo=1", KEY241 "t@v=1"}, 2, OK(1), ""},
    {"system of 15", {TP}, 1, {"foo=1", "t@" R8("v") R4("v") R2("v") "v=1"}, 2, OK(1), ""},
    {"uppercase key", {TP}, 1, {"foo=1,FOO=1"}, 1, OK(1), ""},
    {"dot in key", {TP}, 1, {"foo.bar=1"}, 1, OK(1), ""},
    {"space before '='", {TP}, 1, {"foo =1"}, 1, OK(1), ""},
    {"empty tenant", {TP}, 1, {"@foo=1,bar=2"}, 1, OK(1), ""},
    {"empty system", {TP}, 1, {"foo@=1,bar=2"}, 1, OK(1), ""},
    {"two '@'", {TP}, 1, {"foo@@bar=1,bar=2"}, 1, OK(1), ""},
    {"three parts", {TP}, 1, {"foo@bar@baz=1,bar=2"}, 1, OK(1), ""},
    {"system starting with a digit", {TP}, 1, {"foo@1bar=1"}, 1, OK(1), ""},
    {"member without '='", {TP}, 1, {"foo=1,bar"}, 1, OK(1), ""},
    {"'=' in value", {TP}, 1, {"foo=bar=baz"}, 1, OK(1), ""},
    {"',' in value splits it", {TP}, 1, {"foo=a,b"}, 1, OK(1), ""},
    {"empty value", {TP}, 1, {"foo=,bar=3"}, 1, OK(1), ""},
    {"trailing spaces are OWS", {TP}, 1, {"foo=bar   ,baz=1"}, 1, OK(1), "foo=bar,baz=1"},
    {"leading and inner spaces kept", {TP}, 1, {"foo= a b"}, 1, OK(1), "foo= a b"},
    {"tab in value", {TP}, 1, {"foo=a\tb"}, 1, OK(1), ""},
    {"non-ASCII in value", {TP}, 1, {"foo=caf\xc3\xa9"}, 1, OK(1), ""},
    {"every allowed value char", {TP}, 1, {"foo=" VALUE_OK}, 1, OK(1), "foo=" VALUE_OK},
    {"value of 256", {TP}, 1, {"k=" R256("x")}, 1, OK(1), "k=" R256("x")},
    {"value of 257", {TP}, 1, {"k=" R256("x") "x"}, 1, OK(1), ""},
    {"32 members",
     {TP},
     1,
     {M10("a") ",", M10("b") ",", M10("c") ",d1=1,d2=2"},
     3,
     OK(1),
     M10("a") "," M10("b") "," M10("c") ",d1=1,d2=2"},
    {"33 members", {TP}, 1, {M10("a"), M10("b"), M10("c"), "d1=1,d2=2,d3=3"}, 4, OK(1), ""},
    {"32 members and empty ones",
     {TP},
     1,
     {M10("a") ",,", M10("b"), M10("c") ",d1=1,d2=2"},
     3,
     OK(1),
     M10("a") "," M10("b") "," M10("c") ",d1=1,d2=2"},
    {"duplicated key", {TP}, 1, {"foo=1,foo=2"}, 1, OK(1), ""},
    {"duplicated key across headers", {TP}, 1, {"foo=1", "foo=1"}, 2, OK(1), ""},
    {"same tenant, other system", {TP}, 1, {"t@a=1,t@b=2"}, 1, OK(1), "t@a=1,t@b=2"},
    /* §3.3.1.5: 128-char members a, c, d and a 202-char b make 589 bytes:
     * b goes, as the only entry over 128. */
    {"oversize: long member removed first",
     {TP},
     1,
     {"a=" V126 ",b=" V200, "c=" V126 ",d=" V126},
     2,
     OK(1),
     "a=" V126 ",c=" V126 ",d=" V126},
    /* 202 + 202 + 128 + 2 = 534: removing the last long one is enough. */
    {"oversize: long members from the end, only as needed",
     {TP},
     1,
     {"a=" V126 ",b=" V200 ",c=" V200},
     1,
     OK(1),
     "a=" V126 ",b=" V200},
    /* Five of 128 are 644 bytes: the last two go. */
    {"oversize: then from the end",
     {TP},
     1,
     {"a=" V126 ",b=" V126 ",c=" V126 ",d=" V126 ",e=" V126},
     1,
     OK(1),
     "a=" V126 ",b=" V126 ",c=" V126},
    /* 3 * 128 + 125 + 3 commas = 512: fits exactly. */
    {"exactly 512 bytes kept",
     {TP},
     1,
     {"a=" V126 ",b=" V126 ",c=" V126 ",d=" V123},
     1,
     OK(1),
     "a=" V126 ",b=" V126 ",c=" V126 ",d=" V123},
    /* OWS is not propagated, so it does not count against the limit. */
    {"ows does not count",
     {TP},
     1,
     {"a=" V126 " , b=" V126 " ,\t c=" V126 " , d=" V123 "  "},
     1,
     OK(1),
     "a=" V126 ",b=" V126 ",c=" V126 ",d=" V123},
};

static void hex_of(char *out, const uint8_t *p, size_t n)
{
    gh_trace_hex(out, p, n);
}

static void test_table(void **state)
{
    size_t failed = 0;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct tc_case *c = &cases[i];
        gh_str tp[2], ts[4];
        struct gh_tracectx tc;
        char trace[33], parent[33];

        for (size_t j = 0; j < c->ntp; j++)
            tp[j] = gh_str_cstr(c->tp[j]);
        for (size_t j = 0; j < c->nts; j++)
            ts[j] = gh_str_cstr(c->ts[j]);
        /* Garbage in <tc> first: the parser must fill every field. */
        memset(&tc, 0xa5, sizeof(tc));
        gh_tracectx_parse(&tc, tp, c->ntp, ts, c->nts);
        hex_of(trace, tc.trace_id, 16);
        hex_of(parent, tc.parent_id, 8);

        bool ok =
            tc.valid == c->valid &&
            strcmp(trace, c->trace_id ? c->trace_id : "00000000000000000000000000000000") == 0 &&
            strcmp(parent, c->parent_id ? c->parent_id : "0000000000000000") == 0 &&
            tc.flags == c->flags && tc.state_len == strlen(c->state) &&
            memcmp(tc.state, c->state, tc.state_len) == 0 && tc.state[tc.state_len] == '\0';
        if (!ok) {
            failed++;
            print_error(
                "case %zu \"%s\": valid=%d trace=%s parent=%s flags=%02x state(%u)=\"%s\"\n", i,
                c->name, tc.valid, trace, parent, tc.flags, tc.state_len, tc.state);
        }
    }
    assert_int_equal(failed, 0);
    assert_true(sizeof(cases) / sizeof(cases[0]) >= 40);
}

/* A tracestate made of the longest members there are (key and value of 256
 * each, 32 of them: 16 KiB) is refused or trimmed without overflow. */
static void test_huge_tracestate(void **state)
{
    static char buf[32][520];
    gh_str tp = GH_STR_LIT(TP), ts[32];
    struct gh_tracectx tc;

    for (int i = 0; i < 32; i++) {
        int n = snprintf(buf[i], sizeof(buf[i]),
                         "%c%c" R128("k") R64("k") R32("k") R16("k") R8("k") R4("k")
                             R2("k") "=" R256("v"),
                         'a' + i / 26, 'a' + i % 26);
        ts[i] = gh_str_make(buf[i], (size_t)n);
    }
    gh_tracectx_parse(&tc, &tp, 1, ts, 32);
    assert_true(tc.valid);
    /* Every member is 513 bytes: none fits, all go. */
    assert_int_equal(tc.state_len, 0);
    assert_string_equal(tc.state, "");
}

static void test_format(void **state)
{
    static const uint8_t trace[16] = {0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6,
                                      0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36};
    static const uint8_t span[8] = {0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7};
    char out[GH_TRACEPARENT_LEN + 1];
    struct gh_tracectx tc;

    memset(out, 'x', sizeof(out));
    gh_traceparent_format(out, trace, span, GH_TRACE_FLAG_SAMPLED);
    assert_string_equal(out, TP);
    assert_int_equal(strlen(out), GH_TRACEPARENT_LEN);

    /* What we format, we parse back to the same context. */
    gh_str v = gh_str_make(out, GH_TRACEPARENT_LEN);
    gh_tracectx_parse(&tc, &v, 1, NULL, 0);
    assert_true(tc.valid);
    assert_memory_equal(tc.trace_id, trace, 16);
    assert_memory_equal(tc.parent_id, span, 8);
    assert_int_equal(tc.flags, 1);

    gh_traceparent_format(out, trace, span, 0xfe);
    assert_string_equal(out, "00-" T "-" P "-fe");

    char hex[5];
    gh_trace_hex(hex, (const uint8_t *)"\x00\xff", 2);
    assert_string_equal(hex, "00ff");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_huge_tracestate),
        cmocka_unit_test(test_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
