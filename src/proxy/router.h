/* Route matching: host (exact, "*." wildcard, or any) then path prefix
 * (longest wins, on segment boundaries) then method. Built once per config
 * snapshot; matching allocates nothing and takes no lock. */
#ifndef GH_PROXY_ROUTER_H
#define GH_PROXY_ROUTER_H

#include <stdint.h>

#include "config/config.h"
#include "core/str.h"
#include "http/parser.h"

struct gh_route {
    const struct gh_config_route *cfg;
    const struct gh_config_upstream *upstream;
    size_t upstream_index;
    size_t path_len;
    struct gh_wh_verifier *wh; /* webhook_verify: the route's secrets; NULL when off */
};

struct gh_router;
struct gh_wh_verifier;

/* Builds a router over <cfg>'s routes (which must outlive it). NULL on OOM. */
struct gh_router *gh_router_new(const struct gh_config *cfg);
void gh_router_free(struct gh_router *r);

enum gh_route_result { GH_ROUTE_FOUND, GH_ROUTE_NOT_FOUND, GH_ROUTE_METHOD_NOT_ALLOWED };

/* Finds the route for <host> (a Host value, port and case ignored), <path>
 * and <method>. Host decides first (exact, then the longest matching
 * wildcard, then routes without host); within that host, the longest path
 * prefix whose methods allow <method>. Returns GH_ROUTE_METHOD_NOT_ALLOWED
 * when a path matched but no route allows the method. */
enum gh_route_result gh_router_match(const struct gh_router *r, gh_str host, gh_str path,
                                     enum gh_http_method method, const struct gh_route **out);

/* The GH_METHOD_* bit for a parsed method. */
uint32_t gh_route_method_bit(enum gh_http_method m);

/* True when <path> has a "." or ".." segment, raw or percent-encoded
 * ("%2e"): such paths are refused so that a prefix route cannot be escaped. */
bool gh_path_has_dot_segment(gh_str path);

#endif
