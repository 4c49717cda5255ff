/* The retry schedule of webhook deliveries (docs/webhooks.md, "Retries"):
 * when the next attempt is due, which answers are worth another attempt,
 * and the Retry-After header.
 *
 * A schedule is a list of delays: entry 0 is the delay of the first attempt
 * after the message is accepted (0 = at once), entry k the delay after the
 * k-th failed attempt. So a schedule of n entries allows n attempts; the
 * default is 0s, 5s, 5m, 30m, 2h, 5h, 10h, 10h. Each delay is spread by
 * +/- <jitter> (a fraction) so that endpoints that fail together do not
 * come back together. Pure functions. */
#ifndef GH_HOOKS_SCHEDULE_H
#define GH_HOOKS_SCHEDULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The delay before the attempt that follows <attempts> attempts already made
 * (0 = the first attempt), or false when the schedule of <n> entries is
 * used up. <u> is a uniform random value in [0, 1) for the jitter; <jitter>
 * is in [0, 1]. The delay is never negative. */
bool gh_hooks_schedule_delay(const uint64_t *steps_ms, size_t n, unsigned attempts, double jitter,
                             double u, uint64_t *delay_ms);

/* Whether an attempt that ended with HTTP <status> (0: no answer, a network
 * error or a timeout) may be retried: network errors, 408, 429 and 5xx.
 * 2xx is success; other answers (3xx: redirects are not followed; 4xx) fail
 * the delivery at once. */
bool gh_hooks_retryable(long status);
bool gh_hooks_success(long status);

/* Parses a Retry-After value (RFC 9110 §10.2.3): delay-seconds or an
 * HTTP-date, relative to <now_ms> (unix ms). Sets *delay_ms (0 for a date
 * in the past) and returns true; false for anything else. Delays are capped
 * at 24 h: a receiver cannot park a delivery for longer. */
bool gh_hooks_retry_after(const char *value, int64_t now_ms, uint64_t *delay_ms);

#endif
