/* Idempotency records in Redis (redis_store.h). */
#include "idem/redis_store.h"

#include <stdio.h>
#include <string.h>

#include "core/err.h"

/* KEYS[1]: the record; ARGV: the claim's value, the answer, its TTL in ms.
 * A claim that expired, or was taken over after that, is left alone. */
static const char store_script[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
                                   "  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])\n"
                                   "  return 1\n"
                                   "end\n"
                                   "return 0\n";

/* KEYS[1]: the record; ARGV[1]: the claim's value (holds the request's
 * token): another request's record stays. */
static const char release_script[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
                                     "  return redis.call('DEL', KEYS[1])\n"
                                     "end\n"
                                     "return 0\n";

int gh_idem_redis_claim(struct gh_redis *c, const char *prefix,
                        const uint8_t digest[GH_IDEM_DIGEST], const char *val, size_t len,
                        uint64_t ttl_ms, gh_redis_cb cb, void *arg, uint32_t *handle)
{
    char key[GH_IDEM_REDIS_KEY], ttl[24];
    size_t klen = gh_idem_redis_key(prefix, digest, key);
    size_t tlen =
        (size_t)snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)(ttl_ms ? ttl_ms : 1));
    const char *argv[7] = {"SET", key, val, "NX", "PX", ttl, "GET"};
    size_t lens[7] = {3, klen, len, 2, 2, tlen, 3};

    return gh_redis_command(c, 7, argv, lens, cb, arg, handle);
}

int gh_idem_redis_claimed(const redisReply *reply, const char **val, size_t *len)
{
    *val = NULL;
    *len = 0;
    if (reply == NULL) return -1;
    switch (reply->type) {
    case REDIS_REPLY_NIL: return 1; /* absent before: now ours */
    case REDIS_REPLY_STRING:
        *val = reply->str;
        *len = reply->len;
        return 0;
    default: return -1;
    }
}

/* Fire-and-forget answers say nothing we act on. */
static void ignored(void *arg, const redisReply *reply, int status)
{
    (void)arg;
    (void)reply;
    (void)status;
}

int gh_idem_redis_store(struct gh_redis *c, const char *prefix,
                        const uint8_t digest[GH_IDEM_DIGEST], const char *expect, size_t elen,
                        const char *val, size_t len, uint64_t ttl_ms)
{
    char key[GH_IDEM_REDIS_KEY], ttl[24];
    size_t klen = gh_idem_redis_key(prefix, digest, key);
    size_t tlen =
        (size_t)snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)(ttl_ms ? ttl_ms : 1));
    const char *argv[7] = {"EVAL", store_script, "1", key, expect, val, ttl};
    size_t lens[7] = {4, sizeof(store_script) - 1, 1, klen, elen, len, tlen};

    return gh_redis_command(c, 7, argv, lens, ignored, NULL, NULL);
}

int gh_idem_redis_release(struct gh_redis *c, const char *prefix,
                          const uint8_t digest[GH_IDEM_DIGEST], const char *expect, size_t elen)
{
    char key[GH_IDEM_REDIS_KEY];
    size_t klen = gh_idem_redis_key(prefix, digest, key);
    const char *argv[5] = {"EVAL", release_script, "1", key, expect};
    size_t lens[5] = {4, sizeof(release_script) - 1, 1, klen, elen};

    return gh_redis_command(c, 5, argv, lens, ignored, NULL, NULL);
}
