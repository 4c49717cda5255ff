/* Secrets under a master key (secrets.h): opening the KMS provider that the
 * config names, sealing and opening values with a fresh data key each
 * (envelope.c), and resolving the config's `secret:NAME` references.
 * Plaintexts and data keys live only in buffers wiped before they are
 * freed; nothing here logs a value. */
#include "secrets/secrets.h"

#include <errno.h>
#include <stdatomic.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "config/config.h"
#include "core/log.h"
#include "secrets/envelope.h"
#include "secrets/kms.h"
#include "secrets/secrets_int.h"
#include "store/store.h"

static int invalid(struct gh_err *err, const char *msg)
{
    gh_err_set(err, NULL, 0, 0, "%s", msg);
    return GH_STORE_INVALID;
}

static int check_names(const char *tenant, const char *name, struct gh_err *err)
{
    if (tenant == NULL || !gh_store_valid_tenant_id(tenant))
        return invalid(err, "secrets: tenant must be \"system\" or a tenant id");
    if (name == NULL || !gh_store_valid_secret_name(name))
        return invalid(err, "secrets: name must be [A-Za-z0-9._/-]{1,128}, not starting with / "
                            "or .");
    return GH_OK;
}

/* Whether the store already holds sealed secrets: they decide whether a
 * missing master key may be made anew. */
static int sealed_rows(struct gh_store *store, uint64_t *rows, struct gh_err *err)
{
    return gh_store_secrets_count(store, rows, err);
}

static struct gh_kms *open_pkcs11(const struct gh_config *cfg, bool create, uint64_t sealed,
                                  struct gh_err *err)
{
    const struct gh_config_pkcs11 *p = &cfg->secrets.pkcs11;
    struct gh_kms *kms;
    struct gh_kms_pkcs11_params params = {
        .module = p->module,
        .token_label = p->token_label,
        .pin = p->pin,
        .key_label = p->key_label,
        .sealed = sealed,
    };

    if (p->module == NULL || p->token_label == NULL || p->pin == NULL) {
        gh_err_set(err, cfg->file, cfg->secrets.pos.line, cfg->secrets.pos.col,
                   "in secrets: provider pkcs11 needs pkcs11.module, token_label and pin");
        return NULL;
    }
    kms = gh_kms_pkcs11_open(&params, create, err);
    /* The module, the token and the PIN all come from the block: a failure
     * to open is placed there, as a config error is (the start and the
     * CLI fail on it; `gatehouse check` does not open the token). */
    if (kms == NULL && err != NULL && err->file[0] == '\0' && p->pos.line > 0) {
        char msg[sizeof(err->msg)];
        const char *m = err->msg;
        if (strncmp(m, "pkcs11: ", 8) == 0) m += 8;
        snprintf(msg, sizeof(msg), "%s", m);
        gh_err_set(err, cfg->file, p->pos.line, p->pos.col, "in secrets.pkcs11: %s", msg);
    }
    return kms;
}

/* Beside a SQLite store the file has a default; beside a PostgreSQL one it
 * has none, and every node must name the same file. */
#define NO_MASTER_KEY_FILE                                                                         \
    "secrets: no master_key_file configured (with store.postgres, name it: the same file on "      \
    "every node)"

/* The local provider at start: the file, or a new one when there is none
 * and nothing was ever sealed (*created then). */
static struct gh_kms *open_local(const struct gh_config *cfg, struct gh_store *store, bool create,
                                 bool *created, struct gh_err *err)
{
    const char *path = cfg->secrets.master_key_file;
    uint64_t rows = 0;

    if (path == NULL) {
        gh_err_set(err, NULL, 0, 0, NO_MASTER_KEY_FILE);
        return NULL;
    }
    if (!create && access(path, F_OK) != 0 && errno == ENOENT &&
        sealed_rows(store, &rows, err) == GH_OK && rows > 0) {
        /* Not "create it": a new key would leave them unreadable. */
        gh_err_set(err, NULL, 0, 0,
                   "master key file %s is missing, but the store holds %" PRIu64
                   " sealed secret(s): copy the file from a node of this store, or restore it "
                   "from its backup",
                   path, rows);
        return NULL;
    }
    if (create && access(path, F_OK) != 0 && errno == ENOENT) {
        if (sealed_rows(store, &rows, err) != GH_OK) return NULL;
        if (rows > 0) {
            gh_err_set(err, NULL, 0, 0,
                       "master key file %s is missing, but the store holds %" PRIu64
                       " sealed secret(s): restore the file from its backup (a new master key "
                       "would leave them unreadable)",
                       path, rows);
            return NULL;
        }
        if (gh_kms_local_create(path, err) != GH_OK) return NULL;
        *created = true;
        gh_log_info("secrets: created master key file %s (mode 0600); back it up apart from the "
                    "store",
                    path);
    }
    return gh_kms_local_open(path, err);
}

/* What every master key check wraps. Not secret: a check shows only that
 * the key which unwraps it is the key which made it. */
static const uint8_t CHECK_PLAIN[GH_KMS_DEK_LEN] = "gatehouse master key check, v1 .";

/* Where the master key lives, for messages. */
static void key_place(const struct gh_config *cfg, char *out, size_t cap)
{
    if (cfg->secrets.provider != NULL && strcmp(cfg->secrets.provider, "pkcs11") == 0)
        snprintf(out, cap, "token %s", cfg->secrets.pkcs11.token_label);
    else
        snprintf(out, cap, "file %s", cfg->secrets.master_key_file);
}

int gh_secrets__check_version(struct gh_secrets *s, uint32_t version, bool prepared,
                              uint32_t *newest, struct gh_err *err)
{
    uint8_t mine[GH_KMS_BLOB_MAX], stored[GH_STORE_SECRET_WRAP_MAX], plain[GH_KMS_DEK_LEN];
    size_t mine_len = 0, stored_len = 0;
    struct gh_err e = {0};
    int rc;

    if (s->kms->ops->wrap(s->kms, version, CHECK_PLAIN, mine, sizeof(mine), &mine_len, err) !=
        GH_OK)
        return GH_STORE_NOT_FOUND;
    rc = gh_store_secrets_kek_check(s->store, version, mine, mine_len, prepared, stored,
                                    &stored_len, newest, err);
    if (rc != GH_OK) return rc;
    /* The store's check, ours or another process's: only the same key
     * unwraps it (AES-GCM's tag) to the same bytes. */
    if (s->kms->ops->unwrap(s->kms, version, stored, stored_len, plain, &e) != GH_OK ||
        CRYPTO_memcmp(plain, CHECK_PLAIN, sizeof(plain)) != 0) {
        bool gone =
            s->kms->ops->discard && s->kms->ops->discard(s->kms, version, stored, stored_len);
        if (gone) s->discarded = version;
        gh_err_set(err, NULL, 0, 0,
                   "master key version %u of the %s is not the one this store's secrets are "
                   "sealed under%s",
                   version, s->place,
                   gone ? " (another process made that version at the same moment; the key "
                          "this process had just made is destroyed)"
                        : "");
        rc = GH_STORE_CONFLICT;
    }
    OPENSSL_cleanse(plain, sizeof(plain));
    return rc;
}

/* Checks versions 1..current against the store, recording those it has no
 * check of yet (secrets_int.h). A version below the current one that the
 * provider no longer holds is passed over: nothing can be sealed under it. */
static int check_versions(struct gh_secrets *s, struct gh_err *err)
{
    uint32_t cur, newest = 0, in_use = 0;
    int rc;

    if (s->kms->ops->current(s->kms, &cur, err) != GH_OK) return GH_ERROR;
    if (cur == 0) return gh_err_set(err, NULL, 0, 0, "secrets: the provider has no master key");
    if (gh_store_secrets_kek_state(s->store, &in_use, &newest, err) != GH_OK) return GH_ERROR;
    for (uint32_t v = 1; v <= cur; v++) {
        /* A first open records its versions in use (a new store, or one
         * from before the checks); a version beyond those in use that has
         * no check yet is one a prepare or a rotation is making right now,
         * and is theirs to put in use. */
        rc = gh_secrets__check_version(s, v, in_use > 0 && v > in_use, &newest, err);
        if (rc == GH_STORE_NOT_FOUND && v < cur) continue;
        if (rc != GH_OK) return rc == GH_STORE_CONFLICT ? rc : GH_ERROR;
    }
    atomic_store(&s->checked, cur);
    if (gh_store_secrets_kek_state(s->store, &in_use, &newest, err) != GH_OK) return GH_ERROR;
    /* The version sealed under (the one in use, or the newest held below
     * it) was among those compared just now. */
    atomic_store(&s->in_use_seen, in_use);
    if (in_use > cur)
        gh_log_warn("secrets: the store has master key version %u, but the %s has only up to "
                    "version %u: values sealed or re-wrapped under the newer one do not open "
                    "here until the %s holds it too",
                    in_use, s->place, cur, s->place);
    else if (newest > cur)
        gh_log_info("secrets: master key version %u is prepared (in use nowhere yet), and the "
                    "%s has only up to version %u: give it that version before the rotation",
                    newest, s->place, cur);
    return GH_OK;
}

struct gh_secrets *gh_secrets_open_ex(const struct gh_config *cfg, struct gh_store *store,
                                      unsigned flags, struct gh_err *err)
{
    bool create = (flags & GH_SECRETS_CREATE_MASTER) != 0, created = false;
    struct gh_secrets *s = calloc(1, sizeof(*s));
    char msg[sizeof(err->msg)];
    int rc;

    if (s == NULL) {
        gh_err_set(err, NULL, 0, 0, "out of memory");
        return NULL;
    }
    s->store = store;
    key_place(cfg, s->place, sizeof(s->place));
    if (cfg->secrets.provider != NULL && strcmp(cfg->secrets.provider, "pkcs11") == 0) {
        uint64_t rows = 0;
        /* The token makes its first key only on a store with nothing sealed,
         * as the local file is (open_local). */
        if (sealed_rows(store, &rows, err) != GH_OK) goto fail;
        s->kms = open_pkcs11(cfg, create && rows == 0, rows, err);
    } else {
        s->kms = open_local(cfg, store, create, &created, err);
    }
    if (s->kms == NULL) goto fail;
    rc = check_versions(s, err);
    if (rc == GH_STORE_CONFLICT && s->discarded != 0) {
        /* Two first starts on one token at once: each made a key, the
         * store took the other's, and this one's is destroyed (only when the
         * other's is on this token: p11_discard). Compared again, the
         * store's key passes. A new
         * handle looks at the token afresh (SoftHSM2's file store, for one,
         * may not list another process's key to a process that wrote the
         * token since). */
        uint32_t v = s->discarded;
        s->discarded = 0;
        s->kms->ops->close(s->kms);
        s->kms = open_pkcs11(cfg, false, 0, err);
        rc = s->kms != NULL ? check_versions(s, err) : GH_ERROR;
        if (rc != GH_OK && err != NULL) {
            snprintf(msg, sizeof(msg), "%s", err->msg);
            gh_err_set(err, NULL, 0, 0,
                       "another process made this store's master key version %u at the same "
                       "moment, and the key this start made is destroyed; comparing the "
                       "store's key again failed: %s",
                       v, msg);
            goto fail;
        }
        if (rc == GH_OK)
            gh_log_warn("secrets: another process made master key version %u at the same "
                        "moment on the %s; this start destroyed the key it had just made and "
                        "uses that process's",
                        v, s->place);
    }
    if (rc == GH_STORE_CONFLICT && err != NULL) {
        snprintf(msg, sizeof(msg), "%s", err->msg);
        if (created) {
            /* Made by this start and refused: another node's first start
             * made the store's key at the same moment. It sealed nothing,
             * and left in place it would be refused at every start. (Not
             * on other errors: the check may have been recorded.) */
            unlink(cfg->secrets.master_key_file);
            gh_err_set(err, NULL, 0, 0,
                       "%s: another node made the store's master key (at the same time, or "
                       "earlier and its file is missing here), and this start removed the file it "
                       "had just made; copy that node's file here (docs/secrets.md, \"Master key "
                       "checks\")",
                       msg);
        } else {
            gh_err_set(err, NULL, 0, 0,
                       "%s: every node needs the same master key (copy the file of a node that "
                       "starts, or name the same token)",
                       msg);
        }
        goto fail;
    }
    if (rc != GH_OK) goto fail;
    return s;
fail:
    if (s->kms != NULL) s->kms->ops->close(s->kms);
    free(s);
    return NULL;
}

struct gh_secrets *gh_secrets_open(const struct gh_config *cfg, struct gh_store *store,
                                   struct gh_err *err)
{
    return gh_secrets_open_ex(cfg, store, 0, err);
}

void gh_secrets_close(struct gh_secrets *s)
{
    if (s == NULL) return;
    if (s->kms != NULL) s->kms->ops->close(s->kms);
    free(s);
}

int gh_secrets_init(const struct gh_config *cfg, struct gh_err *err)
{
    struct gh_kms *k;

    if (cfg->secrets.provider != NULL && strcmp(cfg->secrets.provider, "pkcs11") == 0) {
        k = open_pkcs11(cfg, true, 0, err);
        if (k == NULL) return GH_ERROR;
        k->ops->close(k);
        return GH_OK;
    }
    if (cfg->secrets.master_key_file == NULL)
        return gh_err_set(err, NULL, 0, 0, NO_MASTER_KEY_FILE);
    return gh_kms_local_create(cfg->secrets.master_key_file, err);
}

const char *gh_secrets_provider(const struct gh_secrets *s)
{
    return s->kms->ops->name;
}

int gh_secrets_current_version(struct gh_secrets *s, uint32_t *version, struct gh_err *err)
{
    uint32_t newest = 0, in_use = 0;

    *version = 0;
    if (s->kms->ops->current(s->kms, version, err) != GH_OK) return GH_ERROR;
    if (*version == 0)
        return gh_err_set(err, NULL, 0, 0, "secrets: the provider has no master key");
    /* A version this handle has not compared yet (the file gained one while
     * the gateway runs): compared now, before anything is sealed under it.
     * A rotation that lost the race to record the version's check leaves
     * its own key in its file; this keeps a running gateway from using it.
     * A check recorded here is recorded prepared: a version met while
     * running is put in use by its rotation, never by a node that merely
     * holds it (one that ran before `rotate-master --prepare` recorded
     * its check would otherwise put it in use). */
    if (*version > atomic_load(&s->checked)) {
        if (gh_secrets__check_version(s, *version, true, &newest, err) != GH_OK) return GH_ERROR;
        atomic_store(&s->checked, *version);
    }
    /* A prepared version is held, not used: values are sealed under the
     * newest version in use until a rotation puts the prepared one in use,
     * so a node whose copy of the file lacks it still opens them. */
    if (gh_store_secrets_kek_state(s->store, &in_use, &newest, err) != GH_OK) return GH_ERROR;
    if (in_use > 0 && *version > in_use) *version = in_use;
    if (in_use != atomic_load(&s->in_use_seen)) {
        if (gh_secrets__check_version(s, *version, false, &newest, err) != GH_OK) return GH_ERROR;
        atomic_store(&s->in_use_seen, in_use);
    }
    return GH_OK;
}

int gh_secrets_prepared_version(struct gh_secrets *s, uint32_t *version, bool *held,
                                struct gh_err *err)
{
    uint32_t in_use = 0, newest = 0, cur = 0;

    *version = 0;
    if (held) *held = false;
    if (gh_store_secrets_kek_state(s->store, &in_use, &newest, err) != GH_OK) return GH_ERROR;
    if (newest > in_use) *version = newest;
    if (held && *version && s->kms->ops->current(s->kms, &cur, err) != GH_OK) return GH_ERROR;
    if (held) *held = *version && cur >= *version;
    return GH_OK;
}

int gh_secrets_put(struct gh_secrets *s, const char *tenant, const char *name, const void *value,
                   size_t len, struct gh_err *err)
{
    struct gh_store_secret *row = NULL;
    uint8_t dek[GH_KMS_DEK_LEN];
    uint32_t version;
    int rc = check_names(tenant, name, err);

    if (rc != GH_OK) return rc;
    if (value == NULL || len == 0 || len > GH_SECRET_VALUE_MAX)
        return invalid(err, "secrets: a value must have 1..8192 bytes");
    row = calloc(1, sizeof(*row));
    if (row == NULL) return gh_err_set(err, NULL, 0, 0, "out of memory");
    snprintf(row->tenant_id, sizeof(row->tenant_id), "%s", tenant);
    snprintf(row->name, sizeof(row->name), "%s", name);
    rc = GH_ERROR;
    /* A fresh data key per value: replacing a value never reuses a key, so
     * random nonces never repeat under one key. */
    if (RAND_priv_bytes(dek, sizeof(dek)) != 1) {
        gh_err_set(err, NULL, 0, 0, "secrets: the CSPRNG failed");
        goto out;
    }
    if (gh_secrets_current_version(s, &version, err) != GH_OK ||
        s->kms->ops->wrap(s->kms, version, dek, row->wrapped_dek, sizeof(row->wrapped_dek),
                          &row->wrapped_len, err) != GH_OK)
        goto out;
    row->kek_version = version;
    if (gh_envelope_seal(dek, tenant, name, value, len, row->nonce, row->ciphertext, err) != GH_OK)
        goto out;
    row->ciphertext_len = len + GH_ENVELOPE_TAG_LEN;
    rc = gh_store_secret_put(s->store, row, err);
out:
    OPENSSL_cleanse(dek, sizeof(dek));
    free(row); /* ciphertext and wrapped key only */
    return rc;
}

int gh_secrets_get(struct gh_secrets *s, const char *tenant, const char *name, void *out,
                   size_t cap, size_t *len, struct gh_err *err)
{
    struct gh_store_secret *row = NULL;
    uint8_t dek[GH_KMS_DEK_LEN];
    int rc;

    *len = 0;
    rc = check_names(tenant, name, err);
    if (rc != GH_OK) return rc;
    row = malloc(sizeof(*row));
    if (row == NULL) return gh_err_set(err, NULL, 0, 0, "out of memory");
    rc = gh_store_secret_get(s->store, tenant, name, row, err);
    if (rc != GH_OK) goto out;
    if (row->ciphertext_len <= GH_ENVELOPE_TAG_LEN) { /* not a row we wrote */
        rc = gh_err_set(err, NULL, 0, 0, "secrets: the ciphertext does not authenticate");
        goto out;
    }
    if (row->ciphertext_len - GH_ENVELOPE_TAG_LEN > cap) {
        rc = invalid(err, "secrets: the value is larger than the buffer");
        goto out;
    }
    rc =
        s->kms->ops->unwrap(s->kms, row->kek_version, row->wrapped_dek, row->wrapped_len, dek, err);
    if (rc == GH_OK)
        rc = gh_envelope_open(dek, tenant, name, row->nonce, row->ciphertext, row->ciphertext_len,
                              out, cap, len, err);
    if (rc != GH_OK) rc = GH_ERROR;
out:
    OPENSSL_cleanse(dek, sizeof(dek));
    free(row);
    return rc;
}

int gh_secrets_delete(struct gh_secrets *s, const char *tenant, const char *name,
                      struct gh_err *err)
{
    int rc = check_names(tenant, name, err);

    if (rc != GH_OK) return rc;
    return gh_store_secret_delete(s->store, tenant, name, err);
}

_Static_assert(sizeof(GH_CONFIG_SECRET_REF_PREFIX) - 1 + GH_CONFIG_SECRET_REF_MAX ==
                   GH_SECRET_NAME_MAX,
               "every secret:NAME the config takes names a secret the store can hold");

int gh_secrets_resolve_config(struct gh_secrets *s, struct gh_config *cfg, struct gh_err *err)
{
    char name[GH_SECRET_NAME_MAX + 1];
    char *buf = malloc(GH_SECRET_VALUE_MAX + 1);
    int rc = GH_OK;

    if (buf == NULL) return gh_err_set(err, NULL, 0, 0, "out of memory");
    for (size_t i = 0; i < cfg->nsecret_refs && rc == GH_OK; i++) {
        struct gh_config_secret_ref *r = &cfg->secret_refs[i];
        struct gh_err e = {0};
        size_t len = 0;

        snprintf(name, sizeof(name), GH_CONFIG_SECRET_REF_PREFIX "%s", r->name);
        rc = gh_secrets_get(s, GH_STORE_SYSTEM_TENANT, name, buf, GH_SECRET_VALUE_MAX, &len, &e);
        if (rc == GH_STORE_NOT_FOUND) {
            rc = gh_err_set(err, cfg->file, r->pos.line, r->pos.col,
                            "in %s: secret:%s: no such secret (store it with `gatehouse secrets "
                            "set %s -c FILE`)",
                            r->key, r->name, name);
        } else if (rc != GH_OK) {
            rc = gh_err_set(err, cfg->file, r->pos.line, r->pos.col, "in %s: secret:%s: %s", r->key,
                            r->name, e.msg);
        } else if (len < r->min_len || memchr(buf, '\0', len) != NULL) {
            rc = gh_err_set(err, cfg->file, r->pos.line, r->pos.col,
                            "in %s: secret:%s: a secret here must be text of at least %zu bytes",
                            r->key, r->name, r->min_len);
        } else {
            buf[len] = '\0';
            free(*r->field);
            *r->field = strdup(buf);
            if (*r->field == NULL) rc = gh_err_set(err, NULL, 0, 0, "out of memory");
        }
        OPENSSL_cleanse(buf, len + 1);
    }
    free(buf);
    return rc;
}
