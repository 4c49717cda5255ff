/* Query parameters of the audit read endpoints (GET /v1/audit, /export,
 * /checkpoints): percent-decoded values, times, and opaque page cursors.
 *
 * Kept apart from the handlers (api_audit.c) because they are pure: no
 * store, no connection, no allocation, so a table-driven unit test covers
 * them (tests/unit/admin/test_audit_params.c). */
#ifndef GH_ADMIN_AUDIT_PARAMS_H
#define GH_ADMIN_AUDIT_PARAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/str.h"

/* ---- query strings ---- */

/* Finds the first parameter <name> of the query string <q> ("a=1&b=2") and
 * percent-decodes its value into <out> (<size> bytes, NUL-terminated); '+'
 * is a space, as HTML forms and most clients encode one. Returns 1 when
 * found, 0 when absent (out is ""), -1 when the value is malformed: a bad
 * %xx escape, a NUL byte, or longer than <size> - 1 bytes decoded. */
int gh_audit_query_get(gh_str q, const char *name, char *out, size_t size);

/* True when every parameter name of <q> is one of <names> (NULL-terminated)
 * and none appears twice. Otherwise false with <bad> set to the offending
 * name (a slice of <q>, not decoded). An empty query is fine. */
bool gh_audit_query_check(gh_str q, const char *const *names, gh_str *bad);

/* ---- times ---- */

/* Parses <s> as unix milliseconds (only digits, at most 15) or an RFC 3339
 * date-time (RFC 3339 §5.6: "2026-11-22T03:30:00Z", fractions of a second
 * and "+01:00" offsets allowed; 't', 'z' and a space for 'T' accepted as
 * §5.6's note allows). Sets *<us> to unix microseconds (sub-microsecond
 * digits are dropped). Returns 0, or -1 on anything else, including
 * out-of-range fields (month 13, February 30) and dates before 1970. */
int gh_audit_parse_time(const char *s, int64_t *us);

/* ---- cursors ---- */

/* A cursor is base64url text; clients must treat it as opaque. It names the
 * last row of a page and carries a digest of the filters it was made
 * under, so that it is refused under other filters (a page of one query
 * continued as another would silently skip or repeat rows). */
#define GH_AUDIT_CURSOR_MAX 96 /* text bytes, with the NUL */
#define GH_AUDIT_DIGEST_LEN 8

/* Keyset position of GET /v1/audit: after the row (<time_us>, <rowid>) in
 * <oldest_first> order (the store's order: gh_store_audit_query). */
struct gh_audit_cursor {
    int64_t rowid;
    int64_t time_us;
    bool oldest_first;
    uint8_t digest[GH_AUDIT_DIGEST_LEN];
};

/* Keyset position of GET /v1/audit/checkpoints: after (<chain>, <seq>). */
struct gh_audit_cp_cursor {
    char chain[32];
    uint64_t seq;
    uint8_t digest[GH_AUDIT_DIGEST_LEN];
};

/* The digest of a filter set: SHA-256 over each of the <n> strings <fields>
 * (NULL counts as "") with its length, first GH_AUDIT_DIGEST_LEN bytes. */
void gh_audit_filter_digest(const char *const *fields, size_t n, uint8_t out[GH_AUDIT_DIGEST_LEN]);

/* Cursor text into <out> (GH_AUDIT_CURSOR_MAX bytes, NUL-terminated). */
void gh_audit_cursor_encode(const struct gh_audit_cursor *c, char *out);
void gh_audit_cp_cursor_encode(const struct gh_audit_cp_cursor *c, char *out);

/* Decodes <text>. Returns 0, or -1 when it is not a cursor of this kind
 * (the caller answers 400). The caller compares the digest. */
int gh_audit_cursor_decode(const char *text, struct gh_audit_cursor *c);
int gh_audit_cp_cursor_decode(const char *text, struct gh_audit_cp_cursor *c);

#endif
