/* JWT verification (RFC 7519 over RFC 7515 compact JWS) against a JWKS, with
 * the claim policy of a route, and signing of the gateway's own tokens.
 *
 * Verification accepts a compact token "header.payload.signature" of at most
 * policy.max_token_bytes and refuses, with one gh_jwt_result each:
 * - anything but exactly three segments, an empty header, base64url with
 *   padding or any character outside the alphabet (RFC 7515 §2, §7.1);
 * - a header that is not a JSON object with a string "alg", or with
 *   duplicate members; "kid"/"typ" that are not strings;
 * - "alg" outside the policy's list; "none" and HS* always (RFC 8725 §2.1,
 *   §3.1: the key decides nothing, the policy does, so an HS256 token whose
 *   "secret" is our RSA public key is refused before any key is looked at);
 * - any "crit" header (RFC 7515 §4.1.11: we understand no extension);
 * - a key of the wrong kind for the alg (RSA for RS and PS, P-256 for ES256
 *   only, P-384 for ES384, Ed25519 for EdDSA) or whose JWK "alg" differs;
 * - a "kid" not in the set (GH_JWT_UNKNOWN_KID: the caller may kick a JWKS
 *   refresh); without a "kid", at most GH_JWT_MAX_TRIES keys of the right
 *   kind are tried;
 * - a bad signature: ECDSA signatures must be raw r||s of exactly twice the
 *   coordinate size (RFC 7518 §3.4), RSA ones exactly the modulus size, PSS
 *   with MGF1 of the same hash and a salt of the hash size (RFC 7518 §3.5);
 * - then, only once the signature holds, the claims: "exp" (required unless
 *   policy.exp_optional), "nbf", "iat" (not in the future), with
 *   policy.leeway_s; "iss" exactly equal to policy.issuer when set; "aud" (a
 *   string or an array) containing one of policy.audiences when set.
 * Claims are mapped into fixed-size fields; a value that does not fit is
 * refused (GH_JWT_CLAIM_TOO_LONG), never truncated, and a mapped value with a
 * control character is refused (GH_JWT_BAD_CLAIM): these values end up in
 * headers sent upstream.
 *
 * Result strings (gh_jwt_result_str) are short fixed words safe to show to
 * clients; nothing from the token ever goes into them.
 *
 * The header and the claims are read by a strict JSON reader of our own
 * that works in place: RFC 8259 with UTF-8 checked, "\u0000" refused,
 * duplicate top-level members refused (so "alg" or "exp" cannot mean two
 * things), at most 128 top-level members and 32 levels of nesting.
 *
 * Cost, measured on the reference VM (one core, OpenSSL 3.0, 2048-bit RSA,
 * best of 5 x 8000): gh_jwt_verify with claims mapping takes RS256 21 us,
 * PS256 24 us, ES256 71 us, ES384 560 us (OpenSSL 3.0 has no fast P-384),
 * EdDSA 105 us; OpenSSL's own init + verify is 20 / 22 / 69 / 560 / 97 us of
 * that, so parsing, key lookup and claims add about 1-1.5 us. Digests are
 * fetched once per verifier. A verification allocates nothing of its own
 * for tokens up to 8 KiB (decoding and JSON reading happen on the stack,
 * about 22 KiB of it); OpenSSL allocates its EVP_MD_CTX/EVP_PKEY_CTX and
 * temporaries (11 allocations for EdDSA, 28 for RS256, 54 for ES256). Callers
 * on the request path should still cache verified tokens (by hash, until
 * exp) rather than verify each time.
 *
 * Thread safety: a verifier and a signer are immutable after creation and
 * may be used from any number of threads at once. Verification leaves the
 * thread's OpenSSL error queue as it found it (so SSL_get_error on the same
 * worker is not misled).
 */
#ifndef GH_AUTH_JWT_H
#define GH_AUTH_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/jwks.h"
#include "core/err.h"
#include "core/str.h"

struct json_t; /* jansson */

#define GH_JWT_DEFAULT_MAX_TOKEN 8192
#define GH_JWT_MAX_TOKEN_LIMIT   65536 /* policy.max_token_bytes may not exceed this */
#define GH_JWT_MAX_TRIES         4     /* keys tried for a token without kid */
#define GH_JWT_MAX_AUDIENCES     8

/* Sizes of the claim fields, in bytes, without the NUL. */
#define GH_JWT_TENANT_MAX  128
#define GH_JWT_SUBJECT_MAX 255
#define GH_JWT_JTI_MAX     128
#define GH_JWT_SCOPES_MAX  1024 /* all scopes, joined by single spaces */
#define GH_JWT_ROLES_MAX   16   /* number of roles */
#define GH_JWT_ROLE_MAX    64

enum gh_jwt_result {
    GH_JWT_OK = 0,
    GH_JWT_TOO_LARGE,        /* "token_too_large" */
    GH_JWT_MALFORMED,        /* "token_malformed": not three segments, empty header */
    GH_JWT_BAD_ENCODING,     /* "token_bad_encoding": base64url */
    GH_JWT_BAD_HEADER,       /* "token_bad_header" */
    GH_JWT_ALG_NOT_ALLOWED,  /* "alg_not_allowed": none, HS*, unknown, not in policy */
    GH_JWT_CRIT_UNSUPPORTED, /* "crit_unsupported" */
    GH_JWT_TYP_MISMATCH,     /* "typ_mismatch": policy.typ set and not matched */
    GH_JWT_UNKNOWN_KID,      /* "unknown_kid": may kick a JWKS refresh */
    GH_JWT_NO_KEY,           /* "no_matching_key": no kid, no key of the right kind */
    GH_JWT_KEY_MISMATCH,     /* "key_mismatch": the kid's key is for another alg */
    GH_JWT_BAD_SIGNATURE,    /* "bad_signature" */
    GH_JWT_BAD_PAYLOAD,      /* "token_bad_payload": claims not one strict JSON object */
    GH_JWT_EXPIRED,          /* "token_expired" */
    GH_JWT_NOT_YET_VALID,    /* "token_not_yet_valid": nbf */
    GH_JWT_ISSUED_IN_FUTURE, /* "token_issued_in_future": iat */
    GH_JWT_MISSING_CLAIM,    /* "claim_missing" */
    GH_JWT_BAD_CLAIM,        /* "claim_invalid": wrong type, control characters */
    GH_JWT_CLAIM_TOO_LONG,   /* "claim_too_long" */
    GH_JWT_WRONG_ISSUER,     /* "issuer_mismatch" */
    GH_JWT_WRONG_AUDIENCE,   /* "audience_mismatch" */
    GH_JWT_INTERNAL,         /* "internal_error": out of memory, OpenSSL failure */
    GH_JWT_RESULT_COUNT
};

/* A stable short word for <r>, safe for clients and logs; "internal_error"
 * for values out of range. */
const char *gh_jwt_result_str(enum gh_jwt_result r);

/* What a route accepts. Strings are copied by gh_jwt_verifier_new(). */
struct gh_jwt_policy {
    uint32_t allowed_algs;  /* GH_JWA_BIT() mask; 0 means GH_JWA_ALL */
    size_t max_token_bytes; /* 0 means GH_JWT_DEFAULT_MAX_TOKEN */
    uint32_t leeway_s;      /* clock skew allowed on exp, nbf, iat (config default: 60) */
    bool exp_optional;      /* accept tokens without "exp" */
    const char *issuer;     /* NULL: "iss" not checked */
    const char *audiences[GH_JWT_MAX_AUDIENCES]; /* "aud" must hold one of them */
    size_t naudiences;                           /* 0: "aud" not checked */
    const char *typ;           /* NULL: any; else header "typ" must match (case-insensitive,
                                  "application/" optional, RFC 7515 §4.1.9) */
    const char *tenant_claim;  /* NULL: no tenant; else required, string or integer */
    const char *subject_claim; /* NULL: "sub"; optional */
    const char *scope_claim;   /* NULL: "scope", else "scp"; a space-separated string or an
                                  array of strings; optional */
    const char *roles_claim;   /* NULL: no roles; else optional array of strings, each
                                  without spaces (roles travel as space-separated lists) */
};

/* What a verified token says, copied out (the token may go away). */
struct gh_jwt_claims {
    enum gh_jwa alg;
    char kid[GH_JWK_KID_MAX + 1]; /* "" without kid */
    char tenant[GH_JWT_TENANT_MAX + 1];
    char subject[GH_JWT_SUBJECT_MAX + 1];
    char jti[GH_JWT_JTI_MAX + 1];
    char scopes[GH_JWT_SCOPES_MAX + 1]; /* "read write", single spaces */
    size_t nscopes;
    char roles[GH_JWT_ROLES_MAX][GH_JWT_ROLE_MAX + 1];
    size_t nroles;
    int64_t exp; /* 0 when absent */
    int64_t iat; /* 0 when absent */
    /* On a claim error: the claim's name, from the policy or the RFC, never
     * from the token (for logs). NULL otherwise. */
    const char *failed_claim;
};

struct gh_jwt_verifier;

/* Builds a verifier for <policy>. Returns NULL with <err> filled on a bad
 * policy (unknown alg bits, max_token_bytes over the limit, too many
 * audiences) or when OpenSSL cannot fetch the digests. */
struct gh_jwt_verifier *gh_jwt_verifier_new(const struct gh_jwt_policy *policy, struct gh_err *err);
void gh_jwt_verifier_free(struct gh_jwt_verifier *v);

/* Verifies <token> against <keys> (may be NULL: no keys yet) at <now>
 * (seconds since the epoch) and fills <out> (on GH_JWT_OK; on failure only
 * failed_claim is meaningful). */
enum gh_jwt_result gh_jwt_verify(const struct gh_jwt_verifier *v, const struct gh_jwks *keys,
                                 gh_str token, int64_t now, struct gh_jwt_claims *out);

/* The JWS layer alone: everything above up to the signature, no claims (the
 * payload need not be JSON). On GH_JWT_OK, <info> (may be NULL) says which
 * key verified and where the payload is. */
struct gh_jws_info {
    enum gh_jwa alg;
    const struct gh_jwk *key; /* lives as long as <keys> */
    gh_str payload_b64;       /* slice of <token>, base64url */
};
enum gh_jwt_result gh_jwt_verify_jws(const struct gh_jwt_verifier *v, const struct gh_jwks *keys,
                                     gh_str token, struct gh_jws_info *info);

/* One signature in JWS form over <msg>: <alg> must be allowed and fit <key>
 * (kind and JWK alg). GH_JWT_OK, GH_JWT_BAD_SIGNATURE, GH_JWT_ALG_NOT_ALLOWED,
 * GH_JWT_KEY_MISMATCH or GH_JWT_INTERNAL. */
enum gh_jwt_result gh_jwt_verify_sig(const struct gh_jwt_verifier *v, enum gh_jwa alg,
                                     const struct gh_jwk *key, const void *msg, size_t msglen,
                                     const void *sig, size_t siglen);

/* True when the verified token grants scope / role <s> (<len> bytes). */
bool gh_jwt_claims_has_scope(const struct gh_jwt_claims *c, const char *s, size_t len);
bool gh_jwt_claims_has_role(const struct gh_jwt_claims *c, const char *s, size_t len);

/* ---- signing the gateway's own tokens (ES256, EdDSA) ---- */

struct gh_jwt_signer;

/* A signer for <pkey> (a P-256 private key gives ES256, Ed25519 gives EdDSA;
 * anything else is refused), announced as <kid> (required). Takes a
 * reference to <pkey>; the caller keeps its own. Signs and verifies a probe
 * once, so a key without its private half is refused here. */
struct gh_jwt_signer *gh_jwt_signer_new(EVP_PKEY *pkey, const char *kid, struct gh_err *err);
/* A signer with a fresh key for <alg> (GH_JWA_ES256 or GH_JWA_EDDSA). */
struct gh_jwt_signer *gh_jwt_signer_generate(enum gh_jwa alg, const char *kid, struct gh_err *err);
void gh_jwt_signer_free(struct gh_jwt_signer *s);

/* Signs <claims> (a JSON object; the caller sets exp, iat, iss, ...) with the
 * header {"alg","typ":"JWT","kid"}. Returns the compact token, NUL-terminated,
 * to free with free(); NULL with <err> filled. */
char *gh_jwt_sign(const struct gh_jwt_signer *s, const struct json_t *claims, struct gh_err *err);

/* The signer's public key as a JWK (JSON, free with free()), with kid, alg and
 * use "sig"; NULL with <err>. */
char *gh_jwt_signer_jwk(const struct gh_jwt_signer *s, struct gh_err *err);
/* For gh_jwks_add() when publishing several keys; owned by the signer. */
EVP_PKEY *gh_jwt_signer_pkey(const struct gh_jwt_signer *s);
enum gh_jwa gh_jwt_signer_alg(const struct gh_jwt_signer *s);
const char *gh_jwt_signer_kid(const struct gh_jwt_signer *s);

#endif
