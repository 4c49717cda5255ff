/* Private to src/store: helpers that both engines use (store_lists.c). */
#ifndef GH_STORE_STORE_INT_H
#define GH_STORE_STORE_INT_H

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

#endif
