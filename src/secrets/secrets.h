/* Secrets under a master key: envelope encryption of every secret the
 * gateway keeps (webhook signing secrets, the audit and token signing keys,
 * secrets that config files name with `secret:NAME`).
 *
 * Each secret is encrypted with its own 256-bit data key (AES-256-GCM,
 * random 96-bit nonce, the secret's (tenant, name) as additional data, so a
 * ciphertext moved to another row does not open). The data key is wrapped by
 * a key-encryption key held by a KMS provider (kms.h: `local`, a master key
 * file; `pkcs11`, a key on a PKCS#11 token). The store keeps only the
 * ciphertext, the wrapped data key and the master key version that wrapped
 * it; the plaintext exists only in the memory of the caller that asked.
 *
 * Names: (tenant, name), tenant a tenant id or "system", name
 * [A-Za-z0-9._/-]{1,128}. Components reserve prefixes: "webhook/" (hooks),
 * "audit-key/" and "signing-key/" (keys the gateway signs with), "config/"
 * (what `gatehouse secrets set` stores for `secret:NAME` references).
 *
 * Threading: every call may block on the store and on the KMS (an HSM round
 * trip). NEVER call from a worker event loop: callers are the admin thread,
 * the CLI and background threads (the webhook dispatcher, the audit writer).
 * One struct gh_secrets may be used by several threads at once.
 *
 * Errors: GH_OK; GH_STORE_NOT_FOUND (no such secret); GH_STORE_INVALID (a bad
 * name or size); GH_ERROR (the store or the KMS failed, or a ciphertext did
 * not authenticate: a changed row, a wrong master key). Messages never carry
 * plaintext, data keys or master keys. */
#ifndef GH_SECRETS_SECRETS_H
#define GH_SECRETS_SECRETS_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

struct gh_store;
struct gh_config;
struct gh_kms;

#define GH_SECRET_NAME_MAX  128
#define GH_SECRET_VALUE_MAX 8192 /* bytes of one plaintext */

struct gh_secrets;

/* Opens the KMS provider that <cfg> names (`secrets:` block; the default is
 * the local master key file next to the store) and binds it to <store>,
 * which must outlive the handle. NULL with <err> when the provider cannot
 * be opened (a missing or too-open master key file, a token that refuses
 * the PIN). */
struct gh_secrets *gh_secrets_open(const struct gh_config *cfg, struct gh_store *store,
                                   struct gh_err *err);
void gh_secrets_close(struct gh_secrets *s);

/* Seals <value> (<len> bytes, 1..GH_SECRET_VALUE_MAX) under a fresh data key
 * wrapped by the current master key version, and stores it as (tenant,
 * name), replacing any previous value. */
int gh_secrets_put(struct gh_secrets *s, const char *tenant, const char *name, const void *value,
                   size_t len, struct gh_err *err);

/* Opens secret (tenant, name) into <out> (<cap> bytes) and sets *len. The
 * caller wipes <out> (OPENSSL_cleanse) when done. GH_STORE_INVALID when
 * <cap> is too small. */
int gh_secrets_get(struct gh_secrets *s, const char *tenant, const char *name, void *out,
                   size_t cap, size_t *len, struct gh_err *err);

/* Removes secret (tenant, name); GH_STORE_NOT_FOUND when absent. */
int gh_secrets_delete(struct gh_secrets *s, const char *tenant, const char *name,
                      struct gh_err *err);

#endif
