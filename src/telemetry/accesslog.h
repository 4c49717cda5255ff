/* Access log: one JSON line per request, naming the node (`"node"`). Workers format lines into
 * their own 64 KiB buffer (no lock, no system call per request) and hand full buffers, or partial
 * ones every 250 ms, to one writer thread, which does the disk I/O. SIGUSR1 makes the writer reopen
 * the file (log rotation). The queue is bounded: when the disk cannot keep up, whole buffers are
 * dropped and counted rather than stalling requests. Only the path of the target is logged, never
 * the query string (it may carry secrets). */
#ifndef GH_TELEMETRY_ACCESSLOG_H
#define GH_TELEMETRY_ACCESSLOG_H

#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"
#include "core/err.h"

struct gh_accesslog;
struct gh_accesslog_buf;
struct gh_worker;
struct gh_req;

/* Opens the sink named by <cfg> ("stdout", "stderr" or a file) and starts
 * the writer thread; every line names <node> (the node id; NULL or "": no
 * "node" member). Returns NULL with <err> when the file cannot be opened. */
struct gh_accesslog *gh_accesslog_open(const struct gh_config_access_log *cfg, const char *node,
                                       struct gh_err *err);
/* Writes what is queued, stops the thread, closes the sink. */
void gh_accesslog_close(struct gh_accesslog *l);
/* Asks the writer to reopen its file (SIGUSR1). Thread-safe. */
void gh_accesslog_reopen(struct gh_accesslog *l);
/* A reload may name another path: the writer switches to it. Thread-safe. */
int gh_accesslog_configure(struct gh_accesslog *l, const struct gh_config_access_log *cfg,
                           struct gh_err *err);
uint64_t gh_accesslog_dropped(struct gh_accesslog *l);

struct gh_accesslog_buf *gh_accesslog_buf_new(struct gh_accesslog *l);
/* Hands what is buffered to the writer, then frees the buffer. */
void gh_accesslog_buf_free(struct gh_accesslog_buf *b);

/* Worker thread: appends the line for <req> (when logging is enabled in the
 * request's snapshot). */
void gh_accesslog_request(struct gh_worker *w, const struct gh_req *req);
/* Worker thread: hands a partial buffer to the writer (called on tick). */
void gh_accesslog_flush(struct gh_accesslog_buf *b);

#endif
