/* Standard Webhooks 1.0 signatures (docs/webhooks.md, "Signing"): what a
 * delivery's `webhook-signature` header carries, and the text forms of the
 * keys that make it.
 *
 * The signed content is the bytes `<msg id>.<timestamp>.<body>` (timestamp in
 * decimal unix seconds, body exactly as sent).
 * - v1: HMAC-SHA256 with the endpoint's symmetric key; the header entry is
 *   "v1," + base64 (standard alphabet, padded) of the 32-byte MAC.
 * - v1a: Ed25519 with the endpoint's private key; "v1a," + base64 of the
 *   64-byte signature.
 * Keys as text: "whsec_" + base64 of the symmetric key (24..64 bytes;
 * ours have 32), "whsk_" + base64 of the 32-byte Ed25519 seed (private),
 * "whpk_" + base64 of the 32-byte Ed25519 public key.
 *
 * Pure functions over caller buffers: no allocation that outlives a call,
 * no logging; callers wipe key bytes (OPENSSL_cleanse) when done. */
#ifndef GH_HOOKS_SIGN_H
#define GH_HOOKS_SIGN_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define GH_HOOKS_KEY_LEN      32 /* bytes of every key the gateway makes */
#define GH_HOOKS_KEY_MIN      24 /* the shortest whsec_ key accepted when decoding */
#define GH_HOOKS_KEY_MAX      64
#define GH_HOOKS_KEY_TEXT_MAX 96  /* "whsec_" + base64 of 64 bytes + NUL fits */
#define GH_HOOKS_SIG_MAX      100 /* "v1a," + base64 of 64 bytes + NUL fits */
#define GH_HOOKS_MSG_ID_RAND  24  /* random base62 characters after "msg_" */
#define GH_HOOKS_MSG_ID_SIZE  (4 + GH_HOOKS_MSG_ID_RAND + 1)

enum gh_hooks_key_kind {
    GH_HOOKS_KEY_SECRET,  /* whsec_ */
    GH_HOOKS_KEY_PRIVATE, /* whsk_ */
    GH_HOOKS_KEY_PUBLIC,  /* whpk_ */
};

/* Writes "v1,<base64 HMAC-SHA256(key, id.ts.body)>" into <out> (<cap> >=
 * GH_HOOKS_SIG_MAX). GH_ERROR when <cap> is too small or OpenSSL fails. */
int gh_hooks_sign_v1(const uint8_t *key, size_t keylen, const char *msg_id, int64_t ts,
                     const void *body, size_t len, char *out, size_t cap);

/* Writes "v1a,<base64 Ed25519(seed, id.ts.body)>" into <out>, <seed> being
 * the 32-byte private seed. GH_ERROR as above. */
int gh_hooks_sign_v1a(const uint8_t seed[GH_HOOKS_KEY_LEN], const char *msg_id, int64_t ts,
                      const void *body, size_t len, char *out, size_t cap);

/* The public half of an Ed25519 <seed>. */
int gh_hooks_ed25519_public(const uint8_t seed[GH_HOOKS_KEY_LEN], uint8_t pub[GH_HOOKS_KEY_LEN]);

/* Fills <key> with GH_HOOKS_KEY_LEN bytes from the CSPRNG. */
int gh_hooks_key_random(uint8_t key[GH_HOOKS_KEY_LEN]);

/* Writes the text form of <key> (<len> bytes) with the prefix of <kind>
 * into <out> (GH_HOOKS_KEY_TEXT_MAX bytes). */
int gh_hooks_key_encode(enum gh_hooks_key_kind kind, const uint8_t *key, size_t len, char *out,
                        size_t cap);

/* Reads a whsec_ text (the prefix is optional, as the specification's
 * libraries accept a bare base64 key) into <key> (GH_HOOKS_KEY_MAX bytes)
 * and sets *len. GH_ERROR for bad base64 or a length outside 24..64. */
int gh_hooks_secret_decode(const char *text, uint8_t *key, size_t *len);

/* Writes "msg_" + GH_HOOKS_MSG_ID_RAND random base62 characters into <out>
 * (GH_HOOKS_MSG_ID_SIZE bytes). */
int gh_hooks_msg_id(char *out, size_t cap);

#endif
