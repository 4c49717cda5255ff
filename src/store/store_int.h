/* Private to src/store: helpers that both engines use (store_lists.c and
 * the inline ones below). */
#ifndef GH_STORE_STORE_INT_H
#define GH_STORE_STORE_INT_H

#include <string.h>

#include "store/store.h"

/* Encodes <n> strings as a compact JSON array; the caller frees the result.
 * NULL when out of memory. */
char *gh_store__list_encode(const char (*items)[GH_STORE_TOKEN_SIZE], size_t n);

/* Decodes the JSON array <text> (<len> bytes; NULL is refused) into <items>;
 * GH_ERROR for a list the wrappers would have refused (too many, too long,
 * not strings). Fills no error message: the caller names the column. */
int gh_store__list_decode(const char *text, size_t len, char (*items)[GH_STORE_TOKEN_SIZE],
                          size_t max, size_t *n);

/* The subscriptions of endpoint <e> as a compact JSON array (the events
 * column of both engines); the caller frees it. NULL when out of memory. */
char *gh_store__events_encode(const struct gh_store_hook_endpoint *e);

/* Reads an events column back into <out> (GH_STORE_HOOK_EVENTS_MAX
 * entries); a column that does not parse as the store wrote it is an
 * error (<err> may be NULL), not an endpoint that matches nothing. */
int gh_store__events_decode(const char *text, char (*out)[GH_STORE_HOOK_TYPE_SIZE], size_t *n,
                            struct gh_err *err);

/* An endpoint update's answer when the row is gone (NOT_FOUND) or no longer
 * at the revision read (CONFLICT), with its message in <err>. */
int gh_store__hook_endpoint_missing(struct gh_err *err);
int gh_store__hook_endpoint_changed(struct gh_err *err);
/* A publish whose id the tenant used for another message (another type or
 * payload): CONFLICT with its message in <err>. */
int gh_store__hook_message_reused(const char *msg_id, struct gh_err *err);

/* Whether the events column <text> subscribes to <type> (false when it
 * does not parse). */
bool gh_store__events_match(const char *text, const char *type);

/* For engines' change listeners (store.h, watch_start): counts <n>
 * notifications (0: a (re)connect) and calls the subscriber. */
static inline void gh_store__watch_fire(struct gh_store_watch *w, uint64_t n)
{
    if (n) atomic_fetch_add_explicit(&w->notifications, n, memory_order_relaxed);
    w->cb(w->arg);
}

static inline void gh_store__watch_set_connected(struct gh_store_watch *w, bool up)
{
    atomic_store_explicit(&w->connected, up, memory_order_relaxed);
}

/* An audit query's shape: which filters are set, its order, whether its
 * tenant is the system tenant, and whether its action is another than the
 * requests' one. Each engine prepares one statement per shape
 * (GH_SQ_ / GH_PG_AUDIT_QUERY_VARIANTS of them). */
enum {
    GH_AQ_TENANT = 1 << 0,
    GH_AQ_ACTOR = 1 << 1,
    GH_AQ_ACTION = 1 << 2,
    GH_AQ_OUTCOME = 1 << 3,
    GH_AQ_RESOURCE = 1 << 4,
    GH_AQ_REQUEST = 1 << 5,
    GH_AQ_FROM = 1 << 6,
    GH_AQ_TO = 1 << 7,
    GH_AQ_OLDEST = 1 << 8,
    GH_AQ_SYSTEM = 1 << 9, /* with GH_AQ_TENANT: the tenant is the system tenant */
    /* With GH_AQ_ACTION: not GH_STORE_AUDIT_REQUEST_ACTION. Its SQL says so
     * as a constant, which is what lets the planner use the partial index
     * on action (migration 11): a bound value cannot. */
    GH_AQ_OTHER_ACTION = 1 << 10,
    GH_AQ_SHAPES = 1 << 11,
};

/* The shape of filter <f> (NULL for "any", as the wrapper passes it). */
static inline unsigned gh_store__audit_query_shape(const struct gh_store_audit_filter *f)
{
    return (f->tenant_id ? GH_AQ_TENANT : 0) | (f->actor ? GH_AQ_ACTOR : 0) |
           (f->action ? GH_AQ_ACTION : 0) | (f->outcome ? GH_AQ_OUTCOME : 0) |
           (f->resource ? GH_AQ_RESOURCE : 0) | (f->request_id ? GH_AQ_REQUEST : 0) |
           (f->from_us > 0 ? GH_AQ_FROM : 0) | (f->to_us > 0 ? GH_AQ_TO : 0) |
           (f->oldest_first ? GH_AQ_OLDEST : 0) |
           (f->tenant_id && strcmp(f->tenant_id, GH_STORE_SYSTEM_TENANT) == 0 ? GH_AQ_SYSTEM : 0) |
           (f->action && strcmp(f->action, GH_STORE_AUDIT_REQUEST_ACTION) != 0 ? GH_AQ_OTHER_ACTION
                                                                               : 0);
}

/* Whether a query of <shape> walks its tenant's chain through (chain, seq)
 * rather than an index: a tenant named, no time range, and neither an
 * actor nor a request id (their own indexes find them), nor the system
 * tenant (its own rows have a partial index). sqlite_audit.c's query_stmt
 * explains why; both engines follow this one rule. */
static inline bool gh_store__audit_query_walks_chain(unsigned shape)
{
    return (shape & GH_AQ_TENANT) && !(shape & (GH_AQ_FROM | GH_AQ_TO)) &&
           !(shape & (GH_AQ_ACTOR | GH_AQ_REQUEST | GH_AQ_SYSTEM));
}

/* Whether a query of <shape> reads the system tenant's rows from their
 * partial index, audit_events_of_system: the system tenant, and no time
 * range, actor or request id (those have indexes of their own). */
static inline bool gh_store__audit_query_walks_system(unsigned shape)
{
    return (shape & GH_AQ_SYSTEM) &&
           !(shape & (GH_AQ_FROM | GH_AQ_TO | GH_AQ_ACTOR | GH_AQ_REQUEST));
}

#endif
