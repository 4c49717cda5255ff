/* The gh_store_hook_* wrappers: they validate endpoints, event types,
 * message ids and pages before an engine sees them (so every engine refuses
 * the same input with the same message), draw endpoint ids, set times, and
 * encode the cursors of endpoint and delivery lists. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "store/store.h"
#include "store/store_int.h"

#define OWNER_MAX 64
#define CLAIM_MAX 1000

static int invalid(struct gh_err *err, const char *field, const char *rule)
{
    gh_err_set(err, NULL, 0, 0, "%s: %s", field, rule);
    return GH_STORE_INVALID;
}

static bool type_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
}

bool gh_store_valid_hook_type(const char *s)
{
    size_t n = 0;

    if (s == NULL) return false;
    for (; s[n]; n++)
        if (n >= GH_STORE_HOOK_TYPE_MAX || !type_char((unsigned char)s[n])) return false;
    return n > 0;
}

bool gh_store_valid_hook_pattern(const char *s)
{
    size_t n;

    if (s == NULL) return false;
    if (strcmp(s, "*") == 0) return true;
    n = strlen(s);
    if (n > 2 && n <= GH_STORE_HOOK_TYPE_MAX && strcmp(s + n - 2, ".*") == 0) {
        for (size_t i = 0; i < n - 2; i++)
            if (!type_char((unsigned char)s[i])) return false;
        return true;
    }
    return gh_store_valid_hook_type(s);
}

bool gh_store_hook_pattern_match(const char *pattern, const char *type)
{
    size_t n = strlen(pattern);

    if (strcmp(pattern, "*") == 0) return true;
    /* "order.*" covers "order.created" and "order.item.added", not "order"
     * nor "orders.created": the prefix ends at a dot. */
    if (n >= 2 && strcmp(pattern + n - 2, ".*") == 0)
        return strncmp(type, pattern, n - 1) == 0 && type[n - 1] != '\0';
    return strcmp(pattern, type) == 0;
}

bool gh_store_valid_hook_id(const char *s)
{
    if (s == NULL || strncmp(s, "ep_", 3) != 0) return false;
    for (size_t i = 3; i < 3 + GH_STORE_HOOK_ID_RAND; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
            return false;
    }
    return s[3 + GH_STORE_HOOK_ID_RAND] == '\0';
}

bool gh_store_valid_hook_msg_id(const char *s)
{
    size_t n = 0;

    if (s == NULL) return false;
    for (; s[n]; n++) {
        unsigned char c = (unsigned char)s[n];
        if (n >= GH_STORE_HOOK_MSG_ID_SIZE - 1) return false;
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              c == '_' || c == '.' || c == '-'))
            return false;
    }
    return n > 0;
}

bool gh_store_valid_hook_description(const char *s)
{
    size_t n = 0;

    if (s == NULL) return false;
    for (; s[n]; n++) {
        unsigned char c = (unsigned char)s[n];
        if (n >= GH_STORE_HOOK_DESC_MAX || c < 0x20 || c == 0x7f) return false;
    }
    return true;
}

const char *gh_store_delivery_status_name(enum gh_store_delivery_status s)
{
    switch (s) {
    case GH_STORE_DELIVERY_PENDING: return "pending";
    case GH_STORE_DELIVERY_SUCCEEDED: return "succeeded";
    case GH_STORE_DELIVERY_FAILED: return "failed";
    default: return "";
    }
}

enum gh_store_delivery_status gh_store_delivery_status_parse(const char *s)
{
    if (strcmp(s, "pending") == 0) return GH_STORE_DELIVERY_PENDING;
    if (strcmp(s, "succeeded") == 0) return GH_STORE_DELIVERY_SUCCEEDED;
    if (strcmp(s, "failed") == 0) return GH_STORE_DELIVERY_FAILED;
    return GH_STORE_DELIVERY_ANY;
}

static bool terminated(const char *s, size_t size)
{
    return memchr(s, '\0', size) != NULL;
}

static int check_endpoint(const struct gh_store_hook_endpoint *e, struct gh_err *err)
{
    if (!terminated(e->tenant_id, sizeof(e->tenant_id)) || !gh_store_valid_tenant_id(e->tenant_id))
        return invalid(err, "tenant_id", "must be a tenant id");
    if (!terminated(e->url, sizeof(e->url)) || e->url[0] == '\0')
        return invalid(err, "url", "must be 1-2048 bytes");
    if (!terminated(e->description, sizeof(e->description)) ||
        !gh_store_valid_hook_description(e->description))
        return invalid(err, "description", "at most 256 bytes, no control characters");
    if (e->nevents < 1 || e->nevents > GH_STORE_HOOK_EVENTS_MAX)
        return invalid(err, "events", "must list 1-32 event types");
    for (size_t i = 0; i < e->nevents; i++)
        if (!terminated(e->events[i], sizeof(e->events[i])) ||
            !gh_store_valid_hook_pattern(e->events[i]))
            return invalid(err, "events",
                           "each must be an event type ([a-z0-9_.-]{1,64}), \"<prefix>.*\" or "
                           "\"*\"");
    if (e->secret_version < 1) return invalid(err, "secret_version", "must be >= 1");
    if (!terminated(e->public_key, sizeof(e->public_key)))
        return invalid(err, "public_key", "too long");
    if (!terminated(e->disabled_reason, sizeof(e->disabled_reason)))
        return invalid(err, "disabled_reason", "too long");
    if (e->status != GH_STORE_HOOK_ACTIVE && e->status != GH_STORE_HOOK_DISABLED)
        return invalid(err, "status", "must be active or disabled");
    return GH_OK;
}

int gh_store__hook_endpoint_missing(struct gh_err *err)
{
    gh_err_set(err, NULL, 0, 0, "webhook endpoint not found");
    return GH_STORE_NOT_FOUND;
}

int gh_store__hook_message_reused(const char *msg_id, struct gh_err *err)
{
    gh_err_set(err, NULL, 0, 0,
               "message id %s was published before with another type or payload; a message id "
               "names one message (use a new id for a new message)",
               msg_id);
    return GH_STORE_CONFLICT;
}

int gh_store__hook_endpoint_changed(struct gh_err *err)
{
    gh_err_set(err, NULL, 0, 0, "webhook endpoint changed since it was read");
    return GH_STORE_CONFLICT;
}

int gh_store_hook_endpoint_insert(struct gh_store *st, struct gh_store_hook_endpoint *e,
                                  struct gh_err *err)
{
    int rc;

    e->status = GH_STORE_HOOK_ACTIVE;
    e->failing_since = 0;
    e->disabled_reason[0] = '\0';
    rc = check_endpoint(e, err);
    if (rc != GH_OK) return rc;
    if (e->id[0] == '\0') {
        memcpy(e->id, "ep_", 3);
        rc = gh_store_random_base62(e->id + 3, GH_STORE_HOOK_ID_RAND, err);
        if (rc != GH_OK) return rc;
    } else if (!gh_store_valid_hook_id(e->id)) {
        return invalid(err, "id", "must be ep_ and 20 base62 characters");
    }
    e->created_at = e->updated_at = (int64_t)gh_wall_ms();
    e->rev = 1;
    return st->ops->hook_endpoint_insert(st, e, err);
}

int gh_store_hook_endpoint_get(struct gh_store *st, const char *tenant_id, const char *id,
                               struct gh_store_hook_endpoint *out, struct gh_err *err)
{
    if (!gh_store_valid_tenant_id(tenant_id) || !gh_store_valid_hook_id(id))
        return gh_store__hook_endpoint_missing(err);
    return st->ops->hook_endpoint_get(st, tenant_id, id, out, err);
}

/* Endpoint cursors: "w1.<created_at>.<id>", as the tenants' and keys'. */
int gh_store_hook_endpoint_list(struct gh_store *st, const char *tenant_id,
                                struct gh_store_page *page, struct gh_store_hook_endpoint *out,
                                struct gh_err *err)
{
    struct gh_store_keyset ks, *after = NULL;
    size_t count = 0;
    bool more = false;
    int rc;

    page->count = 0;
    page->next[0] = '\0';
    if (page->limit < 1 || page->limit > GH_STORE_LIST_MAX)
        return invalid(err, "limit", "must be 1-200");
    if (!gh_store_valid_tenant_id(tenant_id)) return GH_OK;
    if (page->cursor && page->cursor[0]) {
        char id[GH_STORE_HOOK_ID_SIZE + 1];
        long long at;
        int used = 0;
        if (sscanf(page->cursor, "w1.%lld.%24[A-Za-z0-9_]%n", &at, id, &used) != 2 ||
            page->cursor[used] != '\0' || !gh_store_valid_hook_id(id))
            return invalid(err, "cursor", "not a cursor of this list");
        ks.created_at = at;
        snprintf(ks.id, sizeof(ks.id), "%s", id);
        after = &ks;
    }
    rc = st->ops->hook_endpoint_list(st, tenant_id, after, page->limit, out, &count, &more, err);
    if (rc != GH_OK) return rc;
    page->count = count;
    if (more && count > 0)
        snprintf(page->next, sizeof(page->next), "w1.%" PRId64 ".%s", out[count - 1].created_at,
                 out[count - 1].id);
    return GH_OK;
}

int gh_store_hook_endpoint_update(struct gh_store *st, struct gh_store_hook_endpoint *e,
                                  struct gh_err *err)
{
    int rc;

    if (!gh_store_valid_hook_id(e->id)) return gh_store__hook_endpoint_missing(err);
    rc = check_endpoint(e, err);
    if (rc != GH_OK) return rc;
    e->updated_at = (int64_t)gh_wall_ms();
    return st->ops->hook_endpoint_update(st, e, err);
}

int gh_store_hook_endpoint_delete(struct gh_store *st, const char *tenant_id, const char *id,
                                  struct gh_store_hook_endpoint *gone, struct gh_err *err)
{
    struct gh_store_hook_endpoint unused;

    if (!gh_store_valid_tenant_id(tenant_id) || !gh_store_valid_hook_id(id))
        return gh_store__hook_endpoint_missing(err);
    return st->ops->hook_endpoint_delete(st, tenant_id, id, gone ? gone : &unused, err);
}

int gh_store_hook_publish(struct gh_store *st, const char *tenant_id, const char *msg_id,
                          const char *type, const char *payload, size_t payload_len,
                          uint64_t first_delay_ms, size_t *deliveries, bool *duplicate,
                          struct gh_err *err)
{
    int64_t now = (int64_t)gh_wall_ms();

    *deliveries = 0;
    *duplicate = false;
    if (!gh_store_valid_tenant_id(tenant_id)) return invalid(err, "tenant", "must be a tenant id");
    if (!gh_store_valid_hook_msg_id(msg_id))
        return invalid(err, "id", "must be 1-64 of [A-Za-z0-9_.-]");
    if (!gh_store_valid_hook_type(type)) return invalid(err, "type", "must be 1-64 of [a-z0-9_.-]");
    if (payload == NULL || payload_len == 0 || payload_len > GH_STORE_HOOK_PAYLOAD_MAX)
        return invalid(err, "payload", "must be a JSON value of at most 1 MiB");
    return st->ops->hook_publish(st, tenant_id, msg_id, type, payload, payload_len, now,
                                 now + (int64_t)first_delay_ms, deliveries, duplicate, err);
}

int gh_store_hook_claim(struct gh_store *st, const char *owner, size_t limit,
                        gh_store_hook_due_cb cb, void *arg, struct gh_err *err)
{
    if (owner == NULL || owner[0] == '\0' || strlen(owner) > OWNER_MAX)
        return invalid(err, "owner", "must be 1-64 bytes");
    if (limit < 1 || limit > CLAIM_MAX) return invalid(err, "limit", "must be 1-1000");
    return st->ops->hook_claim(st, owner, (int64_t)gh_wall_ms(), limit, cb, arg, err);
}

int gh_store_hook_record(struct gh_store *st, const char *owner,
                         const struct gh_store_hook_outcome *o, size_t n, int64_t disable_after_ms,
                         gh_store_hook_disabled_cb cb, void *arg, struct gh_err *err)
{
    if (n == 0) return GH_OK;
    if (owner == NULL || owner[0] == '\0' || strlen(owner) > 64)
        return invalid(err, "owner", "1 to 64 bytes");
    if (disable_after_ms <= 0) return invalid(err, "disable_after", "must be > 0");
    for (size_t i = 0; i < n; i++) {
        if (o[i].next != GH_STORE_DELIVERY_PENDING && o[i].next != GH_STORE_DELIVERY_SUCCEEDED &&
            o[i].next != GH_STORE_DELIVERY_FAILED)
            return invalid(err, "next", "must be pending, succeeded or failed");
        if (!terminated(o[i].error, sizeof(o[i].error)) ||
            !terminated(o[i].snippet, sizeof(o[i].snippet)) ||
            !terminated(o[i].endpoint_id, sizeof(o[i].endpoint_id)))
            return invalid(err, "outcome", "unterminated string");
    }
    return st->ops->hook_record(st, owner, o, n, (int64_t)gh_wall_ms(), disable_after_ms, cb, arg,
                                err);
}

/* Delivery cursors: "d1.<id>". */
int gh_store_hook_delivery_list(struct gh_store *st, const char *tenant_id, const char *endpoint_id,
                                enum gh_store_delivery_status status, struct gh_store_page *page,
                                struct gh_store_hook_delivery *out, struct gh_err *err)
{
    long long after = 0;
    size_t count = 0;
    bool more = false;
    int rc;

    page->count = 0;
    page->next[0] = '\0';
    if (page->limit < 1 || page->limit > GH_STORE_LIST_MAX)
        return invalid(err, "limit", "must be 1-200");
    if (status < GH_STORE_DELIVERY_ANY || status > GH_STORE_DELIVERY_FAILED)
        return invalid(err, "status", "must be pending, succeeded or failed");
    if (!gh_store_valid_tenant_id(tenant_id) || !gh_store_valid_hook_id(endpoint_id))
        return gh_store__hook_endpoint_missing(err);
    if (page->cursor && page->cursor[0]) {
        int used = 0;
        if (sscanf(page->cursor, "d1.%lld%n", &after, &used) != 1 || page->cursor[used] != '\0' ||
            after < 0)
            return invalid(err, "cursor", "not a cursor of this list");
    }
    rc = st->ops->hook_delivery_list(st, tenant_id, endpoint_id, status, (int64_t)after,
                                     page->limit, out, &count, &more, err);
    if (rc != GH_OK) return rc;
    page->count = count;
    if (more && count > 0)
        snprintf(page->next, sizeof(page->next), "d1.%" PRId64, out[count - 1].id);
    return GH_OK;
}

int gh_store_hook_delivery_get(struct gh_store *st, const char *tenant_id, const char *endpoint_id,
                               int64_t id, struct gh_store_hook_delivery *out,
                               struct gh_store_hook_attempt *attempts, size_t max,
                               size_t *nattempts, struct gh_err *err)
{
    *nattempts = 0;
    if (!gh_store_valid_tenant_id(tenant_id) || !gh_store_valid_hook_id(endpoint_id) || id < 1) {
        gh_err_set(err, NULL, 0, 0, "delivery not found");
        return GH_STORE_NOT_FOUND;
    }
    return st->ops->hook_delivery_get(st, tenant_id, endpoint_id, id, out, attempts, max, nattempts,
                                      err);
}

int gh_store_hook_delivery_replay(struct gh_store *st, const char *tenant_id,
                                  const char *endpoint_id, int64_t id, struct gh_err *err)
{
    if (!gh_store_valid_tenant_id(tenant_id) || !gh_store_valid_hook_id(endpoint_id) || id < 1) {
        gh_err_set(err, NULL, 0, 0, "delivery not found");
        return GH_STORE_NOT_FOUND;
    }
    return st->ops->hook_delivery_replay(st, tenant_id, endpoint_id, id, (int64_t)gh_wall_ms(),
                                         err);
}

int gh_store_hook_pending_count(struct gh_store *st, uint64_t *count, struct gh_err *err)
{
    return st->ops->hook_pending_count(st, count, err);
}

int gh_store_hook_reports_claim(struct gh_store *st, gh_store_hook_disabled_cb cb, void *arg,
                                struct gh_err *err)
{
    if (cb == NULL) return invalid(err, "cb", "must be set");
    return st->ops->hook_reports_claim(st, (int64_t)gh_wall_ms(), cb, arg, err);
}

int gh_store_hook_reports_done(struct gh_store *st, const struct gh_store_hook_report *r, size_t n,
                               struct gh_err *err)
{
    if (n == 0) return GH_OK;
    if (n > GH_STORE_HOOK_REPORTS_MAX) return invalid(err, "n", "must be 0-64");
    for (size_t i = 0; i < n; i++) {
        if (!terminated(r[i].endpoint_id, sizeof(r[i].endpoint_id)) ||
            !gh_store_valid_hook_id(r[i].endpoint_id))
            return invalid(err, "id", "not an endpoint id");
        if (r[i].lease <= 0) return invalid(err, "lease", "must be > 0");
    }
    return st->ops->hook_reports_done(st, r, n, err);
}

int gh_store_hook_resume_stray(struct gh_store *st, size_t limit, uint64_t *resumed,
                               struct gh_err *err)
{
    *resumed = 0;
    if (limit < 1 || limit > GH_STORE_HOOK_RESUME_MAX)
        return invalid(err, "limit", "must be 1-10000");
    return st->ops->hook_resume_stray(st, limit, resumed, err);
}

int gh_store_hook_purge(struct gh_store *st, const char *owner, int64_t after_seq, int64_t cutoff,
                        size_t limit, struct gh_store_hook_purged *out, struct gh_err *err)
{
    memset(out, 0, sizeof(*out));
    out->last_seq = after_seq;
    if (owner == NULL || owner[0] == '\0' || strlen(owner) > OWNER_MAX)
        return invalid(err, "owner", "must be 1-64 bytes");
    if (limit < 1 || limit > GH_STORE_HOOK_PURGE_MAX)
        return invalid(err, "limit", "must be 1-1000");
    if (after_seq < 0) return invalid(err, "after_seq", "must be >= 0");
    return st->ops->hook_purge(st, owner, after_seq, cutoff, (int64_t)gh_wall_ms(), limit, out,
                               err);
}
