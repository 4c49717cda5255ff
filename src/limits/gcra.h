/* GCRA (generic cell rate algorithm) arithmetic: the pure decision, with no
 * storage, locks or clock. ltable.h keeps the per-key state shared by workers.
 *
 * A limit is "count requests per period, burst at once": an idle key may make
 * <burst> requests at the same instant, then one every emission_ns
 * (period / count). Over a window W that starts idle, about burst + W * rate
 * requests are allowed.
 *
 * State is one number per key, the theoretical arrival time (tat) in the
 * caller's monotonic nanoseconds; 0 means "fresh". Any tat <= now behaves
 * exactly like a fresh key, so a table may drop or reuse such entries at any
 * time without changing a decision (this is what makes eviction free).
 *
 * gh_gcra_params_init refuses count == 0, period == 0, burst == 0, a rate
 * finer than one request per nanosecond (emission would be 0), and limits
 * whose burst window (burst + 1) * emission exceeds GH_GCRA_MAX_WINDOW_NS
 * (about 146 years), so that tat + emission never overflows for any
 * monotonic clock reading below 2^63 ns. emission is period / count rounded
 * down: when count does not divide period the sustained rate is above
 * count/period by a relative error below 1/emission_ns (3 per second runs
 * one part in 3e8 fast), never below it. */
#ifndef GH_LIMITS_GCRA_H
#define GH_LIMITS_GCRA_H

#include <stdbool.h>
#include <stdint.h>

#include "core/err.h"

#define GH_GCRA_MAX_WINDOW_NS (UINT64_C(1) << 62)

struct gh_gcra_params {
    uint64_t emission_ns; /* what one request costs: period / count */
    uint64_t tau_ns;      /* burst * emission_ns: how far tat may run ahead of now */
    uint32_t burst;
};

struct gh_gcra_result {
    bool allowed;
    uint32_t remaining;      /* requests still allowed right now, after this one */
    uint64_t retry_after_ns; /* 0 when allowed; else time until one would be */
    uint64_t reset_ns;       /* time until the key is back to its full burst */
};

/* Fills <p> for "count per period_ns, burst at once". Returns GH_OK or
 * GH_ERROR (see the top comment for what is refused); <p> is untouched on
 * error. */
static inline int gh_gcra_params_init(struct gh_gcra_params *p, uint64_t count, uint64_t period_ns,
                                      uint32_t burst)
{
    if (count == 0 || period_ns == 0 || burst == 0) return GH_ERROR;
    uint64_t emission = period_ns / count;
    if (emission == 0) return GH_ERROR;
    /* (burst + 1) * emission <= MAX, written as a division so it cannot wrap. */
    if (emission > GH_GCRA_MAX_WINDOW_NS / ((uint64_t)burst + 1)) return GH_ERROR;
    p->emission_ns = emission;
    p->tau_ns = (uint64_t)burst * emission;
    p->burst = burst;
    return GH_OK;
}

/* Requests that fit between <tat> and now + tau, i.e. how many more would be
 * allowed at <now_ns>. Clamped at 0: with several threads a caller may bring
 * a now slightly older than the one that set tat, so tat - now can exceed
 * tau by a little. */
static inline uint32_t gh_gcra_remaining(uint64_t tat, uint64_t now_ns,
                                         const struct gh_gcra_params *p)
{
    uint64_t ahead = tat > now_ns ? tat - now_ns : 0;
    if (ahead >= p->tau_ns) return 0;
    return (uint32_t)((p->tau_ns - ahead) / p->emission_ns);
}

/* One decision at <now_ns> for the key whose state is *tat (0 = fresh).
 * Allowed: *tat advances by one emission. Denied: *tat is unchanged, so
 * denied requests cost nothing and a key cannot dig itself deeper. */
static inline void gh_gcra_step(uint64_t *tat, uint64_t now_ns, const struct gh_gcra_params *p,
                                struct gh_gcra_result *out)
{
    uint64_t t = *tat > now_ns ? *tat : now_ns;
    uint64_t next = t + p->emission_ns;
    /* next > now always (t >= now, emission > 0), so next - now cannot wrap. */
    uint64_t ahead = next - now_ns;

    if (ahead > p->tau_ns) {
        out->allowed = false;
        out->retry_after_ns = ahead - p->tau_ns;
        out->remaining = 0;
        out->reset_ns = *tat > now_ns ? *tat - now_ns : 0;
        return;
    }
    *tat = next;
    out->allowed = true;
    out->retry_after_ns = 0;
    out->remaining = gh_gcra_remaining(next, now_ns, p);
    out->reset_ns = ahead;
}

#endif
