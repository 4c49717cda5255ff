/* Who is calling: the result of authentication, copied into the request so
 * that nothing on the request path points into shared state that a refresh
 * may replace. Roles and scopes are space-separated lists. */
#ifndef GH_AUTH_PRINCIPAL_H
#define GH_AUTH_PRINCIPAL_H

#include <stdbool.h>
#include <stdint.h>

#include "core/str.h"

enum gh_principal_kind {
    GH_PRINCIPAL_NONE,
    GH_PRINCIPAL_API_KEY,
    GH_PRINCIPAL_JWT,
};

struct gh_principal {
    uint8_t kind;
    char tenant[129];  /* JWT tenant claims may be up to 128 bytes (never truncated) */
    char subject[256]; /* "key:<id>" for API keys; the token's subject for JWTs */
    char key_id[17];   /* API keys only */
    char roles[1041];  /* space-separated (JWT: up to 16 roles of 64 bytes) */
    char scopes[1025]; /* space-separated (JWT scopes up to 1024 bytes) */
};

/* True when the space-separated <list> contains <item> exactly. */
bool gh_principal_list_has(const char *list, gh_str item);

/* True when <p> is an operator: role "admin" on the system tenant. */
bool gh_principal_is_operator(const struct gh_principal *p);
/* True when <p> may administer <tenant_id>: an operator, or role "admin" on it. */
bool gh_principal_can_admin(const struct gh_principal *p, const char *tenant_id);

#endif
