/* Lua scripts run by SHA-1 (EVALSHA), loaded on demand.
 *
 * gh_redis_evalsha() sends EVALSHA. When Redis answers NOSCRIPT (first use
 * on this server, or after SCRIPT FLUSH or a restart), it sends SCRIPT LOAD
 * and the same EVALSHA again, pipelined, and delivers that second result;
 * it retries once only, so a script that does not load (a syntax error)
 * comes back as the NOSCRIPT error reply. The caller gets exactly one
 * callback, with the statuses of redis.h, or none after gh_redis_cancel.
 * If the retry cannot be queued (queue or buffer full) the callback gets
 * GH_REDIS_DOWN.
 *
 * The handle stays valid across the retry: gh_redis_cancel(handle) cancels
 * whichever of the two EVALSHAs is in flight. The retry has a deadline of
 * its own (timeout_ms from when NOSCRIPT arrived), so the first call after
 * a flush may take up to two round trips plus one timeout.
 *
 * Keys and args are copied: they may go away when gh_redis_evalsha returns.
 * The gh_redis_script (and its body) must outlive every call that uses it;
 * it is read-only after init, so workers may share one. */
#ifndef GH_LIMITS_REDIS_SCRIPT_H
#define GH_LIMITS_REDIS_SCRIPT_H

#include "limits/redis.h"

#define GH_REDIS_SCRIPT_MAX_ARGS 64 /* keys + args */

struct gh_redis_script {
    const char *body; /* not copied */
    char sha1_hex[41];
};

/* Keeps <body> and computes its SHA-1 (lower-case hex, as Redis writes it). */
void gh_redis_script_init(struct gh_redis_script *s, const char *body);

/* Returns GH_OK (the callback will run once, unless cancelled) or GH_ERROR
 * (down, full, more than GH_REDIS_SCRIPT_MAX_ARGS, out of memory; the
 * callback will not run). */
int gh_redis_evalsha(struct gh_redis *r, const struct gh_redis_script *s, int nkeys,
                     const char **keys, const size_t *keylens, int nargs, const char **args,
                     const size_t *arglens, gh_redis_cb cb, void *arg, uint32_t *handle);

#endif
