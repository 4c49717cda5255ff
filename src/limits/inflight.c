/* The sharded in-flight counters; same layout and lock as ltable.c. */
#include "limits/inflight.h"

#include <stdlib.h>
#include <string.h>

#include "limits/ltable.h"

struct slot {
    uint64_t key;   /* 0: never used */
    uint32_t count; /* 0: free for any key */
};

struct shard {
    _Alignas(64) gh_shard_lock lock;
    uint32_t mask; /* slots in the shard - 1 */
    struct slot *slots;
    _Atomic uint64_t full; /* written under the lock, read relaxed */
};

struct gh_inflight {
    struct shard *shards;
    struct slot *slots;
    uint32_t shard_mask;
};

_Static_assert(sizeof(struct shard) == 64, "a shard header is one cache line");

struct gh_inflight *gh_inflight_new(uint32_t capacity)
{
    struct gh_inflight *t = NULL;
    uint32_t cap, nshards;

    if (gh_shard_geometry(capacity, &cap, &nshards) != GH_OK) return NULL;
    t = calloc(1, sizeof(*t));
    if (t == NULL) goto fail;
    t->shards = aligned_alloc(64, (size_t)nshards * sizeof(struct shard));
    t->slots = aligned_alloc(64, (size_t)cap * sizeof(struct slot));
    if (t->shards == NULL || t->slots == NULL) goto fail;
    memset(t->slots, 0, (size_t)cap * sizeof(struct slot));
    t->shard_mask = nshards - 1;
    for (uint32_t i = 0; i < nshards; i++) {
        struct shard *s = &t->shards[i];
        memset(s, 0, sizeof(*s));
        atomic_init(&s->lock, 0);
        atomic_init(&s->full, 0);
        s->mask = cap / nshards - 1;
        s->slots = t->slots + (size_t)i * (cap / nshards);
    }
    return t;

fail:
    gh_inflight_free(t);
    return NULL;
}

void gh_inflight_free(struct gh_inflight *t)
{
    if (t == NULL) return;
    free(t->shards);
    free(t->slots);
    free(t);
}

static inline struct shard *shard_of(struct gh_inflight *t, uint64_t key, uint64_t *home)
{
    *home = gh_shard_mix(key);
    return &t->shards[(*home >> 40) & t->shard_mask];
}

/* The slot holding <key>, or NULL; when NULL and <reuse> is given, the first
 * slot a new key may take (or NULL when the window is full of live keys).
 * Caller holds the shard lock.
 *
 * Slots are never emptied (key 0) once used: a slot at count 0 keeps its key
 * until another key takes it over. So when a key was placed, every slot
 * between its home and it was in use, and still is; a scan may stop at the
 * first never-used slot, but not at the first free one, since the key may
 * sit further on. A key is only placed after a scan that did not find it,
 * so it is never in two slots. */
static struct slot *find(struct shard *s, uint64_t key, uint64_t home, struct slot **reuse)
{
    struct slot *free_slot = NULL;

    for (uint32_t i = 0; i < GH_LTABLE_WINDOW; i++) {
        struct slot *sl = &s->slots[(home + i) & s->mask];
        if (sl->key == key) return sl;
        if (sl->count == 0 && free_slot == NULL) free_slot = sl;
        if (sl->key == 0) break;
    }
    if (reuse) *reuse = free_slot;
    return NULL;
}

bool gh_inflight_acquire(struct gh_inflight *t, uint64_t key, uint32_t max)
{
    struct slot *sl, *reuse = NULL;
    uint64_t home;
    bool ok = false;

    if (max == 0) return false;
    if (key == 0) key = 1;
    struct shard *s = shard_of(t, key, &home);

    gh_shard_lock_acquire(&s->lock);
    sl = find(s, key, home, &reuse);
    if (sl == NULL && reuse != NULL) {
        sl = reuse;
        sl->key = key;
        sl->count = 0;
    }
    if (sl == NULL) {
        atomic_store_explicit(&s->full, atomic_load_explicit(&s->full, memory_order_relaxed) + 1,
                              memory_order_relaxed);
    } else if (sl->count < max) {
        sl->count++;
        ok = true;
    }
    gh_shard_lock_release(&s->lock);
    return ok;
}

void gh_inflight_release(struct gh_inflight *t, uint64_t key)
{
    uint64_t home;

    if (key == 0) key = 1;
    struct shard *s = shard_of(t, key, &home);

    gh_shard_lock_acquire(&s->lock);
    struct slot *sl = find(s, key, home, NULL);
    if (sl != NULL && sl->count > 0) sl->count--;
    gh_shard_lock_release(&s->lock);
}

uint32_t gh_inflight_count(struct gh_inflight *t, uint64_t key)
{
    uint64_t home;
    uint32_t n = 0;

    if (key == 0) key = 1;
    struct shard *s = shard_of(t, key, &home);

    gh_shard_lock_acquire(&s->lock);
    struct slot *sl = find(s, key, home, NULL);
    if (sl != NULL) n = sl->count;
    gh_shard_lock_release(&s->lock);
    return n;
}

uint64_t gh_inflight_full_refusals(const struct gh_inflight *t)
{
    uint64_t n = 0;
    for (uint32_t i = 0; i <= t->shard_mask; i++)
        n += atomic_load_explicit(&t->shards[i].full, memory_order_relaxed);
    return n;
}
