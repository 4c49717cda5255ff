/* AES-256-GCM for secrets (OpenSSL EVP): the seal and open of one value
 * under its data key, and the same primitive with caller-given additional
 * data for KMS providers that wrap data keys themselves (kms_local.c).
 *
 * A sealed value is bound to its place: the additional data is
 * "gatehouse-secret-v1" NUL tenant NUL name NUL, so a ciphertext copied to
 * another (tenant, name) does not open. The master key version is not in
 * it: a rotation re-wraps the data key and changes the row's version
 * without touching the ciphertext. The version is bound by the wrapping
 * instead (each provider authenticates it with the wrapped key), so a row
 * whose version column was changed does not open either. docs/secrets.md
 * has the byte layout. No function here logs, and <err> never carries key material. */
#ifndef GH_SECRETS_ENVELOPE_H
#define GH_SECRETS_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define GH_ENVELOPE_KEY_LEN   32 /* AES-256 */
#define GH_ENVELOPE_NONCE_LEN 12 /* 96-bit GCM nonce (NIST SP 800-38D §8.2.2: random) */
#define GH_ENVELOPE_TAG_LEN   16

/* Encrypts <len> bytes of <pt> under <key> with <nonce> and <aad>, writing
 * <len> bytes of ciphertext to <ct> and the tag to <tag>. GH_ERROR when
 * OpenSSL fails. */
int gh_envelope_aead_seal(const uint8_t key[GH_ENVELOPE_KEY_LEN],
                          const uint8_t nonce[GH_ENVELOPE_NONCE_LEN], const void *aad,
                          size_t aad_len, const void *pt, size_t len, uint8_t *ct,
                          uint8_t tag[GH_ENVELOPE_TAG_LEN], struct gh_err *err);

/* The reverse; GH_ERROR when the tag does not authenticate (<pt> is then
 * wiped). */
int gh_envelope_aead_open(const uint8_t key[GH_ENVELOPE_KEY_LEN],
                          const uint8_t nonce[GH_ENVELOPE_NONCE_LEN], const void *aad,
                          size_t aad_len, const uint8_t *ct, size_t len,
                          const uint8_t tag[GH_ENVELOPE_TAG_LEN], void *pt, struct gh_err *err);

/* Seals <len> (1..8192) bytes of <value> for (tenant, name)
 * under data key <dek>: draws a fresh nonce into <nonce> and writes the
 * ciphertext followed by the tag (<len> + 16 bytes) to <out>. */
int gh_envelope_seal(const uint8_t dek[GH_ENVELOPE_KEY_LEN], const char *tenant, const char *name,
                     const void *value, size_t len, uint8_t nonce[GH_ENVELOPE_NONCE_LEN],
                     uint8_t *out, struct gh_err *err);

/* Opens <ct_len> bytes (ciphertext and tag) into <out> (<cap> bytes) and
 * sets *len. GH_ERROR when it does not authenticate (wrong key, changed
 * bytes, another place) or does not fit <cap>. */
int gh_envelope_open(const uint8_t dek[GH_ENVELOPE_KEY_LEN], const char *tenant, const char *name,
                     const uint8_t nonce[GH_ENVELOPE_NONCE_LEN], const uint8_t *ct, size_t ct_len,
                     void *out, size_t cap, size_t *len, struct gh_err *err);

#endif
