/* Webhook retention passes (retention.h). */
#include "hooks/retention.h"

#include <inttypes.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"

#define NS_PER_MS       1000000ull
#define INTERVAL_MIN_NS (1000ull * NS_PER_MS)
#define INTERVAL_MAX_NS (600000ull * NS_PER_MS)

uint64_t gh_hooks_retention_interval_ns(uint64_t retention_ms)
{
    uint64_t ns = retention_ms / 8 > INTERVAL_MAX_NS / NS_PER_MS ? INTERVAL_MAX_NS
                                                                 : retention_ms / 8 * NS_PER_MS;
    return ns < INTERVAL_MIN_NS ? INTERVAL_MIN_NS : ns;
}

void gh_hooks_retention_init(struct gh_hooks_retention *r, uint64_t retention_ms, uint64_t now_ns)
{
    memset(r, 0, sizeof(*r));
    r->next_ns = now_ns + gh_hooks_retention_interval_ns(retention_ms);
}

static void add(struct gh_store_hook_purged *to, const struct gh_store_hook_purged *s)
{
    to->messages += s->messages;
    to->deliveries += s->deliveries;
    to->attempts += s->attempts;
    to->undelivered += s->undelivered;
    to->kept += s->kept;
}

/* The duration in the words of the config ("30d", "12h", "90s", "1500ms"). */
static void duration(uint64_t ms, char out[32])
{
    static const struct {
        uint64_t ms;
        const char *unit;
    } units[] = {{86400000, "d"}, {3600000, "h"}, {60000, "m"}, {1000, "s"}};

    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (ms % units[i].ms == 0) {
            snprintf(out, 32, "%" PRIu64 "%s", ms / units[i].ms, units[i].unit);
            return;
        }
    snprintf(out, 32, "%" PRIu64 "ms", ms);
}

static void end_pass(struct gh_hooks_retention *r, uint64_t retention_ms, uint64_t now_ns)
{
    const struct gh_store_hook_purged *p = &r->pass;
    char d[32];

    if (p->messages > 0 || p->kept > 0) {
        duration(retention_ms, d);
        gh_log_info("webhooks: retention: %" PRIu64 " messages older than %s deleted, with %" PRIu64
                    " deliveries (%" PRIu64 " never delivered) and %" PRIu64 " attempts; %" PRIu64
                    " kept for now (a delivery in flight or active since)",
                    p->messages, d, p->deliveries, p->undelivered, p->attempts, p->kept);
    }
    r->active = false;
    r->next_ns = now_ns + gh_hooks_retention_interval_ns(retention_ms);
}

bool gh_hooks_retention_step(struct gh_hooks_retention *r, struct gh_store *st, const char *owner,
                             uint64_t retention_ms, uint64_t now_ns,
                             struct gh_store_hook_purged *step, int *rc)
{
    struct gh_err err = {0};

    if (now_ns < r->next_ns) return false;
    if (!r->active) {
        r->active = true;
        r->after_seq = 0;
        r->cutoff = (int64_t)gh_wall_ms() - (int64_t)retention_ms;
        memset(&r->pass, 0, sizeof(r->pass));
    }
    *rc = gh_store_hook_purge(st, owner, r->after_seq, r->cutoff, GH_HOOKS_RETENTION_BATCH, step,
                              &err);
    if (*rc != GH_OK) {
        gh_log_warn("webhooks: retention: %s (the pass stops; the next one goes on)", err.msg);
        end_pass(r, retention_ms, now_ns);
        return true;
    }
    add(&r->pass, step);
    r->after_seq = step->last_seq;
    if (step->more)
        r->next_ns = now_ns; /* the next step at the dispatcher's next turn */
    else
        end_pass(r, retention_ms, now_ns);
    return true;
}
