/* Tests of src/hooks/sign.c: the Standard Webhooks specification's
 * published example, key encodings, Ed25519 against RFC 8032. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "hooks/sign.h"

/* From the Standard Webhooks specification 1.0 (spec/standard-webhooks.md,
 * "Signature scheme"): this secret, id, timestamp and body sign to the
 * value below. Checked independently with Python's hmac module. */
#define SPEC_SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define SPEC_ID     "msg_p5jXN8AQM9LWM0D4loKWxJek"
#define SPEC_TS     1614265330
#define SPEC_BODY   "{\"test\": 2432232314}"
#define SPEC_SIG    "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

static void test_spec_example(void **state)
{
    uint8_t key[GH_HOOKS_KEY_MAX];
    size_t len;
    char sig[GH_HOOKS_SIG_MAX];

    assert_int_equal(gh_hooks_secret_decode(SPEC_SECRET, key, &len), 0);
    assert_int_equal(len, 24);
    assert_int_equal(gh_hooks_sign_v1(key, len, SPEC_ID, SPEC_TS, SPEC_BODY, strlen(SPEC_BODY), sig,
                                      sizeof(sig)),
                     0);
    assert_string_equal(sig, SPEC_SIG);
    /* A bare base64 key (no prefix) is the same key. */
    assert_int_equal(gh_hooks_secret_decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", key, &len), 0);
    assert_int_equal(len, 24);
    /* One byte of the body changed: another signature. */
    assert_int_equal(gh_hooks_sign_v1(key, len, SPEC_ID, SPEC_TS, "{\"test\": 2432232315}",
                                      strlen(SPEC_BODY), sig, sizeof(sig)),
                     0);
    assert_string_not_equal(sig, SPEC_SIG);
    /* Too small a buffer is an error, not a clipped signature. */
    assert_int_not_equal(
        gh_hooks_sign_v1(key, len, SPEC_ID, SPEC_TS, SPEC_BODY, strlen(SPEC_BODY), sig, 20), 0);
}

static void test_secret_decode_refusals(void **state)
{
    static const char *const bad[] = {
        "",
        "whsec_",
        "whsec_abc",                              /* not a multiple of 4 */
        "whsec_AAAAAAAAAAAAAAAAAAAA",             /* 15 bytes: too short */
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLa!w", /* not base64 */
        NULL,
    };
    uint8_t key[GH_HOOKS_KEY_MAX];
    size_t len;

    for (size_t i = 0; bad[i]; i++)
        assert_int_not_equal(gh_hooks_secret_decode(bad[i], key, &len), 0);
}

static void test_key_roundtrip(void **state)
{
    uint8_t key[GH_HOOKS_KEY_LEN], back[GH_HOOKS_KEY_MAX];
    char text[GH_HOOKS_KEY_TEXT_MAX];
    size_t len;

    assert_int_equal(gh_hooks_key_random(key), 0);
    assert_int_equal(gh_hooks_key_encode(GH_HOOKS_KEY_SECRET, key, sizeof(key), text, sizeof(text)),
                     0);
    assert_memory_equal(text, "whsec_", 6);
    assert_int_equal(strlen(text), 6 + 44);
    assert_int_equal(gh_hooks_secret_decode(text, back, &len), 0);
    assert_int_equal(len, GH_HOOKS_KEY_LEN);
    assert_memory_equal(back, key, len);
    assert_int_equal(gh_hooks_key_encode(GH_HOOKS_KEY_PUBLIC, key, sizeof(key), text, sizeof(text)),
                     0);
    assert_memory_equal(text, "whpk_", 5);
    assert_int_equal(gh_hooks_key_encode(GH_HOOKS_KEY_PRIVATE, key, sizeof(key), text, 20), -1);
}

static void hex(const char *s, uint8_t *out)
{
    for (size_t i = 0; s[2 * i]; i++)
        sscanf(s + 2 * i, "%2hhx", &out[i]);
}

/* RFC 8032 §7.1, TEST 1: the public key of the seed; then v1a signatures
 * verify with that public key over id.ts.body, and only over it. */
static void test_ed25519(void **state)
{
    uint8_t seed[32], pub[32], want[32], sig[64];
    char out[GH_HOOKS_SIG_MAX];
    const char *content = SPEC_ID ".1614265330." SPEC_BODY;

    hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60", seed);
    hex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", want);
    assert_int_equal(gh_hooks_ed25519_public(seed, pub), 0);
    assert_memory_equal(pub, want, 32);

    assert_int_equal(
        gh_hooks_sign_v1a(seed, SPEC_ID, SPEC_TS, SPEC_BODY, strlen(SPEC_BODY), out, sizeof(out)),
        0);
    assert_memory_equal(out, "v1a,", 4);
    assert_int_equal(strlen(out), 4 + 88);
    assert_int_equal(EVP_DecodeBlock(sig, (const unsigned char *)out + 4, 88), 66);

    EVP_PKEY *pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, 32);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestVerifyInit(md, NULL, NULL, NULL, pk), 1);
    assert_int_equal(EVP_DigestVerify(md, sig, 64, (const unsigned char *)content, strlen(content)),
                     1);
    EVP_MD_CTX_free(md);
    md = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestVerifyInit(md, NULL, NULL, NULL, pk), 1);
    assert_int_not_equal(EVP_DigestVerify(md, sig, 64, (const unsigned char *)content, 10), 1);
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(pk);
}

static void test_msg_id(void **state)
{
    char a[GH_HOOKS_MSG_ID_SIZE], b[GH_HOOKS_MSG_ID_SIZE];

    assert_int_equal(gh_hooks_msg_id(a, sizeof(a)), 0);
    assert_int_equal(gh_hooks_msg_id(b, sizeof(b)), 0);
    assert_memory_equal(a, "msg_", 4);
    assert_int_equal(strlen(a), 4 + GH_HOOKS_MSG_ID_RAND);
    assert_string_not_equal(a, b);
    assert_int_not_equal(gh_hooks_msg_id(a, 10), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_example),  cmocka_unit_test(test_secret_decode_refusals),
        cmocka_unit_test(test_key_roundtrip), cmocka_unit_test(test_ed25519),
        cmocka_unit_test(test_msg_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
