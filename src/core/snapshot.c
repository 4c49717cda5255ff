/* Snapshot construction and release. */
#include "core/snapshot.h"
#include "limits/policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/jwks_source.h"
#include "auth/jwt.h"
#include "core/log.h"
#include "http/tls.h"
#include "proxy/router.h"

static void jwks_report(void *arg, bool ok, const char *msg)
{
    if (ok)
        gh_log_info("jwt: key set refreshed from %s", (const char *)arg);
    else
        gh_log_warn("jwt: refreshing keys from %s failed: %s", (const char *)arg, msg);
}

/* The JWT verifier and key source for auth.jwt. A URL source fetches on
 * its own thread; the first fetch gets two seconds here so that the first
 * requests find keys, and tokens are refused with 503 until it arrives. */
static int setup_jwt(struct gh_snapshot *s, struct gh_err *err)
{
    const struct gh_config_jwt *j = &s->cfg->auth.jwt;
    struct gh_jwt_policy pol;
    struct gh_jwks_source_opts opts;
    const char *where = j->jwks_url ? j->jwks_url : j->jwks_file;

    memset(&pol, 0, sizeof(pol));
    for (size_t i = 0; i < j->nalgorithms; i++)
        pol.allowed_algs |= GH_JWA_BIT(gh_jwa_parse(j->algorithms[i], strlen(j->algorithms[i])));
    pol.max_token_bytes = j->max_token_bytes;
    pol.leeway_s = j->leeway_ms / 1000;
    pol.issuer = j->issuer;
    for (size_t i = 0; i < j->naudiences && i < GH_JWT_MAX_AUDIENCES; i++)
        pol.audiences[pol.naudiences++] = j->audiences[i];
    pol.tenant_claim = j->tenant_claim;
    pol.subject_claim = j->subject_claim;
    pol.scope_claim = j->scope_claim;
    pol.roles_claim = j->roles_claim;
    s->jwt = gh_jwt_verifier_new(&pol, err);
    if (s->jwt == NULL) return GH_ERROR;
    memset(&opts, 0, sizeof(opts));
    opts.location = where;
    opts.refresh_ms = j->jwks_url ? j->refresh_interval_ms : 0;
    opts.report = jwks_report;
    opts.report_arg = (void *)where;
    s->jwks = gh_jwks_source_new(&opts, err);
    if (s->jwks == NULL) return GH_ERROR;
    if (gh_jwks_source_wait(s->jwks, 2000) != GH_OK)
        gh_log_warn("jwt: no keys from %s yet; JWTs get 503 until they arrive", where);
    return GH_OK;
}

static void snapshot_free(struct gh_snapshot *s)
{
    if (s->cfg) {
        for (size_t i = 0; s->listen_tls && i < s->cfg->nlistens; i++)
            gh_tls_server_free(s->listen_tls[i]);
        for (size_t i = 0; s->upstream_tls && i < s->cfg->nupstreams; i++)
            SSL_CTX_free(s->upstream_tls[i]);
    }
    gh_jwks_source_free(s->jwks);
    gh_jwt_verifier_free(s->jwt);
    gh_jwt_verifier_free(s->own_jwt);
    gh_limits_policy_free(s->limits);
    free(s->listen_tls);
    free(s->upstream_tls);
    free(s->metrics_route_slot);
    free(s->metrics_upstream_slot);
    gh_router_free(s->router);
    gh_config_free(s->cfg);
    free(s);
}

struct gh_snapshot *gh_snapshot_new(struct gh_config *cfg, uint64_t generation, struct gh_err *err)
{
    struct gh_snapshot *s = calloc(1, sizeof(*s));

    if (s == NULL) {
        gh_config_free(cfg);
        gh_err_set(err, NULL, 0, 0, "out of memory");
        return NULL;
    }
    atomic_init(&s->refs, 1);
    s->generation = generation;
    s->cfg = cfg;
    s->listen_tls = calloc(cfg->nlistens ? cfg->nlistens : 1, sizeof(*s->listen_tls));
    s->upstream_tls = calloc(cfg->nupstreams ? cfg->nupstreams : 1, sizeof(*s->upstream_tls));
    s->router = gh_router_new(cfg);
    if (s->listen_tls == NULL || s->upstream_tls == NULL || s->router == NULL) {
        gh_err_set(err, NULL, 0, 0, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < cfg->nlistens; i++) {
        if (!cfg->listens[i].tls) continue;
        s->listen_tls[i] = gh_tls_server_new(cfg, &cfg->listens[i], err);
        if (s->listen_tls[i] == NULL) goto fail;
    }
    for (size_t i = 0; i < cfg->nupstreams; i++) {
        if (!cfg->upstreams[i].tls.enabled) continue;
        s->upstream_tls[i] = gh_tls_client_ctx_new(cfg, &cfg->upstreams[i], err);
        if (s->upstream_tls[i] == NULL) goto fail;
    }
    {
        /* The gateway's own tokens: as /oauth/token writes them. */
        struct gh_jwt_policy pol;
        memset(&pol, 0, sizeof(pol));
        pol.allowed_algs = GH_JWA_BIT(GH_JWA_ES256) | GH_JWA_BIT(GH_JWA_EDDSA);
        pol.leeway_s = cfg->auth.jwt.enabled ? cfg->auth.jwt.leeway_ms / 1000 : 60;
        pol.issuer = cfg->auth.tokens.issuer;
        pol.tenant_claim = "tenant";
        pol.subject_claim = "sub";
        pol.scope_claim = "scope";
        pol.roles_claim = "roles";
        s->own_jwt = gh_jwt_verifier_new(&pol, err);
        if (s->own_jwt == NULL) goto fail;
    }
    if (cfg->auth.jwt.enabled && setup_jwt(s, err) != GH_OK) {
        if (err && err->line == 0) {
            err->line = cfg->auth.jwt.pos.line;
            err->col = cfg->auth.jwt.pos.col;
            snprintf(err->file, sizeof(err->file), "%s", cfg->file);
        }
        goto fail;
    }
    s->limits = gh_limits_policy_new(cfg, err);
    if (s->limits == NULL) goto fail;
    s->http_limits.max_request_line = cfg->limits.max_request_line;
    s->http_limits.max_header_bytes = cfg->limits.max_header_bytes;
    s->http_limits.max_headers = cfg->limits.max_headers;
    for (int i = 0; i < 8; i++)
        snprintf(s->config_hash + 2 * i, 3, "%02x", cfg->sha256[i]);
    return s;
fail:
    snapshot_free(s);
    return NULL;
}

void gh_snapshot_unref(struct gh_snapshot *s)
{
    if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1) snapshot_free(s);
}
