/* The gateway's own private keys as sealed secrets (secrets.h, "own private
 * keys"): the audit key (src/audit/keys.c) and the token signing keys
 * (src/auth/service.c, keydir.c) keep only "secret:<name>" in their table,
 * and the PEM is sealed under the master key like any other secret. Rows
 * from before issue 7 hold the PEM itself: gh_secrets_seal_store_keys seals
 * them at start, and gh_secrets_open_ref still reads them until then. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "core/log.h"
#include "secrets/secrets.h"
#include "secrets/secrets_int.h"
#include "store/store.h"

#define REF     "secret:"
#define PEM_MAX 2048 /* = GH_STORE_PEM_SIZE: the larger of the two tables' columns */

int gh_secrets_seal_ref(struct gh_secrets *s, const char *name, const char *pem, char *ref,
                        size_t size, struct gh_err *err)
{
    int rc;

    if ((size_t)snprintf(ref, size, REF "%s", name) >= size)
        return gh_err_set(err, NULL, 0, 0, "secrets: reference too long");
    rc = gh_secrets_put(s, GH_STORE_SYSTEM_TENANT, name, pem, strlen(pem), err);
    return rc == GH_OK ? GH_OK : GH_ERROR;
}

int gh_secrets_open_ref(struct gh_secrets *s, const char *column, char *out, size_t cap,
                        struct gh_err *err)
{
    size_t len = 0;
    int rc;

    if (cap == 0) return gh_err_set(err, NULL, 0, 0, "secrets: no room");
    if (strncmp(column, REF, sizeof(REF) - 1) != 0) {
        if ((size_t)snprintf(out, cap, "%s", column) >= cap)
            return gh_err_set(err, NULL, 0, 0, "secrets: key too long");
        return GH_OK;
    }
    if (s == NULL)
        return gh_err_set(err, NULL, 0, 0, "%s is sealed, and no secrets provider is open", column);
    rc = gh_secrets_get(s, GH_STORE_SYSTEM_TENANT, column + sizeof(REF) - 1, out, cap - 1, &len,
                        err);
    if (rc != GH_OK) {
        out[0] = '\0';
        return GH_ERROR;
    }
    out[len] = '\0';
    return GH_OK;
}

/* Seals one clear key (<pem>) of <kind> as <prefix><id>. */
static int seal_one(struct gh_secrets *s, enum gh_store_private_kind kind, const char *prefix,
                    const char *id, const char *pem, struct gh_err *err)
{
    char name[GH_SECRET_NAME_MAX + 1], ref[GH_SECRET_NAME_MAX + 16];

    snprintf(name, sizeof(name), "%s%s", prefix, id);
    /* The secret first, then the column: an interruption between the two
     * leaves the PEM in place, to be sealed again at the next start. */
    if (gh_secrets_seal_ref(s, name, pem, ref, sizeof(ref), err) != GH_OK) return GH_ERROR;
    return gh_store_private_key_set(s->store, kind, id, ref, err);
}

struct clear_signing {
    char kid[GH_STORE_KID_SIZE];
    char pem[PEM_MAX];
};

struct signing_walk {
    struct clear_signing *keys;
    size_t n, cap;
};

static int collect_signing(const struct gh_store_signing_key *k, void *arg)
{
    struct signing_walk *w = arg;

    if (strncmp(k->private_pem, "-----BEGIN ", 11) != 0) return GH_OK;
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 8;
        struct clear_signing *keys = calloc(cap, sizeof(*keys));
        if (keys == NULL) return GH_ERROR;
        if (w->keys) memcpy(keys, w->keys, w->n * sizeof(*keys));
        if (w->keys) OPENSSL_cleanse(w->keys, w->n * sizeof(*keys));
        free(w->keys);
        w->keys = keys;
        w->cap = cap;
    }
    snprintf(w->keys[w->n].kid, sizeof(w->keys[w->n].kid), "%s", k->kid);
    snprintf(w->keys[w->n].pem, sizeof(w->keys[w->n].pem), "%s", k->private_pem);
    w->n++;
    return GH_OK;
}

#define AUDIT_KEYS_MAX 256

int gh_secrets_seal_store_keys(struct gh_secrets *s, size_t *sealed, struct gh_err *err)
{
    struct gh_store_audit_key *ak = calloc(AUDIT_KEYS_MAX, sizeof(*ak));
    struct signing_walk w = {0};
    size_t n = 0;
    int rc = GH_ERROR;

    *sealed = 0;
    if (ak == NULL) return gh_err_set(err, NULL, 0, 0, "out of memory");
    /* Every signing key, also those no longer published (now = 0): an
     * expired private key still signs tokens someone could replay. */
    if (gh_store_signing_keys_load(s->store, 0, collect_signing, &w, err) != GH_OK) goto out;
    for (size_t i = 0; i < w.n; i++) {
        if (seal_one(s, GH_STORE_PRIVATE_SIGNING_KEY, "signing-key/", w.keys[i].kid, w.keys[i].pem,
                     err) != GH_OK)
            goto out;
        (*sealed)++;
    }
    if (gh_store_audit_keys_list(s->store, ak, AUDIT_KEYS_MAX, &n, err) != GH_OK) goto out;
    for (size_t i = 0; i < n; i++) {
        if (strncmp(ak[i].private_pem, "-----BEGIN ", 11) != 0) continue;
        if (seal_one(s, GH_STORE_PRIVATE_AUDIT_KEY, "audit-key/", ak[i].key_id, ak[i].private_pem,
                     err) != GH_OK)
            goto out;
        (*sealed)++;
    }
    if (*sealed > 0)
        gh_log_info("secrets: sealed %zu private key(s) that the store held in clear", *sealed);
    rc = GH_OK;
out:
    OPENSSL_cleanse(ak, AUDIT_KEYS_MAX * sizeof(*ak));
    free(ak);
    if (w.keys) OPENSSL_cleanse(w.keys, w.cap * sizeof(*w.keys));
    free(w.keys);
    return rc;
}
