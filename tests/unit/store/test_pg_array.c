/* Tests of the COPY text builder in src/store/pg_array.c without a server:
 * every byte but the four specials goes through as it is, the specials are
 * escaped wherever they fall in a field (first, last, in runs, alone),
 * fields end with a tab and rows with a newline, and a buffer that grows
 * across many fields keeps what was written before. Each field is checked
 * against a byte-at-a-time reference of the format (PostgreSQL's COPY
 * text: backslash, tab, newline and carriage return escaped). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/pg_array.h"

/* The format, one byte at a time: what the builder must produce. */
static size_t reference(const char *s, size_t len, bool last, char *out)
{
    size_t o = 0;

    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (ch == '\\' || ch == '\t' || ch == '\n' || ch == '\r') {
            out[o++] = '\\';
            ch = ch == '\t' ? 't' : ch == '\n' ? 'n' : ch == '\r' ? 'r' : '\\';
        }
        out[o++] = ch;
    }
    out[o++] = last ? '\n' : '\t';
    return o;
}

static void test_fields_and_rows(void **state)
{
    struct gh_pg_array a = {0};
    const char *data;

    (void)state;
    gh_pg_copy_reset(&a);
    gh_pg_copy_text(&a, "plain", 5, false);
    gh_pg_copy_text(&a, "a\\b\tc\nd\re", 9, false);
    gh_pg_copy_text(&a, "", 0, false);
    gh_pg_copy_i64(&a, -42, true);
    gh_pg_copy_text(&a, "\\\\", 2, true);
    data = gh_pg_copy_data(&a);
    assert_non_null(data);
    static const char want[] = "plain\ta\\\\b\\tc\\nd\\re\t\t-42\n\\\\\\\\\n";
    assert_int_equal(a.len, sizeof(want) - 1);
    assert_memory_equal(data, want, a.len);
    gh_pg_array_free(&a);
}

/* Random fields rich in specials and high bytes, many of them, so the
 * buffer grows several times: the whole output equals the reference's. */
static void test_matches_the_reference(void **state)
{
    static const char alphabet[] = {'a',  'Z',  '0',  ' ',        '{',        '"',        '\\',
                                    '\t', '\n', '\r', (char)0xc3, (char)0xa9, (char)0xff, 0x01};
    struct gh_pg_array a = {0};
    size_t cap = 1 << 22, n = 0;
    char *want = malloc(cap), field[700];
    uint32_t x = 2463534242u;

    (void)state;
    assert_non_null(want);
    gh_pg_copy_reset(&a);
    for (int f = 0; f < 2000; f++) {
        size_t len = (size_t)(f * 37 % 700);
        bool last = f % 13 == 12;
        for (size_t i = 0; i < len; i++) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            /* Mostly long plain runs, as in audit bodies; sometimes dense specials. */
            field[i] = f % 5 == 0 ? alphabet[x % sizeof(alphabet)] : alphabet[x % 6];
        }
        assert_true(n + 2 * len + 1 <= cap);
        n += reference(field, len, last, want + n);
        gh_pg_copy_text(&a, field, len, last);
    }
    assert_non_null(gh_pg_copy_data(&a));
    assert_int_equal(a.len, n);
    assert_memory_equal(gh_pg_copy_data(&a), want, n);

    /* Reset keeps the buffer and starts over. */
    gh_pg_copy_reset(&a);
    gh_pg_copy_text(&a, "x\ty", 3, true);
    assert_int_equal(a.len, 5);
    assert_memory_equal(gh_pg_copy_data(&a), "x\\ty\n", 5);
    gh_pg_array_free(&a);
    free(want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fields_and_rows),
        cmocka_unit_test(test_matches_the_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
