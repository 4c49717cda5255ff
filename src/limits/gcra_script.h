/* The Lua script the Redis-backed rate limiter runs with EVALSHA: the GCRA
 * step for every rule of a request, all or nothing, on Redis's clock.
 *
 * KEYS: one per rule. ARGV: emission and tau per rule, in microseconds.
 * Returns {allowed, index of the deciding rule (1-based), retry_after_us,
 * remaining, reset_us}: for a denial the rule that refused, else the rule
 * with the least room left. Shared by the limits stage and
 * bench/redis_decisions_bench.c, so both run the same text. */
#ifndef GH_LIMITS_GCRA_SCRIPT_H
#define GH_LIMITS_GCRA_SCRIPT_H

extern const char gh_gcra_script[];

#endif
