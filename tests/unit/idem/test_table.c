/* Tests of src/idem/table.c: SET NX semantics with expiry, compare-and-set
 * and compare-and-delete by the claim's value, and both bounds (slots,
 * bytes) refusing with GH_IDEM_FULL rather than forgetting a record. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "idem/table.h"

static void digest_of(int i, uint8_t d[GH_IDEM_DIGEST])
{
    char k[32];
    snprintf(k, sizeof(k), "key-%d", i);
    assert_int_equal(gh_idem_digest("t", "r", k, strlen(k), d), 0);
}

static void test_claim_then_exists_until_expiry(void **state)
{
    struct gh_idem_table *t = gh_idem_table_new(1, 1u << 20);
    uint8_t d[GH_IDEM_DIGEST];
    char *old;
    size_t olen;
    uint64_t bytes;
    (void)state;

    assert_non_null(t);
    digest_of(1, d);
    assert_int_equal(gh_idem_table_claim(t, d, "first", 5, 0, 1000, 500, &old, &olen), GH_IDEM_NEW);
    assert_null(old);
    assert_int_equal(gh_idem_table_claim(t, d, "second", 6, 0, 1200, 500, &old, &olen),
                     GH_IDEM_EXISTS);
    assert_int_equal(olen, 5);
    assert_memory_equal(old, "first", 5);
    free(old);
    assert_int_equal(gh_idem_table_live(t, 1200, &bytes), 1);
    assert_int_equal(bytes, 5);
    /* Expired at 1500: the key is free again. */
    assert_int_equal(gh_idem_table_claim(t, d, "third", 5, 0, 1500, 500, &old, &olen), GH_IDEM_NEW);
    assert_int_equal(gh_idem_table_live(t, 1600, &bytes), 1);
    assert_int_equal(bytes, 5);
    gh_idem_table_free(t);
}

static void test_set_and_delete_compare_the_value(void **state)
{
    struct gh_idem_table *t = gh_idem_table_new(1, 1u << 20);
    uint8_t d[GH_IDEM_DIGEST];
    char *old;
    size_t olen;
    uint64_t bytes;
    (void)state;

    digest_of(2, d);
    assert_int_equal(gh_idem_table_claim(t, d, "mine", 4, 0, 1000, 100, &old, &olen), GH_IDEM_NEW);
    /* Another request's token: nothing happens. */
    assert_int_equal(gh_idem_table_set_if(t, d, "theirs", 6, "done", 4, 1010, 10000), 0);
    gh_idem_table_del_if(t, d, "theirs", 6);
    assert_int_equal(gh_idem_table_live(t, 1010, NULL), 1);
    /* Ours: replaced, with the new TTL (past the claim's). */
    assert_int_equal(gh_idem_table_set_if(t, d, "mine", 4, "done!", 5, 1010, 10000), 1);
    assert_int_equal(gh_idem_table_claim(t, d, "x", 1, 0, 5000, 100, &old, &olen), GH_IDEM_EXISTS);
    assert_memory_equal(old, "done!", 5);
    free(old);
    assert_int_equal(gh_idem_table_live(t, 5000, &bytes), 1);
    assert_int_equal(bytes, 5);
    /* A claim taken back frees the key and its bytes. */
    digest_of(3, d);
    assert_int_equal(gh_idem_table_claim(t, d, "c3", 2, 0, 5000, 100, &old, &olen), GH_IDEM_NEW);
    gh_idem_table_del_if(t, d, "c3", 2);
    assert_int_equal(gh_idem_table_live(t, 5000, &bytes), 1);
    assert_int_equal(bytes, 5);
    assert_int_equal(gh_idem_table_claim(t, d, "again", 5, 0, 5000, 100, &old, &olen), GH_IDEM_NEW);
    /* A claim that expired is not set any more: its answer is dropped. */
    assert_int_equal(gh_idem_table_set_if(t, d, "again", 5, "late", 4, 6000, 10000), 0);
    gh_idem_table_free(t);
}

static void test_full_windows_refuse(void **state)
{
    /* The smallest table: 64 shards of GH_IDEM_PROBE slots. Many more keys
     * than slots: some windows fill, and their claims are refused, never
     * recorded over a live one. */
    struct gh_idem_table *t = gh_idem_table_new(1, 1u << 30);
    size_t fulls = 0, news = 0;
    uint8_t d[GH_IDEM_DIGEST];
    char *old;
    size_t olen;
    (void)state;

    for (int i = 0; i < 64 * GH_IDEM_PROBE * 2; i++) {
        digest_of(100 + i, d);
        switch (gh_idem_table_claim(t, d, "v", 1, 0, 1000, 1000, &old, &olen)) {
        case GH_IDEM_NEW: news++; break;
        case GH_IDEM_FULL: fulls++; break;
        default: fail();
        }
    }
    assert_true(fulls > 0);
    assert_int_equal(news, gh_idem_table_live(t, 1000, NULL));
    assert_true(news <= 64 * GH_IDEM_PROBE);
    /* Every recorded key is still there. */
    for (int i = 0, seen = 0; i < 64 * GH_IDEM_PROBE * 2; i++) {
        digest_of(100 + i, d);
        if (gh_idem_table_claim(t, d, "w", 1, 0, 1500, 1000, &old, &olen) == GH_IDEM_EXISTS) {
            seen++;
            free(old);
        }
        if (i == 64 * GH_IDEM_PROBE * 2 - 1) assert_int_equal((size_t)seen, news);
    }
    /* Once expired, the windows take keys again. */
    digest_of(100, d);
    assert_int_equal(gh_idem_table_claim(t, d, "v", 1, 0, 2000, 1000, &old, &olen), GH_IDEM_NEW);
    gh_idem_table_free(t);
}

static void test_byte_bound_and_headroom(void **state)
{
    struct gh_idem_table *t = gh_idem_table_new(1, 1000);
    uint8_t a[GH_IDEM_DIGEST], b[GH_IDEM_DIGEST];
    char big[900], *old;
    size_t olen;
    uint64_t bytes;
    (void)state;

    memset(big, 'b', sizeof(big));
    digest_of(1, a);
    digest_of(2, b);
    /* The headroom for the answer must be free too. */
    assert_int_equal(gh_idem_table_claim(t, a, "c", 1, 1000, 0, 100, &old, &olen), GH_IDEM_FULL);
    assert_int_equal(gh_idem_table_claim(t, a, "c", 1, 900, 0, 100, &old, &olen), GH_IDEM_NEW);
    assert_int_equal(gh_idem_table_set_if(t, a, "c", 1, big, sizeof(big), 0, 100), 1);
    assert_int_equal(gh_idem_table_claim(t, b, "c", 1, 200, 0, 100, &old, &olen), GH_IDEM_FULL);
    /* An answer that would pass the bound is not kept. */
    assert_int_equal(gh_idem_table_claim(t, b, "c", 1, 0, 0, 100, &old, &olen), GH_IDEM_NEW);
    assert_int_equal(gh_idem_table_set_if(t, b, "c", 1, big, sizeof(big), 0, 100), 0);
    /* Expired values are swept when room is short, once a second. */
    gh_idem_table_del_if(t, b, "c", 1);
    assert_int_equal(gh_idem_table_claim(t, b, "c", 1, 500, 5000, 100, &old, &olen), GH_IDEM_NEW);
    assert_int_equal(gh_idem_table_live(t, 5000, &bytes), 1);
    assert_int_equal(bytes, 1);
    gh_idem_table_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_claim_then_exists_until_expiry),
        cmocka_unit_test(test_set_and_delete_compare_the_value),
        cmocka_unit_test(test_full_windows_refuse),
        cmocka_unit_test(test_byte_bound_and_headroom),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
