/* Audit checkpoints and the audit signing key: generating the Ed25519 key
 * (stored as PEM in audit_keys), signing the checkpoint message of
 * docs/audit-format.md, and verifying a stored checkpoint. Used by the
 * writer (signing) and the verifier and tests (verifying). */
#ifndef GH_AUDIT_CHECKPOINT_H
#define GH_AUDIT_CHECKPOINT_H

#include <stdbool.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "core/err.h"
#include "store/store.h"

/* Fills <out> with a new Ed25519 key: key_id (16 base62 from the CSPRNG),
 * public and private PEM (created_at is set by the store on insert). The
 * caller inserts it (gh_store_audit_key_insert) and wipes out->private_pem
 * (OPENSSL_cleanse) when done. GH_OK or GH_ERROR. */
int gh_audit_key_generate(struct gh_store_audit_key *out, struct gh_err *err);

/* The key of <pem> (public or private PEM); NULL when it is not an Ed25519
 * key. The caller frees it with EVP_PKEY_free. */
EVP_PKEY *gh_audit_key_load(const char *pem, bool private_half, struct gh_err *err);

/* Fills <out> with the checkpoint (chain, seq, hash, time_ms) signed by
 * <key> (a private Ed25519 key) named <key_id>. GH_OK or GH_ERROR. */
int gh_audit_checkpoint_sign(EVP_PKEY *key, const char *key_id, const char *chain, uint64_t seq,
                             const uint8_t hash[32], int64_t time_ms,
                             struct gh_store_audit_checkpoint *out, struct gh_err *err);

/* True when <cp>'s signature is valid for its message under <pub> (an
 * Ed25519 public or private key). */
bool gh_audit_checkpoint_verify(EVP_PKEY *pub, const struct gh_store_audit_checkpoint *cp);

#endif
