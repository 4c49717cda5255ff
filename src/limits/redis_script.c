/* EVALSHA with a transparent SCRIPT LOAD on NOSCRIPT. See redis_script.h. */
#include "limits/redis_script.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

/* One call in flight. It keeps a copy of the EVALSHA arguments because the
 * retry needs them after the caller's buffers are gone.
 * NEEDSWORK: one malloc per call; a per-worker free list would remove it if
 * profiles show it matters (the copies are a few dozen bytes). */
struct call {
    struct gh_redis *r;
    const struct gh_redis_script *s;
    gh_redis_cb cb;
    void *arg;
    uint32_t handle;
    bool retried;
    int argc;
    const char **argv; /* into the allocation, after the struct */
    size_t *lens;
};

static const char hexdigits[] = "0123456789abcdef";

void gh_redis_script_init(struct gh_redis_script *s, const char *body)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;

    s->body = body;
    s->sha1_hex[0] = '\0';
    /* Cannot fail short of a broken OpenSSL; an empty SHA then makes every
     * EVALSHA come back as a NOSCRIPT error reply, which callers handle. */
    if (EVP_Digest(body, strlen(body), md, &mdlen, EVP_sha1(), NULL) != 1 || mdlen != 20) return;
    for (unsigned i = 0; i < 20; i++) {
        s->sha1_hex[2 * i] = hexdigits[md[i] >> 4];
        s->sha1_hex[2 * i + 1] = hexdigits[md[i] & 15];
    }
    s->sha1_hex[40] = '\0';
}

static bool is_noscript(const redisReply *reply)
{
    return reply && reply->type == REDIS_REPLY_ERROR && reply->str &&
           strncmp(reply->str, "NOSCRIPT", 8) == 0;
}

static void call_cb(void *arg, const redisReply *reply, int status)
{
    struct call *c = arg;

    if (status == GH_REDIS_OK && is_noscript(reply) && !c->retried) {
        const char *load[3] = {"SCRIPT", "LOAD", c->s->body};
        size_t loadlen[3] = {6, 4, strlen(c->s->body)};

        c->retried = true;
        /* The SCRIPT LOAD reply is dropped: the EVALSHA behind it tells. */
        if (gh_redis_command(c->r, 3, load, loadlen, NULL, NULL, NULL) == GH_OK &&
            gh_redis_command_ex(c->r, c->argc, c->argv, c->lens, call_cb, c,
                                GH_REDIS_F_OWNED | GH_REDIS_F_REUSE_HANDLE, &c->handle) == GH_OK)
            return;
        status = GH_REDIS_DOWN;
        reply = NULL;
    }
    if (status != GH_REDIS_CANCELLED) c->cb(c->arg, reply, status);
    free(c);
}

int gh_redis_evalsha(struct gh_redis *r, const struct gh_redis_script *s, int nkeys,
                     const char **keys, const size_t *keylens, int nargs, const char **args,
                     const size_t *arglens, gh_redis_cb cb, void *arg, uint32_t *handle)
{
    char nk[12];
    size_t nklen, bytes, off;
    int argc;
    struct call *c;
    char *p;

    if (nkeys < 0 || nargs < 0 || nkeys + nargs > GH_REDIS_SCRIPT_MAX_ARGS) return GH_ERROR;
    nklen = (size_t)snprintf(nk, sizeof(nk), "%d", nkeys);
    argc = 3 + nkeys + nargs;
    bytes = nklen;
    for (int i = 0; i < nkeys; i++)
        bytes += keylens[i];
    for (int i = 0; i < nargs; i++)
        bytes += arglens[i];
    off = sizeof(*c) + (size_t)argc * (sizeof(char *) + sizeof(size_t));
    c = malloc(off + bytes);
    if (c == NULL) return GH_ERROR;
    c->r = r;
    c->s = s;
    c->cb = cb;
    c->arg = arg;
    c->retried = false;
    c->argc = argc;
    c->argv = (const char **)(c + 1);
    c->lens = (size_t *)(c->argv + argc);
    p = (char *)c + off;

    c->argv[0] = "EVALSHA";
    c->lens[0] = 7;
    c->argv[1] = s->sha1_hex;
    c->lens[1] = strlen(s->sha1_hex);
    memcpy(p, nk, nklen);
    c->argv[2] = p;
    c->lens[2] = nklen;
    p += nklen;
    for (int i = 0; i < nkeys + nargs; i++) {
        const char *src = i < nkeys ? keys[i] : args[i - nkeys];
        size_t len = i < nkeys ? keylens[i] : arglens[i - nkeys];
        if (len) memcpy(p, src, len);
        c->argv[3 + i] = p;
        c->lens[3 + i] = len;
        p += len;
    }
    if (gh_redis_command_ex(r, argc, c->argv, c->lens, call_cb, c, GH_REDIS_F_OWNED, &c->handle) !=
        GH_OK) {
        free(c);
        return GH_ERROR;
    }
    if (handle) *handle = c->handle;
    return GH_OK;
}
