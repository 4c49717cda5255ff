/* Publishing webhook events (see events.h). */
#include "hooks/events.h"

#include <stdio.h>
#include <string.h>

#include "hooks/dispatcher.h"
#include "store/store.h"

int gh_hooks_publish(struct gh_store *st, struct gh_hooks_dispatcher *d, const char *tenant,
                     const char *msg_id, const char *type, const char *payload, size_t len,
                     char *id_out, size_t *deliveries, bool *duplicate, struct gh_err *err)
{
    char id[GH_STORE_HOOK_MSG_ID_SIZE];
    int rc;

    if (msg_id == NULL || msg_id[0] == '\0') {
        rc = gh_hooks_msg_id(id, sizeof(id));
        if (rc != GH_OK) return gh_err_set(err, NULL, 0, 0, "webhooks: the CSPRNG failed");
    } else if (strlen(msg_id) >= sizeof(id)) {
        gh_err_set(err, NULL, 0, 0, "id: must be 1-64 of [A-Za-z0-9_.-]");
        return GH_STORE_INVALID;
    } else {
        snprintf(id, sizeof(id), "%s", msg_id);
    }
    rc = gh_store_hook_publish(st, tenant, id, type, payload, len,
                               gh_hooks_dispatcher_first_delay(d), deliveries, duplicate, err);
    if (rc != GH_OK) return rc;
    if (id_out) memcpy(id_out, id, strlen(id) + 1);
    if (*deliveries > 0 && !*duplicate) gh_hooks_dispatcher_poke(d);
    return GH_OK;
}

int gh_hooks_emit(struct gh_store *st, struct gh_hooks_dispatcher *d, const char *tenant,
                  const char *type, const char *payload, struct gh_err *err)
{
    size_t n;
    bool dup;

    return gh_hooks_publish(st, d, tenant, NULL, type, payload, strlen(payload), NULL, &n, &dup,
                            err);
}
