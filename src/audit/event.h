/* An audit event and its canonical form (docs/audit-format.md is the
 * byte-for-byte definition: keep the two in step).
 *
 * Producers (workers, the admin API, background threads) fill a struct
 * gh_audit_event with gh_audit_event_init and the setters below, and hand it
 * to the writer (audit.h); the writer sets chain, seq and the hashes. Every
 * string is clipped to its field (never past a UTF-8 sequence) and made valid
 * UTF-8 at the setter, so the canonical form never fails. Pure functions: no
 * allocation, no global state. */
#ifndef GH_AUDIT_EVENT_H
#define GH_AUDIT_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/str.h"

#define GH_AUDIT_ID_SIZE         37 /* UUIDv7 text and NUL */
#define GH_AUDIT_CHAIN_SIZE      32
#define GH_AUDIT_TENANT_SIZE     32 /* = GH_AUDIT_CHAIN_SIZE: a tenant is a chain */
#define GH_AUDIT_ACTOR_SIZE      272
#define GH_AUDIT_ACTION_SIZE     48
#define GH_AUDIT_RESOURCE_SIZE   256
#define GH_AUDIT_REASON_SIZE     64
#define GH_AUDIT_METHOD_SIZE     24
#define GH_AUDIT_PATH_SIZE       512
#define GH_AUDIT_REQUEST_ID_SIZE 65
#define GH_AUDIT_TRACE_ID_SIZE   33
#define GH_AUDIT_IP_SIZE         46
#define GH_AUDIT_UA_SIZE         256
#define GH_AUDIT_NODE_SIZE       64   /* a node id (config node.id: 1..63 of [A-Za-z0-9._-]) */
#define GH_AUDIT_PARAMS_SIZE     2048 /* the canonical JSON array of params */
#define GH_AUDIT_CANON_MAX       8192 /* the canonical form always fits (about 4 KiB at most) */
#define GH_AUDIT_NAME_MAX        128  /* a parameter's name in the canonical form, escaped */
#define GH_AUDIT_PREFIX_MAX      64   /* the largest prefix_chars honoured */
#define GH_AUDIT_QUERY_VALUE_MAX 4096 /* a decoded query value scanned by the detectors */

enum gh_audit_outcome {
    GH_AUDIT_SUCCESS = 1,
    GH_AUDIT_DENIED = 2,
    GH_AUDIT_FAILED = 3,
};

struct gh_audit_event {
    char id[GH_AUDIT_ID_SIZE];
    int64_t time_us;
    char tenant[GH_AUDIT_TENANT_SIZE];
    char actor[GH_AUDIT_ACTOR_SIZE];
    char action[GH_AUDIT_ACTION_SIZE];
    char resource[GH_AUDIT_RESOURCE_SIZE];
    enum gh_audit_outcome outcome;
    char reason[GH_AUDIT_REASON_SIZE];
    char method[GH_AUDIT_METHOD_SIZE];
    char path[GH_AUDIT_PATH_SIZE];
    uint16_t status;
    char request_id[GH_AUDIT_REQUEST_ID_SIZE];
    char trace_id[GH_AUDIT_TRACE_ID_SIZE];
    char client_ip[GH_AUDIT_IP_SIZE];
    char user_agent[GH_AUDIT_UA_SIZE];
    uint64_t latency_us;
    char params[GH_AUDIT_PARAMS_SIZE]; /* "[]" or a canonical array (gh_audit_params_*) */
    uint16_t params_len;
    /* private to gh_audit_params_*: where the kept parameters end, and how
     * many were left out for want of room */
    uint16_t params_kept;
    uint32_t params_truncated;

    /* Set by the writer. */
    char node[GH_AUDIT_NODE_SIZE]; /* the writing node's id; "" keeps the version-1 form */
    char chain[GH_AUDIT_CHAIN_SIZE];
    uint64_t seq;
    uint8_t prev_hash[32];
    uint8_t hash[32];
};

/* Zeroes <ev>, gives it a new UUIDv7 (RFC 9562 §5.7: the Unix milliseconds of
 * <now_us>, version 7, variant 10, and 74 bits of <rand>, 10 random bytes from
 * the caller's CSPRNG), time_us = <now_us> and "[]" params. */
void gh_audit_event_init(struct gh_audit_event *ev, int64_t now_us, const uint8_t rand[10]);

/* Copies <s> into <dst> (of <size> bytes, NUL-terminated), invalid UTF-8
 * replaced by U+FFFD (one per maximal invalid subpart, as Unicode §3.9 and
 * Python's "replace" do) and NUL bytes too (a C string cannot hold them).
 * Clipped on a character boundary so that the string's canonical form
 * (escapes included) takes at most <size> - 1 bytes: that bound is what keeps
 * every canonical form under GH_AUDIT_CANON_MAX. */
void gh_audit_set(char *dst, size_t size, gh_str s);
#define GH_AUDIT_SET(ev, field, s) gh_audit_set((ev)->field, sizeof((ev)->field), (s))

/* The chain an event belongs to: its tenant, or "system". */
const char *gh_audit_chain_of(const struct gh_audit_event *ev);

/* "success", "denied", or "failed" (also for a value out of range: an event
 * whose producer forgot its outcome never claims success). */
const char *gh_audit_outcome_name(enum gh_audit_outcome o);

/* Writes the canonical form of <ev> (with its chain and seq) into <out>
 * (GH_AUDIT_CANON_MAX bytes): format version 2 with a final "node" member
 * when ev->node is set, else version 1, byte for byte as before nodes
 * existed (so every stored chain still verifies). Returns its length.
 * Strings are written as they are in <ev> (no UTF-8 check here: the setters
 * did it); 0 when the form does not fit, which only fields written without
 * gh_audit_set can cause. */
size_t gh_audit_canonical(const struct gh_audit_event *ev, char *out);

/* hash = SHA-256(prev || canon). */
void gh_audit_chain_hash(const uint8_t prev[32], const char *canon, size_t len, uint8_t out[32]);

/* The checkpoint message of docs/audit-format.md into <out> (256 bytes).
 * Returns its length. */
size_t gh_audit_checkpoint_message(const char *chain, uint64_t seq, const uint8_t hash[32],
                                   int64_t time_ms, char *out);

/* ---- params (redaction) ---- */

/* Builds ev->params: starts an empty array. */
void gh_audit_params_begin(struct gh_audit_event *ev);
/* Adds one parameter: redacted when its name or value says so, else its
 * SHA-256 and first <prefix_chars> characters (at most GH_AUDIT_PREFIX_MAX).
 * The name is clipped to GH_AUDIT_NAME_MAX bytes of canonical form. Once a
 * parameter does not fit, it and every later one are left out and a final
 * element {"truncated":N} counts them (docs/audit-format.md). ev->params is a
 * complete canonical array after every call: _end is optional. */
void gh_audit_params_add(struct gh_audit_event *ev, gh_str name, gh_str value,
                         unsigned prefix_chars);
void gh_audit_params_end(struct gh_audit_event *ev);

/* The redaction rule that applies, or NULL: "name", "bearer", "jwt",
 * "gatehouse_key", "email", "card" (checked in this order; the rules are in
 * docs/audit-format.md). */
const char *gh_audit_redaction(gh_str name, gh_str value);

/* Adds every parameter of a query string ("a=1&b=2": split on '&', name and
 * value on the first '=', '+' read as a space, %XX decoded, a malformed %
 * kept as it is; empty parts skipped). A name or value that decodes to more
 * than GH_AUDIT_QUERY_VALUE_MAX bytes is redacted with rule "too_long" (the
 * detectors could not scan all of it). */
void gh_audit_params_from_query(struct gh_audit_event *ev, gh_str query, unsigned prefix_chars);

/* ---- reading a canonical form back (the verifier) ---- */

/* Parses <body> (<len> bytes), which must be a canonical form exactly as
 * gh_audit_canonical writes it (members, order, escapes, integers; version
 * 1 without a node, or version 2 with a non-empty one), into <ev>: every
 * field but prev_hash and hash (params is copied as it is, after
 * a check that it is a JSON array of strings, integers and objects).
 * Returns GH_OK or GH_ERROR (<ev> is then partly filled). */
int gh_audit_canonical_parse(const char *body, size_t len, struct gh_audit_event *ev);

#endif
