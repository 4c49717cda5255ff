/* The `verify` stage (stage.h): buffers the body, checks the signature with
 * the route's verifier, records the message in the shared replay table, and
 * refuses with 401 (audited like other authentication refusals, counted in
 * gatehouse_webhook_inbound_total). Neither secrets nor signatures are
 * logged or echoed: the error says which check failed, nothing more. */
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
#include "http/conn.h"
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

void gh_inbound_request_end(struct gh_worker *w, struct gh_req *r)
{
    /* Senders retry on these (Standard Webhooks, GitHub and Stripe all
     * do): the message did not get through, so its retry is not a replay. */
    bool failed = r->status == 0 || r->status >= 500 || r->status == 408 || r->status == 429;

    if (r->wh_nreplay == 0 || !failed) return;
    for (size_t i = 0; i < r->wh_nreplay; i++)
        gh_replay_forget(w->rt->wh_replay, r->wh_replay[i]);
    r->wh_nreplay = 0;
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
    if (res == GH_WH_OK) {
        /* Recorded only now that the signature holds: forged requests
         * cannot fill the table or burn a genuine id. Keys are the route's
         * own, so two routes never refuse each other's messages. GitHub's
         * body MAC goes first: a captured delivery sent again under a fresh
         * (unsigned) delivery id stops there and records nothing. */
        int64_t exp = expiry_of(&rt->cfg->webhook_verify, rt->wh->format, seen.timestamp, now_s);
        struct gh_replay *tbl = w->rt->wh_replay;
        const char *name = rt->cfg->name ? rt->cfg->name : "";
        uint64_t hk[2];
        size_t nh = 0;
        enum gh_replay_result rr = GH_REPLAY_NEW;

        if (seen.key2_len)
            hk[nh++] = gh_replay_hash(tbl, name, strlen(name), seen.key2, seen.key2_len);
        hk[nh++] = gh_replay_hash(tbl, name, strlen(name), seen.key, seen.key_len);
        for (size_t i = 0; i < nh && rr == GH_REPLAY_NEW; i++) {
            rr = gh_replay_check_add_hash(tbl, hk[i], now_s, exp);
            if (rr != GH_REPLAY_NEW)
                for (size_t k = 0; k < i; k++) /* all or nothing */
                    gh_replay_forget(tbl, hk[k]);
        }
        switch (rr) {
        case GH_REPLAY_NEW:
            memcpy(r->wh_replay, hk, sizeof(hk));
            r->wh_nreplay = (uint8_t)nh;
            gh_metrics_webhook(w, r, GH_MWH_OK);
            return 1;
        case GH_REPLAY_SEEN: res = GH_WH_REPLAYED; break;
        case GH_REPLAY_FULL:
            /* Forgetting an id would let its replay through: refuse instead
             * and let the sender retry later (it retries on 5xx). */
            gh_metrics_webhook(w, r, GH_MWH_STORE_FULL);
            gh_log_warn("route %s: webhook replay table full, refusing with 503", rt->cfg->name);
            gh_conn_reply_error_msg(r->conn, 503, "replay_store_full",
                                    "too many recent webhook messages; retry later", false);
            return 0;
        }
    }
    gh_metrics_webhook(w, r, metric_of(res));
    gh_audit_auth_denied(r, 401, gh_wh_result_code(res)); /* before the answer */
    gh_conn_reply_error_msg(r->conn, 401, gh_wh_result_code(res), message_of(res), false);
    return 0;
}
