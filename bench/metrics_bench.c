/* Micro-benchmark of a /metrics scrape (src/telemetry): the body that the
 * admin worker writes for about 2,000 series (80 routes, 10 upstreams, 20
 * tenants, summed over 4 workers), in the text format and in OpenMetrics.
 * Issue 6 asks for at most 5 ms per scrape of 2,000 series.
 *
 *   make bench-metrics            (or build/metrics_bench [iterations])
 *
 * Prints "metrics_scrape format=F series=N bytes=B median_us=M p99_us=P". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "telemetry/metrics.h"
#include "telemetry/metrics_expo.h"
#include "telemetry/metrics_scrape.h"
#include "telemetry/metrics_tenants.h"

enum { WORKERS = 4, ROUTES = 80, UPSTREAMS = 10, TENANTS = 20 };

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static size_t count_series(const struct gh_expo *e)
{
    size_t n = 0;
    for (size_t i = 0; i < e->len; i++)
        if ((i == 0 || e->data[i - 1] == '\n') && e->data[i] != '#') n++;
    return n;
}

int main(int argc, char **argv)
{
    int iters = argc > 1 ? atoi(argv[1]) : 500;
    struct gh_metrics *svc = gh_metrics_new();
    struct gh_metrics_worker *ws[WORKERS];
    struct gh_mtenants *tables[WORKERS];
    uint64_t *t = calloc((size_t)iters, sizeof(*t));
    char name[32];

    if (svc == NULL || t == NULL || iters <= 0) return 1;
    for (int w = 0; w < WORKERS; w++) {
        ws[w] = gh_metrics_worker_new();
        tables[w] = ws[w]->tenants;
    }
    /* Traffic on every route (GET 2xx and 4xx), upstream and tenant. */
    for (int i = 0; i < ROUTES; i++) {
        snprintf(name, sizeof(name), "route-%d", i);
        int s = gh_metrics_names_slot(&svc->routes, name);
        for (int w = 0; w < WORKERS; w++) {
            gh_mc_add(&ws[w]->routes[s].requests[GH_MM_GET][GH_MC_2XX], 1000 + (uint64_t)i);
            gh_mc_add(&ws[w]->routes[s].requests[GH_MM_GET][GH_MC_4XX], 7);
            gh_mc_add(&ws[w]->routes[s].bytes_in, 123456);
            gh_mc_add(&ws[w]->routes[s].bytes_out, 654321);
            gh_mhist_observe(&ws[w]->routes[s].duration, 1234567 * (uint64_t)(i + 1));
        }
    }
    for (int i = 0; i < UPSTREAMS; i++) {
        snprintf(name, sizeof(name), "upstream-%d", i);
        int s = gh_metrics_names_slot(&svc->upstreams, name);
        for (int w = 0; w < WORKERS; w++) {
            gh_mc_add(&ws[w]->upstreams[s].requests[GH_MC_2XX], 5000);
            gh_mc_add(&ws[w]->upstreams[s].requests[GH_MC_ERROR], 3);
            gh_mc_add(&ws[w]->upstreams[s].conns_new, 10);
            gh_mhist_observe(&ws[w]->upstreams[s].duration, 2345678);
        }
    }
    for (int i = 0; i < TENANTS + 30; i++) {
        snprintf(name, sizeof(name), "tenant-%04d", i);
        for (int w = 0; w < WORKERS; w++)
            gh_mtenants_count(tables[w], name, strlen(name), i % 3 ? GH_MC_2XX : GH_MC_4XX);
    }

    for (int om = 0; om <= 1; om++) {
        struct gh_metrics_sticky sticky = {0};
        size_t series = 0, bytes = 0;
        for (int k = 0; k < iters; k++) {
            struct gh_expo e;
            struct gh_mtenant_view v;
            uint64_t t0 = gh_now_ns();
            gh_expo_init(&e, om);
            if (gh_mtenants_collect(tables, WORKERS, &sticky, TENANTS, &v) != GH_OK) return 1;
            gh_metrics_write_workers(&e, svc, ws, WORKERS, &v);
            gh_expo_finish(&e);
            t[k] = gh_now_ns() - t0;
            if (k == 0) {
                series = count_series(&e);
                bytes = e.len;
            }
            free(v.rows);
            gh_expo_release(&e);
        }
        qsort(t, (size_t)iters, sizeof(*t), cmp_u64);
        printf("metrics_scrape format=%s series=%zu bytes=%zu median_us=%.1f p99_us=%.1f\n",
               om ? "openmetrics" : "text", series, bytes, (double)t[iters / 2] / 1000.0,
               (double)t[(size_t)iters * 99 / 100] / 1000.0);
        for (uint32_t i = 0; i < sticky.n; i++)
            free(sticky.ids[i]);
        free(sticky.ids);
    }
    for (int w = 0; w < WORKERS; w++)
        gh_metrics_worker_free(ws[w]);
    gh_metrics_free(svc);
    free(t);
    return 0;
}
