/* Failures logged as episodes (see log_episode.h). */
#include "core/log_episode.h"

#include <stdarg.h>
#include <stdio.h>

#include "core/clock.h"
#include "core/log.h"

#define EVERY_NS ((uint64_t)GH_LOG_EPISODE_EVERY_S * 1000000000ull)

void gh_log_episode_fail(struct gh_log_episode *e, const char *fmt, ...)
{
    uint64_t now = gh_now_ns();
    char msg[1024];
    va_list ap;

    e->failures++;
    if (e->first_ns == 0) {
        e->first_ns = now;
    } else if (now - e->last_log_ns < EVERY_NS) {
        e->unlogged++;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (e->unlogged > 0)
        gh_log_warn("%s (%llu more failure(s) since the last such line; this line repeats at "
                    "most every %d s while it lasts)",
                    msg, (unsigned long long)e->unlogged, GH_LOG_EPISODE_EVERY_S);
    else
        gh_log_warn("%s (this line repeats at most every %d s while it lasts)", msg,
                    GH_LOG_EPISODE_EVERY_S);
    e->last_log_ns = now;
    e->unlogged = 0;
}

void gh_log_episode_ok(struct gh_log_episode *e, const char *what)
{
    if (e->first_ns == 0) return;
    gh_log_info("%s: works again after %llu failure(s) over %.1f s", what,
                (unsigned long long)e->failures, (double)(gh_now_ns() - e->first_ns) / 1e9);
    *e = (struct gh_log_episode){0};
}
