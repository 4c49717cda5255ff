/* KMS providers: who holds the key-encryption keys (master keys) that wrap
 * the data keys of sealed secrets (secrets.h). A provider is an ops table
 * (name first, each slot documented), as the store is:
 *
 *   local   a master key file of versioned 256-bit keys (kms_local.c)
 *   pkcs11  AES-256 keys on a PKCS#11 token, never leaving it (kms_pkcs11.c)
 *
 * Master keys are versioned 1, 2, 3...; the current version is the highest.
 * A wrapped data key is an opaque blob (at most GH_KMS_BLOB_MAX bytes) that
 * only the provider reads; the store keeps it with the version that made it.
 * Versions are never deleted by the gateway: a row wrapped by version N
 * stays readable until a rotation re-wraps it (docs/secrets.md).
 *
 * Other providers fit the same slots. Vault Transit: wrap is
 * POST transit/encrypt/<key> with the data key as plaintext (the version is
 * the "vault:vN:" prefix of the answer), unwrap is transit/decrypt,
 * create_version is transit/keys/<key>/rotate, current is the key's
 * latest_version. A cloud KMS (AWS KMS Encrypt/Decrypt, GCP
 * cryptoKeyVersions, Azure Key Vault wrapKey/unwrapKey) maps the same way,
 * its key version id kept beside our version number in the blob. Such
 * providers run their HTTP calls on the caller's thread, which the
 * threading rule below allows.
 *
 * Threading: every slot may block (a file read, an HSM round trip) and is
 * called only off the worker loops. One struct gh_kms may be used by
 * several threads at once: each provider serialises what needs it.
 * Errors: GH_OK, or GH_ERROR with <err> (never carrying key material). */
#ifndef GH_SECRETS_KMS_H
#define GH_SECRETS_KMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define GH_KMS_DEK_LEN  32  /* the data keys the providers wrap: AES-256 */
#define GH_KMS_BLOB_MAX 512 /* = GH_STORE_SECRET_WRAP_MAX */

struct gh_kms;

struct gh_kms_ops {
    const char *name; /* "local", "pkcs11": for logs and `gatehouse secrets status` */

    /* Wraps <dek> under master key <version> into <blob> (<cap> bytes) and
     * sets *len. GH_ERROR when that version does not exist. */
    int (*wrap)(struct gh_kms *k, uint32_t version, const uint8_t dek[GH_KMS_DEK_LEN],
                uint8_t *blob, size_t cap, size_t *len, struct gh_err *err);

    /* Unwraps <blob> made by wrap(<version>) into <dek>. A version this
     * handle has not seen yet (another process rotated) is looked up again
     * once before failing. GH_ERROR when it does not authenticate. */
    int (*unwrap)(struct gh_kms *k, uint32_t version, const uint8_t *blob, size_t len,
                  uint8_t dek[GH_KMS_DEK_LEN], struct gh_err *err);

    /* Sets *version to the current (highest) master key version, looking
     * again at the provider so that a rotation made by another process is
     * seen. */
    int (*current)(struct gh_kms *k, uint32_t *version, struct gh_err *err);

    /* Makes master key <version>, which must be current + 1; when it
     * already exists (a rotation interrupted after this step), GH_OK. */
    int (*create_version)(struct gh_kms *k, uint32_t version, struct gh_err *err);

    /* Destroys the key of <version> that this handle made itself when
     * <blob>, the store's check of that version, plainly does not open
     * under it: another process made that version's key at the same moment
     * and the store took its check; nothing was sealed under this one.
     * True when it did; after it, the version is looked up again (the other
     * process's key, on a token both share). NULL when the provider leaves
     * that to the caller (the local file: secrets.c). */
    bool (*discard)(struct gh_kms *k, uint32_t version, const uint8_t *blob, size_t len);

    /* Forgets key material and frees <k>. */
    void (*close)(struct gh_kms *k);
};

struct gh_kms {
    const struct gh_kms_ops *ops; /* read-only */
};

/* ---- local: a master key file (kms_local.c) ---- */

/* Opens master key file <path>. Refused when it is not a regular file, when
 * its mode lets group or others in (0600 or stricter only: the message names
 * the file and its mode), or when no line parses. */
struct gh_kms *gh_kms_local_open(const char *path, struct gh_err *err);

/* Creates <path> with one fresh version (1): O_CREAT|O_EXCL, mode 0600,
 * key from RAND_priv_bytes, fsync'd with its folder. Refuses to overwrite an
 * existing file. */
int gh_kms_local_create(const char *path, struct gh_err *err);

/* ---- pkcs11: keys on a token (kms_pkcs11.c) ---- */

struct gh_kms_pkcs11_params {
    const char *module;      /* the PKCS#11 module (.so) to dlopen */
    const char *token_label; /* the token to use, by its label */
    const char *pin;         /* the user PIN */
    const char *key_label;   /* master keys are "<key_label>-v<N>" */
    uint64_t sealed;         /* secrets sealed in the store: a token without a key is then
                              * the wrong token, not a new one (the error says which) */
};

/* Loads the module, finds the token, opens a session and logs in. With
 * <create_first>, makes version 1 on the token when no version exists. */
struct gh_kms *gh_kms_pkcs11_open(const struct gh_kms_pkcs11_params *p, bool create_first,
                                  struct gh_err *err);

#endif
