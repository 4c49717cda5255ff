/* Time in the units the gateway uses. clock_gettime is served by the vDSO on
 * Linux, so these cost no system call on the request path. */
#ifndef GH_CORE_CLOCK_H
#define GH_CORE_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Monotonic nanoseconds, for durations and deadlines. */
static inline uint64_t gh_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Wall-clock milliseconds since the epoch, for timestamps in logs. */
static inline uint64_t gh_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000ull + (uint64_t)ts.tv_nsec / 1000000ull;
}

/* Sets *out to <ms> milliseconds from now on <clock>: the deadline of a
 * pthread_cond_timedwait on a condition variable of that clock. */
static inline void gh_deadline_ms(clockid_t clock, uint64_t ms, struct timespec *out)
{
    clock_gettime(clock, out);
    out->tv_sec += (time_t)(ms / 1000);
    out->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (out->tv_nsec >= 1000000000L) {
        out->tv_sec++;
        out->tv_nsec -= 1000000000L;
    }
}

#endif
