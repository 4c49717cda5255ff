/* The span exporter: the dispatcher thread drains the workers' trace rings
 * (trace.h), turns each finished request into its spans, and posts them in
 * batches to the OTLP/HTTP endpoint (`tracing.otlp_endpoint`, protobuf or
 * JSON) through libcurl's multi interface, a few calls at a time.
 *
 * A batch refused with 429, 502, 503 or 504, or lost to a network error,
 * is retried with exponential backoff (1 s doubling to 30 s, with jitter,
 * or the server's Retry-After when longer) for up to `tracing.max_retry`;
 * other refusals drop it. While batches wait, the rings fill; a full ring
 * drops new records at the worker. Every lost span is counted, by reason.
 * At shutdown what is queued is sent, for at most two seconds. */
#ifndef GH_TELEMETRY_TRACER_H
#define GH_TELEMETRY_TRACER_H

#include <stdint.h>

#include "config/config.h"
#include "core/err.h"

struct gh_tracer;
struct gh_trace_worker;

/* Totals for metrics (summed over workers where they are kept there). */
struct gh_tracer_counts {
    uint64_t spans_exported;       /* accepted by the endpoint */
    uint64_t spans_dropped_queue;  /* a worker's ring was full */
    uint64_t spans_dropped_export; /* refused, or retries ran out */
    uint64_t exports_success;
    uint64_t exports_retry;
    uint64_t exports_failure;
    uint64_t records_pending; /* in the rings now */
};

/* Rings for <nworkers> workers sized by cfg->tracing.queue_size (fixed for
 * the process's life), and the export settings. NULL with <err>. */
struct gh_tracer *gh_tracer_new(const struct gh_config *cfg, int nworkers, struct gh_err *err);
/* Starts the dispatcher thread. GH_OK or GH_ERROR. */
int gh_tracer_start(struct gh_tracer *t, struct gh_err *err);
/* A reload: the endpoint, encoding, service name, batch size and timeouts
 * apply to the next batch. Thread-safe. */
void gh_tracer_configure(struct gh_tracer *t, const struct gh_config *cfg);
/* Worker <i>'s side (its ring). */
struct gh_trace_worker *gh_tracer_worker(struct gh_tracer *t, int i);
void gh_tracer_counts(struct gh_tracer *t, struct gh_tracer_counts *out);
/* Sends what is queued (two seconds at most), stops the thread, frees. The
 * workers must have stopped. */
void gh_tracer_free(struct gh_tracer *t);

#endif
