/* The `idempotency` stage (stage.h): claims the key with its request's
 * fingerprint, suspends while Redis answers, refuses or replays repeats,
 * and at the request's end keeps the upstream's answer or takes the claim
 * back. The request's state is allocated only for requests that carry a
 * key on a route that asks: other routes pay one flag test here and one
 * pointer test in the proxy. Neither the raw key nor a stored body is
 * logged. */
#include "idem/stage.h"

#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/runtime.h"
#include "core/worker.h"
#include "http/conn.h"
#include "idem/record.h"
#include "idem/redis_store.h"
#include "idem/table.h"
#include "limits/limits.h"
#include "proxy/router.h"
#include "stages.h"
#include "telemetry/metrics.h"

/* The local table's room for a record: config.c checks max_memory with it. */
_Static_assert(GH_CONFIG_IDEM_RECORD_OVERHEAD >= GH_IDEM_HEADERS_MAX + 128,
               "an idempotency record's overhead");

/* Added to the upstream's timeouts for the in-flight claim's TTL: a claim
 * outlives its request a little rather than expire under it. */
#define LOCK_MARGIN_MS 10000

struct gh_idem_req {
    uint8_t digest[GH_IDEM_DIGEST];
    uint8_t fp[GH_IDEM_DIGEST];
    char inflight[GH_IDEM_INFLIGHT]; /* the claim's value: holds our token */
    uint32_t redis_handle;           /* of the claim, for gh_redis_cancel */
    uint8_t step;                    /* 1: the claim is out or answered; 2: decided */
    int8_t claim_res;                /* Redis: 1 claimed, 0 held by another, -1 unavailable */
    bool redis_out;                  /* the claim command is out */
    bool claimed;                    /* we hold a claim: store or release it at the end */
    bool in_redis;                   /* ... in Redis (else in the local table) */
    bool maybe_redis;                /* a claim that timed out may have run in Redis */
    bool keep;                       /* the upstream's answer is being captured */
    bool complete;                   /* ... and all of it arrived (then stored at once) */
    int status;
    char *held; /* a value that another request holds (read back), or NULL */
    size_t held_len;
    uint64_t max_response;
    char hdrs[GH_IDEM_HEADERS_MAX];
    size_t hlen;
    char *body;
    size_t blen, bcap;
    /* The replayed answer's Content-Type and other header lines. */
    char ct[GH_IDEM_HEADERS_MAX + 1];
    char extra[GH_IDEM_HEADERS_MAX + 64];
};

static const char *redis_prefix(const struct gh_req *r)
{
    const char *p = r->snap->cfg->redis.key_prefix;
    return p ? p : "";
}

/* The request's token: the worker's random id prefix then its counter, 32
 * hex digits, so that no other request of any node holds the same (as in
 * the webhook replay records). Not the request id: a client may choose it. */
static void token_of(struct gh_worker *w, char out[GH_IDEM_TOKEN])
{
    static const char hex[] = "0123456789abcdef";
    uint64_t n = ++w->idem_token_next;

    for (int i = 0; i < 16; i++) {
        out[i] = hex[(w->id_prefix >> (60 - 4 * i)) & 15];
        out[16 + i] = hex[(n >> (60 - 4 * i)) & 15];
    }
}

/* How long an in-flight claim lives: the upstream's own bound on the
 * exchange, and a margin. */
static uint64_t lock_ttl_ms(const struct gh_req *r)
{
    const struct gh_config_upstream *u = r->route->upstream;
    uint64_t t = u->request_timeout_ms ? u->request_timeout_ms
                                       : (uint64_t)u->connect_timeout_ms + u->response_timeout_ms;
    return t + LOCK_MARGIN_MS;
}

/* The only Idempotency-Key line: 0 none, 1 one (in *out), -1 several (a
 * key sent twice is ambiguous: refused as invalid). */
static int key_header(const struct gh_req *r, gh_str *out)
{
    int n = 0;

    *out = GH_STR_NULL;
    for (uint32_t i = 0; i < r->head.nheaders; i++) {
        const struct gh_http_header *h = &r->head.headers[i];
        if (h->name.len != 15 || !gh_str_caseeq_lit(h->name, "idempotency-key")) continue;
        if (n++) return -1;
        *out = h->value;
    }
    return n;
}

static bool name_is(gh_str n, const char *lit)
{
    return n.len == strlen(lit) && gh_str_caseeq_lit(n, lit);
}

/* Sends the stored answer: its status, Content-Type and kept header lines,
 * body, and Idempotent-Replayed: true. Buffers live in <st> until the
 * request's end. */
static void replay(struct gh_req *r, struct gh_idem_req *st, const struct gh_idem_record *rec)
{
    size_t i = 0, elen = 0;
    const char *ct = "application/octet-stream";

    while (i < rec->hlen) {
        const char *line = rec->headers + i, *colon, *end;
        end = memchr(line, '\n', rec->hlen - i);
        if (end == NULL) break;
        i = (size_t)(end - rec->headers) + 1;
        colon = memchr(line, ':', (size_t)(end - line));
        if (colon == NULL) continue;
        if (colon - line == 12 && strncasecmp(line, "content-type", 12) == 0) {
            const char *v = colon + 1;
            size_t vl;
            while (v < end && *v == ' ')
                v++;
            vl = (size_t)(end - v);
            if (vl && v[vl - 1] == '\r') vl--;
            memcpy(st->ct, v, vl);
            st->ct[vl] = '\0';
            ct = st->ct;
            continue;
        }
        memcpy(st->extra + elen, line, (size_t)(end - line) + 1);
        elen += (size_t)(end - line) + 1;
    }
    memcpy(st->extra + elen, "Idempotent-Replayed: true\r\n", 28); /* with the NUL */
    gh_conn_reply_ex(r->conn, rec->status, ct, rec->body, rec->blen, st->extra);
}

/* A record that another request holds (st->held): the same request done
 * (replay), in flight (409), or a different request (422). */
static int decide(struct gh_worker *w, struct gh_req *r, struct gh_idem_req *st)
{
    struct gh_idem_record rec;

    if (gh_idem_decode(st->held, st->held_len, &rec) != GH_OK) {
        gh_log_warn("route %s: an idempotency record does not parse; answering 500",
                    r->route->cfg->name);
        gh_conn_reply_error(r->conn, 500, "internal_error", false);
        return 0;
    }
    if (memcmp(rec.fp, st->fp, GH_IDEM_DIGEST) != 0) {
        gh_metrics_idempotency(w, GH_MIDEM_MISMATCH);
        gh_conn_reply_error_msg(r->conn, 422, "idempotency_key_reused",
                                "this Idempotency-Key was used for a different request", false);
        return 0;
    }
    if (!rec.done) {
        gh_metrics_idempotency(w, GH_MIDEM_IN_PROGRESS);
        gh_conn_reply_error_ex(r->conn, 409, "idempotency_in_progress", false,
                               "Retry-After: 1\r\n");
        return 0;
    }
    gh_metrics_idempotency(w, GH_MIDEM_REPLAYED);
    replay(r, st, &rec);
    return 0;
}

/* The claim in the process's table (no Redis, or Redis unavailable under
 * on_redis_error: local). */
static int claim_local(struct gh_worker *w, struct gh_req *r, struct gh_idem_req *st, bool fallback)
{
    enum gh_idem_table_result res =
        gh_idem_table_claim(w->rt->idem, st->digest, st->inflight, GH_IDEM_INFLIGHT,
                            st->max_response + GH_CONFIG_IDEM_RECORD_OVERHEAD, gh_wall_ms(),
                            lock_ttl_ms(r), &st->held, &st->held_len);

    switch (res) {
    case GH_IDEM_NEW:
        st->claimed = true;
        st->in_redis = false;
        gh_metrics_idempotency(w, fallback ? GH_MIDEM_FALLBACK : GH_MIDEM_NEW);
        return 1;
    case GH_IDEM_EXISTS: return decide(w, r, st);
    case GH_IDEM_FULL:
        /* Forgetting a key would let its repeat through: refuse instead. */
        gh_metrics_idempotency(w, GH_MIDEM_STORE_FULL);
        gh_log_warn("route %s: idempotency table full, refusing with 503", r->route->cfg->name);
        gh_conn_reply_error_msg(r->conn, 503, "idempotency_store_full",
                                "too many idempotency records; retry later", false);
        return 0;
    default: gh_conn_reply_error(r->conn, 500, "internal_error", false); return 0;
    }
}

/* Redis could not say (down, slow, an error reply): the local table
 * decides, or `on_redis_error: deny` refuses. */
static int redis_unavailable(struct gh_worker *w, struct gh_req *r, struct gh_idem_req *st)
{
    if (!w->idem_redis_away) {
        w->idem_redis_away = true;
        gh_log_warn("idempotency: worker %d: Redis unavailable; deciding by "
                    "idempotency.on_redis_error (%s) until it answers again",
                    w->id, r->snap->cfg->idempotency.redis_deny ? "deny" : "local");
    }
    if (r->snap->cfg->idempotency.redis_deny) {
        gh_metrics_idempotency(w, GH_MIDEM_UNAVAILABLE);
        gh_conn_reply_error_msg(r->conn, 503, "idempotency_store_unavailable",
                                "the shared idempotency store is unavailable; retry later", false);
        return 0;
    }
    return claim_local(w, r, st, true);
}

static void claim_done(void *arg, const redisReply *reply, int status)
{
    struct gh_req *r = arg;
    struct gh_idem_req *st;
    const char *v;
    size_t len;
    int res;

    if (status == GH_REDIS_CANCELLED) return; /* the request is gone */
    st = r->idem;
    st->redis_out = false;
    res = status == GH_REDIS_OK ? gh_idem_redis_claimed(reply, &v, &len) : -1;
    if (res == 0 && (st->held = malloc(len ? len : 1)) != NULL) {
        memcpy(st->held, v, len);
        st->held_len = len;
    } else if (res == 0) {
        res = -1;
    }
    if (res < 0 && status == GH_REDIS_OK && reply != NULL && reply->type == REDIS_REPLY_ERROR &&
        !r->conn->worker->idem_redis_away)
        gh_log_warn("idempotency: Redis refused the claim: %.200s", reply->str);
    /* A claim that timed out may still run on the server: released at the
     * end, whatever the local table decides. */
    if (res < 0) st->maybe_redis = true;
    st->claim_res = (int8_t)res;
    gh_stages_resume(r);
}

static int claim_answered(struct gh_worker *w, struct gh_req *r, struct gh_idem_req *st)
{
    st->step = 2;
    if (st->claim_res < 0) return redis_unavailable(w, r, st);
    if (w->idem_redis_away) {
        w->idem_redis_away = false;
        gh_log_info("idempotency: worker %d: Redis answers again", w->id);
    }
    if (st->claim_res == 1) {
        st->claimed = true;
        st->in_redis = true;
        gh_metrics_idempotency(w, GH_MIDEM_NEW);
        return 1;
    }
    return decide(w, r, st);
}

int gh_idem_stage(struct gh_req *r)
{
    const struct gh_config_route_idempotency *cfg = &r->route->cfg->idempotency;
    struct gh_worker *w = r->conn->worker;
    struct gh_idem_req *st = r->idem;
    const struct gh_http_request *h = &r->head;
    const char *tenant;
    char scope[300], where[400];
    char tok[GH_IDEM_TOKEN];
    uint64_t max_body;
    struct gh_redis *c;
    gh_str key, body;
    int rc;

    if (!cfg->enabled) return 1;
    if (st != NULL) {
        if (st->step == 1) return st->redis_out ? 2 : claim_answered(w, r, st);
        return 1;
    }
    if (!(cfg->methods & gh_route_method_bit(h->method_id))) return 1;
    rc = key_header(r, &key);
    if (rc == 0) {
        if (!cfg->required) return 1;
        gh_metrics_idempotency(w, GH_MIDEM_KEY_REQUIRED);
        gh_conn_reply_error_msg(r->conn, 400, "idempotency_key_required",
                                "this route requires an Idempotency-Key header", false);
        return 0;
    }
    if (rc < 0 || !gh_idem_key_valid(key.ptr, key.len)) {
        gh_metrics_idempotency(w, GH_MIDEM_INVALID_KEY);
        gh_conn_reply_error_msg(r->conn, 400, "invalid_idempotency_key",
                                "an Idempotency-Key is one header of 1 to 255 printable ASCII "
                                "characters",
                                false);
        return 0;
    }
    /* The fingerprint needs the whole body, read once (gh_conn_buffer_body,
     * as the verify stage does; it keeps the bytes for that stage and for
     * the proxy). The gateway-wide body limit holds here too. */
    max_body = cfg->max_body;
    if (r->snap->cfg->limits.max_body_bytes && r->snap->cfg->limits.max_body_bytes < max_body)
        max_body = r->snap->cfg->limits.max_body_bytes;
    /* The verify stage reuses this read: its own bound must hold too. */
    if (r->route->wh != NULL && r->route->cfg->webhook_verify.max_body < max_body)
        max_body = r->route->cfg->webhook_verify.max_body;
    rc = gh_conn_buffer_body(r, max_body, &body);
    if (rc != 1) return rc;

    if ((st = r->idem = calloc(1, sizeof(*st))) == NULL) {
        gh_conn_reply_error(r->conn, 500, "internal_error", false);
        return 0;
    }
    st->max_response = cfg->max_response;
    /* Whose key it is: the tenant (any of its keys, as Stripe scopes keys
     * by account), else the caller (a JWT without a tenant claim), else
     * nobody (anonymous routes share their keys: docs/idempotency.md). And
     * where: the route on the host the client named (without the port, as
     * nodes behind one balancer see the same name), so that a route
     * serving several hosts keeps their records apart. */
    if (r->principal.kind != GH_PRINCIPAL_NONE && r->principal.tenant[0])
        snprintf(scope, sizeof(scope), "tenant:%s", r->principal.tenant);
    else if (r->principal.kind != GH_PRINCIPAL_NONE)
        snprintf(scope, sizeof(scope), "subject:%s", r->principal.subject);
    else
        scope[0] = '\0';
    {
        gh_str a = h->authority;
        size_t hl = 0;
        if (a.len > 0 && a.ptr[0] == '[')
            while (hl < a.len && a.ptr[hl++] != ']')
                ;
        else
            while (hl < a.len && a.ptr[hl] != ':')
                hl++;
        snprintf(where, sizeof(where), "%s\n%.*s", r->route->cfg->name ? r->route->cfg->name : "",
                 (int)hl, a.ptr);
    }
    tenant = scope;
    if (gh_idem_digest(tenant, where, key.ptr, key.len, st->digest) != GH_OK ||
        gh_idem_fingerprint(h->method.ptr, h->method.len, h->path.ptr, h->path.len, h->query.ptr,
                            h->query.len, body.ptr, body.len, st->fp) != GH_OK) {
        gh_conn_reply_error(r->conn, 500, "internal_error", false);
        return 0;
    }
    token_of(w, tok);
    gh_idem_encode_inflight(st->fp, tok, st->inflight);
    if (!r->snap->cfg->idempotency.redis) return claim_local(w, r, st, false);
    /* A connection known to be down refuses the command at once. */
    c = gh_limits_worker_redis(w->limits);
    if (c == NULL ||
        gh_idem_redis_claim(c, redis_prefix(r), st->digest, st->inflight, GH_IDEM_INFLIGHT,
                            lock_ttl_ms(r), claim_done, r, &st->redis_handle) != GH_OK) {
        st->step = 2;
        return redis_unavailable(w, r, st);
    }
    st->redis_out = true;
    st->step = 1;
    return 2;
}

/* ---- the upstream's answer ---- */

static void drop_capture(struct gh_idem_req *st)
{
    st->keep = false;
    free(st->body);
    st->body = NULL;
    st->blen = st->bcap = 0;
}

void gh_idem_on_head(struct gh_req *r)
{
    struct gh_idem_req *st = r->idem;
    const struct gh_http_response *resp = &r->resp;

    if (st == NULL || !st->claimed) return;
    st->status = resp->status;
    /* 5xx, and the answers a client is told to retry (408 Request Timeout,
     * 425 Too Early, 429 Too Many Requests), are not the request's outcome:
     * the key is freed so that the retry reaches the upstream. */
    st->keep =
        resp->status < 500 && resp->status != 408 && resp->status != 425 && resp->status != 429;
    st->hlen = 0;
    for (uint32_t i = 0; st->keep && i < resp->nheaders; i++) {
        const struct gh_http_header *f = &resp->headers[i];
        size_t need = f->name.len + 2 + f->value.len + 2;
        /* Content-Encoding (and Vary) go with the body: a gzip answer
         * replayed without them could not be read. */
        if (!name_is(f->name, "content-type") && !name_is(f->name, "location") &&
            !name_is(f->name, "etag") && !name_is(f->name, "cache-control") &&
            !name_is(f->name, "content-language") && !name_is(f->name, "content-encoding") &&
            !name_is(f->name, "vary"))
            continue;
        if (st->hlen + need > sizeof(st->hdrs)) {
            drop_capture(st); /* more than a replay can send: not kept */
            break;
        }
        memcpy(st->hdrs + st->hlen, f->name.ptr, f->name.len);
        memcpy(st->hdrs + st->hlen + f->name.len, ": ", 2);
        memcpy(st->hdrs + st->hlen + f->name.len + 2, f->value.ptr, f->value.len);
        memcpy(st->hdrs + st->hlen + need - 2, "\r\n", 2);
        st->hlen += need;
    }
}

void gh_idem_on_body(struct gh_req *r, const char *data, size_t n)
{
    struct gh_idem_req *st = r->idem;

    if (st == NULL || !st->keep || n == 0) return;
    if (st->blen + n > st->max_response) {
        drop_capture(st);
        return;
    }
    if (st->blen + n > st->bcap) {
        size_t cap = st->bcap ? st->bcap : 4096;
        char *nb;
        while (cap < st->blen + n)
            cap *= 2;
        if (cap > st->max_response) cap = st->max_response;
        if ((nb = realloc(st->body, cap)) == NULL) {
            drop_capture(st);
            return;
        }
        st->body = nb;
        st->bcap = cap;
    }
    memcpy(st->body + st->blen, data, n);
    st->blen += n;
}

/* Keeps the captured answer in place of the claim, for the route's ttl.
 * Returns true when it was handed to the store. */
static bool store(struct gh_worker *w, struct gh_req *r, struct gh_idem_req *st, struct gh_redis *c)
{
    char *val;
    size_t len;
    bool ok = false;
    uint64_t ttl = r->route->cfg->idempotency.ttl_ms;

    if (gh_idem_encode_done(st->fp, st->status, st->hdrs, st->hlen, st->body, st->blen, &val,
                            &len) != GH_OK)
        return false;
    if (st->in_redis)
        ok = c != NULL && gh_idem_redis_store(c, redis_prefix(r), st->digest, st->inflight,
                                              GH_IDEM_INFLIGHT, val, len, ttl) == GH_OK;
    else
        ok = gh_idem_table_set_if(w->rt->idem, st->digest, st->inflight, GH_IDEM_INFLIGHT, val, len,
                                  gh_wall_ms(), ttl) == 1;
    free(val);
    return ok;
}

/* Ends the claim: the captured answer replaces it, or (nothing to keep,
 * or it could not be stored) it is taken back so that a retry proceeds. */
static void finish(struct gh_worker *w, struct gh_req *r, struct gh_idem_req *st)
{
    struct gh_redis *c = gh_limits_worker_redis(w->limits);

    st->claimed = false;
    if (st->keep && st->complete && store(w, r, st, c)) {
        gh_metrics_idempotency(w, GH_MIDEM_STORED);
    } else {
        if (st->in_redis && c != NULL)
            (void)gh_idem_redis_release(c, redis_prefix(r), st->digest, st->inflight,
                                        GH_IDEM_INFLIGHT);
        else if (!st->in_redis)
            gh_idem_table_del_if(w->rt->idem, st->digest, st->inflight, GH_IDEM_INFLIGHT);
        gh_metrics_idempotency(w, GH_MIDEM_RELEASED);
    }
    drop_capture(st);
}

void gh_idem_on_complete(struct gh_req *r)
{
    struct gh_idem_req *st = r->idem;

    /* Stored now, not at the request's end: the record is there before
     * the client has read the answer, so its next request (to any node)
     * finds it. */
    if (st == NULL || !st->claimed) return;
    st->complete = true;
    finish(r->conn->worker, r, st);
}

void gh_idem_request_end(struct gh_worker *w, struct gh_req *r)
{
    struct gh_idem_req *st = r->idem;
    struct gh_redis *c;

    if (st == NULL) return;
    r->idem = NULL;
    c = gh_limits_worker_redis(w->limits);
    if (st->redis_out) {
        /* Gone while its claim was out: the claim may still run on the
         * server; the release queued behind it undoes it there. */
        if (c != NULL) gh_redis_cancel(c, st->redis_handle);
        st->maybe_redis = true;
    }
    if (st->claimed) finish(w, r, st); /* no complete answer: taken back */
    if (st->maybe_redis && !(st->claimed && st->in_redis) && c != NULL)
        (void)gh_idem_redis_release(c, redis_prefix(r), st->digest, st->inflight, GH_IDEM_INFLIGHT);
    free(st->held);
    free(st->body);
    free(st);
}
