/* JSON Web Key Sets (RFC 7517): the public keys that JWTs are verified with,
 * parsed from JSON into OpenSSL keys, and the gateway's own keys written
 * back out for /.well-known/jwks.json. Also the JOSE basics that jwt.c shares:
 * algorithm names (RFC 7518) and strict base64url (RFC 7515 §2).
 *
 * Contract of gh_jwks_parse():
 * - accepts kty "RSA" (n, e; modulus 2048..8192 bits, odd e in 3..2^64, not a
 *   ROCA-weak modulus), "EC" with crv "P-256" or "P-384" (x, y of exactly the
 *   coordinate size; the point must be on the curve and of the right order),
 *   "OKP" with crv "Ed25519" (x, 32 bytes);
 * - keeps "kid" (at most GH_JWK_KID_MAX printable bytes, unique in the set) and
 *   "alg" (optional; when present and supported it must fit the key);
 * - skips (and counts in nskipped) keys that are well-formed but not for us:
 *   "use" other than "sig", "key_ops" without "verify", an "alg" we do not
 *   support, another kty or crv;
 * - refuses the whole set for symmetric "oct" keys (a JWKS is public: a secret
 *   in it is a leak, and the gateway never verifies HMAC tokens against a
 *   JWKS), for any malformed or weak key of a supported type, and for duplicate
 *   kids (which key would a token mean?). The error names the key's index;
 * - ignores private members ("d", "p", "q", ...): only public members are read,
 *   so a private key published by mistake is never used as one.
 *
 * A parsed set is immutable and reference counted; it may be read from any
 * number of threads at once (OpenSSL keys are safe to share for verification).
 */
#ifndef GH_AUTH_JWKS_H
#define GH_AUTH_JWKS_H

#include <openssl/evp.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

/* ---- JOSE basics ---- */

/* The JWS algorithms the gateway verifies (RFC 7518 §3, RFC 8037 §3.1).
 * "none" and the HMAC algorithms are deliberately absent: they can never be
 * allowed, whatever the configuration says. */
enum gh_jwa {
    GH_JWA_UNKNOWN = 0,
    GH_JWA_RS256,
    GH_JWA_RS384,
    GH_JWA_RS512,
    GH_JWA_PS256,
    GH_JWA_PS384,
    GH_JWA_PS512,
    GH_JWA_ES256,
    GH_JWA_ES384,
    GH_JWA_EDDSA,
    GH_JWA_COUNT
};

#define GH_JWA_BIT(a) (1u << (unsigned)(a))
/* Every supported algorithm, as a mask of GH_JWA_BIT()s. */
#define GH_JWA_ALL (((1u << GH_JWA_COUNT) - 1u) & ~1u)

/* "RS256" ... "EdDSA"; NULL for GH_JWA_UNKNOWN or out of range. */
const char *gh_jwa_name(enum gh_jwa alg);
/* Exact, case-sensitive match (RFC 7515 §4.1.1); GH_JWA_UNKNOWN otherwise,
 * which includes "none", "HS256" and every other algorithm we refuse. */
enum gh_jwa gh_jwa_parse(const char *s, size_t len);

/* Strict base64url without padding (RFC 7515 §2, RFC 4648 §5): refuses '=',
 * whitespace, characters outside [A-Za-z0-9_-], a length of 4n+1, and
 * non-zero unused bits in the last character (so every byte string has
 * exactly one accepted encoding). Writes at most <cap> bytes to <out>.
 * Returns GH_OK with *<outlen> set, or GH_ERROR (also when <cap> is short). */
int gh_b64url_decode(const char *in, size_t len, unsigned char *out, size_t cap, size_t *outlen);
/* Encoded length of <n> bytes, without padding or NUL. */
#define GH_B64URL_LEN(n) (((n) / 3) * 4 + ((n) % 3 ? (n) % 3 + 1 : 0))
/* Encodes <len> bytes into <out>, NUL-terminated; needs GH_B64URL_LEN(len) + 1
 * bytes of <cap>. Returns the length written (without the NUL), or
 * (size_t)-1 when <cap> is too small. */
size_t gh_b64url_encode(const void *in, size_t len, char *out, size_t cap);

/* ---- keys and key sets ---- */

#define GH_JWK_KID_MAX   255 /* bytes */
#define GH_JWKS_MAX_KEYS 64  /* entries in "keys", used or not */

enum gh_jwk_kind {
    GH_JWK_RSA = 1, /* for RS256/384/512 and PS256/384/512 */
    GH_JWK_P256,    /* for ES256 only */
    GH_JWK_P384,    /* for ES384 only */
    GH_JWK_ED25519, /* for EdDSA only */
};

/* The key kind an algorithm needs (0 for GH_JWA_UNKNOWN). */
enum gh_jwk_kind gh_jwa_key_kind(enum gh_jwa alg);

struct gh_jwk { /* read-only once in a set */
    enum gh_jwk_kind kind;
    EVP_PKEY *pkey;  /* public key only; owned by the set */
    enum gh_jwa alg; /* GH_JWA_UNKNOWN when the JWK has no "alg" */
    int bits;        /* modulus or curve size */
    bool has_kid;
    char kid[GH_JWK_KID_MAX + 1]; /* NUL-terminated; "" without a kid */
    size_t kid_len;
};

struct gh_jwks {
    _Atomic int refs;    /* private: use gh_jwks_ref/gh_jwks_release */
    size_t nkeys;        /* read-only */
    size_t nskipped;     /* read-only: well-formed keys that are not for us */
    struct gh_jwk *keys; /* read-only: nkeys entries */
    size_t cap;          /* private */
};

/* Parses the JWKS in <json> (<len> bytes, need not be NUL-terminated) as the
 * header says. Returns a set with one reference (possibly with no usable
 * key: check nkeys), or NULL with <err> filled, e.g.
 * "jwks: keys[2]: RSA modulus of 1024 bits (at least 2048 required)". */
struct gh_jwks *gh_jwks_parse(const char *json, size_t len, struct gh_err *err);

/* An empty set with one reference, to be filled with gh_jwks_add() before it
 * is shared (the gateway's own signing keys). NULL when out of memory. */
struct gh_jwks *gh_jwks_new(void);
/* Adds the public half of <pkey> (not taken; a private key is fine, only its
 * public part is kept) with <kid> (may be NULL) and <alg> (GH_JWA_UNKNOWN:
 * none). Refuses what gh_jwks_parse() would refuse. Not for a set that other
 * threads can see. Returns GH_OK or GH_ERROR with <err> filled. */
int gh_jwks_add(struct gh_jwks *set, EVP_PKEY *pkey, const char *kid, enum gh_jwa alg,
                struct gh_err *err);

/* The key with kid <kid> (<len> bytes), or NULL. <set> may be NULL. */
const struct gh_jwk *gh_jwks_find(const struct gh_jwks *set, const char *kid, size_t len);

/* The public JWK of <key> / the JWKS of <set> as compact JSON (members kty,
 * use "sig", alg, kid, then n/e or crv/x/y; never a private member).
 * Returns a NUL-terminated string to free with free(), or NULL with <err>. */
char *gh_jwk_to_json(const struct gh_jwk *key, struct gh_err *err);
char *gh_jwks_to_json(const struct gh_jwks *set, struct gh_err *err);

/* Takes one more reference. */
void gh_jwks_ref(struct gh_jwks *set);
/* Drops one reference (pairs with gh_jwks_parse/new/ref and
 * gh_jwks_source_acquire); frees the set with the last one. NULL is fine. */
void gh_jwks_release(struct gh_jwks *set);

#endif
