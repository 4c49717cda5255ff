/* The webhook delivery thread (see dispatcher.h). */
#include "hooks/dispatcher.h"

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "audit/audit.h"
#include "config/config.h"
#include "core/clock.h"
#include "core/log.h"
#include "hooks/events.h"
#include "hooks/keycache.h"
#include "hooks/retention.h"
#include "hooks/schedule.h"
#include "hooks/sign.h"
#include "hooks/ssrf.h"
#include "store/store.h"
#include "telemetry/metrics.h"

#define CLAIM_MAX       512         /* deliveries taken from the store at once */
#define OUTCOMES_MAX    2048        /* outcomes waiting for their batched commit */
#define RECORD_EVERY_NS 20000000ull /* a partial batch of outcomes waits at most this */
/* How often the queue is looked at without a wake: every POLL_MS while
 * looks find work, backing off (doubling) to IDLE_POLL_MAX_MS while they
 * find none. A publish in this process, a replay, and the due time of a
 * retry this process scheduled wake the thread at once (poke, due_wall_ms);
 * what backing off delays is work only another process made: a message
 * published by another node that node did not take, claims of a node
 * that died (also bound by their lease), another node's retries. */
#define POLL_MS          100
#define IDLE_POLL_MAX_MS 1000
#define PENDING_EVERY_NS 1000000000ull
/* How often the store is asked for disablings whose report no process
 * made within its lease (GH_STORE_HOOK_REPORT_LEASE_MS: the process that
 * disabled them died, or its commit's answer was lost), and for paused
 * deliveries of active endpoints (an older gatehouse enabled them). */
#define REPORTS_EVERY_NS  10000000000ull
#define SHUTDOWN_GRACE_NS 2000000000ull
#define KEYCACHE_SLOTS    1024
#define SCHEDULE_MAX      32
#define ALLOW_MAX         64

_Static_assert(GH_HOOKS_NBUCKETS == GH_METRICS_NBUCKETS, "one bucket layout for every histogram");

/* The settings an attempt is made with, copied under the lock. */
/* After the allow-list changes, attempts open new connections for this
 * long: more than curl's idle limit for a kept connection (118 s). */
#define FRESH_AFTER_ALLOW_NS (150ull * 1000000000ull)

struct conf {
    uint32_t timeout_ms;
    uint64_t schedule_ms[SCHEDULE_MAX];
    size_t nschedule;
    double jitter;
    uint64_t disable_after_ms;
    uint64_t retention_ms;
    uint32_t concurrency;
    struct gh_hooks_cidr allow[ALLOW_MAX];
    size_t nallow;
};

/* One delivery attempt: from its claim to its outcome. */
struct job {
    struct gh_hooks_dispatcher *d;
    CURL *h; /* kept across uses: curl_easy_reset keeps nothing of the last one */
    struct curl_slist *hdrs;
    char *url;
    char *body;
    size_t body_len;
    int64_t delivery_id;
    unsigned attempts; /* made before this one */
    char tenant[GH_STORE_TENANT_ID_SIZE];
    char endpoint[GH_STORE_HOOK_ID_SIZE];
    char msg_id[GH_STORE_HOOK_MSG_ID_SIZE];
    bool ed25519;
    uint32_t secret_version, prev_version;
    int64_t prev_until;
    int64_t at_ms;
    uint64_t start_ns;
    const char *blocked; /* set by the open-socket hook */
    char retry_after[64];
    char snippet[GH_STORE_HOOK_SNIPPET_MAX + 1];
    size_t snippet_len;
    struct conf *conf;               /* the dispatcher thread's copy, for the open-socket hook */
    struct job *next;                /* in the ready queue or the free list */
    struct job *fly_prev, *fly_next; /* in the in-flight list */
};

struct disabled {
    char tenant[GH_STORE_TENANT_ID_SIZE];
    char endpoint[GH_STORE_HOOK_ID_SIZE];
    const char *reason; /* "gone" or "failing" */
    int64_t lease;      /* of its report (gh_store_hook_reports_done) */
};

struct gh_hooks_dispatcher {
    struct gh_store *st;
    struct gh_audit_service *audit;
    pthread_t thread;
    bool started;
    _Atomic bool stop;
    _Atomic bool poked;
    CURLM *multi;
    char owner[48];

    pthread_mutex_t mu; /* guards <next_conf> */
    struct conf next_conf;

    /* dispatcher thread only */
    struct conf conf;
    struct gh_hooks_keycache *keys;
    struct job *ready, *ready_tail; /* claimed, not started */
    struct job *free_jobs;
    struct job *flying_list;
    unsigned in_flight;
    struct gh_store_hook_outcome *outcomes;
    size_t noutcomes;
    uint64_t first_outcome_ns;
    struct disabled *disabled; /* endpoints one record() disabled: grows as needed */
    size_t ndisabled, disabled_cap;
    bool disabled_lost; /* a report could not be kept (out of memory): made after its lease */
    uint64_t rng;
    uint32_t poll_ms;    /* the wait between looks now: POLL_MS..IDLE_POLL_MAX_MS */
    int64_t due_wall_ms; /* earliest attempt this process knows is due; 0: none */
    uint64_t last_log_ns;
    uint64_t fresh_until_ns; /* new connections only until then (allow-list changed) */
    struct gh_hooks_retention retention;

    _Atomic uint64_t delivered, failed, retried;
    _Atomic uint64_t looks_found, looks_empty, looks_failed;
    _Atomic uint64_t att_ok, att_http, att_net, att_timeout, att_blocked;
    _Atomic uint64_t pending, disabled_count, lat_sum_ns;
    _Atomic uint64_t purged_messages, purged_deliveries, purged_attempts, purged_undelivered;
    _Atomic uint64_t purge_failures;
    _Atomic uint64_t lat[GH_HOOKS_NBUCKETS];
    _Atomic uint64_t flying;
};

static void add(_Atomic uint64_t *c, uint64_t n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static uint64_t rd(_Atomic uint64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

/* Uniform in [0, 1), for the jitter (xorshift64*: statistical, not secret). */
static double uniform(struct gh_hooks_dispatcher *d)
{
    d->rng ^= d->rng >> 12;
    d->rng ^= d->rng << 25;
    d->rng ^= d->rng >> 27;
    return (double)((d->rng * 2685821657736338717ull) >> 11) / 9007199254740992.0;
}

static bool may_log(struct gh_hooks_dispatcher *d)
{
    return gh_log_due(&d->last_log_ns);
}

static void conf_from(struct conf *c, const struct gh_config_webhooks *w)
{
    memset(c, 0, sizeof(*c));
    c->timeout_ms = w->timeout_ms;
    c->nschedule = w->nschedule_ms < SCHEDULE_MAX ? w->nschedule_ms : SCHEDULE_MAX;
    memcpy(c->schedule_ms, w->schedule_ms, c->nschedule * sizeof(c->schedule_ms[0]));
    c->jitter = w->jitter;
    c->disable_after_ms = w->disable_after_ms;
    c->retention_ms = w->retention_ms;
    c->concurrency = w->concurrency;
    c->nallow = w->nallow_private < ALLOW_MAX ? w->nallow_private : ALLOW_MAX;
    if (c->nallow) memcpy(c->allow, w->allow, c->nallow * sizeof(c->allow[0]));
}

/* ---- claiming ------------------------------------------------------------- */

/* RFC 3339 in UTC with milliseconds: the "timestamp" of the payload. */
static void rfc3339(int64_t ms, char out[32])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03dZ", (int)(ms % 1000));
}

static struct job *job_get(struct gh_hooks_dispatcher *d)
{
    struct job *j = d->free_jobs;
    CURL *h;

    if (j) {
        d->free_jobs = j->next;
        h = j->h;
    } else {
        j = malloc(sizeof(*j));
        h = NULL;
        if (j == NULL) return NULL;
    }
    memset(j, 0, sizeof(*j));
    j->h = h;
    j->d = d;
    return j;
}

static void job_put(struct gh_hooks_dispatcher *d, struct job *j)
{
    curl_slist_free_all(j->hdrs);
    j->hdrs = NULL;
    free(j->url);
    free(j->body);
    j->url = j->body = NULL;
    j->next = d->free_jobs;
    d->free_jobs = j;
}

/* Runs while the store holds its writer: copies only. The body is the
 * Standard Webhooks payload shape {"type", "timestamp", "data"}; <type> is
 * [a-z0-9_.-] (the store refuses anything else) and the payload was
 * checked as JSON when published, so both go in as they are. */
static int on_due(const struct gh_store_hook_due *due, void *arg)
{
    struct gh_hooks_dispatcher *d = arg;
    struct job *j = job_get(d);
    char ts[32];
    int n;

    if (j == NULL) return GH_ERROR;
    rfc3339(due->msg_created_at, ts);
    j->body_len = due->payload_len + strlen(due->type) + 64;
    j->body = malloc(j->body_len);
    j->url = strdup(due->url);
    if (j->body == NULL || j->url == NULL) goto fail;
    n = snprintf(j->body, j->body_len, "{\"type\":\"%s\",\"timestamp\":\"%s\",\"data\":%.*s}",
                 due->type, ts, (int)due->payload_len, due->payload);
    if (n < 0 || (size_t)n >= j->body_len) goto fail;
    j->body_len = (size_t)n;
    j->delivery_id = due->delivery_id;
    j->attempts = due->attempts;
    snprintf(j->tenant, sizeof(j->tenant), "%s", due->tenant_id);
    snprintf(j->endpoint, sizeof(j->endpoint), "%s", due->endpoint_id);
    snprintf(j->msg_id, sizeof(j->msg_id), "%s", due->msg_id);
    j->ed25519 = due->ed25519;
    j->secret_version = due->secret_version;
    j->prev_version = due->prev_version;
    j->prev_until = due->prev_until;
    if (d->ready_tail)
        d->ready_tail->next = j;
    else
        d->ready = j;
    d->ready_tail = j;
    return GH_OK;
fail:
    job_put(d, j);
    return GH_ERROR;
}

/* ---- outcomes ------------------------------------------------------------- */

static int on_disabled(const char *tenant, const char *endpoint, const char *reason, int64_t lease,
                       void *arg)
{
    struct gh_hooks_dispatcher *d = arg;
    /* A long outage of a shared receiver disables many endpoints in one
     * commit: every one of them is reported, however many. */
    if (d->ndisabled == d->disabled_cap) {
        size_t cap = d->disabled_cap ? 2 * d->disabled_cap : 64;
        struct disabled *v = realloc(d->disabled, cap * sizeof(*v));
        if (v == NULL) {
            d->disabled_lost = true;
            return GH_OK; /* the store's work stands; the log says what was lost */
        }
        d->disabled = v;
        d->disabled_cap = cap;
    }
    d->disabled[d->ndisabled].reason = strcmp(reason, "gone") == 0 ? "gone" : "failing";
    snprintf(d->disabled[d->ndisabled].tenant, GH_STORE_TENANT_ID_SIZE, "%s", tenant);
    snprintf(d->disabled[d->ndisabled].endpoint, GH_STORE_HOOK_ID_SIZE, "%s", endpoint);
    d->disabled[d->ndisabled].lease = lease;
    d->ndisabled++;
    return GH_OK;
}

/* An endpoint the store disabled: the log, the audit log (actor "system")
 * and the tenant's own webhook.endpoint_disabled event. True when both are
 * stored: the audit record is submitted durably (waiting for its commit),
 * so that a report marked made is one that a crash cannot take back. */
static bool report_disabled(struct gh_hooks_dispatcher *d, const struct disabled *x)
{
    char res[160], payload[160];
    struct gh_err err = {0};
    bool ok = true;

    gh_log_warn("webhooks: endpoint %s of tenant %s disabled: %s", x->endpoint, x->tenant,
                strcmp(x->reason, "gone") == 0 ? "it answered 410 Gone"
                                               : "failing for longer than webhooks.disable_after");
    add(&d->disabled_count, 1);
    if (gh_audit_wants(d->audit, GH_AUDIT_KIND_ADMIN)) {
        struct gh_audit_event ev;
        gh_audit_event_new(&ev);
        GH_AUDIT_SET(&ev, tenant, gh_str_cstr(x->tenant));
        GH_AUDIT_SET(&ev, actor, GH_STR_LIT("system"));
        GH_AUDIT_SET(&ev, action, GH_STR_LIT("webhook.endpoint_disabled"));
        snprintf(res, sizeof(res), "tenants/%s/webhooks/%s", x->tenant, x->endpoint);
        GH_AUDIT_SET(&ev, resource, gh_str_cstr(res));
        ev.outcome = GH_AUDIT_SUCCESS;
        GH_AUDIT_SET(&ev, reason, gh_str_cstr(x->reason));
        ok = gh_audit_submit(d->audit, &ev, true) == GH_OK; /* logged there when not */
    }
    snprintf(payload, sizeof(payload), "{\"endpoint_id\":\"%s\",\"reason\":\"%s\"}", x->endpoint,
             x->reason);
    if (gh_hooks_emit(d->st, d, x->tenant, "webhook.endpoint_disabled", payload, &err) != GH_OK) {
        gh_log_warn("webhooks: cannot publish webhook.endpoint_disabled: %s", err.msg);
        ok = false;
    }
    return ok;
}

/* Reports the endpoints gathered in d->disabled, then tells the store
 * which reports are made, GH_STORE_HOOK_REPORTS_MAX at a time. A report
 * not wholly made (the audit log or the store failed), or that the store
 * does not hear of, is made again once its lease ends: at least once,
 * never lost. */
static void report_all(struct gh_hooks_dispatcher *d)
{
    struct gh_store_hook_report made[GH_STORE_HOOK_REPORTS_MAX];
    struct gh_err err = {0};
    size_t n = 0;

    for (size_t i = 0; i < d->ndisabled; i++) {
        if (report_disabled(d, &d->disabled[i])) {
            memcpy(made[n].endpoint_id, d->disabled[i].endpoint, GH_STORE_HOOK_ID_SIZE);
            made[n++].lease = d->disabled[i].lease;
        } else
            gh_log_warn("webhooks: the report of endpoint %s's disabling is made again within "
                        "%d s",
                        d->disabled[i].endpoint, GH_STORE_HOOK_REPORT_LEASE_MS / 1000);
        if (n > 0 && (n == GH_STORE_HOOK_REPORTS_MAX || i + 1 == d->ndisabled) &&
            gh_store_hook_reports_done(d->st, made, n, &err) != GH_OK)
            gh_log_warn("webhooks: disabled endpoints reported, but the store did not hear of "
                        "it (they are reported again within %d s): %s",
                        GH_STORE_HOOK_REPORT_LEASE_MS / 1000, err.msg);
        if (n == GH_STORE_HOOK_REPORTS_MAX) n = 0;
    }
    if (d->disabled_lost)
        gh_log_error("webhooks: out of memory: some endpoints disabled just now are reported "
                     "(audit log, event) only after %d s; the admin API shows their status",
                     GH_STORE_HOOK_REPORT_LEASE_MS / 1000);
    d->ndisabled = 0;
    d->disabled_lost = false;
}

/* Commits the outcomes gathered so far in one transaction. On failure they
 * stay and the next turn tries again: the deliveries stay claimed by this
 * process meanwhile, so none is sent twice for that. */
static void record(struct gh_hooks_dispatcher *d)
{
    struct gh_err err = {0};

    if (d->noutcomes == 0) return;
    d->ndisabled = 0;
    d->disabled_lost = false;
    if (gh_store_hook_record(d->st, d->owner, d->outcomes, d->noutcomes,
                             (int64_t)d->conf.disable_after_ms, on_disabled, d, &err) != GH_OK) {
        if (may_log(d)) gh_log_warn("webhooks: cannot record delivery outcomes: %s", err.msg);
        d->ndisabled = 0;
        return;
    }
    d->noutcomes = 0;
    report_all(d);
}

/* Every REPORTS_EVERY_NS: makes the reports of disablings whose lease ran
 * out, and resumes paused deliveries of active endpoints (a store shared
 * with an older gatehouse, which enables an endpoint without resuming
 * them: they would wait for ever). */
static void housekeeping(struct gh_hooks_dispatcher *d)
{
    struct gh_err err = {0};
    uint64_t resumed = 0, n = GH_STORE_HOOK_RESUME_MAX;

    for (int i = 0; i < 10 && n == GH_STORE_HOOK_RESUME_MAX; i++) {
        if (gh_store_hook_resume_stray(d->st, GH_STORE_HOOK_RESUME_MAX, &n, &err) != GH_OK) {
            if (may_log(d)) gh_log_warn("webhooks: cannot resume paused deliveries: %s", err.msg);
            break;
        }
        resumed += n;
    }
    if (resumed > 0)
        gh_log_warn("webhooks: %llu paused deliveries of active endpoints resumed (an older "
                    "gatehouse enabled their endpoints)",
                    (unsigned long long)resumed);
    d->ndisabled = 0;
    d->disabled_lost = false;
    if (gh_store_hook_reports_claim(d->st, on_disabled, d, &err) != GH_OK) {
        if (may_log(d)) gh_log_warn("webhooks: cannot look for unreported disablings: %s", err.msg);
        d->ndisabled = 0;
        return;
    }
    report_all(d);
}

static void latency(struct gh_hooks_dispatcher *d, uint64_t ns)
{
    add(&d->lat[gh_metrics_bucket(ns)], 1);
    add(&d->lat_sum_ns, ns);
}

/* An attempt falls due at <wall_ms>: the thread looks then, idle or not. */
static void due_at(struct gh_hooks_dispatcher *d, int64_t wall_ms)
{
    if (d->due_wall_ms == 0 || wall_ms < d->due_wall_ms) d->due_wall_ms = wall_ms;
}

/* What the attempt of <j> leads to: <status> (0 = no answer) and <error>. */
static void outcome(struct gh_hooks_dispatcher *d, struct job *j, long status, const char *error,
                    bool retryable)
{
    struct gh_store_hook_outcome *o = &d->outcomes[d->noutcomes];
    int64_t now = (int64_t)gh_wall_ms();
    uint64_t delay = 0, ra = 0;

    memset(o, 0, sizeof(*o));
    o->delivery_id = j->delivery_id;
    snprintf(o->endpoint_id, sizeof(o->endpoint_id), "%s", j->endpoint);
    o->at = j->at_ms;
    o->status = status;
    snprintf(o->error, sizeof(o->error), "%s", error ? error : "");
    o->latency_ms = j->start_ns ? (int64_t)((gh_now_ns() - j->start_ns) / 1000000) : 0;
    memcpy(o->snippet, j->snippet, j->snippet_len);
    o->snippet[j->snippet_len] = '\0';
    if (gh_hooks_success(status) && error == NULL) {
        o->next = GH_STORE_DELIVERY_SUCCEEDED;
        add(&d->delivered, 1);
    } else if (retryable &&
               gh_hooks_schedule_delay(d->conf.schedule_ms, d->conf.nschedule, j->attempts + 1,
                                       d->conf.jitter, uniform(d), &delay)) {
        /* RFC 9110 §10.2.3: the receiver asks for at least this long. */
        if (j->retry_after[0] && gh_hooks_retry_after(j->retry_after, now, &ra) && ra > delay)
            delay = ra;
        o->next = GH_STORE_DELIVERY_PENDING;
        o->next_attempt_at = now + (int64_t)delay;
        due_at(d, o->next_attempt_at);
        add(&d->retried, 1);
    } else {
        o->next = GH_STORE_DELIVERY_FAILED;
        /* RFC 9110 §15.5.11: the receiver says the URL is gone for good. */
        o->gone = status == 410;
        add(&d->failed, 1);
    }
    if (d->noutcomes++ == 0) d->first_outcome_ns = gh_now_ns();
}

/* ---- attempts ------------------------------------------------------------- */

/* libcurl's open-socket hook: the address is the one DNS gave for this
 * connection, so the SSRF rules are checked here and not on the name. */
static curl_socket_t open_socket(void *arg, curlsocktype purpose, struct curl_sockaddr *a)
{
    struct job *j = arg;
    const char *why;

    if (purpose != CURLSOCKTYPE_IPCXN) return CURL_SOCKET_BAD;
    why = gh_hooks_addr_blocked(&a->addr, j->conf->allow, j->conf->nallow);
    if (why) {
        j->blocked = why;
        return CURL_SOCKET_BAD;
    }
    return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

/* The start of the answer, for the attempt history: printable ASCII, other
 * bytes as '?', at most GH_STORE_HOOK_SNIPPET_MAX bytes; the rest is read
 * and dropped. */
static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    struct job *j = arg;
    size_t len = size * n;

    for (size_t i = 0; i < len && j->snippet_len < GH_STORE_HOOK_SNIPPET_MAX; i++) {
        unsigned char c = (unsigned char)p[i];
        j->snippet[j->snippet_len++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    struct job *j = arg;
    size_t len = size * n;

    if (len > 12 && strncasecmp(p, "retry-after:", 12) == 0) {
        size_t v = len - 12;
        if (v >= sizeof(j->retry_after)) v = sizeof(j->retry_after) - 1;
        memcpy(j->retry_after, p + 12, v);
        j->retry_after[v] = '\0';
        j->retry_after[strcspn(j->retry_after, "\r\n")] = '\0';
    }
    return len;
}

/* "v1,<sig>" (and " v1,<old sig>" during a rotation's grace): the
 * signatures of <j>'s body at <ts>. */
static int sign(struct gh_hooks_dispatcher *d, struct job *j, int64_t ts, char *out, size_t cap)
{
    uint32_t versions[2] = {j->secret_version, 0};
    struct gh_err err = {0};
    size_t used = 0;

    if (j->prev_version && j->prev_until > (int64_t)gh_wall_ms()) versions[1] = j->prev_version;
    for (int i = 0; i < 2 && versions[i]; i++) {
        const uint8_t *key;
        size_t len;
        int rc;
        if (gh_hooks_keycache_get(d->keys, j->tenant, j->endpoint, versions[i], &key, &len, &err) !=
            GH_OK) {
            if (may_log(d))
                gh_log_warn("webhooks: no signing key for endpoint %s: %s", j->endpoint, err.msg);
            return GH_ERROR;
        }
        if (used) out[used++] = ' ';
        if (j->ed25519)
            rc = len == GH_HOOKS_KEY_LEN ? gh_hooks_sign_v1a(key, j->msg_id, ts, j->body,
                                                             j->body_len, out + used, cap - used)
                                         : GH_ERROR;
        else
            rc = gh_hooks_sign_v1(key, len, j->msg_id, ts, j->body, j->body_len, out + used,
                                  cap - used);
        if (rc != GH_OK) return GH_ERROR;
        used += strlen(out + used);
    }
    return GH_OK;
}

static void start(struct gh_hooks_dispatcher *d, struct job *j)
{
    char line[64 + 2 * GH_HOOKS_SIG_MAX], sigs[2 * GH_HOOKS_SIG_MAX + 2];
    int64_t ts = (int64_t)(gh_wall_ms() / 1000);
    CURLcode rc = CURLE_OK;

    j->conf = &d->conf;
    j->at_ms = (int64_t)gh_wall_ms();
    if (sign(d, j, ts, sigs, sizeof(sigs)) != GH_OK) {
        /* The store or the KMS failed: worth another try later. */
        outcome(d, j, 0, "signing_key_unavailable", true);
        job_put(d, j);
        return;
    }
    snprintf(line, sizeof(line), "webhook-id: %s", j->msg_id);
    j->hdrs = curl_slist_append(NULL, line);
    snprintf(line, sizeof(line), "webhook-timestamp: %lld", (long long)ts);
    j->hdrs = j->hdrs ? curl_slist_append(j->hdrs, line) : NULL;
    snprintf(line, sizeof(line), "webhook-signature: %s", sigs);
    j->hdrs = j->hdrs ? curl_slist_append(j->hdrs, line) : NULL;
    j->hdrs = j->hdrs ? curl_slist_append(j->hdrs, "Content-Type: application/json") : NULL;
    j->hdrs = j->hdrs ? curl_slist_append(j->hdrs, "Expect:") : NULL;
    OPENSSL_cleanse(sigs, sizeof(sigs));
    if (j->h == NULL)
        j->h = curl_easy_init();
    else
        curl_easy_reset(j->h);
    if (j->h == NULL || j->hdrs == NULL) {
        outcome(d, j, 0, "out_of_memory", true);
        job_put(d, j);
        return;
    }
    /* No redirects (a 3xx is a failed attempt), http and https only, no
     * proxy from the environment (it would connect where the SSRF hook
     * cannot see). */
    if (rc == CURLE_OK) rc = curl_easy_setopt(j->h, CURLOPT_URL, j->url);
    if (rc == CURLE_OK) rc = curl_easy_setopt(j->h, CURLOPT_PROTOCOLS_STR, "http,https");
    if (rc == CURLE_OK) rc = curl_easy_setopt(j->h, CURLOPT_FOLLOWLOCATION, 0L);
    if (rc == CURLE_OK) rc = curl_easy_setopt(j->h, CURLOPT_PROXY, "");
    if (rc == CURLE_OK) rc = curl_easy_setopt(j->h, CURLOPT_NOSIGNAL, 1L);
    if (rc == CURLE_OK) rc = curl_easy_setopt(j->h, CURLOPT_POST, 1L);
    if (rc == CURLE_OK) rc = curl_easy_setopt(j->h, CURLOPT_POSTFIELDS, j->body);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(j->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)j->body_len);
    if (rc == CURLE_OK) rc = curl_easy_setopt(j->h, CURLOPT_HTTPHEADER, j->hdrs);
    if (rc == CURLE_OK) rc = curl_easy_setopt(j->h, CURLOPT_USERAGENT, "gatehouse-webhooks");
    if (rc == CURLE_OK) rc = curl_easy_setopt(j->h, CURLOPT_TIMEOUT_MS, (long)d->conf.timeout_ms);
    if (rc == CURLE_OK) rc = curl_easy_setopt(j->h, CURLOPT_OPENSOCKETFUNCTION, open_socket);
    if (rc == CURLE_OK) rc = curl_easy_setopt(j->h, CURLOPT_OPENSOCKETDATA, j);
    if (rc == CURLE_OK) rc = curl_easy_setopt(j->h, CURLOPT_WRITEFUNCTION, on_body);
    if (rc == CURLE_OK) rc = curl_easy_setopt(j->h, CURLOPT_WRITEDATA, j);
    if (rc == CURLE_OK) rc = curl_easy_setopt(j->h, CURLOPT_HEADERFUNCTION, on_header);
    if (rc == CURLE_OK) rc = curl_easy_setopt(j->h, CURLOPT_HEADERDATA, j);
    if (rc == CURLE_OK) rc = curl_easy_setopt(j->h, CURLOPT_PRIVATE, j);
    if (rc == CURLE_OK && gh_now_ns() < d->fresh_until_ns)
        rc = curl_easy_setopt(j->h, CURLOPT_FRESH_CONNECT, 1L);
    if (rc != CURLE_OK || curl_multi_add_handle(d->multi, j->h) != CURLM_OK) {
        outcome(d, j, 0, "curl_setup", true);
        job_put(d, j);
        return;
    }
    j->start_ns = gh_now_ns();
    j->fly_next = d->flying_list;
    if (d->flying_list) d->flying_list->fly_prev = j;
    d->flying_list = j;
    d->in_flight++;
    add(&d->flying, 1);
}

static void unfly(struct gh_hooks_dispatcher *d, struct job *j)
{
    if (j->fly_prev)
        j->fly_prev->fly_next = j->fly_next;
    else
        d->flying_list = j->fly_next;
    if (j->fly_next) j->fly_next->fly_prev = j->fly_prev;
    j->fly_prev = j->fly_next = NULL;
    d->in_flight--;
}

static void finished(struct gh_hooks_dispatcher *d, CURLMsg *m)
{
    struct job *j = NULL;
    long status = 0;
    char err[64];
    /* <m> is not valid after curl_multi_remove_handle: keep what is needed. */
    CURLcode result = m->data.result;
    CURL *easy = m->easy_handle;

    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&j);
    curl_multi_remove_handle(d->multi, easy);
    if (j == NULL) return;
    unfly(d, j);
    atomic_fetch_sub_explicit(&d->flying, 1, memory_order_relaxed);
    latency(d, gh_now_ns() - j->start_ns);
    if (result != CURLE_OK) {
        bool timeout = result == CURLE_OPERATION_TIMEDOUT;
        if (j->blocked) {
            /* Never retried: the rules will refuse the address again. */
            snprintf(err, sizeof(err), "blocked_address: %s", j->blocked);
            add(&d->att_blocked, 1);
            /* The address passed the rules of the node that took the
             * endpoint (a name, or another node's allow_private): say so,
             * or the delivery fails for good with nothing in the log. */
            if (may_log(d))
                gh_log_warn("webhooks: endpoint %s of tenant %s: its address is refused by this "
                            "node's rules (%s), and the delivery fails for good; if another node "
                            "accepted the endpoint, give every node the same "
                            "webhooks.allow_private",
                            j->endpoint, j->tenant, j->blocked);
            outcome(d, j, 0, err, false);
        } else {
            snprintf(err, sizeof(err), "%s", timeout ? "timeout" : curl_easy_strerror(result));
            add(timeout ? &d->att_timeout : &d->att_net, 1);
            outcome(d, j, 0, err, true);
        }
    } else {
        curl_easy_getinfo(j->h, CURLINFO_RESPONSE_CODE, &status);
        add(gh_hooks_success(status) ? &d->att_ok : &d->att_http, 1);
        outcome(d, j, status, NULL, gh_hooks_retryable(status));
    }
    job_put(d, j);
}

/* ---- the thread ----------------------------------------------------------- */

static size_t claim(struct gh_hooks_dispatcher *d, size_t limit)
{
    struct gh_err err = {0};
    struct job *tail = d->ready_tail;
    size_t n = 0;

    if (gh_store_hook_claim(d->st, d->owner, limit, on_due, d, &err) != GH_OK) {
        add(&d->looks_failed, 1);
        if (may_log(d)) gh_log_warn("webhooks: cannot claim deliveries: %s", err.msg);
        /* What the callback queued before the failure was rolled back in
         * the store: drop it here too. */
        struct job *j = tail ? tail->next : d->ready;
        if (tail)
            tail->next = NULL;
        else
            d->ready = NULL;
        d->ready_tail = tail;
        while (j) {
            struct job *next = j->next;
            job_put(d, j);
            j = next;
        }
        return 0;
    }
    for (struct job *j = tail ? tail->next : d->ready; j; j = j->next)
        n++;
    add(n ? &d->looks_found : &d->looks_empty, 1);
    return n;
}

/* One retention step when one is due (retention.h), between deliveries;
 * true when one ran. */
static bool purge(struct gh_hooks_dispatcher *d, uint64_t now)
{
    struct gh_store_hook_purged step;
    int rc;

    if (!gh_hooks_retention_step(&d->retention, d->st, d->owner, d->conf.retention_ms, now, &step,
                                 &rc))
        return false;
    if (rc != GH_OK) {
        add(&d->purge_failures, 1);
        return true;
    }
    add(&d->purged_messages, step.messages);
    add(&d->purged_deliveries, step.deliveries);
    add(&d->purged_attempts, step.attempts);
    add(&d->purged_undelivered, step.undelivered);
    return true;
}

static void *dispatcher_main(void *arg)
{
    struct gh_hooks_dispatcher *d = arg;
    uint64_t next_poll = 0, next_pending = 0, next_reports = gh_now_ns(), stop_deadline = 0;

    for (;;) {
        uint64_t now = gh_now_ns();
        bool stopping = atomic_load(&d->stop);
        int running = 0, left;
        long timeout_ms = IDLE_POLL_MAX_MS; /* next_poll and curl's timers wait less */
        CURLMsg *m;

        pthread_mutex_lock(&d->mu);
        /* A narrower allow-list must also hold for connections that curl
         * keeps open from before it: until those have idled out (curl
         * closes a connection idle for 118 s), no attempt reuses one. */
        if (d->conf.nallow != d->next_conf.nallow ||
            memcmp(d->conf.allow, d->next_conf.allow, d->conf.nallow * sizeof(d->conf.allow[0])))
            d->fresh_until_ns = now + FRESH_AFTER_ALLOW_NS;
        d->conf = d->next_conf;
        pthread_mutex_unlock(&d->mu);
        if (stopping && stop_deadline == 0) stop_deadline = now + SHUTDOWN_GRACE_NS;

        /* Take more from the queue when the last batch is under way. */
        bool poked = atomic_exchange(&d->poked, false);
        /* Every claimed delivery ends as one outcome: claiming only while
         * outcomes + in flight + the claim fit in the outcome buffer, it
         * never overflows, whatever the store does. */
        size_t want = 2 * (size_t)d->conf.concurrency;
        if (want > CLAIM_MAX) want = CLAIM_MAX;
        bool can_claim = !stopping && d->ready == NULL && d->in_flight < d->conf.concurrency &&
                         d->noutcomes + d->in_flight + want <= OUTCOMES_MAX;
        if (poked && d->conf.nschedule && d->conf.schedule_ms[0] > 0)
            /* A new message's first attempt waits (schedule entry 0): the
             * look the poke makes now finds it not due yet. */
            due_at(d, (int64_t)(gh_wall_ms() + d->conf.schedule_ms[0]));
        if (can_claim && (poked || now >= next_poll)) {
            int64_t wall = (int64_t)gh_wall_ms();
            size_t got = claim(d, want);
            /* The store has every retry scheduled so far once no outcome
             * waits to be recorded: what was due by now was looked for. */
            if (d->due_wall_ms != 0 && d->due_wall_ms <= wall && d->noutcomes == 0)
                d->due_wall_ms = 0;
            if (got > 0 || poked)
                d->poll_ms = POLL_MS;
            else
                d->poll_ms = d->poll_ms * 2 < IDLE_POLL_MAX_MS ? d->poll_ms * 2 : IDLE_POLL_MAX_MS;
            next_poll = got == want ? now : now + d->poll_ms * 1000000ull;
        }
        while (!stopping && d->ready && d->in_flight < d->conf.concurrency) {
            struct job *j = d->ready;
            d->ready = j->next;
            if (d->ready == NULL) d->ready_tail = NULL;
            j->next = NULL;
            start(d, j);
        }
        curl_multi_perform(d->multi, &running);
        while ((m = curl_multi_info_read(d->multi, &left)) != NULL)
            if (m->msg == CURLMSG_DONE) finished(d, m);

        now = gh_now_ns();
        if (d->noutcomes >= 256 ||
            (d->noutcomes && (now - d->first_outcome_ns >= RECORD_EVERY_NS || d->in_flight == 0)))
            record(d);
        if (now >= next_pending) {
            uint64_t n = 0;
            struct gh_err err = {0};
            if (gh_store_hook_pending_count(d->st, &n, &err) == GH_OK)
                atomic_store_explicit(&d->pending, n, memory_order_relaxed);
            next_pending = now + PENDING_EVERY_NS;
        }
        if (!stopping && now >= next_reports) {
            housekeeping(d);
            next_reports = now + REPORTS_EVERY_NS;
        }
        if (!stopping && purge(d, now)) now = gh_now_ns(); /* the waits below count from here */
        if (stopping && (d->in_flight == 0 || now >= stop_deadline)) break;

        /* Not while outcomes wait: the retries among them are not in the
         * store yet, and are recorded within RECORD_EVERY_NS. */
        if (d->due_wall_ms != 0 && d->noutcomes == 0) {
            int64_t in_ms = d->due_wall_ms - (int64_t)gh_wall_ms();
            uint64_t at = now + (in_ms > 0 ? (uint64_t)in_ms * 1000000ull : 0);
            if (at < next_poll) next_poll = at;
        }
        if (d->noutcomes) timeout_ms = RECORD_EVERY_NS / 1000000;
        /* At once only when a claim may follow (a full batch came back);
         * otherwise sockets, the poll interval or a poke wake the thread. */
        can_claim = d->ready == NULL && d->in_flight < d->conf.concurrency &&
                    d->noutcomes + d->in_flight + want <= OUTCOMES_MAX;
        if ((next_poll <= now && can_claim) || (d->ready && d->in_flight < d->conf.concurrency))
            timeout_ms = 0; /* or claimed deliveries wait to start */
        else if (next_poll > now && (long)((next_poll - now + 999999) / 1000000) < timeout_ms)
            /* Rounded up: rounded down, the last part of a millisecond
             * before the poll was a busy loop (a whole core for up to 1 ms
             * in every POLL_MS, on an idle gateway). */
            timeout_ms = (long)((next_poll - now + 999999) / 1000000);
        if (!stopping && d->retention.next_ns <= now)
            timeout_ms = 0; /* a pass goes on */
        else if (!stopping && (long)((d->retention.next_ns - now + 999999) / 1000000) < timeout_ms)
            timeout_ms = (long)((d->retention.next_ns - now + 999999) / 1000000);
        if (stopping) timeout_ms = 10;
        if (timeout_ms > 0) curl_multi_poll(d->multi, NULL, 0, (int)timeout_ms, NULL);
    }
    /* In flight at the deadline: abandoned unrecorded, so delivered again
     * at the next start. What finished is recorded. */
    record(d);
    return NULL;
}

struct gh_hooks_dispatcher *gh_hooks_dispatcher_start(struct gh_store *st, struct gh_secrets *sec,
                                                      struct gh_audit_service *audit,
                                                      const struct gh_config_webhooks *cfg,
                                                      struct gh_err *err)
{
    struct gh_hooks_dispatcher *d = calloc(1, sizeof(*d));
    char rnd[13];

    if (d == NULL) {
        gh_err_set(err, NULL, 0, 0, "webhooks: out of memory");
        return NULL;
    }
    d->st = st;
    d->audit = audit;
    pthread_mutex_init(&d->mu, NULL);
    conf_from(&d->next_conf, cfg);
    d->conf = d->next_conf;
    d->poll_ms = POLL_MS;
    gh_hooks_retention_init(&d->retention, d->conf.retention_ms, gh_now_ns());
    if (getrandom(&d->rng, sizeof(d->rng), 0) != sizeof(d->rng) || d->rng == 0)
        d->rng = gh_now_ns() | 1;
    /* The claims of this process: a new name at each start, so what a
     * killed process held is claimed again (at least once). */
    if (gh_store_random_base62(rnd, 12, err) != GH_OK) goto fail;
    snprintf(d->owner, sizeof(d->owner), "gh-%ld-%s", (long)getpid(), rnd);
    d->keys = gh_hooks_keycache_new(sec, KEYCACHE_SLOTS);
    d->outcomes = calloc(OUTCOMES_MAX, sizeof(*d->outcomes));
    d->multi = curl_multi_init();
    if (d->keys == NULL || d->outcomes == NULL || d->multi == NULL) {
        gh_err_set(err, NULL, 0, 0, "webhooks: out of memory");
        goto fail;
    }
    if (pthread_create(&d->thread, NULL, dispatcher_main, d) != 0) {
        gh_err_set(err, NULL, 0, 0, "webhooks: cannot start the delivery thread");
        goto fail;
    }
    pthread_setname_np(d->thread, "gh-webhooks");
    d->started = true;
    return d;
fail:
    gh_hooks_dispatcher_free(d);
    return NULL;
}

int gh_hooks_dispatcher_configure(struct gh_hooks_dispatcher *d,
                                  const struct gh_config_webhooks *cfg)
{
    if (d == NULL) return GH_OK;
    pthread_mutex_lock(&d->mu);
    conf_from(&d->next_conf, cfg);
    pthread_mutex_unlock(&d->mu);
    return GH_OK;
}

void gh_hooks_dispatcher_poke(struct gh_hooks_dispatcher *d)
{
    if (d == NULL) return;
    atomic_store(&d->poked, true);
    curl_multi_wakeup(d->multi);
}

uint64_t gh_hooks_dispatcher_first_delay(struct gh_hooks_dispatcher *d)
{
    uint64_t ms = 0;

    if (d == NULL) return 0;
    pthread_mutex_lock(&d->mu);
    if (d->next_conf.nschedule) ms = d->next_conf.schedule_ms[0];
    pthread_mutex_unlock(&d->mu);
    return ms;
}

void gh_hooks_dispatcher_stats(struct gh_hooks_dispatcher *d, struct gh_hooks_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (d == NULL) return;
    out->delivered = rd(&d->delivered);
    out->failed = rd(&d->failed);
    out->retried = rd(&d->retried);
    out->looks_found = rd(&d->looks_found);
    out->looks_empty = rd(&d->looks_empty);
    out->looks_failed = rd(&d->looks_failed);
    out->attempts_ok = rd(&d->att_ok);
    out->attempts_http_error = rd(&d->att_http);
    out->attempts_network_error = rd(&d->att_net);
    out->attempts_timeout = rd(&d->att_timeout);
    out->attempts_blocked = rd(&d->att_blocked);
    out->in_flight = rd(&d->flying);
    out->pending = rd(&d->pending);
    out->disabled_endpoints = rd(&d->disabled_count);
    out->purged_messages = rd(&d->purged_messages);
    out->purged_deliveries = rd(&d->purged_deliveries);
    out->purged_attempts = rd(&d->purged_attempts);
    out->purged_undelivered = rd(&d->purged_undelivered);
    out->purge_failures = rd(&d->purge_failures);
    for (int i = 0; i < GH_HOOKS_NBUCKETS; i++)
        out->latency_buckets[i] = rd(&d->lat[i]);
    out->latency_sum_ns = rd(&d->lat_sum_ns);
}

void gh_hooks_dispatcher_free(struct gh_hooks_dispatcher *d)
{
    if (d == NULL) return;
    if (d->started) {
        atomic_store(&d->stop, true);
        curl_multi_wakeup(d->multi);
        pthread_join(d->thread, NULL);
    }
    /* Abandoned attempts and claims: the store still has them pending. */
    while (d->flying_list) {
        struct job *j = d->flying_list;
        curl_multi_remove_handle(d->multi, j->h);
        unfly(d, j);
        job_put(d, j);
    }
    while (d->ready) {
        struct job *j = d->ready;
        d->ready = j->next;
        job_put(d, j);
    }
    while (d->free_jobs) {
        struct job *j = d->free_jobs;
        d->free_jobs = j->next;
        if (j->h) curl_easy_cleanup(j->h);
        free(j);
    }
    if (d->multi) curl_multi_cleanup(d->multi);
    gh_hooks_keycache_free(d->keys);
    free(d->outcomes);
    pthread_mutex_destroy(&d->mu);
    free(d->disabled);
    free(d);
}
