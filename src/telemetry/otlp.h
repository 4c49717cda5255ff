/* OTLP trace encoding: an ExportTraceServiceRequest with one ResourceSpans
 * and one ScopeSpans, in the OTLP/HTTP JSON encoding (hex ids, enums as
 * integers, 64-bit integers as decimal strings, lowerCamelCase keys) or the
 * binary protobuf encoding of opentelemetry-proto's trace.proto. The caller
 * owns every string.
 *
 * Both encodings carry the same data and leave out the same things: a
 * resource attribute whose value is empty, an empty scope version, an empty
 * trace state, the parent span id of a root span, an empty status message.
 * JSON always writes name, kind, both times, attributes, status.code and
 * flags (protobuf leaves their zero values out, as proto3 does). Strings
 * that are not valid UTF-8 are written with each bad byte replaced by
 * U+FFFD, in both encodings, so that a collector never refuses a batch
 * for one hostile header.
 *
 * Nothing here allocates except through <out>, and the protobuf encoder's
 * array of one size per span, freed before it returns. */
#ifndef GH_TELEMETRY_OTLP_H
#define GH_TELEMETRY_OTLP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/str.h"

/* OTLP's SpanKind values. */
enum gh_span_kind {
    GH_SPAN_INTERNAL = 1,
    GH_SPAN_SERVER = 2,
    GH_SPAN_CLIENT = 3,
};

/* OTLP's Status.code values. */
enum gh_span_status {
    GH_SPAN_STATUS_UNSET = 0,
    GH_SPAN_STATUS_OK = 1,
    GH_SPAN_STATUS_ERROR = 2,
};

enum gh_attr_type { GH_ATTR_STR, GH_ATTR_INT, GH_ATTR_BOOL };

struct gh_span_attr {
    const char *key;
    enum gh_attr_type type;
    gh_str s;       /* GH_ATTR_STR */
    int64_t i;      /* GH_ATTR_INT; GH_ATTR_BOOL: 0 or 1 */
    size_t key_len; /* strlen(key), or 0: the encoders measure <key> */
};

#define GH_SPAN_MAX_ATTRS 16

struct gh_span {
    uint8_t trace_id[16];
    uint8_t span_id[8];
    uint8_t parent_id[8];
    bool has_parent;
    gh_str trace_state; /* may be empty */
    gh_str name;
    enum gh_span_kind kind;
    uint64_t start_unix_ns;
    uint64_t end_unix_ns;
    enum gh_span_status status;
    gh_str status_message; /* may be empty */
    uint32_t flags;        /* W3C trace flags (low 8 bits) */
    struct gh_span_attr attrs[GH_SPAN_MAX_ATTRS];
    uint8_t nattrs;
};

/* What the Resource carries: service.name, service.version and
 * service.instance.id, plus the instrumentation scope's name/version. */
struct gh_otlp_resource {
    gh_str service_name;
    gh_str service_version;
    gh_str instance_id;
    gh_str scope_name;
    gh_str scope_version;
};

/* A growable byte buffer owned by the caller (free(out->data) when done);
 * zero-initialise it to start. */
struct gh_otlp_buf {
    char *data;
    size_t len, cap;
    size_t max; /* 0: no limit; else len (and the allocation) never pass it */
};

/* Appends the encoding of <n> spans to <out>. Returns 0, or -1 when out of
 * memory or when it would pass out->max (out->len is then left as it was). */
int gh_otlp_encode_json(struct gh_otlp_buf *out, const struct gh_otlp_resource *res,
                        const struct gh_span *spans, size_t n);
int gh_otlp_encode_proto(struct gh_otlp_buf *out, const struct gh_otlp_resource *res,
                         const struct gh_span *spans, size_t n);

#endif
