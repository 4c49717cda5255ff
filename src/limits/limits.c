/* The limits stage, its per-worker state and the runtime service (see
 * limits.h). */
#include "limits/limits.h"

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"
#include "auth/keydir.h"
#include "core/clock.h"
#include "core/jsonw.h"
#include "core/log.h"
#include "core/log_episode.h"
#include "core/snapshot.h"
#include "core/worker.h"
#include "hooks/events.h"
#include "http/conn.h"
#include "limits/gcra.h"
#include "limits/gcra_script.h"
#include "limits/inflight.h"
#include "store/store.h"
#include "limits/ltable.h"
#include "limits/quota.h"
#include "limits/redis.h"
#include "limits/redis_script.h"
#include "limits/usage_retention.h"
#include "proxy/router.h"
#include "stages.h"
#include "telemetry/metrics.h"

#define NS_PER_S      1000000000ull
#define QUOTA_TENANTS 16384
#define INFLIGHT_KEYS 65536
#define WAIT_POLL_MS  2

struct gh_limits_service {
    struct gh_ltable *rates;
    struct gh_inflight *inflight;
    struct gh_quota_table *quotas;
    struct gh_store *store;
    struct gh_audit_service *audit; /* set before the flusher starts; may be NULL */
    /* Woken for each webhook event published here; set once the dispatcher
     * runs (after the flusher and the workers start), NULL until then. */
    _Atomic(struct gh_hooks_dispatcher *) hooks;
    struct gh_redis_script script;
    SSL_CTX *redis_tls;
    uint32_t flush_ms;
    struct gh_log_episode flush_failing; /* the flusher's, while the store is down */
    struct gh_usage_retention retention; /* passes on the flusher thread */
    pthread_t thread;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
};

struct gh_limits_worker {
    struct gh_worker *w;
    struct gh_limits_service *svc;
    struct gh_redis *redis;
    char prefix[64];
    size_t prefix_len;
    struct gh_req *wait_head, *wait_tail; /* bulkhead queue, FIFO */
    struct event *wait_ev;
    bool wait_armed;
    uint64_t last_fallback_log;
    struct gh_limits_stats stats;
};

/* ---- Service ------------------------------------------------------------ */

static void *flusher_main(void *arg)
{
    struct gh_limits_service *s = arg;
    struct gh_err err;

    pthread_mutex_lock(&s->mu);
    while (!s->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += (long)(s->flush_ms % 1000) * 1000000L;
        ts.tv_sec += s->flush_ms / 1000 + ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
        if (s->stop) break;
        pthread_mutex_unlock(&s->mu);
        if (gh_quota_flush(s->quotas, s->store, (int64_t)gh_wall_ms(), &err) != GH_OK)
            gh_log_episode_fail(&s->flush_failing,
                                "quota: flush failed (kept for the next one): %s", err.msg);
        else
            gh_log_episode_ok(&s->flush_failing, "quota: flushing usage to the store");
        gh_usage_retention_run(&s->retention, s->store, gh_now_ns(), (int64_t)gh_wall_ms());
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static SSL_CTX *redis_tls_ctx(const struct gh_config_redis *rc, struct gh_err *err)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    if (ctx == NULL) goto fail;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (rc->verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        if ((rc->ca_file ? SSL_CTX_load_verify_locations(ctx, rc->ca_file, NULL)
                         : SSL_CTX_set_default_verify_paths(ctx)) != 1)
            goto fail;
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    gh_err_set(err, NULL, 0, 0, "redis: cannot set up TLS (ca_file %s)",
               rc->ca_file ? rc->ca_file : "system default");
    return NULL;
}

struct gh_limits_service *gh_limits_service_new(const struct gh_config *cfg, struct gh_store *st,
                                                struct gh_err *err)
{
    struct gh_limits_service *s = calloc(1, sizeof(*s));

    if (s == NULL) goto nomem;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->store = st;
    s->flush_ms = cfg->limits.quota_flush_ms;
    gh_usage_retention_init(&s->retention, cfg->limits.usage_retention_ms);
    s->rates = gh_ltable_new(cfg->limits.max_keys);
    s->inflight = gh_inflight_new(INFLIGHT_KEYS);
    s->quotas = gh_quota_table_new(QUOTA_TENANTS);
    if (s->rates == NULL || s->inflight == NULL || s->quotas == NULL) goto nomem;
    gh_redis_script_init(&s->script, gh_gcra_script);
    if (cfg->redis.enabled && cfg->redis.tls &&
        (s->redis_tls = redis_tls_ctx(&cfg->redis, err)) == NULL)
        goto fail;
    if (st != NULL && gh_quota_preload(s->quotas, st, (int64_t)gh_wall_ms(), err) != GH_OK)
        goto fail;
    return s;
nomem:
    gh_err_set(err, NULL, 0, 0, "limits: out of memory");
fail:
    gh_limits_service_free(s);
    return NULL;
}

/* A threshold event, on the tenant's audit chain. */
/* A quota threshold crossed (on the flusher thread, once per tenant,
 * period, metric and threshold): the audit event, and the tenant's webhook
 * event quota.warning (80 %) or quota.exceeded (100 %). The webhook event
 * is stored with its deliveries; the dispatcher finds it at its next look
 * at the queue. */
static void quota_event(void *arg, const struct gh_store_limit_event *le)
{
    struct gh_limits_service *s = arg;
    struct gh_audit_service *a = s->audit;
    struct gh_audit_event ev;
    struct gh_err err = {0};
    char res[GH_AUDIT_RESOURCE_SIZE], reason[32], payload[256];

    snprintf(payload, sizeof(payload),
             "{\"tenant_id\":\"%s\",\"metric\":\"%s\",\"period\":\"%s\",\"threshold\":%u,"
             "\"value\":%llu,\"limit\":%llu}",
             le->tenant_id, le->metric, le->period, le->threshold, (unsigned long long)le->value,
             (unsigned long long)le->limit);
    if (gh_store_valid_tenant_id(le->tenant_id) &&
        gh_hooks_emit(s->store, atomic_load_explicit(&s->hooks, memory_order_acquire),
                      le->tenant_id, le->threshold >= 100 ? "quota.exceeded" : "quota.warning",
                      payload, &err) != GH_OK)
        gh_log_warn("quota: cannot publish the webhook event of tenant %s: %s", le->tenant_id,
                    err.msg);
    if (!gh_audit_wants(a, GH_AUDIT_KIND_LIMITS)) return;
    gh_audit_event_new(&ev);
    GH_AUDIT_SET(&ev, tenant, gh_str_cstr(le->tenant_id));
    GH_AUDIT_SET(&ev, actor, GH_STR_LIT("system"));
    GH_AUDIT_SET(&ev, action, GH_STR_LIT("quota.threshold"));
    snprintf(res, sizeof(res), "tenants/%s/quotas/%s/%s", le->tenant_id, le->metric, le->period);
    GH_AUDIT_SET(&ev, resource, gh_str_cstr(res));
    ev.outcome = le->threshold >= 100 ? GH_AUDIT_DENIED : GH_AUDIT_SUCCESS;
    snprintf(reason, sizeof(reason), "threshold_%u", le->threshold);
    GH_AUDIT_SET(&ev, reason, gh_str_cstr(reason));
    gh_audit_submit(a, &ev, false);
}

void gh_limits_service_set_audit(struct gh_limits_service *s, struct gh_audit_service *a)
{
    if (s == NULL) return;
    s->audit = a;
    gh_quota_on_event(s->quotas, quota_event, s);
}

void gh_limits_service_set_hooks(struct gh_limits_service *s, struct gh_hooks_dispatcher *d)
{
    if (s == NULL) return;
    atomic_store_explicit(&s->hooks, d, memory_order_release);
}

int gh_limits_service_start(struct gh_limits_service *s, struct gh_err *err)
{
    if (s->store == NULL) return GH_OK;
    if (pthread_create(&s->thread, NULL, flusher_main, s) != 0)
        return gh_err_set(err, NULL, 0, 0, "limits: cannot start the quota flusher thread");
    s->started = true;
    return GH_OK;
}

void gh_limits_service_retention(const struct gh_limits_service *s, uint64_t *usage,
                                 uint64_t *events, uint64_t *failures)
{
    *usage = atomic_load_explicit(&s->retention.deleted_usage, memory_order_relaxed);
    *events = atomic_load_explicit(&s->retention.deleted_events, memory_order_relaxed);
    *failures = atomic_load_explicit(&s->retention.failures, memory_order_relaxed);
}

int gh_limits_service_flush(struct gh_limits_service *s, struct gh_err *err)
{
    if (s->store == NULL) return GH_OK;
    return gh_quota_flush(s->quotas, s->store, (int64_t)gh_wall_ms(), err);
}

void gh_limits_service_free(struct gh_limits_service *s)
{
    struct gh_err err;

    if (s == NULL) return;
    if (s->started) {
        pthread_mutex_lock(&s->mu);
        s->stop = true;
        pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
        /* What the workers counted last reaches the store. */
        if (gh_limits_service_flush(s, &err) != GH_OK)
            gh_log_warn("quota: last flush failed: %s", err.msg);
    }
    gh_ltable_free(s->rates);
    gh_inflight_free(s->inflight);
    if (s->quotas) gh_quota_table_free(s->quotas);
    SSL_CTX_free(s->redis_tls);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* ---- Worker ------------------------------------------------------------- */

static void wait_cb(evutil_socket_t fd, short what, void *arg);

struct gh_limits_worker *gh_limits_worker_new(struct gh_worker *w, struct gh_limits_service *s,
                                              const struct gh_config *cfg)
{
    struct gh_limits_worker *lw = calloc(1, sizeof(*lw));

    if (lw == NULL) return NULL;
    lw->w = w;
    lw->svc = s;
    lw->wait_ev = event_new(w->base, -1, 0, wait_cb, lw);
    if (lw->wait_ev == NULL) {
        free(lw);
        return NULL;
    }
    /* One connection per worker serves every Redis user: the rate limiter,
     * the verify stage's replay record (src/hooks/stage.c) and the
     * idempotency records (src/idem/stage.c). */
    if (cfg->redis.enabled &&
        (cfg->limits.redis_backend || cfg->inbound_webhooks.replay_redis ||
         cfg->idempotency.redis) &&
        !w->is_admin) {
        struct gh_redis_opts o = {0};
        char name[32];
        snprintf(name, sizeof(name), "worker %d", w->id);
        o.host = cfg->redis.host;
        o.port = cfg->redis.port;
        o.tls = cfg->redis.tls;
        o.tls_ctx = s->redis_tls;
        o.sni = cfg->redis.sni;
        o.resolver = cfg->redis.resolver;
        o.username = cfg->redis.username;
        o.password = cfg->redis.password;
        o.db = cfg->redis.db;
        o.timeout_ms = cfg->redis.timeout_ms;
        o.connect_timeout_ms = cfg->redis.connect_timeout_ms;
        o.log_name = name;
        lw->redis = gh_redis_new(w->base, &o);
        if (lw->redis == NULL)
            gh_log_warn("limits: worker %d: no Redis client; deciding by on_redis_error (rate "
                        "limits, webhook replays and idempotency records)",
                        w->id);
        lw->prefix_len =
            (size_t)snprintf(lw->prefix, sizeof(lw->prefix),
                             "%srl:", cfg->redis.key_prefix ? cfg->redis.key_prefix : "");
        if (lw->prefix_len >= sizeof(lw->prefix)) lw->prefix_len = sizeof(lw->prefix) - 1;
    }
    return lw;
}

void gh_limits_worker_free(struct gh_limits_worker *lw)
{
    if (lw == NULL) return;
    if (lw->redis) gh_redis_free(lw->redis);
    if (lw->wait_ev) event_free(lw->wait_ev);
    free(lw);
}

struct gh_redis *gh_limits_worker_redis(struct gh_limits_worker *lw)
{
    return lw ? lw->redis : NULL;
}

int gh_limits_worker_redis_state(const struct gh_limits_worker *lw)
{
    if (lw == NULL || lw->redis == NULL) return 2;
    return gh_redis_is_up(lw->redis) ? 1 : 0;
}

bool gh_limits_service_quota_usage(struct gh_limits_service *s, const char *tenant,
                                   uint64_t used[GH_QUOTA_NMETRICS][GH_QUOTA_NPERIODS],
                                   uint64_t limit[GH_QUOTA_NMETRICS][GH_QUOTA_NPERIODS])
{
    if (s == NULL || s->quotas == NULL) return false;
    return gh_quota_usage(s->quotas, tenant, strlen(tenant), (int64_t)gh_wall_ms(), used, limit);
}

const struct gh_limits_stats *gh_limits_worker_stats(const struct gh_limits_worker *lw)
{
    return &lw->stats;
}

/* One writer per counter (the worker): a relaxed load and store, no locked add. */
#define INC(lw, f)                                                                                 \
    atomic_store_explicit(&(lw)->stats.f,                                                          \
                          atomic_load_explicit(&(lw)->stats.f, memory_order_relaxed) + 1,          \
                          memory_order_relaxed)

/* ---- Answers ------------------------------------------------------------ */

/* A rule or quota name as a Structured Field string: printable ASCII
 * without '"' and '\\' (anything else becomes '_'), at most 96 bytes. */
static size_t put_sf_string(char *out, const char *s, size_t n)
{
    size_t k = 0;
    out[k++] = '"';
    for (size_t i = 0; i < n && i < 96; i++) {
        unsigned char c = (unsigned char)s[i];
        out[k++] = (c < 0x20 || c > 0x7e || c == '"' || c == '\\') ? '_' : (char)c;
    }
    out[k++] = '"';
    return k;
}

/* "RateLimit-Policy: "<name>";q=<q>;w=<w>\r\nRateLimit: "<name>";r=<r>;t=<t>\r\n"
 * into r->rl_hdr (draft-ietf-httpapi-ratelimit-headers-10 §3, §4). */
/* Appends <lit> or a decimal without snprintf: this runs on every admitted
 * request of a limited route. The buffer (384 bytes) holds the longest
 * result: two 98-byte names, five 20-digit numbers and the literals. */
static size_t put_lit(char *o, const char *lit)
{
    size_t n = strlen(lit);
    memcpy(o, lit, n);
    return n;
}

static size_t put_u64(char *o, uint64_t v)
{
    char tmp[20];
    size_t n = 0, k;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (k = 0; k < n; k++)
        o[k] = tmp[n - 1 - k];
    return n;
}

static void set_headers(struct gh_req *r, const char *name, size_t name_len, uint64_t q, uint64_t w,
                        uint64_t rem, uint64_t t, bool bytes)
{
    char *o = r->rl_hdr;
    size_t k = 0;

    k += put_lit(o + k, "RateLimit-Policy: ");
    k += put_sf_string(o + k, name, name_len);
    k += put_lit(o + k, ";q=");
    k += put_u64(o + k, q);
    k += put_lit(o + k, ";w=");
    k += put_u64(o + k, w);
    if (bytes) k += put_lit(o + k, ";qu=\"content-bytes\"");
    k += put_lit(o + k, "\r\nRateLimit: ");
    k += put_sf_string(o + k, name, name_len);
    k += put_lit(o + k, ";r=");
    k += put_u64(o + k, rem);
    k += put_lit(o + k, ";t=");
    k += put_u64(o + k, t);
    k += put_lit(o + k, "\r\n");
    r->rl_hdr_len = (uint16_t)k;
}

static uint64_t ceil_s(uint64_t ns)
{
    return (ns + NS_PER_S - 1) / NS_PER_S;
}

/* 429 / 503 with a JSON body naming the rule, and the rate-limit headers. */
static void refuse(struct gh_req *r, int status, const char *code, const char *rule,
                   size_t rule_len, uint64_t retry_after_s)
{
    char body[512], extra[sizeof(r->rl_hdr) + 64];
    struct gh_jsonw j;
    size_t k = 0;

    gh_jsonw_init(&j, body, sizeof(body));
    gh_jsonw_lit(&j, "{\"error\":");
    gh_jsonw_str(&j, gh_str_cstr(code));
    if (rule != NULL) {
        gh_jsonw_lit(&j, ",\"rule\":");
        gh_jsonw_str(&j, gh_str_make(rule, rule_len));
    }
    if (retry_after_s) {
        gh_jsonw_lit(&j, ",\"retry_after\":");
        gh_jsonw_u64(&j, retry_after_s);
    }
    gh_jsonw_lit(&j, ",\"request_id\":");
    gh_jsonw_str(&j, gh_str_make(r->id, r->id_len));
    gh_jsonw_lit(&j, "}\n");
    if (r->rl_hdr_len) {
        memcpy(extra, r->rl_hdr, r->rl_hdr_len);
        k = r->rl_hdr_len;
    }
    if (retry_after_s)
        k += (size_t)snprintf(extra + k, sizeof(extra) - k, "Retry-After: %llu\r\n",
                              (unsigned long long)retry_after_s);
    extra[k] = '\0';
    r->rl_hdr_len = 0; /* already in the answer */
    r->error = code;
    gh_conn_reply_ex(r->conn, status, "application/json", body, j.len, extra);
}

/* ---- Descriptors and keys ----------------------------------------------- */

static gh_str header_value(const struct gh_req *r, const char *name, size_t len)
{
    for (uint32_t i = 0; i < r->head.nheaders; i++) {
        const struct gh_http_header *h = &r->head.headers[i];
        if (h->name.len == len && gh_str_caseeq(h->name, gh_str_make(name, len))) return h->value;
    }
    return gh_str_make("", 0);
}

static size_t append(char *buf, size_t k, size_t cap, const char *p, size_t n)
{
    if (k + n + 1 > cap) n = cap > k + 1 ? cap - k - 1 : 0;
    memcpy(buf + k, p, n);
    buf[k + n] = '\0';
    return k + n + 1;
}

/* The bytes that identify one rule's bucket for this request: the rule name
 * and each descriptor's value, NUL-separated (values hold no NUL). Long
 * header values go in as their SHA-256, so the tuple has a fixed bound. */
static size_t build_tuple(const struct gh_req *r, const struct gh_limit_rule *rl, char *buf,
                          size_t cap)
{
    const struct gh_principal *p = &r->principal;
    bool authed = p->kind != GH_PRINCIPAL_NONE;
    size_t k = append(buf, 0, cap, rl->name, rl->name_len);

    for (uint8_t i = 0; i < rl->nby; i++) {
        switch (rl->by[i]) {
        case GH_LIMIT_BY_TENANT:
            k = append(buf, k, cap, authed ? p->tenant : "", authed ? strlen(p->tenant) : 0);
            break;
        case GH_LIMIT_BY_KEY:
            if (authed && p->kind == GH_PRINCIPAL_API_KEY)
                k = append(buf, k, cap, p->key_id, strlen(p->key_id));
            else
                k = append(buf, k, cap, authed ? p->subject : "", authed ? strlen(p->subject) : 0);
            break;
        case GH_LIMIT_BY_SUBJECT:
            k = append(buf, k, cap, authed ? p->subject : "", authed ? strlen(p->subject) : 0);
            break;
        case GH_LIMIT_BY_ROUTE:
            k = append(buf, k, cap, r->route->cfg->name, strlen(r->route->cfg->name));
            break;
        case GH_LIMIT_BY_IP: k = append(buf, k, cap, r->conn->peer_ip, r->conn->peer_ip_len); break;
        case GH_LIMIT_BY_HEADER: {
            gh_str v = header_value(r, rl->header, rl->header_len);
            if (v.len > 128) {
                unsigned char md[32];
                unsigned int mdlen = 0;
                EVP_Digest(v.ptr, v.len, md, &mdlen, EVP_sha256(), NULL);
                k = append(buf, k, cap, (const char *)md, mdlen);
            } else {
                k = append(buf, k, cap, v.ptr, v.len);
            }
            break;
        }
        default: break;
        }
    }
    return k;
}

/* Redis keys must be the same on every node, so they come from SHA-256 of
 * the tuple (the local table's keyed hash is per process). */
static void redis_key(struct gh_limits_worker *lw, struct gh_limit_applied *a, const char *tuple,
                      size_t n)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[32];
    unsigned int mdlen = 0;
    size_t k = lw->prefix_len;

    memcpy(a->redis_key, lw->prefix, k);
    EVP_Digest(tuple, n, md, &mdlen, EVP_sha256(), NULL);
    for (int i = 0; i < 16; i++) {
        a->redis_key[k++] = hex[md[i] >> 4];
        a->redis_key[k++] = hex[md[i] & 15];
    }
    a->redis_key[k] = '\0';
    a->redis_key_len = (uint8_t)k;
}

/* ---- Which limits apply ------------------------------------------------- */

struct applicable {
    const struct gh_limit_plan *plan;
    const struct gh_tenant_overrides *ov; /* NULL: none */
    struct gh_config_quotas quotas;
    bool any_quota;
    uint32_t concurrency;
};

static void resolve(struct gh_req *r, const struct gh_limits_policy *pol, struct applicable *ap)
{
    const struct gh_keydir_tenant *t = NULL;

    memset(ap, 0, sizeof(*ap));
    if (r->principal.kind == GH_PRINCIPAL_NONE) return;
    t = gh_keydir_tenant(r->conn->worker->keydir, r->principal.tenant);
    if (t != NULL) ap->plan = gh_limits_plan_find(pol, t->plan);
    if (ap->plan == NULL) ap->plan = pol->default_plan;
    if (t != NULL && t->has_overrides) ap->ov = &t->overrides;
    if (ap->plan) {
        ap->quotas = ap->plan->quotas;
        ap->concurrency = ap->plan->concurrency;
    }
    if (ap->ov) {
        for (int m = 0; m < GH_QUOTA_NMETRICS; m++)
            for (int p = 0; p < GH_QUOTA_NPERIODS; p++)
                if (ap->ov->quota_set[m][p]) ap->quotas.limit[m][p] = ap->ov->quotas.limit[m][p];
        if (ap->ov->has_concurrency) ap->concurrency = ap->ov->concurrency;
    }
    for (int m = 0; m < GH_QUOTA_NMETRICS; m++)
        for (int p = 0; p < GH_QUOTA_NPERIODS; p++)
            if (ap->quotas.limit[m][p]) ap->any_quota = true;
}

/* Fills r->lim_rules with the plan's rules (with the tenant's overrides)
 * and the route's, each with its keys. */
static void collect_rules(struct gh_req *r, struct gh_limits_worker *lw,
                          const struct gh_limit_route *lr, const struct applicable *ap)
{
    char tuple[1024];
    uint32_t n = 0;

    for (uint32_t pass = 0; pass < 2; pass++) {
        const struct gh_limit_rule *rules =
            pass == 0 ? (ap->plan ? ap->plan->rules : NULL) : lr->rules;
        uint32_t nr = pass == 0 ? (ap->plan ? ap->plan->nrules : 0) : lr->nrules;

        for (uint32_t i = 0; i < nr && n < GH_LIMITS_MAX_RULES; i++) {
            struct gh_limit_applied *a = &r->lim_rules[n++];
            size_t len;

            a->rule = &rules[i];
            if (pass == 0 && ap->ov != NULL) {
                for (uint32_t k = 0; k < ap->ov->nrules; k++) {
                    const struct gh_limit_override *o = &ap->ov->rules[k];
                    if (strlen(o->rule) != rules[i].name_len ||
                        memcmp(o->rule, rules[i].name, rules[i].name_len) != 0)
                        continue;
                    a->over = rules[i];
                    if (gh_limits_rule_params(&a->over, o->rate.count, o->rate.period_ms, o->burst,
                                              r->snap->cfg->limits.nodes) == GH_OK)
                        a->rule = &a->over;
                    break;
                }
            }
            len = build_tuple(r, a->rule, tuple, sizeof(tuple));
            a->local_key = gh_ltable_hash(lw->svc->rates, tuple, len);
            if (lw->redis != NULL && r->snap->limits->redis) redis_key(lw, a, tuple, len);
        }
    }
    r->lim_nrules = (uint8_t)n;
}

/* ---- Rate limits -------------------------------------------------------- */

enum { RL_PASS = 1, RL_ANSWERED = 0, RL_WAIT = 2 };

static enum gh_redis_fallback fallback_of(const struct gh_limit_rule *rl,
                                          const struct gh_limit_route *lr)
{
    return rl->fallback != GH_FALLBACK_INHERIT ? rl->fallback : lr->fallback;
}

/* After a pass, the headers describe the rule with the least room left. */
static void pass_headers(struct gh_req *r, const struct gh_limit_rule *rl, uint64_t remaining,
                         uint64_t reset_ns)
{
    set_headers(r, rl->name, rl->name_len, rl->full.burst, rl->window_s, remaining,
                ceil_s(reset_ns), false);
}

static void deny_headers(struct gh_req *r, const struct gh_limit_rule *rl, uint64_t retry_ns)
{
    set_headers(r, rl->name, rl->name_len, rl->full.burst, rl->window_s, 0, ceil_s(retry_ns),
                false);
}

/* Decides every rule in the local table (<use_share>: Redis is away, so
 * with this node's share, and by each rule's on_redis_error). */
static int decide_local(struct gh_req *r, struct gh_limits_worker *lw,
                        const struct gh_limit_route *lr, bool redis_away)
{
    uint64_t now = gh_now_ns();
    const struct gh_limit_rule *best = NULL;
    struct gh_gcra_result best_res = {0};

    for (uint8_t i = 0; i < r->lim_nrules; i++) {
        const struct gh_limit_rule *rl = r->lim_rules[i].rule;
        const struct gh_gcra_params *p = &rl->full;
        struct gh_gcra_result res;

        if (redis_away) {
            enum gh_redis_fallback fb = fallback_of(rl, lr);
            if (fb == GH_FALLBACK_ALLOW) continue;
            if (fb == GH_FALLBACK_DENY) {
                INC(lw, unavailable);
                refuse(r, 503, "rate_limiter_unavailable", rl->name, rl->name_len, 1);
                return RL_ANSWERED;
            }
            p = &rl->share;
        }
        gh_ltable_decide(lw->svc->rates, r->lim_rules[i].local_key, now, p, &res);
        if (!res.allowed) {
            uint64_t ra = ceil_s(res.retry_after_ns);
            deny_headers(r, rl, res.retry_after_ns);
            INC(lw, rate_limited);
            gh_metrics_ratelimit(lw->w, rl, false);
            refuse(r, 429, "rate_limited", rl->name, rl->name_len, ra ? ra : 1);
            return RL_ANSWERED;
        }
        if (best == NULL || res.remaining < best_res.remaining) {
            best = rl;
            best_res = res;
        }
    }
    if (best != NULL) pass_headers(r, best, best_res.remaining, best_res.reset_ns);
    return RL_PASS;
}

static void fallback_log(struct gh_limits_worker *lw)
{
    if (!gh_log_due(&lw->last_fallback_log)) return;
    gh_log_warn("limits: worker %d: Redis unavailable; deciding rate limits by on_redis_error "
                "(this line repeats at most every 10 s)",
                lw->w->id);
}

static void redis_done(void *arg, const redisReply *reply, int status)
{
    struct gh_req *r = arg;

    if (status == GH_REDIS_CANCELLED) return; /* the request is gone */
    r->lim_redis_out = false;
    r->lim_redis = -1;
    if (status == GH_REDIS_OK && reply != NULL && reply->type == REDIS_REPLY_ARRAY &&
        reply->elements == 5) {
        bool ok = true;
        for (size_t i = 0; i < 5; i++) {
            if (reply->element[i]->type != REDIS_REPLY_INTEGER) {
                ok = false;
                break;
            }
            r->lim_reply[i] = reply->element[i]->integer;
        }
        if (ok && r->lim_reply[1] >= 0 && r->lim_reply[1] <= r->lim_nrules) r->lim_redis = 1;
    }
    if (r->lim_redis < 0 && status == GH_REDIS_OK && reply != NULL &&
        reply->type == REDIS_REPLY_ERROR)
        gh_log_warn("limits: Redis refused the rate-limit script: %.200s", reply->str);
    gh_stages_resume(r);
}

static int start_redis(struct gh_req *r, struct gh_limits_worker *lw)
{
    const char *keys[GH_LIMITS_MAX_RULES], *args[2 * GH_LIMITS_MAX_RULES];
    size_t keylens[GH_LIMITS_MAX_RULES], arglens[2 * GH_LIMITS_MAX_RULES];
    char argbuf[2 * GH_LIMITS_MAX_RULES][24];

    for (uint8_t i = 0; i < r->lim_nrules; i++) {
        const struct gh_limit_rule *rl = r->lim_rules[i].rule;
        /* Microseconds, at least 1: Redis keeps time in microseconds. */
        uint64_t em = rl->full.emission_ns / 1000 ? rl->full.emission_ns / 1000 : 1;
        uint64_t tau = rl->full.tau_ns / 1000 ? rl->full.tau_ns / 1000 : 1;
        keys[i] = r->lim_rules[i].redis_key;
        keylens[i] = r->lim_rules[i].redis_key_len;
        arglens[2 * i] =
            (size_t)snprintf(argbuf[2 * i], sizeof(argbuf[0]), "%llu", (unsigned long long)em);
        arglens[2 * i + 1] =
            (size_t)snprintf(argbuf[2 * i + 1], sizeof(argbuf[0]), "%llu", (unsigned long long)tau);
        args[2 * i] = argbuf[2 * i];
        args[2 * i + 1] = argbuf[2 * i + 1];
    }
    if (gh_redis_evalsha(lw->redis, &lw->svc->script, r->lim_nrules, keys, keylens,
                         2 * r->lim_nrules, args, arglens, redis_done, r,
                         &r->lim_redis_handle) != GH_OK)
        return GH_ERROR;
    r->lim_redis_out = true;
    return GH_OK;
}

/* Redis's answer, as a local decision would give it. */
static int apply_redis(struct gh_req *r, struct gh_limits_worker *lw)
{
    int64_t *v = r->lim_reply;
    const struct gh_limit_rule *rl = v[1] >= 1 ? r->lim_rules[v[1] - 1].rule : NULL;

    INC(lw, redis_decisions);
    if (v[0] == 0 && rl != NULL) {
        uint64_t retry_ns = (uint64_t)(v[2] > 0 ? v[2] : 0) * 1000;
        uint64_t ra = ceil_s(retry_ns);
        deny_headers(r, rl, retry_ns);
        INC(lw, rate_limited);
        gh_metrics_ratelimit(lw->w, rl, false);
        refuse(r, 429, "rate_limited", rl->name, rl->name_len, ra ? ra : 1);
        return RL_ANSWERED;
    }
    if (rl != NULL)
        pass_headers(r, rl, (uint64_t)(v[3] > 0 ? v[3] : 0),
                     (uint64_t)(v[4] > 0 ? v[4] : 0) * 1000);
    return RL_PASS;
}

static int rate_limits(struct gh_req *r, struct gh_limits_worker *lw,
                       const struct gh_limit_route *lr)
{
    if (r->lim_nrules == 0) return RL_PASS;
    if (r->lim_redis == 1) return apply_redis(r, lw);
    if (r->lim_redis == -1) {
        INC(lw, fallback_decisions);
        fallback_log(lw);
        return decide_local(r, lw, lr, true);
    }
    if (!r->snap->limits->redis) return decide_local(r, lw, lr, false);
    if (lw->redis != NULL && gh_redis_is_up(lw->redis) && start_redis(r, lw) == GH_OK)
        return RL_WAIT;
    /* Known to be down: decide now, without waiting for a timeout. */
    INC(lw, fallback_decisions);
    fallback_log(lw);
    return decide_local(r, lw, lr, true);
}

/* ---- Bulkheads ---------------------------------------------------------- */

static uint64_t slot_key(struct gh_limits_worker *lw, char kind, const struct gh_req *r,
                         bool tenant, bool route)
{
    char buf[300];
    size_t k = 0;
    buf[k++] = kind;
    if (route) {
        uint32_t idx = (uint32_t)(r->route->cfg - r->snap->cfg->routes);
        memcpy(buf + k, &idx, sizeof(idx));
        k += sizeof(idx);
    }
    if (tenant) k = append(buf, k, sizeof(buf), r->principal.tenant, strlen(r->principal.tenant));
    return gh_ltable_hash(lw->svc->rates, buf, k);
}

static void release_slots(struct gh_req *r, struct gh_limits_worker *lw)
{
    for (uint8_t i = 0; i < r->lim_nheld; i++)
        gh_inflight_release(lw->svc->inflight, r->lim_held[i]);
    if (r->lim_nheld && lw->wait_head != NULL && !lw->wait_armed) {
        /* Wake the queue from the loop, not from inside this request's end. */
        lw->wait_armed = true;
        event_active(lw->wait_ev, EV_TIMEOUT, 0);
    }
    r->lim_nheld = 0;
}

/* Takes every slot the request needs, or none. */
static bool take_slots(struct gh_req *r, struct gh_limits_worker *lw,
                       const struct gh_limit_route *lr, uint32_t tenant_max)
{
    struct slot_want {
        uint64_t key;
        uint32_t max;
    } want[3];
    int n = 0;
    bool authed = r->principal.kind != GH_PRINCIPAL_NONE;

    if (tenant_max && authed)
        want[n++] = (struct slot_want){slot_key(lw, 't', r, true, false), tenant_max};
    if (lr->max) want[n++] = (struct slot_want){slot_key(lw, 'r', r, false, true), lr->max};
    if (lr->per_tenant && authed)
        want[n++] = (struct slot_want){slot_key(lw, 'p', r, true, true), lr->per_tenant};
    for (int i = 0; i < n; i++) {
        if (!gh_inflight_acquire(lw->svc->inflight, want[i].key, want[i].max)) {
            release_slots(r, lw);
            return false;
        }
        r->lim_held[r->lim_nheld++] = want[i].key;
    }
    return true;
}

static void wait_unlink(struct gh_limits_worker *lw, struct gh_req *r)
{
    if (!r->lim_queued) return;
    if (r->lim_prev)
        r->lim_prev->lim_next = r->lim_next;
    else
        lw->wait_head = r->lim_next;
    if (r->lim_next)
        r->lim_next->lim_prev = r->lim_prev;
    else
        lw->wait_tail = r->lim_prev;
    r->lim_next = r->lim_prev = NULL;
    r->lim_queued = false;
}

static void wait_arm(struct gh_limits_worker *lw)
{
    struct timeval tv = {0, WAIT_POLL_MS * 1000};
    if (lw->wait_armed || lw->wait_head == NULL) return;
    lw->wait_armed = true;
    event_add(lw->wait_ev, &tv);
}

/* Waiters try again: at every local release, and every WAIT_POLL_MS for
 * slots freed by other workers. */
static void wait_cb(evutil_socket_t fd, short what, void *arg)
{
    struct gh_limits_worker *lw = arg;
    uint64_t now = gh_now_ns();
    (void)fd;
    (void)what;

    lw->wait_armed = false;
    for (struct gh_req *r = lw->wait_head, *next; r != NULL; r = next) {
        next = r->lim_next;
        if (now >= r->lim_deadline) {
            wait_unlink(lw, r);
            r->lim_step = 4; /* timed out */
            gh_stages_resume(r);
            continue;
        }
        {
            const struct gh_limits_policy *pol = r->snap->limits;
            const struct gh_limit_route *lr = &pol->routes[r->route->cfg - r->snap->cfg->routes];
            struct applicable ap;
            resolve(r, pol, &ap);
            if (!take_slots(r, lw, lr, ap.concurrency)) continue;
        }
        wait_unlink(lw, r);
        r->lim_step = 3; /* has its slots */
        gh_stages_resume(r);
    }
    wait_arm(lw);
}

/* ---- The stage ---------------------------------------------------------- */

int gh_limits_stage(struct gh_req *r)
{
    struct gh_limits_worker *lw = r->conn->worker->limits;
    const struct gh_limits_policy *pol = r->snap->limits;
    const struct gh_limit_route *lr;
    struct applicable ap;
    bool authed = r->principal.kind != GH_PRINCIPAL_NONE;
    bool resolved = false; /* <ap> is filled (not after a resume from Redis) */
    size_t tlen;
    int rc;

    if (pol == NULL || lw == NULL) return 1;
    lr = &pol->routes[r->route->cfg - r->snap->cfg->routes];
    if (!lr->any && !authed) return 1;

    switch (r->lim_step) {
    case 0: break;
    case 1: goto rates;
    case 3: goto admitted;
    case 4: goto queue_timeout;
    default: return 1;
    }

    resolve(r, pol, &ap);
    resolved = true;
    /* 1. Quotas (and usage counting) for every request with a tenant.
     * Tenant ids longer than the store's (JWT claims may be) are not metered. */
    tlen = authed ? strlen(r->principal.tenant) : 0;
    if (authed && lw->svc->store != NULL && tlen < GH_STORE_TENANT_ID_SIZE) {
        struct gh_quota_verdict v;
        if (!gh_quota_admit(lw->svc->quotas, r->principal.tenant, tlen, &ap.quotas,
                            (int64_t)gh_wall_ms(), &v)) {
            const char *metric = gh_quota_metric_name(v.metric, v.period);
            char name[48];
            int nl = snprintf(name, sizeof(name), "quota.%s", metric);
            set_headers(r, name, (size_t)nl, v.limit, v.window_s, 0, v.retry_after_s,
                        v.metric != GH_QUOTA_REQUESTS);
            INC(lw, quota_exceeded);
            refuse(r, 429, "quota_exceeded", name, (size_t)nl, v.retry_after_s);
            return 0;
        }
        r->lim_counted = true;
        INC(lw, quota_admitted);
    }
    /* 2. Rate limits. */
    collect_rules(r, lw, lr, &ap);
    r->lim_step = 1;
rates:
    rc = rate_limits(r, lw, lr);
    if (rc == RL_WAIT) return 2;
    if (rc == RL_ANSWERED) goto refused;
    /* A pass is a pass of every rule that applied (a refusal counted the
     * rule that refused, where it was decided). */
    for (uint8_t i = 0; i < r->lim_nrules; i++)
        gh_metrics_ratelimit(lw->w, r->lim_rules[i].rule, true);

    /* 3. Bulkheads. */
    if (!resolved) resolve(r, pol, &ap);
    if (!take_slots(r, lw, lr, ap.concurrency)) {
        if (lr->queue_timeout_ms == 0) goto busy;
        r->lim_deadline = gh_now_ns() + (uint64_t)lr->queue_timeout_ms * 1000000ull;
        r->lim_queued = true;
        r->lim_prev = lw->wait_tail;
        r->lim_next = NULL;
        if (lw->wait_tail)
            lw->wait_tail->lim_next = r;
        else
            lw->wait_head = r;
        lw->wait_tail = r;
        INC(lw, queued);
        r->lim_step = 2;
        wait_arm(lw);
        return 2;
    }
admitted:
    r->lim_step = 5;
    INC(lw, allowed);
    if (r->lim_nheld) INC(lw, bulkhead_admitted);
    return 1;
queue_timeout:
busy:
    INC(lw, concurrency_limited);
    r->rl_hdr_len = 0;
    refuse(r, 503, "concurrency_limited", NULL, 0, 1);
refused:
    if (r->lim_counted) {
        gh_quota_unadmit(lw->svc->quotas, r->principal.tenant, strlen(r->principal.tenant),
                         (int64_t)gh_wall_ms());
        r->lim_counted = false;
    }
    return 0;
}

void gh_limits_request_end(struct gh_worker *w, struct gh_req *r)
{
    struct gh_limits_worker *lw = w->limits;

    if (lw == NULL) return;
    if (r->lim_redis_out) {
        gh_redis_cancel(lw->redis, r->lim_redis_handle);
        r->lim_redis_out = false;
    }
    wait_unlink(lw, r);
    if (r->lim_nheld) release_slots(r, lw);
    if (r->lim_counted) {
        gh_quota_add_bytes(lw->svc->quotas, r->principal.tenant, strlen(r->principal.tenant),
                           r->bytes_in, r->bytes_out, (int64_t)gh_wall_ms());
        r->lim_counted = false;
    }
}
