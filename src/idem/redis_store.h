/* Idempotency records in Redis, for every gateway node sharing it: the
 * same operations as the local table (table.h), as Redis commands on the
 * worker's own connection (limits/redis.h, whose contract they follow:
 * GH_OK and exactly one callback later, or GH_ERROR and none).
 *
 * Keys are <redis.key_prefix>idem:<64 hex of the record digest> (record.h):
 * the same on every node, and never the raw Idempotency-Key. Every key
 * expires by itself (PX): no sweeper. The claim needs Redis 7.0 or later
 * (SET with both NX and GET). */
#ifndef GH_IDEM_REDIS_STORE_H
#define GH_IDEM_REDIS_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "idem/record.h"
#include "limits/redis.h"

/* SET key <val> NX PX <ttl_ms> GET: claims the key, or reads who holds it,
 * in one round trip. The reply goes to gh_idem_redis_claimed(). */
int gh_idem_redis_claim(struct gh_redis *c, const char *prefix,
                        const uint8_t digest[GH_IDEM_DIGEST], const char *val, size_t len,
                        uint64_t ttl_ms, gh_redis_cb cb, void *arg, uint32_t *handle);

/* A claim's reply: 1 claimed (the key was absent), 0 held (*val and *len
 * point into the reply: copy them before the callback returns), -1 not an
 * answer of the command (an error reply, e.g. Redis before 7.0). */
int gh_idem_redis_claimed(const redisReply *reply, const char **val, size_t *len);

/* Replaces the value with <val> for <ttl_ms> when it is still <expect>
 * (a script: compare, then SET PX). Fire and forget, queued behind the
 * claim on the same connection. GH_OK, or GH_ERROR when it could not be
 * queued. */
int gh_idem_redis_store(struct gh_redis *c, const char *prefix,
                        const uint8_t digest[GH_IDEM_DIGEST], const char *expect, size_t elen,
                        const char *val, size_t len, uint64_t ttl_ms);

/* Deletes the key when its value is still <expect> (a script: compare,
 * then DEL). Fire and forget, as above; a release that cannot be queued
 * leaves the claim to its lock TTL. */
int gh_idem_redis_release(struct gh_redis *c, const char *prefix,
                          const uint8_t digest[GH_IDEM_DIGEST], const char *expect, size_t elen);

#endif
