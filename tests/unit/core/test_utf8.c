/* core/utf8.h, the one UTF-8 check (RFC 3629), and the JSON writer's use of
 * it: a sequence that is not UTF-8 (a surrogate's encoding, an overlong
 * form) must never reach an access log line or an error body as it came,
 * or the line is not valid JSON text for a strict reader. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/jsonw.h"
#include "core/utf8.h"

struct seq_case {
    const char *bytes;
    size_t len;
    size_t want; /* gh_utf8_seq at the first byte */
};

#define CASE(lit, w)                                                                               \
    {                                                                                              \
        lit, sizeof(lit) - 1, w                                                                    \
    }

static const struct seq_case seq_cases[] = {
    CASE("a", 1),
    CASE("\x7f", 1),
    CASE("\xc2\x80", 2),         /* U+0080, the first of two bytes */
    CASE("\xdf\xbf", 2),         /* U+07FF */
    CASE("\xe0\xa0\x80", 3),     /* U+0800 */
    CASE("\xed\x9f\xbf", 3),     /* U+D7FF, the last before the surrogates */
    CASE("\xee\x80\x80", 3),     /* U+E000 */
    CASE("\xef\xbf\xbf", 3),     /* U+FFFF */
    CASE("\xf0\x90\x80\x80", 4), /* U+10000 */
    CASE("\xf4\x8f\xbf\xbf", 4), /* U+10FFFF, the last code point */
    CASE("\x80", 0),             /* a continuation byte alone */
    CASE("\xc0\x80", 0),         /* overlong NUL */
    CASE("\xc1\xbf", 0),         /* overlong */
    CASE("\xe0\x80\x80", 0),     /* overlong three */
    CASE("\xe0\x9f\xbf", 0),     /* overlong three, at the edge */
    CASE("\xed\xa0\x80", 0),     /* U+D800, a surrogate */
    CASE("\xed\xbf\xbf", 0),     /* U+DFFF */
    CASE("\xf0\x80\x80\x80", 0), /* overlong four */
    CASE("\xf0\x8f\xbf\xbf", 0), /* overlong four, at the edge */
    CASE("\xf4\x90\x80\x80", 0), /* U+110000 */
    CASE("\xf5\x80\x80\x80", 0), /* no such lead byte */
    CASE("\xff", 0),
    CASE("\xc3", 0),             /* cut short */
    CASE("\xe2\x82", 0),         /* cut short */
    CASE("\xf0\x9f\x98", 0),     /* cut short */
    CASE("\xe2\x28\xa1", 0),     /* a second byte that is no continuation */
    CASE("\xf0\x9f\x98\x28", 0), /* a fourth byte that is no continuation */
};

static void test_sequences(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(seq_cases) / sizeof(seq_cases[0]); i++) {
        const struct seq_case *c = &seq_cases[i];
        size_t got = gh_utf8_seq((const unsigned char *)c->bytes, c->len);
        if (got != c->want) fail_msg("case %zu: %zu, want %zu", i, got, c->want);
        assert_int_equal(gh_utf8_valid(c->bytes, c->len), c->want == c->len);
    }
}

static void test_strings(void **state)
{
    (void)state;
    assert_true(gh_utf8_valid("", 0));
    assert_true(gh_utf8_valid("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14));
    assert_true(gh_utf8_valid("a\0b", 3)); /* NUL is text; callers refuse it apart */
    assert_false(gh_utf8_valid("caf\xc3", 4));
    assert_false(gh_utf8_valid("ok\xed\xa0\x80ok", 7));
    /* A valid sequence is not read past the length given. */
    assert_false(gh_utf8_valid("\xe2\x82\xac", 2));
}

static const char *json_of(const char *s, size_t n, char *buf, size_t cap)
{
    struct gh_jsonw w;

    gh_jsonw_init(&w, buf, cap - 1);
    gh_jsonw_str(&w, gh_str_make(s, n));
    assert_false(w.overflow);
    buf[w.len] = '\0';
    return buf;
}

static void test_json_writer(void **state)
{
    char buf[128];

    (void)state;
    assert_string_equal(json_of("caf\xc3\xa9", 5, buf, sizeof(buf)), "\"caf\xc3\xa9\"");
    assert_string_equal(json_of("\xf0\x9f\x98\x80", 4, buf, sizeof(buf)), "\"\xf0\x9f\x98\x80\"");
    assert_string_equal(json_of("q\"\\\n\x01", 5, buf, sizeof(buf)), "\"q\\\"\\\\\\n\\u0001\"");
    /* Not UTF-8: each byte as \u00XX, so the line stays valid JSON text.
     * A surrogate's encoding went through as it came before (ed a0 80). */
    assert_string_equal(json_of("\xed\xa0\x80", 3, buf, sizeof(buf)), "\"\\u00ed\\u00a0\\u0080\"");
    assert_string_equal(json_of("\xc0\xaf", 2, buf, sizeof(buf)), "\"\\u00c0\\u00af\"");
    assert_string_equal(json_of("a\xff", 2, buf, sizeof(buf)), "\"a\\u00ff\"");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sequences),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_json_writer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
