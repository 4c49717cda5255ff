/* Identity headers for the upstream: who the gateway says is calling, signed
 * so the upstream can trust them (docs/upstream-identity.md shows how to
 * verify).
 *
 *   Gatehouse-Tenant: <tenant id>
 *   Gatehouse-Subject: <"key:<id>" or the token's subject>
 *   Gatehouse-Scopes: <space-separated>
 *   Gatehouse-Timestamp: <unix seconds>
 *   Gatehouse-Signature: v1=<hex HMAC-SHA256(secret, canonical)>
 *
 * canonical = "v1\n" tenant "\n" subject "\n" scopes "\n" timestamp "\n"
 *             method "\n" path-and-query
 * Binding method and target stops a captured set of headers from being
 * replayed against another endpoint. Any Gatehouse-* header a client sends
 * is removed before these are added. */
#ifndef GH_AUTH_IDENTITY_H
#define GH_AUTH_IDENTITY_H

#include <stddef.h>
#include <stdint.h>

#include "auth/principal.h"
#include "core/str.h"

/* Writes the header lines (each ending in CRLF) into <out>. Without
 * <secret> the signature line is left out. The signed target is <path>,
 * then "?" and <query> when the query is not empty (origin-form, as the
 * upstream receives it). Returns the length, or -1 when <cap> is too small. */
int gh_identity_headers(const struct gh_principal *p, const char *secret, gh_str method,
                        gh_str path, gh_str query, int64_t now_s, char *out, size_t cap);

/* The signature value ("v1=<64 hex>") for the given parts, into <out> (68
 * bytes; empty string when out of memory). Exposed for tests and C upstreams. */
void gh_identity_sign(const char *secret, const char *tenant, const char *subject,
                      const char *scopes, int64_t ts, gh_str method, gh_str path, gh_str query,
                      char out[68]);

/* True for a header name that starts with "Gatehouse-" (any case). */
static inline bool gh_identity_is_reserved(gh_str name)
{
    return name.len >= 10 && strncasecmp(name.ptr, "gatehouse-", 10) == 0;
}

#endif
