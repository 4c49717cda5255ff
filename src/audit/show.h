/* An audit event as gatehouse shows it to people and programs: the admin
 * API's GET /v1/audit and /v1/audit/export, and `gatehouse audit list`,
 * all through this one function, so that a line means the same wherever it
 * was read. The form is docs/audit-format.md's: the event's stored body,
 * byte for byte, with "hash" (and, for an export's first line, "prev_hash")
 * added before its closing brace.
 *
 * A row that cannot be shown so (the store marked it damaged, its body is
 * not a JSON object or its hash not hex: the table was written by hand) is
 * shown as {"damaged":true,"chain":...,"seq":N,"rowid":N} instead, so that
 * one bad row neither breaks a JSON answer nor stops a listing, and still
 * says where it is; a verifier then fails at that seq, as it should, and
 * `gatehouse audit verify` says why. */
#ifndef GH_AUDIT_SHOW_H
#define GH_AUDIT_SHOW_H

#include <stddef.h>

#include "store/store.h"

/* Receives the shown event's bytes, in pieces. */
typedef void (*gh_audit_show_put)(void *arg, const char *s, size_t n);

/* Shows <row> through <put> (<prev_hash>: NULL, or 64 hex to add).
 * Returns 1 when shown as stored, 0 when shown as damaged, -1 when out of
 * memory (then nothing was put). */
int gh_audit_show_event(const struct gh_store_audit_row *row, const char *prev_hash,
                        gh_audit_show_put put, void *arg);

#endif
