/* Tests of src/secrets/envelope.c: a sealed value opens under its data key
 * and place only; any changed byte, another (tenant, name) or another key
 * fails, and a failed open hands out no bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "secrets/envelope.h"

static const char VALUE[] = "the webhook signing secret";

struct sealed {
    uint8_t key[GH_ENVELOPE_KEY_LEN];
    uint8_t nonce[GH_ENVELOPE_NONCE_LEN];
    uint8_t ct[sizeof(VALUE) - 1 + GH_ENVELOPE_TAG_LEN];
};

static void seal(struct sealed *s)
{
    struct gh_err err = {0};

    for (size_t i = 0; i < sizeof(s->key); i++)
        s->key[i] = (uint8_t)(i * 7 + 1);
    assert_int_equal(gh_envelope_seal(s->key, "system", "webhook/a", VALUE, sizeof(VALUE) - 1,
                                      s->nonce, s->ct, &err),
                     GH_OK);
}

static int open_as(const struct sealed *s, const char *tenant, const char *name, char *out,
                   size_t *len)
{
    struct gh_err err = {0};
    int rc =
        gh_envelope_open(s->key, tenant, name, s->nonce, s->ct, sizeof(s->ct), out, 64, len, &err);

    if (rc != GH_OK) assert_null(strstr(err.msg, VALUE)); /* messages never carry the value */
    return rc;
}

static void test_round_trip(void **state)
{
    struct sealed s;
    char out[64];
    size_t len = 0;

    (void)state;
    seal(&s);
    assert_null(memmem(s.ct, sizeof(s.ct), VALUE, sizeof(VALUE) - 1));
    assert_int_equal(open_as(&s, "system", "webhook/a", out, &len), GH_OK);
    assert_int_equal(len, sizeof(VALUE) - 1);
    assert_memory_equal(out, VALUE, len);
}

static void test_nonce_is_fresh(void **state)
{
    struct sealed a, b;

    (void)state;
    seal(&a);
    seal(&b);
    assert_memory_not_equal(a.nonce, b.nonce, sizeof(a.nonce));
    assert_memory_not_equal(a.ct, b.ct, sizeof(a.ct));
}

/* Table: which byte of the sealed form is flipped. */
static void test_tamper(void **state)
{
    static const struct {
        const char *what;
        size_t field; /* 0 ciphertext, 1 tag (end of ct), 2 nonce, 3 key */
        size_t at;
    } cases[] = {
        {"first ciphertext byte", 0, 0},
        {"last ciphertext byte", 0, sizeof(VALUE) - 2},
        {"tag", 1, sizeof(VALUE) - 1 + 3},
        {"nonce", 2, 5},
        {"data key", 3, 31},
    };
    char out[64];
    size_t len;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct sealed s;
        seal(&s);
        if (cases[i].field <= 1)
            s.ct[cases[i].at] ^= 0x01;
        else if (cases[i].field == 2)
            s.nonce[cases[i].at] ^= 0x80;
        else
            s.key[cases[i].at] ^= 0x10;
        memset(out, 'x', sizeof(out));
        len = 99;
        if (open_as(&s, "system", "webhook/a", out, &len) == GH_OK)
            fail_msg("a changed %s still opens", cases[i].what);
        assert_int_equal(len, 0);
        assert_null(memmem(out, sizeof(out), VALUE, 8)); /* nothing unauthenticated handed out */
    }
}

static void test_other_place(void **state)
{
    struct sealed s;
    char out[64];
    size_t len;

    (void)state;
    seal(&s);
    assert_int_equal(open_as(&s, "system", "webhook/b", out, &len), GH_ERROR);
    assert_int_equal(open_as(&s, "tn_AAAAAAAAAAAAAAAAAAAA", "webhook/a", out, &len), GH_ERROR);
    /* The NUL separators keep "sys"+"temwebhook/a" apart from "system"+"webhook/a". */
    assert_int_equal(open_as(&s, "systemw", "ebhook/a", out, &len), GH_ERROR);
}

static void test_small_buffer(void **state)
{
    struct sealed s;
    struct gh_err err = {0};
    char out[8];
    size_t len;

    (void)state;
    seal(&s);
    assert_int_equal(gh_envelope_open(s.key, "system", "webhook/a", s.nonce, s.ct, sizeof(s.ct),
                                      out, sizeof(out), &len, &err),
                     GH_ERROR);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),   cmocka_unit_test(test_nonce_is_fresh),
        cmocka_unit_test(test_tamper),       cmocka_unit_test(test_other_place),
        cmocka_unit_test(test_small_buffer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
