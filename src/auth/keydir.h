/* The key directory: every API key the store knows (with its tenant's
 * status) and every revoked token id, in an immutable hash table that the
 * auth service rebuilds when the store's change counter moves and hands to
 * workers. Workers look keys up per request with no lock and no I/O, so an
 * unknown key id is refused without touching the store or Argon2.
 *
 * Nothing on a worker keeps a pointer into a directory across an event-loop
 * turn (the authn stage copies what it needs into the request), so a worker
 * drops its old directory as soon as it adopts a new one. */
#ifndef GH_AUTH_KEYDIR_H
#define GH_AUTH_KEYDIR_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/str.h"
#include "limits/policy.h"
#include "store/store.h"

struct gh_secrets;

struct gh_jwt_signer;
struct gh_jwks;

struct gh_keydir_entry {
    char id[GH_STORE_KEY_ID_SIZE];
    char tenant_id[GH_STORE_TENANT_ID_SIZE];
    bool tenant_active;
    bool key_active;
    int64_t expires_at; /* unix ms, 0 = never */
    char secret_hash[GH_STORE_HASH_SIZE];
    char roles[512]; /* space-separated */
    char scopes[1024];
    uint16_t id_len, tenant_len, roles_len, scopes_len; /* the hot path copies, not formats */
};

/* A tenant's plan and limit overrides (issue 4), sorted by id. */
struct gh_keydir_tenant {
    char id[GH_STORE_TENANT_ID_SIZE];
    bool active; /* not suspended: a JWT naming it passes (authn.c) */
    char plan[GH_STORE_NAME_SIZE];
    bool has_overrides;
    struct gh_tenant_overrides overrides;
};

struct gh_keydir {
    _Atomic int refs;
    uint64_t version; /* the store's change counter it was built from */
    struct gh_keydir_entry *entries;
    uint32_t *slots;                 /* open addressing: index + 1 into entries, 0 = empty */
    size_t n, cap;                   /* entries used; slots (a power of two) */
    char (*jtis)[GH_STORE_JTI_SIZE]; /* revoked token ids, sorted */
    size_t njtis;
    /* The gateway's own token keys (from the store's signing_keys). */
    struct gh_jwt_signer *signer;     /* the newest key: signs; NULL before the first */
    int64_t signer_created_at;        /* unix ms; 0 without a signer */
    struct gh_jwks *own_keys;         /* every published key: verifies (never NULL) */
    char *own_keys_json;              /* /.well-known/jwks.json body */
    struct gh_keydir_tenant *tenants; /* sorted by id */
    size_t ntenants;
    size_t own_keys_json_len;
};

/* Loads a directory from <st>, opening sealed token signing keys with
 * <secrets> (may be NULL: then only keys kept in clear can sign). Returns
 * NULL with <err> on failure. */
struct gh_keydir *gh_keydir_load_ex(struct gh_store *st, struct gh_secrets *secrets,
                                    struct gh_err *err);
/* An empty directory (before the first load, or without a store). */
struct gh_keydir *gh_keydir_empty(void);

const struct gh_keydir_entry *gh_keydir_find(const struct gh_keydir *d, gh_str key_id);
bool gh_keydir_jti_revoked(const struct gh_keydir *d, gh_str jti);
/* The tenant <id> (plan and overrides), or NULL (e.g. a JWT tenant the store
 * does not know: it gets limits.default_plan). */
const struct gh_keydir_tenant *gh_keydir_tenant(const struct gh_keydir *d, const char *id);

static inline void gh_keydir_ref(struct gh_keydir *d, int n)
{
    atomic_fetch_add_explicit(&d->refs, n, memory_order_relaxed);
}
void gh_keydir_unref(struct gh_keydir *d);

#endif
