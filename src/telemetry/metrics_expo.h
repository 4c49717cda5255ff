/* Metrics exposition: families and samples written into one growing buffer,
 * in the Prometheus text format 0.0.4 or in OpenMetrics 1.0.
 *
 * The two formats differ only in a few places, all handled here: an
 * OpenMetrics counter's TYPE line names the family without "_total" (its
 * samples keep it), *_info families are of type "info" (text: gauge),
 * HELP text escapes '"' too, integral histogram bounds are written "1.0",
 * and the body ends with "# EOF". Label values are escaped (\\, \", \n)
 * in both. Numbers are formatted without snprintf except for the few
 * fractional gauges (gh_expo_gauge_f64).
 *
 * The buffer is capped (GH_EXPO_MAX_BYTES); past it, or when memory runs
 * out, <failed> is set and nothing more is written. */
#ifndef GH_TELEMETRY_METRICS_EXPO_H
#define GH_TELEMETRY_METRICS_EXPO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/str.h"
#include "telemetry/metrics.h"

#define GH_EXPO_MAX_BYTES (64u * 1024 * 1024)

#define GH_EXPO_CT_TEXT   "text/plain; version=0.0.4; charset=utf-8"
#define GH_EXPO_CT_OM     "application/openmetrics-text; version=1.0.0; charset=utf-8"

enum gh_expo_type {
    GH_EXPO_COUNTER,
    GH_EXPO_GAUGE,
    GH_EXPO_HISTOGRAM,
    GH_EXPO_INFO,
    GH_EXPO_SUMMARY,
};

struct gh_expo {
    char *data; /* owned; free() it (gh_expo_release) */
    size_t len, cap;
    bool openmetrics;
    bool failed;
    /* the current family, for sample names */
    const char *family;
    enum gh_expo_type type;
};

struct gh_label {
    const char *name;
    gh_str value;
};

void gh_expo_init(struct gh_expo *e, bool openmetrics);
void gh_expo_release(struct gh_expo *e);

/* Starts family <name>: counters without "_total", info families without
 * "_info" (both are added to the samples). <help> is escaped. */
void gh_expo_family(struct gh_expo *e, const char *name, enum gh_expo_type type, const char *help);

/* Samples of the current family; <labels> may be NULL when <nlabels> is 0. */
void gh_expo_counter(struct gh_expo *e, const struct gh_label *labels, size_t nlabels, uint64_t v);
void gh_expo_gauge_u64(struct gh_expo *e, const struct gh_label *labels, size_t nlabels,
                       uint64_t v);
void gh_expo_gauge_i64(struct gh_expo *e, const struct gh_label *labels, size_t nlabels, int64_t v);
/* Fractional gauges (ratios): "%.17g"-style, shortest round-trip not needed. */
void gh_expo_gauge_f64(struct gh_expo *e, const struct gh_label *labels, size_t nlabels, double v);
/* A gauge or counter sample whose value is <ns> nanoseconds written as seconds. */
void gh_expo_gauge_seconds(struct gh_expo *e, const struct gh_label *labels, size_t nlabels,
                           uint64_t ns);
void gh_expo_counter_seconds(struct gh_expo *e, const struct gh_label *labels, size_t nlabels,
                             uint64_t ns);
/* An info sample (value 1). */
void gh_expo_info(struct gh_expo *e, const struct gh_label *labels, size_t nlabels);
/* A histogram from per-bucket (not cumulative) counts and a sum in ns,
 * written as cumulative _bucket samples, _sum in seconds, and _count. */
void gh_expo_histogram(struct gh_expo *e, const struct gh_label *labels, size_t nlabels,
                       const uint64_t buckets[GH_METRICS_NBUCKETS], uint64_t sum_ns);
/* A summary without quantiles: _sum <sum> and _count <count> (integers). */
void gh_expo_summary(struct gh_expo *e, const struct gh_label *labels, size_t nlabels, uint64_t sum,
                     uint64_t count);
/* Ends the body ("# EOF" in OpenMetrics). */
void gh_expo_finish(struct gh_expo *e);

/* Appends raw bytes; also used by tests. */
void gh_expo_raw(struct gh_expo *e, const char *p, size_t n);
/* Appends <ns> as seconds with up to nine decimals, trailing zeros cut
 * ("1.5", "0.000123", "2"). */
void gh_expo_seconds(struct gh_expo *e, uint64_t ns);

#endif
