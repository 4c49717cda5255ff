/* Configuration: the YAML file turned into plain, validated structs.
 *
 * gh_config_load() reads a file, checks every key (unknown keys are errors),
 * resolves names (routes -> upstreams), resolves addresses, and returns one
 * immutable struct gh_config. Every error carries file:line:col and a path
 * such as "routes[2].upstream". Nothing here touches sockets or threads; the
 * runtime builds its snapshot from this struct. docs/config.md documents every
 * key with its default. */
#ifndef GH_CONFIG_CONFIG_H
#define GH_CONFIG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/err.h"

/* Where a value stood in the file, for errors found after parsing. */
struct gh_config_pos {
    int line;
    int col;
};

/* A resolved socket address ("127.0.0.1:8080", "[::1]:8080", "*:8080",
 * ":8080", "localhost:8080"; names resolved once, at load). */
struct gh_config_addr {
    char *text; /* as written */
    char *host; /* host part without brackets; "" for a wildcard */
    uint16_t port;
    struct sockaddr_storage ss;
    socklen_t sslen;
};

/* A certificate with its key, chosen by SNI. <names> are the DNS names it is
 * served for (from the config, or when empty, from the certificate's
 * subjectAltName DNS entries, read by the TLS module). */
struct gh_config_cert {
    char *cert_file; /* PEM chain */
    char *key_file;  /* PEM private key */
    char **names;
    size_t nnames;
    struct gh_config_pos pos;
};

struct gh_config_listen {
    struct gh_config_addr addr;
    bool tls;                     /* true when certificates are configured */
    struct gh_config_cert *certs; /* the first is the default (no or unknown SNI) */
    size_t ncerts;
    struct gh_config_pos pos;
};

struct gh_config_admin {
    struct gh_config_addr addr; /* default 127.0.0.1:9901 */
    bool enabled;               /* false with `admin: { enabled: false }` */
};

struct gh_config_upstream_tls {
    bool enabled;
    char *ca_file;   /* NULL: the system default trust store */
    char *sni;       /* NULL: the endpoint's host name (none for IP literals) */
    bool verify;     /* default true */
    char *cert_file; /* optional client certificate (mTLS to the upstream) */
    char *key_file;
};

struct gh_config_upstream {
    char *name;
    struct gh_config_addr *endpoints; /* "host:port" each */
    size_t nendpoints;
    uint32_t connect_timeout_ms;  /* default 2000 */
    uint32_t response_timeout_ms; /* request sent -> response head; default 30000 */
    uint32_t idle_timeout_ms;     /* no byte either way while streaming; default 60000 */
    uint32_t request_timeout_ms;  /* whole exchange; 0 = none; default 0 */
    uint32_t keepalive; /* idle pooled connections kept per endpoint per worker; default 512; 0
                           disables reuse */
    uint32_t
        keepalive_timeout_ms; /* an idle pooled connection is closed after this; default 60000 */
    uint32_t max_connections; /* per endpoint per worker, 0 = unlimited; default 0 */
    struct gh_config_upstream_tls tls;
    char *identity_secret; /* resolved value (env:/file: references read at load); NULL: none */
    struct gh_config_pos pos;
};

/* Method bits for routes. */
enum {
    GH_METHOD_GET = 1u << 0,
    GH_METHOD_HEAD = 1u << 1,
    GH_METHOD_POST = 1u << 2,
    GH_METHOD_PUT = 1u << 3,
    GH_METHOD_DELETE = 1u << 4,
    GH_METHOD_PATCH = 1u << 5,
    GH_METHOD_OPTIONS = 1u << 6,
    GH_METHOD_TRACE = 1u << 7,
    GH_METHOD_OTHER = 1u << 8, /* any method not listed above */
};

/* Who may pass a route (issue 3): resolved from the `auth` string. */
enum gh_route_auth {
    GH_ROUTE_AUTH_NONE,
    GH_ROUTE_AUTH_API_KEY,
    GH_ROUTE_AUTH_JWT,
    GH_ROUTE_AUTH_ANY, /* an API key or a JWT */
};

/* What a rate-limit rule counts by (issue 4): its key is made of these. */
enum gh_limit_by {
    GH_LIMIT_BY_TENANT,
    GH_LIMIT_BY_KEY,     /* the API key id (or, for a JWT, its subject) */
    GH_LIMIT_BY_SUBJECT, /* the principal's subject */
    GH_LIMIT_BY_ROUTE,
    GH_LIMIT_BY_IP, /* the client address */
    GH_LIMIT_BY_HEADER,
};

/* What a Redis-backed decision does while Redis is slow or down. */
enum gh_redis_fallback {
    GH_FALLBACK_INHERIT, /* routes only: use limits.on_redis_error */
    GH_FALLBACK_LOCAL,   /* decide with the local limiter at this node's share */
    GH_FALLBACK_ALLOW,
    GH_FALLBACK_DENY,
};

#define GH_LIMIT_MAX_PER 6

/* "100/s", "5000/h": <count> requests per <period_ms>. */
struct gh_config_rate {
    uint64_t count;
    uint64_t period_ms;
};

/* One rate-limit rule: a plan's or a route's. */
struct gh_config_rate_limit {
    char *name;                   /* default "<plan>.<n>" or "route:<route name>[.<n>]" */
    char **per;                   /* as written: tenant, key, subject, route, ip, header:<Name> */
    size_t nper;                  /* default [tenant] */
    uint8_t by[GH_LIMIT_MAX_PER]; /* enum gh_limit_by, from <per> */
    const char *header;           /* a `header:<Name>` descriptor's name (points into <per>) */
    struct gh_config_rate rate;
    uint32_t burst; /* default: the rate's count */
    char *on_redis_error;
    enum gh_redis_fallback fallback;
    struct gh_config_pos pos;
};

/* Quotas per tenant and period (UTC day or month); 0 = none. */
enum { GH_QUOTA_REQUESTS, GH_QUOTA_REQUEST_BYTES, GH_QUOTA_RESPONSE_BYTES, GH_QUOTA_NMETRICS };
enum { GH_QUOTA_DAY, GH_QUOTA_MONTH, GH_QUOTA_NPERIODS };
struct gh_config_quotas {
    uint64_t limit[GH_QUOTA_NMETRICS][GH_QUOTA_NPERIODS];
};

/* A plan: limits a tenant gets (tenants name theirs; limits.default_plan otherwise). */
struct gh_config_plan {
    char *name;
    struct gh_config_rate_limit *rate_limits;
    size_t nrate_limits;
    struct gh_config_quotas quotas;
    uint32_t concurrency;        /* requests in flight per tenant, 0 = unlimited */
    uint64_t audit_retention_ms; /* audit events kept hot; 0 = audit.retention */
    struct gh_config_pos pos;
};

/* A route's bulkhead: requests in flight on it, in all and per tenant. */
struct gh_config_concurrency {
    uint32_t max;              /* 0 = unlimited */
    uint32_t per_tenant;       /* 0 = unlimited */
    uint32_t queue_timeout_ms; /* UINT32_MAX: limits.queue_timeout */
};

/* A route's `audit`: `true` (every request) or a mapping that narrows it
 * to some methods and a path prefix, with its own mode. */
struct gh_config_route_audit {
    bool enabled;      /* `audit: true`, or the mapping is present */
    uint32_t methods;  /* GH_METHOD_* bits; 0 = any method */
    char *path_prefix; /* NULL = any path of the route */
    char *mode;        /* NULL = audit.mode; "async" | "strict" */
    int8_t strict;     /* -1: audit.mode decides; 0 async; 1 strict */
};

/* A route's `webhook_verify` (issue 7): the request must carry a valid
 * signature of its whole body (src/hooks/inbound.h, docs/webhooks-inbound.md). */
struct gh_config_webhook_verify {
    bool enabled;   /* the mapping is present */
    char *format;   /* "standard" | "github" | "stripe" */
    int format_id;  /* enum gh_wh_format */
    char *secret;   /* resolved secret (env:, file: or the value) */
    char **secrets; /* more secrets, for rotation; resolved */
    size_t nsecrets;
    uint32_t tolerance_ms;     /* timestamp skew allowed either way, default 5m */
    uint32_t replay_window_ms; /* GitHub: how long a delivery id is remembered, default 10m */
    uint64_t max_body;         /* bytes buffered for the check, default 1MiB; over it: 413 */
    struct gh_config_pos pos;
};

/* `inbound_webhooks:` (issue 7): process-wide settings of the verify stage. */
struct gh_config_inbound_webhooks {
    uint32_t replay_keys; /* slots of the replay table, default 262144; read at start only */
    /* Issue 8: where accepted messages are also recorded so that every node
     * sharing the store refuses their replays. */
    char *replay_store;   /* "local" | "redis"; default redis when a `redis:` block is present */
    bool replay_redis;    /* the resolved choice */
    char *on_redis_error; /* "local" (default) | "deny": while Redis is unavailable */
    bool redis_deny;      /* on_redis_error == deny */
};

/* A route's `idempotency` (docs/idempotency.md): a request with an
 * Idempotency-Key is answered once by the upstream, repeats get the stored
 * answer. */
struct gh_config_route_idempotency {
    bool enabled;          /* the mapping is present */
    uint32_t ttl_ms;       /* how long an answer is kept, default 24h */
    uint32_t methods;      /* GH_METHOD_* bits, default POST and PATCH */
    bool required;         /* a request without the header: 400, default false */
    uint64_t max_body;     /* request bytes buffered for the fingerprint, default 1MiB */
    uint64_t max_response; /* answers larger than this are not kept, default 1MiB */
    struct gh_config_pos pos;
};

/* What a local idempotency record takes besides its body (src/idem/stage.c:
 * headers and the record's own fields). */
#define GH_CONFIG_IDEM_RECORD_OVERHEAD 1152

/* `idempotency:` (top level): process-wide settings of the stage. */
struct gh_config_idempotency {
    uint32_t keys;        /* slots of the local table, default 16384; read at start only */
    uint64_t max_memory;  /* bytes of records in the local table, default 64MiB; start only */
    char *store;          /* "local" | "redis"; default redis when a `redis:` block is present */
    bool redis;           /* the resolved choice */
    char *on_redis_error; /* "local" (default) | "deny": while Redis is unavailable */
    bool redis_deny;      /* on_redis_error == deny */
};

struct gh_config_route {
    char *name;            /* default: "<host><path>" e.g. "api.example.com/v1" or "/" */
    char *host;            /* NULL = any host; "api.example.com" exact; "*.example.com" wildcard */
    bool host_wildcard;    /* host began with "*." (stored without the "*") */
    char *path;            /* path prefix, begins with '/'; default "/" */
    uint32_t methods;      /* GH_METHOD_* bits; 0 = any method */
    char *upstream;        /* upstream name */
    size_t upstream_index; /* index into gh_config.upstreams, resolved at load */
    char *auth;            /* "none" (default) | "api_key" | "jwt" | "any" */
    enum gh_route_auth auth_mode;
    char **scopes; /* all required */
    size_t nscopes;
    char **roles; /* any one required */
    size_t nroles;
    char *api_key_header;                     /* NULL: auth.api_key_header */
    char *query_key_param;                    /* NULL: a key in the query string is refused */
    struct gh_config_rate_limit rate_limit;   /* `rate_limit`: used when rate.count > 0 */
    struct gh_config_rate_limit *rate_limits; /* `rate_limits`: more rules */
    size_t nrate_limits;
    struct gh_config_concurrency concurrency;
    char *on_redis_error; /* the default for this route's rules and its tenants' plan rules */
    enum gh_redis_fallback fallback;
    struct gh_config_route_audit audit; /* `audit: true` or `audit: {...}` */
    struct gh_config_webhook_verify webhook_verify;
    struct gh_config_route_idempotency idempotency;
    struct gh_config_pos pos;
};

struct gh_config_limits {
    uint32_t max_request_line;     /* bytes, default 8192; over it: 414 */
    uint32_t max_header_bytes;     /* whole head incl. request line, default 32768; over it: 431 */
    uint32_t max_headers;          /* field lines, default 100, at most 256; over it: 431 */
    uint64_t max_body_bytes;       /* default 1 GiB; 0 = unlimited; over it: 413 */
    uint32_t header_timeout_ms;    /* first byte -> full head, default 10000 */
    uint32_t body_timeout_ms;      /* between two reads of a request body, default 30000 */
    uint32_t keepalive_timeout_ms; /* idle client connection, default 75000 */
    uint32_t send_timeout_ms;      /* between two writes to a slow client, default 60000 */
    uint32_t keepalive_requests; /* requests per client connection, default 10000; 0 = unlimited */
    uint32_t max_connections;    /* client connections per worker, default 100000 */

    /* Rate limits, quotas and bulkheads (issue 4). */
    char *backend;        /* "local" (default) | "redis" */
    bool redis_backend;   /* backend == "redis" */
    char *on_redis_error; /* "local" (default) | "allow" | "deny" */
    enum gh_redis_fallback fallback;
    uint32_t nodes;            /* gateway nodes sharing Redis: the local share is 1/nodes */
    uint32_t max_keys;         /* rate-limit keys kept in memory, default 1M */
    char *default_plan;        /* NULL: tenants without a plan have no plan limits */
    uint32_t queue_timeout_ms; /* bulkhead queue wait, default 0 = answer 503 at once */
    uint32_t quota_flush_ms;   /* usage counters to the store, default 1s */
    /* Usage rows of periods that ended, and limit events, older than this
     * leave the store (src/limits/usage_retention.h); default 400d. */
    uint64_t usage_retention_ms;
};

/* `redis:` (issue 4: the shared rate limiter). */
struct gh_config_redis {
    bool enabled; /* the block is present */
    char *url;    /* redis://[user[:password]@]host:port[/db] or rediss:// (TLS) */
    char *username;
    char *password;              /* resolved secret; the URL's, when given there */
    uint32_t timeout_ms;         /* per command, default 5ms */
    uint32_t connect_timeout_ms; /* default 200ms */
    char *key_prefix;            /* default "gh:" */
    char *ca_file;               /* rediss:// trust; NULL: system default */
    char *sni;                   /* rediss:// server name; default the URL's host */
    bool verify;                 /* default true */
    char *resolver;              /* "IP:PORT" to look the host up at; NULL: the system's */
    /* From the URL. */
    char *host;
    uint16_t port;
    uint32_t db;
    bool tls;
    struct gh_config_pos pos;
};

/* `node:` names this gateway process among the nodes that share a store and
 * Redis: its id is in every log line, the access log, /metrics
 * (gatehouse_node_info), the traces' service.instance.id and every audit
 * event it writes (docs/audit-format.md, format version 2). */
#define GH_CONFIG_NODE_ID_MAX 63
struct gh_config_node {
    char *id;                 /* 1..63 of [A-Za-z0-9._-]; default: the host name, sanitised */
    struct gh_config_pos pos; /* of the `node` mapping; 0:0 when absent */
};

/* Whether <s> is a valid node id: 1..GH_CONFIG_NODE_ID_MAX characters of
 * [A-Za-z0-9._-]. */
bool gh_config_valid_node_id(const char *s);

/* `metrics:` (issue 6; docs/metrics.md). */
struct gh_config_metrics {
    uint32_t top_tenants; /* tenants with their own series, default 20; the rest are "other" */
    bool require_auth;    /* /metrics needs an operator credential; default false */
};

struct gh_config_access_log {
    bool enabled; /* default true */
    char *path;   /* "stdout" (default) or a file path, opened in append mode */
};

/* `tracing:` (OpenTelemetry). Without `otlp_endpoint` no span is recorded
 * and trace headers pass through untouched. */
struct gh_config_tracing {
    bool enabled;               /* otlp_endpoint given */
    char *otlp_endpoint;        /* http(s)://host:port[/path] as written */
    char *url;                  /* where spans are posted: the path defaults to /v1/traces */
    double sample_ratio;        /* new traces kept, 0..1; default 1 */
    bool sample_errors;         /* also export unsampled requests answered 5xx; default false */
    char *encoding;             /* "protobuf" (default) | "json" */
    bool json;                  /* encoding == "json" */
    char *service_name;         /* resource service.name; default "gatehouse" */
    uint32_t batch_size;        /* spans per export call; default 512 */
    uint32_t queue_size;        /* finished requests buffered per worker; default 8192 */
    uint32_t flush_interval_ms; /* the exporter looks for spans this often; default 200ms */
    uint32_t timeout_ms;        /* one export call; default 10s */
    uint32_t max_retry_ms;      /* a batch refused with 429/5xx is retried this long; default 60s */
    struct gh_config_pos pos;
};

/* `audit.events`: which automatic events are written. */
struct gh_config_audit_events {
    bool auth_failures; /* every 401 and 403 on the data plane */
    bool admin;         /* admin API mutations, token issuance */
    bool limits;        /* quota thresholds */
    bool reloads;       /* config reloads */
};

/* `audit:` (issue 5). */
struct gh_config_audit {
    bool enabled;                    /* default true (a store is always configured) */
    char *mode;                      /* "async" (default) | "strict" */
    bool strict;                     /* mode == "strict" */
    uint32_t queue_size;             /* events per worker ring; default 4096 */
    uint32_t batch_max;              /* events per commit; default 512 */
    uint32_t checkpoint_every;       /* events per chain between checkpoints; default 1000 */
    uint32_t checkpoint_interval_ms; /* or this long, per chain; default 60s */
    uint32_t param_prefix;           /* characters of a value kept in clear; default 4 */
    struct gh_config_audit_events events;
    uint64_t retention_ms;        /* events older than this are archived; default 90d */
    char *archive_dir;            /* segments and manifests; default "audit-archive" */
    uint32_t archive_interval_ms; /* between archive passes; default 1h */
};

/* `store:` names exactly one engine. */
struct gh_config_store {
    char *sqlite;   /* database file; default "gatehouse.db" beside the config file; NULL
                       when postgres is set */
    char *postgres; /* a libpq URL, postgresql://USER@HOST:PORT/DB (docs/postgres.md) */
    uint32_t pool;  /* PostgreSQL connections; default 8 */
    uint32_t statement_timeout_ms; /* PostgreSQL: one statement at most; default 5 s */
    uint32_t lock_timeout_ms;      /* PostgreSQL: a wait for a lock at most; default 5 s */
};

/* `secrets.pkcs11` (issue 7): a PKCS#11 token holds the master keys. */
struct gh_config_pkcs11 {
    char *module;             /* the module to dlopen, e.g. /usr/lib/softhsm/libsofthsm2.so */
    char *token_label;        /* the token, by label */
    char *pin;                /* resolved user PIN (env:/file:/literal; not secret:) */
    char *key_label;          /* master keys are "<key_label>-v<N>"; default "gatehouse-kek" */
    struct gh_config_pos pos; /* of the block: where opening the token fails */
};

/* `secrets:` (issue 7, docs/secrets.md): who holds the master keys. */
struct gh_config_secrets {
    char *provider;        /* "local" (default) | "pkcs11" */
    char *master_key_file; /* local: default "<store.sqlite>.master" */
    struct gh_config_pkcs11 pkcs11;
    struct gh_config_pos pos; /* of the block, or 0:0 when absent */
};

/* A `secret:NAME` reference in the file: resolved once the store and the
 * secrets are open (gh_secrets_resolve_config), from secret (system,
 * "config/NAME"). Until then *field is NULL. */
#define GH_CONFIG_SECRET_REF_PREFIX "config/"
/* NAME's longest: "config/" + NAME is a secret's name, at most
 * GH_SECRET_NAME_MAX (128, secrets.h) characters. */
#define GH_CONFIG_SECRET_REF_MAX 121

struct gh_config_secret_ref {
    char **field;   /* the config field the value goes to */
    char *name;     /* NAME, without "config/" */
    char *key;      /* where it was: "upstreams.api.identity_secret" */
    size_t min_len; /* the key's shortest accepted value */
    struct gh_config_pos pos;
};

/* Something `gatehouse check` reports without refusing the file. */
struct gh_config_warning {
    struct gh_config_pos pos;
    char msg[256];
};

struct gh_config_argon2 {
    uint32_t memory_bytes; /* default 19 MiB */
    uint32_t iterations;   /* default 2 */
    uint32_t parallelism;  /* default 1 */
};

struct gh_config_jwt {
    bool enabled;   /* the `jwt` block is present */
    char *jwks_url; /* one of jwks_url / jwks_file */
    char *jwks_file;
    char *issuer;     /* NULL: not checked */
    char **audiences; /* empty: not checked */
    size_t naudiences;
    char **algorithms; /* empty: RS256 RS384 RS512 PS256 ES256 ES384 EdDSA */
    size_t nalgorithms;
    uint32_t leeway_ms;           /* default 60s */
    char *tenant_claim;           /* default "tenant" */
    char *subject_claim;          /* default "sub" */
    char *scope_claim;            /* default "scope" */
    char *roles_claim;            /* default NULL: no roles from tokens */
    uint32_t refresh_interval_ms; /* JWKS URL refresh, default 5m */
    uint32_t max_token_bytes;     /* default 8KiB */
    struct gh_config_pos pos;
};

struct gh_config_tokens {
    char *issuer;             /* default "gatehouse" */
    uint32_t ttl_ms;          /* default 15m */
    char *algorithm;          /* "ES256" (default) | "EdDSA" */
    uint32_t rotate_every_ms; /* default 24h */
};

struct gh_config_auth {
    struct gh_config_argon2 argon2;
    uint32_t cache_ttl_ms;      /* verified-key cache, default 60s */
    uint32_t rotation_grace_ms; /* default for key rotation, default 24h */
    char *api_key_header;       /* default "X-API-Key" (besides Authorization: Bearer) */
    uint32_t verify_threads;    /* Argon2 verification threads, default 1 */
    struct gh_config_jwt jwt;
    struct gh_config_tokens tokens;
};

/* `webhooks:` (issue 7, docs/webhooks.md): outbound deliveries. */
struct gh_hooks_cidr;
struct gh_config_webhooks {
    char **allow_private; /* addresses or CIDRs that deliveries may reach although private */
    size_t nallow_private;
    struct gh_hooks_cidr *allow; /* allow_private, parsed (nallow_private entries) */
    uint32_t timeout_ms;         /* one attempt, connect to last byte; default 15s */
    char **schedule;             /* as written; default 0s 5s 5m 30m 2h 5h 10h 10h */
    size_t nschedule;
    uint64_t *schedule_ms; /* parsed: delay before attempt i+1 (nschedule_ms entries) */
    size_t nschedule_ms;
    double jitter;              /* +/- this fraction of each delay; default 0.1 */
    uint64_t disable_after_ms;  /* failing continuously this long disables an endpoint; 5d */
    uint32_t concurrency;       /* deliveries in flight; default 64 */
    uint64_t rotation_grace_ms; /* old and new keys both sign this long; default 24h */
    uint32_t max_payload;       /* bytes of a published payload; default 64KiB */
    uint64_t retention_ms;      /* messages older than this leave the store; default 30d */
    struct gh_config_pos pos;
};

struct gh_config {
    char *file;         /* path it was loaded from */
    uint8_t sha256[32]; /* hash of the file's bytes (for metrics and logs) */
    int workers;        /* resolved: `auto` = number of online CPUs; default auto */
    struct gh_config_listen *listens;
    size_t nlistens;
    struct gh_config_admin admin;
    struct gh_config_upstream *upstreams;
    size_t nupstreams;
    struct gh_config_route *routes; /* in file order */
    size_t nroutes;
    struct gh_config_limits limits;
    struct gh_config_plan *plans;
    size_t nplans;
    struct gh_config_redis redis;
    struct gh_config_access_log access_log;
    struct gh_config_tracing tracing;
    struct gh_config_metrics metrics;
    struct gh_config_store store;
    struct gh_config_auth auth;
    struct gh_config_audit audit;
    struct gh_config_secrets secrets;
    struct gh_config_secret_ref *secret_refs; /* `secret:NAME` values still to resolve */
    size_t nsecret_refs;
    struct gh_config_warning *warnings; /* e.g. a literal secret in the file */
    size_t nwarnings;
    struct gh_config_inbound_webhooks inbound_webhooks;
    struct gh_config_idempotency idempotency;
    struct gh_config_webhooks webhooks;
    uint32_t shutdown_timeout_ms; /* SIGTERM: in-flight requests get this long; default 10000 */
    char *log_level;              /* "debug" | "info" | "warn" | "error"; default "info" */
    struct gh_config_node node;   /* read at start: a reload may not change it */
};

/* Loads and validates <path>. On success returns GH_OK and sets *out (free it
 * with gh_config_free). On failure returns GH_ERROR, leaves *out NULL and
 * fills <err> with file:line:col and a message such as
 * "in routes[2].upstream: unknown upstream \"ap\"". */
int gh_config_load(const char *path, struct gh_config **out, struct gh_err *err);

/* Same as gh_config_load on a buffer; <name> is used in error messages. */
int gh_config_load_buffer(const char *name, const char *data, size_t len, struct gh_config **out,
                          struct gh_err *err);

/* The demo's inbound webhook secret: printed by `gatehouse demo` so that
 * its curl lines can sign; never used outside the demo. */
#define GH_CONFIG_DEMO_WEBHOOK_SECRET "demo-webhook-secret-not-for-production"

/* The built-in configuration of `gatehouse demo`: listen on <listen> (e.g.
 * "127.0.0.1:8080"), the admin listener on <admin_listen> (NULL: the
 * default 127.0.0.1:9901), one upstream "demo" at 127.0.0.1:<upstream_port>;
 * routes "/" (open), "/orders" (API key, scope orders:read, 5/s per
 * tenant) and "/webhooks/github" (a GitHub webhook signed with
 * GH_CONFIG_DEMO_WEBHOOK_SECRET); webhook endpoints may be on 127.0.0.1. */
int gh_config_demo(const char *listen, const char *admin_listen, uint16_t upstream_port,
                   struct gh_config **out, struct gh_err *err);

void gh_config_free(struct gh_config *cfg);

/* Parses "250ms", "5s", "2m", "1h", "1d" or a plain number of milliseconds.
 * Returns GH_OK or GH_ERROR. */
int gh_config_parse_duration_ms(const char *s, uint64_t *out_ms);

/* Parses "512", "16KiB", "16k", "1MiB", "1M", "2GiB" (binary multiples).
 * Returns GH_OK or GH_ERROR. */
int gh_config_parse_size(const char *s, uint64_t *out_bytes);

/* Parses a rate: "100/s", "10/sec", "600/m", "5000/h", "10000/d", also "100/2s".
 * Returns GH_OK or GH_ERROR. */
int gh_config_parse_rate(const char *s, struct gh_config_rate *out);

/* The plan named <name>, or NULL. */
const struct gh_config_plan *gh_config_plan_find(const struct gh_config *cfg, const char *name);

/* Parses "host:port" / "[v6]:port" / "*:port" / ":port" and resolves it
 * (getaddrinfo, numeric or name). Returns GH_OK or GH_ERROR with a message in <why>. */
int gh_config_parse_addr(const char *text, struct gh_config_addr *out, char *why, size_t whylen);
/* As gh_config_parse_addr, but a host name is not looked up: out->host
 * holds it and out->sslen is 0, for a client that looks it up itself each
 * time it connects (the Redis client: src/limits/redis.c). Addresses are
 * parsed as above. */
int gh_config_parse_addr_name(const char *text, struct gh_config_addr *out, char *why,
                              size_t whylen);
void gh_config_addr_release(struct gh_config_addr *a);

#endif
