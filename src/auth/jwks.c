/* JWKS parsing into OpenSSL public keys, and back out to JSON; base64url and
 * JWA names for jwt.c. The contract is in auth/jwks.h. */
#include "auth/jwks.h"

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RSA_MIN_BITS   2048
#define RSA_MAX_BITS   8192
#define RSA_MAX_E_BITS 64

/* ---- JOSE basics ---- */

static const char *const jwa_names[GH_JWA_COUNT] = {
    [GH_JWA_RS256] = "RS256", [GH_JWA_RS384] = "RS384", [GH_JWA_RS512] = "RS512",
    [GH_JWA_PS256] = "PS256", [GH_JWA_PS384] = "PS384", [GH_JWA_PS512] = "PS512",
    [GH_JWA_ES256] = "ES256", [GH_JWA_ES384] = "ES384", [GH_JWA_EDDSA] = "EdDSA",
};

const char *gh_jwa_name(enum gh_jwa alg)
{
    if ((int)alg <= GH_JWA_UNKNOWN || alg >= GH_JWA_COUNT) return NULL;
    return jwa_names[alg];
}

enum gh_jwa gh_jwa_parse(const char *s, size_t len)
{
    for (int a = GH_JWA_UNKNOWN + 1; a < GH_JWA_COUNT; a++)
        if (strlen(jwa_names[a]) == len && memcmp(jwa_names[a], s, len) == 0) return (enum gh_jwa)a;
    return GH_JWA_UNKNOWN;
}

enum gh_jwk_kind gh_jwa_key_kind(enum gh_jwa alg)
{
    switch (alg) {
    case GH_JWA_RS256:
    case GH_JWA_RS384:
    case GH_JWA_RS512:
    case GH_JWA_PS256:
    case GH_JWA_PS384:
    case GH_JWA_PS512: return GH_JWK_RSA;
    case GH_JWA_ES256: return GH_JWK_P256;
    case GH_JWA_ES384: return GH_JWK_P384;
    case GH_JWA_EDDSA: return GH_JWK_ED25519;
    default: return 0;
    }
}

/* base64url digit values; -1 for everything else (ASCII only). */
static const signed char b64_val[128] = {
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, 62, -1, -1, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, -1, -1, -1, -1, -1, -1, -1, 0,
    1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
    23, 24, 25, -1, -1, -1, -1, 63, -1, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38,
    39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, -1, -1, -1, -1, -1,
};

static int b64_digit(char c)
{
    unsigned char u = (unsigned char)c;
    return u < 128 ? b64_val[u] : -1;
}

int gh_b64url_decode(const char *in, size_t len, unsigned char *out, size_t cap, size_t *outlen)
{
    size_t full = len / 4, rest = len % 4, o = 0;
    size_t need = full * 3 + (rest ? rest - 1 : 0);

    /* 4n+1 characters carry 6 bits of a byte that is never complete. */
    if (rest == 1 || need > cap) return GH_ERROR;
    for (size_t i = 0; i < full; i++) {
        int a = b64_digit(in[4 * i]), b = b64_digit(in[4 * i + 1]);
        int c = b64_digit(in[4 * i + 2]), d = b64_digit(in[4 * i + 3]);
        if ((a | b | c | d) < 0) return GH_ERROR;
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | (uint32_t)d;
        out[o++] = (unsigned char)(v >> 16);
        out[o++] = (unsigned char)(v >> 8);
        out[o++] = (unsigned char)v;
    }
    if (rest) {
        const char *t = in + 4 * full;
        int a = b64_digit(t[0]), b = b64_digit(t[1]), c = rest == 3 ? b64_digit(t[2]) : 0;
        if ((a | b | c) < 0) return GH_ERROR;
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6;
        /* RFC 4648 §3.5: the unused low bits must be zero, or two encodings
         * would give the same bytes (a signature over one, a token with the
         * other). */
        if (rest == 2 ? (v & 0xffff) != 0 : (v & 0xff) != 0) return GH_ERROR;
        out[o++] = (unsigned char)(v >> 16);
        if (rest == 3) out[o++] = (unsigned char)(v >> 8);
    }
    *outlen = o;
    return GH_OK;
}

size_t gh_b64url_encode(const void *in, size_t len, char *out, size_t cap)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const unsigned char *p = in;
    size_t o = 0, i = 0;

    if (cap < GH_B64URL_LEN(len) + 1) return (size_t)-1;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = abc[v >> 18];
        out[o++] = abc[(v >> 12) & 63];
        out[o++] = abc[(v >> 6) & 63];
        out[o++] = abc[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        out[o++] = abc[v >> 18];
        out[o++] = abc[(v >> 12) & 63];
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        out[o++] = abc[v >> 18];
        out[o++] = abc[(v >> 12) & 63];
        out[o++] = abc[(v >> 6) & 63];
    }
    out[o] = '\0';
    return o;
}

/* ---- key import ---- */

/* import results; KEY_ERR is GH_ERROR so that `return gh_err_set(...)` works. */
enum { KEY_ERR = GH_ERROR, KEY_OK = 0, KEY_SKIP = 1 };

/* Optional string member <name>: 0 when absent, 1 when a string, -1 else. */
static int member_str(json_t *obj, const char *name, const char **s, size_t *len)
{
    json_t *v = json_object_get(obj, name);

    if (v == NULL) return 0;
    if (!json_is_string(v)) return -1;
    *s = json_string_value(v);
    *len = json_string_length(v);
    return 1;
}

/* Required base64url member <name> decoded into <buf> (at most <cap> bytes). */
static int member_b64(json_t *obj, const char *name, unsigned char *buf, size_t cap, size_t *len,
                      size_t i, struct gh_err *err)
{
    const char *s;
    size_t n;
    int rc = member_str(obj, name, &s, &n);

    *len = 0;
    if (rc == 0) return gh_err_set(err, NULL, 0, 0, "jwks: keys[%zu]: \"%s\" is missing", i, name);
    if (rc < 0)
        return gh_err_set(err, NULL, 0, 0, "jwks: keys[%zu]: \"%s\" is not a string", i, name);
    if (gh_b64url_decode(s, n, buf, cap, len) != GH_OK || *len == 0)
        return gh_err_set(err, NULL, 0, 0,
                          "jwks: keys[%zu]: \"%s\" is not base64url of 1..%zu bytes", i, name, cap);
    return GH_OK;
}

/* ROCA (CVE-2017-15361): moduli from the flawed Infineon generator are
 * 65537^a mod M for a primorial M, so n mod p lies in the subgroup that
 * 65537 generates mod p for every small prime p of M. A random modulus passes
 * this test for all 38 primes with negligible probability; the fingerprint is
 * the one published by the authors (crocs-muni/roca). Such keys are
 * factorable: refuse them. */
static bool rsa_roca_weak(const BIGNUM *n)
{
    static const unsigned short primes[] = {
        3,  5,  7,  11, 13, 17,  19,  23,  29,  31,  37,  41,  43,  47,  53,  59,  61,  67,  71,
        73, 79, 83, 89, 97, 101, 103, 107, 109, 113, 127, 131, 137, 139, 149, 151, 157, 163, 167};

    for (size_t i = 0; i < sizeof(primes) / sizeof(primes[0]); i++) {
        unsigned p = primes[i], g = 65537u % p, x = 1;
        BN_ULONG r = BN_mod_word(n, p);
        bool in_group = false;

        if (r == (BN_ULONG)-1) return false;
        do {
            if (x == r) in_group = true;
            x = x * g % p;
        } while (x != 1 && !in_group);
        if (!in_group) return false;
    }
    return true;
}

/* Checks an RSA public key's numbers; GH_OK or GH_ERROR with <err>. */
static int rsa_check(const BIGNUM *n, const BIGNUM *e, size_t i, struct gh_err *err)
{
    int bits = BN_num_bits(n);

    if (bits < RSA_MIN_BITS)
        return gh_err_set(err, NULL, 0, 0,
                          "jwks: keys[%zu]: RSA modulus of %d bits (at least %d required)", i, bits,
                          RSA_MIN_BITS);
    if (bits > RSA_MAX_BITS)
        return gh_err_set(err, NULL, 0, 0, "jwks: keys[%zu]: RSA modulus of %d bits (at most %d)",
                          i, bits, RSA_MAX_BITS);
    if (!BN_is_odd(n))
        return gh_err_set(err, NULL, 0, 0, "jwks: keys[%zu]: RSA modulus is even", i);
    /* e = 1 makes the "signature" the padded message itself; a huge e makes
     * every verification slow. */
    if (!BN_is_odd(e) || BN_num_bits(e) < 2 || BN_num_bits(e) > RSA_MAX_E_BITS)
        return gh_err_set(
            err, NULL, 0, 0,
            "jwks: keys[%zu]: RSA exponent must be odd, at least 3 and at most 64 bits", i);
    if (rsa_roca_weak(n))
        return gh_err_set(err, NULL, 0, 0,
                          "jwks: keys[%zu]: RSA modulus has the ROCA fingerprint (CVE-2017-15361)",
                          i);
    return GH_OK;
}

static EVP_PKEY *rsa_from_bn(const BIGNUM *n, const BIGNUM *e)
{
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *pkey = NULL;

    if (bld == NULL || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e))
        goto out;
    params = OSSL_PARAM_BLD_to_param(bld);
    ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    if (params == NULL || ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
        pkey = NULL;
out:
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    return pkey;
}

static int import_rsa(json_t *jk, size_t i, struct gh_jwk *k, struct gh_err *err)
{
    unsigned char nb[RSA_MAX_BITS / 8 + 1], eb[RSA_MAX_E_BITS / 8 + 1];
    size_t nlen, elen;
    BIGNUM *n = NULL, *e = NULL;
    int rc = KEY_ERR;

    if (member_b64(jk, "n", nb, sizeof(nb), &nlen, i, err) != GH_OK ||
        member_b64(jk, "e", eb, sizeof(eb), &elen, i, err) != GH_OK)
        goto out;
    n = BN_bin2bn(nb, (int)nlen, NULL);
    e = BN_bin2bn(eb, (int)elen, NULL);
    if (n == NULL || e == NULL) {
        gh_err_set(err, NULL, 0, 0, "jwks: keys[%zu]: out of memory", i);
        goto out;
    }
    if (rsa_check(n, e, i, err) != GH_OK) goto out;
    k->pkey = rsa_from_bn(n, e);
    if (k->pkey == NULL) {
        gh_err_set(err, NULL, 0, 0, "jwks: keys[%zu]: OpenSSL refused the RSA key", i);
        goto out;
    }
    k->kind = GH_JWK_RSA;
    k->bits = BN_num_bits(n);
    rc = KEY_OK;
out:
    BN_free(n);
    BN_free(e);
    return rc;
}

/* Builds an EC public key from its uncompressed point and checks it: on the
 * curve, not the point at infinity, of the group's order (RFC 7518 §6.2.1:
 * invalid-curve attacks need a point off the curve; OpenSSL's public check
 * catches it). */
static EVP_PKEY *ec_from_point(const char *group, unsigned char *pt, size_t ptlen)
{
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)group, 0),
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, pt, ptlen),
        OSSL_PARAM_construct_end(),
    };
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL), *check = NULL;
    EVP_PKEY *pkey = NULL;

    if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1) {
        pkey = NULL;
        goto out;
    }
    check = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    if (check == NULL || EVP_PKEY_public_check(check) != 1) {
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }
out:
    EVP_PKEY_CTX_free(check);
    EVP_PKEY_CTX_free(ctx);
    return pkey;
}

static int import_ec(json_t *jk, size_t i, const char *crv, size_t crvlen, struct gh_jwk *k,
                     struct gh_err *err)
{
    unsigned char pt[1 + 2 * 48], x[48], y[48];
    size_t size, xlen, ylen;
    const char *group;

    if (crvlen == 5 && memcmp(crv, "P-256", 5) == 0) {
        size = 32;
        group = "prime256v1";
        k->kind = GH_JWK_P256;
    } else if (crvlen == 5 && memcmp(crv, "P-384", 5) == 0) {
        size = 48;
        group = "secp384r1";
        k->kind = GH_JWK_P384;
    } else {
        return KEY_SKIP;
    }
    if (member_b64(jk, "x", x, sizeof(x), &xlen, i, err) != GH_OK ||
        member_b64(jk, "y", y, sizeof(y), &ylen, i, err) != GH_OK)
        return KEY_ERR;
    /* RFC 7518 §6.2.1.2: the full coordinate size, leading zeros kept. */
    if (xlen != size || ylen != size) {
        gh_err_set(err, NULL, 0, 0, "jwks: keys[%zu]: EC x and y must be %zu bytes each", i, size);
        return KEY_ERR;
    }
    pt[0] = 0x04;
    memcpy(pt + 1, x, size);
    memcpy(pt + 1 + size, y, size);
    k->pkey = ec_from_point(group, pt, 1 + 2 * size);
    if (k->pkey == NULL) {
        gh_err_set(err, NULL, 0, 0, "jwks: keys[%zu]: EC point is not a valid %.5s public key", i,
                   crv);
        return KEY_ERR;
    }
    k->bits = (int)size * 8;
    return KEY_OK;
}

static int import_okp(json_t *jk, size_t i, const char *crv, size_t crvlen, struct gh_jwk *k,
                      struct gh_err *err)
{
    unsigned char x[32];
    size_t xlen;

    if (crvlen != 7 || memcmp(crv, "Ed25519", 7) != 0) return KEY_SKIP;
    if (member_b64(jk, "x", x, sizeof(x), &xlen, i, err) != GH_OK) return KEY_ERR;
    if (xlen != 32) {
        gh_err_set(err, NULL, 0, 0, "jwks: keys[%zu]: Ed25519 x must be 32 bytes", i);
        return KEY_ERR;
    }
    k->pkey = EVP_PKEY_new_raw_public_key_ex(NULL, "ED25519", NULL, x, xlen);
    if (k->pkey == NULL) {
        gh_err_set(err, NULL, 0, 0, "jwks: keys[%zu]: OpenSSL refused the Ed25519 key", i);
        return KEY_ERR;
    }
    k->kind = GH_JWK_ED25519;
    k->bits = 256;
    return KEY_OK;
}

/* A kid is compared byte for byte and may end up in logs: printable only. */
static bool kid_ok(const char *s, size_t len)
{
    if (len == 0 || len > GH_JWK_KID_MAX) return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) return false;
    return true;
}

static int key_ops_has_verify(json_t *ops)
{
    size_t j;
    json_t *op;

    if (!json_is_array(ops)) return -1;
    json_array_foreach(ops, j, op)
    {
        if (!json_is_string(op)) return -1;
        if (strcmp(json_string_value(op), "verify") == 0) return 1;
    }
    return 0;
}

/* Reads entry <i> of "keys" into <k>: KEY_OK, KEY_SKIP, or KEY_ERR with <err>. */
static int import_key(json_t *jk, size_t i, struct gh_jwk *k, struct gh_err *err)
{
    const char *kty, *s, *crv = NULL;
    size_t ktylen, slen, crvlen = 0;
    json_t *ops;
    int rc;

    memset(k, 0, sizeof(*k));
    if (!json_is_object(jk))
        return gh_err_set(err, NULL, 0, 0, "jwks: keys[%zu]: not an object", i);
    if (member_str(jk, "kty", &kty, &ktylen) != 1)
        return gh_err_set(err, NULL, 0, 0, "jwks: keys[%zu]: \"kty\" missing or not a string", i);
    if (ktylen == 3 && memcmp(kty, "oct", 3) == 0)
        return gh_err_set(err, NULL, 0, 0,
                          "jwks: keys[%zu]: symmetric (\"oct\") key in a public key set: refused "
                          "(HMAC tokens are never verified against a JWKS)",
                          i);

    rc = member_str(jk, "kid", &s, &slen);
    if (rc < 0 || (rc == 1 && !kid_ok(s, slen)))
        return gh_err_set(err, NULL, 0, 0,
                          "jwks: keys[%zu]: \"kid\" must be a string of 1..%d printable bytes", i,
                          GH_JWK_KID_MAX);
    if (rc == 1) {
        memcpy(k->kid, s, slen);
        k->kid[slen] = '\0';
        k->kid_len = slen;
        k->has_kid = true;
    }

    /* RFC 7517 §4.2, §4.3: keys meant for something else are not ours. */
    rc = member_str(jk, "use", &s, &slen);
    if (rc < 0) return gh_err_set(err, NULL, 0, 0, "jwks: keys[%zu]: \"use\" is not a string", i);
    if (rc == 1 && !(slen == 3 && memcmp(s, "sig", 3) == 0)) return KEY_SKIP;
    ops = json_object_get(jk, "key_ops");
    if (ops != NULL) {
        rc = key_ops_has_verify(ops);
        if (rc < 0)
            return gh_err_set(err, NULL, 0, 0,
                              "jwks: keys[%zu]: \"key_ops\" is not an array of strings", i);
        if (rc == 0) return KEY_SKIP;
    }
    rc = member_str(jk, "alg", &s, &slen);
    if (rc < 0) return gh_err_set(err, NULL, 0, 0, "jwks: keys[%zu]: \"alg\" is not a string", i);
    if (rc == 1) {
        k->alg = gh_jwa_parse(s, slen);
        if (k->alg == GH_JWA_UNKNOWN) return KEY_SKIP; /* for an algorithm we never accept */
    }

    if ((ktylen == 2 && memcmp(kty, "EC", 2) == 0) || (ktylen == 3 && memcmp(kty, "OKP", 3) == 0)) {
        if (member_str(jk, "crv", &crv, &crvlen) != 1)
            return gh_err_set(err, NULL, 0, 0, "jwks: keys[%zu]: \"crv\" missing or not a string",
                              i);
    }
    if (ktylen == 3 && memcmp(kty, "RSA", 3) == 0)
        rc = import_rsa(jk, i, k, err);
    else if (ktylen == 2 && memcmp(kty, "EC", 2) == 0)
        rc = import_ec(jk, i, crv, crvlen, k, err);
    else if (ktylen == 3 && memcmp(kty, "OKP", 3) == 0)
        rc = import_okp(jk, i, crv, crvlen, k, err);
    else
        rc = KEY_SKIP;
    if (rc != KEY_OK) return rc;

    if (k->alg != GH_JWA_UNKNOWN && gh_jwa_key_kind(k->alg) != k->kind) {
        gh_err_set(err, NULL, 0, 0, "jwks: keys[%zu]: \"alg\" %s does not fit a %.3s key", i,
                   gh_jwa_name(k->alg), kty);
        EVP_PKEY_free(k->pkey);
        k->pkey = NULL;
        return KEY_ERR;
    }
    return KEY_OK;
}

/* ---- sets ---- */

struct gh_jwks *gh_jwks_new(void)
{
    struct gh_jwks *set = calloc(1, sizeof(*set));

    if (set != NULL) atomic_init(&set->refs, 1);
    return set;
}

static void jwks_free(struct gh_jwks *set)
{
    for (size_t i = 0; i < set->nkeys; i++)
        EVP_PKEY_free(set->keys[i].pkey);
    free(set->keys);
    free(set);
}

void gh_jwks_ref(struct gh_jwks *set)
{
    atomic_fetch_add_explicit(&set->refs, 1, memory_order_relaxed);
}

void gh_jwks_release(struct gh_jwks *set)
{
    if (set == NULL) return;
    if (atomic_fetch_sub_explicit(&set->refs, 1, memory_order_acq_rel) == 1) jwks_free(set);
}

const struct gh_jwk *gh_jwks_find(const struct gh_jwks *set, const char *kid, size_t len)
{
    if (set == NULL) return NULL;
    for (size_t i = 0; i < set->nkeys; i++) {
        const struct gh_jwk *k = &set->keys[i];
        if (k->has_kid && k->kid_len == len && memcmp(k->kid, kid, len) == 0) return k;
    }
    return NULL;
}

/* Appends <k> (taking its pkey, also on failure) unless its kid is taken. */
static int jwks_push(struct gh_jwks *set, struct gh_jwk *k, size_t i, struct gh_err *err)
{
    if (k->has_kid && gh_jwks_find(set, k->kid, k->kid_len) != NULL) {
        EVP_PKEY_free(k->pkey);
        return gh_err_set(err, NULL, 0, 0, "jwks: keys[%zu]: duplicate kid", i);
    }
    if (set->nkeys == set->cap) {
        size_t cap = set->cap ? 2 * set->cap : 4;
        struct gh_jwk *keys = realloc(set->keys, cap * sizeof(*keys));
        if (keys == NULL) {
            EVP_PKEY_free(k->pkey);
            return gh_err_set(err, NULL, 0, 0, "jwks: out of memory");
        }
        set->keys = keys;
        set->cap = cap;
    }
    set->keys[set->nkeys++] = *k;
    return GH_OK;
}

struct gh_jwks *gh_jwks_parse(const char *json, size_t len, struct gh_err *err)
{
    json_error_t jerr;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr), *keys, *jk;
    struct gh_jwks *set = NULL;
    size_t i;

    if (root == NULL) {
        gh_err_set(err, NULL, 0, 0, "jwks: not valid JSON (line %d, column %d: %s)", jerr.line,
                   jerr.column, jerr.text);
        goto fail;
    }
    keys = json_object_get(root, "keys");
    if (!json_is_object(root) || !json_is_array(keys)) {
        gh_err_set(err, NULL, 0, 0, "jwks: not an object with a \"keys\" array");
        goto fail;
    }
    if (json_array_size(keys) > GH_JWKS_MAX_KEYS) {
        gh_err_set(err, NULL, 0, 0, "jwks: %zu keys (at most %d)", json_array_size(keys),
                   GH_JWKS_MAX_KEYS);
        goto fail;
    }
    set = gh_jwks_new();
    if (set == NULL) {
        gh_err_set(err, NULL, 0, 0, "jwks: out of memory");
        goto fail;
    }
    json_array_foreach(keys, i, jk)
    {
        struct gh_jwk k;
        int rc = import_key(jk, i, &k, err);

        if (rc == KEY_ERR) goto fail;
        if (rc == KEY_SKIP) {
            set->nskipped++;
            continue;
        }
        if (jwks_push(set, &k, i, err) != GH_OK) goto fail;
    }
    json_decref(root);
    ERR_clear_error(); /* refused inputs leave OpenSSL errors behind; they are reported in <err> */
    return set;
fail:
    if (set != NULL) jwks_free(set);
    json_decref(root);
    ERR_clear_error();
    return NULL;
}

/* The group name of an EC key as OpenSSL spells it, into <buf>. */
static bool ec_group(EVP_PKEY *pkey, char *buf, size_t size)
{
    size_t len;
    return EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, buf, size, &len) == 1;
}

int gh_jwks_add(struct gh_jwks *set, EVP_PKEY *pkey, const char *kid, enum gh_jwa alg,
                struct gh_err *err)
{
    struct gh_jwk k;
    unsigned char *der = NULL;
    const unsigned char *p;
    char group[32];
    int derlen, rc = GH_ERROR;
    size_t idx = set->nkeys;

    memset(&k, 0, sizeof(k));
    if (kid != NULL) {
        size_t len = strlen(kid);
        if (!kid_ok(kid, len))
            return gh_err_set(err, NULL, 0, 0, "jwks: kid must be 1..%d printable bytes",
                              GH_JWK_KID_MAX);
        memcpy(k.kid, kid, len + 1);
        k.kid_len = len;
        k.has_kid = true;
    }
    if (EVP_PKEY_is_a(pkey, "RSA")) {
        BIGNUM *n = NULL, *e = NULL;
        k.kind = GH_JWK_RSA;
        if (EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_N, &n) != 1 ||
            EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, &e) != 1)
            gh_err_set(err, NULL, 0, 0, "jwks: cannot read the RSA key");
        else if (rsa_check(n, e, idx, err) == GH_OK)
            k.bits = BN_num_bits(n);
        BN_free(n);
        BN_free(e);
        if (k.bits == 0) goto out;
    } else if (EVP_PKEY_is_a(pkey, "EC") && ec_group(pkey, group, sizeof(group)) &&
               strcmp(group, "prime256v1") == 0) {
        k.kind = GH_JWK_P256;
        k.bits = 256;
    } else if (EVP_PKEY_is_a(pkey, "EC") && ec_group(pkey, group, sizeof(group)) &&
               strcmp(group, "secp384r1") == 0) {
        k.kind = GH_JWK_P384;
        k.bits = 384;
    } else if (EVP_PKEY_is_a(pkey, "ED25519")) {
        k.kind = GH_JWK_ED25519;
        k.bits = 256;
    } else {
        gh_err_set(err, NULL, 0, 0, "jwks: unsupported key type (RSA, P-256, P-384, Ed25519)");
        goto out;
    }
    if (alg != GH_JWA_UNKNOWN && gh_jwa_key_kind(alg) != k.kind) {
        gh_err_set(err, NULL, 0, 0, "jwks: alg %s does not fit the key",
                   gh_jwa_name(alg) ? gh_jwa_name(alg) : "?");
        goto out;
    }
    k.alg = alg;
    /* Keep the public half only: a verification set has no use for a
     * private key, and holding one is a liability. */
    derlen = i2d_PUBKEY(pkey, &der);
    p = der;
    if (derlen <= 0 || (k.pkey = d2i_PUBKEY(NULL, &p, derlen)) == NULL) {
        gh_err_set(err, NULL, 0, 0, "jwks: cannot copy the public key");
        goto out;
    }
    rc = jwks_push(set, &k, idx, err);
out:
    OPENSSL_free(der);
    ERR_clear_error();
    return rc;
}

/* ---- JSON output ---- */

/* Sets member <name> of <obj> to the base64url of <len> bytes. */
static bool set_b64(json_t *obj, const char *name, const unsigned char *p, size_t len)
{
    char buf[GH_B64URL_LEN(RSA_MAX_BITS / 8 + 1) + 1];

    if (gh_b64url_encode(p, len, buf, sizeof(buf)) == (size_t)-1) return false;
    return json_object_set_new(obj, name, json_string(buf)) == 0;
}

/* Sets member <name> to the big-endian bytes of BIGNUM parameter <param>,
 * left-padded to <pad> bytes when <pad> is not 0. */
static bool set_bn(json_t *obj, const char *name, EVP_PKEY *pkey, const char *param, int pad)
{
    unsigned char buf[RSA_MAX_BITS / 8 + 1];
    BIGNUM *bn = NULL;
    int len = -1;
    bool ok;

    if (EVP_PKEY_get_bn_param(pkey, param, &bn) == 1 && BN_num_bytes(bn) <= (int)sizeof(buf))
        len = pad ? BN_bn2binpad(bn, buf, pad) : BN_bn2bin(bn, buf);
    ok = len > 0 && set_b64(obj, name, buf, (size_t)len);
    BN_free(bn);
    return ok;
}

static json_t *jwk_json(const struct gh_jwk *k)
{
    json_t *obj = json_object();
    unsigned char raw[32];
    size_t rawlen = sizeof(raw);
    bool ok = obj != NULL;

    if (ok) {
        const char *kty = k->kind == GH_JWK_RSA ? "RSA" : k->kind == GH_JWK_ED25519 ? "OKP" : "EC";
        ok = json_object_set_new(obj, "kty", json_string(kty)) == 0 &&
             json_object_set_new(obj, "use", json_string("sig")) == 0;
    }
    if (ok && k->alg != GH_JWA_UNKNOWN)
        ok = json_object_set_new(obj, "alg", json_string(gh_jwa_name(k->alg))) == 0;
    if (ok && k->has_kid) ok = json_object_set_new(obj, "kid", json_string(k->kid)) == 0;
    if (!ok) goto fail;
    switch (k->kind) {
    case GH_JWK_RSA:
        ok = set_bn(obj, "n", k->pkey, OSSL_PKEY_PARAM_RSA_N, 0) &&
             set_bn(obj, "e", k->pkey, OSSL_PKEY_PARAM_RSA_E, 0);
        break;
    case GH_JWK_P256:
    case GH_JWK_P384: {
        int size = k->kind == GH_JWK_P256 ? 32 : 48;
        ok = json_object_set_new(obj, "crv", json_string(size == 32 ? "P-256" : "P-384")) == 0 &&
             set_bn(obj, "x", k->pkey, OSSL_PKEY_PARAM_EC_PUB_X, size) &&
             set_bn(obj, "y", k->pkey, OSSL_PKEY_PARAM_EC_PUB_Y, size);
        break;
    }
    case GH_JWK_ED25519:
        ok = json_object_set_new(obj, "crv", json_string("Ed25519")) == 0 &&
             EVP_PKEY_get_raw_public_key(k->pkey, raw, &rawlen) == 1 && rawlen == 32 &&
             set_b64(obj, "x", raw, rawlen);
        break;
    default: ok = false;
    }
    if (ok) return obj;
fail:
    json_decref(obj);
    return NULL;
}

static char *dump(json_t *obj, struct gh_err *err)
{
    char *s = obj ? json_dumps(obj, JSON_COMPACT) : NULL;

    json_decref(obj);
    ERR_clear_error();
    if (s == NULL) gh_err_set(err, NULL, 0, 0, "jwks: cannot write the key as JSON");
    return s;
}

char *gh_jwk_to_json(const struct gh_jwk *key, struct gh_err *err)
{
    return dump(jwk_json(key), err);
}

char *gh_jwks_to_json(const struct gh_jwks *set, struct gh_err *err)
{
    json_t *root = json_object(), *keys = json_array();

    if (root == NULL || keys == NULL || json_object_set(root, "keys", keys) != 0) goto fail;
    for (size_t i = 0; i < set->nkeys; i++)
        if (json_array_append_new(keys, jwk_json(&set->keys[i])) != 0) goto fail;
    json_decref(keys);
    return dump(root, err);
fail:
    json_decref(keys);
    json_decref(root);
    gh_err_set(err, NULL, 0, 0, "jwks: cannot write the key set as JSON");
    return NULL;
}
