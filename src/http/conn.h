/* A client connection and the request it is serving.
 *
 * The connection reads a head, parses it, and hands a struct gh_req to the
 * stage pipeline (src/stages.c). A stage may answer (gh_conn_reply*), or
 * pass the request to a handler that streams a response (the proxy). The
 * connection then writes the response, logs it, and either reads the next
 * request (keep-alive, pipelining: answers go out in order because one
 * request is served at a time) or closes.
 *
 * Buffers are held only while needed: an idle keep-alive connection holds
 * none. All functions run on the connection's worker thread. */
#ifndef GH_HTTP_CONN_H
#define GH_HTTP_CONN_H

#include <event2/event.h>
#include <event2/event_struct.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

#include "audit/audit.h"
#include "auth/principal.h"
#include "core/buf.h"
#include "core/snapshot.h"
#include "http/parser.h"
#include "http/sock.h"
#include "limits/policy.h"
#include "telemetry/tracectx.h"

struct gh_worker;
struct gh_listener;
struct gh_route;
struct gh_upconn;
struct gh_pool;
struct gh_verify_job;
struct gh_idem_req;

enum gh_conn_state {
    GH_CONN_TLS_HANDSHAKE,
    GH_CONN_HEAD,   /* waiting for / reading a request head */
    GH_CONN_ACTIVE, /* a request is being served */
    GH_CONN_LINGER, /* final answer sent; draining input before close */
};

#define GH_REQUEST_ID_MAX 64

/* Why an exchange with the upstream failed: used for the answer and logs. */
enum gh_up_error {
    GH_UPERR_NONE,
    GH_UPERR_REFUSED,
    GH_UPERR_RESET,
    GH_UPERR_TIMEOUT,
    GH_UPERR_BAD_RESPONSE,
    GH_UPERR_TLS,
    GH_UPERR_BUSY,
};

struct gh_req {
    struct gh_conn *conn;
    struct gh_wsnap *wsnap; /* the snapshot this request uses, start to end */
    const struct gh_snapshot *snap;
    struct gh_http_request head; /* slices into conn->in, valid until the request ends */
    const struct gh_route *route;

    char id[GH_REQUEST_ID_MAX + 1];
    uint8_t id_len;
    bool id_from_client;

    uint64_t t_start;    /* monotonic ns: head complete */
    uint64_t t_up_start; /* first upstream attempt */
    uint64_t t_up_head;  /* upstream response head parsed */
    uint64_t t_progress; /* last byte moved either way, for the idle timeout */
    uint64_t bytes_in;   /* request bytes from the client (head + body) */
    uint64_t bytes_out;  /* response bytes to the client (head + body) */
    int status;          /* status sent to the client (0 until known) */
    const char *error;   /* error code we answered with, if any */

    /* Request body, client -> upstream. The head stays in conn->in until the
     * request ends; body bytes arrive after it, from offset body_pos. */
    uint32_t body_pos;  /* offset in conn->in.data of the next body byte */
    uint64_t body_left; /* GH_BODY_LENGTH: bytes still to read */
    struct gh_chunked req_chunked;
    bool body_done;      /* whole body consumed from the client */
    bool continue_sent;  /* "100 Continue" queued */
    bool req_last_chunk; /* "0\r\n" written upstream (chunked body) */
    bool collect_body;   /* waiting for the whole body (gh_conn_collect_body) */
    bool body_collected; /* gh_conn_collect_body answered 1: <body_slice> is it */
    gh_str body_slice;
    char *body_copy; /* the body gathered so far, when it did not fit */
    uint64_t body_have;
    uint64_t body_copy_cap; /* gh_conn_buffer_body: bytes allocated at body_copy */
    bool body_buffering;    /* gh_conn_buffer_body is gathering (any framing) */
    bool body_buffered;     /* the proxy sends body_slice, with Content-Length */
    uint64_t body_sent;     /* bytes of body_slice written upstream (this attempt) */
    /* Replay keys the verify stage recorded for this request's webhook
     * (src/hooks/stage.c): taken back when the delivery fails, so that the
     * sender's retry passes. */
    uint64_t wh_replay[2];
    uint8_t wh_nreplay;
    /* The same keys in Redis (issue 8; the digests sit in wh_rdigest, after
     * next_free): a record command out, its answer, and what to release. */
    uint64_t wh_token;        /* with the worker's id prefix: the value our keys hold */
    uint32_t wh_redis_handle; /* of the record command, for gh_redis_cancel */
    uint8_t wh_step;          /* 1: the record is out or answered; 2: decided */
    uint8_t wh_nredis;        /* keys this request set (or may have set) in Redis */
    int8_t wh_redis_res;      /* the record's answer: 1 new, 0 seen, -1 unavailable */
    bool wh_redis_out;        /* the record command is out */
    bool wh_local_full;       /* the local table had no room for the keys */
    /* Idempotency (src/idem/stage.c): allocated only on routes with
     * `idempotency` for requests with a key; freed at the request's end. */
    struct gh_idem_req *idem;

    /* Upstream exchange (owned by the proxy). */
    struct gh_pool *pool;
    struct gh_upconn *up;
    uint64_t t_attempt; /* current attempt began (connect or reuse) */
    uint64_t t_sent;    /* request fully written upstream */
    uint8_t attempts;
    uint8_t endpoint_tries;  /* endpoints tried after refused connects */
    uint16_t endpoint_first; /* index of the first endpoint tried */
    char endpoint[96];       /* the endpoint of the last attempt, for the access log
                              * (pools may go away before the request is logged) */
    bool no_pool;            /* retry on a fresh connection, not a pooled one */
    bool up_reused;          /* the connection came from the pool */
    bool up_sent_all;        /* request head and body fully written upstream */
    bool up_got_bytes;       /* any response byte arrived */
    enum gh_up_error up_error;

    /* Response, upstream -> client. */
    struct gh_http_state resp_state;
    struct gh_http_response resp;
    uint64_t resp_left;
    struct gh_chunked resp_chunked;
    bool resp_chunk_out;  /* re-encode as chunked towards the client */
    bool resp_head_done;  /* final response head queued to the client */
    bool resp_done;       /* whole response queued to the client */
    bool resp_last_chunk; /* "0\r\n" written (chunked output) */
    bool up_keep;         /* the upstream connection may be reused after this */

    /* Authentication (src/auth/authn.c). The principal itself sits after
     * next_free, outside the part zeroed per request: only principal.kind
     * is reset, and the rest is read only when kind says it was filled. */
    struct gh_verify_job *verify_job;         /* out at the auth service */
    struct gh_req *next_waiter;               /* other requests waiting on the same job */
    const struct gh_http_header *cred_header; /* carried an API key: not forwarded */
    int8_t verify_result;                     /* 0 none yet, 1 verified, -1 refused */
    uint8_t stage_index;                      /* where the pipeline resumes */

    /* Limits (src/limits/limits.c). */
    uint64_t lim_held[3];               /* bulkhead slots taken (keys) */
    uint64_t lim_deadline;              /* monotonic ns: the bulkhead queue wait ends */
    struct gh_req *lim_next, *lim_prev; /* the worker's bulkhead queue */
    int64_t lim_reply[5];               /* the Redis script's answer */
    uint32_t lim_redis_handle;
    uint8_t lim_nheld;
    uint8_t lim_step;    /* where the limits stage resumes */
    uint8_t lim_nrules;  /* entries of lim_rules in use */
    bool lim_counted;    /* admitted (counted) by the quota table */
    bool lim_redis_out;  /* an EVALSHA is out */
    bool lim_queued;     /* in the bulkhead queue */
    int8_t lim_redis;    /* 1: lim_reply holds Redis's answer; -1: Redis was unavailable */
    uint16_t rl_hdr_len; /* bytes of rl_hdr for the response head */

    /* Tracing (src/telemetry/trace.c). The caller's context, tr_ctx, sits
     * after next_free: gh_trace_stage fills all of it before any use. */
    uint64_t tr_auth0, tr_auth1, tr_lim0, tr_lim1; /* monotonic ns; 0: the stage did not run */
    uint64_t tr_up_end;                            /* the upstream's response complete */
    uint8_t tr_trace_id[16];
    uint8_t tr_server_id[8];
    uint8_t tr_upstream_id[8];
    uint8_t tr_flags;                      /* W3C flags sent upstream */
    uint8_t tr_auth_result, tr_lim_result; /* 1: passed, 2: answered */
    bool tr_on;                            /* ids picked: a record is due at the end */
    bool tr_has_parent;                    /* the caller sent a valid traceparent */

    /* Metrics (src/telemetry/metrics.c). */
    bool m_started;        /* counted in flight; cleared when counted out */
    uint8_t m_auth_method; /* GH_MAUTH_*: the credential kind the auth stage read */

    /* Audit (src/audit/request.c). */
    struct gh_audit_waiter au_waiter; /* strict mode: waiting for the event to be durable */
    struct gh_audit_event *au_admin;  /* admin API: the event written with the answer */
    uint32_t au_out_mark;             /* bytes of conn->out before a held answer */
    uint8_t au_mode;                  /* gh_audit_req_mode() + 1; 0: not known yet */
    uint8_t au_hold;                  /* enum gh_audit_hold */
    bool au_recorded;                 /* the http.request event is written */
    bool au_token;                    /* POST /oauth/token: token.issue at the answer */

    /* A response the gateway streams itself (gh_conn_stream_begin). */
    void (*stream_drained)(struct gh_req *r); /* room to write: queue more or end */
    void (*stream_release)(struct gh_req *r); /* the request ends: free stream_arg */
    void *stream_arg;
    bool stream_chunked; /* chunked framing (HTTP/1.1); else close-delimited */

    struct gh_req *next_free;
    struct gh_principal principal;
    struct gh_tracectx tr_ctx;
    struct gh_limit_applied lim_rules[GH_LIMITS_MAX_RULES];
    uint8_t wh_rdigest[2][16]; /* the Redis keys' digests, read only while wh_nredis > 0 */
    char rl_hdr[384];          /* RateLimit-Policy and RateLimit lines */
    char au_jti[24];           /* the token issued, read only when au_token */
    struct gh_http_header headers[GH_HTTP_MAX_HEADERS];
    struct gh_http_header resp_headers[GH_HTTP_MAX_HEADERS];
};

struct gh_conn {
    struct gh_sock sock;
    struct gh_worker *worker;
    struct gh_listener *listener;
    struct event timer;
    struct gh_buf in;
    struct gh_buf out;
    struct gh_http_state parse;
    struct gh_req *req;
    uint64_t t_head_start; /* first byte of the current head, 0 when none */
    uint64_t t_deadline;   /* what the timer is armed for (monotonic ns) */
    uint32_t requests;
    uint8_t state;
    bool want_close; /* close once the current response is written */
    bool client_eof; /* the client closed its side */
    bool tls;
    bool parsing;             /* inside conn_parse_buffered: no nested call */
    struct sockaddr_in6 peer; /* holds IPv4 or IPv6 */
    char peer_ip[46];         /* text form, for X-Forwarded-For and logs */
    uint8_t peer_ip_len;
    uint16_t peer_port;
    struct gh_conn *prev, *next;
};

/* Accepts pending connections on <l> (its listener event callback). */
void gh_conn_accept_cb(evutil_socket_t fd, short what, void *arg);

/* Closes every idle connection of <w> (shutdown), and marks busy ones to
 * close after their current response. */
void gh_conn_drain_all(struct gh_worker *w);
/* Closes every connection of <w> now (shutdown deadline passed). */
void gh_conn_close_all(struct gh_worker *w);

/* Answers the current request with <status> and a JSON body
 * {"error": <code>, "request_id": ...}. Only before any response byte was
 * queued. Closes the connection afterwards when <close> is true. */
void gh_conn_reply_error(struct gh_conn *c, int status, const char *code, bool close);
/* Same, with <extra> header lines ("Name: value\r\n"...) added. */
void gh_conn_reply_error_ex(struct gh_conn *c, int status, const char *code, bool close,
                            const char *extra);
/* Same, with a "message" for people (no secrets: it goes to the client). */
void gh_conn_reply_error_msg(struct gh_conn *c, int status, const char *code, const char *message,
                             bool close);

/* Answers the current request with a complete response. <body> is copied. */
void gh_conn_reply(struct gh_conn *c, int status, const char *content_type, const char *body,
                   size_t len);
void gh_conn_reply_ex(struct gh_conn *c, int status, const char *content_type, const char *body,
                      size_t len, const char *extra);

/* The audit writer answered for an answer held in c->out (strict mode):
 * sends it (<ok>), or replaces it with 503 audit_unavailable. */
void gh_conn_audit_done(struct gh_conn *c, bool ok);

/* Writes as much of c->out as the socket takes now. Returns false when the
 * connection was closed (error), true otherwise. */
bool gh_conn_flush(struct gh_conn *c);

/* The response handler queued its last byte: finish once it is written. */
void gh_conn_response_queued(struct gh_conn *c);

/* Re-arms the connection timer for the current phase. */
void gh_conn_arm_timer(struct gh_conn *c);

/* Closes the connection at once (no more bytes written). */
void gh_conn_abort(struct gh_conn *c);

/* The proxy consumed <n> body bytes at req->body_pos: drop them, keeping
 * the head in place, and resume reading if reading had stopped. */
void gh_conn_body_consumed(struct gh_conn *c, uint32_t n);

/* Handlers that need the whole request body in memory (the admin API):
 * returns 1 with <body> set when it is all here (Content-Length bodies up to
 * <max> bytes), 2 when the caller must suspend (the stages resume when the
 * rest has arrived), or 0 after answering an error (411 for chunked bodies,
 * 413 over <max>). */
int gh_conn_collect_body(struct gh_req *r, uint32_t max, gh_str *body);

/* Stages that must see the whole body before anything goes upstream (the
 * webhook check): like gh_conn_collect_body, but chunked bodies are decoded
 * too (trailers are dropped), "100 Continue" is sent first when the client
 * asked for it, and the body, up to <max> bytes (413 beyond), is then
 * forwarded by the proxy from memory with a Content-Length (req->
 * body_buffered). Returns 1 with <body>, 2 to suspend, 0 after answering. */
int gh_conn_buffer_body(struct gh_req *r, uint64_t max, gh_str *body);

/* ---- responses the gateway streams itself (the admin API's audit export) ----
 *
 * For bodies too large to build in memory. gh_conn_stream_begin queues a
 * response head without Content-Length: chunked for HTTP/1.1, delimited by
 * the close for HTTP/1.0 (RFC 9112 §6.3, §7.1). Then, on the connection's
 * thread, <drained> is called each time the queued bytes have gone to the
 * socket and the response is not finished: it queues at most a bounded page
 * with gh_conn_stream_write, or finishes with gh_conn_stream_end. A slow
 * client thus holds one page, never the whole body (backpressure), and each
 * loop turn does one page of work. <release> is called exactly once when the
 * request ends, however it ends (finished, client gone, timeout, abort), to
 * free <arg> (r->stream_arg); it must not touch the connection. Only before
 * any response byte was queued. Returns 0, or -1 after aborting the
 * connection (release has then run or will run at the close). */
int gh_conn_stream_begin(struct gh_req *r, int status, const char *content_type,
                         void (*drained)(struct gh_req *r), void (*release)(struct gh_req *r),
                         void *arg);
/* Queues <len> bytes of body (one chunk) and writes what the socket takes.
 * Returns 0, or -1 when the connection is gone (aborted): stop writing. */
int gh_conn_stream_write(struct gh_req *r, const char *data, size_t len);
/* Ends the body (the last chunk); the request finishes once it is written. */
void gh_conn_stream_end(struct gh_req *r);

/* The reason phrase for <status>. */
const char *gh_http_reason(int status);

#endif
