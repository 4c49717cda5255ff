/* The sharded GCRA table, its keyed hash and the shard lock. */
#include "limits/ltable.h"

#include <endian.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define MAX_SHARDS 64u

struct slot {
    uint64_t key; /* 0: never used */
    uint64_t tat;
};

/* One cache line: the lock and what the holder reads first share it, and no
 * two shards share one, so threads on different shards never contend. */
struct shard {
    _Alignas(64) gh_shard_lock lock;
    uint32_t mask; /* slots in the shard - 1 */
    struct slot *slots;
    _Atomic uint64_t evictions; /* written under the lock, read relaxed */
};

struct gh_ltable {
    struct shard *shards;
    struct slot *slots; /* all shards' slots, one allocation */
    uint32_t shard_mask;
    uint32_t capacity;
    uint8_t seed[16];
};

_Static_assert(sizeof(struct shard) == 64, "a shard header is one cache line");

/* ---- Shard lock ------------------------------------------------------------ */

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

void gh_shard_lock_slow(gh_shard_lock *l)
{
    /* A critical section is well under a microsecond; after this many
     * rounds the holder is most likely preempted, and yielding lets it run. */
    unsigned spins = 0;

    for (;;) {
        while (atomic_load_explicit(l, memory_order_relaxed) != 0) {
            if (++spins < 1024) {
                cpu_relax();
            } else {
                spins = 0;
                sched_yield();
            }
        }
        if (atomic_exchange_explicit(l, 1, memory_order_acquire) == 0) return;
    }
}

/* ---- SipHash-2-4 ----------------------------------------------------------- */

static inline uint64_t rotl(uint64_t x, int b)
{
    return (x << b) | (x >> (64 - b));
}

static inline uint64_t load_le64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return le64toh(v);
}

#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = rotl(v1, 13);                                                                         \
        v1 ^= v0;                                                                                  \
        v0 = rotl(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = rotl(v3, 16);                                                                         \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = rotl(v3, 21);                                                                         \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = rotl(v1, 17);                                                                         \
        v1 ^= v2;                                                                                  \
        v2 = rotl(v2, 32);                                                                         \
    } while (0)

uint64_t gh_siphash(const uint8_t key[16], const void *data, size_t len)
{
    const uint8_t *in = data;
    uint64_t k0 = load_le64(key), k1 = load_le64(key + 8);
    uint64_t v0 = k0 ^ UINT64_C(0x736f6d6570736575);
    uint64_t v1 = k1 ^ UINT64_C(0x646f72616e646f6d);
    uint64_t v2 = k0 ^ UINT64_C(0x6c7967656e657261);
    uint64_t v3 = k1 ^ UINT64_C(0x7465646279746573);
    size_t whole = len & ~(size_t)7;
    uint64_t m;

    for (size_t i = 0; i < whole; i += 8) {
        m = load_le64(in + i);
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    /* The last word: the remaining 0-7 bytes, length mod 256 in the top byte. */
    m = (uint64_t)(len & 0xff) << 56;
    for (size_t i = 0; i < (len & 7); i++)
        m |= (uint64_t)in[whole + i] << (8 * i);
    v3 ^= m;
    SIPROUND;
    SIPROUND;
    v0 ^= m;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* ---- Table ------------------------------------------------------------------ */

int gh_shard_geometry(uint32_t capacity, uint32_t *slots, uint32_t *shards)
{
    uint32_t cap = 1;

    if (capacity == 0 || capacity > GH_LTABLE_MAX_CAPACITY) return GH_ERROR;
    while (cap < capacity || cap < GH_LTABLE_WINDOW)
        cap <<= 1;
    /* At least one window per shard, so a window never wraps onto itself. */
    *shards = cap / GH_LTABLE_WINDOW < MAX_SHARDS ? cap / GH_LTABLE_WINDOW : MAX_SHARDS;
    *slots = cap;
    return GH_OK;
}

struct gh_ltable *gh_ltable_new(uint32_t capacity)
{
    struct gh_ltable *t = NULL;
    uint32_t cap, nshards;

    if (gh_shard_geometry(capacity, &cap, &nshards) != GH_OK) return NULL;

    t = calloc(1, sizeof(*t));
    if (t == NULL) goto fail;
    t->shards = aligned_alloc(64, (size_t)nshards * sizeof(struct shard));
    t->slots = aligned_alloc(64, (size_t)cap * sizeof(struct slot));
    if (t->shards == NULL || t->slots == NULL) goto fail;
    if (getrandom(t->seed, sizeof(t->seed), 0) != (ssize_t)sizeof(t->seed)) goto fail;
    memset(t->slots, 0, (size_t)cap * sizeof(struct slot));
    t->shard_mask = nshards - 1;
    t->capacity = cap;
    for (uint32_t i = 0; i < nshards; i++) {
        struct shard *s = &t->shards[i];
        memset(s, 0, sizeof(*s));
        atomic_init(&s->lock, 0);
        atomic_init(&s->evictions, 0);
        s->mask = cap / nshards - 1;
        s->slots = t->slots + (size_t)i * (cap / nshards);
    }
    return t;

fail:
    gh_ltable_free(t);
    return NULL;
}

void gh_ltable_free(struct gh_ltable *t)
{
    if (t == NULL) return;
    free(t->shards);
    free(t->slots);
    free(t);
}

uint32_t gh_ltable_capacity(const struct gh_ltable *t)
{
    return t->capacity;
}

uint64_t gh_ltable_hash(const struct gh_ltable *t, const void *data, size_t len)
{
    return gh_siphash(t->seed, data, len);
}

/* The slot <key> lives in, claiming one if it has none. Caller holds the
 * shard lock.
 *
 * Slots are never emptied (key 0) once used: expired ones are overwritten in
 * place. So when a key was placed, every slot between its home and it was
 * in use, and still is; a scan may stop at the first never-used slot. A scan
 * does not stop at the first reusable slot: the key may sit further on. */
static struct slot *find_or_claim(struct shard *s, uint64_t key, uint64_t home, uint64_t now_ns)
{
    struct slot *reuse = NULL, *oldest = NULL;

    for (uint32_t i = 0; i < GH_LTABLE_WINDOW; i++) {
        struct slot *sl = &s->slots[(home + i) & s->mask];
        if (sl->key == key) return sl;
        if (sl->key == 0) {
            if (reuse == NULL) reuse = sl;
            break;
        }
        if (sl->tat <= now_ns) {
            if (reuse == NULL) reuse = sl;
        } else if (oldest == NULL || sl->tat < oldest->tat) {
            oldest = sl;
        }
    }
    if (reuse == NULL) {
        /* Window full of live keys; oldest is set since every slot was live. */
        reuse = oldest;
        atomic_store_explicit(&s->evictions,
                              atomic_load_explicit(&s->evictions, memory_order_relaxed) + 1,
                              memory_order_relaxed);
    }
    reuse->key = key;
    reuse->tat = 0;
    return reuse;
}

void gh_ltable_decide(struct gh_ltable *t, uint64_t key, uint64_t now_ns,
                      const struct gh_gcra_params *p, struct gh_gcra_result *out)
{
    if (key == 0) key = 1;
    uint64_t h = gh_shard_mix(key);
    struct shard *s = &t->shards[(h >> 40) & t->shard_mask];

    gh_shard_lock_acquire(&s->lock);
    struct slot *sl = find_or_claim(s, key, h, now_ns);
    gh_gcra_step(&sl->tat, now_ns, p, out);
    gh_shard_lock_release(&s->lock);
}

uint64_t gh_ltable_evictions(const struct gh_ltable *t)
{
    uint64_t n = 0;
    for (uint32_t i = 0; i <= t->shard_mask; i++)
        n += atomic_load_explicit(&t->shards[i].evictions, memory_order_relaxed);
    return n;
}

uint32_t gh_ltable_live(struct gh_ltable *t, uint64_t now_ns)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i <= t->shard_mask; i++) {
        struct shard *s = &t->shards[i];
        gh_shard_lock_acquire(&s->lock);
        for (uint32_t j = 0; j <= s->mask; j++)
            if (s->slots[j].key != 0 && s->slots[j].tat > now_ns) n++;
        gh_shard_lock_release(&s->lock);
    }
    return n;
}
