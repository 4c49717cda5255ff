/* Usage retention's store call (gh_store_usage_purge): how long one batch of
 * 1,000 takes, over N old day rows (TENANTS tenants x the 365 days of 2020)
 * and one limit event per tenant and month of 2020, all older than the
 * cutoff, deleted batch by batch as a retention pass does.
 *
 *   build/usage_purge_bench [N] [STORE]   (make bench-usage-purge)
 *
 * STORE: a SQLite file to create (default: a fresh one in /tmp) or a
 * PostgreSQL URL as the gateway's login role, on a database `gatehouse
 * postgres init` made (its usage and limit_events tables are emptied
 * first: the caller's). Prints rows deleted, calls, and ms per call. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_store.h"
#include "store/store.h"

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int fill(struct gh_store *st, size_t n, struct gh_err *err)
{
    static struct gh_store_usage rows[1000];
    struct gh_store_limit_event ev;
    bool inserted;

    for (size_t done = 0; done < n;) {
        size_t k = 0;
        for (; k < 1000 && done < n; k++, done++) {
            time_t t = 1577836800 + (time_t)(done % 365) * 86400; /* 2020-01-01 + d */
            struct tm tm;
            gmtime_r(&t, &tm);
            memset(&rows[k], 0, sizeof(rows[k]));
            snprintf(rows[k].tenant_id, sizeof(rows[k].tenant_id), "tn_%06zu", done / 365);
            snprintf(rows[k].period, sizeof(rows[k].period), "%04u-%02u-%02u",
                     (unsigned)(tm.tm_year + 1900) % 10000, (unsigned)(tm.tm_mon + 1) % 100,
                     (unsigned)tm.tm_mday % 100);
            rows[k].requests = 1;
            if (tm.tm_mday == 1) { /* one event per tenant and month */
                memset(&ev, 0, sizeof(ev));
                memcpy(ev.tenant_id, rows[k].tenant_id, sizeof(ev.tenant_id));
                snprintf(ev.period, sizeof(ev.period), "%04u-%02u",
                         (unsigned)(tm.tm_year + 1900) % 10000, (unsigned)(tm.tm_mon + 1) % 100);
                snprintf(ev.metric, sizeof(ev.metric), "requests_per_month");
                ev.threshold = 80;
                ev.value = 80;
                ev.limit = 100;
                if (gh_store_limit_event_record(st, &ev, &inserted, err) != GH_OK) return -1;
            }
        }
        if (gh_store_usage_add(st, rows, k, err) != GH_OK) return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? (size_t)atol(argv[1]) : 100000;
    char path[64];
    struct gh_store_params p = {0};
    struct gh_store_usage_purged out;
    struct gh_store *st = NULL;
    struct gh_err err = {0};
    uint64_t usage = 0, events = 0;
    int batches = 0;
    double t0, t;

    if (bench_store_params(argc > 2 ? argv[2] : NULL, "usage-purge", path, &p) != 0) return 1;
    if (gh_store_open(&p, &st, &err) != GH_OK || gh_store_migrate(st, NULL, NULL, &err) != GH_OK ||
        fill(st, n, &err) != 0) {
        fprintf(stderr, "usage_purge_bench: %s\n", err.msg);
        return 1;
    }
    t0 = now_s();
    do {
        if (gh_store_usage_purge(st, "2023-11-14", "2023-11", GH_STORE_USAGE_PURGE_MAX, &out,
                                 &err) != GH_OK) {
            fprintf(stderr, "usage_purge_bench: %s\n", err.msg);
            return 1;
        }
        usage += out.usage;
        events += out.events;
        batches++;
    } while (out.usage == GH_STORE_USAGE_PURGE_MAX || out.events == GH_STORE_USAGE_PURGE_MAX);
    t = now_s() - t0;
    printf("%s: %llu usage rows and %llu limit events deleted in %d calls, %.3f s, "
           "%.2f ms per call\n",
           p.sqlite_path ? "sqlite" : "postgres", (unsigned long long)usage,
           (unsigned long long)events, batches, t, t * 1000 / batches);
    gh_store_close(st);
    bench_store_remove(path);
    return 0;
}
