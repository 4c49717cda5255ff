/* JWT verification against a JWKS and signing of the gateway's own tokens.
 * The contract is in auth/jwt.h; the order of checks below is part of it:
 * cheap structural checks first, the signature next, and the claims (which
 * are attacker-controlled until then) only once the signature holds. */
#include "auth/jwt.h"

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/utf8.h"

/* Decoded header or payload of a default-sized token fits on the stack. */
#define STACK_DECODE (GH_JWT_DEFAULT_MAX_TOKEN / 4 * 3)
#define MAX_SIG      (8192 / 8) /* an RSA-8192 signature, the largest we accept */
#define JSON_MAX_CMP 1024       /* longest configured issuer or audience */

struct gh_jwt_verifier {
    uint32_t allowed;
    size_t max_token;
    int64_t leeway;
    bool exp_optional;
    char *issuer;
    char *aud[GH_JWT_MAX_AUDIENCES];
    size_t naud;
    char *typ;
    char *tenant_claim, *subject_claim, *scope_claim, *roles_claim;
    EVP_MD *sha256, *sha384, *sha512; /* fetched once: see bench-notes */
};

struct gh_jwt_signer {
    EVP_PKEY *pkey;
    enum gh_jwa alg;
    EVP_MD *sha256;
    char kid[GH_JWK_KID_MAX + 1];
    char *header_b64; /* the fixed protected header, encoded once */
    size_t header_len;
};

static const char *const result_str[GH_JWT_RESULT_COUNT] = {
    [GH_JWT_OK] = "ok",
    [GH_JWT_TOO_LARGE] = "token_too_large",
    [GH_JWT_MALFORMED] = "token_malformed",
    [GH_JWT_BAD_ENCODING] = "token_bad_encoding",
    [GH_JWT_BAD_HEADER] = "token_bad_header",
    [GH_JWT_ALG_NOT_ALLOWED] = "alg_not_allowed",
    [GH_JWT_CRIT_UNSUPPORTED] = "crit_unsupported",
    [GH_JWT_TYP_MISMATCH] = "typ_mismatch",
    [GH_JWT_UNKNOWN_KID] = "unknown_kid",
    [GH_JWT_NO_KEY] = "no_matching_key",
    [GH_JWT_KEY_MISMATCH] = "key_mismatch",
    [GH_JWT_BAD_SIGNATURE] = "bad_signature",
    [GH_JWT_BAD_PAYLOAD] = "token_bad_payload",
    [GH_JWT_EXPIRED] = "token_expired",
    [GH_JWT_NOT_YET_VALID] = "token_not_yet_valid",
    [GH_JWT_ISSUED_IN_FUTURE] = "token_issued_in_future",
    [GH_JWT_MISSING_CLAIM] = "claim_missing",
    [GH_JWT_BAD_CLAIM] = "claim_invalid",
    [GH_JWT_CLAIM_TOO_LONG] = "claim_too_long",
    [GH_JWT_WRONG_ISSUER] = "issuer_mismatch",
    [GH_JWT_WRONG_AUDIENCE] = "audience_mismatch",
    [GH_JWT_INTERNAL] = "internal_error",
};

const char *gh_jwt_result_str(enum gh_jwt_result r)
{
    if ((int)r < 0 || r >= GH_JWT_RESULT_COUNT) return "internal_error";
    return result_str[r];
}

/* No control characters: claim values become upstream headers. */
static bool printable(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) return false;
    return true;
}

/* ---- verifier ---- */

void gh_jwt_verifier_free(struct gh_jwt_verifier *v)
{
    if (v == NULL) return;
    free(v->issuer);
    for (size_t i = 0; i < v->naud; i++)
        free(v->aud[i]);
    free(v->typ);
    free(v->tenant_claim);
    free(v->subject_claim);
    free(v->scope_claim);
    free(v->roles_claim);
    EVP_MD_free(v->sha256);
    EVP_MD_free(v->sha384);
    EVP_MD_free(v->sha512);
    free(v);
}

/* strdup that tells a NULL source (fine) from a failed copy. */
static bool dup_opt(char **dst, const char *src)
{
    *dst = src ? strdup(src) : NULL;
    return src == NULL || *dst != NULL;
}

struct gh_jwt_verifier *gh_jwt_verifier_new(const struct gh_jwt_policy *p, struct gh_err *err)
{
    struct gh_jwt_verifier *v = calloc(1, sizeof(*v));
    bool ok;

    if (v == NULL) {
        gh_err_set(err, NULL, 0, 0, "jwt: out of memory");
        return NULL;
    }
    v->allowed = p->allowed_algs ? p->allowed_algs : GH_JWA_ALL;
    v->max_token = p->max_token_bytes ? p->max_token_bytes : GH_JWT_DEFAULT_MAX_TOKEN;
    v->leeway = p->leeway_s;
    v->exp_optional = p->exp_optional;
    if (v->allowed & ~(uint32_t)GH_JWA_ALL) {
        gh_err_set(err, NULL, 0, 0, "jwt: unknown algorithm in the allowed list");
        goto fail;
    }
    if (v->max_token > GH_JWT_MAX_TOKEN_LIMIT) {
        gh_err_set(err, NULL, 0, 0, "jwt: max token size %zu over the limit of %d", v->max_token,
                   GH_JWT_MAX_TOKEN_LIMIT);
        goto fail;
    }
    if (p->naudiences > GH_JWT_MAX_AUDIENCES) {
        gh_err_set(err, NULL, 0, 0, "jwt: at most %d audiences", GH_JWT_MAX_AUDIENCES);
        goto fail;
    }
    for (size_t i = 0; i < p->naudiences; i++)
        if (p->audiences[i] != NULL && strlen(p->audiences[i]) > JSON_MAX_CMP) {
            gh_err_set(err, NULL, 0, 0, "jwt: audience %zu over %d bytes", i, JSON_MAX_CMP);
            goto fail;
        }
    if (p->issuer != NULL && strlen(p->issuer) > JSON_MAX_CMP) {
        gh_err_set(err, NULL, 0, 0, "jwt: issuer over %d bytes", JSON_MAX_CMP);
        goto fail;
    }
    ok = dup_opt(&v->issuer, p->issuer) && dup_opt(&v->typ, p->typ) &&
         dup_opt(&v->tenant_claim, p->tenant_claim) &&
         dup_opt(&v->subject_claim, p->subject_claim ? p->subject_claim : "sub") &&
         dup_opt(&v->scope_claim, p->scope_claim) && dup_opt(&v->roles_claim, p->roles_claim);
    for (size_t i = 0; ok && i < p->naudiences; i++) {
        if (p->audiences[i] == NULL) {
            gh_err_set(err, NULL, 0, 0, "jwt: audience %zu is NULL", i);
            goto fail;
        }
        ok = dup_opt(&v->aud[i], p->audiences[i]);
        if (ok) v->naud++;
    }
    if (!ok) {
        gh_err_set(err, NULL, 0, 0, "jwt: out of memory");
        goto fail;
    }
    v->sha256 = EVP_MD_fetch(NULL, "SHA2-256", NULL);
    v->sha384 = EVP_MD_fetch(NULL, "SHA2-384", NULL);
    v->sha512 = EVP_MD_fetch(NULL, "SHA2-512", NULL);
    if (v->sha256 == NULL || v->sha384 == NULL || v->sha512 == NULL) {
        ERR_clear_error();
        gh_err_set(err, NULL, 0, 0, "jwt: OpenSSL has no SHA-2 digests");
        goto fail;
    }
    return v;
fail:
    gh_jwt_verifier_free(v);
    return NULL;
}

static const EVP_MD *digest_for(const struct gh_jwt_verifier *v, enum gh_jwa alg)
{
    switch (alg) {
    case GH_JWA_RS256:
    case GH_JWA_PS256:
    case GH_JWA_ES256: return v->sha256;
    case GH_JWA_RS384:
    case GH_JWA_PS384:
    case GH_JWA_ES384: return v->sha384;
    case GH_JWA_RS512:
    case GH_JWA_PS512: return v->sha512;
    default: return NULL; /* EdDSA hashes internally */
    }
}

/* ---- signatures ---- */

/* DER ECDSA-Sig-Value (SEQUENCE { INTEGER r, INTEGER s }, RFC 3279 §2.2.3)
 * from JWS's raw r||s (RFC 7518 §3.4), <size> bytes each. Integers are
 * minimal, with a 0x00 before a high bit; the content is at most
 * 2 * (2 + 1 + 48) = 102 bytes, so short-form lengths suffice. <out> needs
 * ECDSA_DER_MAX bytes. */
#define ECDSA_DER_MAX (2 + 2 * (2 + 1 + 48))
static size_t ecdsa_raw_to_der(const unsigned char *raw, size_t size, unsigned char *out)
{
    size_t o = 2;

    for (int half = 0; half < 2; half++) {
        const unsigned char *p = raw + (size_t)half * size;
        size_t n = size;
        bool pad;

        while (n > 1 && *p == 0) {
            p++;
            n--;
        }
        pad = (*p & 0x80) != 0;
        out[o++] = 0x02;
        out[o++] = (unsigned char)(n + pad);
        if (pad) out[o++] = 0x00;
        memcpy(out + o, p, n);
        o += n;
    }
    out[0] = 0x30;
    out[1] = (unsigned char)(o - 2);
    return o;
}

static bool is_pss(enum gh_jwa alg)
{
    return alg == GH_JWA_PS256 || alg == GH_JWA_PS384 || alg == GH_JWA_PS512;
}

/* Verifies <sig> over <msg> with <key> for <alg>, hashing with <md>. The
 * caller has checked that <alg> fits <key>. */
static enum gh_jwt_result sig_check(const EVP_MD *md, enum gh_jwa alg, const struct gh_jwk *key,
                                    const unsigned char *msg, size_t msglen,
                                    const unsigned char *sig, size_t siglen)
{
    unsigned char der[ECDSA_DER_MAX];
    EVP_MD_CTX *ctx = NULL;
    EVP_PKEY_CTX *pctx = NULL;
    enum gh_jwt_result r = GH_JWT_BAD_SIGNATURE;

    /* Exact lengths: a shorter RSA signature or a padded ECDSA one is another
     * encoding of the same value, and accepting it makes tokens malleable. */
    switch (key->kind) {
    case GH_JWK_RSA:
        if (siglen != (size_t)EVP_PKEY_get_size(key->pkey)) return GH_JWT_BAD_SIGNATURE;
        break;
    case GH_JWK_P256:
    case GH_JWK_P384: {
        size_t size = key->kind == GH_JWK_P256 ? 32 : 48;
        if (siglen != 2 * size) return GH_JWT_BAD_SIGNATURE;
        siglen = ecdsa_raw_to_der(sig, size, der);
        sig = der;
        break;
    }
    case GH_JWK_ED25519:
        if (siglen != 64) return GH_JWT_BAD_SIGNATURE;
        break;
    default: return GH_JWT_INTERNAL;
    }

    ERR_set_mark();
    ctx = EVP_MD_CTX_new();
    if (ctx == NULL || EVP_DigestVerifyInit(ctx, &pctx, md, NULL, key->pkey) != 1) {
        r = GH_JWT_INTERNAL;
        goto out;
    }
    /* RFC 7518 §3.5: MGF1 with the same hash, salt as long as the hash.
     * SALTLEN_DIGEST makes OpenSSL insist on that length (AUTO would take
     * any). */
    if (is_pss(alg) && (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) <= 0 ||
                        EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) <= 0 ||
                        EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md) <= 0)) {
        r = GH_JWT_INTERNAL;
        goto out;
    }
    if (EVP_DigestVerify(ctx, sig, siglen, msg, msglen) == 1) r = GH_JWT_OK;
out:
    EVP_MD_CTX_free(ctx);
    ERR_pop_to_mark(); /* a refused signature is not an error of this thread */
    return r;
}

/* Whether <key> may verify <alg>: its kind, and its JWK "alg" when it has one. */
static bool key_fits(const struct gh_jwk *key, enum gh_jwa alg)
{
    return key->kind == gh_jwa_key_kind(alg) && (key->alg == GH_JWA_UNKNOWN || key->alg == alg);
}

enum gh_jwt_result gh_jwt_verify_sig(const struct gh_jwt_verifier *v, enum gh_jwa alg,
                                     const struct gh_jwk *key, const void *msg, size_t msglen,
                                     const void *sig, size_t siglen)
{
    if (alg == GH_JWA_UNKNOWN || alg >= GH_JWA_COUNT || !(v->allowed & GH_JWA_BIT(alg)))
        return GH_JWT_ALG_NOT_ALLOWED;
    if (!key_fits(key, alg)) return GH_JWT_KEY_MISMATCH;
    return sig_check(digest_for(v, alg), alg, key, msg, msglen, sig, siglen);
}

/* ---- a JSON reader that does not allocate ----
 *
 * The header and the claims are read in place from the decoded buffer, so a
 * verification allocates nothing of its own. The whole text is validated as
 * RFC 8259 JSON (UTF-8 per RFC 3629, escapes, numbers, no trailing bytes),
 * more strictly than required in two ways: "\u0000" is refused (a NUL has no
 * place in a claim and breaks C strings), and so are duplicate member names
 * in the top-level object, compared after unescaping (RFC 7515 §5.2 and
 * RFC 7519 §4 allow "reject"; a parser that keeps the last "alg" or "exp"
 * while another keeps the first is the classic differential). Members of the
 * top-level object are recorded as slices; nested values are validated and
 * skipped. fuzz/fuzz_jwt.c checks this reader against jansson. */

#define JSON_MAX_DEPTH   32
#define JSON_MAX_MEMBERS 128
#define JSON_MAX_NAME    256 /* unescaped bytes of a member name */

enum jtype { J_STRING = 1, J_NUMBER, J_OBJECT, J_ARRAY, J_TRUE, J_FALSE, J_NULL };
enum jres { JR_OK = 0, JR_SYNTAX, JR_DUPLICATE, JR_LIMIT };

struct jval {
    enum jtype type;
    gh_str raw; /* strings: between the quotes, still escaped; others: the whole text */
    bool esc;   /* a string with at least one escape */
};

struct jmember {
    gh_str name; /* between the quotes, still escaped */
    bool name_esc;
    struct jval val;
};

struct jobj {
    size_t n;
    struct jmember m[JSON_MAX_MEMBERS];
};

struct jscan {
    const char *p, *end;
};

static void jws_skip(struct jscan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int hex4(const char *p)
{
    int v = 0;

    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = is_digit(c)              ? c - '0'
                : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                         : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

/* A string at s->p (its opening quote); s->p ends after the closing one. */
static enum jres scan_string(struct jscan *s, gh_str *raw, bool *esc)
{
    const unsigned char *p = (const unsigned char *)s->p + 1, *end = (const unsigned char *)s->end;

    *esc = false;
    while (p < end) {
        unsigned char c = *p;
        if (c == '"') {
            *raw = gh_str_make(s->p + 1, (size_t)((const char *)p - s->p - 1));
            s->p = (const char *)p + 1;
            return JR_OK;
        }
        if (c < 0x20) return JR_SYNTAX;
        if (c < 0x80 && c != '\\') {
            p++;
        } else if (c == '\\') {
            *esc = true;
            if (end - p < 2) return JR_SYNTAX;
            switch (p[1]) {
            case '"':
            case '\\':
            case '/':
            case 'b':
            case 'f':
            case 'n':
            case 'r':
            case 't': p += 2; break;
            case 'u': {
                int u = end - p >= 6 ? hex4((const char *)p + 2) : -1, lo;
                /* NUL refused; surrogates only as a high-low pair. */
                if (u <= 0 || (u >= 0xdc00 && u <= 0xdfff)) return JR_SYNTAX;
                p += 6;
                if (u >= 0xd800 && u <= 0xdbff) {
                    if (end - p < 6 || p[0] != '\\' || p[1] != 'u') return JR_SYNTAX;
                    lo = hex4((const char *)p + 2);
                    if (lo < 0xdc00 || lo > 0xdfff) return JR_SYNTAX;
                    p += 6;
                }
                break;
            }
            default: return JR_SYNTAX;
            }
        } else {
            size_t n = gh_utf8_seq(p, (size_t)(end - p));
            if (n == 0) return JR_SYNTAX;
            p += n;
        }
    }
    return JR_SYNTAX;
}

static enum jres scan_number(struct jscan *s)
{
    const char *p = s->p, *end = s->end;

    if (p < end && *p == '-') p++;
    if (p < end && *p == '0') {
        p++;
    } else if (p < end && *p >= '1' && *p <= '9') {
        while (p < end && is_digit(*p))
            p++;
    } else {
        return JR_SYNTAX;
    }
    if (p < end && *p == '.') {
        p++;
        if (p >= end || !is_digit(*p)) return JR_SYNTAX;
        while (p < end && is_digit(*p))
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-')) p++;
        if (p >= end || !is_digit(*p)) return JR_SYNTAX;
        while (p < end && is_digit(*p))
            p++;
    }
    s->p = p;
    return JR_OK;
}

static enum jres scan_object(struct jscan *s, int depth, struct jobj *o);
static enum jres scan_array(struct jscan *s, int depth);

static enum jres scan_literal(struct jscan *s, const char *lit, enum jtype t, struct jval *v)
{
    size_t n = strlen(lit);

    if ((size_t)(s->end - s->p) < n || memcmp(s->p, lit, n) != 0) return JR_SYNTAX;
    v->type = t;
    v->raw = gh_str_make(s->p, n);
    s->p += n;
    return JR_OK;
}

static enum jres scan_value(struct jscan *s, int depth, struct jval *v)
{
    const char *start = s->p;
    enum jres r;

    v->esc = false;
    if (s->p >= s->end) return JR_SYNTAX;
    switch (*s->p) {
    case '"': v->type = J_STRING; return scan_string(s, &v->raw, &v->esc);
    case '{':
    case '[':
        if (depth >= JSON_MAX_DEPTH) return JR_LIMIT;
        v->type = *s->p == '{' ? J_OBJECT : J_ARRAY;
        r = v->type == J_OBJECT ? scan_object(s, depth + 1, NULL) : scan_array(s, depth + 1);
        v->raw = gh_str_make(start, (size_t)(s->p - start));
        return r;
    case 't': return scan_literal(s, "true", J_TRUE, v);
    case 'f': return scan_literal(s, "false", J_FALSE, v);
    case 'n': return scan_literal(s, "null", J_NULL, v);
    default:
        v->type = J_NUMBER;
        r = scan_number(s);
        v->raw = gh_str_make(start, (size_t)(s->p - start));
        return r;
    }
}

static enum jres scan_array(struct jscan *s, int depth)
{
    struct jval v;
    enum jres r;

    s->p++; /* '[' */
    jws_skip(s);
    if (s->p < s->end && *s->p == ']') {
        s->p++;
        return JR_OK;
    }
    for (;;) {
        jws_skip(s);
        if ((r = scan_value(s, depth, &v)) != JR_OK) return r;
        jws_skip(s);
        if (s->p >= s->end) return JR_SYNTAX;
        if (*s->p == ']') {
            s->p++;
            return JR_OK;
        }
        if (*s->p++ != ',') return JR_SYNTAX;
    }
}

/* The unescaped UTF-8 of validated string <raw> into <out> (<cap> bytes, no
 * NUL added). False when it does not fit. */
static bool junescape(gh_str raw, bool esc, char *out, size_t cap, size_t *len)
{
    const char *p = raw.ptr, *end = raw.ptr + raw.len;
    size_t o = 0;

    if (!esc) {
        if (raw.len > cap) return false;
        memcpy(out, raw.ptr, raw.len);
        *len = raw.len;
        return true;
    }
    while (p < end) {
        char buf[4];
        size_t n = 1;
        if (*p != '\\') {
            buf[0] = *p++;
        } else if (p[1] != 'u') {
            static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
            buf[0] = to[strchr(from, p[1]) - from];
            p += 2;
        } else {
            uint32_t u = (uint32_t)hex4(p + 2);
            p += 6;
            if (u >= 0xd800 && u <= 0xdbff) {
                u = 0x10000 + ((u - 0xd800) << 10) + ((uint32_t)hex4(p + 2) - 0xdc00);
                p += 6;
            }
            if (u < 0x80) {
                buf[0] = (char)u;
            } else if (u < 0x800) {
                buf[0] = (char)(0xc0 | u >> 6);
                buf[1] = (char)(0x80 | (u & 0x3f));
                n = 2;
            } else if (u < 0x10000) {
                buf[0] = (char)(0xe0 | u >> 12);
                buf[1] = (char)(0x80 | ((u >> 6) & 0x3f));
                buf[2] = (char)(0x80 | (u & 0x3f));
                n = 3;
            } else {
                buf[0] = (char)(0xf0 | u >> 18);
                buf[1] = (char)(0x80 | ((u >> 12) & 0x3f));
                buf[2] = (char)(0x80 | ((u >> 6) & 0x3f));
                buf[3] = (char)(0x80 | (u & 0x3f));
                n = 4;
            }
        }
        if (n > cap - o) return false;
        memcpy(out + o, buf, n);
        o += n;
    }
    *len = o;
    return true;
}

/* Whether validated string <v> unescapes to exactly <want> (<wlen> bytes,
 * at most JSON_MAX_CMP). */
static bool jstr_eq(const struct jval *v, const char *want, size_t wlen)
{
    char buf[JSON_MAX_CMP];
    size_t n;

    if (!v->esc) return v->raw.len == wlen && memcmp(v->raw.ptr, want, wlen) == 0;
    return junescape(v->raw, true, buf, sizeof(buf), &n) && n == wlen && memcmp(buf, want, n) == 0;
}

static bool jname_eq(const struct jmember *m, const char *name, size_t len)
{
    struct jval v = {J_STRING, m->name, m->name_esc};
    return jstr_eq(&v, name, len);
}

static enum jres scan_object(struct jscan *s, int depth, struct jobj *o)
{
    enum jres r;

    s->p++; /* '{' */
    jws_skip(s);
    if (s->p < s->end && *s->p == '}') {
        s->p++;
        return JR_OK;
    }
    for (;;) {
        struct jmember m;
        jws_skip(s);
        if (s->p >= s->end || *s->p != '"') return JR_SYNTAX;
        if ((r = scan_string(s, &m.name, &m.name_esc)) != JR_OK) return r;
        jws_skip(s);
        if (s->p >= s->end || *s->p++ != ':') return JR_SYNTAX;
        jws_skip(s);
        if ((r = scan_value(s, depth, &m.val)) != JR_OK) return r;
        if (o != NULL) {
            char name[JSON_MAX_NAME];
            size_t len;
            if (o->n == JSON_MAX_MEMBERS ||
                !junescape(m.name, m.name_esc, name, sizeof(name), &len))
                return JR_LIMIT;
            for (size_t i = 0; i < o->n; i++)
                if (jname_eq(&o->m[i], name, len)) return JR_DUPLICATE;
            o->m[o->n++] = m;
        }
        jws_skip(s);
        if (s->p >= s->end) return JR_SYNTAX;
        if (*s->p == '}') {
            s->p++;
            return JR_OK;
        }
        if (*s->p++ != ',') return JR_SYNTAX;
    }
}

/* Reads <len> bytes that must be exactly one JSON object (whitespace around
 * it allowed) and records its members in <o>. */
static enum jres jobj_read(const void *buf, size_t len, struct jobj *o)
{
    struct jscan s = {buf, (const char *)buf + len};
    enum jres r;

    o->n = 0;
    jws_skip(&s);
    if (s.p >= s.end || *s.p != '{') return JR_SYNTAX;
    if ((r = scan_object(&s, 1, o)) != JR_OK) return r;
    jws_skip(&s);
    return s.p == s.end ? JR_OK : JR_SYNTAX;
}

static const struct jval *jobj_get(const struct jobj *o, const char *name)
{
    size_t len = strlen(name);

    for (size_t i = 0; i < o->n; i++)
        if (jname_eq(&o->m[i], name, len)) return &o->m[i].val;
    return NULL;
}

/* Walks the elements of a validated array. */
struct jiter {
    struct jscan s;
    bool started;
};

static void jarr_open(struct jiter *it, const struct jval *arr)
{
    it->s.p = arr->raw.ptr + 1;
    it->s.end = arr->raw.ptr + arr->raw.len;
    it->started = false;
}

static bool jarr_next(struct jiter *it, struct jval *v)
{
    jws_skip(&it->s);
    if (*it->s.p == ']') return false;
    if (it->started) {
        it->s.p++; /* ',' */
        jws_skip(&it->s);
    }
    it->started = true;
    scan_value(&it->s, 0, v);
    jws_skip(&it->s);
    return true;
}

/* The integer part (toward zero) of validated number <raw>, exactly and
 * without the locale-dependent strtod. False beyond +-10^18. */
static bool jnum_int(gh_str raw, int64_t *out)
{
    const char *p = raw.ptr, *end = raw.ptr + raw.len;
    char digits[18];
    size_t nd = 0, stored = 0;
    long frac = 0, exp = 0, keep;
    bool neg = false, eneg = false;
    int64_t val = 0;

    if (*p == '-') {
        neg = true;
        p++;
    }
    for (bool in_frac = false; p < end && (is_digit(*p) || *p == '.'); p++) {
        if (*p == '.') {
            in_frac = true;
            continue;
        }
        if (in_frac) frac++;
        if (nd == 0 && *p == '0') continue; /* leading zeros carry no value */
        if (stored < sizeof(digits)) digits[stored++] = *p;
        nd++;
    }
    if (p < end) { /* exponent */
        p++;
        if (*p == '+' || *p == '-') eneg = *p++ == '-';
        for (; p < end; p++)
            if (exp < 1000000) exp = exp * 10 + (*p - '0');
    }
    if (nd == 0) {
        *out = 0;
        return true;
    }
    keep = (long)nd + (eneg ? -exp : exp) - frac; /* digits left of the point */
    if (keep <= 0) {
        *out = 0;
        return true;
    }
    if (keep > 18) return false;
    for (long i = 0; i < keep; i++)
        val = val * 10 + ((size_t)i < stored ? digits[i] - '0' : 0);
    *out = neg ? -val : val;
    return true;
}

/* ---- the JWS layer ---- */

struct jws {
    enum gh_jwa alg;
    bool has_kid;
    char kid[GH_JWK_KID_MAX + 1];
    size_t kid_len;
    const struct gh_jwk *key;
    gh_str payload_b64;
    const unsigned char *payload; /* decoded */
    size_t payload_len;
};

/* "application/at+jwt" and "at+jwt" name the same type (RFC 7515 §4.1.9). */
static gh_str media_type(const char *s, size_t len)
{
    static const char prefix[] = "application/";
    if (len >= sizeof(prefix) - 1 && strncasecmp(s, prefix, sizeof(prefix) - 1) == 0)
        return gh_str_make(s + sizeof(prefix) - 1, len - (sizeof(prefix) - 1));
    return gh_str_make(s, len);
}

static enum gh_jwt_result parse_header(const struct gh_jwt_verifier *v, const unsigned char *buf,
                                       size_t len, struct jws *j)
{
    struct jobj o;
    const struct jval *alg, *kid, *typ;
    char name[16], t[128];
    size_t n;

    if (jobj_read(buf, len, &o) != JR_OK) return GH_JWT_BAD_HEADER;
    alg = jobj_get(&o, "alg");
    if (alg == NULL || alg->type != J_STRING) return GH_JWT_BAD_HEADER;
    if (junescape(alg->raw, alg->esc, name, sizeof(name), &n)) j->alg = gh_jwa_parse(name, n);
    if (j->alg == GH_JWA_UNKNOWN || !(v->allowed & GH_JWA_BIT(j->alg)))
        return GH_JWT_ALG_NOT_ALLOWED;
    if (jobj_get(&o, "crit") != NULL) return GH_JWT_CRIT_UNSUPPORTED;
    kid = jobj_get(&o, "kid");
    if (kid != NULL) {
        if (kid->type != J_STRING || !junescape(kid->raw, kid->esc, j->kid, GH_JWK_KID_MAX, &n) ||
            n == 0 || !printable(j->kid, n))
            return GH_JWT_BAD_HEADER;
        j->kid[n] = '\0';
        j->kid_len = n;
        j->has_kid = true;
    }
    typ = jobj_get(&o, "typ");
    if (typ != NULL && typ->type != J_STRING) return GH_JWT_BAD_HEADER;
    if (v->typ != NULL) {
        gh_str want = media_type(v->typ, strlen(v->typ));
        if (typ == NULL || !junescape(typ->raw, typ->esc, t, sizeof(t), &n) ||
            !gh_str_caseeq(want, media_type(t, n)))
            return GH_JWT_TYP_MISMATCH;
    }
    /* Other members ("jwk", "jku", "x5u", "x5c", ...) are ignored: keys come
     * from the configured JWKS only (RFC 8725 §3.10). */
    return GH_JWT_OK;
}

/* Checks <t> up to and including the signature. The decoded payload goes
 * into <buf> (<cap> bytes, at least 3/4 of the token's length). */
static enum gh_jwt_result jws_check(const struct gh_jwt_verifier *v, const struct gh_jwks *keys,
                                    gh_str t, unsigned char *buf, size_t cap, struct jws *j)
{
    unsigned char sig[MAX_SIG];
    const char *end = t.ptr + t.len, *dot1, *dot2;
    gh_str hseg, sseg;
    size_t len, siglen, tries = 0;
    enum gh_jwt_result r;

    memset(j, 0, sizeof(*j));
    if (t.len > v->max_token) return GH_JWT_TOO_LARGE;
    if (t.len == 0 || t.ptr == NULL) return GH_JWT_MALFORMED;
    dot1 = memchr(t.ptr, '.', t.len);
    dot2 = dot1 ? memchr(dot1 + 1, '.', (size_t)(end - dot1 - 1)) : NULL;
    /* RFC 7515 §7.1: exactly three parts; five would be a JWE. */
    if (dot2 == NULL || memchr(dot2 + 1, '.', (size_t)(end - dot2 - 1)) != NULL)
        return GH_JWT_MALFORMED;
    hseg = gh_str_make(t.ptr, (size_t)(dot1 - t.ptr));
    j->payload_b64 = gh_str_make(dot1 + 1, (size_t)(dot2 - dot1 - 1));
    sseg = gh_str_make(dot2 + 1, (size_t)(end - dot2 - 1));
    if (hseg.len == 0) return GH_JWT_MALFORMED;

    if (gh_b64url_decode(hseg.ptr, hseg.len, buf, cap, &len) != GH_OK) return GH_JWT_BAD_ENCODING;
    r = parse_header(v, buf, len, j);
    if (r != GH_JWT_OK) return r;
    /* The header is parsed and copied out; <buf> now takes the payload. */
    if (gh_b64url_decode(j->payload_b64.ptr, j->payload_b64.len, buf, cap, &j->payload_len) !=
        GH_OK)
        return GH_JWT_BAD_ENCODING;
    j->payload = buf;
    if (sseg.len == 0 || sseg.len > GH_B64URL_LEN(sizeof(sig))) return GH_JWT_BAD_SIGNATURE;
    if (gh_b64url_decode(sseg.ptr, sseg.len, sig, sizeof(sig), &siglen) != GH_OK)
        return GH_JWT_BAD_ENCODING;

    /* The signing input is the token up to the second dot, as sent. */
    if (j->has_kid) {
        const struct gh_jwk *k = gh_jwks_find(keys, j->kid, j->kid_len);
        if (k == NULL) return GH_JWT_UNKNOWN_KID;
        if (!key_fits(k, j->alg)) return GH_JWT_KEY_MISMATCH;
        r = sig_check(digest_for(v, j->alg), j->alg, k, (const unsigned char *)t.ptr,
                      (size_t)(dot2 - t.ptr), sig, siglen);
        if (r == GH_JWT_OK) j->key = k;
        return r;
    }
    r = GH_JWT_NO_KEY;
    for (size_t i = 0; keys != NULL && i < keys->nkeys && tries < GH_JWT_MAX_TRIES; i++) {
        const struct gh_jwk *k = &keys->keys[i];
        if (!key_fits(k, j->alg)) continue;
        tries++;
        r = sig_check(digest_for(v, j->alg), j->alg, k, (const unsigned char *)t.ptr,
                      (size_t)(dot2 - t.ptr), sig, siglen);
        if (r == GH_JWT_OK) {
            j->key = k;
            break;
        }
        if (r == GH_JWT_INTERNAL) break;
    }
    return r;
}

/* The buffer jws_check decodes into: <stack> (STACK_DECODE bytes) for
 * tokens of the default size, the heap (*<heap>, to free) for larger ones
 * that the policy allows. NULL when out of memory. */
static unsigned char *decode_buf(const struct gh_jwt_verifier *v, gh_str t, unsigned char *stack,
                                 unsigned char **heap, size_t *cap)
{
    *heap = NULL;
    *cap = STACK_DECODE;
    if (t.len <= GH_JWT_DEFAULT_MAX_TOKEN || t.len > v->max_token) return stack;
    *heap = malloc(t.len);
    *cap = t.len;
    return *heap;
}

enum gh_jwt_result gh_jwt_verify_jws(const struct gh_jwt_verifier *v, const struct gh_jwks *keys,
                                     gh_str token, struct gh_jws_info *info)
{
    unsigned char stack[STACK_DECODE], *heap, *buf;
    size_t cap;
    struct jws j;
    enum gh_jwt_result r;

    buf = decode_buf(v, token, stack, &heap, &cap);
    if (buf == NULL) return GH_JWT_INTERNAL;
    r = jws_check(v, keys, token, buf, cap, &j);
    if (r == GH_JWT_OK && info != NULL) {
        info->alg = j.alg;
        info->key = j.key;
        info->payload_b64 = j.payload_b64;
    }
    free(heap);
    return r;
}

/* ---- claims ---- */

static enum gh_jwt_result claim_fail(struct gh_jwt_claims *out, const char *name,
                                     enum gh_jwt_result r)
{
    out->failed_claim = name;
    return r;
}

/* A NumericDate (RFC 7519 §2): a number of seconds, its fraction dropped
 * (which moves exp earlier and nbf/iat by under a second). 0 when absent,
 * 1 when read into *<t>, -1 when not a number or out of range. */
static int numeric_date(const struct jobj *c, const char *name, int64_t *t)
{
    const struct jval *val = jobj_get(c, name);

    if (val == NULL) return 0;
    if (val->type != J_NUMBER || !jnum_int(val->raw, t)) return -1;
    return 1;
}

static enum gh_jwt_result check_times(const struct gh_jwt_verifier *v, const struct jobj *c,
                                      int64_t now, struct gh_jwt_claims *out)
{
    int64_t exp = 0, nbf = 0, iat = 0;
    int rc;

    rc = numeric_date(c, "exp", &exp);
    if (rc < 0) return claim_fail(out, "exp", GH_JWT_BAD_CLAIM);
    if (rc == 0 && !v->exp_optional) return claim_fail(out, "exp", GH_JWT_MISSING_CLAIM);
    /* RFC 7519 §4.1.4: valid only before exp. Written without overflow:
     * now and leeway are small, exp is within +-10^18. */
    if (rc == 1 && exp <= now - v->leeway) return claim_fail(out, "exp", GH_JWT_EXPIRED);
    out->exp = rc == 1 ? exp : 0;

    rc = numeric_date(c, "nbf", &nbf);
    if (rc < 0) return claim_fail(out, "nbf", GH_JWT_BAD_CLAIM);
    if (rc == 1 && nbf > now + v->leeway) return claim_fail(out, "nbf", GH_JWT_NOT_YET_VALID);

    rc = numeric_date(c, "iat", &iat);
    if (rc < 0) return claim_fail(out, "iat", GH_JWT_BAD_CLAIM);
    if (rc == 1 && iat > now + v->leeway) return claim_fail(out, "iat", GH_JWT_ISSUED_IN_FUTURE);
    out->iat = rc == 1 ? iat : 0;
    return GH_JWT_OK;
}

static bool aud_ours(const struct gh_jwt_verifier *v, const struct jval *val)
{
    for (size_t k = 0; k < v->naud; k++)
        if (jstr_eq(val, v->aud[k], strlen(v->aud[k]))) return true;
    return false;
}

static enum gh_jwt_result check_iss_aud(const struct gh_jwt_verifier *v, const struct jobj *c,
                                        struct gh_jwt_claims *out)
{
    const struct jval *iss, *aud;
    struct jval item;
    struct jiter it;
    bool ours = false;

    if (v->issuer != NULL) {
        iss = jobj_get(c, "iss");
        if (iss == NULL || iss->type != J_STRING || !jstr_eq(iss, v->issuer, strlen(v->issuer)))
            return claim_fail(out, "iss", GH_JWT_WRONG_ISSUER);
    }
    /* NEEDSWORK: RFC 7519 §4.1.3 says a token whose "aud" does not name us
     * must be refused even when no audience is configured; we check "aud"
     * only when audiences are configured (as most gateways do). Settled by
     * making audiences mandatory in config once deployments set them. */
    if (v->naud == 0) return GH_JWT_OK;
    aud = jobj_get(c, "aud");
    if (aud == NULL) return claim_fail(out, "aud", GH_JWT_WRONG_AUDIENCE);
    if (aud->type == J_STRING)
        return aud_ours(v, aud) ? GH_JWT_OK : claim_fail(out, "aud", GH_JWT_WRONG_AUDIENCE);
    if (aud->type != J_ARRAY) return claim_fail(out, "aud", GH_JWT_BAD_CLAIM);
    jarr_open(&it, aud);
    while (jarr_next(&it, &item)) {
        if (item.type != J_STRING) return claim_fail(out, "aud", GH_JWT_BAD_CLAIM);
        ours = ours || aud_ours(v, &item);
    }
    return ours ? GH_JWT_OK : claim_fail(out, "aud", GH_JWT_WRONG_AUDIENCE);
}

/* Copies string <val> into <dst> of <max> bytes plus NUL. */
static enum gh_jwt_result copy_str(const struct jval *val, char *dst, size_t max, const char *name,
                                   struct gh_jwt_claims *out)
{
    size_t n;

    if (val->type != J_STRING) return claim_fail(out, name, GH_JWT_BAD_CLAIM);
    if (!junescape(val->raw, val->esc, dst, max, &n)) {
        dst[0] = '\0';
        return claim_fail(out, name, GH_JWT_CLAIM_TOO_LONG);
    }
    dst[n] = '\0';
    if (!printable(dst, n)) return claim_fail(out, name, GH_JWT_BAD_CLAIM);
    return GH_JWT_OK;
}

/* RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ). */
static bool scope_token_ok(const char *s, size_t n)
{
    if (n == 0) return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x21 || c == 0x22 || c == 0x5c || c > 0x7e) return false;
    }
    return true;
}

static enum gh_jwt_result add_scope(struct gh_jwt_claims *out, size_t *used, const char *s,
                                    size_t n, const char *name)
{
    size_t sep = out->nscopes ? 1 : 0;

    if (!scope_token_ok(s, n)) return claim_fail(out, name, GH_JWT_BAD_CLAIM);
    if (*used + sep + n > GH_JWT_SCOPES_MAX) return claim_fail(out, name, GH_JWT_CLAIM_TOO_LONG);
    if (sep) out->scopes[(*used)++] = ' ';
    memcpy(out->scopes + *used, s, n);
    *used += n;
    out->scopes[*used] = '\0';
    out->nscopes++;
    return GH_JWT_OK;
}

static enum gh_jwt_result map_scopes(const struct jval *val, const char *name,
                                     struct gh_jwt_claims *out)
{
    char buf[GH_JWT_SCOPES_MAX];
    size_t used = 0, len;
    struct jval item;
    struct jiter it;
    enum gh_jwt_result r;

    if (val->type == J_STRING) {
        const char *s = buf, *end;
        /* Longer than the joined limit after unescaping: too long however
         * it splits (separators only shrink). */
        if (!junescape(val->raw, val->esc, buf, sizeof(buf), &len))
            return claim_fail(out, name, GH_JWT_CLAIM_TOO_LONG);
        for (end = buf + len; s < end;) {
            const char *sp = memchr(s, ' ', (size_t)(end - s));
            size_t n = sp ? (size_t)(sp - s) : (size_t)(end - s);
            if (n > 0 && (r = add_scope(out, &used, s, n, name)) != GH_JWT_OK) return r;
            s += n + 1;
        }
        return GH_JWT_OK;
    }
    if (val->type != J_ARRAY) return claim_fail(out, name, GH_JWT_BAD_CLAIM);
    jarr_open(&it, val);
    while (jarr_next(&it, &item)) {
        if (item.type != J_STRING) return claim_fail(out, name, GH_JWT_BAD_CLAIM);
        if (!junescape(item.raw, item.esc, buf, sizeof(buf), &len))
            return claim_fail(out, name, GH_JWT_CLAIM_TOO_LONG);
        if ((r = add_scope(out, &used, buf, len, name)) != GH_JWT_OK) return r;
    }
    return GH_JWT_OK;
}

static enum gh_jwt_result map_roles(const struct jval *val, const char *name,
                                    struct gh_jwt_claims *out)
{
    struct jval item;
    struct jiter it;
    enum gh_jwt_result r;

    if (val->type != J_ARRAY) return claim_fail(out, name, GH_JWT_BAD_CLAIM);
    jarr_open(&it, val);
    while (jarr_next(&it, &item)) {
        if (out->nroles == GH_JWT_ROLES_MAX) return claim_fail(out, name, GH_JWT_CLAIM_TOO_LONG);
        r = copy_str(&item, out->roles[out->nroles], GH_JWT_ROLE_MAX, name, out);
        if (r != GH_JWT_OK) return r;
        /* Roles travel as space-separated lists (gh_principal, upstream
         * headers): a role "x admin" must not become "admin". */
        if (out->roles[out->nroles][0] == '\0' || strchr(out->roles[out->nroles], ' ') != NULL)
            return claim_fail(out, name, GH_JWT_BAD_CLAIM);
        out->nroles++;
    }
    return GH_JWT_OK;
}

/* A JSON integer literal (no fraction, no exponent), e.g. a numeric org id. */
static bool is_int_literal(const struct jval *v)
{
    return v->type == J_NUMBER && v->raw.len > 0 && memchr(v->raw.ptr, '.', v->raw.len) == NULL &&
           memchr(v->raw.ptr, 'e', v->raw.len) == NULL &&
           memchr(v->raw.ptr, 'E', v->raw.len) == NULL;
}

static enum gh_jwt_result map_claims(const struct gh_jwt_verifier *v, const struct jobj *c,
                                     struct gh_jwt_claims *out)
{
    const struct jval *val;
    enum gh_jwt_result r;
    const char *scope_name = v->scope_claim;

    if (v->tenant_claim != NULL) {
        val = jobj_get(c, v->tenant_claim);
        if (val == NULL) return claim_fail(out, v->tenant_claim, GH_JWT_MISSING_CLAIM);
        if (is_int_literal(val)) {
            /* Kept as written: the literal is its decimal form. */
            if (val->raw.len > GH_JWT_TENANT_MAX)
                return claim_fail(out, v->tenant_claim, GH_JWT_CLAIM_TOO_LONG);
            memcpy(out->tenant, val->raw.ptr, val->raw.len);
            out->tenant[val->raw.len] = '\0';
        } else {
            r = copy_str(val, out->tenant, GH_JWT_TENANT_MAX, v->tenant_claim, out);
            if (r != GH_JWT_OK) return r;
            if (out->tenant[0] == '\0') return claim_fail(out, v->tenant_claim, GH_JWT_BAD_CLAIM);
        }
    }
    val = jobj_get(c, v->subject_claim);
    if (val != NULL &&
        (r = copy_str(val, out->subject, GH_JWT_SUBJECT_MAX, v->subject_claim, out)) != GH_JWT_OK)
        return r;
    val = jobj_get(c, "jti");
    if (val != NULL && (r = copy_str(val, out->jti, GH_JWT_JTI_MAX, "jti", out)) != GH_JWT_OK)
        return r;

    if (scope_name != NULL) {
        val = jobj_get(c, scope_name);
    } else {
        scope_name = "scope";
        val = jobj_get(c, "scope");
        if (val == NULL) {
            scope_name = "scp";
            val = jobj_get(c, "scp");
        }
    }
    if (val != NULL && (r = map_scopes(val, scope_name, out)) != GH_JWT_OK) return r;

    if (v->roles_claim != NULL && (val = jobj_get(c, v->roles_claim)) != NULL &&
        (r = map_roles(val, v->roles_claim, out)) != GH_JWT_OK)
        return r;
    return GH_JWT_OK;
}

enum gh_jwt_result gh_jwt_verify(const struct gh_jwt_verifier *v, const struct gh_jwks *keys,
                                 gh_str token, int64_t now, struct gh_jwt_claims *out)
{
    unsigned char stack[STACK_DECODE], *heap, *buf;
    size_t cap;
    struct jws j;
    struct jobj claims;
    enum gh_jwt_result r;

    memset(out, 0, sizeof(*out));
    buf = decode_buf(v, token, stack, &heap, &cap);
    if (buf == NULL) return GH_JWT_INTERNAL;
    r = jws_check(v, keys, token, buf, cap, &j);
    if (r != GH_JWT_OK) goto out;
    if (jobj_read(j.payload, j.payload_len, &claims) != JR_OK) {
        r = GH_JWT_BAD_PAYLOAD;
        goto out;
    }
    if ((r = check_times(v, &claims, now, out)) != GH_JWT_OK ||
        (r = check_iss_aud(v, &claims, out)) != GH_JWT_OK ||
        (r = map_claims(v, &claims, out)) != GH_JWT_OK)
        goto out;
    out->alg = j.alg;
    memcpy(out->kid, j.kid, j.kid_len + 1);
out:
    if (r != GH_JWT_OK) {
        const char *failed = out->failed_claim;
        memset(out, 0, sizeof(*out)); /* nothing half-mapped escapes */
        out->failed_claim = failed;
    }
    free(heap);
    return r;
}

static bool word_in(const char *list, const char *s, size_t len)
{
    const char *p = list;

    if (len == 0) return false;
    while (*p != '\0') {
        const char *sp = strchr(p, ' ');
        size_t n = sp ? (size_t)(sp - p) : strlen(p);
        if (n == len && memcmp(p, s, len) == 0) return true;
        if (sp == NULL) break;
        p = sp + 1;
    }
    return false;
}

bool gh_jwt_claims_has_scope(const struct gh_jwt_claims *c, const char *s, size_t len)
{
    return word_in(c->scopes, s, len);
}

bool gh_jwt_claims_has_role(const struct gh_jwt_claims *c, const char *s, size_t len)
{
    for (size_t i = 0; i < c->nroles; i++)
        if (strlen(c->roles[i]) == len && memcmp(c->roles[i], s, len) == 0) return true;
    return false;
}

/* ---- signing ---- */

void gh_jwt_signer_free(struct gh_jwt_signer *s)
{
    if (s == NULL) return;
    EVP_PKEY_free(s->pkey);
    EVP_MD_free(s->sha256);
    free(s->header_b64);
    free(s);
}

/* Signs <msg> into raw JWS form in <sig> (96 bytes): r||s for ES256, the
 * 64-byte signature for EdDSA. Returns its length, 0 on failure. */
static size_t sign_raw(const struct gh_jwt_signer *s, const unsigned char *msg, size_t len,
                       unsigned char *sig)
{
    unsigned char der[128];
    size_t derlen = sizeof(der), out = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    ECDSA_SIG *es = NULL;
    const unsigned char *p = der;
    const BIGNUM *r, *sv;

    if (ctx == NULL || EVP_DigestSignInit(ctx, NULL, s->alg == GH_JWA_ES256 ? s->sha256 : NULL,
                                          NULL, s->pkey) != 1)
        goto out;
    if (s->alg == GH_JWA_EDDSA) {
        size_t n = 64;
        if (EVP_DigestSign(ctx, sig, &n, msg, len) == 1 && n == 64) out = 64;
        goto out;
    }
    /* OpenSSL signs in DER; JWS wants r and s, each left-padded to 32 bytes. */
    if (EVP_DigestSign(ctx, der, &derlen, msg, len) != 1 ||
        (es = d2i_ECDSA_SIG(NULL, &p, (long)derlen)) == NULL)
        goto out;
    ECDSA_SIG_get0(es, &r, &sv);
    if (BN_bn2binpad(r, sig, 32) == 32 && BN_bn2binpad(sv, sig + 32, 32) == 32) out = 64;
out:
    ECDSA_SIG_free(es);
    EVP_MD_CTX_free(ctx);
    return out;
}

struct gh_jwt_signer *gh_jwt_signer_new(EVP_PKEY *pkey, const char *kid, struct gh_err *err)
{
    static const unsigned char probe[] = "gatehouse signer probe";
    struct gh_jwt_signer *s = NULL;
    struct gh_jwk k;
    unsigned char sig[96];
    size_t siglen, kidlen = kid ? strlen(kid) : 0;
    json_t *hdr = NULL;
    char *hjson = NULL, group[32];
    size_t glen;

    memset(&k, 0, sizeof(k));
    if (kid == NULL || kidlen == 0 || kidlen > GH_JWK_KID_MAX || !printable(kid, kidlen)) {
        gh_err_set(err, NULL, 0, 0, "jwt: signer kid must be 1..%d printable bytes",
                   GH_JWK_KID_MAX);
        goto fail;
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        gh_err_set(err, NULL, 0, 0, "jwt: out of memory");
        goto fail;
    }
    if (EVP_PKEY_is_a(pkey, "ED25519")) {
        s->alg = GH_JWA_EDDSA;
        k.kind = GH_JWK_ED25519;
    } else if (EVP_PKEY_is_a(pkey, "EC") &&
               EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group,
                                              sizeof(group), &glen) == 1 &&
               strcmp(group, "prime256v1") == 0) {
        s->alg = GH_JWA_ES256;
        k.kind = GH_JWK_P256;
    } else {
        gh_err_set(err, NULL, 0, 0, "jwt: signer key must be EC P-256 (ES256) or Ed25519 (EdDSA)");
        goto fail;
    }
    if (!EVP_PKEY_up_ref(pkey)) {
        gh_err_set(err, NULL, 0, 0, "jwt: cannot take a reference to the key");
        goto fail;
    }
    s->pkey = pkey;
    memcpy(s->kid, kid, kidlen + 1);
    s->sha256 = EVP_MD_fetch(NULL, "SHA2-256", NULL);
    hdr = json_pack("{s:s, s:s, s:s}", "alg", gh_jwa_name(s->alg), "typ", "JWT", "kid", kid);
    hjson = hdr ? json_dumps(hdr, JSON_COMPACT) : NULL;
    if (s->sha256 == NULL || hjson == NULL) {
        gh_err_set(err, NULL, 0, 0, "jwt: out of memory");
        goto fail;
    }
    s->header_len = GH_B64URL_LEN(strlen(hjson));
    s->header_b64 = malloc(s->header_len + 1);
    if (s->header_b64 == NULL) {
        gh_err_set(err, NULL, 0, 0, "jwt: out of memory");
        goto fail;
    }
    gh_b64url_encode(hjson, strlen(hjson), s->header_b64, s->header_len + 1);

    /* A key without its private half, or a broken one, fails here rather
     * than on the first token. */
    k.pkey = pkey;
    k.alg = s->alg;
    siglen = sign_raw(s, probe, sizeof(probe), sig);
    if (siglen == 0 || sig_check(s->alg == GH_JWA_ES256 ? s->sha256 : NULL, s->alg, &k, probe,
                                 sizeof(probe), sig, siglen) != GH_JWT_OK) {
        gh_err_set(err, NULL, 0, 0, "jwt: the signer key cannot sign (no private key?)");
        goto fail;
    }
    json_decref(hdr);
    free(hjson);
    ERR_clear_error();
    return s;
fail:
    json_decref(hdr);
    free(hjson);
    gh_jwt_signer_free(s);
    ERR_clear_error();
    return NULL;
}

struct gh_jwt_signer *gh_jwt_signer_generate(enum gh_jwa alg, const char *kid, struct gh_err *err)
{
    EVP_PKEY *pkey = NULL;
    struct gh_jwt_signer *s;

    if (alg == GH_JWA_ES256)
        pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    else if (alg == GH_JWA_EDDSA)
        pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    else {
        gh_err_set(err, NULL, 0, 0, "jwt: signers are ES256 or EdDSA");
        return NULL;
    }
    if (pkey == NULL) {
        ERR_clear_error();
        gh_err_set(err, NULL, 0, 0, "jwt: key generation failed");
        return NULL;
    }
    s = gh_jwt_signer_new(pkey, kid, err);
    EVP_PKEY_free(pkey);
    return s;
}

char *gh_jwt_sign(const struct gh_jwt_signer *s, const struct json_t *claims, struct gh_err *err)
{
    unsigned char sig[96];
    char *payload = NULL, *tok = NULL;
    size_t plen, siglen, total, o;

    if (!json_is_object(claims)) {
        gh_err_set(err, NULL, 0, 0, "jwt: claims must be a JSON object");
        return NULL;
    }
    payload = json_dumps(claims, JSON_COMPACT);
    if (payload == NULL) {
        gh_err_set(err, NULL, 0, 0, "jwt: cannot write the claims");
        return NULL;
    }
    plen = strlen(payload);
    total = s->header_len + 1 + GH_B64URL_LEN(plen) + 1 + GH_B64URL_LEN(sizeof(sig)) + 1;
    tok = malloc(total);
    if (tok == NULL) {
        gh_err_set(err, NULL, 0, 0, "jwt: out of memory");
        goto out;
    }
    memcpy(tok, s->header_b64, s->header_len);
    o = s->header_len;
    tok[o++] = '.';
    o += gh_b64url_encode(payload, plen, tok + o, total - o);
    siglen = sign_raw(s, (const unsigned char *)tok, o, sig);
    if (siglen == 0) {
        ERR_clear_error();
        gh_err_set(err, NULL, 0, 0, "jwt: signing failed");
        free(tok);
        tok = NULL;
        goto out;
    }
    tok[o++] = '.';
    gh_b64url_encode(sig, siglen, tok + o, total - o);
out:
    free(payload);
    return tok;
}

char *gh_jwt_signer_jwk(const struct gh_jwt_signer *s, struct gh_err *err)
{
    struct gh_jwk k;

    memset(&k, 0, sizeof(k));
    k.kind = s->alg == GH_JWA_ES256 ? GH_JWK_P256 : GH_JWK_ED25519;
    k.pkey = s->pkey; /* only its public members are written */
    k.alg = s->alg;
    k.has_kid = true;
    k.kid_len = strlen(s->kid);
    memcpy(k.kid, s->kid, k.kid_len + 1);
    return gh_jwk_to_json(&k, err);
}

EVP_PKEY *gh_jwt_signer_pkey(const struct gh_jwt_signer *s)
{
    return s->pkey;
}

enum gh_jwa gh_jwt_signer_alg(const struct gh_jwt_signer *s)
{
    return s->alg;
}

const char *gh_jwt_signer_kid(const struct gh_jwt_signer *s)
{
    return s->kid;
}
