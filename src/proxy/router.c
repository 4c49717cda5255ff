/* Host, path and method matching over the configured routes. Route counts
 * are small (tens to hundreds), so a linear scan over routes grouped by host
 * is both simple and fast; NEEDSWORK: a radix tree if configs with
 * thousands of routes appear (a benchmark with such a config would tell). */
#include "proxy/router.h"

#include <ctype.h>
#include <stdlib.h>

#include "hooks/inbound.h"

struct gh_router {
    struct gh_route *routes;
    size_t nroutes;
};

/* The route's verifier, from secrets the config load already checked. */
static int make_verifier(struct gh_route *rt)
{
    const struct gh_config_webhook_verify *w = &rt->cfg->webhook_verify;
    const char *all[GH_WH_MAX_SECRETS];
    size_t n = 0;

    if (w->secret) all[n++] = w->secret;
    for (size_t i = 0; i < w->nsecrets && n < GH_WH_MAX_SECRETS; i++)
        all[n++] = w->secrets[i];
    rt->wh = malloc(sizeof(*rt->wh));
    if (rt->wh == NULL) return GH_ERROR;
    if (gh_wh_verifier_init(rt->wh, (enum gh_wh_format)w->format_id, all, n,
                            (int64_t)(w->tolerance_ms / 1000), NULL) != GH_OK) {
        free(rt->wh);
        rt->wh = NULL;
        return GH_ERROR;
    }
    return GH_OK;
}

struct gh_router *gh_router_new(const struct gh_config *cfg)
{
    struct gh_router *r = calloc(1, sizeof(*r));
    if (r == NULL) return NULL;
    r->routes = calloc(cfg->nroutes ? cfg->nroutes : 1, sizeof(*r->routes));
    if (r->routes == NULL) {
        free(r);
        return NULL;
    }
    for (size_t i = 0; i < cfg->nroutes; i++) {
        struct gh_route *rt = &r->routes[i];
        rt->cfg = &cfg->routes[i];
        rt->upstream_index = cfg->routes[i].upstream_index;
        rt->upstream = &cfg->upstreams[rt->upstream_index];
        rt->path_len = strlen(cfg->routes[i].path);
        if (cfg->routes[i].webhook_verify.enabled && make_verifier(rt) != GH_OK) {
            r->nroutes = i + 1;
            gh_router_free(r);
            return NULL;
        }
    }
    r->nroutes = cfg->nroutes;
    return r;
}

void gh_router_free(struct gh_router *r)
{
    if (r == NULL) return;
    for (size_t i = 0; i < r->nroutes; i++) {
        if (r->routes[i].wh == NULL) continue;
        gh_wh_verifier_release(r->routes[i].wh);
        free(r->routes[i].wh);
    }
    free(r->routes);
    free(r);
}

uint32_t gh_route_method_bit(enum gh_http_method m)
{
    switch (m) {
    case GH_HTTP_GET: return GH_METHOD_GET;
    case GH_HTTP_HEAD: return GH_METHOD_HEAD;
    case GH_HTTP_POST: return GH_METHOD_POST;
    case GH_HTTP_PUT: return GH_METHOD_PUT;
    case GH_HTTP_DELETE: return GH_METHOD_DELETE;
    case GH_HTTP_PATCH: return GH_METHOD_PATCH;
    case GH_HTTP_OPTIONS: return GH_METHOD_OPTIONS;
    case GH_HTTP_TRACE: return GH_METHOD_TRACE;
    default: return GH_METHOD_OTHER;
    }
}

/* Host match quality: 0 no match, 1 route without host, 2+len wildcard
 * (longer suffix is better), UINT32_MAX exact. <host> is already lower case
 * and without port. */
static uint32_t host_score(const struct gh_config_route *rc, gh_str host)
{
    size_t n;
    if (rc->host == NULL) return 1;
    n = strlen(rc->host);
    if (!rc->host_wildcard)
        return (n == host.len && memcmp(rc->host, host.ptr, n) == 0) ? UINT32_MAX : 0;
    /* rc->host is ".example.com": the host must end with it and have a
     * non-empty first label. */
    if (host.len > n && memcmp(host.ptr + host.len - n, rc->host, n) == 0) return 2 + (uint32_t)n;
    return 0;
}

/* Segment-aware prefix: "/api" matches "/api", "/api/x", not "/apix". */
static bool path_matches(const struct gh_route *rt, gh_str path)
{
    size_t n = rt->path_len;
    if (path.len < n || memcmp(path.ptr, rt->cfg->path, n) != 0) return false;
    return path.len == n || rt->cfg->path[n - 1] == '/' || path.ptr[n] == '/';
}

enum gh_route_result gh_router_match(const struct gh_router *r, gh_str host, gh_str path,
                                     enum gh_http_method method, const struct gh_route **out)
{
    char lower[256];
    size_t hl = 0;
    uint32_t best_host = 0, mbit = gh_route_method_bit(method);
    const struct gh_route *best = NULL;
    bool path_hit = false;

    /* Lower-case the host and drop a port (and IPv6 brackets stay). */
    for (size_t i = 0; i < host.len && hl < sizeof(lower); i++) {
        char c = host.ptr[i];
        if (c == ':' && memchr(host.ptr, ']', host.len) == NULL) break;
        if (c == ']') {
            lower[hl++] = c;
            break;
        }
        lower[hl++] = (char)tolower((unsigned char)c);
    }
    gh_str h = gh_str_make(lower, hl);

    for (size_t i = 0; i < r->nroutes; i++) {
        uint32_t s = host_score(r->routes[i].cfg, h);
        if (s > best_host) best_host = s;
    }
    if (best_host == 0) return GH_ROUTE_NOT_FOUND;
    for (size_t i = 0; i < r->nroutes; i++) {
        const struct gh_route *rt = &r->routes[i];
        if (host_score(rt->cfg, h) != best_host || !path_matches(rt, path)) continue;
        path_hit = true;
        if (rt->cfg->methods && !(rt->cfg->methods & mbit)) continue;
        if (best == NULL || rt->path_len > best->path_len ||
            (rt->path_len == best->path_len && rt->cfg->methods && !best->cfg->methods))
            best = rt;
    }
    if (best) {
        *out = best;
        return GH_ROUTE_FOUND;
    }
    return path_hit ? GH_ROUTE_METHOD_NOT_ALLOWED : GH_ROUTE_NOT_FOUND;
}

bool gh_path_has_dot_segment(gh_str path)
{
    size_t i = 0;
    while (i < path.len) {
        size_t start, dots = 0;
        bool other = false;
        while (i < path.len && path.ptr[i] == '/')
            i++;
        start = i;
        while (i < path.len && path.ptr[i] != '/') {
            if (path.ptr[i] == '.') {
                dots++;
            } else if (path.ptr[i] == '%' && i + 2 < path.len && path.ptr[i + 1] == '2' &&
                       (path.ptr[i + 2] == 'e' || path.ptr[i + 2] == 'E')) {
                dots++;
                i += 2;
            } else {
                other = true;
            }
            i++;
        }
        if (i > start && !other && (dots == 1 || dots == 2)) return true;
    }
    return false;
}
