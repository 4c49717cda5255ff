/* What the idempotency stage keeps per Idempotency-Key (docs/idempotency.md),
 * the same bytes in the process's table (table.h) and in Redis:
 *
 *   in flight: "I1 <fingerprint, 64 hex> <token, 32 hex>"
 *   done:      "D1 <fingerprint, 64 hex> <status, 3 digits> <header bytes>\n"
 *              <header lines "Name: value\r\n"...><body>
 *
 * An in-flight value is unique to the request that claimed the key (its
 * token), so that taking a claim back or storing the answer compares the
 * whole value and never touches another request's record. The key of a
 * record is a digest of the tenant, the route and the client's key: the
 * raw key is never kept. Pure functions, no I/O: unit-tested alone. */
#ifndef GH_IDEM_RECORD_H
#define GH_IDEM_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GH_IDEM_DIGEST      32  /* SHA-256 */
#define GH_IDEM_TOKEN       32  /* hex digits of a request's token */
#define GH_IDEM_KEY_MAX     255 /* bytes of an Idempotency-Key */
#define GH_IDEM_INFLIGHT    (3 + 64 + 1 + GH_IDEM_TOKEN)
#define GH_IDEM_HEADERS_MAX 1024 /* bytes of kept header lines */
#define GH_IDEM_PREFIX      64   /* bytes of redis.key_prefix used, at most */
#define GH_IDEM_REDIS_KEY   (GH_IDEM_PREFIX + 5 + 64 + 1) /* prefix "idem:" hex NUL */

/* 1 when <key> (<len> bytes) is a valid Idempotency-Key: 1 to 255 bytes of
 * printable ASCII (0x20 to 0x7e), else 0. */
int gh_idem_key_valid(const char *key, size_t len);

/* The record's digest: SHA-256 of tenant, NUL, route name, NUL, key. The
 * NULs split the three one way only (neither a tenant nor a route name
 * holds one, and keys are printable). GH_OK, or GH_ERROR when OpenSSL
 * fails (refuse the request). */
int gh_idem_digest(const char *tenant, const char *route, const char *key, size_t klen,
                   uint8_t out[GH_IDEM_DIGEST]);

/* The request's fingerprint: SHA-256 of method, NUL, path (with "?query"
 * when <query> is not empty), NUL, body. GH_OK or GH_ERROR, as above. */
int gh_idem_fingerprint(const char *method, size_t mlen, const char *path, size_t plen,
                        const char *query, size_t qlen, const char *body, size_t blen,
                        uint8_t out[GH_IDEM_DIGEST]);

/* Lower-case hex of <n> bytes into <out> (2n bytes, no NUL). */
void gh_idem_hex(const uint8_t *in, size_t n, char *out);

/* The Redis key of <digest> under <prefix> (may be NULL) into <out>
 * (NUL-terminated). Returns its length. */
size_t gh_idem_redis_key(const char *prefix, const uint8_t digest[GH_IDEM_DIGEST],
                         char out[GH_IDEM_REDIS_KEY]);

/* The in-flight value of <fp> and <token> into <out> (GH_IDEM_INFLIGHT
 * bytes, no NUL). */
void gh_idem_encode_inflight(const uint8_t fp[GH_IDEM_DIGEST], const char token[GH_IDEM_TOKEN],
                             char out[GH_IDEM_INFLIGHT]);

/* A done value: malloc'ed into *out (*olen bytes). GH_OK, or GH_ERROR when
 * out of memory or <hlen> is over GH_IDEM_HEADERS_MAX or <status> is not
 * 100..599. */
int gh_idem_encode_done(const uint8_t fp[GH_IDEM_DIGEST], int status, const char *headers,
                        size_t hlen, const char *body, size_t blen, char **out, size_t *olen);

/* A value read back. Slices point into the value. */
struct gh_idem_record {
    bool done;
    uint8_t fp[GH_IDEM_DIGEST];
    int status;                 /* done only */
    const char *headers, *body; /* done only */
    size_t hlen, blen;
};

/* GH_OK with <out>, or GH_ERROR when <v> is not a value of this format. */
int gh_idem_decode(const char *v, size_t len, struct gh_idem_record *out);

#endif
