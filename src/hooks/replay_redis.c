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

/* EVAL <script> <n> <keys...> <args...> on <c>. */
static int eval(struct gh_redis *c, const char *script, const char *prefix,
                const uint8_t (*digests)[GH_REPLAY_REDIS_DIGEST], size_t n, const char **args,
                const size_t *alens, size_t nargs, gh_redis_cb cb, void *arg, uint32_t *handle)
{
    char keys[GH_REPLAY_REDIS_MAXKEYS][GH_REPLAY_REDIS_KEY];
    const char *argv[3 + GH_REPLAY_REDIS_MAXKEYS + 2];
    size_t lens[3 + GH_REPLAY_REDIS_MAXKEYS + 2];
    char nk = (char)('0' + n);
    int argc = 0;

    if (n == 0 || n > GH_REPLAY_REDIS_MAXKEYS || nargs > 2) return GH_ERROR;
    argv[argc] = "EVAL";
    lens[argc++] = 4;
    argv[argc] = script;
    lens[argc++] = strlen(script);
    argv[argc] = &nk;
    lens[argc++] = 1;
    for (size_t i = 0; i < n; i++) {
        lens[argc] = gh_replay_redis_key(prefix, digests[i], keys[i]);
        argv[argc++] = keys[i];
    }
    for (size_t i = 0; i < nargs; i++) {
        argv[argc] = args[i];
        lens[argc++] = alens[i];
    }
    return gh_redis_command(c, argc, argv, lens, cb, arg, handle);
}

int gh_replay_redis_record(struct gh_redis *c, const char *prefix,
                           const uint8_t (*digests)[GH_REPLAY_REDIS_DIGEST], size_t n,
                           const char token[GH_REPLAY_REDIS_TOKEN], uint64_t ttl_ms, gh_redis_cb cb,
                           void *arg, uint32_t *handle)
{
    char key[GH_REPLAY_REDIS_KEY], ttl[24];
    size_t tlen =
        (size_t)snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)(ttl_ms ? ttl_ms : 1));
    const char *args[2] = {token, ttl};
    size_t alens[2] = {GH_REPLAY_REDIS_TOKEN, tlen};

    if (n == 1) {
        /* One key needs no script: SET NX is atomic. */
        size_t klen = gh_replay_redis_key(prefix, digests[0], key);
        const char *argv[6] = {"SET", key, token, "NX", "PX", ttl};
        size_t lens[6] = {3, klen, GH_REPLAY_REDIS_TOKEN, 2, 2, tlen};
        return gh_redis_command(c, 6, argv, lens, cb, arg, handle);
    }
    return eval(c, record_script, prefix, digests, n, args, alens, 2, cb, arg, handle);
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

int gh_replay_redis_release(struct gh_redis *c, const char *prefix,
                            const uint8_t (*digests)[GH_REPLAY_REDIS_DIGEST], size_t n,
                            const char token[GH_REPLAY_REDIS_TOKEN])
{
    const char *args[1] = {token};
    size_t alens[1] = {GH_REPLAY_REDIS_TOKEN};

    return eval(c, release_script, prefix, digests, n, args, alens, 1, release_done, NULL, NULL);
}
