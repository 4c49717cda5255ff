/* Admin endpoints as a table: method, path, handler. */
#include "admin/admin.h"

#include <stdatomic.h>
#include <stdio.h>
#include <strings.h>

#include "admin/api.h"
#include "core/runtime.h"
#include "core/worker.h"
#include "http/conn.h"
#include "telemetry/metrics_scrape.h"

struct admin_endpoint {
    enum gh_http_method method;
    const char *path;
    void (*handle)(struct gh_req *r);
};

/* Liveness: the process answers. */
static void handle_livez(struct gh_req *r)
{
    static const char body[] = "{\"status\":\"ok\"}\n";
    gh_conn_reply(r->conn, 200, "application/json", body, sizeof(body) - 1);
}

/* Readiness: listeners up, config loaded, not shutting down. With the
 * config's generation and hash and the count of reloads refused, which
 * `gatehouse reload` watches to tell how its SIGHUP went. */
static void handle_readyz(struct gh_req *r)
{
    struct gh_runtime *rt = r->conn->worker->rt;
    char body[256];
    int n;

    if (!atomic_load(&rt->ready)) {
        static const char nb[] = "{\"status\":\"not_ready\"}\n";
        gh_conn_reply(r->conn, 503, "application/json", nb, sizeof(nb) - 1);
        return;
    }
    n = snprintf(body, sizeof(body),
                 "{\"status\":\"ready\",\"config_generation\":%llu,\"config_hash\":\"%s\","
                 "\"config_reloads_failed\":%llu}\n",
                 (unsigned long long)r->snap->generation, r->snap->config_hash,
                 (unsigned long long)atomic_load(&rt->reloads_failed));
    gh_conn_reply(r->conn, 200, "application/json", body, (size_t)n);
}

/* Prometheus scrape (docs/metrics.md): OpenMetrics when the Accept header
 * asks for it, else the text format 0.0.4. */
static void handle_metrics(struct gh_req *r)
{
    const struct gh_http_header *accept =
        gh_http_find_header(r->head.headers, r->head.nheaders, "accept");
    bool om = false;
    struct gh_expo e;

    if (r->snap->cfg->metrics.require_auth && !gh_admin_api_operator(r)) return;
    if (accept) {
        static const char want[] = "application/openmetrics-text";
        gh_str v = accept->value;
        for (size_t i = 0; i + sizeof(want) - 1 <= v.len && !om; i++)
            om = strncasecmp(v.ptr + i, want, sizeof(want) - 1) == 0;
    }
    gh_expo_init(&e, om);
    if (gh_metrics_scrape(r->conn->worker->rt, r->snap, &e) != GH_OK) {
        gh_expo_release(&e);
        gh_conn_reply_error(r->conn, 500, "internal_error", false);
        return;
    }
    gh_conn_reply(r->conn, 200, om ? GH_EXPO_CT_OM : GH_EXPO_CT_TEXT, e.data, e.len);
    gh_expo_release(&e);
}

static const struct admin_endpoint endpoints[] = {
    {GH_HTTP_GET, "/livez", handle_livez},
    {GH_HTTP_GET, "/readyz", handle_readyz},
    {GH_HTTP_GET, "/metrics", handle_metrics},
};

/* Admin request bodies are small JSON documents. */
#define ADMIN_MAX_BODY (64 * 1024)

int gh_admin_handle(struct gh_req *r)
{
    bool path_known = false;

    if (gh_str_has_prefix(r->head.path, GH_STR_LIT("/v1/"))) {
        gh_str body;
        int rc = gh_conn_collect_body(r, ADMIN_MAX_BODY, &body);
        if (rc == 2) return 2;
        if (rc == 1) gh_admin_api_handle(r, body);
        return 0;
    }
    for (size_t i = 0; i < sizeof(endpoints) / sizeof(endpoints[0]); i++) {
        const struct admin_endpoint *e = &endpoints[i];
        if (!gh_str_eq(r->head.path, gh_str_cstr(e->path))) continue;
        path_known = true;
        if (r->head.method_id == e->method ||
            (e->method == GH_HTTP_GET && r->head.method_id == GH_HTTP_HEAD)) {
            e->handle(r);
            return 0;
        }
    }
    if (path_known)
        gh_conn_reply_error(r->conn, 405, "method_not_allowed", false);
    else
        gh_conn_reply_error(r->conn, 404, "not_found", false);
    return 0;
}
