/* A failure that repeats while something it needs is down (the store
 * restarting, a failover): logged as an episode, not as one line per try.
 * The first failure is logged as it comes; then at most one line every
 * GH_LOG_EVERY_S (gh_log_due), saying how many tries failed meanwhile; and one
 * line when a try succeeds again, saying how long it lasted. A poller
 * that fails four times a second for a minute writes 7 lines, not 240.
 *
 * One episode per thread that reports it (it is not locked): a field of the
 * service that owns the thread. Zeroed, it is "not failing". */
#ifndef GH_CORE_LOG_EPISODE_H
#define GH_CORE_LOG_EPISODE_H

#include <stdint.h>

struct gh_log_episode {
    uint64_t first_ns;    /* the episode's first failure; 0: not failing */
    uint64_t last_log_ns; /* its last line */
    uint64_t failures;    /* in the episode */
    uint64_t unlogged;    /* since its last line */
};

/* A failure: the warning <fmt>, when this episode's rhythm allows a line
 * (with the count of failures left out since the last one). */
void gh_log_episode_fail(struct gh_log_episode *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A success: ends a running episode with one info line, "<what>: works
 * again after N failures over S s"; nothing when none was running. */
void gh_log_episode_ok(struct gh_log_episode *e, const char *what);

#endif
