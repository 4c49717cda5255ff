/* Snapshot construction and release. */
#include "core/snapshot.h"

#include <stdio.h>
#include <stdlib.h>

#include "http/tls.h"
#include "proxy/router.h"

static void snapshot_free(struct gh_snapshot *s)
{
    if (s->cfg) {
        for (size_t i = 0; s->listen_tls && i < s->cfg->nlistens; i++)
            gh_tls_server_free(s->listen_tls[i]);
        for (size_t i = 0; s->upstream_tls && i < s->cfg->nupstreams; i++)
            SSL_CTX_free(s->upstream_tls[i]);
    }
    free(s->listen_tls);
    free(s->upstream_tls);
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
