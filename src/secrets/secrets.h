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

#include <stdbool.h>
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

/* ---- Beyond the core four (added with the implementation) ---- */

/* gh_secrets_open_ex flags. */
enum {
    /* First start (`gatehouse run`, `demo`): when the provider has no
     * master key yet (no local file; no key on the token) AND the store
     * holds no sealed secret, make version 1 (one log line). When sealed
     * secrets exist, a missing master key is an error: a new key would
     * orphan them. */
    GH_SECRETS_CREATE_MASTER = 1u << 0,
};
struct gh_secrets *gh_secrets_open_ex(const struct gh_config *cfg, struct gh_store *store,
                                      unsigned flags, struct gh_err *err);

/* `gatehouse secrets init`: makes master key version 1 (local: creates the
 * master key file, refusing to overwrite one; pkcs11: generates the key on
 * the token unless a version exists). GH_OK or GH_ERROR with <err>. */
int gh_secrets_init(const struct gh_config *cfg, struct gh_err *err);

/* The provider's name ("local", "pkcs11") and its current master key
 * version. */
const char *gh_secrets_provider(const struct gh_secrets *s);
int gh_secrets_current_version(struct gh_secrets *s, uint32_t *version, struct gh_err *err);
/* The version `rotate-master --prepare` made and no rotation has put in use
 * yet (nothing is sealed under it), or 0; *held (may be NULL): whether this
 * handle's provider holds it (the file was copied here). */
int gh_secrets_prepared_version(struct gh_secrets *s, uint32_t *version, bool *held,
                                struct gh_err *err);

/* Resolves every `secret:NAME` of <cfg> (config.h, secret_refs) from
 * secret (system, "config/NAME") into its field. GH_ERROR with <err> at the
 * reference's file:line:col when one is missing or too short. */
int gh_secrets_resolve_config(struct gh_secrets *s, struct gh_config *cfg, struct gh_err *err);

/* ---- The gateway's own private keys (ownkeys.c) ----
 * The audit key and the token signing keys are sealed as secrets of the
 * system tenant ("audit-key/<id>", "signing-key/<kid>"); their table rows
 * keep "secret:<name>" in the private_pem column instead of the PEM. */

/* Seals <pem> as (system, <name>) and writes "secret:<name>" into <ref>
 * (<size> bytes). */
int gh_secrets_seal_ref(struct gh_secrets *s, const char *name, const char *pem, char *ref,
                        size_t size, struct gh_err *err);

/* Resolves a private_pem column into <out> (<cap> bytes, NUL-terminated):
 * "secret:<name>" is opened from (system, <name>); a PEM (a row written
 * before issue 7 and not sealed yet) is copied. <s> may be NULL when the
 * column holds a PEM. The caller wipes <out>. */
int gh_secrets_open_ref(struct gh_secrets *s, const char *column, char *out, size_t cap,
                        struct gh_err *err);

/* At start: seals every audit and signing key the store still holds in
 * clear and replaces its column with the reference. Sets *sealed. */
int gh_secrets_seal_store_keys(struct gh_secrets *s, size_t *sealed, struct gh_err *err);

/* Master key rotation (rotate.c, docs/secrets.md). */
struct gh_secrets_rotate_result;
struct gh_secrets_rotate_opts {
    size_t batch;   /* rows per transaction; 0 = 100 (at most 200) */
    uint64_t limit; /* stop after this many rows, leaving it pending; 0 = no limit */
    /* Called once the rotation is recorded (res->started says whether this
     * call began it or resumed it), before any new master key version or
     * row moves: the CLI audits it there. Anything but GH_OK stops the
     * rotation (pending: a rerun resumes it) and is returned, with <err>
     * set by the callback. May be NULL. */
    int (*on_begin)(const struct gh_secrets_rotate_result *res, void *arg, struct gh_err *err);
    void *arg;
};
struct gh_secrets_rotate_result {
    uint32_t from_version, to_version;
    bool started;       /* this call recorded the rotation (else it resumed one) */
    bool finished;      /* every row is at to_version and the rotation is closed */
    uint64_t rewrapped; /* rows this call moved */
    uint64_t total;     /* rows the whole rotation moved so far */
    uint64_t remaining; /* rows still under an older version (when not finished) */
};

/* `rotate-master --prepare` (docs/secrets.md): makes master key version
 * N + 1 at the provider and records its check as prepared, so that no node
 * seals under it; copies of the file can then be made before
 * gh_secrets_rotate_master() puts it in use. A version prepared already is
 * kept (res->already), never made twice. Refused while a rotation is
 * pending. */
struct gh_secrets_prepare_result {
    uint32_t from_version; /* in use now */
    uint32_t version;      /* prepared */
    bool already;          /* prepared by an earlier call */
};
int gh_secrets_prepare_master(struct gh_secrets *s, struct gh_secrets_prepare_result *res,
                              struct gh_err *err);
/* `rotate-master --unprepare`: forgets the prepared version's check (it was
 * never in use, so nothing is sealed under it), for a prepared key that is
 * lost before its rotation (the file it was made in is gone). Sets
 * *version. Refused while a rotation is pending, and when none is
 * prepared. The key itself stays in whichever files hold it: a copy that
 * holds another key under that version number is refused at its next
 * open, as any wrong key. */
int gh_secrets_unprepare_master(struct gh_secrets *s, uint32_t *version, struct gh_err *err);

/* Rotates the master key without stopping anyone: records the rotation
 * (from the current version N to N + 1) in the store unless one is pending
 * (then resumes it: same target), makes version N + 1 at the provider (or
 * takes the one prepared; refused on a provider that lacks it), puts it in
 * use, and
 * re-wraps every data key under it, <opts>->batch rows per transaction,
 * each row only if no one changed it meanwhile. Values are never
 * decrypted: only data keys are unwrapped and wrapped again. Readers keep
 * working throughout (a row opens under whichever version wrapped it).
 * Stops after <opts>->limit rows (pending; a rerun resumes). */
int gh_secrets_rotate_master(struct gh_secrets *s, const struct gh_secrets_rotate_opts *opts,
                             struct gh_secrets_rotate_result *res, struct gh_err *err);

#endif
