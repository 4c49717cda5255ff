/* Tracing on the request path (see trace.h). */
#include "telemetry/trace.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "core/clock.h"
#include "core/worker.h"
#include "http/conn.h"
#include "proxy/router.h"

/* ---- ids ---------------------------------------------------------------- */

/* xoshiro256**: ids must be unique and unpredictable enough that two
 * gateways never collide, not secret, so a seeded fast generator serves. */
static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t next64(uint64_t s[4])
{
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* Eight random bytes, never all zero (W3C: an all-zero id is invalid). */
static void new_id8(struct gh_trace_worker *tw, uint8_t out[8])
{
    uint64_t v;
    do
        v = next64(tw->rng);
    while (v == 0);
    memcpy(out, &v, 8);
}

static uint64_t be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

/* OpenTelemetry's TraceIdRatioBased: the low 8 bytes of the trace id
 * against ratio * 2^64, so every node decides alike for one trace. */
static bool ratio_keeps(double ratio, const uint8_t trace_id[16])
{
    if (ratio >= 1.0) return true;
    if (ratio <= 0.0) return false;
    return be64(trace_id + 8) < (uint64_t)(ratio * 18446744073709551615.0);
}

/* ---- the worker's side -------------------------------------------------- */

struct gh_trace_worker *gh_trace_worker_new(uint32_t capacity)
{
    struct gh_trace_worker *tw = calloc(1, sizeof(*tw));
    uint32_t cap = 16;

    if (tw == NULL) return NULL;
    while (cap < capacity && cap < (1u << 20))
        cap <<= 1;
    tw->slots = calloc(cap, sizeof(*tw->slots));
    if (tw->slots == NULL) {
        free(tw);
        return NULL;
    }
    tw->mask = cap - 1;
    if (getrandom(tw->rng, sizeof(tw->rng), 0) != (ssize_t)sizeof(tw->rng)) {
        uint64_t seed = gh_now_ns() ^ (uint64_t)(uintptr_t)tw;
        for (int i = 0; i < 4; i++)
            tw->rng[i] = seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    }
    if ((tw->rng[0] | tw->rng[1] | tw->rng[2] | tw->rng[3]) == 0) tw->rng[0] = 1;
    gh_trace_worker_tick(tw);
    return tw;
}

void gh_trace_worker_free(struct gh_trace_worker *tw)
{
    if (tw == NULL) return;
    free(tw->slots);
    free(tw);
}

void gh_trace_worker_tick(struct gh_trace_worker *tw)
{
    struct timespec rt;
    clock_gettime(CLOCK_REALTIME, &rt);
    tw->mono_to_unix_ns = (int64_t)((uint64_t)rt.tv_sec * 1000000000ull + (uint64_t)rt.tv_nsec) -
                          (int64_t)gh_now_ns();
}

/* ---- the stage ---------------------------------------------------------- */

#define MAX_STATE_LINES 16

void gh_trace_stage(struct gh_req *r)
{
    const struct gh_config_tracing *tc = &r->snap->cfg->tracing;
    struct gh_trace_worker *tw = r->conn->worker->trace;
    gh_str tp[2], ts[MAX_STATE_LINES];
    size_t ntp = 0, nts = 0;
    bool too_many_states = false;
    bool sampled;

    if (!tc->enabled || tw == NULL) return;
    for (uint32_t i = 0; i < r->head.nheaders; i++) {
        const struct gh_http_header *h = &r->head.headers[i];
        if (h->name.len == 11 && gh_str_caseeq_lit(h->name, "traceparent")) {
            if (ntp < 2) tp[ntp++] = h->value; /* two already make it invalid */
        } else if (h->name.len == 10 && gh_str_caseeq_lit(h->name, "tracestate")) {
            if (nts < MAX_STATE_LINES)
                ts[nts++] = h->value;
            else
                too_many_states = true;
        }
    }
    /* More field lines than we keep would need more than 512 bytes of
     * combined value anyway: the spec lets us drop tracestate then. */
    gh_tracectx_parse(&r->tr_ctx, tp, ntp, ts, too_many_states ? 0 : nts);
    if (r->tr_ctx.valid) {
        memcpy(r->tr_trace_id, r->tr_ctx.trace_id, 16);
        r->tr_has_parent = true;
        sampled = (r->tr_ctx.flags & GH_TRACE_FLAG_SAMPLED) != 0;
    } else {
        new_id8(tw, r->tr_trace_id);
        new_id8(tw, r->tr_trace_id + 8);
        r->tr_ctx.state_len = 0;
        sampled = ratio_keeps(tc->sample_ratio, r->tr_trace_id);
    }
    r->tr_flags = sampled ? GH_TRACE_FLAG_SAMPLED : 0;
    new_id8(tw, r->tr_server_id);
    new_id8(tw, r->tr_upstream_id);
    r->tr_on = true;
}

bool gh_trace_replaces_headers(const struct gh_req *r)
{
    return r->tr_on;
}

size_t gh_trace_upstream_headers(const struct gh_req *r, char *out)
{
    char *p = out;

    if (!r->tr_on) return 0;
    memcpy(p, "traceparent: ", 13);
    p += 13;
    gh_traceparent_format(p, r->tr_trace_id, r->tr_upstream_id, r->tr_flags);
    p += GH_TRACEPARENT_LEN;
    memcpy(p, "\r\n", 2);
    p += 2;
    if (r->tr_ctx.state_len) {
        memcpy(p, "tracestate: ", 12);
        p += 12;
        memcpy(p, r->tr_ctx.state, r->tr_ctx.state_len);
        p += r->tr_ctx.state_len;
        memcpy(p, "\r\n", 2);
        p += 2;
    }
    return (size_t)(p - out);
}

/* ---- the record --------------------------------------------------------- */

/* Copies at most <cap> bytes of <s>, never cutting a UTF-8 sequence. */
static size_t clip(char *dst, size_t cap, const char *s, size_t n)
{
    if (n > cap) {
        n = cap;
        /* Step back over continuation bytes to a sequence start. */
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
    }
    memcpy(dst, s, n);
    return n;
}

#define CLIP(rec, field, p, n)                                                                     \
    ((rec)->field##_len =                                                                          \
         (__typeof__((rec)->field##_len))clip((rec)->field, sizeof((rec)->field), (p), (n)))

static uint64_t to_unix(const struct gh_trace_worker *tw, uint64_t mono)
{
    return (uint64_t)((int64_t)mono + tw->mono_to_unix_ns);
}

static const char *up_error_name(enum gh_up_error e)
{
    switch (e) {
    case GH_UPERR_REFUSED: return "connection_refused";
    case GH_UPERR_RESET: return "connection_reset";
    case GH_UPERR_TIMEOUT: return "timeout";
    case GH_UPERR_BAD_RESPONSE: return "bad_response";
    case GH_UPERR_TLS: return "tls";
    case GH_UPERR_BUSY: return "busy";
    default: return NULL;
    }
}

/* "host:port", "[v6]:port" or "host" into its parts. */
static void split_host_port(gh_str hp, gh_str *host, uint16_t *port)
{
    size_t i = hp.len;
    unsigned v = 0, mul = 1;

    *host = hp;
    *port = 0;
    while (i > 0 && hp.ptr[i - 1] >= '0' && hp.ptr[i - 1] <= '9' && hp.len - i < 5)
        i--;
    if (i == 0 || i == hp.len || hp.ptr[i - 1] != ':') return;
    if (hp.ptr[0] != '[' && memchr(hp.ptr, ':', i - 1) != NULL) return; /* bare IPv6 */
    for (size_t k = hp.len; k > i; k--, mul *= 10)
        v += (unsigned)(hp.ptr[k - 1] - '0') * mul;
    if (v == 0 || v > 65535) return;
    *port = (uint16_t)v;
    host->len = i - 1;
    if (host->len >= 2 && host->ptr[0] == '[' && host->ptr[host->len - 1] == ']') {
        host->ptr++;
        host->len -= 2;
    }
}

static void fill(struct gh_trace_worker *tw, struct gh_trace_rec *rec, const struct gh_req *r)
{
    const struct gh_conn *c = r->conn;
    const struct gh_http_request *h = &r->head;
    const struct gh_http_header *ua;
    uint64_t now = gh_now_ns();
    gh_str host;
    uint16_t port;
    const char *err = r->error;

    memcpy(rec->trace_id, r->tr_trace_id, 16);
    memcpy(rec->server_id, r->tr_server_id, 8);
    memcpy(rec->upstream_id, r->tr_upstream_id, 8);
    rec->has_parent = r->tr_has_parent;
    if (rec->has_parent) memcpy(rec->parent_id, r->tr_ctx.parent_id, 8);
    rec->flags = r->tr_flags;
    rec->status = (uint16_t)(r->status > 0 ? r->status : 0);
    rec->t_start = to_unix(tw, r->t_start);
    rec->t_end = to_unix(tw, now);

    rec->has_auth = r->tr_auth0 != 0;
    if (rec->has_auth) {
        new_id8(tw, rec->auth_id);
        rec->t_auth0 = to_unix(tw, r->tr_auth0);
        rec->t_auth1 = to_unix(tw, r->tr_auth1 ? r->tr_auth1 : now);
        rec->auth_ok = r->tr_auth_result == 1;
    }
    rec->has_limits = r->tr_lim0 != 0;
    if (rec->has_limits) {
        new_id8(tw, rec->limits_id);
        rec->t_lim0 = to_unix(tw, r->tr_lim0);
        rec->t_lim1 = to_unix(tw, r->tr_lim1 ? r->tr_lim1 : now);
        rec->limits_ok = r->tr_lim_result == 1;
    }
    rec->has_upstream = r->t_up_start != 0;
    if (rec->has_upstream) {
        gh_str ep = gh_str_cstr(r->endpoint);
        rec->t_up0 = to_unix(tw, r->t_up_start);
        rec->t_up1 = to_unix(tw, r->tr_up_end ? r->tr_up_end : now);
        rec->up_status = (uint16_t)(r->t_up_head && r->resp.status > 0 ? r->resp.status : 0);
        rec->attempts = r->attempts;
        split_host_port(ep, &host, &port);
        CLIP(rec, up_host, host.ptr, host.len);
        rec->up_port = port;
        if (r->route) {
            const char *u = r->route->upstream->name;
            CLIP(rec, upstream, u, strlen(u));
        }
    }

    CLIP(rec, method, h->method.ptr, h->method.len);
    CLIP(rec, path, h->path.ptr, h->path.len);
    if (r->route) {
        CLIP(rec, route, r->route->cfg->name, strlen(r->route->cfg->name));
        CLIP(rec, route_path, r->route->cfg->path, strlen(r->route->cfg->path));
    }
    split_host_port(h->authority, &host, &port);
    CLIP(rec, host, host.ptr, host.len);
    rec->server_port = port ? port : (c->tls ? 443 : 80);
    CLIP(rec, scheme, c->tls ? "https" : "http", c->tls ? 5 : 4);
    CLIP(rec, peer, c->peer_ip, c->peer_ip_len);
    rec->peer_port = c->peer_port;
    rec->ua_len = 0;
    if ((ua = gh_http_find_header(h->headers, h->nheaders, "user-agent")) != NULL)
        CLIP(rec, ua, ua->value.ptr, ua->value.len);
    rec->tenant_len = 0;
    if (r->principal.kind != GH_PRINCIPAL_NONE)
        CLIP(rec, tenant, r->principal.tenant, strlen(r->principal.tenant));
    if (err == NULL) err = up_error_name(r->up_error);
    rec->error_len = 0;
    if (err) CLIP(rec, error, err, strlen(err));
    CLIP(rec, id, r->id, r->id_len);
    rec->state_len = 0;
    if (r->tr_ctx.state_len) CLIP(rec, state, r->tr_ctx.state, r->tr_ctx.state_len);
}

void gh_trace_request_end(struct gh_worker *w, struct gh_req *r)
{
    struct gh_trace_worker *tw = w->trace;
    uint64_t head, tail;
    bool failed;

    if (!r->tr_on || tw == NULL) return;
    r->tr_on = false; /* one record per request, whichever path ends it */
    failed = r->status >= 500 || r->status == 0;
    if (!(r->tr_flags & GH_TRACE_FLAG_SAMPLED) && !(failed && r->snap->cfg->tracing.sample_errors))
        return;
    head = atomic_load_explicit(&tw->head, memory_order_relaxed);
    tail = atomic_load_explicit(&tw->tail, memory_order_acquire);
    if (head - tail > tw->mask) {
        uint64_t spans = 1 + (r->tr_auth0 != 0) + (r->tr_lim0 != 0) + (r->t_up_start != 0);
        atomic_store_explicit(&tw->dropped,
                              atomic_load_explicit(&tw->dropped, memory_order_relaxed) + 1,
                              memory_order_relaxed);
        atomic_store_explicit(&tw->dropped_spans,
                              atomic_load_explicit(&tw->dropped_spans, memory_order_relaxed) +
                                  spans,
                              memory_order_relaxed);
        return;
    }
    fill(tw, &tw->slots[head & tw->mask], r);
    atomic_store_explicit(&tw->head, head + 1, memory_order_release);
}

uint32_t gh_trace_worker_peek(struct gh_trace_worker *tw, uint64_t skip,
                              const struct gh_trace_rec **out, uint32_t max)
{
    uint64_t tail = atomic_load_explicit(&tw->tail, memory_order_relaxed) + skip;
    uint64_t head = atomic_load_explicit(&tw->head, memory_order_acquire);
    uint64_t n, to_end;

    if (head <= tail) return 0;
    n = head - tail;
    to_end = (uint64_t)tw->mask + 1 - (tail & tw->mask);
    if (n > to_end) n = to_end;
    if (n > max) n = max;
    *out = &tw->slots[tail & tw->mask];
    return (uint32_t)n;
}

void gh_trace_worker_release(struct gh_trace_worker *tw, uint64_t n)
{
    uint64_t tail = atomic_load_explicit(&tw->tail, memory_order_relaxed);
    atomic_store_explicit(&tw->tail, tail + n, memory_order_release);
}

uint64_t gh_trace_worker_pending(struct gh_trace_worker *tw)
{
    return atomic_load_explicit(&tw->head, memory_order_acquire) -
           atomic_load_explicit(&tw->tail, memory_order_relaxed);
}
