/* The `verify` stage (stage.h): buffers the body, checks the signature with
 * the route's verifier, records the message in the process's replay table
 * and, with inbound_webhooks.replay_store: redis, in Redis for every node
 * (replay_redis.h), and refuses with 401 (audited like other authentication
 * refusals, counted in gatehouse_webhook_inbound_total). Neither secrets
 * nor signatures are logged or echoed: the error says which check failed,
 * nothing more. */
#include "hooks/stage.h"

#include <string.h>

#include <stdlib.h>

#include "audit/request.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/runtime.h"
#include "core/worker.h"
#include "hooks/inbound.h"
#include "hooks/replay.h"
#include "hooks/replay_redis.h"
#include "http/conn.h"
#include "limits/limits.h"
#include "stages.h"
#include "proxy/router.h"
#include "telemetry/metrics.h"

/* Verify routes whose keyed contexts a worker keeps. More routes than this
 * in turn on one worker re-key on each switch (an allocation per check).
 * NEEDSWORK: a bigger table if configs with many verify routes appear. */
#define KEYED_ROUTES 8

struct gh_wh_worker {
    struct {
        const struct gh_wh_verifier *v; /* with gen: unique for the process's life */
        uint64_t gen;                   /* the snapshot's generation */
        struct gh_wh_keyed keys;
    } e[KEYED_ROUTES];
    unsigned next; /* the entry replaced on a miss */
    /* Replay keys in Redis: request tokens are the worker's id prefix and
     * this counter; <redis_away> says the outage was logged already. */
    uint64_t token_next;
    bool redis_away;
};

void gh_inbound_worker_free(struct gh_wh_worker *ww)
{
    if (ww == NULL) return;
    for (unsigned i = 0; i < KEYED_ROUTES; i++)
        gh_wh_keyed_release(&ww->e[i].keys);
    free(ww);
}

/* The worker's contexts for <r>'s route. A verifier's address may come back
 * in a later snapshot, so entries are known by address and generation (a
 * generation names one published snapshot). NULL when out of memory. */
static struct gh_wh_keyed *keyed_for(struct gh_worker *w, const struct gh_req *r)
{
    const struct gh_wh_verifier *v = r->route->wh;
    uint64_t gen = r->snap->generation;
    struct gh_wh_worker *ww = w->wh;
    unsigned i;

    if (ww == NULL && (ww = w->wh = calloc(1, sizeof(*ww))) == NULL) return NULL;
    for (i = 0; i < KEYED_ROUTES; i++)
        if (ww->e[i].v == v && ww->e[i].gen == gen) return &ww->e[i].keys;
    i = ww->next++ % KEYED_ROUTES;
    gh_wh_keyed_release(&ww->e[i].keys);
    ww->e[i].v = NULL;
    if (gh_wh_keyed_init(&ww->e[i].keys, v) != GH_OK) return NULL;
    ww->e[i].v = v;
    ww->e[i].gen = gen;
    return &ww->e[i].keys;
}

/* Seconds an accepted timestamped message is remembered past the end of
 * its tolerance, so that clocks a little apart cannot open a gap. */
#define REPLAY_MARGIN_S 60

/* The only value of <name>, or an empty slice when absent. A header sent
 * twice is ambiguous (which one did the sender sign?): -1, refused as
 * malformed. gh_http_find_header returns the first only, so we count here. */
static int one_header(const struct gh_req *r, const char *name, gh_str *out)
{
    size_t nl = strlen(name);
    int n = 0;

    *out = GH_STR_NULL;
    for (uint32_t i = 0; i < r->head.nheaders; i++) {
        const struct gh_http_header *h = &r->head.headers[i];
        if (h->name.len != nl || !gh_str_caseeq_lit(h->name, name)) continue;
        if (n++) return -1;
        *out = h->value;
    }
    return 0;
}

static int read_headers(const struct gh_req *r, enum gh_wh_format f, struct gh_wh_headers *h)
{
    int rc = 0;

    switch (f) {
    case GH_WH_STANDARD:
        rc |= one_header(r, "webhook-id", &h->id);
        rc |= one_header(r, "webhook-timestamp", &h->timestamp);
        rc |= one_header(r, "webhook-signature", &h->signature);
        break;
    case GH_WH_GITHUB:
        rc |= one_header(r, "x-github-delivery", &h->id);
        rc |= one_header(r, "x-hub-signature-256", &h->signature);
        h->timestamp = GH_STR_NULL;
        break;
    case GH_WH_STRIPE:
        rc |= one_header(r, "stripe-signature", &h->signature);
        h->id = h->timestamp = GH_STR_NULL;
        break;
    }
    return rc;
}

static const char *message_of(enum gh_wh_result res)
{
    switch (res) {
    case GH_WH_MISSING: return "the request lacks the webhook signature headers of this route";
    case GH_WH_MALFORMED: return "the webhook signature headers do not parse";
    case GH_WH_STALE: return "the webhook timestamp is outside the allowed tolerance";
    case GH_WH_REPLAYED: return "this webhook message was already accepted";
    default: return "the webhook signature does not match the request";
    }
}

static unsigned metric_of(enum gh_wh_result res)
{
    switch (res) {
    case GH_WH_OK: return GH_MWH_OK;
    case GH_WH_MISSING: return GH_MWH_MISSING;
    case GH_WH_STALE: return GH_MWH_STALE;
    case GH_WH_REPLAYED: return GH_MWH_REPLAYED;
    default: return GH_MWH_INVALID;
    }
}

/* Until when an accepted message is remembered. A timestamped message can
 * only be replayed while its timestamp is within the tolerance; GitHub's
 * has none, so its delivery id is kept for the route's replay_window. */
static int64_t expiry_of(const struct gh_config_webhook_verify *cfg, enum gh_wh_format f,
                         int64_t ts, int64_t now_s)
{
    if (f == GH_WH_GITHUB) return now_s + cfg->replay_window_ms / 1000;
    return (ts > now_s ? ts : now_s) + cfg->tolerance_ms / 1000 + REPLAY_MARGIN_S;
}

/* The request's token as the value of its Redis keys: 32 hex digits, the
 * worker's random id prefix then the request's counter, so no other
 * request of any node holds the same (a collision needs equal 64-bit
 * random prefixes). Not the request id: a client may choose that one. */
static void token_of(const struct gh_worker *w, const struct gh_req *r,
                     char out[GH_REPLAY_REDIS_TOKEN])
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) {
        out[i] = hex[(w->id_prefix >> (60 - 4 * i)) & 15];
        out[16 + i] = hex[(r->wh_token >> (60 - 4 * i)) & 15];
    }
}

static const char *redis_prefix(const struct gh_req *r)
{
    const char *p = r->snap->cfg->redis.key_prefix;
    return p ? p : "";
}

/* Takes back what the request recorded: its local keys, and its Redis keys
 * (only where they still hold its token). */
static void give_back(struct gh_worker *w, struct gh_req *r)
{
    char tok[GH_REPLAY_REDIS_TOKEN];
    struct gh_redis *c = gh_limits_worker_redis(w->limits);

    for (size_t i = 0; i < r->wh_nreplay; i++)
        gh_replay_forget(w->rt->wh_replay, r->wh_replay[i]);
    r->wh_nreplay = 0;
    if (r->wh_nredis && c != NULL) {
        token_of(w, r, tok);
        /* Behind the record on the same connection: it runs after it. When
         * it cannot be queued the keys live out their TTL (NEEDSWORK: a
         * retry list, if lost releases show up as refused retries). */
        (void)gh_replay_redis_release(c, redis_prefix(r),
                                      (const uint8_t(*)[GH_REPLAY_REDIS_DIGEST])r->wh_rdigest,
                                      r->wh_nredis, tok);
    }
    r->wh_nredis = 0;
}

/* Senders retry on these (Standard Webhooks, GitHub and Stripe all do):
 * the message did not get through, so its retry is not a replay. */
static bool retried(int status)
{
    return status >= 500 || status == 408 || status == 429;
}

void gh_inbound_on_status(struct gh_worker *w, struct gh_req *r)
{
    /* A record still out on Redis is settled at the request's end. */
    if (r->wh_redis_out || !retried(r->status)) return;
    if (r->wh_nreplay == 0 && r->wh_nredis == 0) return;
    give_back(w, r);
}

void gh_inbound_request_end(struct gh_worker *w, struct gh_req *r)
{
    bool failed = r->status == 0 || retried(r->status);
    struct gh_redis *c;

    if (r->wh_redis_out) {
        /* The request went away while its record was out: the record may
         * still run on the server, and the release queued behind it
         * (give_back, as the request failed) undoes it there. */
        if ((c = gh_limits_worker_redis(w->limits)) != NULL) gh_redis_cancel(c, r->wh_redis_handle);
        r->wh_redis_out = false;
        failed = true;
    }
    if ((r->wh_nreplay == 0 && r->wh_nredis == 0) || !failed) return;
    give_back(w, r);
}

static void refuse(struct gh_worker *w, struct gh_req *r, enum gh_wh_result res)
{
    gh_metrics_webhook(w, r, metric_of(res));
    gh_audit_auth_denied(r, 401, gh_wh_result_code(res)); /* before the answer */
    gh_conn_reply_error_msg(r->conn, 401, gh_wh_result_code(res), message_of(res), false);
}

static void refuse_full(struct gh_worker *w, struct gh_req *r)
{
    /* Forgetting an id would let its replay through: refuse instead
     * and let the sender retry later (it retries on 5xx). */
    gh_metrics_webhook(w, r, GH_MWH_STORE_FULL);
    gh_log_warn("route %s: webhook replay table full, refusing with 503", r->route->cfg->name);
    gh_conn_reply_error_msg(r->conn, 503, "replay_store_full",
                            "too many recent webhook messages; retry later", false);
}

/* The local table's decision stands (<backend>: LOCAL, or FALLBACK while
 * Redis cannot answer): 1 = the message goes on, 0 = answered 503 (full). */
static int decide_locally(struct gh_worker *w, struct gh_req *r, unsigned backend, bool full)
{
    if (full) {
        gh_metrics_webhook_replay(w, backend, GH_MRP_FULL);
        refuse_full(w, r);
        return 0;
    }
    gh_metrics_webhook_replay(w, backend, GH_MRP_NEW);
    gh_metrics_webhook(w, r, GH_MWH_OK);
    return 1;
}

static void redis_done(void *arg, const redisReply *reply, int status)
{
    struct gh_req *r = arg;

    if (status == GH_REDIS_CANCELLED) return; /* the request is gone */
    r->wh_redis_out = false;
    r->wh_redis_res = (int8_t)(status == GH_REDIS_OK ? gh_replay_redis_result(reply) : -1);
    /* An error reply (a read-only replica, OOM, a missing script) says
     * why; logged once, as the outage it starts. */
    if (r->wh_redis_res < 0 && status == GH_REDIS_OK && reply != NULL &&
        reply->type == REDIS_REPLY_ERROR && !r->conn->worker->wh->redis_away)
        gh_log_warn("webhook replay: Redis refused the record: %.200s", reply->str);
    gh_stages_resume(r);
}

/* Redis could not say (down, slow, an error reply): the local table, which
 * already holds the keys, decides, or `on_redis_error: deny` refuses. A
 * request whose answer is a failure (503) gives its keys back at its end,
 * in Redis too where the record may have run after its deadline. */
static int redis_unavailable(struct gh_worker *w, struct gh_req *r)
{
    struct gh_wh_worker *ww = w->wh;

    if (!ww->redis_away) {
        ww->redis_away = true;
        gh_log_warn("webhook replay: worker %d: Redis unavailable; deciding replays by "
                    "inbound_webhooks.on_redis_error (%s) until it answers again",
                    w->id, r->snap->cfg->inbound_webhooks.redis_deny ? "deny" : "local");
    }
    if (r->snap->cfg->inbound_webhooks.redis_deny) {
        gh_metrics_webhook_replay(w, GH_MRP_FALLBACK, GH_MRP_UNAVAILABLE);
        gh_metrics_webhook(w, r, GH_MWH_STORE_UNAVAILABLE);
        gh_conn_reply_error_msg(r->conn, 503, "replay_store_unavailable",
                                "the shared webhook replay store is unavailable; retry later",
                                false);
        return 0;
    }
    return decide_locally(w, r, GH_MRP_FALLBACK, r->wh_local_full);
}

/* The record's answer, when the stage resumes. */
static int redis_answered(struct gh_worker *w, struct gh_req *r)
{
    struct gh_wh_worker *ww = w->wh;

    r->wh_step = 2;
    if (r->wh_redis_res < 0) return redis_unavailable(w, r);
    if (ww->redis_away) {
        ww->redis_away = false;
        gh_log_info("webhook replay: worker %d: Redis answers again; replays are refused "
                    "cluster-wide",
                    w->id);
    }
    if (r->wh_redis_res == 1) {
        gh_metrics_webhook_replay(w, GH_MRP_REDIS, GH_MRP_NEW);
        gh_metrics_webhook(w, r, GH_MWH_OK);
        return 1;
    }
    /* Another delivery holds a key: nothing of ours is in Redis, and the
     * local keys go (all or nothing, as in the table). */
    r->wh_nredis = 0;
    for (size_t i = 0; i < r->wh_nreplay; i++)
        gh_replay_forget(w->rt->wh_replay, r->wh_replay[i]);
    r->wh_nreplay = 0;
    gh_metrics_webhook_replay(w, GH_MRP_REDIS, GH_MRP_SEEN);
    refuse(w, r, GH_WH_REPLAYED);
    return 0;
}

/* A verified message: records its keys (the route's own, so that two
 * routes never refuse each other's messages) in the local table, and with
 * a Redis replay store there too, suspending until Redis answers. GitHub's
 * body MAC goes first: a captured delivery sent again under a fresh
 * (unsigned) delivery id stops there and records nothing. */
static int record(struct gh_worker *w, struct gh_req *r, const struct gh_wh_verified *seen,
                  int64_t now_s)
{
    const struct gh_route *rt = r->route;
    int64_t exp = expiry_of(&rt->cfg->webhook_verify, rt->wh->format, seen->timestamp, now_s);
    struct gh_replay *tbl = w->rt->wh_replay;
    const char *name = rt->cfg->name ? rt->cfg->name : "";
    const void *kp[2];
    size_t kl[2], nh = 0;
    uint64_t hk[2];
    enum gh_replay_result rr = GH_REPLAY_NEW;
    bool shared = r->snap->cfg->inbound_webhooks.replay_redis;
    struct gh_redis *c;
    char tok[GH_REPLAY_REDIS_TOKEN];

    if (seen->key2_len) {
        kp[nh] = seen->key2;
        kl[nh++] = seen->key2_len;
    }
    kp[nh] = seen->key;
    kl[nh++] = seen->key_len;
    for (size_t i = 0; i < nh; i++)
        hk[i] = gh_replay_hash(tbl, name, strlen(name), kp[i], kl[i]);
    for (size_t i = 0; i < nh && rr == GH_REPLAY_NEW; i++) {
        rr = gh_replay_check_add_hash(tbl, hk[i], now_s, exp);
        if (rr != GH_REPLAY_NEW)
            for (size_t k = 0; k < i; k++) /* all or nothing */
                gh_replay_forget(tbl, hk[k]);
    }
    if (rr == GH_REPLAY_NEW) {
        memcpy(r->wh_replay, hk, sizeof(hk));
        r->wh_nreplay = (uint8_t)nh;
    }
    /* A message this node holds is a replay for every node: no need to
     * ask Redis. */
    if (rr == GH_REPLAY_SEEN) {
        gh_metrics_webhook_replay(w, GH_MRP_LOCAL, GH_MRP_SEEN);
        refuse(w, r, GH_WH_REPLAYED);
        return 0;
    }
    if (!shared) return decide_locally(w, r, GH_MRP_LOCAL, rr == GH_REPLAY_FULL);
    /* A full local table only matters if Redis cannot answer. */
    r->wh_local_full = rr == GH_REPLAY_FULL;
    r->wh_step = 2;
    for (size_t i = 0; i < nh; i++)
        gh_replay_redis_digest(name, strlen(name), kp[i], kl[i], r->wh_rdigest[i]);
    /* A connection known to be down refuses the command at once (no wait
     * for a timeout); during its very first connect the command queues. */
    c = gh_limits_worker_redis(w->limits);
    if (c == NULL) return redis_unavailable(w, r);
    r->wh_token = ++w->wh->token_next;
    token_of(w, r, tok);
    if (gh_replay_redis_record(
            c, redis_prefix(r), (const uint8_t(*)[GH_REPLAY_REDIS_DIGEST])r->wh_rdigest, nh, tok,
            (uint64_t)(exp - now_s) * 1000, redis_done, r, &r->wh_redis_handle) != GH_OK)
        return redis_unavailable(w, r);
    r->wh_nredis = (uint8_t)nh;
    r->wh_redis_out = true;
    r->wh_step = 1;
    return 2;
}

int gh_inbound_stage(struct gh_req *r)
{
    const struct gh_route *rt = r->route;
    struct gh_worker *w = r->conn->worker;
    struct gh_wh_headers h;
    struct gh_wh_verified seen;
    struct gh_wh_keyed *keys;
    enum gh_wh_result res;
    int64_t now_s;
    uint64_t max_body;
    gh_str body;
    int rc;

    if (rt->wh == NULL) return 1;
    if (r->wh_step == 1) return r->wh_redis_out ? 2 : redis_answered(w, r);
    /* The gateway-wide body limit holds here too: the proxy, which enforces
     * it on streamed chunked bodies, sends a buffered body as it is. */
    max_body = rt->cfg->webhook_verify.max_body;
    if (r->snap->cfg->limits.max_body_bytes && r->snap->cfg->limits.max_body_bytes < max_body)
        max_body = r->snap->cfg->limits.max_body_bytes;
    rc = gh_conn_buffer_body(r, max_body, &body);
    if (rc != 1) return rc;
    if ((keys = keyed_for(w, r)) == NULL) {
        gh_conn_reply_error(r->conn, 500, "internal_error", true);
        return 0;
    }
    now_s = (int64_t)(gh_wall_ms() / 1000);
    if (read_headers(r, rt->wh->format, &h) != 0)
        res = GH_WH_MALFORMED;
    else
        res = gh_wh_verify(rt->wh, keys, &h, body, now_s, &seen);
    /* Recorded only now that the signature holds: forged requests cannot
     * fill the table or burn a genuine id. */
    if (res == GH_WH_OK) return record(w, r, &seen, now_s);
    refuse(w, r, res);
    return 0;
}
