/* A finished request's record as OpenTelemetry spans, with attributes
 * after the HTTP semantic conventions (server and client spans). */
#include <string.h>

#include "telemetry/otlp.h"
#include "telemetry/trace.h"

/* Keys are string literals: macros, so that their length is known at
 * compile time and the encoders need no strlen. */
#define attr_str(s, key, p, n) attr_str_((s), "" key, sizeof("" key) - 1, (p), (n))
#define attr_int(s, key, v)    attr_int_((s), "" key, sizeof("" key) - 1, (v))

static void attr_str_(struct gh_span *s, const char *key, size_t key_len, const char *p, size_t n)
{
    if (n == 0 || s->nattrs >= GH_SPAN_MAX_ATTRS) return;
    s->attrs[s->nattrs++] = (struct gh_span_attr){
        .key = key, .key_len = key_len, .type = GH_ATTR_STR, .s = gh_str_make(p, n)};
}

static void attr_int_(struct gh_span *s, const char *key, size_t key_len, int64_t v)
{
    if (s->nattrs >= GH_SPAN_MAX_ATTRS) return;
    s->attrs[s->nattrs++] =
        (struct gh_span_attr){.key = key, .key_len = key_len, .type = GH_ATTR_INT, .i = v};
}

/* The semantic conventions name only the standard methods; any other is
 * "_OTHER", with the original beside it. */
static bool known_method(const char *m, size_t n)
{
    static const char *const known[] = {"GET",     "HEAD",    "POST",  "PUT",  "DELETE",
                                        "CONNECT", "OPTIONS", "TRACE", "PATCH"};
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (strlen(known[i]) == n && memcmp(known[i], m, n) == 0) return true;
    return false;
}

static void attr_method(struct gh_span *s, const struct gh_trace_rec *rec)
{
    if (known_method(rec->method, rec->method_len)) {
        attr_str(s, "http.request.method", rec->method, rec->method_len);
    } else {
        attr_str(s, "http.request.method", "_OTHER", 6);
        attr_str(s, "http.request.method_original", rec->method, rec->method_len);
    }
}

static struct gh_span *child(struct gh_span *out, size_t *n, const struct gh_trace_rec *rec,
                             const uint8_t id[8], const char *name, enum gh_span_kind kind,
                             uint64_t t0, uint64_t t1)
{
    struct gh_span *s = &out[(*n)++];

    memset(s, 0, sizeof(*s));
    memcpy(s->trace_id, rec->trace_id, 16);
    memcpy(s->span_id, id, 8);
    memcpy(s->parent_id, rec->server_id, 8);
    s->has_parent = true;
    s->trace_state = gh_str_make(rec->state, rec->state_len);
    s->name = gh_str_cstr(name);
    s->kind = kind;
    s->start_unix_ns = t0;
    s->end_unix_ns = t1 >= t0 ? t1 : t0;
    s->flags = rec->flags;
    return s;
}

size_t gh_trace_rec_spans(const struct gh_trace_rec *rec, struct gh_span *out, char *name_buf,
                          size_t name_size)
{
    struct gh_span *s = &out[0];
    size_t n = 1, nl;
    bool failed = rec->status >= 500 || rec->status == 0;

    /* Server span: "{method} {route}" when a route matched. */
    memset(s, 0, sizeof(*s));
    memcpy(s->trace_id, rec->trace_id, 16);
    memcpy(s->span_id, rec->server_id, 8);
    if (rec->has_parent) {
        memcpy(s->parent_id, rec->parent_id, 8);
        s->has_parent = true;
    }
    s->trace_state = gh_str_make(rec->state, rec->state_len);
    nl = known_method(rec->method, rec->method_len) ? rec->method_len : 4;
    if (nl + 1 + rec->route_path_len > name_size) nl = 0;
    if (nl) {
        memcpy(name_buf, known_method(rec->method, rec->method_len) ? rec->method : "HTTP", nl);
        if (rec->route_path_len) {
            name_buf[nl++] = ' ';
            memcpy(name_buf + nl, rec->route_path, rec->route_path_len);
            nl += rec->route_path_len;
        }
    }
    s->name = nl ? gh_str_make(name_buf, nl) : gh_str_cstr("HTTP");
    s->kind = GH_SPAN_SERVER;
    s->start_unix_ns = rec->t_start;
    s->end_unix_ns = rec->t_end >= rec->t_start ? rec->t_end : rec->t_start;
    s->flags = rec->flags;
    attr_method(s, rec);
    attr_str(s, "url.path", rec->path, rec->path_len);
    attr_str(s, "url.scheme", rec->scheme, rec->scheme_len);
    attr_str(s, "http.route", rec->route_path, rec->route_path_len);
    if (rec->status) attr_int(s, "http.response.status_code", rec->status);
    attr_str(s, "server.address", rec->host, rec->host_len);
    if (rec->server_port) attr_int(s, "server.port", rec->server_port);
    attr_str(s, "network.peer.address", rec->peer, rec->peer_len);
    if (rec->peer_port) attr_int(s, "network.peer.port", rec->peer_port);
    attr_str(s, "network.protocol.version", "1.1", 3);
    attr_str(s, "user_agent.original", rec->ua, rec->ua_len);
    attr_str(s, "gatehouse.tenant", rec->tenant, rec->tenant_len);
    attr_str(s, "gatehouse.route", rec->route, rec->route_len);
    attr_str(s, "gatehouse.request_id", rec->id, rec->id_len);
    if (failed) {
        /* Server spans: only 5xx (or no answer) is an error; 4xx is the
         * caller's. */
        s->status = GH_SPAN_STATUS_ERROR;
        if (rec->error_len) s->status_message = gh_str_make(rec->error, rec->error_len);
        if (rec->error_len)
            attr_str(s, "error.type", rec->error, rec->error_len);
        else if (rec->status == 0)
            attr_str(s, "error.type", "aborted", 7);
    }

    if (rec->has_auth) {
        struct gh_span *a = child(out, &n, rec, rec->auth_id, "gatehouse.authenticate",
                                  GH_SPAN_INTERNAL, rec->t_auth0, rec->t_auth1);
        attr_str(a, "gatehouse.auth.result", rec->auth_ok ? "success" : "denied",
                 rec->auth_ok ? 7 : 6);
        attr_str(a, "gatehouse.tenant", rec->tenant, rec->tenant_len);
        if (!rec->auth_ok) {
            a->status = GH_SPAN_STATUS_ERROR;
            if (rec->error_len) a->status_message = gh_str_make(rec->error, rec->error_len);
        }
    }
    if (rec->has_limits) {
        struct gh_span *l = child(out, &n, rec, rec->limits_id, "gatehouse.limits",
                                  GH_SPAN_INTERNAL, rec->t_lim0, rec->t_lim1);
        attr_str(l, "gatehouse.limits.result", rec->limits_ok ? "allowed" : "limited",
                 rec->limits_ok ? 7 : 7);
        if (!rec->limits_ok && rec->error_len) {
            l->status = GH_SPAN_STATUS_ERROR;
            l->status_message = gh_str_make(rec->error, rec->error_len);
        }
    }
    if (rec->has_upstream) {
        /* Client span: its id is the parent the upstream saw. */
        struct gh_span *u = child(out, &n, rec, rec->upstream_id,
                                  known_method(rec->method, rec->method_len) ? "" : "HTTP",
                                  GH_SPAN_CLIENT, rec->t_up0, rec->t_up1);
        if (known_method(rec->method, rec->method_len))
            u->name = gh_str_make(rec->method, rec->method_len);
        attr_method(u, rec);
        attr_str(u, "server.address", rec->up_host, rec->up_host_len);
        if (rec->up_port) attr_int(u, "server.port", rec->up_port);
        attr_str(u, "url.path", rec->path, rec->path_len);
        if (rec->up_status) attr_int(u, "http.response.status_code", rec->up_status);
        if (rec->attempts > 1) attr_int(u, "http.request.resend_count", rec->attempts - 1);
        attr_str(u, "gatehouse.upstream", rec->upstream, rec->upstream_len);
        /* Client spans: 4xx and 5xx are errors, and so is no answer. */
        if (rec->up_status >= 400 || rec->up_status == 0) {
            u->status = GH_SPAN_STATUS_ERROR;
            if (rec->up_status == 0 && rec->error_len) {
                u->status_message = gh_str_make(rec->error, rec->error_len);
                attr_str(u, "error.type", rec->error, rec->error_len);
            }
        }
    }
    return n;
}
