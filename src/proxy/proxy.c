/* Forwarding one request to an upstream and relaying the response.
 *
 * Four buffers take part: conn->in (client bytes), up->out (to upstream),
 * up->in (from upstream), conn->out (to client). Bytes move in bounded steps;
 * when a destination is full, reading its source stops until it drains. The
 * request body is re-framed on the way (Content-Length as is, chunked
 * decoded and encoded again), so what the upstream sees is exactly what we
 * validated; likewise for the response. */
#include "proxy/proxy.h"

#include <errno.h>
#include <stdio.h>
#include <sys/socket.h>

#include "auth/identity.h"
#include "audit/request.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/worker.h"
#include "http/conn.h"
#include "hooks/stage.h"
#include "idem/stage.h"
#include "proxy/pool.h"
#include "proxy/router.h"
#include "telemetry/trace.h"
#include "telemetry/metrics.h"

/* Room kept free in an output buffer for chunk framing around data. */
#define CHUNK_OVERHEAD 32

static bool upstream_write(struct gh_req *r);
static bool upstream_read(struct gh_req *r);
static bool process_response(struct gh_req *r);
static void attempt(struct gh_req *r);

static uint64_t ms_ns(uint32_t ms)
{
    return (uint64_t)ms * 1000000ull;
}

static const struct gh_config_upstream *ucfg(const struct gh_req *r)
{
    return r->route->upstream;
}

/* ---- failure and retry ---- */

static bool idempotent(const struct gh_req *r)
{
    switch (r->head.method_id) {
    case GH_HTTP_GET:
    case GH_HTTP_HEAD:
    case GH_HTTP_PUT:
    case GH_HTTP_DELETE:
    case GH_HTTP_OPTIONS:
    case GH_HTTP_TRACE: return true;
    default: return false;
    }
}

static void release_upstream(struct gh_req *r, bool reusable)
{
    struct gh_upconn *u = r->up;
    if (u == NULL) return;
    r->up = NULL;
    if (reusable)
        gh_pool_put(u);
    else
        gh_upconn_close(u);
}

/* The exchange failed with <why>. Retries where that is safe, else answers
 * the client (or, when the response has begun, cuts the connection). */
static void fail(struct gh_req *r, enum gh_up_error why)
{
    struct gh_conn *c = r->conn;
    struct gh_worker *w = c->worker;
    /* Retries need the pools of the request's own snapshot: after a reload
     * only the worker's current one is mapped, and a retired pool may go
     * away with its last connection. */
    bool same_snap = r->wsnap == w->cur;
    const struct gh_upstream_rt *ups = same_snap ? &w->ups[r->route->upstream_index] : NULL;
    bool pool_ok = r->pool && !r->pool->retired && same_snap;
    bool was_reused = r->up_reused;
    int status;
    const char *code;

    release_upstream(r, false);
    r->up_error = why;
    gh_metrics_upstream_error(w, r, why);

    /* A pooled connection the upstream had already closed: the request
     * never reached it. Safe to send again when nothing of the body is
     * lost (no body) and the method is idempotent (RFC 9110 §9.2.2). */
    if (pool_ok && why == GH_UPERR_RESET && was_reused && !r->up_got_bytes && idempotent(r) &&
        r->head.framing.body == GH_BODY_NONE && r->attempts < 3 && !r->resp_head_done) {
        r->no_pool = true;
        attempt(r);
        return;
    }
    /* A refused connect: try the next endpoint once each. */
    if (pool_ok && why == GH_UPERR_REFUSED && (size_t)r->endpoint_tries + 1 < ups->npools &&
        (r->body_buffered || ((r->head.framing.body == GH_BODY_NONE ||
                               r->body_left == r->head.framing.content_length) &&
                              r->req_chunked.total == 0)) &&
        !r->resp_head_done) {
        r->endpoint_tries++;
        r->pool = ups->pools[(r->endpoint_first + r->endpoint_tries) % ups->npools];
        attempt(r);
        return;
    }
    r->pool = NULL;
    switch (why) {
    case GH_UPERR_TIMEOUT: status = 504, code = "upstream_timeout"; break;
    case GH_UPERR_BAD_RESPONSE: status = 502, code = "bad_upstream_response"; break;
    case GH_UPERR_TLS: status = 502, code = "upstream_tls_error"; break;
    case GH_UPERR_BUSY: status = 503, code = "upstream_busy"; break;
    case GH_UPERR_RESET: status = 502, code = "upstream_reset"; break;
    default: status = 502, code = "upstream_unavailable"; break;
    }
    if (r->resp_head_done) {
        r->error = code;
        gh_conn_abort(c);
        return;
    }
    gh_conn_reply_error(c, status, code, !r->body_done);
}

/* ---- request head ---- */

static void put(struct gh_buf *b, const char *p, size_t n)
{
    /* Capacity was reserved by the caller; never overflows. */
    memcpy(b->data + b->end, p, n);
    b->end += (uint32_t)n;
}

#define PUT_LIT(b, s) put((b), (s), sizeof(s) - 1)

static void put_str(struct gh_buf *b, gh_str s)
{
    put(b, s.ptr, s.len);
}

/* Writes the values of every field line named <name> as one list, each
 * followed by ", " (RFC 9110 §5.3: repeated lines are one list, in order). */
static void put_list(struct gh_buf *b, const struct gh_http_header *hs, uint32_t n,
                     const char *name)
{
    size_t nl = strlen(name);
    for (uint32_t i = 0; i < n; i++) {
        if (hs[i].name.len != nl || hs[i].value.len == 0 || !gh_str_caseeq_lit(hs[i].name, name))
            continue;
        put_str(b, hs[i].value);
        PUT_LIT(b, ", ");
    }
}

/* Headers we replace or drop on the way to the upstream, besides the
 * hop-by-hop ones. */
static bool request_header_skipped(const struct gh_http_header *h, const struct gh_req *r)
{
    /* Only the gateway speaks for identity: a client's Gatehouse-* headers
     * never reach the upstream. */
    if (gh_identity_is_reserved(h->name)) return true;
    switch (h->name.len) {
    case 3: return gh_str_caseeq_lit(h->name, "via");
    case 4: return r->head.target_form == GH_TARGET_ABSOLUTE && gh_str_caseeq_lit(h->name, "host");
    case 6: return gh_str_caseeq_lit(h->name, "expect");
    case 10: return gh_trace_replaces_headers(r) && gh_str_caseeq_lit(h->name, "tracestate");
    case 11: return gh_trace_replaces_headers(r) && gh_str_caseeq_lit(h->name, "traceparent");
    case 12: return gh_str_caseeq_lit(h->name, "x-request-id");
    case 15: return gh_str_caseeq_lit(h->name, "x-forwarded-for");
    case 16: return gh_str_caseeq_lit(h->name, "x-forwarded-host");
    case 17: return gh_str_caseeq_lit(h->name, "x-forwarded-proto");
    default: return false;
    }
}

/* Writes the request head for the upstream into u->out. */
static int build_request_head(struct gh_req *r, struct gh_upconn *u)
{
    const struct gh_conn *c = r->conn;
    const struct gh_http_request *h = &r->head;
    bool has_connection = false;
    size_t need = h->head_len + 512 + c->peer_ip_len + h->authority.len + r->id_len +
                  (r->principal.kind ? 2048 : 0) + (r->tr_on ? GH_TRACE_HEADERS_MAX : 0);

    for (uint32_t i = 0; i < h->nheaders; i++) {
        const gh_str n = h->headers[i].name;
        if (n.len == 10 && gh_str_caseeq_lit(n, "connection")) has_connection = true;
    }
    if (need > gh_buf_room(&u->out)) {
        gh_buf_compact(&u->out);
        if (need > gh_buf_room(&u->out) &&
            gh_buf_grow(&u->out, &c->worker->bufpool, (uint32_t)(need + gh_buf_len(&u->out))) != 0)
            return -1;
    }

    put_str(&u->out, h->method);
    PUT_LIT(&u->out, " ");
    if (h->target_form == GH_TARGET_ABSOLUTE) {
        /* RFC 9112 §3.2.2: the upstream gets origin-form. */
        put_str(&u->out, h->path);
        if (h->query.len) {
            PUT_LIT(&u->out, "?");
            put_str(&u->out, h->query);
        }
    } else {
        put_str(&u->out, h->target);
    }
    PUT_LIT(&u->out, " HTTP/1.1\r\n");
    for (uint32_t i = 0; i < h->nheaders; i++) {
        const struct gh_http_header *f = &h->headers[i];
        if (gh_http_is_hop_by_hop(f->name) || request_header_skipped(f, r) || f == r->cred_header)
            continue;
        if (has_connection && gh_http_connection_lists(h->headers, h->nheaders, f->name)) continue;
        put_str(&u->out, f->name);
        PUT_LIT(&u->out, ": ");
        put_str(&u->out, f->value);
        PUT_LIT(&u->out, "\r\n");
    }
    if (h->target_form == GH_TARGET_ABSOLUTE) {
        PUT_LIT(&u->out, "Host: ");
        put_str(&u->out, h->authority);
        PUT_LIT(&u->out, "\r\n");
    }
    PUT_LIT(&u->out, "X-Forwarded-For: ");
    put_list(&u->out, h->headers, h->nheaders, "x-forwarded-for");
    put(&u->out, c->peer_ip, c->peer_ip_len);
    if (c->tls)
        PUT_LIT(&u->out, "\r\nX-Forwarded-Proto: https\r\n");
    else
        PUT_LIT(&u->out, "\r\nX-Forwarded-Proto: http\r\n");
    if (h->authority.len) {
        PUT_LIT(&u->out, "X-Forwarded-Host: ");
        put_str(&u->out, h->authority);
        PUT_LIT(&u->out, "\r\n");
    }
    PUT_LIT(&u->out, "X-Request-Id: ");
    put(&u->out, r->id, r->id_len);
    PUT_LIT(&u->out, "\r\nVia: ");
    put_list(&u->out, h->headers, h->nheaders, "via");
    if (h->minor_version == 1)
        PUT_LIT(&u->out, "1.1 gatehouse\r\n");
    else
        PUT_LIT(&u->out, "1.0 gatehouse\r\n");
    if (r->principal.kind != GH_PRINCIPAL_NONE) {
        char tmp[2048];
        int n = gh_identity_headers(&r->principal, ucfg(r)->identity_secret, h->method, h->path,
                                    h->query, (int64_t)(gh_wall_ms() / 1000), tmp, sizeof(tmp));
        if (n < 0) return -1;
        put(&u->out, tmp, (size_t)n);
    }
    /* Room was reserved above (GH_TRACE_HEADERS_MAX). */
    u->out.end += (uint32_t)gh_trace_upstream_headers(r, u->out.data + u->out.end);
    if (r->body_buffered && h->framing.body == GH_BODY_CHUNKED) {
        /* Decoded into memory: the upstream gets it with its length. */
        char cl[40];
        int n = snprintf(cl, sizeof(cl), "Content-Length: %zu\r\n", r->body_slice.len);
        put(&u->out, cl, (size_t)n);
    } else if (h->framing.body == GH_BODY_CHUNKED) {
        PUT_LIT(&u->out, "Transfer-Encoding: chunked\r\n");
    }
    if (ucfg(r)->keepalive == 0) PUT_LIT(&u->out, "Connection: close\r\n");
    PUT_LIT(&u->out, "\r\n");
    return 0;
}

/* ---- request body ---- */

/* Body bytes of a buffered body (gh_conn_buffer_body) not yet written
 * upstream in this attempt. */
static uint64_t buffered_rest(const struct gh_req *r)
{
    return r->body_buffered ? r->body_slice.len - r->body_sent : 0;
}

/* A body already verified in memory: copied as it is, framed by the
 * Content-Length that build_request_head wrote. */
static void pump_buffered_body(struct gh_req *r)
{
    struct gh_upconn *u = r->up;
    uint64_t n = buffered_rest(r);

    if (n == 0 || u == NULL || u->state != GH_UP_READY) return;
    gh_buf_compact(&u->out);
    if (n > gh_buf_room(&u->out)) n = gh_buf_room(&u->out);
    put(&u->out, r->body_slice.ptr + r->body_sent, (size_t)n);
    r->body_sent += n;
}

/* Moves body bytes from conn->in to up->out, re-framed. */
static bool pump_request_body(struct gh_req *r)
{
    struct gh_conn *c = r->conn;
    struct gh_upconn *u = r->up;
    const uint64_t max_body = r->snap->cfg->limits.max_body_bytes;

    if (r->body_buffered) {
        pump_buffered_body(r);
        return true;
    }
    if (r->body_done || u == NULL || u->state != GH_UP_READY) return true;
    uint32_t avail = c->in.end - r->body_pos;
    if (avail == 0) return true;
    gh_buf_compact(&u->out);

    if (r->head.framing.body == GH_BODY_LENGTH) {
        uint64_t n = avail;
        if (n > r->body_left) n = r->body_left;
        if (n > gh_buf_room(&u->out)) n = gh_buf_room(&u->out);
        if (n == 0) return true;
        put(&u->out, c->in.data + r->body_pos, (size_t)n);
        r->body_left -= n;
        r->bytes_in += n;
        if (r->body_left == 0) r->body_done = true;
        gh_conn_body_consumed(c, (uint32_t)n);
        return true;
    }

    /* Chunked: decode what fits, encode it again for the upstream. */
    size_t off = 0;
    while (off < avail && !r->body_done) {
        uint32_t room = gh_buf_room(&u->out);
        size_t consumed = 0, limit;
        struct gh_http_error err;
        gh_str span;
        enum gh_chunk_event ev;

        if (room <= CHUNK_OVERHEAD) break;
        limit = avail - off;
        if (limit > room - CHUNK_OVERHEAD) limit = room - CHUNK_OVERHEAD;
        ev = gh_chunked_next(&r->req_chunked, c->in.data + r->body_pos + off, limit, &consumed,
                             &span, &err);
        off += consumed;
        if (ev == GH_CHUNK_ERROR) {
            gh_conn_body_consumed(c, (uint32_t)off);
            r->body_done = true; /* nothing more will be read */
            c->want_close = true;
            release_upstream(r, false);
            r->pool = NULL;
            if (!r->resp_head_done)
                gh_conn_reply_error(c, err.status, err.code, true);
            else
                gh_conn_abort(c);
            return false;
        }
        if (ev == GH_CHUNK_DATA) {
            char hdr[24];
            int n = snprintf(hdr, sizeof(hdr), "%zx\r\n", span.len);
            if (max_body && r->req_chunked.total > max_body) {
                gh_conn_body_consumed(c, (uint32_t)off);
                r->body_done = true;
                release_upstream(r, false);
                r->pool = NULL;
                if (!r->resp_head_done)
                    gh_conn_reply_error(c, 413, "body_too_large", true);
                else
                    gh_conn_abort(c);
                return false;
            }
            put(&u->out, hdr, (size_t)n);
            put_str(&u->out, span);
            PUT_LIT(&u->out, "\r\n");
        } else if (ev == GH_CHUNK_TRAILER || ev == GH_CHUNK_DONE) {
            if (!r->req_last_chunk) {
                PUT_LIT(&u->out, "0\r\n");
                r->req_last_chunk = true;
            }
            if (ev == GH_CHUNK_TRAILER) {
                put_str(&u->out, span);
                PUT_LIT(&u->out, "\r\n");
            } else {
                PUT_LIT(&u->out, "\r\n");
                r->body_done = true;
            }
        } else {
            break; /* NEED_MORE */
        }
    }
    r->bytes_in += off;
    gh_conn_body_consumed(c, (uint32_t)off);
    return true;
}

/* ---- starting ---- */

static void attempt(struct gh_req *r)
{
    struct gh_conn *c = r->conn;
    struct gh_worker *w = c->worker;
    struct gh_upconn *u = NULL;
    int why = GH_UPERR_NONE;

    r->attempts++;
    r->t_attempt = gh_now_ns();
    r->up_got_bytes = false;
    r->up_sent_all = false;
    r->body_sent = 0; /* a buffered body goes again in full */
    if (!r->no_pool) u = gh_pool_take(r->pool);
    if (u) {
        r->up_reused = true;
        atomic_fetch_add_explicit(&w->stats.upstream_reuses, 1, memory_order_relaxed);
    } else {
        r->up_reused = false;
        u = gh_pool_connect(r->pool, r, &why);
        if (u == NULL) {
            fail(r, (enum gh_up_error)why);
            return;
        }
    }
    u->req = r;
    r->up = u;
    gh_metrics_upstream_conn(w, r);
    {
        size_t n = strlen(r->pool->endpoint);
        if (n >= sizeof(r->endpoint)) n = sizeof(r->endpoint) - 1;
        memcpy(r->endpoint, r->pool->endpoint, n);
        r->endpoint[n] = '\0';
    }
    if (gh_buf_acquire(&u->out, &w->bufpool) != 0 || gh_buf_acquire(&u->in, &w->bufpool) != 0 ||
        build_request_head(r, u) != 0) {
        release_upstream(r, false);
        r->pool = NULL;
        gh_conn_reply_error(c, 500, "internal_error", true);
        return;
    }
    gh_conn_arm_timer(c);
    if (u->state == GH_UP_READY) {
        gh_sock_want_read(&u->sock, true);
        if (!pump_request_body(r)) return;
        upstream_write(r);
    }
}

void gh_proxy_start(struct gh_req *r)
{
    struct gh_conn *c = r->conn;
    struct gh_upstream_rt *ups = &c->worker->ups[r->route->upstream_index];

    /* RFC 9110 §10.1.1: answer 100 ourselves once the request passed every
     * stage, and only if the client has not started sending the body. */
    if (r->head.expect_continue && !r->body_done && c->in.end == r->body_pos) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        if (gh_buf_acquire(&c->out, &c->worker->bufpool) == 0 &&
            gh_buf_append(&c->out, cont, sizeof(cont) - 1) == 0) {
            r->continue_sent = true;
            if (!gh_conn_flush(c)) return;
        }
    }
    r->endpoint_first = (uint16_t)(ups->rr++ % ups->npools);
    r->pool = ups->pools[r->endpoint_first];
    r->t_up_start = gh_now_ns();
    attempt(r);
}

/* ---- upstream I/O ---- */

/* Writes up->out. Returns false when the exchange ended (failure). */
static bool upstream_write(struct gh_req *r)
{
    struct gh_upconn *u = r->up;

    for (;;) {
        while (gh_buf_len(&u->out) > 0) {
            ssize_t n = gh_sock_write(&u->sock, gh_buf_head(&u->out), gh_buf_len(&u->out));
            if (n > 0) {
                gh_buf_consume(&u->out, (uint32_t)n);
                r->t_progress = gh_now_ns();
                continue;
            }
            if (n == GH_SOCK_AGAIN) {
                if (u->sock.want == GH_WANT_READ)
                    gh_sock_want_read(&u->sock, true);
                else
                    gh_sock_want_write(&u->sock, true);
                return true;
            }
            fail(r, GH_UPERR_RESET);
            return false;
        }
        gh_sock_want_write(&u->sock, false);
        if (buffered_rest(r) > 0) {
            pump_buffered_body(r); /* the output is empty: always makes progress */
            continue;
        }
        if (r->body_done) {
            if (!r->up_sent_all) {
                r->up_sent_all = true;
                r->t_sent = gh_now_ns();
                gh_conn_arm_timer(r->conn);
            }
            return true;
        }
        /* Drained: take more body bytes, if any arrived. */
        uint32_t before = r->conn->in.end - r->body_pos;
        if (!pump_request_body(r)) return false;
        if (gh_buf_len(&u->out) == 0 || before == r->conn->in.end - r->body_pos) {
            if (r->body_done) continue;
            return true;
        }
    }
}

static void upstream_eof(struct gh_req *r)
{
    if (r->resp_head_done && r->resp.framing.body == GH_BODY_CLOSE) {
        /* The body was delimited by this close: the response is complete. */
        struct gh_conn *c = r->conn;
        if (r->idem) gh_idem_on_complete(r);
        release_upstream(r, false);
        r->pool = NULL;
        if (r->resp_chunk_out && gh_buf_append(&c->out, "0\r\n\r\n", 5) != 0) {
            gh_conn_abort(c);
            return;
        }
        gh_conn_response_queued(c);
        return;
    }
    fail(r, GH_UPERR_RESET);
}

/* Reads from the upstream. Returns false when the exchange ended. */
static bool upstream_read(struct gh_req *r)
{
    struct gh_upconn *u = r->up;
    struct gh_conn *c = r->conn;
    ssize_t n;

    if (gh_buf_room(&u->in) == 0) gh_buf_compact(&u->in);
    if (gh_buf_room(&u->in) == 0) {
        if (!r->resp_head_done) {
            uint32_t cap = r->snap->cfg->limits.max_header_bytes + 1;
            if (cap <= u->in.cap || gh_buf_grow(&u->in, &c->worker->bufpool, cap) != 0) {
                fail(r, GH_UPERR_BAD_RESPONSE);
                return false;
            }
        } else {
            gh_sock_want_read(&u->sock, false); /* backpressure */
            return true;
        }
    }
    n = gh_sock_read(&u->sock, gh_buf_tail(&u->in), gh_buf_room(&u->in));
    if (n == GH_SOCK_AGAIN) {
        if (u->sock.want == GH_WANT_WRITE) gh_sock_want_write(&u->sock, true);
        return true;
    }
    if (n == GH_SOCK_EOF || n == GH_SOCK_ERR) {
        if (u->sock.ssl && n == GH_SOCK_ERR && !r->up_got_bytes && u->sock.err == -1) {
            fail(r, GH_UPERR_TLS);
            return false;
        }
        upstream_eof(r);
        return false;
    }
    u->in.end += (uint32_t)n;
    r->up_got_bytes = true;
    r->t_progress = gh_now_ns();
    return process_response(r);
}

/* ---- response ---- */

static bool response_header_skipped(gh_str name)
{
    return name.len == 3 && gh_str_caseeq_lit(name, "via");
}

static int build_response_head(struct gh_req *r, bool interim)
{
    struct gh_conn *c = r->conn;
    const struct gh_http_response *resp = &r->resp;
    bool has_connection = false, has_request_id = false;
    size_t need = resp->head_len + 256 + r->id_len + r->rl_hdr_len;
    char status[64];
    int sn;

    for (uint32_t i = 0; i < resp->nheaders; i++) {
        gh_str n = resp->headers[i].name;
        if (n.len == 10 && gh_str_caseeq_lit(n, "connection"))
            has_connection = true;
        else if (n.len == 12 && gh_str_caseeq_lit(n, "x-request-id"))
            has_request_id = true;
    }
    if (gh_buf_acquire(&c->out, &c->worker->bufpool) != 0) return -1;
    if (need > gh_buf_room(&c->out)) {
        gh_buf_compact(&c->out);
        if (need > gh_buf_room(&c->out) &&
            gh_buf_grow(&c->out, &c->worker->bufpool, (uint32_t)(need + gh_buf_len(&c->out))) != 0)
            return -1;
    }
    sn = snprintf(status, sizeof(status), "HTTP/1.1 %03d ", resp->status);
    put(&c->out, status, (size_t)sn);
    put_str(&c->out, resp->reason);
    PUT_LIT(&c->out, "\r\n");
    for (uint32_t i = 0; i < resp->nheaders; i++) {
        const struct gh_http_header *f = &resp->headers[i];
        if (gh_http_is_hop_by_hop(f->name) || response_header_skipped(f->name)) continue;
        if (has_connection && gh_http_connection_lists(resp->headers, resp->nheaders, f->name))
            continue;
        put_str(&c->out, f->name);
        PUT_LIT(&c->out, ": ");
        put_str(&c->out, f->value);
        PUT_LIT(&c->out, "\r\n");
    }
    if (!interim) {
        if (!has_request_id) {
            PUT_LIT(&c->out, "X-Request-Id: ");
            put(&c->out, r->id, r->id_len);
            PUT_LIT(&c->out, "\r\n");
        }
        if (r->rl_hdr_len) put(&c->out, r->rl_hdr, r->rl_hdr_len); /* the limits stage's */
        if (r->resp_chunk_out) PUT_LIT(&c->out, "Transfer-Encoding: chunked\r\n");
        if (c->want_close)
            PUT_LIT(&c->out, "Connection: close\r\n");
        else if (r->head.minor_version == 0)
            PUT_LIT(&c->out, "Connection: keep-alive\r\n");
    }
    PUT_LIT(&c->out, "Via: ");
    put_list(&c->out, resp->headers, resp->nheaders, "via");
    if (resp->minor_version == 1)
        PUT_LIT(&c->out, "1.1 gatehouse\r\n\r\n");
    else
        PUT_LIT(&c->out, "1.0 gatehouse\r\n\r\n");
    return 0;
}

/* The whole response is in conn->out (or written). */
static void response_complete(struct gh_req *r)
{
    struct gh_upconn *u = r->up;
    bool reusable = r->up_keep && r->up_sent_all && gh_buf_len(&u->in) == 0;
    if (r->tr_on) r->tr_up_end = gh_now_ns();
    if (r->idem) gh_idem_on_complete(r);
    release_upstream(r, reusable);
    r->pool = NULL;
    gh_conn_response_queued(r->conn);
}

/* Moves response body bytes from up->in to conn->out. Returns true when
 * the body is complete. */
static bool move_body(struct gh_req *r, bool *error)
{
    struct gh_conn *c = r->conn;
    struct gh_upconn *u = r->up;

    *error = false;
    if (r->resp.framing.body == GH_BODY_NONE) return true;
    gh_buf_compact(&c->out);

    if (r->resp.framing.body == GH_BODY_LENGTH ||
        (r->resp.framing.body == GH_BODY_CLOSE && !r->resp_chunk_out)) {
        uint64_t n = gh_buf_len(&u->in);
        bool by_length = r->resp.framing.body == GH_BODY_LENGTH;
        if (by_length && n > r->resp_left) n = r->resp_left;
        if (n > gh_buf_room(&c->out)) n = gh_buf_room(&c->out);
        put(&c->out, gh_buf_head(&u->in), (size_t)n);
        if (r->idem) gh_idem_on_body(r, gh_buf_head(&u->in), (size_t)n);
        gh_buf_consume(&u->in, (uint32_t)n);
        if (by_length) {
            r->resp_left -= n;
            return r->resp_left == 0;
        }
        return false;
    }
    if (r->resp.framing.body == GH_BODY_CLOSE) {
        /* Close-delimited from the upstream, chunked to an HTTP/1.1 client. */
        uint32_t room = gh_buf_room(&c->out);
        uint64_t n = gh_buf_len(&u->in);
        char hdr[24];
        int hn;
        if (room <= CHUNK_OVERHEAD || n == 0) return false;
        if (n > room - CHUNK_OVERHEAD) n = room - CHUNK_OVERHEAD;
        hn = snprintf(hdr, sizeof(hdr), "%zx\r\n", (size_t)n);
        put(&c->out, hdr, (size_t)hn);
        put(&c->out, gh_buf_head(&u->in), (size_t)n);
        PUT_LIT(&c->out, "\r\n");
        if (r->idem) gh_idem_on_body(r, gh_buf_head(&u->in), (size_t)n);
        gh_buf_consume(&u->in, (uint32_t)n);
        return false;
    }

    /* Chunked from the upstream. */
    for (;;) {
        uint32_t room = gh_buf_room(&c->out);
        size_t consumed = 0, limit = gh_buf_len(&u->in);
        struct gh_http_error err;
        gh_str span;
        enum gh_chunk_event ev;

        if (limit == 0 || room <= CHUNK_OVERHEAD) return false;
        if (limit > room - CHUNK_OVERHEAD) limit = room - CHUNK_OVERHEAD;
        ev = gh_chunked_next(&r->resp_chunked, gh_buf_head(&u->in), limit, &consumed, &span, &err);
        if (ev == GH_CHUNK_ERROR) {
            *error = true;
            return false;
        }
        if (ev == GH_CHUNK_DATA) {
            if (r->idem) gh_idem_on_body(r, span.ptr, span.len);
            if (r->resp_chunk_out) {
                char hdr[24];
                int hn = snprintf(hdr, sizeof(hdr), "%zx\r\n", span.len);
                put(&c->out, hdr, (size_t)hn);
                put_str(&c->out, span);
                PUT_LIT(&c->out, "\r\n");
            } else {
                put_str(&c->out, span);
            }
        } else if (ev == GH_CHUNK_TRAILER || ev == GH_CHUNK_DONE) {
            if (r->resp_chunk_out) {
                if (!r->resp_last_chunk) {
                    PUT_LIT(&c->out, "0\r\n");
                    r->resp_last_chunk = true;
                }
                if (ev == GH_CHUNK_TRAILER) {
                    put_str(&c->out, span);
                    PUT_LIT(&c->out, "\r\n");
                } else {
                    PUT_LIT(&c->out, "\r\n");
                }
            }
        }
        gh_buf_consume(&u->in, (uint32_t)consumed);
        if (ev == GH_CHUNK_DONE) return true;
        if (ev == GH_CHUNK_NEED_MORE) return false;
    }
}

/* Queues the parsed final response head for the client. */
static bool relay_head(struct gh_req *r)
{
    if (build_response_head(r, false) != 0) {
        fail(r, GH_UPERR_BAD_RESPONSE);
        return false;
    }
    /* Before the head's bytes go: its header slices point into them. */
    if (r->idem) gh_idem_on_head(r);
    gh_inbound_on_status(r->conn->worker, r);
    gh_buf_consume(&r->up->in, r->resp.head_len);
    r->resp_head_done = true;
    gh_conn_arm_timer(r->conn);
    return true;
}

/* Parses the response head and relays the body. Returns false when the
 * exchange ended (response complete or failure). */
static bool process_response(struct gh_req *r)
{
    struct gh_conn *c = r->conn;
    struct gh_upconn *u = r->up;

    if (r->au_hold) return true; /* the head waits for its audit event */
    while (!r->resp_head_done) {
        struct gh_http_error err;
        int rc = gh_http_parse_response(gh_buf_head(&u->in), gh_buf_len(&u->in), &r->resp_state,
                                        &r->snap->http_limits, r->head.method_id, r->resp_headers,
                                        &r->resp, &err);
        if (rc == GH_AGAIN) return true;
        if (rc != GH_OK || r->resp.status == 101) {
            fail(r, GH_UPERR_BAD_RESPONSE);
            return false;
        }
        if (r->resp.status < 200) {
            /* Interim: 100 answers an Expect we already handled; others
             * (103 Early Hints) go to HTTP/1.1 clients. */
            if (r->resp.status != 100 && r->head.minor_version == 1) {
                if (build_response_head(r, true) != 0) {
                    fail(r, GH_UPERR_BAD_RESPONSE);
                    return false;
                }
            }
            gh_buf_consume(&u->in, r->resp.head_len);
            gh_http_state_reset(&r->resp_state);
            continue;
        }
        r->t_up_head = gh_now_ns();
        r->status = r->resp.status;
        r->up_keep = r->resp.framing.keep_alive;
        switch (r->resp.framing.body) {
        case GH_BODY_LENGTH: r->resp_left = r->resp.framing.content_length; break;
        case GH_BODY_CHUNKED:
            gh_chunked_init(&r->resp_chunked, r->snap->cfg->limits.max_header_bytes);
            r->resp_last_chunk = false;
            if (r->head.minor_version == 1)
                r->resp_chunk_out = true;
            else
                c->want_close = true; /* decoded, close-delimited to 1.0 */
            break;
        case GH_BODY_CLOSE:
            r->up_keep = false;
            if (r->head.minor_version == 1)
                r->resp_chunk_out = true;
            else
                c->want_close = true;
            break;
        default: break;
        }
        /* Strict audit: the client sees nothing of the answer before its
         * event is durable; stop reading the upstream meanwhile. */
        if (gh_audit_on_upstream_head(r)) {
            gh_sock_want_read(&u->sock, false);
            return true;
        }
        if (!relay_head(r)) return false;
    }

    bool error;
    bool done = move_body(r, &error);
    if (error) {
        fail(r, GH_UPERR_BAD_RESPONSE);
        return false;
    }
    if (done) {
        response_complete(r);
        return false;
    }
    if (!gh_conn_flush(c)) return false;
    /* Backpressure: stop reading the upstream while the client is slow. */
    gh_sock_want_read(&u->sock, gh_buf_room(&c->out) > CHUNK_OVERHEAD || gh_buf_len(&c->out) == 0);
    return true;
}

/* ---- callbacks from the connection ---- */

void gh_proxy_audit_done(struct gh_req *r, bool ok)
{
    struct gh_conn *c = r->conn;

    if (r->up == NULL || r->resp_head_done) return; /* answered another way meanwhile */
    if (!ok) {
        /* The response body stays unread: the connection cannot be reused. */
        release_upstream(r, false);
        r->pool = NULL;
        gh_conn_reply_error(c, 503, "audit_unavailable", !r->body_done);
        return;
    }
    /* process_response sets the upstream's read interest (backpressure). */
    if (relay_head(r)) process_response(r);
}

void gh_proxy_on_client_input(struct gh_req *r)
{
    if (r->up == NULL || r->up->state != GH_UP_READY) return;
    if (!pump_request_body(r)) return;
    upstream_write(r);
}

void gh_proxy_on_client_drained(struct gh_req *r)
{
    if (r->up == NULL || !r->resp_head_done || r->resp_done) return;
    if (!process_response(r)) return;
    if (r->up) gh_sock_want_read(&r->up->sock, true);
}

void gh_proxy_on_timeout(struct gh_req *r)
{
    struct gh_conn *c = r->conn;
    const struct gh_config_limits *lim = &r->snap->cfg->limits;

    /* A client that stopped sending its body is at fault, not the
     * upstream: 408, and the upstream connection (mid-request) is closed. */
    if (!r->body_done && r->head.framing.body != GH_BODY_NONE &&
        gh_now_ns() >= r->t_progress + ms_ns(lim->body_timeout_ms)) {
        release_upstream(r, false);
        r->pool = NULL;
        gh_conn_reply_error(c, 408, "request_timeout", true);
        return;
    }
    fail(r, GH_UPERR_TIMEOUT);
}

void gh_proxy_abort(struct gh_req *r)
{
    release_upstream(r, false);
    r->pool = NULL;
}

uint64_t gh_proxy_deadline(const struct gh_req *r)
{
    const struct gh_config_upstream *u;
    uint64_t d, total = 0;

    if (r->up == NULL || r->route == NULL) return 0;
    u = ucfg(r);
    if (u->request_timeout_ms) total = r->t_start + ms_ns(u->request_timeout_ms);
    if (r->up->state == GH_UP_CONNECTING || r->up->state == GH_UP_HANDSHAKE)
        d = r->t_attempt + ms_ns(u->connect_timeout_ms);
    else if (!r->resp_head_done && r->up_sent_all)
        d = r->t_sent + ms_ns(u->response_timeout_ms);
    else
        d = r->t_progress + ms_ns(u->idle_timeout_ms);
    return total && total < d ? total : d;
}

/* ---- upstream connection events ---- */

static void connected(struct gh_req *r)
{
    struct gh_upconn *u = r->up;
    u->state = GH_UP_READY;
    gh_sock_want_write(&u->sock, false);
    gh_sock_want_read(&u->sock, true);
    if (!pump_request_body(r)) return;
    upstream_write(r);
}

static void handshake(struct gh_req *r)
{
    struct gh_upconn *u = r->up;
    int rc = gh_sock_handshake(&u->sock);
    if (rc == 0) {
        connected(r);
        return;
    }
    if (rc == GH_SOCK_AGAIN) {
        gh_sock_want_read(&u->sock, u->sock.want == GH_WANT_READ);
        gh_sock_want_write(&u->sock, u->sock.want == GH_WANT_WRITE);
        return;
    }
    gh_log_warn("upstream %s: TLS handshake failed", u->pool->endpoint);
    fail(r, GH_UPERR_TLS);
}

void gh_proxy_upconn_event(evutil_socket_t fd, short what, void *arg)
{
    struct gh_upconn *u = arg;
    struct gh_req *r = u->req;

    if (u->state == GH_UP_IDLE) {
        /* An idle connection has nothing to say: EOF, an error, or bytes we
         * never asked for all mean it cannot be reused. */
        gh_upconn_close(u);
        return;
    }
    if (u->state == GH_UP_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
            fail(r, GH_UPERR_REFUSED);
            return;
        }
        if (u->sock.ssl) {
            u->state = GH_UP_HANDSHAKE;
            handshake(r);
        } else {
            connected(r);
        }
        return;
    }
    if (u->state == GH_UP_HANDSHAKE) {
        handshake(r);
        return;
    }
    if (what & EV_WRITE) {
        if (gh_buf_len(&u->out) > 0 || !r->body_done || buffered_rest(r) > 0) {
            if (!upstream_write(r)) return;
        } else if (u->sock.ssl) {
            /* A TLS read that wanted a write. */
            gh_sock_want_write(&u->sock, false);
            if (!upstream_read(r)) return;
        } else {
            gh_sock_want_write(&u->sock, false);
        }
    }
    if ((what & EV_READ) && r->up == u) upstream_read(r);
}
