/* Tests of the COPY binary builder and the SQL quoting in
 * src/store/pg_array.c without a server (the PostgreSQL integration suites
 * send their output to a real one): the
 * bytes of a small input are checked one by one against the format
 * (PostgreSQL's "Binary Format" of COPY: signature, flags, header
 * extension, per row a 16-bit field count, per field a 32-bit length and
 * the bytes, a trailer of -1), and many random rows, with every byte value
 * but NUL and fields long enough for the buffer to grow several times, are
 * read back by an independent reader of the format and must come out
 * exactly as they went in. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/pg_array.h"

static const unsigned char header[19] = {'P', 'G', 'C', 'O', 'P', 'Y', '\n', 0xff, '\r', '\n',
                                         0,   0,   0,   0,   0,   0,   0,    0,    0};

static void test_exact_bytes(void **state)
{
    static const unsigned char row[] = {
        0, 3,                   /* three fields */
        0, 0, 0, 2, 'a',  '\n', /* text "a\n": nothing escaped */
        0, 0, 0, 8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, /* int8 -2 */
        0, 0, 0, 0,                                                 /* empty text */
    };
    struct gh_pg_array a = {0};
    const char *data;

    (void)state;
    gh_pg_copy_reset(&a);
    gh_pg_copy_row(&a, 3);
    gh_pg_copy_text(&a, "a\n", 2);
    gh_pg_copy_i64(&a, -2);
    gh_pg_copy_text(&a, "", 0);
    data = gh_pg_copy_end(&a);
    assert_non_null(data);
    assert_int_equal(a.len, sizeof(header) + sizeof(row) + 2);
    assert_memory_equal(data, header, sizeof(header));
    assert_memory_equal(data + sizeof(header), row, sizeof(row));
    assert_memory_equal(data + sizeof(header) + sizeof(row), "\xff\xff", 2);

    /* Reset keeps the allocation and starts over with the header. */
    gh_pg_copy_reset(&a);
    data = gh_pg_copy_end(&a);
    assert_int_equal(a.len, sizeof(header) + 2);
    assert_memory_equal(data, header, sizeof(header));
    gh_pg_array_free(&a);
}

/* The reader: a big-endian field of <n> bytes at <p>. */
static uint64_t get_be(const unsigned char *p, int n)
{
    uint64_t v = 0;

    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

#define ROWS   600
#define FIELDS 4

/* SQL text with quoted values (the audit append's script): every \ and '
 * doubled inside E'...', nothing else touched, whatever the bytes; the
 * buffer grows for a long value. The server reading them back is
 * test_append_ways (tests/unit/store/test_audit_store.c). */
static void test_sql_quote(void **state)
{
    struct gh_pg_array a = {0};
    char *big = malloc(20001), *want = malloc(40010);
    const char *out;
    size_t k = 0;

    (void)state;
    gh_pg_sql_reset(&a);
    gh_pg_sql_raw(&a, "SELECT ");
    gh_pg_sql_quote(&a, "it's \\ a \"chain\" {x}");
    gh_pg_sql_raw(&a, ", ");
    gh_pg_sql_quote(&a, "");
    gh_pg_sql_raw(&a, ", ");
    gh_pg_sql_quote(&a, "'; DROP TABLE audit_events; --\\");
    gh_pg_sql_raw(&a, ", ");
    gh_pg_sql_i64(&a, INT64_MIN);
    out = gh_pg_sql_end(&a);
    assert_non_null(out);
    assert_string_equal(out, "SELECT E'it''s \\\\ a \"chain\" {x}', E'', "
                             "E'''; DROP TABLE audit_events; --\\\\', -9223372036854775808");
    assert_int_equal(a.len, strlen(out));
    /* Quotes and backslashes, with bytes above 0x7f between. */
    for (int i = 0; i < 20000; i++)
        big[i] = i % 3 == 0 ? '\'' : i % 3 == 1 ? '\\' : (char)0xc3;
    big[20000] = '\0';
    want[k++] = 'E';
    want[k++] = '\'';
    for (int i = 0; i < 20000; i++) {
        if (big[i] == '\'' || big[i] == '\\') want[k++] = big[i];
        want[k++] = big[i];
    }
    want[k++] = '\'';
    want[k] = '\0';
    gh_pg_sql_reset(&a);
    gh_pg_sql_quote(&a, big);
    out = gh_pg_sql_end(&a);
    assert_non_null(out);
    assert_string_equal(out, want);
    gh_pg_array_free(&a);
    free(big);
    free(want);
}

static void test_reads_back(void **state)
{
    struct gh_pg_array a = {0};
    static char text[ROWS][3][1500];
    static size_t len[ROWS][3];
    static int64_t num[ROWS];
    const unsigned char *p, *end;
    uint32_t x = 2463534242u;

    (void)state;
    gh_pg_copy_reset(&a);
    for (int r = 0; r < ROWS; r++) {
        for (int f = 0; f < 3; f++) {
            len[r][f] = (size_t)((r * 131 + f * 977) % 1500);
            for (size_t i = 0; i < len[r][f]; i++) {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                text[r][f][i] = (char)(1 + x % 255); /* every byte but NUL */
            }
        }
        num[r] = (int64_t)((uint64_t)x * 0x9e3779b97f4a7c15u) ^ (r % 2 ? INT64_MIN : 0);
        gh_pg_copy_row(&a, FIELDS);
        gh_pg_copy_text(&a, text[r][0], len[r][0]);
        gh_pg_copy_i64(&a, num[r]);
        gh_pg_copy_text(&a, text[r][1], len[r][1]);
        gh_pg_copy_text(&a, text[r][2], len[r][2]);
    }
    p = (const unsigned char *)gh_pg_copy_end(&a);
    assert_non_null(p);
    end = p + a.len;
    assert_memory_equal(p, header, sizeof(header));
    p += sizeof(header);
    for (int r = 0; r < ROWS; r++) {
        assert_true(end - p >= 2);
        assert_int_equal(get_be(p, 2), FIELDS);
        p += 2;
        for (int f = 0; f < FIELDS; f++) {
            uint64_t n;
            assert_true(end - p >= 4);
            n = get_be(p, 4);
            p += 4;
            assert_true((uint64_t)(end - p) >= n);
            if (f == 1) {
                assert_int_equal(n, 8);
                assert_true((int64_t)get_be(p, 8) == num[r]);
            } else {
                int k = f == 0 ? 0 : f - 1;
                assert_int_equal(n, len[r][k]);
                assert_memory_equal(p, text[r][k], n);
            }
            p += n;
        }
    }
    assert_int_equal(end - p, 2);
    assert_int_equal(get_be(p, 2), 0xffff);
    gh_pg_array_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_bytes),
        cmocka_unit_test(test_sql_quote),
        cmocka_unit_test(test_reads_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
