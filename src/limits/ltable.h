/* The rate-limit table: GCRA state (gcra.h) for many keys, shared by all
 * worker threads.
 *
 * Keys are 64-bit hashes. Callers hash their descriptor bytes (rule id,
 * client address, header values...) with gh_ltable_hash, a SipHash-2-4 keyed
 * by 128 random bits drawn at creation: descriptors carry attacker-chosen
 * values, and an unkeyed hash would let a client aim many keys at one probe
 * window and push other clients' state out. Key 0 is folded into key 1.
 * The caller keeps one key per (rule, descriptor): the table stores a tat and
 * nothing else, so the same key decided with different params mixes them.
 *
 * The table has a fixed capacity, allocated at creation; nothing allocates
 * afterwards. It is split into shards (64, fewer for small tables), each with
 * its own spin lock and an open-addressing array; no lock covers the whole
 * table, and a decision holds one shard lock for a few dozen instructions.
 * A key lives within GH_LTABLE_WINDOW slots of its home slot. A slot whose
 * tat <= now is free for any key (an expired key is the same as an absent
 * one, gcra.h). When the window holds only live keys, the one with the
 * smallest tat (the closest to expiry, so the one that has been the least
 * busy) is evicted and counted. Eviction forgets a debt, so it errs towards
 * allowing: a table too small for its traffic limits less, it never refuses
 * more. A heavy user has the largest tat in its window and goes last.
 *
 * Thread safety: everything may be called from any thread at once, except
 * gh_ltable_free. The <now_ns> values threads bring need not be ordered. */
#ifndef GH_LIMITS_LTABLE_H
#define GH_LIMITS_LTABLE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "limits/gcra.h"

/* How far from its home slot a key may live; 16 slots are 4 cache lines. */
#define GH_LTABLE_WINDOW       16
#define GH_LTABLE_MAX_CAPACITY (UINT32_C(1) << 28)

struct gh_ltable;

/* A table of at least <capacity> slots (rounded up to a power of two and to
 * at least GH_LTABLE_WINDOW). Returns NULL when capacity is 0 or above
 * GH_LTABLE_MAX_CAPACITY, when memory is short, or when getrandom() fails. */
struct gh_ltable *gh_ltable_new(uint32_t capacity);
void gh_ltable_free(struct gh_ltable *t);

/* Slots in the table, after rounding. */
uint32_t gh_ltable_capacity(const struct gh_ltable *t);

/* The table's keyed hash of <len> bytes at <data>. */
uint64_t gh_ltable_hash(const struct gh_ltable *t, const void *data, size_t len);

/* Decides one request of <key> at <now_ns> under <p> and stores the outcome
 * in <out>. Never fails: a key with no room takes the place of the live key
 * closest to expiry (see the top comment). */
void gh_ltable_decide(struct gh_ltable *t, uint64_t key, uint64_t now_ns,
                      const struct gh_gcra_params *p, struct gh_gcra_result *out);

/* Live keys evicted so far (a relaxed read; for metrics). */
uint64_t gh_ltable_evictions(const struct gh_ltable *t);

/* Keys whose tat is after <now_ns>. Takes each shard lock in turn: for tests
 * and metrics, not for the request path. */
uint32_t gh_ltable_live(struct gh_ltable *t, uint64_t now_ns);

/* SipHash-2-4 (Aumasson and Bernstein, "SipHash: a fast short-input PRF",
 * 2012) of <len> bytes at <data> under the 16-byte <key>. */
uint64_t gh_siphash(const uint8_t key[16], const void *data, size_t len);

/* ---- Shared with inflight.c ------------------------------------------------ */

/* Slots and shards for a table of at least <capacity> slots: slots rounded up
 * to a power of two of at least GH_LTABLE_WINDOW, at most 64 shards and at
 * least one window per shard. Returns GH_OK, or GH_ERROR for capacity 0 or
 * above GH_LTABLE_MAX_CAPACITY. */
int gh_shard_geometry(uint32_t capacity, uint32_t *slots, uint32_t *shards);

/* Spreads the key's bits (the MurmurHash3 finaliser) so that keys that are
 * not already hashes, such as small counters in tests, still fill shards and
 * slots evenly. Gives no protection by itself: that is the keyed hash's job.
 * The shard comes from bits 40 and up, the home slot from the low bits. */
static inline uint64_t gh_shard_mix(uint64_t k)
{
    k ^= k >> 33;
    k *= UINT64_C(0xff51afd7ed558ccd);
    k ^= k >> 33;
    k *= UINT64_C(0xc4ceb9fe1a85ec53);
    k ^= k >> 33;
    return k;
}

/* A test-and-test-and-set spin lock. Critical sections are a few dozen
 * instructions, so a waiter spins on a plain load (no cache-line ping-pong)
 * and only yields the CPU if the holder seems preempted, which keeps a
 * worker from burning its time slice behind a descheduled thread.
 * pthread_spin_lock measured no faster in bench/limits_bench.c, and has no
 * yield. */
typedef atomic_uint gh_shard_lock;

void gh_shard_lock_slow(gh_shard_lock *l);

static inline void gh_shard_lock_acquire(gh_shard_lock *l)
{
    if (atomic_exchange_explicit(l, 1, memory_order_acquire) == 0) return;
    gh_shard_lock_slow(l);
}

static inline void gh_shard_lock_release(gh_shard_lock *l)
{
    atomic_store_explicit(l, 0, memory_order_release);
}

#endif
