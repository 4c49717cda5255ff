/* Compiling plans, route rules and tenant overrides (see policy.h). */
#include "limits/policy.h"
#include "core/str.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NS_PER_MS 1000000ull

int gh_limits_rule_params(struct gh_limit_rule *rl, uint64_t count, uint64_t period_ms,
                          uint32_t burst, uint32_t nodes)
{
    uint64_t period_ns, refill_ns;

    if (period_ms > UINT64_MAX / NS_PER_MS) return GH_ERROR;
    period_ns = period_ms * NS_PER_MS;
    if (gh_gcra_params_init(&rl->full, count, period_ns, burst) != GH_OK) return GH_ERROR;
    /* This node's share while Redis is away: 1/nodes of the rate, as the
     * count over nodes times the period (the nodes together then pass the
     * limit, even when it is below one request per node and period: 1/s on
     * three nodes is one request every 3 s on each), and 1/nodes of the
     * burst, never below one request. */
    if (nodes < 1) nodes = 1;
    if (period_ns > UINT64_MAX / nodes) return GH_ERROR;
    if (gh_gcra_params_init(&rl->share, count, period_ns * nodes,
                            burst / nodes ? burst / nodes : 1) != GH_OK)
        return GH_ERROR;
    refill_ns = rl->full.tau_ns;
    rl->window_s = (uint32_t)((refill_ns + 999999999ull) / 1000000000ull);
    if (rl->window_s == 0) rl->window_s = 1;
    return GH_OK;
}

static int compile_rule(struct gh_limit_rule *out, const struct gh_config_rate_limit *c,
                        uint32_t nodes)
{
    out->name = c->name;
    out->name_len = (uint16_t)strlen(c->name);
    out->nby = c->nper ? (uint8_t)c->nper : 1;
    memcpy(out->by, c->by, sizeof(out->by));
    out->header = c->header;
    out->header_len = c->header ? (uint16_t)strlen(c->header) : 0;
    out->fallback = c->fallback;
    return gh_limits_rule_params(out, c->rate.count, c->rate.period_ms, c->burst, nodes);
}

static bool quotas_any(const struct gh_config_quotas *q)
{
    for (int m = 0; m < GH_QUOTA_NMETRICS; m++)
        for (int p = 0; p < GH_QUOTA_NPERIODS; p++)
            if (q->limit[m][p]) return true;
    return false;
}

struct gh_limits_policy *gh_limits_policy_new(const struct gh_config *cfg, struct gh_err *err)
{
    struct gh_limits_policy *p = calloc(1, sizeof(*p));
    uint32_t nodes = cfg->limits.nodes;

    if (p == NULL) goto nomem;
    p->redis = cfg->limits.redis_backend;
    p->nplans = (uint32_t)cfg->nplans;
    p->nroutes = (uint32_t)cfg->nroutes;
    if (p->nplans && (p->plans = calloc(p->nplans, sizeof(*p->plans))) == NULL) goto nomem;
    if (p->nroutes && (p->routes = calloc(p->nroutes, sizeof(*p->routes))) == NULL) goto nomem;

    for (uint32_t i = 0; i < p->nplans; i++) {
        const struct gh_config_plan *cp = &cfg->plans[i];
        struct gh_limit_plan *lp = &p->plans[i];

        lp->name = cp->name;
        lp->concurrency = cp->concurrency;
        lp->quotas = cp->quotas;
        lp->nrules = (uint32_t)cp->nrate_limits;
        if (lp->nrules && (lp->rules = calloc(lp->nrules, sizeof(*lp->rules))) == NULL) goto nomem;
        for (uint32_t k = 0; k < lp->nrules; k++)
            if (compile_rule(&lp->rules[k], &cp->rate_limits[k], nodes) != GH_OK) goto badrate;
        if (lp->nrules || lp->concurrency || quotas_any(&lp->quotas)) p->any_plan_limit = true;
    }
    p->default_plan = gh_limits_plan_find(p, cfg->limits.default_plan);

    for (uint32_t i = 0; i < p->nroutes; i++) {
        const struct gh_config_route *cr = &cfg->routes[i];
        struct gh_limit_route *lr = &p->routes[i];
        uint32_t n = 0;

        lr->nrules = (uint32_t)cr->nrate_limits + (cr->rate_limit.rate.count ? 1 : 0);
        if (lr->nrules && (lr->rules = calloc(lr->nrules, sizeof(*lr->rules))) == NULL) goto nomem;
        if (cr->rate_limit.rate.count &&
            compile_rule(&lr->rules[n++], &cr->rate_limit, nodes) != GH_OK)
            goto badrate;
        for (size_t k = 0; k < cr->nrate_limits; k++)
            if (compile_rule(&lr->rules[n++], &cr->rate_limits[k], nodes) != GH_OK) goto badrate;
        lr->max = cr->concurrency.max;
        lr->per_tenant = cr->concurrency.per_tenant;
        lr->queue_timeout_ms = cr->concurrency.queue_timeout_ms == UINT32_MAX
                                   ? cfg->limits.queue_timeout_ms
                                   : cr->concurrency.queue_timeout_ms;
        lr->fallback = cr->fallback != GH_FALLBACK_INHERIT ? cr->fallback : cfg->limits.fallback;
        /* Plans apply only where there is a tenant, i.e. on authenticated routes. */
        lr->any = lr->nrules || lr->max || lr->per_tenant ||
                  (p->any_plan_limit && cr->auth_mode != GH_ROUTE_AUTH_NONE);
    }
    return p;
badrate:
    gh_err_set(err, cfg->file, 0, 0, "limits: a rate is finer than one request per nanosecond");
    gh_limits_policy_free(p);
    return NULL;
nomem:
    gh_err_set(err, cfg->file, 0, 0, "limits: out of memory");
    gh_limits_policy_free(p);
    return NULL;
}

void gh_limits_policy_free(struct gh_limits_policy *p)
{
    if (p == NULL) return;
    for (uint32_t i = 0; p->plans && i < p->nplans; i++)
        free(p->plans[i].rules);
    for (uint32_t i = 0; p->routes && i < p->nroutes; i++)
        free(p->routes[i].rules);
    free(p->plans);
    free(p->routes);
    free(p);
}

const struct gh_limit_plan *gh_limits_plan_find(const struct gh_limits_policy *p, const char *name)
{
    if (name == NULL) return NULL;
    for (uint32_t i = 0; i < p->nplans; i++)
        if (strcmp(p->plans[i].name, name) == 0) return &p->plans[i];
    return NULL;
}

/* ---- Tenant overrides --------------------------------------------------- */

static const char *const quota_names[GH_QUOTA_NMETRICS][GH_QUOTA_NPERIODS] = {
    {"requests_per_day", "requests_per_month"},
    {"request_bytes_per_day", "request_bytes_per_month"},
    {"response_bytes_per_day", "response_bytes_per_month"},
};

__attribute__((format(printf, 3, 4))) static int why_set(char *why, size_t whylen, const char *fmt,
                                                         ...)
{
    va_list ap;
    size_t n;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
    /* A cut may have split a UTF-8 character: drop its first bytes too. */
    n = strlen(why);
    if (n + 1 == whylen) {
        size_t k = n;
        while (k > 0 && ((unsigned char)why[k - 1] & 0xC0) == 0x80)
            k--;
        if (k > 0 && ((unsigned char)why[k - 1] & 0xC0) == 0xC0) why[k - 1] = '\0';
    }
    return GH_ERROR;
}

static bool json_count(json_t *v, uint64_t max, uint64_t *out)
{
    json_int_t n;
    if (!json_is_integer(v)) return false;
    n = json_integer_value(v);
    if (n < 0 || (uint64_t)n > max) return false;
    *out = (uint64_t)n;
    return true;
}

static int parse_quotas(json_t *q, struct gh_tenant_overrides *o, char *why, size_t whylen)
{
    char kb[65];
    const char *k;
    json_t *v;

    if (!json_is_object(q)) return why_set(why, whylen, "%s must be an object", "quotas");
    json_object_foreach(q, k, v)
    {
        bool found = false;
        for (int m = 0; m < GH_QUOTA_NMETRICS && !found; m++)
            for (int p = 0; p < GH_QUOTA_NPERIODS && !found; p++) {
                if (strcmp(k, quota_names[m][p]) != 0) continue;
                if (!json_count(v, (uint64_t)INT64_MAX, &o->quotas.limit[m][p]))
                    return why_set(why, whylen, "quotas.%s must be a number >= 0",
                                   gh_utf8_clip(k, kb, sizeof(kb)));
                o->quota_set[m][p] = 1;
                found = true;
            }
        if (!found)
            return why_set(why, whylen,
                           "unknown quota \"%s\" (use requests_, request_bytes_ or "
                           "response_bytes_ with _per_day or _per_month)",
                           gh_utf8_clip(k, kb, sizeof(kb)));
    }
    return GH_OK;
}

static int parse_rule_overrides(json_t *rl, struct gh_tenant_overrides *o, char *why, size_t whylen)
{
    char kb[65];
    const char *k;
    json_t *v;

    if (!json_is_object(rl)) return why_set(why, whylen, "%s must be an object", "rate_limits");
    json_object_foreach(rl, k, v)
    {
        struct gh_limit_override *ov;
        json_t *rate = json_object_get(v, "rate"), *burst = json_object_get(v, "burst");
        uint64_t b = 0;

        if (o->nrules == GH_LIMITS_MAX_RULE_OVERRIDES)
            return why_set(why, whylen, "at most 16 rate_limits overrides%s", "");
        if (strlen(k) == 0 || strlen(k) >= sizeof(ov->rule))
            return why_set(why, whylen, "rate_limits: a rule name has 1 to 95 bytes%s", "");
        if (!json_is_object(v) || json_object_size(v) > 2 || !json_is_string(rate) ||
            (json_object_size(v) == 2 && burst == NULL))
            return why_set(why, whylen,
                           "rate_limits.%s must be {\"rate\": \"100/s\", \"burst\": N}",
                           gh_utf8_clip(k, kb, sizeof(kb)));
        ov = &o->rules[o->nrules];
        snprintf(ov->rule, sizeof(ov->rule), "%s", k);
        if (gh_config_parse_rate(json_string_value(rate), &ov->rate) != GH_OK)
            return why_set(why, whylen,
                           "rate_limits.%s.rate must be a rate such as \"100/s\" or \"5000/h\"",
                           gh_utf8_clip(k, kb, sizeof(kb)));
        if (burst != NULL && (!json_count(burst, UINT32_MAX, &b) || b == 0))
            return why_set(why, whylen, "rate_limits.%s.burst must be a number >= 1",
                           gh_utf8_clip(k, kb, sizeof(kb)));
        ov->burst =
            b ? (uint32_t)b : (ov->rate.count > UINT32_MAX ? UINT32_MAX : (uint32_t)ov->rate.count);
        {
            struct gh_limit_rule probe;
            if (gh_limits_rule_params(&probe, ov->rate.count, ov->rate.period_ms, ov->burst, 1) !=
                GH_OK)
                return why_set(why, whylen, "rate_limits.%s.rate is too fine",
                               gh_utf8_clip(k, kb, sizeof(kb)));
        }
        o->nrules++;
    }
    return GH_OK;
}

int gh_tenant_overrides_parse(const char *json, struct gh_tenant_overrides *out, char *why,
                              size_t whylen)
{
    char kb[65];
    json_t *root, *v;
    json_error_t jerr;
    const char *k;
    int rc = GH_OK;

    memset(out, 0, sizeof(*out));
    if (json == NULL || json[0] == '\0') return GH_OK;
    root = json_loads(json, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) return why_set(why, whylen, "overrides: %s", "invalid JSON");
    if (!json_is_object(root)) {
        json_decref(root);
        return why_set(why, whylen, "%s must be a JSON object", "overrides");
    }
    json_object_foreach(root, k, v)
    {
        uint64_t n;
        if (strcmp(k, "concurrency") == 0) {
            if (!json_count(v, UINT32_MAX, &n)) {
                rc = why_set(why, whylen, "%s must be a number >= 0", "concurrency");
                break;
            }
            out->has_concurrency = true;
            out->concurrency = (uint32_t)n;
        } else if (strcmp(k, "quotas") == 0) {
            if ((rc = parse_quotas(v, out, why, whylen)) != GH_OK) break;
        } else if (strcmp(k, "rate_limits") == 0) {
            if ((rc = parse_rule_overrides(v, out, why, whylen)) != GH_OK) break;
        } else {
            rc = why_set(why, whylen,
                         "unknown override \"%s\" (use concurrency, quotas or rate_limits)",
                         gh_utf8_clip(k, kb, sizeof(kb)));
            break;
        }
    }
    json_decref(root);
    return rc;
}
