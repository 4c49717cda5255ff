/* An immutable snapshot of everything a worker reads per request: the
 * config, the router, TLS contexts. Built on the main thread (start and
 * SIGHUP), published to workers, freed when the last reference goes.
 *
 * References are counted atomically, but workers take and drop them only
 * when they adopt or retire a snapshot, never per request: each worker counts
 * its own in-flight requests per snapshot without atomics (gh_wsnap). */
#ifndef GH_CORE_SNAPSHOT_H
#define GH_CORE_SNAPSHOT_H

#include <openssl/ssl.h>
#include <stdatomic.h>
#include <stdint.h>

#include "config/config.h"
#include "core/err.h"
#include "http/parser.h"

struct gh_router;
struct gh_tls_server;
struct gh_jwt_verifier;
struct gh_jwks_source;
struct gh_limits_policy;

struct gh_snapshot {
    _Atomic int refs;
    uint64_t generation;               /* 1 for the first, +1 per successful reload */
    struct gh_config *cfg;             /* owned */
    struct gh_router *router;          /* owned */
    struct gh_tls_server **listen_tls; /* per cfg->listens[i]; NULL for plain */
    SSL_CTX **upstream_tls;            /* per cfg->upstreams[i]; NULL for plain */
    struct gh_http_limits http_limits;
    struct gh_jwt_verifier *jwt;     /* auth.jwt policy; NULL without auth.jwt */
    struct gh_jwks_source *jwks;     /* its keys, refreshed by the source's thread */
    struct gh_jwt_verifier *own_jwt; /* the gateway's own tokens (auth.tokens); never NULL */
    struct gh_limits_policy *limits; /* plans and route rules, compiled */
    char config_hash[17];            /* first 8 bytes of the config SHA-256, hex */
    /* Metrics slots per cfg->routes[i] and cfg->upstreams[i], set by
     * gh_metrics_bind (src/telemetry/metrics.h) before publishing. */
    uint16_t *metrics_route_slot;
    uint16_t *metrics_upstream_slot;
};

/* Builds a snapshot from <cfg>, taking ownership of it (also on failure).
 * Returns NULL with <err> filled (e.g. a certificate that does not load). */
struct gh_snapshot *gh_snapshot_new(struct gh_config *cfg, uint64_t generation, struct gh_err *err);

static inline void gh_snapshot_ref(struct gh_snapshot *s, int n)
{
    atomic_fetch_add_explicit(&s->refs, n, memory_order_relaxed);
}
/* Drops one reference; frees the snapshot when it was the last. */
void gh_snapshot_unref(struct gh_snapshot *s);

/* A worker's view of one snapshot: its local count of requests using it. */
struct gh_wsnap {
    struct gh_snapshot *snap;
    uint32_t inflight;
    struct gh_wsnap *next; /* retired list */
};

#endif
