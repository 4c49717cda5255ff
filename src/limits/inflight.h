/* In-flight counters (bulkheads): how many requests of a key are being served
 * right now, shared by all worker threads.
 *
 * Keys are 64-bit hashes, made with gh_ltable_hash like the rate-limit keys;
 * key 0 is folded into key 1. The layout is the one of ltable.h: a fixed
 * capacity allocated at creation, shards with their own spin lock, and a key
 * within GH_LTABLE_WINDOW slots of its home slot. A slot whose count is 0 is
 * free for any key.
 *
 * Unlike a rate limit, a live count cannot be forgotten (the bulkhead would
 * leak), so nothing is evicted: when a new key finds its window full of live
 * keys, gh_inflight_acquire fails closed (returns false) and the refusal is
 * counted in gh_inflight_full_refusals. Live keys are bounded by the requests
 * in flight across all workers; a capacity of twice that keeps windows from
 * filling up.
 *
 * Every acquire that returned true must be paired with exactly one release
 * of the same key. A release with no matching acquire is ignored.
 *
 * Thread safety: everything may be called from any thread at once, except
 * gh_inflight_free. */
#ifndef GH_LIMITS_INFLIGHT_H
#define GH_LIMITS_INFLIGHT_H

#include <stdbool.h>
#include <stdint.h>

struct gh_inflight;

/* A table of at least <capacity> slots (rounded as gh_ltable_new does).
 * Returns NULL when capacity is 0 or above GH_LTABLE_MAX_CAPACITY, or when
 * memory is short. */
struct gh_inflight *gh_inflight_new(uint32_t capacity);
void gh_inflight_free(struct gh_inflight *t);

/* Takes one of <max> places for <key>: returns true and counts it if fewer
 * than <max> were taken; returns false and changes nothing if all are taken,
 * if max is 0, or if there is no room for a new key (fail closed). */
bool gh_inflight_acquire(struct gh_inflight *t, uint64_t key, uint32_t max);

/* Gives back a place taken by gh_inflight_acquire. */
void gh_inflight_release(struct gh_inflight *t, uint64_t key);

/* Places of <key> taken right now. */
uint32_t gh_inflight_count(struct gh_inflight *t, uint64_t key);

/* Acquires refused because the table had no room (a relaxed read). */
uint64_t gh_inflight_full_refusals(const struct gh_inflight *t);

#endif
