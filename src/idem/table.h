/* The process's idempotency records, when no Redis is shared (or while it
 * is unavailable under idempotency.on_redis_error: local): a small
 * key-value store with expiry that does what the Redis commands of
 * redis_store.h do, so the stage treats both alike.
 *
 * One table per process, shared by all workers: 64 shards, each a mutex
 * over a fixed array of slots {record digest, expiry, value}. A digest
 * lives in a window of GH_IDEM_PROBE slots of its shard, picked by a keyed
 * SipHash (seeded at random per process), so that clients cannot aim their
 * keys at one window. An expired slot is free again and its value freed
 * when the window is next visited (gh_idem_table_sweep frees the rest).
 *
 * Bounded two ways: slots (`idempotency.keys`) and bytes of values
 * (`idempotency.max_memory`). A claim finds no room -> GH_IDEM_FULL, and
 * nothing is recorded: the stage refuses (503) rather than forget a key
 * that may come back. Values are copied in and out under the shard lock;
 * a value is at most a record (record.h). */
#ifndef GH_IDEM_TABLE_H
#define GH_IDEM_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "idem/record.h"

#define GH_IDEM_PROBE 16

enum gh_idem_table_result {
    GH_IDEM_NEW,    /* claimed: the value is recorded until its expiry */
    GH_IDEM_EXISTS, /* a live value is there: *old is a malloc'ed copy */
    GH_IDEM_FULL,   /* no room (slots or bytes): nothing recorded */
    GH_IDEM_NOMEM,  /* out of memory: nothing recorded */
};

struct gh_idem_table;

/* A table of at least <slots> slots (rounded up to a power of two, at least
 * 64 * GH_IDEM_PROBE) holding at most <max_bytes> bytes of values. NULL
 * when out of memory. */
struct gh_idem_table *gh_idem_table_new(size_t slots, uint64_t max_bytes);
void gh_idem_table_free(struct gh_idem_table *t);

/* Any thread. Records <val> for <digest> until <now_ms> + <ttl_ms>, unless
 * a live value is there (SET NX). <headroom> bytes must be free beyond the
 * value, for the answer that will replace it (the route's max_response):
 * else GH_IDEM_FULL. */
enum gh_idem_table_result gh_idem_table_claim(struct gh_idem_table *t,
                                              const uint8_t digest[GH_IDEM_DIGEST], const char *val,
                                              size_t len, uint64_t headroom, uint64_t now_ms,
                                              uint64_t ttl_ms, char **old, size_t *oldlen);

/* Replaces the live value of <digest> with <val> (expiry <now_ms> +
 * <ttl_ms>) only when it is <expect> byte for byte. 1 replaced, 0 not (it
 * changed, expired, or the bytes would pass max_bytes), -1 out of memory. */
int gh_idem_table_set_if(struct gh_idem_table *t, const uint8_t digest[GH_IDEM_DIGEST],
                         const char *expect, size_t elen, const char *val, size_t len,
                         uint64_t now_ms, uint64_t ttl_ms);

/* Deletes the value of <digest> when it is <expect> byte for byte. */
void gh_idem_table_del_if(struct gh_idem_table *t, const uint8_t digest[GH_IDEM_DIGEST],
                          const char *expect, size_t elen);

/* Frees the values of expired slots (takes every shard lock in turn). */
void gh_idem_table_sweep(struct gh_idem_table *t, uint64_t now_ms);

/* Live records and bytes held at <now_ms> (every shard lock: tests and
 * metrics only). */
size_t gh_idem_table_live(struct gh_idem_table *t, uint64_t now_ms, uint64_t *bytes);

#endif
