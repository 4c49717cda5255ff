/* The table of webhook messages already accepted, so that a captured
 * request sent again within its window is refused (replay protection).
 *
 * One table per process, shared by all workers: 64 shards, each a mutex
 * over a fixed array of 16-byte slots {keyed SipHash of the message's
 * replay key, expiry in wall seconds}. A key lives in a window of
 * GH_REPLAY_PROBE slots of its shard; an expired slot is free again, so the
 * table needs no sweeper and the request path allocates nothing.
 *
 * When a key's whole window holds unexpired entries the table answers
 * GH_REPLAY_FULL and records nothing: the caller refuses the request (503)
 * rather than forget an id that may come back. Hash collisions (64-bit,
 * seeded at random per process) can only refuse a genuine message, never
 * let a replay through.
 *
 * Only this node's messages are remembered here. With
 * inbound_webhooks.replay_store: redis the verify stage also records them
 * in Redis for every node (replay_redis.h); this table then still answers
 * first (a message this node holds is a replay without a round trip) and
 * alone while Redis is unavailable (on_redis_error: local), when a replay
 * sent to another node passes.
 * NEEDSWORK: messages accepted during an outage are not copied to Redis
 * when it comes back, so until their expiry other nodes do not know them;
 * a replay journal pushed on reconnect would settle it, if outages with
 * replays across nodes show up. */
#ifndef GH_HOOKS_REPLAY_H
#define GH_HOOKS_REPLAY_H

#include <stddef.h>
#include <stdint.h>

#define GH_REPLAY_PROBE 32

enum gh_replay_result {
    GH_REPLAY_NEW,  /* recorded until its expiry */
    GH_REPLAY_SEEN, /* recorded before and not expired: a replay */
    GH_REPLAY_FULL, /* no free slot for it: refuse, do not forget */
};

struct gh_replay;

/* A table of at least <capacity> slots (rounded up to a power of two, at
 * least 64 * GH_REPLAY_PROBE). NULL when out of memory. */
struct gh_replay *gh_replay_new(size_t capacity);
void gh_replay_free(struct gh_replay *t);

/* Any thread: records <key> (<len> bytes) until wall second <expires_s>,
 * unless it is there and alive at <now_s>. One shard lock, at most
 * GH_REPLAY_PROBE slots visited. */
enum gh_replay_result gh_replay_check_add(struct gh_replay *t, const void *key, size_t len,
                                          int64_t now_s, int64_t expires_s);

/* The same in two steps, for callers that may have to take a key back: the
 * table's hash of <prefix> (<plen> bytes, e.g. the route's name, so that
 * routes never share keys) followed by <key>, never 0; then the check. */
uint64_t gh_replay_hash(const struct gh_replay *t, const void *prefix, size_t plen, const void *key,
                        size_t len);
enum gh_replay_result gh_replay_check_add_hash(struct gh_replay *t, uint64_t h, int64_t now_s,
                                               int64_t expires_s);

/* Takes back a key recorded by gh_replay_check_add_hash: the message it
 * stood for was not delivered after all (the upstream failed, or a second
 * key of the same message could not be recorded), so the sender's retry
 * must pass. Nothing happens when the key is not there. */
void gh_replay_forget(struct gh_replay *t, uint64_t h);

/* Live entries at <now_s> (takes every shard lock: tests and metrics only). */
size_t gh_replay_live(struct gh_replay *t, int64_t now_s);

#endif
