/* The /metrics body: every family of docs/metrics.md, in its order, summed
 * over the data-plane workers. Runs on the scraping thread (the admin
 * worker), one scrape at a time (struct gh_metrics.scrape_mu). */
#ifndef GH_TELEMETRY_METRICS_SCRAPE_H
#define GH_TELEMETRY_METRICS_SCRAPE_H

#include <stddef.h>
#include <stdint.h>

#include "telemetry/metrics.h"
#include "telemetry/metrics_expo.h"
#include "telemetry/metrics_tenants.h"

struct gh_runtime;
struct gh_snapshot;

/* Writes the families kept in the workers' own storage: requests,
 * connections, TLS handshakes, upstreams, authentication, rate-limit rules,
 * and the tenant series of <tenants> (from gh_mtenants_collect). Series that
 * never counted anything are left out, except the label sets docs/metrics.md
 * lists in full (TLS results). Tests drive this without a runtime. */
void gh_metrics_write_workers(struct gh_expo *e, const struct gh_metrics *svc,
                              struct gh_metrics_worker *const *ws, size_t nws,
                              const struct gh_mtenant_view *tenants);

/* The whole body for <rt>, with the config of <snap> (the scraping
 * worker's). Returns GH_OK, or GH_ERROR when memory ran out. */
int gh_metrics_scrape(struct gh_runtime *rt, const struct gh_snapshot *snap, struct gh_expo *e);

#endif
