/* The dispatcher's cache of opened webhook signing keys (see keycache.h). */
#include "hooks/keycache.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "secrets/secrets.h"
#include "store/store.h"

struct slot {
    char tenant[GH_STORE_TENANT_ID_SIZE];
    char endpoint[GH_STORE_HOOK_ID_SIZE];
    uint32_t version; /* 0: empty */
    size_t len;
    uint8_t key[GH_HOOKS_KEY_MAX];
};

struct gh_hooks_keycache {
    struct gh_secrets *sec;
    struct slot *slots;
    size_t cap;
    size_t next; /* the slot a miss fills: round robin, so the oldest goes first */
};

int gh_hooks_secret_name(char *out, size_t cap, const char *endpoint_id, uint32_t version)
{
    int n = snprintf(out, cap, "webhook/%s/%u", endpoint_id, version);
    return n > 0 && (size_t)n < cap ? GH_OK : GH_ERROR;
}

int gh_hooks_key_version_new(uint32_t current, uint32_t previous, uint32_t *out)
{
    uint32_t v;

    for (int i = 0; i < 8; i++) {
        if (RAND_bytes((unsigned char *)&v, sizeof(v)) != 1) return GH_ERROR;
        v &= 0x7fffffffu;
        if (v != 0 && v != current && v != previous) {
            *out = v;
            return GH_OK;
        }
    }
    return GH_ERROR;
}

struct gh_hooks_keycache *gh_hooks_keycache_new(struct gh_secrets *sec, size_t cap)
{
    struct gh_hooks_keycache *kc = calloc(1, sizeof(*kc));

    if (kc == NULL) return NULL;
    kc->slots = calloc(cap ? cap : 1, sizeof(*kc->slots));
    if (kc->slots == NULL) {
        free(kc);
        return NULL;
    }
    kc->sec = sec;
    kc->cap = cap ? cap : 1;
    return kc;
}

void gh_hooks_keycache_free(struct gh_hooks_keycache *kc)
{
    if (kc == NULL) return;
    OPENSSL_cleanse(kc->slots, kc->cap * sizeof(*kc->slots));
    free(kc->slots);
    free(kc);
}

int gh_hooks_keycache_get(struct gh_hooks_keycache *kc, const char *tenant, const char *endpoint_id,
                          uint32_t version, const uint8_t **key, size_t *len, struct gh_err *err)
{
    char name[GH_HOOKS_SECRET_NAME_SIZE];
    struct slot *s;
    int rc;

    for (size_t i = 0; i < kc->cap; i++) {
        s = &kc->slots[i];
        if (s->version == version && strcmp(s->endpoint, endpoint_id) == 0 &&
            strcmp(s->tenant, tenant) == 0) {
            *key = s->key;
            *len = s->len;
            return GH_OK;
        }
    }
    if (gh_hooks_secret_name(name, sizeof(name), endpoint_id, version) != GH_OK)
        return gh_err_set(err, NULL, 0, 0, "webhooks: endpoint id too long");
    s = &kc->slots[kc->next];
    OPENSSL_cleanse(s, sizeof(*s));
    rc = gh_secrets_get(kc->sec, tenant, name, s->key, sizeof(s->key), &s->len, err);
    if (rc != GH_OK || s->len == 0) {
        OPENSSL_cleanse(s, sizeof(*s));
        return rc != GH_OK ? rc : gh_err_set(err, NULL, 0, 0, "webhooks: empty signing key");
    }
    snprintf(s->tenant, sizeof(s->tenant), "%s", tenant);
    snprintf(s->endpoint, sizeof(s->endpoint), "%s", endpoint_id);
    s->version = version;
    kc->next = (kc->next + 1) % kc->cap;
    *key = s->key;
    *len = s->len;
    return GH_OK;
}
