/* Process metrics (process_* of docs/metrics.md), read from /proc/self and
 * getrlimit when /metrics is scraped, on the admin worker: these are
 * system calls and file reads, never on a data-plane worker. */
#ifndef GH_TELEMETRY_PROCSTAT_H
#define GH_TELEMETRY_PROCSTAT_H

#include <stdbool.h>
#include <stdint.h>

struct gh_procstat {
    uint64_t cpu_ns; /* user + system */
    uint64_t rss_bytes;
    uint64_t vsize_bytes;
    uint64_t open_fds;
    uint64_t max_fds; /* the soft RLIMIT_NOFILE */
    uint64_t threads;
    uint64_t start_time_ms; /* wall clock, Unix ms */
};

/* Fills <out>; fields that could not be read stay 0. Returns false when
 * /proc/self/stat could not be read at all. */
bool gh_procstat_read(struct gh_procstat *out);

#endif
