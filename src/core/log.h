/* The gateway's own log (errors, warnings, lifecycle), as one line per event
 * on stderr: "2026-11-21T23:59:01.123Z gw-1 error config: ...", where "gw-1"
 * is the node id (config `node.id`) once the runtime has set it; before that
 * (config errors, CLI commands) the node is left out:
 * "2026-11-21T23:59:01.123Z error config: ...". Each line is one
 * write(2), so lines from several threads never interleave, and one
 * record: control bytes in a message (a library's line breaks, a value a
 * client sent) are written as spaces. Access logs are
 * separate (telemetry/accesslog.h). Never pass secrets to these functions. */
#ifndef GH_CORE_LOG_H
#define GH_CORE_LOG_H

#include <stdbool.h>
#include <stdint.h>

#include "core/clock.h"

enum gh_log_level { GH_LOG_DEBUG, GH_LOG_INFO, GH_LOG_WARN, GH_LOG_ERROR };

/* Sets the lowest level written; from config `log_level`. Thread-safe. */
void gh_log_set_level(enum gh_log_level level);
int gh_log_level_parse(const char *s, enum gh_log_level *out);

/* Names the node in every later line (a copy of <id>, clipped to 63 bytes;
 * NULL or "" leaves it out again). Call before other threads log: the id
 * is fixed for the process's life, so it is set once, at start. */
void gh_log_set_node(const char *id);

void gh_log(enum gh_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define gh_log_debug(...) gh_log(GH_LOG_DEBUG, __VA_ARGS__)
#define gh_log_info(...)  gh_log(GH_LOG_INFO, __VA_ARGS__)
#define gh_log_warn(...)  gh_log(GH_LOG_WARN, __VA_ARGS__)
#define gh_log_error(...) gh_log(GH_LOG_ERROR, __VA_ARGS__)

/* A line that would repeat (a store or a peer down, a fallback taken on
 * every request) is written at most once every GH_LOG_EVERY_S per owner
 * of <last_ns>, its last line's time (0: none yet). Whether one is due
 * now; if so, *<last_ns> becomes now. One thread per <last_ns>. For a
 * failure with an end, log_episode.h also counts and says when it ends. */
#define GH_LOG_EVERY_S 10

static inline bool gh_log_due(uint64_t *last_ns)
{
    uint64_t now = gh_now_ns();

    if (*last_ns != 0 && now - *last_ns < (uint64_t)GH_LOG_EVERY_S * 1000000000ull) return false;
    *last_ns = now;
    return true;
}

#endif
