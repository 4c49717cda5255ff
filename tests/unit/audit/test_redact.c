/* Tests of src/audit/redact.c: each redaction rule with values it must catch
 * and values it must let through (Luhn-failing numbers among them), the
 * params elements, and query-string decoding. One table row per case. */
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

static const struct {
    const char *name, *value, *rule; /* rule NULL: recorded (hash + prefix) */
} cases[] = {
    /* by name: exact (ASCII case-insensitive, '-' as '_') or containing */
    {"password", "x", "name"},
    {"PASSWORD", "x", "name"},
    {"passwd", "x", "name"},
    {"pwd", "x", "name"},
    {"key", "x", "name"},
    {"api_key", "x", "name"},
    {"Api-Key", "x", "name"},
    {"apikey", "x", "name"},
    {"authorization", "x", "name"},
    {"auth", "x", "name"},
    {"cookie", "x", "name"},
    {"session", "x", "name"},
    {"credentials", "x", "name"},
    {"private_key", "x", "name"},
    {"client-secret", "x", "name"},
    {"new_password2", "x", "name"},
    {"xTokenX", "x", "name"},
    {"my_secret_value", "x", "name"},
    {"monkey", "x", NULL},   /* contains "key", which is only an exact name */
    {"author", "x", NULL},   /* not "auth" */
    {"sessions", "x", NULL}, /* not "session" */
    {"q", "x", NULL},
    /* bearer */
    {"h", "Bearer abc.def", "bearer"},
    {"h", "bearer xyz", "bearer"},
    {"h", "Bearerxyz", NULL},
    {"h", "a Bearer xyz", NULL},
    /* jwt */
    {"t", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln", "jwt"},
    {"t", "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.", "jwt"},
    {"t", "prefix eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln suffix", "jwt"},
    {"t", "eyJhbGciOiJIUzI1NiJ9..c2ln", NULL},           /* empty payload */
    {"t", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0", NULL}, /* two parts */
    {"t", "abc.def.ghi", NULL},
    /* gatehouse keys: gh_ + 16 base62 + _ + 43 base62 */
    {"k", "gh_AbCdEfGh12345678_0123456789abcdefghijABCDEFGHIJ0123456789abc", "gatehouse_key"},
    {"k", "x=gh_AbCdEfGh12345678_0123456789abcdefghijABCDEFGHIJ0123456789abc;", "gatehouse_key"},
    {"k", "gh_AbCdEfGh1234567_0123456789abcdefghijABCDEFGHIJ0123456789abcd", NULL},
    {"k", "gh_AbCdEfGh12345678_0123456789abcdefghijABCDEFGHIJ0123456789ab", NULL},
    {"k", "gh_AbCdEfGh12345678-0123456789abcdefghijABCDEFGHIJ0123456789abc", NULL},
    /* email */
    {"e", "alice@example.com", "email"},
    {"e", "write to a.b+c@mail.example.org.", "email"},
    {"e", "x@y.io", "email"},
    {"e", "alice@example", NULL},
    {"e", "alice@example.c", NULL},
    {"e", "@example.com", NULL},
    {"e", "alice@.com", NULL},
    {"e", "alice@example.c0m", NULL},
    /* card: 13-19 digits, single spaces or dashes, Luhn */
    {"c", "4111111111111111", "card"},
    {"c", "4111 1111 1111 1111", "card"},
    {"c", "4111-1111-1111-1111", "card"},
    {"c", "card: 5500005555555559, exp 12/30", "card"},
    {"c", "378282246310005", "card"}, /* Amex, 15 digits */
    {"c", "4222222222222", "card"},   /* 13 digits */
    {"c", "6011000990139424", "card"},
    {"c", "4111111111111112", NULL},     /* Luhn fails */
    {"c", "4111 1111 1111 1112", NULL},  /* Luhn fails */
    {"c", "378282246310006", NULL},      /* Luhn fails */
    {"c", "411111111111", NULL},         /* 12 digits, Luhn ok */
    {"c", "41111111111111111111", NULL}, /* 20 digits */
    {"c", "4111  1111 1111 1111", NULL}, /* two spaces end the run */
    {"c", "2026-11-22", NULL},
    {"c", "", NULL},
    /* the name wins over the value's rule */
    {"token", "alice@example.com", "name"},
};

static void test_rules(void **state)
{
    size_t bad = 0;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *got =
            gh_audit_redaction(gh_str_cstr(cases[i].name), gh_str_cstr(cases[i].value));
        if ((got == NULL) != (cases[i].rule == NULL) ||
            (got != NULL && strcmp(got, cases[i].rule) != 0)) {
            fprintf(stderr, "case %zu (%s=%s): got %s, want %s\n", i, cases[i].name, cases[i].value,
                    got ? got : "(none)", cases[i].rule ? cases[i].rule : "(none)");
            bad++;
        }
    }
    assert_int_equal(bad, 0);
}

/* Every case as a param: a redacted one has no hash, no prefix and no trace
 * of its value; a recorded one has both. */
static void test_params_elements(void **state)
{
    struct gh_audit_event ev;
    uint8_t rnd[10] = {0};

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_error_t e;
        json_t *doc, *el;

        gh_audit_event_init(&ev, 1, rnd);
        gh_audit_params_add(&ev, gh_str_cstr(cases[i].name), gh_str_cstr(cases[i].value), 2);
        doc = json_loadb(ev.params, ev.params_len, 0, &e);
        assert_non_null(doc);
        el = json_array_get(doc, 0);
        assert_string_equal(json_string_value(json_object_get(el, "name")), cases[i].name);
        if (cases[i].rule != NULL) {
            assert_int_equal(json_object_size(el), 2);
            assert_string_equal(json_string_value(json_object_get(el, "redacted")), cases[i].rule);
            if (strlen(cases[i].value) > 3) assert_null(strstr(ev.params, cases[i].value));
        } else {
            assert_int_equal(json_object_size(el), 3);
            assert_int_equal(strlen(json_string_value(json_object_get(el, "sha256"))), 64);
        }
        json_decref(doc);
    }
}

static void test_prefix(void **state)
{
    static const struct {
        const char *value;
        unsigned n;
        const char *prefix;
    } rows[] = {
        {"abcdefgh", 4, "abcd"},
        {"abcdefg", 4, ""}, /* shorter than 2N */
        {"abcdefgh", 0, ""},
        {"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", 2, "\xc3\xa9\xc3\xa9"},
        {"ab\"\\cdefgh", 4, "ab\\\"\\\\"},
        {"a", 1000, ""},
    };
    struct gh_audit_event ev;
    uint8_t rnd[10] = {0};
    char want[128];

    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        gh_audit_event_init(&ev, 1, rnd);
        gh_audit_params_add(&ev, GH_STR_LIT("q"), gh_str_cstr(rows[i].value), rows[i].n);
        snprintf(want, sizeof(want), "\"prefix\":\"%s\"}]", rows[i].prefix);
        if (strstr(ev.params, want) == NULL) fail_msg("row %zu: %s", i, ev.params);
    }
    /* sha256("abc"), FIPS 180-2 appendix B.1 */
    gh_audit_event_init(&ev, 1, rnd);
    gh_audit_params_add(&ev, GH_STR_LIT("q"), GH_STR_LIT("abc"), 4);
    assert_non_null(
        strstr(ev.params, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
}

static void test_query(void **state)
{
    struct gh_audit_event ev;
    uint8_t rnd[10] = {0};
    json_error_t e;
    json_t *doc;
    char longq[GH_AUDIT_QUERY_VALUE_MAX + 64];

    gh_audit_event_init(&ev, 1, rnd);
    gh_audit_params_from_query(&ev,
                               GH_STR_LIT("a=1&&b&c=x%3dy&pass%77ord=hunter2&e=bob%40example.com"
                                          "&d=%zz%4&card=4111+1111+1111+1111&=v"),
                               1);
    doc = json_loadb(ev.params, ev.params_len, 0, &e);
    assert_non_null(doc);
    assert_int_equal(json_array_size(doc), 8);
    assert_string_equal(json_string_value(json_object_get(json_array_get(doc, 1), "name")), "b");
    assert_string_equal(json_string_value(json_object_get(json_array_get(doc, 2), "prefix")), "x");
    assert_string_equal(json_string_value(json_object_get(json_array_get(doc, 3), "name")),
                        "password");
    assert_string_equal(json_string_value(json_object_get(json_array_get(doc, 3), "redacted")),
                        "name");
    assert_string_equal(json_string_value(json_object_get(json_array_get(doc, 4), "redacted")),
                        "email");
    assert_string_equal(json_string_value(json_object_get(json_array_get(doc, 5), "prefix")), "%");
    assert_string_equal(json_string_value(json_object_get(json_array_get(doc, 6), "redacted")),
                        "card");
    assert_string_equal(json_string_value(json_object_get(json_array_get(doc, 7), "name")), "");
    json_decref(doc);
    assert_null(strstr(ev.params, "hunter2"));

    /* A value too long to scan whole is not recorded. */
    memcpy(longq, "big=", 4);
    memset(longq + 4, 'a', sizeof(longq) - 5);
    longq[sizeof(longq) - 1] = '\0';
    gh_audit_event_init(&ev, 1, rnd);
    gh_audit_params_from_query(&ev, gh_str_cstr(longq), 4);
    assert_string_equal(ev.params, "[{\"name\":\"big\",\"redacted\":\"too_long\"}]");
}

/* A secret in a parameter's name (a key sent as "?gh_...", "x=1&gh_...=1",
 * a token as a form's only field, a card number): neither the name nor the
 * value is written, and the rule says what the name held. */
static void test_secret_names(void **state)
{
    static const struct {
        const char *query, *want;
    } names[] = {
        {"gh_AbCdEfGh12345678_0123456789abcdefghijABCDEFGHIJ0123456789abc",
         "[{\"name\":\"\",\"redacted\":\"name_gatehouse_key\"}]"},
        {"x=1&gh_AbCdEfGh12345678_0123456789abcdefghijABCDEFGHIJ0123456789abc=1",
         NULL /* x is kept, the second is redacted: checked below */},
        {"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln",
         "[{\"name\":\"\",\"redacted\":\"name_jwt\"}]"},
        {"Bearer%20abc=", "[{\"name\":\"\",\"redacted\":\"name_bearer\"}]"},
        {"bob%40example.com=1", "[{\"name\":\"\",\"redacted\":\"name_email\"}]"},
        {"4111111111111111", "[{\"name\":\"\",\"redacted\":\"name_card\"}]"},
    };
    struct gh_audit_event ev;
    uint8_t rnd[10] = {0};

    (void)state;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        gh_audit_event_init(&ev, 1, rnd);
        gh_audit_params_from_query(&ev, gh_str_cstr(names[i].query), 4);
        if (names[i].want != NULL && strcmp(ev.params, names[i].want) != 0)
            fail_msg("%s: %s", names[i].query, ev.params);
        assert_null(strstr(ev.params, "gh_AbCd"));
        assert_null(strstr(ev.params, "eyJ"));
        assert_null(strstr(ev.params, "example.com"));
        assert_null(strstr(ev.params, "4111"));
    }
    gh_audit_event_init(&ev, 1, rnd);
    gh_audit_params_from_query(&ev, gh_str_cstr(names[1].query), 4);
    assert_non_null(strstr(ev.params, "{\"name\":\"x\",\"sha256\":"));
    assert_non_null(strstr(ev.params, ",{\"name\":\"\",\"redacted\":\"name_gatehouse_key\"}]"));
    /* Through the body's path too (gh_audit_params_add: admin bodies, forms). */
    gh_audit_event_init(&ev, 1, rnd);
    gh_audit_params_add(
        &ev, GH_STR_LIT("gh_AbCdEfGh12345678_0123456789abcdefghijABCDEFGHIJ0123456789abc"),
        GH_STR_LIT(""), 4);
    assert_string_equal(ev.params, "[{\"name\":\"\",\"redacted\":\"name_gatehouse_key\"}]");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rules),        cmocka_unit_test(test_params_elements),
        cmocka_unit_test(test_prefix),       cmocka_unit_test(test_query),
        cmocka_unit_test(test_secret_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
