/* The shared table of accepted webhook messages (replay.h). */
#include "hooks/replay.h"

#include <openssl/rand.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "limits/ltable.h"

#define NSHARDS 64

struct slot {
    uint64_t hash; /* 0: never used */
    int64_t expires_s;
};

struct shard {
    pthread_mutex_t mu;
    struct slot *slots;
} __attribute__((aligned(64))); /* one cache line per lock */

struct gh_replay {
    uint8_t seed[16];
    size_t per_shard; /* a power of two */
    struct shard shards[NSHARDS];
    struct slot *all;
};

struct gh_replay *gh_replay_new(size_t capacity)
{
    struct gh_replay *t = calloc(1, sizeof(*t));
    size_t per = GH_REPLAY_PROBE;

    if (t == NULL) return NULL;
    while (per * NSHARDS < capacity && per < ((size_t)1 << 24))
        per <<= 1;
    t->per_shard = per;
    t->all = calloc(per * NSHARDS, sizeof(struct slot));
    if (t->all == NULL || RAND_bytes(t->seed, sizeof(t->seed)) != 1) {
        free(t->all);
        free(t);
        return NULL;
    }
    for (size_t i = 0; i < NSHARDS; i++) {
        pthread_mutex_init(&t->shards[i].mu, NULL);
        t->shards[i].slots = t->all + i * per;
    }
    return t;
}

void gh_replay_free(struct gh_replay *t)
{
    if (t == NULL) return;
    for (size_t i = 0; i < NSHARDS; i++)
        pthread_mutex_destroy(&t->shards[i].mu);
    free(t->all);
    free(t);
}

uint64_t gh_replay_hash(const struct gh_replay *t, const void *prefix, size_t plen, const void *key,
                        size_t len)
{
    unsigned char buf[512];

    /* Bounded by the callers (a route name, a replay key): cut, not
     * overflowed, beyond the buffer; a cut key only makes collisions
     * likelier, which can refuse a genuine message, never pass a replay. */
    if (plen > 256) plen = 256;
    if (len > sizeof(buf) - plen - 1) len = sizeof(buf) - plen - 1;
    memcpy(buf, prefix, plen);
    buf[plen] = 0;
    memcpy(buf + plen + 1, key, len);
    return gh_siphash(t->seed, buf, plen + 1 + len) | 1; /* never 0: 0 marks an unused slot */
}

/* The shard of <h> and the first slot of its window. */
static struct shard *window_of(struct gh_replay *t, uint64_t h, size_t *start)
{
    /* The shard from the high bits, the window from others (the low bit is
     * forced): a window is GH_REPLAY_PROBE slots aligned on their size, so
     * it spans as few cache lines as it can. */
    *start = (size_t)(h >> 1) & (t->per_shard - 1) & ~(size_t)(GH_REPLAY_PROBE - 1);
    return &t->shards[h >> 58];
}

void gh_replay_forget(struct gh_replay *t, uint64_t h)
{
    size_t start;
    struct shard *sh = window_of(t, h, &start);

    pthread_mutex_lock(&sh->mu);
    for (size_t i = 0; i < GH_REPLAY_PROBE; i++) {
        struct slot *s = &sh->slots[start + i];
        if (s->hash == 0) break;
        /* Expired, not unused: later keys of the window may sit after it. */
        if (s->hash == h) s->expires_s = 0;
    }
    pthread_mutex_unlock(&sh->mu);
}

enum gh_replay_result gh_replay_check_add(struct gh_replay *t, const void *key, size_t len,
                                          int64_t now_s, int64_t expires_s)
{
    return gh_replay_check_add_hash(t, gh_replay_hash(t, "", 0, key, len), now_s, expires_s);
}

enum gh_replay_result gh_replay_check_add_hash(struct gh_replay *t, uint64_t h, int64_t now_s,
                                               int64_t expires_s)
{
    size_t start;
    struct shard *sh = window_of(t, h, &start);
    struct slot *free_slot = NULL;
    enum gh_replay_result res = GH_REPLAY_NEW;

    pthread_mutex_lock(&sh->mu);
    /* A key may sit after a slot freed by expiry, so the window is visited
     * past those; but never past a slot never used: a key goes to the first
     * free slot of its window, and a used slot never becomes unused again. */
    for (size_t i = 0; i < GH_REPLAY_PROBE; i++) {
        struct slot *s = &sh->slots[start + i];
        bool alive = s->hash != 0 && s->expires_s > now_s;
        if (s->hash == 0) {
            if (free_slot == NULL) free_slot = s;
            break;
        }
        if (alive && s->hash == h) {
            res = GH_REPLAY_SEEN;
            break;
        }
        if (!alive && free_slot == NULL) free_slot = s;
    }
    if (res == GH_REPLAY_NEW) {
        if (free_slot) {
            free_slot->hash = h;
            free_slot->expires_s = expires_s;
        } else {
            res = GH_REPLAY_FULL;
        }
    }
    pthread_mutex_unlock(&sh->mu);
    return res;
}

size_t gh_replay_live(struct gh_replay *t, int64_t now_s)
{
    size_t n = 0;
    for (size_t i = 0; i < NSHARDS; i++) {
        pthread_mutex_lock(&t->shards[i].mu);
        for (size_t k = 0; k < t->per_shard; k++)
            if (t->shards[i].slots[k].hash && t->shards[i].slots[k].expires_s > now_s) n++;
        pthread_mutex_unlock(&t->shards[i].mu);
    }
    return n;
}
