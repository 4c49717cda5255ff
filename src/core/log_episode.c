/* Failures logged as episodes (see log_episode.h). */
#include "core/log_episode.h"

#include <stdarg.h>
#include <stdio.h>

#include "core/clock.h"
#include "core/log.h"

void gh_log_episode_fail(struct gh_log_episode *e, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    e->failures++;
    if (e->first_ns == 0) e->first_ns = gh_now_ns(); /* its first line is due at once */
    if (!gh_log_due(&e->last_log_ns)) {
        e->unlogged++;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (e->unlogged > 0)
        gh_log_warn("%s (%llu more failure(s) since the last such line; this line repeats at "
                    "most every %d s while it lasts)",
                    msg, (unsigned long long)e->unlogged, GH_LOG_EVERY_S);
    else
        gh_log_warn("%s (this line repeats at most every %d s while it lasts)", msg,
                    GH_LOG_EVERY_S);
    e->unlogged = 0;
}

void gh_log_episode_ok(struct gh_log_episode *e, const char *what)
{
    if (e->first_ns == 0) return;
    gh_log_info("%s: works again after %llu failure(s) over %.1f s", what,
                (unsigned long long)e->failures, (double)(gh_now_ns() - e->first_ns) / 1e9);
    *e = (struct gh_log_episode){0};
}
