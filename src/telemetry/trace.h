/* Tracing on the request path: the `trace` stage reads the caller's W3C
 * trace context and picks this request's ids; the proxy sends
 * `traceparent` (and `tracestate`) on with the upstream call's span as the
 * parent; when the request ends, one fixed-size record with the timings and
 * attributes of its spans (server, authentication, limits, upstream call)
 * goes into the worker's ring, which the dispatcher thread drains and
 * exports (src/telemetry/tracer.c).
 *
 * Cost on the request path: a few random numbers, no allocation, no lock,
 * no system call. A full ring drops the record and counts it. Without
 * `tracing.otlp_endpoint` nothing here runs and trace headers pass through
 * untouched. */
#ifndef GH_TELEMETRY_TRACE_H
#define GH_TELEMETRY_TRACE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "telemetry/tracectx.h"

struct gh_req;
struct gh_worker;
struct gh_span;

/* What one finished request leaves for the exporter. Strings are copied
 * (clipped at their field's size): the request's buffers are gone by the
 * time the dispatcher reads this. Times are Unix ns. */
struct gh_trace_rec {
    uint8_t trace_id[16];
    uint8_t parent_id[8]; /* the caller's span, when has_parent */
    uint8_t server_id[8];
    uint8_t auth_id[8];
    uint8_t limits_id[8];
    uint8_t upstream_id[8];
    uint8_t flags;
    bool has_parent, has_auth, has_limits, has_upstream;
    bool auth_ok, limits_ok;
    uint16_t status;    /* to the client */
    uint16_t up_status; /* from the upstream; 0 = none */
    uint16_t server_port, peer_port, up_port;
    uint8_t attempts;
    uint64_t t_start, t_end, t_auth0, t_auth1, t_lim0, t_lim1, t_up0, t_up1;
    uint8_t method_len, route_len, route_path_len, host_len, peer_len, tenant_len, up_host_len;
    uint8_t upstream_len, error_len, id_len, scheme_len;
    uint16_t path_len, ua_len, state_len;
    char method[24], route[96], route_path[128], host[128], peer[46], tenant[128];
    char up_host[96], upstream[64], error[48], id[64], scheme[6];
    char path[256], ua[256];
    char state[GH_TRACESTATE_MAX];
};

/* A worker's side of tracing: its ring (single producer: the worker;
 * single consumer: the dispatcher), random state for ids, and the offset
 * from the monotonic clock to Unix time, refreshed every tick. */
struct gh_trace_worker {
    _Atomic uint64_t head; /* next slot the worker writes */
    char pad1[56];
    _Atomic uint64_t tail; /* next slot the dispatcher reads */
    char pad2[56];
    _Atomic uint64_t dropped; /* records lost to a full ring (worker writes) */
    _Atomic uint64_t dropped_spans;
    uint64_t rng[4];
    int64_t mono_to_unix_ns;
    uint32_t mask; /* capacity - 1 (a power of two) */
    struct gh_trace_rec *slots;
};

/* Allocates a worker's side with room for <capacity> records (rounded up
 * to a power of two). NULL on out of memory. */
struct gh_trace_worker *gh_trace_worker_new(uint32_t capacity);
void gh_trace_worker_free(struct gh_trace_worker *tw);
/* Worker thread, each tick: refreshes the clock offset. */
void gh_trace_worker_tick(struct gh_trace_worker *tw);

/* The `trace` stage: reads traceparent/tracestate, picks ids and the
 * sampling decision. Never answers. */
void gh_trace_stage(struct gh_req *r);

/* Proxy: true when the upstream must not get the client's own trace
 * headers (the gateway writes its own). */
bool gh_trace_replaces_headers(const struct gh_req *r);
/* Proxy: the "traceparent: ...\r\n" (and "tracestate: ...\r\n") lines for
 * the upstream request, written at <out> (room for GH_TRACE_HEADERS_MAX
 * bytes). Returns the bytes written, 0 when tracing is off. */
#define GH_TRACE_HEADERS_MAX (GH_TRACEPARENT_LEN + GH_TRACESTATE_MAX + 32)
size_t gh_trace_upstream_headers(const struct gh_req *r, char *out);

/* The request ends (any way): hands its record to the ring when sampled
 * (or failed, with sample_errors). */
void gh_trace_request_end(struct gh_worker *w, struct gh_req *r);

/* Dispatcher: the record's spans (1 to 4: server, authentication, limits,
 * upstream call) into <out>. The server span's name is written into
 * <name_buf>, which must outlive <out>. Returns how many. */
size_t gh_trace_rec_spans(const struct gh_trace_rec *rec, struct gh_span *out, char *name_buf,
                          size_t name_size);

/* Dispatcher: up to <max> records waiting, oldest first, after the first
 * <skip> ones, contiguous in the ring at *out. They stay in place (the
 * worker does not reuse their slots) until gh_trace_worker_release.
 * Returns how many; fewer than waiting when the ring wraps. */
uint32_t gh_trace_worker_peek(struct gh_trace_worker *tw, uint64_t skip,
                              const struct gh_trace_rec **out, uint32_t max);
/* Dispatcher: gives the oldest <n> records' slots back to the worker. */
void gh_trace_worker_release(struct gh_trace_worker *tw, uint64_t n);
/* Dispatcher: records waiting. */
uint64_t gh_trace_worker_pending(struct gh_trace_worker *tw);

#endif
