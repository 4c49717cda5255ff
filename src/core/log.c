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

/* The mutable statics of the project besides the runtime struct: log calls
 * come from places (config, CLI) that have no runtime at hand. The node's
 * " <id>" is formatted once, at start, so a line only copies it. */
static _Atomic int log_min_level = GH_LOG_INFO;
static char log_node[1 + 63 + 1];
static _Atomic size_t log_node_len;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void gh_log_set_level(enum gh_log_level level)
{
    atomic_store(&log_min_level, (int)level);
}

void gh_log_set_node(const char *id)
{
    size_t n = id ? strnlen(id, sizeof(log_node) - 2) : 0;

    atomic_store(&log_node_len, 0);
    log_node[0] = ' ';
    if (n > 0) memcpy(log_node + 1, id, n);
    atomic_store(&log_node_len, n > 0 ? n + 1 : 0);
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
    size_t n, node_len;
    va_list ap;

    if ((int)level < atomic_load_explicit(&log_min_level, memory_order_relaxed)) return;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(line + n, sizeof(line) - n, ".%03ldZ", ts.tv_nsec / 1000000);
    node_len = atomic_load(&log_node_len);
    memcpy(line + n, log_node, node_len);
    n += node_len;
    n += (size_t)snprintf(line + n, sizeof(line) - n, " %s ", level_names[level]);
    va_start(ap, fmt);
    int w = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
    va_end(ap);
    if (w < 0) return;
    size_t msg = n;
    n += (size_t)w;
    if (n > sizeof(line) - 2) n = sizeof(line) - 2;
    /* One record, one line: a message's own line breaks (libpq's carry
     * "\n\t" hints) and other control bytes (from a value a client sent)
     * become spaces, so no record can end early or forge the next one,
     * and trailing ones go. */
    for (size_t i = msg; i < n; i++)
        if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f) line[i] = ' ';
    while (n > msg && line[n - 1] == ' ')
        n--;
    line[n++] = '\n';
    ssize_t rc = write(STDERR_FILENO, line, n);
    (void)rc;
}
