/* Tests of src/hooks/inbound.c and src/hooks/replay.c: the published
 * examples of Standard Webhooks and GitHub, then one table per format
 * (valid, tampered, wrong secret, stale both ways, malformed headers,
 * several signatures, rotation), and the replay table's expiry and
 * capacity. Expected signatures are made here with OpenSSL's one-shot
 * HMAC(), apart from the code under test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>

#include "hooks/inbound.h"
#include "hooks/replay.h"

#define NOW 1614265330

/* The Standard Webhooks spec's example. */
#define SW_SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define SW_ID     "msg_p5jXN8AQM9LWM0D4loKWxJek"
#define SW_BODY   "{\"test\": 2432232314}"
#define SW_SIG    "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

/* Stripe's test secret style: the whole string is the key. */
#define ST_SECRET  "whsec_test_secret_for_stripe_0123"
#define ST_SECRET2 "whsec_rotated_secret_for_stripe_4567"
#define GH_SECRET  "It's a Secret to Everybody"
#define GH_SECRET2 "another secret for rotation"

/* gh_wh_verify with contexts keyed for <v> just for this call. */
static enum gh_wh_result vfy(const struct gh_wh_verifier *v, const struct gh_wh_headers *h,
                             gh_str body, int64_t now, struct gh_wh_verified *out)
{
    struct gh_wh_keyed k;
    enum gh_wh_result rc;
    assert_int_equal(gh_wh_keyed_init(&k, v), GH_OK);
    rc = gh_wh_verify(v, &k, h, body, now, out);
    /* The contexts stay usable: the same check again gives the same answer. */
    assert_int_equal(gh_wh_verify(v, &k, h, body, now, NULL), rc);
    gh_wh_keyed_release(&k);
    return rc;
}

static gh_str S(const char *s)
{
    return gh_str_cstr(s);
}

static void verifier(struct gh_wh_verifier *v, enum gh_wh_format f, const char *s1, const char *s2)
{
    const char *secrets[2] = {s1, s2};
    struct gh_err err;
    assert_int_equal(gh_wh_verifier_init(v, f, secrets, s2 ? 2 : 1, 300, &err), GH_OK);
}

static void hmac_of(const void *key, size_t keylen, const char *msg, unsigned char out[32])
{
    unsigned int n = 32;
    HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)msg, strlen(msg), out, &n);
}

static void hex_of(const unsigned char *m, char out[65])
{
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", m[i]);
}

/* "t=<ts>,v1=<hex>" signed with <secret> over "<ts>.<body>". */
static void stripe_header(const char *secret, long ts, const char *body, char *out, size_t cap)
{
    char msg[512], hex[65];
    unsigned char m[32];
    snprintf(msg, sizeof(msg), "%ld.%s", ts, body);
    hmac_of(secret, strlen(secret), msg, m);
    hex_of(m, hex);
    snprintf(out, cap, "t=%ld,v1=%s", ts, hex);
}

static void github_header(const char *secret, const char *body, char *out, size_t cap)
{
    char hex[65];
    unsigned char m[32];
    hmac_of(secret, strlen(secret), body, m);
    hex_of(m, hex);
    snprintf(out, cap, "sha256=%s", hex);
}

/* "v1,<base64>" for the spec's example secret over "<id>.<ts>.<body>". */
static void standard_header(const char *id, long ts, const char *body, char *out, size_t cap)
{
    static const char *b64 = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    unsigned char key[64], m[32];
    char msg[512];
    int klen = EVP_DecodeBlock(key, (const unsigned char *)b64, (int)strlen(b64));
    snprintf(msg, sizeof(msg), "%s.%ld.%s", id, ts, body);
    hmac_of(key, (size_t)klen, msg, m); /* 32 chars of base64: no padding, 24 bytes */
    memcpy(out, "v1,", 3);
    EVP_EncodeBlock((unsigned char *)out + 3, m, 32);
    (void)cap;
}

static void test_standard_spec_example(void **state)
{
    struct gh_wh_verifier v;
    struct gh_wh_headers h = {S(SW_ID), S("1614265330"), S(SW_SIG)};
    struct gh_wh_verified out;
    char mine[128];

    (void)state;
    standard_header(SW_ID, NOW, SW_BODY, mine, sizeof(mine));
    assert_string_equal(mine, SW_SIG); /* the helper agrees with the spec */
    verifier(&v, GH_WH_STANDARD, SW_SECRET, NULL);
    assert_int_equal(vfy(&v, &h, S(SW_BODY), NOW, &out), GH_WH_OK);
    assert_int_equal(out.key_len, 1 + strlen(SW_ID));
    assert_int_equal(out.timestamp, NOW);
    gh_wh_verifier_release(&v);
}

static void test_github_docs_example(void **state)
{
    struct gh_wh_verifier v;
    struct gh_wh_headers h = {
        S("72d3162e-cc78-11e3-81ab-4c9367dc0958"), GH_STR_NULL,
        S("sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17")};

    (void)state;
    verifier(&v, GH_WH_GITHUB, GH_SECRET, NULL);
    assert_int_equal(vfy(&v, &h, S("Hello, World!"), NOW, NULL), GH_WH_OK);
    /* Replay keys: the delivery id, and the body's MAC (the id is not signed). */
    {
        struct gh_wh_verified out;
        assert_int_equal(vfy(&v, &h, S("Hello, World!"), NOW, &out), GH_WH_OK);
        assert_int_equal(out.key_len, 1 + h.id.len);
        assert_int_equal(out.key2_len, 33);
    }
    /* No timestamp in the format: a delivery is never stale. */
    assert_int_equal(vfy(&v, &h, S("Hello, World!"), NOW + 86400 * 365, NULL), GH_WH_OK);
    gh_wh_verifier_release(&v);
}

struct vcase {
    const char *name;
    const char *id, *ts, *sig, *body;
    long now;
    enum gh_wh_result want;
};

static void run_cases(const struct gh_wh_verifier *v, const struct vcase *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct gh_wh_headers h = {S(c[i].id), S(c[i].ts), S(c[i].sig)};
        enum gh_wh_result got = vfy(v, &h, S(c[i].body), c[i].now, NULL);
        if (got != c[i].want) fail_msg("%s: got %d, want %d", c[i].name, got, c[i].want);
    }
}

static void test_standard_table(void **state)
{
    struct gh_wh_verifier v;
    char good[128], old[128], future[128], two[300], bad_b64[128], other[128];
    char overlong[3000];

    (void)state;
    standard_header(SW_ID, NOW, SW_BODY, good, sizeof(good));
    standard_header(SW_ID, NOW - 301, SW_BODY, old, sizeof(old));
    standard_header(SW_ID, NOW + 301, SW_BODY, future, sizeof(future));
    standard_header(SW_ID, NOW, "{\"other\": 1}", other, sizeof(other));
    snprintf(two, sizeof(two), "%s v2,ZmFrZQ== %s", other, good);
    snprintf(bad_b64, sizeof(bad_b64), "%s", good);
    bad_b64[5] = '*';
    memset(overlong, 'A', sizeof(overlong) - 1);
    overlong[sizeof(overlong) - 1] = '\0';
    memcpy(overlong, "v1,", 3);

    char tampered_sig[128];
    snprintf(tampered_sig, sizeof(tampered_sig), "%s", good);
    tampered_sig[10] = tampered_sig[10] == 'A' ? 'B' : 'A';

    const struct vcase cases[] = {
        {"valid", SW_ID, "1614265330", good, SW_BODY, NOW, GH_WH_OK},
        {"valid at tolerance", SW_ID, "1614265330", good, SW_BODY, NOW + 300, GH_WH_OK},
        {"tampered body", SW_ID, "1614265330", good, "{\"test\": 2432232315}", NOW,
         GH_WH_BAD_SIGNATURE},
        {"tampered signature", SW_ID, "1614265330", tampered_sig, SW_BODY, NOW,
         GH_WH_BAD_SIGNATURE},
        {"tampered id", "msg_other", "1614265330", good, SW_BODY, NOW, GH_WH_BAD_SIGNATURE},
        {"tampered timestamp", SW_ID, "1614265331", good, SW_BODY, NOW, GH_WH_BAD_SIGNATURE},
        {"stale past", SW_ID, "1614265029", old, SW_BODY, NOW, GH_WH_STALE},
        {"stale future", SW_ID, "1614265631", future, SW_BODY, NOW, GH_WH_STALE},
        {"no signature", SW_ID, "1614265330", "", SW_BODY, NOW, GH_WH_MISSING},
        {"no id", "", "1614265330", good, SW_BODY, NOW, GH_WH_MISSING},
        {"no timestamp", SW_ID, "", good, SW_BODY, NOW, GH_WH_MISSING},
        {"timestamp not digits", SW_ID, "16142653x0", good, SW_BODY, NOW, GH_WH_MALFORMED},
        {"timestamp signed", SW_ID, "+1614265330", good, SW_BODY, NOW, GH_WH_MALFORMED},
        {"timestamp overlong", SW_ID, "0001614265330", good, SW_BODY, NOW, GH_WH_MALFORMED},
        {"id with space", "msg 1", "1614265330", good, SW_BODY, NOW, GH_WH_MALFORMED},
        {"no comma", SW_ID, "1614265330", "v1g0hM9SsE", SW_BODY, NOW, GH_WH_MALFORMED},
        {"no version", SW_ID, "1614265330", ",g0hM9SsE", SW_BODY, NOW, GH_WH_MALFORMED},
        {"empty entry", SW_ID, "1614265330", "v1,abc  v1,def", SW_BODY, NOW, GH_WH_MALFORMED},
        {"bad base64", SW_ID, "1614265330", bad_b64, SW_BODY, NOW, GH_WH_MALFORMED},
        {"short mac", SW_ID, "1614265330", "v1,ZmFrZQ==", SW_BODY, NOW, GH_WH_MALFORMED},
        {"only other versions", SW_ID, "1614265330", "v2,ZmFrZQ== v3,abcd", SW_BODY, NOW,
         GH_WH_MALFORMED},
        {"short v1a", SW_ID, "1614265330", "v1a,ZmFrZQ==", SW_BODY, NOW, GH_WH_MALFORMED},
        {"overlong header", SW_ID, "1614265330", overlong, SW_BODY, NOW, GH_WH_MALFORMED},
        {"several, one valid", SW_ID, "1614265330", two, SW_BODY, NOW, GH_WH_OK},
    };
    verifier(&v, GH_WH_STANDARD, SW_SECRET, NULL);
    run_cases(&v, cases, sizeof(cases) / sizeof(cases[0]));
    gh_wh_verifier_release(&v);

    /* Wrong secret; then rotation: the old secret second. */
    verifier(&v, GH_WH_STANDARD, "whsec_c2Vjb25kIHNlY3JldCBmb3Igcm90YXRpb24=", NULL);
    run_cases(&v,
              &(struct vcase){"wrong secret", SW_ID, "1614265330", good, SW_BODY, NOW,
                              GH_WH_BAD_SIGNATURE},
              1);
    gh_wh_verifier_release(&v);
    verifier(&v, GH_WH_STANDARD, "whsec_c2Vjb25kIHNlY3JldCBmb3Igcm90YXRpb24=", SW_SECRET);
    run_cases(&v, &(struct vcase){"rotation", SW_ID, "1614265330", good, SW_BODY, NOW, GH_WH_OK},
              1);
    gh_wh_verifier_release(&v);
}

/* v1a: Ed25519 over "<id>.<ts>.<body>", checked with a whpk_ public key. */
static void test_standard_ed25519(void **state)
{
    EVP_PKEY *sk = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"),
             *other = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    unsigned char raw[32], sig[64];
    size_t rawlen = sizeof(raw), siglen = sizeof(sig);
    char pk[64] = "whpk_", entry[128] = "v1a,", msg[256], three[512], mixed[512], good_hmac[128];
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    struct gh_wh_verifier v;
    (void)state;

    assert_non_null(sk);
    assert_int_equal(EVP_PKEY_get_raw_public_key(sk, raw, &rawlen), 1);
    EVP_EncodeBlock((unsigned char *)pk + 5, raw, 32);
    snprintf(msg, sizeof(msg), "%s.%d.%s", SW_ID, NOW, SW_BODY);
    assert_int_equal(EVP_DigestSignInit(md, NULL, NULL, NULL, sk), 1);
    assert_int_equal(EVP_DigestSign(md, sig, &siglen, (unsigned char *)msg, strlen(msg)), 1);
    EVP_EncodeBlock((unsigned char *)entry + 4, sig, 64);
    snprintf(three, sizeof(three), "%s %s %s", entry, entry, entry);
    standard_header(SW_ID, NOW, SW_BODY, good_hmac, sizeof(good_hmac));
    snprintf(mixed, sizeof(mixed), "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= %s", entry);

    const struct vcase cases[] = {
        {"valid v1a", SW_ID, "1614265330", entry, SW_BODY, NOW, GH_WH_OK},
        {"v1a, tampered body", SW_ID, "1614265330", entry, "{}", NOW, GH_WH_BAD_SIGNATURE},
        {"v1a, other id", "msg_x", "1614265330", entry, SW_BODY, NOW, GH_WH_BAD_SIGNATURE},
        {"v1a stale", SW_ID, "1614265330", entry, SW_BODY, NOW + 301, GH_WH_STALE},
        {"bad v1 then good v1a", SW_ID, "1614265330", mixed, SW_BODY, NOW, GH_WH_OK},
        {"three v1a", SW_ID, "1614265330", three, SW_BODY, NOW, GH_WH_MALFORMED},
        {"v1 without an HMAC secret", SW_ID, "1614265330", good_hmac, SW_BODY, NOW,
         GH_WH_BAD_SIGNATURE},
    };
    verifier(&v, GH_WH_STANDARD, pk, NULL);
    assert_int_equal(v.npub, 1);
    assert_int_equal(v.nkeys, 0);
    run_cases(&v, cases, sizeof(cases) / sizeof(cases[0]));
    gh_wh_verifier_release(&v);

    /* An HMAC secret and a public key together; another key does not verify. */
    verifier(&v, GH_WH_STANDARD, SW_SECRET, pk);
    run_cases(
        &v, &(struct vcase){"hmac and ed", SW_ID, "1614265330", entry, SW_BODY, NOW, GH_WH_OK}, 1);
    run_cases(
        &v,
        &(struct vcase){"hmac and ed, v1", SW_ID, "1614265330", good_hmac, SW_BODY, NOW, GH_WH_OK},
        1);
    gh_wh_verifier_release(&v);
    rawlen = sizeof(raw);
    assert_int_equal(EVP_PKEY_get_raw_public_key(other, raw, &rawlen), 1);
    EVP_EncodeBlock((unsigned char *)pk + 5, raw, 32);
    verifier(&v, GH_WH_STANDARD, pk, NULL);
    run_cases(&v,
              &(struct vcase){"wrong public key", SW_ID, "1614265330", entry, SW_BODY, NOW,
                              GH_WH_BAD_SIGNATURE},
              1);
    gh_wh_verifier_release(&v);
    {
        const char *bad = "whpk_ZmFrZQ==";
        struct gh_err err;
        assert_int_equal(gh_wh_verifier_init(&v, GH_WH_STANDARD, &bad, 1, 300, &err), GH_ERROR);
    }
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(sk);
    EVP_PKEY_free(other);
}

static void test_standard_bad_secret(void **state)
{
    struct gh_wh_verifier v;
    const char *bad[] = {"whsec_not base64!"};
    struct gh_err err;
    (void)state;
    assert_int_equal(gh_wh_verifier_init(&v, GH_WH_STANDARD, bad, 1, 300, &err), GH_ERROR);
    assert_null(strstr(err.msg, "not base64!")); /* never shows the secret */
}

static void test_github_table(void **state)
{
    struct gh_wh_verifier v;
    char good[128], upper[128], tampered[128], other[128];
    (void)state;

    github_header(GH_SECRET, "{\"zen\":\"x\"}", good, sizeof(good));
    github_header(GH_SECRET2, "{\"zen\":\"x\"}", other, sizeof(other));
    snprintf(upper, sizeof(upper), "sha256=");
    for (size_t i = 7; good[i]; i++)
        upper[i] = (char)(good[i] >= 'a' && good[i] <= 'f' ? good[i] - 32 : good[i]);
    upper[strlen(good)] = '\0';
    snprintf(tampered, sizeof(tampered), "%s", good);
    tampered[20] = tampered[20] == '0' ? '1' : '0';
    const char *id = "72d3162e-cc78-11e3-81ab-4c9367dc0958";
    const struct vcase cases[] = {
        {"valid", id, "", good, "{\"zen\":\"x\"}", NOW, GH_WH_OK},
        {"upper-case hex", id, "", upper, "{\"zen\":\"x\"}", NOW, GH_WH_OK},
        {"tampered body", id, "", good, "{\"zen\":\"y\"}", NOW, GH_WH_BAD_SIGNATURE},
        {"tampered signature", id, "", tampered, "{\"zen\":\"x\"}", NOW, GH_WH_BAD_SIGNATURE},
        {"wrong secret", id, "", other, "{\"zen\":\"x\"}", NOW, GH_WH_BAD_SIGNATURE},
        {"no signature", id, "", "", "{\"zen\":\"x\"}", NOW, GH_WH_MISSING},
        {"no delivery id", "", "", good, "{\"zen\":\"x\"}", NOW, GH_WH_MISSING},
        {"sha1 prefix", id, "", "sha1=0123456789abcdef0123456789abcdef01234567", "x", NOW,
         GH_WH_MALFORMED},
        {"short hex", id, "", "sha256=abcd", "x", NOW, GH_WH_MALFORMED},
        {"bad hex", id, "",
         "sha256=zz7107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17", "x", NOW,
         GH_WH_MALFORMED},
        {"two signatures", id, "",
         "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17,sha256=757107ea0e"
         "b2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
         "x", NOW, GH_WH_MALFORMED},
    };
    verifier(&v, GH_WH_GITHUB, GH_SECRET, NULL);
    run_cases(&v, cases, sizeof(cases) / sizeof(cases[0]));
    gh_wh_verifier_release(&v);
    verifier(&v, GH_WH_GITHUB, GH_SECRET, GH_SECRET2);
    run_cases(&v, &(struct vcase){"rotation", id, "", other, "{\"zen\":\"x\"}", NOW, GH_WH_OK}, 1);
    gh_wh_verifier_release(&v);
}

static void test_stripe_table(void **state)
{
    struct gh_wh_verifier v;
    char good[256], old[256], future[256], other[256], multi[512], dup_t[512], with_v0[512];
    char tampered[256], bad_hex[256];
    const char *body = "{\"id\":\"evt_1\",\"object\":\"event\"}";
    (void)state;

    stripe_header(ST_SECRET, NOW, body, good, sizeof(good));
    stripe_header(ST_SECRET, NOW - 301, body, old, sizeof(old));
    stripe_header(ST_SECRET, NOW + 301, body, future, sizeof(future));
    stripe_header(ST_SECRET2, NOW, body, other, sizeof(other));
    /* Stripe sends one v1 per active secret during a roll. */
    snprintf(multi, sizeof(multi), "%s,v1=%s", other, strstr(good, "v1=") + 3);
    snprintf(dup_t, sizeof(dup_t), "t=1,%s", good);
    snprintf(with_v0, sizeof(with_v0), "%s,v0=%064d", good, 0);
    snprintf(tampered, sizeof(tampered), "%s", good);
    tampered[20] = tampered[20] == '0' ? '1' : '0';
    snprintf(bad_hex, sizeof(bad_hex), "%s", good);
    bad_hex[strlen(bad_hex) - 1] = 'g';

    const struct vcase cases[] = {
        {"valid", "", "", good, body, NOW, GH_WH_OK},
        {"valid with v0", "", "", with_v0, body, NOW, GH_WH_OK},
        {"several v1, one valid", "", "", multi, body, NOW, GH_WH_OK},
        {"tampered body", "", "", good, "{\"id\":\"evt_2\",\"object\":\"event\"}", NOW,
         GH_WH_BAD_SIGNATURE},
        {"tampered signature", "", "", tampered, body, NOW, GH_WH_BAD_SIGNATURE},
        {"wrong secret", "", "", other, body, NOW, GH_WH_BAD_SIGNATURE},
        {"stale past", "", "", old, body, NOW, GH_WH_STALE},
        {"stale future", "", "", future, body, NOW, GH_WH_STALE},
        {"no header", "", "", "", body, NOW, GH_WH_MISSING},
        {"no t", "", "", strstr(good, "v1="), body, NOW, GH_WH_MALFORMED},
        {"no v1", "", "", "t=1614265330,v0=abc", body, NOW, GH_WH_MALFORMED},
        {"duplicate t", "", "", dup_t, body, NOW, GH_WH_MALFORMED},
        {"bad hex", "", "", bad_hex, body, NOW, GH_WH_MALFORMED},
        {"empty item", "", "", "t=1614265330,,v1=00", body, NOW, GH_WH_MALFORMED},
        {"t not digits", "", "", "t=16x,v1=00", body, NOW, GH_WH_MALFORMED},
        {"no equals", "", "", "t1614265330", body, NOW, GH_WH_MALFORMED},
    };
    verifier(&v, GH_WH_STRIPE, ST_SECRET, NULL);
    run_cases(&v, cases, sizeof(cases) / sizeof(cases[0]));
    gh_wh_verifier_release(&v);
    verifier(&v, GH_WH_STRIPE, ST_SECRET2, ST_SECRET);
    run_cases(&v, &(struct vcase){"rotation", "", "", good, body, NOW, GH_WH_OK}, 1);
    gh_wh_verifier_release(&v);
}

static void test_stripe_replay_key(void **state)
{
    struct gh_wh_verifier v;
    struct gh_wh_verified a, b;
    char h1[256], h2[256];
    (void)state;
    verifier(&v, GH_WH_STRIPE, ST_SECRET, NULL);
    stripe_header(ST_SECRET, NOW, "one", h1, sizeof(h1));
    stripe_header(ST_SECRET, NOW, "two", h2, sizeof(h2));
    struct gh_wh_headers x = {GH_STR_NULL, GH_STR_NULL, S(h1)},
                         y = {GH_STR_NULL, GH_STR_NULL, S(h2)};
    assert_int_equal(vfy(&v, &x, S("one"), NOW, &a), GH_WH_OK);
    assert_int_equal(vfy(&v, &y, S("two"), NOW, &b), GH_WH_OK);
    /* Same second, different events: different keys. */
    assert_true(a.key_len == b.key_len && memcmp(a.key, b.key, a.key_len) != 0);
    gh_wh_verifier_release(&v);
}

static void test_replay_expiry(void **state)
{
    struct gh_replay *t = gh_replay_new(1000);
    (void)state;
    assert_non_null(t);
    assert_int_equal(gh_replay_check_add(t, "a", 1, 100, 160), GH_REPLAY_NEW);
    assert_int_equal(gh_replay_check_add(t, "a", 1, 159, 220), GH_REPLAY_SEEN);
    assert_int_equal(gh_replay_check_add(t, "b", 1, 159, 220), GH_REPLAY_NEW);
    /* Expired: new again. */
    assert_int_equal(gh_replay_check_add(t, "a", 1, 160, 220), GH_REPLAY_NEW);
    assert_int_equal(gh_replay_live(t, 160), 2);
    assert_int_equal(gh_replay_live(t, 220), 0);
    gh_replay_free(t);
}

/* Keys taken back (a delivery that failed) are new again; other keys of
 * their window stay; a key of another prefix (route) is another key. */
static void test_replay_forget_and_prefix(void **state)
{
    struct gh_replay *t = gh_replay_new(1000);
    uint64_t a, b, a2;
    (void)state;
    assert_non_null(t);
    a = gh_replay_hash(t, "route-1", 7, "msg_a", 5);
    b = gh_replay_hash(t, "route-1", 7, "msg_b", 5);
    a2 = gh_replay_hash(t, "route-2", 7, "msg_a", 5);
    assert_true(a != 0 && a != a2 && a != b);
    assert_int_equal(gh_replay_check_add_hash(t, a, 100, 200), GH_REPLAY_NEW);
    assert_int_equal(gh_replay_check_add_hash(t, b, 100, 200), GH_REPLAY_NEW);
    assert_int_equal(gh_replay_check_add_hash(t, a2, 100, 200), GH_REPLAY_NEW);
    assert_int_equal(gh_replay_check_add_hash(t, a, 101, 200), GH_REPLAY_SEEN);
    gh_replay_forget(t, a);
    gh_replay_forget(t, a); /* twice, or a key never added: nothing */
    gh_replay_forget(t, gh_replay_hash(t, "x", 1, "y", 1));
    assert_int_equal(gh_replay_check_add_hash(t, b, 101, 200), GH_REPLAY_SEEN);
    assert_int_equal(gh_replay_check_add_hash(t, a2, 101, 200), GH_REPLAY_SEEN);
    assert_int_equal(gh_replay_check_add_hash(t, a, 101, 200), GH_REPLAY_NEW);
    assert_int_equal(gh_replay_live(t, 101), 3);
    gh_replay_free(t);
}

static void test_replay_full_refuses(void **state)
{
    /* The smallest table: 64 shards of GH_REPLAY_PROBE slots. */
    struct gh_replay *t = gh_replay_new(1);
    size_t full = 0, added = 0;
    char key[32];
    (void)state;
    assert_non_null(t);
    for (int i = 0; i < 64 * GH_REPLAY_PROBE * 2; i++) {
        int n = snprintf(key, sizeof(key), "id-%d", i);
        enum gh_replay_result r = gh_replay_check_add(t, key, (size_t)n, 100, 200);
        if (r == GH_REPLAY_FULL) full++;
        if (r == GH_REPLAY_NEW) added++;
    }
    assert_int_equal(added, 64 * GH_REPLAY_PROBE); /* every slot used, none forgotten */
    assert_int_equal(full, 64 * GH_REPLAY_PROBE);
    /* What was recorded is still refused as a replay while full. */
    for (int i = 0; i < 64 * GH_REPLAY_PROBE * 2; i++) {
        int n = snprintf(key, sizeof(key), "id-%d", i);
        enum gh_replay_result r = gh_replay_check_add(t, key, (size_t)n, 100, 200);
        assert_true(r == GH_REPLAY_SEEN || r == GH_REPLAY_FULL);
    }
    /* Once they expire, room again. */
    assert_int_equal(gh_replay_check_add(t, "late", 4, 200, 300), GH_REPLAY_NEW);
    gh_replay_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_standard_spec_example),
        cmocka_unit_test(test_github_docs_example),
        cmocka_unit_test(test_standard_table),
        cmocka_unit_test(test_standard_ed25519),
        cmocka_unit_test(test_standard_bad_secret),
        cmocka_unit_test(test_github_table),
        cmocka_unit_test(test_stripe_table),
        cmocka_unit_test(test_stripe_replay_key),
        cmocka_unit_test(test_replay_expiry),
        cmocka_unit_test(test_replay_full_refuses),
        cmocka_unit_test(test_replay_forget_and_prefix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
