/* Line-at-a-time logging to stderr. The level is the one piece of state that
 * every thread reads; it is an atomic inside this file, set once from the
 * runtime at start and on reload. */
#include "core/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The one mutable static in the project besides the runtime struct: log
 * calls come from places (config, CLI) that have no runtime at hand. */
static _Atomic int log_min_level = GH_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void gh_log_set_level(enum gh_log_level level)
{
    atomic_store(&log_min_level, (int)level);
}

int gh_log_level_parse(const char *s, enum gh_log_level *out)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, level_names[i]) == 0) {
            *out = (enum gh_log_level)i;
            return 0;
        }
    return -1;
}

void gh_log(enum gh_log_level level, const char *fmt, ...)
{
    char line[2048];
    struct timespec ts;
    struct tm tm;
    size_t n;
    va_list ap;

    if ((int)level < atomic_load_explicit(&log_min_level, memory_order_relaxed)) return;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(line + n, sizeof(line) - n, ".%03ldZ %s ", ts.tv_nsec / 1000000,
                          level_names[level]);
    va_start(ap, fmt);
    int w = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
    va_end(ap);
    if (w < 0) return;
    n += (size_t)w;
    if (n > sizeof(line) - 2) n = sizeof(line) - 2;
    line[n++] = '\n';
    ssize_t rc = write(STDERR_FILENO, line, n);
    (void)rc;
}
