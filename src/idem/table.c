/* The process's idempotency records (table.h). */
#include "idem/table.h"

#include <openssl/rand.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "limits/ltable.h"

#define NSHARDS 64

struct slot {
    uint8_t digest[GH_IDEM_DIGEST];
    uint64_t expires_ms; /* 0: free (deleted, or never used) */
    char *val;           /* NULL once freed */
    uint32_t len;
    bool used; /* ever used: windows are visited past it */
};

struct shard {
    pthread_mutex_t mu;
    struct slot *slots;
} __attribute__((aligned(64)));

struct gh_idem_table {
    uint8_t seed[16];
    size_t per_shard; /* a power of two */
    uint64_t max_bytes;
    _Atomic uint64_t bytes; /* of values held, expired ones included until freed */
    _Atomic uint64_t last_sweep_ms;
    struct shard shards[NSHARDS];
    struct slot *all;
};

struct gh_idem_table *gh_idem_table_new(size_t slots, uint64_t max_bytes)
{
    struct gh_idem_table *t = calloc(1, sizeof(*t));
    size_t per = GH_IDEM_PROBE;

    if (t == NULL) return NULL;
    while (per * NSHARDS < slots && per < ((size_t)1 << 22))
        per <<= 1;
    t->per_shard = per;
    t->max_bytes = max_bytes;
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

void gh_idem_table_free(struct gh_idem_table *t)
{
    if (t == NULL) return;
    for (size_t i = 0; i < NSHARDS * t->per_shard; i++)
        free(t->all[i].val);
    for (size_t i = 0; i < NSHARDS; i++)
        pthread_mutex_destroy(&t->shards[i].mu);
    free(t->all);
    free(t);
}

/* The shard of <digest> and the first slot of its window. */
static struct shard *window_of(struct gh_idem_table *t, const uint8_t *digest, size_t *start)
{
    uint64_t h = gh_siphash(t->seed, digest, GH_IDEM_DIGEST);

    *start = (size_t)h & (t->per_shard - 1) & ~(size_t)(GH_IDEM_PROBE - 1);
    return &t->shards[h >> 58];
}

/* Under the shard lock: empties <s> (its value freed). */
static void clear(struct gh_idem_table *t, struct slot *s)
{
    if (s->val) {
        atomic_fetch_sub_explicit(&t->bytes, s->len, memory_order_relaxed);
        free(s->val);
    }
    s->val = NULL;
    s->len = 0;
    s->expires_ms = 0;
}

static bool alive(const struct slot *s, uint64_t now_ms)
{
    return s->expires_ms > now_ms;
}

/* Under the shard lock: the live slot of <digest> in its window, else NULL;
 * *free_slot gets the first reusable slot (expired ones are emptied on the
 * way). */
static struct slot *find(struct gh_idem_table *t, struct shard *sh, size_t start,
                         const uint8_t *digest, uint64_t now_ms, struct slot **free_slot)
{
    *free_slot = NULL;
    for (size_t i = 0; i < GH_IDEM_PROBE; i++) {
        struct slot *s = &sh->slots[start + i];
        if (!s->used) {
            if (*free_slot == NULL) *free_slot = s;
            break; /* a digest goes to the first free slot: none sits past this */
        }
        if (!alive(s, now_ms)) {
            if (s->val) clear(t, s);
            if (*free_slot == NULL) *free_slot = s;
            continue;
        }
        if (memcmp(s->digest, digest, GH_IDEM_DIGEST) == 0) return s;
    }
    return NULL;
}

/* Room for <need> more bytes: when short, expired values are freed first
 * (at most once a second: a full table of live values costs no sweeps). */
static bool room_for(struct gh_idem_table *t, uint64_t need, uint64_t now_ms)
{
    uint64_t last;

    if (atomic_load_explicit(&t->bytes, memory_order_relaxed) + need <= t->max_bytes) return true;
    last = atomic_load_explicit(&t->last_sweep_ms, memory_order_relaxed);
    if (now_ms < last + 1000 || !atomic_compare_exchange_strong(&t->last_sweep_ms, &last, now_ms))
        return false;
    gh_idem_table_sweep(t, now_ms);
    return atomic_load_explicit(&t->bytes, memory_order_relaxed) + need <= t->max_bytes;
}

enum gh_idem_table_result gh_idem_table_claim(struct gh_idem_table *t,
                                              const uint8_t digest[GH_IDEM_DIGEST], const char *val,
                                              size_t len, uint64_t headroom, uint64_t now_ms,
                                              uint64_t ttl_ms, char **old, size_t *oldlen)
{
    size_t start;
    struct shard *sh = window_of(t, digest, &start);
    struct slot *s, *free_slot;
    enum gh_idem_table_result res = GH_IDEM_NEW;
    char *copy;

    *old = NULL;
    *oldlen = 0;
    /* Checked outside the lock: a sweep takes every shard's lock. */
    if (!room_for(t, len + headroom, now_ms)) return GH_IDEM_FULL;
    if ((copy = malloc(len ? len : 1)) == NULL) return GH_IDEM_NOMEM;
    memcpy(copy, val, len);
    pthread_mutex_lock(&sh->mu);
    s = find(t, sh, start, digest, now_ms, &free_slot);
    if (s != NULL) {
        if ((*old = malloc(s->len ? s->len : 1)) == NULL) {
            res = GH_IDEM_NOMEM;
        } else {
            memcpy(*old, s->val, s->len);
            *oldlen = s->len;
            res = GH_IDEM_EXISTS;
        }
    } else if (free_slot == NULL) {
        res = GH_IDEM_FULL;
    } else {
        memcpy(free_slot->digest, digest, GH_IDEM_DIGEST);
        free_slot->val = copy;
        free_slot->len = (uint32_t)len;
        free_slot->expires_ms = now_ms + (ttl_ms ? ttl_ms : 1);
        free_slot->used = true;
        atomic_fetch_add_explicit(&t->bytes, len, memory_order_relaxed);
        copy = NULL;
    }
    pthread_mutex_unlock(&sh->mu);
    free(copy);
    return res;
}

int gh_idem_table_set_if(struct gh_idem_table *t, const uint8_t digest[GH_IDEM_DIGEST],
                         const char *expect, size_t elen, const char *val, size_t len,
                         uint64_t now_ms, uint64_t ttl_ms)
{
    size_t start;
    struct shard *sh = window_of(t, digest, &start);
    struct slot *s, *free_slot;
    int rc = 0;
    char *copy;

    if (len > elen && !room_for(t, len - elen, now_ms)) return 0;
    if ((copy = malloc(len ? len : 1)) == NULL) return -1;
    memcpy(copy, val, len);
    pthread_mutex_lock(&sh->mu);
    s = find(t, sh, start, digest, now_ms, &free_slot);
    if (s != NULL && s->len == elen && memcmp(s->val, expect, elen) == 0) {
        atomic_fetch_sub_explicit(&t->bytes, s->len, memory_order_relaxed);
        atomic_fetch_add_explicit(&t->bytes, len, memory_order_relaxed);
        free(s->val);
        s->val = copy;
        s->len = (uint32_t)len;
        s->expires_ms = now_ms + (ttl_ms ? ttl_ms : 1);
        copy = NULL;
        rc = 1;
    }
    pthread_mutex_unlock(&sh->mu);
    free(copy);
    return rc;
}

void gh_idem_table_del_if(struct gh_idem_table *t, const uint8_t digest[GH_IDEM_DIGEST],
                          const char *expect, size_t elen)
{
    size_t start;
    struct shard *sh = window_of(t, digest, &start);
    struct slot *free_slot;

    pthread_mutex_lock(&sh->mu);
    /* now 0: an expired value of ours is freed too. */
    struct slot *s = find(t, sh, start, digest, 0, &free_slot);
    if (s != NULL && s->len == elen && memcmp(s->val, expect, elen) == 0) clear(t, s);
    pthread_mutex_unlock(&sh->mu);
}

void gh_idem_table_sweep(struct gh_idem_table *t, uint64_t now_ms)
{
    for (size_t i = 0; i < NSHARDS; i++) {
        pthread_mutex_lock(&t->shards[i].mu);
        for (size_t k = 0; k < t->per_shard; k++) {
            struct slot *s = &t->shards[i].slots[k];
            if (s->val && !alive(s, now_ms)) clear(t, s);
        }
        pthread_mutex_unlock(&t->shards[i].mu);
    }
}

size_t gh_idem_table_live(struct gh_idem_table *t, uint64_t now_ms, uint64_t *bytes)
{
    size_t n = 0;
    uint64_t b = 0;

    for (size_t i = 0; i < NSHARDS; i++) {
        pthread_mutex_lock(&t->shards[i].mu);
        for (size_t k = 0; k < t->per_shard; k++) {
            const struct slot *s = &t->shards[i].slots[k];
            if (s->val && alive(s, now_ms)) {
                n++;
                b += s->len;
            }
        }
        pthread_mutex_unlock(&t->shards[i].mu);
    }
    if (bytes) *bytes = b;
    return n;
}
