/* Metrics storage: per-worker counters and histograms, the runtime's name
 * registry that keeps routes, upstreams and rate-limit rules in the same
 * slot across reloads, and the hooks that the request path calls.
 *
 * Every counter has one writer, its worker thread: it is an _Atomic
 * uint64_t updated with a relaxed load and a relaxed store (no locked
 * read-modify-write), and the scraper (the admin worker) reads it relaxed
 * and sums the workers. The hooks take no lock, allocate nothing and make
 * no system call; histogram observations are in nanoseconds.
 *
 * Names map to slots once per snapshot (gh_metrics_bind, on the main
 * thread, before the snapshot is published): a name keeps its slot until
 * restart, so a reload never resets a counter. The registries are bounded;
 * names past the bound share the slot "other". Unrouted requests count
 * under route "none". docs/metrics.md is the contract of what is exported. */
#ifndef GH_TELEMETRY_METRICS_H
#define GH_TELEMETRY_METRICS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/err.h"
#include "core/str.h"

struct gh_worker;
struct gh_req;
struct gh_snapshot;
struct gh_limit_rule;

/* Registry bounds (slots, "other" and "none" included). */
#define GH_METRICS_MAX_ROUTES    1024
#define GH_METRICS_MAX_UPSTREAMS 256
#define GH_METRICS_MAX_RULES     256

/* Fixed slots. Routes: 0 "none" (unrouted), 1 "other"; upstreams and rules: 0 "other". */
#define GH_METRICS_ROUTE_NONE  0
#define GH_METRICS_ROUTE_OTHER 1
#define GH_METRICS_SLOT_OTHER  0

/* Histogram buckets (seconds): 0.0001 ... 10, then +Inf. */
#define GH_METRICS_NBUCKETS 17
extern const uint64_t gh_metrics_bucket_ns[GH_METRICS_NBUCKETS - 1];

enum {
    GH_MM_GET,
    GH_MM_HEAD,
    GH_MM_POST,
    GH_MM_PUT,
    GH_MM_PATCH,
    GH_MM_DELETE,
    GH_MM_OPTIONS,
    GH_MM_OTHER,
    GH_MM_N
};
enum { GH_MC_1XX, GH_MC_2XX, GH_MC_3XX, GH_MC_4XX, GH_MC_5XX, GH_MC_N };
/* Upstream answers: the five classes, then "error" (no response head). */
#define GH_MC_ERROR GH_MC_N
/* Upstream error kinds, in enum gh_up_error order minus NONE. */
enum {
    GH_MUE_REFUSED,
    GH_MUE_RESET,
    GH_MUE_TIMEOUT,
    GH_MUE_BAD_RESPONSE,
    GH_MUE_TLS,
    GH_MUE_BUSY,
    GH_MUE_N
};
/* Auth methods: NONE when no credential came (zero: the request's default). */
enum { GH_MAUTH_NONE, GH_MAUTH_API_KEY, GH_MAUTH_JWT, GH_MAUTH_TOKEN, GH_MAUTH_N };
enum {
    GH_MAR_SUCCESS,
    GH_MAR_MISSING,
    GH_MAR_INVALID,
    GH_MAR_EXPIRED,
    GH_MAR_REVOKED,
    GH_MAR_FORBIDDEN,
    GH_MAR_SUSPENDED,
    GH_MAR_UNAVAILABLE,
    GH_MAR_N
};

/* A single-writer counter. */
typedef _Atomic uint64_t gh_mcounter;

static inline void gh_mc_add(gh_mcounter *c, uint64_t n)
{
    /* Single writer: no locked instruction; readers see old or new value. */
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}
static inline uint64_t gh_mc_get(const gh_mcounter *c)
{
    return atomic_load_explicit((gh_mcounter *)c, memory_order_relaxed);
}

struct gh_mhist {
    gh_mcounter buckets[GH_METRICS_NBUCKETS]; /* per bucket, not cumulative; last is +Inf */
    gh_mcounter sum_ns;
};

/* The bucket of <ns>: the first whose bound is >= ns (le is inclusive). */
unsigned gh_metrics_bucket(uint64_t ns);
static inline void gh_mhist_observe(struct gh_mhist *h, uint64_t ns)
{
    gh_mc_add(&h->buckets[gh_metrics_bucket(ns)], 1);
    gh_mc_add(&h->sum_ns, ns);
}

/* Inbound webhook checks (src/hooks/stage.c), by result. */
enum {
    GH_MWH_OK,
    GH_MWH_MISSING,
    GH_MWH_INVALID,
    GH_MWH_STALE,
    GH_MWH_REPLAYED,
    GH_MWH_STORE_FULL,
    GH_MWH_STORE_UNAVAILABLE,
    GH_MWH_N
};

/* Replay decisions of the verify stage (issue 8), by backend and result. */
enum {
    GH_MRP_REDIS,    /* Redis answered */
    GH_MRP_LOCAL,    /* the local table decided: replay_store local, or a local hit */
    GH_MRP_FALLBACK, /* Redis was unavailable: decided by inbound_webhooks.on_redis_error */
    GH_MRP_BACKEND_N
};
enum {
    GH_MRP_NEW,         /* recorded: the message goes on */
    GH_MRP_SEEN,        /* a replay: 401 replayed */
    GH_MRP_FULL,        /* 503 replay_store_full */
    GH_MRP_UNAVAILABLE, /* 503 replay_store_unavailable (on_redis_error: deny) */
    GH_MRP_RESULT_N
};

/* Idempotency stage decisions (src/idem/stage.c), by result. */
enum {
    GH_MIDEM_NEW,          /* claimed: the request goes upstream */
    GH_MIDEM_REPLAYED,     /* the stored answer was sent */
    GH_MIDEM_IN_PROGRESS,  /* 409: the first request is still in flight */
    GH_MIDEM_MISMATCH,     /* 422: the key was used for another request */
    GH_MIDEM_INVALID_KEY,  /* 400 invalid_idempotency_key */
    GH_MIDEM_KEY_REQUIRED, /* 400 idempotency_key_required */
    GH_MIDEM_STORE_FULL,   /* 503: the local table had no room */
    GH_MIDEM_UNAVAILABLE,  /* 503: Redis unavailable under on_redis_error: deny */
    GH_MIDEM_FALLBACK,     /* Redis unavailable: decided by the local table */
    GH_MIDEM_STORED,       /* the upstream's answer was kept */
    GH_MIDEM_RELEASED,     /* no answer to keep (5xx, failure, too large): claim taken back */
    GH_MIDEM_N
};

struct gh_mroute {
    gh_mcounter requests[GH_MM_N][GH_MC_N];
    gh_mcounter webhook[GH_MWH_N];
    gh_mcounter bytes_in, bytes_out;
    struct gh_mhist duration;
};

struct gh_mupstream {
    gh_mcounter requests[GH_MC_N + 1]; /* classes, then GH_MC_ERROR */
    gh_mcounter errors[GH_MUE_N];
    gh_mcounter conns_new, conns_reused;
    gh_mcounter pool_idle; /* a gauge, stored by the worker's tick */
    struct gh_mhist duration;
};

struct gh_mrule {
    gh_mcounter allowed, limited;
};

struct gh_mtenants; /* metrics_tenants.c */

/* One worker's metrics; written by that worker only. */
struct gh_metrics_worker {
    struct gh_mroute routes[GH_METRICS_MAX_ROUTES];
    struct gh_mupstream upstreams[GH_METRICS_MAX_UPSTREAMS];
    struct gh_mrule rules[GH_METRICS_MAX_RULES];
    gh_mcounter auth[GH_MAUTH_N][GH_MAR_N];
    gh_mcounter req_started, req_ended; /* in flight = started - ended */
    gh_mcounter conns_accepted, conns_closed;
    gh_mcounter tls_ok, tls_failed;
    gh_mcounter redis_up; /* gauge: 0 down, 1 up, 2 no Redis (stored by the tick) */
    gh_mcounter replay[GH_MRP_BACKEND_N][GH_MRP_RESULT_N];
    gh_mcounter idem[GH_MIDEM_N];
    struct gh_mtenants *tenants;
};

/* An append-only list of names: written by the main thread (bind), read by
 * the scraper. names[i] is set before <n> is release-stored past it. */
struct gh_metrics_names {
    char **names; /* <cap> entries, allocated once */
    uint32_t cap;
    _Atomic uint32_t n;
};

/* The tenants that have their own series (docs/metrics.md: sticky). */
struct gh_metrics_sticky {
    char **ids;
    uint32_t n, cap;
};

/* The metrics service, one per runtime. */
struct gh_metrics {
    struct gh_metrics_names routes, upstreams, rules;
    pthread_mutex_t scrape_mu; /* one scrape at a time: guards <sticky> */
    struct gh_metrics_sticky sticky;
    _Atomic uint64_t last_load_ok_ms; /* wall ms of the last snapshot bound (start or reload) */
};

/* Returns a new service, or NULL when out of memory. */
struct gh_metrics *gh_metrics_new(void);
void gh_metrics_free(struct gh_metrics *m);

/* Main thread, before <snap> is published: gives every route, upstream and
 * rate-limit rule of <snap> its slot (registering new names) and records
 * the time of this good load. Returns GH_OK or GH_ERROR (out of memory). */
int gh_metrics_bind(struct gh_metrics *m, struct gh_snapshot *snap, struct gh_err *err);

/* The slot of <name> in <names>, registering it when new; "other"'s slot
 * when the registry is full; -1 when out of memory. */
int gh_metrics_names_slot(struct gh_metrics_names *names, const char *name);
/* The name of <slot> (any thread; slot below the published count). */
const char *gh_metrics_names_get(const struct gh_metrics_names *names, uint32_t slot);
static inline uint32_t gh_metrics_names_count(const struct gh_metrics_names *names)
{
    return atomic_load_explicit((_Atomic uint32_t *)&names->n, memory_order_acquire);
}

/* Per worker state (data-plane workers only; the admin worker has none, so
 * admin requests are not counted). NULL when out of memory. */
struct gh_metrics_worker *gh_metrics_worker_new(void);
void gh_metrics_worker_free(struct gh_metrics_worker *mw);

/* ---- Hooks (worker thread; each returns at once when w has no metrics) ---- */

void gh_metrics_conn_accepted(struct gh_worker *w);
void gh_metrics_conn_closed(struct gh_worker *w);
void gh_metrics_tls_handshake(struct gh_worker *w, bool ok);
/* A request head was parsed (or failed to parse): it is in flight. */
void gh_metrics_request_start(struct gh_worker *w, struct gh_req *r);
/* The request leaves its connection (answered or not); before its snapshot
 * is left. Counts requests, durations, bytes, upstream exchange, tenant. */
void gh_metrics_request_end(struct gh_worker *w, struct gh_req *r);
/* The proxy got a connection for an attempt (r->up_reused says which kind). */
void gh_metrics_upstream_conn(struct gh_worker *w, const struct gh_req *r);
/* An attempt failed with <why> (enum gh_up_error), retried or not. */
void gh_metrics_upstream_error(struct gh_worker *w, const struct gh_req *r, int why);
/* The auth stage decided (<rc>: 1 passed, 0 answered) with r->m_auth_method. */
void gh_metrics_auth(struct gh_worker *w, const struct gh_req *r, int rc);
/* The webhook check of r's route ended with <result> (GH_MWH_*). */
void gh_metrics_webhook(struct gh_worker *w, const struct gh_req *r, unsigned result);
/* An idempotency decision or outcome (GH_MIDEM_*). */
void gh_metrics_idempotency(struct gh_worker *w, unsigned result);
/* A replay decision (GH_MRP_* backend and result). */
void gh_metrics_webhook_replay(struct gh_worker *w, unsigned backend, unsigned result);
/* A rate-limit rule decided. */
void gh_metrics_ratelimit(struct gh_worker *w, const struct gh_limit_rule *rl, bool allowed);
/* Every 250 ms: stores the gauges only the worker can read (idle pool
 * connections per upstream, Redis up). */
void gh_metrics_worker_tick(struct gh_worker *w);

/* The result label of an auth refusal code ("key_expired" -> GH_MAR_EXPIRED). */
int gh_metrics_auth_result(const char *code);

#endif
