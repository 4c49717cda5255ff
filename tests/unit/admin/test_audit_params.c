/* Tests of src/admin/audit_params.h: query values (percent-decoding and
 * refusals), unknown and repeated parameters, times (unix ms and RFC 3339,
 * with the values Python's datetime gives for the same instants), and
 * cursors (round trip, refusal of anything else, digests that tell filter
 * sets apart). Table-driven. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "admin/audit_params.h"

static void test_query_get(void **state)
{
    static const struct {
        const char *q, *name;
        int rc;
        const char *value;
    } cases[] = {
        {"", "actor", 0, ""},
        {"limit=5", "actor", 0, ""},
        {"actor=key%3AAbC&limit=5", "actor", 1, "key:AbC"},
        {"limit=5&actor=key:AbC", "actor", 1, "key:AbC"},
        {"actor=", "actor", 1, ""},
        {"actor", "actor", 1, ""},
        {"actorx=1&actor=2", "actor", 1, "2"},
        {"actor=a+b%2Bc", "actor", 1, "a b+c"},
        {"&&actor=x&&", "actor", 1, "x"},
        {"actor=%e2%82%ac", "actor", 1, "\xe2\x82\xac"},
        {"actor=%", "actor", -1, NULL},
        {"actor=%4", "actor", -1, NULL},
        {"actor=%zz", "actor", -1, NULL},
        {"actor=%00", "actor", -1, NULL},
        {"actor=0123456789", "actor", -1, NULL}, /* longer than the 8 bytes given */
        {"actor=01234567", "actor", -1, NULL},
        {"actor=0123456", "actor", 1, "0123456"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[8];
        int rc = gh_audit_query_get(gh_str_cstr(cases[i].q), cases[i].name, out, sizeof(out));
        if (rc != cases[i].rc) fail_msg("%s: rc %d, want %d", cases[i].q, rc, cases[i].rc);
        if (rc >= 0 && strcmp(out, cases[i].value) != 0)
            fail_msg("%s: \"%s\", want \"%s\"", cases[i].q, out, cases[i].value);
    }
}

static void test_query_check(void **state)
{
    static const char *const names[] = {"limit", "cursor", "actor", NULL};
    static const struct {
        const char *q;
        bool ok;
        const char *bad;
    } cases[] = {
        {"", true, NULL},
        {"limit=1&cursor=x&actor=y", true, NULL},
        {"&limit=1&", true, NULL},
        {"limit=1&limit=2", false, "limit"},
        {"limit=1&tenant_id=x", false, "tenant_id"},
        {"Limit=1", false, "Limit"},
        {"=1", false, ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        gh_str bad = GH_STR_NULL;
        bool ok = gh_audit_query_check(gh_str_cstr(cases[i].q), names, &bad);
        if (ok != cases[i].ok) fail_msg("%s: %d", cases[i].q, ok);
        if (!ok && !gh_str_eq(bad, gh_str_cstr(cases[i].bad)))
            fail_msg("%s: bad \"%.*s\"", cases[i].q, (int)bad.len, bad.ptr);
    }
}

static void test_parse_time(void **state)
{
    /* Expected values from Python: int(datetime.fromisoformat(s).timestamp() * 1e6). */
    static const struct {
        const char *s;
        int rc;
        int64_t us;
    } cases[] = {
        {"0", 0, 0},
        {"1763782200000", 0, INT64_C(1763782200000000)},
        {"2025-11-22T03:30:00Z", 0, INT64_C(1763782200000000)},
        {"2025-11-22t03:30:00z", 0, INT64_C(1763782200000000)},
        {"2025-11-22 03:30:00Z", 0, INT64_C(1763782200000000)},
        {"2025-11-22T04:30:00+01:00", 0, INT64_C(1763782200000000)},
        {"2025-11-21T22:00:00-05:30", 0, INT64_C(1763782200000000)},
        {"2025-11-22T03:30:00.5Z", 0, INT64_C(1763782200500000)},
        {"2025-11-22T03:30:00.123456789Z", 0, INT64_C(1763782200123456)},
        {"2024-02-29T00:00:00Z", 0, INT64_C(1709164800000000)},
        {"1970-01-01T00:00:00Z", 0, 0},
        {"", -1, 0},
        {"1234567890123456", -1, 0}, /* 16 digits */
        {"-5", -1, 0},
        {"12ms", -1, 0},
        {"2025-11-22", -1, 0},
        {"2025-11-22T03:30:00", -1, 0}, /* no offset */
        {"2025-11-22T03:30Z", -1, 0},
        {"2025-13-01T00:00:00Z", -1, 0},
        {"2025-02-29T00:00:00Z", -1, 0},
        {"2025-11-31T00:00:00Z", -1, 0},
        {"2025-11-22T24:00:00Z", -1, 0},
        {"2025-11-22T03:60:00Z", -1, 0},
        {"2025-11-22T03:30:00.Z", -1, 0},
        {"2025-11-22T03:30:00+0100", -1, 0},
        {"2025-11-22T03:30:00Zjunk", -1, 0},
        {"1969-12-31T23:59:59Z", -1, 0},
        {"2025-11-22X03:30:00Z", -1, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t us = -1;
        int rc = gh_audit_parse_time(cases[i].s, &us);
        if (rc != cases[i].rc) fail_msg("\"%s\": rc %d, want %d", cases[i].s, rc, cases[i].rc);
        if (rc == 0 && us != cases[i].us)
            fail_msg("\"%s\": %lld, want %lld", cases[i].s, (long long)us, (long long)cases[i].us);
    }
}

static void test_cursor_round_trip(void **state)
{
    const char *f1[] = {"tn_a", NULL, "key.revoke"};
    const char *f2[] = {"tn_a", "key.revoke", NULL};
    const char *f3[] = {"tn_", "akey.revoke", NULL};
    struct gh_audit_cursor c = {.rowid = INT64_C(5000000123),
                                .time_us = INT64_C(1763782800123456),
                                .oldest_first = true},
                           d;
    char text[GH_AUDIT_CURSOR_MAX];
    uint8_t d2[GH_AUDIT_DIGEST_LEN], d3[GH_AUDIT_DIGEST_LEN];

    gh_audit_filter_digest(f1, 3, c.digest);
    gh_audit_filter_digest(f2, 3, d2);
    gh_audit_filter_digest(f3, 3, d3);
    assert_memory_not_equal(c.digest, d2, GH_AUDIT_DIGEST_LEN); /* position matters */
    assert_memory_not_equal(d2, d3, GH_AUDIT_DIGEST_LEN);       /* boundaries matter */
    gh_audit_cursor_encode(&c, text);
    for (const char *p = text; *p; p++)
        assert_true(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", *p));
    assert_int_equal(gh_audit_cursor_decode(text, &d), 0);
    assert_int_equal(d.rowid, c.rowid);
    assert_int_equal(d.time_us, c.time_us);
    assert_true(d.oldest_first);
    assert_memory_equal(d.digest, c.digest, GH_AUDIT_DIGEST_LEN);

    struct gh_audit_cp_cursor cp = {.chain = "tn_abc", .seq = 77}, cq;
    memcpy(cp.digest, d2, sizeof(cp.digest));
    gh_audit_cp_cursor_encode(&cp, text);
    assert_int_equal(gh_audit_cp_cursor_decode(text, &cq), 0);
    assert_string_equal(cq.chain, "tn_abc");
    assert_int_equal(cq.seq, 77);
    assert_memory_equal(cq.digest, d2, GH_AUDIT_DIGEST_LEN);
    /* A checkpoint cursor is not an event cursor, and the other way round. */
    assert_int_equal(gh_audit_cursor_decode(text, &d), -1);
    gh_audit_cursor_encode(&c, text);
    assert_int_equal(gh_audit_cp_cursor_decode(text, &cq), -1);
}

static void test_cursor_refused(void **state)
{
    static const char *const bad[] = {
        "",
        "x",
        "AAAA",
        "not a cursor",
        "AQEAAAAAAAAAAQAAAAAAAAAA=",           /* padding */
        "AgAAAAAAAAABAAAAAAAAAAAt",            /* v2 with a '-' in the chain: not an id */
        "AQAAAAAAAAAAAAAAAAAAAAAA",            /* rowid 0 */
        "AQAAAAAAAAAAAQAAAAAAAAAA",            /* layout 1 (no time): never released */
        "AwAAAAAAAAAAAf__________AAAAAAAAAAA", /* time_us < 0 */
        "AwAAAAAAAAAAAAAAAAAAAAAFAAAAAAAAAAA", /* rowid 0 */
        "AwIAAAAAAAAAAQAAAAAAAAAFAAAAAAAAAAA", /* unknown flag */
    };
    struct gh_audit_cursor c;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (gh_audit_cursor_decode(bad[i], &c) == 0) fail_msg("accepted \"%s\"", bad[i]);
    /* The same bytes with rowid 1 and time 5 are a cursor. */
    assert_int_equal(gh_audit_cursor_decode("AwAAAAAAAAAAAQAAAAAAAAAFAAAAAAAAAAA", &c), 0);
    assert_int_equal(c.rowid, 1);
    assert_int_equal(c.time_us, 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_query_get),      cmocka_unit_test(test_query_check),
        cmocka_unit_test(test_parse_time),     cmocka_unit_test(test_cursor_round_trip),
        cmocka_unit_test(test_cursor_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
