/* The span exporter on the dispatcher thread (see tracer.h). */
#include "telemetry/tracer.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/log_episode.h"
#include "telemetry/otlp.h"
#include "telemetry/trace.h"
#include "core/version.h"

#define MAX_IN_FLIGHT     4
#define SHUTDOWN_GRACE_NS 2000000000ull
#define BACKOFF_FIRST_MS  1000
#define BACKOFF_MAX_MS    30000

/* The settings a batch is sent with, copied under the lock so that a
 * reload never changes them under a call in progress. */
struct tracer_conf {
    char url[2048];
    char service[256];
    bool json;
    uint32_t batch_size;
    uint32_t timeout_ms;
    uint32_t max_retry_ms;
    uint32_t flush_ms;
};

/* One batch: encoded once, posted until it succeeds or is given up. */
struct export
{
    CURL *h;
    struct curl_slist *hdrs;
    struct gh_otlp_buf body;
    uint64_t nspans;
    unsigned attempts;
    uint64_t first_ns; /* first attempt */
    uint64_t due_ns;   /* next attempt (waiting batches) */
    bool json;
    bool probe;                         /* posted in an outage, alone */
    struct export *next;                /* in the waiting list */
    struct export *fly_prev, *fly_next; /* in the in-flight list */
};

struct gh_tracer {
    struct gh_trace_worker **workers;
    int nworkers;
    pthread_t thread;
    bool started;
    _Atomic bool stop;
    CURLM *multi;

    pthread_mutex_t mu; /* guards conf */
    struct tracer_conf conf;

    /* dispatcher thread only */
    uint64_t *taken;       /* per worker: records read in this batch */
    struct gh_span *spans; /* one batch of spans */
    char (*names)[160];    /* server span names */
    uint32_t cap_recs;
    struct export *waiting; /* batches to retry, by due time */
    struct export *flying;  /* batches posted now */
    int in_flight;
    int next_worker; /* round robin over the rings */
    /* The endpoint answered a retryable failure (a 5xx, 429, no answer)
     * and nothing has succeeded since: no new batch is gathered, and the
     * waiting ones go one at a time, as probes, at the exporter's backoff.
     * Spans stay in the workers' rings meanwhile, where a full ring drops
     * them as queue_full: an outage costs the collector one request per
     * backoff, not one per flush_interval per batch. */
    bool outage;
    uint32_t outage_failures;      /* posts failed in this outage: its backoff */
    uint64_t probe_ns;             /* in an outage: the next post, of any batch, not before */
    struct gh_log_episode failing; /* the outage, for the log */
    char url[2048];                /* the endpoint the outage is of */
    uint64_t last_log_ns;          /* other lines: spans dropped */
    char instance_id[GH_CONFIG_NODE_ID_MAX + 1];

    _Atomic uint64_t spans_exported, spans_dropped_export;
    _Atomic uint64_t exports_success, exports_retry, exports_failure;
};

static void add(_Atomic uint64_t *c, uint64_t n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static void conf_from(struct tracer_conf *c, const struct gh_config *cfg)
{
    const struct gh_config_tracing *t = &cfg->tracing;
    snprintf(c->url, sizeof(c->url), "%s", t->enabled && t->url ? t->url : "");
    snprintf(c->service, sizeof(c->service), "%s", t->service_name ? t->service_name : "gatehouse");
    c->json = t->json;
    c->batch_size = t->batch_size ? t->batch_size : 512;
    c->timeout_ms = t->timeout_ms ? t->timeout_ms : 10000;
    c->max_retry_ms = t->max_retry_ms;
    c->flush_ms = t->flush_interval_ms ? t->flush_interval_ms : 200;
}

struct gh_tracer *gh_tracer_new(const struct gh_config *cfg, int nworkers, struct gh_err *err)
{
    struct gh_tracer *t = calloc(1, sizeof(*t));

    if (t == NULL) goto oom;
    pthread_mutex_init(&t->mu, NULL);
    conf_from(&t->conf, cfg);
    t->nworkers = nworkers;
    t->workers = calloc((size_t)nworkers, sizeof(*t->workers));
    if (t->workers == NULL) goto oom;
    for (int i = 0; i < nworkers; i++) {
        t->workers[i] =
            gh_trace_worker_new(cfg->tracing.queue_size ? cfg->tracing.queue_size : 2048);
        if (t->workers[i] == NULL) goto oom;
    }
    /* service.instance.id: the node id, so that spans name the node whose
     * logs, metrics and audit events tell the same story. */
    snprintf(t->instance_id, sizeof(t->instance_id), "%s", cfg->node.id ? cfg->node.id : "");
    return t;
oom:
    gh_err_set(err, NULL, 0, 0, "tracing: out of memory");
    gh_tracer_free(t);
    return NULL;
}

struct gh_trace_worker *gh_tracer_worker(struct gh_tracer *t, int i)
{
    return t && i >= 0 && i < t->nworkers ? t->workers[i] : NULL;
}

void gh_tracer_configure(struct gh_tracer *t, const struct gh_config *cfg)
{
    if (t == NULL) return;
    pthread_mutex_lock(&t->mu);
    conf_from(&t->conf, cfg);
    pthread_mutex_unlock(&t->mu);
}

void gh_tracer_counts(struct gh_tracer *t, struct gh_tracer_counts *out)
{
    memset(out, 0, sizeof(*out));
    if (t == NULL) return;
    for (int i = 0; i < t->nworkers; i++) {
        out->spans_dropped_queue +=
            atomic_load_explicit(&t->workers[i]->dropped_spans, memory_order_relaxed);
        out->records_pending += gh_trace_worker_pending(t->workers[i]);
    }
    out->spans_exported = atomic_load_explicit(&t->spans_exported, memory_order_relaxed);
    out->spans_dropped_export =
        atomic_load_explicit(&t->spans_dropped_export, memory_order_relaxed);
    out->exports_success = atomic_load_explicit(&t->exports_success, memory_order_relaxed);
    out->exports_retry = atomic_load_explicit(&t->exports_retry, memory_order_relaxed);
    out->exports_failure = atomic_load_explicit(&t->exports_failure, memory_order_relaxed);
}

/* ---- batches ------------------------------------------------------------ */

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
    (void)p;
    (void)arg;
    return size * n;
}

static void export_free(struct export *e)
{
    if (e == NULL) return;
    if (e->h) curl_easy_cleanup(e->h);
    curl_slist_free_all(e->hdrs);
    free(e->body.data);
    free(e);
}

/* Gathers up to one batch of records from the rings, round robin, and
 * encodes their spans straight from the ring slots, which are given back
 * once encoded. NULL when there is nothing to send. */
static struct export *gather(struct gh_tracer *t, const struct tracer_conf *c)
{
    uint32_t nrec = 0, want = c->batch_size < t->cap_recs ? c->batch_size : t->cap_recs;
    size_t nspans = 0;
    struct export *e = NULL;
    int rc = 0;
    struct gh_otlp_resource res = {
        .service_name = gh_str_cstr(c->service),
        .service_version = gh_str_cstr(gh_version()),
        .instance_id = gh_str_cstr(t->instance_id),
        .scope_name = gh_str_cstr("gatehouse"),
        .scope_version = gh_str_cstr(gh_version()),
    };

    for (int k = 0; k < t->nworkers; k++)
        t->taken[k] = 0;
    for (int k = 0; k < t->nworkers && nspans < c->batch_size && nrec < want; k++) {
        int wi = (t->next_worker + k) % t->nworkers;
        struct gh_trace_worker *tw = t->workers[wi];
        while (nspans < c->batch_size && nrec < want) {
            /* A record has at most four spans: take no more than fit. */
            uint32_t room = (uint32_t)((c->batch_size - nspans + 3) / 4);
            const struct gh_trace_rec *recs;
            uint32_t got;
            if (room > want - nrec) room = want - nrec;
            got = gh_trace_worker_peek(tw, t->taken[wi], &recs, room);
            if (got == 0) break;
            for (uint32_t i = 0; i < got; i++, nrec++)
                nspans += gh_trace_rec_spans(&recs[i], t->spans + nspans, t->names[nrec],
                                             sizeof(t->names[nrec]));
            t->taken[wi] += got;
        }
    }
    t->next_worker = (t->next_worker + 1) % (t->nworkers ? t->nworkers : 1);
    if (nspans > 0) {
        e = calloc(1, sizeof(*e));
        if (e != NULL) {
            e->nspans = nspans;
            e->json = c->json;
            rc = c->json ? gh_otlp_encode_json(&e->body, &res, t->spans, nspans)
                         : gh_otlp_encode_proto(&e->body, &res, t->spans, nspans);
        }
    }
    /* The spans point into the slots: give them back only now. */
    for (int k = 0; k < t->nworkers; k++)
        if (t->taken[k]) gh_trace_worker_release(t->workers[k], t->taken[k]);
    if (nspans > 0 && (e == NULL || rc != 0)) {
        add(&t->spans_dropped_export, nspans);
        export_free(e);
        return NULL;
    }
    return e;
}

static int post(struct gh_tracer *t, struct export *e, const struct tracer_conf *c)
{
    char agent[80]; /* libcurl keeps its own copy */

    snprintf(agent, sizeof(agent), "gatehouse/%s", gh_version());
    if (e->h) {
        curl_easy_cleanup(e->h);
        curl_slist_free_all(e->hdrs);
        e->hdrs = NULL;
    }
    e->h = curl_easy_init();
    if (e->h == NULL) return -1;
    e->hdrs = curl_slist_append(NULL, e->json ? "Content-Type: application/json"
                                              : "Content-Type: application/x-protobuf");
    if (e->hdrs) e->hdrs = curl_slist_append(e->hdrs, "Expect:");
    if (e->hdrs == NULL) return -1;
    if (curl_easy_setopt(e->h, CURLOPT_URL, c->url) != CURLE_OK ||
        curl_easy_setopt(e->h, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
        curl_easy_setopt(e->h, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK ||
        curl_easy_setopt(e->h, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
        curl_easy_setopt(e->h, CURLOPT_POST, 1L) != CURLE_OK ||
        curl_easy_setopt(e->h, CURLOPT_POSTFIELDS, e->body.data) != CURLE_OK ||
        curl_easy_setopt(e->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)e->body.len) != CURLE_OK ||
        curl_easy_setopt(e->h, CURLOPT_HTTPHEADER, e->hdrs) != CURLE_OK ||
        curl_easy_setopt(e->h, CURLOPT_USERAGENT, agent) != CURLE_OK ||
        curl_easy_setopt(e->h, CURLOPT_TIMEOUT_MS, (long)c->timeout_ms) != CURLE_OK ||
        curl_easy_setopt(e->h, CURLOPT_CONNECTTIMEOUT_MS,
                         (long)(c->timeout_ms < 5000 ? c->timeout_ms : 5000)) != CURLE_OK ||
        curl_easy_setopt(e->h, CURLOPT_WRITEFUNCTION, discard) != CURLE_OK ||
        curl_easy_setopt(e->h, CURLOPT_PRIVATE, e) != CURLE_OK)
        return -1;
    if (e->attempts++ == 0) e->first_ns = gh_now_ns();
    e->probe = t->outage;
    if (curl_multi_add_handle(t->multi, e->h) != CURLM_OK) return -1;
    t->in_flight++;
    e->fly_prev = NULL;
    e->fly_next = t->flying;
    if (t->flying) t->flying->fly_prev = e;
    t->flying = e;
    return 0;
}

/* At most one line every ten seconds: a collector that is down must not
 * flood the log. */
static bool may_log(struct gh_tracer *t)
{
    return gh_log_due(&t->last_log_ns);
}

static void unfly(struct gh_tracer *t, struct export *e)
{
    if (e->fly_prev)
        e->fly_prev->fly_next = e->fly_next;
    else
        t->flying = e->fly_next;
    if (e->fly_next) e->fly_next->fly_prev = e->fly_prev;
    e->fly_prev = e->fly_next = NULL;
    curl_multi_remove_handle(t->multi, e->h);
    t->in_flight--;
}

static void give_up(struct gh_tracer *t, struct export *e)
{
    add(&t->spans_dropped_export, e->nspans);
    add(&t->exports_failure, 1);
    export_free(e);
}

/* <ms> spread by +-20%, so that several gateways do not retry in step. */
static uint64_t jittered(uint64_t ms, uint64_t now)
{
    return ms * (800 + (uint32_t)(now >> 10) % 401) / 1000;
}

/* Keeps <e> for another attempt, or gives it up when its time is over.
 * The delay doubles from 1 s to 30 s with the batch's attempts (a longer
 * Retry-After wins); in an outage with the outage's failures instead, and
 * it holds for every batch (probe_ns), so the collector gets one post per
 * backoff however many batches wait. */
static void retry_later(struct gh_tracer *t, struct export *e, uint64_t retry_after_s,
                        const struct tracer_conf *c)
{
    uint64_t now = gh_now_ns(), delay_ms = BACKOFF_FIRST_MS;
    unsigned steps = t->outage ? t->outage_failures : e->attempts;
    struct export **pp;

    for (unsigned i = 1; i < steps && delay_ms < BACKOFF_MAX_MS; i++)
        delay_ms *= 2;
    if (delay_ms > BACKOFF_MAX_MS) delay_ms = BACKOFF_MAX_MS;
    delay_ms = jittered(delay_ms, now);
    if (retry_after_s * 1000 > delay_ms) delay_ms = retry_after_s * 1000;
    /* Not past max_retry: a Retry-After of an hour would otherwise stop
     * the exporter for an hour after the batch that heard it is dropped. */
    if (delay_ms > c->max_retry_ms) delay_ms = c->max_retry_ms;
    if (t->outage) t->probe_ns = now + delay_ms * 1000000ull;
    if (atomic_load(&t->stop) ||
        now + delay_ms * 1000000ull - e->first_ns > (uint64_t)c->max_retry_ms * 1000000ull) {
        give_up(t, e);
        return;
    }
    add(&t->exports_retry, 1);
    e->due_ns = now + delay_ms * 1000000ull;
    for (pp = &t->waiting; *pp && (*pp)->due_ns <= e->due_ns; pp = &(*pp)->next)
        ;
    e->next = *pp;
    *pp = e;
}

/* A failure of <e> the collector may recover from: the outage begins, or
 * its probe failed and the backoff doubles (the batches in flight when it
 * began fail together, and count once). */
static void outage_failure(struct gh_tracer *t, const struct export *e)
{
    if (!t->outage) {
        t->outage = true;
        t->outage_failures = 1;
    } else if (e->probe) {
        t->outage_failures++;
    }
}

/* The outage ends: a post went through, or the endpoint changed (a
 * reload pointed tracing elsewhere, or turned it off). */
static void outage_end(struct gh_tracer *t)
{
    t->outage = false;
    t->outage_failures = 0;
    t->probe_ns = 0;
    for (struct export *w = t->waiting; w; w = w->next)
        w->due_ns = 0; /* they go now */
}

static void finished(struct gh_tracer *t, CURLMsg *m, const struct tracer_conf *c)
{
    struct export *e = NULL;
    long code = 0;
    curl_off_t retry_after = 0;

    curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&e);
    if (e == NULL) {
        curl_multi_remove_handle(t->multi, m->easy_handle);
        return;
    }
    unfly(t, e);
    if (m->data.result != CURLE_OK) {
        outage_failure(t, e);
        gh_log_episode_fail(&t->failing,
                            "tracing: export to the OTLP endpoint failed: %s; retrying",
                            curl_easy_strerror(m->data.result));
        retry_later(t, e, 0, c);
        return;
    }
    curl_easy_getinfo(e->h, CURLINFO_RESPONSE_CODE, &code);
    if (code >= 200 && code < 300) {
        add(&t->spans_exported, e->nspans);
        add(&t->exports_success, 1);
        export_free(e);
        if (t->outage) outage_end(t); /* the probe went through */
        gh_log_episode_ok(&t->failing, "tracing: export to the OTLP endpoint");
        return;
    }
    if (code == 429 || code == 502 || code == 503 || code == 504) {
        curl_easy_getinfo(e->h, CURLINFO_RETRY_AFTER, &retry_after);
        outage_failure(t, e);
        gh_log_episode_fail(&t->failing, "tracing: the OTLP endpoint answered %ld; retrying", code);
        retry_later(t, e, retry_after > 0 && retry_after < 3600 ? (uint64_t)retry_after : 0, c);
        return;
    }
    if (may_log(t)) gh_log_warn("tracing: the OTLP endpoint answered %ld; spans dropped", code);
    give_up(t, e);
}

/* ---- the thread --------------------------------------------------------- */

static bool rings_have(struct gh_tracer *t, uint64_t at_least)
{
    for (int i = 0; i < t->nworkers; i++)
        if (gh_trace_worker_pending(t->workers[i]) >= at_least) return true;
    return false;
}

static void *dispatcher_main(void *arg)
{
    struct gh_tracer *t = arg;
    struct tracer_conf c;
    uint64_t stop_deadline = 0;

    for (;;) {
        uint64_t now = gh_now_ns();
        bool stopping = atomic_load(&t->stop);
        int running = 0, left;
        long timeout_ms;
        CURLMsg *m;

        pthread_mutex_lock(&t->mu);
        c = t->conf;
        pthread_mutex_unlock(&t->mu);
        if (stopping && stop_deadline == 0) stop_deadline = now + SHUTDOWN_GRACE_NS;

        if (strcmp(c.url, t->url) != 0) {
            /* Another endpoint (or none): an outage of the old one is over. */
            if (t->outage) outage_end(t);
            t->failing = (struct gh_log_episode){0};
            snprintf(t->url, sizeof(t->url), "%s", c.url);
        }
        if (c.url[0] == '\0') {
            /* Tracing is off: nothing is recorded; drop what a reload left. */
            while (t->waiting) {
                struct export *e = t->waiting;
                t->waiting = e->next;
                give_up(t, e);
            }
        }
        /* Batches that waited past max_retry behind an outage's probe. */
        for (struct export **pp = &t->waiting; *pp;) {
            struct export *e = *pp;
            if (now - e->first_ns <= (uint64_t)c.max_retry_ms * 1000000ull) {
                pp = &e->next;
                continue;
            }
            *pp = e->next;
            give_up(t, e);
        }
        /* Retries that are due (in an outage, one at a time, at the
         * exporter's backoff), then new batches (none in an outage). */
        while (c.url[0] && t->waiting &&
               (t->outage ? t->in_flight == 0 && now >= t->probe_ns
                          : t->waiting->due_ns <= now && t->in_flight < MAX_IN_FLIGHT)) {
            struct export *e = t->waiting;
            t->waiting = e->next;
            if (post(t, e, &c) != 0) give_up(t, e);
        }
        while (c.url[0] && t->in_flight < MAX_IN_FLIGHT &&
               (!t->outage || (t->waiting == NULL && t->in_flight == 0 && now >= t->probe_ns))) {
            struct export *e = gather(t, &c);
            if (e == NULL) break;
            if (post(t, e, &c) != 0) give_up(t, e);
        }
        curl_multi_perform(t->multi, &running);
        while ((m = curl_multi_info_read(t->multi, &left)) != NULL)
            if (m->msg == CURLMSG_DONE) finished(t, m, &c);

        if (stopping) {
            /* In an outage nothing more will go: what the rings hold is
             * counted as lost below, now rather than after the grace. */
            bool idle = t->in_flight == 0 && (t->outage || !rings_have(t, 1));
            if (idle || now >= stop_deadline) break;
        }
        /* Sleep until a socket is ready, a retry is due, or the next look
         * at the rings; sooner while they hold a full batch. */
        timeout_ms = stopping ? 10 : (long)c.flush_ms;
        if (!t->outage && rings_have(t, c.batch_size) && t->in_flight < MAX_IN_FLIGHT)
            timeout_ms = 0;
        {
            /* The next post's time: in an outage the probe's, once nothing
             * is in flight (once it has passed with nothing waiting, the
             * rings' next look); else the first retry's. Rounded up: a
             * timeout of 0 would spin until the due time. */
            uint64_t at = 0;
            if (t->outage && t->in_flight == 0)
                at = t->probe_ns;
            else if (!t->outage && t->waiting && t->in_flight < MAX_IN_FLIGHT)
                at = t->waiting->due_ns;
            if (at > now && (long)((at - now) / 1000000 + 1) < timeout_ms)
                timeout_ms = (long)((at - now) / 1000000 + 1);
            else if (at != 0 && at <= now && !t->outage)
                timeout_ms = 0;
        }
        if (timeout_ms > 0) curl_multi_poll(t->multi, NULL, 0, (int)timeout_ms, NULL);
    }
    /* What could not be sent in time is counted as lost. */
    while (t->flying) {
        struct export *e = t->flying;
        unfly(t, e);
        give_up(t, e);
    }
    while (t->waiting) {
        struct export *e = t->waiting;
        t->waiting = e->next;
        give_up(t, e);
    }
    for (int i = 0; i < t->nworkers; i++) {
        const struct gh_trace_rec *rec;
        uint64_t lost = 0;
        while (gh_trace_worker_peek(t->workers[i], 0, &rec, 1) == 1) {
            lost += 1u + rec->has_auth + rec->has_limits + rec->has_upstream;
            gh_trace_worker_release(t->workers[i], 1);
        }
        add(&t->spans_dropped_export, lost);
    }
    return NULL;
}

int gh_tracer_start(struct gh_tracer *t, struct gh_err *err)
{
    /* Room for one batch; a reload that asks for more sends batches of this
     * size. */
    pthread_mutex_lock(&t->mu);
    t->cap_recs = t->conf.batch_size;
    pthread_mutex_unlock(&t->mu);
    t->taken = calloc((size_t)t->nworkers, sizeof(*t->taken));
    t->spans = calloc((size_t)t->cap_recs * 4, sizeof(*t->spans));
    t->names = calloc(t->cap_recs, sizeof(*t->names));
    t->multi = curl_multi_init();
    if (t->taken == NULL || t->spans == NULL || t->names == NULL || t->multi == NULL)
        return gh_err_set(err, NULL, 0, 0, "tracing: out of memory");
    if (pthread_create(&t->thread, NULL, dispatcher_main, t) != 0)
        return gh_err_set(err, NULL, 0, 0, "tracing: cannot start the dispatcher thread");
    pthread_setname_np(t->thread, "gh-dispatch");
    t->started = true;
    return GH_OK;
}

void gh_tracer_free(struct gh_tracer *t)
{
    if (t == NULL) return;
    if (t->started) {
        atomic_store(&t->stop, true);
        curl_multi_wakeup(t->multi);
        pthread_join(t->thread, NULL);
    }
    if (t->multi) curl_multi_cleanup(t->multi);
    for (int i = 0; t->workers && i < t->nworkers; i++)
        gh_trace_worker_free(t->workers[i]);
    free(t->workers);
    free(t->taken);
    free(t->spans);
    free(t->names);
    pthread_mutex_destroy(&t->mu);
    free(t);
}
