/* Assembles the /metrics body (see metrics_scrape.h). */
#include "telemetry/metrics_scrape.h"

#include <event2/event.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "core/runtime.h"
#include "core/snapshot.h"
#include "http/tls.h"
#include "limits/limits.h"
#include "telemetry/accesslog.h"
#include "telemetry/procstat.h"
#include "telemetry/tracer.h"
#include "audit/audit.h"
#include "auth/service.h"
#include "hooks/dispatcher.h"
#include "core/version.h"
#include "store/store_postgres.h"

static const char *const method_names[GH_MM_N] = {"GET",   "HEAD",   "POST",    "PUT",
                                                  "PATCH", "DELETE", "OPTIONS", "OTHER"};
static const char *const class_names[GH_MC_N + 1] = {"1xx", "2xx", "3xx", "4xx", "5xx", "error"};
static const char *const uperr_names[GH_MUE_N] = {"refused",      "reset", "timeout",
                                                  "bad_response", "tls",   "busy"};
static const char *const auth_method_names[GH_MAUTH_N] = {"none", "api_key", "jwt", "token"};
static const char *const auth_result_names[GH_MAR_N] = {
    "success", "missing", "invalid", "expired", "revoked", "forbidden", "suspended", "unavailable"};

static struct gh_label L(const char *name, const char *value) {
    return (struct gh_label){name, gh_str_cstr(value)};
}

/* Sums counter <field> (an offset into struct gh_metrics_worker) over workers. */
static uint64_t
sum_at(struct gh_metrics_worker *const *ws, size_t nws, size_t off)
{
    uint64_t v = 0;
    for (size_t i = 0; i < nws; i++)
        if (ws[i]) v += gh_mc_get((const gh_mcounter *)((const char *)ws[i] + off));
    return v;
}
#define SUM(field) sum_at(ws, nws, offsetof(struct gh_metrics_worker, field))

static void sum_hist(struct gh_metrics_worker *const *ws, size_t nws, size_t off,
                     uint64_t buckets[GH_METRICS_NBUCKETS], uint64_t *sum_ns, uint64_t *count)
{
    *count = 0;
    for (unsigned b = 0; b < GH_METRICS_NBUCKETS; b++) {
        buckets[b] = sum_at(ws, nws, off + offsetof(struct gh_mhist, buckets) + b * 8);
        *count += buckets[b];
    }
    *sum_ns = sum_at(ws, nws, off + offsetof(struct gh_mhist, sum_ns));
}

static void write_routes(struct gh_expo *e, const struct gh_metrics *svc,
                         struct gh_metrics_worker *const *ws, size_t nws)
{
    uint32_t n = gh_metrics_names_count(&svc->routes);
    uint64_t buckets[GH_METRICS_NBUCKETS], sum_ns, count;

    gh_expo_family(e, "gatehouse_http_requests", GH_EXPO_COUNTER,
                   "Requests answered, by route, method and status class.");
    for (uint32_t s = 0; s < n; s++)
        for (unsigned m = 0; m < GH_MM_N; m++)
            for (unsigned c = 0; c < GH_MC_N; c++) {
                uint64_t v = SUM(routes[s].requests[m][c]);
                struct gh_label l[3] = {L("route", gh_metrics_names_get(&svc->routes, s)),
                                        L("method", method_names[m]), L("code", class_names[c])};
                if (v) gh_expo_counter(e, l, 3, v);
            }

    gh_expo_family(e, "gatehouse_http_request_duration_seconds", GH_EXPO_HISTOGRAM,
                   "Request head received to last response byte queued.");
    for (uint32_t s = 0; s < n; s++) {
        struct gh_label l = L("route", gh_metrics_names_get(&svc->routes, s));
        sum_hist(ws, nws, offsetof(struct gh_metrics_worker, routes[s].duration), buckets, &sum_ns,
                 &count);
        if (count) gh_expo_histogram(e, &l, 1, buckets, sum_ns);
    }

    gh_expo_family(e, "gatehouse_http_requests_in_flight", GH_EXPO_GAUGE,
                   "Requests being served now.");
    {
        uint64_t started = SUM(req_started), ended = SUM(req_ended);
        /* Read in this order, a request that ends meanwhile cannot make
         * the gauge negative; clamp anyway. */
        gh_expo_gauge_u64(e, NULL, 0, started > ended ? started - ended : 0);
    }

    gh_expo_family(e, "gatehouse_webhook_inbound", GH_EXPO_COUNTER,
                   "Inbound webhook signature checks, by route and result.");
    for (uint32_t s = 0; s < n; s++)
        for (unsigned k = 0; k < GH_MWH_N; k++) {
            static const char *const names[GH_MWH_N] = {
                "ok",       "missing_signature", "invalid_signature",       "stale_timestamp",
                "replayed", "replay_store_full", "replay_store_unavailable"};
            struct gh_label l[2] = {L("route", gh_metrics_names_get(&svc->routes, s)),
                                    L("result", names[k])};
            uint64_t v = SUM(routes[s].webhook[k]);
            if (v) gh_expo_counter(e, l, 2, v);
        }

    gh_expo_family(e, "gatehouse_webhook_replay_decisions", GH_EXPO_COUNTER,
                   "Inbound webhook replay decisions, by backend and result.");
    for (unsigned b = 0; b < GH_MRP_BACKEND_N; b++)
        for (unsigned k = 0; k < GH_MRP_RESULT_N; k++) {
            static const char *const backends[GH_MRP_BACKEND_N] = {"redis", "local", "fallback"};
            static const char *const results[GH_MRP_RESULT_N] = {"new", "seen", "full",
                                                                 "unavailable"};
            struct gh_label l[2] = {L("backend", backends[b]), L("result", results[k])};
            uint64_t v = SUM(replay[b][k]);
            if (v) gh_expo_counter(e, l, 2, v);
        }

    gh_expo_family(e, "gatehouse_idempotency", GH_EXPO_COUNTER,
                   "Idempotency-Key decisions and outcomes, by result.");
    for (unsigned k = 0; k < GH_MIDEM_N; k++) {
        static const char *const results[GH_MIDEM_N] = {
            "new",        "replayed",    "in_progress", "mismatch", "invalid_key", "key_required",
            "store_full", "unavailable", "fallback",    "stored",   "released"};
        struct gh_label l = L("result", results[k]);
        uint64_t v = SUM(idem[k]);
        if (v) gh_expo_counter(e, &l, 1, v);
    }

    gh_expo_family(e, "gatehouse_http_request_bytes", GH_EXPO_COUNTER,
                   "Request bytes from clients (head and body).");
    for (uint32_t s = 0; s < n; s++) {
        struct gh_label l = L("route", gh_metrics_names_get(&svc->routes, s));
        uint64_t v = SUM(routes[s].bytes_in);
        if (v) gh_expo_counter(e, &l, 1, v);
    }
    gh_expo_family(e, "gatehouse_http_response_bytes", GH_EXPO_COUNTER,
                   "Response bytes to clients (head and body).");
    for (uint32_t s = 0; s < n; s++) {
        struct gh_label l = L("route", gh_metrics_names_get(&svc->routes, s));
        uint64_t v = SUM(routes[s].bytes_out);
        if (v) gh_expo_counter(e, &l, 1, v);
    }
}

static void write_connections(struct gh_expo *e, struct gh_metrics_worker *const *ws, size_t nws)
{
    uint64_t acc, closed;
    struct gh_label l;

    gh_expo_family(e, "gatehouse_http_connections_accepted", GH_EXPO_COUNTER,
                   "Client connections accepted.");
    closed = SUM(conns_closed);
    acc = SUM(conns_accepted);
    gh_expo_counter(e, NULL, 0, acc);
    gh_expo_family(e, "gatehouse_http_connections_open", GH_EXPO_GAUGE,
                   "Client connections open now.");
    gh_expo_gauge_u64(e, NULL, 0, acc > closed ? acc - closed : 0);
    gh_expo_family(e, "gatehouse_tls_handshakes", GH_EXPO_COUNTER,
                   "TLS handshakes with clients, by result.");
    l = L("result", "success");
    gh_expo_counter(e, &l, 1, SUM(tls_ok));
    l = L("result", "failure");
    gh_expo_counter(e, &l, 1, SUM(tls_failed));
}

static void write_upstreams(struct gh_expo *e, const struct gh_metrics *svc,
                            struct gh_metrics_worker *const *ws, size_t nws)
{
    uint32_t n = gh_metrics_names_count(&svc->upstreams);
    uint64_t buckets[GH_METRICS_NBUCKETS], sum_ns, count;

    gh_expo_family(e, "gatehouse_upstream_requests", GH_EXPO_COUNTER,
                   "Exchanges with an upstream by the class of its answer, or error when none "
                   "came.");
    for (uint32_t s = 0; s < n; s++)
        for (unsigned c = 0; c <= GH_MC_N; c++) {
            struct gh_label l[2] = {L("upstream", gh_metrics_names_get(&svc->upstreams, s)),
                                    L("code", class_names[c])};
            uint64_t v = SUM(upstreams[s].requests[c]);
            if (v) gh_expo_counter(e, l, 2, v);
        }
    gh_expo_family(e, "gatehouse_upstream_duration_seconds", GH_EXPO_HISTOGRAM,
                   "First upstream attempt to the upstream's response head.");
    for (uint32_t s = 0; s < n; s++) {
        struct gh_label l = L("upstream", gh_metrics_names_get(&svc->upstreams, s));
        sum_hist(ws, nws, offsetof(struct gh_metrics_worker, upstreams[s].duration), buckets,
                 &sum_ns, &count);
        if (count) gh_expo_histogram(e, &l, 1, buckets, sum_ns);
    }
    gh_expo_family(e, "gatehouse_upstream_errors", GH_EXPO_COUNTER,
                   "Failed upstream attempts (retried ones too), by kind.");
    for (uint32_t s = 0; s < n; s++)
        for (unsigned k = 0; k < GH_MUE_N; k++) {
            struct gh_label l[2] = {L("upstream", gh_metrics_names_get(&svc->upstreams, s)),
                                    L("kind", uperr_names[k])};
            uint64_t v = SUM(upstreams[s].errors[k]);
            if (v) gh_expo_counter(e, l, 2, v);
        }
    gh_expo_family(e, "gatehouse_upstream_connections", GH_EXPO_COUNTER,
                   "Connections used for an upstream attempt: new, or reused from the pool.");
    for (uint32_t s = 0; s < n; s++) {
        struct gh_label l[2] = {L("upstream", gh_metrics_names_get(&svc->upstreams, s)),
                                L("reused", "false")};
        uint64_t fresh = SUM(upstreams[s].conns_new), reused = SUM(upstreams[s].conns_reused);
        if (fresh) gh_expo_counter(e, l, 2, fresh);
        l[1] = L("reused", "true");
        if (reused) gh_expo_counter(e, l, 2, reused);
    }
    gh_expo_family(e, "gatehouse_upstream_pool_idle_connections", GH_EXPO_GAUGE,
                   "Idle keep-alive connections in the upstream's pools now.");
    for (uint32_t s = 0; s < n; s++) {
        struct gh_label l = L("upstream", gh_metrics_names_get(&svc->upstreams, s));
        uint64_t v = SUM(upstreams[s].pool_idle);
        if (v || s != GH_METRICS_SLOT_OTHER) gh_expo_gauge_u64(e, &l, 1, v);
    }
}

static void write_auth_and_rules(struct gh_expo *e, const struct gh_metrics *svc,
                                 struct gh_metrics_worker *const *ws, size_t nws)
{
    uint32_t n = gh_metrics_names_count(&svc->rules);

    gh_expo_family(e, "gatehouse_auth_requests", GH_EXPO_COUNTER,
                   "Authentication decisions on routes that ask for it, by method and result.");
    for (unsigned m = 0; m < GH_MAUTH_N; m++)
        for (unsigned r = 0; r < GH_MAR_N; r++) {
            struct gh_label l[2] = {L("method", auth_method_names[m]),
                                    L("result", auth_result_names[r])};
            uint64_t v = SUM(auth[m][r]);
            if (v) gh_expo_counter(e, l, 2, v);
        }
    gh_expo_family(e, "gatehouse_ratelimit_decisions", GH_EXPO_COUNTER,
                   "Rate-limit rule decisions, by rule and result.");
    for (uint32_t s = 0; s < n; s++) {
        struct gh_label l[2] = {L("rule", gh_metrics_names_get(&svc->rules, s)),
                                L("result", "allowed")};
        uint64_t a = SUM(rules[s].allowed), lim = SUM(rules[s].limited);
        if (a) gh_expo_counter(e, l, 2, a);
        l[1] = L("result", "limited");
        if (lim) gh_expo_counter(e, l, 2, lim);
    }
}

static void write_tenants(struct gh_expo *e, const struct gh_mtenant_view *t)
{
    gh_expo_family(e, "gatehouse_tenant_requests", GH_EXPO_COUNTER,
                   "Requests by authenticated tenant (the top N; the rest are other).");
    for (size_t i = 0; t && i <= t->nrows; i++) {
        const char *id = i < t->nrows ? t->rows[i].id : "other";
        const uint64_t *codes = i < t->nrows ? t->rows[i].codes : t->other;
        for (unsigned c = 0; c < GH_MC_N; c++) {
            struct gh_label l[2] = {L("tenant", id), L("code", class_names[c])};
            if (codes[c]) gh_expo_counter(e, l, 2, codes[c]);
        }
    }
}

void gh_metrics_write_workers(struct gh_expo *e, const struct gh_metrics *svc,
                              struct gh_metrics_worker *const *ws, size_t nws,
                              const struct gh_mtenant_view *tenants)
{
    write_routes(e, svc, ws, nws);
    write_connections(e, ws, nws);
    write_upstreams(e, svc, ws, nws);
    write_auth_and_rules(e, svc, ws, nws);
    write_tenants(e, tenants);
}

/* ---- Families read from the runtime -------------------------------------- */

static void write_cert_expiry(struct gh_expo *e, const struct gh_snapshot *snap)
{
    gh_expo_family(e, "gatehouse_tls_certificate_expiry_timestamp_seconds", GH_EXPO_GAUGE,
                   "The listener certificate's notAfter (the soonest of its certificates), "
                   "Unix time.");
    for (size_t i = 0; i < snap->cfg->nlistens; i++) {
        struct gh_label l = L("listener", snap->cfg->listens[i].addr.text);
        if (snap->listen_tls[i]) gh_expo_gauge_i64(e, &l, 1, snap->listen_tls[i]->not_after);
    }
}

static void write_limits(struct gh_expo *e, struct gh_runtime *rt, const struct gh_snapshot *snap,
                         struct gh_metrics_worker *const *ws, size_t nws,
                         const struct gh_mtenant_view *tenants)
{
    uint64_t q_ok = 0, q_no = 0, c_ok = 0, c_q = 0, c_no = 0, fb = 0;
    bool all_up = true;
    struct gh_label l;

    for (int i = 0; i < rt->nworkers; i++) {
        const struct gh_limits_stats *st =
            rt->workers[i].limits ? gh_limits_worker_stats(rt->workers[i].limits) : NULL;
        if (st == NULL) continue;
        q_ok += atomic_load_explicit(&st->quota_admitted, memory_order_relaxed);
        q_no += atomic_load_explicit(&st->quota_exceeded, memory_order_relaxed);
        c_ok += atomic_load_explicit(&st->bulkhead_admitted, memory_order_relaxed);
        c_q += atomic_load_explicit(&st->queued, memory_order_relaxed);
        c_no += atomic_load_explicit(&st->concurrency_limited, memory_order_relaxed);
        fb += atomic_load_explicit(&st->fallback_decisions, memory_order_relaxed);
    }
    for (size_t i = 0; i < nws; i++)
        if (ws[i] && gh_mc_get(&ws[i]->redis_up) != 1) all_up = false;

    gh_expo_family(e, "gatehouse_quota_decisions", GH_EXPO_COUNTER, "Quota admissions, by result.");
    l = L("result", "allowed");
    gh_expo_counter(e, &l, 1, q_ok);
    l = L("result", "exceeded");
    gh_expo_counter(e, &l, 1, q_no);
    gh_expo_family(e, "gatehouse_concurrency_decisions", GH_EXPO_COUNTER,
                   "Bulkhead decisions, by result.");
    l = L("result", "allowed");
    gh_expo_counter(e, &l, 1, c_ok);
    l = L("result", "queued");
    gh_expo_counter(e, &l, 1, c_q);
    l = L("result", "rejected");
    gh_expo_counter(e, &l, 1, c_no);
    if (snap->cfg->limits.redis_backend) {
        gh_expo_family(e, "gatehouse_ratelimit_redis_up", GH_EXPO_GAUGE,
                       "1 when every worker's Redis connection is up, else 0.");
        gh_expo_gauge_u64(e, NULL, 0, all_up ? 1 : 0);
    }
    gh_expo_family(e, "gatehouse_ratelimit_fallback_decisions", GH_EXPO_COUNTER,
                   "Decisions taken without Redis because it was unavailable.");
    gh_expo_counter(e, NULL, 0, fb);

    if (rt->limits) {
        uint64_t del[2], failed;
        static const char *const tables[] = {"usage", "limit_events"};
        gh_limits_service_retention(rt->limits, &del[0], &del[1], &failed);
        gh_expo_family(e, "gatehouse_usage_retention_deleted", GH_EXPO_COUNTER,
                       "Rows usage retention deleted from the store, by table (periods and "
                       "events older than limits.usage_retention).");
        for (size_t i = 0; i < 2; i++) {
            l = L("table", tables[i]);
            gh_expo_counter(e, &l, 1, del[i]);
        }
        gh_expo_family(e, "gatehouse_usage_retention_failures", GH_EXPO_COUNTER,
                       "Usage retention batches the store refused (tried again a minute later).");
        gh_expo_counter(e, NULL, 0, failed);
    }

    gh_expo_family(e, "gatehouse_tenant_quota_usage_ratio", GH_EXPO_GAUGE,
                   "Quota used / allowed for the current period, top tenants only.");
    for (size_t i = 0; rt->limits && tenants && i < tenants->nrows; i++) {
        static const char *const qn[GH_QUOTA_NMETRICS] = {"requests", "request_bytes",
                                                          "response_bytes"};
        static const char *const pn[GH_QUOTA_NPERIODS] = {"day", "month"};
        uint64_t used[GH_QUOTA_NMETRICS][GH_QUOTA_NPERIODS];
        uint64_t lim[GH_QUOTA_NMETRICS][GH_QUOTA_NPERIODS];
        if (!gh_limits_service_quota_usage(rt->limits, tenants->rows[i].id, used, lim)) continue;
        for (int m = 0; m < GH_QUOTA_NMETRICS; m++)
            for (int p = 0; p < GH_QUOTA_NPERIODS; p++) {
                struct gh_label ql[3] = {L("tenant", tenants->rows[i].id), L("quota", qn[m]),
                                         L("period", pn[p])};
                if (lim[m][p]) gh_expo_gauge_f64(e, ql, 3, (double)used[m][p] / (double)lim[m][p]);
            }
    }
}

/* The exporter keeps its own counts (src/telemetry/tracer.c). */
static void write_tracing(struct gh_expo *e, struct gh_runtime *rt)
{
    struct gh_tracer_counts t;
    struct gh_label l;

    gh_tracer_counts(rt->tracer, &t);
    gh_expo_family(e, "gatehouse_trace_spans_exported", GH_EXPO_COUNTER,
                   "Spans accepted by the OTLP endpoint.");
    gh_expo_counter(e, NULL, 0, t.spans_exported);
    gh_expo_family(e, "gatehouse_trace_spans_dropped", GH_EXPO_COUNTER, "Spans lost, by reason.");
    l = L("reason", "queue_full");
    gh_expo_counter(e, &l, 1, t.spans_dropped_queue);
    l = L("reason", "export_failed");
    gh_expo_counter(e, &l, 1, t.spans_dropped_export);
    gh_expo_family(e, "gatehouse_trace_export_requests", GH_EXPO_COUNTER,
                   "OTLP export calls, by result.");
    l = L("result", "success");
    gh_expo_counter(e, &l, 1, t.exports_success);
    l = L("result", "retry");
    gh_expo_counter(e, &l, 1, t.exports_retry);
    l = L("result", "failure");
    gh_expo_counter(e, &l, 1, t.exports_failure);
}

/* The audit writer's counts (src/audit/writer.c); nothing when audit is off. */
static void write_audit(struct gh_expo *e, struct gh_runtime *rt)
{
    struct gh_audit_stats a;
    struct gh_label l;

    if (rt->audit == NULL) return;
    gh_audit_stats(rt->audit, &a);
    gh_expo_family(e, "gatehouse_audit_events", GH_EXPO_COUNTER,
                   "Audit events the writer committed or could not store, by result.");
    l = L("result", "written");
    gh_expo_counter(e, &l, 1, a.events_written);
    l = L("result", "failed");
    gh_expo_counter(e, &l, 1, a.events_failed);
    gh_expo_family(e, "gatehouse_audit_queue_depth", GH_EXPO_GAUGE,
                   "Audit events waiting for the writer (worker rings and submit queue).");
    gh_expo_gauge_u64(e, NULL, 0, a.queue_depth);
    gh_expo_family(e, "gatehouse_audit_batch_size", GH_EXPO_SUMMARY,
                   "Events per audit commit (sum and count).");
    gh_expo_summary(e, NULL, 0, a.batch_events_sum, a.batches);
    gh_expo_family(e, "gatehouse_audit_commit_duration_seconds", GH_EXPO_HISTOGRAM,
                   "Time to commit one audit batch (one fsync).");
    gh_expo_histogram(e, NULL, 0, a.commit_buckets, a.commit_ns_sum);
    gh_expo_family(e, "gatehouse_audit_checkpoints", GH_EXPO_COUNTER,
                   "Signed audit checkpoints written.");
    gh_expo_counter(e, NULL, 0, a.checkpoints);
    gh_expo_family(e, "gatehouse_audit_producer_waits", GH_EXPO_COUNTER,
                   "Times a producer waited because the audit queue was full.");
    gh_expo_counter(e, NULL, 0, a.producer_waits);
    gh_expo_family(e, "gatehouse_audit_batches_chained_ahead", GH_EXPO_COUNTER,
                   "Audit batches chained while the batch before was being stored.");
    gh_expo_counter(e, NULL, 0, a.chained_ahead);
    gh_expo_family(e, "gatehouse_audit_batches_queued_ahead", GH_EXPO_COUNTER,
                   "Full audit batches queued behind the batch being stored.");
    gh_expo_counter(e, NULL, 0, a.queued_ahead);
    gh_expo_family(e, "gatehouse_audit_oldest_pending_seconds", GH_EXPO_GAUGE,
                   "Age of the oldest audit event being written; 0 when none.");
    gh_expo_gauge_seconds(e, NULL, 0, (uint64_t)a.oldest_pending_us * 1000ull);
}

/* The webhook dispatcher's counts (src/hooks/dispatcher.c). */
static void write_webhooks(struct gh_expo *e, struct gh_runtime *rt)
{
    static const char *const results[] = {"succeeded", "retried", "failed"};
    static const char *const outcomes[] = {"success", "http_error", "network_error", "timeout",
                                           "blocked"};
    static const char *const looks[] = {"deliveries", "none", "error"};
    struct gh_hooks_stats h;
    struct gh_label l;

    if (rt->hooks == NULL) return;
    gh_hooks_dispatcher_stats(rt->hooks, &h);
    const uint64_t by_result[] = {h.delivered, h.retried, h.failed};
    const uint64_t by_outcome[] = {h.attempts_ok, h.attempts_http_error, h.attempts_network_error,
                                   h.attempts_timeout, h.attempts_blocked};
    const uint64_t by_look[] = {h.looks_found, h.looks_empty, h.looks_failed};
    gh_expo_family(e, "gatehouse_webhook_deliveries", GH_EXPO_COUNTER,
                   "Webhook delivery attempts by what they led to: the delivery succeeded, "
                   "was scheduled again, or failed for good.");
    for (size_t i = 0; i < 3; i++) {
        l = L("result", results[i]);
        gh_expo_counter(e, &l, 1, by_result[i]);
    }
    gh_expo_family(e, "gatehouse_webhook_attempts", GH_EXPO_COUNTER,
                   "Webhook delivery attempts by outcome.");
    for (size_t i = 0; i < 5; i++) {
        l = L("outcome", outcomes[i]);
        gh_expo_counter(e, &l, 1, by_outcome[i]);
    }
    gh_expo_family(e, "gatehouse_webhook_queue_looks", GH_EXPO_COUNTER,
                   "Looks of the webhook dispatcher at the store's queue, by what they found.");
    for (size_t i = 0; i < 3; i++) {
        l = L("result", looks[i]);
        gh_expo_counter(e, &l, 1, by_look[i]);
    }
    gh_expo_family(e, "gatehouse_webhook_pending", GH_EXPO_GAUGE,
                   "Webhook deliveries waiting in the store's queue (read every second).");
    gh_expo_gauge_u64(e, NULL, 0, h.pending);
    gh_expo_family(e, "gatehouse_webhook_in_flight", GH_EXPO_GAUGE,
                   "Webhook deliveries being posted now.");
    gh_expo_gauge_u64(e, NULL, 0, h.in_flight);
    gh_expo_family(e, "gatehouse_webhook_endpoints_disabled", GH_EXPO_COUNTER,
                   "Webhook endpoints disabled after failing for webhooks.disable_after.");
    gh_expo_counter(e, NULL, 0, h.disabled_endpoints);
    static const char *const tables[] = {"messages", "deliveries", "attempts"};
    const uint64_t by_table[] = {h.purged_messages, h.purged_deliveries, h.purged_attempts};
    gh_expo_family(e, "gatehouse_webhook_retention_deleted", GH_EXPO_COUNTER,
                   "Rows webhook retention deleted from the store, by table "
                   "(messages older than webhooks.retention, with their deliveries and "
                   "attempts).");
    for (size_t i = 0; i < 3; i++) {
        l = L("table", tables[i]);
        gh_expo_counter(e, &l, 1, by_table[i]);
    }
    gh_expo_family(e, "gatehouse_webhook_retention_undelivered", GH_EXPO_COUNTER,
                   "Deliveries webhook retention deleted while still pending (never delivered).");
    gh_expo_counter(e, NULL, 0, h.purged_undelivered);
    gh_expo_family(e, "gatehouse_webhook_retention_failures", GH_EXPO_COUNTER,
                   "Webhook retention steps the store refused (the pass stops; the next one "
                   "goes on).");
    gh_expo_counter(e, NULL, 0, h.purge_failures);
    gh_expo_family(e, "gatehouse_webhook_attempt_duration_seconds", GH_EXPO_HISTOGRAM,
                   "Time of one webhook delivery attempt, from its start to the answer or "
                   "the error.");
    gh_expo_histogram(e, NULL, 0, h.latency_buckets, h.latency_sum_ns);
}

/* The store's change push (the auth service's subscription); nothing when
 * the engine pushes none (SQLite). */
static void write_store_changes(struct gh_expo *e, struct gh_runtime *rt)
{
    struct gh_store_watch_stats w;

    gh_auth_service_change_stats(rt->auth, &w);
    if (!w.active) return;
    gh_expo_family(e, "gatehouse_store_change_notifications", GH_EXPO_COUNTER,
                   "Change notifications received from the store (LISTEN/NOTIFY).");
    gh_expo_counter(e, NULL, 0, w.notifications);
    gh_expo_family(e, "gatehouse_store_change_listener_connected", GH_EXPO_GAUGE,
                   "1 while the store's change listener is connected, else 0.");
    gh_expo_gauge_u64(e, NULL, 0, w.connected ? 1 : 0);
}

/* The SQLite store's WAL and its checkpoints; nothing for PostgreSQL,
 * which runs its own. */
static void write_store_wal(struct gh_expo *e, struct gh_runtime *rt)
{
    struct gh_store_wal_stats w;
    struct gh_label l;

    gh_store_wal_stats(rt->store, &w);
    if (!w.supported) return;
    gh_expo_family(e, "gatehouse_store_wal_frames", GH_EXPO_GAUGE,
                   "Pages in the SQLite write-ahead log after the last commit.");
    gh_expo_gauge_u64(e, NULL, 0, w.wal_frames);
    gh_expo_family(e, "gatehouse_store_wal_checkpoints", GH_EXPO_COUNTER,
                   "WAL checkpoints run by the store's checkpoint thread (by=background) and by "
                   "the writer after a commit (by=writer).");
    l = L("by", "background");
    gh_expo_counter(e, &l, 1, w.background);
    l = L("by", "writer");
    gh_expo_counter(e, &l, 1, w.inline_);
    gh_expo_family(e, "gatehouse_store_wal_checkpoint_errors", GH_EXPO_COUNTER,
                   "WAL checkpoints that failed (an I/O error, a full disk); the WAL grows "
                   "until one succeeds.");
    gh_expo_counter(e, NULL, 0, w.failed);
}

/* The PostgreSQL store's audit appends by way (pg_audit.c): one script of
 * two round trips, or the long way; nothing for SQLite. */
static void write_store_audit_ways(struct gh_expo *e, struct gh_runtime *rt)
{
    uint64_t scripted, long_way;
    struct gh_label l;

    if (strcmp(gh_store_engine(rt->store), "postgres") != 0) return;
    gh_store_postgres_audit_ways(rt->store, &scripted, &long_way);
    gh_expo_family(e, "gatehouse_store_audit_appends", GH_EXPO_COUNTER,
                   "Audit appends into PostgreSQL, by way: one script of two round trips "
                   "(way=script), or statement by statement (way=long).");
    l = L("way", "script");
    gh_expo_counter(e, &l, 1, scripted);
    l = L("way", "long");
    gh_expo_counter(e, &l, 1, long_way);
}

static void write_gateway(struct gh_expo *e, struct gh_runtime *rt, const struct gh_snapshot *snap)
{
    static const char hex[] = "0123456789abcdef";
    char sha[65];
    struct gh_label l[3];

    gh_expo_family(e, "gatehouse_build", GH_EXPO_INFO, "The gateway's build; always 1.");
    l[0] = L("version", gh_version());
    l[1] = L("openssl", OpenSSL_version(OPENSSL_VERSION_STRING));
    l[2] = L("libevent", event_get_version());
    gh_expo_info(e, l, 3);

    /* Which node answered the scrape: join its series with
     * `* on (instance) group_left(node) gatehouse_node_info`. */
    gh_expo_family(e, "gatehouse_node", GH_EXPO_INFO,
                   "The node id (config node.id) of this gateway; always 1.");
    l[0] = L("node", rt->node_id);
    gh_expo_info(e, l, 1);

    for (int i = 0; i < 32; i++) {
        sha[2 * i] = hex[snap->cfg->sha256[i] >> 4];
        sha[2 * i + 1] = hex[snap->cfg->sha256[i] & 15];
    }
    sha[64] = '\0';
    gh_expo_family(e, "gatehouse_config", GH_EXPO_INFO, "The loaded config file's SHA-256.");
    l[0] = L("sha256", sha);
    gh_expo_info(e, l, 1);

    gh_expo_family(e, "gatehouse_config_reloads", GH_EXPO_COUNTER,
                   "Config reloads (SIGHUP), by result.");
    l[0] = L("result", "success");
    gh_expo_counter(e, l, 1, atomic_load(&rt->reloads_ok));
    l[0] = L("result", "failure");
    gh_expo_counter(e, l, 1, atomic_load(&rt->reloads_failed));
    gh_expo_family(e, "gatehouse_config_last_reload_success_timestamp_seconds", GH_EXPO_GAUGE,
                   "Unix time of the last good config load.");
    gh_expo_gauge_seconds(e, NULL, 0, atomic_load(&rt->metrics->last_load_ok_ms) * 1000000ull);
    gh_expo_family(e, "gatehouse_workers", GH_EXPO_GAUGE, "Worker threads.");
    gh_expo_gauge_u64(e, NULL, 0, (uint64_t)rt->nworkers);
    gh_expo_family(e, "gatehouse_access_log_dropped", GH_EXPO_COUNTER,
                   "Access-log buffers dropped because the disk could not keep up.");
    gh_expo_counter(e, NULL, 0, gh_accesslog_dropped(rt->alog));
}

static void write_process(struct gh_expo *e)
{
    struct gh_procstat ps;

    if (!gh_procstat_read(&ps)) return;
    gh_expo_family(e, "process_cpu_seconds", GH_EXPO_COUNTER, "User and system CPU time.");
    gh_expo_counter_seconds(e, NULL, 0, ps.cpu_ns);
    gh_expo_family(e, "process_resident_memory_bytes", GH_EXPO_GAUGE, "Resident memory size.");
    gh_expo_gauge_u64(e, NULL, 0, ps.rss_bytes);
    gh_expo_family(e, "process_virtual_memory_bytes", GH_EXPO_GAUGE, "Virtual memory size.");
    gh_expo_gauge_u64(e, NULL, 0, ps.vsize_bytes);
    gh_expo_family(e, "process_open_fds", GH_EXPO_GAUGE, "Open file descriptors.");
    gh_expo_gauge_u64(e, NULL, 0, ps.open_fds);
    gh_expo_family(e, "process_max_fds", GH_EXPO_GAUGE, "The file descriptor limit.");
    gh_expo_gauge_u64(e, NULL, 0, ps.max_fds);
    gh_expo_family(e, "process_threads", GH_EXPO_GAUGE, "Threads of the process.");
    gh_expo_gauge_u64(e, NULL, 0, ps.threads);
    gh_expo_family(e, "process_start_time_seconds", GH_EXPO_GAUGE, "Start time, Unix time.");
    gh_expo_gauge_seconds(e, NULL, 0, ps.start_time_ms * 1000000ull);
}

int gh_metrics_scrape(struct gh_runtime *rt, const struct gh_snapshot *snap, struct gh_expo *e)
{
    struct gh_metrics *svc = rt->metrics;
    struct gh_metrics_worker **ws;
    struct gh_mtenants **tables;
    struct gh_mtenant_view tenants;
    size_t nws = (size_t)rt->nworkers;
    int rc;

    ws = calloc(nws ? nws : 1, sizeof(*ws));
    tables = calloc(nws ? nws : 1, sizeof(*tables));
    if (ws == NULL || tables == NULL) {
        free(ws);
        free(tables);
        return GH_ERROR;
    }
    for (size_t i = 0; i < nws; i++) {
        ws[i] = rt->workers[i].metrics;
        tables[i] = ws[i] ? ws[i]->tenants : NULL;
    }
    pthread_mutex_lock(&svc->scrape_mu);
    rc = gh_mtenants_collect(tables, nws, &svc->sticky, snap->cfg->metrics.top_tenants, &tenants);
    if (rc == GH_OK) {
        gh_metrics_write_workers(e, svc, ws, nws, &tenants);
        write_cert_expiry(e, snap);
        write_limits(e, rt, snap, ws, nws, &tenants);
        write_tracing(e, rt);
        write_audit(e, rt);
        write_webhooks(e, rt);
        write_store_changes(e, rt);
        write_store_wal(e, rt);
        write_store_audit_ways(e, rt);
        write_gateway(e, rt, snap);
        write_process(e);
        gh_expo_finish(e);
        free(tenants.rows);
    }
    pthread_mutex_unlock(&svc->scrape_mu);
    free(ws);
    free(tables);
    return rc == GH_OK && !e->failed ? GH_OK : GH_ERROR;
}
