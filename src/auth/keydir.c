/* Building and reading the key directory. */
#include "auth/keydir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/pem.h>

#include "auth/jwks.h"
#include "auth/jwt.h"
#include "core/clock.h"
#include "secrets/secrets.h"
#include "core/log.h"

struct builder {
    struct gh_keydir *d;
    struct gh_secrets *secrets; /* opens sealed signing keys; may be NULL */
    size_t cap_tenants;
    size_t cap_entries;
    size_t cap_jtis;
    int oom;
};

static uint64_t hash_id(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a: ids are random already */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
    return h;
}

static void join(char *out, size_t size, const char (*items)[GH_STORE_TOKEN_SIZE], size_t n)
{
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        size_t k = strlen(items[i]);
        if (len + k + 2 > size) break; /* cannot happen with the store's limits */
        if (len) out[len++] = ' ';
        memcpy(out + len, items[i], k);
        len += k;
        out[len] = '\0';
    }
}

static int add_key(const struct gh_store_key *k, enum gh_store_tenant_status ts, void *arg)
{
    struct builder *b = arg;
    struct gh_keydir_entry *e;

    if (b->d->n == b->cap_entries) {
        size_t nc = b->cap_entries ? b->cap_entries * 2 : 64;
        struct gh_keydir_entry *ne = realloc(b->d->entries, nc * sizeof(*ne));
        if (ne == NULL) {
            b->oom = 1;
            return GH_ERROR;
        }
        b->d->entries = ne;
        b->cap_entries = nc;
    }
    e = &b->d->entries[b->d->n++];
    memset(e, 0, sizeof(*e));
    snprintf(e->id, sizeof(e->id), "%s", k->id);
    snprintf(e->tenant_id, sizeof(e->tenant_id), "%s", k->tenant_id);
    e->tenant_active = ts == GH_STORE_TENANT_ACTIVE;
    e->key_active = k->status == GH_STORE_KEY_ACTIVE;
    e->expires_at = k->expires_at;
    snprintf(e->secret_hash, sizeof(e->secret_hash), "%s", k->secret_hash);
    join(e->roles, sizeof(e->roles), k->roles, k->nroles);
    join(e->scopes, sizeof(e->scopes), k->scopes, k->nscopes);
    e->id_len = (uint16_t)strlen(e->id);
    e->tenant_len = (uint16_t)strlen(e->tenant_id);
    e->roles_len = (uint16_t)strlen(e->roles);
    e->scopes_len = (uint16_t)strlen(e->scopes);
    return GH_OK;
}

static int add_jti(const struct gh_store_revoked_token *t, void *arg)
{
    struct builder *b = arg;
    if (b->d->njtis == b->cap_jtis) {
        size_t nc = b->cap_jtis ? b->cap_jtis * 2 : 16;
        void *nj = realloc(b->d->jtis, nc * sizeof(*b->d->jtis));
        if (nj == NULL) {
            b->oom = 1;
            return GH_ERROR;
        }
        b->d->jtis = nj;
        b->cap_jtis = nc;
    }
    snprintf(b->d->jtis[b->d->njtis++], GH_STORE_JTI_SIZE, "%s", t->jti);
    return GH_OK;
}

/* One signing key: its public half joins own_keys; the newest signs. */
static int add_signing(const struct gh_store_signing_key *k, void *arg)
{
    struct builder *b = arg;
    struct gh_err err = {0};
    char pem[GH_STORE_PEM_SIZE];
    BIO *bio = NULL;
    EVP_PKEY *pkey = NULL;
    enum gh_jwa alg = gh_jwa_parse(k->alg, strlen(k->alg));

    /* The row holds "secret:signing-key/<kid>" (sealed) or, from before
     * issue 7, the PEM itself. */
    if (gh_secrets_open_ref(b->secrets, k->private_pem, pem, sizeof(pem), &err) == GH_OK) {
        bio = BIO_new_mem_buf(pem, -1);
        pkey = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    }
    BIO_free(bio);
    OPENSSL_cleanse(pem, sizeof(pem));
    if (pkey == NULL || gh_jwks_add(b->d->own_keys, pkey, k->kid, alg, &err) != GH_OK) {
        /* One bad row must not take the others down. */
        gh_log_warn("auth: signing key %s cannot be used: %s", k->kid,
                    err.msg[0] ? err.msg : "not a PEM private key");
        EVP_PKEY_free(pkey);
        return GH_OK;
    }
    if (k->created_at >= b->d->signer_created_at) {
        struct gh_jwt_signer *s = gh_jwt_signer_new(pkey, k->kid, &err);
        if (s) {
            gh_jwt_signer_free(b->d->signer);
            b->d->signer = s;
            b->d->signer_created_at = k->created_at;
        }
    }
    EVP_PKEY_free(pkey);
    return GH_OK;
}

static int cmp_jti(const void *a, const void *b)
{
    return strcmp(a, b);
}

static int index_entries(struct gh_keydir *d)
{
    size_t cap = 16;
    while (cap < d->n * 2)
        cap <<= 1;
    d->slots = calloc(cap, sizeof(*d->slots));
    if (d->slots == NULL) return GH_ERROR;
    d->cap = cap;
    for (size_t i = 0; i < d->n; i++) {
        size_t s = hash_id(d->entries[i].id, strlen(d->entries[i].id)) & (cap - 1);
        while (d->slots[s])
            s = (s + 1) & (cap - 1);
        d->slots[s] = (uint32_t)(i + 1);
    }
    return GH_OK;
}

struct gh_keydir *gh_keydir_empty(void)
{
    struct gh_keydir *d = calloc(1, sizeof(*d));
    if (d == NULL) return NULL;
    atomic_init(&d->refs, 1);
    d->own_keys = gh_jwks_new();
    d->own_keys_json = d->own_keys ? gh_jwks_to_json(d->own_keys, NULL) : NULL;
    if (d->own_keys_json) d->own_keys_json_len = strlen(d->own_keys_json);
    if (index_entries(d) != GH_OK || d->own_keys_json == NULL) {
        gh_keydir_unref(d);
        return NULL;
    }
    return d;
}

/* Overrides were validated by the admin API; a row that no longer parses
 * (written by a newer version?) is logged and ignored, not fatal. */
static int add_tenant(const char *id, enum gh_store_tenant_status status, const char *plan,
                      const char *overrides, void *arg)
{
    struct builder *b = arg;
    struct gh_keydir_tenant *t;
    char why[200];

    if (b->d->ntenants == b->cap_tenants) {
        size_t cap = b->cap_tenants ? b->cap_tenants * 2 : 64;
        struct gh_keydir_tenant *n = realloc(b->d->tenants, cap * sizeof(*n));
        if (n == NULL) {
            b->oom = 1;
            return GH_ERROR;
        }
        b->d->tenants = n;
        b->cap_tenants = cap;
    }
    t = &b->d->tenants[b->d->ntenants++];
    memset(t, 0, sizeof(*t));
    snprintf(t->id, sizeof(t->id), "%s", id);
    snprintf(t->plan, sizeof(t->plan), "%s", plan);
    t->active = status == GH_STORE_TENANT_ACTIVE;
    if (overrides[0] != '\0') {
        if (gh_tenant_overrides_parse(overrides, &t->overrides, why, sizeof(why)) == GH_OK)
            t->has_overrides = true;
        else
            gh_log_warn("tenant %s: limit overrides ignored: %s", id, why);
    }
    return GH_OK;
}

static int cmp_tenant(const void *a, const void *b)
{
    return strcmp(((const struct gh_keydir_tenant *)a)->id,
                  ((const struct gh_keydir_tenant *)b)->id);
}

const struct gh_keydir_tenant *gh_keydir_tenant(const struct gh_keydir *d, const char *id)
{
    size_t lo = 0, hi = d->ntenants;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(id, d->tenants[mid].id);
        if (c == 0) return &d->tenants[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

struct gh_keydir *gh_keydir_load_ex(struct gh_store *st, struct gh_secrets *secrets,
                                    struct gh_err *err)
{
    struct builder b = {0};
    uint64_t v1 = 0, v2 = 0;

    b.secrets = secrets;
    b.d = calloc(1, sizeof(*b.d));
    if (b.d == NULL) {
        gh_err_set(err, NULL, 0, 0, "out of memory");
        return NULL;
    }
    atomic_init(&b.d->refs, 1);
    if (gh_store_key_directory_load(st, add_key, &b, &v1, err) != GH_OK) goto fail;
    if (gh_store_revoked_tokens_load(st, gh_wall_ms(), add_jti, &b, &v2, err) != GH_OK) goto fail;
    if (gh_store_tenant_limits_load(st, add_tenant, &b, err) != GH_OK) goto fail;
    if (b.d->ntenants) qsort(b.d->tenants, b.d->ntenants, sizeof(*b.d->tenants), cmp_tenant);
    b.d->own_keys = gh_jwks_new();
    if (b.d->own_keys == NULL ||
        gh_store_signing_keys_load(st, (int64_t)gh_wall_ms(), add_signing, &b, err) != GH_OK)
        goto fail;
    b.d->own_keys_json = gh_jwks_to_json(b.d->own_keys, err);
    if (b.d->own_keys_json == NULL) goto fail;
    b.d->own_keys_json_len = strlen(b.d->own_keys_json);
    /* The older of the two versions: if a write came between the loads,
     * the next poll sees a newer counter and loads again. */
    b.d->version = v1 < v2 ? v1 : v2;
    if (b.d->njtis) qsort(b.d->jtis, b.d->njtis, sizeof(*b.d->jtis), cmp_jti);
    if (index_entries(b.d) != GH_OK) goto fail;
    return b.d;
fail:
    if (b.oom) gh_err_set(err, NULL, 0, 0, "out of memory loading the key directory");
    atomic_store(&b.d->refs, 1);
    gh_keydir_unref(b.d);
    return NULL;
}

const struct gh_keydir_entry *gh_keydir_find(const struct gh_keydir *d, gh_str key_id)
{
    size_t s;
    if (d->cap == 0 || key_id.len >= GH_STORE_KEY_ID_SIZE) return NULL;
    s = hash_id(key_id.ptr, key_id.len) & (d->cap - 1);
    while (d->slots[s]) {
        const struct gh_keydir_entry *e = &d->entries[d->slots[s] - 1];
        if (strlen(e->id) == key_id.len && memcmp(e->id, key_id.ptr, key_id.len) == 0) return e;
        s = (s + 1) & (d->cap - 1);
    }
    return NULL;
}

bool gh_keydir_jti_revoked(const struct gh_keydir *d, gh_str jti)
{
    char key[GH_STORE_JTI_SIZE];
    if (d->njtis == 0 || jti.len == 0 || jti.len >= sizeof(key)) return false;
    memcpy(key, jti.ptr, jti.len);
    key[jti.len] = '\0';
    return bsearch(key, d->jtis, d->njtis, sizeof(*d->jtis), cmp_jti) != NULL;
}

void gh_keydir_unref(struct gh_keydir *d)
{
    if (d == NULL) return;
    if (atomic_fetch_sub_explicit(&d->refs, 1, memory_order_acq_rel) != 1) return;
    free(d->entries);
    free(d->slots);
    free(d->jtis);
    free(d->tenants);
    gh_jwt_signer_free(d->signer);
    if (d->own_keys) gh_jwks_release(d->own_keys);
    free(d->own_keys_json);
    free(d);
}
