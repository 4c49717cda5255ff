/* Principal helpers. */
#include "auth/principal.h"

#include <string.h>

#include "store/store.h"

bool gh_principal_list_has(const char *list, gh_str item)
{
    const char *p = list;
    if (item.len == 0) return false;
    while (*p) {
        const char *e = strchr(p, ' ');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == item.len && memcmp(p, item.ptr, n) == 0) return true;
        if (e == NULL) break;
        p = e + 1;
    }
    return false;
}

bool gh_principal_is_operator(const struct gh_principal *p)
{
    return p->kind != GH_PRINCIPAL_NONE && strcmp(p->tenant, GH_STORE_SYSTEM_TENANT) == 0 &&
           gh_principal_list_has(p->roles, GH_STR_LIT("admin"));
}

bool gh_principal_can_admin(const struct gh_principal *p, const char *tenant_id)
{
    if (gh_principal_is_operator(p)) return true;
    return p->kind != GH_PRINCIPAL_NONE && strcmp(p->tenant, tenant_id) == 0 &&
           gh_principal_list_has(p->roles, GH_STR_LIT("admin"));
}
