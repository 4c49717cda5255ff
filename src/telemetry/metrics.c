/* Metrics storage, the name registry and the request-path hooks (see
 * metrics.h). The hooks only add to the calling worker's counters. */
#include "telemetry/metrics.h"

#include <stdlib.h>
#include <string.h>

#include "auth/principal.h"
#include "core/clock.h"
#include "core/snapshot.h"
#include "core/worker.h"
#include "http/conn.h"
#include "limits/limits.h"
#include "limits/policy.h"
#include "proxy/pool.h"
#include "proxy/router.h"
#include "telemetry/metrics_tenants.h"

const uint64_t gh_metrics_bucket_ns[GH_METRICS_NBUCKETS - 1] = {
    100000ull,     250000ull,     500000ull,     1000000ull,    2500000ull,   5000000ull,
    10000000ull,   25000000ull,   50000000ull,   100000000ull,  250000000ull, 500000000ull,
    1000000000ull, 2500000000ull, 5000000000ull, 10000000000ull};

unsigned gh_metrics_bucket(uint64_t ns)
{
    /* Sixteen bounds: a binary search is four compares. */
    unsigned lo = 0, hi = GH_METRICS_NBUCKETS - 1;
    while (lo < hi) {
        unsigned mid = (lo + hi) / 2;
        if (ns <= gh_metrics_bucket_ns[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* ---- Name registry ------------------------------------------------------- */

static int names_init(struct gh_metrics_names *n, uint32_t cap, const char *const *fixed,
                      uint32_t nfixed)
{
    n->names = calloc(cap, sizeof(*n->names));
    if (n->names == NULL) return GH_ERROR;
    n->cap = cap;
    for (uint32_t i = 0; i < nfixed; i++) {
        n->names[i] = strdup(fixed[i]);
        if (n->names[i] == NULL) return GH_ERROR;
    }
    atomic_store_explicit(&n->n, nfixed, memory_order_release);
    return GH_OK;
}

static void names_release(struct gh_metrics_names *n)
{
    for (uint32_t i = 0; n->names && i < n->cap; i++)
        free(n->names[i]);
    free(n->names);
    n->names = NULL;
}

int gh_metrics_names_slot(struct gh_metrics_names *names, const char *name)
{
    uint32_t n = atomic_load_explicit(&names->n, memory_order_relaxed);

    /* Linear: run at load time only, over at most a thousand names. */
    for (uint32_t i = 0; i < n; i++)
        if (strcmp(names->names[i], name) == 0) return (int)i;
    if (n == names->cap) {
        /* Full: fold into "other" (slot 0 for upstreams and rules). */
        for (uint32_t i = 0; i < n; i++)
            if (strcmp(names->names[i], "other") == 0) return (int)i;
        return 0;
    }
    names->names[n] = strdup(name);
    if (names->names[n] == NULL) return -1;
    /* Publish the name before the count that covers it (the scraper reads). */
    atomic_store_explicit(&names->n, n + 1, memory_order_release);
    return (int)n;
}

const char *gh_metrics_names_get(const struct gh_metrics_names *names, uint32_t slot)
{
    return slot < names->cap && names->names[slot] ? names->names[slot] : "other";
}

/* ---- Service ------------------------------------------------------------- */

struct gh_metrics *gh_metrics_new(void)
{
    static const char *const route_fixed[] = {"none", "other"};
    static const char *const other[] = {"other"};
    struct gh_metrics *m = calloc(1, sizeof(*m));

    if (m == NULL) return NULL;
    pthread_mutex_init(&m->scrape_mu, NULL);
    if (names_init(&m->routes, GH_METRICS_MAX_ROUTES, route_fixed, 2) != GH_OK ||
        names_init(&m->upstreams, GH_METRICS_MAX_UPSTREAMS, other, 1) != GH_OK ||
        names_init(&m->rules, GH_METRICS_MAX_RULES, other, 1) != GH_OK) {
        gh_metrics_free(m);
        return NULL;
    }
    return m;
}

void gh_metrics_free(struct gh_metrics *m)
{
    if (m == NULL) return;
    names_release(&m->routes);
    names_release(&m->upstreams);
    names_release(&m->rules);
    for (uint32_t i = 0; i < m->sticky.n; i++)
        free(m->sticky.ids[i]);
    free(m->sticky.ids);
    pthread_mutex_destroy(&m->scrape_mu);
    free(m);
}

static int bind_rules(struct gh_metrics *m, struct gh_limit_rule *rules, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        int slot = gh_metrics_names_slot(&m->rules, rules[i].name);
        if (slot < 0) return GH_ERROR;
        rules[i].metrics_slot = (uint16_t)slot;
    }
    return GH_OK;
}

int gh_metrics_bind(struct gh_metrics *m, struct gh_snapshot *snap, struct gh_err *err)
{
    const struct gh_config *cfg = snap->cfg;
    struct gh_limits_policy *pol = snap->limits;

    if (m == NULL) return GH_OK;
    free(snap->metrics_route_slot);
    free(snap->metrics_upstream_slot);
    snap->metrics_route_slot = calloc(cfg->nroutes + 1, sizeof(uint16_t));
    snap->metrics_upstream_slot = calloc(cfg->nupstreams + 1, sizeof(uint16_t));
    if (snap->metrics_route_slot == NULL || snap->metrics_upstream_slot == NULL) goto oom;
    for (size_t i = 0; i < cfg->nroutes; i++) {
        int slot = gh_metrics_names_slot(&m->routes, cfg->routes[i].name);
        if (slot < 0) goto oom;
        snap->metrics_route_slot[i] = (uint16_t)slot;
    }
    for (size_t i = 0; i < cfg->nupstreams; i++) {
        int slot = gh_metrics_names_slot(&m->upstreams, cfg->upstreams[i].name);
        if (slot < 0) goto oom;
        snap->metrics_upstream_slot[i] = (uint16_t)slot;
    }
    for (uint32_t i = 0; pol && i < pol->nplans; i++)
        if (bind_rules(m, pol->plans[i].rules, pol->plans[i].nrules) != GH_OK) goto oom;
    for (uint32_t i = 0; pol && i < pol->nroutes; i++)
        if (bind_rules(m, pol->routes[i].rules, pol->routes[i].nrules) != GH_OK) goto oom;
    atomic_store(&m->last_load_ok_ms, gh_wall_ms());
    return GH_OK;
oom:
    return gh_err_set(err, NULL, 0, 0, "out of memory binding metrics names");
}

/* ---- Per worker ---------------------------------------------------------- */

struct gh_metrics_worker *gh_metrics_worker_new(void)
{
    /* About 600 KiB, mostly never touched: calloc'd pages stay shared zero
     * pages until a route or upstream uses them. */
    struct gh_metrics_worker *mw = calloc(1, sizeof(*mw));

    if (mw == NULL) return NULL;
    mw->tenants = gh_mtenants_new();
    if (mw->tenants == NULL) {
        free(mw);
        return NULL;
    }
    atomic_init(&mw->redis_up, 2);
    return mw;
}

void gh_metrics_worker_free(struct gh_metrics_worker *mw)
{
    if (mw == NULL) return;
    gh_mtenants_free(mw->tenants);
    free(mw);
}

/* ---- Hooks --------------------------------------------------------------- */

static unsigned method_index(enum gh_http_method m)
{
    switch (m) {
    case GH_HTTP_GET: return GH_MM_GET;
    case GH_HTTP_HEAD: return GH_MM_HEAD;
    case GH_HTTP_POST: return GH_MM_POST;
    case GH_HTTP_PUT: return GH_MM_PUT;
    case GH_HTTP_PATCH: return GH_MM_PATCH;
    case GH_HTTP_DELETE: return GH_MM_DELETE;
    case GH_HTTP_OPTIONS: return GH_MM_OPTIONS;
    default: return GH_MM_OTHER;
    }
}

static unsigned class_index(int status)
{
    if (status < 200) return GH_MC_1XX;
    if (status >= 500) return GH_MC_5XX;
    return (unsigned)(status / 100 - 1);
}

static struct gh_mupstream *upstream_of(struct gh_metrics_worker *m, const struct gh_req *r)
{
    if (r->route == NULL || r->snap->metrics_upstream_slot == NULL) return NULL;
    return &m->upstreams[r->snap->metrics_upstream_slot[r->route->upstream_index]];
}

void gh_metrics_conn_accepted(struct gh_worker *w)
{
    if (w->metrics) gh_mc_add(&w->metrics->conns_accepted, 1);
}

void gh_metrics_conn_closed(struct gh_worker *w)
{
    if (w->metrics) gh_mc_add(&w->metrics->conns_closed, 1);
}

void gh_metrics_tls_handshake(struct gh_worker *w, bool ok)
{
    if (w->metrics) gh_mc_add(ok ? &w->metrics->tls_ok : &w->metrics->tls_failed, 1);
}

void gh_metrics_request_start(struct gh_worker *w, struct gh_req *r)
{
    if (w->metrics == NULL || r->m_started) return;
    r->m_started = true;
    gh_mc_add(&w->metrics->req_started, 1);
}

/* The request's counters, by route, upstream and tenant. */
static void count_request(struct gh_metrics_worker *m, const struct gh_req *r)
{
    const struct gh_snapshot *s = r->snap;
    struct gh_mroute *rt;
    struct gh_mupstream *up;
    unsigned cls;
    uint32_t slot = GH_METRICS_ROUTE_NONE;

    /* Requests that got no answer (the client left first) are only
     * counted out of flight. */
    if (r->status == 0 || s == NULL || s->metrics_route_slot == NULL) return;
    if (r->route) slot = s->metrics_route_slot[r->route->cfg - s->cfg->routes];
    cls = class_index(r->status);
    rt = &m->routes[slot];
    gh_mc_add(&rt->requests[method_index(r->head.method_id)][cls], 1);
    gh_mc_add(&rt->bytes_in, r->bytes_in);
    gh_mc_add(&rt->bytes_out, r->bytes_out);
    gh_mhist_observe(&rt->duration, gh_now_ns() - r->t_start);
    if (r->t_up_start && (up = upstream_of(m, r)) != NULL) {
        if (r->t_up_head) {
            gh_mc_add(&up->requests[class_index(r->resp.status)], 1);
            gh_mhist_observe(&up->duration, r->t_up_head - r->t_up_start);
        } else {
            gh_mc_add(&up->requests[GH_MC_ERROR], 1);
        }
    }
    if (r->principal.kind != GH_PRINCIPAL_NONE)
        gh_mtenants_count(m->tenants, r->principal.tenant, strlen(r->principal.tenant), cls);
}

void gh_metrics_request_end(struct gh_worker *w, struct gh_req *r)
{
    struct gh_metrics_worker *m = w->metrics;

    if (m == NULL || !r->m_started) return;
    r->m_started = false;
    count_request(m, r);
    /* Out of flight last, with release order: a scrape that sees no request
     * in flight sees every count above. */
    atomic_store_explicit(&m->req_ended,
                          atomic_load_explicit(&m->req_ended, memory_order_relaxed) + 1,
                          memory_order_release);
}

void gh_metrics_upstream_conn(struct gh_worker *w, const struct gh_req *r)
{
    struct gh_mupstream *up;
    if (w->metrics == NULL || (up = upstream_of(w->metrics, r)) == NULL) return;
    gh_mc_add(r->up_reused ? &up->conns_reused : &up->conns_new, 1);
}

void gh_metrics_upstream_error(struct gh_worker *w, const struct gh_req *r, int why)
{
    struct gh_mupstream *up;
    if (w->metrics == NULL || why <= GH_UPERR_NONE || why > GH_UPERR_BUSY ||
        (up = upstream_of(w->metrics, r)) == NULL)
        return;
    gh_mc_add(&up->errors[why - 1], 1);
}

int gh_metrics_auth_result(const char *code)
{
    static const struct {
        const char *code;
        int result;
    } map[] = {
        {"missing_credentials", GH_MAR_MISSING},  {"key_expired", GH_MAR_EXPIRED},
        {"token_expired", GH_MAR_EXPIRED},        {"key_revoked", GH_MAR_REVOKED},
        {"token_revoked", GH_MAR_REVOKED},        {"tenant_suspended", GH_MAR_SUSPENDED},
        {"insufficient_scope", GH_MAR_FORBIDDEN}, {"insufficient_role", GH_MAR_FORBIDDEN},
        {"jwks_unavailable", GH_MAR_UNAVAILABLE}, {"auth_busy", GH_MAR_UNAVAILABLE},
        {"auth_unavailable", GH_MAR_UNAVAILABLE},
    };
    if (code == NULL) return GH_MAR_INVALID;
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (strcmp(code, map[i].code) == 0) return map[i].result;
    /* Everything else is a credential we could not accept: bad key, bad
     * signature, wrong issuer, a key in the query string... */
    return GH_MAR_INVALID;
}

void gh_metrics_auth(struct gh_worker *w, const struct gh_req *r, int rc)
{
    unsigned method = r->m_auth_method < GH_MAUTH_N ? r->m_auth_method : GH_MAUTH_NONE;
    int result;

    if (w->metrics == NULL || rc == 2) return;
    /* Refusals are rare: mapping their code by name costs nothing that matters. */
    result = rc == 1 ? GH_MAR_SUCCESS : gh_metrics_auth_result(r->error);
    gh_mc_add(&w->metrics->auth[method][result], 1);
}

void gh_metrics_webhook(struct gh_worker *w, const struct gh_req *r, unsigned result)
{
    const struct gh_snapshot *s = r->snap;
    uint32_t slot;

    if (w->metrics == NULL || r->route == NULL || s->metrics_route_slot == NULL ||
        result >= GH_MWH_N)
        return;
    slot = s->metrics_route_slot[r->route->cfg - s->cfg->routes];
    gh_mc_add(&w->metrics->routes[slot].webhook[result], 1);
}

void gh_metrics_idempotency(struct gh_worker *w, unsigned result)
{
    if (w->metrics == NULL || result >= GH_MIDEM_N) return;
    gh_mc_add(&w->metrics->idem[result], 1);
}

void gh_metrics_webhook_replay(struct gh_worker *w, unsigned backend, unsigned result)
{
    if (w->metrics == NULL || backend >= GH_MRP_BACKEND_N || result >= GH_MRP_RESULT_N) return;
    gh_mc_add(&w->metrics->replay[backend][result], 1);
}

void gh_metrics_ratelimit(struct gh_worker *w, const struct gh_limit_rule *rl, bool allowed)
{
    struct gh_mrule *m;
    if (w->metrics == NULL || rl->metrics_slot >= GH_METRICS_MAX_RULES) return;
    m = &w->metrics->rules[rl->metrics_slot];
    gh_mc_add(allowed ? &m->allowed : &m->limited, 1);
}

void gh_metrics_worker_tick(struct gh_worker *w)
{
    struct gh_metrics_worker *m = w->metrics;
    const struct gh_snapshot *s;
    uint32_t idle[GH_METRICS_MAX_UPSTREAMS];

    if (m == NULL || w->cur == NULL) return;
    s = w->cur->snap;
    if (s->metrics_upstream_slot != NULL) {
        /* Summed into a local copy, then stored, so that the scraper never
         * sees a half-summed value. */
        memset(idle, 0, sizeof(idle));
        for (size_t i = 0; i < w->nups && i < s->cfg->nupstreams; i++)
            for (size_t k = 0; k < w->ups[i].npools; k++)
                idle[s->metrics_upstream_slot[i]] += w->ups[i].pools[k]->nidle;
        for (uint32_t i = 0; i < GH_METRICS_MAX_UPSTREAMS; i++)
            if (gh_mc_get(&m->upstreams[i].pool_idle) != idle[i])
                atomic_store_explicit(&m->upstreams[i].pool_idle, idle[i], memory_order_relaxed);
    }
    atomic_store_explicit(&m->redis_up, (uint64_t)gh_limits_worker_redis_state(w->limits),
                          memory_order_relaxed);
}
