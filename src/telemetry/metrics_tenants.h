/* Requests per tenant, for the top-N tenant series of /metrics.
 *
 * Each worker counts into its own bounded open-addressing table (one
 * writer, no lock): a tenant's slot is claimed by writing its id and then
 * publishing its hash with a release store, so the scraper, which reads the
 * hash with an acquire load, always sees a whole id. Slots are never freed;
 * a tenant that finds no slot (table full, or too many probes) is counted
 * in the table's overflow, which is exported as tenant="other".
 *
 * At scrape, gh_mtenants_collect() sums the workers' tables and applies the
 * sticky rule of docs/metrics.md: a tenant once given its own series keeps
 * it; while fewer than <top_n> tenants have one, the busiest others are
 * promoted; everything else is "other". */
#ifndef GH_TELEMETRY_METRICS_TENANTS_H
#define GH_TELEMETRY_METRICS_TENANTS_H

#include <stddef.h>
#include <stdint.h>

#include "telemetry/metrics.h"

#define GH_MTENANTS_SLOTS     4096 /* per worker; a power of two */
#define GH_MTENANTS_ID_MAX    128
#define GH_MTENANTS_PROBE_MAX 32

struct gh_mtenants *gh_mtenants_new(void);
void gh_mtenants_free(struct gh_mtenants *t);

/* Worker thread: one request of tenant <id> (<len> bytes) answered with
 * status class <cls> (GH_MC_*). Ids longer than GH_MTENANTS_ID_MAX count
 * as overflow. */
void gh_mtenants_count(struct gh_mtenants *t, const char *id, size_t len, unsigned cls);

/* One exported tenant. */
struct gh_mtenant_row {
    const char *id; /* NUL-terminated; lives as long as the sticky set */
    uint64_t codes[GH_MC_N];
};

/* What a scrape exports: the sticky tenants sorted by id, and the rest. */
struct gh_mtenant_view {
    struct gh_mtenant_row *rows;
    size_t nrows;
    uint64_t other[GH_MC_N];
};

/* Scraping thread, with <sticky> guarded by the caller (one scrape at a
 * time): sums <tables> (NULL entries skipped), promotes tenants into
 * <sticky> up to <top_n>, and fills <out> (free out->rows). Returns GH_OK or
 * GH_ERROR (out of memory; <out> is then empty). */
int gh_mtenants_collect(struct gh_mtenants *const *tables, size_t ntables,
                        struct gh_metrics_sticky *sticky, uint32_t top_n,
                        struct gh_mtenant_view *out);

#endif
