/* Limits policy: the config's plans and route rules, compiled once per
 * snapshot into what the limits stage reads per request, and a tenant's
 * overrides (admin API, stored as JSON) compiled once per key-directory
 * build.
 *
 * A rule's GCRA parameters come in two sets: the full limit, and this node's
 * share of it (1/limits.nodes) for deciding locally while Redis is away.
 * Nothing here allocates after build; everything is immutable after build
 * and freed with its owner (snapshot or key directory). */
#ifndef GH_LIMITS_POLICY_H
#define GH_LIMITS_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"
#include "core/err.h"
#include "limits/gcra.h"

struct gh_limit_rule {
    const char *name; /* points into the config */
    uint16_t name_len;
    uint8_t by[GH_LIMIT_MAX_PER];
    uint8_t nby;
    const char *header; /* GH_LIMIT_BY_HEADER's field name */
    uint16_t header_len;
    enum gh_redis_fallback fallback; /* the rule's own; INHERIT: the route's, then global */
    struct gh_gcra_params full;      /* the limit */
    struct gh_gcra_params share;     /* this node's share, for the Redis fallback */
    uint32_t window_s;               /* RateLimit-Policy "w": time to refill a full burst */
    uint16_t metrics_slot;           /* set by gh_metrics_bind (src/telemetry/metrics.h) */
};

struct gh_limit_plan {
    const char *name;
    struct gh_limit_rule *rules;
    uint32_t nrules;
    uint32_t concurrency; /* per tenant, 0 = unlimited */
    struct gh_config_quotas quotas;
};

struct gh_limit_route {
    struct gh_limit_rule *rules;
    uint32_t nrules;
    uint32_t max, per_tenant;        /* bulkhead; 0 = unlimited */
    uint32_t queue_timeout_ms;       /* resolved against limits.queue_timeout */
    enum gh_redis_fallback fallback; /* route's own, or the global one */
    bool any;                        /* some limit applies on this route */
};

struct gh_limits_policy {
    struct gh_limit_plan *plans;
    uint32_t nplans;
    const struct gh_limit_plan *default_plan; /* NULL: no limits.default_plan */
    struct gh_limit_route *routes;            /* per cfg->routes[i] */
    uint32_t nroutes;
    bool redis;          /* limits.backend == redis */
    bool any_plan_limit; /* some plan limits something */
};

/* Compiles <cfg>'s limits. NULL with <err> on allocation failure only (the
 * config loader validated everything). */
struct gh_limits_policy *gh_limits_policy_new(const struct gh_config *cfg, struct gh_err *err);
void gh_limits_policy_free(struct gh_limits_policy *p);

const struct gh_limit_plan *gh_limits_plan_find(const struct gh_limits_policy *p, const char *name);

/* Builds GCRA parameters for <count> per <period_ms> with <burst>, and the
 * 1/<nodes> share. GH_ERROR when the rate is too fine (sub-nanosecond). */
int gh_limits_rule_params(struct gh_limit_rule *rl, uint64_t count, uint64_t period_ms,
                          uint32_t burst, uint32_t nodes);

/* A rule as it applies to one request: the rule (or a tenant's override of
 * it, copied into <over>) and the request's keys for it. */
#define GH_LIMITS_MAX_RULES 8
struct gh_limit_applied {
    const struct gh_limit_rule *rule;
    struct gh_limit_rule over;
    uint64_t local_key;
    uint8_t redis_key_len;
    char redis_key[80];
};

/* ---- Tenant overrides --------------------------------------------------- */

#define GH_LIMITS_MAX_RULE_OVERRIDES 16

/* A plan rule's rate and burst, replaced for one tenant. */
struct gh_limit_override {
    char rule[96];
    struct gh_config_rate rate;
    uint32_t burst;
};

/* What the admin API stored for one tenant: {"concurrency": N, "quotas":
 * {"requests_per_day": N, ...}, "rate_limits": {"<rule>": {"rate": "50/s",
 * "burst": 100}}}. Every key optional; a quota or concurrency of 0 lifts
 * that limit for the tenant. */
struct gh_tenant_overrides {
    bool has_concurrency;
    uint32_t concurrency;
    uint8_t quota_set[GH_QUOTA_NMETRICS][GH_QUOTA_NPERIODS];
    struct gh_config_quotas quotas;
    struct gh_limit_override rules[GH_LIMITS_MAX_RULE_OVERRIDES];
    uint32_t nrules;
};

/* Parses and validates overrides JSON (<json> may be "" = none). On error
 * returns GH_ERROR with a message fit for a 400 body in <why>. */
int gh_tenant_overrides_parse(const char *json, struct gh_tenant_overrides *out, char *why,
                              size_t whylen);

#endif
