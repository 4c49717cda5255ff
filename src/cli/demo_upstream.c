/* The demo upstream: a tiny HTTP service that `gatehouse demo` puts behind
 * the gateway, so a new user sees what the upstream receives. It runs on its
 * own thread and loop, with libevent's evhttp (it is demo code, not the data
 * plane). Endpoints:
 *   /            JSON: method, path, and the headers the upstream received
 *   /status/NNN  answers with that status
 *   /slow?ms=N   answers after N ms (at most 30000)
 *   /bytes/N     N bytes of body (at most 64 MiB) */
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/jsonw.h"

struct slow_reply {
    struct evhttp_request *req;
    struct event *ev;
};

static void echo(struct evhttp_request *req)
{
    struct evbuffer *out = evbuffer_new();
    struct evkeyvalq *hdrs = evhttp_request_get_input_headers(req);
    struct evkeyval *kv;
    char line[4096];
    struct gh_jsonw jw;
    static const char *const methods[] = {"GET",     "POST",  "HEAD",    "PUT",  "DELETE",
                                          "OPTIONS", "TRACE", "CONNECT", "PATCH"};
    int m = evhttp_request_get_command(req), mi = 0;

    while (mi < 9 && !(m & (1 << mi)))
        mi++;
    gh_jsonw_init(&jw, line, sizeof(line));
    gh_jsonw_lit(&jw, "{\"service\":\"gatehouse demo upstream\",\"method\":");
    gh_jsonw_str(&jw, gh_str_cstr(mi < 9 ? methods[mi] : "OTHER"));
    gh_jsonw_lit(&jw, ",\"uri\":");
    gh_jsonw_str(&jw, gh_str_cstr(evhttp_request_get_uri(req)));
    gh_jsonw_lit(&jw, ",\"body_bytes\":");
    gh_jsonw_u64(&jw, evbuffer_get_length(evhttp_request_get_input_buffer(req)));
    gh_jsonw_lit(&jw, ",\"headers\":{");
    bool first = true;
    for (kv = hdrs->tqh_first; kv; kv = kv->next.tqe_next) {
        if (!first) gh_jsonw_lit(&jw, ",");
        first = false;
        gh_jsonw_str(&jw, gh_str_cstr(kv->key));
        gh_jsonw_lit(&jw, ":");
        gh_jsonw_str(&jw, gh_str_cstr(kv->value));
    }
    gh_jsonw_lit(&jw, "}}\n");
    evbuffer_add(out, line, jw.overflow ? 0 : jw.len);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    evhttp_send_reply(req, 200, "OK", out);
    evbuffer_free(out);
}

static void slow_done(evutil_socket_t fd, short what, void *arg)
{
    struct slow_reply *s = arg;
    echo(s->req);
    event_free(s->ev);
    free(s);
}

static void handle(struct evhttp_request *req, void *arg)
{
    struct event_base *base = arg;
    const char *uri = evhttp_request_get_uri(req);

    if (strncmp(uri, "/status/", 8) == 0) {
        int st = atoi(uri + 8);
        if (st < 200 || st > 599) st = 400;
        evhttp_send_reply(req, st, "Demo", NULL);
        return;
    }
    if (strncmp(uri, "/bytes/", 7) == 0) {
        long n = atol(uri + 7);
        struct evbuffer *out = evbuffer_new();
        char chunk[4096];
        if (n < 0 || n > 64L * 1024 * 1024) n = 0;
        memset(chunk, 'x', sizeof(chunk));
        for (long done = 0; done < n;) {
            long k = n - done < (long)sizeof(chunk) ? n - done : (long)sizeof(chunk);
            evbuffer_add(out, chunk, (size_t)k);
            done += k;
        }
        evhttp_send_reply(req, 200, "OK", out);
        evbuffer_free(out);
        return;
    }
    if (strncmp(uri, "/slow", 5) == 0) {
        const char *q = strstr(uri, "ms=");
        long ms = q ? atol(q + 3) : 1000;
        struct slow_reply *s = calloc(1, sizeof(*s));
        struct timeval tv;
        if (ms < 0 || ms > 30000) ms = 1000;
        if (s == NULL) {
            evhttp_send_error(req, 500, NULL);
            return;
        }
        s->req = req;
        s->ev = evtimer_new(base, slow_done, s);
        tv.tv_sec = ms / 1000;
        tv.tv_usec = (ms % 1000) * 1000;
        evtimer_add(s->ev, &tv);
        return;
    }
    echo(req);
}

static void *demo_main(void *arg)
{
    event_base_dispatch(arg);
    return NULL;
}

unsigned gh_demo_upstream_start(void)
{
    struct event_base *base = event_base_new();
    struct evhttp *http;
    struct evhttp_bound_socket *bs;
    pthread_t t;
    unsigned port = 0;

    if (base == NULL) return 0;
    http = evhttp_new(base);
    if (http == NULL) return 0;
    evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                         EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH |
                                         EVHTTP_REQ_OPTIONS);
    evhttp_set_gencb(http, handle, base);
    bs = evhttp_bind_socket_with_handle(http, "127.0.0.1", 0);
    if (bs == NULL) return 0;
    {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        evutil_socket_t fd = evhttp_bound_socket_get_fd(bs);
        if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) return 0;
        port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    }
    if (pthread_create(&t, NULL, demo_main, base) != 0) return 0;
    pthread_detach(t);
    return port;
}
