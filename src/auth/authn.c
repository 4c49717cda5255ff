/* Authentication and authorization on the worker thread. */
#include "auth/authn.h"

#include "audit/request.h"
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/request.h"
#include "auth/apikey.h"
#include "auth/jwks_source.h"
#include "auth/jwt.h"

#include <jansson.h>
#include "auth/keydir.h"
#include "auth/service.h"
#include "core/clock.h"
#include "core/runtime.h"
#include "core/worker.h"
#include "http/conn.h"
#include "proxy/router.h"
#include "stages.h"
#include "telemetry/metrics.h"

/* Verified-key cache: 2-way set associative, keyed by SHA-256 of the whole
 * key. A slot remembers failures too, so a wrong secret repeated in a loop
 * costs one Argon2 run per TTL, not one per request. */
#define CACHE_SETS  2048
#define CACHE_WAYS  2
#define MAX_TOUCHES 256

struct cache_slot {
    uint8_t sha[32];
    uint64_t at_ns; /* 0 = empty */
    bool ok;
    bool refreshing; /* a background re-verification is out */
};

/* Verified tokens: signature checks cost 18-94 us, so a token seen again
 * (most clients reuse one for its lifetime) is looked up by its SHA-256.
 * Direct-mapped; an entry is valid for one snapshot generation (the policy
 * may change on reload) and until the token's exp. */
#define TOKEN_SLOTS 256

struct token_slot {
    uint8_t sha[32];
    uint64_t generation;      /* snapshot generation; 0 = empty */
    uint64_t keys_generation; /* key set it was verified with: a key removed from the
                               * JWKS ends the trust in tokens it signed */
    int64_t exp_s;
    int64_t key_expires_at; /* a gateway-issued token's key: unix ms, 0 = never */
    char jti[GH_JWT_JTI_MAX + 1];
    uint8_t metrics_method; /* GH_MAUTH_JWT or GH_MAUTH_TOKEN, for cache hits */
    struct gh_principal principal;
};

struct gh_authn_worker {
    EVP_MD_CTX *md_ctx;
    EVP_MD *sha256;
    struct cache_slot cache[CACHE_SETS][CACHE_WAYS];
    struct token_slot tokens[TOKEN_SLOTS];
    struct gh_store_key_touch touches[MAX_TOUCHES];
    size_t ntouches;
    struct gh_verify_job *pending; /* jobs out at the auth service */
    uint64_t last_sync_load_ns;    /* admin thread: last direct directory load */
};

static const char www_auth[] = "WWW-Authenticate: Bearer realm=\"gatehouse\"\r\n";
static const char www_auth_invalid[] =
    "WWW-Authenticate: Bearer realm=\"gatehouse\", error=\"invalid_token\"\r\n";

struct gh_authn_worker *gh_authn_worker_new(void)
{
    struct gh_authn_worker *a = calloc(1, sizeof(*a));
    if (a == NULL) return NULL;
    /* Fetched once: the per-request hash then costs no lookups. */
    a->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    a->md_ctx = EVP_MD_CTX_new();
    if (a->sha256 == NULL || a->md_ctx == NULL) {
        gh_authn_worker_free(a);
        return NULL;
    }
    return a;
}

void gh_authn_worker_free(struct gh_authn_worker *a)
{
    if (a == NULL) return;
    EVP_MD_CTX_free(a->md_ctx);
    EVP_MD_free(a->sha256);
    OPENSSL_cleanse(a->cache, sizeof(a->cache));
    free(a);
}

static void sha256(struct gh_authn_worker *a, gh_str s, uint8_t out[32])
{
    unsigned int n = 32;
    EVP_DigestInit_ex(a->md_ctx, a->sha256, NULL);
    EVP_DigestUpdate(a->md_ctx, s.ptr, s.len);
    EVP_DigestFinal_ex(a->md_ctx, out, &n);
}

/* The slot for <sha>, whatever its age (the caller decides), or NULL. */
static struct cache_slot *cache_find(struct gh_authn_worker *a, const uint8_t sha[32])
{
    uint32_t set;
    memcpy(&set, sha, sizeof(set));
    set %= CACHE_SETS;
    for (int w = 0; w < CACHE_WAYS; w++) {
        struct cache_slot *s = &a->cache[set][w];
        if (s->at_ns && memcmp(s->sha, sha, 32) == 0) return s;
    }
    return NULL;
}

static void cache_put(struct gh_authn_worker *a, const uint8_t sha[32], bool ok, uint64_t now)
{
    uint32_t set;
    struct cache_slot *victim;

    memcpy(&set, sha, sizeof(set));
    set %= CACHE_SETS;
    victim = &a->cache[set][0];
    for (int w = 0; w < CACHE_WAYS; w++) {
        struct cache_slot *s = &a->cache[set][w];
        if (s->at_ns == 0 || memcmp(s->sha, sha, 32) == 0) {
            victim = s;
            break;
        }
        if (s->at_ns < victim->at_ns) victim = s;
    }
    memcpy(victim->sha, sha, 32);
    victim->at_ns = now;
    victim->ok = ok;
    victim->refreshing = false;
}

static struct gh_verify_job *pending_find(struct gh_authn_worker *a, const uint8_t sha[32])
{
    for (struct gh_verify_job *j = a->pending; j; j = j->pending_next)
        if (memcmp(j->sha, sha, 32) == 0) return j;
    return NULL;
}

static void pending_remove(struct gh_authn_worker *a, struct gh_verify_job *job)
{
    for (struct gh_verify_job **pp = &a->pending; *pp; pp = &(*pp)->pending_next)
        if (*pp == job) {
            *pp = job->pending_next;
            return;
        }
}

/* Sends an Argon2 job for <e>/<secret> to the auth service. Returns the job
 * (in the pending list) or NULL when the service is missing or full. */
static struct gh_verify_job *submit(struct gh_worker *w, const struct gh_keydir_entry *e,
                                    gh_str secret, const uint8_t sha[32], bool background)
{
    struct gh_authn_worker *a = w->authn;
    struct gh_verify_job *job;

    if (w->rt->auth == NULL || (job = calloc(1, sizeof(*job))) == NULL) return NULL;
    job->worker = w;
    job->background = background;
    memcpy(job->sha, sha, 32);
    snprintf(job->key_id, sizeof(job->key_id), "%s", e->id);
    memcpy(job->secret, secret.ptr, secret.len);
    snprintf(job->phc, sizeof(job->phc), "%s", e->secret_hash);
    if (!gh_auth_verify_submit(w->rt->auth, job)) {
        gh_apikey_wipe(job->secret, sizeof(job->secret));
        free(job);
        return NULL;
    }
    job->pending_next = a->pending;
    a->pending = job;
    return job;
}

static void touch(struct gh_authn_worker *a, const char *key_id)
{
    int64_t now = (int64_t)gh_wall_ms();
    for (size_t i = 0; i < a->ntouches; i++)
        if (strcmp(a->touches[i].key_id, key_id) == 0) {
            a->touches[i].last_used_at = now;
            return;
        }
    if (a->ntouches == MAX_TOUCHES) return; /* flushed every tick; one second is plenty */
    snprintf(a->touches[a->ntouches].key_id, sizeof(a->touches[0].key_id), "%s", key_id);
    a->touches[a->ntouches++].last_used_at = now;
}

void gh_authn_tick(struct gh_worker *w)
{
    struct gh_authn_worker *a = w->authn;
    if (a == NULL || a->ntouches == 0 || w->rt->auth == NULL) return;
    gh_auth_touch(w->rt->auth, a->touches, a->ntouches);
    a->ntouches = 0;
}

/* ---- credentials ---- */

static bool bearer(gh_str v, gh_str *out)
{
    /* RFC 9110 §11.1: the scheme is case-insensitive. */
    if (v.len < 7 || strncasecmp(v.ptr, "Bearer ", 7) != 0) return false;
    size_t i = 7;
    while (i < v.len && v.ptr[i] == ' ')
        i++;
    *out = gh_str_make(v.ptr + i, v.len - i);
    return out->len > 0;
}

/* Looks for a query parameter <name> and returns its raw value. */
static bool query_param(gh_str q, const char *name, gh_str *out)
{
    size_t nl = strlen(name), i = 0;
    while (i < q.len) {
        size_t e = i;
        while (e < q.len && q.ptr[e] != '&')
            e++;
        if (e - i > nl && memcmp(q.ptr + i, name, nl) == 0 && q.ptr[i + nl] == '=') {
            *out = gh_str_make(q.ptr + i + nl + 1, e - i - nl - 1);
            return true;
        }
        i = e + 1;
    }
    return false;
}

/* True when the query string carries something shaped like a gatehouse key. */
static bool query_has_key(gh_str q)
{
    for (size_t i = 0; i + GH_APIKEY_LEN <= q.len; i++) {
        gh_str id, secret;
        if (q.ptr[i] == 'g' && q.ptr[i + 1] == 'h' && q.ptr[i + 2] == '_' &&
            gh_apikey_parse(gh_str_make(q.ptr + i, GH_APIKEY_LEN), &id, &secret))
            return true;
    }
    return false;
}

int gh_authn_credential(const struct gh_req *r, gh_str *cred, const char **code)
{
    const struct gh_config_route *rc = r->route ? r->route->cfg : NULL;
    const char *hdr_name =
        rc && rc->api_key_header ? rc->api_key_header : r->snap->cfg->auth.api_key_header;
    const struct gh_http_header *h;

    *cred = GH_STR_NULL;
    if (rc && rc->query_key_param && query_param(r->head.query, rc->query_key_param, cred))
        return 0;
    if (query_has_key(r->head.query)) {
        *code = "key_in_query_not_allowed";
        return 401;
    }
    h = gh_http_find_header(r->head.headers, r->head.nheaders, "authorization");
    if (h && bearer(h->value, cred)) return 0;
    if (hdr_name) {
        h = gh_http_find_header(r->head.headers, r->head.nheaders, hdr_name);
        if (h && h->value.len) *cred = h->value;
    }
    return 0;
}

const struct gh_http_header *gh_authn_credential_header(const struct gh_req *r, gh_str cred)
{
    for (uint32_t i = 0; i < r->head.nheaders; i++) {
        const struct gh_http_header *h = &r->head.headers[i];
        if (cred.ptr >= h->value.ptr && cred.ptr < h->value.ptr + h->value.len) return h;
    }
    return NULL;
}

/* ---- the stage ---- */

static void deny(struct gh_req *r, int status, const char *code)
{
    const char *extra = NULL;
    gh_audit_auth_denied(r, status, code); /* before the answer: <r> may be reused after */
    if (status == 401)
        extra = strcmp(code, "missing_credentials") == 0 ? www_auth : www_auth_invalid;
    gh_conn_reply_error_ex(r->conn, status, code, false, extra);
}

/* Whether the key of <e> may pass now: active, not expired, its tenant
 * active. Returns 0 or a status, with its <code>. */
static int entry_passes(const struct gh_keydir_entry *e, const char **code)
{
    if (!e->key_active) {
        *code = "key_revoked";
        return 401;
    }
    if (e->expires_at && (int64_t)gh_wall_ms() >= e->expires_at) {
        *code = "key_expired";
        return 401;
    }
    if (!e->tenant_active) {
        *code = "tenant_suspended";
        return 403;
    }
    return 0;
}

/* Copies what the request needs from <e> after checking that it may pass
 * now (entry_passes). Returns 0 or a status. */
static int principal_from_entry(const struct gh_keydir_entry *e, struct gh_principal *p,
                                const char **code)
{
    int status = entry_passes(e, code);

    if (status != 0) return status;
    /* Per request: copies of known lengths (all fit by construction). */
    p->kind = GH_PRINCIPAL_API_KEY;
    memcpy(p->tenant, e->tenant_id, e->tenant_len + 1u);
    memcpy(p->subject, "key:", 4);
    memcpy(p->subject + 4, e->id, e->id_len + 1u);
    memcpy(p->key_id, e->id, e->id_len + 1u);
    memcpy(p->roles, e->roles, e->roles_len + 1u);
    memcpy(p->scopes, e->scopes, e->scopes_len + 1u);
    return 0;
}

/* True when the token's header names a kid of the gateway's own keys: such
 * a token is checked against the gateway's policy, any other against
 * auth.jwt. Only the header is decoded here (on a cache miss). */
static bool own_kid(const struct gh_keydir *d, gh_str token)
{
    const char *dot = memchr(token.ptr, '.', token.len);
    unsigned char hdr[1024];
    size_t n = 0;
    json_t *doc;
    bool own = false;

    if (dot == NULL ||
        gh_b64url_decode(token.ptr, (size_t)(dot - token.ptr), hdr, sizeof(hdr) - 1, &n) != GH_OK)
        return false;
    doc = json_loadb((const char *)hdr, n, 0, NULL);
    const char *kid = json_string_value(json_object_get(doc, "kid"));
    if (kid) own = gh_jwks_find(d->own_keys, kid, strlen(kid)) != NULL;
    json_decref(doc);
    return own;
}

/* Whose token it is, beyond its signature and claims. A gateway-issued
 * token (<own>) is its key's ("sub": "key:<id>"): it passes only while the
 * key does (active, not expired, its tenant not suspended), so revoking a
 * key or suspending a tenant also ends the tokens minted with it, not
 * only at their `exp`. Any other token names its tenant by a claim: a
 * store tenant's passes only while the tenant is active, and the operators'
 * pseudo-tenant "system" is no IdP's to claim. Returns 0, or the status to
 * deny with and its <code>; *key_expires_at is the key's expiry (ms). */
static int token_holder(const struct gh_keydir *d, bool own, const struct gh_jwt_claims *c,
                        int64_t *key_expires_at, const char **code)
{
    const struct gh_keydir_tenant *t;

    *key_expires_at = 0;
    if (own) {
        const struct gh_keydir_entry *e = NULL;

        if (strncmp(c->subject, "key:", 4) == 0) e = gh_keydir_find(d, gh_str_cstr(c->subject + 4));
        if (e == NULL || strcmp(e->tenant_id, c->tenant) != 0) {
            *code = "key_revoked"; /* no such key of that tenant: gone */
            return 401;
        }
        *key_expires_at = e->expires_at;
        return entry_passes(e, code);
    }
    if (strcmp(c->tenant, GH_STORE_SYSTEM_TENANT) == 0) {
        *code = "claim_invalid";
        return 401;
    }
    t = gh_keydir_tenant(d, c->tenant);
    if (t != NULL && !t->active) {
        *code = "tenant_suspended";
        return 403;
    }
    return 0;
}

/* Verifies a JWT against the snapshot's policy and keys. Returns 1 (the
 * principal is set) or 0 (answered). */
static int jwt_step(struct gh_req *r, gh_str token)
{
    const struct gh_snapshot *snap = r->snap;
    struct gh_worker *w = r->conn->worker;
    struct gh_authn_worker *a = w->authn;
    struct gh_jwt_claims claims;
    struct gh_jwks *keys;
    struct token_slot *slot;
    enum gh_jwt_result res;
    uint8_t sha[32];
    int64_t now_ms = (int64_t)gh_wall_ms(), now_s = now_ms / 1000, key_expires_at;
    uint32_t idx;
    const char *code;
    int holder;

    sha256(a, token, sha);
    memcpy(&idx, sha, sizeof(idx));
    slot = &a->tokens[idx % TOKEN_SLOTS];
    /* Trust in a cached token ends when either key set changes. */
    uint64_t kgen =
        (snap->jwks ? gh_jwks_source_generation(snap->jwks) : 0) * 1000003u ^ w->keydir->version;
    if (slot->generation == snap->generation && slot->keys_generation == kgen &&
        memcmp(slot->sha, sha, 32) == 0 &&
        (slot->exp_s == 0 ||
         now_s < slot->exp_s + (int64_t)(snap->cfg->auth.jwt.leeway_ms / 1000))) {
        if (slot->jti[0] && gh_keydir_jti_revoked(w->keydir, gh_str_cstr(slot->jti))) {
            deny(r, 401, "token_revoked");
            return 0;
        }
        /* A revocation or a suspension moves the directory's version, which
         * empties the slot; an expiry moves nothing, so it is checked here. */
        if (slot->key_expires_at && now_ms >= slot->key_expires_at) {
            deny(r, 401, "key_expired");
            return 0;
        }
        r->principal = slot->principal;
        r->m_auth_method = slot->metrics_method;
        return 1;
    }
    /* The generation read before acquiring: a set published in between
     * only makes the cache entry expire early. */
    /* The gateway's own tokens first (their kid is in the key directory);
     * an unknown kid there means the token is someone else's. */
    if (own_kid(w->keydir, token) || snap->jwt == NULL) {
        r->m_auth_method = GH_MAUTH_TOKEN;
        res = gh_jwt_verify(snap->own_jwt, w->keydir->own_keys, token, now_s, &claims);
    } else {
        r->m_auth_method = GH_MAUTH_JWT;
        keys = gh_jwks_source_acquire(snap->jwks);
        if (keys == NULL) {
            gh_conn_reply_error(r->conn, 503, "jwks_unavailable", false);
            return 0;
        }
        res = gh_jwt_verify(snap->jwt, keys, token, now_s, &claims);
        gh_jwks_release(keys);
        if (res == GH_JWT_UNKNOWN_KID) gh_jwks_source_kick(snap->jwks); /* a rotation? */
    }
    if (res != GH_JWT_OK) {
        deny(r, 401, gh_jwt_result_str(res));
        return 0;
    }
    if (claims.jti[0] && gh_keydir_jti_revoked(w->keydir, gh_str_cstr(claims.jti))) {
        deny(r, 401, "token_revoked");
        return 0;
    }
    holder = token_holder(w->keydir, r->m_auth_method == GH_MAUTH_TOKEN, &claims, &key_expires_at,
                          &code);
    if (holder != 0) {
        deny(r, holder, code);
        return 0;
    }
    memset(&r->principal, 0, sizeof(r->principal));
    r->principal.kind = GH_PRINCIPAL_JWT;
    snprintf(r->principal.tenant, sizeof(r->principal.tenant), "%s", claims.tenant);
    snprintf(r->principal.subject, sizeof(r->principal.subject), "%s", claims.subject);
    snprintf(r->principal.scopes, sizeof(r->principal.scopes), "%s", claims.scopes);
    for (size_t i = 0, len = 0; i < claims.nroles; i++) {
        int n = snprintf(r->principal.roles + len, sizeof(r->principal.roles) - len, "%s%s",
                         i ? " " : "", claims.roles[i]);
        if (n < 0 || (size_t)n >= sizeof(r->principal.roles) - len) break;
        len += (size_t)n;
    }
    memcpy(slot->sha, sha, 32);
    slot->generation = snap->generation;
    slot->keys_generation = kgen;
    slot->exp_s = claims.exp;
    slot->key_expires_at = key_expires_at;
    slot->metrics_method = r->m_auth_method;
    snprintf(slot->jti, sizeof(slot->jti), "%s", claims.jti);
    slot->principal = r->principal;
    return 1;
}

/* Route policy: every listed scope, and one of the listed roles. */
static int authorize(const struct gh_req *r, const char **code)
{
    const struct gh_config_route *rc = r->route->cfg;
    for (size_t i = 0; i < rc->nscopes; i++)
        if (!gh_principal_list_has(r->principal.scopes, gh_str_cstr(rc->scopes[i]))) {
            *code = "insufficient_scope";
            return 403;
        }
    if (rc->nroles) {
        for (size_t i = 0; i < rc->nroles; i++)
            if (gh_principal_list_has(r->principal.roles, gh_str_cstr(rc->roles[i]))) return 0;
        *code = "insufficient_role";
        return 403;
    }
    return 0;
}

static int api_key_step(struct gh_req *r, gh_str key)
{
    struct gh_worker *w = r->conn->worker;
    struct gh_authn_worker *a = w->authn;
    const struct gh_keydir_entry *e;
    gh_str id, secret;
    uint8_t sha[32];
    uint64_t now = gh_now_ns(), ttl = (uint64_t)r->snap->cfg->auth.cache_ttl_ms * 1000000ull;
    const char *code = "invalid_credentials";
    int st;

    if (!gh_apikey_parse(key, &id, &secret) || (e = gh_keydir_find(w->keydir, id)) == NULL) {
        deny(r, 401, "invalid_credentials");
        return 0;
    }
    sha256(a, key, sha);
    if (r->verify_result != 0) {
        cache_put(a, sha, r->verify_result > 0, now);
        if (r->verify_result < 0) {
            deny(r, 401, "invalid_credentials");
            return 0;
        }
    } else {
        struct cache_slot *s = cache_find(a, sha);
        uint64_t age = s ? now - s->at_ns : 0;
        if (s && s->ok && age < 2 * ttl) {
            /* Past its TTL, a good verification keeps serving while one
             * background job checks the key again (refresh-ahead): no
             * request waits, and there is no stampede when many
             * connections share a key. Revocation, expiry and suspension
             * are checked below from the directory on every request. */
            if (age >= ttl && !s->refreshing && pending_find(a, sha) == NULL &&
                submit(w, e, secret, sha, true) != NULL)
                s->refreshing = true;
        } else if (s && !s->ok && age < ttl) {
            deny(r, 401, "invalid_credentials");
            return 0;
        } else {
            /* Single flight: requests with the same key wait on one job. */
            struct gh_verify_job *job = pending_find(a, sha);
            if (job == NULL) job = submit(w, e, secret, sha, false);
            if (job == NULL) {
                gh_conn_reply_error(r->conn, 503, w->rt->auth ? "auth_busy" : "auth_unavailable",
                                    false);
                return 0;
            }
            r->next_waiter = job->req;
            job->req = r;
            r->verify_job = job;
            return 2;
        }
    }
    st = principal_from_entry(e, &r->principal, &code);
    if (st) {
        deny(r, st, code);
        return 0;
    }
    touch(a, e->id);
    return 1;
}

int gh_authn_api_key(struct gh_req *r)
{
    const char *code = NULL;
    gh_str cred;
    int st = gh_authn_credential(r, &cred, &code);

    if (st) {
        deny(r, st, code);
        return 0;
    }
    if (cred.len == 0) {
        deny(r, 401, "missing_credentials");
        return 0;
    }
    return api_key_step(r, cred);
}

static int authn_stage(struct gh_req *r)
{
    const struct gh_config_route *rc = r->route->cfg;
    const char *code = NULL;
    gh_str cred;
    int st, rc2;

    if (rc->auth_mode == GH_ROUTE_AUTH_NONE) return 1;
    st = gh_authn_credential(r, &cred, &code);
    if (st) {
        deny(r, st, code);
        return 0;
    }
    if (cred.len == 0) {
        deny(r, 401, "missing_credentials");
        return 0;
    }
    if (rc->auth_mode == GH_ROUTE_AUTH_API_KEY ||
        (rc->auth_mode == GH_ROUTE_AUTH_ANY && cred.len > 3 && memcmp(cred.ptr, "gh_", 3) == 0)) {
        r->m_auth_method = GH_MAUTH_API_KEY;
        rc2 = api_key_step(r, cred);
        if (rc2 != 1) return rc2;
        /* A gateway key is the gateway's credential: the upstream gets the
         * signed identity headers instead, never the key. */
        r->cred_header = gh_authn_credential_header(r, cred);
    } else if (!jwt_step(r, cred)) {
        return 0;
    }
    st = authorize(r, &code);
    if (st) {
        gh_conn_reply_error(r->conn, st, code, false);
        return 0;
    }
    return 1;
}

int gh_authn_stage(struct gh_req *r)
{
    int rc = authn_stage(r);

    /* Counted once per decision: a suspended check is counted when it resumes. */
    if (r->route->cfg->auth_mode != GH_ROUTE_AUTH_NONE) gh_metrics_auth(r->conn->worker, r, rc);
    return rc;
}

void gh_authn_cancel(struct gh_req *r)
{
    struct gh_verify_job *job = r->verify_job;
    if (job == NULL) return;
    /* Leave the job's waiters; the job itself still fills the cache. */
    for (struct gh_req **pp = &job->req; *pp; pp = &(*pp)->next_waiter)
        if (*pp == r) {
            *pp = r->next_waiter;
            break;
        }
    r->verify_job = NULL;
    r->next_waiter = NULL;
}

void gh_authn_job_done(struct gh_worker *w, struct gh_verify_job *job)
{
    struct gh_req *r = job->req;
    bool ok = job->ok;

    pending_remove(w->authn, job);
    /* The cache learns the answer even if every request is gone. */
    cache_put(w->authn, job->sha, ok, gh_now_ns());
    free(job);
    /* Detach every waiter first: resuming one may end others. */
    for (struct gh_req *q = r; q; q = q->next_waiter)
        q->verify_job = NULL;
    while (r) {
        struct gh_req *next = r->next_waiter;
        r->next_waiter = NULL;
        r->verify_result = ok ? 1 : -1;
        gh_stages_resume(r); /* the stage runs again and uses verify_result */
        r = next;
    }
}

int gh_authn_api_key_sync(struct gh_worker *w, gh_str key, struct gh_principal *out,
                          const char **code)
{
    struct gh_authn_worker *a = w->authn;
    const struct gh_keydir_entry *e;
    gh_str id, secret;
    uint8_t sha[32];
    uint64_t now = gh_now_ns();
    uint64_t ttl = (uint64_t)w->cur->snap->cfg->auth.cache_ttl_ms * 1000000ull;
    struct cache_slot *s;
    bool ok;

    memset(out, 0, sizeof(*out));
    *code = "invalid_credentials";
    if (!gh_apikey_parse(key, &id, &secret)) return 401;
    e = gh_keydir_find(w->keydir, id);
    if (e == NULL && w->rt->store && now - a->last_sync_load_ns > 1000000000ull) {
        /* The admin thread may block: a key created a moment ago (by the
         * CLI, say) is found by reading the store now rather than after the
         * next refresh. At most once a second, so unknown ids stay cheap. */
        struct gh_err err = {0};
        /* With the secrets: the directory it replaces holds the token
         * signer, whose private key is sealed. */
        struct gh_keydir *d = gh_keydir_load_ex(w->rt->store, w->rt->secrets, &err);
        a->last_sync_load_ns = now;
        if (d) {
            gh_keydir_unref(w->keydir);
            w->keydir = d;
            e = gh_keydir_find(w->keydir, id);
        }
    }
    if (e == NULL) return 401;
    sha256(a, key, sha);
    s = cache_find(a, sha);
    if (s && now - s->at_ns < ttl) {
        ok = s->ok;
    } else {
        ok = gh_apikey_verify(e->secret_hash, secret);
        cache_put(a, sha, ok, now);
    }
    if (!ok) return 401;
    int st = principal_from_entry(e, out, code);
    if (st == 0) touch(a, e->id);
    return st;
}
