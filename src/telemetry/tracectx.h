/* W3C Trace Context (Recommendation, level 1, with level 2's handling of
 * unknown versions): parsing `traceparent` and `tracestate` as a request
 * carries them, and formatting the `traceparent` the gateway sends on.
 *
 * Rules kept here (https://www.w3.org/TR/trace-context/):
 * - A header value's leading and trailing spaces/tabs are not part of it
 *   (RFC 9110 §5.5; the W3C test suite sends them).
 * - traceparent version 00 is exactly 55 characters, lowercase hex only:
 *   "00-<32 hex trace-id>-<16 hex parent-id>-<2 hex flags>"; uppercase hex,
 *   an all-zero trace-id or parent-id, and version "ff" are invalid.
 * - A higher version (2 lowercase hex digits, not ff) is parsed as far as
 *   version 00 defines it: at least 55 characters, and if longer, character
 *   55 must be '-'; what follows is not looked at.
 * - More than one traceparent header (or a comma in one) is invalid.
 * - An invalid traceparent means: start a new trace and drop tracestate.
 * - tracestate: the values of all its headers, joined with ','; members
 *   separated by ',' with optional spaces/tabs; empty members are skipped
 *   and not counted; keys are simple-key / multi-tenant-key
 *   (tenant@system) and values follow the spec's grammar; a duplicated key
 *   or any bad member drops the whole tracestate; more than 32 members
 *   drops it too; the members are propagated joined by ',' without OWS;
 *   when they exceed GH_TRACESTATE_MAX bytes, members longer than 128
 *   characters are removed first (from the end), then members from the
 *   end, until the rest fits, as the spec's section on limits says.
 * Pure functions: no allocation, no global state. */
#ifndef GH_TELEMETRY_TRACECTX_H
#define GH_TELEMETRY_TRACECTX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/str.h"

#define GH_TRACESTATE_MAX     512 /* bytes of tracestate the gateway propagates */
#define GH_TRACESTATE_MEMBERS 32  /* list-members allowed */
#define GH_TRACEPARENT_LEN    55  /* "00-" 32 "-" 16 "-" 2 */

#define GH_TRACE_FLAG_SAMPLED 0x01

struct gh_tracectx {
    uint8_t trace_id[16];
    uint8_t parent_id[8]; /* the caller's span id */
    uint8_t flags;        /* trace-flags as received (all 8 bits) */
    bool valid;           /* a valid traceparent was found */
    uint16_t state_len;   /* bytes of <state> to propagate; 0 = none */
    char state[GH_TRACESTATE_MAX + 1];
};

/* Parses the request's traceparent values (<ntp> header field values, in
 * the order received) and tracestate values (<nts>). Always fills <tc>:
 * tc->valid says whether the caller's context is to be continued; the ids
 * and flags are zero when it is false. state_len is 0 whenever valid is
 * false; tc->state is NUL-terminated. Reads the slices, keeps no pointer
 * into them. */
void gh_tracectx_parse(struct gh_tracectx *tc, const gh_str *traceparent, size_t ntp,
                       const gh_str *tracestate, size_t nts);

/* Writes "00-<trace>-<span>-<flags>" (GH_TRACEPARENT_LEN bytes, then a NUL)
 * into <out>. <flags> is written as given: a sender keeps only the bits it
 * knows (GH_TRACE_FLAG_SAMPLED), since version 00 says other flags MUST be
 * sent as zero. */
void gh_traceparent_format(char out[GH_TRACEPARENT_LEN + 1], const uint8_t trace_id[16],
                           const uint8_t span_id[8], uint8_t flags);

/* Lowercase hex of <n> bytes into <out> (2n chars + NUL). */
void gh_trace_hex(char *out, const uint8_t *p, size_t n);

#endif
