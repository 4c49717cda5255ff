/* Client connections: accept, TLS handshake, head parsing, error answers,
 * keep-alive and pipelining, timeouts, and closing.
 *
 * Closing from deep inside a call chain (a failed write while the proxy is
 * relaying) is deferred: the connection is marked broken and its timer is
 * activated, so the close runs from the loop with no caller still holding
 * pointers into it. */
#include "http/conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "audit/request.h"
#include "core/clock.h"
#include "core/jsonw.h"
#include "core/log.h"
#include "core/runtime.h"
#include "core/worker.h"
#include "hooks/stage.h"
#include "http/tls.h"
#include "proxy/proxy.h"
#include "stages.h"
#include "telemetry/metrics.h"

#define LINGER_NS (2000ull * 1000000ull)
/* Requests parsed from buffered input in one loop turn, so that a client
 * pipelining many requests cannot starve the others on this worker. */
#define MAX_PIPELINE_PER_TURN 32

static void conn_event_cb(evutil_socket_t fd, short what, void *arg);
static void conn_timer_cb(evutil_socket_t fd, short what, void *arg);
static void conn_close(struct gh_conn *c);
static void conn_read_head(struct gh_conn *c);
static void conn_parse_buffered(struct gh_conn *c);
static void conn_finish_request(struct gh_conn *c);
static void conn_early_error(struct gh_conn *c, int status, const char *code);

static const struct gh_snapshot *current_snap(const struct gh_conn *c)
{
    return c->worker->cur->snap;
}

static const struct gh_config_limits *limits_of(const struct gh_conn *c)
{
    return c->req && c->req->snap ? &c->req->snap->cfg->limits : &current_snap(c)->cfg->limits;
}

const char *gh_http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

/* ---- accept ---- */

static void set_nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static void conn_link(struct gh_worker *w, struct gh_conn *c)
{
    c->next = w->conns;
    if (w->conns) w->conns->prev = c;
    w->conns = c;
    w->nconns++;
}

static void conn_unlink(struct gh_worker *w, struct gh_conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    w->nconns--;
}

static void conn_peer_text(struct gh_conn *c)
{
    const struct sockaddr *sa = (const struct sockaddr *)&c->peer;
    const char *ok = NULL;

    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        ok = inet_ntop(AF_INET, &in->sin_addr, c->peer_ip, sizeof(c->peer_ip));
        c->peer_port = ntohs(in->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        ok = inet_ntop(AF_INET6, &c->peer.sin6_addr, c->peer_ip, sizeof(c->peer_ip));
        c->peer_port = ntohs(c->peer.sin6_port);
    }
    if (ok == NULL) snprintf(c->peer_ip, sizeof(c->peer_ip), "unknown");
    c->peer_ip_len = (uint8_t)strlen(c->peer_ip);
}

void gh_conn_accept_cb(evutil_socket_t lfd, short what, void *arg)
{
    struct gh_listener *l = arg;
    struct gh_worker *w = l->worker;
    const struct gh_snapshot *snap = w->cur->snap;

    /* A bounded batch per event keeps accept from starving live requests. */
    for (int i = 0; i < 64; i++) {
        struct sockaddr_in6 peer;
        socklen_t plen = sizeof(peer);
        struct gh_conn *c;
        int fd;

        if (w->nconns >= snap->cfg->limits.max_connections) {
            gh_worker_pause_accept(w, true);
            return;
        }
        fd = accept4(lfd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                gh_log_warn("worker %d: accept: %s; pausing accept", w->id, strerror(errno));
                gh_worker_pause_accept(w, true);
            }
            return;
        }
        c = calloc(1, sizeof(*c));
        if (c == NULL) {
            close(fd);
            return;
        }
        set_nodelay(fd);
        c->worker = w;
        c->listener = l;
        memcpy(&c->peer, &peer, plen < sizeof(peer) ? plen : sizeof(peer));
        conn_peer_text(c);
        gh_sock_init(&c->sock, w->base, fd, conn_event_cb, c);
        event_assign(&c->timer, w->base, -1, 0, conn_timer_cb, c);
        conn_link(w, c);
        atomic_fetch_add_explicit(&w->stats.conns_accepted, 1, memory_order_relaxed);
        gh_metrics_conn_accepted(w);

        if (!l->is_admin && snap->listen_tls[l->listen_index]) {
            c->sock.ssl = gh_tls_server_ssl(snap->listen_tls[l->listen_index], fd);
            if (c->sock.ssl == NULL) {
                conn_close(c);
                continue;
            }
            c->tls = true;
            c->state = GH_CONN_TLS_HANDSHAKE;
        } else {
            c->state = GH_CONN_HEAD;
        }
        c->t_head_start = gh_now_ns(); /* the header timeout runs from accept */
        gh_sock_want_read(&c->sock, true);
        gh_conn_arm_timer(c);
    }
}

/* ---- timers ---- */

static uint64_t ms_to_ns(uint32_t ms)
{
    return (uint64_t)ms * 1000000ull;
}

static uint64_t conn_deadline(const struct gh_conn *c)
{
    const struct gh_config_limits *lim = limits_of(c);

    switch (c->state) {
    case GH_CONN_TLS_HANDSHAKE: return c->t_head_start + ms_to_ns(lim->header_timeout_ms);
    case GH_CONN_HEAD:
        if (c->t_head_start) return c->t_head_start + ms_to_ns(lim->header_timeout_ms);
        return c->t_deadline; /* keep-alive idle: fixed when the connection went idle */
    case GH_CONN_ACTIVE: {
        const struct gh_req *r = c->req;
        uint64_t d = gh_proxy_deadline(r);
        uint64_t t;
        if (!r->body_done && r->head.framing.body != GH_BODY_NONE) {
            t = r->t_progress + ms_to_ns(lim->body_timeout_ms);
            if (d == 0 || t < d) d = t;
        }
        if (gh_buf_len(&c->out) > 0) {
            t = r->t_progress + ms_to_ns(lim->send_timeout_ms);
            if (d == 0 || t < d) d = t;
        }
        return d;
    }
    case GH_CONN_LINGER: return c->t_deadline;
    default: return 0;
    }
}

void gh_conn_arm_timer(struct gh_conn *c)
{
    uint64_t d = conn_deadline(c), now;
    struct timeval tv;

    if (d == 0) {
        evtimer_del(&c->timer);
        return;
    }
    now = gh_now_ns();
    d = d > now ? d - now : 0;
    tv.tv_sec = (time_t)(d / 1000000000ull);
    tv.tv_usec = (suseconds_t)((d % 1000000000ull) / 1000ull) + 1;
    evtimer_add(&c->timer, &tv);
}

static void conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct gh_conn *c = arg;
    uint64_t d;

    if (c->sock.fd < 0 || c->state == 0xff) {
        conn_close(c);
        return;
    }
    d = conn_deadline(c);
    if (d != 0 && gh_now_ns() < d) {
        gh_conn_arm_timer(c);
        return;
    }
    switch (c->state) {
    case GH_CONN_HEAD:
        if (c->req && gh_buf_len(&c->in) > 0) {
            conn_early_error(c, 408, "request_timeout");
            return;
        }
        conn_close(c);
        return;
    case GH_CONN_ACTIVE:
        if (c->req->up) {
            gh_proxy_on_timeout(c->req);
            return;
        }
        if (!c->req->resp_head_done && c->req->status == 0) {
            gh_conn_reply_error(c, 408, "request_timeout", true);
            return;
        }
        conn_close(c);
        return;
    default: conn_close(c); return;
    }
}

/* ---- closing ---- */

static void conn_close(struct gh_conn *c)
{
    struct gh_worker *w = c->worker;

    if (c->req) {
        if (c->req->up || c->req->pool) gh_proxy_abort(c->req);
        gh_stages_end(w, c->req, c->state == GH_CONN_ACTIVE && c->req->status);
        if (c->req->wsnap) gh_worker_snap_leave(w, c->req->wsnap);
        gh_worker_req_put(w, c->req);
        c->req = NULL;
    }
    evtimer_del(&c->timer);
    gh_sock_close(&c->sock);
    gh_buf_drop(&c->in, &w->bufpool);
    gh_buf_drop(&c->out, &w->bufpool);
    conn_unlink(w, c);
    gh_metrics_conn_closed(w);
    free(c);
    gh_worker_pause_accept(w, false);
}

void gh_conn_abort(struct gh_conn *c)
{
    /* Deferred: see the comment at the top of the file. */
    c->state = 0xff;
    gh_sock_want_read(&c->sock, false);
    gh_sock_want_write(&c->sock, false);
    event_active(&c->timer, EV_TIMEOUT, 0);
}

/* After a final answer on a connection that will close: stop writing, keep
 * reading (and dropping) input for a short while, so that a client still
 * sending its body does not get a reset that destroys our answer in flight
 * (the "lingering close" of RFC 9112 §9.6). */
static void conn_linger(struct gh_conn *c)
{
    if (c->req) {
        gh_stages_end(c->worker, c->req, true);
        if (c->req->up || c->req->pool) gh_proxy_abort(c->req);
        if (c->req->wsnap) gh_worker_snap_leave(c->worker, c->req->wsnap);
        gh_worker_req_put(c->worker, c->req);
        c->req = NULL;
    }
    if (c->tls || c->client_eof) {
        gh_conn_abort(c);
        return;
    }
    shutdown(c->sock.fd, SHUT_WR);
    c->state = GH_CONN_LINGER;
    c->t_deadline = gh_now_ns() + LINGER_NS;
    gh_sock_want_write(&c->sock, false);
    gh_sock_want_read(&c->sock, true);
    gh_conn_arm_timer(c);
}

/* ---- writing ---- */

bool gh_conn_flush(struct gh_conn *c)
{
    if (c->state == 0xff) return false;
    if (c->req && c->req->au_hold == GH_AUDIT_HOLD_REPLY) {
        /* Strict audit: nothing leaves before the event is durable. */
        gh_sock_want_write(&c->sock, false);
        return true;
    }
    while (gh_buf_len(&c->out) > 0) {
        ssize_t n = gh_sock_write(&c->sock, gh_buf_head(&c->out), gh_buf_len(&c->out));
        if (n > 0) {
            gh_buf_consume(&c->out, (uint32_t)n);
            if (c->req) {
                c->req->bytes_out += (uint64_t)n;
                c->req->t_progress = gh_now_ns();
            }
            continue;
        }
        if (n == GH_SOCK_AGAIN) {
            if (c->sock.want == GH_WANT_READ)
                gh_sock_want_read(&c->sock, true);
            else
                gh_sock_want_write(&c->sock, true);
            return true;
        }
        gh_conn_abort(c);
        return false;
    }
    gh_sock_want_write(&c->sock, false);
    return true;
}

/* Appends a response head for a locally generated answer. */
static int append_reply_head(struct gh_conn *c, int status, const char *content_type,
                             size_t body_len, bool close, const char *extra)
{
    const struct gh_req *r = c->req;
    char head[2048];
    int n;

    n = snprintf(head, sizeof(head),
                 "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                 "X-Request-Id: %.*s\r\n%s%s\r\n",
                 status, gh_http_reason(status), gh_worker_date(c->worker), content_type, body_len,
                 r ? (int)r->id_len : 0, r ? r->id : "", extra ? extra : "",
                 close ? "Connection: close\r\n"
                       : (r && r->head.minor_version == 0 ? "Connection: keep-alive\r\n" : ""));
    if (n < 0 || (size_t)n >= sizeof(head)) return -1;
    if (gh_buf_acquire(&c->out, &c->worker->bufpool) != 0) return -1;
    if (gh_buf_room(&c->out) < (size_t)n) gh_buf_compact(&c->out);
    return gh_buf_append(&c->out, head, (size_t)n);
}

void gh_conn_reply_ex(struct gh_conn *c, int status, const char *content_type, const char *body,
                      size_t len, const char *extra)
{
    struct gh_req *r = c->req;
    bool head_only = r && r->head.method_id == GH_HTTP_HEAD;
    uint32_t mark = gh_buf_len(&c->out);
    int audit = 0;

    /* A request whose body we have not read leaves bytes we cannot skip
     * safely: answer and close. */
    if (r && !r->body_done && r->head.framing.body != GH_BODY_NONE) c->want_close = true;
    if (r) r->status = status;
    if (r) gh_inbound_on_status(c->worker, r);
    /* The audit event of an audited request is written before its answer
     * leaves (strict mode), or the answer becomes 503. */
    if (r && (audit = gh_audit_on_reply(r, status)) < 0) {
        gh_conn_reply_error(c, 503, "audit_unavailable", false);
        return;
    }
    if (!head_only && len > GH_BUF_SIZE / 2 && gh_buf_len(&c->out) + len + 2048 > c->out.cap) {
        if (gh_buf_acquire(&c->out, &c->worker->bufpool) != 0 ||
            gh_buf_grow(&c->out, &c->worker->bufpool,
                        (uint32_t)(gh_buf_len(&c->out) + len + 2048)) != 0) {
            gh_conn_abort(c);
            return;
        }
    }
    if (append_reply_head(c, status, content_type, len, c->want_close, extra) != 0 ||
        (!head_only && len > 0 && gh_buf_append(&c->out, body, len) != 0)) {
        gh_conn_abort(c);
        return;
    }
    if (r) r->resp_head_done = true;
    if (audit == 1) {
        r->au_out_mark = mark; /* held in c->out until gh_conn_audit_done */
        return;
    }
    gh_conn_response_queued(c);
}

void gh_conn_audit_done(struct gh_conn *c, bool ok)
{
    struct gh_req *r = c->req;

    if (r == NULL) return;
    if (ok) {
        gh_conn_response_queued(c);
        return;
    }
    /* Take the held answer back out (nothing of it was written). */
    c->out.end = c->out.start + r->au_out_mark;
    r->resp_head_done = false;
    gh_conn_reply_error(c, 503, "audit_unavailable", false);
}

void gh_conn_reply(struct gh_conn *c, int status, const char *content_type, const char *body,
                   size_t len)
{
    gh_conn_reply_ex(c, status, content_type, body, len, NULL);
}

void gh_conn_reply_error(struct gh_conn *c, int status, const char *code, bool close)
{
    gh_conn_reply_error_ex(c, status, code, close, NULL);
}

static void reply_error(struct gh_conn *c, int status, const char *code, const char *message,
                        bool close, const char *extra)
{
    char body[512];
    struct gh_jsonw jw;
    struct gh_req *r = c->req;

    if (r && r->resp_head_done) {
        /* Too late for an answer: the client sees the connection close. */
        gh_conn_abort(c);
        return;
    }
    gh_jsonw_init(&jw, body, sizeof(body));
    gh_jsonw_lit(&jw, "{\"error\":");
    gh_jsonw_str(&jw, gh_str_cstr(code));
    if (message) {
        gh_jsonw_lit(&jw, ",\"message\":");
        gh_jsonw_str(&jw, gh_str_cstr(message));
    }
    gh_jsonw_lit(&jw, ",\"request_id\":");
    gh_jsonw_str(&jw, r ? gh_str_make(r->id, r->id_len) : GH_STR_LIT(""));
    gh_jsonw_lit(&jw, "}\n");
    if (r) r->error = code;
    if (close) c->want_close = true;
    if (r && c->state != GH_CONN_ACTIVE) c->state = GH_CONN_ACTIVE;
    gh_conn_reply_ex(c, status, "application/json", body, jw.len, extra);
}

void gh_conn_reply_error_ex(struct gh_conn *c, int status, const char *code, bool close,
                            const char *extra)
{
    reply_error(c, status, code, NULL, close, extra);
}

void gh_conn_reply_error_msg(struct gh_conn *c, int status, const char *code, const char *message,
                             bool close)
{
    reply_error(c, status, code, message, close, NULL);
}

void gh_conn_response_queued(struct gh_conn *c)
{
    if (c->req) c->req->resp_done = true;
    if (!gh_conn_flush(c)) return;
    if (gh_buf_len(&c->out) == 0)
        conn_finish_request(c);
    else
        gh_conn_arm_timer(c);
}

/* ---- streamed responses ---- */

/* Bytes of chunk framing around one chunk: "<hex>\r\n" and "\r\n". */
#define CHUNK_FRAMING 20

int gh_conn_stream_begin(struct gh_req *r, int status, const char *content_type,
                         void (*drained)(struct gh_req *r), void (*release)(struct gh_req *r),
                         void *arg)
{
    struct gh_conn *c = r->conn;
    char head[1024];
    int n;

    /* Registered first, so that <arg> is freed however this ends. */
    r->stream_release = release;
    r->stream_arg = arg;
    if (r->resp_head_done) {
        gh_conn_abort(c);
        return -1;
    }
    r->stream_chunked = r->head.minor_version >= 1;
    if (!r->stream_chunked) c->want_close = true; /* the close ends the body */
    if (!r->body_done && r->head.framing.body != GH_BODY_NONE) c->want_close = true;
    n = snprintf(head, sizeof(head),
                 "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: %s\r\n%sX-Request-Id: %.*s\r\n"
                 "Cache-Control: no-store\r\n%s\r\n",
                 status, gh_http_reason(status), gh_worker_date(c->worker), content_type,
                 r->stream_chunked ? "Transfer-Encoding: chunked\r\n" : "", (int)r->id_len, r->id,
                 c->want_close ? "Connection: close\r\n" : "");
    if (n < 0 || (size_t)n >= sizeof(head) || gh_buf_acquire(&c->out, &c->worker->bufpool) != 0) {
        gh_conn_abort(c);
        return -1;
    }
    if (gh_buf_room(&c->out) < (size_t)n) gh_buf_compact(&c->out);
    if (gh_buf_append(&c->out, head, (size_t)n) != 0) {
        gh_conn_abort(c);
        return -1;
    }
    r->status = status;
    gh_inbound_on_status(c->worker, r);
    r->resp_head_done = true;
    r->stream_drained = drained;
    return gh_conn_stream_write(r, NULL, 0);
}

int gh_conn_stream_write(struct gh_req *r, const char *data, size_t len)
{
    struct gh_conn *c = r->conn;
    char size[CHUNK_FRAMING];
    int n = 0;

    if (c->state == 0xff) return -1;
    if (len > 0) {
        size_t need = gh_buf_len(&c->out) + len + CHUNK_FRAMING;
        if (need > UINT32_MAX / 2) {
            gh_conn_abort(c);
            return -1;
        }
        if (gh_buf_room(&c->out) < len + CHUNK_FRAMING) gh_buf_compact(&c->out);
        if (gh_buf_room(&c->out) < len + CHUNK_FRAMING &&
            gh_buf_grow(&c->out, &c->worker->bufpool, (uint32_t)need) != 0) {
            gh_conn_abort(c);
            return -1;
        }
        if (r->stream_chunked) n = snprintf(size, sizeof(size), "%zx\r\n", len);
        if (gh_buf_append(&c->out, size, (size_t)n) != 0 ||
            gh_buf_append(&c->out, data, len) != 0 ||
            (r->stream_chunked && gh_buf_append(&c->out, "\r\n", 2) != 0)) {
            gh_conn_abort(c);
            return -1;
        }
    }
    if (!gh_conn_flush(c)) return -1;
    /* Everything went out: ask for a write event anyway, so that the next
     * page is made on the next loop turn (one page per turn), not now. */
    if (gh_buf_len(&c->out) == 0) gh_sock_want_write(&c->sock, true);
    gh_conn_arm_timer(c);
    return 0;
}

void gh_conn_stream_end(struct gh_req *r)
{
    struct gh_conn *c = r->conn;

    if (c->state == 0xff) return;
    r->stream_drained = NULL;
    if (r->stream_chunked && gh_buf_append(&c->out, "0\r\n\r\n", 5) != 0) {
        gh_buf_compact(&c->out);
        if (gh_buf_append(&c->out, "0\r\n\r\n", 5) != 0) {
            gh_conn_abort(c);
            return;
        }
    }
    gh_conn_response_queued(c);
}

/* ---- requests ---- */

static bool valid_request_id(gh_str v)
{
    if (v.len == 0 || v.len > GH_REQUEST_ID_MAX) return false;
    for (size_t i = 0; i < v.len; i++) {
        unsigned char ch = (unsigned char)v.ptr[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_' || ch == '.' || ch == ':'))
            return false;
    }
    return true;
}

static void set_request_id(struct gh_worker *w, struct gh_req *r)
{
    static const char hex[] = "0123456789abcdef";
    const struct gh_http_header *h =
        gh_http_find_header(r->head.headers, r->head.nheaders, "x-request-id");
    uint64_t a, b;

    if (h && valid_request_id(h->value)) {
        memcpy(r->id, h->value.ptr, h->value.len);
        r->id_len = (uint8_t)h->value.len;
        r->id_from_client = true;
        return;
    }
    /* 128 bits: a random per-worker prefix and a counter. Unique, cheap,
     * and not meant to be secret. */
    a = w->id_prefix;
    b = ++w->id_counter;
    for (int i = 15; i >= 0; i--, a >>= 4)
        r->id[i] = hex[a & 15];
    for (int i = 31; i >= 16; i--, b >>= 4)
        r->id[i] = hex[b & 15];
    r->id[32] = 0;
    r->id_len = 32;
    r->id_from_client = false;
}

/* Starts serving the head just parsed into c->req. */
static void conn_start_request(struct gh_conn *c)
{
    struct gh_worker *w = c->worker;
    struct gh_req *r = c->req;
    const struct gh_config_limits *lim;

    c->state = GH_CONN_ACTIVE;
    c->t_head_start = 0;
    r->conn = c;
    r->wsnap = gh_worker_snap_enter(w);
    r->snap = r->wsnap->snap;
    r->t_start = r->t_progress = gh_now_ns();
    r->bytes_in = r->head.head_len;
    r->body_done = r->head.framing.body == GH_BODY_NONE;
    r->body_left = r->head.framing.content_length;
    r->body_pos = c->in.start + r->head.head_len;
    lim = &r->snap->cfg->limits;
    gh_chunked_init(&r->req_chunked, lim->max_header_bytes);
    set_request_id(w, r);
    atomic_fetch_add_explicit(&w->stats.requests, 1, memory_order_relaxed);
    gh_metrics_request_start(w, r);

    c->requests++;
    if (!r->head.framing.keep_alive || c->client_eof || w->draining ||
        (lim->keepalive_requests && c->requests >= lim->keepalive_requests))
        c->want_close = true;

    gh_stages_run(r);
}

void gh_conn_drain_all(struct gh_worker *w)
{
    struct gh_conn *c = w->conns, *next;
    for (; c; c = next) {
        next = c->next;
        if (c->state == GH_CONN_HEAD && c->req == NULL)
            conn_close(c);
        else
            c->want_close = true;
    }
}

void gh_conn_close_all(struct gh_worker *w)
{
    while (w->conns)
        conn_close(w->conns);
}

/* The response is written: log, then go on with the next request. */
static void conn_finish_request(struct gh_conn *c)
{
    struct gh_worker *w = c->worker;
    struct gh_req *r = c->req;

    if (r == NULL) return;
    if (c->want_close || (!r->body_done && r->head.framing.body != GH_BODY_NONE)) {
        conn_linger(c);
        return;
    }
    gh_stages_end(w, r, true);
    if (r->up || r->pool) gh_proxy_abort(r);
    gh_worker_snap_leave(w, r->wsnap);
    c->in.start = r->body_pos;
    if (c->in.start >= c->in.end) c->in.start = c->in.end = 0;
    gh_worker_req_put(w, r);
    c->req = NULL;
    c->state = GH_CONN_HEAD;
    gh_http_state_reset(&c->parse);
    gh_sock_want_read(&c->sock, true);

    if (gh_buf_len(&c->in) > 0) {
        /* Inside conn_parse_buffered, its loop goes on with the next one. */
        if (!c->parsing) conn_parse_buffered(c);
        return;
    }
    /* Idle: give the buffers back so an idle connection costs little. */
    gh_buf_drop(&c->in, &w->bufpool);
    gh_buf_drop(&c->out, &w->bufpool);
    c->t_head_start = 0;
    c->t_deadline = gh_now_ns() + ms_to_ns(current_snap(c)->cfg->limits.keepalive_timeout_ms);
    gh_conn_arm_timer(c);
}

/* Parses what is already buffered (pipelined requests). */
static void conn_parse_buffered(struct gh_conn *c)
{
    int i;

    c->parsing = true;
    for (i = 0; i < MAX_PIPELINE_PER_TURN; i++) {
        struct gh_http_error err;
        int rc;

        if (c->state != GH_CONN_HEAD || gh_buf_len(&c->in) == 0) break;
        if (c->req == NULL) {
            c->req = gh_worker_req_get(c->worker);
            if (c->req == NULL) {
                gh_conn_abort(c);
                break;
            }
            gh_http_state_reset(&c->parse);
            c->t_head_start = gh_now_ns();
        }
        rc = gh_http_parse_request(gh_buf_head(&c->in), gh_buf_len(&c->in), &c->parse,
                                   &current_snap(c)->http_limits, c->req->headers, &c->req->head,
                                   &err);
        if (rc == GH_AGAIN) {
            gh_conn_arm_timer(c);
            break;
        }
        if (rc != GH_OK) {
            conn_early_error(c, err.status, err.code);
            break;
        }
        conn_start_request(c);
    }
    c->parsing = false;
    /* More pipelined requests wait for the next loop turn. */
    if (i == MAX_PIPELINE_PER_TURN && c->state == GH_CONN_HEAD && gh_buf_len(&c->in) > 0)
        event_active(&c->sock.ev_read, EV_READ, 0);
}

/* Answers a request that never got a complete head (parse error, header
 * timeout): it still gets a request id, a snapshot and a log line. */
static void conn_early_error(struct gh_conn *c, int status, const char *code)
{
    struct gh_req *r = c->req;

    memset(&r->head, 0, sizeof(r->head));
    set_request_id(c->worker, r);
    r->conn = c;
    r->t_start = r->t_progress = gh_now_ns();
    r->wsnap = gh_worker_snap_enter(c->worker);
    r->snap = r->wsnap->snap;
    r->body_done = true;
    r->bytes_in = gh_buf_len(&c->in);
    gh_metrics_request_start(c->worker, r);
    gh_conn_reply_error(c, status, code, true);
}

/* Reads bytes of a request head. */
static void conn_read_head(struct gh_conn *c)
{
    struct gh_worker *w = c->worker;
    const struct gh_snapshot *snap = current_snap(c);
    ssize_t n;

    if (gh_buf_acquire(&c->in, &w->bufpool) != 0) {
        conn_close(c);
        return;
    }
    if (gh_buf_room(&c->in) == 0) {
        gh_buf_compact(&c->in);
        if (gh_buf_room(&c->in) == 0) {
            /* The head outgrew a pooled buffer: grow once, to the limit. */
            uint32_t cap = snap->cfg->limits.max_header_bytes + 1;
            if (cap <= c->in.cap || gh_buf_grow(&c->in, &w->bufpool, cap) != 0) {
                conn_parse_buffered(c);
                return;
            }
        }
    }
    n = gh_sock_read(&c->sock, gh_buf_tail(&c->in), gh_buf_room(&c->in));
    if (n == GH_SOCK_AGAIN) {
        if (c->sock.want == GH_WANT_WRITE) gh_sock_want_write(&c->sock, true);
        return;
    }
    if (n == GH_SOCK_EOF || n == GH_SOCK_ERR) {
        conn_close(c);
        return;
    }
    c->in.end += (uint32_t)n;
    conn_parse_buffered(c);
}

/* Reads while a request is active: body bytes for the proxy, or the start
 * of a pipelined request (kept until this one is done). */
static void conn_read_active(struct gh_conn *c)
{
    struct gh_req *r = c->req;
    ssize_t n;

    if (gh_buf_room(&c->in) == 0) {
        /* Backpressure: the proxy re-enables reading when it made room. */
        gh_sock_want_read(&c->sock, false);
        return;
    }
    n = gh_sock_read(&c->sock, gh_buf_tail(&c->in), gh_buf_room(&c->in));
    if (n == GH_SOCK_AGAIN) {
        if (c->sock.want == GH_WANT_WRITE) gh_sock_want_write(&c->sock, true);
        return;
    }
    if (n == GH_SOCK_EOF) {
        c->client_eof = true;
        c->want_close = true;
        gh_sock_want_read(&c->sock, false);
        if (!r->body_done) {
            /* The body will never complete. */
            gh_conn_abort(c);
            return;
        }
        return;
    }
    if (n == GH_SOCK_ERR) {
        gh_conn_abort(c);
        return;
    }
    c->in.end += (uint32_t)n;
    if (!r->body_done) {
        r->t_progress = gh_now_ns();
        if (r->up || r->pool)
            gh_proxy_on_client_input(r);
        else if (r->collect_body)
            gh_stages_resume(r); /* the handler collects what arrived */
    } else if (gh_buf_room(&c->in) == 0) {
        gh_sock_want_read(&c->sock, false);
    }
}

/* Moves the body bytes that arrived into r->body_copy. */
static void collect_more(struct gh_req *r)
{
    struct gh_conn *c = r->conn;
    uint32_t avail = c->in.end - r->body_pos;
    uint64_t want = r->head.framing.content_length - r->body_have;
    uint32_t n = avail < want ? avail : (uint32_t)want;

    memcpy(r->body_copy + r->body_have, c->in.data + r->body_pos, n);
    r->body_have += n;
    r->bytes_in += n;
    gh_conn_body_consumed(c, n);
}

int gh_conn_collect_body(struct gh_req *r, uint32_t max, gh_str *body)
{
    struct gh_conn *c = r->conn;
    uint64_t len = r->head.framing.content_length;

    *body = GH_STR_NULL;
    if (r->body_collected) {
        /* A stage that suspended after collecting runs again. */
        *body = r->body_slice;
        return 1;
    }
    if (r->head.framing.body == GH_BODY_NONE) return 1;
    if (r->head.framing.body == GH_BODY_CHUNKED) {
        gh_conn_reply_error(c, 411, "length_required", true);
        return 0;
    }
    if (len > max) {
        gh_conn_reply_error(c, 413, "body_too_large", true);
        return 0;
    }
    if (r->body_copy == NULL && c->in.end - r->body_pos >= len) {
        /* All here already: a slice, no copy. */
        *body = gh_str_make(c->in.data + r->body_pos, (size_t)len);
        r->body_pos += (uint32_t)len;
        r->body_done = true;
        r->bytes_in += len;
        r->body_collected = true;
        r->body_slice = *body;
        return 1;
    }
    /* The head stays where it is (the parsed slices point into it); the
     * body gathers in its own buffer as it arrives. */
    if (r->body_copy == NULL) {
        r->body_copy = malloc(len);
        if (r->body_copy == NULL) {
            gh_conn_reply_error(c, 500, "internal_error", true);
            return 0;
        }
    }
    collect_more(r);
    if (r->body_have < len) {
        r->collect_body = true;
        gh_sock_want_read(&c->sock, true);
        return 2;
    }
    r->collect_body = false;
    r->body_done = true;
    *body = gh_str_make(r->body_copy, (size_t)len);
    r->body_collected = true;
    r->body_slice = *body;
    return 1;
}

/* RFC 9110 §10.1.1: a client that sent "Expect: 100-continue" waits for
 * it before the body. Returns false when the connection was closed. */
static bool send_continue(struct gh_req *r)
{
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    struct gh_conn *c = r->conn;

    if (!r->head.expect_continue || r->continue_sent || r->body_done || c->in.end != r->body_pos)
        return true;
    if (gh_buf_acquire(&c->out, &c->worker->bufpool) != 0 ||
        gh_buf_append(&c->out, cont, sizeof(cont) - 1) != 0)
        return true; /* the client sends its body anyway after a while */
    r->continue_sent = true;
    return gh_conn_flush(c);
}

/* Room for <need> bytes at r->body_copy: doubling from 4 KiB, never past
 * <max> (the caller checked need <= max). */
static int body_reserve(struct gh_req *r, uint64_t need, uint64_t max)
{
    uint64_t cap = r->body_copy_cap ? r->body_copy_cap : 4096;
    char *p;

    if (need <= r->body_copy_cap) return GH_OK;
    while (cap < need)
        cap *= 2;
    if (cap > max) cap = max;
    p = realloc(r->body_copy, (size_t)cap);
    if (p == NULL) return GH_ERROR;
    r->body_copy = p;
    r->body_copy_cap = cap;
    return GH_OK;
}

/* Decodes the chunked body bytes that arrived into r->body_copy. Returns 1
 * at the end of the body, 2 when more must come, 0 after answering. */
static int buffer_chunked(struct gh_req *r, uint64_t max)
{
    struct gh_conn *c = r->conn;
    uint32_t avail = c->in.end - r->body_pos;
    size_t off = 0;
    int rc = 2;

    while (off < avail && rc == 2) {
        struct gh_http_error err;
        size_t consumed = 0;
        gh_str span;
        enum gh_chunk_event ev = gh_chunked_next(&r->req_chunked, c->in.data + r->body_pos + off,
                                                 avail - off, &consumed, &span, &err);
        if (ev == GH_CHUNK_DATA) {
            if (r->body_have + span.len > max) {
                err.status = 413, err.code = "body_too_large";
                ev = GH_CHUNK_ERROR;
            } else if (body_reserve(r, r->body_have + span.len, max) != GH_OK) {
                err.status = 500, err.code = "internal_error";
                ev = GH_CHUNK_ERROR;
            } else {
                memcpy(r->body_copy + r->body_have, span.ptr, span.len);
                r->body_have += span.len;
            }
        }
        off += consumed;
        if (ev == GH_CHUNK_ERROR) {
            r->bytes_in += off;
            gh_conn_body_consumed(c, (uint32_t)off);
            r->body_done = true; /* nothing more is read for this request */
            r->collect_body = false;
            gh_conn_reply_error(c, err.status, err.code, true);
            return 0;
        }
        if (ev == GH_CHUNK_DONE) rc = 1;
        if (ev == GH_CHUNK_NEED_MORE) break;
    }
    r->bytes_in += off;
    gh_conn_body_consumed(c, (uint32_t)off);
    return rc;
}

int gh_conn_buffer_body(struct gh_req *r, uint64_t max, gh_str *body)
{
    struct gh_conn *c = r->conn;
    int rc;

    *body = GH_STR_NULL;
    if (r->body_collected) {
        *body = r->body_slice;
        return 1;
    }
    if (r->head.framing.body == GH_BODY_NONE) {
        r->body_collected = true;
        r->body_slice = *body;
        return 1;
    }
    if (r->head.framing.body == GH_BODY_LENGTH && r->head.framing.content_length > max) {
        gh_conn_reply_error(c, 413, "body_too_large", true);
        return 0;
    }
    if (!send_continue(r)) return 0;
    if (r->head.framing.body == GH_BODY_LENGTH) {
        rc = gh_conn_collect_body(r, (uint32_t)max, body);
        if (rc == 1) r->body_buffered = true;
        return rc;
    }
    rc = buffer_chunked(r, max);
    if (rc == 2) {
        r->collect_body = true;
        gh_sock_want_read(&c->sock, true);
        return 2;
    }
    if (rc == 0) return 0;
    r->collect_body = false;
    r->body_done = true;
    r->body_buffered = true;
    r->body_collected = true;
    r->body_slice = gh_str_make(r->body_copy ? r->body_copy : "", (size_t)r->body_have);
    *body = r->body_slice;
    return 1;
}

void gh_conn_body_consumed(struct gh_conn *c, uint32_t n)
{
    struct gh_req *r = c->req;
    uint32_t after = r->body_pos + n;

    if (after == c->in.end) {
        c->in.end = r->body_pos; /* all read bytes consumed: reuse the room */
    } else {
        /* Keep the head where it is; slide the unread rest down to it. */
        memmove(c->in.data + r->body_pos, c->in.data + after, c->in.end - after);
        c->in.end -= n;
    }
    if (!c->client_eof && gh_buf_room(&c->in) > 0) gh_sock_want_read(&c->sock, true);
}

static void conn_linger_read(struct gh_conn *c)
{
    char sink[4096];
    ssize_t n = read(c->sock.fd, sink, sizeof(sink));
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) conn_close(c);
}

static void conn_handshake(struct gh_conn *c)
{
    int rc = gh_sock_handshake(&c->sock);
    if (rc == 0) {
        gh_metrics_tls_handshake(c->worker, true);
        c->state = GH_CONN_HEAD;
        gh_sock_want_write(&c->sock, false);
        gh_sock_want_read(&c->sock, true);
        conn_read_head(c);
        return;
    }
    if (rc == GH_SOCK_AGAIN) {
        gh_sock_want_write(&c->sock, c->sock.want == GH_WANT_WRITE);
        return;
    }
    atomic_fetch_add_explicit(&c->worker->stats.tls_handshake_failures, 1, memory_order_relaxed);
    gh_metrics_tls_handshake(c->worker, false);
    conn_close(c);
}

static void conn_event_cb(evutil_socket_t fd, short what, void *arg)
{
    struct gh_conn *c = arg;

    switch (c->state) {
    case GH_CONN_TLS_HANDSHAKE: conn_handshake(c); return;
    case GH_CONN_HEAD:
        if (what & EV_WRITE) {
            /* Only a TLS read that needed a write gets here. */
            gh_sock_want_write(&c->sock, false);
        }
        conn_read_head(c);
        return;
    case GH_CONN_ACTIVE:
        if (what & EV_WRITE) {
            if (!gh_conn_flush(c)) return;
            if (gh_buf_len(&c->out) == 0) {
                if (c->req->resp_done) {
                    conn_finish_request(c);
                    return;
                }
                if (c->req->up || c->req->pool)
                    gh_proxy_on_client_drained(c->req);
                else if (c->req->stream_drained)
                    c->req->stream_drained(c->req);
                if (c->state != GH_CONN_ACTIVE) return;
            }
        }
        if ((what & EV_READ) && c->state == GH_CONN_ACTIVE) conn_read_active(c);
        return;
    case GH_CONN_LINGER:
        if (what & EV_READ) conn_linger_read(c);
        return;
    default: return;
    }
}
