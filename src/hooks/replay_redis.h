/* The cluster-wide record of accepted webhook messages, in Redis: what the
 * verify stage (stage.c) sends so that a message accepted by one gateway
 * node is refused as a replay by every other node sharing the Redis.
 *
 * Keys are the same on every node: <key_prefix>replay:<hex of the first
 * 128 bits of SHA-256(route name, NUL, replay key)>. No per-process seed
 * goes in, and neither a secret nor the raw id shows: a replay key is an
 * id, a timestamp or a MAC, and only its digest reaches Redis.
 *
 * A key's value is a token unique to the request that recorded it, so that
 * taking keys back (a failed delivery, an abandoned request) deletes only
 * what that request set, never the record of another delivery of the same
 * message. Keys expire by themselves (PX): Redis needs no sweeper either.
 *
 * Commands go on the worker's own Redis connection (limits/redis.h) and
 * follow its contract: GH_OK and exactly one callback later, or GH_ERROR
 * and none. Multi-key commands assume one Redis server (not Redis Cluster),
 * as the rate limiter's script does. */
#ifndef GH_HOOKS_REPLAY_REDIS_H
#define GH_HOOKS_REPLAY_REDIS_H

#include <stddef.h>
#include <stdint.h>

#include "limits/redis.h"

#define GH_REPLAY_REDIS_DIGEST  16  /* bytes of SHA-256 kept: 128 bits */
#define GH_REPLAY_REDIS_PREFIX  64  /* bytes of redis.key_prefix used, at most */
#define GH_REPLAY_REDIS_KEY     112 /* prefix + "replay:" + 32 hex digits + NUL fit */
#define GH_REPLAY_REDIS_TOKEN   32  /* hex digits of a request's token */
#define GH_REPLAY_REDIS_MAXKEYS 2

/* The digest of <name> (<nlen> bytes, the route's name) and <key> (<len>
 * bytes, the replay key) into <out>. Inputs past 256 and 511 - nlen bytes
 * are cut, as the local table's hash does (replay.c): a cut key can only
 * make a genuine message look replayed, never let a replay through. */
void gh_replay_redis_digest(const char *name, size_t nlen, const void *key, size_t len,
                            uint8_t out[GH_REPLAY_REDIS_DIGEST]);

/* The Redis key of <digest> under <prefix> (may be NULL: "") into <out>
 * (GH_REPLAY_REDIS_KEY bytes, NUL-terminated). Returns its length. */
size_t gh_replay_redis_key(const char *prefix, const uint8_t digest[GH_REPLAY_REDIS_DIGEST],
                           char out[GH_REPLAY_REDIS_KEY]);

/* Records <n> (1 or 2) keys with value <token> for <ttl_ms> (at least 1),
 * all or nothing: one key goes as SET key token NX PX ttl, two as a Lua
 * script that checks them all, then sets them all. <cb> gets the reply for
 * gh_replay_redis_result(). *handle is for gh_redis_cancel.
 *
 * Scripts go whole, with EVAL, not EVALSHA (limits/redis_script.h): after
 * a Redis restart EVALSHA answers NOSCRIPT and is retried once loaded, but
 * when that answer comes after the command's deadline it is dropped, and
 * the retry with it; a record or release that the caller no longer waits
 * for must still run. EVAL also needs no per-call copy, and Redis compiles
 * a script once and keeps it; it costs the script's ~200 bytes per
 * GitHub delivery on the wire. */
int gh_replay_redis_record(struct gh_redis *c, const char *prefix,
                           const uint8_t (*digests)[GH_REPLAY_REDIS_DIGEST], size_t n,
                           const char token[GH_REPLAY_REDIS_TOKEN], uint64_t ttl_ms, gh_redis_cb cb,
                           void *arg, uint32_t *handle);

/* A record's reply: 1 every key was new (now recorded), 0 one was there
 * already (nothing recorded), -1 not an answer of either command (an error
 * reply: the caller treats Redis as unavailable). */
int gh_replay_redis_result(const redisReply *reply);

/* Deletes each of the <n> keys whose value is still <token> (a script, by
 * EVAL). Fire and forget: queued behind any record of the same request on
 * the same connection, so it runs after it on the server even when that
 * record's answer was not waited for. GH_OK, or GH_ERROR when it could not
 * be queued (the keys then expire by their TTL). */
int gh_replay_redis_release(struct gh_redis *c, const char *prefix,
                            const uint8_t (*digests)[GH_REPLAY_REDIS_DIGEST], size_t n,
                            const char token[GH_REPLAY_REDIS_TOKEN]);

#endif
