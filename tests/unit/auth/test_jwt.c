/* Tests for JWT verification and signing (src/auth/jwt.c) and JWKS parsing
 * (src/auth/jwks.c).
 *
 * Most expectations come from material no one on the team wrote: Wycheproof
 * (JWS, JWK, and raw ECDSA P1363 / Ed25519 / RSA PKCS#1 / RSA-PSS vectors)
 * and the RFC 7520 / RFC 8037 examples of the JOSE cookbook, read from
 * ../shared/vectors/ (the repo root is the working directory). The rest are
 * synthetic tokens signed here with OpenSSL directly (not with gh_jwt_sign),
 * one table row per case, run for every algorithm.
 *
 * Each table test collects all mismatches before failing, so one run shows
 * every broken row. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdatomic.h>

#include "auth/jwks.h"
#include "auth/jwt.h"

#define VEC          "../shared/vectors/"
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define NOW          1700000000LL

/* ---- helpers ---- */

struct checker {
    const char *what;
    int failures;
};

__attribute__((format(printf, 2, 3))) static void mismatch(struct checker *ck, const char *fmt, ...)
{
    va_list ap;

    print_error("[%s] ", ck->what);
    va_start(ap, fmt);
    vprint_error(fmt, ap);
    va_end(ap);
    print_error("\n");
    ck->failures++;
}

static json_t *load_json(const char *path)
{
    json_error_t e;
    json_t *j = json_load_file(path, 0, &e);

    if (j == NULL) fail_msg("cannot load %s: %s (line %d)", path, e.text, e.line);
    return j;
}

/* base64url via OpenSSL's base64 (independent of gh_b64url_encode). */
static char *b64(const void *p, size_t n)
{
    char *out = malloc(4 * (n / 3 + 1) + 1);
    int len;

    assert_non_null(out);
    len = EVP_EncodeBlock((unsigned char *)out, p, (int)n);
    while (len > 0 && out[len - 1] == '=')
        len--;
    out[len] = '\0';
    for (int i = 0; i < len; i++)
        out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
    return out;
}

static char *b64s(const char *s)
{
    return b64(s, strlen(s));
}

static char *cat3(const char *a, const char *sep, const char *b)
{
    size_t n = strlen(a) + strlen(sep) + strlen(b) + 1;
    char *s = malloc(n);

    assert_non_null(s);
    snprintf(s, n, "%s%s%s", a, sep, b);
    return s;
}

static size_t unhex(const char *hex, unsigned char *out, size_t cap)
{
    size_t n = strlen(hex) / 2;

    assert_true(n <= cap);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        out[i] = (unsigned char)v;
    }
    return n;
}

static gh_str S(const char *s)
{
    return gh_str_make(s, strlen(s));
}

/* The text of {"keys": <arr>}; takes <arr>. */
static char *keys_text(json_t *arr)
{
    json_t *root = json_pack("{s:o}", "keys", arr);
    char *text = json_dumps(root, JSON_COMPACT);

    json_decref(root);
    return text;
}

/* A key set from JSON text; NULL (and <err>) when refused. */
static struct gh_jwks *parse_text(const char *text, struct gh_err *err)
{
    return gh_jwks_parse(text, strlen(text), err);
}

/* {"keys":[<jwk>]} parsed; <jwk> is not taken. */
static struct gh_jwks *parse_one(json_t *jwk, struct gh_err *err)
{
    json_t *root = json_pack("{s:[O]}", "keys", jwk);
    char *text = json_dumps(root, JSON_COMPACT);
    struct gh_jwks *set = parse_text(text, err);

    free(text);
    json_decref(root);
    return set;
}

static const EVP_MD *md_of(const char *alg)
{
    if (strcmp(alg, "EdDSA") == 0) return NULL;
    if (strstr(alg, "256")) return EVP_sha256();
    if (strstr(alg, "384")) return EVP_sha384();
    return EVP_sha512();
}

/* The JWS signature of <input> for <alg> with OpenSSL's one-shot API; ECDSA
 * converted to raw r||s. Returns base64url. */
static char *sign_b64(const char *alg, EVP_PKEY *key, const char *input)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    unsigned char sig[1024], raw[96];
    size_t siglen = sizeof(sig);
    char *out;

    assert_int_equal(EVP_DigestSignInit(ctx, &pctx, md_of(alg), NULL, key), 1);
    if (alg[0] == 'P') {
        assert_true(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) > 0);
        assert_true(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) > 0);
        assert_true(EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md_of(alg)) > 0);
    }
    assert_int_equal(EVP_DigestSign(ctx, sig, &siglen, (const unsigned char *)input, strlen(input)),
                     1);
    EVP_MD_CTX_free(ctx);
    if (alg[0] == 'E' && alg[1] == 'S') {
        const unsigned char *p = sig;
        ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)siglen);
        const BIGNUM *r, *s;
        int size = strcmp(alg, "ES256") == 0 ? 32 : 48;
        assert_non_null(es);
        ECDSA_SIG_get0(es, &r, &s);
        BN_bn2binpad(r, raw, size);
        BN_bn2binpad(s, raw + size, size);
        ECDSA_SIG_free(es);
        return b64(raw, 2 * (size_t)size);
    }
    out = b64(sig, siglen);
    return out;
}

/* header.payload.signature from JSON texts. */
static char *make_token(const char *alg, EVP_PKEY *key, const char *header, const char *payload)
{
    char *h = b64s(header), *p = b64s(payload), *input = cat3(h, ".", p);
    char *sig = sign_b64(alg, key, input), *tok = cat3(input, ".", sig);

    free(h);
    free(p);
    free(input);
    free(sig);
    return tok;
}

/* ---- keys shared by the synthetic tests ---- */

static struct {
    EVP_PKEY *rsa, *p256, *p384, *ed, *rsa1024;
    json_t *jwk_rsa, *jwk_p256, *jwk_p384, *jwk_ed;
    struct gh_jwks *keys;
    struct gh_jwt_verifier *v;
} T;

static json_t *jwk_from(EVP_PKEY *k, const char *kid, const char *alg)
{
    json_t *j = json_object();
    unsigned char buf[1024];
    char *s;

    if (EVP_PKEY_is_a(k, "RSA")) {
        BIGNUM *n = NULL, *e = NULL;
        EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_N, &n);
        EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_E, &e);
        json_object_set_new(j, "kty", json_string("RSA"));
        s = b64(buf, (size_t)BN_bn2bin(n, buf));
        json_object_set_new(j, "n", json_string(s));
        free(s);
        s = b64(buf, (size_t)BN_bn2bin(e, buf));
        json_object_set_new(j, "e", json_string(s));
        free(s);
        BN_free(n);
        BN_free(e);
    } else if (EVP_PKEY_is_a(k, "EC")) {
        BIGNUM *x = NULL, *y = NULL;
        int size = EVP_PKEY_get_bits(k) / 8;
        EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_EC_PUB_X, &x);
        EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_EC_PUB_Y, &y);
        json_object_set_new(j, "kty", json_string("EC"));
        json_object_set_new(j, "crv", json_string(size == 32 ? "P-256" : "P-384"));
        BN_bn2binpad(x, buf, size);
        s = b64(buf, (size_t)size);
        json_object_set_new(j, "x", json_string(s));
        free(s);
        BN_bn2binpad(y, buf, size);
        s = b64(buf, (size_t)size);
        json_object_set_new(j, "y", json_string(s));
        free(s);
        BN_free(x);
        BN_free(y);
    } else {
        size_t len = 32;
        EVP_PKEY_get_raw_public_key(k, buf, &len);
        json_object_set_new(j, "kty", json_string("OKP"));
        json_object_set_new(j, "crv", json_string("Ed25519"));
        s = b64(buf, len);
        json_object_set_new(j, "x", json_string(s));
        free(s);
    }
    if (kid) json_object_set_new(j, "kid", json_string(kid));
    if (alg) json_object_set_new(j, "alg", json_string(alg));
    return j;
}

static const struct gh_jwt_policy base_policy = {
    .leeway_s = 30,
    .issuer = "https://issuer.example",
    .audiences = {"api://gatehouse", "api://other"},
    .naudiences = 2,
    .tenant_claim = "org_id",
    .roles_claim = "roles",
};

static int setup(void **state)
{
    json_t *arr;
    char *text;
    struct gh_err err;

    T.rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    T.rsa1024 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    T.p256 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    T.p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    T.ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    if (!T.rsa || !T.rsa1024 || !T.p256 || !T.p384 || !T.ed) return -1;
    T.jwk_rsa = jwk_from(T.rsa, "rsa-1", NULL);
    T.jwk_p256 = jwk_from(T.p256, "p256-1", "ES256");
    T.jwk_p384 = jwk_from(T.p384, "p384-1", NULL);
    T.jwk_ed = jwk_from(T.ed, "ed-1", "EdDSA");
    /* The same RSA key again, bound to RS256 by its JWK "alg". */
    arr = json_pack("[O,O,O,O,o]", T.jwk_rsa, T.jwk_p256, T.jwk_p384, T.jwk_ed,
                    jwk_from(T.rsa, "rsa-rs256", "RS256"));
    text = keys_text(arr);
    T.keys = parse_text(text, &err);
    free(text);
    if (T.keys == NULL) {
        print_error("%s\n", err.msg);
        return -1;
    }
    T.v = gh_jwt_verifier_new(&base_policy, &err);
    return T.v ? 0 : -1;
}

static int teardown(void **state)
{
    gh_jwks_release(T.keys);
    gh_jwt_verifier_free(T.v);
    json_decref(T.jwk_rsa);
    json_decref(T.jwk_p256);
    json_decref(T.jwk_p384);
    json_decref(T.jwk_ed);
    EVP_PKEY_free(T.rsa);
    EVP_PKEY_free(T.rsa1024);
    EVP_PKEY_free(T.p256);
    EVP_PKEY_free(T.p384);
    EVP_PKEY_free(T.ed);
    return 0;
}

/* ---- base64url and result strings ---- */

static void test_b64url(void **state)
{
    static const struct {
        const char *in;
        int ok;
        const char *out;
    } rows[] = {
        {"", 1, ""},
        {"Zg", 1, "f"},
        {"Zm8", 1, "fo"},
        {"Zm9v", 1, "foo"},
        {"Zm9vYg", 1, "foob"},
        {"Zm9vYg==", 0, NULL},
        {"Zm9vYg=", 0, NULL},
        {"Z", 0, NULL},
        {"Zm9vY", 0, NULL},
        {"Zh", 0, NULL},
        /* unused bits set */ {"Zm9", 0, NULL},
        {"Zm+v", 0, NULL},
        {"Zm/v", 0, NULL},
        {"Zm 9v", 0, NULL},
        {"Zm9v\n", 0, NULL},
        {"-_-_", 1, "\xfb\xff\xbf"},
        {"Zm9v\x80", 0, NULL},
    };
    struct checker ck = {"b64url", 0};
    unsigned char out[64], rnd[100];
    char enc[200];
    size_t n;

    for (size_t i = 0; i < ARRAY_LEN(rows); i++) {
        int rc = gh_b64url_decode(rows[i].in, strlen(rows[i].in), out, sizeof(out), &n);
        if ((rc == GH_OK) != rows[i].ok)
            mismatch(&ck, "decode \"%s\": rc %d", rows[i].in, rc);
        else if (rc == GH_OK && (n != strlen(rows[i].out) || memcmp(out, rows[i].out, n) != 0))
            mismatch(&ck, "decode \"%s\": wrong bytes", rows[i].in);
    }
    /* Round trips, checked against OpenSSL's encoder, and a short buffer. */
    for (size_t len = 0; len <= sizeof(rnd); len++) {
        char *ref;
        for (size_t i = 0; i < len; i++)
            rnd[i] = (unsigned char)(i * 37 + len * 11);
        ref = b64(rnd, len);
        if (gh_b64url_encode(rnd, len, enc, sizeof(enc)) != strlen(ref) || strcmp(enc, ref) != 0)
            mismatch(&ck, "encode %zu bytes differs from OpenSSL", len);
        if (gh_b64url_decode(enc, strlen(enc), out, sizeof(out), &n) == GH_OK &&
            (len > sizeof(out) || n != len || memcmp(out, rnd, n) != 0))
            mismatch(&ck, "round trip of %zu bytes", len);
        if (len > 0 && gh_b64url_encode(rnd, len, enc, GH_B64URL_LEN(len)) != (size_t)-1)
            mismatch(&ck, "encode of %zu bytes into a short buffer", len);
        free(ref);
    }
    assert_int_equal(gh_b64url_decode("Zm9v", 4, out, 2, &n), GH_ERROR);
    assert_int_equal(ck.failures, 0);
}

static void test_result_strings(void **state)
{
    for (int r = 0; r < GH_JWT_RESULT_COUNT; r++) {
        const char *s = gh_jwt_result_str((enum gh_jwt_result)r);
        assert_non_null(s);
        assert_true(strlen(s) > 1);
        assert_int_equal(strspn(s, "abcdefghijklmnopqrstuvwxyz_"), strlen(s));
        for (int q = 0; q < r; q++)
            assert_string_not_equal(s, gh_jwt_result_str((enum gh_jwt_result)q));
    }
    assert_string_equal(gh_jwt_result_str(GH_JWT_RESULT_COUNT), "internal_error");
    assert_string_equal(gh_jwt_result_str((enum gh_jwt_result) - 1), "internal_error");
    assert_string_equal(gh_jwt_result_str(GH_JWT_EXPIRED), "token_expired");
    assert_string_equal(gh_jwt_result_str(GH_JWT_BAD_SIGNATURE), "bad_signature");
    for (int a = GH_JWA_UNKNOWN + 1; a < GH_JWA_COUNT; a++)
        assert_int_equal(
            gh_jwa_parse(gh_jwa_name((enum gh_jwa)a), strlen(gh_jwa_name((enum gh_jwa)a))), a);
    assert_int_equal(gh_jwa_parse("none", 4), GH_JWA_UNKNOWN);
    assert_int_equal(gh_jwa_parse("HS256", 5), GH_JWA_UNKNOWN);
    assert_int_equal(gh_jwa_parse("rs256", 5), GH_JWA_UNKNOWN);
    assert_int_equal(gh_jwa_parse("ES512", 5), GH_JWA_UNKNOWN);
    assert_null(gh_jwa_name(GH_JWA_UNKNOWN));
}

/* ---- Wycheproof ---- */

static struct gh_jwt_verifier *all_algs_verifier(void)
{
    struct gh_jwt_policy p = {.exp_optional = true};
    struct gh_err err;
    struct gh_jwt_verifier *v = gh_jwt_verifier_new(&p, &err);

    assert_non_null(v);
    return v;
}

/* Token text of a test: the compact string, or the JSON serialization
 * written compactly (which must be refused). */
static char *wp_token(json_t *t)
{
    json_t *jws = json_object_get(t, "jws");
    return json_is_string(jws) ? strdup(json_string_value(jws)) : json_dumps(jws, JSON_COMPACT);
}

static void test_wycheproof_jws(void **state)
{
    json_t *root = load_json(VEC "wycheproof/json_web_signature_test.json"), *g, *t;
    struct gh_jwt_verifier *v = all_algs_verifier();
    struct checker ck = {"wycheproof jws", 0};
    size_t gi, ti, valid_ok = 0, invalid_refused = 0, symmetric = 0, unsupported = 0, bound = 0,
                   total = 0;

    json_array_foreach(json_object_get(root, "testGroups"), gi, g)
    {
        json_t *pub = json_object_get(g, "public");
        struct gh_err err;
        struct gh_jwks *keys = pub ? parse_one(pub, &err) : NULL;

        if (pub != NULL && keys == NULL)
            mismatch(&ck, "group %zu: public key refused: %s", gi, err.msg);
        json_array_foreach(json_object_get(g, "tests"), ti, t)
        {
            const char *result = json_string_value(json_object_get(t, "result"));
            long long tc = json_integer_value(json_object_get(t, "tcId"));
            char *tok = wp_token(t);
            struct gh_jws_info info;
            enum gh_jwt_result r = gh_jwt_verify_jws(v, keys, S(tok), &info);

            total++;
            if (pub == NULL) {
                /* HMAC groups: no public key; nothing may verify. */
                symmetric++;
                if (r == GH_JWT_OK) mismatch(&ck, "tc %lld: symmetric token accepted", tc);
            } else if (keys != NULL && keys->nkeys == 0 && strcmp(result, "valid") == 0) {
                /* ES512 on P-521: the key is skipped, the alg unknown. */
                unsupported++;
                if (r != GH_JWT_ALG_NOT_ALLOWED)
                    mismatch(&ck, "tc %lld: unsupported key: %s", tc, gh_jwt_result_str(r));
            } else if (strcmp(result, "valid") == 0) {
                if (r == GH_JWT_OK) {
                    valid_ok++;
                } else if (r == GH_JWT_KEY_MISMATCH && keys->nkeys == 1 &&
                           keys->keys[0].alg != GH_JWA_UNKNOWN) {
                    /* RFC 7520 figure 20 is PS384 but Wycheproof's JWK says
                     * "alg":"PS256": our policy binds a key to its alg. */
                    bound++;
                    print_message("    tc %lld refused by policy: the JWK says \"alg\":\"%s\"\n",
                                  tc, gh_jwa_name(keys->keys[0].alg));
                } else {
                    mismatch(&ck, "tc %lld (%s): valid token refused: %s", tc,
                             json_string_value(json_object_get(t, "comment")),
                             gh_jwt_result_str(r));
                }
            } else if (strcmp(result, "invalid") == 0) {
                if (r == GH_JWT_OK)
                    mismatch(&ck, "tc %lld (%s): invalid token accepted", tc,
                             json_string_value(json_object_get(t, "comment")));
                else
                    invalid_refused++;
            }
            free(tok);
        }
        gh_jwks_release(keys);
    }
    print_message("    wycheproof json_web_signature: %zu tests: %zu valid verified, %zu invalid "
                  "refused, %zu valid refused by key-alg binding, %zu with unsupported keys "
                  "(P-521) refused, %zu symmetric (HMAC) refused\n",
                  total, valid_ok, invalid_refused, bound, unsupported, symmetric);
    assert_int_equal(bound, 2); /* tc 346 and 350, nothing else */
    assert_true(valid_ok >= 30);
    gh_jwt_verifier_free(v);
    json_decref(root);
    assert_int_equal(ck.failures, 0);
}

static void test_wycheproof_jwk(void **state)
{
    json_t *root = load_json(VEC "wycheproof/json_web_key_test.json"), *g, *t;
    struct gh_jwt_verifier *v = all_algs_verifier();
    struct checker ck = {"wycheproof jwk", 0};
    size_t gi, ti, valid_ok = 0, refused_import = 0, refused_verify = 0, symmetric_sets = 0;

    json_array_foreach(json_object_get(root, "testGroups"), gi, g)
    {
        json_t *pub = json_object_get(g, "public"), *priv = json_object_get(g, "private");
        struct gh_err err;
        struct gh_jwks *keys = NULL;
        char *text;

        if (pub == NULL) {
            /* Only a private (oct) keyset: a JWKS with a secret is refused. */
            text = json_dumps(priv, JSON_COMPACT);
            keys = parse_text(text, &err);
            free(text);
            if (keys != NULL || strstr(err.msg, "oct") == NULL)
                mismatch(&ck, "group %s: symmetric keyset not refused",
                         json_string_value(json_object_get(g, "comment")));
            gh_jwks_release(keys);
            symmetric_sets++;
            continue;
        }
        text = json_dumps(pub, JSON_COMPACT);
        keys = parse_text(text, &err);
        free(text);
        json_array_foreach(json_object_get(g, "tests"), ti, t)
        {
            const char *result = json_string_value(json_object_get(t, "result"));
            long long tc = json_integer_value(json_object_get(t, "tcId"));
            char *tok = wp_token(t);
            enum gh_jwt_result r = keys ? gh_jwt_verify_jws(v, keys, S(tok), NULL) : GH_JWT_NO_KEY;

            if (strcmp(result, "valid") == 0) {
                if (r == GH_JWT_OK)
                    valid_ok++;
                else
                    mismatch(&ck, "tc %lld: valid refused: %s%s", tc,
                             keys ? gh_jwt_result_str(r) : "import: ", keys ? "" : err.msg);
            } else if (r == GH_JWT_OK) {
                mismatch(&ck, "tc %lld (%s): invalid accepted", tc,
                         json_string_value(json_object_get(t, "comment")));
            } else if (keys == NULL) {
                refused_import++;
                print_message("    tc %lld refused at import: %s\n", tc, err.msg);
            } else {
                refused_verify++;
            }
            free(tok);
        }
        gh_jwks_release(keys);
    }
    print_message("    wycheproof json_web_key: %zu valid verified, %zu invalid refused at import, "
                  "%zu invalid refused at verification, %zu symmetric keysets refused\n",
                  valid_ok, refused_import, refused_verify, symmetric_sets);
    assert_int_equal(refused_import, 6); /* ROCA, 1024 bits, e = 1, off-curve, P-384 size, kty */
    gh_jwt_verifier_free(v);
    json_decref(root);
    assert_int_equal(ck.failures, 0);
}

/* Raw signature vectors through gh_jwt_verify_sig with keys imported from
 * the groups' JWKs. */
static void raw_vectors(const char *file, enum gh_jwa alg, size_t *ok, size_t *refused,
                        size_t *acceptable, size_t *from_der, struct checker *ck)
{
    json_t *root = load_json(file), *g, *t;
    struct gh_jwt_verifier *v = all_algs_verifier();
    size_t gi, ti;

    json_array_foreach(json_object_get(root, "testGroups"), gi, g)
    {
        json_t *jwk = json_object_get(g, "publicKeyJwk");
        struct gh_err err;
        struct gh_jwks *keys;

        if (jwk == NULL) jwk = json_object_get(g, "keyJwk");
        if (jwk != NULL) {
            keys = parse_one(jwk, &err);
        } else {
            /* Some groups have no JWK (keys made for special r values): take
             * the DER key through gh_jwks_add instead. */
            const char *hex = json_string_value(json_object_get(g, "publicKeyDer"));
            unsigned char der[1024];
            const unsigned char *p = der;
            size_t len = unhex(hex, der, sizeof(der));
            EVP_PKEY *pkey = d2i_PUBKEY(NULL, &p, (long)len);
            assert_non_null(pkey);
            keys = gh_jwks_new();
            if (gh_jwks_add(keys, pkey, NULL, GH_JWA_UNKNOWN, &err) != GH_OK) {
                gh_jwks_release(keys);
                keys = NULL;
            }
            EVP_PKEY_free(pkey);
            (*from_der)++;
        }
        if (keys == NULL || keys->nkeys != 1) {
            mismatch(ck, "%s group %zu: key refused: %s", file, gi, keys ? "skipped" : err.msg);
            gh_jwks_release(keys);
            continue;
        }
        json_array_foreach(json_object_get(g, "tests"), ti, t)
        {
            const char *result = json_string_value(json_object_get(t, "result"));
            const char *mhex = json_string_value(json_object_get(t, "msg"));
            const char *shex = json_string_value(json_object_get(t, "sig"));
            unsigned char *msg = malloc(strlen(mhex) / 2 + 1), *sig = malloc(strlen(shex) / 2 + 1);
            size_t mlen = unhex(mhex, msg, strlen(mhex) / 2 + 1);
            size_t slen = unhex(shex, sig, strlen(shex) / 2 + 1);
            enum gh_jwt_result r = gh_jwt_verify_sig(v, alg, &keys->keys[0], msg, mlen, sig, slen);

            if (strcmp(result, "acceptable") == 0)
                (*acceptable)++;
            else if (strcmp(result, "valid") == 0 && r == GH_JWT_OK)
                (*ok)++;
            else if (strcmp(result, "invalid") == 0 && r == GH_JWT_BAD_SIGNATURE)
                (*refused)++;
            else
                mismatch(ck, "%s tc %lld (%s): %s gave %s", file,
                         (long long)json_integer_value(json_object_get(t, "tcId")),
                         json_string_value(json_object_get(t, "comment")), result,
                         gh_jwt_result_str(r));
            free(msg);
            free(sig);
        }
        gh_jwks_release(keys);
    }
    gh_jwt_verifier_free(v);
    json_decref(root);
}

static void test_wycheproof_raw(void **state)
{
    static const struct {
        const char *file;
        enum gh_jwa alg;
    } files[] = {
        {VEC "wycheproof/ecdsa_secp256r1_sha256_p1363_test.json", GH_JWA_ES256},
        {VEC "wycheproof/ecdsa_secp384r1_sha384_p1363_test.json", GH_JWA_ES384},
        {VEC "wycheproof/ed25519_test.json", GH_JWA_EDDSA},
        {VEC "wycheproof/rsa_signature_2048_sha256_test.json", GH_JWA_RS256},
        {VEC "wycheproof/rsa_pss_2048_sha256_mgf1_32_test.json", GH_JWA_PS256},
    };
    struct checker ck = {"wycheproof raw", 0};

    for (size_t i = 0; i < ARRAY_LEN(files); i++) {
        size_t ok = 0, refused = 0, acceptable = 0, from_der = 0;
        raw_vectors(files[i].file, files[i].alg, &ok, &refused, &acceptable, &from_der, &ck);
        print_message("    %s (%s): %zu valid verified, %zu invalid refused, %zu acceptable "
                      "(%zu groups keyed from DER)\n",
                      strrchr(files[i].file, '/') + 1, gh_jwa_name(files[i].alg), ok, refused,
                      acceptable, from_der);
        assert_true(ok > 0 && refused > 0);
    }
    assert_int_equal(ck.failures, 0);
}

/* ---- JOSE cookbook (RFC 7520, RFC 8037) ---- */

static enum gh_jwt_result cookbook(const char *file, const struct gh_jwt_policy *p, size_t *nkeys,
                                   char *errmsg)
{
    json_t *root = load_json(file);
    json_t *key = json_object_get(json_object_get(root, "input"), "key");
    const char *tok =
        json_string_value(json_object_get(json_object_get(root, "output"), "compact"));
    struct gh_err err;
    struct gh_jwks *keys = parse_one(key, &err);
    struct gh_jwt_verifier *v = gh_jwt_verifier_new(p, &err);
    enum gh_jwt_result r;

    assert_non_null(v);
    *nkeys = keys ? keys->nkeys : 0;
    errmsg[0] = '\0';
    if (keys == NULL) snprintf(errmsg, sizeof(err.msg), "%s", err.msg);
    r = gh_jwt_verify_jws(v, keys, S(tok), NULL);
    if (keys != NULL && keys->nkeys == 1) {
        /* The cookbook keys carry their private members: never kept. */
        char *out = gh_jwks_to_json(keys, &err);
        assert_non_null(out);
        assert_null(strstr(out, "\"d\""));
        assert_null(strstr(out, "\"p\""));
        free(out);
    }
    gh_jwks_release(keys);
    gh_jwt_verifier_free(v);
    json_decref(root);
    return r;
}

static void test_cookbook(void **state)
{
    struct gh_jwt_policy all = {.exp_optional = true};
    struct gh_jwt_policy no_ps = {.allowed_algs = GH_JWA_ALL & ~GH_JWA_BIT(GH_JWA_PS384)};
    char msg[512];
    size_t n;

    assert_int_equal(cookbook(VEC "jose-cookbook/jws_4_1.rsa_v15_signature.json", &all, &n, msg),
                     GH_JWT_OK);
    assert_int_equal(cookbook(VEC "jose-cookbook/jws_4_2.rsa-pss_signature.json", &all, &n, msg),
                     GH_JWT_OK);
    assert_int_equal(cookbook(VEC "jose-cookbook/jws_4_2.rsa-pss_signature.json", &no_ps, &n, msg),
                     GH_JWT_ALG_NOT_ALLOWED);
    /* ES512 / P-521: the key is skipped as not ours, the alg is unknown. */
    assert_int_equal(cookbook(VEC "jose-cookbook/jws_4_3.ecdsa_signature.json", &all, &n, msg),
                     GH_JWT_ALG_NOT_ALLOWED);
    assert_int_equal(n, 0);
    assert_int_equal(cookbook(VEC "jose-cookbook/curve25519_jws.json", &all, &n, msg), GH_JWT_OK);
    /* HS256: the oct key set is refused, the token too. */
    assert_int_equal(
        cookbook(VEC "jose-cookbook/jws_4_4.hmac-sha2_integrity_protection.json", &all, &n, msg),
        GH_JWT_ALG_NOT_ALLOWED);
    assert_non_null(strstr(msg, "keys[0]"));
    assert_non_null(strstr(msg, "oct"));
}

/* ---- synthetic tokens, every algorithm ---- */

static const struct {
    const char *name;
    enum gh_jwa alg;
    EVP_PKEY **key;
    const char *kid;
} algs[] = {
    {"RS256", GH_JWA_RS256, &T.rsa, "rsa-1"},   {"RS384", GH_JWA_RS384, &T.rsa, "rsa-1"},
    {"RS512", GH_JWA_RS512, &T.rsa, "rsa-1"},   {"PS256", GH_JWA_PS256, &T.rsa, "rsa-1"},
    {"PS384", GH_JWA_PS384, &T.rsa, "rsa-1"},   {"PS512", GH_JWA_PS512, &T.rsa, "rsa-1"},
    {"ES256", GH_JWA_ES256, &T.p256, "p256-1"}, {"ES384", GH_JWA_ES384, &T.p384, "p384-1"},
    {"EdDSA", GH_JWA_EDDSA, &T.ed, "ed-1"},
};

#define CLAIMS_OK                                                                                  \
    "{\"iss\":\"https://issuer.example\",\"aud\":\"api://gatehouse\",\"sub\":\"user-1\","          \
    "\"org_id\":\"acme\",\"exp\":1700000600,\"iat\":1699999990,\"scope\":\"read write\","          \
    "\"roles\":[\"admin\",\"ops\"],\"jti\":\"j-1\"}"

/* CLAIMS_OK with the members of <changes> set (null: removed). */
static char *claims(const char *changes)
{
    json_t *base = json_loads(CLAIMS_OK, 0, NULL), *ch, *val;
    const char *key;
    char *out;

    ch = json_loads(changes ? changes : "{}", 0, NULL);
    assert_non_null(ch);
    json_object_foreach(ch, key, val)
    {
        if (json_is_null(val))
            json_object_del(base, key);
        else
            json_object_set(base, key, val);
    }
    out = json_dumps(base, JSON_COMPACT);
    json_decref(base);
    json_decref(ch);
    return out;
}

enum tamper { NONE, PAYLOAD, SIGNATURE };

static void flip_middle(char *seg, size_t len)
{
    seg[len / 2] = seg[len / 2] == 'A' ? 'B' : 'A';
}

static void tamper(char *tok, enum tamper how)
{
    char *d1 = strchr(tok, '.'), *d2 = strchr(d1 + 1, '.');

    if (how == PAYLOAD) flip_middle(d1 + 1, (size_t)(d2 - d1 - 1));
    if (how == SIGNATURE) flip_middle(d2 + 1, strlen(d2 + 1));
}

static const struct {
    const char *name;
    const char *kid;    /* NULL: the alg's key; "": no kid */
    const char *header; /* extra header members */
    const char *changes;
    enum tamper tamper;
    enum gh_jwt_result want;
} cases[] = {
    {"valid", NULL, "", NULL, NONE, GH_JWT_OK},
    {"valid without kid", "", "", NULL, NONE, GH_JWT_OK},
    {"expired", NULL, "", "{\"exp\":1699999970}", NONE, GH_JWT_EXPIRED},
    {"expired within leeway", NULL, "", "{\"exp\":1699999971}", NONE, GH_JWT_OK},
    {"nbf in the future", NULL, "", "{\"nbf\":1700000031}", NONE, GH_JWT_NOT_YET_VALID},
    {"nbf within leeway", NULL, "", "{\"nbf\":1700000030}", NONE, GH_JWT_OK},
    {"iat in the future", NULL, "", "{\"iat\":1700000031}", NONE, GH_JWT_ISSUED_IN_FUTURE},
    {"exp missing", NULL, "", "{\"exp\":null}", NONE, GH_JWT_MISSING_CLAIM},
    {"exp a string", NULL, "", "{\"exp\":\"1700000600\"}", NONE, GH_JWT_BAD_CLAIM},
    {"wrong iss", NULL, "", "{\"iss\":\"https://evil.example\"}", NONE, GH_JWT_WRONG_ISSUER},
    {"iss missing", NULL, "", "{\"iss\":null}", NONE, GH_JWT_WRONG_ISSUER},
    {"wrong aud", NULL, "", "{\"aud\":\"api://else\"}", NONE, GH_JWT_WRONG_AUDIENCE},
    {"aud array", NULL, "", "{\"aud\":[\"x\",\"api://other\"]}", NONE, GH_JWT_OK},
    {"aud array, none ours", NULL, "", "{\"aud\":[\"x\",\"y\"]}", NONE, GH_JWT_WRONG_AUDIENCE},
    {"aud missing", NULL, "", "{\"aud\":null}", NONE, GH_JWT_WRONG_AUDIENCE},
    {"tampered payload", NULL, "", NULL, PAYLOAD, GH_JWT_BAD_SIGNATURE},
    {"tampered signature", NULL, "", NULL, SIGNATURE, GH_JWT_BAD_SIGNATURE},
    {"crit", NULL, ",\"crit\":[\"exp\"],\"exp\":1", NULL, NONE, GH_JWT_CRIT_UNSUPPORTED},
    {"empty crit", NULL, ",\"crit\":[]", NULL, NONE, GH_JWT_CRIT_UNSUPPORTED},
    {"unknown kid", "nope", "", NULL, NONE, GH_JWT_UNKNOWN_KID},
    {"embedded jwk ignored", NULL, ",\"jwk\":{\"kty\":\"oct\",\"k\":\"AAAA\"}", NULL, NONE,
     GH_JWT_OK},
};

static void test_synthetic_algs(void **state)
{
    struct checker ck = {"synthetic", 0};

    for (size_t a = 0; a < ARRAY_LEN(algs); a++) {
        for (size_t c = 0; c < ARRAY_LEN(cases); c++) {
            const char *kid = cases[c].kid ? cases[c].kid : algs[a].kid;
            char hdr[512], *payload = claims(cases[c].changes), *tok;
            struct gh_jwt_claims out;
            enum gh_jwt_result r;

            if (kid[0])
                snprintf(hdr, sizeof(hdr), "{\"alg\":\"%s\",\"kid\":\"%s\",\"typ\":\"JWT\"%s}",
                         algs[a].name, kid, cases[c].header);
            else
                snprintf(hdr, sizeof(hdr), "{\"alg\":\"%s\",\"typ\":\"JWT\"%s}", algs[a].name,
                         cases[c].header);
            tok = make_token(algs[a].name, *algs[a].key, hdr, payload);
            tamper(tok, cases[c].tamper);
            r = gh_jwt_verify(T.v, T.keys, S(tok), NOW, &out);
            if (r != cases[c].want)
                mismatch(&ck, "%s, %s: got %s, want %s", algs[a].name, cases[c].name,
                         gh_jwt_result_str(r), gh_jwt_result_str(cases[c].want));
            if (r == GH_JWT_OK && strcmp(cases[c].name, "valid") == 0) {
                if (out.alg != algs[a].alg || strcmp(out.kid, kid) != 0 ||
                    strcmp(out.tenant, "acme") != 0 || strcmp(out.subject, "user-1") != 0 ||
                    strcmp(out.scopes, "read write") != 0 || out.nscopes != 2 || out.nroles != 2 ||
                    strcmp(out.roles[1], "ops") != 0 || strcmp(out.jti, "j-1") != 0 ||
                    out.exp != 1700000600 || out.iat != 1699999990)
                    mismatch(&ck, "%s: claims not mapped", algs[a].name);
            }
            free(payload);
            free(tok);
        }
    }
    assert_int_equal(ck.failures, 0);
}

/* ---- structure, algorithm confusion, sizes ---- */

static char *rs256_token(const char *payload)
{
    return make_token("RS256", T.rsa, "{\"alg\":\"RS256\",\"kid\":\"rsa-1\"}", payload);
}

/* header.payload.sig from raw segment texts (already encoded). */
static char *join3(const char *h, const char *p, const char *s)
{
    char *a = cat3(h, ".", p), *t = cat3(a, ".", s);
    free(a);
    return t;
}

static char *hs256_token(const char *header, const unsigned char *key, size_t keylen)
{
    char *h = b64s(header), *p = b64s(CLAIMS_OK), *input = cat3(h, ".", p), *sig, *tok;
    unsigned char mac[32];
    unsigned int maclen = sizeof(mac);

    HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)input, strlen(input), mac, &maclen);
    sig = b64(mac, maclen);
    tok = cat3(input, ".", sig);
    free(h);
    free(p);
    free(input);
    free(sig);
    return tok;
}

struct tok_row {
    const char *name;
    char *tok;
    enum gh_jwt_result want;
};

static void test_structure(void **state)
{
    struct checker ck = {"structure", 0};
    struct gh_jwt_claims out;
    char *good = rs256_token(CLAIMS_OK), *d1 = strchr(good, '.'), *d2 = strchr(d1 + 1, '.');
    char *h = strndup(good, (size_t)(d1 - good)), *p = strndup(d1 + 1, (size_t)(d2 - d1 - 1));
    char *s = strdup(d2 + 1), *pc = b64s(CLAIMS_OK);
    char *none_h = b64s("{\"alg\":\"none\"}"),
         *none2_h = b64s("{\"alg\":\"NONE\",\"kid\":\"rsa-1\"}");
    char *hs_h = b64s("{\"alg\":\"HS256\",\"kid\":\"rsa-1\"}");
    char *padded_s = cat3(s, "", "=="), *padded_h = cat3(h, "", "=");
    char *bad_h = b64s("{\"alg\":\"RS256\",\"kid\":\"rsa-1\""), *arr_h = b64s("[\"RS256\"]");
    char *dup_h = b64s("{\"alg\":\"RS256\",\"alg\":\"none\",\"kid\":\"rsa-1\"}");
    char *num_h = b64s("{\"alg\":256}"), *kidnum_h = b64s("{\"alg\":\"RS256\",\"kid\":7}");
    char *kidctl_h = b64s("{\"alg\":\"RS256\",\"kid\":\"rsa\\n1\"}");
    char *kidempty_h = b64s("{\"alg\":\"RS256\",\"kid\":\"\"}");
    unsigned char *der = NULL;
    char *pem;
    long pemlen;
    int derlen;
    BIO *bio = BIO_new(BIO_s_mem());
    struct tok_row rows[40];
    size_t n = 0;

    PEM_write_bio_PUBKEY(bio, T.rsa);
    pemlen = BIO_get_mem_data(bio, &pem);
    derlen = i2d_PUBKEY(T.rsa, &der);

#define ROW(nm, t, w) rows[n++] = (struct tok_row){nm, t, w}
    ROW("good", strdup(good), GH_JWT_OK);
    ROW("alg none, no signature", join3(none_h, pc, ""), GH_JWT_ALG_NOT_ALLOWED);
    ROW("alg none, RS256 signature", join3(none_h, p, s), GH_JWT_ALG_NOT_ALLOWED);
    ROW("alg NONE", join3(none2_h, pc, ""), GH_JWT_ALG_NOT_ALLOWED);
    ROW("HS256 keyed with the RSA public key PEM",
        hs256_token("{\"alg\":\"HS256\",\"kid\":\"rsa-1\"}", (unsigned char *)pem, (size_t)pemlen),
        GH_JWT_ALG_NOT_ALLOWED);
    ROW("HS256 keyed with the RSA public key DER",
        hs256_token("{\"alg\":\"HS256\",\"kid\":\"rsa-1\"}", der, (size_t)derlen),
        GH_JWT_ALG_NOT_ALLOWED);
    ROW("HS256 without kid, PEM key",
        hs256_token("{\"alg\":\"HS256\"}", (unsigned char *)pem, (size_t)pemlen),
        GH_JWT_ALG_NOT_ALLOWED);
    ROW("HS256 header on an RS256 signature", join3(hs_h, p, s), GH_JWT_ALG_NOT_ALLOWED);
    ROW("two segments", cat3(h, ".", p), GH_JWT_MALFORMED);
    ROW("four segments", cat3(good, ".", s), GH_JWT_MALFORMED);
    ROW("four segments, last empty", cat3(good, ".", ""), GH_JWT_MALFORMED);
    ROW("one segment", strdup(h), GH_JWT_MALFORMED);
    ROW("empty", strdup(""), GH_JWT_MALFORMED);
    ROW("dots only", strdup(".."), GH_JWT_MALFORMED);
    ROW("empty header", join3("", p, s), GH_JWT_MALFORMED);
    ROW("empty signature", join3(h, p, ""), GH_JWT_BAD_SIGNATURE);
    ROW("padding in signature", join3(h, p, padded_s), GH_JWT_BAD_ENCODING);
    ROW("padding in header", join3(padded_h, p, s), GH_JWT_BAD_ENCODING);
    ROW("'+' in payload", join3(h, "eyJ+IjoxfQ", s), GH_JWT_BAD_ENCODING);
    ROW("'/' in header", join3("eyJhbGciOiJSUzI1NiJ/", p, s), GH_JWT_BAD_ENCODING);
    ROW("space in signature", join3(h, p, " AAAA"), GH_JWT_BAD_ENCODING);
    ROW("4n+1 signature", join3(h, p, "AAAAA"), GH_JWT_BAD_ENCODING);
    ROW("header not JSON", join3(bad_h, p, s), GH_JWT_BAD_HEADER);
    ROW("header an array", join3(arr_h, p, s), GH_JWT_BAD_HEADER);
    ROW("header with duplicate alg", join3(dup_h, p, s), GH_JWT_BAD_HEADER);
    ROW("alg a number", join3(num_h, p, s), GH_JWT_BAD_HEADER);
    ROW("kid a number", join3(kidnum_h, p, s), GH_JWT_BAD_HEADER);
    ROW("kid with a newline", join3(kidctl_h, p, s), GH_JWT_BAD_HEADER);
    ROW("kid empty", join3(kidempty_h, p, s), GH_JWT_BAD_HEADER);
    ROW("payload not JSON (signed)", rs256_token("not json"), GH_JWT_BAD_PAYLOAD);
    ROW("payload an array (signed)", rs256_token("[1]"), GH_JWT_BAD_PAYLOAD);
    ROW("payload with duplicate exp (signed)",
        rs256_token("{\"exp\":1,\"exp\":1800000000,\"iss\":\"https://issuer.example\"}"),
        GH_JWT_BAD_PAYLOAD);
    ROW("JSON serialization", strdup("{\"payload\":\"e30\",\"signatures\":[]}"), GH_JWT_MALFORMED);
#undef ROW
    for (size_t i = 0; i < n; i++) {
        enum gh_jwt_result r = gh_jwt_verify(T.v, T.keys, S(rows[i].tok), NOW, &out);
        if (r != rows[i].want)
            mismatch(&ck, "%s: got %s, want %s", rows[i].name, gh_jwt_result_str(r),
                     gh_jwt_result_str(rows[i].want));
        free(rows[i].tok);
    }
    /* No keys at all (a source not loaded yet). */
    assert_int_equal(gh_jwt_verify(T.v, NULL, S(good), NOW, &out), GH_JWT_UNKNOWN_KID);
    BIO_free(bio);
    OPENSSL_free(der);
    free(good);
    free(h);
    free(p);
    free(s);
    free(pc);
    free(none_h);
    free(none2_h);
    free(hs_h);
    free(padded_s);
    free(padded_h);
    free(bad_h);
    free(arr_h);
    free(dup_h);
    free(num_h);
    free(kidnum_h);
    free(kidctl_h);
    free(kidempty_h);
    assert_int_equal(ck.failures, 0);
}

/* A token of <alg> whose length is as close to <target> as possible without
 * going over. */
static char *sized_token(int a, size_t target)
{
    char hdr[128], *payload = NULL, *tok;
    size_t hlen, siglen = 0, pad = 0;

    snprintf(hdr, sizeof(hdr), "{\"alg\":\"%s\",\"kid\":\"%s\"}", algs[a].name, algs[a].kid);
    tok = make_token(algs[a].name, *algs[a].key, hdr, CLAIMS_OK);
    siglen = strlen(strrchr(tok, '.') + 1);
    free(tok);
    hlen = GH_B64URL_LEN(strlen(hdr));
    for (;;) {
        size_t next = pad + 1, plen = strlen(CLAIMS_OK) + strlen(",\"pad\":\"\"") + next;
        if (hlen + 1 + GH_B64URL_LEN(plen) + 1 + siglen > target) break;
        pad = next;
    }
    {
        char *ch = malloc(pad + 32), *fill = malloc(pad + 1);
        memset(fill, 'x', pad);
        fill[pad] = '\0';
        snprintf(ch, pad + 32, "{\"pad\":\"%s\"}", fill);
        payload = claims(ch);
        free(ch);
        free(fill);
    }
    tok = make_token(algs[a].name, *algs[a].key, hdr, payload);
    free(payload);
    return tok;
}

static void test_sizes(void **state)
{
    struct gh_jwt_policy big = base_policy;
    struct gh_jwt_verifier *v;
    struct gh_jwt_claims out;
    struct gh_err err;
    char *tok;

    tok = sized_token(6, GH_JWT_DEFAULT_MAX_TOKEN); /* ES256 */
    assert_true(strlen(tok) > GH_JWT_DEFAULT_MAX_TOKEN - 4);
    assert_int_equal(gh_jwt_verify(T.v, T.keys, S(tok), NOW, &out), GH_JWT_OK);
    free(tok);
    tok = sized_token(0, 12000); /* RS256, over the default */
    assert_int_equal(gh_jwt_verify(T.v, T.keys, S(tok), NOW, &out), GH_JWT_TOO_LARGE);
    big.max_token_bytes = 16384;
    v = gh_jwt_verifier_new(&big, &err);
    assert_non_null(v);
    assert_int_equal(gh_jwt_verify(v, T.keys, S(tok), NOW, &out), GH_JWT_OK);
    free(tok);
    tok = sized_token(8, 16384); /* EdDSA, at the raised limit */
    assert_int_equal(gh_jwt_verify(v, T.keys, S(tok), NOW, &out), GH_JWT_OK);
    free(tok);
    tok = sized_token(8, 16390);
    assert_int_equal(gh_jwt_verify(v, T.keys, S(tok), NOW, &out), GH_JWT_TOO_LARGE);
    free(tok);
    gh_jwt_verifier_free(v);
}

/* ---- keys: which one verifies ---- */

static void test_key_selection(void **state)
{
    struct gh_jwt_claims out;
    char *payload = claims(NULL), *tok;
    unsigned char der[128];
    size_t derlen = sizeof(der);
    EVP_MD_CTX *ctx;
    struct gh_jwks *only_ed;
    struct gh_err err;

    /* An ES256 token naming the RSA key: the key's kind decides. */
    tok = make_token("ES256", T.p256, "{\"alg\":\"ES256\",\"kid\":\"rsa-1\"}", payload);
    assert_int_equal(gh_jwt_verify(T.v, T.keys, S(tok), NOW, &out), GH_JWT_KEY_MISMATCH);
    free(tok);
    /* ES384 signed by P-384 but naming the P-256 key: P-256 is for ES256 only. */
    tok = make_token("ES384", T.p384, "{\"alg\":\"ES384\",\"kid\":\"p256-1\"}", payload);
    assert_int_equal(gh_jwt_verify(T.v, T.keys, S(tok), NOW, &out), GH_JWT_KEY_MISMATCH);
    free(tok);
    /* A PS256 token naming the key whose JWK says RS256. */
    tok = make_token("PS256", T.rsa, "{\"alg\":\"PS256\",\"kid\":\"rsa-rs256\"}", payload);
    assert_int_equal(gh_jwt_verify(T.v, T.keys, S(tok), NOW, &out), GH_JWT_KEY_MISMATCH);
    free(tok);
    tok = make_token("RS256", T.rsa, "{\"alg\":\"RS256\",\"kid\":\"rsa-rs256\"}", payload);
    assert_int_equal(gh_jwt_verify(T.v, T.keys, S(tok), NOW, &out), GH_JWT_OK);
    free(tok);
    /* Without kid, against a set with no key of the kind. */
    only_ed = parse_one(T.jwk_ed, &err);
    assert_non_null(only_ed);
    tok = make_token("RS256", T.rsa, "{\"alg\":\"RS256\"}", payload);
    assert_int_equal(gh_jwt_verify(T.v, only_ed, S(tok), NOW, &out), GH_JWT_NO_KEY);
    assert_int_equal(gh_jwt_verify(T.v, NULL, S(tok), NOW, &out), GH_JWT_NO_KEY);
    free(tok);
    /* Without kid, signed by a key not in the set. */
    tok = make_token("EdDSA", T.ed, "{\"alg\":\"EdDSA\"}", payload);
    assert_int_equal(gh_jwt_verify(T.v, T.keys, S(tok), NOW, &out), GH_JWT_OK);
    free(tok);
    {
        EVP_PKEY *other = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
        tok = make_token("EdDSA", other, "{\"alg\":\"EdDSA\"}", payload);
        assert_int_equal(gh_jwt_verify(T.v, T.keys, S(tok), NOW, &out), GH_JWT_BAD_SIGNATURE);
        free(tok);
        EVP_PKEY_free(other);
    }
    /* An ES256 signature in DER instead of r||s is refused. */
    {
        char *h = b64s("{\"alg\":\"ES256\",\"kid\":\"p256-1\"}"), *p = b64s(payload);
        char *input = cat3(h, ".", p), *sig;
        ctx = EVP_MD_CTX_new();
        EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, T.p256);
        EVP_DigestSign(ctx, der, &derlen, (unsigned char *)input, strlen(input));
        EVP_MD_CTX_free(ctx);
        sig = b64(der, derlen);
        tok = cat3(input, ".", sig);
        assert_int_equal(gh_jwt_verify(T.v, T.keys, S(tok), NOW, &out), GH_JWT_BAD_SIGNATURE);
        free(tok);
        free(sig);
        free(h);
        free(p);
        free(input);
    }
    gh_jwks_release(only_ed);
    free(payload);
}

/* ---- claim mapping ---- */

static enum gh_jwt_result verify_claims(const struct gh_jwt_verifier *v, const char *changes,
                                        struct gh_jwt_claims *out)
{
    char *payload = claims(changes);
    char *tok = make_token("ES256", T.p256, "{\"alg\":\"ES256\",\"kid\":\"p256-1\"}", payload);
    enum gh_jwt_result r = gh_jwt_verify(v, T.keys, S(tok), NOW, out);

    free(payload);
    free(tok);
    return r;
}

static void test_claims(void **state)
{
    static const struct {
        const char *changes;
        enum gh_jwt_result want;
        const char *failed;
        const char *tenant, *subject, *scopes;
        size_t nroles;
    } rows[] = {
        {NULL, GH_JWT_OK, NULL, "acme", "user-1", "read write", 2},
        {"{\"org_id\":4711}", GH_JWT_OK, NULL, "4711", "user-1", "read write", 2},
        {"{\"org_id\":null}", GH_JWT_MISSING_CLAIM, "org_id", 0, 0, 0, 0},
        {"{\"org_id\":\"\"}", GH_JWT_BAD_CLAIM, "org_id", 0, 0, 0, 0},
        {"{\"org_id\":true}", GH_JWT_BAD_CLAIM, "org_id", 0, 0, 0, 0},
        {"{\"org_id\":\"a\\r\\nX-Injected: 1\"}", GH_JWT_BAD_CLAIM, "org_id", 0, 0, 0, 0},
        {"{\"org_id\":\"" /* 129 bytes */
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
         GH_JWT_CLAIM_TOO_LONG, "org_id", 0, 0, 0, 0},
        {"{\"org_id\":\"" /* 128 bytes */
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
         GH_JWT_OK, NULL, NULL, "user-1", "read write", 2},
        {"{\"sub\":null}", GH_JWT_OK, NULL, "acme", "", "read write", 2},
        {"{\"sub\":12}", GH_JWT_BAD_CLAIM, "sub", 0, 0, 0, 0},
        {"{\"scope\":\"  a  b \"}", GH_JWT_OK, NULL, "acme", "user-1", "a b", 2},
        {"{\"scope\":null,\"scp\":[\"x\",\"y:z\"]}", GH_JWT_OK, NULL, "acme", "user-1", "x y:z", 2},
        {"{\"scope\":[\"x\",\"y\"]}", GH_JWT_OK, NULL, "acme", "user-1", "x y", 2},
        {"{\"scope\":null}", GH_JWT_OK, NULL, "acme", "user-1", "", 2},
        {"{\"scope\":\"a\\tb\"}", GH_JWT_BAD_CLAIM, "scope", 0, 0, 0, 0},
        {"{\"scope\":\"a \\\"b\\\"\"}", GH_JWT_BAD_CLAIM, "scope", 0, 0, 0, 0},
        {"{\"scope\":null,\"scp\":[\"x\",1]}", GH_JWT_BAD_CLAIM, "scp", 0, 0, 0, 0},
        {"{\"scope\":7}", GH_JWT_BAD_CLAIM, "scope", 0, 0, 0, 0},
        {"{\"roles\":null}", GH_JWT_OK, NULL, "acme", "user-1", "read write", 0},
        {"{\"roles\":\"admin\"}", GH_JWT_BAD_CLAIM, "roles", 0, 0, 0, 0},
        {"{\"roles\":[\"a\",2]}", GH_JWT_BAD_CLAIM, "roles", 0, 0, 0, 0},
        {"{\"roles\":[\"\"]}", GH_JWT_BAD_CLAIM, "roles", 0, 0, 0, 0},
        {"{\"roles\":[\"x admin\"]}", GH_JWT_BAD_CLAIM, "roles", 0, 0, 0, 0},
        {"{\"roles\":[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\",\"10\",\"11\",\"12\","
         "\"13\",\"14\",\"15\",\"16\",\"17\"]}",
         GH_JWT_CLAIM_TOO_LONG, "roles", 0, 0, 0, 0},
        {"{\"jti\":[1]}", GH_JWT_BAD_CLAIM, "jti", 0, 0, 0, 0},
        {"{\"exp\":1700000600.75}", GH_JWT_OK, NULL, "acme", "user-1", "read write", 2},
        {"{\"exp\":1e300}", GH_JWT_BAD_CLAIM, "exp", 0, 0, 0, 0},
        {"{\"aud\":[\"api://gatehouse\",3]}", GH_JWT_BAD_CLAIM, "aud", 0, 0, 0, 0},
        {"{\"aud\":{}}", GH_JWT_BAD_CLAIM, "aud", 0, 0, 0, 0},
    };
    struct checker ck = {"claims", 0};
    struct gh_jwt_claims out;
    struct gh_jwt_policy p = base_policy;
    struct gh_jwt_verifier *v;
    struct gh_err err;

    for (size_t i = 0; i < ARRAY_LEN(rows); i++) {
        enum gh_jwt_result r = verify_claims(T.v, rows[i].changes, &out);
        const char *ch = rows[i].changes ? rows[i].changes : "(none)";
        if (r != rows[i].want) {
            mismatch(&ck, "%s: got %s, want %s", ch, gh_jwt_result_str(r),
                     gh_jwt_result_str(rows[i].want));
            continue;
        }
        if (rows[i].failed &&
            (out.failed_claim == NULL || strcmp(out.failed_claim, rows[i].failed)))
            mismatch(&ck, "%s: failed claim %s", ch, out.failed_claim ? out.failed_claim : "NULL");
        if (r != GH_JWT_OK) {
            if (out.tenant[0] || out.subject[0] || out.nscopes || out.nroles)
                mismatch(&ck, "%s: claims left behind after a refusal", ch);
            continue;
        }
        if ((rows[i].tenant && strcmp(out.tenant, rows[i].tenant)) ||
            strcmp(out.subject, rows[i].subject) || strcmp(out.scopes, rows[i].scopes) ||
            out.nroles != rows[i].nroles)
            mismatch(&ck, "%s: mapped tenant \"%s\" subject \"%s\" scopes \"%s\" roles %zu", ch,
                     out.tenant, out.subject, out.scopes, out.nroles);
    }
    assert_int_equal(ck.failures, 0);

    assert_int_equal(verify_claims(T.v, NULL, &out), GH_JWT_OK);
    assert_true(gh_jwt_claims_has_scope(&out, "read", 4));
    assert_true(gh_jwt_claims_has_scope(&out, "write", 5));
    assert_false(gh_jwt_claims_has_scope(&out, "rea", 3));
    assert_false(gh_jwt_claims_has_scope(&out, "read write", 10));
    assert_false(gh_jwt_claims_has_scope(&out, "", 0));
    assert_true(gh_jwt_claims_has_role(&out, "admin", 5));
    assert_false(gh_jwt_claims_has_role(&out, "adm", 3));

    /* Policy variants: other claim names, exp optional, typ, no iss/aud. */
    p.tenant_claim = "tid";
    p.subject_claim = "email";
    p.scope_claim = "perms";
    p.roles_claim = NULL;
    p.exp_optional = true;
    p.issuer = NULL;
    p.naudiences = 0;
    p.typ = "at+jwt";
    v = gh_jwt_verifier_new(&p, &err);
    assert_non_null(v);
    {
        const char *ch = "{\"tid\":\"t-9\",\"email\":\"a@b.example\",\"perms\":[\"p1\"],"
                         "\"exp\":null,\"iss\":\"whoever\",\"aud\":\"whatever\"}";
        char *payload = claims(ch);
        char *tok = make_token(
            "EdDSA", T.ed, "{\"alg\":\"EdDSA\",\"kid\":\"ed-1\",\"typ\":\"application/AT+JWT\"}",
            payload);
        assert_int_equal(gh_jwt_verify(v, T.keys, S(tok), NOW, &out), GH_JWT_OK);
        assert_string_equal(out.tenant, "t-9");
        assert_string_equal(out.subject, "a@b.example");
        assert_string_equal(out.scopes, "p1");
        assert_int_equal(out.nroles, 0);
        assert_int_equal(out.exp, 0);
        free(tok);
        tok = make_token("EdDSA", T.ed, "{\"alg\":\"EdDSA\",\"kid\":\"ed-1\",\"typ\":\"JWT\"}",
                         payload);
        assert_int_equal(gh_jwt_verify(v, T.keys, S(tok), NOW, &out), GH_JWT_TYP_MISMATCH);
        free(tok);
        tok = make_token("EdDSA", T.ed, "{\"alg\":\"EdDSA\",\"kid\":\"ed-1\"}", payload);
        assert_int_equal(gh_jwt_verify(v, T.keys, S(tok), NOW, &out), GH_JWT_TYP_MISMATCH);
        free(tok);
        free(payload);
    }
    gh_jwt_verifier_free(v);
}

/* The claims and header are read by jwt.c's own JSON reader: these rows are
 * raw payload texts, signed as they are. */
static enum gh_jwt_result verify_raw(const char *header, const char *payload,
                                     struct gh_jwt_claims *out)
{
    char *tok = make_token("ES256", T.p256, header, payload);
    enum gh_jwt_result r = gh_jwt_verify(T.v, T.keys, S(tok), NOW, out);

    free(tok);
    return r;
}

#define BASE_CLAIMS                                                                                \
    "\"iss\":\"https://issuer.example\",\"aud\":\"api://gatehouse\",\"org_id\":\"acme\","          \
    "\"exp\":1700000600"

static void test_json_reader(void **state)
{
    static const struct {
        const char *name;
        const char *payload;
        enum gh_jwt_result want;
        const char *subject;
    } rows[] = {
        {"plain", "{" BASE_CLAIMS ",\"sub\":\"u\"}", GH_JWT_OK, "u"},
        {"whitespace around", " \t\r\n{ " BASE_CLAIMS " , \"sub\" : \"u\" }\n", GH_JWT_OK, "u"},
        {"escaped member name", "{" BASE_CLAIMS ",\"\\u0073ub\":\"u\"}", GH_JWT_OK, "u"},
        {"escapes in a value", "{" BASE_CLAIMS ",\"sub\":\"a\\/b\\\"c\\\\d\"}", GH_JWT_OK,
         "a/b\"c\\d"},
        {"BMP escape", "{" BASE_CLAIMS ",\"sub\":\"\\u00e9\\u20ac\"}", GH_JWT_OK,
         "\xc3\xa9\xe2\x82\xac"},
        {"surrogate pair", "{" BASE_CLAIMS ",\"sub\":\"\\ud83d\\ude00\"}", GH_JWT_OK,
         "\xf0\x9f\x98\x80"},
        {"raw UTF-8", "{" BASE_CLAIMS ",\"sub\":\"\xc3\xa9\xf0\x9f\x98\x80\"}", GH_JWT_OK,
         "\xc3\xa9\xf0\x9f\x98\x80"},
        {"nested values skipped",
         "{" BASE_CLAIMS ",\"x\":{\"a\":[1,2.5e-3,-0,true,false,null,{\"b\":{}}],\"a2\":[]},"
         "\"sub\":\"u\"}",
         GH_JWT_OK, "u"},
        {"nested duplicates are not ours to judge",
         "{" BASE_CLAIMS ",\"x\":{\"a\":1,\"a\":2},\"sub\":\"u\"}", GH_JWT_OK, "u"},
        {"exp with exponent", "{" BASE_CLAIMS ",\"sub\":\"u\",\"nbf\":1.6e9}", GH_JWT_OK, "u"},
        {"duplicate member", "{" BASE_CLAIMS ",\"exp\":1800000000}", GH_JWT_BAD_PAYLOAD, NULL},
        {"duplicate through an escape", "{" BASE_CLAIMS ",\"\\u0065xp\":1800000000}",
         GH_JWT_BAD_PAYLOAD, NULL},
        {"escaped NUL", "{" BASE_CLAIMS ",\"sub\":\"a\\u0000b\"}", GH_JWT_BAD_PAYLOAD, NULL},
        {"lone high surrogate", "{" BASE_CLAIMS ",\"sub\":\"\\ud83d\"}", GH_JWT_BAD_PAYLOAD, NULL},
        {"lone low surrogate", "{" BASE_CLAIMS ",\"sub\":\"\\ude00x\"}", GH_JWT_BAD_PAYLOAD, NULL},
        {"bad escape", "{" BASE_CLAIMS ",\"sub\":\"\\x41\"}", GH_JWT_BAD_PAYLOAD, NULL},
        {"raw control character", "{" BASE_CLAIMS ",\"sub\":\"a\tb\"}", GH_JWT_BAD_PAYLOAD, NULL},
        {"overlong UTF-8", "{" BASE_CLAIMS ",\"sub\":\"\xc0\xaf\"}", GH_JWT_BAD_PAYLOAD, NULL},
        {"UTF-8 surrogate", "{" BASE_CLAIMS ",\"sub\":\"\xed\xa0\x80\"}", GH_JWT_BAD_PAYLOAD, NULL},
        {"truncated UTF-8", "{" BASE_CLAIMS ",\"sub\":\"\xe2\x82\"}", GH_JWT_BAD_PAYLOAD, NULL},
        {"trailing garbage", "{" BASE_CLAIMS "} x", GH_JWT_BAD_PAYLOAD, NULL},
        {"two objects", "{" BASE_CLAIMS "}{}", GH_JWT_BAD_PAYLOAD, NULL},
        {"trailing comma", "{" BASE_CLAIMS ",}", GH_JWT_BAD_PAYLOAD, NULL},
        {"single quotes", "{" BASE_CLAIMS ",'sub':'u'}", GH_JWT_BAD_PAYLOAD, NULL},
        {"leading zero", "{" BASE_CLAIMS ",\"nbf\":01}", GH_JWT_BAD_PAYLOAD, NULL},
        {"bare dot", "{" BASE_CLAIMS ",\"nbf\":1.}", GH_JWT_BAD_PAYLOAD, NULL},
        {"plus sign", "{" BASE_CLAIMS ",\"nbf\":+1}", GH_JWT_BAD_PAYLOAD, NULL},
        {"NaN", "{" BASE_CLAIMS ",\"nbf\":NaN}", GH_JWT_BAD_PAYLOAD, NULL},
        {"unclosed", "{" BASE_CLAIMS, GH_JWT_BAD_PAYLOAD, NULL},
        {"BOM", "\xef\xbb\xbf{" BASE_CLAIMS "}", GH_JWT_BAD_PAYLOAD, NULL},
        {"exp beyond 10^18", "{" BASE_CLAIMS ",\"nbf\":1e19}", GH_JWT_BAD_CLAIM, NULL},
        {"tiny exponent", "{" BASE_CLAIMS ",\"nbf\":5e-999999999}", GH_JWT_OK, ""},
    };
    struct checker ck = {"json reader", 0};
    const char *hdr = "{\"alg\":\"ES256\",\"kid\":\"p256-1\"}";
    struct gh_jwt_claims out;
    char deep[400], many[8192];
    size_t o;

    for (size_t i = 0; i < ARRAY_LEN(rows); i++) {
        enum gh_jwt_result r = verify_raw(hdr, rows[i].payload, &out);
        if (r != rows[i].want)
            mismatch(&ck, "%s: got %s, want %s", rows[i].name, gh_jwt_result_str(r),
                     gh_jwt_result_str(rows[i].want));
        else if (r == GH_JWT_OK && strcmp(out.subject, rows[i].subject) != 0)
            mismatch(&ck, "%s: subject \"%s\"", rows[i].name, out.subject);
    }
    /* Nesting: 31 levels under the top object are fine, 32 are not. */
    for (int depth = 31; depth <= 32; depth++) {
        o = (size_t)snprintf(deep, sizeof(deep), "{" BASE_CLAIMS ",\"x\":");
        for (int i = 0; i < depth; i++)
            deep[o++] = '[';
        for (int i = 0; i < depth; i++)
            deep[o++] = ']';
        snprintf(deep + o, sizeof(deep) - o, "}");
        if (verify_raw(hdr, deep, &out) != (depth == 31 ? GH_JWT_OK : GH_JWT_BAD_PAYLOAD))
            mismatch(&ck, "depth %d", depth);
    }
    /* Members: 128 in all are fine, 129 are not. */
    for (int n = 128; n <= 129; n++) {
        o = (size_t)snprintf(many, sizeof(many), "{" BASE_CLAIMS);
        for (int i = 4; i < n; i++)
            o += (size_t)snprintf(many + o, sizeof(many) - o, ",\"m%d\":%d", i, i);
        snprintf(many + o, sizeof(many) - o, "}");
        if (verify_raw(hdr, many, &out) != (n == 128 ? GH_JWT_OK : GH_JWT_BAD_PAYLOAD))
            mismatch(&ck, "%d members", n);
    }
    /* The header goes through the same reader. */
    if (verify_raw("{\"\\u0061lg\":\"ES\\u0032\\u00356\",\"kid\":\"p256\\u002d1\"}",
                   "{" BASE_CLAIMS "}", &out) != GH_JWT_OK ||
        strcmp(out.kid, "p256-1") != 0)
        mismatch(&ck, "escaped header members");
    if (verify_raw("{\"alg\":\"ES256\",\"\\u0061lg\":\"none\",\"kid\":\"p256-1\"}",
                   "{" BASE_CLAIMS "}", &out) != GH_JWT_BAD_HEADER)
        mismatch(&ck, "header with alg twice through an escape");
    if (verify_raw("{\"alg\":\"ES256\",\"kid\":\"p256-1\",\"crit\":null}", "{" BASE_CLAIMS "}",
                   &out) != GH_JWT_CRIT_UNSUPPORTED)
        mismatch(&ck, "crit null");
    if (verify_raw("{\"alg\":\"ES256\",\"kid\":\"p256-1\",\"typ\":7}", "{" BASE_CLAIMS "}", &out) !=
        GH_JWT_BAD_HEADER)
        mismatch(&ck, "typ a number");
    if (verify_raw("{\"alg\":\"ES256\",\"kid\":\"p256\\u00001\"}", "{" BASE_CLAIMS "}", &out) !=
        GH_JWT_BAD_HEADER)
        mismatch(&ck, "kid with an escaped NUL");
    assert_int_equal(ck.failures, 0);
}

static void test_policy(void **state)
{
    struct gh_jwt_policy p = base_policy;
    struct gh_jwt_claims out;
    struct gh_err err;
    struct gh_jwt_verifier *v;
    char *payload = claims(NULL), *tok;

    p.allowed_algs = GH_JWA_BIT(GH_JWA_ES256);
    v = gh_jwt_verifier_new(&p, &err);
    assert_non_null(v);
    tok = make_token("RS256", T.rsa, "{\"alg\":\"RS256\",\"kid\":\"rsa-1\"}", payload);
    assert_int_equal(gh_jwt_verify(v, T.keys, S(tok), NOW, &out), GH_JWT_ALG_NOT_ALLOWED);
    free(tok);
    tok = make_token("ES256", T.p256, "{\"alg\":\"ES256\",\"kid\":\"p256-1\"}", payload);
    assert_int_equal(gh_jwt_verify(v, T.keys, S(tok), NOW, &out), GH_JWT_OK);
    /* gh_jwt_verify_sig honours the list too. */
    assert_int_equal(gh_jwt_verify_sig(v, GH_JWA_RS256, &T.keys->keys[0], "x", 1, "y", 1),
                     GH_JWT_ALG_NOT_ALLOWED);
    assert_int_equal(gh_jwt_verify_sig(v, GH_JWA_ES256, &T.keys->keys[0], "x", 1, "y", 1),
                     GH_JWT_KEY_MISMATCH);
    free(tok);
    gh_jwt_verifier_free(v);

    /* Bits outside the supported algorithms (HS*, none) cannot be allowed. */
    p.allowed_algs = 1u;
    assert_null(gh_jwt_verifier_new(&p, &err));
    p.allowed_algs = 1u << 31;
    assert_null(gh_jwt_verifier_new(&p, &err));
    p.allowed_algs = 0;
    p.max_token_bytes = GH_JWT_MAX_TOKEN_LIMIT + 1;
    assert_null(gh_jwt_verifier_new(&p, &err));
    p.max_token_bytes = 0;
    p.naudiences = GH_JWT_MAX_AUDIENCES + 1;
    assert_null(gh_jwt_verifier_new(&p, &err));
    free(payload);
}

/* ---- JWKS parsing ---- */

/* {"keys":[<jwk> with <changes>]} (null values remove members). */
static char *jwks_with(json_t *jwk, const char *changes)
{
    json_t *k = json_deep_copy(jwk), *ch = json_loads(changes ? changes : "{}", 0, NULL), *val;
    const char *key;
    char *text;

    assert_non_null(ch);
    json_object_foreach(ch, key, val)
    {
        if (json_is_null(val))
            json_object_del(k, key);
        else
            json_object_set(k, key, val);
    }
    text = keys_text(json_pack("[o]", k));
    json_decref(ch);
    return text;
}

static char *b64_bn_mod(EVP_PKEY *k, const char *param, int delta, int size)
{
    BIGNUM *bn = NULL;
    unsigned char buf[512];
    int n;

    EVP_PKEY_get_bn_param(k, param, &bn);
    if (delta) BN_add_word(bn, (BN_ULONG)delta);
    n = size ? BN_bn2binpad(bn, buf, size) : BN_bn2bin(bn, buf);
    BN_free(bn);
    return b64(buf, (size_t)n);
}

struct jwks_row {
    const char *name;
    char *text;
    int ok;
    size_t nkeys, nskipped;
    const char *msg;
};

static void test_jwks_parse(void **state)
{
    char *y_off = b64_bn_mod(T.p256, OSSL_PKEY_PARAM_EC_PUB_Y, 1, 32);
    char *x384 = b64_bn_mod(T.p384, OSSL_PKEY_PARAM_EC_PUB_X, 0, 48);
    char changes[3][512];
    json_t *small = jwk_from(T.rsa1024, "small", NULL);
    struct jwks_row rows[40];
    size_t n = 0;
    struct checker ck = {"jwks", 0};

    snprintf(changes[0], sizeof(changes[0]), "{\"y\":\"%s\"}", y_off);
    snprintf(changes[1], sizeof(changes[1]), "{\"x\":\"%s\"}", x384);
    snprintf(changes[2], sizeof(changes[2]), "{\"crv\":\"P-384\"}");
#define ROW(nm, t, o, nk, ns, m) rows[n++] = (struct jwks_row){nm, t, o, nk, ns, m}
    ROW("rsa", jwks_with(T.jwk_rsa, NULL), 1, 1, 0, NULL);
    ROW("p256", jwks_with(T.jwk_p256, NULL), 1, 1, 0, NULL);
    ROW("p384", jwks_with(T.jwk_p384, NULL), 1, 1, 0, NULL);
    ROW("ed25519", jwks_with(T.jwk_ed, NULL), 1, 1, 0, NULL);
    ROW("private members ignored", jwks_with(T.jwk_p256, "{\"d\":\"AAAA\",\"p\":\"x\"}"), 1, 1, 0,
        NULL);
    ROW("use enc skipped", jwks_with(T.jwk_rsa, "{\"use\":\"enc\"}"), 1, 0, 1, NULL);
    ROW("use sig kept", jwks_with(T.jwk_rsa, "{\"use\":\"sig\"}"), 1, 1, 0, NULL);
    ROW("key_ops without verify", jwks_with(T.jwk_rsa, "{\"key_ops\":[\"encrypt\"]}"), 1, 0, 1,
        NULL);
    ROW("key_ops with verify", jwks_with(T.jwk_rsa, "{\"key_ops\":[\"sign\",\"verify\"]}"), 1, 1, 0,
        NULL);
    ROW("key_ops not an array", jwks_with(T.jwk_rsa, "{\"key_ops\":\"verify\"}"), 0, 0, 0,
        "keys[0]");
    ROW("alg unknown skipped", jwks_with(T.jwk_rsa, "{\"alg\":\"RSA-OAEP\"}"), 1, 0, 1, NULL);
    ROW("alg HS256 on RSA skipped", jwks_with(T.jwk_rsa, "{\"alg\":\"HS256\"}"), 1, 0, 1, NULL);
    ROW("alg not fitting", jwks_with(T.jwk_p256, "{\"alg\":\"RS256\"}"), 0, 0, 0, "does not fit");
    ROW("alg ES384 on P-256", jwks_with(T.jwk_p256, "{\"alg\":\"ES384\"}"), 0, 0, 0,
        "does not fit");
    ROW("kty unknown skipped", jwks_with(T.jwk_rsa, "{\"kty\":\"XYZ\"}"), 1, 0, 1, NULL);
    ROW("crv P-521 skipped", jwks_with(T.jwk_p256, "{\"crv\":\"P-521\"}"), 1, 0, 1, NULL);
    ROW("crv X25519 skipped", jwks_with(T.jwk_ed, "{\"crv\":\"X25519\",\"alg\":null}"), 1, 0, 1,
        NULL);
    ROW("oct refused", strdup("{\"keys\":[{\"kty\":\"oct\",\"k\":\"AAAA\"}]}"), 0, 0, 0, "oct");
    ROW("oct after a good key", jwks_with(T.jwk_rsa, NULL), 1, 1, 0, NULL);
    {
        char *t = rows[n - 1].text;
        t[strlen(t) - 2] = '\0'; /* drop "]}" */
        rows[n - 1].text = cat3(t, "", ",{\"kty\":\"oct\",\"k\":\"AAAA\",\"use\":\"enc\"}]}");
        rows[n - 1].ok = 0;
        rows[n - 1].msg = "keys[1]";
        free(t);
    }
    ROW("RSA 1024", jwks_with(small, NULL), 0, 0, 0, "1024 bits");
    ROW("RSA e = 1", jwks_with(T.jwk_rsa, "{\"e\":\"AQ\"}"), 0, 0, 0, "exponent");
    ROW("RSA e even", jwks_with(T.jwk_rsa, "{\"e\":\"AQAC\"}"), 0, 0, 0, "exponent");
    ROW("RSA n missing", jwks_with(T.jwk_rsa, "{\"n\":null}"), 0, 0, 0, "\"n\" is missing");
    ROW("RSA e with padding", jwks_with(T.jwk_rsa, "{\"e\":\"AQAB==\"}"), 0, 0, 0, "base64url");
    ROW("EC point off the curve", jwks_with(T.jwk_p256, changes[0]), 0, 0, 0, "not a valid");
    ROW("EC x of P-384 size on P-256", jwks_with(T.jwk_p256, changes[1]), 0, 0, 0, "32 bytes");
    ROW("EC P-256 point as P-384", jwks_with(T.jwk_p256, changes[2]), 0, 0, 0, "48 bytes");
    ROW("EC y missing", jwks_with(T.jwk_p256, "{\"y\":null}"), 0, 0, 0, "\"y\" is missing");
    ROW("Ed25519 x short", jwks_with(T.jwk_ed, "{\"x\":\"AAAA\"}"), 0, 0, 0, "32 bytes");
    ROW("kid not a string", jwks_with(T.jwk_rsa, "{\"kid\":1}"), 0, 0, 0, "kid");
    ROW("kid with a control character", jwks_with(T.jwk_rsa, "{\"kid\":\"a\\u0001\"}"), 0, 0, 0,
        "kid");
    ROW("kty missing", jwks_with(T.jwk_rsa, "{\"kty\":null}"), 0, 0, 0, "kty");
    ROW("not JSON", strdup("{\"keys\":["), 0, 0, 0, "not valid JSON");
    ROW("no keys", strdup("{\"kids\":[]}"), 0, 0, 0, "\"keys\" array");
    ROW("empty keys", strdup("{\"keys\":[]}"), 1, 0, 0, NULL);
    ROW("key not an object", strdup("{\"keys\":[1]}"), 0, 0, 0, "keys[0]: not an object");
    ROW("duplicate member", strdup("{\"keys\":[],\"keys\":[]}"), 0, 0, 0, "JSON");
#undef ROW
    for (size_t i = 0; i < n; i++) {
        struct gh_err err;
        struct gh_jwks *set;
        err.msg[0] = '\0';
        set = parse_text(rows[i].text, &err);
        if ((set != NULL) != rows[i].ok)
            mismatch(&ck, "%s: %s (%s)", rows[i].name, set ? "accepted" : "refused", err.msg);
        else if (set && (set->nkeys != rows[i].nkeys || set->nskipped != rows[i].nskipped))
            mismatch(&ck, "%s: %zu keys, %zu skipped", rows[i].name, set->nkeys, set->nskipped);
        else if (!set && rows[i].msg && strstr(err.msg, rows[i].msg) == NULL)
            mismatch(&ck, "%s: message \"%s\" lacks \"%s\"", rows[i].name, err.msg, rows[i].msg);
        gh_jwks_release(set);
        free(rows[i].text);
    }
    /* Duplicate kids, and too many keys. */
    {
        json_t *arr = json_pack("[O,O]", T.jwk_rsa, T.jwk_rsa);
        char *text = keys_text(arr);
        struct gh_err err;
        assert_null(parse_text(text, &err));
        assert_non_null(strstr(err.msg, "keys[1]: duplicate kid"));
        free(text);
        arr = json_array();
        for (int i = 0; i <= GH_JWKS_MAX_KEYS; i++)
            json_array_append_new(arr, json_pack("{s:s}", "kty", "XYZ"));
        text = keys_text(arr);
        assert_null(parse_text(text, &err));
        free(text);
    }
    json_decref(small);
    free(y_off);
    free(x384);
    assert_int_equal(ck.failures, 0);
}

static void test_jwks_json_round_trip(void **state)
{
    struct gh_err err;
    char *text = gh_jwks_to_json(T.keys, &err), *again;
    struct gh_jwks *set;

    assert_non_null(text);
    assert_null(strstr(text, "\"d\""));
    set = parse_text(text, &err);
    assert_non_null(set);
    assert_int_equal(set->nkeys, T.keys->nkeys);
    for (size_t i = 0; i < set->nkeys; i++) {
        assert_int_equal(EVP_PKEY_eq(set->keys[i].pkey, T.keys->keys[i].pkey), 1);
        assert_string_equal(set->keys[i].kid, T.keys->keys[i].kid);
        assert_int_equal(set->keys[i].alg, T.keys->keys[i].alg);
        assert_int_equal(set->keys[i].kind, T.keys->keys[i].kind);
    }
    again = gh_jwks_to_json(set, &err);
    assert_string_equal(text, again);
    free(again);
    free(text);
    gh_jwks_release(set);

    /* gh_jwks_add keeps the public half and refuses what parse refuses. */
    set = gh_jwks_new();
    assert_int_equal(gh_jwks_add(set, T.p256, "own-1", GH_JWA_ES256, &err), GH_OK);
    assert_int_equal(gh_jwks_add(set, T.ed, "own-2", GH_JWA_UNKNOWN, &err), GH_OK);
    assert_int_equal(gh_jwks_add(set, T.rsa, "own-3", GH_JWA_PS256, &err), GH_OK);
    assert_int_equal(gh_jwks_add(set, T.p384, "own-1", GH_JWA_UNKNOWN, &err), GH_ERROR);
    assert_int_equal(gh_jwks_add(set, T.rsa1024, "own-4", GH_JWA_UNKNOWN, &err), GH_ERROR);
    assert_int_equal(gh_jwks_add(set, T.p384, "own-5", GH_JWA_ES256, &err), GH_ERROR);
    assert_int_equal(set->nkeys, 3);
    {
        EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, set->keys[0].pkey, NULL);
        assert_int_not_equal(EVP_PKEY_private_check(c), 1); /* no private key kept */
        EVP_PKEY_CTX_free(c);
    }
    text = gh_jwks_to_json(set, &err);
    assert_non_null(text);
    assert_null(strstr(text, "\"d\""));
    assert_non_null(strstr(text, "\"kid\":\"own-3\""));
    free(text);
    gh_jwks_release(set);
}

/* ---- signing ---- */

static void round_trip(enum gh_jwa alg)
{
    struct gh_err err;
    struct gh_jwt_signer *s = gh_jwt_signer_generate(alg, "gw-1", &err);
    struct gh_jwt_policy p = {.issuer = "gatehouse", .tenant_claim = "tenant"};
    struct gh_jwt_verifier *v = gh_jwt_verifier_new(&p, &err);
    json_t *c = json_pack("{s:s, s:s, s:s, s:I, s:I}", "iss", "gatehouse", "sub", "svc", "tenant",
                          "t1", "exp", (json_int_t)NOW + 60, "iat", (json_int_t)NOW);
    char *tok, *jwk, *jwks_text;
    struct gh_jwks *keys, *own;
    struct gh_jwt_claims out;
    json_t *jwk_json;

    assert_non_null(s);
    assert_non_null(v);
    assert_int_equal(gh_jwt_signer_alg(s), alg);
    assert_string_equal(gh_jwt_signer_kid(s), "gw-1");
    tok = gh_jwt_sign(s, c, &err);
    assert_non_null(tok);

    /* The exported JWK, re-imported, verifies. */
    jwk = gh_jwt_signer_jwk(s, &err);
    assert_non_null(jwk);
    assert_null(strstr(jwk, "\"d\""));
    jwk_json = json_loads(jwk, 0, NULL);
    keys = parse_one(jwk_json, &err);
    assert_non_null(keys);
    assert_int_equal(keys->keys[0].alg, alg);
    assert_int_equal(gh_jwt_verify(v, keys, S(tok), NOW, &out), GH_JWT_OK);
    assert_string_equal(out.kid, "gw-1");
    assert_string_equal(out.tenant, "t1");
    assert_string_equal(out.subject, "svc");
    assert_int_equal(out.alg, alg);

    /* And through a published set (gh_jwks_add, gh_jwks_to_json). */
    own = gh_jwks_new();
    assert_int_equal(gh_jwks_add(own, gh_jwt_signer_pkey(s), "gw-1", alg, &err), GH_OK);
    jwks_text = gh_jwks_to_json(own, &err);
    gh_jwks_release(keys);
    keys = parse_text(jwks_text, &err);
    assert_non_null(keys);
    assert_int_equal(gh_jwt_verify(v, keys, S(tok), NOW, &out), GH_JWT_OK);
    assert_int_equal(gh_jwt_verify(v, keys, S(tok), NOW + 61, &out), GH_JWT_EXPIRED);
    tok[strlen(tok) - 3] ^= 1;
    assert_int_not_equal(gh_jwt_verify(v, keys, S(tok), NOW, &out), GH_JWT_OK);

    /* Claims that are not an object are refused. */
    json_decref(c);
    c = json_pack("[i]", 1);
    assert_null(gh_jwt_sign(s, c, &err));

    json_decref(c);
    json_decref(jwk_json);
    free(jwks_text);
    free(jwk);
    free(tok);
    gh_jwks_release(keys);
    gh_jwks_release(own);
    gh_jwt_verifier_free(v);
    gh_jwt_signer_free(s);
}

static void test_sign_round_trip(void **state)
{
    struct gh_err err;
    struct gh_jwt_signer *s;
    EVP_PKEY *pub;
    unsigned char *der = NULL;
    const unsigned char *p;
    int len;

    round_trip(GH_JWA_ES256);
    round_trip(GH_JWA_EDDSA);

    /* An existing key works; a public-only key, RSA, P-384 and no kid do not. */
    s = gh_jwt_signer_new(T.p256, "k", &err);
    assert_non_null(s);
    gh_jwt_signer_free(s);
    len = i2d_PUBKEY(T.p256, &der);
    p = der;
    pub = d2i_PUBKEY(NULL, &p, len);
    assert_null(gh_jwt_signer_new(pub, "k", &err));
    assert_non_null(strstr(err.msg, "private"));
    assert_null(gh_jwt_signer_new(T.rsa, "k", &err));
    assert_null(gh_jwt_signer_new(T.p384, "k", &err));
    assert_null(gh_jwt_signer_new(T.ed, NULL, &err));
    assert_null(gh_jwt_signer_new(T.ed, "bad\nkid", &err));
    assert_null(gh_jwt_signer_generate(GH_JWA_RS256, "k", &err));
    EVP_PKEY_free(pub);
    OPENSSL_free(der);
}

/* One verifier and one key set shared by several threads, as workers share
 * them (run under TSan in CI to catch races). */
struct thread_arg {
    char *tokens[ARRAY_LEN(algs)];
    atomic_int failures;
};

static void *verify_thread(void *p)
{
    struct thread_arg *a = p;
    struct gh_jwt_claims out;

    for (int round = 0; round < 20; round++)
        for (size_t i = 0; i < ARRAY_LEN(algs); i++)
            if (gh_jwt_verify(T.v, T.keys, S(a->tokens[i]), NOW, &out) != GH_JWT_OK ||
                strcmp(out.tenant, "acme") != 0)
                atomic_fetch_add(&a->failures, 1);
    return NULL;
}

static void test_threads(void **state)
{
    struct thread_arg arg = {.tokens = {NULL}};
    pthread_t th[4];

    for (size_t i = 0; i < ARRAY_LEN(algs); i++) {
        char hdr[128];
        snprintf(hdr, sizeof(hdr), "{\"alg\":\"%s\",\"kid\":\"%s\"}", algs[i].name, algs[i].kid);
        arg.tokens[i] = make_token(algs[i].name, *algs[i].key, hdr, CLAIMS_OK);
    }
    for (int t = 0; t < 4; t++)
        assert_int_equal(pthread_create(&th[t], NULL, verify_thread, &arg), 0);
    for (int t = 0; t < 4; t++)
        pthread_join(th[t], NULL);
    for (size_t i = 0; i < ARRAY_LEN(algs); i++)
        free(arg.tokens[i]);
    assert_int_equal(atomic_load(&arg.failures), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64url),
        cmocka_unit_test(test_result_strings),
        cmocka_unit_test(test_wycheproof_jws),
        cmocka_unit_test(test_wycheproof_jwk),
        cmocka_unit_test(test_wycheproof_raw),
        cmocka_unit_test(test_cookbook),
        cmocka_unit_test(test_synthetic_algs),
        cmocka_unit_test(test_structure),
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_key_selection),
        cmocka_unit_test(test_claims),
        cmocka_unit_test(test_json_reader),
        cmocka_unit_test(test_policy),
        cmocka_unit_test(test_jwks_parse),
        cmocka_unit_test(test_jwks_json_round_trip),
        cmocka_unit_test(test_sign_round_trip),
        cmocka_unit_test(test_threads),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
