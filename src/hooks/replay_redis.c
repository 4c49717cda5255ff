/* The replay record in Redis (replay_redis.h). */
#include "hooks/replay_redis.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "core/err.h"

/* KEYS: the message's keys; ARGV: token, TTL in ms. Checks every key before
 * setting any, so that a captured GitHub body sent under a fresh delivery
 * id takes none of the ids (replay.h: all or nothing). Returns 1 (recorded)
 * or 0 (one was there: a replay). */
static const char record_script[] = "for i = 1, #KEYS do\n"
                                    "  if redis.call('EXISTS', KEYS[i]) == 1 then return 0 end\n"
                                    "end\n"
                                    "for i = 1, #KEYS do\n"
                                    "  redis.call('SET', KEYS[i], ARGV[1], 'PX', ARGV[2])\n"
                                    "end\n"
                                    "return 1\n";

/* KEYS: the message's keys; ARGV: the token of the request that set them.
 * A key holding another token belongs to another delivery: it stays. */
static const char release_script[] =
    "for i = 1, #KEYS do\n"
    "  if redis.call('GET', KEYS[i]) == ARGV[1] then redis.call('DEL', KEYS[i]) end\n"
    "end\n"
    "return 0\n";

static const char hexdigits[] = "0123456789abcdef";

void gh_replay_redis_scripts_init(struct gh_replay_redis_scripts *s)
{
    gh_redis_script_init(&s->record, record_script);
    gh_redis_script_init(&s->release, release_script);
}

void gh_replay_redis_digest(const char *name, size_t nlen, const void *key, size_t len,
                            uint8_t out[GH_REPLAY_REDIS_DIGEST])
{
    unsigned char buf[512], md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;

    if (nlen > 256) nlen = 256;
    if (len > sizeof(buf) - nlen - 1) len = sizeof(buf) - nlen - 1;
    memcpy(buf, name, nlen);
    buf[nlen] = 0; /* no route name holds a NUL: (name, key) splits one way only */
    memcpy(buf + nlen + 1, key, len);
    /* Cannot fail short of a broken OpenSSL; zeros then only make every
     * message of the route look alike, which refuses, never passes. */
    if (EVP_Digest(buf, nlen + 1 + len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen < 16)
        memset(md, 0, GH_REPLAY_REDIS_DIGEST);
    memcpy(out, md, GH_REPLAY_REDIS_DIGEST);
}

size_t gh_replay_redis_key(const char *prefix, const uint8_t digest[GH_REPLAY_REDIS_DIGEST],
                           char out[GH_REPLAY_REDIS_KEY])
{
    size_t plen = prefix ? strlen(prefix) : 0, k;

    if (plen > GH_REPLAY_REDIS_PREFIX) plen = GH_REPLAY_REDIS_PREFIX;
    if (plen) memcpy(out, prefix, plen);
    memcpy(out + plen, "replay:", 7);
    k = plen + 7;
    for (int i = 0; i < GH_REPLAY_REDIS_DIGEST; i++) {
        out[k++] = hexdigits[digest[i] >> 4];
        out[k++] = hexdigits[digest[i] & 15];
    }
    out[k] = '\0';
    return k;
}

int gh_replay_redis_record(struct gh_redis *c, const struct gh_replay_redis_scripts *s,
                           const char *prefix, const uint8_t (*digests)[GH_REPLAY_REDIS_DIGEST],
                           size_t n, const char token[GH_REPLAY_REDIS_TOKEN], uint64_t ttl_ms,
                           gh_redis_cb cb, void *arg, uint32_t *handle)
{
    char keys[GH_REPLAY_REDIS_MAXKEYS][GH_REPLAY_REDIS_KEY], ttl[24];
    const char *kp[GH_REPLAY_REDIS_MAXKEYS];
    size_t klen[GH_REPLAY_REDIS_MAXKEYS], tlen;

    if (n == 0 || n > GH_REPLAY_REDIS_MAXKEYS) return GH_ERROR;
    for (size_t i = 0; i < n; i++) {
        klen[i] = gh_replay_redis_key(prefix, digests[i], keys[i]);
        kp[i] = keys[i];
    }
    tlen = (size_t)snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)(ttl_ms ? ttl_ms : 1));
    if (n == 1) {
        /* One key needs no script: SET NX is atomic, and skips EVALSHA's
         * per-call copy (redis_script.c). */
        const char *argv[6] = {"SET", kp[0], token, "NX", "PX", ttl};
        size_t lens[6] = {3, klen[0], GH_REPLAY_REDIS_TOKEN, 2, 2, tlen};
        return gh_redis_command(c, 6, argv, lens, cb, arg, handle);
    }
    {
        const char *args[2] = {token, ttl};
        size_t alens[2] = {GH_REPLAY_REDIS_TOKEN, tlen};
        return gh_redis_evalsha(c, &s->record, (int)n, kp, klen, 2, args, alens, cb, arg, handle);
    }
}

int gh_replay_redis_result(const redisReply *reply)
{
    if (reply == NULL) return -1;
    switch (reply->type) {
    case REDIS_REPLY_STATUS: return reply->str && strcmp(reply->str, "OK") == 0 ? 1 : -1;
    case REDIS_REPLY_NIL: return 0; /* SET NX: the key was there */
    case REDIS_REPLY_INTEGER: return reply->integer == 1 ? 1 : reply->integer == 0 ? 0 : -1;
    default: return -1;
    }
}

/* The release's answer says nothing we act on: a lost release leaves keys
 * to their TTL, which the caller cannot shorten anyway. */
static void release_done(void *arg, const redisReply *reply, int status)
{
    (void)arg;
    (void)reply;
    (void)status;
}

int gh_replay_redis_release(struct gh_redis *c, const struct gh_replay_redis_scripts *s,
                            const char *prefix, const uint8_t (*digests)[GH_REPLAY_REDIS_DIGEST],
                            size_t n, const char token[GH_REPLAY_REDIS_TOKEN])
{
    char keys[GH_REPLAY_REDIS_MAXKEYS][GH_REPLAY_REDIS_KEY];
    const char *kp[GH_REPLAY_REDIS_MAXKEYS];
    size_t klen[GH_REPLAY_REDIS_MAXKEYS];
    const char *args[1] = {token};
    size_t alens[1] = {GH_REPLAY_REDIS_TOKEN};

    if (n == 0 || n > GH_REPLAY_REDIS_MAXKEYS) return GH_ERROR;
    for (size_t i = 0; i < n; i++) {
        klen[i] = gh_replay_redis_key(prefix, digests[i], keys[i]);
        kp[i] = keys[i];
    }
    return gh_redis_evalsha(c, &s->release, (int)n, kp, klen, 1, args, alens, release_done, NULL,
                            NULL);
}
